# -*- test-case-name: tests.scada.balance.test_kernels -*-
"""Balance of building meters against apartment meters, for all groups at once.

Terms: an **ОДПУ** (общедомовой прибор учёта) is a building's meter of one
resource (heat, cold or hot water, electricity, gas); an **ИПУ**
(индивидуальный прибор учёта) is an apartment's meter of that resource. A
*balance group* is one building and one resource: its ОДПУ and the ИПУ under
it. Every array here holds **interval volumes** (consumption per interval,
e.g. m3 per hour), NaN where there is no value.

`balance` computes, per group ``g`` and interval ``t``:

- ``odpu``: V_ОДПУ, the building meter's volume (the input, as float64);
- ``ipu_sum``: ΣV_ИПУ, the sum of the members' volumes that are not NaN,
  whatever their source (calculated ones included); 0 when none has a value
  or the group has no members (the empty sum; ``completeness`` says how much
  of it is known);
- ``imbalance`` = V_ОДПУ − ΣV_ИПУ (positive: the building used more than the
  apartments account for: losses, common areas, unmetered use); NaN where
  V_ОДПУ is NaN;
- ``imbalance_pct`` = 100 · imbalance / V_ОДПУ; NaN where V_ОДПУ is NaN,
  zero or negative (no meaningful share of nothing);
- ``completeness``: the share (0..1) of the group's members with measured data
  in the interval: a member counts when its source is `MEASURED`, `MANUAL` or
  `BACKFILLED` *and* its volume is not NaN. NaN for a group without members;
- ``substituted``: the sum of the members' volumes whose source is
  `CALCULATED` (not NaN), i.e. how much of ΣV_ИПУ is substituted, not read.

Members are given by ``group[m]``, the group index of meter row ``m``
(``-1``: the meter belongs to no group and is ignored). Source codes
(``uint8``, shared with billing and reports) say where a volume came from:
`MISSING` (no value), `MEASURED` (read from the meter, quality ``good``),
`MANUAL` (entered by hand), `BACKFILLED` (recovered later from the meter's own
archive), `CALCULATED` (substituted, e.g. by the ПП 354 rules).

The kernels are numba ``@njit(cache=True)`` functions over C-ordered arrays;
the public functions check shapes and dtypes, convert the inputs to one dtype
per argument (so each kernel compiles once: float64 volumes, uint8 codes,
int64 group indices) and raise `ValueError` naming the bad argument and its
shape. `scada.balance.reference` does the same maths in plain Python loops;
the tests compare the two.

Around `balance`: `interval_volumes` turns cumulative register readings at
interval boundaries into volumes; `aggregate` sums consecutive intervals
(hour → day), NaN when fewer than ``min_count`` parts have a value (default:
all parts needed); `aggregate_balance` does that for a whole `BalanceArrays`;
`source_of` maps a sample's quality to its source code.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from tags.quality import Quality

MISSING = 0
"""Source code: no value for the interval."""
MEASURED = 1
"""Source code: read from the meter (quality ``good``)."""
MANUAL = 2
"""Source code: a reading entered by hand."""
BACKFILLED = 3
"""Source code: recovered after a gap from the meter's own archive."""
CALCULATED = 4
"""Source code: substituted by a rule (ПП 354 average or норматив), not read."""

SOURCE_NAMES = ("missing", "measured", "manual", "backfilled", "calculated")
"""Source code → the name used by the API and exports (``SOURCE_NAMES[code]``)."""

_FROM_QUALITY = {
    Quality.GOOD: MEASURED,
    Quality.MANUAL: MANUAL,
    Quality.BACKFILLED: BACKFILLED,
    Quality.CALCULATED: CALCULATED,
}


def source_of(quality: Quality | str) -> int:
    """Return the source code for a sample quality (`MISSING` for every unusable one)."""
    return _FROM_QUALITY.get(Quality(quality), MISSING)


class BalanceArrays(NamedTuple):
    """The balance of ``G`` groups over ``T`` intervals: float64 arrays of shape [G, T].

    See the module docstring for the definition of every field.
    """

    odpu: np.ndarray
    ipu_sum: np.ndarray
    imbalance: np.ndarray
    imbalance_pct: np.ndarray
    completeness: np.ndarray
    substituted: np.ndarray


