"""The meter registry: built from the config, changed by lifecycle events, and the service that records them."""

from __future__ import annotations

import math
import sqlite3
import textwrap
from datetime import date
from types import MappingProxyType

import pytest

from scada.config import load_config
from scada.registry import (
    EVENT_FIELDS,
    EVENT_KINDS,
    MeterEvent,
    Registry,
    RegistryService,
    Replacement,
)
from scada.store import OpsStore
from scada.store.schema import MIGRATIONS
from tags.timefmt import parse_iso

NOW = parse_iso("2026-11-20T09:00:00Z")

SITE = textwrap.dedent("""\
    site: {name: Registry, timezone: Europe/Moscow}
    channels:
      - name: gw
        type: modbus-rtu
        transport: {tcp: 127.0.0.1:1}
        devices:
          - {name: b1-heat, address: 1, profile: heat}
          - {name: b1-cold, address: 2, profile: water}
          - {name: b1-kv01-cold, address: 11, profile: water}
          - {name: b1-kv02-cold, address: 21, profile: water}
          - {name: b1-kv03-cold, address: 31, profile: water}
      - name: hand
        type: manual
        devices:
          - {name: b2-cold, points: [{name: volume, cumulative: true}]}
    profiles:
      heat:
        points:
          - {name: energy_gcal, function: holding, register: 0, type: u32, unit: Gcal}
          - {name: t_supply_c, function: holding, register: 2, type: i16, unit: °C}
          - {name: t_return_c, function: holding, register: 3, type: i16, unit: °C}
      water:
        points:
          - {name: volume_m3, function: holding, register: 0, type: u32, unit: m3}
    registry:
      buildings:
        - id: b1
          address: "г. Подольск, ул. Ленина, д. 10"
          fias: "0c5b2444-70a0-4932-980c-b4dc0d3f02b5"
          coordinates: [55.4312, 37.5447]
          norms: {cold_water: {per_person: 6.935}, heat: {per_m2: 0.016}}
          premises:
            - {number: "1", account: "A-1", area: 54.2, residents: 2}
            - {number: "2", account: "A-2", kind: office}
            - {number: "3", account: "A-3"}
          meters:
            - {serial: "H1", model: "ВКТ-7", resource: heat, tag: b1-heat.energy_gcal, role: odpu}
            - {serial: "C1", model: "ВСХН-50", resource: cold_water, tag: b1-cold.volume_m3, role: odpu}
            - {serial: "K1", model: "ВСХ-15", resource: cold_water, tag: b1-kv01-cold.volume_m3, role: ipu,
               premises: "1", installed: 2021-03-01, verified: 2021-03-01, next_verification: 2027-03-01}
            - {serial: "K2", model: "ВСХ-15", resource: cold_water, tag: b1-kv02-cold.volume_m3, role: ipu,
               premises: "2", next_verification: 2026-08-01}
            - {serial: "K3", model: "ВСХ-15", resource: cold_water, tag: b1-kv03-cold.volume_m3, role: ipu,
               premises: "3", balance: false, decommissioned: 2026-01-15}
        - id: b2
          address: "г. Подольск, ул. Мира, д. 5"
          meters:
            - {id: b2-water, serial: "W1", resource: cold_water, tag: b2-cold.volume, role: odpu,
               unit: l, balance: false}
    """)


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    """The site, loaded once."""
    path = tmp_path_factory.mktemp("registry") / "site.yaml"
    path.write_text(SITE, encoding="utf-8")
    config, _ = load_config(path)
    return config


@pytest.fixture(scope="module")
def registry(cfg):
    return Registry.from_config(cfg)


