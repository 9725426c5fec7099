"""The alarm parts of the configuration: `alarms:`, `alarm_settings:`, profile `alarm:` and `status:`.

Each test writes a small site, loads it, and asserts the line of the
problem and that its message names the rule and the offending value.
"""

from __future__ import annotations

import io
import json
from datetime import date

import jsonschema
import pytest
import yaml

from scada.config import ConfigError, check_main, load_config
from scada.config import schema
from scada.config.alarms import (
    AlarmSettings,
    CommLossRuleConfig,
    LimitRuleConfig,
    PointAlarmConfig,
    RateRuleConfig,
    ScheduleRuleConfig,
    StaleRuleConfig,
    StatusRuleConfig,
    VerificationRuleConfig,
    limit_order_problem,
)

SITE = """\
site: {name: Test}
channels:
  - name: bus
    type: modbus-rtu
    transport: {serial: /dev/ttyUSB0, rs485: {termination: true}}
    devices:
      - {name: b1-heat, address: 1, profile: heat, next_verification: 2026-12-10}
      - {name: b2-heat, address: 2, profile: heat}
      - {name: weather, address: 5, profile: outdoor}
      - {name: spare, address: 9, profile: heat, enabled: false}
  - name: mbus
    type: mbus
    transport: {serial: /dev/ttyUSB1}
    devices:
      - {name: gvs, address: 1}
      - {name: b3-heat, address: 2, profile: mheat}
profiles:
  heat:
    points:
      - {name: t_supply_c, function: holding, register: 0, type: i16, scale: 0.01}
      - {name: flow_m3h, function: holding, register: 1, type: f32}
      - {name: error_code, function: input, register: 0, type: u16}
    status:
      - {point: error_code, bits: {0: sensor_failure, 1: leak}}
  outdoor:
    points:
      - {name: t_outdoor_c, function: input, register: 0, type: i16, scale: 0.1}
  mheat:
    records:
      - {name: t_supply_c, quantity: flow_temperature}
      - {name: error_code, quantity: error_flags}
"""


def errors_of(path) -> list:
    """Load ``path`` expecting failure; return its problems."""
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def only(problems, text: str):
    """Return the single problem whose message contains ``text``."""
    found = [p for p in problems if text in p.message]
    assert len(found) == 1, [str(p) for p in problems]
    return found[0]


def site_with(write, alarms: str, site: str = SITE):
    """Write the test site with ``alarms`` (YAML text of the alarm sections) appended."""
    return write(site + alarms)


# ------------------------------------------------------------ the contract


CONTRACT = """
alarm_settings: {flood_count: 10, flood_window: 10m, max_shelve: 7d}
alarms:
  - name: b1-supply-hi
    type: limit
    tag: b1-heat.t_supply_c
    hihi: 110
    hi: 98
    lo: null
    lolo: null
    deadband: 1
    on_delay: 10s
    off_delay: 30s
    priority: high
    priorities: {hihi: critical}
    message: "Температура подачи {value} °C выше {limit} °C"
  - {name: flow-rate, type: rate, tag: "b*-heat.flow_m3h", max_rate: 2, per: 1m, window: 5m}
  - {name: stale, type: stale, tag: "*.t_supply_c", after: 15m}
  - {name: comm, type: comm_loss, device: "*", expected_activity: "mon-sun(00-06)"}
  - {name: status, type: status, device: "*"}
  - {name: b1-schedule, type: schedule, tag: b1-heat.t_supply_c, outdoor: weather.t_outdoor_c,
     table: [[-25, 95], [0, 60], [8, 42]], tolerance: 5}
  - {name: verification, type: verification, device: "*", within: 30d}
"""


