"""Tests for channels.bus.BusScheduler, driven by task.Clock and a fake half-duplex link."""

from __future__ import annotations

import inspect
import sys
from functools import partial

import pytest
from twisted.internet.task import Clock

from channels.bus import BusScheduler, Outcome, Transaction
from channels.modbus import framer

SILENT = 0.004
TIMEOUT = 0.5
DATA = bytes.fromhex("00 0a 00 0b")


def run_until(clock: Clock, t: float) -> None:
    """Advance ``clock`` call by call, so every call runs at its own time, up to ``t``."""
    while True:
        due = [c.getTime() for c in clock.getDelayedCalls()]
        nxt = min(due, default=None)
        if nxt is None or nxt > t:
            break
        clock.advance(max(0.0, nxt - clock.seconds()))
    clock.advance(max(0.0, t - clock.seconds()))


class FakeLink:
    """A half-duplex line: records writes and fails the test on a second request in flight."""

    endpoint = "fake:0"

    def __init__(self, clock: Clock, silent: float) -> None:
        self.clock = clock
        self.silent = silent
        self.writes: list[tuple[float, bytes]] = []
        self.open = False
        self.last_end: float | None = None
        self.responder = None

    def write(self, data: bytes) -> None:
        now = self.clock.seconds()
        assert not self.open, f"second request written at {now} while one is in flight"
        if self.last_end is not None:
            assert now - self.last_end >= self.silent - 1e-9, f"silent interval not waited before {now}"
        self.open = True
        self.writes.append((now, bytes(data)))
        if self.responder is not None:
            self.responder(bytes(data))

    def attempt_ended(self) -> None:
        if self.open:
            self.open = False
            self.last_end = self.clock.seconds()


class FakePoller:
    """A poller that records everything the scheduler tells it and checks the contract."""

    def __init__(self, bench: "Bench", name: str, unit: int, period: float, reads, timeout: float) -> None:
        self.bench = bench
        self.name = name
        self.unit = unit
        self.period = period
        self.next_due = 0.0
        self.transactions = []
        for function, address, count in reads:
            request = framer.encode_read(unit, function, address, count)
            decode = partial(framer.decode_response, unit=unit, function=function, count=count)
            wire = len(request) + framer.expected_response_size(function, count)
            self.transactions.append(Transaction(request, lambda buf, d=decode: d(buf), timeout, wire, (function, address, count)))
        self.polls: list[float] = []
        self.poll_ends: list[float] = []
        self.attempts: list[tuple[float, Outcome]] = []
        self.done: list[tuple[float, Outcome, object]] = []
        self._open: list[Transaction] | None = None

    def begin_poll(self, now: float):
        assert self.bench.active is None, f"{self.name} polled while {self.bench.active} is polling"
        assert self._open is None
        self.bench.active = self.name
        self.polls.append(now)
        self._open = list(self.transactions)
        return self.transactions

    def classify(self, frame) -> Outcome:
        if isinstance(frame, framer.ReadResponse):
            return Outcome.OK
        if isinstance(frame, framer.ExceptionResponse):
            return Outcome.EXCEPTION
        return Outcome.CRC_ERROR

    def retry_exception(self, frame) -> bool:
        return frame.code in (5, 6)

    def transaction_attempt(self, tx, outcome: Outcome) -> None:
        assert self.bench.active == self.name
        self.attempts.append((self.bench.clock.seconds(), outcome))
        self.bench.link.attempt_ended()

    def transaction_done(self, tx, outcome: Outcome, frame, now: float) -> None:
        assert self.bench.active == self.name
        assert self._open and tx is self._open[0], "transaction_done out of order or twice"
        self._open.pop(0)
        self.done.append((now, outcome, frame))
        if outcome is Outcome.LINK_DOWN:
            self.bench.link.attempt_ended()

    def poll_done(self, now: float) -> None:
        assert self._open == [], "poll_done before every transaction was done"
        self._open = None
        self.bench.active = None
        self.poll_ends.append(now)

    def outcomes(self) -> list[Outcome]:
        return [outcome for _, outcome, _ in self.done]


