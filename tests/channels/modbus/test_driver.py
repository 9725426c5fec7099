"""Tests for channels.modbus.driver.ModbusDevice on a BusScheduler with an in-test fake slave."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest
from twisted.internet.task import Clock

from channels.bus import BusScheduler
from channels.modbus import framer
from channels.modbus.driver import DeviceStats, ModbusDevice, point_specs
from channels.modbus.points import PointSpec, plan_reads
from tags.model import Sample
from tags.quality import Quality

SILENT = 0.004
TIMEOUT = 0.2
DELAY = 0.02
PERIOD = 10.0

POINTS = [
    PointSpec("m1.energy_kwh", 3, 0, "u32", scale=0.1),
    PointSpec("m1.temp_c", 3, 2, "i16", scale=0.01),
    PointSpec("m1.flow_m3h", 3, 10, "f32"),
    PointSpec("m1.status", 4, 0, "u16"),
]
REGISTERS = {
    (3, 0): 0x0001, (3, 1): 0x86A0,  # 100000 -> 10000.0 kWh
    (3, 2): 0xF830,                  # -2000 -> -20.0 C
    (3, 10): 0x4148, (3, 11): 0x0000,  # 12.5
    (4, 0): 7,
}
GOOD_VALUES = {"m1.energy_kwh": 10000.0, "m1.temp_c": -20.0, "m1.flow_m3h": 12.5, "m1.status": 7}


def run_until(clock: Clock, t: float) -> None:
    """Advance ``clock`` call by call up to ``t`` so each call runs at its own time."""
    while True:
        nxt = min((c.getTime() for c in clock.getDelayedCalls()), default=None)
        if nxt is None or nxt > t:
            break
        clock.advance(max(0.0, nxt - clock.seconds()))
    clock.advance(max(0.0, t - clock.seconds()))


class FakeSlave:
    """A link plus a Modbus slave behind it, answering with framer.encode_read_response.

    ``mode`` is ``ok``, ``silent``, ``corrupt_first`` (every request's first
    answer has a bad CRC), ``stale_first`` (MBAP: an answer with another
    transaction id comes first) or ``("exception", code)``; ``exceptions``
    maps a function code to an exception code for that function only.
    """

    endpoint = "fake-slave"

    def __init__(self, clock: Clock, bus: BusScheduler, framing: str) -> None:
        self.clock = clock
        self.bus = bus
        self.framing = framing
        self.registers = dict(REGISTERS)
        self.mode = "ok"
        self.exceptions: dict[int, int] = {}
        self.requests: list[bytes] = []
        self.answer_times: list[float] = []
        self._seen: dict[bytes, int] = {}

    def write(self, data: bytes) -> None:
        self.requests.append(bytes(data))
        n = self._seen[bytes(data)] = self._seen.get(bytes(data), 0) + 1
        if self.framing == "mbap":
            consumed, (tid, rtu) = framer.decode_mbap(data)
            assert consumed == len(data)
        else:
            tid, rtu = None, data
        consumed, req = framer.decode_request(rtu)
        assert consumed == len(rtu) and isinstance(req, framer.Request)
        if self.mode == "silent":
            return
        if req.function in self.exceptions:
            answer = framer.encode_exception(req.unit, req.function, self.exceptions[req.function])
        elif isinstance(self.mode, tuple):
            answer = framer.encode_exception(req.unit, req.function, self.mode[1])
        else:
            words = [self.registers.get((req.function, a), 0) for a in range(req.address, req.address + req.count)]
            answer = framer.encode_read_response(req.unit, req.function, struct.pack(f">{req.count}H", *words))
        chunks = []
        if self.mode == "corrupt_first" and n == 1:
            answer = answer[:-1] + bytes([answer[-1] ^ 0xFF])
        if tid is not None:
            if self.mode == "stale_first":
                wrong = framer.encode_read_response(req.unit, req.function, b"\xff\xff" * req.count)
                chunks.append(framer.rtu_to_mbap(wrong, (tid - 1) & 0xFFFF))
            answer = framer.rtu_to_mbap(answer, tid)
        chunks.append(answer)
        self.clock.callLater(DELAY, self._deliver, b"".join(chunks))

    def _deliver(self, data: bytes) -> None:
        self.answer_times.append(self.clock.seconds())
        self.bus.data_received(data)


class Rig:
    """A device on a scheduler with a fake slave; collects every published batch of samples."""

    def __init__(self, framing: str = "rtu", retries: int = 1, comm_loss_after: int = 3, points=POINTS,
                 unit: int = 5) -> None:
        self.clock = Clock()
        silent = SILENT if framing == "rtu" else 0.0
        self.bus = BusScheduler(self.clock, "seg", silent_interval=silent, retries=retries, link_grace=0.0)
        self.slave = FakeSlave(self.clock, self.bus, framing)
        self.batches: list[list[Sample]] = []
        self.device = ModbusDevice("m1", unit, plan_reads(points), PERIOD, self.batches.append,
                                   timeout_for=lambda block: TIMEOUT, framing=framing,
                                   comm_loss_after=comm_loss_after)
        self.bus.add_poller(self.device)

    def start(self, link: bool = True) -> None:
        if link:
            self.bus.link_up(self.slave)
        self.bus.start()

    def run(self, t: float) -> None:
        run_until(self.clock, t)

    def last(self) -> dict[str, Sample]:
        return {s.name: s for s in self.batches[-1]}


def test_good_poll_gives_good_samples_with_source_time():
    """An answered poll publishes GOOD samples with decoded, scaled values stamped at answer time."""
    rig = Rig()
    rig.start()
    rig.run(1.0)
    assert len(rig.batches) == 1
    samples = rig.last()
    assert {name: s.value for name, s in samples.items()} == pytest.approx(GOOD_VALUES)
    assert all(s.quality is Quality.GOOD for s in samples.values())
    t1, t2, t3 = rig.slave.answer_times
    assert [s.ts for s in rig.batches[0]] == [t1, t1, t2, t3]
    assert (t1, t2, t3) == pytest.approx((DELAY, 2 * DELAY + SILENT, 3 * DELAY + 2 * SILENT))
    assert rig.device.state == "ok"
    assert rig.device.stats.last_good == pytest.approx(3 * DELAY + 3 * SILENT)


def test_requests_follow_the_plan():
    """The device sends one pre-encoded read per planned block."""
    rig = Rig()
    rig.start()
    rig.run(1.0)
    assert rig.slave.requests == [framer.encode_read(5, 3, 0, 3), framer.encode_read(5, 3, 10, 2),
                                  framer.encode_read(5, 4, 0, 1)]
    assert rig.device.plan_lines() == ["fc03 0+3 (2 points)", "fc03 10+2 (1 points)", "fc04 0+1 (1 points)"]


def test_timeout_poll_gives_timeout_samples():
    """A poll nobody answers publishes TIMEOUT samples without values."""
    rig = Rig(retries=1)
    rig.slave.mode = "silent"
    rig.start()
    rig.run(5.0)
    samples = rig.last()
    assert set(samples) == set(GOOD_VALUES)
    assert all(s.quality is Quality.TIMEOUT and s.value is None for s in samples.values())
    assert rig.device.state == "failing"
    stats = rig.device.stats
    assert (stats.requests, stats.timeouts, stats.responses, stats.failed_polls) == (6, 6, 0, 1)
    assert stats.last_good is None
    assert stats.last_error == "fc04 0+1: timeout"


def test_comm_loss_after_n_failed_polls_and_recovery():
    """After comm_loss_after silent polls samples turn COMM_LOSS; the first answer brings GOOD back."""
    rig = Rig(comm_loss_after=3)
    rig.slave.mode = "silent"
    rig.start()
    rig.run(PERIOD + 5)
    assert rig.device.state == "failing"
    assert {s.quality for s in rig.batches[-1]} == {Quality.TIMEOUT}
    rig.run(2 * PERIOD + 5)
    assert rig.device.state == "comm_loss"
    assert rig.device.consecutive_failures == 3
    assert {s.quality for s in rig.batches[-1]} == {Quality.COMM_LOSS}
    assert all(s.value is None for s in rig.batches[-1])
    rig.run(3 * PERIOD + 5)
    assert {s.quality for s in rig.batches[-1]} == {Quality.COMM_LOSS}
    rig.slave.mode = "ok"
    rig.run(4 * PERIOD + 5)
    assert rig.device.state == "ok"
    assert rig.device.consecutive_failures == 0
    samples = rig.last()
    assert all(s.quality is Quality.GOOD for s in samples.values())
    assert {name: s.value for name, s in samples.items()} == pytest.approx(GOOD_VALUES)
    assert rig.device.stats.failed_polls == 4
    assert rig.device.stats.last_good == pytest.approx(4 * PERIOD + 3 * DELAY + 3 * SILENT)


def test_comm_loss_keeps_sample_times():
    """COMM_LOSS samples keep the time their read failed."""
    rig = Rig(comm_loss_after=1, retries=0)
    rig.slave.mode = "silent"
    rig.start()
    rig.run(2.0)
    assert [s.ts for s in rig.batches[0]] == pytest.approx([TIMEOUT, TIMEOUT, 2 * TIMEOUT + SILENT, 3 * TIMEOUT + 2 * SILENT])


def test_exception_gives_exception_quality():
    """An illegal-address exception marks that block's points EXCEPTION; the device still answers."""
    rig = Rig()
    rig.slave.exceptions = {4: 2}
    rig.start()
    rig.run(1.0)
    samples = rig.last()
    assert samples["m1.status"].quality is Quality.EXCEPTION and samples["m1.status"].value is None
    assert samples["m1.flow_m3h"].quality is Quality.GOOD
    assert rig.device.state == "degraded"  # answering, but not every point is good
    stats = rig.device.stats
    assert (stats.requests, stats.responses, stats.exceptions) == (3, 3, 1)
    assert stats.last_exception == "fc04 0+1: illegal data address"
    assert stats.last_good is None  # not every sample was good
    rig.slave.exceptions = {}
    rig.run(PERIOD + 1.0)
    assert rig.device.state == "ok" and rig.device.stats.last_good is not None


