"""A tiny registry and a SQLite history for billing and report tests: fast, no runtime.

``history()`` returns an in-memory `SqliteStore` (it answers ``query_at_many``
without suspending, so `run` drives the coroutines by hand); ``registry()``
builds A's `Registry` directly from dataclasses.  Times are Moscow (UTC+3,
no DST): period 2026-10 runs from 2026-09-30T21:00Z to 2026-10-31T21:00Z.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterable
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from scada.registry import Building, Meter, Norm, Premises, Registry
from scada.store.registry import MeterEvent
from tags.historian.sqlite import SqliteStore
from tags.quality import Quality

T = TypeVar("T")
TZ = ZoneInfo("Europe/Moscow")
FIAS = "0c5b2444-70a0-4932-980c-b4dc0d3f02b5"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits (SQLite history)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise AssertionError("coroutine suspended")


def local(year: int, month: int, day: int = 1, hour: int = 0) -> float:
    """Return a Moscow wall-clock time as UTC seconds."""
    return datetime(year, month, day, hour, tzinfo=TZ).timestamp()


def meter(id: str, premises: str | None, resource: str = "cold_water", building: str = "b1", **kw: Any) -> Meter:
    """Return a meter with the usual defaults: tag ``<id>.volume_m3``, m3, verified until 2030."""
    unit = kw.pop("unit", "kWh" if resource in ("heat", "electricity") else "m3")
    tag = kw.pop("tag", f"{id}.{'energy_kwh' if resource in ('heat', 'electricity') else 'volume_m3'}")
    return Meter(id=id, building=building, serial=kw.pop("serial", f"SN-{id}"), model="СГВ-15", resource=resource,
                 tag=tag, unit=unit, role="ipu" if premises is not None else "odpu", premises=premises,
                 installed=kw.pop("installed", date(2020, 1, 1)), verified=date(2020, 1, 1),
                 next_verification=kw.pop("next_verification", date(2030, 1, 1)), **kw)


def building(id: str, premises: Iterable[Premises], meters: Iterable[Meter], fias: str | None = FIAS) -> Building:
    """Return a building with a cold-water and electricity norm."""
    norms = MappingProxyType({"cold_water": Norm(per_person=4.745), "electricity": Norm(per_person=90.0),
                              "hot_water": Norm(per_person=3.35), "heat": Norm(per_m2=0.0213, unit="Gcal")})
    return Building(id, f"г. Москва, ул. Ленина, д. {id}", fias, None, None, norms, tuple(premises), tuple(meters))


def registry(buildings: Iterable[Building], events: Iterable[MeterEvent] = ()) -> Registry:
    """Return the effective registry of ``buildings`` after ``events``."""
    reg = Registry(buildings, TZ)
    events = list(events)
    return reg.with_events(events) if events else reg


def event(meter_id: str, kind: str, at: float, n: int = 1, **data: Any) -> MeterEvent:
    """Return a stored-looking lifecycle event."""
    return MeterEvent(n, meter_id, kind, at, at, "crew", "", data)


def history(rows: Iterable[tuple[str, float, float | None, Quality]] = ()) -> SqliteStore:
    """Return an in-memory store holding ``(tag, ts, value, quality)`` rows."""
    store = SqliteStore(":memory:")
    rows = [(tag, ts, value, Quality(q).value) for tag, ts, value, q in rows]
    if rows:
        store.insert(rows)
    return store


def daily(tag: str, start: float, days: int, first: float, per_day: float,
          quality: Quality = Quality.GOOD) -> list[tuple[str, float, float, Quality]]:
    """Return one sample per day at 00:00 UTC+3 from ``start``: a register growing by ``per_day``."""
    return [(tag, start + d * 86400, first + d * per_day, quality) for d in range(days)]


def monthly(tag: str, first: str, values: Iterable[float | None], quality: Quality = Quality.GOOD,
            offset: float = 0.0) -> list[tuple[str, float, float, Quality]]:
    """Return one sample at 00:00 on the 1st of each month from period ``first`` (+ ``offset`` seconds)."""
    year, month = int(first[:4]), int(first[5:])
    out = []
    for value in values:
        if value is not None:
            out.append((tag, local(year, month) + offset, value, quality))
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return out


def days(n: int) -> timedelta:
    """Return ``n`` days."""
    return timedelta(days=n)
