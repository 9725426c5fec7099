# -*- test-case-name: tests.channels.mbus.test_scan -*-
"""Find the meters on an M-Bus segment: primary scan and secondary wildcard search.

The scanner owns the bus while it runs (it is a link's sink, like the bus
scheduler) and sends one probe at a time.  A probe's answer is classified
by what arrives before the line goes quiet:

- nothing within the response window: nobody there;
- exactly ``E5``: one meter acknowledged;
- exactly one valid frame: that frame;
- anything else (a broken frame, bytes after the ``E5``): a *collision*,
  several meters answered at once.

**Primary scan**: ``SND_NKE`` to each address 0-250; an ``E5`` is followed
by ``REQ_UD2`` to read the meter's identity.  **Secondary search**
(protocols.md §1.2): select with the all-wildcard mask; on a collision,
fix the first id digit to 0…9 in turn and select again, going one digit
deeper under every digit that still collides: a depth-first search whose
leaves are single meters, each read with ``REQ_UD2`` to address 253.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

from twisted.internet import defer

from channels.mbus import link
from channels.mbus.telegram import MBusDecodeError, decode_user_data

#: Quiet after the last byte that ends an answer, in characters on top of a fixed margin.
QUIET_CHARS = 10
QUIET_EXTRA_S = 0.02
#: Digits of the identification number searched by the secondary scan.
ID_DIGITS = 8


@dataclass(frozen=True)
class FoundMeter:
    """A meter the scan found; ``primary`` is None when found by secondary search."""

    primary: int | None
    secondary: str
    id: str
    manufacturer: str
    version: int
    medium: str

    def as_dict(self) -> dict:
        """Return the fields as a plain dict."""
        return asdict(self)


@dataclass(frozen=True)
class Collision:
    """Several meters answered one probe that could not be narrowed down further."""

    where: str


class ScanAborted(Exception):
    """The link went down or the scan was stopped."""


class Scanner:
    """Probe an M-Bus segment through a link (``attach`` it as the link's sink).

    ``timeout`` is the first-byte timeout on top of the request's own wire
    time and the response window; ``retries`` repeats a probe that got no
    answer (a meter may miss one frame).  ``progress(done, total, what)`` is
    called after every probe.
    """

    def __init__(self, reactor, baud: int = 2400, allowance: float = 0.1, retries: int = 1,
                 progress: Callable[[int, int, str], None] | None = None) -> None:
        self._reactor = reactor
        self.baud = baud
        self.allowance = allowance
        self.retries = retries
        self.progress = progress or (lambda done, total, what: None)
        self.quiet = QUIET_CHARS * link.char_time(baud) + QUIET_EXTRA_S
        self.rest = link.frame_time(link.MAX_FRAME, baud) + allowance
        self.probes = 0
        self.collisions: list[Collision] = []
        self._link = None
        self._up = defer.Deferred()
        self._pending: defer.Deferred | None = None
        self._buf = bytearray()
        self._timer = None
        self._deadline = 0.0

    # ------------------------------------------------------------ link sink

    def link_up(self, link_) -> None:
        """Start using ``link_``."""
        self._link = link_
        if not self._up.called:
            self._up.callback(None)

    def link_down(self, reason: str) -> None:
        """Abort the probe in flight."""
        self._link = None
        if self._pending is not None:
            self._finish(failure=ScanAborted(f"link down: {reason}"))

    def data_received(self, data: bytes) -> None:
        """Collect an answer; every byte pushes the end of the answer out by the quiet time."""
        if self._pending is None:
            return
        now = self._reactor.seconds()
        if not self._buf:
            self._deadline = now + self.rest
        self._buf += data
        self._arm(min(self._deadline, now + self.quiet))

    def wait_link(self, timeout: float = 10.0) -> defer.Deferred:
        """Return a Deferred that fires once the link is up (or fails after ``timeout``)."""
        if self._link is not None:
            return defer.succeed(None)
        return self._up.addTimeout(timeout, self._reactor)

    # --------------------------------------------------------------- probes

    def probe(self, request: bytes) -> defer.Deferred:
        """Send ``request``; fire with ``None`` (silence), an ACK or long :class:`Frame`, or a :class:`Collision`."""
        if self._link is None:
            return defer.fail(ScanAborted("link down"))
        self.probes += 1
        self._buf = bytearray()
        self._pending = defer.Deferred()
        timeout = link.frame_time(len(request), self.baud) + link.response_window(self.baud) + self.allowance
        self._arm(self._reactor.seconds() + timeout)
        self._link.write(request)
        return self._pending

    def _arm(self, at: float) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self._reactor.callLater(max(0.0, at - self._reactor.seconds()), self._finish)

    def _finish(self, failure: Exception | None = None) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        pending, self._pending = self._pending, None
        if pending is None:
            return
        if failure is not None:
            pending.errback(failure)
            return
        raw = bytes(self._buf)
        if not raw:
            pending.callback(None)
            return
        try:
            pending.callback(link.parse_frame(raw))
        except link.MBusFrameError as exc:
            pending.callback(Collision(f"{len(raw)} bytes: {exc.what}"))

    @defer.inlineCallbacks
    def _ask(self, request: bytes):
        """Probe with retries while nobody answers."""
        for _ in range(self.retries + 1):
            answer = yield self.probe(request)
            if answer is not None:
                return answer
        return None

    # -------------------------------------------------------------- primary

    @defer.inlineCallbacks
    def scan_primary(self, addresses=range(0, link.MAX_PRIMARY + 1)):
        """Return the meters answering at primary ``addresses``; collisions go to ``self.collisions``."""
        addresses = list(addresses)
        found: list[FoundMeter] = []
        for done, address in enumerate(addresses, start=1):
            answer = yield self._ask(link.snd_nke(address))
            if isinstance(answer, Collision):
                self.collisions.append(Collision(f"primary address {address}: several meters ({answer.where})"))
            elif answer is not None and answer.kind == "ack":
                reply = yield self._ask(link.req_ud2(address, True))
                meter = self._identify(reply, address)
                if meter is None:
                    self.collisions.append(Collision(f"primary address {address}: acknowledged but "
                                                     f"no readable answer to REQ_UD2"))
                else:
                    found.append(meter)
            self.progress(done, len(addresses), f"primary {address}: {len(found)} found")
        return found

    # ------------------------------------------------------------ secondary

    @defer.inlineCallbacks
    def scan_secondary(self):
        """Return every meter found by the wildcard search over the 8 id digits."""
        found: list[FoundMeter] = []
        stack: list[str] = ["F" * ID_DIGITS]
        # A rough total for the progress bar: grows as collisions open branches.
        total = 1
        done = 0
        while stack:
            mask = stack.pop()
            answer = yield self._ask(link.select(link.secondary_mask(mask)))
            done += 1
            if isinstance(answer, Collision):
                position = mask.find("F")
                if position < 0:
                    self.collisions.append(Collision(f"secondary {mask}: several meters share this id"))
                else:
                    branches = [mask[:position] + str(d) + mask[position + 1:] for d in range(10)]
                    stack.extend(reversed(branches))
                    total += len(branches)
            elif answer is not None and answer.kind == "ack":
                reply = yield self._ask(link.req_ud2(link.ADDR_SELECTED, True))
                meter = self._identify(reply, None)
                if meter is None:
                    self.collisions.append(Collision(f"secondary {mask}: selected but no readable answer"))
                else:
                    found.append(meter)
            self.progress(done, total, f"secondary {mask}: {len(found)} found")
        return found

    def _identify(self, reply, primary: int | None) -> FoundMeter | None:
        if not isinstance(reply, link.Frame) or not reply.is_rsp_ud or reply.ci != 0x72 or len(reply.data) < 12:
            return None
        try:
            header = decode_user_data(reply.ci, reply.data[:12], reply.data_offset).header
        except MBusDecodeError:
            return None
        return FoundMeter(primary, link.secondary_text(reply.data[:8]), header.id, header.manufacturer,
                          header.version, header.medium)
