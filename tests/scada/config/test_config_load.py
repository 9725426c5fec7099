"""Tests for load_config, profile resolution, schema messages and check_main."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest

from scada.config import (
    ConfigError,
    Problem,
    SiteConfig,
    check_main,
    load_config,
)
from scada.config import loader

EXAMPLE = """
site: {name: Demo district, timezone: Europe/Moscow}
history: {backend: sqlite, path: var/history.db}
api: {listen: 127.0.0.1:8080}
simulate: false              # true: run simulated meters for every device
channels:
  - name: b1-rs485
    type: modbus-rtu         # modbus-rtu | modbus-tcp
    transport:
      serial: /dev/ttyUSB0   # or  tcp: 192.0.2.10:4001  (RTU through a TCP serial gateway)
      baudrate: 9600
      parity: E              # N | E | O
      stopbits: 1
      rs485: {rts_toggle: true, termination: true}
    timeout: 300ms           # device turnaround allowance on top of the baud-derived frame time
    retries: 2
    devices:
      - {name: b1-heat, address: 1, profile: generic_heat_meter, poll: 30s}
      - {name: b1-kv01-cold, address: 11, profile: generic_water_meter, poll: 60s, termination: true}
profiles:                    # inline; same shape as config/profiles/<name>.yaml
  my_meter:
    points:
      - {name: volume_m3, function: holding, register: 0, type: u32, word_order: big, scale: 0.001, unit: m3}
"""

HEAT = """
description: Heat meter used by the tests
sim: heat_meter
points:
  - {name: energy_gcal, function: holding, register: 0, type: f32, unit: Gcal}
  - {name: flow_m3h, function: holding, register: 2, type: f32, unit: m3/h}
"""

WATER = """
sim: water_meter
max_registers: 8
points:
  - {name: volume_m3, function: input, register: 0, type: u32, scale: 0.001, unit: m3}
"""

_opened: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    """Record files opened while a test listens (audit hooks cannot be removed)."""
    if _opened is not None and event == "open":
        _opened.append(str(args[0]))


sys.addaudithook(_audit)


def problems_of(path) -> list[Problem]:
    """Load ``path`` expecting failure; return its problems."""
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def test_example_site_loads_without_opening_the_port(write, tmp_path):
    """The documented example loads and nothing under /dev is opened."""
    global _opened
    write(HEAT, "generic_heat_meter.yaml", tmp_path / "profiles")
    write(WATER, "generic_water_meter.yaml", tmp_path / "profiles")
    path = write(EXAMPLE)
    _opened = []
    try:
        config, warnings = load_config(path)
    finally:
        opened, _opened = _opened, None
    assert not [name for name in opened if name.startswith("/dev")], opened
    assert warnings == []
    assert isinstance(config, SiteConfig)
    assert config.source == str(path)
    assert config.site.timezone == "Europe/Moscow"
    assert (config.api.host, config.api.port) == ("127.0.0.1", 8080)
    assert config.simulate is False
    (channel,) = config.channels
    assert channel.timeout == pytest.approx(0.3)
    assert channel.comm_loss_after == 3
    assert channel.transport.serial == "/dev/ttyUSB0"
    assert channel.transport.rs485.termination is True
    assert [d.poll for d in channel.devices] == [30.0, 60.0]
    assert set(config.profiles) == {"my_meter", "generic_heat_meter", "generic_water_meter"}
    assert config.profiles["generic_water_meter"].max_registers == 8
    assert config.profiles["my_meter"].points[0].count == 2
    assert config.profiles["generic_heat_meter"].sim == "heat_meter"


def test_defaults(write):
    """A site with only a name gets every documented default."""
    config, warnings = load_config(write("site: {name: Minimal}\n"))
    assert warnings == []
    assert config.site.timezone == "Europe/Moscow"
    assert config.history.backend == "sqlite"
    assert config.history.path == "var/history.db"
    assert config.history.flush_interval == 1.0
    assert config.history.batch_size is None and config.history.effective_batch_size == 500
    assert config.history.queue.path is None and config.history.queue.max_size == 1 << 30
    assert config.api.listen == "127.0.0.1:8080"
    assert config.channels == [] and config.profiles == {}


def test_tcp_transport_and_device_options(write):
    """host:port is parsed; sim options are free-form; empty sections mean defaults."""
    path = write(
        """
        site: {name: Test}
        history:
        api: {listen: "[::1]:9000"}
        channels:
          - name: gw
            type: modbus-rtu
            description: RTU behind a TCP serial gateway
            transport: {tcp: 192.0.2.10:4001, baudrate: 2400, parity: N, stopbits: 2}
            devices:
              - name: b1-odpu
                address: 1
                profile: m
                poll: 1.5m
                sim: {model: building_water, sum_of: "b1-kv*", losses: 0.03}
        profiles:
          m: {points: [{name: v, function: input, register: 0, type: bcd32}]}
        """
    )
    config, _ = load_config(path)
    transport = config.channels[0].transport
    assert (transport.tcp_host, transport.tcp_port) == ("192.0.2.10", 4001)
    assert (config.api.host, config.api.port) == ("::1", 9000)
    assert config.channels[0].description == "RTU behind a TCP serial gateway"
    device = config.channels[0].devices[0]
    assert device.poll == 90.0
    assert device.sim == {"model": "building_water", "sum_of": "b1-kv*", "losses": 0.03}


# Profiles from files


def site_using(profile: str) -> str:
    """Return a site whose one device uses ``profile``."""
    return f"""
