# -*- test-case-name: tests.channels.modbus.test_points -*-
"""Register ↔ value conversion for profile points, and the read request plan.

The Modbus spec fixes the byte order inside a register (big-endian) but not
the order of registers in a 32- or 64-bit value, so each point says its
``word_order``: ``big`` puts the most significant register first.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable

from channels.modbus.framer import FUNCTIONS, MAX_READ_REGISTERS

#: Registers used by each point type.
TYPE_REGISTERS = {
    "u16": 1, "i16": 1, "bcd16": 1,
    "u32": 2, "i32": 2, "f32": 2, "bcd32": 2,
    "u64": 4, "i64": 4, "f64": 4,
}
_STRUCT = {"u16": ">H", "i16": ">h", "u32": ">I", "i32": ">i", "f32": ">f",
           "u64": ">Q", "i64": ">q", "f64": ">d", "bcd16": ">H", "bcd32": ">I"}


_FLOATS = frozenset({"f32", "f64"})


def _decimals_of(number: float) -> int:
    exponent = Decimal(repr(float(number))).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


class DecodeError(ValueError):
    """Registers that do not hold a valid value of the point's type."""


@dataclass(frozen=True, slots=True)
class PointSpec:
    """What the driver needs to know of one point to read and decode it."""

    tag: str
    function: int
    register: int
    type: str
    word_order: str = "big"
    scale: float = 1.0
    offset: float = 0.0
    #: Decimals a scaled integer is rounded to, so that 6421 × 0.01 reads
    #: 64.21 and not 64.21000000000001; None for floats.
    decimals: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.decimals is None and self.type not in _FLOATS:
            object.__setattr__(self, "decimals", max(_decimals_of(self.scale), _decimals_of(self.offset)))

    @property
    def count(self) -> int:
        """Return the number of registers the point occupies."""
        return TYPE_REGISTERS[self.type]


def _reorder(raw: bytes, word_order: str) -> bytes:
    if word_order == "little" and len(raw) > 2:
        return b"".join(raw[i:i + 2] for i in range(len(raw) - 2, -1, -2))
    return raw


def _bcd(value: int, digits: int) -> int:
    # The hex digits of a BCD number are its decimal digits.
    text = f"{value:0{digits}x}"
    if not text.isdigit():
        raise DecodeError(f"0x{value:0{digits}X} is not BCD")
    return int(text)


def _interpret(value, type_: str):
    """Turn an unpacked number into the point's raw value: BCD digits, finite floats."""
    if type_ == "bcd16":
        return _bcd(value, 4)
    if type_ == "bcd32":
        return _bcd(value, 8)
    if (type_ == "f32" or type_ == "f64") and not math.isfinite(value):
        raise DecodeError(f"{value} is not a finite number")
    return value


def _scaled(spec: PointSpec, raw: float) -> float:
    """Apply scale and offset, rounded to what the point can really carry."""
    value = raw * spec.scale + spec.offset
    if spec.decimals is not None:
        return round(value, spec.decimals)
    if spec.type == "f32":
        # A float32 carries about 7 significant digits; the rest of the
        # double is conversion noise that would show on screens and reports.
        return float(f"{value:.7g}")
    return value


def decode_raw(raw: bytes, type_: str, word_order: str = "big") -> float:
    """Return the unscaled value of a point from its registers' bytes."""
    return _interpret(struct.unpack(_STRUCT[type_], _reorder(raw, word_order))[0], type_)


def decode_point(spec: PointSpec, data: bytes, first_register: int) -> float:
    """Return the scaled value of ``spec`` from a read answer starting at ``first_register``."""
    start = 2 * (spec.register - first_register)
    raw = data[start:start + 2 * spec.count]
    return _scaled(spec, decode_raw(raw, spec.type, spec.word_order))


def encode_raw(value: float, type_: str, word_order: str = "big") -> bytes:
    """Return register bytes holding the unscaled ``value`` (the simulators' side)."""
    if type_ in ("bcd16", "bcd32"):
        digits = 4 if type_ == "bcd16" else 8
        number = int(value) % 10**digits
        packed = int(str(number), 16)
        raw = struct.pack(_STRUCT[type_], packed)
    elif type_ in ("f32", "f64"):
        raw = struct.pack(_STRUCT[type_], value)
    else:
        bits = 8 * struct.calcsize(_STRUCT[type_])
        number = int(value)
        if type_.startswith("u"):
            number %= 1 << bits
        else:
            number = (number + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1))
        raw = struct.pack(_STRUCT[type_], number)
    return _reorder(raw, word_order)


