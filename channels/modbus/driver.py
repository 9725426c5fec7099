# -*- test-case-name: tests.channels.modbus.test_driver -*-
"""A Modbus device as a poller of the bus scheduler: requests out, samples in.

Each device turns its profile into a fixed request plan once, at start-up
(requests are pre-encoded bytes), and turns every poll's answers into
:class:`~tags.model.Sample` objects with a quality.  A failed read never
raises: its points get the quality that says why (DESIGN rule 5).

A device whose profile has ``archives`` reads archive records after its
current values, a few per poll (:mod:`channels.modbus.archive`), and hands
them to ``on_history`` with quality ``backfilled`` at their own times.
"""

from __future__ import annotations

import itertools
import logging
import struct
from typing import Callable, Sequence

from channels.archive import ArchiveBook, ArchiveSpec, ArchiveTurn, MemoryArchiveBook
from channels.bus import Outcome, Transaction, count_attempt
from channels.modbus import framer
from channels.modbus.archive import ArchivePlan, ArchiveReader, ArchiveStep
from channels.modbus.points import BlockDecoder, DecodeError, PointSpec, ReadBlock
from tags.model import Sample
from tags.quality import Quality

log = logging.getLogger(__name__)

_OUTCOME_QUALITY = {
    Outcome.TIMEOUT: Quality.TIMEOUT,
    Outcome.CRC_ERROR: Quality.CRC_ERROR,
    Outcome.EXCEPTION: Quality.EXCEPTION,
    Outcome.LINK_DOWN: Quality.COMM_LOSS,
}
#: Modbus TCP transaction ids, shared by all devices so that ids on one
#: connection never repeat within 65536 requests.
_TIDS = itertools.count(1)
#: Exceptions that mean "ask again later" rather than "this will never work".
_RETRYABLE_EXCEPTIONS = frozenset({0x05, 0x06})


class DeviceStats:
    """Communication counters of one device, as ``GET /devices`` shows them."""

    __slots__ = ("requests", "responses", "timeouts", "crc_errors", "exceptions", "decode_errors",
                 "polls", "failed_polls", "last_good", "last_error", "last_exception")

    def __init__(self) -> None:
        self.requests = 0
        self.responses = 0
        self.timeouts = 0
        self.crc_errors = 0
        self.exceptions = 0
        self.decode_errors = 0
        self.polls = 0
        self.failed_polls = 0
        self.last_good: float | None = None
        self.last_error = ""
        self.last_exception = ""

    def as_dict(self) -> dict:
        """Return the counters as a plain dict."""
        return {name: getattr(self, name) for name in self.__slots__}


