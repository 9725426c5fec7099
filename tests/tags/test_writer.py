"""Tests for tags.historian.writer: which samples reach history."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.task import Clock

from tags.historian import AggRow, Historian, SqliteHistorian
from tags.historian.writer import HistoryWriter
from tags.model import Sample, TagDef
from tags.quality import Quality
from tags.table import TagTable

GOOD = Quality.GOOD
T0 = 1795244400.0  # 2026-11-21T07:00:00Z


class RecordingHistorian(Historian):
    """A historian that remembers what it was given and how often it was flushed."""

    def __init__(self) -> None:
        """Start with nothing written."""
        self.written: list[Sample] = []
        self.flushes = 0

    def write(self, samples: Sequence[Sample]) -> None:
        """Record the samples."""
        self.written.extend(samples)

    def flush(self) -> None:
        """Count the flush."""
        self.flushes += 1

    async def query_raw(
        self, name: str, start: float, end: float, limit: int = 100_000
    ) -> list[Sample]:
        """Not needed here."""
        raise NotImplementedError

    async def query_agg(self, name: str, start: float, end: float, every: float) -> list[AggRow]:
        """Not needed here."""
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to release."""

    def stats(self) -> dict[str, Any]:
        """Report the number of samples written."""
        return {"written_total": len(self.written)}


@pytest.fixture
def table() -> TagTable:
    """Return a table with a tag without deadband and one with a 0.5 deadband."""
    table = TagTable()
    table.define(TagDef("heat1.energy_kwh"))
    table.define(TagDef("heat1.flow_m3h", deadband=0.5))
    return table


@pytest.fixture
def hist() -> RecordingHistorian:
    """Return a recording historian."""
    return RecordingHistorian()


@pytest.fixture
def writer(table: TagTable, hist: RecordingHistorian) -> HistoryWriter:
    """Return a started writer with a 900 s heartbeat."""
    writer = HistoryWriter(table, hist, Clock(), heartbeat=900.0)
    writer.start()
    return writer


def feed(table: TagTable, name: str, points: list[tuple[float, float | None, Quality]]) -> None:
    """Push (time offset, value, quality) points of one tag through the table."""
    table.update_many(Sample(name, v, q, T0 + dt) for dt, v, q in points)


def written(hist: RecordingHistorian, name: str) -> list[tuple[float, float | None, Quality]]:
    """Return the (time offset, value, quality) points of one tag that reached history."""
    return [(s.ts - T0, s.value, s.quality) for s in hist.written if s.name == name]


def test_zero_deadband_writes_changes_not_repeats(
    table: TagTable, hist: RecordingHistorian, writer: HistoryWriter
) -> None:
    """Without deadband every change is written, an identical repeat is not."""
    points = [(0, 1.0, GOOD), (1, 1.0, GOOD), (2, 1.5, GOOD), (3, 1.5, GOOD), (4, 1.0, GOOD)]
    feed(table, "heat1.energy_kwh", points)
    assert written(hist, "heat1.energy_kwh") == [points[0], points[2], points[4]]


def test_deadband_measured_from_last_written(
    table: TagTable, hist: RecordingHistorian, writer: HistoryWriter
) -> None:
    """A value is written once it moved by the deadband from the last written one, drift included."""
    points = [
        (0, 10.0, GOOD),  # first: written
        (1, 10.3, GOOD),  # 0.3 from 10.0
        (2, 10.49, GOOD),  # 0.49, still inside
        (3, 10.5, GOOD),  # exactly the deadband: written
        (4, 10.1, GOOD),  # 0.4 back
        (5, 9.9, GOOD),  # 0.6 from 10.5: written
    ]
    feed(table, "heat1.flow_m3h", points)
    assert written(hist, "heat1.flow_m3h") == [points[0], points[3], points[5]]


def test_quality_change_always_written(
    table: TagTable, hist: RecordingHistorian, writer: HistoryWriter
) -> None:
    """A quality change is written even inside the deadband; a repeated bad quality is not."""
    points = [
        (0, 10.0, GOOD),
        (1, None, Quality.TIMEOUT),
        (2, None, Quality.TIMEOUT),
        (3, None, Quality.COMM_LOSS),
        (4, 10.1, GOOD),
        (5, 10.1, Quality.BACKFILLED),
    ]
    feed(table, "heat1.flow_m3h", points)
    assert written(hist, "heat1.flow_m3h") == [points[0], points[1], points[3], points[4], points[5]]


def test_nan_and_none_values(table: TagTable, hist: RecordingHistorian, writer: HistoryWriter) -> None:
    """A move to or from NaN or None is written; a repeated NaN is not."""
    points = [
        (0, 1.0, GOOD),
        (1, math.nan, GOOD),
        (2, math.nan, GOOD),
        (3, 1.0, GOOD),
        (4, None, GOOD),
        (5, None, GOOD),
        (6, 1.0, GOOD),
    ]
    feed(table, "heat1.flow_m3h", points)
    assert [dt for dt, _, _ in written(hist, "heat1.flow_m3h")] == [0, 1, 3, 4, 6]


