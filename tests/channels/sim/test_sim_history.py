"""Simulated history: tag names as the live drivers make them, physics, gaps, grid and batches."""

from __future__ import annotations

import math
import textwrap
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from channels.sim.history import (
    HistorySimulator,
    gap_range,
    history_times,
    parse_gap,
    resolve_gaps,
    simulate_history,
)
from scada.channelstats import channel_device
from scada.config import load_config
from scada.config.alarms import SYSTEM_TAGS, site_tags
from tags.quality import Quality

MSK = ZoneInfo("Europe/Moscow")
#: 2026-11-19 12:30 Moscow time: the end of the histories below.
UNTIL = datetime(2026, 11, 19, 12, 30, tzinfo=MSK).timestamp()
HOUR, DAY = 3600.0, 86400.0

SITE = textwrap.dedent("""\
    site: {name: tiny, timezone: Europe/Moscow}
    simulate: true
    channels:
      - name: bus
        type: modbus-rtu
        transport: {tcp: 127.0.0.1:1}
        devices:
          - {name: b1-cold, address: 1, profile: generic_water_meter,
             sim: {model: building_water, kind: cold, sum_of: "b1-kv*-cold", losses: 0.05}}
          - {name: b1-el, address: 2, profile: generic_electricity_meter,
             sim: {model: building_electricity, sum_of: "b1-kv*-el"}}
          - {name: b1-heat, address: 3, profile: generic_heat_meter}
          - {name: b1-kv01-cold, address: 11, profile: generic_water_meter}
          - {name: b1-kv02-cold, address: 21, profile: generic_water_meter}
          - {name: b1-kv01-el, address: 13, profile: generic_electricity_meter}
          - {name: b1-kv02-el, address: 23, profile: generic_electricity_meter}
          - {name: b1-off, address: 30, profile: generic_water_meter, enabled: false}
      - name: mbus
        type: mbus
        transport: {tcp: 127.0.0.1:2}
        devices:
          - {name: m-heat, address: 1, profile: mbus_heat_meter, sim: {model: heat_meter}}
          - {name: m-kv01-cold, secondary: "30000101", sim: {model: water_meter, kind: cold}}
      - name: lora
        type: lorawan
        devices:
          - {name: l-water, dev_eui: 70B3D59BA0000500, decoder: vega_si11,
             decoder_options: {inputs: {1: {name: cold_m3, litres_per_pulse: 10}}},
             sim: {inputs: {cold_m3: {model: building_water, kind: cold, sum_of: "l-kv*"}}}}
          - {name: l-kv01, dev_eui: 70B3D59BA0000511, decoder: pulse_counter_le,
             decoder_options: {litres_per_pulse: 1}, sim: {model: water_meter, kind: cold}}
          - {name: l-kv02, dev_eui: 70B3D59BA0000512, decoder: pulse_counter_le,
             decoder_options: {litres_per_pulse: 1, initial_m3: 3.5}, sim: {model: water_meter, kind: cold}}
      - name: hand
        type: manual
        devices:
          - {name: h-kv01-cold, serial: "X-1", points: [{name: volume_m3, unit: m3}]}
          - {name: h-kv01-el, serial: "X-2", points: [{name: energy_kwh, unit: kWh}, {name: note, unit: ""}]}
          - {name: h-kv02-cold, serial: "X-3", profile: generic_water_meter}
    """)

#: Points that only grow (counters), by their last name part.
COUNTERS = ("volume_m3", "energy_kwh", "energy_t1_kwh", "energy_t2_kwh", "cold_m3", "volume", "energy")


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    """Return the tiny site's config."""
    path = tmp_path_factory.mktemp("site") / "site.yaml"
    path.write_text(SITE, encoding="utf-8")
    config, _ = load_config(path)
    return config


@pytest.fixture(scope="module")
def history(cfg):
    """Return (times, samples) of two days hourly and 35 days daily (one round of hand readings), no gaps."""
    times = history_times(UNTIL, 2 * DAY, 35 * DAY, "Europe/Moscow")
    samples = [s for batch in HistorySimulator(cfg).batches(times) for s in batch]
    return times, samples


