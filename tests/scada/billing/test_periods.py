"""Billing periods: parsing, arithmetic and bounds in the site's time zone."""

from datetime import datetime, timezone

import pytest

from scada.billing.periods import (
    format_period,
    parse_period,
    period_bounds,
    period_of,
    previous_periods,
    shift_period,
)


def utc(*args):
    """Epoch seconds of a UTC wall-clock time."""
    return datetime(*args, tzinfo=timezone.utc).timestamp()


def test_parse_and_format():
    assert parse_period("2026-10") == (2026, 10)
    assert format_period(2026, 1) == "2026-01"


@pytest.mark.parametrize("bad", ["2026-13", "2026-00", "2026-1", "26-10", "2026/10", "2026-10-01",
                                 "", " 2026-10", "2026-1O", "0999-05", None, 202610])
def test_bad_periods_name_the_value(bad):
    with pytest.raises(ValueError) as err:
        parse_period(bad)
    assert repr(bad) in str(err.value)


def test_shift_across_years():
    assert shift_period("2026-01", -1) == "2025-12"
    assert shift_period("2025-12", 1) == "2026-01"
    assert shift_period("2026-10", -22) == "2024-12"
    assert shift_period("2026-10", 0) == "2026-10"


def test_shift_out_of_range():
    with pytest.raises(ValueError, match="9998-12"):
        shift_period("9998-12", 1)


def test_previous_periods_oldest_first():
    assert previous_periods("2026-10", 6) == ["2026-04", "2026-05", "2026-06", "2026-07", "2026-08", "2026-09"]
    assert previous_periods("2026-02", 3) == ["2025-11", "2025-12", "2026-01"]
    assert previous_periods("2026-10", 0) == []


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_previous_periods_bad_count(bad):
    with pytest.raises(ValueError, match=repr(bad).replace("(", r"\(")):
        previous_periods("2026-10", bad)


def test_bounds_moscow_no_dst():
    start, end = period_bounds("2026-10", "Europe/Moscow")
    assert start == utc(2026, 9, 30, 21)
    assert end == utc(2026, 10, 31, 21)
    assert end - start == 31 * 86400


def test_bounds_berlin_dst_spring_and_autumn():
    # March: CET → CEST on the last Sunday; the month is one hour short.
    start, end = period_bounds("2026-03", "Europe/Berlin")
    assert start == utc(2026, 2, 28, 23)
    assert end == utc(2026, 3, 31, 22)
    assert end - start == 31 * 86400 - 3600
    # October: CEST → CET; one hour long.
    start, end = period_bounds("2026-10", "Europe/Berlin")
    assert start == utc(2026, 9, 30, 22)
    assert end == utc(2026, 10, 31, 23)
    assert end - start == 31 * 86400 + 3600


def test_bounds_december_rolls_over_the_year():
    assert period_bounds("2025-12", "UTC") == (utc(2025, 12, 1), utc(2026, 1, 1))


def test_bounds_bad_input_names_the_value():
    with pytest.raises(ValueError, match="'Mars/Olympus'"):
        period_bounds("2026-10", "Mars/Olympus")
    with pytest.raises(ValueError, match="'2026-13'"):
        period_bounds("2026-13", "Europe/Moscow")


def test_period_of_uses_local_time():
    # 2026-09-30 21:30 UTC is already October in Moscow.
    assert period_of(utc(2026, 9, 30, 21, 30), "Europe/Moscow") == "2026-10"
    assert period_of(utc(2026, 9, 30, 20, 59), "Europe/Moscow") == "2026-09"
    start, end = period_bounds("2026-03", "Europe/Berlin")
    assert period_of(start, "Europe/Berlin") == "2026-03"
    assert period_of(end - 1, "Europe/Berlin") == "2026-03"
    assert period_of(end, "Europe/Berlin") == "2026-04"


@pytest.mark.parametrize("text", ["２０２６-10", "٢٠٢٦-١٠"])
def test_only_ascii_digits_make_a_period(text: str) -> None:
    with pytest.raises(ValueError, match="period"):
        parse_period(text)
