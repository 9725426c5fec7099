# -*- test-case-name: tests.scada.config.test_config_validators -*-
"""Checks that span several objects of a configuration.

Each check is a plain function over already validated model objects that
returns the problems it finds; ``smap`` supplies their lines.  The loader
runs them on whatever part of a broken file did validate, so one bad device
does not hide a duplicate address elsewhere.
"""

from __future__ import annotations

import difflib
from typing import Collection, Iterable, Mapping

from .alarms import SiteTags, RuleConfig, resolve, status_point_problem
from .budget import plan_reads, requests_bus_time
from .model import POLLED_TYPES, UPLINK_TYPES, ChannelConfig, DeviceConfig, ProfileConfig
from .remote import ModemServerConfig, check_decoder
from .problems import Problem, SourceMap, show_value

#: Highest unicast address on a Modbus serial line; 0 is broadcast.
MAX_RTU_ADDRESS = 247
#: Most devices a channel may carry (one per RTU address).
MAX_DEVICES_PER_CHANNEL = 247
#: Highest M-Bus primary address of a meter (251-255 are special).
MAX_MBUS_PRIMARY = 250
#: Terminated nodes on a correct RS-485 trunk: one at each end.
MAX_TERMINATED_NODES = 2


def check_channel_names(channels: Iterable[ChannelConfig], smap: SourceMap) -> list[Problem]:
    """Report channel names used more than once."""
    problems = []
    first: dict[str, ChannelConfig] = {}
    for channel in channels:
        if channel.name in first:
            line = smap.line(first[channel.name], "name")
            problems.append(
                smap.problem(
                    channel, ("name",), f"duplicate channel name {channel.name!r} (first at line {line})"
                )
            )
        else:
            first[channel.name] = channel
    return problems


def check_channel_pseudo_devices(channels: Iterable[ChannelConfig], devices: Iterable[DeviceConfig],
                                 smap: SourceMap) -> list[Problem]:
    """Report devices named like a channel's statistics pseudo-device, ``channel-<channel>``.

    The channel's figures are published as ``channel-<channel>.<figure>``
    (:mod:`scada.channelstats`), so such a device would share their tags.
    """
    from scada.channelstats import channel_device

    pseudo = {}
    for channel in channels:
        if isinstance(channel.name, str):
            pseudo.setdefault(channel_device(channel.name), channel)
    problems = []
    for device in devices:
        channel = pseudo.get(device.name)
        if channel is not None:
            line = smap.line(channel, "name")
            problems.append(smap.problem(
                device, ("name",), f"device name {device.name!r} is taken by the statistics of channel "
                                   f"{channel.name!r} (line {line}): its figures are published as "
                                   f"{device.name}.<figure>; rename the device"))
    return problems


def check_device_names(devices: Iterable[DeviceConfig], smap: SourceMap) -> list[Problem]:
    """Report device names used more than once anywhere in the site.

    Tag names are ``<device>.<point>``, so two devices of one name would
    write into the same tags even on different channels.
    """
    problems = []
    first: dict[str, DeviceConfig] = {}
    for device in devices:
        if device.name in first:
            line = smap.line(first[device.name], "name")
            problems.append(
                smap.problem(
                    device, ("name",), f"duplicate device name {device.name!r} (first at line {line})"
                )
            )
        else:
            first[device.name] = device
    return problems


def check_transport_kind(channel: ChannelConfig, smap: SourceMap) -> list[Problem]:
    """Report a Modbus TCP channel configured with a serial port."""
    if channel.type == "modbus-tcp" and channel.transport is not None and channel.transport.tcp is None:
        where = smap.where(channel, "transport")
        message = f"{where}: type 'modbus-tcp' needs 'tcp: host:port', not 'serial'"
        return [smap.problem(channel, ("transport",), message)]
    return []


