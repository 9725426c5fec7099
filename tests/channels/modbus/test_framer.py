"""Tests for channels.modbus.framer: RTU and MBAP framing, cross-checked with pymodbus."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pymodbus.framer import FramerRTU, FramerSocket
from pymodbus.pdu import DecodePDU
from pymodbus.pdu import ExceptionResponse as PmException
from pymodbus.pdu.other_message import ReadExceptionStatusRequest
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    ReadInputRegistersResponse,
    WriteMultipleRegistersRequest,
    WriteMultipleRegistersResponse,
    WriteSingleRegisterRequest,
    WriteSingleRegisterResponse,
)

from channels.modbus import framer
from channels.modbus.framer import (
    CorruptFrame,
    ExceptionResponse,
    ReadResponse,
    Request,
    WriteResponse,
    decode_mbap,
    decode_request,
    decode_response,
)

SPLITS = ("whole", "half", "bytewise")
#: Line noise that holds neither a unit address used below nor a function code.
GARBAGE = bytes.fromhex("00 ff 00")


def _crc(body: bytes) -> bytes:
    """Append a CRC computed by pymodbus, independently of the code under test."""
    return body + FramerRTU.compute_CRC(body).to_bytes(2, "big")


def _chunks(data: bytes, split: str) -> list[bytes]:
    if split == "whole":
        return [data]
    if split == "half":
        return [data[: len(data) // 2], data[len(data) // 2:]]
    return [data[i:i + 1] for i in range(len(data))]


def _feed(data: bytes, split: str, decode) -> tuple[list[tuple[int, object, int]], bytes]:
    """Feed ``data`` in chunks like a protocol buffer; return (results with byte position, leftover)."""
    buf = bytearray()
    fed = 0
    results = []
    for chunk in _chunks(data, split):
        buf += chunk
        fed += len(chunk)
        while buf:
            consumed, frame = decode(bytes(buf))
            if consumed == 0:
                break
            del buf[:consumed]
            results.append((consumed, frame, fed))
    return results, bytes(buf)


# ------------------------------------------------------------------ responses

_DATA_125 = bytes(i % 251 for i in range(250))
#: (id, frame, unit, function, count, expected)
RESPONSES = [
    ("read1", bytes.fromhex("01 03 02 00 2a 39 9b"), 1, 3, 1, ReadResponse(1, 3, b"\x00\x2a")),
    # Captured in pymodbus' own framer tests.
    ("read2", bytes.fromhex("11 03 04 00 8d 00 8e fb bd"), 0x11, 3, 2, ReadResponse(0x11, 3, bytes.fromhex("008d008e"))),
    # Data that holds our unit and the exception function: an inner candidate.
    ("read2_selfsimilar", _crc(bytes.fromhex("01 03 04 01 83 02 01")), 1, 3, 2, ReadResponse(1, 3, bytes.fromhex("01830201"))),
    ("read10_input", _crc(bytes([7, 4, 20]) + bytes(range(20))), 7, 4, 10, ReadResponse(7, 4, bytes(range(20)))),
    ("read125", _crc(bytes([1, 3, 250]) + _DATA_125), 1, 3, 125, ReadResponse(1, 3, _DATA_125)),
    ("exception02", bytes.fromhex("01 83 02 c0 f1"), 1, 3, 2, ExceptionResponse(1, 3, 2)),
    ("exception06_input", _crc(bytes.fromhex("05 84 06")), 5, 4, 10, ExceptionResponse(5, 4, 6)),
    ("write_single", bytes.fromhex("01 06 00 05 00 07 d8 09"), 1, 6, 1, WriteResponse(1, 6, 5, 7)),
    ("write_multiple", bytes.fromhex("01 10 00 05 00 02 51 c9"), 1, 16, 2, WriteResponse(1, 16, 5, 2)),
]
RESPONSE_IDS = [case[0] for case in RESPONSES]


def _decoder(unit, function, count):
    return lambda buf: decode_response(buf, unit, function, count)


def test_crc_matches_spec_example():
    """The spec's example request 01 03 00 00 00 02 has CRC C4 0B, low byte first."""
    assert framer.encode_read(1, 3, 0, 2) == bytes.fromhex("01 03 00 00 00 02 c4 0b")
    assert framer.crc16(bytes.fromhex("01 03 00 00 00 02")) == 0x0BC4
    assert framer.crc_ok(bytes.fromhex("01 03 00 00 00 02 c4 0b"))
    assert not framer.crc_ok(bytes.fromhex("01 03 00 00 00 02 0b c4"))
    assert not framer.crc_ok(b"\x01\x03\x00")


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(("name", "frame", "unit", "function", "count", "expected"), RESPONSES, ids=RESPONSE_IDS)
def test_decode_response_split(name, frame, unit, function, count, expected, split):
    """A captured answer fed whole, halved or byte by byte decodes once, at its last byte."""
    results, leftover = _feed(frame, split, _decoder(unit, function, count))
    assert results == [(len(frame), expected, len(frame))]
    assert leftover == b""


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(("name", "frame", "unit", "function", "count", "expected"), RESPONSES, ids=RESPONSE_IDS)
def test_decode_response_garbage_before(name, frame, unit, function, count, expected, split):
    """Noise before an answer is consumed together with it."""
    data = GARBAGE + frame
    results, leftover = _feed(data, split, _decoder(unit, function, count))
    assert results == [(len(data), expected, len(data))]
    assert leftover == b""


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(("name", "frame", "unit", "function", "count", "expected"), RESPONSES, ids=RESPONSE_IDS)
def test_decode_response_garbage_after(name, frame, unit, function, count, expected, split):
    """Bytes after an answer are left unconsumed for the caller."""
    data = frame + GARBAGE
    results, leftover = _feed(data, split, _decoder(unit, function, count))
    assert [(consumed, got) for consumed, got, _ in results] == [(len(frame), expected)]
    assert leftover == GARBAGE


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(("name", "frame", "unit", "function", "count", "expected"), RESPONSES, ids=RESPONSE_IDS)
def test_decode_response_bad_crc(name, frame, unit, function, count, expected, split):
    """A complete answer with a bad CRC is a CorruptFrame consumed up to its end."""
    bad = frame[:-1] + bytes([frame[-1] ^ 0x5A])
    data = GARBAGE + bad
    results, leftover = _feed(data, split, _decoder(unit, function, count))
    assert results == [(len(data), CorruptFrame("CRC mismatch", bad), len(data))]
    assert leftover == b""