def test_contract_example_loads(write):
    """Every rule type of the YAML contract loads into its model with durations in seconds."""
    cfg, warnings = load_config(site_with(write, CONTRACT))
    assert warnings == []
    assert cfg.alarm_settings == AlarmSettings(flood_count=10, flood_window=600.0, max_shelve=7 * 86400.0)
    kinds = [type(rule) for rule in cfg.alarms]
    assert kinds == [LimitRuleConfig, RateRuleConfig, StaleRuleConfig, CommLossRuleConfig, StatusRuleConfig,
                     ScheduleRuleConfig, VerificationRuleConfig]
    limit, rate, stale, comm, _status, schedule, verification = cfg.alarms
    assert (limit.hihi, limit.hi, limit.lo, limit.on_delay, limit.off_delay) == (110, 98, None, 10.0, 30.0)
    assert limit.priority == "high" and limit.priorities == {"hihi": "critical"}
    assert (rate.max_rate, rate.per, rate.window) == (2, 60.0, 300.0)
    assert stale.after == 900.0
    assert comm.expected_activity == "mon-sun(00-06)"
    assert schedule.table == [[-25, 95], [0, 60], [8, 42]]
    assert verification.within == 30 * 86400.0
    assert cfg.channels[0].devices[0].next_verification == date(2026, 12, 10)


def test_sections_are_optional(write):
    """Without the sections: default settings, no rules."""
    cfg, _ = load_config(write(SITE))
    assert cfg.alarms == [] and cfg.alarm_settings == AlarmSettings()
    assert cfg.alarm_settings.flood_count == 10 and cfg.alarm_settings.max_shelve == 7 * 86400.0


def test_published_schema_accepts_the_contract():
    """Editors using the JSON Schema accept the contract example and the profile additions."""
    site = json.loads(schema.render("site.schema.json"))
    profile = json.loads(schema.render("profile.schema.json"))
    jsonschema.validate(yaml.safe_load(SITE + CONTRACT), site)
    jsonschema.validate(yaml.safe_load(SITE)["profiles"]["heat"], profile)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(SITE + "alarms: [{name: x, type: limt, tag: a}]"), site)


# ----------------------------------------------------------- references


def test_unknown_tag_names_the_rule_and_the_tag(write, line_of):
    """A tag that does not exist: an error at the tag's line, with the nearest point suggested."""
    path = site_with(write, """
alarms:
  - name: supply
    type: limit
    tag: b1-heat.t_suply_c
    hi: 98
""")
    problem = only(errors_of(path), "unknown tag")
    assert problem.message == ("alarms[0].tag: rule 'supply': unknown tag 'b1-heat.t_suply_c': device 'b1-heat' "
                               "has no point 't_suply_c' (did you mean 't_supply_c'?)")
    assert problem.line == line_of(path, "tag: b1-heat.t_suply_c")
    out = io.StringIO()
    assert check_main(str(path), out) == 1
    assert f"{path}:{problem.line}: {problem.message}" in out.getvalue().splitlines()


def test_tag_of_an_unknown_device(write, line_of):
    """A tag whose device does not exist says so."""
    path = site_with(write, "alarms:\n  - {name: s, type: stale, tags: [b1-heat.t_supply_c, b9-heat.t_supply_c]}\n")
    problem = only(errors_of(path), "unknown tag")
    assert problem.message.startswith("alarms[0].tags[1]: rule 's': unknown tag 'b9-heat.t_supply_c' "
                                      "(no device 'b9-heat')")
    assert problem.line == line_of(path, "b9-heat")


def test_glob_matching_nothing(write, line_of):
    """A glob that matches no tag is an error naming the glob."""
    path = site_with(write, "alarms:\n  - {name: rate, type: rate, tag: \"b*-heat.flow\", max_rate: 1}\n")
    problem = only(errors_of(path), "matches no tag")
    assert problem.message == "alarms[0].tag: rule 'rate': tag glob 'b*-heat.flow' matches no tag"
    assert problem.line == line_of(path, "name: rate")


def test_unknown_device_and_device_glob(write, line_of):
    """Device references: an unknown name (with a suggestion) and a glob matching nothing."""
    path = site_with(write, """
alarms:
  - name: comm
    type: comm_loss
    devices: [b1-heat, b1-haet, "kv*"]
""")
    problems = errors_of(path)
    assert only(problems, "unknown device").message == (
        "alarms[0].devices[1]: rule 'comm': unknown device 'b1-haet' (did you mean 'b1-heat'?)")
    glob = only(problems, "matches no device")
    assert glob.message == "alarms[0].devices[2]: rule 'comm': device glob 'kv*' matches no device"
    assert glob.line == line_of(path, "devices: [b1-heat")