class Bench:
    """A scheduler, a fake link and fake slaves whose behaviour each test scripts."""

    def __init__(self, silent: float = SILENT, retries: int = 2, char_time: float = 0.0, stats_window: float = 60.0,
                 link_grace: float = 0.0):
        self.clock = Clock()
        self.bus = BusScheduler(self.clock, "seg1", silent_interval=silent, retries=retries,
                                char_time=char_time, stats_window=stats_window, link_grace=link_grace)
        self.link = FakeLink(self.clock, silent)
        self.link.responder = self._respond
        #: unit -> f(request, n) -> [(delay, bytes), ...]; n counts requests to that unit from 1.
        self.slaves: dict = {}
        self._count: dict[int, int] = {}
        self.active: str | None = None

    def add(self, name: str, unit: int, period: float = 10.0, reads=((3, 0, 2),), timeout: float = TIMEOUT,
            first_due: float | None = None) -> FakePoller:
        poller = FakePoller(self, name, unit, period, reads, timeout)
        self.bus.add_poller(poller, first_due)
        return poller

    def _respond(self, request: bytes) -> None:
        unit = request[0]
        self._count[unit] = n = self._count.get(unit, 0) + 1
        behaviour = self.slaves.get(unit)
        if behaviour is None:
            return
        for delay, data in behaviour(request, n):
            self.clock.callLater(delay, self.bus.data_received, data)

    def run(self, t: float) -> None:
        run_until(self.clock, t)

    def write_times(self) -> list[float]:
        return [t for t, _ in self.link.writes]


def answer(delay: float = 0.02, data: bytes = DATA):
    """A slave that answers every read after ``delay``."""
    def behaviour(request, n):
        return [(delay, framer.encode_read_response(request[0], request[1], data))]
    return behaviour


def silent(request, n):
    """A slave that never answers."""
    return []


def corrupt(frame: bytes) -> bytes:
    """Return ``frame`` with its CRC broken."""
    return frame[:-1] + bytes([frame[-1] ^ 0xFF])


# ----------------------------------------------------------------- one at a time


def test_one_request_in_flight_across_devices():
    """Several devices, answering, silent, corrupt and busy, never get two requests on the wire."""
    bench = Bench()
    bench.slaves[1] = answer(0.03)
    bench.slaves[2] = silent
    bench.slaves[3] = lambda req, n: [(0.01, corrupt(framer.encode_read_response(3, req[1], DATA)))] if n % 2 else answer(0.01)(req, n)
    bench.slaves[4] = lambda req, n: [(0.02, framer.encode_exception(4, req[1], 6))] if n % 3 else answer(0.02)(req, n)
    pollers = [bench.add(f"d{u}", u, period=1.0, reads=((3, 0, 2), (4, 10, 2))) for u in (1, 2, 3, 4)]
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(20.0)
    # FakeLink and FakePoller assert the invariants on every write and callback.
    assert len(bench.link.writes) > 50
    for poller in pollers:
        assert len(poller.polls) >= 5
        assert len(poller.done) == 2 * len(poller.poll_ends)


def test_silent_interval_between_transactions():
    """The next request waits one silent interval after the previous answer, not a moment less."""
    bench = Bench()
    bench.slaves[1] = answer(0.02)
    bench.slaves[2] = answer(0.02)
    bench.add("a", 1)
    bench.add("b", 2)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(0.02 + SILENT - 1e-6)
    assert bench.write_times() == [0.0]
    bench.run(0.02 + SILENT)
    assert bench.write_times() == [0.0, pytest.approx(0.02 + SILENT)]


def test_silent_interval_between_transactions_of_one_poll():
    """Two reads of one device are also separated by the silent interval."""
    bench = Bench()
    bench.slaves[1] = answer(0.02)
    poller = bench.add("a", 1, reads=((3, 0, 2), (4, 0, 2)))
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(1.0)
    assert bench.write_times() == [0.0, pytest.approx(0.02 + SILENT)]
    assert poller.outcomes() == [Outcome.OK, Outcome.OK]
    assert poller.poll_ends == [pytest.approx(2 * (0.02 + SILENT))]


# -------------------------------------------------------------------- retries


