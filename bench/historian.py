"""Samples per second from the tag table through the history writer into InfluxDB.

Two runs over the same points on one throw-away ``influxd`` (Debian's
package, started on 127.0.0.1 with a temporary data directory):

- **raw loop** (the peer): the points formatted as line protocol, a batch
  at a time, and POSTed to ``/write`` one batch after the other over one
  keep-alive connection (``http.client``) — the least work a hand-written
  Python loader does;
- **prebuilt**: the same POSTs with the bodies encoded before the clock
  starts: the server's own limit on this machine, reported beside;
- **ours**: the same samples fed to a `TagTable`, thinned by the
  `HistoryWriter` (every value moves, so all pass), encoded, appended to the
  on-disk store-and-forward queue and pumped to the `InfluxStore` on the
  asyncio reactor, until the queue is empty (every batch confirmed).

Each run writes into its own database so neither overwrites the other's
points.  The figure is the best of ``--rounds`` rounds.  Prints one JSON
line last: ``{"bench": "historian", "samples_per_s": ..., "peer": "raw
line-protocol POST loop", "peer_samples_per_s": ..., "ratio": ...}``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tags.historian.lines import Encoder  # noqa: E402
from tags.model import Sample, TagDef  # noqa: E402
from tags.quality import Quality  # noqa: E402

T0 = 1795244400.0  # 2026-11-21T07:00:00Z


def make_samples(tags: int, rounds: int) -> list[list[Sample]]:
    """Return ``rounds`` polls of ``tags`` tags, every value different from the last."""
    names = [f"apt{i // 4:04d}.p{i % 4}" for i in range(tags)]
    return [
        [Sample(name, 1000.0 + r * 0.5 + i * 0.001, Quality.GOOD, T0 + r * 60.0 + i * 1e-4)
         for i, name in enumerate(names)]
        for r in range(rounds)
    ]


def _post_loop(url: str, database: str, bodies) -> float:
    """POST each body of the iterable ``bodies`` in turn; return the seconds it took."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.request("POST", "/query?" + urlencode({"q": f'CREATE DATABASE "{database}"'}))
    conn.getresponse().read()
    path = "/write?" + urlencode({"db": database, "precision": "u"})
    start = time.perf_counter()
    for body in bodies:
        conn.request("POST", path, body, {"Content-Type": "text/plain"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 204:
            raise RuntimeError(f"raw write failed: {resp.status}")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def raw_prebuilt(url: str, database: str, polls: list[list[Sample]], batch: int) -> float:
    """POST the points as batches encoded beforehand (the server's limit); return samples/s."""
    flat = [s for poll in polls for s in poll]
    encoder = Encoder()
    bodies = [encoder.encode(flat[i : i + batch])[0] for i in range(0, len(flat), batch)]
    return len(flat) / _post_loop(url, database, bodies)


def raw_loop(url: str, database: str, polls: list[list[Sample]], batch: int) -> float:
    """Format each batch of points as line protocol and POST it; return samples/s.

    The loop a hand-written loader runs: the least Python work that turns
    points into writes (one f-string per point, no queue, no filter).
    """
    flat = [s for poll in polls for s in poll]

    def bodies():
        for i in range(0, len(flat), batch):
            yield "".join(
                f'samples,device={name.partition(".")[0]},tag={name} quality="{quality.value}",'
                f"value={value!r} {round(ts * 1_000_000)}\n"
                for name, value, quality, ts in flat[i : i + batch]
            ).encode()

    return len(flat) / _post_loop(url, database, bodies())


def ours(reactor, url: str, database: str, polls: list[list[Sample]], batch: int, queue_dir: str):
    """Feed the polls through table → writer → queue → InfluxStore; return a Deferred of samples/s."""
    from twisted.internet import defer

    from tags.historian import DiskQueue, ForwardingHistorian
    from tags.historian.influx import InfluxStore
    from tags.historian.writer import HistoryWriter
    from tags.table import TagTable

    table = TagTable()
    for sample in polls[0]:
        table.define(TagDef(sample.name))
    store = InfluxStore(reactor, url=url, database=database)
    historian = ForwardingHistorian(store, reactor, DiskQueue(queue_dir), flush_interval=0.05,
                                    batch_size=batch)
    writer = HistoryWriter(table, historian, reactor)
    total = sum(len(p) for p in polls)

    @defer.inlineCallbacks
    def run():
        yield store.open()
        historian.start()
        writer.start()
        start = time.perf_counter()
        for poll in polls:
            table.update_many(poll)
            # Let the reactor send while the next poll is fed, as it would
            # between the polls of a real site.
            yield defer.Deferred.fromFuture(_sleep0())
        done = yield historian.drain(timeout=300)
        elapsed = time.perf_counter() - start
        if not done or historian.stats()["written_total"] != total:
            raise RuntimeError(f"not everything arrived: {historian.stats()}")
        writer.stop()
        historian.close()
        return total / elapsed

    return run()


def _sleep0():
    import asyncio

    return asyncio.ensure_future(asyncio.sleep(0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=2000)
    parser.add_argument("--polls", type=int, default=100)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from scada.app import install_reactor

    reactor, _loop = install_reactor()
    from twisted.internet import defer, task

    from tests.integration.influxd import Influxd

    polls = make_samples(args.tags, args.polls)
    total = args.tags * args.polls
    results: dict = {}

    with tempfile.TemporaryDirectory() as tmp, Influxd(Path(tmp) / "influxd") as server:

        @defer.inlineCallbacks
        def bench(_reactor):
            best = {"raw": 0.0, "prebuilt": 0.0, "ours": 0.0}
            for r in range(args.rounds):
                raw = raw_loop(server.url, f"raw{r}", polls, args.batch)
                prebuilt = raw_prebuilt(server.url, f"pre{r}", polls, args.batch)
                mine = yield ours(reactor, server.url, f"ours{r}", polls, args.batch,
                                  os.path.join(tmp, f"queue{r}"))
                print(f"round {r + 1}: raw loop {raw:,.0f}/s, prebuilt bodies {prebuilt:,.0f}/s, "
                      f"ours {mine:,.0f}/s", file=sys.stderr)
                for key, value in (("raw", raw), ("prebuilt", prebuilt), ("ours", mine)):
                    best[key] = max(best[key], value)
            results.update(best)

        try:
            task.react(bench)
        except SystemExit as exc:
            if exc.code:
                raise
    print(json.dumps({
        "bench": "historian",
        "samples": total,
        "batch": args.batch,
        "samples_per_s": round(results["ours"]),
        "peer": "raw line-protocol POST loop",
        "peer_samples_per_s": round(results["raw"]),
        "prebuilt_samples_per_s": round(results["prebuilt"]),
        "ratio_prebuilt": round(results["ours"] / results["prebuilt"], 3),
        "ratio": round(results["ours"] / results["raw"], 3),
        "influxdb": "1.6.7~rc0 (Debian)",
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
