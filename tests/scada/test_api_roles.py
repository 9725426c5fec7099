"""API authorisation: every route × every role, 401s, login/logout/cookie/lockout, WebSockets, auth off.

Runs over Sanic's ASGI client on a runtime driven by ``task.Clock`` (no ports).
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import re
import textwrap
from dataclasses import dataclass

import pytest
from argon2 import PasswordHasher
from sanic import Blueprint
from twisted.internet.task import Clock

from scada import auth
from scada.api import build_app
from scada.api import auth as api_auth
from scada.app import Runtime
from scada.config import load_config
from tags.timefmt import iso_utc, parse_iso
from tests.scada.api_site import clock_runtime, request_body, role_tokens
from tests.scada.asgi import Reply, http, scope

T0 = parse_iso("2026-11-19T08:00:00Z")
FAST = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
PASSWORD = "correct horse battery"

SITE = textwrap.dedent("""\
    site: {{name: roles test}}
    history: {{backend: sqlite, path: history.db}}
    api: {api}
    channels:
      - name: gw
        type: modbus-rtu
        transport: {{tcp: 127.0.0.1:1}}
        devices:
          - {{name: m1, address: 1, profile: generic_water_meter, poll: 10s}}
    """)

#: What the contract says about the endpoints that exist today.
EXPECTED = {
    ("GET", "/api/v1/health"): auth.PUBLIC,
    ("POST", "/api/v1/login"): auth.PUBLIC,
    ("POST", "/api/v1/logout"): auth.ANYONE,
    ("GET", "/api/v1/me"): auth.ANYONE,
    ("GET", "/api/v1/tags"): auth.DATA,
    ("GET", "/api/v1/tags/<name:str>"): auth.DATA,
    ("GET", "/api/v1/tags/<name:str>/history"): auth.DATA,
    ("GET", "/api/v1/devices"): auth.DATA,
    ("GET", "/api/v1/devices/<name:str>/gaps"): auth.DATA,
    ("GET", "/api/v1/channels"): auth.READ,
    # Prometheus scrapes without credentials unless api.metrics says auth (tests/scada/test_metrics.py).
    ("GET", "/metrics"): auth.PUBLIC,
}


def contract(method: str, path: str):
    """Return the roles the contract gives a route, or None where only its declaration says."""
    if (method, path) in EXPECTED:
        return EXPECTED[method, path]
    if path.startswith("/api/v1/alarms"):
        if method == "GET":
            return auth.READ
        if path.endswith(("/out_of_service", "/in_service")):
            return auth.ENGINEERING
        return auth.ACT
    if path == "/api/v1/live":
        return auth.READ
    if path.startswith("/api/v1/sim/"):
        return auth.ENGINEERING
    if path.startswith("/api/v1/integrations/"):
        return auth.INTEGRATION
    if path in ("/api/v1/openapi.json", "/api/v1/docs"):
        return auth.PUBLIC
    if path.startswith("/api/v1/registry/"):
        return auth.DATA if method == "GET" else ("crew", "engineer", "admin")
    if path.startswith("/api/v1/billing/"):
        return ("billing", "admin")
    if path.startswith("/api/v1/reports/"):
        return auth.DATA
    if path.startswith("/api/v1/hmi/"):
        return auth.READ
    if path == "/" or path.startswith("/hmi/"):
        return auth.PUBLIC  # the HMI's page and files: no site data, and the login page must load
    return None


@dataclass
class Site:
    runtime: Runtime
    app: object
    loop: asyncio.AbstractEventLoop
    clock: Clock
    tokens: dict[str, str]

    def start(self) -> None:
        """Start the app (routes, middleware, listeners) once, as the test client does on each request."""
        self.loop.run_until_complete(self.app.asgi_client.get("/api/v1/health"))

    def call(self, method: str, path: str, token: str | None = None, body=None, headers=None, cookie=None) -> Reply:
        """Make one request straight through the ASGI app (no cookies kept between calls)."""
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if cookie is not None:
            headers["Cookie"] = f"{api_auth.COOKIE}={cookie}"
        return self.loop.run_until_complete(http(self.app, method, path, headers, request_body(body)))

    def login(self, username: str, password: str = PASSWORD) -> Reply:
        return self.call("POST", "/api/v1/login", body={"username": username, "password": password})

    def websocket(self, path: str, query: str = "", headers=None) -> list[dict]:
        """Open a WebSocket through the ASGI app; return what the app sent (an HTTP answer if refused)."""
        return self.loop.run_until_complete(asyncio.wait_for(_ws(self.app, path, query, headers or {}), 5))


async def _ws(app, path: str, query: str, headers: dict) -> list[dict]:
    sent: list[dict] = []
    inbox: asyncio.Queue = asyncio.Queue()
    inbox.put_nowait({"type": "websocket.connect"})

    async def receive():
        return await inbox.get()

    async def send(message):
        sent.append(message)
        if message["type"] == "websocket.send":
            inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})

    await app(scope("websocket", "GET", path + ("?" + query if query else ""), headers), receive, send)
    return sent


def _ws_status(sent: list[dict]) -> int:
    """101 if the WebSocket was accepted, else the HTTP status it was refused with."""
    for message in sent:
        if message["type"] == "websocket.accept":
            return 101
        if message["type"] == "http.response.start":
            return message["status"]
    raise AssertionError(f"neither accepted nor refused: {sent}")


def _ws_body(sent: list[dict]) -> dict:
    return jsonlib.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))


def _build(tmp_path, api: str = "{}", extend=None) -> Site:
    runtime, clock = clock_runtime(tmp_path, SITE.format(api=api), T0)
    tokens = role_tokens(runtime)
    app = build_app(runtime)
    if extend is not None:
        extend(app)
    return Site(runtime, app, asyncio.new_event_loop(), clock, tokens)


@pytest.fixture()
def make_site(tmp_path, monkeypatch):
    """Return a builder of sites (auth on unless told); closes what it built."""
    monkeypatch.setattr(auth, "PASSWORD_HASHER", FAST)
    built: list[Site] = []

    def make(api: str = "{}", extend=None) -> Site:
        """Build a site; ``extend(app)`` may add routes before the app starts."""
        folder = tmp_path / f"site{len(built)}"
        folder.mkdir()
        site = _build(folder, api, extend)
        built.append(site)
        site.start()
        return site

    yield make
    for site in built:
        site.runtime.historian.close()
        site.runtime.store.close()
        site.loop.close()


@pytest.fixture(scope="module")
def shared_site(tmp_path_factory):
    """One auth-on site for the tests that neither add users nor log in nor move its clock (built once: ~0.1 s each).

    Those tests send requests that change nothing (malformed or refused ones,
    reads); ``monkeypatch`` of its store is undone after each test.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth, "PASSWORD_HASHER", FAST)
        site = _build(tmp_path_factory.mktemp("roles-shared"))
        site.start()
        yield site
        site.runtime.historian.close()
        site.runtime.store.close()
        site.loop.close()


