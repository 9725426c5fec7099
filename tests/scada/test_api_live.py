"""WebSocket ``/api/v1/live``: hello, alarms, subscribe/snapshot, coalesced tag frames, alarm frames, errors.

Sanic's ASGI test client can open a WebSocket but not talk over it (its
``websocket()`` answers every receive with an empty message and drops what
the app sends), so these tests drive the app's ASGI interface themselves:
one queue into the app, one out of it.  The runtime runs on ``task.Clock``;
the only real waiting is the handler's own coalescing timer on the asyncio
loop (:data:`scada.api.live.COALESCE_S`).
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import textwrap

import pytest
from twisted.internet.task import Clock

import scada.api.live as live
from scada import auth
from scada.api import build_app
from scada.app import Runtime
from scada.config import load_config
from tags.model import Sample
from tags.quality import Quality
from tags.timefmt import iso_utc, parse_iso

T0 = parse_iso("2026-11-19T08:00:00Z")
HI = "flow:m1.flow_m3h:hi"
WAIT = 2.0  # seconds a frame may take before a test fails (they come within COALESCE_S)

SITE = textwrap.dedent("""\
    site: {{name: live test}}
    api: {api}
    history: {{backend: sqlite, path: history.db}}
    channels:
      - name: gw
        type: modbus-rtu
        transport: {{tcp: 127.0.0.1:1}}
        devices:
          - {{name: m1, address: 1, profile: generic_water_meter, poll: 10s}}
          - {{name: m2, address: 2, profile: generic_water_meter, poll: 10s}}
    alarms:
      - {{name: flow, type: limit, tag: m1.flow_m3h, hi: 5, deadband: 0.5}}
    """)


class Socket:
    """One WebSocket connection to the app over ASGI."""

    def __init__(self, app, path: str, headers: dict[str, str] | None = None) -> None:
        path, _, query = path.partition("?")
        self.scope = {"type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "ws",
                      "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
                      "headers": [(b"host", b"localhost")] + [(k.lower().encode(), v.encode())
                                                              for k, v in (headers or {}).items()],
                      "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8080), "subprotocols": []}
        self.app = app
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.task: asyncio.Task | None = None

    async def open(self) -> None:
        """Start the app on the connection and wait for it to accept."""

        async def receive():
            return await self.inbox.get()

        async def send(message):
            self.outbox.put_nowait(message)

        # Sanic reads this as the (empty) request body before it accepts.
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.task = asyncio.ensure_future(self.app(self.scope, receive, send))
        message = await asyncio.wait_for(self.outbox.get(), WAIT)
        assert message["type"] == "websocket.accept", message

    async def frame(self) -> dict:
        """Return the next frame the server sent, parsed."""
        message = await asyncio.wait_for(self.outbox.get(), WAIT)
        assert message["type"] == "websocket.send", message
        return jsonlib.loads(message["text"])

    def send(self, message) -> None:
        """Send a text frame (a dict or list is JSON-encoded) or, for bytes, a binary one."""
        if isinstance(message, bytes):
            self.inbox.put_nowait({"type": "websocket.receive", "bytes": message})
            return
        text = message if isinstance(message, str) else jsonlib.dumps(message)
        self.inbox.put_nowait({"type": "websocket.receive", "text": text})

    async def close(self) -> None:
        """Disconnect and wait for the handler to finish."""
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(self.task, WAIT)

    async def settle(self) -> dict:
        """Return the answer to a probe: every message sent before it has been handled."""
        self.send("probe")
        return await self.frame()

    def pending(self) -> int:
        return self.outbox.qsize()


class Site:
    def __init__(self, tmp_path, api: str = "{auth: false}") -> None:
        (tmp_path / "site.yaml").write_text(SITE.format(api=api))
        cfg, _ = load_config(tmp_path / "site.yaml")
        self.clock = Clock()
        self.clock.advance(T0)
        self.runtime = Runtime(cfg, self.clock, base_dir=tmp_path)
        self.runtime.alarms.start()
        self.app = build_app(self.runtime)
        self.loop = asyncio.new_event_loop()
        _, response = self.loop.run_until_complete(self.app.asgi_client.get("/api/v1/health"))
        assert response.status == 200

    def update(self, name: str, value, quality: Quality = Quality.GOOD) -> None:
        self.runtime.tags.update(Sample(name, value, quality, self.clock.seconds()))

    def run(self, scenario) -> None:
        """Run ``scenario(site)`` (a coroutine function) on the site's loop, within a few seconds."""
        self.loop.run_until_complete(asyncio.wait_for(scenario(self), 10))

    def close(self) -> None:
        self.runtime.alarms.stop()
        self.runtime.historian.close()
        self.runtime.store.close()
        self.loop.close()


