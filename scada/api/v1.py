# -*- test-case-name: tests.scada.test_api -*-
"""API v1: health, tags, history, devices, archive gaps, channels."""

from __future__ import annotations

from sanic import Blueprint
from sanic.response import json

from channels.archive import standard_offset
from scada import gaps as gap_report
from scada.api.auth import DATA, PUBLIC, READ, roles
from scada.api.common import error
from scada.api.openapi import TIME_TO, component, doc, param
from scada.config import parse_duration
from tags.timefmt import iso_utc, parse_iso

bp = Blueprint("api_v1", url_prefix="/api/v1")

#: Upper bounds that keep one request from exhausting memory.
MAX_RAW_POINTS = 100_000
MAX_BUCKETS = 100_000
DEFAULT_SPAN_S = 24 * 3600
#: History times must lie in [1970, 9999): every bucket start and every
#: answer time must be printable as ISO 8601, and metering has no history
#: before the epoch.
MIN_TS = 0.0
MAX_TS = 253370764800.0  # 9999-01-01T00:00:00Z


class BadRequest(Exception):
    """A query parameter the API cannot use; becomes a 400."""


_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
TAG_VALUE = component("TagValue", {
    "type": "object",
    "description": "A tag's current value with its quality and the time it was read.",
    "required": ["name", "value", "unit", "quality", "ts"],
    "properties": {"name": {"type": "string", "description": "<device>.<point>"},
                   "value": {"description": "number, text or true/false; null before the first good read"},
                   "unit": {"type": ["string", "null"]},
                   "quality": {"type": "string", "description": "good, timeout, comm_loss, manual, ..."},
                   "ts": _TIME_OR_NULL}})
_TAG_NAME = param("Tag name, <device>.<point>", location="path", example="b1-heat.t_supply_c")
_OBJECT_LIST = {"type": "array", "items": {"type": "object"}}


def _runtime(request):
    return request.app.ctx.runtime


def _iso(ts):
    return iso_utc(ts) if ts is not None else None


@bp.get("/health")
@roles(PUBLIC)
@doc(responses={200: {
    "type": "object",
    "required": ["status", "degraded", "uptime_s", "site", "tags", "channels", "history", "alarms", "services"],
    "properties": {"status": {"const": "ok"},
                   "degraded": {"type": "boolean", "description": "a link down, devices failing, history down"},
                   "uptime_s": {"type": "number"}, "site": {"type": "string"}, "tags": {"type": "integer"},
                   "channels": {"type": "object", "additionalProperties": {"type": "object"}},
                   "history": {"type": "object"}, "alarms": {"type": "object"}, "services": {"type": "object"}}}})
async def health(request):
    """Say the process is alive, with uptime and a summary per channel."""
    rt = _runtime(request)
    channels = {}
    degraded = False
    for ch in rt.channels:
        h = ch.health()
        # Uplink and hand-read channels have no link of their own and carry no transactions.
        link_up = h.get("link_up", True)
        # A link asleep between its connection windows is as planned.
        degraded |= (not (link_up or h.get("sleeping")) or h.get("devices_comm_loss", 0) > 0
                     or h.get("devices_degraded", 0) > 0)
        channels[ch.name] = {"link_up": link_up, "sleeping": h.get("sleeping", False),
                             "tx_per_s": h.get("tx_per_s", 0.0),
                             "devices": h.get("devices", len(ch.devices)),
                             "devices_ok": h.get("devices_ok", 0), "devices_degraded": h.get("devices_degraded", 0),
                             "devices_comm_loss": h.get("devices_comm_loss", 0), "type": h["type"],
                             # M-Bus has no line termination to report.
                             "termination": h.get("termination", {}).get("port", "not_applicable")}
    history = _history_health(rt.historian)
    degraded |= not history["store_up"] or history["backlog_alarm_active"]
    return json({"status": "ok", "degraded": degraded, "uptime_s": round(rt.uptime(), 3),
                 "site": rt.cfg.site.name, "tags": len(rt.tags), "channels": channels,
                 "history": history, "alarms": rt.alarms.summary(), "services": rt.services.health()})


def _history_health(historian) -> dict:
    """Summarise the historian for /health: backend, backlog and its oldest sample, counters."""
    s = historian.stats()
    out = {key: s.get(key) for key in (
        "backend", "store_up", "backlog", "backlog_bytes", "backlog_alarm", "backlog_alarm_active",
        "accepted_total", "written_total", "dropped_total", "rejected_total", "flush_errors",
        "last_error", "server_version")}
    out["oldest_queued"] = _iso(s.get("oldest_queued_ts"))
    out["last_flush"] = _iso(s.get("last_flush_ts"))
    out["queue_path"] = s.get("queue", {}).get("path")
    out["queue_budget_bytes"] = s.get("queue", {}).get("budget_bytes")
    return out