@pytest.fixture()
def site(make_site):
    """A fresh site, for tests that change it (users, sessions, lockouts, the clock, tokens)."""
    return make_site()


@pytest.fixture(scope="module")
def cookie_session(shared_site):
    """The shared site with user ivanov (crew) and one session of his: ``(site, session token)``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth, "PASSWORD_HASHER", FAST)
        _add_user(shared_site, "ivanov", "crew")
        response = shared_site.login("ivanov")
    assert response.status == 200
    return shared_site, response.json["token"]


def _routes(app):
    """Yield ``(method, path pattern, concrete path, route)`` for every route of the app."""
    for route in app.router.routes:
        pattern = "/" + route.path
        parts = pattern.split("/")
        for i, part in enumerate(parts):
            if part.startswith("<"):
                parts[i] = {"tags": "m1.volume_m3", "devices": "m1"}.get(parts[i - 1], "nothing-here")
        for method in sorted(route.methods):
            yield method, pattern, "/".join(parts), route


def _request(site: Site, method: str, path: str, route, token: str | None, query: str = ""):
    """Call a route (a WebSocket through the handshake); return (status, JSON body or None, headers)."""
    if route.extra.websocket:
        sent = site.websocket(path, query, {"Authorization": f"Bearer {token}"} if token else {})
        status = _ws_status(sent)
        return status, (_ws_body(sent) if status != 101 else None), {}
    response = site.call(method, path, token=token, body={} if method in ("POST", "PUT", "PATCH") else None)
    # The docs page is HTML; every other answer (errors included) is JSON.
    is_json = response.headers.get("content-type", "").startswith("application/json")
    return response.status, response.json if is_json else None, response.headers


def test_routes_declare_what_the_contract_says(shared_site):
    """Every route declares roles; the known ones declare exactly the contract's set (admin always in)."""
    site = shared_site
    seen = set()
    for method, pattern, _, route in _routes(site.app):
        declared = api_auth.declared_roles(route)
        assert declared is not None, pattern
        seen.add((method, pattern))
        expected = contract(method, pattern)
        if expected is not None:
            assert declared == frozenset(expected), (method, pattern, sorted(declared))
        if declared != frozenset(auth.PUBLIC):
            assert "admin" in declared
    assert set(EXPECTED) <= seen, set(EXPECTED) - seen


