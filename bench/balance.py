"""Balance of 2,000 buildings × 100 apartments × 744 hours: numba against numpy, pandas and a memory pass.

One resource (cold water, m3 per hour) for a 31-day month: ``--buildings``
balance groups of one ОДПУ (building meter) and ``--apartments`` ИПУ
(apartment meters) each, the ИПУ matrix [M, T] float64 with a uint8 source
code per value. Synthetic data from a fixed seed (``--seed``): a diurnal
profile, residents per apartment, 5 % vacant apartments (zero use), 15 % of
meters with one communication gap of 1–168 hours (half of them back-filled
from the meter archive, the rest NaN / missing), 1 % of meters silent for
the whole month (NaN / missing), 2 % of meters calculated
for the whole month (ПП 354 substitution), 1 % manual, and an ОДПУ that
sees the true sum plus 2–8 % losses with 0.3 % of its hours missing.

Timed on the same arrays in the same run; ``--repeat`` rounds run every
method once, in a rotating order; the best time of each is the figure
(medians in the JSON's ``median_s``):

- **numba**: `scada.balance.balance` (checks included) on one thread, after a
  warm-up call that compiles it (or loads it from numba's cache); beside it
  **numba parallel**, the same per-group kernel under ``prange`` on numba's
  threads (defined here only: the API stays single-threaded);
- **numpy**: the best vectorised numpy we could write: rows sorted by group
  (they already are), NaN and source masks built per block of
  ``--numpy-chunk`` groups so they stay in cache, then per group
  ``np.add.reduce(..., axis=0, where=mask)`` for ΣV_ИПУ and the substituted
  volume and ``np.count_nonzero(..., axis=0)`` for the measured count;
- **pandas**: the natural pandas way, a wide frame (one row per meter, one
  column per hour) grouped by the group key: ``groupby(...).sum()`` of the
  volumes, of the measured mask and of the volumes times the calculated
  mask; the frames of the inputs are built before the clock starts;
- **memory pass**: ``np.sum`` over the ИПУ array: reading the 1.19 GB once,
  the memory-bandwidth limit for any method (the kernels also read the
  0.15 GB of source codes).

The numpy and pandas results are checked against numba's (all six fields,
NaN where numba has NaN) before any figure is printed. Prints human lines,
then one JSON line last: ``{"bench": "balance", "numba_s", "numpy_s",
"pandas_s", "memory_pass_s", "ratio_pandas", "ratio_numpy",
"ratio_memory", "shape", ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from scada.balance import BACKFILLED, CALCULATED, MANUAL, MEASURED, MISSING, BalanceArrays, balance  # noqa: E402

PER_PERSON_M3_H = 4.745 / 744  # cold-water норматив (norm): m3 per resident per month, per hour
FIELDS = BalanceArrays._fields


def make_data(buildings: int, apartments: int, hours: int, seed: int):
    """Return (odpu [G, T], ipu [M, T], source [M, T] uint8, group [M]) for one resource."""
    rng = np.random.default_rng(seed)
    n_m = buildings * apartments
    group = np.repeat(np.arange(buildings, dtype=np.int64), apartments)
    hour = np.arange(24)
    profile = (0.35 + 0.9 * np.exp(-((hour - 8) ** 2) / 4.0) + 1.1 * np.exp(-((hour - 20) ** 2) / 6.0))
    profile = np.tile(profile / profile.mean(), hours // 24 + 1)[:hours]
    residents = rng.integers(1, 5, n_m)
    mean = residents * PER_PERSON_M3_H * rng.lognormal(0.0, 0.3, n_m)
    mean[rng.random(n_m) < 0.05] = 0.0  # vacant apartments: measured zeros
    ipu = np.empty((n_m, hours))
    odpu = np.zeros((buildings, hours))
    step = 10_000
    for lo in range(0, n_m, step):
        block = ipu[lo:lo + step]
        rng.random(out=block)
        block *= 1.6
        block += 0.2
        block *= profile
        block *= mean[lo:lo + step, None]
        sizes = block.shape[0] // apartments
        odpu[lo // apartments:lo // apartments + sizes] = block.reshape(sizes, apartments, hours).sum(axis=1)
    source = np.full((n_m, hours), MEASURED, np.uint8)
    gaps = np.flatnonzero(rng.random(n_m) < 0.15)
    lengths = rng.integers(1, 169, gaps.size)
    starts = rng.integers(0, max(hours - 1, 1), gaps.size)
    backfilled = rng.random(gaps.size) < 0.5
    for m, start, length, back in zip(gaps, starts, lengths, backfilled):
        stop = min(start + length, hours)
        if back:
            source[m, start:stop] = BACKFILLED
        else:
            source[m, start:stop] = MISSING
            ipu[m, start:stop] = np.nan
    dead = rng.random(n_m) < 0.01  # silent all month, not yet substituted
    ipu[dead] = np.nan
    source[dead] = MISSING
    calculated = ~dead & (rng.random(n_m) < 0.02)
    ipu[calculated] = (mean[calculated, None] * profile).round(4)
    source[calculated] = CALCULATED
    manual = ~calculated & (rng.random(n_m) < 0.01)
    source[manual] = MANUAL
    losses = rng.uniform(0.02, 0.08, buildings)
    odpu *= (1.0 + losses)[:, None]
    odpu *= rng.normal(1.0, 0.01, odpu.shape)
    odpu[rng.random(odpu.shape) < 0.003] = np.nan
    return odpu, ipu, source, group


def numpy_balance(odpu, ipu, source, group, chunk: int) -> BalanceArrays:
    """The balance in vectorised numpy: group-sorted rows, masks per block of ``chunk`` groups.

    The fastest of the numpy formulations tried on this machine (see
    bench/README.md): masks built for a block of groups at once (so they stay
    in cache), then per group ``np.add.reduce(rows, axis=0, where=mask)``,
    which sums the rows without materialising a NaN-free copy.
    ``np.add.reduceat`` over the block's group boundaries (axis 0) was 3–6×
    slower, and a per-group ``sum(axis=0)`` of a ``np.where`` copy about 2×.
    """
    n_g, n_t = odpu.shape
    if np.any(group[1:] < group[:-1]):  # the blocks need each group's rows together
        order = np.argsort(group, kind="stable")
        ipu, source, group = ipu[order], source[order], group[order]
    first = np.searchsorted(group, 0)  # rows of group -1 come first; skip them
    counts = np.bincount(group[first:], minlength=n_g)
    starts = first + np.concatenate(([0], np.cumsum(counts)))
    total = np.zeros((n_g, n_t))
    measured = np.zeros((n_g, n_t))
    subst = np.zeros((n_g, n_t))
    for g0 in range(0, n_g, chunk):
        g1 = min(g0 + chunk, n_g)
        r0, r1 = starts[g0], starts[g1]
        if r0 == r1:
            continue
        x = ipu[r0:r1]
        s = source[r0:r1]
        valid = x == x  # not NaN
        meas = valid & ((s - np.uint8(1)) < 3)  # MEASURED, MANUAL, BACKFILLED: codes 1..3
        calc = valid & (s == CALCULATED)
        for g in range(g0, g1):
            a, b = starts[g] - r0, starts[g + 1] - r0
            if a == b:
                continue
            total[g] = np.add.reduce(x[a:b], axis=0, where=valid[a:b])
            measured[g] = np.count_nonzero(meas[a:b], axis=0)
            subst[g] = np.add.reduce(x[a:b], axis=0, where=calc[a:b])
    with np.errstate(invalid="ignore", divide="ignore"):
        completeness = measured / counts[:, None]
        imbalance = odpu - total
        pct = np.where(odpu > 0.0, 100.0 * imbalance / odpu, np.nan)
    return BalanceArrays(odpu.copy(), total, imbalance, pct, completeness, subst)


def pandas_frames(ipu, source, group):
    """The inputs as pandas holds them: wide frames (meter rows × hour columns) and the key."""
    import pandas as pd

    return (pd.DataFrame(ipu, copy=False), pd.DataFrame(source, copy=False),
            pd.Series(group, name="group"))


def pandas_balance(odpu, vals, src, key) -> BalanceArrays:
    """The balance the natural pandas way: wide-frame groupby(key).sum() of the three quantities."""
    n_g = odpu.shape[0]
    groups = range(n_g)
    total = vals.groupby(key).sum().reindex(groups, fill_value=0.0)
    meas = (vals.notna() & (src >= MEASURED) & (src <= BACKFILLED)).groupby(key).sum()
    size = key.value_counts().reindex(groups)
    completeness = meas.reindex(groups).div(size, axis=0)
    # vals × mask keeps NaN where vals is NaN (skipped by sum); 5× faster here than vals.where(mask).
    subst = (vals * (src == CALCULATED)).groupby(key).sum().reindex(groups, fill_value=0.0)
    total_a = total.to_numpy(dtype=np.float64)
    imbalance = odpu - total_a
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(odpu > 0.0, 100.0 * imbalance / odpu, np.nan)
    return BalanceArrays(odpu.copy(), total_a, imbalance, pct,
                         completeness.to_numpy(dtype=np.float64), subst.to_numpy(dtype=np.float64))


def parallel_kernel():
    """The product kernel's per-group function under numba's ``prange`` (bench only, not in the API).

    Each group's output row is written by one thread, so the threads share
    nothing but the read-only inputs. Measured to show what the second core
    adds; `scada.balance.balance` stays on the calling thread (DESIGN rule 1).
    """
    from numba import njit, prange

    from scada.balance.kernels import _group_row, _members

    @njit(parallel=True, error_model="numpy")
    def kernel(odpu, ipu, source, group):
        n_g, n_t = odpu.shape
        starts, order = _members(group, n_g)
        total = np.empty((n_g, n_t))
        imb = np.empty((n_g, n_t))
        pct = np.empty((n_g, n_t))
        comp = np.empty((n_g, n_t))
        subst = np.empty((n_g, n_t))
        for g in prange(n_g):
            _group_row(g, odpu, ipu, source, starts, order, total, imb, pct, comp, subst)
        return total, imb, pct, comp, subst

    def run(odpu, ipu, source, group):
        return BalanceArrays(odpu.copy(), *kernel(odpu, ipu, source, group))

    return run


def timed(rounds: int, methods: dict) -> tuple[dict, dict]:
    """Run every method once per round, rotating the order; return (last results, seconds per round)."""
    names = list(methods)
    times: dict[str, list[float]] = {name: [] for name in names}
    results = {}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            results[name] = methods[name]()
            times[name].append(time.perf_counter() - start)
            print(f"  round {r + 1}: {name} {times[name][-1] * 1000:.1f} ms", file=sys.stderr)
    return results, times


def check(name: str, got: BalanceArrays, want: BalanceArrays, rtol: float) -> None:
    """Raise AssertionError unless every field of ``got`` matches ``want`` (NaN where NaN)."""
    for field in FIELDS:
        np.testing.assert_allclose(getattr(got, field), getattr(want, field), rtol=rtol, atol=rtol,
                                   equal_nan=True, err_msg=f"{name}: {field} differs from numba")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildings", type=int, default=2000, help="balance groups (one ОДПУ each)")
    parser.add_argument("--apartments", type=int, default=100, help="ИПУ per building")
    parser.add_argument("--hours", type=int, default=744, help="intervals (744 = 31 days)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of every method; the best time of each is reported")
    parser.add_argument("--numpy-chunk", type=int, default=8, help="groups per numpy block")
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--no-pandas", action="store_true", help="skip pandas (the slowest)")
    parser.add_argument("--small", action="store_true", help="quick run: 100 buildings × 50 apartments × 168 hours")
    args = parser.parse_args()
    if args.small:
        args.buildings, args.apartments, args.hours = 100, 50, 168

    import numba

    start = time.perf_counter()
    odpu, ipu, source, group = make_data(args.buildings, args.apartments, args.hours, args.seed)
    shape = [args.buildings, args.buildings * args.apartments, args.hours]
    print(f"data: {args.buildings} groups × {args.apartments} ИПУ × {args.hours} h: ipu {ipu.nbytes / 1e9:.2f} GB "
          f"float64 + {source.nbytes / 1e9:.2f} GB source codes, generated in {time.perf_counter() - start:.1f} s; "
          f"NaN {np.isnan(ipu).mean():.2%}, calculated {(source == CALCULATED).mean():.2%}, "
          f"backfilled {(source == BACKFILLED).mean():.2%}, manual {(source == MANUAL).mean():.2%}",
          file=sys.stderr)

    start = time.perf_counter()
    # C-ordered copies: numba compiles per array layout, and the timed calls pass C-ordered arrays.
    tiny = tuple(np.ascontiguousarray(a) for a in (odpu[:1, :2], ipu[:2, :2], source[:2, :2], group[:2] * 0))
    balance(*tiny)
    warmup = time.perf_counter() - start
    balance_parallel = parallel_kernel()
    balance_parallel(*tiny)
    print(f"numba warm-up: {warmup:.2f} s (compile, or load from the cache); parallel variant "
          f"{time.perf_counter() - start - warmup:.2f} s (compiled, not cached)", file=sys.stderr)

    methods = {
        "memory pass (np.sum over ipu)": lambda: np.sum(ipu),
        "numba": lambda: balance(odpu, ipu, source, group),
        "numba parallel": lambda: balance_parallel(odpu, ipu, source, group),
        "numpy": lambda: numpy_balance(odpu, ipu, source, group, args.numpy_chunk),
    }
    if not args.no_pandas:
        vals, src, key = pandas_frames(ipu, source, group)
        methods["pandas"] = lambda: pandas_balance(odpu, vals, src, key)
    results, times = timed(args.repeat, methods)
    best = {name: min(t) for name, t in times.items()}
    got = results["numba"]
    for name in ("numba parallel", "numpy", "pandas"):
        if name in results:
            check(name, results[name], got, 1e-9)
    peers = ", ".join(n for n in results if n != "numba" and "memory" not in n)
    print(f"results agree with numba's (rtol 1e-9): {peers}", file=sys.stderr)
    memory_s, numba_s, parallel_s, numpy_s = (best[n] for n in list(methods)[:4])
    pandas_s = best.get("pandas")

    gb = ipu.nbytes / 1e9
    print(f"best of {args.repeat} rounds:", file=sys.stderr)
    for name, secs in best.items():
        print(f"{name:32s} {secs * 1000:9.1f} ms  {gb / secs:6.2f} GB/s of float64 volumes  "
              f"{secs / memory_s:5.2f}× the memory pass", file=sys.stderr)
    figures = {
        "bench": "balance",
        "shape": shape,
        "numba_s": round(numba_s, 4),
        "numpy_s": round(numpy_s, 4),
        "pandas_s": None if pandas_s is None else round(pandas_s, 4),
        "memory_pass_s": round(memory_s, 4),
        "ratio_pandas": None if pandas_s is None else round(pandas_s / numba_s, 1),
        "ratio_numpy": round(numpy_s / numba_s, 2),
        "ratio_memory": round(numba_s / memory_s, 2),
        "numba_parallel_s": round(parallel_s, 4),
        "median_s": {short: round(statistics.median(times[name]), 4) for short, name in (
            ("numba", "numba"), ("numba_parallel", "numba parallel"), ("numpy", "numpy"),
            ("pandas", "pandas"), ("memory_pass", "memory pass (np.sum over ipu)")) if name in times},
        "warmup_s": round(warmup, 2),
        "repeat": args.repeat,
        "numpy_chunk": args.numpy_chunk,
        "threads": numba.get_num_threads(),
        "numba": numba.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    if pandas_s is not None:
        import pandas as pd

        figures["pandas"] = pd.__version__
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
