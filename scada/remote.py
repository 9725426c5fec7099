# -*- test-case-name: tests.scada.test_remote -*-
"""Wiring of the meters that are not on a local wire: dial-in modems, LoRaWAN, NB-IoT, hand readings.

The runtime (:mod:`scada.app`) calls these to build what the site file's
``modem_server:``, ``mqtt:`` and ``lorawan``/``nbiot``/``manual`` channels
ask for, and to start and stop the services behind them: the modem server,
the MQTT subscriber, UDP listeners, and, on simulated sites, the simulated
modems, the ChirpStack-like uplink publisher and the demo's own broker.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

#: The name of the token the simulated ChirpStack uses for the HTTP integration.
SIM_TOKEN_NAME = "simulator-chirpstack"
#: How long a modem channel waits for its modem to dial in before polls fail as comm loss.
MODEM_GRACE_MAX_S = 60.0


class ServiceSet:
    """Things the runtime started besides channels, stopped in reverse order."""

    def __init__(self) -> None:
        self._stops: list[tuple[str, Callable[[], Any]]] = []
        #: Health of each running service by name (callables returning dicts).
        self.health_of: dict[str, Callable[[], dict]] = {}

    def add(self, name: str, stop: Callable[[], Any], health: Callable[[], dict] | None = None) -> None:
        """Remember how to stop ``name`` (and how to report its health)."""
        self._stops.append((name, stop))
        if health is not None:
            self.health_of[name] = health

    def stop(self) -> None:
        """Stop everything, the last started first; raise RuntimeError listing what failed."""
        failed = []
        while self._stops:
            name, stop = self._stops.pop()
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - every service gets its stop call
                failed.append(f"{name}: {exc}")
        self.health_of.clear()
        if failed:
            raise RuntimeError("; ".join(failed))

    def health(self) -> dict:
        """Return every service's health."""
        return {name: health() for name, health in self.health_of.items()}


def _host_port(text: str) -> tuple[str, int]:
    from scada.config.model import _parse_host_port

    return _parse_host_port(text)


def _reachable_host(host: str) -> str:
    """Return an address to connect to for a listener bound to ``host`` (loopback for wildcards)."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


# ------------------------------------------------------------------ modems


def build_modem_server(cfg: Any, reactor: Any):
    """Return the modem server ``modem_server:`` describes (not yet listening), or None."""
    settings = getattr(cfg, "modem_server", None)
    if settings is None:
        return None
    from channels.transports.modem import ModemServer, ModemType

    types = [ModemType(t.name, t.id_pattern, t.heartbeat, t.prefix) for t in settings.modem_types()]
    host, port = _host_port(settings.listen)
    return ModemServer(reactor, types, identify_timeout=settings.identify_timeout,
                       idle_timeout=settings.idle_timeout, max_timeouts=settings.max_timeouts,
                       listen_host=host, listen_port=port)


def modem_link_factory(server: Any, channel_cfg: Any) -> Callable[[Any], Any] | None:
    """Return ``link_factory(scheduler)`` for a channel behind a dial-in modem, None for other channels."""
    transport = channel_cfg.transport
    if transport is None or transport.modem is None:
        return None
    if server is None:
        raise ValueError(f"channel {channel_cfg.name!r} needs the modem server (modem_server:)")

    def build(scheduler: Any) -> Any:
        # A modem dials in some seconds after a restart of either side:
        # until then its meters are "not yet read", not "comm loss".
        scheduler.link_grace = max(scheduler.link_grace, min(server.identify_timeout, MODEM_GRACE_MAX_S))
        return server.register(str(transport.modem), scheduler)

    return build


# ---------------------------------------------------------- uplink channels


def build_other_channel(runtime: Any, channel_cfg: Any) -> Any:
    """Return the channel object of a ``lorawan``, ``nbiot`` or ``manual`` channel."""
    if channel_cfg.type == "manual":
        from channels.manual import ManualChannel

        return ManualChannel(channel_cfg, runtime.cfg.profiles)
    from channels.lorawan.channel import UplinkChannel

    return UplinkChannel(runtime.reactor, channel_cfg, runtime.tags.update_many, runtime._define_tag,
                         ZoneInfo(runtime.cfg.site.timezone))


def build_uplink_hub(runtime: Any):
    """Return the hub routing uplinks to the runtime's LoRaWAN/NB-IoT channels, or None if it has none."""
    channels = [c for c in runtime.channels if c.type in ("lorawan", "nbiot")]
    if not channels:
        return None
    from channels.lorawan.hub import UplinkHub

    return UplinkHub(channels)


