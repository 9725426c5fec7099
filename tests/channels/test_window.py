"""Tests for channels.transports.window: parsing, daily windows, midnight, DST."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.transports.window import ConnectWindow, parse_window

MOSCOW = ZoneInfo("Europe/Moscow")  # UTC+3 all year, no DST
BERLIN = ZoneInfo("Europe/Berlin")  # DST: 2024-03-31 02:00→03:00, 2024-10-27 03:00→02:00
UTC = timezone.utc


def at(zone, *fields) -> float:
    """Return the Unix time of a wall-clock time in ``zone`` (first pass of a repeated hour)."""
    return datetime(*fields, tzinfo=zone).timestamp()


def local(t: float, zone) -> str:
    """Return ``t`` as local ISO text with offset, for readable assertions."""
    return datetime.fromtimestamp(t, zone).isoformat()


# ------------------------------------------------------------------ parsing

@pytest.mark.parametrize("text, spans, canonical", [
    ("daily 01:00-01:30", ((60, 90),), "daily 01:00-01:30"),
    ("  Daily  1:00 - 01:30 ", ((60, 90),), "daily 01:00-01:30"),
    ("daily 23:30-00:30", ((1410, 30),), "daily 23:30-00:30"),
    ("daily 01:00-01:30, daily 13:00-13:15", ((60, 90), (780, 795)), "daily 01:00-01:30, daily 13:00-13:15"),
    ("daily 22:00-24:00", ((1320, 1440),), "daily 22:00-24:00"),
    ("daily 00:00-24:00", ((0, 1440),), "daily 00:00-24:00"),
])
def test_parse_good(text, spans, canonical):
    """Good texts give their spans in minutes and a canonical description."""
    window = parse_window(text)
    assert window.spans == spans
    assert window.describe() == canonical
    assert window.text == text


def test_parse_always():
    """'always' is a window without spans, open at every moment and never closing."""
    window = parse_window(" Always ")
    assert window.spans == () and window.always and window.describe() == "always"
    t = at(MOSCOW, 2024, 5, 1, 12, 0)
    assert window.contains(t, MOSCOW) and window.next_open(t, MOSCOW) == t
    assert window.next_close(t, MOSCOW) == math.inf


def test_windows_that_fill_the_day_are_always():
    """Windows whose union is the whole day never close."""
    assert parse_window("daily 00:00-24:00").always
    assert parse_window("daily 00:00-12:00, daily 11:00-00:00").always
    assert not parse_window("daily 00:00-12:00, daily 12:01-00:00").always


@pytest.mark.parametrize("text, fragment", [
    ("", "is empty"),
    ("   ", "is empty"),
    ("daily", "cannot read 'daily'"),
    ("daily 01:00", "cannot read"),
    ("1:00-2:00", "cannot read '1:00-2:00'"),
    ("mon-fri 01:00-02:00", "cannot read 'mon-fri 01:00-02:00'"),
    ("daily 01-02", "cannot read 'daily 01-02'"),
    ("daily 25:00-01:00", "not a time of day (00:00-23:59)"),
    ("daily 24:00-01:00", "not a time of day (00:00-23:59)"),
    ("daily 01:00-24:01", "not a time of day (00:00-24:00)"),
    ("daily 01:60-02:00", "not a time of day"),
    ("daily 01:00-01:00", "starts and ends at the same time"),
    ("daily 00:00-00:00", "starts and ends at the same time"),
    ("daily 01:00-01:30,", "cannot read ''"),
    ("daily 01:00-01:30, always", "'always' cannot be combined"),
    (42, "is not text"),
])
def test_parse_bad(text, fragment):
    """Bad texts raise ValueError naming the text and, where it fits, what is expected."""
    with pytest.raises(ValueError) as caught:
        parse_window(text)
    message = str(caught.value)
    assert fragment in message
    assert repr(text) in message
    if "same time" not in message and "combined" not in message:
        assert "expected 'daily HH:MM-HH:MM'" in message


# ------------------------------------------------------- contains / next_*

def test_simple_window_in_moscow():
    """01:00-01:30 Moscow time: the bounds are [open, close), and the next day follows."""
    window = parse_window("daily 01:00-01:30")
    opens = at(MOSCOW, 2024, 5, 1, 1, 0)
    closes = at(MOSCOW, 2024, 5, 1, 1, 30)
    assert opens == datetime(2024, 4, 30, 22, 0, tzinfo=UTC).timestamp()
    before = opens - 1
    assert not window.contains(before, MOSCOW)
    assert window.next_open(before, MOSCOW) == opens
    assert window.next_close(before, MOSCOW) == closes
    assert window.contains(opens, MOSCOW) and window.next_open(opens, MOSCOW) == opens
    assert window.contains(closes - 0.001, MOSCOW)
    assert window.next_close(opens + 600, MOSCOW) == closes
    assert not window.contains(closes, MOSCOW)
    assert window.next_open(closes, MOSCOW) == opens + 86400
    assert window.next_close(closes, MOSCOW) == closes + 86400


def test_tz_none_means_utc():
    """Without a zone the wall clock is UTC."""
    window = parse_window("daily 01:00-01:30")
    t = at(UTC, 2024, 5, 1, 1, 10)
    assert window.contains(t, None) and window.next_close(t, None) == at(UTC, 2024, 5, 1, 1, 30)


def test_window_across_midnight():
    """23:30-00:30 is open late in the evening and just after midnight, as one window."""
    window = parse_window("daily 23:30-00:30")
    opens = at(MOSCOW, 2024, 5, 1, 23, 30)
    assert window.contains(at(MOSCOW, 2024, 5, 1, 23, 45), MOSCOW)
    assert window.contains(at(MOSCOW, 2024, 5, 2, 0, 15), MOSCOW)
    assert not window.contains(at(MOSCOW, 2024, 5, 2, 0, 30), MOSCOW)
    assert not window.contains(at(MOSCOW, 2024, 5, 1, 12, 0), MOSCOW)
    # Just after midnight: the window opened yesterday.
    assert window.next_close(at(MOSCOW, 2024, 5, 2, 0, 10), MOSCOW) == at(MOSCOW, 2024, 5, 2, 0, 30)
    assert window.next_open(at(MOSCOW, 2024, 5, 1, 12, 0), MOSCOW) == opens
    assert window.next_close(at(MOSCOW, 2024, 5, 1, 12, 0), MOSCOW) == opens + 3600


def test_several_windows():
    """Two windows a day: each opens and closes in turn."""
    window = parse_window("daily 13:00-13:15, daily 01:00-01:30")
    t = at(MOSCOW, 2024, 5, 1, 2, 0)
    assert window.next_open(t, MOSCOW) == at(MOSCOW, 2024, 5, 1, 13, 0)
    assert window.next_close(t, MOSCOW) == at(MOSCOW, 2024, 5, 1, 13, 15)
    t = at(MOSCOW, 2024, 5, 1, 14, 0)
    assert window.next_open(t, MOSCOW) == at(MOSCOW, 2024, 5, 2, 1, 0)
    assert window.next_close(t, MOSCOW) == at(MOSCOW, 2024, 5, 2, 1, 30)


def test_touching_and_overlapping_windows_are_one():
    """Windows that touch or overlap close only at the end of the last one."""
    window = parse_window("daily 01:00-02:00, daily 02:00-03:00, daily 02:30-04:00")
    t = at(MOSCOW, 2024, 5, 1, 1, 10)
    assert window.next_close(t, MOSCOW) == at(MOSCOW, 2024, 5, 1, 4, 0)
    assert window.contains(at(MOSCOW, 2024, 5, 1, 2, 0), MOSCOW)
    crossing = parse_window("daily 23:00-01:00, daily 00:30-02:00")
    assert crossing.next_close(at(MOSCOW, 2024, 5, 1, 23, 30), MOSCOW) == at(MOSCOW, 2024, 5, 2, 2, 0)


def test_window_to_24():
    """An end of 24:00 is the next midnight."""
    window = parse_window("daily 22:00-24:00")
    assert window.next_close(at(MOSCOW, 2024, 5, 1, 23, 0), MOSCOW) == at(MOSCOW, 2024, 5, 2, 0, 0)


# ---------------------------------------------------------------------- DST

def test_dst_opening_in_the_skipped_hour_opens_at_the_jump():
    """Berlin spring forward: an opening at 02:30 (skipped) opens at the jump, 03:00 CEST."""
    window = parse_window("daily 02:30-04:00")
    t = at(BERLIN, 2024, 3, 30, 12, 0)
    assert local(window.next_open(t, BERLIN), BERLIN) == "2024-03-31T03:00:00+02:00"
    assert local(window.next_close(t, BERLIN), BERLIN) == "2024-03-31T04:00:00+02:00"
    # The day after, back to normal.
    t = at(BERLIN, 2024, 3, 31, 12, 0)
    assert local(window.next_open(t, BERLIN), BERLIN) == "2024-04-01T02:30:00+02:00"


def test_dst_window_inside_the_skipped_hour_keeps_its_length():
    """A window wholly in the skipped hour opens at the jump and lasts its nominal length."""
    window = parse_window("daily 02:10-02:40")
    t = at(BERLIN, 2024, 3, 30, 12, 0)
    opens = window.next_open(t, BERLIN)
    assert local(opens, BERLIN) == "2024-03-31T03:00:00+02:00"
    assert window.next_close(t, BERLIN) - opens == 30 * 60


def test_dst_window_ending_in_the_skipped_hour_ends_at_the_jump():
    """01:30-02:30 on the spring-forward night lasts half an hour: the clock skips 02:00-03:00."""
    window = parse_window("daily 01:30-02:30")
    t = at(BERLIN, 2024, 3, 30, 12, 0)
    assert window.next_close(t, BERLIN) - window.next_open(t, BERLIN) == 30 * 60


def test_dst_repeated_hour_counts_once():
    """Berlin fall back: 02:00-02:30 opens on the first pass only; 01:00-03:00 lasts three hours."""
    window = parse_window("daily 02:00-02:30")
    t = at(BERLIN, 2024, 10, 26, 12, 0)
    opens = window.next_open(t, BERLIN)
    assert local(opens, BERLIN) == "2024-10-27T02:00:00+02:00"
    closes = window.next_close(t, BERLIN)
    assert local(closes, BERLIN) == "2024-10-27T02:30:00+02:00"
    # The second pass of 02:15 (CET) is outside; the next opening is tomorrow.
    second_pass = opens + 3600 + 15 * 60
    assert local(second_pass, BERLIN) == "2024-10-27T02:15:00+01:00"
    assert not window.contains(second_pass, BERLIN)
    assert local(window.next_open(second_pass, BERLIN), BERLIN) == "2024-10-28T02:00:00+01:00"
    long = parse_window("daily 01:00-03:00")
    assert long.next_close(t, BERLIN) - long.next_open(t, BERLIN) == 3 * 3600


# --------------------------------------------------------------- properties

WINDOWS = st.lists(
    st.tuples(st.integers(0, 1439), st.integers(1, 1440)).filter(lambda s: s[0] != s[1] % 1440),
    min_size=1, max_size=3,
).map(lambda spans: ConnectWindow("generated", tuple(spans)))
ZONES = st.sampled_from([MOSCOW, BERLIN, UTC, ZoneInfo("America/New_York"), ZoneInfo("Australia/Lord_Howe")])
# 2023-2026, covering several DST changes in both hemispheres.
TIMES = st.floats(1672531200.0, 1798761600.0, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(window=WINDOWS, zone=ZONES, t=TIMES)
def test_property_next_open_and_close_agree_with_contains(window, zone, t):
    """next_open(t) >= t is inside; next_close is the first moment after it outside; contains matches."""
    if window.always:
        assert window.contains(t, zone) and window.next_close(t, zone) == math.inf
        return
    opens = window.next_open(t, zone)
    closes = window.next_close(t, zone)
    assert t <= opens < closes < math.inf
    assert window.contains(opens, zone)
    assert not window.contains(closes, zone)
    assert window.contains((opens + closes) / 2, zone)
    assert window.contains(t, zone) == (opens == t)
    if opens > t:
        # Nothing in between is inside (when floats have room for a between).
        between = (t + opens) / 2
        if t < between < opens:
            assert not window.contains(between, zone)
            assert window.next_open(between, zone) == opens
    else:
        between = (t + closes) / 2
        if between < closes:
            assert window.next_close(between, zone) == closes
    # A window opens at least once a day (plus a DST hour).
    assert opens - t <= 25 * 3600
