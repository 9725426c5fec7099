"""A deterministic M-Bus wire for tests: a master's sink and a simulated segment on one task.Clock.

Meters keep UTC (``utc_offset`` 0) unless told otherwise, and the clock is
advanced to :data:`NOW` by the tests that read values, so meter clocks,
archives and the engine agree on the date as they do in production.

The master side is a link (``write``) feeding a :class:`SimMBusSegment`; the
segment's answers reach the master's sink ``latency`` seconds later.
``drop_answers`` loses the next N answers on the way back (line noise), to
exercise retries and the frame count bit.
"""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock

from channels.sim.mbus import SimMBusMeter, SimMBusSegment
from channels.sim.models import HeatMeter, WaterMeter

#: 2026-11-21 12:00 UTC: a fixed "now" for meter values and archives.
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc).timestamp()


class _SlaveEnd:
    """The segment's transport: what it writes reaches the master after the latency."""

    def __init__(self, wire: "Wire") -> None:
        self.wire = wire
        self.disconnecting = False

    def write(self, data: bytes) -> None:
        wire = self.wire
        wire.answers.append(bytes(data))
        if wire.drop_answers:
            wire.drop_answers -= 1
            return
        wire.clock.callLater(wire.latency, wire.deliver, bytes(data))


class Wire:
    """Master link ↔ simulated segment."""

    endpoint = "wire:0"

    def __init__(self, clock: Clock, meters, sink=None, latency: float = 0.02) -> None:
        self.clock = clock
        self.latency = latency
        self.sink = sink
        self.writes: list[tuple[float, bytes]] = []
        self.answers: list[bytes] = []
        self.drop_answers = 0
        self.segment = SimMBusSegment(dict(enumerate(meters)), clock)
        Protocol.makeConnection(self.segment, _SlaveEnd(self))

    def attach(self, sink) -> None:
        """Give the wire to ``sink`` (a bus scheduler or a scanner) and bring the link up."""
        self.sink = sink
        sink.link_up(self)

    def write(self, data: bytes) -> None:
        self.writes.append((self.clock.seconds(), bytes(data)))
        self.segment.dataReceived(bytes(data))

    def deliver(self, data: bytes) -> None:
        if self.sink is not None:
            self.sink.data_received(data)

    def health(self) -> dict:
        return {"state": "open"}


def heat_meter(name: str = "heat", primary: int | None = 1, ident: int = 12345678, **kw) -> SimMBusMeter:
    """Return a simulated M-Bus heat meter (three telegrams per read)."""
    kw.setdefault("utc_offset", 0.0)
    return SimMBusMeter(name, primary=primary, ident=ident, model=HeatMeter(7, utc_offset=0.0), kind="heat", **kw)


def water_meter(name: str = "water", primary: int | None = 2, ident: int = 87654321, **kw) -> SimMBusMeter:
    """Return a simulated M-Bus cold water meter (one telegram per read)."""
    kw.setdefault("utc_offset", 0.0)
    return SimMBusMeter(name, primary=primary, ident=ident, model=WaterMeter(9, utc_offset=0.0), kind="cold_water",
                        **kw)
