"""Integration: ``scada history simulate`` on a copy of the demo, into SQLite on disk."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.integration.demo_site import demo_copy
from tests.integration.test_run import ROOT, SCADA

pytestmark = pytest.mark.integration
MSK = ZoneInfo("Europe/Moscow")
OCT = datetime(2025, 10, 1, tzinfo=MSK).timestamp()
NOV = datetime(2025, 11, 1, tzinfo=MSK).timestamp()


def series(conn, tag: str) -> dict[float, float]:
    return dict(conn.execute("SELECT ts, value FROM samples JOIN tags ON tags.id = tag_id "
                             "WHERE name = ? AND quality = 'good' ORDER BY ts", (tag,)))


def test_a_month_of_hourly_history_for_a_building(tmp_path):
    """October 2025 hour by hour: building meters are their apartments plus losses; the demo's gap is there."""
    demo_copy(tmp_path, history=True)
    command = SCADA + ["history", "simulate", "-c", "site.yaml", "--hourly", "35d", "--daily", "30d",
                       "--until", "2025-11-05T00:00"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("wrote ") and "into sqlite var/history.db" in proc.stdout
    with sqlite3.connect(tmp_path / "var" / "history.db") as conn:
        hours = [OCT + 3600 * h for h in range(31 * 24 + 1)]
        for building, members, unit, losses, resolution in [
                ("b1-hot", [f"b1-kv0{n}-hot" for n in range(1, 7)], "volume_m3", 0.03, 0.0005),
                ("b1-el", [f"b1-kv0{n}-el" for n in range(1, 7)], "energy_kwh", 0.02, 0.005)]:
            total = series(conn, f"{building}.{unit}")
            parts = [series(conn, f"{m}.{unit}") for m in members]
            assert set(hours) <= set(total)
            for t in hours:
                expected = (1 + losses) * sum(p[t] for p in parts)
                assert total[t] == pytest.approx(expected, abs=resolution * (1 + 7 * (1 + losses))), (building, t)
            month = total[NOV] - total[OCT]
            assert month == pytest.approx((1 + losses) * sum(p[NOV] - p[OCT] for p in parts), rel=1e-4)
        # The demo's gap: apartment 2's cold water has no reading of its own for the last full month.
        gap = series(conn, "b1-kv02-cold.volume_m3")
        assert OCT in gap and NOV not in gap and not [t for t in gap if OCT < t <= NOV]
        assert len(series(conn, "b1-kv01-cold.volume_m3")) == 30 + 35 * 24 + 1
        # The hand-read meters got their monthly readings.
        (manual,) = conn.execute("SELECT count(*) FROM samples WHERE quality = 'manual'").fetchone()
        assert manual >= 2 * 2
    book = json.loads((tmp_path / "var" / "archives.json").read_text())
    assert book["devices"]["b1-kv02-cold"]["monthly"] == NOV

    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 0 and "nothing written" in again.stdout


INFLUX_SITE = """\
site: {{name: influx history, timezone: Europe/Moscow}}
history: {{backend: influxdb, url: {url}, database: scada, flush_interval: 200ms}}
simulate: true
simulate_history: {{gaps: {{kv02: [month-1]}}}}
channels:
  - name: bus
    type: modbus-rtu
    transport: {{tcp: 127.0.0.1:1}}
    devices:
      - {{name: cold, address: 1, profile: generic_water_meter, sim: {{model: building_water, sum_of: "kv*"}}}}
      - {{name: kv01, address: 11, profile: generic_water_meter}}
      - {{name: kv02, address: 12, profile: generic_water_meter}}
"""


def test_into_influxdb(influxd, tmp_path):
    """The same through InfluxDB: every sample once, the marker found by the second run."""
    (tmp_path / "site.yaml").write_text(INFLUX_SITE.format(url=influxd.url), encoding="utf-8")
    command = SCADA + ["history", "simulate", "-c", "site.yaml", "--hourly", "3d", "--daily", "40d",
                       "--until", "2025-11-05T00:00"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("wrote ") and "into influxdb" in proc.stdout
    body = influxd.query('SELECT count("quality") FROM "samples" GROUP BY "tag"', db="scada")
    counts = {s["tags"]["tag"]: s["values"][0][1] for s in body["results"][0]["series"]}
    steps = 40 + 3 * 24 + 1
    assert counts["kv01.volume_m3"] == counts["cold.volume_m3"] == steps
    assert counts["kv02.volume_m3"] == steps - 31  # October's closing readings, 2 to 31 and 1 November
    assert counts["simulated_history"] == 1
    wrote = int(proc.stdout.split()[1])
    assert sum(counts.values()) == wrote + 1
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 0 and "nothing written" in again.stdout, again.stdout + again.stderr