site: {{name: Test}}
channels:
  - name: plc
    type: modbus-tcp
    transport: {{tcp: 192.0.2.10:502}}
    devices:
      - {{name: m1, address: 1, profile: {profile}}}
"""


def test_builtin_profile_directory_is_consulted(write, builtin_profiles):
    """A profile missing inline and beside the site is read from the built-in dir."""
    write(WATER, "generic_water_meter.yaml", builtin_profiles)
    config, _ = load_config(write(site_using("generic_water_meter")))
    assert config.profiles["generic_water_meter"].points[0].name == "volume_m3"


def test_builtin_directory_is_repo_config_profiles():
    """The built-in directory is <repo>/config/profiles, found from the package."""
    expected = Path(loader.__file__).resolve().parents[2] / "config" / "profiles"
    assert expected.parent.name == "config" and (expected.parents[1] / "scada").is_dir()


def test_site_profiles_directory_wins_over_builtin(write, tmp_path, builtin_profiles):
    """profiles/ beside the site file overrides a shipped profile of the same name."""
    write(WATER, "meter.yaml", builtin_profiles)
    write(HEAT, "meter.yaml", tmp_path / "profiles")
    config, _ = load_config(write(site_using("meter")))
    assert config.profiles["meter"].sim == "heat_meter"


def test_inline_profile_wins_over_files(write, tmp_path, builtin_profiles):
    """An inline profile is used even when files of that name exist."""
    write(WATER, "meter.yaml", builtin_profiles)
    write("points: [oops]\n", "meter.yaml", tmp_path / "profiles")
    inline = "profiles:\n  meter: {points: [{name: x, function: holding, register: 5, type: i16}]}\n"
    path = write(site_using("meter") + inline)
    config, _ = load_config(path)
    assert config.profiles["meter"].points[0].name == "x"


def test_profile_file_problems_carry_that_files_path_and_line(write, tmp_path, line_of):
    """An error inside a profile file is reported against the profile file."""
    profile = write(
        """
        description: broken
        points:
          - {name: ok, function: holding, register: 0, type: u16}
          - name: bad
            function: holding
            register: 1
            type: u24
        """,
        "meter.yaml",
        tmp_path / "profiles",
    )
    problems = problems_of(write(site_using("meter")))
    assert [str(p) for p in problems] == [
        f"{profile}:{line_of(profile, 'type: u24')}: points[1].type: 'u24' is not one of "
        "u16, i16, u32, i32, u64, i64, f32, f64, bcd16, bcd32"
    ]


def test_profile_file_with_yaml_error(write, tmp_path):
    """A syntax error in a profile file is reported with that file's name and line."""
    profile = write("points:\n  - {name: a\n", "meter.yaml", tmp_path / "profiles")
    (problem,) = problems_of(write(site_using("meter")))
    assert problem.file == str(profile)
    assert problem.message.startswith("YAML syntax error")


def test_profile_name_cannot_escape_the_directory(write, tmp_path):
    """A profile name with a path in it is never looked up as a file."""
    write(WATER, "evil.yaml", tmp_path)
    (problem,) = problems_of(write(site_using("../evil")))
    assert problem.message.startswith("unknown profile '../evil'")


# Schema errors become short messages


