# -*- test-case-name: tests.scada.config.test_config_model -*-
"""Typed model of a site configuration file.

The field names are the YAML keys, which are a contract shared with the
docs, example sites and profile files.  Each model checks only its own
fields; rules that span several objects (unique names, addresses, bus
termination, poll budget) live in :mod:`scada.config.validators` so they
can run on whatever part of a broken file did parse.
"""

from __future__ import annotations

import warnings
import zoneinfo
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema
from pydantic import model_validator
from pydantic_core import PydanticCustomError
from pydantic.json_schema import SkipJsonSchema

from channels.mbus.link import secondary_mask
from channels.modbus.points import TYPE_REGISTERS
from channels.modbus.timing import STANDARD_BAUDRATES


from .alarms import AlarmRuleConfig, AlarmSettings, PointAlarmConfig, StatusConfig, VerificationDate, _own
from .durations import parse_duration, parse_size
from .notify import NotificationsConfig
from .remote import DevicePointConfig, ModemId, ModemServerConfig, MqttConfig
from .registry import RegistryConfig
from .remote import is_cumulative  # noqa: F401 - re-exported: the registers' one rule
from .problems import show_value
from .types import ConfigModel, Duration, Finite, NonNegative, PositiveDuration, check_finite, http_url_check

#: Registers a value of each point type occupies (the codec's own table).
REGISTER_COUNT = TYPE_REGISTERS

PointType = Literal["u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64", "bcd16", "bcd32"]


def _check_name(value: str) -> str:
    """Reject names that cannot be one half of a ``<device>.<point>`` tag name."""
    if not value:
        raise ValueError("name must not be empty")
    if any(c.isspace() or c == "." for c in value):
        raise ValueError(
            f"{show_value(value)} is not a valid name: no whitespace or '.' allowed "
            "(tag names are <device>.<point>)"
        )
    return value


def _range(low: int, high: int | None = None) -> Any:
    """Return an int type limited to ``low..high`` with a message naming both ends."""

    def check(value: int) -> int:
        """Return ``value`` if it lies within the bounds."""
        if high is None and value < low:
            raise ValueError(f"{value} must be at least {low}")
        if high is not None and not low <= value <= high:
            raise ValueError(f"{value} is out of range {low}-{high}")
        return value

    bounds = {"minimum": low} | ({"maximum": high} if high is not None else {})
    return Annotated[int, AfterValidator(check), Field(json_schema_extra=bounds)]


def _check_scale(value: float) -> float:
    """Reject a zero scale: every reading would be 0 and no value could be written back."""
    check_finite(value)
    if value == 0:
        raise ValueError("0 is not a usable scale (every reading would be 0)")
    return value


