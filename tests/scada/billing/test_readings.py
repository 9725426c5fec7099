"""Billing readings: boundary readings, sources, replacements, ПП 354 substitution end to end."""

from __future__ import annotations

from datetime import date

import pytest

from scada.billing import pp354
from scada.billing.readings import CALCULATED, MANUAL, MEASURED, MISSING, PeriodReader, worst
from scada.registry import Premises
from tags.quality import Quality
from tests.scada.billing.fixtures import building, event, history, local, meter, monthly, registry, run

P = "2026-10"
START, END = local(2026, 10), local(2026, 11)
GOOD, MAN, BACK, CALC, BAD = Quality.GOOD, Quality.MANUAL, Quality.BACKFILLED, Quality.CALCULATED, Quality.TIMEOUT

PREMISES = [Premises("b1", "1", "7700000101", 54.2, 2), Premises("b1", "2", "7700000102", 40.0, 1),
            Premises("b1", "3", "7700000103", 100.0, 0, "office")]


def reader(meters, rows, events=(), **kw) -> PeriodReader:
    """A reader over building b1 with ``meters`` and history ``rows``."""
    reg = registry([building("b1", PREMISES, meters)], events)
    return PeriodReader(reg, history(rows), **kw)


def one(r: PeriodReader, meter_id: str, period: str = P):
    """Read one meter with substitution."""
    (got,) = run(r.read([r.registry.meter(meter_id)], period))
    return got


def test_boundary_reading_is_last_usable_at_or_before() -> None:
    """A sample exactly at 00:00 on the 1st closes one period and opens the next; later or bad ones do not count."""
    rows = [("a.volume_m3", START - 3600, 10.0, GOOD), ("a.volume_m3", START, 11.0, GOOD),
            ("a.volume_m3", START + 1, 99.0, GOOD),
            ("a.volume_m3", END - 60, 20.0, GOOD), ("a.volume_m3", END - 30, 77.0, BAD),
            ("a.volume_m3", END, 21.0, GOOD)]
    r = reader([meter("a", "1")], rows)
    got = one(r, "a")
    assert (got.start.value, got.start.ts, got.end.value, got.end.ts) == (11.0, START, 21.0, END)
    assert got.consumption == 10.0 and got.source == MEASURED and got.problem is None
    september = one(r, "a", "2026-09")
    assert september.end == got.start  # one boundary, one reading
    item = got.to_json()
    assert item["start_ts"] == "2026-09-30T21:00:00.000Z" and item["end_ts"] == "2026-10-31T21:00:00.000Z"
    assert (item["account"], item["premises"], item["serial"], item["source"], item["rule"]) == (
        "7700000101", "1", "SN-a", "measured", None)


def test_reading_older_than_the_closed_period_is_no_reading() -> None:
    """The end reading must lie in the period, the start reading in the one before; else ПП 354 applies."""
    rows = monthly("a.volume_m3", "2025-10", [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36]) + [
        ("a.volume_m3", START + 5 * 86400, 37.0, GOOD)]
    r = reader([meter("a", "1")], rows)
    october = one(r, "a")
    assert october.start.value == 36.0 and october.end.value == 37.0  # went silent on the 6th: billed up to it
    november = one(r, "a", "2026-11")
    assert november.start.value == 37.0 and november.end is None and november.problem == "no-end-reading"
    assert november.source == CALCULATED and november.substitution.rule == pp354.RULE_59B_AVERAGE
    # A fixed window of 3 days: the reading of the 6th is too old for November's start.
    short = reader([meter("a", "1")], rows, max_age=3 * 86400)
    assert one(short, "a", "2026-11").start is None
    # Only a reading exactly at the start of a month: that month's start, not also its end.
    lonely = reader([meter("a", "1")], [("a.volume_m3", START, 5.0, GOOD)])
    assert one(lonely, "a").start.value == 5.0 and one(lonely, "a").end is None