def test_schedule_tags_must_exist_and_not_be_globs(write, line_of):
    """Both schedule tags are checked; a glob there is refused (one rule per heat meter)."""
    path = site_with(write, """
alarms:
  - name: sched
    type: schedule
    tag: b1-heat.t_supply_c
    outdoor: weather.t_outdor_c
    table: [[-25, 95], [8, 42]]
  - {name: sched2, type: schedule, tag: "b*-heat.t_supply_c", outdoor: weather.t_outdoor_c, table: [[0, 60], [8, 42]]}
""")
    problems = errors_of(path)
    outdoor = only(problems, "unknown tag")
    assert "rule 'sched': unknown tag 'weather.t_outdor_c'" in outdoor.message
    assert outdoor.line == line_of(path, "outdoor: weather.t_outdor_c")
    assert only(problems, "is a glob").message.startswith("alarms[1].tag: 'b*-heat.t_supply_c' is a glob")


def test_references_under_an_automatic_mbus_meter_are_warnings(write, line_of):
    """Tags of an M-Bus meter without a profile appear at run time: accepted with a warning."""
    path = site_with(write, """
alarms:
  - {name: gvs-temp, type: limit, tag: gvs.flow_temperature, hi: 70}
  - {name: gvs-any, type: stale, tag: "gvs.energy*"}
  - {name: gvs-status, type: limit, tag: gvs.status, hi: 0}
""")
    cfg, warnings = load_config(path)
    assert [str(w) for w in warnings] == [
        f"{path}:{line_of(path, 'gvs-temp')}: warning: alarms[0].tag: rule 'gvs-temp': tag 'gvs.flow_temperature' "
        "cannot be checked: device 'gvs' is an M-Bus meter without a profile, so its tags appear only at run time",
        f"{path}:{line_of(path, 'gvs-any')}: warning: alarms[1].tag: rule 'gvs-any': tag glob 'gvs.energy*' "
        "matches no tag known before run time; the tags of gvs (an M-Bus meter without a profile, or an uplink "
        "meter taking ChirpStack's decoded object) appear only at run time and a glob does not reach them: name "
        "such tags one by one, or declare them as `points`",
        f"{path}:{line_of(path, 'gvs-any')}: warning: alarms[1]: rule 'gvs-any': it watches no tag and is left out",
    ]
    assert len(cfg.alarms) == 3


def test_references_to_disabled_devices_are_warnings(write):
    """A disabled device publishes nothing: the rule skips it, with a warning."""
    path = site_with(write, """
alarms:
  - {name: spare-temp, type: limit, tag: spare.t_supply_c, hi: 70}
  - {name: spare-comm, type: comm_loss, device: spare}
""")
    _, warnings = load_config(path)
    messages = [w.message for w in warnings]
    assert "alarms[0].tag: rule 'spare-temp': tag 'spare.t_supply_c' belongs to disabled device 'spare'; the rule " \
           "skips it" in messages
    assert "alarms[1].device: rule 'spare-comm': device 'spare' is disabled; the rule skips it" in messages
    assert "alarms[0]: rule 'spare-temp': it watches no tag and is left out" in messages


def test_references_are_not_checked_when_a_device_failed(write):
    """A device with an error of its own is not reported again as "unknown" by the alarm rules."""
    site = SITE.replace("{name: b2-heat, address: 2, profile: heat}", "{name: b2-heat, address: two, profile: heat}")
    path = site_with(write, "alarms:\n  - {name: c, type: comm_loss, device: b2-heat}\n", site)
    problems = errors_of(path)
    assert [p.message for p in problems] == ["channels[0].devices[1].address: expected a whole number, got 'two'"]


def test_references_under_a_missing_profile_are_not_echoed(write):
    """A device whose profile is unknown gets that error only."""
    site = SITE.replace("profile: outdoor}", "profile: outdor}")
    path = site_with(write, "alarms:\n  - {name: t, type: stale, tag: weather.t_outdoor_c}\n", site)
    problems = errors_of(path)
    assert [p.message for p in problems] == [
        "unknown profile 'outdor' for device 'weather' (did you mean 'outdoor'?)"]


