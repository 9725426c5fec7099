# -*- test-case-name: tests.scada.test_api_hmi -*-
"""The web HMI: its static files and the two API routes made for it.

- ``GET /`` serves ``hmi/static/index.html``; ``GET /hmi/<path>`` the HMI's
  other files (scripts, styles, catalogues).  Both are public: the login
  page must load before anyone has logged in; they carry no site data.
- ``GET /api/v1/hmi/site``: what the screens are built from, in one answer:
  the buildings with their key tags, meters and premises, every tag's unit,
  device and poll period (a value older than ``hmi.stale_polls`` poll
  periods is shown stale), the channels, the ``hmi:`` settings (language,
  sound, wall-screen rotation) and what the caller's role may do.
- ``GET /api/v1/hmi/buildings/{id}/today``: each meter register of a
  building at the last local midnight, for "today's consumption".

A site without a ``registry:`` still gets an overview: each channel is
shown as a building of its devices, its key values found by tag name.
"""

from __future__ import annotations

import math
import mimetypes
from datetime import datetime, time as dtime
from pathlib import Path
from typing import Any

from sanic import Blueprint
from sanic.response import file as file_response
from sanic.response import json

from scada.api import auth as api_auth
from scada.api.auth import PUBLIC, READ, roles
from scada.api.common import error
from scada.api.openapi import doc, param
from scada.billing.periods import site_zone
from scada.keytags import building_key_tags, channel_key_tags
from tags.timefmt import iso_utc

#: The HMI's files (``hmi/static`` at the top of the repository).
STATIC = Path(__file__).resolve().parents[2] / "hmi" / "static"

bp = Blueprint("hmi", url_prefix="")

#: What the HMI asks the site answer about, and the route that decides it.
PERMISSIONS = {
    "ack": ("POST", "api/v1/alarms/<alarm_id:str>/ack"),
    "shelve": ("POST", "api/v1/alarms/<alarm_id:str>/shelve"),
    "comment": ("POST", "api/v1/alarms/<alarm_id:str>/comment"),
    "out_of_service": ("POST", "api/v1/alarms/<alarm_id:str>/out_of_service"),
    "journal": ("GET", "api/v1/alarms/journal"),
    "history": ("GET", "api/v1/tags/<name:str>/history"),
    "sim": ("POST", "api/v1/sim/devices/<name:str>"),
    "registry_events": ("POST", "api/v1/registry/meters/<meter_id:str>/events"),
}


# ------------------------------------------------------------------ static files

_TYPES = {".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".json": "application/json; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
          ".ico": "image/x-icon", ".woff2": "font/woff2", ".wav": "audio/wav"}


async def _send(path: Path):
    # no-cache: the browser revalidates (cheap, ETag/Last-Modified) so an upgrade shows at once.
    kind = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return await file_response(path, mime_type=kind, headers={"Cache-Control": "no-cache",
                                                              "X-Content-Type-Options": "nosniff"})


@bp.get("/")
@roles(PUBLIC)
async def index(request):
    """The HMI's page (hmi/static/index.html)."""
    page = STATIC / "index.html"
    if not page.is_file():
        return error(f"the HMI is not installed: {page} is missing", 404)
    return await _send(page)


@bp.get("/hmi/<path:path>")
@roles(PUBLIC)
async def static(request, path: str):
    """One of the HMI's files under hmi/static; nothing outside it."""
    target = (STATIC / path).resolve()
    if STATIC not in target.parents or not target.is_file():
        return error(f"no such HMI file: {path}", 404)
    return await _send(target)


# ------------------------------------------------------------------ site description


def _route_roles(app) -> dict[tuple[str, str], frozenset[str]]:
    found = {}
    for route in app.router.routes:
        declared = api_auth.declared_roles(route)
        for method in route.methods:
            found[(method, route.path)] = declared or frozenset()
    return found


