# -*- test-case-name: tests.scada.test_channelstats -*-
"""Channel statistics as system tags: ``channel-<channel>.<figure>``.

Every channel's health reaches the tag table, and through it the historian,
the alarm rules and Grafana's channel-health dashboard, under the
pseudo-device ``channel-<channel name>`` (as balance figures do under
``balance-<building>``).  The runtime publishes them once at start and
every minute after, quality good.

- polled channels (``modbus-rtu``, ``modbus-tcp``, ``mbus``, also behind a
  modem): ``link_up`` (1/0), ``tx_per_s``, ``utilisation_pct`` (0..100),
  ``timeouts`` and ``crc_errors`` (counts since start, summed over the
  devices), ``devices_comm_loss``, ``queue_depth`` (polls due but not yet
  started: how far the segment is behind its poll plan, i.e. a bus that
  cannot keep up; 0 while the link is down, whose due polls end at once as
  ``link_down``: ``link_up`` tells that; it counts the polls a windowed
  link holds while it sleeps outside its window);
- uplink channels (``lorawan``, ``nbiot``): ``uplinks`` and
  ``decode_errors`` (counts since start), ``devices_comm_loss``;
- hand-read (``manual``) channels: none.

:func:`channel_stat_tags` gives the names from configuration alone, so the
config check and ``scada grafana export`` know them before anything runs.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from scada.config.model import POLLED_TYPES, UPLINK_TYPES
from tags.model import Sample, TagDef
from tags.quality import Quality

__all__ = ["POLLED_TYPES", "PUBLISH_EVERY_S", "UPLINK_TYPES", "ChannelStatsPublisher", "channel_device",
           "channel_stat_tagdefs", "channel_stat_tags", "channel_stat_values", "device_sums", "start_channel_stats"]

log = logging.getLogger(__name__)

#: How often the figures are published (s).
PUBLISH_EVERY_S = 60.0

#: Figures of polled channels: point -> (unit, description).
POLLED_POINTS: dict[str, tuple[str, str]] = {
    "link_up": ("", "Link to the segment up (1) or down (0)"),
    "tx_per_s": ("1/s", "Transactions per second over the last minute"),
    "utilisation_pct": ("%", "Share of the last minute the bus was busy (0..100)"),
    "timeouts": ("", "Transactions timed out since start, all devices"),
    "crc_errors": ("", "Answers with a bad checksum since start, all devices"),
    "devices_comm_loss": ("", "Devices in communication loss"),
    "queue_depth": ("", "Polls due but not yet started: how far the segment is behind its poll plan"),
}
#: Figures of uplink channels.
UPLINK_POINTS: dict[str, tuple[str, str]] = {
    "uplinks": ("", "Uplinks received since start, all devices"),
    "decode_errors": ("", "Uplinks that could not be decoded since start, all devices"),
    "devices_comm_loss": ("", "Devices silent for longer than their comm-loss limit"),
}


def channel_device(channel_name: str) -> str:
    """Return the pseudo-device under which a channel's figures are published: ``channel-<name>``."""
    return f"channel-{channel_name}"


def _points(channel_type: str) -> dict[str, tuple[str, str]]:
    if channel_type in POLLED_TYPES:
        return POLLED_POINTS
    if channel_type in UPLINK_TYPES:
        return UPLINK_POINTS
    return {}


def channel_stat_tags(channel_cfg: Any) -> list[str]:
    """Return the statistics tags of a channel (anything with ``name`` and ``type``), [] for manual ones."""
    device = channel_device(channel_cfg.name)
    return [f"{device}.{point}" for point in _points(channel_cfg.type)]


def channel_stat_tagdefs(channel_cfg: Any) -> list[TagDef]:
    """Return the tag definitions of :func:`channel_stat_tags`, with units and descriptions."""
    device = channel_device(channel_cfg.name)
    return [TagDef(f"{device}.{point}", unit, 0.0, device, f"{description} ({channel_cfg.name})")
            for point, (unit, description) in _points(channel_cfg.type).items()]