# ------------------------------------------------------------- block decoder

_STRUCT_CODE = {"u16": "H", "i16": "h", "bcd16": "H", "u32": "I", "i32": "i", "f32": "f", "bcd32": "I",
                "u64": "Q", "i64": "q", "f64": "d"}


class BlockDecoder:
    """Decode every point of a read block with one ``struct`` call.

    Built once per request of the plan.  Big-endian values are unpacked in
    place; multi-register values with the low word first are unpacked as
    words and reassembled.  Overlapping points (allowed across a block only
    by identical ranges) fall back to :func:`decode_point`.
    """

    __slots__ = ("points", "_unpack", "_items", "_fallback")

    def __init__(self, block: "ReadBlock") -> None:
        self.points = block.points
        fmt = [">"]
        items = []
        position = block.start
        index = 0
        self._fallback = False
        for point in sorted(block.points, key=lambda p: p.register):
            if point.register < position:
                self._fallback = True
                break
            if point.register > position:
                fmt.append(f"{2 * (point.register - position)}x")
            if point.word_order == "big" or point.count == 1:
                fmt.append(_STRUCT_CODE[point.type])
                items.append((point, index, 0, None))
                index += 1
            else:
                fmt.append("H" * point.count)
                swap = (struct.Struct(f">{point.count}H").pack, struct.Struct(_STRUCT[point.type]).unpack)
                items.append((point, index, point.count, swap))
                index += point.count
            position = point.register + point.count
        self._unpack = struct.Struct("".join(fmt)).unpack_from
        order = {id(p): i for i, p in enumerate(block.points)}
        # Results come back in the block's own point order.
        self._items = sorted(items, key=lambda item: order[id(item[0])])

    def decode(self, data: bytes, first_register: int) -> list:
        """Return one value per point (block order); a :class:`DecodeError` instance marks a bad one."""
        if self._fallback:
            out = []
            for point in self.points:
                try:
                    out.append(decode_point(point, data, first_register))
                except DecodeError as exc:
                    out.append(exc)
            return out
        raw = self._unpack(data)
        out = []
        append = out.append
        for point, index, words, swap in self._items:
            if words:
                value = swap[1](swap[0](*reversed(raw[index:index + words])))[0]
            else:
                value = raw[index]
            try:
                append(_scaled(point, _interpret(value, point.type)))
            except DecodeError as exc:
                append(exc)
        return out


# ------------------------------------------------------------- request plan


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request of a poll and the points it carries."""

    function: int
    start: int
    count: int
    points: tuple[PointSpec, ...]


def plan_reads(points: Iterable[PointSpec], max_registers: int = MAX_READ_REGISTERS) -> list[ReadBlock]:
    """Merge points into as few read requests as the protocol allows.

    Contiguous or overlapping points of one function share a request; gaps are
    never read across, because many meters answer "illegal data address" for
    unmapped registers.  No request exceeds ``max_registers``.
    """
    blocks: list[ReadBlock] = []
    by_function: dict[int, list[PointSpec]] = {}
    for point in points:
        by_function.setdefault(point.function, []).append(point)
    for function in sorted(by_function):
        group = sorted(by_function[function], key=lambda p: (p.register, p.count))
        start = end = -1
        members: list[PointSpec] = []
        for point in group:
            p_end = point.register + point.count
            if members and point.register <= end and max(end, p_end) - start <= max_registers:
                end = max(end, p_end)
                members.append(point)
                continue
            if members:
                blocks.append(ReadBlock(function, start, end - start, tuple(members)))
            start, end, members = point.register, p_end, [point]
        if members:
            blocks.append(ReadBlock(function, start, end - start, tuple(members)))
    return blocks


def function_code(name: str) -> int:
    """Return the function code for a profile's ``function`` name."""
    return FUNCTIONS[name]
