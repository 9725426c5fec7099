"""Integration: simulated LoRaWAN meters → real Mosquitto broker → MQTT subscriber → hub → samples.

The broker is a real ``mosquitto`` on a free 127.0.0.1 port (see
`tests.integration.mosquitto`).  The SCADA side runs in a child process
(this file run as a script) on Twisted's asyncio reactor, as ``scada run``
has it: ``SimUplinks`` publishes ChirpStack v4 events through
``MqttPublisher``, ``MqttSubscriber`` takes them from the broker and hands
them to an ``UplinkHub`` whose channel records the samples.  The child
reports what arrived as JSON on its last line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from tests.integration.child import child_main, run_child  # noqa: E402
from tests.integration.mosquitto import Mosquitto, mosquitto_binary  # noqa: E402

pytestmark = pytest.mark.integration

#: Simulated devices: name, EUI, decoder and its options (None: values sent as ChirpStack ``object``).
DEVICES = [
    ("lw-pulse", "70B3D59BA0000101", "pulse_counter_le", {"litres_per_pulse": 1, "initial_m3": 0}),
    ("lw-vega", "70B3D59BA0000102", "vega_si11", {"inputs": {"1": {"name": "volume_m3", "litres_per_pulse": 1}}}),
    ("lw-object", "70B3D59BA0000103", None, {}),
]
BAD_TOPIC = "application/x/device/70b3d59ba0000101/event/up"


# ---------------------------------------------------------------------------
# Child process side: the subscriber on the asyncio reactor
# ---------------------------------------------------------------------------


async def _until(reactor: Any, condition: Any, timeout: float, what: str) -> None:
    """Wait (on the reactor) until ``condition()`` is true; raise naming ``what`` after ``timeout`` s."""
    from twisted.internet import task

    deadline = reactor.seconds() + timeout
    while not condition():
        if reactor.seconds() > deadline:
            raise TimeoutError(f"{what} within {timeout:g} s")
        await task.deferLater(reactor, 0.05, lambda: None)


async def scenario(reactor: Any, loop: Any, port: int, restart: dict | None) -> dict[str, Any]:
    """Publish simulated uplinks and a broken message; report what the subscriber delivered."""
    from types import SimpleNamespace as NS

    from channels.lorawan.channel import UplinkChannel
    from channels.lorawan.hub import UplinkHub
    from channels.lorawan.mqtt import MqttSubscriber
    from channels.sim.chirpstack import MqttPublisher, SimUplinkDevice, SimUplinks
    from channels.sim.models import create_model

    models = {name: create_model("water_meter", i + 1) for i, (name, *_rest) in enumerate(DEVICES)}
    cfg = NS(name="lora", type="lorawan", comm_loss_after=3, devices=[
        NS(name=name, enabled=True, dev_eui=eui, uplink_id=None, decoder=decoder, decoder_options=options,
           points=[], poll=60.0) for name, eui, decoder, options in DEVICES])
    samples: list = []
    channel = UplinkChannel(reactor, cfg, samples.extend, lambda tagdef: None)
    hub = UplinkHub([channel])
    channel.start()
    subscriber = MqttSubscriber(hub, "127.0.0.1", port, reactor=reactor, client_id="scada-test",
                                backoff_initial=0.2, backoff_max=1.0)
    subscriber.start(loop)
    await _until(reactor, lambda: subscriber.connected, 10, "the subscriber did not connect")
    publisher = MqttPublisher("127.0.0.1", port, client_id="scada-sim", backoff_initial=0.2, backoff_max=1.0)
    publisher.start(loop)
    sim = SimUplinks(reactor, [SimUplinkDevice(name, models[name], 1.0, dev_eui=eui, decoder=decoder,
                                               decoder_options=options)
                               for name, eui, decoder, options in DEVICES], publisher, spread=0.3)
    sim.start()
    publisher(BAD_TOPIC, b"{not json")
    publisher("application/x/device/aabbccddeeff0011/event/up",
              json.dumps({"deviceInfo": {"devEui": "aabbccddeeff0011"}}).encode())

    def seen() -> set[str]:
        return {s.name.split(".")[0] for s in samples}

    await _until(reactor, lambda: seen() == {d[0] for d in DEVICES} and subscriber.errors >= 2, 15,
                 "not every device's uplink (and both bad messages) arrived")
    report: dict[str, Any] = {}
    if restart is not None:
        import os
        import signal

        os.kill(restart["pid"], signal.SIGTERM)
        await _until(reactor, lambda: not subscriber.connected, 10, "the subscriber did not notice the broker go")
        before = len(samples)
        broker = Mosquitto(restart["root"], restart["binary"], port)
        broker.start()
        try:
            await _until(reactor, lambda: subscriber.connected, 15, "the subscriber did not reconnect")
            await _until(reactor, lambda: len(samples) > before + 3, 15, "no uplinks after the reconnect")
        finally:
            broker.stop()
        report["after_restart"] = len(samples) - before
    sim.stop()
    channel.stop()
    await publisher.stop()
    await subscriber.stop()
    errors = {}
    for s in samples:
        name, point = s.name.split(".", 1)
        if point == "volume_m3" and s.quality == "good":
            errors[name] = max(errors.get(name, 0.0), abs(s.value - models[name].values(s.ts)["volume_m3"]))
    report.update({
        "devices": sorted(seen()),
        "volume_errors": errors,
        "qualities": sorted({str(s.quality) for s in samples}),
        "subscriber": subscriber.health(),
        "hub": hub.health(),
        "channel": channel.health(),
        "running_after_stop": subscriber.running,
        "publisher": publisher.health(),
    })
    return report


# ---------------------------------------------------------------------------
# Test process side
# ---------------------------------------------------------------------------


@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory):
    """A fresh broker on a free 127.0.0.1 port, stopped after the test."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"), mosquitto_binary())
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _check_delivery(report: dict[str, Any]) -> None:
    """Every device's values arrived GOOD and equal to the model; bad messages counted, nothing crashed."""
    assert report["devices"] == sorted(d[0] for d in DEVICES)
    # The pulse counters resolve one litre; the object meter sends the model's own floats.
    assert set(report["volume_errors"]) == {d[0] for d in DEVICES}
    assert max(report["volume_errors"].values()) <= 1e-3 + 1e-9, report["volume_errors"]
    assert report["qualities"] == ["good"]
    sub, hub = report["subscriber"], report["hub"]
    assert sub["errors"] >= 2 and sub["messages"] == hub["received"]
    assert hub["bad_request"] >= 1 and hub["unknown_device"] >= 1 and hub["decode_failed"] == 0
    assert hub["accepted"] >= 3
    assert report["channel"]["decode_errors"] == 0 and report["channel"]["devices_ok"] == 3
    assert report["running_after_stop"] is False and sub["connected"] is False


def test_uplinks_through_a_real_broker(mosquitto: Mosquitto) -> None:
    """Simulated ChirpStack events cross a real broker and become samples; bad messages are counted."""
    report = run_child(__file__, {"port": mosquitto.port, "restart": None})
    _check_delivery(report)
    assert report["subscriber"]["connects"] == 1


def test_subscriber_reconnects_after_broker_restart(mosquitto: Mosquitto) -> None:
    """The broker goes away and comes back on the same port: the subscriber reconnects and reads on."""
    restart = {"pid": mosquitto.pid, "root": str(mosquitto.root / "again"), "binary": mosquitto.binary}
    report = run_child(__file__, {"port": mosquitto.port, "restart": restart})
    _check_delivery(report)
    assert report["subscriber"]["connects"] == 2
    assert report["subscriber"]["connect_failures"] >= 1
    assert report["after_restart"] > 3


if __name__ == "__main__":
    raise SystemExit(child_main(scenario, sys.argv))
