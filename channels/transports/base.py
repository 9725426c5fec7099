# -*- test-case-name: tests.channels.test_transports -*-
"""What a bus scheduler needs from a transport, and what a transport tells it.

A *link* moves bytes to and from one half-duplex segment (a serial port, a TCP
serial gateway) or one TCP connection.  It owns reconnecting; the scheduler
owns timing.  The link calls back its *sink* (the scheduler):

- ``link_up(link)`` when bytes can be written,
- ``data_received(data)`` for every chunk read,
- ``link_down(reason)`` when the port or connection is gone.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.protocol import Protocol as TwistedProtocol

#: The reason a link with connection windows gives ``link_down`` when its
#: window ends: the scheduler then holds polls instead of failing them.
OUTSIDE_WINDOW = "outside connection window"


class LinkSink(Protocol):
    """The receiving side of a link (implemented by the bus scheduler)."""

    def link_up(self, link: "Link") -> None:
        """Start using ``link``."""

    def link_down(self, reason: str) -> None:
        """Stop using the link; ``reason`` says why, for health and logs."""

    def data_received(self, data: bytes) -> None:
        """Take bytes read from the link."""


class Link(Protocol):
    """A transport the scheduler writes requests to."""

    endpoint: str

    def write(self, data: bytes) -> None:
        """Send ``data`` now."""

    def start(self) -> None:
        """Open the port or connect, and keep trying until stopped."""

    def stop(self) -> None:
        """Close for good."""

    def health(self) -> dict:
        """Return the link's state for the health report."""


class SinkProtocol(TwistedProtocol):
    """A Twisted protocol that hands everything to a link's sink."""

    def __init__(self, link: "object", sink: LinkSink) -> None:
        self._link = link
        self._sink = sink

    def connectionMade(self) -> None:  # noqa: N802 - Twisted callback
        """Tell the link its transport is there."""
        self._link._connected(self)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted callback
        """Pass bytes to the scheduler."""
        self._sink.data_received(data)

    def connectionLost(self, reason=None) -> None:  # noqa: N802 - Twisted callback
        """Tell the link its transport is gone."""
        self._link._disconnected(self, reason)


class Backoff:
    """Reconnect delays: doubling from ``initial`` up to ``maximum`` seconds."""

    def __init__(self, initial: float = 1.0, maximum: float = 60.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.delay = initial

    def next(self) -> float:
        """Return the delay to wait now and grow the next one."""
        delay = self.delay
        self.delay = min(self.delay * 2, self.maximum)
        return delay

    def reset(self) -> None:
        """Start again from the initial delay after a success."""
        self.delay = self.initial


def write_now(transport, data: bytes) -> None:
    """Write ``data`` to a Twisted file-descriptor transport right away.

    ``FileDescriptor.write`` only queues and registers for writability, so
    every request costs two epoll updates and an extra loop turn before it is
    on the wire.  A master with one request in flight almost always finds the
    queue empty, so it can try the socket (or tty) first and queue only what
    the kernel did not take.  Anything unusual (a queue, a closing transport,
    a transport without these attributes) takes Twisted's normal path.
    """
    try:
        idle = (not transport.dataBuffer and not transport._tempDataBuffer
                and transport.connected and not transport.disconnecting)
    except AttributeError:
        idle = False
    if idle:
        sent = transport.writeSomeData(data)
        if isinstance(sent, int):
            if sent == len(data):
                return
            data = data[sent:]
        # Otherwise an error instance: the normal path below meets the same
        # error on its next write attempt and reports the lost connection.
    transport.write(data)


def window_options(transport, tz) -> dict:
    """Return the ``TcpLink`` keyword arguments of a transport's ``connect`` windows (none: ``{}``).

    ``transport`` is a channel's transport settings, read by attribute;
    ``tz`` is the site's zone, in which the windows' times are local.
    """
    connect = getattr(transport, "connect", None)
    if not connect:
        return {}
    from channels.transports.window import parse_window

    return {"window": parse_window(connect), "tz": tz}
