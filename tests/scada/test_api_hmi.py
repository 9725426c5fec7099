"""The HMI's server side: its page and files, ``/api/v1/hmi/site``, ``.../today``, and the ``hmi:`` section."""

from __future__ import annotations

import json as jsonlib
import textwrap

import pytest

import scada.api.hmi as hmi
from scada.config import load_config
from tags.timefmt import iso_utc, parse_iso
from tests.scada.api_site import REGISTRY, RoleSite, role_site
from tests.scada.api_site import SITE as SIMULATED_SITE

SITE = SIMULATED_SITE.replace("simulate: true", "simulate: false")  # nothing opened: no ptys on a Clock

T0 = parse_iso("2026-11-19T08:00:00Z")  # 11:00 in Moscow
MIDNIGHT = parse_iso("2026-11-18T21:00:00Z")  # 00:00 of 19 November in Moscow
HMI = textwrap.dedent("""\
    hmi:
      lang: en
      sound: false
      stale_polls: 3
      kiosk: {views: [overview, building:b1, alarms], every: 15s}
    """)


@pytest.fixture()
def site(tmp_path):
    site = role_site(RoleSite, tmp_path, SITE + REGISTRY + HMI, T0)
    yield site
    site.close()


@pytest.fixture()
def static(tmp_path, monkeypatch):
    folder = tmp_path / "static"
    (folder / "js").mkdir(parents=True)
    (folder / "index.html").write_text("<!doctype html><title>HMI</title>", encoding="utf-8")
    (folder / "js" / "main.js").write_text("export const x = 1;\n", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("not for the web", encoding="utf-8")
    monkeypatch.setattr(hmi, "STATIC", folder)
    return folder


def test_the_page_and_its_files_are_public(site, static):
    """``/`` is index.html and ``/hmi/<path>`` a file of hmi/static, with their types, to anyone."""
    page = site.call("GET", "/", role=None)
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert b"<title>HMI</title>" in page.body and page.headers["cache-control"] == "no-cache"
    script = site.call("GET", "/hmi/js/main.js", role=None)
    assert script.status == 200 and script.headers["content-type"] == "text/javascript; charset=utf-8"


@pytest.mark.parametrize("path", ["/hmi/missing.js", "/hmi/js", "/hmi/../secret.txt", "/hmi/%2e%2e/secret.txt",
                                  "/hmi/js/..%2F..%2Fsecret.txt"])
def test_nothing_outside_the_hmi_files_is_served(site, static, path):
    reply = site.call("GET", path, role=None)
    assert reply.status == 404 and "error" in reply.json
    assert b"not for the web" not in reply.body


def test_the_real_hmi_is_there():
    """The repository's HMI has its page and entry script where ``/`` and ``/hmi/`` look."""
    assert (hmi.STATIC / "index.html").is_file() and (hmi.STATIC / "js" / "main.js").is_file()


def test_site_description(site):
    """Buildings with key tags, meters and premises; tags with poll periods; channels; settings."""
    site.runtime.alarms.stop()
    body = site.call("GET", "/api/v1/hmi/site").json
    assert body["site"] == {"name": "openapi test", "timezone": "Europe/Moscow"}
    assert body["user"] == {"user": "token:viewer-token", "role": "viewer", "via": "token"}
    assert body["hmi"] == {"lang": "en", "sound": False, "stale_polls": 3.0,
                           "kiosk": {"views": ["overview", "building:b1", "alarms"], "every_s": 15.0}}
    [b1] = body["buildings"]
    assert (b1["id"], b1["address"], b1["channels"], b1["devices"]) == (
        "b1", "г. Москва, ул. Ленина, д. 10", ["gw"], ["b1-cold", "b1-kv01-cold"])
    # No heat meter in this registry: no heat values; the cold-water ОДПУ's flow is the water flow.
    assert b1["key"] == {"power": None, "t_supply": None, "t_return": None, "heat_flow": None,
                         "flow": "b1-cold.flow_m3h", "t_outdoor": None,
                         "imbalance": {"cold_water": "balance-b1.cold_water_imbalance_pct"}}
    meters = {m["id"]: m for m in b1["meters"]}
    assert meters["b1-kv01-cold"]["premises"] == "1" and meters["b1-kv01-cold"]["channel"] == "gw"
    assert "b1-kv01-cold.volume_m3" in meters["b1-kv01-cold"]["tags"]
    assert b1["premises"][0] == {"number": "1", "account": "7700000101", "kind": "apartment", "area": 54.2,
                                 "residents": 2, "meters": ["b1-kv01-cold"]}
    assert body["devices"]["b1-cold"] == {"channel": "gw", "poll_s": 10.0, "building": "b1"}
    assert body["devices"]["b1-heat"]["building"] is None  # not in the registry
    assert body["devices"]["b1-kv03-cold"]["poll_s"] is None  # hand-read: never stale by age
    assert body["tags"]["b1-cold.flow_m3h"] == {"unit": "m3/h", "device": "b1-cold", "description": "",
                                                "poll_s": 10.0}
    assert [c["name"] for c in body["channels"]] == ["gw", "lora", "hand-read"]
    assert body["channels"][0] == {"name": "gw", "type": "modbus-rtu", "buildings": ["b1"]}
    assert body["server_time"] == iso_utc(T0)


@pytest.mark.parametrize("role, expected", [
    ("viewer", {"ack": False, "shelve": False, "comment": False, "out_of_service": False, "journal": True,
                "history": True, "sim": False, "registry_events": False}),
    ("crew", {"ack": True, "shelve": True, "comment": True, "out_of_service": False, "journal": True,
              "history": True, "sim": False, "registry_events": True}),
    ("engineer", {"ack": True, "shelve": True, "comment": True, "out_of_service": True, "journal": True,
                  "history": True, "sim": True, "registry_events": True}),
])
def test_permissions_follow_the_routes_roles(site, role, expected):
    """What the screens offer is what the API would allow: a viewer gets no acknowledge button."""
    assert site.call("GET", "/api/v1/hmi/site", role=role).json["permissions"] == expected


@pytest.mark.parametrize("role, status", [(None, 401), ("billing", 403), ("integration", 403)])
def test_site_description_needs_a_reading_role(site, role, status):
    reply = site.call("GET", "/api/v1/hmi/site", role=role)
    assert reply.status == status and "error" in reply.json


def test_without_a_registry_each_channel_is_a_building(tmp_path):
    site = role_site(RoleSite, tmp_path, SITE, T0)
    try:
        body = site.call("GET", "/api/v1/hmi/site").json
        gw = body["buildings"][0]
        assert [b["id"] for b in body["buildings"]] == ["gw", "lora", "hand-read"]
        assert gw["devices"] == ["b1-cold", "b1-kv01-cold", "b1-heat"]
        assert gw["key"]["power"] == "b1-heat.power_kw" and gw["key"]["t_supply"] == "b1-heat.t_supply_c"
        assert body["devices"]["b1-heat"]["building"] == "gw"
    finally:
        site.close()


def test_today_gives_the_registers_at_local_midnight(site):
    """The last usable sample at or before local midnight (within two days); none → null."""
    site.runtime.historian._store.insert(  # straight into the SQLite store, as if written long ago
        [("b1-cold.volume_m3", MIDNIGHT - 3600, 100.0, "good"),
         ("b1-cold.volume_m3", MIDNIGHT + 60, 100.5, "good"),
         ("b1-kv01-cold.volume_m3", MIDNIGHT - 3 * 86400, 7.0, "good")])
    reply = site.call("GET", "/api/v1/hmi/buildings/b1/today")
    assert reply.status == 200, reply.body
    assert reply.json == {"since": iso_utc(MIDNIGHT),
                            "values": {"b1-cold.volume_m3": 100.0, "b1-kv01-cold.volume_m3": None}}


def test_today_of_an_unknown_building_is_404(site):
    reply = site.call("GET", "/api/v1/hmi/buildings/b9/today")
    assert reply.status == 404 and reply.json == {"error": "unknown building 'b9' (known: b1)"}


def test_the_hmi_section_defaults(tmp_path):
    (tmp_path / "site.yaml").write_text("site: {name: x}\n", encoding="utf-8")
    cfg, _ = load_config(tmp_path / "site.yaml")
    assert (cfg.hmi.lang, cfg.hmi.sound, cfg.hmi.stale_polls) == ("ru", True, 2.0)
    assert (cfg.hmi.kiosk.views, cfg.hmi.kiosk.every) == (["overview", "alarms", "channels"], 20.0)


@pytest.mark.parametrize("section, line, message", [
    ("hmi: {lang: de}", 2, "hmi.lang"),
    ("hmi:\n  kiosk:\n    views: [overview, map]", 4, "unknown view 'map'"),
    ("hmi:\n  kiosk:\n    views: [overview, building:b7]", 4, "no building 'b7' (known: b1)"),
    ("hmi: {stale_polls: 0.5}", 2, "hmi.stale_polls"),
    ("hmi: {kiosk: {every: 0s}}", 2, "hmi.kiosk.every"),
])
def test_bad_hmi_sections_are_named_with_their_line(tmp_path, section, line, message):
    base = "site: {name: x}\n" + section + "\n" + textwrap.dedent("""\
        channels:
          - name: gw
            type: modbus-rtu
            transport: {tcp: 127.0.0.1:1}
            devices:
              - {name: b1-cold, address: 1, profile: generic_water_meter, poll: 10s}
        registry:
          buildings:
            - id: b1
              address: x
              meters:
                - {id: b1-cold, serial: "1", resource: cold_water, tag: b1-cold.volume_m3, role: odpu}
        """)
    (tmp_path / "site.yaml").write_text(base, encoding="utf-8")
    with pytest.raises(Exception) as caught:
        load_config(tmp_path / "site.yaml")
    problems = str(caught.value)
    assert f"site.yaml:{line}:" in problems and message in problems, problems


def test_the_site_answer_is_json_all_the_way(site):
    """Every value is plain JSON (no NaN), so a browser's JSON.parse takes it."""
    text = site.call("GET", "/api/v1/hmi/site", role="admin").body.decode("utf-8")
    jsonlib.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


def test_demo_users_are_created_once_with_the_demo_password(tmp_path, caplog, monkeypatch):
    """``api.demo_users`` gives the demo its well-known logins; existing users are left as they are."""
    from argon2 import PasswordHasher

    from scada import auth
    from scada.api.auth import _demo_users
    from scada.auth import DEMO_PASSWORD, DEMO_USERS, hash_password, verify_password
    from scada.store import OpsStore

    monkeypatch.setattr(auth, "PASSWORD_HASHER", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))

    store = OpsStore(tmp_path / "ops.db")
    try:
        store.add_user("admin", "admin", hash_password("own-password"))
        _demo_users(store)
        assert {u.name: u.role for u in store.users()} == DEMO_USERS
        assert verify_password(store.user("crew").password_hash, DEMO_PASSWORD)[0]
        assert verify_password(store.user("admin").password_hash, "own-password")[0]
        assert "created now: dispatcher, crew, viewer, engineer" in caplog.text
        caplog.clear()
        _demo_users(store)
        assert "created now" not in caplog.text and "password 'demo1234'" in caplog.text
    finally:
        store.close()


