# -*- test-case-name: tests.scada.test_registry -*-
"""The meter registry: buildings, premises and meters, as configured and as changed since.

The site file's ``registry:`` section (:mod:`scada.config.registry`) says
what each building has: its address and FIAS GUID, its premises (apartments
and offices with their billing accounts, areas and residents), its norms
(норматив, the monthly consumption billed when there is no reading) and its
meters: one building meter (ОДПУ, ``role: odpu``) per resource and the
apartment meters (ИПУ, ``role: ipu``) of the premises.

Meters change after the file was written: they are verified (поверка: the
periodic metrological check, with a new due date), repaired, sealed,
replaced, decommissioned.  Crews and engineers record these lifecycle events
through the API; they are kept in the operational store (``meter_events``)
and :meth:`Registry.with_events` applies them to the configured registry to
give each meter's effective serial, model, dates and seal.  A replacement
keeps the meter's id (it is the metering point: the premises' cold water),
takes the new serial, and records the old meter's final and the new one's
initial reading (:meth:`Registry.replacements`), so consumption across the
swap is ``final - start + end - initial``.

A verification is valid through ``next_verification``; from the day after,
the meter's readings do not count (ПП 354 п.81(12), п.59 "а": billed as if
there were no reading).  :class:`RegistryService` is the runtime's registry:
the configured one plus the stored events, and the single way to record an
event, checked first (:meth:`RegistryService.record_event`).

Everything here is plain data (frozen dataclasses); nothing does I/O but
:class:`RegistryService`, through the store.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, datetime, tzinfo
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping
from zoneinfo import ZoneInfo

from scada.checks import checked_text
from scada.checks import shown as _shown
from scada.config.registry import DEFAULT_UNITS, PREMISES_KINDS, RESOURCES, ROLES, tag_registers
from scada.store.registry import MeterEvent

if TYPE_CHECKING:
    from scada.store.ops import OpsStore

log = logging.getLogger(__name__)

__all__ = ["EVENT_FIELDS", "EVENT_KINDS", "PREMISES_KINDS", "RESOURCES", "ROLES", "BalanceGroup", "Building",
           "Meter", "MeterEvent", "Norm", "Premises", "Registry", "RegistryService", "Replacement"]

#: Lifecycle events, the ``kind`` of a :class:`MeterEvent`.
EVENT_KINDS = ("commissioning", "verification", "repair", "seal", "replacement", "decommissioning")
#: The data fields of each kind: name -> (type, required).  Types: ``date`` (ISO text ``YYYY-MM-DD``),
#: ``reading`` (a finite number, zero or more, in the meter's unit), ``text``.
EVENT_FIELDS: Mapping[str, Mapping[str, tuple[str, bool]]] = MappingProxyType({
    "commissioning": {"initial_reading": ("reading", False)},
    "verification": {"next_verification": ("date", True), "verified": ("date", False)},
    "repair": {},
    "seal": {"seal": ("text", True)},
    "replacement": {"final_reading": ("reading", True), "initial_reading": ("reading", True),
                    "new_serial": ("text", True), "new_model": ("text", False),
                    "verified": ("date", False), "next_verification": ("date", False)},
    "decommissioning": {"final_reading": ("reading", False)},
})
#: How far ahead of the clock an event may lie (clocks of phones drift).
FUTURE_SLACK_S = 60.0
#: Events before this time (2000-01-01) are typing errors.
MIN_AT = 946684800.0
#: Longest comment, and longest text field (a serial, a seal number, a model).
MAX_COMMENT = 1000
MAX_TEXT = 120
#: Journal event of a recorded lifecycle event.
JOURNAL_EVENT = "meter_event"


@dataclass(frozen=True)
class Norm:
    """A monthly consumption norm (норматив) of one resource: per resident and/or per m².

    ``unit`` is given when the norm is not in the meter's unit (heat in Gcal per m²).
    """

    per_person: float | None = None
    per_m2: float | None = None
    unit: str | None = None


@dataclass(frozen=True)
class Premises:
    """An apartment or other premises: number in its building, billing account, area (m²), residents, kind."""

    building: str
    number: str
    account: str
    area: float | None = None
    residents: int | None = None
    kind: str = "apartment"

    @property
    def residential(self) -> bool:
        """Tell whether the premises is a dwelling (ПП 354 treats non-residential premises apart)."""
        return self.kind == "apartment"


@dataclass(frozen=True)
class Meter:
    """A meter as it is now: configured, then changed by its lifecycle events.

    ``tag`` is its cumulative register, counting in ``unit``; ``premises``
    is the number of an ИПУ's premises (None for an ОДПУ).  ``balance``
    false keeps it out of its building's balance group.  ``seal`` is the
    last seal number recorded (None after a replacement until resealed).
    """

    id: str
    building: str
    serial: str
    model: str
    resource: str
    tag: str
    unit: str
    role: str
    premises: str | None = None
    installed: date | None = None
    verified: date | None = None
    next_verification: date | None = None
    decommissioned: date | None = None
    t_supply_tag: str | None = None
    t_return_tag: str | None = None
    power_tag: str | None = None
    flow_tag: str | None = None
    description: str = ""
    balance: bool = True
    seal: str | None = None

    @property
    def device(self) -> str:
        """Return the device part of the tag."""
        return self.tag.split(".", 1)[0]

    def verification_expired(self, on: date) -> bool:
        """Tell whether the verification has run out on day ``on`` (it is valid through ``next_verification``)."""
        return self.next_verification is not None and on > self.next_verification

    def in_service(self, on: date) -> bool:
        """Tell whether the meter is installed and not decommissioned on day ``on``."""
        return ((self.installed is None or self.installed <= on)
                and (self.decommissioned is None or on < self.decommissioned))


@dataclass(frozen=True)
class Building:
    """A building: address, FIAS GUID, ``(lat, lon)``, outdoor temperature tag, norms by resource, premises, meters."""

    id: str
    address: str
    fias: str | None = None
    coordinates: tuple[float, float] | None = None
    weather_tag: str | None = None
    norms: Mapping[str, Norm] = field(default_factory=lambda: MappingProxyType({}))
    premises: tuple[Premises, ...] = ()
    meters: tuple[Meter, ...] = ()

    @property
    def resources(self) -> list[str]:
        """Return the resources the building's meters measure, in :data:`RESOURCES` order."""
        present = {m.resource for m in self.meters}
        return [r for r in RESOURCES if r in present]


