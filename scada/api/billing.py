# -*- test-case-name: tests.scada.test_api_billing -*-
"""Billing pulls: ``GET /api/v1/billing/readings?period=YYYY-MM``, per account, paged, or as a file.

JSON (the default) is one page: ``{"period", "from", "to", "complete",
"items": [...], "next_cursor"}`` ordered by (account, meter id); pass
``next_cursor`` back as ``cursor`` until it is null.  ``limit`` is 1..10000
(default 1000).  ``building=`` restricts the pull to one building.

``format=csv`` (1C), ``xlsx`` and ``gis`` (the ГИС ЖКХ meter-readings import
layout) return the whole period (or the building) as a file and take no
cursor or limit.  CSV is streamed page by page (constant memory whatever the
number of accounts): UTF-8 with BOM, ``;`` between fields, CRLF; with
``lang=ru`` (the default) Russian headers and names, a decimal comma and
times as ``DD.MM.YYYY HH:MM:SS`` site time, which is what 1C's and Excel's
Russian-locale import expects; with ``lang=en`` English headers, a decimal
point and ISO 8601 UTC times; ``decimal=comma|point`` overrides the
separator.  XLSX holds at most :data:`scada.billing.pull.MAX_XLSX_ROWS`
rows (400 beyond it: export per building or use CSV).

Role ``billing`` (and admin).  See :mod:`scada.billing.readings` for how
readings, consumption, sources and ПП 354 substitutions are decided.
"""

from __future__ import annotations

import asyncio
import logging

from sanic import Blueprint
from sanic.response import HTTPResponse, json

from scada.api.auth import roles
from scada.api.common import error
from scada.api.openapi import LANG, XLSX, component, doc, error_response, json_or_file, param
from scada.billing import pull
from scada.billing.periods import parse_period, period_bounds, shift_period
from scada.billing.readings import HISTORY_MONTHS, PeriodReader
from scada.reports import i18n
from scada.reports.export import CSV_CONTENT_TYPE, XLSX_CONTENT_TYPE, CsvWriter, Sheet, xlsx_bytes
from tags.timefmt import iso_utc

log = logging.getLogger(__name__)
bp = Blueprint("api_v1_billing", url_prefix="/api/v1/billing")

FORMATS = ("json", "csv", "xlsx", "gis")
PARAMS = ("period", "format", "cursor", "limit", "building", "lang", "decimal")

ITEM = component("BillingItem", {
    "type": "object",
    "description": "One apartment meter's readings and consumption for the period.",
    "required": ["account", "premises", "building", "meter", "resource", "unit", "start", "end", "consumption",
                 "source"],
    "properties": {
        "account": {"type": "string"}, "premises": {"type": "string"}, "building": {"type": "string"},
        "meter": {"type": "string"}, "serial": {"type": "string"}, "resource": {"type": "string"},
        "unit": {"type": "string"},
        "start": {"type": ["number", "null"]}, "start_ts": {"type": ["string", "null"], "format": "date-time"},
        "end": {"type": ["number", "null"]}, "end_ts": {"type": ["string", "null"], "format": "date-time"},
        "consumption": {"type": ["number", "null"]},
        "source": {"type": "string", "enum": ["measured", "manual", "backfilled", "calculated", "missing"]},
        "problem": {"type": ["string", "null"]}, "rule": {"type": ["string", "null"]},
        "note": {"type": ["string", "null"]},
    },
})


class Refused(Exception):
    """A parameter the pull cannot use: answered 400 (or 404) with the message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def check_period(period: str | None, now: float, tz) -> tuple[float, float, bool]:
    """Return the period's bounds and whether it is over; `Refused` naming a missing, bad or future period."""
    if not period:
        raise Refused("period is required: ?period=YYYY-MM, such as 2026-10")
    try:
        parse_period(period)
        # The pull reads a year of history before the period and the boundary after it.
        shift_period(period, -(HISTORY_MONTHS + 1))
        shift_period(period, 2)
        start, end = period_bounds(period, tz)
    except ValueError as exc:
        raise Refused(str(exc)) from None
    if start > now:
        raise Refused(f"period {period} has not begun yet (now is {iso_utc(now)})")
    return start, end, end <= now


