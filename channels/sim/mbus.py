# -*- test-case-name: tests.channels.sim.test_sim_mbus -*-
"""Simulated M-Bus meters: heat and water meters that answer like real ones.

A :class:`SimMBusMeter` keeps the link state of EN 13757-2: it answers
``SND_NKE`` with ``E5`` and forgets its frame count bit (FCB); it answers
``REQ_UD2`` with its next telegram when the FCB toggled (or right after a
reset) and repeats the last one when it did not, which is what makes a
master's retry safe; it is selected by ``SND_UD`` CI 52 to address 253 when
the mask (with ``F`` wildcards) matches its secondary address, and
deselected by a select that does not match or by ``SND_NKE`` to 253.

A heat meter answers in three telegrams: current values and its clock
(ending with DIF ``1F``, more follows), then its monthly archive in two
halves: readings on the 1st of each month, storage numbers 1-12 with their
dates.  A water meter answers in one telegram with last month's reading.
Values come from the same physics models as the Modbus simulators.

:class:`SimMBusSegment` is the wire: every meter sees every frame; when
several answer at once (a broadcast, a wildcard select, two meters at one
primary address) the master hears a collision.  On a real bus the
currents of the answers add up, the master's level converter sees the
bits of both (a space from either wins, i.e. the bitwise AND) and usually
a framing error on top; here ACKs that collide arrive as several ``E5``
bytes ("extra bytes after E5") and longer answers as their bytewise AND,
which fails the checksum.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timezone
from typing import Sequence

from channels.mbus import build, link
from channels.sim.models import BaseModel
from channels.sim.slave import _SlaveProtocol

#: Behaviours a simulated meter can be switched to (the Modbus names where they mean the same).
FAULTS = ("normal", "silent", "exception", "corrupt_crc", "slow")
#: Extra answer delay of the ``slow`` fault: past the response window at any baud rate.
SLOW_DELAY_S = 2.0
#: Medium codes (EN 13757-3) of the simulated kinds.
MEDIUM = {"heat": 0x04, "warm_water": 0x06, "water": 0x07, "cold_water": 0x16}
#: Months of archive a heat meter keeps, and how many go in one telegram.
ARCHIVE_MONTHS = 12
ARCHIVE_PER_TELEGRAM = 6
#: Application error "application busy" (EN 13757-3 CI 70) for the ``exception`` fault.
APPLICATION_BUSY = 0x08


def _bcd_digits(value: float, scale: float, digits: int) -> int:
    """Return ``value / scale`` rounded, kept within ``digits`` decimal digits (a counter rolls over)."""
    return int(round(value / scale)) % (10 ** digits)


def month_starts(t_local: datetime, count: int) -> list[date]:
    """Return the 1st of the current month and of the ``count - 1`` months before, newest first."""
    year, month = t_local.year, t_local.month
    starts = []
    for _ in range(count):
        starts.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return starts


class SimMBusMeter:
    """One simulated M-Bus meter.

    ``kind`` is ``heat`` or a water medium (``water``, ``warm_water``,
    ``cold_water``); ``model`` gives the values (a heat or water model of
    :mod:`channels.sim.models`).  ``primary`` may be None (secondary
    addressing only, answers no primary address).  ``clock_drift_s`` puts
    the meter's clock off by that much; ``utc_offset`` is the site's standard
    offset (the meter shows local time).
    """

    def __init__(
        self,
        name: str,
        *,
        primary: int | None,
        ident: int,
        model: BaseModel,
        kind: str = "heat",
        manufacturer: str = "KRT",
        version: int = 1,
        utc_offset: float = 10800.0,
        clock_drift_s: float = 0.0,
        fault: str = "normal",
    ) -> None:
        if kind not in MEDIUM:
            raise ValueError(f"meter {name!r}: unknown M-Bus meter kind {kind!r} (one of {', '.join(MEDIUM)})")
        if not 0 <= ident <= 99_999_999:
            raise ValueError(f"meter {name!r}: identification number {ident} has more than 8 digits")
        self.name = name
        self.primary = primary
        self.ident = ident
        self.model = model
        self.kind = kind
        self.manufacturer = manufacturer
        self.version = version
        self.medium = MEDIUM[kind]
        self.utc_offset = utc_offset
        self.clock_drift_s = clock_drift_s
        self.fault = fault
        self.selected = False
        self.access = 0
        self._last_fcb: bool | None = None
        self._last_reply: bytes | None = None
        self._next_telegram = 0
        self.header_bytes = build.long_header(ident, manufacturer, version, self.medium, 0)[:8]

    @property
    def fault(self) -> str:
        """Return the current fault (see :data:`FAULTS`)."""
        return self._fault

    @fault.setter
    def fault(self, value: str) -> None:
        if value not in FAULTS:
            raise ValueError(f"unknown fault {value!r}; one of {', '.join(FAULTS)}")
        self._fault = value

    @property
    def address(self) -> str:
        """Return how the meter is addressed, for status lines."""
        secondary = link.secondary_text(self.header_bytes)
        return secondary if self.primary is None else f"{self.primary} ({secondary})"

    @property
    def delay(self) -> float:
        """Return the extra answer delay of the current fault."""
        return SLOW_DELAY_S if self._fault == "slow" else 0.0

    # ----------------------------------------------------------------- link

    def _addressed(self, a: int) -> bool:
        return a == self.primary or a in (link.ADDR_BROADCAST_REPLY, link.ADDR_BROADCAST) or (
            a == link.ADDR_SELECTED and self.selected)

    def matches(self, mask: bytes) -> bool:
        """Tell whether an 8-byte secondary address mask (with F/FF wildcards) selects this meter."""
        mine = self.header_bytes
        for i in range(4):  # the id, BCD: wildcards per nibble
            m, v = mask[i], mine[i]
            if (m >> 4) != 0xF and (m >> 4) != (v >> 4):
                return False
            if (m & 0xF) != 0xF and (m & 0xF) != (v & 0xF):
                return False
        if (mask[4], mask[5]) != (0xFF, 0xFF) and mask[4:6] != mine[4:6]:
            return False
        return all(mask[i] == 0xFF or mask[i] == mine[i] for i in (6, 7))

    def handle(self, frame: link.Frame, t: float) -> bytes | None:
        """Return the meter's answer to ``frame`` at unix time ``t`` (None: it keeps quiet)."""
        if self._fault == "silent":
            return None
        c, a = frame.c, frame.a
        if frame.kind == "short" and c == link.C_SND_NKE:
            if not self._addressed(a):
                return None
            self._last_fcb = None
            self._last_reply = None
            self._next_telegram = 0
            if a == link.ADDR_SELECTED:
                self.selected = False
            return None if a == link.ADDR_BROADCAST else bytes((link.ACK,))
        if frame.kind == "short" and c & 0xCF == 0x4B:  # REQ_UD2, any FCB/FCV
            if not self._addressed(a) or a == link.ADDR_BROADCAST:
                return None
            return self._reply(c, t)
        if frame.kind in ("long", "control") and c & 0xDF == link.C_SND_UD & 0xDF and a == link.ADDR_SELECTED:
            if frame.ci == link.CI_SELECT and len(frame.data) == 8:
                self.selected = self.matches(frame.data)
                return bytes((link.ACK,)) if self.selected else None
            if frame.ci == link.CI_DESELECT and self.selected:
                self.selected = False
                return bytes((link.ACK,))
        return None

    def _reply(self, c: int, t: float) -> bytes:
        fcv, fcb = bool(c & link.FCV), bool(c & link.FCB)
        if fcv and self._last_reply is not None and fcb == self._last_fcb:
            return self._last_reply  # the master missed it: the same telegram again
        if fcv:
            self._last_fcb = fcb
        telegrams = self.telegrams(t)
        index = self._next_telegram if self._next_telegram < len(telegrams) else 0
        self._next_telegram = index + 1 if index + 1 < len(telegrams) else 0
        self.access = (self.access + 1) & 0xFF
        if self._fault == "exception":
            user = bytes((APPLICATION_BUSY,))
            ci = 0x70
        else:
            user = telegrams[index]
            ci = 0x72
        address = self.primary if self.primary is not None else 0
        reply = link.long_frame(link.C_RSP_UD, address, ci, user)
        if self._fault == "corrupt_crc":
            reply = reply[:-2] + bytes(((reply[-2] + 1) & 0xFF,)) + reply[-1:]
        self._last_reply = reply
        return reply

    # ------------------------------------------------------------ telegrams

    def meter_time(self, t: float) -> datetime:
        """Return the meter's local clock at unix time ``t`` (drift included)."""
        return datetime.fromtimestamp(t + self.utc_offset + self.clock_drift_s, tz=timezone.utc).replace(tzinfo=None)

    def _header(self) -> bytes:
        status = 0
        return build.long_header(self.ident, self.manufacturer, self.version, self.medium, self.access, status)

    def telegrams(self, t: float, archive: bool = True) -> list[bytes]:
        """Return the user data (after CI) of every telegram of one read at unix time ``t``.

        Without ``archive`` a heat meter's read ends after the telegram of
        current values (the simulated history has no use for the archive's
        twelve months at every hour it computes).
        """
        if self.kind == "heat":
            return self._heat(t, archive)
        return [self._water(t)]

    def _archive_times(self, t: float, months: int) -> list[tuple[date, float]]:
        """Return (date, unix time) of the last ``months`` billing dates: 00:00 on the 1st, newest first."""
        local = self.meter_time(t)
        return [(d, calendar.timegm(d.timetuple()) - self.utc_offset) for d in month_starts(local, months)]

    def _heat(self, t: float, archive_too: bool = True) -> list[bytes]:
        v = self.model.values(t)
        now = self.meter_time(t).replace(second=0, microsecond=0)
        current = [
            build.record(0xC, self.ident, 0x78),                                      # fabrication number
            build.record(0x4, int(round(v["energy_kwh"] * 10)), 0x05),                 # energy, 0.1 kWh
            build.record(0xC, _bcd_digits(v["volume_m3"], 0.01, 8), 0x14),             # volume, 0.01 m^3
            build.record(0xB, _bcd_digits(v["flow_m3h"], 0.001, 6), 0x3B),            # flow, l/h
            build.record(0x4, int(round(v["power_kw"] * 1000)), 0x2B),                 # power, W
            build.record(0x2, int(round(v["t_supply_c"] * 10)), 0x5A),                 # supply, 0.1 °C
            build.record(0x2, int(round(v["t_return_c"] * 10)), 0x5E),                 # return, 0.1 °C
            build.record(0x2, int(round((v["t_supply_c"] - v["t_return_c"]) * 100)), 0x61),  # ΔT, 0.01 K
            build.record(0x4, int(v["operating_h"]), 0x22),                            # operating time, h
            build.record(0x4, build.datetime_f(now), 0x6D),                            # meter clock
            build.record(0x1, int(v["error_code"]), b"\xfd\x17"),                      # error flags
        ]
        header = self._header()
        if not archive_too:
            return [build.user_data(header, current, more_follows=True)]
        archive = []
        for storage, (day, when) in enumerate(self._archive_times(t, ARCHIVE_MONTHS), start=1):
            past = self.model.values(when)
            archive.append(build.record(0x2, build.date_g(day), 0x6C, storage=storage)
                           + build.record(0x4, int(round(past["energy_kwh"] * 10)), 0x05, storage=storage)
                           + build.record(0xC, _bcd_digits(past["volume_m3"], 0.01, 8), 0x14, storage=storage))
        halves = [archive[:ARCHIVE_PER_TELEGRAM], archive[ARCHIVE_PER_TELEGRAM:]]
        return [
            build.user_data(header, current, more_follows=True),
            build.user_data(header, halves[0], more_follows=True),
            build.user_data(header, halves[1]),
        ]

    def _water(self, t: float) -> bytes:
        v = self.model.values(t)
        now = self.meter_time(t).replace(second=0, microsecond=0)
        (day, when), = self._archive_times(t, 1)
        past = self.model.values(when)
        records = [
            build.record(0xC, self.ident, 0x78),
            build.record(0x4, int(round(v["volume_m3"] * 1000)), 0x13),                # volume, litres
            build.record(0x2, int(round(v["flow_m3h"] * 1000)), 0x3B),                 # flow, l/h
            build.record(0x2, int(round(v["temperature_c"] * 10)), 0x5A),              # water temperature
            build.record(0x4, build.datetime_f(now), 0x6D),
            build.record(0x2, build.date_g(day), 0x6C, storage=1),
            build.record(0x4, int(round(past["volume_m3"] * 1000)), 0x13, storage=1),
        ]
        return build.user_data(self._header(), records)


