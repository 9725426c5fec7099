# -*- test-case-name: tests.scada.test_openapi -*-
"""The HTTP API described in OpenAPI 3.1, built from the Sanic router at run time, and its docs page.

``GET /api/v1/openapi.json`` walks ``app.router.routes``, so every route is
in it without anyone writing a line for it: its path with the path
parameters and their types, its methods, the roles its ``@roles`` declares
(in the description and as ``x-roles``), the bearer-token security (none on
public routes), 401/403 on routes that need credentials and the API's
generic error answer ``{"error": "..."}``.  A handler adds detail with
:func:`doc`, written under the route decorator like ``@roles``::

    @bp.get("/journal")
    @roles(*READ)
    @doc("Alarm journal as JSON, CSV or XLSX",
         params={"from": TIME_FROM, "to": TIME_TO,
                 "format": param("Answer format", enum=["json", "csv", "xlsx"], default="json")},
         responses={200: json_or_file(JOURNAL, "text/csv", XLSX), 400: "a bad parameter"})
    async def journal(request): ...

Without ``summary``/``description`` the handler's docstring is used (its
first paragraph is the summary).  Query parameters matter most: the
schemathesis tests (``tests/scada/test_api_schemathesis.py``) fuzz what is
declared here, and check answers against the schemas declared.  Helpers:
:func:`param` (one parameter), :func:`component` (a schema shared by
several routes, as a ``$ref``), :func:`error_response`,
:func:`file_response` and :func:`json_or_file` (answers), ``TIME_FROM``,
``TIME_TO``, ``LANG`` (common parameters).

WebSocket routes cannot be described by OpenAPI 3 (it has no notion of a
message stream): they are listed under the extension ``x-websockets``
(path, roles, description) and on the docs page instead of under ``paths``.

``GET /api/v1/docs`` renders the same description as one self-contained
HTML page (no scripts, styles or fonts from elsewhere: a control room has no
internet).  Both routes (public: they describe the API and give no access
to data) are in :mod:`scada.api.docs`; this module imports no blueprint,
so every blueprint, :mod:`scada.api.auth` included, can import it.
"""

from __future__ import annotations

import functools
import html
import inspect
import json as jsonlib
import re
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, TypeVar

from scada import installed_version
from scada.api.common import LANGUAGES
from scada.auth import PUBLIC

__all__ = ["ERROR", "LANG", "TIME_FROM", "TIME_TO", "XLSX", "build_spec", "component", "doc", "error_response",
           "file_response", "json_or_file", "param", "render_html", "spec_of"]

H = TypeVar("H", bound=Callable[..., Any])

#: Where a handler's :func:`doc` is kept.
ATTR = "_scada_doc"
#: The OpenAPI version the description follows.
OPENAPI_VERSION = "3.1.0"
#: Keys of an OpenAPI Parameter Object; anything else in a :func:`doc` parameter is JSON Schema.
_PARAMETER_KEYS = frozenset({"in", "description", "required", "deprecated", "allowEmptyValue", "style", "explode",
                             "allowReserved", "example", "examples", "schema", "content"})