def device_sums(devices, keys: tuple[str, ...]) -> tuple[dict[str, int], int]:
    """Return the sums of counters ``keys`` over the devices' ``health()``, and how many devices failed to report."""
    totals = dict.fromkeys(keys, 0)
    failed = 0
    for device in devices:
        try:
            health = device.health()
        except Exception:  # noqa: BLE001 - one broken device must not hide the channel's figures
            failed += 1
            continue
        for key in keys:
            totals[key] += health.get(key, 0) or 0
    return totals, failed


def channel_stat_values(channel: Any) -> dict[str, float]:
    """Return the figures of a running channel object by point name ({} for a manual channel).

    Raises whatever the channel's ``health()`` raises; a device whose
    ``health()`` fails is left out of the sums.
    """
    points = _points(channel.type)
    if not points:
        return {}
    health = channel.health()
    if points is UPLINK_POINTS:
        return {"uplinks": float(health.get("uplinks", 0)), "decode_errors": float(health.get("decode_errors", 0)),
                "devices_comm_loss": float(health.get("devices_comm_loss", 0))}
    sums, _ = device_sums(list(channel.devices), ("timeouts", "crc_errors"))
    scheduler = getattr(channel, "scheduler", None)
    return {
        "link_up": 1.0 if health.get("link_up") else 0.0,
        "tx_per_s": float(health.get("tx_per_s", 0.0)),
        "utilisation_pct": float(health.get("utilisation_pct", 0.0)),
        "timeouts": float(sums["timeouts"]),
        "crc_errors": float(sums["crc_errors"]),
        "devices_comm_loss": float(health.get("devices_comm_loss", 0)),
        "queue_depth": float(scheduler.queue_depth() if scheduler is not None else 0),
    }


class ChannelStatsPublisher:
    """Publish every channel's figures into the tag table now and every ``every`` seconds.

    ``channels()`` returns the runtime's current channel list: it is asked
    on every tick, so channels added or removed by a configuration reload
    are followed; tags are defined the first time a channel is published.
    """

    def __init__(self, reactor, channels: Callable[[], list], tags, every: float = PUBLISH_EVERY_S) -> None:
        self._reactor = reactor
        self._channels = channels
        self._tags = tags
        self.every = every
        self._loop = None
        #: Channels whose health could not be read at the last tick (logged once each until they recover).
        self._failing: set[str] = set()

    def start(self) -> None:
        """Publish now, then every ``every`` seconds."""
        from twisted.internet.task import LoopingCall

        if self._loop is not None and self._loop.running:
            return
        self._loop = LoopingCall(self.publish)
        self._loop.clock = self._reactor
        self._loop.start(self.every, now=True)

    def stop(self) -> None:
        """Stop publishing (the tags keep their last values)."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def publish(self) -> list[Sample]:
        """Publish the figures of every current channel; return the samples written."""
        now = self._reactor.seconds()
        samples: list[Sample] = []
        for channel in list(self._channels()):
            try:
                values = channel_stat_values(channel)
            except Exception:  # noqa: BLE001 - one broken channel must not stop the others' figures
                if channel.name not in self._failing:
                    self._failing.add(channel.name)
                    log.exception("channel %s: cannot read its statistics", channel.name)
                continue
            self._failing.discard(channel.name)
            if not values:
                continue
            tags = self._tags
            for tagdef in channel_stat_tagdefs(channel):
                if tags.get(tagdef.name) is None:
                    tags.define(tagdef)
            device = channel_device(channel.name)
            samples += [Sample(f"{device}.{point}", value, Quality.GOOD, now) for point, value in values.items()]
        if samples:
            self._tags.update_many(samples)
        return samples


def start_channel_stats(runtime: Any) -> ChannelStatsPublisher:
    """Start publishing ``runtime``'s channel figures; stopping the runtime's services stops it."""
    publisher = ChannelStatsPublisher(runtime.reactor, lambda: runtime.channels, runtime.tags)
    publisher.start()
    runtime.services.add("channel statistics", publisher.stop)
    return publisher
