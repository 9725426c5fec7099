# -*- test-case-name: tests.channels.test_modem -*-
"""GPRS modems that dial in: a TCP server whose identified connections are links.

A GPRS modem in "DTU" mode is a TCP *client* of the dispatch centre.  On
connecting it sends a registration packet (its IMEI or a configured ID), may
send heartbeat packets while the line is idle, and otherwise passes bytes
transparently between the TCP socket and its RS-485 / M-Bus side.  Some
modems also put the registration packet in front of every packet they send.

:class:`ModemServer` accepts these connections.  The first bytes of a
connection are matched against the registration pattern of each
:class:`ModemType`, in order; the ID found selects the :class:`ModemLink`
registered for it, and that connection becomes the link's transport: the
link calls ``link_up`` on its sink (the channel's bus scheduler), hands it
every byte that is not a heartbeat or a repeated registration, and calls
``link_down`` when the socket is gone.

Things that go wrong with thousands of modems on a mobile network, and what
the server does about them:

- A modem whose GPRS session broke dials in again while its old socket still
  looks open (no FIN ever arrives).  The newer connection *replaces* the older
  one: the old socket is closed quietly and the sink stays up.
- Half-open sockets: a connection that receives no byte at all (heartbeats
  included) for ``idle_timeout`` seconds is closed, and so is one whose
  modem missed ``max_timeouts`` polls in a row (:meth:`ModemLink.on_outcome`);
  the modem then redials.
- Unknown IDs and port scanners: a connection whose first bytes are no
  registration packet is closed when it cannot become one or after
  ``identify_timeout``; one with an ID nobody registered is held until
  ``identify_timeout`` (closing it at once would make the modem redial in a
  tight loop), counted, and logged at most once a minute.

Scale: a connection costs one protocol object and at most one pending
reactor call.  Receiving bytes only stores a timestamp; the one timer of a
connection fires at the earliest time something could be due and re-arms
itself for the next, so 5,000 modems do not mean 5,000 timer updates per
second.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from typing import Iterable, Literal

from twisted.internet.protocol import Factory, Protocol

from channels.transports.base import LinkSink, write_now

log = logging.getLogger(__name__)

#: Longest registration packet looked for; a connection that has sent more
#: without matching any modem type is not a modem.
MAX_REGISTRATION = 256
#: Unknown IDs kept for the health report.
UNKNOWN_RECENT = 10
#: Seconds between two log lines of one kind of rejected connection.
LOG_EVERY = 60.0
#: Listen backlog: after a restart of the server every modem redials within
#: seconds, far more than the default backlog of 50 holds (the kernel caps it at net.core.somaxconn).
BACKLOG = 4096
#: Timer slack for float rounding of re-armed deadlines.
_SLACK = 1e-6

# Connection states.
_PENDING = 0  # waiting for a registration packet
_LINKED = 1  # identified, the transport of its link
_REJECTED = 2  # identified, but nobody wants it: held until identify_timeout
_CLOSED = 3  # closed or closing; bytes are ignored

# Byte classes of a bytes pattern (ASCII semantics, as ``re`` has for bytes).
_ALL = frozenset(range(256))
_DIGIT = frozenset(range(0x30, 0x3A))
_WORD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_SPACE = frozenset(b" \t\n\r\f\v")


def _compile(pattern: str | bytes, what: str) -> re.Pattern[bytes]:
    """Compile a config pattern into a bytes regex; ValueError names ``what`` and the pattern.

    A text pattern stands for bytes one character per byte (latin-1), so
    both ``'^\\xff'`` (an escape the regex engine reads) and ``"\\xff"``
    (the character U+00FF) mean the byte 0xFF.
    """
    if isinstance(pattern, str):
        try:
            raw = pattern.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"{what} {pattern!r}: only characters up to U+00FF can stand for bytes") from None
    else:
        raw = bytes(pattern)
    try:
        compiled = re.compile(raw)
    except re.error as exc:
        raise ValueError(f"{what} {pattern!r} is not a valid regular expression: {exc}") from None
    if compiled.match(b"") is not None:
        raise ValueError(f"{what} {pattern!r} matches an empty packet")
    return compiled


def _required_bytes(compiled: re.Pattern[bytes]) -> tuple[tuple[frozenset[int], ...], bool]:
    """Return the byte classes any match must start with, and whether they are the whole match.

    Python's ``re`` cannot tell "no match yet" from "no match ever" on a
    buffer that is still growing; this walks the parsed pattern as far as it
    is a plain sequence of single-byte items (literals, classes, fixed
    repeats) so that a buffer can be rejected as soon as one of its bytes
    breaks that sequence.  Anything else (alternation, look-around, case
    folding, variable repeats past their minimum) ends the walk: the result
    is always a sound prefix, possibly an empty one.
    """
    try:
        from re import _constants as c, _parser as p  # type: ignore[attr-defined]

        parsed = p.parse(compiled.pattern, compiled.flags)
    except Exception:  # noqa: BLE001 - a private module; without it there is just no early rejection
        return (), False
    if compiled.flags & (re.IGNORECASE | re.LOCALE):
        return (), False
    dotall = bool(compiled.flags & re.DOTALL)
    classes: list[frozenset[int]] = []

    def one_byte(op, arg) -> frozenset[int] | None:
        if op is c.LITERAL:
            return frozenset((arg,))
        if op is c.NOT_LITERAL:
            return _ALL - {arg}
        if op is c.ANY:
            return _ALL if dotall else _ALL - {10}
        if op is c.IN:
            allowed: set[int] = set()
            negate = False
            for item_op, item_arg in arg:
                if item_op is c.NEGATE:
                    negate = True
                elif item_op is c.LITERAL:
                    allowed.add(item_arg)
                elif item_op is c.RANGE:
                    allowed.update(range(item_arg[0], item_arg[1] + 1))
                elif item_op is c.CATEGORY:
                    category = {c.CATEGORY_DIGIT: _DIGIT, c.CATEGORY_NOT_DIGIT: _ALL - _DIGIT,
                                c.CATEGORY_WORD: _WORD, c.CATEGORY_NOT_WORD: _ALL - _WORD,
                                c.CATEGORY_SPACE: _SPACE, c.CATEGORY_NOT_SPACE: _ALL - _SPACE}.get(item_arg)
                    if category is None:
                        return None
                    allowed |= category
                else:
                    return None
            return frozenset(_ALL - allowed if negate else allowed)
        return None

    def walk(items, first: bool) -> bool:
        for op, arg in items:
            if len(classes) >= MAX_REGISTRATION:
                return False
            if op is c.AT and first and not classes and arg in (c.AT_BEGINNING, c.AT_BEGINNING_STRING):
                continue
            single = one_byte(op, arg)
            if single is not None:
                classes.append(single)
                continue
            if op in (c.MAX_REPEAT, c.MIN_REPEAT):
                low, high, sub = arg
                for _ in range(min(low, MAX_REGISTRATION)):
                    if not walk(sub, False):
                        return False
                if high != low:
                    return False
                continue
            if op is c.SUBPATTERN:
                _group, add_flags, _del_flags, sub = arg
                if add_flags & (re.IGNORECASE | re.LOCALE):
                    return False
                if not walk(sub, first and not classes):
                    return False
                continue
            return False
        return True

    complete = walk(parsed, True)
    return tuple(classes), complete


def _id_text(raw: bytes) -> str:
    """Return an ID as text: itself if printable ASCII, else upper-case hex."""
    if raw.isascii():
        text = raw.decode("ascii")
        if text.isprintable():
            return text
    return raw.hex().upper()


class ModemType:
    """How one kind of modem registers and keeps its line alive.

    ``id_pattern`` is a bytes regex (text patterns are encoded latin-1)
    matched at the very start of a connection; its group ``id`` (or else
    group 1, or else the whole match) is the modem's ID.  The pattern must
    end where the registration packet ends (a fixed length or a
    terminator): whatever follows the match is already data.
    ``heartbeat``, when given, matches a heartbeat packet; heartbeats are
    stripped from the start of every received chunk and counted.  With
    ``prefix`` the modem repeats its registration packet in front of every
    packet, and it is stripped the same way.
    """

    __slots__ = ("name", "id_pattern", "heartbeat", "prefix", "strips", "_id_re", "_heartbeat_re", "_group",
                 "_required", "_complete")

    def __init__(self, name: str, id_pattern: str | bytes, heartbeat: str | bytes | None = None,
                 prefix: bool = False) -> None:
        """Compile the patterns; raise ValueError naming a bad one."""
        self.name = name
        self.id_pattern = id_pattern
        self.heartbeat = heartbeat or None
        self.prefix = bool(prefix)
        self._id_re = _compile(id_pattern, f"modem type {name!r}: id_pattern")
        self._heartbeat_re = _compile(heartbeat, f"modem type {name!r}: heartbeat") if heartbeat else None
        groups = self._id_re.groupindex
        self._group: int | str = "id" if "id" in groups else (1 if self._id_re.groups else 0)
        self._required, self._complete = _required_bytes(self._id_re)
        #: Whether received chunks need looking at before they go to the sink.
        self.strips = self._heartbeat_re is not None or self.prefix

    def __repr__(self) -> str:
        """Show the name and patterns."""
        return (f"ModemType({self.name!r}, {self.id_pattern!r}, heartbeat={self.heartbeat!r}, "
                f"prefix={self.prefix})")

    def identify(self, buf: bytes) -> tuple[str, int] | None | Literal[False]:
        """Find a registration packet at the start of ``buf``.

        Return ``(id, consumed)`` on a match, ``None`` when more bytes could
        still make one, ``False`` when no continuation can (or the ID group
        is empty).
        """
        match = self._id_re.match(buf)
        if match is not None:
            raw = match.group(self._group)
            if not raw:
                return False
            return _id_text(raw), match.end()
        required = self._required
        n = min(len(buf), len(required))
        for i in range(n):
            if buf[i] not in required[i]:
                return False
        if self._complete and len(buf) >= len(required):
            return False
        return None

    def strip(self, data: bytes) -> tuple[bytes, int]:
        """Remove heartbeats (and, with ``prefix``, registration packets) from the start of ``data``.

        Return the rest and the number of heartbeats removed.  Only the start
        of a chunk is looked at: a modem sends these packets on their own,
        while data in the middle of a chunk may contain any byte pattern.
        """
        heartbeat = self._heartbeat_re
        registration = self._id_re if self.prefix else None
        beats = 0
        while data:
            if heartbeat is not None:
                match = heartbeat.match(data)
                if match is not None:
                    beats += 1
                    data = data[match.end():]  # slicing: '^' only matches at index 0
                    continue
            if registration is not None:
                match = registration.match(data)
                if match is not None:
                    data = data[match.end():]
                    continue
            break
        return data, beats


def identify(types: Iterable[ModemType], buf: bytes) -> tuple[ModemType, str, int] | None | Literal[False]:
    """Try ``types`` in order on the first bytes of a connection.

    Return ``(type, id, consumed)`` for the first type that matches,
    ``None`` while some type may still match with more bytes, ``False``
    when none can.  A type that matches now wins over an earlier one that
    is still waiting for bytes.
    """
    undecided = False
    for modem_type in types:
        result = modem_type.identify(buf)
        if result is None:
            undecided = True
        elif result is not False:
            return modem_type, result[0], result[1]
    return None if undecided else False


class _Throttle:
    """At most one log line per ``every`` seconds; counts what it held back."""

    __slots__ = ("every", "next_at", "held")

    def __init__(self, every: float) -> None:
        self.every = every
        self.next_at = float("-inf")
        self.held = 0

    def allow(self, now: float) -> int | None:
        """Return the number of lines held back since the last one, or None to stay quiet."""
        if now < self.next_at:
            self.held += 1
            return None
        held, self.held = self.held, 0
        self.next_at = now + self.every
        return held


def _abort(transport) -> None:
    """Close ``transport`` without waiting to flush: its peer is gone or unwanted."""
    abort = getattr(transport, "abortConnection", None)
    if abort is not None:
        abort()
    else:
        transport.loseConnection()


class _ModemConnection(Protocol):
    """One accepted TCP connection: unidentified, a link's transport, or rejected."""

    # No __slots__: Twisted's Protocol has none, so instances keep a __dict__
    # anyway.  The cost that matters at 5,000 modems is the timers: one
    # per connection, never re-armed on received bytes.

    def __init__(self, server: "ModemServer") -> None:
        self.server = server
        self.state = _PENDING
        self.buf = b""
        self.link: ModemLink | None = None
        self.modem_type: ModemType | None = None
        self.modem_id: str | None = None
        self.peer = "?"
        self.opened = 0.0
        self.last_rx = 0.0
        self.timer = None

    def connectionMade(self) -> None:  # noqa: N802 - Twisted callback
        """Register with the server and arm the identification deadline."""
        self.server._opened(self)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted callback
        """Route bytes by state; only a timestamp is kept for the idle check."""
        self.last_rx = self.server._reactor.seconds()
        state = self.state
        if state == _LINKED:
            self.link._received(self, data)
        elif state == _PENDING:
            self.server._identify(self, data)

    def connectionLost(self, reason=None) -> None:  # noqa: N802 - Twisted callback
        """Tell the server (and through it the link) that the socket is gone."""
        self.server._closed(self, reason)


