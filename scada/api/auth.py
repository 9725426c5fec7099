# -*- test-case-name: tests.scada.test_api_roles -*-
"""API authentication and authorisation: ``@roles``, the request check, login, logout, ``/me``.

Every route declares who may call it, with the decorator under the route's::

    @bp.post("/<alarm_id:str>/ack")
    @roles(ACT)                 # or @roles(*ACT), or @roles("operator", "crew")
    async def ack(request, alarm_id): ...

Named sets (:mod:`scada.auth`): ``PUBLIC`` (no credentials), ``DATA``
(metering data: every role, billing included), ``READ`` (operations views:
alarms, journal, live feed, channels; every role but billing), ``ACT``
(alarm actions: operator, crew, engineer), ``ENGINEERING`` (out of service,
simulator, manual readings: engineer), ``ADMIN``, ``ANYONE``.  ``admin``
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

With ``api.auth: false`` everyone is ``anonymous`` with role admin.
"""

from __future__ import annotations

import asyncio
import functools
import json as jsonlib
import logging
import math
import sqlite3

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
from scada.store import NotFound
from tags.timefmt import iso_utc

__all__ = ["ACT", "ADMIN", "ANYONE", "COOKIE", "DATA", "ENGINEERING", "PUBLIC", "READ", "ROLES",
           "UndeclaredRoutes", "check_routes", "declared_roles", "install", "roles"]

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
    handler = route.handler
    for _ in range(8):
        if handler is None:
            break
        found = getattr(handler, ATTR, None)
        if found is not None:
            return found
        if isinstance(handler, functools.partial):
            handler = handler.args[0] if handler.args and callable(handler.args[0]) else handler.func
        else:
            handler = getattr(handler, "__wrapped__", None)
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

    async def recheck(app, _loop=None) -> None:
        check_routes(app)

    app.before_server_start(recheck)
    api = runtime.cfg.api
    if not api.auth:
        log.warning("API AUTHENTICATION IS OFF (api.auth: false): anyone who can reach %s acts as admin. "
                    "Demo only: never on a site.", api.listen)
        return
    try:
        credentials = runtime.store.count_credentials()
    except sqlite3.Error as exc:
        log.warning("cannot count API users in %s: %s", runtime.store.path, exc)
        return
    if credentials == 0:
        log.warning("API authentication is on, but %s has no users or API tokens, so nobody can log in. "
                    "Create an administrator: scada user add NAME --role admin", runtime.store.path)


# --------------------------------------------------------------------------
# The check


def _denied(status: int, message: str, challenge: str | None = None, clear_cookie: bool = False):
    response = json({"error": message}, status=status)
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


def _principal(store, token: str, now: float) -> tuple[Principal | None, str, str | None]:
    """Look ``token`` up; return ``(principal, problem, session_hash)``."""
    digest = token_hash(token)
    if token.startswith(SESSION_TOKEN_PREFIX):
        session = store.session_by_hash(digest)
        if session is None:
            return None, "invalid session: log in again", None
        if session.expired(now):
            store.delete_session(digest)
            return None, "the session has expired: log in again", None
        return Principal(session.user, session.role, None, "session"), "", digest
    if token.startswith(API_TOKEN_PREFIX):
        found = store.token_by_hash(digest)
        if found is None:
            return None, "invalid API token", None
        if found.expired(now):
            return None, f"the API token {found.name!r} expired at {iso_utc(found.expires)}", None
        return Principal(f"token:{found.name}", found.role, found.name, "token"), "", None
    return None, "invalid token", None


async def _authenticate(request):
    """Request middleware: identify the caller and check the route's roles (see the module docstring)."""
    route = request.route
    if route is None:
        return None  # no such path or method: the error handler answers 404/405
    request.ctx.user = None
    request.ctx.session_hash = None
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
    try:
        principal, problem, session_hash = _principal(runtime.store, token, runtime.reactor.seconds())
    except sqlite3.Error as exc:
        log.error("cannot check credentials: %s", exc)
        return _denied(503, f"the user store is not available: {exc}")
    if principal is None:
        return _denied(401, problem, _CHALLENGE_INVALID, clear_cookie=source == "cookie")
    request.ctx.user = principal
    request.ctx.session_hash = session_hash
    if principal.role not in allowed:
        return _denied(403, f"role {principal.role!r} may not {request.method} {request.path}")
    return None


