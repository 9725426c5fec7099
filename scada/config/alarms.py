# -*- test-case-name: tests.scada.config.test_config_alarms -*-
"""Typed model of the alarm parts of a configuration, and what alarm rules refer to.

A site file may have an ``alarms:`` list of rules and ``alarm_settings:``;
a profile may put an ``alarm:`` shortcut (limits) on a point or record and
declare which bits of a point are device status flags (``status:``).  The
models here check each of these on its own; whether the tags and devices
a rule names exist is a question about the whole site, answered by
:func:`site_tags` and :func:`resolve` for both ``scada check``
(:func:`scada.config.validators.check_alarm_references`) and the rule builder
(:func:`scada.alarm_config.build_rules`), so the two cannot disagree.

This module imports nothing from :mod:`scada.config.model` (which imports
it); the basic types it shares with it come from :mod:`scada.config.types`.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Any, Iterable, Literal, Mapping, Optional, Sequence, Union

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema
from pydantic import model_validator
from pydantic_core import PydanticCustomError

from alarms.model import STATUS_KINDS
from alarms.rules import LEVELS
from alarms.schedule import WindowError, parse_window

from .problems import show_value
from .types import ConfigModel, Duration, Finite, NonNegative, Positive, PositiveDuration

#: Rule types of the ``alarms:`` section (the ``type:`` key).
RULE_TYPES = ("limit", "rate", "stale", "comm_loss", "status", "schedule", "verification", "imbalance")
#: Tags that exist on every site without a device (see :data:`scada.history.BACKLOG_TAG`).
SYSTEM_TAGS = ("historian_backlog",)
#: Characters that make a tag or device reference a glob (``fnmatch``).
GLOB_CHARS = frozenset("*?[")

Priority = Literal["low", "medium", "high", "critical"]
Level = Literal["hihi", "hi", "lo", "lolo"]
StatusKind = Literal[STATUS_KINDS]  # type: ignore[valid-type]


def _at_least_one(value: int) -> int:
    """Reject counts below 1."""
    if value < 1:
        raise ValueError(f"{value} must be at least 1")
    return value


def _rule_name(value: str) -> str:
    """Accept a rule name usable in alarm ids (``rule:tag:level``)."""
    if not value:
        raise ValueError("name must not be empty")
    if any(c.isspace() or c in ".:" for c in value):
        raise ValueError(f"{show_value(value)} is not a valid rule name: no whitespace, '.' or ':' allowed "
                         "(alarm ids are <rule>:<tag>:<level>)")
    return value


def _reference(value: str) -> str:
    """Accept a tag or device name or glob: not empty, no whitespace."""
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"{show_value(value)} is not a tag or device name (nor a glob such as 'b*-heat.t_supply_c')")
    return value


def _plain_tag(value: str) -> str:
    """Accept one tag name, ``<device>.<point>``; globs are refused."""
    _reference(value)
    if GLOB_CHARS & set(value):
        raise ValueError(f"{show_value(value)} is a glob; this key takes one tag name such as 'b1-heat.t_supply_c'")
    return value


def _window(value: str) -> str:
    """Accept a weekly window as :func:`alarms.schedule.parse_window` reads it."""
    try:
        parse_window(value)
    except WindowError as exc:
        raise ValueError(str(exc)) from None
    return value


def _verification_date(value: object) -> date:
    """Return a date written as ``2026-12-10`` (YAML reads that as a date) or as that text."""
    if isinstance(value, datetime):
        raise ValueError(f"{value.isoformat(sep=' ')} is a date and time; give the date only, e.g. 2026-12-10")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{show_value(value)} is not a date such as 2026-12-10")


RuleName = Annotated[str, AfterValidator(_rule_name)]
Reference = Annotated[str, AfterValidator(_reference)]
TagName = Annotated[str, AfterValidator(_plain_tag)]
#: A meter's next verification date; a YAML date, or its ISO text from JSON.
VerificationDate = Annotated[
    date,
    BeforeValidator(_verification_date),
    # Without "type": YAML loaders hand tools a date object, JSON editors a string.
    WithJsonSchema({"pattern": r"^\d{4}-\d{2}-\d{2}$", "format": "date", "examples": ["2026-12-10"]}),
]


def _own(kind: str, message: str, at: tuple[object, ...] = ()) -> PydanticCustomError:
    """Return a custom error whose message is complete; ``at`` is the key inside the model it is about.

    The loader adds ``at`` to the error's location for the line number.
    """
    # The message is a template to pydantic: braces would be placeholders.
    text = message.replace("{", "(").replace("}", ")")
    return PydanticCustomError(kind, text, {"at": at})


# ----------------------------------------------------------------- limits


def limit_order_problem(levels: Mapping[str, float | None]) -> tuple[str, str] | None:
    """Return ``(level, message)`` for the first level out of order, or None.

    Levels must satisfy ``lolo <= lo < hi <= hihi`` among those that are set.
    """
    given = [(name, levels[name]) for name in ("lolo", "lo", "hi", "hihi") if levels.get(name) is not None]
    for (low_name, low), (high_name, high) in zip(given, given[1:]):
        crossing = low_name in ("lo", "lolo") and high_name in ("hi", "hihi")
        if (low >= high) if crossing else (low > high):
            relation = "below" if crossing else "at most"
            return high_name, (f"{low_name} {low:g} must be {relation} {high_name} {high:g} "
                               "(limits go lolo <= lo < hi <= hihi)")
    return None


class _Levels(ConfigModel):
    """Absolute limits with a deadband, shared by ``type: limit`` rules and the point shortcut."""

    hihi: Optional[Finite] = None
    hi: Optional[Finite] = None
    lo: Optional[Finite] = None
    lolo: Optional[Finite] = None
    #: How far back inside a limit a value must come before the alarm clears.
    deadband: NonNegative = 0.0
    #: Per-level priorities; levels not named get the rule's ``priority`` or the level's default.
    priorities: dict[Level, Priority] = {}

    @model_validator(mode="after")
    def _check_levels(self) -> "_Levels":
        """Require at least one level, in order, and priorities only for levels that are set."""
        levels = {name: getattr(self, name) for name in LEVELS}
        if all(value is None for value in levels.values()):
            raise _own("alarm_levels", "a limit needs at least one of hihi, hi, lo, lolo")
        wrong = limit_order_problem(levels)
        if wrong is not None:
            raise _own("alarm_order", wrong[1], (wrong[0],))
        for level in self.priorities:
            if levels[level] is None:
                raise _own("alarm_level_priority", f"priorities names level {level!r}, which has no limit",
                           ("priorities", level))
        return self

    @property
    def levels(self) -> dict[str, float]:
        """Return the levels that are set, most severe first."""
        return {name: getattr(self, name) for name in LEVELS if getattr(self, name) is not None}


class PointAlarmConfig(_Levels):
    """The ``alarm:`` shortcut of a profile point or record: limits on that point of every device using the profile.

    It becomes one limit rule named ``<profile>.<point>``.
    """

    priority: Optional[Priority] = None
    message: str = ""
    on_delay: Duration = 0.0
    off_delay: Duration = 0.0


# ----------------------------------------------------------------- status


#: What the M-Bus long header's status byte means (EN 13757-3): bit 2 power
#: low, bit 3 permanent error, bit 4 temporary error.
MBUS_STATUS_BITS = {2: "low_battery", 3: "permanent_error", 4: "temporary_error"}
#: Highest bit number a status declaration may name (a 64-bit point).
MAX_STATUS_BIT = 63


class StatusConfig(ConfigModel):
    """A profile's ``status:`` entry: bit ``n`` of ``point`` set means device alarm ``bits[n]``.

    Kinds are :data:`alarms.model.STATUS_KINDS`.  For an M-Bus profile the
    point may be ``status``, the header status byte every M-Bus meter sends.
    """

    point: Annotated[str, Field(min_length=1)]
    bits: Annotated[dict[int, StatusKind], Field(min_length=1)]
    #: Priorities of some kinds (the rule's own priority applies to the rest).
    priorities: dict[StatusKind, Priority] = {}

    @model_validator(mode="after")
    def _check_bits(self) -> "StatusConfig":
        """Bit numbers fit a 64-bit point; priorities name kinds that some bit means."""
        for bit in self.bits:
            if not 0 <= bit <= MAX_STATUS_BIT:
                raise _own("status_bit", f"bit {bit} is out of range 0-{MAX_STATUS_BIT}", ("bits", bit))
        used = set(self.bits.values())
        for kind in self.priorities:
            if kind not in used:
                raise _own("status_priority", f"priorities names {kind!r}, which no bit means",
                           ("priorities", kind))
        return self


#: The status every M-Bus meter without a profile gets: its header status byte.
MBUS_HEADER_STATUS = StatusConfig(point="status", bits=MBUS_STATUS_BITS)


# ------------------------------------------------------------------ rules


class RuleConfig(ConfigModel):
    """What every rule of the ``alarms:`` section has."""

    name: RuleName
    #: ``low``, ``medium`` (the default), ``high`` or ``critical``.
    priority: Optional[Priority] = None
    #: Text for operators; may use {tag}, {value}, {limit}, {level}, {device}.
    message: str = ""
    #: The condition must hold this long before the alarm is raised …
    on_delay: Duration = 0.0
    #: … and be gone this long before it clears.
    off_delay: Duration = 0.0


class _TagRule(RuleConfig):
    """A rule on tags: ``tag`` (a name or a glob) or ``tags`` (a list of them)."""

    tag: Optional[Reference] = None
    tags: Optional[Annotated[list[Reference], Field(min_length=1)]] = None

    @model_validator(mode="after")
    def _one_subject(self) -> "_TagRule":
        """Require exactly one of ``tag`` and ``tags``."""
        if (self.tag is None) == (self.tags is None):
            given = "both" if self.tag is not None else "neither"
            raise _own("alarm_subject", f"set exactly one of 'tag' or 'tags' ({given} given)")
        return self

    @property
    def patterns(self) -> list[tuple[tuple[object, ...], str]]:
        """Return each tag reference with its key inside the rule."""
        if self.tags is not None:
            return [(("tags", i), p) for i, p in enumerate(self.tags)]
        return [(("tag",), self.tag or "")]


class _DeviceRule(RuleConfig):
    """A rule on devices: ``device`` (a name or a glob such as ``"*"``) or ``devices`` (a list)."""

    device: Optional[Reference] = None
    devices: Optional[Annotated[list[Reference], Field(min_length=1)]] = None

    @model_validator(mode="after")
    def _one_subject(self) -> "_DeviceRule":
        """Require exactly one of ``device`` and ``devices``."""
        if (self.device is None) == (self.devices is None):
            given = "both" if self.device is not None else "neither"
            raise _own("alarm_subject", f"set exactly one of 'device' or 'devices' ({given} given)")
        return self

    @property
    def patterns(self) -> list[tuple[tuple[object, ...], str]]:
        """Return each device reference with its key inside the rule."""
        if self.devices is not None:
            return [(("devices", i), p) for i, p in enumerate(self.devices)]
        return [(("device",), self.device or "")]


class LimitRuleConfig(_TagRule, _Levels):
    """``type: limit``: active above ``hi``/``hihi`` or below ``lo``/``lolo``.

    Each level set is one alarm per tag; its priority is ``priorities[level]``,
    else ``priority``, else the level's default (hihi and lolo high, hi and
    lo medium).
    """

    type: Literal["limit"]


class RateRuleConfig(_TagRule):
    """``type: rate``: active when a value changes faster than ``max_rate`` units per ``per``."""

    type: Literal["rate"]
    max_rate: Positive
    per: PositiveDuration = 1.0
    #: The change is measured over this window.
    window: PositiveDuration = 60.0


class StaleRuleConfig(_TagRule):
    """``type: stale``: active when a tag has had no new sample for ``after``."""

    type: Literal["stale"]
    after: PositiveDuration = 600.0


class CommLossRuleConfig(_DeviceRule):
    """``type: comm_loss``: active while a device does not answer.

    With ``expected_activity`` (a weekly window in site time such as
    ``mon-sun(00-06)``) it only counts inside the window: a modem that
    dials in at night is not lost by day.
    """

    type: Literal["comm_loss"]
    expected_activity: Optional[Annotated[str, AfterValidator(_window)]] = None


class StatusRuleConfig(_DeviceRule):
    """``type: status``: device status flags as the devices' profiles declare them (``status:``).

    Devices whose profile declares none are skipped; M-Bus meters without a
    profile use their header status byte.  ``priorities`` overrides the
    profiles' per-kind priorities.
    """

    type: Literal["status"]
    priorities: dict[StatusKind, Priority] = {}


class ScheduleRuleConfig(RuleConfig):
    """``type: schedule``: the supply temperature against the heating schedule (температурный график).

    ``table`` lists ``[outdoor, supply]`` points by rising outdoor
    temperature; between them the expected supply temperature is
    interpolated.  Active when ``tag`` is off by more than ``tolerance``.
    """

    type: Literal["schedule"]
    tag: TagName
    outdoor: TagName
    table: list[list[Finite]]
    tolerance: Positive = 3.0

    @model_validator(mode="after")
    def _check_table(self) -> "ScheduleRuleConfig":
        """Require two points or more, each [outdoor, supply], by strictly rising outdoor temperature."""
        for index, point in enumerate(self.table):
            if len(point) != 2:
                raise _own("alarm_table", f"a point of the table is [outdoor, supply], not {len(point)} "
                           f"number{'' if len(point) == 1 else 's'}", ("table", index))
        if len(self.table) < 2:
            raise _own("alarm_table", "a schedule table needs at least 2 points [outdoor, supply], "
                       f"{len(self.table)} given", ("table",))
        for index, (previous, point) in enumerate(zip(self.table, self.table[1:]), start=1):
            if point[0] <= previous[0]:
                how = "repeats" if point[0] == previous[0] else "is below"
                raise _own("alarm_table", f"outdoor temperature {point[0]:g} {how} {previous[0]:g} of the point "
                           "before; list the points by rising outdoor temperature", ("table", index, 0))
        return self


class VerificationRuleConfig(_DeviceRule):
    """``type: verification``: active from ``within`` before a device's ``next_verification`` date (поверка).

    Only devices with ``next_verification:`` count.
    """

    type: Literal["verification"]
    within: PositiveDuration = 30 * 86400.0


class ImbalanceRuleConfig(RuleConfig):
    """``type: imbalance``: a building meter (ОДПУ) against the sum of its apartment meters (ИПУ).

    Watches the balance groups of the registry (one per building and
    resource with a building meter) that ``building`` (an id or a glob) and
    ``resource`` select.  Active when the imbalance exceeds
    ``threshold_pct`` of the building meter's volume in ``direction``
    (``both``, ``over``: the building meter shows more, ``under``: less);
    suppressed by design, saying so, while fewer than
    ``min_completeness_pct`` of the apartment meters had measured data.
    """

    type: Literal["imbalance"]
    building: Reference = "*"
    resource: Optional[Literal["heat", "cold_water", "hot_water", "electricity", "gas"]] = None
    threshold_pct: Positive
    min_completeness_pct: Annotated[float, Field(ge=0, le=100)] = 80.0
    direction: Literal["both", "over", "under"] = "both"
    deadband_pct: NonNegative = 0.0


#: Model of each rule type.
RULE_MODELS: dict[str, type[RuleConfig]] = {
    "limit": LimitRuleConfig,
    "rate": RateRuleConfig,
    "stale": StaleRuleConfig,
    "comm_loss": CommLossRuleConfig,
    "status": StatusRuleConfig,
    "schedule": ScheduleRuleConfig,
    "verification": VerificationRuleConfig,
    "imbalance": ImbalanceRuleConfig,
}

AlarmRuleConfig = Annotated[
    Union[LimitRuleConfig, RateRuleConfig, StaleRuleConfig, CommLossRuleConfig, StatusRuleConfig,
          ScheduleRuleConfig, VerificationRuleConfig, ImbalanceRuleConfig],
    Field(discriminator="type"),
]


class AlarmSettings(ConfigModel):
    """The ``alarm_settings:`` section: how the alarm engine treats floods and shelving."""

    #: More alarms than this raised within ``flood_window`` is an alarm flood.
    flood_count: Annotated[int, AfterValidator(_at_least_one), Field(json_schema_extra={"minimum": 1})] = 10
    flood_window: PositiveDuration = 600.0
    #: The longest an operator may shelve an alarm for.
    max_shelve: PositiveDuration = 7 * 86400.0


# ------------------------------------------------------------- resolution


@dataclass(frozen=True)
class SiteTags:
    """The tags and devices alarm rules can name, computed from channels and profiles.

    ``tags`` maps each tag that will exist at run time to its device (``""``
    for system tags), sorted by name; ``devices`` holds the enabled devices
    by name.  ``automatic`` are M-Bus meters without a profile: their record
    tags appear only at run time.  ``unchecked`` are devices whose profile
    is missing or broken (reported on its own), ``disabled`` devices that
    publish nothing.  ``status`` holds each device's status declarations.
    """

    tags: dict[str, str]
    devices: dict[str, Any]
    automatic: frozenset[str] = frozenset()
    unchecked: frozenset[str] = frozenset()
    disabled: frozenset[str] = frozenset()
    status: dict[str, tuple[StatusConfig, ...]] = field(default_factory=dict)
    #: Balance groups of the registry: building id -> resources with a building meter.
    balance: dict[str, tuple[str, ...]] = field(default_factory=dict)


#: Figures the balance service publishes per building and resource (see :func:`balance_tag`).
BALANCE_FIGURES = ("odpu", "ipu_sum", "imbalance", "imbalance_pct", "completeness_pct", "substituted")


def balance_device(building: str) -> str:
    """Return the pseudo-device under which the balance of ``building`` is published."""
    return f"balance-{building}"


def balance_tag(building: str, resource: str, figure: str) -> str:
    """Return the tag of one balance figure, e.g. ``balance-b1.cold_water_imbalance_pct``."""
    return f"{balance_device(building)}.{resource}_{figure}"


def balance_groups(registry: Any) -> dict[str, tuple[str, ...]]:
    """Return building id -> resources with a balance group (a building meter, ОДПУ, over apartment meters)."""
    groups: dict[str, tuple[str, ...]] = {}
    for building in getattr(registry, "buildings", None) or ():
        # As scada.registry.Registry.balance_groups: an ОДПУ with `balance: false`, or one
        # without apartment meters of its resource, has no balance group.
        metered = {m.resource for m in building.meters if m.role == "ipu" and getattr(m, "balance", True)}
        resources = tuple(dict.fromkeys(m.resource for m in building.meters
                                        if m.role == "odpu" and getattr(m, "balance", True)
                                        and m.resource in metered))
        if resources:
            groups[building.id] = resources
    return groups


def remote_points(device: Any) -> list[str] | None:
    """Return the point names of a LoRaWAN/NB-IoT/hand-read meter: its decoder's, or its ``points``.

    None if the decoder is unknown or refuses its options (reported on its
    own); an empty list for an uplink meter whose points come from
    ChirpStack's decoded ``object`` at run time.
    """
    decoder = getattr(device, "decoder", None)
    if decoder is None:
        return [p.name for p in getattr(device, "points", None) or ()]
    from .remote import check_decoder

    try:
        options = check_decoder(decoder, getattr(device, "decoder_options", None) or {})
        from channels.lorawan import decoders

        return [p.name for p in decoders.get(decoder).points(options)]
    except (ValueError, KeyError):
        return None


def site_tags(channels: Iterable[Any], profiles: Mapping[str, Any], registry: Any = None) -> SiteTags:
    """Return what rules may refer to on a site of ``channels`` with ``profiles``.

    Modbus devices have a tag per profile point; M-Bus meters have
    ``<device>.status`` (the header status byte), ``<device>.clock_drift_s``
    (when the meter reports its clock) and a tag per profile record.  With
    a ``registry`` section, each balance group adds its calculated figures
    (:func:`balance_tag`).  Polled and uplink channels add their statistics
    under the pseudo-device ``channel-<channel>`` (:mod:`scada.channelstats`).
    """
    from scada.channelstats import channel_device, channel_stat_tags

    tags: dict[str, str] = {tag: "" for tag in SYSTEM_TAGS}
    devices: dict[str, Any] = {}
    automatic, unchecked, disabled = set(), set(), set()
    status: dict[str, tuple[StatusConfig, ...]] = {}
    for channel in channels:
        for tag in channel_stat_tags(channel):
            tags[tag] = channel_device(channel.name)
        mbus = channel.type == "mbus"
        for device in channel.devices:
            name = device.name
            if not getattr(device, "enabled", True):
                disabled.add(name)
                continue
            devices[name] = device
            if channel.type in ("lorawan", "nbiot", "manual") and not getattr(device, "profile", None):
                points = remote_points(device)
                if points is None:
                    unchecked.add(name)
                elif not points and channel.type != "manual":
                    automatic.add(name)
                for point in points or ():
                    tags[f"{name}.{point}"] = name
                continue
            profile = profiles.get(device.profile) if device.profile is not None else None
            if mbus:
                tags[f"{name}.status"] = name
                tags[f"{name}.clock_drift_s"] = name
                if device.profile is None:
                    automatic.add(name)
                    status[name] = (MBUS_HEADER_STATUS,)
                    continue
            if profile is None:
                unchecked.add(name)
                continue
            for point in [*profile.points, *getattr(profile, "records", ())]:
                tags[f"{name}.{point.name}"] = name
            if getattr(profile, "status", None):
                status[name] = tuple(profile.status)
    balance = balance_groups(registry)
    for building, resources in balance.items():
        for resource in resources:
            for figure in BALANCE_FIGURES:
                tags[balance_tag(building, resource, figure)] = balance_device(building)
    return SiteTags(dict(sorted(tags.items())), dict(sorted(devices.items())), frozenset(automatic),
                    frozenset(unchecked), frozenset(disabled), status, balance)


@dataclass(frozen=True)
class Finding:
    """A problem with one rule: ``at`` is the key inside the rule it is about."""

    severity: Literal["error", "warning"]
    at: tuple[object, ...]
    message: str


@dataclass(frozen=True)
class Resolved:
    """What a rule watches once its names and globs are matched against a site.

    ``tags`` for tag rules (for a schedule: the supply tag, then the outdoor
    tag), ``devices`` for device rules (status: those with declarations;
    verification: those with a date), both sorted.
    """

    tags: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()

    @property
    def errors(self) -> list[Finding]:
        """Return the findings that are errors."""
        return [f for f in self.findings if f.severity == "error"]


def is_glob(reference: str) -> bool:
    """Tell whether a tag or device reference is an fnmatch glob."""
    return bool(GLOB_CHARS & set(reference))


def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _device_part(reference: str) -> str:
    """Return the device half of a tag reference (names of devices have no '.')."""
    return reference.split(".", 1)[0]


class _Matcher:
    """Matches one rule's references against a site, collecting findings.

    ``unsure`` becomes true when a reference falls under a device whose
    tags cannot be listed because its profile is missing or broken (that
    error is reported on its own), so "watches nothing" is not claimed.
    """

    def __init__(self, rule: str, site: SiteTags) -> None:
        self.rule = rule
        self.site = site
        self.findings: list[Finding] = []
        self.unsure = False

    def note(self, severity: str, at: tuple[object, ...], message: str) -> list[str]:
        """Add a finding about the rule; return no names."""
        self.findings.append(Finding(severity, at, f"rule {self.rule!r}: {message}"))  # type: ignore[arg-type]
        return []

    def tags(self, at: tuple[object, ...], ref: str) -> list[str]:
        """Return the tags ``ref`` names (a name or a glob), adding a finding if it names none."""
        site = self.site
        if is_glob(ref):
            found = [tag for tag in site.tags if fnmatch.fnmatchcase(tag, ref)]
            device_glob = _device_part(ref)
            if any(fnmatch.fnmatchcase(d, device_glob) for d in site.unchecked):
                self.unsure = True
            if found or self.unsure:
                return found
            automatic = sorted(d for d in site.automatic if fnmatch.fnmatchcase(d, device_glob))
            if automatic:
                return self.note("warning", at, f"tag glob {ref!r} matches no tag known before run time; the "
                                 f"tags of {', '.join(automatic)} (an M-Bus meter without a profile, or an uplink "
                                 "meter taking ChirpStack's decoded object) appear only at run time and a glob does "
                                 "not reach them: name such tags one by one, or declare them as `points`")
            if any(fnmatch.fnmatchcase(d, device_glob) for d in site.disabled):
                return self.note("warning", at,
                                 f"tag glob {ref!r} matches only tags of disabled devices; the rule skips them")
            return self.note("error", at, f"tag glob {ref!r} matches no tag")
        if ref in site.tags:
            return [ref]
        device, dot, point = ref.partition(".")
        if device in site.unchecked:
            self.unsure = True
            return []
        if device in site.automatic and dot and point:
            config = site.devices.get(device)
            uplink = getattr(config, "dev_eui", None) is not None or getattr(config, "uplink_id", None) is not None
            why = ("takes its points from ChirpStack's decoded object (declare them as `points` to check them)"
                   if uplink else "is an M-Bus meter without a profile")
            self.note("warning", at, f"tag {ref!r} cannot be checked: device {device!r} {why}, so "
                                     "its tags appear only at run time")
            return [ref]
        if device in site.disabled:
            return self.note("warning", at, f"tag {ref!r} belongs to disabled device {device!r}; the rule skips it")
        if dot and device in site.devices:
            points = [t.partition(".")[2] for t, d in site.tags.items() if d == device]
            return self.note("error", at, f"unknown tag {ref!r}: device {device!r} has no point {point!r}"
                                          f"{_suggest(point, points)}")
        what = f"no device {device!r}" if dot else "a tag name is <device>.<point>"
        return self.note("error", at, f"unknown tag {ref!r} ({what}){_suggest(ref, site.tags)}")

    def devices(self, at: tuple[object, ...], ref: str) -> list[str]:
        """Return the devices ``ref`` names (a name or a glob), adding a finding if it names none."""
        site = self.site
        if is_glob(ref):
            found = [d for d in site.devices if fnmatch.fnmatchcase(d, ref)]
            if found:
                return found
            if any(fnmatch.fnmatchcase(d, ref) for d in site.disabled):
                return self.note("warning", at,
                                 f"device glob {ref!r} matches only disabled devices; the rule skips them")
            return self.note("error", at, f"device glob {ref!r} matches no device")
        if ref in site.devices:
            return [ref]
        if ref in site.disabled:
            return self.note("warning", at, f"device {ref!r} is disabled; the rule skips it")
        return self.note("error", at, f"unknown device {ref!r}{_suggest(ref, site.devices)}")

    @property
    def failed(self) -> bool:
        """Tell whether an error was found."""
        return any(f.severity == "error" for f in self.findings)


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(names)))


def resolve(rule: Any, site: SiteTags) -> Resolved:
    """Match a rule's tag or device references against ``site``.

    Unknown names and globs matching nothing are errors naming the rule and
    the reference.  References that cannot be checked before run time (tags
    of an M-Bus meter mapped automatically) and references to disabled
    devices are warnings; so is a rule left with nothing to watch.  A
    status rule must reach a device whose profile declares status flags,
    a verification rule a device with a ``next_verification`` date.
    """
    match = _Matcher(rule.name, site)
    if isinstance(rule, ImbalanceRuleConfig):
        return _resolve_imbalance(rule, site, match)
    if isinstance(rule, ScheduleRuleConfig):
        supply = match.tags(("tag",), rule.tag)
        outdoor = match.tags(("outdoor",), rule.outdoor)
        tags = (supply[0], outdoor[0]) if supply and outdoor else ()
        if not tags and not match.failed and not match.unsure:
            match.note("warning", (), "it has no supply or no outdoor tag to compare and is left out")
        return Resolved(tags=tags, findings=tuple(match.findings))
    if isinstance(rule, _TagRule):
        tags = _unique(t for at, ref in rule.patterns for t in match.tags(at, ref))
        if not tags and not match.failed and not match.unsure:
            match.note("warning", (), "it watches no tag and is left out")
        if isinstance(rule, StaleRuleConfig):
            match.findings += _stale_shorter_than_poll(rule, tags, site)
        return Resolved(tags=tags, findings=tuple(match.findings))
    devices = _unique(d for at, ref in rule.patterns for d in match.devices(at, ref))
    if match.failed:
        return Resolved(devices=devices, findings=tuple(match.findings))
    first = rule.patterns[0][0]
    if isinstance(rule, StatusRuleConfig) and devices:
        declared = tuple(d for d in devices if site.status.get(d))
        if not declared and not any(d in site.unchecked for d in devices):
            match.note("error", first, f"no device it names ({_some(devices)}) declares status flags; "
                                       "add 'status:' to their profiles")
        devices = declared
    elif isinstance(rule, VerificationRuleConfig) and devices:
        dated = tuple(d for d in devices if getattr(site.devices[d], "next_verification", None) is not None)
        if not dated:
            match.note("error", first, f"no device it names ({_some(devices)}) has a 'next_verification' date")
        devices = dated
    elif not devices:
        match.note("warning", (), "it watches no device and is left out")
    return Resolved(devices=devices, findings=tuple(match.findings))


def _resolve_imbalance(rule: ImbalanceRuleConfig, site: SiteTags, match: "_Matcher") -> Resolved:
    """Pick the balance groups an imbalance rule watches: tags ``(imbalance_pct, completeness_pct)`` in turn."""
    buildings = [b for b in site.balance if fnmatch.fnmatchcase(b, rule.building)]
    if not buildings:
        if not site.balance:
            match.note("error", ("building",), "no balance figures: the registry has no building with a "
                                               "building meter (ОДПУ) to balance, or 'balance: {enabled: false}' "
                                               "turns the balance service off; add 'registry:' with 'role: odpu' "
                                               "meters and leave balance enabled")
        elif is_glob(rule.building):
            match.note("error", ("building",), f"{rule.building!r} matches no building with a building meter "
                                               f"({_some(list(site.balance))})")
        else:
            match.note("error", ("building",), f"unknown building {rule.building!r}"
                                               f"{_suggest(rule.building, site.balance)}")
        return Resolved(findings=tuple(match.findings))
    tags: list[str] = []
    for building in buildings:
        for resource in site.balance[building]:
            if rule.resource in (None, resource):
                tags += [balance_tag(building, resource, "imbalance_pct"),
                         balance_tag(building, resource, "completeness_pct")]
    if not tags:
        match.note("error", ("resource",), f"no building it names ({_some(buildings)}) has a "
                                           f"{rule.resource} building meter")
    return Resolved(tags=tuple(tags), findings=tuple(match.findings))


def _some(names: Sequence[str], most: int = 3) -> str:
    """Return a few names for a message: ``a, b, c and 5 more``."""
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"


def _stale_shorter_than_poll(rule: StaleRuleConfig, tags: Iterable[str], site: SiteTags) -> list[Finding]:
    """Warn when a stale rule would fire between two polls of a device it watches."""
    slowest: dict[str, float] = {}
    for tag in tags:
        device = site.tags.get(tag) or _device_part(tag)
        poll = getattr(site.devices.get(device), "poll", None)
        if poll is not None and poll >= rule.after:
            slowest[device] = poll
    if not slowest:
        return []
    device, poll = max(slowest.items(), key=lambda item: item[1])
    message = (f"rule {rule.name!r}: after {rule.after:g} s is not longer than the poll period {poll:g} s of "
               f"device {device!r}; its values would go stale between polls")
    return [Finding("warning", ("after",), message)]


def status_point_problem(profile: Any, status: StatusConfig) -> tuple[tuple[object, ...], str] | None:
    """Return ``(key, message)`` if ``status`` does not fit ``profile``'s points, else None.

    The point must exist (for M-Bus also ``status``, the header byte) and be
    wide enough for every bit; a Modbus status point must be an integer.
    """
    if profile.records:
        if status.point == "status":
            bad = [bit for bit in status.bits if bit > 7]
            if bad:
                return ("bits", bad[0]), f"bit {bad[0]} is out of range: the M-Bus status byte has bits 0-7"
            return None
        names = [r.name for r in profile.records]
        if status.point not in names:
            return ("point",), (f"{status.point!r} is neither a record of the profile nor 'status' (the M-Bus "
                                f"header status byte){_suggest(status.point, names)}")
        return None
    points = {p.name: p for p in profile.points}
    point = points.get(status.point)
    if point is None:
        return ("point",), f"{status.point!r} is not a point of the profile{_suggest(status.point, points)}"
    if point.type[0] not in "ui":
        return ("point",), f"point {status.point!r} is {point.type}; status flags need an integer point (u16, u32…)"
    width = 16 * point.count
    bad = [bit for bit in status.bits if bit >= width]
    if bad:
        return ("bits", bad[0]), f"bit {bad[0]} is out of range: point {status.point!r} ({point.type}) has bits 0-{width - 1}"
    return None