def test_stale_after_not_longer_than_poll_warns(write):
    """A stale rule that would fire between polls is a warning naming the slowest device."""
    site = SITE.replace("profile: heat}", "profile: heat, poll: 5m}", 1)
    path = site_with(write, "alarms:\n  - {name: stale, type: stale, tag: \"*.t_supply_c\", after: 2m}\n", site)
    _, warnings = load_config(path)
    assert [w.message for w in warnings] == [
        "alarms[0].after: rule 'stale': after 120 s is not longer than the poll period 300 s of device 'b2-heat'; "
        "its values would go stale between polls"]


# ------------------------------------------------------------- rule shape


def test_duplicate_rule_names(write, line_of):
    """A rule name used twice is reported at the second, naming the first's line."""
    path = site_with(write, """
alarms:
  - {name: supply, type: limit, tag: b1-heat.t_supply_c, hi: 98}
  - {name: comm, type: comm_loss, device: "*"}
  - {name: supply, type: limit, tag: b2-heat.t_supply_c, hi: 98}
""")
    problem = only(errors_of(path), "duplicate")
    first = line_of(path, "name: supply")
    assert problem.message == f"alarms[2].name: duplicate alarm rule name 'supply' (first at line {first})"
    assert problem.line == line_of(path, "name: supply", 2)


@pytest.mark.parametrize("name", ["b1.supply", "b1:supply", "b1 supply", ""])
def test_rule_names_fit_alarm_ids(write, name):
    """Names have no whitespace, '.' or ':' (alarm ids are <rule>:<tag>:<level>)."""
    path = site_with(write, f"alarms:\n  - {{name: '{name}', type: comm_loss, device: '*'}}\n")
    problem = only(errors_of(path), "alarms[0].name")
    assert ("must not be empty" if not name else "no whitespace, '.' or ':' allowed") in problem.message


def test_limit_needs_a_level(write, line_of):
    """A limit rule with no level at all."""
    path = site_with(write, "alarms:\n  - {name: nothing, type: limit, tag: b1-heat.t_supply_c, deadband: 1}\n")
    problem = only(errors_of(path), "at least one")
    assert problem.message == "alarms[0]: a limit needs at least one of hihi, hi, lo, lolo"
    assert problem.line == line_of(path, "name: nothing")


@pytest.mark.parametrize(("levels", "key", "text"), [
    ("hi: 50, lo: 60", "hi", "lo 60 must be below hi 50"),
    ("hi: 50, lo: 50", "hi", "lo 50 must be below hi 50"),
    ("hihi: 90, hi: 95", "hihi", "hi 95 must be at most hihi 90"),
    ("lo: 10, lolo: 20", "lo", "lolo 20 must be at most lo 10"),
    ("lolo: 30, hihi: 20", "hihi", "lolo 30 must be below hihi 20"),
])
def test_limit_order(write, line_of, levels, key, text):
    """lolo <= lo < hi <= hihi among the levels given; the error points at the level out of order."""
    path = site_with(write, f"""
alarms:
  - name: supply
    type: limit
    tag: b1-heat.t_supply_c
    {levels.replace(', ', chr(10) + '    ')}
""")
    problem = only(errors_of(path), text)
    assert problem.message == f"alarms[0].{key}: {text} (limits go lolo <= lo < hi <= hihi)"
    assert problem.line == line_of(path, f"{key}:")


def test_equal_hi_and_hihi_are_fine():
    """hi may equal hihi, lo may equal lolo."""
    assert limit_order_problem({"hihi": 90, "hi": 90, "lo": 10, "lolo": 10}) is None


def test_priority_of_a_level_that_is_not_set(write, line_of):
    """priorities may only name levels that have a limit."""
    path = site_with(write, """
alarms:
  - name: supply
    type: limit
    tag: b1-heat.t_supply_c
    hi: 98
    priorities:
      hihi: critical
""")
    problem = only(errors_of(path), "priorities")
    assert problem.message == "alarms[0].priorities.hihi: priorities names level 'hihi', which has no limit"
    assert problem.line == line_of(path, "hihi: critical")


