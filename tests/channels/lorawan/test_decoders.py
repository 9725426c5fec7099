"""Tests for channels.lorawan.decoders: the registry, pulse_counter_le and vega_si11.

Payloads are written out in hex and the expected values worked out by hand
in the comments next to them.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.lorawan import decoders
from channels.lorawan.decoders import Decoded, DecodeError, PointDef, pulse_counter_le, vega_si11

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: 2023-11-14T22:13:20Z, little endian: 00 f1 53 65.
T0 = 1700000000


def h(text: str) -> bytes:
    """Return the bytes of a hex string (spaces ignored)."""
    return bytes.fromhex(text)


# ---------------------------------------------------------------- registry

def test_names_lists_the_shipped_decoders():
    """names() lists the decoder modules, sorted, without private helper modules."""
    found = decoders.names()
    assert {"pulse_counter_le", "vega_si11"} <= set(found)
    assert found == sorted(found)
    assert not any(name.startswith("_") for name in found)


@pytest.mark.parametrize("name", decoders.names())
def test_every_decoder_is_complete(name):
    """Each listed decoder has NAME equal to its module name and the five functions."""
    module = decoders.get(name)
    assert module.NAME == name
    for attr in ("check_options", "points", "decode", "encode"):
        assert callable(getattr(module, attr))


def test_get_returns_the_module():
    """get() returns the decoder module itself."""
    assert decoders.get("pulse_counter_le") is pulse_counter_le
    assert decoders.get("vega_si11") is vega_si11


@pytest.mark.parametrize("name", ["nope", "Vega_SI11", "_counters", "", "../vega_si11", "os",
                                  "vega_si11.x", "pulse-counter", None, 5])
def test_get_unknown_names_the_known_ones(name):
    """An unknown, private or malformed name is a KeyError whose message lists the known decoders."""
    with pytest.raises(KeyError) as exc:
        decoders.get(name)
    message = exc.value.args[0]
    assert "unknown decoder" in message
    assert "pulse_counter_le" in message and "vega_si11" in message


def test_decode_error_is_a_value_error():
    """Callers that catch ValueError also catch decode errors."""
    assert issubclass(DecodeError, ValueError)


def test_decoded_defaults():
    """A Decoded without time or status has ts None and an empty status."""
    decoded = Decoded({"x": 1.0})
    assert decoded.ts is None and decoded.status == {}


# ---------------------------------------------------------------- pulse_counter_le: options

PC = {"litres_per_pulse": 10, "initial_m3": 12.5}


def test_pulse_options_defaults():
    """Defaults are filled in and numbers become floats; normalising twice changes nothing."""
    opts = pulse_counter_le.check_options({"litres_per_pulse": 10})
    assert opts == {"litres_per_pulse": 10.0, "initial_m3": 0.0, "counter_bits": 32, "point": "volume_m3"}
    assert pulse_counter_le.check_options(opts) == opts


@pytest.mark.parametrize("options, key", [
    ({}, "litres_per_pulse"),
    (None, "litres_per_pulse"),
    ({"litres_per_pulse": 0}, "litres_per_pulse"),
    ({"litres_per_pulse": -1}, "litres_per_pulse"),
    ({"litres_per_pulse": "10"}, "litres_per_pulse"),
    ({"litres_per_pulse": True}, "litres_per_pulse"),
    ({"litres_per_pulse": math.nan}, "litres_per_pulse"),
    ({"litres_per_pulse": math.inf}, "litres_per_pulse"),
    ({"litres_per_pulse": 10 ** 400}, "litres_per_pulse"),
    ({"litres_per_pulse": 1, "initial_m3": -0.5}, "initial_m3"),
    ({"litres_per_pulse": 1, "initial_m3": math.nan}, "initial_m3"),
    ({"litres_per_pulse": 1, "counter_bits": 7}, "counter_bits"),
    ({"litres_per_pulse": 1, "counter_bits": 33}, "counter_bits"),
    ({"litres_per_pulse": 1, "counter_bits": 16.0}, "counter_bits"),
    ({"litres_per_pulse": 1, "counter_bits": True}, "counter_bits"),
    ({"litres_per_pulse": 1, "point": ""}, "point"),
    ({"litres_per_pulse": 1, "point": "a.b"}, "point"),
    ({"litres_per_pulse": 1, "point": "a b"}, "point"),
    ({"litres_per_pulse": 1, "point": 5}, "point"),
    ({"litres_per_pulse": 1, "point": "pulses"}, "point"),
    ({"litres_per_pulse": 1, "litres": 10}, "litres"),
])
def test_pulse_options_rejected(options, key):
    """A bad option is a ValueError whose message starts with the key."""
    with pytest.raises(ValueError) as exc:
        pulse_counter_le.check_options(options)
    assert str(exc.value).startswith(f"{key}:")


@pytest.mark.parametrize("options", ["litres_per_pulse=10", [("litres_per_pulse", 10)], 10])
def test_pulse_options_not_a_mapping(options):
    """Options that are not a mapping are refused."""
    with pytest.raises(ValueError, match="mapping"):
        pulse_counter_le.check_options(options)


def test_pulse_points():
    """A cumulative volume point (named by 'point') and a raw, non-cumulative count."""
    pts = pulse_counter_le.points({"litres_per_pulse": 1, "point": "cold_m3"})
    assert [(p.name, p.unit, p.cumulative) for p in pts] == [("cold_m3", "m3", True), ("pulses", "", False)]
    assert all(isinstance(p, PointDef) and p.description for p in pts)


# ---------------------------------------------------------------- pulse_counter_le: decoding

@pytest.mark.parametrize("payload, volume, pulses, ts", [
    # 0x2710 = 10 000 pulses × 10 l = 100 m3, + 12.5 initial.
    ("10270000", 112.5, 10000, None),
    # ... read at 0x6553f100 = 1 700 000 000.
    ("10270000 00f15365", 112.5, 10000, T0),
    # A clock never set (0) is not a reading time.
    ("10270000 00000000", 112.5, 10000, None),
    # 946 684 800 (2000-01-01) = 0x386d4380 is the excluded lower bound; one second later is fine.
    ("10270000 80436d38", 112.5, 10000, None),
    ("10270000 81436d38", 112.5, 10000, 946684801),
    # 4 102 444 800 (2100-01-01) = 0xf4865700 is the excluded upper bound.
    ("10270000 005786f4", 112.5, 10000, None),
    ("10270000 ff5686f4", 112.5, 10000, 4102444799),
    # 0 pulses: the initial reading.
    ("00000000", 12.5, 0, None),
    # 0xffffffff = 4 294 967 295 pulses × 10 l = 42 949 672.95 m3, + 12.5.
    ("ffffffff", 42949685.45, 4294967295, None),
])
def test_pulse_vectors(payload, volume, pulses, ts):
    """Hand-computed vectors: count little endian, optional plausible time."""
    decoded = pulse_counter_le.decode(h(payload), 2, PC, {})
    assert decoded.values == {"volume_m3": pytest.approx(volume, abs=1e-9), "pulses": pulses}
    assert decoded.ts == ts
    assert decoded.status == {}


@pytest.mark.parametrize("fport", [None, 0, 1, 2, 100, 223])
def test_pulse_any_fport(fport):
    """The generic counter ignores the port: NB-IoT uplinks have none."""
    assert pulse_counter_le.decode(h("01000000"), fport, PC, {}).values["pulses"] == 1


@pytest.mark.parametrize("payload", ["", "01", "010000", "0100000000", "01000000000000", "010000000000000000"])
def test_pulse_wrong_length(payload):
    """Anything but 4 or 8 bytes is a DecodeError saying what was expected."""
    state = {"last": 7, "wraps": 0, "base_m3": 0.0}
    with pytest.raises(DecodeError, match=r"pulse_counter_le: payload is \d+ bytes, expected 4"):
        pulse_counter_le.decode(h(payload), 2, PC, state)
    assert state == {"last": 7, "wraps": 0, "base_m3": 0.0}


def test_pulse_count_too_wide():
    """A count that does not fit counter_bits is a DecodeError, and the state is left alone."""
    state = {}
    with pytest.raises(DecodeError, match="does not fit the 8-bit counter"):
        pulse_counter_le.decode(h("00010000"), 2, {"litres_per_pulse": 1, "counter_bits": 8}, state)
    assert state == {}


BITS8 = {"litres_per_pulse": 1, "counter_bits": 8}


def run(sequence, options=BITS8):
    """Decode a sequence of hex payloads with one state; return (volume, status) per uplink."""
    state = {}
    out = []
    for payload in sequence:
        decoded = pulse_counter_le.decode(h(payload), 2, options, state)
        out.append((round(decoded.values["volume_m3"], 9), decoded.status))
    return out


def test_pulse_wrap():
    """A smaller count after one in the top eighth is a wrap: 240 → 5 counts 256 + 5 pulses."""
    assert run(["f0000000", "05000000", "06000000"]) == [
        (0.240, {}), (0.261, {"counter_wrap": 1}), (0.262, {}),
    ]


def test_pulse_reset():
    """A smaller count otherwise is a reset: the total carries on from 0.100 m3."""
    assert run(["64000000", "03000000", "0a000000"]) == [
        (0.100, {}), (0.103, {"counter_reset": 1}), (0.110, {}),
    ]


def test_pulse_reset_after_wrap():
    """240, 5 (wrap: 261), 100 (356), 2 (reset: 356 carried + 2 = 358)."""
    assert run(["f0000000", "05000000", "64000000", "02000000", "03000000"]) == [
        (0.240, {}), (0.261, {"counter_wrap": 1}), (0.356, {}), (0.358, {"counter_reset": 1}), (0.359, {}),
    ]


def test_pulse_wrap_boundary():
    """The top eighth of 8 bits starts at 224: after 223 a drop is a reset, after 224 a wrap."""
    assert run(["df000000", "00000000"])[1] == (0.223, {"counter_reset": 1})
    assert run(["e0000000", "00000000"])[1] == (0.256, {"counter_wrap": 1})


def test_pulse_wrap_32_bits():
    """32 bits: the top eighth starts at 0xe0000000; the wrap adds 2**32 pulses."""
    out = run(["000000e0", "01000000"], {"litres_per_pulse": 1})
    assert out[1] == (4294967.297, {"counter_wrap": 1})


def test_pulse_repeated_count():
    """The same count twice (a repeated uplink) changes nothing."""
    assert run(["64000000", "64000000"]) == [(0.100, {}), (0.100, {})]


def test_pulse_state_contents():
    """The state holds only numbers: the last count, the wraps and the carried volume."""
    state = {}
    for payload in ("64000000", "03000000"):
        pulse_counter_le.decode(h(payload), 2, BITS8, state)
    assert state == {"last": 3, "wraps": 0, "base_m3": pytest.approx(0.1)}


@FUZZ
@given(counts=st.lists(st.integers(0, 255), min_size=1, max_size=30),
       lpp=st.sampled_from([0.1, 1, 2.5, 10, 100]))
def test_pulse_volume_never_decreases(counts, lpp):
    """Whatever the counts do, wraps and resets keep the published volume non-decreasing."""
    options = {"litres_per_pulse": lpp, "counter_bits": 8, "initial_m3": 3}
    state, last = {}, 3.0
    for count in counts:
        decoded = pulse_counter_le.decode(count.to_bytes(4, "little"), 2, options, state)
        assert decoded.values["pulses"] == count
        assert decoded.values["volume_m3"] >= last - 1e-9
        last = decoded.values["volume_m3"]


# ---------------------------------------------------------------- pulse_counter_le: encoding

def test_pulse_encode_vectors():
    """112.5 m3 at 10 l/pulse from 12.5 m3 is 10 000 pulses; the time is added when given."""
    assert pulse_counter_le.encode({"volume_m3": 112.5}, None, PC) == (2, h("10270000"))
    assert pulse_counter_le.encode({"volume_m3": 112.5}, T0, PC) == (2, h("10270000 00f15365"))
    assert pulse_counter_le.encode({"volume_m3": 112.5}, T0, PC, 10) == (10, h("10270000 00f15365"))


def test_pulse_encode_wraps():
    """300 pulses on an 8-bit counter are sent as 300 - 256 = 44 = 0x2c."""
    assert pulse_counter_le.encode({"volume_m3": 0.3}, None, BITS8) == (2, h("2c000000"))


@pytest.mark.parametrize("values, ts, match", [
    ({}, None, "no value for point 'volume_m3'"),
    ({"volume_m3": 12.0}, None, "below the initial reading"),
    ({"volume_m3": math.nan}, None, "not a finite number"),
    ({"volume_m3": "112.5"}, None, "not a finite number"),
    ({"volume_m3": 112.5}, -1, "32 bits"),
    ({"volume_m3": 112.5}, 2.0 ** 32, "32 bits"),
])
def test_pulse_encode_rejects(values, ts, match):
    """Values that cannot be sent are a ValueError naming the problem."""
    with pytest.raises(ValueError, match=match):
        pulse_counter_le.encode(values, ts, PC)


@FUZZ
@given(pulses=st.integers(0, 2 ** 32 - 1), lpp=st.sampled_from([0.1, 1, 2.5, 10, 100]),
       initial=st.sampled_from([0, 12.5, 98765.4321]), ts=st.one_of(st.none(), st.integers(T0, T0 + 10 ** 8)))
def test_pulse_round_trip(pulses, lpp, initial, ts):
    """decode(encode(v)) gives back v, the count and the time."""
    options = {"litres_per_pulse": lpp, "initial_m3": initial}
    volume = initial + pulses * lpp / 1000
    fport, payload = pulse_counter_le.encode({"volume_m3": volume}, ts, options)
    decoded = pulse_counter_le.decode(payload, fport, options, {})
    assert decoded.values["pulses"] == pulses
    assert decoded.values["volume_m3"] == pytest.approx(volume, rel=1e-12)
    assert decoded.ts == ts


# ---------------------------------------------------------------- vega_si11: options

VEGA = {"inputs": {1: {"name": "cold_m3", "litres_per_pulse": 10, "initial_m3": 12.5},
                   "3": {"litres_per_pulse": 1}}}
#: type 1, battery 0x55 = 85 %, settings 0x0c, time 00f15365 = T0, temperature 0xfb = -5 °C,
#: inputs 0x2710 = 10 000, 1, 0xffffffff = 4 294 967 295, 0.
REGULAR = "01 55 0c 00f15365 fb 10270000 01000000 ffffffff 00000000"


def test_vega_options_normalised():
    """Input keys become ints, names default to input<n>_m3, numbers become floats; idempotent."""
    opts = vega_si11.check_options(VEGA)
    assert opts == {"inputs": {
        1: {"name": "cold_m3", "litres_per_pulse": 10.0, "initial_m3": 12.5},
        3: {"name": "input3_m3", "litres_per_pulse": 1.0, "initial_m3": 0.0},
    }}
    assert vega_si11.check_options(opts) == opts
    assert vega_si11.check_options(None) == {"inputs": {}}
    assert vega_si11.check_options({"inputs": None}) == {"inputs": {}}


@pytest.mark.parametrize("options, match", [
    ({"input": {}}, r"^input: unknown option"),
    ({"inputs": "1"}, r"^inputs: expected a mapping"),
    ({"inputs": {5: {"litres_per_pulse": 1}}}, r"^inputs\.5: not an input number"),
    ({"inputs": {0: {"litres_per_pulse": 1}}}, r"^inputs\.0: not an input number"),
    ({"inputs": {"x": {"litres_per_pulse": 1}}}, r"^inputs\.'x': not an input number"),
    ({"inputs": {True: {"litres_per_pulse": 1}}}, r"^inputs\.True: not an input number"),
    ({"inputs": {1: 10}}, r"^inputs\.1: expected a mapping"),
    ({"inputs": {1: {}}}, r"^inputs\.1\.litres_per_pulse: required option is missing"),
    ({"inputs": {1: {"litres_per_pulse": 0}}}, r"^inputs\.1\.litres_per_pulse: 0 is not a finite number > 0"),
    ({"inputs": {2: {"litres_per_pulse": 1, "initial_m3": -1}}}, r"^inputs\.2\.initial_m3: -1 is not"),
    ({"inputs": {1: {"litres_per_pulse": 1, "lpp": 1}}}, r"^inputs\.1\.lpp: unknown option"),
    ({"inputs": {1: {"litres_per_pulse": 1, "name": "a.b"}}}, r"^inputs\.1\.name: 'a\.b' is not a point name"),
    ({"inputs": {1: {"litres_per_pulse": 1, "name": "battery_pct"}}}, r"^inputs\.1\.name: .* battery point"),
    ({"inputs": {1: {"litres_per_pulse": 1, "name": "v"}, 2: {"litres_per_pulse": 1, "name": "v"}}},
     r"^inputs\.2\.name: 'v' is already input 1's point"),
    ({"inputs": {1: {"litres_per_pulse": 1}, "1": {"litres_per_pulse": 1}}}, r"input 1 is listed twice"),
])
def test_vega_options_rejected(options, match):
    """A bad option is a ValueError naming its path (inputs.<n>.<key>)."""
    with pytest.raises(ValueError, match=match):
        vega_si11.check_options(options)


def test_vega_points():
    """Battery and temperature always, then one cumulative m3 point per configured input."""
    pts = vega_si11.points(VEGA)
    assert [(p.name, p.unit, p.cumulative) for p in pts] == [
        ("battery_pct", "%", False), ("temperature_c", "°C", False),
        ("cold_m3", "m3", True), ("input3_m3", "m3", True),
    ]
    assert [p.name for p in vega_si11.points({})] == ["battery_pct", "temperature_c"]


# ---------------------------------------------------------------- vega_si11: decoding

def test_vega_regular_packet():
    """Hand-computed: 10 000 × 10 l + 12.5 = 112.5 m3; 4 294 967 295 × 1 l; inputs 2 and 4 unlisted."""
    decoded = vega_si11.decode(h(REGULAR), 2, VEGA, {})
    assert decoded.values == {
        "battery_pct": 85, "temperature_c": -5,
        "cold_m3": pytest.approx(112.5), "input3_m3": pytest.approx(4294967.295),
    }
    assert decoded.ts == T0
    assert decoded.status == {"settings": 12}


def test_vega_alarm_packet():
    """Type 2 is decoded like type 1 and flagged as an alarm."""
    decoded = vega_si11.decode(h("02" + REGULAR.replace(" ", "")[2:]), 2, VEGA, {})
    assert decoded.values["cold_m3"] == pytest.approx(112.5)
    assert decoded.status == {"settings": 12, "alarm": 1}


@pytest.mark.parametrize("battery, temperature, values", [
    ("64", "7f", {"battery_pct": 100, "temperature_c": 127}),
    ("00", "80", {"battery_pct": 0, "temperature_c": -128}),
    ("65", "00", {"temperature_c": 0}),     # 101 %: not a percentage, not published
    ("ff", "01", {"temperature_c": 1}),
])
def test_vega_battery_and_temperature(battery, temperature, values):
    """Battery is 0..100 % (above: not published); temperature is a signed byte."""
    payload = h(f"01 {battery} 00 00000000 {temperature} 00000000 00000000 00000000 00000000")
    decoded = vega_si11.decode(payload, 2, {}, {})
    assert decoded.values == values
    assert decoded.ts is None       # the clock reads 0


@pytest.mark.parametrize("payload", ["ff", "ff 00f15365"])
def test_vega_time_sync_request(payload):
    """fPort 4 type 255 (with or without the device clock): no values, a time sync flag."""
    state = {"input1": {"last": 5, "wraps": 0, "base_m3": 0.0}}
    decoded = vega_si11.decode(h(payload), 4, VEGA, state)
    assert decoded == Decoded({}, None, {"time_sync_request": 1})
    assert state == {"input1": {"last": 5, "wraps": 0, "base_m3": 0.0}}


@pytest.mark.parametrize("payload, fport, match", [
    (REGULAR, 3, r"fPort 3 is not a data port"),
    (REGULAR, None, r"fPort None is not a data port"),
    (REGULAR, 0, r"fPort 0 is not a data port"),
    ("", 2, r"empty payload on fPort 2"),
    ("03" + "00" * 23, 2, r"packet type 3 on fPort 2 is not 1 \(regular\) or 2 \(alarm\)"),
    ("ff", 2, r"packet type 255 on fPort 2"),
    (REGULAR[:-2], 2, r"packet type 1 is 23 bytes, expected 24"),
    (REGULAR + "00", 2, r"packet type 1 is 25 bytes, expected 24"),
    ("01", 2, r"packet type 1 is 1 bytes, expected 24"),
    ("", 4, r"an empty payload on fPort 4, expected type 255"),
    ("01", 4, r"packet type 1 on fPort 4, expected type 255"),
    ("ff00", 4, r"time sync request is 2 bytes, expected 1 or 5"),
    ("ff 00f15365 00", 4, r"time sync request is 6 bytes"),
])
def test_vega_rejects(payload, fport, match):
    """Wrong port, type or length: a DecodeError saying which, and the state is left alone."""
    state = {"input1": {"last": 5, "wraps": 0, "base_m3": 0.0}}
    with pytest.raises(DecodeError, match=rf"^vega_si11: {match}"):
        vega_si11.decode(h(payload), fport, VEGA, state)
    assert state == {"input1": {"last": 5, "wraps": 0, "base_m3": 0.0}}


def vega_counts(inputs: list[int]) -> bytes:
    """Return a regular packet (battery 90 %, 21 °C, no clock) with the four counts given."""
    return h("01 5a 00 00000000 15") + b"".join(n.to_bytes(4, "little") for n in inputs)


def test_vega_wrap_and_reset_per_input():
    """Input 1 wraps (0xf0000000 → 5), input 3 is reset (1000 → 2); each is flagged and kept apart."""
    options = {"inputs": {1: {"litres_per_pulse": 1}, 3: {"litres_per_pulse": 10, "initial_m3": 1}}}
    state = {}
    first = vega_si11.decode(vega_counts([0xF0000000, 7, 1000, 0]), 2, options, state)
    # 0xf0000000 = 4 026 531 840 l; 1000 × 10 l + 1 m3 = 11 m3.
    assert first.values["input1_m3"] == pytest.approx(4026531.840)
    assert first.values["input3_m3"] == pytest.approx(11.0)
    second = vega_si11.decode(vega_counts([5, 7, 2, 0]), 2, options, state)
    # (5 + 2**32) l = 4 294 967.301 m3; 10 m3 carried + 2 × 10 l + 1 m3 = 11.02 m3.
    assert second.values["input1_m3"] == pytest.approx(4294967.301)
    assert second.values["input3_m3"] == pytest.approx(11.02)
    assert second.status == {"settings": 0, "input1_counter_wrap": 1, "input3_counter_reset": 1}
    assert set(state) == {"input1", "input3"}
    assert state["input1"]["wraps"] == 1 and state["input3"]["base_m3"] == pytest.approx(10.0)


# ---------------------------------------------------------------- vega_si11: encoding

def test_vega_encode_vector():
    """Encoding the regular packet's values gives the vector back, with unlisted input 2 counting 0."""
    values = {"cold_m3": 112.5, "input3_m3": 4294967.295, "battery_pct": 85, "temperature_c": -5}
    expected = "55 0c 00f15365 fb 10270000 00000000 ffffffff 00000000"
    assert vega_si11.encode(values, T0, VEGA, settings=12) == (2, h("01" + expected))
    assert vega_si11.encode(values, T0, VEGA, settings=12, alarm=True) == (2, h("02" + expected))


