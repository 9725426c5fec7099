# -*- test-case-name: tests.scada.test_api_roles -*-
"""API authentication and authorisation: ``@roles``, the request check, login, logout, ``/me``.

Every route declares who may call it, with the decorator under the route's::

    @bp.post("/<alarm_id:str>/ack")
    @roles(ACT)                 # or @roles(*ACT), or @roles("operator", "crew")
    async def ack(request, alarm_id): ...

Named sets (:mod:`scada.auth`): ``PUBLIC`` (no credentials), ``DATA``
(metering data: every human role, billing included), ``READ`` (operations
views: alarms, journal, live feed, channels; every human role but billing),
``ACT`` (alarm actions: operator, crew, engineer), ``ENGINEERING`` (out of
service, simulator: engineer), ``MANUAL`` (hand readings: operator,
engineer), ``INTEGRATION`` (uplinks pushed by ChirpStack or NB-IoT
platforms: the ``integration`` role only), ``ADMIN``, ``ANYONE``.  ``admin``
may always call a route that is not public.  :func:`check_routes` refuses
an app with a route that declares nothing, so an endpoint cannot be
forgotten; :func:`install` runs it again when the server starts.

One request middleware does the checking, before the handler and, for a
WebSocket, before the handshake.  Credentials, first found wins:
``Authorization: Bearer <token>`` (an API token or a session token), a
``?token=`` query parameter on WebSocket routes only (browsers cannot set
headers on a WebSocket, and tokens in URLs of ordinary requests end up in
logs), the session cookie set by ``POST /api/v1/login``.  No or bad
credentials: 401 with ``WWW-Authenticate: Bearer``; a role not declared:
403 naming the role.  Handlers find the caller in ``request.ctx.user``
(a :class:`scada.auth.Principal`; ``None`` on public routes).

A browser sends the session cookie with a WebSocket handshake whatever page
opened it, so a handshake authenticated by the cookie alone must come from
a page of this server: an ``Origin`` naming another host or port is a 403.
A WebSocket outlives its handshake; :func:`recheck` tells a long-lived
connection whether the credential it was let in with still holds
(logout, ``scada token revoke``, expiry, a role change).

Login sessions slide: ``api.session_ttl`` is an idle timeout.  A request
let in by a session with less than half of ``session_ttl`` left moves its
end to now + ``session_ttl`` in the store (one write per half-life, not one
per request), and a request that came with the cookie gets it again with
the new ``Max-Age``.  An expired session stays expired; API tokens keep the
end they were created with.  A WebSocket's :func:`recheck` reads the store,
so it sees the new end; an open HMI calls ``GET /api/v1/me`` every few
minutes to keep its session alive while it only listens on the WebSocket.

With ``api.auth: false`` everyone is ``anonymous`` with role admin.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
from urllib.parse import urlsplit

from sanic import Blueprint
from sanic.response import json

from scada.auth import (
    ACT,
    ADMIN,
    ANONYMOUS,
    ANYONE,
    API_TOKEN_PREFIX,
    DATA,
    ENGINEERING,
    MAX_PASSWORD,
    PUBLIC,
    READ,
    ROLES,
    SESSION_TOKEN_PREFIX,
    LoginThrottle,
    Principal,
    check_role,
    new_session_token,
    token_hash,
    verify_password,
)
from scada.api.common import check_text, error, json_body
from scada.api.openapi import doc, handler_attr
from scada.store import NotFound
from tags.timefmt import iso_utc

__all__ = ["ACT", "ADMIN", "ANYONE", "COOKIE", "DATA", "ENGINEERING", "PUBLIC", "READ", "ROLES",
           "UndeclaredRoutes", "check_routes", "declared_roles", "install", "recheck", "roles"]

log = logging.getLogger(__name__)
bp = Blueprint("api_v1_auth", url_prefix="/api/v1")

#: The session cookie's name.
COOKIE = "scada_session"
#: Where a handler's declaration is kept.
ATTR = "_scada_roles"
#: Password hashes computed at once at most (each takes 64 MiB and ~0.1 s),
#: so a burst of logins queues instead of exhausting memory.
KDF_SLOTS = 2
_PUBLIC = frozenset(PUBLIC)
_CHALLENGE = 'Bearer realm="scada"'
_CHALLENGE_INVALID = 'Bearer realm="scada", error="invalid_token"'


class UndeclaredRoutes(RuntimeError):
    """The app has routes without a ``@roles`` declaration."""


def _declaration(allowed) -> frozenset[str]:
    names: list[str] = []
    for item in allowed:
        if isinstance(item, str):
            names.append(item)
        elif callable(item):
            raise TypeError("use @roles(...) with role names or role sets, e.g. @roles(READ)")
        else:
            names.extend(item)
    if not names:
        raise ValueError("@roles() needs at least one role, or PUBLIC")
    if _PUBLIC & set(names):
        if set(names) != _PUBLIC:
            raise ValueError("PUBLIC cannot be combined with roles")
        return _PUBLIC
    for name in names:
        check_role(name)
    return frozenset(names) | {"admin"}


def roles(*allowed):
    """Declare which roles may call a route: role names and/or role sets, or ``PUBLIC``.

    Put it under the route decorator.  ``admin`` is always added; an unknown
    role name raises ValueError when the module is imported.
    """
    declared = _declaration(allowed)

    def decorate(handler):
        setattr(handler, ATTR, declared)
        return handler

    return decorate


def declared_roles(route) -> frozenset[str] | None:
    """Return the roles a Sanic route declares (``frozenset(PUBLIC)`` for public ones), None if none.

    Looks at the handler (through the partial Sanic wraps WebSocket
    handlers in, and ``__wrapped__``), then at ``route.ctx.roles`` (given as
    ``ctx_roles=`` to the route, for routes without a handler of our own
    such as static files).
    """
    found = handler_attr(route.handler, ATTR)
    if found is not None:
        return found
    ctx_roles = getattr(route.ctx, "roles", None)
    if ctx_roles is not None:
        return _declaration((ctx_roles,))
    return None


def check_routes(app) -> None:
    """Raise :class:`UndeclaredRoutes` listing every route of ``app`` without a role declaration."""
    missing = sorted(f"{'/'.join(sorted(route.methods))} /{route.path} ({route.name})"
                     for route in app.router.routes if declared_roles(route) is None)
    if missing:
        raise UndeclaredRoutes("API routes without a role declaration (add @roles(...) under the route): "
                               + "; ".join(missing))


def install(app) -> None:
    """Add the authentication middleware and the login/logout/me routes to ``app``; warn about the setup.

    ``app.ctx.runtime`` must be set.  Call :func:`check_routes` once every
    blueprint is registered.
    """
    runtime = app.ctx.runtime
    app.ctx.login_throttle = LoginThrottle(runtime.reactor.seconds)
    app.ctx.kdf_slots = asyncio.Semaphore(KDF_SLOTS)
    app.blueprint(bp)
    app.on_request(_authenticate, priority=1000)
    app.on_response(_renew_cookie)

    async def recheck(app, _loop=None) -> None:
        check_routes(app)

    app.before_server_start(recheck)
    api = runtime.cfg.api
    if not api.auth:
        log.warning("API AUTHENTICATION IS OFF (api.auth: false): anyone who can reach %s acts as admin. "
                    "Demo only: never on a site.", api.listen)
        return
    if api.demo_users:
        _demo_users(runtime.store)
    else:
        _warn_demo_passwords(runtime.store)
    try:
        credentials = runtime.store.count_credentials()
    except sqlite3.Error as exc:
        log.warning("cannot count API users in %s: %s", runtime.store.path, exc)
        return
    if credentials == 0:
        log.warning("API authentication is on, but %s has no users or API tokens, so nobody can log in. "
                    "Create an administrator: scada user add NAME --role admin", runtime.store.path)


def _demo_users(store) -> None:
    """Create the demo's missing users (``api.demo_users``, simulated sites only); say so loudly."""
    from scada.auth import DEMO_PASSWORD, DEMO_USERS, hash_password

    added = []
    try:
        for name, role in DEMO_USERS.items():
            if store.user(name) is None:
                store.add_user(name, role, hash_password(DEMO_PASSWORD))
                added.append(name)
    except sqlite3.Error as exc:
        log.warning("cannot create the demo users in %s: %s", store.path, exc)
        return
    log.warning("demo users (api.demo_users): %s, password %r%s. Simulated site only.",
                ", ".join(f"{n} ({r})" for n, r in DEMO_USERS.items()), DEMO_PASSWORD,
                f"; created now: {', '.join(added)}" if added else "")


