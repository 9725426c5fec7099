"""ПП РФ №354 п.59–60: the substituted volume for a period without an accepted reading, case by case."""

from dataclasses import dataclass
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scada.billing.periods import previous_periods
from scada.billing.pp354 import (
    REASON_METER_FAILED,
    REASON_NO_READING,
    REASON_VERIFICATION_EXPIRED,
    RULE_59A_AVERAGE,
    RULE_59B_AVERAGE,
    RULE_60_NORM,
    RULE_HEATING_OFF_SEASON,
    RULE_INSUFFICIENT_HISTORY_NORM,
    RULE_NO_NORM,
    RULES,
    MonthUsage,
    missing_streak,
    norm_volume,
    reading_accepted,
    substitute,
    verification_expired,
)


@dataclass(frozen=True)
class Norm:
    """Stands in for scada.registry.Norm (same attributes)."""

    per_person: float | None = None
    per_m2: float | None = None
    unit: str | None = None


WATER = Norm(per_person=4.745, unit="m3")
HEAT = Norm(per_m2=0.0213, unit="Gcal")
PERIOD = "2026-10"


def months(values, before=PERIOD, measured=True):
    """History: ``values`` for the months just before ``before``, oldest first (None = no reading)."""
    periods = previous_periods(before, len(values))
    return [MonthUsage(p, v, measured) for p, v in zip(periods, values)]


# --- averages (п.59) ---------------------------------------------------------------------------


def test_six_months_average_59b():
    history = months([4.0, 5.0, 3.0, 4.0, 5.0, 3.0])
    s = substitute(PERIOD, history, norm=WATER, residents=2)
    assert s.rule == RULE_59B_AVERAGE
    assert s.reason == REASON_NO_READING
    assert s.consumption == pytest.approx(4.0)
    assert s.months_used == ("2026-04", "2026-05", "2026-06", "2026-07", "2026-08", "2026-09")
    assert (s.streak, s.limit) == (1, 3)
    assert "Нет показаний за 2026-10" in s.explanation_ru
    assert "за 6 мес. (2026-04…2026-09)" in s.explanation_ru
    assert "п. 59 «б» ПП РФ №354" in s.explanation_ru
    assert "4,000 m3" in s.explanation_ru
    assert "No reading for 2026-10" in s.explanation_en and "п.59(b)" in s.explanation_en


def test_only_the_latest_six_months_count():
    history = months([100.0, 100.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    s = substitute(PERIOD, history)
    assert s.consumption == pytest.approx(3.5)
    assert s.months_used[0] == "2026-04"


def test_four_months_young_meter():
    history = months([2.0, 4.0, 6.0, 8.0])
    s = substitute(PERIOD, history, norm=WATER, residents=2)
    assert s.rule == RULE_59B_AVERAGE
    assert s.consumption == pytest.approx(5.0)
    assert s.months_used == ("2026-06", "2026-07", "2026-08", "2026-09")
    assert "за 4 мес." in s.explanation_ru


def test_two_months_is_not_enough_norm():
    history = months([2.0, 4.0])
    s = substitute(PERIOD, history, norm=WATER, residents=2, unit="m3")
    assert s.rule == RULE_INSUFFICIENT_HISTORY_NORM
    assert s.consumption == pytest.approx(4.745 * 2)
    assert s.months_used == ()
    assert "не менее 3" in s.explanation_ru and "4,745" in s.explanation_ru
    assert "at least 3" in s.explanation_en


def test_no_history_at_all_norm():
    s = substitute(PERIOD, [], norm=WATER, residents=3)
    assert s.rule == RULE_INSUFFICIENT_HISTORY_NORM
    assert s.consumption == pytest.approx(4.745 * 3)
    assert s.streak == 1


def test_substituted_months_never_feed_the_average():
    history = months([3.0, 3.0, 3.0, 3.0], before="2026-09") + [MonthUsage("2026-09", 50.0, measured=False)]
    s = substitute(PERIOD, history)
    assert s.consumption == pytest.approx(3.0)
    assert "2026-09" not in s.months_used
    assert s.streak == 2


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), None])
def test_unusable_values_are_not_readings(bad):
    history = months([3.0, 3.0, 3.0, bad])
    s = substitute(PERIOD, history)
    assert s.months_used == ("2026-06", "2026-07", "2026-08")
    assert s.streak == 2


