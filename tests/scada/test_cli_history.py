"""``scada history simulate``: bad arguments are one line on stderr and exit 1, never a traceback.

A real run (subprocess, SQLite on disk) is ``tests/integration/test_history_simulate.py``.
"""

from __future__ import annotations

import textwrap

import pytest

from scada.cli import main

SITE = textwrap.dedent("""\
    site: {{name: t, timezone: Europe/Moscow}}
    simulate: {simulate}
    channels:
      - name: bus
        type: modbus-rtu
        transport: {{tcp: 127.0.0.1:502}}
        devices:
          - {{name: kv01, address: 1, profile: generic_water_meter}}
    """)


@pytest.fixture()
def site(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(SITE.format(simulate="true"), encoding="utf-8")
    return path


@pytest.mark.parametrize("args, message", [
    (["--hourly", "5 weeks"], "--hourly '5 weeks': '5 weeks' is not a duration"),
    (["--daily=-3d"], "--daily '-3d': '-3d' is not a duration"),
    (["--hourly", "4000d"], "--hourly '4000d': at most 3650d"),
    (["--until", "next monday"], "--until 'next monday' is not an ISO 8601 date or date-time"),
    (["--until", "2999-01-01"], "--until '2999-01-01' is in the future"),
])
def test_bad_arguments_exit_1_with_one_line(site, capsys, args, message):
    """The value and what is wrong with it, on stderr; nothing written."""
    assert main(["history", "simulate", "-c", str(site), *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err
    assert not (site.parent / "var").exists()


def test_a_real_site_is_refused(tmp_path, capsys):
    """simulate: false: simulated samples must not mix with real readings."""
    path = tmp_path / "site.yaml"
    path.write_text(SITE.format(simulate="false"), encoding="utf-8")
    assert main(["history", "simulate", "-c", str(path)]) == 1
    assert "the site has simulate: false" in capsys.readouterr().err


def test_a_broken_config_is_reported_as_file_line(tmp_path, capsys):
    """The config's problems as FILE:LINE, exit 1."""
    path = tmp_path / "site.yaml"
    path.write_text("site: {name: t}\nsimulate_history: {hourly: soon}\n", encoding="utf-8")
    assert main(["history", "simulate", "-c", str(path)]) == 1
    assert f"{path}:2: simulate_history.hourly" in capsys.readouterr().err


def test_usage_mistakes_are_argparse_errors(site, capsys):
    """An unknown option is argparse's usage error (exit 2), like every other subcommand."""
    with pytest.raises(SystemExit) as info:
        main(["history", "simulate", "-c", str(site), "--weekly", "3"])
    assert info.value.code == 2