def check_addresses(channel: ChannelConfig, smap: SourceMap) -> list[Problem]:
    """Report device addresses missing, out of range or repeated, and overfull channels.

    Modbus RTU unicast addresses are 1-247; a Modbus TCP unit id is one
    byte, 0-255.  M-Bus meters have a primary address 0-250 or a secondary
    address.  Disabled devices count: they are still wired to the bus.
    """
    if channel.type == "mbus":
        return _check_mbus_addresses(channel, smap)
    if channel.type not in POLLED_TYPES:
        return []
    low, high = (1, MAX_RTU_ADDRESS) if channel.type == "modbus-rtu" else (0, 255)
    problems = []
    if len(channel.devices) > MAX_DEVICES_PER_CHANNEL:
        problems.append(
            smap.problem(
                channel,
                (),
                f"channel {channel.name!r} has {len(channel.devices)} devices; "
                f"at most {MAX_DEVICES_PER_CHANNEL} fit on one channel",
            )
        )
    first: dict[int, DeviceConfig] = {}
    for device in channel.devices:
        where = smap.where(device, "address")
        if device.secondary is not None:
            message = f"{smap.where(device, 'secondary')}: secondary addresses are M-Bus only; use 'address'"
            problems.append(smap.problem(device, ("secondary",), message))
        if device.address is None:
            message = f"{smap.where(device)}: device {device.name!r} needs 'address' ({low}-{high})"
            problems.append(smap.problem(device, (), message))
        elif not low <= device.address <= high:
            message = f"{where}: {device.address} is out of range {low}-{high}"
            problems.append(smap.problem(device, ("address",), message))
        elif device.address in first:
            problems.append(_used_twice(device, first[device.address], "address", smap))
        else:
            first[device.address] = device
    return problems


def _used_twice(device: DeviceConfig, other: DeviceConfig, key: str, smap: SourceMap) -> Problem:
    value = getattr(device, key)
    message = (
        f"{smap.where(device, key)}: {key} {value} of device {device.name!r} is already used by "
        f"device {other.name!r} at line {smap.line(other, key)}"
    )
    return smap.problem(device, (key,), message)


def _check_mbus_addresses(channel: ChannelConfig, smap: SourceMap) -> list[Problem]:
    """M-Bus: a primary address 0-250 or a secondary address per meter, each used once."""
    problems = []
    primary: dict[int, DeviceConfig] = {}
    secondary: dict[str, DeviceConfig] = {}
    for device in channel.devices:
        if (device.address is None) == (device.secondary is None):
            given = "both" if device.address is not None else "neither"
            message = (f"{smap.where(device)}: M-Bus meter {device.name!r} needs 'address' (primary, "
                       f"0-{MAX_MBUS_PRIMARY}) or 'secondary' (8-digit id), {given} given")
            problems.append(smap.problem(device, (), message))
        elif device.address is not None:
            if not 0 <= device.address <= MAX_MBUS_PRIMARY:
                message = (f"{smap.where(device, 'address')}: {device.address} is out of range "
                           f"0-{MAX_MBUS_PRIMARY} (251-255 are not meter addresses)")
                problems.append(smap.problem(device, ("address",), message))
            elif device.address in primary:
                problems.append(_used_twice(device, primary[device.address], "address", smap))
            else:
                primary[device.address] = device
        elif device.secondary in secondary:
            problems.append(_used_twice(device, secondary[device.secondary], "secondary", smap))
        else:
            secondary[device.secondary] = device
    return problems