@pytest.mark.parametrize(("subject", "text"), [
    ("tag: b1-heat.t_supply_c, tags: [b2-heat.t_supply_c]", "set exactly one of 'tag' or 'tags' (both given)"),
    ("deadband: 1", "set exactly one of 'tag' or 'tags' (neither given)"),
])
def test_tag_or_tags(write, subject, text):
    """Exactly one of tag and tags."""
    path = site_with(write, f"alarms:\n  - {{name: x, type: limit, hi: 1, {subject}}}\n")
    assert only(errors_of(path), "exactly one").message == f"alarms[0]: {text}"


def test_device_or_devices(write):
    """Exactly one of device and devices."""
    path = site_with(write, "alarms:\n  - {name: x, type: status}\n")
    assert only(errors_of(path), "exactly one").message == (
        "alarms[0]: set exactly one of 'device' or 'devices' (neither given)")


def test_unknown_and_missing_rule_type(write, line_of):
    """The type picks the rule's keys: unknown types suggest the nearest, a missing one lists them."""
    path = site_with(write, """
alarms:
  - {name: a, type: limt, tag: b1-heat.t_supply_c, hi: 1}
  - {name: b, tag: b1-heat.t_supply_c, hi: 1}
""")
    problems = errors_of(path)
    assert only(problems, "not a rule type").message == (
        "alarms[0].type: 'limt' is not a rule type; use one of limit, rate, stale, comm_loss, status, schedule, "
        "verification, imbalance (did you mean 'limit'?)")
    missing = only(problems, "missing required key 'type'")
    assert missing.line == line_of(path, "{name: b, tag")


def test_key_of_another_rule_type(write):
    """A key that belongs to another rule type is unknown, with the nearest key of this type."""
    path = site_with(write, "alarms:\n  - {name: s, type: stale, tag: b1-heat.t_supply_c, afer: 5m}\n")
    assert only(errors_of(path), "unknown key").message == "unknown key 'afer' in alarms[0] (did you mean 'after'?)"


def test_alarms_must_be_a_list(write):
    """alarms: is a list of rules."""
    path = site_with(write, "alarms: {name: x}\n")
    assert only(errors_of(path), "alarms").message == "alarms: expected a list of rules, got a mapping"


@pytest.mark.parametrize(("table", "key", "text"), [
    ("[[0, 60]]", "table", "a schedule table needs at least 2 points [outdoor, supply], 1 given"),
    ("[[0, 60], [-10, 75]]", "table[1][0]", "outdoor temperature -10 is below 0 of the point before"),
    ("[[-10, 75], [0, 60], [0, 58]]", "table[2][0]", "outdoor temperature 0 repeats 0 of the point before"),
    ("[[-10, 75], [0]]", "table[1]", "a point of the table is [outdoor, supply], not 1 number"),
    ("[[-10, 75], [0, 1, 2]]", "table[1]", "a point of the table is [outdoor, supply], not 3 numbers"),
])
def test_schedule_table(write, table, key, text):
    """Two points or more, by strictly rising outdoor temperature."""
    path = site_with(write, f"""
alarms:
  - name: sched
    type: schedule
    tag: b1-heat.t_supply_c
    outdoor: weather.t_outdoor_c
    table: {table}
""")
    problem = only(errors_of(path), text)
    assert problem.message.startswith(f"alarms[0].{key}: {text}")


def test_bad_expected_activity_window(write, line_of):
    """The window's own message (WindowError) names what cannot be read."""
    path = site_with(write, """
alarms:
  - name: modem
    type: comm_loss
    device: gvs
    expected_activity: "mon-sun(00-25)"
""")
    problem = only(errors_of(path), "expected_activity")
    assert problem.message == "alarms[0].expected_activity: 'mon-sun(00-25)': '00-25' is not a time of day (00:00-24:00)"
    assert problem.line == line_of(path, "expected_activity")


