# -*- test-case-name: tests.scada.test_store -*-
"""The operational store's schema, as an ordered list of migrations.

Migration *n* (1-based) brings a store from schema version *n - 1* to *n*.
A store records the versions it has in ``schema_version``; opening it
applies the missing ones in order, each in its own transaction.  Never edit
or reorder a migration that has shipped: append a new one (a manual
readings table, the device registry's lifecycle, ...).
"""

from __future__ import annotations

from typing import NamedTuple


class Migration(NamedTuple):
    """One schema step: what it does, and its SQL statements (run in one transaction)."""

    description: str
    statements: tuple[str, ...]


MIGRATIONS: list[Migration] = [
    Migration("users, API tokens, login sessions, alarm journal and alarm state", (
        """CREATE TABLE users (
            name TEXT PRIMARY KEY,
            role TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            created REAL NOT NULL,
            updated REAL NOT NULL
        )""",
        """CREATE TABLE tokens (
            name TEXT PRIMARY KEY,
            role TEXT NOT NULL,
            hash TEXT NOT NULL UNIQUE,
            created REAL NOT NULL,
            expires REAL,
            last_used REAL
        )""",
        """CREATE TABLE sessions (
            hash TEXT PRIMARY KEY,
            user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE ON UPDATE CASCADE,
            created REAL NOT NULL,
            expires REAL NOT NULL
        )""",
        "CREATE INDEX sessions_user ON sessions(user)",
        "CREATE INDEX sessions_expires ON sessions(expires)",
        """CREATE TABLE alarm_journal (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts REAL NOT NULL,
            alarm_id TEXT NOT NULL,
            event TEXT NOT NULL,
            user TEXT NOT NULL,
            comment TEXT NOT NULL,
            state_from TEXT NOT NULL,
            state_to TEXT NOT NULL,
            rule TEXT NOT NULL,
            tag TEXT NOT NULL,
            priority TEXT NOT NULL,
            value REAL,
            message TEXT NOT NULL
        )""",
        "CREATE INDEX alarm_journal_ts ON alarm_journal(ts)",
        "CREATE INDEX alarm_journal_alarm_ts ON alarm_journal(alarm_id, ts)",
        """CREATE TABLE alarm_state (
            alarm_id TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            updated REAL NOT NULL
        )""",
    )),
    # Hand-read meter values (scada.manual): who entered which value, when, from where.
    Migration("manual readings", (
        """CREATE TABLE manual_readings (
            id INTEGER PRIMARY KEY,
            tag TEXT NOT NULL,
            ts REAL NOT NULL,
            value REAL NOT NULL,
            entered REAL NOT NULL,
            user TEXT NOT NULL,
            source TEXT NOT NULL,
            serial TEXT,
            replacement INTEGER NOT NULL DEFAULT 0,
            comment TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX manual_readings_tag_ts ON manual_readings(tag, ts)",
        "CREATE INDEX manual_readings_ts ON manual_readings(ts)",
    )),
    # The meter registry's lifecycle (scada.registry): commissioning, verification, repair, seal,
    # replacement, decommissioning; `data` is the event's own fields as JSON.
    Migration("meter lifecycle events", (
        """CREATE TABLE meter_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            meter TEXT NOT NULL,
            kind TEXT NOT NULL,
            at REAL NOT NULL,
            recorded REAL NOT NULL,
            user TEXT NOT NULL,
            comment TEXT NOT NULL DEFAULT '',
            data TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX meter_events_meter_at ON meter_events(meter, at)",
    )),
]
