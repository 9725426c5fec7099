# -*- test-case-name: tests.scada.test_grafana -*-
"""Grafana's data source and dashboards of a site, as plain dicts, from its configuration alone.

:func:`build` reads a :class:`~scada.config.model.SiteConfig` and returns a
:class:`Bundle`: the InfluxDB data source (InfluxQL) and the dashboards

- ``scada-overview`` «Обзор района»: per building its heat power,
  imbalance and outdoor temperature, each linking to the building's
  dashboard, and the same values of all buildings as trends;
- ``scada-building-<id>``, one per registry building (without a registry,
  one per channel): current key values, temperatures, power, flows, daily
  consumption of each building meter (ОДПУ), the balance of the building
  meter against the sum of the apartment meters (ОДПУ vs Σ ИПУ);
- ``scada-channels``: the channels' statistics (``channel-<ch>.*``), the
  history backlog and, per meter, how many samples had a bad quality.

Which tags exist is :func:`scada.config.alarms.site_tags` (what alarm rules
may name: profile points, balance figures, channel statistics, system
tags); the key values are :mod:`scada.keytags`, as on the HMI.  A tag that
is not known before run time (an M-Bus meter without a profile) is left out
and named in :attr:`Bundle.warnings`.  Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from scada.channelstats import channel_stat_tagdefs
from scada.config.alarms import balance_tag, site_tags
from scada.config.registry import tag_registers
from scada.grafana import texts
from scada.grafana.queries import Source
from scada.keytags import IMBALANCE_RESOURCES, building_key_tags, channel_key_tags

#: The data source every panel names (provisioned with this uid).
DATASOURCE_UID = "scada-influxdb"
DATASOURCE_NAME = "SCADA InfluxDB"
DATASOURCE_REF = {"type": "influxdb", "uid": DATASOURCE_UID}
#: Dashboard JSON schema version of Grafana 10.4/11 (Grafana migrates older ones on load, never newer).
SCHEMA_VERSION = 39
#: Folder of the dashboards (file provider and ``push``).
FOLDER = "SCADA"
OVERVIEW_UID = "scada-overview"
CHANNELS_UID = "scada-channels"
BUILDING_UID_PREFIX = "scada-building-"
#: Dashboard tags: every dashboard, and the building dashboards (the "buildings" link menu lists these).
TAG = "scada"
BUILDING_TAG = "scada-building"
#: Grafana's limit on uids, and the characters it allows.
UID_MAX = 40
_UID_BAD = re.compile(r"[^A-Za-z0-9_-]")
#: Environment variables (of the Grafana container) the provisioned data source takes its
#: credentials from: Grafana expands ``$NAME`` in provisioning files.  The names are the SPEC's;
#: docker-compose.yml maps InfluxDB's read-only user onto them, so Grafana never holds the
#: engine's (writing) credentials.
ENV_USER = "INFLUXDB_USER"
ENV_PASSWORD = "INFLUXDB_PASSWORD"
ENV_TOKEN = "INFLUXDB_TOKEN"
#: The history backlog system tag (:data:`scada.history.BACKLOG_TAG`; one of ``SYSTEM_TAGS``).
BACKLOG_TAG = "historian_backlog"
#: Channel types whose devices are polled or send uplinks (hand-read ones have no comm quality).
_COMM_TYPES = ("modbus-rtu", "modbus-tcp", "mbus", "lorawan", "nbiot")

_TRANSLIT = str.maketrans({
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "yo", "ж": "zh", "з": "z", "и": "i",
    "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
    "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "",
    "э": "e", "ю": "yu", "я": "ya",
})

#: Grafana unit ids of the units profiles use; others are shown as a suffix.
_UNITS = {"kW": "kwatt", "W": "watt", "MW": "megwatt", "kWh": "kwatth", "Wh": "watth", "MWh": "mwatth",
          "°C": "celsius", "K": "kelvin", "%": "percent", "m3": "m3", "l": "litre", "L": "litre",
          "V": "volt", "A": "amp", "h": "h", "s": "s", "1/s": "reqps"}


def grafana_unit(unit: str | None) -> str:
    """Return Grafana's unit id for a site unit (``kWh`` -> ``kwatth``; ``m3/h`` -> ``suffix: m3/h``)."""
    if not unit:
        return "none"
    return _UNITS.get(unit) or f"suffix: {unit}"


