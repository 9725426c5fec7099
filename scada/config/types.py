# -*- test-case-name: tests.scada.config.test_config_types -*-
"""Basic field types shared by the configuration models.

The site model (:mod:`scada.config.model`), the alarm parts
(:mod:`scada.config.alarms`) and the notifications section
(:mod:`scada.config.notify`) all build on these, so a duration or a
finite number is checked, worded and described in the JSON schema the
same way everywhere.  This module imports nothing but
:mod:`scada.config.durations` (and pydantic), so any model module can
import it without an import cycle.
"""

from __future__ import annotations

import math
from typing import Annotated, Callable
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

from .durations import parse_duration
from .problems import show_value

__all__ = ["DURATION_SCHEMA", "ConfigModel", "Duration", "Finite", "NonNegative", "Positive", "PositiveDuration",
           "check_finite", "check_not_negative", "check_positive", "check_positive_duration", "http_url_check"]


class ConfigModel(BaseModel):
    """The base of every configuration model: unknown keys are errors, no silent type coercion."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def check_finite(value: float) -> float:
    """Reject infinities and NaN (YAML .inf / .nan), which no meter value or limit can use."""
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    return value


def check_not_negative(value: float) -> float:
    """Reject negative numbers."""
    if value < 0:
        raise ValueError(f"{value:g} must not be negative")
    return value


def check_positive(value: float) -> float:
    """Reject zero and negative numbers."""
    if value <= 0:
        raise ValueError(f"{value:g} must be greater than zero")
    return value


def check_positive_duration(seconds: float) -> float:
    """Reject a zero duration where a period is needed."""
    if seconds <= 0:
        raise ValueError(f"{seconds:g} s is not a period; it must be longer than zero")
    return seconds


def http_url_check(example: str) -> Callable[[str], str]:
    """Return a validator accepting an http(s) URL with a host; its messages show ``example``."""

    def check(value: str) -> str:
        """Accept an http(s) URL with a host (and, if any, a valid port)."""
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ValueError(f"{show_value(value)} is not a URL such as {example!r}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{show_value(value)} is not an http(s) URL such as {example!r}")
        return value

    return check


#: What the JSON schema says a duration is: seconds, or a number with a unit.
DURATION_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\s*(\d+(\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*$"},
    ]
}

#: Seconds, written as a number or as ``300ms``/``30s``/``1.5m``/``1h``/``1d``.
Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(DURATION_SCHEMA)]
#: A duration longer than zero (a period, a timeout).
PositiveDuration = Annotated[Duration, AfterValidator(check_positive_duration)]
#: A finite float.
Finite = Annotated[float, AfterValidator(check_finite)]
#: A finite float, zero or more (a deadband).
NonNegative = Annotated[float, AfterValidator(check_finite), AfterValidator(check_not_negative)]
#: A finite float greater than zero (a rate, a count per period).
Positive = Annotated[float, AfterValidator(check_finite), AfterValidator(check_positive)]
