"""Tests for scada.remote: the service set, the modem server and modem links, the spawned broker."""

from __future__ import annotations

import logging
import os
import socket
from types import SimpleNamespace

import pytest
from twisted.internet.task import Clock

from channels.transports.modem import ModemServer
from scada.config.model import ChannelConfig
from scada.config.remote import ModemServerConfig
from scada.remote import MODEM_GRACE_MAX_S, ServiceSet, SpawnedBroker, build_modem_server, modem_link_factory

MODEM = "860000000000001"

# ---------------------------------------------------------------- ServiceSet


def test_services_stop_in_reverse_order():
    """The last service started is stopped first; health is gone afterwards."""
    stopped = []
    services = ServiceSet()
    for name in ("modem server", "mqtt", "udp nb"):
        services.add(name, lambda name=name: stopped.append(name))
    services.stop()
    assert stopped == ["udp nb", "mqtt", "modem server"]
    services.stop()  # nothing left: a second stop is harmless
    assert stopped == ["udp nb", "mqtt", "modem server"]


def test_stop_failures_are_collected_into_one_error():
    """Every service gets its stop call; the failures are named in one RuntimeError."""
    stopped = []

    def failing(name: str, error: Exception):
        def stop():
            stopped.append(name)
            raise error
        return stop

    services = ServiceSet()
    services.add("modem server", failing("modem server", OSError("port busy")))
    services.add("mqtt", lambda: stopped.append("mqtt"))
    services.add("mosquitto", failing("mosquitto", ValueError("no such process")))
    with pytest.raises(RuntimeError) as info:
        services.stop()
    assert stopped == ["mosquitto", "mqtt", "modem server"]
    assert str(info.value) == "mosquitto: no such process; modem server: port busy"
    assert services.health() == {}


def test_health_reports_services_with_a_health_call():
    """health() asks each service that has a health callable, by name."""
    services = ServiceSet()
    services.add("uplinks", lambda: None, lambda: {"received": 3})
    services.add("quiet", lambda: None)
    services.add("mqtt", lambda: None, lambda: {"connected": True})
    assert services.health() == {"uplinks": {"received": 3}, "mqtt": {"connected": True}}
    services.stop()
    assert services.health() == {}


# ------------------------------------------------------------ modem server


def test_no_modem_server_without_the_section():
    """A site without ``modem_server:`` gets no server."""
    assert build_modem_server(SimpleNamespace(modem_server=None), Clock()) is None
    assert build_modem_server(SimpleNamespace(), Clock()) is None


def test_modem_server_from_the_section():
    """The server has the section's address and timeouts, and the site's types before the default one."""
    settings = ModemServerConfig.model_validate({
        "listen": "127.0.0.1:5021", "identify_timeout": 12.0, "idle_timeout": 90.0, "max_timeouts": 5,
        "heartbeat": r"^PING\r\n",
        "types": [{"name": "teleofis", "id_pattern": r"^LOGIN:(?P<id>\d+)\r\n", "prefix": True},
                  {"name": "irz", "id_pattern": r"^(\d{15})"}]})
    reactor = Clock()
    server = build_modem_server(SimpleNamespace(modem_server=settings), reactor)
    assert isinstance(server, ModemServer)
    assert [t.name for t in server.types] == ["teleofis", "irz", "default"]
    assert server.types[0].prefix is True and server.types[-1].heartbeat == r"^PING\r\n"
    assert (server.listen_host, server.port) == ("127.0.0.1", 5021)
    assert (server.identify_timeout, server.idle_timeout, server.max_timeouts) == (12.0, 90.0, 5)
    assert server.links == {}


def modem_channel(transport: dict | None, kind: str = "modbus-rtu") -> ChannelConfig:
    """Return a channel config with ``transport``."""
    data = {"name": "bus", "type": kind, "devices": []}
    if transport is not None:
        data["transport"] = transport
    return ChannelConfig.model_validate(data)


