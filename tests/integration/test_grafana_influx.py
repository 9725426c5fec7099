"""Every query of the exported dashboards, run against a real InfluxDB 1.x.

For the demo site and for a site with a retention policy and another
measurement, the test writes two days of hourly samples for every tag the
dashboards name (rising counters, balance figures as ``calculated``, a
``timeout`` now and then for every meter the channel-health panels count),
in the historian's own line protocol (:class:`tags.historian.lines.Encoder`),
then runs each panel's InfluxQL with Grafana's macros replaced
(``$timeFilter`` by ``time > now() - 2d``, ``$__interval`` by ``1h``).  Every
query must parse and run without an error, and every query of the building
and channel dashboards must return series.
"""

from __future__ import annotations

import textwrap
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from scada.config import load_config
from scada.config.alarms import site_tags
from scada.grafana import model
from tags.historian.lines import Encoder
from tags.model import Sample
from tags.quality import Quality
from tests.integration.conftest import influxd, influxd_binary  # noqa: F401 - pytest fixtures
from tests.scada.grafana_checks import referenced, targets

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

RP_SITE = textwrap.dedent("""\
    site: {name: rp site, timezone: Asia/Novosibirsk}
    history: {backend: influxdb, url: "http://127.0.0.1:1", database: metering, measurement: "meter readings",
              retention_policy: two_years}
    channels:
      - name: seg1
        type: modbus-rtu
        transport: {tcp: 127.0.0.1:1}
        devices:
          - {name: h1, address: 1, profile: generic_heat_meter, poll: 10s}
          - {name: w1, address: 2, profile: generic_water_meter, poll: 10s}
          - {name: "kv'1", address: 3, profile: generic_water_meter, poll: 10s}
      - name: lora
        type: lorawan
        devices:
          - {name: kv2, dev_eui: 70B3D59BA0000511, decoder: pulse_counter_le, poll: 1m,
             decoder_options: {litres_per_pulse: 1}}
    registry:
      buildings:
        - id: дом/1
          address: "ул. Садовая, 1"
          weather_tag: h1.t_return_c
          premises:
            - {number: "1", account: "1001"}
          meters:
            - {id: heat, serial: "1", resource: heat, tag: h1.energy_kwh, role: odpu}
            - {id: cold, serial: "2", resource: cold_water, tag: w1.volume_m3, role: odpu}
            - {id: kv1, serial: "3", resource: cold_water, tag: "kv'1.volume_m3", role: ipu, premises: "1"}
            - {id: kv2, serial: "4", resource: cold_water, tag: kv2.volume_m3, role: ipu, premises: "1"}
    """)

HOURS = 48


def post(url: str, path: str, params: dict[str, str], data: bytes | None = None) -> tuple[int, bytes]:
    """POST to the server (the standard library only); return (status, body)."""
    req = urllib.request.Request(f"{url}{path}?{urllib.parse.urlencode(params)}", data=data or b"", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def samples_for(tags: set[str], devices: set[str], known: dict[str, str], now: float) -> list[Sample]:
    """Two days of hourly samples of ``tags``; a timeout every fifth hour on a tag of each of ``devices``."""
    out = []
    start = now - HOURS * 3600
    for n, tag in enumerate(sorted(tags)):
        quality = Quality.CALCULATED if tag.startswith("balance-") else Quality.GOOD
        for h in range(HOURS):
            out.append(Sample(tag, 100.0 * n + 2.5 * h, quality, start + h * 3600 + 60))
    for device in sorted(devices):
        tag = next(t for t, owner in known.items() if owner == device)
        for h in range(0, HOURS, 5):
            out.append(Sample(tag, None, Quality.TIMEOUT, start + h * 3600 + 120))
    return out


def grafana_macros(query: str) -> str:
    """Replace Grafana's macros as its InfluxQL data source would for the last two days."""
    return query.replace("$timeFilter", "time > now() - 2d").replace("$__interval", "1h")


def run_dashboards(server, cfg, database: str, rp: str | None) -> dict[str, list[tuple[str, dict]]]:
    """Write the samples the dashboards need, run every query; return uid -> [(query, result)]."""
    bundle = model.build(cfg)
    site = site_tags(cfg.channels, cfg.profiles, cfg.registry)
    tags, devices = set(), set()
    for d in bundle.dashboards:
        for _, t in targets(d):
            tags.update(referenced(t["query"], "tag"))
            devices.update(referenced(t["query"], "device"))
    status, body = post(server.url, "/query", {"q": f'CREATE DATABASE "{database}"'})
    assert status == 200, body
    params = {"db": database, "precision": "u"}
    if rp:
        status, body = post(server.url, "/query", {
            "q": f'CREATE RETENTION POLICY "{rp}" ON "{database}" DURATION 104w REPLICATION 1'})
        assert status == 200 and b"error" not in body, body
        params["rp"] = rp
    lines, count = Encoder(cfg.history.measurement).encode(samples_for(tags, devices, site.tags, time.time()))
    status, body = post(server.url, "/write", params, lines)
    assert status == 204, body
    results: dict[str, list[tuple[str, dict]]] = {}
    for d in bundle.dashboards:
        for _, t in targets(d):
            query = grafana_macros(t["query"])
            answer = server.query_url(server.url, query, database, method="POST")
            results.setdefault(d["uid"], []).append((query, answer["results"][0] if "results" in answer else answer))
    return results


def assert_answers(results: dict[str, list[tuple[str, dict]]]) -> None:
    errors = [(q, r["error"]) for answers in results.values() for q, r in answers if "error" in r]
    assert errors == []
    empty = [q for uid, answers in results.items() if uid != model.OVERVIEW_UID
             for q, r in answers if not r.get("series")]
    assert empty == []


def test_demo_queries_run_on_influxdb(influxd):
    cfg, _ = load_config(ROOT / "config" / "demo.yaml")
    results = run_dashboards(influxd, cfg, "scada", None)
    assert_answers(results)
    assert sum(len(a) for a in results.values()) > 150
    # A daily consumption bar is the counter's growth per local day: 2.5 per hour, 24 h in a whole day.
    daily = [r for q, r in results["scada-building-b1"] if "time(1d)" in q and "b1-heat.energy_kwh" in q]
    values = [v for _, v in daily[0]["series"][0]["values"]]
    assert max(values) == pytest.approx(60.0)
    # The quality table: every meter of the channel, with its bad samples counted.
    bad = next(r for q, r in results["scada-channels"] if 'AS "bad"' in q and "b1-heat" in q)
    counts = {s["tags"]["device"]: s["values"][0][1] for s in bad["series"]}
    assert counts["b1-heat"] == HOURS // 5 + 1


def test_retention_policy_and_measurement_on_influxdb(influxd, tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(RP_SITE, encoding="utf-8")
    cfg, _ = load_config(path)
    results = run_dashboards(influxd, cfg, "metering", "two_years")
    assert_answers(results)
    queries = [q for answers in results.values() for q, _ in answers]
    assert all('FROM "two_years"."meter readings"' in q for q in queries)
    assert any("kv'1" in q or "kv\\'1" in q for q in queries)
