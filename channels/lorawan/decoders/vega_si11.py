# -*- test-case-name: tests.channels.lorawan.test_decoders -*-
"""Vega SI-11-style four-input pulse counter (LoRaWAN).

"Style": the layout follows the published description of the Vega SI-11
(protocols.md §5.2) and has not been checked byte for byte against a device;
the alarm and time-sync packets are this module's reading of it.  All fields
are little endian.

fPort 2, 24 bytes::

    offset  size  field
    0       1     packet type: 1 = regular reading, 2 = alarm (same layout)
    1       1     battery, % (0..100; anything above is "unknown" and not published)
    2       1     settings bits (passed on as status "settings", not interpreted)
    3       4     reading time, uint32 Unix seconds (UTC)
    7       1     temperature, int8 °C
    8       4     input 1 pulse count, uint32
    12      4     input 2 pulse count, uint32
    16      4     input 3 pulse count, uint32
    20      4     input 4 pulse count, uint32

An alarm packet (type 2) is decoded like a regular one and adds status
``{"alarm": 1}``; the layout says nothing about which input raised it.

fPort 4, 1 or 5 bytes: type 255, optionally followed by the device's clock
(uint32 Unix seconds): a time synchronisation request.  It decodes to no
values and status ``{"time_sync_request": 1}``; answering it (a downlink) is
not a decoder's business.

Options (``decoder_options``)::

    inputs:                      # inputs not listed are not published
      1: {name: volume_m3,       # point name, default input<n>_m3
          litres_per_pulse: 10,  # required, > 0
          initial_m3: 12.5}      # reading when the count was 0, default 0

Input numbers are 1..4 (as ints or as digit strings).  Points:
``battery_pct`` (%), ``temperature_c`` (°C) and one cumulative volume point
(m3) per listed input, computed and wrapped/reset like
:mod:`~channels.lorawan.decoders.pulse_counter_le` with a 32-bit counter;
the status of an uplink that shows a wrap or reset on input ``n`` carries
``input<n>_counter_wrap`` or ``input<n>_counter_reset`` = 1.  The reading
time becomes :attr:`Decoded.ts` when plausible (2000 … 2100).
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

NAME = "vega_si11"
#: LoRaWAN ports the device uses.
FPORT_DATA = 2
FPORT_TIME_SYNC = 4
#: Packet types (the first byte).
TYPE_REGULAR = 1
TYPE_ALARM = 2
TYPE_TIME_SYNC = 255
BATTERY_POINT = "battery_pct"
TEMPERATURE_POINT = "temperature_c"
#: What :func:`encode` sends when the values do not say.
DEFAULT_BATTERY_PCT = 100
DEFAULT_TEMPERATURE_C = 20
#: The counters are 32 bits wide.
COUNTER_BITS = 32
INPUTS = (1, 2, 3, 4)
_INPUT_OPTIONS = ("name", "litres_per_pulse", "initial_m3")
_PACKET = struct.Struct("<BBBIb4I")
_TIME = struct.Struct("<I")


def check_options(options: Mapping[str, Any] | None) -> dict:
    """Return the options validated and normalised: ``{"inputs": {n: {name, litres_per_pulse, initial_m3}}}``.

    ``ValueError`` naming the bad key, e.g. ``inputs.2.litres_per_pulse: ...``.
    """
    options = options_mapping(options, NAME)
    reject_unknown(options, ("inputs",), "")
    raw_inputs = options_mapping(options.get("inputs"), "inputs")
    inputs: dict[int, dict] = {}
    used = {BATTERY_POINT: "the battery point", TEMPERATURE_POINT: "the temperature point"}
    for key, raw in raw_inputs.items():
        n = _input_number(key)
        where = f"inputs.{n}."
        if n in inputs:
            raise ValueError(f"inputs.{key!r}: input {n} is listed twice")
        raw = options_mapping(raw, f"inputs.{n}")
        reject_unknown(raw, _INPUT_OPTIONS, where)
        name = point_name(raw, "name", f"input{n}_m3", where)
        if name in used:
            raise ValueError(f"{where}name: {name!r} is already {used[name]}")
        used[name] = f"input {n}'s point"
        inputs[n] = {"name": name, **pulse_options(raw, where)}
    return {"inputs": dict(sorted(inputs.items()))}


def points(options: Mapping[str, Any] | None) -> list[PointDef]:
    """Return battery, temperature and one volume point per configured input."""
    opts = check_options(options)
    result = [
        PointDef(BATTERY_POINT, "%", False, "battery charge"),
        PointDef(TEMPERATURE_POINT, "°C", False, "temperature inside the device"),
    ]
    for n, cfg in opts["inputs"].items():
        result.append(PointDef(cfg["name"], "m3", True, f"volume counted on input {n}"))
    return result


def decode(payload: bytes, fport: int | None, options: Mapping[str, Any] | None, state: dict) -> Decoded:
    """Decode one uplink; ``state["input<n>"]`` keeps each configured input's counter."""
    opts = check_options(options)
    payload = bytes(payload)
    if fport == FPORT_TIME_SYNC:
        return _decode_time_sync(payload)
    if fport != FPORT_DATA:
        raise DecodeError(f"{NAME}: fPort {fport!r} is not a data port "
                          f"(expected {FPORT_DATA}, or {FPORT_TIME_SYNC} for time sync)")
    if not payload:
        raise DecodeError(f"{NAME}: empty payload on fPort {FPORT_DATA}")
    if payload[0] not in (TYPE_REGULAR, TYPE_ALARM):
        raise DecodeError(f"{NAME}: packet type {payload[0]} on fPort {FPORT_DATA} is not "
                          f"{TYPE_REGULAR} (regular) or {TYPE_ALARM} (alarm)")
    if len(payload) != _PACKET.size:
        raise DecodeError(f"{NAME}: packet type {payload[0]} is {len(payload)} bytes, expected {_PACKET.size}")
    kind, battery, settings, seconds, temperature, *counts = _PACKET.unpack(payload)
    values: dict[str, float] = {}
    if battery <= 100:
        values[BATTERY_POINT] = float(battery)
    values[TEMPERATURE_POINT] = float(temperature)
    status = {"settings": float(settings)}
    if kind == TYPE_ALARM:
        status["alarm"] = 1.0
    updates = {}
    for n, cfg in opts["inputs"].items():
        key = f"input{n}"
        new_state, counted, event = advance(state.get(key, {}), counts[n - 1], COUNTER_BITS,
                                            cfg["litres_per_pulse"])
        updates[key] = new_state
        values[cfg["name"]] = counted + cfg["initial_m3"]
        if event:
            status[f"{key}_counter_{event}"] = 1.0
    state.update(updates)
    return Decoded(values, device_time(seconds), status)


