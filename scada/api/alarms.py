# -*- test-case-name: tests.scada.test_api_alarms -*-
"""Alarm API: the list, one alarm, the journal (JSON, CSV, XLSX) and operator actions.

Every action is attributed to the authenticated user (``request.ctx.user``)
and lands in the alarm journal through the engine.  Errors are JSON
``{"error": ...}``: 404 for an unknown alarm, 409 for an action the alarm's
state does not allow (acknowledging an alarm that waits for nothing), 400 for
a bad body.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import re

from sanic import Blueprint
from sanic.response import HTTPResponse, json

from alarms.engine import AlarmConflict, UnknownAlarm
from scada.api.auth import ACT, ENGINEERING, READ, roles
from scada.api.common import check_text, error, json_body, lang, text_field
from scada.api.openapi import LANG, TIME_TO, XLSX, component, doc, json_or_file, param
from scada.reports.export import Sheet, csv_cell, xlsx_bytes
from tags.timefmt import iso_utc

log = logging.getLogger(__name__)
bp = Blueprint("api_v1_alarms", url_prefix="/api/v1/alarms")

STATES = ("active", "unacked", "shelved", "suppressed", "out_of_service", "normal", "all")
#: One journal request returns at most this many entries.
MAX_JOURNAL = 100_000
#: What an `event=` filter of the journal may look like (the kinds of :class:`alarms.model.JournalEntry`).
_EVENT_NAME = re.compile(r"[a-z_]{1,40}")
JOURNAL_SPAN_S = 7 * 86400
MAX_COMMENT = 2000
MAX_BULK = 1000
#: One XLSX export holds at most this many entries (building it takes ~0.15 s per thousand).
MAX_XLSX = 50_000
#: A refused bulk ack names at most this many of its alarms in the journal.
MAX_DENIED_IDS = 20

#: Journal columns: key, Russian header, English header.
COLUMNS = (
    ("ts", "Время (UTC)", "Time (UTC)"),
    ("alarm_id", "Тревога", "Alarm"),
    ("event", "Событие", "Event"),
    ("state_from", "Было", "From state"),
    ("state_to", "Стало", "To state"),
    ("user", "Пользователь", "User"),
    ("comment", "Комментарий", "Comment"),
    ("priority", "Приоритет", "Priority"),
    ("tag", "Тег", "Tag"),
    ("value", "Значение", "Value"),
    ("message", "Сообщение", "Message"),
)


_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_TEXT_OR_NULL = {"type": ["string", "null"]}
ALARM = component("Alarm", {
    "type": "object",
    "description": "One alarm (ISA-18.2): its state, what raised it, who acknowledged, shelved or commented it.",
    "required": ["id", "rule", "kind", "state", "active", "priority", "message"],
    "properties": {
        "id": {"type": "string"}, "rule": {"type": "string"}, "kind": {"type": "string"}, "tag": _TEXT_OR_NULL,
        "device": _TEXT_OR_NULL, "level": _TEXT_OR_NULL, "priority": {"type": "string"},
        "state": {"type": "string"}, "active": {"type": "boolean"}, "active_since": _TIME_OR_NULL,
        "value": {"type": ["number", "string", "null"]}, "limit": {"type": ["number", "string", "null"]},
        "message": {"type": "string"}, "acked_by": _TEXT_OR_NULL, "acked_at": _TIME_OR_NULL,
        "count": {"type": "integer"}, "shelved_until": _TIME_OR_NULL, "shelved_by": _TEXT_OR_NULL,
        "shelve_reason": _TEXT_OR_NULL, "suppressed_by": _TEXT_OR_NULL, "out_of_service": {"type": "boolean"},
        "out_of_service_by": _TEXT_OR_NULL, "out_of_service_reason": _TEXT_OR_NULL,
        "comments": {"type": "array", "items": {"type": "object"}}}})
_ONE_ALARM = {"type": "object", "required": ["alarm"], "properties": {"alarm": ALARM}}
_ALARM_ID = param("Alarm id, as the list shows it (e.g. b1-supply:b1-heat.t_supply_c:hi)", location="path",
                  example="b1-supply:b1-heat.t_supply_c:hi")
_COMMENT = {"type": "string", "maxLength": MAX_COMMENT}
#: What every action on one alarm answers besides 200.
_ACTION_ERRORS = {400: "a bad body", 404: "no alarm of that id", 409: "the alarm's state does not allow it"}


def _engine(request):
    return request.app.ctx.runtime.alarms


def _user(request) -> str:
    user = getattr(request.ctx, "user", None)
    return getattr(user, "name", None) or "anonymous"


def _text(body: dict, key: str, required: bool = False) -> str:
    return text_field(body, key, required, MAX_COMMENT)


async def _act(request, alarm_id: str, action):
    """Run ``action(engine, body, user)`` and answer the alarm, or the error it raised."""
    try:
        body = json_body(request)
        alarm = action(_engine(request), body, _user(request))
    except UnknownAlarm:
        return error(f"unknown alarm {alarm_id!r}", 404)
    except AlarmConflict as exc:
        return error(str(exc), 409)
    except ValueError as exc:
        return error(str(exc))
    return json({"alarm": alarm.to_json(lang(request))})


def _known(engine, alarm_id: str) -> bool:
    try:
        engine.get(alarm_id)
    except UnknownAlarm:
        return False
    return True


def _denied_bulk_ids(request, engine) -> list[str]:
    """Return the alarms a refused bulk ack named that exist, each once, in order ([] for a bad body)."""
    try:
        ids = json_body(request).get("ids")
    except ValueError:
        return []
    if not isinstance(ids, list) or len(ids) > MAX_BULK:
        return []
    return [i for i in dict.fromkeys(i for i in ids if isinstance(i, str)) if _known(engine, i)]


@bp.on_response
async def record_denied(request, response):
    """Put an alarm action refused for the caller's role on record (who tried what, on which alarm).

    Only actions on alarms that exist are recorded: a caller cannot fill
    the journal with ids of its own invention.  A refused bulk ack is one
    entry naming (up to :data:`MAX_DENIED_IDS` of) the existing alarms it
    named.
    """
    if response.status != 403 or request.method != "POST":
        return
    user = getattr(request.ctx, "user", None)
    if user is None:
        return
    from alarms.model import JournalEntry

    rt = request.app.ctx.runtime
    engine = _engine(request)
    action = request.path.rstrip("/").rsplit("/", 1)[-1]
    comment = f"{action} refused: role {user.role!r} may not do it"
    alarm_id = (request.match_info or {}).get("alarm_id")
    if alarm_id is not None:
        if not _known(engine, alarm_id):
            return
    else:
        ids = _denied_bulk_ids(request, engine)
        if not ids:
            return
        alarm_id = ""
        more = len(ids) - MAX_DENIED_IDS
        comment += f" (alarms: {', '.join(ids[:MAX_DENIED_IDS])}{f' and {more} more' if more > 0 else ''})"
    try:
        rt.store.record(JournalEntry(ts=rt.reactor.seconds(), alarm_id=alarm_id, event="denied", user=user.name,
                                     comment=comment))
    except Exception:  # noqa: BLE001 - the refusal stands whether or not it could be put on record
        log.exception("cannot journal a refused %s by %s", action, user.name)


@bp.get("")
@roles(*READ)
@doc(params={"state": param("State group", enum=STATES, default="active"), "lang": LANG},
     responses={200: {"type": "object", "required": ["alarms", "flood", "summary"],
                      "properties": {"alarms": {"type": "array", "items": ALARM},
                                     "flood": {"description": "the flood alarm, or null"},
                                     "summary": {"type": "object"}}},
                400: "an unknown state"})
async def list_alarms(request):
    """List alarms in a state group: active (default), unacked, shelved, suppressed, out_of_service, all."""
    state = request.args.get("state", "active")
    if state not in STATES:
        return error(f"state={state!r} is not one of {', '.join(STATES)}")
    engine = _engine(request)
    language = lang(request)
    return json({"alarms": [a.to_json(language) for a in engine.alarms(state)], "flood": engine.flood,
                 "summary": engine.summary()})


@bp.get("/journal")
@roles(*READ)
@doc(params={"from": param("Start, ISO 8601; default a week before `to`", format="date-time"), "to": TIME_TO,
             "format": param("Answer format", enum=("json", "csv", "xlsx"), default="json"),
             "alarm": param("Only this alarm's entries"),
             "event": param("Only entries of this event kind: raise, clear, ack, shelve, unshelve, comment, "
                            "suppress, unsuppress, out_of_service, in_service, flood_on, flood_off, notify, ..."),
             "lang": LANG},
     responses={200: json_or_file({"type": "object", "required": ["from", "to", "entries"],
                                   "properties": {"from": {"type": "string", "format": "date-time"},
                                                  "to": {"type": "string", "format": "date-time"},
                                                  "entries": {"type": "array", "items": {"type": "object"}}}},
                                  "text/csv", XLSX, description="The entries, oldest first: JSON, CSV or XLSX."),
                400: "a bad time, format or parameter; too many entries"})
async def journal(request):
    """Return journal entries between ``from`` and ``to`` (default: the last week) as JSON, CSV or XLSX.

    CSV text that a spreadsheet would take for a formula (starting with
    ``= + - @``, tab or CR) gets a leading ``'``; XLSX keeps such text as
    text cells and holds at most :data:`MAX_XLSX` entries.
    """
    from scada.api.v1 import BadRequest, _range_args

    for key in request.args:
        if key not in ("from", "to", "format", "alarm", "event", "lang"):
            return error(f"unknown parameter {key!r} (use from, to, format, alarm, event, lang)")
    event = request.args.get("event") or None
    if event is not None and not _EVENT_NAME.fullmatch(event):
        return error(f"event={event!r} is not an event kind (e.g. raise, clear, ack, shelve, comment)")
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "csv", "xlsx"):
        return error(f"format={fmt!r} is not one of json, csv, xlsx")
    rt = request.app.ctx.runtime
    try:
        start, end = _range_args(request, rt.reactor.seconds(), JOURNAL_SPAN_S)
    except BadRequest as exc:
        return error(str(exc))
    entries = rt.store.query(start, end, MAX_JOURNAL + 1, alarm_id=request.args.get("alarm") or None, event=event)
    if len(entries) > MAX_JOURNAL:
        return error(f"more than {MAX_JOURNAL} journal entries between {iso_utc(start)} and {iso_utc(end)}; "
                     "narrow from/to")
    if fmt == "xlsx" and len(entries) > MAX_XLSX:
        return error(f"an XLSX export holds at most {MAX_XLSX} journal entries; there are {len(entries)} between "
                     f"{iso_utc(start)} and {iso_utc(end)}: narrow from/to, or use format=csv")
    rows = []
    for entry in entries:
        row = entry.to_json()
        row["ts"] = iso_utc(entry.ts)
        rows.append(row)
    if fmt == "json":
        return json({"from": iso_utc(start), "to": iso_utc(end), "entries": rows})
    language = lang(request)
    headers = [ru if language == "ru" else en for _, ru, en in COLUMNS]
    table = [[row[key] if row[key] is not None else "" for key, _, _ in COLUMNS] for row in rows]
    stem = f"alarm-journal-{iso_utc(start)[:10]}-{iso_utc(end)[:10]}"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
        writer.writerow(headers)
        writer.writerows([_csv_cell(value) for value in row] for row in table)
        # UTF-8 with BOM: Excel on a Russian Windows opens it with the right letters.
        return HTTPResponse(("\ufeff" + out.getvalue()).encode("utf-8"), content_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{stem}.csv"'})
    # Building a workbook takes seconds for a big journal: not on the loop the engine and the buses run on.
    content = await asyncio.get_running_loop().run_in_executor(None, _xlsx, headers, table, language)
    return HTTPResponse(content, content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": f'attachment; filename="{stem}.xlsx"'})


def _csv_cell(value):
    """Return a CSV cell's value, formula-safe (`scada.reports.export.csv_cell`)."""
    return csv_cell(value)


