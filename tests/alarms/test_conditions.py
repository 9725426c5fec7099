"""Tests for the conditions the engine evaluates: limits, rate, stale, comm loss, status, schedule, verification."""

from __future__ import annotations

import math
from datetime import date

import pytest

from alarms.model import Priority, State
from alarms.rules import (
    CommLossRule,
    LimitRule,
    RateRule,
    ScheduleRule,
    StaleRule,
    StatusRule,
    VerificationRule,
)
from alarms.schedule import parse_window
from tags.model import TagDef
from tags.quality import Quality
from tests.alarms import T0, Site

SUPPLY = "heat1.t_supply"
RETURN = "heat1.t_return"
HI = f"temp:{SUPPLY}:hi"
LIMIT = LimitRule("temp", tags=(SUPPLY,), hihi=100.0, hi=90.0, lo=40.0, lolo=30.0, deadband=2.0)


# -- limits -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "active"),
    [(70.0, set()), (90.0, set()), (95.0, {"hi"}), (101.0, {"hi", "hihi"}), (40.0, set()), (35.0, {"lo"}),
     (25.0, {"lo", "lolo"}), (-math.inf, {"lo", "lolo"})],
)
def test_limit_levels(value: float, active: set[str]) -> None:
    """Each level is its own alarm: hi and hihi above, lo and lolo below."""
    s = Site([LIMIT])
    s.feed(SUPPLY, value)
    got = {a.level for a in s.engine.alarms() if a.active}
    assert got == active


def test_deadband() -> None:
    """Once raised, a high limit clears only when the value is back by the deadband."""
    s = Site([LIMIT])
    s.feed(SUPPLY, 91.0)
    for value in (90.0, 89.0, 88.5):
        s.feed(SUPPLY, value)
        assert s.engine.get(HI).active, value
    s.feed(SUPPLY, 88.0)
    assert not s.engine.get(HI).active
    s.feed(SUPPLY, 90.0)  # not above the limit itself: stays clear
    assert not s.engine.get(HI).active
    lo = s.engine.get(f"temp:{SUPPLY}:lo")
    s.feed(SUPPLY, 39.0)
    s.feed(SUPPLY, 41.9)
    assert lo.active
    s.feed(SUPPLY, 42.0)
    assert not lo.active


def test_on_delay() -> None:
    """The condition must hold for on_delay before the alarm raises; going away cancels it."""
    s = Site([LimitRule("temp", tags=(SUPPLY,), hi=90.0, on_delay=30.0)])
    s.feed(SUPPLY, 95.0)
    s.advance(29)
    assert s.state(HI) == "normal"
    s.feed(SUPPLY, 80.0)  # went away: the delay is cancelled
    s.advance(10)
    assert s.state(HI) == "normal" and s.journal.entries == []
    s.feed(SUPPLY, 96.0)
    s.advance(15)
    s.feed(SUPPLY, 97.0)  # still there: does not restart the delay
    s.advance(15)
    alarm = s.engine.get(HI)
    assert (alarm.state, alarm.active_since, alarm.value) == (State.UNACK_ACTIVE, T0 + 69, 96.0)


def test_off_delay() -> None:
    """The condition must be gone for off_delay before the alarm clears; coming back cancels it."""
    s = Site([LimitRule("temp", tags=(SUPPLY,), hi=90.0, off_delay=60.0)])
    s.feed(SUPPLY, 95.0)
    s.feed(SUPPLY, 80.0)
    s.advance(59)
    assert s.state(HI) == "unack_active"
    s.feed(SUPPLY, 95.0)  # back before the off delay ran out
    s.advance(120)
    assert s.state(HI) == "unack_active"
    s.feed(SUPPLY, 80.0)
    s.advance(60)
    assert s.state(HI) == "rtn_unack"
    assert [e.event for e in s.entries(HI)] == ["raise", "clear"]


@pytest.mark.parametrize("quality", [q for q in Quality if not q.usable] + [Quality.BACKFILLED])
def test_unusable_quality_holds(quality: Quality) -> None:
    """Samples without a current, trustworthy value move no limit, either way."""
    s = Site([LIMIT])
    s.feed(SUPPLY, 95.0, quality)
    assert s.state(HI) == "normal"
    s.feed(SUPPLY, 95.0)
    s.feed(SUPPLY, 70.0, quality)
    assert s.state(HI) == "unack_active"


