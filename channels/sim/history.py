# -*- test-case-name: tests.channels.sim.test_sim_history -*-
"""Months of simulated history: the samples a site's simulated meters would have left.

Every simulator model is a pure function of time (:mod:`channels.sim.models`),
so the past can be computed instead of waited for.  :class:`HistorySimulator`
builds the same :class:`~channels.sim.field.SimulatedField` the demo runs and
asks each meter for its values at past moments, through the same codecs the
live chain uses, so a simulated sample is exactly what polling would have
stored at that moment:

- Modbus meters: the simulated slave's register image of each read block of
  the profile (:func:`~channels.modbus.points.plan_reads`), decoded by the
  driver's :class:`~channels.modbus.points.BlockDecoder` (integers rounded to
  the register scale, BCD, float32 noise trimmed); tags ``<device>.<point>``;
- M-Bus meters: the meter's telegrams, framed, decoded
  (:func:`~channels.mbus.telegram.decode_user_data`) and mapped by the
  device's :class:`~channels.mbus.mapping.RecordMapper` (profile or automatic
  names), plus ``<device>.status`` and ``<device>.clock_drift_s`` as the
  driver computes them; the archive records inside the telegrams are left
  out (the history already holds those moments);
- LoRaWAN/NB-IoT meters: the values the simulated uplink would carry
  (:meth:`~channels.sim.field.SimulatedField.uplink_values`), encoded and
  decoded by the device's payload decoder, with the decoder's counter state
  carried from one sample to the next as the uplink channel keeps it;
- hand-read meters (``manual`` channels): one reading per month, on a day
  between the 20th and the 25th (when crews go round), of each cumulative
  point the meter's model knows, rounded to the litre / watt-hour a display
  shows, with quality ``manual``.  Their model is the device's ``sim`` if it
  has one, else a water meter (hot when the name says so) for volume points
  and an electricity meter for energy points.

Measured samples have quality ``good``.  Building meters are the sum of their
members times (1 + losses) at every moment, as in the live simulator.

Time grid (:func:`history_times`): hourly samples at whole local hours over
the most recent span, daily samples at local midnight before it, so that six
months of billing boundaries exist while the sample count stays moderate.
Gaps (:func:`resolve_gaps`) take out a device's samples in a time range, the
way a meter that was unreachable and lost its archive would show up, so the
ПП 354 (Постановление Правительства РФ № 354, the housing utilities billing
rules) substitutions have something to substitute.  Devices disabled in the
config, and devices simulated with a fault other than ``slow``, leave no
history; a meter whose verification (поверка) expired keeps reporting, as a
real one does (billing is where such readings are refused).

Everything is a function of the config and the times: running twice writes
the same samples at the same timestamps, and (tag, timestamp) is a sample's
identity in every history backend, so a second run rewrites, never doubles.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Iterable, Iterator, Mapping, Sequence
from zoneinfo import ZoneInfo

from channels.archive import floor_boundary, standard_offset
from channels.lorawan import decoders
from channels.lorawan.uplink import flatten_numbers
from channels.mbus import link
from channels.mbus.mapping import RecordMapper, RecordRule, archive_of
from channels.mbus.telegram import MBusDecodeError, decode_user_data
from channels.modbus.driver import point_specs
from channels.modbus.points import BlockDecoder, DecodeError, plan_reads
from channels.sim.field import MBUS, RTU, TCP, UPLINK, SimulatedField, _options
from channels.sim.mbus import SimMBusMeter
from channels.sim.models import BaseModel, create_model, seed_for
from tags.model import Sample
from tags.quality import Quality

HOUR = 3600.0
DAY = 86400.0
#: Default spans: hourly samples for the last 35 days, daily ones for 210 days before that.
DEFAULT_HOURLY = 35 * DAY
DEFAULT_DAILY = 210 * DAY
#: Samples per batch that :meth:`HistorySimulator.batches` yields (at most one time step more).
DEFAULT_BATCH = 10_000
#: Hand readings are taken between these days of the month (inclusive).
MANUAL_DAYS = (20, 25)
#: Decimals a crew writes down per unit of a cumulative register (the display's last digit).
MANUAL_DECIMALS = {"m3": 3, "m³": 3, "kWh": 1, "Wh": 0, "MWh": 4, "Gcal": 4, "GJ": 4}
#: Model values a hand-read meter's point may stand for, by model (the first model that knows the point wins).
_MANUAL_MODELS = (("water_meter", ("volume_m3",)),
                  ("electricity_meter", ("energy_kwh", "energy_t1_kwh", "energy_t2_kwh")),
                  ("heat_meter", ("energy_kwh", "volume_m3")))
#: Faults a simulated device may be configured with and still answer.
_ANSWERING = ("normal", "slow")
#: ``month-N``: N months before the month of the run's end (``month-1`` is the last full month).
_RELATIVE_MONTH = re.compile(r"month-(\d{1,3})")
_MONTH = re.compile(r"(\d{4})-(\d{2})")


# ------------------------------------------------------------------ time grid


def history_times(until: float, hourly: float = DEFAULT_HOURLY, daily: float = DEFAULT_DAILY,
                  tz: str | None = None, since: float | None = None) -> list[float]:
    """Return the sample times of a simulated history ending at ``until``, oldest first.

    Whole local hours ``t`` with ``until - hourly <= t <= until``, and local
    midnights with ``until - hourly - daily <= t < until - hourly``.  With
    ``since``, only the times after it (a history filled up to ``since``
    already).  ``tz`` is the site's IANA zone (None: Europe/Moscow).
    """
    if hourly < 0 or daily < 0:
        raise ValueError("history spans cannot be negative")
    zone = ZoneInfo(tz or "Europe/Moscow")
    hourly_from = until - hourly
    daily_from = hourly_from - daily
    times: list[float] = []
    if daily > 0:
        day = datetime.fromtimestamp(daily_from, zone).date()
        while True:
            t = datetime.combine(day, time(0, 0), zone).timestamp()
            if t >= hourly_from:
                break
            if t >= daily_from:
                times.append(t)
            day += timedelta(days=1)
    # Whole local hours: the offset's part below an hour (India's 30 minutes)
    # shifts the grid; a DST change by a whole hour keeps it.
    shift = (datetime.fromtimestamp(hourly_from, zone).utcoffset() or timedelta(0)).total_seconds() % HOUR
    t = math.ceil((hourly_from + shift) / HOUR) * HOUR - shift
    while t <= until:
        times.append(t)
        t += HOUR
    if since is not None:
        times = [t for t in times if t > since]
    return times


# ----------------------------------------------------------------------- gaps


def parse_local(value: str, zone: ZoneInfo, what: str, example: str) -> float:
    """Return ISO 8601 text (a date or date-time) as Unix time; local time in ``zone`` unless it has an offset.

    Raises ValueError naming ``what`` and the value, with ``example`` as
    what to write instead.
    """
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise ValueError(f"{what} {value!r} is not an ISO 8601 date or date-time (e.g. {example})") from None
    return _local(moment, zone)


def _local(moment: datetime, zone: ZoneInfo) -> float:
    """Return ``moment`` as Unix time, taken as local time in ``zone`` if it has no offset."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.timestamp()


