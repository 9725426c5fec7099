"""Tests for the dial-in modem server (channels.transports.modem) and the simulated modem.

Driven by task.Clock over StringTransports: each accepted socket is a
protocol built by the server's factory and connected to a fake transport.
"""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from channels.modbus.framer import READ_HOLDING, ReadResponse, decode_response, encode_read
from channels.modbus.points import PointSpec
from channels.sim.modem import SimModem
from channels.sim.slave import SimBus, SimDevice
from channels.transports.base import Backoff
from channels.transports.modem import MAX_REGISTRATION, ModemServer, ModemType, identify

IMEI = "860000000000001"
OTHER = "860000000000002"
#: The default type of the spec's example config, with a text heartbeat.
DEFAULT = ModemType("default", r"^(?P<id>\d{15})", r"^PING")
#: The spec's second example type: a terminated ID and a binary heartbeat.
TELEOFIS = ModemType("teleofis", r"^ID:(?P<id>\w+)\r\n", r"^\xff\xfe")
#: A modem that repeats its registration in front of every packet.
DTU = ModemType("dtu", r"^DTU(?P<id>\d{4})", r"^\x00\x00", prefix=True)
TYPES = (TELEOFIS, DTU, DEFAULT)
#: A Modbus RTU answer (unit 1, 2 registers), split as a GPRS link may split it.
ANSWER = bytes.fromhex("01 03 04 00 0a 00 0b 5b c4")