def test_timeout_retries_then_timeout():
    """A silent device gets retries + 1 requests, a silent interval apart, then TIMEOUT once."""
    bench = Bench(retries=2)
    bench.slaves[1] = silent
    poller = bench.add("a", 1)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(5.0)
    assert bench.write_times() == [0.0, pytest.approx(TIMEOUT + SILENT), pytest.approx(2 * TIMEOUT + 2 * SILENT)]
    assert [o for _, o in poller.attempts] == [Outcome.TIMEOUT] * 3
    assert poller.done == [(pytest.approx(3 * TIMEOUT + 2 * SILENT), Outcome.TIMEOUT, None)]
    assert bench.bus.transactions == 3


def test_no_retries():
    """With retries=0 a timeout is final after one request."""
    bench = Bench(retries=0)
    bench.slaves[1] = silent
    poller = bench.add("a", 1)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(5.0)
    assert len(bench.link.writes) == 1
    assert poller.outcomes() == [Outcome.TIMEOUT]


def test_crc_error_is_retried():
    """A corrupt answer is retried after a silent interval and the good second answer wins."""
    bench = Bench()
    good = framer.encode_read_response(1, 3, DATA)
    bench.slaves[1] = lambda req, n: [(0.02, corrupt(good) if n == 1 else good)]
    poller = bench.add("a", 1)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(1.0)
    assert bench.write_times() == [0.0, pytest.approx(0.02 + SILENT)]
    assert [o for _, o in poller.attempts] == [Outcome.CRC_ERROR, Outcome.OK]
    (_, outcome, frame), = poller.done
    assert outcome is Outcome.OK and frame.registers == [10, 11]


def test_crc_errors_exhaust_retries():
    """Only corrupt answers end as CRC_ERROR after retries + 1 requests."""
    bench = Bench(retries=1)
    bench.slaves[1] = lambda req, n: [(0.02, corrupt(framer.encode_read_response(1, 3, DATA)))]
    poller = bench.add("a", 1)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(1.0)
    assert len(bench.link.writes) == 2
    assert poller.outcomes() == [Outcome.CRC_ERROR]
    assert isinstance(poller.done[0][2], framer.CorruptFrame)


def test_garbled_bytes_at_timeout_count_as_crc_error():
    """Bytes that never formed a frame by the timeout make the attempt a CRC error."""
    bench = Bench(retries=0)
    bench.slaves[1] = lambda req, n: [(0.02, b"\x01\x03\x04\x00")]
    poller = bench.add("a", 1)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(1.0)
    assert poller.outcomes() == [Outcome.CRC_ERROR]


@pytest.mark.parametrize("code", [1, 2, 3, 4, 0x0B])
def test_final_exceptions_not_retried(code):
    """An exception other than acknowledge/busy ends the transaction at once."""
    bench = Bench()
    bench.slaves[1] = lambda req, n: [(0.02, framer.encode_exception(1, 3, code))]
    poller = bench.add("a", 1)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(1.0)
    assert len(bench.link.writes) == 1
    assert poller.outcomes() == [Outcome.EXCEPTION]
    assert poller.done[0][2].code == code


@pytest.mark.parametrize("code", [5, 6])
def test_busy_exceptions_retried(code):
    """Acknowledge (5) and busy (6) are retried; if they persist the last one is final."""
    bench = Bench(retries=2)
    bench.slaves[1] = lambda req, n: [(0.02, framer.encode_exception(1, 3, code))]
    poller = bench.add("a", 1)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(1.0)
    assert len(bench.link.writes) == 3
    assert [o for _, o in poller.attempts] == [Outcome.EXCEPTION] * 3
    assert poller.outcomes() == [Outcome.EXCEPTION]
    assert poller.done[0][2].code == code


def test_busy_then_answer():
    """A device busy once answers the retry, and the transaction ends OK."""
    bench = Bench()
    bench.slaves[1] = lambda req, n: [(0.02, framer.encode_exception(1, 3, 6))] if n == 1 else answer(0.02)(req, n)
    poller = bench.add("a", 1)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(1.0)
    assert len(bench.link.writes) == 2
    assert poller.outcomes() == [Outcome.OK]


# ------------------------------------------------------------------ poll periods


