# -*- test-case-name: tests.scada.test_manual,tests.scada.test_registry -*-
"""Checks of the values an API caller sends, with messages that name the field and show the value.

Shared by the manual readings (:mod:`scada.manual`) and the registry's
meter events (:mod:`scada.registry`).
"""

from __future__ import annotations

from typing import Any


def shown(value: Any) -> str:
    """Return a value for an error message, cut short if long."""
    if isinstance(value, (dict, list)):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'}"
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def checked_text(value: Any, name: str, limit: int) -> str:
    """Return ``value`` stripped of surrounding blanks.

    Raises ValueError naming the field (``name``, quoted as the caller's
    messages quote it) if the value is not text, not UTF-8 or longer than
    ``limit`` characters.
    """
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {shown(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not valid UTF-8 text (it holds an unpaired surrogate)") from None
    value = value.strip()
    if len(value) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")
    return value
