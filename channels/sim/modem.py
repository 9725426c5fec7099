# -*- test-case-name: tests.channels.test_modem -*-
"""A simulated GPRS modem: dials in to the modem server and bridges a simulated bus.

:class:`SimModem` behaves like a DTU-mode modem with meters on its serial
side: it connects to the dispatch centre over TCP, sends its registration
packet, sends a heartbeat whenever it has sent nothing for
``heartbeat_every`` seconds, passes every byte it receives to the simulated
bus (a :class:`~channels.sim.slave.SimBus` or
:class:`~channels.sim.mbus.SimMBusSegment`) and every byte the bus answers
back to the socket (behind the registration packet with ``prefix``), and
redials with a doubling delay when the connection drops.

The bus is connected to the modem once, at :meth:`SimModem.start`, not to
each TCP connection: the meters' serial line does not notice the GPRS
session coming and going, and answers they give while the modem is offline
are lost, as on a real modem.
"""

from __future__ import annotations

import logging

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.python.failure import Failure

from channels.transports.base import Backoff, write_now

log = logging.getLogger(__name__)


class _SerialSide:
    """The transport the simulated bus writes its answers to: the modem's serial port."""

    disconnecting = False

    def __init__(self, modem: "SimModem") -> None:
        self._modem = modem

    def write(self, data: bytes) -> None:
        """Send the bus's bytes up the modem's TCP connection (dropped while offline)."""
        self._modem._from_bus(data)

    def writeSequence(self, data) -> None:  # noqa: N802 - Twisted transport interface
        """Send several chunks as one."""
        self._modem._from_bus(b"".join(data))

    def loseConnection(self) -> None:  # noqa: N802 - Twisted transport interface
        """Do nothing: meters cannot hang up the modem."""

    def getPeer(self):  # noqa: N802 - Twisted transport interface
        """Return the modem's name as the bus's peer."""
        return f"modem {self._modem.name}"

    getHost = getPeer


class _Uplink(Protocol):
    """The modem's TCP connection to the server."""

    def __init__(self, modem: "SimModem") -> None:
        self._modem = modem

    def connectionMade(self) -> None:  # noqa: N802 - Twisted callback
        """Register with the server."""
        self._modem._connected(self)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted callback
        """Hand the master's bytes to the bus."""
        self._modem._from_server(self, data)

    def connectionLost(self, reason=None) -> None:  # noqa: N802 - Twisted callback
        """Redial (unless stopped)."""
        self._modem._lost(self, reason)


class _UplinkFactory(ClientFactory):
    noisy = False

    def __init__(self, modem: "SimModem") -> None:
        self._modem = modem

    def buildProtocol(self, addr) -> _Uplink:  # noqa: N802 - Twisted callback
        return _Uplink(self._modem)

    def clientConnectionFailed(self, connector, reason) -> None:  # noqa: N802 - Twisted callback
        self._modem._failed(reason)


