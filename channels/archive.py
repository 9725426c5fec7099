# -*- test-case-name: tests.channels.test_archive -*-
"""Meter archives, whatever the protocol: interval boundaries, the archive book, the bus turn.

A meter closes an archive record at every *boundary* of its interval
(whole hours, local midnight, the 1st of the month at 00:00 local) and
stamps it with that boundary: the record stamped 13:00 holds the counters
as they stood at 13:00, the end of the 12:00-13:00 interval.  Everything
here uses the site's *standard* local time (UTC plus the zone's offset
outside daylight saving time), as the simulated meters do; Russian zones
have no DST, so for Russian sites this is exact, and elsewhere a meter that
switches to summer time closes its days an hour off.

The *archive book* remembers, per device and archive, the newest record
whose whole walk reached history ("everything up to here is stored"), so
that a back-fill after an outage or a restart reads only what is missing.
The *turn* lets one device of a bus at a time read archive records, which
bounds the bus time archives take however many meters need them (DESIGN
rule 4: current values before archives).

No Twisted here: the drivers of every protocol and the composition root
import it.
"""

from __future__ import annotations

import calendar
import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo

#: The calendar-month interval (``interval: month``).
MONTH = "month"
#: Seconds of a day, the longest fixed interval.
DAY = 86400.0
#: What ``interval`` may be: seconds, or :data:`MONTH`.
Interval = float | str


def standard_offset(tz: tzinfo | str | None) -> int:
    """Return the standard (non-DST) UTC offset in seconds of a zone (a tzinfo, an IANA name, None = Moscow).

    Taken at a fixed winter instant so that the result does not depend on
    when it is asked.
    """
    zone = ZoneInfo(tz or "Europe/Moscow") if tz is None or isinstance(tz, str) else tz
    moment = datetime(2024, 1, 15, tzinfo=timezone.utc).astimezone(zone)
    offset = moment.utcoffset() or timedelta(0)
    return int((offset - (moment.dst() or timedelta(0))).total_seconds())


def interval_seconds(interval: Interval) -> float | None:
    """Return a fixed interval in seconds, None for calendar months."""
    return None if interval == MONTH else float(interval)


def interval_text(interval: Interval) -> str:
    """Return an interval as written in config: ``15m``, ``1h``, ``1d``, ``90s``, ``month``."""
    if interval == MONTH:
        return MONTH
    seconds = float(interval)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _month_start(t: float, offset: float, months: int = 0) -> float:
    """Return 00:00 local (standard time) on the 1st of the month holding ``t``, moved by ``months``."""
    local = datetime.fromtimestamp(t + offset, timezone.utc)
    index = local.year * 12 + local.month - 1 + months
    year, month = divmod(index, 12)
    return calendar.timegm((year, month + 1, 1, 0, 0, 0)) - offset


def floor_boundary(t: float, interval: Interval, offset: float) -> float:
    """Return the newest boundary at or before ``t`` (a record closing exactly at ``t`` is closed)."""
    if interval == MONTH:
        return float(_month_start(t, offset))
    size = float(interval)
    return math.floor((t + offset) / size) * size - offset


def step_boundary(boundary: float, interval: Interval, offset: float, steps: int) -> float:
    """Return the boundary ``steps`` intervals after ``boundary`` (before it when negative)."""
    if interval == MONTH:
        return float(_month_start(boundary, offset, steps))
    return boundary + steps * float(interval)


def boundaries(start: float, end: float, interval: Interval, offset: float) -> list[float]:
    """Return every boundary ``b`` with ``start <= b < end``, oldest first."""
    b = floor_boundary(start, interval, offset)
    if b < start:
        b = step_boundary(b, interval, offset, 1)
    out = []
    while b < end:
        out.append(b)
        b = step_boundary(b, interval, offset, 1)
    return out


@dataclass(frozen=True, slots=True)
class ArchiveSpec:
    """What a device's archive is, for whoever looks for gaps: its name, interval and tags."""

    name: str
    interval: Interval
    tags: tuple[str, ...]


class ArchiveBook(Protocol):
    """The newest archive record stored, per device and archive.

    ``stored`` only ever moves an entry forward; ``save`` makes what was
    stored durable (the composition root's book writes a file, the memory
    book does nothing).  A driver calls ``stored`` only once the records of
    a walk are in history, so the book is never ahead of history.
    """

    def newest(self, device: str, archive: str) -> float | None:
        """Return the time of the newest record stored, None if none ever was."""

    def stored(self, device: str, archive: str, ts: float) -> None:
        """Record that everything of ``archive`` up to ``ts`` is in history."""

    def archives(self, device: str) -> list[str]:
        """Return the names of the device's archives the book knows."""

    def save(self) -> None:
        """Make the entries durable (may do nothing)."""


class MemoryArchiveBook:
    """An :class:`ArchiveBook` that forgets everything when the process ends (tests, and the default)."""

    def __init__(self, entries: dict[str, dict[str, float]] | None = None) -> None:
        """Start with ``entries`` (device → archive → newest time) or empty."""
        self.entries: dict[str, dict[str, float]] = {d: dict(a) for d, a in (entries or {}).items()}
        self.saves = 0

    def newest(self, device: str, archive: str) -> float | None:
        """Return the time of the newest record stored, None if none ever was."""
        return self.entries.get(device, {}).get(archive)

    def stored(self, device: str, archive: str, ts: float) -> None:
        """Move the entry forward to ``ts`` (never back)."""
        archives = self.entries.setdefault(device, {})
        if archive not in archives or ts > archives[archive]:
            archives[archive] = float(ts)

    def archives(self, device: str) -> list[str]:
        """Return the names of the device's archives the book knows."""
        return sorted(self.entries.get(device, {}))

    def save(self) -> None:
        """Count the call; nothing to write."""
        self.saves += 1


class ArchiveTurn:
    """Which device of one bus may read archive records now.

    First come, first served: a device asks for the turn when it has
    archive work, reads at most its per-poll share of records in each of
    its polls while it holds the turn, and gives the turn on after each
    archive walk (going to the back of the line if it has more), or when it
    stops answering.  Archive traffic on a bus is therefore bounded by one
    device's share per poll, however many meters have gaps.
    """

    def __init__(self) -> None:
        """Start with nobody waiting."""
        self._line: deque = deque()

    def request(self, device) -> None:
        """Put ``device`` in line unless it already is."""
        if device not in self._line:
            self._line.append(device)

    def may_read(self, device) -> bool:
        """Tell whether ``device`` holds the turn."""
        return bool(self._line) and self._line[0] is device

    def release(self, device) -> None:
        """Take ``device`` out of line (it holds the turn or waits)."""
        try:
            self._line.remove(device)
        except ValueError:
            pass

    def pass_on(self, device) -> None:
        """Give the turn on; ``device`` keeps a place at the back of the line."""
        self.release(device)
        self._line.append(device)

    @property
    def waiting(self) -> list:
        """Return the devices in line, the holder first."""
        return list(self._line)
