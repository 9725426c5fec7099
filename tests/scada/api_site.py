"""A whole-API test site for the OpenAPI tests: every kind of channel the API talks about, auth on, a token per role.

The runtime runs on ``task.Clock`` (no ports, no ptys): the simulated field
is built (``simulate: true``) but not opened, the LoRaWAN channel gives the
HTTP uplink routes a hub, the hand-read channel the manual readings, the
``registry:`` section buildings, premises and meters for the registry,
report and billing routes.

Also the pieces every API test site is made of (:func:`clock_runtime`,
:func:`role_tokens`, :func:`start_app`, :func:`request_body`), and
:class:`RoleSite` (built by :func:`role_site`): a site whose requests go
as one role, which the other API tests' sites share.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import textwrap
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from twisted.internet.task import Clock

from channels.sim.field import SimulatedField
from scada import auth
from scada.api import build_app
from scada.app import Runtime
from scada.config import load_config
from tags.model import Sample
from tags.quality import Quality
from tags.timefmt import parse_iso
from tests.scada.asgi import Reply, http

T0 = parse_iso("2026-11-19T08:00:00Z")

SITE = textwrap.dedent("""\
    site: {name: openapi test, timezone: Europe/Moscow}
    history: {backend: sqlite, path: history.db}
    simulate: true
    channels:
      - name: gw
        type: modbus-rtu
        transport: {tcp: 127.0.0.1:1}
        devices:
          - {name: b1-cold, address: 1, profile: generic_water_meter, poll: 10s}
          - {name: b1-kv01-cold, address: 11, profile: generic_water_meter, poll: 10s}
          - {name: b1-heat, address: 2, profile: generic_heat_meter, poll: 10s}
      - name: lora
        type: lorawan
        devices:
          - {name: b1-kv02-cold, dev_eui: 70B3D59BA0000511, decoder: pulse_counter_le, poll: 1m,
             decoder_options: {litres_per_pulse: 1}}
      - name: hand-read
        type: manual
        devices:
          - {name: b1-kv03-cold, serial: "ВСХ-0300101", points: [{name: volume_m3, unit: m3}]}
    alarms:
      - {name: b1-supply, type: limit, tag: b1-heat.t_supply_c, hi: 80, message: "Подача {value} °C"}
    """)

REGISTRY = textwrap.dedent("""\
    registry:
      buildings:
        - id: b1
          address: "г. Москва, ул. Ленина, д. 10"
          fias: "0c5b2444-70a0-4932-980c-b4dc0d3f02b5"
          norms:
            cold_water: {per_person: 4.745}
          premises:
            - {number: "1", account: "7700000101", area: 54.2, residents: 2}
            - {number: "2", account: "7700000102", area: 40.0, residents: 1}
          meters:
            - {id: b1-cold, serial: "ВСХН-0001", model: "ВСХН-40", resource: cold_water, tag: b1-cold.volume_m3,
               role: odpu, installed: 2021-03-01, verified: 2021-03-01, next_verification: 2027-03-01}
            - {id: b1-kv01-cold, serial: "12345678", model: "СГВ-15", resource: cold_water,
               tag: b1-kv01-cold.volume_m3, role: ipu, premises: "1", installed: 2021-03-01,
               verified: 2021-03-01, next_verification: 2027-03-01}
    """)


def clock_runtime(folder: Path, site_yaml: str, now: float) -> tuple[Runtime, Clock]:
    """Write ``site_yaml`` as ``folder/site.yaml``; return a runtime of it on a ``task.Clock`` at ``now``."""
    path = folder / "site.yaml"
    path.write_text(site_yaml, encoding="utf-8")
    cfg, _ = load_config(path)
    clock = Clock()
    clock.advance(now)
    return Runtime(cfg, clock, base_dir=folder), clock


def role_tokens(runtime: Runtime) -> dict[str, str]:
    """Give the runtime's store an API token per role (named ``<role>-token``); return the tokens by role."""
    tokens = {}
    for role in auth.ROLES:
        tokens[role] = auth.new_api_token()
        runtime.store.add_token(f"{role}-token", role, auth.token_hash(tokens[role]))
    return tokens


