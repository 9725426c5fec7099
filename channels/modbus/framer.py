# -*- test-case-name: tests.channels.modbus.test_framer -*-
"""Pure Modbus RTU and Modbus TCP (MBAP) framing: bytes in, frames out.

No I/O and no Twisted here (DESIGN rule 3).  The master side frames an answer
by the length it *expects* for the request it has in flight: a read of N
registers is answered by exactly ``5 + 2N`` bytes (or a 5-byte exception), so
stray bytes before the answer cannot be mistaken for its start unless they
also match unit, function and byte count *and* a CRC.  pymodbus frames by
scanning and throws the whole buffer away on a CRC error, which hides CRC
errors from the statistics a commissioning engineer needs.

RTU frame::

    [unit][function][data ...][crc lo][crc hi]

MBAP (Modbus TCP) frame::

    [transaction id:2][protocol 0:2][length:2][unit][function][data ...]
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

READ_HOLDING = 0x03
READ_INPUT = 0x04
WRITE_SINGLE = 0x06
WRITE_MULTIPLE = 0x10
FUNCTIONS = {"holding": READ_HOLDING, "input": READ_INPUT}
#: Protocol limit for one read (Modbus application protocol §6.3).
MAX_READ_REGISTERS = 125
MAX_WRITE_REGISTERS = 123

EXCEPTION_NAMES = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "server device failure",
    0x05: "acknowledge",
    0x06: "server device busy",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target failed to respond",
}


def _make_crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _make_crc_table()
_CRC_WORDS: list[int] = []
_WORD_STRUCTS: dict = {}


def _make_word_table() -> list[int]:
    # For a 16-bit CRC the register after two more bytes depends only on
    # ``crc ^ (b0 | b1 << 8)``, so one lookup can consume a whole word.
    table = _CRC_TABLE
    words = []
    for x in range(65536):
        c = (x >> 8) ^ table[x & 0xFF]
        words.append((c >> 8) ^ table[c & 0xFF])
    return words


def crc16_bytewise(data: bytes | bytearray | memoryview) -> int:
    """Return the Modbus CRC-16 one byte at a time (the reference form)."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def crc16(data: bytes | bytearray | memoryview) -> int:
    """Return the Modbus CRC-16 (reflected 0xA001, init 0xFFFF) of ``data``.

    Two bytes per table lookup; the 64 Ki-entry table is built on first use
    (about 30 ms) so that commands that never frame do not pay for it.
    """
    n = len(data)
    if n < 12:
        # Unpacking words does not pay for itself on a request-sized frame.
        return crc16_bytewise(data)
    words = _CRC_WORDS or _fill_word_table()
    half = n >> 1
    unpack = _WORD_STRUCTS.get(half)
    if unpack is None:
        unpack = _WORD_STRUCTS[half] = struct.Struct(f"<{half}H").unpack_from
    crc = 0xFFFF
    for w in unpack(data):
        crc = words[crc ^ w]
    if n & 1:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ data[-1]) & 0xFF]
    return crc


def _fill_word_table() -> list[int]:
    _CRC_WORDS.extend(_make_word_table())
    return _CRC_WORDS


def add_crc(body: bytes) -> bytes:
    """Return ``body`` followed by its CRC, low byte first."""
    crc = crc16(body)
    return body + bytes((crc & 0xFF, crc >> 8))


def crc_ok(frame: bytes | bytearray | memoryview) -> bool:
    """Tell whether the last two bytes of ``frame`` are the CRC of the rest."""
    # The CRC of a frame including its own CRC (low byte first) is zero.
    return len(frame) >= 4 and crc16(frame) == 0


# --------------------------------------------------------------------- frames


@dataclass(frozen=True, slots=True)
class ReadResponse:
    """A normal answer to a read: ``data`` holds the registers, big-endian."""

    unit: int
    function: int
    data: bytes

    @property
    def registers(self) -> list[int]:
        """Return the registers as unsigned 16-bit integers."""
        return list(struct.unpack(f">{len(self.data) // 2}H", self.data))


@dataclass(frozen=True, slots=True)
class WriteResponse:
    """An echo-style answer to function 06 or 16."""

    unit: int
    function: int
    address: int
    value: int


@dataclass(frozen=True, slots=True)
class ExceptionResponse:
    """A Modbus exception answer (function with bit 7 set)."""

    unit: int
    function: int
    code: int

    @property
    def name(self) -> str:
        """Return the standard name of the exception code."""
        return EXCEPTION_NAMES.get(self.code, f"exception 0x{self.code:02X}")


