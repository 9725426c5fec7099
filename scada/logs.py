# -*- test-case-name: tests.scada.test_logs -*-
"""Log output of the ``scada`` command: text lines, or one JSON object per line.

``text`` (the default) is for people: ``2026-01-15 10:00:00,123 INFO    scada.app: site 'demo' running``.
``json`` is for log collectors (journald, Loki, Elasticsearch): every line
on stderr is one object::

    {"ts": "2026-01-15T07:00:00.123Z", "level": "INFO", "logger": "scada.app", "message": "site 'demo' running"}

plus ``exc`` (the traceback text) when there is one, and any ``extra=``
fields of the call.  Text stays UTF-8 (Russian alarm texts are readable,
not ``\\uXXXX``).  Sanic's loggers and Twisted's log system (its own
``twisted.logger``, which reports unhandled errors in Deferreds and
protocol failures) go through the same handler, as do Python warnings.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from typing import Any, TextIO

#: The log formats ``--log-format`` accepts.
FORMATS = ("text", "json")
#: The environment variable that gives the default format.
ENV = "SCADA_LOG_FORMAT"
#: The line format of ``text``.
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
#: Loggers that are chatty at INFO; the engine's own lines matter.
NOISY = ("sanic.access", "sanic.root", "sanic.server", "pymodbus", "twisted")

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}
#: Keys of the JSON object the formatter writes itself; an ``extra=`` field of the same name is renamed.
BASE_KEYS = ("ts", "level", "logger", "message", "exc", "stack")

_active: str | None = None
_handler: logging.Handler | None = None
_twisted_routed = False


def default_format(environ: dict[str, str] | None = None) -> str:
    """Return the format ``SCADA_LOG_FORMAT`` asks for ("text" when unset or empty).

    Raises ValueError naming the value if it is not one of :data:`FORMATS`.
    """
    value = (os.environ if environ is None else environ).get(ENV, "").strip().lower()
    if not value:
        return "text"
    if value not in FORMATS:
        raise ValueError(f"{ENV}={value!r}: expected one of {', '.join(FORMATS)}")
    return value


def active_format() -> str | None:
    """Return the format :func:`setup` installed, or None before it was called."""
    return _active


def iso_ms(created: float) -> str:
    """Return a log record's time as ISO 8601 UTC with milliseconds and ``Z``."""
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class JsonFormatter(logging.Formatter):
    """Format a record as one line of JSON: ts, level, logger, message, exc, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON object on one line (newlines in texts are escaped)."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad %-format must not lose the line, nor print a traceback
            message = f"{record.msg!r} % {record.args!r} (the arguments do not fit the format)"
        out: dict[str, Any] = {"ts": iso_ms(record.created), "level": record.levelname, "logger": record.name,
                               "message": message}
        if record.exc_info:
            if not record.exc_text:
                try:
                    record.exc_text = self.formatException(record.exc_info)
                except Exception:  # noqa: BLE001 - Twisted's cleaned failures carry fake tracebacks
                    kind, value = record.exc_info[0], record.exc_info[1]
                    record.exc_text = f"{getattr(kind, '__name__', kind)}: {value}"
        if record.exc_text:
            out["exc"] = record.exc_text
            if not message:
                # Twisted logs a failure as an event without text: say what it was.
                out["message"] = record.exc_text.rstrip().rpartition("\n")[2]
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key in _STANDARD or key.startswith("_"):
                continue
            out[f"extra_{key}" if key in BASE_KEYS else key] = _finite(value)
        return json.dumps(out, ensure_ascii=False, default=_plain, allow_nan=False)


def _plain(value: Any) -> Any:
    """Return a JSON-able stand-in for ``value`` (its text)."""
    return str(value)


def _finite(value: Any) -> Any:
    """Return ``value`` with non-finite floats (not JSON) written as text, inside lists and dicts too."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_finite(v) for v in value]
    return value


def setup(verbose: bool = False, fmt: str = "text", stream: TextIO | None = None) -> logging.Handler | None:
    """Send every log line to ``stream`` (default stderr) as ``fmt``; return the handler put on the root logger.

    Calling it again replaces the handler it installed before (switching
    the format).  With ``json`` on stderr, stderr writes UTF-8.  Twisted's
    logs and Python warnings are routed into :mod:`logging` too.  Without a
    ``stream``, when logging is set up already (an embedding program, a test
    runner), its handlers are left alone and None is returned, as
    :func:`logging.basicConfig` would.
    """
    global _active, _handler
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: expected one of {', '.join(FORMATS)}")
    root = logging.getLogger()
    if stream is None:
        if any(handler is not _handler for handler in root.handlers):
            return None
        if fmt == "json":
            reconfigure = getattr(sys.stderr, "reconfigure", None)
            if reconfigure is not None:
                # A collector reads bytes: JSON lines are UTF-8 whatever the locale (LANG=C in a container).
                reconfigure(encoding="utf-8", errors="backslashreplace")
        handler: logging.Handler = _Stderr()
    else:
        handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    _handler = handler
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if stream is None:
        route_twisted()
        logging.captureWarnings(True)
    _active = fmt
    return handler


class _Stderr(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when a line is written."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        """Return the current ``sys.stderr``."""
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """Ignore: the stream is always the current ``sys.stderr``."""


def route_twisted() -> None:
    """Send Twisted's log events (``twisted.logger``) to the ``twisted`` logger of :mod:`logging`, once.

    Until then Twisted prints critical events (an unhandled error in a
    Deferred) to stderr as plain text of its own.
    """
    global _twisted_routed
    if _twisted_routed:
        return
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    # Standard I/O stays as it is: `scada simulate` prints its endpoints on stdout.
    globalLogBeginner.beginLoggingTo([STDLibLogObserver(name="twisted")], redirectStandardIO=False)
    _twisted_routed = True
