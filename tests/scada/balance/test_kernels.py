"""Tests for scada.balance: the numba kernels against the plain-Python reference, and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scada.balance import (
    BACKFILLED,
    CALCULATED,
    MANUAL,
    MEASURED,
    MISSING,
    SOURCE_NAMES,
    BalanceArrays,
    aggregate,
    aggregate_balance,
    balance,
    interval_volumes,
    source_of,
)
from scada.balance import reference
from tags.quality import Quality

NAN = math.nan
FAST = settings(max_examples=50, deadline=None)

# Volumes: NaN, exact zeros, negatives and ordinary values, so every branch of
# the NaN, zero and sign rules is reached within a few examples.
volume = st.one_of(
    st.just(NAN),
    st.just(0.0),
    st.floats(min_value=-50.0, max_value=1000.0, allow_nan=False, allow_infinity=False),
)


def assert_same(got, want: dict) -> None:
    """Every field of a BalanceArrays equals the reference's (NaN where it has NaN)."""
    for field in BalanceArrays._fields:
        expected = np.array(want[field], dtype=np.float64).reshape(getattr(got, field).shape)
        np.testing.assert_allclose(getattr(got, field), expected, rtol=1e-12, atol=1e-9,
                                   equal_nan=True, err_msg=field)


@st.composite
def balance_inputs(draw, factor: int = 1):
    """(odpu [G, T], ipu [M, T], source [M, T] uint8, group [M]) of small random shapes, T a multiple of ``factor``."""
    n_g = draw(st.integers(0, 4))
    n_m = draw(st.integers(0, 9))
    n_t = factor * draw(st.integers(0, 5 if factor == 1 else 3))
    odpu = np.array(draw(st.lists(volume, min_size=n_g * n_t, max_size=n_g * n_t)),
                    dtype=np.float64).reshape(n_g, n_t)
    ipu = np.array(draw(st.lists(volume, min_size=n_m * n_t, max_size=n_m * n_t)),
                   dtype=np.float64).reshape(n_m, n_t)
    # Mostly MEASURED rows (the kernel's fast path) and some rows of mixed codes.
    rows = []
    for _ in range(n_m):
        if draw(st.booleans()):
            rows.append([MEASURED] * n_t)
        else:
            rows.append(draw(st.lists(st.integers(MISSING, CALCULATED), min_size=n_t, max_size=n_t)))
    source = np.array(rows, dtype=np.uint8).reshape(n_m, n_t)
    group = np.array(draw(st.lists(st.integers(-1, n_g - 1), min_size=n_m, max_size=n_m)),
                     dtype=np.int64)
    return odpu, ipu, source, group


# ---------------------------------------------------------------- kernels against the reference

@FAST
@given(balance_inputs())
def test_balance_matches_reference(inputs):
    """Random groups, NaNs, empty groups, group -1, zero/negative ОДПУ, M/G/T = 0: same as the loops."""
    odpu, ipu, source, group = inputs
    got = balance(odpu, ipu, source, group)
    assert all(getattr(got, f).shape == odpu.shape and getattr(got, f).dtype == np.float64
               for f in BalanceArrays._fields)
    assert_same(got, reference.balance(odpu, ipu, source, group))


@FAST
@given(st.integers(0, 4), st.integers(1, 7), st.data())
def test_interval_volumes_matches_reference(n_m, n_b, data):
    """Differences of boundary readings with NaN, decreasing and infinite readings."""
    reading = st.one_of(st.just(NAN), st.just(math.inf),
                        st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False))
    readings = np.array(data.draw(st.lists(reading, min_size=n_m * n_b, max_size=n_m * n_b)),
                        dtype=np.float64).reshape(n_m, n_b)
    got = interval_volumes(readings)
    assert got.shape == (n_m, n_b - 1)
    np.testing.assert_array_equal(got, np.array(reference.interval_volumes(readings)).reshape(got.shape))


@FAST
@given(st.integers(0, 4), st.integers(1, 5), st.integers(0, 4), st.data())
def test_aggregate_matches_reference(n_m, factor, blocks, data):
    """Block sums under every min_count from 1 (NaN only if all parts are) to factor (strict)."""
    n_t = factor * blocks
    volumes = np.array(data.draw(st.lists(volume, min_size=n_m * n_t, max_size=n_m * n_t)),
                       dtype=np.float64).reshape(n_m, n_t)
    min_count = data.draw(st.one_of(st.none(), st.integers(1, factor)))
    got = aggregate(volumes, factor, min_count)
    assert got.shape == (n_m, blocks)
    want = np.array(reference.aggregate(volumes, factor, min_count)).reshape(got.shape)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9, equal_nan=True)


@FAST
@given(st.integers(1, 4).flatmap(lambda f: st.tuples(st.just(f), balance_inputs(factor=f))))
def test_aggregate_balance_matches_reference(args):
    """Hourly balance aggregated = the balance counted over the blocks' member-intervals directly."""
    factor, (odpu, ipu, source, group) = args
    got = aggregate_balance(balance(odpu, ipu, source, group), factor)
    assert_same(got, reference.aggregate_balance(odpu, ipu, source, group, factor))


