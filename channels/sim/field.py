# -*- test-case-name: tests.channels.sim.test_sim_field -*-
"""A whole simulated site: every Modbus channel of a config as live meters.

:class:`SimulatedField` reads a site config (by attributes only, so it does
not depend on the config package's classes), builds one :class:`SimDevice`
per configured device with the model its profile or ``sim`` options ask for,
and exposes each channel on a real transport: a pty pair that the engine
opens as a serial port, or a TCP port.  This is what ``scada simulate`` and
the demo run (DESIGN rule 9).
"""

from __future__ import annotations

import fnmatch
import math
import os
import tty
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from twisted.internet import abstract, defer, error, fdesc
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from channels.modbus.framer import FUNCTIONS
from channels.modbus.points import PointSpec
from channels.sim.models import (
    BUILDING_MODELS,
    MODELS,
    SENSOR_MODELS,
    BaseModel,
    create_model,
    seed_for,
    standard_utc_offset,
)
from channels.sim.mbus import SimMBusMeter, SimMBusSegment
from channels.sim.slave import BusCounters, SimArchive, SimBus, SimDevice, SimFactory, SimTcpProtocol, _value_clock

#: Channel types this simulator serves.
RTU = "modbus-rtu"
TCP = "modbus-tcp"
MBUS = "mbus"
#: Channel types served on a pty by default (a serial line).
SERIAL_TYPES = (RTU, MBUS)
#: Channel types whose meters send uplinks (see :meth:`SimulatedField.uplink_values`).
UPLINK = ("lorawan", "nbiot")
#: Values a simulated M-Bus meter puts in its telegram, by kind (see
#: :meth:`channels.sim.mbus.SimMBusMeter.telegrams`); these can be overridden.
MBUS_POINTS = {
    "heat": ("energy_kwh", "volume_m3", "flow_m3h", "power_kw", "t_supply_c", "t_return_c", "operating_h",
             "error_code"),
    "water": ("volume_m3", "flow_m3h", "temperature_c"),
}


class NullModel(BaseModel):
    """A meter whose profile names no model: every point reads 0."""

    name = "null"

    def _compute(self, t: float) -> dict[str, float]:
        return {}


@dataclass
class SimChannel:
    """One simulated channel: its devices by address and its shared statistics."""

    name: str
    type: str
    devices: dict[int, SimDevice]
    counters: BusCounters = field(default_factory=BusCounters)


class PtyTransport(abstract.FileDescriptor):
    """A read-write transport over one file descriptor (the master side of a pty).

    ``twisted.internet.stdio.StandardIO`` could do this with two descriptors,
    but neither of its halves closes its descriptor, so the field would have
    to close them behind the reactor's back; owning one descriptor here makes
    :meth:`connectionLost` the single place where it is unregistered and closed.
    """

    def __init__(self, fd: int, protocol: Protocol, reactor: Any) -> None:
        """Take ownership of ``fd`` and connect ``protocol`` to it."""
        abstract.FileDescriptor.__init__(self, reactor)
        fdesc.setNonBlocking(fd)
        self._fd = fd
        self.protocol = protocol
        self.connected = 1
        protocol.makeConnection(self)
        self.startReading()

    def fileno(self) -> int:
        """Return the descriptor, or -1 once closed."""
        return self._fd

    def doRead(self) -> Any:
        """Pass whatever the master side has to the protocol."""
        return fdesc.readFromFD(self._fd, self.protocol.dataReceived)

    def writeSomeData(self, data: bytes) -> Any:
        """Write as much of ``data`` as the pty takes now."""
        return fdesc.writeToFD(self._fd, data)

    def connectionLost(self, reason: Failure) -> None:
        """Unregister and close the descriptor, then tell the protocol."""
        abstract.FileDescriptor.connectionLost(self, reason)
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)
        self.protocol.connectionLost(reason)

    def getHost(self) -> None:
        """Return None: a pty has no address."""
        return None

    def getPeer(self) -> None:
        """Return None: a pty has no address."""
        return None


def _options(sim: Any) -> dict[str, Any]:
    """Return a device's ``sim`` settings as a plain dict, whatever class the config used."""
    if sim is None:
        return {}
    if isinstance(sim, Mapping):
        return dict(sim)
    dump = getattr(sim, "model_dump", None)
    if callable(dump):
        return {k: v for k, v in dump().items() if v is not None}
    return {k: v for k, v in vars(sim).items() if not k.startswith("_") and v is not None}