@pytest.fixture()
def site(tmp_path):
    site = Site(tmp_path)
    yield site
    site.close()


@pytest.fixture()
def closes(monkeypatch) -> list[tuple[int, str]]:
    """Record the ``(code, reason)`` of every close the server sends (Sanic's ASGI connection drops them)."""
    from sanic.server.websockets.connection import WebSocketConnection

    closed: list[tuple[int, str]] = []

    async def close(self, code=1000, reason=""):
        closed.append((code, reason))

    monkeypatch.setattr(WebSocketConnection, "close", close)
    return closed


async def _connect(site: Site, path: str = "/api/v1/live", headers=None) -> tuple[Socket, dict, dict]:
    """Open the socket; return it with its hello and alarms frames."""
    ws = Socket(site.app, path, headers)
    await ws.open()
    return ws, await ws.frame(), await ws.frame()


def test_hello_and_alarms_frames(site):
    """On connect: hello (who, server time on the clock), then the active alarms."""
    site.clock.advance(5)
    site.update("m1.flow_m3h", 7.0)

    async def scenario(site):
        ws, hello, alarms = await _connect(site)
        assert hello == {"type": "hello", "user": "anonymous", "role": "admin", "server_time": iso_utc(T0 + 5)}
        assert alarms["type"] == "alarms" and alarms["flood"] is None
        assert [a["id"] for a in alarms["alarms"]] == [HI]
        assert alarms["alarms"][0]["state"] == "unack_active" and alarms["alarms"][0]["value"] == 7.0
        assert alarms["alarms"][0]["message"].startswith("Превышение")
        assert ws.pending() == 0  # nothing else until asked
        await ws.close()

    site.run(scenario)


def test_subscribe_snapshot_and_coalesced_tags(site):
    """Subscribe answers a snapshot of the prefix; a burst of updates is one tags frame with the latest values."""
    site.update("m1.volume_m3", 100.0)
    site.update("m2.volume_m3", 200.0)

    async def scenario(site):
        ws, _, _ = await _connect(site)
        ws.send({"subscribe": ["m1."]})
        snapshot = await ws.frame()
        assert snapshot["type"] == "snapshot"
        tags = {t["name"]: t for t in snapshot["tags"]}
        assert set(tags) == {"m1.volume_m3", "m1.flow_m3h", "m1.temperature_c", "m1.error_code"}
        assert tags["m1.volume_m3"]["value"] == 100.0 and tags["m1.volume_m3"]["quality"] == "good"
        assert tags["m1.flow_m3h"]["quality"] == "not_yet_read"

        for value in (101.0, 102.0, 103.0):
            site.clock.advance(1)
            site.update("m1.volume_m3", value)
        site.update("m1.flow_m3h", 1.5)
        site.update("m2.volume_m3", 201.0)  # not subscribed
        site.update("m1.volume_m3", 103.0)  # no change: nothing new
        frame = await ws.frame()
        assert frame["type"] == "tags"
        assert sorted(frame["tags"], key=lambda t: t["name"]) == [
            {"name": "m1.flow_m3h", "value": 1.5, "unit": "m3/h", "quality": "good", "ts": iso_utc(T0 + 3)},
            {"name": "m1.volume_m3", "value": 103.0, "unit": "m3", "quality": "good", "ts": iso_utc(T0 + 3)}]
        assert (await ws.settle())["type"] == "error" and ws.pending() == 0

        # update_many (a poll's batch) coalesces the same way; a second prefix adds its snapshot only.
        ws.send({"subscribe": ["m2.volume"]})
        snapshot = await ws.frame()
        assert snapshot == {"type": "snapshot", "tags": [
            {"name": "m2.volume_m3", "value": 201.0, "unit": "m3", "quality": "good", "ts": iso_utc(T0 + 3)}]}
        site.runtime.tags.update_many([Sample("m2.volume_m3", 202.0, Quality.GOOD, T0 + 3),
                                       Sample("m1.flow_m3h", None, Quality.TIMEOUT, T0 + 3)])
        frame = await ws.frame()
        assert {t["name"]: (t["value"], t["quality"]) for t in frame["tags"]} == {
            "m2.volume_m3": (202.0, "good"), "m1.flow_m3h": (None, "timeout")}
        await ws.close()

    site.run(scenario)