# ---------------------------------------------------------------- by hand

def test_balance_by_hand():
    """Two buildings, a meter in no group, every source, NaN, and one empty group."""
    odpu = np.array([[10.0, 10.0, NAN],
                     [5.0, 0.0, -1.0],
                     [3.0, 3.0, 3.0]])
    ipu = np.array([[4.0, 4.0, 4.0],    # group 0, measured
                    [2.0, NAN, 1.0],    # group 0, measured / missing / manual
                    [3.0, 3.0, 3.0],    # group 0, calculated
                    [1.0, 1.0, 1.0],    # group 1, backfilled
                    [9.0, 9.0, 9.0]])   # no group: ignored
    source = np.array([[MEASURED] * 3,
                       [MEASURED, MISSING, MANUAL],
                       [CALCULATED] * 3,
                       [BACKFILLED] * 3,
                       [MEASURED] * 3], dtype=np.uint8)
    group = np.array([0, 0, 0, 1, -1])
    b = balance(odpu, ipu, source, group)
    np.testing.assert_array_equal(b.ipu_sum, [[9, 7, 8], [1, 1, 1], [0, 0, 0]])
    np.testing.assert_array_equal(b.imbalance, [[1, 3, NAN], [4, -1, -2], [3, 3, 3]])
    np.testing.assert_allclose(b.imbalance_pct, [[10, 30, NAN], [80, NAN, NAN], [100, 100, 100]])
    np.testing.assert_allclose(b.completeness, [[2 / 3, 1 / 3, 2 / 3], [1, 1, 1], [NAN, NAN, NAN]])
    np.testing.assert_array_equal(b.substituted, [[3, 3, 3], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(b.odpu, odpu)
    assert b.odpu is not odpu


def test_measured_code_with_nan_value_is_not_measured():
    """Completeness needs a value: MEASURED with NaN does not count, a value with MISSING adds to the sum only."""
    b = balance([[5.0]], [[NAN], [2.0]], [[MEASURED], [MISSING]], [0, 0])
    assert b.completeness[0, 0] == 0.0
    assert b.ipu_sum[0, 0] == 2.0
    assert b.substituted[0, 0] == 0.0


@pytest.mark.parametrize("n_g, n_m, n_t", [(0, 0, 0), (0, 3, 4), (2, 0, 4), (2, 3, 0)])
def test_balance_empty_shapes(n_g, n_m, n_t):
    """No groups, no meters or no intervals give [G, T] outputs, without error."""
    b = balance(np.ones((n_g, n_t)), np.ones((n_m, n_t)), np.ones((n_m, n_t), np.uint8),
                np.full(n_m, -1 if n_g == 0 else 0))
    for field in BalanceArrays._fields:
        assert getattr(b, field).shape == (n_g, n_t)
    if n_m == 0 and n_t:
        assert np.isnan(b.completeness).all() and (b.ipu_sum == 0).all()


def test_balance_converts_inputs():
    """Lists, integer volumes, int16 codes, int32 groups and non-contiguous views give the float64 result."""
    ipu = np.arange(12, dtype=np.int32).reshape(3, 4)
    source = np.full((3, 4), MEASURED, dtype=np.int16)
    want = balance(np.full((1, 2), 20.0), ipu[:, ::2].astype(np.float64), np.ones((3, 2), np.uint8),
                   np.zeros(3, np.int64))
    got = balance([[20, 20]], ipu[:, ::2], source[:, ::2], np.zeros(3, np.int32))
    for field in BalanceArrays._fields:
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field))


def test_interval_volumes_by_hand():
    """A NaN reading spoils both neighbouring intervals; a decrease or an infinity gives NaN."""
    got = interval_volumes([10.0, 11.5, NAN, 13.0, 12.0, 12.0, math.inf])
    np.testing.assert_array_equal(got, [1.5, NAN, NAN, NAN, 0.0, NAN])
    assert interval_volumes(np.zeros((2, 1))).shape == (2, 0)


def test_aggregate_nan_rule():
    """Strict by default (any missing part → NaN); min_count=1 sums what there is."""
    hours = [1.0, NAN, 2.0, 3.0, NAN, NAN]
    np.testing.assert_array_equal(aggregate(hours, 2), [NAN, 5.0, NAN])
    np.testing.assert_array_equal(aggregate(hours, 2, min_count=1), [1.0, 5.0, NAN])
    np.testing.assert_array_equal(aggregate(hours, 6, min_count=3), [6.0])
    assert aggregate(np.zeros((3, 0)), 24).shape == (3, 0)