@pytest.mark.parametrize(("key", "value", "text"), [
    ("max_rate", "0", "0 must be greater than zero"),
    ("per", "0s", "0 s is not a period; it must be longer than zero"),
    ("window", "soon", "'soon' is not a duration"),
])
def test_rate_numbers(write, key, value, text):
    """Rates and their periods are positive."""
    fields = {"max_rate": "2", "per": "1m", "window": "5m", key: value}
    body = ", ".join(f"{k}: {v}" for k, v in fields.items())
    path = site_with(write, f"alarms:\n  - {{name: r, type: rate, tag: b1-heat.flow_m3h, {body}}}\n")
    assert text in only(errors_of(path), f"alarms[0].{key}").message


def test_status_rule_needs_declarations(write, line_of):
    """A status rule whose devices declare no status flags is an error."""
    path = site_with(write, "alarms:\n  - {name: st, type: status, device: weather}\n")
    problem = only(errors_of(path), "status flags")
    assert problem.message == ("alarms[0].device: rule 'st': no device it names (weather) declares status flags; "
                               "add 'status:' to their profiles")


def test_verification_rule_needs_dates(write):
    """A verification rule over devices without next_verification is an error."""
    path = site_with(write, "alarms:\n  - {name: v, type: verification, devices: [b2-heat, weather]}\n")
    assert only(errors_of(path), "next_verification").message == (
        "alarms[0].devices[0]: rule 'v': no device it names (b2-heat, weather) has a 'next_verification' date")


def test_alarm_settings(write, line_of):
    """alarm_settings: counts at least 1, positive durations, no unknown keys."""
    path = site_with(write, """
alarm_settings:
  flood_count: 0
  flood_window: 0s
  max_shelf: 1d
""")
    problems = errors_of(path)
    assert only(problems, "flood_count").message == "alarm_settings.flood_count: 0 must be at least 1"
    assert only(problems, "flood_window").line == line_of(path, "flood_window")
    assert only(problems, "unknown key").message == (
        "unknown key 'max_shelf' in alarm_settings (did you mean 'max_shelve'?)")


# ------------------------------------------------------- next_verification


@pytest.mark.parametrize(("written", "expected"), [
    ("2026-12-10", date(2026, 12, 10)),
    ("'2026-12-10'", date(2026, 12, 10)),
])
def test_next_verification_forms(write, written, expected):
    """A YAML date or its ISO text."""
    path = write(SITE.replace("next_verification: 2026-12-10", f"next_verification: {written}"))
    cfg, _ = load_config(path)
    assert cfg.channels[0].devices[0].next_verification == expected


@pytest.mark.parametrize(("written", "text"), [
    ("'2026-13-10'", "'2026-13-10' is not a date such as 2026-12-10"),
    ("2026-12-10 10:00:00", "is a date and time; give the date only"),
    ("20261210", "20261210 is not a date such as 2026-12-10"),
])
def test_next_verification_errors(write, line_of, written, text):
    """Anything but a date is an error at the device's line."""
    path = write(SITE.replace("next_verification: 2026-12-10", f"next_verification: {written}"))
    problem = only(errors_of(path), "next_verification")
    assert problem.message.startswith("channels[0].devices[0].next_verification: ") and text in problem.message
    assert problem.line == line_of(path, "name: b1-heat")


def test_impossible_yaml_date_is_a_located_problem(write, line_of):
    """YAML builds dates itself; one that does not exist is reported at its line, not as an internal error."""
    path = write(SITE.replace("next_verification: 2026-12-10", "next_verification: 2026-13-10"))
    problem = only(errors_of(path), "2026-13-10")
    assert problem.message == ("'2026-13-10' is not a valid date or time (month must be in 1..12); "
                               "quote it if it is meant as text")
    assert problem.line == line_of(path, "2026-13-10")


# ----------------------------------------------------- profile additions


def test_point_alarm_shortcut(write, line_of):
    """A point's alarm: is a limit shortcut validated like a limit rule, located inside the point."""
    site = SITE.replace(
        "{name: t_supply_c, function: holding, register: 0, type: i16, scale: 0.01}",
        "{name: t_supply_c, function: holding, register: 0, type: i16, scale: 0.01,\n"
        "         alarm: {hi: 105, hihi: 100}}")
    problem = only(errors_of(write(site)), "hihi")
    assert problem.message == ("profiles.heat.points[0].alarm.hihi: hi 105 must be at most hihi 100 "
                               "(limits go lolo <= lo < hi <= hihi)")
    assert problem.line == line_of(write(site), "alarm: {hi: 105")


