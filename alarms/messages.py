# -*- test-case-name: tests.alarms.test_messages -*-
"""Alarm message texts: a small Russian/English catalogue and the rule's own templates.

A message is rendered from a catalogue key (the alarm's kind and level,
e.g. ``limit.hi``, ``status.leak``) or from the rule's ``message``
template, with the placeholders ``{tag}``, ``{value}``, ``{limit}``,
``{level}``, ``{device}`` (and ``{rule}``, ``{first_out}``).  A template
with an unknown placeholder or a bad format keeps the unknown part as
written instead of failing: a typo in the configuration must not stop an
alarm from being shown.
"""

from __future__ import annotations

import math
import string
from typing import Any

#: Languages the catalogue has; the first is the default.
LANGUAGES = ("ru", "en")

CATALOGUE: dict[str, dict[str, str]] = {
    "ru": {
        "limit.hihi": "Аварийно высокое значение: {tag} = {value} (> {limit})",
        "limit.hi": "Превышение верхней границы: {tag} = {value} (> {limit})",
        "limit.lo": "Ниже нижней границы: {tag} = {value} (< {limit})",
        "limit.lolo": "Аварийно низкое значение: {tag} = {value} (< {limit})",
        "rate": "Слишком быстрое изменение: {tag}, {value} в секунду (> {limit})",
        "stale": "Нет новых данных: {tag} дольше {limit} с",
        "comm_loss": "Потеря связи с прибором {device}",
        "status.leak": "Протечка: {device} ({tag})",
        "status.tamper": "Вмешательство в прибор (вскрытие, магнит): {device}",
        "status.sensor_failure": "Отказ датчика: {device}",
        "status.low_battery": "Низкий заряд батареи: {device}",
        "status.permanent_error": "Неисправность прибора: {device}",
        "status.temporary_error": "Временная ошибка прибора: {device}",
        "status": "Состояние прибора {device}: {level}",
        "schedule": "Отклонение от температурного графика: {tag} = {value} (по графику {limit})",
        "verification": "Поверка прибора {device} {limit}: осталось {value} дн.",
        "verification.overdue": "Поверка прибора {device} просрочена ({limit})",
        "imbalance": "Небаланс {device}: {value} % (порог {limit} %)",
        "note.imbalance_incomplete": "полнота данных ИПУ {value} % ниже {limit} %: небаланс не оценивается",
        "flood": "Лавина тревог: {value} за {limit} мин, первая — {first_out}",
        "note.shelve_expired": "срок откладывания истёк",
        "note.shelve_expired_offline": "срок откладывания истёк, пока система была остановлена",
    },
    "en": {
        "limit.hihi": "High-high limit: {tag} = {value} (> {limit})",
        "limit.hi": "High limit exceeded: {tag} = {value} (> {limit})",
        "limit.lo": "Below low limit: {tag} = {value} (< {limit})",
        "limit.lolo": "Low-low limit: {tag} = {value} (< {limit})",
        "rate": "Changing too fast: {tag}, {value} per second (> {limit})",
        "stale": "No new data: {tag} for more than {limit} s",
        "comm_loss": "Communication lost with {device}",
        "status.leak": "Leak: {device} ({tag})",
        "status.tamper": "Tampering (opened, magnet): {device}",
        "status.sensor_failure": "Sensor failure: {device}",
        "status.low_battery": "Low battery: {device}",
        "status.permanent_error": "Meter fault: {device}",
        "status.temporary_error": "Temporary meter error: {device}",
        "status": "Status of {device}: {level}",
        "schedule": "Supply temperature off schedule: {tag} = {value} (expected {limit})",
        "verification": "Verification of {device} due {limit}: {value} days left",
        "verification.overdue": "Verification of {device} overdue (was due {limit})",
        "imbalance": "Imbalance {device}: {value} % (threshold {limit} %)",
        "note.imbalance_incomplete": "apartment meter data {value} % complete, below {limit} %: imbalance not judged",
        "flood": "Alarm flood: {value} alarms in {limit} min, first out {first_out}",
        "note.shelve_expired": "shelving time is over",
        "note.shelve_expired_offline": "shelving time ran out while the system was stopped",
    },
}


def format_value(value: Any) -> str:
    """Show a number the way a dispatcher reads it: no ``.0`` tails, at most 3 decimals."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


class _Formatter(string.Formatter):
    """Format numbers with :func:`format_value` unless the template gives a spec; keep unknown names."""

    def get_value(self, key: int | str, args: Any, kwargs: dict[str, Any]) -> Any:
        if isinstance(key, str) and key in kwargs:
            return kwargs[key]
        return _Raw("{" + str(key) + "}")

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, _Raw):
            return value
        if format_spec:
            try:
                return format(value, format_spec)
            except (ValueError, TypeError):
                pass  # "{value:.1f}" while there is no value: show it plainly
        return format_value(value)


class _Raw(str):
    """A placeholder the template named but the alarm does not have."""


_FORMATTER = _Formatter()


def render(key: str, lang: str, template: str = "", **params: Any) -> str:
    """Return the message for catalogue ``key`` in ``lang`` (or ``template`` when given).

    Numbers are formatted with :func:`format_value` unless the template
    gives a format spec (``{value:.1f}``); an unknown language falls back to
    Russian, an unknown key to the kind's generic text.
    """
    if not template:
        texts = CATALOGUE.get(lang) or CATALOGUE[LANGUAGES[0]]
        template = texts.get(key) or texts.get(key.partition(".")[0]) or key
    # The catalogue's texts and most rule templates have plain placeholders:
    # str.format_map on preformatted values does those in C.  Format specs,
    # positional fields and broken braces take the careful path.
    shown = _Keep({k: v if isinstance(v, str) else format_value(v) for k, v in params.items()})
    try:
        return template.format_map(shown)
    except (ValueError, IndexError, AttributeError, KeyError, TypeError):
        pass
    try:
        return _FORMATTER.vformat(template, (), params)
    except (ValueError, IndexError, AttributeError, KeyError, TypeError):
        # A spec that does not fit the value ("{tag:.1f}"), "{tag.x}", stray braces.
        return template


class _Keep(dict):
    """Leave an unknown ``{placeholder}`` as written."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
