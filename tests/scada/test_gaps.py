"""GET /api/v1/devices/{name}/gaps and scada/gaps.py, on a runtime driven by a memory clock (no ports)."""

from __future__ import annotations

import asyncio
import textwrap

import pytest
from twisted.internet.testing import MemoryReactorClock

from channels.archive import ArchiveSpec
from scada import gaps
from scada.api import build_app
from scada.app import Runtime
from scada.config import load_config
from tags.model import Sample
from tags.quality import Quality
from tags.timefmt import parse_iso

NOW = parse_iso("2026-11-21T12:20:00Z")
SITE = textwrap.dedent("""\
    site: {name: gaps test, timezone: Europe/Moscow}
    api: {auth: false}  # these tests are about the data; tests/scada/test_api_roles.py covers auth
    history: {backend: sqlite, path: var/history.db}
    channels:
      - name: gw
        type: modbus-rtu
        transport: {tcp: 127.0.0.1:1}
        devices:
          - {name: w1, address: 1, profile: generic_water_meter, poll: 10s}
          - {name: plain, address: 2, profile: plain, poll: 10s}
    profiles:
      plain:
        points:
          - {name: volume_m3, function: holding, register: 0, type: u32, scale: 0.001}
    """)


def at(text: str) -> float:
    return parse_iso(text)


@pytest.fixture()
def api(tmp_path):
    """Return (runtime, call, write): call(path) -> (status, json); write(tag, iso, quality) adds history."""
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    cfg, _ = load_config(site)
    clock = MemoryReactorClock()
    clock.advance(NOW)
    runtime = Runtime(cfg, clock, base_dir=tmp_path)
    app = build_app(runtime)
    loop = asyncio.new_event_loop()

    def call(path: str):
        _, response = loop.run_until_complete(app.asgi_client.get(path))
        return response.status, response.json

    def write(times, tag="w1.volume_m3", quality=Quality.GOOD):
        runtime.historian.write([Sample(tag, 1.0, quality, at(t)) for t in times])
        runtime.historian.flush()

    yield runtime, call, write
    runtime.historian.close()
    loop.close()


def hourly(body):
    return next(a for a in body["archives"] if a["name"] == "hourly")


def test_unknown_device_is_404(api):
    _, call, _ = api
    status, body = call("/api/v1/devices/nope/gaps")
    assert status == 404 and body == {"error": "unknown device 'nope'"}


@pytest.mark.parametrize("query, message", [
    ("?since=2026-11-20", "unknown parameter 'since' (use from, to)"),
    ("?from=yesterday", "from='yesterday' is not an ISO 8601 time (e.g. 2026-11-21T07:00:00Z)"),
    ("?to=2026-13-01", "to='2026-13-01' is not an ISO 8601 time (e.g. 2026-11-21T07:00:00Z)"),
    ("?from=2026-11-21T10:00:00Z&to=2026-11-21T09:00:00Z",
     "from (2026-11-21T10:00:00.000Z) must be before to (2026-11-21T09:00:00.000Z)"),
    ("?from=1960-01-01", "from='1960-01-01' is outside 1970-01-01 .. 9998-12-31"),
])
def test_bad_arguments_are_400_naming_the_value(api, query, message):
    _, call, _ = api
    status, body = call("/api/v1/devices/w1/gaps" + query)
    assert status == 400 and body == {"error": message}


@pytest.mark.parametrize("since", ["2020-01-01T00:00:00Z", "1970-01-01T00:00:00Z"])
def test_too_many_slots_is_400(api, since):
    """Too long a span is refused before anything is enumerated or read."""
    _, call, _ = api
    status, body = call(f"/api/v1/devices/w1/gaps?from={since}&to=9000-01-01T00:00:00Z")
    assert status == 400
    assert body["error"].startswith(f"from={since[:19]}.000Z to=9000-01-01T00:00:00.000Z spans ")
    assert body["error"].endswith("archive slots of device 'w1'; at most 10000 per request: narrow from/to")


