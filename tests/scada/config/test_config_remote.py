"""Meters off the local wire in a site file: ``modem_server:``, ``mqtt:``, lorawan/nbiot/manual channels.

One valid site with every new section is loaded once; each error case is
a small site of its own whose single problem must sit on the exact line
of the bad value and name it.
"""

from __future__ import annotations

import re
import textwrap

import pytest
import yaml

from channels.lorawan import decoders
from scada.config import ConfigError, load_config
from scada.config.alarms import LimitRuleConfig, site_tags
from scada.config.model import UPLINK_DEFAULT_PERIOD, ChannelConfig
from scada.config.remote import (
    CUMULATIVE_UNITS,
    ModemServerConfig,
    check_decoder,
    compile_bytes_pattern,
    is_cumulative,
)

MODEM = "860000000000001"

VALID = r"""
site: {name: Remote meters}
modem_server:
  listen: 0.0.0.0:5020
  identify_timeout: 20s
  heartbeat: '^PING\r?\n'
  types:
    - {name: teleofis, id_pattern: '^LOGIN:(?P<id>\d+)\r\n', heartbeat: '^\xff$', prefix: true}
    - {name: irz, id_pattern: '^(\d{15})'}
mqtt:
  broker: 127.0.0.1:1883
  username: scada
  password: secret
channels:
  - name: modem-bus
    type: modbus-rtu
    transport: {modem: "860000000000001", baudrate: 9600}
    devices:
      - {name: m-heat, address: 1, profile: heat, serial: "HT-0001"}
  - name: night-gw
    type: modbus-rtu
    transport: {tcp: 192.0.2.10:4001, connect: "daily 01:00-01:30"}
    devices:
      - {name: n-heat, address: 1, profile: heat}
  - name: lora
    type: lorawan
    transport: {mqtt: "application/+/device/+/event/up"}
    devices:
      - name: lora-cold
        dev_eui: 70b3d59ba0000101
        decoder: pulse_counter_le
        decoder_options: {litres_per_pulse: 10}
      - name: lora-si11
        dev_eui: 70-B3-D5-9B-A0-00-01-02
        decoder: vega_si11
        decoder_options: {inputs: {1: {name: cold_m3, litres_per_pulse: 1}}}
      - name: lora-raw
        dev_eui: 70B3D59BA0000103
        poll: 15m
        points:
          - {name: volume_m3, unit: m3}
          - {name: temp_c, unit: °C}
  - name: nb
    type: nbiot
    transport: {udp: 0.0.0.0:5683, id_pattern: '^(?P<id>\d{15});'}
    devices:
      - name: nb-cold
        uplink_id: "861234567890123"
        decoder: pulse_counter_le
        decoder_options: {litres_per_pulse: 1}
  - name: hand
    type: manual
    devices:
      - name: kv12-cold
        serial: "ВСХ-123456"
        points:
          - {name: volume_m3, unit: m3}
          - {name: reading_kwh, unit: kWh, cumulative: false}
profiles:
  heat:
    points:
      - {name: energy_gcal, function: holding, register: 0, type: f32, unit: Gcal}
alarms:
  - {name: lora-leak, type: limit, tag: lora-cold.volume_m3, hi: 1000}
  - {name: si11-hi, type: limit, tag: lora-si11.cold_m3, hi: 1000}
  - {name: raw-cold, type: limit, tag: lora-raw.temp_c, lo: 2}
  - {name: nb-pulses, type: limit, tag: nb-cold.pulses, hi: 100000}
  - {name: hand-hi, type: limit, tag: kv12-cold.volume_m3, hi: 500}
"""


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    """Load the valid site once: (path, config, warnings)."""
    path = tmp_path_factory.mktemp("remote") / "site.yaml"
    path.write_text(VALID.lstrip("\n"), encoding="utf-8")
    config, warnings = load_config(path)
    return path, config, warnings


def channel(config, name):
    """Return the channel called ``name``."""
    return next(c for c in config.channels if c.name == name)