def test_poll_period_respected():
    """A 10 s device is polled at 0, 10, 20, ... and a 15 s one keeps its own phase."""
    bench = Bench()
    bench.slaves[1] = answer(0.01)
    bench.slaves[2] = answer(0.01)
    fast = bench.add("a", 1, period=10.0)
    slow = bench.add("b", 2, period=15.0)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(46.0)
    # At 0 b waits for a; at 30 both are due and b, queued first, goes first. Delays
    # never shift the phase: the polls after a late one are on the period again.
    assert fast.polls == [0.0, 10.0, 20.0, pytest.approx(30.0 + 0.01 + SILENT), 40.0]
    assert slow.polls == [pytest.approx(0.01 + SILENT), 15.0, 30.0, 45.0]
    assert (fast.next_due, slow.next_due) == (50.0, 60.0)


def test_first_due_delays_first_poll():
    """add_poller's first_due sets when the first poll happens."""
    bench = Bench()
    bench.slaves[1] = answer(0.01)
    poller = bench.add("a", 1, period=10.0, first_due=3.0)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(25.0)
    assert poller.polls == [3.0, 13.0, 23.0]


def test_slow_poll_skips_missed_rounds():
    """A poll that outlasts its period skips the missed rounds and keeps its phase."""
    bench = Bench(retries=2)
    bench.slaves[1] = silent
    poller = bench.add("a", 1, period=1.0, timeout=0.4)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(9.0)
    # Each poll takes 3 * 0.4 s + gaps > 1 s: rounds 1, 3, 5, 7 are skipped.
    assert poller.polls == [0.0, 2.0, 4.0, 6.0, 8.0]


def test_busy_bus_does_not_burst():
    """A fast device held up by a slow one gets one catch-up poll, not one per missed round."""
    bench = Bench(retries=0)
    bench.slaves[1] = answer(0.01)
    bench.slaves[2] = silent
    fast = bench.add("fast", 1, period=1.0)
    bench.add("slow", 2, period=100.0, timeout=4.5)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(7.5)
    held = 0.01 + SILENT + 4.5 + SILENT
    assert fast.polls == [0.0, pytest.approx(held), 5.0, 6.0, 7.0]


def test_device_added_while_running():
    """A device added to a running scheduler is polled at its first due time."""
    bench = Bench()
    bench.slaves[1] = answer(0.01)
    bench.slaves[2] = answer(0.01)
    bench.add("a", 1, period=10.0)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(2.0)
    late = bench.add("b", 2, period=10.0, first_due=2.5)
    bench.run(13.0)
    assert late.polls == [2.5, 12.5]
    assert [p.name for p in bench.bus.pollers] == ["a", "b"]


# ---------------------------------------------------------------- link up/down


def test_link_down_during_transaction():
    """Link loss ends the request in flight as LINK_DOWN; later polls end at once without writing."""
    bench = Bench()
    bench.slaves[1] = silent
    poller = bench.add("a", 1, period=10.0, reads=((3, 0, 2), (4, 0, 2)))
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(0.1)
    bench.bus.link_down("cable pulled")
    assert poller.done == [(0.1, Outcome.LINK_DOWN, None), (0.1, Outcome.LINK_DOWN, None)]
    assert poller.poll_ends == [0.1]
    bench.run(35.0)
    assert len(bench.link.writes) == 1
    assert poller.polls == [0.0, 10.0, 20.0, 30.0]
    assert poller.poll_ends == [0.1, 10.0, 20.0, 30.0]
    assert set(poller.outcomes()) == {Outcome.LINK_DOWN}
    assert poller.attempts == []
    health = bench.bus.health()
    assert (health["link_up"], health["link_down_reason"]) == (False, "cable pulled")
    assert not bench.bus.link_up_now


def test_link_down_in_retry_gap_sends_no_stale_request():
    """Link loss between a timeout and its retry ends the transaction; the retry never goes out."""
    bench = Bench()
    bench.slaves[1] = silent
    poller = bench.add("a", 1, period=10.0)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(TIMEOUT + SILENT / 2)
    bench.bus.link_down("gone")
    bench.bus.link_up(bench.link)
    bench.run(TIMEOUT + 10 * SILENT)
    assert len(bench.link.writes) == 1
    assert poller.outcomes() == [Outcome.LINK_DOWN]
    bench.run(10.0)
    assert bench.write_times() == [0.0, 10.0]


