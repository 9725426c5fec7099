"""Tests for alarms.notify: routing, escalation, rate limit, retries and journal, on a task.Clock.

No network: senders are fakes that record what they were asked to send
and answer from a script.  The engine is a small fake with the real
engine's API (``subscribe``, ``get`` → object with ``state`` and
``to_json()``).  Times are Monday 2026-11-23 in Europe/Moscow (UTC+3).
"""

from __future__ import annotations

import email
import email.policy
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError
from twisted.internet import defer
from twisted.internet.task import Clock

from alarms.model import JournalEntry, MemoryJournal, State
from alarms.notify import texts
from alarms.notify.dispatcher import EscalationStep, Message, Notifier, Recipient, SendError
from alarms.notify.email import build_message
from alarms.schedule import parse_window
from scada.config.notify import NotificationsConfig
from tags.timefmt import iso_utc

TZ = "Europe/Moscow"
SITE = "Демо-УК"
MONDAY_10 = 1795417200.0  # 2026-11-23 10:00 MSK (07:00 UTC), a Monday
HOUR = 3600.0
ALARM = "hi:heat1.t_supply:hihi"


class FakeAlarm:
    """What engine.get returns: ``state`` and ``to_json()``."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    @property
    def state(self) -> State:
        return State(self._data["state"])

    def to_json(self) -> dict[str, Any]:
        return dict(self._data)


class FakeEngine:
    """The engine's subscriber API, driven by the test."""

    def __init__(self) -> None:
        self.callbacks: list[Any] = []
        self.alarms: dict[str, dict[str, Any]] = {}

    def subscribe(self, callback: Any) -> None:
        self.callbacks.append(callback)

    def get(self, alarm_id: str) -> FakeAlarm:
        return FakeAlarm(self.alarms[alarm_id])

    def emit(self, event: str, ts: float, state_to: str, alarm_id: str = ALARM, priority: str = "critical",
             user: str = "system", comment: str = "", value: float | None = 97.5) -> None:
        alarm = self.alarms.setdefault(alarm_id, {
            "id": alarm_id, "rule": alarm_id.split(":")[0], "tag": "heat1.t_supply", "device": "heat1",
            "priority": priority, "state": "normal", "active_since": None, "value": value,
            "message": f"Аварийно высокое значение: {alarm_id}", "acked_by": None, "count": 0,
        })
        state_from = alarm["state"]
        alarm["state"] = state_to
        alarm["priority"] = priority
        if event == "raise":
            alarm["count"] += 1
            alarm["active_since"] = iso_utc(ts)
        if event == "ack":
            alarm["acked_by"] = user
        entry = JournalEntry(ts=ts, alarm_id=alarm_id, event=event, user=user, comment=comment,
                             state_from=state_from, state_to=state_to, rule=alarm["rule"], tag=alarm["tag"],
                             priority=priority, value=value, message=alarm["message"])
        for callback in self.callbacks:
            callback(SimpleNamespace(entry=entry, alarm=dict(alarm)))

    def flood(self, ts: float, event: str = "flood_on") -> None:
        """The flood alarm, as the engine has it: ``flood:site``, priority high."""
        self.emit(event, ts, "unack_active" if event == "flood_on" else "rtn_unack", alarm_id="flood:site",
                  priority="high", value=14)


class FakeSender:
    """A channel that records each attempt and answers from ``script`` (None: delivered)."""

    def __init__(self, channel: str, clock: Clock) -> None:
        self.channel = channel
        self.clock = clock
        self.sent: list[tuple[float, str, Message]] = []
        self.script: list[Any] = []

    def send(self, address: str, message: Message) -> defer.Deferred[None]:
        self.sent.append((self.clock.seconds(), address, message))
        outcome = self.script.pop(0) if self.script else None
        if isinstance(outcome, BaseException):
            return defer.fail(outcome)
        if isinstance(outcome, defer.Deferred):
            return outcome
        return defer.succeed(None)

    def to(self, address: str) -> list[Message]:
        return [m for _, a, m in self.sent if a == address]


