# -*- test-case-name: tests.channels.sim.test_sim_models -*-
"""Meter physics for the simulators: point values as pure functions of time.

Every model answers ``values(t)``: a mapping from point name to value at Unix
time ``t``, computed from ``t`` and a seed alone.  Counters are integrals of a
non-negative rate evaluated in closed form (or from a table over one period),
so they never run backwards and two reads at the same moment agree however
often and in whatever order the meters are polled.  Nothing here imports
Twisted: the slaves ask for values at their reactor's time.

Consumption follows the site's *standard* local time (the UTC offset outside
daylight saving time).  Following DST would make local time jump, and a
counter whose integral is written in local time would jump with it; Russia
has no DST, so for Russian sites this is exact.
"""

from __future__ import annotations

import math
import random
import zlib
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Protocol, Sequence
from zoneinfo import ZoneInfo

DAY = 86400.0
HOUR = 3600.0
#: Specific heat of water in kWh per m3 and kelvin: P[kW] = 1.163 * G[m3/h] * dT[K].
WATER_HEAT_KWH_M3K = 1.163
#: Commissioning dates are drawn from this window (Unix seconds) so that a
#: seed always yields the same meter, whenever the simulator runs.
COMMISSIONED_FROM = 1577836800.0  # 2020-01-01T00:00:00Z
COMMISSIONED_TO = 1704067200.0  # 2024-01-01T00:00:00Z
#: Default losses between the building meter and the sum of its members.
DEFAULT_LOSSES = {"building_water": 0.03, "building_heat": 0.08, "building_electricity": 0.02}

# Relative hourly water draw in local time: quiet at night, a morning peak at
# 07-09 and an evening peak at 19-22.  Levels are joined linearly between
# whole hours so the flow has no steps.
COLD_WATER_HOURLY = (
    0.30, 0.20, 0.15, 0.15, 0.15, 0.30, 0.90, 2.20, 2.40, 1.50, 0.90, 0.80,
    0.90, 0.90, 0.70, 0.70, 0.80, 1.00, 1.40, 2.00, 2.30, 2.10, 1.40, 0.70,
)
# Hot water is used more for morning showers and evening baths, less for
# drinking and cooking during the day.
HOT_WATER_HOURLY = (
    0.25, 0.15, 0.10, 0.10, 0.10, 0.25, 1.00, 2.60, 2.50, 1.30, 0.70, 0.60,
    0.70, 0.70, 0.50, 0.50, 0.60, 0.90, 1.40, 2.20, 2.60, 2.40, 1.50, 0.60,
)
# Apartment electric power in kW: standby at night, kettle and cooker in the
# morning, cooking, TV and washing in the evening.
ELECTRIC_POWER_HOURLY_KW = (
    0.22, 0.18, 0.18, 0.18, 0.18, 0.22, 0.45, 0.90, 0.80, 0.40, 0.30, 0.30,
    0.40, 0.35, 0.30, 0.30, 0.35, 0.60, 0.95, 1.20, 1.30, 1.10, 0.70, 0.35,
)
#: Day tariff (T1) hours in local time, 07:00-23:00; the rest is night (T2).
DAY_TARIFF_HOURS = tuple(7 <= h < 23 for h in range(24))


def standard_utc_offset(tz_name: str | None) -> int:
    """Return the standard (non-DST) UTC offset of a time zone in seconds.

    The offset is taken at a fixed instant so the result does not depend on
    when the simulator runs; ``None`` means Europe/Moscow.
    """
    zone = ZoneInfo(tz_name or "Europe/Moscow")
    moment = datetime(2024, 1, 15, tzinfo=timezone.utc).astimezone(zone)
    offset = moment.utcoffset() or timedelta(0)
    return int((offset - (moment.dst() or timedelta(0))).total_seconds())


def seed_for(name: str) -> int:
    """Return a seed derived from a device name, stable across runs and hosts.

    ``hash()`` is salted per process, so CRC-32 is used instead.
    """
    return zlib.crc32(name.encode("utf-8"))


class MeterModel(Protocol):
    """What a slave needs from a model: values by point name at a time."""

    def values(self, t: float) -> Mapping[str, float]:
        """Return the point values at Unix time ``t``."""
        ...


# ------------------------------------------------------------- daily profile


