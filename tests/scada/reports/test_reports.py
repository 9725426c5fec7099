"""Reports over a tiny registry and SQLite history: units, the catalogue, intervals, balance with replacements."""

from __future__ import annotations

from datetime import date

import pytest

from scada.billing.readings import PeriodReader
from scada.registry import Premises
from scada.reports import i18n, units
from scada.reports.balance import balance_report, boundaries
from scada.reports.ipu import ipu_report, premises_order
from tags.quality import Quality
from tests.scada.billing.fixtures import TZ, building, event, history, local, meter, registry, run

P = "2026-10"


def test_units() -> None:
    """kWh ↔ Gcal at 0.000859845, litres to m3; unrelated units refuse."""
    gcal, kwh = units.heat(1163.0, "kWh")
    assert gcal == pytest.approx(1.0, rel=1e-4) and kwh == 1163.0
    assert units.heat(2.0, "Gcal")[1] == pytest.approx(2 / 0.000859845)
    assert units.heat(1.0, "GJ")[0] == pytest.approx(0.238846)
    assert units.convert(1500.0, "l", "m3") == pytest.approx(1.5) and units.convert(None, "l", "m3") is None
    assert units.heat(1.0, "m3") == (None, None)
    with pytest.raises(ValueError, match="'m3' to 'kWh'"):
        units.factor("m3", "kWh")


def test_catalogue() -> None:
    """Both languages have the same keys; unknown keys show as themselves; times per language."""
    assert set(i18n.CATALOGUE["ru"]) - set(i18n.CATALOGUE["en"]) <= {"m3", "l", "kWh", "Wh", "MWh", "Gcal", "GJ"}
    assert set(i18n.CATALOGUE["en"]) <= set(i18n.CATALOGUE["ru"])
    assert i18n.text("cold_water") == "Холодная вода" and i18n.text("cold_water", "en") == "Cold water"
    assert i18n.text("new-code", "en") == "new-code" and i18n.text(None) == ""
    assert i18n.language("de") == "ru" and i18n.language("en") == "en"
    ts = local(2026, 10, 1)
    assert i18n.moment(ts, "ru", TZ) == "01.10.2026 00:00:00" and i18n.moment(ts, "en", TZ) == "2026-09-30T21:00:00.000Z"


def test_boundaries_follow_the_local_clock() -> None:
    """Days are local midnights (23 or 25 hours across a DST change); hours count the period's real hours."""
    reader = PeriodReader(registry([]), history(), "Europe/Berlin")
    days = boundaries(reader, P, "day")
    steps = [b - a for a, b in zip(days, days[1:])]
    assert len(days) == 32 and steps[24] == 25 * 3600 and set(steps[:24]) == {86400}  # 25 October: clocks go back
    assert len(boundaries(reader, P, "hour")) == 31 * 24 + 2
    assert boundaries(reader, P, "month") == list(reader.bounds(P))


def test_premises_order() -> None:
    """2 before 10, 10 before 10а, numbers before names."""
    assert sorted(["10а", "2", "10", "кладовая", "1"], key=premises_order) == ["1", "2", "10", "10а", "кладовая"]


def test_balance_with_a_replacement_and_litres() -> None:
    """A replacement inside a day counts (final − before) + (after − initial); a meter in litres is converted."""
    start = local(2026, 10, 1)
    swap = start + 36 * 3600  # 2 October, 12:00
    rows = []
    for h in range(31 * 24 + 1):
        ts = start + h * 3600
        rows.append(("odpu.volume_m3", ts, 1000.0 + 0.033 * h, Quality.GOOD))
        rows.append(("a.volume_m3", ts, (100.0 + 0.01 * h) if ts < swap else (0.01 * (h - 36)), Quality.GOOD))
        rows.append(("b.volume_l", ts, 20.0 * h, Quality.GOOD))
    meters = [meter("odpu", None), meter("a", "1"), meter("b", "2", tag="b.volume_l", unit="l")]
    events = [event("a", "replacement", swap, final_reading=100.36, initial_reading=0.0, new_serial="A2")]
    premises = [Premises("b1", "1", "7700000101", 50.0, 2), Premises("b1", "2", "7700000102", 50.0, 2)]
    reg = registry([building("b1", premises, meters)], events)
    report = run(balance_report(PeriodReader(reg, history(rows)), "b1", P, "day"))
    (group,) = report["groups"]
    days = group["items"]
    assert len(days) == 31
    for item in days:
        assert item["ipu_sum"] == pytest.approx(0.24 + 0.48) and item["odpu"] == pytest.approx(0.792)
        assert item["imbalance"] == pytest.approx(0.072) and item["completeness"] == 1.0
    assert group["totals"]["ipu_sum"] == pytest.approx(31 * 0.72)
    ipu = run(ipu_report(PeriodReader(reg, history(rows)), "b1", P))
    assert [i["source"] for i in ipu["items"]] == ["manual", "measured"]
    assert ipu["items"][0]["consumption"] == pytest.approx(7.44) and ipu["items"][0]["serial"] == "A2"


def test_month_balance_counts_substituted_volumes() -> None:
    """In the month interval a silent apartment meter is billed by ПП 354 and shows as substituted."""
    start, end = local(2026, 10, 1), local(2026, 11, 1)
    rows = [("odpu.volume_m3", start, 0.0, Quality.GOOD), ("odpu.volume_m3", end, 10.0, Quality.GOOD),
            ("a.volume_m3", start, 0.0, Quality.GOOD), ("a.volume_m3", end, 4.0, Quality.GOOD)]
    meters = [meter("odpu", None), meter("a", "1"), meter("b", "2", installed=date(2020, 1, 1))]
    premises = [Premises("b1", "1", "7700000101", 50.0, 2), Premises("b1", "2", "7700000102", 50.0, 1)]
    reg = registry([building("b1", premises, meters)])
    (group,) = run(balance_report(PeriodReader(reg, history(rows)), "b1", P, "month"))["groups"]
    totals = group["totals"]
    assert totals["substituted"] == pytest.approx(4.745) and totals["ipu_sum"] == pytest.approx(8.745)
    assert totals["completeness"] == 0.5 and totals["imbalance"] == pytest.approx(1.255)
    with pytest.raises(ValueError, match="interval='week'"):
        run(balance_report(PeriodReader(reg, history(rows)), "b1", P, "week"))


def test_interval_sources_use_the_billing_order() -> None:
    """The vectorised worse-of-two in the balance report agrees with `worst` for every pair of sources."""
    from itertools import product

    from scada.billing.readings import worst
    from scada.reports.balance import _BADNESS

    for a, b in product(range(1, 5), repeat=2):
        assert (a if _BADNESS[a] >= _BADNESS[b] else b) == worst(a, b)