_LOCATIONS = ("query", "path", "header", "cookie")
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
#: JSON Schema of a path parameter by Sanic's type label (``<name:int>``).
_PATH_TYPES: dict[str, dict[str, Any]] = {
    "str": {"type": "string", "pattern": "^[^/]+$"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "alpha": {"type": "string", "pattern": "^[A-Za-z]+$"},
    "slug": {"type": "string", "pattern": "^[a-z0-9]+(?:-[a-z0-9]+)*$"},
    "path": {"type": "string"},
    "ymd": {"type": "string", "format": "date"},
    "uuid": {"type": "string", "format": "uuid"},
}
#: Tag (group on the docs page) of a route by the first path segment after ``/api/v1/``, where it is not that segment.
_TAG_OF = {"login": "auth", "logout": "auth", "me": "auth", "health": "system", "openapi.json": "system",
           "docs": "system", "channels": "devices"}
#: What each group is about (groups of routes added later without an entry here get none).
TAG_DESCRIPTIONS = {
    "auth": "Log in and out; who am I.",
    "system": "Health of the process, and this description of the API.",
    "tags": "Current values and history of tags (`<device>.<point>`).",
    "devices": "Communication statistics per device and per channel (bus segment); archive gaps.",
    "alarms": "Alarm list, journal and operator actions (ISA-18.2 states).",
    "readings": "Manual (hand-read) meter readings.",
    "sim": "Simulator control: force a simulated meter's values or faults (simulated sites only).",
    "integrations": "Uplinks pushed over HTTP by ChirpStack or NB-IoT platforms.",
    "registry": "Buildings, premises and meters; meter lifecycle events.",
    "reports": "Apartment (ИПУ) and building (ОДПУ) meter reports and balances.",
    "billing": "Readings and consumption per account for a billing period.",
}
INFO_DESCRIPTION = """\
The HTTP API of the metering dispatch system. JSON in and out; times are ISO 8601 UTC;
every error is a 4xx or 5xx answer with the body `{"error": "..."}` saying what is wrong.

**Authentication.** Send `Authorization: Bearer <token>`: an API token
(`scada token create --name NAME --role ROLE`) or the session token that
`POST /api/v1/login` answers (it also sets the session cookie `scada_session`).
No or bad credentials: 401. A role the route does not admit: 403.
Each operation lists the roles it admits; `admin` may call every route that is not public.
On a site with `api.auth: false` (demos only) everyone is an anonymous admin.
"""

#: The API's error answer.
ERROR: dict[str, Any] = {"$ref": "#/components/schemas/Error"}

_COMPONENTS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "description": "Every error answer: what is wrong, naming the bad value.",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
}


