"""Registry API: buildings, meters, the due list, lifecycle events; 400/404/403, never a 500 for junk.

Runs straight through the Sanic app's ASGI interface on a runtime driven by
``task.Clock`` (no ports, no sleeps), with API tokens for every role.
"""

from __future__ import annotations

import json as jsonlib
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scada.registry import EVENT_KINDS
from tags.timefmt import parse_iso
from tests.scada.api_site import RoleSite, role_site
from tests.scada.asgi import Reply

T0 = parse_iso("2026-11-20T12:00:00Z")
BASE = "/api/v1/registry"

SITE = textwrap.dedent("""\
    site: {name: registry api test, timezone: Europe/Moscow}
    history: {backend: sqlite, path: history.db}
    channels:
      - name: gw
        type: modbus-rtu
        transport: {tcp: 127.0.0.1:1}
        devices:
          - {name: b1-heat, address: 1, profile: heat, next_verification: 2026-12-10}
          - {name: b1-cold, address: 2, profile: water}
          - {name: b1-kv01-cold, address: 11, profile: water}
          - {name: b1-kv02-cold, address: 21, profile: water}
          - {name: weather, address: 5, profile: outdoor}
    profiles:
      heat:
        points:
          - {name: energy_kwh, function: holding, register: 0, type: u32, unit: kWh}
          - {name: t_supply_c, function: holding, register: 2, type: i16, unit: °C}
          - {name: t_return_c, function: holding, register: 3, type: i16, unit: °C}
      water:
        points:
          - {name: volume_m3, function: holding, register: 0, type: u32, unit: m3}
      outdoor:
        points:
          - {name: t_outdoor_c, function: input, register: 0, type: i16, unit: °C}
    registry:
      buildings:
        - id: b1
          address: "г. Подольск, ул. Ленина, д. 10"
          fias: "0c5b2444-70a0-4932-980c-b4dc0d3f02b5"
          coordinates: [55.4312, 37.5447]
          weather_tag: weather.t_outdoor_c
          norms: {cold_water: {per_person: 6.935}, heat: {per_m2: 0.016, unit: Gcal}}
          premises:
            - {number: "1", account: "7701000101", area: 54.2, residents: 2}
            - {number: "2", account: "7701000201", area: 38.6, residents: 1}
          meters:
            - {serial: "10000101", model: "ВКТ-7", resource: heat, tag: b1-heat.energy_kwh, role: odpu,
               installed: 2018-10-01, verified: 2022-12-10, next_verification: 2026-12-10}
            - {serial: "10000201", model: "ВСХН-50", resource: cold_water, tag: b1-cold.volume_m3, role: odpu}
            - {serial: "11011001", model: "ВСХ-15", resource: cold_water, tag: b1-kv01-cold.volume_m3, role: ipu,
               premises: "1", installed: 2021-03-01, verified: 2021-03-01, next_verification: 2027-03-01}
            - {serial: "11021001", model: "ВСХ-15", resource: cold_water, tag: b1-kv02-cold.volume_m3, role: ipu,
               premises: "2", installed: 2020-08-01, verified: 2020-08-01, next_verification: 2026-08-01}
        - id: b2
          address: "г. Подольск, ул. Мира, д. 5"
    """)


