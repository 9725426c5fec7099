"""Tests for tags.historian.forward: store-and-forward in front of any history store."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from tags.historian import (
    AggRow,
    DiskQueue,
    ForwardingHistorian,
    MemoryQueue,
    QueueFull,
    Store,
    StoreRejected,
    StoreUnavailable,
)
from tags.historian.lines import parse
from tags.model import Sample
from tags.quality import Quality

GOOD = Quality.GOOD
T0 = 1795244400.0  # 2026-11-21T07:00:00Z
TAG = "heat1.energy_kwh"
LOGGER = "tags.historian.forward"


def good(i: int, name: str = TAG) -> Sample:
    """Return good sample number ``i``: value ``i`` at ``T0 + i``."""
    return Sample(name, float(i), GOOD, T0 + i)


def values(batch: bytes) -> list[float | None]:
    """Return the values of a batch of queued lines, in order."""
    return [value for _, _, value, _ in parse(batch)]


@dataclass
class Call:
    """One delivery the historian asked for."""

    batch: bytes
    count: int
    at: float
    d: defer.Deferred[None]


class FakeStore(Store):
    """A network database stand-in: each delivery waits until the test answers it.

    ``auto`` answers at once instead: ``"ok"``, or an exception to fail with.
    """

    backend = "fake"

    def __init__(self, clock: Clock, auto: str | Exception | None = None) -> None:
        """Start with nothing delivered."""
        self.clock = clock
        self.auto = auto
        self.calls: list[Call] = []
        self.stored = b""  # the confirmed lines, in order
        self.open_calls = 0
        self.open_errors: list[Exception] = []  # raised by the next open() calls
        self.deliver_error: Exception | None = None  # raised by deliver() itself
        self.max_inflight = 0
        self.closed = False
        self.queries: list[tuple[str, bytes]] = []  # (kind, what was stored when asked)

    # -- Store --

    def open(self) -> defer.Deferred[None] | None:
        """Fail while open_errors holds errors, else be ready at once."""
        self.open_calls += 1
        if self.open_errors:
            raise self.open_errors.pop(0)
        return None

    def deliver(self, batch: bytes, count: int) -> defer.Deferred[None]:
        """Record the batch and hand back a Deferred the test fires."""
        if self.deliver_error is not None:
            raise self.deliver_error
        assert batch.count(b"\n") == count
        call = Call(batch, count, self.clock.seconds(), defer.Deferred())
        self.calls.append(call)
        self.max_inflight = max(self.max_inflight, len(self.inflight()))
        if self.auto == "ok":
            self.ack()
        elif isinstance(self.auto, Exception):
            self.fail(self.auto)
        return call.d

    async def query_raw(self, name: str, start: float, end: float, limit: int = 100_000) -> list[Sample]:
        """Return what was confirmed, for the tag and range."""
        self.queries.append(("raw", self.stored))
        rows = [
            Sample(n, v, Quality(q), ts) for n, ts, v, q in parse(self.stored) if n == name and start <= ts < end
        ]
        return rows[:limit]

    async def query_agg(self, name: str, start: float, end: float, every: float) -> list[AggRow]:
        """Return one row counting what was confirmed."""
        self.queries.append(("agg", self.stored))
        return [AggRow(start, None, None, None, None, len(parse(self.stored)))]

    def close(self) -> None:
        """Remember the close."""
        self.closed = True

    def stats(self) -> dict[str, Any]:
        """Report the number of deliveries."""
        return {"fake_deliveries": len(self.calls)}

    # -- for the tests --

    def inflight(self) -> list[Call]:
        """Return the deliveries not answered yet."""
        return [c for c in self.calls if not c.d.called]

    def current(self) -> Call:
        """Return the one delivery in flight."""
        (call,) = self.inflight()
        return call

    def ack(self) -> Call:
        """Confirm the delivery in flight."""
        call = self.current()
        self.stored += call.batch
        call.d.callback(None)
        return call

    def fail(self, exc: Exception) -> Call:
        """Fail the delivery in flight."""
        call = self.current()
        call.d.errback(Failure(exc))
        return call


@pytest.fixture
def clock() -> Clock:
    """Return a fake reactor clock."""
    return Clock()


@pytest.fixture
def store(clock: Clock) -> FakeStore:
    """Return a store that answers only when told to."""
    return FakeStore(clock)


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Return the historian's ERROR records."""
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.ERROR]


