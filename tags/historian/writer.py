# -*- test-case-name: tests.tags.test_writer -*-
"""Decide which samples from the tag table are worth keeping in history."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tags.historian.base import Historian
from tags.model import Sample
from tags.quality import Quality
from tags.table import TagTable

if TYPE_CHECKING:
    from collections.abc import Callable

    from twisted.internet.interfaces import IReactorTime


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
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        """Subscribe to every sample of the table; a second call does nothing."""
        if self._unsubscribe is None:
            self._unsubscribe = self._table.subscribe(self._on_sample, changes_only=False)

    def stop(self) -> None:
        """Unsubscribe and flush the historian (which raises if storage refuses)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._historian.flush()

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
        # Written first: if the historian refuses the sample, the next one
        # is still compared with what really is in history.
        self._historian.write((sample,))
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