def test_link_down_in_gap_between_devices():
    """Link loss during the silent gap after an answer fails the next device's poll at once."""
    bench = Bench()
    bench.slaves[1] = answer(0.01)
    a = bench.add("a", 1, period=10.0)
    b = bench.add("b", 2, period=10.0)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(0.01 + SILENT / 2)
    bench.bus.link_down("gone")
    assert a.outcomes() == [Outcome.OK]
    assert b.outcomes() == [Outcome.LINK_DOWN]
    assert b.poll_ends == [pytest.approx(0.01 + SILENT / 2)]
    bench.run(1.0)
    assert len(bench.link.writes) == 1


def test_link_up_resumes_polling():
    """Polls fail as LINK_DOWN until the link comes up, then requests go out on schedule."""
    bench = Bench()
    bench.slaves[1] = answer(0.01)
    poller = bench.add("a", 1, period=10.0)
    bench.bus.start()
    bench.run(12.0)
    assert bench.bus.health()["link_down_reason"] == "not started"
    assert poller.outcomes() == [Outcome.LINK_DOWN, Outcome.LINK_DOWN]
    bench.bus.link_up(bench.link)
    assert bench.bus.link_up_now
    bench.run(21.0)
    assert bench.write_times() == [20.0]
    assert poller.outcomes()[-1] is Outcome.OK


def _shallow_recursion_limit() -> int:
    return len(inspect.stack(0)) + 120


def test_300_devices_with_link_down_do_not_recurse():
    """300 devices polled with no link end their polls in a loop, not by recursion."""
    bench = Bench()
    pollers = [bench.add(f"d{i}", i % 247 + 1, period=10.0, reads=((3, 0, 2), (3, 10, 2), (4, 0, 2)))
               for i in range(300)]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_shallow_recursion_limit())
    try:
        bench.bus.start()
        bench.run(10.0)
    finally:
        sys.setrecursionlimit(limit)
    assert all(p.polls == [0.0, 10.0] and p.poll_ends == [0.0, 10.0] for p in pollers)


def test_300_devices_link_lost_mid_transaction_do_not_recurse():
    """Losing the link mid-transaction with 300 devices due fails them all without recursion."""
    bench = Bench()
    pollers = [bench.add(f"d{i}", i % 247 + 1, period=10.0, reads=((3, 0, 2), (4, 0, 2))) for i in range(300)]
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(0.1)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_shallow_recursion_limit())
    try:
        bench.bus.link_down("gone")
    finally:
        sys.setrecursionlimit(limit)
    assert len(bench.link.writes) == 1
    assert all(p.poll_ends == [pytest.approx(0.1)] for p in pollers)


# ------------------------------------------------------------ bytes from the line


def test_answer_split_byte_by_byte():
    """An answer arriving one byte at a time is assembled and ends the transaction once."""
    bench = Bench()
    good = framer.encode_read_response(1, 3, DATA)
    bench.slaves[1] = lambda req, n: [(0.01 + 0.001 * i, good[i:i + 1]) for i in range(len(good))]
    poller = bench.add("a", 1)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(5.0)
    assert [o for _, o in poller.attempts] == [Outcome.OK]
    (t, outcome, frame), = poller.done
    assert t == pytest.approx(0.01 + 0.001 * (len(good) - 1))
    assert frame.registers == [10, 11]


def test_garbage_around_answer():
    """Noise before the answer is skipped; noise after it is not an answer to anything."""
    bench = Bench()
    good = framer.encode_read_response(1, 3, DATA)
    bench.slaves[1] = lambda req, n: [(0.01, b"\x00\xff" + good + b"\x00")]
    poller = bench.add("a", 1)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(1.0)
    assert poller.outcomes() == [Outcome.OK]


