# -*- test-case-name: tests.scada.test_api_alarms -*-
"""What the API's blueprints share: JSON errors, JSON bodies, the answer language, text fields.

Every helper that reads the request raises ValueError with a message meant
for the caller; the handler answers it with :func:`error` (a 400).
"""

from __future__ import annotations

from sanic.response import HTTPResponse, json

#: Languages of messages and headers (``?lang=``); the first is the default.
LANGUAGES = ("ru", "en")


def error(message: str, status: int = 400) -> HTTPResponse:
    """Return the API's error answer: ``{"error": message}`` with ``status``."""
    return json({"error": message}, status=status)


def json_body(request, what: str = "", required: bool = False) -> dict:
    """Return the request's body, a JSON object; raise ValueError saying what is wrong otherwise.

    No body (or ``null``) is ``{}``; with ``required`` it, and ``{}``, are
    refused like a body that is not an object.  ``what`` is added to that
    message to say what the object should hold, e.g.
    ``'{"username": ..., "password": ...}'``.
    """
    shape = "the body must be a JSON object" + (f" {what}" if what else "")
    body = None
    if request.body:
        try:
            body = request.json
        except Exception:  # noqa: BLE001 - Sanic raises its own BadRequest subclasses (and RecursionError)
            raise ValueError("the body is not valid JSON") from None
    if body is None:
        body = {}
    if not isinstance(body, dict) or (required and not body):
        raise ValueError(shape)
    return body


def lang(request) -> str:
    """Return the language the caller asked for with ``?lang=`` (``ru`` or ``en``); ``ru`` for anything else."""
    value = request.args.get("lang", LANGUAGES[0])
    return value if value in LANGUAGES else LANGUAGES[0]


def check_text(value: str, key: str) -> str:
    """Return ``value`` if it can be stored and sent as UTF-8; raise ValueError naming ``key`` otherwise.

    JSON lets a string hold an unpaired surrogate (``"\\ud800"``), which
    no UTF-8 text (the journal, an answer, a log line) can carry.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = value[exc.start]
        raise ValueError(f"{key!r} is not valid UTF-8 text: it holds the unpaired surrogate {ascii(bad)}") from None
    return value


def text_field(body: dict, key: str, required: bool = False, max_length: int | None = None) -> str:
    """Return ``body[key]`` as text without surrounding blanks (``""`` if missing or null).

    Raises ValueError naming ``key`` when it is not a string, not valid
    UTF-8, blank while ``required``, or longer than ``max_length``.
    """
    value = body.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string, not {type(value).__name__}")
    value = check_text(value, key).strip()
    if required and not value:
        raise ValueError(f"{key!r} is required")
    if max_length is not None and len(value) > max_length:
        raise ValueError(f"{key!r} is longer than {max_length} characters")
    return value