class Setup:
    """A notifier on a Clock at Monday 10:00 MSK, with fake senders, engine and journal."""

    def __init__(self, recipients: list[Recipient], escalation: tuple[EscalationStep, ...] = (),
                 start: float = MONDAY_10, **kwargs: Any) -> None:
        self.clock = Clock()
        self.clock.advance(start)
        self.webhook = FakeSender("webhook", self.clock)
        self.email = FakeSender("email", self.clock)
        self.journal = MemoryJournal()
        self.engine = FakeEngine()
        self.notifier = Notifier(self.clock, recipients, {"webhook": self.webhook, "email": self.email},
                                 site=SITE, tz=TZ, escalation=escalation, journal=self.journal, **kwargs)
        self.notifier.attach(self.engine)

    def run(self, seconds: float = 0.0) -> None:
        """Advance the clock in small steps so timers scheduled meanwhile run in order."""
        self.clock.advance(0)
        end = self.clock.seconds() + seconds
        while self.clock.seconds() < end:
            self.clock.advance(min(1.0, end - self.clock.seconds()))
        self.clock.advance(0)

    @property
    def now(self) -> float:
        return self.clock.seconds()


def window(text: str) -> Any:
    return parse_window(text, TZ)


def standard() -> list[Recipient]:
    return [
        Recipient("dispatch", webhook="http://hooks.test/scada", priorities=frozenset({"high", "critical"}),
                  events=frozenset({"raise", "clear", "ack", "flood_on"}), on_call=window("mon-sun(00-24)")),
        Recipient("chief", email="chief@example.org", on_call=window("mon-fri(08-17)")),
        Recipient("night", email="night@example.org", on_call=window("mon-sun(17-08)")),
    ]


# -- routing -------------------------------------------------------------------


def test_routing_by_priority_event_and_on_call() -> None:
    """Each recipient gets what its priorities, events and on-call window select, once, asynchronously."""
    s = Setup(standard())
    s.engine.emit("raise", s.now, "unack_active", priority="critical")
    assert s.webhook.sent == [] and s.email.sent == []  # nothing inside the engine's call
    s.run()
    assert [m.event for m in s.webhook.to("http://hooks.test/scada")] == ["raise"]
    assert [m.event for m in s.email.to("chief@example.org")] == ["raise"]
    assert s.email.to("night@example.org") == []  # not on call at 10:00

    s.engine.emit("raise", s.now, "unack_active", alarm_id="stale:kv1.v", priority="low")
    s.run()
    assert len(s.webhook.sent) == 1  # dispatch takes high and critical only
    assert [m.alarm_id for m in s.email.to("chief@example.org")] == [ALARM, "stale:kv1.v"]

    s.engine.emit("clear", s.now, "rtn_unack")
    s.run()
    assert [m.event for m in s.webhook.to("http://hooks.test/scada")] == ["raise", "clear"]
    assert len(s.email.to("chief@example.org")) == 2  # chief did not ask for clear

    s.engine.flood(s.now)
    s.run()
    assert s.webhook.sent[-1][2].event == "flood_on"
    assert s.email.to("chief@example.org")[-1].event == "flood_on"
    assert s.email.to("chief@example.org")[-1].subject.startswith(f"[{SITE}] ЛАВИНА ТРЕВОГ: ")

    s.run(8 * HOUR)  # 18:00: the night shift is on call, the chief is not
    s.engine.emit("raise", s.now, "unack_active", alarm_id="leak:kv12", priority="high")
    s.run()
    assert [m.alarm_id for m in s.email.to("night@example.org")] == ["leak:kv12"]
    assert len(s.email.to("chief@example.org")) == 3


def test_flood_events_ignore_the_priority_filter() -> None:
    """A recipient of critical alarms only still hears of a flood (a high-priority site alarm) it subscribed to."""
    s = Setup([Recipient("boss", email="boss@example.org", priorities=frozenset({"critical"}),
                         events=frozenset({"raise", "flood_on", "flood_off"}))])
    s.engine.emit("raise", s.now, "unack_active", alarm_id="x", priority="high")
    s.engine.flood(s.now)
    s.engine.flood(s.now + 1, "flood_off")
    s.run()
    assert [m.event for m in s.email.to("boss@example.org")] == ["flood_on", "flood_off"]


