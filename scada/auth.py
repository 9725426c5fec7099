# -*- test-case-name: tests.scada.test_auth -*-
"""Roles, password hashing, API and session tokens, the login throttle.

Nothing here does I/O or knows about Sanic: the operational store
(:mod:`scada.store`) keeps what this module produces, the API
(:mod:`scada.api.auth`) and the ``scada user`` / ``scada token`` commands
(:mod:`scada.cli_users`) use it.

Roles (who does what on a metering site):

``viewer``
    wall screens: reads tags, history, devices, channels, alarms.
``operator``
    dispatcher: what a viewer does, plus acknowledging, shelving and
    commenting alarms, and entering manual (hand-read) meter readings.
``crew``
    maintenance crew, often on a phone: reads, acknowledges, shelves and
    comments alarms.
``engineer``
    configuration and commissioning: what an operator does, plus taking
    alarms out of service and simulator control.
``billing``
    a billing system or its people: reads tags, history and devices; no
    alarms.
``admin``
    everything.

Passwords are hashed with argon2id (memory-hard); a hash made with other
parameters than the current ones is replaced at the next successful login.
API and session tokens are 32 random bytes; only their SHA-256 is stored,
which is enough for secrets with that much entropy (there is nothing to
brute-force), and lets a request be checked with one indexed look-up.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

#: Every role, from the least to the most powerful.
ROLES = ("viewer", "operator", "crew", "engineer", "billing", "integration", "admin")

# Named role sets for the API's ``@roles(...)`` declarations.  They are
# tuples so that both ``@roles(READ)`` and ``@roles(*READ)`` work.  ``admin``
# may do everything, so every set holds it.

#: Anyone who may log in at all (``/me``, ``/logout``).
ANYONE = ROLES
#: Metering data: tags, history, devices, archive gaps.  Billing reads these.
DATA = ("viewer", "operator", "crew", "engineer", "billing", "admin")
#: Operations views: alarms and their journal, the live feed, channel statistics.  Not billing.
READ = ("viewer", "operator", "crew", "engineer", "admin")
#: Alarm actions: acknowledge, shelve, unshelve, comment.
ACT = ("operator", "crew", "engineer", "admin")
#: Engineering: out of service, simulator control.
ENGINEERING = ("engineer", "admin")
#: Entering hand-read meter values: dispatchers take them by phone, engineers on site.
MANUAL = ("operator", "engineer", "admin")
#: Machines that push meter readings: a ChirpStack HTTP integration, NB-IoT platforms.  Nothing else.
INTEGRATION = ("integration", "admin")
#: Administration only.
ADMIN = ("admin",)
#: No credentials needed (``/health``, ``/login``).  Never combined with roles.
PUBLIC = ("public",)

#: The demo's users (``api.demo_users``), by name: their roles.  All have :data:`DEMO_PASSWORD`.
DEMO_USERS = {"dispatcher": "operator", "crew": "crew", "viewer": "viewer", "engineer": "engineer",
              "admin": "admin"}
DEMO_PASSWORD = "demo1234"

#: Shortest password accepted.
MIN_PASSWORD = 8
#: Longest password accepted: argon2 takes any length, but a login body
#: should not make the server hash megabytes.
MAX_PASSWORD = 1024

#: Prefixes that tell an API token from a login session token at a glance
#: (and let secret scanners recognise both).
API_TOKEN_PREFIX = "sct_"
SESSION_TOKEN_PREFIX = "scs_"

#: User names that mean something else in the alarm journal and the API.
RESERVED_NAMES = frozenset({"system", "anonymous", "auto"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def check_role(role: str) -> str:
    """Return ``role`` if it is a role; raise ValueError naming the valid ones otherwise."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; valid roles: {', '.join(ROLES)}")
    return role


def check_name(name: str, what: str = "user") -> str:
    """Return ``name`` if it can name a user or a token; raise ValueError saying why not.

    Names are 1-64 characters of letters, digits and ``. _ @ -``, starting
    with a letter or digit; no ``:`` because API tokens act under the name
    ``token:<name>``.
    """
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid {what} name: use 1-64 letters, digits, '.', '_', '@' or '-', "
                         "starting with a letter or digit")
    if name.lower() in RESERVED_NAMES:
        raise ValueError(f"{name!r} is reserved; choose another {what} name")
    return name


def check_password(password: str) -> str:
    """Return ``password`` if it is long enough (and not absurdly long); raise ValueError otherwise."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"the password is too short: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ValueError(f"the password is too long: at most {MAX_PASSWORD} characters")
    return password


# --------------------------------------------------------------------------
# Passwords

#: The argon2id parameters in use (argon2-cffi's defaults, RFC 9106's
#: "second recommended option": t=3, 64 MiB, p=4).  Tests put a cheaper
#: hasher here; a hash made with other parameters is upgraded on login.
PASSWORD_HASHER = PasswordHasher()

_dummy: dict[tuple, str] = {}


def hash_password(password: str, hasher: PasswordHasher | None = None) -> str:
    """Return the argon2id hash (PHC string, salt included) of ``password``."""
    return (hasher or PASSWORD_HASHER).hash(password)


def verify_password(stored: str | None, password: str, hasher: PasswordHasher | None = None
                    ) -> tuple[bool, str | None]:
    """Check ``password`` against the ``stored`` hash.

    Returns ``(ok, new_hash)``; ``new_hash`` is set when the password was
    right but the hash was made with other parameters than the current
    ones, and should replace the stored one.  ``stored=None`` (no such
    user) costs the same time as a wrong password and returns
    ``(False, None)``, so response times do not tell which user names exist.
    """
    hasher = hasher or PASSWORD_HASHER
    if stored is None:
        key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism)
        if key not in _dummy:
            _dummy[key] = hasher.hash(secrets.token_hex(16))
        stored = _dummy[key]  # a random secret: no password matches it
    try:
        hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False, None
    if hasher.check_needs_rehash(stored):
        return True, hasher.hash(password)
    return True, None


# --------------------------------------------------------------------------
# Tokens


def new_api_token() -> str:
    """Return a new API token: a prefix and 32 random bytes, URL-safe."""
    return API_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_session_token() -> str:
    """Return a new login session token."""
    return SESSION_TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Return what the store keeps of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: ``request.ctx.user`` in API handlers.

    ``name`` is what the alarm journal records: the user's name for a login
    session, ``token:<token name>`` for an API token, ``anonymous`` when
    authentication is off.  ``token`` is the API token's name (``None`` for
    sessions); ``via`` is ``session``, ``token`` or ``anonymous``.
    """

    name: str
    role: str
    token: str | None = None
    via: str = "session"

    def to_json(self) -> dict:
        """Return the principal as ``GET /api/v1/me`` shows it."""
        return {"user": self.name, "role": self.role, "token": self.token, "via": self.via}