def test_decode_response_bad_crc_then_good_answer():
    """A corrupt candidate followed by a valid answer in the same buffer yields the answer."""
    good = bytes.fromhex("11 03 04 00 8d 00 8e fb bd")
    bad = good[:-2] + b"\x00\x00"
    results, _ = _feed(bad + good, "whole", _decoder(0x11, 3, 2))
    assert results == [(len(bad) + len(good), ReadResponse(0x11, 3, bytes.fromhex("008d008e")), 18)]


@pytest.mark.parametrize("split", SPLITS)
def test_decode_response_ignores_other_unit_and_function(split):
    """Valid frames of another unit or another function are skipped, not returned."""
    other_unit = _crc(bytes.fromhex("02 03 04 00 01 00 02"))
    other_function = _crc(bytes.fromhex("01 04 04 00 01 00 02"))
    ours = _crc(bytes.fromhex("01 03 04 12 34 56 78"))
    data = other_unit + other_function + ours
    results, leftover = _feed(data, split, _decoder(1, 3, 2))
    assert results == [(len(data), ReadResponse(1, 3, bytes.fromhex("12345678")), len(data))]
    assert leftover == b""


def test_decode_response_wrong_byte_count_ignored():
    """A CRC-valid answer of our unit and function with another byte count is not ours."""
    other = _crc(bytes.fromhex("01 03 02 00 01"))
    ours = _crc(bytes.fromhex("01 03 04 12 34 56 78"))
    assert decode_response(other, 1, 3, 2) == (0, None)
    assert decode_response(other + ours, 1, 3, 2) == (len(other) + len(ours), ReadResponse(1, 3, bytes.fromhex("12345678")))


