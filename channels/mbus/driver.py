# -*- test-case-name: tests.channels.mbus.test_driver -*-
"""An M-Bus meter as a poller of the bus scheduler.

One poll of a meter (EN 13757-2, protocols.md §1.1-1.2):

- after start-up or a failed poll, a link reset: ``SND_NKE`` to the primary
  address (the meter clears its frame count bit and answers ``E5``); a meter
  addressed by secondary address is selected, reset with ``SND_NKE`` to 253
  (which also deselects it) and selected again;
- for a secondary address, a select (``SND_UD`` CI 52 to 253, answered ``E5``);
- ``REQ_UD2`` with the frame count bit (FCB).  A good answer toggles FCB; a
  retry after a bad or missing one repeats it unchanged, so the meter
  repeats its telegram instead of moving on.  While a telegram ends with
  DIF ``1F`` ("more records follow"), another ``REQ_UD2`` with the toggled
  FCB fetches the next one, up to ``max_telegrams``.

The scheduler retries each step; if a step still fails the rest of the poll
is dropped, every tag of the meter gets the failure's quality and the next
poll starts with a reset.  Answers are decoded with
:mod:`channels.mbus.telegram`; what is in them becomes samples through a
:class:`~channels.mbus.mapping.RecordMapper`.

Archive records (storage numbers with dates) go to ``on_history`` with
quality ``backfilled`` when they are newer than what the archive book has
stored for their archive (:func:`~channels.mbus.mapping.archive_of` names
it by the date); the book moves on after a complete read, so a restart
neither writes them again nor loses those that came meanwhile.
"""

from __future__ import annotations

import logging
from typing import Callable

from channels.archive import ArchiveBook, ArchiveSpec, MemoryArchiveBook
from channels.bus import Outcome, Transaction, count_attempt
from channels.mbus import link
from channels.mbus.mapping import ARCHIVE_INTERVALS, RecordMapper, archive_of
from channels.mbus.telegram import MBusDecodeError, decode_user_data
from tags.model import Sample, TagDef
from tags.quality import Quality

log = logging.getLogger(__name__)

_OUTCOME_QUALITY = {
    Outcome.TIMEOUT: Quality.TIMEOUT,
    Outcome.CRC_ERROR: Quality.CRC_ERROR,
    Outcome.LINK_DOWN: Quality.COMM_LOSS,
}


class MBusStats:
    """Communication counters of one meter, as ``GET /devices`` shows them."""

    __slots__ = ("requests", "responses", "timeouts", "crc_errors", "exceptions", "decode_errors",
                 "polls", "failed_polls", "telegrams", "resets", "last_good", "last_error", "last_exception")

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)
        self.last_good: float | None = None
        self.last_error = ""
        self.last_exception = ""

    def as_dict(self) -> dict:
        """Return the counters as a plain dict."""
        return {name: getattr(self, name) for name in self.__slots__}


class Timing:
    """Response timing of one channel: the answer must start within ``first_byte``
    seconds of the request's end and be complete ``rest`` seconds after its first byte."""

    def __init__(self, baud: int, allowance: float) -> None:
        self.baud = baud
        self.allowance = allowance
        self.rest = link.frame_time(link.MAX_FRAME, baud) + allowance

    def timeout(self, request: bytes) -> float:
        """Return the first-byte timeout of ``request`` (its own wire time included)."""
        return link.frame_time(len(request), self.baud) + link.response_window(self.baud) + self.allowance


