"""Writing simulated history: the live chain's values, the marker, the archive book, the runtime's service."""

from __future__ import annotations

import asyncio
import sqlite3
import textwrap
from datetime import datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock

from channels.archive import MemoryArchiveBook
from channels.sim.field import SimulatedField
from channels.sim.history import HistorySimulator
from channels.sim.slave import SimBus
from scada import simhistory
from scada.app import Runtime
from scada.config import load_config
from scada.remote import ServiceSet
from tags.historian import SqliteStore
from tags.quality import Quality
from tests.scada.sim_wire import SimWire, run_until

MSK = ZoneInfo("Europe/Moscow")
START = datetime(2026, 11, 19, 11, 59, 50, tzinfo=MSK).timestamp()
UNTIL = datetime(2026, 11, 19, 12, 30, tzinfo=MSK).timestamp()
DAY = 86400.0

SITE = textwrap.dedent("""\
    site: {name: history, timezone: Europe/Moscow}
    api: {auth: false}
    history: {backend: sqlite, path: var/history.db, flush_interval: 30s}
    simulate: true
    simulate_history: {hourly: 1d, daily: 3d, gaps: {kv02: [[2026-11-19T06:00, 2026-11-19T08:00]]}}
    channels:
      - name: bus
        type: modbus-rtu
        transport: {tcp: 127.0.0.1:1}
        devices:
          - {name: cold, address: 1, profile: generic_water_meter, poll: 10s,
             sim: {model: building_water, kind: cold, sum_of: "kv*"}}
          - {name: kv01, address: 11, profile: generic_water_meter, poll: 10s}
          - {name: kv02, address: 12, profile: generic_water_meter, poll: 10s}
          - {name: el, address: 13, profile: generic_electricity_meter, poll: 10s}
          - {name: heat, address: 14, profile: generic_heat_meter, poll: 10s}
    """)


@pytest.fixture()
def cfg(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(SITE, encoding="utf-8")
    config, _ = load_config(path)
    return config


def run(clock, coroutine):
    """Drive ``coroutine`` on the memory clock until it ends; return its result or raise its error."""
    d = defer.Deferred.fromCoroutine(coroutine)
    for _ in range(100_000):
        if d.called:
            break
        clock.advance(0.0)
    out = []
    d.addBoth(out.append)
    result = out[0]
    if hasattr(result, "raiseException"):
        result.raiseException()
    return result


def rows(path, tag):
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT ts, value, quality FROM samples JOIN tags ON tags.id = tag_id "
                            "WHERE name = ? ORDER BY ts", (tag,)).fetchall()


def test_samples_equal_what_polling_stores(cfg, tmp_path):
    """Every value the live chain stored (simulator → RTU → driver → history) is the simulated history's value."""
    clock = MemoryReactorClock()
    clock.advance(START)
    runtime = Runtime(cfg.model_copy(update={"simulate": False, "simulate_history": None}), clock,
                      base_dir=tmp_path)
    field = SimulatedField(cfg, clock)
    channel = runtime.channels[0]
    channel.link = SimWire(channel.scheduler, SimBus(field.channels["bus"].devices, clock, latency=0.0))
    runtime.start()
    try:
        run_until(clock, START + 25)
        runtime.historian.flush()
        store = runtime.historian.store
        loop = asyncio.new_event_loop()
        live = [s for tag in runtime.tags.names()
                for s in loop.run_until_complete(store.query_raw(tag, START - 1, START + 30))]
        loop.close()
    finally:
        runtime.stop()
    # Meter tags only: the runtime's own (historian_backlog, channel-bus.*) are not simulated.
    good = [s for s in live if s.quality is Quality.GOOD and "." in s.name and not s.name.startswith("channel-")]
    assert len({s.name for s in good}) == 4 + 4 + 4 + 6 + 8 and len({s.ts for s in good}) >= 2
    simulator = HistorySimulator(cfg)
    for sample in good:
        simulated = {s.name: s for s in simulator.sample(sample.ts)}
        assert simulated[sample.name] == sample, sample.name


