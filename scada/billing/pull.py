# -*- test-case-name: tests.scada.billing.test_pull -*-
"""The billing pull: every account's apartment meters for a period, page by page, and its exports.

**Order and cursor.**  Items are ordered by ``(account, meter id)``: the
account is what billing keys on, the meter id breaks ties between an
account's meters (cold and hot water, electricity).  The cursor is the key
of the last item *examined*, as base64url JSON ``{"p": period, "a":
account, "m": meter}`` without padding: opaque to clients, bound to its
period (a cursor of another period is refused), and stable under registry
changes between pages (keyset pagination: an account added or removed
meanwhile cannot make another one appear twice or go missing).  A page
computes readings only for its own meters (two historian queries per
page, plus the history of those that need ПП 354), so a pull of 100,000
accounts costs the same per page as one of 100.

**Which meters.**  Apartment meters (ИПУ) whose premises has an account,
that belong to the period (`PeriodReader.in_period`: installed before the
period ends; a decommissioned one while no other meter of its premises
and resource took over).  Building meters (ОДПУ) have no account; they are
in the ``odpu`` report.

**Exports** (``format=csv|xlsx|gis``) cover the whole period (or one
building) in the same order, without cursor: CSV is streamed page by page,
XLSX is built at the end (openpyxl) and so holds at most
:data:`MAX_XLSX_ROWS` rows.
"""

from __future__ import annotations

import base64
import binascii
import json
import weakref
from bisect import bisect_right
from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo
from typing import Any

from scada.billing.readings import PeriodReader, PeriodReading
from scada.registry import Meter, Registry
from scada.reports import i18n

#: Items per page when ``limit`` is not given, and the most a page may hold.
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
#: Rows an XLSX export (``format=xlsx|gis``) may hold; beyond, export one building at a time or use CSV.
MAX_XLSX_ROWS = 50_000
#: Meters computed at once while an export walks the period.
EXPORT_CHUNK = 1000
#: Longest cursor accepted (a real one is well under 200 characters).
MAX_CURSOR = 1000

#: Columns of the JSON item that the CSV and XLSX exports carry, in order.
COLUMNS = ("account", "premises", "building", "address", "meter", "serial", "resource", "unit", "start", "start_ts",
           "end", "end_ts", "consumption", "source", "problem", "rule", "note")

#: ОКЕИ (ОК 015-94) unit codes that ГИС ЖКХ wants with every reading.
OKEI = {"m3": "113", "m³": "113", "m^3": "113", "l": "112", "L": "112", "kWh": "245", "MWh": "246",
        "Gcal": "233", "GJ": "A056"}
#: ГИС ЖКХ's names of the utility resources (НСИ 2 "Вид коммунального ресурса").
GIS_RESOURCES = {"cold_water": "Холодная вода", "hot_water": "Горячая вода", "electricity": "Электрическая энергия",
                 "heat": "Тепловая энергия", "gas": "Газ"}
#: The columns of the ГИС ЖКХ meter-readings import sheet (always in Russian: it is the portal's template).
GIS_COLUMNS = ("Глобальный уникальный идентификатор дома по ФИАС", "Номер помещения", "Лицевой счёт",
               "Заводской (серийный) номер ПУ", "Вид коммунального ресурса", "Дата снятия показания",
               "Показание по тарифу T1", "Показание по тарифу T2", "Показание по тарифу T3", "Единица измерения (ОКЕИ)")
GIS_SKIPPED_COLUMNS = ("Лицевой счёт", "Номер помещения", "Дом", "Заводской (серийный) номер ПУ",
                       "Вид коммунального ресурса", "Причина", "Правило", "Пояснение")
#: Tariff registers of a meter: ``<device>.<head>_t1_<tail>`` next to ``<device>.<head>_<tail>``.
TARIFFS = (1, 2, 3)


class BadCursor(ValueError):
    """A cursor that this API did not hand out (or for another period)."""