def start_app(loop: asyncio.AbstractEventLoop, app) -> None:
    """Start ``app`` (routes, middleware, listeners) once through Sanic's ASGI test client; check it answers."""
    _, response = loop.run_until_complete(app.asgi_client.get("/api/v1/health"))
    assert response.status == 200


def request_body(body) -> bytes:
    """Return a request body: bytes as they are, text as UTF-8 (lone surrogates kept), anything else as JSON."""
    if body is None or isinstance(body, bytes):
        return body or b""
    return (body if isinstance(body, str) else jsonlib.dumps(body)).encode("utf-8", "surrogatepass")


@dataclass
class RoleSite:
    """An app over a Clock-driven runtime with an API token per role; requests go as one role."""

    runtime: Runtime
    app: object
    loop: asyncio.AbstractEventLoop
    clock: Clock
    tokens: dict[str, str]

    def call(self, method: str, path: str, body=None, role: str | None = "viewer") -> Reply:
        """Send one request as ``role`` (no token for None); ``body`` as :func:`request_body` makes it."""
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return self.loop.run_until_complete(http(self.app, method, path, headers, request_body(body)))

    def close(self) -> None:
        """Close the stores and the loop."""
        self.runtime.historian.close()
        self.runtime.store.close()
        self.loop.close()


def role_site(cls: type[RoleSite], folder: Path, site_yaml: str, now: float) -> RoleSite:
    """Build a ``cls`` site of ``site_yaml`` in ``folder`` on a Clock at ``now``, with its tokens; start it."""
    runtime, clock = clock_runtime(folder, site_yaml, now)
    site = cls(runtime, build_app(runtime), asyncio.new_event_loop(), clock, role_tokens(runtime))
    start_app(site.loop, site.app)
    return site


@dataclass
class Site:
    """A built and started app over a Clock-driven runtime, with an API token per role."""

    runtime: Runtime
    app: object
    loop: asyncio.AbstractEventLoop
    clock: Clock
    tokens: dict[str, str]

    def call(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"",
             token: str | None = None) -> Reply:
        """Send one request through the ASGI app as a server would (``path`` percent-encoded, may carry a query)."""
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.loop.run_until_complete(_send(self.app, method, path, headers, body))

    def close(self) -> None:
        """Stop the alarm engine; close the stores and the loop."""
        self.runtime.alarms.stop()
        self.runtime.historian.close()
        self.runtime.store.close()
        self.loop.close()


async def _send(app, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
    raw_path, _, query = target.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": unquote(raw_path), "raw_path": raw_path.encode("latin-1", "replace"),
             "query_string": query.encode("latin-1", "replace"), "root_path": "",
             "headers": [(b"host", b"localhost")] + [(k.lower().encode("latin-1"), v.encode("latin-1", "replace"))
                                                     for k, v in headers.items() if k.lower() != "host"],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8080)}
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return Reply(start["status"], [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in start["headers"]],
                 b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))


def build_site(folder: Path) -> Site:
    """Build, fill and start the site in ``folder``: some history and a raised alarm.

    The simulated field's ptys are not opened (a Clock carries no pty):
    overrides and faults live on the simulated devices.
    """
    start_pty = SimulatedField.start_pty
    SimulatedField.start_pty = lambda self: {}
    try:
        runtime, clock = clock_runtime(folder, SITE + REGISTRY, T0)
    finally:
        SimulatedField.start_pty = start_pty
    tokens = role_tokens(runtime)
    samples = [Sample("b1-cold.volume_m3", 100.0 + i, Quality.GOOD, T0 - 3600 + 60 * i) for i in range(60)]
    runtime.historian.write(samples)
    runtime.historian.flush()
    # The alarm engine follows the tag table once started: 95 °C against 80 raises b1-supply's hi alarm.
    runtime.alarms.start()
    clock.advance(10)
    runtime.tags.update(Sample("b1-heat.t_supply_c", 95.0, Quality.GOOD, clock.seconds()))
    app = build_app(runtime)
    site = Site(runtime, app, asyncio.new_event_loop(), clock, tokens)
    start_app(site.loop, app)
    return site
