# -*- test-case-name: tests.channels.test_tcp_link -*-
"""A TCP client link (serial gateway, Modbus TCP device, modem in server mode).

The link reconnects with a doubling delay when the connection drops or
cannot be made.  Every delay gets a random spread of ``±jitter`` of itself,
so that many modems behind one mobile operator that lost their network
together do not all redial in the same second.

With a connection *window* (:mod:`channels.transports.window`) the link is
connected only inside the window: it connects at the opening, retries with
backoff while the window lasts (never past its end), and at the end drops
the connection cleanly and sleeps until the next opening.  A site uses this
to read a GPRS modem's archives once a day and keep the traffic bill small.

States (``health()["state"]``): ``closed`` (not started or stopped),
``connecting``, ``open``, ``waiting`` (backoff before a retry) and
``sleeping`` (outside the window).
"""

from __future__ import annotations

import logging
import math
import random
from datetime import datetime, timezone, tzinfo
from zoneinfo import ZoneInfo

from twisted.internet.error import NotConnectingError
from twisted.internet.protocol import ClientFactory

from channels.transports.base import OUTSIDE_WINDOW, Backoff, LinkSink, SinkProtocol, write_now
from channels.transports.window import ConnectWindow

log = logging.getLogger(__name__)

__all__ = ["OUTSIDE_WINDOW", "TcpLink"]


