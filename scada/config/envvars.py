# -*- test-case-name: tests.scada.config.test_config_envvars -*-
"""Environment references in configuration files: ``${NAME}`` and ``${NAME:-default}``.

A container or a systemd unit hands secrets and host-specific values to
the engine through its environment, so a site file can say
``password: "${INFLUXDB_USER_PASSWORD}"`` instead of holding the secret.

The references are resolved in YAML string values after the YAML has been
parsed (:class:`scada.config.yaml_lines.LineLoader` calls
:func:`substitute` per scalar), so every line number stays the one in the
file and a reference can never inject YAML structure.  Mapping keys are
never substituted.

- ``${NAME}``: the variable's value; unset → an error naming it.
- ``${NAME:-default}``: the default when the variable is unset or empty
  (as in the shell); the default is literal text up to the first ``}``.
- ``$${`` is a literal ``${``; a ``$`` not followed by ``{`` is left alone.

A value that is exactly one reference comes back as :class:`EnvText`:
text that also knows its YAML reading (``"1883"`` → 1883, ``"true"`` →
True).  Validation is strict (no text for a number), so
:func:`validate_with_env_types` retries a failed validation with the YAML
reading of the env values pydantic rejected: ``port: ${MQTT_PORT:-1883}``
gives the number a port wants, while ``password: ${PW}`` stays text even
when the password is ``12345``.  Values inside free-form mappings
(``decoder_options``, ``sim``) accept anything, so there a reference stays
text.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, TypeVar

import yaml
from pydantic import ValidationError

T = TypeVar("T")

#: ``$${`` (an escaped ``${``), a well-formed reference, or any other ``${`` (malformed).
_TOKEN = re.compile(
    r"\$\$\{"
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
    r"|(?P<bad>\$\{[^}\s]*\}?)"
)
#: A value that consists of one reference and nothing else.
_WHOLE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}")
#: The YAML readings a retry may use: scalars only, never structure.
_SCALAR_TYPES = (bool, int, float, type(None))


class EnvText(str):
    """Text that was exactly one environment reference.

    It is an ordinary ``str`` to everything that reads it; ``typed`` is
    the value the text would have had if written into the YAML file in
    place of the reference (a number, true/false, null, or the text).
    """

    reference: str

    def __new__(cls, text: str, reference: str = "") -> "EnvText":
        """Make the text; ``reference`` is the ``${...}`` it came from (a default keeps copy and pickle working)."""
        self = super().__new__(cls, text)
        self.reference = reference
        return self

    @property
    def typed(self) -> Any:
        """Return the YAML reading of the text when it is a scalar, else the text itself."""
        try:
            value = yaml.safe_load(str(self))
        except yaml.YAMLError:
            return str(self)
        return value if isinstance(value, _SCALAR_TYPES) else str(self)


def substitute(text: str, environ: Mapping[str, str]) -> tuple[str, list[tuple[int, str]]]:
    """Resolve the references in one string value.

    Return ``(value, problems)``: ``value`` is the text with every
    reference resolved (an :class:`EnvText` when ``text`` is exactly one
    reference), or ``text`` unchanged when there is a problem;
    ``problems`` are ``(offset in text, message)`` pairs.
    """
    if "${" not in text:
        return text, []
    problems: list[tuple[int, str]] = []
    parts: list[str] = []
    end = 0
    for match in _TOKEN.finditer(text):
        parts.append(text[end:match.start()])
        end = match.end()
        if match.group("bad") is not None:
            problems.append((match.start(), f"malformed environment reference {match.group('bad')!r}: "
                                            "write ${NAME} or ${NAME:-default}, or $${ for a literal ${"))
        elif match.group("name") is None:
            parts.append("${")
        else:
            name, default = match.group("name"), match.group("default")
            value = environ.get(name)
            if default is not None and not value:
                value = default
            if value is None:
                problems.append((match.start(), f"environment variable {name} is not set"))
            else:
                parts.append(value)
    parts.append(text[end:])
    if problems:
        return text, problems
    value = "".join(parts)
    if _WHOLE.fullmatch(text):
        return EnvText(value, text), []
    return value, []


def validate_with_env_types(validate: Callable[[Any], T], raw: Any) -> T:
    """Return ``validate(raw)``; where it rejects an :class:`EnvText`, retry with its YAML reading.

    Only the values pydantic rejected are replaced, so a text field keeps
    the text even when it looks like a number.  The retry's own errors
    propagate (a port of ``${P}`` with ``P=99999`` is then "out of range",
    not "expected a number").
    """
    try:
        return validate(raw)
    except ValidationError as exc:
        rejected = {id(error["input"]): error["input"] for error in exc.errors()
                    if isinstance(error.get("input"), EnvText)}
        retyped = {key: value.typed for key, value in rejected.items() if not isinstance(value.typed, str)}
        if not retyped:
            raise
    return validate(_replace(raw, retyped))


def _replace(raw: Any, values: dict[int, Any]) -> Any:
    """Return a copy of ``raw`` (nested dicts and lists) with the objects of ``values`` (by id) replaced."""
    if id(raw) in values and isinstance(raw, EnvText):
        return values[id(raw)]
    if isinstance(raw, dict):
        return {key: _replace(value, values) for key, value in raw.items()}
    if isinstance(raw, list):
        return [_replace(item, values) for item in raw]
    return raw
