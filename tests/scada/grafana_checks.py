"""Checks of exported Grafana dashboards, shared by the unit tests and the InfluxDB integration test.

- :func:`schema_errors`: the dashboard against ``grafana_dashboard.schema.json``
  (the parts of Grafana's dashboard model Grafana needs);
- :func:`layout_problems`: unique panel ids, gridPos inside 24 columns,
  no two panels overlapping;
- :func:`query_problems`: every InfluxQL target names only tags and devices
  that exist, only known qualities, the site's measurement, and a time filter;
- :func:`link_problems`: every dashboard and panel link resolves.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable, Iterator

from jsonschema import Draft202012Validator

from tags.quality import Quality

SCHEMA = json.loads((Path(__file__).with_name("grafana_dashboard.schema.json")).read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA)
QUALITIES = {q.value for q in Quality}

_STRING = r"'((?:[^'\\]|\\.)*)'"
_REGEX = r"/((?:[^/\\]|\\.)*)/"
_COMPARISON = re.compile(r'"((?:[^"\\]|\\.)*)"\s*(=~|!~|!=|=|<=|>=|<|>)\s*(?:' + _STRING + "|" + _REGEX + "|(\\$\\w+))")
_FROM = re.compile(r'FROM ((?:"(?:[^"\\]|\\.)*"\.)?"(?:[^"\\]|\\.)*")')


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield every panel, rows and the panels inside collapsed rows included."""
    for item in dashboard["panels"]:
        yield item
        yield from item.get("panels", ())


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Yield (panel, target) of every query of the dashboard."""
    for item in panels(dashboard):
        for target in item.get("targets", ()):
            yield item, target


def unescape(text: str) -> str:
    """Return an InfluxQL string literal's content without its backslash escapes."""
    return re.sub(r"\\(.)", r"\1", text)


def regex_names(pattern: str) -> list[str] | None:
    """Return the names of an exact-alternation regex ``^(a|b)$``, or None for another pattern."""
    found = re.fullmatch(r"\^\((.*)\)\$", pattern)
    if found is None:
        return None
    return [unescape(part) for part in re.split(r"(?<!\\)\|", found.group(1))]


def comparisons(query: str) -> list[tuple[str, str, str, str]]:
    """Return every ``"ident" op value`` of a query: (identifier, operator, kind, value); kind string/regex/macro."""
    out = []
    for m in _COMPARISON.finditer(query):
        ident, op, string, regex, macro = m.groups()
        if string is not None:
            out.append((unescape(ident), op, "string", unescape(string)))
        elif regex is not None:
            out.append((unescape(ident), op, "regex", regex.replace("\\/", "/")))
        else:
            out.append((unescape(ident), op, "macro", macro))
    return out


def referenced(query: str, key: str) -> list[str]:
    """Return the names a query compares ``key`` (``tag`` or ``device``) with; regexes as their alternatives."""
    names = []
    for ident, _op, kind, value in comparisons(query):
        if ident != key:
            continue
        if kind == "string":
            names.append(value)
        elif kind == "regex":
            names.extend(regex_names(value) or [])
    return names


def schema_errors(dashboard: dict[str, Any]) -> list[str]:
    """Return the schema violations of a dashboard, each with its JSON path."""
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(dashboard)]


def layout_problems(dashboard: dict[str, Any]) -> list[str]:
    """Return duplicate panel ids, panels out of the 24 columns and overlapping panels."""
    problems = []
    seen: dict[int, str] = {}
    boxes = []
    for item in panels(dashboard):
        if item["id"] in seen:
            problems.append(f"panel id {item['id']} used by {seen[item['id']]!r} and {item.get('title')!r}")
        seen[item["id"]] = item.get("title", "")
        g = item["gridPos"]
        if g["x"] + g["w"] > 24:
            problems.append(f"panel {item['id']} ends at column {g['x'] + g['w']} > 24")
        boxes.append((item["id"], g["x"], g["y"], g["x"] + g["w"], g["y"] + g["h"]))
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]:
                problems.append(f"panels {a[0]} and {b[0]} overlap")
    return problems


def query_problems(dashboard: dict[str, Any], tags: Iterable[str], devices: Iterable[str], source: str,
                   datasource_uid: str) -> list[str]:
    """Return every target that names an unknown tag, device, quality or data source, or lacks a time filter."""
    tags, devices = set(tags), set(devices)
    problems = []
    refs: dict[int, list[str]] = {}
    for item, target in targets(dashboard):
        where = f"panel {item['id']} {item.get('title')!r} {target['refId']}"
        query = target["query"]
        refs.setdefault(item["id"], []).append(target["refId"])
        for ref in (target["datasource"], item["datasource"]):
            if ref != {"type": "influxdb", "uid": datasource_uid}:
                problems.append(f"{where}: data source {ref} is not the provisioned {datasource_uid}")
        if "$timeFilter" not in query:
            problems.append(f"{where}: no $timeFilter")
        sources = _FROM.findall(query)
        if not sources or any(s != source for s in sources):
            problems.append(f"{where}: reads {sources}, not {source}")
        found_subject = False
        for ident, op, kind, value in comparisons(query):
            if ident not in ("tag", "device", "quality"):
                problems.append(f"{where}: compares unknown column {ident!r}")
                continue
            if ident == "quality":
                if kind != "string" or value not in QUALITIES:
                    problems.append(f"{where}: unknown quality {value!r}")
                continue
            found_subject = True
            known = tags if ident == "tag" else devices
            if kind == "string":
                if value not in known:
                    problems.append(f"{where}: no {ident} {value!r}")
            elif kind == "regex":
                pattern = re.compile(value)
                if not any(pattern.search(name) for name in known):
                    problems.append(f"{where}: /{value}/ matches no {ident}")
                names = regex_names(value)
                if names is None:
                    problems.append(f"{where}: /{value}/ is not an exact list of names")
                for name in names or ():
                    if name not in known:
                        problems.append(f"{where}: no {ident} {name!r} (in /{value}/)")
            else:
                problems.append(f"{where}: {ident} compared with a variable {value}")
        if not found_subject:
            problems.append(f"{where}: selects no tag or device")
    for panel_id, letters in refs.items():
        if len(set(letters)) != len(letters):
            problems.append(f"panel {panel_id}: refIds {letters} are not unique")
    return problems


def link_problems(dashboards: list[dict[str, Any]]) -> list[str]:
    """Return links (dashboard links, panel links) that lead to no exported dashboard."""
    uids = {d["uid"] for d in dashboards}
    tagged = {tag for d in dashboards for tag in d["tags"]}
    problems = []

    def check_url(where: str, url: str) -> None:
        found = re.fullmatch(r"/d/([A-Za-z0-9_-]+)(?:[/?].*)?", url)
        if found is None or found.group(1) not in uids:
            problems.append(f"{where}: link {url!r} leads to no exported dashboard")

    for d in dashboards:
        for link in d["links"]:
            if link["type"] == "link":
                check_url(f"{d['uid']} link {link['title']!r}", link["url"])
            elif not set(link["tags"]) & tagged:
                problems.append(f"{d['uid']} link {link['title']!r}: no dashboard has tags {link['tags']}")
        for item in panels(d):
            for link in item.get("links", ()):
                check_url(f"{d['uid']} panel {item['id']}", link["url"])
    return problems
