# -*- test-case-name: tests.scada.test_alarm_config -*-
"""Alarm rules from the site configuration: the ``alarms:`` section plus the profiles' shortcuts.

:func:`build_rules` turns a validated :class:`~scada.config.SiteConfig`
into the rule specifications of :mod:`alarms.rules`: globs expanded
against :func:`known_tags`, durations in seconds, priorities as
:class:`alarms.model.Priority`, activity windows parsed in the site's
time zone.  Name matching is :func:`scada.config.alarms.resolve`'s, the
same that ``scada check`` reports from, so a file that checks clean builds.

Besides the rules written in ``alarms:``, every profile point or record
with an ``alarm:`` shortcut becomes a limit rule named ``<profile>.<point>``
on that point of every enabled device using the profile.
"""

from __future__ import annotations

from typing import Any, Iterable

from alarms.model import Priority
from alarms.rules import (
    DEFAULT_LEVEL_PRIORITY,
    CommLossRule,
    ImbalanceRule,
    LimitRule,
    RateRule,
    Rule,
    ScheduleRule,
    StaleRule,
    StatusRule,
    VerificationRule,
)
from alarms.schedule import parse_window
from scada.config.alarms import (
    CommLossRuleConfig,
    ImbalanceRuleConfig,
    LimitRuleConfig,
    PointAlarmConfig,
    RateRuleConfig,
    ScheduleRuleConfig,
    SiteTags,
    StaleRuleConfig,
    StatusRuleConfig,
    VerificationRuleConfig,
    resolve,
    site_tags,
)

DAY = 86400.0


def known_tags(cfg: Any) -> dict[str, str]:
    """Return every tag the site's enabled devices will publish, mapped to its device, sorted by name.

    Modbus devices: one tag per profile point.  M-Bus meters: one per
    profile record, plus ``<device>.status`` (header status byte) and
    ``<device>.clock_drift_s``; the record tags of a meter without a profile
    appear only at run time and are not listed.  System tags such as
    ``historian_backlog`` map to ``""``.
    """
    return dict(site_tags(cfg.channels, cfg.profiles, getattr(cfg, "registry", None)).tags)


def build_rules(cfg: Any) -> list[Rule]:
    """Return the alarm rules of ``cfg``: its ``alarms:`` in order, then the profiles' shortcuts.

    ``cfg`` should have passed ``scada check``; a reference that names
    nothing raises ValueError with the check's message.  Rules left with
    nothing to watch (see the check's warnings) are left out.  A status rule
    becomes one :class:`~alarms.rules.StatusRule` per device and declared
    status point, all with the rule's name.
    """
    site = site_tags(cfg.channels, cfg.profiles, getattr(cfg, "registry", None))
    timezone = cfg.site.timezone
    rules: list[Rule] = []
    for rule in cfg.alarms:
        resolved = resolve(rule, site)
        if resolved.errors:
            raise ValueError(resolved.errors[0].message)
        rules += _build(rule, resolved.tags, resolved.devices, site, timezone)
    rules += _shortcuts(cfg.profiles, site)
    return rules


def _priority(name: str | None, default: Priority = Priority.MEDIUM) -> Priority:
    return default if name is None else Priority(name)


def _common(rule: Any) -> dict[str, Any]:
    """Return the keyword arguments every rule spec takes."""
    return {"name": rule.name, "priority": _priority(rule.priority), "message": rule.message,
            "on_delay": rule.on_delay, "off_delay": rule.off_delay}


def _limit(name: str, spec: Any, tags: Iterable[str]) -> LimitRule:
    """Return a limit rule: every level set gets its own priority, its default unless given."""
    given = None if spec.priority is None else Priority(spec.priority)
    priorities = {level: Priority(spec.priorities[level]) if level in spec.priorities
                  else given or DEFAULT_LEVEL_PRIORITY[level] for level in spec.levels}
    return LimitRule(name=name, priority=given or Priority.MEDIUM, message=spec.message, on_delay=spec.on_delay,
                     off_delay=spec.off_delay, tags=tuple(tags), hihi=spec.hihi, hi=spec.hi, lo=spec.lo,
                     lolo=spec.lolo, deadband=spec.deadband, priorities=priorities)


def _build(rule: Any, tags: tuple[str, ...], devices: tuple[str, ...], site: SiteTags,
           timezone: str) -> list[Rule]:
    """Return the spec(s) of one rule of the ``alarms:`` section (none if it watches nothing)."""
    if isinstance(rule, ImbalanceRuleConfig):
        groups = tuple(zip(tags[0::2], tags[1::2]))
        return [ImbalanceRule(**_common(rule), groups=groups, threshold_pct=rule.threshold_pct,
                              min_completeness_pct=rule.min_completeness_pct, direction=rule.direction,
                              deadband_pct=rule.deadband_pct)] if groups else []
    if isinstance(rule, ScheduleRuleConfig):
        if not tags:
            return []
        table = tuple((float(outdoor), float(supply)) for outdoor, supply in rule.table)
        return [ScheduleRule(**_common(rule), tag=tags[0], outdoor_tag=tags[1], table=table,
                             tolerance=rule.tolerance)]
    if isinstance(rule, (LimitRuleConfig, RateRuleConfig, StaleRuleConfig)):
        if not tags:
            return []
        if isinstance(rule, LimitRuleConfig):
            return [_limit(rule.name, rule, tags)]
        if isinstance(rule, RateRuleConfig):
            return [RateRule(**_common(rule), tags=tags, max_rate=rule.max_rate / rule.per, window=rule.window)]
        return [StaleRule(**_common(rule), tags=tags, after=rule.after)]
    if not devices:
        return []
    if isinstance(rule, CommLossRuleConfig):
        window = None if rule.expected_activity is None else parse_window(rule.expected_activity, timezone)
        return [CommLossRule(**_common(rule), devices=devices, expected_activity=window)]
    if isinstance(rule, StatusRuleConfig):
        out: list[Rule] = []
        for device in devices:
            for status in site.status[device]:
                kinds = {**status.priorities, **rule.priorities}
                out.append(StatusRule(**_common(rule), device=device, tag=f"{device}.{status.point}",
                                      bits=dict(status.bits),
                                      kind_priorities={kind: Priority(p) for kind, p in kinds.items()}))
        return out
    if isinstance(rule, VerificationRuleConfig):
        due = {device: site.devices[device].next_verification for device in devices}
        return [VerificationRule(**_common(rule), due=due, within=rule.within / DAY)]
    raise TypeError(f"rule {rule.name!r}: unknown rule type {type(rule).__name__}")


def _shortcuts(profiles: dict[str, Any], site: SiteTags) -> list[Rule]:
    """Return a limit rule per profile point with an ``alarm:`` shortcut, over the devices using the profile."""
    rules: list[Rule] = []
    for profile_name in sorted(profiles):
        profile = profiles[profile_name]
        users = [name for name, device in site.devices.items() if device.profile == profile_name]
        if not users:
            continue
        for point in [*profile.points, *profile.records]:
            spec: PointAlarmConfig | None = getattr(point, "alarm", None)
            if spec is not None:
                rules.append(_limit(f"{profile_name}.{point.name}", spec, (f"{d}.{point.name}" for d in users)))
    return rules
