"""Tests for tags.historian.influx: InfluxStore against a real InfluxDB 1.6 and a fake 2.x.

The store runs on Twisted's asyncio reactor, which must be installed before
anything imports the global reactor; so every scenario runs in a child
process (this file run as a script, like ``tests/integration/pty_scenario.py``)
that installs it with `scada.app.install_reactor`, runs one scenario
coroutine and prints its result as JSON.  The scenarios drive the store
from an asyncio task (as Sanic's handlers do) unless they ask for Twisted's
driver (``Deferred.fromCoroutine``).

No InfluxDB 2.x server runs here: the native 2.x write path and the 2.x
compatibility details (token auth, ``db=<bucket>``) are checked against a
small twisted.web server in the child that records every request.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))

from tags.historian.base import AggRow, StoreRejected, StoreUnavailable  # noqa: E402
from tags.historian.lines import Encoder  # noqa: E402
from tags.model import Sample  # noqa: E402
from tags.quality import Quality  # noqa: E402
from tests.integration.conftest import influxd, influxd_binary  # noqa: E402,F401 - pytest fixture
from tests.integration.influxd import Influxd, free_port  # noqa: E402

T0 = 1795244400.0  # 2026-11-21T07:00:00Z, a multiple of 3600
T0_US = 1795244400_000_000
TAG = "heat1.energy_kwh"
# Names line protocol must escape (`,`, `=`, space) and InfluxQL must quote.
ODD_NAMES = ['dev 1.t,a=b "q" \'x\'', "sys_backlog", "m=1, x.y z"]


def us(micros: int) -> float:
    """Return integer microseconds as seconds, exactly as the store reads them back."""
    return micros / 1_000_000


def roundtrip_samples() -> list[Sample]:
    """Samples of every quality, awkward values and awkward names, at µs-exact times."""
    values = [1.5e20, 1e-05, -3.25, 0.0, 1234.5, 1.7976931348623157e308, 5e-324, -1e-300, 42.0, 7.0, 8.5]
    out = []
    for i, quality in enumerate(Quality):
        value = values[i] if quality.usable or i % 2 else None
        out.append(Sample(TAG, value, quality, T0 + i * 0.5))
    for j, name in enumerate(ODD_NAMES):
        out.append(Sample(name, float(j) - 0.5, Quality.GOOD, T0 + j))
        out.append(Sample(name, None, Quality.TIMEOUT, us(T0_US + j * 1_000_000 + 1)))
    return out


def as_rows(samples: list[Sample]) -> list[list[Any]]:
    """Return samples as JSON-able rows."""
    return [[s.name, s.value, str(s.quality), s.ts] for s in samples]


def agg_rows(rows: list[AggRow]) -> list[list[Any]]:
    """Return AggRows as JSON-able rows."""
    return [[r.ts, r.min, r.max, r.mean, r.last, r.count] for r in rows]


def outcome_of(exc: BaseException) -> dict[str, str]:
    """Describe an exception for the JSON report."""
    return {"error": type(exc).__name__, "message": str(exc)}


# ---------------------------------------------------------------------------
# Child process side: scenarios
# ---------------------------------------------------------------------------

_DRIVER = {"name": "asyncio", "loop": None}


async def wait(d: Any) -> Any:
    """Await a Deferred from the scenario's driver."""
    if _DRIVER["name"] == "asyncio":
        return await d.asFuture(_DRIVER["loop"])
    return await d


async def attempt(d: Any) -> dict[str, Any]:
    """Await a Deferred or coroutine; return ``{"ok": result}`` or the error."""
    try:
        if asyncio.iscoroutine(d):
            return {"ok": await d}
        return {"ok": await wait(d)}
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return outcome_of(exc)


async def sleep(reactor: Any, seconds: float) -> None:
    """Let the reactor run for ``seconds``."""
    from twisted.internet import task

    await wait(task.deferLater(reactor, seconds, lambda: None))


async def opened(reactor: Any, **kwargs: Any) -> Any:
    """Return an InfluxStore that has been opened."""
    from tags.historian.influx import InfluxStore

    store = InfluxStore(reactor, **kwargs)
    await wait(store.open())
    return store


async def closed(store: Any) -> None:
    """Close the store and wait for its pool to let go."""
    store.close()
    await wait(store.closing)


async def deliver(store: Any, samples: list[Sample]) -> None:
    """Encode and deliver samples in one batch."""
    batch, count = Encoder(store.measurement).encode(samples)
    await wait(store.deliver(batch, count))


async def sc_roundtrip(reactor: Any, url: str) -> dict[str, Any]:
    """Write every kind of sample, read each tag back."""
    store = await opened(reactor, url=url, database="rt")
    samples = roundtrip_samples()
    await deliver(store, samples)
    names = sorted({s.name for s in samples})
    out = {name: as_rows(await store.query_raw(name, 0, math.inf)) for name in names}
    # A point written by someone else, with a quality text that is not ours.
    await wait(store.deliver(f'samples,tag=foreign quality="weird",value=1.0 {int(T0 * 1e6)}\n'.encode(), 1))
    foreign = as_rows(await store.query_raw("foreign", 0, math.inf))
    stats = store.stats()
    await closed(store)
    return {"tags": out, "foreign": foreign, "stats": stats}


async def sc_limits(reactor: Any, url: str) -> dict[str, Any]:
    """Limits and range bounds of query_raw."""
    from twisted.internet.defer import Deferred

    store = await opened(reactor, url=url, database="lim")
    await deliver(store, [Sample(TAG, float(i), Quality.GOOD, T0 + i) for i in range(10)])
    q = store.query_raw
    out = {
        "window": as_rows(await q(TAG, T0 + 2, T0 + 5)),
        "limit2": as_rows(await q(TAG, T0, T0 + 10, limit=2)),
        "limit0": as_rows(await q(TAG, T0, T0 + 10, limit=0)),
        "empty_range": as_rows(await q(TAG, T0 + 5, T0 + 5)),
        "reversed": as_rows(await q(TAG, T0 + 6, T0 + 2)),
        "end_inclusive?": as_rows(await q(TAG, T0 + 9, T0 + 9.000001)),
        "infinite": len(await q(TAG, -math.inf, math.inf)),
        "other_tag": as_rows(await q("heat1.energy", 0, math.inf)),
        # Twisted driving the query from inside an asyncio task.
        "twisted_in_task": len(await wait(Deferred.fromCoroutine(q(TAG, T0, T0 + 10)))),
        "negative_limit": await attempt(q(TAG, T0, T0 + 10, limit=-1)),
        "agg_zero": await attempt(store.query_agg(TAG, T0, T0 + 10, 0)),
        "agg_sub_us": await attempt(store.query_agg(TAG, T0, T0 + 10, 1e-7)),
    }
    await closed(store)
    return out