def _parse_host_port(value: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6addr]:port`` too) or raise ValueError naming it."""
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or any(c.isspace() for c in host) or not port.isdigit():
        raise ValueError(f"{show_value(value)} is not host:port, e.g. '192.0.2.10:4001'")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"{show_value(value)}: port {int(port)} is out of range 1-65535")
    return host, int(port)


def _check_host_port(value: str) -> str:
    """Validate a ``host:port`` string, keeping it as written."""
    _parse_host_port(value)
    return value


def _check_timezone(value: str) -> str:
    """Accept only zones the IANA database on this machine knows."""
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"{show_value(value)} is not an IANA time zone such as 'Europe/Moscow'")
    return value


def _check_baudrate(value: int) -> int:
    """Accept only the rates UARTs and meters actually offer."""
    if value not in STANDARD_BAUDRATES:
        allowed = ", ".join(str(b) for b in STANDARD_BAUDRATES)
        raise ValueError(f"{value} is not a standard baud rate; use one of {allowed}")
    return value


#: A name usable in tag names: non-empty, no whitespace, no '.'.
Name = Annotated[str, AfterValidator(_check_name)]
HostPort = Annotated[str, AfterValidator(_check_host_port), Field(examples=["192.0.2.10:4001"])]


class SiteInfo(ConfigModel):
    """The ``site:`` section: what this installation is called and where."""

    name: str
    timezone: Annotated[str, AfterValidator(_check_timezone)] = "Europe/Moscow"


#: Accept an http(s) URL with a host, as the InfluxDB client needs.
_check_url = http_url_check("http://127.0.0.1:8086")


#: Bytes, written as a number or as ``512MB``/``1GiB``.
Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": r"^\s*(\d+(\.\d*)?|\.\d+)\s*([kKmMgGtT][iI]?[bB]|[bB])?\s*$"},
            ]
        }
    ),
]


def _check_budget(value: int) -> int:
    if value < 1 << 20:
        raise ValueError(f"{value} bytes is too small a queue budget; give at least 1MiB")
    return value


class QueueConfig(ConfigModel):
    """``history.queue``: the on-disk store-and-forward queue in front of the database."""

    #: Directory of the queue; by default next to the SQLite file
    #: (``<path>.queue``) or ``var/history-queue`` for InfluxDB.
    path: Optional[str] = None
    #: Disk budget of the queue (``1GB`` holds some ten million samples).
    max_size: Annotated[Size, AfterValidator(_check_budget)] = 1 << 30
    #: What to give up when the budget is used: the oldest samples or new ones.
    when_full: Literal["drop_oldest", "drop_newest"] = "drop_oldest"
    #: Backlog (samples) over which the ``historian_backlog`` alarm hook fires.
    alarm_backlog: _range(1) = 100_000


class HistoryConfig(ConfigModel):
    """The ``history:`` section: where samples are archived.

    ``backend: sqlite`` (the default) keeps history in one local file at
    ``path``.  ``backend: influxdb`` writes line protocol to InfluxDB's
    v1-compatible API at ``url`` into ``database`` (1.x, 2.x with DBRP
    mapping, 3.x); with ``token``, ``org`` and ``bucket`` it writes through
    the InfluxDB 2.x native API instead.  Either way every sample goes
    through the on-disk ``queue`` first.
    """

    backend: Literal["sqlite", "influxdb"] = "sqlite"
    path: str = "var/history.db"
    flush_interval: PositiveDuration = 1.0
    #: Samples per database write; by default 500 for SQLite, 5000 for InfluxDB.
    batch_size: Optional[_range(1, 100_000)] = None
    url: Annotated[str, AfterValidator(_check_url)] = "http://127.0.0.1:8086"
    database: Annotated[str, Field(min_length=1)] = "scada"
    measurement: Annotated[str, Field(min_length=1)] = "samples"
    retention_policy: Optional[str] = None
    username: Optional[str] = None
    password: Optional[str] = None
    org: Optional[str] = None
    bucket: Optional[str] = None
    token: Optional[str] = None
    timeout: PositiveDuration = 10.0
    create_database: bool = True
    queue: QueueConfig = QueueConfig()

    @model_validator(mode="after")
    def _check_v2(self) -> "HistoryConfig":
        """The native 2.x write path needs all of token, org and bucket."""
        given = [key for key in ("token", "org", "bucket") if getattr(self, key)]
        if given and self.backend == "influxdb" and len(given) != 3:
            missing = ", ".join(k for k in ("token", "org", "bucket") if k not in given)
            raise PydanticCustomError(
                "influx_v2", "InfluxDB 2.x writes need token, org and bucket together; missing: {missing}",
                {"missing": missing})
        if self.username is not None and self.password is None:
            raise PydanticCustomError("influx_auth", "username is set but password is not", {})
        return self

    @property
    def effective_batch_size(self) -> int:
        """Return ``batch_size``, or the backend's default."""
        if self.batch_size is not None:
            return self.batch_size
        return 5000 if self.backend == "influxdb" else 500


def _metrics_mode(value: Any) -> Any:
    """Take YAML's ``off`` (which YAML 1.1 reads as false) for ``off``."""
    return "off" if value is False else value


#: Who may scrape ``GET /metrics``.
MetricsMode = Annotated[Literal["public", "auth", "off"], BeforeValidator(_metrics_mode),
                        WithJsonSchema({"enum": ["public", "auth", "off", False]})]


