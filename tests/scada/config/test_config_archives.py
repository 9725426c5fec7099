"""Profile ``archives:`` and the channel's archive settings: the good case and one test per bad case.

Each bad case asserts the exact message (naming the value) and the line it
points at, as ``scada check`` prints them.
"""

from __future__ import annotations

import pytest

from scada.config import ConfigError, load_config

SITE = """
site: {name: Test}
channels:
  - name: bus1
    type: modbus-rtu
    transport: {serial: /dev/ttyUSB0, rs485: {termination: true}}
    devices:
      - {name: m1, address: 1, profile: meter}
profiles:
  meter:
    points:
      - {name: energy_kwh, function: holding, register: 0, type: u32, scale: 0.01}
      - {name: volume_m3, function: holding, register: 2, type: u32, scale: 0.001}
      - {name: temp_c, function: input, register: 0, type: i16, scale: 0.1}
    archives:
      - name: hourly
        interval: INTERVAL
        depth: 1080
        index_register: 256
        record: {register: 257, count: 6}
        timestamp: {offset: 0, type: u32}
        points:
          - {name: energy_kwh, offset: 2, type: u32, scale: 0.01}
          - {name: volume_m3, offset: 4, type: u32, scale: 0.001}
      - name: monthly
        interval: month
        depth: 48
        index_register: 288
        record: {register: 289, count: 4}
        timestamp: {offset: 0}
        points:
          - {name: energy_kwh, offset: 2, type: u32, scale: 0.01}
"""


def site(replace: dict[str, str] | None = None, interval: str = "1h") -> str:
    """Return the good site with text replacements applied (each must match once)."""
    text = SITE.replace("INTERVAL", interval)
    for old, new in (replace or {}).items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def errors_of(path) -> list:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def only(problems, text: str):
    found = [p for p in problems if text in p.message]
    assert len(found) == 1, [str(p) for p in problems]
    return found[0]


def test_good_archives_load(write):
    """A valid archives section gives typed archives; intervals in seconds or 'month'."""
    cfg, warnings = load_config(write(site()))
    assert not [w for w in warnings if "archive" in w.message]
    hourly, monthly = cfg.profiles["meter"].archives
    assert (hourly.name, hourly.interval, hourly.depth, hourly.index_register) == ("hourly", 3600.0, 1080, 256)
    assert (hourly.record.register, hourly.record.count, hourly.timestamp.offset) == (257, 6, 0)
    assert [(p.name, p.offset, p.type, p.scale) for p in hourly.points] == [
        ("energy_kwh", 2, "u32", 0.01), ("volume_m3", 4, "u32", 0.001)]
    assert monthly.interval == "month" and monthly.timestamp.type == "u32"
    channel = cfg.channels[0]
    assert (channel.archive_records_per_poll, channel.archive_lookback) == (4, 172800.0)


@pytest.mark.parametrize("interval, seconds", [("15m", 900.0), ("30m", 1800.0), ("1d", 86400.0), ("600", 600.0)])
def test_intervals_dividing_a_day(write, interval, seconds):
    cfg, _ = load_config(write(site(interval=interval)))
    assert cfg.profiles["meter"].archives[0].interval == seconds


@pytest.mark.parametrize("interval", ["7h", "2d", "weekly", "0s", "0.5s"])
def test_bad_interval(write, line_of, interval):
    """An interval that does not divide a day (or is no duration) names itself and the choices."""
    path = write(site(interval=interval))
    problem = only(errors_of(path), "archive interval")
    shown = f"'{interval}'" if not interval.isdigit() else interval
    assert problem.message == (f"profiles.meter.archives[0].interval: {shown} is not an archive interval; use "
                               "whole seconds dividing a day (e.g. 15m, 30m, 1h, 1d), or 'month'")
    assert problem.line == line_of(path, f"interval: {interval}")


def test_depth_out_of_range(write, line_of):
    path = write(site({"depth: 1080": "depth: 70000"}))
    problem = only(errors_of(path), "70000")
    assert problem.message == "profiles.meter.archives[0].depth: 70000 is out of range 1-65535"
    assert problem.line == line_of(path, "depth: 70000")