@pytest.mark.parametrize("value", [None, math.nan])
def test_no_value_holds(value) -> None:
    """None and NaN with good quality hold the condition."""
    s = Site([LIMIT])
    s.feed(SUPPLY, 95.0)
    s.feed(SUPPLY, value)
    assert s.state(HI) == "unack_active"


@pytest.mark.parametrize("quality", [Quality.MANUAL, Quality.CALCULATED])
def test_manual_and_calculated_count(quality: Quality) -> None:
    """Manual and calculated values are usable: they move conditions."""
    s = Site([LIMIT])
    s.feed(SUPPLY, 95.0, quality)
    assert s.state(HI) == "unack_active"


# -- rate -------------------------------------------------------------------------------------


def test_rate_of_change() -> None:
    """|Δvalue/Δt| over the window against the oldest kept sample; above max_rate raises."""
    s = Site([RateRule("fast", tags=(SUPPLY,), max_rate=0.5, window=60.0)])
    rid = f"fast:{SUPPLY}"
    s.feed(SUPPLY, 70.0)
    s.advance(10)
    s.feed(SUPPLY, 74.0)  # 0.4/s
    assert s.state(rid) == "normal"
    s.advance(10)
    s.feed(SUPPLY, 81.0)  # (81-70)/20 = 0.55/s
    alarm = s.engine.get(rid)
    assert alarm.state is State.UNACK_ACTIVE
    assert alarm.value == pytest.approx(0.55)
    s.advance(45)  # T0+65: T0 leaves the window; against T0+10: (81-74)/55
    s.feed(SUPPLY, 81.0)
    assert alarm.state is State.RTN_UNACK
    s.feed(SUPPLY, 99.0, Quality.TIMEOUT)  # unusable: ignored
    assert alarm.state is State.RTN_UNACK


def test_rate_uses_sample_times() -> None:
    """The rate is over the samples' own timestamps (a late batch keeps its spacing)."""
    s = Site([RateRule("fast", tags=(SUPPLY,), max_rate=1.0, window=600.0)])
    s.feed(SUPPLY, 0.0, ts=T0 - 100)
    s.feed(SUPPLY, 50.0, ts=T0 - 50)  # 1/s, not above
    assert s.state(f"fast:{SUPPLY}") == "normal"
    s.feed(SUPPLY, 200.0, ts=T0)  # 200/100 = 2/s
    assert s.state(f"fast:{SUPPLY}") == "unack_active"


def test_rate_alarm_clears_after_the_clock_steps_back() -> None:
    """A host clock stepping back an hour does not freeze an active rate alarm for that hour."""
    s = Site([RateRule("fast", tags=(SUPPLY,), max_rate=1.0, window=600.0)])
    rid = f"fast:{SUPPLY}"
    s.feed(SUPPLY, 0.0)
    s.advance(60)
    s.feed(SUPPLY, 120.0)  # 2/s
    alarm = s.engine.get(rid)
    assert alarm.state is State.UNACK_ACTIVE
    back = s.now - 3600
    s.feed(SUPPLY, 120.5, ts=back)  # the first sample after the step: no rate proven, the condition clears
    assert alarm.state is State.RTN_UNACK and not alarm.active
    s.feed(SUPPLY, 121.0, ts=back + 60)  # the new time line is evaluated at once: calm
    assert alarm.state is State.RTN_UNACK
    s.feed(SUPPLY, 300.0, ts=back + 120)  # and a real jump raises again
    assert alarm.state is State.UNACK_ACTIVE and alarm.count == 2
    assert alarm.value == pytest.approx((300.0 - 120.5) / 120)


# -- stale ------------------------------------------------------------------------------------


