"""Back-fill from Modbus archives: the walk, its ends, the turn, priority, on a BusScheduler and task.Clock."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest
from twisted.internet.task import Clock

from channels.archive import ArchiveTurn, MemoryArchiveBook
from channels.bus import BusScheduler
from channels.modbus import framer
from channels.modbus.archive import CLOCK_SKEW_S, archive_plans, settle_time
from channels.modbus.driver import ModbusDevice
from channels.modbus.points import PointSpec, plan_reads
from tags.quality import Quality
from tags.timefmt import parse_iso

SILENT = 0.004
TIMEOUT = 0.2
DELAY = 0.01
PERIOD = 10.0
HOUR = 3600.0
#: The engine's "now": ten seconds after a whole hour, so index 0 is the 12:00 record.
NOW = parse_iso("2026-11-21T12:00:10Z")
NEWEST = parse_iso("2026-11-21T12:00:00Z")
INDEX_REGISTER = 100
WINDOW = 101


def archive_cfg(depth: int = 1080, interval: float | str = HOUR, name: str = "hourly"):
    """Return an archive as the config has it: index 100, record 101+4 (timestamp, energy)."""
    return SimpleNamespace(
        name=name, interval=interval, depth=depth, index_register=INDEX_REGISTER,
        record=SimpleNamespace(register=WINDOW, count=4),
        timestamp=SimpleNamespace(offset=0, type="u32", word_order="big"),
        points=[SimpleNamespace(name="energy_kwh", offset=2, type="u32", word_order="big", scale=0.01)])


def record(ts: float, energy: float) -> bytes:
    """Return the record window's bytes: u32 time, u32 energy in 0.01 kWh."""
    return struct.pack(">II", int(ts), round(energy / 0.01))


EMPTY = b"\xff" * 8


class ArchiveSlave:
    """A link plus a meter: live registers 0-1 (energy) and an archive of records by index.

    ``records[i]`` is what the window shows after index ``i`` was written;
    an index past the list reads as all 0xFFFF.  ``window_exception`` makes
    record reads answer that exception; ``drop`` lists request numbers that
    get no answer.
    """

    endpoint = "archive-slave"

    def __init__(self, clock: Clock, bus: BusScheduler, framing: str = "rtu") -> None:
        self.clock = clock
        self.bus = bus
        self.framing = framing
        self.records: list[bytes] = []
        self.index = 0
        self.silent = False
        self.window_exception: int | None = None
        self.drop: set[int] = set()
        self.log: list[tuple[float, int, str, int]] = []  # (time, unit, kind, address/index)
        self.count = 0

    def history(self, n: int, newest: float = NEWEST, step: float = HOUR, energy: float = 5000.0) -> None:
        """Fill ``n`` regular records, newest first, energy falling 1 kWh per record."""
        self.records = [record(newest - i * step, energy - i) for i in range(n)]

    def write(self, data: bytes) -> None:
        self.count += 1
        if self.framing == "mbap":
            _, (tid, rtu) = framer.decode_mbap(data)
        else:
            tid, rtu = None, data
        _, req = framer.decode_request(rtu)
        if self.silent or self.count in self.drop:
            return
        if req.function == framer.WRITE_SINGLE:
            self.index = req.values[0]
            self.log.append((self.clock.seconds(), req.unit, "index", req.values[0]))
            answer = framer.encode_write_response(req.unit, req.function, req.address, req.values[0])
        elif req.address == WINDOW:
            self.log.append((self.clock.seconds(), req.unit, "record", self.index))
            if self.window_exception is not None:
                answer = framer.encode_exception(req.unit, req.function, self.window_exception)
            else:
                data = self.records[self.index] if self.index < len(self.records) else EMPTY
                answer = framer.encode_read_response(req.unit, req.function, data[:2 * req.count])
        else:
            self.log.append((self.clock.seconds(), req.unit, "live", req.address))
            answer = framer.encode_read_response(req.unit, req.function, struct.pack(">I", 500_000))
        if tid is not None:
            answer = framer.rtu_to_mbap(answer, tid)
        self.clock.callLater(DELAY, self.bus.data_received, answer)

    def reads(self, unit: int | None = None) -> list[int]:
        """Return the record indexes read, in order."""
        return [i for _, u, kind, i in self.log if kind == "record" and (unit is None or u == unit)]