def check_device_kinds(
    channel: ChannelConfig, profiles: Mapping[str, ProfileConfig], smap: SourceMap
) -> list[Problem]:
    """Check that devices fit their channel's protocol.

    A Modbus device needs a profile with ``points``; an M-Bus meter's
    profile, if any, must have ``records``; the unit loads of an M-Bus
    channel's meters must not exceed its master's ``unit_loads``.
    """
    problems = []
    if channel.type not in POLLED_TYPES:
        return check_remote_devices(channel, profiles, smap)
    mbus = channel.type == "mbus"
    for device in channel.devices:
        for key in ("dev_eui", "uplink_id", "decoder"):
            if getattr(device, key) is not None:
                message = (f"{smap.where(device, key)}: {key!r} belongs to lorawan/nbiot devices, not to a "
                           f"{channel.type} channel")
                problems.append(smap.problem(device, (key,), message))
        if device.points:
            message = (f"{smap.where(device, 'points')}: a {channel.type} device takes its registers from its "
                       "'profile'; 'points' are for hand-read and uplink meters")
            problems.append(smap.problem(device, ("points",), message))
        if device.profile is None:
            if not mbus:
                message = f"{smap.where(device)}: device {device.name!r} needs a 'profile'"
                problems.append(smap.problem(device, (), message))
            continue
        profile = profiles.get(device.profile)
        if profile is not None and (profile.protocol == "mbus") != mbus:
            has, needs = ("records (M-Bus)", "points (Modbus)") if mbus is False else ("points (Modbus)",
                                                                                    "records (M-Bus)")
            message = (f"{smap.where(device, 'profile')}: profile {device.profile!r} has {has}, but "
                       f"channel {channel.name!r} ({channel.type}) needs {needs}")
            problems.append(smap.problem(device, ("profile",), message))
    if not mbus and any(device.unit_loads != 1 for device in channel.devices):
        device = next(d for d in channel.devices if d.unit_loads != 1)
        message = f"{smap.where(device, 'unit_loads')}: unit loads are an M-Bus setting"
        problems.append(smap.problem(device, ("unit_loads",), message))
    capacity = getattr(channel, "unit_loads", None)
    if mbus and capacity is not None:
        used = sum(device.unit_loads for device in channel.devices)
        if used > capacity:
            message = (f"channel {channel.name!r}: its meters draw {used} unit loads but the master "
                       f"supplies {capacity} (unit_loads: {capacity}); split the bus or use a bigger master")
            problems.append(smap.problem(channel, ("unit_loads",), message))
    return problems


def check_termination(channel: ChannelConfig, smap: SourceMap) -> list[Problem]:
    """Check that an RS-485 segment is terminated at two ends, no more.

    The terminated nodes are the port (``transport.rs485.termination``) and
    every device with ``termination: true``.  Only a serial Modbus RTU
    channel is a segment we can see; behind a TCP gateway the wiring is
    the gateway's business.
    """
    if channel.type != "modbus-rtu" or channel.transport.serial is None:
        return []
    nodes = [f"port {channel.transport.serial}"] if (
        channel.transport.rs485 and channel.transport.rs485.termination
    ) else []
    nodes += [device.name for device in channel.devices if device.termination]
    if len(nodes) > MAX_TERMINATED_NODES:
        message = (
            f"segment {channel.name!r} has {len(nodes)} terminated nodes ({', '.join(nodes)}); "
            "an RS-485 trunk is terminated at its two ends only"
        )
        return [smap.problem(channel, (), message)]
    if not nodes:
        message = (
            f"segment {channel.name!r} has no terminated node; "
            "an RS-485 trunk needs 120 Ω at both ends"
        )
        return [smap.problem(channel, (), message, "warning")]
    return []


def check_profile_registers(name: str, profile: ProfileConfig, smap: SourceMap) -> list[Problem]:
    """Report overlapping registers, repeated point names and too wide points.

    Two points of one function whose register ranges intersect decode the
    same registers twice, which is almost always a typo in ``register``.
    """
    problems = []
    names: dict[str, object] = {}
    for point in [*profile.points, *profile.records]:
        if point.name in names:
            line = smap.line(names[point.name], "name")
            message = f"duplicate point name {point.name!r} in profile {name!r} (first at line {line})"
            problems.append(smap.problem(point, ("name",), message))
        else:
            names[point.name] = point
        if point in profile.records:
            continue
        if point.count > profile.max_registers:
            message = (
                f"{smap.where(point, 'type')}: point {point.name!r} ({point.type}) needs "
                f"{point.count} registers but profile {name!r} has max_registers {profile.max_registers}"
            )
            problems.append(smap.problem(point, ("type",), message))
    reach = None  # the point whose range ends last so far, per function
    for point in sorted(profile.points, key=lambda p: (p.function, p.register)):
        if reach is not None and reach.function == point.function:
            reach_end = reach.register + reach.count
            if point.register < reach_end:
                message = (
                    f"{smap.where(point, 'register')}: point {point.name!r} ({point.function} "
                    f"{_span(point.register, point.count)}) overlaps point {reach.name!r} "
                    f"({_span(reach.register, reach.count)}, line {smap.line(reach, 'register')}) "
                    f"in profile {name!r}"
                )
                problems.append(smap.problem(point, ("register",), message))
            if point.register + point.count <= reach_end:
                continue
        reach = point
    return problems


