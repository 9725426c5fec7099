# -*- test-case-name: tests.scada.test_api_readings -*-
"""Manual (hand-read) meter readings: enter them, list them.

``POST /api/v1/readings/manual`` takes one reading object or
``{"readings": [...], "source": ...}`` (at most :data:`scada.manual.MAX_ROWS`
rows), from an operator or an engineer; every reading is attributed to the
caller (``request.ctx.user``).  The whole batch is checked first: a bad row
is a 400 ``{"error": ..., "problems": [{"row": i, "message": ...}]}`` naming
every bad row, and nothing is written.  ``source`` is ``api`` (the default)
or ``import:<file name>`` (what ``scada import readings`` sends).

``GET /api/v1/readings/manual?tag=&from=&to=`` lists stored readings with
who entered them, when and from where; every role that reads metering data
(billing included) may.
"""

from __future__ import annotations

import logging
import sqlite3

from sanic import Blueprint
from sanic.response import json

from scada.api.auth import DATA, roles
from scada.api.common import error, json_body
from scada.api.openapi import TIME_TO, component, doc, param
from scada.auth import MANUAL
from scada.manual import FUTURE_SLACK_S, MAX_ROWS, ManualError, build_manual, check_source
from scada.store import StoreError
from tags.timefmt import iso_utc

log = logging.getLogger(__name__)
bp = Blueprint("api_v1_readings", url_prefix="/api/v1/readings")

#: One list request returns at most this many readings.
MAX_LIST = 100_000
#: What a list covers when ``from`` is not given: a year of hand readings.
LIST_SPAN_S = 366 * 86400
_BODY = '{"tag" or "serial": ..., "ts": ..., "value": ...} or {"readings": [...]}'

READING = component("ManualReadingIn", {
    "type": "object",
    "description": "One hand reading: the meter by tag or by serial number (one of them), its time and value.",
    "required": ["ts", "value"],
    "properties": {"tag": {"type": "string", "description": "<device>.<point>"},
                   "serial": {"type": "string", "description": "the meter's serial number"},
                   "ts": {"type": ["string", "number"],
                          "description": "ISO 8601 time with an offset (e.g. 2026-11-20T10:00:00+03:00), "
                                         "or Unix seconds"},
                   "value": {"type": "number", "description": "the register's reading"},
                   "replacement": {"type": "boolean", "description": "the meter was replaced: a lower value is "
                                                                     "no error"},
                   "comment": {"type": "string", "maxLength": 500}}})
_SOURCE = {"type": "string", "description": '"api" (default) or "import:<file name>"'}


def _manual(request):
    """Return the runtime's manual readings (built here if the runtime was made without them)."""
    runtime = request.app.ctx.runtime
    manual = getattr(runtime, "manual", None)
    if manual is None:
        # A runtime built by a test or an older app.py: same wiring, on first use.
        manual = runtime.manual = build_manual(runtime)
    return manual


def _user(request) -> str:
    user = getattr(request.ctx, "user", None)
    return getattr(user, "name", None) or "anonymous"


def _batch(body: dict) -> tuple[list, str]:
    """Return ``(readings, source)`` from a request body; raise ValueError saying what is wrong."""
    if "readings" in body:
        extra = [key for key in body if key not in ("readings", "source")]
        if extra:
            raise ValueError(f"unknown key {extra[0]!r} next to \"readings\" (only \"source\" may go with it)")
        readings = body["readings"]
        if not isinstance(readings, list):
            raise ValueError('"readings" must be an array of reading objects')
    else:
        reading = dict(body)
        source = reading.pop("source", "api")
        return [reading], check_source(source)
    if len(readings) > MAX_ROWS:
        raise ValueError(f"{len(readings)} readings in one request; at most {MAX_ROWS}: split them")
    if not readings:
        raise ValueError('"readings" is empty')
    return readings, check_source(body.get("source", "api"))


