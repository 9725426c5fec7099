"""The M-Bus poller on the bus scheduler, against simulated meters on task.Clock."""

from __future__ import annotations

from datetime import timezone
from functools import partial

import pytest
from twisted.internet.task import Clock

from channels.bus import BusScheduler, Outcome
from channels.mbus import link
from channels.mbus.driver import MBusDevice, Timing
from channels.mbus.mapping import RecordMapper, RecordRule
from tags.quality import Quality
from tests.channels.mbus.wire import NOW, Wire, heat_meter, water_meter

BAUD = 2400


class Site:
    """One channel: a scheduler on a wire to simulated meters, collecting what devices emit."""

    def __init__(self, meters, retries: int = 2) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)  # the engine's and the meters' "now" is a date, as in production
        self.wire = Wire(self.clock, meters)
        self.scheduler = BusScheduler(self.clock, "m", silent_interval=33 / BAUD, retries=retries,
                                      char_time=link.char_time(BAUD))
        self.samples, self.history, self.defined = [], [], []
        self.wire.attach(self.scheduler)

    def device(self, name="heat", primary=1, secondary=None, rules=None, period=60.0) -> MBusDevice:
        device = MBusDevice(
            name, primary=primary, secondary=link.secondary_mask(secondary) if secondary else None,
            period=period, mapper=RecordMapper(name, timezone.utc, rules), timing=Timing(BAUD, 0.1),
            on_samples=self.samples.extend, on_history=self.history.extend, on_define=self.defined.append)
        self.scheduler.add_poller(device, 0.0)
        return device

    def run(self, seconds: float) -> None:
        self.scheduler.start()
        end = self.clock.seconds() + seconds
        while True:
            calls = [c.getTime() for c in self.clock.getDelayedCalls()]
            due = min(calls, default=None)
            if due is None or due > end:
                break
            self.clock.advance(max(0.0, due - self.clock.seconds()))
        self.clock.advance(max(0.0, end - self.clock.seconds()))

    def requests(self) -> list[bytes]:
        return [data for _, data in self.wire.writes]

    def latest(self, tag: str):
        return [s for s in self.samples if s.name == tag][-1]


def test_first_poll_resets_then_reads_every_telegram_toggling_fcb():
    site = Site([heat_meter()])
    site.device()
    site.run(30)
    assert site.requests() == [link.snd_nke(1), link.req_ud2(1, True), link.req_ud2(1, False),
                               link.req_ud2(1, True)]
    # No REQ_UD2 after the last telegram: it did not end with DIF 1F.
    assert len(site.wire.answers) == 4


def test_next_poll_goes_on_with_the_toggled_fcb_and_no_reset():
    site = Site([heat_meter()])
    site.device(period=60)
    site.run(90)
    assert site.requests()[4:] == [link.req_ud2(1, False), link.req_ud2(1, True), link.req_ud2(1, False)]


def test_automatic_mapping_defines_tags_and_values_are_in_base_units():
    site = Site([heat_meter()])
    device = site.device()
    site.run(30)
    names = {d.name for d in site.defined}
    assert {"heat.energy", "heat.volume", "heat.volume_flow", "heat.power", "heat.flow_temperature",
            "heat.return_temperature", "heat.temperature_difference", "heat.clock_drift_s"} <= names
    units = {d.name: d.unit for d in site.defined}
    assert units["heat.energy"] == "Wh" and units["heat.volume"] == "m^3" and units["heat.power"] == "W"
    energy = site.latest("heat.energy")
    assert energy.quality is Quality.GOOD and energy.value > 1e6  # Wh: a building meter has MWh
    assert device.state == "ok"
    assert device.header.id == "12345678" and device.header.manufacturer == "KRT"
    # The meter clock is minute-resolution; the simulated one keeps time.
    assert abs(site.latest("heat.clock_drift_s").value) <= 60


def test_archive_records_become_history_at_their_dates_once():
    site = Site([heat_meter()])
    site.device(period=60)
    site.run(30)
    energy = sorted(s for s in site.history if s.name == "heat.energy")
    assert len(energy) == 12
    # Monthly readings on the 1st at 00:00 meter time (UTC here), newest 2026-11-01.
    assert max(s.ts for s in energy) == pytest.approx(1793491200.0)  # 2026-11-01T00:00Z
    assert all(s.quality is Quality.BACKFILLED for s in energy)  # past values from the meter's archive
    values = [s.value for s in sorted(energy, key=lambda s: s.ts)]
    assert values == sorted(values)  # a counter never runs backwards
    before = len(site.history)
    site.run(120)
    assert len(site.history) == before  # the same archive again: nothing new


def test_lost_answer_is_retried_with_the_same_fcb_and_the_meter_repeats():
    clean = Site([heat_meter()])
    clean.device()
    clean.run(30)
    site = Site([heat_meter()])
    site.device()
    write = site.wire.write

    def lose_first_answer_to_fcb0(data):
        # The answer to the first REQ_UD2 with FCB=0 (telegram 2) is lost on the line.
        if data == link.req_ud2(1, False) and not site.wire.answers[2:]:
            site.wire.drop_answers = 1
        write(data)

    site.wire.write = lose_first_answer_to_fcb0
    site.run(30)
    assert site.requests() == [link.snd_nke(1), link.req_ud2(1, True), link.req_ud2(1, False),
                               link.req_ud2(1, False), link.req_ud2(1, True)]
    # The retry carried the same FCB, so the meter sent telegram 2 again, not telegram 3.
    assert site.wire.answers[2] == site.wire.answers[3]
    assert sorted(s.name for s in site.samples) == sorted(s.name for s in clean.samples)
    assert len(site.history) == len(clean.history)


