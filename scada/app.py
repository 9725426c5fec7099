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
from pathlib import Path
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


class Runtime:
    """Everything a running site consists of, wired together.

    ``reactor`` is injected (a ``task.Clock`` in tests).  With
    ``cfg.simulate`` true every channel is served by simulated meters on a
    pseudo-terminal pair (or a TCP listener for Modbus TCP), and polled
    through the real serial/TCP code path.
    """

    def __init__(self, cfg, reactor, base_dir: str | os.PathLike | None = None) -> None:
        from channels.mbus.channel import MBusChannel
        from channels.modbus.channel import ModbusChannel
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
        from scada.remote import build_other_channel, modem_link_factory

        for ch in cfg.channels:
            if ch.type not in ("modbus-rtu", "modbus-tcp", "mbus"):
                channel = build_other_channel(self, ch)
            elif ch.type == "mbus":
                channel = MBusChannel(reactor, ch, cfg.profiles, self.tags.update_many, self._write_history,
                                      self._define_tag, tz, serial_override=serial_over.get(ch.name),
                                      archive_book=self.archive_book,
                                      link_factory=modem_link_factory(self.modem_server, ch))
            else:
                serial = serial_over.get(ch.name) if ch.type == "modbus-rtu" else None
                tcp = tcp_over.get(ch.name) if ch.type == "modbus-tcp" else None
                channel = ModbusChannel(reactor, ch, cfg.profiles, self.tags.update_many,
                                        serial_override=serial, tcp_override=tcp, on_history=self._write_history,
                                        archive_book=self.archive_book, tz=tz,
                                        link_factory=modem_link_factory(self.modem_server, ch))
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
        rules = build_rules(cfg) + [LimitRule(
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

    def device_index(self) -> list[tuple[object, object]]:
        """Return (channel, device) pairs in configuration order."""
        return [(ch, dev) for ch in self.channels for dev in ch.devices]


def run(cfg, base_dir: str | os.PathLike | None = None) -> int:
    """Run the site until SIGINT/SIGTERM; return the exit status."""
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

        return Deferred.fromFuture(asyncio.ensure_future(shutdown()))

    reactor.callWhenRunning(started)
    reactor.addSystemEventTrigger("before", "shutdown", stopping)
    reactor.run()
    return 1 if "error" in state else 0