def make_uid(prefix: str, name: str) -> str:
    """Return ``prefix + name`` as a Grafana uid: ``[A-Za-z0-9_-]``, at most 40 characters, stable.

    A name that fits is used as it is.  Otherwise Cyrillic is
    transliterated, other characters become ``-``, the result is cut, and
    8 hex digits of the name's SHA-1 keep distinct names apart.
    """
    if len(prefix) + len(name) <= UID_MAX and not _UID_BAD.search(name):
        return prefix + name
    lowered = "".join(c.lower().translate(_TRANSLIT) if c.isupper() else c.translate(_TRANSLIT) for c in name)
    slug = re.sub(r"-{2,}", "-", _UID_BAD.sub("-", lowered)).strip("-")
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    room = UID_MAX - len(prefix) - len(digest) - 1
    slug = slug[:room].rstrip("-")
    return f"{prefix}{slug}-{digest}" if slug else f"{prefix}{digest}"


def building_uid(building_id: str) -> str:
    """Return the uid of a building's dashboard: ``scada-building-<id>`` (sanitised)."""
    return make_uid(BUILDING_UID_PREFIX, building_id)


def folder_uid(title: str) -> str:
    """Return the uid of the dashboards' folder (``SCADA`` -> ``scada``)."""
    return make_uid("", title.lower())


def dashboard_url(uid: str) -> str:
    """Return the path of a dashboard in Grafana."""
    return f"/d/{uid}"


