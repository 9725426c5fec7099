# -*- test-case-name: tests.channels.sim.test_sim_slave -*-
"""Simulated Modbus slaves: meters that answer on a bus like real ones.

:class:`SimDevice` turns a request into the bytes a meter would send back,
using the pure codec in :mod:`channels.modbus.framer` and the point encoding
in :mod:`channels.modbus.points`; :class:`SimBus` is the thin Twisted
protocol for an RTU line (a pty or an RTU-over-TCP gateway) and
:class:`SimTcpProtocol` the one for Modbus TCP (MBAP).

Writes: the simulated meters are read-only instruments whose registers
follow physics, yet real meters usually acknowledge writes to their holding
registers (set-up parameters) and keep measuring.  A write to registers that
are all mapped holding points is therefore acknowledged and discarded; a
write that touches an unmapped or input register gets exception 02.

Archives (:class:`SimArchive`): a write of a record index to an archive's
index register (function 06, or 16 with one register) selects a record,
and a read inside the archive's record window (function 03) answers it:
the record of the N-th newest closed interval boundary at the time of the
read, with the model's values at that boundary and the boundary as its
timestamp.  Records beyond the archive's depth read as all 0xFFFF, as
unused records of real meters do.  The index register reads back the
selected index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from channels.modbus.framer import (
    MAX_READ_REGISTERS,
    MAX_WRITE_REGISTERS,
    READ_HOLDING,
    READ_INPUT,
    WRITE_MULTIPLE,
    WRITE_SINGLE,
    CorruptFrame,
    Request,
    decode_mbap,
    decode_request,
    encode_exception,
    encode_read_response,
    encode_write_response,
    rtu_to_mbap,
)
from channels.archive import Interval, floor_boundary, step_boundary
from channels.modbus.points import TYPE_REGISTERS, PointSpec, encode_raw
from channels.transports.base import write_now

ILLEGAL_FUNCTION = 0x01
ILLEGAL_DATA_ADDRESS = 0x02
ILLEGAL_DATA_VALUE = 0x03
SERVER_DEVICE_FAILURE = 0x04
GATEWAY_TARGET_FAILED = 0x0B

#: Behaviours a simulated device can be switched to, e.g. from a test or the
#: engineer's "break this meter" button in the demo.
FAULTS = ("normal", "silent", "exception", "corrupt_crc", "slow")
_FLOAT_TYPES = frozenset({"f32", "f64"})
_F32_MAX = 3.4028234663852886e38
#: Raw values each integer type can hold (BCD: the decimal digits it has).
_RAW_RANGE = {"u16": (0, 0xFFFF), "i16": (-0x8000, 0x7FFF), "u32": (0, 0xFFFFFFFF),
              "i32": (-0x80000000, 0x7FFFFFFF), "u64": (0, (1 << 64) - 1), "i64": (-(1 << 63), (1 << 63) - 1),
              "bcd16": (0, 9999), "bcd32": (0, 99_999_999)}
#: Distinct (function, start, count) plans kept per device; a master that
#: walks the whole address space must not grow memory without bound.
_PLAN_CACHE_SIZE = 1024


@dataclass(slots=True)
class BusCounters:
    """Traffic statistics of one simulated bus, shared by all its connections."""

    requests: int = 0
    answered: int = 0
    ignored: int = 0
    crc_errors: int = 0


@dataclass(frozen=True, slots=True)
class SimArchive:
    """One archive a simulated meter keeps (see the module docstring).

    ``points`` name the model values (``tag``) and their absolute holding
    registers inside the window ``start``..``start + count - 1``; the
    timestamp (u32, Unix seconds of the boundary) is at ``start +
    ts_offset``.  Boundaries follow the site's standard time
    (``utc_offset``), as :mod:`channels.archive` computes them.
    """

    name: str
    interval: Interval
    depth: int
    index_register: int
    start: int
    count: int
    ts_offset: int
    points: tuple[PointSpec, ...]
    utc_offset: float = 10800.0
    ts_word_order: str = "big"

    def boundary(self, t: float, index: int) -> float | None:
        """Return the closing time of record ``index`` at time ``t``, None beyond the depth."""
        if not 0 <= index < self.depth:
            return None
        newest = floor_boundary(t, self.interval, self.utc_offset)
        return step_boundary(newest, self.interval, self.utc_offset, -index)

    def image(self, model: Any, t: float, index: int) -> bytes:
        """Return the register bytes of the record window for record ``index`` read at ``t``."""
        when = self.boundary(t, index)
        if when is None:
            return b"\xff\xff" * self.count
        image = bytearray(2 * self.count)
        ts_at = 2 * self.ts_offset
        image[ts_at:ts_at + 4] = encode_raw(when, "u32", self.ts_word_order)
        values = model.values(when)
        for point in self.points:
            raw = (values.get(point.tag, 0.0) - point.offset) / point.scale
            if point.type not in _FLOAT_TYPES:
                raw = round(raw) if math.isfinite(raw) else 0
            at = 2 * (point.register - self.start)
            image[at:at + 2 * point.count] = encode_raw(raw, point.type, point.word_order)
        return bytes(image)


# A point prepared for encoding: (tag, scale, offset, type, word order,
# integer?, first data byte in the answer, slice of the point's bytes).
_Entry = tuple[str, float, float, str, str, bool, int, int, int]


class SimDevice:
    """One simulated meter: a register map over a physics model.

    ``points`` are the profile's points (``tag`` is the point name the
    ``model`` answers to).  Values are encoded as a real meter stores them:
    ``raw = (value - offset) / scale``, rounded to an integer for integer and
    BCD types.
    """

    def __init__(
        self,
        address: int,
        points: Sequence[PointSpec],
        model: Any,
        fault: str = "normal",
        slow_delay: float = 2.0,
        name: str = "",
        archives: Sequence[SimArchive] = (),
    ) -> None:
        """Map ``points`` onto registers; ``model`` has ``values(t) -> mapping``; keep ``archives``."""
        if not 1 <= address <= 247:
            raise ValueError(f"slave address {address} is out of range 1-247")
        self.address = address
        self.points = list(points)
        self.model = model
        self.slow_delay = slow_delay
        self.name = name
        self.fault = fault
        for point in self.points:
            if point.scale == 0:
                raise ValueError(f"point {point.tag!r} has scale 0")
        # Which points cover each register, per function; used to build plans
        # and to vet writes.
        self._coverage: dict[int, dict[int, list[PointSpec]]] = {}
        for point in self.points:
            registers = self._coverage.setdefault(point.function, {})
            for register in range(point.register, point.register + point.count):
                registers.setdefault(register, []).append(point)
        self._plans: dict[tuple[int, int, int], tuple[bool, tuple[_Entry, ...]] | None] = {}
        self.archives = list(archives)
        self._by_index_register = {a.index_register: a for a in self.archives}
        # Live reads below every archive register skip the archive lookup.
        self._archive_floor = min((min(a.index_register, a.start) for a in self.archives), default=1 << 16)
        #: The record index last written per archive (a meter's state, shared by all connections).
        self.archive_index: dict[str, int] = {a.name: 0 for a in self.archives}

    @property
    def fault(self) -> str:
        """Return the current behaviour, one of :data:`FAULTS`."""
        return self._fault

    @fault.setter
    def fault(self, value: str) -> None:
        """Switch to another behaviour; unknown names raise ValueError."""
        if value not in FAULTS:
            raise ValueError(f"unknown fault {value!r} (expected one of {', '.join(FAULTS)})")
        self._fault = value

    @property
    def delay(self) -> float:
        """Return the extra seconds this device takes to answer (``slow`` fault)."""
        return self.slow_delay if self._fault == "slow" else 0.0

    def encode_value(self, name: str, value: float) -> bytes:
        """Return the registers a point would hold for ``value``, encoded as every read encodes it.

        Raise KeyError for a point the device does not have and ValueError
        for a value its type and scale cannot hold (a meter cannot show it).
        """
        points = [p for p in self.points if p.tag == name]
        if not points:
            known = ", ".join(sorted({p.tag for p in self.points})) or "none"
            raise KeyError(f"device {self.name or self.address!r} has no point {name!r} (its points: {known})")
        if not math.isfinite(value):
            raise ValueError(f"point {name!r}: {value} is not a finite number")
        encoded = b""
        for point in points:
            raw = (value - point.offset) / point.scale
            if point.type in _FLOAT_TYPES:
                if point.type == "f32" and abs(raw) > _F32_MAX:
                    raise ValueError(f"point {name!r}: {value:g} is out of range of {point.type}")
            else:
                # A huge value over a small scale is an infinite raw value: out of range, not an OverflowError.
                if math.isfinite(raw):
                    raw = round(raw)
                low, high = _RAW_RANGE[point.type]
                if not low <= raw <= high:
                    ends = sorted((low * point.scale + point.offset, high * point.scale + point.offset))
                    raise ValueError(f"point {name!r} ({point.type}, scale {point.scale:g}) cannot hold {value:g}; "
                                     f"it holds {ends[0]:g} to {ends[1]:g}")
            encoded = encode_raw(raw, point.type, point.word_order)
        return encoded

    def _plan(self, function: int, start: int, count: int) -> tuple[bool, tuple[_Entry, ...]] | None:
        """Return how to fill a read of ``count`` registers, or None if any register is unmapped."""
        key = (function, start, count)
        try:
            return self._plans[key]
        except KeyError:
            pass
        coverage = self._coverage.get(function, {})
        end = start + count
        plan: tuple[bool, tuple[_Entry, ...]] | None
        if any(r not in coverage for r in range(start, end)):
            plan = None
        else:
            seen: dict[int, PointSpec] = {}
            for register in range(start, end):
                for point in coverage[register]:
                    seen.setdefault(id(point), point)
            entries = []
            for point in sorted(seen.values(), key=lambda p: p.register):
                lo = max(start, point.register)
                hi = min(end, point.register + point.count)
                entries.append((point.tag, float(point.scale), float(point.offset), point.type,
                                point.word_order, point.type not in _FLOAT_TYPES,
                                2 * (lo - start), 2 * (lo - point.register), 2 * (hi - point.register)))
            # The usual case — whole points back to back — is a plain join.
            simple = True
            position = 0
            for entry in entries:
                if entry[6] != position or entry[7] != 0 or entry[8] != 2 * TYPE_REGISTERS[entry[3]]:
                    simple = False
                    break
                position += entry[8]
            plan = (simple and position == 2 * count, tuple(entries))
        if len(self._plans) >= _PLAN_CACHE_SIZE:
            self._plans.clear()
        self._plans[key] = plan
        return plan

    def read_registers(self, function: int, start: int, count: int, t: float) -> bytes | None:
        """Return the register image of a read at time ``t``; None if a register is unmapped."""
        plan = self._plan(function, start, count)
        if plan is None:
            return None
        simple, entries = plan
        values = self.model.values(t)
        parts = []
        for tag, scale, offset, type_, word_order, integer, _, lo, hi in entries:
            raw = (values.get(tag, 0.0) - offset) / scale
            if integer:
                # Rounding, not truncation: 0.1/0.001 is 99.999... in binary.
                raw = round(raw) if math.isfinite(raw) else 0
            encoded = encode_raw(raw, type_, word_order)
            parts.append(encoded if simple else encoded[lo:hi])
        if simple:
            return b"".join(parts)
        image = bytearray(2 * count)
        for (_, _, _, _, _, _, dst, lo, hi), part in zip(entries, parts):
            image[dst:dst + hi - lo] = part
        return bytes(image)

    def read_archive(self, start: int, count: int, t: float) -> bytes | None:
        """Return a holding read inside an archive's record window (or of its index register), else None."""
        for archive in self.archives:
            if archive.start <= start and start + count <= archive.start + archive.count:
                image = archive.image(self.model, t, self.archive_index[archive.name])
                at = 2 * (start - archive.start)
                return image[at:at + 2 * count]
            if start == archive.index_register and count == 1:
                return self.archive_index[archive.name].to_bytes(2, "big")
        return None

    def _select_record(self, address: int, values: tuple[int, ...]) -> bool:
        """Take a write of a record index; tell whether ``address`` was an index register."""
        archive = self._by_index_register.get(address)
        if archive is None or len(values) != 1:
            return False
        self.archive_index[archive.name] = values[0]
        return True

    def _writable(self, start: int, count: int) -> bool:
        coverage = self._coverage.get(READ_HOLDING, {})
        return all(r in coverage for r in range(start, start + count))

    def handle(self, request: Request, t: float) -> bytes | None:
        """Return the RTU answer to ``request`` at value time ``t``, or None to stay silent.

        Reads (03/04) of mapped registers get the register image; a read
        touching an unmapped register gets exception 02, a count outside
        1-125 exception 03, an unknown function exception 01.  The fault
        setting overrides all of it; ``slow`` only affects :attr:`delay`.
        """
        fault = self._fault
        if fault == "silent":
            return None
        unit, function = request.unit, request.function
        if fault == "exception":
            answer = encode_exception(unit, function, SERVER_DEVICE_FAILURE)
        elif function in (READ_HOLDING, READ_INPUT):
            if not 1 <= request.count <= MAX_READ_REGISTERS:
                answer = encode_exception(unit, function, ILLEGAL_DATA_VALUE)
            else:
                data = None
                if function == READ_HOLDING and request.address + request.count > self._archive_floor:
                    data = self.read_archive(request.address, request.count, t)
                if data is None:
                    data = self.read_registers(function, request.address, request.count, t)
                if data is None:
                    answer = encode_exception(unit, function, ILLEGAL_DATA_ADDRESS)
                else:
                    answer = encode_read_response(unit, function, data)
        elif function == WRITE_SINGLE:
            if request.count != 1 or len(request.values) != 1:
                answer = encode_exception(unit, function, ILLEGAL_DATA_VALUE)
            elif self._select_record(request.address, request.values):
                answer = encode_write_response(unit, function, request.address, request.values[0])
            elif not self._writable(request.address, 1):
                answer = encode_exception(unit, function, ILLEGAL_DATA_ADDRESS)
            else:
                answer = encode_write_response(unit, function, request.address, request.values[0])
        elif function == WRITE_MULTIPLE:
            if not 1 <= request.count <= MAX_WRITE_REGISTERS or len(request.values) != request.count:
                answer = encode_exception(unit, function, ILLEGAL_DATA_VALUE)
            elif self._select_record(request.address, request.values):
                answer = encode_write_response(unit, function, request.address, request.count)
            elif not self._writable(request.address, request.count):
                answer = encode_exception(unit, function, ILLEGAL_DATA_ADDRESS)
            else:
                answer = encode_write_response(unit, function, request.address, request.count)
        else:
            answer = encode_exception(unit, function & 0x7F, ILLEGAL_FUNCTION)
        if fault == "corrupt_crc":
            answer = answer[:-2] + bytes((answer[-2] ^ 0xFF, answer[-1] ^ 0xFF))
        return answer


