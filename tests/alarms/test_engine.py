"""Tests for alarms.engine: the ISA-18.2 life of alarms, operator actions, journal, restore, API shape."""

from __future__ import annotations

import json
from datetime import date

import pytest

from alarms.engine import FLOOD_ID, AlarmConflict, AlarmEngine, UnknownAlarm
from alarms.model import MemoryJournal, Priority, State
from alarms.rules import (
    CommLossRule,
    LimitRule,
    RateRule,
    ScheduleRule,
    StaleRule,
    StatusRule,
    VerificationRule,
)
from tags.quality import Quality
from tags.table import TagTable
from tests.alarms import T0, Site

SUPPLY = "heat1.t_supply"
HI = f"temp:{SUPPLY}:hi"
LO = f"temp:{SUPPLY}:lo"
LIMIT = LimitRule("temp", tags=(SUPPLY,), hi=90.0, lo=40.0, deadband=2.0)


def site(*rules, **options) -> Site:
    """Return a started site with the temperature limit (and ``rules``)."""
    return Site([LIMIT, *rules], **options)


def raise_hi(s: Site) -> None:
    s.feed(SUPPLY, 95.0)


def clear_hi(s: Site) -> None:
    s.feed(SUPPLY, 70.0)


# -- ids and construction -------------------------------------------------------------------


def test_alarm_ids_per_kind() -> None:
    """Ids follow alarms.rules.alarm_id: level for limits, kind for status, device for device alarms."""
    rules = [
        LIMIT,
        RateRule("fast", tags=(SUPPLY,), max_rate=1.0),
        StaleRule("stale", tags=(SUPPLY,)),
        CommLossRule("comm", devices=("heat1",)),
        StatusRule("st", device="heat1", tag="heat1.status", bits={0: "leak", 3: "low_battery"}),
        ScheduleRule("sched", tag=SUPPLY, outdoor_tag="weather.t_outdoor", table=((0.0, 60.0),)),
        VerificationRule("verif", due={"heat1": date(2027, 5, 1)}),
    ]
    s = Site(rules)
    ids = {a.id for a in s.engine.alarms("all")}
    assert ids == {HI, LO, f"fast:{SUPPLY}", f"stale:{SUPPLY}", "comm:heat1", "st:heat1.status:leak",
                   "st:heat1.status:low_battery", f"sched:{SUPPLY}", "verif:heat1", FLOOD_ID}
    alarm = s.engine.get("st:heat1.status:leak")
    assert (alarm.kind, alarm.tag, alarm.device, alarm.level) == ("status", "heat1.status", "heat1", "leak")
    comm = s.engine.get("comm:heat1")
    assert (comm.tag, comm.device) == (None, "heat1")


def test_duplicate_alarm_id_refused() -> None:
    """Two rules of the same name on the same tag would share an id: refused, naming it."""
    with pytest.raises(ValueError, match="temp:heat1.t_supply:hi"):
        Site([LIMIT, LimitRule("temp", tags=(SUPPLY,), hi=80.0)], start=False)


@pytest.mark.parametrize("option", [{"flood_count": 0}, {"flood_window": 0}, {"max_shelve": -1}, {"lang": "de"}])
def test_bad_settings_refused(option) -> None:
    """Settings that cannot work are refused when the engine is built."""
    with pytest.raises(ValueError, match=next(iter(option))):
        Site([LIMIT], start=False, **option)


def test_nothing_evaluated_before_start() -> None:
    """Samples before start are not seen; start evaluates what the table holds then."""
    s = site(start=False)
    raise_hi(s)
    assert s.state(HI) == "normal"
    s.engine.start()
    assert s.state(HI) == "unack_active"
    s.engine.start()  # a second start does nothing
    assert len(s.entries(HI)) == 1


# -- the ISA transitions through the engine ---------------------------------------------------


def test_raise_ack_clear() -> None:
    """normal → unack_active → ack_active → normal, one journal entry each."""
    s = site()
    raise_hi(s)
    alarm = s.engine.get(HI)
    assert (alarm.state, alarm.active, alarm.active_since, alarm.value, alarm.count) == (
        State.UNACK_ACTIVE, True, T0, 95.0, 1)
    s.advance(10)
    s.engine.ack(HI, "ivanov", "смотрю")
    assert (alarm.state, alarm.acked_by, alarm.acked_at) == (State.ACK_ACTIVE, "ivanov", T0 + 10)
    s.advance(10)
    clear_hi(s)
    assert (alarm.state, alarm.active, alarm.active_since) == (State.NORMAL, False, None)
    assert s.trail(HI) == [("raise", "normal", "unack_active"), ("ack", "unack_active", "ack_active"),
                           ("clear", "ack_active", "normal")]
    assert [e.ts for e in s.entries(HI)] == [T0, T0 + 10, T0 + 20]