def device(config, name):
    """Return the device called ``name``."""
    return next(d for c in config.channels for d in c.devices if d.name == name)


# ------------------------------------------------------------- the valid site


def test_valid_site_loads_without_problems(valid):
    """Every new section and channel type loads, with no warning."""
    _path, config, warnings = valid
    assert warnings == []
    assert [(c.name, c.type, c.transport.kind if c.transport else None) for c in config.channels] == [
        ("modem-bus", "modbus-rtu", "modem"), ("night-gw", "modbus-rtu", "tcp"), ("lora", "lorawan", "mqtt"),
        ("nb", "nbiot", "udp"), ("hand", "manual", None)]


def test_valid_site_modem_server_and_mqtt(valid):
    """Durations become seconds; the site's modem types come first, the default one last."""
    _path, config, _ = valid
    server = config.modem_server
    assert (server.listen, server.identify_timeout, server.idle_timeout, server.max_timeouts) == (
        "0.0.0.0:5020", 20.0, 300.0, 3)
    types = server.modem_types()
    assert [t.name for t in types] == ["teleofis", "irz", "default"]
    assert types[0].prefix is True and types[0].heartbeat == r"^\xff$"
    assert (types[-1].id_pattern, types[-1].heartbeat) == (r"^(?P<id>\d{15})", r"^PING\r?\n")
    assert (config.mqtt.broker, config.mqtt.username, config.mqtt.password) == ("127.0.0.1:1883", "scada", "secret")
    assert (config.mqtt.client_id, config.mqtt.spawn) == ("scada", False)


def test_valid_site_transports(valid):
    """Modem ID, connect window, topic filter and UDP listener are kept as written."""
    _path, config, _ = valid
    assert channel(config, "modem-bus").transport.modem == MODEM
    night = channel(config, "night-gw").transport
    assert (night.tcp_host, night.tcp_port, night.connect) == ("192.0.2.10", 4001, "daily 01:00-01:30")
    assert channel(config, "lora").transport.mqtt == "application/+/device/+/event/up"
    nb = channel(config, "nb").transport
    assert (nb.udp, nb.id_pattern) == ("0.0.0.0:5683", r"^(?P<id>\d{15});")
    assert channel(config, "hand").transport is None


def test_valid_site_devices(valid):
    """EUIs are normalised to 16 upper-case hex digits; decoders, options and points are kept."""
    _path, config, _ = valid
    assert device(config, "lora-cold").dev_eui == "70B3D59BA0000101"
    assert device(config, "lora-si11").dev_eui == "70B3D59BA0000102"
    assert device(config, "lora-cold").decoder_options == {"litres_per_pulse": 10}
    assert device(config, "nb-cold").uplink_id == "861234567890123"
    raw = device(config, "lora-raw")
    assert raw.decoder is None and [p.name for p in raw.points] == ["volume_m3", "temp_c"]
    assert raw.poll == 900.0
    hand = device(config, "kv12-cold")
    assert hand.serial == "ВСХ-123456"
    assert [(p.name, p.unit, p.cumulative) for p in hand.points] == [("volume_m3", "m3", None),
                                                                      ("reading_kwh", "kWh", False)]
    assert [is_cumulative(p.unit, p.cumulative) for p in hand.points] == [True, False]


def test_uplink_devices_report_hourly_by_default(valid):
    """LoRaWAN/NB-IoT meters that name no poll get the hourly report period from a site file too."""
    _path, config, _ = valid
    assert device(config, "lora-cold").poll == UPLINK_DEFAULT_PERIOD == 3600.0
    assert device(config, "nb-cold").poll == UPLINK_DEFAULT_PERIOD