def test_missing_timestamp(write, line_of):
    path = write(site({"        timestamp: {offset: 0, type: u32}\n": ""}))
    problem = only(errors_of(path), "timestamp")
    assert problem.message == "profiles.meter.archives[0]: missing required key 'timestamp'"
    assert problem.line == line_of(path, "- name: hourly")


def test_record_window_past_the_last_register(write, line_of):
    path = write(site({"record: {register: 257, count: 6}": "record: {register: 65533, count: 6}"}))
    problem = only(errors_of(path), "65535")
    assert problem.message == ("profiles.meter.archives[0].record: 6 registers from 65533 run up to 65538, "
                               "past the last register 65535")
    assert problem.line == line_of(path, "register: 65533")


def test_record_window_wider_than_max_registers(write, line_of):
    path = write(site({"    points:\n      - {name: energy_kwh, function": "    max_registers: 4\n    points:\n"
                       "      - {name: energy_kwh, function"}))
    problem = only(errors_of(path), "max_registers")
    assert problem.message == ("profiles.meter.archives[0].record.count: a record window of 6 registers is more "
                               "than profile 'meter' reads at once (max_registers 4)")
    assert problem.line == line_of(path, "count: 6")


def test_point_outside_the_record(write, line_of):
    path = write(site({"{name: volume_m3, offset: 4, type: u32": "{name: volume_m3, offset: 5, type: u32"}))
    problem = only(errors_of(path), "needs record registers")
    assert problem.message == ("profiles.meter.archives[0].points[1].offset: point 'volume_m3' (u32) at offset 5 "
                               "needs record registers 5-6, but the record has 6 (0-5)")
    assert problem.line == line_of(path, "offset: 5")


def test_timestamp_outside_the_record(write, line_of):
    path = write(site({"timestamp: {offset: 0}": "timestamp: {offset: 3}"}))
    problems = errors_of(path)
    problem = only(problems, "the timestamp")
    assert problem.message == ("profiles.meter.archives[1].timestamp.offset: the timestamp (u32) at offset 3 "
                               "needs record registers 3-4, but the record has 4 (0-3)")
    assert problem.line == line_of(path, "timestamp: {offset: 3}")


def test_point_name_must_be_a_live_point(write, line_of):
    """Archive values back-fill the live tags, so their names must be live point names."""
    path = write(site({"{name: volume_m3, offset: 4": "{name: volume_m, offset: 4"}))
    problem = only(errors_of(path), "not a point")
    assert problem.message == ("profiles.meter.archives[0].points[1].name: archive 'hourly' names 'volume_m', "
                               "which is not a point of profile 'meter'; archive values back-fill the live "
                               "points' tags (did you mean 'volume_m3'?)")
    assert problem.line == line_of(path, "{name: volume_m, offset: 4")


def test_points_overlap_inside_the_record(write, line_of):
    path = write(site({"{name: volume_m3, offset: 4, type: u32": "{name: volume_m3, offset: 3, type: u32"}))
    problem = only(errors_of(path), "overlaps")
    assert problem.message == ("profiles.meter.archives[0].points[1].offset: point 'volume_m3' (record registers "
                               f"3-4) overlaps point 'energy_kwh' (2-3, line {line_of(path, 'energy_kwh, offset: 2')})"
                               " in archive 'hourly'")
    assert problem.line == line_of(path, "volume_m3, offset: 3")


def test_point_overlaps_the_timestamp(write, line_of):
    path = write(site({"{name: energy_kwh, offset: 2, type: u32, scale: 0.01}\n          - {name: volume_m3":
                       "{name: energy_kwh, offset: 1, type: u32, scale: 0.01}\n          - {name: volume_m3"}))
    problem = only(errors_of(path), "overlaps timestamp")
    assert problem.message.startswith("profiles.meter.archives[0].points[0].offset: point 'energy_kwh' "
                                      "(record registers 1-2) overlaps timestamp (0-1, line ")