def test_non_finite_values_are_null(site):
    """JSON has no NaN: a NaN or infinite reading goes out as null, in snapshots and changes alike."""
    site.update("m1.volume_m3", float("nan"))

    async def scenario(site):
        ws, _, _ = await _connect(site)
        ws.send({"subscribe": "m1.volume_m3"})  # a single string is one prefix
        snapshot = await ws.frame()
        assert [(t["name"], t["value"]) for t in snapshot["tags"]] == [("m1.volume_m3", None)]
        site.update("m1.volume_m3", float("inf"))
        frame = await ws.frame()
        assert frame["type"] == "tags" and frame["tags"][0]["value"] is None
        await ws.close()

    site.run(scenario)


def test_alarm_frames(site):
    """Every journal entry is pushed at once, in order, with the alarm as it is after it."""

    async def scenario(site):
        ws, _, alarms = await _connect(site)
        assert alarms["alarms"] == []
        site.clock.advance(10)
        site.update("m1.flow_m3h", 7.0)  # not subscribed to tags: only the alarm comes
        frame = await ws.frame()
        assert frame["type"] == "alarm"
        assert frame["entry"]["event"] == "raise" and frame["entry"]["alarm_id"] == HI
        assert frame["entry"]["ts"] == iso_utc(T0 + 10) and frame["entry"]["state_to"] == "unack_active"
        assert frame["alarm"]["id"] == HI and frame["alarm"]["state"] == "unack_active"
        assert frame["alarm"]["active_since"] == iso_utc(T0 + 10)

        site.runtime.alarms.ack(HI, "ivanov", "видим")
        site.update("m1.flow_m3h", 3.0)
        ack, clear = await ws.frame(), await ws.frame()
        assert (ack["entry"]["event"], ack["entry"]["user"], ack["entry"]["comment"]) == ("ack", "ivanov", "видим")
        assert ack["alarm"]["state"] == "ack_active" and ack["alarm"]["acked_by"] == "ivanov"
        assert clear["entry"]["event"] == "clear" and clear["alarm"]["state"] == "normal"
        assert (await ws.settle())["type"] == "error"
        await ws.close()

    site.run(scenario)


def test_alarm_and_tag_frames_together(site):
    """An alarm raised by a subscribed tag: the alarm frame at once, the tag change after the coalescing."""

    async def scenario(site):
        ws, _, _ = await _connect(site)
        ws.send({"subscribe": [""]})  # every tag
        snapshot = await ws.frame()
        assert len(snapshot["tags"]) == len(site.runtime.tags)
        site.update("m1.flow_m3h", 7.0)
        first, second = await ws.frame(), await ws.frame()
        assert first["type"] == "alarm" and first["entry"]["event"] == "raise"
        assert second["type"] == "tags" and [t["name"] for t in second["tags"]] == ["m1.flow_m3h"]
        await ws.close()

    site.run(scenario)


def test_alarm_frames_in_the_clients_language(site):
    """With ?lang=en the alarm frames speak English, as the alarms list does."""

    async def scenario(site):
        ws, _, _ = await _connect(site, "/api/v1/live?lang=en")
        site.update("m1.flow_m3h", 7.0)
        frame = await ws.frame()
        assert frame["alarm"]["message"].startswith("High limit exceeded")
        await ws.close()
        ws, _, alarms = await _connect(site, "/api/v1/live?lang=en")
        assert alarms["alarms"][0]["message"] == frame["alarm"]["message"]
        await ws.close()
        ws, _, alarms = await _connect(site, "/api/v1/live")
        assert alarms["alarms"][0]["message"].startswith("Превышение")
        await ws.close()

    site.run(scenario)


BAD_MESSAGES = [
    ("not json", "JSON object"),
    ("", "JSON object"),
    ('["m1."]', "JSON object"),
    ("42", "JSON object"),
    ("null", "JSON object"),
    (b"\xff\xfe", "JSON object"),
    ("[" * 100_000, "JSON object"),
    ({"subscribe": 5}, "'subscribe' must be a list"),
    ({"subscribe": None}, "'subscribe' must be a list"),
    ({"subscribe": ["m1.", 5]}, "'subscribe' must be a list"),
    ({"unsubscribe": {"m1.": True}}, "'unsubscribe' must be a list"),
    ({"alarms": "no"}, "'alarms' must be true or false"),
    ({"alarms": 0}, "'alarms' must be true or false"),
    ({"subscribe": ["m1."], "verbose": True}, "unknown key 'verbose'"),
]