# --------------------------------------------------------------------------
# Kernels.  Written as plain loops over C-ordered rows, branch-free in the
# innermost loop so LLVM vectorises it; no fastmath (the NaN tests must stay);
# error_model="numpy": division by zero gives inf/NaN instead of a Python
# exception check in the loop (every division here is guarded anyway).
# inline="always" on the helpers: inlined at numba's IR level, they are not
# compiled on their own as well, which cuts about 0.5 s off the first
# (cold-cache) compile of `balance` (≈ 2 s on the 2-vCPU test machine).


@njit(cache=True, error_model="numpy", inline="always")
def _members(group, n_groups):
    """Counting sort of the meter rows by group: (starts[G+1], order[members]).

    Stable, so rows of one group keep their index order and a group's rows are
    read front to back (sequentially when ``group`` is sorted, as it is when
    the meters of a building are consecutive).
    """
    starts = np.zeros(n_groups + 1, np.int64)
    for m in range(group.shape[0]):
        g = group[m]
        if g >= 0:
            starts[g + 1] += 1
    for g in range(n_groups):
        starts[g + 1] += starts[g]
    order = np.empty(starts[n_groups], np.int64)
    pos = starts[:n_groups].copy()
    for m in range(group.shape[0]):
        g = group[m]
        if g >= 0:
            order[pos[g]] = m
            pos[g] += 1
    return starts, order


@njit(cache=True, error_model="numpy", inline="always")
def _group_row(g, odpu, ipu, source, starts, order, total, imb, pct, comp, subst):
    """Fill row ``g`` of the outputs from the group's member rows, each read once from memory.

    Most rows are MEASURED throughout with no NaN. For those the volumes are
    only summed (one vectorised pass, counting NaNs on the way) and the row
    counts once in ``full`` toward completeness; its source row is checked
    first with a byte-wise OR (744 bytes, cheap). Other rows take a second
    pass, from L1 cache, for the measured count and the substituted volume.
    That halves the time against doing all three accumulations for every
    value (bench/README.md). Returns the first member row holding a code
    above `CALCULATED` (checked in the same byte pass), or -1.
    """
    n_t = ipu.shape[1]
    s = total[g]
    c = comp[g]
    q = subst[g]
    for t in range(n_t):
        s[t] = 0.0
        c[t] = 0.0
        q[t] = 0.0
    full = 0
    bad = -1
    for k in range(starts[g], starts[g + 1]):
        row = ipu[order[k]]
        src = source[order[k]]
        other = np.uint8(0)
        top = np.uint8(0)
        for t in range(n_t):
            other |= src[t] ^ np.uint8(1)  # 0 only if every code is MEASURED (1)
            top = max(top, src[t])
        if top > 4 and bad < 0:
            bad = order[k]
        nan = 0
        for t in range(n_t):
            v = np.float64(row[t])
            ok = v == v
            s[t] += v if ok else 0.0
            nan += 0 if ok else 1
        if other == 0 and nan == 0:
            full += 1
        else:
            for t in range(n_t):
                v = np.float64(row[t])
                ok = v == v
                code = src[t]
                q[t] += v if (ok and code == 4) else 0.0
                c[t] += 1.0 if (ok and code >= 1 and code <= 3) else 0.0
    n = starts[g + 1] - starts[g]
    o = odpu[g]
    for t in range(n_t):
        c[t] = (c[t] + full) / n if n > 0 else np.nan
        d = o[t] - s[t]
        imb[g, t] = d
        pct[g, t] = 100.0 * d / o[t] if o[t] > 0.0 else np.nan
    return bad


@njit(cache=True, error_model="numpy")
def _balance(odpu, ipu, source, group):
    """All groups, one after the other; the outputs and the first row with a bad code (or -1)."""
    n_g, n_t = odpu.shape
    starts, order = _members(group, n_g)
    total = np.empty((n_g, n_t))
    imb = np.empty((n_g, n_t))
    pct = np.empty((n_g, n_t))
    comp = np.empty((n_g, n_t))
    subst = np.empty((n_g, n_t))
    bad = -1
    for g in range(n_g):
        row = _group_row(g, odpu, ipu, source, starts, order, total, imb, pct, comp, subst)
        if bad < 0:
            bad = row
    return total, imb, pct, comp, subst, bad


