# -*- test-case-name: tests.channels.test_bus -*-
"""The bus scheduler: one transaction at a time on a half-duplex segment.

DESIGN rule 4.  The scheduler owns all timing of a segment: which device is
due, the silent interval between frames, the response timeout, retries, and
the statistics a commissioning engineer reads (transactions per second, bus
utilisation).  It knows nothing of Modbus or M-Bus: a *poller* (one per
device) hands it :class:`Transaction` objects whose ``decode`` function finds
the answer in the received bytes, and gets told how each one ended.

Framework guarantees to pollers (after OpenMUC's ``Connection`` contract):

- ``begin_poll``/``transaction_done``/``poll_done`` are never called
  concurrently, and never for two devices of one bus at the same time;
- every transaction handed out by ``begin_poll`` gets exactly one
  ``transaction_done`` before ``poll_done``;
- while the link is down, transactions end at once with ``LINK_DOWN`` on the
  poller's normal schedule, so quality keeps being reported.
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from enum import Enum
from typing import Callable, Protocol, Sequence

from channels.transports.base import OUTSIDE_WINDOW

log = logging.getLogger(__name__)

#: Clock jitter below which a deadline counts as reached (float rounding of
#: re-armed timers), far below any Modbus timing.
_DEADLINE_SLACK = 1e-6


class Outcome(Enum):
    """How one transaction ended."""

    OK = "ok"
    EXCEPTION = "exception"
    TIMEOUT = "timeout"
    CRC_ERROR = "crc_error"
    LINK_DOWN = "link_down"


class Transaction:
    """One request and how to recognise its answer.

    ``decode(buf) -> (consumed, frame | None)`` is a pure codec function:
    ``(0, None)`` waits for more bytes, ``(n, None)`` drops ``n`` bytes that
    belong to nobody and looks again; the poller's ``classify`` then says
    what a frame means.  ``context`` is the poller's own (the read block).
    ``renew()``, when given, builds
    the bytes of each attempt (Modbus TCP gives every attempt a new
    transaction id, so a late answer to an earlier attempt is not taken for
    the answer to this one).

    ``timeout`` runs from the request.  ``rx_time``, when given, is how long
    a whole answer may take once its first byte has arrived: M-Bus meters
    must *start* answering within 330 bit times + 50 ms, but a long frame
    at 2400 Bd then takes over a second, and waiting that long for every
    absent meter would make a scan or a dead meter cost ten times more.
    """

    __slots__ = ("request", "decode", "timeout", "wire_bytes", "context", "renew", "rx_time")

    def __init__(self, request: bytes, decode: Callable, timeout: float, wire_bytes: int = 0, context=None,
                 renew: Callable[[], bytes] | None = None, rx_time: float = 0.0) -> None:
        self.request = request
        self.decode = decode
        self.timeout = timeout
        self.wire_bytes = wire_bytes or len(request)
        self.context = context
        self.renew = renew
        self.rx_time = rx_time


class Poller(Protocol):
    """A device as the scheduler sees it."""

    name: str
    period: float
    next_due: float

    def begin_poll(self, now: float) -> Sequence[Transaction]:
        """Return the transactions of one poll (may be the same objects every time).

        The poller may append to the list it returned while the poll runs
        (from ``transaction_done``): an M-Bus meter says only in its answer
        whether another telegram follows.
        """

    def classify(self, frame) -> Outcome:
        """Return OK, EXCEPTION or CRC_ERROR for a frame the decoder produced."""

    def retry_exception(self, frame) -> bool:
        """Tell whether an exception answer is worth a retry (device busy)."""

    def transaction_done(self, tx: Transaction, outcome: Outcome, frame, now: float) -> None:
        """Take the result of one transaction after its retries."""

    def transaction_attempt(self, tx: Transaction, outcome: Outcome) -> None:
        """Count one attempt's result (every try, including retried ones)."""

    def poll_done(self, now: float) -> None:
        """Finish the poll: emit samples, update communication state."""