def test_heartbeat(table: TagTable, hist: RecordingHistorian, writer: HistoryWriter) -> None:
    """A steady value is written again once heartbeat seconds passed since the last write."""
    points = [(0, 5.0, GOOD), (600, 5.0, GOOD), (899.9, 5.0, GOOD), (900, 5.0, GOOD), (1500, 5.1, GOOD)]
    feed(table, "heat1.flow_m3h", points)
    feed(table, "heat1.energy_kwh", [(0, 7.0, GOOD), (1800, 7.0, GOOD)])
    assert written(hist, "heat1.flow_m3h") == [points[0], points[3]]
    assert [dt for dt, _, _ in written(hist, "heat1.energy_kwh")] == [0, 1800]


def test_stop_unsubscribes_and_flushes(
    table: TagTable, hist: RecordingHistorian, writer: HistoryWriter
) -> None:
    """After stop nothing is forwarded and the historian was flushed; start is idempotent."""
    writer.start()
    feed(table, "heat1.energy_kwh", [(0, 1.0, GOOD)])
    assert len(hist.written) == 1
    writer.stop()
    assert hist.flushes == 1
    feed(table, "heat1.energy_kwh", [(1, 2.0, GOOD)])
    assert len(hist.written) == 1


def test_refused_sample_is_not_remembered(table: TagTable) -> None:
    """If the historian refuses a sample, the next one is compared with what really was written."""

    class Refusing(RecordingHistorian):
        """Refuse samples with the value 2.0."""

        def write(self, samples: Sequence[Sample]) -> None:
            """Raise for a 2.0, record anything else."""
            if samples[0].value == 2.0:
                raise OSError("refused")
            super().write(samples)

    hist = Refusing()
    HistoryWriter(table, hist, Clock()).start()
    for point in [(0, 1.0, GOOD), (1, 2.0, GOOD), (2, 1.2, GOOD)]:  # three polls
        feed(table, "heat1.flow_m3h", [point])
    assert [v for _, v, _ in written(hist, "heat1.flow_m3h")] == [1.0]
    feed(table, "heat1.flow_m3h", [(3, 1.6, GOOD)])
    assert [v for _, v, _ in written(hist, "heat1.flow_m3h")] == [1.0, 1.6]


def test_one_poll_is_one_write(table: TagTable, hist: RecordingHistorian) -> None:
    """The samples of one update_many reach the historian in one write; a lone update in its own."""

    class Counting(RecordingHistorian):
        calls: list[int] = []

        def write(self, samples: Sequence[Sample]) -> None:
            self.calls.append(len(samples))
            super().write(samples)

    hist = Counting()
    HistoryWriter(table, hist, Clock()).start()
    feed(table, "heat1.flow_m3h", [(0, 1.0, GOOD), (1, 2.0, GOOD), (2, 3.0, GOOD)])
    table.update(Sample("heat1.flow_m3h", 4.0, GOOD, T0 + 3))
    assert hist.calls == [3, 1]


def test_unstorable_sample_is_refused_alone(table: TagTable, caplog: pytest.LogCaptureFixture) -> None:
    """A sample the historian cannot store (ValueError) is refused; the rest of the poll is written."""

    class Picky(RecordingHistorian):
        def write(self, samples: Sequence[Sample]) -> None:
            if any(s.value == 2.0 for s in samples):
                raise ValueError("cannot store 2.0")
            super().write(samples)

    hist = Picky()
    HistoryWriter(table, hist, Clock()).start()
    feed(table, "heat1.flow_m3h", [(0, 1.0, GOOD), (1, 2.0, GOOD), (2, 3.0, GOOD)])
    assert [v for _, v, _ in written(hist, "heat1.flow_m3h")] == [1.0, 3.0]
    assert "cannot store 2.0" in caplog.text


def test_rejects_non_positive_heartbeat(table: TagTable, hist: RecordingHistorian) -> None:
    """A heartbeat of zero or less is refused, naming it."""
    with pytest.raises(ValueError, match="-1"):
        HistoryWriter(table, hist, Clock(), heartbeat=-1)


def test_end_to_end_with_sqlite(tmp_path: Path, table: TagTable) -> None:
    """Samples thinned by the writer land in SQLite on stop, without waiting for the timer."""
    clock = Clock()
    hist = SqliteHistorian(tmp_path / "h.db", clock, flush_interval=60.0)
    hist.start()
    writer = HistoryWriter(table, hist, clock)
    writer.start()
    feed(table, "heat1.flow_m3h", [(0, 1.0, GOOD), (1, 1.2, GOOD), (2, 2.0, GOOD)])
    assert hist.stats()["written_total"] == 0
    writer.stop()
    assert hist.stats()["written_total"] == 2
    hist.close()
