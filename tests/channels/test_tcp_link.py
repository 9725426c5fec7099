"""TcpLink on a MemoryReactorClock: jittered backoff and connection windows."""

from __future__ import annotations

import math
import random
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from channels.transports.tcp import OUTSIDE_WINDOW, TcpLink
from channels.transports.window import parse_window

MOSCOW = ZoneInfo("Europe/Moscow")
REFUSED = "down: " + Failure(ConnectionRefusedError("refused")).getErrorMessage()
#: 2024-05-01 00:00 Moscow time, where every test's clock starts.
MIDNIGHT = datetime(2024, 5, 1, tzinfo=MOSCOW).timestamp()
ONE_AM = MIDNIGHT + 3600
HALF_PAST_ONE = MIDNIGHT + 5400
DAY = 86400.0


class Sink:
    """A scheduler stand-in that records what the link tells it, with the clock's time."""

    def __init__(self, reactor) -> None:
        self.reactor = reactor
        self.events: list[tuple[float, str]] = []

    def link_up(self, link) -> None:
        self.events.append((self.reactor.seconds(), "up"))

    def link_down(self, reason: str) -> None:
        self.events.append((self.reactor.seconds(), f"down: {reason}"))

    def data_received(self, data: bytes) -> None:
        self.events.append((self.reactor.seconds(), f"data {data.hex()}"))

    def names(self) -> list[str]:
        return [name for _t, name in self.events]


class ExtremeRng:
    """A random source whose ``uniform`` always returns one end of the range."""

    def __init__(self, end: int) -> None:
        self.end = end

    def uniform(self, low: float, high: float) -> float:
        return high if self.end > 0 else low


def make(start: float = MIDNIGHT, **kwargs):
    """Return (reactor, sink, link) on a clock set to ``start``."""
    reactor = MemoryReactorClock()
    reactor.advance(start)
    sink = Sink(reactor)
    link = TcpLink(reactor, sink, "10.0.0.5", 4001, **kwargs)
    return reactor, sink, link


def accept(reactor) -> StringTransport:
    """Complete the latest connection attempt; return its transport."""
    factory = reactor.tcpClients[-1][2]
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    transport.protocol = protocol
    return transport


def refuse(reactor) -> None:
    """Fail the latest connection attempt."""
    factory = reactor.tcpClients[-1][2]
    factory.clientConnectionFailed(reactor.connectors[-1], Failure(ConnectionRefusedError("refused")))


def fire_next(reactor) -> None:
    """Advance the clock exactly to the earliest timer, so that it runs."""
    due = min(c.getTime() for c in reactor.getDelayedCalls() if c.active())
    reactor.advance(due - reactor.seconds())
    if reactor.seconds() < due:
        # Float rounding of a non-integer delay on a clock near 1.7e9.
        reactor.advance(math.ulp(due))


def pending(reactor) -> list[float]:
    """Return the delays of the active timers from now, sorted."""
    now = reactor.seconds()
    return sorted(round(c.getTime() - now, 6) for c in reactor.getDelayedCalls() if c.active())


def attempts(reactor) -> int:
    return len(reactor.tcpClients)


# ------------------------------------------------------------------ backoff

def test_without_jitter_backoff_doubles_as_before():
    """jitter=0 keeps the old delays: 1, 2, 4 s; a connection resets them."""
    reactor, sink, link = make(jitter=0.0)
    link.start()
    assert attempts(reactor) == 1 and link.state == "connecting"
    delays = []
    for _ in range(3):
        refuse(reactor)
        delays.extend(pending(reactor))
        fire_next(reactor)
    assert delays == [1.0, 2.0, 4.0]
    accept(reactor)
    assert link.state == "open" and link.health()["connects"] == 1
    assert sink.names() == [REFUSED] * 3 + ["up"]
    assert link.health()["window"] is None and link.health()["next_window"] is None


@pytest.mark.parametrize("end, factor", [(-1, 0.8), (+1, 1.2)])
def test_jitter_bounds(end, factor):
    """The spread reaches exactly delay × (1 ± jitter) at its ends."""
    reactor, _sink, link = make(jitter=0.2, rng=ExtremeRng(end))
    link.start()
    delays = []
    for _ in range(3):
        refuse(reactor)
        delays.extend(pending(reactor))
        fire_next(reactor)
    assert delays == pytest.approx([1.0 * factor, 2.0 * factor, 4.0 * factor])


