# -*- test-case-name: tests.scada.test_api_registry -*-
"""The meter registry over HTTP: buildings, premises, meters, the verification due list, lifecycle events.

- ``GET /api/v1/registry/buildings``: every building, summarised.
- ``GET /api/v1/registry/buildings/{id}``: one building with its norms,
  premises, meters (effective state) and balance groups.
- ``GET /api/v1/registry/meters?due_before=YYYY-MM-DD&building=&resource=&role=``:
  meters, in configuration order; with ``due_before`` only those in service
  whose verification runs out before that date (overdue ones too), soonest first.
- ``GET /api/v1/registry/meters/{id}``: one meter with its events;
  ``GET .../meters/{id}/events``: its events.
- ``POST /api/v1/registry/meters/{id}/events`` ``{"kind", "at"?, "comment"?, ...data}``:
  record a lifecycle event (crew, engineer); 201 with the event and the
  meter's new state.  The event's fields are in :data:`scada.registry.EVENT_FIELDS`.

Reads are open to every role that reads metering data (billing included).
Dates are ``YYYY-MM-DD``; times ISO 8601 UTC.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import date
from typing import Any

from sanic import Blueprint
from sanic.response import json

from scada.api.auth import DATA, roles
from scada.api.common import error, json_body
from scada.api.openapi import component, doc, param
from scada.registry import EVENT_FIELDS, EVENT_KINDS, RESOURCES, ROLES, Building, Meter, Registry, RegistryService
from scada.store import StoreError
from tags.timefmt import iso_utc

log = logging.getLogger(__name__)
bp = Blueprint("api_v1_registry", url_prefix="/api/v1/registry")

#: Who may record lifecycle events (admin is always added).
EVENT_ROLES = ("crew", "engineer")
_METER_QUERY = ("due_before", "building", "resource", "role")

_DATE = {"type": ["string", "null"], "format": "date"}
METER = component("RegistryMeter", {
    "type": "object",
    "description": "A meter in its effective state (configured, changed by its lifecycle events).",
    "required": ["id", "building", "serial", "resource", "role", "tag", "unit"],
    "properties": {
        "id": {"type": "string"}, "building": {"type": "string"}, "premises": {"type": ["string", "null"]},
        "account": {"type": ["string", "null"]}, "serial": {"type": "string"}, "model": {"type": "string"},
        "resource": {"enum": list(RESOURCES)}, "role": {"enum": list(ROLES)}, "tag": {"type": "string"},
        "unit": {"type": "string"}, "installed": _DATE, "verified": _DATE, "next_verification": _DATE,
        "verification_expired": {"type": "boolean"}, "decommissioned": _DATE, "in_service": {"type": "boolean"},
        "seal": {"type": ["string", "null"]}, "balance": {"type": "boolean"},
        "t_supply_tag": {"type": ["string", "null"]}, "t_return_tag": {"type": ["string", "null"]},
        "power_tag": {"type": ["string", "null"]}, "flow_tag": {"type": ["string", "null"]},
        "description": {"type": "string"}}})
EVENT = component("RegistryMeterEvent", {
    "type": "object",
    "required": ["id", "meter", "kind", "at", "recorded", "user", "comment", "data"],
    "properties": {"id": {"type": "integer"}, "meter": {"type": "string"}, "kind": {"enum": list(EVENT_KINDS)},
                   "at": {"type": "string", "format": "date-time"},
                   "recorded": {"type": "string", "format": "date-time"}, "user": {"type": "string"},
                   "comment": {"type": "string"}, "data": {"type": "object"}}})
_BUILDING_SUMMARY = {
    "type": "object", "required": ["id", "address", "premises", "meters", "resources"],
    "properties": {"id": {"type": "string"}, "address": {"type": "string"}, "fias": {"type": ["string", "null"]},
                   "coordinates": {"type": ["array", "null"], "items": {"type": "number"}},
                   "weather_tag": {"type": ["string", "null"]}, "premises": {"type": "integer"},
                   "meters": {"type": "integer"}, "resources": {"type": "array", "items": {"type": "string"}}}}
_EVENT_BODY = {
    "type": "object", "required": ["kind"],
    "description": "The event's own fields go next to kind/at/comment: " + "; ".join(
        f"{kind}: " + (", ".join(f"{name}{'' if required else '?'} ({kind_of})"
                                 for name, (kind_of, required) in fields.items()) or "none")
        for kind, fields in EVENT_FIELDS.items()),
    "properties": {"kind": {"enum": list(EVENT_KINDS)},
                   "at": {"type": "string", "description": "ISO 8601 with an offset, or a date (site time); "
                                                           "default now"},
                   "comment": {"type": "string", "maxLength": 1000}},
    "additionalProperties": True}


def _service(request) -> RegistryService:
    """Return the runtime's registry service (built here for a runtime made without one)."""
    runtime = request.app.ctx.runtime
    service = getattr(runtime, "registry", None)
    if service is None:
        service = runtime.registry = RegistryService.from_config(runtime.cfg, runtime.store, runtime.reactor.seconds)
    return service


