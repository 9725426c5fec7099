# -*- test-case-name: tests.channels.lorawan.test_decoders -*-
"""Payload decoders for LoRaWAN / NB-IoT meter uplinks, chosen per device by name.

A device's configuration names its decoder (``decoder: pulse_counter_le``);
the decoder is the module of that name in this package.  Decoders are pure:
functions over bytes with no I/O, no clock and no Twisted, so one module
serves the uplink channel, the simulators and the tests alike.

A decoder module exposes:

- ``NAME``: its name, the same as the module's;
- ``check_options(options) -> dict``: the device's ``decoder_options``
  validated and normalised (defaults filled in); ``ValueError`` naming the bad
  key and value.  Idempotent: normalised options pass unchanged;
- ``points(options) -> list[PointDef]``: the points a device publishes;
- ``decode(payload, fport, options, state) -> Decoded``: one uplink's values.
  ``fport`` is ``None`` for transports without ports (NB-IoT).  ``state`` is
  the device's mutable memory (counter wraps and resets); it holds only
  numbers (in nested dicts), so it can be kept as JSON, is changed only
  when decoding succeeds, and starts as ``{}``.  Anything wrong with the payload raises :class:`DecodeError`;
- ``encode(values, ts, options, fport) -> (fport, bytes)``: the inverse, for
  simulated devices; ``ValueError`` for values it cannot encode.

The functions accept raw or normalised options (they normalise again).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Protocol

#: What a decoder's module name may look like; anything else is never imported.
_NAME = re.compile(r"[a-z0-9_]+")


class PointDef(NamedTuple):
    """One point a decoder publishes for a device: the ``<point>`` half of a tag name.

    ``cumulative`` marks a register that only grows (a meter's total), the
    values billing takes differences of.
    """

    name: str
    unit: str
    cumulative: bool
    description: str = ""


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one uplink says.

    ``values`` maps point names to values; a point absent from it has no new
    value in this uplink.  ``ts`` is the device's own reading time in Unix
    seconds, or ``None`` when the payload has none (or none plausible): the
    caller then uses the reception time.  ``status`` holds flags and
    diagnostics (``{"counter_reset": 1}``, ``{"alarm": 1}``) that are not points.
    """

    values: dict[str, float]
    ts: float | None = None
    status: dict[str, float] = field(default_factory=dict)


class DecodeError(ValueError):
    """A payload the decoder cannot make sense of: wrong length, port or packet type."""


class Decoder(Protocol):
    """The shape of a decoder module (see the package docstring)."""

    NAME: str

    def check_options(self, options: Mapping[str, Any] | None) -> dict:
        """Return the options validated and normalised; ``ValueError`` naming the bad key."""

    def points(self, options: Mapping[str, Any] | None) -> list[PointDef]:
        """Return the points a device with these options publishes."""

    def decode(self, payload: bytes, fport: int | None, options: Mapping[str, Any] | None,
               state: dict) -> Decoded:
        """Decode one uplink; raise :class:`DecodeError` for a bad payload."""

    def encode(self, values: Mapping[str, float], ts: float | None, options: Mapping[str, Any] | None,
               fport: int) -> tuple[int, bytes]:
        """Return the ``(fport, payload)`` a device would send for these values."""


def names() -> list[str]:
    """Return the names of the decoders shipped in this package, sorted."""
    return sorted(info.name for info in pkgutil.iter_modules(__path__)
                  if not info.ispkg and _is_decoder_name(info.name))


def get(name: str) -> Decoder:
    """Return the decoder module called ``name``.

    ``KeyError`` with a message listing the known decoders when there is none
    of that name.  Only names of lowercase letters, digits and underscores
    (not starting with one) are looked up, so configuration text never
    reaches the import system.
    """
    if not isinstance(name, str) or not _is_decoder_name(name):
        raise KeyError(_unknown(name))
    qualified = f"{__name__}.{name}"
    try:
        module = importlib.import_module(qualified)
    except ModuleNotFoundError as exc:
        # Only a missing decoder is "unknown"; a decoder that fails to import is a bug to show.
        if exc.name != qualified:
            raise
        raise KeyError(_unknown(name)) from None
    return module  # type: ignore[return-value]


def _is_decoder_name(name: str) -> bool:
    """Tell whether ``name`` may name a decoder (helper modules start with ``_``)."""
    return bool(_NAME.fullmatch(name)) and not name.startswith("_")


def _unknown(name: object) -> str:
    """Return the message for a decoder name that does not exist."""
    return f"unknown decoder {name!r}; known decoders: {', '.join(names())}"