def test_point_alarm_shortcut_loads(write):
    """A valid shortcut on a point and on an M-Bus record."""
    site = SITE.replace(
        "{name: t_supply_c, function: holding, register: 0, type: i16, scale: 0.01}",
        "{name: t_supply_c, function: holding, register: 0, type: i16, scale: 0.01,\n"
        "         alarm: {hi: 105, hihi: 115, deadband: 1, on_delay: 30s, priority: high}}").replace(
        "{name: t_supply_c, quantity: flow_temperature}",
        "{name: t_supply_c, quantity: flow_temperature, alarm: {lo: 40}}")
    cfg, _ = load_config(write(site))
    assert cfg.profiles["heat"].points[0].alarm == PointAlarmConfig(hi=105, hihi=115, deadband=1, on_delay=30,
                                                                     priority="high")
    assert cfg.profiles["mheat"].records[0].alarm.lo == 40


def status_site(status: str, profile: str = "heat") -> str:
    """Return the test site with the ``status:`` of a profile replaced."""
    if profile == "heat":
        return SITE.replace("    status:\n      - {point: error_code, bits: {0: sensor_failure, 1: leak}}\n", status)
    return SITE.replace("      - {name: error_code, quantity: error_flags}\n",
                        "      - {name: error_code, quantity: error_flags}\n" + status)


def test_unknown_status_kind_lists_the_valid_ones(write, line_of):
    """A kind not in STATUS_KINDS: the error names it and lists the kinds."""
    path = write(status_site("    status:\n      - point: error_code\n        bits:\n          0: leek\n"))
    problem = only(errors_of(path), "leek")
    assert problem.message == ("profiles.heat.status[0].bits[0]: 'leek' is not one of leak, tamper, sensor_failure, "
                               "low_battery, permanent_error, temporary_error")
    assert problem.line == line_of(path, "0: leek")


@pytest.mark.parametrize(("status", "text"), [
    ("{point: error_code, bits: {64: leak}}", "bits[64]: bit 64 is out of range 0-63"),
    ("{point: error_code, bits: {16: leak}}",
     "bits[16]: profile 'heat': bit 16 is out of range: point 'error_code' (u16) has bits 0-15"),
    ("{point: error_cod, bits: {0: leak}}",
     "point: profile 'heat': 'error_cod' is not a point of the profile (did you mean 'error_code'?)"),
    ("{point: flow_m3h, bits: {0: leak}}",
     "point: profile 'heat': point 'flow_m3h' is f32; status flags need an integer point (u16, u32…)"),
    ("{point: error_code, bits: {0: leak}, priorities: {tamper: high}}",
     "priorities.tamper: priorities names 'tamper', which no bit means"),
    ("{point: error_code, bits: {}}", "bits: must not be empty"),
])
def test_status_declaration_problems(write, status, text):
    """Bits fit the point, the point exists and is an integer, priorities name declared kinds."""
    path = write(status_site(f"    status:\n      - {status}\n"))
    problem = only(errors_of(path), text.split(":")[0])
    assert problem.message == f"profiles.heat.status[0].{text}"


def test_status_point_declared_twice(write, line_of):
    """One entry per point."""
    path = write(status_site("    status:\n      - {point: error_code, bits: {0: leak}}\n"
                             "      - {point: error_code, bits: {1: tamper}}\n"))
    problem = only(errors_of(path), "declared twice")
    assert problem.line == line_of(path, "bits: {1: tamper}")
    assert f"(first at line {line_of(path, 'bits: {0: leak}')})" in problem.message