def test_vega_encode_defaults():
    """Without battery, temperature or time: 100 % (0x64), 20 °C (0x14), clock 0; unlisted inputs count 0."""
    fport, payload = vega_si11.encode({"input2_m3": 0.001}, None, {"inputs": {2: {"litres_per_pulse": 1}}})
    assert (fport, payload) == (2, h("01 64 00 00000000 14 00000000 01000000 00000000 00000000"))


def test_vega_encode_time_sync():
    """fPort 4: type 255, with the device clock when a time is given."""
    assert vega_si11.encode({}, None, VEGA, 4) == (4, h("ff"))
    assert vega_si11.encode({}, T0, VEGA, 4) == (4, h("ff 00f15365"))


@pytest.mark.parametrize("values, fport, kwargs, match", [
    ({"cold_m3": 20, "input3_m3": 1}, 3, {}, "cannot encode for fPort 3"),
    ({"cold_m3": 20}, 2, {}, "no value for input 3's point 'input3_m3'"),
    ({"cold_m3": 1, "input3_m3": 1}, 2, {}, "below the initial reading"),
    ({"cold_m3": 20, "input3_m3": 1, "battery_pct": 101}, 2, {}, r"battery_pct: 101 is outside 0\.\.100"),
    ({"cold_m3": 20, "input3_m3": 1, "temperature_c": -129}, 2, {}, "temperature_c: -129 is outside"),
    ({"cold_m3": 20, "input3_m3": 1, "temperature_c": "hot"}, 2, {}, "temperature_c: 'hot' is not a number"),
    ({"cold_m3": 20, "input3_m3": 1}, 2, {"settings": 256}, "settings: 256 is outside"),
])
def test_vega_encode_rejects(values, fport, kwargs, match):
    """Values the packet cannot carry are a ValueError naming them."""
    with pytest.raises(ValueError, match=match):
        vega_si11.encode(values, T0, VEGA, fport, **kwargs)