def test_duplicate_archive_and_point_names(write, line_of):
    path = write(site({"- name: monthly": "- name: hourly",
                       "{name: volume_m3, offset: 4, type: u32": "{name: energy_kwh, offset: 4, type: u32"}))
    problems = errors_of(path)
    archive = only(problems, "duplicate archive name")
    assert archive.message == f"duplicate archive name 'hourly' in profile 'meter' (first at line " \
                              f"{line_of(path, '- name: hourly')})"
    assert archive.line == line_of(path, "- name: hourly", 2)
    point = only(problems, "duplicate point")
    assert point.message == (f"duplicate point 'energy_kwh' in archive 'hourly' (first at line "
                             f"{line_of(path, 'energy_kwh, offset: 2')})")


def test_index_register_inside_a_record_window(write, line_of):
    path = write(site({"index_register: 288": "index_register: 260"}))
    problem = only(errors_of(path), "index register")
    assert problem.message == ("profiles.meter.archives[1].index_register: the index register of archive "
                               "'monthly' (holding 260) overlaps the record window of archive 'hourly' "
                               f"(holding 257-262, line {line_of(path, 'register: 257')}) in profile 'meter'")
    assert problem.line == line_of(path, "index_register: 260")


def test_record_window_over_a_live_point(write, line_of):
    path = write(site({"record: {register: 289, count: 4}": "record: {register: 1, count: 4}"}))
    problem = only(errors_of(path), "record window")
    assert problem.message == ("profiles.meter.archives[1].record.register: the record window of archive "
                               "'monthly' (holding 1-4) overlaps point 'energy_kwh' (holding 0-1, line "
                               f"{line_of(path, 'energy_kwh, function')}) in profile 'meter'")
    assert problem.line == line_of(path, "register: 1, count: 4")


def test_a_live_input_register_does_not_clash_with_an_archive_window(write):
    """Archive windows are holding registers; input register 0 is another address space."""
    load_config(write(site({"record: {register: 289, count: 4}": "record: {register: 300, count: 4}"})))


def test_archives_in_an_mbus_profile(write, line_of):
    text = """
site: {name: Test}
channels:
  - name: mb
    type: mbus
    transport: {serial: /dev/ttyUSB0}
    devices:
      - {name: h1, address: 1, profile: heat}
profiles:
  heat:
    records:
      - {name: energy, quantity: energy}
    archives:
      - name: monthly
        interval: month
        depth: 12
        index_register: 0
        record: {register: 1, count: 4}
        timestamp: {offset: 0}
        points:
          - {name: energy, offset: 2, type: u32}
"""
    path = write(text)
    problem = only(errors_of(path), "M-Bus")
    assert problem.message == ("profile 'heat': 'archives' describe Modbus archive registers; an M-Bus meter's "
                               "archive comes with its records (storage numbers and dates)")
    assert problem.line == line_of(path, "archives:")


@pytest.mark.parametrize("setting, message", [
    ("archive_records_per_poll: 33", "channels[0].archive_records_per_poll: 33 is out of range 0-32"),
    ("archive_lookback: 0s", "channels[0].archive_lookback: 0 s is not a period; it must be longer than zero"),
])
def test_channel_archive_settings(write, line_of, setting, message):
    path = write(site({"    devices:\n": f"    {setting}\n    devices:\n"}))
    problem = only(errors_of(path), "archive_")
    assert problem.message == message
    assert problem.line == line_of(path, setting)


def test_shipped_profiles_and_demo_are_valid(monkeypatch):
    """The shipped profiles with their archives pass every check, and so does the demo."""
    from pathlib import Path

    from scada.config import loader

    root = Path(__file__).resolve().parents[3]
    monkeypatch.setattr(loader, "BUILTIN_PROFILES_DIR", root / "config" / "profiles")
    cfg, _ = load_config(root / "config" / "demo.yaml")
    archives = {name: [a.name for a in p.archives] for name, p in cfg.profiles.items()}
    assert archives["generic_heat_meter"] == ["hourly", "daily", "monthly"]
    assert archives["generic_water_meter"] == ["hourly", "daily", "monthly"]
    assert archives["generic_electricity_meter"] == ["hourly", "daily", "monthly"]
