"""GET /metrics: every family the contract names, its values against the runtime's health, api.metrics modes.

The runtime runs on ``task.Clock`` and is never started (no ports); the
counters are set on the channels' and devices' own statistics, as polling
would leave them.  The app is started once through sanic-testing's ASGI
client, then called straight through its ASGI interface.
"""

from __future__ import annotations

import asyncio
import textwrap

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scada import auth, installed_version
from scada.api import auth as api_auth
from scada.api import build_app
from tags.model import Sample
from tags.quality import Quality
from tests.scada.api_site import T0, clock_runtime, role_tokens, start_app
from tests.scada.asgi import http

SITE = textwrap.dedent("""\
    site: {{name: metrics test}}
    history: {{backend: sqlite, path: history.db}}
    api: {api}
    modem_server: {{listen: 127.0.0.1:1, id_pattern: '^LOGIN:(?P<id>\\d{{15}})\\r\\n'}}
    channels:
      - name: gw
        type: modbus-rtu
        transport: {{tcp: 127.0.0.1:1}}
        devices:
          - {{name: m1, address: 1, profile: generic_water_meter, poll: 10s}}
          - {{name: m2, address: 2, profile: generic_heat_meter, poll: 10s}}
      - name: gprs
        type: modbus-rtu
        transport: {{modem: "860000000000004", baudrate: 9600, parity: E}}
        devices:
          - {{name: g1, address: 1, profile: generic_heat_meter, poll: 10s}}
      - name: lora
        type: lorawan
        devices:
          - {{name: l1, dev_eui: 70B3D59BA0000511, decoder: pulse_counter_le, poll: 1m,
              decoder_options: {{litres_per_pulse: 1}}}}
          - {{name: l2, dev_eui: 70B3D59BA0000512, decoder: pulse_counter_le, poll: 1m,
              decoder_options: {{litres_per_pulse: 1}}}}
      - name: hand
        type: manual
        devices:
          - {{name: h1, points: [{{name: volume_m3, unit: m3}}]}}
    alarms:
      - {{name: m1-high, type: limit, tag: m1.volume_m3, hi: 100, priority: high}}
    """)

#: Every family the contract names (sample names; counters with their _total).
REQUIRED = (
    "scada_channel_transactions_total", "scada_channel_timeouts_total", "scada_channel_crc_errors_total",
    "scada_channel_exceptions_total", "scada_channel_utilisation_ratio", "scada_channel_wire_utilisation_ratio",
    "scada_channel_queue_depth", "scada_channel_link_up", "scada_channel_devices", "scada_channel_uplinks_total",
    "scada_channel_decode_errors_total", "scada_device_up", "scada_device_timeouts_total",
    "scada_device_crc_errors_total", "scada_historian_backlog_samples", "scada_historian_backlog_bytes",
    "scada_historian_store_up", "scada_historian_accepted_total", "scada_historian_written_total",
    "scada_historian_dropped_total", "scada_historian_rejected_total", "scada_historian_flush_errors_total",
    "scada_historian_oldest_queued_age_seconds", "scada_alarms", "scada_alarms_active", "scada_alarm_flood",
    "scada_modem_connections", "scada_modem_connects_total", "scada_modem_link_up", "scada_build_info",
    "scada_uptime_seconds", "scada_metrics_errors_total", "process_cpu_seconds_total",
    "process_resident_memory_bytes", "python_info", "python_gc_collections_total",
)


