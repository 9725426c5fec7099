"""Alarm rule specs built from the site configuration: globs, units, priorities, windows, shortcuts."""

from __future__ import annotations

import textwrap
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from twisted.internet.testing import MemoryReactorClock

from alarms.model import Priority
from alarms.rules import (
    CommLossRule,
    ImbalanceRule,
    LimitRule,
    RateRule,
    ScheduleRule,
    StaleRule,
    StatusRule,
    VerificationRule,
)
from channels.modbus.channel import ModbusChannel
from channels.sim.field import SimulatedField
from channels.sim.slave import SimBus
from scada.alarm_config import build_rules, known_tags
from scada.config import SiteConfig, load_config
from scada.config.alarms import SYSTEM_TAGS
from scada.history import BACKLOG_TAG
from tags.quality import Quality
from tags.table import TagTable
from tests.scada.sim_wire import SimWire, run_until

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo.yaml"

SITE = """
site: {name: Test, timezone: Asia/Yekaterinburg}
channels:
  - name: bus
    type: modbus-rtu
    transport: {serial: /dev/ttyUSB0, rs485: {termination: true}}
    devices:
      - {name: b2-heat, address: 2, profile: heat, next_verification: 2026-12-10}
      - {name: b1-heat, address: 1, profile: heat, poll: 10s}
      - {name: weather, address: 5, profile: outdoor, poll: 60s}
      - {name: spare, address: 9, profile: heat, enabled: false, next_verification: 2026-12-01}
  - name: mbus
    type: mbus
    transport: {serial: /dev/ttyUSB1}
    devices:
      - {name: gvs, address: 1}
profiles:
  heat:
    points:
      - {name: t_supply_c, function: holding, register: 0, type: i16, scale: 0.01,
         alarm: {hi: 105, hihi: 115, deadband: 1, on_delay: 30s}}
      - {name: flow_m3h, function: holding, register: 1, type: u16, scale: 0.01}
      - {name: error_code, function: input, register: 0, type: u16}
    status:
      - {point: error_code, bits: {0: sensor_failure, 1: leak}, priorities: {leak: critical}}
  outdoor:
    points:
      - {name: t_outdoor_c, function: input, register: 0, type: i16, scale: 0.1}
"""

ALARMS = """
alarm_settings: {flood_count: 20, flood_window: 5m}
alarms:
  - name: supply
    type: limit
    tag: "b*-heat.t_supply_c"
    hihi: 110
    hi: 98
    lo: 40
    deadband: 1
    on_delay: 10s
    off_delay: 1m
    priorities: {hihi: critical}
    message: "Температура подачи {value} °C выше {limit} °C"
  - {name: supply-all-high, type: limit, tags: [b1-heat.t_supply_c, "b*-heat.t_supply_c"], hi: 99, priority: high}
  - {name: flow-rate, type: rate, tag: "b*-heat.flow_m3h", max_rate: 2, per: 1m, window: 5m}
  - {name: stale, type: stale, tags: ["*.t_supply_c", gvs.energy], after: 15m}
  - {name: comm, type: comm_loss, device: "*", expected_activity: "mon-sun(00-06)"}
  - {name: status, type: status, device: "*", priorities: {sensor_failure: low}}
  - {name: b1-schedule, type: schedule, tag: b1-heat.t_supply_c, outdoor: weather.t_outdoor_c,
     table: [[-25, 95], [0, 60], [8, 42]], tolerance: 5}
  - {name: verification, type: verification, devices: ["*"], within: 45d, priority: low}
"""


@pytest.fixture
def cfg(tmp_path) -> SiteConfig:
    """Return the test site with its alarms, loaded and checked."""
    path = tmp_path / "site.yaml"
    path.write_text(textwrap.dedent(SITE + ALARMS), encoding="utf-8")
    config, warnings = load_config(path)
    assert [p.message for p in warnings] == [
        "alarms[3].tags[1]: rule 'stale': tag 'gvs.energy' cannot be checked: device 'gvs' is an M-Bus "
        "meter without a profile, so its tags appear only at run time"]
    return config


def by_name(rules, name):
    """Return the rules called ``name``."""
    return [r for r in rules if r.name == name]


def test_known_tags_of_enabled_devices_with_their_device(cfg):
    """Profile points per Modbus device, status and clock drift per M-Bus meter, system tags; sorted."""
    tags = known_tags(cfg)
    assert list(tags) == sorted(tags)
    assert tags["b1-heat.t_supply_c"] == "b1-heat"
    assert tags["weather.t_outdoor_c"] == "weather"
    assert tags["gvs.status"] == "gvs" and tags["gvs.clock_drift_s"] == "gvs"
    assert tags["historian_backlog"] == ""
    assert not [t for t in tags if t.startswith("spare.")]  # disabled: publishes nothing
    assert len([t for t in tags if t.startswith("b2-heat.")]) == 3


def test_system_tags_are_the_runtime_ones():
    """The tags every site has are the ones scada.history defines."""
    assert SYSTEM_TAGS == (BACKLOG_TAG.name,)