def test_hidden_raises_and_own_notify_entries_are_not_routed() -> None:
    """A raise while shelved is tracked but not annunciated; ``notify`` entries are ignored."""
    s = Setup(standard())
    s.engine.emit("raise", s.now, "shelved")
    s.engine.emit("notify", s.now, "unack_active")
    s.run()
    assert s.webhook.sent == [] and s.email.sent == []


def test_webhook_payload_and_russian_email_texts() -> None:
    """The webhook JSON has site, event, alarm, entry, ts; the e-mail is Russian with the ack hint."""
    s = Setup(standard())
    s.engine.emit("raise", s.now, "unack_active")
    s.run()
    message = s.webhook.sent[0][2]
    payload = message.payload
    assert payload["site"] == SITE and payload["event"] == "raise"
    assert payload["alarm"]["id"] == ALARM and payload["alarm"]["state"] == "unack_active"
    assert payload["entry"]["event"] == "raise" and payload["entry"]["alarm_id"] == ALARM
    assert payload["ts"] == "2026-11-23T07:00:00.000Z" and payload["entry"]["ts"] == payload["ts"]
    mail = s.email.to("chief@example.org")[0]
    assert mail.subject == f"[{SITE}] КРИТИЧЕСКАЯ: Аварийно высокое значение: {ALARM}"
    for piece in (f"Идентификатор: {ALARM}", "Тег:", "heat1.t_supply", "Значение:", "97.5",
                  "2026-11-23 10:00:00 MSK", "активна, не квитирована", "Приоритет:", "критическая",
                  f"POST /api/v1/alarms/{ALARM}/ack"):
        assert piece in mail.text, piece


def test_english_texts() -> None:
    """With lang en the subject and body are English."""
    s = Setup(standard(), lang="en")
    s.engine.emit("raise", s.now, "unack_active", priority="high")
    s.run()
    mail = s.email.to("chief@example.org")[0]
    assert mail.subject.startswith(f"[{SITE}] HIGH: ")
    assert "State:" in mail.text and "active, unacknowledged" in mail.text and "To acknowledge" in mail.text


def test_subject_and_body_of_other_events() -> None:
    """Events other than raise name themselves; an ack shows who and why, without the ack hint."""
    alarm = {"id": "a", "priority": "high", "state": "ack_active", "message": "Протечка: kv12", "acked_by": "ivanov"}
    entry = {"ts": MONDAY_10, "event": "ack", "user": "ivanov", "comment": "бригада выехала"}
    assert texts.subject("УК", "ack", alarm, entry) == "[УК] Квитирована, высокая: Протечка: kv12"
    body = texts.body("УК", "ack", alarm, entry, parse_window("always", TZ).tz, MONDAY_10)
    assert "Квитировал: ivanov" in body and "Комментарий: бригада выехала" in body and "/ack" not in body
    assert texts.subject("УК", "flood_on", {}, {"message": "Лавина тревог: 14"}) == "[УК] ЛАВИНА ТРЕВОГ: Лавина тревог: 14"
    assert texts.span(2 * HOUR + 300) == "2 ч 5 мин" and texts.span(40, "en") == "40 s"


# -- escalation ----------------------------------------------------------------


def escalation_setup(**kwargs: Any) -> Setup:
    recipients = standard() + [Recipient("director", email="director@example.org")]
    steps = (EscalationStep("critical", 15 * 60, ("chief",)), EscalationStep("critical", HOUR, ("director",)))
    return Setup(recipients, steps, **kwargs)


def escalations(s: Setup, address: str) -> list[Message]:
    return [m for m in s.email.to(address) if m.kind == "escalation"]


def test_escalation_fires_after_its_delay_once_per_level() -> None:
    """Level 1 goes to the chief 15 min after the raise, level 2 to the director after an hour, once each."""
    s = escalation_setup()
    s.engine.emit("raise", s.now, "unack_active")
    s.run(15 * 60 - 1)
    assert escalations(s, "chief@example.org") == []
    s.run(1)
    [first] = escalations(s, "chief@example.org")
    assert first.level == 1 and first.payload["event"] == "escalation" and first.payload["level"] == 1
    assert first.subject.startswith(f"[{SITE}] ЭСКАЛАЦИЯ, критическая: ")
    assert "Не квитирована: 15 мин" in first.text
    s.run(HOUR)
    assert len(escalations(s, "chief@example.org")) == 1
    assert [m.level for m in escalations(s, "director@example.org")] == [2]
    assert s.notifier.pending_escalations(ALARM) == []


