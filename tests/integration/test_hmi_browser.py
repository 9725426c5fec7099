"""Integration: the web HMI in a real browser against the demo site as a real process.

One demo process (``scada run`` on a copy of ``config/demo.yaml``) and one
Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright's sync API)
serve the whole module; each test opens its own browser context (its own
cookies and local storage) as the user it needs: a viewer, a crew member
(on a phone-sized screen for acknowledging an alarm), an engineer token
drives the simulator through the API.  The tests find their way through the
page by the test hooks of the HMI spec only (``body[data-view]``,
``body[data-conn]``, ``#login-*``, ``.tile[data-building]``, ``[data-tag]``,
``tr.alarm-row[data-alarm-id]``, ``button.ack``, ``#nav-*``, ``#lang-switch``).

Every wait is a wait for a condition with a deadline, never a fixed sleep.

**Screenshots**: the last test leaves a picture of every view (overview,
building b1, alarms, journal, channels, trends of ``b1-heat.t_supply_c``) at
1920×1080 and at 390×844 in ``test-output/hmi/`` at the top of the
repository (ignored by git), for people to look at after ``make test``.

Without ``/usr/bin/chromium`` (``make system-deps`` installs Debian's
``chromium``) or the ``playwright`` package the tests are skipped, or fail
when ``SCADA_REQUIRE_CHROMIUM=1`` (``make test`` sets it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.integration.demo_site import demo_copy, start_demo, stop_demo
from tests.integration.test_alarms_demo import call, token
from tests.integration.test_run import ROOT, SCADA, wait_for

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
#: Set (to anything but "" or "0") to make a missing Chromium or Playwright a failure, not a skip.
REQUIRE_ENV = "SCADA_REQUIRE_CHROMIUM"
#: Where the screenshots go (kept after the run; see the module's text).
SHOTS = ROOT / "test-output" / "hmi"
TAG = "b1-heat.t_supply_c"
#: Deadline of a wait that spans a poll of the simulated meter (every 5 s in the demo) and a push.
POLL_WAIT_MS = 30_000
UI_WAIT_MS = 10_000
DESKTOP = {"width": 1920, "height": 1080}
PHONE = {"width": 390, "height": 844}
USERS = {"anna": ("viewer", "anna-password-1"), "boris": ("crew", "boris-password-1")}


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
        pytest.fail(f"{REQUIRE_ENV} is set but {reason}")
    pytest.skip(f"{reason}; set {REQUIRE_ENV}=1 to fail instead of skipping")


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module."""
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"{CHROMIUM} is not installed (apt-get install chromium; `make test` does it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM,
                                      args=["--no-sandbox"] if os.geteuid() == 0 else [])
        try:
            yield chromium
        finally:
            chromium.close()