@FUZZ
@given(counts=st.lists(st.integers(0, 2 ** 32 - 1), min_size=4, max_size=4),
       battery=st.integers(0, 100), temperature=st.integers(-128, 127),
       ts=st.one_of(st.none(), st.integers(T0, T0 + 10 ** 8)), alarm=st.booleans())
def test_vega_round_trip(counts, battery, temperature, ts, alarm):
    """decode(encode(values)) gives the values back for all four inputs."""
    options = {"inputs": {n: {"litres_per_pulse": 10, "initial_m3": n} for n in (1, 2, 3, 4)}}
    values = {f"input{n}_m3": n + counts[n - 1] * 10 / 1000 for n in (1, 2, 3, 4)}
    values |= {"battery_pct": battery, "temperature_c": temperature}
    fport, payload = vega_si11.encode(values, ts, options, alarm=alarm)
    decoded = vega_si11.decode(payload, fport, options, {})
    assert decoded.values == {k: pytest.approx(v, rel=1e-12) for k, v in values.items()}
    assert decoded.ts == ts
    assert decoded.status.get("alarm", 0) == (1 if alarm else 0)


# ---------------------------------------------------------------- fuzzing

DEVICES = [
    (pulse_counter_le, {"litres_per_pulse": 10, "initial_m3": 1.5}),
    (pulse_counter_le, {"litres_per_pulse": 1, "counter_bits": 12}),
    (vega_si11, VEGA),
]
#: Arbitrary bytes, and payloads that get past the first checks so the deeper code runs too.
PAYLOADS = st.one_of(
    st.binary(max_size=32),
    st.binary(min_size=4, max_size=4),
    st.binary(min_size=8, max_size=8),
    st.builds(lambda kind, rest: bytes([kind]) + rest, st.sampled_from([1, 2, 255]), st.binary(max_size=24)),
)
FPORTS = st.one_of(st.none(), st.sampled_from([2, 4]), st.integers(-1, 256))


@FUZZ
@given(device=st.sampled_from(DEVICES), uplinks=st.lists(st.tuples(PAYLOADS, FPORTS), min_size=1, max_size=4))
def test_fuzz_decode_only_decodes_or_raises_decode_error(device, uplinks):
    """Any bytes on any port: a Decoded with finite float values, or DecodeError; never anything else."""
    module, options = device
    state: dict = {}
    for payload, fport in uplinks:
        before = dict(state)
        try:
            decoded = module.decode(payload, fport, options, state)
        except DecodeError:
            assert state == before
            continue
        assert isinstance(decoded, Decoded)
        assert all(isinstance(v, float) and math.isfinite(v) for v in decoded.values.values())
        assert all(isinstance(v, float) for v in decoded.status.values())
        assert decoded.ts is None or isinstance(decoded.ts, float)
