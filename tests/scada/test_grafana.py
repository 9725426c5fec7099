"""``scada grafana``: data source and dashboards from the site file, checked against Grafana's model.

Every dashboard of the demo site and of small synthetic sites (no
registry, SQLite history; InfluxDB with a retention policy, another
measurement and credentials; odd names) is validated against a JSON Schema
of Grafana's dashboard model, laid out on the 24-column grid without
overlaps, and every query is parsed: it names only tags and devices that
:func:`scada.config.alarms.site_tags` knows, only known qualities, the
site's measurement, the provisioned data source.  Links lead to exported
dashboards.  Export writes provisioning files Grafana reads; the CLI's
errors are one line and exit 1.  (Queries against a real InfluxDB and the
push against a recording server are integration tests.)
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from scada import cli
from scada.config import load_config
from scada.config.alarms import site_tags
from scada.grafana import model
from scada.grafana.export import export
from scada.grafana.queries import Source, quote_string, regex_of
from scada.keytags import building_key_tags, channel_key_tags
from scada.registry import Registry
from tests.scada.grafana_checks import (layout_problems, link_problems, panels, query_problems, referenced,
                                        regex_names, schema_errors, targets)

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo.yaml"

CHANNELS = textwrap.dedent("""\
    channels:
      - name: seg1
        type: modbus-rtu
        description: "ул. Садовая, 1"
        transport: {tcp: 127.0.0.1:1}
        devices:
          - {name: h1, address: 1, profile: generic_heat_meter, poll: 10s}
          - {name: w1, address: 2, profile: generic_water_meter, poll: 10s}
          - {name: "o'hara/1", address: 3, profile: generic_water_meter, poll: 10s}
          - {name: off1, address: 4, profile: generic_water_meter, poll: 10s, enabled: false}
      - name: lora
        type: lorawan
        devices:
          - {name: kv2, dev_eui: 70B3D59BA0000511, decoder: pulse_counter_le, poll: 1m,
             decoder_options: {litres_per_pulse: 1}}
      - name: hand
        type: manual
        devices:
          - {name: kv3, serial: "ВСХ-1", points: [{name: volume_m3, unit: m3}]}
    """)

SQLITE_SITE = "site: {name: без реестра, timezone: Asia/Yekaterinburg}\nhistory: {backend: sqlite, path: h.db}\n" \
    + CHANNELS

INFLUX_SITE = textwrap.dedent("""\
    site: {name: influx, timezone: UTC}
    history:
      backend: influxdb
      url: http://influx.local:8086/
      database: metering
      measurement: "meter readings"
      retention_policy: two_years
      username: scada
      password: s3cret-literal
    """) + CHANNELS + textwrap.dedent("""\
    registry:
      buildings:
        - id: дом-1
          address: "ул. Садовая, 1"
          weather_tag: h1.t_supply_c
          premises:
            - {number: "1", account: "1001", area: 50.0, residents: 2}
          meters:
            - {id: heat, serial: "1", resource: heat, tag: h1.energy_kwh, role: odpu, power_tag: h1.power_kw}
            - {id: cold, serial: "2", resource: cold_water, tag: w1.volume_m3, role: odpu}
            - {id: kv1, serial: "3", resource: cold_water, tag: "o'hara/1.volume_m3", role: ipu, premises: "1"}
            - {id: kv2, serial: "4", resource: cold_water, tag: kv2.volume_m3, role: ipu, premises: "1"}
        - id: a-building-with-a-very-long-identifier-indeed
          address: "ул. Садовая, 3"
          meters:
            - {id: kv3, serial: "5", resource: cold_water, tag: kv3.volume_m3, role: odpu}
    """)

TOKEN_SITE = textwrap.dedent("""\
    site: {name: v2}
    history: {backend: influxdb, url: http://influx:8086, token: abc, org: utility, bucket: metering}
    """)


def load(tmp_path: Path, text: str):
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    cfg, _ = load_config(path)
    return cfg


@pytest.fixture(scope="module")
def demo():
    cfg, _ = load_config(DEMO)
    return cfg


@pytest.fixture(scope="module")
def demo_bundle(demo):
    return model.build(demo)


@pytest.fixture(scope="module")
def influx_cfg(tmp_path_factory):
    return load(tmp_path_factory.mktemp("influx"), INFLUX_SITE)


@pytest.fixture(scope="module")
def sqlite_cfg(tmp_path_factory):
    return load(tmp_path_factory.mktemp("sqlite"), SQLITE_SITE)


def all_problems(cfg, bundle, source: str) -> list[str]:
    """Everything the checks find wrong in a bundle's dashboards."""
    site = site_tags(cfg.channels, cfg.profiles, cfg.registry)
    problems = link_problems(bundle.dashboards)
    uids = [d["uid"] for d in bundle.dashboards]
    if len(set(uids)) != len(uids):
        problems.append(f"uids not unique: {uids}")
    for d in bundle.dashboards:
        problems += [f"{d['uid']}: {p}" for p in schema_errors(d) + layout_problems(d)]
        problems += [f"{d['uid']}: {p}" for p in query_problems(d, site.tags, site.devices, source,
                                                                 bundle.datasource["uid"])]
    return problems


# ----------------------------------------------------------------------------------- the demo site


def test_demo_dashboards_follow_grafanas_model(demo, demo_bundle):
    """Schema, grid, queries (existing tags only), data source and links of every demo dashboard."""
    assert all_problems(demo, demo_bundle, '"samples"') == []
    assert [d["uid"] for d in demo_bundle.dashboards] == [
        "scada-overview", "scada-building-b1", "scada-building-b2", "scada-building-b3", "scada-building-b4",
        "scada-building-b5", "scada-channels"]
    assert {d["schemaVersion"] for d in demo_bundle.dashboards} == {model.SCHEMA_VERSION}
    assert demo_bundle.dashboards[0]["title"] == "Обзор района"


def test_english_titles(demo, demo_bundle):
    """--lang en: the same dashboards and queries, English titles."""
    bundle = model.build(demo, "en")
    assert [d["title"] for d in bundle.dashboards][::6] == ["District overview", "Channel health"]
    assert bundle.dashboards[1]["title"] == "Building b1 — Московская обл., г. Подольск, ул. Ленина, д. 10"
    for en, ru in zip(bundle.dashboards, demo_bundle.dashboards):
        assert [t["query"] for _, t in targets(en)] == [t["query"] for _, t in targets(ru)]
    assert schema_errors(bundle.dashboards[1]) == []


def test_the_checks_catch_what_they_should(demo_bundle):
    """The checkers are not vacuous: a made-up tag, an overlap, a foreign data source, a dead link are found."""
    board = json.loads(json.dumps(demo_bundle.dashboards[1]))
    first = next(t for _, t in targets(board))
    first["query"] = first["query"].replace("b1-heat.power_kw", "b1-heat.no_such_point")
    first["datasource"] = {"type": "influxdb", "uid": "other"}
    board["panels"][2]["gridPos"] = dict(board["panels"][1]["gridPos"])
    board["links"][0]["url"] = "/d/scada-nowhere"
    site = site_tags([], {})
    problems = query_problems(board, site.tags, {}, '"samples"', "scada-influxdb") + layout_problems(board)
    problems += link_problems([board])
    text = "\n".join(problems)
    assert "no tag 'b1-heat.no_such_point'" in text and "is not the provisioned scada-influxdb" in text
    assert "overlap" in text and "'/d/scada-nowhere' leads to no exported dashboard" in text
    board["schemaVersion"] = "39"
    assert any(e.startswith("schemaVersion") for e in schema_errors(board))


def test_a_building_dashboard_has_the_key_values_consumption_and_balance(demo_bundle):
    b1 = demo_bundle.dashboards[1]
    titles = [p["title"] for p in panels(b1)]
    for title in ("Тепловая мощность", "Температура подачи", "Температура обратки", "Расход теплоносителя",
                  "Расход ХВС", "Наружная температура", "Небаланс: холодная вода", "Потребление",
                  "Тепловая энергия: расход по суткам (ОДПУ)", "Холодная вода: ОДПУ и Σ ИПУ за окно баланса",
                  "Небаланс и полнота данных ИПУ, %"):
        assert title in titles, title
    queries = [t["query"] for _, t in targets(b1)]
    tags = {tag for q in queries for tag in referenced(q, "tag")}
    assert {"b1-heat.power_kw", "b1-heat.t_supply_c", "b1-heat.t_return_c", "b1-heat.flow_m3h", "b1-cold.flow_m3h",
            "weather.t_outdoor_c", "b1-heat.energy_kwh", "b1-cold.volume_m3", "b1-hot.volume_m3", "b1-el.energy_kwh",
            "balance-b1.cold_water_odpu", "balance-b1.cold_water_ipu_sum",
            "balance-b1.cold_water_imbalance_pct"} <= tags
    assert not any("kv01" in tag for tag in tags)  # apartment meters only through the balance figures
    daily = next(p for p in panels(b1) if p["title"].startswith("Тепловая энергия: расход по суткам"))
    [query] = [t["query"] for t in daily["targets"]]
    assert query == ("SELECT non_negative_difference(last(\"value\")) FROM \"samples\" WHERE \"tag\" = "
                     "'b1-heat.energy_kwh' AND (\"quality\" = 'good' OR \"quality\" = 'manual' OR \"quality\" = "
                     "'calculated' OR \"quality\" = 'backfilled') AND $timeFilter GROUP BY time(1d) fill(none) "
                     "tz('Europe/Moscow')")
    assert daily["fieldConfig"]["defaults"]["unit"] == "kwatth"
    assert daily["fieldConfig"]["defaults"]["custom"]["drawStyle"] == "bars"


def test_meters_known_only_at_run_time_are_left_out_and_named(demo_bundle):
    """b3's hot-water ОДПУ is an M-Bus meter without a profile: no tag to chart before it answers."""
    b3 = demo_bundle.dashboards[3]
    assert not any("b3-heat-gvs" in t["query"] for _, t in targets(b3))
    assert any("b3-heat-gvs.volume" in w for w in demo_bundle.warnings)
    assert demo_bundle.warnings[0].startswith("the site writes its history to SQLite (var/history.db)")


def test_the_overview_links_every_building(demo_bundle):
    overview = demo_bundle.dashboards[0]
    stats = [p for p in panels(overview) if p["type"] == "stat"]
    assert [p["links"][0]["url"] for p in stats] == [f"/d/scada-building-b{i}" for i in range(1, 6)]
    b1 = stats[0]
    assert b1["title"] == "b1 — Московская обл., г. Подольск, ул. Ленина, д. 10"
    assert [t["alias"] for t in b1["targets"]] == ["Тепловая мощность", "Небаланс: холодная вода",
                                                     "Небаланс: горячая вода", "Небаланс: электрическая энергия",
                                                     "Наружная температура"]
    # Each query keeps its own unit: kW for the power (the panel's), % and °C by query letter.
    assert b1["fieldConfig"]["defaults"]["unit"] == "kwatt"
    assert [(o["matcher"]["options"], o["properties"][0]["value"]) for o in b1["fieldConfig"]["overrides"]] == [
        ("B", "percent"), ("C", "percent"), ("D", "percent"), ("E", "celsius")]
    assert {link["type"] for link in overview["links"]} == {"dashboards", "link"}


def test_the_channel_dashboard(demo_bundle):
    board = demo_bundle.dashboards[-1]
    queries = [t["query"] for _, t in targets(board)]
    tags = {tag for q in queries for tag in referenced(q, "tag")}
    for ch in ("b1-rs485", "b2-rs485", "b3-mbus", "b4-gprs"):
        assert {f"channel-{ch}.{p}" for p in ("link_up", "tx_per_s", "utilisation_pct", "timeouts", "crc_errors",
                                              "devices_comm_loss", "queue_depth")} <= tags
    assert {"channel-b5-lora.uplinks", "channel-b5-lora.decode_errors", "historian_backlog"} <= tags
    assert not any("hand-read" in t for t in tags)
    devices = {d for q in queries for d in referenced(q, "device")}
    assert {"b1-heat", "b1-kv06-el", "b3-heat-gvs", "b5-water"} <= devices
    assert not devices & {"b2-kv07-cold", "b2-kv07-hot"}  # hand-read meters have no comm quality
    tables = [p for p in panels(board) if p["type"] == "table"]
    assert [p["title"] for p in tables] == [f"{ch}: доля недостоверных отсчётов за период"
                                            for ch in ("b1-rs485", "b2-rs485", "b3-mbus", "b4-gprs", "b5-lora")]
    assert [t["id"] for t in tables[0]["transformations"]] == ["merge", "calculateField", "organize"]
    bad = tables[0]["targets"][1]["query"]
    assert "\"quality\" != 'good' AND \"quality\" != 'manual'" in bad and 'GROUP BY "device"' in bad


def test_hmi_and_grafana_agree_on_key_values(demo):
    """Both take a building's key values from scada.keytags; Grafana with the tags the config defines."""
    site = site_tags(demo.channels, demo.profiles, demo.registry)
    view = model.site_view(demo)
    registry = Registry.from_config(demo)
    for b in view.buildings:
        assert b.key == building_key_tags(registry.building(b.id), site.tags.__contains__)
    assert view.buildings[0].key == {
        "power": "b1-heat.power_kw", "t_supply": "b1-heat.t_supply_c", "t_return": "b1-heat.t_return_c",
        "heat_flow": "b1-heat.flow_m3h", "flow": "b1-cold.flow_m3h", "t_outdoor": "weather.t_outdoor_c",
        "imbalance": {"cold_water": "balance-b1.cold_water_imbalance_pct",
                      "hot_water": "balance-b1.hot_water_imbalance_pct",
                      "electricity": "balance-b1.electricity_imbalance_pct"}}
    # M-Bus heat meter: the profile names its points like the Modbus one.
    assert view.buildings[2].key["t_supply"] == "b3-heat.t_supply_c"


def test_key_values_by_suffix_without_a_registry():
    tags = {"a.power", "b.flow_temperature", "b.t_return_c", "c.volume_flow"}
    assert channel_key_tags(["a", "b", "c"], tags.__contains__) == {
        "power": "a.power", "t_supply": "b.flow_temperature", "t_return": "b.t_return_c",
        "heat_flow": "c.volume_flow", "flow": None, "t_outdoor": None, "imbalance": {}}


# ----------------------------------------------------------------------------------- other sites


def test_a_site_without_registry_gets_a_dashboard_per_channel(sqlite_cfg):
    bundle = model.build(sqlite_cfg)
    assert all_problems(sqlite_cfg, bundle, '"samples"') == []
    assert [d["uid"] for d in bundle.dashboards] == ["scada-overview", "scada-building-seg1",
                                                     "scada-building-lora", "scada-building-hand", "scada-channels"]
    seg1 = bundle.dashboards[1]
    assert seg1["title"] == "Канал seg1 — ул. Садовая, 1"
    tags = {tag for _, t in targets(seg1) for tag in referenced(t["query"], "tag")}
    assert {"h1.power_kw", "h1.t_supply_c", "h1.energy_kwh", "w1.volume_m3", "o'hara/1.volume_m3"} <= tags
    assert not any(tag.startswith("off1.") for tag in tags)  # disabled: publishes nothing
    daily = [t["query"] for _, t in targets(seg1) if "non_negative_difference" in t["query"]]
    assert daily and all(q.endswith("tz('Asia/Yekaterinburg')") for q in daily)
    assert bundle.warnings == ["the site writes its history to SQLite (h.db), not InfluxDB: the data source points "
                               "at http://127.0.0.1:8086, where InfluxDB would be (history.backend: influxdb)"]
    assert bundle.datasource["url"] == "http://127.0.0.1:8086" and "secureJsonData" not in bundle.datasource
    channels = bundle.dashboards[-1]
    devices = {d for _, t in targets(channels) for d in referenced(t["query"], "device")}
    assert devices == {"h1", "w1", "o'hara/1", "kv2"}


def test_retention_policy_measurement_and_credentials(influx_cfg):
    bundle = model.build(influx_cfg, "en")
    assert all_problems(influx_cfg, bundle, '"two_years"."meter readings"') == []
    assert bundle.warnings == []
    assert bundle.datasource == {
        "uid": "scada-influxdb", "name": "SCADA InfluxDB", "type": "influxdb", "access": "proxy",
        "url": "http://influx.local:8086", "isDefault": False, "basicAuth": False,
        "jsonData": {"dbName": "metering", "httpMode": "POST", "version": "InfluxQL"},
        "user": "$INFLUXDB_USER", "secureJsonData": {"password": "$INFLUXDB_PASSWORD"}}
    pushed = model.datasource(influx_cfg, "http://other:8086", secrets="values")
    assert (pushed["url"], pushed["user"], pushed["secureJsonData"]) == (
        "http://other:8086", "scada", {"password": "s3cret-literal"})
    # UTC: daily buckets need no tz() clause.
    assert not any("tz(" in t["query"] for d in bundle.dashboards for _, t in targets(d))


def test_odd_building_ids_get_valid_distinct_uids(influx_cfg):
    bundle = model.build(influx_cfg)
    uids = [d["uid"] for d in bundle.dashboards]
    assert uids[1].startswith("scada-building-dom-1-") and len(uids[1]) == len("scada-building-dom-1-") + 8
    assert uids[2].startswith("scada-building-a-building-with-") and len(uids[2]) <= 40
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,40}", u) for u in uids)
    home = bundle.dashboards[1]
    assert home["title"] == "Здание дом-1 — ул. Садовая, 1"
    tags = {tag for _, t in targets(home) for tag in referenced(t["query"], "tag")}
    assert {"h1.power_kw", "h1.energy_kwh", "w1.volume_m3", "balance-дом-1.cold_water_imbalance_pct",
            "balance-дом-1.cold_water_odpu"} <= tags