def test_stale() -> None:
    """No usable sample for `after` seconds raises; unusable samples do not refresh; a usable one clears."""
    s = Site([StaleRule("stale", tags=(SUPPLY,), after=600.0)])
    sid = f"stale:{SUPPLY}"
    s.step(300, every=60)
    s.feed(SUPPLY, 70.0)
    s.step(599, every=60)
    assert s.state(sid) == "normal"
    s.feed(SUPPLY, None, Quality.TIMEOUT)  # does not count as fresh
    s.step(1)
    alarm = s.engine.get(sid)
    assert (alarm.state, alarm.active_since) == (State.UNACK_ACTIVE, T0 + 900)
    s.step(5)
    s.feed(SUPPLY, 70.0)
    assert alarm.state is State.RTN_UNACK
    s.engine.ack(sid, "ivanov")
    s.step(599)
    assert alarm.state is State.NORMAL
    s.step(1)
    assert alarm.state is State.UNACK_ACTIVE and alarm.count == 1


def test_stale_from_start() -> None:
    """A tag that never sends raises `after` seconds after start."""
    s = Site([StaleRule("stale", tags=(SUPPLY, RETURN), after=120.0)])
    s.step(119)
    s.feed(RETURN, 50.0)
    s.step(1)
    assert s.state(f"stale:{SUPPLY}") == "unack_active"
    assert s.state(f"stale:{RETURN}") == "normal"


def test_stale_uses_one_timer_for_many_tags() -> None:
    """Thousands of stale alarms fed every minute keep a single pending timer."""
    tags = [TagDef(f"m{i}.v", device=f"m{i}") for i in range(2000)]
    s = Site([StaleRule("stale", tags=tuple(t.name for t in tags), after=600.0)], tags=tags, flood_count=5000)
    for _ in range(30):
        s.feed_many([(t.name, 1.0, Quality.GOOD) for t in tags])
        s.advance(60)
        assert len(s.clock.getDelayedCalls()) == 1
    assert s.engine.alarms() == []
    s.advance(600)
    assert len(s.engine.alarms()) == 2000
    assert len(s.clock.getDelayedCalls()) == 0


def test_stale_late_tag_rearms_earlier_deadline() -> None:
    """A stale alarm cleared with a shorter `after` than the pending timer's gets its own earlier deadline."""
    s = Site([StaleRule("slow", tags=(RETURN,), after=3600.0), StaleRule("fast", tags=(SUPPLY,), after=60.0)])
    s.step(60)
    assert s.state(f"fast:{SUPPLY}") == "unack_active"
    s.feed(SUPPLY, 1.0)
    s.step(60)
    assert s.engine.get(f"fast:{SUPPLY}").count == 2


# -- comm loss and suppression ----------------------------------------------------------------


COMM = CommLossRule("comm", devices=("heat1",), priority=Priority.HIGH)


def test_comm_loss() -> None:
    """comm_loss samples raise the device's alarm; any other quality clears it."""
    s = Site([COMM])
    s.feed(SUPPLY, None, Quality.COMM_LOSS)
    alarm = s.engine.get("comm:heat1")
    assert (alarm.state, alarm.device, alarm.priority) == (State.UNACK_ACTIVE, "heat1", Priority.HIGH)
    assert alarm.message == "Потеря связи с прибором heat1"
    s.feed(RETURN, None, Quality.COMM_LOSS)
    assert alarm.count == 1
    s.feed(RETURN, None, Quality.TIMEOUT)  # the device answers something: not comm loss
    assert alarm.state is State.RTN_UNACK
    s.feed("heat2.t_supply", None, Quality.COMM_LOSS)  # another device
    assert alarm.state is State.RTN_UNACK


def test_comm_loss_on_delay() -> None:
    """A comm-loss alarm with on_delay raises only if the loss lasts."""
    s = Site([CommLossRule("comm", devices=("heat1",), on_delay=300.0)])
    s.feed(SUPPLY, None, Quality.COMM_LOSS)
    s.advance(200)
    s.feed(SUPPLY, 70.0)
    s.advance(200)
    assert s.state("comm:heat1") == "normal"
    s.feed(SUPPLY, None, Quality.COMM_LOSS)
    s.advance(300)
    assert s.state("comm:heat1") == "unack_active"


