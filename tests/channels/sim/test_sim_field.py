"""Tests for the simulated field built from a site config, and for the demo site."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport

from channels.modbus.framer import READ_HOLDING, ReadResponse, decode_response, encode_read, rtu_to_mbap
from channels.modbus.points import decode_point, plan_reads
from channels.modbus.timing import expected_transaction_time, read_response_bytes, silent_interval
from channels.sim.field import NullModel, SimulatedField
from channels.sim.models import BuildingElectricity, BuildingWater, ElectricityMeter, HeatMeter, WaterMeter
from channels.sim.slave import SimBus, SimTcpProtocol
from tests.channels.sim.sim_fixtures import DEMO as DEMO_PATH
from tests.channels.sim.sim_fixtures import T0, channel, demo_site, device, load_profiles, profile_points, site


def small_site(**extra):
    """Return a site with one building meter and two apartments."""
    devices = [
        device("b-cold", 1, "generic_water_meter", {"model": "building_water", "sum_of": "kv*-cold"}),
        device("kv1-cold", 11, "generic_water_meter"),
        device("kv2-cold", 21, "generic_water_meter"),
        device("kv1-hot", 12, "generic_water_meter"),
        device("kv1-el", 13, "generic_electricity_meter"),
        device("heat", 2, "generic_heat_meter"),
    ]
    return site([channel("rs485", devices), channel("lan", [device("tcp-el", 5, "generic_electricity_meter")],
                                                   "modbus-tcp")], **extra)


def read_points(field, name, t):
    """Read a device's points through its bus, as the engine would; return {point: value}."""
    sim = field.devices[name]
    clock = Clock()
    bus = SimBus({sim.address: sim}, clock, clock_for_values=lambda: t)
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


def test_models_follow_profile_and_options():
    """The profile's sim key picks the model; hot in the name picks hot water; options override."""
    field = SimulatedField(small_site(), Clock())
    assert isinstance(field.devices["kv1-cold"].model, WaterMeter)
    assert not field.devices["kv1-cold"].model.hot
    assert field.devices["kv1-hot"].model.hot
    assert isinstance(field.devices["kv1-el"].model, ElectricityMeter)
    assert isinstance(field.devices["heat"].model, HeatMeter)
    building = field.devices["b-cold"].model
    assert isinstance(building, BuildingWater)
    assert building.members == [field.devices["kv1-cold"].model, field.devices["kv2-cold"].model]
    assert field.devices["kv1-cold"].points == profile_points("generic_water_meter")


def test_channels_and_addresses():
    """Each Modbus channel holds its devices by address."""
    field = SimulatedField(small_site(), Clock())
    assert set(field.channels) == {"rs485", "lan"}
    assert sorted(field.channels["rs485"].devices) == [1, 2, 11, 12, 13, 21]
    assert field.channels["lan"].type == "modbus-tcp"


def test_other_channel_types_are_left_alone():
    """Channel types without a simulator (LoRaWAN, modems…) are not this field's business."""
    cfg = site([channel("lora", [device("x", 1, "unknown_profile")], "lorawan")])
    assert SimulatedField(cfg, Clock()).channels == {}


def test_mbus_channels_get_simulated_meters():
    """An M-Bus channel's devices become M-Bus meters: primary ones by address, others by secondary id."""
    meters = [device("h", 3, None, {"model": "heat_meter", "id": 11112222}),
              SimpleNamespace(name="w", address=None, secondary="33334444", profile=None,
                              sim={"model": "water_meter", "kind": "hot"}, enabled=True)]
    field = SimulatedField(site([channel("bus", meters, "mbus")]), Clock())
    heat, water = field.channels["bus"].devices.values()
    assert (heat.primary, heat.ident, heat.kind) == (3, 11112222, "heat")
    assert (water.primary, water.ident, water.kind) == (None, 33334444, "warm_water")
    with pytest.raises(ValueError, match="electricity_meter"):
        SimulatedField(site([channel("bus", [device("e", 1, None, {"model": "electricity_meter"})], "mbus")]),
                       Clock())


def test_sum_of_list_and_kind_option():
    """sum_of may list names; sim kind overrides the name."""
    devices = [
        device("odpu", 1, "generic_water_meter",
               {"model": "building_water", "kind": "hot", "sum_of": ["a", "b"], "losses": 0.1}),
        device("a", 2, "generic_water_meter", {"kind": "hot"}),
        device("b", 3, "generic_water_meter", {"kind": "hot", "seed": 5}),
    ]
    field = SimulatedField(site([channel("c", devices)]), Clock())
    model = field.devices["odpu"].model
    assert model.losses == 0.1 and model.own.hot
    assert field.devices["a"].model.hot and field.devices["b"].model.seed == 5