class FakeClock:
    """A settable clock."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def service(cfg, tmp_path):
    """A registry service over a fresh store; closes the store."""
    clock = FakeClock()
    store = OpsStore(tmp_path / "ops.db", clock=clock)
    yield RegistryService.from_config(cfg, store, clock)
    store.close()


@pytest.fixture(scope="module")
def refusing(cfg, tmp_path_factory):
    """One service for the cases that must store nothing (a store per case costs 30 ms)."""
    clock = FakeClock()
    store = OpsStore(tmp_path_factory.mktemp("refusing") / "ops.db", clock=clock)
    yield RegistryService.from_config(cfg, store, clock)
    store.close()


def event(meter: str, kind: str, at: str, id: int = 1, **data) -> MeterEvent:
    return MeterEvent(id, meter, kind, parse_iso(at), parse_iso(at), "tester", "", data)


# ------------------------------------------------------------------ configured state


def test_from_config_builds_buildings_premises_and_meters(registry):
    """Ids default to the device, units to the tag's, heat temperatures to the device's tags."""
    assert list(registry.buildings) == ["b1", "b2"]
    b1 = registry.building("b1")
    assert (b1.address, b1.fias, b1.coordinates, b1.weather_tag) == (
        "г. Подольск, ул. Ленина, д. 10", "0c5b2444-70a0-4932-980c-b4dc0d3f02b5", (55.4312, 37.5447), None)
    assert isinstance(b1.norms, MappingProxyType) and b1.norms["cold_water"].per_person == 6.935
    assert b1.resources == ["heat", "cold_water"]
    heat = registry.meter("b1-heat")
    assert (heat.unit, heat.t_supply_tag, heat.t_return_tag, heat.building) == (
        "Gcal", "b1-heat.t_supply_c", "b1-heat.t_return_c", "b1")
    assert registry.meter("b1-cold").t_supply_tag is None
    assert registry.meter("b2-water").unit == "l"
    kv = registry.meter("b1-kv01-cold")
    assert (kv.premises, kv.installed, kv.next_verification, kv.device) == (
        "1", date(2021, 3, 1), date(2027, 3, 1), "b1-kv01-cold")
    assert registry.premises_of(kv).account == "A-1" and registry.premises_of(heat) is None
    assert registry.account("A-2").kind == "office" and not registry.account("A-2").residential
    assert [p.number for p in registry.premises("b1")] == ["1", "2", "3"]
    assert str(registry.tz) == "Europe/Moscow"


def test_empty_registry_without_section(cfg):
    """A site without ``registry:`` has an empty registry."""
    empty = Registry.from_config(cfg.model_copy(update={"registry": None}))
    assert empty.buildings == {} and empty.meters() == [] and empty.balance_groups() == []


def test_unknown_names_are_key_errors(registry):
    """Unknown buildings, meters and accounts raise KeyError naming them; bad filters ValueError."""
    for call, name in ((registry.building, "b9"), (registry.meter, "m9"), (registry.account, "A-9")):
        with pytest.raises(KeyError, match=name):
            call(name)
    with pytest.raises(KeyError, match="b9"):
        registry.meters(building="b9")
    with pytest.raises(ValueError, match="'water' is not a resource"):
        registry.meters(resource="water")
    with pytest.raises(ValueError, match="'meter' is not a meter role"):
        registry.meters(role="meter")
    with pytest.raises(KeyError):
        registry.replacements("m9", 0, 1)


def test_meter_filters(registry):
    """Filters combine; configuration order is kept."""
    assert [m.id for m in registry.meters(role="odpu")] == ["b1-heat", "b1-cold", "b2-water"]
    assert [m.id for m in registry.meters("b1", "cold_water", "ipu")] == ["b1-kv01-cold", "b1-kv02-cold",
                                                                          "b1-kv03-cold"]
    assert registry.meters("b2", "heat") == []


def test_balance_groups(registry):
    """One group per building meter in the balance over apartment meters; ИПУ with balance false are left out.

    The heat ОДПУ has no apartment heat meters under it: no group.
    """
    groups = registry.balance_groups()
    assert [(g.building, g.resource, g.odpu.id, [m.id for m in g.ipu]) for g in groups] == [
        ("b1", "cold_water", "b1-cold", ["b1-kv01-cold", "b1-kv02-cold"])]


def test_due_list_and_expiry(registry):
    """Due before a date: in service, soonest first, overdue included; valid through next_verification."""
    assert [m.id for m in registry.due(date(2027, 3, 2))] == ["b1-kv02-cold", "b1-kv01-cold"]
    assert [m.id for m in registry.due(date(2027, 3, 1))] == ["b1-kv02-cold"]
    kv2 = registry.meter("b1-kv02-cold")
    assert not kv2.verification_expired(date(2026, 8, 1)) and kv2.verification_expired(date(2026, 8, 2))
    kv3 = registry.meter("b1-kv03-cold")
    assert kv3.in_service(date(2026, 1, 14)) and not kv3.in_service(date(2026, 1, 15))
    assert not registry.meter("b1-kv01-cold").in_service(date(2021, 2, 28))


# ------------------------------------------------------------------ events


def test_events_change_the_effective_state(registry):
    """Each kind changes what it should; dates are the site's (Moscow) days; order is by time, then id."""
    events = [
        event("b1-kv01-cold", "seal", "2026-03-01T08:00:00Z", 1, seal="П-0001"),
        event("b1-kv01-cold", "verification", "2026-02-28T21:30:00Z", 2, next_verification="2032-03-01"),
        event("b1-kv01-cold", "repair", "2026-04-01T08:00:00Z", 3),
        event("b1-heat", "verification", "2026-05-01T08:00:00Z", 4, next_verification="2030-05-01",
              verified="2026-04-28"),
        event("b1-kv03-cold", "commissioning", "2026-06-01T08:00:00Z", 5, initial_reading=12.5),
        event("b1-cold", "decommissioning", "2026-07-01T08:00:00Z", 6, final_reading=1000.0),
        event("gone-meter", "repair", "2026-07-01T08:00:00Z", 7),
    ]
    effective = registry.with_events(events)
    kv1 = effective.meter("b1-kv01-cold")
    # 21:30 UTC on Feb 28 is March 1 in Moscow.
    assert (kv1.verified, kv1.next_verification, kv1.seal) == (date(2026, 3, 1), date(2032, 3, 1), "П-0001")
    assert [e.id for e in effective.events("b1-kv01-cold")] == [2, 1, 3]
    heat = effective.meter("b1-heat")
    assert (heat.verified, heat.next_verification) == (date(2026, 4, 28), date(2030, 5, 1))
    assert effective.meter("b1-kv03-cold").decommissioned is None
    assert effective.meter("b1-cold").decommissioned == date(2026, 7, 1)
    # The configured registry is untouched, and events replace rather than add up.
    assert registry.meter("b1-kv01-cold").seal is None
    assert effective.with_events([]).meter("b1-kv01-cold").seal is None
    assert effective.balance_groups()[0].odpu.decommissioned == date(2026, 7, 1)