def test_busy_exception_retried_and_counted():
    """A device that stays busy gets retried; every exception is counted, quality EXCEPTION."""
    rig = Rig(retries=2)
    rig.slave.mode = ("exception", 6)
    rig.start()
    rig.run(2.0)
    assert {s.quality for s in rig.batches[-1]} == {Quality.EXCEPTION}
    stats = rig.device.stats
    assert (stats.requests, stats.exceptions, stats.timeouts) == (9, 9, 0)
    assert stats.last_exception == "fc04 0+1: server device busy"
    assert rig.device.state == "degraded"  # it answers, but only with exceptions


def test_crc_errors_counted_and_retried():
    """Corrupt first answers are counted as CRC errors and the retries bring GOOD values."""
    rig = Rig(retries=1)
    rig.slave.mode = "corrupt_first"
    rig.start()
    rig.run(2.0)
    assert all(s.quality is Quality.GOOD for s in rig.batches[-1])
    stats = rig.device.stats
    assert (stats.requests, stats.crc_errors, stats.responses) == (6, 3, 3)


def test_crc_errors_without_retries_give_crc_quality():
    """With no retries left a corrupt answer gives CRC_ERROR samples."""
    rig = Rig(retries=0)
    rig.slave.mode = "corrupt_first"
    rig.start()
    rig.run(2.0)
    assert {s.quality for s in rig.batches[-1]} == {Quality.CRC_ERROR}
    assert rig.device.state == "failing"


