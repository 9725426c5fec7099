"""Manual readings: field checks, the cumulative order rule, replacements, duplicates, all-or-nothing, publishing.

A real tag table and operational store (a file in ``tmp_path``), a list for
history and a fixed clock; no reactor, no ports.
"""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace

import pytest

from scada.manual import JOURNAL_EVENT, ManualError, ManualReadings, Register, build_manual, parse_time
from scada.store import OpsStore
from tags.model import Sample, TagDef
from tags.quality import Quality
from tags.table import TagTable
from tags.timefmt import iso_utc, parse_iso

NOW = parse_iso("2026-11-20T12:00:00Z")
COLD = "b1-kv01-cold.volume_m3"
HEAT = "b1-heat.energy_kwh"
FLOW = "b1-kv01-cold.flow_m3h"


class Site:
    """A tag table, a store, history as a list, and the manual readings over them."""

    def __init__(self, tmp_path) -> None:
        self.now = NOW
        self.tags = TagTable()
        for name, unit, device in ((COLD, "m3", "b1-kv01-cold"), (FLOW, "m3/h", "b1-kv01-cold"),
                                   (HEAT, "kWh", "b1-heat")):
            self.tags.define(TagDef(name, unit, 0.0, device))
        self.history: list[Sample] = []
        self.store = OpsStore(tmp_path / "ops.db", clock=lambda: self.now)
        registers = {COLD: Register(COLD, "b1-kv01-cold", "m3", True), FLOW: Register(FLOW, "b1-kv01-cold", "m3/h"),
                     HEAT: Register(HEAT, "b1-heat", "kWh", True)}
        self.manual = ManualReadings(self.tags, self.history.extend, self.store, registers,
                                     {"ВСХ-123456": COLD}, lambda: self.now)

    def submit(self, *rows, user: str = "ivanov", source: str = "api") -> list[dict]:
        return self.manual.submit(list(rows), user, source)

    def refused(self, *rows) -> list[str]:
        with pytest.raises(ManualError) as caught:
            self.submit(*rows)
        return [str(p) for p in caught.value.problems]


@pytest.fixture()
def site(tmp_path):
    s = Site(tmp_path)
    yield s
    s.store.close()


def test_accepted_reading_is_stored_attributed_published_and_journalled(site):
    """A reading is stored with who/where, goes to history and the table with quality manual, and to the journal."""
    results = site.submit({"tag": COLD, "ts": "2026-11-20T10:00:00+03:00", "value": 123.4, "comment": " обход "},
                          user="ivanov")
    ts = parse_iso("2026-11-20T07:00:00Z")
    assert results == [{"row": 0, "tag": COLD, "ts": iso_utc(ts), "value": 123.4, "replacement": False,
                        "status": "accepted", "id": results[0]["id"]}]
    [stored] = site.store.manual_readings(COLD)
    assert (stored.ts, stored.value, stored.user, stored.source, stored.comment, stored.entered) == (
        ts, 123.4, "ivanov", "api", "обход", NOW)
    assert site.history == [Sample(COLD, 123.4, Quality.MANUAL, ts)]
    state = site.tags.get(COLD)
    assert (state.value, state.quality, state.ts) == (123.4, Quality.MANUAL, ts)
    [entry] = site.store.query(0, NOW + 1)
    assert entry.event == JOURNAL_EVENT and entry.user == "ivanov" and entry.tag == COLD and entry.value == 123.4
    assert "1 manual reading from api" in entry.comment and "123.4" in entry.comment


