"""Simulator control API: force values and faults of simulated meters; 404 on a site of real meters.

The runtime runs on ``task.Clock``, which cannot carry a pty, so the
simulated field is built (as ``simulate: true`` does) but its ptys are not
opened: overrides and faults live on the simulated devices and need no
transport.  What a device would answer is read straight from its register
image.
"""

from __future__ import annotations

import asyncio
import textwrap
from dataclasses import dataclass

import pytest
from twisted.internet.task import Clock

from channels.sim.field import SimulatedField
from scada.api import build_app
from scada.app import Runtime
from tags.timefmt import parse_iso
from tests.scada.api_site import clock_runtime, request_body, start_app
from tests.scada.asgi import Reply, http

T0 = parse_iso("2026-11-19T08:00:00Z")
HOLDING = 3

SITE = textwrap.dedent("""\
    site: {{name: sim api test}}
    api: {{auth: false}}
    history: {{backend: sqlite, path: history.db}}
    simulate: {simulate}
    channels:
      - name: gw
        type: modbus-rtu
        transport: {{tcp: 127.0.0.1:1}}
        devices:
          - {{name: m1, address: 1, profile: generic_water_meter, poll: 10s}}
          - {{name: m2, address: 2, profile: generic_water_meter, poll: 10s}}
    """)


@dataclass
class Site:
    runtime: Runtime
    app: object
    loop: asyncio.AbstractEventLoop
    clock: Clock

    def call(self, method: str, path: str, body=None) -> Reply:
        return self.loop.run_until_complete(http(self.app, method, path, body=request_body(body)))

    def post(self, name: str, body) -> Reply:
        return self.call("POST", f"/api/v1/sim/devices/{name}", body)

    def get(self, name: str) -> Reply:
        return self.call("GET", f"/api/v1/sim/devices/{name}")

    def register(self, device: str, address: int, count: int = 1) -> bytes:
        """What the simulated meter would answer for holding registers ``address``.. now."""
        return self.runtime.field.devices[device].read_registers(HOLDING, address, count, self.clock.seconds())


def _build(tmp_path, simulate: bool) -> Site:
    runtime, clock = clock_runtime(tmp_path, SITE.format(simulate="true" if simulate else "false"), T0)
    site = Site(runtime, build_app(runtime), asyncio.new_event_loop(), clock)
    start_app(site.loop, site.app)
    return site


@pytest.fixture()
def site(tmp_path, monkeypatch):
    """A ``simulate: true`` site whose field has no ptys (a Clock cannot serve one)."""
    opened = []
    monkeypatch.setattr(SimulatedField, "start_pty", lambda self: opened.append(self) or {})
    site = _build(tmp_path, simulate=True)
    assert opened == [site.runtime.field]
    yield site
    site.runtime.field.stop()
    site.runtime.historian.close()
    site.runtime.store.close()
    site.loop.close()


def test_get_state(site):
    """GET shows the device's overrides and fault."""
    response = site.get("m1")
    assert response.status == 200
    assert response.json == {"device": "m1", "overrides": {}, "fault": "normal"}


def test_set_override_goes_through_the_register_encoding(site):
    """A set value is what the meter answers, encoded as its profile says (u16, 0.001 m³/h per count)."""
    natural = site.register("m1", 2)
    response = site.post("m1", {"set": {"flow_m3h": 7.5, "temperature_c": -3}})
    assert response.status == 200
    assert response.json == {"device": "m1", "overrides": {"flow_m3h": 7.5, "temperature_c": -3.0},
                             "fault": "normal"}
    assert site.register("m1", 2, 2) == (7500).to_bytes(2, "big") + (-30).to_bytes(2, "big", signed=True)
    assert site.get("m2").json["overrides"] == {}  # other meters untouched
    assert site.post("m1", {"clear": True}).status == 200
    assert site.register("m1", 2) == natural  # the physics again
    site.post("m1", {"set": {"flow_m3h": 7.5}})
    site.clock.advance(3600)
    assert site.register("m1", 2) == (7500).to_bytes(2, "big")  # held, whatever the physics do


def test_clear_some_and_all(site):
    """clear: [points] lets those follow the physics again; clear: true every point."""
    site.post("m1", {"set": {"flow_m3h": 1, "temperature_c": 50, "volume_m3": 12345.678}})
    response = site.post("m1", {"clear": ["flow_m3h"]})
    assert response.status == 200 and set(response.json["overrides"]) == {"temperature_c", "volume_m3"}
    assert site.register("m1", 0, 2) == (12345678).to_bytes(4, "big")
    response = site.post("m1", {"clear": True})
    assert response.status == 200 and response.json["overrides"] == {}
    assert site.post("m1", {"clear": ["flow_m3h"]}).status == 200  # nothing to clear: fine


def test_clear_then_set_in_one_request(site):
    """In one request clear comes first, then set: {"clear": true, "set": {...}} replaces the overrides."""
    site.post("m1", {"set": {"flow_m3h": 1, "temperature_c": 50}})
    response = site.post("m1", {"clear": True, "set": {"flow_m3h": 2}})
    assert response.status == 200 and response.json["overrides"] == {"flow_m3h": 2.0}


