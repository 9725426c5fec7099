"""The operational store: WAL and pragmas, migrations, the alarm journal, alarm states, users, tokens, sessions."""

from __future__ import annotations

import json
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
    added = Migration("later things", ("CREATE TABLE later_things (id INTEGER PRIMARY KEY, value REAL)",))
    monkeypatch.setattr(store_ops, "MIGRATIONS", [*MIGRATIONS, added])
    new = OpsStore(path, clock=clock)
    assert new.schema_version == len(MIGRATIONS) + 1 and new.user("alice") is not None
    new.close()
    description = sqlite3.connect(path).execute(
        "SELECT description FROM schema_version WHERE version = ?", (len(MIGRATIONS) + 1,)).fetchone()[0]
    assert description == "later things"


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


# -- grouped journal writes (one commit per reactor turn) ------------------------------------------


@pytest.fixture()
def grouped(tmp_path):
    """A store on a test reactor: journal writes are committed when the clock next runs (a reactor turn)."""
    from twisted.internet.task import Clock

    reactor = Clock()
    reactor.advance(T0)
    s = OpsStore(tmp_path / "s.db", reactor=reactor)
    yield s, reactor, tmp_path / "s.db"
    s.close()


def _committed(path) -> int:
    """Return how many journal rows another connection (another process) sees."""
    other = sqlite3.connect(path)
    try:
        return other.execute("SELECT COUNT(*) FROM alarm_journal").fetchone()[0]
    finally:
        other.close()


def test_journal_writes_are_committed_once_per_reactor_turn(grouped):
    """record/save_state set ids at once, stay in one transaction, and are committed at the end of the turn."""
    store, reactor, path = grouped
    entries = _entries()
    for entry in entries:
        store.record(entry)
        store.save_state(entry.alarm_id, {"state": entry.state_to or "normal"})
    assert [e.id for e in entries] == [1, 2, 3, 4]  # ids when record returns
    assert store.unsaved == 4 + 2
    assert _committed(path) == 0  # nothing committed yet: one transaction for the turn
    assert len(reactor.getDelayedCalls()) == 1  # one commit for the lot
    reactor.advance(0)  # the next reactor turn
    assert _committed(path) == 4 and store.unsaved == 0
    assert reactor.getDelayedCalls() == []
    assert store.query(T0, T0 + 100) == entries
    assert store.load_states() == {"b1.leak": {"state": "normal"}, "b2.low_t": {"state": "normal"}}


def test_query_load_states_and_close_see_the_open_turn(grouped):
    """query and load_states commit the open turn first; close commits it too."""
    store, reactor, path = grouped
    entries = _entries()
    store.record(entries[0])
    store.save_state("b1.leak", {"state": "unack_active"})
    assert store.query(T0, T0 + 100) == entries[:1]
    assert _committed(path) == 1
    store.record(entries[1])
    store.save_state("b1.leak", {"state": "ack_active"})
    assert store.load_states() == {"b1.leak": {"state": "ack_active"}}
    store.record(entries[2])
    store.close()
    assert _committed(path) == 3
    reactor.advance(0)  # the commit timer was cancelled by close: nothing happens
    again = OpsStore(path)
    assert again.query(T0, T0 + 100) == entries[:3]
    assert again.load_states() == {"b1.leak": {"state": "ack_active"}}
    again.close()


def test_a_crash_loses_at_most_the_current_turn(grouped):
    """What earlier turns wrote is committed; only the turn in progress is not."""
    store, reactor, path = grouped
    entries = _entries()
    store.record(entries[0])
    reactor.advance(0)
    store.record(entries[1])
    # A crash now (the process dies, the file stays): another connection sees what was committed.
    assert _committed(path) == 1


def test_other_methods_commit_the_open_turn_first(grouped):
    """User, token and session writes run in their own transaction after the journal's (no nesting)."""
    store, reactor, path = grouped
    store.record(_entries()[0])
    store.add_user("alice", "operator", "h1")
    assert _committed(path) == 1
    store.record(_entries()[1])
    store.set_password("alice", "h2")  # BEGIN IMMEDIATE of its own: the journal's is committed before
    assert _committed(path) == 2 and store.user("alice").password_hash == "h2"
    store.record(_entries()[2])
    store.add_token("wall", "viewer", "hash-w")
    assert _committed(path) == 3
    reactor.advance(0)
    assert len(store.query(T0, T0 + 100)) == 3


def test_another_process_can_write_after_the_turn(grouped):
    """The write lock is held only until the end of the turn: the CLI's store writes right after."""
    store, reactor, path = grouped
    store.record(_entries()[0])
    cli = OpsStore(path, busy_timeout=0.05)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        cli.add_user("bob", "viewer", "h")  # the server's turn holds the lock
    reactor.advance(0)
    cli.add_user("bob", "viewer", "h")
    cli.close()
    assert store.user("bob") is not None


def test_without_a_reactor_every_write_is_committed_at_once(store, tmp_path):
    """The command line (no reactor): each journal write is its own transaction."""
    store.record(_entries()[0])
    store.save_state("b1.leak", {"state": "unack_active"})
    assert _committed(store.path) == 1 and store.unsaved == 0
    other = sqlite3.connect(store.path)
    assert other.execute("SELECT state FROM alarm_state").fetchall() == [('{"state": "unack_active"}',)]
    other.close()