def by_tag(samples):
    out: dict[str, list] = {}
    for s in samples:
        out.setdefault(s.name, []).append(s)
    return out


def test_tag_names_are_those_of_the_live_drivers(cfg, history):
    """Every device's tags are the ones `scada check` knows; automatic M-Bus ones are named like the driver."""
    _, samples = history
    made = {s.name for s in samples}
    known = site_tags(cfg.channels, cfg.profiles)
    # Channel statistics (channel-<ch>.*) come from the running engine, not from meters.
    engine = {channel_device(c.name) for c in cfg.channels}
    expected = {t for t, device in known.tags.items()
                if t not in SYSTEM_TAGS and device not in known.automatic and device not in engine}
    automatic = {t for t in made if t.split(".")[0] in known.automatic}
    # Crews write down counters only: not a note, nor the flow or temperature a profile also lists.
    not_read = {"h-kv01-el.note"} | {f"h-kv02-cold.{p}" for p in ("flow_m3h", "temperature_c", "error_code")}
    assert made - automatic == expected - not_read
    assert automatic == {"m-kv01-cold." + p for p in ("status", "clock_drift_s", "volume", "volume_flow",
                                                       "flow_temperature")}
    assert not any(t.startswith("b1-off.") for t in made)


def test_modbus_values_are_rounded_to_the_register_scale(cfg, history):
    """A u32 of 0.001 m3 carries litres; BCD of 0.01 kWh carries hundredths; no float noise."""
    _, samples = history
    for s in samples:
        if s.name.endswith("volume_m3") and s.name.startswith("b1-"):
            assert s.value == round(s.value, 3)
        if s.name.startswith("b1-") and s.name.endswith("_kwh"):
            assert s.value == round(s.value, 2)


def test_building_meters_are_their_members_plus_losses_at_every_time(cfg, history):
    """(1 + losses) × Σ members at each timestamp, within the registers' resolution."""
    times, samples = history
    tags = by_tag(samples)
    value = {name: {s.ts: s.value for s in items} for name, items in tags.items()}
    cases = [("b1-cold.volume_m3", ["b1-kv01-cold.volume_m3", "b1-kv02-cold.volume_m3"], 0.05, 0.0005, 0.0005),
             ("b1-el.energy_kwh", ["b1-kv01-el.energy_kwh", "b1-kv02-el.energy_kwh"], 0.02, 0.005, 0.005),
             ("l-water.cold_m3", ["l-kv01.volume_m3", "l-kv02.volume_m3"], 0.03, 0.005, 0.0005)]
    for building, members, losses, own, each in cases:
        assert sorted(value[building]) == times
        for t in times:
            # l-kv02's counter starts at its initial reading: the decoder gives the meter's total back.
            total = sum(value[m][t] for m in members)
            assert value[building][t] == pytest.approx((1 + losses) * total,
                                                       abs=own + (1 + losses) * len(members) * each), (building, t)


def test_counters_never_run_backwards(history):
    """Every cumulative register is monotonic over the whole history."""
    _, samples = history
    for name, items in by_tag(samples).items():
        if name.split(".", 1)[1] in COUNTERS:
            values = [s.value for s in sorted(items, key=lambda s: s.ts)]
            assert values == sorted(values), name


def test_qualities_and_hand_readings(cfg, history):
    """Measured samples are good; hand readings are manual, monthly, between the 20th and the 25th."""
    times, samples = history
    manual = [s for s in samples if s.quality is Quality.MANUAL]
    assert {s.quality for s in samples} == {Quality.GOOD, Quality.MANUAL}
    assert {s.name for s in manual} == {"h-kv01-cold.volume_m3", "h-kv01-el.energy_kwh", "h-kv02-cold.volume_m3"}
    for s in manual:
        local = datetime.fromtimestamp(s.ts, MSK)
        assert 20 <= local.day <= 25 and 9 <= local.hour < 18
        assert times[0] <= s.ts <= times[-1]
    assert len(manual) == 3  # October's; November's are not due before the 20th
    readings = [s for ts, meter in HistorySimulator(cfg).manual_times(UNTIL - 72 * DAY, UNTIL)
                for s in meter.readings(ts)]
    cold = sorted((s for s in readings if s.name == "h-kv01-cold.volume_m3"), key=lambda s: s.ts)
    assert [datetime.fromtimestamp(s.ts, MSK).month for s in cold] == [9, 10]
    assert cold[0].value < cold[1].value and cold[0].value == round(cold[0].value, 3)