class Site:
    """A started app over a Clock-driven runtime (never started itself), with an API token per role."""

    def __init__(self, folder, api: str = "{}") -> None:
        self.runtime, self.clock = clock_runtime(folder, SITE.format(api=api), T0)
        self.tokens = role_tokens(self.runtime)
        self.app = build_app(self.runtime)
        self.loop = asyncio.new_event_loop()
        start_app(self.loop, self.app)

    def get(self, path: str = "/metrics", role: str | None = None, app=None):
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return self.loop.run_until_complete(http(app or self.app, "GET", path, headers))

    def scrape(self, app=None) -> dict[tuple[str, frozenset], float]:
        """Scrape /metrics; return every sample's value by (sample name, labels)."""
        reply = self.get(app=app)
        assert reply.status == 200, reply.body
        return {(s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(reply.text) for s in family.samples}

    def channel(self, name: str):
        return next(c for c in self.runtime.channels if c.name == name)

    def close(self) -> None:
        self.runtime.historian.close()
        self.runtime.store.close()
        self.loop.close()


@pytest.fixture(scope="module")
def make_site(tmp_path_factory):
    """Return a builder of sites; closes what it built at the end of the module."""
    built: list[Site] = []

    def make(api: str = "{}") -> Site:
        built.append(Site(tmp_path_factory.mktemp("site"), api))
        return built[-1]

    yield make
    for site in built:
        site.close()


@pytest.fixture(scope="module")
def site(make_site):
    """The default site (api.metrics public), with counters as a few minutes of polling would leave them.

    Shared by the module's tests (starting an app takes a while): tests that change
    something undo it (monkeypatch) or check differences only.
    """
    site = make_site()
    rt = site.runtime
    gw = site.channel("gw")
    m1, m2 = gw.devices
    m1.stats.requests, m1.stats.timeouts, m1.stats.crc_errors, m1.stats.exceptions = 40, 3, 2, 1
    m2.stats.requests, m2.stats.timeouts, m2.stats.crc_errors = 20, 4, 5
    m1.state, m2.state = "ok", "comm_loss"
    gw.scheduler.transactions = 60
    # Both polls fall due without the bus ever starting: two polls queued.
    for device in gw.devices:
        gw.scheduler.add_poller(device, rt.reactor.seconds())
    lora = site.channel("lora")
    l1, l2 = lora.devices
    l1.uplinks, l1.decode_errors, l1.state = 7, 1, "ok"
    l2.uplinks, l2.state = 2, "comm_loss"
    rt.historian.write([Sample("m1.volume_m3", 12.5, Quality.GOOD, T0 - 30)])
    site.clock.advance(30)
    return site


def value(metrics: dict, name: str, **labels) -> float:
    return metrics[name, frozenset(labels.items())]


def series(metrics: dict, name: str) -> dict[frozenset, float]:
    return {labels: v for (n, labels), v in metrics.items() if n == name}


def test_every_contract_family_is_served_as_prometheus_text(site):
    """200, text format 0.0.4, every family the contract names, and nothing of the API's own JSON."""
    reply = site.get()
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    names = {name for name, _ in site.scrape()}
    missing = [name for name in REQUIRED if name not in names]
    assert not missing, missing
    spec = site.get("/api/v1/openapi.json").json
    assert "/metrics" not in spec["paths"] and not any("metrics" in path for path in spec["paths"])


def test_channel_and_device_values_match_their_health(site):
    """Per channel and device, every value is the one /api/v1/channels and /api/v1/devices report."""
    metrics = site.scrape()
    for channel in site.runtime.channels:
        h = channel.health()
        labels = {"channel": channel.name, "type": h["type"]}
        devices = [d.health() for d in channel.devices]
        states = {}
        for d in devices:
            states[d["state"]] = states.get(d["state"], 0) + 1
        for state, count in states.items():
            assert value(metrics, "scada_channel_devices", channel=channel.name, state=state) == count
        if h["type"] in ("modbus-rtu", "modbus-tcp", "mbus"):
            assert value(metrics, "scada_channel_transactions_total", **labels) == h["transactions"]
            for key in ("timeouts", "crc_errors", "exceptions"):
                assert value(metrics, f"scada_channel_{key}_total", **labels) == sum(d[key] for d in devices)
            assert value(metrics, "scada_channel_utilisation_ratio", **labels) == \
                pytest.approx(h["utilisation_pct"] / 100)
            assert value(metrics, "scada_channel_wire_utilisation_ratio", **labels) == \
                pytest.approx(h["wire_utilisation_pct"] / 100)
            assert value(metrics, "scada_channel_link_up", **labels) == float(h["link_up"])
            assert value(metrics, "scada_channel_queue_depth", **labels) == channel.scheduler.queue_depth()
            for d in devices:
                at = {"channel": channel.name, "device": d["name"]}
                assert value(metrics, "scada_device_timeouts_total", **at) == d["timeouts"]
                assert value(metrics, "scada_device_crc_errors_total", **at) == d["crc_errors"]
                assert value(metrics, "scada_device_up", **at) == float(d["state"] in ("ok", "degraded"))
        elif h["type"] == "lorawan":
            assert value(metrics, "scada_channel_uplinks_total", **labels) == h["uplinks"]
            assert value(metrics, "scada_channel_decode_errors_total", **labels) == h["decode_errors"]
            for d in devices:
                at = {"channel": channel.name, "device": d["name"]}
                assert value(metrics, "scada_device_up", **at) == float(d["state"] == "ok")
    # The figures set up above, as a reader of the dashboard sees them.
    gw = {"channel": "gw", "type": "modbus-rtu"}
    assert value(metrics, "scada_channel_transactions_total", **gw) == 60
    assert value(metrics, "scada_channel_timeouts_total", **gw) == 7
    assert value(metrics, "scada_channel_crc_errors_total", **gw) == 7
    assert value(metrics, "scada_channel_queue_depth", **gw) == 2
    assert value(metrics, "scada_channel_devices", channel="gw", state="comm_loss") == 1
    assert value(metrics, "scada_channel_devices", channel="gw", state="failing") == 0  # stable series
    assert value(metrics, "scada_channel_uplinks_total", channel="lora", type="lorawan") == 9
    assert value(metrics, "scada_channel_devices", channel="hand", state="manual") == 1
    # Hand-read meters have no communications: no device series, no link.
    assert not [labels for labels in series(metrics, "scada_device_up") if ("channel", "hand") in labels]
    assert not [labels for labels in series(metrics, "scada_channel_link_up") if ("channel", "hand") in labels]


def test_history_alarm_modem_and_process_values(site):
    """History, alarms and the modem server as /api/v1/health reports them; build info and uptime."""
    rt = site.runtime
    metrics = site.scrape()
    stats = rt.historian.stats()
    assert stats["accepted_total"] >= 1 and stats["backlog"] >= 1
    assert value(metrics, "scada_historian_backlog_samples") == stats["backlog"]
    assert value(metrics, "scada_historian_backlog_bytes") == stats["backlog_bytes"] > 0
    assert value(metrics, "scada_historian_store_up") == float(bool(stats["store_up"]))
    for key in ("accepted", "written", "dropped", "rejected"):
        assert value(metrics, f"scada_historian_{key}_total") == stats[f"{key}_total"]
    assert value(metrics, "scada_historian_flush_errors_total") == stats["flush_errors"]
    assert value(metrics, "scada_historian_oldest_queued_age_seconds") == \
        pytest.approx(rt.reactor.seconds() - stats["oldest_queued_ts"])
    summary = rt.alarms.summary()
    assert series(metrics, "scada_alarms") == {frozenset({("state", s)}): n for s, n in summary["by_state"].items()}
    assert series(metrics, "scada_alarms_active") == {
        frozenset({("priority", p)}): n for p, n in summary["by_priority"].items()}
    assert value(metrics, "scada_alarm_flood") == 0
    modems = rt.modem_server.health()
    assert value(metrics, "scada_modem_connections") == modems["connections"]
    assert value(metrics, "scada_modem_registered") == modems["registered"] == 1
    assert value(metrics, "scada_modem_connects_total") == modems["accepted"]
    assert value(metrics, "scada_modem_link_up", channel="gprs") == 0
    assert not [labels for labels in series(metrics, "scada_modem_link_up") if ("channel", "gw") in labels]
    assert value(metrics, "scada_build_info", version=installed_version()) == 1
    assert value(metrics, "scada_uptime_seconds") == pytest.approx(rt.uptime()) == 30
    assert value(metrics, "scada_metrics_errors_total") == 0  # the broken device's test scrapes another app
    assert value(metrics, "process_resident_memory_bytes") > 0


def test_counters_follow_the_runtime_between_scrapes(site, monkeypatch):
    """Values are read at scrape time: a second scrape sees what changed since the first."""
    before = site.scrape()
    gw = site.channel("gw")
    monkeypatch.setattr(gw.scheduler, "transactions", gw.scheduler.transactions + 5)
    monkeypatch.setattr(gw.devices[0].stats, "timeouts", gw.devices[0].stats.timeouts + 1)
    site.runtime.historian.write([Sample("m1.volume_m3", 13.0, Quality.GOOD, T0)])
    after = site.scrape()
    at = {"channel": "gw", "type": "modbus-rtu"}
    assert value(after, "scada_channel_transactions_total", **at) == \
        value(before, "scada_channel_transactions_total", **at) + 5
    assert value(after, "scada_channel_timeouts_total", **at) == value(before, "scada_channel_timeouts_total", **at) + 1
    assert value(after, "scada_historian_accepted_total") == value(before, "scada_historian_accepted_total") + 1


def test_apps_have_their_own_registry_and_a_broken_report_costs_its_series_only(site, caplog):
    """A second app over the runtime has its own registry; a device or channel whose health() raises is
    left out of the scrape and counted in scada_metrics_errors_total (logged once)."""
    other = build_app(site.runtime)
    start_app(site.loop, other)
    assert other.ctx.metrics_registry is not site.app.ctx.metrics_registry
    assert value(site.scrape(app=other), "scada_channel_transactions_total", channel="gw", type="modbus-rtu") == \
        value(site.scrape(), "scada_channel_transactions_total", channel="gw", type="modbus-rtu") == 60

    def broken():
        raise RuntimeError("health exploded")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(site.channel("gw").devices[1], "health", broken)
        patch.setattr(site.channel("lora"), "health", broken)
        metrics = site.scrape(app=other)
        assert value(metrics, "scada_metrics_errors_total") == 2
        assert ("scada_device_up", frozenset({("channel", "gw"), ("device", "m2")})) not in metrics
        assert value(metrics, "scada_device_up", channel="gw", device="m1") == 1
        # The channel's sums leave the broken device out; the rest of the site is all there.
        assert value(metrics, "scada_channel_timeouts_total", channel="gw", type="modbus-rtu") == 3
        assert not [labels for labels in series(metrics, "scada_channel_devices") if ("channel", "lora") in labels]
        assert value(metrics, "scada_channel_devices", channel="hand", state="manual") == 1
        assert "scada_historian_accepted_total" in {name for name, _ in metrics}
        assert value(site.scrape(app=other), "scada_metrics_errors_total") == 4
    # Logged once per broken object, not on every scrape.
    assert len([r for r in caplog.records if "cannot be read" in r.getMessage()]) == 2
    assert value(site.scrape(app=other), "scada_metrics_errors_total") == 4
    assert ("scada_device_up", frozenset({("channel", "gw"), ("device", "m2")})) in site.scrape(app=other)


def test_auth_mode_needs_a_read_role(make_site):
    """api.metrics: auth — 401 without a token, 403 for roles outside READ, metrics for READ roles."""
    site = make_site("{metrics: auth}")
    route = next(r for r in site.app.router.routes if r.path == "metrics")
    assert api_auth.declared_roles(route) == frozenset(auth.READ)
    reply = site.get()
    assert reply.status == 401 and reply.json["error"]
    assert reply.headers["www-authenticate"].startswith("Bearer")
    for role in auth.ROLES:
        reply = site.get(role=role)
        if role in auth.READ or role == "admin":
            assert reply.status == 200 and b"scada_channel_transactions_total" in reply.body, role
        else:
            assert reply.status == 403 and reply.json == {"error": f"role {role!r} may not GET /metrics"}


def test_off_mode_is_a_json_404(make_site):
    """api.metrics: off — 404 with a JSON error naming the setting, whoever asks."""
    site = make_site("{metrics: off}")
    for role in (None, "admin"):
        reply = site.get(role=role)
        assert reply.status == 404
        assert reply.json == {"error": "no such path: /metrics (metrics are off on this site: api.metrics: off)"}
    assert site.app.ctx.metrics_registry is None


def test_a_bad_metrics_mode_is_a_config_error(tmp_path):
    """api.metrics must be public, auth or off: scada check names the value and the line."""
    from scada.config import ConfigError, load_config

    path = tmp_path / "site.yaml"
    path.write_text(SITE.format(api="{metrics: private}"), encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert [(p.line, p.message) for p in raised.value.problems] == [
        (3, "api.metrics: 'private' is not one of public, auth, off")]