def test_escalation_cancelled_by_ack() -> None:
    """An acknowledgement cancels the pending escalation timers."""
    s = escalation_setup()
    s.engine.emit("raise", s.now, "unack_active")
    s.run(10 * 60)
    assert s.notifier.pending_escalations(ALARM) == [0, 1]
    s.engine.emit("ack", s.now, "ack_active", user="ivanov")
    assert s.notifier.pending_escalations(ALARM) == []
    s.run(2 * HOUR)
    assert escalations(s, "chief@example.org") == [] and escalations(s, "director@example.org") == []
    assert s.clock.getDelayedCalls() == []


def test_escalation_cancelled_by_return_to_normal_and_restarted_by_a_new_raise() -> None:
    """Clear cancels; the next raise is a new occurrence whose levels fire again."""
    s = escalation_setup()
    s.engine.emit("raise", s.now, "unack_active")
    s.run(20 * 60)
    assert len(escalations(s, "chief@example.org")) == 1
    s.engine.emit("clear", s.now, "rtn_unack")
    s.run(2 * HOUR)
    assert escalations(s, "director@example.org") == []
    s.engine.emit("raise", s.now, "unack_active")
    s.run(15 * 60)
    assert len(escalations(s, "chief@example.org")) == 2


def test_escalation_paused_by_shelve_and_rearmed_by_unshelve() -> None:
    """Shelving cancels the timers; unshelving a still active alarm re-arms the levels not yet sent."""
    s = escalation_setup()
    s.engine.emit("raise", s.now, "unack_active")
    s.run(20 * 60)  # level 1 sent
    s.engine.emit("shelve", s.now, "shelved", user="ivanov")
    s.run(2 * HOUR)
    assert escalations(s, "director@example.org") == []
    s.engine.emit("unshelve", s.now, "unack_active", user="auto")
    assert s.notifier.pending_escalations(ALARM) == [1]  # level 1 already fired this occurrence
    s.run(HOUR)
    assert len(escalations(s, "chief@example.org")) == 1
    assert len(escalations(s, "director@example.org")) == 1


def test_escalation_checks_the_engine_state_before_sending() -> None:
    """An alarm acknowledged without the notifier hearing of it is not escalated."""
    s = escalation_setup()
    s.engine.emit("raise", s.now, "unack_active")
    s.engine.alarms[ALARM]["state"] = "ack_active"
    s.run(2 * HOUR)
    assert escalations(s, "chief@example.org") == [] and escalations(s, "director@example.org") == []


def test_escalation_only_for_its_priority_or_higher() -> None:
    """A high alarm is not escalated by critical steps; a high step escalates critical alarms too."""
    s = escalation_setup()
    s.engine.emit("raise", s.now, "unack_active", priority="high")
    s.run(2 * HOUR)
    assert escalations(s, "chief@example.org") == []
    s2 = Setup(standard(), (EscalationStep("high", 60, ("chief",)),))
    s2.engine.emit("raise", s2.now, "unack_active", priority="critical")
    s2.run(60)
    assert len(escalations(s2, "chief@example.org")) == 1


def test_escalation_waits_for_the_on_call_start() -> None:
    """Due at 07:50 while the chief is on call from 08:00: sent at 08:00 (hand-over), not before."""
    s = Setup(standard(), (EscalationStep("critical", 15 * 60, ("chief",)),),
              start=MONDAY_10 - 2 * HOUR - 25 * 60)  # 07:35 MSK
    s.engine.emit("raise", s.now, "unack_active")
    s.run(15 * 60)  # 07:50
    assert escalations(s, "chief@example.org") == []
    assert s.notifier.pending_escalations(ALARM) == [0]
    s.run(10 * 60 - 1)  # 07:59:59
    assert escalations(s, "chief@example.org") == []
    s.run(1)  # 08:00
    [sent] = escalations(s, "chief@example.org")
    assert sent.level == 1 and s.email.sent[-1][0] == MONDAY_10 - 2 * HOUR
    assert "Не квитирована: 25 мин" in sent.text