def agg_stream(seed: int) -> list[Sample]:
    """A deterministic mix of samples: µs-exact times (negative too), all qualities, gaps."""
    rng = random.Random(seed)
    qualities = list(Quality)
    out = []
    for _ in range(400):
        base = rng.choice([0, T0_US])
        ts = us(base + rng.randint(-60_000, 600_000) * 1000)
        quality = Quality.GOOD if rng.random() < 0.6 else rng.choice(qualities)
        value = None if rng.random() < 0.1 else rng.choice([rng.uniform(-1e6, 1e6), float(rng.randint(-3, 3))])
        out.append(Sample(TAG, value, quality, ts))
    # Same (tag, ts) twice, both with values: the later one wins in both stores.
    out.append(Sample(TAG, 1.0, Quality.GOOD, T0 + 1))
    out.append(Sample(TAG, 2.0, Quality.GOOD, T0 + 1))
    return out


AGG_FIXED = [
    Sample(TAG, 10.0, Quality.GOOD, T0 + 5),
    Sample(TAG, 4.0, Quality.GOOD, T0 + 50),
    Sample(TAG, 99.0, Quality.CRC_ERROR, T0 + 55),  # bad: ignored, though latest
    Sample(TAG, 7.0, Quality.MANUAL, T0 + 30),
    Sample(TAG, 1.0, Quality.GOOD, T0 + 60),  # next bucket starts exactly here
    Sample(TAG, None, Quality.TIMEOUT, T0 + 130),  # bucket with only bad samples
    Sample(TAG, None, Quality.GOOD, T0 + 150),  # usable quality but no value
    Sample(TAG, 5.0, Quality.BACKFILLED, T0 + 199.5),
    Sample(TAG, 6.0, Quality.GOOD, T0 + 185),
    Sample(TAG, 3.0, Quality.CALCULATED, -7.0),  # before the epoch: floor alignment
    Sample(TAG, 4.0, Quality.GOOD, -1.5),
]

AGG_QUERIES = [
    (T0, T0 + 240, 60.0),
    (T0 + 40, T0 + 61, 60.0),  # start not aligned: first bucket begins before it
    (T0 + 0.25, T0 + 199.5, 7.0),  # end exclusive
    (-math.inf, math.inf, 2.0),
    (-10.0, 10.0, 0.25),
    (-100.0, T0 + 700, 3600.0),
    (-100.0, T0 + 700, 1.0),
    (T0 - 100, T0 + 700, 13.0),
    (T0 + 100, T0 + 100, 60.0),  # empty range
]


async def sc_agg(reactor: Any, url: str) -> dict[str, Any]:
    """query_agg of InfluxStore and SqliteHistorian over the same samples."""
    from tags.historian.sqlite import SqliteHistorian

    out: dict[str, Any] = {}
    for label, samples in (("fixed", AGG_FIXED), ("random", agg_stream(7))):
        store = await opened(reactor, url=url, database=f"agg_{label}")
        sqlite = SqliteHistorian(":memory:", reactor)
        sqlite.write(samples)
        await deliver(store, samples)
        pairs = []
        for start, end, every in AGG_QUERIES:
            pairs.append(
                {
                    "query": [start, end, every],
                    "influx": agg_rows(await store.query_agg(TAG, start, end, every)),
                    "sqlite": agg_rows(await sqlite.query_agg(TAG, start, end, every)),
                }
            )
        raw_influx = as_rows(await store.query_raw(TAG, -math.inf, math.inf))
        raw_sqlite = as_rows(await sqlite.query_raw(TAG, -math.inf, math.inf))
        out[label] = {"pairs": pairs, "raw_influx": raw_influx, "raw_sqlite": raw_sqlite}
        out["nosuch"] = agg_rows(await store.query_agg("nosuch.tag", T0, T0 + 240, 60))
        sqlite.close()
        await closed(store)
    return out


AT_PROBES = [T0 - 10, T0 + 5, T0 + 29.5, T0 + 30, T0 + 55, T0 + 150, T0 + 199.5, T0 + 700, -1.5, -1.0]


async def sc_at(reactor: Any, url: str) -> dict[str, Any]:
    """query_at and query_at_many of InfluxStore and SqliteHistorian over the same samples."""
    import tags.historian.influx as influx
    from tags.historian.sqlite import SqliteHistorian

    influx.AT_TAGS_PER_QUERY = 2  # several queries for the many-tag case
    out: dict[str, Any] = {}
    for label, samples in (("fixed", AGG_FIXED), ("random", agg_stream(11))):
        others = [Sample(name, float(i), Quality.GOOD, T0 + i) for i, name in enumerate(ODD_NAMES)]
        samples = samples + others
        store = await opened(reactor, url=url, database=f"at_{label}")
        sqlite = SqliteHistorian(":memory:", reactor)
        sqlite.write(samples)
        await deliver(store, samples)
        pairs = []
        for at in AT_PROBES:
            for since in (-math.inf, T0, at):
                one = await store.query_at(TAG, at, since)
                pairs.append({"query": [at, since], "influx": one and as_rows([one]),
                              "sqlite": (lambda s: s and as_rows([s]))(await sqlite.query_at(TAG, at, since))})
        names = [TAG, *ODD_NAMES, "nosuch.tag"]
        many = await store.query_at_many(names, T0 + 700, -math.inf)
        many_sqlite = await sqlite.query_at_many(names, T0 + 700, -math.inf)
        out[label] = {"pairs": pairs, "many": {k: v and as_rows([v]) for k, v in many.items()},
                      "many_sqlite": {k: v and as_rows([v]) for k, v in many_sqlite.items()}}
        sqlite.close()
        await closed(store)
    return out


