"""Integration: alarm notifications reach a real HTTP server and a real SMTP server on 127.0.0.1.

The servers run in the test process: a small ``http.server`` that records
each webhook POST and answers from a per-path script (503 then 200, 404,
…), and ``aiosmtpd``'s Controller (its own asyncio loop in a thread, the
library's way) that records each message.  The notifier runs in a child
process (this file run as a script) on Twisted's asyncio reactor, as
``scada run`` has it: it is built by ``scada.notify_build.build_notifier``
from a site configuration, fed one alarm raise by a tiny engine, and
reports its journal as JSON once every delivery has an outcome.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from tests.integration.child import child_main, run_child  # noqa: E402
from tests.integration.servers import free_port  # noqa: E402

pytestmark = pytest.mark.integration

SITE = "Демо-УК"
ALARM = "leak:kv12.status:leak"
MESSAGE = "Протечка: kv12 (kv12.status)"


# ---------------------------------------------------------------------------
# Child process side: the notifier on the asyncio reactor
# ---------------------------------------------------------------------------


class _Engine:
    """The engine's subscriber API, enough to raise one alarm."""

    def __init__(self) -> None:
        self.callbacks: list[Any] = []
        self.alarm = {"id": ALARM, "rule": "leak", "tag": "kv12.status", "device": "kv12", "priority": "critical",
                      "state": "unack_active", "active_since": None, "value": 1.0, "message": MESSAGE,
                      "acked_by": None, "count": 1}

    def subscribe(self, callback: Any) -> None:
        self.callbacks.append(callback)

    def get(self, alarm_id: str) -> Any:
        from types import SimpleNamespace

        from alarms.model import State

        return SimpleNamespace(state=State(self.alarm["state"]), to_json=lambda: dict(self.alarm))

    def raise_alarm(self, ts: float) -> None:
        from types import SimpleNamespace

        from alarms.model import JournalEntry
        from tags.timefmt import iso_utc

        self.alarm["active_since"] = iso_utc(ts)
        entry = JournalEntry(ts=ts, alarm_id=ALARM, event="raise", state_from="normal", state_to="unack_active",
                             rule="leak", tag="kv12.status", priority="critical", value=1.0, message=MESSAGE)
        for callback in self.callbacks:
            callback(SimpleNamespace(entry=entry, alarm=dict(self.alarm)))


async def scenario(reactor: Any, notifications: dict[str, Any], expect: int) -> dict[str, Any]:
    """Build the notifier from ``notifications``, raise one alarm, wait for ``expect`` journal lines."""
    from twisted.internet import task

    from alarms.model import MemoryJournal
    from scada.config.model import SiteConfig
    from scada.notify_build import build_notifier

    cfg = SiteConfig.model_validate({"site": {"name": SITE, "timezone": "Europe/Moscow"},
                                     "notifications": notifications})
    engine, journal = _Engine(), MemoryJournal()
    notifier = build_notifier(cfg, reactor, engine, journal)
    started = reactor.seconds()
    engine.raise_alarm(started)
    while len(journal.entries) < expect and reactor.seconds() - started < 30:
        await task.deferLater(reactor, 0.05, lambda: None)
    notifier.stop()
    return {
        "journal": sorted(e.comment for e in journal.entries),
        "alarm_ids": sorted({e.alarm_id for e in journal.entries}),
        "events": sorted({e.event for e in journal.entries}),
        "seconds": reactor.seconds() - started,
    }


# ---------------------------------------------------------------------------
# Test process side: the servers
# ---------------------------------------------------------------------------


def run_notifier(notifications: dict[str, Any], expect: int) -> dict[str, Any]:
    """Run the scenario in a child process and return its result."""
    return run_child(__file__, {"notifications": notifications, "expect": expect})