def segment_bytes(directory: Path) -> bytes:
    """Return the concatenated segment files of a queue directory."""
    return b"".join(p.read_bytes() for p in sorted(directory.glob("0*.lp")))


# -- construction -------------------------------------------------------------------------


def test_rejects_bad_settings(clock: Clock, store: FakeStore) -> None:
    """Nonsense intervals and sizes are refused at construction."""
    with pytest.raises(ValueError, match="flush_interval"):
        ForwardingHistorian(store, clock, flush_interval=0)
    with pytest.raises(ValueError, match="batch_size"):
        ForwardingHistorian(store, clock, batch_size=0)
    with pytest.raises(ValueError, match="backlog_alarm"):
        ForwardingHistorian(store, clock, backlog_alarm=0)
    with pytest.raises(ValueError, match="measurement"):
        ForwardingHistorian(store, clock, measurement="")


# -- writing --------------------------------------------------------------------------------


def test_write_appends_before_returning(tmp_path: Path, clock: Clock, store: FakeStore) -> None:
    """Once write returns the samples are queued on disk; nothing is sent before a batch fills."""
    hist = ForwardingHistorian(store, clock, DiskQueue(tmp_path))
    hist.write([good(1), good(2)])
    assert hist.backlog == 2
    assert values(segment_bytes(tmp_path)) == [1.0, 2.0]
    hist.write([Sample("b.x", None, Quality.TIMEOUT, T0 + 3)])
    assert hist.backlog == 3
    assert parse(segment_bytes(tmp_path))[-1] == ("b.x", T0 + 3, None, "timeout")
    assert store.calls == [] and store.open_calls == 0
    hist.write([])
    assert hist.stats()["accepted_total"] == 3


def test_custom_measurement(clock: Clock, store: FakeStore) -> None:
    """The configured measurement names every queued line."""
    hist = ForwardingHistorian(store, clock, measurement="site A", batch_size=1)
    hist.write([good(1)])
    assert store.current().batch.startswith(b"site\\ A,device=heat1,tag=heat1.energy_kwh ")


@pytest.mark.parametrize(
    "bad",
    [
        Sample(TAG, 1.0, "good", T0),  # type: ignore[arg-type]
        Sample("bad\\name", 1.0, GOOD, T0),
        Sample("", 1.0, GOOD, T0),
        Sample("a.b", "12,5", GOOD, T0),  # type: ignore[arg-type]
        Sample("a.b", 1.0, GOOD, "later"),  # type: ignore[arg-type]
    ],
)
def test_bad_sample_queues_nothing(tmp_path: Path, clock: Clock, store: FakeStore, bad: Sample) -> None:
    """A sample that cannot be stored is refused, naming it, and none of its batch is queued."""
    hist = ForwardingHistorian(store, clock, DiskQueue(tmp_path), batch_size=1)
    with pytest.raises(ValueError, match="cannot store sample"):
        hist.write([good(1), bad, good(2)])
    assert hist.backlog == 0
    assert segment_bytes(tmp_path) == b""
    assert store.calls == []
    hist.write([good(3)])  # the encoder is not left in a bad state
    assert values(store.current().batch) == [3.0]


def test_write_after_close_raises(clock: Clock) -> None:
    """A closed historian refuses samples instead of dropping them."""
    hist = ForwardingHistorian(FakeStore(clock, auto="ok"), clock)
    hist.close()
    hist.close()
    with pytest.raises(RuntimeError, match="closed"):
        hist.write([good(1)])
    with pytest.raises(RuntimeError, match="closed"):
        hist.drain()


def test_queue_full_reaches_the_writer(tmp_path: Path, clock: Clock, store: FakeStore) -> None:
    """Under drop_newest a full queue raises QueueFull at write and counts the drop."""
    queue = DiskQueue(tmp_path, max_bytes=4096, when_full="drop_newest")
    hist = ForwardingHistorian(store, clock, queue)
    with pytest.raises(QueueFull):
        for i in range(1000):
            hist.write([good(i)])
    stats = hist.stats()
    assert stats["dropped_total"] == 1
    assert stats["backlog"] == i


# -- the pump ---------------------------------------------------------------------------------