def ref_id(index: int) -> str:
    """Return the query letter of the ``index``-th target: A..Z, AA, AB..."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


# ----------------------------------------------------------------------------------- site view


@dataclass(frozen=True)
class Series:
    """One line (or bar, or number) of a panel: a tag, its label and unit."""

    tag: str
    label: str
    unit: str = ""
    #: The label is one of Grafana's alias patterns (``$tag_device``), not a text to show as it is.
    pattern: bool = False


@dataclass
class BuildingView:
    """What one building dashboard shows (a registry building, or a channel without a registry)."""

    id: str
    title: str
    uid: str
    key: dict[str, Any]
    #: Consumption registers: (group title, unit) -> series.
    registers: dict[tuple[str, str], list[Series]] = field(default_factory=dict)
    #: Balance figures: resource -> figure -> tag.
    balance: dict[str, dict[str, str]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)


@dataclass
class ChannelView:
    """One channel on the channel-health dashboard."""

    name: str
    type: str
    #: Statistics point -> tag (``link_up`` -> ``channel-b1-rs485.link_up``).
    stats: dict[str, str]
    #: Devices whose samples carry a communication quality.
    devices: list[str]


@dataclass
class SiteView:
    """The site as the dashboards see it."""

    name: str
    timezone: str
    source: Source
    tags: dict[str, str]
    units: dict[str, str]
    buildings: list[BuildingView]
    channels: list[ChannelView]
    warnings: list[str]
    registry: bool


def _units(cfg: Any, registry: Any) -> dict[str, str]:
    units = {tag: unit for tag, (unit, _) in tag_registers(cfg.channels, cfg.profiles).items()}
    for group in registry.balance_groups() if registry is not None else ():
        for figure in ("odpu", "ipu_sum", "imbalance", "substituted"):
            units[balance_tag(group.building, group.resource, figure)] = group.odpu.unit
        for figure in ("imbalance_pct", "completeness_pct"):
            units[balance_tag(group.building, group.resource, figure)] = "%"
    for channel in cfg.channels:
        units.update({d.name: d.unit for d in channel_stat_tagdefs(channel)})
    return units


def site_view(cfg: Any) -> SiteView:
    """Return what the dashboards of ``cfg`` (a loaded site configuration) show."""
    from scada.registry import Registry

    # The runtime publishes balance figures only while the balance service runs (scada/app.py).
    balance_on = cfg.balance.enabled
    site = site_tags(cfg.channels, cfg.profiles, cfg.registry if balance_on else None)
    exists = site.tags.__contains__
    registry = Registry.from_config(cfg) if cfg.registry is not None else None
    units = _units(cfg, registry if balance_on else None)
    history = cfg.history
    source = Source(history.measurement, history.retention_policy, cfg.site.timezone)
    warnings: list[str] = []
    buildings: list[BuildingView] = []
    if registry is not None and registry.buildings:
        for b in registry.buildings.values():
            view = BuildingView(b.id, f"{b.id} — {b.address}", building_uid(b.id), building_key_tags(b, exists))
            for meter in b.meters:
                if meter.role != "odpu":
                    continue
                if not exists(meter.tag):
                    warnings.append(f"building {b.id}: building meter {meter.id} ({meter.tag}) is left out of its "
                                    "dashboard: the tag is not known before run time (an M-Bus meter without a "
                                    "profile?); give the device a profile to chart it")
                    continue
                view.registers.setdefault((meter.resource, meter.unit), []).append(
                    Series(meter.tag, meter.id, meter.unit))
            for resource in IMBALANCE_RESOURCES:
                figures = {f: balance_tag(b.id, resource, f) for f in ("odpu", "ipu_sum", "imbalance_pct",
                                                                        "completeness_pct")}
                figures = {f: t for f, t in figures.items() if exists(t)}
                if figures:
                    view.balance[resource] = figures
            buildings.append(view)
    else:
        registers = tag_registers(cfg.channels, cfg.profiles)
        for channel in cfg.channels:
            members = [d.name for d in channel.devices if d.name in site.devices]
            title = f"{channel.name} — {channel.description}" if channel.description else channel.name
            view = BuildingView(channel.name, title, building_uid(channel.name), channel_key_tags(members, exists))
            for tag, (unit, cumulative) in registers.items():
                if cumulative and exists(tag) and tag.partition(".")[0] in members:
                    view.registers.setdefault(("", unit), []).append(Series(tag, tag, unit))
            buildings.append(view)
    uids: dict[str, str] = {}
    for view in buildings:
        if view.uid in uids:  # two ids that sanitise alike: keep both dashboards apart
            view.uid = make_uid(BUILDING_UID_PREFIX, view.id + "\0")
        uids[view.uid] = view.id
    channels = []
    for channel in cfg.channels:
        device = f"channel-{channel.name}"
        stats = {tag.partition(".")[2]: tag for tag, owner in site.tags.items() if owner == device}
        devices = ([d.name for d in channel.devices if d.name in site.devices]
                   if channel.type in _COMM_TYPES else [])
        channels.append(ChannelView(channel.name, channel.type, stats, devices))
    return SiteView(cfg.site.name, cfg.site.timezone, source, dict(site.tags), units, buildings, channels,
                    warnings, registry is not None and bool(registry.buildings))


# ----------------------------------------------------------------------------------- panels


def target(ref: str, query: str, alias: str | None = None, fmt: str = "time_series",
           pattern: bool = False) -> dict[str, Any]:
    """Return one raw InfluxQL query of a panel; ``alias`` names its series (a pattern if ``pattern``)."""
    out = {"refId": ref, "datasource": dict(DATASOURCE_REF), "query": query, "rawQuery": True,
           "resultFormat": fmt}
    if alias:
        # Grafana reads $tag_device, $col... in an alias: a $ in a name (names may have one) must not start one.
        out["alias"] = alias if pattern else alias.replace("$", "＄")
    return out


def _field_defaults(unit: str, **extra: Any) -> dict[str, Any]:
    return {"unit": grafana_unit(unit), "color": {"mode": "palette-classic"}, **extra}


def panel(kind: str, title: str, targets: list[dict[str, Any]], unit: str = "", description: str = "",
          options: dict[str, Any] | None = None, defaults: dict[str, Any] | None = None,
          overrides: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """Return a panel of ``kind`` (its id and gridPos are set when it is placed)."""
    return {"type": kind, "title": title, "description": description, "datasource": dict(DATASOURCE_REF),
            "targets": targets, "transparent": False, "transformations": [], "repeatDirection": "h",
            "options": options or {}, "links": [],
            "fieldConfig": {"defaults": defaults if defaults is not None else _field_defaults(unit),
                            "overrides": overrides or []}, **extra}


def _unit_overrides(series: list[Series], base_unit: str) -> list[dict[str, Any]]:
    """Give each query whose unit differs from the panel's its own (matched by its query letter)."""
    return [{"matcher": {"id": "byFrameRefID", "options": ref_id(i)},
             "properties": [{"id": "unit", "value": grafana_unit(s.unit)}]}
            for i, s in enumerate(series) if s.unit != base_unit]