def test_replacement_keeps_the_id_and_records_readings(registry):
    """A replacement swaps serial and model, resets dates and seal, and is listed with both readings."""
    events = [
        event("b1-kv01-cold", "seal", "2026-01-10T08:00:00Z", 1, seal="П-1"),
        event("b1-kv01-cold", "replacement", "2026-02-10T08:00:00Z", 2, final_reading=321.5, initial_reading=0.012,
              new_serial="K1-NEW", new_model="ВСХд-15", next_verification="2032-02-01"),
        event("b1-kv01-cold", "replacement", "2026-10-10T08:00:00Z", 3, final_reading=5.0, initial_reading=1.0,
              new_serial="K1-THIRD"),
    ]
    effective = registry.with_events(events)
    meter = effective.meter("b1-kv01-cold")
    assert (meter.serial, meter.model, meter.installed, meter.verified, meter.next_verification, meter.seal) == (
        "K1-THIRD", "ВСХд-15", date(2026, 10, 10), None, None, None)
    assert effective.replacements("b1-kv01-cold", 0, math.inf) == [
        Replacement("b1-kv01-cold", parse_iso("2026-02-10T08:00:00Z"), 321.5, 0.012, "K1", "K1-NEW"),
        Replacement("b1-kv01-cold", parse_iso("2026-10-10T08:00:00Z"), 5.0, 1.0, "K1-NEW", "K1-THIRD")]
    start, end = parse_iso("2026-02-01T00:00:00Z"), parse_iso("2026-02-10T08:00:00Z")
    assert effective.replacements("b1-kv01-cold", start, end) == []
    assert len(effective.replacements("b1-kv01-cold", start, end + 1)) == 1
    assert effective.replacements("b1-heat", 0, math.inf) == []


# ------------------------------------------------------------------ the service


def test_store_has_the_meter_events_table(service):
    """The migration adds meter_events with its (meter, at) index."""
    db = sqlite3.connect(service.store.path)
    assert service.store.schema_version == len(MIGRATIONS)
    assert {row[1] for row in db.execute("PRAGMA table_info(meter_events)")} == {
        "id", "meter", "kind", "at", "recorded", "user", "comment", "data"}
    assert "meter_events_meter_at" in {row[1] for row in db.execute("PRAGMA index_list(meter_events)")}
    db.close()