def test_decode_failure_gives_decode_failed():
    """A NaN float gives one DECODE_FAILED sample; the rest of the block stays GOOD."""
    rig = Rig()
    rig.slave.registers[(3, 10)] = 0x7FC0
    rig.start()
    rig.run(1.0)
    samples = rig.last()
    assert samples["m1.flow_m3h"].quality is Quality.DECODE_FAILED and samples["m1.flow_m3h"].value is None
    assert samples["m1.energy_kwh"].quality is Quality.GOOD
    stats = rig.device.stats
    assert stats.decode_errors == 1
    assert stats.last_error.startswith("m1.flow_m3h: ")
    assert stats.last_good is None
    assert rig.device.state == "degraded"


def test_link_down_gives_comm_loss_at_once():
    """With the link down a poll ends at once with COMM_LOSS samples, and recovers once it is up."""
    rig = Rig(comm_loss_after=3)
    rig.start(link=False)
    rig.run(1.0)
    assert rig.slave.requests == []
    assert [s.ts for s in rig.batches[0]] == [0.0] * 4
    assert {s.quality for s in rig.batches[0]} == {Quality.COMM_LOSS}
    assert rig.device.state == "comm_loss"
    rig.bus.link_up(rig.slave)
    rig.run(PERIOD + 1)
    assert rig.device.state == "ok"
    assert all(s.quality is Quality.GOOD for s in rig.batches[-1])


