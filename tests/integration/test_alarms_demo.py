"""Integration: the demo site as a real process — a limit alarm end to end.

The issue's "done when": with the demo running, a simulated meter pushed over
a limit raises an alarm visible through the API and the WebSocket; a ``crew``
token acknowledges it with a comment, a ``billing`` token gets 403, and the
journal shows both.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from tests.integration.demo_site import demo_copy, start_demo, stop_demo
from tests.integration.test_run import ROOT, SCADA, wait_for

pytestmark = pytest.mark.integration

TAG = "b1-heat.t_supply_c"


def call(base: str, path: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    """GET (or POST ``body``) with a bearer token; return (status, JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method="GET" if body is None else "POST")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def token(cwd, role: str) -> str:
    out = subprocess.run(SCADA + ["token", "create", "-c", "site.yaml", "--name", f"{role}-1", "--role", role],
                         cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Run the demo site; yield (base URL, tokens by role, ws URL); stop it with SIGTERM."""
    tmp = tmp_path_factory.mktemp("demo")
    demo_copy(tmp)
    tokens = {role: token(tmp, role) for role in ("crew", "billing", "engineer", "viewer")}
    proc, base = start_demo(tmp)
    try:
        wait_for(lambda: call(base, "/health")[0] == 200, 60)
        # The heat meter has answered at least once.
        wait_for(lambda: call(base, f"/tags/{TAG}", tokens["viewer"])[1].get("quality") == "good", 60)
        yield base, tokens, "ws" + base.removeprefix("http") + "/live"
    finally:
        stop_demo(proc)
    assert proc.returncode == 0


def test_limit_alarm_end_to_end(demo):
    base, tokens, ws_url = demo
    crew, billing, engineer = tokens["crew"], tokens["billing"], tokens["engineer"]
    # Nothing is wrong with the supply temperature yet.
    status, body = call(base, "/alarms?state=all", crew)
    assert status == 200
    ours = [a for a in body["alarms"] if a["tag"] == TAG and a["state"] != "normal"]
    assert ours == []

    with connect(f"{ws_url}?token={crew}", open_timeout=10) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "hello" and hello["role"] == "crew"
        assert json.loads(ws.recv(timeout=10))["type"] == "alarms"
        ws.send(json.dumps({"subscribe": ["b1-heat."]}))

        status, _ = call(base, "/sim/devices/b1-heat", engineer, {"set": {"t_supply_c": 130.0}})
        assert status == 200
        pushed_at = time.monotonic()
        raised = None
        saw_value = False
        # The alarm goes out at once; tag changes follow, coalesced over 100 ms.
        while raised is None or not saw_value:
            assert time.monotonic() - pushed_at < 60, "no alarm pushed"
            frame = json.loads(ws.recv(timeout=60))
            if frame["type"] == "tags":
                saw_value |= any(t["name"] == TAG and abs((t["value"] or 0) - 130.0) < 0.01 for t in frame["tags"])
            if (raised is None and frame["type"] == "alarm" and frame["alarm"]["tag"] == TAG
                    and frame["entry"]["event"] == "raise"):
                raised = frame["alarm"]
                latency = time.monotonic() - pushed_at
        print(f"alarm pushed {latency:.2f} s after the simulator change (poll period 5 s)")
        assert raised["state"] == "unack_active" and abs(raised["value"] - 130.0) < 0.01

    alarm_id = raised["id"]
    status, body = call(base, "/alarms?state=unacked", crew)
    assert status == 200 and alarm_id in [a["id"] for a in body["alarms"]]

    # billing may read readings but not act on alarms.
    status, body = call(base, f"/alarms/{alarm_id}/ack", billing, {"comment": "not mine"})
    assert status == 403 and "billing" in body["error"]
    status, body = call(base, f"/alarms/{alarm_id}/ack", crew, {"comment": "бригада выехала"})
    assert status == 200, body
    assert body["alarm"]["state"] == "ack_active" and body["alarm"]["acked_by"] == "token:crew-1"

    status, body = call(base, f"/alarms/journal?alarm={alarm_id}", crew)
    assert status == 200
    events = [(e["event"], e["user"], e["comment"]) for e in body["entries"]]
    assert ("raise", "system", "") in [(e, u, "") for e, u, _ in events]
    assert ("ack", "token:crew-1", "бригада выехала") in events
    assert any(e == "denied" and u == "token:billing-1" for e, u, _ in events)

    # Back to normal once the meter is.
    call(base, "/sim/devices/b1-heat", engineer, {"clear": True})
    wait_for(lambda: call(base, f"/alarms/{alarm_id}", crew)[1]["alarm"]["state"] == "normal", 60)


def scrape(base: str) -> tuple[dict[str, float], set[str]]:
    """Scrape the demo's /metrics (public); return each sample name's total over its series, and the channels."""
    with urllib.request.urlopen(base.removesuffix("/api/v1") + "/metrics", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = resp.read().decode()
    totals: dict[str, float] = {}
    channels: set[str] = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
            if sample.name == "scada_channel_devices":
                channels.add(sample.labels["channel"])
    return totals, channels


def test_prometheus_scrape_of_the_running_demo(demo):
    """/metrics of the real demo: counters grow between two scrapes; channel, history, alarm, modem, process
    families are there for every channel; the channel-<ch>.* system tags are published."""
    base, tokens, _ = demo
    first, _ = scrape(base)
    tx, accepted = "scada_channel_transactions_total", "scada_historian_accepted_total"

    def grown():
        # A transaction is not yet a history sample (deadband, a poll of several requests): wait for both.
        now = scrape(base)
        return now if now[0][tx] > first[tx] and now[0][accepted] > first[accepted] else None

    second, channels = wait_for(grown, 30)
    assert second["process_cpu_seconds_total"] >= first["process_cpu_seconds_total"]
    assert second["scada_uptime_seconds"] > first["scada_uptime_seconds"]
    for name in ("scada_channel_timeouts_total", "scada_channel_crc_errors_total", "scada_channel_utilisation_ratio",
                 "scada_channel_queue_depth", "scada_channel_link_up", "scada_channel_uplinks_total",
                 "scada_device_up", "scada_historian_backlog_samples", "scada_historian_store_up",
                 "scada_historian_written_total", "scada_alarms", "scada_alarms_active", "scada_alarm_flood",
                 "scada_modem_connections", "scada_modem_link_up", "scada_build_info",
                 "process_resident_memory_bytes", "python_info", "python_gc_collections_total"):
        assert name in second, name
    assert second["scada_historian_store_up"] == 1 and second["scada_metrics_errors_total"] == 0
    status, body = call(base, "/channels", tokens["viewer"])
    assert status == 200 and channels == {c["name"] for c in body["channels"]}
    # The modem of the demo's GPRS channel has dialled in.
    assert second["scada_modem_link_up"] >= 1 and second["scada_modem_connects_total"] >= 1
    status, body = call(base, "/tags?prefix=channel-", tokens["viewer"])
    assert status == 200 and body["tags"] and {t["quality"] for t in body["tags"]} == {"good"}