def test_role_matrix(shared_site):
    """For every route and every role: allowed roles get an answer (not 401/403, not 500); others get 403."""
    site = shared_site
    checked = 0
    for method, pattern, path, route in _routes(site.app):
        declared = api_auth.declared_roles(route)
        for role in auth.ROLES:
            status, body, _ = _request(site, method, path, route, site.tokens[role])
            if declared == frozenset(auth.PUBLIC) or role in declared:
                assert status not in (401, 403) and status < 500, (method, pattern, role, status, body)
            else:
                assert status == 403, (method, pattern, role, status, body)
                assert body["error"] == f"role {role!r} may not {method} {path}"
            checked += 1
    assert checked >= len(EXPECTED) * len(auth.ROLES)


@pytest.mark.parametrize("credential", [None, "sct_not-a-token", "scs_not-a-session", "garbage", ""])
def test_no_or_bad_credentials_are_401(shared_site, credential):
    """Every non-public route answers 401 with WWW-Authenticate: Bearer without valid credentials."""
    site = shared_site
    for method, pattern, path, route in _routes(site.app):
        status, body, headers = _request(site, method, path, route, credential)
        if api_auth.declared_roles(route) == frozenset(auth.PUBLIC):
            assert status != 401, (pattern, body)
            continue
        assert status == 401 and body["error"], (method, pattern, status, body)
        if not route.extra.websocket:
            assert headers["www-authenticate"].startswith("Bearer")


def test_other_authorization_schemes_are_401(shared_site):
    """Basic auth or a bare token is not a Bearer token: 401 saying how to send one."""
    site = shared_site
    for header in ("Basic YWxpY2U6eA==", site.tokens["admin"], "Bearer", "Bearer    "):
        response = site.call("GET", "/api/v1/tags", headers={"Authorization": header})
        assert response.status == 401 and "Bearer" in response.json["error"]
        assert response.headers["www-authenticate"].startswith("Bearer")
    response = site.call("GET", "/api/v1/tags", headers={"Authorization": "bearer " + site.tokens["viewer"]})
    assert response.status == 200


def test_unknown_paths_stay_404(shared_site):
    """A path that does not exist is a JSON 404, with or without credentials."""
    site = shared_site
    assert site.call("GET", "/api/v1/nothing").status == 404
    assert site.call("GET", "/api/v1/nothing", token=site.tokens["viewer"]).status == 404


def test_expired_and_revoked_tokens(site):
    """A token past its expiry, or revoked, is a 401 that says which."""
    token = auth.new_api_token()
    site.runtime.store.add_token("short", "viewer", auth.token_hash(token), expires=T0 + 60)
    assert site.call("GET", "/api/v1/tags", token=token).status == 200
    site.clock.advance(60)
    response = site.call("GET", "/api/v1/tags", token=token)
    assert response.status == 401 and "'short' expired" in response.json["error"]
    site.runtime.store.revoke_token("viewer-token")
    assert site.call("GET", "/api/v1/tags", token=site.tokens["viewer"]).status == 401


def test_me_for_a_token(shared_site):
    """/me names a token's principal token:<name> with its role."""
    site = shared_site
    response = site.call("GET", "/api/v1/me", token=site.tokens["billing"])
    assert response.json == {"user": "token:billing-token", "role": "billing", "token": "billing-token",
                             "via": "token", "auth": True, "session_ttl_s": 12 * 3600}


def _add_user(site: Site, name: str, role: str, password: str = PASSWORD) -> None:
    site.runtime.store.add_user(name, role, auth.hash_password(password))


def _set_cookie(response) -> str:
    cookies = [c for c in response.header_list("set-cookie") if c.startswith(api_auth.COOKIE + "=")]
    assert len(cookies) == 1, response.headers
    return cookies[0]


def test_login_gives_a_session_usable_as_bearer_and_cookie(site):
    """Login answers token, expiry, user and role, and sets an HttpOnly SameSite=Strict cookie on /."""
    _add_user(site, "ivanov", "operator")
    response = site.login("ivanov")
    assert response.status == 200
    body = response.json
    assert body["user"] == "ivanov" and body["role"] == "operator" and body["token"].startswith("scs_")
    assert body["expires"] == iso_utc(T0 + 12 * 3600)
    cookie = _set_cookie(response)
    assert f"{api_auth.COOKIE}={body['token']}" in cookie
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    assert "secure" not in attributes  # plain HTTP here; Secure only over HTTPS
    for kwargs in ({"token": body["token"]}, {"cookie": body["token"]}):
        me = site.call("GET", "/api/v1/me", **kwargs)
        assert me.status == 200 and me.json["user"] == "ivanov" and me.json["via"] == "session"
    # The store has only the hash.
    path = site.runtime.store.path
    for file in (path, path.with_name(path.name + "-wal")):
        assert body["token"].encode() not in file.read_bytes()
    assert auth.token_hash(body["token"]).encode() in b"".join(
        f.read_bytes() for f in (path, path.with_name(path.name + "-wal")))
    assert site.call("GET", "/api/v1/tags", cookie=body["token"]).status == 200


