"""Tests for ``${NAME}`` / ``${NAME:-default}`` references in site and profile files."""

from __future__ import annotations

import copy
import io
import pickle

import pytest

from scada.config import ConfigError, check_main, load_config
from scada.config.envvars import EnvText, substitute
from scada.config.yaml_lines import load_yaml

SITE = """
site: {name: "${SITE_NAME:-Env district}"}
history:
  backend: influxdb
  url: http://${INFLUX_HOST:-influxdb}:8086
  database: ${INFLUX_DB}
  username: ${INFLUX_USER}
  password: ${INFLUX_PASSWORD}
  create_database: ${INFLUX_CREATE:-false}
  batch_size: ${INFLUX_BATCH:-2000}
api: {listen: "0.0.0.0:${API_PORT:-8080}"}
mqtt: {broker: "mosquitto:1883", username: scada, password: "${MQTT_PASSWORD}"}
"""

ENV = {"INFLUX_DB": "metering", "INFLUX_USER": "engine", "INFLUX_PASSWORD": "12345", "MQTT_PASSWORD": "on"}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    """Return a function setting exactly the given test variables (others of the tests unset)."""
    names = {"SITE_NAME", "INFLUX_HOST", "INFLUX_DB", "INFLUX_USER", "INFLUX_PASSWORD", "INFLUX_CREATE",
             "INFLUX_BATCH", "API_PORT", "MQTT_PASSWORD", "MQTT_PORT", "UNSET_ONE", "UNSET_TWO", "PLAIN"}

    def set_env(values: dict[str, str]) -> None:
        """Unset every test variable, then set ``values``."""
        for name in names:
            monkeypatch.delenv(name, raising=False)
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_env


def test_values_defaults_and_types(write, env) -> None:
    env(ENV)
    cfg, _warnings = load_config(write(SITE))
    assert cfg.site.name == "Env district"
    assert cfg.history.url == "http://influxdb:8086"
    assert cfg.history.database == "metering"
    # Text keys keep text even when it reads as a number or a YAML boolean.
    assert cfg.history.password == "12345" and cfg.mqtt.password == "on"
    # Typed keys get the YAML reading of a whole-reference value.
    assert cfg.history.create_database is False
    assert cfg.history.batch_size == 2000
    assert cfg.api.port == 8080


def test_set_values_override_defaults(write, env) -> None:
    env({**ENV, "INFLUX_CREATE": "true", "INFLUX_BATCH": "7", "API_PORT": "9090", "SITE_NAME": "Север"})
    cfg, _ = load_config(write(SITE))
    assert (cfg.history.create_database, cfg.history.batch_size, cfg.api.port) == (True, 7, 9090)
    assert cfg.site.name == "Север"
    assert type(cfg.history.password) is str


def test_unset_variables_are_errors_at_their_lines(write, env, line_of) -> None:
    env({"INFLUX_DB": "metering"})
    path = write(SITE)
    out = io.StringIO()
    assert check_main(str(path), out) == 1
    printed = out.getvalue().splitlines()
    assert f"{path}:{line_of(path, 'username:')}: environment variable INFLUX_USER is not set" in printed
    assert f"{path}:{line_of(path, '  password:')}: environment variable INFLUX_PASSWORD is not set" in printed
    assert f"{path}:{line_of(path, 'mqtt:')}: environment variable MQTT_PASSWORD is not set" in printed
    assert "ok" not in printed


def test_unset_variable_collected_with_other_problems(write, env, line_of) -> None:
    env({})
    path = write("""
        site: {name: x}
        api: {listen: "${UNSET_ONE}"}
        history: {backend: nosuch}
        """)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    messages = [str(p) for p in caught.value.errors]
    assert f"{path}:{line_of(path, 'api:')}: environment variable UNSET_ONE is not set" in messages
    assert any(m.startswith(f"{path}:{line_of(path, 'history:')}:") and "nosuch" in m for m in messages)


def test_number_that_does_not_fit_is_reported_with_its_value(write, env, line_of) -> None:
    env({"MQTT_PORT": "not-a-number"})
    path = write("""
        site: {name: x}
        history: {batch_size: "${MQTT_PORT}"}
        """)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (problem,) = caught.value.errors
    assert problem.line == line_of(path, "batch_size")
    assert "not-a-number" in problem.message