# --- limits and п.60 ---------------------------------------------------------------------------


def test_run_of_missing_periods_then_norm():
    good = months([4.0] * 6, before="2026-07")
    # 2026-07, -08, -09 already substituted (history marks them calculated): 2026-10 is the 4th.
    history = good + months([4.0, 4.0, 4.0], before=PERIOD, measured=False)
    for streak, rule in [(0, RULE_59B_AVERAGE), (1, RULE_59B_AVERAGE), (2, RULE_59B_AVERAGE), (3, RULE_60_NORM)]:
        s = substitute(PERIOD, good, missing_streak=streak, norm=WATER, residents=2)
        assert s.rule == rule, streak
        assert s.streak == streak + 1
    s = substitute(PERIOD, history, norm=WATER, residents=2)
    assert s.rule == RULE_60_NORM
    assert s.streak == 4
    assert s.consumption == pytest.approx(9.49)
    assert "4-й период подряд" in s.explanation_ru and "п. 60 ПП РФ №354" in s.explanation_ru
    assert "4th period in a row" in s.explanation_en and "п.60" in s.explanation_en


def test_gaps_in_history_count_as_missing():
    history = months([4.0] * 6, before="2026-07")  # nothing at all for 2026-07..09
    assert missing_streak(PERIOD, history) == 3
    assert substitute(PERIOD, history, norm=WATER, residents=1).rule == RULE_60_NORM


def test_readings_resume_and_the_run_resets():
    history = (months([4.0] * 6, before="2026-05")
               + months([None, None, None, None], before="2026-09")
               + [MonthUsage("2026-09", 6.0)])
    assert missing_streak(PERIOD, history) == 0
    s = substitute(PERIOD, history, norm=WATER, residents=2)
    assert s.rule == RULE_59B_AVERAGE
    assert s.streak == 1
    # The average takes the latest 6 accepted months, across the gap.
    assert s.months_used == ("2025-12", "2026-01", "2026-02", "2026-03", "2026-04", "2026-09")
    assert s.consumption == pytest.approx((5 * 4.0 + 6.0) / 6)


def test_non_residential_limit_is_two():
    history = months([10.0] * 6)
    office = dict(residential=False, norm=HEAT, area=120.0)
    assert substitute(PERIOD, history, missing_streak=1, **office).rule == RULE_59B_AVERAGE
    s = substitute(PERIOD, history, missing_streak=2, **office)
    assert s.limit == 2 and s.streak == 3
    assert s.rule == RULE_60_NORM
    assert s.consumption == pytest.approx(0.0213 * 120)
    assert "не более 2" in s.explanation_ru


def test_non_residential_per_person_norm_does_not_apply():
    s = substitute(PERIOD, [], residential=False, norm=WATER, residents=5)
    assert s.rule == RULE_NO_NORM and s.consumption is None
    assert "п. 43" in s.explanation_ru and "п.43" in s.explanation_en


# --- verification and failure (п.59 «а») --------------------------------------------------------


def test_expired_verification_is_59a_and_readings_after_due_are_ignored():
    # Due 2026-08-15: the closing readings of 2026-08 (on 09-01) and 2026-09 are not accepted.
    history = months([3.0, 3.0, 3.0, 3.0, 9.0, 9.0])
    due = date(2026, 8, 15)
    assert verification_expired("2026-08", due) and not verification_expired("2026-07", due)
    assert not reading_accepted(history[-1], due)
    s = substitute(PERIOD, history, next_verification=due, norm=WATER, residents=2)
    assert s.reason == REASON_VERIFICATION_EXPIRED
    # 2026-08 and -09 count as missing, so 2026-10 is the 3rd period of the run: still the average,
    # over the accepted months only.
    assert (s.rule, s.streak) == (RULE_59A_AVERAGE, 3)
    assert s.months_used == ("2026-04", "2026-05", "2026-06", "2026-07")
    assert s.consumption == pytest.approx(3.0)


