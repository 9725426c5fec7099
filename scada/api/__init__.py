# -*- test-case-name: tests.scada.test_api -*-
"""The HTTP API under ``/api/v1`` (Sanic, single process, on the engine's loop).

Every error is a JSON body ``{"error": "..."}`` with a 4xx status; anything
unexpected is logged and answered 500 with the same shape, never an HTML page.
"""

from __future__ import annotations

import functools
import itertools
import json as jsonlib
import logging
from urllib.parse import unquote

from sanic import Sanic
from sanic.exceptions import SanicException
from sanic.response import json

from scada.api import auth as api_auth
from scada.api.alarms import bp as alarms_blueprint
from scada.api.billing import bp as billing_blueprint
from scada.api.docs import bp as docs_blueprint
from scada.api.hmi import bp as hmi_blueprint
from scada.api.integrations import bp as integrations_blueprint
from scada.api import metrics as api_metrics
from scada.api.live import bp as live_blueprint
from scada.api.readings import bp as readings_blueprint
from scada.api.registry import bp as registry_blueprint
from scada.api.reports import bp as reports_blueprint
from scada.api.sim import bp as sim_blueprint
from scada.api.v1 import bp as v1_blueprint
from tags.historian import StoreUnavailable

log = logging.getLogger(__name__)
_counter = itertools.count()


async def _decode_path_parameters(request) -> None:
    """Request middleware: percent-decode the route's text path parameters.

    Sanic hands them over as sent, so ``/alarms/b1-supply%3Ab1-heat.t_supply_c%3Ahi``
    (an OpenAPI client encodes the ``:`` of an alarm id) would name no alarm.
    Sanic's per-route ``unquote=True`` cannot be relied on: its routing tree
    takes the flag from whichever route created a node first.
    """
    params = request.match_info
    if params:
        request.match_info = {key: unquote(value) if isinstance(value, str) else value
                              for key, value in params.items()}


def build_app(runtime, name: str | None = None) -> Sanic:
    """Return a Sanic app serving ``runtime`` (a :class:`scada.app.Runtime`)."""
    # Russian text stays readable in answers (curl, logs) instead of \uXXXX escapes.
    app = Sanic(name or f"scada_{next(_counter)}", configure_logging=False,
                dumps=functools.partial(jsonlib.dumps, ensure_ascii=False, separators=(",", ":")))
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.KEEP_ALIVE_TIMEOUT = 30
    app.ctx.runtime = runtime
    app.on_request(_decode_path_parameters, priority=2000)  # before anything reads them
    # Authentication first: its middleware checks every route registered after it too.
    api_auth.install(app)
    app.blueprint(v1_blueprint)
    app.blueprint(alarms_blueprint)
    app.blueprint(live_blueprint)
    app.blueprint(sim_blueprint)
    app.blueprint(readings_blueprint)
    app.blueprint(registry_blueprint)
    app.blueprint(billing_blueprint)
    app.blueprint(reports_blueprint)
    app.blueprint(integrations_blueprint)
    app.blueprint(hmi_blueprint)
    # GET /metrics (Prometheus), outside /api/v1 and its description; a registry per app.
    api_metrics.install(app)
    # The API's description (GET /api/v1/openapi.json, /api/v1/docs) is built from every route registered.
    app.blueprint(docs_blueprint)

    async def on_error(request, exception):
        if isinstance(exception, StoreUnavailable):
            # The history database is down or unreachable: not a bug, and
            # the samples are safe in the queue.  Say so, with a 503.
            return json({"error": f"history is not available: {exception}"}, status=503)
        if isinstance(exception, SanicException):
            status = exception.status_code
            message = str(exception) or exception.__class__.__name__
            if status == 404:
                message = f"no such path: {request.path}"
            elif status == 405:
                message = f"method {request.method} not allowed on {request.path}"
        else:
            log.exception("unhandled error on %s %s", request.method, request.path)
            status, message = 500, "internal error (logged)"
        return json({"error": message}, status=status)

    app.error_handler.add(Exception, on_error)
    # Last: refuse to build an app with a route that does not say who may call it.
    api_auth.check_routes(app)
    return app