def test_fault_switches_on_and_off(site):
    """fault: a communication fault of the simulated meter; "normal" ends it."""
    response = site.post("m1", {"fault": "silent"})
    assert response.status == 200 and response.json["fault"] == "silent"
    assert site.runtime.field.devices["m1"].fault == "silent" and site.get("m1").json["fault"] == "silent"
    assert site.runtime.field.devices["m2"].fault == "normal"
    response = site.post("m1", {"fault": "corrupt_crc", "set": {"flow_m3h": 3}})
    assert response.status == 200 and response.json == {"device": "m1", "overrides": {"flow_m3h": 3.0},
                                                         "fault": "corrupt_crc"}
    assert site.post("m1", {"fault": "normal"}).json["fault"] == "normal"


def test_unknown_device_is_404(site):
    for method, body in (("GET", None), ("POST", {"fault": "silent"})):
        response = site.call(method, "/api/v1/sim/devices/m9", body)
        assert response.status == 404 and response.json == {"error": "no simulated device named 'm9'"}


BAD = [
    ({"set": {"pressure_bar": 3}}, "simulated device 'm1' has no point 'pressure_bar' (its points: volume_m3, "),
    ({"clear": ["pressure_bar"]}, "has no point 'pressure_bar'"),
    ({"set": {"flow_m3h": 1, "pressure_bar": 3}}, "has no point 'pressure_bar'"),
    ({"set": {"flow_m3h": "7"}}, "set.flow_m3h: '7' is not a finite number"),
    ({"set": {"flow_m3h": True}}, "set.flow_m3h: True"),
    ({"set": {"flow_m3h": None}}, "set.flow_m3h: None"),
    ({"set": {"flow_m3h": [1]}}, "set.flow_m3h"),
    (b'{"set": {"flow_m3h": NaN}}', "set.flow_m3h: nan"),
    (b'{"set": {"flow_m3h": Infinity}}', "set.flow_m3h: inf"),
    ({"set": {"flow_m3h": 1e6}}, "point 'flow_m3h' (u16, scale 0.001) cannot hold 1e+06"),
    ({"set": {"flow_m3h": -1}}, "point 'flow_m3h' (u16, scale 0.001) cannot hold -1"),
    ({"set": [1, 2]}, "'set' must be an object"),
    ({"clear": "flow_m3h"}, "'clear' must be true or a list"),
    ({"clear": [1]}, "'clear' must be true or a list"),
    ({"clear": 1}, "'clear' must be true or a list"),
    ({"fault": 1}, "'fault' must be a string"),
    ({"fault": "on_fire"}, "unknown fault 'on_fire'"),
    ({"reset": True}, "unknown key 'reset'"),
    ({}, "JSON object"),
    ([1], "JSON object"),
    (b"", "JSON object"),
    (b"{nope", "not valid JSON"),
    (b"[[[[" * 10000, "not valid JSON"),
]


def test_bad_requests_are_400_and_change_nothing(site):
    """A bad point, value, fault or body is a 400 naming the problem, and nothing is applied."""
    site.post("m1", {"set": {"temperature_c": 20}})
    for body, words in BAD:
        response = site.post("m1", body)
        assert response.status == 400, (body, response.json)
        assert words in response.json["error"], (body, response.json)
        assert site.get("m1").json == {"device": "m1", "overrides": {"temperature_c": 20.0}, "fault": "normal"}


def test_a_refused_request_is_not_half_applied(site):
    """When one part of a request is bad, the good parts before and after it are not applied either."""
    site.post("m1", {"set": {"temperature_c": 20}})
    for body in ({"clear": True, "set": {"flow_m3h": 1, "pressure_bar": 2}},
                 {"set": {"flow_m3h": 1, "volume_m3": "x"}},
                 {"set": {"flow_m3h": 1, "temperature_c": 1e9}},
                 {"set": {"flow_m3h": 1}, "fault": "on_fire"},
                 {"clear": ["temperature_c", "pressure_bar"]},
                 {"clear": True, "fault": 5}):
        response = site.post("m1", body)
        assert response.status == 400, body
        assert site.get("m1").json == {"device": "m1", "overrides": {"temperature_c": 20.0}, "fault": "normal"}, body


def test_not_simulated_site_is_404(tmp_path):
    """On a site of real meters every simulator path answers 404 saying why."""
    site = _build(tmp_path, simulate=False)
    try:
        assert site.runtime.field is None
        for method, body in (("GET", None), ("POST", {"set": {"flow_m3h": 1}})):
            response = site.call(method, "/api/v1/sim/devices/m1", body)
            assert response.status == 404
            assert response.json == {"error": "this site polls real meters (simulate: false); "
                                              "there is no simulator to control"}
    finally:
        site.runtime.historian.close()
        site.runtime.store.close()
        site.loop.close()