def timeseries(title: str, series: list[Series], queries: list[str], description: str = "",
               bars: bool = False) -> dict[str, Any]:
    """Return a time series panel of one query per series (lines, or bars for consumption)."""
    unit = series[0].unit
    custom = {"drawStyle": "bars" if bars else "line", "lineWidth": 1, "fillOpacity": 70 if bars else 10,
              "showPoints": "never" if not bars else "auto", "spanNulls": False, "axisPlacement": "auto",
              "lineInterpolation": "linear", "barAlignment": -1 if bars else 0, "pointSize": 4,
              "stacking": {"mode": "none", "group": "A"}}
    targets = [target(ref_id(i), q, s.label, pattern=s.pattern) for i, (s, q) in enumerate(zip(series, queries))]
    return panel("timeseries", title, targets, description=description,
                 defaults=_field_defaults(unit, custom=custom),
                 overrides=_unit_overrides(series, unit),
                 options={"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []},
                          "tooltip": {"mode": "multi", "sort": "none"}})


def stat(title: str, series: list[Series], queries: list[str], description: str = "",
         mappings: list[dict[str, Any]] | None = None, graph: bool = True) -> dict[str, Any]:
    """Return a stat panel: the last value of each query, with a sparkline."""
    unit = series[0].unit
    targets = [target(ref_id(i), q, s.label, pattern=s.pattern) for i, (s, q) in enumerate(zip(series, queries))]
    defaults = _field_defaults(unit, decimals=1 if unit in ("°C", "kW", "%", "m3/h") else None)
    defaults = {k: v for k, v in defaults.items() if v is not None}
    defaults["color"] = {"mode": "thresholds"}
    defaults["thresholds"] = {"mode": "absolute", "steps": [{"color": "green", "value": None}]}
    if mappings:
        defaults["mappings"] = mappings
    return panel("stat", title, targets, description=description, defaults=defaults,
                 overrides=_unit_overrides(series, unit),
                 options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                          "colorMode": "value", "graphMode": "area" if graph else "none", "textMode": "auto",
                          "orientation": "auto", "justifyMode": "auto", "wideLayout": True,
                          "showPercentChange": False})


class Grid:
    """Places panels left to right on Grafana's 24-column grid, a new line when one is full."""

    COLUMNS = 24

    def __init__(self) -> None:
        """Start an empty dashboard."""
        self.panels: list[dict[str, Any]] = []
        self._x = self._y = self._line = 0

    def newline(self) -> None:
        """Go on below the panels placed so far."""
        if self._x:
            self._y += self._line
            self._x = self._line = 0

    def place(self, item: dict[str, Any], w: int, h: int) -> dict[str, Any]:
        """Put ``item`` at the next free place of width ``w`` and height ``h``; give it the next id."""
        if self._x + w > self.COLUMNS:
            self.newline()
        item["id"] = len(self.panels) + 1
        item["gridPos"] = {"h": h, "w": w, "x": self._x, "y": self._y}
        self.panels.append(item)
        self._x += w
        self._line = max(self._line, h)
        if self._x >= self.COLUMNS:
            self.newline()
        return item

    def row(self, title: str) -> None:
        """Start a new section with a (not collapsed) row header."""
        self.newline()
        self.place({"type": "row", "title": title, "collapsed": False, "panels": [],
                    "datasource": dict(DATASOURCE_REF)}, 24, 1)


