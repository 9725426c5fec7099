"""Tests for channels.lorawan.uplink: ChirpStack v4 events and NB-IoT messages parsed, or refused clearly."""

from __future__ import annotations

import base64
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.lorawan.uplink import (
    DEFAULT_ID_PATTERN,
    Uplink,
    UplinkError,
    best_rx,
    compile_id_pattern,
    flatten_numbers,
    parse_chirpstack,
    parse_nbiot,
    parse_nbiot_json,
    parse_nbiot_raw,
)

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: A ChirpStack v4 MQTT ``up`` event as the integration publishes it (pbjson).
UP_EVENT = {
    "deduplicationId": "3ec0a2f0-6ae4-4ff8-8c3c-0a4e1c9c7e2b",
    "time": "2023-11-14T22:13:25.123456789+00:00",
    "deviceInfo": {
        "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242", "tenantName": "ChirpStack",
        "applicationId": "2a1b3c4d-5e6f-4a0b-9c8d-7e6f5a4b3c2d", "applicationName": "meters",
        "deviceProfileId": "97de358d-1c6b-5fd2-aa6f-80797ed49154", "deviceProfileName": "pulse",
        "deviceName": "kv01-cold", "devEui": "70b3d59ba0000101", "tags": {},
    },
    "devAddr": "00000101", "adr": True, "dr": 5, "fCnt": 42, "fPort": 2, "confirmed": False,
    "data": "ECcAAADxU2U=",  # 10 27 00 00 00 f1 53 65: 10 000 pulses at 1 700 000 000
    "object": {"volume_m3": 112.5},
    "rxInfo": [
        {"gatewayId": "0016c001ff1e5b7a", "uplinkId": 1, "rssi": -101, "snr": 3.5, "channel": 0},
        {"gatewayId": "0016c001ff1e5b7b", "uplinkId": 2, "rssi": -87, "snr": 7.25, "channel": 0},
        {"gatewayId": "broken", "rssi": "loud"},
    ],
    "txInfo": {"frequency": 868900000, "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 7}}},
}


def body(doc: object) -> bytes:
    """Return a document as the JSON bytes a broker delivers."""
    return json.dumps(doc).encode()


def event(**changes: object) -> bytes:
    """Return :data:`UP_EVENT` with top-level keys changed (a value of ``...`` removes the key)."""
    doc = json.loads(json.dumps(UP_EVENT))
    for key, value in changes.items():
        if value is ...:
            doc.pop(key, None)
        else:
            doc[key] = value
    return body(doc)


def refused(call, *args) -> UplinkError:
    """Call and return the UplinkError it must raise."""
    with pytest.raises(UplinkError) as info:
        call(*args)
    return info.value


# ------------------------------------------------------------------- ChirpStack


def test_chirpstack_up_event_parsed():
    """Every field of a v4 up event lands in the Uplink; the EUI is upper case, the best gateway is kept."""
    up = parse_chirpstack(body(UP_EVENT))
    assert up == Uplink(
        dev_eui="70B3D59BA0000101", fcnt=42, fport=2, data=bytes.fromhex("10270000 00f15365"),
        time=1700000005.123456, dedup_id="3ec0a2f0-6ae4-4ff8-8c3c-0a4e1c9c7e2b", object={"volume_m3": 112.5},
        rx={"rssi": -87.0, "snr": 7.25, "gateway": "0016c001ff1e5b7b", "gateways": 2}, kind="lorawan",
        device_name="kv01-cold")


def test_chirpstack_defaults_left_out_by_pbjson():
    """pbjson leaves out fCnt 0, fPort 0 and empty data: they read as 0, 0 and b''."""
    up = parse_chirpstack(event(fCnt=..., fPort=..., data=..., time=..., object=..., rxInfo=...,
                                deduplicationId=...))
    assert (up.fcnt, up.fport, up.data, up.time, up.object, up.rx, up.dedup_id) == (0, 0, b"", None, None, {}, None)


def test_chirpstack_accepts_str_and_unpadded_base64():
    """A str body and base64 without its padding are taken."""
    up = parse_chirpstack(event(data="ECcAAA").decode())
    assert up.data == bytes.fromhex("10270000")


def test_chirpstack_time_forms():
    """Z, offsets and no offset (read as UTC) are all RFC 3339 enough."""
    assert parse_chirpstack(event(time="2023-11-14T22:13:20Z")).time == 1700000000
    assert parse_chirpstack(event(time="2023-11-15T01:13:20+03:00")).time == 1700000000
    assert parse_chirpstack(event(time="2023-11-14T22:13:20")).time == 1700000000


@pytest.mark.parametrize(("raw", "words"), [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[1, 2]", "is an array, expected a JSON object"),
    (b"null", "is null, expected a JSON object"),
    (body({"fCnt": 1}), "missing deviceInfo"),
    (body({"deviceInfo": "x"}), "deviceInfo is a string"),
    (body({"deviceInfo": {}}), "missing deviceInfo.devEui"),
    (body({"deviceInfo": {"devEUI": "70b3d59ba0000101"}}), "missing deviceInfo.devEui"),
    (body({"deviceInfo": {"devEui": 7}}), "deviceInfo.devEui is a number"),
    (body({"deviceInfo": {"devEui": "70b3d59ba00001"}}), "deviceInfo.devEui '70b3d59ba00001' is not a device EUI"),
    (body({"deviceInfo": {"devEui": "70b3d59ba000010g"}}), "is not a device EUI"),
    (event(data="***"), "data '***' is not valid base64"),
    (event(data="ECcAAAA=="), "not valid base64"),
    (event(data=12), "data is a number, expected base64"),
    (event(time="yesterday"), "time 'yesterday' is not an RFC 3339 time"),
    (event(time=1700000000), "time is a number, expected an RFC 3339 time"),
    (event(fCnt=-1), "fCnt -1 is not a whole number from 0 to 4294967295"),
    (event(fCnt=2 ** 32), "fCnt 4294967296 is not a whole number"),
    (event(fCnt="42"), "fCnt '42' is not a whole number"),
    (event(fCnt=True), "fCnt True is not a whole number"),
    (event(fPort=256), "fPort 256 is not a whole number from 0 to 255"),
    (event(object=[1]), "object is an array, expected a JSON object"),
    (event(deduplicationId=5), "deduplicationId is a number, expected a string"),
    (b"[" * 100000, "not"),
])
def test_chirpstack_bad_input_named(raw, words):
    """Each malformed event is a 400 whose message names the bad field."""
    exc = refused(parse_chirpstack, raw)
    assert exc.status == 400
    assert words in exc.message, exc.message
    assert str(exc) == exc.message


def test_chirpstack_whole_float_counter_taken():
    """A writer that prints 42.0 for a counter is forgiven; 42.5 is not."""
    assert parse_chirpstack(event(fCnt=42.0)).fcnt == 42
    assert refused(parse_chirpstack, event(fCnt=42.5)).status == 400


def test_chirpstack_huge_body_is_413():
    """A body far larger than any event is refused before parsing."""
    assert refused(parse_chirpstack, b" " * (300 * 1024)).status == 413


def test_best_rx_skips_junk():
    """rxInfo entries without numbers are skipped; the strongest RSSI wins, then the SNR."""
    assert best_rx("nope") == {}
    assert best_rx([1, {"rssi": None}]) == {}
    rx = best_rx([{"rssi": -90, "snr": 1.0, "gatewayId": "a"}, {"rssi": -90, "snr": 4.0, "gatewayId": 7}])
    assert rx == {"rssi": -90.0, "snr": 4.0, "gateway": None, "gateways": 2}
    assert best_rx([{"snr": 2.0}]) == {"rssi": None, "snr": 2.0, "gateway": None, "gateways": 1}


def test_flatten_numbers():
    """Nested keys join with '_', booleans become 0/1, text, null, arrays and NaN are dropped."""
    doc = json.loads('{"volume": {"m3": 1.5, "raw": {"pulses": 10}}, "ok": true, "name": "x", "n": null, '
                     '"list": [1], "bad": NaN, "temp.c": -3, " ": 1, "deep": {"a": {"b": {"c": {"d": {"e": '
                     '{"f": {"g": {"h": {"i": 1}}}}}}}}}}')
    assert flatten_numbers(doc) == {"volume_m3": 1.5, "volume_raw_pulses": 10.0, "ok": 1.0, "temp_c": -3.0}


# ----------------------------------------------------------------------- NB-IoT


def test_nbiot_json_forms():
    """id as text or number; data, hex or values; time as RFC 3339 or Unix seconds; seq is the counter."""
    up = parse_nbiot_json(body({"id": 861234567890123, "data": "ECcAAA==", "time": 1700000000, "seq": 7}))
    assert (up.dev_eui, up.data, up.time, up.fcnt, up.fport, up.kind) == (
        "861234567890123", bytes.fromhex("10270000"), 1700000000.0, 7, None, "nbiot")
    up = parse_nbiot_json(body({"id": " m-7 ", "hex": "10 27 00 00", "time": "2023-11-14T22:13:20Z", "port": 2,
                                "messageId": "abc"}))
    assert (up.dev_eui, up.data, up.time, up.fport, up.dedup_id) == ("m-7", bytes.fromhex("10270000"),
                                                                      1700000000, 2, "abc")
    up = parse_nbiot_json(body({"values": {"volume_m3": 3.5}}), "861234567890123")
    assert (up.dev_eui, up.object, up.data) == ("861234567890123", {"volume_m3": 3.5}, b"")


@pytest.mark.parametrize(("doc", "device_id", "words"), [
    ({"data": "AA=="}, None, "missing id"),
    ({"id": "", "data": "AA=="}, None, "id '' is not a device ID"),
    ({"id": True, "data": "AA=="}, None, "is not a device ID"),
    ({"id": "a"}, None, "got none"),
    ({"id": "a", "data": "AA==", "hex": "00"}, None, "got data and hex"),
    ({"id": "a", "hex": "zz"}, None, "hex 'zz' is not hex digits"),
    ({"id": "a", "values": 5}, None, "values is a number, expected a JSON object"),
    ({"id": "a", "data": "AA==", "time": -5}, None, "time -5 is not a time"),
    ({"id": "a", "data": "AA==", "time": "soon"}, None, "time 'soon' is not an RFC 3339 time"),
    ({"id": "a", "data": "AA==", "seq": "1"}, None, "seq '1' is not a whole number"),
    ({"id": "a", "data": "AA=="}, "b", "id 'a' does not match the device 'b'"),
])
def test_nbiot_json_bad_input_named(doc, device_id, words):
    """Each malformed NB-IoT JSON message is a 400 naming the field."""
    exc = refused(parse_nbiot_json, body(doc), device_id)
    assert exc.status == 400 and words in exc.message, exc.message


def test_nbiot_raw_default_pattern():
    """The default pattern takes a 15-digit IMEI, an optional separator, and the rest as payload."""
    up = parse_nbiot_raw(b"861234567890123:\x10\x27\x00\x00")
    assert (up.dev_eui, up.data, up.kind, up.fcnt) == ("861234567890123", b"\x10\x27\x00\x00", "nbiot", None)
    assert parse_nbiot_raw(b"861234567890123\x10\x27\x00\x00").data == b"\x10\x27\x00\x00"
    assert re.compile(DEFAULT_ID_PATTERN).match(b"861234567890123;").group("id") == b"861234567890123"


def test_nbiot_raw_custom_patterns_and_given_id():
    """A pattern with group 1 or a binary ID (shown in hex); a given ID takes the whole body as payload."""
    up = parse_nbiot_raw(b"ID=abc|\x01\x02", None, r"^ID=(\w+)\|")
    assert (up.dev_eui, up.data) == ("abc", b"\x01\x02")
    up = parse_nbiot_raw(b"\xfe\x01\x02\x03\x04", None, rb"^\xfe(..)")
    assert (up.dev_eui, up.data) == ("0102", b"\x03\x04")
    up = parse_nbiot_raw(b"\x10\x27\x00\x00", "meter-9")
    assert (up.dev_eui, up.data) == ("meter-9", b"\x10\x27\x00\x00")


@pytest.mark.parametrize(("raw", "device_id", "words"), [
    (b"12345:\x00", None, "no device ID at the start"),
    (b"861234567890123:", None, "carries no payload"),
    (b"", "m", "carries no payload"),
])
def test_nbiot_raw_bad_input_named(raw, device_id, words):
    """A raw message without an ID or without a payload is a 400 saying which."""
    exc = refused(parse_nbiot_raw, raw, device_id)
    assert exc.status == 400 and words in exc.message, exc.message


def test_compile_id_pattern_names_bad_pattern():
    """A pattern that does not compile is a ValueError naming it; str patterns are taken byte for byte."""
    with pytest.raises(ValueError, match=r"ID pattern '\(' is not a regular expression"):
        compile_id_pattern("(")
    with pytest.raises(ValueError, match="over bytes"):
        compile_id_pattern(re.compile("x"))
    assert compile_id_pattern("\xff").pattern == b"\xff"


def test_parse_nbiot_chooses_form_by_content_type_or_first_byte():
    """application/json and octet-stream decide; otherwise a body starting with '{' is JSON."""
    doc = body({"id": "861234567890123", "data": "AQI="})
    assert parse_nbiot(doc, "application/json; charset=utf-8").data == b"\x01\x02"
    assert parse_nbiot(b"  " + doc, None).data == b"\x01\x02"
    assert parse_nbiot(doc, "").dev_eui == "861234567890123"
    assert parse_nbiot(b"861234567890123,\x01", None).data == b"\x01"
    assert parse_nbiot(doc, "application/octet-stream", "x").data == doc


# ------------------------------------------------------------------------- fuzz

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)
_field_values = _json_values | st.sampled_from(["70b3d59ba0000101", "AAEC", "2023-11-14T22:13:20Z", -1, 2 ** 40])


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_chirpstack_bytes_only_uplink_errors(raw):
    """Arbitrary bytes: an Uplink or an UplinkError, never anything else."""
    try:
        parse_chirpstack(raw)
    except UplinkError as exc:
        assert exc.status in (400, 413)


