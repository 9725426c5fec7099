"""Tests for parse_duration."""

import math

import pytest

from scada.config import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("300ms", 0.3),
        ("30s", 30.0),
        ("1.5m", 90.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        (" 45 s ", 45.0),
        ("10", 10.0),
        (".5s", 0.5),
        (0, 0.0),
        (5, 5.0),
        (0.25, 0.25),
    ],
)
def test_accepts_numbers_and_unit_strings(text, seconds):
    """Numbers are seconds; strings carry one of ms, s, m, h, d."""
    assert math.isclose(parse_duration(text), seconds)


@pytest.mark.parametrize("bad", ["3 fortnights", "5x", "", "ms", "-5s", "1e3s", "1,5s"])
def test_rejects_bad_strings_naming_the_value(bad):
    """A malformed string raises ValueError quoting it."""
    with pytest.raises(ValueError, match="is not a duration") as info:
        parse_duration(bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("bad", [True, None, [1], {"s": 1}, -1, float("nan"), float("inf")])
def test_rejects_other_types_and_values(bad):
    """Booleans, containers, negative and non-finite numbers are not durations."""
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(bad)