def test_comm_loss_expected_activity_window() -> None:
    """With an expected-activity window, comm loss only counts inside it (Moscow time)."""
    night = parse_window("mon-sun(00-06)", "Europe/Moscow")
    s = Site([CommLossRule("comm", devices=("heat1",), expected_activity=night)])
    s.feed(SUPPLY, None, Quality.COMM_LOSS)  # Saturday 10:00 in Moscow: outside
    alarm = s.engine.get("comm:heat1")
    assert alarm.state is State.NORMAL
    s.step(14 * 3600 - 1, every=600)  # Saturday 23:59:59
    assert alarm.state is State.NORMAL
    s.step(1)  # Sunday 00:00 Moscow
    assert (alarm.state, alarm.active_since) == (State.UNACK_ACTIVE, T0 + 14 * 3600)
    s.engine.ack("comm:heat1", "ivanov")
    s.step(6 * 3600, every=600)  # Sunday 06:00: the window closes, the loss no longer counts
    assert alarm.state is State.NORMAL
    s.step(18 * 3600, every=600)  # Monday 00:00: still lost, counts again
    assert alarm.state is State.UNACK_ACTIVE
    s.feed(SUPPLY, 70.0)
    assert alarm.state is State.RTN_UNACK


def test_comm_loss_inside_window_at_once() -> None:
    """Inside the window the loss raises at once."""
    day = parse_window("mon-sun(08-12)", "Europe/Moscow")
    s = Site([CommLossRule("comm", devices=("heat1",), expected_activity=day)])
    s.feed(SUPPLY, None, Quality.COMM_LOSS)
    assert s.state("comm:heat1") == "unack_active"
    s.step(2 * 3600, every=300)  # 12:00 Moscow
    assert s.state("comm:heat1") == "rtn_unack"


def test_suppression_and_release() -> None:
    """A device in comm loss suppresses its value alarms; they come back in the state their data demand."""
    stale = StaleRule("stale", tags=(RETURN,), after=600.0)
    status = StatusRule("st", device="heat1", tag="heat1.status", bits={0: "leak"})
    verif = VerificationRule("verif", due={"heat1": date(2026, 12, 1)})
    other = LimitRule("t2", tags=("heat2.t_supply",), hi=90.0)
    s = Site([COMM, LIMIT, stale, status, verif, other])
    s.feed_many([(SUPPLY, 95.0, Quality.GOOD), (RETURN, 50.0, Quality.GOOD), ("heat1.status", 0, Quality.GOOD)])
    s.feed("heat2.t_supply", 95.0)
    s.engine.ack(HI, "ivanov")
    assert s.state("verif:heat1") == "unack_active"

    s.feed_many([(SUPPLY, None, Quality.COMM_LOSS), (RETURN, None, Quality.COMM_LOSS),
                 ("heat1.status", None, Quality.COMM_LOSS)])
    suppressed = {a.id for a in s.engine.alarms("suppressed")}
    assert suppressed == {HI, f"temp:{SUPPLY}:hihi", f"temp:{SUPPLY}:lo", f"temp:{SUPPLY}:lolo",
                          f"stale:{RETURN}", "st:heat1.status:leak"}
    assert s.engine.get(HI).suppressed_by == "heat1"
    assert s.state("comm:heat1") == "unack_active"
    assert s.state("verif:heat1") == "unack_active"  # not a value alarm
    assert s.state("t2:heat2.t_supply:hi") == "unack_active"  # another device
    assert s.trail(HI)[-1] == ("suppress", "ack_active", "suppressed")

    s.step(900, every=60)  # stale raises underneath, unseen
    assert s.trail(f"stale:{RETURN}")[-1] == ("raise", "suppressed", "suppressed")
    assert {a.id for a in s.engine.alarms("unacked")} == {"comm:heat1", "t2:heat2.t_supply:hi", "verif:heat1"}

    # Comm returns in one poll: the values arrive with it, the release follows them.
    s.feed_many([(SUPPLY, 70.0, Quality.GOOD), (RETURN, 50.0, Quality.GOOD), ("heat1.status", 1, Quality.GOOD)])
    assert s.engine.alarms("suppressed") == []
    assert s.state(HI) == "normal"  # cleared while suppressed: back normal, no ack needed
    assert s.trail(HI)[-2:] == [("clear", "suppressed", "suppressed"), ("unsuppress", "suppressed", "normal")]
    assert s.state(f"stale:{RETURN}") == "normal"
    assert s.state("st:heat1.status:leak") == "unack_active"  # active now: announced
    assert s.state("comm:heat1") == "rtn_unack"
    assert s.engine.get("st:heat1.status:leak").suppressed_by is None


