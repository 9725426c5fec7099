"""SerialLink over a real pty pair: open failures, reopen, and the first write after it."""

from __future__ import annotations

import os
import select
import tty

from twisted.internet.testing import MemoryReactorClock

from channels.transports.serial import SerialLink


class Sink:
    """A scheduler stand-in that writes a request the moment the link comes up."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.link = None

    def link_up(self, link) -> None:
        self.events.append("up")
        self.link = link
        link.write(b"\x01\x03\x00\x00\x00\x02\xc4\x0b")

    def link_down(self, reason: str) -> None:
        self.events.append("down")

    def data_received(self, data: bytes) -> None:
        self.events.append(f"data {data.hex()}")


def test_port_that_appears_later_gets_the_first_request(tmp_path):
    """An adapter plugged in after start: one link_down, then link_up, and the first request reaches the wire."""
    reactor = MemoryReactorClock()
    sink = Sink()
    path = tmp_path / "ttyUSB0"
    link = SerialLink(reactor, sink, str(path), 9600, "N")
    link.start()
    assert sink.events == ["down"] and link.state == "waiting"
    assert "No such file" in link.health()["last_error"]
    master, slave = os.openpty()
    try:
        tty.setraw(slave)
        os.symlink(os.ttyname(slave), path)
        reactor.advance(1.0)
        assert sink.events == ["down", "up"] and link.state == "open"
        # The write is synchronous, so the bytes are already in the pty; the
        # bound only keeps a regression from blocking the suite.
        ready, _, _ = select.select([master], [], [], 2.0)
        assert ready, "the first request never reached the port"
        assert os.read(master, 64) == bytes.fromhex("010300000002c40b")
        link.stop()
        assert link.state == "closed"
    finally:
        os.close(master)
        os.close(slave)


def test_backoff_doubles_and_stop_cancels_retry(tmp_path):
    """Reopen attempts back off 1, 2, 4 s; stop() leaves no retry scheduled."""
    reactor = MemoryReactorClock()
    sink = Sink()
    link = SerialLink(reactor, sink, str(tmp_path / "missing"), 9600, "N")
    link.start()
    assert [round(c.getTime() - reactor.seconds(), 3) for c in reactor.getDelayedCalls()] == [1.0]
    reactor.advance(1.0)
    assert [round(c.getTime() - reactor.seconds(), 3) for c in reactor.getDelayedCalls()] == [2.0]
    assert sink.events == ["down", "down"]
    link.stop()
    assert [c for c in reactor.getDelayedCalls() if c.active()] == []
