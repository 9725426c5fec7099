# -*- test-case-name: tests.scada.billing.test_readings -*-
"""Readings and consumption of each meter for a billing period, with ПП 354 substitution.

For a period ``"YYYY-MM"`` (00:00 on the 1st to 00:00 on the 1st of the next
month, site time: :mod:`scada.billing.periods`) every meter gets:

- a **start reading** at the period's start and an **end reading** at its
  end.  *The reading at a boundary* is the last sample of the meter's
  register tag with a usable quality and a value taken **at or before** the
  boundary (a sample stamped exactly at 00:00 on the 1st closes the old
  period and opens the new one), and **taken in the period that the
  boundary closes** (after its first instant): the end reading of October
  must have been taken in October, the start reading of October in
  September.  So a meter that
  went silent on the 20th is billed up to its last reading, and the next
  period (whose end reading is missing) is substituted.  ``max_age`` (in
  seconds) replaces that window by a fixed one.  One historian query per
  boundary (``query_at_many`` over all meters asked for), cached for the
  reader's life: one request.
- **consumption** = end − start.  A replacement (lifecycle event, A's
  :meth:`scada.registry.Registry.replacements`) between the readings splits
  it: ``(final − start) + (end − initial)``, chained for several; when the
  new meter sent nothing after its installation the end reading is its
  initial reading, and a replacement between the start reading and the
  period start makes the new meter's initial reading the start reading.
- **source**, from the qualities of the two readings (``good`` → measured,
  ``manual`` → manual, ``backfilled`` → backfilled, ``calculated`` →
  calculated): the worse of the two in the order calculated > manual >
  backfilled > measured (a back-filled value comes from the meter's own
  archive, a manual one from a person; the codes are :mod:`scada.balance`'s).  A replacement's readings were entered by a person:
  manual.

A period without an accepted measurement gets the volume of ПП 354 п.59–60
(:func:`scada.billing.pp354.substitute`: the meter's average over its last
6 months of readings, at least 3, for at most 3 periods in a row (2 for
non-residential premises), then the norm), with source ``calculated``, the
rule's code and its explanation.  A period has no accepted measurement when:

- a boundary has no reading (``no-start-reading``, ``no-end-reading``,
  ``no-readings``);
- a reading was taken after the verification (поверка) ran out
  (``verification-expired``): a verification is valid through
  ``next_verification``, readings from the next day on do not count
  (п.59 «а»);
- the meter was decommissioned before the period's end
  (``decommissioned``: meter failed or removed, п.59 «а»);
- end − start is negative (``negative-consumption``: a counter reset or a
  replacement nobody recorded; treated as a failed meter).

The run of substituted periods (for the 3-period limit) is recomputed from
history every time: the previous 12 periods are measured the same way (one
query per month boundary for the meters that need it), and the periods
without an accepted measurement just before this one are the run.  Nothing
substituted is stored, so a late reading (a back-filled archive, a manual
reading) changes the answer of every later pull consistently.

Known simplifications: the verification due date is the meter's current
one (after all recorded events) for past periods too; a meter installed
during the period has no start reading unless a sample lies in the window
before the period (the commissioning event's initial reading is not used
yet); heating-season rules are not passed to the ПП 354 module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from scada.balance.kernels import (
    BACKFILLED,
    CALCULATED,
    MANUAL,
    MEASURED,
    MISSING,
    SOURCE_NAMES,
    source_of,
)
from scada.billing import pp354
from scada.billing.periods import parse_period, period_bounds, shift_period, site_zone
from scada.registry import Meter, Premises, Registry, Replacement
from tags.model import Sample
from tags.timefmt import iso_utc

__all__ = [
    "BACKFILLED", "CALCULATED", "MANUAL", "MEASURED", "MISSING", "PROBLEMS", "SOURCE_NAMES",
    "HISTORY_MONTHS", "PeriodReader", "PeriodReading", "Reading", "worst",
]

#: Past periods measured to feed the ПП 354 average and count the run of missing periods
#: (6 months averaged after a run of at most 3, with room to spare).
HISTORY_MONTHS = 12

#: Why a period has no accepted measurement; the keys of ``problem``.
PROBLEMS = ("no-start-reading", "no-end-reading", "no-readings", "verification-expired", "decommissioned",
            "negative-consumption")

#: Consumption differences this small below zero are rounding, not a counter going back.
_NEGATIVE_TOLERANCE = 1e-9
#: Decimals kept in a consumption (registers show at most 3-4; this removes float noise such as 4.6440000001).
CONSUMPTION_DECIMALS = 6


#: How bad each source is, worst last: a back-filled value is the meter's own archive, more
#: trustworthy than a reading typed in by a person.  (The codes' numeric order differs.)
_BADNESS = {MISSING: -1, MEASURED: 0, BACKFILLED: 1, MANUAL: 2, CALCULATED: 3}


def worst(*sources: int) -> int:
    """Return the worse of source codes: calculated > manual > backfilled > measured."""
    return max(sources, key=_BADNESS.__getitem__)


@dataclass(frozen=True)
class Reading:
    """A register reading used at a boundary: ``value`` in the meter's unit, taken at ``ts``, with its source code."""

    value: float
    ts: float
    source: int

    @classmethod
    def of(cls, sample: Sample | None) -> Reading | None:
        """Return the reading of a historian sample (None for None)."""
        if sample is None:
            return None
        return cls(float(sample.value), sample.ts, source_of(sample.quality))