class _FailingCommits:
    """Wrap a connection so that its next ``fail`` COMMITs fail like a full disk."""

    def __init__(self, db: sqlite3.Connection, fail: int = 1) -> None:
        self._db = db
        self.fail = fail

    def __getattr__(self, name):
        return getattr(self._db, name)

    def execute(self, sql, *args):
        if sql == "COMMIT" and self.fail > 0:
            self.fail -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, *args)


def test_a_failed_commit_keeps_the_turn_in_memory_and_writes_it_later(grouped, caplog):
    """A commit that fails is rolled back; entries and states wait in memory (query sees them), then go in."""
    store, reactor, path = grouped
    real = store._db
    store._db = _FailingCommits(real, fail=3)
    entries = _entries()
    store.record(entries[0])
    store.record(entries[1])
    store.save_state("b1.leak", {"state": "unack_active"})
    with caplog.at_level("ERROR", logger="scada.store.ops"):
        reactor.advance(0)  # the commit fails
    assert "disk is full" in caplog.text and "2 entries and 1 alarm states wait" in caplog.text
    assert store.write_errors == 1 and store.unsaved == 3
    assert _committed(path) == 0
    assert store.query(T0, T0 + 100) == entries[:2]  # tried again (fails again), answered from memory
    assert store.write_errors == 2
    assert store.load_states() == {"b1.leak": {"state": "unack_active"}}  # the same
    assert store.write_errors == 3 and _committed(path) == 0
    store.record(entries[2])  # the next write puts the kept ones back first, with their ids
    assert entries[2].id == 3 and store.unsaved == 4
    reactor.advance(0)
    assert _committed(path) == 3 and store.unsaved == 0
    assert [e.id for e in store.query(T0, T0 + 100)] == [1, 2, 3]
    assert store.load_states() == {"b1.leak": {"state": "unack_active"}}
    store._db = real


def test_a_failed_commit_is_retried_without_new_writes(grouped):
    """What a failed commit left is written again after RETRY_AFTER_S even if nothing new comes."""
    store, reactor, path = grouped
    real = store._db
    store._db = _FailingCommits(real, fail=1)
    store.record(_entries()[0])
    reactor.advance(0)
    assert store.unsaved == 1
    reactor.advance(store_ops.RETRY_AFTER_S)
    assert store.unsaved == 0 and _committed(path) == 1
    assert reactor.getDelayedCalls() == []
    store._db = real


def test_a_failed_insert_raises_and_keeps_the_turn(grouped):
    """An insert that fails raises to the caller (who keeps that entry); the turn's others are kept here."""
    store, reactor, path = grouped
    entries = _entries()
    store.record(entries[0])
    bad = JournalEntry(ts=T0, alarm_id="x", event="raise", comment=None)  # NOT NULL
    with pytest.raises(sqlite3.IntegrityError):
        store.record(bad)
    assert store.unsaved == 1 and store.write_errors == 1
    store.record(entries[1])
    reactor.advance(0)
    assert [e.alarm_id for e in store.query(T0, T0 + 100)] == ["b1.leak", "b2.low_t"]


def test_unsaved_entries_are_bounded(grouped, monkeypatch):
    """At most MAX_UNSAVED entries wait after failed commits; the oldest beyond are dropped and counted."""
    store, reactor, path = grouped
    monkeypatch.setattr(store_ops, "MAX_UNSAVED", 2)
    real = store._db
    store._db = _FailingCommits(real, fail=1)
    for entry in _entries():
        store.record(entry)
    reactor.advance(0)
    assert store.dropped == 2 and store.unsaved == 2
    store.flush()
    assert [e.ts for e in store.query(T0, T0 + 100)] == [T0 + 20, T0 + 30]
    store._db = real


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "\ud83d\ude00 paired by hand", "ok ✓"])
def test_text_never_loses_an_entry(grouped, text):
    """Strings SQLite cannot encode (unpaired surrogates) are stored with U+FFFD; states keep them exactly."""
    store, reactor, path = grouped
    entry = JournalEntry(ts=T0, alarm_id=f"id{text}", event="comment", user=text, comment=text, message=text)
    store.record(entry)
    store.save_state(f"id{text}", {"state": "normal", "comments": [{"text": text}]})
    reactor.advance(0)
    assert store.write_errors == 0
    got = store.query(T0, T0 + 1)
    assert len(got) == 1 and got[0].id == entry.id
    expected = store_ops._SURROGATE.sub("\ufffd", text)
    assert (got[0].comment, got[0].user, got[0].message, got[0].alarm_id) == (expected, expected, expected,
                                                                              f"id{expected}")
    # The state is JSON: any surrogate survives as an escape (a pair written by hand reads back as one character).
    assert store.load_states() == {f"id{expected}": {"state": "normal",
                                                     "comments": [{"text": json.loads(json.dumps(text))}]}}


def test_the_engine_journals_surrogates_through_the_store(grouped):
    """An operator comment with an unpaired surrogate is journalled, not lost."""
    from alarms.engine import AlarmEngine
    from alarms.rules import LimitRule
    from tags.model import TagDef
    from tags.table import TagTable

    store, reactor, path = grouped
    table = TagTable()
    table.define(TagDef("m1.flow", device="m1"))
    engine = AlarmEngine(reactor, table, [LimitRule("flow", tags=("m1.flow",), hi=5.0)], store)
    engine.start()
    engine.comment("flow:m1.flow:hi", "ivanov", "клапан \ud800")
    reactor.advance(0)
    assert [e.comment for e in store.query(T0, T0 + 1)] == ["клапан \ufffd"]
    assert engine.summary()["journal_errors"] == 0 and engine.summary()["journal_pending"] == 0
    engine.stop()
