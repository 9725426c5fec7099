# -*- test-case-name: tests.scada.config.test_config_registry -*-
"""The ``registry:`` section: buildings, their premises and their meters.

A building (``buildings:``) has an address, optionally its FIAS/GAR house
GUID (ФИАС, the federal address register that ГИС ЖКХ keys houses by), its
coordinates, the outdoor temperature tag of the nearest weather station, the
consumption norms (норматив: what a resident or a square metre uses per month
when there is no reading, ПП 354 п.42), its premises (apartments and offices
with their billing account numbers) and its meters.  A meter is the building
meter of a resource (``role: odpu``, ОДПУ) or an apartment meter
(``role: ipu``, ИПУ) of one premises; its ``tag`` is its cumulative register
(``b1-kv01-cold.volume_m3``).

The models here check each object on its own; :func:`check_registry` checks
what spans objects (unique ids, serials, accounts and premises numbers, the
premises an ИПУ names, one ОДПУ per building and resource) and whether the
tags exist on the site, so that ``scada check`` reports every problem as
``FILE:LINE: message``.  :mod:`scada.registry` turns the section into the
runtime's registry.
"""

from __future__ import annotations

import difflib
import re
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Iterable, Literal, Mapping, Optional

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema, model_validator

from .alarms import VerificationDate, _own, _plain_tag
from .problems import Problem, SourceMap, show_value
from .remote import is_cumulative
from .types import ConfigModel, Finite, NonNegative, Positive

if TYPE_CHECKING:
    from .alarms import SiteTags

#: The resources a meter measures (the ``resource:`` key, and the keys of ``norms:``).
RESOURCES = ("heat", "cold_water", "hot_water", "electricity", "gas")
#: What a meter is: the building's meter of a resource (ОДПУ) or a premises' own (ИПУ).
ROLES = ("odpu", "ipu")
#: Kinds of premises; only apartments are residential (ПП 354 treats the others apart).
PREMISES_KINDS = ("apartment", "office", "nonresidential")
#: Units a resource's register may count in.
RESOURCE_UNITS = {
    "heat": ("kWh", "Wh", "MWh", "Gcal", "GJ"),
    "cold_water": ("m3", "m³", "m^3", "l", "L"),
    "hot_water": ("m3", "m³", "m^3", "l", "L"),
    "electricity": ("kWh", "Wh", "MWh"),
    "gas": ("m3", "m³", "m^3", "l", "L"),
}
#: Unit of a meter whose tag's unit cannot be known before run time.
DEFAULT_UNITS = {"heat": "kWh", "cold_water": "m3", "hot_water": "m3", "electricity": "kWh", "gas": "m3"}
#: Spellings of one unit.
_SAME_UNIT = {"m³": "m3", "m^3": "m3", "L": "l"}
#: Point names of counters on an M-Bus meter mapped automatically (its tags exist only at run time).
_MBUS_COUNTER = re.compile(r"(volume|energy|mass)(_t\d+|_u\d+)*")


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _resource(value: str) -> str:
    """Accept a resource name, suggesting the nearest for a misspelt one."""
    if value not in RESOURCES:
        raise ValueError(f"{show_value(value)} is not a resource; use one of {', '.join(RESOURCES)}"
                         f"{_suggest(value, RESOURCES)}")
    return value


def _registry_id(value: str) -> str:
    """Accept an id usable like a device name: not empty, no whitespace, no '.'."""
    from .model import _check_name

    return _check_name(value)


def _text_id(what: str, example: str):
    """Return a validator of a number kept as text (serial, account): a number is refused, leading zeros matter."""

    def check(value: object) -> object:
        """Refuse a YAML number: ``0012`` would be read as 10 (octal) and lose its zeros."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise ValueError(f"{what} {show_value(value)} is a number; write it in quotes, e.g. {example!r}, "
                             "so that leading zeros are kept")
        return value

    return check


def _premises_number(value: object) -> object:
    """Accept an apartment number written as a number (``12``) as the text ``'12'``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _check_fias(value: str) -> str:
    """Accept a FIAS/GAR GUID (a UUID in its 8-4-4-4-12 form), normalised to lower case."""
    text = value.strip().lower()
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        parsed = None
    if parsed is None or str(parsed) != text:
        raise ValueError(f"{show_value(value)} is not a FIAS/GAR house GUID "
                         "(8-4-4-4-12 hex digits, e.g. '0c5b2444-70a0-4932-980c-b4dc0d3f02b5')")
    return text


