# -*- test-case-name: tests.integration.test_pty_engine -*-
"""Build the runtime from a validated config and run it on one asyncio loop.

DESIGN rule 1: Twisted's ``asyncioreactor`` is installed on a fresh asyncio
loop before anything imports the global reactor, and Sanic serves the API on
that same loop in single-process mode.  SIGINT/SIGTERM stop polling, flush
history, close ports and exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from scada.remote import ServiceSet
from tags.table import TagTable

log = logging.getLogger(__name__)


def install_reactor():
    """Install the asyncio reactor on a new loop and return ``(reactor, loop)``."""
    import sys

    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor

        loop = getattr(reactor, "_asyncioEventloop", None)
        if loop is None:
            raise RuntimeError("a non-asyncio Twisted reactor was installed before the engine started")
        return reactor, loop
    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
    from twisted.internet import reactor

    return reactor, loop


class _ChannelSink:
    """Where one channel object's samples, archive records and found tags go, until a reload stops it.

    A channel stopped by a reload may still have a callback under way (a
    TCP close is reported a turn later): what it delivers then must not
    reach tags that were removed, or that now belong to its replacement.
    """

    __slots__ = ("runtime", "name", "open")

    def __init__(self, runtime: "Runtime", name: str = "") -> None:
        self.runtime = runtime
        #: The channel's name, for the error a closed sink raises.
        self.name = name
        self.open = True

    def samples(self, samples) -> None:
        """Store a poll's samples in the tag table."""
        if self.open:
            self.runtime.tags.update_many(samples)

    def history(self, samples) -> None:
        """Write archive records to history; RuntimeError once the channel is stopped.

        Raising, not dropping: the archive code moves the archive book on
        only after this returns, and records never stored must be read
        again (by the replacement channel, or after the next start).
        """
        if not self.open:
            raise RuntimeError(f"channel {self.name} was stopped by a reload")
        self.runtime._write_history(samples)

    def define(self, tagdef) -> None:
        """Define a tag found only once the meter answered."""
        if self.open:
            self.runtime._define_tag(tagdef)


@dataclass
class _Built:
    """What a running channel was built from, for the next reload to compare with."""

    cfg: Any
    #: The profiles its devices use, as they were when it was built.
    profiles: dict
    #: None for channels a reload does not rebuild (uplink and hand-read ones).
    sink: _ChannelSink | None
    #: The simulator serving it when a reload added it to a simulated site (else None).
    field: Any = None


