"""Tests for alarm-flood detection: entry, first-out, recording through the flood, hysteresis on exit,
new alarms only (chattering is one alarm)."""

from __future__ import annotations

from alarms.engine import FLOOD_ID
from alarms.model import State
from alarms.rules import LimitRule
from tags.model import TagDef
from tests.alarms import T0, Site

TAGS = [TagDef(f"apt{i:02d}.t", device=f"apt{i:02d}") for i in range(20)]
RULE = LimitRule("hot", tags=tuple(t.name for t in TAGS), hi=30.0)


def flood_site(**options) -> Site:
    """Return a site of 20 limit alarms with flood_count 10 in 600 s (unless ``options`` say otherwise)."""
    return Site([RULE], tags=TAGS, **options)


def raise_n(s: Site, n: int, start: int = 0, every: float = 1.0) -> None:
    """Raise the alarms of tags start..start+n-1, ``every`` seconds apart."""
    for i in range(start, start + n):
        s.feed(f"apt{i:02d}.t", 35.0)
        s.advance(every)


def test_no_flood_at_the_threshold() -> None:
    """flood_count raises in the window are not yet a flood."""
    s = flood_site()
    raise_n(s, 10)
    assert s.engine.flood is None
    assert s.state(FLOOD_ID) == "normal"
    assert s.engine.summary()["flood"] is False


def test_flood_entry_and_first_out() -> None:
    """One raise more than flood_count within the window raises the flood alarm once, naming the first out."""
    s = flood_site()
    raise_n(s, 11)
    flood = s.engine.get(FLOOD_ID)
    assert flood.state is State.UNACK_ACTIVE
    assert flood.first_out == "hot:apt00.t:hi"
    assert flood.priority.value == "high"
    assert s.engine.flood == {"active_since": "2026-11-21T07:00:10.000Z", "count": 11,
                              "first_out": "hot:apt00.t:hi"}
    assert s.engine.summary()["flood"] is True
    entries = s.entries(FLOOD_ID)
    assert [(e.event, e.state_to, e.value) for e in entries] == [("flood_on", "unack_active", 11.0)]
    assert entries[0].message == "Лавина тревог: 11 за 10 мин, первая — hot:apt00.t:hi"
    data = flood.to_json()
    assert data["first_out"] == "hot:apt00.t:hi" and data["kind"] == "flood"
    # The flood alarm comes right after the raise that started it.
    assert [e.alarm_id for e in s.journal.entries[-2:]] == ["hot:apt10.t:hi", FLOOD_ID]


def test_recording_goes_on_during_flood() -> None:
    """Every raise during the flood is journalled and annunciated; the flood alarm is raised only once."""
    s = flood_site()
    raise_n(s, 20)
    assert len([e for e in s.journal.entries if e.event == "raise"]) == 20
    assert len(s.engine.alarms("unacked")) == 21
    assert len(s.entries(FLOOD_ID)) == 1
    assert s.engine.flood["count"] == 20


def test_flood_exit_with_hysteresis() -> None:
    """The flood ends when the raises within the window drop to flood_count/2; then it waits for an ack."""
    s = flood_site()
    raise_n(s, 11)  # raises at T0 .. T0+10
    s.advance(600 - 11)  # T0+600: the first raise leaves the window (10 left)
    assert s.engine.flood is not None and s.engine.flood["count"] == 10
    s.step(4)  # T0+604: 6 left
    assert s.engine.flood is not None
    s.step(1)  # T0+605: 5 left, that is flood_count / 2
    flood = s.engine.get(FLOOD_ID)
    assert s.engine.flood is None
    assert flood.state is State.RTN_UNACK
    assert s.trail(FLOOD_ID)[-1] == ("flood_off", "unack_active", "rtn_unack")
    assert s.entries(FLOOD_ID)[-1].ts == T0 + 605
    s.engine.ack(FLOOD_ID, "ivanov")
    assert flood.state is State.NORMAL