def test_stray_bytes_counted():
    """Bytes with no request on the wire (before start, after an answer) are counted as stray."""
    bench = Bench()
    bench.slaves[1] = lambda req, n: [(0.01, framer.encode_read_response(1, 3, DATA)), (0.011, b"\x00\x00\x00")]
    bench.add("a", 1)
    bench.bus.data_received(b"\x55\xaa")
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(1.0)
    assert bench.bus.stray_bytes == 5
    assert bench.bus.health()["stray_bytes"] == 5


def test_late_answer_in_retry_gap_is_stray():
    """An answer arriving after the timeout, before the retry, is stray; the retry still goes out alone."""
    bench = Bench()
    good = framer.encode_read_response(1, 3, DATA)
    # The first answer comes just after the timeout, inside the retry gap.
    bench.slaves[1] = lambda req, n: [(TIMEOUT + SILENT / 2, good)] if n == 1 else [(0.02, good)]
    bench.slaves[2] = answer(0.02)
    a = bench.add("a", 1)
    b = bench.add("b", 2)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(2.0)
    assert [w[0] for _, w in bench.link.writes] == [1, 1, 2]
    assert [o for _, o in a.attempts] == [Outcome.TIMEOUT, Outcome.OK]
    assert a.outcomes() == [Outcome.OK] and b.outcomes() == [Outcome.OK]
    assert bench.bus.stray_bytes == len(good)


def test_link_answering_inside_write():
    """A link that delivers the answer synchronously from write() leaves no stray timer behind."""
    bench = Bench()
    good = framer.encode_read_response(1, 3, DATA)

    def respond_now(request):
        bench.bus.data_received(good)

    bench.link.responder = respond_now
    poller = bench.add("a", 1, period=1.0)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(3.5)
    assert poller.outcomes() == [Outcome.OK] * 4
    assert [o for _, o in poller.attempts] == [Outcome.OK] * 4


def test_link_failing_inside_write():
    """A link that goes down synchronously from write() ends the transaction as LINK_DOWN, no timeout later."""
    bench = Bench()
    bench.link.responder = lambda request: bench.bus.link_down("write failed")
    poller = bench.add("a", 1, period=1.0)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(2.5)
    assert poller.outcomes() == [Outcome.LINK_DOWN] * 3
    assert poller.attempts == []
    assert len(bench.link.writes) == 1


def test_stop_then_start_polls_interrupted_device():
    """A device whose poll was cut short by stop() is polled again after start()."""
    bench = Bench()
    bench.slaves[1] = silent
    poller = bench.add("a", 1, period=10.0)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(0.1)
    bench.bus.stop()
    bench.run(5.0)
    assert len(bench.link.writes) == 1
    # The abandoned poll never reached poll_done; reset the fakes' bookkeeping.
    bench.active = None
    bench.link.open = False
    poller._open = None
    bench.slaves[1] = answer(0.01)
    bench.bus.start()
    bench.run(5.5)
    assert bench.write_times() == [0.0, 5.0]
    assert poller.outcomes() == [Outcome.OK]


# ------------------------------------------------------------------ statistics


def _stats_bench(**kw) -> Bench:
    bench = Bench(silent=0.01, retries=0, char_time=0.001, **kw)
    bench.slaves[1] = answer(0.1)
    bench.add("a", 1, period=1.0)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(10.5)
    return bench


def test_rates_and_health_known_scenario():
    """One 17-byte transaction a second, answered in 0.1 s with a 10 ms gap: rates add up."""
    bench = _stats_bench()
    # 11 transactions (t = 0..10), each busy 0.1 + 0.01 s, 17 bytes at 1 ms a byte, over 10.5 s.
    assert bench.bus.rates() == {"tx_per_s": round(11 / 10.5, 2),
                                 "utilisation_pct": round(100 * 11 * 0.11 / 10.5, 1),
                                 "wire_utilisation_pct": round(100 * 11 * 0.017 / 10.5, 1)}
    assert bench.bus.rates() == {"tx_per_s": 1.05, "utilisation_pct": 11.5, "wire_utilisation_pct": 1.8}
    assert bench.bus.health() == {"link_up": True, "sleeping": False, "link_down_reason": "", "transactions": 11,
                                  "stray_bytes": 0,
                                  "devices": 1, "tx_per_s": 1.05, "utilisation_pct": 11.5,
                                  "wire_utilisation_pct": 1.8}


