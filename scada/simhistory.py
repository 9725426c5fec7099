# -*- test-case-name: tests.scada.test_simhistory -*-
"""Fill a simulated site's history with months of past samples (``simulate_history:``).

:mod:`channels.sim.history` computes what the simulated meters would have
stored; this module writes it into the site's history database, for
``scada history simulate`` and for a runtime that starts with
``simulate: true`` and a ``simulate_history:`` section.

Writing goes to the store the ``history:`` section names (built by
:func:`scada.history.build_store`, as the runtime builds it) through a
:class:`~tags.historian.forward.ForwardingHistorian` with an in-memory queue
and large batches.  The runtime's own historian queues on disk in small
batches, which guards live readings against a crash; simulated samples can
simply be computed again, and the bulk path writes the demo's 300,000
samples in a third to a half of the time (measured in one run on a busy
2-core machine: 8.5 s through the disk queue in batches of 500, 2.7-4.1 s
here).

Done once, then kept up to date: after a run a marker sample is written,
tag :data:`MARKER_TAG` (a system tag: no device, no ``.``) at the time the
history reaches, with a fingerprint of what was simulated (devices, spans,
gaps) as its value.  The next run reads the newest marker: the same
fingerprint means only the time since then is filled in (nothing at all
when it is recent), a different one (a device added, a span or gap
changed) means everything is written again, which rewrites the same
points, since (tag, timestamp) is a sample's identity.  Gaps only leave out
what a run writes: samples written earlier stay.

The site's archive book is told that the meters' archives are stored up to
the end of the simulated history, so the live drivers' first archive walk
does not fill the simulated gaps back in as ``backfilled``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from twisted.internet import defer, task
from twisted.python.failure import Failure

from channels.sim.history import (
    DEFAULT_DAILY,
    DEFAULT_HOURLY,
    HistorySimulator,
    history_times,
    resolve_gaps,
)
from tags.historian import ForwardingHistorian, MemoryQueue, Store
from tags.model import Sample
from tags.quality import Quality
from tags.timefmt import iso_utc

log = logging.getLogger(__name__)

#: The system tag whose samples mark how far the simulated history reaches (value: the fingerprint).
MARKER_TAG = "simulated_history"
#: Samples the generator hands over at a time; the reactor runs between two batches.
CHUNK = 2000
#: Samples per database transaction / InfluxDB write.
STORE_BATCH = 5000
#: Seconds to wait for the database to take what was written before giving up.
DRAIN_TIMEOUT = 120.0
#: A marker this close to the end of the requested history means there is nothing to add.
UP_TO_DATE_S = 3600.0


@dataclass
class Progress:
    """What a run did so far; the runtime shows it in ``/health`` under ``services``."""

    state: str = "pending"   # pending | running | done | up_to_date | failed | stopped
    samples: int = 0
    tags: set[str] = field(default_factory=set)
    start: float | None = None
    until: float | None = None
    since: float | None = None
    seconds: float = 0.0
    error: str = ""
    archive_marks: int = 0
    began: float | None = None
    #: Fires (with None) once the run ended, however it ended; None for runs not started by `start`.
    finished: Any = None

    def as_dict(self) -> dict[str, Any]:
        """Return the progress for ``/health`` (times ISO 8601 UTC; seconds so far while running)."""
        seconds = self.seconds
        if self.state == "running" and self.began is not None:
            seconds = time.perf_counter() - self.began
        return {"state": self.state, "samples": self.samples, "tags": len(self.tags),
                "from": iso_utc(self.start) if self.start is not None else None,
                "until": iso_utc(self.until) if self.until is not None else None,
                "filled_after": iso_utc(self.since) if self.since is not None else None,
                "seconds": round(seconds, 3), "archive_marks": self.archive_marks, "error": self.error}


class _Borrowed(Store):
    """Another owner's store: everything is passed on except :meth:`close`, which the owner does."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.backend = store.backend

    def open(self):
        """Open through the owner's store (a second ping of InfluxDB, nothing for SQLite)."""
        return self._store.open()

    def deliver(self, batch: bytes, count: int):
        """Deliver through the owner's store."""
        return self._store.deliver(batch, count)

    async def query_raw(self, name: str, start: float, end: float, limit: int = 100_000) -> list[Sample]:
        """Query the owner's store."""
        return await self._store.query_raw(name, start, end, limit)

    async def query_agg(self, name: str, start: float, end: float, every: float):
        """Query the owner's store."""
        return await self._store.query_agg(name, start, end, every)

    def close(self) -> None:
        """Leave the store open: it is not ours."""


