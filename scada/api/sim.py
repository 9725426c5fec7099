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
from scada.api.common import error, json_body
from scada.api.openapi import doc, param

bp = Blueprint("api_v1_sim", url_prefix="/api/v1/sim")


_STATE = {"type": "object", "required": ["device", "overrides", "fault"],
          "properties": {"device": {"type": "string"},
                         "overrides": {"type": "object", "additionalProperties": {"type": "number"}},
                         "fault": {"type": ["string", "null"]}}}
_DEVICE = param("Simulated device name", location="path", example="b1-heat")


def _field(request, name: str):
    """Return ``(field, None)`` for a simulated device ``name``, or ``(None, 404 answer)`` saying why not."""
    field = request.app.ctx.runtime.field
    if field is None:
        return None, error("this site polls real meters (simulate: false); there is no simulator to control", 404)
    if name not in field.devices:
        return None, error(f"no simulated device named {name!r}", 404)
    return field, None


def _state(field, name: str) -> dict:
    device = field.devices[name]
    return {"device": name, "overrides": field.overrides(name), "fault": getattr(device, "fault", None)}


def _check_point(device: str, names: tuple[str, ...], point: str) -> None:
    if point not in names:
        raise ValueError(f"simulated device {device!r} has no point {point!r} "
                         f"(its points: {', '.join(names) or 'none'})")


@bp.get("/devices/<name:str>")
@roles(*ENGINEERING)
@doc(params={"name": _DEVICE}, responses={200: _STATE, 404: "not a simulated site, or no such simulated device"})
async def get_device(request, name: str):
    """Return a simulated device's overrides and fault."""
    field, refused = _field(request, name)
    if refused is not None:
        return refused
    return json(_state(field, name))


@bp.post("/devices/<name:str>")
@roles(*ENGINEERING)
@doc(params={"name": _DEVICE},
     body={"type": "object", "minProperties": 1,
           "properties": {"set": {"type": "object", "additionalProperties": {"type": "number"},
                                  "description": "point name -> value the meter answers from now on",
                                  "example": {"t_supply_c": 130}},
                          "clear": {"oneOf": [{"type": "boolean"}, {"type": "array", "items": {"type": "string"}}],
                                    "description": "true: every override; or the points to clear"},
                          "fault": {"type": "string", "enum": ["normal", "silent", "exception", "corrupt_crc", "slow"],
                                    "description": "a communication fault; normal ends it"}}},
     responses={200: _STATE, 400: "a bad body (nothing changed)", 404: "not a simulated site, or no such device"})
async def control_device(request, name: str):
    """Set or clear value overrides and faults of a simulated device."""
    field, refused = _field(request, name)
    if refused is not None:
        return refused
    try:
        body = json_body(request, 'with "set", "clear" and/or "fault"', required=True)
    except ValueError as exc:
        return error(str(exc))
    unknown = sorted(set(body) - {"set", "clear", "fault"})
    if unknown:
        return error(f"unknown key {unknown[0]!r} (use set, clear, fault)")
    # Check the whole request before changing anything: a 400 leaves the meter as it was.
    try:
        names = field.point_names(name)
        clear = body.get("clear")
        if isinstance(clear, list) and all(isinstance(p, str) for p in clear):
            for point in clear:
                _check_point(name, names, point)
        elif clear is not None and clear is not True and clear is not False:
            raise ValueError("'clear' must be true or a list of point names")
        values = body.get("set", {})
        if not isinstance(values, dict):
            raise ValueError("'set' must be an object of point name to number")
        encode = getattr(field.devices[name], "encode_value", None)  # Modbus meters: the range check
        for point, value in values.items():
            _check_point(name, names, point)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"set.{point}: {value!r} is not a finite number")
            if encode is not None:
                try:
                    encode(point, float(value))
                except ValueError as exc:
                    raise ValueError(f"simulated device {name!r}: {exc}") from None
        if "fault" in body:
            from channels.sim.slave import FAULTS

            fault = body["fault"]
            if not isinstance(fault, str):
                raise ValueError("'fault' must be a string")
            if fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r} (use one of {', '.join(FAULTS)})")
        if clear is True:
            field.clear_override(name)
        elif isinstance(clear, list):
            for point in clear:
                field.clear_override(name, point)
        for point, value in values.items():
            field.set_override(name, point, float(value))
        if "fault" in body:
            field.set_fault(name, body["fault"])
    except (KeyError, ValueError) as exc:
        message = exc.args[0] if exc.args else str(exc)
        return error(str(message))
    return json(_state(field, name))
