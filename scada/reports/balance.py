# -*- test-case-name: tests.scada.reports.test_reports -*-
"""The ``balance`` report: a building's meter (ОДПУ) against the sum of its apartment meters (ИПУ).

Per balance group (one per resource with an ОДПУ: A's
:meth:`scada.registry.Registry.balance_groups`) and per interval (``hour``,
``day`` or ``month`` of the period, site time): V_ОДПУ, ΣV_ИПУ, imbalance
(absolute and % of V_ОДПУ), completeness (the share of the group's ИПУ with
measured data in the interval) and the volume substituted, computed by B's
numba kernel :func:`scada.balance.balance` over arrays of all groups at once.

**Interval volumes.**  For ``hour`` and ``day`` every meter's register is
read at every interval boundary (the last usable sample at or before the
boundary, taken within the interval it closes: ``query_at_many``, one query
per boundary for all the building's meters), and a volume is the difference
of two consecutive readings (NaN where one is missing or the difference is
negative); its source is the worse of the two readings'.  A replacement
inside an interval is accounted as ``(final − before) + (after − initial)``.
No ПП 354 substitution happens at these scales (the rules are monthly), so
``substituted`` is the volume of samples that were themselves calculated.

For ``month`` the figures are the billing pull's: ИПУ consumption with the
ПП 354 substitutions (source ``calculated``: that is the volume substituted),
the ОДПУ's measured consumption.

**Totals** per group, whatever the interval, are the month's balance: the
billing pull's figures (so a gap inside the period does not make the total
unknown, and the totals agree with what billing gets).  The intervals of a
day or hour report need not add up to them: an interval with a missing
reading has no volume, and ПП 354 volumes exist only per month.  Volumes of
ИПУ counting in another unit than their ОДПУ (litres under m3) are
converted to the ОДПУ's.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from scada.balance import MANUAL, MEASURED, MISSING, BalanceArrays, balance, interval_volumes
from scada.billing.periods import parse_period
from scada.billing.readings import PeriodReader, Reading, worst
from scada.registry import BalanceGroup, Meter
from scada.reports import i18n, units
from tags.timefmt import iso_utc

INTERVALS = ("hour", "day", "month")
COLUMNS = ("resource", "unit", "interval_start", "interval_end", "odpu", "ipu_sum", "imbalance", "imbalance_pct",
           "completeness", "substituted")
WIDTHS = (20, 8, 20, 20, 14, 14, 14, 12, 14, 16)
FIELDS = ("odpu", "ipu_sum", "imbalance", "imbalance_pct", "completeness", "substituted")
#: Decimals of the volumes and shares in the answer.
DECIMALS = {"odpu": 6, "ipu_sum": 6, "imbalance": 6, "imbalance_pct": 3, "completeness": 4, "substituted": 6}


#: Badness of each source code, indexed by code (see `scada.billing.readings.worst`).
_BADNESS = np.array([-1, 0, 2, 1, 3])


def boundaries(reader: PeriodReader, period: str, interval: str) -> list[float]:
    """Return the interval boundaries of ``period`` in UTC seconds (T + 1 of them), site time for days."""
    start, end = reader.bounds(period)
    if interval == "month":
        return [start, end]
    if interval == "hour":
        count = round((end - start) / 3600)
        return [start + 3600 * k for k in range(count + 1)]
    year, month = parse_period(period)
    day = datetime(year, month, 1)
    out = []
    while True:
        ts = datetime(day.year, day.month, day.day, tzinfo=reader.tz).timestamp()
        out.append(ts)
        if ts >= end:
            return out
        day += timedelta(days=1)


def _value(x: float, decimals: int) -> float | None:
    """Return a finite number rounded, None for NaN/inf (JSON has no NaN)."""
    x = float(x)
    return round(x, decimals) + 0.0 if math.isfinite(x) else None


async def _interval_readings(reader: PeriodReader, meters: list[Meter], edges: list[float]
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return readings, reading times and source codes [M, T+1] of ``meters`` at ``edges``."""
    tags = [m.tag for m in meters]
    values = np.full((len(meters), len(edges)), np.nan)
    times = np.full((len(meters), len(edges)), np.nan)
    sources = np.zeros((len(meters), len(edges)), dtype=np.uint8)
    for k, edge in enumerate(edges):
        # Within the interval the boundary closes (the first one: within one interval before it).
        width = edges[k] - edges[k - 1] if k else edges[1] - edges[0]
        found = await reader.samples_between(tags, edge, math.nextafter(edge - width, math.inf))
        for i, meter in enumerate(meters):
            reading = Reading.of(found[meter.tag])
            if reading is not None and reading.ts < reader.expires(meter):
                values[i, k], times[i, k], sources[i, k] = reading.value, reading.ts, reading.source
        if k % 48 == 47:
            await asyncio.sleep(0)  # a long hourly report must not hold the engine's loop
    return values, times, sources


