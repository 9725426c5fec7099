"""Tests for the uplink channels, the hub, and the MQTT/UDP front ends (without a broker or a socket).

Time is a ``task.Clock``; configurations are namespaces read by attribute,
as the channels read the real ones.
"""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace as NS

import pytest
from twisted.internet import task
from twisted.internet.testing import MemoryReactorClock

from channels.lorawan.channel import UplinkChannel, UplinkDecodeError
from channels.lorawan.hub import UplinkHub
from channels.lorawan.mqtt import MqttSubscriber, topic_event
from channels.lorawan.udp import UdpListener
from channels.lorawan.uplink import Uplink, UplinkError
from tags.quality import Quality

#: 2023-11-14T22:13:20Z.
T0 = 1_700_000_000.0
EUI_PULSE = "70B3D59BA0000101"
EUI_OBJECT = "70B3D59BA0000103"
IMEI = "861234567890123"
PULSE_OPTIONS = {"litres_per_pulse": 10, "initial_m3": 12.5}


def count(pulses: int, ts: int | None = None) -> bytes:
    """Return a pulse_counter_le payload."""
    raw = pulses.to_bytes(4, "little")
    return raw if ts is None else raw + ts.to_bytes(4, "little")


def device(name: str, **kw) -> NS:
    """Return a device configuration with the defaults of the config model."""
    base = {"enabled": True, "dev_eui": None, "uplink_id": None, "decoder": None, "decoder_options": {},
            "points": [], "poll": 900.0}
    return NS(name=name, **{**base, **kw})


def lorawan_cfg() -> NS:
    """Return a LoRaWAN channel: a pulse counter with a decoder, an object meter, a disabled one."""
    return NS(name="b4-lora", type="lorawan", comm_loss_after=3, devices=[
        device("kv01", dev_eui=EUI_PULSE, decoder="pulse_counter_le", decoder_options=PULSE_OPTIONS,
               points=[NS(name="volume_m3", unit="m3", cumulative=True, deadband=0.01, description="")]),
        device("kv03", dev_eui=EUI_OBJECT.lower(), poll=3600.0,
               points=[NS(name="volume_m3", unit="m3", cumulative=None, deadband=0.0, description="total")]),
        device("off", dev_eui="70B3D59BA00001FF", enabled=False),
    ])


def nbiot_cfg() -> NS:
    """Return an NB-IoT channel with one pulse counter and one object meter."""
    return NS(name="b7-nbiot", type="nbiot", comm_loss_after=2, devices=[
        device("nb01", uplink_id=IMEI, decoder="pulse_counter_le", decoder_options=PULSE_OPTIONS, poll=600.0),
        device("nb02", uplink_id="Meter-B", poll=None),
    ])