def test_decode_response_other_unit_with_matching_bytes():
    """Another unit's answer whose data holds our unit, function and byte count is skipped."""
    # Unit 2's registers contain 01 03 04 ...: a header of ours with a wrong CRC.
    other = _crc(bytes.fromhex("02 03 08 01 03 04 00 01 00 02 00"))
    ours = _crc(bytes.fromhex("01 03 04 00 0a 00 0b"))
    data = other + ours
    assert decode_response(data, 1, 3, 2) == (len(data), ReadResponse(1, 3, bytes.fromhex("000a000b")))
    # Alone, the look-alike is reported as corrupt so that it can be counted.
    consumed, frame = decode_response(other, 1, 3, 2)
    assert isinstance(frame, CorruptFrame) and consumed == 3 + 9


def test_decode_response_exception_behind_echoed_request():
    """An echoed request that looks like a read header does not hide an exception answer."""
    # Reading 10 registers at 0x1400: the echo reads as "01 03 14" = unit, fc, byte count 20.
    echo = framer.encode_read(1, 3, 0x1400, 10)
    answer = framer.encode_exception(1, 3, 2)
    assert decode_response(echo + answer, 1, 3, 10) == (len(echo) + len(answer), ExceptionResponse(1, 3, 2))


def test_decode_response_waits_for_rest_of_answer():
    """A partial answer behind a corrupt candidate makes the decoder wait, not report CRC."""
    bad = bytes.fromhex("01 83 02 00 00")
    partial = bytes.fromhex("01 03 04 00")
    assert decode_response(bad + partial, 1, 3, 2) == (0, None)


def test_decode_response_empty_and_tiny_buffers():
    """Empty, one-byte and header-only buffers wait for more."""
    for buf in (b"", b"\x01", b"\x01\x03", b"\x01\x03\x04"):
        assert decode_response(buf, 1, 3, 2) == (0, None)


def test_read_response_registers():
    """ReadResponse.registers unpacks big-endian unsigned registers."""
    assert ReadResponse(1, 3, bytes.fromhex("0001ffff8000")).registers == [1, 0xFFFF, 0x8000]


def test_exception_names():
    """Known exception codes have their standard names; unknown ones a hex label."""
    assert ExceptionResponse(1, 3, 2).name == "illegal data address"
    assert ExceptionResponse(1, 3, 6).name == "server device busy"
    assert ExceptionResponse(1, 3, 0x42).name == "exception 0x42"


def test_expected_response_size():
    """Reads are answered by 5 + 2N bytes, writes by 8."""
    assert framer.expected_response_size(3, 125) == 255
    assert framer.expected_response_size(4, 1) == 7
    assert framer.expected_response_size(6, 1) == 8
    assert framer.expected_response_size(16, 10) == 8


def test_encoders_reject_bad_counts():
    """Read counts outside 1-125 and write counts outside 1-123 raise ValueError."""
    for count in (0, 126):
        with pytest.raises(ValueError, match="out of range"):
            framer.encode_read(1, 3, 0, count)
    for values in ([], [0] * 124):
        with pytest.raises(ValueError, match="out of range"):
            framer.encode_write_multiple(1, 0, values)


# ------------------------------------------------------ pymodbus cross-checks

_PM_CLIENT = DecodePDU(is_server=False)
_PM_SERVER = DecodePDU(is_server=True)


def _pm_parse(frame: bytes, unit: int, is_server: bool):
    used, pdu = FramerRTU(_PM_SERVER if is_server else _PM_CLIENT).handleFrame(frame, unit, 0)
    assert used == len(frame)
    assert pdu is not None
    return pdu


@pytest.mark.parametrize(("unit", "function", "address", "count"), [(1, 3, 0, 2), (0x11, 4, 0x1234, 125), (247, 3, 65535, 1)])
def test_our_read_requests_parse_with_pymodbus(unit, function, address, count):
    """Read requests we encode are what pymodbus' server framer reads."""
    pdu = _pm_parse(framer.encode_read(unit, function, address, count), unit, is_server=True)
    expected_class = ReadHoldingRegistersRequest if function == 3 else ReadInputRegistersRequest
    assert type(pdu) is expected_class
    assert (pdu.dev_id, pdu.address, pdu.count) == (unit, address, count)


def test_our_write_requests_parse_with_pymodbus():
    """Write-single and write-multiple requests we encode parse with pymodbus."""
    pdu = _pm_parse(framer.encode_write_single(3, 100, -2), 3, is_server=True)
    assert type(pdu) is WriteSingleRegisterRequest
    assert (pdu.address, pdu.registers) == (100, [0xFFFE])
    pdu = _pm_parse(framer.encode_write_multiple(3, 7, [1, 2, 0xABCD]), 3, is_server=True)
    assert type(pdu) is WriteMultipleRegistersRequest
    assert (pdu.address, pdu.count, pdu.registers) == (7, 3, [1, 2, 0xABCD])


