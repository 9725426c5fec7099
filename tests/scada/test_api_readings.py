"""Manual readings API: who may enter and list them, the answers, the 400s, never a 500 for junk.

Runs straight through the Sanic app's ASGI interface on a runtime driven by
``task.Clock`` (no ports, no sleeps), with API tokens for every role.
"""

from __future__ import annotations

import json as jsonlib
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tags.model import Sample
from tags.quality import Quality
from tags.timefmt import parse_iso
from tests.scada.api_site import RoleSite, role_site
from tests.scada.asgi import Reply

T0 = parse_iso("2026-11-20T12:00:00Z")
PATH = "/api/v1/readings/manual"
TAG = "m1.volume_m3"

SITE = textwrap.dedent("""\
    site: {name: readings api test}
    history: {backend: sqlite, path: history.db}
    channels:
      - name: gw
        type: modbus-rtu
        transport: {tcp: 127.0.0.1:1}
        devices:
          - {name: m1, address: 1, profile: generic_water_meter, poll: 10s, serial: "ВСХ-123456"}
    """)


class Site(RoleSite):
    def post(self, body, role: str | None = "operator") -> Reply:
        return self.call("POST", PATH, body, role)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One site for the module: the app starts once (about 40 ms each time otherwise)."""
    folder = tmp_path_factory.mktemp("readings")
    site = role_site(Site, folder, SITE, T0)
    yield site
    site.close()


def test_roles(site):
    """Operators and engineers (and admin) enter readings; viewers, crews and billing get 403; no token 401."""
    for role in ("viewer", "crew", "billing"):
        response = site.post({"tag": TAG, "ts": T0 - 10, "value": 1}, role)
        assert response.status == 403 and response.json["error"] == f"role {role!r} may not POST {PATH}"
    assert site.post({"tag": TAG, "ts": T0 - 10, "value": 1}, None).status == 401
    assert site.runtime.store.manual_readings() == []
    for minute, role in enumerate(("operator", "engineer", "admin")):
        response = site.post({"tag": TAG, "ts": T0 - 3000 + 60 * minute, "value": 10 + minute}, role)
        assert response.status == 200, response.text
    assert [r.user for r in site.runtime.store.manual_readings(TAG, T0 - 3000, T0)] == [
        "token:operator-token", "token:engineer-token", "token:admin-token"]
    for role in ("viewer", "billing", "engineer"):
        assert site.call("GET", PATH, role=role).status == 200
    assert site.call("GET", PATH, role=None).status == 401


def test_batch_answer_list_and_publishing(site):
    """A batch by serial and tag: counts and results; stored, in the table with quality manual, listed."""
    body = {"readings": [{"serial": "ВСХ-123456", "ts": "2026-11-20T14:50:00+03:00", "value": 100.5,
                          "comment": "обход"},
                         {"tag": TAG, "ts": T0 - 60, "value": 101}], "source": "import:обход.csv"}
    response = site.post(body, "engineer")
    assert response.status == 200, response.text
    answer = response.json
    assert answer["accepted"] == 2 and answer["duplicates"] == 0
    assert [(r["tag"], r["status"], r["ts"]) for r in answer["results"]] == [
        (TAG, "accepted", "2026-11-20T11:50:00.000Z"), (TAG, "accepted", "2026-11-20T11:59:00.000Z")]
    assert answer["results"][0]["serial"] == "ВСХ-123456"
    state = site.runtime.tags.get(TAG)
    assert (state.value, state.quality, state.ts) == (101.0, Quality.MANUAL, T0 - 60)
    again = site.post(body, "engineer").json
    assert again["accepted"] == 0 and again["duplicates"] == 2
    listed = site.call("GET", f"{PATH}?tag={TAG}&from=2026-11-20T11:40:00Z", role="billing").json["readings"]
    assert [(r["value"], r["user"], r["source"], r["comment"]) for r in listed] == [
        (100.5, "token:engineer-token", "import:обход.csv", "обход"), (101.0, "token:engineer-token",
                                                                         "import:обход.csv", "")]
    assert listed[0]["ts"] == "2026-11-20T11:50:00.000Z" and listed[0]["entered"] == "2026-11-20T12:00:00.000Z"


def test_lower_reading_is_a_clear_400(site):
    """A value below the current one: 400 naming tag, both values and times, and the replacement flag."""
    site.runtime.tags.update(Sample(TAG, 500.0, Quality.GOOD, T0 - 30))
    response = site.post({"readings": [{"tag": TAG, "ts": "2026-11-20T11:59:40Z", "value": 400.0}]})
    assert response.status == 400
    assert response.json["problems"] == [{"row": 0, "message": (
        "m1.volume_m3: 400.0 at 2026-11-20T11:59:40.000Z is lower than the previous reading 500.0 at "
        "2026-11-20T11:59:30.000Z (current value, quality good); mark it as a meter replacement if the meter "
        "was replaced")}]
    assert response.json["error"].startswith("readings refused (1 problem): readings[0]: m1.volume_m3: 400.0")
    response = site.post({"tag": TAG, "ts": "2026-11-20T11:59:40Z", "value": 400.0, "replacement": True})
    assert response.status == 200 and response.json["results"][0]["replacement"] is True


@pytest.mark.parametrize("body, message", [
    (b"", "the body must be a JSON object"),
    (b"{", "not valid JSON"),
    ([1, 2], "the body must be a JSON object"),
    ({"readings": {}}, '"readings" must be an array'),
    ({"readings": []}, '"readings" is empty'),
    ({"readings": [{"tag": TAG, "ts": 1, "value": 1}], "user": "x"}, "unknown key 'user'"),
    ({"tag": TAG, "ts": T0, "value": 1, "source": "api2"}, "import:<file name>"),
    ({"readings": [{}] * 10_001}, "at most 10000"),
    ({"tag": "m1.volume", "ts": T0, "value": 1}, "unknown tag 'm1.volume'; did you mean m1.volume_m3"),
    ({"serial": "ВСХ-000", "ts": T0, "value": 1}, "unknown serial number 'ВСХ-000'"),
    ({"tag": TAG, "ts": "yesterday", "value": 1}, "is not an ISO 8601 time"),
    ({"tag": TAG, "ts": T0, "value": None}, '"value" must be a number, not null'),
])
def test_bad_bodies_are_400(site, body, message):
    """Malformed bodies and rows: a 400 whose error says what is wrong."""
    response = site.post(body)
    assert response.status == 400, response.text
    assert message in response.json["error"], response.json


def test_list_parameters(site):
    """Unknown parameters, bad times and unknown tags are 4xx; the list is a JSON object."""
    assert site.call("GET", f"{PATH}?page=2", role="viewer").status == 400
    assert site.call("GET", f"{PATH}?from=soon", role="viewer").status == 400
    response = site.call("GET", f"{PATH}?tag=nothing", role="viewer")
    assert response.status == 404 and response.json["error"] == "unknown tag 'nothing'"
    assert site.call("GET", f"{PATH}?tag=m1.flow_m3h", role="viewer").json["readings"] == []


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)
ROW = st.fixed_dictionaries({}, optional={
    "tag": st.sampled_from([TAG, "m1.flow_m3h", "", "x"]) | JSON, "serial": st.sampled_from(["ВСХ-123456", ""]) | JSON,
    "ts": st.sampled_from(["2026-11-20T11:00:00Z", "2026-11-20", "nan"]) | JSON,
    "value": st.floats() | JSON, "replacement": JSON, "comment": JSON, "source": JSON})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=JSON | ROW | st.fixed_dictionaries({"readings": st.lists(ROW | JSON, max_size=4)}, optional={
    "source": JSON}) | st.binary(max_size=30))
def test_junk_is_never_a_500(site, body):
    """Whatever the body, the answer is 200 or a 400 with an error text, never a 500."""
    raw = body if isinstance(body, bytes) else jsonlib.dumps(body, allow_nan=True).encode()
    response = site.post(raw)
    assert response.status in (200, 400), (response.status, response.text)
    if response.status == 400:
        assert isinstance(response.json["error"], str) and response.json["error"]