def test_retyped_value_out_of_range_says_so(write, env) -> None:
    env({"MQTT_PORT": "0"})
    path = write("""
        site: {name: x}
        history: {batch_size: "${MQTT_PORT}"}
        """)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "0" in caught.value.errors[0].message and "expected" not in caught.value.errors[0].message


def test_references_in_profile_files(write, env, tmp_path) -> None:
    env({"PLAIN": "3"})
    write("""
        points:
          - {name: volume_m3, function: holding, register: "${PLAIN}", type: u32, unit: m3}
        """, "meter.yaml", tmp_path / "profiles")
    path = write("""
        site: {name: x}
        channels:
          - name: c1
            type: modbus-rtu
            transport: {serial: /dev/ttyUSB0}
            devices: [{name: d1, address: 1, profile: meter}]
        """)
    cfg, _ = load_config(path)
    assert cfg.profiles["meter"].points[0].register == 3


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("plain text", {}, "plain text"),
        ("${A}", {"A": "x"}, "x"),
        ("${A:-d}", {}, "d"),
        ("${A:-d}", {"A": ""}, "d"),  # `:-` as in the shell: unset or empty
        ("${A}", {"A": ""}, ""),  # set but empty is a value
        ("${A:-}", {}, ""),
        ("a-${A}-${B:-b}", {"A": "1"}, "a-1-b"),
        ("$${A}", {"A": "x"}, "${A}"),  # escaped
        ("$$${A}", {"A": "x"}, "$${A}"),  # read left to right: `$`, then the escape `$${`
        ("cost $5 and $HOME", {}, "cost $5 and $HOME"),  # a bare `$` is not a reference
        ("${A:-http://h:1/p}", {}, "http://h:1/p"),
        ("${A}", {"A": "${B}"}, "${B}"),  # values are not substituted again
    ],
)
def test_substitute(text: str, environ: dict[str, str], expected: str) -> None:
    value, problems = substitute(text, environ)
    assert (value, problems) == (expected, [])


@pytest.mark.parametrize("text", ["${1A}", "${A", "${}", "${A:+x}", "x ${A-b}"])
def test_malformed_references(text: str) -> None:
    value, problems = substitute(text, {"A": "x"})
    assert value == text
    assert len(problems) == 1 and "malformed environment reference" in problems[0][1]


def test_whole_reference_is_env_text_with_yaml_reading() -> None:
    cases = {"1883": 1883, "true": True, "off": False, "2.5": 2.5, "": None, "abc": "abc", "[1, 2]": "[1, 2]",
             "a: b": "a: b", "'quoted": "'quoted"}
    for raw, typed in cases.items():
        value, _ = substitute("${X}", {"X": raw})
        assert isinstance(value, EnvText) and value == raw and value.typed == typed
    partial, _ = substitute("port ${X}", {"X": "1"})
    assert type(partial) is str


def test_env_text_copies_and_pickles() -> None:
    value = EnvText("42", "${X}")
    assert copy.deepcopy(value) == "42" and pickle.loads(pickle.dumps(value)) == "42"


def test_keys_are_not_substituted_and_lines_stay() -> None:
    text = "a:\n  ${K}: 1\n  b: ${V}\nc: |\n  first\n  ${MISSING}\n"
    data, lines, problems = load_yaml(text, "f.yaml", {"K": "k", "V": "v"})
    assert data == {"a": {"${K}": 1, "b": "v"}, "c": "first\n${MISSING}\n"}
    assert lines[("a", "b")] == 3
    assert [(p.line, p.message) for p in problems] == [(6, "environment variable MISSING is not set")]


def test_without_environ_nothing_is_substituted() -> None:
    data, _lines, problems = load_yaml("a: ${X}\n", "f.yaml")
    assert data == {"a": "${X}"} and problems == []


def test_aliased_reference_reported_once() -> None:
    text = "a: &p ${MISSING}\nb: *p\nc: [*p]\n"
    _data, _lines, problems = load_yaml(text, "f.yaml", {})
    assert [(p.line, p.message) for p in problems] == [(1, "environment variable MISSING is not set")]