@pytest.mark.parametrize("count", [1, 2, 10, 125])
def test_our_read_responses_parse_with_pymodbus(count):
    """Read answers we encode (as the simulators do) parse with pymodbus' client framer."""
    registers = [(i * 7919) & 0xFFFF for i in range(count)]
    frame = framer.encode_read_response(9, 3, struct.pack(f">{count}H", *registers))
    pdu = _pm_parse(frame, 9, is_server=False)
    assert type(pdu) is ReadHoldingRegistersResponse
    assert pdu.registers == registers


def test_our_exception_and_write_responses_parse_with_pymodbus():
    """Exception and write answers we encode parse with pymodbus."""
    pdu = _pm_parse(framer.encode_exception(1, 4, 2), 1, is_server=False)
    assert (pdu.function_code, pdu.exception_code) == (0x84, 2)
    pdu = _pm_parse(framer.encode_write_response(1, 6, 5, 7), 1, is_server=False)
    assert type(pdu) is WriteSingleRegisterResponse and (pdu.address, pdu.registers) == (5, [7])
    pdu = _pm_parse(framer.encode_write_response(1, 16, 5, 2), 1, is_server=False)
    assert type(pdu) is WriteMultipleRegistersResponse and (pdu.address, pdu.count) == (5, 2)


def _pm_build(pdu, is_server: bool = False) -> bytes:
    return FramerRTU(_PM_SERVER if is_server else _PM_CLIENT).buildFrame(pdu)


def test_pymodbus_request_matches_ours():
    """pymodbus builds byte-for-byte the read request we build."""
    built = _pm_build(ReadHoldingRegistersRequest(dev_id=1, address=0, count=2))
    assert built == framer.encode_read(1, 3, 0, 2) == bytes.fromhex("01 03 00 00 00 02 c4 0b")


@pytest.mark.parametrize("count", [1, 2, 10, 125])
@pytest.mark.parametrize("split", SPLITS)
def test_pymodbus_read_responses_decode_with_ours(count, split):
    """Read answers built by pymodbus decode with our master-side decoder."""
    registers = [(i * 31337) & 0xFFFF for i in range(count)]
    for cls, function in ((ReadHoldingRegistersResponse, 3), (ReadInputRegistersResponse, 4)):
        frame = _pm_build(cls(dev_id=42, registers=registers), is_server=True)
        results, _ = _feed(frame, split, _decoder(42, function, count))
        assert len(results) == 1
        consumed, got, _ = results[0]
        assert consumed == len(frame)
        assert isinstance(got, ReadResponse) and got.registers == registers


def test_pymodbus_exception_and_write_responses_decode_with_ours():
    """Exception and write answers built by pymodbus decode with ours."""
    exc = PmException(3, 6)
    exc.dev_id = 12
    frame = _pm_build(exc, is_server=True)
    assert decode_response(frame, 12, 3, 4) == (5, ExceptionResponse(12, 3, 6))
    frame = _pm_build(WriteSingleRegisterResponse(dev_id=12, address=9, registers=[0x1234]), is_server=True)
    assert decode_response(frame, 12, 6, 1) == (8, WriteResponse(12, 6, 9, 0x1234))
    frame = _pm_build(WriteMultipleRegistersResponse(dev_id=12, address=9, count=3), is_server=True)
    assert decode_response(frame, 12, 16, 3) == (8, WriteResponse(12, 16, 9, 3))


# ------------------------------------------------------------------ requests

#: (id, frame, expected request)
REQUESTS = [
    ("spec_read", bytes.fromhex("01 03 00 00 00 02 c4 0b"), Request(1, 3, 0, 2)),
    ("read_input", framer.encode_read(0x11, 4, 0x100, 125), Request(0x11, 4, 0x100, 125)),
    ("unit3_read", framer.encode_read(3, 3, 10, 4), Request(3, 3, 10, 4)),
    ("write_single", bytes.fromhex("01 06 00 05 00 07 d8 09"), Request(1, 6, 5, 1, (7,))),
    ("write_multiple", bytes.fromhex("01 10 00 05 00 02 04 00 01 00 02 e3 91"), Request(1, 16, 5, 2, (1, 2))),
    ("unknown_function", _crc(bytes.fromhex("01 07")), Request(1, 7, 0, 0)),
]
REQUEST_IDS = [case[0] for case in REQUESTS]


