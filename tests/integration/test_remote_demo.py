"""Integration: the demo's remote buildings as a real process (issue 6's "done when").

- Building 4's meters are live through a simulated GPRS modem that dials in
  to the modem server, identifies itself and sends heartbeats.
- Building 5's LoRaWAN meters become tags through a real broker (the
  ``mosquitto`` the demo starts) and, with no broker configured, through
  ChirpStack's HTTP integration.
- A hand-held reader's CSV imports with quality ``manual``; a lower reading
  is refused.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.integration.demo_site import demo_copy, start_demo, stop_demo
from tests.integration.test_alarms_demo import call, token
from tests.integration.test_run import ROOT, SCADA, wait_for
from tests.integration.mosquitto import find_mosquitto

pytestmark = pytest.mark.integration

GPRS_TAGS = ("b4-heat.t_supply_c", "b4-cold.volume_m3", "b4-kv01-cold.volume_m3")
LORA_TAGS = ("b5-kv01-cold.volume_m3", "b5-water.cold_m3", "b5-water.hot_m3", "b5-water.battery_pct")


def run_demo(tmp, mqtt: bool):
    """Start the demo copy in ``tmp``; return (process, base URL, admin token)."""
    demo_copy(tmp, mqtt=mqtt)
    admin = token(tmp, "admin")
    proc, base = start_demo(tmp)
    return proc, base, admin


def good(base: str, admin: str, tags) -> bool:
    return all(call(base, f"/tags/{tag}", admin)[1].get("quality") == "good" for tag in tags)


@pytest.mark.skipif(find_mosquitto() is None and not os.environ.get("SCADA_REQUIRE_MOSQUITTO"),
                    reason="mosquitto is not installed")
def test_gprs_modem_lorawan_broker_and_hand_readings(tmp_path):
    proc, base, admin = run_demo(tmp_path, mqtt=True)
    try:
        wait_for(lambda: call(base, "/health")[0] == 200, 60)
        assert wait_for(lambda: good(base, admin, GPRS_TAGS + LORA_TAGS), 60), "remote buildings' tags not live"
        # Every simulated LoRaWAN meter sends its first uplink within a few seconds of the start.
        assert wait_for(lambda: call(base, "/health")[1]["services"]["uplinks"]["accepted"] >= 5, 30)
        services = call(base, "/health")[1]["services"]
        modems = services["modem server"]
        assert modems["identified"] == 1 and modems["unknown_ids"] == 0
        assert services["mosquitto"]["running"] and services["mqtt"]["connected"]
        assert services["mqtt"]["messages"] >= 5
        channels = {c["name"]: c for c in call(base, "/channels", admin)[1]["channels"]}
        assert channels["b4-gprs"]["link"]["transport"] == "modem" and channels["b4-gprs"]["link"]["state"] == "open"

        # A hand-held reader's export, Russian headers, decimal commas, local times.
        (tmp_path / "hand.csv").write_text(
            "Заводской номер;Дата и время;Показание\n"
            "ВСХ-0700101;20.11.2026 10:00;123,456\n"
            "ВСГ-0700102;20.11.2026 10:05;45,5\n", encoding="utf-8")
        imported = subprocess.run(SCADA + ["import", "readings", "hand.csv", "-c", "site.yaml", "--url",
                                           base.removesuffix("/api/v1"), "--token", admin],
                                  cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                                  text=True, timeout=60)
        assert imported.returncode == 0, imported.stderr
        status, tag = call(base, "/tags/b2-kv07-cold.volume_m3", admin)
        assert (status, tag["value"], tag["quality"]) == (200, 123.456, "manual")
        # Lower than the last reading of a cumulative register: refused with a clear message.
        (tmp_path / "lower.csv").write_text("serial;timestamp;value\nВСХ-0700101;2026-11-21T10:00:00+03:00;100\n",
                                            encoding="utf-8")
        refused = subprocess.run(SCADA + ["import", "readings", "lower.csv", "-c", "site.yaml", "--url",
                                          base.removesuffix("/api/v1"), "--token", admin],
                                 cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                                 text=True, timeout=60)
        assert refused.returncode == 1 and "lower.csv:2:" in refused.stderr and "meter replacement" in refused.stderr
    finally:
        out = stop_demo(proc, tail=4000)
    assert proc.returncode == 0
    assert "Traceback" not in out


def test_lorawan_over_the_http_integration_without_a_broker(tmp_path):
    proc, base, admin = run_demo(tmp_path, mqtt=False)
    try:
        wait_for(lambda: call(base, "/health")[0] == 200, 60)
        assert wait_for(lambda: good(base, admin, LORA_TAGS), 60), "LoRaWAN tags not live over HTTP"
        assert wait_for(lambda: call(base, "/health")[1]["services"]["uplinks"]["accepted"] >= 5, 30)
        services = call(base, "/health")[1]["services"]
        assert "mqtt" not in services and services["simulated uplinks"]["errors"] == 0
        status, body = call(base, "/devices", admin)
        by_name = {d["name"]: d for d in body["devices"]}
        assert status == 200 and by_name["b5-kv01-cold"]["state"] == "ok" and by_name["b5-kv01-cold"]["last_uplink"]
        assert by_name["b2-kv07-cold"]["state"] == "manual"
        assert call(base, "/channels", admin)[0] == 200
        # A bad uplink is a counted 4xx, never a crash.
        status, body = call(base, "/integrations/chirpstack?event=up", admin, {"deviceInfo": {"devEui": "nothex"}})
        assert status == 400 and "devEui" in body["error"]
        status, body = call(base, "/integrations/chirpstack?event=up", admin,
                            {"deviceInfo": {"devEui": "0011223344556677"}, "fCnt": 1, "data": "AAAAAA=="})
        assert status == 404 and "0011223344556677" in body["error"]
        assert call(base, "/health")[1]["services"]["uplinks"]["unknown_device"] == 1
    finally:
        out = stop_demo(proc, tail=4000)
    assert proc.returncode == 0
    assert "Traceback" not in out
