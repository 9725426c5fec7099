"""The billing pull: cursor pagination over thousands of accounts, cursors, ГИС ЖКХ rows."""

from __future__ import annotations

import math
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scada.billing import pull
from scada.billing.readings import PeriodReader
from scada.registry import Premises
from tags.quality import Quality
from tests.scada.billing.fixtures import TZ, building, history, local, meter, registry, run

P = "2026-10"
START, END = local(2026, 10), local(2026, 11)


def big_site(accounts: int, buildings: int = 4):
    """``accounts`` premises over a few buildings, each with cold water, every 7th with hot water too.

    Every 11th account's cold-water meter was installed after the period (not in the pull); history has
    both boundary readings of every meter (consumption = 1 + account index % 5).
    """
    blds, rows, expected = [], [], set()
    per = math.ceil(accounts / buildings)
    for b in range(buildings):
        premises, meters = [], []
        for i in range(b * per, min(accounts, (b + 1) * per)):
            account = f"77{(i * 7919) % 10_000_000:08d}"  # not in configuration order
            number = str(i - b * per + 1)
            premises.append(Premises(f"b{b}", number, account, 50.0, 2))
            late = i % 11 == 10
            ids = [f"c{i}"] + ([f"h{i}"] if i % 7 == 0 else [])
            for mid in ids:
                meters.append(meter(mid, number, "hot_water" if mid[0] == "h" else "cold_water", f"b{b}",
                                    installed=date(2026, 11, 5) if late and mid[0] == "c" else date(2020, 1, 1)))
                rows.append((f"{mid}.volume_m3", START, 100.0, Quality.GOOD))
                rows.append((f"{mid}.volume_m3", END, 101.0 + i % 5, Quality.GOOD))
                if not (late and mid[0] == "c"):
                    expected.add((account, mid))
        blds.append(building(f"b{b}", premises, meters))
    return registry(blds), history(rows), expected


def walk(reader: PeriodReader, limit: int, building: str | None = None) -> list:
    """Page through the whole period; return every reading in order, checking cursors round-trip."""
    out, after, pages = [], None, 0
    while True:
        items, after = run(pull.page(reader, P, after=after, limit=limit, building=building))
        assert len(items) <= limit
        out.extend(items)
        pages += 1
        if after is None:
            return out
        cursor = pull.encode_cursor(P, after)
        assert pull.decode_cursor(cursor, P) == after


def test_every_account_exactly_once_over_thousands() -> None:
    """2,000 accounts in pages of 1,000: each (account, meter) once, in order, with consistent readings."""
    reg, hist, expected = big_site(2000)
    reader = PeriodReader(reg, hist, TZ)
    got = walk(reader, 1000)
    keys = [(r.account, r.meter.id) for r in got]
    assert keys == sorted(expected)
    assert all(r.end.value - r.start.value == r.consumption and r.source == 1 for r in got)
    assert {r.account for r in got} == {k[0] for k in expected}
    # Two historian queries per page: the page's meters only, never the whole period.
    assert reader.queries == 2 * math.ceil(len(pull.account_index(reg)) / 1000)
    assert pull.count(reader, P) == len(expected)


_SMALL = big_site(150, buildings=3)


@settings(max_examples=40, deadline=None)
@given(limit=st.integers(1, 60), building=st.sampled_from([None, "b0", "b2"]))
def test_pages_of_any_size_cover_the_period(limit: int, building: str | None) -> None:
    """Whatever the page size, the pages concatenated are the whole pull, each key once, in order."""
    reg, hist, expected = _SMALL
    got = walk(PeriodReader(reg, hist, TZ), limit, building)
    keys = [(r.account, r.meter.id) for r in got]
    assert keys == sorted(k for k in expected if building is None or reg.meter(k[1]).building == building)


def test_cursor_is_stable_when_the_registry_changes_between_pages() -> None:
    """Keyset pagination: accounts added before the cursor are not seen again, none after it is lost."""
    reg, hist, expected = big_site(50, buildings=1)
    reader = PeriodReader(reg, hist, TZ)
    first, after = run(pull.page(reader, P, limit=20))
    bigger, _, more = big_site(60, buildings=1)
    rest = walk_from(PeriodReader(bigger, hist, TZ), after)
    seen = [(r.account, r.meter.id) for r in first + rest]
    assert len(seen) == len(set(seen)) and set(expected) <= set(seen)


def walk_from(reader: PeriodReader, after) -> list:
    out = []
    while after is not None:
        items, after = run(pull.page(reader, P, after=after, limit=7))
        out.extend(items)
    return out


@pytest.mark.parametrize("cursor", ["", "!!!", "bm90IGpzb24", "eyJhIjoxfQ", "W10", "x" * 2000])
def test_bad_cursors_are_refused_naming_them(cursor: str) -> None:
    """Not base64, not JSON, not an object with a, m and p: BadCursor (a 400) naming the cursor."""
    with pytest.raises(pull.BadCursor, match="cursor"):
        pull.decode_cursor(cursor, P)


def test_cursor_of_another_period() -> None:
    """A cursor is bound to its period."""
    cursor = pull.encode_cursor("2026-09", ("7700000101", "m1"))
    assert "=" not in cursor and pull.decode_cursor(cursor, "2026-09") == ("7700000101", "m1")
    with pytest.raises(pull.BadCursor, match="belongs to period 2026-09, not 2026-10"):
        pull.decode_cursor(cursor, P)


@pytest.mark.parametrize(("text", "expected"), [(None, 1000), ("", 1000), ("1", 1), ("10000", 10000)])
def test_limits(text, expected) -> None:
    """Default 1000, at most 10000."""
    assert pull.parse_limit(text) == expected


@pytest.mark.parametrize("text", ["0", "10001", "-5", "ten", "1.5"])
def test_bad_limits(text) -> None:
    """Out of range or not a whole number: ValueError naming the value."""
    with pytest.raises(ValueError, match=f"limit={text!r}"):
        pull.parse_limit(text)


def test_tariff_tags() -> None:
    """energy_kwh → energy_t1_kwh...: the tariff registers that exist on the site."""
    m = meter("el", "1", "electricity")
    assert pull.tariff_tags(m, {"el.energy_t1_kwh", "el.energy_t2_kwh"}.__contains__) == [
        "el.energy_t1_kwh", "el.energy_t2_kwh", None]
    assert pull.tariff_tags(meter("w", "1"), lambda name: False) == [None, None, None]