def test_mbus_status_byte_and_records(write):
    """An M-Bus profile may use the header status byte (bits 0-7) or one of its records."""
    ok = write(status_site("    status:\n      - {point: status, bits: {2: low_battery, 4: temporary_error}}\n"
                           "      - {point: error_code, bits: {0: sensor_failure, 12: leak}}\n", "mheat"))
    cfg, _ = load_config(ok)
    assert [s.point for s in cfg.profiles["mheat"].status] == ["status", "error_code"]
    bad = write(status_site("    status:\n      - {point: status, bits: {9: leak}}\n", "mheat"), "bad.yaml")
    assert only(errors_of(bad), "bit 9").message == (
        "profiles.mheat.status[0].bits[9]: profile 'mheat': bit 9 is out of range: the M-Bus status byte has bits 0-7")


BALANCED = """\
site: {name: Test}
channels:
  - name: bus
    type: modbus-rtu
    transport: {serial: /dev/ttyUSB0, rs485: {termination: true}}
    devices:
      - {name: cold, address: 1, profile: water}
      - {name: kv1, address: 2, profile: water}
      - {name: heat, address: 3, profile: heat, termination: true}
profiles:
  water:
    points:
      - {name: volume_m3, function: holding, register: 0, type: u32, unit: m3}
  heat:
    points:
      - {name: energy_kwh, function: holding, register: 0, type: u32, unit: kWh}
registry:
  buildings:
    - id: b1
      address: "ул. Ленина, 10"
      norms: {cold_water: {per_person: 4}}
      premises: [{number: "1", account: "0001"}]
      meters:
        - {id: odpu, serial: "1", model: M, resource: cold_water, tag: cold.volume_m3, role: odpu}
        - {id: ipu, serial: "2", model: M, resource: cold_water, tag: kv1.volume_m3, role: ipu, premises: "1"}
        - {id: heat, serial: "3", model: M, resource: heat, tag: heat.energy_kwh, role: odpu}
"""


def test_imbalance_rule_watches_the_registrys_balance_groups(write, line_of):
    """Groups come from the registry; a building without one, or a resource without ИПУ, is named."""
    from scada.alarm_config import build_rules

    good = site_with(write, """
alarms:
  - {name: imb, type: imbalance, building: "*", threshold_pct: 5}
""", BALANCED)
    cfg, _ = load_config(good)
    (rule,) = [r for r in build_rules(cfg) if r.name == "imb"]
    assert rule.groups == (("balance-b1.cold_water_imbalance_pct", "balance-b1.cold_water_completeness_pct"),)
    bad = site_with(write, """
alarms:
  - {name: imb, type: imbalance, building: b2, threshold_pct: 5}
  - {name: heat, type: imbalance, building: b1, resource: heat, threshold_pct: 5}
  - {name: pct, type: imbalance, threshold_pct: 5, min_completeness_pct: 120}
""", BALANCED)
    problems = errors_of(bad)
    assert "unknown building 'b2'" in only(problems, "rule 'imb'").message
    assert "no building it names (b1) has a heat building meter" in only(problems, "rule 'heat'").message
    assert "120" in only(problems, "min_completeness_pct").message
    none = site_with(write, """
alarms:
  - {name: imb, type: imbalance, threshold_pct: 5}
""")
    assert "registry has no building" in only(errors_of(none), "rule 'imb'").message


def test_balance_off_leaves_no_balance_figures_to_watch(tmp_path):
    """With balance.enabled false the balance figures never exist: imbalance rules and limits on them are errors."""
    from pathlib import Path

    demo = (Path(__file__).resolve().parents[3] / "config" / "demo.yaml").read_text(encoding="utf-8")
    assert "\nbalance: {every: 1h, window: 24h, settle: 5m}\n" in demo
    text = demo.replace("\nbalance: {every: 1h, window: 24h, settle: 5m}\n", "\nbalance: {enabled: false}\n")
    assert "\nalarms:\n" in text
    rule = "  - {name: b1-loss, type: limit, tag: balance-b1.cold_water_imbalance_pct, hi: 20}\n"
    text = text.replace("\nalarms:\n", "\nalarms:\n" + rule)
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = [str(p) for p in caught.value.problems if p.is_error]
    assert any("rule 'imbalance'" in p and "balance: {enabled: false}" in p for p in problems), problems
    assert any("rule 'b1-loss'" in p and "balance-b1.cold_water_imbalance_pct" in p for p in problems), problems
