# -*- test-case-name: tests.channels.lorawan.test_decoders -*-
"""Generic little-endian pulse counter: a raw count, optionally with the device's clock.

Payload (any fPort; NB-IoT uplinks have none)::

    offset  size  field
    0       4     count, uint32 little endian (pulses since the counter started)
    4       4     optional: reading time, uint32 little endian Unix seconds (UTC)

so a payload is 4 or 8 bytes long.  ``10 27 00 00`` is 10 000 pulses;
``10 27 00 00 00 f1 53 65`` is the same count read at 2023-11-14T22:13:20Z
(1 700 000 000).  The reading time becomes :attr:`Decoded.ts` only when it is
plausible (after 2000-01-01 and before 2100-01-01); otherwise the caller uses
the time of reception.

Options (``decoder_options``):

- ``litres_per_pulse``: **required**, a number > 0.  There is no default:
  1 and 10 l/pulse are both common, and a wrong guess bills ten times off;
- ``initial_m3``: the meter's reading when the counter read 0, >= 0, default 0;
- ``counter_bits``: the counter's width, 8..32, default 32.  A count that
  does not fit is a :class:`DecodeError`;
- ``point``: the name of the volume point, default ``volume_m3``.

Points: ``<point>`` (m3, cumulative) =
``base_m3 + (count + wraps * 2**counter_bits) * litres_per_pulse / 1000 + initial_m3``,
and ``pulses`` (the raw count; not cumulative, since it restarts on a reset).
Wraps and resets follow :mod:`channels.lorawan.decoders._counters`: a smaller
count after one in the top eighth of the range is a wrap, any other smaller
count a reset that keeps the volume continuous.  The uplink that shows one
carries ``status`` ``{"counter_wrap": 1}`` or ``{"counter_reset": 1}``.
"""

from __future__ import annotations

import struct
from typing import Any, Mapping

from channels.lorawan.decoders import Decoded, DecodeError, PointDef
from channels.lorawan.decoders._counters import (
    advance,
    device_time,
    options_mapping,
    point_name,
    pulse_options,
    pulses_for,
    reject_unknown,
    u32_time,
)

NAME = "pulse_counter_le"
#: fPort :func:`encode` uses unless told otherwise.
DEFAULT_FPORT = 2
#: Name of the raw count's point.
PULSES_POINT = "pulses"
_OPTIONS = ("litres_per_pulse", "initial_m3", "counter_bits", "point")
_COUNT = struct.Struct("<I")
_COUNT_TIME = struct.Struct("<II")


def check_options(options: Mapping[str, Any] | None) -> dict:
    """Return the options validated, with defaults filled in; ``ValueError`` naming the bad key."""
    options = options_mapping(options, NAME)
    reject_unknown(options, _OPTIONS, "")
    bits = options.get("counter_bits", 32)
    if not isinstance(bits, int) or isinstance(bits, bool) or not 8 <= bits <= 32:
        raise ValueError(f"counter_bits: {bits!r} is not a whole number of bits from 8 to 32")
    point = point_name(options, "point", "volume_m3", "")
    if point == PULSES_POINT:
        raise ValueError(f"point: {point!r} is the raw count's point; choose another name")
    return {**pulse_options(options, ""), "counter_bits": bits, "point": point}


def points(options: Mapping[str, Any] | None) -> list[PointDef]:
    """Return the volume point and the raw count point."""
    opts = check_options(options)
    return [
        PointDef(opts["point"], "m3", True, "volume: pulses × litres per pulse + initial reading"),
        PointDef(PULSES_POINT, "", False, "raw pulse count as sent (restarts when the counter is reset)"),
    ]


def decode(payload: bytes, fport: int | None, options: Mapping[str, Any] | None, state: dict) -> Decoded:
    """Decode one uplink; ``state`` keeps ``last``, ``wraps`` and ``base_m3`` between uplinks."""
    opts = check_options(options)
    payload = bytes(payload)
    if len(payload) == _COUNT.size:
        (count,), ts = _COUNT.unpack(payload), None
    elif len(payload) == _COUNT_TIME.size:
        count, seconds = _COUNT_TIME.unpack(payload)
        ts = device_time(seconds)
    else:
        raise DecodeError(f"{NAME}: payload is {len(payload)} bytes, expected 4 (count) "
                          f"or 8 (count and time): {payload[:16].hex()}")
    bits = opts["counter_bits"]
    if count >> bits:
        raise DecodeError(f"{NAME}: count {count} does not fit the {bits}-bit counter (counter_bits)")
    new_state, counted, event = advance(state, count, bits, opts["litres_per_pulse"])
    state.update(new_state)
    status = {f"counter_{event}": 1.0} if event else {}
    return Decoded({opts["point"]: counted + opts["initial_m3"], PULSES_POINT: float(count)}, ts, status)


def encode(values: Mapping[str, float], ts: float | None, options: Mapping[str, Any] | None,
           fport: int = DEFAULT_FPORT) -> tuple[int, bytes]:
    """Return ``(fport, payload)`` for a meter total ``values[<point>]`` in m3.

    The payload carries the time when ``ts`` is not ``None`` (8 bytes), only
    the count otherwise (4 bytes).  A total past the counter's range wraps the
    count, as the device's would.
    """
    opts = check_options(options)
    point = opts["point"]
    if point not in values:
        raise ValueError(f"{NAME}: no value for point {point!r} to encode")
    count = pulses_for(values[point], opts["initial_m3"], opts["litres_per_pulse"], opts["counter_bits"], point)
    if ts is None:
        return fport, _COUNT.pack(count)
    return fport, _COUNT_TIME.pack(count, u32_time(ts))
