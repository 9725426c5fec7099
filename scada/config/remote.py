# -*- test-case-name: tests.scada.config.test_config_remote -*-
"""Configuration of meters that are not on a local wire: modems, LoRaWAN, NB-IoT, hand-read meters.

- ``modem_server:`` — the TCP port GPRS modems dial in to, and how each
  modem type identifies itself (registration packet, heartbeats);
  a channel reaches its bus through a modem with ``transport: {modem: ID}``.
- ``mqtt:`` — the broker the ChirpStack MQTT integration publishes to.
- ``points:`` of a device — the registers of a LoRaWAN/NB-IoT meter without a
  payload decoder, or of a meter that is read by hand.

Whether a register is *cumulative* (it only grows, like a volume or an
energy counter) decides whether a lower manual reading is refused;
:func:`is_cumulative` decides it from the unit unless the point says so.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Optional

from pydantic import AfterValidator, Field

from .problems import show_value
from .types import ConfigModel, NonNegative, PositiveDuration

#: Units of registers that only grow (volume and energy counters).
CUMULATIVE_UNITS = frozenset({"m3", "m³", "l", "L", "kWh", "Wh", "MWh", "Gcal", "GJ", "kvarh"})


def is_cumulative(unit: str, flag: bool | None = None) -> bool:
    """Tell whether a register only grows: ``flag`` if given, else whether ``unit`` is a counter's unit."""
    if flag is not None:
        return flag
    return (unit or "").strip() in CUMULATIVE_UNITS


def compile_bytes_pattern(value: str, what: str = "pattern") -> re.Pattern[bytes]:
    """Compile a YAML string as a regular expression over bytes (each character one byte, Latin-1).

    ``"\\xff"`` in a double-quoted YAML string and ``'\\xff'`` in a
    single-quoted one both mean the byte 0xFF.  Raise ValueError naming the
    pattern.
    """
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{what} {show_value(value)} has characters beyond one byte; write bytes as \\xNN") from None
    try:
        return re.compile(raw, re.DOTALL)
    except re.error as exc:
        raise ValueError(f"{what} {show_value(value)} is not a regular expression: {exc}") from None


def _check_id_pattern(value: str) -> str:
    """Accept a bytes regex with a group ``id`` (or at least one group) for the modem's ID."""
    pattern = compile_bytes_pattern(value, "id_pattern")
    if "id" not in pattern.groupindex and pattern.groups < 1:
        raise ValueError(f"id_pattern {show_value(value)} needs a group for the ID, e.g. '^LOGIN:(?P<id>\\d+)\\r\\n'")
    if pattern.match(b""):
        raise ValueError(f"id_pattern {show_value(value)} matches no bytes at all; it must match the registration "
                         "packet")
    return value


def _check_heartbeat(value: str) -> str:
    """Accept a bytes regex that cannot match an empty packet."""
    pattern = compile_bytes_pattern(value, "heartbeat")
    if pattern.match(b""):
        raise ValueError(f"heartbeat {show_value(value)} matches no bytes at all; it must match the heartbeat packet")
    return value


def _check_modem_id(value: str) -> str:
    """Accept a modem ID as the registration packet carries it: 1-80 printable characters."""
    if not 1 <= len(value) <= 80 or any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(f"{show_value(value)} is not a modem ID (1-80 printable characters, no spaces), "
                         "e.g. an IMEI '860000000000001'")
    return value


def _host_port(value: str) -> str:
    """Accept ``host:port`` as the other addresses of a site file do."""
    from .model import _check_host_port

    return _check_host_port(value)


HostPort = Annotated[str, AfterValidator(_host_port)]
IdPattern = Annotated[str, AfterValidator(_check_id_pattern), Field(examples=[r"^(?P<id>\d{15})"])]
Heartbeat = Annotated[str, AfterValidator(_check_heartbeat), Field(examples=[r"^PING\r?\n"])]
ModemId = Annotated[str, AfterValidator(_check_modem_id), Field(examples=["860000000000001"])]


class ModemTypeConfig(ConfigModel):
    """How one kind of GPRS modem identifies itself and keeps its connection alive."""

    name: Annotated[str, Field(min_length=1)]
    #: Regular expression over the first bytes of a connection; group ``id`` is the modem's ID.
    id_pattern: IdPattern
    #: Regular expression of a heartbeat packet, stripped from the stream and counted.
    heartbeat: Optional[Heartbeat] = None
    #: The registration packet also precedes every packet the modem sends (stripped).
    prefix: bool = False


class ModemServerConfig(ConfigModel):
    """The ``modem_server:`` section: the TCP port that GPRS modems dial in to.

    The keys ``id_pattern``, ``heartbeat`` and ``prefix`` describe the
    default modem type; ``types`` lists others, tried first, in order.
    """

    listen: Annotated[HostPort, Field(examples=["0.0.0.0:5020"])] = "0.0.0.0:5020"
    id_pattern: IdPattern = r"^(?P<id>\d{15})"
    heartbeat: Optional[Heartbeat] = None
    prefix: bool = False
    #: A connection that has not identified itself as a configured modem is closed after this.
    identify_timeout: PositiveDuration = 30.0
    #: No byte at all (no heartbeat, no answer) for this long: the socket is half-open and closed.
    idle_timeout: PositiveDuration = 300.0
    #: This many poll timeouts in a row close the modem's socket, so that the modem redials.
    max_timeouts: Annotated[int, Field(ge=1, le=100)] = 3
    types: list[ModemTypeConfig] = []

    def modem_types(self) -> list[ModemTypeConfig]:
        """Return every modem type in the order they are tried: ``types``, then the default one."""
        default = ModemTypeConfig(name="default", id_pattern=self.id_pattern, heartbeat=self.heartbeat,
                                  prefix=self.prefix)
        return [*self.types, default]


class MqttConfig(ConfigModel):
    """The ``mqtt:`` section: the broker of the ChirpStack MQTT integration."""

    broker: Annotated[HostPort, Field(examples=["127.0.0.1:1883"])] = "127.0.0.1:1883"
    username: Optional[str] = None
    password: Optional[str] = None
    client_id: Annotated[str, Field(min_length=1, max_length=64)] = "scada"
    #: Simulated sites only: start a local ``mosquitto`` on ``broker``'s port (the demo's own broker).
    spawn: bool = False


def _point_name(value: str) -> str:
    """Accept a point name as half of a ``<device>.<point>`` tag name."""
    from .model import _check_name

    return _check_name(value)


class DevicePointConfig(ConfigModel):
    """One register of a meter that has no profile: read by hand, or sent in ChirpStack's ``object``."""

    name: Annotated[str, AfterValidator(_point_name)]
    unit: str = ""
    #: A register that only grows; by default decided by the unit (m3, kWh, Gcal…).
    cumulative: Optional[bool] = None
    deadband: NonNegative = 0.0
    description: str = ""


def check_decoder(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Return a decoder's options normalised; raise ValueError naming an unknown decoder or bad option."""
    from channels.lorawan import decoders

    try:
        module = decoders.get(name)
    except KeyError as exc:
        raise ValueError(exc.args[0] if exc.args else f"unknown decoder {name!r}") from None
    return module.check_options(dict(options))