def permissions(request) -> dict[str, bool]:
    """Return, per HMI action, whether the caller's role may do it (from the routes' own declarations)."""
    user = getattr(request.ctx, "user", None)
    role = getattr(user, "role", None)
    declared = _route_roles(request.app)
    return {action: bool(role) and (role in declared.get(key, ()) or "public" in declared.get(key, ()))
            for action, key in PERMISSIONS.items()}


def _devices(runtime) -> dict[str, dict]:
    """Return {device: {channel, poll_s, building (filled in later)}}."""
    devices = {}
    for channel, device in runtime.device_index():
        try:
            poll = device.health().get("poll_s")
        except Exception:  # noqa: BLE001 - a device that cannot report still has a place on the screen
            poll = None
        devices[device.name] = {"channel": channel.name, "poll_s": poll, "building": None}
    return devices


def _exists(tags):
    """Return the predicate "a tag of that name is in the tag table" (see :mod:`scada.keytags`)."""
    return lambda name: tags.get(name) is not None


def _tags_by_device(tags) -> dict[str, list[str]]:
    """Return the tag names (sorted) of each device: ``<device>.<point>``."""
    found: dict[str, list[str]] = {}
    for name in tags.names():
        device, dot, _ = name.partition(".")
        if dot:
            found.setdefault(device, []).append(name)
    return found


def _registry_buildings(runtime, registry, devices: dict[str, dict], today) -> list[dict[str, Any]]:
    from scada.api.registry import meter_json  # the registry's own JSON of a meter

    tags = runtime.tags
    by_device = _tags_by_device(tags)
    out = []
    exists = _exists(tags)
    for b in registry.buildings.values():
        key = building_key_tags(b, exists)
        meters = []
        building_devices: list[str] = []
        for m in b.meters:
            item = meter_json(m, registry, today)
            item["device"] = m.device
            item["channel"] = devices.get(m.device, {}).get("channel")
            item["tags"] = by_device.get(m.device, [])
            meters.append(item)
            if m.device not in building_devices:
                building_devices.append(m.device)
            if m.device in devices:
                devices[m.device]["building"] = b.id
        channels = list(dict.fromkeys(devices[d]["channel"] for d in building_devices if d in devices))
        out.append({"id": b.id, "address": b.address, "channels": channels, "devices": building_devices,
                    "key": key, "meters": meters,
                    "premises": [{"number": p.number, "account": p.account, "kind": p.kind, "area": p.area,
                                  "residents": p.residents,
                                  "meters": [m.id for m in b.meters if m.premises == p.number]}
                                 for p in b.premises]})
    return out


def _channel_buildings(runtime, devices: dict[str, dict]) -> list[dict[str, Any]]:
    """Without a registry: one "building" per channel, its devices as meters."""
    tags = runtime.tags
    by_device = _tags_by_device(tags)
    out = []
    for channel in runtime.channels:
        members = [d.name for d in channel.devices]
        key = channel_key_tags(members, _exists(tags))
        meters = []
        for d in members:
            devices[d]["building"] = channel.name
            meters.append({"id": d, "resource": None, "role": "odpu", "tag": None, "unit": "", "premises": None,
                           "device": d, "channel": channel.name,
                           "tags": by_device.get(d, [])})
        out.append({"id": channel.name, "address": channel.name, "channels": [channel.name], "devices": members,
                    "key": key, "meters": meters, "premises": []})
    return out


