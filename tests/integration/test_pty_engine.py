"""Integration: the engine polls simulated meters over real pseudo-terminals."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

SITE = textwrap.dedent("""\
    site: {name: pty test, timezone: Europe/Moscow}
    history: {backend: sqlite, path: history.db}
    simulate: true
    channels:
      - name: seg
        type: modbus-rtu
        transport:
          serial: /dev/ttyUSB9
          baudrate: 19200
          parity: E
          rs485: {rts_toggle: true, termination: true}
        timeout: 100ms
        retries: 1
        comm_loss_after: 2
        devices:
          - {name: m1, address: 1, profile: generic_heat_meter, poll: 200ms}
          - {name: m2, address: 2, profile: generic_water_meter, poll: 200ms}
          - {name: m3, address: 3, profile: generic_electricity_meter, poll: 200ms, termination: true}
    """)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """Run the pty scenario once and return its JSON report."""
    tmp = tmp_path_factory.mktemp("pty")
    site = tmp / "site.yaml"
    site.write_text(SITE)
    proc = subprocess.run([sys.executable, str(ROOT / "tests/integration/pty_scenario.py"), str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    report["stderr"] = proc.stderr
    return report


def _phase(report, name):
    return next(p for p in report["phases"] if p["phase"] == name)


def test_scenario_completes(scenario):
    """Every phase (good, silent, recovered, corrupt CRC, exception) is reached."""
    assert scenario["ok"], (scenario.get("stuck_in"), scenario["phases"][-1:], scenario["stderr"][-2000:])
    assert [p["phase"] for p in scenario["phases"]] == ["all_good", "silent", "recovered", "corrupt_crc",
                                                      "exception"]


def test_values_decoded_over_pty(scenario):
    """Heat meter values come through the pty with plausible physics."""
    values = _phase(scenario, "all_good")["values"]
    assert values["m1.t_supply_c"] > values["m1.t_return_c"] > 0
    assert values["m1.energy_kwh"] > 0 and values["m1.volume_m3"] > 0


def test_silent_device_goes_comm_loss_others_stay_good(scenario):
    """A silent meter turns comm_loss after retries; its neighbours stay good."""
    phase = _phase(scenario, "silent")
    assert phase["qualities"]["m2"] == ["comm_loss"]
    assert phase["qualities"]["m1"] == ["good"] and phase["qualities"]["m3"] == ["good"]
    assert phase["stats"]["m2"]["timeouts"] >= 4  # 2 polls x (1 + 1 retry)


def test_device_recovers(scenario):
    """The first answer after comm loss brings the tags back to good."""
    phase = _phase(scenario, "recovered")
    assert phase["qualities"]["m2"] == ["good"]
    assert phase["stats"]["m2"]["state"] == "ok"


def test_crc_errors_counted(scenario):
    """Corrupted answers are counted as CRC errors, not timeouts."""
    stats = _phase(scenario, "corrupt_crc")["stats"]["m2"]
    assert stats["crc_errors"] >= 3


def test_exception_quality(scenario):
    """Exception answers give the exception quality and are counted."""
    phase = _phase(scenario, "exception")
    assert phase["qualities"]["m2"] == ["exception"]
    assert phase["stats"]["m2"]["exceptions"] >= 1
    assert "server device failure" in phase["stats"]["m2"]["last_exception"]


def test_termination_reported_unsupported_on_pty(scenario):
    """A pty cannot switch termination: channel health says so, with the reason."""
    channel = _phase(scenario, "all_good")["channel"]
    assert channel["termination"]["port"] == "unsupported"
    assert "TIOCGRS485" in channel["termination"]["detail"]
    assert channel["termination"]["devices"] == ["m3"]
    assert channel["link"]["rs485"]["rts_toggle"] == "unsupported"


def test_one_transaction_at_a_time_stats(scenario):
    """Channel statistics are consistent: transactions equal the devices' requests."""
    phase = scenario["phases"][-1]
    requests = sum(s["requests"] for s in phase["stats"].values())
    # The transaction in flight at the snapshot is counted by the bus but not yet by a device.
    assert phase["channel"]["transactions"] - requests in (0, 1)