def test_batch_size_triggers_a_pump(clock: Clock, store: FakeStore) -> None:
    """A full batch is sent at once (opening the store first); a partial one waits."""
    hist = ForwardingHistorian(store, clock, batch_size=3)
    hist.write([good(1), good(2)])
    assert store.calls == []
    hist.write([good(3), good(4)])
    assert store.open_calls == 1
    call = store.current()
    assert (values(call.batch), call.count) == ([1.0, 2.0, 3.0], 3)
    store.ack()
    assert store.inflight() == []  # one left: not a full batch
    assert hist.backlog == 1


def test_tick_pumps_everything(clock: Clock) -> None:
    """Every flush interval the whole queue goes, in batches; the timer re-arms."""
    store = FakeStore(clock, auto="ok")
    hist = ForwardingHistorian(store, clock, flush_interval=2.0, batch_size=3)
    hist.start()
    hist.write([good(i) for i in range(7)])
    assert [c.count for c in store.calls] == [3, 3]
    clock.advance(1.9)
    assert hist.backlog == 1
    clock.advance(0.1)
    assert [c.count for c in store.calls] == [3, 3, 1]
    assert values(store.stored) == [float(i) for i in range(7)]
    assert hist.backlog == 0
    assert len(clock.getDelayedCalls()) == 1
    hist.close()
    assert clock.getDelayedCalls() == []
    assert store.closed


def test_tick_drains_behind_an_async_store(clock: Clock, store: FakeStore) -> None:
    """After a tick, each confirmation sends the next batch until the queue is empty."""
    hist = ForwardingHistorian(store, clock, batch_size=2)
    hist.start()
    hist.write([good(1)])
    hist.write([good(2)])
    assert values(store.current().batch) == [1.0, 2.0]
    hist.write([good(3)])
    store.ack()
    assert store.inflight() == []  # one sample is not a batch: waits for the tick
    clock.advance(1.0)
    assert values(store.current().batch) == [3.0]
    hist.write([good(4), good(5), good(6)])
    store.ack()  # the tick asked for everything: the rest follows without waiting
    assert values(store.ack().batch) == [4.0, 5.0]
    assert values(store.ack().batch) == [6.0]
    assert hist.backlog == 0
    assert store.max_inflight == 1


def test_one_batch_in_flight_and_order(tmp_path: Path, clock: Clock, store: FakeStore) -> None:
    """Never two deliveries at once; the store sees the samples in the order they were accepted."""
    hist = ForwardingHistorian(store, clock, DiskQueue(tmp_path, segment_bytes=4096), batch_size=5)
    hist.start()
    i = 0
    for _ in range(40):
        hist.write([good(i), good(i + 1), good(i + 2)])
        i += 3
        if store.inflight() and i % 2:
            store.ack()
        clock.advance(0.5)
    while store.inflight():
        store.ack()
        clock.advance(1.0)
    assert store.max_inflight == 1
    assert values(store.stored) == [float(k) for k in range(i)]
    assert hist.stats()["written_total"] == i
    assert all(c.count <= 5 for c in store.calls)


def test_a_synchronous_store_error_does_not_stall(clock: Clock, store: FakeStore) -> None:
    """A deliver that raises is a failed delivery: logged, queued, retried."""
    hist = ForwardingHistorian(store, clock, batch_size=1)
    hist.start()
    store.deliver_error = TypeError("bug in the store")
    hist.write([good(1)])
    assert hist.backlog == 1
    assert hist.stats()["last_error"] == "bug in the store"
    store.deliver_error = None
    clock.advance(1.0)
    store.ack()
    assert values(store.stored) == [1.0]


# -- outages ------------------------------------------------------------------------------------