@bp.get("/tags")
@roles(DATA)
@doc(params={"prefix": param("Only tags whose name starts with this", example="b1-heat.")},
     responses={200: {"type": "object", "required": ["tags"],
                      "properties": {"tags": {"type": "array", "items": TAG_VALUE}}}})
async def tags(request):
    """List current values, optionally those whose name starts with ``prefix``."""
    prefix = request.args.get("prefix", "")
    return json({"tags": [s.to_json() for s in _runtime(request).tags.states(prefix)]})


@bp.get("/tags/<name:str>")
@roles(DATA)
@doc(params={"name": _TAG_NAME}, responses={200: TAG_VALUE, 404: "no tag of that name"})
async def tag(request, name: str):
    """Return one tag's current value."""
    state = _runtime(request).tags.get(name)
    if state is None:
        return error(f"unknown tag {name!r}", 404)
    return json(state.to_json())


def _time_arg(request, key: str, default: float) -> float:
    raw = request.args.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = parse_iso(raw)
    except ValueError:
        raise BadRequest(f"{key}={raw!r} is not an ISO 8601 time (e.g. 2026-11-21T07:00:00Z)") from None
    if not MIN_TS <= value < MAX_TS:
        raise BadRequest(f"{key}={raw!r} is outside 1970-01-01 .. 9998-12-31")
    return value


def _range_args(request, now: float, default_span: float) -> tuple[float, float]:
    """Return ``(from, to)``: ``to`` defaults to now, ``from`` to ``default_span`` before ``to``."""
    end = _time_arg(request, "to", now)
    start = _time_arg(request, "from", max(MIN_TS, end - default_span))
    if start >= end:
        raise BadRequest(f"from ({iso_utc(start)}) must be before to ({iso_utc(end)})")
    return start, end


@bp.get("/tags/<name:str>/history")
@roles(DATA)
@doc(params={"name": _TAG_NAME, "from": param("Start, ISO 8601; default a day before `to`", format="date-time"),
             "to": TIME_TO,
             "every": param("Aggregate per interval (min, max, mean, last, count per bucket): a duration "
                            "such as 30s, 15m, 1h, 1d; raw samples without it", example="1h")},
     responses={200: {"type": "object", "required": ["name", "from", "to", "every", "points"],
                      "properties": {"name": {"type": "string"}, "from": _TIME, "to": _TIME,
                                     "every": {"type": ["number", "null"], "description": "seconds"},
                                     "points": _OBJECT_LIST}},
                400: "a bad time or interval, an unknown parameter, too many points or intervals",
                404: "no tag of that name"})
async def history(request, name: str):
    """Return a tag's history, raw or aggregated per ``every`` interval."""
    rt = _runtime(request)
    if rt.tags.get(name) is None:
        return error(f"unknown tag {name!r}", 404)
    now = rt.reactor.seconds()
    try:
        start, end = _range_args(request, now, DEFAULT_SPAN_S)
        every_raw = request.args.get("every")
        every = None
        if every_raw is not None:
            try:
                every = parse_duration(every_raw)
            except ValueError:
                raise BadRequest(f"every={every_raw!r} is not a duration (e.g. 30s, 15m, 1h, 1d)") from None
            if every <= 0:
                raise BadRequest(f"every={every_raw!r} must be positive")
            if (end - start) / every > MAX_BUCKETS:
                raise BadRequest(f"every={every_raw!r} over this range gives more than {MAX_BUCKETS} intervals")
    except BadRequest as exc:
        return error(str(exc))
    for key in request.args:
        if key not in ("from", "to", "every"):
            return error(f"unknown parameter {key!r} (use from, to, every)")
    if every is None:
        samples = await rt.historian.query_raw(name, start, end, MAX_RAW_POINTS + 1)
        if len(samples) > MAX_RAW_POINTS:
            return error(f"more than {MAX_RAW_POINTS} samples between {iso_utc(start)} and {iso_utc(end)}; "
                         "narrow from/to or aggregate with every=")
        points = [{"ts": iso_utc(s.ts), "value": s.value, "quality": str(s.quality)} for s in samples]
    else:
        rows = await rt.historian.query_agg(name, start, end, every)
        points = [{"ts": iso_utc(r.ts), "min": r.min, "max": r.max, "mean": r.mean, "last": r.last,
                   "count": r.count} for r in rows]
    return json({"name": name, "from": iso_utc(start), "to": iso_utc(end), "every": every, "points": points})