# ---------------------------------------------------------------- services


def start_services(runtime: Any) -> None:
    """Start the modem server, MQTT subscriber, UDP listeners and simulators the site needs.

    Called from :meth:`scada.app.Runtime.start` on the running loop; each
    service is added to ``runtime.services`` so that stopping the runtime
    stops it.
    """
    cfg, reactor, services = runtime.cfg, runtime.reactor, runtime.services
    server = runtime.modem_server
    if server is not None:
        server.start()
        services.add("modem server", server.stop, server.health)
        log.info("modem server listening on %s:%s for %d modems", server.listen_host, server.port,
                 len(server.links))
        field = runtime.field
        if field is not None and field.modem_channels:
            field.start_modems(_reachable_host(server.listen_host), server.port)
    hub = runtime.uplinks
    if hub is None:
        return
    services.add("uplinks", lambda: None, hub.health)
    broker = subscriber = None
    lorawan = [c for c in cfg.channels if c.type == "lorawan"]
    if cfg.mqtt is not None and lorawan:
        broker = _broker(runtime)
        if broker is not None:
            from channels.lorawan.mqtt import DEFAULT_TOPIC, MqttSubscriber

            topics = sorted({c.transport.mqtt if c.transport is not None else DEFAULT_TOPIC for c in lorawan})
            subscriber = MqttSubscriber(hub, broker[0], broker[1], topics, cfg.mqtt.username, cfg.mqtt.password,
                                        cfg.mqtt.client_id, reactor=reactor)
            subscriber.start()
            services.add("mqtt", subscriber.stop, subscriber.health)
    for channel in cfg.channels:
        if channel.type == "nbiot" and channel.transport is not None:
            from channels.lorawan.udp import UdpListener

            host, port = _host_port(channel.transport.udp)
            listener = UdpListener(reactor, hub, host, port, channel.transport.id_pattern)
            listener.start()
            services.add(f"udp {channel.name}", listener.stop, listener.health)
    if runtime.field is not None and runtime.field.uplink_devices:
        _start_sim_uplinks(runtime, broker, subscriber)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((_reachable_host(host), port), timeout=0.5):
            return True
    except OSError:
        return False


def _broker(runtime: Any) -> tuple[str, int] | None:
    """Return the MQTT broker to use; on a simulated site with ``spawn``, start one if none listens.

    None when a broker was to be spawned but cannot be (``mosquitto`` is
    not installed): the simulated meters then use the HTTP integration.
    """
    cfg = runtime.cfg
    host, port = _host_port(cfg.mqtt.broker)
    if not (cfg.simulate and cfg.mqtt.spawn) or _port_open(host, port):
        return host, port
    broker = SpawnedBroker(host, port)
    if not broker.start():
        return None
    runtime.services.add("mosquitto", broker.stop, broker.health)
    return host, port


