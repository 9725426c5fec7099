# -*- test-case-name: tests.scada.config.test_config_load -*-
"""Turn pydantic validation errors into short messages that name the value."""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

from .problems import Path, format_path, show_value

_WHOLE_NUMBER = {"int_type", "int_parsing", "int_from_float"}
_NUMBER = {"float_type", "float_parsing", "finite_number"}
_BOOL = {"bool_type", "bool_parsing"}
_MAPPING = {"dict_type", "model_type", "model_attributes_type"}
_EMPTY = {"too_short", "string_too_short"}


def describe_error(error: dict[str, Any], root: Any, path: Path) -> str:
    """Return a one-line message for one pydantic error.

    ``root`` is the model validated at document ``path``; the error's
    ``loc`` is relative to it.  Used to suggest the nearest known key for a
    misspelt one.
    """
    # A bad mapping key is reported at "[key]" below the key itself.
    loc = tuple(part for part in error["loc"] if part != "[key]")
    kind = error["type"]
    value = error.get("input")
    shown = show_value(value)
    where = format_path(path + loc)
    if kind == "extra_forbidden":
        message = f"unknown key {show_value(loc[-1])} in {format_path(path + loc[:-1])}"
        model = _model_at(root, loc[:-1])
        if model is not None and isinstance(loc[-1], str):
            close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1)
            if close:
                message += f" (did you mean {close[0]!r}?)"
        return message
    if kind == "missing":
        return f"{format_path(path + loc[:-1])}: missing required key {show_value(loc[-1])}"
    if kind in _OWN:
        # Raised by our own model validators: the message is complete.
        return f"{where}: {error['msg']}"
    if kind in ("value_error", "assertion_error"):
        return f"{where}: {error.get('ctx', {}).get('error', error['msg'])}"
    if kind == "literal_error":
        expected = str(error.get("ctx", {}).get("expected", "")).replace("'", "")
        return f"{where}: {shown} is not one of {expected.replace(' or ', ', ')}"
    if kind == "string_type":
        return f"{where}: expected text, got {shown}"
    if kind in _WHOLE_NUMBER:
        return f"{where}: expected a whole number, got {shown}"
    if kind in _NUMBER:
        return f"{where}: expected a number, got {shown}"
    if kind in _BOOL:
        return f"{where}: expected true or false, got {shown}"
    if kind == "list_type":
        return f"{where}: expected a list, got {shown}"
    if kind in _MAPPING:
        return f"{where}: expected a mapping, got {shown}"
    if kind in _EMPTY:
        return f"{where}: must not be empty"
    # Rare kinds keep pydantic's own wording, which is short enough.
    return f"{where}: {error['msg'].lower()}, got {shown}"


#: PydanticCustomError kinds raised by model validators in scada.config.model.
_OWN = frozenset({"influx_v2", "influx_auth"}) | frozenset({
    # scada.config.alarms
    "alarm_levels", "alarm_order", "alarm_level_priority", "alarm_subject", "alarm_table",
    "status_bit", "status_priority"}) | frozenset({
    # scada.config.registry
    "registry_norm", "registry_premises", "registry_dates", "registry_unit"})


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``Optional`` around a type."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _model_at(root: Any, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Return the model class found at ``loc`` below ``root``, if any."""
    annotation = root
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            annotation = field.annotation
        elif get_origin(annotation) in (list, dict):
            annotation = get_args(annotation)[-1]
        else:
            return None
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None
