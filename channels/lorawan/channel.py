# -*- test-case-name: tests.channels.lorawan.test_channel -*-
"""Uplink channels: LoRaWAN and NB-IoT meters that send their readings when they like.

Nothing is polled.  An uplink arrives (from MQTT, HTTP or UDP, through
:class:`channels.lorawan.hub.UplinkHub`), is routed to its device by
device EUI (LoRaWAN) or ID (NB-IoT), and :meth:`UplinkChannel.receive`
turns it into samples:

- **Duplicates** are dropped and counted: an uplink whose
  ``deduplicationId`` was seen among the device's last :data:`RECENT_IDS`
  (the same frame delivered by both the MQTT and the HTTP integration), or
  whose frame counter equals the last one accepted, or — for uplinks
  without a deduplication ID (NB-IoT ``seq``) — one of the last
  :data:`RECENT_FCNTS` accepted (a late retransmission).
- **Frame-counter resets**: any other counter lower than the last one is a
  device that rejoined (LoRaWAN counters restart at 0) or wrapped; the
  uplink is taken and counted as ``fcnt_resets``.  An uplink with a new
  deduplication ID is a new frame by the network server's own account, so
  only the last counter makes it a repeat: a device that rejoins after two
  frames and counts 0, 1, … again is not mistaken for a retransmitter.
- **Values** come from the device's payload decoder
  (:mod:`channels.lorawan.decoders`), or without one from the numeric fields
  of the network server's ``object`` (the ChirpStack codec's output, NB-IoT
  ``values``), nested keys joined with ``_``; such tags are defined on first
  sight unless the device's ``points`` declare them.
- **Timestamps**: the device's own reading time when the decoder finds one,
  else the network's reception time, else the reactor's clock.
- **Decode failures** give ``DECODE_FAILED`` samples on the device's tags,
  are counted, and raise :class:`UplinkDecodeError` (HTTP 400) so the sender
  learns about it.
- **Comm loss**: a device silent for ``comm_loss_after`` × ``poll`` (its
  expected uplink period) gets ``COMM_LOSS`` samples once; its next uplink
  restores it.

The configuration is read by attribute: channel ``name``, ``type``
(``lorawan`` or ``nbiot``), ``comm_loss_after``, ``devices`` (``name``,
``enabled``, ``dev_eui`` or ``uplink_id``, ``decoder``, ``decoder_options``,
``points`` with ``name``/``unit``/``deadband``/``description``, ``poll``).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from datetime import tzinfo
from typing import Any, Callable, NamedTuple

from twisted.internet import task

from channels.lorawan import decoders
from channels.lorawan.uplink import Uplink, UplinkError, flatten_numbers, normalise_eui
from tags.model import Sample, TagDef
from tags.quality import Quality

log = logging.getLogger(__name__)

#: Deduplication IDs remembered per device (ChirpStack sends each frame's once per integration).
RECENT_IDS = 16
#: Frame counters remembered per device: an uplink repeating one of these is a duplicate.
RECENT_FCNTS = 4
#: Silence is checked this often, as a fraction of the shortest expected uplink period …
CHECK_FRACTION = 0.1
#: … but not more often than this (s) …
CHECK_MIN_S = 1.0
#: … nor less often than this (s).
CHECK_MAX_S = 60.0
#: Tags a device may define on first sight (fields of ``object``); more are ignored and
#: counted, so a misconfigured codec cannot flood the tag table.
MAX_AUTO_TAGS = 64
#: Keys of decoder values or status read as the battery level for device health.
BATTERY_KEYS = ("battery_pct", "battery_percent", "battery")


class Received(NamedTuple):
    """What became of one uplink: the device's name, the samples emitted, whether it was a duplicate."""

    device: str
    samples: list[Sample]
    duplicate: bool


class UplinkDecodeError(UplinkError):
    """The uplink reached its device but its payload could not be decoded (HTTP 400)."""