class Runtime:
    """Everything a running site consists of, wired together.

    ``reactor`` is injected (a ``task.Clock`` in tests).  With
    ``cfg.simulate`` true every channel is served by simulated meters on a
    pseudo-terminal pair (or a TCP listener for Modbus TCP), and polled
    through the real serial/TCP code path.
    """

    def __init__(self, cfg, reactor, base_dir: str | os.PathLike | None = None) -> None:
        from twisted.internet.defer import DeferredLock
        from twisted.internet.task import LoopingCall

        from scada.history import BACKLOG_TAG, build_historian
        from tags.historian.writer import HistoryWriter

        self.cfg = cfg
        self._reactor = reactor
        self.started_at = reactor.seconds()
        self.tags = TagTable()
        self.field = None
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        from scada.store import OpsStore

        #: The operational store: alarm journal and states, users, API tokens, login sessions.
        self.store = OpsStore(base / cfg.store.path, clock=reactor.seconds, reactor=reactor)
        serial_over: dict[str, str] = {}
        tcp_over: dict[str, tuple[str, int]] = {}
        if cfg.simulate:
            from channels.sim.field import SimulatedField

            self.field = SimulatedField(cfg, reactor)
            if any(c.type in ("modbus-rtu", "mbus") for c in cfg.channels):
                serial_over = self.field.start_pty()
            if any(c.type == "modbus-tcp" for c in cfg.channels):
                tcp_over = self.field.start_tcp()
        self.channels = []
        self.historian = None
        from scada.remote import build_modem_server

        #: The TCP server GPRS modems dial in to (None without ``modem_server:``).
        self.modem_server = build_modem_server(cfg, reactor)
        tz = ZoneInfo(cfg.site.timezone)
        from scada.archives import DEFAULT_PATH, FileArchiveBook

        #: The newest meter archive record stored, per device and archive (survives restarts).
        self.archive_book = FileArchiveBook(base / DEFAULT_PATH)
        self._tz = tz
        #: What each channel was built from (see :meth:`reload`), by channel name.
        self._built: dict[str, _Built] = {}
        for ch in cfg.channels:
            channel = self._build_channel(ch, serial_over, tcp_over)
            for tagdef in channel.tagdefs:
                self.tags.define(tagdef)
            self.channels.append(channel)
        from scada.remote import build_uplink_hub

        #: Routes LoRaWAN/NB-IoT uplinks (HTTP, MQTT, UDP) to their channels; None without such channels.
        self.uplinks = build_uplink_hub(self)
        self.historian = build_historian(cfg.history, reactor, base)
        self.tags.define(BACKLOG_TAG)
        self.backlog_alarm = False
        # Called at once if a queue left by an outage is already over the threshold.
        self.historian.add_backlog_listener(self._backlog_crossed)
        self._backlog_loop = LoopingCall(self._publish_backlog)
        self._backlog_loop.clock = reactor
        self.writer = HistoryWriter(self.tags, self.historian, reactor)
        self.alarms, self.notifier = self._build_alarms(cfg, reactor)
        from scada.manual import build_manual

        #: Hand readings: checked, stored in the operational store, written with quality ``manual``.
        self.manual = build_manual(self)
        from scada.registry import RegistryService

        #: Buildings, premises and meters: the configured registry plus the lifecycle events in the store.
        self.registry = RegistryService.from_config(cfg, self.store, reactor.seconds)
        # A recorded verification, replacement or decommissioning moves the meter's verification alarm;
        # so do events recorded before this start.
        self.registry.listeners.append(self._verification_moved)
        current = self.registry.current()
        for meter_id in {event.meter for event in self.store.meter_events()}:
            try:
                self._verification_moved(current.meter(meter_id))
            except KeyError:
                pass  # events of a meter no longer configured
        #: The balance service (ОДПУ against Σ ИПУ over a rolling window); None without balance groups.
        self.balance = None
        if cfg.balance.enabled and self.registry.current().balance_groups():
            from scada.balance.service import BalanceService

            self.balance = BalanceService(reactor, self.registry, self.historian, self.tags.update_many,
                                          cfg.site.timezone, every=cfg.balance.every, window=cfg.balance.window,
                                          settle=cfg.balance.settle)
            for tagdef in self.balance.tagdefs():
                self.tags.define(tagdef)
        #: What the runtime starts besides channels: the modem server, MQTT, UDP listeners, simulated uplinks.
        self.services = ServiceSet()
        #: Callbacks waiting for the API to listen (see :meth:`when_serving`); None: no server is coming
        #: (a runtime driven by tests), so they run at once.
        self._before_serving: list | None = None
        self._running = False
        self._closed = False  # stop() was called: no reload any more
        #: The site file a reload reads (the one ``cfg`` was loaded from unless :func:`run` is told another).
        self.config_path = str(getattr(cfg, "source", "") or "")
        self.loaded_at = reactor.seconds()
        #: Reloads tried (refused ones too), and what the last one did (a :class:`scada.reload.ReloadReport`).
        self.reloads = 0
        self.last_reload = None
        # One reload at a time: a SIGHUP while channels are still stopping waits for them.
        self._reload_lock = DeferredLock()

    def _verification_moved(self, meter) -> None:
        """Give the verification alarm of ``meter``'s device the registry's date (None once decommissioned)."""
        in_service = meter.decommissioned is None
        self.alarms.set_due(meter.device, meter.next_verification if in_service else None)

    def _build_alarms(self, cfg, reactor):
        """Return the alarm engine over every configured rule (plus the historian's backlog) and its notifier."""
        from alarms.engine import AlarmEngine
        from alarms.model import Priority
        from alarms.rules import LimitRule
        from scada.alarm_config import build_rules
        from scada.history import BACKLOG_TAG
        from scada.notify_build import build_notifier

        threshold = cfg.history.queue.alarm_backlog
        # Kept: a reload compares the rules a new site file gives with those running.
        self._alarm_rules = build_rules(cfg)
        rules = self._alarm_rules + [LimitRule(
            name="historian", tags=(BACKLOG_TAG.name,), hi=float(threshold), deadband=0.1 * threshold,
            priorities={"hi": Priority.HIGH},
            message="История не записывается: в очереди {value} значений (порог {limit})")]
        settings = cfg.alarm_settings
        engine = AlarmEngine(reactor, self.tags, rules, self.store, flood_count=settings.flood_count,
                             flood_window=settings.flood_window, max_shelve=settings.max_shelve,
                             tz=cfg.site.timezone)
        return engine, build_notifier(cfg, reactor, engine, self.store)

    def _publish_backlog(self) -> None:
        """Update the ``historian_backlog`` tag (once per flush interval)."""
        from scada.history import backlog_sample

        self.tags.update(backlog_sample(self.historian, self._reactor.seconds()))

    def _backlog_crossed(self, over: bool, backlog: int) -> None:
        """The history backlog crossed its alarm threshold: the hook the alarm engine attaches to."""
        self.backlog_alarm = over
        self._publish_backlog()

    def _define_tag(self, tagdef) -> None:
        """Define a tag a channel found only once its meter answered (M-Bus automatic mapping)."""
        if self.tags.get(tagdef.name) is None:
            self.tags.define(tagdef)

    def _write_history(self, samples) -> None:
        """Write a meter's archive records straight to history: they are past, not live, values."""
        if self.historian is not None:
            self.historian.write(samples)

    @property
    def reactor(self):
        """Return the injected reactor."""
        return self._reactor

    def uptime(self) -> float:
        """Return seconds since the runtime was built."""
        return self._reactor.seconds() - self.started_at

    def expect_server(self) -> None:
        """Say that an API server will be started: :meth:`when_serving` callbacks wait for :meth:`serving`."""
        if self._before_serving is None:
            self._before_serving = []

    def when_serving(self, callback) -> None:
        """Call ``callback()`` once the API listens (at once if it does, or if no server is expected)."""
        if self._before_serving is None:
            callback()
        else:
            self._before_serving.append(callback)

    def serving(self) -> None:
        """The API listens: run the callbacks that waited for it."""
        waiting, self._before_serving = self._before_serving or [], None
        for callback in waiting:
            try:
                callback()
            except Exception:  # noqa: BLE001 - one service that cannot start must not stop the others
                log.exception("cannot start %r after the API", callback)

    def start(self) -> None:
        """Start history and polling."""
        # Running from the first step: if a later step fails, stop() still
        # closes what the earlier ones opened.
        self._running = True
        start = getattr(self.historian, "start", None)
        if start is not None:
            start()
        self.writer.start()
        # Before polling: the first answers are already evaluated.
        self.alarms.start()
        self._backlog_loop.start(self.cfg.history.flush_interval, now=True)
        from scada.remote import start_services

        # Before the channels: a modem may dial in as soon as the port is open.
        start_services(self)
        self.services.add("config", lambda: None, self.config_health)
        from scada.simhistory import start as start_simulated_history

        # Before the channels: the archive book learns what the simulated
        # history holds before the first archive walk; the samples follow in
        # chunks on the reactor, so the API answers meanwhile.
        filling = start_simulated_history(self)
        if self.balance is not None:
            # After the simulated history is in: the first window is judged on it.
            if filling is not None and filling.finished is not None:
                filling.finished.addBoth(lambda _: self.balance.start() if self._running else None)
            else:
                self.balance.start()
            self.services.add("balance", self.balance.stop, self.balance.health)
        count = len(self.channels)
        for index, channel in enumerate(self.channels):
            channel.log_plan()
            # Thousands of one-meter modem channels would otherwise all poll at
            # the same instant every period (bench/modems.py: 82 % of the polls
            # done in time instead of 97 %).
            channel.phase = index / count
            channel.start()
        from scada.channelstats import start_channel_stats

        # After the channels: the first figures are theirs; stopped with the services.
        start_channel_stats(self)
        log.info("site %r running: %d channels, %d tags", self.cfg.site.name, len(self.channels), len(self.tags))

    def stop(self) -> list[str]:
        """Stop polling, flush history, close ports; return the problems met.

        Every step runs whatever the others do, so a history that cannot be
        flushed (a locked or full disk) does not leave ports open; such a
        failure is logged with the number of samples it loses.  Idempotent.
        """
        if not self._running:
            return []
        self._running = False
        self._closed = True
        problems: list[str] = []

        def attempt(what: str, step) -> None:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - shutdown must reach every step
                problems.append(f"{what}: {exc}")

        for channel in self.channels:
            attempt(f"channel {channel.name}", channel.stop)
        attempt("services", self.services.stop)
        if self._backlog_loop.running:
            self._backlog_loop.stop()
        attempt("notifications", self.notifier.stop)
        attempt("alarms", self.alarms.stop)
        attempt("history writer", self.writer.stop)
        attempt("history", self.historian.close)
        if self.field is not None:
            attempt("simulator", self.field.stop)
        for name, built in list(self._built.items()):
            if built.field is not None:
                attempt(f"simulator of channel {name}", built.field.stop)
        attempt("store", self.store.close)
        if problems:
            for problem in problems:
                log.error("while stopping: %s", problem)
            log.error("site %r stopped with errors", self.cfg.site.name)
        stats = self.historian.stats()
        log.info("history: %d samples accepted this run, %d written, %d left queued on disk",
                 stats["accepted_total"], stats["written_total"], stats["backlog"])
        if not problems:
            log.info("site %r stopped", self.cfg.site.name)
        return problems

    # ------------------------------------------------------------ channels and reload

    def _build_channel(self, ch, serial_over: dict, tcp_over: dict, profiles=None):
        """Return the channel object of ``ch`` (not started, its tags not defined) and remember what built it.

        ``serial_over`` / ``tcp_over`` map channel names to the simulator's
        pty path / TCP address; ``profiles`` default to the running config's.
        """
        from scada.reload import RELOADABLE_TYPES, used_profiles
        from scada.remote import build_other_channel, modem_link_factory

        profiles = self.cfg.profiles if profiles is None else profiles
        if ch.type not in RELOADABLE_TYPES:
            channel = build_other_channel(self, ch)
            self._built[ch.name] = _Built(ch, used_profiles(ch, profiles), None)
            return channel
        from channels.mbus.channel import MBusChannel
        from channels.modbus.channel import ModbusChannel

        sink = _ChannelSink(self, ch.name)
        link_factory = modem_link_factory(self.modem_server, ch)
        before = self._modem_link(ch)
        try:
            if ch.type == "mbus":
                channel = MBusChannel(self._reactor, ch, profiles, sink.samples, sink.history, sink.define, self._tz,
                                      serial_override=serial_over.get(ch.name), archive_book=self.archive_book,
                                      link_factory=link_factory)
            else:
                serial = serial_over.get(ch.name) if ch.type == "modbus-rtu" else None
                tcp = tcp_over.get(ch.name) if ch.type == "modbus-tcp" else None
                channel = ModbusChannel(self._reactor, ch, profiles, sink.samples, serial_override=serial,
                                        tcp_override=tcp, on_history=sink.history, archive_book=self.archive_book,
                                        tz=self._tz, link_factory=link_factory)
        except Exception:
            # Only a link this build registered: when the modem ID is taken
            # by a running channel, registering failed and that link stays.
            link = self._modem_link(ch)
            if link is not before:
                self._unregister_modem(ch, link)
            raise
        self._built[ch.name] = _Built(ch, used_profiles(ch, profiles), sink)
        return channel

    def _modem_link(self, ch):
        """Return the link the modem server holds for channel ``ch``'s modem ID (None: no modem, or none held)."""
        modem = getattr(ch.transport, "modem", None) if ch.transport is not None else None
        if modem is None or self.modem_server is None:
            return None
        return self.modem_server.links.get(str(modem))

    def _unregister_modem(self, ch, link) -> None:
        """Forget ``link``, the modem link of channel ``ch``: the modem's next dial-in is an unknown modem.

        Only while the server still holds that very link for the modem ID:
        another channel's link under the same ID (a reload's new channel
        refused because a running one has the modem) is not this one's.
        """
        if link is not None and link is self._modem_link(ch):
            # The server keeps its links by modem ID; a stopped link would
            # only be refused as "channel stopped", and a channel added
            # again with the same modem must be able to register it.
            del self.modem_server.links[str(ch.transport.modem)]

    def reload(self, new_cfg):
        """Apply the channel changes of a validated site config; return a Deferred firing with the report.

        Channels are compared by name (see :func:`scada.reload.plan_reload`):
        removed ones stop and their tags leave the table, added ones are
        built and started, changed ones are built again; the others are not
        touched.  Other sections are reported as needing a restart.
        Reloads run one at a time.
        """
        return self._reload_lock.run(self._reload, new_cfg)

    def reload_file(self, path: str | os.PathLike | None = None, adjust=None):
        """Read the site file again (``path``, default :attr:`config_path`) and reload it; Deferred of the report.

        ``adjust(cfg)`` returns the config with the command line's overrides
        (``--simulate``, ``--listen``).  A file with errors changes nothing:
        its problems are logged and reported.
        """
        return self._reload_lock.run(self._reload_file, os.fspath(path or self.config_path), adjust)

    def _reload_file(self, path: str, adjust):
        from scada.config import ConfigError, load_config
        from scada.reload import ReloadReport, log_refused

        try:
            cfg, warnings = load_config(path)
            if adjust is not None:
                cfg = adjust(cfg)
        except ConfigError as exc:
            problems = [str(p) for p in exc.problems if p.is_error]
        except Exception as exc:  # noqa: BLE001 - a reload must never take the running site down
            problems = [f"{path}: {exc}"]
        else:
            for warning in warnings:
                log.warning("reload: %s", warning)
            return self._reload(cfg, path)
        self.reloads += 1
        self.last_reload = ReloadReport(ts=self._reactor.seconds(), path=path, problems=problems)
        log_refused(path, problems)
        return self.last_reload

    def _reload(self, new_cfg, path: str | None = None):
        from twisted.internet import defer

        from scada.reload import ReloadReport, plan_reload

        self.reloads += 1
        report = ReloadReport(ts=self._reactor.seconds(), path=path or str(getattr(new_cfg, "source", "")))
        if self._closed:
            report.problems = ["the site is stopping"]
            self.last_reload = report
            return report
        built = {name: (b.cfg, b.profiles) for name, b in self._built.items()}
        plan = plan_reload(self.cfg, built, self._alarm_rules, new_cfg)
        report.unchanged = list(plan.unchanged)
        report.needs_restart = dict(plan.needs_restart)
        by_name = {channel.name: channel for channel in self.channels}
        stopping = []
        for name in [*plan.remove, *plan.restart]:
            stopping += self._take_down(by_name[name], removed=name in plan.remove)
        report.removed = list(plan.remove)
        # A simulator closes its listening ports a turn later: the channels
        # that replace it are built once they are closed.
        waiting = defer.gatherResults(stopping, consumeErrors=True) if stopping else defer.succeed(None)
        waiting.addErrback(lambda failure: log.warning("reload: a simulator did not stop cleanly: %s",
                                                       failure.getErrorMessage()))
        waiting.addCallback(lambda _: self._bring_up(plan, new_cfg, report))
        return waiting

    def _take_down(self, channel, removed: bool) -> list:
        """Stop a channel for a reload and forget its tags; return Deferreds of its simulators stopping."""
        from scada.channelstats import channel_device

        built = self._built.pop(channel.name)
        if built.sink is not None:
            built.sink.open = False
        try:
            channel.stop()
        except Exception:  # noqa: BLE001 - the others must be reloaded whatever this one does
            log.exception("reload: channel %s did not stop cleanly", channel.name)
        self._unregister_modem(built.cfg, getattr(channel, "link", None))
        self.channels.remove(channel)
        for device in built.cfg.devices:
            self.tags.remove_device(device.name)
            if self.field is not None:
                # The simulator API then says the meter is gone (or finds its new simulation).
                self.field.devices.pop(device.name, None)
        if removed:
            # A restarted channel keeps its statistics tags: the same figures follow.
            self.tags.remove_prefix(channel_device(channel.name) + ".")
        stopping = []
        if self.field is not None:
            # The site's simulator would keep serving its pty or TCP listener
            # until shutdown, and its simulated modem would keep dialling in,
            # against the rebuilt channel's own one.
            stopping.append(self.field.stop_channel(channel.name))
        if built.field is not None:
            stopping.append(built.field.stop())
        return stopping

    def _bring_up(self, plan, new_cfg, report):
        """Build and start the added and changed channels of ``plan``; finish and log ``report``."""
        from scada.channelstats import channel_device
        from scada.reload import log_report

        if self._closed:
            # stop() ran while the simulators of the channels taken down were closing: open nothing now.
            report.problems = ["the site is stopping"]
            self.last_reload = report
            log.warning("reload: the site is stopping; channels not started: %s",
                        ", ".join([ch.name for ch in plan.add] + list(plan.restart)) or "none")
            return report
        wanted = {ch.name for ch in plan.add} | set(plan.restart)
        for ch in new_cfg.channels:
            if ch.name not in wanted:
                continue
            try:
                channel = self._add_channel(ch, new_cfg)
            except Exception as exc:  # noqa: BLE001 - one channel that cannot be built must not stop the reload
                report.failed[ch.name] = str(exc) or type(exc).__name__
                log.debug("reload: channel %s", ch.name, exc_info=True)
                # Not running: no statistics either (a restarted channel kept them until now).
                self.tags.remove_prefix(channel_device(ch.name) + ".")
                continue
            if ch.name in plan.restart:
                report.restarted[ch.name] = plan.restart[ch.name][1]
            else:
                report.added[ch.name] = len(channel.devices)
        order = {ch.name: index for index, ch in enumerate(plan.channels)}
        self.channels.sort(key=lambda channel: order.get(channel.name, len(order)))
        running = [ch for ch in plan.channels if ch.name in self._built]
        self.cfg = self.cfg.model_copy(update={"channels": running, "profiles": {**self.cfg.profiles,
                                                                                **new_cfg.profiles}})
        if report.outcome == "applied":
            self.loaded_at = report.ts
        self.last_reload = report
        log_report(report)
        return report

    def _add_channel(self, ch, new_cfg):
        """Build channel ``ch`` of ``new_cfg`` (with its simulator on a simulated site), define its tags, start it."""
        serial_over: dict = {}
        tcp_over: dict = {}
        field = None
        if self.cfg.simulate:
            from types import SimpleNamespace

            from channels.sim.field import SimulatedField

            # Its own simulator: the one started with the site serves the
            # channels it was built for, on ptys and ports opened then.
            field = SimulatedField(SimpleNamespace(site=new_cfg.site, channels=[ch], profiles=new_cfg.profiles),
                                   self._reactor)
            try:
                if ch.type in ("modbus-rtu", "mbus"):
                    serial_over = field.start_pty()
                elif ch.type == "modbus-tcp":
                    tcp_over = field.start_tcp()
            except Exception:
                field.stop()
                raise
        channel = None
        try:
            channel = self._build_channel(ch, serial_over, tcp_over, new_cfg.profiles)
            taken = [t.name for t in channel.tagdefs if self.tags.get(t.name) is not None]
            if taken:
                raise ValueError(f"tag {taken[0]!r} is already defined by another channel")
        except Exception:
            self._built.pop(ch.name, None)
            if channel is not None:  # built, so its link is its own (a failed build cleaned up after itself)
                self._unregister_modem(ch, getattr(channel, "link", None))
            if field is not None:
                field.stop()
            raise
        self._built[ch.name].field = field
        for tagdef in channel.tagdefs:
            self.tags.define(tagdef)
        if field is not None and self.field is not None:
            # The simulator API finds the new meters by name.
            self.field.devices.update(field.devices)
        self.channels.append(channel)
        if self._running:
            try:
                server = self.modem_server
                if field is not None and field.modem_channels and server is not None and server.port:
                    from scada.remote import _reachable_host

                    field.start_modems(_reachable_host(server.listen_host), server.port)
                channel.log_plan()
                channel.phase = (len(self.channels) - 1) / len(self.channels)
                channel.start()
            except Exception:
                # Not running: leave nothing of it behind (tags, modem link, simulator); reported as failed.
                for stopping in self._take_down(channel, removed=True):
                    stopping.addErrback(lambda failure, name=ch.name: log.warning(
                        "reload: the simulator of channel %s did not stop cleanly: %s", name,
                        failure.getErrorMessage()))
                raise
        return channel

    def config_health(self) -> dict:
        """Return the site file, when it was loaded, and the outcome of the last reload (``/health``)."""
        from tags.timefmt import iso_utc

        return {"path": self.config_path, "loaded_at": iso_utc(self.loaded_at), "reloads": self.reloads,
                "last_reload": None if self.last_reload is None else self.last_reload.to_json()}

    def device_index(self) -> list[tuple[object, object]]:
        """Return (channel, device) pairs in configuration order."""
        return [(ch, dev) for ch in self.channels for dev in ch.devices]