#: Everyone, when ``api.auth`` is off.
ANONYMOUS = Principal("anonymous", "admin", None, "anonymous")


# --------------------------------------------------------------------------
# Login throttle

#: Seconds a login is told to wait while as many attempts for its name are
#: being checked as could lock it out (they take well under a second).
IN_FLIGHT_RETRY = 1.0


class LoginThrottle:
    """Refuse logins for a user name after repeated failures.

    After ``max_failures`` failures within ``window`` seconds, further
    attempts for that name are refused for ``lockout`` seconds, right
    password or not.  Names that do not exist are counted the same way, so
    the answers do not reveal which names do.  ``clock`` returns Unix
    seconds (the runtime reactor's ``seconds``).  Memory stays bounded: at
    most ``max_names`` names are tracked, stale ones are dropped first.

    A login checks a password for a while (argon2, maybe after queueing
    for a worker), so attempts sent at once would all pass a lockout check
    made before the first of them failed.  :meth:`begin` therefore counts
    an attempt as in flight until :meth:`end`, and counts attempts in
    flight as failures to be: a burst gets no more guesses than a sequence
    of attempts does.
    """

    def __init__(self, clock: Callable[[], float], max_failures: int = 5, window: float = 300.0,
                 lockout: float = 300.0, max_names: int = 10_000) -> None:
        self._clock = clock
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self.max_names = max_names
        self._failures: dict[str, list[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._in_flight: dict[str, int] = {}

    def retry_after(self, name: str) -> float:
        """Return the seconds ``name`` stays locked out, 0 if it may try now."""
        until = self._locked_until.get(name)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left > 0:
            return left
        del self._locked_until[name]
        return 0.0

    def begin(self, name: str) -> float:
        """Start a login attempt for ``name``: return 0 and count it in flight, or the seconds to wait.

        Refused (a wait > 0) while ``name`` is locked out, and while its
        recent failures and the attempts in flight together reach
        ``max_failures`` (then the wait is :data:`IN_FLIGHT_RETRY`: those
        attempts end soon).  Every ``begin`` that returned 0 must be
        followed by one :meth:`end`.
        """
        wait = self.retry_after(name)
        if wait > 0:
            return wait
        now = self._clock()
        recent = sum(1 for t in self._failures.get(name, ()) if now - t < self.window)
        in_flight = self._in_flight.get(name, 0)
        if recent + in_flight >= self.max_failures:
            return IN_FLIGHT_RETRY
        self._in_flight[name] = in_flight + 1
        return 0.0

    def end(self, name: str, ok: bool | None) -> None:
        """End an attempt :meth:`begin` let go: ``ok`` True succeeded, False failed, None was not decided.

        A failure counts (and may lock ``name`` out); a success forgets the
        failures; None (the store was down, the attempt was refused for a
        lockout that began meanwhile) counts neither way.
        """
        left = self._in_flight.get(name, 0) - 1
        if left > 0:
            self._in_flight[name] = left
        else:
            self._in_flight.pop(name, None)
        if ok is True:
            self.succeeded(name)
        elif ok is False:
            self.failed(name)

    def in_flight(self, name: str) -> int:
        """Return how many attempts for ``name`` have begun and not ended."""
        return self._in_flight.get(name, 0)

    def failed(self, name: str) -> bool:
        """Count a failed login for ``name``; return True if that locked it out."""
        now = self._clock()
        recent = [t for t in self._failures.get(name, ()) if now - t < self.window]
        recent.append(now)
        if len(recent) >= self.max_failures:
            self._failures.pop(name, None)
            self._locked_until[name] = now + self.lockout
            return True
        self._failures[name] = recent
        if len(self._failures) + len(self._locked_until) > self.max_names:
            self._prune(now)
        return False

    def succeeded(self, name: str) -> None:
        """Forget the failures of ``name`` after a successful login."""
        self._failures.pop(name, None)

    def _prune(self, now: float) -> None:
        for key in [k for k, times in self._failures.items() if now - times[-1] >= self.window]:
            del self._failures[key]
        for key in [k for k, until in self._locked_until.items() if until <= now]:
            del self._locked_until[key]
        # Still too many (a spray of fresh names): drop the oldest half.
        if len(self._failures) > self.max_names:
            oldest = sorted(self._failures, key=lambda k: self._failures[k][-1])
            for key in oldest[: len(oldest) // 2]:
                del self._failures[key]