def test_silent_meter_fails_then_goes_comm_loss_and_resets_when_back():
    meter = heat_meter()
    site = Site([meter], retries=1)
    device = site.device(period=10)
    meter.fault = "silent"
    site.run(5)
    assert device.state == "failing"
    assert site.latest("heat.status").quality is Quality.TIMEOUT
    site.run(25)
    assert device.state == "comm_loss"
    assert site.latest("heat.status").quality is Quality.COMM_LOSS
    meter.fault = "normal"
    site.wire.writes.clear()
    site.run(10)
    assert device.state == "ok"
    assert site.requests()[0] == link.snd_nke(1)  # a failed poll means a reset first


def test_a_silent_attempt_costs_the_response_window_not_a_frame_time():
    meter = heat_meter()
    meter.fault = "silent"
    site = Site([meter], retries=0)
    site.device()
    site.run(0.5)
    (_, first), = site.wire.writes[:1]
    assert first == link.snd_nke(1)
    assert len(site.wire.writes) == 1
    assert Timing(BAUD, 0.1).timeout(first) < 0.35


def test_two_meters_at_one_address_collide_as_checksum_errors():
    site = Site([heat_meter("a", primary=3, ident=1), water_meter("b", primary=3, ident=2)], retries=0)
    device = site.device("a", primary=3)
    site.run(5)
    assert device.stats.crc_errors >= 1
    assert device.state == "failing"


def test_error_report_gives_exception_quality():
    meter = water_meter(primary=2)
    site = Site([meter])
    device = site.device("water", primary=2)
    meter.fault = "exception"
    site.run(5)
    assert device.state == "degraded"
    assert "busy" in device.stats.last_exception
    assert device.stats.exceptions == 1


def test_secondary_addressing_selects_resets_and_reads():
    site = Site([water_meter("w", primary=None, ident=87654321), heat_meter("h", primary=None, ident=12345678)])
    device = site.device("w", primary=None, secondary="87654321", period=60)
    site.run(150)
    mask = link.secondary_mask("87654321")
    select, read = link.select(mask), partial(link.req_ud2, link.ADDR_SELECTED)
    # A reset once, then select and read on every poll, the FCB toggling from poll to poll.
    assert site.requests() == [select, link.snd_nke(link.ADDR_SELECTED), select, read(True),
                               select, read(False), select, read(True)]
    assert device.state == "ok" and device.header.id == "87654321"


def test_profile_maps_by_quantity_and_reports_missing_records():
    site = Site([water_meter(primary=2)])
    rules = [RecordRule("water.volume_m3", quantity="volume"),
             RecordRule("water.volume_l", vib=b"\x13", scale=1000.0),
             RecordRule("water.energy_kwh", quantity="energy", scale=0.001)]
    device = site.device("water", primary=2, rules=rules)
    site.run(5)
    volume, litres = site.latest("water.volume_m3"), site.latest("water.volume_l")
    assert volume.quality is Quality.GOOD and litres.value == pytest.approx(volume.value * 1000)
    assert site.latest("water.energy_kwh").quality is Quality.DECODE_FAILED
    assert device.state == "degraded"
    # The archive reading of storage 1 (with its date) is history of the storage-0 tag.
    assert [s.name for s in site.history] == ["water.volume_m3", "water.volume_l"]


def test_clock_drift_is_measured():
    site = Site([heat_meter(clock_drift_s=-600.0)])
    device = site.device()
    site.run(5)
    assert device.clock_drift_s == pytest.approx(-600.0, abs=60.0)


def test_unexpected_answers_are_checksum_errors_that_get_retried():
    site = Site([])
    device = site.device("m", primary=4)
    device.begin_poll(0.0)  # reset, then read
    rsp = link.parse_frame(link.long_frame(link.C_RSP_UD, 4, 0x72, bytes(12)))
    assert device.classify(rsp) is Outcome.CRC_ERROR  # telegram data where an E5 was due
    assert device.classify(link.ACK_FRAME) is Outcome.OK
    device.transaction_done(device._queue[0], Outcome.OK, link.ACK_FRAME, 0.0)
    assert device.classify(link.ACK_FRAME) is Outcome.CRC_ERROR  # an E5 where data was asked for
    other = link.parse_frame(link.long_frame(link.C_RSP_UD, 5, 0x72, bytes(12)))
    assert device.classify(other) is Outcome.CRC_ERROR
    assert device.classify(link.Garbled("checksum", b"")) is Outcome.CRC_ERROR
    assert device.classify(rsp) is Outcome.OK
    device.transaction_done(device._queue[1], Outcome.CRC_ERROR, None, 0.0)
    assert device.stats.last_error == "read: garbled answer (checksum)"
    assert device.need_reset