def component(name: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """Register the JSON Schema ``schema`` as ``#/components/schemas/<name>``; return a ``$ref`` to it.

    Call it at import time, like a route decorator.  Registering another
    schema under a name already taken raises ValueError (the same one again
    is fine: modules may be reloaded by tests).
    """
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise ValueError(f"component name {name!r}: use letters, digits, '.', '_' or '-'")
    schema = dict(schema)
    known = _COMPONENTS.get(name)
    if known is not None and known != schema:
        raise ValueError(f"component {name!r} is already registered with another schema")
    _COMPONENTS[name] = schema
    return {"$ref": f"#/components/schemas/{name}"}


def param(description: str, type: str | list[str] = "string", *, required: bool = False,
          location: str = "query", enum: Sequence[Any] | None = None, default: Any = None,
          example: Any = None, format: str | None = None, **schema: Any) -> dict[str, Any]:
    """Return the description of one parameter for :func:`doc`'s ``params``.

    ``type``, ``enum``, ``default``, ``format`` and any other keyword
    (``minimum``, ``maximum``, ``pattern``, ``items``, ``maxLength`` ...)
    make up its JSON Schema; ``location`` is query, path, header or cookie.
    """
    if location not in _LOCATIONS:
        raise ValueError(f"parameter location {location!r} is not one of {', '.join(_LOCATIONS)}")
    body: dict[str, Any] = {"type": type, **schema}
    if enum is not None:
        body["enum"] = list(enum)
    if default is not None:
        body["default"] = default
    if format is not None:
        body["format"] = format
    out: dict[str, Any] = {"in": location, "description": description, "required": required or location == "path",
                           "schema": body}
    if example is not None:
        out["example"] = example
    return out


#: ``?from=`` of a time range.
TIME_FROM = param("Start of the range, ISO 8601 (e.g. 2026-11-21T07:00:00Z; no offset means UTC).",
                  format="date-time")
#: ``?to=`` of a time range.
TIME_TO = param("End of the range (excluded), ISO 8601; default now.", format="date-time")
#: ``?lang=``: the language of messages and headers.
LANG = param("Language of messages and column headers; anything else is the default.", enum=LANGUAGES,
             default=LANGUAGES[0])


def error_response(description: str) -> dict[str, Any]:
    """Return a Response Object for :func:`doc`'s ``responses``: the API's error answer, described."""
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


def file_response(description: str, *media_types: str) -> dict[str, Any]:
    """Return a Response Object for :func:`doc`'s ``responses``: a file download of one of ``media_types``."""
    return {"description": description,
            "content": {media: {"schema": {"type": "string", "format": "binary"}} for media in media_types}}


#: The media type of an XLSX workbook.
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def json_or_file(schema: Mapping[str, Any], *media_types: str, description: str = "JSON, or a file to download "
                 "(?format=)") -> dict[str, Any]:
    """Return a Response Object for :func:`doc`'s ``responses``: JSON of ``schema``, or a file of ``media_types``.

    For routes whose ``?format=`` picks JSON or an export, e.g.
    ``responses={200: json_or_file(PAGE, "text/csv", XLSX)}``.
    """
    return {"description": description,
            "content": {"application/json": {"schema": dict(schema)}, **file_response("", *media_types)["content"]}}


def doc(summary: str | None = None, description: str | None = None, *,
        params: Mapping[str, Mapping[str, Any]] | None = None,
        body: Mapping[str, Any] | None = None, body_required: bool = True,
        responses: Mapping[int | str, Any] | None = None,
        tags: Sequence[str] | None = None, deprecated: bool = False) -> Callable[[H], H]:
    """Describe a route in the OpenAPI description; put it under the route decorator (with ``@roles``).

    - ``summary``, ``description``: default from the handler's docstring.
    - ``params``: name → :func:`param`'s result, or a dict holding Parameter
      Object keys (``in`` defaults to ``query``) and/or JSON Schema keys
      (``{"type": "integer", "minimum": 1}``).  Path parameters come from
      the route; declaring one here only adds its description or schema.
    - ``body``: the JSON Schema of a JSON request body, or a whole Request
      Body Object (a dict with ``content``) for other media types;
      ``body_required`` says whether a body must be sent.
    - ``responses``: status (``200``, ``"4XX"``, ``"default"``) → a JSON
      Schema (a JSON answer), a Response Object (a dict with ``content``,
      e.g. :func:`file_response`), ``(description, schema)``, or a string: a
      description (an error answer for 4xx/5xx).
    - ``tags``: the groups on the docs page; default: the path's first
      segment after ``/api/v1/``.

    Mistakes (an unknown parameter location, a bad status) raise ValueError
    when the module is imported.
    """
    record: dict[str, Any] = {"summary": summary, "description": description, "tags": list(tags or []),
                              "deprecated": deprecated, "params": {}, "body": None, "responses": {}}
    for name, spec in (params or {}).items():
        record["params"][name] = _parameter(name, spec)
    if body is not None:
        if not isinstance(body, Mapping):
            raise TypeError("doc(body=...) takes a JSON Schema or a Request Body Object (a dict)")
        request_body = dict(body) if "content" in body else {"content": {"application/json": {"schema": dict(body)}}}
        request_body.setdefault("required", body_required)
        record["body"] = request_body
    for status, spec in (responses or {}).items():
        key = _status_key(status)
        record["responses"][key] = _response(key, spec)

    def decorate(handler: H) -> H:
        setattr(handler, ATTR, record)
        return handler

    return decorate


def _parameter(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Return the Parameter Object (with ``name``) for one entry of ``doc(params=...)``."""
    if not isinstance(spec, Mapping):
        raise TypeError(f"doc(params=...): {name!r} must be a dict (use param(...))")
    out = {key: value for key, value in spec.items() if key in _PARAMETER_KEYS}
    schema = {key: value for key, value in spec.items() if key not in _PARAMETER_KEYS}
    if schema:
        out["schema"] = {**out.get("schema", {}), **schema}
    out.setdefault("in", "query")
    if out["in"] not in _LOCATIONS:
        raise ValueError(f"doc(params=...): {name!r} has location {out['in']!r}, not one of {', '.join(_LOCATIONS)}")
    if "content" not in out:
        out.setdefault("schema", {"type": "string"})
    out["required"] = bool(out.get("required")) or out["in"] == "path"
    return {"name": name, **out}


def _status_key(status: int | str) -> str:
    key = str(status)
    if key == "default" or re.fullmatch(r"[1-5](?:\d\d|XX)", key):
        return key
    raise ValueError(f"doc(responses=...): {status!r} is not an HTTP status, '4XX' or 'default'")


def _reason(key: str) -> str:
    try:
        return HTTPStatus(int(key)).phrase
    except ValueError:
        return "Error" if key[0] in "45" or key == "default" else "Answer"


def _response(key: str, spec: Any) -> dict[str, Any]:
    """Return the Response Object for one entry of ``doc(responses=...)``."""
    error = key == "default" or key[0] in "45"
    if isinstance(spec, str):
        return error_response(spec) if error else {"description": spec}
    if isinstance(spec, tuple) and len(spec) == 2:
        text, schema = spec
        return {"description": text, "content": {"application/json": {"schema": dict(schema)}}}
    if isinstance(spec, Mapping):
        if "content" in spec or set(spec) <= {"description", "headers"}:
            return {"description": _reason(key), **spec}
        return {"description": _reason(key), "content": {"application/json": {"schema": dict(spec)}}}
    raise TypeError(f"doc(responses=...): {key}: give a schema dict, a Response Object, (description, schema) "
                    f"or a description, not {type(spec).__name__}")


# --------------------------------------------------------------------------
# Building the description


def handler_attr(handler: Any, attr: str) -> Any:
    """Return ``attr`` of a route handler (None if it has none), looking through partials and ``__wrapped__``.

    Sanic wraps WebSocket handlers in a partial; decorators leave
    ``__wrapped__``.  ``@doc`` and ``@roles`` records are found this way.
    """
    for _ in range(8):
        if handler is None:
            return None
        found = getattr(handler, attr, None)
        if found is not None:
            return found
        if isinstance(handler, functools.partial):
            handler = handler.args[0] if handler.args and callable(handler.args[0]) else handler.func
        else:
            handler = getattr(handler, "__wrapped__", None)
    return None


_SPHINX_ROLE = re.compile(r":(?:func|data|class|meth|mod|attr|exc|const|obj):`~?([^`]+)`")


def _unwrap(handler: Any) -> Any:
    """Return the function inside the partial Sanic wraps WebSocket handlers in."""
    while isinstance(handler, functools.partial):
        handler = handler.args[0] if handler.args and callable(handler.args[0]) else handler.func
    return handler


def _texts(route) -> tuple[str, str, Mapping[str, Any] | None]:
    """Return the route's (summary, description, doc record): from :func:`doc`, else from the handler's docstring.

    The docstring's first paragraph is the summary, the rest the
    description; Sphinx roles (``:data:`X```) become plain code.
    """
    text = inspect.cleandoc(getattr(_unwrap(route.handler), "__doc__", None) or "")
    first, _, rest = _SPHINX_ROLE.sub(r"``\1``", text).partition("\n\n")
    summary, description = " ".join(first.split()), rest.strip()
    record = handler_attr(route.handler, ATTR)
    if record is not None:
        summary = record["summary"] or summary
        if record["description"] is not None:
            description = _SPHINX_ROLE.sub(r"``\1``", inspect.cleandoc(record["description"]))
    return summary, description, record


def _openapi_path(route) -> str:
    """Return the route's path in OpenAPI form: ``/api/v1/tags/{name}``."""
    return "/" + re.sub(r"<([^:<>]+)(?::[^<>]*)?>", r"{\1}", route.path)


def _path_parameters(route) -> list[dict[str, Any]]:
    """Return the Parameter Objects of the route's path parameters, in path order, typed by their Sanic label."""
    params = []
    for index in sorted(route.defined_params):
        info = route.defined_params[index]
        schema = dict(_PATH_TYPES.get(info.label, {"type": "string"}))
        params.append({"name": info.name, "in": "path", "required": True, "schema": schema})
    return params


def _tag(route, record: Mapping[str, Any] | None) -> list[str]:
    if record and record["tags"]:
        return list(record["tags"])
    parts = route.path.split("/")
    segment = parts[2] if len(parts) > 2 and parts[:2] == ["api", "v1"] else parts[0]
    return [_TAG_OF.get(segment, segment.split("<")[0] or "other")]


def _roles_text(allowed: frozenset[str] | None, public: bool) -> str:
    if public:
        return "**Public**: no credentials needed."
    if allowed is None:
        return "**Roles**: none declared (nobody may call it)."
    others = sorted(allowed - {"admin"})
    return "**Roles**: " + ", ".join(others + ["admin"]) + "."


def _operation(route, method: str, operation_id: str) -> dict[str, Any]:
    """Return the Operation Object of ``method`` on ``route``."""
    from scada.api.auth import declared_roles  # not at the top: scada.api.auth uses doc()

    summary, description, record = _texts(route)
    allowed = declared_roles(route)
    public = allowed == frozenset(PUBLIC)
    roles_line = _roles_text(allowed, public)
    op: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary or f"{method.upper()} {_openapi_path(route)}",
        "description": (description + "\n\n" if description else "") + roles_line,
        "tags": _tag(route, record),
        "x-roles": ["public"] if public else sorted(allowed or ()),
    }
    if record is not None and record["deprecated"]:
        op["deprecated"] = True
    parameters = {p["name"]: p for p in _path_parameters(route)}
    for name, declared in (record["params"] if record else {}).items():
        if declared["in"] == "path":
            if name not in parameters:
                raise ValueError(f"{route.name}: doc() declares path parameter {name!r}, which the route lacks")
            merged = {**parameters[name], **declared}
            merged["schema"] = {**parameters[name]["schema"], **declared.get("schema", {})}
            parameters[name] = merged
        else:
            parameters[f"{declared['in']}:{name}"] = declared
    if parameters:
        op["parameters"] = list(parameters.values())
    if record is not None and record["body"] is not None and method not in ("get", "head", "delete"):
        op["requestBody"] = record["body"]
    responses: dict[str, Any] = dict(record["responses"]) if record else {}
    if not any(key.startswith("2") for key in responses):
        responses["200"] = {"description": "OK"}
    if not public:
        responses.setdefault("401", {"$ref": "#/components/responses/Unauthorized"})
        responses.setdefault("403", {"$ref": "#/components/responses/Forbidden"})
    responses.setdefault("default", {"$ref": "#/components/responses/Error"})
    op["responses"] = dict(sorted(responses.items(), key=lambda item: (item[0] == "default", item[0])))
    op["security"] = [] if public else [{"bearer": []}, {"session": []}]
    return op


def _websocket(route) -> dict[str, Any]:
    """Return what ``x-websockets`` says of a WebSocket route (its protocol goes in its ``doc(description=...)``)."""
    from scada.api.auth import declared_roles

    summary, description, _ = _texts(route)
    allowed = declared_roles(route)
    public = allowed == frozenset(PUBLIC)
    return {"path": _openapi_path(route), "summary": summary, "description": description,
            "x-roles": ["public"] if public else sorted(allowed or ()), "roles": _roles_text(allowed, public),
            "authentication": "Authorization: Bearer <token>, the session cookie, or ?token=<token> "
                              "(browsers cannot set headers on a WebSocket)."}


def build_spec(app, version: str | None = None) -> dict[str, Any]:
    """Return the OpenAPI 3.1 description of every route of ``app`` (a dict, ready for JSON)."""
    paths: dict[str, dict[str, Any]] = {}
    websockets = []
    used_ids: set[str] = set()
    routes = sorted(app.router.routes, key=lambda r: (_openapi_path(r), sorted(r.methods)))
    for route in routes:
        if not route.path.startswith("api/"):
            continue  # the HMI's page and files are not the API
        if route.extra.websocket:
            websockets.append(_websocket(route))
            continue
        path = _openapi_path(route)
        base_id = route.name.split(".", 1)[-1]
        methods = [m.lower() for m in sorted(route.methods) if m.lower() in _METHODS]
        for method in methods:
            operation_id = base_id if len(methods) == 1 else f"{base_id}.{method}"
            while operation_id in used_ids:
                operation_id += "_"
            used_ids.add(operation_id)
            paths.setdefault(path, {})[method] = _operation(route, method, operation_id)
    tags = sorted({tag for item in paths.values() for op in item.values() for tag in op["tags"]})
    schemas = _referenced(paths)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Metering dispatch (scada-metering) API", "version": version or installed_version(),
                 "description": INFO_DESCRIPTION},
        "tags": [{"name": tag, **({"description": TAG_DESCRIPTIONS[tag]} if tag in TAG_DESCRIPTIONS else {})}
                 for tag in tags],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                "Error": error_response("An error: what is wrong, naming the bad value."),
                "Unauthorized": {**error_response("No or bad credentials (send 'Authorization: Bearer <token>')."),
                                 "headers": {"WWW-Authenticate": {"schema": {"type": "string"},
                                                                  "description": 'Bearer realm="scada"'}}},
                "Forbidden": error_response("The caller's role may not call this route."),
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "An API token (`scada token create`) or a session token "
                                          "(`POST /api/v1/login`)."},
                "session": {"type": "apiKey", "in": "cookie", "name": "scada_session",
                            "description": "The session cookie `POST /api/v1/login` sets."},
            },
        },
        "security": [{"bearer": []}, {"session": []}],
        "x-websockets": websockets,
    }