@njit(cache=True, error_model="numpy")
def _interval_volumes(readings):
    """Differences of consecutive boundary readings; NaN unless finite and >= 0."""
    n_m, n_b = readings.shape
    out = np.empty((n_m, n_b - 1))
    for m in range(n_m):
        r = readings[m]
        o = out[m]
        for t in range(n_b - 1):
            d = r[t + 1] - r[t]
            o[t] = d if (d >= 0.0 and d < np.inf) else np.nan
    return out


@njit(cache=True, error_model="numpy")
def _aggregate(volumes, factor, min_count):
    """Sum blocks of ``factor`` intervals; NaN if fewer than ``min_count`` parts have a value."""
    n_m, n_t = volumes.shape
    n_out = n_t // factor
    out = np.empty((n_m, n_out))
    for m in range(n_m):
        r = volumes[m]
        for j in range(n_out):
            acc = 0.0
            count = 0
            for t in range(j * factor, (j + 1) * factor):
                v = r[t]
                if v == v:
                    acc += v
                    count += 1
            out[m, j] = acc if count >= min_count else np.nan
    return out


# --------------------------------------------------------------------------
# Checked entry points.


def _matrix(name: str, value, what: str) -> np.ndarray:
    """Return ``value`` as a C-ordered 2-D float64 array, or raise ValueError naming it."""
    arr = np.asarray(value)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [{what}], got shape {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype} (shape {arr.shape})")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _bad_code(source: np.ndarray, m: int) -> ValueError:
    """The error for the first unknown source code in row ``m``."""
    t = int(np.flatnonzero((source[m] < MISSING) | (source[m] > CALCULATED))[0])
    return ValueError(f"ipu_source[{m}, {t}] = {source[m, t]} is not a source code "
                      f"({MISSING}..{CALCULATED}); ipu_source shape {source.shape}")


def balance(odpu, ipu, ipu_source, group) -> BalanceArrays:
    """Compute the balance of ``G`` groups over ``T`` intervals.

    ``odpu``: [G, T] building-meter volumes; ``ipu``: [M, T] apartment-meter
    volumes; ``ipu_source``: [M, T] source codes (`MISSING` .. `CALCULATED`;
    uint8 is used as is, other integer dtypes are checked and converted);
    ``group``: [M] group index of each meter row, ``-1`` for none. NaN marks
    a missing volume; other numeric dtypes are converted to float64 (one
    compiled specialisation). Returns a `BalanceArrays` of [G, T] float64
    arrays, defined in the module docstring. Raises `ValueError` naming the
    argument and its shape for mismatched shapes, non-numeric arrays, group
    indices outside ``-1 .. G-1`` and unknown source codes (a uint8
    ``ipu_source`` is checked by the kernel in the same pass, for the rows of
    meters in a group; rows with group -1 are not read).

    Runs on the calling thread: about 0.13 s for 2,000 groups × 100 meters
    × 744 hours on this project's 2-vCPU test machine (bench/balance.py).
    """
    odpu = _matrix("odpu", odpu, "groups, intervals")
    ipu = _matrix("ipu", ipu, "meters, intervals")
    n_g, n_t = odpu.shape
    n_m = ipu.shape[0]
    if ipu.shape[1] != n_t:
        raise ValueError(f"ipu has {ipu.shape[1]} intervals, odpu has {n_t}: "
                         f"ipu shape {ipu.shape}, odpu shape {odpu.shape}")
    source = np.asarray(ipu_source)
    if source.shape != ipu.shape:
        raise ValueError(f"ipu_source shape {source.shape} does not match ipu shape {ipu.shape}")
    if source.dtype.kind not in "iu":
        raise ValueError(f"ipu_source must hold integer source codes, got dtype {source.dtype} "
                         f"(shape {source.shape})")
    if source.dtype != np.uint8 and source.size:
        wrong = (source < MISSING) | (source > CALCULATED)
        if wrong.any():
            raise _bad_code(source, int(np.flatnonzero(wrong.any(axis=1))[0]))
    source = np.ascontiguousarray(source, dtype=np.uint8)
    grp = np.asarray(group)
    if grp.shape != (n_m,):
        raise ValueError(f"group must have shape ({n_m},), one index per ipu row, got shape {grp.shape}")
    if grp.dtype.kind not in "iu":
        raise ValueError(f"group must hold integer group indices, got dtype {grp.dtype} (shape {grp.shape})")
    if n_m:
        lo, hi = int(grp.min()), int(grp.max())
        if lo < -1 or hi >= n_g:
            bad = lo if lo < -1 else hi
            m = int(np.flatnonzero(grp == bad)[0])
            raise ValueError(f"group[{m}] = {bad} is outside -1..{n_g - 1} (odpu shape {odpu.shape})")
    grp = np.ascontiguousarray(grp, dtype=np.int64)
    total, imb, pct, comp, subst, bad_row = _balance(odpu, ipu, source, grp)
    if bad_row >= 0:
        raise _bad_code(source, int(bad_row))
    return BalanceArrays(odpu.copy(), total, imb, pct, comp, subst)


