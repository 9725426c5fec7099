# -*- test-case-name: tests.alarms.test_evaluate -*-
"""Pure alarm conditions: numbers in, a boolean (and the figure shown) out.

No clock, no state beyond the arguments: the engine keeps the history
(last condition, rate window, latest outdoor temperature) and calls these.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from datetime import date, datetime, tzinfo

from alarms.model import STATUS_KINDS, Priority

#: Limit levels that alarm above the limit (the others alarm below it).
HIGH_LEVELS = frozenset({"hihi", "hi"})

#: Priority of each status kind when the rule does not say (``kind_priorities``).
DEFAULT_KIND_PRIORITY: dict[str, Priority] = {
    "leak": Priority.CRITICAL,
    "tamper": Priority.HIGH,
    "sensor_failure": Priority.HIGH,
    "permanent_error": Priority.HIGH,
    "low_battery": Priority.LOW,
    "temporary_error": Priority.MEDIUM,
}
assert set(DEFAULT_KIND_PRIORITY) == set(STATUS_KINDS)


def is_number(value: object) -> bool:
    """Tell whether ``value`` is a real number an alarm can compare (not None, NaN, bool or text)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def limit_condition(value: float, limit: float, high: bool, deadband: float, was_active: bool) -> bool:
    """Return whether a limit alarm is in excursion.

    Above ``limit`` (below for low levels) raises; once raised, the value
    must come back inside by ``deadband`` to clear: ``value <= limit -
    deadband`` for a high limit, ``value >= limit + deadband`` for a low one.
    """
    if high:
        return value > (limit - deadband if was_active else limit)
    return value < (limit + deadband if was_active else limit)


def rate_of_change(window: deque[tuple[float, float]], ts: float, value: float, span: float) -> float | None:
    """Add ``(ts, value)`` to ``window`` and return ``|Δvalue/Δt|`` against its oldest sample within ``span``.

    ``window`` holds the usable samples of one tag, oldest first; samples
    older than ``ts - span`` are dropped.  A repeat of the latest sample's
    time is ignored (the rate stays what it was).  A sample *older* than
    the latest kept one means the clock went back (a host clock step, a
    meter reset): the window starts again from this sample alone, so the
    figures of the old time line cannot hold a condition for as long as
    the step.  Returns ``None`` when there is no earlier sample within
    ``span`` to compare with (then also right after such a restart).
    """
    if window:
        newest = window[-1][0]
        if ts == newest:
            return None if len(window) < 2 else _rate(window[0], window[-1])
        if ts < newest:
            window.clear()
            window.append((ts, value))
            return None
    window.append((ts, value))
    cutoff = ts - span
    while window[0][0] < cutoff:
        window.popleft()
    if len(window) < 2:
        return None
    return _rate(window[0], window[-1])


def _rate(old: tuple[float, float], new: tuple[float, float]) -> float:
    return abs(new[1] - old[1]) / (new[0] - old[0])


def status_bits(value: float) -> int | None:
    """Return a status register's value as an integer bit field, or ``None`` if it is not one.

    Negative values are read as the 32-bit register they came from.
    """
    if not is_number(value) or math.isinf(value) or value != int(value):
        return None
    bits = int(value)
    return bits & 0xFFFFFFFF if bits < 0 else bits


def interpolate(table: Sequence[tuple[float, float]], x: float) -> float | None:
    """Interpolate ``table`` (``(x, y)`` pairs, sorted by x) linearly at ``x``, clamped at both ends.

    Returns ``None`` for an empty table.
    """
    if not table:
        return None
    if x <= table[0][0]:
        return float(table[0][1])
    for (x0, y0), (x1, y1) in zip(table, table[1:]):
        if x <= x1:
            if x1 == x0:
                return float(y1)
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return float(table[-1][1])


def schedule_deviation(table: Sequence[tuple[float, float]], outdoor: float, supply: float,
                       tolerance: float) -> tuple[bool, float | None]:
    """Return (off schedule, expected supply temperature) for one pair of readings."""
    expected = interpolate(table, outdoor)
    if expected is None:
        return False, None
    return abs(supply - expected) > tolerance, expected


def days_left(due: date, now: float, tz: tzinfo) -> int:
    """Return whole days from today (in ``tz``) to ``due``; negative when overdue."""
    return (due - datetime.fromtimestamp(now, tz).date()).days
