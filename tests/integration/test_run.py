"""Integration: ``scada run`` as a real process — API over HTTP, SIGTERM, history on disk."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SCADA = [sys.executable, "-m", "scada.cli"]


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(base: str, path: str) -> tuple[int, dict]:
    """GET ``path`` and return (status, JSON body) for 2xx and 4xx alike."""
    try:
        with urllib.request.urlopen(base + path, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(predicate, deadline_s: float = 30.0, step: float = 0.2):
    """Poll ``predicate`` until it returns a truthy value or the deadline passes."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            value = predicate()
        except (OSError, ValueError):
            value = None
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not reached in time")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Start ``scada run`` on a small simulated site; yield (process, base URL, dir); stop it."""
    tmp = tmp_path_factory.mktemp("run")
    port = free_port()
    (tmp / "site.yaml").write_text(textwrap.dedent(f"""\
        site: {{name: run test, timezone: Europe/Moscow}}
        history: {{backend: sqlite, path: var/history.db, flush_interval: 200ms}}
        api: {{listen: 127.0.0.1:{port}, auth: false}}
        simulate: true
        channels:
          - name: seg
            type: modbus-rtu
            transport: {{serial: /dev/ttyUSB9, baudrate: 9600, parity: E, rs485: {{termination: true}}}}
            timeout: 100ms
            retries: 1
            devices:
              - {{name: heat, address: 1, profile: generic_heat_meter, poll: 500ms}}
              - {{name: cold, address: 2, profile: generic_water_meter, poll: 500ms}}
              - {{name: el, address: 3, profile: generic_electricity_meter, poll: 500ms, termination: true}}
              - {{name: dead, address: 4, profile: generic_water_meter, poll: 500ms, sim: {{fault: silent}}}}
        """))
    proc = subprocess.Popen(SCADA + ["run", "-c", str(tmp / "site.yaml")], cwd=tmp,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        wait_for(lambda: get(base, "/health")[0] == 200)
        yield proc, base, tmp
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_tags_become_good(site):
    """Every tag of the answering meters turns good with a value and an ISO timestamp."""
    _, base, _ = site

    def good():
        _, body = get(base, "/tags")
        live = [t for t in body["tags"] if not t["name"].startswith("dead.")]
        return body if live and all(t["quality"] == "good" for t in live) else None

    body = wait_for(good)
    names = {t["name"] for t in body["tags"]}
    # Three answering meters, the dead one, the system tag historian_backlog and
    # the segment's seven channel-<ch>.* statistics.
    assert "heat.energy_kwh" in names and "historian_backlog" in names
    assert len(names) == 8 + 4 + 6 + 4 + 1 + 7, sorted(names)
    tag = next(t for t in body["tags"] if t["name"] == "heat.energy_kwh")
    assert tag["unit"] == "kWh" and tag["value"] > 0 and tag["ts"].endswith("Z")


def test_silent_device_comm_loss(site):
    """The silent meter's tags turn comm_loss and its timeouts are counted."""
    _, base, _ = site
    wait_for(lambda: get(base, "/tags?prefix=dead.")[1]["tags"][0]["quality"] == "comm_loss")
    _, body = get(base, "/devices")
    dead = next(d for d in body["devices"] if d["name"] == "dead")
    assert dead["state"] == "comm_loss" and dead["timeouts"] >= 6 and dead["last_good"] is None
    heat = next(d for d in body["devices"] if d["name"] == "heat")
    assert heat["last_good"].endswith("Z") and heat["timeouts"] == 0


def test_channels_and_health(site):
    """Channel statistics and health name the segment, its rate and termination state."""
    _, base, _ = site
    _, body = get(base, "/channels")
    seg = body["channels"][0]
    assert seg["name"] == "seg" and seg["termination"]["port"] == "unsupported"
    assert seg["transactions"] > 0 and "utilisation_pct" in seg and "tx_per_s" in seg
    status, health = get(base, "/health")
    assert status == 200 and health["status"] == "ok" and health["uptime_s"] > 0
    assert "seg" in health["channels"]


def test_one_tag_and_404(site):
    """One tag by name; unknown tags and paths are JSON 404s."""
    _, base, _ = site
    status, body = get(base, "/tags/heat.t_supply_c")
    assert status == 200 and body["name"] == "heat.t_supply_c" and body["unit"] == "°C"
    status, body = get(base, "/tags/nope.nothing")
    assert status == 404 and "nope.nothing" in body["error"]
    status, body = get(base, "/no/such/path")
    assert status == 404 and "error" in body


def test_history_raw_and_aggregated(site):
    """History comes back raw and per interval once samples are flushed."""
    _, base, _ = site
    body = wait_for(lambda: (b := get(base, "/tags/heat.flow_m3h/history")[1])["points"] and b)
    point = body["points"][0]
    assert set(point) == {"ts", "value", "quality"} and point["quality"] == "good"
    status, agg = get(base, "/tags/heat.flow_m3h/history?every=1m")
    assert status == 200 and agg["points"]
    row = agg["points"][-1]
    assert row["min"] <= row["mean"] <= row["max"] and row["last"] is not None


@pytest.mark.parametrize("query, word", [
    ("from=yesterday", "from"),
    ("to=2026-13-01", "to"),
    ("every=fast", "every"),
    ("every=0s", "every"),
    ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "before"),
    ("every=1s&from=2020-01-01&to=2026-01-01", "intervals"),
    ("limit=5", "limit"),
])
def test_history_bad_parameters(site, query, word):
    """Bad history parameters are 400s whose message names the value."""
    _, base, _ = site
    status, body = get(base, f"/tags/heat.flow_m3h/history?{query}")
    assert status == 400 and word in body["error"]


def test_sigterm_flushes_and_exits_zero(site):
    """SIGTERM stops polling, flushes history to disk and exits 0 (runs last)."""
    proc, _, tmp = site
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out[-2000:]
    assert " 0 left queued on disk" in out
    with sqlite3.connect(tmp / "var/history.db") as db:
        count = db.execute("select count(*) from samples").fetchone()[0]
    assert count > 0
    assert "Traceback" not in out


def test_check_reports_file_line(tmp_path):
    """``scada check`` prints FILE:LINE errors and exits 1; ok and 0 for the demo."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: {name: x}\nchannels:\n  - name: a\n    type: modbus-rtu\n"
                   "    transport: {serial: /dev/ttyS0, baudrate: 9601}\n    devices: []\n")
    proc = subprocess.run(SCADA + ["check", str(bad)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 1
    assert f"{bad}:5: " in proc.stdout and "9601" in proc.stdout and "Traceback" not in proc.stderr
    proc = subprocess.run(SCADA + ["check", "config/demo.yaml"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok")


def test_run_with_broken_config_exits_one(tmp_path):
    """``scada run`` on a broken file prints the problems and exits 1 without opening anything."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: {name: x}\nsimulate: maybe\n")
    proc = subprocess.run(SCADA + ["run", "-c", str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and f"{bad}:2: " in proc.stderr and "Traceback" not in proc.stderr