class Rig:
    """Devices with archives on one scheduler and one fake meter link."""

    def __init__(self, framing: str = "rtu", retries: int = 0) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        silent = SILENT if framing == "rtu" else 0.0
        self.bus = BusScheduler(self.clock, "seg", silent_interval=silent, retries=retries, link_grace=0.0)
        self.slave = ArchiveSlave(self.clock, self.bus, framing)
        self.framing = framing
        self.book = MemoryArchiveBook()
        self.turn = ArchiveTurn()
        self.history: list = []
        self.live: list = []

    def device(self, name: str = "m1", unit: int = 5, per_poll: int = 4, lookback_s: float = 2 * 86400,
               archives=None, on_history=None, first_due: float | None = None) -> ModbusDevice:
        points = [PointSpec(f"{name}.energy_kwh", 3, 0, "u32", scale=0.01)]
        plans = archive_plans(name, archives or [archive_cfg()], lookback_s)
        device = ModbusDevice(name, unit, plan_reads(points), PERIOD, self.live.append,
                              timeout_for=lambda block: TIMEOUT, framing=self.framing,
                              archives=plans, on_history=on_history or self.history.extend,
                              archive_book=self.book, archive_turn=self.turn, archive_records_per_poll=per_poll,
                              utc_offset=3 * 3600)
        self.bus.add_poller(device, first_due)
        return device

    def start(self) -> None:
        self.bus.link_up(self.slave)
        self.bus.start()

    def run(self, seconds: float) -> None:
        end = self.clock.seconds() + seconds
        while True:
            nxt = min((c.getTime() for c in self.clock.getDelayedCalls()), default=None)
            if nxt is None or nxt > end:
                break
            self.clock.advance(max(0.0, nxt - self.clock.seconds()))
        self.clock.advance(max(0.0, end - self.clock.seconds()))


def test_first_poll_walks_back_the_lookback_a_few_records_per_poll():
    """A device the book never saw reads lookback / interval records, newest first, per_poll at a time."""
    rig = Rig()
    rig.slave.history(100)
    device = rig.device(per_poll=2, lookback_s=5 * HOUR)
    rig.start()
    rig.run(1.0)
    assert rig.slave.reads() == [0, 1]
    assert rig.book.newest("m1", "hourly") is None  # the walk is not over: the book waits
    rig.run(PERIOD * 3)
    assert rig.slave.reads() == [0, 1, 2, 3, 4]
    assert [(s.name, s.ts, s.value, s.quality) for s in rig.history] == [
        ("m1.energy_kwh", NEWEST - i * HOUR, 5000.0 - i, Quality.BACKFILLED) for i in range(5)]
    assert rig.book.newest("m1", "hourly") == NEWEST
    assert rig.book.saves == 1  # once per walk, not per record
    health = device.health()
    assert (health["archive_records"], health["archive_errors"], health["archive_walks"]) == (5, 0, 1)
    assert health["archive_newest"] == {"hourly": NEWEST} and health["archive_pending"] == []
    assert health["last_backfill"] == pytest.approx(NOW + 2 * PERIOD, abs=0.2)  # the third poll read index 4


def test_archive_steps_are_a_write_of_the_index_then_a_read_of_the_window():
    """Each record costs an 06 write of its index to the index register and an 03 read of the window."""
    rig = Rig()
    rig.slave.history(3)
    rig.device(per_poll=1, lookback_s=HOUR)
    rig.start()
    rig.run(1.0)
    kinds = [(kind, value) for _, _, kind, value in rig.slave.log]
    assert kinds == [("live", 0), ("index", 0), ("record", 0)]


def test_walk_stops_when_the_record_before_is_stored():
    """With 09:00 stored, the walk reads 12:00, 11:00, 10:00 and stops: 09:00 is known by the interval."""
    rig = Rig()
    rig.slave.history(100)
    rig.book.stored("m1", "hourly", NEWEST - 3 * HOUR)
    rig.device()
    rig.start()
    rig.run(PERIOD * 3)
    assert rig.slave.reads() == [0, 1, 2]
    assert [s.ts for s in rig.history] == [NEWEST, NEWEST - HOUR, NEWEST - 2 * HOUR]
    assert rig.book.newest("m1", "hourly") == NEWEST