class ModbusDevice:
    """Poll one Modbus slave on a bus.

    ``framing`` is ``rtu`` (serial line or a transparent TCP gateway) or
    ``mbap`` (Modbus TCP).  ``comm_loss_after`` consecutive polls without a
    single answer turn every tag of the device to ``comm_loss``; the first
    answer brings them back.  ``state`` is ``not_yet_read``, ``ok``,
    ``degraded`` (answers, but not every point is good), ``failing`` (no
    answer, not yet comm loss) or ``comm_loss``.

    ``archives`` (with ``on_history``) are read after the current values:
    at most ``archive_records_per_poll`` records per poll while the device
    holds ``archive_turn`` (one per bus); ``archive_book`` remembers what
    is stored.  ``utc_offset`` (standard time of the site) places the
    boundaries of daily and monthly archives.
    """

    def __init__(
        self,
        name: str,
        unit: int,
        blocks: Sequence[ReadBlock],
        period: float,
        on_samples: Callable[[list[Sample]], None],
        *,
        timeout_for: Callable[[ReadBlock], float],
        framing: str = "rtu",
        comm_loss_after: int = 3,
        wire_bytes_for: Callable[[ReadBlock], int] | None = None,
        archives: Sequence[ArchivePlan] = (),
        on_history: Callable[[list[Sample]], None] | None = None,
        archive_book: ArchiveBook | None = None,
        archive_turn: ArchiveTurn | None = None,
        archive_records_per_poll: int = 4,
        utc_offset: float = 10800.0,
    ) -> None:
        self.name = name
        self.unit = unit
        self.period = period
        self.next_due = 0.0
        self.blocks = list(blocks)
        self.comm_loss_after = comm_loss_after
        self.stats = DeviceStats()
        self.state = "not_yet_read"
        self.consecutive_failures = 0
        self._on_samples = on_samples
        self._answered = False
        self._all_good = True
        self._samples: list[Sample] = []
        self.tags = [p.tag for b in self.blocks for p in b.points]
        self._framing = framing
        self._timeout_for = timeout_for
        self.transactions = [self._transaction(i, b, framing, timeout_for, wire_bytes_for)
                             for i, b in enumerate(self.blocks)]
        self._decoders = {id(b): BlockDecoder(b) for b in self.blocks}
        self.archive_plans = list(archives)
        self.archive_book = archive_book if archive_book is not None else MemoryArchiveBook()
        self._on_history = on_history
        #: The archive reader, None when the device reads no archives.
        self.archive: ArchiveReader | None = None
        if self.archive_plans and on_history is not None and archive_records_per_poll > 0:
            self.archive = ArchiveReader(name, self.archive_plans, self.archive_book,
                                         archive_turn if archive_turn is not None else ArchiveTurn(),
                                         archive_records_per_poll, utc_offset)
        self._archive_started = False
        self._queue: list[Transaction] = self.transactions

    def _transaction(self, index, block, framing, timeout_for, wire_bytes_for) -> Transaction:
        unit, function, count = self.unit, block.function, block.count
        rtu = framer.encode_read(unit, function, block.start, count)
        wire = wire_bytes_for(block) if wire_bytes_for else len(rtu) + framer.expected_response_size(function, count)
        return self._make_tx(rtu, function, count, timeout_for(block), wire, block, framing)

    def _make_tx(self, rtu: bytes, function: int, count: int, timeout: float, wire: int, context,
                 framing: str) -> Transaction:
        """Return the transaction of RTU request ``rtu`` in the device's framing."""
        unit = self.unit
        if framing == "rtu":
            def decode(buf, _u=unit, _f=function, _c=count):
                return framer.decode_response(buf, _u, _f, _c)
            request = rtu
        elif framing == "mbap":
            # Every attempt gets a new transaction id and only an answer with
            # the current one counts: a queuing gateway's late answer to an
            # earlier attempt would otherwise be taken, and every answer after
            # it would be matched one request late.
            current = [0]
            body = rtu[:-2]

            def renew(_cur=current, _body=body):
                tid = _cur[0] = next(_TIDS) & 0xFFFF
                return struct.pack(">HHH", tid, 0, len(_body)) + _body

            def decode(buf, _u=unit, _f=function, _c=count, _cur=current):
                consumed, frame = framer.decode_mbap(buf)
                if frame is None or isinstance(frame, framer.CorruptFrame):
                    return consumed, frame
                if frame[0] != _cur[0]:
                    return consumed, None  # an answer to an earlier, timed-out request
                _, inner = framer.decode_response(frame[1], _u, _f, _c)
                return consumed, inner if inner is not None else framer.CorruptFrame("bad PDU", frame[1])
            return Transaction(framer.rtu_to_mbap(rtu, 0), decode, timeout, wire, context, renew)
        else:
            raise ValueError(f"unknown framing {framing!r}")
        return Transaction(request, decode, timeout, wire, context)

    def _archive_tx(self, step: ArchiveStep) -> Transaction:
        """Return the transaction of one archive step: write the record index, or read the record."""
        plan = step.plan
        if step.kind == "index":
            block = ReadBlock(framer.WRITE_SINGLE, plan.index_register, 1, ())
            rtu = framer.encode_write_single(self.unit, plan.index_register, step.index)
        else:
            block = plan.record
            rtu = framer.encode_read(self.unit, block.function, block.start, block.count)
        wire = len(rtu) + framer.expected_response_size(block.function, block.count)
        return self._make_tx(rtu, block.function, block.count, self._timeout_for(block), wire, step,
                             self._framing)

    def plan_lines(self) -> list[str]:
        """Describe the request plan for the start-up log."""
        return [f"fc{b.function:02d} {b.start}+{b.count} ({len(b.points)} points)" for b in self.blocks]

    def archive_specs(self) -> list[ArchiveSpec]:
        """Return the device's archives (name, interval, tags) for the gaps report."""
        return [plan.spec for plan in self.archive_plans]

    # ------------------------------------------------------ poller API

    def begin_poll(self, now: float) -> Sequence[Transaction]:
        """Start a poll: the same pre-built transactions every time."""
        self._answered = False
        self._all_good = True
        self._samples = []
        self.stats.polls += 1
        if self.archive is None:
            return self.transactions
        # A copy: archive steps are appended while the poll runs.
        self._queue = list(self.transactions)
        return self._queue

    def classify(self, frame) -> Outcome:
        """Map a decoded frame to an outcome."""
        if isinstance(frame, framer.ReadResponse):
            return Outcome.OK
        if isinstance(frame, framer.ExceptionResponse):
            return Outcome.EXCEPTION
        if isinstance(frame, framer.WriteResponse):
            return Outcome.OK
        return Outcome.CRC_ERROR

    def retry_exception(self, frame) -> bool:
        """Retry only 'acknowledge' and 'busy' exceptions."""
        return frame.code in _RETRYABLE_EXCEPTIONS

    def transaction_attempt(self, tx: Transaction, outcome: Outcome) -> None:
        """Count one request and what became of it."""
        count_attempt(self.stats, outcome)

    def transaction_done(self, tx: Transaction, outcome: Outcome, frame, now: float) -> None:
        """Turn the final result of one request into samples."""
        block: ReadBlock = tx.context
        if block.__class__ is ArchiveStep:
            self._archive_done(block, outcome, frame, now)
            return
        samples = self._samples
        if outcome is Outcome.OK:
            self._answered = True
            good = Quality.GOOD
            for point, value in zip(block.points, self._decoders[id(block)].decode(frame.data, block.start)):
                if isinstance(value, DecodeError):
                    self._all_good = False
                    self.stats.decode_errors += 1
                    self.stats.last_error = f"{point.tag}: {value}"
                    samples.append(Sample(point.tag, None, Quality.DECODE_FAILED, now))
                else:
                    samples.append(Sample(point.tag, value, good, now))
        else:
            self._all_good = False
            if outcome is Outcome.EXCEPTION:
                self._answered = True
                self.stats.last_exception = f"fc{block.function:02d} {block.start}+{block.count}: {frame.name}"
                self.stats.last_error = self.stats.last_exception
            else:
                self.stats.last_error = f"fc{block.function:02d} {block.start}+{block.count}: {outcome.value}"
            quality = _OUTCOME_QUALITY[outcome]
            samples.extend(Sample(point.tag, None, quality, now) for point in block.points)
        if self.archive is not None and tx is self.transactions[-1]:
            self._after_live(now)

    def _after_live(self, now: float) -> None:
        """After the current values: start archive walks that are due and queue the first archive step."""
        if not self._answered:
            return
        reader = self.archive
        if not self._archive_started:
            self._archive_started = True
            reader.trigger(now)
        elif self.state == "comm_loss":
            reader.trigger(now)
        else:
            reader.check_schedule(now)
        step = reader.begin(now)
        if step is not None:
            self._queue.append(self._archive_tx(step))

    def _archive_done(self, step: ArchiveStep, outcome: Outcome, frame, now: float) -> None:
        """Take the result of an archive transaction; queue the next step of this poll, if any."""
        reader = self.archive
        following = None
        if outcome is Outcome.OK and step.kind == "index":
            if frame.address == step.plan.index_register and frame.value == step.index:
                following = reader.index_written(step)
            else:
                reader.failed(step, f"write echoed register {frame.address} value {frame.value}", final=False)
        elif outcome is Outcome.OK:
            following = reader.record_read(step, frame.data, now)
        elif outcome is Outcome.EXCEPTION:
            what = "index write" if step.kind == "index" else "record read"
            reader.failed(step, f"{what}: {frame.name}", final=True)
        else:
            reader.failed(step, outcome.value, final=False)
        if following is not None:
            self._queue.append(self._archive_tx(following))

    def poll_done(self, now: float) -> None:
        """Update the communication state and publish the poll's samples."""
        samples = self._samples
        if self._answered:
            if self.state == "comm_loss":
                log.info("device %s answers again after %d failed polls", self.name, self.consecutive_failures)
            self.consecutive_failures = 0
            # Answering, but not every point came back good (exceptions, a
            # value that does not decode, one request of several timing
            # out): the meter is reachable and something else is wrong,
            # often a profile that does not match its firmware.
            self.state = "ok" if self._all_good else "degraded"
            if self._all_good:
                self.stats.last_good = now
        else:
            self.stats.failed_polls += 1
            self.consecutive_failures += 1
            link_down = any(s.quality is Quality.COMM_LOSS for s in samples)
            if self.consecutive_failures >= self.comm_loss_after or link_down:
                if self.state != "comm_loss":
                    log.warning("device %s: communication lost (%s)", self.name, self.stats.last_error or "link down")
                self.state = "comm_loss"
                samples = [Sample(s.name, None, Quality.COMM_LOSS, s.ts) for s in samples]
            else:
                self.state = "failing"
        self._samples = []
        self._on_samples(samples)
        if self.archive is not None:
            if not self._answered:
                self.archive.lost()
            self.archive.poll_done(now, self._on_history)

    def health(self) -> dict:
        """Return state and counters for the devices endpoint.

        A device with archives adds ``archive_records`` (records back-filled),
        ``archive_errors``, ``archive_walks``, ``archive_last_error``,
        ``last_backfill``, ``archive_pending`` and ``archive_newest`` (per
        archive, the newest record stored, Unix seconds).
        """
        health = {"name": self.name, "address": self.unit, "state": self.state,
                  "consecutive_failures": self.consecutive_failures, "poll_s": self.period,
                  "requests_per_poll": len(self.transactions), **self.stats.as_dict()}
        if self.archive is not None:
            health.update(self.archive.health())
        elif self.archive_plans:
            health.update({"archive_records": 0, "archive_errors": 0, "archive_walks": 0, "archive_last_error": "",
                           "last_backfill": None, "archive_pending": [],
                           "archive_newest": {p.name: self.archive_book.newest(self.name, p.name)
                                              for p in self.archive_plans}})
        return health


def point_specs(device_name: str, points) -> list[PointSpec]:
    """Build point specs (tag ``<device>.<point>``) from profile points (duck-typed)."""
    return [PointSpec(f"{device_name}.{p.name}", framer.FUNCTIONS[p.function], p.register, p.type,
                      p.word_order, p.scale, p.offset) for p in points]