@dataclass(frozen=True)
class BalanceGroup:
    """A building's meter of one resource (ОДПУ) and the apartment meters (ИПУ) under it."""

    building: str
    resource: str
    odpu: Meter
    ipu: tuple[Meter, ...]


@dataclass(frozen=True)
class Replacement:
    """A meter swapped at ``at``: the old meter's final reading, the new one's initial reading, both serials."""

    meter: str
    at: float
    final_reading: float
    initial_reading: float
    old_serial: str
    new_serial: str


def _day(at: float, tz: tzinfo) -> date:
    return datetime.fromtimestamp(at, tz).date()


def _date(value: Any) -> date | None:
    """Return the date stored as ISO text in event data (None if absent or unreadable)."""
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _apply(meter: Meter, events: list[MeterEvent], tz: tzinfo) -> tuple[Meter, list[Replacement]]:
    """Return ``meter`` changed by ``events`` (in the order they happened), and its replacements.

    Stored events were checked when recorded; a field that is missing or
    unreadable anyway leaves what it would have changed as it was.
    """
    replacements = []
    for event in events:
        day = _day(event.at, tz)
        data = event.data
        if event.kind == "commissioning":
            meter = replace(meter, installed=meter.installed or day, decommissioned=None)
        elif event.kind == "verification":
            meter = replace(meter, verified=_date(data.get("verified")) or day,
                            next_verification=_date(data.get("next_verification")) or meter.next_verification)
        elif event.kind == "seal":
            meter = replace(meter, seal=str(data.get("seal") or "") or meter.seal)
        elif event.kind == "replacement":
            new_serial = str(data.get("new_serial") or meter.serial)
            replacements.append(Replacement(meter.id, event.at, float(data.get("final_reading", math.nan)),
                                            float(data.get("initial_reading", math.nan)), meter.serial, new_serial))
            meter = replace(meter, serial=new_serial, model=str(data.get("new_model") or meter.model),
                            installed=day, verified=_date(data.get("verified")),
                            next_verification=_date(data.get("next_verification")), seal=None, decommissioned=None)
        elif event.kind == "decommissioning":
            meter = replace(meter, decommissioned=day)
    return meter, replacements


