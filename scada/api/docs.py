# -*- test-case-name: tests.scada.test_openapi -*-
"""``GET /api/v1/openapi.json`` and ``GET /api/v1/docs``: the API's description and its docs page (both public).

What they serve is built by :mod:`scada.api.openapi` from the app's routes
the first time it is asked for, and kept: routes do not change once the
app serves.
"""

from __future__ import annotations

from sanic import Blueprint
from sanic.response import HTTPResponse, json

from scada.api.auth import PUBLIC, roles
from scada.api.openapi import doc, render_html, spec_of

bp = Blueprint("api_v1_docs", url_prefix="/api/v1")


@bp.get("/openapi.json")
@roles(PUBLIC)
@doc("This API described in OpenAPI 3.1",
     "Built from the server's routes at run time: every route is in it. WebSocket routes, which OpenAPI "
     "cannot describe, are listed under `x-websockets`.",
     responses={200: {"type": "object", "required": ["openapi", "info", "paths"]}})
async def openapi_json(request):
    """Return the OpenAPI description of every route of this server."""
    return json(spec_of(request.app))


@bp.get("/docs")
@roles(PUBLIC)
@doc("This API as a readable page (HTML, self-contained)",
     responses={200: {"description": "The docs page.", "content": {"text/html": {"schema": {"type": "string"}}}}})
async def docs(request):
    """Return the API documentation page: every operation with its parameters, body, answers and roles."""
    app = request.app
    page = getattr(app.ctx, "openapi_page", None)
    if page is None:
        page = app.ctx.openapi_page = render_html(spec_of(app))
    return HTTPResponse(page, content_type="text/html; charset=utf-8")