class Site(RoleSite):
    def get(self, path: str, role: str = "viewer") -> Reply:
        return self.call("GET", BASE + path, role=role)

    def post_event(self, meter: str, body, role: str = "crew") -> Reply:
        return self.call("POST", f"{BASE}/meters/{meter}/events", body, role)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One site for the module: the app starts once."""
    folder = tmp_path_factory.mktemp("registry_api")
    site = role_site(Site, folder, SITE, T0)
    yield site
    site.close()


def test_buildings_list(site):
    """Every building summarised, in configuration order; Russian text as it is."""
    response = site.get("/buildings", role="billing")
    assert response.status == 200
    assert "г. Подольск".encode() in response.body
    assert response.json == {"items": [
        {"id": "b1", "address": "г. Подольск, ул. Ленина, д. 10", "fias": "0c5b2444-70a0-4932-980c-b4dc0d3f02b5",
         "coordinates": [55.4312, 37.5447], "weather_tag": "weather.t_outdoor_c", "premises": 2, "meters": 4,
         "resources": ["heat", "cold_water"]},
        {"id": "b2", "address": "г. Подольск, ул. Мира, д. 5", "fias": None, "coordinates": None,
         "weather_tag": None, "premises": 0, "meters": 0, "resources": []}]}


def test_building_detail(site):
    """Norms, premises with their meters, effective meters and balance groups."""
    body = site.get("/buildings/b1").json
    assert body["norms"] == {"cold_water": {"per_person": 6.935, "per_m2": None, "unit": None},
                             "heat": {"per_person": None, "per_m2": 0.016, "unit": "Gcal"}}
    assert body["premises"] == [
        {"number": "1", "account": "7701000101", "kind": "apartment", "area": 54.2, "residents": 2,
         "meters": ["b1-kv01-cold"]},
        {"number": "2", "account": "7701000201", "kind": "apartment", "area": 38.6, "residents": 1,
         "meters": ["b1-kv02-cold"]}]
    assert [m["id"] for m in body["meters"]] == ["b1-heat", "b1-cold", "b1-kv01-cold", "b1-kv02-cold"]
    assert body["balance_groups"] == [{"resource": "cold_water", "odpu": "b1-cold",
                                       "ipu": ["b1-kv01-cold", "b1-kv02-cold"]}]
    heat = body["meters"][0]
    assert heat == {
        "id": "b1-heat", "building": "b1", "premises": None, "account": None, "serial": "10000101",
        "model": "ВКТ-7", "resource": "heat", "role": "odpu", "tag": "b1-heat.energy_kwh", "unit": "kWh",
        "installed": "2018-10-01", "verified": "2022-12-10", "next_verification": "2026-12-10",
        "verification_expired": False, "decommissioned": None, "in_service": True, "seal": None, "balance": True,
        "t_supply_tag": "b1-heat.t_supply_c", "t_return_tag": "b1-heat.t_return_c", "power_tag": None,
        "flow_tag": None, "description": ""}
    kv2 = body["meters"][3]
    assert (kv2["account"], kv2["verification_expired"]) == ("7701000201", True)


def test_unknown_building_and_meter_are_404(site):
    """Unknown ids are 404s naming them, with the nearest known id."""
    response = site.get("/buildings/b11")
    assert response.status == 404 and response.json["error"] == "unknown building 'b11' (did you mean 'b1'?)"
    response = site.get("/meters/b1-kv01-cld")
    assert response.status == 404
    assert response.json["error"] == "unknown meter 'b1-kv01-cld' (did you mean 'b1-kv01-cold'?)"
    assert site.get("/meters/nothing/events").status == 404
    assert site.post_event("nothing", {"kind": "repair"}).status == 404
    assert site.get("/meters?building=b9").status == 404


def test_meter_list_filters_and_due_list(site):
    """Filters combine; due_before gives meters due before a date, soonest (overdue) first."""
    items = site.get("/meters?building=b1&resource=cold_water&role=ipu").json["items"]
    assert [m["id"] for m in items] == ["b1-kv01-cold", "b1-kv02-cold"]
    assert [m["id"] for m in site.get("/meters?role=odpu").json["items"]] == ["b1-heat", "b1-cold"]
    due = site.get("/meters?due_before=2027-01-01", role="billing").json
    assert due["due_before"] == "2027-01-01"
    assert [(m["id"], m["next_verification"], m["verification_expired"]) for m in due["items"]] == [
        ("b1-kv02-cold", "2026-08-01", True), ("b1-heat", "2026-12-10", False)]
    assert site.get("/meters?due_before=2027-01-01&role=ipu").json["items"][0]["id"] == "b1-kv02-cold"
    assert site.get("/meters?due_before=2020-01-01").json["items"] == []


@pytest.mark.parametrize(("query", "message"), [
    ("due_before=2027-13-01", "due_before='2027-13-01' is not a date such as 2027-01-01"),
    ("due_before=soon", "due_before='soon' is not a date such as 2027-01-01"),
    ("resource=water", "'water' is not a resource; use one of heat, cold_water, hot_water, electricity, gas"),
    ("role=master", "'master' is not a meter role; use one of odpu, ipu"),
    ("due=2027-01-01", "unknown parameter 'due' (use due_before, building, resource, role)"),
])
def test_bad_query_is_400(site, query, message):
    """A bad parameter is a 400 naming it."""
    response = site.get(f"/meters?{query}")
    assert response.status == 400 and response.json == {"error": message}


def test_roles(site):
    """Every data role reads; crews and engineers (and admin) record events; others 403; no token 401."""
    for role in ("viewer", "operator", "crew", "engineer", "billing", "admin"):
        assert site.get("/buildings", role=role).status == 200
    assert site.get("/buildings", role="integration").status == 403
    for role in ("viewer", "operator", "billing", "integration"):
        response = site.post_event("b1-heat", {"kind": "repair"}, role)
        assert response.status == 403, response.text
    assert site.call("POST", f"{BASE}/meters/b1-heat/events", {"kind": "repair"}, role=None).status == 401
    assert site.runtime.store.meter_events() == []


def test_record_verification_and_read_it_back(site):
    """A verification: 201 with the event and the meter's new dates; listed under the meter and in the journal."""
    response = site.post_event("b1-kv02-cold", {"kind": "verification", "at": "2026-11-19T10:00:00+03:00",
                                                "comment": "поверка на месте", "next_verification": "2032-11-18"},
                               role="engineer")
    assert response.status == 201, response.text
    event = response.json["event"]
    assert event == {"id": event["id"], "meter": "b1-kv02-cold", "kind": "verification",
                     "at": "2026-11-19T07:00:00.000Z", "recorded": "2026-11-20T12:00:00.000Z",
                     "user": "token:engineer-token", "comment": "поверка на месте",
                     "data": {"next_verification": "2032-11-18"}}
    meter = response.json["meter"]
    assert (meter["verified"], meter["next_verification"], meter["verification_expired"]) == (
        "2026-11-19", "2032-11-18", False)
    assert site.get("/meters/b1-kv02-cold/events").json == {"items": [event]}
    detail = site.get("/meters/b1-kv02-cold").json
    assert detail["events"] == [event] and detail["next_verification"] == "2032-11-18"
    assert "b1-kv02-cold" not in [m["id"] for m in site.get("/meters?due_before=2027-01-01").json["items"]]
    journal = [e for e in site.runtime.store.query(0, T0 + 1) if e.event == "meter_event"]
    assert journal[-1].user == "token:engineer-token" and journal[-1].tag == "b1-kv02-cold.volume_m3"


