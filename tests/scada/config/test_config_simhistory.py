"""The ``simulate_history:`` section: spans, gaps naming devices, only with ``simulate: true``."""

from __future__ import annotations

import pytest

from scada.config import ConfigError, load_config

SITE = """
site: {{name: t}}
simulate: {simulate}
profiles:
  meter:
    points: [{{name: volume_m3, function: holding, register: 0, type: u32, scale: 0.001, unit: m3}}]
channels:
  - name: bus
    type: modbus-rtu
    transport: {{tcp: 127.0.0.1:502}}
    devices:
      - {{name: kv01, address: 1, profile: meter}}
      - {{name: kv02, address: 2, profile: meter}}
simulate_history:
{section}
"""


def site(write, section: str, simulate: str = "true"):
    return write(SITE.format(simulate=simulate, section=section))


def problems(path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(p) for p in info.value.problems]


def test_defaults_and_every_gap_form(write):
    """Spans as durations (default 35d/210d); gaps as months, relative months and ranges, kept as text."""
    cfg, warnings = load_config(site(write, "  gaps: {kv01: [month-1, 2026-02, [2026-03-05, 2026-03-06T12:00]]}"))
    assert warnings == []
    assert (cfg.simulate_history.hourly, cfg.simulate_history.daily) == (35 * 86400.0, 210 * 86400.0)
    assert cfg.simulate_history.gaps == {"kv01": ["month-1", "2026-02", "2026-03-05/2026-03-06T12:00"]}
    cfg, _ = load_config(site(write, "  hourly: 2d\n  daily: 0"))
    assert (cfg.simulate_history.hourly, cfg.simulate_history.daily, cfg.simulate_history.gaps) == (172800.0, 0.0, {})
    cfg, _ = load_config(site(write, ""))
    assert cfg.simulate_history.hourly == 35 * 86400.0
    cfg, _ = load_config(write("site: {name: t}\n"))
    assert cfg.simulate_history is None


def test_a_gap_of_an_unknown_device_is_named_at_its_line(write, line_of):
    """FILE:LINE of the device key, with a suggestion."""
    path = site(write, "  gaps:\n    kv03: [month-1]")
    assert problems(path) == [f"{path}:{line_of(path, 'kv03')}: simulate_history.gaps: no device named 'kv03' "
                              "(did you mean 'kv02'?)"]


@pytest.mark.parametrize("section, needle, message", [
    ("  gaps: {kv01: [month-0]}", "month-0", "count from 1"),
    ("  gaps: {kv01: [[2026-03-06, 2026-03-05]]}", "gaps:", "the start must be before the end"),
    ("  gaps: {kv01: [tomorrow]}", "gaps:", "is not a gap"),
    ("  hourly: 5 weeks", "hourly", "is not a duration"),
    ("  daily: 4000d", "daily", "at most 3650d"),
    ("  hours: 3d", "hours", "hours"),
])
def test_bad_values_are_reported(write, line_of, section, needle, message):
    """Each bad value is one problem at its line, naming it."""
    path = site(write, section)
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:{line_of(path, needle)}:") and message in problem


def test_ignored_without_simulate(write, line_of):
    """On a real site the section is a warning: it would mix simulated and real readings."""
    path = site(write, "  hourly: 1d", simulate="false")
    cfg, warnings = load_config(path)
    assert [str(w) for w in warnings] == [
        f"{path}:{line_of(path, 'simulate_history')}: warning: simulate_history is only used with simulate: "
        "true; it is ignored"]