def test_request_constants_have_valid_crc():
    """Every request constant above carries the CRC pymodbus computes."""
    for _, frame, _ in REQUESTS:
        assert _crc(frame[:-2]) == frame


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(("name", "frame", "expected"), REQUESTS, ids=REQUEST_IDS)
def test_decode_request_split(name, frame, expected, split):
    """A request fed whole, halved or byte by byte decodes once, at its last byte."""
    results, leftover = _feed(frame, split, decode_request)
    assert results == [(len(frame), expected, len(frame))]
    assert leftover == b""


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(("name", "frame", "expected"), REQUESTS, ids=REQUEST_IDS)
def test_decode_request_garbage_before(name, frame, expected, split):
    """Noise before a request is consumed with it."""
    data = GARBAGE + frame
    results, leftover = _feed(data, split, decode_request)
    assert results == [(len(data), expected, len(data))]
    assert leftover == b""


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(("name", "frame", "expected"), REQUESTS, ids=REQUEST_IDS)
def test_decode_request_garbage_after(name, frame, expected, split):
    """Bytes after a request stay in the buffer."""
    data = frame + GARBAGE
    results, leftover = _feed(data, split, decode_request)
    assert [(consumed, got) for consumed, got, _ in results] == [(len(frame), expected)]
    assert leftover == GARBAGE


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(("name", "frame", "expected"), REQUESTS[:-1], ids=REQUEST_IDS[:-1])
def test_decode_request_bad_crc(name, frame, expected, split):
    """A request with a bad CRC is a CorruptFrame consumed to its end, before the master's retry."""
    bad = frame[:-1] + bytes([frame[-1] ^ 0xA5])
    results, leftover = _feed(bad + frame, split, decode_request)
    assert [(consumed, got) for consumed, got, _ in results] == [
        (len(bad), CorruptFrame("CRC mismatch", bad)),
        (len(frame), expected),
    ]
    assert leftover == b""


def test_decode_request_bad_crc_alone():
    """A lone corrupt request is reported at once when nothing inside it could start a frame."""
    bad = bytes.fromhex("01 03 00 00 00 02 c4 0c")
    assert decode_request(bad) == (8, CorruptFrame("CRC mismatch", bad))


def test_decode_request_bad_crc_waits_for_inner_candidate():
    """A corrupt request whose bytes hold a frame start (here 00 04) waits before being reported."""
    request = framer.encode_read(3, 3, 10, 4)
    bad = request[:-1] + bytes([request[-1] ^ 0xA5])
    assert decode_request(bad) == (0, None)


def test_decode_request_unknown_function_noise_not_answered():
    """Four bytes of an unknown function without a valid CRC are not a request."""
    assert decode_request(bytes.fromhex("01 07 00 00")) == (0, None)


@pytest.mark.parametrize("garbage", [b"\xaa", b"\x00\x03\x01", b"\xaa\x10\x00\x00\x00\x00\xff", b"\x01\x03\x00\x00\x00"])
def test_decode_request_behind_lookalike_garbage(garbage):
    """Garbage that looks like a frame start does not swallow or hold back a request."""
    request = framer.encode_read(3, 3, 0, 2)
    data = garbage + request
    assert decode_request(data) == (len(data), Request(3, 3, 0, 2))


def test_decode_request_fc16_header_waits():
    """A function-16 request whose byte count has not arrived yet waits."""
    frame = REQUESTS[4][1]
    for n in range(1, len(frame)):
        assert decode_request(frame[:n]) == (0, None)


@pytest.mark.parametrize(("name", "frame", "expected"), REQUESTS[:-1], ids=REQUEST_IDS[:-1])
def test_our_request_constants_parse_with_pymodbus(name, frame, expected):
    """The request vectors are read the same way by pymodbus' server framer."""
    pdu = _pm_parse(frame, expected.unit, is_server=True)
    assert pdu.function_code == expected.function
    assert pdu.address == expected.address


