# -*- test-case-name: tests.channels.modbus.test_archive -*-
"""Back-fill from a Modbus meter's archives, one record at a time, after the current values.

A profile's ``archives:`` describe how the meter serves its records: the
master writes a record index to the archive's index register (0 = the
newest closed record) and reads the record window with function 03, which
holds the time the record closed (u32 Unix seconds) and the values.

:class:`ArchiveReader` is the part of a :class:`~channels.modbus.driver.ModbusDevice`
that decides which record to read next.  A *walk* reads one archive from
index 0 backwards and ends

- at a record not newer than the newest one the archive book has stored
  (or, when the record before it by the interval is, right after storing
  it: a scheduled walk after a boundary reads one record, not two);
- at the archive's depth, or at an empty record (all 0xFFFF);
- after ``lookback`` records for an archive the book has never seen;
- at a record whose time cannot be right (0, 0xFFFFFFFF, in the future
  beyond :data:`CLOCK_SKEW_S`, newer than the records before it in the
  walk), which is counted as an error.

A record whose time equals one already read in this walk means the meter
closed a new record while the walk went on (the indexes moved by one): it
is skipped, and the new record is read by the next scheduled walk.

Only a walk that ended so advances the book, and only once its records
were handed to history: a walk cut short by a failure leaves the book
where it was, and the next walk reads those records again (history keeps
one sample per tag and time, so nothing is doubled).  Walks start on the
first answered poll after start, when the meter answers again after comm
loss, and for each archive once per interval, :func:`settle_time` after
the boundary.  At most ``records_per_poll`` records are read per poll, and
only while the device holds its bus's :class:`~channels.archive.ArchiveTurn`.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from channels.archive import (
    ArchiveBook,
    ArchiveSpec,
    ArchiveTurn,
    Interval,
    floor_boundary,
    interval_seconds,
    interval_text,
    step_boundary,
)
from channels.modbus.framer import READ_HOLDING
from channels.modbus.points import BlockDecoder, DecodeError, PointSpec, ReadBlock, decode_raw
from tags.model import Sample
from tags.quality import Quality

log = logging.getLogger(__name__)

#: How far in the future (by the engine's clock) a record's time may be:
#: meter clocks drift.
CLOCK_SKEW_S = 300.0
#: Longest wait after a boundary before the scheduled walk (meters close
#: their record a moment after the boundary).
SETTLE_MAX_S = 30.0
#: Failed archive polls in a row after which a walk is given up until the next trigger.
MAX_WALK_FAILURES = 3
#: Average month, to turn a look-back duration into monthly records.
_MONTH_S = 30.436875 * 86400


def settle_time(interval: Interval) -> float:
    """Return how long after a boundary its record is read: a tenth of the interval, at most 30 s."""
    seconds = interval_seconds(interval)
    return SETTLE_MAX_S if seconds is None else min(SETTLE_MAX_S, seconds / 10)


@dataclass(frozen=True, slots=True)
class ArchivePlan:
    """One archive of one device, ready for reading.

    ``record`` is the read of the record window, its points tagged
    ``<device>.<point>`` at absolute registers; the timestamp is
    ``ts_at`` bytes into the answer.  ``lookback`` is how many records a
    walk reads when the book has never seen the archive.
    """

    name: str
    interval: Interval
    depth: int
    index_register: int
    record: ReadBlock
    ts_at: int
    ts_word_order: str = "big"
    lookback: int = 48

    @property
    def spec(self) -> ArchiveSpec:
        """Return what the gaps report needs: name, interval, tags."""
        return ArchiveSpec(self.name, self.interval, tuple(p.tag for p in self.record.points))

    def describe(self) -> str:
        """Describe the plan for the start-up log."""
        return (f"archive {self.name} ({interval_text(self.interval)}, {self.depth} records): "
                f"fc06 {self.index_register} + fc03 {self.record.start}+{self.record.count}")


def archive_plans(device: str, archives: Iterable, lookback_s: float) -> list[ArchivePlan]:
    """Build the plans of a profile's ``archives`` (read by attribute) for one device."""
    plans = []
    for archive in archives:
        start = archive.record.register
        points = tuple(PointSpec(f"{device}.{p.name}", READ_HOLDING, start + p.offset, p.type,
                                 getattr(p, "word_order", "big"), getattr(p, "scale", 1.0))
                       for p in archive.points)
        seconds = interval_seconds(archive.interval)
        per = _MONTH_S if seconds is None else seconds
        lookback = max(1, min(archive.depth, math.ceil(lookback_s / per - 1e-9)))
        plans.append(ArchivePlan(archive.name, archive.interval, archive.depth, archive.index_register,
                                 ReadBlock(READ_HOLDING, start, archive.record.count, points),
                                 2 * archive.timestamp.offset, getattr(archive.timestamp, "word_order", "big"),
                                 lookback))
    return plans


