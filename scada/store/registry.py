# -*- test-case-name: tests.scada.test_registry_store -*-
"""Meter lifecycle events in the operational store (table ``meter_events``).

What happens to a meter after it is configured: commissioning, verification
(поверка) with its new due date, repair, a new seal, replacement by another
meter (with the old meter's final and the new one's initial reading),
decommissioning.  Each event is one row: which meter, what, when it
happened (``at``), when and by whom it was recorded, a comment and the
event's data as JSON.  :mod:`scada.registry` checks events before they are
stored and turns them into the meters' effective state.

:class:`MeterEventsMixin` gives :class:`scada.store.ops.OpsStore` its
``add_meter_event`` and ``meter_events`` methods; like manual readings, an
event is committed before the call returns.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

#: Columns of ``meter_events`` as the store reads them.
_COLUMNS = ("id", "meter", "kind", "at", "recorded", "user", "comment", "data")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM meter_events"
_INSERT = "INSERT INTO meter_events (meter, kind, at, recorded, user, comment, data) VALUES (?, ?, ?, ?, ?, ?, ?)"


@dataclass(frozen=True)
class MeterEvent:
    """One lifecycle event of a meter, as stored.

    ``at`` is when it happened and ``recorded`` when it was entered (Unix
    seconds); ``data`` holds the kind's own fields (dates as ISO text,
    readings as numbers), see :data:`scada.registry.EVENT_FIELDS`.
    """

    id: int
    meter: str
    kind: str
    at: float
    recorded: float
    user: str
    comment: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


def _encode(data: Mapping[str, Any]) -> str:
    # allow_nan=False: a NaN reading must have been refused before it got here.
    return json.dumps(dict(data), ensure_ascii=False, sort_keys=True, allow_nan=False)


def _event(row: tuple) -> MeterEvent:
    values = dict(zip(_COLUMNS, row))
    try:
        data = json.loads(values["data"] or "{}")
    except ValueError:
        data = {"unreadable": values["data"]}
    values["data"] = data if isinstance(data, dict) else {"value": data}
    return MeterEvent(**values)


class MeterEventsMixin:
    """The meter event methods of the operational store (mixed into :class:`scada.store.ops.OpsStore`)."""

    def add_meter_event(self, meter: str, kind: str, at: float, user: str, comment: str = "",
                        data: Mapping[str, Any] | None = None, recorded: float | None = None) -> MeterEvent:
        """Store one event, committed before returning; return it with its id.

        Raises ValueError for a time that is not finite or data that is not
        JSON (NaN included), ``sqlite3.Error`` if the write fails.
        """
        if not math.isfinite(at):
            raise ValueError(f"event time {at!r} is not a finite number of seconds")
        text = _encode(data or {})
        self._check_open()
        self._settle()
        recorded = self._clock() if recorded is None else recorded
        row = (meter, kind, float(at), float(recorded), user, comment, text)
        event_id = self._execute(_INSERT, row)
        return MeterEvent(event_id, meter, kind, float(at), float(recorded), user, comment, json.loads(text))

    def meter_events(self, meter: str | None = None, start: float | None = None, end: float | None = None,
                     limit: int = 1_000_000) -> list[MeterEvent]:
        """Return stored events (of one meter; with ``start <= at < end`` if given), in the order they happened."""
        return [_event(row) for row in self._select(_SELECT, "meter", meter, "at", start, end, limit)]
