"""Integration: nothing is lost between ``scada run`` and a real InfluxDB that goes away.

Both tests run the engine as a process on a simulated site (meters on a pty
pair) writing history to a throw-away ``influxd``:

- *outage*: influxd is stopped by PID while the engine keeps polling, then
  started again; every sample the engine accepted is in the database once.
- *crash*: with influxd down, the engine is killed with SIGKILL while its
  queue holds samples; after influxd and the engine are started again,
  every queued sample and every sample of the second run is in the
  database once;
- *back-fill*: the engine was off for six hours (its archive book says
  so); at start it reads the meter's hourly archive into InfluxDB and the
  gaps endpoint finds no hourly gap.

"Once" is checked by count: a sample's identity in InfluxDB is (series,
time), so the number of points equals the number of accepted samples only
if none is missing and none was stored twice under another identity.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from tags.historian.queue import DiskQueue
from tags.timefmt import iso_utc
from tests.integration.test_run import ROOT, SCADA, free_port, get, wait_for

pytestmark = pytest.mark.integration

_STOP_LINE = re.compile(r"history: (\d+) samples accepted this run, (\d+) written, (\d+) left queued on disk")


def _site(tmp: Path, influx_url: str) -> tuple[Path, str]:
    port = free_port()
    (tmp / "site.yaml").write_text(textwrap.dedent(f"""\
        site: {{name: outage test, timezone: Europe/Moscow}}
        history:
          backend: influxdb
          url: {influx_url}
          database: scada
          flush_interval: 200ms
          timeout: 2s
          queue: {{path: var/queue, alarm_backlog: 50}}
        api: {{listen: 127.0.0.1:{port}, auth: false}}
        simulate: true
        channels:
          - name: seg
            type: modbus-rtu
            transport: {{serial: /dev/ttyUSB9, baudrate: 19200}}
            timeout: 100ms
            devices:
              - {{name: heat, address: 1, profile: heat, poll: 200ms}}
              - {{name: heat2, address: 2, profile: heat, poll: 200ms}}
        # Live values only: archive back-fill may legitimately rewrite a
        # point (same tag and time), which would spoil counting by identity.
        profiles:
          heat:
            sim: heat_meter
            points:
              - {{name: energy_kwh, function: holding, register: 0, type: u32, scale: 0.01}}
              - {{name: volume_m3, function: holding, register: 2, type: u32, scale: 0.001}}
              - {{name: t_supply_c, function: holding, register: 6, type: i16, scale: 0.01}}
        """))
    return tmp / "site.yaml", f"http://127.0.0.1:{port}/api/v1"


def _start(tmp: Path, config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(SCADA + ["run", "-c", str(config)], cwd=tmp,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _history(base: str) -> dict:
    return get(base, "/health")[1]["history"]


def _stop(proc: subprocess.Popen[str]) -> tuple[int, int, int, str]:
    """SIGTERM the engine; return (accepted, written, left queued) from its last log line, and the log."""
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    match = _STOP_LINE.findall(out)
    assert match, out[-3000:]
    accepted, written, left = (int(x) for x in match[-1])
    return accepted, written, left, out


def _points(influxd) -> set[tuple[str, int]]:
    """Return (tag, microseconds) of every point in the database."""
    body = influxd.query('SELECT "quality" FROM "samples" GROUP BY "tag"', db="scada")
    points: set[tuple[str, int]] = set()
    count = 0
    for series in body["results"][0].get("series", []):
        for ts, _quality in series["values"]:
            points.add((series["tags"]["tag"], ts))
            count += 1
    assert count == len(points)
    return points


def _queued_lines(queue_dir: Path, scratch: Path) -> list[bytes]:
    """Read every line a queue directory still holds, from a copy (reading commits)."""
    copy = scratch / "queue-copy"
    shutil.copytree(queue_dir, copy)
    queue = DiskQueue(copy)
    lines: list[bytes] = []
    while queue.pending:
        data, count = queue.peek(10_000)
        lines += data.splitlines()
        queue.commit(count)
    queue.close()
    return lines


def _key(line: bytes) -> tuple[str, int]:
    series, _, micros = line.decode().rsplit(" ", 2)
    tag = series[series.rindex(",tag=") + 5 :]
    return tag, int(micros)


def test_outage_loses_and_duplicates_nothing(influxd, tmp_path):
    """Stop influxd while polling goes on, start it again: every accepted sample arrives exactly once."""
    config, base = _site(tmp_path, influxd.url)
    proc = _start(tmp_path, config)
    try:
        wait_for(lambda: _history(base)["written_total"] > 20)
        influxd.stop()
        # Polling goes on; the queue grows and the health says the store is down.
        backlog = wait_for(lambda: (h := _history(base))["backlog"] > 100 and not h["store_up"] and h)
        assert backlog["oldest_queued"] is not None and backlog["backlog_alarm_active"]
        _, tags = get(base, "/tags/historian_backlog")
        assert tags["value"] >= 50
        influxd.start()
        wait_for(lambda: (h := _history(base))["store_up"] and h["backlog"] < 20, deadline_s=60)
    finally:
        if proc.poll() is None:
            accepted, written, left, out = _stop(proc)
    assert left == 0 and accepted == written, out[-2000:]
    points = _points(influxd)
    assert len(points) == accepted
    assert "store is unavailable" in out and "takes samples again" in out


def test_kill_9_with_a_queue_loses_nothing(influxd, tmp_path):
    """SIGKILL the engine while influxd is down; after both restart, every queued sample arrives once."""
    influxd.stop()
    config, base = _site(tmp_path, influxd.url)
    proc = _start(tmp_path, config)
    try:
        wait_for(lambda: _history(base)["backlog"] > 200)
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    queued = _queued_lines(tmp_path / "var/queue", tmp_path)
    assert len(queued) > 200
    keys = {_key(line) for line in queued}
    assert len(keys) == len(queued)

    influxd.start()
    proc = _start(tmp_path, config)
    try:
        wait_for(lambda: (h := _history(base))["store_up"] and h["written_total"] >= len(queued)
                 and h["backlog"] < 20, deadline_s=60)
    finally:
        if proc.poll() is None:
            accepted, written, left, out = _stop(proc)
    assert left == 0, out[-2000:]
    assert written == len(queued) + accepted
    points = _points(influxd)
    assert keys <= points
    assert len(points) == len(queued) + accepted


def test_six_hours_missed_are_backfilled_into_influxdb(influxd, tmp_path):
    """The engine was off for six hours: at start it reads the meter's hourly archive into InfluxDB, no gap left."""
    import json
    import time

    now = time.time()
    hour = int(now // 3600) * 3600
    # The archive book says the newest hourly record stored closed 7 hours ago.
    (tmp_path / "var").mkdir()
    (tmp_path / "var/archives.json").write_text(json.dumps(
        {"version": 1, "devices": {"heat": {"hourly": float(hour - 7 * 3600)}}}))
    port = free_port()
    (tmp_path / "site.yaml").write_text(textwrap.dedent(f"""\
        site: {{name: backfill test, timezone: Europe/Moscow}}
        history: {{backend: influxdb, url: {influxd.url}, flush_interval: 200ms, queue: {{path: var/queue}}}}
        api: {{listen: 127.0.0.1:{port}, auth: false}}
        simulate: true
        channels:
          - name: seg
            type: modbus-rtu
            transport: {{serial: /dev/ttyUSB9, baudrate: 19200}}
            timeout: 100ms
            archive_records_per_poll: 8
            devices:
              - {{name: heat, address: 1, profile: generic_heat_meter, poll: 200ms}}
        """))
    base = f"http://127.0.0.1:{port}/api/v1"
    proc = _start(tmp_path, tmp_path / "site.yaml")
    window = f"from={iso_utc(hour - 6 * 3600)}&to={iso_utc(time.time() + 1)}"

    def hourly():
        status, body = get(base, f"/devices/heat/gaps?{window}")
        if status != 200:
            return None
        (arch,) = [a for a in body["archives"] if a["name"] == "hourly"]
        return arch if arch["missing"] == 0 else None

    try:
        arch = wait_for(hourly, deadline_s=60)
    finally:
        if proc.poll() is None:
            _, _, left, out = _stop(proc)
    assert arch["expected"] >= 6 and arch["gaps"] == []
    assert left == 0, out[-2000:]
    body = influxd.query(
        f"SELECT \"value\" FROM \"samples\" WHERE \"tag\" = 'heat.energy_kwh' AND \"quality\" = 'backfilled' "
        f"AND time > {(hour - 7 * 3600) * 10**9} AND time <= {hour * 10**9}", db="scada")
    times = [row[0] // 1_000_000 for row in body["results"][0]["series"][0]["values"]]
    assert times == [hour - k * 3600 for k in range(6, -1, -1)]