def test_walk_stops_at_a_record_not_newer_than_the_stored_one():
    """Irregular records: the walk ends at the first record not newer than the book's, without storing it."""
    rig = Rig()
    # Records at 12:00, 10:30 and 08:00: 08:00 is older than the stored 09:00.
    rig.slave.records = [record(NEWEST, 10), record(NEWEST - 1.5 * HOUR, 9), record(NEWEST - 4 * HOUR, 8)]
    rig.book.stored("m1", "hourly", NEWEST - 3 * HOUR)
    rig.device()
    rig.start()
    rig.run(PERIOD * 3)
    assert rig.slave.reads() == [0, 1, 2]
    assert [s.ts for s in rig.history] == [NEWEST, NEWEST - 1.5 * HOUR]


def test_nothing_new_reads_one_record():
    """When the newest record is the stored one, one record is read and nothing is written."""
    rig = Rig()
    rig.slave.history(100)
    rig.book.stored("m1", "hourly", NEWEST)
    rig.device()
    rig.start()
    rig.run(PERIOD * 3)
    assert rig.slave.reads() == [0]
    assert rig.history == [] and rig.book.saves == 0


def test_walk_stops_at_an_empty_record():
    """An all-0xFFFF record ends the walk normally (the meter has no older ones)."""
    rig = Rig()
    rig.slave.history(3)
    device = rig.device(lookback_s=10 * HOUR)
    rig.start()
    rig.run(PERIOD * 3)
    assert rig.slave.reads() == [0, 1, 2, 3]
    assert len(rig.history) == 3 and rig.book.newest("m1", "hourly") == NEWEST
    assert device.health()["archive_errors"] == 0


def test_walk_stops_at_the_depth():
    """The walk never asks for an index past the archive's depth."""
    rig = Rig()
    rig.slave.history(100)
    rig.book.stored("m1", "hourly", NEWEST - 50 * HOUR)
    rig.device(archives=[archive_cfg(depth=6)])
    rig.start()
    rig.run(PERIOD * 5)
    assert rig.slave.reads() == [0, 1, 2, 3, 4, 5]
    assert rig.book.newest("m1", "hourly") == NEWEST


def test_monthly_lookback_reads_one_record_per_started_month():
    """The look-back of a calendar-month archive counts months of about 30.4 days."""
    plans = archive_plans("m1", [archive_cfg(interval="month", name="monthly", depth=48)], 2 * 86400)
    assert plans[0].lookback == 1
    plans = archive_plans("m1", [archive_cfg(interval="month", name="monthly", depth=48)], 45 * 86400)
    assert plans[0].lookback == 2
    plans = archive_plans("m1", [archive_cfg(depth=24)], 45 * 86400)
    assert plans[0].lookback == 24  # never past the depth


@pytest.mark.parametrize("bad, why", [
    (0, "not a plausible time"),
    (0xFFFFFFFF, "not a plausible time"),
    (NOW + CLOCK_SKEW_S + HOUR, "not a plausible time"),
    (NEWEST + 60, "newer than the records before it"),
])
def test_a_bad_timestamp_ends_the_walk_and_is_counted(bad, why):
    """A record whose time cannot be right ends the walk; what came before is kept and the book moves on."""
    rig = Rig()
    rig.slave.history(10)
    rig.slave.records[2] = record(bad, 1)
    device = rig.device(lookback_s=10 * HOUR)
    rig.start()
    rig.run(PERIOD * 4)
    assert rig.slave.reads() == [0, 1, 2]
    assert [s.ts for s in rig.history] == [NEWEST, NEWEST - HOUR]
    health = device.health()
    assert health["archive_errors"] == 1
    assert health["archive_last_error"] == f"hourly record 2: time {bad:.0f} is {why}"
    assert rig.book.newest("m1", "hourly") == NEWEST