@pytest.mark.parametrize(("first", "last", "source"), [
    (GOOD, GOOD, "measured"), (GOOD, BACK, "backfilled"), (BACK, MAN, "manual"), (MAN, GOOD, "manual"),
    (CALC, GOOD, "calculated"), (BACK, BACK, "backfilled"),
])
def test_source_is_the_worse_reading(first, last, source) -> None:
    """calculated > manual > backfilled > measured."""
    rows = [("a.volume_m3", START, 1.0, first), ("a.volume_m3", END - 1, 2.5, last)]
    assert one(reader([meter("a", "1")], rows), "a").to_json()["source"] == source
    assert worst(MEASURED, MANUAL, CALCULATED) == CALCULATED


def test_replacement_in_the_period() -> None:
    """(final − start) + (end − initial); the serial is the new meter's; the item lists the swap."""
    swap = local(2026, 10, 15)
    rows = [("a.volume_m3", START, 100.0, GOOD), ("a.volume_m3", swap - 3600, 149.0, GOOD),
            ("a.volume_m3", swap + 3600, 0.5, GOOD), ("a.volume_m3", END, 20.0, GOOD)]
    events = [event("a", "replacement", swap, final_reading=150.0, initial_reading=0.0, new_serial="NEW-1")]
    got = one(reader([meter("a", "1")], rows, events), "a")
    assert got.consumption == 70.0 and got.source == MANUAL and got.serial == "NEW-1"
    item = got.to_json("en")
    assert item["replacements"] == [{"at": "2026-10-14T21:00:00.000Z", "final_reading": 150.0,
                                     "initial_reading": 0.0, "old_serial": "SN-a", "new_serial": "NEW-1"}]
    # September's end: the old meter's serial, though the registry now shows the new one.
    assert one(reader([meter("a", "1")], rows, events), "a", "2026-09").serial == "SN-a"


def test_replacement_without_new_samples_and_before_the_period() -> None:
    """No sample from the new meter yet: the end is its initial reading; a swap late in September starts October."""
    swap = local(2026, 10, 20)
    rows = [("a.volume_m3", START, 100.0, GOOD), ("a.volume_m3", swap - 60, 120.0, GOOD)]
    events = [event("a", "replacement", swap, final_reading=121.0, initial_reading=3.0, new_serial="N2")]
    got = one(reader([meter("a", "1")], rows, events), "a")
    assert (got.end.value, got.end.ts, got.consumption) == (3.0, swap, 21.0)
    late = local(2026, 9, 29)
    rows = [("a.volume_m3", late - 60, 50.0, GOOD), ("a.volume_m3", END, 7.0, GOOD)]
    events = [event("a", "replacement", late, final_reading=50.0, initial_reading=1.0, new_serial="N3")]
    got = one(reader([meter("a", "1")], rows, events), "a")
    assert (got.start.value, got.start.source, got.consumption, got.replacements) == (1.0, MANUAL, 6.0, ())


def test_average_substitution_and_the_run_of_missing_periods() -> None:
    """Missing October: the average of the last 6 months (59 «б»); a 4th missing month in a row: the norm (п.60)."""
    r = reader([meter("a", "1")], monthly("a.volume_m3", "2026-04", [0, 3, 6, 9, 15, 21, 27]))
    got = one(r, "a")
    sub = got.substitution
    assert got.problem == "no-end-reading" and got.start.value == 27.0
    assert sub.rule == pp354.RULE_59B_AVERAGE and got.consumption == 4.5 and got.source == CALCULATED
    assert sub.months_used == ("2026-04", "2026-05", "2026-06", "2026-07", "2026-08", "2026-09")
    item = got.to_json()
    assert item["rule"] == "pp354-59b-average" and "п. 59 «б»" in item["note"] and item["substituted_period"] == 1
    assert item["months_used"] == list(sub.months_used) and item["reason"] == "no-reading"
    assert "average" in got.to_json("en")["note"]
    december = one(r, "a", "2026-12")
    assert december.substitution.streak == 3 and december.consumption == 4.5
    january = one(r, "a", "2027-01")
    assert january.substitution.rule == pp354.RULE_60_NORM and january.consumption == pytest.approx(4.745 * 2)