def test_record_event_stores_journals_and_refreshes(service):
    """An event is stored with who and when, noted in the alarm journal, and current() shows its effect."""
    before = service.current()
    assert before is service.current()  # cached
    recorded = service.record_event("b1-kv01-cold", "verification", "2026-11-19", "petrov", "  по графику ",
                                    {"next_verification": "2032-11-18"})
    assert recorded.id is not None and recorded.user == "petrov" and recorded.comment == "по графику"
    assert recorded.at == parse_iso("2026-11-18T21:00:00Z")  # midnight in Moscow
    assert recorded.recorded == NOW and recorded.data == {"next_verification": "2032-11-18"}
    after = service.current()
    assert after is not before
    assert after.meter("b1-kv01-cold").next_verification == date(2032, 11, 18)
    assert after.meter("b1-kv01-cold").verified == date(2026, 11, 19)
    assert service.events("b1-kv01-cold") == [recorded]
    (entry,) = service.store.query(0, math.inf)
    assert (entry.event, entry.user, entry.tag, entry.alarm_id) == (
        "meter_event", "petrov", "b1-kv01-cold.volume_m3", "")
    assert "verification of meter b1-kv01-cold" in entry.comment and "по графику" in entry.comment
    # Another service over the same store sees the event.
    again = RegistryService(service.registry, service.store, service.clock)
    assert again.current().meter("b1-kv01-cold").next_verification == date(2032, 11, 18)


def test_default_time_is_now_and_numbers_are_seconds(service):
    """No ``at``: now; a number is Unix seconds; an ISO time with an offset is taken as written."""
    assert service.record_event("b1-heat", "repair", None, "crew").at == NOW
    assert service.record_event("b1-heat", "repair", NOW - 10, "crew").at == NOW - 10
    assert service.record_event("b1-heat", "repair", "2026-11-20T11:00:00+03:00", "crew").at == NOW - 3600


BAD_EVENTS = [
    ("b1-heat", "inspection", None, {}, "'inspection' is not an event kind; use one of commissioning, verification"),
    ("b1-heat", "verification", None, {}, "a verification event needs 'next_verification' (a date such as"),
    ("b1-heat", "verification", None, {"next_verification": "2030-02-30"},
     "'next_verification' '2030-02-30' is not a date such as 2027-03-01"),
    ("b1-heat", "verification", None, {"next_verification": "2026-11-20"},
     "'next_verification' 2026-11-20 must be after the verification date 2026-11-20"),
    ("b1-heat", "verification", None, {"next_verification": "2030-01-01", "verified": "2026-12-01"},
     "'verified' 2026-12-01 is after the event's date 2026-11-20"),
    ("b1-heat", "verification", None, {"next_verification": "2030-01-01", "next_verfication": "2030-01-01"},
     "'next_verfication' is not a field of a verification event (its fields: next_verification, verified)"),
    ("b1-heat", "repair", None, {"seal": "x"}, "'seal' is not a field of a repair event (its fields: none)"),
    ("b1-heat", "seal", None, {}, "a seal event needs 'seal'"),
    ("b1-heat", "seal", None, {"seal": "   "}, "a seal event needs 'seal', which is blank"),
    ("b1-heat", "seal", None, {"seal": 12}, "'seal' must be a string, not 12"),
    ("b1-heat", "seal", None, {"seal": "x" * 121}, "'seal' is longer than 120 characters"),
    ("b1-heat", "replacement", None, {"final_reading": 1, "initial_reading": 0},
     "a replacement event needs 'new_serial'"),
    ("b1-heat", "replacement", None, {"final_reading": "1", "initial_reading": 0, "new_serial": "N"},
     "'final_reading' must be a number (the register reading), not '1'"),
    ("b1-heat", "replacement", None, {"final_reading": True, "initial_reading": 0, "new_serial": "N"},
     "'final_reading' must be a number (the register reading), not True"),
    ("b1-heat", "replacement", None, {"final_reading": -1, "initial_reading": 0, "new_serial": "N"},
     "'final_reading' -1 is negative"),
    ("b1-heat", "replacement", None, {"final_reading": float("nan"), "initial_reading": 0, "new_serial": "N"},
     "'final_reading' nan is not a finite number"),
    ("b1-heat", "replacement", None, {"final_reading": 10 ** 400, "initial_reading": 0, "new_serial": "N"},
     "'final_reading' 1000000000"),
    ("b1-heat", "replacement", None, {"final_reading": 1, "initial_reading": 0, "new_serial": "h1"},
     "'new_serial' 'h1' is the serial of the meter being replaced"),
    ("b1-heat", "replacement", None, {"final_reading": 1, "initial_reading": 0, "new_serial": "C1",
                                      "new_model": "ВСХН-50"}, "'new_serial' 'C1' is the serial of meter 'b1-cold'"),
    ("b1-heat", "replacement", None, {"final_reading": 1, "initial_reading": 0, "new_serial": "N",
                                      "verified": "2026-01-01", "next_verification": "2025-01-01"},
     "'next_verification' 2025-01-01 must be after 'verified' 2026-01-01"),
    ("b1-heat", "commissioning", None, {"initial_reading": [1]},
     "'initial_reading' must be a number (the register reading), not a JSON array"),
    ("b1-kv03-cold", "repair", None, {}, "meter 'b1-kv03-cold' was decommissioned on 2026-01-15; only a "
                                         "commissioning event may follow"),
    ("b1-heat", "repair", NOW + 61, {}, "\"at\" 2026-11-20T09:01:01.000Z is in the future (now is "
                                        "2026-11-20T09:00:00.000Z)"),
    ("b1-heat", "repair", "1999-12-31T00:00:00Z", {}, "\"at\" 1999-12-31T00:00:00.000Z is before 2000-01-01"),
    ("b1-heat", "repair", "2026-11-20T10:00:00", {}, "\"at\" '2026-11-20T10:00:00' has no UTC offset"),
    ("b1-heat", "repair", "yesterday", {}, "\"at\" 'yesterday' is not an ISO 8601 time"),
    ("b1-heat", "repair", {"at": 1}, {}, "\"at\" must be an ISO 8601 time such as"),
    ("b1-heat", "repair", float("inf"), {}, "\"at\" inf is not a finite number of seconds"),
    ("b1-heat", "repair", True, {}, "\"at\" must be an ISO 8601 time such as"),
]