def test_lower_than_current_value_is_refused_unless_replacement(site):
    """A cumulative register refuses a value below the previous one, naming both, unless it is a replacement."""
    site.tags.update(Sample(COLD, 130.0, Quality.GOOD, parse_iso("2026-11-20T09:00:00Z")))
    [problem] = site.refused({"tag": COLD, "ts": "2026-11-20T10:00:00Z", "value": 123.4})
    assert problem == ("readings[0]: b1-kv01-cold.volume_m3: 123.4 at 2026-11-20T10:00:00.000Z is lower than the "
                       "previous reading 130.0 at 2026-11-20T09:00:00.000Z (current value, quality good); mark it "
                       "as a meter replacement if the meter was replaced")
    assert site.store.manual_readings() == [] and site.history == []
    results = site.submit({"tag": COLD, "ts": "2026-11-20T10:00:00Z", "value": 0.5, "replacement": True})
    assert results[0]["status"] == "accepted" and results[0]["replacement"] is True
    assert site.store.manual_readings()[0].replacement is True
    # After the replacement the new meter's count is the baseline.
    site.submit({"tag": COLD, "ts": "2026-11-20T11:00:00Z", "value": 0.7})
    assert "lower than the previous reading 0.7" in site.refused({"tag": COLD, "ts": "2026-11-20T11:30:00Z",
                                                                 "value": 0.6})[0]


def test_bad_current_quality_is_not_a_previous_reading(site):
    """A comm-loss current value does not count; a non-cumulative register is never order-checked."""
    site.tags.update(Sample(COLD, None, Quality.COMM_LOSS, parse_iso("2026-11-20T09:00:00Z")))
    site.submit({"tag": COLD, "ts": "2026-11-20T10:00:00Z", "value": 5.0})
    site.submit({"tag": FLOW, "ts": "2026-11-20T10:00:00Z", "value": 3.0},
                {"tag": FLOW, "ts": "2026-11-20T10:30:00Z", "value": 1.0})
    assert [s.value for s in site.history] == [5.0, 3.0, 1.0]


def test_higher_than_a_later_reading_is_refused(site):
    """A value above the next known reading is refused too (the later stored one, or the current value)."""
    site.submit({"tag": COLD, "ts": "2026-11-20T10:00:00Z", "value": 100.0})
    [problem] = site.refused({"tag": COLD, "ts": "2026-11-19T10:00:00Z", "value": 101.0})
    assert "101.0 at 2026-11-19T10:00:00.000Z is higher than the later reading 100.0 at 2026-11-20T10:00:00.000Z" \
        in problem and "entered by ivanov" in problem
    # Between two readings is fine, and it goes to history but not to the table (it is older).
    site.submit({"tag": COLD, "ts": "2026-11-19T10:00:00Z", "value": 99.0})
    assert site.tags.get(COLD).value == 100.0 and site.history[-1].value == 99.0
    site.tags.update(Sample(HEAT, 50.0, Quality.GOOD, NOW - 60))
    assert "higher than the later reading 50.0" in site.refused({"tag": HEAT, "ts": NOW - 3600, "value": 51})[0]


def test_a_later_replacement_ends_the_upper_check(site):
    """Before a stored replacement reading, values above the new meter's count are the old meter's: fine."""
    site.submit({"tag": COLD, "ts": "2026-11-20T10:00:00Z", "value": 2.0, "replacement": True})
    site.submit({"tag": COLD, "ts": "2026-11-19T10:00:00Z", "value": 500.0})
    assert [r.value for r in site.store.manual_readings(COLD)] == [500.0, 2.0]


def test_duplicates_are_skipped_and_conflicts_refused(site):
    """The same reading again is a duplicate (nothing written); another value for the same time is refused."""
    row = {"tag": COLD, "ts": "2026-11-20T10:00:00Z", "value": 10.0}
    site.submit(row)
    results = site.submit(row, {"serial": "ВСХ-123456", "ts": "2026-11-20T10:00:00+00:00", "value": 10.0})
    assert [r["status"] for r in results] == ["duplicate", "duplicate"] and "id" not in results[0]
    assert len(site.store.manual_readings()) == 1 and len(site.history) == 1
    assert len(site.store.query(0, NOW + 1)) == 1  # no journal entry for a batch of duplicates
    [problem] = site.refused({"tag": COLD, "ts": "2026-11-20T10:00:00Z", "value": 11.0})
    assert "already has the manual reading 10.0" in problem and "ivanov" in problem
    # Within one batch: the same row twice is one reading; two values for one time are refused.
    results = site.submit({"tag": HEAT, "ts": NOW, "value": 1.0}, {"tag": HEAT, "ts": NOW, "value": 1.0})
    assert [r["status"] for r in results] == ["accepted", "duplicate"]
    assert "contradicts readings[0]" in site.refused({"tag": FLOW, "ts": NOW, "value": 1.0},
                                                     {"tag": FLOW, "ts": NOW, "value": 2.0})[0]