def encode_cursor(period: str, key: tuple[str, str]) -> str:
    """Return the opaque cursor after ``key`` (account, meter id) in ``period``."""
    raw = json.dumps({"p": period, "a": key[0], "m": key[1]}, ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, period: str) -> tuple[str, str]:
    """Return the key a cursor points after; `BadCursor` naming the cursor if it is not one of ``period``'s."""
    shown = cursor if len(cursor) <= 60 else cursor[:57] + "..."
    if len(cursor) > MAX_CURSOR:
        raise BadCursor(f"cursor {shown!r} is not a cursor of this API (too long)")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        doc = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadCursor(f"cursor {shown!r} is not a cursor of this API: pass next_cursor as it came") from None
    if not (isinstance(doc, dict) and isinstance(doc.get("a"), str) and isinstance(doc.get("m"), str)
            and isinstance(doc.get("p"), str)):
        raise BadCursor(f"cursor {shown!r} is not a cursor of this API: pass next_cursor as it came")
    if doc["p"] != period:
        raise BadCursor(f"cursor {shown!r} belongs to period {doc['p']}, not {period}")
    return doc["a"], doc["m"]


def parse_limit(value: str | None) -> int:
    """Return the page size of ``?limit=`` (default :data:`DEFAULT_LIMIT`); ValueError naming a bad one."""
    if value is None or value == "":
        return DEFAULT_LIMIT
    if not (value.isascii() and value.isdigit()):  # int() would take "١٠" or " 10_0"
        raise ValueError(f"limit={value!r} is not a whole number")
    limit = int(value)
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit={value!r} must be 1..{MAX_LIMIT}")
    return limit


class AccountIndex:
    """The apartment meters of a registry sorted by (account, meter id), whole and per building.

    Built once per registry object (:func:`account_index`): sorting 300,000
    meters takes a fraction of a second, which a page must not pay.
    """

    def __init__(self, registry: Registry) -> None:
        """Index the apartment meters of ``registry`` that have a premises with an account."""
        rows: list[tuple[tuple[str, str], Meter]] = []
        for building in registry.buildings.values():
            for meter in building.meters:
                if meter.role != "ipu":
                    continue
                premises = registry.premises_of(meter)
                if premises is None or not premises.account:
                    continue
                rows.append(((premises.account, meter.id), meter))
        rows.sort(key=lambda row: row[0])
        self._all = ([k for k, _ in rows], [m for _, m in rows])
        self._rows = rows
        self._buildings: dict[str, tuple[list[tuple[str, str]], list[Meter]]] = {}

    def view(self, building: str | None = None) -> tuple[list[tuple[str, str]], list[Meter]]:
        """Return ``(keys, meters)`` in order, of one building if given."""
        if building is None:
            return self._all
        found = self._buildings.get(building)
        if found is None:
            rows = [row for row in self._rows if row[1].building == building]
            found = self._buildings[building] = ([k for k, _ in rows], [m for _, m in rows])
        return found

    def __len__(self) -> int:
        """Return the number of meters indexed."""
        return len(self._rows)


_INDEXES: weakref.WeakKeyDictionary[Registry, AccountIndex] = weakref.WeakKeyDictionary()


def account_index(registry: Registry) -> AccountIndex:
    """Return the (cached) index of ``registry``; a new effective registry (after an event) gets a new one."""
    index = _INDEXES.get(registry)
    if index is None:
        index = _INDEXES[registry] = AccountIndex(registry)
    return index


async def page(reader: PeriodReader, period: str, *, after: tuple[str, str] | None = None,
               limit: int = DEFAULT_LIMIT, building: str | None = None
               ) -> tuple[list[PeriodReading], tuple[str, str] | None]:
    """Return up to ``limit`` readings after key ``after`` and the key to continue after (None at the end)."""
    keys, meters = account_index(reader.registry).view(building)
    position = bisect_right(keys, after) if after is not None else 0
    chosen: list[Meter] = []
    while position < len(keys) and len(chosen) < limit:
        meter = meters[position]
        position += 1
        if reader.in_period(meter, period):
            chosen.append(meter)
    readings = await reader.read(chosen, period) if chosen else []
    return readings, (keys[position - 1] if position < len(keys) else None)