def _check_coordinates(value: tuple[float, float]) -> tuple[float, float]:
    """Accept ``[latitude, longitude]`` in degrees, each within its range."""
    lat, lon = value
    if not -90 <= lat <= 90:
        raise ValueError(f"latitude {lat:g} is out of range -90..90 (coordinates are [latitude, longitude])")
    if not -180 <= lon <= 180:
        raise ValueError(f"longitude {lon:g} is out of range -180..180 (coordinates are [latitude, longitude])")
    return value


def _whole(value: int) -> int:
    """Reject negative counts."""
    if value < 0:
        raise ValueError(f"{value} must not be negative")
    return value


#: A resource name (heat, cold_water, hot_water, electricity, gas).
Resource = Annotated[str, AfterValidator(_resource), WithJsonSchema({"enum": list(RESOURCES)})]
RegistryId = Annotated[str, AfterValidator(_registry_id)]
Serial = Annotated[str, BeforeValidator(_text_id("serial", "00123456")), Field(min_length=1, max_length=64,
                                                                               examples=["ВСХН-0001"])]
Account = Annotated[str, BeforeValidator(_text_id("account", "7700000101")), Field(min_length=1, max_length=64,
                                                                                   examples=["7700000101"])]
PremisesNumber = Annotated[str, BeforeValidator(_premises_number),
                           Field(min_length=1, max_length=32, examples=["1", "12А", "пом. 3"]),
                           WithJsonSchema({"anyOf": [{"type": "string", "minLength": 1, "maxLength": 32},
                                                     {"type": "integer"}]})]
Fias = Annotated[str, AfterValidator(_check_fias), Field(examples=["0c5b2444-70a0-4932-980c-b4dc0d3f02b5"])]
Coordinates = Annotated[tuple[Finite, Finite], AfterValidator(_check_coordinates),
                        Field(strict=False, examples=[[55.7558, 37.6173]])]
TagName = Annotated[str, AfterValidator(_plain_tag)]
Count = Annotated[int, AfterValidator(_whole), Field(json_schema_extra={"minimum": 0})]
#: A calendar date: a YAML date (``2027-03-01``) or its ISO text.
Date = VerificationDate


class NormConfig(ConfigModel):
    """A consumption norm (норматив) of one resource, per month: per resident and/or per m² of area.

    Values are in the meter's unit (m3 for water, kWh for electricity)
    unless ``unit`` says otherwise (heat is usually normed in Gcal per m²).
    """

    per_person: Optional[NonNegative] = None
    per_m2: Optional[NonNegative] = None
    unit: Optional[Annotated[str, Field(min_length=1, examples=["Gcal"])]] = None

    @model_validator(mode="after")
    def _some(self) -> "NormConfig":
        """Require at least one of per_person and per_m2."""
        if self.per_person is None and self.per_m2 is None:
            raise _own("registry_norm", "a norm needs per_person (per resident per month) or per_m2 "
                                        "(per m2 of area per month)")
        return self


class PremisesConfig(ConfigModel):
    """An apartment or other premises of a building: its number, billing account, area and residents."""

    number: PremisesNumber
    #: The billing account (лицевой счёт); unique in the site.
    account: Account
    #: Total area in m² (for norms per m², and heat).
    area: Optional[Positive] = None
    #: People registered there (for norms per person).
    residents: Optional[Count] = None
    kind: Literal["apartment", "office", "nonresidential"] = "apartment"


