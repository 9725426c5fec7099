# -*- test-case-name: tests.scada.test_grafana -*-
"""Titles and descriptions of the dashboards, in Russian (the default) and English.

Resource names come from the reports' catalogue (:mod:`scada.reports.i18n`),
so a dashboard and a report call a resource the same.
"""

from __future__ import annotations

from scada.reports import i18n

#: Languages of the dashboards; the first is the default.
LANGUAGES = ("ru", "en")

TEXTS: dict[str, dict[str, str]] = {
    "ru": {
        "overview": "Обзор района",
        "overview_description": "Ключевые величины каждого здания: тепловая мощность, небаланс, наружная температура.",
        "building": "Здание {name}",
        "channel_building": "Канал {name}",
        "channels": "Состояние каналов связи",
        "channels_description": "Статистика каналов опроса, очередь архива, доля недостоверных отсчётов по приборам.",
        "to_overview": "Обзор района",
        "to_channels": "Каналы связи",
        "to_building": "Подробно: {name}",
        "power": "Тепловая мощность",
        "t_supply": "Температура подачи",
        "t_return": "Температура обратки",
        "heat_flow": "Расход теплоносителя",
        "flow": "Расход ХВС",
        "t_outdoor": "Наружная температура",
        "imbalance": "Небаланс: {resource}",
        "key_values": "Текущие значения",
        "temperatures": "Температуры",
        "flows": "Расходы",
        "power_trend": "Тепловая мощность",
        "consumption": "Потребление",
        "daily": "{resource}: расход по суткам (ОДПУ)",
        "daily_registers": "Расход по суткам, {unit}",
        "period": "{resource}: расход за период",
        "period_registers": "Расход за период, {unit}",
        "balance": "Баланс ОДПУ и Σ ИПУ",
        "balance_resource": "{resource}: ОДПУ и Σ ИПУ за окно баланса",
        "balance_pct": "Небаланс и полнота данных ИПУ, %",
        "odpu": "ОДПУ",
        "ipu_sum": "Σ ИПУ",
        "completeness": "полнота ИПУ {resource}",
        "imbalance_series": "небаланс {resource}",
        "buildings_power": "Тепловая мощность по зданиям",
        "buildings_imbalance": "Небаланс по зданиям, %",
        "outdoor": "Наружная температура",
        "link_up": "Связь с сегментом",
        "link_yes": "есть",
        "link_no": "нет",
        "utilisation": "Загрузка шины, %",
        "tx_per_s": "Транзакций в секунду",
        "timeouts": "Тайм-ауты за интервал",
        "crc_errors": "Ошибки CRC за интервал",
        "comm_loss": "Приборов без связи",
        "queue_depth": "Отставание опроса (очередь)",
        "uplinks": "Принятые пакеты (uplink) за интервал",
        "decode_errors": "Ошибки декодирования за интервал",
        "backlog": "Очередь архива (отсчётов ждут записи)",
        "channel_stats": "Каналы опроса",
        "quality": "Недостоверные отсчёты по приборам",
        "quality_channel": "{name}: недостоверные отсчёты по приборам",
        "quality_table": "{name}: доля недостоверных отсчётов за период",
        "quality_description": "Отсчёты с качеством, которое не принимают учёт и баланс "
                               "(timeout, crc_error, exception, comm_loss, decode_failed, …); "
                               "good, manual, calculated и backfilled считаются достоверными.",
        "device": "Прибор",
        "total": "Всего отсчётов",
        "bad": "Недостоверных",
        "share": "Доля недостоверных",
        "consumption_description": "Прирост показаний за сутки (местное время площадки) по отсчётам "
                                   "с качеством good, manual, calculated, backfilled.",
        "balance_description": "Расчётные величины службы баланса (каждый час за окно баланса).",
    },
    "en": {
        "overview": "District overview",
        "overview_description": "Key values of every building: heat power, imbalance, outdoor temperature.",
        "building": "Building {name}",
        "channel_building": "Channel {name}",
        "channels": "Channel health",
        "channels_description": "Polling channel statistics, history backlog, share of bad samples per meter.",
        "to_overview": "District overview",
        "to_channels": "Channel health",
        "to_building": "Details: {name}",
        "power": "Heat power",
        "t_supply": "Supply temperature",
        "t_return": "Return temperature",
        "heat_flow": "Heating flow",
        "flow": "Cold water flow",
        "t_outdoor": "Outdoor temperature",
        "imbalance": "Imbalance: {resource}",
        "key_values": "Current values",
        "temperatures": "Temperatures",
        "flows": "Flows",
        "power_trend": "Heat power",
        "consumption": "Consumption",
        "daily": "{resource}: daily consumption (building meters)",
        "daily_registers": "Daily consumption, {unit}",
        "period": "{resource}: consumption over the period",
        "period_registers": "Consumption over the period, {unit}",
        "balance": "Building meter vs Σ apartment meters",
        "balance_resource": "{resource}: building meter and Σ apartment meters per balance window",
        "balance_pct": "Imbalance and apartment data completeness, %",
        "odpu": "building meter",
        "ipu_sum": "Σ apartment meters",
        "completeness": "completeness {resource}",
        "imbalance_series": "imbalance {resource}",
        "buildings_power": "Heat power by building",
        "buildings_imbalance": "Imbalance by building, %",
        "outdoor": "Outdoor temperature",
        "link_up": "Segment link",
        "link_yes": "up",
        "link_no": "down",
        "utilisation": "Bus utilisation, %",
        "tx_per_s": "Transactions per second",
        "timeouts": "Timeouts per interval",
        "crc_errors": "CRC errors per interval",
        "comm_loss": "Meters in communication loss",
        "queue_depth": "Polls behind plan (queue)",
        "uplinks": "Uplinks per interval",
        "decode_errors": "Decode errors per interval",
        "backlog": "History backlog (samples waiting)",
        "channel_stats": "Polling channels",
        "quality": "Bad samples per meter",
        "quality_channel": "{name}: bad samples per meter",
        "quality_table": "{name}: share of bad samples over the period",
        "quality_description": "Samples whose quality billing and balance do not accept "
                               "(timeout, crc_error, exception, comm_loss, decode_failed, ...); "
                               "good, manual, calculated and backfilled count as usable.",
        "device": "Meter",
        "total": "Samples",
        "bad": "Bad",
        "share": "Bad share",
        "consumption_description": "Growth of the register per day (site local time) from samples "
                                   "of quality good, manual, calculated, backfilled.",
        "balance_description": "Figures of the balance service (hourly, over the balance window).",
    },
}


def text(key: str, lang: str, **values: str) -> str:
    """Return the text of ``key`` in ``lang`` with ``values`` filled in."""
    return TEXTS[lang][key].format(**values)


def resource(name: str, lang: str) -> str:
    """Return a resource's name (``cold_water`` -> «Холодная вода»)."""
    return i18n.text(name, lang)