async def sc_rewrite(reactor: Any, url: str) -> dict[str, Any]:
    """The same batch twice, then a replacement of one sample."""
    store = await opened(reactor, url=url, database="idem")
    samples = [Sample(TAG, float(i), Quality.GOOD, T0 + i) for i in range(5)]
    await deliver(store, samples)
    await deliver(store, samples)
    await deliver(store, [Sample(TAG, 30.0, Quality.BACKFILLED, T0 + 3)])
    # A sample without value over one with a value: InfluxDB merges fields.
    await deliver(store, [Sample(TAG, None, Quality.TIMEOUT, T0 + 4)])
    raw = as_rows(await store.query_raw(TAG, 0, math.inf))
    stats = store.stats()
    await closed(store)
    return {"raw": raw, "stats": stats}


async def sc_open(reactor: Any, url: str, **kwargs: Any) -> dict[str, Any]:
    """Open a store, then try one delivery and one query; report each outcome."""
    from tags.historian.influx import InfluxStore

    store = InfluxStore(reactor, url=url, **kwargs)
    result: dict[str, Any] = {"open": await attempt(store.open())}
    batch, count = Encoder().encode([Sample(TAG, 1.0, Quality.GOOD, T0)])
    result["deliver"] = await attempt(store.deliver(batch, count))
    result["deliver_again"] = await attempt(store.deliver(batch, count))
    result["query"] = await attempt(store.query_raw(TAG, 0, math.inf))
    if "ok" in result["query"]:
        result["query"] = {"ok": as_rows(result["query"]["ok"])}
    result["agg"] = await attempt(store.query_agg(TAG, 0, math.inf, 60))
    if "ok" in result["agg"]:
        result["agg"] = {"ok": agg_rows(result["agg"]["ok"])}
    result["stats"] = store.stats()
    await closed(store)
    result["after_close"] = await attempt(store.deliver(batch, count))
    return result


async def sc_dropped(reactor: Any, url: str) -> dict[str, Any]:
    """The database disappears under an open store."""
    store = await opened(reactor, url=url, database="gone")
    result = {"first": await attempt(store.deliver(*Encoder().encode([Sample(TAG, 1.0, Quality.GOOD, T0)])))}
    Influxd.query_url(url, 'DROP DATABASE "gone"', method="POST")  # blocks briefly: fine here
    batch, count = Encoder().encode([Sample(TAG, 2.0, Quality.GOOD, T0 + 1)])
    result["after_drop"] = await attempt(store.deliver(batch, count))
    result["retry"] = await attempt(store.deliver(batch, count))
    result["raw"] = as_rows(await store.query_raw(TAG, 0, math.inf))
    result["stats"] = store.stats()
    await closed(store)
    return result


async def sc_rejected(reactor: Any, url: str) -> dict[str, Any]:
    """Malformed lines and a field type conflict."""
    store = await opened(reactor, url=url, database="rej")
    await deliver(store, [Sample(TAG, 1.0, Quality.GOOD, T0)])
    result = {
        "malformed": await attempt(store.deliver(b"this is not line protocol\n", 1)),
        "conflict": await attempt(store.deliver(f'samples,tag={TAG} value="text" {int(T0 * 1e6) + 1}\n'.encode(), 1)),
        "good_after": await attempt(store.deliver(*Encoder().encode([Sample(TAG, 2.0, Quality.GOOD, T0 + 1)]))),
        "stats": store.stats(),
    }
    await closed(store)
    return result


async def sc_restart(reactor: Any, url: str, root: str) -> dict[str, Any]:
    """A server restarted under an open store with pooled connections; then stopped."""
    server = Influxd(root)
    server.start()
    try:
        store = await opened(reactor, url=server.url, database="rs")
        await deliver(store, [Sample(TAG, 1.0, Quality.GOOD, T0)])
        pid_before = server.pid
        server.restart()  # blocks the reactor briefly: fine in a test
        first = await attempt(store.deliver(*Encoder().encode([Sample(TAG, 2.0, Quality.GOOD, T0 + 1)])))
        raw = as_rows(await store.query_raw(TAG, 0, math.inf))
        server.kill()
        down = await attempt(store.deliver(*Encoder().encode([Sample(TAG, 3.0, Quality.GOOD, T0 + 2)])))
        query_down = await attempt(store.query_raw(TAG, 0, math.inf))
        server.start()
        back = await attempt(store.deliver(*Encoder().encode([Sample(TAG, 3.0, Quality.GOOD, T0 + 2)])))
        raw_after = as_rows(await store.query_raw(TAG, 0, math.inf))
        stats = store.stats()
        await closed(store)
        return {
            "restarted": pid_before != server.pid,
            "first": first,
            "raw": raw,
            "down": down,
            "query_down": query_down,
            "back": back,
            "raw_after": raw_after,
            "stats": stats,
        }
    finally:
        server.stop()


async def sc_pages(reactor: Any, url: str, root: str) -> dict[str, Any]:
    """A server with max-row-limit 3: answers come in pages."""
    from tags.historian.sqlite import SqliteHistorian

    server = Influxd(root, max_row_limit=3)
    server.start()
    try:
        store = await opened(reactor, url=server.url, database="pg")
        samples = [Sample(TAG, float(i), Quality.GOOD, T0 + i * 10) for i in range(20)]
        await deliver(store, samples)
        sqlite = SqliteHistorian(":memory:", reactor)
        sqlite.write(samples)
        result = {
            "raw": len(await store.query_raw(TAG, 0, math.inf)),
            "raw_limit7": len(await store.query_raw(TAG, 0, math.inf, limit=7)),
            "agg": agg_rows(await store.query_agg(TAG, T0 - 30, T0 + 1000, 30)),
            "agg_sqlite": agg_rows(await sqlite.query_agg(TAG, T0 - 30, T0 + 1000, 30)),
        }
        sqlite.close()
        await closed(store)
        return result
    finally:
        server.stop()


