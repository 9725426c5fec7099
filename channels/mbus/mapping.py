# -*- test-case-name: tests.channels.mbus.test_mapping -*-
"""From decoded data records to tag samples: by profile or automatically.

A meter's answer is a list of records, each identified by its quantity
(VIF), function, storage number, tariff and subunit (DIF/DIFE).  A *profile*
names the records a site wants and the tags they go to; without one, every
numeric record becomes a tag named after what it is.

Records with a storage number above 0 are the meter's archive (monthly
readings on the billing date, for example).  When the telegram also
carries a date record of the same storage number and subunit, such a
record is a *historical* sample of the storage-0 tag it corresponds to, at
that date; otherwise it is a tag of its own (``…_s<n>``).

Which archive a historical sample belongs to is told by its date
(:func:`archive_of`): 00:00 local on the 1st is the monthly archive, any
other midnight the daily one, anything else the hourly one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from typing import Iterable, Sequence

#: Quantities whose records carry a point in time rather than a measurement.
DATE_QUANTITIES = frozenset({"date", "datetime"})
#: Quantities that say which meter this is, not what it measured: not tags.
IDENTITY_QUANTITIES = frozenset({"fabrication_number", "enhanced_identification", "bus_address"})
#: The archives an M-Bus meter's dated records are sorted into, and their intervals (seconds or "month").
ARCHIVE_INTERVALS = {"hourly": 3600.0, "daily": 86400.0, "monthly": "month"}


def archive_of(when: float, tz: tzinfo) -> str:
    """Return the archive a record dated ``when`` (unix time) belongs to, by its local date and time."""
    local = datetime.fromtimestamp(when, tz)
    if local.hour == local.minute == local.second == 0:
        return "monthly" if local.day == 1 else "daily"
    return "hourly"


@dataclass(frozen=True, slots=True)
class RecordRule:
    """One profile entry: which record (storage 0) feeds tag ``tag``, times ``scale``.

    ``vib``/``dib`` (raw bytes) and ``quantity`` are optional match keys;
    function, storage, tariff and subunit always match.
    """

    tag: str
    quantity: str | None = None
    vib: bytes | None = None
    dib: bytes | None = None
    function: str = "instantaneous"
    storage: int = 0
    tariff: int = 0
    subunit: int = 0
    scale: float = 1.0

    def matches(self, record, storage: int | None = None) -> bool:
        """Tell whether ``record`` is this rule's (at ``storage``, default the rule's own)."""
        if record.function != self.function or record.tariff != self.tariff or record.subunit != self.subunit:
            return False
        if record.storage != (self.storage if storage is None else storage):
            return False
        if self.quantity is not None and record.quantity != self.quantity:
            return False
        if self.vib is not None and record.vib != self.vib:
            return False
        # The DIB encodes the storage number, so it can only match the rule's own.
        return self.dib is None or storage is not None or record.dib == self.dib


@dataclass(frozen=True, slots=True)
class Mapped:
    """What one poll's records come to."""

    live: list[tuple[str, float, str]]          # (tag, value, unit)
    history: list[tuple[str, float, float]]     # (tag, value, unix time)
    clock: float | None                         # the meter's clock as unix time
    missing: list[str]                          # profile tags no record fed


def _scaled(value: float, scale: float) -> float:
    """Return ``value * scale`` without the binary noise of decimal scales (0.001 → …00000001)."""
    return value if scale == 1.0 else float(f"{value * scale:.12g}")


def auto_name(record, storage: bool = True) -> str:
    """Return the automatic tag name (without device) of a record.

    ``energy``, ``volume_flow_maximum``, ``energy_t2``, ``volume_u1``,
    ``volume_s3``: quantity, then the function if not instantaneous, the
    tariff and subunit if not 0, and the storage number if asked and not 0.
    """
    name = record.quantity
    if record.function != "instantaneous":
        name += f"_{record.function}"
    if record.tariff:
        name += f"_t{record.tariff}"
    if record.subunit:
        name += f"_u{record.subunit}"
    if storage and record.storage:
        name += f"_s{record.storage}"
    return name


def to_unix(value: str, tz: tzinfo) -> float | None:
    """Turn a decoded ISO date or date-time (meter local time) into unix time; None if not one."""
    try:
        if len(value) == 10:
            moment = datetime.combine(date.fromisoformat(value), time(0, 0))
        else:
            moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.timestamp()


class RecordMapper:
    """Map the records of one device's poll to samples.

    ``rules`` is the device's profile; ``None`` maps automatically.  Names
    are ``<device>.<name>``; in automatic mode a name that repeats within
    one poll gets ``_2``, ``_3``… in telegram order.
    """

    def __init__(self, device: str, tz: tzinfo, rules: Sequence[RecordRule] | None = None) -> None:
        self.device = device
        self.tz = tz
        self.rules = None if rules is None else list(rules)

    @property
    def automatic(self) -> bool:
        """Tell whether tags come from the records themselves."""
        return self.rules is None

    def map(self, records: Iterable) -> Mapped:
        """Return the live samples, historical samples and meter clock of ``records``."""
        # A record the meter itself flags (no data, time invalid, an
        # impossible date) says nothing about the quantity: left out.
        records = [r for r in records if getattr(r, "error", None) is None]
        dates: dict[tuple[int, int], float] = {}
        clock = None
        for record in records:
            if record.quantity in DATE_QUANTITIES and isinstance(record.value, str):
                when = to_unix(record.value, self.tz)
                if when is None:
                    continue
                if record.storage:
                    dates.setdefault((record.storage, record.subunit), when)
                elif record.quantity == "datetime" and record.function == "instantaneous" and clock is None:
                    # Type F (a 4-byte record) counts whole minutes: the
                    # middle of the minute halves the error of the drift.
                    clock = when + (30.0 if record.dib and record.dib[0] & 0x0F == 0x04 else 0.0)
        numeric = [r for r in records if isinstance(r.value, float) and r.quantity not in DATE_QUANTITIES]
        if self.rules is None:
            return self._auto(numeric, dates, clock)
        return self._profile(numeric, dates, clock)

    def _auto(self, records, dates, clock) -> Mapped:
        live, history, seen = [], [], {}
        prefix = self.device + "."
        for record in records:
            if record.quantity in IDENTITY_QUANTITIES:
                continue
            when = dates.get((record.storage, record.subunit)) if record.storage else None
            name = auto_name(record, storage=when is None)
            count = seen[(name, when)] = seen.get((name, when), 0) + 1
            if count > 1:
                name += f"_{count}"
            if when is None:
                live.append((prefix + name, record.value, record.unit))
            else:
                history.append((prefix + name, record.value, when))
        return Mapped(live, history, clock, [])

    def _profile(self, records, dates, clock) -> Mapped:
        live, history, missing = [], [], []
        for rule in self.rules:
            found = next((r for r in records if rule.matches(r)), None)
            if found is None:
                missing.append(rule.tag)
            else:
                live.append((rule.tag, _scaled(found.value, rule.scale), found.unit))
            if rule.storage:
                continue
            for record in records:
                when = dates.get((record.storage, record.subunit)) if record.storage else None
                if when is not None and rule.matches(record, record.storage):
                    history.append((rule.tag, _scaled(record.value, rule.scale), when))
        return Mapped(live, history, clock, missing)