def test_escalation_hands_over_to_the_next_level_when_nobody_is_on_call() -> None:
    """Nobody of level 1 on call: level 2's recipients get it now, and level 2 does not fire again."""
    s = escalation_setup(start=MONDAY_10 + 8 * HOUR)  # 18:00, the chief is off
    s.engine.emit("raise", s.now, "unack_active")
    s.run(15 * 60)
    assert escalations(s, "chief@example.org") == []
    [sent] = escalations(s, "director@example.org")
    assert sent.level == 2
    s.run(3 * HOUR)
    assert len(escalations(s, "director@example.org")) == 1
    assert escalations(s, "chief@example.org") == []


# -- rate limit ------------------------------------------------------------------


def test_rate_limit_counts_the_excess_and_sends_one_digest(caplog: pytest.LogCaptureFixture) -> None:
    """Over 3 per 10 min: the rest is counted, logged once, and summed up when the window frees."""
    s = Setup([Recipient("dispatch", webhook="http://hooks.test/scada")], rate_max=3, rate_per=600)
    with caplog.at_level(logging.WARNING, logger="alarms.notify.dispatcher"):
        for i in range(7):
            s.engine.emit("raise", s.now, "unack_active", alarm_id=f"a{i}")
            s.run(10)
    assert [m.alarm_id for _, _, m in s.webhook.sent] == ["a0", "a1", "a2"]
    assert sum("exceed 3 per 10 min" in r.getMessage() for r in caplog.records) == 1
    assert s.notifier.stats()["recipients"]["dispatch"]["suppressed"] == 4
    s.run(600 - 70 - 1)  # the first message was at 0 s: the window frees at 600 s
    assert len(s.webhook.sent) == 3
    s.run(1)
    digest = s.webhook.sent[-1][2]
    assert digest.kind == "digest" and digest.payload["suppressed"] == 4
    assert digest.payload["event"] == "digest" and "Подавлено уведомлений: 4" in digest.payload["text"]
    assert s.journal.entries[-1].comment == "webhook dispatch: delivered [digest of 4 held back]"
    # The window moved on: a new alarm fits again.
    s.run(20)
    s.engine.emit("raise", s.now, "unack_active", alarm_id="late")
    s.run()
    assert s.webhook.sent[-1][2].alarm_id == "late"


def test_rate_limit_is_per_recipient() -> None:
    """One recipient over its limit does not hold back another."""
    s = Setup([Recipient("a", webhook="http://a.test/"), Recipient("b", webhook="http://b.test/")],
              rate_max=2, rate_per=600)
    for i in range(3):
        s.engine.emit("raise", s.now, "unack_active", alarm_id=f"x{i}")
    s.run()
    assert len(s.webhook.to("http://a.test/")) == 2 and len(s.webhook.to("http://b.test/")) == 2


# -- retries and journal -----------------------------------------------------------


def test_retries_follow_the_back_off_and_journal_the_outcome() -> None:
    """Retryable failures are retried after 5, 30 and 120 s; success is journalled with the attempt count."""
    s = Setup([Recipient("dispatch", webhook="http://hooks.test/scada")])
    s.webhook.script = [SendError("HTTP 503"), SendError("cannot reach"), SendError("HTTP 502"), None]
    s.engine.emit("raise", s.now, "unack_active")
    s.run(200)
    assert [t - MONDAY_10 for t, _, _ in s.webhook.sent] == [0, 5, 35, 155]
    [entry] = s.journal.entries
    assert entry.event == "notify" and entry.user == "system" and entry.alarm_id == ALARM
    assert entry.comment == "webhook dispatch: delivered after 4 attempts"
    assert entry.priority == "critical" and entry.tag == "heat1.t_supply"


def test_gives_up_after_the_last_retry() -> None:
    """Four failed attempts: one journal line saying so, with the last reason."""
    s = Setup([Recipient("dispatch", webhook="http://hooks.test/scada")])
    s.webhook.script = [SendError("HTTP 503: busy")] * 4
    s.engine.emit("raise", s.now, "unack_active")
    s.run(1000)
    assert len(s.webhook.sent) == 4
    assert [e.comment for e in s.journal.entries] == ["webhook dispatch: failed after 4 attempts: HTTP 503: busy"]
    assert s.notifier.stats()["recipients"]["dispatch"]["failed"] == 1