def test_pymodbus_requests_decode_with_ours():
    """Requests built by pymodbus, including fc16 and an fc we do not serve, decode with ours."""
    cases = [
        (ReadHoldingRegistersRequest(dev_id=1, address=0, count=2), Request(1, 3, 0, 2)),
        (ReadInputRegistersRequest(dev_id=9, address=300, count=125), Request(9, 4, 300, 125)),
        (WriteSingleRegisterRequest(dev_id=9, address=3, registers=[0xBEEF]), Request(9, 6, 3, 1, (0xBEEF,))),
        (WriteMultipleRegistersRequest(dev_id=9, address=3, registers=[1, 2, 3]), Request(9, 16, 3, 3, (1, 2, 3))),
        (ReadExceptionStatusRequest(dev_id=9), Request(9, 7, 0, 0)),
    ]
    for pdu, expected in cases:
        frame = _pm_build(pdu)
        for split in SPLITS:
            results, _ = _feed(frame, split, decode_request)
            assert results == [(len(frame), expected, len(frame))], (pdu, split)


# ---------------------------------------------------------------------- MBAP


@pytest.mark.parametrize("tid", [0, 1, 0x1234, 0xFFFF])
@pytest.mark.parametrize(("name", "frame", "unit", "function", "count", "expected"), RESPONSES, ids=RESPONSE_IDS)
def test_mbap_round_trip(name, frame, unit, function, count, expected, tid):
    """rtu_to_mbap then decode_mbap gives back the tid and the RTU frame (CRC re-added)."""
    adu = framer.rtu_to_mbap(frame, tid)
    assert adu[:6] == struct.pack(">HHH", tid, 0, len(frame) - 2)
    assert decode_mbap(adu) == (len(adu), (tid, frame))
    assert decode_mbap(adu + b"\x00\x07") == (len(adu), (tid, frame))
    for n in range(len(adu)):
        assert decode_mbap(adu[:n]) == (0, None)


@pytest.mark.parametrize("header", ["0001 0001 0006", "0001 0000 0000", "0001 0000 0001", "0001 0000 00ff", "0001 0000 ffff"])
def test_mbap_bad_header_consumes_buffer(header):
    """A non-zero protocol id or an impossible length is corrupt and drops the whole buffer."""
    buf = bytes.fromhex(header) + bytes.fromhex("01 03 00 00 00 02 aa bb")
    consumed, frame = decode_mbap(buf)
    assert consumed == len(buf)
    assert isinstance(frame, CorruptFrame) and "bad MBAP header" in frame.reason


def test_mbap_cross_check_with_pymodbus():
    """MBAP requests we wrap parse with pymodbus' socket framer, and its answers unwrap with ours."""
    adu = framer.rtu_to_mbap(framer.encode_read(5, 3, 10, 2), 0x0102)
    used, pdu = FramerSocket(_PM_SERVER).handleFrame(adu, 0, 0)
    assert used == len(adu)
    assert type(pdu) is ReadHoldingRegistersRequest
    assert (pdu.transaction_id, pdu.dev_id, pdu.address, pdu.count) == (0x0102, 5, 10, 2)
    answer = ReadHoldingRegistersResponse(dev_id=5, registers=[0xCAFE, 1])
    answer.transaction_id = 0x0102
    built = FramerSocket(_PM_SERVER).buildFrame(answer)
    consumed, (tid, rtu) = decode_mbap(built)
    assert (consumed, tid) == (len(built), 0x0102)
    assert decode_response(rtu, 5, 3, 2) == (len(rtu), ReadResponse(5, 3, bytes.fromhex("cafe0001")))


# ---------------------------------------------------------------- properties


def _response_valid_at(buf: bytes, p: int, unit: int, function: int, count: int) -> bool:
    """Reference check: a complete, CRC-valid answer of the expected shape starts at ``p``."""
    if p + 1 >= len(buf) or buf[p] != unit:
        return False
    if buf[p + 1] == function:
        if function in (3, 4) and (p + 2 >= len(buf) or buf[p + 2] != 2 * count):
            return False
        size = 5 + 2 * count if function in (3, 4) else 8
    elif buf[p + 1] == function | 0x80:
        size = 5
    else:
        return False
    return p + size <= len(buf) and _crc(buf[p:p + size - 2]) == buf[p:p + size]


