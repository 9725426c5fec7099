"""Tests for the simulated slaves, driven by a Clock over a StringTransport."""

from __future__ import annotations

import struct

import pytest
from pymodbus.framer import FramerRTU, FramerSocket
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.register_message import ReadHoldingRegistersRequest, ReadInputRegistersRequest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from channels.modbus.framer import (
    READ_HOLDING,
    READ_INPUT,
    CorruptFrame,
    ExceptionResponse,
    ReadResponse,
    WriteResponse,
    add_crc,
    decode_response,
    encode_read,
    encode_write_multiple,
    encode_write_single,
    rtu_to_mbap,
)
from channels.modbus.points import PointSpec, decode_point, plan_reads
from channels.sim.models import ElectricityMeter, HeatMeter, WaterMeter
from channels.sim.slave import BusCounters, SimBus, SimDevice, SimFactory, SimTcpProtocol
from tests.channels.sim.sim_fixtures import T0, profile_points

PROFILES = {
    "generic_water_meter": lambda: WaterMeter(11),
    "generic_heat_meter": lambda: HeatMeter(12),
    "generic_electricity_meter": lambda: ElectricityMeter(13),
}


class FixedModel:
    """A model with fixed values, for exact register checks."""

    def __init__(self, **values):
        """Keep ``values`` by point name."""
        self._values = values

    def values(self, t):
        """Return the fixed values whatever the time."""
        return self._values


def make_bus(devices, latency=0.0, clock=None):
    """Return (bus, transport, clock) with the clock at T0."""
    clock = clock or Clock()
    if clock.seconds() < T0:
        clock.advance(T0)
    bus = SimBus({d.address: d for d in devices}, clock, latency=latency)
    transport = StringTransport()
    bus.makeConnection(transport)
    return bus, transport, clock


def take(transport):
    """Return and clear what the bus has written."""
    data = transport.value()
    transport.clear()
    return data


def water(address=1, **kwargs):
    """Return a water meter device on the repository's profile."""
    return SimDevice(address, profile_points("generic_water_meter"), WaterMeter(address), **kwargs)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_read_block_decodes_to_the_model_values(profile):
    """Each read the driver would plan gets an answer whose points decode to the model's values."""
    points = profile_points(profile)
    model = PROFILES[profile]()
    bus, transport, clock = make_bus([SimDevice(7, points, model)])
    values = model.values(T0)
    for block in plan_reads(points):
        bus.dataReceived(encode_read(7, block.function, block.start, block.count))
        consumed, frame = decode_response(take(transport), 7, block.function, block.count)
        assert isinstance(frame, ReadResponse)
        for point in block.points:
            decoded = decode_point(point, frame.data, block.start)
            expected = values[point.tag]
            if point.type == "f32":
                assert decoded == pytest.approx(expected, rel=1e-6)
            else:
                assert abs(decoded - expected) <= point.scale / 2 + 1e-9, point.tag


def test_only_the_addressed_device_answers():
    """Of two devices on a bus, only the addressed one answers."""
    bus, transport, _ = make_bus([water(1), water(2)])
    bus.dataReceived(encode_read(2, READ_HOLDING, 0, 5))
    answer = take(transport)
    assert answer[0] == 2
    _, frame = decode_response(answer, 2, READ_HOLDING, 5)
    assert isinstance(frame, ReadResponse)
    assert (bus.requests, bus.answered, bus.ignored) == (1, 1, 0)


def test_unknown_address_and_broadcast_stay_silent():
    """No device at the address, or a broadcast: no answer, counted as ignored."""
    bus, transport, _ = make_bus([water(1)])
    bus.dataReceived(encode_read(9, READ_HOLDING, 0, 5))
    bus.dataReceived(encode_write_single(0, 0, 1))
    assert transport.value() == b""
    assert (bus.requests, bus.answered, bus.ignored) == (2, 0, 2)


def test_bad_crc_is_ignored_and_counted():
    """A request with a bad CRC gets no answer; the next good one does."""
    bus, transport, _ = make_bus([water(1)])
    request = bytearray(encode_read(1, READ_HOLDING, 0, 5))
    request[-1] ^= 0x55
    bus.dataReceived(bytes(request))
    assert transport.value() == b""
    assert bus.crc_errors == 1
    bus.dataReceived(encode_read(1, READ_HOLDING, 0, 5))
    assert isinstance(decode_response(take(transport), 1, READ_HOLDING, 5)[1], ReadResponse)


def test_request_delivered_byte_by_byte():
    """A request split into single bytes is answered once it is complete."""
    bus, transport, _ = make_bus([water(1)])
    request = encode_read(1, READ_HOLDING, 0, 5)
    for i in range(len(request) - 1):
        bus.dataReceived(request[i:i + 1])
        assert transport.value() == b""
    bus.dataReceived(request[-1:])
    assert isinstance(decode_response(take(transport), 1, READ_HOLDING, 5)[1], ReadResponse)