def test_limit_rule_levels_priorities_and_globs(cfg):
    """A glob expands sorted; each level gets its priority (given, or the level's default); durations in seconds."""
    (supply,) = by_name(build_rules(cfg), "supply")
    assert isinstance(supply, LimitRule)
    assert supply.tags == ("b1-heat.t_supply_c", "b2-heat.t_supply_c")
    assert (supply.hihi, supply.hi, supply.lo, supply.lolo, supply.deadband) == (110, 98, 40, None, 1)
    assert supply.priorities == {"hihi": Priority.CRITICAL, "hi": Priority.MEDIUM, "lo": Priority.MEDIUM}
    assert (supply.on_delay, supply.off_delay) == (10.0, 60.0)
    assert supply.message == "Температура подачи {value} °C выше {limit} °C"
    (high,) = by_name(build_rules(cfg), "supply-all-high")
    assert high.tags == ("b1-heat.t_supply_c", "b2-heat.t_supply_c")  # a tag named twice is watched once
    assert high.priority is Priority.HIGH and high.priorities == {"hi": Priority.HIGH}


def test_rate_is_per_second_and_stale_in_seconds(cfg):
    """max_rate per `per` becomes units per second; window and after become seconds."""
    rules = build_rules(cfg)
    (rate,) = by_name(rules, "flow-rate")
    assert isinstance(rate, RateRule)
    assert rate.max_rate == pytest.approx(2 / 60) and rate.window == 300.0
    (stale,) = by_name(rules, "stale")
    assert isinstance(stale, StaleRule)
    assert stale.after == 900.0
    # The automatic M-Bus meter's tag is kept as written: it appears at run time.
    assert stale.tags == ("b1-heat.t_supply_c", "b2-heat.t_supply_c", "gvs.energy")


def test_comm_loss_window_in_site_time_zone(cfg):
    """All enabled devices; the expected-activity window is parsed in the site's zone."""
    (comm,) = by_name(build_rules(cfg), "comm")
    assert isinstance(comm, CommLossRule)
    assert comm.devices == ("b1-heat", "b2-heat", "gvs", "weather")
    window = comm.expected_activity
    assert window.tz == ZoneInfo("Asia/Yekaterinburg")
    # 03:00 local (UTC+5) is inside, 03:00 UTC (08:00 local) is not.
    assert window.contains(datetime(2026, 11, 23, 22, 0, tzinfo=timezone.utc).timestamp())
    assert not window.contains(datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc).timestamp())


def test_status_rules_per_device_from_profiles(cfg):
    """One StatusRule per device and declaration; profile priorities, then the rule's; M-Bus header byte."""
    rules = by_name(build_rules(cfg), "status")
    assert all(isinstance(r, StatusRule) for r in rules)
    by_tag = {r.tag: r for r in rules}
    assert sorted(by_tag) == ["b1-heat.error_code", "b2-heat.error_code", "gvs.status"]  # weather declares none
    heat = by_tag["b1-heat.error_code"]
    assert heat.device == "b1-heat" and heat.bits == {0: "sensor_failure", 1: "leak"}
    assert heat.kind_priorities == {"leak": Priority.CRITICAL, "sensor_failure": Priority.LOW}
    assert by_tag["gvs.status"].bits == {2: "low_battery", 3: "permanent_error", 4: "temporary_error"}


def test_schedule_and_verification(cfg):
    """Table as tuples of floats; verification due dates of enabled devices, within in days."""
    rules = build_rules(cfg)
    (schedule,) = by_name(rules, "b1-schedule")
    assert isinstance(schedule, ScheduleRule)
    assert (schedule.tag, schedule.outdoor_tag, schedule.tolerance) == ("b1-heat.t_supply_c", "weather.t_outdoor_c", 5)
    assert schedule.table == ((-25.0, 95.0), (0.0, 60.0), (8.0, 42.0))
    (verification,) = by_name(rules, "verification")
    assert isinstance(verification, VerificationRule)
    assert verification.due == {"b2-heat": date(2026, 12, 10)}
    assert verification.within == 45.0 and verification.priority is Priority.LOW


def test_profile_shortcut_is_a_limit_rule_on_every_device_using_it(cfg):
    """`alarm:` on a profile point: one rule named <profile>.<point>, enabled devices only, default priorities."""
    rules = build_rules(cfg)
    (shortcut,) = by_name(rules, "heat.t_supply_c")
    assert shortcut is rules[-1]
    assert shortcut.tags == ("b1-heat.t_supply_c", "b2-heat.t_supply_c")
    assert (shortcut.hi, shortcut.hihi, shortcut.deadband, shortcut.on_delay) == (105, 115, 1, 30.0)
    assert shortcut.priorities == {"hihi": Priority.HIGH, "hi": Priority.MEDIUM}


def test_rules_keep_the_order_of_the_file(cfg):
    """The alarms section in order, then the shortcuts."""
    names = list(dict.fromkeys(r.name for r in build_rules(cfg)))
    assert names == ["supply", "supply-all-high", "flow-rate", "stale", "comm", "status", "b1-schedule",
                     "verification", "heat.t_supply_c"]


