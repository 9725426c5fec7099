"""One HTTP request straight through a Sanic app's ASGI interface, for the API tests.

Sanic's ASGI test client re-runs the app's start-up on every request (about
40 ms); the tests start the app once through it and then call the app's ASGI
interface directly with :func:`http`.
"""

from __future__ import annotations

import json as jsonlib
from dataclasses import dataclass


@dataclass
class Reply:
    """An HTTP answer as the ASGI app sent it."""

    status: int
    raw_headers: list[tuple[str, str]]
    body: bytes

    @property
    def json(self):
        """The body as JSON (None when empty)."""
        return jsonlib.loads(self.body) if self.body else None

    @property
    def content(self) -> bytes:
        """The body bytes."""
        return self.body

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8", "replace")

    @property
    def headers(self) -> dict[str, str]:
        """The headers by lower-case name (the last one of a name wins)."""
        return dict(self.raw_headers)

    def header_list(self, name: str) -> list[str]:
        """Every value of header ``name`` (lower case)."""
        return [value for key, value in self.raw_headers if key == name]


def scope(kind: str, method: str, path: str, headers: dict[str, str]) -> dict:
    """Return the ASGI scope of a request to ``path`` (which may carry a query string)."""
    path, _, query = path.partition("?")
    return {"type": kind, "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "ws" if kind == "websocket" else "http", "path": path, "raw_path": path.encode(),
            "query_string": query.encode(), "root_path": "",
            "headers": [(b"host", b"localhost")] + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8080), "subprotocols": []}


async def http(app, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> Reply:
    """Send one request through ``app`` (already started) and return its answer."""
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope("http", method, path, headers or {}), receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return Reply(start["status"], [(k.decode().lower(), v.decode()) for k, v in start["headers"]],
                 b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
