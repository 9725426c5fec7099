"""M-Bus channels in site files: addresses, unit loads, record profiles, line defaults."""

from __future__ import annotations

import pytest

from scada.config import ConfigError, load_config

RECORDS = """
profiles:
  heat:
    records:
      - {name: energy_kwh, quantity: energy, scale: 0.001, unit: kWh}
      - {name: volume_l, vif: "13", unit: l}
  regs:
    points:
      - {name: volume_m3, function: holding, register: 0, type: u32}
"""


def mbus_site(devices: str, channel: str = "") -> str:
    return f"""
site: {{name: Test}}
channels:
  - name: mbus1
    type: mbus
    transport: {{serial: /dev/ttyUSB0}}
{channel}    devices:
{devices}
""" + RECORDS


def problems_of(path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [p.message for p in info.value.problems if p.is_error]


def test_valid_mbus_channel_defaults_to_2400_baud_8e1(write):
    cfg, warnings = load_config(write(mbus_site(
        "      - {name: h, address: 1, profile: heat}\n"
        "      - {name: w, secondary: '12345678'}\n"
        "      - {name: x, secondary: 123456782c2d0804, unit_loads: 4}\n")))
    channel = cfg.channels[0]
    assert (channel.transport.baudrate, channel.transport.parity) == (2400, "E")
    assert [d.secondary for d in channel.devices] == [None, "12345678", "123456782C2D0804"]
    assert cfg.profiles["heat"].protocol == "mbus"
    assert cfg.profiles["heat"].records[1].vif == "13"
    assert warnings == []


def test_primary_address_range_and_duplicates(write):
    messages = problems_of(write(mbus_site(
        "      - {name: a, address: 251}\n"
        "      - {name: b, address: 3}\n"
        "      - {name: c, address: 3}\n"
        "      - {name: d, secondary: '11112222'}\n"
        "      - {name: e, secondary: '11112222'}\n")))
    assert any("251 is out of range 0-250" in m for m in messages)
    assert any("address 3 of device 'c' is already used by device 'b'" in m for m in messages)
    assert any("secondary 11112222 of device 'e' is already used by device 'd'" in m for m in messages)


def test_meter_needs_exactly_one_address(write):
    messages = problems_of(write(mbus_site(
        "      - {name: a}\n"
        "      - {name: b, address: 1, secondary: '11112222'}\n")))
    assert any("'a' needs 'address'" in m and "neither given" in m for m in messages)
    assert any("'b' needs 'address'" in m and "both given" in m for m in messages)


@pytest.mark.parametrize("bad", ["1234567", "1234567X", "12A45678"])
def test_bad_secondary_address_is_named(write, bad):
    messages = problems_of(write(mbus_site(f"      - {{name: a, secondary: '{bad}'}}\n")))
    assert any(bad in m for m in messages), messages


def test_unit_loads_over_the_masters_capacity(write):
    path = write(mbus_site(
        "      - {name: a, address: 1, unit_loads: 30}\n"
        "      - {name: b, address: 2, unit_loads: 25}\n", channel="    unit_loads: 50\n"))
    messages = problems_of(path)
    assert any("draw 55 unit loads but the master supplies 50" in m for m in messages), messages


def test_unit_loads_within_capacity_pass(write):
    cfg, _ = load_config(write(mbus_site(
        "      - {name: a, address: 1, unit_loads: 30}\n"
        "      - {name: b, address: 2, unit_loads: 20}\n", channel="    unit_loads: 50\n")))
    assert cfg.channels[0].unit_loads == 50


def test_profile_kind_must_fit_the_channel(write):
    messages = problems_of(write(mbus_site("      - {name: a, address: 1, profile: regs}\n")))
    assert any("profile 'regs' has points (Modbus)" in m and "needs records (M-Bus)" in m for m in messages)


def test_record_needs_something_to_match_and_valid_hex(write):
    site = mbus_site("      - {name: a, address: 1, profile: p}\n").replace("profiles:\n", """profiles:
  p:
    records:
      - {name: nothing}
      - {name: badhex, vif: "0g"}
""", 1)
    messages = problems_of(write(site))
    assert any("record 'nothing' needs 'quantity' or 'vif'" in m for m in messages), messages
    assert any("'0g' is not hex bytes" in m for m in messages), messages


def test_modbus_devices_still_need_address_and_profile(write):
    site = """
site: {name: Test}
channels:
  - name: lan
    type: modbus-tcp
    transport: {tcp: 127.0.0.1:502}
    devices:
      - {name: a, address: 1}
      - {name: b, profile: regs, secondary: '12345678'}
""" + RECORDS
    messages = problems_of(write(site))
    assert any("device 'a' needs a 'profile'" in m for m in messages)
    assert any("device 'b' needs 'address'" in m for m in messages)
    assert any("secondary addresses are M-Bus only" in m for m in messages)