def test_a_future_newest_record_within_the_clock_skew_is_taken():
    """Meter clocks drift: a record a few minutes ahead is no error."""
    rig = Rig()
    rig.slave.records = [record(NOW + CLOCK_SKEW_S - 10, 7)]
    device = rig.device(lookback_s=HOUR)
    rig.start()
    rig.run(1.0)
    assert [s.ts for s in rig.history] == [NOW + CLOCK_SKEW_S - 10]
    assert device.health()["archive_errors"] == 0


def test_a_record_closed_during_the_walk_shifts_the_indexes_without_an_error():
    """When index 2 shows the record already read at index 1, the archive moved on: skip, go on."""
    rig = Rig()
    rig.slave.history(10)
    # The meter closed a record between reading index 1 and index 2: everything moved down one.
    rig.slave.records = rig.slave.records[:2] + rig.slave.records[1:]
    device = rig.device(lookback_s=4 * HOUR)
    rig.start()
    rig.run(PERIOD * 3)
    assert rig.slave.reads() == [0, 1, 2, 3, 4]  # index 2 repeats index 1
    assert [s.ts for s in rig.history] == [NEWEST - i * HOUR for i in range(4)]
    assert device.health()["archive_errors"] == 0


def test_an_exception_gives_the_walk_up_and_leaves_the_book():
    """A meter that refuses the record read (profile mismatch): counted, no retries until the next trigger."""
    rig = Rig()
    rig.slave.history(10)
    rig.slave.window_exception = 2
    device = rig.device()
    rig.start()
    rig.run(PERIOD * 5)
    assert rig.slave.reads() == [0]
    health = device.health()
    assert health["archive_errors"] == 1 and health["archive_pending"] == []
    assert health["archive_last_error"] == "hourly record 0: record read: illegal data address"
    assert rig.book.newest("m1", "hourly") is None
    assert device.state == "ok"  # the current values are fine


def test_a_lost_archive_answer_is_read_again_next_poll():
    """A timeout on an archive step ends this poll's archive reads; the walk goes on from there."""
    rig = Rig()
    rig.slave.history(10)
    rig.slave.drop = {5}  # the second record's index write (live, index, record, index, ...)
    rig.device(lookback_s=3 * HOUR)
    rig.start()
    rig.run(1.0)
    assert rig.slave.reads() == [0]
    rig.run(PERIOD)
    assert rig.slave.reads() == [0, 1, 2]
    assert rig.book.newest("m1", "hourly") == NEWEST


def test_history_refusing_keeps_the_book_behind():
    """If history does not take the records, the book does not move: they are read again."""
    rig = Rig()
    rig.slave.history(10)

    def refuse(samples):
        raise OSError("disk full")

    device = rig.device(lookback_s=2 * HOUR, on_history=refuse)
    rig.start()
    rig.run(PERIOD * 3)
    assert rig.book.newest("m1", "hourly") is None
    health = device.health()
    assert health["archive_errors"] == 1
    assert health["archive_last_error"] == "history refused 2 archive samples: disk full"


def test_scheduled_walk_after_the_boundary_reads_one_record():
    """Once an hour, settle_time after the boundary, the new record is read: one write and one read."""
    rig = Rig()
    rig.slave.history(10)
    rig.device(lookback_s=2 * HOUR)
    rig.start()
    rig.run(PERIOD * 3)
    assert rig.slave.reads() == [0, 1]
    rig.slave.history(10, newest=NEWEST + HOUR, energy=5001)
    rig.run(HOUR - 10 - PERIOD)  # 12:59:50..13:00:00: before the boundary nothing happens
    assert rig.slave.reads() == [0, 1]
    rig.run(settle_time(HOUR) + PERIOD)
    assert rig.slave.reads() == [0, 1, 0]
    assert rig.history[-1].ts == NEWEST + HOUR and rig.history[-1].value == 5001
    assert rig.book.newest("m1", "hourly") == NEWEST + HOUR