def test_batch_is_all_or_nothing_and_names_every_bad_row(site):
    """One bad row refuses the batch; every problem names its row and the value; nothing is written."""
    problems = site.refused(
        {"tag": COLD, "ts": "2026-11-20T08:00:00Z", "value": 10.0},
        {"tag": COLD, "ts": "2026-11-20T09:00:00Z", "value": 9.0},      # lower than row 0
        {"tag": "b1-kv01-cold.volume_m4", "ts": NOW, "value": 1},        # unknown tag
        {"serial": "ВСХ-12345", "ts": NOW, "value": 1},                  # unknown serial
        {"tag": HEAT, "ts": "2026-11-20T10:00:00", "value": 1},          # no offset
        {"tag": HEAT, "ts": NOW + 3600, "value": 1},                     # future
        {"tag": HEAT, "ts": NOW, "value": "12,5"},                       # a string
        {"tag": HEAT, "ts": NOW, "value": -1},                           # negative counter
        {"tag": HEAT, "serial": "x", "ts": NOW, "value": 1},             # both
        {"ts": NOW, "value": 1, "timestamp": 1},                         # unknown field
        ["not", "an", "object"],
        {"tag": HEAT, "ts": NOW, "value": 1, "replacement": "yes", "comment": "x" * 501},
    )
    assert problems[0].startswith("readings[1]: b1-kv01-cold.volume_m3: 9.0 at") and "readings[0] of this batch" \
        in problems[0]
    assert problems[1].startswith("readings[2]: unknown tag 'b1-kv01-cold.volume_m4'; did you mean "
                                  "b1-kv01-cold.volume_m3")
    assert problems[2] == "readings[3]: unknown serial number 'ВСХ-12345'; did you mean ВСХ-123456?"
    assert "has no UTC offset" in problems[3] and "'2026-11-20T10:00:00'" in problems[3]
    assert "is in the future" in problems[4]
    assert problems[5] == "readings[6]: \"value\" must be a number, not '12,5'"
    assert "-1.0 is negative" in problems[6]
    assert problems[7] == 'readings[8]: give "tag" or "serial", not both'
    assert "unknown field 'timestamp'" in problems[8]
    assert problems[9].startswith("readings[10]: a reading must be an object") and "a JSON array" in problems[9]
    assert '"replacement" must be true or false' in problems[10] and "longer than 500" in problems[10]
    assert site.store.manual_readings() == [] and site.history == [] and site.tags.get(COLD).ts is None


def test_serials_are_matched_loosely_and_reported(site):
    """Serials match without regard to case and blanks; results say which serial named the register."""
    [result] = site.submit({"serial": " всх-123456 ", "ts": NOW, "value": 1.5})
    assert result["tag"] == COLD and result["serial"] == "всх-123456"
    assert site.store.manual_readings()[0].serial == "всх-123456"


def test_newest_of_a_batch_goes_to_the_table(site):
    """Several readings of one tag: all to history in one write, only the newest to the tag table."""
    site.submit({"tag": COLD, "ts": NOW - 7200, "value": 1.0}, {"tag": COLD, "ts": NOW - 60, "value": 3.0},
                {"tag": COLD, "ts": NOW - 3600, "value": 2.0})
    assert [s.value for s in site.history] == [1.0, 3.0, 2.0]
    assert site.tags.get(COLD).value == 3.0 and site.tags.get(COLD).ts == NOW - 60
    [entry] = site.store.query(0, NOW + 1)
    assert entry.comment.startswith("3 manual readings from api:") and entry.value is None and entry.tag == COLD


