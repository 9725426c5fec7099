"""One test (or a few) per cross-field validation rule.

Each test writes a small site file, loads it and asserts the exact line of
the problem and that its message names the offending value.  A few call the
check functions directly on models built in Python.
"""

from __future__ import annotations

import pytest

from channels.modbus import timing
from scada.config import ChannelConfig, ConfigError, DeviceConfig, load_config
from scada.config.budget import plan_reads, requests_bus_time
from scada.config.problems import SourceMap
from scada.config.validators import (
    check_addresses,
    check_device_names,
    check_poll_budget,
    check_profile_registers,
    check_termination,
)

PROFILE = """
profiles:
  meter:
    points:
      - {name: volume_m3, function: holding, register: 0, type: u32}
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


def rtu_site(devices: str, rs485: str = "{termination: true}", extra: str = "") -> str:
    """Return a site with one RTU channel holding ``devices`` (YAML list lines)."""
    return (
        f"""
site: {{name: Test}}
channels:
  - name: bus1
    type: modbus-rtu
    transport: {{serial: /dev/ttyUSB0, rs485: {rs485}}}
    devices:
{devices}
{extra}"""
        + PROFILE
    )


# Rule 1: addresses


def test_rtu_address_out_of_range(write, line_of):
    """An RTU address above 247 is an error at the device's address line."""
    path = write(
        rtu_site(
            "      - {name: m1, address: 1, profile: meter}\n"
            "      - name: m2\n"
            "        address: 300\n"
            "        profile: meter\n"
        )
    )
    problem = only(errors_of(path), "out of range")
    assert problem.message == "channels[0].devices[1].address: 300 is out of range 1-247"
    assert problem.line == line_of(path, "address: 300")
    assert str(problem) == f"{path}:{problem.line}: {problem.message}"


def test_rtu_address_zero_is_broadcast_not_a_device(write, line_of):
    """Address 0 is rejected on RTU."""
    path = write(rtu_site("      - {name: m1, address: 0, profile: meter}\n"))
    problem = only(errors_of(path), "0 is out of range 1-247")
    assert problem.line == line_of(path, "address: 0")


def test_tcp_unit_id_range(write, line_of):
    """Modbus TCP unit ids are 0-255: 0 and 255 pass, 256 fails."""
    path = write(
        """
        site: {name: Test}
        channels:
          - name: plc
            type: modbus-tcp
            transport: {tcp: 192.0.2.10:502}
            devices:
              - {name: u0, address: 0, profile: meter}
              - {name: u255, address: 255, profile: meter}
              - {name: u256, address: 256, profile: meter}
        profiles:
          meter:
            points: [{name: v, function: input, register: 0, type: u16}]
        """
    )
    problem = only(errors_of(path), "out of range")
    assert problem.message == "channels[0].devices[2].address: 256 is out of range 0-255"
    assert problem.line == line_of(path, "address: 256")


def test_duplicate_address_names_both_lines(write, line_of):
    """A repeated address is reported at the second device and names the first's line."""
    path = write(
        rtu_site(
            "      - {name: m1, address: 5, profile: meter}\n"
            "      - {name: m2, address: 6, profile: meter}\n"
            "      - {name: m3, address: 5, profile: meter}\n"
        )
    )
    problem = only(errors_of(path), "already used")
    first, second = line_of(path, "name: m1"), line_of(path, "name: m3")
    assert problem.line == second
    assert f"address 5 of device 'm3' is already used by device 'm1' at line {first}" in problem.message


def test_same_address_on_different_channels_is_fine(write):
    """Uniqueness is per channel: two buses may both have address 1."""
    path = write(
        rtu_site(
            "      - {name: m1, address: 1, profile: meter, termination: true}\n",
            extra="""
  - name: bus2
    type: modbus-rtu
    transport: {serial: /dev/ttyUSB1, rs485: {termination: true}}
    devices:
      - {name: m2, address: 1, profile: meter, termination: true}
""",
        )
    )
    load_config(path)