def _moment(value: Any, zone: ZoneInfo, what: str) -> float:
    """Return a date or date-time (ISO text or a YAML date) as Unix time; local time unless it has an offset."""
    if isinstance(value, datetime):
        return _local(value, zone)
    if isinstance(value, date):
        return _local(datetime.combine(value, time(0, 0)), zone)
    if isinstance(value, str):
        return parse_local(value, zone, what, "2025-09-01 or 2025-09-01T12:00")
    raise ValueError(f"{what} {value!r} is not an ISO 8601 date or date-time")


def _text(value: Any) -> str:
    """Return a date, date-time or string as ISO text."""
    return value.isoformat() if isinstance(value, (date, datetime)) else str(value).strip()


def parse_gap(value: Any) -> str:
    """Return a gap as written in ``simulate_history.gaps`` in its normal text form; ValueError naming it.

    A gap is a calendar month ``"2025-09"``, a month relative to the end of
    the history ``"month-1"`` (the last full month; ``month-2`` the one
    before), or a time range ``[FROM, TO]`` (ISO dates or date-times, site
    local time unless they carry an offset; also written ``"FROM/TO"``).
    """
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"a gap range needs two ends [FROM, TO], not {len(value)} items")
        value = f"{_text(value[0])}/{_text(value[1])}"
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a gap: use a month like '2025-09' or 'month-1', "
                         "or a range [FROM, TO] of ISO dates")
    text = value.strip()
    if _RELATIVE_MONTH.fullmatch(text):
        if int(text[6:]) < 1:
            raise ValueError(f"{text!r}: relative months count from 1 (month-1 is the last full month)")
        return text
    if match := _MONTH.fullmatch(text):
        if not 1 <= int(match.group(2)) <= 12:
            raise ValueError(f"{text!r} is not a month (YYYY-MM)")
        return text
    if "/" in text:
        start, end = (part.strip() for part in text.split("/", 1))
        utc = ZoneInfo("UTC")
        if _moment(start, utc, "gap start") >= _moment(end, utc, "gap end"):
            raise ValueError(f"gap {text!r}: the start must be before the end")
        return f"{start}/{end}"
    raise ValueError(f"{text!r} is not a gap: use a month like '2025-09' or 'month-1', "
                     "or a range [FROM, TO] of ISO dates")