@dataclass(frozen=True, slots=True)
class ArchiveStep:
    """The context of an archive transaction: write record ``index`` to the index register, or read the record."""

    kind: str  # "index" or "record"
    plan: ArchivePlan
    index: int


class ArchiveStats:
    """Archive counters of one device, as ``GET /devices`` shows them."""

    __slots__ = ("records", "errors", "walks", "last_backfill", "last_error")

    def __init__(self) -> None:
        self.records = 0
        self.errors = 0
        self.walks = 0
        self.last_backfill: float | None = None
        self.last_error = ""


class _Walk:
    """The state of one walk through one archive."""

    __slots__ = ("plan", "stop_at", "limit", "index", "count", "newest", "prev_ts", "failures", "tainted")

    def __init__(self, plan: ArchivePlan, stop_at: float | None) -> None:
        self.plan = plan
        self.stop_at = stop_at
        self.limit = plan.depth if stop_at is not None else plan.lookback
        self.index = 0
        self.count = 0
        self.newest: float | None = None
        self.prev_ts: float | None = None
        self.failures = 0
        self.tainted = False  # some of its records did not reach history


class ArchiveReader:
    """Decide which archive records a device reads, and hand them on (see the module docstring)."""

    def __init__(self, device: str, plans: Sequence[ArchivePlan], book: ArchiveBook, turn: ArchiveTurn,
                 records_per_poll: int = 4, utc_offset: float = 10800.0) -> None:
        self.device = device
        self.plans = {plan.name: plan for plan in plans}
        self.book = book
        self.turn = turn
        self.records_per_poll = records_per_poll
        self.utc_offset = utc_offset
        self.stats = ArchiveStats()
        self._decoders = {plan.name: BlockDecoder(plan.record) for plan in plans}
        self._pending: deque[str] = deque()
        self._walk: _Walk | None = None
        self._scheduled: dict[str, float] = {}
        # State of the poll in progress.
        self._read = 0
        self._samples: list[Sample] = []
        self._ended: list[tuple[str, float]] = []

    # ------------------------------------------------------------ triggers

    @property
    def has_work(self) -> bool:
        """Tell whether a walk is under way or waiting."""
        return self._walk is not None or bool(self._pending)

    @property
    def pending(self) -> list[str]:
        """Return the archives with a walk under way or waiting, in order."""
        return ([self._walk.plan.name] if self._walk is not None else []) + list(self._pending)

    def trigger(self, now: float) -> None:
        """Walk every archive (start-up, or the meter answers again after comm loss).

        A walk under way starts over: the indexes may have moved on meanwhile.
        """
        self._walk = None
        self._pending = deque(self.plans)
        for plan in self.plans.values():
            # This walk reads whatever closed up to now; a meter slow to
            # close the newest record has it read by the next scheduled walk.
            self._scheduled[plan.name] = floor_boundary(now, plan.interval, self.utc_offset)

    def check_schedule(self, now: float) -> None:
        """Queue a walk of every archive that closed a record since its last walk."""
        for plan in self.plans.values():
            boundary = floor_boundary(now - settle_time(plan.interval), plan.interval, self.utc_offset)
            last = self._scheduled.get(plan.name)
            if last is None or boundary > last:
                if last is not None:
                    self._enqueue(plan.name)
                self._scheduled[plan.name] = boundary

    def _enqueue(self, name: str) -> None:
        if name not in self._pending:
            self._pending.append(name)

    # --------------------------------------------------------------- steps

    def begin(self, now: float) -> ArchiveStep | None:
        """Return the first archive step of a poll whose current values were answered, or None."""
        self._read = 0
        if not self.has_work or self.records_per_poll <= 0:
            return None
        self.turn.request(self)
        return self._next(now)

    def _next(self, now: float) -> ArchiveStep | None:
        if self._read >= self.records_per_poll or not self.turn.may_read(self):
            return None
        walk = self._walk
        if walk is None:
            if not self._pending:
                self.turn.release(self)
                return None
            name = self._pending.popleft()
            walk = self._walk = _Walk(self.plans[name], self.book.newest(self.device, name))
        return ArchiveStep("index", walk.plan, walk.index)

    def index_written(self, step: ArchiveStep) -> ArchiveStep:
        """The meter took the index: read the record."""
        return ArchiveStep("record", step.plan, step.index)

    def failed(self, step: ArchiveStep, detail: str, final: bool) -> None:
        """An archive transaction failed: count it; give the walk up if ``final`` or failing too often.

        ``final`` is for answers that say the meter will never serve this
        (exceptions): the book stays where it was, the next trigger tries again.
        """
        stats = self.stats
        stats.errors += 1
        stats.last_error = f"{step.plan.name} record {step.index}: {detail}"
        walk = self._walk
        if walk is None:
            return
        walk.failures += 1
        if final or walk.failures >= MAX_WALK_FAILURES:
            log.warning("device %s: archive %s walk given up: %s", self.device, walk.plan.name, stats.last_error)
            self._end(commit=False)

    def record_read(self, step: ArchiveStep, data: bytes, now: float) -> ArchiveStep | None:
        """Take the record read at ``step``; return the next step of this poll, or None."""
        walk = self._walk
        self._read += 1
        if walk is None or walk.plan is not step.plan or walk.index != step.index:
            return self._next(now)
        walk.failures = 0
        plan = walk.plan
        if data.count(0xFF) == len(data):
            self._end(commit=True)  # an empty record: the archive has no older ones
            return self._next(now)
        ts = float(decode_raw(data[plan.ts_at:plan.ts_at + 4], "u32", plan.ts_word_order))
        if ts == 0 or ts == 0xFFFFFFFF or ts > now + CLOCK_SKEW_S:
            return self._bad(step, ts, "not a plausible time", now)
        if walk.prev_ts is not None and ts >= walk.prev_ts:
            if ts > walk.newest:
                return self._bad(step, ts, "newer than the records before it", now)
            # The meter closed a record while we walked: this one was read already.
            walk.index += 1
            return self._after_record(walk, now)
        if walk.stop_at is not None and ts <= walk.stop_at:
            self._end(commit=True)  # caught up with the book
            return self._next(now)
        tags_values = self._decoders[plan.name].decode(data, plan.record.start)
        for point, value in zip(plan.record.points, tags_values):
            if isinstance(value, DecodeError):
                self.stats.errors += 1
                self.stats.last_error = f"{plan.name} record {step.index}: {point.tag}: {value}"
                continue
            self._samples.append(Sample(point.tag, value, Quality.BACKFILLED, ts))
        if walk.newest is None:
            walk.newest = ts
        walk.prev_ts = ts
        walk.index += 1
        walk.count += 1
        self.stats.records += 1
        if walk.stop_at is not None and step_boundary(ts, plan.interval, self.utc_offset, -1) <= walk.stop_at:
            self._end(commit=True)  # the record before this one is stored already
            return self._next(now)
        return self._after_record(walk, now)

    def _after_record(self, walk: _Walk, now: float) -> ArchiveStep | None:
        if walk.index >= walk.plan.depth or walk.count >= walk.limit:
            self._end(commit=True)
        return self._next(now)

    def _bad(self, step: ArchiveStep, ts: float, why: str, now: float) -> ArchiveStep | None:
        stats = self.stats
        stats.errors += 1
        stats.last_error = f"{step.plan.name} record {step.index}: time {ts:.0f} is {why}"
        log.warning("device %s: archive walk ends: %s", self.device, stats.last_error)
        self._end(commit=True)
        return self._next(now)

    def _end(self, commit: bool) -> None:
        """End the walk; its newest record goes to the book once this poll's records are in history."""
        walk, self._walk = self._walk, None
        self.stats.walks += 1
        if commit and walk.newest is not None and not walk.tainted:
            self._ended.append((walk.plan.name, walk.newest))
        if self._pending:
            self.turn.pass_on(self)
        else:
            self.turn.release(self)

    # ----------------------------------------------------------- poll end

    def lost(self) -> None:
        """The device did not answer this poll: let another device of the bus read archives."""
        self.turn.release(self)

    def poll_done(self, now: float, on_history: Callable[[list[Sample]], None]) -> None:
        """Hand this poll's records to history, then move the book on for the walks that ended."""
        samples, ended = self._samples, self._ended
        self._samples, self._ended = [], []
        if samples:
            try:
                on_history(samples)
            except Exception as exc:  # noqa: BLE001 - history refusing must not stop polling
                self.stats.errors += 1
                self.stats.last_error = f"history refused {len(samples)} archive samples: {exc}"
                log.error("device %s: %s", self.device, self.stats.last_error)
                if self._walk is not None:
                    self._walk.tainted = True
                return  # the book stays behind: the records are read again next time
            self.stats.last_backfill = now
        if ended:
            for name, ts in ended:
                self.book.stored(self.device, name, ts)
            try:
                self.book.save()
            except Exception as exc:  # noqa: BLE001 - a full disk must not stop polling
                self.stats.errors += 1
                self.stats.last_error = f"archive book not saved: {exc}"
                log.error("device %s: %s", self.device, self.stats.last_error)

    def health(self) -> dict:
        """Return the archive counters for the devices endpoint (times as Unix seconds)."""
        stats = self.stats
        return {"archive_records": stats.records, "archive_errors": stats.errors, "archive_walks": stats.walks,
                "archive_last_error": stats.last_error, "last_backfill": stats.last_backfill,
                "archive_pending": self.pending,
                "archive_newest": {name: self.book.newest(self.device, name) for name in self.plans}}


__all__ = ["ArchivePlan", "ArchiveReader", "ArchiveStep", "ArchiveStats", "archive_plans", "settle_time",
           "CLOCK_SKEW_S"]