def _order(event: MeterEvent) -> tuple[float, int]:
    return event.at, event.id


class Registry:
    """Buildings with their premises and meters: the configured state, or the effective one after events.

    ``buildings`` maps id to :class:`Building` in configuration order.
    ``tz`` is the site's time zone, in which an event's time becomes a date.
    Registries are immutable: :meth:`with_events` returns a new one.
    """

    def __init__(self, buildings: Iterable[Building] = (), tz: str | tzinfo = "UTC") -> None:
        self.tz: tzinfo = ZoneInfo(tz) if isinstance(tz, str) else tz
        self.buildings: dict[str, Building] = {b.id: b for b in buildings}
        #: The configured buildings, which with_events starts from.
        self._base = self.buildings
        self._events: dict[str, tuple[MeterEvent, ...]] = {}
        self._replacements: dict[str, tuple[Replacement, ...]] = {}
        self._index()

    def _index(self) -> None:
        self._meters = {m.id: m for b in self.buildings.values() for m in b.meters}
        self._premises = {(p.building, p.number): p for b in self.buildings.values() for p in b.premises}
        self._accounts = {p.account: p for p in self._premises.values()}

    def _configured(self, meter_id: str) -> Meter:
        """Return a meter as configured (before any event); KeyError if unknown."""
        meter = self.meter(meter_id)
        for configured in self._base[meter.building].meters:
            if configured.id == meter_id:
                return configured
        raise KeyError(f"unknown meter {meter_id!r}")  # pragma: no cover - ids never change building

    def with_meter_events(self, meter_id: str, events: Iterable[MeterEvent]) -> "Registry":
        """Return this registry with one meter's events replaced by ``events`` (the others' kept).

        Cheaper than :meth:`with_events` on a large site when one meter changed.
        """
        configured = self._configured(meter_id)
        own = sorted((e for e in events if e.meter == meter_id), key=_order)
        meter, swaps = _apply(configured, own, self.tz) if own else (configured, [])
        new = Registry.__new__(Registry)
        new.tz, new._base = self.tz, self._base
        new._events = {k: v for k, v in self._events.items() if k != meter_id}
        new._replacements = {k: v for k, v in self._replacements.items() if k != meter_id}
        if own:
            new._events[meter_id] = tuple(own)
        if swaps:
            new._replacements[meter_id] = tuple(swaps)
        building = self.buildings[meter.building]
        new.buildings = dict(self.buildings)
        new.buildings[building.id] = replace(building, meters=tuple(meter if m.id == meter_id else m
                                                                     for m in building.meters))
        new._meters = dict(self._meters)
        new._meters[meter_id] = meter
        new._premises, new._accounts = self._premises, self._accounts
        return new

    # ------------------------------------------------------------------ building

    @classmethod
    def from_config(cls, cfg: Any) -> "Registry":
        """Return the registry of a :class:`~scada.config.model.SiteConfig` (empty without ``registry:``).

        A meter's ``id`` defaults to its tag's device, its ``unit`` to the
        tag's (else m3 for water and gas, kWh for electricity and heat); a
        heat meter's temperature tags default to ``<device>.t_supply_c`` and
        ``<device>.t_return_c`` when the site has them.
        """
        section = getattr(cfg, "registry", None)
        tz = getattr(getattr(cfg, "site", None), "timezone", "UTC")
        if section is None:
            return cls((), tz)
        registers = tag_registers(getattr(cfg, "channels", ()), getattr(cfg, "profiles", {}))
        buildings = []
        for b in section.buildings:
            premises = tuple(Premises(b.id, p.number, p.account, p.area, p.residents, p.kind) for p in b.premises)
            meters = []
            for m in b.meters:
                device = m.tag.split(".", 1)[0]
                unit = m.unit or (registers.get(m.tag, ("", False))[0] or DEFAULT_UNITS[m.resource])
                supply, back = m.t_supply_tag, m.t_return_tag
                if m.resource == "heat":
                    supply = supply or (f"{device}.t_supply_c" if f"{device}.t_supply_c" in registers else None)
                    back = back or (f"{device}.t_return_c" if f"{device}.t_return_c" in registers else None)
                meters.append(Meter(
                    id=m.id or device, building=b.id, serial=m.serial, model=m.model, resource=m.resource,
                    tag=m.tag, unit=unit, role=m.role, premises=m.premises, installed=m.installed,
                    verified=m.verified, next_verification=m.next_verification, decommissioned=m.decommissioned,
                    t_supply_tag=supply, t_return_tag=back, power_tag=m.power_tag, flow_tag=m.flow_tag,
                    description=m.description, balance=m.balance))
            norms = MappingProxyType({r: Norm(n.per_person, n.per_m2, n.unit) for r, n in b.norms.items()})
            buildings.append(Building(b.id, b.address, b.fias, tuple(b.coordinates) if b.coordinates else None,
                                      b.weather_tag, norms, premises, tuple(meters)))
        return cls(buildings, tz)

    def with_events(self, events: Iterable[MeterEvent]) -> "Registry":
        """Return the configured registry changed by ``events`` (the effective state).

        Events replace those this registry was built with, if any; they are
        applied per meter in the order they happened (``at``, then ``id``).
        Events of meters the registry does not have (any more) are ignored.
        """
        by_meter: dict[str, list[MeterEvent]] = defaultdict(list)
        configured = {m.id for b in self._base.values() for m in b.meters}
        for event in events:
            if event.meter in configured:
                by_meter[event.meter].append(event)
        new = Registry.__new__(Registry)
        new.tz = self.tz
        new._base = self._base
        new._events = {}
        new._replacements = {}
        buildings = {}
        for building in self._base.values():
            meters = []
            for meter in building.meters:
                own = sorted(by_meter.get(meter.id, ()), key=_order)
                if own:
                    meter, swaps = _apply(meter, own, self.tz)
                    new._events[meter.id] = tuple(own)
                    if swaps:
                        new._replacements[meter.id] = tuple(swaps)
                meters.append(meter)
            buildings[building.id] = replace(building, meters=tuple(meters))
        new.buildings = buildings
        new._index()
        return new

    # ------------------------------------------------------------------ queries

    def building(self, id: str) -> Building:
        """Return the building ``id``; KeyError if there is none."""
        try:
            return self.buildings[id]
        except KeyError:
            raise KeyError(f"unknown building {id!r}") from None

    def meter(self, id: str) -> Meter:
        """Return the meter ``id`` (effective state); KeyError if there is none."""
        try:
            return self._meters[id]
        except KeyError:
            raise KeyError(f"unknown meter {id!r}") from None

    def meters(self, building: str | None = None, resource: str | None = None,
               role: str | None = None) -> list[Meter]:
        """Return the meters in configuration order, of one building, resource and/or role if given.

        KeyError for an unknown building, ValueError for an unknown resource or role.
        """
        if resource is not None and resource not in RESOURCES:
            raise ValueError(f"{resource!r} is not a resource; use one of {', '.join(RESOURCES)}")
        if role is not None and role not in ROLES:
            raise ValueError(f"{role!r} is not a meter role; use one of {', '.join(ROLES)}")
        buildings = [self.building(building)] if building is not None else self.buildings.values()
        return [m for b in buildings for m in b.meters
                if (resource is None or m.resource == resource) and (role is None or m.role == role)]

    def premises(self, building: str | None = None) -> list[Premises]:
        """Return the premises in configuration order (of one building if given; KeyError if unknown)."""
        buildings = [self.building(building)] if building is not None else self.buildings.values()
        return [p for b in buildings for p in b.premises]

    def premises_of(self, meter: Meter) -> Premises | None:
        """Return the premises of an ИПУ (None for an ОДПУ)."""
        if meter.premises is None:
            return None
        return self._premises.get((meter.building, meter.premises))

    def account(self, account: str) -> Premises:
        """Return the premises with billing account ``account``; KeyError if there is none."""
        try:
            return self._accounts[account]
        except KeyError:
            raise KeyError(f"unknown account {account!r}") from None

    def balance_groups(self) -> list[BalanceGroup]:
        """Return one group per building and resource with a building meter (ОДПУ) that takes part in the balance.

        A resource without apartment meters (ИПУ) has no group.  A group's ИПУ are the building's apartment meters of that resource
        with ``balance`` true, in configuration order; buildings in
        configuration order, and their groups in the order of their ОДПУ.
        """
        groups = []
        for building in self.buildings.values():
            for odpu in building.meters:
                if odpu.role != "odpu" or not odpu.balance:
                    continue
                ipu = tuple(m for m in building.meters
                            if m.role == "ipu" and m.resource == odpu.resource and m.balance)
                if ipu:  # a heat ОДПУ over apartments without heat meters balances nothing
                    groups.append(BalanceGroup(building.id, odpu.resource, odpu, ipu))
        return groups

    def due(self, before: date) -> list[Meter]:
        """Return the meters in service whose verification runs out before ``before``, soonest first.

        That is ``next_verification < before`` (overdue ones included);
        decommissioned meters are left out.
        """
        found = [m for m in self._meters.values()
                 if m.next_verification is not None and m.next_verification < before and m.decommissioned is None]
        return sorted(found, key=lambda m: (m.next_verification, m.id))

    def events(self, meter_id: str) -> tuple[MeterEvent, ...]:
        """Return the events applied to a meter, in the order they happened; KeyError for an unknown meter."""
        self.meter(meter_id)
        return self._events.get(meter_id, ())

    def replacements(self, meter_id: str, start: float, end: float) -> list[Replacement]:
        """Return the meter's replacements with ``start <= at < end`` (from the events applied); KeyError if unknown."""
        self.meter(meter_id)
        return [r for r in self._replacements.get(meter_id, ()) if start <= r.at < end]

    def today(self, now: float) -> date:
        """Return the site's date at Unix time ``now``."""
        return _day(now, self.tz)