def _point_spec(point: Any) -> PointSpec:
    """Return the driver's view of a profile point."""
    function = point.function
    if isinstance(function, str):
        function = FUNCTIONS[function]
    scale = getattr(point, "scale", None)
    offset = getattr(point, "offset", None)
    return PointSpec(
        tag=point.name,
        function=function,
        register=point.register,
        type=point.type,
        word_order=getattr(point, "word_order", None) or "big",
        scale=1.0 if scale is None else scale,
        offset=0.0 if offset is None else offset,
    )


def _sim_archives(profile: Any, utc_offset: float) -> list[SimArchive]:
    """Return the archives a profile describes (``archives:``), as a simulated meter keeps them."""
    archives = []
    for archive in getattr(profile, "archives", None) or ():
        start = archive.record.register
        points = tuple(PointSpec(p.name, FUNCTIONS["holding"], start + p.offset, p.type,
                                 getattr(p, "word_order", None) or "big", getattr(p, "scale", None) or 1.0)
                       for p in archive.points)
        archives.append(SimArchive(archive.name, archive.interval, archive.depth, archive.index_register, start,
                                   archive.record.count, archive.timestamp.offset, points, utc_offset,
                                   getattr(archive.timestamp, "word_order", None) or "big"))
    return archives


class SimulatedField:
    """Simulated meters for every Modbus channel of a site config.

    ``cfg`` needs ``site.timezone``, ``channels`` (each with ``name``,
    ``type``, ``devices``) and ``profiles`` (name → object with ``points``
    and ``sim``); each device has ``name``, ``address``, ``profile`` and
    optionally ``sim`` (a dict: ``model``, ``kind``, ``sum_of``, ``losses``,
    ``seed`` and the model's own settings).  Disabled devices are simulated
    too: switching off polling does not remove a meter from the wire.

    For demos and tests a device can be switched to a fault
    (:meth:`set_fault`) or made to read given values (:meth:`set_override`).
    """

    def __init__(
        self,
        cfg: Any,
        reactor: IReactorTime,
        latency: float = 0.0,
        clock_for_values: Any = None,
    ) -> None:
        """Build the devices; nothing is opened until :meth:`start_pty` or :meth:`start_tcp`.

        ``reactor`` schedules answers and gives value time; to start
        transports it must also be an ``IReactorFDSet`` (ptys) or an
        ``IReactorTCP`` (TCP).  ``latency`` delays every answer, and
        ``clock_for_values`` overrides the time the values are computed for.
        """
        self._reactor = reactor
        self.latency = latency
        self.clock_for_values = clock_for_values
        site = getattr(cfg, "site", None)
        self.utc_offset = standard_utc_offset(getattr(site, "timezone", None))
        self.channels: dict[str, SimChannel] = {}
        #: Every simulated device by its (site-unique) name.
        self.devices: dict[str, SimDevice] = {}
        #: LoRaWAN/NB-IoT meters: name -> (config, {decoder point: (model, model value name)}).
        self.uplink_devices: dict[str, tuple[Any, dict[str, tuple[BaseModel, str]]]] = {}
        #: Channels behind a dial-in modem: name -> the channel's config.
        self.modem_channels: dict[str, Any] = {}
        # What each channel opened, by channel name: see stop_channel().
        self._ptys: list[tuple[str, PtyTransport, int]] = []
        self._modems: list[Any] = []
        self._ports: list[tuple[str, Any]] = []
        self._factories: list[tuple[str, SimFactory]] = []
        self._build(cfg)

    # ------------------------------------------------------------- building

    def _build(self, cfg: Any) -> None:
        profiles = getattr(cfg, "profiles", None) or {}
        pending: list[tuple[SimChannel, Any, list[PointSpec], str, dict[str, Any]]] = []
        channel_of: dict[str, str] = {}
        for channel_cfg in getattr(cfg, "channels", None) or ():
            transport = getattr(channel_cfg, "transport", None)
            modem = transport.get("modem") if isinstance(transport, Mapping) else getattr(transport, "modem", None)
            if modem is not None:
                self.modem_channels[channel_cfg.name] = channel_cfg
            if channel_cfg.type in UPLINK:
                self._build_uplinks(channel_cfg)
                continue
            if channel_cfg.type == MBUS:
                self._build_mbus(channel_cfg, profiles)
                continue
            if channel_cfg.type not in (RTU, TCP):
                continue
            channel = SimChannel(channel_cfg.name, channel_cfg.type, {})
            self.channels[channel.name] = channel
            for device in channel_cfg.devices:
                if device.name in self.devices:
                    raise ValueError(f"device name {device.name!r} is used twice")
                if device.address in channel.devices:
                    raise ValueError(f"channel {channel.name!r}: address {device.address} is used by "
                                     f"{channel.devices[device.address].name!r} and {device.name!r}")
                profile = profiles.get(device.profile)
                if profile is None:
                    raise ValueError(f"device {device.name!r}: unknown profile {device.profile!r}")
                options = _options(getattr(device, "sim", None))
                model_name = options.get("model") or getattr(profile, "sim", None) or "null"
                if model_name != "null" and model_name not in MODELS + SENSOR_MODELS:
                    raise ValueError(f"device {device.name!r}: unknown simulation model {model_name!r}")
                points = [_point_spec(p) for p in profile.points]
                sim_device = SimDevice(device.address, points, None, name=device.name,
                                       fault=options.get("fault", "normal"),
                                       archives=_sim_archives(profile, self.utc_offset))
                channel.devices[device.address] = sim_device
                self.devices[device.name] = sim_device
                channel_of[device.name] = channel.name
                pending.append((channel, device, points, model_name, options))
        # Single meters first: building meters sum their finished models.
        building_names = {d.name for _, d, _, m, _ in pending if m in BUILDING_MODELS}
        for channel, device, _, model_name, options in sorted(pending, key=lambda p: p[3] in BUILDING_MODELS):
            seed = int(options.get("seed", seed_for(device.name)))
            hot = "hot" in device.name.lower()
            if model_name == "null":
                model: BaseModel = NullModel(seed)
            elif model_name in BUILDING_MODELS:
                members = self._members(channel, device.name, options, building_names, channel_of)
                model = create_model(model_name, seed, self.utc_offset, options,
                                     [self.devices[m].model for m in members], hot)
            else:
                model = create_model(model_name, seed, self.utc_offset, options, (), hot)
            self.devices[device.name].model = model

    def _build_mbus(self, channel_cfg: Any, profiles: Mapping[str, Any]) -> None:
        """Build the simulated meters of an M-Bus channel (``sim``: model, kind, id, manufacturer,
        version, primary, clock_drift_s, fault)."""
        channel = SimChannel(channel_cfg.name, MBUS, {})
        self.channels[channel.name] = channel
        for index, device in enumerate(channel_cfg.devices):
            if device.name in self.devices:
                raise ValueError(f"device name {device.name!r} is used twice")
            options = _options(getattr(device, "sim", None))
            profile = profiles.get(device.profile) if getattr(device, "profile", None) else None
            model_name = options.get("model") or getattr(profile, "sim", None) or "heat_meter"
            if model_name not in ("heat_meter", "water_meter"):
                raise ValueError(f"device {device.name!r}: M-Bus meters simulate heat_meter or water_meter, "
                                 f"not {model_name!r}")
            seed = int(options.get("seed", seed_for(device.name)))
            hot = options.get("kind") == "hot" or (options.get("kind") is None and "hot" in device.name.lower())
            model = create_model(model_name, seed, self.utc_offset, options, (), hot)
            secondary = getattr(device, "secondary", None)
            if secondary is not None:
                digits = secondary[:8]
                if not digits.isdigit():
                    raise ValueError(f"device {device.name!r}: a simulated meter needs a whole id, not {digits!r}")
                ident, primary = int(digits), options.get("primary")
            else:
                ident, primary = int(options.get("id", seed % 100_000_000)), device.address
            kind = "heat" if model_name == "heat_meter" else ("warm_water" if hot else "cold_water")
            meter = SimMBusMeter(
                device.name, primary=primary, ident=ident, model=model, kind=kind,
                manufacturer=str(options.get("manufacturer", "KRT")), version=int(options.get("version", 1)),
                utc_offset=self.utc_offset, clock_drift_s=float(options.get("clock_drift_s", 0.0)),
                fault=options.get("fault", "normal"))
            channel.devices[index] = meter
            self.devices[device.name] = meter

    def _build_uplinks(self, channel_cfg: Any) -> None:
        """Build the models of a LoRaWAN/NB-IoT channel's meters.

        A meter's ``sim`` is either one model (``model``, ``kind``… as for a
        Modbus meter), whose values fill the decoder's points of the same
        name, or ``inputs``: a model per decoder point (a pulse counter with
        several inputs), each ``{model, kind, sum_of, losses…}``; a
        ``building_water`` input sums the ``volume_m3`` of the channel's
        meters that ``sum_of`` matches.  Meters without ``sim`` send nothing.
        """
        singles: dict[str, BaseModel] = {}
        pending = []
        for device in channel_cfg.devices:
            if device.name in self.devices or device.name in self.uplink_devices:
                raise ValueError(f"device name {device.name!r} is used twice")
            options = _options(getattr(device, "sim", None))
            if not options:
                continue
            pending.append((device, options))
            if "inputs" not in options:
                model_name = options.get("model", "water_meter")
                if model_name not in MODELS + SENSOR_MODELS or model_name in BUILDING_MODELS:
                    raise ValueError(f"device {device.name!r}: an uplink meter simulates one of "
                                     f"{', '.join(m for m in MODELS + SENSOR_MODELS if m not in BUILDING_MODELS)}, "
                                     f"not {model_name!r}")
                seed = int(options.get("seed", seed_for(device.name)))
                singles[device.name] = create_model(model_name, seed, self.utc_offset, options, (),
                                                    "hot" in device.name.lower())
        for device, options in pending:
            if "inputs" not in options:
                self.uplink_devices[device.name] = (device, {"*": (singles[device.name], "*")})
                continue
            inputs: dict[str, tuple[BaseModel, str]] = {}
            for point, spec in dict(options["inputs"]).items():
                spec = dict(spec)
                model_name = spec.get("model", "water_meter")
                seed = int(spec.get("seed", seed_for(f"{device.name}.{point}")))
                members = []
                if model_name in BUILDING_MODELS:
                    pattern = spec.get("sum_of")
                    if not isinstance(pattern, str):
                        raise ValueError(f"device {device.name!r}: input {point!r} needs sum_of (a glob)")
                    members = [m for n, m in sorted(singles.items()) if fnmatch.fnmatchcase(n, pattern)]
                    if not members:
                        raise ValueError(f"device {device.name!r}: input {point!r}: sum_of {pattern!r} matches "
                                         f"no simulated meter of channel {channel_cfg.name!r}")
                model = create_model(model_name, seed, self.utc_offset, spec, members, spec.get("kind") == "hot")
                inputs[str(point)] = (model, spec.get("value", "volume_m3"))
            self.uplink_devices[device.name] = (device, inputs)

    def uplink_values(self, device_name: str, points: Any, t: float) -> dict[str, float]:
        """Return what a simulated uplink meter measures at ``t``, by its decoder's point names."""
        _device, models = self.uplink_devices[device_name]
        if "*" in models:
            values = models["*"][0].values(t)
            return {p: float(values[p]) for p in points if p in values}
        return {p: float(m.values(t)[name]) for p, (m, name) in models.items()}

    def _members(self, channel: SimChannel, name: str, options: dict[str, Any],
                 building_names: set[str], channel_of: dict[str, str]) -> list[str]:
        """Return the device names a building meter sums (``sum_of``: glob or list)."""
        sum_of = options.get("sum_of")
        if sum_of is None:
            raise ValueError(f"building meter {name!r} needs sim.sum_of (a glob or a list of device names)")
        if isinstance(sum_of, str):
            names = sorted(
                d.name for d in channel.devices.values()
                if d.name != name and d.name not in building_names and fnmatch.fnmatchcase(d.name, sum_of))
            if not names:
                raise ValueError(f"building meter {name!r}: sum_of {sum_of!r} matches no device "
                                 f"in channel {channel.name!r}")
            return names
        names = list(sum_of)
        for member in names:
            if member not in self.devices:
                raise ValueError(f"building meter {name!r}: sum_of names unknown device {member!r}")
            if member in building_names or member == name:
                raise ValueError(f"building meter {name!r} cannot sum building meter {member!r}")
        return names

    # ---------------------------------------------------------- transports

    def start_pty(self) -> dict[str, str]:
        """Put each Modbus RTU channel on a new pty pair; return {channel: serial device path}.

        The slave side stays open here as well: when the last process holding
        a pty's slave side closes it, reads on the master fail with EIO, and
        the engine closes and reopens its port after errors.  The slave side
        is put in raw mode so nothing (echo, CR/LF mapping) touches binary
        frames before the engine sets its own line settings.
        """
        paths: dict[str, str] = {}
        for channel in self.channels.values():
            if channel.type not in SERIAL_TYPES or channel.name in self.modem_channels:
                continue
            master, slave = os.openpty()
            try:
                tty.setraw(slave)
                protocol_class = SimMBusSegment if channel.type == MBUS else SimBus
                protocol = protocol_class(channel.devices, self._reactor, self.latency,
                                          self.clock_for_values, channel.counters)
                transport = PtyTransport(master, protocol, self._reactor)
            except BaseException:
                os.close(master)
                os.close(slave)
                raise
            self._ptys.append((channel.name, transport, slave))
            paths[channel.name] = os.ttyname(slave)
        return paths

    def start_modems(self, host: str, port: int) -> dict[str, Any]:
        """Let a simulated GPRS modem dial in to ``host:port`` for every channel behind a modem.

        The channel's ``sim`` settings give what the modem sends:
        ``register`` (its registration packet, by default the modem ID),
        ``heartbeat`` (none if empty) every ``heartbeat_every`` seconds
        (default 30) of silence, and ``prefix`` (the registration packet
        before every answer).  Return {channel: SimModem}.
        """
        from channels.sim.modem import SimModem

        modems: dict[str, Any] = {}
        for name, channel_cfg in self.modem_channels.items():
            channel = self.channels[name]
            transport = channel_cfg.transport
            modem_id = transport.get("modem") if isinstance(transport, Mapping) else transport.modem
            options = _options(getattr(channel_cfg, "sim", None))
            register = str(options.get("register", modem_id)).encode("latin-1")
            heartbeat = str(options.get("heartbeat", "")).encode("latin-1") or None
            every = float(options.get("heartbeat_every", 30.0))
            protocol_class = SimMBusSegment if channel.type == MBUS else SimBus
            bus = protocol_class(channel.devices, self._reactor, self.latency, self.clock_for_values,
                                 channel.counters)
            modem = SimModem(self._reactor, host, port, register, heartbeat, every, bus,
                             prefix=bool(options.get("prefix", False)), name=name)
            modem.start()
            modems[name] = modem
            self._modems.append(modem)
        return modems

    def stop_modem(self, channel_name: str) -> defer.Deferred[Any]:
        """Hang up the simulated modem of one channel for good (its channel was removed or rebuilt).

        Otherwise it would keep redialling, and against a rebuilt channel's
        own simulated modem with the same ID the two would keep replacing
        each other's connection.  The Deferred fires once it is closed.
        """
        stopping = [modem.stop() for modem in self._modems if modem.name == channel_name]
        self._modems = [modem for modem in self._modems if modem.name != channel_name]
        return defer.gatherResults(stopping)

    def start_tcp(self, host: str = "127.0.0.1", base_port: int = 0) -> dict[str, tuple[str, int]]:
        """Listen for each Modbus channel on TCP; return {channel: (host, port)}.

        RTU channels are served as RTU over TCP (a transparent serial
        gateway), TCP channels as Modbus TCP (MBAP).  ``base_port`` 0 gives
        ephemeral ports; otherwise channels get consecutive ports from it in
        config order.
        """
        addresses: dict[str, tuple[str, int]] = {}
        for index, channel in enumerate(self.channels.values()):
            protocol_class = {RTU: SimBus, TCP: SimTcpProtocol, MBUS: SimMBusSegment}[channel.type]
            factory = SimFactory(protocol_class, channel.devices, self._reactor, self.latency,
                                 self.clock_for_values, channel.counters)
            port = self._reactor.listenTCP(base_port + index if base_port else 0, factory, interface=host)
            self._ports.append((channel.name, port))
            self._factories.append((channel.name, factory))
            addresses[channel.name] = (host, port.getHost().port)
        return addresses

    def stop(self) -> defer.Deferred[Any]:
        """Close every pty and TCP connection and stop listening.

        The returned Deferred fires when all listening ports have stopped.
        """
        return self._close(lambda name: True)

    def stop_channel(self, channel_name: str) -> defer.Deferred[Any]:
        """Stop serving one channel: close its pty pair, its TCP connections and listener, hang up its modem.

        For a channel a reload removed or rebuilt; the other channels are
        served on.  Closing the pty (or the listener) matters: the engine's
        replacement gets its own simulator, and a removed channel's port must
        not stay open until shutdown.  The Deferred fires once its listening
        port has stopped (at once for a channel with nothing open).
        """
        return self._close(lambda name: name == channel_name)

    def _close(self, chosen: Callable[[str], bool]) -> defer.Deferred[Any]:
        """Close what the channels ``chosen(name)`` opened; a Deferred of their listening ports stopping."""
        for name, transport, slave in self._ptys:
            if not chosen(name):
                continue
            if transport.connected:
                transport.connectionLost(Failure(error.ConnectionDone("simulator stopped")))
            os.close(slave)
        self._ptys = [entry for entry in self._ptys if not chosen(entry[0])]
        for name, factory in self._factories:
            if chosen(name):
                factory.disconnect_all()
        self._factories = [entry for entry in self._factories if not chosen(entry[0])]
        stopping = [defer.maybeDeferred(port.stopListening) for name, port in self._ports if chosen(name)]
        self._ports = [entry for entry in self._ports if not chosen(entry[0])]
        stopping += [modem.stop() for modem in self._modems if chosen(modem.name)]
        self._modems = [modem for modem in self._modems if not chosen(modem.name)]
        return defer.gatherResults(stopping)

    # ------------------------------------------------------------- control

    def set_fault(self, device_name: str, fault: str) -> None:
        """Switch a device, by name, to a fault (see :data:`channels.sim.slave.FAULTS`)."""
        try:
            device = self.devices[device_name]
        except KeyError:
            raise KeyError(f"no simulated device named {device_name!r}") from None
        device.fault = fault

    def _device(self, device_name: str) -> Any:
        try:
            return self.devices[device_name]
        except KeyError:
            raise KeyError(f"no simulated device named {device_name!r}") from None

    def point_names(self, device_name: str) -> tuple[str, ...]:
        """Return the points of a device whose values :meth:`set_override` can set.

        A Modbus device has its profile's points; an M-Bus meter the values
        of its telegram (:data:`MBUS_POINTS`), named like the records of the
        shipped M-Bus profiles.
        """
        device = self._device(device_name)
        if isinstance(device, SimMBusMeter):
            return MBUS_POINTS["heat" if device.kind == "heat" else "water"]
        return tuple(dict.fromkeys(p.tag for p in device.points))

    def set_override(self, device_name: str, point: str, value: float) -> None:
        """Make a device answer ``value`` for ``point`` from now on, instead of its physics.

        The value goes through the same encoding as every other reading
        (the profile's type and scale for Modbus, the telegram's records for
        M-Bus), so the master decodes what a real meter showing it would
        send.  A status point such as ``error_code`` is set the same way
        (``2`` sets bit 1).  A building meter sums the overridden values of
        its members.  Raise KeyError for an unknown device or point and
        ValueError for a value the meter cannot show.
        """
        device = self._device(device_name)
        names = self.point_names(device_name)
        if point not in names:
            raise KeyError(f"simulated device {device_name!r} has no point {point!r} "
                           f"(its points: {', '.join(names) or 'none'})")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"point {point!r} of {device_name!r}: {value!r} is not a number")
        value = float(value)
        now = _value_clock(self._reactor, self.clock_for_values)()
        if isinstance(device, SimMBusMeter):
            if not math.isfinite(value):
                raise ValueError(f"point {point!r} of {device_name!r}: {value} is not a finite number")
            before = device.model.pin_of(point)
            device.model.pin(point, value, now)
            try:
                device.telegrams(now)  # the meter's own encoder says whether it fits
            except (ValueError, OverflowError) as exc:
                if before is None:
                    device.model.unpin(point)
                else:
                    device.model.pin(point, *before)
                raise ValueError(f"point {point!r} of {device_name!r} cannot hold {value:g}: {exc}") from None
        else:
            try:
                device.encode_value(point, value)
            except ValueError as exc:
                raise ValueError(f"simulated device {device_name!r}: {exc}") from None
            device.model.pin(point, value, now)
        self._forget_values()

    def clear_override(self, device_name: str, point: str | None = None) -> None:
        """Let a device's ``point`` (every point if None) follow its physics again.

        Clearing a point that has no override does nothing; an unknown
        device or point raises KeyError.
        """
        device = self._device(device_name)
        if point is not None and point not in self.point_names(device_name):
            raise KeyError(f"simulated device {device_name!r} has no point {point!r}")
        device.model.unpin(point)
        self._forget_values()

    def overrides(self, device_name: str) -> dict[str, float]:
        """Return a device's overridden values by point name."""
        return self._device(device_name).model.pinned

    def _forget_values(self) -> None:
        """Drop every model's cached values: a building meter sums its members' overrides."""
        for device in self.devices.values():
            device.model.forget()

    def counters(self, channel_name: str) -> BusCounters:
        """Return the traffic statistics of a channel (all its transports together)."""
        return self.channels[channel_name].counters