@pytest.mark.parametrize(("meter", "kind", "at", "data", "message"), BAD_EVENTS,
                         ids=[case[4][:50] for case in BAD_EVENTS])
def test_bad_events_are_refused_naming_the_value(refusing, meter, kind, at, data, message):
    """A bad event is a ValueError saying what is wrong; nothing is stored."""
    with pytest.raises(ValueError) as caught:
        refusing.record_event(meter, kind, at, "crew", "", data)
    assert str(caught.value).startswith(message), str(caught.value)
    assert refusing.store.meter_events() == []


def test_bad_comment_and_unknown_meter(service):
    """A comment must be UTF-8 text of at most 1000 characters; an unknown meter is a KeyError."""
    with pytest.raises(ValueError, match="'comment' is longer than 1000 characters"):
        service.record_event("b1-heat", "repair", None, "crew", "x" * 1001)
    with pytest.raises(ValueError, match="unpaired surrogate"):
        service.record_event("b1-heat", "repair", None, "crew", "\ud800")
    with pytest.raises(ValueError, match="'comment' must be a string"):
        service.record_event("b1-heat", "repair", None, "crew", 5)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="unknown meter 'nope'"):
        service.record_event("nope", "repair")
    with pytest.raises(KeyError):
        service.events("nope")


def test_decommissioned_meters_take_only_commissioning(service):
    """After decommissioning only commissioning is accepted; after that, anything again."""
    service.record_event("b1-kv01-cold", "decommissioning", "2026-11-01", "eng", data={"final_reading": 400.5})
    with pytest.raises(ValueError, match="decommissioned on 2026-11-01"):
        service.record_event("b1-kv01-cold", "seal", "2026-11-02", "eng", data={"seal": "S"})
    # Before the decommissioning it was still in service.
    service.record_event("b1-kv01-cold", "seal", "2026-10-30", "eng", data={"seal": "S-0"})
    with pytest.raises(ValueError, match="has a later seal event"):
        service.record_event("b1-kv01-cold", "decommissioning", "2026-10-01", "eng")
    service.record_event("b1-kv01-cold", "commissioning", "2026-11-10", "eng", data={"initial_reading": 0})
    service.record_event("b1-kv01-cold", "seal", "2026-11-11", "eng", data={"seal": "S-1"})
    meter = service.current().meter("b1-kv01-cold")
    assert (meter.decommissioned, meter.seal, meter.installed) == (None, "S-1", date(2021, 3, 1))
    assert [e.kind for e in service.events("b1-kv01-cold")] == ["seal", "decommissioning", "commissioning", "seal"]