def test_recovery_from_comm_loss_walks_again():
    """When a meter answers after comm loss, its archives are walked at once."""
    rig = Rig()
    rig.slave.history(10)
    device = rig.device(lookback_s=HOUR)
    rig.start()
    rig.run(PERIOD)
    assert rig.slave.reads() == [0]
    rig.slave.silent = True
    rig.run(2 * HOUR)
    assert device.state == "comm_loss"
    # While it was silent the meter closed two records.
    rig.slave.history(10, newest=NEWEST + 2 * HOUR, energy=5002)
    rig.slave.silent = False
    rig.run(PERIOD + 1)
    assert device.state == "ok"
    assert rig.slave.reads() == [0, 0, 1]
    assert [s.ts for s in rig.history[-2:]] == [NEWEST + 2 * HOUR, NEWEST + HOUR]


def test_live_polls_keep_their_period_while_back_filling():
    """Archive reads come after the current values and are bounded, so every live read stays on its period."""
    rig = Rig()
    rig.slave.history(200)
    first = rig.device("m1", 5, per_poll=4, first_due=NOW)
    second = rig.device("m2", 6, per_poll=4, first_due=NOW + 2.0)
    rig.start()
    rig.run(PERIOD * 30 - 1)
    for unit, start in ((5, NOW), (6, NOW + 2.0)):
        live = [t for t, u, kind, _ in rig.slave.log if kind == "live" and u == unit]
        assert len(live) == 30
        # Each poll's first request goes out at its due time: archive traffic never delays it.
        assert [round(t - start, 6) for t in live] == [pytest.approx(k * PERIOD) for k in range(30)]
    # One device at a time: m1 holds the turn for its walk (48 records, 12 polls), then m2.
    assert rig.slave.reads(5) == list(range(48))
    assert rig.slave.reads(6) == list(range(48))
    record_times = {5: [], 6: []}
    for t, unit, kind, _ in rig.slave.log:
        if kind == "record":
            record_times[unit].append(t)
    assert max(record_times[5]) < min(record_times[6])
    # Never more than 4 records (8 archive transactions) in one poll.
    polls = {}
    for t, unit, kind, _ in rig.slave.log:
        if kind == "record":
            polls.setdefault((unit, int((t - NOW) // PERIOD)), []).append(t)
    assert max(len(v) for v in polls.values()) == 4
    assert first.health()["archive_records"] == second.health()["archive_records"] == 48


def test_a_silent_holder_gives_the_turn_on():
    """A device that stops answering mid-walk lets the next device read its archive."""
    rig = Rig()
    rig.slave.history(50)
    rig.device("m1", 5, per_poll=2, first_due=NOW)
    rig.device("m2", 6, per_poll=2, first_due=NOW + 1.0)
    rig.start()
    rig.run(PERIOD)
    assert rig.slave.reads(5) == [0, 1] and rig.slave.reads(6) == []
    original = rig.slave.write

    def m1_silent(data):
        if data[0] != 5:
            original(data)

    rig.slave.write = m1_silent
    rig.run(PERIOD * 2)
    assert rig.slave.reads(6)[:2] == [0, 1]


def test_archives_over_modbus_tcp():
    """Archive steps use the channel's framing: MBAP with a transaction id per attempt."""
    rig = Rig(framing="mbap")
    rig.slave.history(5)
    rig.device(lookback_s=3 * HOUR)
    rig.start()
    rig.run(PERIOD * 2)
    assert rig.slave.reads() == [0, 1, 2]
    assert [s.ts for s in rig.history] == [NEWEST, NEWEST - HOUR, NEWEST - 2 * HOUR]


def test_no_history_callback_or_zero_per_poll_reads_no_archive():
    """Without on_history (or with archive_records_per_poll 0) a device reads only current values."""
    rig = Rig()
    rig.slave.history(5)
    points = [PointSpec("m1.energy_kwh", 3, 0, "u32", scale=0.01)]
    plans = archive_plans("m1", [archive_cfg()], 86400)
    for kwargs in ({"on_history": None}, {"on_history": rig.history.extend, "archive_records_per_poll": 0}):
        device = ModbusDevice("m1", 5, plan_reads(points), PERIOD, rig.live.append, timeout_for=lambda b: TIMEOUT,
                              archives=plans, **kwargs)
        assert device.archive is None
        assert [spec.name for spec in device.archive_specs()] == ["hourly"]
        assert device.health()["archive_records"] == 0
