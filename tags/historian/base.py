# -*- test-case-name: tests.tags.test_historian_sqlite -*-
"""The interface every history backend (SQLite, InfluxDB) implements."""

from __future__ import annotations

import abc
import asyncio
import inspect
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet import defer

from tags.model import Sample

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

T = TypeVar("T")

# The function that steps coroutines run by Deferred.fromCoroutine.
_TWISTED_DRIVER = defer._inlineCallbacks.__code__


async def await_deferred(d: Deferred[T]) -> T:
    """Await a Deferred from whichever driver runs the calling coroutine.

    History queries are coroutines awaited by Sanic's handlers (asyncio
    tasks, which can only wait on asyncio futures) and by Twisted code
    (``Deferred.fromCoroutine``, which can only wait on Deferreds).
    """
    if not d.called and _driver() == "asyncio":
        return await d.asFuture(asyncio.get_running_loop())
    return await d


def _driver() -> str:
    """Return ``"twisted"`` or ``"asyncio"``: who drives the coroutines calling this.

    Walk out of the chain of coroutine frames that awaited each other; the
    first frame that is not a coroutine is the driver's.  Twisted's shows
    up as `defer._inlineCallbacks`; asyncio's C task has no frame, so
    there the current task decides.  Anything else (a test sending into
    the coroutine by hand) gets the Deferred, like Twisted.
    """
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_flags & inspect.CO_COROUTINE:
        frame = frame.f_back
    if frame is not None and frame.f_code is _TWISTED_DRIVER:
        return "twisted"
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return "asyncio" if task is not None else "twisted"


async def scan_at(query_raw: Any, name: str, at: float, since: float) -> Sample | None:
    """Find `Historian.query_at`'s answer by reading ``[since, at]`` with ``query_raw``.

    The fallback for backends without an indexed "last before" query: it
    reads the whole window forward, in pages of ``_SCAN_PAGE`` samples, and
    keeps the newest usable sample with a value.
    """
    at, since = float(at), float(since)
    if math.isnan(at) or math.isnan(since):
        raise ValueError("query_at bounds must be numbers, not NaN")
    end = math.nextafter(at, math.inf)  # query_raw's end is exclusive; ``at`` is not
    found: Sample | None = None
    start = since
    while start < end:
        page = await query_raw(name, start, end, _SCAN_PAGE)
        for sample in page:
            if sample.value is not None and sample.quality.usable:
                found = sample
        if len(page) < _SCAN_PAGE:
            break
        start = math.nextafter(page[-1].ts, math.inf)
    return found


_SCAN_PAGE = 10_000


@dataclass(frozen=True, slots=True)
class AggRow:
    """Aggregate of one tag over one interval bucket.

    ``ts`` is the bucket start, a multiple of the interval since the Unix
    epoch.  ``min``, ``max``, ``mean`` and ``last`` (the value of the latest
    sample in the bucket) are taken over the samples whose quality is usable;
    ``count`` is how many of those there were.
    """

    ts: float
    min: float | None
    max: float | None
    mean: float | None
    last: float | None
    count: int