def bulk_historian(store: Store, reactor: Any, hist: Any, *, own: bool) -> ForwardingHistorian:
    """Return a historian that writes big batches to ``store`` from memory.

    ``hist`` is the ``history:`` section (flush interval, measurement).
    With ``own`` false the store belongs to someone else (the runtime's
    historian) and closing this historian leaves it open.
    """
    return ForwardingHistorian(store if own else _Borrowed(store), reactor, MemoryQueue(),
                               flush_interval=hist.flush_interval, batch_size=STORE_BATCH,
                               measurement=hist.measurement, backlog_alarm=1 << 40)


async def newest_marker(historian: Any, until: float) -> Sample | None:
    """Return the newest marker sample at or before ``until`` (None if history was never simulated).

    A marker that cannot be read (an InfluxDB database not created yet, a
    store that is down) counts as none: everything is written, which only
    rewrites points that exist, and a store that is really down says so
    when the samples go to it.
    """
    try:
        samples = await historian.query_raw(MARKER_TAG, 0.0, until + 1.0)
    except Exception as exc:  # noqa: BLE001 - see above
        log.info("simulated history: no marker read (%s); writing everything", exc)
        return None
    return samples[-1] if samples else None


async def fill(
    historian: ForwardingHistorian,
    cfg: Any,
    reactor: Any,
    until: float,
    hourly: float = DEFAULT_HOURLY,
    daily: float = DEFAULT_DAILY,
    gaps: Any = None,
    *,
    force: bool = False,
    archive_book: Any = None,
    progress: Progress | None = None,
    stopped: Callable[[], bool] = lambda: False,
) -> Progress:
    """Write the simulated history of ``cfg`` up to ``until`` into ``historian``; return what was done.

    The reactor runs between two chunks of :data:`CHUNK` samples, so a
    running site keeps polling and answering while this goes on.  Unless
    ``force``, what an earlier run with the same settings wrote is skipped
    (see the module docstring).  ``archive_book`` (the site's) is told the
    meters' archives are stored up to ``until``.  ``stopped()`` true ends
    the run early (no marker is written then).
    """
    progress = progress if progress is not None else Progress()
    began = progress.began = time.perf_counter()
    progress.state = "running"
    tz = cfg.site.timezone
    simulator = HistorySimulator(cfg, resolve_gaps(gaps, until, tz))
    times = history_times(until, hourly, daily, tz)
    progress.until = until
    progress.start = times[0] if times else until
    fingerprint = simulator.fingerprint(hourly, daily, gaps)
    if archive_book is not None:
        marks = simulator.archive_marks(until)
        for device, archives in marks.items():
            for archive, when in archives.items():
                archive_book.stored(device, archive, when)
        archive_book.save()
        progress.archive_marks = sum(len(a) for a in marks.values())
    since = None
    if not force:
        marker = await newest_marker(historian, until)
        if marker is not None and marker.value == float(fingerprint):
            since = marker.ts
            progress.since = since
            if since >= until - UP_TO_DATE_S:
                progress.state = "up_to_date"
                progress.seconds = time.perf_counter() - began
                return progress
    for batch in simulator.batches(times, CHUNK, since):
        if stopped():
            progress.state = "stopped"
            progress.seconds = time.perf_counter() - began
            return progress
        historian.write(batch)
        progress.samples += len(batch)
        progress.tags.update(s.name for s in batch)
        if historian.backlog > 4 * STORE_BATCH:
            await _drain(historian)
        # Let the reactor poll, answer the API and flush between chunks.
        await task.deferLater(reactor, 0, lambda: None)
    historian.write([Sample(MARKER_TAG, float(fingerprint), Quality.GOOD, until)])
    await _drain(historian)
    progress.state = "done"
    progress.seconds = time.perf_counter() - began
    return progress