def test_time_grid_hourly_then_daily():
    """Local midnights before the hourly span, whole hours in it; ``since`` keeps what is later."""
    times = history_times(UNTIL, 2 * DAY, 10 * DAY, "Europe/Moscow")
    hourly_from = UNTIL - 2 * DAY
    daily = [t for t in times if t < hourly_from]
    hourly = [t for t in times if t >= hourly_from]
    assert len(daily) == 10 and all(datetime.fromtimestamp(t, MSK).strftime("%H:%M") == "00:00" for t in daily)
    assert {b - a for a, b in zip(daily, daily[1:])} == {DAY}
    assert {b - a for a, b in zip(hourly, hourly[1:])} == {HOUR}
    assert hourly[0] == UNTIL - 2 * DAY + 30 * 60 and hourly[-1] == UNTIL - 30 * 60 and len(hourly) == 48
    assert history_times(UNTIL, 2 * DAY, 10 * DAY, "Europe/Moscow", since=hourly[5]) == hourly[6:]
    # A zone with daylight saving: midnights stay local midnights over the October change.
    berlin = ZoneInfo("Europe/Berlin")
    end = datetime(2026, 11, 5, tzinfo=berlin).timestamp()
    days = history_times(end, 0.0, 20 * DAY, "Europe/Berlin")
    assert all(datetime.fromtimestamp(t, berlin).hour == 0 for t in days[:-1])
    assert DAY + HOUR in {b - a for a, b in zip(days, days[1:])}
    with pytest.raises(ValueError):
        history_times(UNTIL, -1.0, 0.0)


def test_batches_are_about_the_size_asked(cfg):
    """Each batch but the last reaches the size within one time step; together they are the whole history."""
    simulator = HistorySimulator(cfg)
    times = history_times(UNTIL, DAY, 0.0, "Europe/Moscow")
    per_step = len(simulator.sample(times[0]))
    batches = list(simulator.batches(times, batch_size=100))
    assert all(100 <= len(b) < 100 + per_step for b in batches[:-1])
    assert 0 < len(batches[-1]) < 100 + per_step
    flat = [s for b in batches for s in b]
    assert [s.ts for s in flat] == sorted(s.ts for s in flat)
    assert len(flat) == sum(len(b) for b in simulator.batches(times, batch_size=10**6))
    with pytest.raises(ValueError):
        list(simulator.batches(times, batch_size=0))


def test_the_same_settings_give_the_same_samples(cfg):
    """A second run computes exactly the same points (tag, time, value)."""
    times = history_times(UNTIL, 6 * HOUR, 2 * DAY, "Europe/Moscow")
    first = [s for b in HistorySimulator(cfg).batches(times) for s in b]
    assert first == [s for b in HistorySimulator(cfg).batches(times) for s in b]