def test_garbage_before_a_request_is_skipped():
    """Line noise in front of a request does not stop it being answered."""
    bus, transport, _ = make_bus([water(1)])
    bus.dataReceived(b"\x00\x00\x00" + encode_read(1, READ_HOLDING, 0, 5))
    assert isinstance(decode_response(take(transport), 1, READ_HOLDING, 5)[1], ReadResponse)


def test_two_requests_in_one_chunk_get_two_answers():
    """Back-to-back requests in one read are both answered, in order."""
    bus, transport, _ = make_bus([water(1), water(2)])
    bus.dataReceived(encode_read(1, READ_HOLDING, 0, 5) + encode_read(2, READ_HOLDING, 0, 2))
    data = take(transport)
    consumed, first = decode_response(data, 1, READ_HOLDING, 5)
    assert isinstance(first, ReadResponse)
    assert isinstance(decode_response(data[consumed:], 2, READ_HOLDING, 2)[1], ReadResponse)


def test_stale_partial_frame_is_dropped_after_a_silent_gap():
    """Bytes left over from a broken frame are dropped when the line has been quiet."""
    bus, transport, clock = make_bus([water(1)])
    # Function 16 with a byte count of 200: the slave would wait for 209 bytes.
    bus.dataReceived(bytes([1, 0x10, 0, 0, 0, 100, 200]))
    clock.advance(1.0)
    bus.dataReceived(encode_read(1, READ_HOLDING, 0, 5))
    assert isinstance(decode_response(take(transport), 1, READ_HOLDING, 5)[1], ReadResponse)


@pytest.mark.parametrize("function, start, count", [
    (READ_HOLDING, 0, 6),   # one register past the end of the map
    (READ_HOLDING, 5, 1),   # wholly outside
    (READ_INPUT, 0, 1),     # the water profile has no input registers
])
def test_unmapped_registers_give_illegal_data_address(function, start, count):
    """A read touching an unmapped register gets exception 02, like a real meter."""
    bus, transport, _ = make_bus([water(1)])
    bus.dataReceived(encode_read(1, function, start, count))
    _, frame = decode_response(take(transport), 1, function, count)
    assert isinstance(frame, ExceptionResponse) and frame.code == 2


def test_gap_inside_a_read_gives_illegal_data_address():
    """Registers between two points are not readable."""
    points = [PointSpec("a", READ_HOLDING, 0, "u16"), PointSpec("b", READ_HOLDING, 2, "u16")]
    bus, transport, _ = make_bus([SimDevice(1, points, FixedModel(a=1, b=2))])
    bus.dataReceived(encode_read(1, READ_HOLDING, 0, 3))
    _, frame = decode_response(take(transport), 1, READ_HOLDING, 3)
    assert isinstance(frame, ExceptionResponse) and frame.code == 2
    bus.dataReceived(encode_read(1, READ_HOLDING, 2, 1))
    _, frame = decode_response(take(transport), 1, READ_HOLDING, 1)
    assert frame.registers == [2]


def test_register_image_encoding():
    """Scale, offset, rounding, word order and partial reads of a multi-register point."""
    points = [
        PointSpec("volume", READ_HOLDING, 0, "u32", "big", 0.001),
        PointSpec("temp", READ_HOLDING, 2, "i16", "big", 0.1, -10.0),
        PointSpec("energy", READ_HOLDING, 3, "bcd32", "little", 0.01),
        PointSpec("power", READ_HOLDING, 5, "f32", "little"),
    ]
    model = FixedModel(volume=123.4567, temp=-15.26, energy=1234.567, power=1.5)
    device = SimDevice(1, points, model)
    image = device.read_registers(READ_HOLDING, 0, 7, T0)
    assert image[0:4] == struct.pack(">I", 123457)
    assert image[4:6] == struct.pack(">h", -53)
    assert image[6:10] == bytes.fromhex("34 57 00 12".replace(" ", ""))
    assert image[10:14] == struct.pack(">f", 1.5)[2:] + struct.pack(">f", 1.5)[:2]
    # The low register of the volume alone, and a read that starts mid-point.
    assert device.read_registers(READ_HOLDING, 1, 2, T0) == image[2:6]
    assert device.read_registers(READ_HOLDING, 0, 8, T0) is None


def test_unknown_points_encode_as_zero():
    """A profile point the model does not know reads 0."""
    device = SimDevice(1, [PointSpec("mystery", READ_INPUT, 10, "u16")], FixedModel())
    assert device.read_registers(READ_INPUT, 10, 1, T0) == b"\x00\x00"