def test_expired_verification_first_period_average():
    history = months([3.0, 3.0, 3.0, 3.0, 4.0, 5.0])
    due = date(2026, 10, 20)
    s = substitute(PERIOD, history, next_verification=due)
    assert s.rule == RULE_59A_AVERAGE
    assert s.reason == REASON_VERIFICATION_EXPIRED
    assert s.consumption == pytest.approx(3.5)
    assert "Истёк срок поверки (2026-10-20)" in s.explanation_ru
    assert "п. 59 «а»" in s.explanation_ru
    assert "Verification expired (due 2026-10-20)" in s.explanation_en and "п.59(a)" in s.explanation_en


def test_reading_on_the_due_date_is_still_accepted():
    assert not verification_expired("2026-09", date(2026, 10, 1))
    assert verification_expired("2026-09", date(2026, 9, 30))
    assert not verification_expired("2026-09", None)


def test_expired_verification_fourth_period_norm():
    history = months([3.0] * 6, before="2026-07") + months([3.0, 3.0, 3.0])
    due = date(2026, 7, 1)  # 2026-06 closes on the due date; 2026-07..09 not accepted: 2026-10 is the 4th
    s = substitute(PERIOD, history, next_verification=due, norm=WATER, residents=1)
    assert s.reason == REASON_VERIFICATION_EXPIRED
    assert s.streak == 4 and s.rule == RULE_60_NORM
    assert s.consumption == pytest.approx(4.745)


def test_meter_failed_is_59a():
    history = months([2.0] * 6)
    s = substitute(PERIOD, history, meter_failed=True)
    assert (s.rule, s.reason) == (RULE_59A_AVERAGE, REASON_METER_FAILED)
    assert "неисправен или утрачен" in s.explanation_ru


# --- norms ------------------------------------------------------------------------------------


def test_per_person_norm():
    assert norm_volume(WATER, residents=3, area=60.0)[0] == pytest.approx(4.745 * 3)


def test_per_m2_norm():
    volume, ru, en = norm_volume(HEAT, residents=2, area=54.2)
    assert volume == pytest.approx(0.0213 * 54.2)
    assert "0,0213 на м² × 54,2 м²" in ru and "0.0213 per m² × 54.2 m²" in en


def test_per_m2_norm_without_area_is_no_norm():
    s = substitute(PERIOD, [], norm=HEAT, residents=2, area=None)
    assert s.rule == RULE_NO_NORM and s.consumption is None
    assert "площадь" in s.explanation_ru


@pytest.mark.parametrize("residents", [None, 0])
def test_unknown_residents_count_as_one(residents):
    volume, ru, en = norm_volume(WATER, residents=residents, area=None)
    assert volume == pytest.approx(4.745)
    assert "принят 1 человек" in ru and "1 person assumed" in en


def test_no_norm_configured():
    s = substitute(PERIOD, months([1.0]), missing_streak=0, norm=None, residents=2)
    assert s.rule == RULE_NO_NORM
    assert s.consumption is None
    assert "норматив для этого ресурса не задан" in s.explanation_ru
    assert "no norm is configured" in s.explanation_en
    s = substitute(PERIOD, [], norm=Norm(), residents=2)
    assert s.rule == RULE_NO_NORM


def test_multiplier_only_when_asked():
    plain = substitute(PERIOD, [], norm=WATER, residents=2)
    assert plain.consumption == pytest.approx(9.49) and "коэффициент" not in plain.explanation_ru
    raised = substitute(PERIOD, [], norm=WATER, residents=2, norm_multiplier=1.5)
    assert raised.consumption == pytest.approx(9.49 * 1.5)
    assert "повышающий коэффициент 1,5" in raised.explanation_ru
    assert "increasing coefficient 1.5" in raised.explanation_en


# --- heating ----------------------------------------------------------------------------------


SEASON = {1, 2, 3, 4, 10, 11, 12}