def test_clear_before_ack_then_ack() -> None:
    """unack_active → rtn_unack on clear; the acknowledgement then makes it normal."""
    s = site()
    raise_hi(s)
    clear_hi(s)
    assert s.state(HI) == "rtn_unack"
    alarm = s.engine.ack(HI, "petrov")
    assert (alarm.state, alarm.active_since, alarm.acked_by) == (State.NORMAL, None, "petrov")
    assert s.trail(HI)[-1] == ("ack", "rtn_unack", "normal")


def test_chattering_is_one_alarm_with_a_count() -> None:
    """A condition that toggles before anyone acknowledges stays one alarm, counting occurrences."""
    s = site()
    for n in range(1, 6):
        raise_hi(s)
        s.advance(1)
        clear_hi(s)
        s.advance(1)
        assert s.engine.get(HI).count == n
    assert [a.id for a in s.engine.alarms("active")] == [HI]
    raise_hi(s)
    alarm = s.engine.get(HI)
    assert (alarm.state, alarm.count, alarm.active_since) == (State.UNACK_ACTIVE, 6, T0 + 10)
    s.engine.ack(HI, "ivanov")
    clear_hi(s)
    raise_hi(s)
    assert alarm.count == 1  # a new occurrence after normal


def test_reraise_resets_acknowledger() -> None:
    """A new occurrence after normal waits for a new acknowledgement."""
    s = site()
    raise_hi(s)
    s.engine.ack(HI, "ivanov")
    clear_hi(s)
    raise_hi(s)
    alarm = s.engine.get(HI)
    assert (alarm.acked_by, alarm.acked_at) == (None, None)


@pytest.mark.parametrize("state", ["normal", "ack_active"])
def test_ack_refused_when_not_waiting(state: str) -> None:
    """Acknowledging a normal or already acknowledged alarm is a conflict naming the alarm and the state."""
    s = site()
    if state == "ack_active":
        raise_hi(s)
        s.engine.ack(HI, "ivanov")
    before = len(s.journal.entries)
    with pytest.raises(AlarmConflict, match=rf"{HI}.*{state}"):
        s.engine.ack(HI, "petrov")
    assert len(s.journal.entries) == before


def test_unknown_alarm() -> None:
    """Every action on an unknown id raises UnknownAlarm (a KeyError) naming the id."""
    s = site()
    for call in (lambda: s.engine.get("nope:x"), lambda: s.engine.ack("nope:x", "u"),
                 lambda: s.engine.shelve("nope:x", "u", 5, "r"), lambda: s.engine.unshelve("nope:x", "u"),
                 lambda: s.engine.comment("nope:x", "u", "t"),
                 lambda: s.engine.set_in_service("nope:x", "u", False, "r")):
        with pytest.raises(UnknownAlarm) as info:
            call()
        assert isinstance(info.value, KeyError)
        assert str(info.value) == "unknown alarm 'nope:x'"


def test_actions_need_a_user() -> None:
    """An operator action without a user name is refused."""
    s = site()
    raise_hi(s)
    with pytest.raises(AlarmConflict, match="user"):
        s.engine.ack(HI, " ")


def test_ack_many() -> None:
    """Several acknowledgements at once; failures are reported per id, the rest go through."""
    s = site(StaleRule("stale", tags=("heat2.t_supply",), after=60))
    raise_hi(s)
    s.advance(61)
    result = s.engine.ack_many([HI, LO, "nope:x", "stale:heat2.t_supply"], "ivanov", "все вижу")
    assert result["acked"] == [HI, "stale:heat2.t_supply"]
    assert set(result["errors"]) == {LO, "nope:x"}
    assert "normal" in result["errors"][LO] and "nope:x" in result["errors"]["nope:x"]
    assert [e.comment for e in s.entries() if e.event == "ack"] == ["все вижу", "все вижу"]


# -- shelving ---------------------------------------------------------------------------------


def test_shelve_and_expire_while_active() -> None:
    """A shelved alarm is not annunciated; on expiry it comes back unack_active, unshelved by system."""
    s = site()
    raise_hi(s)
    s.engine.ack(HI, "ivanov")
    alarm = s.engine.shelve(HI, "ivanov", 30, "датчик меняют")
    assert (alarm.state, alarm.shelved_until, alarm.shelved_by, alarm.shelve_reason) == (
        State.SHELVED, T0 + 1800, "ivanov", "датчик меняют")
    assert s.engine.alarms("active") == [] and s.engine.alarms("shelved") == [alarm]
    s.advance(1799)
    assert alarm.state is State.SHELVED
    s.advance(1)
    assert (alarm.state, alarm.shelved_until, alarm.shelve_reason) == (State.UNACK_ACTIVE, None, None)
    last = s.entries(HI)[-1]
    assert (last.event, last.user, last.state_from, last.state_to) == ("unshelve", "system", "shelved",
                                                                        "unack_active")
    assert last.comment  # says why