def test_balance_disabled_exports_no_balance_figures(tmp_path):
    """balance.enabled: false: the runtime publishes no balance-* tag, so no dashboard may query one."""
    cfg = load(tmp_path, INFLUX_SITE + "balance: {enabled: false}\n")
    bundle = model.build(cfg, "en")
    # What exists at run time: the site's tags without the balance figures.
    site = site_tags(cfg.channels, cfg.profiles)
    problems = []
    for d in bundle.dashboards:
        problems += [f"{d['uid']}: {p}" for p in query_problems(d, site.tags, site.devices,
                                                                 '"two_years"."meter readings"', "scada-influxdb")]
    assert problems == []
    tags = {tag for d in bundle.dashboards for _, t in targets(d) for tag in referenced(t["query"], "tag")}
    assert "h1.power_kw" in tags and not [tag for tag in tags if tag.startswith("balance-")]


def test_influxdb_2_token_goes_in_a_header(tmp_path):
    cfg = load(tmp_path, TOKEN_SITE)
    source = model.datasource(cfg)
    assert source["jsonData"] == {"dbName": "metering", "httpMode": "POST", "version": "InfluxQL",
                                  "httpHeaderName1": "Authorization"}
    assert source["secureJsonData"] == {"httpHeaderValue1": "Token $INFLUXDB_TOKEN"}
    assert model.datasource(cfg, secrets="values")["secureJsonData"] == {"httpHeaderValue1": "Token abc"}


