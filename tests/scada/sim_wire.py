"""A deterministic Modbus wire for site tests: a channel's scheduler and simulated meters on one clock.

The channel's own link (a TCP client or a serial port) is replaced by a
:class:`SimWire`: what the scheduler writes goes to a
:class:`~channels.sim.slave.SimBus` of the simulated devices, whose answers
come back ``latency`` seconds later on the same clock.  No ports, no real
time.
"""

from __future__ import annotations

from twisted.internet.protocol import Protocol


class _SlaveEnd:
    """The simulated bus's transport: what it writes reaches the master's scheduler."""

    disconnecting = False
    connected = True

    def __init__(self, wire: "SimWire") -> None:
        self.wire = wire

    def write(self, data: bytes) -> None:
        self.wire.sink.data_received(bytes(data))


class SimWire:
    """Master link ↔ simulated Modbus segment (answers delayed by the bus's ``latency``)."""

    endpoint = "sim-wire"

    def __init__(self, sink, bus) -> None:
        self.sink = sink
        self.bus = bus
        self.writes: list[bytes] = []
        Protocol.makeConnection(bus, _SlaveEnd(self))

    def start(self) -> None:
        """Bring the link up at once."""
        self.sink.link_up(self)

    def stop(self) -> None:
        """Nothing to close."""

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.bus.dataReceived(bytes(data))

    def health(self) -> dict:
        return {"state": "open"}


def run_until(clock, t: float) -> None:
    """Advance ``clock`` call by call up to ``t`` so each call runs at its own time."""
    while True:
        nxt = min((c.getTime() for c in clock.getDelayedCalls()), default=None)
        if nxt is None or nxt > t:
            break
        clock.advance(max(0.0, nxt - clock.seconds()))
    clock.advance(max(0.0, t - clock.seconds()))
