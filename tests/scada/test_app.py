"""Runtime assembly and shutdown, on a memory reactor (no ports, no real time)."""

from __future__ import annotations

import sqlite3
import textwrap

from twisted.internet.testing import MemoryReactorClock

from scada.app import Runtime
from scada.config import load_config
from tags.model import Sample
from tags.quality import Quality

SITE = textwrap.dedent("""\
    site: {name: app test}
    history: {backend: sqlite, path: var/h.db}
    channels:
      - name: gw
        type: modbus-rtu
        transport: {tcp: 127.0.0.1:1}
        devices:
          - {name: m1, address: 1, profile: generic_water_meter, poll: 10s}
          - {name: m2, address: 2, profile: generic_heat_meter, poll: 10s, enabled: false}
    """)


def _runtime(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    cfg, _ = load_config(site)
    reactor = MemoryReactorClock()
    return Runtime(cfg, reactor, base_dir=tmp_path), reactor


def test_runtime_defines_tags_of_enabled_devices(tmp_path):
    """Tags are <device>.<point> for enabled devices only; history lives beside the site file."""
    runtime, _ = _runtime(tmp_path)
    names = runtime.tags.names()
    assert "m1.volume_m3" in names and not any(n.startswith("m2.") for n in names)
    assert (tmp_path / "var/h.db").exists()
    runtime.historian.close()


def test_start_connects_and_clean_stop_flushes(tmp_path):
    """start() connects the channel; stop() flushes accepted samples to disk and is idempotent."""
    runtime, reactor = _runtime(tmp_path)
    runtime.start()
    assert [(c[0], c[1]) for c in reactor.tcpClients] == [("127.0.0.1", 1)]
    runtime.tags.update(Sample("m1.volume_m3", 12.5, Quality.GOOD, 1000.0))
    assert runtime.stop() == []
    assert runtime.stop() == []
    with sqlite3.connect(tmp_path / "var/h.db") as db:
        rows = db.execute("select name, value from samples join tags on tags.id = tag_id order by name").fetchall()
    # The backlog tag and the channel's figures are published at start, when nothing happened yet
    # but m1's first poll, due at once, waiting for the link.
    stats = [(f"channel-gw.{point}", 1.0 if point == "queue_depth" else 0.0) for point in sorted(
        ("link_up", "tx_per_s", "utilisation_pct", "timeouts", "crc_errors", "devices_comm_loss", "queue_depth"))]
    assert rows == stats + [("historian_backlog", 0.0), ("m1.volume_m3", 12.5)]
    assert runtime.channels[0].link.state == "closed"


def test_stop_with_locked_history_keeps_the_queue(tmp_path):
    """A history that cannot be written at stop keeps its samples on disk; the next run writes them."""
    runtime, _ = _runtime(tmp_path)
    runtime.start()
    runtime.tags.update(Sample("m1.volume_m3", 12.5, Quality.GOOD, 1000.0))
    lock = sqlite3.connect(tmp_path / "var/h.db")
    lock.execute("BEGIN IMMEDIATE")
    try:
        problems = runtime.stop()
    finally:
        lock.rollback()
        lock.close()
    assert problems == []
    assert runtime.channels[0].link.state == "closed"
    # The backlog tag, the channel's 7 figures and the meter's value.
    assert runtime.historian.stats()["queued"] == 9
    again, _ = _runtime(tmp_path)
    assert again.historian.stats()["queued"] == 9
    again.start()
    assert again.stop() == []
    with sqlite3.connect(tmp_path / "var/h.db") as db:
        names = [r[0] for r in db.execute("select name from samples join tags on tags.id = tag_id")]
    assert names.count("m1.volume_m3") == 1