@pytest.mark.parametrize("name, expected", [
    ("b1", "scada-building-b1"),
    ("Block_7-A", "scada-building-Block_7-A"),
    ("x" * 25, "scada-building-" + "x" * 25),
])
def test_uids_that_fit_are_kept(name, expected):
    assert model.building_uid(name) == expected


def test_uids_are_sanitised_stable_and_distinct():
    odd = ["Дом №5", "дом №5", "b:1", "b;1", "x" * 26, "x" * 27, "'\"/\\"]
    uids = [model.building_uid(n) for n in odd]
    assert len(set(uids)) == len(uids)
    assert all(re.fullmatch(r"scada-building-[A-Za-z0-9_-]+", u) and len(u) <= 40 for u in uids), uids
    assert uids[0].startswith("scada-building-dom-5-") and uids == [model.building_uid(n) for n in odd]
    assert model.folder_uid("SCADA") == "scada" and re.fullmatch(r"uchyot-[0-9a-f]{8}", model.folder_uid("Учёт"))


def test_quoting_round_trips_through_the_checker():
    names = ["o'hara/1", "a\\b", "x|y", "dot.(paren)", "^$"]
    regex = regex_of(names)
    assert regex_names(regex[1:-1].replace("\\/", "/")) == names
    query = f'SELECT count("quality") FROM "s" WHERE "device" =~ {regex} AND "tag" = {quote_string(names[0])}'
    assert referenced(query, "device") == names and referenced(query, "tag") == ["o'hara/1"]
    assert re.search(regex[1:-1].replace("\\/", "/"), "x|y") and not re.search(regex[1:-1].replace("\\/", "/"), "x")
    with pytest.raises(ValueError):
        regex_of([])


