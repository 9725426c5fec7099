# -*- test-case-name: tests.alarms.test_rules -*-
"""Alarm rule specifications: what the configuration asks the engine to watch.

These are plain frozen dataclasses built by the composition root from the
site configuration (``scada.alarm_config``) or directly by tests and the
benchmark.  One rule may watch several tags (``tags``) and, for limits,
several levels; each (rule, tag, level) is one alarm whose id is
``"{rule}:{tag}"`` or ``"{rule}:{tag}:{level}"`` (see :func:`alarm_id`).

Times are seconds; priorities are :class:`alarms.model.Priority` values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from alarms.model import Priority
from alarms.schedule import Window

#: Limit levels, most severe first; the default priority of each.
LEVELS = ("hihi", "hi", "lo", "lolo")
DEFAULT_LEVEL_PRIORITY = {"hihi": Priority.HIGH, "hi": Priority.MEDIUM, "lo": Priority.MEDIUM,
                          "lolo": Priority.HIGH}


def alarm_id(rule: str, subject: str, level: str = "") -> str:
    """Return the alarm id of ``rule`` on ``subject`` (a tag or a device) at ``level``."""
    return f"{rule}:{subject}:{level}" if level else f"{rule}:{subject}"


@dataclass(frozen=True)
class Rule:
    """What every rule has.  ``message`` may use ``{tag}``, ``{value}``, ``{limit}``, ``{level}``, ``{device}``."""

    name: str
    priority: Priority = Priority.MEDIUM
    message: str = ""
    on_delay: float = 0.0
    off_delay: float = 0.0


@dataclass(frozen=True)
class LimitRule(Rule):
    """Absolute limits with a deadband: active when ``value > hi`` (``< lo``), clear when back by ``deadband``.

    ``priorities`` overrides the priority per level; levels not set are not watched.
    """

    tags: tuple[str, ...] = ()
    hihi: float | None = None
    hi: float | None = None
    lo: float | None = None
    lolo: float | None = None
    deadband: float = 0.0
    priorities: dict[str, Priority] = field(default_factory=dict)


@dataclass(frozen=True)
class RateRule(Rule):
    """Rate of change: active when ``|dv/dt|`` over ``window`` seconds exceeds ``max_rate`` units per second."""

    tags: tuple[str, ...] = ()
    max_rate: float = 0.0
    window: float = 60.0


@dataclass(frozen=True)
class StaleRule(Rule):
    """Stale value: active when a tag has had no sample of usable quality for ``after`` seconds.

    Samples that carry no trustworthy value (timeout, comm loss, ...) do
    not count as fresh; a usable sample clears the alarm.
    """

    tags: tuple[str, ...] = ()
    after: float = 600.0


@dataclass(frozen=True)
class CommLossRule(Rule):
    """Communication loss per device: active while the device's samples carry quality ``comm_loss``.

    With ``expected_activity`` the condition only counts inside the window
    (a modem that dials in at night does not alarm by day).  A device in
    comm loss suppresses by design its own value alarms (limits, rate,
    stale, status, schedule).
    """

    devices: tuple[str, ...] = ()
    expected_activity: Window | None = None


@dataclass(frozen=True)
class StatusRule(Rule):
    """Device status flags: bit ``n`` of ``tag`` set means alarm kind ``bits[n]``.

    Kinds are :data:`alarms.model.STATUS_KINDS`; one alarm per (tag, kind),
    level = kind.  ``kind_priorities`` overrides the priority per kind.
    """

    device: str = ""
    tag: str = ""
    bits: dict[int, str] = field(default_factory=dict)
    kind_priorities: dict[str, Priority] = field(default_factory=dict)


@dataclass(frozen=True)
class ScheduleRule(Rule):
    """Heating supply temperature against the temperature schedule (температурный график).

    ``table`` is ``((t_outdoor, t_supply), ...)`` sorted by outdoor
    temperature; the expected supply temperature is interpolated linearly
    (clamped at the ends).  Active when ``|supply - expected| > tolerance``.
    """

    tag: str = ""
    outdoor_tag: str = ""
    table: tuple[tuple[float, float], ...] = ()
    tolerance: float = 3.0


@dataclass(frozen=True)
class VerificationRule(Rule):
    """Meter verification (поверка, the periodic metrological check) due within ``within`` days.

    ``due`` maps device name to its next verification date; active from
    ``due - within`` days (and past due) until the date is moved.
    """

    due: dict[str, date] = field(default_factory=dict)
    within: float = 30.0


@dataclass(frozen=True)
class ImbalanceRule(Rule):
    """Building balance: ОДПУ (building meter) against the sum of its ИПУ (apartment meters).

    ``groups`` lists ``(imbalance_pct_tag, completeness_pct_tag)`` pairs,
    the calculated tags the balance service publishes per building and
    resource.  Active when the imbalance exceeds ``threshold_pct`` in the
    watched ``direction`` (``both``: either sign; ``over``: the building
    meter shows more than its apartments, losses or unmetered use;
    ``under``: less, usually a faulty or bypassed building meter).  While
    fewer than ``min_completeness_pct`` of the apartment meters had measured
    data the figure proves nothing: the alarm is suppressed by design and
    says why.
    """

    groups: tuple[tuple[str, str], ...] = ()
    threshold_pct: float = 10.0
    min_completeness_pct: float = 80.0
    direction: str = "both"
    deadband_pct: float = 0.0
