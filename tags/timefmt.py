# -*- test-case-name: tests.tags.test_timefmt -*-
"""ISO 8601 UTC text for Unix timestamps, as the API and the historian show them."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1)


def iso_utc(ts: float) -> str:
    """Format Unix seconds as ``YYYY-MM-DDTHH:MM:SS.mmmZ``, rounded to the millisecond.

    Raises ``ValueError`` naming the value when it is not a finite number or
    lies outside the years 1-9999.
    """
    if not math.isfinite(ts):
        raise ValueError(f"not a finite timestamp: {ts!r}")
    try:
        # Round in whole milliseconds before splitting: truncating the float
        # would print 1.123 as .122 because it is stored as 1.12299999...
        # (Beyond ~1.8e305 s, ts * 1000 is infinite and round() overflows too.)
        seconds, millis = divmod(round(ts * 1000), 1000)
        moment = _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"timestamp out of range: {ts!r}") from None
    return f"{moment.isoformat(timespec='seconds')}.{millis:03d}Z"


def parse_iso(text: str) -> float:
    """Parse an ISO 8601 time into Unix seconds.

    Accepts a ``Z`` or ``±HH:MM`` offset; a time without an offset is taken
    as UTC, because every time this system exchanges is UTC.  A date alone
    (``YYYY-MM-DD``) means midnight UTC of that day.  Raises ``ValueError``
    naming the text when it is not such a time.
    """
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise ValueError(f"not an ISO 8601 time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()

