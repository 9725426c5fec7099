"""Simulated meters keep archives: write the record index, read the record window (channels/sim/slave.py)."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from channels.modbus import framer
from channels.modbus.points import PointSpec, decode_raw
from channels.sim.field import SimulatedField
from channels.sim.slave import SimArchive, SimBus, SimDevice
from tags.timefmt import parse_iso
from tests.channels.sim.sim_fixtures import channel, device, load_profiles, site

NOW = parse_iso("2026-11-21T12:34:56Z")
MSK = 3 * 3600


class Counter:
    """A model whose counter is its time in hours: easy to check at any boundary."""

    def values(self, t):
        return {"energy": t / 3600.0, "temp": -5.5}


def meter(depth: int = 5, interval=3600.0) -> SimDevice:
    """A meter with one live point and an archive: index 100, window 101-106 (time, energy, temp)."""
    archive = SimArchive("hourly", interval, depth, 100, 101, 6, 0,
                         (PointSpec("energy", 3, 103, "u32", scale=0.01), PointSpec("temp", 3, 105, "i16", scale=0.1)),
                         utc_offset=MSK)
    return SimDevice(7, [PointSpec("energy", 3, 0, "u32", scale=0.01)], Counter(), archives=[archive])


def ask(sim: SimDevice, request: framer.Request, t: float = NOW) -> bytes:
    return sim.handle(request, t)


def read_record(sim: SimDevice, index: int, t: float = NOW) -> tuple:
    write = ask(sim, framer.Request(7, framer.WRITE_SINGLE, 100, 1, (index,)), t)
    assert write == framer.encode_write_response(7, framer.WRITE_SINGLE, 100, index)
    answer = ask(sim, framer.Request(7, framer.READ_HOLDING, 101, 6), t)
    _, frame = framer.decode_response(answer, 7, 3, 6)
    return frame.data


def test_record_n_is_the_nth_newest_closed_boundary():
    """Index 0 is the newest closed hour, with the model's values at that hour and the hour as its time."""
    sim = meter()
    for index in range(3):
        data = read_record(sim, index)
        ts, energy, temp = struct.unpack(">IIh", data[:10])
        boundary = parse_iso("2026-11-21T12:00:00Z") - 3600 * index
        assert ts == boundary
        assert energy == round(boundary / 3600 / 0.01)
        assert temp == -55
        assert data[10:] == b"\x00\x00"  # the unused register


def test_records_beyond_the_depth_are_all_ffff():
    """Index >= depth reads as an empty record."""
    sim = meter(depth=5)
    assert read_record(sim, 5) == b"\xff" * 12
    assert read_record(sim, 65535) == b"\xff" * 12


def test_a_record_closing_exactly_now_is_closed():
    """At 13:00:00 the 13:00 record is index 0."""
    sim = meter()
    t = parse_iso("2026-11-21T13:00:00Z")
    assert decode_raw(read_record(sim, 0, t)[:4], "u32") == t


def test_monthly_records_close_at_local_midnight_on_the_first():
    """A monthly archive: 00:00 Moscow on the 1st, i.e. 21:00 UTC on the last day before."""
    sim = meter(interval="month")
    stamps = [decode_raw(read_record(sim, i)[:4], "u32") for i in range(3)]
    assert stamps == [parse_iso("2026-10-31T21:00:00Z"), parse_iso("2026-09-30T21:00:00Z"),
                      parse_iso("2026-08-31T21:00:00Z")]


def test_partial_reads_inside_the_window_and_reading_back_the_index():
    """A read of part of the window gets that part; the index register reads back the selected index."""
    sim = meter()
    full = read_record(sim, 2)
    answer = ask(sim, framer.Request(7, framer.READ_HOLDING, 103, 2))
    assert framer.decode_response(answer, 7, 3, 2)[1].data == full[4:8]
    answer = ask(sim, framer.Request(7, framer.READ_HOLDING, 100, 1))
    assert framer.decode_response(answer, 7, 3, 1)[1].data == b"\x00\x02"


