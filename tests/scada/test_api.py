"""API handlers over Sanic's ASGI client, on a runtime driven by task.Clock (no ports)."""

from __future__ import annotations

import asyncio
import math
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from scada.api import build_app
from scada.app import Runtime
from scada.config import load_config
from tags.model import Sample
from tags.quality import Quality
from tags.timefmt import parse_iso

T0 = parse_iso("2026-11-19T08:00:00Z")

SITE = textwrap.dedent("""\
    site: {name: api test}
    api: {auth: false}  # these tests are about the data; tests/scada/test_api_roles.py covers auth
    history: {backend: sqlite, path: history.db}
    channels:
      - name: gw
        type: modbus-rtu
        transport: {tcp: 127.0.0.1:1}
        devices:
          - {name: m1, address: 1, profile: generic_water_meter, poll: 10s}
    """)


@pytest.fixture()
def api(tmp_path):
    """Return (runtime, call) where call(path) -> (status, json) through the ASGI app."""
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    cfg, _ = load_config(site)
    clock = Clock()
    clock.advance(T0)
    runtime = Runtime(cfg, clock, base_dir=tmp_path)
    samples = [Sample("m1.volume_m3", 100.0 + i, Quality.GOOD, T0 - 3600 + 60 * i) for i in range(60)]
    samples.append(Sample("m1.volume_m3", None, Quality.TIMEOUT, T0 - 30))
    runtime.historian.write(samples)
    runtime.historian.flush()
    runtime.tags.update(Sample("m1.volume_m3", 159.0, Quality.GOOD, T0 - 60))
    app = build_app(runtime)
    loop = asyncio.new_event_loop()

    def call(path: str):
        _, response = loop.run_until_complete(app.asgi_client.get(path))
        return response.status, response.json

    yield runtime, call
    runtime.historian.close()
    loop.close()


def test_tags_and_one_tag(api):
    """Current values list with prefix filter; one tag by name; units and ISO times."""
    _, call = api
    status, body = call("/api/v1/tags?prefix=m1.vol")
    assert status == 200 and [t["name"] for t in body["tags"]] == ["m1.volume_m3"]
    assert body["tags"][0] == {"name": "m1.volume_m3", "value": 159.0, "unit": "m3", "quality": "good",
                               "ts": "2026-11-19T07:59:00.000Z"}
    status, body = call("/api/v1/tags/m1.flow_m3h")
    assert status == 200 and body["quality"] == "not_yet_read" and body["value"] is None


def test_unknown_tag_is_404(api):
    """Unknown tags are 404 with a message naming the tag, for value and history."""
    _, call = api
    for path in ("/api/v1/tags/m9.nothing", "/api/v1/tags/m9.nothing/history"):
        status, body = call(path)
        assert status == 404 and "m9.nothing" in body["error"]


def test_history_raw(api):
    """Raw history returns every stored sample in range, bad qualities included."""
    _, call = api
    status, body = call("/api/v1/tags/m1.volume_m3/history")
    assert status == 200 and len(body["points"]) == 61
    assert body["points"][0] == {"ts": "2026-11-19T07:00:00.000Z", "value": 100.0, "quality": "good"}
    assert body["points"][-1]["quality"] == "timeout" and body["points"][-1]["value"] is None


def test_history_aggregated(api):
    """Aggregated history gives min/max/mean/last per interval from good samples only."""
    _, call = api
    status, body = call("/api/v1/tags/m1.volume_m3/history?every=30m&from=2026-11-19T06:30:00Z"
                        "&to=2026-11-19T08:00:00Z")
    assert status == 200
    rows = body["points"]
    assert [r["ts"] for r in rows] == ["2026-11-19T07:00:00.000Z", "2026-11-19T07:30:00.000Z"]
    assert rows[0]["min"] == 100.0 and rows[0]["max"] == 129.0 and rows[0]["last"] == 129.0
    assert rows[0]["mean"] == pytest.approx(114.5)
    assert rows[-1]["last"] == 159.0 and rows[-1]["count"] == 30


@pytest.mark.parametrize("query", [
    "from=nonsense", "to=2026-02-30", "every=-1h", "every=0", "every=abc", "every=1e400s",
    "every=nan", "every=inf", "from=2026-01-02&to=2026-01-01", "every=1ms&from=2020-01-01&to=2026-01-01",
    "x=1", "from=9999-12-31T23:59:59Z&to=99999-01-01",
    "to=9999-12-31T23:59:59.9999Z", "to=0001-01-01T10:00:00Z",
    "from=0001-01-01T00:00:00%2B01:00&to=2026-01-01", "every=1h&from=9999-12-31&to=9999-12-31T12:00:00Z",
])
def test_history_bad_parameters_are_400(api, query):
    """Every malformed history parameter is a 400 with an error message, never a 500."""
    _, call = api
    status, body = call(f"/api/v1/tags/m1.volume_m3/history?{query}")
    assert status == 400, body
    assert body["error"]


def test_health_devices_channels(api):
    """Health, devices and channels answer before polling starts."""
    _, call = api
    status, body = call("/api/v1/health")
    assert status == 200 and body["status"] == "ok" and body["channels"]["gw"]["link_up"] is False
    status, body = call("/api/v1/devices")
    assert status == 200 and body["devices"][0]["name"] == "m1" and body["devices"][0]["last_good"] is None
    status, body = call("/api/v1/channels")
    assert status == 200 and body["channels"][0]["termination"]["port"] == "not_applicable"


def test_unknown_path_and_method(api):
    """Unknown paths are JSON 404s."""
    _, call = api
    status, body = call("/api/v1/nothing")
    assert status == 404 and "error" in body


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@given(params=st.dictionaries(st.sampled_from(["from", "to", "every", "prefix", "limit"]), _TEXT, max_size=3))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_history_never_500(api, params):
    """Arbitrary query strings get a 200 or a 4xx JSON body, never a 500."""
    from urllib.parse import urlencode

    _, call = api
    status, body = call("/api/v1/tags/m1.volume_m3/history?" + urlencode(params))
    assert status in (200, 400, 404), (params, body)
    assert isinstance(body, dict)
    if status == 200:
        assert all(not isinstance(v, float) or math.isfinite(v) for p in body["points"] for v in p.values())


def test_raw_history_over_the_limit_is_400(api, monkeypatch):
    """Raw history never truncates silently: past the point limit it is a 400 that says what to do."""
    import scada.api.v1 as v1

    runtime, call = api
    monkeypatch.setattr(v1, "MAX_RAW_POINTS", 10)
    status, body = call("/api/v1/tags/m1.volume_m3/history")
    assert status == 400 and "more than 10 samples" in body["error"] and "every=" in body["error"]
    status, body = call("/api/v1/tags/m1.volume_m3/history?every=10m")
    assert status == 200 and body["points"]


def test_history_database_down_is_503(api, monkeypatch):
    """A history database that is down answers 503 naming the cause, never 500."""
    from tags.historian import StoreUnavailable

    runtime, call = api

    async def down(*args, **kwargs):
        raise StoreUnavailable("InfluxDB http://127.0.0.1:8086 is unreachable")

    monkeypatch.setattr(runtime.historian.store, "query_raw", down)
    monkeypatch.setattr(runtime.historian.store, "query_agg", down)
    for query in ("", "?every=10m"):
        status, body = call(f"/api/v1/tags/m1.volume_m3/history{query}")
        assert status == 503 and "history is not available" in body["error"] and "unreachable" in body["error"]