def test_device_stats_counters():
    """DeviceStats adds up across polls and as_dict shows every counter."""
    rig = Rig(retries=1, comm_loss_after=5)
    rig.start()
    rig.run(1.0)                       # poll 1: 3 good answers
    rig.slave.mode = "silent"
    rig.run(PERIOD + 2)                # poll 2: 6 timeouts
    rig.slave.mode = "corrupt_first"
    rig.slave._seen.clear()
    rig.run(2 * PERIOD + 2)            # poll 3: 3 CRC errors then 3 good
    rig.slave.mode = ("exception", 2)
    rig.run(3 * PERIOD + 2)            # poll 4: 3 exceptions
    stats = rig.device.stats.as_dict()
    assert stats == {
        "requests": 3 + 6 + 6 + 3, "responses": 3 + 0 + 3 + 3, "timeouts": 6, "crc_errors": 3, "exceptions": 3,
        "decode_errors": 0, "polls": 4, "failed_polls": 1,
        "last_good": pytest.approx(2 * PERIOD + 3 * 2 * (DELAY + SILENT)),
        "last_error": "fc04 0+1: illegal data address", "last_exception": "fc04 0+1: illegal data address",
    }
    assert set(stats) == set(DeviceStats.__slots__)


def test_health():
    """health() reports identity, state and counters for the devices endpoint."""
    rig = Rig()
    rig.start()
    rig.run(1.0)
    health = rig.device.health()
    assert (health["name"], health["address"], health["state"], health["poll_s"], health["requests_per_poll"]) == (
        "m1", 5, "ok", PERIOD, 3)
    assert health["requests"] == 3 and health["consecutive_failures"] == 0


def test_mbap_framing_and_stale_tid_ignored():
    """Over MBAP the device frames requests with a transaction id and ignores answers with another."""
    rig = Rig(framing="mbap")
    rig.slave.mode = "stale_first"
    rig.start()
    rig.run(1.0)
    first = rig.slave.requests[0]
    tid, proto, length = struct.unpack_from(">HHH", first)
    assert (proto, length) == (0, 6)
    assert first[6:] == framer.encode_read(5, 3, 0, 3)[:-2]
    assert len({r[:2] for r in rig.slave.requests}) == 3  # one tid per block
    samples = rig.last()
    assert all(s.quality is Quality.GOOD for s in samples.values())
    assert {name: s.value for name, s in samples.items()} == pytest.approx(GOOD_VALUES)
    assert rig.device.stats.crc_errors == 0


