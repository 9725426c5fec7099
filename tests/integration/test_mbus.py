"""Integration: M-Bus over real pseudo-terminals — `scada simulate`, `scada mbus scan`, `scada run`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap

import pytest
import yaml

from tests.integration.test_run import ROOT, SCADA, free_port, get, wait_for

pytestmark = pytest.mark.integration

#: Ids chosen so that the wildcard search has to descend: two share 7 digits.
SITE = """\
site: {{name: mbus test, timezone: Europe/Moscow}}
history: {{backend: sqlite, path: var/history.db, flush_interval: 200ms}}
api: {{listen: 127.0.0.1:{port}, auth: false}}
simulate: true
channels:
  - name: bus
    type: mbus
    transport: {{serial: /dev/ttyUSB9, baudrate: 38400}}
    timeout: 50ms
    retries: 1
    unit_loads: 10
    devices:
      - {{name: heat, address: 1, profile: mbus_heat_meter, poll: 1s, sim: {{model: heat_meter, id: 24310051}}}}
      - {{name: water, address: 5, poll: 1s, sim: {{model: water_meter, id: 24310052}}}}
      - {{name: w1, secondary: "55500001", poll: 1s, sim: {{model: water_meter, kind: cold, primary: 9}}}}
      - {{name: w2, secondary: "55500002", poll: 1s, sim: {{model: water_meter, kind: hot}}}}
      - {{name: dead, address: 7, poll: 1s, sim: {{model: water_meter, fault: silent}}}}
"""


@pytest.fixture
def site_file(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(SITE.format(port=free_port()))
    return path


@pytest.fixture
def simulator(site_file):
    """Run `scada simulate` and yield the pty of the M-Bus channel."""
    proc = subprocess.Popen(SCADA + ["simulate", "-c", str(site_file)], cwd=site_file.parent,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("bus: serial /dev/pts/"), line + proc.stderr.read()
        yield line.split()[2]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def scan(pty: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(SCADA + ["mbus", "scan", "--serial", pty, "--baud", "38400", "--timeout", "0.05",
                                   "--retries", "0", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_scan_finds_every_meter_by_primary_and_by_secondary(simulator, tmp_path):
    primary = scan(simulator, "--primary", "--last", "12", "--json")
    assert primary.returncode == 0, primary.stderr
    found = json.loads(primary.stdout)
    assert sorted((m["primary"], m["id"]) for m in found["meters"]) == [
        (1, "24310051"), (5, "24310052"), (9, "55500001")]
    assert "[" in primary.stderr  # the progress bar
    # Both scans, printed as a channel for the site file.  The silent meter is
    # simulated too but never answers, so it is not "found".
    both = scan(simulator, "--last", "10", "--yaml", "--name", "found")
    assert both.returncode == 0, both.stderr
    assert "collision" not in both.stderr
    snippet = yaml.safe_load(both.stdout)
    devices = snippet["channels"][0]["devices"]
    assert sorted(d["name"] for d in devices) == ["krt-24310051", "krt-24310052", "krt-55500001", "krt-55500002"]
    assert {d.get("address") for d in devices} == {1, 5, 9, None}
    assert [d["secondary"][:8] for d in devices if "secondary" in d] == ["55500002"]
    site = {"site": {"name": "scanned"}, **snippet}
    (tmp_path / "scanned.yaml").write_text(yaml.safe_dump(site, allow_unicode=True))
    check = subprocess.run(SCADA + ["check", str(tmp_path / "scanned.yaml")], cwd=ROOT, capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_scan_of_a_missing_port_fails_cleanly():
    result = subprocess.run(SCADA + ["mbus", "scan", "--serial", "/dev/does-not-exist", "--connect-timeout", "1"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "/dev/does-not-exist" in result.stderr.strip().splitlines()[-1]


def test_run_polls_mbus_meters_live(site_file):
    port = int(yaml.safe_load(site_file.read_text())["api"]["listen"].rsplit(":", 1)[1])
    base = f"http://127.0.0.1:{port}/api/v1"
    proc = subprocess.Popen(SCADA + ["run", "-c", str(site_file)], cwd=site_file.parent,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def good(tag):
            status, body = get(base, f"/tags/{tag}")
            return status == 200 and body["quality"] == "good" and body

        energy = wait_for(lambda: good("heat.energy_kwh"))
        assert energy["value"] > 1000 and energy["unit"] == "kWh"
        assert wait_for(lambda: good("w2.volume"))["unit"] == "m^3"
        assert abs(wait_for(lambda: good("heat.clock_drift_s"))["value"]) <= 60
        wait_for(lambda: get(base, "/tags/dead.status")[1].get("quality") == "comm_loss")
        status, devices = get(base, "/devices")
        by_name = {d["name"]: d for d in devices["devices"]}
        assert by_name["w1"]["address"] == "55500001FFFFFFFF"
        assert by_name["heat"]["meter"]["manufacturer"] == "KRT"
        assert by_name["heat"]["telegrams"] >= 3
        channel = get(base, "/channels")[1]["channels"][0]
        assert channel["type"] == "mbus" and channel["unit_loads"] == {"used": 5, "capacity": 10}
        # The monthly archive is in history at its own dates (the 1st of each month).
        # Midnight of the 1st in Moscow is 21:00 UTC the day before.
        status, history = get(base, "/tags/heat.energy_kwh/history?from=2020-01-01T00:00:00Z&to=2099-01-01T00:00:00Z")
        assert status == 200, history
        archive = [p for p in history["points"] if p["ts"].endswith("T21:00:00.000Z")]
        assert len(archive) == 12, history["points"][:15]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    assert "Traceback" not in out