class FakeInflux:
    """A twisted.web stand-in for an InfluxDB 2.x/3.x HTTP API that records requests.

    ``routes`` maps a path to ``[status, body]`` or ``"hang"`` (never answer);
    unlisted paths answer 204.  Every answer carries ``version`` in
    ``X-Influxdb-Version`` unless it is None.
    """

    def __init__(self, reactor: Any, version: str | None, routes: dict[str, Any]) -> None:
        from twisted.web.resource import Resource
        from twisted.web.server import NOT_DONE_YET, Site

        fake = self
        self.requests: list[dict[str, Any]] = []

        class Recorder(Resource):
            isLeaf = True

            def render(self, request: Any) -> Any:
                path = request.path.decode()
                fake.requests.append(
                    {
                        "method": request.method.decode(),
                        "path": path,
                        "args": {k.decode(): [v.decode() for v in vs] for k, vs in request.args.items()},
                        "authorization": (request.getHeader("authorization") or ""),
                        "content_type": (request.getHeader("content-type") or ""),
                        "body": request.content.read().decode(),
                    }
                )
                if version is not None:
                    request.setHeader("X-Influxdb-Version", version)
                route = routes.get(path, [204, ""])
                if route == "hang":
                    return NOT_DONE_YET
                request.setResponseCode(route[0])
                if route[1]:
                    request.setHeader("Content-Type", "application/json")
                return route[1].encode()

        self.port = reactor.listenTCP(0, Site(Recorder()), interface="127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port.getHost().port}"


QUERY_ANSWER = json.dumps(
    {
        "results": [
            {
                "statement_id": 0,
                "series": [
                    {
                        "name": "samples",
                        "columns": ["time", "value", "quality"],
                        "values": [[int(T0 * 1e6), 5, "good"], [int(T0 * 1e6) + 1, None, "timeout"]],
                    }
                ],
            }
        ]
    }
)


async def sc_v2_native(reactor: Any) -> dict[str, Any]:
    """token + org + bucket: writes go through influxdb-client to /api/v2/write."""
    fake = FakeInflux(reactor, "v2.7.1", {"/query": [200, QUERY_ANSWER]})
    store = await opened(reactor, url=fake.url, token="s3cr3t", org="utility", bucket="metering", timeout=2)
    batch, count = Encoder().encode([Sample(TAG, 1.5e20, Quality.GOOD, T0), Sample("x y", None, Quality.TIMEOUT, T0)])
    result = {
        "deliver": await attempt(store.deliver(batch, count)),
        "query": as_rows(await store.query_raw(TAG, T0, T0 + 1)),
        "batch": batch.decode(),
        "stats": store.stats(),
    }
    # The same store against failing answers.
    fails = FakeInflux(
        reactor,
        "v2.7.1",
        {
            "/api/v2/write": [400, json.dumps({"code": "invalid", "message": "unable to parse 'x': bad timestamp"})],
        },
    )
    store2 = await opened(reactor, url=fails.url, token="t", org="o", bucket="b", timeout=2)
    result["rejected"] = await attempt(store2.deliver(batch, count))
    hang = FakeInflux(reactor, "v2.7.1", {"/api/v2/write": "hang"})
    store3 = await opened(reactor, url=hang.url, token="t", org="o", bucket="b", timeout=0.3)
    started = reactor.seconds()
    result["timeout"] = await attempt(store3.deliver(batch, count))
    result["timeout_s"] = reactor.seconds() - started
    from tags.historian.influx import InfluxStore

    store4 = InfluxStore(reactor, url=f"http://127.0.0.1:{free_port()}", token="t", org="o", bucket="b", timeout=2)
    result["refused"] = await attempt(store4.deliver(batch, count))
    server_unavailable = FakeInflux(reactor, "v2.7.1", {"/api/v2/write": [503, ""]})
    store5 = await opened(reactor, url=server_unavailable.url, token="t", org="o", bucket="b", timeout=2)
    result["unavailable"] = await attempt(store5.deliver(batch, count))
    for s in (store, store2, store3, store4, store5):
        await closed(s)
    await sleep(reactor, 0.05)  # let aiohttp close its sessions
    result["requests"] = fake.requests
    return result


async def sc_v1_compat(reactor: Any) -> dict[str, Any]:
    """The v1 path with token (2.x compatibility), basic auth and a retention policy."""
    fake = FakeInflux(reactor, "v2.7.1", {"/query": [200, QUERY_ANSWER]})
    batch, count = Encoder().encode([Sample(TAG, 1.0, Quality.GOOD, T0)])
    token = await opened(reactor, url=fake.url + "/", token="tok", bucket="metering")
    await wait(token.deliver(batch, count))
    await token.query_raw(TAG, T0, T0 + 1)
    basic = await opened(reactor, url=fake.url, username="scada", password="pa:ss", database="db", retention_policy="one year")
    await wait(basic.deliver(batch, count))
    await basic.query_agg(TAG, T0, T0 + 60, 60)
    v1 = FakeInflux(reactor, "1.8.10", {})
    plain = await opened(reactor, url=v1.url, database='we"ird', create_database=True)
    v3 = FakeInflux(reactor, "3.1.0", {})
    # A host name rather than an address: resolved by Twisted's resolver.
    core = await opened(reactor, url=v3.url.replace("127.0.0.1", "localhost"), database="db3")
    result = {
        "requests": fake.requests,
        "v1_requests": v1.requests,
        "v3_requests": v3.requests,
        "stats": {"token": token.stats(), "basic": basic.stats(), "plain": plain.stats(), "core": core.stats()},
    }
    for s in (token, basic, plain, core):
        await closed(s)
    return result


async def sc_statuses(reactor: Any) -> dict[str, Any]:
    """How each HTTP answer to /write and /query is classified."""
    from tags.historian.influx import InfluxStore

    cases = {
        "400": [400, '{"error":"unable to parse \'x\': invalid field format"}'],
        "401": [401, '{"error":"authorization failed"}'],
        "403": [403, '{"error":"forbidden"}'],
        "404_db": [404, '{"error":"database not found: \\"scada\\""}'],
        "404_bucket": [404, '{"code":"not found","message":"bucket \\"b\\" not found"}'],
        "413": [413, '{"error":"Request Entity Too Large"}'],
        "422": [422, '{"code":"unprocessable entity","message":"points beyond retention policy"}'],
        "429": [429, ""],
        "500": [500, '{"error":"timeout"}'],
        "503": [503, "overloaded"],
        "hang": "hang",
    }
    result: dict[str, Any] = {}
    batch, count = Encoder().encode([Sample(TAG, 1.0, Quality.GOOD, T0)])
    for name, route in cases.items():
        fake = FakeInflux(reactor, "1.8.10", {"/write": route, "/query": route})
        store = InfluxStore(reactor, url=fake.url, database="scada", timeout=0.3)
        started = reactor.seconds()
        result[name] = {
            "deliver": await attempt(store.deliver(batch, count)),
            "seconds": reactor.seconds() - started,
            "query": await attempt(store.query_raw(TAG, 0, 1)),
            "paths": [(r["method"], r["path"], r["body"]) for r in fake.requests],
            "stats": store.stats(),
        }
        await closed(store)
    # An InfluxQL error inside a 200 answer, and a query we got wrong.
    fake = FakeInflux(
        reactor,
        "1.8.10",
        {"/query": [200, '{"results":[{"statement_id":0,"error":"max-select-point limit exceeded: (10/5)"}]}']},
    )
    store = InfluxStore(reactor, url=fake.url, database="scada")
    result["influxql_error"] = await attempt(store.query_agg(TAG, 0, 60, 60))
    await closed(store)
    fake = FakeInflux(reactor, "1.8.10", {"/query": [400, '{"error":"error parsing query: found X"}']})
    store = InfluxStore(reactor, url=fake.url, database="scada")
    result["parse_error"] = await attempt(store.query_raw(TAG, 0, 60))
    fake_ping = FakeInflux(reactor, None, {"/ping": [401, '{"error":"unauthorized access"}']})
    store2 = InfluxStore(reactor, url=fake_ping.url, database="scada")
    result["ping_401"] = await attempt(store2.open())
    for s in (store, store2):
        await closed(s)
    return result


SCENARIOS = {
    name[3:]: fn for name, fn in list(globals().items()) if name.startswith("sc_") and callable(fn)
}


def _child_main(argv: list[str]) -> int:
    """Run scenario ``argv[1]`` with JSON keyword arguments ``argv[2]``; print the JSON result."""
    from scada.app import install_reactor

    reactor, loop = install_reactor()
    from twisted.internet.defer import Deferred

    name, kwargs = argv[1], json.loads(argv[2])
    driver = kwargs.pop("driver", "asyncio")
    _DRIVER.update(name=driver, loop=loop)
    result: dict[str, Any] = {}

    def start() -> None:
        coro = SCENARIOS[name](reactor, **kwargs)
        if driver == "asyncio":
            d = Deferred.fromFuture(asyncio.ensure_future(coro))
        else:
            d = Deferred.fromCoroutine(coro)

        def done(value: Any) -> None:
            result["result"] = value

        def failed(failure: Any) -> None:
            result["crash"] = failure.getTraceback()

        d.addCallbacks(done, failed).addBoth(lambda _: reactor.stop())

    def too_long() -> None:
        result["crash"] = f"scenario {name} did not finish in 60 s"
        reactor.stop()

    reactor.callWhenRunning(start)
    reactor.callLater(60, too_long)
    reactor.run()
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    return 0


# ---------------------------------------------------------------------------
# Test process side
# ---------------------------------------------------------------------------


def scenario(name: str, **kwargs: Any) -> Any:
    """Run one scenario in a child process and return its result."""
    proc = subprocess.run(
        [sys.executable, __file__, name, json.dumps(kwargs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, f"scenario {name} printed nothing (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    report = json.loads(lines[-1])
    assert "crash" not in report, f"{report['crash']}\n--- stderr:\n{proc.stderr[-4000:]}"
    return report["result"]


def databases(server: Influxd) -> set[str]:
    """Return the names of the server's databases."""
    series = server.query("SHOW DATABASES")["results"][0]["series"][0]
    return {row[0] for row in series.get("values", [])}


def expected_rows(samples: list[Sample], name: str) -> list[list[Any]]:
    """What query_raw should return for ``name``: the samples as written, oldest first."""
    return sorted((r for r in as_rows(samples) if r[0] == name), key=lambda r: r[3])


def assert_same_aggregates(influx: list[list[Any]], sqlite: list[list[Any]], query: list[Any]) -> None:
    """Both stores give the same rows (the mean within float summation error)."""
    assert [r[:3] + r[4:] for r in influx] == [r[:3] + r[4:] for r in sqlite], query
    for a, b in zip(influx, sqlite, strict=True):
        assert a[3] == pytest.approx(b[3], rel=1e-9, abs=1e-6), query


# -- unit tests: no server ----------------------------------------------------


def test_quoting() -> None:
    """Identifiers get double quotes, literals single quotes; backslashes and quotes escaped."""
    from tags.historian.influx import quote_ident, quote_string

    assert quote_ident('we"ird\\m') == '"we\\"ird\\\\m"'
    assert quote_string("it's a\\b") == "'it\\'s a\\\\b'"


def test_time_conversion_and_version() -> None:
    """Seconds → µs like the encoder, clamped to InfluxDB's range; majors from version headers."""
    from tags.historian.influx import MAX_MICROS, MIN_MICROS, parse_version, to_micros

    assert to_micros(T0 + 0.5) == int(T0 * 1e6) + 500_000
    assert to_micros(-math.inf) == MIN_MICROS and to_micros(math.inf) == MAX_MICROS
    assert to_micros(1e300) == MAX_MICROS
    with pytest.raises(ValueError, match="NaN"):
        to_micros(math.nan)
    assert [parse_version(v) for v in ("1.6.7~rc0", "v2.7.1", "2.7.1", "3.1.0", "", None, "dev")] == [
        1, 2, 2, 3, None, None, None,
    ]


def test_constructor_validation() -> None:
    """Unusable settings are refused at construction, naming the setting."""
    from twisted.internet.task import Clock

    from tags.historian.influx import InfluxStore

    clock = Clock()
    with pytest.raises(ValueError, match="url"):
        InfluxStore(clock, url="localhost:8086")
    with pytest.raises(ValueError, match="timeout"):
        InfluxStore(clock, timeout=0)
    with pytest.raises(ValueError, match="org"):
        InfluxStore(clock, org="o")
    with pytest.raises(ValueError, match="password"):
        InfluxStore(clock, password="p")
    try:
        import OpenSSL  # noqa: F401
        import service_identity  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match=r"twisted\[tls\]"):
            InfluxStore(clock, url="https://influx.example:8086")
    store = InfluxStore(clock, token="t", org="o", bucket="b")
    assert store.stats()["write_path"] == "v2" and store.stats()["database"] == "b"
    assert InfluxStore(clock, token="t").stats()["write_path"] == "v1"
    assert InfluxStore(clock).backend == "influxdb"


def test_v2_path_needs_influxdb_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the influxdb-client package the 2.x path fails at construction, saying what to install."""
    from twisted.internet.task import Clock

    from tags.historian.influx import InfluxStore

    monkeypatch.setitem(sys.modules, "influxdb_client.client.write_api", None)
    with pytest.raises(RuntimeError, match="influxdb-client"):
        InfluxStore(Clock(), token="t", org="o", bucket="b")
    InfluxStore(Clock(), token="t")  # the v1 path does not need it


# -- against a real influxd -----------------------------------------------------


@pytest.fixture
def influxd_bin() -> str:
    """The influxd binary, for scenarios whose child process runs (and restarts) its own server."""
    return influxd_binary()


@pytest.mark.integration
def test_roundtrip(influxd: Influxd) -> None:
    """Values (huge, tiny, negative, none), every quality and awkward names come back as written."""
    result = scenario("roundtrip", url=influxd.url)
    samples = roundtrip_samples()
    assert sorted(result["tags"]) == sorted({s.name for s in samples})
    for name, rows in result["tags"].items():
        assert rows == expected_rows(samples, name), name
    assert result["foreign"] == [["foreign", None, "decode_failed", T0]]
    stats = result["stats"]
    assert stats["server_version"] == "1.6.7~rc0" and stats["server_major"] == 1
    assert stats["backend"] == "influxdb" and stats["write_path"] == "v1"
    assert stats["lines_written"] == len(samples) + 1 and stats["batches_written"] == 2
    assert stats["create_database_ok"] == 1 and stats["last_error"] is None
    # The database exists, and the points landed with integer-µs times.
    assert "rt" in databases(influxd)
    count = influxd.query('SELECT count("quality") FROM "samples"', db="rt")
    assert count["results"][0]["series"][0]["values"][0][1] == len(samples) + 1


@pytest.mark.integration
def test_limits_and_bounds(influxd: Influxd) -> None:
    """start inclusive, end exclusive, limit counts from the oldest, limit 0 is nothing."""
    r = scenario("limits", url=influxd.url)
    assert [row[1] for row in r["window"]] == [2.0, 3.0, 4.0]
    assert [row[1] for row in r["limit2"]] == [0.0, 1.0]
    assert r["limit0"] == [] and r["empty_range"] == [] and r["reversed"] == []
    assert [row[1] for row in r["end_inclusive?"]] == [9.0]
    assert r["infinite"] == 10 and r["other_tag"] == [] and r["twisted_in_task"] == 10
    assert r["negative_limit"]["error"] == "ValueError"
    assert r["agg_zero"]["error"] == "ValueError" and "positive" in r["agg_zero"]["message"]
    assert r["agg_sub_us"]["error"] == "ValueError"


@pytest.mark.integration
def test_aggregates_match_sqlite(influxd: Influxd) -> None:
    """query_agg gives SqliteHistorian's rows: epoch-aligned buckets, usable values only."""
    result = scenario("agg", url=influxd.url)
    for label in ("fixed", "random"):
        assert result[label]["raw_influx"] == result[label]["raw_sqlite"], label
        for pair in result[label]["pairs"]:
            assert_same_aggregates(pair["influx"], pair["sqlite"], [label, *pair["query"]])
    fixed = {tuple(p["query"]): p["influx"] for p in result["fixed"]["pairs"]}
    assert fixed[(T0, T0 + 240, 60.0)] == agg_rows(
        [
            AggRow(T0, 4.0, 10.0, 7.0, 4.0, 3),
            AggRow(T0 + 60, 1.0, 1.0, 1.0, 1.0, 1),
            AggRow(T0 + 180, 5.0, 6.0, 5.5, 5.0, 2),
        ]
    )
    # The first bucket begins before an unaligned start; its ts is the bucket start.
    assert fixed[(T0 + 40, T0 + 61, 60.0)] == agg_rows(
        [AggRow(T0, 4.0, 4.0, 4.0, 4.0, 1), AggRow(T0 + 60, 1.0, 1.0, 1.0, 1.0, 1)]
    )
    # Before the epoch buckets are floored, not truncated towards zero.
    assert fixed[(-math.inf, math.inf, 2.0)][:2] == agg_rows(
        [AggRow(-8.0, 3.0, 3.0, 3.0, 3.0, 1), AggRow(-2.0, 4.0, 4.0, 4.0, 4.0, 1)]
    )
    assert fixed[(T0 + 100, T0 + 100, 60.0)] == [] and result["nosuch"] == []
    assert sum(len(p["influx"]) for p in result["random"]["pairs"]) > 100


@pytest.mark.integration
def test_query_at_matches_sqlite(influxd: Influxd) -> None:
    """query_at / query_at_many give SqliteHistorian's answers: newest usable sample with a value in [since, at]."""
    result = scenario("at", url=influxd.url)
    for label in ("fixed", "random"):
        for pair in result[label]["pairs"]:
            assert pair["influx"] == pair["sqlite"], [label, *pair["query"]]
        assert result[label]["many"] == result[label]["many_sqlite"], label
        assert list(result[label]["many"]) == [TAG, *ODD_NAMES, "nosuch.tag"]
        assert result[label]["many"]["nosuch.tag"] is None
    fixed = {tuple(p["query"]): p["influx"] for p in result["fixed"]["pairs"]}
    # The CRC error at T0+55 is newer but unusable; the manual 7.0 at T0+30 counts at exactly T0+30.
    assert fixed[(T0 + 55, -math.inf)] == [[TAG, 4.0, "good", T0 + 50]]
    assert fixed[(T0 + 30, T0 + 30)] == [[TAG, 7.0, "manual", T0 + 30]]
    assert fixed[(T0 + 29.5, T0 + 29.5)] is None
    # A usable quality without a value (T0+150) is no reading.
    assert fixed[(T0 + 150, -math.inf)] == [[TAG, 1.0, "good", T0 + 60]]
    assert fixed[(-1.0, -math.inf)] == [[TAG, 4.0, "good", -1.5]]
    assert sum(1 for p in result["random"]["pairs"] if p["influx"]) > 5


@pytest.mark.integration
def test_rewrite_is_idempotent(influxd: Influxd) -> None:
    """The same batch delivered twice leaves one point per (tag, ts); a rewrite replaces in place."""
    result = scenario("rewrite", url=influxd.url)
    count = influxd.query('SELECT count("quality") FROM "samples"', db="idem")
    assert count["results"][0]["series"][0]["values"][0][1] == 5
    series = influxd.query('SHOW SERIES FROM "samples"', db="idem")["results"][0]["series"][0]["values"]
    assert series == [["samples,device=heat1,tag=heat1.energy_kwh"]]
    assert result["raw"][3] == [TAG, 30.0, "backfilled", T0 + 3]
    # InfluxDB merges the fields of points with the same series and time: a
    # rewrite that has no value keeps the old value (SQLite would store
    # None).  The quality is replaced, so aggregates (usable only) agree.
    assert result["raw"][4] == [TAG, 4.0, "timeout", T0 + 4]
    assert result["stats"]["batches_written"] == 4 and result["stats"]["lines_written"] == 12


@pytest.mark.integration
def test_create_database(influxd: Influxd) -> None:
    """open() creates the database on 1.x; without create_database a missing one is Unavailable."""
    r = scenario("open", url=influxd.url, database="nodb", create_database=False)
    assert r["open"] == {"ok": None}
    assert r["deliver"]["error"] == "StoreUnavailable"
    assert "database not found" in r["deliver"]["message"] and influxd.url in r["deliver"]["message"]
    assert "CREATE" not in r["deliver"]["message"]
    assert r["query"]["error"] == "StoreUnavailable" and "database not found" in r["query"]["message"]
    assert r["stats"]["create_database_ok"] == 0 and r["stats"]["unavailable_errors"] == 2
    assert r["stats"]["query_errors"] == 2 and "database not found" in r["stats"]["last_error"]
    assert "nodb" not in databases(influxd)

    # Driven by Twisted (Deferred.fromCoroutine) rather than an asyncio task.
    r = scenario("open", url=influxd.url, database="made", driver="twisted")
    assert r["open"] == {"ok": None} and r["deliver"] == {"ok": None} and r["deliver_again"] == {"ok": None}
    assert r["query"] == {"ok": [[TAG, 1.0, "good", T0]]}
    assert r["agg"] == {"ok": [[T0 - T0 % 60, 1.0, 1.0, 1.0, 1.0, 1]]}
    assert r["stats"]["create_database_ok"] == 1
    assert r["after_close"]["error"] == "StoreUnavailable" and "closed" in r["after_close"]["message"]
    assert "made" in databases(influxd)


@pytest.mark.integration
def test_dropped_database_is_recreated(influxd: Influxd) -> None:
    """A 404 'database not found' on write creates the database once and asks for a retry."""
    r = scenario("dropped", url=influxd.url)
    assert r["first"] == {"ok": None}
    assert r["after_drop"]["error"] == "StoreUnavailable"
    assert "database not found" in r["after_drop"]["message"]
    assert "created database 'gone'" in r["after_drop"]["message"]
    assert r["retry"] == {"ok": None}
    assert r["raw"] == [[TAG, 2.0, "good", T0 + 1]]
    assert r["stats"]["create_database_ok"] == 2


@pytest.mark.integration
def test_rejected_batches(influxd: Influxd) -> None:
    """Malformed lines and type conflicts are StoreRejected with the server's words."""
    r = scenario("rejected", url=influxd.url)
    assert r["malformed"]["error"] == "StoreRejected"
    assert "unable to parse" in r["malformed"]["message"] and "HTTP 400" in r["malformed"]["message"]
    assert r["conflict"]["error"] == "StoreRejected"
    assert "field type conflict" in r["conflict"]["message"]
    assert r["good_after"] == {"ok": None}
    assert r["stats"]["rejected_batches"] == 2 and r["stats"]["batches_written"] == 2


@pytest.mark.integration
def test_unreachable_server(influxd: Influxd) -> None:
    """A stopped server or a closed port: open, deliver and queries raise StoreUnavailable."""
    url = influxd.url
    influxd.stop()
    for target in (url, f"http://127.0.0.1:{free_port()}"):
        r = scenario("open", url=target, database="x", timeout=2)
        for step in ("open", "deliver", "query", "agg"):
            assert r[step]["error"] == "StoreUnavailable", (step, r[step])
        assert target in r["open"]["message"] and "unreachable" in r["open"]["message"]
        assert r["stats"]["unavailable_errors"] == 2 and r["stats"]["server_version"] is None
    influxd.start()
    r = scenario("open", url=url, database="x")
    assert r["deliver"] == {"ok": None}


@pytest.mark.integration
def test_restart_under_open_store(tmp_path: Path, influxd_bin: str) -> None:
    """Pooled connections die with the server: the next write still works; while down it is Unavailable."""
    r = scenario("restart", url="", root=str(tmp_path / "own"))
    assert r["restarted"]
    assert r["first"] == {"ok": None}
    assert [row[1] for row in r["raw"]] == [1.0, 2.0]
    assert r["down"]["error"] == "StoreUnavailable" and r["query_down"]["error"] == "StoreUnavailable"
    assert r["back"] == {"ok": None}
    assert [row[1] for row in r["raw_after"]] == [1.0, 2.0, 3.0]
    assert r["stats"]["unavailable_errors"] == 1 and r["stats"]["query_errors"] == 1


@pytest.mark.integration
def test_partial_answers_are_paged(tmp_path: Path, influxd_bin: str) -> None:
    """With max-row-limit set, raw and aggregate queries fetch every page."""
    r = scenario("pages", url="", root=str(tmp_path / "own"))
    assert r["raw"] == 20 and r["raw_limit7"] == 7
    assert r["agg"] == r["agg_sqlite"] and len(r["agg"]) > 3


# -- against fake 2.x/3.x servers (no InfluxDB 2 runs here) ---------------------


@pytest.mark.integration
def test_v2_native_write_path() -> None:
    """token+org+bucket: POST /api/v2/write with org, bucket, precision=us, Token auth, the batch as body."""
    r = scenario("v2_native")
    assert r["deliver"] == {"ok": None}
    writes = [q for q in r["requests"] if q["path"] == "/api/v2/write"]
    assert len(writes) == 1
    write = writes[0]
    assert write["method"] == "POST"
    assert write["args"] == {"org": ["utility"], "bucket": ["metering"], "precision": ["us"]}
    assert write["authorization"] == "Token s3cr3t"
    assert write["body"] == r["batch"]
    # No CREATE DATABASE on 2.x; queries are InfluxQL against the bucket.
    queries = [q for q in r["requests"] if q["path"] == "/query"]
    assert len(queries) == 1 and queries[0]["method"] == "GET"
    assert queries[0]["args"]["db"] == ["metering"] and queries[0]["args"]["epoch"] == ["u"]
    assert queries[0]["authorization"] == "Token s3cr3t"
    assert r["query"] == [[TAG, 5.0, "good", T0], [TAG, None, "timeout", us(T0_US + 1)]]
    assert r["stats"]["server_version"] == "v2.7.1" and r["stats"]["server_major"] == 2
    assert r["stats"]["write_path"] == "v2" and r["stats"]["lines_written"] == 2
    assert r["rejected"]["error"] == "StoreRejected" and "bad timestamp" in r["rejected"]["message"]
    assert r["timeout"]["error"] == "StoreUnavailable" and r["timeout_s"] < 2
    assert r["refused"]["error"] == "StoreUnavailable"
    assert r["unavailable"]["error"] == "StoreUnavailable" and "503" in r["unavailable"]["message"]


@pytest.mark.integration
def test_v1_path_auth_and_versions() -> None:
    """Token and basic auth, rp, db=<bucket>; CREATE DATABASE only on 1.x; 2.x/3.x versions read."""
    r = scenario("v1_compat")
    token_write, token_query = [q for q in r["requests"] if q["path"] in ("/write", "/query")][:2]
    assert token_write["args"] == {"db": ["metering"], "precision": ["u"]}
    assert token_write["authorization"] == "Token tok" and token_write["method"] == "POST"
    assert token_write["content_type"].startswith("text/plain")
    assert token_query["args"]["db"] == ["metering"] and token_query["authorization"] == "Token tok"
    assert not any("CREATE" in q["body"] for q in r["requests"])  # a 2.x server: no CREATE
    basic = [q for q in r["requests"] if q["authorization"].startswith("Basic")]
    assert len(basic) == 3  # ping, write, query
    import base64

    assert base64.b64decode(basic[1]["authorization"][6:]) == b"scada:pa:ss"
    assert basic[1]["args"] == {"db": ["db"], "precision": ["u"], "rp": ["one year"]}
    assert '"one year"."samples"' in basic[2]["args"]["q"][0]
    assert 'GROUP BY time(60000000u) fill(none)' in basic[2]["args"]["q"][0]
    creates = [q for q in r["v1_requests"] if q["path"] == "/query"]
    assert len(creates) == 1 and creates[0]["method"] == "POST"
    assert creates[0]["body"] == "q=CREATE+DATABASE+%22we%5C%22ird%22"
    assert [q["path"] for q in r["v3_requests"]] == ["/ping"]
    stats = r["stats"]
    assert (stats["token"]["server_major"], stats["plain"]["server_major"], stats["core"]["server_major"]) == (2, 1, 3)
    assert stats["token"]["url"] == stats["basic"]["url"]  # trailing slash dropped
    assert stats["core"]["url"].startswith("http://localhost:")


@pytest.mark.integration
def test_http_status_classification() -> None:
    """Retryable answers are StoreUnavailable, refusals of the data StoreRejected; timeouts bounded."""
    r = scenario("statuses")
    kinds = {name: r[name]["deliver"].get("error") for name in r if name[0].isdigit() or name == "hang"}
    assert kinds == {
        "400": "StoreRejected",
        "401": "StoreUnavailable",
        "403": "StoreUnavailable",
        "404_db": "StoreUnavailable",
        "404_bucket": "StoreUnavailable",
        "413": "StoreRejected",
        "422": "StoreRejected",
        "429": "StoreUnavailable",
        "500": "StoreUnavailable",
        "503": "StoreUnavailable",
        "hang": "StoreUnavailable",
    }
    assert "invalid field format" in r["400"]["deliver"]["message"]
    assert "authorization failed" in r["401"]["deliver"]["message"]
    assert "bucket" in r["404_bucket"]["deliver"]["message"]
    assert "overloaded" in r["503"]["deliver"]["message"]
    assert "did not answer" in r["hang"]["deliver"]["message"] and r["hang"]["seconds"] < 1.5
    # A 404 for a missing 1.x database sends one CREATE DATABASE before giving up.
    assert [p[:2] for p in r["404_db"]["paths"]][:2] == [["POST", "/write"], ["POST", "/query"]]
    assert r["404_db"]["paths"][1][2].startswith("q=CREATE+DATABASE")
    for name in ("401", "500", "503", "hang"):
        assert r[name]["query"]["error"] == "StoreUnavailable", name
    assert r["influxql_error"]["error"] == "StoreUnavailable"
    assert "max-select-point" in r["influxql_error"]["message"]
    assert r["parse_error"]["error"] == "RuntimeError"
    assert r["ping_401"]["error"] == "StoreUnavailable" and "401" in r["ping_401"]["message"]


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv))
