# -*- test-case-name: tests.tags.test_writer -*-
"""Decide which samples from the tag table are worth keeping in history."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tags.historian.base import Historian
from tags.historian.queue import QueueFull
from tags.model import Sample
from tags.quality import Quality
from tags.table import TagTable

if TYPE_CHECKING:
    from collections.abc import Callable

    from twisted.internet.interfaces import IReactorTime

_log = logging.getLogger(__name__)


class HistoryWriter:
    """Forward samples from a `TagTable` to a `Historian`, thinned by deadband.

    A sample of a tag is written when it is the tag's first, when its
    quality differs from the last written one, when its value moved by at
    least the tag's ``deadband`` from the last *written* value (so slow drift
    is written once it adds up; a deadband of 0 writes every change but not
    a repeat), or when ``heartbeat`` seconds passed since the last written
    sample, so that trends of steady meters still show a line.

    Time is the samples' own: a late batch of hourly LoRaWAN readings or an
    archive read gets its heartbeat points where the readings belong, which
    the reactor's clock would not give.  ``reactor`` is taken for the shared
    constructor shape of scheduled components; the writer schedules nothing.
    """

    def __init__(
        self,
        table: TagTable,
        historian: Historian,
        reactor: IReactorTime,
        heartbeat: float = 900.0,
    ) -> None:
        """Prepare a writer; nothing is forwarded until `start`."""
        if heartbeat <= 0:
            raise ValueError(f"heartbeat must be positive, not {heartbeat!r}")
        self._table = table
        self._historian = historian
        self._heartbeat = heartbeat
        # name -> (deadband, last written value, its quality, its ts)
        self._last: dict[str, tuple[float, float | None, Quality, float]] = {}
        # Samples of the current table batch (one poll) that pass the filter.
        self._pending: list[Sample] = []
        self._before: list[tuple[float, float | None, Quality, float] | None] = []
        self._failing = False
        self._unsubscribe: list[Callable[[], None]] = []

    def start(self) -> None:
        """Subscribe to every sample of the table; a second call does nothing."""
        if not self._unsubscribe:
            self._unsubscribe = [
                self._table.subscribe(self._on_sample, changes_only=False),
                self._table.on_batch_end(self._write_pending),
            ]

    def stop(self) -> None:
        """Unsubscribe and flush the historian (which raises if storage refuses)."""
        for undo in self._unsubscribe:
            undo()
        self._unsubscribe = []
        self._write_pending()
        self._historian.flush()

    def _write_pending(self) -> None:
        """Hand the batch's samples to the historian in one write (one queue append).

        If the historian refuses them, what the filter remembered of them is
        undone, so the next samples are compared with what really is in
        history.  One unstorable sample (``ValueError``) refuses the whole
        write, so then they are written one by one and only the bad ones
        are refused.
        """
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        before, self._before = self._before, []
        try:
            self._historian.write(batch)
        except ValueError:
            for sample, last in zip(batch, before):
                try:
                    self._historian.write((sample,))
                except Exception as exc:  # noqa: BLE001 - refused: forget it, go on
                    self._forget(sample, last, exc)
        except Exception as exc:  # noqa: BLE001 - storage refused (queue full, disk error)
            for sample, last in reversed(list(zip(batch, before))):
                self._forget(sample, last, exc)
        else:
            self._failing = False

    def _forget(self, sample: Sample, last: tuple | None, exc: Exception) -> None:
        """Undo what `_on_sample` remembered of a sample history refused."""
        if last is None:
            self._last.pop(sample.name, None)
        else:
            self._last[sample.name] = last
        if isinstance(exc, QueueFull):
            return  # counted and logged by the queue
        if isinstance(exc, ValueError) or not self._failing:
            self._failing = not isinstance(exc, ValueError)
            _log.error("history refused %r: %s", sample, exc)

    def _on_sample(self, sample: Sample) -> None:
        """Write ``sample`` to history if it tells something new."""
        last = self._last.get(sample.name)
        if last is None:
            state = self._table.get(sample.name)
            deadband = state.definition.deadband if state is not None else 0.0
        else:
            deadband, value, quality, ts = last
            if (
                sample.quality is quality
                and sample.ts - ts < self._heartbeat
                and not _moved(sample.value, value, deadband)
            ):
                return
        self._pending.append(sample)
        self._before.append(last)
        self._last[sample.name] = (deadband, sample.value, sample.quality, sample.ts)


def _moved(value: float | None, last: float | None, deadband: float) -> bool:
    """Tell whether ``value`` differs from ``last`` by at least ``deadband`` (and at all)."""
    if value is None or last is None:
        return value is not last
    if value != value or last != last:
        # NaN never compares equal; only a change in NaN-ness is a move.
        return (value != value) is not (last != last)
    delta = abs(value - last)
    return delta > 0 and delta >= deadband