def encode(values: Mapping[str, float], ts: float | None, options: Mapping[str, Any] | None,
           fport: int = FPORT_DATA, *, alarm: bool = False, settings: int = 0) -> tuple[int, bytes]:
    """Return ``(fport, payload)`` a device would send.

    fPort 2: a regular packet (an alarm packet with ``alarm=True``) carrying
    the configured inputs' totals ``values[<name>]`` in m3 (unlisted inputs
    count 0), ``battery_pct`` and ``temperature_c`` (defaults 100 % and
    20 °C) and ``ts`` (``None`` sends 0, a clock never set).
    fPort 4: a time sync request, with the device clock when ``ts`` is given.
    """
    opts = check_options(options)
    if fport == FPORT_TIME_SYNC:
        clock = b"" if ts is None else _TIME.pack(u32_time(ts))
        return fport, bytes([TYPE_TIME_SYNC]) + clock
    if fport != FPORT_DATA:
        raise ValueError(f"{NAME}: cannot encode for fPort {fport!r} (only {FPORT_DATA} and {FPORT_TIME_SYNC})")
    counts = [0, 0, 0, 0]
    for n, cfg in opts["inputs"].items():
        if cfg["name"] not in values:
            raise ValueError(f"{NAME}: no value for input {n}'s point {cfg['name']!r} to encode")
        counts[n - 1] = pulses_for(values[cfg["name"]], cfg["initial_m3"], cfg["litres_per_pulse"],
                                   COUNTER_BITS, cfg["name"])
    battery = _whole(values.get(BATTERY_POINT, DEFAULT_BATTERY_PCT), 0, 100, BATTERY_POINT)
    temperature = _whole(values.get(TEMPERATURE_POINT, DEFAULT_TEMPERATURE_C), -128, 127, TEMPERATURE_POINT)
    settings = _whole(settings, 0, 255, "settings")
    seconds = 0 if ts is None else u32_time(ts)
    kind = TYPE_ALARM if alarm else TYPE_REGULAR
    return fport, _PACKET.pack(kind, battery, settings, seconds, temperature, *counts)


def _decode_time_sync(payload: bytes) -> Decoded:
    """Decode an fPort 4 packet: a time sync request, with or without the device clock."""
    if not payload or payload[0] != TYPE_TIME_SYNC:
        got = f"packet type {payload[0]}" if payload else "an empty payload"
        raise DecodeError(f"{NAME}: {got} on fPort {FPORT_TIME_SYNC}, expected type {TYPE_TIME_SYNC} (time sync)")
    if len(payload) not in (1, 1 + _TIME.size):
        raise DecodeError(f"{NAME}: time sync request is {len(payload)} bytes, expected 1 or 5")
    # The device asks because its clock may be wrong, so its time is no reading time.
    return Decoded({}, None, {"time_sync_request": 1.0})


def _input_number(key: Any) -> int:
    """Return an ``inputs`` key (1..4, or "1".."4" from JSON) as an int; ``ValueError`` otherwise."""
    if isinstance(key, str) and key in ("1", "2", "3", "4"):
        key = int(key)
    if isinstance(key, int) and not isinstance(key, bool) and key in INPUTS:
        return key
    raise ValueError(f"inputs.{key!r}: not an input number (1, 2, 3 or 4)")


def _whole(value: Any, low: int, high: int, what: str) -> int:
    """Return ``value`` rounded to an int within ``low..high``; ``ValueError`` naming ``what``."""
    try:
        result = round(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{what}: {value!r} is not a number") from None
    if isinstance(value, bool) or not low <= result <= high:
        raise ValueError(f"{what}: {value!r} is outside {low}..{high}")
    return result
