# -*- test-case-name: tests.tags.test_table -*-
"""Tag definitions and samples: what the channels produce and everyone else consumes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from tags.quality import Quality


@dataclass(frozen=True, slots=True)
class TagDef:
    """Static description of a tag, built from configuration.

    ``name`` is ``<device>.<point>``; ``deadband`` is the absolute change below
    which a new good value is not written to history (0 writes every change).
    """

    name: str
    unit: str = ""
    deadband: float = 0.0
    device: str = ""
    description: str = ""


class Sample(NamedTuple):
    """One value of one tag at one moment.

    ``ts`` is the source timestamp in Unix seconds (UTC): when the channel got
    the answer, not when a consumer saw it.  ``value`` is ``None`` when the
    quality says there is no value (timeout, comm loss, ...).

    A named tuple rather than a frozen dataclass: every poll of every device
    makes one per point, and a tuple is built in half the time while staying
    immutable for the several consumers that share it.
    """

    name: str
    value: float | None
    quality: Quality
    ts: float