def count_attempt(stats, outcome: Outcome) -> None:
    """Count one attempt in a device's ``requests``/``responses``/``timeouts``/``crc_errors``/``exceptions``."""
    stats.requests += 1
    if outcome is Outcome.OK:
        stats.responses += 1
    elif outcome is Outcome.TIMEOUT:
        stats.timeouts += 1
    elif outcome is Outcome.CRC_ERROR:
        stats.crc_errors += 1
    elif outcome is Outcome.EXCEPTION:
        stats.responses += 1
        stats.exceptions += 1


class BusScheduler:
    """Serialise the transactions of every poller on one segment.

    ``silent_interval`` is waited after every transaction before the next
    request (t3.5 on RTU; 0 on links that frame by themselves, like Modbus
    TCP).  ``char_time`` turns bytes into wire seconds for the wire
    utilisation figure; measured busy time is reported beside it.
    """

    def __init__(
        self,
        reactor,
        name: str,
        *,
        silent_interval: float = 0.0,
        retries: int = 2,
        char_time: float = 0.0,
        stats_window: float = 60.0,
        link_grace: float = 5.0,
    ) -> None:
        self._reactor = reactor
        self.name = name
        self.silent_interval = silent_interval
        self.retries = retries
        self._char_time = char_time
        self._window = stats_window
        self._link = None
        #: The link's ``on_outcome(name)``, if it has one: a dial-in modem
        #: counts poll timeouts to find a half-open socket.
        self._outcome_hook = None
        #: The link is closed on purpose until its next connection window:
        #: polls wait (the devices keep their last values) instead of failing.
        self.sleeping = False
        #: How the poll in progress went for the hook: None, "ok" or "timeout".
        self._poll_outcome = None
        self._link_down_reason = "not started"
        self._heap: list[tuple[float, int, Poller]] = []
        self._seq = 0
        self._pollers: list[Poller] = []
        self._running = False
        #: How long polls wait for a first link at start before they begin
        #: to fail as LINK_DOWN: a TCP gateway needs a moment to connect,
        #: and reporting every device as comm_loss meanwhile is a false alarm.
        self.link_grace = link_grace
        self._grace = None
        # State of the poll in progress.
        self._current: Poller | None = None
        self._queue: Sequence[Transaction] = ()
        self._index = 0
        self._tx: Transaction | None = None
        self._attempt = 0
        self._sent_at = 0.0
        self._timer = None
        self._deadline: float | None = None
        self._last_rx = float("-inf")
        self._gap = None
        self._wake = None
        self._buf = bytearray()
        # Statistics.
        self.transactions = 0
        self.stray_bytes = 0
        self.busy_time = 0.0
        self.wire_time = 0.0
        self._history: deque[tuple[float, int, float, float]] = deque()

    # ------------------------------------------------------------ set-up

    def add_poller(self, poller: Poller, first_due: float | None = None) -> None:
        """Register a device; its first poll is due at ``first_due`` (default: now)."""
        poller.next_due = self._reactor.seconds() if first_due is None else first_due
        self._pollers.append(poller)
        self._push(poller)
        if self._running:
            self._schedule_wake()

    @property
    def pollers(self) -> list[Poller]:
        """Return the registered pollers."""
        return list(self._pollers)

    def start(self) -> None:
        """Start polling once a link is up, or after ``link_grace`` seconds without one.

        After the grace period, transactions end as LINK_DOWN on the pollers'
        schedule until a link comes up.
        """
        self._running = True
        self._history.append((self._reactor.seconds(), 0, 0.0, 0.0))
        if self._link is None and self.link_grace > 0:
            self._grace = self._reactor.callLater(self.link_grace, self._end_grace)
            return
        self._schedule_wake()

    def _end_grace(self) -> None:
        self._grace = None
        if self._running and self._current is None:
            self._advance()

    def stop(self) -> None:
        """Stop polling; a transaction in flight is abandoned."""
        self._running = False
        for call in (self._timer, self._gap, self._wake, self._grace):
            if call is not None and call.active():
                call.cancel()
        self._timer = self._gap = self._wake = self._grace = None
        self._deadline = None
        self._tx = None
        if self._current is not None:
            # Back on the heap, or a later start() would never poll it again.
            self._push(self._current)
        self._current = None

    @property
    def link_up_now(self) -> bool:
        """Tell whether a link is attached and usable."""
        return self._link is not None

    # -------------------------------------------------------- link sink

    def link_up(self, link) -> None:
        """Start writing requests to ``link``."""
        self._link = link
        self._outcome_hook = getattr(link, "on_outcome", None)
        self._buf.clear()
        log.info("bus %s: link up (%s)", self.name, getattr(link, "endpoint", link))
        if self.sleeping:
            # A connection window opened: polls that fell due meanwhile run now.
            self.sleeping = False
            if self._running and self._current is None and self._grace is None:
                self._advance()
        if self._grace is not None:
            if self._grace.active():
                self._grace.cancel()
            self._grace = None
            if self._running and self._current is None:
                self._advance()

    def link_down(self, reason: str) -> None:
        """Stop using the link; a transaction in flight ends as LINK_DOWN."""
        was_up = self._link is not None
        self._link = None
        self._link_down_reason = reason
        self.sleeping = reason == OUTSIDE_WINDOW
        if was_up:
            log.warning("bus %s: link down: %s", self.name, reason)
        gap_cancelled = False
        if self._gap is not None and self._gap.active():
            self._gap.cancel()
            gap_cancelled = True
        self._gap = None
        if self._tx is not None:
            self._deadline = None
            self._finish(Outcome.LINK_DOWN, None)
        elif gap_cancelled:
            self._advance()

    def data_received(self, data: bytes) -> None:
        """Feed bytes from the link to the decoder of the transaction in flight."""
        self._last_rx = self._reactor.seconds()
        tx = self._tx
        if tx is None or self._deadline is None:
            # Late answers after a timeout (also in the gap before a retry,
            # where taking one would leave the retry to go out as a second
            # request in flight), or noise on the line.
            self.stray_bytes += len(data)
            return
        buf = self._buf
        if tx.rx_time and self._deadline == self._sent_at + tx.timeout:
            # The first byte of an answer: once per attempt, so that endless
            # noise cannot hold the bus.
            self._deadline = max(self._deadline, self._last_rx + tx.rx_time)
        buf += data
        while buf:
            consumed, frame = tx.decode(buf)
            if consumed == 0:
                return
            del buf[:consumed]
            if frame is not None:
                self._deadline = None
                self._answer(frame)
                return

    # ------------------------------------------------------ scheduling

    def _push(self, poller: Poller) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (poller.next_due, self._seq, poller))

    def _schedule_wake(self) -> None:
        if not self._running or self._current is not None or self._gap is not None or self._grace is not None:
            return
        if not self._heap:
            return
        due = self._heap[0][0]
        delay = max(0.0, due - self._reactor.seconds())
        if self._wake is not None and self._wake.active():
            if abs(self._wake.getTime() - due) < 1e-9 or self._wake.getTime() <= due:
                return
            self._wake.cancel()
        self._wake = self._reactor.callLater(delay, self._next_poll)

    def _next_poll(self) -> None:
        self._wake = None
        if self._current is None:
            self._advance()

    def _advance(self) -> None:
        """Run the poll loop until a request is on the wire or nothing is due.

        A loop rather than recursion: with the link down every transaction
        ends at once, and a segment of 247 devices would otherwise recurse
        thousands of frames deep.
        """
        self._gap = None
        if self._grace is not None:
            return
        while self._running:
            poller = self._current
            now = self._reactor.seconds()
            if poller is None:
                if self.sleeping:
                    # Until the window opens; link_up resumes the loop.
                    return
                if not self._heap or self._heap[0][0] > now:
                    self._schedule_wake()
                    return
                _, _, poller = heapq.heappop(self._heap)
                self._current = poller
                self._queue = poller.begin_poll(now)
                self._index = 0
                self._poll_outcome = None
                continue
            if self._index < len(self._queue):
                tx = self._queue[self._index]
                self._attempt = 0
                if self._link is not None:
                    self._send(tx)
                    return
                poller.transaction_done(tx, Outcome.LINK_DOWN, None, now)
                self._index += 1
                continue
            poller.poll_done(now)
            hook = self._outcome_hook
            if hook is not None and self._poll_outcome is not None:
                # Once per poll: a poll that got any answer is "ok", one whose
                # every transaction timed out is one "timeout".  Later, not
                # now: the hook may close the link, and link_down must not
                # meet this loop half way.
                self._reactor.callLater(0, hook, self._poll_outcome)
            self._current = None
            self._queue = ()
            # Keep the phase of the period; skip rounds the bus was too busy for.
            period = poller.period
            due = poller.next_due + period
            if due < now and period > 0:
                due += ((now - due) // period + 1) * period
            poller.next_due = max(due, now) if period <= 0 else due
            self._push(poller)

    def _send(self, tx: Transaction) -> None:
        """Put ``tx`` on the wire once the line has been quiet for t3.5.

        The silent interval counts from the last byte *heard*, not from when
        the scheduler moved on: a slow meter may still be answering when its
        timeout fires, and another slave's late answer may arrive in the gap.
        Talking over either is a collision on a half-duplex bus.
        """
        self._tx = tx
        if self.silent_interval > 0:
            wait = self._last_rx + self.silent_interval - self._reactor.seconds()
            if wait > _DEADLINE_SLACK:
                self._gap = self._reactor.callLater(wait, self._send_after_quiet, tx)
                return
        self._transmit(tx)

    def _send_after_quiet(self, tx: Transaction) -> None:
        self._gap = None
        if not self._running:
            return
        if self._link is None:
            self._conclude(tx, Outcome.LINK_DOWN, None)
            return
        self._send(tx)  # more bytes may have arrived meanwhile

    def _transmit(self, tx: Transaction) -> None:
        self._attempt += 1
        self._buf.clear()
        now = self._reactor.seconds()
        self._sent_at = now
        self.transactions += 1
        # Deadline first: a link may answer or drop inside write() itself.
        deadline = self._deadline = now + tx.timeout
        timer = self._timer
        # One timer per bus, re-armed lazily: answers take milliseconds and
        # timeouts hundreds of them, so arming and cancelling a timer for
        # every transaction would cost more than the rest of the transaction.
        if timer is None:
            self._timer = self._reactor.callLater(tx.timeout, self._check_deadline)
        elif timer.getTime() > deadline + _DEADLINE_SLACK:
            timer.cancel()
            self._timer = self._reactor.callLater(tx.timeout, self._check_deadline)
        renew = tx.renew
        self._link.write(renew() if renew is not None else tx.request)

    def _check_deadline(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return
        left = deadline - self._reactor.seconds()
        if left > _DEADLINE_SLACK:
            self._timer = self._reactor.callLater(left, self._check_deadline)
            return
        self._deadline = None
        self._on_timeout()

    def _on_timeout(self) -> None:
        # Bytes that never formed a frame mean the answer was garbled.
        self._failed(Outcome.CRC_ERROR if self._buf else Outcome.TIMEOUT, None)

    def _answer(self, frame) -> None:
        poller = self._current
        outcome = poller.classify(frame)
        if outcome is Outcome.OK:
            self._finish(outcome, frame)
        elif outcome is Outcome.EXCEPTION and not poller.retry_exception(frame):
            self._finish(outcome, frame)
        else:
            self._failed(outcome, frame)

    def _failed(self, outcome: Outcome, frame) -> None:
        tx = self._tx
        self._account(tx)
        self._current.transaction_attempt(tx, outcome)
        if self._attempt <= self.retries and self._link is not None:
            # Wait a silent interval so the slave sees the retry as a new frame.
            self._gap = self._reactor.callLater(self.silent_interval, self._retry, tx)
            return
        self._conclude(tx, outcome, frame)

    def _retry(self, tx: Transaction) -> None:
        self._gap = None
        if not self._running:
            return
        if self._link is None:
            self._tx = tx
            self._conclude(tx, Outcome.LINK_DOWN, None)
            return
        self._send(tx)

    def _finish(self, outcome: Outcome, frame) -> None:
        tx = self._tx
        if outcome is not Outcome.LINK_DOWN:
            self._account(tx)
            self._current.transaction_attempt(tx, outcome)
        self._conclude(tx, outcome, frame)

    def _conclude(self, tx: Transaction, outcome: Outcome, frame) -> None:
        self._tx = None
        if outcome is Outcome.TIMEOUT:
            self._poll_outcome = self._poll_outcome or "timeout"
        elif outcome is not Outcome.LINK_DOWN:
            self._poll_outcome = "ok"
        now = self._reactor.seconds()
        self._current.transaction_done(tx, outcome, frame, now)
        self._index += 1
        if outcome is Outcome.LINK_DOWN or self.silent_interval <= 0:
            self._advance()
        else:
            self._gap = self._reactor.callLater(self.silent_interval, self._advance)

    def _account(self, tx: Transaction) -> None:
        now = self._reactor.seconds()
        self.busy_time += now - self._sent_at + self.silent_interval
        self.wire_time += tx.wire_bytes * self._char_time
        history = self._history
        if not history or now - history[-1][0] >= 1.0:
            history.append((now, self.transactions, self.busy_time, self.wire_time))
            while len(history) > 2 and now - history[1][0] > self._window:
                history.popleft()

    # ------------------------------------------------------------ health

    def rates(self) -> dict:
        """Return transactions/s and utilisation over the last stats window."""
        now = self._reactor.seconds()
        if not self._history:
            return {"tx_per_s": 0.0, "utilisation_pct": 0.0, "wire_utilisation_pct": 0.0}
        t0, n0, b0, w0 = self._history[0]
        span = now - t0
        if span <= 0:
            return {"tx_per_s": 0.0, "utilisation_pct": 0.0, "wire_utilisation_pct": 0.0}
        return {
            "tx_per_s": round((self.transactions - n0) / span, 2),
            "utilisation_pct": round(min(100.0, 100.0 * (self.busy_time - b0) / span), 1),
            "wire_utilisation_pct": round(min(100.0, 100.0 * (self.wire_time - w0) / span), 1),
        }

    def queue_depth(self) -> int:
        """Return how many polls are due but not yet started (the poll in progress not counted).

        How far the segment is behind its poll plan: 0 when every device is
        polled on time; it grows when the devices ask for more than the bus
        can carry.  Not a sign of a dead link: while the link is down, due
        polls end at once as LINK_DOWN and it stays 0 (:attr:`link_up_now`
        tells the outage).  Polls do wait, and count, during the start-up
        grace and while a windowed link sleeps outside its window.
        """
        heap, now = self._heap, self._reactor.seconds()
        # Walk only the part of the heap that is due: below an entry not yet
        # due nothing is, so a big segment costs as many steps as it is behind.
        count, stack = 0, [0] if heap else []
        while stack:
            i = stack.pop()
            if heap[i][0] > now:
                continue
            count += 1
            stack.extend(j for j in (2 * i + 1, 2 * i + 2) if j < len(heap))
        return count

    def health(self) -> dict:
        """Return the scheduler's state and statistics."""
        return {
            "link_up": self._link is not None,
            "sleeping": self.sleeping,
            "link_down_reason": "" if self._link is not None else self._link_down_reason,
            "transactions": self.transactions,
            "stray_bytes": self.stray_bytes,
            "devices": len(self._pollers),
            **self.rates(),
        }


class PolledChannel:
    """Start and stop shared by channels made of one link, one scheduler and pollers.

    Subclasses set ``_reactor``, ``scheduler``, ``link`` and ``devices``.
    """

    #: Where in the first poll slot this channel's devices start (0 <= phase < 1);
    #: the runtime staggers its channels so that they do not all poll at once.
    phase = 0.0

    def start(self) -> None:
        """Open the link and start polling, devices spread over their period."""
        now = self._reactor.seconds()
        count = max(1, len(self.devices))
        for i, device in enumerate(self.devices):
            # Spreading first polls keeps bus load even instead of a burst of
            # every device at each period boundary.
            self.scheduler.add_poller(device, now + min(device.period, 5.0) * (i + self.phase) / count)
        self.link.start()
        self.scheduler.start()

    def stop(self) -> None:
        """Stop polling and close the link."""
        self.scheduler.stop()
        self.link.stop()
