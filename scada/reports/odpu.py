# -*- test-case-name: tests.scada.reports.test_reports -*-
"""The ``odpu`` report: a building's meters (ОДПУ) for a period.

Per building meter: start and end readings and consumption (measured only:
the ПП 354 substitutions are for apartments), for heat also in Gcal and
kWh (1 kWh = 0.000859845 Gcal), the mean supply and return temperatures,
and the hours of abnormal operation.

- **Mean temperatures**: the mean of every usable sample of the meter's
  ``t_supply_tag`` / ``t_return_tag`` in the period (the historian's
  ``query_agg`` per hour, weighted by the samples per hour), None without
  such a tag or data.
- **Hours of abnormal operation** (время нештатной ситуации): the hours of
  the period in which the meter's register has **no usable sample**
  (``hours_no_data``: not counting, not read, or bad quality) **or** its
  ``<device>.error_code`` tag, where the site has one, is **nonzero** in
  some usable sample (``hours_error``); an hour with both counts once
  (``hours_abnormal``).  Hours are the clock hours of UTC, which are the
  site's clock hours in every zone with a whole-hour offset.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from scada.billing.readings import PeriodReader
from scada.registry import RESOURCES
from scada.reports import i18n, units

HOUR = 3600.0
COLUMNS = ("meter", "serial", "resource", "unit", "start", "start_ts", "end", "end_ts", "consumption", "source",
           "problem", "consumption_gcal", "consumption_kwh", "t_supply", "t_return", "hours", "hours_no_data",
           "hours_error", "hours_abnormal")
WIDTHS = (18, 16, 20, 8, 14, 20, 14, 20, 12, 16, 24, 14, 14, 16, 16, 10, 12, 12, 14)


async def _mean(historian: Any, tag: str | None, start: float, end: float) -> float | None:
    """Return the mean of the usable samples of ``tag`` in ``[start, end)`` (None without tag or data)."""
    if not tag:
        return None
    rows = await historian.query_agg(tag, start, end, HOUR)
    count = sum(r.count for r in rows if r.mean is not None)
    if not count:
        return None
    return round(math.fsum(r.mean * r.count for r in rows if r.mean is not None) / count, 3)


async def abnormal_hours(historian: Any, tag: str, error_tag: str | None, start: float, end: float
                         ) -> tuple[int, int, int, int]:
    """Return ``(hours, no_data, error, abnormal)`` for the register ``tag`` in ``[start, end)``; see the module."""
    first = math.floor(start / HOUR)
    last = math.ceil(end / HOUR)
    hours = set(range(first, last))
    with_data = {round(r.ts / HOUR) for r in await historian.query_agg(tag, start, end, HOUR) if r.count}
    errors: set[int] = set()
    if error_tag:
        errors = {round(r.ts / HOUR) for r in await historian.query_agg(error_tag, start, end, HOUR)
                  if r.count and ((r.max or 0) != 0 or (r.min or 0) != 0)}
    no_data = hours - with_data
    errors &= hours
    return len(hours), len(no_data), len(errors), len(no_data | errors)


async def odpu_report(reader: PeriodReader, building: str, period: str, has_tag: Callable[[str], bool],
                      lang: str = "ru") -> dict[str, Any]:
    """Return ``{"items": [...]}``: one item per building meter of ``building`` in ``period``."""
    meters = [m for m in reader.registry.building(building).meters if m.role == "odpu"]
    meters.sort(key=lambda m: (RESOURCES.index(m.resource) if m.resource in RESOURCES else 99, m.id))
    measured = await reader.measure(meters, period)
    start, end = reader.bounds(period)
    historian = reader.historian
    items = []
    for meter in meters:
        got = measured[meter.id]
        item = got.to_json(lang)
        for key in ("account", "premises", "rule", "note"):
            item.pop(key, None)
        consumption = got.consumption if got.measured else None
        item["consumption"] = consumption
        if not got.measured:
            item["source"] = "missing"
        gcal = kwh = None
        if meter.resource == "heat":
            gcal, kwh = units.heat(consumption, meter.unit)
        item["consumption_gcal"] = None if gcal is None else round(gcal, 6)
        item["consumption_kwh"] = None if kwh is None else round(kwh, 3)
        item["t_supply"] = await _mean(historian, meter.t_supply_tag, start, end)
        item["t_return"] = await _mean(historian, meter.t_return_tag, start, end)
        error_tag = f"{meter.device}.error_code"
        hours, no_data, errors, abnormal = await abnormal_hours(
            historian, meter.tag, error_tag if has_tag(error_tag) else None, start, end)
        item.update(hours=hours, hours_no_data=no_data, hours_error=errors, hours_abnormal=abnormal)
        items.append(item)
    return {"items": items}


def rows(report: dict[str, Any], lang: str, tz) -> list[list[Any]]:
    """Return the report's table rows (:data:`COLUMNS`) with names and times in ``lang``."""
    out = []
    for item in report["items"]:
        values = i18n.reading_values(item, lang, tz)
        out.append([values[key] for key in COLUMNS])
    return out
