"""Tests for channels.modbus.points: register <-> value conversion and the read plan."""

from __future__ import annotations

import math
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.modbus.points import (
    TYPE_REGISTERS,
    DecodeError,
    PointSpec,
    ReadBlock,
    decode_point,
    decode_raw,
    encode_raw,
    function_code,
    plan_reads,
)


def _regs(*registers: int) -> bytes:
    return struct.pack(f">{len(registers)}H", *registers)


_VALUES = {
    "u16": st.integers(0, 2**16 - 1),
    "i16": st.integers(-(2**15), 2**15 - 1),
    "u32": st.integers(0, 2**32 - 1),
    "i32": st.integers(-(2**31), 2**31 - 1),
    "u64": st.integers(0, 2**64 - 1),
    "i64": st.integers(-(2**63), 2**63 - 1),
    "f32": st.floats(width=32, allow_nan=False, allow_infinity=False),
    "f64": st.floats(allow_nan=False, allow_infinity=False),
    "bcd16": st.integers(0, 9999),
    "bcd32": st.integers(0, 99_999_999),
}


def test_every_type_has_a_value_strategy():
    """The round-trip test below covers every point type the profiles may use."""
    assert set(_VALUES) == set(TYPE_REGISTERS)


@pytest.mark.parametrize("word_order", ["big", "little"])
@pytest.mark.parametrize("type_", sorted(TYPE_REGISTERS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_round_trip(type_, word_order, data):
    """encode_raw then decode_raw gives the value back, in the type's register count."""
    value = data.draw(_VALUES[type_])
    raw = encode_raw(value, type_, word_order)
    assert len(raw) == 2 * TYPE_REGISTERS[type_]
    back = decode_raw(raw, type_, word_order)
    assert back == value
    if type_ in ("f32", "f64"):
        assert math.copysign(1.0, back) == math.copysign(1.0, value)


@pytest.mark.parametrize(
    ("registers", "type_", "word_order", "expected"),
    [
        ((0x4148, 0x0000), "f32", "big", 12.5),
        ((0x0000, 0x4148), "f32", "little", 12.5),
        ((0xC148, 0x0000), "f32", "big", -12.5),
        ((0x4029, 0x0000, 0x0000, 0x0000), "f64", "big", 12.5),
        ((0x0000, 0x0000, 0x0000, 0x4029), "f64", "little", 12.5),
        ((0xFFFF,), "i16", "big", -1),
        ((0xFFFF,), "u16", "little", 0xFFFF),
        ((0x0001, 0x0000), "u32", "big", 65536),
        ((0x0001, 0x0000), "u32", "little", 1),
        ((0x89AB, 0xCDEF), "i32", "big", -1985229329),
        ((0x0001, 0x0002, 0x0003, 0x0004), "u64", "big", 0x0001000200030004),
        ((0x0001, 0x0002, 0x0003, 0x0004), "u64", "little", 0x0004000300020001),
        ((0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE), "i64", "big", -2),
        ((0x1234,), "bcd16", "big", 1234),
        ((0x0012, 0x3456), "bcd32", "big", 123456),
        ((0x3456, 0x0012), "bcd32", "little", 123456),
        ((0x9999, 0x9999), "bcd32", "big", 99999999),
    ],
)
def test_known_vectors(registers, type_, word_order, expected):
    """Register words decode to the values meter manuals document."""
    raw = _regs(*registers)
    assert decode_raw(raw, type_, word_order) == expected
    assert encode_raw(expected, type_, word_order) == raw


@pytest.mark.parametrize(
    ("registers", "type_"),
    [((0x12A4,), "bcd16"), ((0xF000,), "bcd16"), ((0x0012, 0x345F), "bcd32"), ((0xA000, 0x0000), "bcd32")],
)
def test_bcd_invalid_nibble(registers, type_):
    """A nibble above 9 is not BCD and raises DecodeError (a ValueError)."""
    with pytest.raises(DecodeError, match="not BCD"):
        decode_raw(_regs(*registers), type_)
    assert issubclass(DecodeError, ValueError)


@pytest.mark.parametrize(
    ("registers", "type_"),
    [
        ((0x7FC0, 0x0000), "f32"),
        ((0x7F80, 0x0000), "f32"),
        ((0xFF80, 0x0000), "f32"),
        ((0x7FF8, 0x0000, 0x0000, 0x0000), "f64"),
        ((0xFFF0, 0x0000, 0x0000, 0x0000), "f64"),
    ],
)
def test_nan_and_infinity_rejected(registers, type_):
    """NaN and +-inf floats raise DecodeError instead of reaching the historian."""
    with pytest.raises(DecodeError, match="not a finite number"):
        decode_raw(_regs(*registers), type_)


def test_encode_wraps_integers_and_bcd():
    """Out-of-range integers wrap like the register would; BCD keeps the low digits."""
    assert encode_raw(-1, "u16") == _regs(0xFFFF)
    assert encode_raw(0x8000, "i16") == _regs(0x8000)
    assert decode_raw(encode_raw(0x8000, "i16"), "i16") == -0x8000
    assert encode_raw(123456, "bcd16") == _regs(0x3456)
    assert encode_raw(12.9, "u16") == _regs(12)


def test_decode_point_scale_offset_and_position():
    """decode_point picks the point's registers out of a block and applies scale and offset."""
    data = _regs(0x0001, 0x00FA, 0x4148, 0x0000)
    temp = PointSpec("m.temp_c", 3, 101, "u16", scale=0.1, offset=-5.0)
    flow = PointSpec("m.flow_m3h", 3, 102, "f32", scale=2.0)
    assert decode_point(temp, data, 100) == pytest.approx(0x00FA * 0.1 - 5.0)
    assert decode_point(flow, data, 100) == 25.0
    with pytest.raises(DecodeError):
        decode_point(PointSpec("m.bcd", 3, 101, "bcd16"), data, 100)


def test_point_spec_count_and_function_code():
    """PointSpec.count follows the type; profile function names map to codes."""
    assert PointSpec("a.b", 3, 0, "f64").count == 4
    assert PointSpec("a.b", 3, 0, "bcd32").count == 2
    assert function_code("holding") == 3
    assert function_code("input") == 4
    with pytest.raises(KeyError):
        function_code("coil")


# ----------------------------------------------------------------- plan_reads


def _p(register: int, type_: str = "u16", function: int = 3, tag: str | None = None) -> PointSpec:
    return PointSpec(tag or f"d.{function}_{register}_{type_}", function, register, type_)


def _shape(blocks: list[ReadBlock]) -> list[tuple[int, int, int]]:
    return [(b.function, b.start, b.count) for b in blocks]


def test_plan_contiguous_points_merge():
    """Points that follow each other share one request."""
    points = [_p(0), _p(1), _p(2, "u32"), _p(4, "f64")]
    blocks = plan_reads(points)
    assert _shape(blocks) == [(3, 0, 8)]
    assert blocks[0].points == tuple(points)


def test_plan_gaps_split():
    """A gap is never read across, even a one-register gap."""
    assert _shape(plan_reads([_p(0), _p(2), _p(10, "u32")])) == [(3, 0, 1), (3, 2, 1), (3, 10, 2)]


def test_plan_overlaps_merge():
    """Overlapping points (a u32 and its high word as u16) share one request."""
    points = [_p(0, "u32"), _p(1), _p(0, "u64")]
    blocks = plan_reads(points)
    assert _shape(blocks) == [(3, 0, 4)]
    assert len(blocks[0].points) == 3


def test_plan_splits_at_125():
    """200 consecutive u16 points need two requests: 125 and 75 registers."""
    blocks = plan_reads([_p(r) for r in range(200)])
    assert _shape(blocks) == [(3, 0, 125), (3, 125, 75)]
    assert [len(b.points) for b in blocks] == [125, 75]


def test_plan_never_straddles_the_limit():
    """A u32 that would cross the 125-register limit starts the next request."""
    blocks = plan_reads([_p(r) for r in range(124)] + [_p(124, "u32")])
    assert _shape(blocks) == [(3, 0, 124), (3, 124, 2)]


def test_plan_separates_functions():
    """Holding and input registers at the same addresses are read separately, holding first."""
    points = [_p(0, function=4), _p(0, function=3), _p(1, function=4), _p(1, function=3)]
    assert _shape(plan_reads(points)) == [(3, 0, 2), (4, 0, 2)]


def test_plan_smaller_max_registers():
    """A profile's smaller max_registers limit is honoured."""
    assert _shape(plan_reads([_p(r) for r in range(10)], max_registers=4)) == [(3, 0, 4), (3, 4, 4), (3, 8, 2)]


def test_plan_order_independent():
    """The plan does not depend on the order points are listed in."""
    points = [_p(r) for r in range(0, 300, 1) if r % 50 != 7]
    shuffled = list(points)
    random.Random(4).shuffle(shuffled)
    assert _shape(plan_reads(shuffled)) == _shape(plan_reads(points))


def test_plan_empty():
    """No points, no requests."""
    assert plan_reads([]) == []


_point_strategy = st.builds(
    _p,
    register=st.integers(0, 400),
    type_=st.sampled_from(sorted(TYPE_REGISTERS)),
    function=st.sampled_from([3, 4]),
)


@settings(max_examples=150, deadline=None)
@given(points=st.lists(_point_strategy, max_size=60), max_registers=st.integers(4, 125))
def test_plan_properties(points, max_registers):
    """Every point is in exactly one request that holds it; requests respect the limit and read no gaps."""
    blocks = plan_reads(points, max_registers)
    seen = [p for b in blocks for p in b.points]
    assert sorted(seen, key=repr) == sorted(points, key=repr)
    for block in blocks:
        assert 1 <= block.count <= max_registers
        covered = set()
        for p in block.points:
            assert p.function == block.function
            assert block.start <= p.register and p.register + p.count <= block.start + block.count
            covered.update(range(p.register, p.register + p.count))
        assert covered == set(range(block.start, block.start + block.count))


def test_scaled_integers_round_to_scale_decimals():
    """6421 × 0.01 reads 64.21, not 64.21000000000001; offsets count too."""
    spec = PointSpec("t.a", 3, 0, "i16", scale=0.01)
    assert decode_point(spec, encode_raw(6421, "i16"), 0) == 64.21
    spec = PointSpec("t.b", 3, 0, "u16", scale=0.1, offset=0.05)
    assert decode_point(spec, encode_raw(3, "u16"), 0) == 0.35


def test_float32_rounded_to_seven_significant_digits():
    """A float32 reads with the digits it carries, without double conversion noise."""
    spec = PointSpec("t.f", 3, 0, "f32")
    assert decode_point(spec, encode_raw(4.992557, "f32"), 0) == 4.992557


_LAYOUT = st.lists(
    st.tuples(st.sampled_from(sorted(TYPE_REGISTERS)), st.sampled_from(["big", "little"]),
              st.integers(0, 3), st.sampled_from([1.0, 0.1, 0.01, 0.001, 10.0]), st.sampled_from([0.0, -5.5])),
    min_size=1, max_size=8)


@given(layout=_LAYOUT, seed=st.binary(min_size=64, max_size=64))
@settings(max_examples=300, deadline=None)
def test_block_decoder_matches_point_decoder(layout, seed):
    """The one-unpack block decoder gives exactly what decode_point gives, errors included."""
    from channels.modbus.points import BlockDecoder

    register, points = 10, []
    for i, (type_, order, gap, scale, offset) in enumerate(layout):
        register += gap
        points.append(PointSpec(f"d.p{i}", 3, register, type_, order, scale, offset))
        register += TYPE_REGISTERS[type_]
    for block in plan_reads(points):
        data = (seed * 8)[: 2 * block.count]
        got = BlockDecoder(block).decode(data, block.start)
        for point, value in zip(block.points, got):
            try:
                expected = decode_point(point, data, block.start)
            except DecodeError as exc:
                assert isinstance(value, DecodeError) and str(value) == str(exc)
                continue
            assert value == expected or (math.isnan(value) and math.isnan(expected))