class MBusDevice:
    """Poll one M-Bus meter by primary address or secondary address (``secondary``: 8 mask bytes).

    ``on_samples`` takes live samples, ``on_history`` archive samples (meter
    archive records at their own dates), ``on_define`` tag definitions that
    appear only once the meter has answered (automatic mapping, the clock).
    ``archive_book`` remembers the newest archive record stored.
    """

    def __init__(
        self,
        name: str,
        *,
        primary: int | None,
        secondary: bytes | None,
        period: float,
        mapper: RecordMapper,
        timing: Timing,
        on_samples: Callable[[list[Sample]], None],
        on_history: Callable[[list[Sample]], None],
        on_define: Callable[[TagDef], None],
        comm_loss_after: int = 3,
        max_telegrams: int = 16,
        archive_book: ArchiveBook | None = None,
    ) -> None:
        if (primary is None) == (secondary is None):
            raise ValueError(f"device {name!r}: give a primary or a secondary address, not both or neither")
        self.name = name
        self.primary = primary
        self.secondary = secondary
        self.period = period
        self.next_due = 0.0
        self.mapper = mapper
        self.timing = timing
        self.comm_loss_after = comm_loss_after
        self.max_telegrams = max_telegrams
        self._on_samples = on_samples
        self._on_history = on_history
        self._on_define = on_define
        self.stats = MBusStats()
        self.state = "not_yet_read"
        self.consecutive_failures = 0
        self.fcb = True
        self.need_reset = True
        self.header = None
        self.clock_drift_s: float | None = None
        self.tags: list[str] = [f"{name}.status"] + [rule.tag for rule in mapper.rules or ()]
        self._defined = set(self.tags)
        self.archive_book = archive_book if archive_book is not None else MemoryArchiveBook()
        #: Tags seen in each archive (by name), for the gaps report.
        self._archive_tags: dict[str, set[str]] = {}
        self.archive_records = 0
        self.archive_errors = 0
        self.archive_last_error = ""
        self.last_backfill: float | None = None
        self._address = link.ADDR_SELECTED if secondary is not None else primary
        # Per-poll state.
        self._queue: list[Transaction] = []
        self._records: list = []
        self._telegrams = 0
        self._failure: Outcome | None = None
        self._error_report = ""
        self._decode_failed = False
        self._status: int | None = None
        self._done = 0              # steps of this poll finished
        self._mismatch = ""         # why the last answer was not the one expected

    # ------------------------------------------------------------ requests

    def _tx(self, kind: str, request: bytes) -> Transaction:
        return Transaction(request, link.decode_stream, self.timing.timeout(request), context=kind,
                           rx_time=self.timing.rest)

    def _read(self) -> Transaction:
        return self._tx("read", link.req_ud2(self._address, self.fcb))

    def _select(self) -> Transaction:
        return self._tx("select", link.select(self.secondary))

    def address_text(self) -> str:
        """Return the address as configured: a primary number or the secondary mask."""
        if self.secondary is None:
            return str(self.primary)
        return link.secondary_text(self.secondary)

    # ---------------------------------------------------------- poller API

    def begin_poll(self, now: float) -> list[Transaction]:
        """Start a poll: reset if needed, select if secondary, read the first telegram."""
        self.stats.polls += 1
        self._records = []
        self._telegrams = 0
        self._failure = None
        self._error_report = ""
        self._decode_failed = False
        self._status = None
        self._done = 0
        self._mismatch = ""
        queue: list[Transaction] = []
        if self.secondary is not None:
            queue.append(self._select())
        if self.need_reset:
            self.stats.resets += 1
            queue.append(self._tx("reset", link.snd_nke(self._address)))
            if self.secondary is not None:
                queue.append(self._select())
            self.fcb = True
        queue.append(self._read())
        self._queue = queue
        return queue

    def classify(self, frame) -> Outcome:
        """Map a frame to an outcome: anything but the answer the step expects is a checksum error.

        A garbled frame (collision, noise), an ``E5`` where telegram data was
        asked for, or an answer from another primary address all get
        retried by the scheduler.
        """
        if isinstance(frame, link.Garbled):
            self._mismatch = f"garbled answer ({frame.reason})"
            return Outcome.CRC_ERROR
        kind = self._queue[self._done].context
        if kind != "read":
            if frame.kind == "ack":
                return Outcome.OK
            self._mismatch = f"{frame.kind} frame instead of E5"
        elif not frame.is_rsp_ud:
            self._mismatch = f"{frame.kind} frame instead of RSP_UD"
        elif self.secondary is None and frame.a != self.primary:
            self._mismatch = f"answer from address {frame.a}"
        else:
            return Outcome.OK
        return Outcome.CRC_ERROR

    def retry_exception(self, frame) -> bool:
        """Never called: M-Bus has no exception answers at the link layer."""
        return False

    def transaction_attempt(self, tx: Transaction, outcome: Outcome) -> None:
        """Count one request and what became of it."""
        count_attempt(self.stats, outcome)

    def transaction_done(self, tx: Transaction, outcome: Outcome, frame, now: float) -> None:
        """Take one step's result: go on, fetch the next telegram, or drop the rest of the poll."""
        kind = tx.context
        self._done += 1
        if outcome is not Outcome.OK:
            self._failure = outcome
            detail = self._mismatch if outcome is Outcome.CRC_ERROR and self._mismatch else outcome.value
            self.stats.last_error = f"{kind}: {detail}"
            self.need_reset = True
            del self._queue[self._done:]
            return
        self._mismatch = ""
        if kind == "reset":
            self.need_reset = False
        elif kind == "read":
            self._take_telegram(frame)

    def _take_telegram(self, frame: link.Frame) -> None:
        # A good answer: the next request carries the toggled FCB, retry or not.
        self.fcb = not self.fcb
        self._telegrams += 1
        self.stats.telegrams += 1
        try:
            telegram = decode_user_data(frame.ci, frame.data, frame.data_offset)
        except MBusDecodeError as exc:
            self._decode_failed = True
            self.stats.decode_errors += 1
            self.stats.last_error = f"telegram {self._telegrams}: {exc}"
            return
        if telegram.error is not None:
            self._error_report = telegram.error
            self.stats.exceptions += 1
            self.stats.last_exception = self.stats.last_error = telegram.error
            return
        header = telegram.header
        if header is not None:
            if self._status is None:
                self._status = header.status
            if getattr(header, "id", ""):
                self.header = header
        self._records.extend(telegram.records)
        if telegram.more_follows:
            if self._telegrams < self.max_telegrams:
                self._queue.append(self._read())
            else:
                self.stats.last_error = f"more than {self.max_telegrams} telegrams; the rest is not read"

    def poll_done(self, now: float) -> None:
        """Publish the poll's samples and update the communication state."""
        name = self.name
        if self._failure is not None and not self._records:
            self._fail(now)
            return
        samples: list[Sample] = []
        mapped = self.mapper.map(self._records)
        good = Quality.GOOD
        for tag, value, unit in mapped.live:
            self._define(tag, unit)
            samples.append(Sample(tag, value, good, now))
        if self._status is not None:
            samples.append(Sample(f"{name}.status", float(self._status), good, now))
        if mapped.clock is not None:
            tag = f"{name}.clock_drift_s"
            self._define(tag, "s")
            self.clock_drift_s = round(mapped.clock - now, 1)
            samples.append(Sample(tag, self.clock_drift_s, good, now))
        if self._error_report:
            quality = Quality.EXCEPTION
        elif self._decode_failed or self._failure is not None:
            quality = Quality.DECODE_FAILED if self._decode_failed else _OUTCOME_QUALITY[self._failure]
        else:
            quality = None
        reported = {s.name for s in samples}
        missing = list(mapped.missing)
        if quality is not None:
            missing += [t for t in self.tags if t not in reported and t not in missing]
        for tag in missing:
            samples.append(Sample(tag, None, quality or Quality.DECODE_FAILED, now))
        self.state = "ok" if not missing and quality is None else "degraded"
        if self.state == "ok":
            self.stats.last_good = now
        if self.consecutive_failures >= self.comm_loss_after:
            log.info("device %s answers again after %d failed polls", name, self.consecutive_failures)
        self.consecutive_failures = 0
        history, newest = self._new_history(mapped.history)
        self._on_samples(samples)
        complete = self._failure is None and not self._decode_failed and not self._error_report
        self._hand_on_history(history, newest, complete=complete, now=now)

    def _hand_on_history(self, history: list[Sample], newest: dict[str, float], complete: bool, now: float) -> None:
        """Write new archive samples; after a complete read move the book on to the newest record per archive.

        A read cut short may lack the older records of an archive, so the
        book waits for a complete one; the samples written meanwhile are
        written again then, which history takes as the same samples.
        """
        if history:
            try:
                self._on_history(history)
            except Exception as exc:  # noqa: BLE001 - history refusing must not stop polling
                self.archive_errors += 1
                self.archive_last_error = f"history refused {len(history)} archive samples: {exc}"
                log.error("device %s: %s", self.name, self.archive_last_error)
                return
            self.archive_records += len(history)
            self.last_backfill = now
        if not complete:
            return
        book, moved = self.archive_book, False
        for archive, when in newest.items():
            stored = book.newest(self.name, archive)
            if stored is None or when > stored:
                book.stored(self.name, archive, when)
                moved = True
        if moved:
            try:
                book.save()
            except Exception as exc:  # noqa: BLE001 - a full disk must not stop polling
                self.archive_errors += 1
                self.archive_last_error = f"archive book not saved: {exc}"
                log.error("device %s: %s", self.name, self.archive_last_error)

    def _fail(self, now: float) -> None:
        self.stats.failed_polls += 1
        self.consecutive_failures += 1
        failure = self._failure
        if failure is Outcome.LINK_DOWN or self.consecutive_failures >= self.comm_loss_after:
            if self.state != "comm_loss":
                log.warning("device %s: communication lost (%s)", self.name, self.stats.last_error or "link down")
            self.state = "comm_loss"
            quality = Quality.COMM_LOSS
        else:
            self.state = "failing"
            quality = _OUTCOME_QUALITY[failure]
        self._on_samples([Sample(tag, None, quality, now) for tag in self.tags])

    def _define(self, tag: str, unit: str) -> None:
        if tag not in self._defined:
            self._defined.add(tag)
            self.tags.append(tag)
            self._on_define(TagDef(tag, unit, 0.0, self.name, "M-Bus record (automatic)"))

    def _new_history(self, history) -> tuple[list[Sample], dict[str, float]]:
        """Return the archive samples newer than the book's entry of their archive, and the newest date per archive.

        A meter repeats its whole archive in every read; what the book has
        stored was handed on before (in this run or an earlier one).
        """
        fresh = []
        newest: dict[str, float] = {}
        book, name, tz = self.archive_book, self.name, self.mapper.tz
        stored: dict[str, float | None] = {}
        for tag, value, when in history:
            archive = archive_of(when, tz)
            self._archive_tags.setdefault(archive, set()).add(tag)
            if archive not in stored:
                stored[archive] = book.newest(name, archive)
            last = stored[archive]
            if last is None or when > last:
                fresh.append((tag, value, when))
            if when > newest.get(archive, float("-inf")):
                newest[archive] = when
        samples = [Sample(tag, value, Quality.BACKFILLED, when)
                   for tag, value, when in sorted(fresh, key=lambda h: h[2])]
        return samples, newest

    def archive_specs(self) -> list[ArchiveSpec]:
        """Return the archives seen in the meter's answers or known to the book, for the gaps report.

        Their tags are those seen with archive dates; before the first read
        of this run, the profile's storage-0 tags.
        """
        names = set(self._archive_tags) | set(self.archive_book.archives(self.name))
        fallback = sorted(rule.tag for rule in self.mapper.rules or () if rule.storage == 0)
        order = list(ARCHIVE_INTERVALS)
        specs = []
        for archive in sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n)):
            tags = sorted(self._archive_tags.get(archive, ())) or fallback
            specs.append(ArchiveSpec(archive, ARCHIVE_INTERVALS.get(archive, 3600.0), tuple(tags)))
        return specs

    def health(self) -> dict:
        """Return state and counters for the devices endpoint."""
        header = self.header
        meter = None if header is None else {
            "id": header.id, "manufacturer": header.manufacturer, "version": header.version,
            "medium": header.medium}
        return {"name": self.name, "address": self.address_text(), "state": self.state,
                "consecutive_failures": self.consecutive_failures, "poll_s": self.period,
                "fcb": self.fcb, "meter": meter, "clock_drift_s": self.clock_drift_s, **self.stats.as_dict(),
                "archive_records": self.archive_records, "archive_errors": self.archive_errors,
                "archive_last_error": self.archive_last_error, "last_backfill": self.last_backfill,
                "archive_newest": {a: self.archive_book.newest(self.name, a)
                                   for a in self.archive_book.archives(self.name)}}
