# -*- test-case-name: tests.alarms.test_engine -*-
"""Shared vocabulary of the alarm package: states, priorities, journal entries.

The engine (:mod:`alarms.engine`), the operational store
(:mod:`scada.store`), the notifiers (:mod:`alarms.notify`) and the API all
speak these types; nothing here depends on anything but the standard library.

States follow ISA-18.2 (ANSI/ISA-18.2-2016, figure 5 "alarm state
transition diagram"): an alarm is a configured condition on one tag or
device, and it stays the same object (same ``id``) across occurrences, so a
condition that keeps toggling is one alarm with a growing ``count``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class State(StrEnum):
    """Where an alarm stands (ISA-18.2 states; the strings are the API's)."""

    NORMAL = "normal"
    UNACK_ACTIVE = "unack_active"
    ACK_ACTIVE = "ack_active"
    RTN_UNACK = "rtn_unack"
    SHELVED = "shelved"
    SUPPRESSED = "suppressed"
    OUT_OF_SERVICE = "out_of_service"


class Priority(StrEnum):
    """Alarm priority; ``rank`` orders them, critical first."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Return 0 for critical .. 3 for low (sort key: most urgent first)."""
        return _RANK[self]


_RANK = {Priority.CRITICAL: 0, Priority.HIGH: 1, Priority.MEDIUM: 2, Priority.LOW: 3}

#: Typed device-status alarms (M-Bus status bits and error records, Modbus
#: status registers declared in profiles map to these).
STATUS_KINDS = ("leak", "tamper", "sensor_failure", "low_battery", "permanent_error", "temporary_error")


@dataclass(slots=True)
class JournalEntry:
    """One line of the alarm journal: a state transition or an operator action.

    ``event`` is one of: ``raise`` (condition became active), ``clear``
    (condition returned to normal), ``ack``, ``shelve``, ``unshelve``
    (by an operator or ``auto`` on expiry), ``comment``, ``suppress``,
    ``unsuppress``, ``out_of_service``, ``in_service``, ``flood_on``,
    ``flood_off``, ``notify`` (a notification sent or given up; ``comment``
    says to whom and how).  ``user`` is the operator's name, or ``"system"``.
    ``ts`` is Unix seconds (UTC).
    """

    ts: float
    alarm_id: str
    event: str
    user: str = "system"
    comment: str = ""
    state_from: str = ""
    state_to: str = ""
    rule: str = ""
    tag: str = ""
    priority: str = ""
    value: float | None = None
    message: str = ""
    id: int | None = None  # assigned by the store

    def to_json(self) -> dict[str, Any]:
        """Return the entry as the API shows it (``ts`` stays Unix seconds; the API formats it)."""
        return {
            "id": self.id, "ts": self.ts, "alarm_id": self.alarm_id, "event": self.event, "user": self.user,
            "comment": self.comment, "state_from": self.state_from, "state_to": self.state_to,
            "rule": self.rule, "tag": self.tag, "priority": self.priority, "value": self.value,
            "message": self.message,
        }


class Journal(Protocol):
    """Where the engine records every transition and action, and keeps alarm state across restarts."""

    def record(self, entry: JournalEntry) -> None:
        """Append ``entry`` durably (assigning ``entry.id``)."""

    def query(self, start: float, end: float, limit: int = 100_000, alarm_id: str | None = None
              ) -> list[JournalEntry]:
        """Return entries with ``start <= ts < end``, oldest first, at most ``limit``."""

    def save_state(self, alarm_id: str, state: dict[str, Any]) -> None:
        """Remember an alarm's persistent state (JSON-able dict) so a restart keeps shelving and acks."""

    def load_states(self) -> dict[str, dict[str, Any]]:
        """Return every saved alarm state by alarm id."""


@dataclass
class MemoryJournal:
    """A :class:`Journal` in memory, for tests and the benchmark."""

    entries: list[JournalEntry] = field(default_factory=list)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record(self, entry: JournalEntry) -> None:
        """Append ``entry``, numbering it from 1."""
        entry.id = len(self.entries) + 1
        self.entries.append(entry)

    def query(self, start: float, end: float, limit: int = 100_000, alarm_id: str | None = None
              ) -> list[JournalEntry]:
        """Return entries with ``start <= ts < end`` (optionally of one alarm), oldest first."""
        out = [e for e in self.entries if start <= e.ts < end and (alarm_id is None or e.alarm_id == alarm_id)]
        return out[:limit]

    def save_state(self, alarm_id: str, state: dict[str, Any]) -> None:
        """Remember ``state`` for ``alarm_id``."""
        self.states[alarm_id] = dict(state)

    def load_states(self) -> dict[str, dict[str, Any]]:
        """Return a copy of every remembered state."""
        return {k: dict(v) for k, v in self.states.items()}
