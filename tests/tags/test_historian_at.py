"""Tests for ``query_at`` / ``query_at_many``: the reading at a moment, on SQLite, the scan fallback, forwarding."""

from __future__ import annotations

import math
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.internet.task import Clock

from tags.historian import AggRow, ForwardingHistorian, Historian, SqliteHistorian, SqliteStore
from tags.model import Sample
from tags.quality import Quality

T0 = 1795244400.0
TAG = "m1.volume_m3"
T = TypeVar("T")

#: A mix of qualities and gaps; the newest usable sample before each probe is known.
SAMPLES = [
    Sample(TAG, 1.0, Quality.GOOD, T0),
    Sample(TAG, 2.0, Quality.MANUAL, T0 + 10),
    Sample(TAG, 99.0, Quality.CRC_ERROR, T0 + 20),  # unusable, though newer
    Sample(TAG, None, Quality.TIMEOUT, T0 + 30),
    Sample(TAG, None, Quality.GOOD, T0 + 35),  # usable quality without a value: no reading
    Sample(TAG, 4.0, Quality.BACKFILLED, T0 + 40),
    Sample(TAG, 5.0, Quality.CALCULATED, T0 + 50),
    Sample("other.tag", 7.0, Quality.GOOD, T0 + 45),
]


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a query coroutine that must finish without waiting on anything."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise AssertionError("query suspended")


def reference(samples: list[Sample], name: str, at: float, since: float) -> Sample | None:
    """The definition: newest usable sample with a value in [since, at] (the last written wins per ts)."""
    by_ts: dict[float, Sample] = {}
    for s in samples:
        if s.name == name:
            by_ts[s.ts] = s
    best = None
    for ts in sorted(by_ts):
        s = by_ts[ts]
        if since <= ts <= at and s.value is not None and s.quality.usable:
            best = s
    return best


class ScanOnly(Historian):
    """A historian with only query_raw: exercises the base class's scan fallback."""

    def __init__(self, samples: list[Sample]) -> None:
        self.samples = sorted(samples, key=lambda s: s.ts)
        self.pages = 0

    def write(self, samples):  # pragma: no cover - not used
        raise NotImplementedError

    def flush(self) -> None:  # pragma: no cover - not used
        pass

    async def query_raw(self, name: str, start: float, end: float, limit: int = 100_000) -> list[Sample]:
        self.pages += 1
        return [s for s in self.samples if s.name == name and start <= s.ts < end][:limit]

    async def query_agg(self, name, start, end, every) -> list[AggRow]:  # pragma: no cover - not used
        return []

    def close(self) -> None:  # pragma: no cover - not used
        pass

    def stats(self) -> dict[str, Any]:  # pragma: no cover - not used
        return {}


@pytest.fixture
def hist() -> SqliteHistorian:
    """An in-memory SQLite historian holding SAMPLES."""
    h = SqliteHistorian(":memory:", Clock())
    h.write(SAMPLES)
    h.flush()
    return h


@pytest.mark.parametrize(("at", "since", "expected"), [
    (T0 + 100, 0, 5.0),  # calculated is usable
    (T0 + 45, 0, 4.0),  # backfilled; the bad ones after the manual one are skipped
    (T0 + 39.99, 0, 2.0),
    (T0 + 10, 0, 2.0),  # at is inclusive
    (T0 + 9.999, 0, 1.0),
    (T0 + 9.999, T0, 1.0),  # since is inclusive
    (T0 + 9.999, T0 + 0.001, None),  # nothing usable in the window
    (T0 - 1, 0, None),
    (T0 + 100, T0 + 200, None),  # reversed window
])
def test_sqlite_query_at(hist: SqliteHistorian, at: float, since: float, expected: float | None) -> None:
    """The newest usable sample with a value, both bounds inclusive, on the store and through the queue."""
    for source in (hist, hist.store):
        got = run(source.query_at(TAG, at, since))
        assert (got.value if got else None) == expected
        assert got == reference(SAMPLES, TAG, at, since)
    assert run(hist.query_at("no.such", T0 + 100, 0)) is None


def test_sqlite_query_at_many(hist: SqliteHistorian, monkeypatch: pytest.MonkeyPatch) -> None:
    """One answer per distinct name, None where nothing is usable or the tag is unknown; chunked statements."""
    import tags.historian.sqlite as sqlite

    monkeypatch.setattr(sqlite, "AT_NAMES_PER_QUERY", 2)
    got = run(hist.query_at_many([TAG, "other.tag", "no.such", TAG], T0 + 39, -math.inf))
    assert list(got) == [TAG, "other.tag", "no.such"]
    assert got[TAG] == Sample(TAG, 2.0, Quality.MANUAL, T0 + 10)
    assert got["other.tag"] is None and got["no.such"] is None
    assert run(hist.query_at_many([], T0, 0)) == {}
    with pytest.raises(ValueError, match="NaN"):
        run(hist.query_at(TAG, math.nan, 0))


def test_scan_fallback_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend without its own query_at gets the base class's scan, paged through query_raw."""
    import tags.historian.base as base

    monkeypatch.setattr(base, "_SCAN_PAGE", 3)
    scan = ScanOnly(SAMPLES)
    for at in (T0 - 1, T0, T0 + 10, T0 + 39, T0 + 40, T0 + 100):
        assert run(scan.query_at(TAG, at, -math.inf)) == reference(SAMPLES, TAG, at, -math.inf), at
    scan.pages = 0
    assert run(scan.query_at_many([TAG, "other.tag"], T0 + 100, 0)) == {
        TAG: SAMPLES[6], "other.tag": SAMPLES[7]}
    assert scan.pages == 4  # 7 samples of TAG in pages of 3 (3+3+1), then one page of the other


def test_forwarding_catches_up_before_query_at() -> None:
    """A queued sample is sent to the store before query_at asks it, as for query_raw."""
    clock = Clock()
    hist = ForwardingHistorian(SqliteStore(":memory:"), clock, batch_size=100)
    hist.start()
    hist.write([Sample(TAG, 3.0, Quality.GOOD, T0)])
    assert hist.backlog == 1
    got = defer.ensureDeferred(hist.query_at(TAG, T0, T0))
    assert got.result == Sample(TAG, 3.0, Quality.GOOD, T0)
    hist.write([Sample(TAG, 4.0, Quality.GOOD, T0 + 1)])
    many = defer.ensureDeferred(hist.query_at_many([TAG], T0 + 1, T0))
    assert many.result == {TAG: Sample(TAG, 4.0, Quality.GOOD, T0 + 1)}
    hist.close()


_qualities = st.sampled_from(list(Quality))
_ts = st.integers(0, 60).map(lambda i: T0 + i / 2)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(_ts, st.one_of(st.none(), st.floats(-1e6, 1e6)), _qualities), max_size=30),
    _ts, _ts,
)
def test_sqlite_matches_reference(rows, at: float, since: float) -> None:
    """On random histories (rewrites of one ts included) SQLite, the scan and the definition agree."""
    samples = [Sample(TAG, v, q, ts) for ts, v, q in rows]
    store = SqliteStore(":memory:")
    store.insert([(s.name, s.ts, s.value, s.quality.value) for s in samples])
    expected = reference(samples, TAG, at, since)
    assert run(store.query_at(TAG, at, since)) == expected
    assert run(store.query_at_many(["x.y", TAG], at, since)) == {"x.y": None, TAG: expected}
    assert run(ScanOnly(list({s.ts: s for s in samples}.values())).query_at(TAG, at, since)) == expected
    store.close()