def test_bad_messages_get_an_error_frame_and_the_connection_stays(site):
    """A message the server cannot use is answered with an error frame; the connection goes on working."""

    async def scenario(site):
        ws, _, _ = await _connect(site)
        for message, words in BAD_MESSAGES:
            ws.send(message)
            error = await ws.frame()
            assert error["type"] == "error" and words in error["error"], (message, error)
        assert ws.pending() == 0 and not ws.task.done()
        ws.send({"subscribe": ["m2.flow"]})
        assert (await ws.frame())["type"] == "snapshot"
        site.update("m2.flow_m3h", 2.0)
        assert (await ws.frame())["tags"][0]["value"] == 2.0
        ws.send(b'{"unsubscribe": ["m2.flow"]}')  # a binary frame with JSON in it is fine
        assert (await ws.settle())["type"] == "error"
        await ws.close()

    site.run(scenario)


def test_unsubscribe_stops_tag_frames(site, monkeypatch):
    """After unsubscribe no tag frames come for that prefix; the others keep coming."""
    # No coalescing delay: a frame that should not come would be sent before the probe's answer.
    monkeypatch.setattr(live, "COALESCE_S", 0.0)

    async def scenario(site):
        ws, _, _ = await _connect(site)
        ws.send({"subscribe": ["m1.", "m2."]})
        assert (await ws.frame())["type"] == "snapshot"
        site.update("m1.volume_m3", 1.0)
        assert (await ws.frame())["tags"][0]["name"] == "m1.volume_m3"
        ws.send({"unsubscribe": ["m1.", "never-subscribed"]})
        assert (await ws.settle())["type"] == "error"
        site.update("m1.volume_m3", 2.0)
        site.update("m2.volume_m3", 5.0)
        frame = await ws.frame()
        assert [t["name"] for t in frame["tags"]] == ["m2.volume_m3"]
        site.update("m1.volume_m3", 3.0)
        assert (await ws.settle())["type"] == "error" and ws.pending() == 0
        # Subscribing again gives a fresh snapshot with the value missed meanwhile.
        ws.send({"subscribe": "m1.volume"})
        snapshot = await ws.frame()
        assert snapshot["tags"][0]["value"] == 3.0
        await ws.close()

    site.run(scenario)


def test_alarms_off_and_on(site):
    """{"alarms": false} stops alarm frames; true starts them again with the current list."""

    async def scenario(site):
        ws, _, _ = await _connect(site)
        ws.send({"alarms": False})
        assert (await ws.settle())["type"] == "error"
        site.update("m1.flow_m3h", 7.0)
        assert (await ws.settle())["type"] == "error" and ws.pending() == 0
        ws.send({"alarms": True})
        alarms = await ws.frame()
        assert alarms["type"] == "alarms" and [a["id"] for a in alarms["alarms"]] == [HI]
        ws.send({"alarms": True})  # already on: no second list
        assert (await ws.settle())["type"] == "error"
        site.runtime.alarms.ack(HI, "ivanov")
        assert (await ws.frame())["entry"]["event"] == "ack"
        await ws.close()

    site.run(scenario)


def test_disconnect_releases_subscriptions(site):
    """A client that goes away leaves no subscriptions behind (tags and alarms)."""

    before = list(site.runtime.alarms._subscribers)
    tag_subscriptions = len(site.runtime.tags._subscriptions)

    async def scenario(site):
        ws, _, _ = await _connect(site)
        assert len(site.runtime.alarms._subscribers) == len(before) + 1
        ws.send({"subscribe": ["m1.", "m2."]})
        await ws.frame()
        # One table subscription per client, for the prefix its prefixes share.
        assert len(site.runtime.tags._subscriptions) == tag_subscriptions + 1
        assert site.runtime.tags._subscriptions[-1].prefix == "m"
        await ws.close()
        assert len(site.runtime.tags._subscriptions) == tag_subscriptions
        assert ws.task.done() and ws.task.exception() is None
        site.update("m1.flow_m3h", 7.0)  # would raise into a dead client if it were still subscribed
        assert site.runtime.alarms.errors == 0
        assert ws.pending() == 0

    site.run(scenario)
    assert site.runtime.alarms._subscribers == before