@dataclass(frozen=True)
class PeriodReading:
    """One meter's readings and consumption for one billing period.

    ``consumption`` is None only when it could neither be measured nor
    substituted (no norm); ``source`` is a :mod:`scada.balance` code
    (`CALCULATED` when substituted, `MISSING` when there is nothing).
    ``problem`` (one of :data:`PROBLEMS`) says why the measurement was not
    accepted, ``substitution`` what replaced it.  ``serial`` is the serial
    of the meter that was installed at the period's end.
    """

    meter: Meter
    premises: Premises | None
    period: str
    serial: str
    start: Reading | None
    end: Reading | None
    consumption: float | None
    source: int
    replacements: tuple[Replacement, ...] = ()
    problem: str | None = None
    substitution: pp354.Substitution | None = None

    @property
    def measured(self) -> bool:
        """Tell whether the consumption comes from accepted readings (not substituted, not missing)."""
        return self.problem is None and self.consumption is not None

    @property
    def account(self) -> str | None:
        """Return the premises' billing account (None for a building meter)."""
        return self.premises.account if self.premises is not None else None

    def to_json(self, lang: str = "ru") -> dict[str, Any]:
        """Return the API's item: account, premises, building, meter, serial, resource, unit, readings, source, rule."""
        sub = self.substitution
        item: dict[str, Any] = {
            "account": self.account,
            "premises": self.premises.number if self.premises is not None else None,
            "building": self.meter.building,
            "meter": self.meter.id,
            "serial": self.serial,
            "resource": self.meter.resource,
            "unit": self.meter.unit,
            "start": self.start.value if self.start else None,
            "start_ts": iso_utc(self.start.ts) if self.start else None,
            "start_source": SOURCE_NAMES[self.start.source] if self.start else None,
            "end": self.end.value if self.end else None,
            "end_ts": iso_utc(self.end.ts) if self.end else None,
            "end_source": SOURCE_NAMES[self.end.source] if self.end else None,
            "consumption": self.consumption,
            "source": SOURCE_NAMES[self.source],
            "problem": self.problem,
            "rule": sub.rule if sub else None,
            "note": (sub.explanation_en if lang == "en" else sub.explanation_ru) if sub else None,
        }
        if sub is not None:
            item["reason"] = sub.reason
            item["months_used"] = list(sub.months_used)
            item["substituted_period"] = sub.streak
            item["substitution_limit"] = sub.limit
        if self.replacements:
            item["replacements"] = [
                {"at": iso_utc(r.at), "final_reading": r.final_reading, "initial_reading": r.initial_reading,
                 "old_serial": r.old_serial, "new_serial": r.new_serial} for r in self.replacements]
        return item


def _round(value: float) -> float:
    return round(value, CONSUMPTION_DECIMALS) + 0.0  # + 0.0: no "-0.0"