def test_uplink_period_default_of_the_channel_model():
    """The channel model gives uplink meters 3600 s unless they name a poll; polled meters keep 60 s."""
    lora = ChannelConfig.model_validate({"name": "l", "type": "lorawan", "devices": [
        {"name": "a", "dev_eui": "70B3D59BA0000101"}, {"name": "b", "dev_eui": "70B3D59BA0000102", "poll": 600.0}]})
    assert [d.poll for d in lora.devices] == [3600.0, 600.0]
    nb = ChannelConfig.model_validate({"name": "n", "type": "nbiot", "devices": [{"name": "c", "uplink_id": "1"}]})
    assert nb.devices[0].poll == 3600.0
    manual = ChannelConfig.model_validate({"name": "h", "type": "manual", "devices": [{"name": "d"}]})
    assert manual.devices[0].poll == 60.0


def test_alarm_rules_reach_uplink_and_hand_read_tags(valid):
    """Limit rules on decoder points, declared points and hand-read points resolve without findings."""
    _path, config, _ = valid
    assert all(isinstance(rule, LimitRuleConfig) for rule in config.alarms)
    tags = site_tags(config.channels, config.profiles).tags
    for name in ("lora-cold.volume_m3", "lora-cold.pulses", "lora-si11.cold_m3", "lora-si11.battery_pct",
                 "lora-raw.temp_c", "nb-cold.volume_m3", "kv12-cold.volume_m3", "kv12-cold.reading_kwh",
                 "m-heat.energy_gcal"):
        assert tags[name] == name.split(".")[0]
    assert "lora-si11.input1_m3" not in tags


# ------------------------------------------------------------- error cases

PROFILE = """\
profiles:
  heat:
    points:
      - {name: energy_gcal, function: holding, register: 0, type: f32, unit: Gcal}
"""


def site(channels: str = "", head: str = "", tail: str = "") -> str:
    """Return a site file: ``head`` sections, ``channels`` (list items), the heat profile, ``tail``."""
    text = "site: {name: T}\n" + textwrap.dedent(head)
    if channels:
        text += "channels:\n" + textwrap.indent(textwrap.dedent(channels).strip("\n"), "  ") + "\n"
    return text + PROFILE + textwrap.dedent(tail)


def problems_of(path) -> list:
    """Load ``path`` expecting failure; return its problems."""
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def the_problem(path):
    """Return the one problem of ``path``, failing if there are more."""
    problems = problems_of(path)
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


MODEM_CHANNEL = """
- name: mb1
  type: modbus-rtu
  transport: {modem: "860000000000001"}
  devices: [{name: d1, address: 1, profile: heat}]
"""

LORA = """
        - name: l
          type: lorawan
          devices:
"""