@dataclass(frozen=True, slots=True)
class CorruptFrame:
    """Bytes that had the shape of the expected frame but a bad CRC or header."""

    reason: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class Request:
    """A request as a slave sees it (reads and writes)."""

    unit: int
    function: int
    address: int
    count: int
    values: tuple[int, ...] = ()


Response = ReadResponse | WriteResponse | ExceptionResponse


# ------------------------------------------------------------------- encoders


def encode_read(unit: int, function: int, address: int, count: int) -> bytes:
    """Return an RTU read request (function 03 or 04)."""
    if not 1 <= count <= MAX_READ_REGISTERS:
        raise ValueError(f"register count {count} is out of range 1-{MAX_READ_REGISTERS}")
    return add_crc(struct.pack(">BBHH", unit, function, address, count))


def encode_write_single(unit: int, address: int, value: int) -> bytes:
    """Return an RTU write-single-register request (function 06)."""
    return add_crc(struct.pack(">BBHH", unit, WRITE_SINGLE, address, value & 0xFFFF))


def encode_write_multiple(unit: int, address: int, values: list[int]) -> bytes:
    """Return an RTU write-multiple-registers request (function 16)."""
    if not 1 <= len(values) <= MAX_WRITE_REGISTERS:
        raise ValueError(f"register count {len(values)} is out of range 1-{MAX_WRITE_REGISTERS}")
    body = struct.pack(f">BBHHB{len(values)}H", unit, WRITE_MULTIPLE, address, len(values),
                       2 * len(values), *(v & 0xFFFF for v in values))
    return add_crc(body)


def encode_read_response(unit: int, function: int, data: bytes) -> bytes:
    """Return an RTU answer to a read carrying ``data`` (registers, big-endian)."""
    return add_crc(bytes((unit, function, len(data))) + data)


def encode_exception(unit: int, function: int, code: int) -> bytes:
    """Return an RTU exception answer."""
    return add_crc(bytes((unit, function | 0x80, code)))


def encode_write_response(unit: int, function: int, address: int, value: int) -> bytes:
    """Return the RTU answer to a write (06 echoes the value, 16 the count)."""
    return add_crc(struct.pack(">BBHH", unit, function, address, value))


# ------------------------------------------------------- master-side decoding


def expected_response_size(function: int, count: int) -> int:
    """Return the RTU size of a normal answer to ``function`` for ``count`` registers."""
    if function in (READ_HOLDING, READ_INPUT):
        return 5 + 2 * count
    return 8


def decode_response(
    buf: bytes | bytearray, unit: int, function: int, count: int
) -> tuple[int, Response | CorruptFrame | None]:
    """Find the answer to a request in ``buf``.

    Return ``(consumed, frame)``.  ``(0, None)`` means wait for more bytes.
    Bytes before a valid answer are skipped (line noise, an echo, another
    slave's tail).  When a candidate of the right shape is complete but its CRC
    is wrong and no valid answer follows it in the buffer, the candidate is
    returned as :class:`CorruptFrame` with everything up to its end consumed,
    so the caller can count a CRC error.
    """
    size = expected_response_size(function, count)
    end = len(buf)
    # The usual case on a healthy bus: the buffer is exactly the answer.
    if end == size and buf[0] == unit and buf[1] == function and crc16(buf) == 0:
        if function not in (READ_HOLDING, READ_INPUT):
            return size, _response(bytes(buf), function)
        if buf[2] == 2 * count:
            return size, ReadResponse(unit, function, bytes(buf[3:-2]))
    bad: tuple[int, CorruptFrame] | None = None
    waiting = False
    i = buf.find(unit)
    while 0 <= i < end - 1:
        fc = buf[i + 1]
        if fc == function:
            if function in (READ_HOLDING, READ_INPUT) and i + 2 < end and buf[i + 2] != 2 * count:
                i = buf.find(unit, i + 1)
                continue
            need = size
        elif fc == function | 0x80:
            need = 5
        else:
            i = buf.find(unit, i + 1)
            continue
        if i + need > end:
            # Still arriving -- or stray bytes that merely look like a header
            # (an echoed request whose address byte equals the byte count): a
            # complete answer behind it, e.g. a 5-byte exception, must not wait.
            waiting = True
            i = buf.find(unit, i + 1)
            continue
        frame = bytes(buf[i:i + need])
        if crc_ok(frame):
            return i + need, _response(frame, function)
        if bad is None:
            bad = (i + need, CorruptFrame("CRC mismatch", frame))
        i = buf.find(unit, i + 1)
    if bad is not None and not waiting:
        return bad
    return 0, None


