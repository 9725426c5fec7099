"""Tests for channels.sim.chirpstack: simulated uplinks decode back to the model's values through the hub."""

from __future__ import annotations

import json
from types import SimpleNamespace as NS

import pytest
from twisted.internet import defer, task

from channels.lorawan.channel import UplinkChannel
from channels.lorawan.hub import UplinkHub
from channels.lorawan.uplink import parse_chirpstack
from channels.sim.chirpstack import HttpPublisher, MqttPublisher, SimUplinkDevice, SimUplinks, UdpPublisher
from channels.sim.models import create_model
from tags.quality import Quality

#: 2025-10-09T08:53:20Z.
T0 = 1_760_000_000.0
PULSE = {"litres_per_pulse": 1, "initial_m3": 0}
VEGA = {"inputs": {1: {"name": "volume_m3", "litres_per_pulse": 1}}}


def device_cfg(name: str, **kw) -> NS:
    """Return a device configuration as the channel reads it."""
    base = {"enabled": True, "dev_eui": None, "uplink_id": None, "decoder": None, "decoder_options": {},
            "points": [], "poll": 900.0}
    return NS(name=name, **{**base, **kw})


class Demo:
    """Three LoRaWAN meters and one NB-IoT meter, simulated and received on one clock."""

    def __init__(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(T0)
        self.models = {name: create_model("water_meter", seed) for seed, name in enumerate(("p", "v", "o", "n"))}
        lora = [device_cfg("p", dev_eui="70B3D59BA0000001", decoder="pulse_counter_le", decoder_options=PULSE),
                device_cfg("v", dev_eui="70B3D59BA0000002", decoder="vega_si11", decoder_options=VEGA),
                device_cfg("o", dev_eui="70B3D59BA0000003")]
        nbiot = [device_cfg("n", uplink_id="861234567890123", decoder="pulse_counter_le", decoder_options=PULSE)]
        self.samples: list = []
        self.channels = [
            UplinkChannel(self.clock, NS(name="lora", type="lorawan", comm_loss_after=3, devices=lora),
                          self.samples.extend, lambda d: None),
            UplinkChannel(self.clock, NS(name="nb", type="nbiot", comm_loss_after=3, devices=nbiot),
                          self.samples.extend, lambda d: None)]
        self.hub = UplinkHub(self.channels)
        self.sent: list[tuple[str, bytes]] = []
        self.answers: list[dict] = []
        sim_devices = [
            SimUplinkDevice(d.name, self.models[d.name], 900.0, dev_eui=d.dev_eui, uplink_id=d.uplink_id,
                            decoder=d.decoder, decoder_options=d.decoder_options)
            for d in lora + nbiot]
        self.sim = SimUplinks(self.clock, sim_devices, self.send)

    def send(self, topic: str, body: bytes) -> None:
        """Deliver like the MQTT subscriber (ChirpStack) or the HTTP endpoint (NB-IoT)."""
        self.sent.append((topic, body))
        if topic.startswith("nbiot/"):
            self.answers.append(self.hub.nbiot(body, "application/json"))
        else:
            self.answers.append(self.hub.chirpstack(body, topic.rsplit("/", 1)[-1]))


def latest(samples: list) -> dict:
    """Return the last sample of each tag."""
    return {s.name: s for s in samples}


def test_uplinks_decode_back_to_the_model():
    """Every device's first uplink comes within the spread and decodes to its model's values."""
    demo = Demo()
    demo.sim.start()
    demo.clock.advance(3.0)
    assert [a["device"] for a in demo.answers] == ["p", "v", "o", "n"]
    assert all(not a["duplicate"] for a in demo.answers)
    got = latest(demo.samples)
    for name, model in demo.models.items():
        sent_at = got[f"{name}.volume_m3"].ts
        assert T0 < sent_at <= T0 + 3.0
        # Pulse counters resolve 1 litre: the decoded total is the model's, floored to 0.001 m3.
        assert got[f"{name}.volume_m3"].value == pytest.approx(model.values(sent_at)["volume_m3"], abs=1e-3)
        assert got[f"{name}.volume_m3"].quality is Quality.GOOD
    assert got["v.temperature_c"].value == round(demo.models["v"].values(got["v.temperature_c"].ts)["temperature_c"])
    assert got["o.flow_m3h"].value == pytest.approx(demo.models["o"].values(got["o.flow_m3h"].ts)["flow_m3h"])
    assert demo.sim.health() == {"devices": 4, "sent": 4, "errors": 0, "last_error": None}


def test_events_look_like_chirpstack_v4():
    """Topic, pbjson field names, fCnt left out at 0 then counting, fresh dedup IDs, RU864 radio figures."""
    demo = Demo()
    demo.sim.start()
    demo.clock.advance(3.0)
    demo.clock.advance(900.0)
    lora = [(t, json.loads(b)) for t, b in demo.sent if t.startswith("application/")]
    topic, first = lora[0]
    assert topic == "application/2a1b3c4d-5e6f-4a0b-9c8d-7e6f5a4b3c2d/device/70b3d59ba0000001/event/up"
    assert "fCnt" not in first and first["fPort"] == 2 and first["time"].endswith("Z")
    assert first["deviceInfo"]["devEui"] == "70b3d59ba0000001" and first["deviceInfo"]["deviceName"] == "p"
    assert -125 < first["rxInfo"][0]["rssi"] < -60 and first["txInfo"]["frequency"] in (868900000, 869100000)
    again = [doc for t, doc in lora if doc["deviceInfo"]["deviceName"] == "p"][1]
    assert again["fCnt"] == 1 and again["deduplicationId"] != first["deduplicationId"]
    obj = [doc for t, doc in lora if doc["deviceInfo"]["deviceName"] == "o"][0]
    assert "data" not in obj and set(obj["object"]) == {"volume_m3", "flow_m3h", "temperature_c", "error_code"}
    assert parse_chirpstack(json.dumps(first)).fcnt == 0
    nb = [json.loads(b) for t, b in demo.sent if t == "nbiot/861234567890123/up"]
    assert [doc["seq"] for doc in nb] == [0, 1] and "data" in nb[0]
    assert [a["duplicate"] for a in demo.answers] == [False] * 8
    assert demo.hub.health()["accepted"] == 8


def test_stop_and_send_failures():
    """A failing send is counted and the rest go on; stop() leaves no call behind."""
    clock = task.Clock()
    model = create_model("water_meter", 1)
    calls = []

    def send(topic, body):
        calls.append(topic)
        if len(calls) == 1:
            raise OSError("broker away")
        if len(calls) == 2:
            return defer.fail(RuntimeError("HTTP 503"))
        return None

    devices = [SimUplinkDevice(f"d{i}", model, 60.0, dev_eui=f"70B3D59BA000000{i}", decoder="pulse_counter_le",
                               decoder_options=PULSE) for i in range(3)]
    devices.append(SimUplinkDevice("bad", lambda t: {}, 60.0, uplink_id="x", decoder="pulse_counter_le",
                                   decoder_options=PULSE))
    sim = SimUplinks(clock, devices, send, spread=1.0)
    sim.start()
    clock.advance(1.0)
    health = sim.health()
    assert (health["sent"], health["errors"]) == (2, 3)
    assert "bad: ValueError" in health["last_error"]
    sim.stop()
    assert clock.getDelayedCalls() == []


def test_device_checks():
    """A device needs exactly one key and a known decoder."""
    with pytest.raises(ValueError, match="exactly one of dev_eui and uplink_id"):
        SimUplinkDevice("a", dict, dev_eui="70B3D59BA0000001", uplink_id="1")
    with pytest.raises(KeyError, match="unknown decoder"):
        SimUplinkDevice("a", dict, uplink_id="1", decoder="nope")
    with pytest.raises(ValueError, match="period must be > 0"):
        SimUplinkDevice("a", dict, uplink_id="1", period=0)
    with pytest.raises(ValueError, match="unique"):
        SimUplinks(task.Clock(), [SimUplinkDevice("a", dict, uplink_id="1")] * 2, print)


def test_publishers_without_network():
    """The HTTP publisher's targets; MQTT queueing before start; UDP skips ChirpStack events."""
    http = HttpPublisher(task.Clock(), "http://127.0.0.1:8080/", token="t")
    assert http.target("application/a/device/b/event/up") == \
        "http://127.0.0.1:8080/api/v1/integrations/chirpstack?event=up"
    assert http.target("nbiot/861234567890123/up") == "http://127.0.0.1:8080/api/v1/integrations/uplink"
    mqtt = MqttPublisher("127.0.0.1", 1883, queue_size=2)
    for i in range(3):
        mqtt(f"t/{i}", b"x")
    assert mqtt.health()["queued"] == 2 and mqtt.health()["dropped"] == 1
    results = []
    mqtt.stop().addCallback(results.append)
    assert results == [None]
    udp = UdpPublisher(task.Clock(), "127.0.0.1", 5683)
    udp("application/a/device/b/event/up", b"{}")
    assert udp.skipped == 1