def test_shelve_expire_after_condition_cleared() -> None:
    """A condition that cleared while shelved brings the alarm back normal."""
    s = site()
    raise_hi(s)
    s.engine.shelve(HI, "ivanov", 10, "ремонт")
    clear_hi(s)
    assert s.state(HI) == "shelved"
    assert s.trail(HI)[-1] == ("clear", "shelved", "shelved")
    s.advance(600)
    alarm = s.engine.get(HI)
    assert (alarm.state, alarm.active_since) == (State.NORMAL, None)


def test_raise_while_shelved_is_tracked() -> None:
    """The condition is followed while shelved; a manual unshelve gives the state it demands."""
    s = site()
    s.engine.shelve(HI, "ivanov", 60, "наладка")
    raise_hi(s)
    assert s.trail(HI)[-1] == ("raise", "shelved", "shelved")
    alarm = s.engine.unshelve(HI, "petrov", "наладка закончена")
    assert alarm.state is State.UNACK_ACTIVE
    entry = s.entries(HI)[-1]
    assert (entry.event, entry.user, entry.comment) == ("unshelve", "petrov", "наладка закончена")
    s.advance(3600)  # the expiry timer was cancelled: nothing more
    assert s.entries(HI)[-1] is entry


def test_reshelve_sets_new_time() -> None:
    """Shelving a shelved alarm again moves its end; the old timer does not fire."""
    s = site()
    s.engine.shelve(HI, "ivanov", 10, "a")
    s.advance(300)
    s.engine.shelve(HI, "ivanov", 60, "b")
    s.advance(600)
    assert s.state(HI) == "shelved"
    assert s.engine.get(HI).shelved_until == T0 + 300 + 3600
    s.advance(3000)
    assert s.state(HI) == "normal"


@pytest.mark.parametrize(
    ("minutes", "reason", "match"),
    [(10, "", "reason"), (10, "  ", "reason"), (0, "r", "minutes"), (-5, "r", "minutes"),
     (7 * 1440 + 1, "r", "minutes"), ("ten", "r", "number"), (float("nan"), "r", "minutes")],
)
def test_shelve_refused(minutes, reason: str, match: str) -> None:
    """Shelving needs a reason and 0 < minutes*60 <= max_shelve."""
    s = site()
    with pytest.raises(AlarmConflict, match=match):
        s.engine.shelve(HI, "ivanov", minutes, reason)
    assert s.state(HI) == "normal" and s.journal.entries == []


def test_shelve_longest_allowed() -> None:
    """Exactly max_shelve is allowed."""
    s = site(max_shelve=3600)
    s.engine.shelve(HI, "ivanov", 60, "r")
    with pytest.raises(AlarmConflict, match="60 minutes"):
        s.engine.shelve(HI, "ivanov", 61, "r")


def test_unshelve_not_shelved() -> None:
    """Unshelving an alarm that is not shelved is a conflict."""
    with pytest.raises(AlarmConflict, match="not shelved"):
        site().engine.unshelve(HI, "ivanov")


# -- out of service -----------------------------------------------------------------------------


def test_out_of_service_and_back() -> None:
    """Out of service needs a reason; back in service the alarm follows its condition."""
    s = site()
    with pytest.raises(AlarmConflict, match="reason"):
        s.engine.set_in_service(HI, "ivanov", False, "")
    alarm = s.engine.set_in_service(HI, "ivanov", False, "датчик снят на поверку")
    assert (alarm.state, alarm.out_of_service_by, alarm.out_of_service_reason) == (
        State.OUT_OF_SERVICE, "ivanov", "датчик снят на поверку")
    with pytest.raises(AlarmConflict, match="already out of service"):
        s.engine.set_in_service(HI, "ivanov", False, "again")
    with pytest.raises(AlarmConflict, match="out of service"):
        s.engine.shelve(HI, "ivanov", 10, "r")
    with pytest.raises(AlarmConflict, match="out_of_service"):
        s.engine.ack(HI, "ivanov")
    raise_hi(s)
    assert s.trail(HI)[-1] == ("raise", "out_of_service", "out_of_service")
    assert s.engine.alarms("out_of_service") == [alarm]
    alarm = s.engine.set_in_service(HI, "petrov", True, "датчик вернули")
    assert (alarm.state, alarm.out_of_service_by) == (State.UNACK_ACTIVE, None)
    with pytest.raises(AlarmConflict, match="already in service"):
        s.engine.set_in_service(HI, "ivanov", True)
    assert s.trail(HI) == [("out_of_service", "normal", "out_of_service"),
                           ("raise", "out_of_service", "out_of_service"),
                           ("in_service", "out_of_service", "unack_active")]