def test_expired_verification_is_no_reading() -> None:
    """Readings after next_verification do not count (п.59 «а»): the average, reason verification-expired."""
    rows = monthly("a.volume_m3", "2026-01", [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20])
    r = reader([meter("a", "1", next_verification=date(2026, 10, 20))], rows)
    got = one(r, "a")
    assert got.problem == "verification-expired" and got.end is None and got.start.value == 18.0
    assert got.substitution.rule == pp354.RULE_59A_AVERAGE and got.substitution.reason == "verification-expired"
    assert got.consumption == 2.0
    # Valid through the due date: a due date of 1 November keeps October's closing reading.
    assert one(reader([meter("a", "1", next_verification=date(2026, 11, 1))], rows), "a").consumption == 2.0


def test_decommissioned_negative_and_young_meters() -> None:
    """Decommissioned or going backwards: a failed meter (59 «а»); fewer than 3 months of history: the norm."""
    rows = monthly("d.volume_m3", "2026-01", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    rows += [("n.volume_m3", START, 50.0, GOOD), ("n.volume_m3", END, 40.0, GOOD)]
    rows += monthly("y.volume_m3", "2026-08", [0, 1, 2])
    meters = [meter("d", "1", decommissioned=date(2026, 10, 10)), meter("n", "2"),
              meter("y", "3", installed=date(2026, 8, 1))]
    r = reader(meters, rows)
    d, n, y = run(r.read(meters, P))
    assert d.problem == "decommissioned" and d.substitution.reason == "meter-failed" and d.consumption == 1.0
    # No readings in the 12 months before: a long run, the norm (residents 1).
    assert n.problem == "negative-consumption" and n.substitution.rule == pp354.RULE_60_NORM
    assert n.consumption == pytest.approx(4.745) and n.substitution.reason == "meter-failed"
    # Installed in August: two months of history, too few for an average; an office has no per-person norm.
    assert y.problem == "no-end-reading" and y.substitution.rule == pp354.RULE_NO_NORM
    assert y.consumption is None and y.source == MISSING and y.to_json()["source"] == "missing"


def test_queries_per_boundary_are_shared_and_cached() -> None:
    """Two queries per period for all meters; substitution adds one per history boundary, shared across months."""
    meters = [meter(f"m{i}", "1") for i in range(50)]
    rows = [r for i in range(50) for r in monthly(f"m{i}.volume_m3", "2026-10", [0, 1])]
    rows += monthly("m0.volume_m3", "2025-10", [0, 1, 2])  # m0: 2025-10..12 only → missing now
    rows = [row for row in rows if not (row[0] == "m0.volume_m3" and row[1] >= START)]
    r = reader(meters, rows)
    got = run(r.read(meters, P))
    assert r.queries == 2 + 12  # the period's 2 boundaries, then 12 more months back for m0 (sharing START)
    assert [g.consumption for g in got[1:]] == [1.0] * 49 and got[0].source == CALCULATED
    run(r.read(meters, P))
    assert r.queries == 14  # everything cached


def test_meters_of_the_period() -> None:
    """Installed after the period: out; decommissioned earlier: in while no other meter took over."""
    old = meter("old", "1", decommissioned=date(2026, 6, 1))
    new = meter("new", "1", installed=date(2026, 6, 1))
    late = meter("late", "2", installed=date(2026, 11, 1))
    gone = meter("gone", "2", decommissioned=date(2026, 1, 1), resource="hot_water")
    r = reader([old, new, late, gone], [])
    assert [m.id for m in (old, new, late, gone) if r.in_period(m, P)] == ["new", "gone"]
    assert r.in_period(old, "2026-05") and not r.in_period(new, "2026-05")