def test_bad_count_and_unknown_function():
    """A count outside 1-125 gets exception 03, an unknown function exception 01."""
    bus, transport, _ = make_bus([water(1)])
    bus.dataReceived(add_crc(struct.pack(">BBHH", 1, READ_HOLDING, 0, 126)))
    _, frame = decode_response(take(transport), 1, READ_HOLDING, 126)
    assert isinstance(frame, ExceptionResponse) and frame.code == 3
    bus.dataReceived(add_crc(bytes([1, 0x07])))
    _, frame = decode_response(take(transport), 1, 0x07, 0)
    assert isinstance(frame, ExceptionResponse) and frame.code == 1


def test_writes_to_holding_points_are_acknowledged_and_discarded():
    """06 and 16 to mapped holding registers echo; elsewhere exception 02."""
    device = water(1)
    bus, transport, _ = make_bus([device])
    before = device.read_registers(READ_HOLDING, 0, 5, T0)
    bus.dataReceived(encode_write_single(1, 3, 0x1234))
    _, frame = decode_response(take(transport), 1, 0x06, 1)
    assert frame == WriteResponse(1, 0x06, 3, 0x1234)
    bus.dataReceived(encode_write_multiple(1, 0, [1, 2]))
    _, frame = decode_response(take(transport), 1, 0x10, 2)
    assert frame == WriteResponse(1, 0x10, 0, 2)
    assert device.read_registers(READ_HOLDING, 0, 5, T0) == before
    bus.dataReceived(encode_write_single(1, 9, 1))
    _, frame = decode_response(take(transport), 1, 0x06, 1)
    assert isinstance(frame, ExceptionResponse) and frame.code == 2


def test_fault_silent():
    """A silent device never answers."""
    bus, transport, _ = make_bus([water(1)])
    bus.set_fault(1, "silent")
    bus.dataReceived(encode_read(1, READ_HOLDING, 0, 5))
    assert transport.value() == b""
    assert bus.ignored == 1


def test_fault_exception():
    """A failing device answers exception 04 (server device failure)."""
    bus, transport, _ = make_bus([water(1)])
    bus.set_fault(1, "exception")
    bus.dataReceived(encode_read(1, READ_HOLDING, 0, 5))
    _, frame = decode_response(take(transport), 1, READ_HOLDING, 5)
    assert isinstance(frame, ExceptionResponse) and frame.code == 4


def test_fault_corrupt_crc():
    """A corrupt-CRC device answers a frame of the right shape that the master rejects."""
    bus, transport, _ = make_bus([water(1)])
    bus.set_fault(1, "corrupt_crc")
    bus.dataReceived(encode_read(1, READ_HOLDING, 0, 5))
    answer = take(transport)
    assert len(answer) == 15
    _, frame = decode_response(answer, 1, READ_HOLDING, 5)
    assert isinstance(frame, CorruptFrame)


def test_fault_slow_answers_after_the_delay():
    """A slow device answers only after slow_delay seconds."""
    bus, transport, clock = make_bus([water(1, slow_delay=2.0)])
    bus.set_fault(1, "slow")
    bus.dataReceived(encode_read(1, READ_HOLDING, 0, 5))
    clock.advance(1.9)
    assert transport.value() == b""
    clock.advance(0.2)
    assert isinstance(decode_response(take(transport), 1, READ_HOLDING, 5)[1], ReadResponse)
    bus.set_fault(1, "normal")
    bus.dataReceived(encode_read(1, READ_HOLDING, 0, 5))
    assert transport.value() != b""


def test_unknown_fault_is_rejected():
    """Fault names are checked."""
    with pytest.raises(ValueError, match="unknown fault"):
        water(1).fault = "on_fire"


def test_latency_and_value_time():
    """Answers wait for the bus latency; values are taken when the request arrives."""
    device = water(1)
    bus, transport, clock = make_bus([device], latency=0.05)
    bus.dataReceived(encode_read(1, READ_HOLDING, 0, 5))
    expected = device.read_registers(READ_HOLDING, 0, 5, clock.seconds())
    assert transport.value() == b""
    clock.advance(0.05)
    _, frame = decode_response(take(transport), 1, READ_HOLDING, 5)
    assert frame.data == expected


def test_pending_answers_are_dropped_when_the_connection_goes():
    """Losing the connection cancels answers still waiting for their latency."""
    bus, transport, clock = make_bus([water(1)], latency=0.05)
    bus.dataReceived(encode_read(1, READ_HOLDING, 0, 5))
    bus.connectionLost(None)
    assert clock.getDelayedCalls() == []


def test_clock_for_values_overrides_the_reactor_time():
    """A callable value clock sets the time the meters are read at."""
    clock = Clock()
    device = water(1)
    bus = SimBus({1: device}, clock, clock_for_values=lambda: T0)
    transport = StringTransport()
    bus.makeConnection(transport)
    bus.dataReceived(encode_read(1, READ_HOLDING, 0, 5))
    _, frame = decode_response(take(transport), 1, READ_HOLDING, 5)
    assert frame.data == device.read_registers(READ_HOLDING, 0, 5, T0)