def _volumes(reader: PeriodReader, meters: list[Meter], values, times, sources, edges
             ) -> tuple[np.ndarray, np.ndarray]:
    """Return interval volumes and their source codes [M, T] from boundary readings, replacements applied."""
    vol = interval_volumes(values) if values.shape[1] > 1 else np.zeros((len(meters), 0))
    # The worse source of the two boundary readings (by `worst`'s order), MISSING if either is missing.
    first, second = sources[:, :-1], sources[:, 1:]
    src = np.where(_BADNESS[first] >= _BADNESS[second], first, second).astype(np.uint8)
    src[(first == MISSING) | (second == MISSING)] = MISSING
    for i, meter in enumerate(meters):
        for swap in reader.registry.replacements(meter.id, edges[0], edges[-1]):
            k = int(np.searchsorted(edges, swap.at, side="right")) - 1
            before, after = values[i, k], values[i, k + 1]
            if math.isfinite(before) and math.isfinite(after) and times[i, k + 1] >= swap.at:
                volume = (swap.final_reading - before) + (after - swap.initial_reading)
                vol[i, k] = volume if volume >= 0 else np.nan
                # The swap's readings were written down by a person.
                src[i, k] = worst(int(src[i, k]) or MEASURED, MANUAL) if math.isfinite(vol[i, k]) else MISSING
            else:
                vol[i, k] = np.nan
                src[i, k] = MISSING
        src[i, ~np.isfinite(vol[i])] = MISSING
    return vol, src


async def _month(reader: PeriodReader, groups: list[BalanceGroup], period: str
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return odpu [G, 1], ipu [M, 1], sources [M, 1] and group [M] from the billing pull's figures."""
    odpu_meters = [g.odpu for g in groups]
    ipu_meters = [m for g in groups for m in g.ipu if reader.in_period(m, period)]
    measured = await reader.measure(odpu_meters, period)
    billed = {r.meter.id: r for r in await reader.read(ipu_meters, period)}
    odpu = np.array([[measured[m.id].consumption if measured[m.id].measured else np.nan] for m in odpu_meters],
                    dtype=float).reshape(len(groups), 1)
    ipu = np.full((len(ipu_meters), 1), np.nan)
    src = np.zeros((len(ipu_meters), 1), dtype=np.uint8)
    group = np.zeros(len(ipu_meters), dtype=np.int64)
    row = 0
    for g, grp in enumerate(groups):
        for meter in grp.ipu:
            if meter.id not in billed:
                continue
            got = billed[meter.id]
            if got.consumption is not None:
                ipu[row, 0] = got.consumption * units.factor(meter.unit, grp.odpu.unit)
                src[row, 0] = got.source
            group[row] = g
            row += 1
    return odpu, ipu, src, group


async def interval_balance(reader: PeriodReader, groups: list[BalanceGroup], edges: list[float]) -> BalanceArrays:
    """Return the balance of ``groups`` per interval between consecutive ``edges`` (UTC seconds).

    Volumes are differences of exact boundary readings (no ПП 354 at these
    scales); apartment volumes are converted to their building meter's unit.
    The balance service (:mod:`scada.balance.service`) calls this for its
    rolling window, the ``balance`` report for hours and days.
    """
    odpu_meters = [g.odpu for g in groups]
    members = [(g, m) for g, grp in enumerate(groups) for m in grp.ipu]
    ipu_meters = [m for _, m in members]
    values, times, sources = await _interval_readings(reader, odpu_meters + ipu_meters, edges)
    vol, vsrc = _volumes(reader, odpu_meters + ipu_meters, values, times, sources, edges)
    scale = np.array([units.factor(m.unit, groups[g].odpu.unit) for g, m in members]).reshape(-1, 1)
    n = len(groups)
    group = np.array([g for g, _ in members], dtype=np.int64)
    return balance(vol[:n], vol[n:] * scale, vsrc[n:], group)


async def balance_report(reader: PeriodReader, building: str, period: str, interval: str = "day"
                         ) -> dict[str, Any]:
    """Return ``{"interval", "groups": [{resource, unit, odpu, ipu_meters, totals, items: [...]}]}``."""
    if interval not in INTERVALS:
        raise ValueError(f"interval={interval!r} is not one of {', '.join(INTERVALS)}")
    reader.registry.building(building)
    groups = [g for g in reader.registry.balance_groups() if g.building == building]
    edges = boundaries(reader, period, interval)
    if not groups:
        return {"interval": interval, "groups": []}
    totals = result = balance(*await _month(reader, groups, period))
    if interval != "month":
        result = await interval_balance(reader, groups, edges)
    out = []
    for g, grp in enumerate(groups):
        items = []
        for k in range(len(edges) - 1):
            item = {"start": iso_utc(edges[k]), "end": iso_utc(edges[k + 1])}
            item.update({f: _value(getattr(result, f)[g, k], DECIMALS[f]) for f in FIELDS})
            items.append(item)
        out.append({"resource": grp.resource, "unit": grp.odpu.unit, "odpu": grp.odpu.id,
                    "ipu_meters": len(grp.ipu),
                    "totals": {f: _value(getattr(totals, f)[g, 0], DECIMALS[f]) for f in FIELDS},
                    "items": items})
    return {"interval": interval, "groups": out}


def rows(report: dict[str, Any], lang: str, tz) -> list[list[Any]]:
    """Return the report's table rows (:data:`COLUMNS`), one per group and interval, times in ``lang``."""
    from tags.timefmt import parse_iso

    out = []
    for grp in report["groups"]:
        for item in grp["items"]:
            out.append([i18n.text(grp["resource"], lang), i18n.text(grp["unit"], lang),
                        i18n.moment(parse_iso(item["start"]), lang, tz), i18n.moment(parse_iso(item["end"]), lang, tz),
                        *[item[f] for f in FIELDS]])
    return out


__all__ = ["COLUMNS", "INTERVALS", "balance_report", "boundaries", "rows"]