def test_backoff_doubles_up_to_retry_max(clock: Clock, store: FakeStore, caplog: pytest.LogCaptureFixture) -> None:
    """While the store is down, attempts come after 1, 2, 4, 8, 8 ... intervals; one ERROR per outage."""
    hist = ForwardingHistorian(store, clock, flush_interval=1.0, retry_max=8.0)
    hist.start()
    hist.write([good(1)])
    caplog.set_level(logging.WARNING, logger=LOGGER)
    for _ in range(40):
        clock.advance(1.0)
        if store.inflight():
            store.fail(StoreUnavailable("connection refused"))
        hist.write([good(int(clock.seconds()) + 1)])  # new samples do not trigger attempts
    assert [c.at for c in store.calls] == [1.0, 2.0, 4.0, 8.0, 16.0, 24.0, 32.0, 40.0]
    assert len(errors(caplog)) == 1
    assert "unavailable" in errors(caplog)[0].getMessage()
    stats = hist.stats()
    assert stats["store_up"] is False
    assert stats["last_error"] == "connection refused"
    assert stats["flush_errors"] == 8
    assert stats["backlog"] == 41

    clock.advance(8.0)
    assert store.current().at == 48.0
    store.ack()  # back: the rest of the backlog follows at once
    while store.inflight():
        store.ack()
    assert values(store.stored) == [float(k) for k in range(1, 42)]
    assert any("takes samples again" in r.getMessage() for r in caplog.records)
    stats = hist.stats()
    assert (stats["store_up"], stats["backlog"], stats["written_total"]) == (True, 0, 41)

    # A second outage is reported again, and the backoff starts over.
    hist.write([good(100)])
    clock.advance(1.0)
    store.fail(StoreUnavailable("timeout"))
    assert len(errors(caplog)) == 2
    clock.advance(1.0)
    assert store.current().at == clock.seconds()


def test_order_preserved_across_an_outage(tmp_path: Path, clock: Clock, store: FakeStore) -> None:
    """The failed batch is sent again first; nothing is skipped or sent twice once it is confirmed."""
    hist = ForwardingHistorian(store, clock, DiskQueue(tmp_path), batch_size=4)
    hist.start()
    hist.write([good(i) for i in range(4)])
    store.fail(StoreUnavailable("down"))
    hist.write([good(i) for i in range(4, 10)])
    assert store.inflight() == []
    clock.advance(1.0)
    assert values(store.current().batch) == [0.0, 1.0, 2.0, 3.0]
    store.fail(StoreUnavailable("down"))
    hist.write([good(i) for i in range(10, 12)])
    clock.advance(2.0)
    while store.inflight():
        store.ack()
    assert values(store.stored) == [float(i) for i in range(12)]


def test_unexpected_failure_is_logged_and_retried(clock: Clock, store: FakeStore, caplog: pytest.LogCaptureFixture) -> None:
    """An exception that is neither unavailable nor rejected is logged with its traceback and retried."""
    hist = ForwardingHistorian(store, clock, batch_size=1)
    hist.start()
    hist.write([good(1)])
    store.fail(KeyError("surprise"))
    unexpected = [r for r in errors(caplog) if "unexpectedly" in r.getMessage()]
    assert len(unexpected) == 1 and unexpected[0].exc_info is not None
    assert hist.backlog == 1
    assert hist.stats()["store_up"] is False
    clock.advance(1.0)
    store.ack()
    assert (hist.backlog, values(store.stored)) == (0, [1.0])


def test_open_failure_is_retried(clock: Clock, store: FakeStore, caplog: pytest.LogCaptureFixture) -> None:
    """A store that cannot open is retried with the same backoff before any delivery."""
    store.open_errors = [StoreUnavailable("no route"), StoreUnavailable("no route")]
    hist = ForwardingHistorian(store, clock)
    hist.write([good(1)])
    hist.start()
    assert store.open_calls == 1 and store.calls == []
    assert hist.stats()["store_up"] is False
    clock.advance(1.0)
    assert store.open_calls == 2
    clock.advance(1.0)
    assert store.open_calls == 2  # backing off: 2 s after the second failure
    clock.advance(1.0)
    assert store.open_calls == 3
    store.ack()
    assert hist.stats()["store_up"] is True
    assert len(errors(caplog)) == 1


def test_async_open(clock: Clock, store: FakeStore) -> None:
    """A store whose open answers later gets its first batch only then; a failed open is retried."""
    opening: list[defer.Deferred[None]] = []
    store.open = lambda: opening.append(defer.Deferred()) or opening[-1]  # type: ignore[method-assign]
    hist = ForwardingHistorian(store, clock, batch_size=1)
    hist.start()
    hist.write([good(1)])
    hist.write([good(2)])
    assert len(opening) == 1 and store.calls == []  # one open at a time
    opening[0].errback(Failure(StoreUnavailable("starting up")))
    clock.advance(1.0)
    assert len(opening) == 2
    opening[1].callback(None)
    assert values(store.ack().batch) == [1.0]
    assert values(store.ack().batch) == [2.0]