#: (case id, site text, text on the problem's line, which occurrence, fragments of the message);
#: ``{first}`` in a fragment is the line of the needle's first occurrence.
CASES = [
    ("modem-without-server", site(MODEM_CHANNEL), 'modem: "860000000000001"', 1,
     ["channels[0].transport", "'mb1'", "'860000000000001'", "no 'modem_server' section"]),
    ("modem-on-two-channels", site(MODEM_CHANNEL + MODEM_CHANNEL.replace("mb1", "mb2").replace("d1", "d2"),
                                   head="modem_server: {listen: 0.0.0.0:5020}\n"),
     'modem: "860000000000001"', 2,
     ["channels[1].transport", "modem '860000000000001' already carries channel 'mb1'", "one modem serves one bus"]),
    ("id-pattern-not-a-regex", site(head="modem_server:\n  id_pattern: '^(?P<id>[0-9]+'\n"), "id_pattern:", 1,
     ["modem_server.id_pattern", "'^(?P<id>[0-9]+'", "is not a regular expression"]),
    ("id-pattern-without-group", site(head="modem_server:\n  types:\n    - name: irz\n      id_pattern: '^LOGIN'\n"),
     "id_pattern:", 1, ["modem_server.types[0].id_pattern", "'^LOGIN'", "needs a group for the ID"]),
    ("heartbeat-matches-empty", site(head="modem_server:\n  heartbeat: 'x*'\n"), "heartbeat:", 1,
     ["modem_server.heartbeat", "'x*'", "matches no bytes at all"]),
    ("connect-on-serial", site("""
        - name: mb
          type: modbus-rtu
          transport: {serial: /dev/ttyUSB0, connect: "daily 01:00-01:30", rs485: {termination: true}}
          devices: [{name: d1, address: 1, profile: heat, termination: true}]
        """), "connect:", 1, ["channels[0].transport", "'connect'", "'tcp'"]),
    ("bad-window", site("""
        - name: gw
          type: modbus-rtu
          transport:
            tcp: 192.0.2.10:4001
            connect: "nightly 1-2"
          devices: [{name: d1, address: 1, profile: heat}]
        """), "connect:", 1, ["channels[0].transport.connect", "'nightly 1-2'", "daily HH:MM-HH:MM"]),
    ("lorawan-without-dev-eui", site(LORA + """
            - name: lx
              decoder: pulse_counter_le
              decoder_options: {litres_per_pulse: 1}
        """), "name: lx", 1, ["channels[0].devices[0]", "lorawan meter 'lx' needs 'dev_eui'"]),
    ("bad-dev-eui", site(LORA + """
            - name: lx
              dev_eui: 70B3XX
              points: [{name: v, unit: m3}]
        """), "dev_eui:", 1, ["channels[0].devices[0].dev_eui", "'70B3XX'", "is not a device EUI (16 hex digits"]),
    ("nbiot-without-uplink-id", site("""
        - name: n
          type: nbiot
          devices:
            - name: nx
              points: [{name: v, unit: m3}]
        """), "name: nx", 1, ["channels[0].devices[0]", "nbiot meter 'nx' needs 'uplink_id'"]),
    ("points-with-decoder", site(LORA + """
            - name: lx
              dev_eui: 70B3D59BA0000101
              decoder: pulse_counter_le
              decoder_options: {litres_per_pulse: 1}
              points: [{name: v, unit: m3}]
        """), "points:", 1,
     ["channels[0].devices[0].points", "'lx'", "decoder 'pulse_counter_le'", "'points' are for meters without one"]),
    ("address-on-lorawan", site(LORA + """
            - name: lx
              dev_eui: 70B3D59BA0000101
              address: 5
              points: [{name: v, unit: m3}]
        """), "address:", 1, ["channels[0].devices[0].address", "'address' is a bus address", "lorawan"]),
    ("manual-without-points", site("""
        - name: hand
          type: manual
          devices:
            - name: hx
              serial: "A-1"
        """), "name: hx", 1, ["channels[0].devices[0]", "hand-read meter 'hx' needs 'points'"]),
    ("profile-on-lorawan", site(LORA + """
            - name: lx
              dev_eui: 70B3D59BA0000101
              profile: heat
        """), "profile: heat", 1, ["channels[0].devices[0].profile", "lorawan", "not a register profile"]),
    ("dev-eui-on-modbus", site("""
        - name: gw
          type: modbus-rtu
          transport: {tcp: 192.0.2.10:4001}
          devices:
            - name: d1
              address: 1
              profile: heat
              dev_eui: 70B3D59BA0000101
        """), "dev_eui:", 1, ["channels[0].devices[0].dev_eui", "'dev_eui' belongs to lorawan/nbiot devices",
                              "modbus-rtu"]),
    ("modbus-without-transport", site("""
        - name: mb
          type: modbus-rtu
          devices: [{name: d1, address: 1, profile: heat}]
        """), "name: mb", 1, ["channels[0]", "a modbus-rtu channel needs a 'transport' (serial, tcp or modem)"]),
    ("serial-twice", site("""
        - name: hand
          type: manual
          devices:
            - name: h1
              serial: "A-1"
              points: [{name: v, unit: m3}]
            - name: h2
              serial: "A-1"
              points: [{name: v, unit: m3}]
        """), "serial:", 2,
     ["channels[0].devices[1].serial", "serial 'A-1' of device 'h2' is already used by device 'h1' at line {first}"]),
    ("dev-eui-twice", site(LORA + """
            - name: l1
              dev_eui: 70B3D59BA0000101
            - name: l2
              dev_eui: 70-b3-d5-9b-a0-00-01-01
        """), "dev_eui:", 2,
     ["channels[0].devices[1].dev_eui", "dev_eui '70B3D59BA0000101' of device 'l2' is already used by device 'l1' "
                                        "at line {first}"]),
    ("bad-topic-filter", site("""
        - name: l
          type: lorawan
          transport:
            mqtt: "application/dev+/up"
          devices: []
        """), "mqtt:", 1, ["channels[0].transport.mqtt", "'application/dev+/up'", "is not an MQTT topic filter"]),
    ("broker-not-host-port", site(head="mqtt:\n  client_id: scada\n  broker: localhost\n"), "broker:", 1,
     ["mqtt.broker", "'localhost' is not host:port"]),
    ("unknown-key-under-modem-server", site(head="modem_server:\n  listen: 0.0.0.0:5020\n  idle_timout: 5m\n"),
     "idle_timout", 1, ["'idle_timout'", "modem_server", "did you mean 'idle_timeout'?"]),
]


