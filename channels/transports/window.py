# -*- test-case-name: tests.channels.test_window -*-
"""Connection windows: when a TCP link to a modem may be connected.

A site that reaches a GPRS modem or an Ethernet converter in server mode
may want to connect only once a day, to read the meters' archives and keep
the mobile traffic bill small.  The ``connect`` key of a TCP transport says
when::

    connect: "daily 01:00-01:30"
    connect: "daily 23:30-00:30"                      # runs past midnight
    connect: "daily 01:00-01:30, daily 13:00-13:15"   # several windows
    connect: "always"                                  # no window (the default)

Times are wall-clock times in the site's time zone.  An end that is not
after the start runs into the next day; ``24:00`` is accepted as an end.
Overlapping or touching windows count as one (the link is not dropped and
redialled at the seam).

Daylight saving time.  A window opens at the first moment of its local day
whose wall clock reads the opening time or later, and closes likewise at the
first moment reading its closing time or later:

- an opening time the clock skips (spring forward) opens at the jump;
- a window lying wholly inside the skipped hour opens at the jump and lasts
  its nominal length, so no day goes without a connection;
- a time the clock passes twice (fall back) counts on its first pass, so a
  window opens once per day; ``01:00-03:00`` on that night lasts three hours.

This module is pure: no Twisted, no I/O, time comes in as Unix seconds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Iterator
from zoneinfo import ZoneInfo

DAY_MIN = 24 * 60

_ITEM = re.compile(r"^daily\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
_EXPECTED = "expected 'daily HH:MM-HH:MM' (several separated by commas) or 'always'"

#: How many local days to look ahead for the end of a run of windows before
#: calling it endless: windows repeat daily, so a run that covers a week
#: covers every day (a union of windows that fills the whole day).
_LOOKAHEAD_DAYS = 9


@dataclass(frozen=True)
class ConnectWindow:
    """Daily wall-clock windows; no spans means always open.

    ``spans`` holds ``(start, end)`` in minutes after local midnight, with
    ``0 <= start < 1440`` and ``0 < end <= 1440``; ``end <= start`` means the
    window runs into the next day.  Build it with :func:`parse_window`.
    """

    text: str
    spans: tuple[tuple[int, int], ...] = ()

    @cached_property
    def always(self) -> bool:
        """Tell whether the window is open at every moment (``always``, or spans that fill the day)."""
        if not self.spans:
            return True
        covered = [False] * DAY_MIN
        for start, end in self.spans:
            for minute in range(start, start + _length(start, end)):
                covered[minute % DAY_MIN] = True
        return all(covered)

    def describe(self) -> str:
        """Return the window in its canonical form, e.g. ``"daily 01:00-01:30"`` or ``"always"``."""
        if not self.spans:
            return "always"
        return ", ".join(f"daily {_hhmm(start)}-{_hhmm(end)}" for start, end in self.spans)

    def contains(self, t_utc: float, tz: tzinfo | str | None) -> bool:
        """Tell whether Unix time ``t_utc`` is inside the window.

        ``tz`` (here and below): the zone whose wall clock the window is read
        in, as a tzinfo or a zone name; ``None`` is UTC.
        """
        if self.always:
            return True
        opens, closes = self._run_at_or_after(t_utc, tz)
        return opens <= t_utc < closes

    def next_open(self, t_utc: float, tz: tzinfo | str | None) -> float:
        """Return the first moment at or after ``t_utc`` inside the window (``t_utc`` itself when inside)."""
        if self.always:
            return t_utc
        opens, _closes = self._run_at_or_after(t_utc, tz)
        return max(opens, t_utc)

    def next_close(self, t_utc: float, tz: tzinfo | str | None) -> float:
        """Return when the window that contains ``t_utc`` (or, outside, the next one) ends.

        The end itself is outside the window.  ``math.inf`` when the window
        never closes.
        """
        if self.always:
            return math.inf
        _opens, closes = self._run_at_or_after(t_utc, tz)
        return closes

    # ------------------------------------------------------------ internals

    def _run_at_or_after(self, t_utc: float, tz: tzinfo | str | None) -> tuple[float, float]:
        """Return ``(opens, closes)`` of the first run of merged windows that ends after ``t_utc``."""
        zone = _zone(tz)
        today = datetime.fromtimestamp(t_utc, zone).date()
        run: list[float] | None = None
        # A window lasts under a day (plus a DST hour), so one that opened two
        # local days ago has closed by now; starting there catches yesterday's
        # window that runs past midnight.
        for opens, closes in self._occurrences(today - timedelta(days=2), zone):
            if run is not None and opens <= run[1]:
                run[1] = max(run[1], closes)
                continue
            if run is not None and run[1] > t_utc:
                return run[0], run[1]
            run = [opens, closes]
        # Only reached when the windows join into one run for the whole
        # look-ahead: they fill the day and never close.
        assert run is not None
        return run[0], math.inf

    def _occurrences(self, first: date, zone: tzinfo) -> Iterator[tuple[float, float]]:
        """Yield ``(opens, closes)`` of every window, day by day from ``first``, ordered by opening."""
        for n in range(_LOOKAHEAD_DAYS + 2):
            day = first + timedelta(days=n)
            found = []
            for start, end in self.spans:
                length = _length(start, end)
                opens = _instant(day, start, zone)
                closes = _instant(day, start + length, zone)
                if closes <= opens:
                    # Wholly inside a skipped hour: keep the nominal length.
                    closes = opens + length * 60.0
                found.append((opens, closes))
            # Every opening of a day falls within that local day, so sorting
            # day by day orders them all.
            yield from sorted(found)


def _zone(tz: tzinfo | str | None) -> tzinfo:
    """Return ``tz`` as a tzinfo: UTC for None, a ZoneInfo for a zone name."""
    if tz is None:
        return timezone.utc
    if isinstance(tz, str):
        return ZoneInfo(tz)
    return tz


def _length(start: int, end: int) -> int:
    """Return a span's length in minutes (1..1440)."""
    return (end - start) % DAY_MIN or DAY_MIN


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _instant(day: date, minute: int, zone: tzinfo) -> float:
    """Return the first moment whose wall clock in ``zone`` reads ``minute`` after ``day``'s midnight or later.

    ``minute`` may exceed a day (a window running past midnight).
    """
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    # fold=0 is the first pass of a repeated hour (PEP 495).
    after = wall.replace(tzinfo=zone, fold=0).timestamp()
    if _wall(after, zone) == wall:
        return after
    # ``wall`` is skipped by a forward jump.  With fold=0 the pre-jump offset
    # maps it past the jump, with fold=1 the post-jump offset before it; the
    # jump itself (the first moment reading later than ``wall``) lies between.
    before = math.floor(wall.replace(tzinfo=zone, fold=1).timestamp())
    later = math.ceil(after)
    if _wall(before, zone) >= wall:
        # A zone whose fold is not PEP 495 aware: take the pre-jump reading.
        return after
    while later - before > 1:
        middle = (before + later) // 2
        if _wall(middle, zone) >= wall:
            later = middle
        else:
            before = middle
    return float(later)


