# -*- test-case-name: tests.scada.test_api_reports -*-
"""Reports: ``GET /api/v1/reports/{kind}?building=&period=YYYY-MM[&format=json|csv|xlsx][&lang=ru|en]``.

``kind`` is ``ipu`` (apartment meters), ``odpu`` (building meters) or
``balance`` (ОДПУ against ΣИПУ; also ``interval=hour|day|month``, default
``day``); see :mod:`scada.reports`.  JSON by default; ``format=csv`` (UTF-8
with BOM, ``;``, decimal comma in Russian, as the billing CSV) and
``format=xlsx`` (openpyxl) with Russian headers, English with ``lang=en``.
An unknown kind or building is a 404, a missing or bad period, format or
interval a 400, each naming the value.  Every role that reads metering
data (``DATA``: viewer, operator, crew, engineer, billing, admin) may read
reports: they show the same figures as the tags' history and the billing
pull.
"""

from __future__ import annotations

import asyncio

from sanic import Blueprint
from sanic.response import HTTPResponse, json

from scada.api.auth import DATA, roles
from scada.api.billing import Refused, has_tag, period_args, runtime_parts
from scada.api.common import error
from scada.api.openapi import LANG, XLSX, doc, error_response, json_or_file, param
from scada.billing.readings import PeriodReader
from scada.reports import KINDS, balance, i18n, ipu, odpu
from scada.reports.export import CSV_CONTENT_TYPE, XLSX_CONTENT_TYPE, Sheet, csv_bytes, xlsx_bytes
from tags.timefmt import iso_utc

bp = Blueprint("api_v1_reports", url_prefix="/api/v1/reports")

FORMATS = ("json", "csv", "xlsx")
PARAMS = ("building", "period", "format", "lang", "interval", "decimal")
#: Per kind: the module, its columns, widths and sheet title key.
_TABLES = {"ipu": (ipu, "sheet_ipu"), "odpu": (odpu, "sheet_odpu"), "balance": (balance, "sheet_balance")}


@bp.get("/<kind:str>")
@roles(DATA)
@doc("A building's report for a billing period: ipu, odpu or balance",
     params={"kind": param("Report kind", enum=KINDS, location="path"),
             "building": param("Building id (registry)", required=True, example="b1"),
             "period": param("Billing period, a calendar month in the site's time zone", required=True,
                             pattern=r"^[0-9]{4}-[0-9]{2}$", example="2026-10"),
             "format": param("Answer format", enum=FORMATS, default="json"),
             "interval": param("Balance interval (balance only)", enum=balance.INTERVALS, default="day"),
             "decimal": param("Decimal separator in CSV (default: comma for ru, point for en)",
                              enum=["comma", "point"]),
             "lang": LANG},
     responses={200: json_or_file({"type": "object", "required": ["kind", "building", "period"]}, "text/csv", XLSX,
                                  description="The report as JSON, CSV or XLSX."),
                400: "a bad period, format or interval", 404: error_response("unknown kind or building")})
async def report(request, kind: str):
    """Return the ``kind`` report of ``building`` for ``period`` as JSON, CSV or XLSX."""
    if kind not in KINDS:
        return error(f"unknown report {kind!r}; reports: {', '.join(KINDS)}", 404)
    try:
        args = _args(request, kind)
    except Refused as exc:
        return error(str(exc), exc.status)
    registry, historian, tz = runtime_parts(request)
    building, period, lang = args["building"], args["period"], args["lang"]
    if building not in registry.buildings:
        return error(f"unknown building {building!r}", 404)
    reader = PeriodReader(registry, historian, tz)
    if kind == "ipu":
        body = await ipu.ipu_report(reader, building, period, lang)
    elif kind == "odpu":
        body = await odpu.odpu_report(reader, building, period, has_tag(request), lang)
    else:
        body = await balance.balance_report(reader, building, period, args["interval"])
    start, end, complete = args["bounds"]
    head = {"kind": kind, "building": building, "address": registry.building(building).address,
            "period": period, "from": iso_utc(start), "to": iso_utc(end), "complete": complete}
    if args["format"] == "json":
        return json({**head, **body})
    module, title = _TABLES[kind]
    rows = module.rows(body, lang, reader.tz)
    headers = i18n.headers(module.COLUMNS, lang)
    stem = f"{kind}-{building}-{period}" + (f"-{args['interval']}" if kind == "balance" else "")
    if args["format"] == "csv":
        return HTTPResponse(csv_bytes(headers, rows, args["decimal"]), content_type=CSV_CONTENT_TYPE,
                            headers={"Content-Disposition": f'attachment; filename="{stem}.csv"'})
    sheet = Sheet(i18n.text(title, lang), headers, rows, module.WIDTHS)
    content = await asyncio.get_running_loop().run_in_executor(None, xlsx_bytes, [sheet])
    return HTTPResponse(content, content_type=XLSX_CONTENT_TYPE,
                        headers={"Content-Disposition": f'attachment; filename="{stem}.xlsx"'})


def _args(request, kind: str) -> dict:
    """Return the checked query parameters; `Refused` naming the first bad one."""
    for key in request.args:
        if key not in PARAMS or (key == "interval" and kind != "balance"):
            allowed = [p for p in PARAMS if p != "interval" or kind == "balance"]
            raise Refused(f"unknown parameter {key!r} for the {kind} report (use {', '.join(allowed)})")
    fmt = request.args.get("format", "json")
    if fmt not in FORMATS:
        raise Refused(f"format={fmt!r} is not one of {', '.join(FORMATS)}")
    interval = request.args.get("interval", "day")
    if interval not in balance.INTERVALS:
        raise Refused(f"interval={interval!r} is not one of {', '.join(balance.INTERVALS)}")
    building = request.args.get("building")
    if not building:
        raise Refused("building is required: ?building=<building id>")
    return {**period_args(request), "building": building, "format": fmt, "interval": interval}