class MeterConfig(ConfigModel):
    """A meter of the registry: what it is (serial, model), what it measures and where, its verification dates.

    ``id`` defaults to the device part of ``tag``; give it when one device
    holds several meters (a pulse counter on two water meters).  ``unit``
    defaults to the tag's.  ``balance: false`` keeps a meter out of its
    building's balance (an ИПУ fed past the building meter, or an ОДПУ that
    measures something else than what the apartments' meters sum).
    """

    id: Optional[RegistryId] = None
    serial: Serial
    model: Annotated[str, Field(max_length=120, examples=["ВСХН-40"])] = ""
    resource: Resource
    tag: TagName
    role: Literal["odpu", "ipu"]
    #: The premises (its ``number``) of an ИПУ; an ОДПУ has none.
    premises: Optional[PremisesNumber] = None
    unit: Optional[Annotated[str, Field(min_length=1, examples=["m3"])]] = None
    installed: Optional[Date] = None
    #: Date of the last verification (поверка).
    verified: Optional[Date] = None
    #: The verification is valid through this date; after it the meter's readings do not count.
    next_verification: Optional[Date] = None
    decommissioned: Optional[Date] = None
    #: Heat meters: supply and return temperature tags (default ``<device>.t_supply_c``/``t_return_c`` if present).
    t_supply_tag: Optional[TagName] = None
    t_return_tag: Optional[TagName] = None
    power_tag: Optional[TagName] = None
    flow_tag: Optional[TagName] = None
    #: Whether the meter takes part in its building's balance of its resource.
    balance: bool = True
    description: str = ""

    @property
    def device(self) -> str:
        """Return the device part of ``tag``."""
        return self.tag.split(".", 1)[0]

    @property
    def meter_id(self) -> str:
        """Return ``id``, or the device part of ``tag``."""
        return self.id if self.id is not None else self.device

    @model_validator(mode="after")
    def _consistent(self) -> "MeterConfig":
        """Premises for an ИПУ only; dates in order; a unit that fits the resource."""
        if self.role == "ipu" and self.premises is None:
            raise _own("registry_premises", "an ipu (apartment meter) needs 'premises', the number of its "
                                            "premises, e.g. premises: \"1\"", ("role",))
        if self.role == "odpu" and self.premises is not None:
            raise _own("registry_premises", "an odpu (building meter) belongs to no premises; remove 'premises' "
                                            "or make it role: ipu", ("premises",))
        if self.verified is not None and self.next_verification is not None \
                and self.next_verification <= self.verified:
            raise _own("registry_dates", f"next_verification {self.next_verification} must be after verified "
                                         f"{self.verified}", ("next_verification",))
        if self.installed is not None and self.decommissioned is not None and self.decommissioned < self.installed:
            raise _own("registry_dates", f"decommissioned {self.decommissioned} is before installed "
                                         f"{self.installed}", ("decommissioned",))
        if self.unit is not None and self.unit not in RESOURCE_UNITS[self.resource]:
            raise _own("registry_unit", f"unit {self.unit!r} is not a unit of {self.resource}; use one of "
                                        f"{', '.join(RESOURCE_UNITS[self.resource])}", ("unit",))
        return self


class BuildingConfig(ConfigModel):
    """A building: address, FIAS GUID, coordinates, outdoor temperature tag, norms, premises and meters."""

    id: RegistryId
    address: Annotated[str, Field(min_length=1, examples=["г. Москва, ул. Ленина, д. 10"])]
    #: FIAS/GAR house GUID (ГИС ЖКХ identifies houses by it).
    fias: Optional[Fias] = None
    #: ``[latitude, longitude]`` in degrees.
    coordinates: Optional[Coordinates] = None
    #: Outdoor air temperature of the nearest weather station (heat is judged against it).
    weather_tag: Optional[TagName] = None
    #: Consumption norms by resource, per month.
    norms: dict[Resource, NormConfig] = {}
    premises: list[PremisesConfig] = []
    meters: list[MeterConfig] = []


class RegistryConfig(ConfigModel):
    """The ``registry:`` section: the site's buildings, premises and meters."""

    buildings: list[BuildingConfig] = []


# ------------------------------------------------------------- cross checks


def tag_registers(channels: Iterable[Any], profiles: Mapping[str, Any]) -> dict[str, tuple[str, bool]]:
    """Return ``{tag: (unit, cumulative)}`` of every register known before run time.

    Profile points and records, hand-read and uplink ``points``, decoder
    points.  Tags of M-Bus meters mapped automatically are not known here.
    """
    out: dict[str, tuple[str, bool]] = {}
    for channel in channels:
        for device in getattr(channel, "devices", ()) or ():
            points: list[tuple[str, str, bool | None]] = []
            profile = profiles.get(device.profile) if getattr(device, "profile", None) else None
            if profile is not None:
                points += [(p.name, p.unit, p.cumulative) for p in [*profile.points, *profile.records]]
            points += [(p.name, p.unit, p.cumulative) for p in getattr(device, "points", None) or ()]
            decoder = getattr(device, "decoder", None)
            if decoder is not None:
                try:
                    from channels.lorawan import decoders

                    from .remote import check_decoder

                    options = check_decoder(decoder, getattr(device, "decoder_options", None) or {})
                    points += [(p.name, p.unit, p.cumulative) for p in decoders.get(decoder).points(options)]
                except (KeyError, ValueError):
                    pass  # reported on its own
            for name, unit, flag in points:
                out[f"{device.name}.{name}"] = (unit or "", is_cumulative(unit or "", flag))
    return out