def test_record_replacement_and_seal(site):
    """A replacement takes the new serial; a seal shows on the meter; default time is now."""
    response = site.post_event("b1-kv01-cold", {"kind": "replacement", "final_reading": 123.456,
                                                "initial_reading": 0.001, "new_serial": "11011002",
                                                "next_verification": "2032-11-01"})
    assert response.status == 201, response.text
    assert response.json["event"]["at"] == "2026-11-20T12:00:00.000Z"
    assert (response.json["meter"]["serial"], response.json["meter"]["installed"]) == ("11011002", "2026-11-20")
    response = site.post_event("b1-kv01-cold", {"kind": "seal", "seal": "П-000123"})
    assert response.status == 201 and response.json["meter"]["seal"] == "П-000123"
    kinds = [e["kind"] for e in site.get("/meters/b1-kv01-cold/events").json["items"]]
    assert kinds == ["replacement", "seal"]


@pytest.mark.parametrize(("body", "message"), [
    ("", "the body must be a JSON object"),
    ("{not json", "the body is not valid JSON"),
    ("[1, 2]", "the body must be a JSON object"),
    ({}, "the body must be a JSON object"),
    ({"comment": "x"}, "\"kind\" is required: one of commissioning, verification, repair, seal, replacement, "
                       "decommissioning"),
    ({"kind": 5}, "\"kind\" must be one of commissioning"),
    ({"kind": "painting"}, "'painting' is not an event kind"),
    ({"kind": "verification"}, "a verification event needs 'next_verification'"),
    ({"kind": "verification", "next_verification": "2032-02-30"},
     "'next_verification' '2032-02-30' is not a date such as 2027-03-01"),
    ({"kind": "seal", "seal": "S", "colour": "red"}, "'colour' is not a field of a seal event (its fields: seal)"),
    ({"kind": "replacement", "final_reading": "NaN", "initial_reading": 0, "new_serial": "X"},
     "'final_reading' must be a number"),
    ({"kind": "replacement", "final_reading": 1e400, "initial_reading": 0, "new_serial": "X"},
     "'final_reading' inf is not a finite number"),
    ({"kind": "repair", "at": "2026-11-21T12:00:00Z"}, "\"at\" 2026-11-21T12:00:00.000Z is in the future"),
    ({"kind": "repair", "at": "2026-11-20 10:00"}, "\"at\" '2026-11-20 10:00' has no UTC offset"),
    ({"kind": "repair", "at": ["2026-11-20"]}, "\"at\" must be an ISO 8601 time"),
    ({"kind": "repair", "at": None, "comment": {"a": 1}}, "'comment' must be a string, not a JSON object"),
    ('{"kind": "repair", "comment": "\\ud800"}', "'comment' is not valid UTF-8 text"),
])
def test_bad_events_are_400(site, body, message):
    """Junk in the body is a 400 naming what is wrong; nothing is stored."""
    before = len(site.runtime.store.meter_events())
    response = site.post_event("b1-heat", body, role="engineer")
    assert response.status == 400, response.text
    assert response.json["error"].startswith(message), response.json["error"]
    assert len(site.runtime.store.meter_events()) == before