def test_prefix_limit(site, monkeypatch):
    """Past MAX_PREFIXES a subscribe is refused whole (an error frame); what fits is fine."""
    monkeypatch.setattr(live, "MAX_PREFIXES", 2)

    async def scenario(site):
        ws, _, _ = await _connect(site)
        ws.send({"subscribe": ["a", "b", "c"]})
        error = await ws.frame()
        assert error["type"] == "error" and "at most 2 prefixes" in error["error"]
        ws.send({"subscribe": ["a", "a"]})  # nothing of the refused request was kept; duplicates count once
        assert (await ws.frame())["type"] == "snapshot"
        ws.send({"subscribe": ["a", "b"]})  # "a" is there already
        assert (await ws.frame())["type"] == "snapshot"
        ws.send({"subscribe": ["c"]})
        assert "at most 2 prefixes" in (await ws.frame())["error"]
        ws.send({"unsubscribe": ["a"], "subscribe": ["c"]})  # subscribe is applied first
        assert "at most 2 prefixes" in (await ws.frame())["error"]
        ws.send({"unsubscribe": ["a"]})
        ws.send({"subscribe": ["c"]})
        assert (await ws.frame())["type"] == "snapshot"
        await ws.close()

    site.run(scenario)


def test_default_prefix_limit_is_100(site):
    async def scenario(site):
        ws, _, _ = await _connect(site)
        ws.send({"subscribe": [f"p{n}." for n in range(101)]})
        error = await ws.frame()
        assert error["type"] == "error" and "at most 100 prefixes" in error["error"]
        ws.send({"subscribe": [f"p{n}." for n in range(100)]})
        assert (await ws.frame()) == {"type": "snapshot", "tags": []}
        await ws.close()

    site.run(scenario)


def test_many_prefixes_cost_one_table_subscription(site, monkeypatch):
    """100 prefixes over 10,000 tags: one table subscription, its routes worked out once, not once per prefix."""
    from tags.model import TagDef
    from tags.table import TagTable

    table = site.runtime.tags
    for n in range(10_000):
        table.define(TagDef(f"x{n // 100:03d}.t{n % 100:02d}", "m3"))
    routed = []
    real_route = TagTable._route
    monkeypatch.setattr(TagTable, "_route", lambda self, name, entry: (routed.append(name),
                                                                       real_route(self, name, entry)))
    prefixes = [f"x{n:03d}." for n in range(100)]
    before = len(table._subscriptions)

    async def scenario(site):
        ws, _, _ = await _connect(site)
        ws.send({"subscribe": prefixes})
        snapshot = await ws.frame()
        assert len(snapshot["tags"]) == 10_000
        assert len(table._subscriptions) == before + 1 and table._subscriptions[-1].prefix == "x0"
        assert len(routed) == 10_000  # once per tag under "x0", for the one subscription
        # Tags of the prefixes come; a tag under the table prefix but not a client prefix does not.
        table.define(TagDef("x0zz.t00", "m3"))
        site.update("x0zz.t00", 1.0)
        site.update("x042.t07", 5.0)
        frame = await ws.frame()
        assert [t["name"] for t in frame["tags"]] == ["x042.t07"]
        routed.clear()
        ws.send({"unsubscribe": prefixes[1:]})  # the shared prefix grows to "x000.": one re-subscription
        assert (await ws.settle())["type"] == "error"
        assert len(table._subscriptions) == before + 1 and table._subscriptions[-1].prefix == "x000."
        assert len(routed) <= 10_001 + 100
        await ws.close()
        assert len(table._subscriptions) == before

    site.run(scenario)


def test_unpaired_surrogates_get_an_error_frame(site):
    """A prefix JSON can carry but UTF-8 cannot (a lone surrogate) is an error frame naming the key."""

    async def scenario(site):
        ws, _, _ = await _connect(site)
        for key in ("subscribe", "unsubscribe"):
            ws.send('{"%s": ["m1.", "\\ud800"]}' % key)
            error = await ws.frame()
            assert error["type"] == "error" and f"{key!r} is not valid UTF-8 text" in error["error"], error
            assert "\\ud800" in error["error"]
        assert ws.pending() == 0 and not ws.task.done()
        await ws.close()

    site.run(scenario)


