"""Tests for tags.historian.sqlite: batching, durability, queries and aggregation."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from tags.historian import AggRow, DiskQueue, SqliteHistorian, StoreUnavailable
from tags.model import Sample
from tags.quality import Quality

GOOD = Quality.GOOD
T0 = 1795244400.0  # 2026-11-21T07:00:00Z, a multiple of 3600
TAG = "heat1.energy_kwh"

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a query coroutine that must finish without waiting on anything."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise AssertionError("query suspended; the SQLite historian should never wait")


def on_disk(path: Path) -> int:
    """Count the samples committed to the file, through a separate connection."""
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0]


def good(ts: float, value: float, name: str = TAG) -> Sample:
    """Return a good sample."""
    return Sample(name, value, GOOD, ts)


@pytest.fixture
def clock() -> Clock:
    """Return a fake reactor clock."""
    return Clock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Return a database path in a directory that does not exist yet."""
    return tmp_path / "var" / "history" / "history.db"


def test_creates_file_wal_and_schema(db: Path, clock: Clock) -> None:
    """Opening creates parent directories and a WAL-mode database with both tables."""
    hist = SqliteHistorian(db, clock)
    assert db.exists()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"tags", "samples"} <= tables
    hist.close()


def test_batches_by_size(db: Path, clock: Clock) -> None:
    """Writes stay queued until batch_size is reached, then go in one flush."""
    hist = SqliteHistorian(db, clock, batch_size=3)
    hist.write([good(T0, 1.0), good(T0 + 1, 2.0)])
    assert on_disk(db) == 0
    assert hist.stats()["queued"] == 2
    hist.write([good(T0 + 2, 3.0)])
    assert on_disk(db) == 3
    stats = hist.stats()
    assert (stats["queued"], stats["written_total"], stats["batches"]) == (0, 3, 1)
    hist.close()


def test_batches_by_clock(db: Path, clock: Clock) -> None:
    """Once started, the queue is flushed every flush_interval and the timer re-arms."""
    hist = SqliteHistorian(db, clock, flush_interval=2.0)
    hist.start()
    hist.write([good(T0, 1.0)])
    clock.advance(1.9)
    assert on_disk(db) == 0
    clock.advance(0.1)
    assert on_disk(db) == 1
    assert hist.stats()["last_flush_ts"] == 2.0
    hist.write([good(T0 + 1, 2.0)])
    clock.advance(2.0)
    assert on_disk(db) == 2
    assert len(clock.getDelayedCalls()) == 1
    hist.close()
    assert clock.getDelayedCalls() == []


def test_survives_close_and_reopen(db: Path, clock: Clock) -> None:
    """close flushes the queue; a new historian on the same file reads it back."""
    hist = SqliteHistorian(db, clock)
    hist.write([good(T0, 1.0), Sample(TAG, None, Quality.TIMEOUT, T0 + 1), good(T0, 5.0, "b.x")])
    hist.close()
    hist.close()
    with pytest.raises(RuntimeError, match="closed"):
        hist.write([good(T0 + 2, 2.0)])

    again = SqliteHistorian(db, clock)
    assert run(again.query_raw(TAG, 0, math.inf)) == [
        good(T0, 1.0),
        Sample(TAG, None, Quality.TIMEOUT, T0 + 1),
    ]
    again.write([good(T0 + 2, 2.0, "c.y"), good(T0 + 3, 3.0)])
    again.close()
    third = SqliteHistorian(db, clock)
    assert [s.value for s in run(third.query_raw("c.y", 0, math.inf))] == [2.0]
    assert [s.value for s in run(third.query_raw("b.x", 0, math.inf))] == [5.0]
    assert len(run(third.query_raw(TAG, 0, math.inf))) == 3
    third.close()


def test_raw_range_boundaries_and_limit(db: Path, clock: Clock) -> None:
    """query_raw returns start <= ts < end, oldest first, at most limit samples."""
    hist = SqliteHistorian(db, clock)
    hist.write([good(T0 + 30, 3.0), good(T0 + 10, 1.0), good(T0 + 20, 2.0), good(T0 + 15, 9.0, "b.x")])
    values = [s.value for s in run(hist.query_raw(TAG, T0 + 10, T0 + 30))]
    assert values == [1.0, 2.0]
    assert [s.value for s in run(hist.query_raw(TAG, T0 + 10.001, T0 + 30.001))] == [2.0, 3.0]
    assert [s.value for s in run(hist.query_raw(TAG, T0, T0 + 100, limit=2))] == [1.0, 2.0]
    assert run(hist.query_raw(TAG, T0 + 30, T0 + 30)) == []
    assert run(hist.query_raw("nosuch.tag", 0, math.inf)) == []
    with pytest.raises(ValueError, match="-1"):
        run(hist.query_raw(TAG, T0, T0 + 100, limit=-1))
    hist.close()