def test_decommissioned_meter_refuses_events(site):
    """After decommissioning, a repair is a 400; commissioning brings the meter back."""
    assert site.post_event("b1-cold", {"kind": "decommissioning", "at": "2026-11-20",
                                       "final_reading": 999}).status == 201
    response = site.post_event("b1-cold", {"kind": "repair"})
    assert response.status == 400
    assert response.json["error"] == ("meter 'b1-cold' was decommissioned on 2026-11-20; only a commissioning "
                                      "event may follow")
    detail = site.get("/meters/b1-cold").json
    assert (detail["decommissioned"], detail["in_service"]) == ("2026-11-20", False)
    response = site.post_event("b1-cold", {"kind": "commissioning", "initial_reading": 0})
    assert response.status == 201 and response.json["meter"]["in_service"] is True


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8)
EVENT_BODY = st.fixed_dictionaries({"kind": st.sampled_from(EVENT_KINDS) | JSON}, optional={
    "at": st.sampled_from(["2026-11-20", "2026-11-20T10:00:00Z", "nan", ""]) | JSON, "comment": JSON,
    "seal": JSON, "next_verification": st.sampled_from(["2030-01-01", "2020-01-01"]) | JSON,
    "verified": JSON, "final_reading": st.floats() | JSON, "initial_reading": st.floats() | JSON,
    "new_serial": JSON, "new_model": JSON})


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=EVENT_BODY | JSON | st.binary(max_size=20))
def test_junk_is_never_a_500(site, body):
    """Whatever the body, the answer is 201 or a 400 with an error text, never a 500 (last: it may record)."""
    raw = body if isinstance(body, bytes) else jsonlib.dumps(body, allow_nan=True).encode()
    response = site.post_event("b1-heat", raw, role="engineer")
    assert response.status in (201, 400), (response.status, response.text)
    if response.status == 400:
        assert isinstance(response.json["error"], str) and response.json["error"]
