"""Tests for the meter physics: monotone counters, coherent rates, sane ranges."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.sim.models import (
    DAY,
    HOUR,
    MODELS,
    BuildingElectricity,
    BuildingHeat,
    BuildingWater,
    DailyProfile,
    ElectricityMeter,
    HeatMeter,
    PeriodicIntegral,
    WaterMeter,
    create_model,
    heating_schedule,
    seed_for,
    standard_utc_offset,
)
from tests.channels.sim.sim_fixtures import T0

MSK = 3 * 3600
COUNTERS = ("volume_m3", "energy_kwh", "energy_t1_kwh", "energy_t2_kwh", "operating_h")


def _models():
    cold = [WaterMeter(seed_for(f"kv{i}-cold"), hot=False) for i in range(3)]
    hot = [WaterMeter(seed_for(f"kv{i}-hot"), hot=True) for i in range(3)]
    el = [ElectricityMeter(seed_for(f"kv{i}-el")) for i in range(3)]
    heat = [HeatMeter(seed_for(f"kv{i}-heat")) for i in range(2)]
    return {
        "cold": cold[0],
        "hot": hot[0],
        "electricity": el[0],
        "heat": heat[0],
        "building_water": create_model("building_water", 1, MSK, {}, cold),
        "building_heat": create_model("building_heat", 2, MSK, {}, heat),
        "building_electricity": create_model("building_electricity", 3, MSK, {}, el),
    }


MODEL_SET = _models()
#: Local midnight in Moscow on the test day.
MIDNIGHT = math.floor((T0 + MSK) / DAY) * DAY - MSK


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(sorted(MODEL_SET)),
    t1=st.floats(min_value=1.5e9, max_value=2.1e9),
    dt=st.floats(min_value=1e-3, max_value=4e7),
)
def test_counters_never_go_backwards(kind, t1, dt):
    """Every counter of every model is non-decreasing in time."""
    model = MODEL_SET[kind]
    before = dict(model.values(t1))
    after = model.values(t1 + dt)
    for name in COUNTERS:
        if name in before:
            assert after[name] >= before[name], name


@given(t=st.floats(min_value=1.5e9, max_value=2.1e9))
def test_values_are_a_pure_function_of_time(t):
    """A fresh model with the same seed gives the same values, whatever was asked before."""
    first = WaterMeter(42, hot=True).values(t)
    other = WaterMeter(42, hot=True)
    other.values(t - 12345.0)
    assert dict(other.values(t)) == dict(first)


@pytest.mark.parametrize("kind, counter, rate, per_hour", [
    ("cold", "volume_m3", "flow_m3h", True),
    ("hot", "volume_m3", "flow_m3h", True),
    ("heat", "volume_m3", "flow_m3h", True),
    ("heat", "energy_kwh", "power_kw", True),
    ("electricity", "energy_kwh", "power_kw", True),
])
def test_counter_grows_at_the_reported_rate(kind, counter, rate, per_hour):
    """The counter's derivative matches the instantaneous flow or power."""
    model = MODEL_SET[kind]
    for hours in (3.2, 8.1, 13.7, 20.4):
        t = MIDNIGHT + hours * HOUR
        slope = (model.values(t + 1)[counter] - model.values(t - 1)[counter]) / 2 * HOUR
        assert slope == pytest.approx(model.values(t)[rate], rel=5e-3)


@pytest.mark.parametrize("hot, low, high", [(False, 0.1, 0.3), (True, 0.05, 0.15)])
def test_daily_water_use_is_that_of_one_apartment(hot, low, high):
    """An apartment draws 0.1-0.3 m3 of cold and 0.05-0.15 m3 of hot water a day."""
    for i in range(20):
        meter = WaterMeter(seed_for(f"apartment-{i}"), hot=hot)
        used = meter.values(MIDNIGHT + DAY)["volume_m3"] - meter.values(MIDNIGHT)["volume_m3"]
        assert low <= used <= high
        assert 50 <= meter.initial_m3 <= 400


