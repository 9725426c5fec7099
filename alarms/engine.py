# -*- test-case-name: tests.alarms.test_engine -*-
"""The alarm engine: rules over the tag table, the ISA-18.2 life of every alarm, the journal.

One :class:`AlarmEngine` per site.  It subscribes to every sample of the
:class:`~tags.table.TagTable`, evaluates the configured rules
(:mod:`alarms.rules`, conditions in :mod:`alarms.evaluate`), runs each
alarm through the state machine (:mod:`alarms.states`), writes every
transition and operator action as one :class:`~alarms.model.JournalEntry`
to the journal and to subscribers, and saves each alarm's durable state so
that a restart keeps acknowledgements, shelving and out-of-service marks.

Time comes only from the injected ``reactor`` (``seconds()`` and
``callLater``), so tests drive it with ``twisted.internet.task.Clock``.
Nothing here raises into the tag table: a rule or sample that fails is
logged (once per error type) and counted in :attr:`AlarmEngine.errors`.

See ``alarms/README.md`` for the behaviour in prose.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from alarms.evaluate import (
    DEFAULT_KIND_PRIORITY,
    HIGH_LEVELS,
    days_left,
    rate_of_change,
    schedule_deviation,
    status_bits,
)
from alarms.messages import LANGUAGES, render
from alarms.model import JournalEntry, Journal, Priority, State
from alarms.rules import (
    DEFAULT_LEVEL_PRIORITY,
    LEVELS,
    CommLossRule,
    ImbalanceRule,
    LimitRule,
    RateRule,
    Rule,
    ScheduleRule,
    StaleRule,
    StatusRule,
    VerificationRule,
    alarm_id,
)
from alarms.schedule import Window
from alarms.states import (
    ACTIVE_STATES,
    STATE_FILTERS,
    AlarmConflict,
    StateMachine,
)
from tags.model import Sample
from tags.quality import Quality
from tags.table import TagTable
from tags.timefmt import iso_utc

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

__all__ = ["Alarm", "AlarmConflict", "AlarmEngine", "AlarmEvent", "UnknownAlarm", "FLOOD_ID"]

_log = logging.getLogger(__name__)

#: The id of the site-wide alarm-flood alarm.
FLOOD_ID = "flood:site"

#: Qualities whose value says something about *now*.  ``backfilled`` is
#: usable for billing but comes from a meter's archive (the past), so it
#: neither moves a condition nor counts as a fresh sample.
_CURRENT = frozenset(q for q in Quality if q.usable and q is not Quality.BACKFILLED)
_COMM_LOSS = Quality.COMM_LOSS
_GOOD = Quality.GOOD

#: Alarm kinds that a device in comm loss suppresses by design.
SUPPRESSIBLE_KINDS = frozenset({"limit", "rate", "stale", "status", "schedule"})

VERIFY_EVERY = 3600.0  # seconds between verification checks
_MAX_COMMENTS = 50     # comments kept on the alarm itself (the journal has all)

#: Journal entries kept in memory while the journal cannot record them (the oldest go first beyond).
MAX_UNJOURNALLED = 10_000
#: A kept entry that the journal refuses this many times while it records others is given up.
JOURNAL_ATTEMPTS = 5
#: Seconds between attempts to write kept entries and states when no new transition comes.
JOURNAL_RETRY_EVERY = 30.0
#: Journal failures are logged at most once per this many seconds (with the count of the others).
JOURNAL_LOG_EVERY = 60.0


class UnknownAlarm(KeyError):
    """No configured alarm has this id; the message names it."""

    def __str__(self) -> str:
        """Return the message, not ``KeyError``'s quoted repr."""
        return str(self.args[0]) if self.args else "unknown alarm"


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """What subscribers get: the journal entry and the alarm as it is after it (``Alarm.to_json()``).

    An annunciation (what a notifier acts on) is ``entry.event == "raise"``
    with ``entry.state_to == "unack_active"`` (``"flood_on"`` for the flood
    alarm); a raise while shelved, suppressed or out of service keeps that
    state in ``state_to``.
    """

    entry: JournalEntry
    alarm: dict[str, Any]


def _iso(ts: float | None) -> str | None:
    return None if ts is None else iso_utc(ts)