def test_too_many_devices_on_a_channel(write, line_of):
    """More than 247 devices on one channel is an error at the channel."""
    devices = "".join(f"      - {{name: d{n}, address: {n % 256}, profile: meter}}\n" for n in range(248))
    path = write(
        "site: {name: Test}\nchannels:\n  - name: plc\n    type: modbus-tcp\n"
        "    transport: {tcp: 192.0.2.10:502}\n    devices:\n" + devices + PROFILE
    )
    problem = only(errors_of(path), "248 devices")
    assert problem.line == line_of(path, "- name: plc")
    assert "channel 'plc' has 248 devices; at most 247" in problem.message


def test_check_addresses_directly():
    """The check works on models built in code, without a source map."""
    channel = ChannelConfig(
        name="b",
        type="modbus-rtu",
        transport={"serial": "/dev/null"},
        devices=[{"name": "a", "address": 3, "profile": "p"}, {"name": "b", "address": 3, "profile": "p"}],
    )
    (problem,) = check_addresses(channel, SourceMap())
    assert "address 3 of device 'b' is already used by device 'a'" in problem.message


def test_address_checked_even_when_channel_settings_fail(write, line_of):
    """A bad baud rate does not hide an out-of-range address on the same channel."""
    path = write(
        """
        site: {name: Test}
        channels:
          - name: bus1
            type: modbus-rtu
            transport: {serial: /dev/ttyUSB0, baudrate: 9601}
            devices:
              - {name: m1, address: 248, profile: meter}
        profiles:
          meter: {points: [{name: v, function: input, register: 0, type: u16}]}
        """
    )
    problems = errors_of(path)
    assert only(problems, "9601").line == line_of(path, "baudrate: 9601")
    assert only(problems, "248 is out of range").line == line_of(path, "address: 248")


# Rule 2: unique names


def test_duplicate_device_name_across_channels(write, line_of):
    """Device names are unique in the whole site, since tags are <device>.<point>."""
    path = write(
        rtu_site(
            "      - {name: b1-heat, address: 1, profile: meter, termination: true}\n",
            extra="""
  - name: bus2
    type: modbus-rtu
    transport: {serial: /dev/ttyUSB1, rs485: {termination: true}}
    devices:
      - {name: b1-heat, address: 2, profile: meter, termination: true}
""",
        )
    )
    problem = only(errors_of(path), "duplicate device name")
    first = line_of(path, "name: b1-heat", 1)
    assert problem.line == line_of(path, "name: b1-heat", 2)
    assert problem.message == f"duplicate device name 'b1-heat' (first at line {first})"


def test_duplicate_channel_name(write, line_of):
    """Channel names are unique."""
    path = write(
        rtu_site(
            "      - {name: m1, address: 1, profile: meter, termination: true}\n",
            extra="""
  - name: bus1
    type: modbus-tcp
    transport: {tcp: 192.0.2.10:502}
""",
        )
    )
    problem = only(errors_of(path), "duplicate channel name")
    assert problem.line == line_of(path, "- name: bus1", 2)
    assert problem.message == f"duplicate channel name 'bus1' (first at line {line_of(path, '- name: bus1')})"


def test_check_device_names_directly():
    """Three devices of one name give two problems."""
    devices = [DeviceConfig(name="x", address=n, profile="p") for n in (1, 2, 3)]
    assert len(check_device_names(devices, SourceMap())) == 2


# Rule 3: baud rates


def test_non_standard_baudrate(write, line_of):
    """A baud rate outside the standard list names the value and the allowed ones."""
    path = write(
        """
        site: {name: Test}
        channels:
          - name: bus1
            type: modbus-rtu
            transport:
              serial: /dev/ttyUSB0
              baudrate: 9601
        """
    )
    problem = only(errors_of(path), "baud")
    assert problem.line == line_of(path, "baudrate: 9601")
    assert problem.message.startswith("channels[0].transport.baudrate: 9601 is not a standard baud rate")
    assert "1200, 2400, 4800, 9600, 14400, 19200, 38400, 57600, 115200" in problem.message


# Rule 4: termination


