# -*- test-case-name: tests.scada.test_store -*-
"""The operational store: one SQLite file in WAL mode.

It holds what the site decides, as opposed to what the meters measure (that
is the historian's): the alarm journal and the alarms' persistent state,
users, API tokens and login sessions, manual readings (hand-read meter
values and who entered them); later issues add the device registry's
lifecycle (see :mod:`scada.store.schema`).

WAL lets the ``scada user`` / ``scada token`` commands write while the
server reads and writes the same file; ``synchronous=NORMAL`` makes each
commit an append to the log without an fsync (a power cut may lose the
last commits, never corrupt the file); a busy timeout makes a writer wait
for the other's short transaction instead of failing at once.

Alarm journal writes are grouped.  Given the runtime's ``reactor``,
:meth:`OpsStore.record` and :meth:`OpsStore.save_state` run inside one
transaction that is committed once per reactor turn (``callLater(0)``):
a comm-loss batch of thousands of transitions costs one commit, not two
per transition.  ``record`` still inserts at once, so ``entry.id`` is set
when it returns; a crash loses at most the current turn's entries.  The
write lock is held only until the end of that turn; every other method
commits the open journal transaction first, then runs in autocommit mode
(its own transaction), as do journal writes without a reactor (the
command line).  A commit that fails is rolled back and its entries and
states are kept in memory (:data:`MAX_UNSAVED` entries at most) and
written again with the next journal write or a few seconds later.  Text
is never a reason to lose an entry: a string SQLite cannot take (an
unpaired surrogate such as ``"\\ud800"``) is stored with U+FFFD in its place.

Secrets are never stored: passwords as argon2id hashes, tokens as SHA-256
(see :mod:`scada.auth`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sqlite3
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from alarms.model import JournalEntry
from scada.auth import check_role
from scada.store.schema import MIGRATIONS
from scada.store.registry import MeterEventsMixin

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

log = logging.getLogger(__name__)

#: How long a writer waits for another connection's lock before giving up.
BUSY_TIMEOUT_S = 5.0
#: A token's ``last_used`` is written at most this often (a request per second
#: must not become a write per second).
LAST_USED_RESOLUTION_S = 60.0

#: Journal entries (and alarm states) kept in memory after failed commits, to be written again.
MAX_UNSAVED = 100_000
#: Seconds between attempts to write what a failed commit left in memory, when no new write comes.
RETRY_AFTER_S = 5.0
#: Write failures are logged at most this often (the count of the others goes with the next line).
LOG_EVERY_S = 60.0

_JOURNAL_COLUMNS = ("ts", "alarm_id", "event", "user", "comment", "state_from", "state_to", "rule", "tag",
                    "priority", "value", "message")
_INSERT_ENTRY = f"INSERT INTO alarm_journal ({', '.join(_JOURNAL_COLUMNS)}) VALUES ({', '.join('?' * 12)})"
_INSERT_ENTRY_ID = (f"INSERT INTO alarm_journal (id, {', '.join(_JOURNAL_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * 13)})")
_UPSERT_STATE = ("INSERT INTO alarm_state (alarm_id, state, updated) VALUES (?, ?, ?) "
                 "ON CONFLICT(alarm_id) DO UPDATE SET state = excluded.state, updated = excluded.updated")
#: One encoder for every saved state (``json.dumps`` with options builds a new one per call).
_encode_state = json.JSONEncoder(sort_keys=True).encode
_SURROGATE = re.compile("[\ud800-\udfff]")


def _storable(params: tuple) -> tuple:
    """Return ``params`` with unpaired surrogates in strings replaced by U+FFFD (SQLite wants UTF-8)."""
    return tuple(_SURROGATE.sub("\ufffd", v) if isinstance(v, str) else v for v in params)


def _entry_row(entry: JournalEntry) -> tuple:
    return (entry.ts, entry.alarm_id, entry.event, entry.user, entry.comment, entry.state_from, entry.state_to,
            entry.rule, entry.tag, entry.priority, entry.value, entry.message)


class StoreError(Exception):
    """The store cannot do what was asked; the message says why, naming the object."""


class AlreadyExists(StoreError):
    """A user or token of that name exists already."""


class NotFound(StoreError):
    """No user or token of that name."""


@dataclass(frozen=True, slots=True)
class User:
    """A person who logs in with a password."""

    name: str
    role: str
    created: float
    updated: float
    password_hash: str = field(repr=False, default="")


@dataclass(frozen=True, slots=True)
class Token:
    """An API token (its secret is not kept, only its hash)."""

    name: str
    role: str
    created: float
    expires: float | None
    last_used: float | None

    def expired(self, now: float) -> bool:
        """Return True if the token has an expiry and ``now`` is past it."""
        return self.expires is not None and now >= self.expires


@dataclass(frozen=True, slots=True)
class Session:
    """A login session, with the user's current role."""

    user: str
    role: str
    created: float
    expires: float

    def expired(self, now: float) -> bool:
        """Return True if ``now`` is past the session's end."""
        return now >= self.expires