def test_profile_without_model_reads_zeros():
    """A profile with no sim key gives a device that answers zeros."""
    cfg = small_site()
    cfg.profiles["generic_water_meter"].sim = None
    field = SimulatedField(cfg, Clock())
    assert isinstance(field.devices["kv1-cold"].model, NullModel)
    assert read_points(field, "kv1-cold", T0)["volume_m3"] == 0


@pytest.mark.parametrize("devices, message", [
    ([device("a", 1, "generic_water_meter"), device("b", 1, "generic_water_meter")], "address 1"),
    ([device("a", 1, "no_such_profile")], "unknown profile"),
    ([device("a", 1, "generic_water_meter", {"model": "gas"})], "unknown simulation model"),
    ([device("a", 1, "generic_water_meter", {"model": "building_water"})], "sum_of"),
    ([device("a", 1, "generic_water_meter", {"model": "building_water", "sum_of": "kv*"})], "matches no device"),
    ([device("a", 1, "generic_water_meter", {"model": "building_water", "sum_of": ["zz"]})], "unknown device"),
    ([device("a", 1, "generic_water_meter", {"model": "building_water", "sum_of": ["b"]}),
      device("b", 2, "generic_water_meter", {"model": "building_water", "sum_of": ["a"]})], "cannot sum"),
])
def test_config_mistakes_are_reported(devices, message):
    """Mistakes in the simulated part of a config raise ValueError naming the value."""
    with pytest.raises(ValueError, match=message):
        SimulatedField(site([channel("c", devices)]), Clock())


def test_set_fault_by_name():
    """Faults are switched by device name; unknown names and faults are rejected."""
    field = SimulatedField(small_site(), Clock())
    field.set_fault("kv1-el", "silent")
    assert field.devices["kv1-el"].fault == "silent"
    with pytest.raises(KeyError):
        field.set_fault("nobody", "silent")
    with pytest.raises(ValueError):
        field.set_fault("kv1-el", "melted")


def test_start_tcp_registers_listeners():
    """start_tcp listens once per channel: RTU over TCP for RTU channels, MBAP for TCP ones."""
    reactor = MemoryReactorClock()
    reactor.advance(T0)
    field = SimulatedField(small_site(), reactor)
    addresses = field.start_tcp("127.0.0.1", 15020)
    assert addresses == {"rs485": ("127.0.0.1", 15020), "lan": ("127.0.0.1", 15021)}
    (p1, rtu_factory, _, host1), (p2, tcp_factory, _, host2) = reactor.tcpServers
    assert (p1, host1, p2, host2) == (15020, "127.0.0.1", 15021, "127.0.0.1")
    rtu = rtu_factory.buildProtocol(None)
    tcp = tcp_factory.buildProtocol(None)
    assert isinstance(rtu, SimBus) and isinstance(tcp, SimTcpProtocol)
    rtu_transport, tcp_transport = StringTransport(), StringTransport()
    rtu.makeConnection(rtu_transport)
    tcp.makeConnection(tcp_transport)
    rtu.dataReceived(encode_read(11, READ_HOLDING, 0, 5))
    tcp.dataReceived(rtu_to_mbap(encode_read(5, READ_HOLDING, 0, 6), 1))
    assert rtu_transport.value()[:2] == b"\x0b\x03"
    assert tcp_transport.value()[6:8] == b"\x05\x03"
    assert field.counters("rs485").answered == 1 and field.counters("lan").answered == 1
    field.stop()
    assert rtu_transport.disconnecting and tcp_transport.disconnecting


def test_start_tcp_ephemeral_ports():
    """base_port 0 asks for ephemeral ports."""
    reactor = MemoryReactorClock()
    SimulatedField(small_site(), reactor).start_tcp()
    assert [server[0] for server in reactor.tcpServers] == [0, 0]


def test_stop_channel_closes_only_that_channels_pty_and_listener():
    """stop_channel (a reload took the channel down): its pty pair and TCP listener close, the others stay."""
    import os

    reactor = MemoryReactorClock()
    field = SimulatedField(site([channel("one", [device("m1", 1, "generic_water_meter")]),
                                 channel("two", [device("m2", 1, "generic_water_meter")]),
                                 channel("lan", [device("m3", 1, "generic_water_meter")], "modbus-tcp")]), reactor)
    paths = field.start_pty()
    assert sorted(paths) == ["one", "two"]
    field.start_tcp()
    (one, one_slave), (two, two_slave) = [(t, slave) for _, t, slave in field._ptys]
    served = StringTransport()
    lan = next(factory for name, factory in field._factories if name == "lan")
    lan.buildProtocol(None).makeConnection(served)
    stopped = []
    field.stop_channel("one").addCallback(stopped.append)
    assert stopped and one.fileno() == -1 and one not in reactor.getReaders()
    with pytest.raises(OSError):
        os.fstat(one_slave)
    assert two.fileno() >= 0 and two in reactor.getReaders() and os.fstat(two_slave)
    # start_tcp serves every channel (RTU ones as RTU over TCP): "one"'s listener went too.
    assert not served.disconnecting and [name for name, _ in field._ports] == ["two", "lan"]
    field.stop_channel("lan")
    assert served.disconnecting and [name for name, _ in field._ports] == ["two"]
    field.stop_channel("lan")  # again: nothing left to close
    field.stop()
    assert two.fileno() == -1 and field._ptys == [] and field._ports == []