def test_heating_average_uses_season_months_only():
    history = months([2.0, 2.5, 3.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 1.5, 2.0], before="2026-01")
    # 2025-01..2025-12: season months Jan–Apr, Oct–Dec; the latest 6 of them: 2025-02..04, 10..12.
    s = substitute("2026-01", history, heating_season=SEASON, norm=HEAT, area=50.0)
    assert s.rule == RULE_59B_AVERAGE
    assert s.months_used == ("2025-02", "2025-03", "2025-04", "2025-10", "2025-11", "2025-12")
    assert s.consumption == pytest.approx((2.5 + 3.0 + 1.0 + 0.5 + 1.5 + 2.0) / 6)
    assert "2025-02, 2025-03" in s.explanation_ru and "отопительного периода" in s.explanation_ru


def test_heating_off_season_is_zero():
    s = substitute("2026-07", [], heating_season=SEASON)
    assert s.rule == RULE_HEATING_OFF_SEASON and s.consumption == 0.0


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, named", [
    (dict(missing_streak=-1), "-1"),
    (dict(residents=-2, norm=WATER), "-2"),
    (dict(area=float("nan"), norm=HEAT), "nan"),
    (dict(heating_season={0, 13}), "13"),
])
def test_bad_arguments_name_the_value(kwargs, named):
    with pytest.raises(ValueError, match=named):
        substitute(PERIOD, [], **kwargs)


def test_bad_history_names_the_period():
    with pytest.raises(ValueError, match="'2026-9'"):
        substitute(PERIOD, [MonthUsage("2026-9", 1.0)])
    with pytest.raises(ValueError, match="'2026-09' appears twice"):
        substitute(PERIOD, [MonthUsage("2026-09", 1.0), MonthUsage("2026-09", 2.0)])
    with pytest.raises(ValueError, match="'2026-10-01'"):
        substitute("2026-10-01", [])


def test_history_at_or_after_the_period_is_ignored():
    history = months([1.0, 1.0, 1.0]) + [MonthUsage(PERIOD, 99.0), MonthUsage("2026-11", 99.0)]
    assert substitute(PERIOD, history).consumption == pytest.approx(1.0)


# --- properties -------------------------------------------------------------------------------


volumes = st.one_of(st.none(), st.floats(min_value=0, max_value=1e6, allow_nan=False),
                    st.just(-1.0), st.just(float("nan")))


@settings(max_examples=50, deadline=None)
@given(values=st.lists(volumes, max_size=14), measured=st.lists(st.booleans(), min_size=14, max_size=14),
       streak=st.one_of(st.none(), st.integers(0, 5)), residential=st.booleans(),
       residents=st.one_of(st.none(), st.integers(0, 8)),
       area=st.one_of(st.none(), st.floats(0, 500, allow_nan=False)),
       norm=st.sampled_from([None, WATER, HEAT, Norm(per_person=90.0, per_m2=1.0)]),
       due=st.one_of(st.none(), st.dates(date(2025, 6, 1), date(2026, 12, 31))),
       season=st.sampled_from([None, SEASON]))
def test_substitution_is_never_negative_and_averages_stay_in_range(values, measured, streak, residential,
                                                                   residents, area, norm, due, season):
    history = [MonthUsage(u.period, u.consumption, m) for u, m in zip(months(values), measured)]
    s = substitute(PERIOD, history, missing_streak=streak, norm=norm, residents=residents, area=area,
                   residential=residential, next_verification=due, heating_season=season)
    assert s.rule in RULES
    assert s.explanation_ru and s.explanation_en
    if s.rule == RULE_NO_NORM:
        assert s.consumption is None
    else:
        assert s.consumption is not None and s.consumption >= 0
    if s.rule in (RULE_59A_AVERAGE, RULE_59B_AVERAGE):
        by_period = {u.period: u.consumption for u in history}
        used = [by_period[p] for p in s.months_used]
        assert 3 <= len(used) <= 6
        assert min(used) <= s.consumption <= max(used)
        assert s.streak <= s.limit