def _month_start(year: int, month: int, zone: ZoneInfo) -> float:
    while month < 1:
        year, month = year - 1, month + 12
    while month > 12:
        year, month = year + 1, month - 12
    return datetime(year, month, 1, tzinfo=zone).timestamp()


def gap_range(gap: str, until: float, tz: str | None = None) -> tuple[float, float]:
    """Return the ``[start, end)`` Unix times of a gap (see :func:`parse_gap`) for a history ending at ``until``.

    A month stands for the readings of that billing month: everything after
    the reading that opens it (00:00 local on the 1st) up to and including
    the reading that closes it (00:00 on the 1st of the next month), so the
    month has no reading of its own while the month before keeps its
    closing reading.
    """
    zone = ZoneInfo(tz or "Europe/Moscow")
    text = parse_gap(gap)
    if match := _RELATIVE_MONTH.fullmatch(text):
        local = datetime.fromtimestamp(until, zone)
        year, month = local.year, local.month - int(match.group(1))
    elif match := _MONTH.fullmatch(text):
        year, month = int(match.group(1)), int(match.group(2))
    else:
        start, end = text.split("/", 1)
        return _moment(start, zone, "gap start"), _moment(end, zone, "gap end")
    return _month_start(year, month, zone) + 1.0, _month_start(year, month + 1, zone) + 1.0


def resolve_gaps(gaps: Mapping[str, Iterable[Any]] | None, until: float,
                 tz: str | None = None) -> dict[str, list[tuple[float, float]]]:
    """Return ``{device: [(start, end), ...]}`` of ``simulate_history.gaps`` for a history ending at ``until``."""
    return {device: [gap_range(g, until, tz) for g in items] for device, items in (gaps or {}).items()}


# -------------------------------------------------------------------- devices


class _Device:
    """One simulated meter's sampler: its tags' values at a moment, as the live chain stores them."""

    name: str

    def sample(self, t: float, out: list[Sample]) -> None:
        raise NotImplementedError