def device_key(channel_type: str, dev: Any) -> str:
    """Return the routing key of a configured device: its EUI or its NB-IoT ID, upper case.

    NB-IoT IDs are compared without regard to case too: an ID the raw form
    finds in binary is shown in upper-case hex, a configuration may write it
    in lower case.
    """
    if channel_type == "lorawan":
        eui = getattr(dev, "dev_eui", None)
        if not eui:
            raise ValueError(f"LoRaWAN device {dev.name!r} has no dev_eui")
        try:
            return normalise_eui(eui, f"device {dev.name!r} dev_eui")
        except UplinkError as exc:
            raise ValueError(exc.message) from None
    ident = getattr(dev, "uplink_id", None)
    if ident is None or not str(ident).strip():
        raise ValueError(f"NB-IoT device {dev.name!r} has no uplink_id")
    return str(ident).strip().upper()


def normalise_key(key: str) -> str:
    """Return a routing key (EUI or NB-IoT ID) in the form :func:`device_key` gives."""
    return key.strip().upper()


class UplinkDevice:
    """One meter that sends uplinks: its tags, decoder memory, link figures and counters."""

    def __init__(self, name: str, key: str, *, decoder_name: str | None, options: dict, period: float | None,
                 comm_loss_after: int, declared: dict[str, TagDef], decoder_points: list[TagDef],
                 on_samples: Callable[[list[Sample]], None], on_define: Callable[[TagDef], None],
                 auto_description: str, key_name: str = "dev_eui") -> None:
        """Set a device up; ``declared`` are the tag definitions the configuration gives by point name."""
        self.name = name
        self.key = key
        #: ``dev_eui`` or ``uplink_id``: what the key is called in health reports.
        self.key_name = key_name
        #: The key as configured, for health reports.
        self.shown_key = key
        self.decoder_name = decoder_name
        self.decoder = decoders.get(decoder_name) if decoder_name else None
        self.options = options
        self.period = period
        self.comm_loss_after = comm_loss_after
        self._declared = declared
        self._on_samples = on_samples
        self._on_define = on_define
        self._auto_description = auto_description
        from_decoder = {t.name for t in decoder_points}
        self.tagdefs: list[TagDef] = list(decoder_points) + [t for t in declared.values()
                                                             if t.name not in from_decoder]
        self.tags: list[str] = [d.name for d in self.tagdefs]
        self._defined = set(self.tags)
        #: The decoder's per-device memory (counter wraps and resets).
        self.decoder_state: dict = {}
        self.state = "not_yet_read"
        self.started: float | None = None
        self.last_uplink: float | None = None
        self.last_ts: float | None = None
        self.fcnt: int | None = None
        self.rssi: float | None = None
        self.snr: float | None = None
        self.gateways: int | None = None
        self.battery: float | None = None
        self.status: dict[str, float] = {}
        self.uplinks = 0
        self.duplicates = 0
        self.decode_errors = 0
        self.fcnt_resets = 0
        self.comm_losses = 0
        #: Values dropped because the device already has :data:`MAX_AUTO_TAGS` automatic tags.
        self.ignored_fields = 0
        self._auto_tags = 0
        self.last_error: str | None = None
        self._ids: deque[str] = deque(maxlen=RECENT_IDS)
        self._fcnts: deque[int] = deque(maxlen=RECENT_FCNTS)

    # ------------------------------------------------------------ uplinks

    def is_duplicate(self, uplink: Uplink) -> bool:
        """Tell whether ``uplink`` repeats one already taken (see the module docstring)."""
        if uplink.dedup_id is not None and uplink.dedup_id in self._ids:
            return True
        if uplink.fcnt is None or not self._fcnts:
            return False
        if uplink.dedup_id is not None:
            return uplink.fcnt == self._fcnts[-1]
        return uplink.fcnt in self._fcnts

    def receive(self, uplink: Uplink, now: float) -> Received:
        """Take one uplink routed to this device at reactor time ``now``; see the module docstring."""
        if self.is_duplicate(uplink):
            self.duplicates += 1
            return Received(self.name, [], True)
        self._note_frame(uplink, now)
        try:
            values, device_ts, status = self._values(uplink)
        except decoders.DecodeError as exc:
            raise self._decode_failed(uplink, now, str(exc)) from None
        except UplinkError as exc:
            raise self._decode_failed(uplink, now, exc.message) from None
        except Exception as exc:  # noqa: BLE001 - a decoder bug must not take the engine down (rule 8)
            log.exception("device %s: decoder %s failed", self.name, self.decoder_name)
            raise self._decode_failed(
                uplink, now, f"decoder {self.decoder_name} failed: {type(exc).__name__}: {exc}") from None
        ts = device_ts if device_ts is not None else uplink.time if uplink.time is not None else now
        samples = []
        for point, value in values.items():
            tag = f"{self.name}.{point}"
            if tag not in self._defined:
                if self._auto_tags >= MAX_AUTO_TAGS:
                    if not self.ignored_fields:
                        log.warning("device %s: more than %d new fields; %r and later ones are ignored",
                                    self.name, MAX_AUTO_TAGS, point)
                    self.ignored_fields += 1
                    continue
                self._define(tag, point)
            samples.append(Sample(tag, value, Quality.GOOD, ts))
        self.status = status
        battery = next((src[k] for src in (values, status) for k in BATTERY_KEYS if k in src), None)
        if battery is not None:
            self.battery = battery
        if self.state == "comm_loss":
            log.info("device %s: uplinks again after comm loss", self.name)
        self.state = "ok"
        self.last_error = None
        self.last_ts = ts
        if samples:
            self._on_samples(samples)
        return Received(self.name, samples, False)

    def _note_frame(self, uplink: Uplink, now: float) -> None:
        """Remember the frame for deduplication and update the link figures."""
        if uplink.dedup_id is not None:
            self._ids.append(uplink.dedup_id)
        if uplink.fcnt is not None:
            if self.fcnt is not None and uplink.fcnt < self.fcnt:
                # A rejoin restarts the counter: the old session's numbers
                # must not make the new session's frames look like repeats.
                self.fcnt_resets += 1
                self._fcnts.clear()
                log.info("device %s: frame counter went from %d to %d (rejoin or reset)",
                         self.name, self.fcnt, uplink.fcnt)
            self._fcnts.append(uplink.fcnt)
            self.fcnt = uplink.fcnt
        self.uplinks += 1
        self.last_uplink = now
        rx = uplink.rx or {}
        if rx.get("rssi") is not None or rx.get("snr") is not None:
            self.rssi, self.snr, self.gateways = rx.get("rssi"), rx.get("snr"), rx.get("gateways")

    def _values(self, uplink: Uplink) -> tuple[dict[str, float], float | None, dict[str, float]]:
        """Return ``(values by point, device time or None, status)`` of an uplink."""
        if self.decoder is not None:
            decoded = self.decoder.decode(uplink.data, uplink.fport, self.options, self.decoder_state)
            values = {}
            for point, value in decoded.values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    values[point] = float(value)
            return values, decoded.ts, dict(decoded.status)
        if uplink.object is not None:
            return flatten_numbers(uplink.object), None, {}
        if uplink.data:
            raise UplinkError(400, "no decoder configured and the uplink carries no decoded 'object' "
                                   "(set the device's decoder, or a codec in the network server)")
        return {}, None, {}

    def _decode_failed(self, uplink: Uplink, now: float, message: str) -> UplinkDecodeError:
        """Publish DECODE_FAILED on the device's tags, count, and return the error to raise."""
        self.decode_errors += 1
        self.last_error = message
        self.state = "decode_failed"
        log.warning("device %s: uplink not decoded: %s", self.name, message)
        ts = uplink.time if uplink.time is not None else now
        if self.tags:
            self._on_samples([Sample(tag, None, Quality.DECODE_FAILED, ts) for tag in self.tags])
        return UplinkDecodeError(400, f"device {self.name}: {message}")

    def _define(self, tag: str, point: str) -> None:
        """Define a tag seen for the first time (a field of ``object`` or an extra decoder value)."""
        self._defined.add(tag)
        self._auto_tags += 1
        self.tags.append(tag)
        tagdef = TagDef(tag, "", 0.0, self.name, self._auto_description)
        self.tagdefs.append(tagdef)
        self._on_define(tagdef)

    # ---------------------------------------------------------- comm loss

    def check_silence(self, now: float) -> None:
        """Go to comm loss (once) when nothing came for ``comm_loss_after`` expected periods."""
        if self.period is None or self.state == "comm_loss":
            return
        since = self.last_uplink if self.last_uplink is not None else self.started
        if since is None or now - since <= self.comm_loss_after * self.period:
            return
        self.state = "comm_loss"
        self.comm_losses += 1
        log.warning("device %s: no uplink for %.0f s (expected every %g s): comm loss",
                    self.name, now - since, self.period)
        if self.tags:
            self._on_samples([Sample(tag, None, Quality.COMM_LOSS, now) for tag in self.tags])

    def health(self) -> dict:
        """Return state, radio figures and counters for the devices endpoint."""
        return {
            "name": self.name, self.key_name: self.shown_key, "decoder": self.decoder_name, "state": self.state,
            "poll_s": self.period, "last_uplink": self.last_uplink, "last_ts": self.last_ts,
            "fcnt": self.fcnt, "rssi": self.rssi, "snr": self.snr, "gateways": self.gateways,
            "battery": self.battery, "status": dict(self.status), "uplinks": self.uplinks,
            "duplicates": self.duplicates, "decode_errors": self.decode_errors,
            "fcnt_resets": self.fcnt_resets, "comm_losses": self.comm_losses, "ignored_fields": self.ignored_fields,
            "last_error": self.last_error,
        }