class ApiConfig(ConfigModel):
    """The ``api:`` section: where the HTTP API and HMI listen."""

    listen: HostPort = "127.0.0.1:8080"
    #: Require a login or an API token on every endpoint but /health and /login.
    #: ``false`` lets anyone act as admin: for a demo on a closed machine only.
    auth: bool = True
    #: How long a login session lasts without a request (each use slides it, see scada.api.auth).
    session_ttl: PositiveDuration = 12 * 3600.0
    #: Create the demo's users (dispatcher, crew, viewer, engineer, admin; password ``demo1234``) when
    #: missing.  Only with ``simulate: true``: a site with real meters never has well-known passwords.
    demo_users: bool = False
    #: ``GET /metrics`` (Prometheus): ``public`` (no credentials), ``auth`` (a token or session of a
    #: role that may read operations views), ``off`` (404).
    metrics: MetricsMode = "public"

    @property
    def host(self) -> str:
        """Return the host part of ``listen``."""
        return _parse_host_port(self.listen)[0]

    @property
    def port(self) -> int:
        """Return the port part of ``listen``."""
        return _parse_host_port(self.listen)[1]


class Rs485Config(ConfigModel):
    """RS-485 specifics of a serial port."""

    rts_toggle: bool = False
    termination: bool = False
    delay_before_tx: Optional[Duration] = None
    delay_before_rx: Optional[Duration] = None


def _check_window(value: str) -> str:
    """Accept a connection window such as ``daily 01:00-01:30``."""
    from channels.transports.window import parse_window

    parse_window(value)
    return value


def _check_topic(value: str) -> str:
    """Accept an MQTT topic filter (``+`` and ``#`` as whole levels only)."""
    levels = value.split("/")
    if not value or any(("+" in lv and lv != "+") or ("#" in lv and lv != "#") for lv in levels) \
            or "#" in levels[:-1]:
        raise ValueError(f"{show_value(value)} is not an MQTT topic filter such as "
                         "'application/+/device/+/event/+'")
    return value


#: Transport keys and the channel types each serves.
TRANSPORT_KINDS = {
    "serial": ("modbus-rtu", "mbus"),
    "tcp": ("modbus-rtu", "modbus-tcp", "mbus"),
    "modem": ("modbus-rtu", "mbus"),
    "mqtt": ("lorawan",),
    "udp": ("nbiot",),
}


class TransportConfig(ConfigModel):
    """How a channel reaches its bus or its uplinks.

    ``serial``: a local port.  ``tcp``: a Modbus TCP server, an RTU-over-TCP
    serial gateway or a modem/converter in server mode (``connect`` limits
    the connection to windows, e.g. ``daily 01:00-01:30``); the line
    settings then describe the gateway's serial side.  ``modem``: the ID of
    a GPRS modem that dials in to ``modem_server``.  ``mqtt``: the topic
    filter of a LoRaWAN channel's ChirpStack MQTT integration.  ``udp``: the
    address an NB-IoT channel listens on for datagrams.
    """

    serial: Optional[Annotated[str, Field(min_length=1)]] = None
    tcp: Optional[HostPort] = None
    modem: Optional[ModemId] = None
    mqtt: Optional[Annotated[str, AfterValidator(_check_topic)]] = None
    udp: Optional[HostPort] = None
    #: Only connect within these windows (``tcp`` only), e.g. ``daily 01:00-01:30``.
    connect: Optional[Annotated[str, AfterValidator(_check_window), Field(examples=["daily 01:00-01:30"])]] = None
    #: NB-IoT raw datagrams: regular expression whose group ``id`` is the meter's ID (the rest is the payload).
    id_pattern: Optional[str] = None
    baudrate: Annotated[int, AfterValidator(_check_baudrate)] = 9600
    parity: Literal["N", "E", "O"] = "E"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[8] = 8
    rs485: Optional[Rs485Config] = None

    @model_validator(mode="after")
    def _one_endpoint(self) -> TransportConfig:
        """Require exactly one of ``serial``, ``tcp``, ``modem``, ``mqtt`` and ``udp``."""
        given = [key for key in TRANSPORT_KINDS if getattr(self, key) is not None]
        if len(given) != 1:
            shown = ", ".join(repr(k) for k in given) if given else "none"
            raise ValueError(f"set exactly one of 'serial', 'tcp', 'modem', 'mqtt' or 'udp' ({shown} given)")
        if self.connect is not None and self.tcp is None:
            raise _own("transport_connect", "'connect' windows apply to 'tcp' transports (modems or converters "
                      "in server mode)", ("connect",))
        if self.id_pattern is not None:
            if self.udp is None:
                raise _own("transport_id_pattern", "'id_pattern' applies to 'udp' transports (NB-IoT datagrams)",
                          ("id_pattern",))
            from .remote import _check_id_pattern

            try:
                _check_id_pattern(self.id_pattern)
            except ValueError as exc:
                raise _own("transport_id_pattern", str(exc), ("id_pattern",)) from None
        return self

    @property
    def kind(self) -> str:
        """Return which endpoint is set: serial, tcp, modem, mqtt or udp."""
        return next(key for key in TRANSPORT_KINDS if getattr(self, key) is not None)

    @property
    def tcp_host(self) -> str | None:
        """Return the host of ``tcp``, None for a serial port."""
        return _parse_host_port(self.tcp)[0] if self.tcp else None

    @property
    def tcp_port(self) -> int | None:
        """Return the port of ``tcp``, None for a serial port."""
        return _parse_host_port(self.tcp)[1] if self.tcp else None