# ---------------------------------------------------------------------- service


def _check_text(value: Any, key: str, limit: int) -> str:
    """Return stripped text; raise ValueError naming ``key`` if it is not text, not UTF-8 or too long."""
    return checked_text(value, repr(key), limit)


def _check_reading(value: Any, key: str) -> float:
    """Return a register reading: a finite number, zero or more."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key!r} must be a number (the register reading), not {_shown(value)}")
    try:
        reading = float(value)
    except OverflowError:
        raise ValueError(f"{key!r} {_shown(value)} is out of range") from None
    if not math.isfinite(reading):
        raise ValueError(f"{key!r} {_shown(value)} is not a finite number")
    if reading < 0:
        raise ValueError(f"{key!r} {_shown(value)} is negative; a register reading is zero or more")
    return reading


def _check_date(value: Any, key: str) -> date:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{key!r} {_shown(value)} is not a date such as 2027-03-01")


class RegistryService:
    """The runtime's registry: the configured one plus the lifecycle events in the store.

    :meth:`current` is the effective registry, built once and again after
    each event recorded here.  :meth:`record_event` is the one way to add
    an event: it checks it, stores it (committed before it returns), leaves
    a note in the alarm journal (event ``meter_event``: who recorded what)
    and refreshes the effective registry.  ``clock`` returns Unix seconds
    (the runtime's ``reactor.seconds``).
    """

    def __init__(self, registry: Registry, store: "OpsStore", clock: Callable[[], float] | None = None) -> None:
        self.registry = registry
        self.store = store
        self.clock = clock or time.time
        self._current: Registry | None = None
        #: Called with the meter's effective state after each recorded event (the runtime moves
        #: the verification alarm's date this way).
        self.listeners: list[Callable[[Meter], None]] = []

    @classmethod
    def from_config(cls, cfg: Any, store: "OpsStore",
                    clock: Callable[[], float] | None = None) -> "RegistryService":
        """Return the service of a site configuration over ``store``."""
        return cls(Registry.from_config(cfg), store, clock)

    def current(self) -> Registry:
        """Return the effective registry (configured, changed by every stored event)."""
        if self._current is None:
            self._current = self.registry.with_events(self.store.meter_events())
        return self._current

    def invalidate(self) -> None:
        """Forget the effective registry (events were written to the store by other means)."""
        self._current = None

    def events(self, meter_id: str) -> list[MeterEvent]:
        """Return a meter's stored events in the order they happened; KeyError for an unknown meter."""
        self.registry.meter(meter_id)
        return self.store.meter_events(meter_id)

    def parse_at(self, value: Any) -> float:
        """Return Unix seconds for an event time: ISO 8601 with an offset, a date (midnight, site time), or seconds.

        Raises ValueError naming the value.  A date and time without an
        offset is refused: it may be UTC or the site's time.
        """
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f'"at" must be an ISO 8601 time such as 2026-11-20T10:00:00+03:00, not {_shown(value)}')
        if isinstance(value, str):
            text = value.strip()
            try:
                if len(text) == 10:
                    return datetime.combine(date.fromisoformat(text), datetime.min.time(),
                                            self.registry.tz).timestamp()
                moment = datetime.fromisoformat(text)
            except (ValueError, OverflowError):
                raise ValueError(f'"at" {_shown(value)} is not an ISO 8601 time such as 2026-11-20T10:00:00Z '
                                 'or a date such as 2026-11-20') from None
            if moment.tzinfo is None:
                raise ValueError(f'"at" {_shown(value)} has no UTC offset: add Z (UTC) or the offset, such as '
                                 '+03:00')
            try:
                return moment.timestamp()
            except (OverflowError, OSError, ValueError):
                raise ValueError(f'"at" {_shown(value)} is out of range') from None
        at = float(value)
        if not math.isfinite(at):
            raise ValueError(f'"at" {_shown(value)} is not a finite number of seconds')
        return at

    def check_event(self, meter_id: str, kind: str, at: float, comment: str = "",
                    data: Mapping[str, Any] | None = None) -> tuple[float, str, dict[str, Any]]:
        """Check an event before it is stored; return ``(at, comment, data)`` normalised.

        Raises KeyError for an unknown meter and ValueError naming the
        problem: an unknown kind or data field, a missing required field, a
        date or reading that is not one, a time before 2000 or more than a
        minute ahead, an event on a meter decommissioned by then (only
        commissioning may follow), a replacement by the same serial or by
        another meter's, a verification whose due date is not after it.
        """
        current = self.current()
        current.meter(meter_id)
        if kind not in EVENT_KINDS:
            raise ValueError(f"{_shown(kind)} is not an event kind; use one of {', '.join(EVENT_KINDS)}")
        now = self.clock()
        if at < MIN_AT:
            raise ValueError(f'"at" {_iso(at)} is before 2000-01-01: not an event time')
        if at > now + FUTURE_SLACK_S:
            raise ValueError(f'"at" {_iso(at)} is in the future (now is {_iso(now)})')
        comment = _check_text(comment if comment is not None else "", "comment", MAX_COMMENT)
        data = dict(data or {})
        fields = EVENT_FIELDS[kind]
        for key in data:
            if key not in fields:
                known = ", ".join(fields) if fields else "none"
                raise ValueError(f"{key!r} is not a field of a {kind} event (its fields: {known})")
        clean: dict[str, Any] = {}
        for key, (kind_of, required) in fields.items():
            value = data.get(key)
            if value is None:
                if required:
                    raise ValueError(f"a {kind} event needs {key!r}{_example(kind_of)}")
                continue
            if kind_of == "date":
                clean[key] = _check_date(value, key).isoformat()
            elif kind_of == "reading":
                clean[key] = _check_reading(value, key)
            else:
                text = _check_text(value, key, MAX_TEXT)
                if not text and required:
                    raise ValueError(f"a {kind} event needs {key!r}, which is blank")
                if text:
                    clean[key] = text
        day = current.today(at)
        state = self._state_at(meter_id, at)
        if kind != "commissioning" and state.decommissioned is not None and state.decommissioned <= day:
            raise ValueError(f"meter {meter_id!r} was decommissioned on {state.decommissioned}; only a "
                             "commissioning event may follow")
        if kind == "decommissioning":
            later = [e for e in self.store.meter_events(meter_id, start=at) if e.at > at and e.kind != "commissioning"]
            if later:
                raise ValueError(f"meter {meter_id!r} has a later {later[0].kind} event ({_iso(later[0].at)}); "
                                 "it cannot be decommissioned before it")
        if kind == "verification":
            verified = date.fromisoformat(clean.get("verified", day.isoformat()))
            if verified > day:
                raise ValueError(f"'verified' {verified} is after the event's date {day}")
            due = date.fromisoformat(clean["next_verification"])
            if due <= verified:
                raise ValueError(f"'next_verification' {due} must be after the verification date {verified}")
        if kind == "replacement":
            new_model = clean.get("new_model", state.model)
            if clean["new_serial"].casefold() == state.serial.casefold() and new_model.casefold() == \
                    state.model.casefold():
                raise ValueError(f"'new_serial' {clean['new_serial']!r} is the serial of the meter being replaced")
            for other in current.meters():
                if other.id != meter_id and other.serial.casefold() == clean["new_serial"].casefold() \
                        and other.model.casefold() == new_model.casefold():
                    raise ValueError(f"'new_serial' {clean['new_serial']!r} is the serial of meter {other.id!r}")
            verified = _date(clean.get("verified"))
            due = _date(clean.get("next_verification"))
            if verified is not None and due is not None and due <= verified:
                raise ValueError(f"'next_verification' {due} must be after 'verified' {verified}")
        return float(at), comment, clean

    def _state_at(self, meter_id: str, at: float) -> Meter:
        """Return the meter as it was at ``at`` (its events up to then applied)."""
        before = self.store.meter_events(meter_id, end=math.nextafter(at, math.inf))
        return self.registry.with_meter_events(meter_id, before).meter(meter_id)

    def record_event(self, meter_id: str, kind: str, at: float | str | None = None, user: str = "",
                     comment: str = "", data: Mapping[str, Any] | None = None) -> MeterEvent:
        """Check, store and journal one lifecycle event; return it as stored.

        ``at`` defaults to now; text is parsed by :meth:`parse_at`.  Raises
        KeyError for an unknown meter, ValueError naming what is wrong (see
        :meth:`check_event`; nothing is stored then), ``sqlite3.Error`` if
        the store cannot write.
        """
        self.registry.meter(meter_id)
        when = self.clock() if at is None else self.parse_at(at)
        when, comment, clean = self.check_event(meter_id, kind, when, comment, data)
        event = self.store.add_meter_event(meter_id, kind, when, user or "anonymous", comment, clean,
                                           recorded=self.clock())
        if self._current is not None:
            # Only this meter changed: re-apply its events rather than everyone's.
            self._current = self._current.with_meter_events(meter_id, self.store.meter_events(meter_id))
        self._journal(event)
        meter = self.current().meter(meter_id)
        for listener in tuple(self.listeners):
            try:
                listener(meter)
            except Exception:  # noqa: BLE001 - the event is stored; a listener's failure is its own
                log.exception("registry listener %r failed on meter %s", listener, meter_id)
        return event

    def _journal(self, event: MeterEvent) -> None:
        """Leave an alarm journal entry saying who recorded which event."""
        record = getattr(self.store, "record", None)
        if record is None:
            return
        from alarms.model import JournalEntry

        meter = self.registry.meter(event.meter)
        details = ", ".join(f"{k} {v}" for k, v in event.data.items())
        comment = f"{event.kind} of meter {event.meter} at {_iso(event.at)}" + (f" ({details})" if details else "")
        if event.comment:
            comment += f": {event.comment}"
        try:
            record(JournalEntry(ts=event.recorded, alarm_id="", event=JOURNAL_EVENT, user=event.user,
                                comment=comment, tag=meter.tag, message=f"meter {event.kind} recorded"))
        except Exception:  # noqa: BLE001 - the event stands whether or not the journal took the note
            log.exception("cannot journal the %s event of meter %s", event.kind, event.meter)


def _example(kind_of: str) -> str:
    return {"date": " (a date such as 2027-03-01)", "reading": " (a number, the register reading)",
            "text": ""}[kind_of]


def _iso(ts: float) -> str:
    from tags.timefmt import iso_utc

    try:
        return iso_utc(ts)
    except ValueError:
        return repr(ts)