def _value_clock(reactor: IReactorTime, clock_for_values: Any) -> Callable[[], float]:
    """Return the function giving value time: ``clock_for_values`` or the reactor."""
    source = reactor if clock_for_values is None else clock_for_values
    seconds = getattr(source, "seconds", None)
    if callable(seconds):
        return seconds
    if callable(source):
        return source
    raise TypeError("clock_for_values must be an IReactorTime or a callable returning seconds")


class _SlaveProtocol(Protocol):
    """What the RTU and the TCP slave protocols share: devices, delays and counters."""

    def __init__(
        self,
        devices: Mapping[int, SimDevice],
        reactor: IReactorTime,
        latency: float = 0.0,
        clock_for_values: Any = None,
        counters: BusCounters | None = None,
    ) -> None:
        self.devices = devices
        self._reactor = reactor
        self.latency = latency
        self._value_time = _value_clock(reactor, clock_for_values)
        self.counters = counters if counters is not None else BusCounters()
        self._buffer = bytearray()
        self._pending: list[IDelayedCall] = []

    @property
    def requests(self) -> int:
        """Return the number of well-formed requests seen, for any address."""
        return self.counters.requests

    @property
    def answered(self) -> int:
        """Return the number of requests a device answered (exceptions included)."""
        return self.counters.answered

    @property
    def ignored(self) -> int:
        """Return the number of requests left unanswered (other address, broadcast, silent)."""
        return self.counters.ignored

    @property
    def crc_errors(self) -> int:
        """Return the number of frames dropped for a bad CRC (or a bad MBAP header)."""
        return self.counters.crc_errors

    def set_fault(self, address: int, fault: str) -> None:
        """Switch the device at ``address`` to ``fault`` (see :data:`FAULTS`)."""
        self.devices[address].fault = fault

    def _send(self, data: bytes, delay: float) -> None:
        if delay <= 0:
            write_now(self.transport, data)
            return
        call = self._reactor.callLater(delay, self._send_later, data)
        self._pending.append(call)

    def _send_later(self, data: bytes) -> None:
        self._pending = [c for c in self._pending if c.active()]
        if self.transport is not None and self.connected:
            write_now(self.transport, data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        """Drop answers still waiting for their latency; nobody is listening any more."""
        for call in self._pending:
            if call.active():
                call.cancel()
        self._pending = []
        factory = getattr(self, "factory", None)
        if isinstance(factory, SimFactory):
            factory.connections.discard(self)
        Protocol.connectionLost(self, reason)


class SimBus(_SlaveProtocol):
    """An RS-485 segment of simulated meters as seen from the master's port.

    Bytes are buffered and split into requests with
    :func:`~channels.modbus.framer.decode_request`; only the addressed
    device answers, after ``latency`` seconds (plus its own delay).  An
    unknown address or a broadcast gets no answer; a request with a bad CRC
    is counted and, like on a real bus, nobody answers it.

    A real slave recognises the end of a frame by 3.5 character times of
    silence; here bytes still buffered when new ones arrive more than
    ``resync_gap`` seconds later are dropped as the remains of a broken frame,
    so a line glitch cannot hold back the next request.
    """

    #: Bytes buffered without forming a request before the buffer is dropped.
    MAX_BUFFER = 512

    def __init__(
        self,
        devices: Mapping[int, SimDevice],
        reactor: IReactorTime,
        latency: float = 0.0,
        clock_for_values: Any = None,
        counters: BusCounters | None = None,
        resync_gap: float = 0.05,
    ) -> None:
        """Serve ``devices`` (by address); ``reactor`` schedules answers and gives value time.

        ``clock_for_values`` (an IReactorTime or a callable returning Unix
        seconds) overrides the time used for values, e.g. a test clock at
        0 s that should still read meters as of today.  ``counters`` lets
        several connections of one simulated segment share statistics.
        """
        super().__init__(devices, reactor, latency, clock_for_values, counters)
        self.resync_gap = resync_gap
        self._last_rx: float | None = None

    def dataReceived(self, data: bytes) -> None:
        """Buffer ``data`` and answer every complete request in it."""
        now = self._reactor.seconds()
        if self._buffer and self._last_rx is not None and now - self._last_rx > self.resync_gap:
            self._buffer.clear()
        self._last_rx = now
        buffer = self._buffer
        buffer += data
        counters = self.counters
        while buffer:
            consumed, frame = decode_request(buffer)
            if not consumed:
                break
            del buffer[:consumed]
            if isinstance(frame, CorruptFrame):
                counters.crc_errors += 1
                continue
            assert frame is not None
            counters.requests += 1
            device = self.devices.get(frame.unit) if frame.unit else None
            answer = device.handle(frame, self._value_time()) if device is not None else None
            if answer is None:
                counters.ignored += 1
                continue
            counters.answered += 1
            self._send(answer, self.latency + device.delay)
        if len(buffer) > self.MAX_BUFFER:
            buffer.clear()


class SimTcpProtocol(_SlaveProtocol):
    """Modbus TCP (MBAP) access to the same simulated devices.

    The unit id selects the device, as behind a TCP-to-RS-485 gateway.  A
    unit id with no device gets exception 0x0B (gateway target failed to
    respond), which is what a gateway sends; unit 0 gets no answer.  A
    ``corrupt_crc`` device gets no answer either: MBAP has no CRC, and a
    gateway drops a serial answer whose CRC is wrong.
    """

    def dataReceived(self, data: bytes) -> None:
        """Buffer ``data`` and answer every complete MBAP frame in it."""
        buffer = self._buffer
        buffer += data
        counters = self.counters
        while buffer:
            consumed, frame = decode_mbap(buffer)
            if not consumed:
                break
            del buffer[:consumed]
            if isinstance(frame, CorruptFrame):
                counters.crc_errors += 1
                continue
            assert frame is not None
            tid, rtu = frame
            request = _pdu_request(rtu)
            counters.requests += 1
            if request.unit == 0:
                counters.ignored += 1
                continue
            device = self.devices.get(request.unit)
            if device is None:
                answer: bytes | None = encode_exception(request.unit, request.function & 0x7F, GATEWAY_TARGET_FAILED)
                delay = self.latency
            elif device.fault == "corrupt_crc":
                answer = None
            else:
                answer = device.handle(request, self._value_time())
                delay = self.latency + device.delay
            if answer is None:
                counters.ignored += 1
                continue
            counters.answered += 1
            self._send(rtu_to_mbap(answer, tid), delay)


def _pdu_request(rtu: bytes) -> Request:
    """Return the request in an MBAP PDU (given as an RTU frame with a valid CRC).

    A PDU that is not a well-formed request becomes a request with count 0,
    which :meth:`SimDevice.handle` answers with exception 01 for an unknown
    function and 03 for a malformed known one.
    """
    consumed, frame = decode_request(rtu)
    if isinstance(frame, Request) and consumed == len(rtu) and frame.unit == rtu[0] and frame.function == rtu[1]:
        return frame
    return Request(rtu[0], rtu[1], 0, 0)


class SimFactory(Factory):
    """Builds a slave protocol per TCP connection, all sharing one segment's devices."""

    # A benchmark opens and closes many connections; the default per-factory
    # start/stop log lines would drown the useful ones.
    noisy = False

    def __init__(
        self,
        protocol_class: type[_SlaveProtocol],
        devices: Mapping[int, SimDevice],
        reactor: IReactorTime,
        latency: float = 0.0,
        clock_for_values: Any = None,
        counters: BusCounters | None = None,
    ) -> None:
        """Use ``protocol_class`` (:class:`SimBus`, :class:`SimTcpProtocol` or an M-Bus segment) for each connection."""
        self.protocol_class = protocol_class
        self.devices = devices
        self._reactor = reactor
        self.latency = latency
        self.clock_for_values = clock_for_values
        self.counters = counters if counters is not None else BusCounters()
        self.connections: set[_SlaveProtocol] = set()

    def buildProtocol(self, addr: Any) -> _SlaveProtocol:
        """Return a protocol for a new connection and remember it for :meth:`disconnect_all`."""
        protocol = self.protocol_class(self.devices, self._reactor, self.latency,
                                       self.clock_for_values, self.counters)
        protocol.factory = self
        self.connections.add(protocol)
        return protocol

    def disconnect_all(self) -> None:
        """Close every open connection."""
        for protocol in list(self.connections):
            if protocol.transport is not None:
                protocol.transport.loseConnection()


__all__ = ["FAULTS", "BusCounters", "SimArchive", "SimDevice", "SimBus", "SimTcpProtocol", "SimFactory"]