def test_suppression_release_per_sample() -> None:
    """Outside a batch (single updates) the release comes right after the sample."""
    s = Site([COMM, LIMIT])
    s.feed(SUPPLY, 95.0)
    s.feed(SUPPLY, None, Quality.COMM_LOSS)
    assert s.state(HI) == "suppressed"
    s.feed(SUPPLY, 96.0)
    assert s.state(HI) == "unack_active"
    assert [e.event for e in s.entries(HI)] == ["raise", "suppress", "unsuppress"]


def test_comm_loss_and_back_in_one_batch() -> None:
    """Loss and return inside one batch: suppressed and released once each, the last word wins."""
    s = Site([COMM, LIMIT])
    s.feed_many([(SUPPLY, None, Quality.COMM_LOSS), (RETURN, 50.0, Quality.GOOD)])
    assert s.state(HI) == "normal" and s.state("comm:heat1") == "rtn_unack"
    s.feed_many([(RETURN, 50.0, Quality.GOOD), (SUPPLY, None, Quality.COMM_LOSS)])
    assert s.state(HI) == "suppressed" and s.state("comm:heat1") == "unack_active"


def test_shelved_alarm_also_suppressed() -> None:
    """A shelved alarm whose device loses comm stays shelved, then shows suppressed when unshelved."""
    s = Site([COMM, LIMIT])
    s.engine.shelve(HI, "ivanov", 60, "наладка")
    s.feed(SUPPLY, None, Quality.COMM_LOSS)
    assert s.state(HI) == "shelved"
    assert s.trail(HI)[-1] == ("suppress", "shelved", "shelved")
    s.engine.unshelve(HI, "ivanov")
    assert s.state(HI) == "suppressed"


def test_device_without_comm_rule_not_suppressing() -> None:
    """Suppression by design comes with a comm-loss rule for the device."""
    s = Site([LIMIT])
    s.feed(SUPPLY, 95.0)
    s.feed(SUPPLY, None, Quality.COMM_LOSS)
    assert s.state(HI) == "unack_active"


def test_restore_keeps_suppression() -> None:
    """A restart during a comm loss keeps the device's alarms suppressed until comm returns."""
    first = Site([COMM, LIMIT])
    first.feed(SUPPLY, 95.0)
    first.feed(SUPPLY, None, Quality.COMM_LOSS)
    first.engine.stop()
    second = Site([COMM, LIMIT], journal=first.journal.__class__(states=first.journal.load_states()),
                  clock=first.clock)
    assert second.state(HI) == "suppressed" and second.state("comm:heat1") == "unack_active"
    assert second.journal.entries == []
    second.feed(SUPPLY, 80.0)
    assert second.state(HI) == "normal"


# -- status -----------------------------------------------------------------------------------


def test_status_bits() -> None:
    """Each set bit raises its kind's alarm; clearing the bit clears it."""
    rule = StatusRule("st", device="water7", tag="water7.status",
                      bits={0: "leak", 1: "tamper", 2: "low_battery", 5: "temporary_error"})
    s = Site([rule])
    s.feed("water7.status", 0b000101)
    active = {a.level for a in s.engine.alarms()}
    assert active == {"leak", "low_battery"}
    leak = s.engine.get("st:water7.status:leak")
    assert (leak.priority, leak.value, leak.message) == (Priority.CRITICAL, 5, "Протечка: water7 (water7.status)")
    s.feed("water7.status", 0b100100)
    assert leak.state is State.RTN_UNACK
    assert s.state("st:water7.status:temporary_error") == "unack_active"
    s.feed("water7.status", None, Quality.TIMEOUT)  # unknown: holds
    s.feed("water7.status", 1.5)  # not a bit field: holds
    assert s.state("st:water7.status:low_battery") == "unack_active"


