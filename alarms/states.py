# -*- test-case-name: tests.alarms.test_states -*-
"""The ISA-18.2 alarm state machine, with no clock, no journal and no I/O.

An alarm's visible :class:`~alarms.model.State` follows from five facts
kept by :class:`StateMachine`:

- ``active``: the alarm condition (after on/off delays) holds now;
- ``acked``: the latest occurrence has been acknowledged (or there is none);
- ``shelved``, ``suppressed`` (by design: the device is in comm loss) and
  ``out_of_service``: three independent reasons not to annunciate.

::

                     raise                         clear
      ┌────────┐ ───────────▶ ┌──────────────┐ ──────────▶ ┌───────────┐
      │ normal │              │ unack_active │             │ rtn_unack │
      └────────┘ ◀─────┐      └──────────────┘ ◀────────── └───────────┘
          ▲            │             │ ack        raise (count+1)  │ ack
          │ clear      │             ▼                             │
          │      ┌────────────┐                                    │
          └───── │ ack_active │     normal ◀───────────────────────┘
                 └────────────┘

      shelve / suppress / remove from service: any state ─▶ shelved / suppressed / out_of_service
      unshelve / unsuppress / return to service:  ─▶ unack_active if the condition holds, else normal

The condition keeps being tracked while an alarm is hidden (shelved,
suppressed or out of service); only annunciation stops.  When the last
reason to hide goes away the alarm takes the state its condition demands,
so an alarm still active must be acknowledged again (ISA-18.2, figure 5,
transitions from states E, F and G).  Precedence when several reasons hold
at once: out of service, then shelved, then suppressed.

``count`` is the number of occurrences (raises) since the alarm last was
normal: a raise from normal starts it at 1, a raise from ``rtn_unack``
(chattering) adds one.  Raises while hidden count as well.
"""

from __future__ import annotations

from alarms.model import State


class AlarmConflict(ValueError):
    """An operator action that the alarm's state (or the request) does not allow; the message says why."""


#: The states the ``"active"`` filter shows: annunciated and not yet back to normal.
ACTIVE_STATES = frozenset({State.UNACK_ACTIVE, State.ACK_ACTIVE, State.RTN_UNACK})
#: The states that wait for an acknowledgement.
UNACKED_STATES = frozenset({State.UNACK_ACTIVE, State.RTN_UNACK})
#: The states in which the alarm is not annunciated.
HIDDEN_STATES = frozenset({State.SHELVED, State.SUPPRESSED, State.OUT_OF_SERVICE})

#: The filters of ``AlarmEngine.alarms(state=...)``; ``None`` means every alarm.
STATE_FILTERS: dict[str, frozenset[State] | None] = {
    "active": ACTIVE_STATES,
    "unacked": UNACKED_STATES,
    "shelved": frozenset({State.SHELVED}),
    "suppressed": frozenset({State.SUPPRESSED}),
    "out_of_service": frozenset({State.OUT_OF_SERVICE}),
    "normal": frozenset({State.NORMAL}),
    "all": None,
}


def base_state(active: bool, acked: bool) -> State:
    """Return the state of an annunciated alarm (ISA-18.2 states A-D)."""
    if active:
        return State.ACK_ACTIVE if acked else State.UNACK_ACTIVE
    return State.NORMAL if acked else State.RTN_UNACK


class StateMachine:
    """The state of one alarm and the transitions ISA-18.2 allows.

    Methods change the facts and return nothing; the caller reads
    :attr:`state` before and after to journal the transition.  Operator
    actions that the state does not allow raise :class:`AlarmConflict`.
    """

    __slots__ = ("active", "acked", "shelved", "suppressed", "out_of_service", "count")

    def __init__(self) -> None:
        """Start normal: condition inactive, nothing to acknowledge, annunciated."""
        self.active = False
        self.acked = True
        self.shelved = False
        self.suppressed = False
        self.out_of_service = False
        self.count = 0

    @property
    def hidden(self) -> bool:
        """Tell whether the alarm is not annunciated (shelved, suppressed or out of service)."""
        return self.out_of_service or self.shelved or self.suppressed

    @property
    def state(self) -> State:
        """Return the visible state."""
        if self.out_of_service:
            return State.OUT_OF_SERVICE
        if self.shelved:
            return State.SHELVED
        if self.suppressed:
            return State.SUPPRESSED
        return base_state(self.active, self.acked)

    def set_condition(self, active: bool) -> bool:
        """Apply the (delayed) alarm condition; return whether it changed.

        A raise from normal starts a new occurrence count; a raise before the
        last one was acknowledged (``rtn_unack``) adds to it.
        """
        if active == self.active:
            return False
        if active:
            self.count = 1 if self.acked else self.count + 1
            self.acked = False
        self.active = active
        return True

    def acknowledge(self) -> None:
        """Acknowledge: ``unack_active`` → ``ack_active``, ``rtn_unack`` → ``normal``."""
        state = self.state
        if state not in UNACKED_STATES:
            raise AlarmConflict(f"not waiting for acknowledgement (state {state.value})")
        self.acked = True

    def set_shelved(self, on: bool) -> None:
        """Shelve or unshelve (the caller checks that this is a change)."""
        self.shelved = on
        self._settle()

    def set_suppressed(self, on: bool) -> None:
        """Suppress by design or release."""
        self.suppressed = on
        self._settle()

    def set_out_of_service(self, on: bool) -> None:
        """Remove from service or return to it."""
        self.out_of_service = on
        self._settle()

    def _settle(self) -> None:
        # While hidden nothing is annunciated, so nothing is left to
        # acknowledge; coming back, an alarm still active is new to the
        # operator and waits for an acknowledgement again.
        self.acked = not self.active

    def consistent(self) -> bool:
        """Tell whether the visible state agrees with the condition (a check for tests)."""
        state = self.state
        if state in HIDDEN_STATES:
            return self.hidden
        return (state in (State.UNACK_ACTIVE, State.ACK_ACTIVE)) == self.active