async def _drain(historian: ForwardingHistorian) -> None:
    """Wait until the database took everything written; raise naming the store's error if it does not."""
    if not await historian.drain(timeout=DRAIN_TIMEOUT):
        error = historian.stats().get("last_error") or f"nothing confirmed within {DRAIN_TIMEOUT:g} s"
        raise RuntimeError(f"the history database did not take the simulated samples: {error}")


def start(runtime: Any) -> Progress | None:
    """Fill the history of a simulated site in the background; return its progress (None: nothing to do).

    Called by the runtime after its historian started and before its
    channels start (the archive book is marked first, synchronously).  The
    job runs in chunks on the reactor, so the API answers at once; its
    state is in ``/health`` under ``services`` → ``simulated history``.
    """
    cfg = runtime.cfg
    settings = getattr(cfg, "simulate_history", None)
    if not cfg.simulate or settings is None:
        return None
    reactor = runtime.reactor
    progress = Progress()
    historian = bulk_historian(runtime.historian.store, reactor, cfg.history, own=False)
    historian.start()
    stop_flag = {"stopped": False}

    def finished(_: Any) -> None:
        try:
            historian.close()
        except Exception as exc:  # noqa: BLE001 - the samples are simulated: log and go on
            log.warning("simulated history: %s", exc)

    def done(p: Progress) -> None:
        if p.state == "done":
            log.info("simulated history: %d samples of %d tags from %s to %s in %.1f s", p.samples, len(p.tags),
                     iso_utc(p.start), iso_utc(p.until), p.seconds)
        elif p.state == "up_to_date":
            log.info("simulated history: already there up to %s", iso_utc(p.since))

    def failed(failure) -> None:
        progress.state = "failed"
        progress.error = failure.getErrorMessage()
        log.error("simulated history not written: %s", progress.error)

    d = defer.Deferred.fromCoroutine(fill(
        historian, cfg, reactor, reactor.seconds(), settings.hourly, settings.daily, settings.gaps,
        archive_book=runtime.archive_book, progress=progress, stopped=lambda: stop_flag["stopped"]))
    d.addCallbacks(done, failed)
    d.addBoth(finished)
    progress.finished = d

    def stop() -> None:
        stop_flag["stopped"] = True

    runtime.services.add("simulated history", stop, progress.as_dict)
    return progress


def run_cli(cfg: Any, base: Path, until: float, hourly: float, daily: float, force: bool,
            out: Callable[[str], None]) -> int:
    """Implement ``scada history simulate``: write, print what was written, return the exit status."""
    from scada.app import install_reactor

    reactor, _loop = install_reactor()
    from scada.archives import DEFAULT_PATH, FileArchiveBook
    from scada.history import build_store

    settings = getattr(cfg, "simulate_history", None)
    gaps = settings.gaps if settings is not None else None
    result: dict[str, Any] = {}

    async def job() -> None:
        store = build_store(cfg.history, reactor, base)
        historian = bulk_historian(store, reactor, cfg.history, own=True)
        historian.start()
        try:
            result["progress"] = await fill(historian, cfg, reactor, until, hourly, daily, gaps, force=force,
                                            archive_book=FileArchiveBook(base / DEFAULT_PATH))
        finally:
            historian.close()

    def ended(outcome: Any) -> None:
        if isinstance(outcome, Failure):
            result["error"] = outcome.getErrorMessage()
        reactor.stop()

    def begin() -> None:
        defer.Deferred.fromCoroutine(job()).addBoth(ended)

    reactor.callWhenRunning(begin)
    reactor.run(installSignalHandlers=False)
    if "error" in result:
        out(f"error: {result['error']}")
        return 1
    p: Progress = result["progress"]
    where = cfg.history.path if cfg.history.backend == "sqlite" else cfg.history.url
    if p.state == "up_to_date":
        out(f"history of {cfg.site.name!r} is simulated up to {iso_utc(p.since)} already; nothing written "
            f"(--force writes it again)")
        return 0
    span = f"{iso_utc(p.since if p.since is not None else p.start)} .. {iso_utc(p.until)}"
    out(f"wrote {p.samples} samples of {len(p.tags)} tags, {span}, into {cfg.history.backend} {where} "
        f"in {p.seconds:.1f} s")
    return 0
