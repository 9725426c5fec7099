"""scada/auth.py: names, roles, argon2id passwords, tokens, the login throttle; the @roles declaration."""

from __future__ import annotations

import hashlib

import pytest
from argon2 import PasswordHasher

from scada import auth
from scada.api import auth as api_auth

#: Cheap argon2id parameters: the code paths are the same, the tests stay fast.
FAST = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
OTHER = PasswordHasher(time_cost=2, memory_cost=128, parallelism=1)
#: What the program uses, read before any test swaps it.
SHIPPED = auth.PASSWORD_HASHER


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch):
    monkeypatch.setattr(auth, "PASSWORD_HASHER", FAST)


def test_password_hash_and_verify():
    """argon2id hashes are salted; the right password verifies, a wrong one does not."""
    first, second = auth.hash_password("correct horse"), auth.hash_password("correct horse")
    assert first.startswith("$argon2id$") and first != second
    assert auth.verify_password(first, "correct horse") == (True, None)
    assert auth.verify_password(first, "correct horsE") == (False, None)
    assert auth.verify_password("not a hash", "correct horse") == (False, None)


def test_unknown_user_costs_a_verification_and_fails():
    """No stored hash (no such user) is a plain failure, computed like a wrong password."""
    assert auth.verify_password(None, "whatever password") == (False, None)
    assert auth.verify_password(None, "") == (False, None)


def test_rehash_when_parameters_change():
    """A right password checked against a hash with other parameters comes back with a new hash."""
    old = auth.hash_password("correct horse", OTHER)
    ok, new = auth.verify_password(old, "correct horse")
    assert ok and new is not None and new != old and "m=64,t=1,p=1" in new
    assert auth.verify_password(new, "correct horse") == (True, None)
    assert auth.verify_password(old, "wrong one!") == (False, None)


def test_default_parameters_are_memory_hard():
    """The shipped hasher is argon2id with at least 64 MiB (tests swap it for a cheap one)."""
    fresh = SHIPPED
    assert fresh.memory_cost >= 65536 and fresh.time_cost >= 2 and fresh.type.name == "ID"


def test_tokens_are_random_prefixed_and_stored_as_sha256():
    """API and session tokens differ by prefix, carry 256 random bits, and hash to SHA-256 hex."""
    tokens = {auth.new_api_token() for _ in range(100)}
    assert len(tokens) == 100 and all(t.startswith("sct_") and len(t) >= 4 + 43 for t in tokens)
    session = auth.new_session_token()
    assert session.startswith("scs_")
    assert auth.token_hash(session) == hashlib.sha256(session.encode()).hexdigest()
    assert auth.token_hash("\udcff") == hashlib.sha256(b"\xed\xb3\xbf").hexdigest()  # odd input, no crash


@pytest.mark.parametrize("name", ["alice", "ivan.petrov", "b1-crew_2", "ops@uk.example", "A" * 64])
def test_good_names(name):
    """Letters, digits and . _ @ - are fine."""
    assert auth.check_name(name) == name


@pytest.mark.parametrize("name, message", [
    ("", "not a valid user name"), ("with space", "not a valid"), ("token:x", "not a valid"), ("-dash", "not a"),
    ("A" * 65, "not a valid"), ("system", "reserved"), ("Anonymous", "reserved"), ("иван", "not a valid"),
])
def test_bad_names(name, message):
    """Names that could be confused in the journal, or are awkward on a command line, are refused."""
    with pytest.raises(ValueError, match=message):
        auth.check_name(name)


def test_roles_and_passwords_are_checked():
    """Unknown roles name the valid ones; passwords must be 8..1024 characters."""
    with pytest.raises(ValueError, match="unknown role 'boss'; valid roles: viewer, operator, crew, engineer, "
                                         "billing, integration, admin"):
        auth.check_role("boss")
    assert auth.check_password("12345678") == "12345678"
    with pytest.raises(ValueError, match="at least 8"):
        auth.check_password("1234567")
    with pytest.raises(ValueError, match="at most 1024"):
        auth.check_password("x" * 1025)


