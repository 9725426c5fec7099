"""Simulator value overrides: "make this simulated meter read X" for demos and alarm tests.

Values are read back the way the engine reads them: Modbus requests through
a :class:`~channels.sim.slave.SimBus`, M-Bus ``REQ_UD2`` through the meter's
own link handling, decoded with the masters' codecs.  Value time is fixed,
so nothing depends on the wall clock.
"""

from __future__ import annotations

import pytest
import yaml
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from channels.mbus import link
from channels.mbus.telegram import decode_frame
from channels.modbus.framer import ReadResponse, decode_response, encode_read
from channels.modbus.points import decode_point, plan_reads
from channels.sim.field import MBUS_POINTS, SimulatedField
from channels.sim.models import OutdoorSensor, outdoor_temperature
from channels.sim.slave import SimBus
from tests.channels.sim.sim_fixtures import PROFILE_DIR, T0, channel, device, site


def field_site(clock_time: float = T0) -> SimulatedField:
    """Return a field of a heat meter, a building water meter over two apartments, a weather sensor and an M-Bus meter."""
    modbus = channel("rs485", [
        device("heat", 1, "generic_heat_meter"),
        device("b-cold", 2, "generic_water_meter", {"model": "building_water", "sum_of": "kv*-cold"}),
        device("kv1-cold", 11, "generic_water_meter"),
        device("kv2-cold", 21, "generic_water_meter"),
        device("weather", 5, "generic_outdoor_sensor"),
    ])
    mbus = channel("mbus", [
        device("m-heat", 1, "mbus_heat_meter", {"model": "heat_meter", "id": 24310051}),
        device("m-cold", 2, None, {"model": "water_meter", "kind": "cold", "id": 30000101}),
    ], "mbus")
    for d in mbus.devices:
        d.secondary = None
    return SimulatedField(site([modbus, mbus]), Clock(), clock_for_values=lambda: clock_time)


def read(field: SimulatedField, name: str, t: float = T0) -> dict[str, float]:
    """Read every point of a Modbus device over its bus at value time ``t``."""
    sim = field.devices[name]
    bus = SimBus({sim.address: sim}, Clock(), clock_for_values=lambda: t)
    transport = StringTransport()
    bus.makeConnection(transport)
    values = {}
    for block in plan_reads(sim.points):
        bus.dataReceived(encode_read(sim.address, block.function, block.start, block.count))
        _, frame = decode_response(transport.value(), sim.address, block.function, block.count)
        transport.clear()
        assert isinstance(frame, ReadResponse)
        for point in block.points:
            values[point.tag] = decode_point(point, frame.data, block.start)
    return values


def mbus_records(field: SimulatedField, name: str, t: float = T0) -> dict[str, float]:
    """Read an M-Bus meter's first telegram (REQ_UD2 after SND_NKE); return its current values by quantity."""
    meter = field.devices[name]
    assert meter.handle(link.parse_frame(link.snd_nke(meter.primary)), t) == bytes((link.ACK,))
    reply = meter.handle(link.parse_frame(link.req_ud2(meter.primary, True)), t)
    telegram = decode_frame(reply)
    return {r.quantity: r.value for r in telegram.records if r.storage == 0 and isinstance(r.value, float)}


def test_override_is_read_over_the_bus_as_the_profile_encodes_it():
    """t_supply_c (i16, scale 0.01) reads exactly 130.0; the other points keep their physics."""
    field = field_site()
    before = read(field, "heat")
    field.set_override("heat", "t_supply_c", 130.0)
    after = read(field, "heat")
    assert after["t_supply_c"] == 130.0
    assert {k: v for k, v in after.items() if k != "t_supply_c"} == {
        k: v for k, v in before.items() if k != "t_supply_c"}
    assert field.overrides("heat") == {"t_supply_c": 130.0}
    # A value between two steps of the register reads as the meter rounds it.
    field.set_override("heat", "t_supply_c", 64.216)
    assert read(field, "heat")["t_supply_c"] == 64.22


def test_clear_override_returns_to_physics():
    """Clearing one point, then all, brings back the model's values."""
    field = field_site()
    physics = read(field, "heat")
    field.set_override("heat", "t_supply_c", 130.0)
    field.set_override("heat", "flow_m3h", 0.0)
    field.clear_override("heat", "t_supply_c")
    assert field.overrides("heat") == {"flow_m3h": 0.0}
    assert read(field, "heat")["t_supply_c"] == physics["t_supply_c"]
    field.clear_override("heat")
    assert field.overrides("heat") == {}
    assert read(field, "heat") == physics
    field.clear_override("heat", "flow_m3h")  # nothing to clear: no error


def test_status_point_sets_the_declared_flag():
    """error_code = 2 sets bit 1, which the heat meter profile declares as a leak."""
    field = field_site()
    field.set_override("heat", "error_code", 2)
    code = int(read(field, "heat")["error_code"])
    profile = yaml.safe_load((PROFILE_DIR / "generic_heat_meter.yaml").read_text(encoding="utf-8"))
    (status,) = [s for s in profile["status"] if s["point"] == "error_code"]
    assert [kind for bit, kind in status["bits"].items() if code >> bit & 1] == ["leak"]