def test_three_terminated_nodes_is_an_error(write, line_of):
    """Port plus two terminated devices makes three: error with count and names."""
    path = write(
        rtu_site(
            "      - {name: m1, address: 1, profile: meter, termination: true}\n"
            "      - {name: m2, address: 2, profile: meter}\n"
            "      - {name: m3, address: 3, profile: meter, termination: true}\n"
        )
    )
    problem = only(errors_of(path), "terminated nodes")
    assert problem.line == line_of(path, "- name: bus1")
    assert problem.message.startswith(
        "segment 'bus1' has 3 terminated nodes (port /dev/ttyUSB0, m1, m3)"
    )


def test_unterminated_segment_warns(write, line_of):
    """No terminated node is a warning, and the file still loads."""
    path = write(rtu_site("      - {name: m1, address: 1, profile: meter}\n", rs485="{rts_toggle: true}"))
    config, warnings = load_config(path)
    (warning,) = warnings
    assert warning.severity == "warning"
    assert warning.line == line_of(path, "- name: bus1")
    assert warning.message == (
        "segment 'bus1' has no terminated node; an RS-485 trunk needs 120 Ω at both ends"
    )
    assert str(warning) == f"{path}:{warning.line}: warning: {warning.message}"


def test_port_and_one_device_terminated_is_right(write):
    """The usual layout, port at one end and the last meter at the other, is clean."""
    path = write(rtu_site("      - {name: m1, address: 1, profile: meter, termination: true}\n"))
    assert load_config(path)[1] == []


def test_termination_not_judged_behind_a_tcp_gateway():
    """RTU over a TCP gateway: the serial wiring is not visible, so no check."""
    channel = ChannelConfig(name="g", type="modbus-rtu", transport={"tcp": "192.0.2.1:4001"})
    assert check_termination(channel, SourceMap()) == []


# Rule 5: overlapping registers


def test_overlapping_registers_name_both_points(write, line_of):
    """Two holding points sharing register 1 are an error naming both."""
    path = write(
        """
        site: {name: Test}
        profiles:
          meter:
            points:
              - {name: volume_m3, function: holding, register: 0, type: u32}
              - {name: flow_m3h, function: input, register: 1, type: u16}
              - {name: energy_kwh, function: holding, register: 1, type: f32}
        """
    )
    problem = only(errors_of(path), "overlaps")
    assert problem.line == line_of(path, "energy_kwh")
    assert problem.message == (
        "profiles.meter.points[2].register: point 'energy_kwh' (holding 1-2) overlaps point "
        f"'volume_m3' (0-1, line {line_of(path, 'volume_m3')}) in profile 'meter'"
    )


def test_duplicate_point_name_and_too_wide_point():
    """Point names repeat and a u64 wider than max_registers are both reported."""
    from scada.config import ProfileConfig

    profile = ProfileConfig(
        max_registers=2,
        points=[
            {"name": "a", "function": "holding", "register": 0, "type": "u16"},
            {"name": "a", "function": "holding", "register": 10, "type": "u64"},
        ],
    )
    messages = [p.message for p in check_profile_registers("m", profile, SourceMap())]
    assert any("duplicate point name 'a'" in m for m in messages)
    assert any("needs 4 registers but profile 'm' has max_registers 2" in m for m in messages)


# Rule 6: unknown profile


def test_unknown_profile_at_profile_line(write, line_of):
    """A device naming an undefined profile is an error at its profile line."""
    path = write(
        rtu_site(
            "      - name: b1-kv07\n"
            "        address: 7\n"
            "        profile: foo\n"
            "        termination: true\n"
        )
    )
    problem = only(errors_of(path), "unknown profile")
    assert problem.line == line_of(path, "profile: foo")
    assert problem.message.startswith("unknown profile 'foo' for device 'b1-kv07'")


def test_unknown_profile_suggests_a_close_name(write):
    """A misspelt profile name gets a suggestion."""
    path = write(rtu_site("      - {name: m1, address: 1, profile: meterr, termination: true}\n"))
    problem = only(errors_of(path), "unknown profile")
    assert problem.message == "unknown profile 'meterr' for device 'm1' (did you mean 'meter'?)"