@bp.post("/manual")
@roles(MANUAL)
@doc(body={"oneOf": [{"allOf": [READING, {"type": "object", "properties": {"source": _SOURCE}}]},
                     {"type": "object", "required": ["readings"],
                      "properties": {"readings": {"type": "array", "items": READING, "minItems": 1,
                                                  "maxItems": MAX_ROWS},
                                     "source": _SOURCE}}]},
     responses={200: {"type": "object", "required": ["accepted", "duplicates", "results"],
                      "properties": {"accepted": {"type": "integer"}, "duplicates": {"type": "integer"},
                                     "results": {"type": "array", "items": {"type": "object"}}}},
                400: ("Bad rows: every one named, nothing stored.", {
                    "type": "object", "required": ["error"],
                    "properties": {"error": {"type": "string"},
                                   "problems": {"type": "array", "items": {
                                       "type": "object", "properties": {"row": {"type": ["integer", "null"]},
                                                                        "message": {"type": "string"}}}}}}),
                503: "the store cannot take the readings now; nothing was stored"})
async def enter(request):
    """Check and store manual readings (quality ``manual``); answer what became of each."""
    try:
        body = json_body(request, _BODY, required=True)
        readings, source = _batch(body)
    except ValueError as exc:
        return error(str(exc))
    user = _user(request)
    try:
        results = _manual(request).submit(readings, user, source)
    except ManualError as exc:
        return json({"error": str(exc), "problems": [{"row": p.row, "message": p.message} for p in exc.problems]},
                    status=400)
    except (sqlite3.Error, StoreError) as exc:
        log.error("cannot store manual readings from %s: %s", user, exc)
        return error(f"the store cannot take the readings now: {exc}; nothing was stored, send them again", 503)
    accepted = sum(1 for r in results if r["status"] == "accepted")
    if accepted:
        log.info("%s entered %d manual readings (%s)", user, accepted, source)
    return json({"accepted": accepted, "duplicates": len(results) - accepted, "results": results})


@bp.get("/manual")
@roles(DATA)
@doc(params={"tag": param("Only this tag's readings", example="b2-kv07-cold.volume_m3"),
             "from": param("Start, ISO 8601; default a year before `to`", format="date-time"), "to": TIME_TO},
     responses={200: {"type": "object", "required": ["from", "to", "readings"],
                      "properties": {"from": {"type": "string", "format": "date-time"},
                                     "to": {"type": "string", "format": "date-time"},
                                     "readings": {"type": "array", "items": {"type": "object"}}}},
                400: "a bad time or parameter; too many readings", 404: "an unknown tag"})
async def listing(request):
    """List stored manual readings between ``from`` and ``to`` (default: the last year), of one ``tag`` if given."""
    from scada.api.v1 import BadRequest, _range_args

    for key in request.args:
        if key not in ("tag", "from", "to"):
            return error(f"unknown parameter {key!r} (use tag, from, to)")
    runtime = request.app.ctx.runtime
    manual = _manual(request)
    try:
        start, end = _range_args(request, runtime.reactor.seconds() + FUTURE_SLACK_S + 1, LIST_SPAN_S)
    except BadRequest as exc:
        return error(str(exc))
    tag = request.args.get("tag") or None
    found = runtime.store.manual_readings(tag, start, end, MAX_LIST + 1)
    if tag is not None and not found and manual.register(tag) is None:
        return error(f"unknown tag {tag!r}", 404)
    if len(found) > MAX_LIST:
        return error(f"more than {MAX_LIST} manual readings between {iso_utc(start)} and {iso_utc(end)}; "
                     "narrow from/to")
    return json({"from": iso_utc(start), "to": iso_utc(end), "readings": [
        {"id": r.id, "tag": r.tag, "ts": iso_utc(r.ts), "value": r.value, "serial": r.serial,
         "replacement": r.replacement, "comment": r.comment, "user": r.user, "source": r.source,
         "entered": iso_utc(r.entered) if r.entered is not None else None} for r in found]})
