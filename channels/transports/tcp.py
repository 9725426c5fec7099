# -*- test-case-name: tests.channels.test_bus -*-
"""A TCP client link (serial gateway or Modbus TCP device), reconnected with backoff."""

from __future__ import annotations

import logging

from twisted.internet.protocol import ClientFactory

from channels.transports.base import Backoff, LinkSink, SinkProtocol, write_now

log = logging.getLogger(__name__)


class TcpLink:
    """Connect to ``host:port`` and reconnect with a doubling delay when it drops."""

    def __init__(self, reactor, sink: LinkSink, host: str, port: int, connect_timeout: float = 10.0) -> None:
        self._reactor = reactor
        self._sink = sink
        self.host = host
        self.port = port
        self.endpoint = f"{host}:{port}"
        self._connect_timeout = connect_timeout
        self._protocol = None
        self._connector = None
        self._retry = None
        self._backoff = Backoff()
        self._stopped = True
        self.state = "closed"
        self.last_error = ""
        self.connects = 0

    def start(self) -> None:
        """Connect now and keep reconnecting until :meth:`stop`."""
        self._stopped = False
        self._connect()

    def _connect(self) -> None:
        self._retry = None
        self.state = "connecting"
        link = self

        class _Factory(ClientFactory):
            def buildProtocol(self, addr):  # noqa: N802 - Twisted callback
                return SinkProtocol(link, link._sink)

            def clientConnectionFailed(self, connector, reason):  # noqa: N802 - Twisted callback
                link._failed(reason.getErrorMessage())

            def clientConnectionLost(self, connector, reason):  # noqa: N802 - Twisted callback
                pass

        self._connector = self._reactor.connectTCP(self.host, self.port, _Factory(), timeout=self._connect_timeout)

    def _connected(self, protocol) -> None:
        self._protocol = protocol
        self.state = "open"
        self.last_error = ""
        self.connects += 1
        self._backoff.reset()
        try:
            from twisted.internet.interfaces import ITCPTransport

            if ITCPTransport.providedBy(protocol.transport):
                protocol.transport.setTcpNoDelay(True)
        except Exception:  # noqa: BLE001 - best effort on exotic transports
            pass
        log.info("connected to %s", self.endpoint)
        self._sink.link_up(self)

    def _disconnected(self, protocol, reason) -> None:
        self._protocol = None
        if self._stopped:
            self.state = "closed"
            return
        self.last_error = reason.getErrorMessage() if reason is not None else "closed"
        log.warning("connection to %s lost: %s", self.endpoint, self.last_error)
        self._sink.link_down(self.last_error)
        self._schedule()

    def _failed(self, message: str) -> None:
        if self._stopped:
            return
        self.last_error = message
        self._sink.link_down(message)
        self._schedule()

    def _schedule(self) -> None:
        self.state = "waiting"
        delay = self._backoff.next()
        log.warning("cannot reach %s (%s); retrying in %.0f s", self.endpoint, self.last_error, delay)
        self._retry = self._reactor.callLater(delay, self._connect)

    def write(self, data: bytes) -> None:
        """Send ``data`` if connected."""
        if self._protocol is not None:
            write_now(self._protocol.transport, data)

    def stop(self) -> None:
        """Disconnect and stop reconnecting."""
        self._stopped = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        if self._protocol is not None:
            self._protocol.transport.loseConnection()
        elif self._connector is not None and self.state == "connecting":
            self._connector.stopConnecting()
        self.state = "closed"

    def health(self) -> dict:
        """Return state, endpoint and reconnect count."""
        return {"transport": "tcp", "endpoint": self.endpoint, "state": self.state,
                "last_error": self.last_error, "connects": self.connects}