# ------------------------------------------------------------------ demo site


DEMO = demo_site()
RS485 = [c for c in DEMO.channels if c.type == "modbus-rtu" and "serial" in c.transport]


def test_demo_has_two_rs485_buildings_of_22_meters_and_one_on_mbus():
    """Two RS-485 segments, each with 4 building meters and 18 apartment meters; an M-Bus building.

    Building 1's segment also carries the district's outdoor temperature sensor.
    """
    field = SimulatedField(DEMO, Clock())
    assert list(field.channels) == ["b1-rs485", "b2-rs485", "b3-mbus", "b4-gprs"]
    for name in ("b1-rs485", "b2-rs485"):
        ch = field.channels[name]
        meters = [d for d in ch.devices.values() if d.name != "weather"]
        assert len(meters) == 22
        prefix = name.split("-")[0]
        assert isinstance(field.devices[f"{prefix}-heat"].model, HeatMeter)
        assert isinstance(field.devices[f"{prefix}-el"].model, BuildingElectricity)
        assert field.devices[f"{prefix}-hot"].model.own.hot
    mbus = field.channels["b3-mbus"].devices.values()
    assert {m.kind for m in mbus} == {"heat", "cold_water", "warm_water"}
    assert field.devices["b3-heat"].ident == 24310051 and field.devices["b3-heat-gvs"].ident == 24310052
    # Building 4's segment behind its GPRS modem.
    assert len(field.devices) == 44 + 1 + 6 + 5 and list(field.modem_channels) == ["b4-gprs"]


def test_demo_has_one_terminated_device_per_segment():
    """Exactly one device per segment carries the far-end terminator."""
    for ch in RS485:
        assert sum(bool(getattr(d, "termination", False)) for d in ch.devices) == 1
        assert ch.transport["rs485"] == {"rts_toggle": True, "termination": True}


def test_demo_building_meters_balance_with_apartments():
    """Read over the bus, each building meter is about (1 + losses) x the sum of its apartments."""
    field = SimulatedField(DEMO, Clock())
    for b in ("b1", "b2"):
        for building, suffix, point, losses in (
            (f"{b}-cold", "cold", "volume_m3", 0.03),
            (f"{b}-hot", "hot", "volume_m3", 0.03),
            (f"{b}-el", "el", "energy_kwh", 0.02),
            (f"{b}-el", "el", "energy_t2_kwh", 0.02),
        ):
            total = sum(read_points(field, f"{b}-kv{k:02d}-{suffix}", T0)[point] for k in range(1, 7))
            measured = read_points(field, building, T0)[point]
            assert measured == pytest.approx(total * (1 + losses), rel=1e-4)


def test_demo_poll_budget_fits_the_segment():
    """At 9600 Bd the demo's polls use well under half of each segment's time."""
    profiles = load_profiles()
    for ch in RS485:
        transport = ch.transport
        baud, parity = transport["baudrate"], transport["parity"]
        busy = 0.0
        for d in ch.devices:
            period = float(d.poll.rstrip("s"))
            points = profile_points(d.profile)
            assert d.profile in profiles
            per_poll = sum(expected_transaction_time(8, read_response_bytes(b.count), baud, parity)
                           for b in plan_reads(points))
            busy += per_poll / period
        assert 0.10 < busy < 0.25
        assert silent_interval(baud, parity) == pytest.approx(3.5 * 11 / 9600)


def test_demo_passes_the_site_config_checks():
    """The config package, where present, accepts the demo without a problem and the field builds from it."""
    loader = pytest.importorskip("scada.config.loader")
    cfg, problems = loader.load_config(str(DEMO_PATH))
    assert [str(p) for p in problems] == []
    field = SimulatedField(cfg, Clock())
    assert len(field.devices) == 56 and len(field.uplink_devices) == 5
    assert isinstance(field.devices["b2-cold"].model, BuildingWater)