@bp.get("/devices")
@roles(DATA)
@doc(responses={200: {"type": "object", "required": ["devices"], "properties": {"devices": _OBJECT_LIST}}})
async def devices(request):
    """Return communication statistics per device."""
    return json({"devices": devices_json(_runtime(request))})


def devices_json(runtime) -> list[dict]:
    """Return every device's communication statistics, times as ISO 8601 (``GET /devices``, the live feed)."""
    out = []
    for channel, device in runtime.device_index():
        h = device.health()
        h["channel"] = channel.name
        # Uplink meters report when they were last heard; hand-read ones their last reading.
        for key in ("last_good", "last_uplink", "last_ts"):
            if key in h:
                h[key] = _iso(h[key])
        if "last_backfill" in h:
            h["last_backfill"] = _iso(h["last_backfill"])
            h["archive_newest"] = {k: _iso(v) for k, v in h.get("archive_newest", {}).items()}
        out.append(h)
    return out


#: Default span of a gaps report: the last week.
GAPS_SPAN_S = 7 * 86400


@bp.get("/devices/<name:str>/gaps")
@roles(DATA)
@doc(params={"name": param("Device name", location="path", example="b1-heat"),
             "from": param("Start, ISO 8601; default a week before `to`", format="date-time"), "to": TIME_TO},
     responses={200: {"type": "object", "required": ["device", "from", "to", "archives"],
                      "properties": {"device": {"type": "string"}, "from": _TIME, "to": _TIME,
                                     "archives": _OBJECT_LIST}},
                400: "a bad time, an unknown parameter, too long a range", 404: "no device of that name"})
async def device_gaps(request, name: str):
    """List, per archive of a device, the slots between ``from`` and ``to`` without usable history.

    See :mod:`scada.gaps` for what a slot is and when it counts as
    covered.  ``to`` defaults to now, ``from`` to a week before ``to``.
    """
    rt = _runtime(request)
    device = next((d for _, d in rt.device_index() if d.name == name), None)
    if device is None:
        return error(f"unknown device {name!r}", 404)
    for key in request.args:
        if key not in ("from", "to"):
            return error(f"unknown parameter {key!r} (use from, to)")
    now = rt.reactor.seconds()
    try:
        start, end = _range_args(request, now, GAPS_SPAN_S)
    except BadRequest as exc:
        return error(str(exc))
    specs_of = getattr(device, "archive_specs", None)
    specs = specs_of() if specs_of is not None else []
    offset = standard_offset(rt.cfg.site.timezone)
    slots, buckets = gap_report.count_work(specs, start, end, now, offset)
    if slots > gap_report.MAX_SLOTS:
        return error(f"from={iso_utc(start)} to={iso_utc(end)} spans {slots} archive slots of device {name!r}; "
                     f"at most {gap_report.MAX_SLOTS} per request: narrow from/to")
    if buckets > gap_report.MAX_BUCKETS:
        return error(f"from={iso_utc(start)} to={iso_utc(end)} needs {buckets} history buckets per tag for "
                     f"device {name!r}; at most {gap_report.MAX_BUCKETS} per request: narrow from/to")
    try:
        archives = await gap_report.device_gaps(rt.historian, specs, start, end, now, offset)
    except Exception as exc:  # noqa: BLE001 - a history database that is down is not a bug of the request
        return error(f"history is not available: {exc}", 503)
    return json({"device": name, "from": iso_utc(start), "to": iso_utc(end), "archives": archives})


@bp.get("/channels")
@roles(READ)
@doc(responses={200: {"type": "object", "required": ["channels"], "properties": {"channels": _OBJECT_LIST}}})
async def channels(request):
    """Return per-segment statistics: transactions/s, utilisation, termination."""
    return json({"channels": channels_json(_runtime(request))})


def channels_json(runtime) -> list[dict]:
    """Return every channel's statistics, times as ISO 8601 (``GET /channels``, the live feed)."""
    out = []
    for ch in runtime.channels:
        h = ch.health()
        link = h.get("link")
        if isinstance(link, dict):
            # Connection windows and a modem's last sign of life, as times.
            for key in ("next_window", "window_end", "last_seen"):
                if isinstance(link.get(key), (int, float)):
                    link[key] = _iso(link[key])
        for key in ("last_uplink",):
            if isinstance(h.get(key), (int, float)):
                h[key] = _iso(h[key])
        out.append(h)
    return out
