"""Tests for channels.modbus.timing: serial-line timing from the line settings."""

from __future__ import annotations

import pytest

from channels.modbus import timing


@pytest.mark.parametrize("baudrate", [1200, 2400, 4800, 9600, 14400, 19200])
def test_silent_interval_computed_up_to_19200(baudrate):
    """At 19200 Bd and below t3.5 is 3.5 eleven-bit characters."""
    assert timing.silent_interval(baudrate) == pytest.approx(3.5 * 11 / baudrate)


def test_silent_interval_at_9600():
    """At 9600 Bd t3.5 is 3.5 * 11 / 9600 s, about 4.01 ms."""
    assert timing.silent_interval(9600) == pytest.approx(3.5 * 11 / 9600)
    assert timing.silent_interval(9600) == pytest.approx(0.0040104, abs=1e-7)


@pytest.mark.parametrize("baudrate", [19201, 38400, 57600, 115200])
def test_silent_interval_fixed_above_19200(baudrate):
    """Above 19200 Bd the spec fixes t3.5 at 1.75 ms."""
    assert timing.silent_interval(baudrate) == 0.00175 == timing.T35_FIXED_S


def test_silent_interval_uses_eleven_bit_characters_for_any_framing():
    """The spec's t3.5 counts 11-bit characters whatever the parity and stop bits."""
    assert timing.silent_interval(9600, "N", 1) == timing.silent_interval(9600, "E", 1)
    assert timing.silent_interval(9600, "N", 2) == timing.silent_interval(9600, "O", 1)


@pytest.mark.parametrize(
    ("parity", "stopbits", "bits"),
    [("E", 1, 11), ("O", 1, 11), ("N", 2, 11), ("N", 1, 10), ("E", 2, 12)],
)
def test_char_time(parity, stopbits, bits):
    """A character is start + 8 data + parity + stop bits long on the wire."""
    assert timing.bits_per_char(parity, stopbits) == bits
    assert timing.char_time(9600, parity, stopbits) == pytest.approx(bits / 9600)


def test_frame_time():
    """An 8-byte request at 9600 8E1 takes 8 * 11 / 9600 s."""
    assert timing.frame_time(8, 9600) == pytest.approx(8 * 11 / 9600)
    assert timing.frame_time(8, 19200, "N", 1) == pytest.approx(8 * 10 / 19200)
    assert timing.frame_time(0, 9600) == 0


def test_read_response_bytes():
    """A read of N registers is answered by 5 + 2N bytes."""
    assert timing.read_response_bytes(1) == 7
    assert timing.read_response_bytes(125) == 255


@pytest.mark.parametrize(("baudrate", "allowance"), [(9600, 0.1), (2400, 0.5), (115200, 0.05)])
def test_response_timeout_formula(baudrate, allowance):
    """Timeout = request and answer on the wire + the allowance + one silent interval."""
    expected = (8 + 9) * 11 / baudrate + allowance + timing.silent_interval(baudrate)
    assert timing.response_timeout(8, 9, baudrate, allowance) == pytest.approx(expected)


def test_response_timeout_known_value():
    """Reading 2 registers at 9600 8E1 with a 100 ms allowance waits about 123.5 ms."""
    assert timing.response_timeout(timing.READ_REQUEST_BYTES, timing.read_response_bytes(2), 9600, 0.1) == pytest.approx(
        17 * 11 / 9600 + 0.1 + 3.5 * 11 / 9600
    )


def test_expected_transaction_time():
    """A healthy transaction is wire time + turnaround + two silent intervals."""
    expected = 17 * 11 / 9600 + timing.TYPICAL_TURNAROUND_S + 2 * 3.5 * 11 / 9600
    assert timing.expected_transaction_time(8, 9, 9600) == pytest.approx(expected)
    assert timing.expected_transaction_time(8, 9, 9600, turnaround=0.0) == pytest.approx(expected - 0.010)
