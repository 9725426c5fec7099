# -*- test-case-name: tests.scada.test_metrics -*-
"""Prometheus metrics of a running site, read from the runtime at scrape time.

:func:`build_registry` gives each API app a registry of its own (never
prometheus_client's global one: tests build several apps in one process)
holding :class:`RuntimeCollector` and prometheus_client's process,
platform and garbage-collector collectors.  Nothing is counted twice: the
collector turns the same health figures ``/api/v1/health``,
``/api/v1/channels`` and ``/api/v1/devices`` show into metric families on
every scrape, so there is no second set of counters to keep in step.

Families (prefix ``scada_``):

- channels, labels ``channel``, ``type``: ``channel_transactions_total``,
  ``channel_timeouts_total``, ``channel_crc_errors_total``,
  ``channel_exceptions_total`` (summed over the devices),
  ``channel_utilisation_ratio`` and ``channel_wire_utilisation_ratio``
  (0..1, last minute), ``channel_queue_depth``, ``channel_link_up`` (polled
  channels); ``channel_uplinks_total``, ``channel_decode_errors_total``
  (LoRaWAN / NB-IoT); ``channel_devices{channel,state}`` (every channel);
- devices, labels ``channel``, ``device``: ``device_up`` (1 while the last
  poll or uplink was answered and decoded: state ``ok`` or ``degraded``),
  ``device_timeouts_total``, ``device_crc_errors_total`` (polled devices;
  hand-read meters have no communications and no device series);
- history: ``historian_backlog_samples``, ``historian_backlog_bytes``,
  ``historian_store_up``, ``historian_accepted_total``,
  ``historian_written_total``, ``historian_dropped_total``,
  ``historian_rejected_total``, ``historian_flush_errors_total``,
  ``historian_oldest_queued_age_seconds``;
- alarms: ``alarms{state}``, ``alarms_active{priority}``, ``alarm_flood``,
  ``alarm_journal_errors_total``, ``alarm_journal_pending``,
  ``alarm_journal_dropped_total``;
- modems (with ``modem_server:``): ``modem_connections``,
  ``modem_identified``, ``modem_registered``, ``modem_connects_total`` and
  the server's other counters; ``modem_link_up{channel}`` and
  ``modem_link_connects_total{channel}`` per channel behind a modem;
- ``build_info{version}``, ``uptime_seconds``, ``tags``,
  ``metrics_errors_total`` (health reports that raised during scrapes:
  the object is left out of that scrape, the rest is served).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Iterator

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.exposition import generate_latest

from scada import installed_version
from scada.channelstats import POLLED_TYPES, UPLINK_TYPES

try:  # prometheus_client >= 0.22 says 1.0.0 in CONTENT_TYPE_LATEST; the spec serves text format 0.0.4
    from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4 as CONTENT_TYPE
except ImportError:  # older releases: the latest is 0.0.4
    from prometheus_client.exposition import CONTENT_TYPE_LATEST as CONTENT_TYPE

log = logging.getLogger(__name__)

__all__ = ["CONTENT_TYPE", "RuntimeCollector", "build_registry", "render"]

#: Device states that count as up.
UP_STATES = frozenset({"ok", "degraded"})
#: The states each kind of channel reports a device count for, also when none is in it (stable series).
DEVICE_STATES = {
    "polled": ("not_yet_read", "ok", "degraded", "failing", "comm_loss"),
    "uplink": ("not_yet_read", "ok", "decode_failed", "comm_loss"),
    "manual": ("manual",),
}
#: Modem server health keys published as counters (``scada_modem_<name>_total``).
MODEM_COUNTERS = {
    "accepted": ("connects", "TCP connections modems opened to the modem server"),
    "identifications": ("identifications", "Modems identified by their id"),
    "unknown_ids": ("unknown_ids", "Connections that sent an id no channel uses"),
    "unwanted": ("unwanted", "Connections of a known modem whose channel is stopped"),
    "garbage_closed": ("garbage_closed", "Connections closed for sending garbage before an id"),
    "identify_timeouts": ("identify_timeouts", "Connections closed for not identifying in time"),
    "heartbeats": ("heartbeats", "Heartbeat frames received"),
    "replaced": ("replaced", "Connections replaced by a new dial-in of the same modem"),
    "half_open_closed": ("half_open_closed", "Connections closed as half-open"),
    "idle_closed": ("idle_closed", "Connections closed after the idle timeout"),
    "timeout_closed": ("timeout_closed", "Connections closed after max_timeouts polls in a row timed out"),
}


class RuntimeCollector:
    """A prometheus_client collector reading a :class:`scada.app.Runtime` at every scrape."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        #: Health reports that raised, over every scrape so far.
        self.errors = 0
        self._version = installed_version()
        #: What failed already (logged with its traceback once, not on every scrape).
        self._failing: set[str] = set()

    def describe(self) -> list:
        """Say nothing at registration: describing would mean reading the whole runtime once more."""
        return []

    def _failed(self, what: str) -> None:
        self.errors += 1
        if what not in self._failing:
            self._failing.add(what)
            log.warning("metrics: the health of %s cannot be read; left out of the scrape", what, exc_info=True)

    def collect(self) -> Iterator:
        """Yield every ``scada_`` metric family, read from the runtime now."""
        rt = self.runtime
        yield from self._channels(rt)
        yield from self._historian(rt)
        yield from self._alarms(rt)
        yield from self._modems(rt)
        info = InfoMetricFamily("scada_build", "Version of the running engine")
        info.add_metric([], {"version": self._version})
        yield info
        yield GaugeMetricFamily("scada_uptime_seconds", "Seconds since the engine was built", value=rt.uptime())
        yield GaugeMetricFamily("scada_tags", "Tags defined in the tag table", value=len(rt.tags))
        yield CounterMetricFamily("scada_metrics_errors", "Health reports that raised during scrapes "
                                  "(the object was left out of that scrape)", value=self.errors)

    # ------------------------------------------------------------ channels

    def _channels(self, rt) -> Iterator:
        ct = ["channel", "type"]
        cd = ["channel", "device"]
        tx = CounterMetricFamily("scada_channel_transactions", "Requests put on the wire, retries included", labels=ct)
        timeouts = CounterMetricFamily("scada_channel_timeouts", "Attempts that timed out, all devices", labels=ct)
        crc = CounterMetricFamily("scada_channel_crc_errors", "Answers with a bad checksum, all devices", labels=ct)
        exceptions = CounterMetricFamily("scada_channel_exceptions", "Exception answers, all devices", labels=ct)
        util = GaugeMetricFamily("scada_channel_utilisation_ratio",
                                 "Share of the last minute the bus was busy (measured, 0..1)", labels=ct)
        wire = GaugeMetricFamily("scada_channel_wire_utilisation_ratio",
                                 "Share of the last minute bytes were on the wire (from byte counts, 0..1)", labels=ct)
        queue = GaugeMetricFamily("scada_channel_queue_depth",
                                  "Polls due but not yet started: how far the segment is behind its plan", labels=ct)
        link_up = GaugeMetricFamily("scada_channel_link_up", "Link to the segment up (1) or down (0)", labels=ct)
        uplinks = CounterMetricFamily("scada_channel_uplinks", "Uplinks received", labels=ct)
        decode_errors = CounterMetricFamily("scada_channel_decode_errors", "Uplinks that could not be decoded",
                                            labels=ct)
        devices = GaugeMetricFamily("scada_channel_devices", "Devices by communication state",
                                    labels=["channel", "state"])
        device_up = GaugeMetricFamily("scada_device_up", "Device answered and decoded at its last poll or uplink",
                                      labels=cd)
        device_timeouts = CounterMetricFamily("scada_device_timeouts", "Attempts that timed out", labels=cd)
        device_crc = CounterMetricFamily("scada_device_crc_errors", "Answers with a bad checksum", labels=cd)
        modem_up = GaugeMetricFamily("scada_modem_link_up", "The channel's modem is connected (1) or not (0)",
                                     labels=["channel"])
        modem_connects = CounterMetricFamily("scada_modem_link_connects", "Times the channel's modem dialled in",
                                             labels=["channel"])
        for channel in list(rt.channels):
            name = channel.name
            try:
                health = channel.health()
            except Exception:  # noqa: BLE001 - one broken channel must not break the scrape
                self._failed(f"channel {name}")
                continue
            kind_type = health.get("type", getattr(channel, "type", ""))
            labels = [name, kind_type]
            kind = "polled" if kind_type in POLLED_TYPES else "uplink" if kind_type in UPLINK_TYPES else "manual"
            states = Counter(dict.fromkeys(DEVICE_STATES[kind], 0))
            sums = Counter()
            for device in list(channel.devices):
                try:
                    dh = device.health()
                except Exception:  # noqa: BLE001 - one broken device must not break the scrape
                    self._failed(f"device {getattr(device, 'name', device)!r} of channel {name}")
                    continue
                state = dh.get("state", "unknown")
                states[state] += 1
                if kind == "manual":
                    continue
                dev = [name, dh.get("name", device.name)]
                device_up.add_metric(dev, 1.0 if state in UP_STATES else 0.0)
                if kind == "polled":
                    device_timeouts.add_metric(dev, dh.get("timeouts", 0))
                    device_crc.add_metric(dev, dh.get("crc_errors", 0))
                    for key in ("timeouts", "crc_errors", "exceptions"):
                        sums[key] += dh.get(key, 0) or 0
            for state, count in states.items():
                devices.add_metric([name, state], count)
            if kind == "polled":
                tx.add_metric(labels, health.get("transactions", 0))
                timeouts.add_metric(labels, sums["timeouts"])
                crc.add_metric(labels, sums["crc_errors"])
                exceptions.add_metric(labels, sums["exceptions"])
                # The percentages carry one decimal: 4 keep them exact (not 0.028999999999999998).
                util.add_metric(labels, round(health.get("utilisation_pct", 0.0) / 100.0, 4))
                wire.add_metric(labels, round(health.get("wire_utilisation_pct", 0.0) / 100.0, 4))
                scheduler = getattr(channel, "scheduler", None)
                queue.add_metric(labels, scheduler.queue_depth() if scheduler is not None else 0)
                link_up.add_metric(labels, 1.0 if health.get("link_up") else 0.0)
                link = health.get("link")
                if isinstance(link, dict) and link.get("transport") == "modem":
                    modem_up.add_metric([name], 1.0 if health.get("link_up") else 0.0)
                    modem_connects.add_metric([name], link.get("connects", 0))
            elif kind == "uplink":
                uplinks.add_metric(labels, health.get("uplinks", 0))
                decode_errors.add_metric(labels, health.get("decode_errors", 0))
        yield from (tx, timeouts, crc, exceptions, util, wire, queue, link_up, uplinks, decode_errors, devices,
                    device_up, device_timeouts, device_crc, modem_up, modem_connects)

    # ------------------------------------------------------------- history

    def _historian(self, rt) -> Iterator:
        historian = rt.historian
        if historian is None:
            return
        try:
            s = historian.stats()
        except Exception:  # noqa: BLE001 - a broken history report must not break the scrape
            self._failed("the historian")
            return
        oldest = s.get("oldest_queued_ts")
        age = max(0.0, rt.reactor.seconds() - oldest) if oldest is not None else 0.0
        yield GaugeMetricFamily("scada_historian_backlog_samples", "Samples accepted, not yet confirmed by the "
                                "history database", value=s.get("backlog", 0))
        yield GaugeMetricFamily("scada_historian_backlog_bytes", "Bytes of the on-disk queue not yet written",
                                value=s.get("backlog_bytes", 0))
        yield GaugeMetricFamily("scada_historian_store_up", "History database reachable and writing (1) or not (0)",
                                value=1.0 if s.get("store_up") else 0.0)
        for key, what in (("accepted", "Samples accepted into the queue"),
                          ("written", "Samples the history database confirmed"),
                          ("dropped", "Samples dropped from a full queue"),
                          ("rejected", "Samples the history database refused")):
            yield CounterMetricFamily(f"scada_historian_{key}", what, value=s.get(f"{key}_total", 0))
        yield CounterMetricFamily("scada_historian_flush_errors", "Failed writes to the history database",
                                  value=s.get("flush_errors", 0))
        yield GaugeMetricFamily("scada_historian_oldest_queued_age_seconds",
                                "Age of the oldest sample still queued (0 when the queue is empty)", value=age)

    # -------------------------------------------------------------- alarms

    def _alarms(self, rt) -> Iterator:
        try:
            summary = rt.alarms.summary()
        except Exception:  # noqa: BLE001 - a broken alarm report must not break the scrape
            self._failed("the alarm engine")
            return
        by_state = GaugeMetricFamily("scada_alarms", "Alarms by ISA-18.2 state", labels=["state"])
        for state, count in summary.get("by_state", {}).items():
            by_state.add_metric([state], count)
        active = GaugeMetricFamily("scada_alarms_active", "Active alarms by priority", labels=["priority"])
        for priority, count in summary.get("by_priority", {}).items():
            active.add_metric([priority], count)
        yield by_state
        yield active
        yield GaugeMetricFamily("scada_alarm_flood", "Alarm flood on (1) or not (0)",
                                value=1.0 if summary.get("flood") else 0.0)
        yield CounterMetricFamily("scada_alarm_journal_errors", "Failed writes to the alarm journal",
                                  value=summary.get("journal_errors", 0))
        yield GaugeMetricFamily("scada_alarm_journal_pending", "Journal entries and alarm states waiting in memory",
                                value=summary.get("journal_pending", 0))
        yield CounterMetricFamily("scada_alarm_journal_dropped", "Journal entries given up",
                                  value=summary.get("journal_dropped", 0))

    # -------------------------------------------------------------- modems

    def _modems(self, rt) -> Iterator:
        server = getattr(rt, "modem_server", None)
        if server is None:
            return
        try:
            h = server.health()
        except Exception:  # noqa: BLE001 - a broken modem server report must not break the scrape
            self._failed("the modem server")
            return
        yield GaugeMetricFamily("scada_modem_connections", "TCP connections open to the modem server",
                                value=h.get("connections", 0))
        yield GaugeMetricFamily("scada_modem_pending", "Connections that have not identified yet",
                                value=h.get("pending", 0))
        yield GaugeMetricFamily("scada_modem_identified", "Configured modems connected and identified",
                                value=h.get("identified", 0))
        yield GaugeMetricFamily("scada_modem_registered", "Modems the channels use", value=h.get("registered", 0))
        for key, (name, what) in MODEM_COUNTERS.items():
            yield CounterMetricFamily(f"scada_modem_{name}", what, value=h.get(key, 0))


def build_registry(runtime: Any) -> CollectorRegistry:
    """Return a new registry with the runtime's collector and the process, platform and GC collectors."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RuntimeCollector(runtime))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """Return the registry's metrics in the Prometheus text format 0.0.4."""
    return generate_latest(registry)