def test_rates_use_the_stats_window():
    """Old activity drops out of the rates once it is older than the stats window."""
    bench = _stats_bench(stats_window=4.5)
    # The window now starts at the snapshot taken at 5.1 s (6 transactions, 0.66 s busy).
    span = 10.5 - 5.1
    assert bench.bus.rates() == {"tx_per_s": round(5 / span, 2),
                                 "utilisation_pct": round(100 * 5 * 0.11 / span, 1),
                                 "wire_utilisation_pct": round(100 * 5 * 0.017 / span, 1)}


def test_rates_before_start_are_zero():
    """A scheduler that never ran reports zero rates."""
    bus = BusScheduler(Clock(), "idle")
    assert bus.rates() == {"tx_per_s": 0.0, "utilisation_pct": 0.0, "wire_utilisation_pct": 0.0}
    assert bus.health()["devices"] == 0


def test_first_polls_wait_for_the_link_within_grace():
    """A link that comes up within the grace period: no LINK_DOWN at start, polling begins at once."""
    bench = Bench(link_grace=5.0)
    bench.slaves[1] = answer()
    poller = bench.add("a", 1, period=10.0)
    bench.bus.start()
    bench.run(1.5)
    assert poller.done == [] and bench.link.writes == []
    bench.bus.link_up(bench.link)
    bench.run(2.0)
    assert poller.polls == [1.5]
    assert poller.outcomes() == [Outcome.OK]


def test_no_link_after_grace_reports_link_down():
    """Without a link by the end of the grace period, polls end as LINK_DOWN on schedule."""
    bench = Bench(link_grace=5.0)
    poller = bench.add("a", 1, period=2.0)
    bench.bus.start()
    bench.run(4.9)
    assert poller.done == []
    bench.run(9.0)
    assert poller.polls == [5.0, 6.0, 8.0]
    assert set(poller.outcomes()) == {Outcome.LINK_DOWN}
    assert bench.link.writes == []


def test_stop_during_grace_cancels_it():
    """Stopping before the link comes up leaves no timer behind."""
    bench = Bench(link_grace=5.0)
    bench.add("a", 1)
    bench.bus.start()
    bench.bus.stop()
    assert bench.clock.getDelayedCalls() == []


def test_retry_waits_for_silence_after_the_last_byte_heard():
    """A meter still answering when its timeout fires is not talked over: t3.5 counts from its last byte."""
    bench = Bench(retries=1)
    answer_frame = framer.encode_read_response(1, 3, DATA)

    def slow_then_ok(request, n):
        if n == 1:  # a byte every millisecond, straddling the timeout
            return [(TIMEOUT - 0.002 + 0.001 * i, answer_frame[i:i + 1]) for i in range(len(answer_frame))]
        return [(0.02, answer_frame)]

    bench.slaves[1] = slow_then_ok
    poller = bench.add("a", 1)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(2.0)
    retry_at = bench.write_times()[1]
    last_byte = TIMEOUT - 0.002 + 0.001 * (len(answer_frame) - 1)
    assert last_byte > TIMEOUT + SILENT  # the old rule would have sent while the meter talked
    assert retry_at == pytest.approx(last_byte + SILENT)
    assert poller.outcomes() == [Outcome.OK]
    assert [o for _, o in poller.attempts] == [Outcome.CRC_ERROR, Outcome.OK]


def test_link_asleep_between_windows_holds_polls():
    """A link closed at the end of its connection window holds polls instead of failing them."""
    from channels.transports.base import OUTSIDE_WINDOW

    bench = Bench()
    bench.slaves[1] = answer(0.01)
    poller = bench.add("a", 1, period=10.0)
    bench.bus.start()
    bench.bus.link_up(bench.link)
    bench.run(5.0)
    assert poller.outcomes() == [Outcome.OK]
    bench.bus.link_down(OUTSIDE_WINDOW)
    bench.run(45.0)
    # No LINK_DOWN results (which would turn the meter's tags comm_loss), no writes.
    assert poller.outcomes() == [Outcome.OK] and bench.write_times() == [0.0]
    assert bench.bus.health()["sleeping"] is True
    bench.bus.link_up(bench.link)
    # The poll that fell due while asleep runs at once, then the schedule goes on.
    assert bench.write_times() == [0.0, 45.0]
    bench.run(51.0)
    assert bench.write_times() == [0.0, 45.0, 50.0] and bench.bus.health()["sleeping"] is False


