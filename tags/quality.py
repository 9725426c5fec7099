# -*- test-case-name: tests.tags.test_table -*-
"""The one quality code that travels with every value (DESIGN rule 5)."""

from __future__ import annotations

from enum import StrEnum


class Quality(StrEnum):
    """Why a value can or cannot be trusted.

    The string value is what the API, the historian and the alarm engine see.
    Only ``GOOD`` (and for some consumers ``MANUAL``, ``CALCULATED`` and
    ``BACKFILLED``) carries a value that billing and balance may use.
    """

    GOOD = "good"
    NOT_YET_READ = "not_yet_read"
    TIMEOUT = "timeout"
    CRC_ERROR = "crc_error"
    EXCEPTION = "exception"
    COMM_LOSS = "comm_loss"
    DECODE_FAILED = "decode_failed"
    MANUAL = "manual"
    CALCULATED = "calculated"
    BACKFILLED = "backfilled"
    DISABLED = "disabled"

    @property
    def usable(self) -> bool:
        """Tell whether a sample of this quality carries a trustworthy value."""
        return self in _USABLE


_USABLE = frozenset({Quality.GOOD, Quality.MANUAL, Quality.CALCULATED, Quality.BACKFILLED})