def test_session_role_follows_the_user_and_expires(site):
    """A role change applies at the next request; after api.session_ttl the session is a 401."""
    _add_user(site, "petrov", "viewer")
    token = site.login("petrov").json["token"]
    assert site.call("GET", "/api/v1/channels", token=token).status == 200
    site.runtime.store.set_role("petrov", "billing")
    assert site.call("GET", "/api/v1/channels", token=token).status == 403
    site.clock.advance(12 * 3600)
    response = site.call("GET", "/api/v1/tags", token=token)
    assert response.status == 401 and "expired" in response.json["error"]


TTL = 12 * 3600


def _max_age(cookie: str) -> int:
    return int(re.search(r"max-age=(\d+)", cookie, re.IGNORECASE).group(1))


def _session_end(site: Site, token: str) -> float:
    return site.runtime.store.session_by_hash(auth.token_hash(token)).expires


@pytest.mark.parametrize("via", ["cookie", "token"])
def test_a_session_used_after_half_its_life_slides(site, via):
    """Used with less than half of session_ttl left, a session lasts session_ttl from now; a cookie comes again."""
    _add_user(site, "ivanov", "viewer")
    token = site.login("ivanov").json["token"]
    site.clock.advance(0.6 * TTL)
    response = site.call("GET", "/api/v1/me", **{via: token})
    assert response.status == 200 and response.json["session_ttl_s"] == TTL
    assert _session_end(site, token) == T0 + 1.6 * TTL
    if via == "cookie":
        cookie = _set_cookie(response)
        attributes = {part.strip().lower() for part in cookie.split(";")}
        assert f"{api_auth.COOKIE}={token}" in cookie and _max_age(cookie) == TTL
        assert {"httponly", "samesite=strict", "path=/"} <= attributes and "secure" not in attributes
    else:
        assert not response.header_list("set-cookie")  # a bearer has no cookie to refresh
    # Used every 0.6 × TTL, past the login's own end: still in (each use finds 0.4 × TTL left).
    for _ in range(4):
        site.clock.advance(0.6 * TTL)
        assert site.call("GET", "/api/v1/channels", **{via: token}).status == 200
    assert _session_end(site, token) == T0 + 4 * TTL  # renewed at 3.0 × TTL, the last use
    # Idle for a whole session_ttl: it ends.
    site.clock.advance(TTL)
    assert site.call("GET", "/api/v1/me", **{via: token}).status == 401


def test_a_fresh_session_is_not_written_on_every_request(site, monkeypatch):
    """With more than half of session_ttl left: no store write, no new cookie, the end stays."""
    _add_user(site, "ivanov", "viewer")
    token = site.login("ivanov").json["token"]
    renewals = []
    monkeypatch.setattr(site.runtime.store, "renew_session", lambda *a: renewals.append(a))
    site.clock.advance(0.3 * TTL)
    for kwargs in ({"cookie": token}, {"token": token}):
        response = site.call("GET", "/api/v1/me", **kwargs)
        assert response.status == 200 and not response.header_list("set-cookie")
    assert renewals == [] and _session_end(site, token) == T0 + TTL


def test_an_expired_session_is_not_revived(site):
    """A session past its end is a 401 (cookie cleared), and stays one."""
    _add_user(site, "ivanov", "viewer")
    token = site.login("ivanov").json["token"]
    site.clock.advance(TTL)
    response = site.call("GET", "/api/v1/me", cookie=token)
    assert response.status == 401 and "max-age=0" in _set_cookie(response).lower()
    assert site.runtime.store.renew_session(auth.token_hash(token), TTL) is None
    assert site.call("GET", "/api/v1/me", token=token).status == 401


def test_renew_session_leaves_expired_ones(site):
    """OpsStore.renew_session: an open session slides, an expired or unknown one gives None."""
    store = site.runtime.store
    _add_user(site, "ivanov", "viewer")
    store.create_session("ivanov", "open", 100)
    store.create_session("ivanov", "over", 10)
    site.clock.advance(50)
    assert store.renew_session("open", 100) == T0 + 150
    assert store.session_by_hash("open").expires == T0 + 150
    assert store.renew_session("over", 100) is None and store.session_by_hash("over").expires == T0 + 10
    assert store.renew_session("nothing", 100) is None