def test_same_timestamp_replaces(db: Path, clock: Clock) -> None:
    """A second sample of a tag with the same ts replaces the first (idempotent replay)."""
    hist = SqliteHistorian(db, clock)
    hist.write([good(T0, 1.0), good(T0, 2.0)])
    hist.flush()
    hist.write([Sample(TAG, 3.0, Quality.BACKFILLED, T0)])
    assert run(hist.query_raw(TAG, 0, math.inf)) == [Sample(TAG, 3.0, Quality.BACKFILLED, T0)]
    hist.close()


def test_queries_see_queued_samples(db: Path, clock: Clock) -> None:
    """A query flushes first, so samples written just before are included."""
    hist = SqliteHistorian(db, clock)
    hist.write([good(T0, 1.0)])
    assert [s.value for s in run(hist.query_raw(TAG, 0, math.inf))] == [1.0]
    hist.write([good(T0 + 1, 3.0)])
    assert run(hist.query_agg(TAG, 0, math.inf, 60)) == [AggRow(T0, 1.0, 3.0, 2.0, 3.0, 2)]
    hist.close()


def test_write_refuses_unstorable_sample(db: Path, clock: Clock) -> None:
    """A sample SQLite cannot store is refused at write, naming it, and nothing is queued."""
    hist = SqliteHistorian(db, clock)
    with pytest.raises(ValueError, match="bad.tag"):
        hist.write([good(T0, 1.0), Sample("bad.tag", "12,5", GOOD, T0)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bad.tag"):
        hist.write([Sample("bad.tag", 1.0, "fine", T0)])  # type: ignore[arg-type]
    assert hist.stats()["queued"] == 0
    hist.close()


def test_aggregation_per_bucket(db: Path, clock: Clock) -> None:
    """min/max/mean/last per epoch-aligned bucket; bad quality and empty buckets left out."""
    hist = SqliteHistorian(db, clock)
    hist.write(
        [
            good(T0 + 5, 10.0),
            good(T0 + 50, 4.0),
            Sample(TAG, 99.0, Quality.CRC_ERROR, T0 + 55),  # bad: ignored, though latest
            Sample(TAG, 7.0, Quality.MANUAL, T0 + 30),  # usable
            good(T0 + 60, 1.0),  # next bucket starts exactly here
            Sample(TAG, None, Quality.TIMEOUT, T0 + 130),  # bucket with only bad samples
            Sample(TAG, 5.0, Quality.BACKFILLED, T0 + 199.5),
            good(T0 + 185, 6.0),
        ]
    )
    rows = run(hist.query_agg(TAG, T0, T0 + 240, 60))
    assert rows == [
        AggRow(T0, 4.0, 10.0, 7.0, 4.0, 3),
        AggRow(T0 + 60, 1.0, 1.0, 1.0, 1.0, 1),
        AggRow(T0 + 180, 5.0, 6.0, 5.5, 5.0, 2),
    ]
    # Buckets stay aligned to the epoch when start is not; the first one begins before start.
    assert run(hist.query_agg(TAG, T0 + 40, T0 + 61, 60)) == [
        AggRow(T0, 4.0, 4.0, 4.0, 4.0, 1),
        AggRow(T0 + 60, 1.0, 1.0, 1.0, 1.0, 1),
    ]
    assert run(hist.query_agg("nosuch.tag", T0, T0 + 240, 60)) == []
    with pytest.raises(ValueError, match="positive"):
        run(hist.query_agg(TAG, T0, T0 + 240, 0))
    hist.close()


def test_flush_failure_keeps_queue(db: Path, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    """While another process holds the write lock, batches fail, stay queued and are retried with backoff."""
    hist = SqliteHistorian(db, clock, flush_interval=1.0, batch_size=2, busy_timeout=0)
    hist.start()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        hist.write([good(T0, 1.0), good(T0 + 1, 2.0)])  # size flush fails, no exception here
        assert hist.stats()["queued"] == 2
        with pytest.raises(StoreUnavailable, match="locked"):
            hist.flush()
        hist.write([good(T0 + 2, 3.0), good(T0 + 3, 4.0, "new.tag")])
        clock.advance(1.0)
        clock.advance(1.0)
        stats = hist.stats()
        assert (stats["queued"], stats["written_total"], stats["flush_errors"]) == (4, 0, 3)
        assert stats["store_up"] is False and "locked" in stats["last_error"]
        assert len(clock.getDelayedCalls()) == 1
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    errors = [r for r in caplog.records if r.name == "tags.historian.forward" and r.levelname == "ERROR"]
    assert len(errors) == 1
    clock.advance(3.0)  # not yet: the third failure doubled the delay to 4 s
    assert hist.stats()["queued"] == 4
    clock.advance(1.0)
    stats = hist.stats()
    assert (stats["queued"], stats["written_total"], stats["batches"]) == (0, 4, 2)
    assert stats["store_up"] is True
    assert [s.value for s in run(hist.query_raw(TAG, 0, math.inf))] == [1.0, 2.0, 3.0]
    assert [s.value for s in run(hist.query_raw("new.tag", 0, math.inf))] == [4.0]
    hist.close()


def test_close_with_failing_flush_stays_open(db: Path, clock: Clock) -> None:
    """With an in-memory queue a failing final flush raises, keeps the queue, and can be retried."""
    hist = SqliteHistorian(db, clock, busy_timeout=0)
    hist.write([good(T0, 1.0)])
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreUnavailable, match="1 samples not written"):
        hist.close()
    blocker.execute("ROLLBACK")
    blocker.close()
    hist.close()
    assert on_disk(db) == 1


def test_close_with_failing_flush_keeps_disk_queue(db: Path, clock: Clock) -> None:
    """With a disk queue close succeeds; the samples wait on disk and arrive on the next start."""
    qdir = db.parent / "queue"
    hist = SqliteHistorian(db, clock, busy_timeout=0, queue=DiskQueue(qdir))
    hist.write([good(T0, 1.0), good(T0 + 1, 2.0)])
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    hist.close()
    blocker.execute("ROLLBACK")
    blocker.close()
    assert on_disk(db) == 0
    again = SqliteHistorian(db, clock, queue=DiskQueue(qdir))
    assert again.stats()["queued"] == 2
    again.start()
    assert again.stats()["queued"] == 0
    again.close()
    assert on_disk(db) == 2


def test_stats(db: Path, clock: Clock) -> None:
    """stats reports counters and the file size on disk."""
    hist = SqliteHistorian(db, clock)
    stats = hist.stats()
    assert stats["queued"] == 0 and stats["last_flush_ts"] is None
    hist.write([good(T0, 1.0)])
    clock.advance(5)
    hist.flush()
    stats = hist.stats()
    assert (stats["written_total"], stats["batches"], stats["last_flush_ts"]) == (1, 1, 5.0)
    assert stats["file_size"] > 0
    hist.close()
    assert SqliteHistorian(":memory:", clock).stats()["file_size"] is None


# Quarter-second grid over a quarter of a minute: collisions on one
# timestamp, several samples per bucket and samples exactly on bucket edges
# are all common; negative times check the floor for pre-1970 buckets.  Good
# quality and small integral values are favoured so that buckets are rarely
# empty and min/max ties happen.
_stream = st.lists(
    st.tuples(
        st.integers(min_value=-12, max_value=60).map(lambda k: k * 0.25),
        st.one_of(
            st.none(),
            st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
            st.integers(-3, 3).map(float),
        ),
        st.one_of(st.just(GOOD), st.sampled_from(list(Quality))),
    ),
    min_size=3,
    max_size=80,
)
_window = st.one_of(
    st.just((-1e9, 1e9)),
    st.tuples(st.integers(-4, 10), st.integers(0, 20)).map(
        lambda w: (float(w[0]), float(w[0] + w[1]))
    ),
)


@settings(max_examples=80, deadline=None)
@given(stream=_stream, every=st.sampled_from([0.3, 1.0, 7.0, 60.0]), window=_window)
def test_aggregate_matches_reference(
    stream: list[tuple[float, float | None, Quality]],
    every: float,
    window: tuple[float, float],
) -> None:
    """For random streams, query_agg equals a pure-Python aggregation of the same samples."""
    start, end = window
    hist = SqliteHistorian(":memory:", Clock(), batch_size=7)
    hist.write([Sample(TAG, v, q, ts) for ts, v, q in stream])

    latest = {ts: (v, q) for ts, v, q in stream}  # same (tag, ts): the later sample wins
    buckets: dict[int, list[float]] = {}
    for ts, (v, q) in sorted(latest.items()):
        if start <= ts < end and q.usable and v is not None:
            buckets.setdefault(math.floor(ts / every), []).append(v)
    expected = [
        (b * every, min(vs), max(vs), math.fsum(vs) / len(vs), vs[-1], len(vs))
        for b, vs in sorted(buckets.items())
    ]

    rows = run(hist.query_agg(TAG, start, end, every))
    assert [(r.ts, r.min, r.max, r.last, r.count) for r in rows] == [
        (e[0], e[1], e[2], e[4], e[5]) for e in expected
    ]
    for row, exp in zip(rows, expected, strict=True):
        assert row.mean == pytest.approx(exp[3], rel=1e-9, abs=1e-6)
    hist.close()