class RecordingSink:
    """A bus scheduler stand-in that records what the link tells it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.data = bytearray()

    def link_up(self, link) -> None:
        self.events.append(("up", link))

    def link_down(self, reason: str) -> None:
        self.events.append(("down", reason))

    def data_received(self, data: bytes) -> None:
        self.events.append(("data", bytes(data)))
        self.data += data

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


def make(types=TYPES, identify_timeout=30.0, idle_timeout=300.0, max_timeouts=3, modem_id=IMEI):
    """Return (clock, server, link, sink) with ``modem_id`` registered and started."""
    clock = Clock()
    clock.advance(1000.0)
    server = ModemServer(clock, list(types), identify_timeout=identify_timeout, idle_timeout=idle_timeout,
                         max_timeouts=max_timeouts, listen_host="127.0.0.1", listen_port=0)
    sink = RecordingSink()
    link = server.register(modem_id, sink)
    link.start()
    return clock, server, link, sink


def dial(server: ModemServer, port: int = 40000):
    """Accept a connection from 10.0.0.2:``port``; return (protocol, transport)."""
    address = IPv4Address("TCP", "10.0.0.2", port)
    protocol = server.factory.buildProtocol(address)
    transport = StringTransport(peerAddress=address)
    protocol.makeConnection(transport)
    return protocol, transport


def drop(protocol, reason=ConnectionLost("peer gone")) -> None:
    """Tell ``protocol`` its socket is gone, as the reactor would."""
    protocol.connectionLost(Failure(reason))


def closed(transport: StringTransport) -> bool:
    """Tell whether the server closed (or aborted) ``transport``."""
    return transport.disconnecting


# ---------------------------------------------------------------- identify


@pytest.mark.parametrize("buf, expected", [
    (IMEI.encode(), (DEFAULT, IMEI, 15)),
    (IMEI.encode() + b"\x01\x03", (DEFAULT, IMEI, 15)),
    (b"8600", None),
    (b"ID:ABC", None),
    (b"ID:ABC\r\n", (TELEOFIS, "ABC", 8)),
    (b"DTU00", None),
    (b"DTU0042rest", (DTU, "0042", 7)),
    (b"GET / HTTP/1.1\r\n", False),
    (b"IX", False),
    (b"86000000000000x", False),
    (b"", None),
])
def test_identify_over_several_types(buf, expected):
    """identify() tries the types in order: a match, "need more bytes" (None) or "never" (False)."""
    assert identify(TYPES, buf) == expected


def test_binary_ids_are_upper_hex_and_groups_are_found():
    """A non-printable ID reads as upper-case hex; without a group ``id`` group 1 (or the match) is the ID."""
    binary = ModemType("bin", rb"^\xaa(?P<id>[\x00-\xff]{4})\x55")
    assert binary.identify(b"\xaa\x01\x02\xfe\xff\x55tail") == ("0102FEFF", 6)
    assert binary.identify(b"\xaa\x01\x02\xfe\xff\x54") is False  # fixed length reached, no match
    assert ModemType("g1", r"^REG(\d+);").identify(b"REG77;") == ("77", 6)
    assert ModemType("g0", r"^\d{4}").identify(b"1234") == ("1234", 4)


def test_patterns_the_prefix_check_cannot_follow_wait_for_more_bytes():
    """Alternation, look-ahead and case folding are not analysed: such buffers stay undecided (None)."""
    assert ModemType("alt", r"^(?:AB|CD)(?P<id>\d+);").identify(b"XY") is None
    assert ModemType("ahead", r"^(?=I)ID(?P<id>\d+);").identify(b"Q") is None
    assert ModemType("fold", r"(?i)^id:(?P<id>\d+);").identify(b"Id:5;") == ("5", 5)


@pytest.mark.parametrize("kwargs, message", [
    ({"id_pattern": "("}, "not a valid regular expression"),
    ({"id_pattern": "^ИД(\\d+)"}, "only characters up to U+00FF"),
    ({"id_pattern": r"(?P<id>\d*)"}, "matches an empty packet"),
    ({"id_pattern": r"^(\d+);", "heartbeat": "x?"}, "heartbeat"),
])
def test_bad_patterns_are_refused_with_their_text(kwargs, message):
    """A pattern that cannot work raises ValueError naming the type, the key and the pattern."""
    with pytest.raises(ValueError, match="modem type 'bad'") as info:
        ModemType("bad", **kwargs)
    assert message in str(info.value)


def test_strip_removes_heartbeats_and_prefixes_only_at_the_start():
    """Heartbeats and repeated registrations go, repeatedly; the same bytes inside data stay."""
    assert DEFAULT.strip(b"PINGPING" + ANSWER) == (ANSWER, 2)
    assert DEFAULT.strip(ANSWER + b"PING") == (ANSWER + b"PING", 0)
    assert DTU.strip(b"DTU0042\x00\x00DTU0042" + ANSWER) == (ANSWER, 1)
    assert TELEOFIS.strip(b"\xff\xfe") == (b"", 1)


# ------------------------------------------------------- identification


@pytest.mark.parametrize("split", ["whole", "bytewise", "with_data"])
def test_a_modem_is_identified_and_becomes_its_link(split):
    """Whole, byte by byte, or with data behind it in the same chunk: link_up, then the data."""
    clock, server, link, sink = make()
    protocol, transport = dial(server)
    if split == "whole":
        protocol.dataReceived(IMEI.encode())
        protocol.dataReceived(ANSWER)
    elif split == "bytewise":
        for byte in IMEI.encode() + ANSWER:
            protocol.dataReceived(bytes([byte]))
    else:
        protocol.dataReceived(IMEI.encode() + ANSWER)
    assert sink.kinds()[0] == "up" and sink.events[0][1] is link
    assert bytes(sink.data) == ANSWER
    assert not closed(transport)
    health = link.health()
    assert health["transport"] == "modem" and health["endpoint"] == f"modem:{IMEI}"
    assert health["state"] == "open" and health["peer"] == "10.0.0.2:40000"
    assert health["connects"] == 1 and health["modem_type"] == "default" and health["last_seen"] == 1000.0
    assert server.health()["identified"] == 1 and server.health()["pending"] == 0


def test_writes_go_to_the_current_socket():
    """link.write puts the request on the modem's socket; nothing is written before identification."""
    clock, server, link, sink = make()
    link.write(b"lost")  # no modem yet: dropped
    protocol, transport = dial(server)
    link.write(b"lost too")
    assert transport.value() == b""
    protocol.dataReceived(IMEI.encode())
    request = encode_read(1, READ_HOLDING, 0, 2)
    link.write(request)
    assert transport.value() == request


def test_other_modem_types_and_their_heartbeats():
    """A second type identifies its modems, and its own heartbeat pattern is the one stripped."""
    clock, server, link, sink = make(modem_id="ABC")
    protocol, _ = dial(server)
    protocol.dataReceived(b"ID:A")
    protocol.dataReceived(b"BC\r\n\xff\xfe" + ANSWER[:3])
    protocol.dataReceived(b"\xff\xfe")
    protocol.dataReceived(ANSWER[3:])
    assert sink.kinds()[0] == "up" and bytes(sink.data) == ANSWER
    assert link.health()["heartbeats"] == 2 and link.health()["modem_type"] == "teleofis"