def test_api_tokens_never_slide(site):
    """An API token keeps the end it was created with, however it is used."""
    secret = auth.new_api_token()
    site.runtime.store.add_token("wall", "viewer", auth.token_hash(secret), expires=T0 + TTL)
    site.clock.advance(0.9 * TTL)
    response = site.call("GET", "/api/v1/me", token=secret)
    assert response.status == 200 and not response.header_list("set-cookie")
    assert next(t for t in site.runtime.store.tokens() if t.name == "wall").expires == T0 + TTL
    site.clock.advance(0.1 * TTL)
    assert site.call("GET", "/api/v1/me", token=secret).status == 401


def test_logout_of_a_sliding_session_still_clears_the_cookie(site):
    """A logout that also renewed the session answers with the cookie deleted, not set again."""
    _add_user(site, "ivanov", "viewer")
    token = site.login("ivanov").json["token"]
    site.clock.advance(0.6 * TTL)
    response = site.call("POST", "/api/v1/logout", cookie=token)
    assert response.status == 200 and response.json == {"logged_out": True}
    assert "max-age=0" in _set_cookie(response).lower()
    assert site.call("GET", "/api/v1/me", cookie=token).status == 401


def test_bad_cookie_is_cleared(shared_site):
    """A stale session cookie is a 401 that also deletes the cookie."""
    site = shared_site
    response = site.call("GET", "/api/v1/tags", cookie="scs_stale")
    assert response.status == 401
    assert "max-age=0" in _set_cookie(response).lower()


def test_session_ttl_comes_from_the_config(make_site):
    """api.session_ttl sets the session's life."""
    site = make_site("{session_ttl: 30m}")
    _add_user(site, "ivanov", "crew")
    assert site.login("ivanov").json["expires"] == iso_utc(T0 + 1800)


def test_logout_ends_the_session(site):
    """Logout deletes the session (bearer and cookie stop working) and clears the cookie."""
    _add_user(site, "ivanov", "crew")
    token = site.login("ivanov").json["token"]
    response = site.call("POST", "/api/v1/logout", cookie=token)
    assert response.status == 200 and response.json == {"logged_out": True}
    assert "max-age=0" in _set_cookie(response).lower()
    assert site.call("GET", "/api/v1/me", token=token).status == 401
    assert site.call("GET", "/api/v1/me", cookie=token).status == 401


def test_logout_with_an_api_token_is_400(shared_site):
    """An API token is not a session: logout says how to revoke it instead."""
    site = shared_site
    response = site.call("POST", "/api/v1/logout", token=site.tokens["viewer"])
    assert response.status == 400 and "scada token revoke viewer-token" in response.json["error"]


def test_wrong_user_and_wrong_password_look_the_same(site):
    """Unknown user and wrong password: the same 401 and message."""
    _add_user(site, "ivanov", "crew")
    wrong_password = site.login("ivanov", "not the password")
    no_user = site.login("nobody", PASSWORD)
    assert wrong_password.status == no_user.status == 401
    assert wrong_password.json == no_user.json == {"error": "wrong user name or password"}
    assert wrong_password.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", {"username": "x"}, {"username": 1, "password": "p"},
                                  {"username": "", "password": "p"}, {"username": "x", "password": None}])
def test_malformed_login_is_400(shared_site, body):
    """A login body that is not {"username": str, "password": str} is a 400 saying so."""
    site = shared_site
    response = site.call("POST", "/api/v1/login", body=body)
    assert response.status == 400 and response.json["error"]


def test_overlong_password_is_a_failed_login(site):
    """A megabyte password is not hashed; it is a wrong password."""
    _add_user(site, "ivanov", "crew")
    assert site.login("ivanov", "x" * 100_000).status == 401


def test_lockout_after_five_failures(site):
    """5 failures in 5 minutes: further attempts (even right ones) get 429 for 5 minutes; others unaffected."""
    _add_user(site, "ivanov", "crew")
    _add_user(site, "petrov", "crew")
    for _ in range(5):
        site.clock.advance(10)
        assert site.login("ivanov", "wrong password").status == 401
    response = site.login("ivanov")
    assert response.status == 429 and response.headers["retry-after"] == "300"
    assert "try again in 300 s" in response.json["error"]
    assert site.login("petrov").status == 200
    site.clock.advance(299)
    assert site.login("ivanov").status == 429
    site.clock.advance(1)
    assert site.login("ivanov").status == 200