def test_mbap_exception_and_bad_header():
    """Over MBAP an exception PDU gives EXCEPTION; a bad MBAP header counts as a CRC error."""
    rig = Rig(framing="mbap", retries=0)
    rig.slave.exceptions = {3: 2}
    rig.start()
    rig.run(1.0)
    samples = rig.last()
    assert samples["m1.energy_kwh"].quality is Quality.EXCEPTION
    assert samples["m1.status"].quality is Quality.GOOD

    rig2 = Rig(framing="mbap", retries=0)
    rig2.slave.write = lambda data: rig2.clock.callLater(DELAY, rig2.bus.data_received, b"\x00\x01\x00\x07\x00\x03\x05\x03\x00")
    rig2.start()
    rig2.run(1.0)
    assert {s.quality for s in rig2.batches[-1]} == {Quality.CRC_ERROR}
    assert rig2.device.stats.crc_errors == 3


def test_mbap_answer_of_other_unit_is_corrupt():
    """An MBAP answer whose PDU does not fit the request is a CRC-class error, not a crash."""
    rig = Rig(framing="mbap", retries=0)

    def answer_other_unit(data):
        tid = data[:2]
        rtu = framer.encode_read_response(9, 3, b"\x00\x01" * 3)
        rig.clock.callLater(DELAY, rig.bus.data_received, tid + framer.rtu_to_mbap(rtu, 0)[2:])

    rig.slave.write = answer_other_unit
    rig.start()
    rig.run(1.0)
    assert {s.quality for s in rig.batches[-1]} == {Quality.CRC_ERROR}


def test_unknown_framing_rejected():
    """A framing other than rtu or mbap is a ValueError at construction."""
    with pytest.raises(ValueError, match="unknown framing"):
        ModbusDevice("m", 1, plan_reads(POINTS), 1.0, lambda s: None, timeout_for=lambda b: 1.0, framing="ascii")


def test_wire_bytes():
    """Transactions carry request + expected answer bytes, or what wire_bytes_for says."""
    blocks = plan_reads(POINTS)
    device = ModbusDevice("m", 1, blocks, 1.0, lambda s: None, timeout_for=lambda b: 1.0)
    assert [tx.wire_bytes for tx in device.transactions] == [8 + 11, 8 + 9, 8 + 7]
    assert [tx.timeout for tx in device.transactions] == [1.0, 1.0, 1.0]
    device = ModbusDevice("m", 1, blocks, 1.0, lambda s: None, timeout_for=lambda b: 1.0,
                          wire_bytes_for=lambda b: 100 + b.count)
    assert [tx.wire_bytes for tx in device.transactions] == [103, 102, 101]


def test_point_specs_from_profile_points():
    """Profile points become PointSpecs tagged <device>.<point> with their function code."""
    points = [SimpleNamespace(name="energy_kwh", function="holding", register=4, type="u32", word_order="little",
                              scale=0.01, offset=1.0),
              SimpleNamespace(name="status", function="input", register=0, type="u16", word_order="big",
                              scale=1.0, offset=0.0)]
    assert point_specs("flat12", points) == [
        PointSpec("flat12.energy_kwh", 3, 4, "u32", "little", 0.01, 1.0),
        PointSpec("flat12.status", 4, 0, "u16", "big", 1.0, 0.0),
    ]


def test_mbap_late_answer_to_an_earlier_attempt_is_not_taken():
    """Each attempt has a new transaction id: the first attempt's late answer does not answer the retry."""
    rig = Rig(framing="mbap", retries=1)
    rig.slave.mode = "silent"
    rig.start()
    rig.run(TIMEOUT + 0.001)  # attempt 1 timed out, attempt 2 is on the wire
    first, second = rig.slave.requests[:2]
    assert first[:2] != second[:2] and first[2:] == second[2:]
    stale = framer.rtu_to_mbap(framer.encode_read_response(5, 3, b"\xff\xff" * 3), struct.unpack(">H", first[:2])[0])
    rig.bus.data_received(stale)
    good = framer.rtu_to_mbap(framer.encode_read_response(5, 3, b"\x00\x01" * 3), struct.unpack(">H", second[:2])[0])
    rig.bus.data_received(good)
    assert rig.device.stats.responses == 1
    assert rig.device.stats.timeouts == 1