def test_just_under_the_slot_limit_is_answered(api):
    """About 400 days of hourly, daily and monthly slots fit."""
    _, call, _ = api
    status, body = call("/api/v1/devices/w1/gaps?from=2025-10-20T00:00:00Z")
    # 397 days of hours, and the 13 hours of today up to the one under way at 12:20.
    assert status == 200 and hourly(body)["expected"] == 397 * 24 + 13
    assert sum(a["expected"] for a in body["archives"]) <= 10_000


def test_defaults_to_the_last_week_and_lists_every_archive(api):
    """Without from/to: the seven days before now; each archive with its interval and tags."""
    _, call, _ = api
    status, body = call("/api/v1/devices/w1/gaps")
    assert status == 200
    assert (body["device"], body["from"], body["to"]) == ("w1", "2026-11-14T12:20:00.000Z",
                                                          "2026-11-21T12:20:00.000Z")
    assert [(a["name"], a["interval"], a["interval_s"], a["tags"]) for a in body["archives"]] == [
        ("hourly", "1h", 3600.0, ["w1.volume_m3"]), ("daily", "1d", 86400.0, ["w1.volume_m3"]),
        ("monthly", "month", None, ["w1.volume_m3"])]
    # Nothing in history: every slot is missing, in one gap per archive.
    hours = hourly(body)
    assert hours["expected"] == hours["missing"] == 7 * 24
    assert hours["gaps"] == [{"from": "2026-11-14T13:00:00.000Z", "to": "2026-11-21T13:00:00.000Z",
                              "missing": 168}]


def test_device_without_archives(api):
    _, call, _ = api
    status, body = call("/api/v1/devices/plain/gaps")
    assert status == 200 and body["archives"] == []


def test_only_usable_samples_cover_a_slot(api):
    """Good and backfilled samples cover their slot; comm_loss samples (no value) leave it missing."""
    _, call, write = api
    write(["2026-11-21T00:10:00Z", "2026-11-21T01:59:59Z", "2026-11-21T05:30:00Z", "2026-11-21T08:15:00Z",
           "2026-11-21T09:00:00Z"])
    write(["2026-11-21T06:00:00Z", "2026-11-21T07:00:00Z"], quality=Quality.BACKFILLED)
    write(["2026-11-21T02:30:00Z", "2026-11-21T03:30:00Z"], quality=Quality.COMM_LOSS)
    status, body = call("/api/v1/devices/w1/gaps?from=2026-11-21T00:00:00Z&to=2026-11-21T10:00:00Z")
    assert status == 200
    hours = hourly(body)
    assert (hours["expected"], hours["missing"]) == (10, 3)
    assert hours["gaps"] == [{"from": "2026-11-21T02:00:00.000Z", "to": "2026-11-21T05:00:00.000Z", "missing": 3}]


def test_gap_merging_exactly(api):
    """Slots 02-04 have nothing usable, 07 neither: two gaps, merged where consecutive."""
    _, call, write = api
    write(["2026-11-21T00:10:00Z", "2026-11-21T01:59:59Z", "2026-11-21T05:30:00Z", "2026-11-21T06:00:00Z",
           "2026-11-21T08:15:00Z", "2026-11-21T09:00:00Z"])
    write(["2026-11-21T02:30:00Z", "2026-11-21T07:30:00Z"], quality=Quality.COMM_LOSS)
    _, body = call("/api/v1/devices/w1/gaps?from=2026-11-21T00:00:00Z&to=2026-11-21T10:00:00Z")
    hours = hourly(body)
    assert (hours["expected"], hours["missing"]) == (10, 4)
    assert hours["gaps"] == [
        {"from": "2026-11-21T02:00:00.000Z", "to": "2026-11-21T05:00:00.000Z", "missing": 3},
        {"from": "2026-11-21T07:00:00.000Z", "to": "2026-11-21T08:00:00.000Z", "missing": 1}]