class UplinkChannel:
    """The meters of one ``lorawan`` or ``nbiot`` channel.

    ``on_samples`` gets each uplink's samples (and the DECODE_FAILED /
    COMM_LOSS ones); ``on_define`` gets the tags first seen in a ChirpStack
    ``object``; :attr:`tagdefs` lists every tag known at construction.
    """

    def __init__(self, reactor, cfg, on_samples: Callable[[list[Sample]], None],
                 on_define: Callable[[TagDef], None], tz: tzinfo | None = None) -> None:
        """Build the devices of channel ``cfg``; ValueError naming a bad decoder option or a repeated key."""
        self._reactor = reactor
        self.cfg = cfg
        self.name = cfg.name
        self.type = cfg.type
        if self.type not in ("lorawan", "nbiot"):
            raise ValueError(f"channel {self.name!r}: type {self.type!r} is not an uplink channel")
        self.tz = tz
        self.key_name = "dev_eui" if self.type == "lorawan" else "uplink_id"
        comm_loss_after = getattr(cfg, "comm_loss_after", 3) or 3
        auto = "ChirpStack object field (automatic)" if self.type == "lorawan" else "NB-IoT value (automatic)"
        self.devices: list[UplinkDevice] = []
        self.by_key: dict[str, UplinkDevice] = {}
        for dev in cfg.devices:
            if not getattr(dev, "enabled", True):
                continue
            key = device_key(self.type, dev)
            if key in self.by_key:
                raise ValueError(f"channel {self.name!r}: devices {self.by_key[key].name!r} and {dev.name!r} "
                                 f"share {self.key_name} {key}")
            decoder_name = getattr(dev, "decoder", None)
            options: dict = {}
            decoder_points: list[TagDef] = []
            declared = {p.name: TagDef(f"{dev.name}.{p.name}", p.unit or "", float(getattr(p, "deadband", 0) or 0),
                                       dev.name, getattr(p, "description", "") or "")
                        for p in (getattr(dev, "points", None) or ())}
            if decoder_name:
                module = decoders.get(decoder_name)
                options = module.check_options(dict(getattr(dev, "decoder_options", None) or {}))
                for p in module.points(options):
                    own = declared.get(p.name)
                    # A point the configuration also declares keeps the decoder's
                    # unit but takes the configured deadband and description.
                    decoder_points.append(TagDef(
                        f"{dev.name}.{p.name}", p.unit, own.deadband if own else 0.0, dev.name,
                        (own.description if own and own.description else p.description)))
            poll = getattr(dev, "poll", None)
            device = UplinkDevice(
                dev.name, key, decoder_name=decoder_name, options=options,
                period=float(poll) if poll else None, comm_loss_after=comm_loss_after, declared=declared,
                decoder_points=decoder_points, on_samples=on_samples, on_define=on_define, auto_description=auto,
                key_name=self.key_name)
            if self.type == "nbiot":
                device.shown_key = str(dev.uplink_id).strip()
            self.devices.append(device)
            self.by_key[key] = device
        self.tagdefs: list[TagDef] = [t for d in self.devices for t in d.tagdefs]
        self._check: task.LoopingCall | None = None

    @property
    def check_interval(self) -> float:
        """Return how often silence is checked (s): a tenth of the shortest expected period, 1-60 s."""
        periods = [d.period for d in self.devices if d.period]
        if not periods:
            return CHECK_MAX_S
        return min(CHECK_MAX_S, max(CHECK_MIN_S, min(periods) * CHECK_FRACTION))

    def device(self, key: str) -> UplinkDevice | None:
        """Return the device with routing key ``key`` (EUI in any case for LoRaWAN), or None."""
        return self.by_key.get(normalise_key(key))

    def receive(self, uplink: Uplink) -> Received:
        """Take one uplink: 404 :class:`UplinkError` for a device not on this channel, else see the module doc."""
        device = self.device(uplink.dev_eui)
        if device is None:
            what = "device EUI" if self.type == "lorawan" else "device ID"
            raise UplinkError(404, f"unknown {what} {uplink.dev_eui} on channel {self.name}")
        return device.receive(uplink, self._reactor.seconds())

    def accept(self, uplink: Uplink) -> list[Sample]:
        """Take one uplink and return its samples ([] for a duplicate); errors as :meth:`receive`."""
        return self.receive(uplink).samples

    def check_silence(self) -> None:
        """Put devices silent for too long into comm loss (the periodic check calls this)."""
        now = self._reactor.seconds()
        for device in self.devices:
            device.check_silence(now)

    def start(self) -> None:
        """Start watching for silent devices; silence counts from now for devices not yet heard."""
        now = self._reactor.seconds()
        for device in self.devices:
            if device.started is None:
                device.started = now
        if self._check is None and any(d.period for d in self.devices):
            self._check = task.LoopingCall(self.check_silence)
            self._check.clock = self._reactor
            self._check.start(self.check_interval, now=False)

    def stop(self) -> None:
        """Stop watching for silence (uplinks are still taken if they arrive)."""
        if self._check is not None and self._check.running:
            self._check.stop()
        self._check = None

    def log_plan(self) -> None:
        """Log the meters, how they are decoded and when they are expected."""
        log.info("channel %s: %d %s meters (uplinks)", self.name, len(self.devices), self.type)
        for d in self.devices:
            how = f"decoder {d.decoder_name}" if d.decoder_name else "network server object fields"
            every = f"every {d.period:g}s" if d.period else "no expected period"
            log.info("  %s %s=%s: %s, %s, comm loss after %d silent periods",
                     d.name, self.key_name, d.shown_key, how, every, d.comm_loss_after)

    def health(self) -> dict:
        """Return the channel's state for ``/health`` and ``/channels``."""
        states = [d.state for d in self.devices]
        heard = [d.last_uplink for d in self.devices if d.last_uplink is not None]
        return {
            "name": self.name,
            "type": self.type,
            "devices": len(self.devices),
            "devices_ok": states.count("ok"),
            "devices_comm_loss": states.count("comm_loss"),
            "devices_decode_failed": states.count("decode_failed"),
            "devices_not_yet_read": states.count("not_yet_read"),
            "uplinks": sum(d.uplinks for d in self.devices),
            "duplicates": sum(d.duplicates for d in self.devices),
            "decode_errors": sum(d.decode_errors for d in self.devices),
            "fcnt_resets": sum(d.fcnt_resets for d in self.devices),
            "last_uplink": max(heard) if heard else None,
        }