def test_demo_users_only_on_a_simulated_site(tmp_path):
    (tmp_path / "site.yaml").write_text("site: {name: x}\napi:\n  demo_users: true\n", encoding="utf-8")
    with pytest.raises(Exception) as caught:
        load_config(tmp_path / "site.yaml")
    assert "site.yaml:3: api.demo_users: true needs simulate: true" in str(caught.value)


def test_users_left_with_the_demo_password_are_named_at_start(tmp_path, caplog, monkeypatch):
    """A site grown from the demo file (demo_users off now) is told which users still have the demo password."""
    from argon2 import PasswordHasher

    from scada import auth
    from scada.api.auth import _warn_demo_passwords
    from scada.auth import DEMO_PASSWORD, hash_password
    from scada.store import OpsStore

    monkeypatch.setattr(auth, "PASSWORD_HASHER", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1))
    store = OpsStore(tmp_path / "ops.db")
    try:
        store.add_user("admin", "admin", hash_password(DEMO_PASSWORD))
        store.add_user("crew", "crew", hash_password("changed-since"))
        store.add_user("ivanov", "operator", hash_password(DEMO_PASSWORD))  # not a demo name: not checked
        _warn_demo_passwords(store)
        assert "USERS WITH THE DEMO PASSWORD 'demo1234': admin." in caplog.text
    finally:
        store.close()