def test_a_config_built_in_code_with_a_bad_reference_is_refused(cfg):
    """build_rules raises the check's message when the config did not go through `scada check`."""
    data = cfg.model_dump()
    data["alarms"].append({"name": "typo", "type": "stale", "tag": "b1-heat.t_suply_c"})
    broken = SiteConfig.model_validate(data, strict=False)
    with pytest.raises(ValueError, match="rule 'typo': unknown tag 'b1-heat.t_suply_c'.*'t_supply_c'"):
        build_rules(broken)


def test_demo_rules():
    """The demo builds; every rule watches tags the demo has, and a verification is due within 30 days."""
    cfg, warnings = load_config(DEMO)
    assert warnings == []
    rules = build_rules(cfg)
    tags = known_tags(cfg)
    for rule in rules:
        watched = [*getattr(rule, "tags", ()), getattr(rule, "tag", ""), getattr(rule, "outdoor_tag", ""),
                   *(t for group in getattr(rule, "groups", ()) for t in group)]
        assert all(tag in tags for tag in watched if tag), rule.name
    kinds = {type(r) for r in rules}
    assert kinds == {LimitRule, CommLossRule, StaleRule, StatusRule, ScheduleRule, VerificationRule, ImbalanceRule}
    # Every balance group of the registry: b1, b2 and b4 (cold water only), b5 (both waters).
    (imbalance,) = [r for r in rules if isinstance(r, ImbalanceRule)]
    assert ("balance-b1.electricity_imbalance_pct", "balance-b1.electricity_completeness_pct") in imbalance.groups
    assert not any(pct.startswith("balance-b1.heat") for pct, _ in imbalance.groups)
    (verification,) = [r for r in rules if isinstance(r, VerificationRule)]
    soon = [d for d, due in verification.due.items() if (due - date(2026, 11, 21)).days <= verification.within]
    # b1-kv03-hot is overdue (2026-08-01): the registry's expired ИПУ.
    assert soon == ["b1-heat", "b1-kv03-hot"]
    (comm,) = [r for r in rules if isinstance(r, CommLossRule)]
    assert len(comm.devices) == sum(len(c.devices) for c in cfg.channels)


def _limits_hit(rules, values):
    """Return (rule, tag, level) of every limit a value is beyond."""
    hits = []
    for rule in rules:
        if not isinstance(rule, LimitRule):
            continue
        for tag in rule.tags:
            value = values.get(tag)
            if value is None:
                continue
            for level, beyond in (("hihi", lambda v, lim: v > lim), ("hi", lambda v, lim: v > lim),
                                  ("lo", lambda v, lim: v < lim), ("lolo", lambda v, lim: v < lim)):
                limit = getattr(rule, level)
                if limit is not None and beyond(value, limit):
                    hits.append((rule.name, tag, level))
    return hits


def _good_values(table):
    """Return the good values of a tag table by tag name."""
    return {s.definition.name: s.value for s in table.states() if s.quality is Quality.GOOD}


def test_demo_is_quiet_until_a_simulated_meter_is_pushed_over_its_limit():
    """Polled through the real Modbus channel, building 1 stays inside every limit; an override crosses hihi."""
    cfg, _ = load_config(DEMO)
    rules = build_rules(cfg)
    clock = MemoryReactorClock()
    clock.advance(datetime(2026, 11, 21, 6, 0, tzinfo=timezone.utc).timestamp())
    field = SimulatedField(cfg, clock)
    (b1,) = [c for c in cfg.channels if c.name == "b1-rs485"]
    table = TagTable()
    channel = ModbusChannel(clock, b1, cfg.profiles, table.update_many)
    for tagdef in channel.tagdefs:
        table.define(tagdef)
    channel.link = SimWire(channel.scheduler, SimBus(field.channels["b1-rs485"].devices, clock, latency=0.02))
    channel.start()
    try:
        run_until(clock, clock.seconds() + 65)
        values = _good_values(table)
        assert "weather.t_outdoor_c" in values and "b1-kv06-el.voltage_v" in values
        assert _limits_hit(rules, values) == []
        status = [r for r in rules if isinstance(r, StatusRule) and r.tag in values]
        assert status and all(values[r.tag] == 0 for r in status)

        field.set_override("b1-heat", "t_supply_c", 130.0)
        run_until(clock, clock.seconds() + 6)
        values = _good_values(table)
        assert values["b1-heat.t_supply_c"] == 130.0
        assert set(_limits_hit(rules, values)) == {
            ("b1-supply", "b1-heat.t_supply_c", "hihi"), ("b1-supply", "b1-heat.t_supply_c", "hi"),
            ("generic_heat_meter.t_supply_c", "b1-heat.t_supply_c", "hihi"),
            ("generic_heat_meter.t_supply_c", "b1-heat.t_supply_c", "hi")}
    finally:
        channel.stop()
