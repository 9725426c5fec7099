# -*- test-case-name: tests.scada.test_metrics -*-
"""``GET /metrics``: the site's Prometheus metrics (see :mod:`scada.metrics` for what they are).

Outside ``/api/v1`` and its OpenAPI description, as ``/`` is: a Prometheus
scrape target, not part of the JSON API.  ``api.metrics`` decides who may
scrape: ``public`` (the default: no credentials, like ``/api/v1/health``,
which tells as much), ``auth`` (a bearer token or session of a role that
may read operations views, checked by the API's own middleware: 401/403
JSON like every other route) or ``off`` (404).  With ``api.auth: false``
everyone is admin, so ``auth`` lets everyone scrape.
"""

from __future__ import annotations

from sanic import Blueprint
from sanic.response import raw

from scada.api.auth import PUBLIC, READ, roles
from scada.api.common import error
from scada.metrics import CONTENT_TYPE, build_registry, render

#: The path Prometheus scrapes.
PATH = "/metrics"


async def _scrape(request):
    registry = request.app.ctx.metrics_registry
    return raw(render(registry), content_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})


@roles(PUBLIC)
async def public_metrics(request):
    """The site's metrics in the Prometheus text format, to anyone."""
    return await _scrape(request)


@roles(READ)
async def metrics(request):
    """The site's metrics in the Prometheus text format, to a token or session of a READ role."""
    return await _scrape(request)


@roles(PUBLIC)
async def metrics_off(request):
    """Say that the site serves no metrics."""
    return error(f"no such path: {PATH} (metrics are off on this site: api.metrics: off)", 404)


def blueprint(mode: str) -> Blueprint:
    """Return the blueprint of ``/metrics`` for ``api.metrics`` = ``mode`` (public, auth, off)."""
    handler = {"public": public_metrics, "auth": metrics, "off": metrics_off}.get(mode)
    if handler is None:
        raise ValueError(f"api.metrics: {mode!r} is not public, auth or off")
    bp = Blueprint("metrics", url_prefix="")
    bp.add_route(handler, PATH, methods=["GET"], name="metrics")
    return bp


def install(app) -> None:
    """Give ``app`` (``app.ctx.runtime`` set) a metrics registry of its own and the ``/metrics`` route."""
    runtime = app.ctx.runtime
    mode = runtime.cfg.api.metrics
    app.ctx.metrics_registry = build_registry(runtime) if mode != "off" else None
    app.blueprint(blueprint(mode))