def test_batch_in_flight_dropped_for_room(tmp_path: Path, clock: Clock, store: FakeStore) -> None:
    """If the queue drops the segment of the batch in flight, its late answer moves nothing."""
    queue = DiskQueue(tmp_path, max_bytes=16384, segment_bytes=4096)
    hist = ForwardingHistorian(store, clock, queue, batch_size=3)
    hist.write([good(0), good(1), good(2)])
    call = store.current()
    i = 3
    while not hist.stats()["dropped_total"]:
        hist.write([good(i)])
        i += 1
    head = hist.stats()["oldest_queued_ts"] - T0
    assert head > 3
    backlog = hist.backlog
    store.ack()  # the answer for the dropped batch
    assert call.d.result is None
    assert hist.backlog <= backlog
    while store.inflight():
        store.ack()
    hist.flush()
    while store.inflight():
        store.ack()
    got = values(store.stored)
    assert got[:3] == [0.0, 1.0, 2.0]
    assert got[3:] == [float(k) for k in range(int(head), i)]
    stats = hist.stats()
    assert stats["backlog"] == 0
    assert stats["dropped_total"] + stats["written_total"] == i


# -- rejected batches -------------------------------------------------------------------------


def test_rejected_batch_goes_to_the_rejected_file(tmp_path: Path, clock: Clock, store: FakeStore) -> None:
    """A batch the store refuses for good is set aside in rejected.lp and the next batch goes at once."""
    hist = ForwardingHistorian(store, clock, DiskQueue(tmp_path), batch_size=2)
    hist.write([good(1), good(2), good(3), good(4), good(5)])
    first = store.fail(StoreRejected("field type conflict"))
    assert first.d.result is None  # handled, not an unhandled failure
    assert values(store.current().batch) == [3.0, 4.0]
    rejected = (tmp_path / "rejected.lp").read_bytes()
    assert rejected.startswith(b"# 2 samples refused: field type conflict")
    assert values(rejected.split(b"\n", 1)[1]) == [1.0, 2.0]
    store.ack()
    stats = hist.stats()
    assert (stats["rejected_total"], stats["written_total"], stats["backlog"]) == (2, 2, 1)
    assert stats["store_up"] is True and stats["flush_errors"] == 0


def test_rejected_with_memory_queue(clock: Clock) -> None:
    """Without a disk queue a refused batch is logged and counted, and the rest goes on."""
    store = FakeStore(clock)
    hist = ForwardingHistorian(store, clock, MemoryQueue(), batch_size=1)
    hist.write([good(1), good(2)])
    store.fail(StoreRejected("bad"))
    store.ack()
    assert hist.stats()["rejected_total"] == 1
    assert values(store.stored) == [2.0]


# -- backlog alarm ----------------------------------------------------------------------------


def test_backlog_listener_hysteresis(clock: Clock, store: FakeStore) -> None:
    """The listener hears once when the backlog reaches the threshold and once when it falls under 90 %."""
    hist = ForwardingHistorian(store, clock, batch_size=1, backlog_alarm=10)
    heard: list[tuple[bool, int]] = []
    hist.add_backlog_listener(lambda over, n: heard.append((over, n)))
    assert heard == []
    hist.write([good(i) for i in range(9)])
    assert heard == []
    hist.write([good(9)])
    assert heard == [(True, 10)]
    hist.write([good(10)])
    store.ack()  # 10 left
    store.ack()  # 9 left: still over (90 % is the bar)
    assert heard == [(True, 10)]
    assert hist.stats()["backlog_alarm_active"] is True
    store.ack()  # 8: under 90 %
    assert heard == [(True, 10), (False, 8)]
    assert hist.stats()["backlog_alarm_active"] is False
    store.ack()
    assert heard == [(True, 10), (False, 8)]


def test_backlog_alarm_during_outage(clock: Clock, store: FakeStore) -> None:
    """The alarm is raised by writes during an outage, even with no delivery happening."""
    hist = ForwardingHistorian(store, clock, batch_size=100, backlog_alarm=3)
    heard: list[tuple[bool, int]] = []
    hist.add_backlog_listener(lambda over, n: heard.append((over, n)))
    hist.start()
    hist.write([good(1)])
    clock.advance(1.0)
    store.fail(StoreUnavailable("down"))
    hist.write([good(2), good(3), good(4)])
    assert heard == [(True, 4)]