def test_out_of_service_beats_shelved() -> None:
    """A shelved alarm taken out of service shows out_of_service; its shelving still runs out."""
    s = site()
    s.engine.shelve(HI, "ivanov", 10, "a")
    s.engine.set_in_service(HI, "ivanov", False, "b")
    assert s.state(HI) == "out_of_service"
    s.advance(600)
    assert s.state(HI) == "out_of_service"
    assert s.entries(HI)[-1].event == "unshelve"
    s.engine.set_in_service(HI, "ivanov", True)
    assert s.state(HI) == "normal"


# -- comments ---------------------------------------------------------------------------------


def test_comment() -> None:
    """A comment is kept on the alarm and journalled; empty text is refused."""
    s = site()
    with pytest.raises(AlarmConflict, match="text"):
        s.engine.comment(HI, "ivanov", "  ")
    s.advance(5)
    alarm = s.engine.comment(HI, "ivanov", "вызвал бригаду")
    assert alarm.comments == [{"ts": T0 + 5, "user": "ivanov", "text": "вызвал бригаду"}]
    entry = s.entries(HI)[-1]
    assert (entry.event, entry.user, entry.comment, entry.state_from, entry.state_to) == (
        "comment", "ivanov", "вызвал бригаду", "normal", "normal")
    assert alarm.to_json()["comments"] == [{"ts": "2026-11-21T07:00:05.000Z", "user": "ivanov",
                                            "text": "вызвал бригаду"}]


# -- journal ----------------------------------------------------------------------------------


def test_journal_completeness() -> None:
    """Each transition and action is exactly one entry, with its user and comment, seen by subscribers too."""
    s = site()
    actions = [
        (lambda: raise_hi(s), ("raise", "system", "")),
        (lambda: s.engine.comment(HI, "ivanov", "вижу"), ("comment", "ivanov", "вижу")),
        (lambda: s.engine.ack(HI, "ivanov", "принял"), ("ack", "ivanov", "принял")),
        (lambda: s.engine.shelve(HI, "petrov", 5, "мешает"), ("shelve", "petrov", "мешает")),
        (lambda: s.engine.unshelve(HI, "petrov", "хватит"), ("unshelve", "petrov", "хватит")),
        (lambda: clear_hi(s), ("clear", "system", "")),
        (lambda: s.engine.ack(HI, "sidorov"), ("ack", "sidorov", "")),
        (lambda: s.engine.set_in_service(HI, "sidorov", False, "ремонт"), ("out_of_service", "sidorov", "ремонт")),
        (lambda: s.engine.set_in_service(HI, "sidorov", True, "готово"), ("in_service", "sidorov", "готово")),
    ]
    for action, (event, user, comment) in actions:
        before = len(s.journal.entries)
        action()
        new = s.journal.entries[before:]
        assert len(new) == 1, (event, new)
        entry = new[0]
        assert (entry.event, entry.user, entry.comment, entry.alarm_id) == (event, user, comment, HI)
        assert (entry.rule, entry.tag, entry.priority) == ("temp", SUPPLY, "medium")
        assert entry.message.startswith("Превышение верхней границы")
        assert entry.id == len(s.journal.entries)
        # The state saved after each change is the alarm's state after it.
        assert s.journal.states[HI]["state"] == entry.state_to == s.state(HI)
    assert [e.entry for e in s.events] == s.journal.entries
    assert all(e.alarm["id"] == HI for e in s.events)
    assert [e.alarm["state"] for e in s.events] == [e.state_to for e in s.journal.entries]
    states = [(e.state_from, e.state_to) for e in s.journal.entries]
    assert all(a[1] == b[0] for a, b in zip(states, states[1:]))  # an unbroken chain


def test_journal_value_and_message() -> None:
    """Raise entries carry the raising value; clear entries the clearing value."""
    s = site()
    raise_hi(s)
    clear_hi(s)
    raised, cleared = s.entries(HI)
    assert (raised.value, cleared.value) == (95.0, 70.0)
    assert raised.message == "Превышение верхней границы: heat1.t_supply = 95 (> 90)"


def test_subscribe_and_unsubscribe() -> None:
    """A subscriber gets events until it unsubscribes; a failing one does not stop the others."""
    s = site()
    got = []

    def broken(event) -> None:
        raise RuntimeError("subscriber bug")

    s.engine.subscribe(broken)
    undo = s.engine.subscribe(got.append)
    raise_hi(s)
    undo()
    undo()
    clear_hi(s)
    assert [e.entry.event for e in got] == ["raise"]
    assert len(s.events) == 2
    assert s.engine.errors == 2