_REF = re.compile(r'"#/components/schemas/([A-Za-z0-9._-]+)"')


def _referenced(paths: Mapping[str, Any]) -> dict[str, Any]:
    """Return the registered components ``paths`` refer to, directly or through other components, by name."""
    found: dict[str, Any] = {"Error": _COMPONENTS["Error"]}  # the shared error answers refer to it
    todo = set(_REF.findall(jsonlib.dumps(paths)))
    while todo:
        name = todo.pop()
        if name in found:
            continue
        if name not in _COMPONENTS:
            raise ValueError(f"a route refers to #/components/schemas/{name}, which nobody registered with component()")
        found[name] = _COMPONENTS[name]
        todo |= set(_REF.findall(jsonlib.dumps(found[name])))
    return dict(sorted(found.items()))


def spec_of(app) -> dict[str, Any]:
    """Return ``app``'s description, built once (the routes do not change once the app serves)."""
    spec = getattr(app.ctx, "openapi_spec", None)
    if spec is None:
        spec = app.ctx.openapi_spec = build_spec(app)
    return spec


# --------------------------------------------------------------------------
# The docs page

_METHOD_COLOURS = {"get": "#2f6f3e", "post": "#1d4f91", "put": "#8a5a00", "patch": "#8a5a00", "delete": "#9b1c1c"}
_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
header{background:#1b2b3a;color:#fff;padding:16px 24px}header h1{margin:0;font-size:22px}
header a{color:#cfe3ff}main{display:flex;gap:24px;padding:16px 24px;align-items:flex-start}
nav{position:sticky;top:8px;min-width:250px;max-width:300px;max-height:95vh;overflow:auto;font-size:13px}
nav ul{list-style:none;padding-left:8px;margin:4px 0 12px}nav a{color:#1b2b3a;text-decoration:none}
nav a:hover{text-decoration:underline}article{flex:1;min-width:0}
section.op{background:#fff;border:1px solid #d8dde3;border-radius:6px;margin:10px 0;padding:10px 14px}
.m{display:inline-block;min-width:58px;text-align:center;color:#fff;border-radius:4px;font-weight:600;
font-size:12px;padding:2px 6px;margin-right:8px;text-transform:uppercase}
.path{font-family:ui-monospace,Consolas,monospace;font-weight:600}.summary{color:#444;margin-left:8px}
table{border-collapse:collapse;margin:6px 0;width:100%}th,td{border:1px solid #e1e4e8;padding:4px 8px;
text-align:left;vertical-align:top;font-size:13px}th{background:#f0f2f4}
code,pre{font-family:ui-monospace,Consolas,monospace;font-size:12.5px}pre{background:#f3f4f6;padding:8px;
overflow:auto;border-radius:4px}.roles{color:#5b3b00;font-size:13px}.req{color:#9b1c1c;font-weight:600}
ul.schema{margin:2px 0;padding-left:18px}h2{border-bottom:2px solid #d8dde3;padding-bottom:4px;margin-top:28px}
#filter{width:100%;padding:6px;margin-bottom:8px;box-sizing:border-box}
"""
_FILTER_JS = """
document.getElementById('filter').addEventListener('input',function(e){var q=e.target.value.toLowerCase();
document.querySelectorAll('section.op').forEach(function(s){s.style.display=
s.textContent.toLowerCase().indexOf(q)>=0?'':'none';});});
"""


def _inline(value: str) -> str:
    """Return one line of description text as HTML: escaped, ``code`` and `code`, **bold**."""
    escaped = html.escape(" ".join(str(value).split()))
    escaped = re.sub(r"``(.+?)``|`(.+?)`", lambda m: f"<code>{m.group(1) or m.group(2)}</code>", escaped)
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)


def _text(value: str) -> str:
    """Return description text as HTML paragraphs (see :func:`_inline`)."""
    return "".join(f"<p>{_inline(paragraph)}</p>" for paragraph in re.split(r"\n\s*\n", value.strip()))


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _schema_type(schema: Mapping[str, Any]) -> str:
    """Return a short type name of a JSON Schema: ``string (date-time)``, ``array of Alarm``, ``one of ...``."""
    if "$ref" in schema:
        name = html.escape(_ref_name(schema["$ref"]))
        return f'<a href="#schema-{name}">{name}</a>'
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return ("one of " if key == "oneOf" else "any of ") + " | ".join(_schema_type(s) for s in schema[key])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        text = " | ".join(html.escape(str(k)) for k in kind)
    else:
        text = html.escape(str(kind))
    if kind == "array" and isinstance(schema.get("items"), Mapping):
        text = "array of " + _schema_type(schema["items"])
    if "format" in schema:
        text += f" ({html.escape(str(schema['format']))})"
    details = []
    if "enum" in schema:
        details.append("one of " + ", ".join(f"<code>{html.escape(jsonlib.dumps(v, ensure_ascii=False))}</code>"
                                             for v in schema["enum"]))
    if "default" in schema:
        details.append(f"default <code>{html.escape(jsonlib.dumps(schema['default'], ensure_ascii=False))}</code>")
    for key, label in (("minimum", "≥"), ("maximum", "≤"), ("minLength", "length ≥"), ("maxLength", "length ≤"),
                       ("maxItems", "items ≤"), ("pattern", "pattern")):
        if key in schema:
            details.append(f"{label} <code>{html.escape(str(schema[key]))}</code>")
    return text + (f"; {'; '.join(details)}" if details else "")


def _schema_html(schema: Mapping[str, Any], depth: int = 0) -> str:
    """Return a JSON Schema as a nested HTML list: type, then properties with their types and descriptions."""
    parts = [_schema_type(schema)]
    if schema.get("description") and depth == 0:
        parts.append(" — " + _inline(schema["description"]))
    properties = schema.get("properties")
    if schema.get("type") == "array" and isinstance(schema.get("items"), Mapping) and "$ref" not in schema["items"]:
        properties = schema["items"].get("properties")
        required = set(schema["items"].get("required", ()))
    else:
        required = set(schema.get("required", ()))
    if isinstance(properties, Mapping) and depth < 4:
        items = []
        for name, sub in properties.items():
            mark = ' <span class="req">*</span>' if name in required else ""
            note = f" — {_inline(sub['description'])}" if sub.get("description") else ""
            items.append(f"<li><code>{html.escape(name)}</code>{mark}: {_schema_html(sub, depth + 1)}{note}</li>")
        parts.append('<ul class="schema">' + "".join(items) + "</ul>")
    return "".join(parts)


def _resolve_response(spec: Mapping[str, Any], response: Mapping[str, Any]) -> Mapping[str, Any]:
    if "$ref" in response:
        return spec["components"]["responses"].get(_ref_name(response["$ref"]), {})
    return response


def _operation_html(spec: Mapping[str, Any], path: str, method: str, op: Mapping[str, Any]) -> str:
    colour = _METHOD_COLOURS.get(method, "#555")
    anchor = html.escape(op["operationId"])
    out = [f'<section class="op" id="{anchor}"><div><span class="m" style="background:{colour}">{method}</span>'
           f'<span class="path">{html.escape(path)}</span><span class="summary">{_inline(op["summary"])}</span>'
           "</div>"]
    if op.get("description"):
        out.append(_text(op["description"]))
    if op.get("parameters"):
        out.append("<table><tr><th>Parameter</th><th>In</th><th>Type</th><th>Description</th></tr>")
        for p in op["parameters"]:
            mark = ' <span class="req">required</span>' if p.get("required") else ""
            out.append(f"<tr><td><code>{html.escape(p['name'])}</code>{mark}</td><td>{html.escape(p['in'])}</td>"
                       f"<td>{_schema_type(p.get('schema', {}))}</td>"
                       f"<td>{_inline(p.get('description', ''))}</td></tr>")
        out.append("</table>")
    body = op.get("requestBody")
    if body:
        required = " (required)" if body.get("required") else " (optional)"
        out.append(f"<p><strong>Request body</strong>{required}</p><ul class=\"schema\">")
        for media, content in body.get("content", {}).items():
            out.append(f"<li><code>{html.escape(media)}</code>: {_schema_html(content.get('schema', {}))}</li>")
        out.append("</ul>")
    out.append("<table><tr><th>Status</th><th>Answer</th></tr>")
    for status, response in op.get("responses", {}).items():
        response = _resolve_response(spec, response)
        cells = [_inline(response.get("description", ""))]
        for media, content in response.get("content", {}).items():
            cells.append(f"<br><code>{html.escape(media)}</code>: {_schema_html(content.get('schema', {}))}")
        out.append(f"<tr><td>{html.escape(status)}</td><td>{''.join(cells)}</td></tr>")
    out.append("</table></section>")
    return "".join(out)


def render_html(spec: Mapping[str, Any]) -> str:
    """Return the docs page: ``spec`` as one self-contained HTML document (inline style, no outside resources)."""
    info = spec["info"]
    title = html.escape(info["title"])
    by_tag: dict[str, list[tuple[str, str, Mapping[str, Any]]]] = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            by_tag.setdefault(op["tags"][0], []).append((path, method, op))
    tag_text = {t["name"]: t.get("description", "") for t in spec.get("tags", ())}
    nav, body = [], []
    for tag in sorted(by_tag):
        nav.append(f'<li><a href="#tag-{html.escape(tag)}"><strong>{html.escape(tag)}</strong></a><ul>')
        body.append(f'<h2 id="tag-{html.escape(tag)}">{html.escape(tag)}</h2>')
        if tag_text.get(tag):
            body.append(_text(tag_text[tag]))
        for path, method, op in by_tag[tag]:
            nav.append(f'<li><a href="#{html.escape(op["operationId"])}">{method.upper()} '
                       f'{html.escape(path.removeprefix("/api/v1"))}</a></li>')
            body.append(_operation_html(spec, path, method, op))
        nav.append("</ul></li>")
    sockets = spec.get("x-websockets", [])
    if sockets:
        nav.append('<li><a href="#websockets"><strong>WebSockets</strong></a></li>')
        body.append('<h2 id="websockets">WebSockets</h2><p>OpenAPI 3 cannot describe WebSocket message '
                    "streams; these are listed here and under <code>x-websockets</code> in the JSON.</p>")
        for ws in sockets:
            body.append(f'<section class="op"><div><span class="m" style="background:#6b3fa0">ws</span>'
                        f'<span class="path">{html.escape(ws["path"])}</span>'
                        f'<span class="summary">{_inline(ws["summary"])}</span></div>'
                        f'{_text(ws["roles"])}<p>{html.escape(ws["authentication"])}</p>'
                        f'<pre>{html.escape(ws["description"])}</pre></section>')
    schemas = spec["components"]["schemas"]
    nav.append('<li><a href="#schemas"><strong>Schemas</strong></a></li>')
    body.append('<h2 id="schemas">Schemas</h2>')
    for name, schema in schemas.items():
        body.append(f'<section class="op" id="schema-{html.escape(name)}"><span class="path">{html.escape(name)}'
                    f"</span><div>{_schema_html(schema)}</div></section>")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
            f"<style>{_CSS}</style></head><body><header><h1>{title}</h1>"
            f'<div>Version {html.escape(info["version"])} · OpenAPI {html.escape(spec["openapi"])} · '
            f'<a href="openapi.json">openapi.json</a></div></header><main><nav>'
            f'<input id="filter" type="search" placeholder="Filter operations" aria-label="Filter operations">'
            f'<ul>{"".join(nav)}</ul></nav><article>{_text(info.get("description", ""))}{"".join(body)}'
            f"</article></main><script>{_FILTER_JS}</script></body></html>")
