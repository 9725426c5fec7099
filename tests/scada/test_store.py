"""The operational store: WAL and pragmas, migrations, the alarm journal, alarm states, users, tokens, sessions."""

from __future__ import annotations

import sqlite3
import stat

import pytest

from alarms.model import JournalEntry, MemoryJournal
from scada.store import AlreadyExists, NotFound, OpsStore, StoreError
from scada.store import ops as store_ops
from scada.store.schema import MIGRATIONS, Migration

T0 = 1_795_000_000.0


class FakeClock:
    """Unix seconds that only move when told to."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock():
    return FakeClock()


@pytest.fixture()
def store(tmp_path, clock):
    s = OpsStore(tmp_path / "var" / "scada.db", clock=clock)
    yield s
    s.close()


def test_new_store_is_wal_migrated_and_private(store, tmp_path):
    """A new file (folder created) is in WAL mode, synchronous=NORMAL, with a busy timeout, at the newest schema."""
    assert store.pragma("journal_mode") == "wal"
    assert store.pragma("synchronous") == 1  # NORMAL
    assert store.pragma("busy_timeout") == 5000
    assert store.pragma("foreign_keys") == 1
    assert store.schema_version == len(MIGRATIONS)
    path = tmp_path / "var" / "scada.db"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    tables = {row[0] for row in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"schema_version", "users", "tokens", "sessions", "alarm_journal", "alarm_state"} <= tables


def test_reopening_applies_nothing_twice_and_keeps_data(tmp_path, clock):
    """Opening an up-to-date store again changes neither its version nor its rows."""
    path = tmp_path / "s.db"
    first = OpsStore(path, clock=clock)
    first.add_user("alice", "admin", "hash")
    first.close()
    again = OpsStore(path, clock=clock)
    assert again.schema_version == len(MIGRATIONS) and again.user("alice").role == "admin"
    rows = sqlite3.connect(path).execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert [r[0] for r in rows] == list(range(1, len(MIGRATIONS) + 1))
    again.close()


def test_a_new_migration_is_applied_to_an_old_store(tmp_path, clock, monkeypatch):
    """A migration appended later runs once on an existing store, which keeps its data."""
    path = tmp_path / "s.db"
    old = OpsStore(path, clock=clock)
    old.add_user("alice", "admin", "hash")
    old.close()
    added = Migration("manual readings", ("CREATE TABLE manual_readings (id INTEGER PRIMARY KEY, value REAL)",))
    monkeypatch.setattr(store_ops, "MIGRATIONS", [*MIGRATIONS, added])
    new = OpsStore(path, clock=clock)
    assert new.schema_version == len(MIGRATIONS) + 1 and new.user("alice") is not None
    new.close()
    description = sqlite3.connect(path).execute(
        "SELECT description FROM schema_version WHERE version = ?", (len(MIGRATIONS) + 1,)).fetchone()[0]
    assert description == "manual readings"


def test_a_failing_migration_leaves_the_store_as_it_was(tmp_path, clock, monkeypatch):
    """A migration that fails half-way is rolled back whole and reported as a StoreError."""
    path = tmp_path / "s.db"
    OpsStore(path, clock=clock).close()
    broken = Migration("broken", ("CREATE TABLE half (x)", "THIS IS NOT SQL"))
    monkeypatch.setattr(store_ops, "MIGRATIONS", [*MIGRATIONS, broken])
    with pytest.raises(StoreError, match="s.db"):
        OpsStore(path, clock=clock)
    monkeypatch.setattr(store_ops, "MIGRATIONS", MIGRATIONS)
    again = OpsStore(path, clock=clock)
    assert again.schema_version == len(MIGRATIONS)
    assert sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchone() is None
    again.close()


def test_a_store_from_a_newer_program_is_refused(tmp_path, clock):
    """A schema version this program does not know is an error naming both versions."""
    path = tmp_path / "s.db"
    OpsStore(path, clock=clock).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO schema_version VALUES (99, 'future', 0)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="99"):
        OpsStore(path, clock=clock)


@pytest.mark.parametrize("content", [b"not a database at all, just text\n" * 10,
                                     b"SQLite format 3\x00" + b"\xff" * 200])
def test_a_file_that_is_not_a_store_is_a_store_error(tmp_path, content):
    """A file that is not SQLite is a StoreError naming the file, not a crash."""
    path = tmp_path / "junk.db"
    path.write_bytes(content)
    with pytest.raises(StoreError, match="junk.db"):
        OpsStore(path)


def test_a_directory_is_a_store_error(tmp_path):
    """A path that is a directory cannot be opened; the error names it."""
    with pytest.raises(StoreError, match="cannot open"):
        OpsStore(tmp_path)


def _entries() -> list[JournalEntry]:
    return [
        JournalEntry(ts=T0 + 10, alarm_id="b1.leak", event="raise", state_from="normal", state_to="unack_active",
                     rule="leak", tag="b1-w.status", priority="high", value=1.0, message="Протечка"),
        JournalEntry(ts=T0 + 10, alarm_id="b2.low_t", event="raise", rule="low", tag="b2-heat.t_c", value=None),
        JournalEntry(ts=T0 + 20, alarm_id="b1.leak", event="ack", user="ivanov", comment="выехали",
                     state_from="unack_active", state_to="ack_active"),
        JournalEntry(ts=T0 + 30, alarm_id="b1.leak", event="clear", value=float("inf")),
    ]


def test_journal_round_trip(store):
    """Recorded entries get ids 1.., come back with every field, oldest first, ts in [start, end)."""
    entries = _entries()
    for entry in entries:
        store.record(entry)
    assert [e.id for e in entries] == [1, 2, 3, 4]
    got = store.query(T0, T0 + 100)
    assert got == entries
    assert store.query(T0 + 10, T0 + 20) == entries[:2]  # end is exclusive
    assert store.query(T0 + 20, T0 + 100, alarm_id="b1.leak") == entries[2:]
    assert store.query(T0, T0 + 100, limit=3) == entries[:3]
    assert store.query(T0, T0 + 100, limit=-1) == []
    assert store.query(T0, T0 + 100, alarm_id="nothing") == []


def test_journal_survives_reopening_and_matches_the_memory_journal(tmp_path, clock):
    """The store answers like the reference MemoryJournal, also after a reopen."""
    path = tmp_path / "s.db"
    store, memory = OpsStore(path, clock=clock), MemoryJournal()
    for a, b in zip(_entries(), _entries()):
        store.record(a)
        memory.record(b)
    store.close()
    store = OpsStore(path, clock=clock)
    for args in ((T0, T0 + 100), (T0 + 10, T0 + 11), (T0, T0 + 100, 2), (T0, T0 + 100, 10, "b2.low_t")):
        assert store.query(*args) == memory.query(*args)
    store.close()


def test_journal_uses_the_indexes(store):
    """Queries by time and by alarm are index searches, not table scans (the journal grows for years)."""
    plan = " ".join(str(row) for row in store._db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM alarm_journal WHERE ts >= 0 AND ts < 1 ORDER BY ts, id"))
    assert "alarm_journal_ts" in plan
    plan = " ".join(str(row) for row in store._db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM alarm_journal WHERE ts >= 0 AND ts < 1 AND alarm_id = 'x'"))
    assert "alarm_journal_alarm_ts" in plan


def test_states_round_trip(tmp_path, clock):
    """Saved states replace earlier ones, survive a reopen, and can be forgotten."""
    path = tmp_path / "s.db"
    store = OpsStore(path, clock=clock)
    store.save_state("b1.leak", {"state": "ack_active", "count": 2, "shelved_until": None})
    store.save_state("b2.low_t", {"state": "shelved", "shelved_until": T0 + 3600, "by": "петров"})
    store.save_state("b1.leak", {"state": "normal", "count": 3})
    store.close()
    store = OpsStore(path, clock=clock)
    assert store.load_states() == {"b1.leak": {"state": "normal", "count": 3},
                                   "b2.low_t": {"state": "shelved", "shelved_until": T0 + 3600, "by": "петров"}}
    store.delete_state("b2.low_t")
    assert list(store.load_states()) == ["b1.leak"]
    store.close()


def test_a_second_connection_writes_while_the_first_reads(tmp_path, clock):
    """WAL: the CLI can add a user while the server holds a read transaction open on the same file."""
    path = tmp_path / "s.db"
    server = OpsStore(path, clock=clock)
    server.record(_entries()[0])
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM alarm_journal").fetchone()[0] == 1
    cli = OpsStore(path, clock=clock, busy_timeout=0.1)
    cli.add_user("alice", "admin", "hash")  # would be 'database is locked' with a rollback journal
    cli.close()
    reader.execute("COMMIT")
    assert server.user("alice") is not None
    server.close()


def test_users(store, clock):
    """Users: add, duplicate, role, password (ends sessions), remove (ends sessions), errors name the user."""
    store.add_user("alice", "operator", "h1")
    with pytest.raises(AlreadyExists, match="'alice' already exists"):
        store.add_user("alice", "viewer", "h2")
    with pytest.raises(ValueError, match="valid roles"):
        store.add_user("bob", "boss", "h")
    clock.now += 60
    store.set_role("alice", "crew")
    alice = store.user("alice")
    assert (alice.role, alice.password_hash, alice.created, alice.updated) == ("crew", "h1", T0, T0 + 60)
    assert "h1" not in repr(alice)
    store.create_session("alice", "s1", 3600)
    store.set_password("alice", "h2", end_sessions=False)
    assert store.session_by_hash("s1") is not None
    store.set_password("alice", "h3")
    assert store.user("alice").password_hash == "h3" and store.session_by_hash("s1") is None
    store.create_session("alice", "s2", 3600)
    store.remove_user("alice")
    assert store.user("alice") is None and store.session_by_hash("s2") is None
    for action in (lambda: store.remove_user("alice"), lambda: store.set_role("alice", "admin"),
                   lambda: store.set_password("alice", "x"), lambda: store.create_session("alice", "s3", 1)):
        with pytest.raises(NotFound, match="no user 'alice'"):
            action()
    store.add_user("zoe", "admin", "h")
    store.add_user("bob", "viewer", "h")
    assert [u.name for u in store.users()] == ["bob", "zoe"]


def test_tokens(store, clock):
    """API tokens: found by hash, expiry, last use noted at most once a minute, revoke, duplicates."""
    store.add_token("billing", "billing", "hash-b", expires=T0 + 100)
    store.add_token("wall", "viewer", "hash-w")
    with pytest.raises(AlreadyExists, match="token 'wall'"):
        store.add_token("wall", "viewer", "hash-x")
    assert store.token_by_hash("nothing") is None
    token = store.token_by_hash("hash-b")
    assert (token.name, token.role, token.expired(T0 + 99), token.expired(T0 + 100)) == ("billing", "billing",
                                                                                         False, True)
    assert store.tokens()[0].last_used == T0
    clock.now += 30
    store.token_by_hash("hash-b")
    assert store.tokens()[0].last_used == T0
    clock.now += 40
    store.token_by_hash("hash-b")
    assert store.tokens()[0].last_used == T0 + 70
    assert store.count_credentials() == 2
    clock.now = T0 + 100
    assert store.count_credentials() == 1  # the expired one cannot authenticate
    store.revoke_token("billing")
    assert [t.name for t in store.tokens()] == ["wall"]
    with pytest.raises(NotFound, match="no token 'billing'"):
        store.revoke_token("billing")


def test_sessions(store, clock):
    """Sessions carry the user's current role, expire, are purged when new ones open, and can be ended."""
    store.add_user("ivan", "crew", "h")
    session = store.create_session("ivan", "s1", 600)
    assert (session.user, session.role, session.expires) == ("ivan", "crew", T0 + 600)
    store.set_role("ivan", "operator")
    assert store.session_by_hash("s1").role == "operator"
    clock.now = T0 + 600
    assert store.session_by_hash("s1").expired(clock.now)
    store.create_session("ivan", "s2", 600)
    assert store.session_by_hash("s1") is None and [s.expires for s in store.sessions("ivan")] == [T0 + 1200]
    assert store.delete_session("s2") and not store.delete_session("s2")
    assert store.sessions() == []


def test_close_is_idempotent(tmp_path):
    """Closing twice is harmless (Runtime.stop may run after a failed start)."""
    store = OpsStore(tmp_path / "s.db")
    store.close()
    store.close()