# ------------------------------------------------------------------ queue depth


def test_queue_depth_counts_due_polls_not_the_one_in_progress():
    """Polls due but not started count; the poll on the wire does not; on time means 0."""
    bench = Bench(retries=0)
    bench.slaves[1] = answer(0.1)
    for unit in (1, 2, 3):
        bench.add(f"d{unit}", unit, period=10.0, first_due=0.0)
    assert bench.bus.queue_depth() == 3  # not started: all three are due
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(0.0)
    # d1 is on the wire, d2 and d3 wait for it.
    assert bench.link.writes and bench.bus.queue_depth() == 2
    bench.run(0.05)
    assert bench.bus.queue_depth() == 2
    bench.run(0.2)
    # d1 answered, d2 (silent) is timing out: only d3 waits.
    assert bench.bus.queue_depth() == 1
    bench.run(5.0)
    assert bench.bus.queue_depth() == 0


def test_queue_depth_grows_while_the_link_sleeps():
    """A link asleep between its windows leaves the due polls queued; the window opening drains them."""
    from channels.transports.base import OUTSIDE_WINDOW

    bench = Bench()
    for unit in (1, 2, 3, 4):
        bench.slaves[unit] = answer(0.01)
        bench.add(f"d{unit}", unit, period=10.0, first_due=float(unit))
    bench.bus.link_up(bench.link)
    bench.bus.start()
    bench.run(0.5)
    bench.bus.link_down(OUTSIDE_WINDOW)
    for t, depth in ((0.9, 0), (1.0, 1), (2.5, 2), (4.0, 4), (30.0, 4)):
        bench.run(t)
        assert bench.bus.queue_depth() == depth, t
    bench.bus.link_up(bench.link)
    bench.run(31.0)
    assert bench.bus.queue_depth() == 0


def test_queue_depth_stays_zero_while_the_link_is_down():
    """A link down (not asleep): due polls end at once as LINK_DOWN, nothing queues; link_up tells the outage."""
    bench = Bench()
    pollers = [bench.add(f"d{unit}", unit, period=10.0, first_due=float(unit)) for unit in (1, 2, 3)]
    bench.bus.start()  # no link, no grace
    for t in (1.0, 2.5, 3.0, 30.0):
        bench.run(t)
        assert bench.bus.queue_depth() == 0, t
    assert pollers[0].outcomes()[:3] == [Outcome.LINK_DOWN] * 3
    assert not bench.bus.link_up_now and bench.bus.health()["link_up"] is False


def test_queue_depth_of_an_overloaded_bus():
    """Devices asking for more than the bus carries: the queue stays behind, never above the device count."""
    bench = Bench(retries=2)  # silent meters: 3 attempts of 0.5 s per poll
    for unit in range(1, 11):
        bench.add(f"d{unit}", unit, period=1.0)
    bench.bus.link_up(bench.link)
    bench.bus.start()
    depths = []
    for step in range(1, 21):
        bench.run(step * 1.0)
        depths.append(bench.bus.queue_depth())
    # Each poll takes 1.5 s, each device wants one a second: all but the one polling are always due.
    assert depths == [9] * 20


def test_queue_depth_walks_only_the_due_part_of_the_heap():
    """The pruned walk counts exactly the heap entries due (checked against a plain count)."""
    import random

    rng = random.Random(9)
    for _ in range(20):
        clock = Clock()
        bus = BusScheduler(clock, "big")
        for i in range(rng.randint(0, 300)):
            poller = FakePoller(Bench(), f"p{i}", 1, 10.0, (), TIMEOUT)
            bus.add_poller(poller, rng.uniform(0.0, 100.0))
        clock.advance(rng.uniform(0.0, 100.0))
        now = clock.seconds()
        assert bus.queue_depth() == sum(1 for due, _, _ in bus._heap if due <= now)