def test_unknown_names_are_locked_out_too(site):
    """Guessing at a name that does not exist is throttled the same way (no way to tell names apart)."""
    for _ in range(5):
        assert site.login("ghost", "wrong password").status == 401
    assert site.login("ghost", "wrong password").status == 429


def test_failures_spread_over_more_than_five_minutes_do_not_lock(site):
    """Four failures, then five minutes, then more: the window slides."""
    _add_user(site, "ivanov", "crew")
    for _ in range(4):
        site.login("ivanov", "wrong password")
    site.clock.advance(300)
    for _ in range(4):
        assert site.login("ivanov", "wrong password").status == 401
    assert site.login("ivanov").status == 200


def test_login_upgrades_an_old_hash(site):
    """A password hashed with older parameters is rehashed with the current ones at login."""
    old = PasswordHasher(time_cost=2, memory_cost=128, parallelism=1)
    site.runtime.store.add_user("ivanov", "crew", auth.hash_password(PASSWORD, old))
    token = site.login("ivanov").json["token"]
    stored = site.runtime.store.user("ivanov").password_hash
    assert "m=64,t=1,p=1" in stored and auth.verify_password(stored, PASSWORD) == (True, None)
    assert site.call("GET", "/api/v1/me", token=token).status == 200  # the session survives the upgrade


def test_websocket_credentials(make_site):
    """WebSocket routes: token by header, ?token= or cookie; refused (401/403) before the handshake."""
    bp = Blueprint("test_ws", url_prefix="/api/v1/test")

    @bp.websocket("/ws")
    @api_auth.roles(api_auth.READ)
    async def ws(request, socket):
        """Say who connected."""
        await socket.send(request.ctx.user.name)

    site = make_site(extend=lambda app: app.blueprint(bp))
    _add_user(site, "ivanov", "crew")
    session = site.login("ivanov").json["token"]
    viewer = site.tokens["viewer"]
    accepted = [("", {"Authorization": f"Bearer {viewer}"}, "token:viewer-token"),
                (f"token={viewer}", {}, "token:viewer-token"),
                ("", {"Cookie": f"{api_auth.COOKIE}={session}"}, "ivanov"),
                (f"token={session}", {}, "ivanov")]
    for query, headers, name in accepted:
        sent = site.websocket("/api/v1/test/ws", query, headers)
        assert _ws_status(sent) == 101 and {"type": "websocket.send", "text": name} in sent, (query, headers)
    for query, status in (("", 401), ("token=sct_bad", 401), (f"token={site.tokens['billing']}", 403)):
        sent = site.websocket("/api/v1/test/ws", query)
        assert _ws_status(sent) == status and _ws_body(sent)["error"]


def test_query_token_only_counts_on_websockets(shared_site):
    """?token= on an ordinary request is ignored (URLs end up in logs)."""
    site = shared_site
    assert site.call("GET", f"/api/v1/tags?token={site.tokens['admin']}").status == 401


def test_auth_off_everyone_is_anonymous_admin(make_site, caplog):
    """api.auth: false: no credentials needed anywhere, every caller is 'anonymous' with role admin, loudly."""
    with caplog.at_level(logging.WARNING, logger="scada.api.auth"):
        site = make_site("{auth: false}")
    assert any("API AUTHENTICATION IS OFF" in r.message and "demo only" in r.message.lower() for r in caplog.records)
    for method, pattern, path, route in _routes(site.app):
        status, body, _ = _request(site, method, path, route, None)
        assert status not in (401, 403) and status < 500, (method, pattern, status, body)
    assert site.call("GET", "/api/v1/me").json == {"user": "anonymous", "role": "admin", "token": None,
                                                   "via": "anonymous", "auth": False, "session_ttl_s": 12 * 3600}


def test_warns_when_nobody_can_log_in(tmp_path, caplog):
    """Auth on and an empty store: a warning says how to create the first user."""
    site_file = tmp_path / "site.yaml"
    site_file.write_text(SITE.format(api="{}"))
    cfg, _ = load_config(site_file)
    clock = Clock()
    clock.advance(T0)
    runtime = Runtime(cfg, clock, base_dir=tmp_path)
    try:
        with caplog.at_level(logging.WARNING, logger="scada.api.auth"):
            build_app(runtime)
        assert any("scada user add NAME --role admin" in r.message for r in caplog.records)
        caplog.clear()
        runtime.store.add_user("alice", "admin", "hash")
        with caplog.at_level(logging.WARNING, logger="scada.api.auth"):
            build_app(runtime)
        assert not caplog.records
    finally:
        runtime.historian.close()
        runtime.store.close()