class _ModemFactory(Factory):
    """Builds a :class:`_ModemConnection` per accepted socket."""

    # Thousands of modems redial all day; the per-connection factory log
    # lines would drown everything else.
    noisy = False

    def __init__(self, server: "ModemServer") -> None:
        self._server = server

    def buildProtocol(self, addr) -> _ModemConnection:  # noqa: N802 - Twisted callback
        """Return a fresh connection protocol."""
        return _ModemConnection(self._server)


class ModemLink:
    """The link of one modem's channel; its transport is whichever socket the modem dialled in on.

    Implements :class:`~channels.transports.base.Link`.  ``start()`` only
    marks the link as wanted: the modem dials in, the server identifies it
    and attaches the connection, and the sink gets ``link_up``.  A newer
    connection with the same ID replaces the current one without a
    ``link_down`` (the sink gets a second ``link_up`` with the same link).
    """

    def __init__(self, server: "ModemServer", modem_id: str, sink: LinkSink | None = None) -> None:
        """Create the link of ``modem_id`` on ``server``; ``sink`` may be set later as ``.sink``."""
        self.server = server
        self.modem_id = modem_id
        self.sink = sink
        self.endpoint = f"modem:{modem_id}"
        self.started = False
        self.state = "closed"
        self.peer = ""
        self.modem_type = ""
        self.connects = 0
        self.replaced = 0
        self.heartbeats = 0
        self.half_open_closed = 0
        self.timeouts_in_row = 0
        self.last_error = ""
        self._last_seen: float | None = None
        self._conn: _ModemConnection | None = None
        # Bumped on every attach and every close of ours, so that a deferred
        # link_down never lands after a newer connection came up.
        self._generation = 0

    # ------------------------------------------------------------ Link

    def start(self) -> None:
        """Accept this modem's connections from now on (no I/O: the modem dials in)."""
        self.started = True
        if self._conn is None:
            self.state = "waiting"

    def stop(self) -> None:
        """Close the modem's connection, if any, and refuse it until started again."""
        self.started = False
        conn = self._conn
        if conn is not None:
            self._detach(conn)
            conn.transport.loseConnection()
        self.state = "closed"

    def write(self, data: bytes) -> None:
        """Send ``data`` to the modem's socket; dropped when the modem is not connected."""
        conn = self._conn
        if conn is not None:
            write_now(conn.transport, data)

    @property
    def connected(self) -> bool:
        """Tell whether the modem is connected and identified right now."""
        return self._conn is not None

    @property
    def last_seen(self) -> float | None:
        """Return the reactor time of the last byte from the modem (None: never)."""
        conn = self._conn
        return conn.last_rx if conn is not None else self._last_seen

    def on_outcome(self, outcome) -> None:
        """Take how a poll transaction on this link ended (``"ok"``, ``"timeout"``, ...).

        ``max_timeouts`` timeouts in a row close the socket: a modem whose
        GPRS session died often keeps a socket that looks open on our side
        until TCP gives up, hours later, while the modem itself would redial
        at once if it noticed.  Any other answer (a CRC error or an
        exception is still bytes from the modem) resets the count;
        ``"link_down"`` leaves it alone.  The sink's ``link_down`` for such a
        close comes on a later reactor turn, never from inside this call.
        """
        outcome = getattr(outcome, "value", outcome)
        if outcome == "timeout":
            self.timeouts_in_row += 1
            limit = self.server.max_timeouts
            conn = self._conn
            if limit and self.timeouts_in_row >= limit and conn is not None:
                count = self.timeouts_in_row
                self.timeouts_in_row = 0
                self.server.timeout_closed += 1
                self._lose(conn, f"{count} poll timeouts in a row; socket closed for the modem to redial",
                           notify_now=False)
        elif outcome != "link_down":
            self.timeouts_in_row = 0

    def transaction_timed_out(self) -> None:
        """Count one poll timeout (same as ``on_outcome("timeout")``)."""
        self.on_outcome("timeout")

    def transaction_answered(self) -> None:
        """Count one answered poll (same as ``on_outcome("ok")``)."""
        self.on_outcome("ok")

    def health(self) -> dict:
        """Return state, peer and counters for the health report."""
        return {"transport": "modem", "endpoint": self.endpoint, "state": self.state, "peer": self.peer,
                "modem_type": self.modem_type, "connects": self.connects, "replaced": self.replaced,
                "heartbeats": self.heartbeats, "half_open_closed": self.half_open_closed,
                "timeouts_in_row": self.timeouts_in_row, "last_seen": self.last_seen,
                "last_error": self.last_error}

    # ------------------------------------------------- server side

    def _attach(self, conn: _ModemConnection) -> None:
        """Make ``conn`` this link's transport, replacing (and closing) an older one."""
        old = self._conn
        conn.state = _LINKED
        conn.link = self
        self._conn = conn
        self._generation += 1
        self.peer = conn.peer
        self.modem_type = conn.modem_type.name if conn.modem_type is not None else ""
        self.connects += 1
        self.timeouts_in_row = 0
        self.state = "open"
        self.last_error = ""
        if old is not None:
            # The old socket's own connectionLost must not take the link down.
            self._detach_quietly(old)
            _abort(old.transport)
            self.replaced += 1
            self.server.replaced += 1
            log.info("modem %s dialled in again from %s; its connection from %s is closed",
                     self.modem_id, conn.peer, old.peer)
        else:
            log.info("modem %s connected from %s", self.modem_id, conn.peer)
        if self.sink is not None:
            self.sink.link_up(self)

    def _received(self, conn: _ModemConnection, data: bytes) -> None:
        """Strip heartbeats/prefixes and pass the rest to the sink."""
        modem_type = conn.modem_type
        if modem_type.strips:
            data, beats = modem_type.strip(data)
            if beats:
                self.heartbeats += beats
                self.server.heartbeats += beats
        if data and self.sink is not None:
            self.sink.data_received(data)

    def _detach_quietly(self, conn: _ModemConnection) -> None:
        conn.state = _CLOSED
        conn.link = None

    def _detach(self, conn: _ModemConnection) -> None:
        """Forget ``conn`` without telling the sink."""
        self._detach_quietly(conn)
        if conn is self._conn:
            self._conn = None
            self._last_seen = conn.last_rx
            self._generation += 1

    def _lost(self, conn: _ModemConnection, message: str) -> None:
        """The modem's socket closed (by the modem or the network)."""
        if conn is not self._conn:
            return
        self._detach(conn)
        self.state = "waiting" if self.started else "closed"
        self.last_error = message
        log.warning("modem %s disconnected: %s", self.modem_id, message)
        if self.started and self.sink is not None:
            self.sink.link_down(message)

    def _lose(self, conn: _ModemConnection, reason: str, notify_now: bool) -> None:
        """Close ``conn`` as half-open and take the link down (now, or on the next reactor turn)."""
        if conn is not self._conn:
            return
        self._detach(conn)
        _abort(conn.transport)
        self.half_open_closed += 1
        self.server.half_open_closed += 1
        self.state = "waiting" if self.started else "closed"
        self.last_error = reason
        log.warning("modem %s: %s", self.modem_id, reason)
        if notify_now:
            self._notify_down(self._generation, reason)
        else:
            self.server._reactor.callLater(0, self._notify_down, self._generation, reason)

    def _notify_down(self, generation: int, reason: str) -> None:
        if generation == self._generation and self._conn is None and self.started and self.sink is not None:
            self.sink.link_down(reason)