def test_broken_journal_does_not_stop_alarms() -> None:
    """A journal that fails to record is logged; alarms and subscribers go on; the entry is kept and counted."""

    class Broken(MemoryJournal):
        def record(self, entry) -> None:
            raise OSError("disk full")

    s = site(journal=Broken())
    raise_hi(s)
    assert s.state(HI) == "unack_active"
    assert len(s.events) == 1
    assert s.engine.errors == 1
    summary = s.engine.summary()
    assert (summary["journal_errors"], summary["journal_pending"], summary["journal_dropped"]) == (1, 1, 0)


class Flaky(MemoryJournal):
    """A journal that fails while ``down`` (record and save_state), or for entries ``refuse`` says."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.down = False
        self.refuse = lambda entry: False

    def record(self, entry) -> None:
        if self.down or self.refuse(entry):
            raise OSError("disk full")
        super().record(entry)

    def save_state(self, alarm_id, state) -> None:
        if self.down:
            raise OSError("disk full")
        super().save_state(alarm_id, state)


def test_journal_failures_keep_entries_until_the_journal_works() -> None:
    """Entries and states the journal refused wait in memory and are written with the next write that works."""
    journal = Flaky()
    s = site(journal=journal)
    journal.down = True
    raise_hi(s)
    s.advance(1)
    s.engine.ack(HI, "ivanov", "смотрю")
    s.advance(1)
    clear_hi(s)
    s.advance(1)
    assert journal.entries == [] and journal.states == {}
    summary = s.engine.summary()
    assert (summary["journal_errors"], summary["journal_pending"]) == (6, 4)  # 3 entries, 1 state
    assert s.engine.errors == 6
    assert [e.entry.event for e in s.events] == ["raise", "ack", "clear"]  # subscribers heard everything
    journal.down = False
    s.engine.comment(HI, "ivanov", "разобрались")
    # The new entry goes in first (its id is the lowest); the kept ones follow, in their order.
    assert [e.event for e in journal.entries] == ["comment", "raise", "ack", "clear"]
    assert [e.ts for e in journal.entries] == [T0 + 3, T0, T0 + 1, T0 + 2]
    assert journal.states[HI]["state"] == "normal" and len(journal.states[HI]["comments"]) == 1
    assert s.engine.summary()["journal_pending"] == 0
    assert s.engine.summary()["journal_errors"] == 6  # no new failure


def test_kept_entries_are_retried_without_new_transitions() -> None:
    """With nothing new to write, kept entries and states are tried again every JOURNAL_RETRY_EVERY seconds."""
    from alarms.engine import JOURNAL_RETRY_EVERY

    journal = Flaky()
    s = site(journal=journal)
    journal.down = True
    raise_hi(s)
    s.advance(JOURNAL_RETRY_EVERY)  # still down: tried, kept, timed again
    assert s.engine.summary()["journal_pending"] == 2 and s.engine.journal_errors == 4
    journal.down = False
    s.advance(JOURNAL_RETRY_EVERY)
    assert [e.event for e in journal.entries] == ["raise"] and journal.states[HI]["state"] == "unack_active"
    assert s.engine.summary()["journal_pending"] == 0
    assert not [c for c in s.clock.getDelayedCalls() if "_journal_retry" in repr(c)]


def test_kept_entries_are_tried_once_more_at_stop() -> None:
    """stop() tries the kept entries once more and leaves no timer."""
    journal = Flaky()
    s = site(journal=journal)
    journal.down = True
    raise_hi(s)
    journal.down = False
    s.engine.stop()
    assert [e.event for e in journal.entries] == ["raise"]
    assert s.clock.getDelayedCalls() == []


def test_an_entry_the_journal_never_takes_is_given_up() -> None:
    """An entry refused JOURNAL_ATTEMPTS times while others go in is dropped (counted); it holds back nothing."""
    from alarms.engine import JOURNAL_ATTEMPTS

    journal = Flaky()
    journal.refuse = lambda entry: entry.event == "comment"
    s = site(journal=journal)
    s.engine.comment(HI, "ivanov", "не записывается")
    for n in range(JOURNAL_ATTEMPTS):
        raise_hi(s) if n % 2 == 0 else clear_hi(s)
    summary = s.engine.summary()
    assert (summary["journal_pending"], summary["journal_dropped"]) == (0, 1)
    assert "comment" not in [e.event for e in journal.entries]
    assert len(journal.entries) == JOURNAL_ATTEMPTS


def test_kept_entries_are_bounded(monkeypatch) -> None:
    """At most MAX_UNJOURNALLED entries wait; beyond, the oldest go and are counted."""
    import alarms.engine

    monkeypatch.setattr(alarms.engine, "MAX_UNJOURNALLED", 3)
    journal = Flaky()
    s = site(journal=journal)
    journal.down = True
    for n in range(5):
        raise_hi(s) if n % 2 == 0 else clear_hi(s)
        s.advance(1)
    summary = s.engine.summary()
    assert (summary["journal_pending"], summary["journal_dropped"]) == (3 + 1, 2)  # 3 entries + 1 state
    journal.down = False
    s.engine.comment(HI, "ivanov", "снова пишет")
    assert [(e.event, e.ts) for e in journal.entries] == [
        ("comment", T0 + 5), ("raise", T0 + 2), ("clear", T0 + 3), ("raise", T0 + 4)]


def test_journal_failures_are_logged_at_a_rate_limit(caplog) -> None:
    """A journal that keeps failing is logged once a minute at most, with the count of failures."""
    journal = Flaky()
    s = site(journal=journal)
    journal.down = True
    with caplog.at_level("ERROR", logger="alarms.engine"):
        for n in range(20):
            raise_hi(s) if n % 2 == 0 else clear_hi(s)
        assert len(caplog.records) == 1
        s.advance(60)
        raise_hi(s) if s.state(HI) == "normal" else clear_hi(s)
    assert len(caplog.records) == 2
    assert "40 journal failures since the last report" in caplog.records[1].getMessage()
    assert "OSError: disk full" in caplog.records[1].getMessage()


# -- restore ----------------------------------------------------------------------------------


def test_restore_from_saved_states() -> None:
    """A new engine on the same journal starts where the old one stopped: acks, shelving, counts."""
    rules = [LIMIT, StaleRule("stale", tags=("heat2.t_supply",), after=60)]
    first = Site(rules)
    raise_hi(first)
    clear_hi(first)
    raise_hi(first)  # count 2, unack_active
    first.engine.comment(HI, "ivanov", "смотрю")
    first.engine.shelve(LO, "ivanov", 60, "ремонт")
    first.engine.set_in_service("stale:heat2.t_supply", "ivanov", False, "снят")
    first.engine.stop()
    assert first.clock.getDelayedCalls() == []
    saved = json.loads(json.dumps(first.journal.states))  # what a store would keep
    first.clock.advance(600)

    journal = MemoryJournal(states=saved)
    second = Site(rules, journal=journal, clock=first.clock)
    hi = second.engine.get(HI)
    assert (hi.state, hi.count, hi.active_since, hi.value) == (State.UNACK_ACTIVE, 2, T0, 95.0)
    assert hi.comments[0]["text"] == "смотрю"
    lo = second.engine.get(LO)
    assert (lo.state, lo.shelved_until, lo.shelve_reason) == (State.SHELVED, T0 + 3600, "ремонт")
    assert second.state("stale:heat2.t_supply") == "out_of_service"
    assert journal.entries == []  # nothing changed, nothing journalled
    # Still active until a sample says otherwise; the shelving still ends on time.
    clear_hi(second)
    assert hi.state is State.RTN_UNACK
    second.advance(3000)
    assert lo.state is State.NORMAL
    assert second.trail(LO) == [("unshelve", "shelved", "normal")]


def test_expired_shelve_unshelved_at_start() -> None:
    """A shelving that ran out while the system was stopped ends at start, by system."""
    first = site()
    raise_hi(first)
    first.engine.shelve(HI, "ivanov", 10, "ремонт")
    first.engine.stop()
    first.clock.advance(3600)
    second = Site([LIMIT], journal=MemoryJournal(states=first.journal.load_states()), clock=first.clock)
    alarm = second.engine.get(HI)
    assert alarm.state is State.UNACK_ACTIVE  # the table is new: the condition is the saved one
    entry = second.journal.entries[0]
    assert (entry.event, entry.user, entry.state_from, entry.state_to, entry.ts) == (
        "unshelve", "system", "shelved", "unack_active", T0 + 3600)


def test_restore_state_string_only() -> None:
    """A store that kept only the state string still restores it."""
    journal = MemoryJournal(states={HI: {"state": "ack_active"}, LO: {"state": "rtn_unack"}, "gone:x": {}})
    s = site(journal=journal)
    assert (s.state(HI), s.state(LO)) == ("ack_active", "rtn_unack")
    s.engine.ack(LO, "ivanov")
    assert s.state(LO) == "normal"


def test_restore_ignores_garbage() -> None:
    """An unreadable saved state is logged and the alarm starts normal."""
    journal = MemoryJournal(states={HI: {"state": "unack_active", "count": "many"}, LO: {"state": "sideways"},
                                    f"temp:{SUPPLY}:x": "not a dict"})
    s = site(journal=journal)
    assert (s.state(HI), s.state(LO)) == ("normal", "normal")
    raise_hi(s)
    assert s.state(HI) == "unack_active"


def test_start_evaluates_current_table() -> None:
    """Values already in the table when the engine starts are evaluated at start."""
    s = site(start=False)
    raise_hi(s)
    s.feed("heat2.t_supply", 20.0)
    s.engine.start()
    assert s.state(HI) == "unack_active"


def test_stop_cancels_timers() -> None:
    """stop leaves no timer behind and stops listening."""
    s = site(StaleRule("stale", tags=(SUPPLY,), after=60),
             LimitRule("slow", tags=("heat2.t_supply",), hi=10.0, on_delay=30),
             VerificationRule("v", due={"heat1": date(2027, 1, 1)}))
    s.feed("heat2.t_supply", 50.0)
    s.engine.shelve(HI, "ivanov", 10, "r")
    assert s.clock.getDelayedCalls()
    s.engine.stop()
    assert s.clock.getDelayedCalls() == []
    raise_hi(s)
    assert s.entries(HI)[-1].event == "shelve"


# -- queries and JSON -------------------------------------------------------------------------


def test_alarms_filters_and_order() -> None:
    """alarms() filters by state and sorts critical first, then the newest occurrence first."""
    rules = [
        LimitRule("temp", tags=(SUPPLY, "heat2.t_supply"), hi=90.0, hihi=100.0),
        StatusRule("st", tag="water7.status", bits={0: "leak", 1: "low_battery"}),
    ]
    s = Site(rules)
    s.feed("heat2.t_supply", 95.0)  # hi, medium
    s.advance(1)
    s.feed(SUPPLY, 95.0)  # hi, medium, newer
    s.advance(1)
    s.feed("water7.status", 3)  # leak critical, low_battery low
    s.advance(1)
    s.feed("heat2.t_supply", 105.0)  # hihi, high
    order = [a.id for a in s.engine.alarms()]
    assert order == ["st:water7.status:leak", "temp:heat2.t_supply:hihi", f"temp:{SUPPLY}:hi",
                     "temp:heat2.t_supply:hi", "st:water7.status:low_battery"]
    s.engine.ack("st:water7.status:leak", "ivanov")
    assert "st:water7.status:leak" not in [a.id for a in s.engine.alarms("unacked")]
    assert len(s.engine.alarms("all")) == 7
    assert {a.id for a in s.engine.alarms("normal")} == {f"temp:{SUPPLY}:hihi", FLOOD_ID}
    with pytest.raises(ValueError, match="bogus"):
        s.engine.alarms("bogus")


def test_summary() -> None:
    """summary counts every alarm by state and active ones by priority."""
    s = Site([LimitRule("temp", tags=(SUPPLY,), hi=90.0, hihi=100.0),
              StatusRule("st", tag="water7.status", bits={0: "leak"})])
    s.feed(SUPPLY, 105.0)
    s.feed("water7.status", 1)
    s.engine.ack("st:water7.status:leak", "ivanov")
    summary = s.engine.summary()
    assert summary["total"] == 4
    assert summary["flood"] is False
    assert summary["by_state"]["unack_active"] == 2 and summary["by_state"]["ack_active"] == 1
    assert summary["by_state"]["normal"] == 1 and sum(summary["by_state"].values()) == 4
    assert summary["by_priority"] == {"critical": 1, "high": 1, "medium": 1, "low": 0}


def test_to_json_shape() -> None:
    """to_json has the contract's keys, ISO times, and the message in the asked language."""
    s = site()
    raise_hi(s)
    s.advance(2.5)
    s.engine.ack(HI, "ivanov")
    data = s.engine.get(HI).to_json()
    for key in ("id", "rule", "tag", "priority", "state", "active_since", "value", "message", "acked_by",
                "count", "device", "level", "kind", "active", "acked_at", "shelved_until", "shelve_reason",
                "suppressed_by"):
        assert key in data, key
    assert "first_out" not in data
    assert data["active_since"] == "2026-11-21T07:00:00.000Z"
    assert data["acked_at"] == "2026-11-21T07:00:02.500Z"
    assert (data["state"], data["priority"], data["value"], data["acked_by"]) == ("ack_active", "medium", 95.0,
                                                                                   "ivanov")
    assert s.engine.get(HI).to_json("en")["message"] == "High limit exceeded: heat1.t_supply = 95 (> 90)"
    assert s.engine.get(HI).to_json("xx")["message"].startswith("Превышение")
    json.dumps(data)
    flood = s.engine.get(FLOOD_ID).to_json()
    assert flood["first_out"] is None and flood["kind"] == "flood" and flood["priority"] == "high"