@dataclass(frozen=True, slots=True)
class ManualReading:
    """A meter value read by hand, as stored: what, when, and who entered it from where.

    ``ts`` is when the meter showed ``value`` (Unix seconds), ``entered``
    when it was stored.  ``source`` is ``api`` or ``import:<file name>``;
    ``replacement`` marks the first reading of a new meter (the register
    may start lower than the old one ended).  ``id`` is set by the store.
    """

    tag: str
    ts: float
    value: float
    user: str
    source: str = "api"
    serial: str | None = None
    replacement: bool = False
    comment: str = ""
    entered: float | None = None
    id: int | None = None


_MANUAL_COLUMNS = ("id", "tag", "ts", "value", "user", "source", "serial", "replacement", "comment", "entered")
_SELECT_MANUAL = f"SELECT {', '.join(_MANUAL_COLUMNS)} FROM manual_readings"
_INSERT_MANUAL = ("INSERT INTO manual_readings (tag, ts, value, entered, user, source, serial, replacement, comment) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _manual(row: tuple) -> ManualReading:
    values = dict(zip(_MANUAL_COLUMNS, row))
    values["replacement"] = bool(values["replacement"])
    return ManualReading(**values)


def _create_private(path: Path) -> None:
    """Create ``path`` readable by its owner only: it holds password hashes.

    SQLite gives its ``-wal`` and ``-shm`` files the main file's mode.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


class OpsStore(MeterEventsMixin):
    """The operational store at ``path`` (created with its folder if missing).

    Implements the alarm :class:`~alarms.model.Journal` protocol, and keeps
    users, API tokens, sessions, manual readings and meter lifecycle events.  ``clock`` returns Unix seconds (the
    runtime's ``reactor.seconds``; ``time.time`` for the command line); it
    stamps records and decides what has expired.  ``reactor`` (the
    runtime's; optional) groups journal writes into one commit per reactor
    turn, and its ``seconds`` is the default ``clock``; without it every
    journal write is committed at once.  Raises :class:`StoreError` if the
    file cannot be opened, is not a store, or was written by a newer
    version of this program.

    ``write_errors`` counts failed journal writes and commits, ``dropped``
    the entries given up because more than :data:`MAX_UNSAVED` waited;
    :attr:`unsaved` is how many entries and states wait in memory.
    """

    def __init__(self, path: str | os.PathLike, clock: Callable[[], float] | None = None,
                 busy_timeout: float = BUSY_TIMEOUT_S, reactor: IReactorTime | None = None) -> None:
        self.path = Path(path)
        self._reactor = reactor
        self._clock = clock or (reactor.seconds if reactor is not None else time.time)
        #: Journal writes and commits that failed (their entries are kept and written again).
        self.write_errors = 0
        #: Journal entries given up because more than MAX_UNSAVED waited in memory.
        self.dropped = 0
        self._turn_entries: list[JournalEntry] = []   # inserted in the open transaction
        self._turn_states: dict[str, tuple[str, float]] = {}  # saved in this turn, written at the commit
        self._lost_entries: list[JournalEntry] = []   # rolled back by a failed commit: to insert again
        self._lost_states: dict[str, tuple[str, float]] = {}
        self._commit_call: Any = None
        self._retry_call: Any = None
        self._log_at = -math.inf                      # monotonic time of the last failure logged
        self._unlogged = 0                            # failures since then
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _create_private(self.path)
            self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from None
        try:
            self._configure(busy_timeout)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"cannot use the store {self.path}: {exc}") from None
        except StoreError:
            self._db.close()
            raise
        self._closed = False

    # ------------------------------------------------------------------
    # Setup

    def _configure(self, busy_timeout: float) -> None:
        db = self._db
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"the store {self.path} cannot use write-ahead logging (journal mode {mode!r}); "
                             "put it on a local file system")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")

    def _version(self) -> int:
        return self._db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]

    def _migrate(self) -> None:
        """Bring the schema up to date, one transaction per migration.

        Each step re-reads the version under the write lock, so a server and
        a ``scada user`` command opening a new store together apply every
        migration once.
        """
        db = self._db
        db.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                   "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied REAL NOT NULL)")
        known = len(MIGRATIONS)
        current = self._version()
        if current > known:
            raise StoreError(f"the store {self.path} has schema version {current}, newer than this program's "
                             f"{known}; use the newer program or another store")
        for version in range(current + 1, known + 1):
            migration = MIGRATIONS[version - 1]
            db.execute("BEGIN IMMEDIATE")
            try:
                if self._version() < version:
                    for statement in migration.statements:
                        db.execute(statement)
                    db.execute("INSERT INTO schema_version (version, description, applied) VALUES (?, ?, ?)",
                               (version, migration.description, self._clock()))
                    log.info("store %s: schema version %d (%s)", self.path, version, migration.description)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    @property
    def schema_version(self) -> int:
        """Return the schema version of the file."""
        return self._version()

    def pragma(self, name: str) -> Any:
        """Return the value of a read-only PRAGMA (``journal_mode``, ``synchronous``, ...), for checks."""
        if not name.isidentifier():
            raise ValueError(f"{name!r} is not a PRAGMA name")
        return self._db.execute(f"PRAGMA {name}").fetchone()[0]

    def close(self) -> None:
        """Commit the journal's open transaction and close the file (idempotent).

        The last connection to close checkpoints the log.  Entries that
        still cannot be written are logged as lost.
        """
        if not getattr(self, "_closed", True):
            for call in (self._commit_call, self._retry_call):
                if call is not None and call.active():
                    call.cancel()
            self._commit_call = self._retry_call = None
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - closing must close
                lost = len(self._lost_entries)
                self.dropped += lost
                log.error("store %s: closing with %d journal entries and %d alarm states unwritten: %s",
                          self.path, lost, len(self._lost_states), exc)
            self._closed = True
            self._db.close()

    # ------------------------------------------------------------------
    # Alarm journal (alarms.model.Journal)

    def record(self, entry: JournalEntry) -> None:
        """Append ``entry`` to the journal, setting ``entry.id`` (committed at the end of the reactor turn).

        Raises if the entry could not be inserted (it is then not kept here).
        """
        self._check_open()
        try:
            self._begin()
            entry.id = self._insert(entry)
            if self._reactor is not None:
                self._turn_entries.append(entry)
            else:
                self._commit()
        except BaseException:
            self._failed()
            raise

    def save_state(self, alarm_id: str, state: dict[str, Any]) -> None:
        """Remember an alarm's persistent state (a JSON-able dict), replacing the previous one.

        The state is encoded at once (a dict that is not JSON-able is a
        ``TypeError`` here) and written with the turn's commit.
        """
        text = _encode_state(state)
        self._check_open()
        try:
            self._begin()
            self._turn_states[alarm_id] = (text, self._clock())
            if self._reactor is None:
                self._commit()
        except BaseException:
            self._failed()
            raise

    def delete_state(self, alarm_id: str) -> None:
        """Forget the state of an alarm that is no longer configured."""
        self._settle()
        self._lost_states.pop(alarm_id, None)
        self._db.execute("DELETE FROM alarm_state WHERE alarm_id = ?", _storable((alarm_id,)))

    def query(self, start: float, end: float, limit: int = 100_000, alarm_id: str | None = None,
              event: str | None = None) -> list[JournalEntry]:
        """Return journal entries with ``start <= ts < end`` (of one alarm, one event kind, if given), oldest first."""
        self._settle()
        sql = f"SELECT id, {', '.join(_JOURNAL_COLUMNS)} FROM alarm_journal WHERE ts >= ? AND ts < ?"
        params: list[Any] = [start, end]
        if alarm_id is not None:
            sql += " AND alarm_id = ?"
            params.append(alarm_id)
        if event is not None:
            sql += " AND event = ?"
            params.append(event)
        sql += " ORDER BY ts, id LIMIT ?"
        limit = max(0, int(limit))
        params.append(limit)
        found = [JournalEntry(id=row[0], **dict(zip(_JOURNAL_COLUMNS, row[1:])))
                 for row in self._db.execute(sql, _storable(tuple(params)))]
        unwritten = [replace(e) for e in self._lost_entries
                     if start <= e.ts < end and (alarm_id is None or e.alarm_id == alarm_id)
                     and (event is None or e.event == event)]
        if unwritten:  # a commit failed: what waits in memory is part of the journal too
            found = sorted(found + unwritten, key=lambda e: (e.ts, e.id or 0))[:limit]
        return found

    def load_states(self) -> dict[str, dict[str, Any]]:
        """Return every saved alarm state by alarm id (including those not written yet)."""
        self._settle()
        states = {alarm_id: json.loads(state)
                  for alarm_id, state in self._db.execute("SELECT alarm_id, state FROM alarm_state")}
        for alarm_id, (text, _) in self._lost_states.items():
            states[alarm_id] = json.loads(text)
        return states

    @property
    def unsaved(self) -> int:
        """Return how many journal entries and alarm states are not committed yet (this turn's and failed ones)."""
        return (len(self._turn_entries) + len(self._turn_states) + len(self._lost_entries)
                + len(self._lost_states))

    def flush(self) -> None:
        """Commit the journal's open transaction now, with anything a failed commit left; raise if that fails.

        Does nothing on a closed store.
        """
        if not self._closed and (self._db.in_transaction or self._lost_entries or self._lost_states):
            try:
                self._begin()
                self._commit()
            except BaseException:
                self._failed()
                raise

    # -- the grouped journal transaction

    def _insert(self, entry: JournalEntry, keep_id: bool = False) -> int:
        """Insert one entry (with its old id if ``keep_id`` and that id is still free); return its id."""
        row = _entry_row(entry)
        if keep_id and entry.id is not None:
            try:
                return self._execute(_INSERT_ENTRY_ID, (entry.id, *row))
            except sqlite3.IntegrityError:
                pass  # the id was taken meanwhile: a new one
        return self._execute(_INSERT_ENTRY, row)

    def _execute(self, sql: str, row: tuple) -> int:
        try:
            return self._db.execute(sql, row).lastrowid
        except UnicodeEncodeError:
            return self._db.execute(sql, _storable(row)).lastrowid

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store {self.path} is closed")

    def _select(self, select: str, key_column: str, key: Any, time_column: str, start: float | None,
                end: float | None, limit: int) -> sqlite3.Cursor:
        """Return at most ``limit`` rows of ``select``, in time order, then stored order.

        Only rows with ``key_column = key`` and ``start <= time_column < end``,
        where given (not None).
        """
        sql = select + " WHERE 1"
        params: list[Any] = []
        if key is not None:
            sql += f" AND {key_column} = ?"
            params.append(key)
        if start is not None:
            sql += f" AND {time_column} >= ?"
            params.append(start)
        if end is not None:
            sql += f" AND {time_column} < ?"
            params.append(end)
        sql += f" ORDER BY {time_column}, id LIMIT ?"
        params.append(max(0, int(limit)))
        return self._db.execute(sql, _storable(tuple(params)))

    def _begin(self) -> None:
        """Open the journal transaction (putting back what a failed commit rolled back), and time its commit."""
        db = self._db
        if db.in_transaction:
            return
        if self._turn_entries or self._turn_states:
            self._lose_turn()  # SQLite rolled the transaction back on an error
        db.execute("BEGIN IMMEDIATE")
        if self._lost_entries:
            entries, self._lost_entries = self._lost_entries, []
            self._turn_entries = entries  # back to the lost list if this transaction fails too
            for entry in entries:
                entry.id = self._insert(entry, keep_id=True)
        if self._lost_states:
            self._turn_states.update(self._lost_states)
            self._lost_states = {}
        if self._reactor is not None and self._commit_call is None:
            self._commit_call = self._reactor.callLater(0, self._turn_end)

    def _commit(self) -> None:
        db = self._db
        if self._turn_states:
            rows = [(alarm_id, text, updated) for alarm_id, (text, updated) in self._turn_states.items()]
            try:
                db.executemany(_UPSERT_STATE, rows)
            except UnicodeEncodeError:
                db.executemany(_UPSERT_STATE, [_storable(row) for row in rows])
        db.execute("COMMIT")
        self._turn_entries = []
        self._turn_states = {}
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None

    def _turn_end(self) -> None:
        """The reactor turn that wrote to the journal is over: commit (a failure is kept for later)."""
        self._commit_call = None
        self._settle()

    def _retry_due(self) -> None:
        """Write again what a failed commit left in memory, although no new journal write came."""
        self._retry_call = None
        self._settle()

    def _failed(self) -> None:
        """A journal statement or commit failed: keep what the transaction held, log (rate limited), retry."""
        self.write_errors += 1
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        self._lose_turn()
        now = time.monotonic()
        self._unlogged += 1
        if now - self._log_at >= LOG_EVERY_S:
            self._log_at = now
            log.error("store %s: alarm journal write failed (%d failures since the last report); "
                      "%d entries and %d alarm states wait in memory", self.path, self._unlogged,
                      len(self._lost_entries), len(self._lost_states), exc_info=True)
            self._unlogged = 0
        if self._reactor is not None and (self._lost_entries or self._lost_states) and (
                self._retry_call is None or not self._retry_call.active()):
            self._retry_call = self._reactor.callLater(RETRY_AFTER_S, self._retry_due)

    def _lose_turn(self) -> None:
        """Move the rolled-back transaction's entries and states to the lists written again later."""
        self._lost_entries += self._turn_entries
        self._turn_entries = []
        for alarm_id, saved in self._turn_states.items():
            self._lost_states[alarm_id] = saved
        self._turn_states = {}
        excess = len(self._lost_entries) - MAX_UNSAVED
        if excess > 0:
            del self._lost_entries[:excess]
            self.dropped += excess
            log.error("store %s: %d alarm journal entries dropped: more than %d waited to be written",
                      self.path, excess, MAX_UNSAVED)

    def _settle(self) -> None:
        """Before any other statement: commit the journal's open transaction (a failure waits for later)."""
        if not self._closed and (self._db.in_transaction or self._lost_entries or self._lost_states):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - logged by _failed; the other statement goes on
                pass

    # ------------------------------------------------------------------
    # Manual readings

    def add_manual_readings(self, readings: list[ManualReading]) -> list[ManualReading]:
        """Store hand-read values in one transaction, committed before returning; return them with ids.

        Operators' data is not grouped with the turn's journal writes: the
        caller answers "accepted" only once the rows are on disk.  All or
        none are stored; raises ``sqlite3.Error`` if the write fails.
        """
        self._check_open()
        self._settle()
        now = self._clock()
        db = self._db
        stored: list[ManualReading] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for reading in readings:
                entered = reading.entered if reading.entered is not None else now
                row = (reading.tag, reading.ts, reading.value, entered, reading.user, reading.source,
                       reading.serial, int(bool(reading.replacement)), reading.comment)
                stored.append(replace(reading, entered=entered, id=self._execute(_INSERT_MANUAL, row)))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return stored

    def manual_readings(self, tag: str | None = None, start: float | None = None, end: float | None = None,
                        limit: int = 100_000) -> list[ManualReading]:
        """Return stored manual readings (of one tag; with ``start <= ts < end`` if given), oldest first."""
        return [_manual(row) for row in self._select(_SELECT_MANUAL, "tag", tag, "ts", start, end, limit)]

    def last_manual_before(self, tag: str, ts: float) -> ManualReading | None:
        """Return the latest manual reading of ``tag`` at or before ``ts`` (the last entered of equal times)."""
        row = self._db.execute(_SELECT_MANUAL + " WHERE tag = ? AND ts <= ? ORDER BY ts DESC, id DESC LIMIT 1",
                               _storable((tag, ts))).fetchone()
        return _manual(row) if row else None

    def first_manual_after(self, tag: str, ts: float) -> ManualReading | None:
        """Return the earliest manual reading of ``tag`` strictly after ``ts``."""
        row = self._db.execute(_SELECT_MANUAL + " WHERE tag = ? AND ts > ? ORDER BY ts, id LIMIT 1",
                               _storable((tag, ts))).fetchone()
        return _manual(row) if row else None

    def manual_at(self, tag: str, ts: float) -> list[ManualReading]:
        """Return the manual readings of ``tag`` taken at exactly ``ts``."""
        return [_manual(row) for row in self._db.execute(_SELECT_MANUAL + " WHERE tag = ? AND ts = ? ORDER BY id",
                                                           _storable((tag, ts)))]

    # ------------------------------------------------------------------
    # Users

    def add_user(self, name: str, role: str, password_hash: str) -> User:
        """Create a user; raise :class:`AlreadyExists` if the name is taken."""
        self._settle()
        check_role(role)
        now = self._clock()
        try:
            self._db.execute("INSERT INTO users (name, role, password_hash, created, updated) VALUES (?, ?, ?, ?, ?)",
                             (name, role, password_hash, now, now))
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"user {name!r} already exists") from None
        return User(name, role, now, now, password_hash)

    def user(self, name: str) -> User | None:
        """Return the user called ``name``, or None."""
        row = self._db.execute("SELECT name, role, created, updated, password_hash FROM users WHERE name = ?",
                               (name,)).fetchone()
        return User(*row) if row else None

    def users(self) -> list[User]:
        """Return every user, by name."""
        return [User(*row) for row in self._db.execute(
            "SELECT name, role, created, updated, password_hash FROM users ORDER BY name")]

    def remove_user(self, name: str) -> None:
        """Delete a user and end their sessions; raise :class:`NotFound` if there is none."""
        self._settle()
        # Sessions go with the user (ON DELETE CASCADE).
        if self._db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
            raise NotFound(f"no user {name!r}")

    def set_password(self, name: str, password_hash: str, end_sessions: bool = True) -> None:
        """Replace a user's password hash and (by default) end their sessions; :class:`NotFound` if none."""
        self._settle()
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            changed = db.execute("UPDATE users SET password_hash = ?, updated = ? WHERE name = ?",
                                 (password_hash, self._clock(), name)).rowcount
            if changed and end_sessions:
                db.execute("DELETE FROM sessions WHERE user = ?", (name,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if not changed:
            raise NotFound(f"no user {name!r}")

    def set_role(self, name: str, role: str) -> None:
        """Change a user's role (open sessions take it at their next request); :class:`NotFound` if none."""
        self._settle()
        check_role(role)
        if self._db.execute("UPDATE users SET role = ?, updated = ? WHERE name = ?",
                            (role, self._clock(), name)).rowcount == 0:
            raise NotFound(f"no user {name!r}")

    # ------------------------------------------------------------------
    # API tokens

    def add_token(self, name: str, role: str, token_hash: str, expires: float | None = None) -> Token:
        """Record a new API token by the hash of its secret; :class:`AlreadyExists` if the name is taken."""
        self._settle()
        check_role(role)
        now = self._clock()
        try:
            self._db.execute("INSERT INTO tokens (name, role, hash, created, expires) VALUES (?, ?, ?, ?, ?)",
                             (name, role, token_hash, now, expires))
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"token {name!r} already exists") from None
        return Token(name, role, now, expires, None)

    def tokens(self) -> list[Token]:
        """Return every API token (no secrets), by name."""
        return [Token(*row) for row in self._db.execute(
            "SELECT name, role, created, expires, last_used FROM tokens ORDER BY name")]

    def revoke_token(self, name: str) -> None:
        """Delete an API token; raise :class:`NotFound` if there is none."""
        self._settle()
        if self._db.execute("DELETE FROM tokens WHERE name = ?", (name,)).rowcount == 0:
            raise NotFound(f"no token {name!r}")

    def token_by_hash(self, token_hash: str) -> Token | None:
        """Return the API token with this hash (expired or not), noting that it was used; None if unknown."""
        self._settle()
        row = self._db.execute("SELECT name, role, created, expires, last_used FROM tokens WHERE hash = ?",
                               (token_hash,)).fetchone()
        if row is None:
            return None
        token = Token(*row)
        now = self._clock()
        if not token.expired(now) and (token.last_used is None or now - token.last_used >= LAST_USED_RESOLUTION_S):
            self._db.execute("UPDATE tokens SET last_used = ? WHERE hash = ?", (now, token_hash))
        return token

    # ------------------------------------------------------------------
    # Login sessions

    def create_session(self, user: str, token_hash: str, ttl: float) -> Session:
        """Open a session for ``user`` lasting ``ttl`` seconds; drop expired ones.

        Raises :class:`NotFound` if the user does not exist (any more).
        """
        self._settle()
        now = self._clock()
        row = self._db.execute("SELECT role FROM users WHERE name = ?", (user,)).fetchone()
        if row is None:
            raise NotFound(f"no user {user!r}")
        self.purge_sessions()
        try:
            self._db.execute("INSERT INTO sessions (hash, user, created, expires) VALUES (?, ?, ?, ?)",
                             (token_hash, user, now, now + ttl))
        except sqlite3.IntegrityError:
            # The user was removed between the two statements.
            raise NotFound(f"no user {user!r}") from None
        return Session(user, row[0], now, now + ttl)

    def session_by_hash(self, token_hash: str) -> Session | None:
        """Return the session with this hash and its user's current role (expired or not); None if unknown."""
        row = self._db.execute(
            "SELECT s.user, u.role, s.created, s.expires FROM sessions s JOIN users u ON u.name = s.user "
            "WHERE s.hash = ?", (token_hash,)).fetchone()
        return Session(*row) if row else None

    def renew_session(self, token_hash: str, ttl: float) -> float | None:
        """Move an unexpired session's end to now + ``ttl``; return the new end, None if none or expired.

        An expired session stays expired: a sliding session is an idle
        timeout, not a way back in.
        """
        self._settle()
        now = self._clock()
        expires = now + ttl
        changed = self._db.execute("UPDATE sessions SET expires = ? WHERE hash = ? AND expires > ?",
                                   (expires, token_hash, now)).rowcount
        return expires if changed else None

    def delete_session(self, token_hash: str) -> bool:
        """End a session; return False if there was none."""
        self._settle()
        return self._db.execute("DELETE FROM sessions WHERE hash = ?", (token_hash,)).rowcount > 0

    def purge_sessions(self) -> int:
        """Delete expired sessions; return how many."""
        self._settle()
        return self._db.execute("DELETE FROM sessions WHERE expires <= ?", (self._clock(),)).rowcount

    def sessions(self, user: str | None = None) -> list[Session]:
        """Return open sessions (of one user, if given), oldest first; expired ones included until purged."""
        sql = ("SELECT s.user, u.role, s.created, s.expires FROM sessions s JOIN users u ON u.name = s.user")
        params: tuple = ()
        if user is not None:
            sql += " WHERE s.user = ?"
            params = (user,)
        return [Session(*row) for row in self._db.execute(sql + " ORDER BY s.created", params)]

    def count_credentials(self) -> int:
        """Return how many users and unexpired API tokens could authenticate."""
        now = self._clock()
        users = self._db.execute("SELECT COUNT(*) FROM users").fetchone()[0]
        tokens = self._db.execute("SELECT COUNT(*) FROM tokens WHERE expires IS NULL OR expires > ?",
                                  (now,)).fetchone()[0]
        return users + tokens