def _add_user(cwd: Path, name: str, role: str, password: str) -> None:
    out = subprocess.run(SCADA + ["user", "add", name, "--role", role, "-c", "site.yaml", "--password-stdin"],
                         cwd=cwd, env={**os.environ, "PYTHONPATH": str(ROOT)}, input=password + "\n",
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Run the demo site with its users; yield (site URL, API base URL, tokens by role); stop it."""
    tmp = tmp_path_factory.mktemp("hmi-demo")
    demo_copy(tmp, mqtt=False)
    for name, (role, password) in USERS.items():
        _add_user(tmp, name, role, password)
    tokens = {role: token(tmp, role) for role in ("engineer", "viewer", "crew")}
    proc, base = start_demo(tmp)
    try:
        wait_for(lambda: call(base, "/health")[0] == 200, 60)
        # The heat meter has answered at least once.
        wait_for(lambda: call(base, f"/tags/{TAG}", tokens["viewer"])[1].get("quality") == "good", 60)
        yield base.removesuffix("/api/v1"), base, tokens
    finally:
        call(base, "/sim/devices/b1-heat", tokens["engineer"], {"clear": True})
        stop_demo(proc)
    assert proc.returncode == 0


class Session:
    """A browser context logged in as one user, and the uncaught page errors of its pages."""

    def __init__(self, browser, site: str, viewport: dict, user: str | None, lang: str = "ru") -> None:
        self.site = site
        self.context = browser.new_context(viewport=viewport, base_url=site, locale="ru-RU",
                                           timezone_id="Europe/Moscow")
        self.context.set_default_timeout(UI_WAIT_MS)
        self.errors: list[str] = []
        if lang != "ru":
            self.context.add_init_script(f"localStorage.setItem('hmi.lang', {json.dumps(lang)})")
        if user is not None:
            role, password = USERS[user]
            response = self.context.request.post(site + "/api/v1/login",
                                                 data={"username": user, "password": password})
            assert response.ok, response.text()

    def page(self, path: str = "/"):
        page = self.context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        if path is not None:
            page.goto(self.site + path)
        return page

    def close(self) -> None:
        self.context.close()
        assert not self.errors, f"uncaught errors in the page: {self.errors}"


@pytest.fixture
def sessions(browser, demo):
    """Open sessions with ``sessions(user, viewport)``; closed (and checked for page errors) after the test."""
    opened: list[Session] = []

    def open_session(user: str | None, viewport: dict = DESKTOP, lang: str = "ru") -> Session:
        session = Session(browser, demo[0], viewport, user, lang)
        opened.append(session)
        return session

    yield open_session
    for session in opened:
        session.close()


def view(page, name: str, timeout: int = UI_WAIT_MS) -> None:
    """Wait until the page shows view ``name`` (``body[data-view]``)."""
    page.wait_for_selector(f'body[data-view="{name}"]', state="attached", timeout=timeout)


def expect(locator):
    """Playwright's ``expect`` (imported late: the module must load without Playwright to be skipped)."""
    from playwright.sync_api import expect as pw_expect

    pw_expect.set_options(timeout=UI_WAIT_MS)
    return pw_expect(locator)


# ------------------------------------------------------------------------ tests


def test_login_page(sessions):
    """A wrong password shows the error; the right one leads to the overview."""
    page = sessions(None).page("/")
    view(page, "login")
    # No strip above the header: the hidden connection banner's offset does not apply here.
    assert page.locator("#hdr").bounding_box()["y"] == 0
    page.fill("#login-user", "anna")
    page.fill("#login-password", "not-her-password")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_be_visible()
    expect(page.locator("#login-error")).not_to_have_text("")
    assert page.locator("body").get_attribute("data-view") == "login"
    page.fill("#login-password", USERS["anna"][1])
    page.click("#login-submit")
    view(page, "overview")
    expect(page.locator("#login-error")).to_be_hidden()


def test_overview_has_a_tile_per_building(sessions, demo):
    _, base, tokens = demo
    status, body = call(base, "/registry/buildings", tokens["viewer"])
    assert status == 200
    ids = [b["id"] for b in body["items"]]
    assert ids
    page = sessions("anna").page("/#/overview")
    view(page, "overview")
    for building in ids:
        expect(page.locator(f'.tile[data-building="{building}"]')).to_have_count(1)
    expect(page.locator(".tile")).to_have_count(len(ids))


def test_value_changes_live(sessions, demo):
    """A value the simulated meter changes reaches the tile without a reload (ru decimal comma)."""
    _, base, tokens = demo
    page = sessions("anna").page("/#/overview")
    view(page, "overview")
    value = page.locator(f'.tile[data-building="b1"] [data-tag="{TAG}"]')
    expect(value).to_have_count(1)
    expect(value).not_to_have_text(re.compile(r"^\s*[-—]?\s*$"))  # the first value is in
    status, body = call(base, "/sim/devices/b1-heat", tokens["engineer"], {"set": {"t_supply_c": 77.7}})
    assert status == 200, body
    expect(value).to_contain_text("77,7", timeout=POLL_WAIT_MS)


@pytest.fixture(scope="module")
def supply_alarm(demo):
    """Push the supply temperature over its limits; yield the unacknowledged alarm's id; clear the meter.

    130 °C is over both ``hi`` (80) and ``hihi`` (95) of ``b1-supply``
    (config/demo.yaml); the most severe one raised is the test's.
    """
    _, base, tokens = demo
    engineer, crew = tokens["engineer"], tokens["crew"]
    status, body = call(base, "/sim/devices/b1-heat", engineer, {"set": {"t_supply_c": 130.0}})
    assert status == 200, body

    def raised():
        ours = {a["level"]: a for a in call(base, "/alarms?state=unacked", crew)[1]["alarms"]
                if a["rule"] == "b1-supply" and a["state"] == "unack_active"}
        return ours.get("hihi") or ours.get("hi")

    alarm = wait_for(raised, POLL_WAIT_MS / 1000)
    try:
        yield alarm["id"]
    finally:
        call(base, "/sim/devices/b1-heat", engineer, {"clear": True})
        # Leave nothing unacknowledged for the next tests' screens.
        ids = [a["id"] for a in call(base, "/alarms?state=unacked", crew)[1]["alarms"] if a["rule"] == "b1-supply"]
        if ids:
            call(base, "/alarms/ack", crew, {"ids": ids})


def test_viewer_cannot_acknowledge(sessions, supply_alarm):
    page = sessions("anna").page("/#/alarms")
    view(page, "alarms")
    row = page.locator(f'tr.alarm-row[data-alarm-id="{supply_alarm}"]')
    expect(row).to_be_visible(timeout=POLL_WAIT_MS)
    expect(row).to_have_attribute("data-state", "unack_active")
    expect(page.locator("button.ack")).to_have_count(0)


def test_crew_acknowledges_on_a_phone(sessions, demo, supply_alarm):
    """The raised alarm shows in the alarms view; the crew member acknowledges it on a 390×844 screen."""
    _, base, tokens = demo
    page = sessions("boris", PHONE).page("/#/alarms")
    view(page, "alarms")
    row = page.locator(f'tr.alarm-row[data-alarm-id="{supply_alarm}"]')
    expect(row).to_be_visible(timeout=POLL_WAIT_MS)
    expect(row).to_have_attribute("data-state", "unack_active")
    button = row.locator("button.ack")
    expect(button).to_be_visible()
    box = button.bounding_box()
    assert box is not None and box["height"] >= 44 - 0.5, f"ack button too small to touch: {box}"
    button.click()
    path = f"/alarms/{quote(supply_alarm, safe='')}"
    wait_for(lambda: call(base, path, tokens["crew"])[1]["alarm"]["state"] == "ack_active", 10)
    alarm = call(base, path, tokens["crew"])[1]["alarm"]
    assert alarm["acked_by"] == "boris", alarm
    expect(row).to_have_attribute("data-state", "ack_active")
    # The meter back to its own values (the alarm returns to normal in a poll or two).
    status, _ = call(base, "/sim/devices/b1-heat", tokens["engineer"], {"clear": True})
    assert status == 200


def test_connection_lost_and_back(sessions):
    """The live WebSocket closing turns the page "down" (greyed, banner); reconnecting turns it "up".

    Playwright routes the page's WebSocket (``page.route_web_socket``,
    Playwright ≥ 1.48) through to the demo; the test closes it as a lost
    network would and refuses reconnections until the page shows "down".
    """
    session = sessions("anna")
    page = session.page(None)
    # Every change of body[data-conn], however short, is recorded.
    page.add_init_script("""
        window.__connLog = [];
        new MutationObserver(() => {
            const state = document.body.getAttribute('data-conn');
            if (window.__connLog[window.__connLog.length - 1] !== state) window.__connLog.push(state);
        }).observe(document, {subtree: true, attributes: true, attributeFilter: ['data-conn']});
    """)
    sockets = []
    refuse = {"on": False}

    def route(ws):
        if refuse["on"]:
            ws.close(code=1011, reason="test: server unreachable")
            return
        server = ws.connect_to_server()
        sockets.append((ws, server))

    page.route_web_socket(re.compile(r"/api/v1/live"), route)
    page.goto(session.site + "/#/overview")
    view(page, "overview")
    page.wait_for_selector('body[data-conn="up"]', state="attached")
    assert sockets, "the page opened no WebSocket to /api/v1/live"
    refuse["on"] = True
    for ws, server in sockets:
        server.close()
        ws.close(code=1011, reason="test: connection lost")
    page.wait_for_selector('body[data-conn="down"]', state="attached")
    expect(page.locator("body")).to_have_class(re.compile(r"\bdisconnected\b"))
    refuse["on"] = False
    # Reconnect backoff is 1, 2, 4 .. 10 s.
    page.wait_for_selector('body[data-conn="up"]', state="attached", timeout=25_000)
    expect(page.locator("body")).not_to_have_class(re.compile(r"\bdisconnected\b"))
    log = page.evaluate("window.__connLog")
    assert log[-2:] == ["down", "up"], log


def test_thrown_out_says_why(sessions):
    """The live feed closed with 4403 (role may no longer read) or 4401 (session ended): the login page says which.

    The server closes the feed at its next credential check (every 30 s); the
    page's side is driven here by the event live.js raises for those closes.
    """
    catalogue = json.loads((ROOT / "hmi" / "static" / "i18n" / "ru.json").read_text(encoding="utf-8"))
    session = sessions("anna")
    page = session.page("/#/alarms")
    view(page, "alarms")
    page.evaluate("window.dispatchEvent(new CustomEvent('hmi:unauthorized', {detail: {ws: 4403}}))")
    view(page, "login")
    lost = catalogue["login.role_lost"].replace("{role}", catalogue["app.role.viewer"])
    expect(page.locator("#login-error")).to_have_text(lost)
    expect(page.locator("#login-logout")).to_be_visible()   # end that session, or sign in as another user
    page.fill("#login-user", "anna")
    page.fill("#login-password", USERS["anna"][1])
    page.click("#login-submit")
    view(page, "alarms")   # back where it was
    page.evaluate("window.dispatchEvent(new CustomEvent('hmi:unauthorized', {detail: {ws: 4401}}))")
    view(page, "login")
    expect(page.locator("#login-error")).to_have_text(catalogue["login.expired"])


def test_kiosk_rotates(sessions):
    page = sessions("anna").page("/?kiosk=1&views=overview,alarms&every=2")
    page.wait_for_selector('body[data-kiosk="1"]', state="attached")
    view(page, "overview")
    expect(page.locator("#nav-overview")).to_be_hidden()
    view(page, "alarms", timeout=15_000)
    view(page, "overview", timeout=15_000)


def test_language_switch(sessions):
    """The language switch turns the navigation English (the catalogue's texts), and back."""
    catalogue = {lang: json.loads((ROOT / "hmi" / "static" / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
                 for lang in ("ru", "en")}
    page = sessions("anna").page("/#/overview")
    view(page, "overview")
    navs = {key: page.locator(f"#nav-{key}") for key in ("overview", "alarms", "journal", "channels", "trends")}
    for key, nav in navs.items():
        expect(nav).to_contain_text(catalogue["ru"][f"nav.{key}"])
    page.click("#lang-switch")
    for key, nav in navs.items():
        expect(nav).to_contain_text(catalogue["en"][f"nav.{key}"])
    assert page.evaluate("document.documentElement.lang") == "en"
    page.click("#lang-switch")
    for key, nav in navs.items():
        expect(nav).to_contain_text(catalogue["ru"][f"nav.{key}"])


VIEWS = [
    ("overview", "/#/overview", ".tile"),
    ("building-b1", "/#/building/b1", ".apt-grid"),
    ("alarms", "/#/alarms", None),
    ("journal", "/#/journal", None),
    ("channels", "/#/channels", ".channel"),
    ("trends", f"/#/trends?tags={TAG}", "canvas#trend-canvas"),
]


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["1920x1080", "390x844"])
def test_screenshots(sessions, size):
    """Leave a screenshot of every view in test-output/hmi/ (see the module's text)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = sessions("boris", size).page("/#/overview")
    for name, path, ready in VIEWS:
        page.goto(page.url.split("#")[0].rstrip("/") + path)
        view(page, name.split("-")[0])
        if ready:
            expect(page.locator(ready).first).to_be_visible()
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(SHOTS / f"{name}-{size['width']}x{size['height']}.png"))