def _request_valid_at(buf: bytes, p: int) -> bool:
    """Reference check: a complete, CRC-valid request (any function) starts at ``p``."""
    if p + 4 > len(buf):
        return False
    fc = buf[p + 1]
    if fc in (3, 4, 6):
        size = 8
    elif fc == 16:
        if p + 6 >= len(buf):
            return False
        size = 9 + buf[p + 6]
    else:
        size = 4
    return p + size <= len(buf) and _crc(buf[p:p + size - 2]) == buf[p:p + size]


_units = st.integers(0, 255)
_junk = st.binary(max_size=40)


@st.composite
def _answers(draw):
    unit = draw(st.integers(1, 247))
    function = draw(st.sampled_from([3, 4, 6, 16]))
    count = draw(st.integers(1, 125))
    kind = draw(st.sampled_from(["normal", "exception"]))
    if kind == "exception":
        code = draw(st.integers(0, 255))
        return unit, function, count, framer.encode_exception(unit, function, code), ExceptionResponse(unit, function, code)
    if function in (3, 4):
        data = draw(st.binary(min_size=2 * count, max_size=2 * count))
        return unit, function, count, framer.encode_read_response(unit, function, data), ReadResponse(unit, function, data)
    address, value = draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF))
    return unit, function, count, framer.encode_write_response(unit, function, address, value), WriteResponse(unit, function, address, value)


@st.composite
def _requests(draw):
    unit = draw(st.integers(0, 255))
    kind = draw(st.sampled_from([3, 4, 6, 16]))
    address = draw(st.integers(0, 0xFFFF))
    if kind in (3, 4):
        count = draw(st.integers(1, 125))
        return framer.encode_read(unit, kind, address, count), Request(unit, kind, address, count)
    if kind == 6:
        value = draw(st.integers(0, 0xFFFF))
        return framer.encode_write_single(unit, address, value), Request(unit, 6, address, 1, (value,))
    values = draw(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=123))
    return framer.encode_write_multiple(unit, address, values), Request(unit, 16, address, len(values), tuple(values))


_FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FAST
@given(buf=st.binary(max_size=300), unit=_units, function=st.integers(0, 255), count=st.integers(0, 125))
def test_decode_response_never_raises(buf, unit, function, count):
    """decode_response accepts any bytes and never consumes more than it was given."""
    consumed, frame = decode_response(buf, unit, function, count)
    assert 0 <= consumed <= len(buf)
    assert (consumed == 0) == (frame is None)


@_FAST
@given(buf=st.binary(max_size=300))
def test_decode_request_never_raises(buf):
    """decode_request accepts any bytes and never consumes more than it was given."""
    consumed, frame = decode_request(buf)
    assert 0 <= consumed <= len(buf)
    assert (consumed == 0) == (frame is None)


@_FAST
@given(buf=st.binary(max_size=300))
def test_decode_mbap_never_raises(buf):
    """decode_mbap accepts any bytes and never consumes more than it was given."""
    consumed, _ = decode_mbap(buf)
    assert 0 <= consumed <= len(buf)


@_FAST
@given(answer=_answers(), before=_junk, after=_junk)
def test_decode_response_finds_answer_in_junk(answer, before, after):
    """An answer between random bytes is found when nothing before it is itself a valid answer."""
    unit, function, count, frame, expected = answer
    buf = before + frame + after
    q = len(before)
    assume(not any(_response_valid_at(buf, p, unit, function, count) for p in range(q)))
    assert decode_response(buf, unit, function, count) == (q + len(frame), expected)


@_FAST
@given(request=_requests(), before=_junk, after=_junk)
def test_decode_request_finds_request_in_junk(request, before, after):
    """A request between random bytes is found by a caller's decode loop, only CorruptFrames before it."""
    frame, expected = request
    buf = before + frame + after
    q = len(before)
    assume(not any(_request_valid_at(buf, p) for p in range(q)))
    total = 0
    while True:
        consumed, got = decode_request(buf[total:])
        assert consumed > 0, "a complete request in the buffer was not found"
        total += consumed
        if not isinstance(got, CorruptFrame):
            break
        assert total <= q
    assert (total, got) == (q + len(frame), expected)
