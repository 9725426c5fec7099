# -*- test-case-name: tests.integration.test_pty_engine -*-
"""A Modbus channel: one link, one bus scheduler, many devices.

Built from a channel's configuration (read by attribute, so this package
does not import ``scada``): ``name``, ``type`` (``modbus-rtu`` or
``modbus-tcp``), ``transport`` (``serial`` or ``tcp``, line settings,
``rs485``), ``timeout``, ``retries``, ``comm_loss_after``,
``archive_records_per_poll``, ``archive_lookback`` and ``devices``.

Devices whose profile has ``archives`` back-fill from them when the channel
is given ``on_history``; the devices of one channel take turns (one
:class:`~channels.archive.ArchiveTurn` per bus).
"""

from __future__ import annotations

import logging
from typing import Callable, Mapping

from channels.archive import ArchiveBook, ArchiveTurn, MemoryArchiveBook, standard_offset
from channels.bus import BusScheduler, PolledChannel
from channels.modbus import framer, timing
from channels.modbus.archive import archive_plans
from channels.modbus.driver import ModbusDevice, point_specs
from channels.modbus.points import ReadBlock, plan_reads
from channels.transports.serial import SerialLink
from channels.transports.base import window_options
from channels.transports.tcp import TcpLink
from tags.model import Sample, TagDef

log = logging.getLogger(__name__)

#: Network round trip allowed on top of the serial timing for TCP links.
TCP_ALLOWANCE_S = 0.2
#: Round trip allowed on top of the serial timing behind a GPRS modem (a
#: cellular data path takes hundreds of milliseconds, at times over a second).
MODEM_ALLOWANCE_S = 1.5


class ModbusChannel(PolledChannel):
    """Poll every enabled device of one channel."""

    def __init__(self, reactor, cfg, profiles: Mapping, on_samples: Callable[[list[Sample]], None],
                 serial_override: str | None = None, tcp_override: tuple[str, int] | None = None, *,
                 on_history: Callable[[list[Sample]], None] | None = None,
                 archive_book: ArchiveBook | None = None, tz=None,
                 link_factory: Callable[[BusScheduler], object] | None = None) -> None:
        """Build the devices; ``on_history`` takes back-filled archive records, ``tz`` is the site's zone.

        ``link_factory(scheduler)``, when given, builds the link instead of
        the transport's serial port or TCP client: a dial-in modem's link
        from the modem server.
        """
        self._reactor = reactor
        self.cfg = cfg
        self.name = cfg.name
        self.type = cfg.type
        t = cfg.transport
        baud, parity, stopbits = t.baudrate, t.parity, t.stopbits
        serial = None if link_factory else serial_override or (None if tcp_override else t.serial)
        if cfg.type == "modbus-tcp":
            framing, silent, char_t = "mbap", 0.0, 0.0
        elif serial:
            framing = "rtu"
            silent = timing.silent_interval(baud, parity, stopbits)
            char_t = timing.char_time(baud, parity, stopbits)
        else:
            # A transparent gateway keeps the serial timing on its side.
            framing, silent, char_t = "rtu", 0.0, timing.char_time(baud, parity, stopbits)
        self.framing = framing
        self.scheduler = BusScheduler(reactor, cfg.name, silent_interval=silent, retries=cfg.retries,
                                      char_time=char_t)
        allowance = cfg.timeout + (0.0 if serial else MODEM_ALLOWANCE_S if link_factory else TCP_ALLOWANCE_S)

        def timeout_for(block: ReadBlock) -> float:
            # Writes (the archive record index) are answered by an 8-byte echo.
            answer = 8 if block.function in (framer.WRITE_SINGLE, framer.WRITE_MULTIPLE) else \
                timing.read_response_bytes(block.count)
            return timing.response_timeout(timing.READ_REQUEST_BYTES, answer, baud, allowance, parity, stopbits)

        self.archive_book = archive_book if archive_book is not None else MemoryArchiveBook()
        self.archive_turn = ArchiveTurn()
        utc_offset = standard_offset(tz)
        per_poll = getattr(cfg, "archive_records_per_poll", 4)
        lookback = getattr(cfg, "archive_lookback", 2 * 86400.0)

        self.devices: list[ModbusDevice] = []
        self.tagdefs: list[TagDef] = []
        for dev in cfg.devices:
            if not getattr(dev, "enabled", True):
                continue
            profile = profiles[dev.profile]
            specs = point_specs(dev.name, profile.points)
            blocks = plan_reads(specs, getattr(profile, "max_registers", 125))
            device = ModbusDevice(dev.name, dev.address, blocks, dev.poll, on_samples, timeout_for=timeout_for,
                                  framing=framing, comm_loss_after=getattr(cfg, "comm_loss_after", 3),
                                  archives=archive_plans(dev.name, getattr(profile, "archives", None) or (), lookback),
                                  on_history=on_history, archive_book=self.archive_book,
                                  archive_turn=self.archive_turn, archive_records_per_poll=per_poll,
                                  utc_offset=utc_offset)
            self.devices.append(device)
            for point in profile.points:
                self.tagdefs.append(TagDef(f"{dev.name}.{point.name}", point.unit, point.deadband, dev.name,
                                           getattr(point, "description", "")))
        if link_factory is not None:
            self.link = link_factory(self.scheduler)
        elif serial:
            rs = t.rs485
            # A pty has no line settings, and Linux refuses to reopen one with
            # parity set (EINVAL): the simulator's ptys are opened 8N1 while
            # timing still follows the configured line.
            open_parity = "N" if serial_override else parity
            self.link = SerialLink(
                reactor, self.scheduler, serial, baud, open_parity, stopbits,
                rts_toggle=bool(rs and rs.rts_toggle), termination=bool(rs and rs.termination),
                delay_before_tx=getattr(rs, "delay_before_tx", None), delay_before_rx=getattr(rs, "delay_before_rx", None))
        else:
            host, port = tcp_override or (t.tcp_host, t.tcp_port)
            self.link = TcpLink(reactor, self.scheduler, host, port, **window_options(t, tz))

    def log_plan(self) -> None:
        """Log the request plan of every device (what will go on the wire)."""
        requests = sum(len(d.transactions) for d in self.devices)
        log.info("channel %s: %d devices, %d requests per round via %s", self.name, len(self.devices),
                 requests, self.link.endpoint)
        for device in self.devices:
            log.info("  %s @%d every %gs: %s", device.name, device.unit, device.period, "; ".join(device.plan_lines()))
            if device.archive is not None:
                log.info("    %s", "; ".join(plan.describe() for plan in device.archive_plans))

    def health(self) -> dict:
        """Return the channel's state for ``/health`` and ``/channels``."""
        states = [d.state for d in self.devices]
        return {
            "name": self.name,
            "type": self.type,
            **self.scheduler.health(),
            "link": self.link.health(),
            "termination": self._termination(),
            "devices_ok": states.count("ok"),
            "devices_degraded": states.count("degraded"),
            "devices_comm_loss": states.count("comm_loss"),
        }

    def _termination(self) -> dict:
        link = self.link.health()
        rs = link.get("rs485")
        terminated_devices = [d.name for d in self.cfg.devices if getattr(d, "termination", False)]
        port = rs["termination"] if rs else "not_applicable"
        detail = rs["detail"].get("termination", "") if rs else ""
        return {"port": port, "detail": detail, "devices": terminated_devices,
                "nodes": len(terminated_devices) + (1 if port not in ("not_requested", "not_applicable") else 0)}
