# -*- test-case-name: tests.scada.config.test_config_budget -*-
"""How many read requests a profile needs, and how long they keep a bus busy.

The grouping is the engine's own (:func:`channels.modbus.points.plan_reads`),
so the poll budget warns about the requests that will really go on the wire.
"""

from __future__ import annotations

from typing import Iterable

from channels.modbus import timing
from channels.modbus.framer import FUNCTIONS
from channels.modbus.points import PointSpec
from channels.modbus.points import plan_reads as _engine_plan

_FUNCTION_NAMES = {code: name for name, code in FUNCTIONS.items()}


def plan_reads(points: Iterable, max_registers: int = 125) -> list[tuple[str, int, int]]:
    """Group profile points into read requests ``(function, start, count)``.

    Points of one function whose register ranges touch or overlap share a
    request within ``max_registers``; gaps are never read over.  Requests are
    ordered by function, then start register.
    """
    specs = [PointSpec(p.name, FUNCTIONS[p.function], p.register, p.type) for p in points]
    return [(_FUNCTION_NAMES[b.function], b.start, b.count) for b in _engine_plan(specs, max_registers)]


def requests_bus_time(
    requests: Iterable[tuple[str, int, int]],
    baudrate: int,
    parity: str = "E",
    stopbits: int = 1,
) -> float:
    """Return the expected bus time in seconds of one pass over ``requests``."""
    return sum(
        timing.expected_transaction_time(
            timing.READ_REQUEST_BYTES,
            timing.read_response_bytes(count),
            baudrate,
            parity,
            stopbits,
        )
        for _function, _start, count in requests
    )