# ----------------------------------------------------------------------------------- dashboards


def _link(title: str, uid: str) -> dict[str, Any]:
    return {"title": title, "type": "link", "url": dashboard_url(uid), "icon": "dashboard", "tooltip": "",
            "tags": [], "asDropdown": False, "targetBlank": False, "includeVars": False, "keepTime": True}


def _buildings_menu(lang: str, registry: bool) -> dict[str, Any]:
    title = "Здания" if lang == "ru" else "Buildings"
    if not registry:
        title = "Каналы" if lang == "ru" else "Channels"
    return {"title": title, "type": "dashboards", "url": "", "icon": "external link", "tooltip": "",
            "tags": [BUILDING_TAG], "asDropdown": True, "targetBlank": False, "includeVars": False,
            "keepTime": True}


def _dashboard(uid: str, title: str, panels: list[dict[str, Any]], links: list[dict[str, Any]],
               site: SiteView, tags: list[str], time_from: str, description: str = "") -> dict[str, Any]:
    return {
        "id": None, "uid": uid, "title": title, "description": description, "tags": tags,
        "timezone": site.timezone, "editable": True, "graphTooltip": 1, "style": "dark",
        "time": {"from": time_from, "to": "now"}, "timepicker": {}, "refresh": "1m", "fiscalYearStartMonth": 0,
        "liveNow": False, "weekStart": "", "schemaVersion": SCHEMA_VERSION, "version": 1,
        "templating": {"list": []},
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": links, "panels": panels,
    }


def _key_series(view: BuildingView, site: SiteView, lang: str, names: Iterable[str]) -> list[Series]:
    out = []
    for name in names:
        tag = view.key.get(name)
        if tag:
            out.append(Series(tag, texts.text(name, lang), site.units.get(tag, "")))
    return out


def _imbalance_series(view: BuildingView, lang: str, prefix: str = "") -> list[Series]:
    return [Series(tag, prefix + texts.text("imbalance", lang, resource=texts.resource(r, lang).lower()), "%")
            for r, tag in view.key["imbalance"].items()]


def overview(site: SiteView, lang: str) -> dict[str, Any]:
    """Return the district overview: each building's heat power, imbalance and outdoor temperature."""
    src = site.source
    grid = Grid()
    for view in site.buildings:
        series = _key_series(view, site, lang, ("power",)) + _imbalance_series(view, lang) \
            + _key_series(view, site, lang, ("t_outdoor",))
        if not series:
            continue
        item = stat(view.title, series, [src.trend(s.tag, "last") for s in series])
        item["links"] = [{"title": texts.text("to_building", lang, name=view.id), "url": dashboard_url(view.uid),
                          "targetBlank": False}]
        grid.place(item, 6, 5)
    power = [Series(v.key["power"], v.id, site.units.get(v.key["power"], "")) for v in site.buildings if v.key["power"]]
    if power:
        grid.place(timeseries(texts.text("buildings_power", lang), power, [src.trend(s.tag) for s in power]), 24, 8)
    imbalance = [Series(tag, f"{v.id} {texts.resource(r, lang).lower()}", "%")
                 for v in site.buildings for r, tag in v.key["imbalance"].items()]
    if imbalance:
        grid.place(timeseries(texts.text("buildings_imbalance", lang), imbalance,
                              [src.trend(s.tag, "last") for s in imbalance]), 12, 8)
    outdoor = list(dict.fromkeys(v.key["t_outdoor"] for v in site.buildings if v.key["t_outdoor"]))
    if outdoor:
        series = [Series(tag, tag, site.units.get(tag, "°C")) for tag in outdoor]
        grid.place(timeseries(texts.text("outdoor", lang), series, [src.trend(s.tag) for s in series]), 12, 8)
    links = [_buildings_menu(lang, site.registry), _link(texts.text("to_channels", lang), CHANNELS_UID)]
    return _dashboard(OVERVIEW_UID, texts.text("overview", lang), grid.panels, links, site, [TAG], "now-24h",
                      f"{site.name}. {texts.text('overview_description', lang)}")


