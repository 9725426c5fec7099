# -*- test-case-name: tests.scada.test_reload -*-
"""Reloading the site file on SIGHUP: what changed, what is applied live, what needs a restart.

:func:`plan_reload` compares a newly loaded (and validated) site file with
what the engine runs; :meth:`scada.app.Runtime.reload` applies the plan and
:func:`log_report` says what happened, one line per change.

What a reload applies: channels of type ``modbus-rtu``, ``modbus-tcp`` and
``mbus`` (also behind a dial-in modem), compared by name.  A channel that
left the file stops and its tags (and its ``channel-<name>.*`` statistics)
leave the tag table; a new one is built and starts polling; one whose
settings, devices or profiles (a profile one of its devices uses) changed is
stopped and built again.  The others keep polling untouched.

What needs a restart, and is only reported: every other section (``site``,
``history``, ``api``, ``store``, ``alarms``, ``alarm_settings``,
``notifications``, ``modem_server``, ``mqtt``, ``registry``, ``balance``,
``hmi``, ``simulate``, ``simulate_history``), alarm rules whose expansion
changed (profile ``alarm:`` shortcuts, globs over devices, verification
dates), and ``lorawan``, ``nbiot`` and ``manual`` channels: their uplink
routing and hand-reading registers are built once for the whole site.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

from tags.timefmt import iso_utc

log = logging.getLogger("scada.reload")

#: Channel types a reload adds, removes and restarts; the others need a restart of the engine.
RELOADABLE_TYPES = ("modbus-rtu", "modbus-tcp", "mbus")
#: Fields of the site config compared per channel (or not at all), not as whole sections.
PER_CHANNEL_FIELDS = ("channels", "profiles", "source")
#: How many names a reason lists before it says "and N more".
NAMES_SHOWN = 5


@dataclass
class ReloadPlan:
    """What applying a new site file takes, channel by channel (see :func:`plan_reload`)."""

    #: New channels to build and start, in file order.
    add: list[Any] = field(default_factory=list)
    #: Channels to stop and forget, by name.
    remove: list[str] = field(default_factory=list)
    #: Channels to stop and build again: name -> (new config, why).
    restart: dict[str, tuple[Any, str]] = field(default_factory=dict)
    #: Channels left as they run.
    unchanged: list[str] = field(default_factory=list)
    #: What only a restart applies: section (or ``channel <name>``) -> why.
    needs_restart: dict[str, str] = field(default_factory=dict)
    #: The channel configs the engine runs once the plan is applied, in order.
    channels: list[Any] = field(default_factory=list)


@dataclass
class ReloadReport:
    """What one reload did; the last one is shown by ``GET /api/v1/health`` (services → config)."""

    #: Reactor time of the reload.
    ts: float
    #: The site file read.
    path: str
    #: Channels added: name -> number of enabled devices.
    added: dict[str, int] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    #: Channels restarted: name -> why.
    restarted: dict[str, str] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    #: What only a restart applies: section (or ``channel <name>``) -> why.
    needs_restart: dict[str, str] = field(default_factory=dict)
    #: Channels that could not be built (a restarted one is then stopped): name -> why.
    failed: dict[str, str] = field(default_factory=dict)
    #: Why the file was refused (``FILE:LINE: message`` each); empty when it was applied.
    problems: list[str] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        """Tell whether the file was refused (nothing changed)."""
        return bool(self.problems)

    @property
    def outcome(self) -> str:
        """Return ``refused``, ``applied`` (something changed) or ``no change``."""
        if self.refused:
            return "refused"
        if self.added or self.removed or self.restarted or self.failed:
            return "applied"
        return "no change"

    def to_json(self) -> dict[str, Any]:
        """Return the report as JSON for the public ``/health``: outcome, names and counts (time as ISO 8601 UTC).

        Names of the channels added, removed, restarted and failed and of
        the sections needing a restart; counts of the unchanged channels and
        of the problems.  No reasons and no problem texts: a ``FILE:LINE``
        message may quote values of the site file, ``${...}`` secrets
        substituted; :func:`log_report` logs them.
        """
        return {"ts": iso_utc(self.ts), "path": self.path, "outcome": self.outcome,
                "added": sorted(self.added), "removed": list(self.removed), "restarted": list(self.restarted),
                "failed": list(self.failed), "needs_restart": list(self.needs_restart),
                "unchanged": len(self.unchanged), "problems": len(self.problems)}


def used_profiles(channel_cfg: Any, profiles: Mapping[str, Any]) -> dict[str, Any]:
    """Return the profiles a channel's devices name, by name (None for a name ``profiles`` lacks)."""
    names = sorted({d.profile for d in channel_cfg.devices if getattr(d, "profile", None)})
    return {name: profiles.get(name) for name in names}


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown if len(names) <= NAMES_SHOWN else f"{shown} and {len(names) - NAMES_SHOWN} more"


