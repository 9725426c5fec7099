"""The issue's scenario: a simulated meter is silent for six hours; back-fill leaves no hourly gap.

A whole site (``Runtime``: tag table, history writer, SQLite history, the
archive book) on a memory clock, its Modbus channel wired to the simulated
meter of the same config.  No ports, no sleeps: eleven hours pass on the
clock in a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import textwrap

import pytest
from twisted.internet.testing import MemoryReactorClock

from channels.sim.field import SimulatedField
from channels.sim.slave import SimBus
from scada.api import build_app
from scada.app import Runtime
from scada.config import load_config
from scada.gaps import device_gaps
from tags.quality import Quality
from tags.timefmt import iso_utc, parse_iso
from tests.scada.sim_wire import SimWire, run_until

SITE = textwrap.dedent("""\
    site: {name: back-fill, timezone: Europe/Moscow}
    api: {auth: false}  # these tests are about the data; tests/scada/test_api_roles.py covers auth
    history: {backend: sqlite, path: var/history.db, flush_interval: 30s}
    channels:
      - name: bus
        type: modbus-rtu
        transport: {tcp: 127.0.0.1:1}
        devices:
          - {name: heat, address: 1, profile: generic_heat_meter, poll: 60s}
    """)
START = parse_iso("2026-11-20T00:05:00Z")
SILENT_FROM = parse_iso("2026-11-20T03:30:00Z")
SILENT_TO = SILENT_FROM + 6 * 3600  # 09:30
END = parse_iso("2026-11-20T11:01:30Z")  # the 11:00 records are read at the 11:01 poll
HOURLY_TAGS = ["heat.energy_kwh", "heat.volume_m3", "heat.t_supply_c", "heat.t_return_c"]
SCALES = {"heat.energy_kwh": 0.01, "heat.volume_m3": 0.001, "heat.t_supply_c": 0.01, "heat.t_return_c": 0.01}


@pytest.fixture()
def site(tmp_path):
    """Return (runtime, field, clock): a running site polling its simulated meter over a wire."""
    path = tmp_path / "site.yaml"
    path.write_text(SITE)
    cfg, _ = load_config(path)
    clock = MemoryReactorClock()
    clock.advance(START)
    runtime = Runtime(cfg, clock, base_dir=tmp_path)
    field = SimulatedField(cfg, clock)
    channel = runtime.channels[0]
    channel.link = SimWire(channel.scheduler, SimBus(field.channels["bus"].devices, clock, latency=0.02))
    runtime.start()
    yield runtime, field, clock
    runtime.stop()


def query(coro):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def test_six_hours_of_silence_leave_no_hourly_gap(site, tmp_path):
    """After the meter answers again its hourly records fill the hole: no gap, six backfilled records."""
    runtime, field, clock = site
    device = runtime.channels[0].devices[0]
    run_until(clock, SILENT_FROM)
    field.set_fault("heat", "silent")
    run_until(clock, SILENT_TO)
    assert device.state == "comm_loss"
    field.set_fault("heat", "normal")
    run_until(clock, END)
    assert device.state == "ok"
    historian = runtime.historian
    historian.flush()

    # The live values really have a six-hour hole ...
    live = query(historian.query_raw("heat.energy_kwh", SILENT_FROM + 120, SILENT_TO - 60))
    assert not [s for s in live if s.quality is Quality.GOOD]
    # ... and the meter's own records fill it, stamped at the hour boundaries.
    hours = [parse_iso(f"2026-11-20T{h:02d}:00:00Z") for h in range(4, 10)]
    model = field.devices["heat"].model
    for tag in HOURLY_TAGS:
        samples = query(historian.query_raw(tag, hours[0] - 1, hours[-1] + 1))
        filled = {s.ts: s for s in samples if s.quality is Quality.BACKFILLED}
        assert sorted(filled) == hours, tag
        scale = SCALES[tag]
        for ts, sample in filled.items():
            expected = round(model.values(ts)[tag.split(".")[1]] / scale) * scale
            assert sample.value == pytest.approx(expected, abs=scale / 2), (tag, iso_utc(ts))

    # No hourly gap over the day before and the whole period since.
    offset = 3 * 3600
    specs = {spec.name: spec for spec in device.archive_specs()}
    start, end = parse_iso("2026-11-19T00:00:00Z"), parse_iso("2026-11-20T11:00:00Z")
    (hourly,) = query(device_gaps(historian, [specs["hourly"]], start, end, clock.seconds(), offset))
    assert (hourly["expected"], hourly["missing"], hourly["gaps"]) == (35, 0, [])

    # The same through the API, with every archive of the device.
    app = build_app(runtime)
    loop = asyncio.new_event_loop()
    try:
        _, response = loop.run_until_complete(app.asgi_client.get(
            f"/api/v1/devices/heat/gaps?from={iso_utc(start)}&to={iso_utc(end)}"))
    finally:
        loop.close()
    assert response.status == 200
    body = response.json
    assert [a["name"] for a in body["archives"]] == ["hourly", "daily", "monthly"]
    assert body["archives"][0]["missing"] == 0 and body["archives"][0]["expected"] == 35
    assert body["archives"][1]["missing"] == 0 and body["archives"][1]["expected"] == 1  # 2026-11-19T21:00Z

    # The walks are counted, and the book is on disk.
    health = device.health()
    assert health["archive_errors"] == 0 and health["archive_records"] >= 48 + 6
    assert health["archive_newest"]["hourly"] == parse_iso("2026-11-20T11:00:00Z")
    book = json.loads((tmp_path / "var/archives.json").read_text())
    assert book["devices"]["heat"]["hourly"] == parse_iso("2026-11-20T11:00:00Z")


def test_a_restart_reads_only_what_it_missed(site, tmp_path):
    """A new runtime on the same site directory starts from the book: only the hours it was down."""
    runtime, field, clock = site
    run_until(clock, parse_iso("2026-11-20T02:00:45Z"))
    first = runtime.channels[0].devices[0].health()
    # The 02:00 record is read at the first poll 30 s after the hour (02:01).
    assert first["archive_newest"]["hourly"] == parse_iso("2026-11-20T01:00:00Z")
    runtime.stop()
    clock.advance(3 * 3600)  # the engine is down until 05:00:45
    cfg = runtime.cfg
    again = Runtime(cfg, clock, base_dir=tmp_path)
    channel = again.channels[0]
    channel.link = SimWire(channel.scheduler, SimBus(field.channels["bus"].devices, clock, latency=0.02))
    again.start()
    try:
        run_until(clock, clock.seconds() + 600)
        device = channel.devices[0]
        # 02:00 to 05:00 hourly; the daily and monthly records were read before.
        assert device.health()["archive_records"] == 4
        assert first["archive_records"] >= 48
        assert device.health()["archive_newest"]["hourly"] == parse_iso("2026-11-20T05:00:00Z")
    finally:
        again.stop()
