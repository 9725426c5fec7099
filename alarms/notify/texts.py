# -*- test-case-name: tests.alarms.test_notify -*-
"""Texts of notifications: e-mail subjects and bodies, webhook one-liners, in Russian or English.

Everything here is a pure function of the alarm's JSON form (the dict
``Alarm.to_json()`` gives), the journal entry that triggered the
notification and the site's name and time zone, so the texts can be
tested without an engine or a reactor.  Russian is the default; an
unknown language falls back to it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from alarms.messages import format_value
from tags.timefmt import parse_iso

LANGUAGES = ("ru", "en")

_PRIORITY = {
    "ru": {"critical": "критическая", "high": "высокая", "medium": "средняя", "low": "низкая"},
    "en": {"critical": "critical", "high": "high", "medium": "medium", "low": "low"},
}

_STATE = {
    "ru": {
        "normal": "норма",
        "unack_active": "активна, не квитирована",
        "ack_active": "активна, квитирована",
        "rtn_unack": "вернулась в норму, не квитирована",
        "shelved": "отложена",
        "suppressed": "подавлена (прибор без связи)",
        "out_of_service": "выведена из работы",
    },
    "en": {
        "normal": "normal",
        "unack_active": "active, unacknowledged",
        "ack_active": "active, acknowledged",
        "rtn_unack": "returned to normal, unacknowledged",
        "shelved": "shelved",
        "suppressed": "suppressed (device in comm loss)",
        "out_of_service": "out of service",
    },
}

#: What happened, as a subject prefix; ``raise`` uses the priority instead.
_EVENT = {
    "ru": {
        "raise": "Тревога",
        "clear": "Норма",
        "ack": "Квитирована",
        "shelve": "Отложена",
        "unshelve": "Снова под наблюдением",
        "comment": "Комментарий",
        "suppress": "Подавлена",
        "unsuppress": "Подавление снято",
        "out_of_service": "Выведена из работы",
        "in_service": "Возвращена в работу",
        "flood_on": "ЛАВИНА ТРЕВОГ",
        "flood_off": "Лавина тревог закончилась",
        "escalation": "ЭСКАЛАЦИЯ",
    },
    "en": {
        "raise": "Alarm",
        "clear": "Normal",
        "ack": "Acknowledged",
        "shelve": "Shelved",
        "unshelve": "Unshelved",
        "comment": "Comment",
        "suppress": "Suppressed",
        "unsuppress": "No longer suppressed",
        "out_of_service": "Out of service",
        "in_service": "Back in service",
        "flood_on": "ALARM FLOOD",
        "flood_off": "Alarm flood over",
        "escalation": "ESCALATION",
    },
}

_LABELS = {
    "ru": {
        "alarm": "Тревога", "event": "Событие", "priority": "Приоритет", "site": "Объект",
        "time": "Время", "active_since": "Активна с", "id": "Идентификатор", "tag": "Тег",
        "device": "Прибор", "value": "Значение", "state": "Состояние", "count": "Повторений",
        "user": "Пользователь", "comment": "Комментарий", "acked_by": "Квитировал",
        "level": "Уровень эскалации", "unacked_for": "Не квитирована",
    },
    "en": {
        "alarm": "Alarm", "event": "Event", "priority": "Priority", "site": "Site",
        "time": "Time", "active_since": "Active since", "id": "Id", "tag": "Tag",
        "device": "Device", "value": "Value", "state": "State", "count": "Occurrences",
        "user": "User", "comment": "Comment", "acked_by": "Acknowledged by",
        "level": "Escalation level", "unacked_for": "Unacknowledged for",
    },
}

_ACK_HINT = {
    "ru": ("Квитировать: в диспетчерской (HMI, экран «Тревоги») или запросом "
           "POST /api/v1/alarms/{id}/ack с токеном (Authorization: Bearer …)."),
    "en": ("To acknowledge: in the HMI (Alarms screen) or with "
           "POST /api/v1/alarms/{id}/ack and a token (Authorization: Bearer …)."),
}

_FOOTER = {
    "ru": "Это сообщение отправлено автоматически системой диспетчеризации «{site}».",
    "en": "This message was sent automatically by the dispatch system of {site}.",
}

_DIGEST = {
    "ru": ("Подавлено уведомлений: {count} (лимит {max} за {per}); "
           "с {since} по {until} они не отправлялись. Актуальное состояние — в журнале тревог."),
    "en": ("Suppressed notifications: {count} (limit {max} per {per}); "
           "none were sent from {since} to {until}. See the alarm journal for the current state."),
}

_DIGEST_SUBJECT = {"ru": "Подавлено уведомлений: {count}", "en": "Suppressed {count} notifications"}

#: States in which an alarm waits for an acknowledgement.
_WAITING = ("unack_active", "rtn_unack")


def _lang(lang: str) -> str:
    return lang if lang in LANGUAGES else LANGUAGES[0]


def priority_name(priority: str, lang: str = "ru") -> str:
    """Return the priority's name in ``lang`` (lower case); unknown values as given."""
    return _PRIORITY[_lang(lang)].get(priority, priority)


def state_name(state: str, lang: str = "ru") -> str:
    """Return the alarm state's description in ``lang``; unknown values as given."""
    return _STATE[_lang(lang)].get(state, state)


def event_name(event: str, lang: str = "ru") -> str:
    """Return the event's name in ``lang``; unknown values as given."""
    return _EVENT[_lang(lang)].get(event, event)