def test_english_engine_and_rule_template() -> None:
    """lang='en' changes the default texts; a rule's template replaces them."""
    rule = LimitRule("temp", tags=(SUPPLY,), hi=90.0, message="{device}: подача {value} °C выше {limit} °C")
    s = Site([rule], lang="en")
    raise_hi(s)
    assert s.entries()[0].message == "heat1: подача 95 °C выше 90 °C"
    s2 = Site([LIMIT], lang="en")
    raise_hi(s2)
    assert s2.engine.get(HI).message == "High limit exceeded: heat1.t_supply = 95 (> 90)"


def test_priorities() -> None:
    """Limit levels take their default or configured priority."""
    rule = LimitRule("temp", tags=(SUPPLY,), hihi=100, hi=90, lo=40, lolo=30, priorities={"hi": Priority.HIGH})
    s = Site([rule])
    got = {a.level: a.priority for a in s.engine.alarms("all") if a.kind == "limit"}
    assert got == {"hihi": Priority.HIGH, "hi": Priority.HIGH, "lo": Priority.MEDIUM, "lolo": Priority.HIGH}


# -- robustness -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["95", b"x", [1], {"a": 1}, object()])
def test_bad_sample_never_raises(value) -> None:
    """A sample whose value is not a number is counted as an error, never raised into the table."""
    rules = [LIMIT, RateRule("fast", tags=(SUPPLY,), max_rate=1.0),
             StatusRule("st", tag=SUPPLY, bits={0: "leak"}),
             ScheduleRule("sched", tag=SUPPLY, outdoor_tag="weather.t_outdoor", table=((0.0, 60.0),))]
    s = Site(rules)
    s.feed("weather.t_outdoor", 0.0)
    s.feed(SUPPLY, value)
    s.feed(SUPPLY, 95.0)
    assert s.state(HI) == "unack_active"


