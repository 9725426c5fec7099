# -*- test-case-name: tests.scada.balance.test_kernels -*-
"""The maths of `scada.balance.kernels` in plain Python loops, for the tests.

Deliberately naive: nested loops over lists, one value at a time, the
definitions of the kernels' module docstring written out as directly as
possible. Inputs are anything indexable as ``x[i][j]`` (nested lists or numpy
arrays); outputs are nested lists of floats. No input checking: the tests
call it only with valid input.
"""

from __future__ import annotations

import math

from scada.balance.kernels import BACKFILLED, CALCULATED, MANUAL, MEASURED

NAN = float("nan")
_MEASURED_SOURCES = (MEASURED, MANUAL, BACKFILLED)


def balance(odpu, ipu, ipu_source, group) -> dict[str, list[list[float]]]:
    """Return the six balance fields (as in `BalanceArrays`) as a dict of [G][T] lists."""
    n_g = len(odpu)
    n_t = len(odpu[0]) if n_g else (len(ipu[0]) if len(ipu) else 0)
    out = {name: [] for name in ("odpu", "ipu_sum", "imbalance", "imbalance_pct",
                                 "completeness", "substituted")}
    for g in range(n_g):
        members = [m for m in range(len(group)) if int(group[m]) == g]
        rows = {name: [] for name in out}
        for t in range(n_t):
            v_odpu = float(odpu[g][t])
            total = 0.0
            substituted = 0.0
            measured = 0
            for m in members:
                v = float(ipu[m][t])
                code = int(ipu_source[m][t])
                if math.isnan(v):
                    continue
                total += v
                if code == CALCULATED:
                    substituted += v
                if code in _MEASURED_SOURCES:
                    measured += 1
            imbalance = v_odpu - total
            if math.isnan(v_odpu) or v_odpu <= 0.0:
                pct = NAN
            else:
                pct = 100.0 * imbalance / v_odpu
            rows["odpu"].append(v_odpu)
            rows["ipu_sum"].append(total)
            rows["imbalance"].append(imbalance)
            rows["imbalance_pct"].append(pct)
            rows["completeness"].append(measured / len(members) if members else NAN)
            rows["substituted"].append(substituted)
        for name in out:
            out[name].append(rows[name])
    return out


def interval_volumes(readings) -> list[list[float]]:
    """Return [M][T] volumes from [M][T+1] readings: differences, NaN unless finite and >= 0."""
    out = []
    for row in readings:
        volumes = []
        for t in range(len(row) - 1):
            d = float(row[t + 1]) - float(row[t])
            volumes.append(d if math.isfinite(d) and d >= 0.0 else NAN)
        out.append(volumes)
    return out


def aggregate(volumes, factor: int, min_count: int | None = None) -> list[list[float]]:
    """Sum blocks of ``factor`` values per row; NaN if fewer than ``min_count`` (default all) have a value."""
    if min_count is None:
        min_count = factor
    out = []
    for row in volumes:
        sums = []
        for j in range(len(row) // factor):
            total = 0.0
            count = 0
            for t in range(j * factor, (j + 1) * factor):
                v = float(row[t])
                if not math.isnan(v):
                    total += v
                    count += 1
            sums.append(total if count >= min_count else NAN)
        out.append(sums)
    return out


def aggregate_balance(odpu, ipu, ipu_source, group, factor: int,
                      min_count: int | None = None) -> dict[str, list[list[float]]]:
    """Balance over blocks of ``factor`` intervals, counted from the member-intervals directly.

    Written independently of the kernels' route (hourly balance, then
    aggregated): V_ОДПУ by `aggregate`'s NaN rule, ΣV_ИПУ and the substituted
    volume over every member-interval of the block, completeness as measured
    member-intervals over all member-intervals.
    """
    if min_count is None:
        min_count = factor
    n_g = len(odpu)
    n_t = len(odpu[0]) if n_g else (len(ipu[0]) if len(ipu) else 0)
    out = {name: [] for name in ("odpu", "ipu_sum", "imbalance", "imbalance_pct",
                                 "completeness", "substituted")}
    odpu_blocks = aggregate(odpu, factor, min_count)
    for g in range(n_g):
        members = [m for m in range(len(group)) if int(group[m]) == g]
        rows = {name: [] for name in out}
        for j in range(n_t // factor):
            total = 0.0
            substituted = 0.0
            measured = 0
            for m in members:
                for t in range(j * factor, (j + 1) * factor):
                    v = float(ipu[m][t])
                    if math.isnan(v):
                        continue
                    total += v
                    if int(ipu_source[m][t]) == CALCULATED:
                        substituted += v
                    if int(ipu_source[m][t]) in _MEASURED_SOURCES:
                        measured += 1
            v_odpu = odpu_blocks[g][j]
            imbalance = v_odpu - total
            rows["odpu"].append(v_odpu)
            rows["ipu_sum"].append(total)
            rows["imbalance"].append(imbalance)
            rows["imbalance_pct"].append(NAN if math.isnan(v_odpu) or v_odpu <= 0.0
                                         else 100.0 * imbalance / v_odpu)
            rows["completeness"].append(measured / (len(members) * factor) if members else NAN)
            rows["substituted"].append(substituted)
        for name in out:
            out[name].append(rows[name])
    return out