def _check_secondary(value: str) -> str:
    """Accept an M-Bus secondary address as :func:`channels.mbus.link.secondary_mask` does."""
    secondary_mask(value)
    return value.strip().upper()


def _check_hex(value: str) -> str:
    """Accept raw DIF/VIF bytes written as hex ("04", "fd17"), normalised to lowercase."""
    clean = value.replace(" ", "").lower()
    if not clean or len(clean) % 2 or any(c not in "0123456789abcdef" for c in clean):
        raise ValueError(f"{show_value(value)} is not hex bytes such as '06' or 'fd17'")
    return clean


#: An M-Bus secondary address: 8 id digits, optionally manufacturer, version and medium in hex.
Secondary = Annotated[str, AfterValidator(_check_secondary), Field(examples=["12345678", "123456782C2D0804"])]
HexBytes = Annotated[str, AfterValidator(_check_hex), Field(examples=["06", "fd17"])]


class DeviceConfig(ConfigModel):
    """One meter on a channel.

    Modbus devices need ``address`` and ``profile``.  M-Bus meters have a
    primary ``address`` (0-250) or a ``secondary`` address, and a profile
    of ``records``; without one their records are mapped automatically.
    """

    name: Name
    address: Optional[int] = None
    secondary: Optional[Secondary] = None
    profile: Optional[Annotated[str, Field(min_length=1)]] = None
    #: M-Bus unit loads (1 UL = 1.5 mA) the meter draws from the master.
    unit_loads: _range(1, 100) = 1
    poll: PositiveDuration = 60.0
    termination: bool = False
    enabled: bool = True
    description: str = ""
    #: Date of the meter's next verification (поверка); ``verification`` alarm rules watch it.
    next_verification: Optional[VerificationDate] = None
    #: The meter's serial (factory) number, as hand-held readers and registries name it; unique in a site.
    serial: Optional[Annotated[str, Field(min_length=1, max_length=64)]] = None
    #: LoRaWAN: the device EUI (16 hex digits).
    dev_eui: Optional[Annotated[str, AfterValidator(_check_eui), Field(examples=["70B3D59BA0000101"])]] = None
    #: NB-IoT: the ID the meter sends with its readings (often its IMEI).
    uplink_id: Optional[Annotated[str, Field(min_length=1, max_length=80)]] = None
    #: LoRaWAN/NB-IoT: the payload decoder (a module of ``channels/lorawan/decoders``).
    decoder: Optional[Annotated[str, Field(min_length=1)]] = None
    decoder_options: dict[str, Any] = Field(default={}, strict=False)
    #: Registers of a hand-read meter, or of an uplink meter without a decoder.
    points: list[DevicePointConfig] = []
    sim: Optional[dict[str, Any]] = Field(default=None, strict=False)


def _check_eui(value: str) -> str:
    """Accept a 64-bit EUI as 16 hex digits (dashes or colons allowed), normalised to upper case."""
    clean = value.replace("-", "").replace(":", "").upper()
    if len(clean) != 16 or any(c not in "0123456789ABCDEF" for c in clean):
        raise ValueError(f"{show_value(value)} is not a device EUI (16 hex digits, e.g. '70B3D59BA0000101')")
    return clean