def test_table_without_engine_errors_logged(caplog) -> None:
    """The table never sees an exception from the engine: nothing is logged by the table."""
    s = site()
    with caplog.at_level("ERROR", logger="tags.table"):
        s.feed(SUPPLY, object())
    assert not [r for r in caplog.records if r.name == "tags.table"]


def test_tag_defined_after_start() -> None:
    """A tag defined after start is watched, including its device's comm loss."""
    from tags.model import TagDef

    s = Site([CommLossRule("comm", devices=("late",))])
    s.table.define(TagDef("late.volume", device="late"))
    s.feed("late.volume", None, Quality.COMM_LOSS)
    assert s.state("comm:late") == "unack_active"


def test_engine_on_real_table_signature() -> None:
    """The constructor takes the documented positional and keyword arguments."""
    from twisted.internet.task import Clock

    engine = AlarmEngine(Clock(), TagTable(), [], MemoryJournal(), flood_count=5, flood_window=60.0,
                         max_shelve=3600.0, lang="en")
    engine.start()
    assert [a.id for a in engine.alarms("all")] == [FLOOD_ID]
    assert engine.flood is None
    engine.stop()


def test_actions_after_stop_are_refused() -> None:
    """After stop() operator actions are refused and schedule nothing; after start() they work again."""
    s = site()
    raise_hi(s)
    s.engine.stop()
    before = len(s.journal.entries)
    actions = [lambda: s.engine.ack(HI, "ivanov"), lambda: s.engine.shelve(HI, "ivanov", 10, "ремонт"),
               lambda: s.engine.unshelve(HI, "ivanov"), lambda: s.engine.comment(HI, "ivanov", "текст"),
               lambda: s.engine.set_in_service(HI, "ivanov", False, "снят")]
    for action in actions:
        with pytest.raises(AlarmConflict, match="the alarm engine is stopped"):
            action()
    assert s.engine.ack_many([HI], "ivanov") == {"acked": [], "errors": {HI: "the alarm engine is stopped"}}
    assert s.clock.getDelayedCalls() == []
    assert len(s.journal.entries) == before and s.state(HI) == "unack_active"
    s.engine.start()
    s.engine.shelve(HI, "ivanov", 10, "ремонт")
    s.advance(600)
    assert s.state(HI) == "unack_active"  # the shelving ended on time


def test_shelve_before_start_sets_no_timer_until_start() -> None:
    """A shelving before start is timed by start() from its end, not by a timer of its own."""
    s = site(start=False)
    s.engine.shelve(HI, "ivanov", 10, "r")
    assert s.clock.getDelayedCalls() == []
    s.engine.start()
    s.advance(600)
    assert s.state(HI) == "normal" and s.trail(HI)[-1] == ("unshelve", "shelved", "normal")


def test_shelved_before_start_has_one_timer() -> None:
    """A shelving made before start is timed once, from its end, after start."""
    s = site(start=False)
    s.engine.shelve(HI, "ivanov", 10, "r")
    s.engine.start()
    s.advance(300)
    s.engine.shelve(HI, "ivanov", 60, "again")
    s.advance(600)  # the first shelving's end: no effect
    assert s.state(HI) == "shelved"
    assert len([c for c in s.clock.getDelayedCalls() if "_shelve_expired" in repr(c)]) == 1