class HookServer:
    """An HTTP server that records POSTs and answers each path from a script of status codes."""

    def __init__(self, scripts: dict[str, list[int]]) -> None:
        self.scripts = {path: list(codes) for path, codes in scripts.items()}
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server interface
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                script = owner.scripts.get(self.path, [200])
                code = script.pop(0) if len(script) > 1 else script[0]
                owner.requests.append({"path": self.path, "body": body, "code": code,
                                       "content_type": self.headers.get("Content-Type")})
                answer = b'{"ok": true}' if code < 300 else b"try later" if code >= 500 else b"no such hook"
                self.send_response(code)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # http.server serves from a thread of its own; test code only.
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class MailHandler:
    """aiosmtpd handler: records messages; refuses some recipients for good or for now."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.temporary_failures = {"busy@example.org": 1}

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        if address == "nobody@example.org":
            return "550 5.1.1 no such mailbox"
        if self.temporary_failures.get(address):
            self.temporary_failures[address] -= 1
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "data": bytes(envelope.original_content or envelope.content),
                              "login": getattr(session, "auth_data", None)})
        return "250 OK"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
    from aiosmtpd.smtp import AuthResult

    ok = auth_data.login == b"scada" and auth_data.password == "пароль-1".encode()
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def hooks() -> Iterator[HookServer]:
    """The webhook server, stopped after the test."""
    server = HookServer({"/flaky": [503, 200], "/gone": [404]})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mail() -> Iterator[tuple[MailHandler, int]]:
    """An aiosmtpd server on 127.0.0.1 (login optional, allowed without TLS), stopped after the test."""
    from aiosmtpd.controller import Controller

    handler = MailHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, authenticator=_authenticator,
                            auth_require_tls=False)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def test_webhook_retry_after_503_and_no_retry_after_404(hooks: HookServer) -> None:
    """503 then 200: delivered on the second attempt; 404: one attempt; refused port: retries, then failed."""
    dead = f"http://127.0.0.1:{free_port()}/hook"
    result = run_notifier({
        "retry_backoff": ["200ms", "200ms", "200ms"],
        "webhook_timeout": "5s",
        "recipients": [
            {"name": "dispatch", "webhook": hooks.url + "/flaky"},
            {"name": "archive", "webhook": hooks.url + "/gone"},
            {"name": "offline", "webhook": dead},
        ],
    }, expect=3)
    journal = result["journal"]
    assert "webhook dispatch: delivered after 2 attempts" in journal, journal
    assert "webhook archive: failed after 1 attempts: HTTP 404: no such hook" in journal, journal
    [offline] = [line for line in journal if line.startswith("webhook offline:")]
    assert offline.startswith(f"webhook offline: failed after 4 attempts: cannot reach {dead}"), offline
    assert result["alarm_ids"] == [ALARM] and result["events"] == ["notify"]

    flaky = [r for r in hooks.requests if r["path"] == "/flaky"]
    assert [r["code"] for r in flaky] == [503, 200]
    assert [r["code"] for r in hooks.requests if r["path"] == "/gone"] == [404]
    assert flaky[0]["body"] == flaky[1]["body"]
    assert flaky[1]["content_type"] == "application/json; charset=utf-8"
    payload = json.loads(flaky[1]["body"].decode("utf-8"))
    assert payload["site"] == SITE and payload["event"] == "raise"
    assert payload["alarm"]["id"] == ALARM and payload["alarm"]["message"] == MESSAGE
    assert payload["entry"]["event"] == "raise" and payload["ts"].endswith("Z")
    assert payload["text"] == f"[{SITE}] КРИТИЧЕСКАЯ: {MESSAGE}"


def test_email_in_russian_with_login_and_smtp_errors(mail: tuple[MailHandler, int]) -> None:
    """The mail arrives with a decodable Russian subject and body; 451 is retried, 550 is not."""
    handler, port = mail
    result = run_notifier({
        "smtp": {"host": "127.0.0.1", "port": port, "from": "scada@example.org", "username": "scada",
                 "password": "пароль-1", "timeout": "5s"},
        "retry_backoff": ["200ms", "200ms"],
        "recipients": [
            {"name": "chief", "email": "chief@example.org"},
            {"name": "busy", "email": "busy@example.org"},
            {"name": "nobody", "email": "nobody@example.org"},
        ],
    }, expect=3)
    journal = result["journal"]
    assert "email chief: delivered" in journal, journal
    assert "email busy: delivered after 2 attempts" in journal, journal
    [nobody] = [line for line in journal if line.startswith("email nobody:")]
    assert nobody.startswith("email nobody: failed after 1 attempts: SMTP 127.0.0.1:") and "550" in nobody, nobody

    [chief] = [m for m in handler.messages if m["to"] == ["chief@example.org"]]
    assert chief["from"] == "scada@example.org"
    parsed = email.message_from_bytes(chief["data"], policy=email.policy.default)
    assert parsed["Subject"] == f"[{SITE}] КРИТИЧЕСКАЯ: {MESSAGE}"
    assert parsed["From"].addresses[0].display_name == SITE
    body = parsed.get_content()
    for piece in (f"Тревога: {MESSAGE}", f"Идентификатор: {ALARM}", "Тег: kv12.status", "Значение: 1",
                  "MSK", "Состояние: активна, не квитирована", f"POST /api/v1/alarms/{ALARM}/ack"):
        assert piece in body, (piece, body)
    assert [m["to"] for m in handler.messages].count(["busy@example.org"]) == 1


def test_email_refused_login_is_not_retried(mail: tuple[MailHandler, int]) -> None:
    """A wrong password is a permanent failure: one attempt, journalled."""
    handler, port = mail
    result = run_notifier({
        "smtp": {"host": "127.0.0.1", "port": port, "from": "scada@example.org", "username": "scada",
                 "password": "wrong", "timeout": "5s"},
        "retry_backoff": ["200ms"],
        "recipients": [{"name": "chief", "email": "chief@example.org"}],
    }, expect=1)
    [line] = result["journal"]
    assert line.startswith("email chief: failed after 1 attempts: SMTP 127.0.0.1:"), line
    assert handler.messages == []



def test_silent_servers_time_out() -> None:
    """A server that accepts the connection but never answers: each attempt ends at the timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # never accepted: the kernel completes the handshake, nobody speaks
        port = silent.getsockname()[1]
        result = run_notifier({
            "smtp": {"host": "127.0.0.1", "port": port, "from": "scada@example.org", "timeout": "1s"},
            "webhook_timeout": "1s",
            "retry_backoff": ["100ms"],
            "recipients": [{"name": "chief", "email": "chief@example.org"},
                           {"name": "hook", "webhook": f"http://127.0.0.1:{port}/x"}],
        }, expect=2)
    assert result["journal"] == [
        f"email chief: failed after 2 attempts: SMTP 127.0.0.1:{port}: no answer within 1 s",
        "webhook hook: failed after 2 attempts: no answer within 1 s",
    ]
    assert 2.0 <= result["seconds"] < 10


if __name__ == "__main__":
    raise SystemExit(child_main(lambda reactor, _loop, **kwargs: scenario(reactor, **kwargs), sys.argv))