def test_daily_slots_begin_at_local_midnight(api):
    """Moscow days begin at 21:00 UTC: a reading at 22:00 UTC covers the next local day, one at 20:00 not."""
    _, call, write = api
    write(["2026-11-18T22:00:00Z", "2026-11-20T20:59:59Z"])
    _, body = call("/api/v1/devices/w1/gaps?from=2026-11-18T00:00:00Z&to=2026-11-21T12:00:00Z")
    days = next(a for a in body["archives"] if a["name"] == "daily")
    # Slots start 2026-11-18T21:00Z, 19T21:00Z, 20T21:00Z.
    assert (days["expected"], days["missing"]) == (3, 1)
    assert days["gaps"] == [{"from": "2026-11-20T21:00:00.000Z", "to": "2026-11-21T21:00:00.000Z", "missing": 1}]


def test_monthly_slots_are_calendar_months(api):
    """A backfilled reading at 00:00 Moscow on the 1st covers that month's slot."""
    _, call, write = api
    write(["2026-09-30T21:00:00Z"], quality=Quality.BACKFILLED)
    _, body = call("/api/v1/devices/w1/gaps?from=2026-09-01T00:00:00Z&to=2026-11-21T00:00:00Z")
    months = next(a for a in body["archives"] if a["name"] == "monthly")
    assert (months["expected"], months["missing"]) == (2, 1)  # 1 Oct and 1 Nov (Moscow)
    assert months["gaps"] == [{"from": "2026-10-31T21:00:00.000Z", "to": "2026-11-30T21:00:00.000Z",
                               "missing": 1}]


def test_slots_that_have_not_begun_are_not_counted(api):
    """A range reaching past now counts the slots up to the current one."""
    _, call, write = api
    write(["2026-11-21T11:10:00Z", "2026-11-21T12:05:00Z"])
    _, body = call("/api/v1/devices/w1/gaps?from=2026-11-21T11:00:00Z&to=2026-11-22T00:00:00Z")
    assert (hourly(body)["expected"], hourly(body)["missing"]) == (2, 0)


def test_history_down_is_503(api):
    """A history backend that fails the query is a 503 with the reason, not a 500."""
    runtime, call, _ = api

    async def broken(*args, **kwargs):
        raise ConnectionError("influx unreachable")

    runtime.historian.query_agg = broken
    status, body = call("/api/v1/devices/w1/gaps")
    assert status == 503 and body == {"error": "history is not available: influx unreachable"}


def test_devices_endpoint_shows_archive_counters(api):
    _, call, _ = api
    _, body = call("/api/v1/devices")
    w1 = next(d for d in body["devices"] if d["name"] == "w1")
    assert (w1["archive_records"], w1["archive_errors"], w1["last_backfill"]) == (0, 0, None)
    assert w1["archive_newest"] == {"hourly": None, "daily": None, "monthly": None}
    plain = next(d for d in body["devices"] if d["name"] == "plain")
    assert "archive_records" not in plain


@pytest.mark.parametrize("interval, offset, size", [
    (3600.0, 10800, 3600.0), (86400.0, 10800, 10800.0), (86400.0, 0, 86400.0), ("month", 10800, 10800.0),
    (3600.0, 19800, 1800.0), (86400.0, -18000, 3600.0), (900.0, 10800, 900.0),
])
def test_bucket_size_divides_interval_and_offset(interval, offset, size):
    """History buckets never straddle a slot boundary."""
    assert gaps.bucket_size(interval, offset) == size


def test_count_work_counts_slots_and_buckets():
    specs = [ArchiveSpec("hourly", 3600.0, ("a",)), ArchiveSpec("daily", 86400.0, ("a",))]
    start, end = at("2026-11-20T00:00:00Z"), at("2026-11-21T00:00:00Z")
    assert gaps.count_work(specs, start, end, end, 10800) == (24 + 1, 24)