def test_aggregate_balance_by_hand():
    """Two hours → one block: sums, recomputed imbalance, completeness as the hours' mean."""
    b = balance([[5.0, 5.0]], [[2.0, 2.0], [2.0, NAN]], [[MEASURED, MEASURED], [MEASURED, MISSING]], [0, 0])
    day = aggregate_balance(b, 2)
    np.testing.assert_array_equal(day.odpu, [[10.0]])
    np.testing.assert_array_equal(day.ipu_sum, [[6.0]])
    np.testing.assert_array_equal(day.imbalance, [[4.0]])
    np.testing.assert_allclose(day.imbalance_pct, [[40.0]])
    np.testing.assert_allclose(day.completeness, [[0.75]])


def test_sources():
    """Codes, their names, and the quality → source mapping the billing export uses."""
    assert [SOURCE_NAMES[c] for c in (MISSING, MEASURED, MANUAL, BACKFILLED, CALCULATED)] == [
        "missing", "measured", "manual", "backfilled", "calculated"]
    assert source_of(Quality.GOOD) == MEASURED
    assert source_of("manual") == MANUAL
    assert source_of(Quality.BACKFILLED) == BACKFILLED
    assert source_of(Quality.CALCULATED) == CALCULATED
    assert source_of(Quality.TIMEOUT) == MISSING


# ---------------------------------------------------------------- bad input

def _ok():
    """Valid inputs: 2 groups, 3 meters, 4 intervals."""
    return np.ones((2, 4)), np.ones((3, 4)), np.ones((3, 4), np.uint8), np.array([0, 1, -1])


@pytest.mark.parametrize("change, message", [
    (lambda a: (np.ones(4), *a[1:]), r"odpu must be a 2-D array \[groups, intervals\], got shape \(4,\)"),
    (lambda a: (a[0], np.ones((3, 4, 1)), *a[2:]), r"ipu must be a 2-D array .* got shape \(3, 4, 1\)"),
    (lambda a: (a[0], np.ones((3, 5)), np.ones((3, 5), np.uint8), a[3]),
     r"ipu has 5 intervals, odpu has 4: ipu shape \(3, 5\), odpu shape \(2, 4\)"),
    (lambda a: (a[0], a[1], np.ones((3, 3), np.uint8), a[3]),
     r"ipu_source shape \(3, 3\) does not match ipu shape \(3, 4\)"),
    (lambda a: (a[0], a[1], np.ones((3, 4)), a[3]), r"ipu_source must hold integer source codes, got dtype float64"),
    (lambda a: (a[0], np.full((3, 4), "x"), *a[2:]), r"ipu must hold real numbers, got dtype <U1"),
    (lambda a: (*a[:3], np.array([0, 1])), r"group must have shape \(3,\), one index per ipu row, got shape \(2,\)"),
    (lambda a: (*a[:3], np.array([0.0, 1.0, 1.0])), r"group must hold integer group indices, got dtype float64"),
    (lambda a: (*a[:3], np.array([0, 2, 1])), r"group\[1\] = 2 is outside -1..1 \(odpu shape \(2, 4\)\)"),
    (lambda a: (*a[:3], np.array([0, -2, 1])), r"group\[1\] = -2 is outside -1..1"),
])
def test_balance_rejects(change, message):
    """Bad shapes, dtypes and group indices: ValueError naming the argument and its shape."""
    with pytest.raises(ValueError, match=message):
        balance(*change(_ok()))


@pytest.mark.parametrize("dtype, code", [(np.uint8, 5), (np.uint8, 255), (np.int16, 9), (np.int64, -1),
                                         (np.int64, 260)])
def test_balance_rejects_unknown_source_code(dtype, code):
    """A code outside 0..4 is named with its position, whatever the integer dtype (no silent wrap to uint8)."""
    odpu, ipu, source, group = _ok()
    source = source.astype(dtype)
    source[1, 2] = code
    with pytest.raises(ValueError, match=rf"ipu_source\[1, 2\] = {code} is not a source code \(0..4\)"):
        balance(odpu, ipu, source, group)


@pytest.mark.parametrize("call, message", [
    (lambda: interval_volumes(np.ones((2, 0))), r"at least one boundary column .* got shape \(2, 0\)"),
    (lambda: interval_volumes(np.ones((2, 2, 2))), r"readings must be a 2-D array"),
    (lambda: aggregate(np.ones((2, 5)), 2), r"5 intervals, not a multiple of factor 2 \(shape \(2, 5\)\)"),
    (lambda: aggregate(np.ones((2, 4)), 0), r"factor must be a positive integer, got 0"),
    (lambda: aggregate(np.ones((2, 4)), 2.0), r"factor must be a positive integer, got 2.0"),
    (lambda: aggregate(np.ones((2, 4)), 2, min_count=3), r"min_count must be an integer in 1..2, got 3"),
    (lambda: aggregate(np.ones((2, 4)), 2, min_count=0), r"min_count must be an integer in 1..2, got 0"),
])
def test_interval_and_aggregate_reject(call, message):
    """Bad readings, factors and min_count: ValueError naming the value."""
    with pytest.raises(ValueError, match=message):
        call()