def test_units_map_to_grafanas():
    assert [model.grafana_unit(u) for u in ("kWh", "kW", "°C", "m3", "%", "m3/h", "", None, "Gcal")] == [
        "kwatth", "kwatt", "celsius", "m3", "percent", "suffix: m3/h", "none", "none", "suffix: Gcal"]
    assert [model.ref_id(i) for i in (0, 25, 26, 27, 701, 702)] == ["A", "Z", "AA", "AB", "ZZ", "AAA"]


def test_sources_with_a_retention_policy():
    src = Source("m\"x", "rp", "Europe/Moscow")
    assert src.from_clause == '"rp"."m\\"x"'
    assert src.increase("t", "1h").endswith("GROUP BY time(1h) fill(none)")  # tz() only for days


# ----------------------------------------------------------------------------------- export and CLI


def test_export_writes_provisioning_files(tmp_path, demo_bundle):
    out = tmp_path / "provisioning"
    (out / "dashboards").mkdir(parents=True)
    (out / "dashboards" / "scada-building-gone.json").write_text("{}", encoding="utf-8")
    (out / "dashboards" / "mine.json").write_text("{}", encoding="utf-8")
    lines = export(demo_bundle, out)
    assert lines[0] == f"wrote {out}/datasources/scada.yaml (data source scada-influxdb: http://127.0.0.1:8086)"
    assert lines[1] == f"wrote {out}/dashboards/scada.yaml (folder SCADA, dashboards from {out}/dashboards)"
    assert lines[-1] == f"removed {out}/dashboards/scada-building-gone.json (no longer on the site)"
    assert (out / "dashboards" / "mine.json").exists()  # not ours: left alone
    sources = yaml.safe_load((out / "datasources" / "scada.yaml").read_text(encoding="utf-8"))
    assert sources["apiVersion"] == 1
    [source] = sources["datasources"]
    assert (source["uid"], source["type"], source["jsonData"]["version"], source["editable"]) == (
        "scada-influxdb", "influxdb", "InfluxQL", False)
    providers = yaml.safe_load((out / "dashboards" / "scada.yaml").read_text(encoding="utf-8"))
    [provider] = providers["providers"]
    assert (provider["type"], provider["folder"], provider["options"]["path"]) == (
        "file", "SCADA", str((out / "dashboards").resolve()))
    written = sorted(p.name for p in (out / "dashboards").glob("scada-*.json"))
    assert written == sorted(f"{d['uid']}.json" for d in demo_bundle.dashboards)
    for d in demo_bundle.dashboards:
        on_disk = json.loads((out / "dashboards" / f"{d['uid']}.json").read_text(encoding="utf-8"))
        assert on_disk == d and schema_errors(on_disk) == []
    assert not list(out.rglob(".*.tmp"))
    assert (out / "alerting").is_dir() and (out / "plugins").is_dir()


