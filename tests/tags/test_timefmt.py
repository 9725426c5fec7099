"""Tests for tags.timefmt: ISO 8601 UTC formatting and parsing."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tags.timefmt import iso_utc, parse_iso

# 2026-11-21T07:00:00Z
T0 = 1795244400.0


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (T0, "2026-11-21T07:00:00.000Z"),
        (T0 + 0.123, "2026-11-21T07:00:00.123Z"),
        (1.123, "1970-01-01T00:00:01.123Z"),
        (T0 + 59.9996, "2026-11-21T07:01:00.000Z"),
        (-1.5, "1969-12-31T23:59:58.500Z"),
    ],
)
def test_iso_utc(ts: float, text: str) -> None:
    """Timestamps print in UTC with milliseconds rounded, carrying into the seconds."""
    assert iso_utc(ts) == text


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 1e20, 1e308, -1e308])
def test_iso_utc_rejects_unprintable(bad: float) -> None:
    """Non-finite and out-of-range timestamps raise ValueError naming them."""
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        iso_utc(bad)


@pytest.mark.parametrize(
    ("text", "ts"),
    [
        ("2026-11-21T07:00:00.123Z", T0 + 0.123),
        ("2026-11-21T07:00:00Z", T0),
        ("2026-11-21T10:00:00+03:00", T0),
        ("2026-11-21T02:30:00-04:30", T0),
        ("2026-11-21T07:00:00", T0),
        ("2026-11-21", T0 - 7 * 3600),
        ("1970-01-01", 0.0),
    ],
)
def test_parse_iso(text: str, ts: float) -> None:
    """Z, offsets, naive times (as UTC) and bare dates (midnight UTC) parse to Unix seconds."""
    assert parse_iso(text) == pytest.approx(ts, abs=1e-6)


@pytest.mark.parametrize("bad", ["", "yesterday", "2026-13-01", "2026-11-21T25:00Z", None, 17])
def test_parse_iso_rejects_garbage(bad: object) -> None:
    """Anything that is not an ISO 8601 time raises ValueError naming the value."""
    with pytest.raises(ValueError, match="not an ISO 8601 time") as info:
        parse_iso(bad)  # type: ignore[arg-type]
    assert repr(bad) in str(info.value)


@given(st.floats(min_value=-1e10, max_value=1e10))
def test_round_trip(ts: float) -> None:
    """Parsing a formatted time gives the timestamp back to the millisecond."""
    assert parse_iso(iso_utc(ts)) == pytest.approx(ts, abs=0.0005 + 1e-6)
