"""M-Bus archive records and the archive book: backfilled once, across restarts, only after complete reads."""

from __future__ import annotations

from datetime import timezone
from zoneinfo import ZoneInfo

import pytest
from twisted.internet.task import Clock

from channels.archive import MemoryArchiveBook
from channels.bus import BusScheduler
from channels.mbus import link
from channels.mbus.driver import MBusDevice, Timing
from channels.mbus.mapping import RecordMapper, RecordRule, archive_of
from tags.quality import Quality
from tags.timefmt import parse_iso
from tests.channels.mbus.wire import NOW, Wire, heat_meter

BAUD = 2400
NEWEST_MONTH = parse_iso("2026-11-01T00:00:00Z")


class Site:
    """One M-Bus channel on a wire to a simulated heat meter, with a shared archive book."""

    def __init__(self, book: MemoryArchiveBook, meter=None, retries: int = 2) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.meter = meter or heat_meter()
        self.wire = Wire(self.clock, [self.meter])
        self.scheduler = BusScheduler(self.clock, "m", silent_interval=33 / BAUD, retries=retries,
                                      char_time=link.char_time(BAUD))
        self.samples, self.history = [], []
        self.wire.attach(self.scheduler)
        self.book = book

    def device(self, rules=None) -> MBusDevice:
        device = MBusDevice(
            "heat", primary=1, secondary=None, period=60.0, mapper=RecordMapper("heat", timezone.utc, rules),
            timing=Timing(BAUD, 0.1), on_samples=self.samples.extend, on_history=self.history.extend,
            on_define=lambda tagdef: None, archive_book=self.book)
        self.scheduler.add_poller(device, 0.0)
        return device

    def run(self, seconds: float) -> None:
        self.scheduler.start()
        end = self.clock.seconds() + seconds
        while True:
            due = min((c.getTime() for c in self.clock.getDelayedCalls()), default=None)
            if due is None or due > end:
                break
            self.clock.advance(max(0.0, due - self.clock.seconds()))
        self.clock.advance(max(0.0, end - self.clock.seconds()))


def test_archive_of_tells_the_archive_by_the_local_date():
    """00:00 on the 1st is monthly, another midnight daily, anything else hourly (in the site's zone)."""
    msk = ZoneInfo("Europe/Moscow")
    assert archive_of(parse_iso("2026-10-31T21:00:00Z"), msk) == "monthly"  # 1 Nov 00:00 Moscow
    assert archive_of(parse_iso("2026-11-01T00:00:00Z"), msk) == "hourly"   # 03:00 Moscow
    assert archive_of(parse_iso("2026-11-20T21:00:00Z"), msk) == "daily"
    assert archive_of(parse_iso("2026-11-01T00:00:00Z"), timezone.utc) == "monthly"
    assert archive_of(parse_iso("2026-11-21T13:00:00Z"), timezone.utc) == "hourly"


def test_records_are_backfilled_and_the_book_moves_on():
    """The twelve monthly readings go to history as backfilled; the book keeps the newest month."""
    book = MemoryArchiveBook()
    site = Site(book)
    device = site.device()
    site.run(30)
    energy = [s for s in site.history if s.name == "heat.energy"]
    assert len(energy) == 12 and {s.quality for s in energy} == {Quality.BACKFILLED}
    assert book.newest("heat", "monthly") == NEWEST_MONTH and book.saves == 1
    health = device.health()
    assert health["archive_records"] == len(site.history)
    assert health["archive_newest"] == {"monthly": NEWEST_MONTH}
    assert health["last_backfill"] == pytest.approx(NOW, abs=5)
    (spec,) = device.archive_specs()
    assert (spec.name, spec.interval) == ("monthly", "month") and "heat.energy" in spec.tags


def test_a_restart_does_not_write_the_archive_again():
    """A new device with the same (persisted) book hands on nothing old, and the next month when it comes."""
    book = MemoryArchiveBook()
    first = Site(book)
    first.device()
    first.run(30)
    again = Site(book)
    device = again.device()
    again.run(30)
    assert again.history == [] and book.saves == 1
    # Before it reads, a restarted meter's archives are known from the book (for the gaps report).
    fresh = Site(book).device(rules=[RecordRule("heat.energy_kwh", quantity="energy", scale=0.001)])
    assert [(s.name, s.tags) for s in fresh.archive_specs()] == [("monthly", ("heat.energy_kwh",))]
    # A month later the meter has a new reading: only that one is written.
    later = Site(book)
    later.clock.advance(parse_iso("2026-12-15T12:00:00Z") - NOW)
    later.device()
    later.run(30)
    assert {s.ts for s in later.history} == {parse_iso("2026-12-01T00:00:00Z")}
    assert book.newest("heat", "monthly") == parse_iso("2026-12-01T00:00:00Z")
    assert device.health()["archive_records"] == 0


def test_a_read_cut_short_does_not_move_the_book():
    """If the last telegram (the oldest months) is lost, the book waits for a complete read."""
    book = MemoryArchiveBook()
    site = Site(book, retries=1)
    site.device()
    write = site.wire.write
    sent = []

    def lose_the_third_telegram(data):
        sent.append(data)
        # reset, telegram 1, telegram 2, telegram 3 (+ its retry): lose both answers of the third.
        if len(sent) == 4:
            site.wire.drop_answers = 2
        write(data)

    site.wire.write = lose_the_third_telegram
    site.run(30)
    assert site.history and book.newest("heat", "monthly") is None and book.saves == 0
    site.wire.write = write
    site.run(60)
    assert book.newest("heat", "monthly") == NEWEST_MONTH


def test_history_refusing_keeps_the_book_behind():
    """A history that refuses the records leaves the book where it was, so they are written next time."""
    book = MemoryArchiveBook()
    site = Site(book)
    device = site.device()

    def refuse(samples):
        raise OSError("disk full")

    device._on_history = refuse
    site.run(30)
    assert book.newest("heat", "monthly") is None
    assert device.health()["archive_errors"] == 1
    assert "disk full" in device.health()["archive_last_error"]