def interval_volumes(readings) -> np.ndarray:
    """Return interval volumes [M, T] from cumulative register readings [M, T+1].

    ``readings[m, t]`` is meter ``m``'s register at the start of interval
    ``t`` (``readings[m, T]`` at the end of the last). A volume is the
    difference of its two boundary readings, NaN when either is NaN or
    infinite or when the difference is negative (a counter reset, a meter
    replacement or a bad reading: account for replacements before calling).
    A 1-D array of T+1 readings gives a 1-D array of T volumes.
    """
    arr = np.asarray(readings)
    one_d = arr.ndim == 1
    arr = _matrix("readings", arr[None, :] if one_d else arr, "meters, interval boundaries")
    if arr.shape[1] < 1:
        raise ValueError(f"readings need at least one boundary column (T+1 >= 1), got shape {arr.shape}")
    out = _interval_volumes(arr)
    return out[0] if one_d else out


def aggregate(volumes, factor: int, min_count: int | None = None) -> np.ndarray:
    """Sum consecutive blocks of ``factor`` intervals (e.g. 24 hours → a day).

    ``volumes``: [N, T] (or 1-D [T]) with ``T`` a multiple of ``factor``;
    returns [N, T // factor]. **NaN rule**: an aggregate is the sum of its
    parts that have a value, and NaN when fewer than ``min_count`` parts have
    one. The default ``min_count = factor`` is strict: one missing hour makes
    the day unknown, because a sum of the known hours would understate the
    day's volume and show up as a false imbalance. ``min_count=1`` gives
    "NaN only if every part is NaN". For whole days or months of a
    cumulative meter, differences of the boundary readings
    (`interval_volumes` over ``readings[:, ::24]``) recover volumes that
    hourly gaps lose.
    """
    arr = np.asarray(volumes)
    one_d = arr.ndim == 1
    arr = _matrix("volumes", arr[None, :] if one_d else arr, "rows, intervals")
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor!r}")
    factor = int(factor)
    if arr.shape[1] % factor:
        raise ValueError(f"volumes have {arr.shape[1]} intervals, not a multiple of factor {factor} "
                         f"(shape {arr.shape})")
    if min_count is None:
        min_count = factor
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) \
            or not 1 <= min_count <= factor:
        raise ValueError(f"min_count must be an integer in 1..{factor}, got {min_count!r}")
    out = _aggregate(arr, factor, int(min_count))
    return out[0] if one_d else out


def aggregate_balance(b: BalanceArrays, factor: int, min_count: int | None = None) -> BalanceArrays:
    """Aggregate an hourly (or other) balance into blocks of ``factor`` intervals.

    ``odpu`` follows `aggregate`'s NaN rule (strict by default); ``ipu_sum``
    and ``substituted`` are plain sums (they are never NaN); ``completeness``
    is the mean of its parts (= the share of member-intervals with measured
    data; NaN for a group without members); ``imbalance`` and
    ``imbalance_pct`` are recomputed from the aggregated volumes.
    """
    odpu = aggregate(b.odpu, factor, min_count)
    total = aggregate(b.ipu_sum, factor, 1)
    subst = aggregate(b.substituted, factor, 1)
    comp = aggregate(b.completeness, factor) / factor
    imb = odpu - total
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(odpu > 0.0, 100.0 * imb / np.where(odpu > 0.0, odpu, 1.0), np.nan)
    return BalanceArrays(odpu, total, imb, pct, comp, subst)