def test_export_keeps_secrets_out_of_the_files(tmp_path, influx_cfg):
    export(model.build(influx_cfg), tmp_path, "/var/lib/grafana/dashboards")
    text = (tmp_path / "datasources" / "scada.yaml").read_text(encoding="utf-8")
    assert "s3cret" not in text and "$INFLUXDB_PASSWORD" in text and "user: $INFLUXDB_USER" in text
    provider = yaml.safe_load((tmp_path / "dashboards" / "scada.yaml").read_text(encoding="utf-8"))
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    assert yaml.safe_load(text)["datasources"][0]["url"] == "http://influx.local:8086"


def test_the_deployment_site_exports_cleanly(monkeypatch):
    """config/deploy/site.yaml (what the compose file's grafana-provisioning service exports) passes every check."""
    deploy = ROOT / "config" / "deploy" / "site.yaml"
    if not deploy.is_file():
        pytest.skip("no config/deploy/site.yaml")
    example = ROOT / ".env.example"
    for line in example.read_text(encoding="utf-8").splitlines() if example.is_file() else ():
        name, eq, value = line.partition("=")
        if eq and not name.startswith("#"):
            monkeypatch.setenv(name.strip(), value.strip())
    cfg, _ = load_config(deploy)
    bundle = model.build(cfg, influx_url="http://influxdb:8086")
    assert all_problems(cfg, bundle, '"samples"') == [] and bundle.warnings == []
    assert (bundle.datasource["user"], bundle.datasource["secureJsonData"]) == (
        "$INFLUXDB_USER", {"password": "$INFLUXDB_PASSWORD"})