def test_an_undeclared_route_stops_the_build(tmp_path, monkeypatch):
    """build_app refuses a blueprint with a route that declares no roles, naming it."""
    import scada.api

    bad = Blueprint("undeclared", url_prefix="/api/v1")

    @bad.get("/forgotten")
    async def forgotten(request):
        """A route someone forgot to declare."""

    monkeypatch.setattr(scada.api, "v1_blueprint", bad)
    site_file = tmp_path / "site.yaml"
    site_file.write_text(SITE.format(api="{}"))
    cfg, _ = load_config(site_file)
    runtime = Runtime(cfg, Clock(), base_dir=tmp_path)
    try:
        with pytest.raises(api_auth.UndeclaredRoutes, match=r"GET /api/v1/forgotten"):
            build_app(runtime)
    finally:
        runtime.historian.close()
        runtime.store.close()


async def _late(request):
    """A route nobody declared."""
    from sanic.response import json

    return json({"leak": True})


def test_a_route_added_after_the_build_stops_the_server(make_site):
    """A route added after build_app stops the server from starting."""
    with pytest.raises(api_auth.UndeclaredRoutes, match="GET /api/v1/late"):
        make_site(extend=lambda app: app.add_route(_late, "/api/v1/late"))


def test_an_undeclared_route_is_refused_to_everyone(make_site, monkeypatch):
    """Were an undeclared route served anyway, the middleware fails closed: 403 even for admin."""
    monkeypatch.setattr(api_auth, "check_routes", lambda app: None)
    site = make_site(extend=lambda app: app.add_route(_late, "/api/v1/late"))
    response = site.call("GET", "/api/v1/late", token=site.tokens["admin"])
    assert response.status == 403 and "declares no roles" in response.json["error"]


def test_route_ctx_roles_declare_too(make_site):
    """Routes without a handler of ours (static files) declare with ctx_roles=."""
    site = make_site(extend=lambda app: app.add_route(_late, "/api/v1/ctx", ctx_roles=auth.ENGINEERING))
    assert site.call("GET", "/api/v1/ctx", token=site.tokens["engineer"]).status == 200
    assert site.call("GET", "/api/v1/ctx", token=site.tokens["crew"]).status == 403