def _time_or_none(value: Any) -> float | None:
    """Read a saved Unix time; ``ValueError`` if it is something else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"not a time: {value!r}")
    return float(value)


def _number(value: Any) -> float | None:
    """Return ``value`` as a finite float for JSON and the journal, or ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class Alarm(StateMachine):
    """One configured alarm: a condition on one tag (or device) at one level, and its ISA-18.2 state.

    The same object lives across occurrences.  Public attributes are read
    by the API and HMI; change them only through :class:`AlarmEngine`.
    ``active`` is the alarm condition after on/off delays, ``value`` the
    value that last raised it, ``limit`` what it was compared with.
    """

    __slots__ = (
        "id", "rule", "kind", "tag", "device", "level", "priority", "limit",
        "active_since", "value", "acked_by", "acked_at",
        "shelved_until", "shelved_by", "shelve_reason", "suppressed_by",
        "out_of_service_by", "out_of_service_reason", "comments", "first_out",
        # engine internals
        "_spec", "_lang", "_raw", "_timer", "_pending_value", "_pending_limit",
        "_high", "_deadband", "_on_delay", "_off_delay", "_after", "_last_good", "_seq",
        "_window", "_span", "_max_rate", "_due", "_within", "_shelve_call", "_activity", "_message",
    )

    def __init__(self, ident: str, spec: Rule | None, kind: str, priority: Priority, *, tag: str | None = None,
                 device: str | None = None, level: str = "", limit: Any = None, lang: str = "ru") -> None:
        """Create a normal alarm (the engine builds these from the rules)."""
        super().__init__()
        self.id = ident
        self.rule = spec.name if spec is not None else kind
        self.kind = kind
        self.tag = tag
        self.device = device
        self.level = level
        self.priority = priority
        self.limit = limit
        self.active_since: float | None = None
        self.value: Any = None
        self.acked_by: str | None = None
        self.acked_at: float | None = None
        self.shelved_until: float | None = None
        self.shelved_by: str | None = None
        self.shelve_reason: str | None = None
        self.suppressed_by: str | None = None
        self.out_of_service_by: str | None = None
        self.out_of_service_reason: str | None = None
        self.comments: list[dict[str, Any]] = []
        self.first_out: str | None = None
        self._spec = spec
        self._lang = lang
        self._raw = False           # the condition as the data say now, before delays
        self._timer = None          # pending on/off delay (only while _raw != active)
        self._pending_value: Any = None
        self._pending_limit: Any = None
        self._high = False
        self._deadband = 0.0
        self._on_delay = spec.on_delay if spec is not None else 0.0
        self._off_delay = spec.off_delay if spec is not None else 0.0
        self._after = 0.0
        self._last_good = 0.0
        self._seq = 0
        self._window: deque[tuple[float, float]] | None = None
        self._span = 0.0
        self._max_rate = 0.0
        self._due: date | None = None
        self._within = 0.0
        self._shelve_call = None
        self._activity: Window | None = None
        self._message: tuple[tuple[Any, Any, Any], str] | None = None

    def __repr__(self) -> str:
        """Show id and state."""
        return f"<Alarm {self.id} {self.state.value}>"

    @property
    def message(self) -> str:
        """Return the alarm's text in the engine's language."""
        # Cached: the text only changes with value, limit or first-out, and
        # every journal entry and event of the alarm shows it.
        key = (self.value, self.limit, self.first_out)
        cached = self._message
        if cached is None or cached[0] != key:
            cached = self._message = (key, self.render_message(self._lang))
        return cached[1]

    def render_message(self, lang: str) -> str:
        """Return the alarm's text in ``lang`` (the rule's own template if it has one)."""
        key = self.kind
        if self.kind in ("limit", "status"):
            key = f"{self.kind}.{self.level}"
        elif self.kind == "verification" and isinstance(self.value, (int, float)) and self.value < 0:
            key = "verification.overdue"
        limit = self.limit
        if self.kind == "flood" and isinstance(limit, (int, float)):
            limit = limit / 60.0
        template = self._spec.message if self._spec is not None else ""
        return render(key, lang, template, tag=self.tag or "", device=self.device or "", level=self.level,
                      value=self.value, limit=limit, rule=self.rule, first_out=self.first_out or "")

    def to_json(self, lang: str | None = None) -> dict[str, Any]:
        """Return the alarm as the API shows it; times ISO 8601 UTC, message in ``lang`` (default the engine's).

        Keys: ``id rule kind tag device level priority state active
        active_since value limit message acked_by acked_at count
        shelved_until shelved_by shelve_reason suppressed_by out_of_service
        out_of_service_by out_of_service_reason comments``, and
        ``first_out`` for the flood alarm.  ``tag`` is ``None`` for device
        alarms (comm loss, verification) and the flood alarm.
        """
        if lang is None or lang == self._lang or lang not in LANGUAGES:
            return self._json(self.message)
        return self._json(self.render_message(lang))

    def _json(self, message: str) -> dict[str, Any]:
        out = {
            "id": self.id,
            "rule": self.rule,
            "kind": self.kind,
            "tag": self.tag,
            "device": self.device,
            "level": self.level,
            "priority": self.priority.value,
            "state": self.state.value,
            "active": self.active,
            "active_since": _iso(self.active_since),
            "value": self.value if isinstance(self.value, str) else _number(self.value),
            "limit": self.limit if isinstance(self.limit, str) else _number(self.limit),
            "message": message,
            "acked_by": self.acked_by,
            "acked_at": _iso(self.acked_at),
            "count": self.count,
            "shelved_until": _iso(self.shelved_until),
            "shelved_by": self.shelved_by,
            "shelve_reason": self.shelve_reason,
            "suppressed_by": self.suppressed_by,
            "out_of_service": self.out_of_service,
            "out_of_service_by": self.out_of_service_by,
            "out_of_service_reason": self.out_of_service_reason,
            "comments": [{"ts": _iso(c["ts"]), "user": c["user"], "text": c["text"]} for c in self.comments],
        }
        if self.kind == "flood":
            out["first_out"] = self.first_out
        return out

    def durable(self) -> dict[str, Any]:
        """Return what survives a restart (JSON-able; times are Unix seconds)."""
        return {
            "state": self.state.value,
            "active": self.active,
            "acked": self.acked,
            "count": self.count,
            "active_since": self.active_since,
            "value": self.value if isinstance(self.value, str) else _number(self.value),
            "acked_by": self.acked_by,
            "acked_at": self.acked_at,
            "shelved_until": self.shelved_until if self.shelved else None,
            "shelved_by": self.shelved_by,
            "shelve_reason": self.shelve_reason,
            "suppressed": self.suppressed,
            "suppressed_by": self.suppressed_by,
            "out_of_service": self.out_of_service,
            "out_of_service_by": self.out_of_service_by,
            "out_of_service_reason": self.out_of_service_reason,
            "comments": list(self.comments[-_MAX_COMMENTS:]),
            "first_out": self.first_out,
        }


class _Device:
    """A device watched for comm loss: its latest samples' verdict and its comm-loss alarms."""

    __slots__ = ("name", "lost", "alarms")

    def __init__(self, name: str) -> None:
        self.name = name
        self.lost = False
        self.alarms: list[Alarm] = []


class _Schedule:
    """A temperature-schedule alarm and the latest usable readings of its two tags."""

    __slots__ = ("alarm", "rule", "supply", "outdoor")

    def __init__(self, alarm: Alarm, rule: ScheduleRule) -> None:
        self.alarm = alarm
        self.rule = rule
        self.supply: float | None = None
        self.outdoor: float | None = None


class _Imbalance:
    """An imbalance alarm and the latest figures of its group: imbalance % and completeness %."""

    __slots__ = ("alarm", "rule", "pct_tag", "completeness_tag", "pct", "completeness")

    def __init__(self, alarm: Alarm, rule: ImbalanceRule, pct_tag: str, completeness_tag: str) -> None:
        self.alarm = alarm
        self.rule = rule
        self.pct_tag = pct_tag
        self.completeness_tag = completeness_tag
        self.pct: float | None = None
        self.completeness: float | None = None


class _TagWatch:
    """Everything one tag's samples feed; lists are empty when a kind does not watch the tag."""

    __slots__ = ("limits", "stale", "rates", "status", "schedules", "imbalances", "device", "resolved")

    def __init__(self) -> None:
        self.limits: list[Alarm] = []
        self.stale: list[Alarm] = []
        self.rates: list[Alarm] = []
        self.status: list[tuple[int, Alarm]] = []
        self.schedules: list[_Schedule] = []
        self.imbalances: list[_Imbalance] = []
        self.device: _Device | None = None
        self.resolved = False   # whether ``device`` was looked up in the tag table


_NOTHING = _TagWatch()  # the watch of tags no rule cares about
_NOTHING.resolved = True