#: Channel types whose meters send their readings (no polling, no bus).
UPLINK_TYPES = ("lorawan", "nbiot")
#: Report period of a LoRaWAN/NB-IoT meter that names none (seconds).
UPLINK_DEFAULT_PERIOD = 3600.0
#: Channel types with a bus that the engine polls.
POLLED_TYPES = ("modbus-rtu", "modbus-tcp", "mbus")


#: Baud rate of an M-Bus channel that names none (EN 13757-2 meters ship at 2400).
MBUS_DEFAULT_BAUDRATE = 2400


class ChannelConfig(ConfigModel):
    """One bus (a transport, its timing and the devices on it), one uplink source, or hand-read meters.

    ``modbus-rtu``, ``modbus-tcp`` and ``mbus`` channels need a
    ``transport``; ``lorawan`` channels may name an MQTT topic filter
    (``transport: {mqtt: ...}``) and ``nbiot`` channels a UDP listener;
    ``manual`` channels hold meters that are read by hand.
    """

    name: Name
    type: Literal["modbus-rtu", "modbus-tcp", "mbus", "lorawan", "nbiot", "manual"]
    description: str = ""
    transport: Optional[TransportConfig] = None
    #: Allowance added to the protocol's own response timing.
    timeout: Duration = 0.3
    retries: _range(0, 10) = 2
    #: Consecutive failed polls before a device's tags go comm_loss.
    comm_loss_after: _range(1) = 3
    #: M-Bus master capacity in unit loads (an "M-Bus 50" master: 50).
    unit_loads: Optional[_range(1, 1000)] = None
    #: Archive records the device holding the channel's archive turn may
    #: read per poll, after its current values (0: no archive back-fill).
    archive_records_per_poll: _range(0, 32) = 4
    #: How far back the archives of a device never read before are back-filled.
    archive_lookback: PositiveDuration = 2 * 86400.0
    devices: list[DeviceConfig] = []
    #: Simulator settings of the channel (a simulated modem's registration packet and heartbeats).
    sim: Optional[dict[str, Any]] = Field(default=None, strict=False)

    @model_validator(mode="after")
    def _transport_fits(self) -> ChannelConfig:
        """Require a transport that the channel's type can use."""
        if self.transport is None:
            if self.type in POLLED_TYPES:
                raise ValueError(f"a {self.type} channel needs a 'transport' (serial, tcp or modem)")
            return self
        kind = self.transport.kind
        if self.type not in TRANSPORT_KINDS[kind]:
            uses = {"modbus-rtu": "serial, tcp or modem", "modbus-tcp": "tcp", "mbus": "serial, tcp or modem",
                    "lorawan": "mqtt (or none: HTTP integration only)", "nbiot": "udp (or none: HTTP only)",
                    "manual": "none"}[self.type]
            raise _own("channel_transport", f"a {self.type} channel cannot use a {kind!r} transport; it takes {uses}",
                      ("transport",))
        return self

    @model_validator(mode="before")
    @classmethod
    def _uplink_period_default(cls, data: Any) -> Any:
        """Give LoRaWAN/NB-IoT meters an hourly report period unless they name one.

        ``poll`` of such a meter is how often it reports; the 60 s of a polled
        meter would declare a meter reporting hourly lost after 3 minutes.
        """
        if isinstance(data, dict) and data.get("type") in UPLINK_TYPES and isinstance(data.get("devices"), list):
            devices = [{**d, "poll": UPLINK_DEFAULT_PERIOD} if isinstance(d, dict) and "poll" not in d else d
                       for d in data["devices"]]
            data = {**data, "devices": devices}
        return data

    @model_validator(mode="before")
    @classmethod
    def _mbus_line_default(cls, data: Any) -> Any:
        """Give an M-Bus channel 2400 Bd unless it names a rate."""
        if isinstance(data, dict) and data.get("type") == "mbus":
            transport = data.get("transport")
            if isinstance(transport, dict) and "baudrate" not in transport:
                data = {**data, "transport": {**transport, "baudrate": MBUS_DEFAULT_BAUDRATE}}
        return data


