# -*- test-case-name: tests.channels.mbus.test_channel -*-
"""An M-Bus channel: one master (a serial level converter or a TCP gateway), many meters.

Built from a channel's configuration by attribute, like the Modbus channel:
``name``, ``transport`` (``serial`` or ``tcp``, ``baudrate``), ``timeout``
(allowance on top of the M-Bus timing), ``retries``, ``comm_loss_after``
and ``devices`` (``name``, ``address`` or ``secondary``, ``profile``,
``poll``, ``enabled``).  A device without a profile is mapped automatically.
``archive_book`` (shared by the site) remembers the archive records stored.
"""

from __future__ import annotations

import logging
from datetime import tzinfo
from typing import Callable, Mapping

from channels.archive import ArchiveBook, MemoryArchiveBook
from channels.bus import BusScheduler, PolledChannel
from channels.mbus import link
from channels.mbus.driver import MBusDevice, Timing
from channels.mbus.mapping import RecordMapper, RecordRule
from channels.transports.serial import SerialLink
from channels.transports.base import window_options
from channels.transports.tcp import TcpLink
from tags.model import Sample, TagDef

log = logging.getLogger(__name__)

#: Network round trip allowed on top of the serial timing for TCP gateways.
TCP_ALLOWANCE_S = 0.2
#: Round trip allowed behind a GPRS modem (see the Modbus channel).
MODEM_ALLOWANCE_S = 1.5
#: Quiet time between two frames on the bus, in bit times (EN 13757-2 asks
#: for at least 11; three characters leave slow level converters room).
INTER_FRAME_BITS = 33


def record_rules(device_name: str, records) -> list[RecordRule]:
    """Build the mapping rules of a profile's ``records`` (duck-typed) for one device."""
    rules = []
    for r in records:
        rules.append(RecordRule(
            f"{device_name}.{r.name}", quantity=r.quantity,
            vib=bytes.fromhex(r.vif) if r.vif else None, dib=bytes.fromhex(r.dif) if r.dif else None,
            function=r.function, storage=r.storage, tariff=r.tariff, subunit=r.subunit, scale=r.scale))
    return rules


class MBusChannel(PolledChannel):
    """Poll every enabled meter of one M-Bus channel."""

    type = "mbus"

    def __init__(self, reactor, cfg, profiles: Mapping, on_samples: Callable[[list[Sample]], None],
                 on_history: Callable[[list[Sample]], None], on_define: Callable[[TagDef], None], tz: tzinfo,
                 serial_override: str | None = None, tcp_override: tuple[str, int] | None = None, *,
                 archive_book: ArchiveBook | None = None,
                 link_factory: Callable[[BusScheduler], object] | None = None) -> None:
        """Build the meters; ``link_factory(scheduler)`` builds the link of a dial-in modem."""
        self._reactor = reactor
        self.archive_book = archive_book if archive_book is not None else MemoryArchiveBook()
        self.cfg = cfg
        self.name = cfg.name
        t = cfg.transport
        baud = t.baudrate
        serial = None if link_factory else serial_override or (None if tcp_override else t.serial)
        self.scheduler = BusScheduler(reactor, cfg.name, silent_interval=INTER_FRAME_BITS / baud if serial else 0.0,
                                      retries=cfg.retries, char_time=link.char_time(baud))
        timing = Timing(baud, cfg.timeout + (0.0 if serial else MODEM_ALLOWANCE_S if link_factory else TCP_ALLOWANCE_S))
        self.devices: list[MBusDevice] = []
        self.tagdefs: list[TagDef] = []
        for dev in cfg.devices:
            if not dev.enabled:
                continue
            profile = profiles.get(dev.profile) if dev.profile else None
            rules = None if profile is None else record_rules(dev.name, profile.records)
            device = MBusDevice(
                dev.name, primary=dev.address if dev.secondary is None else None,
                secondary=link.secondary_mask(dev.secondary) if dev.secondary is not None else None,
                period=dev.poll, mapper=RecordMapper(dev.name, tz, rules), timing=timing,
                on_samples=on_samples, on_history=on_history, on_define=on_define,
                comm_loss_after=cfg.comm_loss_after, archive_book=self.archive_book)
            self.devices.append(device)
            self.tagdefs.append(TagDef(f"{dev.name}.status", "", 0.0, dev.name,
                                       "M-Bus status byte (bits 0-1 application state, 2 power low, "
                                       "3 permanent error, 4 temporary error)"))
            for r in profile.records if profile is not None else ():
                self.tagdefs.append(TagDef(f"{dev.name}.{r.name}", r.unit, r.deadband, dev.name, r.description))
        if link_factory is not None:
            self.link = link_factory(self.scheduler)
        elif serial:
            # Ptys take no parity (see ModbusChannel); timing follows the line anyway.
            self.link = SerialLink(reactor, self.scheduler, serial, baud, "N" if serial_override else t.parity,
                                   t.stopbits)
        else:
            host, port = tcp_override or (t.tcp_host, t.tcp_port)
            self.link = TcpLink(reactor, self.scheduler, host, port, **window_options(t, tz))

    def log_plan(self) -> None:
        """Log the meters and how they are addressed."""
        log.info("channel %s: %d M-Bus meters via %s", self.name, len(self.devices), self.link.endpoint)
        for device in self.devices:
            mapping = "automatic" if device.mapper.automatic else f"{len(device.mapper.rules)} records"
            log.info("  %s @%s every %gs: %s", device.name, device.address_text(), device.period, mapping)

    def health(self) -> dict:
        """Return the channel's state for ``/health`` and ``/channels``."""
        states = [d.state for d in self.devices]
        loads = sum(getattr(d, "unit_loads", 1) for d in self.cfg.devices)
        return {
            "name": self.name,
            "type": self.type,
            **self.scheduler.health(),
            "link": self.link.health(),
            "unit_loads": {"used": loads, "capacity": getattr(self.cfg, "unit_loads", None)},
            "devices_ok": states.count("ok"),
            "devices_degraded": states.count("degraded"),
            "devices_comm_loss": states.count("comm_loss"),
        }