@FUZZ
@given(st.dictionaries(st.sampled_from(["deviceInfo", "fCnt", "fPort", "data", "time", "deduplicationId",
                                        "object", "rxInfo"]), _field_values),
       st.dictionaries(st.sampled_from(["devEui", "deviceName"]), _field_values))
def test_fuzz_chirpstack_fields_only_uplink_errors(doc, info):
    """Events with arbitrary values in every field: an Uplink or a 400, never another exception."""
    if "deviceInfo" not in doc:
        doc["deviceInfo"] = info
    try:
        up = parse_chirpstack(json.dumps(doc).encode())
    except UplinkError as exc:
        assert exc.status == 400 and exc.message
    else:
        assert re.fullmatch("[0-9A-F]{16}", up.dev_eui)
        assert isinstance(up.data, bytes) and 0 <= up.fcnt < 2 ** 32


@FUZZ
@given(st.binary(max_size=120), st.sampled_from([None, "application/json", "application/octet-stream", ""]),
       st.sampled_from([None, "m1"]))
def test_fuzz_nbiot_only_uplink_errors(raw, content_type, device_id):
    """Arbitrary NB-IoT bodies in any form: an Uplink or an UplinkError, never anything else."""
    try:
        up = parse_nbiot(raw, content_type, device_id)
    except UplinkError as exc:
        assert exc.status in (400, 413)
    else:
        assert up.kind == "nbiot" and up.dev_eui


def test_base64_in_event_round_trip():
    """What base64 encodes, the parser gives back."""
    payload = bytes(range(256))
    assert parse_chirpstack(event(data=base64.b64encode(payload).decode())).data == payload
