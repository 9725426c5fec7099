# -*- test-case-name: tests.scada.config.test_config_budget -*-
"""How many read requests a profile needs, and how long they keep a bus busy.

The grouping is deliberately simple so that the bus scheduler and this
estimate can share it: contiguous registers of the same function are read
together, up to the profile's ``max_registers``; gaps are never read over,
because some meters answer a read that touches an unmapped register with an
exception for the whole request.
"""

from __future__ import annotations

from typing import Iterable, Protocol

from channels.modbus import timing


class _Point(Protocol):
    """What :func:`plan_reads` needs of a point."""

    function: str
    register: int

    @property
    def count(self) -> int:
        """Return the registers the point occupies."""


def plan_reads(points: Iterable[_Point], max_registers: int = 125) -> list[tuple[str, int, int]]:
    """Group points into read requests ``(function, start, count)``.

    Points of one function whose register ranges touch or overlap are merged
    while the request stays within ``max_registers``.  A point is never
    split across requests, so a single point wider than ``max_registers``
    gets a request of its own width (the profile check rejects that case).
    Requests are ordered by function, then start register.
    """
    requests: list[tuple[str, int, int]] = []
    function, start, end = "", 0, 0  # the request being built: [start, end)
    for point in sorted(points, key=lambda p: (p.function, p.register, p.count)):
        point_end = point.register + point.count
        if end > start:  # a request is open
            touches = point.function == function and point.register <= end
            if touches and point_end <= end:
                continue  # already inside the request
            if touches and point_end - start <= max_registers:
                end = point_end
                continue
            requests.append((function, start, end - start))
        function, start, end = point.function, point.register, point_end
    if end > start:
        requests.append((function, start, end - start))
    return requests


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
