# -*- test-case-name: tests.integration.test_pty_engine -*-
"""A local serial port (RS-485 adapter or a pty) as a link, reopened when it fails."""

from __future__ import annotations

import logging
import os

from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from channels.transports import rs485
from channels.transports.base import Backoff, LinkSink, SinkProtocol, write_now

log = logging.getLogger(__name__)

_PARITY = {"N": "N", "E": "E", "O": "O"}


def is_pty(device: str) -> bool:
    """Tell whether ``device`` is the slave side of a pseudo-terminal (a simulator's port)."""
    return os.path.realpath(device).startswith("/dev/pts/")


class SerialLink:
    """Open ``device`` with pyserial under Twisted's ``SerialPort``.

    RS-485 settings are applied after each open and their outcome is kept for
    the health report: ``applied``, ``unsupported`` (with the kernel's reason)
    or ``not_requested``.  When the port cannot be opened or disappears (a USB
    adapter unplugged) the link retries with a doubling delay.
    """

    def __init__(
        self,
        reactor,
        sink: LinkSink,
        device: str,
        baudrate: int = 9600,
        parity: str = "E",
        stopbits: int = 1,
        bytesize: int = 8,
        rts_toggle: bool = False,
        termination: bool = False,
        delay_before_tx: float | None = None,
        delay_before_rx: float | None = None,
    ) -> None:
        self._reactor = reactor
        self._sink = sink
        self.endpoint = device
        if is_pty(device):
            # A pseudo-terminal has no line: parity means nothing, and Linux
            # refuses to reopen one whose termios still has PARENB (EINVAL).
            parity = "N"
        self._settings = dict(baudrate=baudrate, parity=_PARITY[parity], stopbits=stopbits, bytesize=bytesize)
        self._rts_toggle = rts_toggle
        self._termination = termination
        self._delays = (delay_before_tx, delay_before_rx)
        self._port = None
        self._retry = None
        self._backoff = Backoff()
        self._stopped = True
        self.state = "closed"
        self.last_error = ""
        self.rs485 = {
            "rts_toggle": rs485.NOT_REQUESTED if not rts_toggle else "pending",
            "termination": rs485.NOT_REQUESTED if not termination else "pending",
            "detail": {},
        }

    def start(self) -> None:
        """Open the port now, and keep reopening it until :meth:`stop`."""
        self._stopped = False
        self._open()

    def _open(self) -> None:
        from twisted.internet.serialport import SerialPort

        self._retry = None
        self.state = "opening"
        try:
            self._port = SerialPort(SinkProtocol(self, self._sink), self.endpoint, self._reactor, **self._settings)
        except Exception as exc:  # pyserial raises SerialException, OSError, ValueError
            self.last_error = str(exc)
            self._open_failed()

    def _apply_rs485(self, serial_port) -> None:
        detail = {}
        if self._rts_toggle:
            state, detail["rts_toggle"] = rs485.apply_rts_toggle(serial_port, *self._delays)
            self.rs485["rts_toggle"] = state
        if self._termination:
            state, detail["termination"] = rs485.apply_termination(serial_port.fd, True)
            self.rs485["termination"] = state
        self.rs485["detail"] = detail
        for key, text in detail.items():
            if self.rs485[key] != rs485.APPLIED:
                log.warning("%s: %s not applied: %s", self.endpoint, key, text)

    def _connected(self, protocol) -> None:
        # SerialPort's constructor calls makeConnection before it returns, so
        # _open has not stored the port yet; the scheduler may write from
        # link_up below.
        self._port = protocol.transport
        self.state = "open"
        self.last_error = ""
        self._backoff.reset()
        # SerialPort calls makeConnection from its constructor, so the port is
        # reachable only through the protocol's transport here.
        self._apply_rs485(protocol.transport._serial)
        log.info("serial port %s open (%s)", self.endpoint, self._settings)
        self._sink.link_up(self)

    def _disconnected(self, protocol, reason) -> None:
        self._port = None
        self.state = "closed"
        if self._stopped:
            return
        self.last_error = reason.getErrorMessage() if reason is not None else "closed"
        log.warning("serial port %s lost: %s", self.endpoint, self.last_error)
        self._sink.link_down(self.last_error)
        self._schedule_reopen()

    def _open_failed(self) -> None:
        log.warning("cannot open %s (%s); retrying in %.0f s", self.endpoint, self.last_error, self._backoff.delay)
        self._sink.link_down(self.last_error)
        self._schedule_reopen()

    def _schedule_reopen(self) -> None:
        self.state = "waiting"
        if self._stopped:
            return
        self._retry = self._reactor.callLater(self._backoff.next(), self._open)

    def write(self, data: bytes) -> None:
        """Send ``data`` if the port is open."""
        if self._port is not None:
            write_now(self._port, data)

    def stop(self) -> None:
        """Close the port and stop reopening it."""
        self._stopped = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._port is not None:
            port, self._port = self._port, None
            # A serial port has no peer to wait for: close the fd now (not via
            # loseConnection's deferred close) so that a restart in the same
            # process can reopen the device at once.
            port.connectionLost(Failure(ConnectionDone("port closed")))
        self.state = "closed"

    def health(self) -> dict:
        """Return state, endpoint, line settings and RS-485 outcome."""
        return {
            "transport": "serial",
            "endpoint": self.endpoint,
            "state": self.state,
            "last_error": self.last_error,
            "settings": dict(self._settings),
            "rs485": {k: v for k, v in self.rs485.items()},
        }