def test_cli_export(tmp_path, capsys):
    site = tmp_path / "site.yaml"
    site.write_text(SQLITE_SITE, encoding="utf-8")
    code = cli.main(["grafana", "export", str(tmp_path / "out"), "-c", str(site), "--influx-url",
                     "http://influxdb:8086", "--provider-path", "/etc/grafana/provisioning/dashboards", "--lang", "en"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert len(out.splitlines()) == 2 + 5 and all(line.startswith("wrote ") for line in out.splitlines())
    assert err == ("warning: the site writes its history to SQLite (h.db), not InfluxDB: the data source points at "
                   "http://influxdb:8086, where InfluxDB would be (history.backend: influxdb)\n")
    overview = json.loads((tmp_path / "out" / "dashboards" / "scada-overview.json").read_text(encoding="utf-8"))
    assert overview["title"] == "District overview"


@pytest.mark.parametrize("argv, message", [
    (["grafana", "export", "OUT", "--influx-url", "influx:8086"], "--influx-url 'influx:8086': not an InfluxDB URL"),
    (["grafana", "push", "--url", "grafana:3000", "--token", "t"], "--url 'grafana:3000': not a Grafana URL"),
    (["grafana", "push", "--url", "http://127.0.0.1:99999", "--token", "t"], "--url 'http://127.0.0.1:99999'"),
    # urlsplit itself raises ValueError on a bracket left open.
    (["grafana", "push", "--url", "http://[::1", "--token", "t"], "--url 'http://[::1': not a Grafana URL"),
    (["grafana", "export", "OUT", "--influx-url", "http://[::1"], "--influx-url 'http://[::1': not an InfluxDB URL"),
    (["grafana", "push", "--url", "http://127.0.0.1:1", "--token", " "], "--token is empty"),
    (["grafana", "push", "--url", "http://127.0.0.1:1", "--token", "t", "--folder", ""], "--folder is empty"),
])
def test_cli_bad_arguments_are_one_line(tmp_path, capsys, argv, message):
    site = tmp_path / "site.yaml"
    site.write_text(SQLITE_SITE, encoding="utf-8")
    argv = [a.replace("OUT", str(tmp_path / "out")) for a in argv]
    assert cli.main(argv + ["-c", str(site)]) == 1
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if not line.startswith("warning: ")]
    assert out == "" and len(lines) == 1 and message in lines[0], err


def test_cli_push_needs_a_token(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)
    assert cli.main(["grafana", "push", "--url", "http://127.0.0.1:1", "-c", str(tmp_path / "x.yaml")]) == 1
    assert capsys.readouterr().err == ("--token is missing: give a Grafana service account token "
                                       "(or set GRAFANA_TOKEN)\n")


def test_cli_push_without_grafana_client(tmp_path, capsys, monkeypatch):
    """Without the optional package: one line saying what to install."""
    site = tmp_path / "site.yaml"
    site.write_text(SQLITE_SITE, encoding="utf-8")
    monkeypatch.setitem(sys.modules, "grafana_client", None)  # import fails as if not installed
    assert cli.main(["grafana", "push", "--url", "http://127.0.0.1:1", "--token", "t", "-c", str(site)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == ("scada grafana push needs the grafana-client package: "
                       "pip install 'scada-metering[grafana]'")


def test_cli_config_problems_exit_1(tmp_path, capsys):
    site = tmp_path / "site.yaml"
    site.write_text("site: {name: x}\nhistory: {backend: oracle}\n", encoding="utf-8")
    assert cli.main(["grafana", "export", str(tmp_path / "out"), "-c", str(site)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "site.yaml:2:" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_cli_export_to_an_unwritable_place(tmp_path, capsys):
    site = tmp_path / "site.yaml"
    site.write_text(SQLITE_SITE, encoding="utf-8")
    (tmp_path / "file").write_text("", encoding="utf-8")
    assert cli.main(["grafana", "export", str(tmp_path / "file"), "-c", str(site)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith(f"{tmp_path / 'file'}: cannot write the provisioning files: ")