class FakeServer:
    """What the link factory uses of a modem server: identify_timeout and register()."""

    def __init__(self, identify_timeout: float) -> None:
        self.identify_timeout = identify_timeout
        self.registered: list[tuple[str, object]] = []

    def register(self, modem_id, sink):
        self.registered.append((modem_id, sink))
        return ("link", modem_id)


def test_no_link_factory_for_channels_without_a_modem():
    """Serial and TCP channels, and channels with no transport, use their own transports."""
    server = FakeServer(30.0)
    assert modem_link_factory(server, modem_channel({"serial": "/dev/ttyUSB0"})) is None
    assert modem_link_factory(server, modem_channel({"tcp": "192.0.2.1:4001"})) is None
    assert modem_link_factory(server, modem_channel(None, "manual")) is None
    assert server.registered == []


def test_link_factory_needs_the_server():
    """A modem channel without a modem server is a ValueError naming the channel."""
    with pytest.raises(ValueError, match="channel 'bus' needs the modem server"):
        modem_link_factory(None, modem_channel({"modem": MODEM}))


@pytest.mark.parametrize("identify_timeout, grace", [(20.0, 20.0), (300.0, MODEM_GRACE_MAX_S)])
def test_link_factory_registers_the_modem_and_sets_the_grace(identify_timeout, grace):
    """The scheduler waits min(identify_timeout, 60 s) for the modem to dial in; the link is the server's."""
    server = FakeServer(identify_timeout)
    build = modem_link_factory(server, modem_channel({"modem": MODEM}))
    scheduler = SimpleNamespace(link_grace=0.0)
    assert build(scheduler) == ("link", MODEM)
    assert scheduler.link_grace == grace
    assert server.registered == [(MODEM, scheduler)]


def test_link_factory_keeps_a_longer_grace():
    """A grace the scheduler already has that is longer is not shortened."""
    build = modem_link_factory(FakeServer(20.0), modem_channel({"modem": MODEM}))
    scheduler = SimpleNamespace(link_grace=90.0)
    build(scheduler)
    assert scheduler.link_grace == 90.0


def test_link_factory_with_a_real_server():
    """Against the real server the modem ID is registered once."""
    settings = ModemServerConfig.model_validate({"listen": "127.0.0.1:5022", "identify_timeout": 5.0})
    server = build_modem_server(SimpleNamespace(modem_server=settings), Clock())
    scheduler = SimpleNamespace(link_grace=0.0)
    link = modem_link_factory(server, modem_channel({"modem": MODEM}))(scheduler)
    assert server.links == {MODEM: link}
    assert scheduler.link_grace == 5.0


# ------------------------------------------------------------------ broker


def test_broker_not_started_without_mosquitto(monkeypatch, caplog):
    """Without the binary start() is False, a warning says why, and nothing runs."""
    monkeypatch.setattr(SpawnedBroker, "binary", staticmethod(lambda: None))
    caplog.set_level(logging.WARNING, logger="scada.remote")
    broker = SpawnedBroker("127.0.0.1", 1)
    assert broker.start() is False
    assert broker.process is None
    assert broker.health() == {"broker": "127.0.0.1:1", "pid": None, "running": False}
    (record,) = [r for r in caplog.records if r.name == "scada.remote"]
    assert record.levelno == logging.WARNING
    assert "mosquitto" in record.getMessage() and "not installed" in record.getMessage()
    broker.stop()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.integration
@pytest.mark.skipif(SpawnedBroker.binary() is None, reason="mosquitto is not installed")
def test_spawned_broker_runs_and_stops():
    """The broker listens on the port, reports its PID, and is gone after stop()."""
    port = free_port()
    broker = SpawnedBroker("127.0.0.1", port)
    try:
        assert broker.start() is True
        process, directory = broker.process, broker._dir
        health = broker.health()
        assert health == {"broker": f"127.0.0.1:{port}", "pid": process.pid, "running": True}
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        broker.stop()
    assert process.poll() is not None
    assert broker.process is None and broker.health()["running"] is False
    assert not os.path.exists(directory)
