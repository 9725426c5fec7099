# -*- test-case-name: tests.channels.modbus.test_timing -*-
"""Modbus RTU serial-line timing derived from the line settings.

Modbus over Serial Line V1.02 §2.5.1.1: frames are separated by a silent
interval of 3.5 character times; above 19200 Bd the spec fixes it at 1.75 ms
(and t1.5 at 0.75 ms) because the computed values would be too short for UART
interrupt handling.
"""

from __future__ import annotations

#: Fixed silent interval above 19200 Bd (Modbus serial line spec).
T35_FIXED_S = 0.00175
#: What a typical meter needs between the end of a request and the start of its
#: answer.  Only used to *estimate* bus load for the poll budget; the real
#: response timeout uses the configured allowance.
TYPICAL_TURNAROUND_S = 0.010
#: Fixed part of a Modbus RTU read request: addr, func, start(2), count(2), crc(2).
READ_REQUEST_BYTES = 8
#: Fixed part of a read response: addr, func, byte count, crc(2); plus 2 bytes a register.
READ_RESPONSE_OVERHEAD = 5

STANDARD_BAUDRATES = (1200, 2400, 4800, 9600, 14400, 19200, 38400, 57600, 115200)


def bits_per_char(parity: str = "E", stopbits: int = 1, bytesize: int = 8) -> int:
    """Return the bits on the wire for one character: start + data + parity + stop."""
    return 1 + bytesize + (0 if parity == "N" else 1) + stopbits


def char_time(baudrate: int, parity: str = "E", stopbits: int = 1) -> float:
    """Return seconds to send one character at this line setting."""
    return bits_per_char(parity, stopbits) / baudrate


def silent_interval(baudrate: int, parity: str = "E", stopbits: int = 1) -> float:
    """Return t3.5, the inter-frame silent interval, in seconds.

    The spec computes it from 11-bit characters at 19200 Bd and below and
    fixes it at 1.75 ms above.
    """
    if baudrate > 19200:
        return T35_FIXED_S
    return 3.5 * 11 / baudrate


def frame_time(nbytes: int, baudrate: int, parity: str = "E", stopbits: int = 1) -> float:
    """Return seconds to transmit ``nbytes`` back to back."""
    return nbytes * char_time(baudrate, parity, stopbits)


def read_response_bytes(count: int) -> int:
    """Return the size of a normal response to a read of ``count`` registers."""
    return READ_RESPONSE_OVERHEAD + 2 * count


def response_timeout(
    request_bytes: int,
    response_bytes: int,
    baudrate: int,
    allowance: float,
    parity: str = "E",
    stopbits: int = 1,
) -> float:
    """Return how long to wait for an answer after starting to send a request.

    Sending the request and receiving the whole answer take a baud-derived
    time; ``allowance`` is the configured device turnaround on top of it, and
    one silent interval marks the end of the answer.
    """
    wire = frame_time(request_bytes + response_bytes, baudrate, parity, stopbits)
    return wire + allowance + silent_interval(baudrate, parity, stopbits)


def expected_transaction_time(
    request_bytes: int,
    response_bytes: int,
    baudrate: int,
    parity: str = "E",
    stopbits: int = 1,
    turnaround: float = TYPICAL_TURNAROUND_S,
) -> float:
    """Return the bus time one healthy read transaction is expected to occupy.

    Request and answer on the wire, the device's turnaround and the silent
    interval that must follow before the next request.
    """
    wire = frame_time(request_bytes + response_bytes, baudrate, parity, stopbits)
    return wire + turnaround + 2 * silent_interval(baudrate, parity, stopbits)
