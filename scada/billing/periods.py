"""Billing periods: calendar months written ``"YYYY-MM"``, bounded in the site's time zone.

A billing period (расчётный период, ПП РФ №354 п.37: one calendar month)
runs from 00:00 on the 1st of the month to 00:00 on the 1st of the next
month, local time of the site (``site.timezone``, an IANA zone).  Readings
for billing are taken at those two instants, so :func:`period_bounds`
returns them as UTC epoch seconds.  A month under daylight saving time
is an hour shorter or longer than its calendar length; the bounds follow
the local clock, never a fixed UTC offset.

Pure functions: no I/O, no Twisted.  Bad input raises :class:`ValueError`
with a message naming the offending value, ready for a 400 ``{"error"}``
answer.
"""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, tzinfo

__all__ = [
    "parse_period",
    "format_period",
    "shift_period",
    "previous_periods",
    "period_bounds",
    "period_of",
    "site_zone",
]

_PERIOD = re.compile(r"[0-9]{4}-[0-9]{2}")
#: Years a period may name: the epoch-seconds arithmetic and ``datetime``
#: both stay well inside their ranges, and the next month always exists.
MIN_YEAR, MAX_YEAR = 1900, 9998


def parse_period(period: str) -> tuple[int, int]:
    """Return ``(year, month)`` of a ``"YYYY-MM"`` period; :class:`ValueError` naming it if malformed."""
    if not isinstance(period, str) or not _PERIOD.fullmatch(period):
        raise ValueError(f"period {period!r} is not a month written YYYY-MM, such as '2026-10'")
    year, month = int(period[:4]), int(period[5:])
    if not 1 <= month <= 12:
        raise ValueError(f"period {period!r} has month {month}; months run 01..12")
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError(f"period {period!r} has year {year}; use {MIN_YEAR}..{MAX_YEAR}")
    return year, month


def format_period(year: int, month: int) -> str:
    """Return the ``"YYYY-MM"`` text of a year and month (1..12)."""
    return f"{year:04d}-{month:02d}"


def shift_period(period: str, months: int) -> str:
    """Return the period ``months`` after ``period`` (before it when negative).

    :class:`ValueError` if ``period`` is malformed or the result leaves the
    supported years.
    """
    year, month = parse_period(period)
    index = year * 12 + (month - 1) + months
    result = format_period(index // 12, index % 12 + 1)
    if not MIN_YEAR <= index // 12 <= MAX_YEAR:
        raise ValueError(f"period {period!r} shifted by {months} months gives {result!r}, "
                         f"outside years {MIN_YEAR}..{MAX_YEAR}")
    return result


def previous_periods(period: str, n: int) -> list[str]:
    """Return the ``n`` periods just before ``period``, oldest first.

    ``previous_periods("2026-10", 6)`` is ``["2026-04", ..., "2026-09"]``;
    ``n == 0`` gives ``[]``.  :class:`ValueError` for a malformed period or
    a negative ``n``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"number of periods {n!r} must be a whole number >= 0")
    parse_period(period)
    return [shift_period(period, -k) for k in range(n, 0, -1)]


def site_zone(tz: str | tzinfo) -> tzinfo:
    """Return the zone for an IANA name such as ``"Europe/Moscow"``; :class:`ValueError` naming it if unknown."""
    if isinstance(tz, tzinfo):
        return tz
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise ValueError(f"time zone {tz!r} is not an IANA zone such as 'Europe/Moscow'") from None


def period_bounds(period: str, tz: str | tzinfo) -> tuple[float, float]:
    """Return ``(start_ts, end_ts)``: 00:00 local time on the 1st of ``period`` and of the next month.

    Both are UTC epoch seconds; the period is the half-open interval
    ``[start_ts, end_ts)``.  ``tz`` is an IANA name (or a ``tzinfo``).
    In the rare zones whose clocks jumped over local midnight, the
    nonexistent midnight resolves with the offset in force before the jump
    (``fold=0``), which is still the start of that local day.
    :class:`ValueError` naming the value for a malformed period or an
    unknown zone.
    """
    year, month = parse_period(period)
    zone = site_zone(tz)
    next_year, next_month = parse_period(shift_period(period, 1))
    start = datetime(year, month, 1, tzinfo=zone).timestamp()
    end = datetime(next_year, next_month, 1, tzinfo=zone).timestamp()
    return start, end


def period_of(ts: float, tz: str | tzinfo) -> str:
    """Return the period (``"YYYY-MM"``) containing the UTC epoch time ``ts`` in the zone ``tz``."""
    local = datetime.fromtimestamp(ts, site_zone(tz))
    return format_period(local.year, local.month)