def test_replacement_through_the_service(service):
    """A replacement with readings and the new meter's dates; its serial is then taken."""
    service.record_event("b1-kv01-cold", "replacement", "2026-11-15T10:00:00+03:00", "crew", "течь",
                         {"final_reading": 512.25, "initial_reading": 0, "new_serial": "K1-2", "new_model": "ВСХ-15",
                          "verified": "2026-09-01", "next_verification": "2032-09-01"})
    current = service.current()
    meter = current.meter("b1-kv01-cold")
    assert (meter.serial, meter.verified, meter.next_verification, meter.installed) == (
        "K1-2", date(2026, 9, 1), date(2032, 9, 1), date(2026, 11, 15))
    (swap,) = current.replacements("b1-kv01-cold", 0, NOW)
    assert (swap.final_reading, swap.initial_reading, swap.old_serial, swap.new_serial) == (512.25, 0.0, "K1", "K1-2")
    with pytest.raises(ValueError, match="'new_serial' 'K1-2' is the serial of meter 'b1-kv01-cold'"):
        service.record_event("b1-kv02-cold", "replacement", None, "crew", "",
                             {"final_reading": 1, "initial_reading": 0, "new_serial": "K1-2", "new_model": "ВСХ-15"})


def test_event_fields_cover_every_kind():
    """The field table names every kind, and the data types the service knows."""
    assert set(EVENT_FIELDS) == set(EVENT_KINDS)
    assert {kind for fields in EVENT_FIELDS.values() for kind, _ in fields.values()} <= {"date", "reading", "text"}


def test_store_round_trips_events(tmp_path):
    """Events come back with their data, ordered by time then id, filtered by meter and time."""
    store = OpsStore(tmp_path / "ops.db", clock=lambda: 100.0)
    try:
        a = store.add_meter_event("m1", "seal", 2e9, "u", "c", {"seal": "Пломба 1"})
        b = store.add_meter_event("m2", "repair", 1e9, "u")
        c = store.add_meter_event("m1", "repair", 1e9, "u")
        assert (a.recorded, a.data, b.data) == (100.0, {"seal": "Пломба 1"}, {})
        assert [e.id for e in store.meter_events()] == [b.id, c.id, a.id]
        assert store.meter_events("m1") == [c, a]
        assert store.meter_events("m1", start=1e9 + 1) == [a]
        assert store.meter_events(end=1e9 + 1, limit=1) == [b]
        with pytest.raises(ValueError):
            store.add_meter_event("m1", "repair", math.nan, "u")
        with pytest.raises(ValueError):
            store.add_meter_event("m1", "repair", 1.0, "u", data={"x": math.inf})
        assert len(store.meter_events()) == 3
    finally:
        store.close()


def test_refreshing_one_meter_equals_a_full_rebuild(service):
    """After events, the incrementally refreshed registry is the one rebuilt from every stored event."""
    service.current()
    service.record_event("b1-kv01-cold", "seal", "2026-11-01", "crew", data={"seal": "S-1"})
    service.record_event("b1-heat", "verification", "2026-11-02", "eng", data={"next_verification": "2030-11-01"})
    service.record_event("b1-kv01-cold", "replacement", "2026-11-03", "crew",
                         data={"final_reading": 10, "initial_reading": 0, "new_serial": "K1-B"})
    incremental = service.current()
    full = service.registry.with_events(service.store.meter_events())
    assert incremental.buildings == full.buildings
    for meter in ("b1-kv01-cold", "b1-heat", "b1-cold"):
        assert incremental.events(meter) == full.events(meter)
        assert incremental.replacements(meter, 0, math.inf) == full.replacements(meter, 0, math.inf)
    assert incremental.meter("b1-kv01-cold").serial == "K1-B"
    service.invalidate()
    assert service.current().buildings == full.buildings
