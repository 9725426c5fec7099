"""Tests for the rules the registry feeds: imbalance (ОДПУ against Σ ИПУ) and verification dates moved by events."""

from __future__ import annotations

from alarms.model import State
from alarms.rules import ImbalanceRule
from tags.model import TagDef
from tests.alarms import GOOD, Site

PCT = "balance-b1.cold_water_imbalance_pct"
DONE = "balance-b1.cold_water_completeness_pct"
ID = f"imb:{PCT}"
TAGS = (TagDef(PCT, "%"), TagDef(DONE, "%"))


def site(**rule) -> Site:
    """Return a started site watching building b1's cold water balance."""
    spec = {"threshold_pct": 10.0, "min_completeness_pct": 80.0, **rule}
    return Site([ImbalanceRule("imb", groups=((PCT, DONE),), **spec)], tags=TAGS)


def test_raises_above_threshold_and_clears() -> None:
    s = site()
    s.feed_many([(DONE, 100.0, GOOD), (PCT, 4.0, GOOD)])
    assert s.engine.get(ID).state is State.NORMAL
    s.feed(PCT, 12.5)
    alarm = s.engine.get(ID)
    assert alarm.state is State.UNACK_ACTIVE and alarm.value == 12.5
    assert "12.5" in alarm.message and "10" in alarm.message
    s.feed(PCT, 3.0)
    assert s.engine.get(ID).state is State.RTN_UNACK


def test_direction_and_deadband() -> None:
    s = site(direction="over", deadband_pct=2.0)
    s.feed_many([(DONE, 95.0, GOOD), (PCT, -30.0, GOOD)])
    assert s.engine.get(ID).state is State.NORMAL  # under-reading ОДПУ not watched here
    s.feed(PCT, 11.0)
    assert s.engine.get(ID).active
    s.feed(PCT, 9.0)  # inside the deadband: still active
    assert s.engine.get(ID).active
    s.feed(PCT, 7.5)
    assert not s.engine.get(ID).active
    both = site()
    both.feed_many([(DONE, 95.0, GOOD), (PCT, -30.0, GOOD)])
    assert both.engine.get(ID).active


def test_incomplete_data_suppresses_and_says_why() -> None:
    s = site()
    s.feed_many([(DONE, 50.0, GOOD), (PCT, 40.0, GOOD)])
    alarm = s.engine.get(ID)
    assert alarm.state is State.SUPPRESSED and alarm.suppressed_by == "completeness"
    note = [e for e in s.journal.entries if e.event == "suppress"][-1].comment
    assert "50" in note and "80" in note
    s.feed(DONE, 90.0)
    assert s.engine.get(ID).state is State.UNACK_ACTIVE
    assert any(e.event == "unsuppress" for e in s.journal.entries)


def test_verification_date_moved_by_a_recorded_event() -> None:
    """A verification recorded in the registry moves the alarm's date; decommissioning clears it."""
    from datetime import date

    from alarms.rules import VerificationRule

    s = Site([VerificationRule("verify", due={"water7": date(2026, 11, 30)}, within=30.0)])
    alarm = s.engine.get("verify:water7")
    assert alarm.active
    s.engine.set_due("water7", date(2032, 11, 20))
    assert not alarm.active and alarm.limit == "2032-11-20"
    s.engine.set_due("water7", date(2026, 11, 1))
    assert alarm.active and alarm.value < 0
    s.engine.set_due("water7", None)
    assert not alarm.active
    s.advance(3600.0)  # the hourly check leaves a decommissioned meter alone
    assert not alarm.active