def test_a_slow_client_is_cut_off(site, monkeypatch, closes):
    """Past MAX_PENDING_FRAMES waiting frames the client is closed (1013) instead of queued without end."""
    monkeypatch.setattr(live, "MAX_PENDING_FRAMES", 3)

    async def scenario(site):
        ws, _, _ = await _connect(site)
        for n in range(6):  # all queued before the sender runs
            site.runtime.alarms.comment(HI, "ivanov", f"#{n}")
        frames = [await ws.frame() for _ in range(3)]
        assert [f["entry"]["comment"] for f in frames] == ["#0", "#1", "#2"]
        await asyncio.wait_for(ws.task, WAIT)  # the handler ends by itself
        assert ws.pending() == 0

    site.run(scenario)
    assert closes[0] == (1013, "client too slow")


def test_hello_names_the_token_user(tmp_path):
    """With auth on, hello names the caller and role the token gives."""
    site = Site(tmp_path, api="{}")
    try:
        token = auth.new_api_token()
        site.runtime.store.add_token("wall", "viewer", auth.token_hash(token))

        async def scenario(site):
            ws, hello, alarms = await _connect(site, f"/api/v1/live?token={token}")
            assert (hello["user"], hello["role"]) == ("token:wall", "viewer") and alarms["type"] == "alarms"
            await ws.close()

        site.run(scenario)
    finally:
        site.close()


REVOCATIONS = [
    # (how the credential stops holding, credential kind, close code and reason)
    ("logout", "session", lambda store, token: store.delete_session(auth.token_hash(token)),
     (4401, "invalid session: log in again")),
    ("password change", "session", lambda store, token: store.set_password("ivanov", "new hash"),
     (4401, "invalid session: log in again")),
    ("user removed", "session", lambda store, token: store.remove_user("ivanov"),
     (4401, "invalid session: log in again")),
    ("expiry", "session", lambda store, token: None, (4401, "the session has expired: log in again")),
    ("role may not read", "session", lambda store, token: store.set_role("ivanov", "billing"),
     (4403, "role 'billing' may no longer use this")),
    ("token revoked", "token", lambda store, token: store.revoke_token("wall"), (4401, "invalid API token")),
]


@pytest.mark.parametrize(("why", "kind", "revoke", "close"), REVOCATIONS, ids=[r[0] for r in REVOCATIONS])
def test_a_revoked_credential_closes_the_feed(tmp_path, closes, why, kind, revoke, close):
    """The credential is checked again every RECHECK_S on the runtime's clock; once it fails, 4401 or 4403."""
    # Sessions slide after half of api.session_ttl: the 89 s one of "expiry" is not renewed by the handshake.
    site = Site(tmp_path, api="{session_ttl: 2m}")
    try:
        store = site.runtime.store
        store.add_user("ivanov", "operator", "hash")
        session = auth.new_session_token()
        # For "expiry", the session outlives two checks, not three.
        store.create_session("ivanov", auth.token_hash(session), 3 * live.RECHECK_S - 1 if why == "expiry" else 3600)
        token = auth.new_api_token()
        store.add_token("wall", "viewer", auth.token_hash(token))
        credential = session if kind == "session" else token

        async def scenario(site):
            ws, hello, _ = await _connect(site, f"/api/v1/live?token={credential}")
            assert hello["user"] == ("ivanov" if kind == "session" else "token:wall")
            site.clock.advance(live.RECHECK_S)  # checked, still good
            if kind == "session":
                store.set_role("ivanov", "crew")  # another role that may read: the feed goes on
            site.clock.advance(live.RECHECK_S)
            assert (await ws.settle())["type"] == "error" and not closes
            revoke(store, credential)
            site.clock.advance(live.RECHECK_S - 1)
            assert (await ws.settle())["type"] == "error" and not closes  # not checked yet
            site.clock.advance(1)
            await asyncio.wait_for(ws.task, WAIT)  # the handler ends by itself
            assert ws.pending() == 0

        site.run(scenario)
        assert closes[0] == close  # (then Sanic's own close after the handler, which goes nowhere)
        assert not site.clock.getDelayedCalls()  # no check left behind
    finally:
        site.close()


def test_close_reasons_fit_a_close_frame():
    assert live._close_reason("short") == "short"
    long = live._close_reason("ж" * 100)
    assert len(long.encode()) <= 123 and long.endswith("...") and long.startswith("жжж")