@pytest.mark.parametrize(
    ("snippet", "needle", "message"),
    [
        (
            "transport: {serial: /dev/ttyUSB0, baudrat: 9600}",
            "baudrat",
            "unknown key 'baudrat' in channels[0].transport (did you mean 'baudrate'?)",
        ),
        (
            "transport: {serial: /dev/ttyUSB0, parity: X}",
            "parity: X",
            "channels[0].transport.parity: 'X' is not one of N, E, O",
        ),
        (
            "transport: {serial: /dev/ttyUSB0, stopbits: 3}",
            "stopbits",
            "channels[0].transport.stopbits: 3 is not one of 1, 2",
        ),
        (
            "transport: {serial: /dev/ttyUSB0, tcp: 192.0.2.1:1}",
            "transport:",
            "channels[0].transport: set exactly one of 'serial', 'tcp', 'modem', 'mqtt' or 'udp' ('serial', 'tcp' given)",
        ),
        (
            "transport: {tcp: 192.0.2.1}",
            "transport:",
            "channels[0].transport.tcp: '192.0.2.1' is not host:port, e.g. '192.0.2.10:4001'",
        ),
        (
            "transport: {serial: /dev/ttyUSB0}\n    timeout: soon",
            "timeout",
            "channels[0].timeout: 'soon' is not a duration; use seconds or <number><unit> "
            "with unit ms, s, m, h or d, e.g. '300ms', '30s', '1.5m'",
        ),
        (
            "transport: {serial: /dev/ttyUSB0}\n    retries: 11",
            "retries",
            "channels[0].retries: 11 is out of range 0-10",
        ),
        (
            "transport: {serial: /dev/ttyUSB0}\n    comm_loss_after: 0",
            "comm_loss_after",
            "channels[0].comm_loss_after: 0 must be at least 1",
        ),
        (
            "transport: {serial: /dev/ttyUSB0}\n    retries: two",
            "retries",
            "channels[0].retries: expected a whole number, got 'two'",
        ),
    ],
)
def test_channel_schema_messages(write, line_of, snippet, needle, message):
    """Each schema error is one short message naming the value, at its line."""
    path = write(f"site: {{name: T}}\nchannels:\n  - name: c\n    type: modbus-rtu\n    {snippet}\n")
    (problem,) = problems_of(path)
    assert problem.message == message
    assert problem.line == line_of(path, needle)


def test_device_and_point_schema_messages(write, line_of):
    """Device and point fields: names, missing keys, poll, register range."""
    path = write(
        """
        site: {name: T}
        channels:
          - name: c
            type: modbus-tcp
            transport: {tcp: 192.0.2.1:502}
            devices:
              - {name: "b1 heat", address: 1, profile: p}
              - {name: b1.kv, address: 2, profile: p}
              - {name: b1-x, profile: p}
              - {name: b1-y, address: 3, profile: p, poll: 0s}
        profiles:
          p:
            points:
              - {name: v, function: holding, register: 65536, type: u16}
              - {name: w, function: holding, register: 65535, type: u32}
              - {name: d, function: input, register: 0, type: u16, deadband: -1}
        """
    )
    found = {(p.line, p.message) for p in problems_of(path)}
    tag_rule = "no whitespace or '.' allowed (tag names are <device>.<point>)"
    assert found == {
        (line_of(path, "b1 heat"), f"channels[0].devices[0].name: 'b1 heat' is not a valid name: {tag_rule}"),
        (line_of(path, "b1.kv"), f"channels[0].devices[1].name: 'b1.kv' is not a valid name: {tag_rule}"),
        (line_of(path, "b1-x"), "channels[0].devices[2]: device 'b1-x' needs 'address' (0-255)"),
        (
            line_of(path, "poll: 0s"),
            "channels[0].devices[3].poll: 0 s is not a period; it must be longer than zero",
        ),
        (line_of(path, "65536"), "profiles.p.points[0].register: 65536 is out of range 0-65535"),
        (
            line_of(path, "65535"),
            "profiles.p.points[1]: u32 at register 65535 needs registers up to 65536, "
            "past the last register 65535",
        ),
        (line_of(path, "deadband"), "profiles.p.points[2].deadband: -1 must not be negative"),
    }


def test_top_level_problems(write, line_of):
    """Unknown sections, missing site, bad api port and bad section types."""
    path = write(
        """
        chanels: []
        api: {listen: "localhost:99999"}
        history: {backend: mysql}
        simulate: maybe
        profiles: [a]
        """
    )
    found = {(p.line, p.message) for p in problems_of(path)}
    assert found == {
        (line_of(path, "chanels"), "unknown key 'chanels' at top level (did you mean 'channels'?)"),
        (1, "missing required section 'site' (e.g. site: {name: Demo district})"),
        (line_of(path, "api"), "api.listen: 'localhost:99999': port 99999 is out of range 1-65535"),
        (line_of(path, "history"), "history.backend: 'mysql' is not one of sqlite, influxdb"),
        (line_of(path, "simulate"), "simulate: expected true or false, got 'maybe'"),
        (line_of(path, "profiles"), "profiles: expected a mapping of profile name to profile, got a list"),
    }


def test_problems_from_every_device_are_collected(write, line_of):
    """One bad device does not hide the others' problems or the cross checks."""
    path = write(
        """
        site: {name: T}
        channels:
          - name: c
            type: modbus-rtu
            transport: {serial: /dev/ttyUSB0, rs485: {termination: true}}
            devices:
              - {name: a, address: 1, profile: p, poll: never}
              - {name: b, address: 2, profile: nope}
              - {name: b, address: 2, profile: p}
        profiles:
          p: {points: [{name: v, function: holding, register: 0, type: u16}]}
        """
    )
    lines = sorted(p.line for p in problems_of(path))
    assert lines == [
        line_of(path, "never"),
        line_of(path, "nope"),
        line_of(path, "name: b", 2),
        line_of(path, "name: b", 2),
    ]