def test_role_sets():
    """The named sets say what the roles mean; admin is in every one."""
    assert set(auth.DATA) == set(auth.ROLES) - {"integration"}
    assert set(auth.READ) == set(auth.ROLES) - {"billing", "integration"}
    assert set(auth.INTEGRATION) == {"integration", "admin"}
    assert set(auth.ACT) == {"operator", "crew", "engineer", "admin"}
    assert set(auth.ENGINEERING) == {"engineer", "admin"}
    for group in (auth.DATA, auth.READ, auth.ACT, auth.ENGINEERING, auth.ADMIN, auth.ANYONE):
        assert "admin" in group


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_locks_after_five_failures_in_five_minutes():
    """Five failures within the window lock the name for five minutes; then it may try again."""
    clock = Ticker()
    throttle = auth.LoginThrottle(clock)
    for _ in range(4):
        assert not throttle.failed("ivan")
        clock.now += 10
    assert throttle.retry_after("ivan") == 0
    assert throttle.failed("ivan")
    assert throttle.retry_after("ivan") == 300
    assert throttle.retry_after("petr") == 0  # per name
    clock.now += 299
    assert throttle.retry_after("ivan") == pytest.approx(1)
    clock.now += 1
    assert throttle.retry_after("ivan") == 0
    assert not throttle.failed("ivan")  # counting starts afresh


def test_throttle_window_slides_and_success_resets():
    """Failures older than the window do not count; a successful login forgets the failures."""
    clock = Ticker()
    throttle = auth.LoginThrottle(clock)
    for _ in range(4):
        throttle.failed("ivan")
    clock.now += 300
    assert not throttle.failed("ivan")  # the four are out of the window
    for _ in range(3):
        throttle.failed("ivan")
    throttle.succeeded("ivan")
    for _ in range(4):
        assert not throttle.failed("ivan")


def test_throttle_counts_attempts_in_flight():
    """Attempts being checked count as failures to be: no more begin at once than could lock the name."""
    clock = Ticker()
    throttle = auth.LoginThrottle(clock)
    throttle.failed("ivan")
    for _ in range(4):
        assert throttle.begin("ivan") == 0
    assert throttle.in_flight("ivan") == 4
    assert throttle.begin("ivan") == auth.IN_FLIGHT_RETRY  # 1 failure + 4 in flight could lock it
    assert throttle.begin("petr") == 0  # per name
    throttle.end("ivan", None)  # undecided (the store was down): counts neither way
    assert throttle.begin("ivan") == 0
    for _ in range(3):
        throttle.end("ivan", False)
    assert throttle.retry_after("ivan") == 0 and throttle.in_flight("ivan") == 1
    throttle.end("ivan", False)  # the fifth failure
    assert throttle.retry_after("ivan") == 300 and throttle.in_flight("ivan") == 0
    assert throttle.begin("ivan") == 300  # locked: the lockout's own wait


def test_throttle_success_in_flight_forgets_failures():
    clock = Ticker()
    throttle = auth.LoginThrottle(clock)
    for _ in range(4):
        throttle.failed("ivan")
    assert throttle.begin("ivan") == 0 and throttle.begin("ivan") == auth.IN_FLIGHT_RETRY
    throttle.end("ivan", True)
    assert throttle.in_flight("ivan") == 0 and not throttle._in_flight
    for _ in range(5):
        assert throttle.begin("ivan") == 0


def test_throttle_memory_is_bounded():
    """A spray of fresh names keeps at most max_names entries."""
    clock = Ticker()
    throttle = auth.LoginThrottle(clock, max_names=100)
    for i in range(1000):
        throttle.failed(f"user{i}")
    assert len(throttle._failures) + len(throttle._locked_until) <= 101


def test_roles_decorator_declares_and_always_admits_admin():
    """@roles accepts names and sets, starred or not, adds admin, and refuses nonsense at import time."""

    @api_auth.roles(api_auth.READ)
    async def a(request):
        """Handler."""

    @api_auth.roles(*api_auth.ACT)
    async def b(request):
        """Handler."""

    @api_auth.roles("billing")
    async def c(request):
        """Handler."""

    @api_auth.roles(api_auth.PUBLIC)
    async def d(request):
        """Handler."""

    assert getattr(a, api_auth.ATTR) == frozenset(auth.READ)
    assert getattr(b, api_auth.ATTR) == frozenset(auth.ACT)
    assert getattr(c, api_auth.ATTR) == {"billing", "admin"}
    assert getattr(d, api_auth.ATTR) == frozenset(auth.PUBLIC)
    with pytest.raises(ValueError, match="unknown role 'operater'"):
        api_auth.roles("operater")
    with pytest.raises(ValueError, match="PUBLIC cannot be combined"):
        api_auth.roles(api_auth.PUBLIC, "viewer")
    with pytest.raises(ValueError, match="at least one"):
        api_auth.roles()
    with pytest.raises(TypeError, match="role names"):
        api_auth.roles(a)  # @roles without parentheses