def _xlsx(headers: list[str], table: list[list], language: str) -> bytes:
    """Return the journal as an XLSX workbook (`scada.reports.export.xlsx_bytes`)."""
    return xlsx_bytes([Sheet("Журнал тревог" if language == "ru" else "Alarm journal", headers, table,
                             (25, 40, 14, 16, 16, 16, 40, 10, 28, 12, 60))])


@bp.post("/ack")
@roles(*ACT)
@doc(body={"type": "object", "required": ["ids"],
           "properties": {"ids": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": MAX_BULK},
                          "comment": _COMMENT}},
     responses={200: {"type": "object", "required": ["acked", "errors"],
                      "properties": {"acked": {"type": "array", "items": {"type": "string"}},
                                     "errors": {"type": "object", "additionalProperties": {"type": "string"},
                                                "description": "why each alarm not acknowledged was not"}}},
                400: "a bad body"})
async def ack_many(request):
    """Acknowledge several alarms: ``{"ids": [...], "comment": "..."}``; answers what was acked and why not."""
    try:
        body = json_body(request)
        ids = body.get("ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise ValueError("'ids' must be a non-empty list of alarm ids (strings)")
        if len(ids) > MAX_BULK:
            raise ValueError(f"at most {MAX_BULK} ids per request, got {len(ids)}")
        for ident in ids:
            check_text(ident, "ids")
        comment = _text(body, "comment")
    except ValueError as exc:
        return error(str(exc))
    return json(_engine(request).ack_many(ids, _user(request), comment))


@bp.get("/<alarm_id:str>")
@roles(*READ)
@doc(params={"alarm_id": _ALARM_ID, "lang": LANG}, responses={200: _ONE_ALARM, 404: "no alarm of that id"})
async def one_alarm(request, alarm_id: str):
    """Return one alarm (its journal: GET /alarms/journal?alarm=ID)."""
    try:
        alarm = _engine(request).get(alarm_id)
    except UnknownAlarm:
        return error(f"unknown alarm {alarm_id!r}", 404)
    return json({"alarm": alarm.to_json(lang(request))})


@bp.post("/<alarm_id:str>/ack")
@roles(*ACT)
@doc(params={"alarm_id": _ALARM_ID}, body={"type": "object", "properties": {"comment": _COMMENT}},
     body_required=False, responses={200: _ONE_ALARM, **_ACTION_ERRORS})
async def ack(request, alarm_id: str):
    """Acknowledge one alarm, with an optional ``comment``."""
    return await _act(request, alarm_id, lambda e, b, u: e.ack(alarm_id, u, _text(b, "comment")))


def _minutes(body: dict, max_seconds: float) -> float:
    minutes = body.get("minutes")
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not 0 < minutes < 1e9:
        raise ValueError(f"'minutes' must be a positive number, got {minutes!r}")
    # Too long a shelving is a bad body (400), not a conflict with the alarm's state (409).
    if minutes * 60.0 > max_seconds:
        raise ValueError(f"'minutes' may be at most {max_seconds / 60:g} (alarm_settings.max_shelve), "
                         f"got {minutes!r}")
    return float(minutes)


@bp.post("/<alarm_id:str>/shelve")
@roles(*ACT)
@doc(params={"alarm_id": _ALARM_ID},
     body={"type": "object", "required": ["minutes", "reason"],
           "properties": {"minutes": {"type": "number", "exclusiveMinimum": 0,
                                      "description": "at most alarm_settings.max_shelve"},
                          "reason": {**_COMMENT, "minLength": 1}}},
     responses={200: _ONE_ALARM, **_ACTION_ERRORS})
async def shelve(request, alarm_id: str):
    """Shelve an alarm for ``minutes`` with a ``reason``; it comes back by itself when the time is up."""
    max_seconds = request.app.ctx.runtime.cfg.alarm_settings.max_shelve
    return await _act(request, alarm_id, lambda e, b, u: e.shelve(
        alarm_id, u, _minutes(b, max_seconds), _text(b, "reason", required=True)))


@bp.post("/<alarm_id:str>/unshelve")
@roles(*ACT)
@doc(params={"alarm_id": _ALARM_ID}, body={"type": "object", "properties": {"comment": _COMMENT}},
     body_required=False, responses={200: _ONE_ALARM, **_ACTION_ERRORS})
async def unshelve(request, alarm_id: str):
    """Return a shelved alarm to service before its time."""
    return await _act(request, alarm_id, lambda e, b, u: e.unshelve(alarm_id, u, _text(b, "comment")))


@bp.post("/<alarm_id:str>/comment")
@roles(*ACT)
@doc(params={"alarm_id": _ALARM_ID},
     body={"type": "object", "required": ["comment"],
           "properties": {"comment": {**_COMMENT, "minLength": 1}, "text": {**_COMMENT, "description": "the same"}}},
     responses={200: _ONE_ALARM, **_ACTION_ERRORS})
async def comment(request, alarm_id: str):
    """Add a ``comment`` to an alarm's record (``text`` is accepted too)."""

    def action(e, b, u):
        text = _text(b, "comment") or _text(b, "text")
        if not text:
            raise ValueError("'comment' is required")
        return e.comment(alarm_id, u, text)

    return await _act(request, alarm_id, action)


@bp.post("/<alarm_id:str>/out_of_service")
@roles(*ENGINEERING)
@doc(params={"alarm_id": _ALARM_ID},
     body={"type": "object", "required": ["reason"], "properties": {"reason": {**_COMMENT, "minLength": 1}}},
     responses={200: _ONE_ALARM, **_ACTION_ERRORS})
async def out_of_service(request, alarm_id: str):
    """Take an alarm out of service (``{"reason": ...}``), e.g. a meter being replaced."""
    return await _act(request, alarm_id,
                      lambda e, b, u: e.set_in_service(alarm_id, u, False, _text(b, "reason", required=True)))


@bp.post("/<alarm_id:str>/in_service")
@roles(*ENGINEERING)
@doc(params={"alarm_id": _ALARM_ID}, body={"type": "object", "properties": {"comment": _COMMENT}},
     body_required=False, responses={200: _ONE_ALARM, **_ACTION_ERRORS})
async def in_service(request, alarm_id: str):
    """Return an out-of-service alarm to service."""
    return await _act(request, alarm_id,
                      lambda e, b, u: e.set_in_service(alarm_id, u, True, _text(b, "comment")))