@pytest.mark.parametrize("text, needle, occurrence, fragments", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_error_is_on_its_line_and_names_the_value(write, line_of, text, needle, occurrence, fragments):
    """Each mistake is one error, on the line of the bad value, saying what is wrong with it."""
    path = write(text)
    problem = the_problem(path)
    assert problem.is_error
    assert problem.line == line_of(path, needle, occurrence), str(problem)
    first = line_of(path, needle)
    for fragment in fragments:
        assert fragment.replace("{first}", str(first)) in problem.message, str(problem)
    assert str(problem).startswith(f"{path}:{problem.line}: ")


def test_unknown_decoder_lists_the_known_ones(write, line_of):
    """An unknown decoder is named, every shipped decoder is listed, and rules on its tags are not echoed."""
    path = write(site(LORA + """
            - name: lx
              dev_eui: 70B3D59BA0000101
              decoder: pulse_counter
        """, tail="alarms:\n  - {name: leak, type: limit, tag: lx.volume_m3, hi: 1}\n"))
    problem = the_problem(path)
    assert problem.line == line_of(path, "decoder: pulse_counter")
    assert "channels[0].devices[0].decoder: device 'lx': unknown decoder 'pulse_counter'" in problem.message
    assert f"known decoders: {', '.join(decoders.names())}" in problem.message
    assert {"pulse_counter_le", "vega_si11"} <= set(decoders.names())


BAD_OPTION = LORA + """
            - name: lx
              dev_eui: 70B3D59BA0000101
              decoder: pulse_counter_le
              decoder_options:
                litres_per_pulse: 0
"""


def test_bad_decoder_option_names_the_option_and_value(write):
    """A decoder option the decoder refuses: one error naming the device, the option and its value."""
    problem = the_problem(write(site(BAD_OPTION)))
    assert "device 'lx'" in problem.message
    assert "litres_per_pulse: 0 is not a finite number > 0" in problem.message


def test_bad_decoder_option_is_on_the_options_line(write, line_of):
    """The error sits on the decoder_options (not the decoder) line, with that path."""
    path = write(site(BAD_OPTION))
    problem = the_problem(path)
    assert "channels[0].devices[0].decoder_options" in problem.message
    assert problem.line in (line_of(path, "decoder_options:"), line_of(path, "litres_per_pulse: 0"))


RTU_OVER_MQTT = """
- name: mb
  type: modbus-rtu
  description: RTU meters
  transport:
    mqtt: "application/#"
  devices: [{name: d1, address: 1, profile: heat}]
"""


def test_modbus_channel_with_mqtt_transport(write):
    """A transport kind the channel type cannot use: one error naming both and what the type takes."""
    problem = the_problem(write(site(RTU_OVER_MQTT)))
    assert "a modbus-rtu channel cannot use a 'mqtt' transport; it takes serial, tcp or modem" in problem.message


def test_modbus_channel_with_mqtt_transport_is_on_the_transport_line(write, line_of):
    """The unusable transport is reported where it is written."""
    path = write(site(RTU_OVER_MQTT))
    assert the_problem(path).line == line_of(path, "transport:")


def test_connect_on_serial_block_style_is_on_the_connect_line(write, line_of):
    """``connect`` under a serial port, written one key per line: the error is on the connect line."""
    path = write(site("""
        - name: mb
          type: modbus-rtu
          transport:
            serial: /dev/ttyUSB0
            rs485: {termination: true}
            connect: "daily 01:00-01:30"
          devices: [{name: d1, address: 1, profile: heat, termination: true}]
        """))
    assert the_problem(path).line == line_of(path, "connect:")


def test_broken_modem_server_is_not_echoed_by_modem_channels(write, line_of):
    """With modem_server itself broken, its channels are not also told there is no modem_server."""
    path = write(site(MODEM_CHANNEL, head="modem_server:\n  id_pattern: '('\n"))
    problem = the_problem(path)
    assert problem.line == line_of(path, "id_pattern:")


def test_empty_modem_server_section_means_defaults(write):
    """``modem_server:`` with nothing under it gives the documented defaults and serves modem channels."""
    config, warnings = load_config(write(site(MODEM_CHANNEL, head="modem_server:\n")))
    assert warnings == []
    server = config.modem_server
    assert (server.listen, server.id_pattern, server.identify_timeout) == ("0.0.0.0:5020", r"^(?P<id>\d{15})", 30.0)
    assert [t.name for t in server.modem_types()] == ["default"]


def test_unknown_alarm_tag_of_uplink_and_hand_read_meters(write, line_of):
    """A rule naming a point such a meter does not have: an error at the tag, with the nearest point."""
    path = write(site(LORA + """
            - name: lx
              dev_eui: 70B3D59BA0000101
              decoder: pulse_counter_le
              decoder_options: {litres_per_pulse: 10}
        - name: hand
          type: manual
          devices:
            - name: hx
              points: [{name: volume_m3, unit: m3}]
        """, tail="""\
        alarms:
          - {name: a, type: limit, tag: lx.volme_m3, hi: 1}
          - {name: b, type: limit, tag: hx.volum_m3, hi: 1}
        """))
    first, second = problems_of(path)
    assert first.line == line_of(path, "lx.volme_m3")
    assert "rule 'a': unknown tag 'lx.volme_m3': device 'lx' has no point 'volme_m3'" in first.message
    assert "(did you mean 'volume_m3'?)" in first.message
    assert second.line == line_of(path, "hx.volum_m3")
    assert "rule 'b': unknown tag 'hx.volum_m3': device 'hx' has no point 'volum_m3'" in second.message


def test_tag_of_lorawan_meter_without_decoder_warns_without_calling_it_mbus(write, line_of):
    """Its points come from ChirpStack's decoded object: a warning that says so, not an M-Bus one."""
    path = write(site(LORA + """
            - {name: lx, dev_eui: 70B3D59BA0000101}
        """, tail="alarms:\n  - {name: a, type: limit, tag: lx.volume_m3, hi: 1}\n"))
    _config, warnings = load_config(path)
    (warning,) = warnings
    assert warning.line == line_of(path, "lx.volume_m3")
    assert "'lx.volume_m3'" in warning.message
    assert "M-Bus" not in warning.message


def test_point_name_twice_in_a_device(write, line_of):
    """Two points of one name in a device would be one tag: an error at the second."""
    path = write(site("""
        - name: hand
          type: manual
          devices:
            - name: hx
              points:
                - {name: volume_m3, unit: m3}
                - {name: volume_m3, unit: m3}
        """))
    problem = the_problem(path)
    assert problem.line == line_of(path, "name: volume_m3", 2)
    assert "'volume_m3'" in problem.message


def test_point_name_must_fit_a_tag_name(write, line_of):
    """A point name with a dot or a space is refused, as profile point names are."""
    path = write(site("""
        - name: hand
          type: manual
          devices:
            - name: hx
              points:
                - {name: volume.m3, unit: m3}
        """))
    problem = the_problem(path)
    assert problem.line == line_of(path, "volume.m3")
    assert "'volume.m3'" in problem.message


# --------------------------------------------------------- pure helpers


@pytest.mark.parametrize("unit, flag, expected", [
    ("m3", None, True), ("m³", None, True), (" kWh ", None, True), ("Gcal", None, True), ("GJ", None, True),
    ("m3/h", None, False), ("°C", None, False), ("", None, False), (None, None, False),
    ("m3", False, False), ("°C", True, True), ("", True, True),
])
def test_is_cumulative(unit, flag, expected):
    """Counters' units are cumulative by default; an explicit flag wins either way."""
    assert is_cumulative(unit, flag) is expected


def test_cumulative_units_are_counters_only():
    """Rates and temperatures are never in the unit list."""
    assert not {"m3/h", "kW", "°C", "bar", "%"} & CUMULATIVE_UNITS


def test_compile_bytes_pattern_reads_xff_either_way():
    """'\\xff' single-quoted (a regex escape) and "\\xff" double-quoted (one character) both mean byte 0xFF."""
    single = yaml.safe_load(r"p: '^\xff\x00'")["p"]
    double = yaml.safe_load(r'p: "^\xff\x00"')["p"]
    assert single == "^\\xff\\x00" and double == "^\xff\x00"
    for text in (single, double):
        pattern = compile_bytes_pattern(text)
        assert pattern.match(b"\xff\x00rest")
        assert not pattern.match(b"\xfe\x00")


def test_compile_bytes_pattern_matches_any_byte_with_dot():
    """Binary packets may hold newlines, so '.' matches every byte."""
    assert compile_bytes_pattern("^A.B$").match(b"A\nB")
    assert compile_bytes_pattern(r"^(?P<id>\d+)").match(b"123\r\n").group("id") == b"123"


def test_compile_bytes_pattern_refuses_characters_beyond_a_byte():
    """A character outside Latin-1 has no single byte: an error naming the pattern and the fix."""
    with pytest.raises(ValueError, match=re.escape("heartbeat 'ПИНГ' has characters beyond one byte; write bytes "
                                                   "as \\xNN")):
        compile_bytes_pattern("ПИНГ", "heartbeat")


def test_compile_bytes_pattern_refuses_a_bad_regex():
    """A pattern that does not compile: an error naming it."""
    with pytest.raises(ValueError, match=r"^pattern '\(' is not a regular expression: "):
        compile_bytes_pattern("(")


def test_modem_types_put_the_default_last():
    """``types`` are tried first, in order; the top-level keys make the last, default type."""
    server = ModemServerConfig.model_validate({
        "id_pattern": r"^ID(?P<id>\d+);", "heartbeat": "^P$", "prefix": True,
        "types": [{"name": "b", "id_pattern": r"^(\d+)"}, {"name": "a", "id_pattern": r"^X(?P<id>\d+)"}]})
    types = server.modem_types()
    assert [(t.name, t.id_pattern, t.heartbeat, t.prefix) for t in types] == [
        ("b", r"^(\d+)", None, False), ("a", r"^X(?P<id>\d+)", None, False),
        ("default", r"^ID(?P<id>\d+);", "^P$", True)]


def test_check_decoder_normalises_options():
    """A known decoder's options come back with their defaults filled in."""
    assert check_decoder("pulse_counter_le", {"litres_per_pulse": 10}) == {
        "litres_per_pulse": 10.0, "initial_m3": 0.0, "counter_bits": 32, "point": "volume_m3"}
    with pytest.raises(ValueError, match="unknown decoder 'nope'; known decoders: "):
        check_decoder("nope", {})
