# -*- test-case-name: tests.scada.reports.test_reports -*-
"""Every user-visible string of reports and billing exports, per language (``ru`` default, ``en``).

One catalogue: column headers, sheet titles, names of resources, sources,
problems and units.  Keys are the API's field names and codes, so a JSON
item and a spreadsheet row line up.  :func:`text` looks a key up and falls
back to the key itself, so a new code shows up as itself rather than
breaking an export.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

#: Languages of exports; the first is the default.
LANGUAGES = ("ru", "en")

CATALOGUE: dict[str, dict[str, str]] = {
    "ru": {
        # columns
        "account": "Лицевой счёт",
        "premises": "Помещение",
        "building": "Дом",
        "address": "Адрес",
        "meter": "Прибор учёта",
        "serial": "Заводской номер",
        "resource": "Ресурс",
        "unit": "Ед. изм.",
        "start": "Показание на начало",
        "start_ts": "Время показания на начало",
        "end": "Показание на конец",
        "end_ts": "Время показания на конец",
        "consumption": "Расход",
        "source": "Источник",
        "problem": "Причина",
        "rule": "Правило",
        "note": "Пояснение",
        "role": "Тип прибора",
        "consumption_gcal": "Расход, Гкал",
        "consumption_kwh": "Расход, кВт·ч",
        "t_supply": "Средняя температура подачи, °C",
        "t_return": "Средняя температура обратки, °C",
        "hours": "Часов в периоде",
        "hours_abnormal": "Часов нештатной работы",
        "hours_no_data": "Часов без данных",
        "hours_error": "Часов с кодом ошибки",
        "interval_start": "Начало интервала",
        "interval_end": "Конец интервала",
        "odpu": "V ОДПУ",
        "ipu_sum": "ΣV ИПУ",
        "imbalance": "Небаланс",
        "imbalance_pct": "Небаланс, %",
        "completeness": "Полнота данных ИПУ",
        "substituted": "Объём расчётный (ПП 354)",
        "ipu_meters": "Приборов ИПУ",
        "period": "Период",
        # sheet titles
        "sheet_billing": "Показания",
        "sheet_ipu": "ИПУ",
        "sheet_odpu": "ОДПУ",
        "sheet_balance": "Баланс",
        "sheet_skipped": "Не выгружено",
        # resources
        "heat": "Тепловая энергия",
        "cold_water": "Холодная вода",
        "hot_water": "Горячая вода",
        "electricity": "Электрическая энергия",
        "gas": "Газ",
        # sources
        "measured": "измерено",
        "manual": "ручной ввод",
        "backfilled": "из архива прибора",
        "calculated": "расчёт по ПП 354",
        "missing": "нет данных",
        # problems
        "no-start-reading": "нет показания на начало",
        "no-end-reading": "нет показания на конец",
        "no-readings": "нет показаний",
        "verification-expired": "истёк срок поверки",
        "decommissioned": "прибор выведен из эксплуатации",
        "negative-consumption": "показание на конец меньше показания на начало",
        # roles
        "ipu_role": "ИПУ",
        "odpu_role": "ОДПУ",
        # units
        "m3": "м³",
        "l": "л",
        "kWh": "кВт·ч",
        "Wh": "Вт·ч",
        "MWh": "МВт·ч",
        "Gcal": "Гкал",
        "GJ": "ГДж",
    },
    "en": {
        "account": "Account",
        "premises": "Premises",
        "building": "Building",
        "address": "Address",
        "meter": "Meter",
        "serial": "Serial number",
        "resource": "Resource",
        "unit": "Unit",
        "start": "Start reading",
        "start_ts": "Start reading time",
        "end": "End reading",
        "end_ts": "End reading time",
        "consumption": "Consumption",
        "source": "Source",
        "problem": "Problem",
        "rule": "Rule",
        "note": "Note",
        "role": "Meter role",
        "consumption_gcal": "Consumption, Gcal",
        "consumption_kwh": "Consumption, kWh",
        "t_supply": "Mean supply temperature, °C",
        "t_return": "Mean return temperature, °C",
        "hours": "Hours in period",
        "hours_abnormal": "Hours of abnormal operation",
        "hours_no_data": "Hours without data",
        "hours_error": "Hours with an error code",
        "interval_start": "Interval start",
        "interval_end": "Interval end",
        "odpu": "V building meter",
        "ipu_sum": "ΣV apartment meters",
        "imbalance": "Imbalance",
        "imbalance_pct": "Imbalance, %",
        "completeness": "Apartment meter data completeness",
        "substituted": "Substituted volume (ПП 354)",
        "ipu_meters": "Apartment meters",
        "period": "Period",
        "sheet_billing": "Readings",
        "sheet_ipu": "Apartment meters",
        "sheet_odpu": "Building meters",
        "sheet_balance": "Balance",
        "sheet_skipped": "Not exported",
        "heat": "Heat",
        "cold_water": "Cold water",
        "hot_water": "Hot water",
        "electricity": "Electricity",
        "gas": "Gas",
        "measured": "measured",
        "manual": "manual",
        "backfilled": "backfilled",
        "calculated": "calculated (ПП 354)",
        "missing": "missing",
        "no-start-reading": "no start reading",
        "no-end-reading": "no end reading",
        "no-readings": "no readings",
        "verification-expired": "verification expired",
        "decommissioned": "decommissioned",
        "negative-consumption": "end reading below start reading",
        "ipu_role": "apartment meter",
        "odpu_role": "building meter",
    },
}


def language(value: str | None) -> str:
    """Return ``value`` if it is a known language, else the default (``ru``)."""
    return value if value in LANGUAGES else LANGUAGES[0]


def text(key: str | None, lang: str = "ru") -> str:
    """Return the text of ``key`` in ``lang`` (the key itself if the catalogue has none; "" for None)."""
    if key is None:
        return ""
    return CATALOGUE.get(lang, CATALOGUE["ru"]).get(key, key)


def headers(keys: list[str] | tuple[str, ...], lang: str = "ru") -> list[str]:
    """Return the column headers of ``keys`` in ``lang``."""
    return [text(k, lang) for k in keys]


def moment(ts: float | None, lang: str, tz: tzinfo) -> str:
    """Return a time for a spreadsheet: ``DD.MM.YYYY HH:MM:SS`` site time in Russian, ISO 8601 UTC in English."""
    if ts is None:
        return ""
    if lang == "ru":
        return datetime.fromtimestamp(ts, tz).strftime("%d.%m.%Y %H:%M:%S")
    from tags.timefmt import iso_utc

    return iso_utc(ts)


def reading_values(item: dict, lang: str, tz: tzinfo) -> dict:
    """Return a copy of a reading item (``PeriodReading.to_json``) with its names and times in ``lang``.

    The resource, unit, source and problem as :func:`text` gives them, the
    start and end reading times as :func:`moment` does: what the ``ipu``
    and ``odpu`` report tables show.
    """
    from tags.timefmt import parse_iso

    values = dict(item)
    for key in ("resource", "unit", "source", "problem"):
        values[key] = text(item[key], lang)
    for key in ("start_ts", "end_ts"):
        values[key] = moment(parse_iso(item[key]) if item[key] else None, lang, tz)
    return values