def test_a_type_that_matches_now_wins_over_an_earlier_one_still_waiting():
    """Types are tried in order on what has arrived; the first match decides (documented rule)."""
    longer = ModemType("longer", r"^(?P<id>\d{15})\r\n")
    clock, server, link, sink = make(types=(longer, DEFAULT))
    protocol, _ = dial(server)
    protocol.dataReceived(IMEI.encode())
    assert link.health()["modem_type"] == "default"


def test_heartbeats_are_stripped_and_counted_between_answer_chunks():
    """Heartbeats before, between and after the pieces of an answer never reach the scheduler."""
    clock, server, link, sink = make()
    protocol, _ = dial(server)
    protocol.dataReceived(IMEI.encode() + b"PING")
    protocol.dataReceived(b"PINGPING" + ANSWER[:4])
    protocol.dataReceived(b"PING")
    protocol.dataReceived(ANSWER[4:])
    protocol.dataReceived(b"PING")
    assert bytes(sink.data) == ANSWER
    assert link.health()["heartbeats"] == 5 and server.health()["heartbeats"] == 5
    assert ("data", b"") not in sink.events


def test_prefix_mode_strips_the_registration_from_every_packet():
    """With prefix the registration (and heartbeats after it) precede every packet and are removed."""
    clock, server, link, sink = make(modem_id="0042")
    protocol, _ = dial(server)
    protocol.dataReceived(b"DTU0042" + ANSWER[:2])
    protocol.dataReceived(b"DTU0042\x00\x00DTU0042" + ANSWER[2:])
    protocol.dataReceived(b"DTU0042")
    assert bytes(sink.data) == ANSWER
    assert link.health()["heartbeats"] == 1


# -------------------------------------------------------------- replacement


def test_a_modem_dialling_in_again_replaces_its_old_socket():
    """The new socket takes over; the old one is aborted, counted, and its loss is not a link_down."""
    clock, server, link, sink = make()
    old, old_transport = dial(server, 40000)
    old.dataReceived(IMEI.encode())
    new, new_transport = dial(server, 40001)
    new.dataReceived(IMEI.encode() + ANSWER)
    assert closed(old_transport) and old_transport.disconnected  # aborted, not a graceful close
    assert sink.kinds() == ["up", "up", "data"]
    old.dataReceived(b"late bytes from the dead socket")
    drop(old)
    assert sink.kinds() == ["up", "up", "data"]
    assert bytes(sink.data) == ANSWER
    link.write(b"req")
    assert new_transport.value() == b"req" and old_transport.value() == b""
    health = link.health()
    assert health["state"] == "open" and health["peer"] == "10.0.0.2:40001"
    assert health["connects"] == 2 and health["replaced"] == 1 and server.health()["replaced"] == 1
    drop(new)
    assert sink.kinds() == ["up", "up", "data", "down"] and "peer gone" in sink.events[-1][1]
    assert link.health()["state"] == "waiting" and "peer gone" in link.health()["last_error"]
    assert server.health()["connections"] == 0


# ---------------------------------------------------- unwelcome connections


def test_unknown_ids_are_held_until_identify_timeout_then_closed_and_counted(caplog):
    """An unknown modem is not closed at once (it would redial in a loop); the log is rate-limited."""
    clock, server, link, sink = make()
    caplog.set_level(logging.WARNING, logger="channels.transports.modem")
    connections = []
    for i in range(12):
        protocol, transport = dial(server, 41000 + i)
        protocol.dataReceived(f"99900000000{i:04d}".encode() + ANSWER)
        connections.append(transport)
    protocol.dataReceived(ANSWER)
    assert sink.events == []
    assert not any(closed(t) for t in connections)
    clock.advance(29.9)
    assert not any(closed(t) for t in connections)
    clock.advance(0.1)
    assert all(closed(t) for t in connections)
    health = server.health()
    assert health["unknown_ids"] == 12
    assert health["unknown_recent"] == [f"99900000000{i:04d}" for i in range(2, 12)]
    assert len([r for r in caplog.records if "unknown modem ID" in r.getMessage()]) == 1


def test_a_repeated_unknown_id_is_listed_once():
    """unknown_recent keeps distinct IDs, the most recent last."""
    clock, server, link, sink = make()
    for modem_id in (OTHER, "ID:X\r\n", OTHER):
        protocol, _ = dial(server)
        protocol.dataReceived(modem_id.encode())
    assert server.health()["unknown_recent"] == ["X", OTHER]
    assert server.health()["unknown_ids"] == 3