# The YAML key is `register`, which shadows ABCMeta.register on the class;
# instances are unaffected, so pydantic's warning about it is noise.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)

    class PointConfig(ConfigModel):
        """One value a profile reads from a device's registers."""

        name: Name
        function: Literal["holding", "input"]
        # Without an explicit Field, pydantic takes ABCMeta.register as the default.
        register: _range(0, 65535) = Field(...)
        type: PointType
        word_order: Literal["big", "little"] = "big"
        scale: Annotated[float, AfterValidator(_check_scale)] = 1.0
        offset: Finite = 0.0
        unit: str = ""
        deadband: NonNegative = 0.0
        description: str = ""
        #: A register that only grows (hand readings lower than the last are refused); default: by unit.
        cumulative: Optional[bool] = None
        #: Limits on this point of every device using the profile (a rule named ``<profile>.<point>``).
        alarm: Optional[PointAlarmConfig] = None

        @property
        def count(self) -> int:
            """Return the number of registers the value occupies."""
            return REGISTER_COUNT[self.type]

        @model_validator(mode="after")
        def _fits_address_space(self) -> PointConfig:
            """Reject a multi-register value that runs past register 65535."""
            last = self.register + self.count - 1
            if last > 65535:
                raise ValueError(
                    f"{self.type} at register {self.register} needs registers up to {last}, "
                    "past the last register 65535"
                )
            return self


class RecordConfig(ConfigModel):
    """One M-Bus data record a profile maps to a tag.

    A record is found by ``quantity`` (the decoder's name, e.g. ``energy``)
    and/or ``vif`` (its raw VIF/VIFE bytes in hex), plus ``function``,
    ``storage``, ``tariff`` and ``subunit``; ``dif`` (raw DIF/DIFE hex)
    pins it further.  The value arrives in base units (Wh, m^3, °C…) and is
    multiplied by ``scale`` (0.001 for kWh).
    """

    name: Name
    quantity: Optional[Annotated[str, Field(min_length=1)]] = None
    vif: Optional[HexBytes] = None
    dif: Optional[HexBytes] = None
    function: Literal["instantaneous", "maximum", "minimum", "error"] = "instantaneous"
    storage: _range(0, (1 << 41) - 1) = 0
    tariff: _range(0, (1 << 20) - 1) = 0
    subunit: _range(0, 1023) = 0
    scale: Annotated[float, AfterValidator(_check_scale)] = 1.0
    unit: str = ""
    deadband: NonNegative = 0.0
    description: str = ""
    #: A register that only grows (hand readings lower than the last are refused); default: by unit.
    cumulative: Optional[bool] = None
    #: Limits on this record of every meter using the profile (a rule named ``<profile>.<record>``).
    alarm: Optional[PointAlarmConfig] = None

    @model_validator(mode="after")
    def _identified(self) -> RecordConfig:
        """Require something to find the record by."""
        if self.quantity is None and self.vif is None:
            raise ValueError(f"record {self.name!r} needs 'quantity' or 'vif' to be found in a telegram")
        return self


def _parse_interval(value: object) -> float | str:
    """Return an archive interval: seconds dividing a day, or ``'month'``; raise naming the value."""
    if value == ARCHIVE_MONTH:
        return ARCHIVE_MONTH
    hint = "whole seconds dividing a day (e.g. 15m, 30m, 1h, 1d), or 'month'"
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise ValueError(f"{show_value(value)} is not an archive interval; use {hint}") from None
    if not 1 <= seconds <= 86400 or seconds != int(seconds) or 86400 % seconds:
        raise ValueError(f"{show_value(value)} is not an archive interval; use {hint}")
    return seconds


#: The calendar-month archive interval.
ARCHIVE_MONTH = "month"
#: An archive's interval: seconds (``15m``, ``1h``, ``1d``) or ``month`` (calendar months, site time).
ArchiveInterval = Annotated[
    float | Literal["month"],
    BeforeValidator(_parse_interval),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 1, "maximum": 86400},
                {"type": "string", "pattern": r"^\s*(\d+(\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*$"},
                {"const": "month"},
            ]
        }
    ),
]


class ArchivePointConfig(ConfigModel):
    """One value of an archive record: which live point it back-fills and where it sits in the record.

    ``name`` is the name of one of the profile's ``points``, so the record's
    value lands in that point's tag; ``offset`` counts registers from the
    start of the record window.
    """

    name: Name
    offset: _range(0, 124) = Field(...)
    type: PointType
    word_order: Literal["big", "little"] = "big"
    scale: Annotated[float, AfterValidator(_check_scale)] = 1.0

    @property
    def count(self) -> int:
        """Return the number of registers the value occupies."""
        return REGISTER_COUNT[self.type]