def _wall(t_utc: float, zone: tzinfo) -> datetime:
    return datetime.fromtimestamp(t_utc, zone).replace(tzinfo=None)


def _minute(hour: str, minute: str, text: str, item: str, *, end: bool) -> int:
    h, m = int(hour), int(minute)
    if m > 59 or h > 24 or (h == 24 and (m or not end)):
        limit = "00:00-24:00" if end else "00:00-23:59"
        raise ValueError(f"connection window {text!r}: {item!r} has a time that is not a time of day "
                         f"({limit}); {_EXPECTED}")
    return h * 60 + m


def parse_window(text: str) -> ConnectWindow:
    """Parse a ``connect`` value such as ``"daily 01:00-01:30"``.

    Raise :class:`ValueError` naming the text and what is expected.
    ``"always"`` gives a window with no spans (``window.always`` is true);
    a caller may then use no window at all.
    """
    if not isinstance(text, str):
        raise ValueError(f"connection window {text!r} is not text; {_EXPECTED}")
    raw = text.strip().lower()
    if not raw:
        raise ValueError(f"connection window {text!r} is empty; {_EXPECTED}")
    if raw == "always":
        return ConnectWindow(text)
    spans: list[tuple[int, int]] = []
    for item in raw.split(","):
        item = " ".join(item.split())
        if item == "always":
            raise ValueError(f"connection window {text!r}: 'always' cannot be combined with other windows")
        match = _ITEM.match(item)
        if match is None:
            raise ValueError(f"connection window {text!r}: cannot read {item!r}; {_EXPECTED}")
        start = _minute(match.group(1), match.group(2), text, item, end=False)
        end = _minute(match.group(3), match.group(4), text, item, end=True)
        if start == end % DAY_MIN and end != DAY_MIN:
            raise ValueError(f"connection window {text!r}: {item!r} starts and ends at the same time; "
                             "give a range like 'daily 01:00-01:30', or 'always'")
        spans.append((start, end))
    return ConnectWindow(text, tuple(spans))