def test_broken_profile_is_not_also_unknown(write):
    """A profile with its own errors is not reported again as unknown."""
    path = write(
        """
        site: {name: Test}
        channels:
          - name: bus1
            type: modbus-tcp
            transport: {tcp: 192.0.2.10:502}
            devices:
              - {name: m1, address: 1, profile: bad}
        profiles:
          bad: {points: [{name: x, function: coil, register: 0, type: u16}]}
        """
    )
    messages = [p.message for p in errors_of(path)]
    assert messages == ["profiles.bad.points[0].function: 'coil' is not one of holding, input"]


# Rule 7: poll budget


def test_poll_budget_warning_with_numbers(write, line_of):
    """24 devices reading 2 registers each at 9600 Bd do not fit into 0.5 s."""
    devices = "".join(
        f"      - {{name: m{n}, address: {n}, profile: meter, poll: {'500ms' if n == 5 else '30s'}}}\n"
        for n in range(1, 25)
    )
    path = write(rtu_site(devices))
    per_device = timing.expected_transaction_time(
        timing.READ_REQUEST_BYTES, timing.read_response_bytes(2), 9600, "E", 1
    )
    config, warnings = load_config(path)
    (warning,) = warnings
    assert warning.line == line_of(path, "- name: bus1")
    assert warning.message == (
        f"channel 'bus1': one round of 24 devices needs {24 * per_device:.2f} s of bus time "
        "at 9600 Bd but the shortest poll period is 0.5 s"
    )


def test_poll_budget_ignores_disabled_devices_and_tcp():
    """Disabled devices are not polled, and Modbus TCP has no shared line."""
    from scada.config import ProfileConfig

    profile = ProfileConfig(points=[{"name": "v", "function": "holding", "register": 0, "type": "u16"}])
    devices = [{"name": f"d{n}", "address": n, "profile": "p", "poll": 0.01} for n in range(1, 4)]
    rtu = ChannelConfig(name="r", type="modbus-rtu", transport={"serial": "/dev/null"}, devices=devices)
    assert check_poll_budget(rtu, {"p": profile}, SourceMap())[0].severity == "warning"
    disabled = [dict(d, enabled=False) for d in devices]
    quiet = ChannelConfig(name="r", type="modbus-rtu", transport={"serial": "/dev/null"}, devices=disabled)
    assert check_poll_budget(quiet, {"p": profile}, SourceMap()) == []
    tcp = ChannelConfig(name="t", type="modbus-tcp", transport={"tcp": "192.0.2.1:502"}, devices=devices)
    assert check_poll_budget(tcp, {"p": profile}, SourceMap()) == []


def test_poll_budget_uses_plan_reads_and_max_registers():
    """A profile limited to 1 register per read costs one transaction per register."""
    from scada.config import ProfileConfig

    points = [{"name": f"p{r}", "function": "holding", "register": r, "type": "u16"} for r in range(4)]
    narrow = ProfileConfig(max_registers=1, points=points)
    requests = plan_reads(narrow.points, narrow.max_registers)
    assert len(requests) == 4
    cost = requests_bus_time(requests, 1200, "E", 1)
    channel = ChannelConfig(
        name="r",
        type="modbus-rtu",
        transport={"serial": "/dev/null", "baudrate": 1200},
        devices=[{"name": "d", "address": 1, "profile": "p", "poll": cost * 0.99}],
    )
    (warning,) = check_poll_budget(channel, {"p": narrow}, SourceMap())
    assert f"needs {cost:.2f} s of bus time at 1200 Bd" in warning.message


# Rule 8: time zone


def test_unknown_timezone(write, line_of):
    """site.timezone must be an IANA zone."""
    path = write(
        """
        site:
          name: Test
          timezone: Mars/Olympus_Mons
        """
    )
    problem = only(errors_of(path), "time zone")
    assert problem.line == line_of(path, "timezone:")
    assert problem.message == (
        "site.timezone: 'Mars/Olympus_Mons' is not an IANA time zone such as 'Europe/Moscow'"
    )