def test_water_use_peaks_in_the_morning_and_evening():
    """Flow at 08:00 and 20:00 local time is well above flow at 03:00."""
    meter = MODEL_SET["cold"]
    night = meter.values(MIDNIGHT + 3 * HOUR)["flow_m3h"]
    assert meter.values(MIDNIGHT + 8 * HOUR)["flow_m3h"] > 3 * night
    assert meter.values(MIDNIGHT + 20 * HOUR)["flow_m3h"] > 3 * night


def test_flow_changes_from_minute_to_minute():
    """Consecutive minutes give different flows at the water meter's resolution (1 l/h)."""
    meter = MODEL_SET["cold"]
    flows = [round(meter.values(MIDNIGHT + 8 * HOUR + 60 * m)["flow_m3h"], 3) for m in range(10)]
    assert len(set(flows)) >= 8


@pytest.mark.parametrize("hot, low, high", [(False, 6.0, 12.0), (True, 55.0, 62.0)])
def test_water_temperature_stays_in_range(hot, low, high):
    """Cold water is 6-12 C and hot water 55-62 C at any time of day."""
    for i in range(10):
        meter = WaterMeter(seed_for(f"t-{i}"), hot=hot)
        for minute in range(0, 1440, 7):
            assert low <= meter.values(MIDNIGHT + 60 * minute)["temperature_c"] <= high


def test_electricity_ranges_and_ohms_law():
    """Power stays in 0.1-3 kW, voltage in 220-235 V, and I = P / V."""
    for i in range(10):
        meter = ElectricityMeter(seed_for(f"el-{i}"))
        for minute in range(0, 1440, 5):
            v = meter.values(MIDNIGHT + 60 * minute)
            assert 0.1 <= v["power_kw"] <= 3.0
            assert 220.0 <= v["voltage_v"] <= 235.0
            assert v["current_a"] == pytest.approx(v["power_kw"] * 1000 / v["voltage_v"])
            assert v["energy_kwh"] == pytest.approx(v["energy_t1_kwh"] + v["energy_t2_kwh"])


def test_tariff_zones_follow_local_time():
    """Only T2 advances at night (23-07 local) and only T1 by day."""
    meter = MODEL_SET["electricity"]
    night0, night1 = meter.values(MIDNIGHT + 1 * HOUR), meter.values(MIDNIGHT + 6 * HOUR)
    assert night1["energy_t1_kwh"] == pytest.approx(night0["energy_t1_kwh"], abs=1e-9)
    assert night1["energy_t2_kwh"] > night0["energy_t2_kwh"]
    day0, day1 = meter.values(MIDNIGHT + 8 * HOUR), meter.values(MIDNIGHT + 22 * HOUR)
    assert day1["energy_t2_kwh"] == pytest.approx(day0["energy_t2_kwh"], abs=1e-9)
    assert day1["energy_t1_kwh"] > day0["energy_t1_kwh"]


def test_heating_schedule_is_95_70_at_design_temperature():
    """The schedule gives 95/70 C at -25 C outside and no heat at 20 C."""
    assert heating_schedule(-25.0) == pytest.approx((95.0, 70.0))
    assert heating_schedule(20.0) == pytest.approx((20.0, 20.0))
    supply, back = heating_schedule(-5.0)
    assert 70.0 > supply > back > 20.0


def test_heat_meter_power_is_flow_times_temperature_drop():
    """P = 1.163 * G * (T1 - T2), and operating hours count from commissioning."""
    meter = MODEL_SET["heat"]
    v = meter.values(T0)
    assert v["power_kw"] == pytest.approx(1.163 * v["flow_m3h"] * (v["t_supply_c"] - v["t_return_c"]))
    assert v["operating_h"] == math.floor((T0 - meter.commissioned) / HOUR)
    later = meter.values(T0 + 2 * HOUR)
    assert later["operating_h"] == v["operating_h"] + 2
    assert v["error_code"] == 0


