"""Integration: a meter goes silent and comes back; ``scada run`` back-fills from its archive, real processes.

``scada simulate --tcp`` serves a meter whose profile has a one-second
archive (real meters close hourly, but a test cannot wait hours); the
engine polls it through an RTU-over-TCP gateway.  The meter is made silent
from the simulator's console for several archive intervals, then mended;
afterwards the gaps endpoint reports no missing slot over the silence and
history holds the records as ``backfilled``.
"""

from __future__ import annotations

import os
import re
import subprocess
import textwrap
import time

import pytest

from tags.timefmt import iso_utc, parse_iso
from tests.integration.test_run import ROOT, SCADA, free_port, get, wait_for
from tests.integration.test_tcp_channels import _stop

pytestmark = pytest.mark.integration

FIELD = textwrap.dedent("""\
    site: {{name: back-fill field}}
    channels:
      - name: gw
        type: modbus-rtu
        transport: {{tcp: {gw}}}
        comm_loss_after: 2
        archive_records_per_poll: 8
        archive_lookback: 5s
        devices:
          - {{name: m1, address: 1, profile: fast, poll: 500ms}}
    profiles:
      fast:
        sim: heat_meter
        points:
          - {{name: energy_kwh, function: holding, register: 0, type: u32, scale: 0.01, unit: kWh}}
          - {{name: volume_m3, function: holding, register: 2, type: u32, scale: 0.001, unit: m3}}
        archives:
          - name: fast
            interval: 1s
            depth: 100
            index_register: 256
            record: {{register: 257, count: 6}}
            timestamp: {{offset: 0}}
            points:
              - {{name: energy_kwh, offset: 2, type: u32, scale: 0.01}}
              - {{name: volume_m3, offset: 4, type: u32, scale: 0.001}}
    """)


def test_silence_is_backfilled_from_the_meter_archive(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    (tmp_path / "field.yaml").write_text(FIELD.format(gw="127.0.0.1:1"))
    sim = subprocess.Popen(SCADA + ["simulate", "--tcp", "-c", str(tmp_path / "field.yaml")], cwd=tmp_path, env=env,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = None
    try:
        match = re.match(r"(\S+): tcp (\S+:\d+)", sim.stdout.readline())
        assert match, sim.stderr.read() if sim.poll() is not None else ""
        port = free_port()
        site = tmp_path / "site.yaml"
        site.write_text(FIELD.format(gw=match.group(2)) + f"api: {{listen: 127.0.0.1:{port}, auth: false}}\n"
                        "history: {path: var/history.db}\n")
        run = subprocess.Popen(SCADA + ["run", "-c", str(site)], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        base = f"http://127.0.0.1:{port}/api/v1"

        def device():
            return get(base, "/devices")[1]["devices"][0]

        # The start-up walk has read the archive.
        wait_for(lambda: device()["archive_newest"]["fast"])
        sim.stdin.write("fault m1 silent\n")
        sim.stdin.flush()
        assert sim.stdout.readline().strip() == "ok: m1 silent"
        silent_from = time.time()
        wait_for(lambda: device()["state"] == "comm_loss")
        time.sleep(3.5)  # three archive intervals and more without any answer
        sim.stdin.write("fault m1 normal\n")
        sim.stdin.flush()
        assert sim.stdout.readline().strip() == "ok: m1 normal"
        back_at = time.time()
        wait_for(lambda: device()["state"] == "ok")

        window = f"from={iso_utc(silent_from - 4)}&to={iso_utc(back_at + 2)}"

        def no_gap():
            status, body = get(base, f"/devices/m1/gaps?{window}")
            assert status == 200, body
            (fast,) = body["archives"]
            return fast if fast["missing"] == 0 else None

        fast = wait_for(no_gap, deadline_s=20)
        assert fast["expected"] >= 6 and fast["interval"] == "1s" and fast["tags"] == ["m1.energy_kwh",
                                                                                      "m1.volume_m3"]
        _, history = get(base, f"/tags/m1.energy_kwh/history?from={iso_utc(silent_from)}&to={iso_utc(back_at)}")
        filled = [p for p in history["points"] if p["quality"] == "backfilled"]
        assert len(filled) >= 3
        assert all(parse_iso(p["ts"]) % 1 == 0 for p in filled)  # stamped at the archive's boundaries
        health = device()
        assert health["archive_errors"] == 0 and health["archive_records"] > 3
    finally:
        if run is not None:
            _stop(run)
        _stop(sim)
    assert run.returncode == 0 and sim.returncode == 0
    assert (tmp_path / "var" / "archives.json").exists()