class TcpLink:
    """Connect to ``host:port`` and reconnect with a jittered doubling delay when it drops.

    ``window``: connect only inside it (``None``, or an ``always`` window:
    stay connected).  ``tz``: the site's time zone (tzinfo or zone name) the
    window's wall-clock times are read in (``None``: UTC).  ``jitter``: each backoff delay is
    spread uniformly over ``delay × (1 ± jitter)``, ``0 <= jitter < 1``.
    ``rng``: the random source for the spread (tests inject a seeded one).
    """

    def __init__(self, reactor, sink: LinkSink, host: str, port: int, connect_timeout: float = 10.0, *,
                 window: ConnectWindow | None = None, tz: tzinfo | str | None = None, jitter: float = 0.2,
                 rng: random.Random | None = None) -> None:
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"jitter {jitter!r} must be at least 0 and below 1")
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
        self._jitter = jitter
        self._rng = rng if rng is not None else random.Random()
        # An "always" window is no window: no timers, no sleeping.
        self.window = window if window is not None and not window.always else None
        if isinstance(tz, str):
            tz = ZoneInfo(tz)
        self._tz = tz if tz is not None else timezone.utc
        self._wake = None
        self._close = None
        self._window_end = math.inf
        self._stopped = True
        self.state = "closed"
        self.last_error = ""
        self.connects = 0

    # ------------------------------------------------------------ control

    def start(self) -> None:
        """Connect now (or at the window's opening) and keep reconnecting until :meth:`stop`."""
        self._stopped = False
        if self.window is None:
            self._connect()
            return
        now = self._reactor.seconds()
        if self.window.contains(now, self._tz):
            self._open_window(now)
        else:
            self._sleep(now)

    def stop(self) -> None:
        """Disconnect and stop reconnecting; no timer of the link stays scheduled."""
        self._stopped = True
        for call in (self._retry, self._wake, self._close):
            if call is not None and call.active():
                call.cancel()
        self._retry = self._wake = self._close = None
        if self._protocol is not None:
            self._protocol.transport.loseConnection()
        elif self._connector is not None and self.state == "connecting":
            self._stop_connecting()
        self.state = "closed"

    def write(self, data: bytes) -> None:
        """Send ``data`` if connected."""
        if self._protocol is not None:
            write_now(self._protocol.transport, data)

    def health(self) -> dict:
        """Return state, endpoint, reconnect count, and the window with its next opening.

        ``next_window`` is the Unix time of the next opening after now (after
        the current window when inside one); ``window_end`` the end of the
        current window while inside one.  Both are ``None`` without a window.
        """
        next_window = window_end = None
        if self.window is not None:
            now = self._reactor.seconds()
            if self.window.contains(now, self._tz):
                window_end = self.window.next_close(now, self._tz)
                next_window = self.window.next_open(window_end, self._tz) if window_end != math.inf else None
            else:
                next_window = self.window.next_open(now, self._tz)
        return {"transport": "tcp", "endpoint": self.endpoint, "state": self.state,
                "last_error": self.last_error, "connects": self.connects,
                "window": self.window.describe() if self.window is not None else None,
                "next_window": next_window, "window_end": window_end}

    # ------------------------------------------------------------ window

    def _open_window(self, now: float) -> None:
        """Enter the window: a fresh backoff, connect now, and close at its end."""
        self._window_end = self.window.next_close(now, self._tz)
        if self._window_end != math.inf:
            self._close = self._reactor.callLater(self._window_end - now, self._close_window)
        self._backoff.reset()
        log.info("%s: connection window open until %s", self.endpoint, self._local(self._window_end))
        self._connect()

    def _close_window(self) -> None:
        """Leave the window: drop the connection (or the attempt) cleanly and sleep."""
        self._close = None
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        protocol, self._protocol = self._protocol, None
        connecting = self.state == "connecting"
        # Sleeping before the transport calls back, so that its
        # connectionLost or failed attempt is taken as expected.
        self.state = "sleeping"
        if protocol is not None:
            protocol.transport.loseConnection()
        elif connecting and self._connector is not None:
            self._stop_connecting()
        # A timer may fire a hair early on a real loop; from the planned end
        # on, so the window just left is not taken for the next one.
        self._sleep(max(self._reactor.seconds(), self._window_end))

    def _sleep(self, now: float) -> None:
        """Sleep until the next opening after ``now`` and tell the sink once."""
        self.state = "sleeping"
        self._window_end = math.inf
        opens = self.window.next_open(now, self._tz)
        log.info("%s: outside connection window %s; next opening at %s", self.endpoint, self.window.describe(),
                 self._local(opens))
        self._wake = self._reactor.callLater(max(0.0, opens - self._reactor.seconds()), self._wake_up)
        self._sink.link_down(OUTSIDE_WINDOW)

    def _local(self, t_utc: float) -> str:
        """Return ``t_utc`` as local wall-clock time for the log."""
        if t_utc == math.inf:
            return "never"
        return datetime.fromtimestamp(t_utc, self._tz).isoformat(timespec="seconds")

    def _wake_up(self) -> None:
        self._wake = None
        now = self._reactor.seconds()
        if self.window.contains(now, self._tz):
            self._open_window(now)
        else:
            # Woken early (a real loop's timer resolution): sleep on quietly.
            opens = self.window.next_open(now, self._tz)
            self._wake = self._reactor.callLater(max(0.0, opens - now), self._wake_up)

    # --------------------------------------------------------- connecting

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

    def _stop_connecting(self) -> None:
        try:
            self._connector.stopConnecting()
        except NotConnectingError:
            # Already connected or failed; its callback sorts it out.
            pass

    def _connected(self, protocol) -> None:
        if self._stopped or self.state != "connecting":
            # An attempt that completed after stop() or the window's end.
            protocol.transport.loseConnection()
            return
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
        if protocol is not self._protocol:
            # Dropped on purpose at the window's end, or refused in _connected.
            return
        self._protocol = None
        if self._stopped:
            self.state = "closed"
            return
        self.last_error = reason.getErrorMessage() if reason is not None else "closed"
        log.warning("connection to %s lost: %s", self.endpoint, self.last_error)
        self._sink.link_down(self.last_error)
        self._schedule()

    def _failed(self, message: str) -> None:
        if self._stopped or self.state != "connecting":
            # The attempt stop() or the window's end cancelled.
            return
        self.last_error = message
        self._sink.link_down(message)
        self._schedule()

    def _schedule(self) -> None:
        self.state = "waiting"
        base = self._backoff.next()
        delay = base * (1.0 + self._jitter * self._rng.uniform(-1.0, 1.0))
        if self.window is not None and self._reactor.seconds() + delay >= self._window_end:
            # No retry past the window's end; _close_window puts the link to sleep.
            log.warning("cannot reach %s (%s); no retry before the window ends", self.endpoint, self.last_error)
            return
        log.warning("cannot reach %s (%s); retrying in %.1f s", self.endpoint, self.last_error, delay)
        self._retry = self._reactor.callLater(delay, self._connect)
