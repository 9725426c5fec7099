# -*- test-case-name: tests.tags.test_forward -*-
"""Store-and-forward: the historian every backend runs behind.

`ForwardingHistorian.write` encodes samples as line protocol and appends
them to the on-disk queue before it returns: from then on a database outage,
a network cut or ``kill -9`` of the engine cannot lose them.  A pump sends
the queue to the `Store` (SQLite or InfluxDB) in order, one batch in flight
at a time, and moves the queue's cursor only when the store confirmed the
batch.  While the store is down the queue grows within its disk budget and
the pump retries with a growing delay (flush interval doubled per failure,
at most ``retry_max``); when the store is back the backlog drains in
batches, oldest first, before newer samples.

One batch is in flight at a time, so the database sees samples in the
order they were accepted, and the next batch is encoded while the database
stores the current one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.python.failure import Failure

from tags.historian.base import AggRow, Historian, Store, StoreRejected, StoreUnavailable, await_deferred
from tags.historian.lines import MEASUREMENT, Encoder
from tags.historian.queue import MemoryQueue, QueueFull
from tags.model import Sample

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

    from tags.historian.queue import DiskQueue

_log = logging.getLogger(__name__)

#: Called with (over_threshold, backlog) when the backlog crosses the alarm threshold.
BacklogListener = Callable[[bool, int], None]


class ForwardingHistorian(Historian):
    """Samples go to an on-disk queue first, then to the store; see the module docstring."""

    def __init__(
        self,
        store: Store,
        reactor: IReactorTime,
        queue: DiskQueue | MemoryQueue | None = None,
        flush_interval: float = 1.0,
        batch_size: int = 5000,
        measurement: str = MEASUREMENT,
        retry_max: float = 30.0,
        backlog_alarm: int = 100_000,
    ) -> None:
        """Forward to ``store`` through ``queue`` (in memory when None: nothing survives a crash)."""
        if flush_interval <= 0:
            raise ValueError(f"flush_interval must be positive, not {flush_interval!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size!r}")
        if backlog_alarm < 1:
            raise ValueError(f"backlog_alarm must be at least 1, not {backlog_alarm!r}")
        self._store = store
        self._reactor = reactor
        self._queue = queue if queue is not None else MemoryQueue()
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._retry_max = max(retry_max, flush_interval)
        self._encoder = Encoder(measurement)
        self._backlog_alarm = backlog_alarm
        self._alarmed = False
        self._listeners: list[BacklogListener] = []
        self._timer: IDelayedCall | None = None
        self._closed = False
        self._ready = False  # the store's open() succeeded
        self._opening = False
        self._inflight = False
        self._pumping = False
        self._drain_all = False
        self._failures = 0  # consecutive
        self._retry_at = 0.0
        self._last_error: str | None = None
        self._flush_errors = 0
        self._batches = 0
        self._last_flush_ts: float | None = None
        self._waiters: list[defer.Deferred[None]] = []
        self._check_alarm()

    @property
    def store(self) -> Store:
        """Return the database this historian forwards to."""
        return self._store

    @property
    def backlog(self) -> int:
        """Return how many accepted samples the database has not confirmed yet."""
        return self._queue.pending

    def add_backlog_listener(self, listener: BacklogListener) -> None:
        """Call ``listener(over, backlog)`` whenever the backlog crosses ``backlog_alarm``.

        It is called at once if the backlog is already over the threshold
        (a queue recovered from disk after an outage).
        """
        self._listeners.append(listener)
        if self._alarmed:
            listener(True, self.backlog)

    # -- the Historian interface ------------------------------------------

    def start(self) -> None:
        """Open the store and arm the flush timer."""
        self._require_open()
        if self._timer is None:
            self._timer = self._reactor.callLater(self._flush_interval, self._tick)
        self._pump(all_=True)

    def write(self, samples: Sequence[Sample]) -> None:
        """Append ``samples`` to the queue: once this returns they survive a crash.

        Raises ``ValueError`` naming a sample that cannot be stored (then
        none is queued) and `QueueFull` when the disk budget is used up
        under ``when_full: drop_newest``.
        """
        self._require_open()
        data, count = self._encoder.encode(samples)
        if not count:
            return
        self._queue.append(data, count)
        if self._queue.pending >= self._batch_size:
            self._pump()
        if not self._alarmed and self._queue.pending >= self._backlog_alarm:
            self._check_alarm()

    def flush(self) -> None:
        """Send the whole queue now.

        With a store that answers at once (SQLite) the queue is empty on
        return, or the samples stay queued and, if the queue is only in
        memory (where they are at risk), the store's error is raised.  With
        a network store the sending starts and `drain` tells the end.
        """
        self._require_open()
        errors_before = self._flush_errors
        self._retry_at = 0.0
        self._pump(all_=True)
        if self._flush_errors > errors_before and not self._inflight and not self._queue.durable:
            raise StoreUnavailable(self._last_error or "history store refused the samples")

    def drain(self, timeout: float | None = None) -> defer.Deferred[bool]:
        """Send everything queued; fire True when the queue is empty, False on timeout or error."""
        self._require_open()
        self._retry_at = 0.0
        self._pump(all_=True)
        if not self._queue.pending:
            return defer.succeed(True)
        waiter: defer.Deferred[None] = defer.Deferred()
        self._waiters.append(waiter)
        result: defer.Deferred[bool] = waiter.addCallback(lambda _: True)
        if timeout is not None:
            result.addTimeout(timeout, self._reactor, onTimeoutCancel=lambda *_: False)
        return result

    async def query_raw(self, name: str, start: float, end: float, limit: int = 100_000) -> list[Sample]:
        """Return history from the store, after sending what is queued if that is quick."""
        if limit < 0:
            raise ValueError(f"limit must not be negative, not {limit!r}")
        await self._catch_up()
        return await self._store.query_raw(name, start, end, limit)

    async def query_agg(self, name: str, start: float, end: float, every: float) -> list[AggRow]:
        """Aggregate in the store, after sending what is queued if that is quick."""
        if not float(every) > 0:
            raise ValueError(f"aggregation interval must be positive, not {every!r}")
        await self._catch_up()
        return await self._store.query_agg(name, start, end, every)

    async def query_at(self, name: str, at: float, since: float) -> Sample | None:
        """Return the last usable sample at or before ``at`` from the store, after catching up like `query_raw`."""
        await self._catch_up()
        return await self._store.query_at(name, at, since)

    async def query_at_many(self, names: Sequence[str], at: float, since: float) -> dict[str, Sample | None]:
        """Return `query_at` for several tags, catching up once and asking the store in one go."""
        await self._catch_up()
        return await self._store.query_at_many(names, at, since)

    def close(self) -> None:
        """Stop the timer, send what the store takes at once, close queue and store.

        A durable queue keeps whatever is left for the next start.  With an
        in-memory queue the leftovers would be lost, so then the error is
        raised and the historian stays open for another try.
        """
        if self._closed:
            return
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        self._retry_at = 0.0
        self._pump(all_=True)
        if self._queue.pending and not self._queue.durable and not self._inflight:
            raise StoreUnavailable(
                f"{self._queue.pending} samples not written: {self._last_error or 'store unavailable'}")
        if self._queue.pending:
            _log.warning("history: %d samples stay queued on disk for the next start", self._queue.pending)
        self._closed = True
        self._queue.close()
        self._store.close()
        for waiter in self._waiters:
            waiter.cancel()
        self._waiters.clear()

    def stats(self) -> dict[str, Any]:
        """Return the backlog, the oldest queued sample and the counters of queue and store."""
        queue = self._queue.stats()
        out = {
            "backend": self._store.backend,
            "queued": queue["pending"],
            "backlog": queue["pending"],
            "backlog_bytes": queue["pending_bytes"],
            "oldest_queued_ts": self._queue.head_time(),
            "backlog_alarm": self._backlog_alarm,
            "backlog_alarm_active": self._alarmed,
            "accepted_total": queue["appended_total"],
            "written_total": queue["committed_total"],
            "dropped_total": queue["dropped_total"],
            "rejected_total": queue["rejected_total"],
            "batches": self._batches,
            "flush_errors": self._flush_errors,
            "last_flush_ts": self._last_flush_ts,
            "store_up": self._ready and not self._failures,
            "last_error": self._last_error,
            "queue": queue,
        }
        out.update(self._store.stats())
        return out

    # -- the pump -----------------------------------------------------------

    def _tick(self) -> None:
        self._timer = None
        try:
            self._queue.sync()
            self._pump(all_=True)
        except Exception:  # noqa: BLE001 - the timer must survive anything
            _log.exception("history: flush tick failed")
        finally:
            if not self._closed:
                self._timer = self._reactor.callLater(self._flush_interval, self._tick)

    def _pump(self, all_: bool = False) -> None:
        """Send batches while there is something to send and nothing in flight."""
        if all_:
            self._drain_all = True
        if self._pumping or self._closed:
            return
        if self._failures and self._reactor.seconds() < self._retry_at:
            return
        if not self._ready:
            self._open_store()
            return
        self._pumping = True
        try:
            while not self._inflight and self._queue.pending and not self._closed:
                if not self._drain_all and self._queue.pending < self._batch_size:
                    break
                if self._failures and self._reactor.seconds() < self._retry_at:
                    break
                batch, count = self._queue.peek(self._batch_size)
                if not count:
                    break
                self._inflight = True
                try:
                    d = self._store.deliver(batch, count)
                except Exception:  # noqa: BLE001 - a store bug must not stall the queue silently
                    d = defer.fail()
                d.addCallbacks(self._delivered, self._failed, callbackArgs=(count,), errbackArgs=(count,))
        finally:
            self._pumping = False
        if not self._queue.pending:
            self._drain_all = False

    def _open_store(self) -> None:
        if self._opening:
            return
        self._opening = True
        try:
            result = self._store.open()
        except Exception:  # noqa: BLE001
            result = defer.fail()
        d = result if isinstance(result, defer.Deferred) else defer.succeed(None)
        d.addCallbacks(self._opened, self._open_failed)

    def _opened(self, _: object) -> None:
        self._opening = False
        self._ready = True
        self._failures = 0
        self._pump()

    def _open_failed(self, failure: Failure) -> None:
        self._opening = False
        self._note_failure(failure)

    def _delivered(self, _: object, count: int) -> None:
        self._inflight = False
        if self._closed:
            return
        self._queue.commit(count)
        self._batches += 1
        self._last_flush_ts = self._reactor.seconds()
        if self._failures:
            _log.warning("history: the %s store takes samples again after %d failed attempts; "
                         "%d samples to catch up", self._store.backend, self._failures, self._queue.pending)
            self._failures = 0
        self._check_alarm()
        if not self._queue.pending:
            self._wake_waiters()
        if not self._pumping:
            self._pump()

    def _failed(self, failure: Failure, count: int) -> None:
        self._inflight = False
        if self._closed:
            return
        if failure.check(StoreRejected):
            self._queue.reject(count, failure.getErrorMessage())
            self._check_alarm()
            if not self._queue.pending:
                self._wake_waiters()
            if not self._pumping:
                self._pump()
            return
        if not failure.check(StoreUnavailable):
            _log.error("history: the %s store failed unexpectedly", self._store.backend,
                       exc_info=(failure.type, failure.value, failure.getTracebackObject()))
        self._note_failure(failure)

    def _note_failure(self, failure: Failure) -> None:
        self._failures += 1
        self._flush_errors += 1
        self._last_error = failure.getErrorMessage()
        delay = min(self._flush_interval * 2 ** (self._failures - 1), self._retry_max)
        self._retry_at = self._reactor.seconds() + delay
        if self._failures == 1:
            # One report per outage; the stats and the backlog tag tell the rest.
            _log.error("history: the %s store is unavailable (%s); %d samples kept queued, retrying",
                       self._store.backend, self._last_error, self._queue.pending)
        self._check_alarm()

    def _check_alarm(self) -> None:
        backlog = self._queue.pending
        over = backlog >= self._backlog_alarm if not self._alarmed else backlog >= self._backlog_alarm * 0.9
        if over is self._alarmed:
            return
        self._alarmed = over
        if over:
            _log.warning("history: backlog of %d samples passed the alarm threshold %d",
                         backlog, self._backlog_alarm)
        else:
            _log.warning("history: backlog back under the alarm threshold (%d samples)", backlog)
        for listener in list(self._listeners):
            try:
                listener(over, backlog)
            except Exception:  # noqa: BLE001 - a listener bug must not stop history
                _log.exception("history: backlog listener %r failed", listener)

    def _wake_waiters(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(None)

    async def _catch_up(self) -> None:
        """Let a query see what was written before it: send the queue if it is short."""
        if self._queue.pending and self._queue.pending <= 4 * self._batch_size and not self._failures:
            await await_deferred(self.drain(timeout=self._flush_interval * 5))

    def _require_open(self) -> None:
        if self._closed:
            raise RuntimeError("historian is closed")


__all__ = ["BacklogListener", "ForwardingHistorian", "QueueFull"]