def building(view: BuildingView, site: SiteView, lang: str) -> dict[str, Any]:
    """Return one building's dashboard: key values, trends, daily consumption of its meters, its balance."""
    src = site.source
    grid = Grid()
    current = _key_series(view, site, lang, ("power", "t_supply", "t_return", "heat_flow", "flow", "t_outdoor")) \
        + _imbalance_series(view, lang)
    if current:
        grid.row(texts.text("key_values", lang))
        # As few lines as 3 columns per number allow, the numbers spread evenly over them.
        lines = -(-len(current) // 8)
        width = min(6, 24 // -(-len(current) // lines))
        for s in current:
            grid.place(stat(s.label, [s], [src.trend(s.tag, "last")]), width, 4)
    temperatures = _key_series(view, site, lang, ("t_supply", "t_return", "t_outdoor"))
    power = _key_series(view, site, lang, ("power",))
    flows = _key_series(view, site, lang, ("heat_flow", "flow"))
    if temperatures or power or flows:
        grid.row(texts.text("temperatures", lang) + " · " + texts.text("flows", lang).lower())
        for title, series in ((texts.text("temperatures", lang), temperatures),
                              (texts.text("power_trend", lang), power), (texts.text("flows", lang), flows)):
            if series:
                grid.place(timeseries(title, series, [src.trend(s.tag) for s in series]), 12, 8)
    if view.registers:
        grid.row(texts.text("consumption", lang))
        for (resource, unit), series in view.registers.items():
            if resource:
                name = texts.resource(resource, lang)
                daily, period = texts.text("daily", lang, resource=name), texts.text("period", lang, resource=name)
            else:
                daily = texts.text("daily_registers", lang, unit=unit or "-")
                period = texts.text("period_registers", lang, unit=unit or "-")
            description = texts.text("consumption_description", lang)
            grid.place(timeseries(daily, series, [src.increase(s.tag, "1d") for s in series], description,
                                  bars=True), 16, 8)
            grid.place(stat(period, series, [src.spread(s.tag) for s in series], description, graph=False), 8, 8)
    if view.balance:
        grid.row(texts.text("balance", lang))
        pct: list[Series] = []
        for resource, figures in view.balance.items():
            name = texts.resource(resource, lang)
            pairs = [Series(figures[f], texts.text(f, lang), site.units.get(figures[f], ""))
                     for f in ("odpu", "ipu_sum") if f in figures]
            if pairs:
                grid.place(timeseries(texts.text("balance_resource", lang, resource=name), pairs,
                                      [src.trend(s.tag, "last") for s in pairs],
                                      texts.text("balance_description", lang)), 12, 8)
            lower = name.lower()
            if "imbalance_pct" in figures:
                pct.append(Series(figures["imbalance_pct"], texts.text("imbalance_series", lang, resource=lower), "%"))
            if "completeness_pct" in figures:
                pct.append(Series(figures["completeness_pct"], texts.text("completeness", lang, resource=lower), "%"))
        if pct:
            grid.place(timeseries(texts.text("balance_pct", lang), pct, [src.trend(s.tag, "last") for s in pct],
                                  texts.text("balance_description", lang)), 24, 8)
    name = "channel_building" if not site.registry else "building"
    title = texts.text(name, lang, name=view.title)
    links = [_link(texts.text("to_overview", lang), OVERVIEW_UID), _buildings_menu(lang, site.registry),
             _link(texts.text("to_channels", lang), CHANNELS_UID)]
    return _dashboard(view.uid, title, grid.panels, links, site, [TAG, BUILDING_TAG], "now-7d")


def channels(site: SiteView, lang: str) -> dict[str, Any]:
    """Return the channel-health dashboard: statistics per channel, history backlog, bad samples per meter."""
    src = site.source
    grid = Grid()

    def of(point: str) -> list[Series]:
        return [Series(c.stats[point], c.name, site.units.get(c.stats[point], "")) for c in site.channels
                if point in c.stats]

    stats = [ch for ch in site.channels if ch.stats]
    if stats:
        grid.row(texts.text("channel_stats", lang))
        links = of("link_up")
        if links:
            mappings = [{"type": "value", "options": {
                "0": {"text": texts.text("link_no", lang), "color": "red", "index": 0},
                "1": {"text": texts.text("link_yes", lang), "color": "green", "index": 1}}}]
            grid.place(stat(texts.text("link_up", lang), links, [src.trend(s.tag, "last") for s in links],
                            mappings=mappings, graph=False), 24, 4)
        for point, key, kind in (("utilisation_pct", "utilisation", "last"), ("tx_per_s", "tx_per_s", "mean"),
                                 ("timeouts", "timeouts", "increase"), ("crc_errors", "crc_errors", "increase"),
                                 ("devices_comm_loss", "comm_loss", "max"), ("queue_depth", "queue_depth", "max"),
                                 ("uplinks", "uplinks", "increase"), ("decode_errors", "decode_errors", "increase")):
            series = of(point)
            if not series:
                continue
            queries = [src.increase(s.tag) if kind == "increase" else src.trend(s.tag, kind) for s in series]
            grid.place(timeseries(texts.text(key, lang), series, queries), 12, 8)
    if BACKLOG_TAG in site.tags:
        grid.newline()
        grid.place(timeseries(texts.text("backlog", lang), [Series(BACKLOG_TAG, BACKLOG_TAG)],
                              [src.trend(BACKLOG_TAG, "max")]), 24, 6)
    measured = [ch for ch in site.channels if ch.devices]
    if measured:
        grid.row(texts.text("quality", lang))
        description = texts.text("quality_description", lang)
        for ch in measured:
            grid.place(_quality_table(ch, src, lang, description), 8, 8)
            # One query for the whole channel, a series per meter (GROUP BY "device"), named after it.
            grid.place(timeseries(texts.text("quality_channel", lang, name=ch.name),
                                  [Series("", "$tag_device", pattern=True)], [src.bad_count_by_device(ch.devices)],
                                  description, bars=True), 16, 8)
    links = [_link(texts.text("to_overview", lang), OVERVIEW_UID), _buildings_menu(lang, site.registry)]
    return _dashboard(CHANNELS_UID, texts.text("channels", lang), grid.panels, links, site, [TAG], "now-24h",
                      texts.text("channels_description", lang))


def _quality_table(ch: ChannelView, src: Source, lang: str, description: str) -> dict[str, Any]:
    """A table of the channel's meters: samples, bad samples and their share over the time range.

    InfluxQL cannot divide two counts with different conditions in one
    query, so the table merges two (all samples, bad samples, per device)
    and Grafana divides.
    """
    targets = [target("A", src.count_by_device(ch.devices, bad=False), fmt="table"),
               target("B", src.count_by_device(ch.devices, bad=True), fmt="table")]
    rename = {"device": texts.text("device", lang), "total": texts.text("total", lang),
              "bad": texts.text("bad", lang), "share": texts.text("share", lang)}
    item = panel("table", texts.text("quality_table", lang, name=ch.name), targets, description=description,
                 defaults={"unit": "none", "custom": {"align": "auto", "cellOptions": {"type": "auto"}}},
                 overrides=[{"matcher": {"id": "byName", "options": "share"},
                             "properties": [{"id": "unit", "value": "percentunit"}, {"id": "decimals", "value": 1}]}],
                 options={"showHeader": True, "cellHeight": "sm",
                          "footer": {"show": False, "reducer": ["sum"], "fields": "", "countRows": False}})
    item["transformations"] = [
        {"id": "merge", "options": {}},
        {"id": "calculateField", "options": {"mode": "binary", "alias": "share", "replaceFields": False,
                                             "binary": {"left": "bad", "operator": "/", "right": "total"}}},
        {"id": "organize", "options": {"excludeByName": {"Time": True}, "indexByName": {}, "renameByName": rename}},
    ]
    return item


# ----------------------------------------------------------------------------------- data source


def datasource(cfg: Any, influx_url: str | None = None, secrets: str = "env") -> dict[str, Any]:
    """Return the InfluxDB (InfluxQL) data source of the site's history, as Grafana's API takes it.

    ``secrets="env"`` (provisioning files) puts ``$INFLUXDB_USER`` /
    ``$INFLUXDB_PASSWORD`` (or ``Token $INFLUXDB_TOKEN``) where the
    credentials go, for Grafana to expand from its environment;
    ``secrets="values"`` (``push``) sends the site's own credentials.
    """
    history = cfg.history
    body: dict[str, Any] = {
        "uid": DATASOURCE_UID, "name": DATASOURCE_NAME, "type": "influxdb", "access": "proxy",
        "url": (influx_url or history.url).rstrip("/"), "isDefault": False, "basicAuth": False,
        # POST: the channel-health queries name every meter of a channel, which can outgrow a URL.
        "jsonData": {"dbName": history.bucket or history.database, "httpMode": "POST", "version": "InfluxQL"},
    }
    secure: dict[str, str] = {}
    if history.token:
        # InfluxDB 2.x/3.x v1-compatible /query: the token goes in an Authorization header.
        body["jsonData"]["httpHeaderName1"] = "Authorization"
        secure["httpHeaderValue1"] = "Token " + (f"${ENV_TOKEN}" if secrets == "env" else history.token)
    elif history.username:
        body["user"] = f"${ENV_USER}" if secrets == "env" else history.username
        secure["password"] = f"${ENV_PASSWORD}" if secrets == "env" else (history.password or "")
    if secure:
        body["secureJsonData"] = secure
    return body


# ----------------------------------------------------------------------------------- everything


@dataclass
class Bundle:
    """A site's data source, dashboards (overview first, channels last) and warnings."""

    datasource: dict[str, Any]
    dashboards: list[dict[str, Any]]
    warnings: list[str]
    site: SiteView


def build(cfg: Any, lang: str = "ru", influx_url: str | None = None, secrets: str = "env") -> Bundle:
    """Return the data source and every dashboard of the site ``cfg`` with titles in ``lang``."""
    if lang not in texts.LANGUAGES:
        raise ValueError(f"--lang {lang!r}: one of {', '.join(texts.LANGUAGES)}")
    site = site_view(cfg)
    warnings = list(site.warnings)
    if cfg.history.backend != "influxdb":
        url = (influx_url or cfg.history.url).rstrip("/")
        warnings.insert(0, f"the site writes its history to SQLite ({cfg.history.path}), not InfluxDB: the data "
                           f"source points at {url}, where InfluxDB would be (history.backend: influxdb)")
    dashboards = [overview(site, lang), *(building(v, site, lang) for v in site.buildings), channels(site, lang)]
    return Bundle(datasource(cfg, influx_url, secrets), dashboards, warnings, site)


__all__ = ["BUILDING_TAG", "CHANNELS_UID", "DATASOURCE_NAME", "DATASOURCE_REF", "DATASOURCE_UID", "FOLDER",
           "OVERVIEW_UID", "SCHEMA_VERSION", "Bundle", "building_uid", "build", "datasource", "folder_uid",
           "grafana_unit", "make_uid"]