def test_gaps_leave_a_device_out(cfg):
    """No sample of the device inside its gaps, the others untouched; a month gap keeps its opening reading."""
    until = datetime(2026, 11, 19, 12, 0, tzinfo=MSK).timestamp()
    gaps = {"b1-kv01-cold": ["month-1", ["2026-11-18T06:00", "2026-11-18T09:00"]], "h-kv01-cold": ["2026-10"],
            "l-kv01": ["2026-11-19/2026-11-19T06:00"]}
    ranges = resolve_gaps(gaps, until, "Europe/Moscow")
    samples = [s for b in simulate_history(cfg, until, 2 * DAY, 50 * DAY, gaps) for s in b]
    tags = by_tag(samples)
    kv01 = [s.ts for s in tags["b1-kv01-cold.volume_m3"]]
    oct1 = datetime(2026, 10, 1, tzinfo=MSK).timestamp()
    nov1 = datetime(2026, 11, 1, tzinfo=MSK).timestamp()
    assert oct1 in kv01 and nov1 not in kv01
    assert not [t for t in kv01 if oct1 < t <= nov1]
    h18 = datetime(2026, 11, 18, tzinfo=MSK).timestamp()
    assert not [t for t in kv01 if h18 + 6 * HOUR <= t < h18 + 9 * HOUR] and h18 + 9 * HOUR in kv01
    others = {s.ts for s in tags["b1-kv02-cold.volume_m3"]}
    assert others - set(kv01) == {t for t in others if any(a <= t < b for a, b in ranges["b1-kv01-cold"])}
    assert len(others - set(kv01)) == 31 + 3  # October's days up to 1 November, three hours on the 18th
    for device, spans in ranges.items():
        for s in samples:
            if s.name.startswith(device + "."):
                assert not any(a <= s.ts < b for a, b in spans), (s.name, s.ts)
    # The history reaches back to 28 September: October's hand reading was the only one, and it is missing.
    assert "h-kv01-cold.volume_m3" not in tags
    assert [datetime.fromtimestamp(s.ts, MSK).month for s in tags["h-kv01-el.energy_kwh"]] == [10]
    with pytest.raises(ValueError, match="unknown device 'nobody'"):
        HistorySimulator(cfg, {"nobody": [(0.0, 1.0)]})


@pytest.mark.parametrize("text, expected", [
    ("month-1", ("2026-10-01T00:00:01", "2026-11-01T00:00:01")),
    ("month-11", ("2025-12-01T00:00:01", "2026-01-01T00:00:01")),
    ("2026-02", ("2026-02-01T00:00:01", "2026-03-01T00:00:01")),
    (["2026-03-05", "2026-03-06T12:00"], ("2026-03-05T00:00:00", "2026-03-06T12:00:00")),
    ("2026-03-05T10:00Z/2026-03-05T11:00Z", ("2026-03-05T13:00:00", "2026-03-05T14:00:00")),
])
def test_gap_forms(text, expected):
    """Months (absolute and relative to the end) and ranges, in site local time."""
    start, end = gap_range(parse_gap(text), UNTIL, "Europe/Moscow")
    assert tuple(datetime.fromtimestamp(t, MSK).replace(tzinfo=None).isoformat() for t in (start, end)) == expected


@pytest.mark.parametrize("bad, message", [
    ("month-0", "count from 1"), ("2026-13", "not a month"), ("yesterday", "not a gap"),
    (["2026-03-06", "2026-03-05"], "before the end"), (["2026-03-06"], "two ends"), (5, "not a gap"),
    ("2026-03-xx/2026-04-01", "not an ISO 8601"),
])
def test_bad_gaps_are_named(bad, message):
    """A gap that cannot be read says which and why."""
    with pytest.raises(ValueError, match=message):
        parse_gap(bad)


def test_archive_marks_and_fingerprint(cfg):
    """Archive marks: each archive's newest boundary at the end; the fingerprint follows the settings."""
    simulator = HistorySimulator(cfg)
    marks = simulator.archive_marks(UNTIL)
    assert marks["b1-kv01-cold"] == {"hourly": UNTIL - 30 * 60,
                                     "daily": datetime(2026, 11, 19, tzinfo=MSK).timestamp(),
                                     "monthly": datetime(2026, 11, 1, tzinfo=MSK).timestamp()}
    assert marks["m-heat"] == {"monthly": datetime(2026, 11, 1, tzinfo=MSK).timestamp()}
    assert "l-kv01" not in marks and "h-kv01-cold" not in marks
    base = simulator.fingerprint(DAY, DAY)
    assert base == HistorySimulator(cfg).fingerprint(DAY, DAY)
    other_gaps = simulator.fingerprint(DAY, DAY, {"b1-el": ["month-1"]})
    assert len({base, simulator.fingerprint(2 * DAY, DAY), other_gaps}) == 3
    assert math.isfinite(float(base))