class AlarmEngine:
    """Evaluate alarm rules over a tag table and keep every alarm's ISA-18.2 state.

    ``flood_count`` / ``flood_window``: more than ``flood_count``
    new alarms (annunciated raises from normal; chattering re-raises do not
    count) within ``flood_window`` seconds raise the flood
    alarm :data:`FLOOD_ID`; it clears at ``flood_count / 2`` or fewer.
    ``max_shelve``: the longest shelving, in seconds.  ``lang``: the
    language of messages (``ru`` or ``en``).  ``tz``: the site's time zone,
    for the day boundaries of verification dates.

    Raises ``ValueError`` for a bad setting or two rules that make the
    same alarm id.
    """

    def __init__(self, reactor: IReactorTime, tags: TagTable, rules: Sequence[Rule], journal: Journal, *,
                 flood_count: int = 10, flood_window: float = 600.0, max_shelve: float = 7 * 86400.0,
                 lang: str = "ru", tz: str | ZoneInfo = "UTC") -> None:
        """Build every alarm from ``rules``; nothing is evaluated until :meth:`start`."""
        if flood_count < 1:
            raise ValueError(f"flood_count must be at least 1, not {flood_count!r}")
        if not flood_window > 0:
            raise ValueError(f"flood_window must be positive, not {flood_window!r}")
        if not max_shelve > 0:
            raise ValueError(f"max_shelve must be positive, not {max_shelve!r}")
        if lang not in LANGUAGES:
            raise ValueError(f"lang must be one of {', '.join(LANGUAGES)}, not {lang!r}")
        self._reactor = reactor
        self._tags = tags
        self._journal = journal
        self._flood_count = flood_count
        self._flood_window = float(flood_window)
        self._max_shelve = float(max_shelve)
        self._lang = lang
        self._tz = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        #: Rule, sample, journal or subscriber failures caught (each type is logged once; journal
        #: failures at most once a minute).
        self.errors = 0
        self._logged: set[tuple[str, type]] = set()
        #: Failed journal calls (``record``/``save_state``, retries included).
        self.journal_errors = 0
        #: Journal entries given up (too many waiting, or refused again and again while others went in).
        self.journal_dropped = 0
        self._unjournalled: deque[list[Any]] = deque()     # [entry, refusals] waiting for the journal
        self._unsaved: dict[str, dict[str, Any]] = {}      # alarm id -> durable state waiting
        self._journal_retry_call = None
        self._journal_log_at = -math.inf
        self._journal_unlogged = 0

        self._alarms: dict[str, Alarm] = {}
        self._watch: dict[str, _TagWatch] = {}
        self._devices: dict[str, _Device] = {}
        self._suppressible: dict[str, list[Alarm]] = {}
        self._stale: list[Alarm] = []
        self._verifications: list[Alarm] = []
        self._windows: list[tuple[Window, list[Alarm]]] = []
        for spec in rules:
            self._build(spec)
        self._flood = Alarm(FLOOD_ID, None, "flood", Priority.HIGH, limit=self._flood_window, lang=lang)
        self._add(self._flood)

        self._subscribers: list[Callable[[AlarmEvent], None]] = []
        self._undo: list[Callable[[], None]] = []
        self._started = False
        self._stopped = False  # stop() was called (and start() not since): operator actions are refused
        self._now: float | None = None        # reactor time, cached for one table batch
        self._releases: set[_Device] = set()  # devices whose comm came back in this batch
        self._heap: list[tuple[float, int, Alarm]] = []  # stale deadlines (lazily refreshed)
        self._stale_call = None
        self._stale_at = math.inf
        self._raises: deque[tuple[float, str]] = deque()  # new alarms in the flood window
        self._flood_call = None
        self._verify_call = None
        self._window_calls: list[Any] = []

    # -- building -------------------------------------------------------------------------

    def _add(self, alarm: Alarm) -> Alarm:
        if alarm.id in self._alarms:
            raise ValueError(f"alarm {alarm.id!r} is defined twice (two rules with the same name?)")
        alarm._seq = len(self._alarms)
        self._alarms[alarm.id] = alarm
        if alarm.kind in SUPPRESSIBLE_KINDS and alarm.device:
            self._suppressible.setdefault(alarm.device, []).append(alarm)
        return alarm

    def _tag_watch(self, tag: str) -> _TagWatch:
        watch = self._watch.get(tag)
        if watch is None:
            watch = self._watch[tag] = _TagWatch()
        return watch

    def _device_of(self, tag: str) -> str:
        """Return the device of ``tag``: its definition's, else the part of the name before the dot."""
        state = self._tags.get(tag)
        if state is not None and state.definition.device:
            return state.definition.device
        return tag.partition(".")[0] if "." in tag else ""

    def _build(self, spec: Rule) -> None:
        lang = self._lang
        if isinstance(spec, LimitRule):
            for tag in spec.tags:
                for level in LEVELS:
                    limit = getattr(spec, level)
                    if limit is None:
                        continue
                    priority = spec.priorities.get(level) or DEFAULT_LEVEL_PRIORITY[level]
                    alarm = self._add(Alarm(alarm_id(spec.name, tag, level), spec, "limit", Priority(priority),
                                            tag=tag, device=self._device_of(tag), level=level, limit=limit,
                                            lang=lang))
                    alarm._high = level in HIGH_LEVELS
                    alarm._deadband = abs(spec.deadband)
                    self._tag_watch(tag).limits.append(alarm)
        elif isinstance(spec, RateRule):
            for tag in spec.tags:
                alarm = self._add(Alarm(alarm_id(spec.name, tag), spec, "rate", Priority(spec.priority), tag=tag,
                                        device=self._device_of(tag), limit=spec.max_rate, lang=lang))
                alarm._window = deque()
                alarm._span = spec.window
                alarm._max_rate = spec.max_rate
                self._tag_watch(tag).rates.append(alarm)
        elif isinstance(spec, StaleRule):
            for tag in spec.tags:
                alarm = self._add(Alarm(alarm_id(spec.name, tag), spec, "stale", Priority(spec.priority), tag=tag,
                                        device=self._device_of(tag), limit=spec.after, lang=lang))
                alarm._after = spec.after
                self._tag_watch(tag).stale.append(alarm)
                self._stale.append(alarm)
        elif isinstance(spec, CommLossRule):
            alarms = []
            for device in spec.devices:
                alarm = self._add(Alarm(alarm_id(spec.name, device), spec, "comm_loss", Priority(spec.priority),
                                        device=device, lang=lang))
                alarm._activity = spec.expected_activity
                dev = self._devices.get(device)
                if dev is None:
                    dev = self._devices[device] = _Device(device)
                dev.alarms.append(alarm)
                alarms.append(alarm)
            if spec.expected_activity is not None:
                self._windows.append((spec.expected_activity, alarms))
        elif isinstance(spec, StatusRule):
            device = spec.device or self._device_of(spec.tag)
            masks: dict[str, int] = {}
            for bit, kind in sorted(spec.bits.items()):
                masks[kind] = masks.get(kind, 0) | (1 << int(bit))
            for kind, mask in masks.items():
                priority = spec.kind_priorities.get(kind) or DEFAULT_KIND_PRIORITY.get(kind) or spec.priority
                alarm = self._add(Alarm(alarm_id(spec.name, spec.tag, kind), spec, "status", Priority(priority),
                                        tag=spec.tag, device=device, level=kind, lang=lang))
                self._tag_watch(spec.tag).status.append((mask, alarm))
        elif isinstance(spec, ScheduleRule):
            alarm = self._add(Alarm(alarm_id(spec.name, spec.tag), spec, "schedule", Priority(spec.priority),
                                    tag=spec.tag, device=self._device_of(spec.tag), lang=lang))
            schedule = _Schedule(alarm, spec)
            self._tag_watch(spec.tag).schedules.append(schedule)
            if spec.outdoor_tag != spec.tag:
                self._tag_watch(spec.outdoor_tag).schedules.append(schedule)
        elif isinstance(spec, ImbalanceRule):
            for pct_tag, completeness_tag in spec.groups:
                alarm = self._add(Alarm(alarm_id(spec.name, pct_tag), spec, "imbalance", Priority(spec.priority),
                                        tag=pct_tag, device=self._device_of(pct_tag), limit=spec.threshold_pct,
                                        lang=lang))
                group = _Imbalance(alarm, spec, pct_tag, completeness_tag)
                self._tag_watch(pct_tag).imbalances.append(group)
                self._tag_watch(completeness_tag).imbalances.append(group)
        elif isinstance(spec, VerificationRule):
            for device, due in spec.due.items():
                alarm = self._add(Alarm(alarm_id(spec.name, device), spec, "verification", Priority(spec.priority),
                                        device=device, limit=due.isoformat(), lang=lang))
                alarm._due = due
                alarm._within = spec.within
                self._verifications.append(alarm)
        else:
            raise ValueError(f"rule {getattr(spec, 'name', spec)!r}: unknown rule type {type(spec).__name__}")

    def _resolve(self, watch: _TagWatch, tag: str) -> None:
        """Attach the comm-loss device of ``tag``, now that the table may define it."""
        watch.resolved = True
        watch.device = self._devices.get(self._device_of(tag))

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Restore saved states, subscribe to every sample, evaluate what the table holds, start timers."""
        if self._started:
            return
        self._started = True
        self._stopped = False
        now = self._reactor.seconds()
        try:
            saved = self._journal.load_states()
        except Exception:  # noqa: BLE001 - a broken store must not keep alarms from running
            _log.exception("could not load saved alarm states; starting from normal")
            saved = {}
        for ident, state in saved.items():
            alarm = self._alarms.get(ident)
            if alarm is not None and isinstance(state, dict):
                try:
                    self._restore(alarm, state)
                except Exception:  # noqa: BLE001
                    _log.exception("saved state of alarm %s is unreadable; it starts normal", ident)
        for alarm in self._alarms.values():
            if alarm._shelve_call is not None and alarm._shelve_call.active():
                alarm._shelve_call.cancel()  # shelved before start: timed again from the saved end
            alarm._shelve_call = None
            if alarm.shelved:
                until = alarm.shelved_until
                if until is None or until <= now:
                    self._unshelve(alarm, "system", render("note.shelve_expired_offline", self._lang))
                else:
                    alarm._shelve_call = self._reactor.callLater(until - now, self._shelve_expired, alarm)
        for dev in self._devices.values():
            dev.lost = any(a.active for a in dev.alarms) or any(
                a.suppressed_by == dev.name for a in self._suppressible.get(dev.name, ()))
        for device, alarms in self._suppressible.items():
            dev = self._devices.get(device)
            lost = dev is not None and dev.lost
            for alarm in alarms:
                if alarm.suppressed != lost:
                    self._set_suppressed(alarm, lost, device)

        self._undo = [self._tags.subscribe(self._on_sample, changes_only=False),
                      self._tags.on_batch_end(self._batch_end)]
        for alarm in self._stale:
            alarm._last_good = now
            if not alarm._raw:
                self._stale_arm(alarm, now + alarm._after)
        # What the table already holds counts as the first samples.
        for state in self._tags.states():
            if state.ts is not None:
                self._on_sample(Sample(state.definition.name, state.value, state.quality, state.ts))
        self._batch_end()
        for window, alarms in self._windows:
            self._window_tick(window, alarms)
        if self._verifications:
            self._verify_tick()
        if self._flood.active:
            self._flood_call = self._reactor.callLater(self._flood_window, self._flood_check)
        if self._unjournalled or self._unsaved:
            self._journal_retry_arm()

    def stop(self) -> None:
        """Unsubscribe and cancel every timer; conditions freeze until the next :meth:`start`.

        Operator actions are refused (:class:`AlarmConflict`) until then.
        Entries and states the journal could not take are tried once more.
        """
        for undo in self._undo:
            undo()
        self._undo = []
        self._started = False
        self._stopped = True
        calls = [self._stale_call, self._flood_call, self._verify_call, self._journal_retry_call,
                 *self._window_calls]
        self._journal_retry_call = None
        self._journal_retry()  # not started: a failure sets no new timer
        for alarm in self._alarms.values():
            calls += [alarm._timer, alarm._shelve_call]
            alarm._timer = alarm._shelve_call = None
            if alarm._raw != alarm.active:
                alarm._raw = alarm.active  # a delay cut short: start again from what is annunciated
        for call in calls:
            if call is not None and call.active():
                call.cancel()
        self._stale_call = self._flood_call = self._verify_call = self._journal_retry_call = None
        self._stale_at = math.inf
        self._window_calls = []
        self._heap = []
        self._releases = set()
        self._now = None

    def _restore(self, alarm: Alarm, saved: dict[str, Any]) -> None:
        """Put back what :meth:`Alarm.durable` saved (no journal entries: nothing changed).

        Everything is read before anything is set, so an unreadable state
        leaves the alarm normal rather than half restored.
        """
        state = State(saved.get("state", State.NORMAL.value))
        active = bool(saved.get("active", state in (State.UNACK_ACTIVE, State.ACK_ACTIVE)))
        acked = bool(saved.get("acked", state not in (State.UNACK_ACTIVE, State.RTN_UNACK)))
        count = int(saved.get("count") or 0)
        until = _time_or_none(saved.get("shelved_until"))
        times = {key: _time_or_none(saved.get(key)) for key in ("active_since", "acked_at")}
        comments = [{"ts": _time_or_none(c.get("ts")) or 0.0, "user": str(c.get("user", "")),
                     "text": str(c.get("text", ""))}
                    for c in saved.get("comments") or () if isinstance(c, dict)]
        alarm.active = alarm._raw = active
        alarm.acked = acked
        alarm.count = count
        alarm.active_since = times["active_since"]
        alarm.acked_at = times["acked_at"]
        alarm.value = saved.get("value")
        alarm.acked_by = saved.get("acked_by")
        alarm.shelved = until is not None or state is State.SHELVED
        alarm.shelved_until = until
        alarm.shelved_by = saved.get("shelved_by")
        alarm.shelve_reason = saved.get("shelve_reason")
        alarm.suppressed = bool(saved.get("suppressed", state is State.SUPPRESSED))
        alarm.suppressed_by = saved.get("suppressed_by")
        alarm.out_of_service = bool(saved.get("out_of_service", state is State.OUT_OF_SERVICE))
        alarm.out_of_service_by = saved.get("out_of_service_by")
        alarm.out_of_service_reason = saved.get("out_of_service_reason")
        alarm.comments = comments
        alarm.first_out = saved.get("first_out")

    # -- samples --------------------------------------------------------------------------

    def _on_sample(self, sample: Sample) -> None:
        """Feed one sample to the rules watching its tag (the table's subscriber; the hot path)."""
        watch = self._watch.get(sample[0])
        if watch is None:
            watch = self._watch_new(sample[0])
        elif not watch.resolved:
            self._resolve(watch, sample[0])
        if watch is _NOTHING:
            return
        try:
            name, value, quality, ts = sample
            dev = watch.device
            if dev is not None:
                if quality is _COMM_LOSS:
                    if not dev.lost:
                        self._comm_lost(dev)
                    elif self._releases:
                        self._releases.discard(dev)
                elif dev.lost:
                    # Released at the end of the batch: by then the device's
                    # other tags have their fresh values, so alarms come back
                    # in the state those values demand rather than the old one.
                    self._releases.add(dev)
            if quality is not _GOOD and quality not in _CURRENT:
                return  # no news about the process: every condition holds
            if watch.stale:
                now = self._now
                if now is None:
                    now = self._now = self._reactor.seconds()
                for alarm in watch.stale:
                    alarm._last_good = now
                    if alarm._raw:
                        self._condition(alarm, False, None)
                        self._stale_arm(alarm, now + alarm._after)
            if value is None or value != value:
                return  # no value or NaN: hold (text and other junk fail below and are caught)
            for alarm in watch.limits:
                limit = alarm.limit
                if alarm._high:
                    raw = value > (limit - alarm._deadband if alarm._raw else limit)
                else:
                    raw = value < (limit + alarm._deadband if alarm._raw else limit)
                if raw is not alarm._raw:
                    self._condition(alarm, raw, value)
            if watch.rates:
                for alarm in watch.rates:
                    rate = rate_of_change(alarm._window, ts, value, alarm._span)
                    raw = rate is not None and rate > alarm._max_rate
                    if raw is not alarm._raw:
                        self._condition(alarm, raw, rate)
            if watch.status:
                bits = status_bits(value)
                if bits is not None:
                    for mask, alarm in watch.status:
                        raw = bits & mask != 0
                        if raw is not alarm._raw:
                            self._condition(alarm, raw, bits)
            for schedule in watch.schedules:
                spec = schedule.rule
                if name == spec.tag:
                    schedule.supply = value
                if name == spec.outdoor_tag:
                    schedule.outdoor = value
                if schedule.supply is not None and schedule.outdoor is not None:
                    raw, expected = schedule_deviation(spec.table, schedule.outdoor, schedule.supply,
                                                       spec.tolerance)
                    alarm = schedule.alarm
                    if raw is not alarm._raw:
                        self._condition(alarm, raw, schedule.supply, expected)
            for group in watch.imbalances:
                self._imbalance(group, name, value)
        except Exception as exc:  # noqa: BLE001 - never raise into the tag table
            self._fault(exc, f"sample of {sample[0]}")

    def _imbalance(self, group: _Imbalance, name: str, value: float) -> None:
        """Judge a balance group on its latest figures; too little apartment data suppresses the alarm."""
        if name == group.pct_tag:
            group.pct = value
        if name == group.completeness_tag:
            group.completeness = value
        spec, alarm = group.rule, group.alarm
        incomplete = group.completeness is not None and group.completeness < spec.min_completeness_pct
        if incomplete != alarm.suppressed:
            before = alarm.state
            alarm.set_suppressed(incomplete)
            alarm.suppressed_by = "completeness" if incomplete else None
            self._settled(alarm)
            note = render("note.imbalance_incomplete", self._lang, value=group.completeness,
                          limit=spec.min_completeness_pct) if incomplete else ""
            self._emit(alarm, "suppress" if incomplete else "unsuppress", before, comment=note)
        if group.pct is None:
            return
        pct = group.pct
        if spec.direction == "over":
            excess = pct
        elif spec.direction == "under":
            excess = -pct
        else:
            excess = abs(pct)
        raw = excess > (spec.threshold_pct - spec.deadband_pct if alarm._raw else spec.threshold_pct)
        if raw is not alarm._raw:
            self._condition(alarm, raw, round(pct, 2))

    def _watch_new(self, tag: str) -> _TagWatch:
        """Remember what a tag no rule names feeds: its device's comm-loss state, or nothing."""
        device = self._devices.get(self._device_of(tag))
        if device is None:
            self._watch[tag] = _NOTHING
            return _NOTHING
        watch = self._watch[tag] = _TagWatch()
        watch.device = device
        watch.resolved = True
        return watch

    def _batch_end(self) -> None:
        """After a table batch: release devices whose comm came back; forget the cached time."""
        self._now = None
        if self._releases:
            devices, self._releases = self._releases, set()
            for dev in devices:
                try:
                    self._comm_back(dev)
                except Exception as exc:  # noqa: BLE001
                    self._fault(exc, f"comm return of {dev.name}")

    def _fault(self, exc: Exception, what: str) -> None:
        self.errors += 1
        key = (what.split(" of ")[0], type(exc))
        if key not in self._logged:
            self._logged.add(key)
            _log.error("alarm engine: %s failed (further %s errors of this kind are not logged)",
                       what, type(exc).__name__, exc_info=exc)

    # -- conditions -----------------------------------------------------------------------

    def _condition(self, alarm: Alarm, raw: bool, value: Any, limit: Any = None) -> None:
        """Take the condition the data show; raise or clear now, or after the rule's delay."""
        alarm._raw = raw
        alarm._pending_value = value
        if limit is not None:
            alarm._pending_limit = limit
        if raw == alarm.active:
            if alarm._timer is not None:
                alarm._timer.cancel()  # it went away before the delay ran out
                alarm._timer = None
            return
        delay = alarm._on_delay if raw else alarm._off_delay
        if delay > 0:
            if alarm._timer is None:
                alarm._timer = self._reactor.callLater(delay, self._delay_done, alarm)
            return
        self._apply(alarm, raw)

    def _delay_done(self, alarm: Alarm) -> None:
        alarm._timer = None
        if alarm._raw != alarm.active:
            try:
                self._apply(alarm, alarm._raw)
            except Exception as exc:  # noqa: BLE001 - a timer must not die with the reactor's log only
                self._fault(exc, f"delay of {alarm.id}")

    def _apply(self, alarm: Alarm, active: bool) -> None:
        """Raise or clear the alarm (after delays) and journal it."""
        before = alarm.state
        alarm.set_condition(active)
        value = alarm._pending_value
        if active:
            alarm.active_since = self._reactor.seconds()
            alarm.value = value
            if alarm._pending_limit is not None:
                alarm.limit = alarm._pending_limit
            alarm.acked_by = alarm.acked_at = None
        elif alarm.state is State.NORMAL:
            alarm.active_since = None
        if alarm is self._flood:
            event = "flood_on" if active else "flood_off"
        else:
            event = "raise" if active else "clear"
        self._emit(alarm, event, before, value=value)
        if active and alarm.count == 1 and alarm is not self._flood and alarm.state is State.UNACK_ACTIVE:
            # A new alarm (raised from normal).  A re-raise before the
            # acknowledgement (chattering) is the same alarm with a higher
            # count, not one more alarm for the flood.
            self._note_raise(alarm)

    # -- stale ----------------------------------------------------------------------------

    def _stale_arm(self, alarm: Alarm, deadline: float) -> None:
        """Watch ``alarm`` for its deadline; one timer serves the earliest of all."""
        heapq.heappush(self._heap, (deadline, alarm._seq, alarm))
        if not self._started:
            return
        if self._stale_call is None:
            self._stale_at = deadline
            self._stale_call = self._reactor.callLater(max(0.0, deadline - self._reactor.seconds()),
                                                       self._stale_fire)
        elif deadline < self._stale_at:
            self._stale_at = deadline
            self._stale_call.reset(max(0.0, deadline - self._reactor.seconds()))

    def _stale_fire(self) -> None:
        """Raise the stale alarms whose deadline passed; re-file those that got samples meanwhile."""
        self._stale_call = None
        self._stale_at = math.inf
        now = self._reactor.seconds()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, alarm = heapq.heappop(heap)
            due = alarm._last_good + alarm._after
            if due > now:
                heapq.heappush(heap, (due, alarm._seq, alarm))  # fresh samples came: look again then
            elif not alarm._raw:
                try:
                    self._condition(alarm, True, None)
                except Exception as exc:  # noqa: BLE001
                    self._fault(exc, f"stale check of {alarm.id}")
        if heap and self._started:
            self._stale_at = heap[0][0]
            self._stale_call = self._reactor.callLater(max(0.0, heap[0][0] - now), self._stale_fire)

    # -- comm loss and suppression ----------------------------------------------------------

    def _comm_lost(self, dev: _Device) -> None:
        dev.lost = True
        self._releases.discard(dev)
        now = self._reactor.seconds()
        for alarm in dev.alarms:
            window = alarm._activity
            self._condition(alarm, window is None or window.contains(now), None)
        for alarm in self._suppressible.get(dev.name, ()):
            if not alarm.suppressed:
                self._set_suppressed(alarm, True, dev.name)

    def _comm_back(self, dev: _Device) -> None:
        if not dev.lost:
            return
        dev.lost = False
        for alarm in dev.alarms:
            self._condition(alarm, False, None)
        for alarm in self._suppressible.get(dev.name, ()):
            if alarm.suppressed:
                self._set_suppressed(alarm, False, dev.name)

    def _set_suppressed(self, alarm: Alarm, on: bool, device: str) -> None:
        before = alarm.state
        alarm.set_suppressed(on)
        alarm.suppressed_by = device if on else None
        self._settled(alarm)
        self._emit(alarm, "suppress" if on else "unsuppress", before)

    def _window_tick(self, window: Window, alarms: list[Alarm]) -> None:
        """Re-evaluate comm-loss alarms at an edge of their expected-activity window."""
        now = self._reactor.seconds()
        inside = window.contains(now)
        for alarm in alarms:
            dev = self._devices[alarm.device]
            try:
                self._condition(alarm, dev.lost and inside, None)
            except Exception as exc:  # noqa: BLE001
                self._fault(exc, f"activity window of {alarm.id}")
        call = self._reactor.callLater(max(1.0, window.next_change(now) - now), self._window_tick, window, alarms)
        self._window_calls = [c for c in self._window_calls if c.active()] + [call]

    # -- verification -----------------------------------------------------------------------

    def _verify_tick(self) -> None:
        """Check verification dates (at start, then every hour)."""
        now = self._reactor.seconds()
        for alarm in self._verifications:
            if alarm._due is None:
                continue  # decommissioned: nothing to verify
            try:
                left = days_left(alarm._due, now, self._tz)
                if alarm.active and left != alarm.value:
                    alarm.value = left  # the count of days goes on while active
                self._condition(alarm, left <= alarm._within, left)
            except Exception as exc:  # noqa: BLE001
                self._fault(exc, f"verification of {alarm.id}")
        self._verify_call = self._reactor.callLater(VERIFY_EVERY, self._verify_tick)

    def set_due(self, device: str, due: date | None) -> list[Alarm]:
        """Move ``device``'s verification date (a verification or replacement was recorded); return its alarms.

        ``None`` (the meter was decommissioned) clears them.  Re-evaluated at once.
        """
        changed = [a for a in self._verifications if a.device == device]
        now = self._reactor.seconds()
        for alarm in changed:
            alarm._due = due
            if due is not None:
                alarm.limit = due.isoformat()
            if not self._started:
                continue  # the first check at start judges the new date
            if due is None:
                self._condition(alarm, False, None)
                continue
            left = days_left(due, now, self._tz)
            if alarm.active:
                alarm.value = left
            self._condition(alarm, left <= alarm._within, left)
        return changed

    # -- flood ----------------------------------------------------------------------------

    def _note_raise(self, alarm: Alarm) -> None:
        self._raises.append((self._reactor.seconds(), alarm.id))
        self._flood_check()

    def _flood_check(self) -> None:
        """Start or end the flood from the new alarms within the window."""
        now = self._reactor.seconds()
        raises = self._raises
        cutoff = now - self._flood_window
        while raises and raises[0][0] <= cutoff:
            raises.popleft()
        flood = self._flood
        n = len(raises)
        if not flood._raw:
            if n > self._flood_count:
                flood.first_out = raises[0][1]
                self._condition(flood, True, n)
        elif n <= self._flood_count / 2:
            self._condition(flood, False, n)
        call = self._flood_call
        if call is not None and not call.active():
            call = self._flood_call = None
        if flood._raw and self._started:
            # Raises drop out of the window as time passes: look again then.
            wait = max(0.0, raises[0][0] + self._flood_window - now if raises else 0.0)
            if call is None:
                self._flood_call = self._reactor.callLater(wait, self._flood_check)
            else:
                call.reset(wait)
        elif call is not None:
            call.cancel()
            self._flood_call = None

    @property
    def flood(self) -> dict[str, Any] | None:
        """Return ``{"active_since", "count", "first_out"}`` while an alarm flood is on, else ``None``."""
        if not self._flood.active:
            return None
        cutoff = self._reactor.seconds() - self._flood_window
        return {"active_since": _iso(self._flood.active_since),
                "count": sum(1 for ts, _ in self._raises if ts > cutoff),
                "first_out": self._flood.first_out}

    # -- shelving -------------------------------------------------------------------------

    def _shelve_expired(self, alarm: Alarm) -> None:
        alarm._shelve_call = None
        if alarm.shelved:
            self._unshelve(alarm, "system", render("note.shelve_expired", self._lang))

    def _unshelve(self, alarm: Alarm, user: str, comment: str) -> None:
        before = alarm.state
        if alarm._shelve_call is not None and alarm._shelve_call.active():
            alarm._shelve_call.cancel()
        alarm._shelve_call = None
        alarm.set_shelved(False)
        alarm.shelved_until = alarm.shelved_by = alarm.shelve_reason = None
        self._settled(alarm)
        self._emit(alarm, "unshelve", before, user, comment)

    def _settled(self, alarm: Alarm) -> None:
        """After leaving a hidden state: an alarm that came back normal has no active time."""
        if alarm.state is State.NORMAL:
            alarm.active_since = None
        elif not alarm.hidden and alarm.active:
            alarm.acked_by = alarm.acked_at = None

    # -- journal --------------------------------------------------------------------------

    def _emit(self, alarm: Alarm, event: str, before: State, user: str = "system", comment: str = "",
              value: Any = None) -> None:
        """Journal one transition or action, save the alarm's durable state, tell subscribers."""
        message = alarm.message
        entry = JournalEntry(
            ts=self._reactor.seconds(), alarm_id=alarm.id, event=event, user=user, comment=comment,
            state_from=before.value, state_to=alarm.state.value, rule=alarm.rule, tag=alarm.tag or "",
            priority=alarm.priority.value, value=_number(value if value is not None else alarm.value),
            message=message,
        )
        self._journal_record(entry)
        self._journal_save(alarm.id, alarm.durable())
        if self._subscribers:
            news = AlarmEvent(entry, alarm._json(message))
            for callback in tuple(self._subscribers):
                try:
                    callback(news)
                except Exception as exc:  # noqa: BLE001 - one subscriber must not stop the others
                    self._fault(exc, f"subscriber {callback!r} of {alarm.id}")

    def _journal_record(self, entry: JournalEntry) -> None:
        """Record ``entry``; keep it for later if the journal fails, write kept ones once it works."""
        try:
            self._journal.record(entry)
        except Exception as exc:  # noqa: BLE001 - the engine goes on; the entry is kept
            waiting = self._unjournalled
            waiting.append([entry, 0])
            if len(waiting) > MAX_UNJOURNALLED:
                waiting.popleft()
                self.journal_dropped += 1
            self._journal_failed(exc, f"record of {entry.alarm_id}")
            self._journal_retry_arm()
            return
        if self._unjournalled:
            self._journal_retry_entries(proven=True)

    def _journal_save(self, ident: str, state: dict[str, Any]) -> None:
        """Save an alarm's durable state; keep the latest for later if the journal fails."""
        try:
            self._journal.save_state(ident, state)
        except Exception as exc:  # noqa: BLE001
            self._unsaved[ident] = state
            self._journal_failed(exc, f"save_state of {ident}")
            self._journal_retry_arm()
            return
        if self._unsaved:
            self._unsaved.pop(ident, None)
            self._journal_retry_states()

    def _journal_retry_entries(self, proven: bool) -> bool:
        """Record kept entries, oldest first, until one fails; return whether all went in.

        ``proven``: the journal just took another entry, so a refusal says
        something about this entry; after :data:`JOURNAL_ATTEMPTS` of those
        it is given up (logged), so one entry the journal never takes cannot
        hold back the others.
        """
        waiting = self._unjournalled
        while waiting:
            item = waiting[0]
            try:
                self._journal.record(item[0])
            except Exception as exc:  # noqa: BLE001
                self._journal_failed(exc, f"record of {item[0].alarm_id}")
                if not proven:
                    return False
                item[1] += 1
                if item[1] < JOURNAL_ATTEMPTS:
                    return False
                waiting.popleft()
                self.journal_dropped += 1
                _log.error("alarm journal: entry %r given up after %d refusals", item[0], item[1])
                continue
            waiting.popleft()
        _log.warning("alarm journal: recording again; the entries kept meanwhile are written")
        return True

    def _journal_retry_states(self) -> bool:
        """Save kept states until one fails; return whether all went in."""
        unsaved = self._unsaved
        while unsaved:
            ident, state = next(iter(unsaved.items()))
            try:
                self._journal.save_state(ident, state)
            except Exception as exc:  # noqa: BLE001
                self._journal_failed(exc, f"save_state of {ident}")
                return False
            del unsaved[ident]
        return True

    def _journal_retry(self) -> None:
        """Try the kept entries and states again (timer, and :meth:`stop`)."""
        self._journal_retry_call = None
        try:
            done = True
            if self._unjournalled:
                done = self._journal_retry_entries(proven=False)
            if self._unsaved:
                done = self._journal_retry_states() and done
        except Exception as exc:  # noqa: BLE001 - a timer must not die with the reactor's log only
            self._fault(exc, "journal retry")
            done = False
        if not done:
            self._journal_retry_arm()

    def _journal_retry_arm(self) -> None:
        call = self._journal_retry_call
        if self._started and (call is None or not call.active()):
            self._journal_retry_call = self._reactor.callLater(JOURNAL_RETRY_EVERY, self._journal_retry)

    def _journal_failed(self, exc: Exception, what: str) -> None:
        """Count a journal failure; log it at most once per :data:`JOURNAL_LOG_EVERY` seconds."""
        self.errors += 1
        self.journal_errors += 1
        self._journal_unlogged += 1
        now = self._reactor.seconds()
        if not 0 <= now - self._journal_log_at < JOURNAL_LOG_EVERY:
            self._journal_log_at = now
            _log.error("alarm engine: journal %s failed: %s: %s (%d journal failures since the last report; "
                       "%d entries and %d alarm states wait to be written, %d entries given up so far)",
                       what, type(exc).__name__, exc, self._journal_unlogged, len(self._unjournalled),
                       len(self._unsaved), self.journal_dropped)
            self._journal_unlogged = 0

    def subscribe(self, callback: Callable[[AlarmEvent], None]) -> Callable[[], None]:
        """Call ``callback(AlarmEvent)`` for every journal entry from now on; return the undo function."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    # -- queries --------------------------------------------------------------------------

    def get(self, alarm_id: str) -> Alarm:
        """Return the alarm with this id; raise :class:`UnknownAlarm` naming it."""
        try:
            return self._alarms[alarm_id]
        except (KeyError, TypeError):
            raise UnknownAlarm(f"unknown alarm {alarm_id!r}") from None

    def alarms(self, state: str = "active") -> list[Alarm]:
        """Return the alarms in ``state``, most urgent first, then the newest occurrence first.

        ``state`` is ``active`` (unack_active, ack_active, rtn_unack),
        ``unacked`` (unack_active, rtn_unack), ``shelved``, ``suppressed``,
        ``out_of_service``, ``normal`` or ``all``; anything else raises
        ``ValueError``.
        """
        try:
            wanted = STATE_FILTERS[state]
        except (KeyError, TypeError):
            raise ValueError(f"unknown alarm state filter {state!r}; use one of {', '.join(STATE_FILTERS)}"
                             ) from None
        chosen = [a for a in self._alarms.values() if wanted is None or a.state in wanted]
        chosen.sort(key=lambda a: (a.priority.rank, a.active_since is None, -(a.active_since or 0.0), a.id))
        return chosen

    def summary(self) -> dict[str, Any]:
        """Return counts: alarms by state, active alarms by priority, whether a flood is on, the total.

        Also the journal's health: ``journal_errors`` (failed journal calls),
        ``journal_pending`` (entries and alarm states kept in memory until
        the journal takes them) and ``journal_dropped`` (entries given up).
        """
        by_state = {s.value: 0 for s in State}
        by_priority = {p.value: 0 for p in sorted(Priority, key=lambda p: p.rank)}
        for alarm in self._alarms.values():
            state = alarm.state
            by_state[state.value] += 1
            if state in ACTIVE_STATES:
                by_priority[alarm.priority.value] += 1
        return {"by_state": by_state, "by_priority": by_priority, "flood": self._flood.active,
                "total": len(self._alarms), "journal_errors": self.journal_errors,
                "journal_pending": len(self._unjournalled) + len(self._unsaved),
                "journal_dropped": self.journal_dropped}

    # -- operator actions -----------------------------------------------------------------

    def _check_action(self, user: str) -> None:
        """Refuse an operator action while the engine is stopped, or without a user name."""
        if self._stopped:
            raise AlarmConflict("the alarm engine is stopped")
        if not isinstance(user, str) or not user.strip():
            raise AlarmConflict("an operator action needs the user's name")

    def ack(self, alarm_id: str, user: str, comment: str = "") -> Alarm:
        """Acknowledge: ``unack_active`` → ``ack_active``, ``rtn_unack`` → ``normal``."""
        alarm = self.get(alarm_id)
        self._check_action(user)
        before = alarm.state
        try:
            alarm.acknowledge()
        except AlarmConflict as exc:
            raise AlarmConflict(f"alarm {alarm_id!r}: {exc}") from None
        alarm.acked_by = user
        alarm.acked_at = self._reactor.seconds()
        if alarm.state is State.NORMAL:
            alarm.active_since = None
        self._emit(alarm, "ack", before, user, comment)
        return alarm

    def ack_many(self, ids: Iterable[str], user: str, comment: str = "") -> dict[str, Any]:
        """Acknowledge several alarms; return ``{"acked": [ids], "errors": {id: message}}``."""
        acked: list[str] = []
        errors: dict[str, str] = {}
        for ident in ids:
            try:
                self.ack(ident, user, comment)
            except (UnknownAlarm, AlarmConflict) as exc:
                errors[str(ident)] = str(exc)
            else:
                acked.append(ident)
        return {"acked": acked, "errors": errors}

    def shelve(self, alarm_id: str, user: str, minutes: float, reason: str) -> Alarm:
        """Shelve for ``minutes`` (at most ``max_shelve`` seconds) with a reason; shelving again sets a new time."""
        alarm = self.get(alarm_id)
        self._check_action(user)
        if not isinstance(reason, str) or not reason.strip():
            raise AlarmConflict(f"alarm {alarm_id!r}: shelving needs a reason")
        try:
            seconds = float(minutes) * 60.0
        except (TypeError, ValueError):
            raise AlarmConflict(f"alarm {alarm_id!r}: minutes must be a number, not {minutes!r}") from None
        if not 0 < seconds <= self._max_shelve:
            raise AlarmConflict(f"alarm {alarm_id!r}: shelve for more than 0 and at most "
                                f"{self._max_shelve / 60:g} minutes, not {minutes!r}")
        if alarm.out_of_service:
            raise AlarmConflict(f"alarm {alarm_id!r} is out of service; it cannot be shelved")
        before = alarm.state
        if alarm._shelve_call is not None and alarm._shelve_call.active():
            alarm._shelve_call.cancel()
        now = self._reactor.seconds()
        alarm.set_shelved(True)
        alarm.shelved_until = now + seconds
        alarm.shelved_by = user
        alarm.shelve_reason = reason
        if self._started:  # before start, start() times it from shelved_until
            alarm._shelve_call = self._reactor.callLater(seconds, self._shelve_expired, alarm)
        self._emit(alarm, "shelve", before, user, reason)
        return alarm

    def unshelve(self, alarm_id: str, user: str, comment: str = "") -> Alarm:
        """Unshelve now; the alarm takes the state its condition demands (active → ``unack_active``)."""
        alarm = self.get(alarm_id)
        self._check_action(user)
        if not alarm.shelved:
            raise AlarmConflict(f"alarm {alarm_id!r} is not shelved (state {alarm.state.value})")
        self._unshelve(alarm, user, comment)
        return alarm

    def comment(self, alarm_id: str, user: str, text: str) -> Alarm:
        """Add an operator's comment (any state)."""
        alarm = self.get(alarm_id)
        self._check_action(user)
        if not isinstance(text, str) or not text.strip():
            raise AlarmConflict(f"alarm {alarm_id!r}: a comment needs text")
        before = alarm.state
        alarm.comments.append({"ts": self._reactor.seconds(), "user": user, "text": text})
        del alarm.comments[:-_MAX_COMMENTS]
        self._emit(alarm, "comment", before, user, text)
        return alarm

    def set_in_service(self, alarm_id: str, user: str, in_service: bool, reason: str = "") -> Alarm:
        """Remove from service (a reason is required) or return to service."""
        alarm = self.get(alarm_id)
        self._check_action(user)
        before = alarm.state
        if in_service:
            if not alarm.out_of_service:
                raise AlarmConflict(f"alarm {alarm_id!r} is already in service")
            alarm.set_out_of_service(False)
            alarm.out_of_service_by = alarm.out_of_service_reason = None
            self._settled(alarm)
            self._emit(alarm, "in_service", before, user, reason or "")
        else:
            if not isinstance(reason, str) or not reason.strip():
                raise AlarmConflict(f"alarm {alarm_id!r}: removing from service needs a reason")
            if alarm.out_of_service:
                raise AlarmConflict(f"alarm {alarm_id!r} is already out of service")
            alarm.set_out_of_service(True)
            alarm.out_of_service_by = user
            alarm.out_of_service_reason = reason
            self._emit(alarm, "out_of_service", before, user, reason)
        return alarm