def test_a_modem_of_a_stopped_channel_is_held_and_closed_like_an_unknown_one():
    """A registered but not started (or stopped) link does not take connections."""
    clock, server, link, sink = make()
    idle = server.register(OTHER, RecordingSink())
    protocol, transport = dial(server)
    protocol.dataReceived(OTHER.encode())
    assert idle.health()["state"] == "closed" and not closed(transport)
    clock.advance(30)
    assert closed(transport) and server.health()["unwanted"] == 1


@pytest.mark.parametrize("first_bytes", [b"GET / HTTP/1.1\r\n", b"\x16\x03\x01\x02\x00", b"86x"])
def test_bytes_no_type_can_match_close_the_connection_at_once(first_bytes):
    """Scanners, TLS hellos and typos: closed on the first byte that rules out every type."""
    clock, server, link, sink = make()
    protocol, transport = dial(server)
    protocol.dataReceived(first_bytes)
    assert closed(transport)
    protocol.dataReceived(IMEI.encode())  # too late
    drop(protocol, ConnectionDone())
    assert sink.events == []
    assert server.health()["garbage_closed"] == 1 and server.health()["connections"] == 0


def test_an_oversized_registration_is_closed_after_256_bytes():
    """A type the prefix check cannot follow keeps a connection open only up to MAX_REGISTRATION bytes."""
    vague = ModemType("vague", r"^(?:AB|CD)+;(?P<id>\d+);")
    clock, server, link, sink = make(types=(vague,))
    protocol, transport = dial(server)
    protocol.dataReceived(b"AB" * (MAX_REGISTRATION // 2))
    assert not closed(transport)
    protocol.dataReceived(b"C")
    assert closed(transport) and server.health()["garbage_closed"] == 1


@pytest.mark.parametrize("sent", [b"", b"86000"])
def test_a_silent_or_incomplete_registration_is_closed_after_identify_timeout(sent):
    """Nothing, or half an ID, and then silence: closed at identify_timeout, counted."""
    clock, server, link, sink = make(identify_timeout=10)
    protocol, transport = dial(server)
    clock.advance(5)
    if sent:
        protocol.dataReceived(sent)
    clock.advance(4.99)
    assert not closed(transport)
    clock.advance(0.01)
    assert closed(transport) and server.health()["identify_timeouts"] == 1
    assert len(clock.getDelayedCalls()) == 0


# --------------------------------------------------------------- half-open


def test_idle_timeout_closes_a_silent_socket_and_heartbeats_keep_it_alive():
    """Heartbeats count as life; idle_timeout seconds without any byte: aborted, link_down now."""
    clock, server, link, sink = make(idle_timeout=60)
    protocol, transport = dial(server)
    protocol.dataReceived(IMEI.encode())
    for _ in range(10):
        clock.advance(50)
        protocol.dataReceived(b"PING")
        assert len(clock.getDelayedCalls()) == 1  # one timer per connection, whatever the traffic
    assert not closed(transport) and sink.kinds() == ["up"]
    clock.advance(59.9)
    assert not closed(transport)
    clock.advance(0.1)
    assert closed(transport) and transport.disconnected
    assert sink.kinds() == ["up", "down"] and "no byte from the modem for 60 s" in sink.events[-1][1]
    drop(protocol)
    assert sink.kinds() == ["up", "down"]
    assert link.health()["state"] == "waiting" and link.health()["half_open_closed"] == 1
    assert server.health()["idle_closed"] == 1 and server.health()["half_open_closed"] == 1


def test_idle_timeout_shorter_than_identify_timeout_is_honoured():
    """The one timer is pulled in when the idle deadline comes before the identification one."""
    clock, server, link, sink = make(identify_timeout=30, idle_timeout=5)
    protocol, transport = dial(server)
    protocol.dataReceived(IMEI.encode())
    clock.advance(5)
    assert closed(transport)


def test_max_timeouts_in_a_row_close_the_socket_for_the_modem_to_redial():
    """Timeouts count in a row (answers of any kind reset them); link_down comes on the next turn."""
    clock, server, link, sink = make(max_timeouts=3)
    protocol, transport = dial(server)
    protocol.dataReceived(IMEI.encode())
    for outcome in ("timeout", "timeout", "ok", "timeout", "timeout", "crc_error", "timeout", "exception"):
        link.on_outcome(outcome)
    assert not closed(transport)
    link.transaction_timed_out()
    link.on_outcome("link_down")  # neither counts nor resets
    link.on_outcome("timeout")
    assert link.health()["timeouts_in_row"] == 2
    link.on_outcome("timeout")
    assert closed(transport) and transport.disconnected
    assert sink.kinds() == ["up"]  # never from inside on_outcome
    link.write(b"dropped")
    assert transport.value() == b""
    clock.advance(0)
    assert sink.kinds() == ["up", "down"] and "3 poll timeouts in a row" in sink.events[-1][1]
    drop(protocol)
    assert sink.kinds() == ["up", "down"]
    assert server.health()["timeout_closed"] == 1 and link.health()["half_open_closed"] == 1


def test_a_redial_before_the_deferred_link_down_keeps_the_link_up():
    """The modem is back before the reactor turns: no stale link_down after the new link_up."""
    clock, server, link, sink = make(max_timeouts=1)
    protocol, _ = dial(server)
    protocol.dataReceived(IMEI.encode())
    link.transaction_timed_out()
    again, _ = dial(server, 40001)
    again.dataReceived(IMEI.encode())
    clock.advance(0)
    assert sink.kinds() == ["up", "up"] and link.health()["state"] == "open"


def test_max_timeouts_zero_never_closes():
    """max_timeouts 0 (or None) disables the rule."""
    clock, server, link, sink = make(max_timeouts=0)
    protocol, transport = dial(server)
    protocol.dataReceived(IMEI.encode())
    for _ in range(50):
        link.transaction_timed_out()
    assert not closed(transport)


# ------------------------------------------------------------ life cycle


def test_link_stop_closes_without_link_down_and_refuses_the_modem_afterwards():
    """Stopping a channel closes its modem's socket quietly; the modem is then unwanted."""
    clock, server, link, sink = make()
    protocol, transport = dial(server)
    protocol.dataReceived(IMEI.encode())
    link.stop()
    assert closed(transport) and link.health()["state"] == "closed"
    drop(protocol, ConnectionDone())
    again, again_transport = dial(server)
    again.dataReceived(IMEI.encode())
    assert sink.kinds() == ["up"] and server.health()["unwanted"] == 1
    link.start()
    assert link.health()["state"] == "waiting"


def test_server_listens_and_stops():
    """start() listens with a large backlog on the configured interface; stop() closes every socket."""
    reactor = MemoryReactorClock()
    server = ModemServer(reactor, [DEFAULT], identify_timeout=30, idle_timeout=300, max_timeouts=3,
                         listen_host="127.0.0.1", listen_port=5020)
    sink = RecordingSink()
    server.register(IMEI, sink).start()
    server.start()
    [(port, factory, backlog, interface)] = reactor.tcpServers
    assert (port, interface) == (5020, "127.0.0.1") and factory is server.factory and backlog >= 512
    assert server.port == 5020 and server.health()["listen"] == "127.0.0.1:5020"
    protocol, transport = dial(server)
    protocol.dataReceived(IMEI.encode())
    pending, pending_transport = dial(server, 40001)
    server.stop()
    assert closed(transport) and closed(pending_transport)
    drop(protocol, ConnectionDone())
    drop(pending, ConnectionDone())
    assert sink.kinds() == ["up", "down"]
    assert reactor.getDelayedCalls() == []


def test_settings_are_checked():
    """No types, a non-positive identify_timeout, or an ID registered twice: ValueError."""
    clock = Clock()
    with pytest.raises(ValueError, match="at least one modem type"):
        ModemServer(clock, [])
    with pytest.raises(ValueError, match="identify_timeout"):
        ModemServer(clock, [DEFAULT], identify_timeout=0)
    server = ModemServer(clock, [DEFAULT])
    server.register(IMEI)
    with pytest.raises(ValueError, match=f"modem ID '{IMEI}' is registered twice"):
        server.register(IMEI)


chunks = st.lists(st.one_of(st.binary(max_size=40), st.sampled_from([IMEI.encode(), b"PING", b"ID:Z\r\n",
                                                                      b"DTU0042", b"\xff\xfe", b"\x00\x00"])),
                  max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks, st.lists(st.sampled_from(["timeout", "ok", "crc_error", "link_down", "advance"]), max_size=6))
def test_arbitrary_bytes_never_raise(data, events):
    """Whatever a peer sends, in whatever pieces, with polls and time in between: no exception."""
    clock, server, link, sink = make(identify_timeout=10, idle_timeout=20, max_timeouts=2)
    server.register("0042", RecordingSink()).start()
    protocols = [dial(server, 40000 + i) for i in range(2)]
    for i, chunk in enumerate(data):
        protocol, _ = protocols[i % 2]
        protocol.dataReceived(chunk)
        if i < len(events):
            if events[i] == "advance":
                clock.advance(7)
            else:
                link.on_outcome(events[i])
    clock.advance(100)
    for protocol, transport in protocols:
        assert closed(transport)
        drop(protocol)
    assert server.health()["connections"] == 0
    assert all(len(p.buf) <= MAX_REGISTRATION for p, _ in protocols)


# ------------------------------------------------------------ SimModem


class FixedModel:
    """Model values that do not change."""

    def values(self, t):
        return {"volume": 12.345}


def sim_modem(prefix=False, redial=True, register=IMEI.encode()):
    """Return (reactor, modem, bus) with a one-meter SimBus behind the modem."""
    reactor = MemoryReactorClock()
    bus = SimBus({1: SimDevice(1, [PointSpec("volume", READ_HOLDING, 0, "u32", scale=0.001)], FixedModel())},
                 reactor)
    modem = SimModem(reactor, "127.0.0.1", 5020, register, b"PING", 30.0, bus, prefix=prefix, redial=redial,
                     backoff=Backoff(1.0, 8.0))
    return reactor, modem, bus


def accept(reactor: MemoryReactorClock, index: int = -1):
    """Complete the modem's latest dial; return (protocol, transport)."""
    factory = reactor.tcpClients[index][2]
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def test_sim_modem_registers_bridges_and_beats_when_idle():
    """Registration first, the bus answers requests, and a heartbeat after 30 s of not sending."""
    reactor, modem, bus = sim_modem()
    modem.start()
    assert reactor.tcpClients[0][:2] == ("127.0.0.1", 5020) and not modem.connected
    protocol, transport = accept(reactor)
    assert modem.connected and transport.value() == IMEI.encode()
    transport.clear()
    reactor.advance(20)
    protocol.dataReceived(encode_read(1, READ_HOLDING, 0, 2))
    consumed, frame = decode_response(transport.value(), 1, READ_HOLDING, 2)
    assert isinstance(frame, ReadResponse) and frame.data == (12345).to_bytes(4, "big")
    transport.clear()
    reactor.advance(29.9)
    assert transport.value() == b""  # the answer at t=20 reset the idle period
    reactor.advance(0.1)
    assert transport.value() == b"PING"
    reactor.advance(30)
    assert transport.value() == b"PINGPING" and modem.heartbeats == 2


def test_sim_modem_prefix_puts_the_registration_before_every_answer():
    """With prefix every packet of the bus goes out behind the registration."""
    reactor, modem, bus = sim_modem(prefix=True, register=b"DTU0042")
    modem.start()
    protocol, transport = accept(reactor)
    protocol.dataReceived(encode_read(1, READ_HOLDING, 0, 2))
    value = transport.value()
    assert value.startswith(b"DTU0042DTU0042") and DTU.strip(value[7:])[0][:3] == b"\x01\x03\x04"


def test_sim_modem_redials_with_backoff_and_stops():
    """Drops and refusals are redialled after 1, 2, 4 ... s; a good connection resets the delay."""
    reactor, modem, bus = sim_modem()
    modem.start()
    factory = reactor.tcpClients[0][2]
    factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
    reactor.advance(0.99)
    assert len(reactor.tcpClients) == 1
    reactor.advance(0.01)
    assert len(reactor.tcpClients) == 2
    reactor.tcpClients[1][2].clientConnectionFailed(None, Failure(ConnectionRefusedError()))
    reactor.advance(2)
    assert len(reactor.tcpClients) == 3
    protocol, transport = accept(reactor)
    drop(protocol)
    assert not modem.connected and "peer gone" in modem.health()["last_error"]
    reactor.advance(1)
    assert len(reactor.tcpClients) == 4
    protocol, transport = accept(reactor)
    done = modem.stop()
    assert closed(transport)
    fired = []
    done.addCallback(fired.append)
    drop(protocol, ConnectionDone())
    assert fired == [None]
    reactor.advance(100)
    assert len(reactor.tcpClients) == 4 and modem.health()["connects"] == 2


def test_sim_modem_without_redial_stays_down_and_drops_late_answers():
    """redial=False: one connection only; answers the bus gives while offline are lost and counted."""
    reactor, modem, bus = sim_modem(redial=False)
    bus.latency = 0.5
    modem.start()
    protocol, transport = accept(reactor)
    protocol.dataReceived(encode_read(1, READ_HOLDING, 0, 2))
    drop(protocol)
    reactor.advance(1)
    assert len(reactor.tcpClients) == 1 and modem.health()["dropped"] > 0
