# -*- test-case-name: tests.channels.lorawan.test_channel -*-
"""NB-IoT meters that send raw UDP datagrams (often to port 5683, like CoAP).

Each datagram is one message: the device ID at its start (found by the ID
pattern, by default a 15-digit IMEI) then the payload, or a JSON message
(see :func:`channels.lorawan.uplink.parse_nbiot`).  Nothing is sent back:
the meters of this kind do not wait for an answer, and answering spoofed
source addresses would make the listener an amplifier.

Runtime use::

    listener = UdpListener(reactor, hub, "0.0.0.0", 5683, id_pattern)
    listener.start()                      # reactor.listenUDP; listener.port is the bound port
    ...
    yield listener.stop()                 # a Deferred
"""

from __future__ import annotations

import logging
import re
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import DatagramProtocol

from channels.lorawan.uplink import UplinkError, compile_id_pattern

log = logging.getLogger(__name__)


class _Protocol(DatagramProtocol):
    """Hands every datagram to the listener."""

    def __init__(self, listener: UdpListener) -> None:
        self.listener = listener

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:  # noqa: N802 - Twisted interface
        """Take one datagram."""
        self.listener.datagram(datagram, addr)


class UdpListener:
    """Receive NB-IoT datagrams on ``host:port`` and hand them to an :class:`UplinkHub`.

    ``id_pattern`` is a regular expression over bytes (a ``str`` is taken
    byte for byte) whose group ``id`` (else group 1) is the device ID;
    ``None`` takes the hub's default.  ``log_every`` limits refusal warnings
    to one per that many seconds.
    """

    def __init__(self, reactor, hub, host: str = "0.0.0.0", port: int = 5683,
                 id_pattern: bytes | str | re.Pattern[bytes] | None = None, *, log_every: float = 60.0) -> None:
        """Prepare the listener; ValueError naming a bad ID pattern."""
        self._reactor = reactor
        self.hub = hub
        self.host = host
        self.wanted_port = int(port)
        self.id_pattern = None if id_pattern is None else compile_id_pattern(id_pattern)
        self.log_every = log_every
        self._listening = None
        self.datagrams = 0
        self.accepted = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last_peer: str | None = None
        self._last_log: float | None = None
        self._suppressed = 0

    @property
    def port(self) -> int | None:
        """Return the bound port while listening (the real one when started with port 0), else None."""
        return None if self._listening is None else self._listening.getHost().port

    def start(self) -> None:
        """Start listening (``reactor.listenUDP``); raise the reactor's CannotListenError if the port is taken."""
        if self._listening is None:
            self._listening = self._reactor.listenUDP(self.wanted_port, _Protocol(self), interface=self.host)
            log.info("NB-IoT: listening for UDP datagrams on %s:%s", self.host, self.port)

    def stop(self):
        """Stop listening; return a Deferred that fires when the port is closed."""
        listening, self._listening = self._listening, None
        if listening is None:
            return defer.succeed(None)
        return defer.maybeDeferred(listening.stopListening)

    def datagram(self, data: bytes, addr: Any = None) -> dict | None:
        """Hand one datagram to the hub; count and log a refusal.  Never raises.

        Returns the hub's answer, or ``None`` when the datagram was refused.
        """
        self.datagrams += 1
        peer = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and len(addr) >= 2 else None
        self.last_peer = peer
        try:
            result = self.hub.nbiot(data, None, None, id_pattern=self.id_pattern)
        except UplinkError as exc:
            self._refused(f"{exc.message} (from {peer or '?'})")
            return None
        except Exception as exc:  # noqa: BLE001 - a bad datagram must not stop the listener
            log.exception("NB-IoT: datagram from %s not handled", peer)
            self._refused(f"{type(exc).__name__}: {exc} (from {peer or '?'})")
            return None
        self.accepted += 1
        return result

    def _refused(self, message: str) -> None:
        self.errors += 1
        self.last_error = message
        now = self._reactor.seconds()
        if self._last_log is not None and now - self._last_log < self.log_every:
            self._suppressed += 1
            return
        more = f" ({self._suppressed} more since the last warning)" if self._suppressed else ""
        log.warning("NB-IoT: datagram refused: %s%s", message, more)
        self._last_log = now
        self._suppressed = 0

    def health(self) -> dict:
        """Return the listener's address and counters for ``/health``."""
        return {
            "listen": f"{self.host}:{self.port if self.port is not None else self.wanted_port}",
            "listening": self._listening is not None, "datagrams": self.datagrams, "accepted": self.accepted,
            "errors": self.errors, "last_error": self.last_error, "last_peer": self.last_peer,
        }