def _warn_demo_passwords(store) -> None:
    """Warn about users that still have the demo's well-known password (a site grown from the demo file)."""
    from scada.auth import DEMO_PASSWORD, DEMO_USERS, verify_password

    try:
        users = [store.user(name) for name in DEMO_USERS]
    except sqlite3.Error:
        return  # the credential count below says what is wrong with the store
    weak = [u.name for u in users if u is not None and verify_password(u.password_hash, DEMO_PASSWORD)[0]]
    if weak:
        log.warning("USERS WITH THE DEMO PASSWORD %r: %s. Anyone who read the README can log in as them: "
                    "scada user passwd NAME, or scada user remove NAME", DEMO_PASSWORD, ", ".join(weak))


# --------------------------------------------------------------------------
# The check


def _denied(status: int, message: str, challenge: str | None = None, clear_cookie: bool = False):
    response = error(message, status)
    if challenge:
        response.headers["WWW-Authenticate"] = challenge
    if clear_cookie:
        response.delete_cookie(COOKIE, path="/")
    return response


def _credential(request) -> tuple[str | None, str]:
    """Return ``(token, source)``: the request's token and where it came from; ``(None, why)`` if none."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None, "use 'Authorization: Bearer <token>'"
        return value.strip(), "header"
    if request.route.extra.websocket and request.args.get("token"):
        return request.args.get("token"), "query"
    cookie = request.cookies.get(COOKIE)
    if cookie:
        return cookie, "cookie"
    return None, ("authentication required: log in with POST /api/v1/login, "
                  "or send 'Authorization: Bearer <token>'")


def _lookup(store, via: str, digest: str, now: float) -> tuple[Principal | None, str, float | None]:
    """Find the session (``via="session"``) or API token (``"token"``) with hash ``digest``.

    Returns ``(principal, "", end)`` (``end``: when it expires, None for
    an API token without an end), or ``(None, why not, None)`` for none, or
    an expired one (an expired session is deleted).
    """
    if via == "session":
        session = store.session_by_hash(digest)
        if session is None:
            return None, "invalid session: log in again", None
        if session.expired(now):
            store.delete_session(digest)
            return None, "the session has expired: log in again", None
        return Principal(session.user, session.role, None, "session"), "", session.expires
    found = store.token_by_hash(digest)
    if found is None:
        return None, "invalid API token", None
    if found.expired(now):
        return None, f"the API token {found.name!r} expired at {iso_utc(found.expires)}", None
    return Principal(f"token:{found.name}", found.role, found.name, "token"), "", found.expires


def _principal(store, token: str, now: float) -> tuple[Principal | None, str, str | None, float | None]:
    """Look ``token`` up; return ``(principal, problem, credential hash, end)``."""
    if token.startswith(SESSION_TOKEN_PREFIX):
        via = "session"
    elif token.startswith(API_TOKEN_PREFIX):
        via = "token"
    else:
        return None, "invalid token", None, None
    digest = token_hash(token)
    principal, problem, end = _lookup(store, via, digest, now)
    return principal, problem, digest if principal is not None else None, end


def _renew(runtime, digest: str, end: float | None, now: float) -> float | None:
    """Slide a session that has less than half of ``api.session_ttl`` left; return its new end, None if untouched.

    Most requests find more than half left and write nothing.  A store
    that cannot write leaves the session as it was (it still holds).
    """
    ttl = runtime.cfg.api.session_ttl
    if end is None or end - now >= ttl / 2:
        return None
    try:
        return runtime.store.renew_session(digest, ttl)
    except sqlite3.Error as exc:
        log.warning("cannot extend a session: %s", exc)
        return None


def _session_cookie(response, token: str, ttl: float, scheme: str) -> None:
    """Set the session cookie on ``response``: HttpOnly, SameSite=Strict, Secure only over HTTPS."""
    # Secure only over HTTPS: a plain-HTTP site on a LAN address would
    # never get the cookie back otherwise.
    response.add_cookie(COOKIE, token, path="/", max_age=max(1, int(ttl)),
                        httponly=True, samesite="Strict", secure=scheme in ("https", "wss"))


def recheck(runtime, principal: Principal | None, credential_hash: str | None,
            allowed: frozenset[str] | None) -> tuple[int, str] | None:
    """Say whether a principal let in earlier may still use a route that admits the roles ``allowed``.

    ``credential_hash`` is the hash of the session or API token it came
    with (``request.ctx.credential_hash``).  Returns None while the
    credential holds and its role (which follows the user's) is allowed;
    ``(4401, why)`` once the session ended (logout, password change, user
    removed) or expired, or the token was revoked or expired; ``(4403,
    why)`` once the role may no longer use the route.  The codes are
    WebSocket close codes: 4000 plus the HTTP status.  A store that cannot
    answer is no verdict (None): the next check decides.
    """
    if principal is None or principal.via == "anonymous" or not runtime.cfg.api.auth:
        return None
    if credential_hash is None:
        return 4401, "no credential to check: log in again"
    try:
        current, problem, _ = _lookup(runtime.store, principal.via, credential_hash, runtime.reactor.seconds())
    except sqlite3.Error as exc:
        log.warning("cannot check the credential of %s again: %s", principal.name, exc)
        return None
    if current is None:
        return 4401, problem
    if allowed is not None and current.role not in allowed:
        return 4403, f"role {current.role!r} may no longer use this"
    return None


def _origin_problem(request) -> str | None:
    """Return why the request's ``Origin`` is not this server (another host or port), None if it is or is absent."""
    origin = request.headers.get("origin")
    if origin is None:
        return None  # not a browser: nothing rides on its cookies
    host = request.headers.get("host", "")
    default = 443 if request.scheme in ("https", "wss") else 80
    try:
        parts = urlsplit(origin)
        origin_at = (parts.hostname, parts.port or {"https": 443, "wss": 443}.get(parts.scheme, 80))
        here = urlsplit("//" + host)
        here_at = (here.hostname, here.port or default)
    except ValueError:
        return f"cross-origin WebSocket refused: Origin {origin!r} is not a URL"
    if parts.scheme not in ("http", "https") or origin_at[0] is None or origin_at != here_at:
        return f"cross-origin WebSocket refused: Origin {origin!r} is not this server ({host})"
    return None


async def _authenticate(request):
    """Request middleware: identify the caller and check the route's roles (see the module docstring)."""
    route = request.route
    if route is None:
        return None  # no such path or method: the error handler answers 404/405
    request.ctx.user = None
    request.ctx.session_hash = None
    request.ctx.credential_hash = None
    request.ctx.renewed_cookie = None
    allowed = declared_roles(route)
    if allowed is None:
        # check_routes keeps this from happening; if it does, fail closed.
        log.error("route %s declares no roles; refusing %s %s", route.name, request.method, request.path)
        return _denied(403, f"{request.method} {request.path} declares no roles; nobody may call it")
    runtime = request.app.ctx.runtime
    if not runtime.cfg.api.auth:
        request.ctx.user = ANONYMOUS
        # Logout still ends a session the browser holds.
        token = request.cookies.get(COOKIE)
        if token:
            request.ctx.session_hash = token_hash(token)
        return None
    if allowed == _PUBLIC:
        return None
    token, source = _credential(request)
    if token is None:
        return _denied(401, source, _CHALLENGE)
    if source == "cookie" and route.extra.websocket:
        problem = _origin_problem(request)
        if problem is not None:
            return _denied(403, problem)
    now = runtime.reactor.seconds()
    try:
        principal, problem, digest, end = _principal(runtime.store, token, now)
    except sqlite3.Error as exc:
        log.error("cannot check credentials: %s", exc)
        return _denied(503, f"the user store is not available: {exc}")
    if principal is None:
        return _denied(401, problem, _CHALLENGE_INVALID, clear_cookie=source == "cookie")
    request.ctx.user = principal
    request.ctx.credential_hash = digest
    request.ctx.session_hash = digest if principal.via == "session" else None
    if principal.role not in allowed:
        return _denied(403, f"role {principal.role!r} may not {request.method} {request.path}")
    if principal.via == "session" and _renew(runtime, digest, end, now) is not None and source == "cookie":
        request.ctx.renewed_cookie = token  # _renew_cookie sets it again on the answer
    return None


async def _renew_cookie(request, response):
    """Response middleware: give a cookie session that :func:`_authenticate` extended its new ``Max-Age``.

    Not when the handler set or deleted the cookie itself (logout).
    """
    token = getattr(request.ctx, "renewed_cookie", None)
    if token is None or response is None or not hasattr(response, "cookies"):
        return None
    if response.cookies.has_cookie(COOKIE, path="/"):
        return None
    _session_cookie(response, token, request.app.ctx.runtime.cfg.api.session_ttl, request.scheme)
    return None


# --------------------------------------------------------------------------
# Routes


def _too_many(username: str, wait: float, at_once: bool = False):
    seconds = math.ceil(wait)
    why = "too many logins at once" if at_once else "too many failed logins"
    response = error(f"{why} for {username!r}: try again in {seconds} s", 429)
    response.headers["Retry-After"] = str(seconds)
    return response


_PRINCIPAL = {"type": "object", "required": ["user", "role", "token", "via"],
              "properties": {"user": {"type": "string", "description": "the user, or token:<name> for an API token"},
                             "role": {"type": "string"}, "token": {"type": ["string", "null"]},
                             "via": {"enum": ["session", "token", "anonymous"]}, "auth": {"type": "boolean"},
                             "session_ttl_s": {"type": "number",
                                               "description": "api.session_ttl: a login session ends after "
                                                              "this long without a request"}}}


@bp.post("/login")
@roles(PUBLIC)
@doc(body={"type": "object", "required": ["username", "password"],
           "properties": {"username": {"type": "string", "minLength": 1}, "password": {"type": "string"}}},
     responses={200: {"type": "object", "required": ["token", "expires", "user", "role"],
                      "properties": {"token": {"type": "string", "description": "send as 'Authorization: Bearer'"},
                                     "expires": {"type": "string", "format": "date-time"},
                                     "user": {"type": "string"}, "role": {"type": "string"}}},
                400: "a bad body", 401: "wrong user name or password", 429: "too many failed logins for the name",
                503: "the user store is not available"})
async def login(request):
    """Check a user name and password; open a session (token in the body and an HttpOnly cookie).

    A wrong name and a wrong password get the same 401.  After 5 failures
    for one name within 5 minutes, that name gets 429 for 5 minutes; so do
    attempts beyond those that could still lock it while they are being
    checked (see :class:`scada.auth.LoginThrottle`).  No login succeeds
    while its name is locked out.
    """
    try:
        body = json_body(request, '{"username": ..., "password": ...}', required=True)
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not username or not isinstance(password, str):
            raise ValueError('"username" and "password" must be strings')
        check_text(username, "username")
        check_text(password, "password")
    except ValueError as exc:
        return error(str(exc))
    throttle: LoginThrottle = request.app.ctx.login_throttle
    wait = throttle.begin(username)
    if wait > 0:
        return _too_many(username, wait, at_once=throttle.retry_after(username) == 0)
    outcome = None
    try:
        response, outcome = await _check_login(request, throttle, username, password)
    finally:
        throttle.end(username, outcome)
    return response


async def _check_login(request, throttle: LoginThrottle, username: str, password: str):
    """Check an attempt :meth:`LoginThrottle.begin` let go; return ``(response, outcome)`` for ``throttle.end``."""
    runtime = request.app.ctx.runtime
    store = runtime.store
    try:
        user = store.user(username)
    except sqlite3.Error as exc:
        log.error("cannot check a login: %s", exc)
        return _denied(503, f"the user store is not available: {exc}"), None
    if len(password) > MAX_PASSWORD:
        ok, new_hash = False, None
    else:
        # argon2 is meant to be slow (~0.1 s of CPU): in a worker thread it
        # does not stall the reactor's bus timing.  It releases the GIL.
        async with request.app.ctx.kdf_slots:
            # Other attempts may have locked the name out while this one queued.
            wait = throttle.retry_after(username)
            if wait > 0:
                return _too_many(username, wait), None
            ok, new_hash = await asyncio.get_running_loop().run_in_executor(
                None, verify_password, user.password_hash if user else None, password)
    if not ok:
        return _denied(401, "wrong user name or password", _CHALLENGE), False
    wait = throttle.retry_after(username)
    if wait > 0:
        # The right password, but the name was locked out while it was checked: no session.
        return _too_many(username, wait), None
    token = new_session_token()
    try:
        if new_hash is not None:
            store.set_password(username, new_hash, end_sessions=False)
        session = store.create_session(username, token_hash(token), runtime.cfg.api.session_ttl)
    except NotFound:
        # Removed by `scada user remove` while its password was being checked.
        return _denied(401, "wrong user name or password", _CHALLENGE), True
    except sqlite3.Error as exc:
        log.error("cannot open a session: %s", exc)
        return _denied(503, f"the user store is not available: {exc}"), True
    log.info("user %r (%s) logged in", session.user, session.role)
    response = json({"token": token, "expires": iso_utc(session.expires), "user": session.user,
                     "role": session.role})
    _session_cookie(response, token, runtime.cfg.api.session_ttl, request.scheme)
    return response, True


@bp.post("/logout")
@roles(ANYONE)
@doc(responses={200: {"type": "object", "required": ["logged_out"], "properties": {"logged_out": {"type": "boolean"}}},
                400: "the request carries an API token, not a session"})
async def logout(request):
    """End the caller's login session and clear its cookie (API tokens are revoked with ``scada token``)."""
    user = request.ctx.user
    if user is not None and user.via == "token":
        return error(f"this request carries the API token {user.token!r}, not a login session; "
                     f"revoke tokens with: scada token revoke {user.token}")
    ended = False
    if request.ctx.session_hash is not None:
        ended = request.app.ctx.runtime.store.delete_session(request.ctx.session_hash)
    response = json({"logged_out": ended})
    response.delete_cookie(COOKIE, path="/")
    return response


@bp.get("/me")
@roles(ANYONE)
@doc(responses={200: _PRINCIPAL})
async def me(request):
    """Say who the caller is: user (or ``token:<name>``), role, API token name, how authenticated.

    Also ``session_ttl_s``, the sessions' idle timeout: the HMI calls this
    route well within it to keep its session alive (calling it counts as
    use, see the module's text).
    """
    api = request.app.ctx.runtime.cfg.api
    return json(request.ctx.user.to_json() | {"auth": api.auth, "session_ttl_s": api.session_ttl})
