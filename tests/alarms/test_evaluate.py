"""Tests for alarms.evaluate: the pure conditions."""

from __future__ import annotations

import math
from collections import deque
from datetime import date
from zoneinfo import ZoneInfo

import pytest

from alarms.evaluate import (
    interpolate,
    is_number,
    limit_condition,
    rate_of_change,
    schedule_deviation,
    status_bits,
    days_left,
)

T0 = 1795244400.0  # 2026-11-21T07:00:00Z

#: A heating schedule: outdoor temperature → supply temperature.
TABLE = ((-30.0, 95.0), (-10.0, 75.0), (0.0, 60.0), (10.0, 45.0))


@pytest.mark.parametrize(
    ("value", "was_active", "expected"),
    [(90.0, False, False), (90.1, False, True), (89.0, True, True), (88.0, True, False), (87.0, True, False)],
)
def test_high_limit_with_deadband(value: float, was_active: bool, expected: bool) -> None:
    """Above 90 raises; once raised it clears only at 90 - 2 or below."""
    assert limit_condition(value, 90.0, True, 2.0, was_active) is expected


@pytest.mark.parametrize(
    ("value", "was_active", "expected"),
    [(40.0, False, False), (39.9, False, True), (41.0, True, True), (42.0, True, False)],
)
def test_low_limit_with_deadband(value: float, was_active: bool, expected: bool) -> None:
    """Below 40 raises; once raised it clears only at 40 + 2 or above."""
    assert limit_condition(value, 40.0, False, 2.0, was_active) is expected


def test_rate_over_window() -> None:
    """The rate compares with the oldest sample kept within the window; older ones drop out."""
    window: deque = deque()
    assert rate_of_change(window, T0, 10.0, 60.0) is None  # nothing to compare with
    assert rate_of_change(window, T0 + 10, 20.0, 60.0) == pytest.approx(1.0)
    assert rate_of_change(window, T0 + 20, 20.0, 60.0) == pytest.approx(0.5)
    # T0 drops out at T0 + 61: compared with T0 + 10 now.
    assert rate_of_change(window, T0 + 61, 20.0, 60.0) == pytest.approx(0.0)
    assert [ts for ts, _ in window] == [T0 + 10, T0 + 20, T0 + 61]
    # A repeat of the latest time is not added.
    assert rate_of_change(window, T0 + 61, 99.0, 60.0) == pytest.approx(0.0)
    assert len(window) == 3
    # Alone in the window after a long gap: no rate.
    assert rate_of_change(window, T0 + 1000, 5.0, 60.0) is None


def test_rate_window_restarts_when_time_goes_back() -> None:
    """A sample older than the newest kept (the clock stepped back) restarts the window from it alone."""
    window: deque = deque()
    rate_of_change(window, T0, 0.0, 600.0)
    assert rate_of_change(window, T0 + 60, 120.0, 600.0) == pytest.approx(2.0)
    # The host clock steps back an hour: no rate (nothing to compare with on the new time line).
    assert rate_of_change(window, T0 + 60 - 3600, 121.0, 600.0) is None
    assert list(window) == [(T0 + 60 - 3600, 121.0)]
    # The new time line goes on at once, not an hour later.
    assert rate_of_change(window, T0 + 120 - 3600, 122.0, 600.0) == pytest.approx(1 / 60)
    # A step back by a little also restarts.
    assert rate_of_change(window, T0 + 119 - 3600, 500.0, 600.0) is None
    assert len(window) == 1


@pytest.mark.parametrize(
    ("value", "bits"),
    [(0, 0), (5.0, 5), (2**31, 2**31), (-1, 0xFFFFFFFF), (1.5, None), (math.nan, None), (math.inf, None),
     (None, None), (True, None)],
)
def test_status_bits(value, bits) -> None:
    """Integer values are bit fields (negative as a 32-bit register); anything else is not."""
    assert status_bits(value) == bits


@pytest.mark.parametrize(
    ("outdoor", "supply"),
    [(-40.0, 95.0), (-30.0, 95.0), (-20.0, 85.0), (-5.0, 67.5), (5.0, 52.5), (10.0, 45.0), (25.0, 45.0)],
)
def test_interpolate_clamped(outdoor: float, supply: float) -> None:
    """Linear between points, clamped to the first and last supply temperature outside the table."""
    assert interpolate(TABLE, outdoor) == pytest.approx(supply)


def test_interpolate_edge_cases() -> None:
    """An empty table has no answer; a vertical step takes the later point."""
    assert interpolate((), 5.0) is None
    assert interpolate(((0.0, 60.0), (0.0, 70.0), (10.0, 50.0)), 0.0) == 60.0
    assert interpolate(((0.0, 60.0),), 99.0) == 60.0


def test_schedule_deviation() -> None:
    """Off schedule when more than the tolerance away from the interpolated temperature."""
    assert schedule_deviation(TABLE, -5.0, 70.0, 3.0) == (False, pytest.approx(67.5))
    assert schedule_deviation(TABLE, -5.0, 71.0, 3.0) == (True, pytest.approx(67.5))
    assert schedule_deviation(TABLE, -5.0, 64.0, 3.0)[0] is True
    assert schedule_deviation((), -5.0, 64.0, 3.0) == (False, None)


def test_days_left_in_site_zone() -> None:
    """Days count from the site's local date: 23:30 UTC is already tomorrow in Moscow."""
    late = 1795303800.0  # 2026-11-21T23:30:00Z
    assert days_left(date(2026, 12, 1), late, ZoneInfo("UTC")) == 10
    assert days_left(date(2026, 12, 1), late, ZoneInfo("Europe/Moscow")) == 9
    assert days_left(date(2026, 11, 1), T0, ZoneInfo("UTC")) == -20


def test_is_number() -> None:
    """Numbers are comparable; None, NaN, bools and text are not."""
    assert is_number(1) and is_number(2.5) and is_number(math.inf)
    assert not any(is_number(v) for v in (None, math.nan, True, "3"))