def count(reader: PeriodReader, period: str, building: str | None = None) -> int:
    """Return how many meters the period's pull holds (of one building if given)."""
    _, meters = account_index(reader.registry).view(building)
    return sum(1 for m in meters if reader.in_period(m, period))


# -- export rows --------------------------------------------------------------------------


def table_row(reading: PeriodReading, lang: str, tz: tzinfo, address: str = "") -> list[Any]:
    """Return one CSV/XLSX row (:data:`COLUMNS`) with names and times in ``lang``."""
    item = reading.to_json(lang)
    values = {
        **item,
        "address": address,
        "resource": i18n.text(item["resource"], lang),
        "unit": i18n.text(item["unit"], lang),
        "source": i18n.text(item["source"], lang),
        "problem": i18n.text(item["problem"], lang),
        "start_ts": i18n.moment(reading.start.ts if reading.start else None, lang, tz),
        "end_ts": i18n.moment(reading.end.ts if reading.end else None, lang, tz),
        "rule": item["rule"] or "",
        "note": item["note"] or "",
    }
    return [values[key] for key in COLUMNS]


def tariff_tags(meter: Meter, has_tag: Callable[[str], bool]) -> list[str | None]:
    """Return the meter's T1..T3 register tags that exist (``energy_kwh`` → ``energy_t1_kwh``...), None for missing ones."""
    device, _, point = meter.tag.partition(".")
    head, _, tail = point.rpartition("_")
    out = []
    for n in TARIFFS:
        name = f"{device}.{head}_t{n}_{tail}" if head else f"{device}.{point}_t{n}"
        out.append(name if has_tag(name) else None)
    return out


async def gis_rows(reader: PeriodReader, readings: Sequence[PeriodReading], period: str,
                   has_tag: Callable[[str], bool], tz: tzinfo) -> tuple[list[list[Any]], list[list[Any]]]:
    """Return the ГИС ЖКХ sheet's rows (one per meter with an end reading) and the skipped meters' rows.

    ГИС ЖКХ takes *readings*, not consumption: a meter whose period ended
    without an accepted end reading (substituted by ПП 354) has nothing to
    send, and is listed on the second sheet with the reason.  A multi-tariff
    meter (``…_t1_…`` registers on the site) sends T1..T3 from those
    registers at the same boundary; a single-tariff one sends its register
    as T1.
    """
    from scada.billing.periods import shift_period

    tariffs = {r.meter.id: tariff_tags(r.meter, has_tag) for r in readings}
    wanted = [t for tags in tariffs.values() for t in tags if t is not None]
    at_end = await reader.samples_at(wanted, shift_period(period, 1)) if wanted else {}
    rows, skipped = [], []
    for reading in readings:
        meter, premises = reading.meter, reading.premises
        building = reader.registry.building(meter.building)
        if reading.end is None or not reading.measured:
            sub = reading.substitution
            skipped.append([reading.account, premises.number if premises else "", meter.building, reading.serial,
                            GIS_RESOURCES.get(meter.resource, meter.resource),
                            i18n.text(reading.problem, "ru"), sub.rule if sub else "",
                            sub.explanation_ru if sub else ""])
            continue
        values: list[float | None] = [None, None, None]
        tags = tariffs[meter.id]
        if any(tags):
            for i, tag in enumerate(tags):
                sample = at_end.get(tag) if tag else None
                values[i] = float(sample.value) if sample is not None else None
        else:
            values[0] = reading.end.value
        rows.append([building.fias or "", premises.number if premises else "", reading.account, reading.serial,
                     GIS_RESOURCES.get(meter.resource, meter.resource),
                     datetime.fromtimestamp(reading.end.ts, tz).strftime("%d.%m.%Y"),
                     *values, OKEI.get(meter.unit, "")])
    return rows, skipped
