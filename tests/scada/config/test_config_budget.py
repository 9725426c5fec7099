"""Tests for read planning and bus-time estimates."""

import math

import pytest

from channels.modbus import timing
from scada.config import PointConfig, plan_reads
from scada.config.budget import requests_bus_time


def point(register: int, type_: str = "u16", function: str = "holding") -> PointConfig:
    """Return a point; only the register layout matters here."""
    return PointConfig(name=f"p{register}_{function}", function=function, register=register, type=type_)


def test_contiguous_points_merge_into_one_request():
    """A u32 at 0 and u16s at 2 and 3 are one read of 4 registers."""
    assert plan_reads([point(3), point(0, "u32"), point(2)], 125) == [("holding", 0, 4)]


def test_gap_starts_a_new_request():
    """Registers are never read across a gap."""
    assert plan_reads([point(0), point(2)], 125) == [("holding", 0, 1), ("holding", 2, 1)]


def test_functions_are_read_separately():
    """Holding and input registers of the same numbers are separate requests."""
    points = [point(0, function="input"), point(0), point(1)]
    assert plan_reads(points, 125) == [("holding", 0, 2), ("input", 0, 1)]


def test_requests_split_at_max_registers():
    """Ten contiguous registers with max 4 give requests of 4, 4 and 2."""
    points = [point(r) for r in range(10)]
    assert plan_reads(points, 4) == [("holding", 0, 4), ("holding", 4, 4), ("holding", 8, 2)]


def test_points_are_never_split():
    """Two u32 with max 3: the second cannot join the first, so 2 + 2."""
    assert plan_reads([point(0, "u32"), point(2, "u32")], 3) == [("holding", 0, 2), ("holding", 2, 2)]


def test_overlapping_points_share_a_request():
    """A u16 inside a u32's registers adds nothing to the read."""
    assert plan_reads([point(0, "u32"), point(1)], 125) == [("holding", 0, 2)]


def test_point_wider_than_max_gets_its_own_request():
    """A u64 with max_registers 2 is still read whole."""
    assert plan_reads([point(0, "u64"), point(4)], 2) == [("holding", 0, 4), ("holding", 4, 1)]


def test_empty_profile_needs_no_reads():
    """No points, no requests, no bus time."""
    assert plan_reads([], 125) == []
    assert requests_bus_time([], 9600) == 0


@pytest.mark.parametrize(("baud", "parity", "stopbits"), [(9600, "E", 1), (1200, "N", 2), (115200, "O", 1)])
def test_bus_time_sums_expected_transactions(baud, parity, stopbits):
    """Bus time is the timing module's transaction time summed over requests."""
    requests = [("holding", 0, 4), ("input", 10, 1)]
    expected = sum(
        timing.expected_transaction_time(
            timing.READ_REQUEST_BYTES, timing.read_response_bytes(count), baud, parity, stopbits
        )
        for count in (4, 1)
    )
    assert math.isclose(requests_bus_time(requests, baud, parity, stopbits), expected)
