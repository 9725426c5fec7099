# -*- test-case-name: tests.scada.test_api_live -*-
"""WebSocket ``/api/v1/live``: tag changes and alarm transitions pushed to the HMI.

Protocol (JSON text frames):

client → server
    ``{"subscribe": ["b1-", "b2-heat."]}``  tag name prefixes ("" = every tag);
    ``{"unsubscribe": ["b1-"]}``; ``{"alarms": false}`` stops alarm pushes
    (on by default); ``{"channels": true}`` asks for channel and device
    statistics (off by default).
server → client
    ``{"type": "hello", "user", "role", "server_time"}`` on connect, then
    ``{"type": "alarms", "alarms": [...], "flood": ...}`` (the active list);
    ``{"type": "snapshot", "tags": [...]}`` answers each subscribe with the
    current values; ``{"type": "tags", "tags": [...]}`` carries changes,
    coalesced per tag over :data:`COALESCE_S` so a burst of polls is one
    frame.  A poll that repeats a value is sent too (same value, newer
    ``ts``), so a screen can tell a fresh value from a stale one;
    ``{"type": "alarm", "entry": {...}, "alarm": {...}}`` for every
    journal entry, in order, at once; ``{"type": "channels", "server_time",
    "channels": [...], "devices": [...]}`` (as ``GET /channels`` and ``GET
    /devices``) at once and every :data:`CHANNELS_S` seconds while asked
    for (a screen can keep its clock correction and know the link is alive);
    ``{"type": "error", "error": "..."}``
    for a message the server cannot use (the connection stays open).

A client that cannot keep up (more than :data:`MAX_PENDING_FRAMES` frames
waiting) is disconnected with close code 1013 rather than let memory grow.
A connection holds at most :data:`MAX_PREFIXES` prefixes.  Every
:data:`RECHECK_S` seconds the credential the connection was opened with is
checked again (:func:`scada.api.auth.recheck`): once the session has ended
or expired or the token was revoked, the server closes with code 4401; once
the role may no longer read the feed, with 4403.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import os.path

from sanic import Blueprint

from scada.api import auth as api_auth
from scada.api.auth import READ, roles
from scada.api.common import check_text, lang
from scada.api.openapi import doc
from scada.api.v1 import channels_json, devices_json
from tags.timefmt import iso_utc

log = logging.getLogger(__name__)
bp = Blueprint("api_v1_live", url_prefix="/api/v1")

COALESCE_S = 0.1
MAX_PENDING_FRAMES = 1000
MAX_PREFIXES = 100
#: Seconds between checks that the connection's credential still holds (on the runtime's reactor clock).
RECHECK_S = 30.0
#: Seconds between channel statistics frames (on the runtime's reactor clock).
CHANNELS_S = 5.0


class _Client:
    """One WebSocket's subscriptions and outgoing frames.

    However many prefixes it asks for, a client holds one subscription to
    the tag table, for the longest prefix they all share, and picks its
    tags out of that with one ``str.startswith`` over all its prefixes:
    adding or removing prefixes costs one re-subscription per message, not
    one per prefix.
    """

    def __init__(self, runtime, lang: str) -> None:
        self.runtime = runtime
        self.lang = lang
        # Tag updates arrive from the reactor, which runs on this same loop.
        self.loop = asyncio.get_running_loop()
        self.frames: asyncio.Queue[str | None] = asyncio.Queue()
        #: The prefixes asked for, in order (a dict for an ordered set).
        self.prefixes: dict[str, None] = {}
        self.matching: tuple[str, ...] = ()
        self.table_prefix: str | None = None
        self.unsubscribe_table = None
        self.pending: dict[str, dict] = {}
        self.flush_handle: asyncio.TimerHandle | None = None
        self.unsubscribe_alarms = None
        self.channels_call = None
        self.overflowed = False
        #: Set to ``(close code, reason)`` when the server ends the connection.
        self.ended: asyncio.Future = self.loop.create_future()

    def end(self, code: int, reason: str) -> None:
        """Close the connection with ``code`` as soon as the handler sees it, sending nothing more."""
        if not self.ended.done():
            self.ended.set_result((code, reason))

    def put(self, frame: dict) -> None:
        if self.overflowed:
            return
        if self.frames.qsize() >= MAX_PENDING_FRAMES:
            self.overflowed = True
            self.frames.put_nowait(None)
            return
        self.frames.put_nowait(jsonlib.dumps(frame, ensure_ascii=False, allow_nan=False, default=str))

    # ------------------------------------------------------------------ tags

    def on_sample(self, sample) -> None:
        if not sample.name.startswith(self.matching):
            return
        state = self.runtime.tags.get(sample.name)
        if state is None:
            return
        self.pending[sample.name] = state.to_json()
        if self.flush_handle is None:
            self.flush_handle = self.loop.call_later(COALESCE_S, self.flush)

    def flush(self) -> None:
        self.flush_handle = None
        if self.pending:
            tags, self.pending = list(self.pending.values()), {}
            self.put({"type": "tags", "tags": _clean(tags)})

    def subscribe(self, prefixes: list[str]) -> None:
        """Add ``prefixes`` (all or, past :data:`MAX_PREFIXES`, none) and answer the snapshot of the new ones."""
        new = [p for p in dict.fromkeys(prefixes) if p not in self.prefixes]
        if len(self.prefixes) + len(new) > MAX_PREFIXES:
            raise ValueError(f"at most {MAX_PREFIXES} prefixes per connection "
                             f"({len(self.prefixes)} subscribed, {len(new)} more asked for)")
        self.prefixes.update(dict.fromkeys(new))
        self._follow()
        snapshot = []
        if new:
            wanted = tuple(new)
            snapshot = [s.to_json() for s in self.runtime.tags.states(os.path.commonprefix(new))
                        if s.definition.name.startswith(wanted)]
        self.put({"type": "snapshot", "tags": _clean(snapshot)})

    def unsubscribe(self, prefixes: list[str]) -> None:
        for prefix in prefixes:
            self.prefixes.pop(prefix, None)
        self._follow()

    def _follow(self) -> None:
        """Hold the one table subscription the prefixes need (none without prefixes)."""
        self.matching = tuple(self.prefixes)
        wanted = os.path.commonprefix(self.matching) if self.matching else None
        if wanted == self.table_prefix:
            return
        if self.unsubscribe_table is not None:
            self.unsubscribe_table()
            self.unsubscribe_table = None
        self.table_prefix = wanted
        if wanted is not None:
            self.unsubscribe_table = self.runtime.tags.subscribe(self.on_sample, prefix=wanted, changes_only=False)

    # ---------------------------------------------------------------- alarms

    def alarms_on(self, on: bool) -> None:
        engine = getattr(self.runtime, "alarms", None)
        if engine is None:
            return
        if on and self.unsubscribe_alarms is None:
            self.unsubscribe_alarms = engine.subscribe(self.on_alarm)
            self.put({"type": "alarms", "alarms": [a.to_json(self.lang) for a in engine.alarms("active")],
                      "flood": engine.flood})
        elif not on and self.unsubscribe_alarms is not None:
            self.unsubscribe_alarms()
            self.unsubscribe_alarms = None

    def on_alarm(self, event) -> None:
        entry = event.entry.to_json()
        entry["ts"] = iso_utc(event.entry.ts)
        alarm = event.alarm
        # The event carries the message in the engine's language; this client may have asked
        # for another (?lang=), as its "alarms" list shows.  Called synchronously by the
        # engine, so the alarm is still as the event describes it.
        try:
            message = self.runtime.alarms.get(alarm["id"]).render_message(self.lang)
        except KeyError:
            message = alarm["message"]
        if message != alarm["message"]:
            alarm = {**alarm, "message": message}
        self.put({"type": "alarm", "entry": entry, "alarm": alarm})

    # -------------------------------------------------------------- channels

    def channels_on(self, on: bool) -> None:
        if on and self.channels_call is None:
            self.send_channels()
        elif not on and self.channels_call is not None:
            if self.channels_call.active():
                self.channels_call.cancel()
            self.channels_call = None

    def send_channels(self) -> None:
        self.channels_call = self.runtime.reactor.callLater(CHANNELS_S, self.send_channels)
        self.put({"type": "channels", "server_time": iso_utc(self.runtime.reactor.seconds()),
                  "channels": channels_json(self.runtime), "devices": devices_json(self.runtime)})

    def close(self) -> None:
        self.unsubscribe(list(self.prefixes))
        self.alarms_on(False)
        self.channels_on(False)
        self.end(1000, "")
        if self.flush_handle is not None:
            self.flush_handle.cancel()
            self.flush_handle = None


def _clean(tags: list[dict]) -> list[dict]:
    """Replace non-finite values (JSON has no NaN) by None."""
    for tag in tags:
        value = tag.get("value")
        if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            tag["value"] = None
    return tags


def _strings(message: dict, key: str) -> list[str]:
    value = message[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise ValueError(f"{key!r} must be a list of tag name prefixes (strings)")
    for prefix in value:
        check_text(prefix, key)
    return value


def _handle(client: _Client, raw) -> None:
    """Apply one client message; raise ValueError with a clear message for a bad one."""
    try:
        message = jsonlib.loads(raw)
    except (TypeError, ValueError, RecursionError):  # RecursionError: "[[[[..." nested too deep
        raise ValueError("a message must be a JSON object, e.g. {\"subscribe\": [\"b1-\"]}") from None
    if not isinstance(message, dict):
        raise ValueError("a message must be a JSON object, e.g. {\"subscribe\": [\"b1-\"]}")
    known = {"subscribe", "unsubscribe", "alarms", "channels"}
    unknown = sorted(set(message) - known)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (use subscribe, unsubscribe, alarms, channels)")
    if "subscribe" in message:
        client.subscribe(_strings(message, "subscribe"))
    if "unsubscribe" in message:
        client.unsubscribe(_strings(message, "unsubscribe"))
    if "alarms" in message:
        if not isinstance(message["alarms"], bool):
            raise ValueError("'alarms' must be true or false")
        client.alarms_on(message["alarms"])
    if "channels" in message:
        if not isinstance(message["channels"], bool):
            raise ValueError("'channels' must be true or false")
        client.channels_on(message["channels"])


@bp.websocket("/live")
@roles(*READ)
@doc(description=__doc__)  # the protocol above, on the docs page (OpenAPI cannot describe a WebSocket)
async def live(request, ws):
    """Push tag changes (by subscribed prefix) and alarm transitions until the client goes."""
    runtime = request.app.ctx.runtime
    client = _Client(runtime, lang(request))
    user = getattr(request.ctx, "user", None)
    client.put({"type": "hello", "user": getattr(user, "name", None), "role": getattr(user, "role", None),
                "server_time": iso_utc(runtime.reactor.seconds())})
    client.alarms_on(True)
    allowed = api_auth.declared_roles(request.route)
    credential = getattr(request.ctx, "credential_hash", None)
    recheck = None

    def check() -> None:
        nonlocal recheck
        recheck = None
        refused = api_auth.recheck(runtime, user, credential, allowed)
        if refused is not None:
            log.info("closing the live feed of %s: %s", getattr(user, "name", None), refused[1])
            client.end(*refused)
        elif not client.ended.done():
            recheck = runtime.reactor.callLater(RECHECK_S, check)

    recheck = runtime.reactor.callLater(RECHECK_S, check)

    async def sender() -> None:
        while True:
            frame = await client.frames.get()
            if frame is None:
                await ws.close(code=1013, reason="client too slow")
                return
            await ws.send(frame)

    sending = asyncio.ensure_future(sender())
    try:
        while not sending.done() and not client.ended.done():
            receiving = asyncio.ensure_future(ws.recv())
            done, _ = await asyncio.wait({receiving, sending, client.ended}, return_when=asyncio.FIRST_COMPLETED)
            if receiving not in done:
                receiving.cancel()
                break
            raw = receiving.result()
            if raw is None:
                break
            try:
                _handle(client, raw)
            except ValueError as exc:
                client.put({"type": "error", "error": str(exc)})
        if client.ended.done():
            sending.cancel()
            code, reason = client.ended.result()
            await ws.close(code=code, reason=_close_reason(reason))
    finally:
        if recheck is not None and recheck.active():
            recheck.cancel()
        client.close()
        sending.cancel()


def _close_reason(text: str) -> str:
    """Return ``text`` cut to what a close frame carries (123 bytes of UTF-8)."""
    data = text.encode("utf-8")
    return text if len(data) <= 123 else data[:120].decode("utf-8", "ignore") + "..."
