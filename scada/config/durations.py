# -*- test-case-name: tests.scada.config.test_config_durations -*-
"""Durations written as ``300ms``, ``30s``, ``1.5m`` or a bare number of seconds."""

from __future__ import annotations

import math
import re

from .problems import show_value

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*")
_HINT = "use seconds or <number><unit> with unit ms, s, m, h or d, e.g. '300ms', '30s', '1.5m'"


def parse_duration(value: object) -> float:
    """Return ``value`` as seconds.

    A number is taken as seconds; a string is a non-negative number with an
    optional unit (``ms``, ``s``, ``m``, ``h``, ``d``).  Anything else,
    negative and non-finite values included, raises ValueError naming the
    value.
    """
    # bool is an int subclass, but `poll: yes` is a mistake, not 1 second.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"{show_value(value)} is not a duration; {_HINT}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{show_value(value)} is not a duration; it must be finite and not negative")
    return seconds



_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]i?b|b)?\s*", re.IGNORECASE)


def parse_size(value: object) -> int:
    """Return ``value`` as bytes: a whole number, or ``512MB``/``1GiB``/``100 kB`` (SI or binary units).

    Raises ValueError naming the value otherwise.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and (match := _SIZE.fullmatch(value)):
        size = int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()])
    else:
        raise ValueError(f"{show_value(value)} is not a size; use bytes or <number><unit> "
                         "with unit B, kB, MB, GB, KiB, MiB or GiB, e.g. '512MB'")
    if size < 0:
        raise ValueError(f"{show_value(value)} is not a size; it must not be negative")
    return size