def _response(frame: bytes, function: int) -> Response:
    unit, fc = frame[0], frame[1]
    if fc & 0x80:
        return ExceptionResponse(unit, function, frame[2])
    if fc in (READ_HOLDING, READ_INPUT):
        return ReadResponse(unit, fc, frame[3:-2])
    address, value = struct.unpack_from(">HH", frame, 2)
    return WriteResponse(unit, fc, address, value)


# -------------------------------------------------------- slave-side decoding


def _request_size(buf: bytes | bytearray, i: int) -> int | None:
    """Return the RTU size of the request starting at ``i``, 0 if unknown function, None if short."""
    fc = buf[i + 1]
    if fc in (READ_HOLDING, READ_INPUT, WRITE_SINGLE):
        return 8
    if fc == WRITE_MULTIPLE:
        if i + 6 >= len(buf):
            return None
        return 9 + buf[i + 6]
    return 0


def decode_request(buf: bytes | bytearray) -> tuple[int, Request | CorruptFrame | None]:
    """Find the next request in ``buf`` as a slave on the bus would.

    Return ``(consumed, frame)``; ``(0, None)`` means wait for more bytes.
    Positions that do not start a CRC-valid frame are skipped; a request with a
    known function but bad CRC at the start of ``buf`` yields
    :class:`CorruptFrame` (a real slave stays silent on it) unless a valid
    request starts inside it, or a candidate that does is still arriving.
    Unknown functions are answered by the caller with
    exception 01, so they are returned as requests with ``count == 0``.
    """
    end = len(buf)
    bad: tuple[int, CorruptFrame] | None = None
    found: tuple[int, Request] | None = None
    waiting = False
    i = 0
    while i + 4 <= end:
        size = _request_size(buf, i)
        if size == 0:
            # Unknown function: accept only a 4-byte frame with a valid CRC so
            # that noise is not answered -- and not inside a longer frame that
            # is still arriving, where a 16-bit CRC match is too likely.
            if not waiting and crc_ok(buf[i:i + 4]):
                found = (i + 4, Request(buf[i], buf[i + 1], 0, 0))
                break
        elif size is None or i + size > end:
            # Still arriving, or noise that looks like a frame start: a
            # complete request behind it must still be found.
            waiting = True
        else:
            frame = bytes(buf[i:i + size])
            if crc_ok(frame):
                found = (i + size, _request(frame))
                break
            if i == 0:
                bad = (size, CorruptFrame("CRC mismatch", frame))
        i += 1
    # A corrupt request is reported before the next one (typically the
    # master's retry); a valid request that starts inside it shows it was noise.
    if found is not None and (bad is None or i < bad[0]):
        return found
    if bad is not None and (found is not None or not waiting):
        return bad
    return 0, None


def _request(frame: bytes) -> Request:
    unit, fc, address, count = struct.unpack_from(">BBHH", frame)
    if fc == WRITE_SINGLE:
        return Request(unit, fc, address, 1, (count,))
    if fc == WRITE_MULTIPLE:
        values = struct.unpack_from(f">{count}H", frame, 7) if frame[6] == 2 * count else ()
        return Request(unit, fc, address, count, tuple(values))
    return Request(unit, fc, address, count)


# ------------------------------------------------------------- Modbus TCP (MBAP)


def rtu_to_mbap(frame: bytes, tid: int) -> bytes:
    """Wrap an RTU frame's PDU (without CRC) in an MBAP header."""
    pdu = frame[:-2]
    return struct.pack(">HHH", tid & 0xFFFF, 0, len(pdu)) + pdu


def decode_mbap(buf: bytes | bytearray) -> tuple[int, tuple[int, bytes] | CorruptFrame | None]:
    """Split one MBAP frame off ``buf``: ``(consumed, (tid, unit+pdu))``.

    The PDU comes back with a fake valid CRC appended so that the RTU decoders
    above can be reused for TCP; a non-zero protocol id or an impossible length
    is a :class:`CorruptFrame` that consumes the whole buffer, because MBAP has
    no way to resynchronise inside a stream.
    """
    if len(buf) < 7:
        return 0, None
    tid, proto, length = struct.unpack_from(">HHH", buf)
    if proto != 0 or not 2 <= length <= 254:
        return len(buf), CorruptFrame(f"bad MBAP header (protocol {proto}, length {length})", bytes(buf))
    if len(buf) < 6 + length:
        return 0, None
    return 6 + length, (tid, add_crc(bytes(buf[6:6 + length])))
