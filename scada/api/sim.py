# -*- test-case-name: tests.scada.test_api_alarms -*-
"""Simulator control (demo and commissioning drills): force a simulated meter's value or fault.

Only on a site running with ``simulate: true``; on real meters every path
here answers 404 saying so.  ``POST /api/v1/sim/devices/{name}`` with
``{"set": {"t_supply_c": 130}}`` makes the simulated meter answer that value
(through the real register encoding and the real poll path) until
``{"clear": ["t_supply_c"]}`` or ``{"clear": true}``; ``{"fault": "silent"}``
switches a communication fault (``"normal"`` ends it; see
:data:`channels.sim.slave.FAULTS`).
"""

from __future__ import annotations

import math

from sanic import Blueprint
from sanic.response import json

from scada.api.auth import ENGINEERING, roles

bp = Blueprint("api_v1_sim", url_prefix="/api/v1/sim")


def _field(request):
    return request.app.ctx.runtime.field


def _error(message: str, status: int = 400):
    return json({"error": message}, status=status)


def _state(field, name: str) -> dict:
    device = field.devices[name]
    return {"device": name, "overrides": field.overrides(name), "fault": getattr(device, "fault", None)}


@bp.get("/devices/<name:str>")
@roles(*ENGINEERING)
async def get_device(request, name: str):
    """Return a simulated device's overrides and fault."""
    field = _field(request)
    if field is None:
        return _error("this site polls real meters (simulate: false); there is no simulator to control", 404)
    if name not in field.devices:
        return _error(f"no simulated device named {name!r}", 404)
    return json(_state(field, name))


@bp.post("/devices/<name:str>")
@roles(*ENGINEERING)
async def control_device(request, name: str):
    """Set or clear value overrides and faults of a simulated device."""
    field = _field(request)
    if field is None:
        return _error("this site polls real meters (simulate: false); there is no simulator to control", 404)
    if name not in field.devices:
        return _error(f"no simulated device named {name!r}", 404)
    try:
        body = request.json if request.body else {}
    except Exception:  # noqa: BLE001 - Sanic raises its own BadRequest subclasses
        return _error("the body is not valid JSON")
    if not isinstance(body, dict) or not body:
        return _error('the body must be a JSON object with "set", "clear" and/or "fault"')
    unknown = sorted(set(body) - {"set", "clear", "fault"})
    if unknown:
        return _error(f"unknown key {unknown[0]!r} (use set, clear, fault)")
    try:
        clear = body.get("clear")
        if clear is True:
            field.clear_override(name)
        elif isinstance(clear, list) and all(isinstance(p, str) for p in clear):
            for point in clear:
                field.clear_override(name, point)
        elif clear not in (None, False):
            raise ValueError("'clear' must be true or a list of point names")
        values = body.get("set", {})
        if not isinstance(values, dict):
            raise ValueError("'set' must be an object of point name to number")
        for point, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"set.{point}: {value!r} is not a finite number")
            field.set_override(name, point, float(value))
        if "fault" in body:
            fault = body["fault"]
            if not isinstance(fault, str):
                raise ValueError("'fault' must be a string")
            field.set_fault(name, fault)
    except (KeyError, ValueError) as exc:
        message = exc.args[0] if exc.args else str(exc)
        return _error(str(message))
    return json(_state(field, name))
