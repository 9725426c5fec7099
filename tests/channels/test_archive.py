"""Archive boundaries, the in-memory archive book and the bus turn (channels/archive.py)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from channels.archive import (
    MONTH,
    ArchiveTurn,
    MemoryArchiveBook,
    boundaries,
    floor_boundary,
    interval_seconds,
    interval_text,
    standard_offset,
    step_boundary,
)
from tags.timefmt import iso_utc, parse_iso

MSK = 3 * 3600


def iso(ts: float) -> str:
    return iso_utc(ts)[:19]


def test_standard_offset_ignores_daylight_saving():
    """The standard offset, whatever the season: Moscow +3 h, Berlin +1 h, UTC 0, a half-hour zone."""
    assert standard_offset("Europe/Moscow") == standard_offset(None) == MSK
    assert standard_offset(ZoneInfo("Europe/Berlin")) == 3600
    assert standard_offset("UTC") == 0
    assert standard_offset("Asia/Kolkata") == 19800


def test_interval_text_and_seconds():
    """Intervals print as the config writes them."""
    assert [interval_text(i) for i in (900.0, 3600.0, 86400.0, 90.0, 7200.0, MONTH)] == [
        "15m", "1h", "1d", "90s", "2h", "month"]
    assert interval_seconds(MONTH) is None and interval_seconds(3600.0) == 3600.0


def test_hourly_boundaries_are_whole_hours():
    """A record closing exactly at t is closed at t; hours are the same in Moscow and UTC."""
    t = parse_iso("2026-11-21T12:00:00Z")
    assert floor_boundary(t, 3600.0, MSK) == t
    assert floor_boundary(t - 0.001, 3600.0, MSK) == t - 3600
    assert iso(step_boundary(t, 3600.0, MSK, -3)) == "2026-11-21T09:00:00"


def test_daily_boundaries_are_local_midnight():
    """Moscow days close at 21:00 UTC."""
    t = parse_iso("2026-11-21T12:00:00Z")
    assert iso(floor_boundary(t, 86400.0, MSK)) == "2026-11-20T21:00:00"
    assert iso(floor_boundary(parse_iso("2026-11-21T21:00:00Z"), 86400.0, MSK)) == "2026-11-21T21:00:00"
    assert iso(floor_boundary(t, 86400.0, 0)) == "2026-11-21T00:00:00"


def test_monthly_boundaries_are_the_first_at_local_midnight():
    """Calendar months in site time, across the turn of the year, in both directions."""
    t = parse_iso("2026-11-21T12:00:00Z")
    first = floor_boundary(t, MONTH, MSK)
    assert iso(first) == "2026-10-31T21:00:00"  # 2026-11-01 00:00 Moscow
    assert [iso(step_boundary(first, MONTH, MSK, n)) for n in (-11, -10, 1, 2)] == [
        "2025-11-30T21:00:00", "2025-12-31T21:00:00", "2026-11-30T21:00:00", "2026-12-31T21:00:00"]
    # A moment before local midnight on the 1st still belongs to the month before.
    assert iso(floor_boundary(parse_iso("2026-10-31T20:59:59Z"), MONTH, MSK)) == "2026-09-30T21:00:00"


def test_boundaries_in_a_range():
    """Every boundary b with start <= b < end."""
    start, end = parse_iso("2026-11-21T10:30:00Z"), parse_iso("2026-11-21T13:00:00Z")
    assert [iso(b) for b in boundaries(start, end, 3600.0, MSK)] == [
        "2026-11-21T11:00:00", "2026-11-21T12:00:00"]
    assert boundaries(end, end, 3600.0, MSK) == []
    days = boundaries(parse_iso("2026-11-19T00:00:00Z"), parse_iso("2026-11-21T00:00:00Z"), 86400.0, MSK)
    assert [iso(b) for b in days] == ["2026-11-19T21:00:00", "2026-11-20T21:00:00"]


def test_memory_book_only_moves_forward():
    """stored() never moves an entry back; unknown entries are None."""
    book = MemoryArchiveBook()
    assert book.newest("m1", "hourly") is None and book.archives("m1") == []
    book.stored("m1", "hourly", 100.0)
    book.stored("m1", "hourly", 50.0)
    book.stored("m1", "daily", 10.0)
    assert book.newest("m1", "hourly") == 100.0
    assert book.archives("m1") == ["daily", "hourly"]
    book.save()
    assert book.saves == 1


def test_turn_is_first_come_first_served_and_passes_on():
    """One holder at a time; pass_on sends the holder to the back; release leaves the line."""
    turn = ArchiveTurn()
    a, b, c = object(), object(), object()
    for device in (a, b, a, c):
        turn.request(device)
    assert turn.waiting == [a, b, c]
    assert turn.may_read(a) and not turn.may_read(b)
    turn.pass_on(a)
    assert turn.waiting == [b, c, a] and turn.may_read(b)
    turn.release(b)
    turn.release(b)
    assert turn.waiting == [c, a]


@pytest.mark.parametrize("interval", [900.0, 3600.0, 86400.0, MONTH])
def test_step_and_floor_agree(interval):
    """Stepping back from a boundary and flooring the moment before it give the same boundary."""
    b = floor_boundary(parse_iso("2026-03-15T10:17:00Z"), interval, MSK)
    for _ in range(30):
        before = step_boundary(b, interval, MSK, -1)
        assert floor_boundary(b - 1, interval, MSK) == before
        b = before