def test_no_retry_for_a_refusal_or_an_unexpected_error() -> None:
    """A 4xx (retry=False) and a bug in a sender are not retried."""
    s = Setup([Recipient("dispatch", webhook="http://hooks.test/scada", email="d@example.org")])
    s.webhook.script = [SendError("HTTP 404: not found", retry=False)]
    s.email.script = [RuntimeError("boom")]
    s.engine.emit("raise", s.now, "unack_active")
    s.run(1000)
    assert len(s.webhook.sent) == 1 and len(s.email.sent) == 1
    assert sorted(e.comment for e in s.journal.entries) == [
        "email dispatch: failed after 1 attempts: boom",
        "webhook dispatch: failed after 1 attempts: HTTP 404: not found",
    ]


def test_first_time_delivery_is_journalled_per_channel() -> None:
    """Both channels of a recipient get a journal line; escalations say their level."""
    recipients = [Recipient("chief", webhook="http://hooks.test/chief", email="chief@example.org")]
    s = Setup(recipients, (EscalationStep("high", 60, ("chief",)),))
    s.engine.emit("raise", s.now, "unack_active", priority="high")
    s.run(60)
    assert [e.comment for e in s.journal.entries] == [
        "webhook chief: delivered", "email chief: delivered",
        "webhook chief: delivered [escalation level 1]", "email chief: delivered [escalation level 1]",
    ]


# -- robustness --------------------------------------------------------------------


def test_never_raises_into_the_engine() -> None:
    """A malformed event, a sender that raises, a broken journal: the engine's call returns normally."""

    class BrokenJournal:
        def record(self, entry: JournalEntry) -> None:
            raise OSError("disk full")

    s = Setup([Recipient("dispatch", webhook="http://hooks.test/scada")])
    s.notifier._journal = BrokenJournal()
    s.notifier.on_event(object())  # no entry at all
    s.webhook.send = lambda address, message: 1 / 0  # type: ignore[method-assign]
    s.engine.emit("raise", s.now, "unack_active")
    s.run(1000)
    assert s.notifier.stats()["errors"] >= 2


def test_stop_cancels_every_timer() -> None:
    """After stop() nothing is left on the clock: escalations, digests, retries."""
    s = escalation_setup(rate_max=1, rate_per=600)
    s.webhook.script = [SendError("HTTP 503")]
    s.engine.emit("raise", s.now, "unack_active")
    s.engine.emit("raise", s.now, "unack_active", alarm_id="other")
    s.run(1)
    assert s.clock.getDelayedCalls()
    s.notifier.stop()
    assert s.clock.getDelayedCalls() == []
    s.engine.emit("raise", s.now, "unack_active", alarm_id="after")
    assert s.clock.getDelayedCalls() == []


def test_construction_errors() -> None:
    """Unknown escalation targets, duplicates and a channel without a sender are refused."""
    clock = Clock()
    with pytest.raises(ValueError, match="unknown recipient"):
        Notifier(clock, [Recipient("a", webhook="http://a/")], {"webhook": object()},
                 escalation=[EscalationStep("high", 60, ("b",))])
    with pytest.raises(ValueError, match="duplicate"):
        Notifier(clock, [Recipient("a", webhook="http://a/")] * 2, {"webhook": object()})
    with pytest.raises(ValueError, match="no email sender"):
        Notifier(clock, [Recipient("a", email="a@b.ru")], {})


# -- configuration and building -------------------------------------------------------

CONTRACT = {
    "lang": "ru",
    "smtp": {"host": "127.0.0.1", "port": 25, "from": "scada@example.org", "username": None, "password": None,
             "starttls": False, "timeout": "30s"},
    "rate_limit": {"max": 20, "per": "10m"},
    "recipients": [
        {"name": "dispatch", "webhook": "http://hooks.example.org/scada", "priorities": ["high", "critical"],
         "on_call": "mon-sun(00-24)", "events": ["raise", "clear", "ack", "flood_on"]},
        {"name": "chief", "email": "chief@example.org", "on_call": "mon-fri(08-17)"},
    ],
    "escalation": [{"priority": "critical", "after": "15m", "to": ["chief"]}],
}