def period_args(request) -> dict:
    """Return the query's ``period`` with its ``bounds``, ``lang`` and ``decimal`` (a decimal comma?).

    `Refused` naming a missing, bad or future period or a bad ``decimal``;
    the decimal separator defaults to a comma in Russian, a point in English.
    """
    rt = request.app.ctx.runtime
    period = request.args.get("period")
    bounds = check_period(period, rt.reactor.seconds(), rt.cfg.site.timezone)
    lang = i18n.language(request.args.get("lang"))
    decimal = request.args.get("decimal")
    if decimal not in (None, "comma", "point"):
        raise Refused(f"decimal={decimal!r} is not one of comma, point")
    return {"period": period, "bounds": bounds, "lang": lang,
            "decimal": (decimal == "comma") if decimal else (lang == "ru")}


def runtime_parts(request):
    """Return ``(registry, historian, tz)`` of the app's runtime: the effective registry (an empty one without)."""
    rt = request.app.ctx.runtime
    service = getattr(rt, "registry", None)
    registry = service.current() if service is not None else None
    if registry is None:
        from scada.registry import Registry

        registry = Registry((), rt.cfg.site.timezone)
    return registry, rt.historian, rt.cfg.site.timezone


def has_tag(request):
    """Return a predicate telling whether the site has a tag of that name."""
    tags = request.app.ctx.runtime.tags
    return lambda name: tags.get(name) is not None


@bp.get("/readings")
@roles("billing")
@doc("Readings and consumption per account for a billing period",
     params={"period": param("Billing period, a calendar month in the site's time zone", required=True,
                             pattern=r"^[0-9]{4}-[0-9]{2}$", example="2026-10"),
             "format": param("json: one page; csv (1C), xlsx, gis (ГИС ЖКХ import): the whole period as a file",
                             enum=FORMATS, default="json"),
             "cursor": param("next_cursor of the previous page (json only)"),
             "limit": param("Items per page (json only)", "integer", minimum=1, maximum=pull.MAX_LIMIT,
                            default=pull.DEFAULT_LIMIT),
             "building": param("Only this building's accounts"),
             "lang": LANG,
             "decimal": param("Decimal separator in CSV (default: comma for ru, point for en)",
                              enum=["comma", "point"])},
     responses={200: json_or_file({"type": "object", "required": ["period", "items", "next_cursor"],
                                   "properties": {"period": {"type": "string"},
                                                  "items": {"type": "array", "items": ITEM},
                                                  "next_cursor": {"type": ["string", "null"]},
                                                  "complete": {"type": "boolean"}}},
                                  "text/csv", XLSX,
                                  description="One page as JSON, or the whole period as CSV (1C) or XLSX."),
                400: "a bad period, cursor, limit or format", 404: error_response("unknown building")})
async def readings(request):
    """Return one page of readings per account and meter for ``period``, or the whole period as CSV/XLSX/ГИС ЖКХ."""
    try:
        args = _args(request)
    except Refused as exc:
        return error(str(exc), exc.status)
    registry, historian, tz = runtime_parts(request)
    reader = PeriodReader(registry, historian, tz)
    period, fmt, lang = args["period"], args["format"], args["lang"]
    building = args["building"]
    if building is not None and building not in registry.buildings:
        return error(f"unknown building {building!r}", 404)
    start, end, complete = args["bounds"]
    if fmt == "json":
        items, after = await pull.page(reader, period, after=args["cursor"], limit=args["limit"], building=building)
        return json({"period": period, "from": iso_utc(start), "to": iso_utc(end), "complete": complete,
                     "items": [r.to_json(lang) for r in items],
                     "next_cursor": pull.encode_cursor(period, after) if after is not None else None})
    stem = f"billing-{period}" + (f"-{building}" if building else "")
    if fmt == "csv":
        return await _stream_csv(request, reader, period, building, lang, args["decimal"], stem)
    total = pull.count(reader, period, building)
    if total > pull.MAX_XLSX_ROWS:
        return error(f"an XLSX export holds at most {pull.MAX_XLSX_ROWS} meters; period {period} has {total}"
                     f"{' in building ' + building if building else ''}: export one building at a time "
                     "(building=) or use format=csv")
    readings_all = []
    async for chunk in _chunks(reader, period, building):
        readings_all.extend(chunk)
    if fmt == "gis":
        rows, skipped = await pull.gis_rows(reader, readings_all, period, has_tag(request), reader.tz)
        sheets = [Sheet("Показания ПУ", pull.GIS_COLUMNS, rows, (40, 12, 14, 22, 22, 14, 16, 16, 16, 12),
                        {6: "0.000", 7: "0.000", 8: "0.000"}),
                  Sheet(i18n.text("sheet_skipped", "ru"), pull.GIS_SKIPPED_COLUMNS, skipped,
                        (14, 10, 10, 22, 22, 30, 28, 80))]
        stem = f"gis-gkh-readings-{period}" + (f"-{building}" if building else "")
    else:
        rows = [pull.table_row(r, lang, reader.tz, registry.building(r.meter.building).address)
                for r in readings_all]
        sheets = [Sheet(i18n.text("sheet_billing", lang), i18n.headers(pull.COLUMNS, lang), rows,
                        (14, 10, 8, 36, 18, 16, 18, 8, 14, 20, 14, 20, 12, 16, 24, 26, 80))]
    # Building a workbook takes seconds for a big period: not on the loop the engine and the buses run on.
    content = await asyncio.get_running_loop().run_in_executor(None, xlsx_bytes, sheets)
    return HTTPResponse(content, content_type=XLSX_CONTENT_TYPE,
                        headers={"Content-Disposition": f'attachment; filename="{stem}.xlsx"'})