def test_duplicate_yaml_key_is_an_error(write, line_of):
    """PyYAML would silently keep the last of two equal keys; we report it."""
    path = write("site:\n  name: A\n  name: B\n")
    (problem,) = problems_of(path)
    assert problem.line == 3
    assert problem.message == "duplicate key 'name' in site (first at line 2); only the last one would count"


# check_main


def run_check(path) -> tuple[int, list[str]]:
    """Run check_main, returning its exit code and printed lines."""
    out = io.StringIO()
    code = check_main(str(path), out=out)
    return code, out.getvalue().splitlines()


def test_check_good_file_prints_ok(write):
    """A valid file prints only 'ok' and returns 0."""
    assert run_check(write("site: {name: T}\n")) == (0, ["ok"])


def test_check_good_file_with_warning(write):
    """Warnings are printed, but the file is still ok."""
    path = write(
        "site: {name: T}\nchannels:\n  - name: c\n    type: modbus-rtu\n"
        "    transport: {serial: /dev/ttyUSB0}\n"
    )
    code, lines = run_check(path)
    assert code == 0
    assert lines == [
        f"{path}:3: warning: segment 'c' has no terminated node; an RS-485 trunk needs 120 Ω at both ends",
        "ok",
    ]


def test_check_broken_file(write):
    """A broken file prints FILE:LINE: lines sorted by line and returns 1."""
    path = write(
        """
        site: {name: T, timezone: Nowhere}
        channels:
          - name: c
            type: modbus-rtu
            transport: {serial: /dev/ttyUSB0, baudrate: 9601}
        api: {listen: nothing}
        """
    )
    code, lines = run_check(path)
    assert code == 1
    assert "ok" not in lines
    assert len(lines) == 3
    numbers = [int(re.match(rf"{re.escape(str(path))}:(\d+): ", line).group(1)) for line in lines]
    assert numbers == sorted(numbers) == [1, 5, 6]


@pytest.mark.parametrize(
    ("content", "line", "start"),
    [
        ("site: {name: [\n", 2, "YAML syntax error: "),
        ("site:\n  name: a\n bad: [\n", 3, "YAML syntax error: "),
        ("", 1, "the site file is empty"),
        ("# only a comment\n", 1, "the site file is empty"),
        ("- site\n- channels\n", 1, "the top level must be a mapping of sections"),
        ("just text\n", 1, "the top level must be a mapping of sections"),
        (
            "site: !!python/object:os.system {name: x}\n",
            1,
            "YAML syntax error: could not determine a constructor",
        ),
    ],
)
def test_check_unloadable_files_give_one_line(write, capsys, content, line, start):
    """Syntax errors, empty files and non-mapping tops: one clear line, exit 1."""
    path = write(content)
    code, lines = run_check(path)
    assert code == 1
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}:{line}: {start}")
    assert capsys.readouterr().err == ""


def test_check_missing_file(tmp_path):
    """A missing file is one line and exit 1, not a traceback."""
    path = tmp_path / "absent.yaml"
    assert run_check(path) == (1, [f"{path}:1: cannot read site file: no such file"])


def test_check_directory_and_binary_file(tmp_path):
    """A directory or a non-UTF-8 file is one line too."""
    assert run_check(tmp_path)[0] == 1
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"site:\n  name: \xff\n")
    code, lines = run_check(binary)
    assert code == 1 and lines == [f"{binary}:2: not UTF-8 text: byte 0xff at offset 14"]


def test_check_writes_to_stdout_by_default(write, capsys):
    """Without ``out``, check_main prints to the current sys.stdout."""
    assert check_main(str(write("site: {name: T}\n"))) == 0
    assert capsys.readouterr().out == "ok\n"


def test_point_numbers_must_be_finite_and_scale_non_zero(write):
    """YAML .inf/.nan in scale, offset or deadband, and a zero scale, are errors at their line."""
    path = write("""
        site: {name: x}
        profiles:
          p:
            points:
              - {name: a, function: holding, register: 0, type: u16, scale: .inf}
              - {name: b, function: holding, register: 1, type: u16, scale: 0}
              - {name: c, function: holding, register: 2, type: u16, offset: .nan, deadband: .nan}
        """)
    found = {(p.line, p.message) for p in problems_of(path)}
    assert found == {
        (5, "profiles.p.points[0].scale: inf is not a finite number"),
        (6, "profiles.p.points[1].scale: 0 is not a usable scale (every reading would be 0)"),
        (7, "profiles.p.points[2].offset: nan is not a finite number"),
        (7, "profiles.p.points[2].deadband: nan is not a finite number"),
    }
