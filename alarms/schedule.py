# -*- test-case-name: tests.alarms.test_schedule -*-
"""Weekly time windows: ``"mon-sun(00-06)"``, ``"mon-fri(08:00-17:30),sat(10-14)"``.

Used for a device's expected-activity window (a GPRS modem that dials in
at night is not in comm loss by day) and for on-call hours of notification
recipients.  A window is a comma-separated list of ``DAYS(HH[:MM]-HH[:MM])``
items; ``DAYS`` is a day (``mon``), a range (``mon-fri``, ``fri-mon`` wraps)
or ``daily``; several hour ranges may follow one day part, separated by
``;`` or ``,`` inside the brackets: ``mon-fri(08-12;13-17)``.  A range whose
end is not after its start runs past midnight (``mon-sun(22-06)``: the
hours after midnight belong to the day it started on).  ``24`` as an end
means midnight; ``always`` is every moment.

Times are local to the site's time zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ITEM = re.compile(r"\s*([a-z]+(?:-[a-z]+)?)\s*\(([^()]*)\)\s*(?:,|$)")
_HOURS = re.compile(r"^\s*(\d{1,2})(?::(\d{2}))?\s*-\s*(\d{1,2})(?::(\d{2}))?\s*$")
WEEK_MIN = 7 * 24 * 60


class WindowError(ValueError):
    """A window string that cannot be parsed; the message names the offending part."""


@dataclass(frozen=True)
class Window:
    """A set of minute-of-week intervals ``[start, end)`` (0 = Monday 00:00 local)."""

    text: str
    spans: tuple[tuple[int, int], ...]
    tz: ZoneInfo

    def contains(self, ts: float) -> bool:
        """Tell whether Unix time ``ts`` falls inside the window (in the window's time zone)."""
        minute = _minute_of_week(ts, self.tz)
        return any(start <= minute < end for start, end in self.spans)

    def next_change(self, ts: float) -> float:
        """Return the first Unix time after ``ts`` at which ``contains`` may change (a span edge)."""
        local = datetime.fromtimestamp(ts, self.tz)
        minute = local.weekday() * 1440 + local.hour * 60 + local.minute
        edges = sorted({e % WEEK_MIN for span in self.spans for e in span})
        if not edges:
            return ts + 7 * 86400.0
        ahead = min(((e - minute) % WEEK_MIN) or WEEK_MIN for e in edges)
        base = local.replace(second=0, microsecond=0)
        # Wall-clock arithmetic in the zone; a DST jump moves the edge with it.
        target = (base.replace(tzinfo=None) + timedelta(minutes=ahead)).replace(tzinfo=self.tz)
        return max(target.timestamp(), ts + 1.0)


def _minute_of_week(ts: float, tz: ZoneInfo) -> int:
    local = datetime.fromtimestamp(ts, tz)
    return local.weekday() * 1440 + local.hour * 60 + local.minute


def _day_list(part: str, text: str) -> list[int]:
    if part in ("daily", "every"):
        return list(range(7))
    names = part.split("-")
    for name in names:
        if name not in DAYS:
            raise WindowError(f"{text!r}: {name!r} is not a day (use {', '.join(DAYS)} or daily)")
    first = DAYS.index(names[0])
    last = DAYS.index(names[-1])
    return [(first + i) % 7 for i in range((last - first) % 7 + 1)]


def _minutes(hour: str, minute: str | None, text: str, item: str) -> int:
    h, m = int(hour), int(minute or 0)
    if h > 24 or m > 59 or (h == 24 and m):
        raise WindowError(f"{text!r}: {item!r} is not a time of day (00:00-24:00)")
    return h * 60 + m


def parse_window(text: str, tz: str | ZoneInfo = "UTC") -> Window:
    """Parse a window string; raise :class:`WindowError` naming the bad part."""
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    raw = text.strip().lower()
    if raw == "always":
        return Window(text, ((0, WEEK_MIN),), zone)
    if not raw:
        raise WindowError("an empty window; use e.g. 'mon-sun(00-06)' or 'always'")
    spans: list[tuple[int, int]] = []
    pos = 0
    while pos < len(raw):
        match = _ITEM.match(raw, pos)
        if match is None:
            raise WindowError(f"{text!r}: cannot read {text.strip()[pos:]!r}; expected DAYS(HH-HH), e.g. mon-fri(08-17)")
        days = _day_list(match.group(1), text)
        for item in re.split(r"[;,]", match.group(2)):
            hours = _HOURS.match(item)
            if hours is None:
                raise WindowError(f"{text!r}: {item.strip()!r} is not an hour range like 08-17 or 08:30-17:00")
            start = _minutes(hours.group(1), hours.group(2), text, item.strip())
            end = _minutes(hours.group(3), hours.group(4), text, item.strip())
            length = (end - start) % 1440 or 1440
            for day in days:
                begin = day * 1440 + start
                spans.append((begin, begin + length))
        pos = match.end()
    # Spans that run past Sunday midnight continue on Monday.
    out: list[tuple[int, int]] = []
    for start, end in spans:
        if end > WEEK_MIN:
            out.append((start, WEEK_MIN))
            out.append((0, end - WEEK_MIN))
        else:
            out.append((start, end))
    return Window(text, tuple(sorted(out)), zone)