class SimModem:
    """A dial-in modem in front of a simulated bus (see the module docstring).

    ``register`` is the registration packet sent first on every
    connection; ``heartbeat`` (None or empty: none) is sent after
    ``heartbeat_every`` seconds without sending anything; with ``prefix``
    every answer of the bus goes out behind ``register``.  With ``redial``
    a lost or refused connection is retried after ``backoff`` delays
    (default 1 s doubling to 60 s).
    """

    def __init__(self, reactor, host: str, port: int, register: bytes, heartbeat: bytes | None,
                 heartbeat_every: float, inner_protocol: Protocol, prefix: bool = False, redial: bool = True,
                 backoff: Backoff | None = None, connect_timeout: float = 10.0, name: str = "") -> None:
        """Keep the settings; nothing connects before :meth:`start`."""
        if not register:
            raise ValueError("a simulated modem needs a registration packet")
        self._reactor = reactor
        self.host = host
        self.port = port
        self.register = bytes(register)
        self.heartbeat = bytes(heartbeat) if heartbeat else None
        self.heartbeat_every = float(heartbeat_every or 0.0)
        self.inner = inner_protocol
        self.prefix = prefix
        self.redial = redial
        self.name = name or "".join(ch if ch.isprintable() else "?" for ch in self.register.decode("latin-1").strip())
        self._backoff = backoff or Backoff()
        self._connect_timeout = connect_timeout
        self._serial = _SerialSide(self)
        self._bus_attached = False
        self._stopped = True
        self._uplink: _Uplink | None = None
        self._connector = None
        self._retry = None
        self._beat = None
        self._last_tx = 0.0
        self._closing: list[Deferred] = []
        # Counters.
        self.dials = 0
        self.connects = 0
        self.heartbeats = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.dropped = 0
        self.last_error = ""

    @property
    def connected(self) -> bool:
        """Tell whether the TCP connection to the server is up."""
        return self._uplink is not None

    def start(self) -> None:
        """Attach the bus and dial in; keep redialling (with ``redial``) until :meth:`stop`."""
        if not self._stopped:
            return
        self._stopped = False
        if not self._bus_attached:
            self.inner.makeConnection(self._serial)
            self._bus_attached = True
        self._dial()

    def stop(self) -> Deferred:
        """Hang up for good; the Deferred fires once the connection is closed."""
        self._stopped = True
        for call in (self._retry, self._beat):
            if call is not None and call.active():
                call.cancel()
        self._retry = self._beat = None
        if self._bus_attached:
            self._bus_attached = False
            # Cancels answers the bus still holds back for their latency.
            self.inner.connectionLost(Failure(ConnectionDone("modem stopped")))
        if self._uplink is not None:
            done: Deferred = Deferred()
            self._closing.append(done)
            self._uplink.transport.loseConnection()
            return done
        if self._connector is not None and getattr(self._connector, "state", "") == "connecting":
            self._connector.stopConnecting()
        return succeed(None)

    def hang_up(self) -> None:
        """Drop the current connection as a GPRS session loss would (it redials with ``redial``)."""
        if self._uplink is not None:
            self._uplink.transport.loseConnection()

    def health(self) -> dict:
        """Return the connection state and counters."""
        return {"endpoint": f"{self.host}:{self.port}", "connected": self.connected, "dials": self.dials,
                "connects": self.connects, "heartbeats": self.heartbeats, "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out, "dropped": self.dropped, "last_error": self.last_error}

    # ------------------------------------------------------------ internals

    def _dial(self) -> None:
        self._retry = None
        if self._stopped:
            return
        self.dials += 1
        self._connector = self._reactor.connectTCP(self.host, self.port, _UplinkFactory(self),
                                                   timeout=self._connect_timeout)

    def _connected(self, uplink: _Uplink) -> None:
        if self._stopped:
            uplink.transport.loseConnection()
            return
        self._uplink = uplink
        self.connects += 1
        self.last_error = ""
        self._backoff.reset()
        self._send(self.register)
        if self.heartbeat is not None and self.heartbeat_every > 0:
            self._beat = self._reactor.callLater(self.heartbeat_every, self._heartbeat)

    def _from_server(self, uplink: _Uplink, data: bytes) -> None:
        if uplink is not self._uplink or not self._bus_attached:
            return
        self.bytes_in += len(data)
        self.inner.dataReceived(data)

    def _from_bus(self, data: bytes) -> None:
        if self._uplink is None:
            self.dropped += len(data)
            return
        self._send(self.register + data if self.prefix else data)

    def _send(self, data: bytes) -> None:
        self._last_tx = self._reactor.seconds()
        self.bytes_out += len(data)
        write_now(self._uplink.transport, data)

    def _heartbeat(self) -> None:
        """Send a heartbeat if nothing went out for a whole period; re-arm for the next check."""
        self._beat = None
        if self._uplink is None or self._stopped:
            return
        now = self._reactor.seconds()
        due = self._last_tx + self.heartbeat_every
        if now + 1e-6 >= due:
            self.heartbeats += 1
            self._send(self.heartbeat)
            due = now + self.heartbeat_every
        self._beat = self._reactor.callLater(due - now, self._heartbeat)

    def _lost(self, uplink: _Uplink, reason) -> None:
        if uplink is not self._uplink:
            return
        self._uplink = None
        if self._beat is not None and self._beat.active():
            self._beat.cancel()
        self._beat = None
        closing, self._closing = self._closing, []
        for done in closing:
            done.callback(None)
        if self._stopped:
            return
        self.last_error = reason.getErrorMessage() if reason is not None else "closed"
        self._schedule()

    def _failed(self, reason) -> None:
        if self._stopped:
            return
        self.last_error = reason.getErrorMessage()
        self._schedule()

    def _schedule(self) -> None:
        if not self.redial:
            log.info("simulated modem %s: connection ended (%s); not redialling", self.name, self.last_error)
            return
        delay = self._backoff.next()
        log.info("simulated modem %s: %s; redialling in %.1f s", self.name, self.last_error, delay)
        self._retry = self._reactor.callLater(delay, self._dial)


__all__ = ["SimModem"]
