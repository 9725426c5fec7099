# -*- test-case-name: tests.channels.test_rs485 -*-
"""Linux RS-485 port settings: RTS direction control and bus termination.

pyserial's ``RS485Settings`` covers RTS direction control through
``TIOCSRS485`` but never touches ``SER_RS485_TERMINATE_BUS`` (Linux ≥ 4.13,
generic 8250 support ≈ 5.8), so termination is set here with our own ioctl
on ``struct serial_rs485`` and read back: many drivers (USB adapters, ptys)
accept or reject the call without honouring the flag, and only the read-back
tells the engineer whether the 120 Ω resistor is really switched in.
"""

from __future__ import annotations

import errno
import fcntl
import struct

TIOCGRS485 = 0x542E
TIOCSRS485 = 0x542F
SER_RS485_ENABLED = 1 << 0
SER_RS485_RTS_ON_SEND = 1 << 1
SER_RS485_RTS_AFTER_SEND = 1 << 2
SER_RS485_RX_DURING_TX = 1 << 4
SER_RS485_TERMINATE_BUS = 1 << 5
#: u32 flags, delay_rts_before_send, delay_rts_after_send, padding[5].
_STRUCT = struct.Struct("=8I")

APPLIED = "applied"
UNSUPPORTED = "unsupported"
NOT_REQUESTED = "not_requested"


def _describe(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return f"{name}: {exc.strerror}" if exc.strerror else name


def read_rs485(fd: int) -> tuple[int, ...]:
    """Return the port's ``struct serial_rs485`` as eight integers."""
    raw = fcntl.ioctl(fd, TIOCGRS485, bytes(_STRUCT.size))
    return _STRUCT.unpack(raw)


def apply_termination(fd: int, enable: bool = True) -> tuple[str, str]:
    """Switch the port's bus termination and read it back.

    Return ``(state, detail)`` where state is ``applied`` or ``unsupported``.
    """
    try:
        fields = list(read_rs485(fd))
    except OSError as exc:
        return UNSUPPORTED, f"TIOCGRS485 failed ({_describe(exc)}); use the adapter's jumper or DIP switch"
    flags = fields[0] | SER_RS485_ENABLED
    flags = flags | SER_RS485_TERMINATE_BUS if enable else flags & ~SER_RS485_TERMINATE_BUS
    fields[0] = flags
    try:
        fcntl.ioctl(fd, TIOCSRS485, _STRUCT.pack(*fields))
    except OSError as exc:
        return UNSUPPORTED, f"TIOCSRS485 failed ({_describe(exc)}); use the adapter's jumper or DIP switch"
    try:
        readback = read_rs485(fd)[0]
    except OSError as exc:
        return UNSUPPORTED, f"read-back TIOCGRS485 failed ({_describe(exc)}); use the adapter's jumper or DIP switch"
    if bool(readback & SER_RS485_TERMINATE_BUS) != enable:
        return UNSUPPORTED, "the driver accepted the call but did not keep SER_RS485_TERMINATE_BUS"
    return APPLIED, "SER_RS485_TERMINATE_BUS set and read back"


def apply_rts_toggle(serial_port, delay_before_tx: float | None, delay_before_rx: float | None) -> tuple[str, str]:
    """Enable kernel RTS direction control through pyserial's ``rs485_mode``."""
    from serial.rs485 import RS485Settings

    try:
        serial_port.rs485_mode = RS485Settings(
            rts_level_for_tx=True,
            rts_level_for_rx=False,
            delay_before_tx=delay_before_tx,
            delay_before_rx=delay_before_rx,
        )
    except (ValueError, OSError) as exc:
        return UNSUPPORTED, f"{exc}; the adapter must switch direction itself (auto-direction)"
    return APPLIED, "kernel RTS direction control enabled"