def test_write_multiple_selects_a_record_too_and_bad_accesses_get_exceptions():
    """Function 16 with one register selects; a read across the window's end or a write elsewhere is refused."""
    sim = meter()
    answer = ask(sim, framer.Request(7, framer.WRITE_MULTIPLE, 100, 1, (1,)))
    assert answer == framer.encode_write_response(7, framer.WRITE_MULTIPLE, 100, 1)
    assert sim.archive_index == {"hourly": 1}
    assert ask(sim, framer.Request(7, framer.READ_HOLDING, 104, 5)) == framer.encode_exception(7, 3, 0x02)
    assert ask(sim, framer.Request(7, framer.WRITE_SINGLE, 101, 1, (1,))) == framer.encode_exception(7, 6, 0x02)


def test_silent_meter_keeps_its_archive():
    """A silent meter answers nothing, and afterwards its records cover the silent hours."""
    sim = meter(depth=1080)
    sim.fault = "silent"
    assert ask(sim, framer.Request(7, framer.WRITE_SINGLE, 100, 1, (0,))) is None
    sim.fault = "normal"
    later = NOW + 6 * 3600
    stamps = [decode_raw(read_record(sim, i, later)[:4], "u32") for i in range(7)]
    assert stamps == [parse_iso("2026-11-21T18:00:00Z") - 3600 * i for i in range(7)]


def test_field_builds_archives_from_profiles_over_the_wire():
    """The field gives each device its profile's archives; over a SimBus the answers frame as on a real bus."""
    profiles = load_profiles()
    profiles["generic_heat_meter"].archives = [SimpleNamespace(
        name="daily", interval=86400.0, depth=10, index_register=272,
        record=SimpleNamespace(register=273, count=4),
        timestamp=SimpleNamespace(offset=0, type="u32", word_order="big"),
        points=[SimpleNamespace(name="energy_kwh", offset=2, type="u32", word_order="big", scale=0.01)])]
    cfg = site([channel("rs", [device("heat", 1, "generic_heat_meter")])])
    cfg.profiles = profiles
    clock = Clock()
    field = SimulatedField(cfg, clock, clock_for_values=lambda: NOW)
    sim = field.devices["heat"]
    assert [a.name for a in sim.archives] == ["daily"] and sim.archives[0].utc_offset == MSK
    bus = SimBus({1: sim}, clock, clock_for_values=lambda: NOW)
    transport = StringTransport()
    bus.makeConnection(transport)
    bus.dataReceived(framer.encode_write_single(1, 272, 1))
    assert transport.value() == framer.encode_write_response(1, 6, 272, 1)
    transport.clear()
    bus.dataReceived(framer.encode_read(1, 3, 273, 4))
    _, frame = framer.decode_response(transport.value(), 1, 3, 4)
    ts, energy = struct.unpack(">II", frame.data)
    assert ts == parse_iso("2026-11-19T21:00:00Z")  # yesterday's local midnight: index 1
    assert energy == round(sim.model.values(ts)["energy_kwh"] / 0.01)


@pytest.mark.parametrize("profile", ["generic_heat_meter", "generic_water_meter", "generic_electricity_meter"])
def test_shipped_profiles_have_readable_archives(profile):
    """Every archive point of the shipped profiles is one of the profile's live points, so the sim fills it."""
    from scada.config.loader import BUILTIN_PROFILES_DIR

    import yaml

    data = yaml.safe_load((BUILTIN_PROFILES_DIR / f"{profile}.yaml").read_text(encoding="utf-8"))
    live = {p["name"] for p in data["points"]}
    assert {a["name"] for a in data["archives"]} == {"hourly", "daily", "monthly"}
    for archive in data["archives"]:
        assert {p["name"] for p in archive["points"]} <= live