class ArchiveTimestampConfig(ConfigModel):
    """Where a record keeps its time: Unix seconds (UTC) at which the record closed."""

    offset: _range(0, 123) = Field(...)
    type: Literal["u32"] = "u32"
    word_order: Literal["big", "little"] = "big"

    @property
    def count(self) -> int:
        """Return the number of registers the timestamp occupies."""
        return REGISTER_COUNT[self.type]


with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)

    class ArchiveRecordConfig(ConfigModel):
        """The record window: holding registers read with function 03 after the index is written."""

        register: _range(0, 65535) = Field(...)
        count: _range(1, 125) = Field(...)

        @model_validator(mode="after")
        def _fits_address_space(self) -> ArchiveRecordConfig:
            """Reject a window that runs past register 65535."""
            last = self.register + self.count - 1
            if last > 65535:
                raise ValueError(
                    f"{self.count} registers from {self.register} run up to {last}, past the last register 65535")
            return self


class ArchiveConfig(ConfigModel):
    """One archive of a Modbus meter (hourly, daily, monthly…), read record by record.

    The master writes the record index to ``index_register`` (0 = the newest
    closed record, 1 = the one before…) and then reads the ``record``
    window with function 03: a ``timestamp`` (when the record closed) and
    ``points``.  The meter keeps ``depth`` records; older indexes read as
    all 0xFFFF.
    """

    name: Name
    interval: ArchiveInterval
    depth: _range(1, 65535)
    index_register: _range(0, 65535) = Field(...)
    record: ArchiveRecordConfig
    timestamp: ArchiveTimestampConfig
    points: Annotated[list[ArchivePointConfig], Field(min_length=1)]
    description: str = ""


class ProfileConfig(ConfigModel):
    """A device model: a Modbus register map (``points``) or M-Bus ``records``.

    Inline or from ``profiles/<name>.yaml``.  A Modbus profile may describe
    the meter's ``archives``.
    """

    description: str = ""
    sim: Optional[str] = None
    #: Some meters accept fewer registers per read than the protocol's 125.
    max_registers: _range(1, 125) = 125
    points: list[PointConfig] = []
    records: list[RecordConfig] = []
    archives: list[ArchiveConfig] = []
    #: Which bits of which points are device status flags (leak, tamper…).
    status: list[StatusConfig] = []

    @model_validator(mode="after")
    def _one_kind(self) -> ProfileConfig:
        """Require points or records, not both."""
        if bool(self.points) == bool(self.records):
            given = "both" if self.points else "neither"
            # Its own type: the loader drops it when the items were already
            # reported one by one (so none is left).
            raise PydanticCustomError(
                "profile_kind", "a profile has 'points' (Modbus) or 'records' (M-Bus), {given} given",
                {"given": given})
        return self

    @property
    def protocol(self) -> str:
        """Return ``modbus`` or ``mbus``."""
        return "mbus" if self.records else "modbus"


def _gap(value: Any) -> str:
    """Accept a gap of ``simulate_history.gaps`` (see :func:`channels.sim.history.parse_gap`)."""
    from channels.sim.history import parse_gap

    return parse_gap(value)


def _span(seconds: float) -> float:
    """Refuse a simulated history longer than ten years (a typo, e.g. 3650d meant as hours)."""
    if seconds > 3650 * 86400.0:
        raise ValueError(f"{seconds / 86400:g} days is more history than anyone simulates; at most 3650d")
    return seconds


#: A gap: a month ("2025-09", "month-1" = the last full month) or a range [FROM, TO] of ISO dates.
SimGap = Annotated[str, BeforeValidator(_gap), WithJsonSchema({"anyOf": [
    {"type": "string", "pattern": r"^(month-\d{1,3}|\d{4}-\d{2}|.+/.+)$"},
    {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "string"}}]})]
SimSpan = Annotated[Duration, AfterValidator(_span)]