def channel_change(old: Any, old_profiles: Mapping[str, Any], new: Any, new_profiles: Mapping[str, Any]) -> str:
    """Return why channel ``old`` (built with ``old_profiles``) differs from ``new``; "" when it does not."""
    reasons = []
    if old.type != new.type:
        reasons.append(f"type {old.type} -> {new.type}")
    for name in type(new).model_fields:
        if name not in ("name", "type", "devices") and getattr(old, name) != getattr(new, name):
            reasons.append(f"{name} changed")
    before = {d.name: d for d in old.devices}
    after = {d.name: d for d in new.devices}
    for what, names in (("added", [n for n in after if n not in before]),
                        ("removed", [n for n in before if n not in after]),
                        ("changed", [n for n in after if n in before and before[n] != after[n]])):
        if names:
            reasons.append(f"device{'s' if len(names) > 1 else ''} {_names(names)} {what}")
    if list(before) != list(after) and not any(r.startswith("device") for r in reasons):
        reasons.append("devices reordered")
    # Profiles of devices that were there before and still are: a new device's profile is new to it anyway.
    for name in sorted(set(old_profiles) & set(used_profiles(new, new_profiles))):
        if old_profiles[name] != new_profiles.get(name):
            reasons.append(f"profile {name} changed")
    return "; ".join(reasons)


def _rules(cfg: Any) -> list[Any]:
    from scada.alarm_config import build_rules

    return build_rules(cfg)


def _rule_devices(new: list[Any], old: list[Any]) -> set[str]:
    """Return the devices (or system tags) watched by rules that are in one list and not the other."""
    before = {repr(rule) for rule in old}
    after = {repr(rule) for rule in new}
    found: set[str] = set()
    for rule in [r for r in new if repr(r) not in before] + [r for r in old if repr(r) not in after]:
        tags = list(getattr(rule, "tags", ()) or ())
        tags += [t for t in (getattr(rule, "tag", ""), getattr(rule, "outdoor_tag", "")) if t]
        found.update(tag.partition(".")[0] for tag in tags)
        found.update(getattr(rule, "devices", ()) or ())
        found.update(getattr(rule, "due", {}) or {})
        if getattr(rule, "device", ""):
            found.add(rule.device)
    return found


def plan_reload(running: Any, built: Mapping[str, tuple[Any, Mapping[str, Any]]], running_rules: list[Any] | None,
                new: Any) -> ReloadPlan:
    """Compare the new site config ``new`` with what runs, and say what to do.

    ``running`` is the config the engine runs (its sections as started, its
    channels as last applied); ``built`` maps every running channel's name to
    ``(channel config, profiles it was built with)``; ``running_rules`` are
    the alarm rules the engine evaluates (None: not compared).
    """
    plan = ReloadPlan()
    for name in type(new).model_fields:
        if name not in PER_CHANNEL_FIELDS and getattr(running, name) != getattr(new, name):
            plan.needs_restart[name] = "changed"
    if running_rules is not None and "alarms" not in plan.needs_restart:
        try:
            rules = _rules(new)
        except ValueError as exc:
            plan.needs_restart["alarms"] = f"the rules cannot be built: {exc}"
        else:
            if rules != running_rules:
                devices = sorted(_rule_devices(rules, running_rules))
                whose = f" of {_names(devices)}" if devices else ""
                plan.needs_restart["alarms"] = (f"the alarm rules{whose} change (profile alarm shortcuts, globs, "
                                                "verification dates); the running rules stay until a restart")
    seen = set()
    for ch in new.channels:
        seen.add(ch.name)
        if ch.name not in built:
            if ch.type in RELOADABLE_TYPES:
                plan.add.append(ch)
                plan.channels.append(ch)
            else:
                plan.needs_restart[f"channel {ch.name}"] = f"added; {ch.type} channels are added by a restart"
            continue
        old, old_profiles = built[ch.name]
        why = channel_change(old, old_profiles, ch, new.profiles)
        if not why:
            plan.unchanged.append(ch.name)
            plan.channels.append(old)
        elif old.type in RELOADABLE_TYPES and ch.type in RELOADABLE_TYPES:
            plan.restart[ch.name] = (ch, why)
            plan.channels.append(ch)
        else:
            kind = old.type if old.type not in RELOADABLE_TYPES else ch.type
            plan.needs_restart[f"channel {ch.name}"] = f"{why}; {kind} channels are changed by a restart"
            plan.channels.append(old)
    for name, (old, _profiles) in built.items():
        if name in seen:
            continue
        if old.type in RELOADABLE_TYPES:
            plan.remove.append(name)
        else:
            plan.needs_restart[f"channel {name}"] = f"removed; {old.type} channels are removed by a restart"
            plan.channels.append(old)
    return plan


def log_refused(path: str, problems: list[str]) -> None:
    """Log a site file the reload refused: every problem, then that nothing changed."""
    for problem in problems:
        log.error("reload refused: %s", problem)
    count = len(problems)
    log.error("reload refused: %d problem%s in %s; the site keeps running unchanged",
              count, "" if count == 1 else "s", path)


def log_report(report: ReloadReport) -> None:
    """Log what a reload did: one line per change, then what needs a restart."""
    if report.refused:
        log_refused(report.path, report.problems)
        return
    for name, devices in report.added.items():
        log.info("reload: channel %s added (%d device%s)", name, devices, "" if devices == 1 else "s")
    for name in report.removed:
        log.info("reload: channel %s removed", name)
    for name, why in report.restarted.items():
        log.info("reload: channel %s restarted (%s)", name, why)
    for name, why in report.failed.items():
        log.error("reload: channel %s could not be built and is not running: %s", name, why)
    if report.unchanged:
        log.info("reload: unchanged: %s", ", ".join(report.unchanged))
    if report.needs_restart:
        log.warning("reload: needs a restart to apply: %s", ", ".join(report.needs_restart))
        for what, why in report.needs_restart.items():
            if why != "changed":
                log.warning("reload: %s: %s", what, why)
    if report.outcome == "no change" and not report.needs_restart:
        log.info("reload: %s: no change", report.path)