@pytest.mark.parametrize("kind, summed, losses", [
    ("building_water", ("volume_m3", "flow_m3h"), 0.03),
    ("building_heat", ("energy_kwh", "volume_m3", "flow_m3h", "power_kw"), 0.08),
    ("building_electricity", ("energy_kwh", "energy_t1_kwh", "energy_t2_kwh", "power_kw"), 0.02),
])
def test_building_meter_is_the_sum_of_its_members_plus_losses(kind, summed, losses):
    """A building meter reads (1 + losses) times the sum of its members."""
    building = MODEL_SET[kind]
    assert building.losses == losses
    for t in (T0, T0 + 5 * HOUR):
        values = building.values(t)
        for name in summed:
            total = sum(m.values(t)[name] for m in building.members)
            assert values[name] == pytest.approx(total * (1 + losses)), name


def test_building_meter_takes_temperatures_from_its_own_meter():
    """Temperatures and voltage are not summed; current follows the summed power."""
    water = MODEL_SET["building_water"]
    assert isinstance(water, BuildingWater)
    assert 6 <= water.values(T0)["temperature_c"] <= 12
    heat = MODEL_SET["building_heat"]
    assert isinstance(heat, BuildingHeat)
    assert heat.values(T0)["t_supply_c"] == pytest.approx(heat.own.values(T0)["t_supply_c"])
    el = MODEL_SET["building_electricity"]
    assert isinstance(el, BuildingElectricity)
    v = el.values(T0)
    assert v["current_a"] == pytest.approx(v["power_kw"] * 1000 / v["voltage_v"])


def test_create_model_options():
    """Options override drawn parameters; unknown names are rejected."""
    meter = create_model("water_meter", 7, MSK, {"kind": "hot", "daily_m3": 0.1, "initial_m3": 100})
    assert isinstance(meter, WaterMeter) and meter.hot
    assert meter.daily_m3 == 0.1
    assert create_model("building_water", 7, MSK, {"losses": 0.1}, []).losses == 0.1
    assert set(MODELS) == {"water_meter", "heat_meter", "electricity_meter",
                           "building_water", "building_heat", "building_electricity"}
    with pytest.raises(ValueError, match="unknown simulation model"):
        create_model("gas_meter", 7)
    with pytest.raises(ValueError, match="kind"):
        create_model("water_meter", 7, MSK, {"kind": "warm"})


def test_unknown_points_read_as_zero():
    """A point name the model does not know reads 0."""
    assert MODEL_SET["cold"].value("no_such_point", T0) == 0.0
    assert MODEL_SET["cold"].value("volume_m3", T0) > 0


def test_standard_offset_ignores_daylight_saving():
    """Moscow is UTC+3; Berlin is UTC+1 and Sydney UTC+10 outside DST."""
    assert standard_utc_offset("Europe/Moscow") == 3 * 3600
    assert standard_utc_offset(None) == 3 * 3600
    assert standard_utc_offset("Europe/Berlin") == 3600
    assert standard_utc_offset("Australia/Sydney") == 10 * 3600


def test_daily_profile_integrates_to_its_daily_total():
    """A whole day integrates to per_day from any starting time."""
    profile = DailyProfile([1.0 + (h % 5) for h in range(24)], per_day=2.0, utc_offset=MSK, phase=0.7)
    for start in (T0, T0 + 1234.5, T0 + 0.5 * DAY):
        assert profile.cumulative(start + DAY) - profile.cumulative(start) == pytest.approx(2.0, rel=1e-9)


def test_periodic_integral_matches_a_known_integral():
    """The tabulated integral of 1 + sin is exact enough and periodic."""
    def func(t):
        """Return a daily wave around 1."""
        return 1.0 + math.sin(2 * math.pi * t / DAY)
    integral = PeriodicIntegral(func)
    assert integral(DAY) == pytest.approx(DAY)
    exact = DAY / 4 + DAY / (2 * math.pi)
    assert integral(DAY / 4) == pytest.approx(exact, rel=1e-9)
    assert integral(3 * DAY + DAY / 4) == pytest.approx(3 * DAY + exact, rel=1e-9)