def test_jitter_spreads_delays_within_bounds():
    """With a real random source every delay stays within ±jitter and they differ."""
    reactor, _sink, link = make(jitter=0.3, rng=random.Random(6))
    link.start()
    base = 1.0
    seen = []
    for _ in range(12):
        refuse(reactor)
        [delay] = pending(reactor)
        assert base * 0.7 - 1e-9 <= delay <= base * 1.3 + 1e-9
        seen.append(delay / base)
        base = min(base * 2, 60.0)
        fire_next(reactor)
    assert len(set(seen)) == len(seen)


@pytest.mark.parametrize("jitter", [-0.1, 1.0, 2])
def test_bad_jitter_is_refused(jitter):
    """A jitter outside [0, 1) is a ValueError naming it."""
    with pytest.raises(ValueError, match=str(jitter)):
        TcpLink(MemoryReactorClock(), None, "h", 1, jitter=jitter)


def test_connection_lost_reports_and_retries():
    """A dropped connection: link_down with the reason, then a retry after the backoff."""
    reactor, sink, link = make(jitter=0.0)
    link.start()
    transport = accept(reactor)
    transport.protocol.connectionLost(Failure(ConnectionDone("peer closed")))
    lost = Failure(ConnectionDone("peer closed")).getErrorMessage()
    assert sink.names() == ["up", f"down: {lost}"] and link.state == "waiting"
    assert pending(reactor) == [1.0]


# ------------------------------------------------------------------ windows

def test_outside_the_window_no_attempt_until_it_opens():
    """Started before the window: sleeping, one link_down, no connectTCP until the opening."""
    reactor, sink, link = make(window=parse_window("daily 01:00-01:30"), tz=MOSCOW)
    link.start()
    assert link.state == "sleeping" and attempts(reactor) == 0
    assert sink.events == [(MIDNIGHT, f"down: {OUTSIDE_WINDOW}")]
    health = link.health()
    assert health["state"] == "sleeping" and health["window"] == "daily 01:00-01:30"
    assert health["next_window"] == ONE_AM and health["window_end"] is None
    reactor.advance(3600 - 0.001)
    assert attempts(reactor) == 0 and link.state == "sleeping"
    reactor.advance(0.001)
    assert attempts(reactor) == 1 and link.state == "connecting"
    assert reactor.seconds() == ONE_AM
    accept(reactor)
    assert link.state == "open" and sink.names()[-1] == "up"
    health = link.health()
    assert health["window_end"] == HALF_PAST_ONE and health["next_window"] == ONE_AM + DAY


def test_window_end_disconnects_cleanly_once_and_sleeps_till_next_day():
    """At the end: loseConnection, state sleeping, exactly one link_down; next day it connects again."""
    reactor, sink, link = make(start=ONE_AM + 60, window=parse_window("daily 01:00-01:30"), tz=MOSCOW)
    link.start()
    assert attempts(reactor) == 1
    transport = accept(reactor)
    reactor.advance(HALF_PAST_ONE - reactor.seconds() - 0.001)
    assert not transport.disconnecting and link.state == "open"
    link.write(b"\x01")
    assert transport.value() == b"\x01"
    reactor.advance(0.001)
    assert transport.disconnecting and link.state == "sleeping"
    assert sink.events[-1] == (HALF_PAST_ONE, f"down: {OUTSIDE_WINDOW}")
    # Writes after the end go nowhere; the expected connectionLost adds nothing.
    link.write(b"\x02")
    assert transport.value() == b"\x01"
    transport.protocol.connectionLost(Failure(ConnectionDone("closed")))
    assert sink.names() == ["up", f"down: {OUTSIDE_WINDOW}"]
    assert pending(reactor) == [DAY - 1800]
    assert link.health()["next_window"] == ONE_AM + DAY
    reactor.advance(DAY - 1800)
    assert attempts(reactor) == 2 and link.state == "connecting"
    accept(reactor)
    assert sink.names() == ["up", f"down: {OUTSIDE_WINDOW}", "up"] and link.health()["connects"] == 2