class _ModbusDevice(_Device):
    """Reads every block of the profile from the simulated slave and decodes it like the driver."""

    def __init__(self, name: str, sim_device: Any, profile: Any) -> None:
        self.name = name
        self.sim = sim_device
        # The driver's own point specs and read plan (ModbusChannel builds them the same way).
        specs = point_specs(name, profile.points)
        self.blocks = [(b, BlockDecoder(b)) for b in plan_reads(specs, getattr(profile, "max_registers", 125))]

    def sample(self, t: float, out: list[Sample]) -> None:
        good, failed = Quality.GOOD, Quality.DECODE_FAILED
        for block, decoder in self.blocks:
            data = self.sim.read_registers(block.function, block.start, block.count, t)
            values = decoder.decode(data, block.start) if data is not None else [DecodeError()] * len(block.points)
            for point, value in zip(block.points, values):
                if isinstance(value, DecodeError):
                    out.append(Sample(point.tag, None, failed, t))
                else:
                    out.append(Sample(point.tag, value, good, t))


class _Memo:
    """A model's values remembered for the last few times asked.

    An M-Bus meter's telegram carries its archive (readings on the 1st of
    recent months) beside the current values; the archive times are the same
    for a whole month of samples, and the model's own cache holds one time.
    """

    SIZE = 64

    def __init__(self, model: Any) -> None:
        self.model = model
        self._values: dict[float, Mapping[str, float]] = {}

    def values(self, t: float) -> Mapping[str, float]:
        """Return the model's values at ``t``."""
        found = self._values.get(t)
        if found is None:
            if len(self._values) >= self.SIZE:
                self._values.clear()
            found = self._values[t] = dict(self.model.values(t))
        return found


class _MBusDevice(_Device):
    """Frames and decodes the meter's telegrams and maps their current records like the driver."""

    def __init__(self, name: str, meter: SimMBusMeter, rules: list[RecordRule] | None, zone: ZoneInfo) -> None:
        self.name = name
        # The simulator's field is this history's own: its meter may remember values.
        meter.model = _Memo(meter.model)
        self.meter = meter
        self.mapper = RecordMapper(name, zone, rules)
        # Live values come from storage 0, unless the profile maps an archive
        # record (storage > 0) to a tag of its own.
        self.archive = any(rule.storage for rule in rules or ())

    def read(self, t: float, archive: bool = True) -> tuple[Any, int | None]:
        """Return the mapping of one read at ``t`` (with the meter's archive telegrams or not) and its status byte."""
        records: list = []
        status = None
        address = self.meter.primary if self.meter.primary is not None else 0
        for user in self.meter.telegrams(t, archive):
            _, frame = link.decode_stream(link.long_frame(link.C_RSP_UD, address, 0x72, user))
            telegram = decode_user_data(frame.ci, frame.data, frame.data_offset)
            if telegram.header is not None and status is None:
                status = telegram.header.status
            records.extend(telegram.records)
        return self.mapper.map(records), status

    def sample(self, t: float, out: list[Sample]) -> None:
        good = Quality.GOOD
        try:
            mapped, status = self.read(t, self.archive)
        except MBusDecodeError:
            return
        for tag, value, _unit in mapped.live:
            out.append(Sample(tag, value, good, t))
        if status is not None:
            out.append(Sample(f"{self.name}.status", float(status), good, t))
        if mapped.clock is not None:
            out.append(Sample(f"{self.name}.clock_drift_s", round(mapped.clock - t, 1), good, t))
        for tag in mapped.missing:
            out.append(Sample(tag, None, Quality.DECODE_FAILED, t))