def test_override_applies_from_the_time_it_was_set():
    """Archive records closed before the override keep their physics; later reads see it."""
    field = field_site()
    model = field.devices["heat"].model
    earlier = model.values(T0 - 3600)["t_supply_c"]
    field.set_override("heat", "t_supply_c", 130.0)
    assert model.values(T0 - 3600)["t_supply_c"] == earlier
    assert model.values(T0 + 3600)["t_supply_c"] == 130.0


def test_building_meter_sums_an_overridden_apartment():
    """A building meter is its apartments plus losses, overridden values included."""
    field = field_site()
    building = field.devices["b-cold"].model
    field.set_override("kv1-cold", "flow_m3h", 2.0)
    kv2 = read(field, "kv2-cold")["flow_m3h"]
    expected = (1 + building.losses) * (2.0 + field.devices["kv2-cold"].model.values(T0)["flow_m3h"])
    assert read(field, "b-cold")["flow_m3h"] == pytest.approx(expected, abs=0.001)
    assert read(field, "kv1-cold")["flow_m3h"] == 2.0 and kv2 > 0


@pytest.mark.parametrize(("point", "value", "text"), [
    ("t_supply_c", 400.0, "cannot hold 400; it holds -327.68 to 327.67"),
    ("error_code", -1, "cannot hold -1; it holds 0 to 65535"),
    ("t_supply_c", 1e308, "cannot hold 1e+308; it holds -327.68 to 327.67"),
    ("energy_kwh", float("nan"), "not a finite number"),
    ("t_supply_c", "hot", "'hot' is not a number"),
    ("t_supply_c", True, "True is not a number"),
])
def test_values_the_meter_cannot_show_are_refused(point, value, text):
    """A value outside what the point's type and scale hold is a ValueError naming the point; nothing changes."""
    field = field_site()
    with pytest.raises(ValueError, match="heat") as info:
        field.set_override("heat", point, value)
    assert text in str(info.value) and repr(point) in str(info.value)
    assert field.overrides("heat") == {}


def test_unknown_device_or_point():
    """Unknown names are KeyErrors that say what exists."""
    field = field_site()
    with pytest.raises(KeyError, match="no simulated device named 'nope'"):
        field.set_override("nope", "t_supply_c", 1.0)
    with pytest.raises(KeyError, match="has no point 't_supply' .*t_supply_c"):
        field.set_override("heat", "t_supply", 1.0)
    with pytest.raises(KeyError, match="no point 'x'"):
        field.clear_override("heat", "x")
    with pytest.raises(KeyError, match="nope"):
        field.overrides("nope")


def test_outdoor_sensor_follows_the_heat_meters_weather():
    """The weather sensor reads the outdoor temperature the heat meters' schedule follows, to 0.1 °C."""
    field = field_site()
    assert isinstance(field.devices["weather"].model, OutdoorSensor)
    values = read(field, "weather")
    assert values["t_outdoor_c"] == pytest.approx(outdoor_temperature(T0, field.utc_offset), abs=0.05)
    assert values["t_outdoor_c"] == pytest.approx(field.devices["heat"].model.values(T0)["t_outdoor_c"], abs=0.05)
    assert values["error_code"] == 0
    field.set_override("weather", "t_outdoor_c", -31.5)
    assert read(field, "weather")["t_outdoor_c"] == -31.5


def test_mbus_meter_override_goes_into_its_telegram():
    """An M-Bus heat meter sends the overridden supply temperature and error flags in its records."""
    field = field_site()
    assert field.point_names("m-heat") == MBUS_POINTS["heat"]
    field.set_override("m-heat", "t_supply_c", 130.0)
    field.set_override("m-heat", "error_code", 4)
    values = mbus_records(field, "m-heat")
    assert values["flow_temperature"] == pytest.approx(130.0)
    assert values["error_flags"] == 4
    assert field.overrides("m-heat") == {"t_supply_c": 130.0, "error_code": 4.0}


def test_mbus_meter_refuses_what_its_records_cannot_hold():
    """The telegram encoder decides: a 1-byte error flags record cannot hold 300; the old value stays."""
    field = field_site()
    field.set_override("m-heat", "error_code", 4)
    with pytest.raises(ValueError, match="'error_code' of 'm-heat' cannot hold 300"):
        field.set_override("m-heat", "error_code", 300)
    assert field.overrides("m-heat") == {"error_code": 4.0}
    with pytest.raises(KeyError, match="no point 'error_code'"):
        field.set_override("m-cold", "error_code", 1)  # a water meter's telegram has no error flags
    field.set_override("m-cold", "volume_m3", 123.456)
    assert mbus_records(field, "m-cold")["volume"] == pytest.approx(123.456)