def test_status_priorities() -> None:
    """Defaults per kind; kind_priorities override; rule.priority only for kinds without a default."""
    rule = StatusRule("st", tag="water7.status", priority=Priority.HIGH,
                      bits={0: "leak", 1: "tamper", 2: "sensor_failure", 3: "permanent_error", 4: "low_battery",
                            5: "temporary_error", 6: "door_open"},
                      kind_priorities={"low_battery": Priority.MEDIUM})
    s = Site([rule])
    got = {a.level: a.priority.value for a in s.engine.alarms("all") if a.kind == "status"}
    assert got == {"leak": "critical", "tamper": "high", "sensor_failure": "high", "permanent_error": "high",
                   "low_battery": "medium", "temporary_error": "medium", "door_open": "high"}
    assert s.engine.get("st:water7.status:leak").device == "water7"  # from the tag definition


def test_two_bits_one_kind() -> None:
    """Two bits mapped to the same kind make one alarm, active while either is set."""
    s = Site([StatusRule("st", tag="water7.status", bits={0: "leak", 4: "leak"})])
    s.feed("water7.status", 16)
    assert s.state("st:water7.status:leak") == "unack_active"
    s.feed("water7.status", 0)
    assert s.state("st:water7.status:leak") == "rtn_unack"


# -- schedule ---------------------------------------------------------------------------------


SCHEDULE = ScheduleRule("graph", tag=SUPPLY, outdoor_tag="weather.t_outdoor",
                        table=((-30.0, 95.0), (-10.0, 75.0), (0.0, 60.0), (10.0, 45.0)), tolerance=3.0)


def test_schedule() -> None:
    """Supply against the interpolated schedule, evaluated on a sample of either tag."""
    s = Site([SCHEDULE])
    gid = f"graph:{SUPPLY}"
    s.feed(SUPPLY, 70.0)  # no outdoor value yet: nothing to compare
    assert s.state(gid) == "normal"
    s.feed("weather.t_outdoor", -5.0)  # expected 67.5: 2.5 off
    assert s.state(gid) == "normal"
    s.feed("weather.t_outdoor", -2.0)  # expected 63: 7 off
    alarm = s.engine.get(gid)
    assert (alarm.state, alarm.value, alarm.limit) == (State.UNACK_ACTIVE, 70.0, pytest.approx(63.0))
    assert alarm.message == "Отклонение от температурного графика: heat1.t_supply = 70 (по графику 63)"
    s.feed(SUPPLY, 64.0)
    assert alarm.state is State.RTN_UNACK
    s.feed("weather.t_outdoor", -40.0)  # clamped: expected 95
    assert alarm.state is State.UNACK_ACTIVE and alarm.limit == 95.0
    s.feed("weather.t_outdoor", 99.0, Quality.DECODE_FAILED)  # holds
    assert alarm.state is State.UNACK_ACTIVE


# -- verification -----------------------------------------------------------------------------


def test_verification() -> None:
    """Active from `within` days before the due date; days left is the value; checked every hour."""
    rule = VerificationRule("verif", due={"heat1": date(2026, 12, 22), "water7": date(2026, 11, 1)}, within=30.0)
    s = Site([rule])
    early = s.engine.get("verif:heat1")
    late = s.engine.get("verif:water7")
    assert early.state is State.NORMAL  # 31 days left
    assert (late.state, late.value) == (State.UNACK_ACTIVE, -20)
    assert late.message == "Поверка прибора water7 просрочена (2026-11-01)"
    s.step(17 * 3600, every=3600)  # midnight UTC: 30 days left
    assert (early.state, early.value) == (State.UNACK_ACTIVE, 30)
    assert early.message == "Поверка прибора heat1 2026-12-22: осталось 30 дн."
    s.step(24 * 3600, every=3600)
    assert early.value == 29


def test_verification_time_zone() -> None:
    """Day boundaries are the site's: in Moscow the next day starts three hours earlier."""
    rule = VerificationRule("verif", due={"heat1": date(2026, 12, 22)}, within=30.0)
    s = Site([rule], tz="Europe/Moscow")
    s.step(14 * 3600, every=3600)  # 21:00 UTC = 00:00 Moscow
    assert s.state("verif:heat1") == "unack_active"