class PeriodReader:
    """Reads meters' boundary readings from the historian and computes their consumption per period.

    One reader serves one request: it caches every boundary sample it
    fetched (``(tag, boundary)``), so consecutive periods share their
    common boundary and the history months of ПП 354 cost one query per
    month boundary.  ``registry`` is the effective registry (A's
    :class:`scada.registry.Registry`), ``historian`` anything with
    ``query_at_many``; ``tz`` defaults to the registry's (the site's) zone.
    ``max_age`` (seconds) bounds a boundary reading's age instead of "the
    period it closes".
    """

    def __init__(self, registry: Registry, historian: Any, tz: str | tzinfo | None = None, *,
                 max_age: float | None = None, history_months: int = HISTORY_MONTHS) -> None:
        """Read from ``historian`` for the meters of ``registry``."""
        if max_age is not None and not (isinstance(max_age, (int, float)) and max_age > 0):
            raise ValueError(f"max_age must be a positive number of seconds, not {max_age!r}")
        self.registry = registry
        self.historian = historian
        self.tz = site_zone(tz if tz is not None else registry.tz)
        self.max_age = max_age
        self.history_months = history_months
        self._samples: dict[tuple[str, float], Sample | None] = {}
        self._between: dict[tuple[str, float, float], Sample | None] = {}
        self._bounds: dict[str, tuple[float, float]] = {}
        self._sinces: dict[str, float] = {}
        self._midnights: dict[date, float] = {}
        #: Historian calls made (each ``query_at_many`` is one), for tests and logs.
        self.queries = 0

    # -- time --------------------------------------------------------------------------

    def bounds(self, period: str) -> tuple[float, float]:
        """Return the period's ``(start, end)`` in UTC seconds (cached)."""
        found = self._bounds.get(period)
        if found is None:
            found = self._bounds[period] = period_bounds(period, self.tz)
        return found

    def _since(self, period: str) -> float:
        """Return the oldest time a reading at the start of ``period`` may have: just after the previous period's start.

        Just after: a sample stamped exactly at the previous period's start
        is that period's start reading, and must not also be its end reading
        (a meter silent for the whole month would show 0 consumption).
        """
        found = self._sinces.get(period)
        if found is None:
            start = self.bounds(period)[0]
            if self.max_age is not None:
                found = start - self.max_age
            else:
                found = math.nextafter(self.bounds(shift_period(period, -1))[0], math.inf)
            self._sinces[period] = found
        return found

    def _midnight(self, day: date) -> float:
        """Return 00:00 site time of ``day`` in UTC seconds (cached: registries repeat a few dates)."""
        found = self._midnights.get(day)
        if found is None:
            found = self._midnights[day] = datetime.combine(day, time(), self.tz).timestamp()
        return found

    def expires(self, meter: Meter) -> float:
        """Return the first moment whose readings do not count: 00:00 after ``next_verification`` (inf if none)."""
        if meter.next_verification is None:
            return math.inf
        return self._midnight(meter.next_verification + timedelta(days=1))

    # -- historian -----------------------------------------------------------------------

    async def samples_at(self, tags: Iterable[str], period: str) -> dict[str, Sample | None]:
        """Return the reading sample of each tag at the start of ``period`` (one query for those not cached)."""
        tags = list(dict.fromkeys(tags))
        ts = self.bounds(period)[0]
        missing = [t for t in tags if (t, ts) not in self._samples]
        if missing:
            found = await self.historian.query_at_many(missing, ts, self._since(period))
            self.queries += 1
            for tag in missing:
                self._samples[tag, ts] = found.get(tag)
        return {t: self._samples[t, ts] for t in tags}

    async def samples_between(self, tags: Iterable[str], at: float, since: float) -> dict[str, Sample | None]:
        """Return each tag's last usable sample with ``since <= ts <= at`` (one query for those not cached).

        For boundaries that are not period starts (hours and days of the
        balance report); cached by ``(tag, at, since)``.
        """
        tags = list(dict.fromkeys(tags))
        missing = [t for t in tags if (t, at, since) not in self._between]
        if missing:
            found = await self.historian.query_at_many(missing, at, since)
            self.queries += 1
            for tag in missing:
                self._between[tag, at, since] = found.get(tag)
        return {t: self._between[t, at, since] for t in tags}

    # -- meters and periods ---------------------------------------------------------------

    def first_seen(self, meter: Meter) -> date | None:
        """Return the day the metering point began (None if unknown: configured without ``installed`` or replaced since)."""
        if self.registry.replacements(meter.id, -math.inf, math.inf):
            return None  # ``installed`` is the replacement's day; the point existed before
        return meter.installed

    def in_period(self, meter: Meter, period: str) -> bool:
        """Tell whether the meter belongs to the period: installed before its end, not replaced by another meter.

        A meter decommissioned before the period stays (billed by ПП 354)
        while its premises has no other meter of that resource in service
        in the period; a meter that a new one (another id) took over from
        leaves the bills.
        """
        start, end = self.bounds(period)
        first = self.first_seen(meter)
        if first is not None and self._midnight(first) >= end:
            return False
        if meter.decommissioned is None or self._midnight(meter.decommissioned) >= start:
            return True
        if meter.premises is None:
            return False
        for other in self.registry.building(meter.building).meters:
            if (other.id != meter.id and other.premises == meter.premises and other.resource == meter.resource
                    and other.decommissioned is None):
                other_first = self.first_seen(other)
                if other_first is None or self._midnight(other_first) < end:
                    return False
        return True

    async def measure(self, meters: Sequence[Meter], period: str) -> dict[str, PeriodReading]:
        """Return each meter's measured readings and consumption for ``period``, without substitution.

        Two historian queries (the period's boundaries) for all meters, fewer when cached.
        """
        parse_period(period)
        starts = await self.samples_at([m.tag for m in meters], period)
        ends = await self.samples_at([m.tag for m in meters], shift_period(period, 1))
        return {m.id: self._measure_one(m, period, starts[m.tag], ends[m.tag]) for m in meters}

    def _serial(self, meter: Meter, end: float) -> str:
        """Return the serial of the meter installed at ``end`` (the old one's if it was replaced later)."""
        later = self.registry.replacements(meter.id, end, math.inf)
        return later[0].old_serial if later else meter.serial

    def _measure_one(self, meter: Meter, period: str, first: Sample | None, last: Sample | None) -> PeriodReading:
        start_ts, end_ts = self.bounds(period)
        expires = self.expires(meter)
        start, end = Reading.of(first), Reading.of(last)
        expired = False
        if start is not None and start.ts >= expires:
            start, expired = None, True
        if end is not None and end.ts >= expires:
            end, expired = None, True
        swaps = self.registry.replacements(meter.id, self._since(period), end_ts)
        before = [r for r in swaps if r.at < start_ts]
        chain = tuple(r for r in swaps if r.at >= start_ts)
        if before and (start is None or start.ts < before[-1].at):
            # Swapped after the last reading of the old meter: the new one starts from its initial reading.
            start = Reading(before[-1].initial_reading, before[-1].at, MANUAL)
        if chain and (end is None or end.ts < chain[-1].at) and not expired:
            # Nothing from the new meter yet: it has used nothing since it was installed.
            end = Reading(chain[-1].initial_reading, chain[-1].at, MANUAL)
        serial = self._serial(meter, end_ts)
        premises = self.registry.premises_of(meter)

        def result(consumption: float | None, source: int, problem: str | None) -> PeriodReading:
            return PeriodReading(meter, premises, period, serial, start, end, consumption, source, chain, problem)

        if meter.decommissioned is not None and self._midnight(meter.decommissioned) < end_ts:
            return result(None, MISSING, "decommissioned")
        if start is None or end is None:
            if expired:
                problem = "verification-expired"
            else:
                problem = "no-readings" if start is None and end is None else (
                    "no-start-reading" if start is None else "no-end-reading")
            return result(None, MISSING, problem)
        total = 0.0
        previous = start.value
        for swap in chain:
            total += swap.final_reading - previous
            previous = swap.initial_reading
        total += end.value - previous
        if total < -_NEGATIVE_TOLERANCE:
            return result(None, MISSING, "negative-consumption")
        source = worst(start.source, end.source, MANUAL if chain else MEASURED)
        return result(_round(max(total, 0.0)), source, None)

    async def read(self, meters: Sequence[Meter], period: str) -> list[PeriodReading]:
        """Return every meter's reading for ``period``, in the order given, substituted by ПП 354 where needed."""
        measured = await self.measure(meters, period)
        need = [m for m in meters if not measured[m.id].measured]
        if need:
            histories = await self.history(need, period)
            for meter in need:
                measured[meter.id] = self._substitute(measured[meter.id], histories[meter.id])
        return [measured[m.id] for m in meters]

    async def history(self, meters: Sequence[Meter], period: str) -> dict[str, list[pp354.MonthUsage]]:
        """Return each meter's previous :attr:`history_months` periods as ПП 354 month usages, oldest first.

        Periods before the metering point began are left out (a young meter
        has a short history, not a run of missing months).
        """
        out: dict[str, list[pp354.MonthUsage]] = {m.id: [] for m in meters}
        for back in range(self.history_months, 0, -1):
            month = shift_period(period, -back)
            month_end = self.bounds(month)[1]
            alive = [m for m in meters if (first := self.first_seen(m)) is None or self._midnight(first) < month_end]
            if not alive:
                continue
            for meter_id, got in (await self.measure(alive, month)).items():
                accepted = got.measured and got.source != CALCULATED
                out[meter_id].append(pp354.MonthUsage(month, got.consumption if accepted else None, accepted))
        return out

    def _substitute(self, got: PeriodReading, history: list[pp354.MonthUsage]) -> PeriodReading:
        meter, premises = got.meter, got.premises
        building = self.registry.building(meter.building)
        try:
            sub = pp354.substitute(
                got.period, history,
                next_verification=meter.next_verification,
                meter_failed=got.problem in ("decommissioned", "negative-consumption"),
                norm=building.norms.get(meter.resource),
                residents=premises.residents if premises else None,
                area=premises.area if premises else None,
                residential=premises.residential if premises else True,
                unit=meter.unit)
        except ValueError as exc:
            # Registry data the rules cannot use (validated config makes this unlikely): say so, bill nothing.
            sub = pp354.Substitution(got.period, None, pp354.RULE_NO_NORM, pp354.REASON_NO_READING, (), 0, 0,
                                     f"Расчёт невозможен: {exc}", f"Cannot substitute: {exc}")
        consumption = None if sub.consumption is None else _round(sub.consumption)
        return PeriodReading(meter, premises, got.period, got.serial, got.start, got.end, consumption,
                             CALCULATED if consumption is not None else MISSING, got.replacements, got.problem, sub)
