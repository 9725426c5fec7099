"""The OpenAPI description and the docs page: every route in it, parameters declared, a valid OpenAPI 3.1 document.

Runs over the whole-API site of :mod:`tests.scada.api_site` (auth on, no
ports).  The fuzzing itself is in ``test_api_schemathesis.py``.
"""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate
from sanic import Blueprint
from sanic.response import json

from scada import auth
from scada.api import auth as api_auth
from scada.api import build_app
from scada.api import openapi
from scada.api.alarms import STATES
from scada.api.auth import roles
from scada.api.openapi import build_spec, component, doc, param, render_html
from tests.scada.api_site import build_site


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One whole-API site for the module (the description does not change)."""
    built = build_site(tmp_path_factory.mktemp("openapi"))
    yield built
    built.close()


@pytest.fixture(scope="module")
def spec(site):
    """The description the site serves, without credentials."""
    reply = site.call("GET", "/api/v1/openapi.json")
    assert reply.status == 200 and reply.headers["content-type"].startswith("application/json")
    return reply.json


def _template(route) -> str:
    return "/" + re.sub(r"<([^:<>]+)(?::[^<>]*)?>", r"{\1}", route.path)


def test_every_route_is_described(site, spec):
    """Every API route and method is an operation; every WebSocket route is under x-websockets.

    The HMI's page and files (``/``, ``/hmi/...``) and Prometheus' ``/metrics`` are not the API and are
    left out.
    """
    sockets = {ws["path"] for ws in spec["x-websockets"]}
    operations = 0
    for route in site.app.router.routes:
        path = _template(route)
        if not path.startswith("/api/"):
            assert path in ("/", "/hmi/{path}", "/metrics") and path not in spec["paths"], path
            continue
        if route.extra.websocket:
            assert path in sockets, path
            continue
        for method in route.methods:
            op = spec["paths"][path][method.lower()]
            operations += 1
            declared = api_auth.declared_roles(route)
            if declared == frozenset(auth.PUBLIC):
                assert op["security"] == [] and op["x-roles"] == ["public"] and "**Public**" in op["description"]
            else:
                assert op["x-roles"] == sorted(declared) and "**Roles**" in op["description"]
                assert {"401", "403"} <= set(op["responses"])
            assert "default" in op["responses"] and op["summary"]
            names = {p["name"] for p in op.get("parameters", ()) if p["in"] == "path"}
            assert names == set(re.findall(r"{([^}]+)}", path)), (path, names)
    assert operations == sum(len(item) for item in spec["paths"].values())
    assert "/api/v1/live" in sockets


def test_the_description_is_valid_openapi(spec):
    """openapi-spec-validator accepts it as OpenAPI 3.1; operation ids are unique."""
    validate(spec)
    assert spec["openapi"].startswith("3.1")
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_query_parameters_are_declared(spec):
    """The routes' query parameters are declared with their types and enumerations (what schemathesis fuzzes)."""

    def query(path, method="get"):
        return {p["name"]: p for p in spec["paths"][path][method].get("parameters", ()) if p["in"] == "query"}

    history = query("/api/v1/tags/{name}/history")
    assert set(history) == {"from", "to", "every"} and history["from"]["schema"]["format"] == "date-time"
    assert query("/api/v1/alarms")["state"]["schema"]["enum"] == list(STATES)
    assert query("/api/v1/alarms/journal")["format"]["schema"]["enum"] == ["json", "csv", "xlsx"]
    assert set(query("/api/v1/readings/manual")) == {"tag", "from", "to"}
    from channels.lorawan.hub import CHIRPSTACK_EVENTS
    from channels.sim.slave import FAULTS

    event = query("/api/v1/integrations/chirpstack", "post")["event"]
    assert event["required"] and event["schema"]["enum"] == list(CHIRPSTACK_EVENTS)
    body = spec["paths"]["/api/v1/sim/devices/{name}"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["properties"]["fault"]["enum"] == list(FAULTS)


def _value(parameter: dict) -> str:
    """A plausible value of a declared query parameter."""
    schema = parameter.get("schema", {})
    if "enum" in schema:
        return str(schema["enum"][0])
    for value in (parameter.get("example"), schema.get("default")):
        if value is not None:
            return str(value)
    if schema.get("format") == "date-time":
        return "2026-11-19T07:00:00Z"
    if schema.get("format") == "date":
        return "2026-11-19"
    if schema.get("type") == "integer":
        return str(schema.get("minimum", 1))
    return "x"


def test_declared_query_parameters_are_accepted(site, spec):
    """A GET with every declared query parameter is not refused for an unknown parameter (declared = accepted).

    Where a path parameter is an enumeration (a report's kind), one of its
    values must accept them all.
    """
    from itertools import product
    from urllib.parse import quote, urlencode

    for path, item in spec["paths"].items():
        op = item.get("get")
        if op is None:
            continue
        params = op.get("parameters", ())
        in_path = [p for p in params if p["in"] == "path"]
        choices = [p["schema"].get("enum") or [_value(p)] for p in in_path]
        query = urlencode({p["name"]: _value(p) for p in params if p["in"] == "query"})
        refusals = []
        for values in product(*choices):
            target = path
            for p, value in zip(in_path, values):
                target = target.replace("{" + p["name"] + "}", quote(str(value), safe=""))
            reply = site.call("GET", f"{target}?{query}", token=site.tokens["admin"])
            assert reply.status < 500, (target, reply.status, reply.text)
            if reply.status == 400 and "unknown parameter" in reply.json["error"]:
                refusals.append(reply.json["error"])
        assert len(refusals) < len(list(product(*choices))), (path, refusals)


def test_a_route_without_doc_still_appears_and_doc_adds_detail(site):
    """A bare route has its path parameters, roles and error answers; doc() adds params, body, answers, tags."""
    bp = Blueprint("openapi_probe", url_prefix="/api/v1/probe")

    @bp.get("/<item:int>/bare")
    @roles("viewer")
    async def bare(request, item):
        """Read one item.

        More words.
        """
        return json({})

    @bp.post("/<name:str>")
    @roles("engineer")
    @doc("Change a thing", params={"name": param("The thing", location="path", example="t1"),
                                   "level": param("How much", "integer", required=True, minimum=1, maximum=3)},
         body={"type": "object", "properties": {"on": {"type": "boolean"}}}, body_required=False,
         responses={201: {"type": "object"}, 409: "in the wrong state"}, tags=["things"])
    async def change(request, name):
        return json({}, status=201)

    app = build_app(site.runtime)  # a fresh app: the site's has started and its routes are final
    app.blueprint(bp)
    described = build_spec(app)
    plain = described["paths"]["/api/v1/probe/{item}/bare"]["get"]
    assert plain["summary"] == "Read one item." and plain["description"].startswith("More words.")
    assert plain["parameters"] == [{"name": "item", "in": "path", "required": True, "schema": {"type": "integer"}}]
    assert plain["x-roles"] == ["admin", "viewer"] and "**Roles**: viewer, admin." in plain["description"]
    assert set(plain["responses"]) == {"200", "401", "403", "default"} and plain["tags"] == ["probe"]
    rich = described["paths"]["/api/v1/probe/{name}"]["post"]
    assert rich["summary"] == "Change a thing" and rich["tags"] == ["things"]
    by_name = {p["name"]: p for p in rich["parameters"]}
    assert by_name["name"]["example"] == "t1" and by_name["name"]["schema"]["pattern"] == "^[^/]+$"
    assert by_name["level"] == {"name": "level", "in": "query", "description": "How much", "required": True,
                                "schema": {"type": "integer", "minimum": 1, "maximum": 3}}
    assert rich["requestBody"]["required"] is False
    assert rich["responses"]["201"]["content"]["application/json"]["schema"] == {"type": "object"}
    assert rich["responses"]["409"]["content"]["application/json"]["schema"] == openapi.ERROR


def test_doc_refuses_mistakes_at_import_time():
    """A bad parameter location, a status that is no status, a component name taken: errors when declared."""
    with pytest.raises(ValueError, match="location"):
        doc(params={"x": {"in": "body"}})
    with pytest.raises(ValueError, match="HTTP status"):
        doc(responses={"ok": "fine"})
    with pytest.raises(ValueError, match="location"):
        param("x", location="form")
    component("OpenapiTestThing", {"type": "object"})
    component("OpenapiTestThing", {"type": "object"})  # the same again is fine
    with pytest.raises(ValueError, match="already registered"):
        component("OpenapiTestThing", {"type": "string"})


def test_docs_page_is_public_self_contained_and_complete(site, spec):
    """/api/v1/docs is HTML without credentials, names every operation, and loads nothing from elsewhere."""
    reply = site.call("GET", "/api/v1/docs")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/html")
    page = reply.text
    assert page == render_html(spec)
    for path, item in spec["paths"].items():
        assert f">{path}<" in page
        for op in item.values():
            assert f'id="{op["operationId"]}"' in page
    assert "/api/v1/live" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "the page must not load remote resources"
    assert "<link" not in page and "@import" not in page


def test_both_routes_are_public_with_auth_on(site):
    """Without credentials: 200 for the description and the page, 401 for a data route."""
    assert site.call("GET", "/api/v1/openapi.json").status == 200
    assert site.call("GET", "/api/v1/docs").status == 200
    assert site.call("GET", "/api/v1/tags").status == 401


def test_percent_encoded_path_parameters_name_the_same_thing(site):
    """An OpenAPI client encodes an alarm id's ':' (%3A): the same alarm; %2F is a '/' inside the name, not a path."""
    admin = site.tokens["admin"]
    alarm = site.call("GET", "/api/v1/alarms/b1-supply%3Ab1-heat.t_supply_c%3Ahi", token=admin)
    assert alarm.status == 200 and alarm.json["alarm"]["id"] == "b1-supply:b1-heat.t_supply_c:hi"
    assert site.call("GET", "/api/v1/tags/b1-heat.t_supply_%63", token=admin).json["name"] == "b1-heat.t_supply_c"
    missing = site.call("GET", "/api/v1/tags/a%2Fb", token=admin)
    assert missing.status == 404 and missing.json["error"] == "unknown tag 'a/b'"