def local_time(ts: float, tz: ZoneInfo) -> str:
    """Return Unix seconds as ``YYYY-MM-DD HH:MM:SS ZONE`` in the site's time zone."""
    moment = datetime.fromtimestamp(ts, tz)
    return f"{moment:%Y-%m-%d %H:%M:%S} {moment.tzname() or tz.key}"


def span(seconds: float, lang: str = "ru") -> str:
    """Return a duration as a dispatcher says it: ``15 мин``, ``2 ч 5 мин``, ``40 с``."""
    units = {"ru": ("ч", "мин", "с"), "en": ("h", "min", "s")}[_lang(lang)]
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(f"{hours} {units[0]}")
    if minutes:
        parts.append(f"{minutes} {units[1]}")
    if secs or not parts:
        parts.append(f"{secs} {units[2]}")
    return " ".join(parts)


def summary(alarm: dict[str, Any], entry: dict[str, Any] | None) -> str:
    """Return the alarm's one-line message (the engine's text, else its id)."""
    entry = entry or {}
    return str(alarm.get("message") or entry.get("message") or alarm.get("id") or entry.get("alarm_id") or "")


def subject(site: str, event: str, alarm: dict[str, Any], entry: dict[str, Any] | None, lang: str = "ru") -> str:
    """Return the e-mail subject, e.g. ``[Демо-УК] КРИТИЧЕСКАЯ: Протечка: kv12``.

    A raise leads with the priority in capitals; other events with their
    name, then the priority; an escalation with ``ЭСКАЛАЦИЯ``.
    """
    lang = _lang(lang)
    priority = str(alarm.get("priority") or (entry or {}).get("priority") or "")
    text = summary(alarm, entry)
    head = f"[{site}] " if site else ""
    if event == "raise" and priority:
        return f"{head}{priority_name(priority, lang).upper()}: {text}"
    label = event_name(event, lang)
    if priority and event not in ("flood_on", "flood_off"):
        label += f", {priority_name(priority, lang)}"
    return f"{head}{label}: {text}" if text else f"{head}{label}"


def body(
    site: str,
    event: str,
    alarm: dict[str, Any],
    entry: dict[str, Any] | None,
    tz: ZoneInfo,
    now: float,
    lang: str = "ru",
    level: int | None = None,
) -> str:
    """Return the plain-text body: what, where, when (site time), state and how to acknowledge.

    ``entry`` is the journal entry as JSON with ``ts`` in Unix seconds;
    ``level`` (1-based) is given for escalations.
    """
    lang = _lang(lang)
    labels = _LABELS[lang]
    entry = entry or {}
    lines: list[tuple[str, str]] = []
    lines.append((labels["alarm"], summary(alarm, entry)))
    lines.append((labels["event"], event_name(event, lang)))
    if level is not None:
        lines.append((labels["level"], str(level)))
    priority = str(alarm.get("priority") or entry.get("priority") or "")
    if priority:
        lines.append((labels["priority"], priority_name(priority, lang)))
    if site:
        lines.append((labels["site"], site))
    ts = entry.get("ts")
    lines.append((labels["time"], local_time(float(ts) if isinstance(ts, (int, float)) else now, tz)))
    since = _unix(alarm.get("active_since"))
    if since is not None:
        lines.append((labels["active_since"], local_time(since, tz)))
        if level is not None:
            lines.append((labels["unacked_for"], span(now - since, lang)))
    alarm_id = str(alarm.get("id") or entry.get("alarm_id") or "")
    if alarm_id:
        lines.append((labels["id"], alarm_id))
    tag = alarm.get("tag") or entry.get("tag")
    if tag:
        lines.append((labels["tag"], str(tag)))
    device = alarm.get("device")
    if device:
        lines.append((labels["device"], str(device)))
    value = alarm.get("value", entry.get("value"))
    if value is not None:
        lines.append((labels["value"], format_value(value)))
    state = str(alarm.get("state") or entry.get("state_to") or "")
    if state:
        lines.append((labels["state"], state_name(state, lang)))
    count = alarm.get("count")
    if isinstance(count, int) and count > 1:
        lines.append((labels["count"], str(count)))
    if alarm.get("acked_by"):
        lines.append((labels["acked_by"], str(alarm["acked_by"])))
    user = entry.get("user")
    if user and user != "system" and event not in ("raise", "clear") and user != alarm.get("acked_by"):
        lines.append((labels["user"], str(user)))
    if entry.get("comment"):
        lines.append((labels["comment"], str(entry["comment"])))
    # No column alignment: most of these are read on a phone, in a proportional font.
    text = "\n".join(f"{label}: {value}" for label, value in lines)
    if alarm_id and state in _WAITING:
        text += "\n\n" + _ACK_HINT[lang].format(id=alarm_id)
    text += "\n\n-- \n" + _FOOTER[lang].format(site=site or "SCADA")
    return text + "\n"


def digest_subject(site: str, count: int, lang: str = "ru") -> str:
    """Return the subject of a rate-limit digest."""
    head = f"[{site}] " if site else ""
    return head + _DIGEST_SUBJECT[_lang(lang)].format(count=count)


def digest_text(count: int, limit: int, per: float, since: float, until: float, tz: ZoneInfo,
                lang: str = "ru") -> str:
    """Return the one-line digest: how many notifications the rate limit held back, and when."""
    lang = _lang(lang)
    return _DIGEST[lang].format(count=count, max=limit, per=span(per, lang),
                                since=local_time(since, tz), until=local_time(until, tz))


def _unix(value: Any) -> float | None:
    """Return an ISO time (or Unix seconds) as Unix seconds; None if it is neither."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return parse_iso(value)
        except ValueError:
            return None
    return None