class _UplinkDevice(_Device):
    """Encodes the simulated uplink with the device's decoder and decodes it again, keeping the counter state."""

    def __init__(self, name: str, field: SimulatedField, device: Any, kind: str) -> None:
        self.name = name
        self.field = field
        self.decoder_name = getattr(device, "decoder", None)
        self.options = dict(getattr(device, "decoder_options", None) or {})
        self.module = decoders.get(self.decoder_name) if self.decoder_name else None
        self.points = uplink_points(device)
        self.fport = None if self.module is None else getattr(self.module, "DEFAULT_FPORT",
                                                                getattr(self.module, "FPORT_DATA", 2))
        self.nbiot = kind == "nbiot"
        self.state: dict = {}

    def sample(self, t: float, out: list[Sample]) -> None:
        values = self.field.uplink_values(self.name, self.points, t)
        ts = t
        if self.module is not None:
            fport, payload = self.module.encode(values, t, self.options, self.fport)
            decoded = self.module.decode(payload, None if self.nbiot else fport, self.options, self.state)
            values = {p: float(v) for p, v in decoded.values.items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
            ts = decoded.ts if decoded.ts is not None else t
        else:
            values = flatten_numbers(values)
        prefix = self.name + "."
        for point, value in values.items():
            out.append(Sample(prefix + point, value, Quality.GOOD, ts))


def uplink_points(device: Any) -> list[str]:
    """Return the point names an uplink or hand-read meter publishes: its decoder's, or its ``points``."""
    decoder = getattr(device, "decoder", None)
    if decoder is None:
        return [p.name for p in getattr(device, "points", None) or ()]
    module = decoders.get(decoder)
    return [p.name for p in module.points(dict(getattr(device, "decoder_options", None) or {}))]


@dataclass(frozen=True)
class ManualMeter:
    """A hand-read meter: its cumulative points (name, model value, decimals) and the model behind them."""

    name: str
    model: BaseModel
    points: tuple[tuple[str, str, int], ...]
    seed: int

    def reading_time(self, year: int, month: int, zone: ZoneInfo) -> float:
        """Return when the crew reads the meter in a month: a day from the 20th to the 25th, in working hours."""
        h = zlib.crc32(f"{self.name}:{year:04d}-{month:02d}".encode()) ^ self.seed
        day = MANUAL_DAYS[0] + h % (MANUAL_DAYS[1] - MANUAL_DAYS[0] + 1)
        return datetime(year, month, day, 9 + (h >> 8) % 9, (h >> 16) % 60, tzinfo=zone).timestamp()

    def readings(self, ts: float) -> list[Sample]:
        """Return the readings a crew writes down at ``ts``."""
        values = self.model.values(ts)
        return [Sample(f"{self.name}.{point}", round(values[value], decimals), Quality.MANUAL, ts)
                for point, value, decimals in self.points]


def _manual_meter(device: Any, profiles: Mapping[str, Any], utc_offset: float) -> ManualMeter | None:
    """Return the hand-read meter of a ``manual`` channel's device, None if no model knows its registers.

    Its registers are its ``points``, or its profile's (as the manual channel takes them).
    """
    points = list(getattr(device, "points", None) or ())
    if not points and getattr(device, "profile", None) in profiles:
        points = list(profiles[device.profile].points)
    points = [p for p in points if _cumulative(p)]
    options = _options(getattr(device, "sim", None))
    seed = int(options.get("seed", seed_for(device.name)))
    hot = options.get("kind") == "hot" or (options.get("kind") is None and "hot" in device.name.lower())
    names = {p.name for p in points}
    model_name = options.get("model")
    if model_name is None:
        model_name = next((m for m, known in _MANUAL_MODELS if names & set(known)), None)
    if model_name is None:
        return None
    model = create_model(model_name, seed, utc_offset, options, (), hot)
    known = model.values(0.0)
    chosen = tuple((p.name, p.name, MANUAL_DECIMALS.get((getattr(p, "unit", "") or "").strip(), 3))
                   for p in points if p.name in known)
    return ManualMeter(device.name, model, chosen, seed) if chosen else None


def _cumulative(point: Any) -> bool:
    """Tell whether a hand-read point is a counter (``cumulative`` if given, else by its unit)."""
    flag = getattr(point, "cumulative", None)
    if flag is not None:
        return bool(flag)
    return (getattr(point, "unit", "") or "").strip() in MANUAL_DECIMALS


# ------------------------------------------------------------------ simulator


class HistorySimulator:
    """Past samples of every simulated meter of a site config (see the module docstring).

    ``cfg`` is read by attribute like :class:`SimulatedField` reads it
    (``site.timezone``, ``channels``, ``profiles``).  ``gaps`` maps device
    names to ``(start, end)`` Unix-time ranges with no samples
    (:func:`resolve_gaps`); an unknown device is a ValueError.
    """

    def __init__(self, cfg: Any, gaps: Mapping[str, Sequence[tuple[float, float]]] | None = None) -> None:
        """Build the simulated field (nothing is opened) and one sampler per meter that would report."""
        from twisted.internet.task import Clock

        self.field = SimulatedField(cfg, Clock())
        site = getattr(cfg, "site", None)
        self.tz = getattr(site, "timezone", None) or "Europe/Moscow"
        self.zone = ZoneInfo(self.tz)
        self.utc_offset = standard_offset(self.tz)
        self.devices: list[_Device] = []
        self.manual: list[ManualMeter] = []
        profiles = getattr(cfg, "profiles", None) or {}
        known: set[str] = set()
        for channel in getattr(cfg, "channels", None) or ():
            for device in channel.devices:
                known.add(device.name)
                if not getattr(device, "enabled", True):
                    continue
                sampler = self._sampler(channel, device, profiles)
                if isinstance(sampler, ManualMeter):
                    self.manual.append(sampler)
                elif sampler is not None:
                    self.devices.append(sampler)
        self.gaps: dict[str, tuple[tuple[float, float], ...]] = {}
        for name, ranges in (gaps or {}).items():
            if name not in known:
                raise ValueError(f"gap for unknown device {name!r}")
            self.gaps[name] = tuple((float(a), float(b)) for a, b in ranges)

    def _sampler(self, channel: Any, device: Any, profiles: Mapping[str, Any]) -> _Device | ManualMeter | None:
        kind = channel.type
        if kind == "manual":
            return _manual_meter(device, profiles, self.utc_offset)
        if kind in UPLINK:
            if device.name not in self.field.uplink_devices:
                return None  # no `sim:`: the simulated network server sends nothing for it
            return _UplinkDevice(device.name, self.field, device, kind)
        sim = self.field.devices.get(device.name)
        if sim is None or sim.fault not in _ANSWERING:
            return None
        if kind == MBUS:
            profile = profiles.get(device.profile) if getattr(device, "profile", None) else None
            rules = None
            if profile is not None:
                from channels.mbus.channel import record_rules

                rules = record_rules(device.name, profile.records)
            return _MBusDevice(device.name, sim, rules, self.zone)
        if kind in (RTU, TCP):
            return _ModbusDevice(device.name, sim, profiles[device.profile])
        return None

    @property
    def names(self) -> list[str]:
        """Return the devices that get history, measured ones first, then the hand-read ones."""
        return [d.name for d in self.devices] + [m.name for m in self.manual]

    def _open(self, name: str, t: float) -> bool:
        """Tell whether device ``name`` has samples at ``t`` (no gap covers it)."""
        ranges = self.gaps.get(name)
        return not ranges or not any(a <= t < b for a, b in ranges)

    def sample(self, t: float) -> list[Sample]:
        """Return every measured meter's samples at Unix time ``t`` (gaps left out)."""
        out: list[Sample] = []
        for device in self.devices:
            if self._open(device.name, t):
                device.sample(t, out)
        return out

    def manual_times(self, start: float, end: float) -> list[tuple[float, ManualMeter]]:
        """Return ``(time, meter)`` of every hand reading with ``start <= time <= end``, oldest first."""
        out = []
        if not self.manual:
            return out
        first = datetime.fromtimestamp(start, self.zone)
        last = datetime.fromtimestamp(end, self.zone)
        year, month = first.year, first.month
        while (year, month) <= (last.year, last.month):
            for meter in self.manual:
                ts = meter.reading_time(year, month, self.zone)
                if start <= ts <= end and self._open(meter.name, ts):
                    out.append((ts, meter))
            year, month = (year, month + 1) if month < 12 else (year + 1, 1)
        out.sort(key=lambda item: (item[0], item[1].name))
        return out

    def batches(self, times: Sequence[float], batch_size: int = DEFAULT_BATCH,
                since: float | None = None) -> Iterator[list[Sample]]:
        """Yield the history at ``times`` (ascending) in lists of about ``batch_size`` samples, oldest first.

        Hand readings fall between the first and the last time (after
        ``since`` when given).  A batch ends after the time step that
        reached ``batch_size``, so no batch is more than one step larger.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size!r}")
        times = [t for t in times if since is None or t > since]
        if not times:
            return
        manual = self.manual_times(times[0] if since is None else since + 1e-6, times[-1])
        m = 0
        batch: list[Sample] = []
        for t in times:
            while m < len(manual) and manual[m][0] <= t:
                ts, meter = manual[m]
                batch.extend(meter.readings(ts))
                m += 1
            batch.extend(self.sample(t))
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def archive_marks(self, until: float) -> dict[str, dict[str, float]]:
        """Return, per device and archive, the newest archive record the simulated history holds at ``until``.

        Handing these to the site's archive book tells the live drivers that
        the meters' archives are stored up to there, so the first archive
        walk after start does not fill the simulated gaps back in.
        """
        marks: dict[str, dict[str, float]] = {}
        for device in self.devices:
            if isinstance(device, _ModbusDevice):
                for archive in device.sim.archives:
                    marks.setdefault(device.name, {})[archive.name] = floor_boundary(
                        until, archive.interval, self.utc_offset)
            elif isinstance(device, _MBusDevice):
                try:
                    mapped, _status = device.read(until)
                except MBusDecodeError:
                    continue
                for _tag, _value, when in mapped.history:
                    archive = archive_of(when, self.zone)
                    archives = marks.setdefault(device.name, {})
                    archives[archive] = max(archives.get(archive, when), when)
        return marks

    def fingerprint(self, hourly: float, daily: float, gaps: Mapping[str, Iterable[Any]] | None = None) -> int:
        """Return a number that changes when what a history run writes would change (devices, spans, gaps)."""
        doc = {"version": 1, "tz": self.tz, "devices": self.names, "hourly": hourly, "daily": daily,
               "gaps": {k: [parse_gap(g) for g in v] for k, v in sorted((gaps or {}).items())}}
        return zlib.crc32(json.dumps(doc, sort_keys=True).encode("utf-8"))


def simulate_history(cfg: Any, until: float, hourly: float = DEFAULT_HOURLY, daily: float = DEFAULT_DAILY,
                     gaps: Mapping[str, Iterable[Any]] | None = None, since: float | None = None,
                     batch_size: int = DEFAULT_BATCH) -> Iterator[list[Sample]]:
    """Yield the simulated history of ``cfg`` up to ``until`` in batches (see :class:`HistorySimulator`).

    ``gaps`` are as written in the config (``{device: ["month-1", [FROM, TO]]}``),
    resolved against ``until``; ``since`` skips what an earlier run wrote.
    """
    tz = getattr(getattr(cfg, "site", None), "timezone", None)
    simulator = HistorySimulator(cfg, resolve_gaps(gaps, until, tz))
    return simulator.batches(history_times(until, hourly, daily, tz), batch_size, since)


__all__ = ["DEFAULT_BATCH", "DEFAULT_DAILY", "DEFAULT_HOURLY", "HistorySimulator", "ManualMeter", "gap_range",
           "history_times", "parse_gap", "resolve_gaps", "simulate_history", "uplink_points"]