def combine(answers: Sequence[bytes]) -> bytes:
    """Return what the master hears when ``answers`` are sent at once (see the module docstring)."""
    if len(answers) == 1:
        return answers[0]
    if all(answer == bytes((link.ACK,)) for answer in answers):
        return b"".join(answers)
    length = max(len(a) for a in answers)
    result = bytearray(b"\xff" * length)
    for answer in answers:
        for i, byte in enumerate(answer):
            result[i] &= byte
    return bytes(result)


class SimMBusSegment(_SlaveProtocol):
    """An M-Bus segment of simulated meters as seen from the master's port.

    ``devices`` maps any key to a :class:`SimMBusMeter`; every meter sees
    every frame.  Frames are found in the byte stream with the master's own
    decoder; bytes that start no frame, or a frame with a bad checksum, are
    counted and dropped (a meter ignores what it cannot parse).  Served
    over TCP by :class:`~channels.sim.slave.SimFactory`.
    """

    MAX_BUFFER = 512

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted callback
        """Let every meter see every frame; send what they answer."""
        buffer = self._buffer
        buffer += data
        while buffer:
            consumed, frame = link.decode_stream(buffer)
            if not consumed:
                break
            del buffer[:consumed]
            if frame is None or isinstance(frame, link.Garbled):
                self.counters.crc_errors += 1
                continue
            self.counters.requests += 1
            t = self._value_time()
            answers = [(m, r) for m in self.devices.values() if (r := m.handle(frame, t)) is not None]
            if not answers:
                self.counters.ignored += 1
                continue
            self.counters.answered += 1
            delay = self.latency + max(m.delay for m, _ in answers)
            self._send(combine([r for _, r in answers]), delay)
        if len(buffer) > self.MAX_BUFFER:
            buffer.clear()
