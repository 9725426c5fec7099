"""Integration: simulated GPRS modems dial in to the modem server over real loopback TCP.

The scenario runs in a child process (this file run as a script) on
Twisted's asyncio reactor, as ``scada run`` has it: a
:class:`~channels.transports.modem.ModemServer` on an ephemeral port with a
recording sink per modem, and :class:`~channels.sim.modem.SimModem`\\ s that
bridge a simulated Modbus RTU segment (one meter each).  The child prints
what it observed as JSON; the test checks it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from tests.integration.child import child_main, run_child  # noqa: E402

pytestmark = pytest.mark.integration

IMEI = "860000000000001"
#: The meter's volume register reads 12.345 m³ (u32, 0.001 m³ per count).
VOLUME_REGISTERS = (12345).to_bytes(4, "big").hex()


# ---------------------------------------------------------------------------
# Child process side
# ---------------------------------------------------------------------------


class _Sink:
    """Records what a link tells its bus scheduler."""

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.data = bytearray()

    def link_up(self, link: Any) -> None:
        self.kinds.append("up")

    def link_down(self, reason: str) -> None:
        self.kinds.append("down")

    def data_received(self, data: bytes) -> None:
        self.data += data


async def scenario(reactor: Any) -> dict[str, Any]:
    """Dial in, poll, heartbeat, replace, time out, prefix and reject; return what happened."""
    from twisted.internet import task

    from channels.modbus.framer import READ_HOLDING, ReadResponse, decode_response, encode_read
    from channels.modbus.points import PointSpec
    from channels.sim.modem import SimModem
    from channels.sim.slave import SimBus, SimDevice
    from channels.transports.base import Backoff
    from channels.transports.modem import ModemServer, ModemType

    class Model:
        def values(self, t: float) -> dict[str, float]:
            return {"volume": 12.345}

    def bus() -> SimBus:
        return SimBus({1: SimDevice(1, [PointSpec("volume", READ_HOLDING, 0, "u32", scale=0.001)], Model())},
                      reactor)

    async def sleep(seconds: float) -> None:
        await task.deferLater(reactor, seconds, lambda: None)

    async def until(predicate: Any, timeout: float = 5.0) -> bool:
        end = reactor.seconds() + timeout
        while not predicate():
            if reactor.seconds() > end:
                return False
            await sleep(0.01)
        return True

    async def poll(link: Any, sink: _Sink) -> str | None:
        """Write a read request to ``link``; return the answer's register bytes (hex) or None."""
        sink.data.clear()
        link.write(encode_read(1, READ_HOLDING, 0, 2))
        found: list[Any] = []

        def answered() -> bool:
            _, frame = decode_response(bytes(sink.data), 1, READ_HOLDING, 2)
            if frame is not None:
                found.append(frame)
            return bool(found)

        await until(answered)
        return found[0].data.hex() if found and isinstance(found[0], ReadResponse) else None

    types = [ModemType("teleofis", r"^ID:(?P<id>\w+)\r\n", r"^\xff\xfe"),
             ModemType("dtu", r"^DTU(?P<id>\d{4})", None, prefix=True),
             ModemType("default", r"^(?P<id>\d{15})", r"^PING")]
    server = ModemServer(reactor, types, identify_timeout=0.5, idle_timeout=10.0, max_timeouts=3,
                         listen_host="127.0.0.1", listen_port=0)
    sink, dtu_sink = _Sink(), _Sink()
    link = server.register(IMEI, sink)
    dtu_link = server.register("0042", dtu_sink)
    link.start()
    dtu_link.start()
    server.start()
    report: dict[str, Any] = {"port": server.port}

    # A modem dials in, beats, and its meter answers through the link.
    first = SimModem(reactor, "127.0.0.1", server.port, IMEI.encode(), b"PING", 0.1, bus(), redial=False)
    first.start()
    report["first_identified"] = await until(lambda: link.connected)
    await sleep(0.45)
    report["heartbeats"] = link.health()["heartbeats"]
    report["ping_reached_sink"] = b"PING" in sink.data
    report["first_answer"] = await poll(link, sink)

    # The same ID dials in again: the new socket replaces the old one.
    second = SimModem(reactor, "127.0.0.1", server.port, IMEI.encode(), b"PING", 0.1, bus(),
                      backoff=Backoff(0.1, 0.5))
    second.start()
    report["replaced"] = await until(lambda: link.health()["replaced"] == 1)
    report["first_hung_up"] = await until(lambda: not first.connected)
    report["second_answer"] = await poll(link, sink)
    report["kinds_after_replace"] = list(sink.kinds)

    # Three poll timeouts in a row: the server closes, the modem redials.
    for _ in range(3):
        link.on_outcome("timeout")
    report["redialled"] = await until(lambda: link.health()["connects"] == 3)
    report["kinds_after_timeouts"] = list(sink.kinds)
    report["answer_after_redial"] = await poll(link, sink)

    # A modem that puts its registration before every packet.
    prefixed = SimModem(reactor, "127.0.0.1", server.port, b"DTU0042", None, 0, bus(), prefix=True, redial=False)
    prefixed.start()
    report["prefixed_identified"] = await until(lambda: dtu_link.connected)
    report["prefixed_answer"] = await poll(dtu_link, dtu_sink)

    # An unknown modem is held for identify_timeout, then closed.
    stranger = SimModem(reactor, "127.0.0.1", server.port, b"ID:BOGUS\r\n", None, 0, bus(), redial=False)
    stranger.start()
    await until(lambda: stranger.connected)
    connected_at = reactor.seconds()
    report["stranger_closed"] = await until(lambda: not stranger.connected)
    report["stranger_held_s"] = reactor.seconds() - connected_at

    report["server"] = server.health()
    report["link"] = {k: v for k, v in link.health().items() if k != "last_seen"}
    for modem in (first, second, prefixed, stranger):
        await modem.stop()
    await server.stop()
    return report