class _Check:
    """Collects the problems of one registry."""

    def __init__(self, smap: SourceMap, site: "SiteTags | None", registers: Mapping[str, tuple[str, bool]]):
        self.smap = smap
        self.site = site
        self.registers = registers
        self.problems: list[Problem] = []

    def add(self, obj: object, at: tuple[object, ...], message: str, severity: str = "error") -> None:
        """Add a problem about ``obj``'s key ``at``, prefixed with its path."""
        self.problems.append(self.smap.problem(obj, at, f"{self.smap.where(obj, *at)}: {message}",
                                               severity))  # type: ignore[arg-type]

    def tag(self, obj: object, key: str, ref: str, register: bool = False) -> bool:
        """Check that ``ref`` is a tag of the site; return whether it is known (and can be checked further).

        ``register``: the tag must be a meter's counter (an M-Bus meter
        mapped automatically is trusted with volume/energy/mass points).
        """
        site = self.site
        if site is None:
            return False
        if ref in site.tags:
            return True
        device, dot, point = ref.partition(".")
        if device in site.unchecked:
            return False
        if device in site.automatic and dot and point:
            if not (register and _MBUS_COUNTER.fullmatch(point)):
                self.add(obj, (key,), f"tag {ref!r} cannot be checked: device {device!r} is mapped at run time, "
                                      "so its tags appear only then", "warning")
            return False
        if device in site.disabled:
            self.add(obj, (key,), f"tag {ref!r} belongs to disabled device {device!r}", "warning")
            return False
        if dot and device in site.devices:
            points = [t.partition(".")[2] for t, d in site.tags.items() if d == device]
            self.add(obj, (key,), f"unknown tag {ref!r}: device {device!r} has no point {point!r}"
                                  f"{_suggest(point, points)}")
        else:
            what = f"no device {device!r}" if dot else "a tag name is <device>.<point>"
            self.add(obj, (key,), f"unknown tag {ref!r} ({what}){_suggest(ref, site.tags)}")
        return False

    def meter_tag(self, meter: MeterConfig) -> None:
        """Check the meter's tag: known, a counter, in a unit of its resource (and of ``unit:``)."""
        if not self.tag(meter, "tag", meter.tag, register=True) or meter.tag not in self.registers:
            return
        unit, cumulative = self.registers[meter.tag]
        if not cumulative:
            self.add(meter, ("tag",), f"tag {meter.tag!r} ({unit or 'no unit'}) is not a counter; a meter's tag is "
                                      "its cumulative register (m3, kWh, Gcal...)")
        elif unit and unit not in RESOURCE_UNITS[meter.resource]:
            self.add(meter, ("tag",), f"tag {meter.tag!r} counts {unit}, which is not a unit of {meter.resource} "
                                      f"({', '.join(RESOURCE_UNITS[meter.resource])})")
        elif unit and meter.unit is not None and _SAME_UNIT.get(meter.unit, meter.unit) != _SAME_UNIT.get(unit, unit):
            self.add(meter, ("unit",), f"unit {meter.unit!r} differs from {unit!r}, the unit of tag {meter.tag!r}; "
                                       "leave 'unit' out to take the tag's")