def test_config_contract_parses() -> None:
    """The documented section parses with its defaults."""
    cfg = NotificationsConfig.model_validate(CONTRACT)
    assert cfg.smtp is not None and cfg.smtp.from_ == "scada@example.org" and cfg.smtp.timeout == 30
    assert cfg.rate_limit.per == 600 and cfg.escalation[0].after == 900
    chief = cfg.recipients[1]
    assert chief.events == ["raise", "flood_on"] and chief.priorities == ["low", "medium", "high", "critical"]
    assert cfg.retry_backoff == [5, 30, 120]
    assert NotificationsConfig().recipients == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"escalation": [{"priority": "critical", "after": "15m", "to": ["chif"]}]},
         "unknown recipient 'chif' (did you mean 'chief'?)"),
        ({"recipients": [{"name": "x", "on_call": "mon-fry(08-17)"}]}, "'fry' is not a day"),
        ({"recipients": [{"name": "x"}]}, "has neither 'webhook' nor 'email'"),
        ({"smtp": None}, "have 'email' but there is no 'smtp:' section"),
        ({"recipients": [{"name": "x", "webhook": "ftp://x"}]}, "is not an http(s) URL"),
        ({"recipients": [{"name": "x", "email": "not-an-address"}]}, "is not an e-mail address"),
        ({"recipients": [{"name": "x", "email": "a@b.ru"}, {"name": "x", "email": "c@b.ru"}]},
         "duplicate recipient name 'x'"),
        ({"smtp": {"from": "a@b.ru", "username": "u"}}, "username is set but password is not"),
        ({"rate_limit": {"max": 0}}, "greater than or equal to 1"),
    ],
)
def test_config_errors_name_the_problem(change: dict[str, Any], expected: str) -> None:
    """Each bad section is refused with a message naming the bad value."""
    raw = {**CONTRACT, **change}
    with pytest.raises(ValidationError) as info:
        NotificationsConfig.model_validate(raw)
    messages = [str(e.get("ctx", {}).get("error", e["msg"])) for e in info.value.errors()]
    assert any(expected in m for m in messages), messages


def test_site_config_has_the_section() -> None:
    """SiteConfig carries notifications, empty by default."""
    from scada.config.model import SiteConfig

    site = SiteConfig.model_validate({"site": {"name": SITE}, "notifications": CONTRACT})
    assert site.notifications.recipients[0].name == "dispatch"
    assert SiteConfig.model_validate({"site": {"name": SITE}}).notifications.recipients == []


def test_build_notifier_wires_config_engine_and_journal() -> None:
    """build_notifier subscribes to the engine, uses the site zone for windows and texts."""
    from scada.config.model import SiteConfig
    from scada.notify_build import build_notifier

    site = SiteConfig.model_validate({"site": {"name": SITE, "timezone": TZ}, "notifications": CONTRACT})
    clock = Clock()
    clock.advance(MONDAY_10 + 8 * HOUR)  # 18:00 MSK: the chief (08-17 site time) is off
    engine, journal = FakeEngine(), MemoryJournal()
    notifier = build_notifier(site, clock, engine, journal)
    assert engine.callbacks == [notifier.on_event]
    assert notifier.site == SITE and notifier.tz.key == TZ and notifier.rate_max == 20
    assert not notifier.recipients["chief"].on_call_at(clock.seconds())
    assert notifier.recipients["chief"].on_call_at(MONDAY_10)
    assert [s.to for s in notifier.steps] == [("chief",)]
    assert build_notifier(site, clock, None).recipients.keys() == {"dispatch", "chief"}


def test_build_notifier_refuses_https_without_tls_extras() -> None:
    """An https webhook without pyOpenSSL fails at start-up with the fix in the message."""
    try:
        import OpenSSL  # noqa: F401
        import service_identity  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("Twisted's TLS extras are installed")
    from scada.notify_build import build_notifier

    cfg = NotificationsConfig.model_validate({"recipients": [{"name": "x", "webhook": "https://h.test/"}]})
    with pytest.raises(RuntimeError, match=r"twisted\[tls\]"):
        build_notifier(cfg, Clock(), None)