def _install_reload(runtime: Runtime, reactor, path: str, adjust, state: dict):
    """Reload ``path`` on SIGHUP (see :meth:`Runtime.reload_file`); return the function that uninstalls it."""
    import signal

    if not path or not hasattr(signal, "SIGHUP"):
        return lambda: None

    def reload_now() -> None:
        if state.get("stopping") or runtime._closed:
            log.info("reload: SIGHUP while stopping; ignored")
            return
        if not runtime._running or runtime._before_serving is not None:
            if runtime._before_serving is not None:
                # Still starting: reload once the site runs and the API listens.
                runtime.when_serving(reload_now)
            else:
                log.warning("reload: SIGHUP but the site is not running; ignored")
            return
        log.info("reload: SIGHUP: reading %s", path)
        done = runtime.reload_file(path, adjust)
        done.addErrback(lambda failure: log.error(
            "reload failed: %s", failure.getErrorMessage(),
            exc_info=(failure.type, failure.value, failure.getTracebackObject())))

    def on_signal(signum, frame) -> None:
        # A Python signal handler runs between two bytecodes of the loop's
        # thread: hand the work to the reactor, as Twisted does for SIGTERM.
        reactor.callFromThread(reload_now)

    try:
        previous = signal.signal(signal.SIGHUP, on_signal)
    except ValueError:  # not the main thread (an embedding program): no reload on SIGHUP
        log.warning("reload on SIGHUP is not available: the engine does not run in the main thread")
        return lambda: None
    return lambda: signal.signal(signal.SIGHUP, previous)