class SimulateHistoryConfig(ConfigModel):
    """``simulate_history:``: months of past samples of the simulated meters (only with ``simulate: true``).

    At start the runtime fills the history up to now (see
    :mod:`scada.simhistory`): hourly samples over ``hourly``, daily ones over
    ``daily`` before that, monthly hand readings of ``manual`` meters.
    ``gaps`` leave a device's samples out (ПП 354 substitutions then show).
    """

    hourly: SimSpan = 35 * 86400.0
    daily: SimSpan = 210 * 86400.0
    gaps: dict[Name, list[SimGap]] = Field(default={}, strict=False)


class BalanceConfig(ConfigModel):
    """The ``balance:`` section: how often the balance service judges building meters against apartments.

    Every ``every`` the service computes each balance group of the registry
    (a building meter, ОДПУ, over its apartment meters, ИПУ) over the
    ``window`` that ended at the last whole ``every`` at least ``settle``
    ago, and publishes the figures as calculated tags
    ``balance-<building>.<resource>_<figure>`` (imbalance rules watch them).
    """

    enabled: bool = True
    every: PositiveDuration = 3600.0
    window: PositiveDuration = 86400.0
    #: Time the meters get to report the boundary readings before a window is judged.
    settle: Duration = 300.0


#: Views a wall screen can rotate through (``building:<id>`` names a building of the registry).
HMI_VIEWS = ("overview", "alarms", "journal", "channels", "trends")


def _check_kiosk_view(value: str) -> str:
    if value in HMI_VIEWS or (value.startswith("building:") and len(value) > len("building:")):
        return value
    raise ValueError(f"unknown view {value!r} (use {', '.join(HMI_VIEWS)} or building:<id>)")


class KioskConfig(ConfigModel):
    """``hmi.kiosk``: what a wall screen opened with ``/?kiosk=1`` shows, in turn."""

    views: list[Annotated[str, AfterValidator(_check_kiosk_view)]] = Field(
        default=["overview", "alarms", "channels"], min_length=1)
    #: Seconds each view stays on screen.
    every: PositiveDuration = 20.0


class HmiConfig(ConfigModel):
    """The ``hmi:`` section: the web HMI's defaults for every screen."""

    #: Language of the screens until a user switches (``ru`` or ``en``).
    lang: Literal["ru", "en"] = "ru"
    #: Sound a horn for new high and critical alarms until they are acknowledged (each screen can mute it).
    sound: bool = True
    #: A value older than this many poll periods of its device is shown stale.
    stale_polls: float = Field(default=2.0, ge=1.0, le=100.0)
    kiosk: KioskConfig = KioskConfig()


class StoreConfig(ConfigModel):
    """The ``store:`` section: the operational SQLite file (alarm journal, users, tokens, sessions)."""

    #: Relative to the working directory, like ``history.path``.
    path: Annotated[str, Field(min_length=1)] = "var/scada.db"


class SiteConfig(ConfigModel):
    """A whole site file, with every referenced profile resolved."""

    site: SiteInfo
    history: HistoryConfig = HistoryConfig()
    api: ApiConfig = ApiConfig()
    store: StoreConfig = StoreConfig()
    simulate: bool = False
    channels: list[ChannelConfig] = []
    profiles: dict[Name, ProfileConfig] = {}
    notifications: NotificationsConfig = NotificationsConfig()
    alarm_settings: AlarmSettings = AlarmSettings()
    #: Alarm rules (see :mod:`scada.config.alarms`); profiles add their ``alarm:`` shortcuts.
    alarms: list[AlarmRuleConfig] = []
    #: The TCP port GPRS modems dial in to (needed by channels with ``transport: {modem: ID}``).
    modem_server: Optional[ModemServerConfig] = None
    #: The broker of the ChirpStack MQTT integration (LoRaWAN channels subscribe through it).
    mqtt: Optional[MqttConfig] = None
    #: Buildings, premises and meters (see :mod:`scada.config.registry`); None: the site has no registry.
    registry: Optional[RegistryConfig] = None
    #: The balance service (ОДПУ against Σ ИПУ over a rolling window).
    balance: BalanceConfig = BalanceConfig()
    #: The web HMI's defaults (language, sound, wall-screen rotation).
    hmi: HmiConfig = HmiConfig()
    #: Simulated past samples filled in at start (only with ``simulate: true``); None: none.
    simulate_history: Optional[SimulateHistoryConfig] = None
    #: The file this configuration was loaded from ("" if built in code).
    source: SkipJsonSchema[str] = ""
