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
    result = 0
    for shift in range((digits - 1) * 4, -1, -4):
        nibble = (value >> shift) & 0xF
        if nibble > 9:
            raise DecodeError(f"0x{value:0{digits}X} is not BCD")
        result = result * 10 + nibble
    return result


def decode_raw(raw: bytes, type_: str, word_order: str = "big") -> float:
    """Return the unscaled value of a point from its registers' bytes."""
    value = struct.unpack(_STRUCT[type_], _reorder(raw, word_order))[0]
    if type_ == "bcd16":
        return _bcd(value, 4)
    if type_ == "bcd32":
        return _bcd(value, 8)
    if type_ in ("f32", "f64") and not math.isfinite(value):
        raise DecodeError(f"{value} is not a finite number")
    return value


def decode_point(spec: PointSpec, data: bytes, first_register: int) -> float:
    """Return the scaled value of ``spec`` from a read answer starting at ``first_register``."""
    start = 2 * (spec.register - first_register)
    raw = data[start:start + 2 * spec.count]
    value = decode_raw(raw, spec.type, spec.word_order) * spec.scale + spec.offset
    if spec.decimals is not None:
        return round(value, spec.decimals)
    if spec.type == "f32":
        # A float32 carries about 7 significant digits; the rest of the
        # double is conversion noise that would show on screens and reports.
        return float(f"{value:.7g}")
    return value


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