def test_email_message_is_utf8() -> None:
    """The stdlib builds a message whose Russian subject and body decode back unchanged."""
    raw = build_message("scada@example.org", "chief@example.org", f"[{SITE}] КРИТИЧЕСКАЯ: Протечка",
                        "Тревога: Протечка\nЗначение: 1\n", MONDAY_10, site=SITE)
    assert b"\r\n" not in raw  # Twisted's client turns \n into CRLF itself
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == f"[{SITE}] КРИТИЧЕСКАЯ: Протечка"
    assert parsed["To"] == "chief@example.org" and parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["From"].addresses[0].display_name == SITE
    assert parsed.get_content() == "Тревога: Протечка\nЗначение: 1\n"
    assert parsed["Date"].datetime.timestamp() == MONDAY_10


# -- the webhook sender against a fake HTTP client -------------------------------------


class FakeResponse:
    """Enough of IResponse for readBody: a code and a body delivered at once."""

    def __init__(self, code: int, body: bytes = b"") -> None:
        self.code = code
        self.body = body
        self.phrase = b"Whatever"
        self.headers = None
        self.length = len(body)

    def deliverBody(self, protocol: Any) -> None:  # noqa: N802 - Twisted interface
        from twisted.python.failure import Failure
        from twisted.web.client import ResponseDone

        protocol.dataReceived(self.body)
        protocol.connectionLost(Failure(ResponseDone()))


class FakeAgent:
    """Answers each request from a script: a response, an exception, or a Deferred that never fires."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[bytes, bytes, Any, Any]] = []

    def request(self, method: bytes, uri: bytes, headers: Any, body: Any) -> defer.Deferred[Any]:
        self.requests.append((method, uri, headers, body))
        answer = self.answers.pop(0)
        if isinstance(answer, defer.Deferred):
            return answer
        if isinstance(answer, BaseException):
            return defer.fail(answer)
        return defer.succeed(answer)


def outcome(d: defer.Deferred[Any]) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the Deferred has not fired"
    return results[0]


def test_webhook_sender_classifies_answers() -> None:
    """2xx delivers; 5xx/429 and connection errors are retryable; 4xx and redirects are not."""
    from twisted.internet import error

    from alarms.notify.webhook import WebhookSender

    message = Message("event", "raise", "d", "s", "t", {"site": SITE, "event": "raise"})
    cases = [
        (FakeResponse(204), None),
        (FakeResponse(503, b"busy"), (True, "HTTP 503: busy")),
        (FakeResponse(429), (True, "HTTP 429")),
        (FakeResponse(404, b"no such hook"), (False, "HTTP 404: no such hook")),
        (FakeResponse(302), (False, "redirects are not followed")),
        (error.ConnectionRefusedError(), (True, "cannot reach http://h.test/x")),
    ]
    for answer, expected in cases:
        agent = FakeAgent(answer)
        sender = WebhookSender(Clock(), timeout=5, agent=agent)
        result = outcome(sender.send("http://h.test/x?token=secret", message))
        if expected is None:
            assert result is None
        else:
            assert result.check(SendError), result
            assert result.value.retry is expected[0] and expected[1] in str(result.value)
            assert "secret" not in str(result.value)
        method, uri, headers, body = agent.requests[0]
        assert method == b"POST" and uri == b"http://h.test/x?token=secret"
        assert headers.getRawHeaders(b"content-type") == [b"application/json; charset=utf-8"]
        assert "Демо-УК".encode() in body._data


def test_webhook_sender_times_out_on_its_reactor() -> None:
    """No answer within the timeout: a retryable SendError when the Clock passes it."""
    from alarms.notify.webhook import WebhookSender

    clock = Clock()
    sender = WebhookSender(clock, timeout=5, agent=FakeAgent(defer.Deferred()))
    d = sender.send("http://h.test/", Message("event", "raise", "d", "s", "t", {}))
    results: list[Any] = []
    d.addBoth(results.append)
    clock.advance(4.9)
    assert results == []
    clock.advance(0.1)
    assert results[0].check(SendError) and "no answer within 5 s" in str(results[0].value)
    assert results[0].value.retry
