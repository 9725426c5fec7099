# -*- test-case-name: tests.channels.lorawan.test_uplink -*-
"""Uplinks as they arrive from outside: ChirpStack v4 events and NB-IoT messages.

Pure parsing, no I/O and no Twisted: every function takes the bytes a network
server, a broker or a datagram delivered and returns an :class:`Uplink`, or
raises :class:`UplinkError` with an HTTP status and a message that names the
bad field (DESIGN rule 8).  Nothing else ever escapes, whatever the input.

ChirpStack v4 encodes its events with pbjson: lowerCamelCase names, bytes in
base64, times in RFC 3339, and fields holding their default value (``fCnt``
0, ``fPort`` 0, empty ``data``) left out, so an absent ``fCnt`` means 0.
v3 names (``devEUI``, ``objectJSON``) are not accepted: they would route
nothing and hide a misconfigured integration.

NB-IoT meters have no common format.  Two forms are accepted:

- JSON ``{"id": "...", "data": "<base64>" | "hex": "..." | "values": {...},
  "time": RFC 3339 or Unix seconds, "seq": counter, "port": n,
  "messageId": "..."}``, where ``values`` are already decoded point values
  (like ChirpStack's ``object``), ``seq`` plays the frame counter's part and
  ``messageId`` the deduplication ID's (both optional);
- raw bytes: the device ID given by the caller (an HTTP path), or found at the
  start of the bytes by a regular expression over bytes (group ``id``, else
  group 1); the rest is the payload.  The default, :data:`DEFAULT_ID_PATTERN`,
  takes a 15-digit IMEI optionally followed by ``:``, ``;`` or ``,``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

#: Raw NB-IoT datagrams: a 15-digit IMEI, an optional separator, then the payload.
DEFAULT_ID_PATTERN = rb"^(?P<id>\d{15})[:;,]?"
#: Bodies larger than this are refused before parsing (a ChirpStack event is a few kB).
MAX_BODY = 256 * 1024
#: Unix seconds accepted as a time: the years 1970 to 9999.
_TIME_RANGE = (0.0, 253402300800.0)
_EUI = re.compile(r"[0-9A-F]{16}")


class UplinkError(Exception):
    """An uplink that cannot be taken: ``status`` is the HTTP status to answer (400, 404, …)."""

    def __init__(self, status: int, message: str) -> None:
        """Keep the HTTP status and the message for the ``{"error": ...}`` body."""
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        """Return the message alone (it goes into API answers and logs)."""
        return self.message


@dataclass(slots=True)
class Uplink:
    """One uplink of one device, whatever brought it.

    ``dev_eui`` is the routing key: a LoRaWAN device EUI in upper-case hex, or
    an NB-IoT device ID as sent.  ``fcnt`` is the frame counter (the NB-IoT
    ``seq``, ``None`` if the device sends none); ``fport`` is ``None`` for
    transports without ports.  ``time`` is when the network received it (Unix
    seconds) if the message says.  ``object`` holds values decoded upstream
    (ChirpStack's codec output, NB-IoT ``values``); ``rx`` the radio figures
    of the best gateway: ``rssi``, ``snr``, ``gateway`` and ``gateways``
    (how many heard it).
    """

    dev_eui: str
    fcnt: int | None = None
    fport: int | None = None
    data: bytes = b""
    time: float | None = None
    dedup_id: str | None = None
    object: dict | None = None
    rx: dict = field(default_factory=dict)
    #: ``"lorawan"`` or ``"nbiot"``: which channels may route it.
    kind: str = "lorawan"
    #: ChirpStack's ``deviceInfo.deviceName`` (diagnostics only; routing uses ``dev_eui``).
    device_name: str | None = None


def parse_chirpstack(body: bytes | str) -> Uplink:
    """Parse a ChirpStack v4 ``up`` event (JSON) into an :class:`Uplink`.

    Raise :class:`UplinkError` (400) naming the field for invalid JSON, a body
    that is not an object, a missing or malformed ``deviceInfo.devEui``, a
    bad ``fCnt``/``fPort``, ``data`` that is not base64, a ``time`` that is
    not RFC 3339, or an ``object`` that is not a JSON object.
    """
    doc = load_json_object(body, "ChirpStack event")
    info = doc.get("deviceInfo")
    if info is None:
        raise UplinkError(400, "missing deviceInfo (is this a ChirpStack v4 'up' event?)")
    if not isinstance(info, dict):
        raise UplinkError(400, f"deviceInfo is {_kind(info)}, expected an object")
    eui = info.get("devEui")
    if eui is None:
        raise UplinkError(400, "missing deviceInfo.devEui")
    dev_eui = normalise_eui(eui, "deviceInfo.devEui")
    name = info.get("deviceName")
    return Uplink(
        dev_eui=dev_eui,
        fcnt=_uint(doc, "fCnt", 0xFFFFFFFF, 0),
        fport=_uint(doc, "fPort", 255, 0),
        data=_base64(doc.get("data"), "data"),
        time=_time(doc.get("time"), "time", numeric=False),
        dedup_id=_opt_text(doc, "deduplicationId"),
        object=_object(doc.get("object"), "object"),
        rx=best_rx(doc.get("rxInfo")),
        kind="lorawan",
        device_name=name if isinstance(name, str) else None,
    )


def normalise_eui(value: Any, what: str = "devEui") -> str:
    """Return a 64-bit EUI as 16 upper-case hex digits (``-``/``:`` separators allowed); 400 otherwise."""
    if not isinstance(value, str):
        raise UplinkError(400, f"{what} is {_kind(value)}, expected 16 hex digits")
    clean = value.strip().replace("-", "").replace(":", "").upper()
    if not _EUI.fullmatch(clean):
        raise UplinkError(400, f"{what} {_show(value)} is not a device EUI (16 hex digits)")
    return clean


def best_rx(rx_info: Any) -> dict:
    """Return the radio figures of the gateway that heard the uplink best (highest RSSI, then SNR).

    ``rxInfo`` is diagnostics, not data: entries that are not objects or
    carry no numeric ``rssi`` are skipped rather than refusing a good reading.
    """
    if not isinstance(rx_info, list):
        return {}
    best: dict | None = None
    heard = 0
    for entry in rx_info:
        if not isinstance(entry, dict):
            continue
        rssi, snr = _finite(entry.get("rssi")), _finite(entry.get("snr"))
        if rssi is None and snr is None:
            continue
        heard += 1
        key = (-math.inf if rssi is None else rssi, -math.inf if snr is None else snr)
        if best is None or key > best["_key"]:
            gateway = entry.get("gatewayId")
            best = {"rssi": rssi, "snr": snr, "gateway": gateway if isinstance(gateway, str) else None,
                    "_key": key}
    if best is None:
        return {}
    del best["_key"]
    best["gateways"] = heard
    return best


# ---------------------------------------------------------------------- NB-IoT


def parse_nbiot(body: bytes | str, content_type: str | None = None, device_id: str | None = None,
                id_pattern: bytes | str | re.Pattern[bytes] | None = None) -> Uplink:
    """Parse an NB-IoT message in either form (see the module docstring).

    ``content_type`` ``application/json`` (parameters ignored) means the JSON
    form and ``application/octet-stream`` the raw form; any other or none (a
    UDP datagram, a client that sends no header) means JSON when the body
    starts with ``{`` and raw otherwise.  ``device_id``, when given (from an
    HTTP query), names the device of a raw body, or must agree with a JSON
    ``id``.
    """
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind in ("application/json", "text/json"):
        is_json = True
    elif kind == "application/octet-stream":
        is_json = False
    else:
        is_json = raw.lstrip()[:1] == b"{"
    if is_json:
        uplink = parse_nbiot_json(raw, device_id)
    else:
        uplink = parse_nbiot_raw(raw, device_id, id_pattern)
    return uplink


def parse_nbiot_json(body: bytes | str, device_id: str | None = None) -> Uplink:
    """Parse the JSON form ``{"id", "data" | "hex" | "values", "time", "seq", "port"}``.

    ``id`` may be a string or a whole number (an IMEI); it may be left out
    when ``device_id`` is given.  Exactly one of ``data`` (base64), ``hex``
    and ``values`` (an object of numbers) carries the reading.
    """
    doc = load_json_object(body, "NB-IoT message")
    ident = doc.get("id")
    if ident is None:
        if device_id is None:
            raise UplinkError(400, "missing id (the device's ID, e.g. its IMEI)")
        ident = device_id
    ident = _device_id(ident, "id")
    if device_id is not None and _device_id(device_id, "device id") != ident:
        raise UplinkError(400, f"id {_show(ident)} does not match the device {_show(device_id)} addressed")
    given = [key for key in ("data", "hex", "values") if doc.get(key) is not None]
    if len(given) != 1:
        which = "none" if not given else " and ".join(given)
        raise UplinkError(400, f"give exactly one of data (base64), hex or values; got {which}")
    data, values = b"", None
    if given[0] == "data":
        data = _base64(doc["data"], "data")
    elif given[0] == "hex":
        data = _hex(doc["hex"], "hex")
    else:
        values = _object(doc["values"], "values")
    return Uplink(
        dev_eui=ident,
        fcnt=_uint(doc, "seq", 0xFFFFFFFF, None),
        fport=_uint(doc, "port", 255, None),
        data=data,
        time=_time(doc.get("time"), "time", numeric=True),
        dedup_id=_opt_text(doc, "messageId"),
        object=values,
        kind="nbiot",
    )


def compile_id_pattern(pattern: bytes | str | re.Pattern[bytes] | None) -> re.Pattern[bytes]:
    """Compile an ID pattern over bytes (a ``str`` is taken byte for byte, Latin-1); ValueError naming it."""
    if pattern is None:
        pattern = DEFAULT_ID_PATTERN
    if isinstance(pattern, re.Pattern):
        if not isinstance(pattern.pattern, bytes):
            raise ValueError(f"ID pattern {pattern.pattern!r} must be a pattern over bytes")
        return pattern
    try:
        raw = pattern.encode("latin-1") if isinstance(pattern, str) else bytes(pattern)
        return re.compile(raw)
    except (UnicodeEncodeError, re.error) as exc:
        raise ValueError(f"ID pattern {pattern!r} is not a regular expression over bytes: {exc}") from None


def parse_nbiot_raw(body: bytes, device_id: str | None = None,
                    id_pattern: bytes | str | re.Pattern[bytes] | None = None) -> Uplink:
    """Parse raw bytes: the whole body is the payload of ``device_id``, or the ID is found by ``id_pattern``.

    The pattern is searched from the start of the body (``re.match``); its
    group ``id`` (else group 1, else the whole match) is the ID, shown as
    ASCII text when printable and as upper-case hex otherwise; the payload
    is everything after the match.
    """
    body = bytes(body)
    if len(body) > MAX_BODY:
        raise UplinkError(413, f"message of {len(body)} bytes is larger than {MAX_BODY}")
    if device_id is not None:
        ident, payload = _device_id(device_id, "device id"), body
    else:
        pattern = compile_id_pattern(id_pattern)
        match = pattern.match(body)
        if match is None:
            raise UplinkError(400, f"no device ID at the start of the message (pattern "
                                   f"{pattern.pattern.decode('latin-1')!r}): {body[:24].hex()}")
        group = "id" if "id" in pattern.groupindex else (1 if pattern.groups else 0)
        found = match.group(group) or b""
        if not found:
            raise UplinkError(400, "the ID pattern matched an empty device ID")
        ident = id_text(found)
        payload = body[match.end():]
    if not payload:
        raise UplinkError(400, f"message of device {_show(ident)} carries no payload")
    return Uplink(dev_eui=ident, data=payload, kind="nbiot")


def id_text(raw: bytes) -> str:
    """Return an ID read from bytes: the ASCII text if printable, else upper-case hex."""
    if all(0x21 <= b < 0x7F for b in raw):
        return raw.decode("ascii")
    return raw.hex().upper()


# --------------------------------------------------------------------- helpers


def load_json_object(body: bytes | str, what: str) -> dict:
    """Decode ``body`` as UTF-8 JSON that must be an object; :class:`UplinkError` 400/413 otherwise."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        if len(body) > MAX_BODY:
            raise UplinkError(413, f"{what} of {len(body)} bytes is larger than {MAX_BODY}")
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UplinkError(400, f"{what} is not UTF-8 text (byte {exc.start})") from None
    elif isinstance(body, str):
        text = body
    else:
        raise UplinkError(400, f"{what} is {_kind(body)}, expected JSON text")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UplinkError(400, f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") \
            from None
    except (RecursionError, ValueError) as exc:
        # Nesting deeper than the interpreter's stack, or a number too long to convert.
        raise UplinkError(400, f"{what} is not acceptable JSON: {type(exc).__name__}") from None
    if not isinstance(doc, dict):
        raise UplinkError(400, f"{what} is {_kind(doc)}, expected a JSON object")
    return doc


def _kind(value: Any) -> str:
    """Name a JSON value's type the way a message reader expects."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _show(value: Any, limit: int = 40) -> str:
    """Quote a value for a message, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _finite(value: Any) -> float | None:
    """Return a JSON number as a finite float, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _uint(doc: dict, key: str, top: int, default: int | None) -> int | None:
    """Return ``doc[key]`` as a whole number 0..top (``default`` when absent); 400 naming the key."""
    value = doc.get(key)
    if value is None:
        return default
    # Whole floats (3.0) come from some JSON writers; anything else is wrong.
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise UplinkError(400, f"{key} {_show(value)} is not a whole number from 0 to {top}")
    return value


def _opt_text(doc: dict, key: str) -> str | None:
    """Return ``doc[key]`` as text (None when absent); 400 naming the key when not a string."""
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise UplinkError(400, f"{key} is {_kind(value)}, expected a string")
    return value


def _device_id(value: Any, what: str) -> str:
    """Return an NB-IoT device ID (a non-empty string, or a whole number such as an IMEI)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.strip() and len(value) <= 80:
        return value.strip()
    raise UplinkError(400, f"{what} {_show(value)} is not a device ID (a non-empty string of at most 80 "
                           "characters, or a whole number)")


def _base64(value: Any, what: str) -> bytes:
    """Decode standard base64 (padding may be missing); 400 naming the field."""
    if value is None:
        return b""
    if not isinstance(value, str):
        raise UplinkError(400, f"{what} is {_kind(value)}, expected base64 text")
    text = value.strip()
    if len(text) % 4:
        text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise UplinkError(400, f"{what} {_show(value)} is not valid base64") from None


def _hex(value: Any, what: str) -> bytes:
    """Decode hex digits (spaces allowed); 400 naming the field."""
    if not isinstance(value, str):
        raise UplinkError(400, f"{what} is {_kind(value)}, expected hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise UplinkError(400, f"{what} {_show(value)} is not hex digits") from None


def _time(value: Any, what: str, numeric: bool) -> float | None:
    """Return an RFC 3339 time (or, if ``numeric``, Unix seconds) as Unix seconds; 400 naming the field."""
    if value is None:
        return None
    if numeric and not isinstance(value, (str, bool)):
        seconds = _finite(value)
        if seconds is None or not _TIME_RANGE[0] <= seconds < _TIME_RANGE[1]:
            raise UplinkError(400, f"{what} {_show(value)} is not a time (Unix seconds from 1970 or RFC 3339)")
        return seconds
    if not isinstance(value, str):
        raise UplinkError(400, f"{what} is {_kind(value)}, expected an RFC 3339 time")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UplinkError(400, f"{what} {_show(value)} is not an RFC 3339 time "
                               "(e.g. 2024-01-31T12:00:00.123Z)") from None
    if moment.tzinfo is None:
        # Network servers send UTC; a time without an offset is read as UTC too.
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        seconds = moment.timestamp()
    except (OverflowError, ValueError):
        raise UplinkError(400, f"{what} {_show(value)} is out of range") from None
    if not _TIME_RANGE[0] <= seconds < _TIME_RANGE[1]:
        raise UplinkError(400, f"{what} {_show(value)} is out of range")
    return seconds


def _object(value: Any, what: str) -> dict | None:
    """Return a JSON object field (None when absent); 400 naming the field otherwise."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise UplinkError(400, f"{what} is {_kind(value)}, expected a JSON object")
    return value


def flatten_numbers(obj: dict, prefix: str = "", depth: int = 0, out: dict | None = None) -> dict[str, float]:
    """Return the numeric leaves of a JSON object as ``{"a_b": value}`` (nested keys joined by ``_``).

    Booleans become 0/1; strings, nulls, arrays and non-finite numbers are
    skipped; nesting deeper than 8 levels is ignored.  Keys that cannot be
    half of a tag name (empty, containing whitespace or ``.``) are cleaned:
    ``.`` and whitespace become ``_``.
    """
    out = {} if out is None else out
    if depth > 8:
        return out
    for key, value in obj.items():
        name = re.sub(r"[\s.]+", "_", str(key)).strip("_")
        if not name:
            continue
        name = f"{prefix}_{name}" if prefix else name
        if isinstance(value, dict):
            flatten_numbers(value, name, depth + 1, out)
        elif isinstance(value, bool):
            out[name] = 1.0 if value else 0.0
        else:
            number = _finite(value)
            if number is not None:
                out[name] = number
    return out
