"""Tests of the alarm package, and the small site they share.

:class:`Site` wires a real :class:`~tags.table.TagTable`, a
:class:`~alarms.model.MemoryJournal` and an :class:`~alarms.engine.AlarmEngine`
to a ``twisted.internet.task.Clock`` that starts at :data:`T0`; tests feed
samples with the clock's time and advance it, never sleeping.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from twisted.internet.task import Clock

from alarms.engine import AlarmEngine, AlarmEvent
from alarms.model import JournalEntry, MemoryJournal
from alarms.rules import Rule
from tags.model import Sample, TagDef
from tags.quality import Quality
from tags.table import TagTable

T0 = 1795244400.0  # 2026-11-21T07:00:00Z, a Saturday (10:00 in Moscow)
GOOD = Quality.GOOD

#: Tags of the shared site: two heat meters, a water meter, an outdoor sensor.
TAGS = (
    TagDef("heat1.t_supply", unit="°C", device="heat1"),
    TagDef("heat1.t_return", unit="°C", device="heat1"),
    TagDef("heat1.status", device="heat1"),
    TagDef("heat2.t_supply", unit="°C", device="heat2"),
    TagDef("water7.volume_m3", unit="m3", device="water7"),
    TagDef("water7.status", device="water7"),
    TagDef("weather.t_outdoor", unit="°C", device="weather"),
)


class Site:
    """A tag table, a journal and an engine on a test clock; ``start`` starts the engine."""

    def __init__(self, rules: Sequence[Rule], *, tags: Iterable[TagDef] = TAGS, journal: MemoryJournal | None = None,
                 start: bool = True, clock: Clock | None = None, **options: Any) -> None:
        """Build the site; ``options`` go to :class:`AlarmEngine`."""
        if clock is None:
            clock = Clock()
            clock.advance(T0)
        self.clock = clock
        self.table = TagTable()
        for tagdef in tags:
            self.table.define(tagdef)
        self.journal = journal if journal is not None else MemoryJournal()
        self.engine = AlarmEngine(self.clock, self.table, rules, self.journal, **options)
        self.events: list[AlarmEvent] = []
        self.engine.subscribe(self.events.append)
        if start:
            self.engine.start()

    @property
    def now(self) -> float:
        """Return the clock's time."""
        return self.clock.seconds()

    def feed(self, tag: str, value: float | None, quality: Quality = GOOD, ts: float | None = None) -> None:
        """Put one sample into the table at the clock's time (or ``ts``)."""
        self.table.update(Sample(tag, value, quality, self.now if ts is None else ts))

    def feed_many(self, samples: Iterable[tuple[str, float | None, Quality]]) -> None:
        """Put several samples into the table in one batch (one device poll)."""
        self.table.update_many([Sample(tag, value, quality, self.now) for tag, value, quality in samples])

    def advance(self, seconds: float) -> None:
        """Move the clock on, running due timers (in one step)."""
        self.clock.advance(seconds)

    def step(self, seconds: float, every: float = 1.0) -> None:
        """Move the clock on in steps of ``every`` seconds."""
        done = 0.0
        while done < seconds:
            part = min(every, seconds - done)
            self.clock.advance(part)
            done += part

    def state(self, alarm_id: str) -> str:
        """Return the state string of an alarm."""
        return self.engine.get(alarm_id).state.value

    def entries(self, alarm_id: str | None = None) -> list[JournalEntry]:
        """Return the journal entries (of one alarm), oldest first."""
        return [e for e in self.journal.entries if alarm_id is None or e.alarm_id == alarm_id]

    def trail(self, alarm_id: str) -> list[tuple[str, str, str]]:
        """Return ``(event, state_from, state_to)`` of an alarm's entries."""
        return [(e.event, e.state_from, e.state_to) for e in self.entries(alarm_id)]
