# -*- test-case-name: tests.scada.config.test_config_load -*-
"""Load a site file into a :class:`SiteConfig`, collecting every problem.

Validation goes piece by piece (a section, a channel, each device, each
profile point) instead of in one pydantic call, so that one bad device
neither hides the problems of the others nor stops the cross-field checks
from running on everything that did validate.  Nothing here opens a port:
config is validated before anything opens (DESIGN rule 7).
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from pathlib import Path as FsPath
from typing import Any, TextIO

import yaml
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from .notify import NotificationsConfig
from .remote import ModemServerConfig, MqttConfig
from .registry import BuildingConfig, MeterConfig, RegistryConfig, check_registry, register_lines, tag_registers
from .alarms import RULE_MODELS, RULE_TYPES, AlarmSettings, RuleConfig, site_tags
from .envvars import validate_with_env_types
from .messages import describe_error
from .model import (
    ApiConfig,
    BalanceConfig,
    HmiConfig,
    ChannelConfig,
    DeviceConfig,
    HistoryConfig,
    Name,
    PointConfig,
    RecordConfig,
    ProfileConfig,
    SimulateHistoryConfig,
    SiteConfig,
    SiteInfo,
    StoreConfig,
)
from .problems import (
    ConfigError,
    Path,
    Problem,
    SourceMap,
    format_path,
    nearest_line,
    show_value,
    sort_problems,
)
from .validators import (
    check_alarm_names,
    check_alarm_references,
    check_profile_status,
    check_addresses,
    check_channel_names,
    check_channel_pseudo_devices,
    check_device_kinds,
    check_device_names,
    check_poll_budget,
    check_profile_archives,
    check_profile_registers,
    check_profiles_known,
    check_termination,
    check_transport_kind,
    check_modems,
    check_unique_ids,
)
from .yaml_lines import load_yaml

#: Profiles shipped with the project, ``<repo>/config/profiles/<name>.yaml``.
BUILTIN_PROFILES_DIR = FsPath(__file__).resolve().parents[2] / "config" / "profiles"
#: The sections a site file may have (the YAML contract).
SITE_KEYS = ("site", "history", "api", "store", "simulate", "channels", "profiles", "alarm_settings", "alarms",
             "notifications", "modem_server", "mqtt", "registry", "balance", "simulate_history", "hmi")

_BOOL = TypeAdapter(bool, config=ConfigDict(strict=True))
_NAME = TypeAdapter(Name, config=ConfigDict(strict=True))
# A profile name becomes a file name; anything that could leave the
# profiles directory is simply never looked up.
_SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def load_config(path: str | os.PathLike[str]) -> tuple[SiteConfig, list[Problem]]:
    """Load and validate a site file.

    Return the configuration and its warnings.  Raise :class:`ConfigError`
    carrying every problem (warnings too) if there is at least one error.
    Profiles that devices reference but the file does not define inline
    are read from a ``profiles/`` directory beside the site file, then
    from :data:`BUILTIN_PROFILES_DIR`.
    """
    run = _Run(os.fspath(path))
    config = run.load()
    problems = sort_problems(run.problems, run.file)
    if config is None or any(p.is_error for p in problems):
        raise ConfigError(problems)
    return config, problems


def check_main(path: str, out: TextIO | None = None) -> int:
    """Implement ``scada check FILE``.

    Print every problem sorted by file and line, then ``ok`` if there is no
    error.  Return 0 if the file is valid, 1 otherwise.  Never raises.
    """
    out = sys.stdout if out is None else out
    try:
        _config, problems = load_config(path)
        failed = False
    except ConfigError as exc:
        problems, failed = exc.problems, True
    except Exception as exc:  # noqa: BLE001 - `scada check` must never show a traceback
        problems = [Problem(str(path), 1, f"internal error while checking: {type(exc).__name__}: {exc}")]
        failed = True
    for problem in problems:
        print(problem, file=out)
    if not failed:
        print("ok", file=out)
    return 1 if failed else 0


class _Run:
    """The state of one load: problems found so far and where objects came from."""

    def __init__(self, file: str):
        """Prepare to load ``file``."""
        self.file = file
        self.problems: list[Problem] = []
        self.smap = SourceMap()
        self._lines: dict[str, dict[Path, int]] = {}

    def error(self, file: str, line: int, message: str) -> None:
        """Record an error."""
        self.problems.append(Problem(file, line, message))

    def load(self) -> SiteConfig | None:
        """Validate the site file; return the config, or None if it has errors."""
        data = self._read(self.file, "site")
        if data is None:
            return None
        lines = self._lines[self.file]
        for key in data:
            if key not in SITE_KEYS:
                message = f"unknown key {show_value(key)} at top level"
                close = difflib.get_close_matches(str(key), SITE_KEYS, n=1)
                if close:
                    message += f" (did you mean {close[0]!r}?)"
                else:
                    message += f"; sections are {', '.join(SITE_KEYS)}"
                self.error(self.file, nearest_line(lines, (key,)), message)
        if "site" in data:
            site = self._validate(SiteInfo, data["site"], self.file, ("site",))
        else:
            message = "missing required section 'site' (e.g. site: {name: Demo district})"
            self.error(self.file, lines[()], message)
            site = None
        # An empty section (`history:` with everything commented out) means defaults.
        history = self._validate(HistoryConfig, _or(data.get("history"), {}), self.file, ("history",))
        api = self._validate(ApiConfig, _or(data.get("api"), {}), self.file, ("api",))
        store = self._validate(StoreConfig, _or(data.get("store"), {}), self.file, ("store",))
        simulate = self._validate(_BOOL, data.get("simulate", False), self.file, ("simulate",))
        channels, devices, extent = self._channels(_or(data.get("channels"), []))
        profiles, broken = self._inline_profiles(_or(data.get("profiles"), {}))
        searched = self._file_profiles(devices, profiles, broken)
        self._cross_check(channels, devices, extent, profiles, broken, searched)
        # `modem_server:` with everything commented out means the defaults.
        modem_server = mqtt = None
        if "modem_server" in data:
            modem_server = self._validate(ModemServerConfig, _or(data["modem_server"], {}), self.file,
                                          ("modem_server",))
        if "mqtt" in data:
            mqtt = self._validate(MqttConfig, _or(data["mqtt"], {}), self.file, ("mqtt",))
        if "modem_server" not in data or modem_server is not None:
            self.problems.extend(check_modems(channels, modem_server, self.smap))
        alarm_settings = self._validate(AlarmSettings, _or(data.get("alarm_settings"), {}), self.file,
                                        ("alarm_settings",))
        balance = self._validate(BalanceConfig, _or(data.get("balance"), {}), self.file, ("balance",))
        hmi = self._validate(HmiConfig, _or(data.get("hmi"), {}), self.file, ("hmi",))
        notifications = self._validate(NotificationsConfig, _or(data.get("notifications"), {}), self.file,
                                       ("notifications",))
        raw_channels = _or(data.get("channels"), [])
        complete = isinstance(raw_channels, list) and len(channels) == len(raw_channels) and all(
            extent[id(channel)] == "complete" for channel in channels)
        registry = None
        if "registry" in data:
            registry = self._registry(_or(data["registry"], {}), channels, profiles, complete)
        simulate_history = None
        if "simulate_history" in data:
            simulate_history = self._simulate_history(_or(data["simulate_history"], {}), devices, simulate)
        # With the balance service off its figures never exist: rules may not watch them.
        balance_on = balance is None or balance.enabled
        alarms = self._alarms(_or(data.get("alarms"), []), channels, profiles, complete,
                              registry if balance_on else None)
        if hmi is not None:
            self._check_kiosk(hmi, registry, [c.name for c in channels])
        if api is not None and api.demo_users and simulate is False:
            self.error(self.file, self.smap.line(api, "demo_users"),
                       "api.demo_users: true needs simulate: true (well-known passwords are for the demo only)")
        if any(p.is_error for p in self.problems) or None in (site, history, api, store, simulate, balance, hmi):
            return None
        return SiteConfig.model_validate(
            {
                "site": site,
                "history": history,
                "api": api,
                "store": store,
                "simulate": simulate,
                "channels": channels,
                "profiles": profiles,
                "alarm_settings": alarm_settings,
                "alarms": alarms,
                "notifications": notifications,
                "modem_server": modem_server,
                "mqtt": mqtt,
                "registry": registry,
                "balance": balance,
                "hmi": hmi,
                "simulate_history": simulate_history,
                "source": self.file,
            }
        )

    def _check_kiosk(self, hmi: HmiConfig, registry: Any, channel_names: list[str]) -> None:
        """Every ``building:<id>`` of ``hmi.kiosk.views`` must name a building (a channel without a registry)."""
        known = [b.id for b in registry.buildings] if registry is not None else channel_names
        for i, view in enumerate(hmi.kiosk.views):
            if view.startswith("building:") and view[len("building:"):] not in known:
                self.error(self.file, self.smap.line(hmi, "kiosk", "views", i),
                           f"hmi.kiosk.views: no building {view[len('building:'):]!r} "
                           f"(known: {', '.join(known) or 'none'})")

    def _read(self, file: str, what: str) -> dict[Any, Any] | None:
        """Return a YAML file's top-level mapping, or None after recording why not."""
        try:
            raw = FsPath(file).read_bytes()
        except FileNotFoundError:
            return self.error(file, 1, f"cannot read {what} file: no such file")
        except IsADirectoryError:
            return self.error(file, 1, f"cannot read {what} file: it is a directory")
        except (OSError, ValueError) as exc:
            return self.error(file, 1, f"cannot read {what} file: {getattr(exc, 'strerror', None) or exc}")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            return self.error(file, line, f"not UTF-8 text: byte {raw[exc.start]:#04x} at offset {exc.start}")
        try:
            data, lines, problems = load_yaml(text, file, os.environ)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 1
            column = f" (column {mark.column + 1})" if mark else ""
            what_went_wrong = exc.problem or exc.context or "invalid YAML"
            if what_went_wrong.startswith("but ") and exc.context:
                what_went_wrong = f"{exc.context}, {what_went_wrong}"
            return self.error(file, line, f"YAML syntax error: {what_went_wrong}{column}")
        except yaml.reader.ReaderError as exc:
            line = text.count("\n", 0, exc.position) + 1
            code = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or "\0")
            return self.error(file, line, f"YAML syntax error: character #x{code:04x} is not allowed")
        except yaml.YAMLError as exc:
            return self.error(file, 1, f"YAML error: {exc}")
        except RecursionError:
            return self.error(file, 1, "YAML nesting is too deep")
        except ValueError as exc:
            # PyYAML builds dates itself: `next_verification: 2026-13-10` looks like one but is none.
            line, value = _bad_timestamp(text)
            if not value:
                return self.error(file, 1, f"YAML error: {exc}")
            return self.error(file, line, f"{show_value(value)} is not a valid date or time ({exc}); "
                                          "quote it if it is meant as text")
        self.problems.extend(problems)
        self._lines[file] = lines
        self.smap.add_file(file, lines)
        if data is None:
            return self.error(file, 1, f"the {what} file is empty; its top level must be a mapping")
        if not isinstance(data, dict):
            kinds = {"site": f"of sections ({', '.join(SITE_KEYS)})", "profile": "with 'points:' or 'records:'"}
            message = f"the top level must be a mapping {kinds[what]}, not {show_value(data)}"
            return self.error(file, lines.get((), 1), message)
        return data

    def _validate(self, schema: Any, raw: Any, file: str, path: Path, items_failed: str = "") -> Any:
        """Validate ``raw`` at ``path`` of ``file``; return the result or None.

        ``items_failed`` names a list field whose failing items were already
        reported and removed, so that "must not be empty" is not added.
        """
        try:
            # `${PORT}` gives text; a key that wants a number gets the text's YAML reading.
            if isinstance(schema, type) and issubclass(schema, BaseModel):
                result = validate_with_env_types(schema.model_validate, raw)
            else:
                result = validate_with_env_types(schema.validate_python, raw)
        except ValidationError as exc:
            lines = self._lines.get(file, {})
            for error in exc.errors(include_url=False):
                at = (error.get("ctx") or {}).get("at")
                if at:  # a custom error about one key of the model (see scada.config.alarms)
                    error = {**error, "loc": (*error["loc"], *at)}
                loc = tuple(error["loc"])
                if items_failed and (
                    (loc == (items_failed,) and error["type"] == "too_short")
                    or (loc == () and error["type"] == "profile_kind")
                ):
                    continue
                message = describe_error(error, schema, path)
                self.error(file, nearest_line(lines, path + loc), message)
            return None
        if isinstance(result, BaseModel):
            self.smap.add(result, file, path)
        return result

    def _validate_with_items(
        self, schema: type[BaseModel], raw: Any, file: str, path: Path, field: str, item: type[BaseModel]
    ) -> tuple[Any, list[Any]]:
        """Validate each item of list ``field`` on its own, then the rest of ``raw``.

        Return the parent (None if it fails) and the items that validated.
        """
        if not isinstance(raw, dict) or not isinstance(_or(raw.get(field), []), list):
            return self._validate(schema, raw, file, path), []
        items, failed = [], False
        for index, raw_item in enumerate(_or(raw.get(field), [])):
            valid = self._validate(item, raw_item, file, path + (field, index))
            failed |= valid is None
            if valid is not None:
                items.append(valid)
        parent_raw = {**raw, field: items} if field in raw else raw
        return self._validate(schema, parent_raw, file, path, field if failed else ""), items

    def _channels(self, raw: Any) -> tuple[list[ChannelConfig], list[DeviceConfig], dict[int, str]]:
        """Validate the channel list.

        Return the channels whose type and devices can be checked, every
        valid device (also those on a channel with errors, for site-wide
        checks) and, by channel id, how far each channel can be checked:
        ``complete`` (everything validated), ``partial`` (some devices
        failed) or ``devices`` (a stand-in carrying only name, type and
        the valid devices of a channel whose own settings failed).
        """
        if not isinstance(raw, list):
            line = nearest_line(self._lines[self.file], ("channels",))
            self.error(self.file, line, f"channels: expected a list of channels, got {show_value(raw)}")
            return [], [], {}
        channels, devices, extent = [], [], {}
        for index, raw_channel in enumerate(raw):
            path = ("channels", index)
            # Devices are validated before their channel: give uplink meters their
            # default report period first.
            raw_channel = ChannelConfig._uplink_period_default(raw_channel)
            channel, valid = self._validate_with_items(
                ChannelConfig, raw_channel, self.file, path, "devices", DeviceConfig
            )
            devices += valid
            if channel is not None:
                channels.append(channel)
                all_valid = len(channel.devices) == len(_or(raw_channel.get("devices"), []))
                extent[id(channel)] = "complete" if all_valid else "partial"
            elif isinstance(raw_channel, dict) and raw_channel.get("type") in ("modbus-rtu", "modbus-tcp", "mbus"):
                # The address rules depend only on the type, so a typo in,
                # say, the baud rate should not hide a duplicate address.
                name = raw_channel.get("name")
                stand_in = ChannelConfig.model_construct(
                    name=name if isinstance(name, str) else format_path(path),
                    type=raw_channel["type"],
                    devices=valid,
                )
                self.smap.add(stand_in, self.file, path)
                channels.append(stand_in)
                extent[id(stand_in)] = "devices"
        return channels, devices, extent

    def _profile(self, raw: Any, file: str, path: Path) -> ProfileConfig | None:
        """Validate one profile, point by point."""
        if isinstance(raw, dict) and "records" in raw and "points" not in raw:
            items, item = "records", RecordConfig
        else:
            items, item = "points", PointConfig
        profile, _items = self._validate_with_items(ProfileConfig, raw, file, path, items, item)
        if profile is not None:
            # The archive checks point at lines inside an archive.
            for index, archive in enumerate(profile.archives):
                where = path + ("archives", index)
                self.smap.add(archive, file, where)
                self.smap.add(archive.record, file, where + ("record",))
                self.smap.add(archive.timestamp, file, where + ("timestamp",))
                for number, point in enumerate(archive.points):
                    self.smap.add(point, file, where + ("points", number))
            for index, status in enumerate(profile.status):
                self.smap.add(status, file, path + ("status", index))
        return profile

    def _inline_profiles(self, raw: Any) -> tuple[dict[str, ProfileConfig], set[str]]:
        """Validate the ``profiles:`` mapping; return the valid ones and the names of broken ones."""
        lines = self._lines[self.file]
        if not isinstance(raw, dict):
            message = f"profiles: expected a mapping of profile name to profile, got {show_value(raw)}"
            self.error(self.file, nearest_line(lines, ("profiles",)), message)
            return {}, set()
        profiles, broken = {}, set()
        for name, raw_profile in raw.items():
            path = ("profiles", name)
            if self._validate(_NAME, name, self.file, path) is None:
                continue
            profile = self._profile(raw_profile, self.file, path)
            if profile is None:
                broken.add(name)
            else:
                profiles[name] = profile
        return profiles, broken

    def _file_profiles(
        self, devices: list[DeviceConfig], profiles: dict[str, ProfileConfig], broken: set[str]
    ) -> str:
        """Add the referenced profiles not defined inline from profile files.

        A ``profiles/`` directory beside the site file comes before the
        built-in one, so a site can override a shipped profile.  Return a
        description of where files were looked for.
        """
        directories = [FsPath(self.file).parent / "profiles", BUILTIN_PROFILES_DIR]
        wanted = sorted({d.profile for d in devices if d.profile is not None} - profiles.keys() - broken)
        for name in wanted:
            if not _SAFE_FILE_NAME.fullmatch(name) or ".." in name:
                continue
            for directory in directories:
                candidate = directory / f"{name}.yaml"
                try:
                    present = candidate.is_file()
                except OSError:  # e.g. a name longer than the file system allows
                    present = False
                if not present:
                    continue
                file = str(candidate)
                data = self._read(file, "profile")
                profile = None if data is None else self._profile(data, file, ())
                if profile is None:
                    broken.add(name)
                else:
                    profiles[name] = profile
                break
        return "inline profiles, " + " and ".join(f"{d}/<name>.yaml" for d in directories)

    def _alarms(self, raw: Any, channels: list[ChannelConfig], profiles: dict[str, ProfileConfig],
                complete: bool, registry: Any = None) -> list[RuleConfig]:
        """Validate the ``alarms:`` list rule by rule, then check names and references.

        ``registry`` (the validated ``registry:`` section) gives imbalance
        rules their balance groups.

        References are only checked when every channel and device validated
        (``complete``): a device with an error of its own is not "unknown".
        """
        if not isinstance(raw, list):
            line = nearest_line(self._lines[self.file], ("alarms",))
            self.error(self.file, line, f"alarms: expected a list of rules, got {show_value(raw)}")
            return []
        rules = []
        lines = self._lines[self.file]
        for index, raw_rule in enumerate(raw):
            path = ("alarms", index)
            kind = raw_rule.get("type") if isinstance(raw_rule, dict) else None
            if isinstance(raw_rule, dict) and kind not in RULE_MODELS:
                if "type" not in raw_rule:
                    message = f"{format_path(path)}: missing required key 'type' ({', '.join(RULE_TYPES)})"
                    self.error(self.file, nearest_line(lines, path), message)
                else:
                    message = (f"{format_path(path + ('type',))}: {show_value(kind)} is not a rule type; "
                               f"use one of {', '.join(RULE_TYPES)}")
                    close = difflib.get_close_matches(str(kind), RULE_TYPES, n=1)
                    if close:
                        message += f" (did you mean {close[0]!r}?)"
                    self.error(self.file, nearest_line(lines, path + ("type",)), message)
                continue
            # A rule that is not a mapping gets the model's own "expected a mapping".
            rule = self._validate(RULE_MODELS.get(kind, RULE_MODELS["limit"]), raw_rule, self.file, path)
            if rule is not None:
                rules.append(rule)
        self.problems.extend(check_alarm_names(rules, self.smap))
        if complete:
            self.problems.extend(check_alarm_references(rules, site_tags(channels, profiles, registry), self.smap))
        return rules

    def _simulate_history(self, raw: Any, devices: list[DeviceConfig], simulate: bool | None
                          ) -> SimulateHistoryConfig | None:
        """Validate ``simulate_history:``: its gaps must name devices of the site; unused without simulate."""
        path = ("simulate_history",)
        section = self._validate(SimulateHistoryConfig, raw, self.file, path)
        if section is None:
            return None
        lines = self._lines[self.file]
        names = {d.name for d in devices}
        for name in section.gaps:
            if name not in names:
                close = difflib.get_close_matches(name, sorted(names), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.error(self.file, nearest_line(lines, path + ("gaps", name)),
                           f"simulate_history.gaps: no device named {show_value(name)}{hint}")
        if simulate is False:
            self.problems.append(Problem(self.file, nearest_line(lines, path),
                                         "simulate_history is only used with simulate: true; it is ignored",
                                         "warning"))
        return section

    def _registry(self, raw: Any, channels: list[ChannelConfig], profiles: dict[str, ProfileConfig],
                  complete: bool) -> RegistryConfig | None:
        """Validate the ``registry:`` section building by building (each meter on its own), then check it whole.

        Tags are only checked when every channel and device validated
        (``complete``), as for alarm rules.
        """
        path = ("registry",)
        if not isinstance(raw, dict) or not isinstance(_or(raw.get("buildings"), []), list):
            return self._validate(RegistryConfig, raw, self.file, path)
        buildings = []
        for index, raw_building in enumerate(_or(raw.get("buildings"), [])):
            where = path + ("buildings", index)
            building, _meters = self._validate_with_items(BuildingConfig, raw_building, self.file, where, "meters",
                                                          MeterConfig)
            if building is not None:
                register_lines(building, self.smap, self.file, where)
                buildings.append(building)
        registry = self._validate(RegistryConfig, {**raw, "buildings": buildings}, self.file, path)
        if registry is None:
            return None
        site = site_tags(channels, profiles) if complete else None
        devices = {d.name: d for c in channels for d in c.devices}
        self.problems.extend(check_registry(registry, site, tag_registers(channels, profiles), devices, self.smap))
        return registry

    def _cross_check(
        self,
        channels: list[ChannelConfig],
        devices: list[DeviceConfig],
        extent: dict[int, str],
        profiles: dict[str, ProfileConfig],
        broken: set[str],
        searched: str,
    ) -> None:
        """Run the checks that span several objects on everything that validated."""
        smap = self.smap
        found = self.problems
        found += check_channel_names(channels, smap)
        found += check_device_names(devices, smap)
        found += check_channel_pseudo_devices(channels, devices, smap)
        found += check_unique_ids(devices, smap)
        found += check_profiles_known(devices, profiles.keys() | broken, smap, searched)
        for name, profile in profiles.items():
            found += check_profile_registers(name, profile, smap)
            found += check_profile_archives(name, profile, smap)
            found += check_profile_status(name, profile, smap)
        for channel in channels:
            found += check_addresses(channel, smap)
            if extent[id(channel)] == "devices":
                continue
            found += check_transport_kind(channel, smap)
            found += check_device_kinds(channel, profiles, smap)
            found += check_poll_budget(channel, profiles, smap)
            # A device that failed validation may be a terminated one, so
            # counting terminators on a partial list would mislead.
            if extent[id(channel)] == "complete":
                found += check_termination(channel, smap)


def _bad_timestamp(text: str) -> tuple[int, str]:
    """Return the line and text of the first YAML date or time that cannot be built, else (1, "")."""
    timestamp = "tag:yaml.org,2002:timestamp"
    try:
        stack = [yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))]
    except (yaml.YAMLError, RecursionError):
        return 1, ""
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            if node.tag == timestamp:
                try:
                    yaml.SafeLoader("").construct_yaml_timestamp(node)
                except ValueError:
                    return node.start_mark.line + 1, node.value
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
        elif isinstance(node, yaml.MappingNode):
            stack.extend(item for pair in reversed(node.value) for item in reversed(pair))
    return 1, ""


def _or(value: Any, default: Any) -> Any:
    """Return ``default`` for a YAML null (an empty section), else ``value``."""
    return default if value is None else value
