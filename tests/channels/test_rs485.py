"""Tests for channels.transports.rs485: bus termination via TIOCSRS485 with read-back."""

from __future__ import annotations

import errno
import os

import pytest

from channels.transports import rs485

FD = 99  # never a real descriptor: every ioctl below is faked


class FakeDriver:
    """A serial driver's view of ``struct serial_rs485`` behind a fake ``fcntl.ioctl``.

    ``keep`` is the set of flag bits the driver honours; ``fail_set`` and
    ``fail_get_after_set`` make the set call or the read-back fail.
    """

    def __init__(self, flags: int = 0, keep: int = 0xFFFFFFFF, fail_set: int | None = None,
                 fail_get_after_set: int | None = None) -> None:
        self.fields = [flags, 3, 7, 0, 0, 0, 0, 0]
        self.keep = keep
        self.fail_set = fail_set
        self.fail_get_after_set = fail_get_after_set
        self.calls: list[int] = []
        self.set_with: tuple[int, ...] | None = None

    def ioctl(self, fd, request, arg=0):
        assert fd == FD
        self.calls.append(request)
        if request == rs485.TIOCGRS485:
            assert len(arg) == rs485._STRUCT.size
            if self.set_with is not None and self.fail_get_after_set is not None:
                raise OSError(self.fail_get_after_set, os.strerror(self.fail_get_after_set))
            return rs485._STRUCT.pack(*self.fields)
        if request == rs485.TIOCSRS485:
            if self.fail_set is not None:
                raise OSError(self.fail_set, os.strerror(self.fail_set))
            self.set_with = rs485._STRUCT.unpack(arg)
            self.fields = list(self.set_with)
            self.fields[0] &= self.keep
            return arg
        raise AssertionError(f"unexpected ioctl 0x{request:X}")


@pytest.fixture
def driver(monkeypatch):
    """Install a honouring fake driver as fcntl.ioctl for the rs485 module."""
    fake = FakeDriver()
    monkeypatch.setattr(rs485.fcntl, "ioctl", fake.ioctl)
    return fake


def test_pty_is_unsupported_without_raising():
    """On a pty (no RS-485 ioctls) termination reports unsupported with the kernel's reason."""
    master, slave = os.openpty()
    try:
        state, detail = rs485.apply_termination(slave)
    finally:
        os.close(master)
        os.close(slave)
    assert state == rs485.UNSUPPORTED == "unsupported"
    assert "TIOCGRS485 failed" in detail
    assert "jumper or DIP switch" in detail


def test_applied_when_read_back(driver):
    """A driver that keeps the flag gives 'applied'; RS-485 mode is on and the delays are kept."""
    state, detail = rs485.apply_termination(FD)
    assert (state, detail) == ("applied", "SER_RS485_TERMINATE_BUS set and read back")
    assert driver.calls == [rs485.TIOCGRS485, rs485.TIOCSRS485, rs485.TIOCGRS485]
    flags, before, after = driver.set_with[:3]
    assert flags & rs485.SER_RS485_TERMINATE_BUS and flags & rs485.SER_RS485_ENABLED
    assert (before, after) == (3, 7)


def test_existing_flags_preserved(driver):
    """Flags the port already had (RTS on send) survive setting termination."""
    driver.fields[0] = rs485.SER_RS485_ENABLED | rs485.SER_RS485_RTS_ON_SEND
    assert rs485.apply_termination(FD)[0] == "applied"
    assert driver.set_with[0] & rs485.SER_RS485_RTS_ON_SEND


def test_disable_clears_flag(driver):
    """apply_termination(fd, False) clears the flag and reads the cleared flag back."""
    driver.fields[0] = rs485.SER_RS485_ENABLED | rs485.SER_RS485_TERMINATE_BUS
    state, _ = rs485.apply_termination(FD, enable=False)
    assert state == "applied"
    assert not driver.set_with[0] & rs485.SER_RS485_TERMINATE_BUS


def test_accepted_but_dropped(monkeypatch):
    """A driver that accepts the call but drops the flag is reported unsupported."""
    fake = FakeDriver(keep=~rs485.SER_RS485_TERMINATE_BUS & 0xFFFFFFFF)
    monkeypatch.setattr(rs485.fcntl, "ioctl", fake.ioctl)
    state, detail = rs485.apply_termination(FD)
    assert state == "unsupported"
    assert "did not keep" in detail and "SER_RS485_TERMINATE_BUS" in detail


def test_set_rejected(monkeypatch):
    """A driver that rejects TIOCSRS485 is unsupported, naming the errno."""
    fake = FakeDriver(fail_set=errno.EINVAL)
    monkeypatch.setattr(rs485.fcntl, "ioctl", fake.ioctl)
    state, detail = rs485.apply_termination(FD)
    assert state == "unsupported"
    assert detail.startswith("TIOCSRS485 failed (EINVAL: ")


def test_read_back_failure_named(monkeypatch):
    """A read-back that fails after an accepted set is reported as a read-back failure."""
    fake = FakeDriver(fail_get_after_set=errno.EIO)
    monkeypatch.setattr(rs485.fcntl, "ioctl", fake.ioctl)
    state, detail = rs485.apply_termination(FD)
    assert state == "unsupported"
    assert detail.startswith("read-back TIOCGRS485 failed (EIO: ")


def test_read_rs485_unpacks_eight_words(driver):
    """read_rs485 returns the eight u32 words of struct serial_rs485."""
    assert rs485.read_rs485(FD) == (0, 3, 7, 0, 0, 0, 0, 0)
    assert rs485._STRUCT.size == 32


class _Port:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.mode = None

    @property
    def rs485_mode(self):
        return self.mode

    @rs485_mode.setter
    def rs485_mode(self, value):
        if self.error is not None:
            raise self.error
        self.mode = value


def test_rts_toggle():
    """RTS direction control is applied through pyserial, or unsupported with the reason."""
    port = _Port()
    assert rs485.apply_rts_toggle(port, 0.001, None) == ("applied", "kernel RTS direction control enabled")
    assert port.mode.rts_level_for_tx is True and port.mode.delay_before_tx == 0.001
    state, detail = rs485.apply_rts_toggle(_Port(ValueError("Failed to set RS485 mode")), None, None)
    assert state == "unsupported" and detail.startswith("Failed to set RS485 mode; ")