def check_registry(registry: RegistryConfig, site: "SiteTags | None", registers: Mapping[str, tuple[str, bool]],
                   devices: Mapping[str, Any], smap: SourceMap) -> list[Problem]:
    """Check what spans the registry's objects, and its tags against the site.

    Building ids, meter ids and accounts are unique in the site, premises
    numbers in their building, a serial with its model names one meter;
    an ИПУ's premises exists; one ОДПУ per building and resource.  Tags
    must exist (``site`` None: the channels had errors, tags are not
    checked); a meter's tag must be a counter in a unit of its resource.
    Warnings: a device whose ``next_verification``/``serial`` disagree with
    its registry meter, and ИПУ of a resource the building has no norm for.
    ``devices`` maps device names to their configs.
    """
    check = _Check(smap, site, registers)
    buildings: dict[str, BuildingConfig] = {}
    meters: dict[str, MeterConfig] = {}
    serials: dict[tuple[str, str], MeterConfig] = {}
    accounts: dict[str, PremisesConfig] = {}
    by_device: dict[str, list[MeterConfig]] = {}
    tags: dict[str, MeterConfig] = {}
    for building in registry.buildings:
        if building.id in buildings:
            check.add(building, ("id",), f"duplicate building id {building.id!r} (first at line "
                                         f"{smap.line(buildings[building.id], 'id')})")
        buildings.setdefault(building.id, building)
        if building.weather_tag is not None:
            check.tag(building, "weather_tag", building.weather_tag)
        for resource, norm in building.norms.items():
            if norm.unit is not None and norm.unit not in RESOURCE_UNITS[resource]:
                check.add(building, ("norms", resource, "unit"), f"unit {norm.unit!r} is not a unit of {resource}; "
                                                                 f"use one of {', '.join(RESOURCE_UNITS[resource])}")
        numbers: dict[str, PremisesConfig] = {}
        for premises in building.premises:
            if premises.number in numbers:
                check.add(premises, ("number",), f"premises {premises.number!r} is listed twice in building "
                                                 f"{building.id!r} (first at line "
                                                 f"{smap.line(numbers[premises.number], 'number')})")
            numbers.setdefault(premises.number, premises)
            if premises.account in accounts:
                check.add(premises, ("account",), f"account {premises.account!r} is already used at line "
                                                  f"{smap.line(accounts[premises.account], 'account')}")
            accounts.setdefault(premises.account, premises)
        odpu: dict[str, MeterConfig] = {}
        for meter in building.meters:
            meter_id = meter.meter_id
            if meter_id in meters:
                other = meters[meter_id]
                hint = "" if meter.id is not None else "; give it an 'id'"
                check.add(meter, ("id" if meter.id is not None else "tag",),
                          f"duplicate meter id {meter_id!r} (first at line {smap.line(other)}){hint}")
            meters.setdefault(meter_id, meter)
            key = (meter.serial.casefold(), meter.model.casefold())
            if key in serials:
                model = f" model {meter.model!r}" if meter.model else ""
                check.add(meter, ("serial",), f"serial {meter.serial!r}{model} is already meter "
                                              f"{serials[key].meter_id!r} at line {smap.line(serials[key], 'serial')}")
            serials.setdefault(key, meter)
            if meter.tag in tags:
                check.add(meter, ("tag",), f"tag {meter.tag!r} is already the register of meter "
                                           f"{tags[meter.tag].meter_id!r} at line {smap.line(tags[meter.tag], 'tag')}")
            tags.setdefault(meter.tag, meter)
            if meter.role == "ipu" and meter.premises not in numbers:
                check.add(meter, ("premises",), f"building {building.id!r} has no premises {meter.premises!r}"
                                                f"{_suggest(str(meter.premises), numbers)}; list it under "
                                                "'premises' with its account")
            if meter.role == "odpu":
                if meter.resource in odpu:
                    first = odpu[meter.resource]
                    check.add(meter, ("role",), f"building {building.id!r} already has an odpu for "
                                                f"{meter.resource}: {first.meter_id!r} at line {smap.line(first)}")
                odpu.setdefault(meter.resource, meter)
            check.meter_tag(meter)
            for key_name in ("t_supply_tag", "t_return_tag", "power_tag", "flow_tag"):
                ref = getattr(meter, key_name)
                if ref is not None:
                    check.tag(meter, key_name, ref)
            by_device.setdefault(meter.device, []).append(meter)
        missing = sorted({m.resource for m in building.meters if m.role == "ipu"} - building.norms.keys(),
                         key=RESOURCES.index)
        if missing:
            check.add(building, ("id",), f"building {building.id!r} has no norm for {', '.join(missing)}; an "
                                         "apartment meter without readings for more than 3 months cannot be "
                                         "billed by the norm (ПП 354 п.59-60)", "warning")
    for name, own in by_device.items():
        device = devices.get(name)
        if device is None:
            continue
        due = getattr(device, "next_verification", None)
        for meter in own:
            if due is not None and meter.next_verification is not None and meter.next_verification != due:
                check.add(meter, ("next_verification",),
                          f"next_verification {meter.next_verification} differs from the date of device "
                          f"{name!r} ({due}, line {smap.line(device, 'next_verification')}), which the "
                          "verification alarms follow", "warning")
        serial = getattr(device, "serial", None)
        if serial is not None and all(m.serial != serial for m in own):
            check.add(own[0], ("serial",), f"device {name!r} has serial {serial!r} (line "
                                           f"{smap.line(device, 'serial')}), which no registry meter on it has",
                      "warning")
    return check.problems


def register_lines(building: BuildingConfig, smap: SourceMap, file: str, path: tuple[object, ...]) -> None:
    """Record where the premises of ``building`` (validated at ``path`` of ``file``) came from.

    The building and its meters, validated one by one, are recorded by the loader.
    """
    for number, premises in enumerate(building.premises):
        smap.add(premises, file, path + ("premises", number))