def test_fill_once_then_only_what_is_new(cfg, tmp_path):
    """The marker makes a second run skip, a later one add only the new hours, --force rewrite all."""
    clock = MemoryReactorClock()
    store = SqliteStore(tmp_path / "h.db")
    historian = simhistory.bulk_historian(store, clock, cfg.history, own=True)
    historian.start()
    book = MemoryArchiveBook()
    settings = cfg.simulate_history
    first = run(clock, simhistory.fill(historian, cfg, clock, UNTIL, settings.hourly, settings.daily, settings.gaps,
                                       archive_book=book))
    assert first.state == "done" and first.since is None
    assert len(first.tags) == 4 + 4 + 4 + 6 + 8 and first.samples == 26 * (3 + 24) - 4 * 2
    assert book.newest("kv01", "hourly") == UNTIL - 1800 and book.saves == 1
    kv02 = [r[0] for r in rows(tmp_path / "h.db", "kv02.volume_m3")]
    assert len(kv02) == 3 + 24 - 2
    (marker,) = rows(tmp_path / "h.db", simhistory.MARKER_TAG)
    assert marker[0] == UNTIL

    again = run(clock, simhistory.fill(historian, cfg, clock, UNTIL + 600, settings.hourly, settings.daily,
                                       settings.gaps))
    assert (again.state, again.samples, again.since) == ("up_to_date", 0, UNTIL)

    later = run(clock, simhistory.fill(historian, cfg, clock, UNTIL + 3 * 3600, settings.hourly, settings.daily,
                                       settings.gaps))
    assert later.state == "done" and later.since == UNTIL and later.samples == 3 * 26

    forced = run(clock, simhistory.fill(historian, cfg, clock, UNTIL, settings.hourly, settings.daily,
                                        settings.gaps, force=True))
    assert forced.samples == first.samples
    # Rewritten, not doubled: (tag, time) is a sample's identity.
    assert len(rows(tmp_path / "h.db", "kv01.volume_m3")) == 3 + 24 + 3
    changed = run(clock, simhistory.fill(historian, cfg, clock, UNTIL, settings.hourly, 5 * DAY, settings.gaps))
    assert changed.since is None and changed.samples > first.samples
    historian.close()


def test_runtime_fills_in_the_background_and_reports(cfg, tmp_path):
    """The runtime's service: progress in /health's services, the runtime's store left open afterwards."""
    clock = MemoryReactorClock()
    clock.advance(UNTIL)
    store = SqliteStore(tmp_path / "h.db")
    runtime = SimpleNamespace(cfg=cfg, reactor=clock, historian=SimpleNamespace(store=store),
                              archive_book=MemoryArchiveBook(), services=ServiceSet())
    progress = simhistory.start(runtime)
    assert runtime.services.health()["simulated history"]["state"] == "running"
    for _ in range(10_000):
        if progress.state != "running":
            break
        clock.advance(0.0)
    health = runtime.services.health()["simulated history"]
    assert health["state"] == "done" and health["samples"] == progress.samples > 0 and health["tags"] == 26
    assert health["until"] == "2026-11-19T09:30:00.000Z" and health["error"] == ""
    assert rows(tmp_path / "h.db", "cold.volume_m3")  # the store is still open and holds the samples
    assert simhistory.start(SimpleNamespace(cfg=cfg.model_copy(update={"simulate": False}))) is None
    runtime.services.stop()
    store.close()


def test_a_store_that_refuses_fails_the_run(cfg, tmp_path, monkeypatch):
    """A database that does not take the samples ends the run with its error, not silently."""
    clock = MemoryReactorClock()
    store = SqliteStore(tmp_path / "h.db")
    historian = simhistory.bulk_historian(store, clock, cfg.history, own=True)
    monkeypatch.setattr(simhistory, "DRAIN_TIMEOUT", 0.0)
    store.close()
    with pytest.raises(RuntimeError, match="did not take the simulated samples"):
        run(clock, simhistory.fill(historian, cfg, clock, UNTIL, 3600.0, 0.0, force=True))
