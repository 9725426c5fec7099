# -*- test-case-name: tests.alarms.test_notify -*-
"""Who hears about an alarm, when, and how often: routing, escalation, rate limit, retries.

:class:`Notifier` subscribes to the alarm engine.  For every journal event
it picks the recipients whose ``events``, ``priorities`` and on-call
window match at that moment and sends each one message over each of
their channels (a webhook POST, an e-mail), through a :class:`Sender` per
channel.  The subscriber call only decides and schedules; sending starts
on the next reactor turn, so a slow mail server or a bug here never
reaches the engine.
The flood events (``flood_on``/``flood_off``, the site-wide flood
alarm's raise and clear) reach every recipient who subscribed to them,
whatever its ``priorities``.

Escalation: when an alarm is raised, one timer per applicable
:class:`EscalationStep` (an alarm of the step's priority or higher) runs
on the injected reactor.  Acknowledging, clearing (return to normal),
shelving, suppressing or removing the alarm from service cancels them;
unshelving (or unsuppressing, returning to service) an alarm that is
still active re-arms the levels not yet sent, counted from that moment.
A level that fires sends to those of its ``to`` recipients who are on
call; if none is, it goes to the next level that has someone on call
(that level then counts as sent too); if nobody is on call anywhere, it
waits for the first on-call start among its own recipients and tries
again.  Each level fires at most once per occurrence (raise).

Rate limit: at most ``rate_max`` messages per recipient in any sliding
``rate_per`` window (escalations included, each message counted once
whatever its channels).  Messages over the limit are counted, logged
once per episode, and summed up in one digest message sent the moment
the window has room again.

Retries: a failed attempt whose :class:`SendError` says ``retry`` (a
connection error, a timeout, a server error) is repeated after each
delay of ``backoff`` in turn; the final outcome of every delivery goes to
the journal as a ``notify`` entry.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from twisted.internet import defer

from alarms.model import JournalEntry, Priority
from alarms.notify import texts
from alarms.schedule import Window
from tags.timefmt import iso_utc

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

_log = logging.getLogger(__name__)

#: Default waits before the 1st, 2nd and 3rd retry of a failed delivery.
DEFAULT_BACKOFF = (5.0, 30.0, 120.0)
#: Events a recipient hears about unless configured otherwise.
DEFAULT_EVENTS = frozenset({"raise", "flood_on"})
ALL_PRIORITIES = frozenset(p.value for p in Priority)

#: States that hide an alarm: its condition is tracked but not annunciated.
_HIDDEN = frozenset({"shelved", "suppressed", "out_of_service"})
#: Events that annunciate an alarm (the flood alarm's raise is ``flood_on``).
_RAISES = frozenset({"raise", "flood_on"})
#: Events that end the wait for an acknowledgement for good.
_ENDS = frozenset({"ack", "clear", "flood_off"})
#: Site-wide events: a recipient who subscribed to them gets them whatever its priorities.
_SITE_WIDE = frozenset({"flood_on", "flood_off"})
#: Events that hide the alarm: escalation pauses.
_HIDES = frozenset({"shelve", "suppress", "out_of_service"})
#: Events that may show a hidden alarm again.
_SHOWS = frozenset({"unshelve", "unsuppress", "in_service"})
# How far ahead an on-call start is looked for: edges of a weekly window
# repeat within a week, so a few dozen steps are plenty.
_MAX_EDGES = 64


class SendError(Exception):
    """One delivery attempt failed; ``retry`` tells whether a later attempt may succeed."""

    def __init__(self, reason: str, retry: bool = True) -> None:
        """Keep the reason (the exception's text) and whether to retry."""
        super().__init__(reason)
        self.retry = retry


@dataclass(frozen=True)
class Message:
    """One notification for one recipient, ready for any channel.

    ``subject`` and ``text`` are the e-mail's; ``payload`` is the webhook
    JSON.  ``kind`` is ``event``, ``escalation`` or ``digest``; the alarm
    fields are copied into the journal entry of the outcome.
    """

    kind: str
    event: str
    recipient: str
    subject: str
    text: str
    payload: dict[str, Any]
    alarm_id: str = ""
    priority: str = ""
    tag: str = ""
    rule: str = ""
    summary: str = ""
    value: float | None = None
    #: 1-based escalation level, for escalations.
    level: int | None = None


class Sender(Protocol):
    """A channel (``webhook``, ``email``): one delivery attempt per call, no retries of its own."""

    channel: str

    def send(self, address: str, message: Message) -> Deferred[None]:
        """Deliver ``message`` to ``address`` once; fail with :class:`SendError` (or anything else: not retried)."""


@dataclass(frozen=True)
class Recipient:
    """A person or system and what they want to hear: see ``notifications.recipients`` in the config.

    ``on_call`` is a window in the site's time zone; None means always.
    """

    name: str
    webhook: str | None = None
    email: str | None = None
    priorities: frozenset[str] = ALL_PRIORITIES
    events: frozenset[str] = DEFAULT_EVENTS
    on_call: Window | None = None

    def on_call_at(self, ts: float) -> bool:
        """Tell whether the recipient is on call at Unix time ``ts``."""
        return self.on_call is None or self.on_call.contains(ts)

    def next_on_call(self, ts: float) -> float | None:
        """Return the first moment after ``ts`` at which an on-call period starts (None: never)."""
        if self.on_call is None:
            return ts
        moment = ts
        for _ in range(_MAX_EDGES):
            moment = self.on_call.next_change(moment)
            if self.on_call.contains(moment):
                return moment
        return None

    def addresses(self) -> list[tuple[str, str]]:
        """Return ``(channel, address)`` for each way to reach the recipient."""
        out = []
        if self.webhook:
            out.append(("webhook", self.webhook))
        if self.email:
            out.append(("email", self.email))
        return out


@dataclass(frozen=True)
class EscalationStep:
    """An escalation level: alarms of ``priority`` or higher, unacknowledged ``after`` seconds, go ``to``."""

    priority: str
    after: float
    to: tuple[str, ...]

    def applies(self, priority: str) -> bool:
        """Tell whether an alarm of ``priority`` is escalated by this step."""
        try:
            return Priority(priority).rank <= Priority(self.priority).rank
        except ValueError:
            return False


@dataclass
class _Occurrence:
    """Escalation state of one alarm occurrence (from its raise to ack or return to normal)."""

    alarm_id: str
    priority: str
    levels: list[int]
    alarm: dict[str, Any]
    entry: dict[str, Any] | None
    fired: set[int] = field(default_factory=set)
    timers: dict[int, IDelayedCall] = field(default_factory=dict)
    waiting: set[int] = field(default_factory=set)


@dataclass
class _Budget:
    """Rate-limit bookkeeping of one recipient."""

    sent: deque[float] = field(default_factory=deque)
    suppressed: int = 0
    since: float = 0.0
    digest: IDelayedCall | None = None


@dataclass
class _Counts:
    """What happened to one recipient's messages (``stats``)."""

    messages: int = 0
    delivered: int = 0
    failed: int = 0
    retries: int = 0
    suppressed: int = 0
    digests: int = 0
    escalations: int = 0


class Notifier:
    """Send alarm notifications; see the module docstring.

    ``senders`` maps a channel name (``webhook``, ``email``) to its
    :class:`Sender`; every channel a recipient uses needs one.  ``tz`` is
    the site's time zone (times in texts), ``site`` its name (subjects).
    ``journal`` (optional) receives a ``notify`` entry per delivery
    outcome; ``engine`` (optional, or given to :meth:`attach`) is asked
    for an alarm's current state before an escalation is sent.

    Raises ``ValueError`` for duplicate recipient names, escalation
    targets that are not recipients, or a channel without a sender.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        recipients: Iterable[Recipient],
        senders: Mapping[str, Sender],
        *,
        site: str = "",
        tz: str | ZoneInfo = "UTC",
        lang: str = "ru",
        escalation: Sequence[EscalationStep] = (),
        rate_max: int = 20,
        rate_per: float = 600.0,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        journal: Any = None,
        engine: Any = None,
    ) -> None:
        """Check the setup; nothing is scheduled until events arrive."""
        self._reactor = reactor
        self.recipients: dict[str, Recipient] = {}
        for recipient in recipients:
            if recipient.name in self.recipients:
                raise ValueError(f"duplicate notification recipient {recipient.name!r}")
            for channel, _address in recipient.addresses():
                if channel not in senders:
                    raise ValueError(f"recipient {recipient.name!r} uses {channel} but no {channel} sender is set up")
            self.recipients[recipient.name] = recipient
        self.steps = tuple(escalation)
        for index, step in enumerate(self.steps):
            unknown = [name for name in step.to if name not in self.recipients]
            if unknown:
                raise ValueError(f"escalation[{index}] names unknown recipient(s) {', '.join(map(repr, unknown))}")
        if rate_max < 1 or rate_per <= 0:
            raise ValueError(f"rate limit must allow at least 1 message per positive period, not {rate_max}/{rate_per}")
        self._senders = dict(senders)
        self.site = site
        self.tz = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        self.lang = lang
        self.rate_max = int(rate_max)
        self.rate_per = float(rate_per)
        self.backoff = tuple(float(b) for b in backoff)
        self._journal = journal
        self._engine = engine
        self._occurrences: dict[str, _Occurrence] = {}
        self._budgets: dict[str, _Budget] = {name: _Budget() for name in self.recipients}
        self._counts: dict[str, _Counts] = {name: _Counts() for name in self.recipients}
        self._calls: set[IDelayedCall] = set()
        self._inflight: set[Deferred[None]] = set()
        self._errors = 0
        self._stopped = False
        self._unsubscribe: Callable[[], None] | None = None

    # -- wiring ----------------------------------------------------------

    def attach(self, engine: Any) -> None:
        """Subscribe to ``engine`` (``engine.subscribe(callback)``) and ask it for alarm states before escalating."""
        self._engine = engine
        undo = engine.subscribe(self.on_event)
        # The engine hands back an unsubscribe function; stop() uses it.
        self._unsubscribe = undo if callable(undo) else None

    def stop(self) -> None:
        """Unsubscribe; cancel every timer (escalations, digests, retries, pending sends) and requests in flight."""
        self._stopped = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for occurrence in self._occurrences.values():
            self._disarm(occurrence)
        self._occurrences.clear()
        for budget in self._budgets.values():
            if budget.digest is not None and budget.digest.active():
                budget.digest.cancel()
            budget.digest = None
        for call in list(self._calls):
            if call.active():
                call.cancel()
        self._calls.clear()
        for d in list(self._inflight):
            d.cancel()

    def stats(self) -> dict[str, Any]:
        """Return counters per recipient, pending escalations and internal errors."""
        return {
            "recipients": {name: vars(counts).copy() for name, counts in self._counts.items()},
            "escalations_pending": {a: sorted(o.timers) for a, o in self._occurrences.items() if o.timers},
            "errors": self._errors,
        }

    def pending_escalations(self, alarm_id: str) -> list[int]:
        """Return the 0-based indexes of ``alarm_id``'s escalation levels that are still timed."""
        occurrence = self._occurrences.get(alarm_id)
        return sorted(occurrence.timers) if occurrence else []

    # -- the engine's callback ---------------------------------------------

    def on_event(self, event: Any) -> None:
        """Handle one engine event (``event.entry``, ``event.alarm``); never raises."""
        try:
            self._handle(event)
        except Exception:  # noqa: BLE001 - the engine must never see our bugs
            self._errors += 1
            _log.exception("notifications: cannot handle alarm event %r", getattr(event, "entry", event))

    def _handle(self, event: Any) -> None:
        if self._stopped:
            return
        entry = event.entry
        name = str(entry.event)
        if name == "notify":
            return  # our own journal lines, if the engine echoes them
        alarm = dict(getattr(event, "alarm", None) or {})
        entry_json = _entry_json(entry)
        self._track(name, entry, alarm, entry_json)
        if name in _RAISES | {"clear"} and entry.state_to in _HIDDEN:
            return  # tracked while hidden, but not annunciated
        priority = str(entry.priority or alarm.get("priority") or "")
        now = self._reactor.seconds()
        for recipient in self.recipients.values():
            if name not in recipient.events:
                continue
            if name not in _SITE_WIDE and priority in ALL_PRIORITIES and priority not in recipient.priorities:
                continue
            if not recipient.on_call_at(now):
                continue
            self._submit(recipient, lambda r=recipient: self._event_message(r, name, alarm, entry_json))

    # -- escalation ------------------------------------------------------

    def _track(self, name: str, entry: Any, alarm: dict[str, Any], entry_json: dict[str, Any]) -> None:
        """Start, pause, re-arm or end the escalation of the event's alarm."""
        if not self.steps:
            return
        alarm_id = str(entry.alarm_id)
        occurrence = self._occurrences.get(alarm_id)
        if name in _RAISES:
            if entry.state_to in _HIDDEN:
                return
            if occurrence is not None:
                if occurrence.timers or occurrence.waiting:
                    # Still waiting for an ack (a raise the engine repeats):
                    # keep the running clock, or chattering would postpone escalation forever.
                    occurrence.alarm = alarm or occurrence.alarm
                    return
                self._disarm(occurrence)
            self._start(alarm_id, entry, alarm, entry_json, float(entry.ts))
        elif name in _ENDS:
            if occurrence is not None:
                self._disarm(occurrence)
                del self._occurrences[alarm_id]
        elif name in _HIDES:
            if occurrence is not None:
                self._disarm(occurrence)
        elif name in _SHOWS:
            if entry.state_to == "unack_active":
                if occurrence is None:
                    self._start(alarm_id, entry, alarm, entry_json, self._reactor.seconds())
                else:
                    occurrence.alarm = alarm or occurrence.alarm
                    self._arm(occurrence, self._reactor.seconds())
            elif entry.state_to not in _HIDDEN and occurrence is not None:
                self._disarm(occurrence)
                del self._occurrences[alarm_id]

    def _start(self, alarm_id: str, entry: Any, alarm: dict[str, Any], entry_json: dict[str, Any],
               base: float) -> None:
        priority = str(entry.priority or alarm.get("priority") or "")
        levels = [i for i, step in enumerate(self.steps) if step.applies(priority)]
        if not levels:
            return
        occurrence = _Occurrence(alarm_id, priority, levels, alarm, entry_json)
        self._occurrences[alarm_id] = occurrence
        self._arm(occurrence, base)

    def _arm(self, occurrence: _Occurrence, base: float) -> None:
        """Time every level not yet sent, ``after`` seconds from ``base``."""
        self._disarm(occurrence)
        now = self._reactor.seconds()
        for index in occurrence.levels:
            if index in occurrence.fired:
                continue
            delay = max(0.0, base + self.steps[index].after - now)
            occurrence.timers[index] = self._reactor.callLater(delay, self._escalate, occurrence, index)

    def _disarm(self, occurrence: _Occurrence) -> None:
        for call in occurrence.timers.values():
            if call.active():
                call.cancel()
        occurrence.timers.clear()
        occurrence.waiting.clear()

    def _escalate(self, occurrence: _Occurrence, index: int) -> None:
        """Level ``index`` of ``occurrence`` is due: send it, hand it on, or wait for someone on call."""
        try:
            self._escalate_now(occurrence, index)
        except Exception:  # noqa: BLE001 - a timer callback must not die with an error
            self._errors += 1
            _log.exception("notifications: escalation of %s failed", occurrence.alarm_id)

    def _escalate_now(self, occurrence: _Occurrence, index: int) -> None:
        occurrence.timers.pop(index, None)
        if self._occurrences.get(occurrence.alarm_id) is not occurrence or index in occurrence.fired:
            return
        if not self._still_unacked(occurrence):
            self._disarm(occurrence)
            del self._occurrences[occurrence.alarm_id]
            return
        now = self._reactor.seconds()
        targets = self._on_call(self.steps[index].to, now)
        if targets:
            occurrence.fired.add(index)
            occurrence.waiting.discard(index)
            self._send_escalation(occurrence, index, targets)
            return
        for later in occurrence.levels:
            if later <= index or later in occurrence.fired:
                continue
            targets = self._on_call(self.steps[later].to, now)
            if targets:
                _log.info("escalation of %s: nobody of level %d is on call; level %d takes it now",
                          occurrence.alarm_id, index + 1, later + 1)
                occurrence.fired.update((index, later))
                occurrence.waiting.discard(index)
                call = occurrence.timers.pop(later, None)
                if call is not None and call.active():
                    call.cancel()
                self._send_escalation(occurrence, later, targets)
                return
        starts = [t for t in (self.recipients[n].next_on_call(now) for n in self.steps[index].to) if t is not None]
        if not starts:
            _log.warning("escalation of %s: nobody of level %d is ever on call; level dropped",
                         occurrence.alarm_id, index + 1)
            occurrence.fired.add(index)
            return
        if index not in occurrence.waiting:
            _log.info("escalation of %s: nobody of level %d is on call; trying again at %s",
                      occurrence.alarm_id, index + 1, texts.local_time(min(starts), self.tz))
            occurrence.waiting.add(index)
        occurrence.timers[index] = self._reactor.callLater(
            max(0.0, min(starts) - now), self._escalate, occurrence, index)

    def _still_unacked(self, occurrence: _Occurrence) -> bool:
        """Ask the engine whether the alarm still waits for an ack while active; refresh its JSON."""
        if self._engine is None:
            return True
        try:
            alarm = self._engine.get(occurrence.alarm_id)
        except Exception:  # noqa: BLE001 - an alarm removed by a config reload, say
            return False
        if alarm is None:
            return False
        try:
            occurrence.alarm = dict(alarm.to_json())
        except Exception:  # noqa: BLE001 - keep the JSON from the raise
            _log.debug("alarm %s has no usable to_json()", occurrence.alarm_id, exc_info=True)
        return str(getattr(alarm, "state", "")) == "unack_active"

    def _on_call(self, names: Iterable[str], now: float) -> list[Recipient]:
        return [self.recipients[n] for n in names if self.recipients[n].on_call_at(now)]

    def _send_escalation(self, occurrence: _Occurrence, index: int, targets: list[Recipient]) -> None:
        for recipient in targets:
            self._counts[recipient.name].escalations += 1
            self._submit(recipient, lambda r=recipient: self._escalation_message(r, occurrence, index))

    # -- rate limit --------------------------------------------------------

    def _submit(self, recipient: Recipient, build: Callable[[], Message]) -> None:
        """Send the message ``build`` makes to ``recipient`` unless the rate limit holds it back."""
        now = self._reactor.seconds()
        budget = self._budgets[recipient.name]
        self._expire(budget, now)
        if len(budget.sent) < self.rate_max:
            budget.sent.append(now)
            message = build()
            self._soon(self._send_all, recipient, message)
            return
        counts = self._counts[recipient.name]
        counts.suppressed += 1
        budget.suppressed += 1
        if budget.suppressed == 1:
            budget.since = now
            free_at = budget.sent[0] + self.rate_per
            _log.warning(
                "notifications to %s exceed %d per %s; holding them back until %s, then sending one digest",
                recipient.name, self.rate_max, texts.span(self.rate_per, "en"), texts.local_time(free_at, self.tz))
            budget.digest = self._reactor.callLater(max(0.0, free_at - now), self._digest, recipient)

    def _expire(self, budget: _Budget, now: float) -> None:
        while budget.sent and budget.sent[0] <= now - self.rate_per:
            budget.sent.popleft()

    def _digest(self, recipient: Recipient) -> None:
        """The window has room again: send one message saying how many were held back."""
        budget = self._budgets[recipient.name]
        budget.digest = None
        count, since, budget.suppressed = budget.suppressed, budget.since, 0
        if not count or self._stopped:
            return
        now = self._reactor.seconds()
        self._expire(budget, now)
        budget.sent.append(now)
        self._counts[recipient.name].digests += 1
        line = texts.digest_text(count, self.rate_max, self.rate_per, since, now, self.tz, self.lang)
        subject = texts.digest_subject(self.site, count, self.lang)
        payload = {"site": self.site, "event": "digest", "suppressed": count, "since": iso_utc(since),
                   "ts": iso_utc(now), "text": f"{subject}. {line}"}
        message = Message("digest", "digest", recipient.name, subject, line + "\n", payload)
        _log.info("notifications to %s: sending a digest of %d held back", recipient.name, count)
        self._send_all(recipient, message)

    # -- delivery ----------------------------------------------------------

    def _soon(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn`` on the next reactor turn (outside the engine's call)."""
        def run() -> None:
            self._calls.discard(call)
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - keep the reactor's callbacks clean
                self._errors += 1
                _log.exception("notifications: sending failed to start")

        call = self._reactor.callLater(0, run)
        self._calls.add(call)

    def _send_all(self, recipient: Recipient, message: Message) -> None:
        if self._stopped:
            return
        self._counts[recipient.name].messages += 1
        for channel, address in recipient.addresses():
            self._attempt(self._senders[channel], address, message, 1)

    def _attempt(self, sender: Sender, address: str, message: Message, number: int) -> None:
        """Make attempt ``number`` of one delivery; retry or journal its outcome."""
        if self._stopped:
            return
        d = defer.maybeDeferred(sender.send, address, message)
        self._inflight.add(d)

        def settled(result: Any) -> Any:
            self._inflight.discard(d)
            return result

        def delivered(_: Any) -> None:
            self._counts[message.recipient].delivered += 1
            outcome = "delivered" if number == 1 else f"delivered after {number} attempts"
            self._record(sender.channel, message, outcome)

        def failed(failure: Any) -> None:
            if failure.check(defer.CancelledError) and self._stopped:
                return
            error = failure.value
            reason = str(error) or type(error).__name__
            retry = isinstance(error, SendError) and error.retry
            if not isinstance(error, SendError):
                _log.error("notifications: %s sender failed unexpectedly", sender.channel,
                           exc_info=(type(error), error, failure.getTracebackObject()))
            if retry and number <= len(self.backoff) and not self._stopped:
                delay = self.backoff[number - 1]
                self._counts[message.recipient].retries += 1
                _log.info("%s %s: attempt %d failed (%s); retrying in %s",
                          sender.channel, message.recipient, number, reason, texts.span(delay, "en"))

                def again() -> None:
                    self._calls.discard(call)
                    self._attempt(sender, address, message, number + 1)

                call = self._reactor.callLater(delay, again)
                self._calls.add(call)
                return
            self._counts[message.recipient].failed += 1
            _log.warning("%s %s: giving up after %d attempt(s): %s", sender.channel, message.recipient, number, reason)
            self._record(sender.channel, message, f"failed after {number} attempts: {reason}")

        d.addBoth(settled)
        d.addCallbacks(delivered, failed)
        d.addErrback(self._bug)

    def _bug(self, failure: Any) -> None:
        self._errors += 1
        _log.error("notifications: error while recording an outcome",
                   exc_info=(failure.type, failure.value, failure.getTracebackObject()))

    def _record(self, channel: str, message: Message, outcome: str) -> None:
        """Write the outcome of a delivery to the journal, if there is one."""
        if self._journal is None:
            return
        comment = f"{channel} {message.recipient}: {outcome}"
        if message.kind == "escalation":
            comment += f" [escalation level {message.level}]"
        elif message.kind == "digest":
            comment += f" [digest of {message.payload.get('suppressed')} held back]"
        entry = JournalEntry(
            ts=self._reactor.seconds(), alarm_id=message.alarm_id, event="notify", user="system",
            comment=comment, rule=message.rule, tag=message.tag, priority=message.priority,
            value=message.value, message=message.summary,
        )
        try:
            self._journal.record(entry)
        except Exception:  # noqa: BLE001 - a journal problem must not stop notifications
            self._errors += 1
            _log.exception("notifications: cannot journal %r", comment)

    # -- messages ----------------------------------------------------------

    def _event_message(self, recipient: Recipient, name: str, alarm: dict[str, Any],
                       entry: dict[str, Any]) -> Message:
        now = self._reactor.seconds()
        subject = texts.subject(self.site, name, alarm, entry, self.lang)
        text = texts.body(self.site, name, alarm, entry, self.tz, now, self.lang)
        payload = {"site": self.site, "event": name, "alarm": alarm or None, "entry": _entry_payload(entry),
                   "ts": iso_utc(entry["ts"] if isinstance(entry.get("ts"), (int, float)) else now),
                   "text": subject}
        return self._message("event", name, recipient, subject, text, payload, alarm, entry)

    def _escalation_message(self, recipient: Recipient, occurrence: _Occurrence, index: int) -> Message:
        now = self._reactor.seconds()
        alarm, entry = occurrence.alarm, occurrence.entry
        step = self.steps[index]
        subject = texts.subject(self.site, "escalation", alarm, entry, self.lang)
        text = texts.body(self.site, "escalation", alarm, entry, self.tz, now, self.lang, level=index + 1)
        payload = {"site": self.site, "event": "escalation", "level": index + 1, "after": step.after,
                   "alarm": alarm or None, "entry": _entry_payload(entry), "ts": iso_utc(now), "text": subject}
        return self._message("escalation", "escalation", recipient, subject, text, payload, alarm, entry or {},
                             level=index + 1)

    def _message(self, kind: str, name: str, recipient: Recipient, subject: str, text: str,
                 payload: dict[str, Any], alarm: dict[str, Any], entry: dict[str, Any],
                 level: int | None = None) -> Message:
        value = alarm.get("value", entry.get("value"))
        return Message(
            kind, name, recipient.name, subject, text, payload,
            alarm_id=str(alarm.get("id") or entry.get("alarm_id") or ""),
            priority=str(alarm.get("priority") or entry.get("priority") or ""),
            tag=str(alarm.get("tag") or entry.get("tag") or ""),
            rule=str(alarm.get("rule") or entry.get("rule") or ""),
            summary=texts.summary(alarm, entry),
            value=float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None,
            level=level,
        )


def _entry_json(entry: Any) -> dict[str, Any]:
    """Return a journal entry as a dict (``ts`` in Unix seconds), from its ``to_json`` or attributes."""
    to_json = getattr(entry, "to_json", None)
    if callable(to_json):
        return dict(to_json())
    names = ("id", "ts", "alarm_id", "event", "user", "comment", "state_from", "state_to", "rule", "tag",
             "priority", "value", "message")
    return {name: getattr(entry, name, None) for name in names}


def _entry_payload(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """Return the entry as the webhook shows it: ``ts`` as ISO 8601 UTC, like the API."""
    if not entry:
        return None
    out = dict(entry)
    if isinstance(out.get("ts"), (int, float)):
        out["ts"] = iso_utc(out["ts"])
    return out