class ModemServer:
    """Accept dial-in modems on ``listen_host:listen_port`` and hand each to its link.

    ``types`` are tried in order on the first bytes of every connection.
    ``identify_timeout`` bounds how long a connection may stay
    unidentified (or identified with an unknown ID); ``idle_timeout``
    (0/None: never) closes an identified connection that received nothing
    for that long; ``max_timeouts`` (0/None: never) poll timeouts in a row
    close it as well (see :meth:`ModemLink.on_outcome`).
    """

    def __init__(self, reactor, types: Iterable[ModemType], identify_timeout: float = 30.0,
                 idle_timeout: float | None = 300.0, max_timeouts: int | None = 3,
                 listen_host: str = "0.0.0.0", listen_port: int = 5020) -> None:
        """Keep the settings; nothing listens before :meth:`start`."""
        self._reactor = reactor
        self.types = list(types)
        if not self.types:
            raise ValueError("a modem server needs at least one modem type")
        if identify_timeout is None or identify_timeout <= 0:
            raise ValueError(f"identify_timeout must be positive, not {identify_timeout!r}")
        self.identify_timeout = float(identify_timeout)
        self.idle_timeout = float(idle_timeout or 0.0)
        self.max_timeouts = int(max_timeouts or 0)
        self.listen_host = listen_host
        self.listen_port = listen_port
        #: The Twisted factory of modem connections (to listen elsewhere, or to feed fake transports in tests).
        self.factory = _ModemFactory(self)
        #: Registered links by modem ID.
        self.links: dict[str, ModemLink] = {}
        self._conns: set[_ModemConnection] = set()
        self._listening = None
        self._unknown_recent: deque[str] = deque(maxlen=UNKNOWN_RECENT)
        self._throttles = {kind: _Throttle(LOG_EVERY) for kind in ("unknown", "garbage", "silent", "unwanted")}
        # Counters.
        self.accepted = 0
        self.identifications = 0
        self.unknown_ids = 0
        self.unwanted = 0
        self.garbage_closed = 0
        self.identify_timeouts = 0
        self.heartbeats = 0
        self.replaced = 0
        self.half_open_closed = 0
        self.idle_closed = 0
        self.timeout_closed = 0

    # ------------------------------------------------------------ set-up

    def register(self, modem_id: str, sink: LinkSink | None = None) -> ModemLink:
        """Return the link for ``modem_id`` (its text form, as :func:`identify` gives it)."""
        modem_id = str(modem_id)
        if modem_id in self.links:
            raise ValueError(f"modem ID {modem_id!r} is registered twice")
        link = ModemLink(self, modem_id, sink)
        self.links[modem_id] = link
        return link

    def start(self) -> None:
        """Listen for modems."""
        if self._listening is None:
            self._listening = self._reactor.listenTCP(self.listen_port, self.factory, backlog=BACKLOG,
                                                      interface=self.listen_host)
            log.info("modem server listening on %s:%d (%d modems registered)", self.listen_host, self.port,
                     len(self.links))

    @property
    def port(self) -> int:
        """Return the port listened on (the real one after :meth:`start` on port 0)."""
        if self._listening is not None:
            return self._listening.getHost().port
        return self.listen_port

    def stop(self):
        """Stop listening and close every connection; return the Deferred of the listener's close (or None)."""
        listening, self._listening = self._listening, None
        done = listening.stopListening() if listening is not None else None
        for conn in list(self._conns):
            self._cancel_timer(conn)
            if conn.transport is not None:
                conn.transport.loseConnection()
        return done

    def health(self) -> dict:
        """Return connection counts and counters for the health report."""
        pending = sum(1 for conn in self._conns if conn.state == _PENDING)
        return {
            "listen": f"{self.listen_host}:{self.port}",
            "connections": len(self._conns),
            "pending": pending,
            "identified": sum(1 for link in self.links.values() if link.connected),
            "registered": len(self.links),
            "accepted": self.accepted,
            "identifications": self.identifications,
            "unknown_ids": self.unknown_ids,
            "unknown_recent": list(self._unknown_recent),
            "unwanted": self.unwanted,
            "garbage_closed": self.garbage_closed,
            "identify_timeouts": self.identify_timeouts,
            "heartbeats": self.heartbeats,
            "replaced": self.replaced,
            "half_open_closed": self.half_open_closed,
            "idle_closed": self.idle_closed,
            "timeout_closed": self.timeout_closed,
        }

    # ------------------------------------------------- connections

    def _opened(self, conn: _ModemConnection) -> None:
        now = self._reactor.seconds()
        self._conns.add(conn)
        self.accepted += 1
        conn.opened = conn.last_rx = now
        transport = conn.transport
        try:
            peer = transport.getPeer()
            conn.peer = f"{peer.host}:{peer.port}"
        except Exception:  # noqa: BLE001 - only for logs and health
            pass
        try:
            # Polls are single small frames: no Nagle delay.  Keep-alive lets
            # the kernel find some dead peers even when nothing is polled.
            transport.setTcpNoDelay(True)
            transport.setTcpKeepAlive(True)
        except Exception:  # noqa: BLE001 - best effort on non-TCP transports
            pass
        self._arm(conn, now + self.identify_timeout, now)

    def _identify(self, conn: _ModemConnection, data: bytes) -> None:
        buf = conn.buf + data if conn.buf else data
        result = identify(self.types, buf[:MAX_REGISTRATION])
        if result is None:
            if len(buf) > MAX_REGISTRATION:
                self._garbage(conn, buf, f"no registration packet in the first {MAX_REGISTRATION} bytes")
            else:
                conn.buf = bytes(buf)
            return
        if result is False:
            self._garbage(conn, buf, "not a registration packet of any modem type")
            return
        modem_type, modem_id, used = result
        conn.buf = b""
        conn.modem_type = modem_type
        conn.modem_id = modem_id
        now = self._reactor.seconds()
        link = self.links.get(modem_id)
        if link is None:
            conn.state = _REJECTED
            self.unknown_ids += 1
            recent = self._unknown_recent
            if modem_id in recent:
                recent.remove(modem_id)
            recent.append(modem_id)
            held = self._throttles["unknown"].allow(now)
            if held is not None:
                log.warning("unknown modem ID %r (%s) from %s; closing in %g s%s", modem_id, modem_type.name,
                            conn.peer, self.identify_timeout, _held_note(held))
            return
        if not link.started:
            conn.state = _REJECTED
            self.unwanted += 1
            held = self._throttles["unwanted"].allow(now)
            if held is not None:
                log.warning("modem %s dialled in from %s but its channel is stopped; closing in %g s%s",
                            modem_id, conn.peer, self.identify_timeout, _held_note(held))
            return
        self.identifications += 1
        link._attach(conn)
        if self.idle_timeout:
            self._arm(conn, conn.last_rx + self.idle_timeout, now)
        rest = buf[used:]
        if rest and conn.state == _LINKED:
            link._received(conn, rest)

    def _garbage(self, conn: _ModemConnection, buf: bytes, why: str) -> None:
        conn.state = _CLOSED
        conn.buf = b""
        self.garbage_closed += 1
        held = self._throttles["garbage"].allow(self._reactor.seconds())
        if held is not None:
            log.warning("connection from %s closed: %s (starts %r)%s", conn.peer, why, bytes(buf[:32]),
                        _held_note(held))
        self._cancel_timer(conn)
        conn.transport.loseConnection()

    def _closed(self, conn: _ModemConnection, reason) -> None:
        self._conns.discard(conn)
        self._cancel_timer(conn)
        state, conn.state = conn.state, _CLOSED
        link = conn.link
        if state == _LINKED and link is not None:
            message = reason.getErrorMessage() if reason is not None else "connection closed"
            link._lost(conn, message)

    # ------------------------------------------------------------ timer

    def _arm(self, conn: _ModemConnection, at: float, now: float) -> None:
        """Make sure the connection's one timer fires no later than ``at``."""
        timer = conn.timer
        if timer is None:
            conn.timer = self._reactor.callLater(max(0.0, at - now), self._on_timer, conn)
        elif timer.getTime() > at + _SLACK:
            timer.reset(max(0.0, at - now))

    def _cancel_timer(self, conn: _ModemConnection) -> None:
        timer = conn.timer
        conn.timer = None
        if timer is not None and timer.active():
            timer.cancel()

    def _on_timer(self, conn: _ModemConnection) -> None:
        conn.timer = None
        state = conn.state
        if state == _CLOSED:
            return
        now = self._reactor.seconds()
        if state == _LINKED:
            if not self.idle_timeout:
                return
            deadline = conn.last_rx + self.idle_timeout
            if now + _SLACK < deadline:
                self._arm(conn, deadline, now)
                return
            self.idle_closed += 1
            conn.link._lose(conn, f"no byte from the modem for {self.idle_timeout:g} s; socket closed as half-open",
                            notify_now=True)
            return
        deadline = conn.opened + self.identify_timeout
        if now + _SLACK < deadline:
            self._arm(conn, deadline, now)
            return
        if state == _PENDING:
            self.identify_timeouts += 1
            held = self._throttles["silent"].allow(now)
            if held is not None:
                log.warning("connection from %s closed: no registration packet within %g s (got %r)%s",
                            conn.peer, self.identify_timeout, conn.buf[:32], _held_note(held))
        conn.state = _CLOSED
        conn.buf = b""
        _abort(conn.transport)


def _held_note(held: int) -> str:
    return f" ({held} more like this in the last {LOG_EVERY:g} s)" if held else ""


__all__ = ["MAX_REGISTRATION", "ModemLink", "ModemServer", "ModemType", "identify"]