# --------------------------------------------------------------------------
# Routes


def _body(request) -> dict:
    try:
        body = jsonlib.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ValueError('the body must be a JSON object {"username": ..., "password": ...}')
    return body


@bp.post("/login")
@roles(PUBLIC)
async def login(request):
    """Check a user name and password; open a session (token in the body and an HttpOnly cookie).

    A wrong name and a wrong password get the same 401.  After 5 failures
    for one name within 5 minutes, that name gets 429 for 5 minutes.
    """
    runtime = request.app.ctx.runtime
    try:
        body = _body(request)
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not username or not isinstance(password, str):
            raise ValueError('"username" and "password" must be strings')
    except ValueError as exc:
        return json({"error": str(exc)}, status=400)
    throttle: LoginThrottle = request.app.ctx.login_throttle
    wait = throttle.retry_after(username)
    if wait > 0:
        response = json({"error": f"too many failed logins for {username!r}: try again in {math.ceil(wait)} s"},
                        status=429)
        response.headers["Retry-After"] = str(math.ceil(wait))
        return response
    store = runtime.store
    try:
        user = store.user(username)
    except sqlite3.Error as exc:
        log.error("cannot check a login: %s", exc)
        return _denied(503, f"the user store is not available: {exc}")
    if len(password) > MAX_PASSWORD:
        ok, new_hash = False, None
    else:
        # argon2 is meant to be slow (~0.1 s of CPU): in a worker thread it
        # does not stall the reactor's bus timing.  It releases the GIL.
        async with request.app.ctx.kdf_slots:
            ok, new_hash = await asyncio.get_running_loop().run_in_executor(
                None, verify_password, user.password_hash if user else None, password)
    if not ok:
        throttle.failed(username)
        return _denied(401, "wrong user name or password", _CHALLENGE)
    throttle.succeeded(username)
    token = new_session_token()
    try:
        if new_hash is not None:
            store.set_password(username, new_hash, end_sessions=False)
        session = store.create_session(username, token_hash(token), runtime.cfg.api.session_ttl)
    except NotFound:
        # Removed by `scada user remove` while its password was being checked.
        return _denied(401, "wrong user name or password", _CHALLENGE)
    except sqlite3.Error as exc:
        log.error("cannot open a session: %s", exc)
        return _denied(503, f"the user store is not available: {exc}")
    log.info("user %r (%s) logged in", session.user, session.role)
    response = json({"token": token, "expires": iso_utc(session.expires), "user": session.user,
                     "role": session.role})
    # Secure only over HTTPS: a plain-HTTP site on a LAN address would
    # never get the cookie back otherwise.
    response.add_cookie(COOKIE, token, path="/", max_age=max(1, int(runtime.cfg.api.session_ttl)),
                        httponly=True, samesite="Strict", secure=request.scheme in ("https", "wss"))
    return response


@bp.post("/logout")
@roles(ANYONE)
async def logout(request):
    """End the caller's login session and clear its cookie (API tokens are revoked with ``scada token``)."""
    user = request.ctx.user
    if user is not None and user.via == "token":
        return json({"error": f"this request carries the API token {user.token!r}, not a login session; "
                              f"revoke tokens with: scada token revoke {user.token}"}, status=400)
    ended = False
    if request.ctx.session_hash is not None:
        ended = request.app.ctx.runtime.store.delete_session(request.ctx.session_hash)
    response = json({"logged_out": ended})
    response.delete_cookie(COOKIE, path="/")
    return response


@bp.get("/me")
@roles(ANYONE)
async def me(request):
    """Say who the caller is: user (or ``token:<name>``), role, API token name, how authenticated."""
    return json(request.ctx.user.to_json() | {"auth": request.app.ctx.runtime.cfg.api.auth})
