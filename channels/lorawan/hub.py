# -*- test-case-name: tests.channels.lorawan.test_channel -*-
"""One entry point for every uplink, whatever carried it: MQTT, HTTP or UDP.

:class:`UplinkHub` routes a ChirpStack event by device EUI to the
``lorawan`` channel that has the device, and an NB-IoT message by device ID
to the ``nbiot`` channel that has it, and counts every outcome for
``/health``.  Callers answer an :class:`UplinkError` with its status and
message (HTTP) or count and log it (MQTT, UDP); nothing else is raised.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, deque
from typing import Iterable

from channels.lorawan.channel import UplinkChannel, UplinkDecodeError, normalise_key
from channels.lorawan.uplink import (
    Uplink,
    UplinkError,
    compile_id_pattern,
    load_json_object,
    normalise_eui,
    parse_chirpstack,
    parse_nbiot,
)

log = logging.getLogger(__name__)

#: The events ChirpStack v4 integrations publish (``?event=`` / the topic's last level).
CHIRPSTACK_EVENTS = ("up", "join", "status", "ack", "txack", "log", "location", "integration")
#: Unknown device keys kept for the health report (what to add to the configuration).
UNKNOWN_RECENT = 10
#: Unknown device keys logged once each; past this many, no more are logged.
UNKNOWN_LOGGED = 1000


class UplinkHub:
    """Route uplinks to the channels that own their devices and count the outcomes.

    ``id_pattern`` is the default regular expression (over bytes) finding
    the device ID at the start of a raw NB-IoT message.
    """

    def __init__(self, channels: Iterable[UplinkChannel], id_pattern: bytes | str | re.Pattern | None = None) -> None:
        """Index the devices of the ``lorawan`` and ``nbiot`` channels; ValueError if a key is used twice."""
        self.channels = [c for c in channels if getattr(c, "type", None) in ("lorawan", "nbiot")]
        self.id_pattern = compile_id_pattern(id_pattern)
        self._routes: dict[str, dict[str, UplinkChannel]] = {"lorawan": {}, "nbiot": {}}
        for channel in self.channels:
            routes = self._routes[channel.type]
            for device in channel.devices:
                other = routes.get(device.key)
                if other is not None:
                    raise ValueError(f"{device.key_name} {device.shown_key} is on channels {other.name!r} "
                                     f"and {channel.name!r}")
                routes[device.key] = channel
        self.received = 0
        self.accepted = 0
        self.duplicates = 0
        self.unknown_device = 0
        self.bad_request = 0
        self.decode_failed = 0
        self.other_events = 0
        self.by_event: Counter[str] = Counter()
        self.by_source: Counter[str] = Counter()
        self.last_error: str | None = None
        self.unknown_recent: deque[str] = deque(maxlen=UNKNOWN_RECENT)
        self._unknown_logged: set[str] = set()

    # --------------------------------------------------------------- entry points

    def chirpstack(self, body: bytes, event: str) -> dict:
        """Take one ChirpStack v4 event (JSON) of type ``event``.

        ``up`` returns ``{"device", "samples", "duplicate"}``; the other
        known events return ``{"event", "device"}`` (device ``None`` when
        unknown: they carry no readings, so an unknown device is no error).
        Raise :class:`UplinkError`: 400 for an unknown event or a bad body,
        404 for an uplink of an unknown device.
        """
        self.received += 1
        self.by_source["chirpstack"] += 1
        name = (event or "").strip().lower()
        self.by_event[name if name in CHIRPSTACK_EVENTS else "unknown"] += 1
        try:
            if name not in CHIRPSTACK_EVENTS:
                shown = repr(event) if event else "missing event"
                raise UplinkError(400, f"unknown event {shown} (expected one of {', '.join(CHIRPSTACK_EVENTS)})")
            if name != "up":
                return self._other_event(name, body)
            return self._route(parse_chirpstack(body))
        except UplinkError as exc:
            self._failed(exc)
            raise

    def nbiot(self, body: bytes, content_type: str | None = None, device_id: str | None = None, *,
              id_pattern: bytes | str | re.Pattern | None = None) -> dict:
        """Take one NB-IoT message (JSON or raw bytes, see :func:`channels.lorawan.uplink.parse_nbiot`).

        ``device_id`` names the device of a raw body (an HTTP ``?id=``);
        without it the ID is found by ``id_pattern`` (default: the hub's).
        Returns ``{"device", "samples", "duplicate"}``; raises
        :class:`UplinkError` (400 bad message, 404 unknown device).
        """
        self.received += 1
        self.by_source["nbiot"] += 1
        try:
            pattern = self.id_pattern if id_pattern is None else compile_id_pattern(id_pattern)
            return self._route(parse_nbiot(body, content_type, device_id, pattern))
        except UplinkError as exc:
            self._failed(exc)
            raise

    # ------------------------------------------------------------------ routing

    def channel_of(self, kind: str, key: str) -> UplinkChannel | None:
        """Return the channel of kind ``lorawan``/``nbiot`` that has the device ``key``, or None."""
        return self._routes.get(kind, {}).get(normalise_key(key))

    def _route(self, uplink: Uplink) -> dict:
        """Hand an uplink to its channel; count the outcome."""
        channel = self.channel_of(uplink.kind, uplink.dev_eui)
        if channel is None:
            key = normalise_key(uplink.dev_eui)
            if key not in self.unknown_recent:
                self.unknown_recent.append(key)
            if key not in self._unknown_logged and len(self._unknown_logged) < UNKNOWN_LOGGED:
                self._unknown_logged.add(key)
                log.warning("uplink from unknown %s device %s%s (add it to the configuration to read it)",
                            uplink.kind, key, f" ({uplink.device_name})" if uplink.device_name else "")
            what = "device EUI" if uplink.kind == "lorawan" else "device ID"
            raise UplinkError(404, f"unknown {what} {key}")
        received = channel.receive(uplink)
        if received.duplicate:
            self.duplicates += 1
        else:
            self.accepted += 1
        return {"device": received.device, "samples": len(received.samples), "duplicate": received.duplicate}

    def _other_event(self, name: str, body: bytes) -> dict:
        """Count a ChirpStack event that carries no readings; keep a status event's battery level."""
        doc = load_json_object(body, f"ChirpStack {name} event")
        info = doc.get("deviceInfo")
        device = None
        if isinstance(info, dict):
            try:
                key = normalise_eui(info.get("devEui"))
            except UplinkError:
                key = None
            channel = None if key is None else self.channel_of("lorawan", key)
            device = None if channel is None else channel.device(key)
        if device is not None and name == "status":
            level = doc.get("batteryLevel")
            if isinstance(level, (int, float)) and not isinstance(level, bool) and 0 <= level <= 100:
                device.battery = float(level)
        if device is not None and name == "join":
            log.info("device %s joined the network", device.name)
        self.other_events += 1
        return {"event": name, "device": None if device is None else device.name}

    def _failed(self, exc: UplinkError) -> None:
        """Count a refused message by cause and remember its message."""
        if isinstance(exc, UplinkDecodeError):
            self.decode_failed += 1
        elif exc.status == 404:
            self.unknown_device += 1
        else:
            self.bad_request += 1
            log.debug("uplink refused: %s", exc.message)
        self.last_error = exc.message

    # ------------------------------------------------------------------- health

    def devices(self) -> list:
        """Return every uplink device of every channel."""
        return [d for c in self.channels for d in c.devices]

    def health(self) -> dict:
        """Return the counters for ``/health``: every message received ends in exactly one of them."""
        return {
            "channels": [c.name for c in self.channels],
            "received": self.received,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "unknown_device": self.unknown_device,
            "bad_request": self.bad_request,
            "decode_failed": self.decode_failed,
            "other_events": self.other_events,
            "by_event": dict(self.by_event),
            "by_source": dict(self.by_source),
            "unknown_recent": list(self.unknown_recent),
            "last_error": self.last_error,
        }