def test_bad_source_empty_and_store_failure(site, monkeypatch):
    """The source is api or import:<name>; an empty batch is refused; a store failure publishes nothing."""
    with pytest.raises(ManualError, match="import:<file name>"):
        site.manual.submit([{"tag": COLD, "ts": NOW, "value": 1}], "u", "elsewhere")
    with pytest.raises(ManualError, match="no readings"):
        site.manual.submit([], "u", "api")
    site.submit({"tag": COLD, "ts": NOW, "value": 1}, source="import:обход.csv")
    assert site.store.manual_readings()[0].source == "import:обход.csv"

    def broken(readings):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(site.store, "add_manual_readings", broken)
    with pytest.raises(sqlite3.OperationalError):
        site.submit({"tag": HEAT, "ts": NOW, "value": 1})
    assert site.tags.get(HEAT).ts is None and len(site.history) == 1


def test_history_failure_is_a_warning(site):
    """History refusing the samples leaves the readings stored, with a warning in the results."""
    def refuse(samples):
        raise OSError("queue full")

    site.manual.write_history = refuse
    [result] = site.submit({"tag": COLD, "ts": NOW, "value": 1})
    assert result["status"] == "accepted" and "not written to history: queue full" in result["warning"]
    assert site.tags.get(COLD).value == 1.0


@pytest.mark.parametrize("value, expected", [
    ("2026-11-20T10:00:00Z", parse_iso("2026-11-20T10:00:00Z")),
    ("2026-11-20T13:00:00.1234+03:00", parse_iso("2026-11-20T10:00:00.123Z")),
    (1763632800, 1763632800.0),
])
def test_parse_time(value, expected):
    """ISO 8601 with an offset or Unix seconds, to the millisecond."""
    assert parse_time(value) == expected


@pytest.mark.parametrize("value", ["2026-11-20", "20.11.2026 10:00", "", True, None, float("nan"), 10**400, 5,
                                   "1e10", [1]])
def test_parse_time_refuses(value):
    """Times without an offset, junk, and times before 2000 are refused with the value named."""
    with pytest.raises(ValueError, match='"ts"'):
        parse_time(value)


def test_build_manual_from_a_runtime(tmp_path):
    """Registers from the table's device tags (flag, else unit); a serial stands for the device's first counter."""
    tags = TagTable()
    for tagdef in (TagDef("hand.volume_m3", "m3", 0.0, "hand"), TagDef("hand.temp_c", "°C", 0.0, "hand"),
                   TagDef("hand.counter", "", 0.0, "hand"), TagDef("historian_backlog", "samples")):
        tags.define(tagdef)
    points = [SimpleNamespace(name="volume_m3", cumulative=None), SimpleNamespace(name="counter", cumulative=True)]
    device = SimpleNamespace(name="hand", serial="S-1", points=points)
    store = OpsStore(tmp_path / "ops.db", clock=lambda: NOW)
    written = []
    runtime = SimpleNamespace(
        cfg=SimpleNamespace(channels=[SimpleNamespace(devices=[device])]), tags=tags, store=store,
        channels=[SimpleNamespace(tagdefs=[tags.get(n).definition for n in ("hand.counter", "hand.volume_m3")])],
        _write_history=written.extend, reactor=SimpleNamespace(seconds=lambda: NOW))
    manual = build_manual(runtime)
    assert set(manual.registers) == {"hand.volume_m3", "hand.temp_c", "hand.counter"}
    assert manual.registers["hand.volume_m3"].cumulative and manual.registers["hand.counter"].cumulative
    assert not manual.registers["hand.temp_c"].cumulative
    assert manual.serials == {"S-1": "hand.counter"}  # the first counter in configuration order
    manual.submit([{"serial": "S-1", "ts": NOW, "value": 7}], "u")
    assert written == [Sample("hand.counter", 7.0, Quality.MANUAL, NOW)]
    # A tag defined later (an M-Bus meter that answered) is a register by its unit.
    tags.define(TagDef("hand.energy_kwh", "kWh", 0.0, "hand"))
    assert manual.register("hand.energy_kwh").cumulative and manual.register("historian_backlog") is None
    store.close()