def _span(start: int, count: int) -> str:
    """Return a register range as ``start`` or ``start-last``."""
    return str(start) if count == 1 else f"{start}-{start + count - 1}"


def check_profile_archives(name: str, profile: ProfileConfig, smap: SourceMap) -> list[Problem]:
    """Check a profile's ``archives``: layout inside the record window, names, overlaps.

    Archives are Modbus register maps, so an M-Bus profile has none (its
    archive comes with its records).  Each archive's point names must be
    names of the profile's live points, so that back-filled values land in
    the same tags.  The record window must fit ``max_registers``, its
    points and timestamp must lie inside it and not overlap, and no index
    register or record window may overlap another archive's or a live
    holding point.
    """
    if not profile.archives:
        return []
    if profile.records:
        message = (f"profile {name!r}: 'archives' describe Modbus archive registers; an M-Bus meter's "
                   "archive comes with its records (storage numbers and dates)")
        return [smap.problem(profile, ("archives",), message)]
    problems: list[Problem] = []
    live = {point.name for point in profile.points}
    seen: dict[str, object] = {}
    for archive in profile.archives:
        if archive.name in seen:
            message = (f"duplicate archive name {archive.name!r} in profile {name!r} "
                       f"(first at line {smap.line(seen[archive.name], 'name')})")
            problems.append(smap.problem(archive, ("name",), message))
        else:
            seen[archive.name] = archive
        problems += _check_record_layout(name, profile, archive, live, smap)
    problems += _check_archive_registers(name, profile, smap)
    return problems


def _check_record_layout(name, profile: ProfileConfig, archive, live: set[str], smap: SourceMap) -> list[Problem]:
    """Check one archive's record: window size, points and timestamp inside it, no overlap, known names."""
    problems = []
    record, count = archive.record, archive.record.count
    if count > profile.max_registers:
        message = (f"{smap.where(record, 'count')}: a record window of {count} registers is more than "
                   f"profile {name!r} reads at once (max_registers {profile.max_registers})")
        problems.append(smap.problem(record, ("count",), message))
    stamp = archive.timestamp
    fields = [("timestamp", stamp)]
    if stamp.offset + stamp.count > count:
        message = (f"{smap.where(stamp, 'offset')}: the timestamp ({stamp.type}) at offset {stamp.offset} "
                   f"needs record registers {_span(stamp.offset, stamp.count)}, but the record has {count} "
                   f"(0-{count - 1})")
        problems.append(smap.problem(stamp, ("offset",), message))
    names: dict[str, object] = {}
    for point in archive.points:
        if point.name in names:
            message = (f"duplicate point {point.name!r} in archive {archive.name!r} "
                       f"(first at line {smap.line(names[point.name], 'name')})")
            problems.append(smap.problem(point, ("name",), message))
        names.setdefault(point.name, point)
        if point.name not in live:
            message = (f"{smap.where(point, 'name')}: archive {archive.name!r} names {point.name!r}, which is "
                       f"not a point of profile {name!r}; archive values back-fill the live points' tags")
            close = difflib.get_close_matches(point.name, sorted(live), n=1)
            if close:
                message += f" (did you mean {close[0]!r}?)"
            problems.append(smap.problem(point, ("name",), message))
        if point.offset + point.count > count:
            message = (f"{smap.where(point, 'offset')}: point {point.name!r} ({point.type}) at offset "
                       f"{point.offset} needs record registers {_span(point.offset, point.count)}, but the "
                       f"record has {count} (0-{count - 1})")
            problems.append(smap.problem(point, ("offset",), message))
        fields.append((f"point {point.name!r}", point))
    fields.sort(key=lambda f: f[1].offset)
    for (label_a, a), (label_b, b) in zip(fields, fields[1:]):
        if b.offset < a.offset + a.count:
            message = (f"{smap.where(b, 'offset')}: {label_b} (record registers {_span(b.offset, b.count)}) "
                       f"overlaps {label_a} ({_span(a.offset, a.count)}, line {smap.line(a, 'offset')}) "
                       f"in archive {archive.name!r}")
            problems.append(smap.problem(b, ("offset",), message))
    return problems