def test_retries_inside_the_window_stop_at_its_end():
    """A dead modem: retries back off inside the window, none is scheduled past its end."""
    reactor, sink, link = make(start=ONE_AM, window=parse_window("daily 01:00-01:10"), tz=MOSCOW, jitter=0.0)
    link.start()
    times = []
    while link.state != "sleeping":
        if link.state == "connecting":
            times.append(reactor.seconds() - ONE_AM)
            refuse(reactor)
        fire_next(reactor)
    # Delays 1, 2, 4, ..., 32, then the 60 s cap.
    assert times == [0, 1, 3, 7, 15, 31, 63, 123, 183, 243, 303, 363, 423, 483, 543]
    assert reactor.seconds() == ONE_AM + 600
    # The last failure (at 543 s) scheduled nothing: 543 + 60 >= 600.
    assert sink.names() == [REFUSED] * len(times) + [f"down: {OUTSIDE_WINDOW}"]
    assert pending(reactor) == [DAY - 600]


def test_attempt_in_flight_at_window_end_is_cancelled():
    """A connect attempt still pending at the end is stopped; its late failure is ignored."""
    reactor, sink, link = make(start=HALF_PAST_ONE - 5, window=parse_window("daily 01:00-01:30"), tz=MOSCOW)
    link.start()
    connector = reactor.connectors[-1]
    reactor.advance(5)
    assert connector.stoppedConnecting and link.state == "sleeping"
    refuse(reactor)
    assert sink.names() == [f"down: {OUTSIDE_WINDOW}"] and pending(reactor) == [DAY - 1800]


def test_connection_completing_after_window_end_is_dropped():
    """A connection that completes after the end is closed at once and never reported up."""
    reactor, sink, link = make(start=HALF_PAST_ONE - 5, window=parse_window("daily 01:00-01:30"), tz=MOSCOW)
    link.start()
    reactor.advance(5)
    transport = accept(reactor)
    assert transport.disconnecting and link.state == "sleeping"
    assert sink.names() == [f"down: {OUTSIDE_WINDOW}"]


def test_new_window_starts_with_fresh_backoff():
    """The backoff of yesterday's failures does not delay today's first retry."""
    reactor, sink, link = make(start=ONE_AM, window=parse_window("daily 01:00-01:10"), tz=MOSCOW, jitter=0.0)
    link.start()
    for _ in range(5):
        refuse(reactor)
        fire_next(reactor)
    reactor.advance(ONE_AM + DAY - reactor.seconds())
    assert link.state == "connecting"
    refuse(reactor)
    assert pending(reactor)[0] == 1.0


def test_window_across_midnight_and_several_windows():
    """23:30-00:30 and 13:00-13:15: the link opens and closes at each edge in turn."""
    window = parse_window("daily 23:30-00:30, daily 13:00-13:15")
    reactor, sink, link = make(window=window, tz=MOSCOW)
    link.start()
    # Midnight is inside the window that opened yesterday at 23:30.
    assert link.state == "connecting"
    accept(reactor)
    edges = []
    for _ in range(4):
        fire_next(reactor)
        edges.append(((reactor.seconds() - MIDNIGHT) / 60, link.state))
        if link.state == "connecting":
            accept(reactor)
    assert edges == [(30, "sleeping"), (780, "connecting"), (795, "sleeping"), (1410, "connecting")]


def test_zone_by_name():
    """The site's zone may be given by name."""
    reactor, _sink, link = make(window=parse_window("daily 01:00-01:30"), tz="Europe/Moscow")
    link.start()
    assert link.health()["next_window"] == ONE_AM


def test_always_window_is_no_window():
    """connect: always behaves like no window at all."""
    reactor, _sink, link = make(window=parse_window("always"), tz=MOSCOW)
    link.start()
    assert link.state == "connecting" and link.health()["window"] is None


# --------------------------------------------------------------------- stop

@pytest.mark.parametrize("phase", ["sleeping", "open", "waiting", "connecting"])
def test_stop_cancels_every_timer(phase):
    """stop() in any state leaves no timer and no further callback to the sink."""
    start = MIDNIGHT if phase == "sleeping" else ONE_AM
    reactor, sink, link = make(start=start, window=parse_window("daily 01:00-01:30"), tz=MOSCOW)
    link.start()
    transport = None
    if phase == "open":
        transport = accept(reactor)
    elif phase == "waiting":
        refuse(reactor)
    assert link.state == phase and pending(reactor)
    before = list(sink.events)
    link.stop()
    assert pending(reactor) == [] and link.state == "closed"
    if transport is not None:
        assert transport.disconnecting
        transport.protocol.connectionLost(Failure(ConnectionDone("closed")))
    if phase == "connecting":
        assert reactor.connectors[-1].stoppedConnecting
        refuse(reactor)
    reactor.advance(2 * DAY)
    assert sink.events == before and link.state == "closed"