def test_listener_at_registration_for_a_recovered_queue(tmp_path: Path, clock: Clock, store: FakeStore) -> None:
    """A queue recovered from disk that is already over the threshold is announced at registration."""
    first = ForwardingHistorian(store, clock, DiskQueue(tmp_path))
    first.write([good(i) for i in range(5)])
    first.close()  # the store never answered: the samples stay on disk

    again = ForwardingHistorian(FakeStore(clock), clock, DiskQueue(tmp_path), backlog_alarm=5)
    heard: list[tuple[bool, int]] = []
    again.add_backlog_listener(lambda over, n: heard.append((over, n)))
    assert heard == [(True, 5)]
    assert again.stats()["backlog_alarm_active"] is True


def test_failing_listener_is_logged(clock: Clock, store: FakeStore, caplog: pytest.LogCaptureFixture) -> None:
    """A listener that raises is logged; the others still hear and the write succeeds."""
    hist = ForwardingHistorian(store, clock, backlog_alarm=1)
    heard: list[bool] = []

    def broken(over: bool, n: int) -> None:
        raise RuntimeError("listener bug")

    hist.add_backlog_listener(broken)
    hist.add_backlog_listener(lambda over, n: heard.append(over))
    hist.write([good(1)])
    assert heard == [True]
    assert hist.backlog == 1
    assert any("listener" in r.getMessage() for r in errors(caplog))


def test_listener_may_write(clock: Clock) -> None:
    """A listener that writes the backlog as a sample (the historian_backlog tag) does not recurse or stall."""
    store = FakeStore(clock, auto="ok")
    hist = ForwardingHistorian(store, clock, batch_size=2, backlog_alarm=2)
    hist.add_backlog_listener(lambda over, n: hist.write([Sample("historian_backlog", float(n), GOOD, T0)]))
    hist.write([good(1)])
    hist.write([good(2)])
    hist.flush()
    assert hist.backlog == 0
    assert store.max_inflight == 1


# -- drain, flush, close ----------------------------------------------------------------------


def test_drain(clock: Clock, store: FakeStore) -> None:
    """drain fires True once everything is confirmed, at once when nothing waits."""
    hist = ForwardingHistorian(store, clock, batch_size=2)
    done: list[bool] = []
    hist.drain().addCallback(done.append)
    assert done == [True]
    hist.write([good(1), good(2), good(3)])
    hist.drain(timeout=10).addCallback(done.append)
    store.ack()
    assert done == [True]
    store.ack()
    assert done == [True, True]
    assert hist.backlog == 0


def test_drain_times_out(clock: Clock, store: FakeStore) -> None:
    """drain fires False when the store does not take the queue in time; the samples stay queued."""
    hist = ForwardingHistorian(store, clock)
    hist.write([good(1)])
    done: list[bool] = []
    hist.drain(timeout=5).addCallback(done.append)
    store.fail(StoreUnavailable("down"))
    clock.advance(4.9)
    assert done == []
    clock.advance(0.1)
    assert done == [False]
    assert hist.backlog == 1
    assert clock.getDelayedCalls() == []


def test_drain_retries_at_once(clock: Clock, store: FakeStore) -> None:
    """drain does not wait for the backoff: it tries now."""
    hist = ForwardingHistorian(store, clock, batch_size=1, retry_max=30)
    hist.write([good(1)])
    store.fail(StoreUnavailable("down"))
    assert store.inflight() == []
    done: list[bool] = []
    hist.drain().addCallback(done.append)
    store.ack()
    assert done == [True]


def test_drain_when_the_last_batch_is_rejected(clock: Clock, store: FakeStore) -> None:
    """An empty queue is an empty queue: drain fires True after the last batch was set aside."""
    hist = ForwardingHistorian(store, clock)
    hist.write([good(1)])
    done: list[bool] = []
    hist.drain(timeout=5).addCallback(done.append)
    store.fail(StoreRejected("never"))
    assert done == [True]