class Site:
    """A clock, both channels, a hub and what they emitted."""

    def __init__(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(T0)
        self.samples: list = []
        self.defined: list = []
        self.lora = UplinkChannel(self.clock, lorawan_cfg(), self.samples.extend, self.defined.append)
        self.nb = UplinkChannel(self.clock, nbiot_cfg(), self.samples.extend, self.defined.append)
        self.hub = UplinkHub([self.lora, self.nb, NS(type="modbus-rtu", name="x", devices=[])])

    def up(self, eui: str = EUI_PULSE, **fields) -> dict:
        """Post a ChirpStack up event through the hub."""
        doc = {"deviceInfo": {"devEui": eui.lower(), "deviceName": "x"}, **fields}
        return self.hub.chirpstack(json.dumps(doc).encode(), "up")

    def take(self) -> list:
        """Return and forget the samples emitted so far."""
        out, self.samples[:] = list(self.samples), []
        return out


@pytest.fixture
def site() -> Site:
    """A fresh site at T0."""
    return Site()


def b64(raw: bytes) -> str:
    """Return base64 text."""
    import base64

    return base64.b64encode(raw).decode()


# --------------------------------------------------------------- construction


def test_tagdefs_from_decoder_and_points(site):
    """Decoder points become tags (configured deadband kept); declared object points too; disabled skipped."""
    defs = {t.name: t for t in site.lora.tagdefs}
    assert list(defs) == ["kv01.volume_m3", "kv01.pulses", "kv03.volume_m3"]
    assert (defs["kv01.volume_m3"].unit, defs["kv01.volume_m3"].deadband, defs["kv01.volume_m3"].device) == (
        "m3", 0.01, "kv01")
    assert defs["kv03.volume_m3"].description == "total"
    assert [d.name for d in site.lora.devices] == ["kv01", "kv03"]
    assert site.lora.device(EUI_OBJECT.lower()).name == "kv03"


def test_construction_errors_name_the_problem():
    """A repeated EUI, a missing uplink_id and a bad decoder option are ValueErrors naming them."""
    clock = task.Clock()
    twice = NS(name="c", type="lorawan", comm_loss_after=3,
               devices=[device("a", dev_eui=EUI_PULSE), device("b", dev_eui=EUI_PULSE.lower())])
    with pytest.raises(ValueError, match="'a' and 'b' share dev_eui 70B3D59BA0000101"):
        UplinkChannel(clock, twice, print, print)
    with pytest.raises(ValueError, match="'n' has no uplink_id"):
        UplinkChannel(clock, NS(name="c", type="nbiot", comm_loss_after=3, devices=[device("n")]), print, print)
    with pytest.raises(ValueError, match="litres_per_pulse"):
        UplinkChannel(clock, NS(name="c", type="lorawan", comm_loss_after=3, devices=[
            device("a", dev_eui=EUI_PULSE, decoder="pulse_counter_le", decoder_options={})]), print, print)
    with pytest.raises(ValueError, match="not an uplink channel"):
        UplinkChannel(clock, NS(name="c", type="mbus", devices=[]), print, print)
    lora = UplinkChannel(clock, NS(name="c", type="lorawan", comm_loss_after=3,
                                   devices=[device("a", dev_eui=EUI_PULSE)]), print, print)
    with pytest.raises(ValueError, match="dev_eui 70B3D59BA0000101 is on channels 'c' and 'c'"):
        UplinkHub([lora, lora])


# -------------------------------------------------------------------- uplinks


def test_decoded_uplink_uses_device_time(site):
    """A payload with the device's clock: GOOD samples at that time; health shows the link figures."""
    result = site.up(fCnt=5, fPort=2, data=b64(count(10_000, int(T0) - 60)), time="2023-11-14T22:13:20Z",
                     rxInfo=[{"rssi": -99, "snr": 2.5, "gatewayId": "gw"}])
    assert result == {"device": "kv01", "samples": 2, "duplicate": False}
    assert site.take() == [("kv01.volume_m3", 112.5, Quality.GOOD, T0 - 60),
                           ("kv01.pulses", 10000.0, Quality.GOOD, T0 - 60)]
    health = site.lora.devices[0].health()
    assert {k: health[k] for k in ("name", "dev_eui", "state", "fcnt", "rssi", "snr", "uplinks", "last_uplink",
                                   "gateways")} == {
        "name": "kv01", "dev_eui": EUI_PULSE, "state": "ok", "fcnt": 5, "rssi": -99.0, "snr": 2.5, "uplinks": 1,
        "last_uplink": T0, "gateways": 1}


def test_timestamp_falls_back_to_network_then_reactor(site):
    """Without a device clock the network's time is used; without that, the reactor's."""
    site.up(fCnt=1, data=b64(count(100)), time="2023-11-14T22:12:20Z")
    assert {s.ts for s in site.take()} == {T0 - 60}
    site.clock.advance(5)
    site.up(fCnt=2, data=b64(count(200)))
    assert {s.ts for s in site.take()} == {T0 + 5}


def test_duplicates_by_dedup_id_and_fcnt(site):
    """The same deduplicationId, or the fCnt of the last uplink, is dropped and counted."""
    assert site.up(fCnt=1, data=b64(count(100)), deduplicationId="a")["duplicate"] is False
    site.take()
    assert site.up(fCnt=1, data=b64(count(100)), deduplicationId="a") == {
        "device": "kv01", "samples": 0, "duplicate": True}
    assert site.up(fCnt=1, data=b64(count(100)), deduplicationId="b")["duplicate"] is True
    site.up(fCnt=2, data=b64(count(200)), deduplicationId="c")
    assert site.up(fCnt=9, data=b64(count(900)), deduplicationId="c")["duplicate"] is True
    assert site.up(fCnt=2, data=b64(count(200)))["duplicate"] is True
    kv01 = site.lora.devices[0]
    assert (kv01.uplinks, kv01.duplicates, kv01.fcnt_resets) == (2, 4, 0)
    assert site.hub.health()["duplicates"] == 4 and site.hub.health()["accepted"] == 2
    assert site.lora.health()["duplicates"] == 4


def test_recent_fcnt_without_dedup_id_is_a_duplicate(site):
    """Without deduplication IDs (NB-IoT seq) a counter among the last few is a late repeat."""
    for seq in (10, 11, 12):
        site.hub.nbiot(json.dumps({"id": IMEI, "data": b64(count(seq)), "seq": seq}).encode())
    late = site.hub.nbiot(json.dumps({"id": IMEI, "data": b64(count(11)), "seq": 11}).encode())
    assert late["duplicate"] is True
    reset = site.hub.nbiot(json.dumps({"id": IMEI, "data": b64(count(13)), "seq": 1}).encode())
    assert reset["duplicate"] is False
    nb01 = site.nb.devices[0]
    assert (nb01.uplinks, nb01.duplicates, nb01.fcnt_resets) == (4, 1, 1)


def test_fcnt_reset_accepted_and_counted(site):
    """A lower fCnt (rejoin) is taken and counted; the new session's counters are not duplicates."""
    for fcnt in (0, 1, 2, 3):
        site.up(fCnt=fcnt, data=b64(count(100 + fcnt)), deduplicationId=f"s1-{fcnt}")
    site.take()
    result = site.up(fCnt=0, data=b64(count(5)), deduplicationId="s2-0")
    assert result["duplicate"] is False and result["samples"] == 2
    assert site.up(fCnt=1, data=b64(count(6)), deduplicationId="s2-1")["duplicate"] is False
    kv01 = site.lora.devices[0]
    assert (kv01.fcnt_resets, kv01.fcnt, kv01.duplicates) == (1, 1, 0)
    assert site.lora.health()["fcnt_resets"] == 1
    # The decoder saw a counter reset and kept the volume continuous.
    volumes = [s.value for s in site.take() if s.name == "kv01.volume_m3"]
    assert volumes[0] == pytest.approx(12.5 + 1.03 + 0.05)


def test_decode_failure(site):
    """A payload the decoder refuses: DECODE_FAILED samples, counted, a 400 naming the device."""
    site.up(fCnt=1, data=b64(count(100)))
    site.take()
    site.clock.advance(1)
    with pytest.raises(UplinkDecodeError) as info:
        site.up(fCnt=2, data=b64(b"\x01\x02\x03"))
    assert info.value.status == 400
    assert info.value.message.startswith("device kv01: pulse_counter_le: payload is 3 bytes")
    assert site.take() == [("kv01.volume_m3", None, Quality.DECODE_FAILED, T0 + 1),
                           ("kv01.pulses", None, Quality.DECODE_FAILED, T0 + 1)]
    kv01 = site.lora.devices[0]
    assert (kv01.state, kv01.decode_errors, kv01.uplinks) == ("decode_failed", 1, 2)
    assert kv01.health()["last_error"].startswith("pulse_counter_le: payload is 3 bytes")
    health = site.hub.health()
    assert (health["decode_failed"], health["bad_request"], health["accepted"]) == (1, 0, 1)
    assert site.lora.health()["devices_decode_failed"] == 1
    # The next good uplink restores the device.
    site.up(fCnt=3, data=b64(count(101)))
    assert kv01.state == "ok" and kv01.last_error is None


def test_decoder_bug_is_a_decode_failure(site, monkeypatch, caplog):
    """A decoder that raises something unexpected is logged and answered like a bad payload."""
    kv01 = site.lora.devices[0]
    monkeypatch.setattr(kv01, "decoder", NS(decode=lambda *a: 1 / 0))
    with caplog.at_level(logging.ERROR), pytest.raises(UplinkDecodeError, match="ZeroDivisionError"):
        site.up(fCnt=1, data=b64(count(1)))
    assert kv01.decode_errors == 1


def test_object_fields_become_tags(site):
    """Without a decoder, numeric object fields are samples; undeclared ones are defined once."""
    result = site.up(EUI_OBJECT, fCnt=1, time="2023-11-14T22:13:20Z",
                     object={"volume_m3": 5.5, "meter": {"temp_c": 7, "ok": True}, "label": "x"})
    assert result["samples"] == 3
    assert sorted(site.take()) == [("kv03.meter_ok", 1.0, Quality.GOOD, T0),
                                   ("kv03.meter_temp_c", 7.0, Quality.GOOD, T0),
                                   ("kv03.volume_m3", 5.5, Quality.GOOD, T0)]
    assert sorted(d.name for d in site.defined) == ["kv03.meter_ok", "kv03.meter_temp_c"]
    assert site.defined[0].device == "kv03" and "automatic" in site.defined[0].description
    site.up(EUI_OBJECT, fCnt=2, object={"volume_m3": 5.6, "meter": {"temp_c": 8}})
    assert len(site.defined) == 2
    assert site.lora.devices[1].tags == ["kv03.volume_m3", "kv03.meter_temp_c", "kv03.meter_ok"]


def test_automatic_tags_are_capped(site):
    """A codec that sends ever new fields defines at most MAX_AUTO_TAGS tags; the rest are counted."""
    from channels.lorawan.channel import MAX_AUTO_TAGS

    site.up(EUI_OBJECT, fCnt=1, object={f"f{i}": i for i in range(MAX_AUTO_TAGS + 5)})
    kv03 = site.lora.devices[1]
    assert len(site.defined) == MAX_AUTO_TAGS and kv03.health()["ignored_fields"] == 5
    assert len(site.take()) == MAX_AUTO_TAGS


def test_object_device_without_object(site):
    """No decoder and no object: a payload cannot be read (400); an empty frame is just a sign of life."""
    with pytest.raises(UplinkDecodeError, match="no decoder configured"):
        site.up(EUI_OBJECT, fCnt=1, data=b64(b"\x01"))
    assert site.take() == [("kv03.volume_m3", None, Quality.DECODE_FAILED, T0)]
    assert site.up(EUI_OBJECT, fCnt=2) == {"device": "kv03", "samples": 0, "duplicate": False}
    assert site.lora.devices[1].state == "ok"


def test_accept_returns_samples_and_404s(site):
    """accept() returns the samples ([] for a duplicate); a device of another channel is a 404."""
    up = Uplink(dev_eui=EUI_PULSE, fcnt=1, data=count(10))
    assert [s.name for s in site.lora.accept(up)] == ["kv01.volume_m3", "kv01.pulses"]
    assert site.lora.accept(up) == []
    with pytest.raises(UplinkError) as info:
        site.nb.accept(Uplink(dev_eui=EUI_PULSE, kind="nbiot"))
    assert info.value.status == 404 and "unknown device ID 70B3D59BA0000101 on channel b7-nbiot" in str(info.value)


# ------------------------------------------------------------------ comm loss


def test_comm_loss_once_then_restored(site):
    """Silence beyond comm_loss_after × poll: COMM_LOSS once per device; the next uplink restores."""
    site.lora.start()
    assert site.lora.check_interval == 60.0
    site.up(fCnt=1, data=b64(count(100)))
    site.take()
    site.clock.pump([60] * 45)  # 2700 s = 3 × 900: not yet beyond
    assert site.take() == []
    site.clock.pump([60] * 2)
    lost = site.take()
    assert sorted(lost) == [("kv01.pulses", None, Quality.COMM_LOSS, T0 + 2760),
                            ("kv01.volume_m3", None, Quality.COMM_LOSS, T0 + 2760)]
    kv01 = site.lora.devices[0]
    assert kv01.state == "comm_loss" and kv01.comm_losses == 1
    site.clock.pump([60] * 10)
    assert site.take() == []
    assert site.lora.health()["devices_comm_loss"] == 1
    site.up(fCnt=2, data=b64(count(101)))
    assert kv01.state == "ok"
    assert all(s.quality is Quality.GOOD for s in site.take())
    site.lora.stop()
    site.lora.stop()
    assert site.clock.getDelayedCalls() == []


def test_comm_loss_of_device_never_heard(site):
    """A device that never sends goes comm_loss after the same silence counted from start()."""
    site.lora.start()
    site.clock.pump([60] * 61)  # kv01 after 2700 s; kv03 (poll 1 h) needs 10 800 s
    assert [d.state for d in site.lora.devices] == ["comm_loss", "not_yet_read"]
    assert site.lora.health()["devices_not_yet_read"] == 1
    site.lora.stop()


def test_device_without_period_is_not_watched(site):
    """poll None: no expected period, never comm_loss; a channel of such devices checks nothing."""
    site.nb.start()
    site.clock.pump([60] * 40)
    assert [d.state for d in site.nb.devices] == ["comm_loss", "not_yet_read"]
    site.nb.stop()
    lonely = UplinkChannel(site.clock, NS(name="n", type="nbiot", comm_loss_after=2,
                                          devices=[device("x", uplink_id="1", poll=None)]), print, print)
    lonely.start()
    assert lonely.check_interval == 60.0 and site.clock.getDelayedCalls() == []


# ------------------------------------------------------------------------ hub


def test_hub_unknown_device_404(site):
    """An uplink of an EUI nobody has: 404 naming it, counted, listed in health."""
    with pytest.raises(UplinkError) as info:
        site.up("AABBCCDDEEFF0011", fCnt=1)
    assert info.value.status == 404 and info.value.message == "unknown device EUI AABBCCDDEEFF0011"
    health = site.hub.health()
    assert (health["unknown_device"], health["unknown_recent"], health["last_error"]) == (
        1, ["AABBCCDDEEFF0011"], "unknown device EUI AABBCCDDEEFF0011")


@pytest.mark.parametrize(("raw", "event", "words"), [
    (b"{oops", "up", "not valid JSON"),
    (b'{"deviceInfo": {"devEui": "70b3d59ba0000101"}, "data": "%%"}', "up", "data '%%' is not valid base64"),
    (b"{}", "bogus", "unknown event 'bogus'"),
    (b"{}", "", "unknown event missing event"),
    (b"[]", "status", "is an array"),
])
def test_hub_bad_requests_400(site, raw, event, words):
    """Bad JSON, bad base64, an unknown event: a 400 with a clear message, counted as bad_request."""
    with pytest.raises(UplinkError) as info:
        site.hub.chirpstack(raw, event)
    assert info.value.status == 400 and words in info.value.message, info.value.message
    health = site.hub.health()
    assert (health["bad_request"], health["received"], health["accepted"]) == (1, 1, 0)


def test_hub_other_events_counted(site):
    """join/status/... are counted; a status event's battery level reaches the device's health."""
    status = {"deviceInfo": {"devEui": EUI_PULSE.lower()}, "batteryLevel": 87.5, "margin": 10}
    assert site.hub.chirpstack(json.dumps(status).encode(), "status") == {"event": "status", "device": "kv01"}
    assert site.lora.devices[0].health()["battery"] == 87.5
    assert site.hub.chirpstack(b'{"deviceInfo": {"devEui": "0000000000000000"}}', "join") == {
        "event": "join", "device": None}
    assert site.hub.chirpstack(b"{}", "TXACK")["event"] == "txack"
    health = site.hub.health()
    assert health["by_event"] == {"status": 1, "join": 1, "txack": 1}
    assert (health["other_events"], health["received"], health["unknown_device"]) == (3, 3, 0)


def test_hub_counters_add_up(site):
    """Every message ends in exactly one outcome counter."""
    site.up(fCnt=1, data=b64(count(1)))
    site.up(fCnt=1, data=b64(count(1)))
    for call in (lambda: site.up("AABBCCDDEEFF0011"), lambda: site.hub.chirpstack(b"x", "up"),
                 lambda: site.up(fCnt=2, data=b64(b"\x00"))):
        with pytest.raises(UplinkError):
            call()
    site.hub.chirpstack(b"{}", "log")
    h = site.hub.health()
    outcomes = ("accepted", "duplicates", "unknown_device", "bad_request", "decode_failed", "other_events")
    assert [h[k] for k in outcomes] == [1, 1, 1, 1, 1, 1]
    assert h["received"] == sum(h[k] for k in outcomes) == 6
    assert h["by_source"] == {"chirpstack": 6}


def test_hub_nbiot_routes_json_and_raw(site):
    """NB-IoT JSON and raw messages reach their device; IDs are matched without regard to case."""
    doc = {"id": IMEI, "data": b64(count(1000)), "time": T0 - 30, "seq": 1}
    assert site.hub.nbiot(json.dumps(doc).encode(), "application/json") == {
        "device": "nb01", "samples": 2, "duplicate": False}
    assert site.take()[0] == ("nb01.volume_m3", 22.5, Quality.GOOD, T0 - 30)
    assert site.hub.nbiot(json.dumps(doc).encode(), None)["duplicate"] is True
    assert site.hub.nbiot(IMEI.encode() + b":" + count(1100))["samples"] == 2
    assert site.hub.nbiot(count(1200), "application/octet-stream", IMEI)["samples"] == 2
    assert site.hub.nbiot(b'{"id": "meter-b", "values": {"t": 4}}', "application/json")["device"] == "nb02"
    assert site.nb.devices[1].health()["uplink_id"] == "Meter-B"
    with pytest.raises(UplinkError) as info:
        site.hub.nbiot(b"999999999999999:\x01")
    assert info.value.status == 404 and info.value.message == "unknown device ID 999999999999999"
    with pytest.raises(UplinkError) as info:
        site.hub.nbiot(b"ID:7|\x01", id_pattern=rb"^ID:(\d+)\|")
    assert info.value.message == "unknown device ID 7"
    assert site.hub.health()["by_source"] == {"nbiot": 7}


def test_log_plan_and_health(site, caplog):
    """log_plan names every meter and how it is read; health has the documented keys."""
    with caplog.at_level(logging.INFO, logger="channels.lorawan.channel"):
        site.lora.log_plan()
    text = caplog.text
    assert "kv01 dev_eui=70B3D59BA0000101: decoder pulse_counter_le, every 900s" in text
    assert "kv03 dev_eui=70B3D59BA0000103: network server object fields, every 3600s" in text
    health = site.lora.health()
    assert {"name", "type", "devices_ok", "devices_comm_loss", "uplinks", "duplicates", "decode_errors",
            "fcnt_resets"} <= set(health)
    assert health["type"] == "lorawan" and health["devices"] == 2


# ----------------------------------------------------------- MQTT and UDP ends


def test_topic_event():
    """The event is the topic's last level after 'event'; other topics carry uplinks."""
    assert topic_event("application/abc/device/70b3d59ba0000101/event/up") == "up"
    assert topic_event("application/abc/device/70b3d59ba0000101/event/status") == "status"
    assert topic_event("my/uplinks") == "up"
    assert topic_event("application/a/device/b/event/") == "up"


def test_mqtt_subscriber_handles_without_raising(site, caplog):
    """Messages go to the hub; a refused one is counted and logged once per minute, never raised."""
    sub = MqttSubscriber(site.hub, "127.0.0.1", 1883, "application/+/device/+/event/up", reactor=site.clock)
    good = json.dumps({"deviceInfo": {"devEui": EUI_PULSE}, "fCnt": 1, "data": b64(count(5))}).encode()
    assert sub.handle("application/a/device/x/event/up", good)["device"] == "kv01"
    with caplog.at_level(logging.WARNING, logger="channels.lorawan.mqtt"):
        assert sub.handle("application/a/device/x/event/up", b"not json") is None
        assert sub.handle("application/a/device/x/event/up", "{}") is None
        site.clock.advance(61)
        assert sub.handle("application/a/device/x/event/up", None) is None
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and "(1 more since the last warning)" in warnings[1]
    health = sub.health()
    assert (health["messages"], health["errors"], health["connected"], health["broker"]) == (
        4, 3, False, "127.0.0.1:1883")
    assert health["topics"] == ["application/+/device/+/event/up"]
    assert health["last_error"] == "application/a/device/x/event/up: ChirpStack event is not valid JSON: " \
                                   "Expecting value at line 1 column 1 (status 400)"


def test_mqtt_subscriber_survives_a_hub_bug(site):
    """An unexpected exception downstream is counted, not raised."""
    sub = MqttSubscriber(NS(chirpstack=lambda body, event: 1 / 0), "h", reactor=site.clock)
    assert sub.handle("t", b"{}") is None and sub.errors == 1 and "ZeroDivisionError" in sub.last_error


def test_mqtt_subscriber_stop_before_start():
    """stop() before start() is a fired Deferred."""
    results = []
    MqttSubscriber(NS(), "h").stop().addCallback(results.append)
    assert results == [None]


class FakeUdpReactor(MemoryReactorClock):
    """A memory reactor that records listenUDP calls."""

    def __init__(self) -> None:
        super().__init__()
        self.udp: list = []

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):  # noqa: N802 - Twisted interface
        """Record the call; return a port that knows its address and can stop."""
        self.udp.append((port, protocol, interface))
        return NS(getHost=lambda: NS(port=port), stopListening=lambda: None)


def test_udp_listener(site):
    """The listener binds through the reactor, hands datagrams to the hub and counts refusals."""
    reactor = FakeUdpReactor()
    listener = UdpListener(reactor, site.hub, "127.0.0.1", 5683, r"^(?P<id>\d{15})[:;,]?")
    listener.start()
    [(port, protocol, interface)] = reactor.udp
    assert (port, interface, listener.port) == (5683, "127.0.0.1", 5683)
    protocol.datagramReceived(b"x", ("10.0.0.9", 1))
    assert listener.datagrams == 1
    assert listener.datagram(IMEI.encode() + b"," + count(10), ("10.0.0.7", 4000))["device"] == "nb01"
    assert listener.datagram(b"junk", ("10.0.0.7", 4000)) is None
    health = listener.health()
    assert (health["datagrams"], health["accepted"], health["errors"], health["last_peer"]) == (
        3, 1, 2, "10.0.0.7:4000")
    assert "no device ID" in health["last_error"]
    listener.stop()
    assert listener.health()["listening"] is False
    with pytest.raises(ValueError, match="ID pattern"):
        UdpListener(reactor, site.hub, "0.0.0.0", 1, "(")
