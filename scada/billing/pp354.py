"""Missing readings: the billed consumption of a meter for a period by the rules of ПП РФ №354.

ПП РФ №354 (Постановление Правительства РФ от 06.05.2011 №354, the
federal rules for utility services in apartment buildings) says what a
resident pays for when a meter's reading for a billing period is missing:
first the meter's own average, for a limited number of periods, then the
норматив (norm: a regional per-person or per-m² monthly volume).  This
module decides that volume for one meter and one period.  Pure functions:
no I/O, no Twisted, no clock; the caller (:mod:`scada.billing.readings`)
brings the meter's monthly history and registry data, and marks every
value returned here with quality/source ``calculated``.

Terms: ИПУ = apartment meter, ОДПУ = building meter, поверка =
metrological verification (``next_verification`` is the date it is due),
норматив = norm, СОИ/ОДН = common-property consumption.

What is implemented, and how
============================

=========================  ====================================================================
Regulation point           Status here
=========================  ====================================================================
п.59 preamble              Implemented.  Average monthly consumption over the most recent 6
                           months with accepted readings before the period; if fewer than 6
                           such months exist (a young meter) the average of those months, but
                           at least 3 are needed.  Fewer than 3 → the norm
                           (``pp354-59-insufficient-history-norm``).
п.59 «а»                   Implemented for an expired verification (``next_verification``
                           before the period's closing reading) and for a meter the caller
                           reports failed or lost (``meter_failed=True``): the average
                           (``pp354-59a-average``) for at most 3 periods in a row (2 for
                           non-residential premises), then the norm.
п.59 «б»                   Implemented: readings not submitted / not collected for the period
                           → the average (``pp354-59b-average``), same limits.
п.60                       Implemented: after the limit, the norm (``pp354-60-norm``):
                           per-person norm × residents, or per-m² norm × area.  The ×1.5
                           increasing coefficient is NOT applied by default; the caller may
                           pass ``norm_multiplier=1.5`` for the special cases (decided by a
                           person, e.g. a meter not replaced although technically possible,
                           п.42) and the explanation then shows it.
п.56(2)                    Assumption: a residential premises with no residents known (None
                           or 0) is billed by a per-person norm for 1 person (the rule bills by
                           the number of owners, which the registry does not hold); the
                           explanation says so.
Heating (п.59: "для        Simplified: with ``heating_season`` (the calendar months of the
отопления — за             season, e.g. {1,2,3,4,5,10,11,12}) only months of the season count
отопительный период")      for the average (still the most recent 6 of them, at least 3), and a
                           period outside the season is 0 (``pp354-59-heating-off-season``).
                           The heating rules changed by ПП №1176 of 29.08.2024 (from
                           01.03.2025) and п.42(1) (paying evenly over the year) are NOT
                           implemented.
Non-residential (п.43)     Limit of 2 periods implemented.  Per-person norms do not apply;
                           a per-m² norm × area is used when configured; the п.43 calculated
                           volume (pipe throughput, connected capacity…) is NOT implemented →
                           ``no-norm``.
No norm configured         ``no-norm``: consumption ``None`` and an explanation; never raises.
=========================  ====================================================================

Not implemented: п.59 «в» (the consumer did not let the contractor check
the meter); the penalties of п.81(11) (tampering, broken seals: ×10) and
п.62 (unauthorised connection); the day-proportional split of the month
in which a failure or verification expiry happens (the whole period is
substituted, since its closing reading cannot be accepted); п.61
recalculation of already substituted periods once readings resume
(readings resuming simply end the run: the next missing period starts a
new run); п.59(1) (the building meter's own average, for common-property
needs) and the СОИ/ОДН distribution of the building meter's volume;
п.80–81 commissioning formalities.

Regulation wording (checked through published quotations of the text, not the
consultant.ru page itself): the preamble of п.59 ("не менее 6 месяцев …
но не менее 3 месяцев", heating by the heating period) as quoted from the
редакция of 25.06.2021; the opening of п.60 ("По истечении предельного
количества расчетных периодов, указанных в пункте 59 …") and п.59(1) being
about the building meter, from the government.ru text.  Still to confirm
against the official text: the limits "3 periods residential, 2
non-residential" (secondary sources agree on both), and where п.60 puts
the ×1.5 coefficient (secondary sources: not automatic).

Rules of this module
====================

* A month's reading is *accepted* when it was measured (``measured``:
  from a meter reading, live, manual or back-filled; not itself
  substituted), its consumption is a finite number >= 0, and the
  meter's verification had not expired at the month's closing reading.
* The closing reading of period ``P`` is taken at 00:00 on the 1st of
  the next month; verification is *expired for P* when
  ``next_verification`` is before that date (a reading on the due date
  itself is still accepted).
* The *streak* is the number of periods in a row just before ``P``
  without an accepted reading (searched back to the oldest month in
  ``history``, or passed in as ``missing_streak``).  ``P`` is period
  ``streak + 1`` of its run; the average applies while ``streak <
  limit``, the norm from then on.  One accepted month ends the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Collection, Iterable, Protocol

from scada.billing.periods import parse_period, shift_period

__all__ = [
    "MonthUsage",
    "NormLike",
    "Substitution",
    "RULE_59A_AVERAGE",
    "RULE_59B_AVERAGE",
    "RULE_60_NORM",
    "RULE_INSUFFICIENT_HISTORY_NORM",
    "RULE_HEATING_OFF_SEASON",
    "RULE_NO_NORM",
    "RULES",
    "REASON_METER_FAILED",
    "REASON_VERIFICATION_EXPIRED",
    "REASON_NO_READING",
    "AVERAGE_MONTHS",
    "MIN_AVERAGE_MONTHS",
    "LIMIT_RESIDENTIAL",
    "LIMIT_NONRESIDENTIAL",
    "period_limit",
    "verification_expired",
    "reading_accepted",
    "missing_streak",
    "norm_volume",
    "substitute",
]

#: п.59 «а» average: meter failed, lost, or its verification expired.
RULE_59A_AVERAGE = "pp354-59a-average"
#: п.59 «б» average: no reading submitted or collected for the period.
RULE_59B_AVERAGE = "pp354-59b-average"
#: п.60: the norm after the limit of periods billed on the average.
RULE_60_NORM = "pp354-60-norm"
#: Fewer than 3 months of accepted readings: no average possible, the norm.
RULE_INSUFFICIENT_HISTORY_NORM = "pp354-59-insufficient-history-norm"
#: Heating outside the heating season: nothing to bill.
RULE_HEATING_OFF_SEASON = "pp354-59-heating-off-season"
#: A norm was needed but none applies (not configured, no area, п.43): consumption None.
RULE_NO_NORM = "no-norm"
#: Every rule code :func:`substitute` can return.
RULES = (RULE_59A_AVERAGE, RULE_59B_AVERAGE, RULE_60_NORM, RULE_INSUFFICIENT_HISTORY_NORM,
         RULE_HEATING_OFF_SEASON, RULE_NO_NORM)

#: Why the period has no accepted reading.
REASON_METER_FAILED = "meter-failed"
REASON_VERIFICATION_EXPIRED = "verification-expired"
REASON_NO_READING = "no-reading"

#: Months averaged (п.59: "не менее 6 месяцев").
AVERAGE_MONTHS = 6
#: Fewest months of readings an average may use (п.59: "но не менее 3 месяцев").
MIN_AVERAGE_MONTHS = 3
#: Periods in a row billed on the average before the norm (п.59 «а», «б»).
LIMIT_RESIDENTIAL = 3
LIMIT_NONRESIDENTIAL = 2


class NormLike(Protocol):
    """A norm (норматив) per month in the meter's unit: ``scada.registry.Norm`` or anything alike.

    One of ``per_person`` (per resident) and ``per_m2`` (per m² of the
    premises' area) is normally set; ``unit`` is informative.
    """

    per_person: float | None
    per_m2: float | None
    unit: str | None


@dataclass(frozen=True)
class MonthUsage:
    """One billing period of a meter's history.

    ``period`` is ``"YYYY-MM"``; ``consumption`` the volume for the period
    in the meter's unit (``None`` when there was no reading);
    ``measured`` is True when that volume comes from readings (measured,
    manual or back-filled) and False when it was itself substituted
    (``calculated``) — substituted months never feed an average and do not
    end a run of missing periods.
    """

    period: str
    consumption: float | None
    measured: bool = True


@dataclass(frozen=True)
class Substitution:
    """The volume billed for a period without an accepted reading, and why.

    ``consumption`` is ``None`` only with ``rule == "no-norm"``.
    ``rule`` is one of :data:`RULES` (a stable machine code);
    ``reason`` one of ``meter-failed``, ``verification-expired``,
    ``no-reading``; ``months_used`` the periods averaged, oldest first
    (empty for a norm); ``streak`` the position of this period in its run
    of periods without readings (1 = first); ``limit`` the run length
    billed on the average (3, or 2 for non-residential premises);
    ``explanation_ru`` / ``explanation_en`` one sentence for people,
    naming the regulation point.
    """

    period: str
    consumption: float | None
    rule: str
    reason: str
    months_used: tuple[str, ...]
    streak: int
    limit: int
    explanation_ru: str
    explanation_en: str


def period_limit(residential: bool) -> int:
    """Return how many periods in a row may be billed on the average (3 residential, 2 not)."""
    return LIMIT_RESIDENTIAL if residential else LIMIT_NONRESIDENTIAL


def verification_expired(period: str, next_verification: date | None) -> bool:
    """Return True when the meter's verification is past due at the closing reading of ``period``.

    The closing reading is taken on the 1st of the next month; a due date
    before it means that reading, and so the period's consumption, is not
    accepted (п.59 «а»).  ``None`` (no due date known) never expires.
    """
    if next_verification is None:
        return False
    year, month = parse_period(shift_period(period, 1))
    return next_verification < date(year, month, 1)


def _usable(value: float | None) -> bool:
    """Return True for a consumption that can be billed: a finite number >= 0."""
    return (value is not None and not isinstance(value, bool) and isinstance(value, (int, float))
            and math.isfinite(value) and value >= 0)


def reading_accepted(usage: MonthUsage | None, next_verification: date | None = None) -> bool:
    """Return True when ``usage`` is an accepted reading (see the module's rules)."""
    return (usage is not None and usage.measured and _usable(usage.consumption)
            and not verification_expired(usage.period, next_verification))


def _index(history: Iterable[MonthUsage]) -> dict[str, MonthUsage]:
    """Return the history by period; :class:`ValueError` naming a malformed or repeated period."""
    by_period: dict[str, MonthUsage] = {}
    for usage in history:
        parse_period(usage.period)
        if usage.period in by_period:
            raise ValueError(f"period {usage.period!r} appears twice in the meter's history")
        by_period[usage.period] = usage
    return by_period


def _streak(period: str, by_period: dict[str, MonthUsage], next_verification: date | None) -> int:
    """Count the periods in a row just before ``period`` without an accepted reading."""
    earlier = [p for p in by_period if p < period]
    if not earlier:
        return 0
    oldest = min(earlier)
    count = 0
    current = shift_period(period, -1)
    while current >= oldest and not reading_accepted(by_period.get(current), next_verification):
        count += 1
        current = shift_period(current, -1)
    return count


def missing_streak(period: str, history: Iterable[MonthUsage], next_verification: date | None = None) -> int:
    """Return the number of periods in a row just before ``period`` without an accepted reading.

    Months absent from ``history`` count as without a reading, back to
    the oldest month ``history`` holds; pass enough history (a year) for
    the count to see the whole run.
    """
    parse_period(period)
    return _streak(period, _index(history), next_verification)


# --- explanations ---------------------------------------------------------------------------


def _num_ru(value: float) -> str:
    """Format a volume the Russian way: 3 decimals, decimal comma."""
    return f"{value:.3f}".replace(".", ",")


def _num_en(value: float) -> str:
    """Format a volume with 3 decimals."""
    return f"{value:.3f}"


def _plain(value: float, decimal: str = ".") -> str:
    """Format a factor (norm, area, coefficient) without trailing zeros: 0.0213, 54.2, 1.5."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text.replace(".", decimal)


def _with_unit(text: str, unit: str | None) -> str:
    """Append the unit to a number when one is known."""
    return f"{text} {unit}" if unit else text


def _months_text(months: tuple[str, ...]) -> str:
    """Render the months used: a range when consecutive, else a list."""
    if len(months) == 1:
        return months[0]
    consecutive = all(shift_period(a, 1) == b for a, b in zip(months, months[1:]))
    return f"{months[0]}…{months[-1]}" if consecutive else ", ".join(months)


def _ordinal_en(n: int) -> str:
    """Return 1st, 2nd, 3rd, 4th, 11th…"""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _cause(reason: str, period: str, next_verification: date | None) -> tuple[str, str]:
    """Return the opening clause (ru, en) saying why ``period`` has no accepted reading."""
    if reason == REASON_VERIFICATION_EXPIRED:
        due = next_verification.isoformat() if next_verification else "?"
        return (f"Истёк срок поверки ({due}), показания за {period} не принимаются",
                f"Verification expired (due {due}); readings for {period} are not accepted")
    if reason == REASON_METER_FAILED:
        return (f"Прибор учёта неисправен или утрачен, нет показаний за {period}",
                f"Meter failed or lost; no reading for {period}")
    return f"Нет показаний за {period}", f"No reading for {period}"


# --- norm -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _NormResult:
    """A norm-based volume, or None with the reason why not (ru, en)."""

    consumption: float | None
    text_ru: str
    text_en: str


def _check_number(name: str, value: float | None, *, allow_none: bool = True) -> None:
    """Raise :class:`ValueError` naming ``value`` unless it is a finite number >= 0 (or None)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} {value!r} must be a finite number >= 0")


def norm_volume(norm: NormLike | None, *, residents: int | None, area: float | None,
                residential: bool = True, norm_multiplier: float = 1.0,
                unit: str | None = None) -> tuple[float | None, str, str]:
    """Return ``(volume, text_ru, text_en)`` of the norm for one premises and month.

    Residential: a per-person norm × residents (1 person assumed when
    residents are unknown or 0, see п.56(2) in the module notes), else a
    per-m² norm × area.  Non-residential: only a per-m² norm × area (the
    п.43 calculated volume is not implemented).  Both × ``norm_multiplier``.
    When no norm applies, the volume is ``None`` and the texts say why.
    :class:`ValueError` naming the value for negative or non-finite inputs.
    """
    result = _norm(norm, residents=residents, area=area, residential=residential,
                   norm_multiplier=norm_multiplier, unit=unit)
    return result.consumption, result.text_ru, result.text_en


def _norm(norm: NormLike | None, *, residents: int | None, area: float | None, residential: bool,
          norm_multiplier: float, unit: str | None) -> _NormResult:
    """Compute the norm volume (see :func:`norm_volume`)."""
    if residents is not None and (isinstance(residents, bool) or not isinstance(residents, int) or residents < 0):
        raise ValueError(f"residents {residents!r} must be a whole number >= 0")
    _check_number("area", area)
    _check_number("norm multiplier", norm_multiplier, allow_none=False)
    per_person = getattr(norm, "per_person", None) if norm is not None else None
    per_m2 = getattr(norm, "per_m2", None) if norm is not None else None
    _check_number("norm per person", per_person)
    _check_number("norm per m2", per_m2)
    unit = unit or (getattr(norm, "unit", None) if norm is not None else None)
    factor_ru = factor_en = ""
    if norm_multiplier != 1.0:
        factor_ru = f" × повышающий коэффициент {_plain(norm_multiplier, ',')}"
        factor_en = f" × increasing coefficient {_plain(norm_multiplier)}"

    if residential and per_person is not None:
        people = residents if residents else 1
        assumed_ru = assumed_en = ""
        if not residents:
            assumed_ru = " (число проживающих не указано или 0 — принят 1 человек, п. 56(2))"
            assumed_en = " (residents unknown or 0 — 1 person assumed, п.56(2))"
        value = per_person * people * norm_multiplier
        return _NormResult(
            value,
            f"норматив {_plain(per_person, ',')} на человека × {people} чел.{factor_ru} = "
            f"{_with_unit(_num_ru(value), unit)}{assumed_ru}",
            f"norm {_plain(per_person)} per person × {people} person(s){factor_en} = "
            f"{_with_unit(_num_en(value), unit)}{assumed_en}")
    if per_m2 is not None:
        if area is None or area == 0:
            return _NormResult(None, "норматив на м² задан, но площадь помещения не указана",
                               "a per-m² norm is configured but the premises' area is unknown")
        value = per_m2 * area * norm_multiplier
        return _NormResult(
            value,
            f"норматив {_plain(per_m2, ',')} на м² × {_plain(area, ',')} м²{factor_ru} = "
            f"{_with_unit(_num_ru(value), unit)}",
            f"norm {_plain(per_m2)} per m² × {_plain(area)} m²{factor_en} = "
            f"{_with_unit(_num_en(value), unit)}")
    if not residential and per_person is not None:
        return _NormResult(None, "для нежилого помещения норматив на человека не применяется, "
                                 "расчётный объём по п. 43 не реализован",
                           "a per-person norm does not apply to non-residential premises; "
                           "the п.43 calculated volume is not implemented")
    return _NormResult(None, "норматив для этого ресурса не задан",
                       "no norm is configured for this resource")


# --- the decision -----------------------------------------------------------------------------


def _average(values: list[float]) -> float:
    """Return the mean, kept within [min, max] of the values despite rounding."""
    mean = math.fsum(values) / len(values)
    return min(max(mean, min(values)), max(values))


def substitute(period: str, history: Iterable[MonthUsage], *,
               next_verification: date | None = None,
               meter_failed: bool = False,
               missing_streak: int | None = None,
               norm: NormLike | None = None,
               residents: int | None = None,
               area: float | None = None,
               residential: bool = True,
               norm_multiplier: float = 1.0,
               heating_season: Collection[int] | None = None,
               unit: str | None = None) -> Substitution:
    """Return the volume to bill for ``period``, which has no accepted reading, and the rule applied.

    ``history``: the meter's months (any order; months at or after
    ``period`` are ignored), as :class:`MonthUsage`; give at least the
    12 months before ``period`` so both the average and the run of
    missing periods are seen.  ``next_verification``: the verification due
    date (readings after it are not accepted).  ``meter_failed``: the
    meter is known broken or lost (п.59 «а»).  ``missing_streak``: the
    number of periods in a row just before ``period`` already billed
    without a reading; ``None`` counts it from ``history``.  ``norm``,
    ``residents``, ``area``, ``residential``: the premises and its
    building's norm for the meter's resource.  ``norm_multiplier``: 1 unless
    a person decided a special case (×1.5).  ``heating_season``: calendar
    months (1..12) of the heating season, for heat meters only.  ``unit``:
    shown in the explanations (defaults to the norm's unit).

    Never raises for a missing norm (``rule == "no-norm"``, consumption
    ``None``); raises :class:`ValueError` naming the value for malformed
    periods, repeated history months, a negative streak, negative
    residents/area/norms, or heating months outside 1..12.
    """
    parse_period(period)
    by_period = _index(history)
    if missing_streak is None:
        streak = _streak(period, by_period, next_verification)
    elif isinstance(missing_streak, bool) or not isinstance(missing_streak, int) or missing_streak < 0:
        raise ValueError(f"missing streak {missing_streak!r} must be a whole number >= 0")
    else:
        streak = missing_streak
    season: frozenset[int] | None = None
    if heating_season is not None:
        season = frozenset(heating_season)
        bad = [m for m in season if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= 12]
        if bad:
            raise ValueError(f"heating season months {sorted(map(repr, bad))} must be 1..12")

    if meter_failed:
        reason = REASON_METER_FAILED
    elif verification_expired(period, next_verification):
        reason = REASON_VERIFICATION_EXPIRED
    else:
        reason = REASON_NO_READING
    point_ru, point_en = ("п. 59 «а»", "п.59(a)") if reason != REASON_NO_READING else ("п. 59 «б»", "п.59(b)")
    limit = period_limit(residential)
    position = streak + 1
    cause_ru, cause_en = _cause(reason, period, next_verification)
    unit = unit or (getattr(norm, "unit", None) if norm is not None else None)

    def result(consumption: float | None, rule: str, months: tuple[str, ...], ru: str, en: str) -> Substitution:
        return Substitution(period=period, consumption=consumption, rule=rule, reason=reason,
                            months_used=months, streak=position, limit=limit,
                            explanation_ru=ru, explanation_en=en)

    if season is not None and parse_period(period)[1] not in season:
        return result(0.0, RULE_HEATING_OFF_SEASON, (),
                      f"{cause_ru}: {period} вне отопительного периода, объём отопления 0 "
                      f"(п. 59 ПП РФ №354: среднее за отопительный период)",
                      f"{cause_en}: {period} is outside the heating season, heating volume 0 "
                      f"(ПП РФ №354 п.59: average over the heating season)")

    # Months that may feed the average: accepted readings before the period, newest first.
    candidates = sorted((p for p in by_period if p < period), reverse=True)
    used = [p for p in candidates
            if reading_accepted(by_period[p], next_verification)
            and (season is None or parse_period(p)[1] in season)][:AVERAGE_MONTHS]
    used.reverse()
    months = tuple(used)

    if streak < limit and len(months) >= MIN_AVERAGE_MONTHS:
        value = _average([float(by_period[p].consumption) for p in months])  # type: ignore[arg-type]
        rule = RULE_59A_AVERAGE if reason != REASON_NO_READING else RULE_59B_AVERAGE
        season_ru = " отопительного периода" if season is not None else ""
        season_en = " of the heating season" if season is not None else ""
        return result(
            value, rule, months,
            f"{cause_ru}: среднемесячный объём за {len(months)} мес.{season_ru} ({_months_text(months)}) = "
            f"{_with_unit(_num_ru(value), unit)} по {point_ru} ПП РФ №354 (период {position} из {limit})",
            f"{cause_en}: average monthly consumption over {len(months)} months{season_en} "
            f"({_months_text(months)}) = {_with_unit(_num_en(value), unit)} under ПП РФ №354 {point_en} "
            f"(period {position} of {limit})")

    nv = _norm(norm, residents=residents, area=area, residential=residential,
               norm_multiplier=norm_multiplier, unit=unit)
    if streak >= limit:
        rule = RULE_60_NORM
        why_ru = (f"уже {position}-й период подряд без показаний (по {point_ru} среднее — не более "
                  f"{limit}), объём по п. 60 ПП РФ №354")
        why_en = (f"the {_ordinal_en(position)} period in a row without a reading ({point_en} allows the "
                  f"average for at most {limit}), volume under ПП РФ №354 п.60")
    else:
        rule = RULE_INSUFFICIENT_HISTORY_NORM
        why_ru = (f"показаний за прошлые периоды {len(months)} мес., для среднего по п. 59 ПП РФ №354 "
                  f"нужно не менее {MIN_AVERAGE_MONTHS}, объём по нормативу")
        why_en = (f"only {len(months)} month(s) of past readings, ПП РФ №354 п.59 needs at least "
                  f"{MIN_AVERAGE_MONTHS} for an average, volume by the norm")
    if nv.consumption is None:
        return result(None, RULE_NO_NORM, (),
                      f"{cause_ru}: {why_ru}, но {nv.text_ru}; объём не определён",
                      f"{cause_en}: {why_en}, but {nv.text_en}; no volume")
    return result(nv.consumption, rule, (), f"{cause_ru}: {why_ru}: {nv.text_ru}",
                  f"{cause_en}: {why_en}: {nv.text_en}")