def test_flush_raises_when_a_sync_store_fails(clock: Clock) -> None:
    """With a store that answers at once, flush raises its error and keeps the samples."""
    store = FakeStore(clock, auto=StoreUnavailable("disk locked"))
    hist = ForwardingHistorian(store, clock)
    hist.write([good(1)])
    with pytest.raises(StoreUnavailable, match="disk locked"):
        hist.flush()
    assert hist.backlog == 1
    store.auto = "ok"
    hist.flush()
    assert hist.backlog == 0


def test_flush_with_async_store_does_not_raise(clock: Clock, store: FakeStore) -> None:
    """With a network store flush starts the sending and returns."""
    hist = ForwardingHistorian(store, clock)
    hist.write([good(1)])
    hist.flush()
    assert values(store.current().batch) == [1.0]


def test_close_keeps_the_disk_queue_for_the_next_start(tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    """Closing with a dead store keeps the samples on disk; the next historian delivers each exactly once."""
    dead = FakeStore(clock, auto=StoreUnavailable("down"))
    hist = ForwardingHistorian(dead, clock, DiskQueue(tmp_path), batch_size=2)
    hist.start()
    hist.write([good(i) for i in range(5)])
    clock.advance(3.0)
    hist.close()
    assert dead.closed
    assert clock.getDelayedCalls() == []
    assert any("stay queued on disk" in r.getMessage() for r in caplog.records)

    store = FakeStore(clock, auto="ok")
    again = ForwardingHistorian(store, clock, DiskQueue(tmp_path), batch_size=2)
    assert again.backlog == 5
    again.start()
    again.write([good(5)])
    clock.advance(1.0)
    assert values(store.stored) == [float(i) for i in range(6)]
    again.close()
    third = ForwardingHistorian(FakeStore(clock), clock, DiskQueue(tmp_path))
    assert third.backlog == 0


def test_close_while_a_batch_is_in_flight(tmp_path: Path, clock: Clock, store: FakeStore) -> None:
    """An answer that comes after close neither commits nor crashes; the batch is sent again next start."""
    hist = ForwardingHistorian(store, clock, DiskQueue(tmp_path), batch_size=2)
    hist.write([good(1), good(2), good(3)])
    call = store.current()
    hist.close()
    assert store.closed
    call.d.callback(None)
    assert call.d.result is None
    assert hist.stats()["written_total"] == 0

    store2 = FakeStore(clock)
    again = ForwardingHistorian(store2, clock, DiskQueue(tmp_path), batch_size=2)
    assert again.backlog == 3
    again.write([good(4)])
    call2 = store2.current()
    again.close()
    call2.d.errback(Failure(StoreUnavailable("late")))
    assert call2.d.result is None  # consumed: no "unhandled error in Deferred"
    call3_store = FakeStore(clock, auto="ok")
    third = ForwardingHistorian(call3_store, clock, DiskQueue(tmp_path), batch_size=2)
    third.flush()
    assert values(call3_store.stored) == [1.0, 2.0, 3.0, 4.0]


def test_close_with_memory_queue_and_failing_store_raises(clock: Clock) -> None:
    """Without a disk queue, close refuses to lose samples: it raises and can be tried again."""
    store = FakeStore(clock, auto=StoreUnavailable("down"))
    hist = ForwardingHistorian(store, clock)
    hist.write([good(1)])
    with pytest.raises(StoreUnavailable, match="1 samples not written"):
        hist.close()
    assert not store.closed
    store.auto = "ok"
    hist.close()
    assert store.closed and values(store.stored) == [1.0]


def test_close_releases_drain_waiters(clock: Clock, store: FakeStore, tmp_path: Path) -> None:
    """A drain pending at close does not hang."""
    hist = ForwardingHistorian(store, clock, DiskQueue(tmp_path))
    hist.write([good(1)])
    d = hist.drain()
    hist.close()
    assert d.called
    d.addErrback(lambda f: f.trap(defer.CancelledError))


# -- queries --------------------------------------------------------------------------------


def query(hist: ForwardingHistorian, kind: str = "raw") -> defer.Deferred[Any]:
    """Start a query of TAG over all time."""
    if kind == "raw":
        return defer.ensureDeferred(hist.query_raw(TAG, -math.inf, math.inf))
    return defer.ensureDeferred(hist.query_agg(TAG, -math.inf, math.inf, 60))


@pytest.mark.parametrize("kind", ["raw", "agg"])
def test_query_catches_up_first(clock: Clock, store: FakeStore, kind: str) -> None:
    """A query first sends a short queue, so it sees every sample written before it."""
    hist = ForwardingHistorian(store, clock, batch_size=2)
    hist.write([good(1), good(2), good(3)])
    store.ack()
    hist.write([good(4)])
    d = query(hist, kind)
    assert not d.called and store.queries == []
    store.ack()
    assert d.called
    assert store.queries == [(kind, store.stored)]
    assert values(store.stored) == [1.0, 2.0, 3.0, 4.0]
    if kind == "raw":
        assert [s.value for s in d.result] == [1.0, 2.0, 3.0, 4.0]


def test_query_skips_catch_up_while_failing(clock: Clock, store: FakeStore) -> None:
    """While the store fails, a query does not wait for the queue."""
    hist = ForwardingHistorian(store, clock)
    hist.write([good(1)])
    hist.flush()
    store.fail(StoreUnavailable("down"))
    d = query(hist)
    assert d.called and d.result == []
    assert store.inflight() == []


def test_query_skips_catch_up_of_a_long_backlog(clock: Clock, store: FakeStore) -> None:
    """A backlog of more than four batches is not waited for."""
    hist = ForwardingHistorian(store, clock, batch_size=2)
    hist.write([good(i) for i in range(9)])
    d = query(hist)
    assert d.called


def test_query_catch_up_is_bounded(clock: Clock, store: FakeStore) -> None:
    """If the store does not answer, the query goes ahead after five flush intervals."""
    hist = ForwardingHistorian(store, clock, flush_interval=2.0)
    hist.write([good(1)])
    d = query(hist)
    clock.advance(9.9)
    assert not d.called
    clock.advance(0.1)
    assert d.called and d.result == []


def test_query_checks_arguments(clock: Clock, store: FakeStore) -> None:
    """Bad limits and intervals are refused before anything is sent."""
    hist = ForwardingHistorian(store, clock)
    hist.write([good(1)])
    with pytest.raises(ValueError, match="limit"):
        hist.query_raw(TAG, 0, 1, limit=-1).send(None)
    with pytest.raises(ValueError, match="positive"):
        hist.query_agg(TAG, 0, 1, 0).send(None)
    assert store.calls == []


# -- stats ----------------------------------------------------------------------------------------


def test_stats(tmp_path: Path, clock: Clock, store: FakeStore) -> None:
    """stats has the backlog, the oldest queued sample, the counters and the store's own facts."""
    hist = ForwardingHistorian(store, clock, DiskQueue(tmp_path), batch_size=2, backlog_alarm=50)
    stats = hist.stats()
    assert {
        "backend", "queued", "backlog", "backlog_bytes", "oldest_queued_ts", "backlog_alarm",
        "backlog_alarm_active", "accepted_total", "written_total", "dropped_total", "rejected_total",
        "batches", "flush_errors", "last_flush_ts", "store_up", "last_error", "queue", "fake_deliveries",
    } <= stats.keys()
    assert (stats["backend"], stats["backlog"], stats["oldest_queued_ts"]) == ("fake", 0, None)
    assert (stats["store_up"], stats["last_error"], stats["last_flush_ts"]) == (False, None, None)
    assert stats["queue"]["path"] == str(tmp_path)

    hist.write([good(1), good(2), good(3)])
    clock.advance(7.0)
    store.ack()
    stats = hist.stats()
    assert stats["oldest_queued_ts"] == T0 + 3
    assert (stats["backlog"], stats["queued"], stats["accepted_total"], stats["written_total"]) == (1, 1, 3, 2)
    assert (stats["batches"], stats["last_flush_ts"], stats["store_up"]) == (1, 7.0, True)
    assert stats["backlog_bytes"] == len(segment_bytes(tmp_path)) - len(store.stored)
    assert (stats["dropped_total"], stats["rejected_total"], stats["backlog_alarm"]) == (0, 0, 50)
    assert stats["fake_deliveries"] == 1


def test_store_property(clock: Clock, store: FakeStore) -> None:
    """The store is reachable for its own health facts."""
    assert ForwardingHistorian(store, clock).store is store