class DailyProfile:
    """A daily-periodic rate with a closed-form integral.

    The rate follows 24 hourly levels in local time, joined linearly between
    whole hours, times a ripple ``1 + ripple * sin(2 pi s / ripple_period +
    phase)`` where ``s`` is the second within the hour.  The ripple makes the
    rate change from minute to minute; because its period divides an hour and
    the hourly slopes sum to zero over a day, it adds nothing to a whole day.
    Levels are scaled so that a day integrates to ``per_day``.
    """

    def __init__(
        self,
        hourly: Sequence[float],
        per_day: float,
        utc_offset: float = 0.0,
        ripple: float = 0.3,
        ripple_period: float = 600.0,
        phase: float = 0.0,
    ) -> None:
        """Build the profile; ``rate`` is then in ``per_day`` units per second."""
        if len(hourly) != 24 or min(hourly) <= 0:
            raise ValueError("a daily profile needs 24 positive hourly levels")
        if not 0 <= ripple < 1:
            raise ValueError("ripple must be in [0, 1) to keep the rate positive")
        if HOUR % ripple_period:
            raise ValueError("the ripple period must divide an hour")
        levels = [float(x) for x in hourly]
        self.per_day = float(per_day)
        self.utc_offset = float(utc_offset)
        self._scale = self.per_day / (HOUR * sum(levels))
        self._level = levels
        self._slope = [(levels[(h + 1) % 24] - levels[h]) / HOUR for h in range(24)]
        self._ripple = ripple
        self._omega = 2 * math.pi / ripple_period
        self._phase = phase
        self._hour_total = [self._within_hour(h, HOUR) for h in range(24)]
        self._tables: dict[tuple[bool, ...] | None, tuple[float, list[float]]] = {}

    def _locate(self, t: float) -> tuple[int, int, float]:
        """Split ``t`` into (local day number, hour of day, second in hour)."""
        local = t + self.utc_offset
        day = math.floor(local / DAY)
        rest = local - day * DAY
        hour = min(int(rest // HOUR), 23)
        return day, hour, rest - hour * HOUR

    def _within_hour(self, hour: int, x: float) -> float:
        """Return the integral of the rate from the start of ``hour`` over ``x`` seconds."""
        w, k, a, om, ph = self._level[hour], self._slope[hour], self._ripple, self._omega, self._phase
        # (w + k s)(1 + a sin(om s + ph)) integrated by parts.
        linear = w * x + k * x * x / 2
        ripple = (-(w + k * x) * math.cos(om * x + ph) + w * math.cos(ph)) / om \
            + k * (math.sin(om * x + ph) - math.sin(ph)) / (om * om)
        return self._scale * (linear + a * ripple)

    def _table(self, hours: tuple[bool, ...] | None) -> tuple[float, list[float]]:
        """Return (integral of one day, integral up to each hour) over the selected hours."""
        table = self._tables.get(hours)
        if table is None:
            cumulative = [0.0]
            for h in range(24):
                counted = hours is None or hours[h]
                cumulative.append(cumulative[-1] + (self._hour_total[h] if counted else 0.0))
            table = self._tables[hours] = (cumulative[-1], cumulative)
        return table

    def rate(self, t: float) -> float:
        """Return the rate at ``t`` in ``per_day`` units per second."""
        _, h, s = self._locate(t)
        return self._scale * (self._level[h] + self._slope[h] * s) * (
            1 + self._ripple * math.sin(self._omega * s + self._phase))

    def cumulative(self, t: float, hours: tuple[bool, ...] | None = None) -> float:
        """Return the integral of the rate from the local epoch to ``t``.

        ``hours`` (24 booleans) restricts the integral to the selected local
        hours, which is how tariff registers are computed.
        """
        day, h, s = self._locate(t)
        per_day, upto = self._table(hours)
        total = day * per_day + upto[h]
        if hours is None or hours[h]:
            total += self._within_hour(h, s)
        return total


class PeriodicIntegral:
    """Integral of any smooth non-negative function with period ``period``.

    The function is integrated once over one period with Simpson's rule per
    ``step`` seconds; later queries are a table lookup plus linear
    interpolation inside the step, so the result is a pure, monotone function
    of ``t`` however far ``t`` is from the epoch.
    """

    def __init__(self, func: Any, period: float = DAY, step: float = 60.0) -> None:
        """Tabulate ``func`` (a callable of Unix time) over one period."""
        steps = int(round(period / step))
        if steps * step != period:
            raise ValueError("the step must divide the period")
        self.period = period
        self.step = step
        table = [0.0]
        left = func(0.0)
        for i in range(steps):
            t0 = i * step
            mid = func(t0 + step / 2)
            right = func(t0 + step)
            table.append(table[-1] + step * (left + 4 * mid + right) / 6)
            left = right
        self._table = table
        self._steps = steps

    def __call__(self, t: float) -> float:
        """Return the integral of the function from 0 to ``t``."""
        n = math.floor(t / self.period)
        rest = (t - n * self.period) / self.step
        i = min(int(rest), self._steps - 1)
        frac = rest - i
        table = self._table
        return n * table[-1] + table[i] + (table[i + 1] - table[i]) * frac


# -------------------------------------------------------------------- models


class BaseModel:
    """Common parts of the models: the seed, pinned values and a one-entry value cache.

    A poll cycle often asks the same model several times at the same
    reactor time (several read blocks, or a building meter and its members),
    so the last result is kept.

    A value can be pinned (:meth:`pin`): from a given time on the model
    answers it instead of its physics, as a meter whose sensor reads that
    value would; archive records closed before that time keep their
    physics.  A building meter sums its members' pinned values too.
    """

    name = "base"

    def __init__(self, seed: int) -> None:
        """Keep the seed and prepare an empty cache."""
        self.seed = seed
        self._cache_t: float | None = None
        self._cache: dict[str, float] = {}
        self._pinned: dict[str, tuple[float, float]] = {}

    def values(self, t: float) -> Mapping[str, float]:
        """Return all point values at Unix time ``t``."""
        if t != self._cache_t:
            values = self._compute(t)
            if self._pinned:
                values = {**values, **{name: value for name, (value, since) in self._pinned.items() if t >= since}}
            self._cache = values
            self._cache_t = t
        return self._cache

    def pin(self, name: str, value: float, since: float = float("-inf")) -> None:
        """Answer ``value`` for point ``name`` at every time from ``since`` (Unix seconds) on."""
        self._pinned[name] = (float(value), since)
        self.forget()

    def unpin(self, name: str | None = None) -> None:
        """Let point ``name`` (every point if None) follow the physics again."""
        if name is None:
            self._pinned.clear()
        else:
            self._pinned.pop(name, None)
        self.forget()

    def pin_of(self, name: str) -> tuple[float, float] | None:
        """Return ``(value, since)`` of a pinned point, None if it follows the physics."""
        return self._pinned.get(name)

    @property
    def pinned(self) -> dict[str, float]:
        """Return the pinned values by point name."""
        return {name: value for name, (value, _since) in self._pinned.items()}

    def forget(self) -> None:
        """Drop the cached values (after a pin changed here or in a member of a building meter)."""
        self._cache_t = None

    def _compute(self, t: float) -> dict[str, float]:
        raise NotImplementedError

    def value(self, name: str, t: float) -> float:
        """Return one point at ``t``; unknown names read as 0."""
        return self.values(t).get(name, 0.0)


class WaterMeter(BaseModel):
    """An apartment cold or hot water meter.

    Points: ``volume_m3``, ``flow_m3h``, ``temperature_c``, ``error_code``.
    """

    name = "water_meter"

    def __init__(
        self,
        seed: int,
        hot: bool = False,
        utc_offset: float = 10800.0,
        daily_m3: float | None = None,
        initial_m3: float | None = None,
    ) -> None:
        """Draw the apartment's habits from ``seed``; explicit arguments override them."""
        super().__init__(seed)
        rng = random.Random(seed)
        self.hot = hot
        low, high = (0.05, 0.15) if hot else (0.10, 0.30)
        drawn_daily = rng.uniform(low, high)
        drawn_initial = rng.uniform(50.0, 400.0)
        self.daily_m3 = drawn_daily if daily_m3 is None else float(daily_m3)
        self.initial_m3 = drawn_initial if initial_m3 is None else float(initial_m3)
        self.commissioned = rng.uniform(COMMISSIONED_FROM, COMMISSIONED_TO)
        self.profile = DailyProfile(
            HOT_WATER_HOURLY if hot else COLD_WATER_HOURLY, self.daily_m3, utc_offset,
            ripple=0.3, ripple_period=600.0, phase=rng.uniform(0, 2 * math.pi))
        self._origin = self.profile.cumulative(self.commissioned)
        # Hot water 55-62 C, cold 6-12 C: a base plus a daily swing plus a
        # ripple, each bounded so the sum stays in range.
        self._t_base = rng.uniform(57.5, 59.5) if hot else rng.uniform(7.8, 10.2)
        self._t_phase = rng.uniform(0, 2 * math.pi)

    def _compute(self, t: float) -> dict[str, float]:
        volume = self.initial_m3 + self.profile.cumulative(t) - self._origin
        day_angle = 2 * math.pi * (t % DAY) / DAY + self._t_phase
        temperature = self._t_base + 1.5 * math.sin(day_angle) + 0.3 * math.sin(2 * math.pi * (t % 900.0) / 900.0)
        return {
            # A clamp keeps readings before commissioning at zero; max() is
            # monotone, so the counter still never decreases.
            "volume_m3": max(0.0, volume),
            "flow_m3h": self.profile.rate(t) * HOUR,
            "temperature_c": temperature,
            "error_code": 0.0,
        }


def outdoor_temperature(t: float, utc_offset: float = 10800.0, mean_c: float = -5.0, swing_c: float = 4.0) -> float:
    """Return the outdoor temperature: a smooth daily curve, warmest at 15:00 local."""
    local_hours = ((t + utc_offset) % DAY) / HOUR
    return mean_c + swing_c * math.cos(2 * math.pi * (local_hours - 15.0) / 24.0)


def heating_schedule(t_outdoor: float, supply_design: float = 95.0, return_design: float = 70.0,
                     outdoor_design: float = -25.0, indoor: float = 20.0) -> tuple[float, float]:
    """Return (supply, return) temperatures of a quality-regulated heating schedule.

    The usual radiator formula with exponent 0.8: at the design outdoor
    temperature it gives 95/70 C, at the indoor temperature both reach it.
    """
    load = min(1.0, max(0.0, (indoor - t_outdoor) / (indoor - outdoor_design)))
    mean_excess = (supply_design + return_design) / 2 - indoor
    half_drop = (supply_design - return_design) / 2
    base = indoor + mean_excess * load ** 0.8
    return base + half_drop * load, base - half_drop * load


class HeatMeter(BaseModel):
    """A building heat meter (тепловычислитель) on a 95/70 heating schedule.

    Points: ``energy_kwh``, ``volume_m3``, ``flow_m3h``, ``t_supply_c``,
    ``t_return_c``, ``power_kw``, ``operating_h``, ``error_code``, plus
    ``t_outdoor_c`` for screens that want the weather.
    """

    name = "heat_meter"
    #: Relative amplitude and period (s) of the two flow variations; both
    #: periods divide a day, which keeps the power daily-periodic.
    FLOW_WAVES = ((0.04, 7200.0), (0.015, 600.0))

    def __init__(
        self,
        seed: int,
        utc_offset: float = 10800.0,
        nominal_flow_m3h: float | None = None,
        outdoor_mean_c: float = -5.0,
    ) -> None:
        """Draw the installation from ``seed``; explicit arguments override it."""
        super().__init__(seed)
        rng = random.Random(seed)
        drawn_flow = rng.uniform(3.0, 6.0)
        self.nominal_flow_m3h = drawn_flow if nominal_flow_m3h is None else float(nominal_flow_m3h)
        self.utc_offset = float(utc_offset)
        self.outdoor_mean_c = outdoor_mean_c
        self.commissioned = rng.uniform(COMMISSIONED_FROM, COMMISSIONED_TO)
        self.initial_kwh = rng.uniform(1.0e4, 1.0e5)
        self.initial_m3 = rng.uniform(1.0e3, 1.0e4)
        self._phases = tuple(rng.uniform(0, 2 * math.pi) for _ in self.FLOW_WAVES)
        # Power has no closed-form integral, but it repeats every day, so one
        # day is tabulated and every later query is a lookup.
        self._energy = PeriodicIntegral(lambda t: self._power(t) / HOUR, DAY, 60.0)
        self._energy_origin = self._energy(self.commissioned)
        self._volume_origin = self._volume_integral(self.commissioned)

    def _flow(self, t: float) -> float:
        factor = 1.0
        for (amplitude, period), phase in zip(self.FLOW_WAVES, self._phases):
            factor += amplitude * math.sin(2 * math.pi * (t % period) / period + phase)
        return self.nominal_flow_m3h * factor

    def _volume_integral(self, t: float) -> float:
        # Closed form of the flow integral, in m3 (flow is per hour).
        total = t
        for (amplitude, period), phase in zip(self.FLOW_WAVES, self._phases):
            total -= amplitude * period / (2 * math.pi) * math.cos(2 * math.pi * (t % period) / period + phase)
        return self.nominal_flow_m3h * total / HOUR

    def _temperatures(self, t: float) -> tuple[float, float, float]:
        outdoor = outdoor_temperature(t, self.utc_offset, self.outdoor_mean_c)
        supply, back = heating_schedule(outdoor)
        return outdoor, supply, back

    def _power(self, t: float) -> float:
        _, supply, back = self._temperatures(t)
        return WATER_HEAT_KWH_M3K * self._flow(t) * (supply - back)

    def _compute(self, t: float) -> dict[str, float]:
        outdoor, supply, back = self._temperatures(t)
        flow = self._flow(t)
        return {
            "energy_kwh": max(0.0, self.initial_kwh + self._energy(t) - self._energy_origin),
            "volume_m3": max(0.0, self.initial_m3 + self._volume_integral(t) - self._volume_origin),
            "flow_m3h": flow,
            "t_supply_c": supply,
            "t_return_c": back,
            "t_outdoor_c": outdoor,
            "power_kw": WATER_HEAT_KWH_M3K * flow * (supply - back),
            "operating_h": float(max(0, math.floor((t - self.commissioned) / HOUR))),
            "error_code": 0.0,
        }


class OutdoorSensor(BaseModel):
    """An outdoor air temperature sensor (датчик наружного воздуха) of the heat substation.

    Points: ``t_outdoor_c``, the same weather the heat meters' schedule
    follows (:func:`outdoor_temperature` with their default mean), so the
    heating schedule can be checked against it; ``error_code``.
    """

    name = "outdoor_sensor"

    def __init__(self, seed: int, utc_offset: float = 10800.0, outdoor_mean_c: float = -5.0) -> None:
        """Follow the site's weather; the seed draws nothing (there is one weather per site)."""
        super().__init__(seed)
        self.utc_offset = float(utc_offset)
        self.outdoor_mean_c = outdoor_mean_c

    def _compute(self, t: float) -> dict[str, float]:
        return {"t_outdoor_c": outdoor_temperature(t, self.utc_offset, self.outdoor_mean_c), "error_code": 0.0}


class ElectricityMeter(BaseModel):
    """An apartment two-tariff electricity meter.

    Points: ``energy_kwh`` (= T1 + T2), ``energy_t1_kwh`` (day, 07-23 local),
    ``energy_t2_kwh`` (night), ``voltage_v``, ``current_a``, ``power_kw``,
    ``error_code``.
    """

    name = "electricity_meter"

    def __init__(self, seed: int, utc_offset: float = 10800.0, scale: float | None = None) -> None:
        """Draw the household from ``seed``; ``scale`` multiplies the typical power curve."""
        super().__init__(seed)
        rng = random.Random(seed)
        drawn_scale = rng.uniform(0.7, 1.3)
        self.scale = drawn_scale if scale is None else float(scale)
        self.commissioned = rng.uniform(COMMISSIONED_FROM, COMMISSIONED_TO)
        self.initial_t1_kwh = rng.uniform(500.0, 8000.0)
        self.initial_t2_kwh = self.initial_t1_kwh * rng.uniform(0.25, 0.45)
        per_day_kwh = self.scale * sum(ELECTRIC_POWER_HOURLY_KW)  # one hour at each level
        self.profile = DailyProfile(ELECTRIC_POWER_HOURLY_KW, per_day_kwh, utc_offset,
                                    ripple=0.2, ripple_period=300.0, phase=rng.uniform(0, 2 * math.pi))
        night = tuple(not h for h in DAY_TARIFF_HOURS)
        self._night_hours = night
        self._t1_origin = self.profile.cumulative(self.commissioned, DAY_TARIFF_HOURS)
        self._t2_origin = self.profile.cumulative(self.commissioned, night)
        self._v_phases = (rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi))

    def voltage(self, t: float) -> float:
        """Return the mains voltage: a slow and a fast wiggle inside 220-235 V."""
        slow = math.sin(2 * math.pi * (t % 5400.0) / 5400.0 + self._v_phases[0])
        fast = math.sin(2 * math.pi * (t % 120.0) / 120.0 + self._v_phases[1])
        return 227.5 + 5.0 * slow + 2.5 * fast

    def _compute(self, t: float) -> dict[str, float]:
        t1 = max(0.0, self.initial_t1_kwh + self.profile.cumulative(t, DAY_TARIFF_HOURS) - self._t1_origin)
        t2 = max(0.0, self.initial_t2_kwh + self.profile.cumulative(t, self._night_hours) - self._t2_origin)
        power = self.profile.rate(t) * HOUR
        voltage = self.voltage(t)
        return {
            "energy_kwh": t1 + t2,
            "energy_t1_kwh": t1,
            "energy_t2_kwh": t2,
            "voltage_v": voltage,
            "current_a": power * 1000.0 / voltage,
            "power_kw": power,
            "error_code": 0.0,
        }


# ----------------------------------------------------------- building meters


class BuildingMeter(BaseModel):
    """A building meter (ОДПУ): its members' counters and flows plus losses.

    ``summed`` points are ``(1 + losses) * sum(member values)``; every other
    point comes from ``own``, a single meter of the same kind that supplies
    what cannot be summed (temperatures, voltage, operating hours).  A
    member without a summed point contributes 0 to it.
    """

    name = "building"
    summed: tuple[str, ...] = ()

    def __init__(self, seed: int, members: Sequence[MeterModel], own: BaseModel, losses: float) -> None:
        """Sum ``members``; ``losses`` is a fraction (0.03 = 3 %)."""
        super().__init__(seed)
        if losses < 0:
            raise ValueError("losses cannot be negative")
        self.members = list(members)
        self.own = own
        self.losses = float(losses)

    def _compute(self, t: float) -> dict[str, float]:
        result = dict(self.own.values(t))
        gain = 1.0 + self.losses
        member_values = [m.values(t) for m in self.members]
        for name in self.summed:
            result[name] = gain * sum(v.get(name, 0.0) for v in member_values)
        return result


class BuildingWater(BuildingMeter):
    """The building's cold or hot water meter."""

    name = "building_water"
    summed = ("volume_m3", "flow_m3h")


class BuildingHeat(BuildingMeter):
    """The building's heat meter summing apartment heat meters (rare in Russia, but it exists)."""

    name = "building_heat"
    summed = ("energy_kwh", "volume_m3", "flow_m3h", "power_kw")


class BuildingElectricity(BuildingMeter):
    """The building's electricity meter."""

    name = "building_electricity"
    summed = ("energy_kwh", "energy_t1_kwh", "energy_t2_kwh", "power_kw")

    def _compute(self, t: float) -> dict[str, float]:
        result = super()._compute(t)
        result["current_a"] = result["power_kw"] * 1000.0 / result["voltage_v"]
        return result


SINGLE_MODELS = ("water_meter", "heat_meter", "electricity_meter")
BUILDING_MODELS = ("building_water", "building_heat", "building_electricity")
MODELS = SINGLE_MODELS + BUILDING_MODELS
#: Instruments that are not meters.
SENSOR_MODELS = ("outdoor_sensor",)


def _opt_float(options: Mapping[str, Any], key: str) -> float | None:
    value = options.get(key)
    return None if value is None else float(value)


def create_model(
    model: str,
    seed: int,
    utc_offset: float = 10800.0,
    options: Mapping[str, Any] | None = None,
    members: Sequence[MeterModel] = (),
    hot: bool = False,
) -> BaseModel:
    """Build a model by name.

    ``options`` are a device's ``sim`` settings: ``kind`` (cold/hot),
    ``daily_m3``, ``initial_m3``, ``nominal_flow_m3h``, ``scale`` (electric
    power), ``losses``.  ``hot`` is the caller's guess for water meters when
    ``kind`` is not given.  Building models sum ``members``.
    """
    options = options or {}
    kind = options.get("kind")
    if kind is not None and kind not in ("cold", "hot"):
        raise ValueError(f"unknown water kind {kind!r} (expected cold or hot)")
    is_hot = kind == "hot" if kind is not None else hot
    if model == "water_meter":
        return WaterMeter(seed, is_hot, utc_offset, _opt_float(options, "daily_m3"),
                          _opt_float(options, "initial_m3"))
    if model == "heat_meter":
        return HeatMeter(seed, utc_offset, _opt_float(options, "nominal_flow_m3h"))
    if model == "electricity_meter":
        return ElectricityMeter(seed, utc_offset, _opt_float(options, "scale"))
    if model == "outdoor_sensor":
        return OutdoorSensor(seed, utc_offset)
    if model in BUILDING_MODELS:
        losses = _opt_float(options, "losses")
        losses = DEFAULT_LOSSES[model] if losses is None else losses
        if model == "building_water":
            return BuildingWater(seed, members, WaterMeter(seed, is_hot, utc_offset), losses)
        if model == "building_heat":
            return BuildingHeat(seed, members, HeatMeter(seed, utc_offset), losses)
        return BuildingElectricity(seed, members, ElectricityMeter(seed, utc_offset), losses)
    raise ValueError(f"unknown simulation model {model!r} (expected one of {', '.join(MODELS + SENSOR_MODELS)})")