class SpawnedBroker:
    """The demo's own ``mosquitto``: loopback or the configured address, no persistence, stopped by PID."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.process: subprocess.Popen | None = None
        self._dir: str | None = None

    @staticmethod
    def binary() -> str | None:
        """Return the path of ``mosquitto`` (Debian installs it in /usr/sbin), or None."""
        return shutil.which("mosquitto") or next(
            (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None)

    def start(self, wait: float = 5.0) -> bool:
        """Start the broker and wait until it accepts connections; False (logged) if it cannot."""
        import time

        binary = self.binary()
        if binary is None:
            log.warning("mqtt: `mosquitto` is not installed, so the demo starts no broker; simulated LoRaWAN "
                        "meters post to the HTTP integration instead (apt-get install mosquitto)")
            return False
        self._dir = tempfile.mkdtemp(prefix="scada-mosquitto-")
        conf = Path(self._dir) / "mosquitto.conf"
        conf.write_text(f"listener {self.port} {self.host}\nallow_anonymous true\npersistence false\n"
                        "log_dest stderr\nlog_type error\nlog_type warning\n", encoding="utf-8")
        self.process = subprocess.Popen([binary, "-c", str(conf)], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if _port_open(self.host, self.port):
                log.info("mqtt: started mosquitto (pid %d) on %s:%d", self.process.pid, self.host, self.port)
                return True
            time.sleep(0.05)
        log.warning("mqtt: mosquitto did not start on %s:%d; simulated LoRaWAN meters use the HTTP integration",
                    self.host, self.port)
        self.stop()
        return False

    def stop(self) -> None:
        """Stop the broker by its PID and remove its configuration."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def health(self) -> dict:
        """Return the broker's address and PID."""
        running = self.process is not None and self.process.poll() is None
        return {"broker": f"{self.host}:{self.port}", "pid": self.process.pid if running else None,
                "running": running}


def _start_sim_uplinks(runtime: Any, broker: tuple[str, int] | None, subscriber: Any = None) -> None:
    """Let the simulated LoRaWAN/NB-IoT meters send uplinks: over MQTT if a broker is up, else HTTP.

    They start sending once the site can hear them: over MQTT when its
    subscriber is subscribed (the broker keeps nothing for late
    subscribers), over HTTP when the API listens.
    """
    from channels.sim.chirpstack import HttpPublisher, MqttPublisher, SimUplinkDevice, SimUplinks
    from scada.config.alarms import remote_points

    cfg, reactor, field = runtime.cfg, runtime.reactor, runtime.field
    devices = []
    for name, (device, _models) in field.uplink_devices.items():
        # The site passed `scada check`, so its decoder and options are known good.
        points = remote_points(device) or []

        def model(t: float, _name: str = name, _points: list[str] = points) -> dict[str, float]:
            return field.uplink_values(_name, _points, t)

        devices.append(SimUplinkDevice(name=name, model=model, period=float(device.poll), dev_eui=device.dev_eui,
                                       uplink_id=device.uplink_id, decoder=device.decoder,
                                       decoder_options=device.decoder_options))
    if broker is not None and all(d.dev_eui is not None for d in devices):
        publisher = MqttPublisher(broker[0], broker[1], client_id="scada-simulated-chirpstack")
        publisher.start()
        how = f"MQTT {broker[0]}:{broker[1]}"
    else:
        publisher = HttpPublisher(reactor, f"http://{_reachable_host(cfg.api.host)}:{cfg.api.port}",
                                  _sim_token(runtime) if cfg.api.auth else None)
        how = "the HTTP integration"
    uplinks = SimUplinks(reactor, devices, publisher)
    if isinstance(publisher, HttpPublisher):
        # They post to this site's own API: not before it listens, or the first posts are refused.
        runtime.when_serving(uplinks.start)
    elif subscriber is not None and not subscriber.connected:
        subscriber.on_first_subscribe.append(lambda: reactor.callLater(0, uplinks.start))
    else:
        uplinks.start()
    runtime.sim_uplinks = uplinks
    log.info("simulated uplinks: %d meters sending through %s", len(devices), how)

    def stop() -> None:
        uplinks.stop()
        publisher.stop()

    runtime.services.add("simulated uplinks", stop, uplinks.health)


def _sim_token(runtime: Any) -> str:
    """Return a fresh API token (role integration) for the simulated ChirpStack's HTTP posts."""
    from scada.auth import new_api_token, token_hash
    from scada.store import NotFound

    store = runtime.store
    try:
        store.revoke_token(SIM_TOKEN_NAME)
    except NotFound:
        pass
    token = new_api_token()
    store.add_token(SIM_TOKEN_NAME, "integration", token_hash(token), None)
    return token