def _args(request) -> dict:
    """Return the checked query parameters; `Refused` naming the first bad one."""
    for key in request.args:
        if key not in PARAMS:
            raise Refused(f"unknown parameter {key!r} (use {', '.join(PARAMS)})")
    fmt = request.args.get("format", "json")
    if fmt not in FORMATS:
        raise Refused(f"format={fmt!r} is not one of {', '.join(FORMATS)}")
    args = period_args(request)
    cursor = request.args.get("cursor")
    limit = request.args.get("limit")
    if fmt != "json" and (cursor or limit):
        raise Refused(f"format={fmt} exports the whole period: it takes no cursor or limit")
    try:
        after = pull.decode_cursor(cursor, args["period"]) if cursor else None
        size = pull.parse_limit(limit)
    except ValueError as exc:
        raise Refused(str(exc)) from None
    return {**args, "format": fmt, "cursor": after, "limit": size,
            "building": request.args.get("building") or None}


async def _chunks(reader: PeriodReader, period: str, building: str | None):
    """Yield the period's readings :data:`scada.billing.pull.EXPORT_CHUNK` meters at a time, in pull order."""
    after = None
    while True:
        items, after = await pull.page(reader, period, after=after, limit=pull.EXPORT_CHUNK, building=building)
        if items:
            yield items
        if after is None:
            return
        # Let the engine (polls, alarms) run between chunks of a long export.
        await asyncio.sleep(0)


async def _stream_csv(request, reader: PeriodReader, period: str, building: str | None, lang: str,
                      decimal_comma: bool, stem: str):
    """Send the period as CSV, one chunk of meters at a time.

    The first chunk is computed before the answer starts, so that a
    history database that is down is still a 503; a failure later can only
    cut the stream short (logged).
    """
    writer = CsvWriter(decimal_comma)
    chunks = _chunks(reader, period, building)
    first = await anext(chunks, [])
    addresses = {b.id: b.address for b in reader.registry.buildings.values()}

    def text(items) -> str:
        return writer.rows(pull.table_row(r, lang, reader.tz, addresses.get(r.meter.building, "")) for r in items)

    response = await request.respond(
        content_type=CSV_CONTENT_TYPE, headers={"Content-Disposition": f'attachment; filename="{stem}.csv"'})
    await response.send((writer.header(i18n.headers(pull.COLUMNS, lang)) + text(first)).encode("utf-8"))
    try:
        async for items in chunks:
            await response.send(text(items).encode("utf-8"))
    except Exception:  # noqa: BLE001 - the answer has started: it can only be cut short
        log.exception("billing CSV export of %s cut short; closing the connection", period)
        # No end of the chunked body: the client sees a broken transfer, never a complete-looking file.
        transport = getattr(request, "transport", None)
        if transport is not None:
            transport.close()
        return None
    await response.eof()
    return None
