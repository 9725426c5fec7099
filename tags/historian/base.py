# -*- test-case-name: tests.tags.test_historian_sqlite -*-
"""The interface every history backend (SQLite, InfluxDB) implements."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tags.model import Sample


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

    @abc.abstractmethod
    def close(self) -> None:
        """Flush and release the storage."""

    @abc.abstractmethod
    def stats(self) -> dict[str, Any]:
        """Return counters: ``queued``, ``written_total``, ``batches``, ``last_flush_ts`` and more."""