def run(cfg, base_dir: str | os.PathLike | None = None, config_path: str | os.PathLike | None = None,
        adjust=None) -> int:
    """Run the site until SIGINT/SIGTERM; return the exit status.

    SIGHUP reloads the site file ``config_path`` (default: the file ``cfg``
    was loaded from); ``adjust(cfg)`` applies the command line's overrides
    to the reloaded config, as they were applied to ``cfg``.
    """
    reactor, loop = install_reactor()
    from scada.api import build_app

    try:
        runtime = Runtime(cfg, reactor, base_dir)
    except Exception as exc:  # noqa: BLE001 - any build failure: one line, status 1
        # Problems only the runtime can see (a simulator option, a history
        # path that is a directory or on a read-only disk): one clear line,
        # status 1, the traceback only with -v.
        log.error("cannot build the site: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
        return 1
    app = build_app(runtime)
    runtime.expect_server()
    state: dict = {}

    async def serve() -> None:
        server = await app.create_server(host=cfg.api.host, port=cfg.api.port, return_asyncio_server=True,
                                         access_log=False)
        if server is None:
            raise RuntimeError(f"cannot serve the API on {cfg.api.listen}")
        await server.startup()
        await server.before_start()
        await server.after_start()
        state["server"] = server
        log.info("API on http://%s:%d/api/v1, HMI on http://%s:%d/", cfg.api.host, cfg.api.port,
                 cfg.api.host, cfg.api.port)
        runtime.serving()

    async def shutdown() -> None:
        # The API first: a request arriving during shutdown must not meet a
        # closed historian.
        server = state.get("server")
        if server is not None:
            await server.before_stop()
            server.close()
            await server.wait_closed()
            await server.after_stop()
        # Give the database a moment for what is queued; whatever is left
        # stays on disk for the next start.
        if runtime.historian is not None and runtime._running:
            await runtime.historian.drain(timeout=3.0).asFuture(asyncio.get_running_loop())
        if runtime.stop():
            state.setdefault("error", "shutdown incomplete")

    def started() -> None:
        from twisted.internet.defer import Deferred

        def failed(failure):
            log.error("cannot start: %s", failure.getErrorMessage())
            state["error"] = failure.getErrorMessage()
            reactor.stop()

        try:
            runtime.start()
        except Exception as exc:  # noqa: BLE001 - any start failure ends the run with status 1
            log.error("cannot start the site: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
            state["error"] = str(exc)
            reactor.stop()
            return
        Deferred.fromFuture(asyncio.ensure_future(serve())).addErrback(failed)

    def stopping():
        from twisted.internet.defer import Deferred

        state["stopping"] = True
        return Deferred.fromFuture(asyncio.ensure_future(shutdown()))

    reactor.callWhenRunning(started)
    reactor.addSystemEventTrigger("before", "shutdown", stopping)
    path = os.fspath(config_path) if config_path is not None else runtime.config_path
    if path:
        # Absolute: /health shows which file it is, whatever the directory the engine was started from.
        path = runtime.config_path = os.path.abspath(path)
    uninstall_reload = _install_reload(runtime, reactor, path, adjust, state)
    try:
        reactor.run()
    finally:
        uninstall_reload()
    return 1 if "error" in state else 0
