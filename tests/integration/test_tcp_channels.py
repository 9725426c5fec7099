"""Integration: ``scada simulate --tcp`` serves meters; ``scada run`` polls them over TCP.

One channel is Modbus RTU through a transparent TCP serial gateway, the other
Modbus TCP (MBAP).  Both processes are real; the API is read over HTTP.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.integration.test_run import free_port, get, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SCADA = [sys.executable, "-m", "scada.cli"]

FIELD = textwrap.dedent("""\
    site: {{name: tcp field}}
    channels:
      - name: gw
        type: modbus-rtu
        transport: {{tcp: {gw}}}
        devices:
          - {{name: gw-heat, address: 1, profile: generic_heat_meter, poll: 500ms}}
          - {{name: gw-el, address: 7, profile: generic_electricity_meter, poll: 500ms}}
      - name: mtcp
        type: modbus-tcp
        transport: {{tcp: {mt}}}
        devices:
          - {{name: tcp-cold, address: 1, profile: generic_water_meter, poll: 500ms}}
    """)


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_poll_over_tcp_gateway_and_modbus_tcp(tmp_path):
    """Both TCP channels poll good; a fault typed into the simulator gives comm_loss and back; both exit 0."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sim_cfg = tmp_path / "field.yaml"
    sim_cfg.write_text(FIELD.format(gw="127.0.0.1:1", mt="127.0.0.1:2"))
    sim = subprocess.Popen(SCADA + ["simulate", "--tcp", "-c", str(sim_cfg)], cwd=tmp_path, env=env,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = None
    try:
        endpoints = {}
        for _ in range(2):
            line = sim.stdout.readline()
            match = re.match(r"(\S+): tcp (\S+:\d+)", line)
            assert match, (line, sim.stderr.read() if sim.poll() is not None else "")
            endpoints[match.group(1)] = match.group(2)
        port = free_port()
        site = tmp_path / "site.yaml"
        site.write_text(FIELD.format(gw=endpoints["gw"], mt=endpoints["mtcp"])
                        + f"api: {{listen: 127.0.0.1:{port}, auth: false}}\nhistory: {{path: h.db}}\n")
        run = subprocess.Popen(SCADA + ["run", "-c", str(site)], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        base = f"http://127.0.0.1:{port}/api/v1"

        def all_good():
            _, body = get(base, "/tags")
            tags = body["tags"]
            return tags if tags and all(t["quality"] == "good" for t in tags) else None

        tags = wait_for(all_good)
        assert {t["name"].split(".")[0] for t in tags} == {"gw-heat", "gw-el", "tcp-cold", "historian_backlog",
                                                             "channel-gw", "channel-mtcp"}
        _, channels = get(base, "/channels")
        by_name = {c["name"]: c for c in channels["channels"]}
        assert by_name["gw"]["link"]["transport"] == "tcp" and by_name["mtcp"]["link"]["state"] == "open"
        assert by_name["gw"]["termination"]["port"] == "not_applicable"

        # Break a meter from the simulator's console, watch it go comm_loss, mend it.
        sim.stdin.write("fault gw-heat silent\n")
        sim.stdin.flush()
        assert sim.stdout.readline().strip() == "ok: gw-heat silent"
        wait_for(lambda: {t["quality"] for t in get(base, "/tags?prefix=gw-heat.")[1]["tags"]} == {"comm_loss"})
        assert {t["quality"] for t in get(base, "/tags?prefix=gw-el.")[1]["tags"]} == {"good"}
        sim.stdin.write("fault gw-heat sideways\nfault gw-heat normal\n")
        sim.stdin.flush()
        assert sim.stdout.readline().startswith("error: unknown fault 'sideways'")
        assert sim.stdout.readline().strip() == "ok: gw-heat normal"
        wait_for(lambda: {t["quality"] for t in get(base, "/tags?prefix=gw-heat.")[1]["tags"]} == {"good"})
    finally:
        if run is not None:
            _stop(run)
        _stop(sim)
    assert run.returncode == 0 and sim.returncode == 0
