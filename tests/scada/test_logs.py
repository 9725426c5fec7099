"""``--log-format json``: one JSON object per line; ``--version``; where the option may stand."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import tomllib
from pathlib import Path

import pytest

from scada import logs
from scada.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def record(message: str, *args, level: int = logging.INFO, exc_info=None, extra: dict | None = None):
    """Return a log record as a logger would make it."""
    logger = logging.getLogger("scada.test")
    return logger.makeRecord(logger.name, level, __file__, 1, message, args, exc_info, extra=extra)


def line(rec) -> dict:
    text = logs.JsonFormatter().format(rec)
    assert "\n" not in text
    return json.loads(text)


def test_fields():
    """ts (ISO 8601 UTC, ms, Z), level, logger, message with its arguments."""
    out = line(record("channel %s: %d devices", "b1", 3, level=logging.WARNING))
    assert TS.match(out["ts"]) and out["level"] == "WARNING" and out["logger"] == "scada.test"
    assert out["message"] == "channel b1: 3 devices" and "exc" not in out


def test_time_is_utc_with_milliseconds():
    assert logs.iso_ms(1795244400.1239) == "2026-11-21T07:00:00.123Z"


def test_exception_text():
    """The traceback goes in ``exc``; a message with newlines stays one line."""
    try:
        1 / 0
    except ZeroDivisionError:
        rec = record("poll failed\nsecond line", exc_info=sys.exc_info())
    out = line(rec)
    assert out["message"] == "poll failed\nsecond line"
    assert out["exc"].startswith("Traceback") and "ZeroDivisionError: division by zero" in out["exc"]


def test_russian_text_stays_utf8():
    """Cyrillic is written as UTF-8, not \\uXXXX escapes, and the bytes are UTF-8 whatever the locale."""
    buffer = io.BytesIO()
    stream = io.TextIOWrapper(buffer, encoding="utf-8")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.emit(record("Температура подачи %s °C", 95))
    stream.flush()
    raw = buffer.getvalue()
    assert "Температура подачи 95 °C".encode() in raw and b"\\u" not in raw
    assert json.loads(raw.decode("utf-8"))["message"] == "Температура подачи 95 °C"


def test_extra_fields():
    """extra= fields are kept; one named like a base key is renamed; NaN and objects become text."""
    out = line(record("tick", extra={"channel": "b1", "count": 3, "ts": "mine", "value": float("nan"),
                                     "path": Path("/x"), "figures": {"a": [1.0, float("inf")]}}))
    assert out["channel"] == "b1" and out["count"] == 3 and out["extra_ts"] == "mine"
    assert TS.match(out["ts"]) and out["value"] == "nan" and out["path"] == "/x"
    assert out["figures"] == {"a": [1.0, "inf"]}


def test_bad_format_arguments_do_not_lose_the_line():
    out = line(record("%d devices", "many"))
    assert "%d devices" in out["message"] and "many" in out["message"]


def test_default_format_from_environment():
    assert logs.default_format({}) == "text"
    assert logs.default_format({"SCADA_LOG_FORMAT": " JSON "}) == "json"
    with pytest.raises(ValueError, match="SCADA_LOG_FORMAT='xml'"):
        logs.default_format({"SCADA_LOG_FORMAT": "xml"})


@pytest.fixture
def restore_logging(monkeypatch):
    """Let logs.setup run here without routing Twisted's global log; undo what it set."""
    monkeypatch.setattr(logs, "route_twisted", lambda: None)
    # Recorded now, put back when the test ends.
    monkeypatch.setattr(logs, "_handler", logs._handler)
    monkeypatch.setattr(logs, "_active", logs._active)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)


def test_setup_switches_format(restore_logging):
    """setup() installs one handler; a second call replaces it (text, then JSON)."""
    text, data = io.StringIO(), io.StringIO()
    first = logs.setup(False, "text", text)
    logs.setup(False, "json", data)
    assert first not in logging.getLogger().handlers and logs.active_format() == "json"
    logging.getLogger("scada.test").info("ок")
    logging.getLogger("sanic.root").info("chatty")  # noisy loggers stay at WARNING
    assert text.getvalue() == ""
    lines = data.getvalue().splitlines()
    assert [json.loads(x)["message"] for x in lines] == ["ок"]


def test_version(capsys):
    """``scada --version`` prints the package version, the one pyproject.toml gives."""
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert capsys.readouterr().out.strip() == f"scada {version}"
    import scada

    assert scada.__version__ == version


@pytest.mark.parametrize("argv, expected", [
    (["run"], None),
    (["--log-format", "json", "run"], "json"),
    (["run", "--log-format", "json"], "json"),
    (["--log-format", "json", "run", "--log-format", "text"], "text"),
    (["--log-format", "json", "simulate"], "json"),
    (["simulate", "--log-format", "json"], "json"),
])
def test_log_format_before_or_after_the_command(argv, expected):
    assert build_parser().parse_args(argv).log_format == expected


def test_bad_environment_value_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("SCADA_LOG_FORMAT", "yaml")
    assert main(["run", "-c", "nowhere.yaml"]) == 1
    assert capsys.readouterr().err.strip() == "scada: SCADA_LOG_FORMAT='yaml': expected one of text, json"