def _check_archive_registers(name, profile: ProfileConfig, smap: SourceMap) -> list[Problem]:
    """Report index registers and record windows that overlap each other or live holding points."""
    # (first, count, what, object, key) of every holding register range in use.
    used = [(p.register, p.count, f"point {p.name!r}", p, "register")
            for p in profile.points if p.function == "holding"]
    problems = []
    for archive in profile.archives:
        mine = [(archive.index_register, 1, f"the index register of archive {archive.name!r}", archive,
                 "index_register"),
                (archive.record.register, archive.record.count, f"the record window of archive {archive.name!r}",
                 archive.record, "register")]
        for start, count, what, obj, key in mine:
            for o_start, o_count, o_what, o_obj, o_key in used:
                if start < o_start + o_count and o_start < start + count:
                    message = (f"{smap.where(obj, key)}: {what} (holding {_span(start, count)}) overlaps "
                               f"{o_what} (holding {_span(o_start, o_count)}, line {smap.line(o_obj, o_key)}) "
                               f"in profile {name!r}")
                    problems.append(smap.problem(obj, (key,), message))
                    break
        used += mine
    return problems


def check_profiles_known(
    devices: Iterable[DeviceConfig],
    known: Collection[str],
    smap: SourceMap,
    searched: str = "",
) -> list[Problem]:
    """Report devices whose profile is neither inline nor in a profile file.

    ``known`` should include profiles that exist but failed validation, so
    that their own errors are not echoed as "unknown profile" here;
    ``searched`` says where files were looked for.
    """
    problems = []
    for device in devices:
        if device.profile is None or device.profile in known:
            continue
        message = f"unknown profile {show_value(device.profile)} for device {device.name!r}"
        close = difflib.get_close_matches(device.profile, list(known), n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        elif searched:
            message += f"; looked in {searched}"
        problems.append(smap.problem(device, ("profile",), message))
    return problems


def check_poll_budget(
    channel: ChannelConfig, profiles: Mapping[str, ProfileConfig], smap: SourceMap
) -> list[Problem]:
    """Warn when one round over a channel's devices outlasts its shortest poll period.

    The bus carries one transaction at a time, so if reading every device
    once takes longer than the fastest poll, polls fall behind however the
    scheduler orders them.  Only enabled devices with a known profile count.
    Modbus TCP has no shared serial line and is not checked.
    """
    if channel.type != "modbus-rtu":
        return []
    transport = channel.transport
    polled = [d for d in channel.devices if d.enabled and d.profile in profiles and profiles[d.profile].points]
    if not polled:
        return []
    total = 0.0
    for device in polled:
        profile = profiles[device.profile]
        requests = plan_reads(profile.points, profile.max_registers)
        total += requests_bus_time(requests, transport.baudrate, transport.parity, transport.stopbits)
    shortest = min(device.poll for device in polled)
    if total <= shortest:
        return []
    plural = "device" if len(polled) == 1 else "devices"
    message = (
        f"channel {channel.name!r}: one round of {len(polled)} {plural} needs {total:.2f} s of "
        f"bus time at {transport.baudrate} Bd but the shortest poll period is {shortest:g} s"
    )
    return [smap.problem(channel, (), message, "warning")]


def check_alarm_names(rules: Iterable[RuleConfig], smap: SourceMap) -> list[Problem]:
    """Report alarm rule names used more than once (alarm ids are ``<rule>:<tag>``)."""
    problems = []
    first: dict[str, object] = {}
    for rule in rules:
        if rule.name in first:
            message = (f"{smap.where(rule, 'name')}: duplicate alarm rule name {rule.name!r} "
                       f"(first at line {smap.line(first[rule.name], 'name')})")
            problems.append(smap.problem(rule, ("name",), message))
        else:
            first[rule.name] = rule
    return problems


def check_alarm_references(rules: Iterable[RuleConfig], site: SiteTags, smap: SourceMap) -> list[Problem]:
    """Report tags and devices that alarm rules name but the site does not have.

    Matching is :func:`scada.config.alarms.resolve`'s, the rule builder's
    own: an unknown name or a glob that matches nothing is an error naming
    the rule and the reference; a tag of an M-Bus meter mapped
    automatically cannot be checked and is accepted with a warning.
    """
    problems = []
    for rule in rules:
        for finding in resolve(rule, site).findings:
            message = f"{smap.where(rule, *finding.at)}: {finding.message}"
            problems.append(smap.problem(rule, finding.at, message, finding.severity))
    return problems


def check_profile_status(name: str, profile: ProfileConfig, smap: SourceMap) -> list[Problem]:
    """Check a profile's ``status:`` declarations against its points.

    Each names an existing point (for M-Bus also ``status``, the header
    byte) wide enough for its bits, an integer for Modbus, and no point is
    declared twice (its alarms would be counted twice).
    """
    problems = []
    seen: dict[str, object] = {}
    for status in profile.status:
        if status.point in seen:
            message = (f"{smap.where(status, 'point')}: point {status.point!r} has status flags declared twice "
                       f"in profile {name!r} (first at line {smap.line(seen[status.point], 'point')}); "
                       "put all its bits in one entry")
            problems.append(smap.problem(status, ("point",), message))
            continue
        seen[status.point] = status
        wrong = status_point_problem(profile, status)
        if wrong is not None:
            at, text = wrong
            message = f"{smap.where(status, *at)}: profile {name!r}: {text}"
            problems.append(smap.problem(status, at, message))
    return problems


def check_remote_devices(channel: ChannelConfig, profiles: Mapping[str, ProfileConfig],
                         smap: SourceMap) -> list[Problem]:
    """Check the meters of ``lorawan``, ``nbiot`` and ``manual`` channels.

    LoRaWAN meters need a ``dev_eui``, NB-IoT meters an ``uplink_id``; a
    ``decoder`` must exist and accept its ``decoder_options``.  Hand-read
    meters need ``points`` or a profile with ``points``.  Bus addresses
    mean nothing on these channels.
    """
    problems = []
    for device in channel.devices:
        seen: set[str] = set()
        for index, point in enumerate(device.points):
            if point.name in seen:
                message = (f"{smap.where(device, 'points', index, 'name')}: point {point.name!r} of device "
                           f"{device.name!r} is listed twice")
                problems.append(smap.problem(device, ("points", index, "name"), message))
            seen.add(point.name)
        for key in ("address", "secondary"):
            if getattr(device, key) is not None:
                message = f"{smap.where(device, key)}: {key!r} is a bus address; a {channel.type} meter has none"
                problems.append(smap.problem(device, (key,), message))
        wanted = {"lorawan": "dev_eui", "nbiot": "uplink_id"}.get(channel.type)
        for key in ("dev_eui", "uplink_id"):
            if key == wanted and getattr(device, key) is None:
                example = "'70B3D59BA0000101'" if key == "dev_eui" else "its IMEI '861234567890123'"
                message = f"{smap.where(device)}: {channel.type} meter {device.name!r} needs {key!r}, e.g. {example}"
                problems.append(smap.problem(device, (), message))
            elif key != wanted and getattr(device, key) is not None:
                message = f"{smap.where(device, key)}: {key!r} does not apply to a {channel.type} channel"
                problems.append(smap.problem(device, (key,), message))
        if channel.type == "manual":
            if device.decoder is not None:
                message = f"{smap.where(device, 'decoder')}: a hand-read meter has no payload decoder"
                problems.append(smap.problem(device, ("decoder",), message))
            profile = profiles.get(device.profile) if device.profile is not None else None
            if not device.points and (profile is None or not profile.points):
                message = (f"{smap.where(device)}: hand-read meter {device.name!r} needs 'points' (e.g. "
                           "[{name: volume_m3, unit: m3}]) or a Modbus 'profile' naming its registers")
                problems.append(smap.problem(device, (), message))
            continue
        if device.profile is not None:
            message = (f"{smap.where(device, 'profile')}: a {channel.type} meter's values come from its "
                       "'decoder' (or 'points'), not a register profile")
            problems.append(smap.problem(device, ("profile",), message))
        if device.decoder is not None:
            from channels.lorawan import decoders

            try:
                decoders.get(device.decoder)
            except KeyError as exc:
                message = f"{smap.where(device, 'decoder')}: device {device.name!r}: {exc.args[0]}"
                problems.append(smap.problem(device, ("decoder",), message))
            else:
                try:
                    check_decoder(device.decoder, device.decoder_options)
                except ValueError as exc:
                    message = f"{smap.where(device, 'decoder_options')}: device {device.name!r}: {exc}"
                    problems.append(smap.problem(device, ("decoder_options",), message))
            if device.points:
                message = (f"{smap.where(device, 'points')}: device {device.name!r} gets its points from decoder "
                           f"{device.decoder!r}; 'points' are for meters without one")
                problems.append(smap.problem(device, ("points",), message))
        elif device.decoder_options:
            message = f"{smap.where(device, 'decoder_options')}: decoder_options without a 'decoder'"
            problems.append(smap.problem(device, ("decoder_options",), message))
    return problems


def check_unique_ids(devices: Iterable[DeviceConfig], smap: SourceMap) -> list[Problem]:
    """Report a serial number, device EUI or NB-IoT ID given to two devices of the site."""
    problems = []
    for key in ("serial", "dev_eui", "uplink_id"):
        first: dict[str, DeviceConfig] = {}
        for device in devices:
            value = getattr(device, key)
            if value is None:
                continue
            if value in first:
                other = first[value]
                message = (f"{smap.where(device, key)}: {key} {value!r} of device {device.name!r} is already "
                           f"used by device {other.name!r} at line {smap.line(other, key)}")
                problems.append(smap.problem(device, (key,), message))
            else:
                first[value] = device
    return problems


def check_modems(channels: Iterable[ChannelConfig], server: ModemServerConfig | None,
                 smap: SourceMap) -> list[Problem]:
    """Report modem channels without a ``modem_server`` section, and a modem ID used by two channels."""
    problems = []
    first: dict[str, ChannelConfig] = {}
    for channel in channels:
        transport = channel.transport
        if transport is None or transport.modem is None:
            continue
        if server is None:
            message = (f"{smap.where(channel, 'transport')}: channel {channel.name!r} waits for modem "
                       f"{transport.modem!r} to dial in, but the site has no 'modem_server' section "
                       "(e.g. modem_server: {listen: 0.0.0.0:5020})")
            problems.append(smap.problem(channel, ("transport", "modem"), message))
        if transport.modem in first:
            other = first[transport.modem]
            message = (f"{smap.where(channel, 'transport')}: modem {transport.modem!r} already carries channel "
                       f"{other.name!r}; one modem serves one bus")
            problems.append(smap.problem(channel, ("transport", "modem"), message))
        else:
            first[transport.modem] = channel
    return problems