def test_pymodbus_reads_our_answers():
    """pymodbus, as an independent peer, builds the request and parses our answer."""
    device = water(1)
    bus, transport, _ = make_bus([device])
    framer = FramerRTU(DecodePDU(is_server=False))
    for request, function in (
        (ReadHoldingRegistersRequest(dev_id=1, address=0, count=2), READ_HOLDING),
        (ReadHoldingRegistersRequest(dev_id=1, address=2, count=3), READ_HOLDING),
    ):
        bus.dataReceived(framer.buildFrame(request))
        answer = take(transport)
        used, pdu = framer.handleFrame(answer, 1, 0)
        assert used == len(answer)
        expected = device.read_registers(function, request.address, request.count, T0)
        assert pdu.registers == list(struct.unpack(f">{request.count}H", expected))


def test_pymodbus_sees_our_exception():
    """pymodbus decodes our illegal-address answer as an exception response."""
    bus, transport, _ = make_bus([water(1)])
    framer = FramerRTU(DecodePDU(is_server=False))
    bus.dataReceived(framer.buildFrame(ReadInputRegistersRequest(dev_id=1, address=0, count=1)))
    _, pdu = framer.handleFrame(take(transport), 1, 0)
    assert pdu.isError() and pdu.exception_code == 2


# ----------------------------------------------------------------- Modbus TCP


def make_tcp(devices, counters=None):
    """Return (protocol, transport) for MBAP access to ``devices``."""
    clock = Clock()
    clock.advance(T0)
    protocol = SimTcpProtocol({d.address: d for d in devices}, clock, counters=counters)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def test_mbap_request_is_answered_by_the_unit():
    """An MBAP read gets an MBAP answer with the same transaction id, read by pymodbus."""
    device = water(3)
    protocol, transport = make_tcp([device, water(4)])
    framer = FramerSocket(DecodePDU(is_server=False))
    request = ReadHoldingRegistersRequest(dev_id=3, address=0, count=5, transaction_id=77)
    protocol.dataReceived(framer.buildFrame(request))
    answer = take(transport)
    assert struct.unpack_from(">HHHB", answer) == (77, 0, 13, 3)
    used, pdu = framer.handleFrame(answer, 3, 77)
    expected = device.read_registers(READ_HOLDING, 0, 5, T0)
    assert pdu.registers == list(struct.unpack(">5H", expected))


def test_mbap_unknown_unit_gets_gateway_exception():
    """A unit id without a device is answered 0x0B, like a gateway does."""
    protocol, transport = make_tcp([water(1)])
    protocol.dataReceived(rtu_to_mbap(encode_read(9, READ_HOLDING, 0, 5), 5))
    assert take(transport) == struct.pack(">HHHBBB", 5, 0, 3, 9, 0x83, 0x0B)


def test_mbap_faults_and_bad_header():
    """corrupt_crc and silent devices are silent over TCP; a bad header is counted."""
    counters = BusCounters()
    device = water(1)
    protocol, transport = make_tcp([device], counters)
    for fault in ("corrupt_crc", "silent"):
        device.fault = fault
        protocol.dataReceived(rtu_to_mbap(encode_read(1, READ_HOLDING, 0, 5), 1))
        assert transport.value() == b""
    protocol.dataReceived(b"\x00\x01\x00\x07\x00\x06\x01\x03\x00\x00\x00\x05")
    assert counters.crc_errors == 1
    assert counters.ignored == 2


def test_mbap_malformed_pdu_gets_illegal_value():
    """A read PDU that is too short is answered with exception 03."""
    protocol, transport = make_tcp([water(1)])
    protocol.dataReceived(struct.pack(">HHHBBH", 1, 0, 4, 1, 3, 0))
    assert take(transport) == struct.pack(">HHHBBB", 1, 0, 3, 1, 0x83, 3)


def test_factory_shares_devices_and_counters():
    """Every connection of a factory serves the same devices and counts into one place."""
    clock = Clock()
    clock.advance(T0)
    factory = SimFactory(SimBus, {1: water(1)}, clock)
    first, second = factory.buildProtocol(None), factory.buildProtocol(None)
    for protocol in (first, second):
        protocol.makeConnection(StringTransport())
        protocol.dataReceived(encode_read(1, READ_HOLDING, 0, 5))
    assert factory.counters.answered == 2
    assert factory.connections == {first, second}
    factory.disconnect_all()
    assert all(p.transport.disconnecting for p in (first, second))
    first.connectionLost(None)
    assert factory.connections == {second}