def test_flood_stays_while_raises_keep_coming() -> None:
    """New alarms that keep coming (more than flood_count/2 per window) keep the flood on beyond the first window."""
    s = flood_site()
    raise_n(s, 11)
    s.engine.ack(FLOOD_ID, "ivanov")
    for n in range(30):  # one new alarm every 50 s: 12 per window
        tag = f"apt{n % 11:02d}.t"
        ident = f"hot:{tag}:hi"
        s.feed(tag, 20.0)
        s.engine.ack(ident, "ivanov")  # back to normal: the next raise is a new alarm
        s.feed(tag, 35.0)
        assert s.engine.get(ident).count == 1
        s.advance(50)
    assert s.engine.flood is not None
    assert s.state(FLOOD_ID) == "ack_active"
    assert [e.event for e in s.entries(FLOOD_ID)] == ["flood_on", "ack"]


def test_chattering_is_one_alarm_not_a_flood() -> None:
    """One alarm toggling 11 times without an ack is one alarm with a count of 11: no flood."""
    s = flood_site()
    for _ in range(11):
        s.feed("apt00.t", 35.0)
        s.feed("apt00.t", 20.0)
    alarm = s.engine.get("hot:apt00.t:hi")
    assert alarm.count == 11 and alarm.state is State.RTN_UNACK
    assert len([e for e in s.entries(alarm.id) if e.event == "raise"]) == 11  # each occurrence journalled
    assert s.engine.flood is None
    assert s.state(FLOOD_ID) == "normal"
    assert s.entries(FLOOD_ID) == []


def test_chattering_does_not_add_to_new_alarms() -> None:
    """Ten new alarms, one of them chattering, stay at the threshold; the eleventh new alarm is the flood."""
    s = flood_site()
    raise_n(s, 10)
    for _ in range(20):
        s.feed("apt03.t", 20.0)
        s.feed("apt03.t", 35.0)
    assert s.engine.get("hot:apt03.t:hi").count == 21
    assert s.engine.flood is None
    raise_n(s, 1, start=10)
    assert s.engine.flood == {"active_since": "2026-11-21T07:00:10.000Z", "count": 11,
                              "first_out": "hot:apt00.t:hi"}


def test_a_new_occurrence_after_normal_counts_again() -> None:
    """An alarm acknowledged and back to normal is a new alarm when it raises again (count 1)."""
    s = flood_site(flood_count=3)
    for _ in range(4):
        s.feed("apt00.t", 35.0)
        s.feed("apt00.t", 20.0)
        s.engine.ack("hot:apt00.t:hi", "ivanov")
        s.advance(1)
    assert s.engine.flood == {"active_since": "2026-11-21T07:00:03.000Z", "count": 4,
                              "first_out": "hot:apt00.t:hi"}


def test_hidden_raises_do_not_count() -> None:
    """Raises of shelved alarms are not annunciated and do not feed the flood."""
    s = flood_site()
    for i in range(15):
        s.engine.shelve(f"hot:apt{i:02d}.t:hi", "ivanov", 60, "ремонт стояка")
    raise_n(s, 20)
    assert s.engine.flood is None


def test_flood_window_and_count_settings() -> None:
    """flood_count and flood_window are the engine's settings."""
    s = flood_site(flood_count=3, flood_window=10.0)
    raise_n(s, 4, every=5.0)  # 4 raises over 15 s: never more than 3 within 10 s
    assert s.engine.flood is None
    raise_n(s, 4, start=4, every=1.0)
    # At T0+22 the window (T0+12, T0+22] holds the raises of T0+15, 20, 21, 22: flood.
    # Read at T0+24, after one more raise at T0+23: five.
    assert s.engine.flood == {"active_since": "2026-11-21T07:00:22.000Z", "count": 5,
                              "first_out": "hot:apt03.t:hi"}


def test_flood_restored_then_ends() -> None:
    """A flood alarm active at a restart is checked again one window after start."""
    first = flood_site()
    raise_n(first, 11)
    first.engine.stop()
    second = Site([RULE], tags=TAGS, journal=first.journal.__class__(states=first.journal.load_states()),
                  clock=first.clock)
    assert second.state(FLOOD_ID) == "unack_active"
    second.advance(600)
    assert second.state(FLOOD_ID) == "rtn_unack"