def site_json(request) -> dict[str, Any]:
    """Return the answer of ``GET /api/v1/hmi/site`` for ``request``'s caller."""
    runtime = request.app.ctx.runtime
    cfg = runtime.cfg
    devices = _devices(runtime)
    registry_service = getattr(runtime, "registry", None)
    registry = registry_service.current() if registry_service is not None else None
    if registry is not None and registry.buildings:
        buildings = _registry_buildings(runtime, registry, devices, registry.today(runtime.reactor.seconds()))
    else:
        buildings = _channel_buildings(runtime, devices)
    tags = {}
    for state in runtime.tags.states():
        d = state.definition
        tags[d.name] = {"unit": d.unit, "device": d.device, "description": d.description,
                        "poll_s": devices.get(d.device, {}).get("poll_s")}
    channel_buildings: dict[str, list[str]] = {}
    for b in buildings:
        for name in b["channels"]:
            channel_buildings.setdefault(name, []).append(b["id"])
    channels = [{"name": ch.name, "type": ch.health().get("type"), "buildings": channel_buildings.get(ch.name, [])}
                for ch in runtime.channels]
    user = getattr(request.ctx, "user", None)
    hmi = cfg.hmi
    return {
        "site": {"name": cfg.site.name, "timezone": cfg.site.timezone},
        "user": None if user is None else {"user": user.name, "role": user.role, "via": user.via},
        "auth": cfg.api.auth,
        "permissions": permissions(request),
        "hmi": {"lang": hmi.lang, "sound": hmi.sound, "stale_polls": hmi.stale_polls,
                "kiosk": {"views": list(hmi.kiosk.views), "every_s": hmi.kiosk.every}},
        "buildings": buildings,
        "devices": devices,
        "tags": tags,
        "channels": channels,
        "server_time": iso_utc(runtime.reactor.seconds()),
    }


_OBJECT = {"type": "object"}


@bp.get("/api/v1/hmi/site")
@roles(*READ)
@doc(responses={200: {"type": "object",
                      "required": ["site", "permissions", "hmi", "buildings", "devices", "tags", "channels"],
                      "properties": {"site": _OBJECT, "user": {"type": ["object", "null"]}, "auth": {"type": "boolean"},
                                     "permissions": {"type": "object", "additionalProperties": {"type": "boolean"}},
                                     "hmi": _OBJECT, "buildings": {"type": "array", "items": _OBJECT},
                                     "devices": _OBJECT, "tags": _OBJECT,
                                     "channels": {"type": "array", "items": _OBJECT},
                                     "server_time": {"type": "string", "format": "date-time"}}}})
async def site(request):
    """Describe the site for the HMI: buildings, key tags, meters, premises, tags, channels, settings, permissions."""
    return json(site_json(request))


#: How far before midnight a register sample still counts as the midnight reading.
TODAY_LOOKBACK_S = 2 * 86400.0


@bp.get("/api/v1/hmi/buildings/<building_id:str>/today")
@roles(*READ)
@doc(params={"building_id": param("Building id (the registry's)", location="path", example="b1")},
     responses={200: {"type": "object", "required": ["since", "values"],
                      "properties": {"since": {"type": "string", "format": "date-time"},
                                     "values": {"type": "object",
                                                "additionalProperties": {"type": ["number", "null"]}}}},
                404: "no building of that id", 503: "history is not available"})
async def today(request, building_id: str):
    """Return each meter register of a building at the last local midnight (the start of "today").

    A register with no sample in the two days before midnight is null.
    """
    runtime = request.app.ctx.runtime
    registry_service = getattr(runtime, "registry", None)
    registry = registry_service.current() if registry_service is not None else None
    if registry is None or building_id not in registry.buildings:
        known = ", ".join(registry.buildings) if registry is not None else ""
        return error(f"unknown building {building_id!r}" + (f" (known: {known})" if known else ""), 404)
    zone = site_zone(runtime.cfg.site.timezone)
    now = runtime.reactor.seconds()
    midnight = datetime.combine(datetime.fromtimestamp(now, zone).date(), dtime(), zone).timestamp()
    names = [m.tag for m in registry.buildings[building_id].meters]
    try:
        found = await runtime.historian.query_at_many(names, midnight, midnight - TODAY_LOOKBACK_S)
    except Exception as exc:  # noqa: BLE001 - a history database that is down is not a bug of the request
        return error(f"history is not available: {exc}", 503)
    values = {}
    for name in names:
        sample = found.get(name)
        values[name] = None if sample is None or not _finite(sample.value) else sample.value
    return json({"since": iso_utc(midnight), "values": values})


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)

