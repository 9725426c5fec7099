# -*- test-case-name: tests.scada.reports.test_reports -*-
"""The ``ipu`` report: every apartment meter (ИПУ) of a building for a period.

One row per premises and meter, ordered by premises number (``2`` before
``10``) and resource: account, meter, serial, start and end readings,
consumption, source and, for a substituted period, the ПП 354 rule and its
explanation, exactly as the billing pull computes them
(:class:`scada.billing.readings.PeriodReader`).  Totals per resource: the
consumption summed, how many meters were measured and how many substituted.
"""

from __future__ import annotations

import math
import re
from typing import Any

from scada.billing.readings import PeriodReader
from scada.registry import RESOURCES, Meter
from scada.reports import i18n

COLUMNS = ("premises", "account", "meter", "serial", "resource", "unit", "start", "start_ts", "end", "end_ts",
           "consumption", "source", "problem", "rule", "note")
WIDTHS = (10, 14, 18, 16, 20, 8, 14, 20, 14, 20, 12, 16, 24, 26, 80)


def premises_order(number: str | None) -> tuple:
    """Return a sort key that puts premises ``2`` before ``10`` and ``10а`` after ``10``."""
    if number is None:
        return (math.inf, "")
    match = re.match(r"\d+", number)
    return (int(match.group()), number[match.end():]) if match else (math.inf, number)


def _order(meter: Meter) -> tuple:
    rank = RESOURCES.index(meter.resource) if meter.resource in RESOURCES else len(RESOURCES)
    return (*premises_order(meter.premises), rank, meter.id)


async def ipu_report(reader: PeriodReader, building: str, period: str, lang: str = "ru") -> dict[str, Any]:
    """Return ``{"items": [...], "totals": [...]}`` for the building's apartment meters in ``period``."""
    meters = sorted((m for m in reader.registry.building(building).meters
                     if m.role == "ipu" and reader.in_period(m, period)), key=_order)
    readings = await reader.read(meters, period)
    items = [r.to_json(lang) for r in readings]
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for r in readings:
        key = (r.meter.resource, r.meter.unit)
        total = totals.setdefault(key, {"resource": key[0], "unit": key[1], "consumption": 0.0, "meters": 0,
                                        "measured": 0, "substituted": 0, "missing": 0})
        total["meters"] += 1
        if r.consumption is not None:
            total["consumption"] = round(total["consumption"] + r.consumption, 6)
        if r.measured:
            total["measured"] += 1
        elif r.consumption is not None:
            total["substituted"] += 1
        else:
            total["missing"] += 1
    return {"items": items, "totals": list(totals.values())}


def rows(report: dict[str, Any], lang: str, tz) -> list[list[Any]]:
    """Return the report's table rows (:data:`COLUMNS`) with names and times in ``lang``."""
    out = []
    for item in report["items"]:
        values = i18n.reading_values(item, lang, tz)
        values["rule"] = item["rule"] or ""
        values["note"] = item["note"] or ""
        out.append([values[key] for key in COLUMNS])
    return out