def _today(request, registry: Registry) -> date:
    return registry.today(request.app.ctx.runtime.reactor.seconds())


def _iso_date(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def meter_json(meter: Meter, registry: Registry, today: date) -> dict[str, Any]:
    """Return a meter as the API shows it (``verification_expired`` and ``in_service`` as of ``today``)."""
    premises = registry.premises_of(meter)
    return {
        "id": meter.id, "building": meter.building, "premises": meter.premises,
        "account": premises.account if premises is not None else None,
        "serial": meter.serial, "model": meter.model, "resource": meter.resource, "role": meter.role,
        "tag": meter.tag, "unit": meter.unit, "installed": _iso_date(meter.installed),
        "verified": _iso_date(meter.verified), "next_verification": _iso_date(meter.next_verification),
        "verification_expired": meter.verification_expired(today),
        "decommissioned": _iso_date(meter.decommissioned), "in_service": meter.in_service(today),
        "seal": meter.seal, "balance": meter.balance, "t_supply_tag": meter.t_supply_tag,
        "t_return_tag": meter.t_return_tag, "power_tag": meter.power_tag, "flow_tag": meter.flow_tag,
        "description": meter.description}


def event_json(event) -> dict[str, Any]:
    """Return a lifecycle event as the API shows it."""
    return {"id": event.id, "meter": event.meter, "kind": event.kind, "at": iso_utc(event.at),
            "recorded": iso_utc(event.recorded), "user": event.user, "comment": event.comment,
            "data": dict(event.data)}


def _summary(building: Building) -> dict[str, Any]:
    return {"id": building.id, "address": building.address, "fias": building.fias,
            "coordinates": list(building.coordinates) if building.coordinates else None,
            "weather_tag": building.weather_tag, "premises": len(building.premises),
            "meters": len(building.meters), "resources": building.resources}


def _not_found(what: str, name: str, known) -> Any:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    return error(f"unknown {what} {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""), 404)


@bp.get("/buildings")
@roles(DATA)
@doc("Buildings of the registry, summarised",
     responses={200: {"type": "object", "required": ["items"],
                      "properties": {"items": {"type": "array", "items": _BUILDING_SUMMARY}}}})
async def buildings(request):
    """List every building: address, FIAS GUID, coordinates, weather tag, how many premises and meters, resources."""
    registry = _service(request).current()
    return json({"items": [_summary(b) for b in registry.buildings.values()]})


@bp.get("/buildings/<building_id:str>")
@roles(DATA)
@doc("One building with its norms, premises, meters and balance groups",
     responses={200: {"type": "object", "required": ["id", "address", "norms", "premises", "meters",
                                                     "balance_groups"]},
                404: "no building of that id"})
async def building(request, building_id: str):
    """Return one building: norms per resource, premises with their meters, every meter, balance groups."""
    registry = _service(request).current()
    try:
        found = registry.building(building_id)
    except KeyError:
        return _not_found("building", building_id, registry.buildings)
    today = _today(request, registry)
    by_premises: dict[str, list[str]] = {}
    for meter in found.meters:
        if meter.premises is not None:
            by_premises.setdefault(meter.premises, []).append(meter.id)
    body = _summary(found)
    body.update({
        "norms": {resource: {"per_person": n.per_person, "per_m2": n.per_m2, "unit": n.unit}
                  for resource, n in found.norms.items()},
        "premises": [{"number": p.number, "account": p.account, "kind": p.kind, "area": p.area,
                      "residents": p.residents, "meters": by_premises.get(p.number, [])} for p in found.premises],
        "meters": [meter_json(m, registry, today) for m in found.meters],
        "balance_groups": [{"resource": g.resource, "odpu": g.odpu.id, "ipu": [m.id for m in g.ipu]}
                           for g in registry.balance_groups() if g.building == found.id],
    })
    return json(body)


@bp.get("/meters")
@roles(DATA)
@doc("Meters; with due_before, the verification due list",
     params={"due_before": param("Only meters in service whose verification runs out before this date "
                                 "(overdue ones included), soonest first", format="date", example="2027-01-01"),
             "building": param("Only this building's meters"),
             "resource": param("Only meters of this resource", enum=RESOURCES),
             "role": param("Only building (odpu) or apartment (ipu) meters", enum=ROLES)},
     responses={200: {"type": "object", "required": ["items"],
                      "properties": {"items": {"type": "array", "items": METER}}},
                400: "a bad parameter", 404: "no building of that id"})
async def meters(request):
    """List meters in configuration order, or with ``due_before`` those due for verification, soonest first."""
    for key in request.args:
        if key not in _METER_QUERY:
            return error(f"unknown parameter {key!r} (use {', '.join(_METER_QUERY)})")
    registry = _service(request).current()
    raw_due = request.args.get("due_before")
    due_before = None
    if raw_due is not None:
        try:
            due_before = date.fromisoformat(raw_due.strip())
        except ValueError:
            return error(f"due_before={raw_due!r} is not a date such as 2027-01-01")
    building_id = request.args.get("building") or None
    resource = request.args.get("resource") or None
    role = request.args.get("role") or None
    try:
        found = registry.meters(building_id, resource, role)
    except KeyError:
        return _not_found("building", building_id or "", registry.buildings)
    except ValueError as exc:
        return error(str(exc))
    if due_before is not None:
        due = {m.id for m in registry.due(due_before)}
        found = sorted((m for m in found if m.id in due), key=lambda m: (m.next_verification, m.id))
    today = _today(request, registry)
    body: dict[str, Any] = {"items": [meter_json(m, registry, today) for m in found]}
    if due_before is not None:
        body["due_before"] = due_before.isoformat()
    return json(body)


@bp.get("/meters/<meter_id:str>")
@roles(DATA)
@doc("One meter with its lifecycle events", responses={200: METER, 404: "no meter of that id"})
async def meter(request, meter_id: str):
    """Return one meter in its effective state, with its events in the order they happened."""
    registry = _service(request).current()
    try:
        found = registry.meter(meter_id)
    except KeyError:
        return _not_found("meter", meter_id, (m.id for m in registry.meters()))
    body = meter_json(found, registry, _today(request, registry))
    body["events"] = [event_json(e) for e in registry.events(meter_id)]
    return json(body)


@bp.get("/meters/<meter_id:str>/events")
@roles(DATA)
@doc("A meter's lifecycle events",
     responses={200: {"type": "object", "required": ["items"],
                      "properties": {"items": {"type": "array", "items": EVENT}}},
                404: "no meter of that id"})
async def events(request, meter_id: str):
    """Return a meter's lifecycle events in the order they happened."""
    registry = _service(request).current()
    try:
        registry.meter(meter_id)
    except KeyError:
        return _not_found("meter", meter_id, (m.id for m in registry.meters()))
    return json({"items": [event_json(e) for e in registry.events(meter_id)]})


@bp.post("/meters/<meter_id:str>/events")
@roles(*EVENT_ROLES)
@doc("Record a lifecycle event of a meter", body=_EVENT_BODY,
     responses={201: {"type": "object", "required": ["event", "meter"],
                      "properties": {"event": EVENT, "meter": METER}},
                400: "a bad event (named)", 404: "no meter of that id", 503: "the store cannot write now"})
async def record(request, meter_id: str):
    """Check and store one lifecycle event; answer it and the meter's new state (201)."""
    service = _service(request)
    registry = service.current()
    kind = None
    try:
        registry.meter(meter_id)
    except KeyError:
        return _not_found("meter", meter_id, (m.id for m in registry.meters()))
    try:
        body = json_body(request, '{"kind": ..., "at": ..., "comment": ..., and the kind\'s fields}', required=True)
        data = dict(body)
        kind = data.pop("kind", None)
        if kind is None:
            raise ValueError(f"\"kind\" is required: one of {', '.join(EVENT_KINDS)}")
        if not isinstance(kind, str):
            raise ValueError(f"\"kind\" must be one of {', '.join(EVENT_KINDS)}")
        at = data.pop("at", None)
        comment = data.pop("comment", "")
        user = getattr(getattr(request.ctx, "user", None), "name", None) or "anonymous"
        event = service.record_event(meter_id, kind, at, user, comment, data)
    except ValueError as exc:
        return error(str(exc))
    except (sqlite3.Error, StoreError) as exc:
        log.error("cannot store a %s event of meter %s: %s", kind, meter_id, exc)
        return error(f"the store cannot take the event now: {exc}; nothing was stored, send it again", 503)
    log.info("%s recorded %s of meter %s", event.user, event.kind, meter_id)
    current = service.current()
    return json({"event": event_json(event),
                 "meter": meter_json(current.meter(meter_id), current, _today(request, current))}, status=201)