class Historian(abc.ABC):
    """Where samples go to be kept, and where trends and reports read them back.

    Writes are fire-and-forget and may be queued; `flush` and `close` make
    them durable.  Queries are coroutines so that a backend may do network
    I/O; they see every sample written before they were called.
    """

    def start(self) -> None:
        """Begin background work such as periodic flushing; the default does nothing."""

    @abc.abstractmethod
    def write(self, samples: Sequence[Sample]) -> None:
        """Accept samples for storage; they may stay queued until the next flush."""

    @abc.abstractmethod
    def flush(self) -> None:
        """Push queued samples to storage now; raise if storage refuses them (they stay queued)."""

    @abc.abstractmethod
    async def query_raw(
        self, name: str, start: float, end: float, limit: int = 100_000
    ) -> list[Sample]:
        """Return up to ``limit`` samples of tag ``name`` with ``start <= ts < end``, oldest first."""

    @abc.abstractmethod
    async def query_agg(self, name: str, start: float, end: float, every: float) -> list[AggRow]:
        """Return one `AggRow` per ``every``-second bucket of ``start <= ts < end``.

        Buckets are aligned to multiples of ``every`` since the Unix epoch, so
        the first one may begin before ``start``.  Only samples with a usable
        quality (`Quality.usable`) and a value count; buckets without any are
        omitted.  Raises ``ValueError`` if ``every`` is not positive.
        """

    async def query_at(self, name: str, at: float, since: float) -> Sample | None:
        """Return the last sample of ``name`` with a usable quality and a value, ``since <= ts <= at``.

        This is "the reading at time ``at``" that billing takes at a period
        boundary: both bounds are inclusive, so a sample stamped exactly at
        the boundary counts; ``since`` bounds how stale a reading may be.
        None if there is no such sample.  Backends override this with an
        indexed query; the default scans `query_raw`.
        """
        return await scan_at(self.query_raw, name, at, since)

    async def query_at_many(self, names: Sequence[str], at: float, since: float) -> dict[str, Sample | None]:
        """Return `query_at` for each of ``names`` (each name once) at the same ``at`` and ``since``.

        Backends that can answer several tags in one round trip (InfluxDB)
        override this; the default asks one tag at a time.
        """
        return {name: await self.query_at(name, at, since) for name in dict.fromkeys(names)}

    @abc.abstractmethod
    def close(self) -> None:
        """Flush and release the storage."""

    @abc.abstractmethod
    def stats(self) -> dict[str, Any]:
        """Return counters: ``queued``, ``written_total``, ``batches``, ``last_flush_ts`` and more."""


class StoreUnavailable(Exception):
    """The database cannot take a batch now (down, unreachable, overloaded, auth): retry later."""


class StoreRejected(Exception):
    """The database refused a batch for good (malformed, type conflict): retrying cannot help.

    The store-and-forward queue sets such a batch aside in its rejected file
    (never dropping it) and goes on with the next one.
    """


class Store(abc.ABC):
    """A database that takes batches of line-protocol samples and answers history queries.

    The store-and-forward historian (`tags.historian.forward`) owns the
    on-disk queue and hands a store one batch at a time, in queue order;
    a store never queues anything itself.  Batches are the queue's records:
    InfluxDB line protocol as written by `tags.historian.lines.encode`,
    one sample per ``\\n``-terminated line.
    """

    #: Backend name as in ``history.backend``.
    backend: str = ""

    def open(self) -> Deferred[None] | None:
        """Connect, detect the server, create the database if needed.

        Returns None when ready at once, or a Deferred; a failure
        (`StoreUnavailable`) is retried by the caller before the next delivery.
        """
        return None

    @abc.abstractmethod
    def deliver(self, batch: bytes, count: int) -> Deferred[None]:
        """Write ``count`` lines of ``batch``; fire once the database confirmed them.

        Fails with `StoreUnavailable` (keep the batch, retry later) or
        `StoreRejected` (the batch can never be stored).  Writing the same
        line twice must leave one point: (tag, timestamp) is a sample's identity.
        """

    @abc.abstractmethod
    async def query_raw(self, name: str, start: float, end: float, limit: int = 100_000) -> list[Sample]:
        """Return up to ``limit`` samples of tag ``name`` with ``start <= ts < end``, oldest first."""

    @abc.abstractmethod
    async def query_agg(self, name: str, start: float, end: float, every: float) -> list[AggRow]:
        """Aggregate like `Historian.query_agg`."""

    async def query_at(self, name: str, at: float, since: float) -> Sample | None:
        """Return the last usable sample with ``since <= ts <= at``, like `Historian.query_at`.

        The default scans `query_raw`; stores override it with one indexed query.
        """
        return await scan_at(self.query_raw, name, at, since)

    async def query_at_many(self, names: Sequence[str], at: float, since: float) -> dict[str, Sample | None]:
        """Return `query_at` for each of ``names``; like `Historian.query_at_many`."""
        return {name: await self.query_at(name, at, since) for name in dict.fromkeys(names)}

    def close(self) -> None:
        """Release connections and files; the default does nothing."""

    def stats(self) -> dict[str, Any]:
        """Return backend facts for ``/health`` (server version, errors); the default is empty."""
        return {}