# ---------------------------------------------------------------------------
# Test process side
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """Run the scenario once in a child process and return what it observed."""
    return run_child(__file__)


def test_a_modem_is_identified_and_its_meter_answers_through_the_link(report: dict[str, Any]) -> None:
    """A Modbus RTU request written to the link reaches the meter behind the modem and the answer comes back."""
    assert report["port"] > 0
    assert report["first_identified"]
    assert report["first_answer"] == VOLUME_REGISTERS


def test_heartbeats_arrive_and_are_stripped(report: dict[str, Any]) -> None:
    """The modem's heartbeats are counted by the link and never reach the scheduler."""
    assert report["heartbeats"] >= 2
    assert not report["ping_reached_sink"]


def test_a_second_connection_with_the_same_id_replaces_the_first(report: dict[str, Any]) -> None:
    """The old socket is closed by the server; the link stays up (no link_down) and polls the new one."""
    assert report["replaced"] and report["first_hung_up"]
    assert report["kinds_after_replace"] == ["up", "up"]
    assert report["second_answer"] == VOLUME_REGISTERS


def test_poll_timeouts_close_the_socket_and_the_modem_redials(report: dict[str, Any]) -> None:
    """max_timeouts timeouts in a row: link_down, the modem redials, link_up, polls work again."""
    assert report["redialled"]
    assert report["kinds_after_timeouts"] == ["up", "up", "down", "up"]
    assert report["answer_after_redial"] == VOLUME_REGISTERS
    assert report["server"]["timeout_closed"] == 1 and report["link"]["half_open_closed"] == 1


def test_prefix_mode_over_tcp(report: dict[str, Any]) -> None:
    """A modem that repeats its registration before every packet is polled like any other."""
    assert report["prefixed_identified"]
    assert report["prefixed_answer"] == VOLUME_REGISTERS


def test_an_unknown_modem_is_held_then_closed_and_counted(report: dict[str, Any]) -> None:
    """An unknown ID is closed after identify_timeout (0.5 s), counted and listed."""
    assert report["stranger_closed"]
    assert 0.3 <= report["stranger_held_s"] < 3
    server = report["server"]
    assert server["unknown_ids"] == 1 and server["unknown_recent"] == ["BOGUS"]
    assert server["replaced"] == 1 and server["heartbeats"] >= 2 and server["garbage_closed"] == 0
    link = report["link"]
    assert link["state"] == "open" and link["connects"] == 3 and link["replaced"] == 1


if __name__ == "__main__":
    raise SystemExit(child_main(lambda reactor, _loop: scenario(reactor), sys.argv))
