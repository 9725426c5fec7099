# -*- test-case-name: tests.scada.test_store -*-
"""The operational store: one SQLite file in WAL mode.

It holds what the site decides, as opposed to what the meters measure (that
is the historian's): the alarm journal and the alarms' persistent state,
users, API tokens and login sessions; later issues add manual readings and
the device registry's lifecycle (see :mod:`scada.store.schema`).

WAL lets the ``scada user`` / ``scada token`` commands write while the
server reads and writes the same file; ``synchronous=NORMAL`` makes each
commit an append to the log without an fsync (a power cut may lose the
last commits, never corrupt the file); a busy timeout makes a writer wait
for the other's short transaction instead of failing at once.

Every statement outside the migrations is its own transaction (the
connection is in autocommit mode), so the store never holds a write lock
between calls.  Secrets are never stored: passwords as argon2id hashes,
tokens as SHA-256 (see :mod:`scada.auth`).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from alarms.model import JournalEntry
from scada.auth import check_role
from scada.store.schema import MIGRATIONS

log = logging.getLogger(__name__)

#: How long a writer waits for another connection's lock before giving up.
BUSY_TIMEOUT_S = 5.0
#: A token's ``last_used`` is written at most this often (a request per second
#: must not become a write per second).
LAST_USED_RESOLUTION_S = 60.0

_JOURNAL_COLUMNS = ("ts", "alarm_id", "event", "user", "comment", "state_from", "state_to", "rule", "tag",
                    "priority", "value", "message")


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


def _create_private(path: Path) -> None:
    """Create ``path`` readable by its owner only: it holds password hashes.

    SQLite gives its ``-wal`` and ``-shm`` files the main file's mode.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


class OpsStore:
    """The operational store at ``path`` (created with its folder if missing).

    Implements the alarm :class:`~alarms.model.Journal` protocol, and keeps
    users, API tokens and sessions.  ``clock`` returns Unix seconds (the
    runtime's ``reactor.seconds``; ``time.time`` for the command line); it
    stamps records and decides what has expired.  Raises
    :class:`StoreError` if the file cannot be opened, is not a store, or
    was written by a newer version of this program.
    """

    def __init__(self, path: str | os.PathLike, clock: Callable[[], float] | None = None,
                 busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path)
        self._clock = clock or time.time
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
        """Close the file (idempotent); the last connection to close checkpoints the log."""
        if not getattr(self, "_closed", True):
            self._closed = True
            self._db.close()

    # ------------------------------------------------------------------
    # Alarm journal (alarms.model.Journal)

    def record(self, entry: JournalEntry) -> None:
        """Append ``entry`` to the journal, setting ``entry.id``."""
        cursor = self._db.execute(
            f"INSERT INTO alarm_journal ({', '.join(_JOURNAL_COLUMNS)}) VALUES ({', '.join('?' * 12)})",
            tuple(getattr(entry, column) for column in _JOURNAL_COLUMNS))
        entry.id = cursor.lastrowid

    def query(self, start: float, end: float, limit: int = 100_000, alarm_id: str | None = None
              ) -> list[JournalEntry]:
        """Return journal entries with ``start <= ts < end`` (of one alarm, if given), oldest first."""
        sql = f"SELECT id, {', '.join(_JOURNAL_COLUMNS)} FROM alarm_journal WHERE ts >= ? AND ts < ?"
        params: list[Any] = [start, end]
        if alarm_id is not None:
            sql += " AND alarm_id = ?"
            params.append(alarm_id)
        sql += " ORDER BY ts, id LIMIT ?"
        params.append(max(0, int(limit)))
        return [JournalEntry(id=row[0], **dict(zip(_JOURNAL_COLUMNS, row[1:])))
                for row in self._db.execute(sql, params)]

    def save_state(self, alarm_id: str, state: dict[str, Any]) -> None:
        """Remember an alarm's persistent state (a JSON-able dict), replacing the previous one."""
        self._db.execute(
            "INSERT INTO alarm_state (alarm_id, state, updated) VALUES (?, ?, ?) "
            "ON CONFLICT(alarm_id) DO UPDATE SET state = excluded.state, updated = excluded.updated",
            (alarm_id, json.dumps(state, sort_keys=True), self._clock()))

    def load_states(self) -> dict[str, dict[str, Any]]:
        """Return every saved alarm state by alarm id."""
        return {alarm_id: json.loads(state)
                for alarm_id, state in self._db.execute("SELECT alarm_id, state FROM alarm_state")}

    def delete_state(self, alarm_id: str) -> None:
        """Forget the state of an alarm that is no longer configured."""
        self._db.execute("DELETE FROM alarm_state WHERE alarm_id = ?", (alarm_id,))

    # ------------------------------------------------------------------
    # Users

    def add_user(self, name: str, role: str, password_hash: str) -> User:
        """Create a user; raise :class:`AlreadyExists` if the name is taken."""
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
        # Sessions go with the user (ON DELETE CASCADE).
        if self._db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
            raise NotFound(f"no user {name!r}")

    def set_password(self, name: str, password_hash: str, end_sessions: bool = True) -> None:
        """Replace a user's password hash and (by default) end their sessions; :class:`NotFound` if none."""
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
        check_role(role)
        if self._db.execute("UPDATE users SET role = ?, updated = ? WHERE name = ?",
                            (role, self._clock(), name)).rowcount == 0:
            raise NotFound(f"no user {name!r}")

    # ------------------------------------------------------------------
    # API tokens

    def add_token(self, name: str, role: str, token_hash: str, expires: float | None = None) -> Token:
        """Record a new API token by the hash of its secret; :class:`AlreadyExists` if the name is taken."""
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
        if self._db.execute("DELETE FROM tokens WHERE name = ?", (name,)).rowcount == 0:
            raise NotFound(f"no token {name!r}")

    def token_by_hash(self, token_hash: str) -> Token | None:
        """Return the API token with this hash (expired or not), noting that it was used; None if unknown."""
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

    def delete_session(self, token_hash: str) -> bool:
        """End a session; return False if there was none."""
        return self._db.execute("DELETE FROM sessions WHERE hash = ?", (token_hash,)).rowcount > 0

    def purge_sessions(self) -> int:
        """Delete expired sessions; return how many."""
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