def test_store_trouble_is_503_not_500(shared_site, monkeypatch):
    """A store that cannot answer (locked past the busy timeout) gives a 503 naming it."""
    site = shared_site
    import sqlite3

    def locked(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(site.runtime.store, "token_by_hash", locked)
    response = site.call("GET", "/api/v1/tags", token=site.tokens["viewer"])
    assert response.status == 503 and "database is locked" in response.json["error"]


def test_role_names_in_403_are_the_callers(shared_site):
    """The 403 says which role was refused what."""
    site = shared_site
    response = site.call("GET", "/api/v1/channels", token=site.tokens["billing"])
    assert response.status == 403
    assert re.fullmatch(r"role 'billing' may not GET /api/v1/channels", response.json["error"])


# ---------------------------------------------------------------------------------- concurrent logins, text


def _login_body(username: str, password: str) -> bytes:
    return jsonlib.dumps({"username": username, "password": password}).encode()


def _counting_verify(monkeypatch, before=None) -> list[str]:
    """Count the passwords the login checks (hashes), calling ``before()`` first in the worker thread."""
    checked: list[str] = []
    real = api_auth.verify_password

    def verify(stored, password):
        checked.append(password)
        if before is not None:
            before()
        return real(stored, password)

    monkeypatch.setattr(api_auth, "verify_password", verify)
    return checked


def test_parallel_logins_get_no_more_tries_than_sequential_ones(site, monkeypatch):
    """30 wrong passwords and the right one sent at once: 5 are checked (401), the rest 429; no session."""
    _add_user(site, "ivanov", "crew")
    checked = _counting_verify(monkeypatch)
    bodies = [_login_body("ivanov", f"wrong password {n}") for n in range(30)] + [_login_body("ivanov", PASSWORD)]

    async def all_at_once():
        return await asyncio.gather(*(http(site.app, "POST", "/api/v1/login", {}, body) for body in bodies))

    replies = site.loop.run_until_complete(all_at_once())
    statuses = [reply.status for reply in replies]
    assert statuses.count(401) == 5 and statuses.count(429) == 26 and 200 not in statuses, statuses
    assert len(checked) == 5
    for reply in replies:
        if reply.status == 429:
            assert int(reply.headers["retry-after"]) >= 1 and "try again in" in reply.json["error"]
    assert site.runtime.store.sessions("ivanov") == []
    assert site.app.ctx.login_throttle.in_flight("ivanov") == 0
    # Locked out now, as after five failures one by one.
    response = site.login("ivanov")
    assert response.status == 429 and response.headers["retry-after"] == "300"


def test_parallel_right_logins_all_succeed(site):
    """Attempts at once are only held back while they could add up to a lockout: good ones all pass."""
    _add_user(site, "ivanov", "crew")

    async def all_at_once():
        return await asyncio.gather(*(http(site.app, "POST", "/api/v1/login", {}, _login_body("ivanov", PASSWORD))
                                      for _ in range(4)))

    assert [reply.status for reply in site.loop.run_until_complete(all_at_once())] == [200] * 4
    assert site.app.ctx.login_throttle.in_flight("ivanov") == 0


def test_a_lockout_that_begins_while_a_login_waits_for_a_slot_holds(site, monkeypatch):
    """The lockout is checked again once the attempt has its KDF slot: a locked name is not hashed."""
    _add_user(site, "ivanov", "crew")
    checked = _counting_verify(monkeypatch)
    throttle = site.app.ctx.login_throttle
    slots = site.app.ctx.kdf_slots

    async def scenario():
        for _ in range(api_auth.KDF_SLOTS):
            await slots.acquire()
        task = asyncio.ensure_future(http(site.app, "POST", "/api/v1/login", {}, _login_body("ivanov", PASSWORD)))
        while throttle.in_flight("ivanov") == 0:
            await asyncio.sleep(0)
        for _ in range(throttle.max_failures):  # failures counted meanwhile (another worker, say)
            throttle.failed("ivanov")
        for _ in range(api_auth.KDF_SLOTS):
            slots.release()
        return await task

    reply = site.loop.run_until_complete(asyncio.wait_for(scenario(), 5))
    assert reply.status == 429 and reply.headers["retry-after"] == "300"
    assert checked == [] and throttle.in_flight("ivanov") == 0


def test_no_session_while_locked_out(site, monkeypatch):
    """A right password whose name was locked out while it was being checked opens no session."""
    _add_user(site, "ivanov", "crew")
    throttle = site.app.ctx.login_throttle
    _counting_verify(monkeypatch, before=lambda: [throttle.failed("ivanov") for _ in range(throttle.max_failures)])
    response = site.login("ivanov")
    assert response.status == 429 and "try again in 300 s" in response.json["error"]
    assert site.runtime.store.sessions("ivanov") == [] and throttle.in_flight("ivanov") == 0


@pytest.mark.parametrize("field", ["username", "password"])
def test_login_text_that_is_not_utf8_is_400(site, field, monkeypatch):
    """A lone surrogate (valid JSON, not UTF-8) in the name or password is a 400 naming the field, not a 500."""
    _add_user(site, "ivanov", "crew")
    checked = _counting_verify(monkeypatch)
    fields = {"username": '"ivanov"', "password": '"x"'}
    fields[field] = '"ab\\ud800cd"'
    body = ('{"username": %(username)s, "password": %(password)s}' % fields).encode()
    for _ in range(10):
        response = site.call("POST", "/api/v1/login", body=body)
        assert response.status == 400, response.body
        assert response.json["error"] == f"{field!r} is not valid UTF-8 text: it holds the unpaired surrogate '\\ud800'"
    # Never checked, so never a guess: no lockout follows.
    assert checked == [] and site.login("ivanov").status == 200


# ------------------------------------------------------------------------------------- WebSocket origin


ORIGINS = [
    (None, 101),                        # not a browser
    ("http://localhost", 101),          # this server (Host: localhost, port 80)
    ("http://LOCALHOST:80", 101),
    ("http://evil.example", 403),
    ("http://localhost:8080", 403),     # another port is another origin
    ("https://localhost.evil.example", 403),
    ("null", 403),
]


@pytest.mark.parametrize(("origin", "status"), ORIGINS)
def test_cookie_websocket_from_another_origin_is_403(cookie_session, origin, status):
    """A WebSocket handshake carried by the session cookie alone must come from a page of this server."""
    site, session = cookie_session
    headers = {"Cookie": f"{api_auth.COOKIE}={session}"} | ({"Origin": origin} if origin else {})
    sent = site.websocket("/api/v1/live", "", headers)
    assert _ws_status(sent) == status
    if status == 403:
        assert _ws_body(sent)["error"].startswith("cross-origin WebSocket refused")


def test_token_websockets_are_not_bound_to_an_origin(shared_site):
    """A token in the header or the query is no ambient credential: any page that holds one may connect."""
    site = shared_site
    viewer = site.tokens["viewer"]
    for query, headers in (("", {"Authorization": f"Bearer {viewer}"}), (f"token={viewer}", {})):
        sent = site.websocket("/api/v1/live", query, headers | {"Origin": "http://hmi.example:3000"})
        assert _ws_status(sent) == 101
