# -*- test-case-name: tests.scada.test_api_integrations -*-
"""Uplinks pushed over HTTP: ChirpStack's HTTP integration and NB-IoT meters or platforms.

- ``POST /api/v1/integrations/chirpstack?event=up`` takes what ChirpStack v4's
  HTTP integration posts (JSON; ``event`` is up, join, status, ack, txack,
  log or location).  Configure the integration's URL as
  ``http://<scada>/api/v1/integrations/chirpstack`` with a header
  ``Authorization: Bearer <token>`` of a token with role ``integration``.
- ``POST /api/v1/integrations/uplink`` takes an NB-IoT reading: JSON
  (``{"id", "data" | "hex" | "values", "time"}``) or raw bytes
  (``application/octet-stream``) with the meter's ID in ``?id=``.

Both go through the same decoders as MQTT and UDP uplinks.  A bad uplink
(invalid JSON, wrong base64, an unknown device) is counted and answered
with a 4xx JSON error; it never reaches the engine as an exception.
"""

from __future__ import annotations

from sanic import Blueprint
from sanic.response import json

from scada.api.auth import roles
from scada.api.common import error
from scada.api.openapi import doc, param
from scada.auth import INTEGRATION

bp = Blueprint("api_v1_integrations", url_prefix="/api/v1/integrations")

#: Largest uplink body accepted (a ChirpStack event is 1-2 kB; NB-IoT payloads are smaller).
MAX_BODY = 64 * 1024


_RECEIVED = {"type": "object", "description": "An uplink: the device, samples taken, whether it was a duplicate; "
                                            "another event: the event and the device (null if unknown).",
             "properties": {"device": {"type": ["string", "null"]}, "samples": {"type": "integer"},
                            "duplicate": {"type": "boolean"}, "event": {"type": "string"}}}
_UPLINK_ERRORS = {400: "a bad body or parameter", 404: "no LoRaWAN/NB-IoT channel on this site, or an unknown device",
                  413: f"a body larger than {MAX_BODY} bytes"}


def _hub(request):
    return getattr(request.app.ctx.runtime, "uplinks", None)


def _body(request) -> bytes | None:
    body = request.body or b""
    return None if len(body) > MAX_BODY else body


def _take(request, param: str, take, missing: str | None = None):
    """Answer one pushed uplink: what both endpoints check, then ``take(hub, body, value)`` as JSON.

    The site must have an uplink hub (else 404); ``param`` is the only query
    parameter allowed, and its ``value`` is required when ``missing`` (the
    error to answer) is given; the body must fit :data:`MAX_BODY` (else
    413).  An :class:`~channels.lorawan.uplink.UplinkError` from ``take`` is
    answered with its message and status.
    """
    from channels.lorawan.uplink import UplinkError

    hub = _hub(request)
    if hub is None:
        return error("this site has no LoRaWAN or NB-IoT channels", 404)
    for key in request.args:
        if key != param:
            return error(f"unknown parameter {key!r} (use {param})")
    value = request.args.get(param)
    if missing is not None and not value:
        return error(missing)
    body = _body(request)
    if body is None:
        return error(f"body of {len(request.body)} bytes is larger than {MAX_BODY}", 413)
    try:
        result = take(hub, body, value)
    except UplinkError as exc:
        return error(exc.message, exc.status)
    return json(result)


@bp.post("/chirpstack")
@roles(INTEGRATION)
@doc(params={"event": param("ChirpStack event type", required=True,
                            enum=("up", "join", "status", "ack", "txack", "log", "location", "integration"))},
     body={"type": "object", "description": "The event as ChirpStack v4 posts it (JSON)"},
     responses={200: _RECEIVED, **_UPLINK_ERRORS})
async def chirpstack(request):
    """Take one ChirpStack v4 HTTP integration event."""
    return _take(request, "event", lambda hub, body, event: hub.chirpstack(body, event),
                 missing="missing parameter 'event' (ChirpStack adds ?event=up)")


@bp.post("/uplink")
@roles(INTEGRATION)
@doc(params={"id": param("The meter's ID, for a raw (application/octet-stream) body")},
     body={"content": {"application/json": {"schema": {
         "type": "object",
         "description": 'the meter ("id", e.g. its IMEI) and exactly one of "data" (base64), "hex" or "values"',
         "properties": {"id": {"type": ["string", "integer"]}, "data": {"type": "string"}, "hex": {"type": "string"},
                        "values": {"type": "object", "additionalProperties": {"type": "number"}},
                        "time": {"type": ["string", "number"]}, "seq": {"type": "integer"},
                        "port": {"type": "integer"}, "messageId": {"type": "string"}}}},
         "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
     responses={200: _RECEIVED, **_UPLINK_ERRORS})
async def uplink(request):
    """Take one NB-IoT reading (JSON, or raw bytes with ``?id=``)."""
    def take(hub, body, device_id):
        content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        return hub.nbiot(body, content_type, device_id)

    return _take(request, "id", take)