def test_a_closed_feed_leaves_no_check_behind(site):
    """Disconnecting cancels the pending credential check (auth off: it never fails, but it is not left over)."""

    async def scenario(site):
        ws, _, _ = await _connect(site)
        assert len(site.clock.getDelayedCalls()) >= 1
        site.clock.advance(live.RECHECK_S * 3)  # anonymous: always good, checked again and again
        assert (await ws.settle())["type"] == "error"
        await ws.close()

    before = len(site.clock.getDelayedCalls())
    site.run(scenario)
    assert len(site.clock.getDelayedCalls()) == before


def test_a_repeated_value_is_sent_with_its_new_time(site):
    """A poll that reads the same value again still goes out (newer ts): the HMI tells fresh from stale by it."""
    site.update("m1.volume_m3", 100.0)

    async def scenario(site):
        ws, _, _ = await _connect(site)
        ws.send({"subscribe": ["m1.volume"]})
        assert (await ws.frame())["type"] == "snapshot"
        site.clock.advance(10)
        site.update("m1.volume_m3", 100.0)
        frame = await ws.frame()
        assert frame == {"type": "tags", "tags": [
            {"name": "m1.volume_m3", "value": 100.0, "unit": "m3", "quality": "good", "ts": iso_utc(T0 + 10)}]}
        await ws.close()

    site.run(scenario)


def test_channel_statistics_on_request_and_every_few_seconds(site):
    """{"channels": true} answers channel and device statistics at once, then every CHANNELS_S of the clock."""

    async def scenario(site):
        ws, _, _ = await _connect(site)
        assert (await ws.settle())["type"] == "error" and ws.pending() == 0  # none unasked
        ws.send({"channels": True})
        frame = await ws.frame()
        assert frame["type"] == "channels" and frame["server_time"] == iso_utc(T0)
        assert [c["name"] for c in frame["channels"]] == ["gw"]
        assert [(d["name"], d["channel"], d["poll_s"]) for d in frame["devices"]] == [
            ("m1", "gw", 10.0), ("m2", "gw", 10.0)]
        site.clock.advance(live.CHANNELS_S)
        frame = await ws.frame()
        assert frame["type"] == "channels" and frame["server_time"] == iso_utc(T0 + live.CHANNELS_S)
        ws.send({"channels": False})
        assert (await ws.settle())["type"] == "error"
        site.clock.advance(live.CHANNELS_S * 3)
        assert ws.pending() == 0
        ws.send({"channels": "yes"})
        assert (await ws.frame()) == {"type": "error", "error": "'channels' must be true or false"}
        ws.send({"channels": True})
        assert (await ws.frame())["type"] == "channels"
        await ws.close()
        # The closed feed leaves no timer behind.
        assert not [c for c in site.clock.getDelayedCalls() if "send_channels" in repr(c.func)]

    site.run(scenario)


def test_the_check_sees_a_session_extended_by_use(tmp_path, closes):
    """A session kept alive by HTTP requests (the HMI's /me calls) keeps its feed open; idle, it ends with 4401."""
    from tests.scada.asgi import http

    site = Site(tmp_path, api="{session_ttl: 2m}")
    try:
        store = site.runtime.store
        store.add_user("ivanov", "viewer", "hash")
        session = auth.new_session_token()
        store.create_session("ivanov", auth.token_hash(session), 120)

        async def scenario(site):
            ws, hello, _ = await _connect(site, f"/api/v1/live?token={session}")
            assert hello["user"] == "ivanov"
            site.clock.advance(live.RECHECK_S)           # T0+30: checked, 90 s left
            site.clock.advance(40)                        # T0+70: 50 s left, under half of 2 min
            me = await http(site.app, "GET", "/api/v1/me", {"Authorization": f"Bearer {session}"}, b"")
            assert me.status == 200
            assert store.session_by_hash(auth.token_hash(session)).expires == T0 + 70 + 120
            for _ in range(3):                            # to T0+160, past the login's end (T0+120)
                site.clock.advance(live.RECHECK_S)
            assert (await ws.settle())["type"] == "error" and not closes
            site.clock.advance(live.RECHECK_S)            # T0+190: idle for 2 min since T0+70
            await asyncio.wait_for(ws.task, WAIT)

        site.run(scenario)
        assert closes[0] == (4401, "the session has expired: log in again")
    finally:
        site.close()
