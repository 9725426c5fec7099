# -*- test-case-name: tests.channels.lorawan.test_decoders -*-
"""Helpers the decoders share: pulse counters that wrap or reset, option checks, device clocks.

Counter rule (:func:`advance`).  A pulse counter of ``bits`` bits counts
0 … 2**bits - 1 and the meter's volume is::

    volume_m3 = base_m3 + (count + wraps * 2**bits) * litres_per_pulse / 1000 + initial_m3

When an uplink's count is smaller than the previous one:

- if the previous count was in the top eighth of the range
  (``>= 2**bits * 7/8``) the counter **wrapped**: ``wraps += 1``;
- otherwise the counter was **reset** (device replaced, rebooted, battery
  changed): the volume counted so far moves into ``base_m3`` and ``wraps``
  starts again at 0, so the published total carries on from where it was
  instead of dropping.

An equal count (a repeated uplink) changes nothing.  More than one wrap
between two uplinks cannot be seen and is not guessed at.  The published
volume therefore never decreases.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

#: Device timestamps outside this window (2000-01-01 … 2100-01-01, exclusive) are
#: not trusted: a device clock that was never set reads 0 or counts from its boot.
PLAUSIBLE_TIME = (946684800, 4102444800)


def advance(previous: Mapping[str, Any], count: int, bits: int,
            litres_per_pulse: float) -> tuple[dict[str, float], float, str | None]:
    """Return ``(new state, m3 counted, event)`` for a counter reading ``count``.

    ``previous`` is the counter's state from the last uplink (``{}`` at first):
    ``last`` (the raw count), ``wraps`` and ``base_m3``.  The m3 counted
    excludes the meter's initial reading; ``event`` is ``None``, ``"wrap"`` or
    ``"reset"`` (see the module docstring).  ``previous`` is not modified, so a
    caller can drop the result if something later in the payload is bad.
    """
    span = 1 << bits
    last = previous.get("last")
    wraps = int(previous.get("wraps", 0))
    base_m3 = float(previous.get("base_m3", 0.0))
    event = None
    if last is not None and count < last:
        if last >= span - span // 8:
            wraps += 1
            event = "wrap"
        else:
            base_m3 += (last + wraps * span) * litres_per_pulse / 1000.0
            wraps = 0
            event = "reset"
    counted = base_m3 + (count + wraps * span) * litres_per_pulse / 1000.0
    return {"last": count, "wraps": wraps, "base_m3": base_m3}, counted, event


def pulses_for(volume_m3: float, initial_m3: float, litres_per_pulse: float, bits: int, what: str) -> int:
    """Return the raw count a counter shows for a meter total: the inverse of :func:`advance` without resets.

    Counts past the counter's range wrap, as a real counter's do.
    """
    if not _is_number(volume_m3) or not math.isfinite(volume_m3):
        raise ValueError(f"{what}: {volume_m3!r} is not a finite number")
    if volume_m3 < initial_m3:
        raise ValueError(f"{what}: {volume_m3!r} m3 is below the initial reading {initial_m3!r} m3")
    return round((volume_m3 - initial_m3) * 1000.0 / litres_per_pulse) % (1 << bits)


def device_time(seconds: int) -> float | None:
    """Return a device's Unix time as a timestamp, or ``None`` when it is not plausible."""
    low, high = PLAUSIBLE_TIME
    return float(seconds) if low < seconds < high else None


def u32_time(ts: float, what: str = "ts") -> int:
    """Return ``ts`` as the unsigned 32-bit Unix seconds a device sends; ``ValueError`` if it does not fit."""
    if not _is_number(ts) or not math.isfinite(ts) or not 0 <= ts < 1 << 32:
        raise ValueError(f"{what}: {ts!r} is not a Unix time that fits in 32 bits")
    return int(ts)


def options_mapping(options: Any, what: str) -> Mapping[str, Any]:
    """Return ``options`` as a mapping (``None`` is empty); ``ValueError`` for anything else."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ValueError(f"{what}: expected a mapping of options, got {options!r}")
    return options


def reject_unknown(options: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    """Raise ``ValueError`` naming the first option key that is not in ``known``."""
    for key in options:
        if key not in known:
            raise ValueError(f"{where}{key}: unknown option; known options: {', '.join(known)}")


def number(options: Mapping[str, Any], key: str, default: float | None, where: str, *,
           positive: bool = False) -> float:
    """Return option ``key`` as a finite float, ``>= 0`` (or ``> 0`` when ``positive``).

    ``default`` ``None`` makes the option required.  Booleans and strings are
    refused: ``"10"`` in a config file is more likely a mistake than a number.
    """
    if key not in options:
        if default is None:
            raise ValueError(f"{where}{key}: required option is missing")
        return default
    value = options[key]
    bound = "> 0" if positive else ">= 0"
    if (not _is_number(value) or not math.isfinite(value)
            or (value <= 0 if positive else value < 0)):
        raise ValueError(f"{where}{key}: {value!r} is not a finite number {bound}")
    return float(value)


def pulse_options(options: Mapping[str, Any], where: str) -> dict[str, float]:
    """Return a pulse input's ``litres_per_pulse`` (required, > 0) and ``initial_m3`` (>= 0, default 0).

    ``initial_m3`` is the meter's reading when the counter read 0 (see :func:`advance`).
    """
    return {
        "litres_per_pulse": number(options, "litres_per_pulse", None, where, positive=True),
        "initial_m3": number(options, "initial_m3", 0.0, where),
    }


def point_name(options: Mapping[str, Any], key: str, default: str, where: str) -> str:
    """Return option ``key`` as a point name: the ``<point>`` half of ``<device>.<point>``."""
    value = options.get(key, default)
    if not isinstance(value, str) or not value or any(c.isspace() or c == "." for c in value):
        raise ValueError(f"{where}{key}: {value!r} is not a point name (non-empty, no whitespace or '.')")
    return value


def _is_number(value: Any) -> bool:
    """Tell whether ``value`` is an int or float that fits a float (bool is an int to Python, not to YAML)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True
