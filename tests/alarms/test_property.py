"""Property tests: random sample streams and operator actions never raise, and states stay consistent."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alarms.engine import AlarmConflict, UnknownAlarm
from alarms.model import State
from alarms.rules import CommLossRule, LimitRule, RateRule, ScheduleRule, StaleRule, StatusRule
from alarms.states import HIDDEN_STATES
from tags.quality import Quality
from tests.alarms import Site

SUPPLY = "heat1.t_supply"
RETURN = "heat1.t_return"
STATUS = "heat1.status"
OUTDOOR = "weather.t_outdoor"
OTHER = "heat2.t_supply"
TAG_NAMES = (SUPPLY, RETURN, STATUS, OUTDOOR, OTHER)

RULES = [
    LimitRule("lim", tags=(SUPPLY, OTHER), hi=90.0, lo=40.0, deadband=2.0),
    LimitRule("slow", tags=(RETURN,), hi=60.0, on_delay=30.0, off_delay=20.0),
    RateRule("fast", tags=(SUPPLY,), max_rate=0.05, window=600.0),
    StaleRule("stale", tags=(SUPPLY, OTHER), after=300.0),
    StatusRule("st", tag=STATUS, bits={0: "leak", 1: "low_battery"}),
    ScheduleRule("graph", tag=SUPPLY, outdoor_tag=OUTDOOR, table=((-30.0, 95.0), (10.0, 45.0)), tolerance=3.0),
    CommLossRule("comm", devices=("heat1",)),
]
IDS = ["lim:heat1.t_supply:hi", "lim:heat1.t_supply:lo", "lim:heat2.t_supply:hi", "lim:heat2.t_supply:lo",
       "slow:heat1.t_return:hi",
       "fast:heat1.t_supply", "stale:heat1.t_supply", "stale:heat2.t_supply", "st:heat1.status:leak",
       "st:heat1.status:low_battery", "graph:heat1.t_supply", "comm:heat1", "flood:site"]

values = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=20.0, max_value=110.0),
    st.integers(min_value=0, max_value=3).map(float),
)
qualities = st.sampled_from(list(Quality))
samples = st.tuples(st.sampled_from(TAG_NAMES), values, qualities)

operations = st.one_of(
    st.tuples(st.just("sample"), samples),
    st.tuples(st.just("batch"), st.lists(samples, min_size=1, max_size=6)),
    st.tuples(st.just("advance"), st.floats(min_value=0.0, max_value=400.0)),
    st.tuples(st.just("ack"), st.sampled_from(IDS)),
    st.tuples(st.just("shelve"), st.tuples(st.sampled_from(IDS), st.floats(min_value=-1, max_value=20))),
    st.tuples(st.just("unshelve"), st.sampled_from(IDS)),
    st.tuples(st.just("service"), st.tuples(st.sampled_from(IDS), st.booleans())),
    st.tuples(st.just("comment"), st.sampled_from(IDS)),
)

CURRENT = {q for q in Quality if q.usable and q is not Quality.BACKFILLED}


class Reference:
    """What the no-delay limit alarms and the comm-loss suppression should be, computed independently."""

    def __init__(self) -> None:
        self.hi: dict[str, bool] = {SUPPLY: False, OTHER: False}
        self.lo = False
        self.lost = False

    def sample(self, tag: str, value, quality: Quality) -> None:
        if tag in (SUPPLY, RETURN, STATUS):
            self.lost = quality is Quality.COMM_LOSS
        if tag not in self.hi or quality not in CURRENT or value is None or value != value:
            return
        self.hi[tag] = value > (88.0 if self.hi[tag] else 90.0)
        if tag == SUPPLY:
            self.lo = value < (42.0 if self.lo else 40.0)


def check(s: Site, ref: Reference) -> None:
    """Assert every invariant of the engine against the reference."""
    engine = s.engine
    assert engine.errors == 0
    for alarm in engine.alarms("all"):
        state = alarm.state
        assert alarm.consistent(), alarm
        if state not in HIDDEN_STATES:
            assert (state in (State.UNACK_ACTIVE, State.ACK_ACTIVE)) == alarm.active
        if state is State.NORMAL:
            assert alarm.active_since is None
        if alarm.active:
            assert alarm.count >= 1 and alarm.active_since is not None
        assert alarm.shelved == (alarm.shelved_until is not None)
        entries = s.entries(alarm.id)
        if entries:
            chain = [(e.state_from, e.state_to) for e in entries]
            assert all(a[1] == b[0] for a, b in zip(chain, chain[1:])), chain
            assert chain[-1][1] == state.value
            assert s.journal.states[alarm.id]["state"] == state.value
        else:
            assert state is State.NORMAL
    assert engine.get("lim:heat1.t_supply:hi").active == ref.hi[SUPPLY]
    assert engine.get("lim:heat2.t_supply:hi").active == ref.hi[OTHER]
    assert engine.get("lim:heat1.t_supply:lo").active == ref.lo
    for ident in ("lim:heat1.t_supply:hi", "stale:heat1.t_supply", "st:heat1.status:leak"):
        assert engine.get(ident).suppressed == ref.lost
    assert not engine.get("lim:heat2.t_supply:hi").suppressed
    summary = engine.summary()
    assert sum(summary["by_state"].values()) == summary["total"] == len(IDS)
    assert [e.entry for e in s.events] == s.journal.entries


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operations, max_size=60), st.integers(min_value=1, max_value=6))
def test_random_streams_keep_states_consistent(ops, flood_count) -> None:
    """Whatever the samples and actions, nothing raises and every state agrees with its condition."""
    s = Site(RULES, flood_count=flood_count, flood_window=120.0)
    ref = Reference()
    check(s, ref)
    for kind, arg in ops:
        if kind == "sample":
            s.feed(*arg)
            ref.sample(*arg)
        elif kind == "batch":
            s.feed_many(arg)
            for sample in arg:
                ref.sample(*sample)
        elif kind == "advance":
            s.advance(arg)
        else:
            try:
                if kind == "ack":
                    s.engine.ack(arg, "op")
                elif kind == "shelve":
                    s.engine.shelve(arg[0], "op", arg[1], "reason")
                elif kind == "unshelve":
                    s.engine.unshelve(arg, "op")
                elif kind == "service":
                    s.engine.set_in_service(arg[0], "op", arg[1], "reason")
                else:
                    s.engine.comment(arg, "op", "text")
            except (AlarmConflict, UnknownAlarm):
                pass
        check(s, ref)
    # Everything shelved ends within max minutes; stop leaves nothing scheduled.
    s.advance(20 * 60 + 1)
    assert s.engine.alarms("shelved") == []
    check(s, ref)
    s.engine.stop()
    assert s.clock.getDelayedCalls() == []
