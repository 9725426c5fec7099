"""Tests for alarms.states: every transition of the ISA-18.2 state diagram, without a clock."""

from __future__ import annotations

import pytest

from alarms.model import State
from alarms.states import (
    ACTIVE_STATES,
    STATE_FILTERS,
    UNACKED_STATES,
    AlarmConflict,
    StateMachine,
    base_state,
)


def machine(state: State) -> StateMachine:
    """Return a machine brought to one of the base states A-D by ordinary transitions."""
    m = StateMachine()
    if state is State.NORMAL:
        return m
    m.set_condition(True)
    if state is State.ACK_ACTIVE:
        m.acknowledge()
    elif state is State.RTN_UNACK:
        m.set_condition(False)
    assert m.state is state
    return m


def test_starts_normal() -> None:
    """A new alarm is normal, annunciated, with no occurrences."""
    m = StateMachine()
    assert (m.state, m.active, m.acked, m.hidden, m.count) == (State.NORMAL, False, True, False, 0)


@pytest.mark.parametrize(
    ("start", "action", "end"),
    [
        (State.NORMAL, "raise", State.UNACK_ACTIVE),
        (State.UNACK_ACTIVE, "ack", State.ACK_ACTIVE),
        (State.UNACK_ACTIVE, "clear", State.RTN_UNACK),
        (State.ACK_ACTIVE, "clear", State.NORMAL),
        (State.RTN_UNACK, "ack", State.NORMAL),
        (State.RTN_UNACK, "raise", State.UNACK_ACTIVE),
    ],
)
def test_base_transitions(start: State, action: str, end: State) -> None:
    """The six transitions between normal, unack_active, ack_active and rtn_unack."""
    m = machine(start)
    if action == "ack":
        m.acknowledge()
    else:
        assert m.set_condition(action == "raise") is True
    assert m.state is end
    assert m.consistent()


@pytest.mark.parametrize("state", [State.NORMAL, State.UNACK_ACTIVE, State.ACK_ACTIVE, State.RTN_UNACK])
def test_same_condition_is_no_transition(state: State) -> None:
    """Applying the condition the alarm already has changes nothing and says so."""
    m = machine(state)
    count = m.count
    assert m.set_condition(m.active) is False
    assert (m.state, m.count) == (state, count)


@pytest.mark.parametrize("state", [State.NORMAL, State.ACK_ACTIVE])
def test_ack_refused_when_not_waiting(state: State) -> None:
    """Only unack_active and rtn_unack accept an acknowledgement; the refusal names the state."""
    m = machine(state)
    with pytest.raises(AlarmConflict, match=state.value):
        m.acknowledge()
    assert m.state is state


def test_count_grows_while_chattering_and_restarts_after_normal() -> None:
    """Raises before an ack add to the count; the first raise after normal starts at 1."""
    m = StateMachine()
    for expected in (1, 2, 3):
        m.set_condition(True)
        assert (m.state, m.count) == (State.UNACK_ACTIVE, expected)
        m.set_condition(False)
        assert m.state is State.RTN_UNACK
    m.acknowledge()
    assert (m.state, m.count) == (State.NORMAL, 3)
    m.set_condition(True)
    assert m.count == 1


def test_count_after_ack_active_clear() -> None:
    """ack_active → normal → raise starts a new count."""
    m = machine(State.ACK_ACTIVE)
    m.set_condition(False)
    m.set_condition(True)
    assert (m.state, m.count) == (State.UNACK_ACTIVE, 1)


HIDE = {
    State.SHELVED: StateMachine.set_shelved,
    State.SUPPRESSED: StateMachine.set_suppressed,
    State.OUT_OF_SERVICE: StateMachine.set_out_of_service,
}


@pytest.mark.parametrize("hidden", list(HIDE))
@pytest.mark.parametrize("start", [State.NORMAL, State.UNACK_ACTIVE, State.ACK_ACTIVE, State.RTN_UNACK])
def test_hide_from_any_base_state(hidden: State, start: State) -> None:
    """Shelve, suppress and remove from service work from every base state."""
    m = machine(start)
    HIDE[hidden](m, True)
    assert m.state is hidden
    assert m.hidden and m.consistent()
    with pytest.raises(AlarmConflict, match=hidden.value):
        m.acknowledge()


@pytest.mark.parametrize("hidden", list(HIDE))
@pytest.mark.parametrize(("active", "end"), [(True, State.UNACK_ACTIVE), (False, State.NORMAL)])
@pytest.mark.parametrize("start", [State.NORMAL, State.UNACK_ACTIVE, State.ACK_ACTIVE, State.RTN_UNACK])
def test_return_follows_condition(hidden: State, active: bool, end: State, start: State) -> None:
    """Back from a hidden state the alarm is unack_active if the condition holds, else normal."""
    m = machine(start)
    HIDE[hidden](m, True)
    m.set_condition(active)  # tracked while hidden
    assert m.state is hidden
    HIDE[hidden](m, False)
    assert m.state is end
    assert m.consistent()


def test_condition_tracked_while_hidden_counts() -> None:
    """Raises while shelved are counted; the state stays shelved."""
    m = StateMachine()
    m.set_shelved(True)
    m.set_condition(True)
    m.set_condition(False)
    m.set_condition(True)
    assert (m.state, m.count, m.active) == (State.SHELVED, 2, True)


def test_precedence_of_hidden_states() -> None:
    """Out of service beats shelved, which beats suppressed; each reason lifts on its own."""
    m = machine(State.UNACK_ACTIVE)
    m.set_suppressed(True)
    m.set_shelved(True)
    m.set_out_of_service(True)
    assert m.state is State.OUT_OF_SERVICE
    m.set_out_of_service(False)
    assert m.state is State.SHELVED
    m.set_shelved(False)
    assert m.state is State.SUPPRESSED
    m.set_suppressed(False)
    assert m.state is State.UNACK_ACTIVE


def test_base_state_table() -> None:
    """base_state maps (active, acked) onto the four ISA states A-D."""
    assert base_state(False, True) is State.NORMAL
    assert base_state(True, False) is State.UNACK_ACTIVE
    assert base_state(True, True) is State.ACK_ACTIVE
    assert base_state(False, False) is State.RTN_UNACK


def test_filters() -> None:
    """The engine's filters: active and unacked are the documented sets; all has no filter."""
    assert STATE_FILTERS["active"] == ACTIVE_STATES == {State.UNACK_ACTIVE, State.ACK_ACTIVE, State.RTN_UNACK}
    assert STATE_FILTERS["unacked"] == UNACKED_STATES == {State.UNACK_ACTIVE, State.RTN_UNACK}
    assert STATE_FILTERS["all"] is None
    assert issubclass(AlarmConflict, ValueError)
