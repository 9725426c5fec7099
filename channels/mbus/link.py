# -*- test-case-name: tests.channels.mbus.test_link -*-
"""EN 13757-2 link layer: frames, addresses, timing.  A pure codec.

Frames (protocols.md §1.1):

=========  =====================================
ACK        ``E5``
short      ``10 C A CS 16``
control    ``68 03 03 68 C A CI CS 16``
long       ``68 L L 68 C A CI data… CS 16``, L = 3 + len(data)
=========  =====================================

The checksum is the byte sum (mod 256) from C to the last data byte.  This
module builds the master's requests, parses whole frames
(:func:`parse_frame`) and finds frames in a byte stream
(:func:`decode_stream`, the bus scheduler's decoder).  It raises nothing but
:class:`MBusFrameError`, which names what is wrong and at which byte.
"""

from __future__ import annotations

from dataclasses import dataclass

ACK = 0xE5
SHORT_START = 0x10
LONG_START = 0x68
STOP = 0x16

#: C fields, master to slave (FCV already set in REQ_UD2 and SND_UD).
C_SND_NKE = 0x40
C_SND_UD = 0x53
C_REQ_UD1 = 0x5A
C_REQ_UD2 = 0x5B
FCB = 0x20
FCV = 0x10
#: C field of a slave's answer; ACD (0x20) and DFC (0x10) may be set on top.
C_RSP_UD = 0x08

#: Highest primary address a meter can have; 0 is the factory default.
MAX_PRIMARY = 250
#: Network layer: the meter selected by secondary address answers here.
ADDR_SELECTED = 0xFD
#: Broadcast that every meter answers (so only safe with one meter on the bus).
ADDR_BROADCAST_REPLY = 0xFE
#: Broadcast nobody answers.
ADDR_BROADCAST = 0xFF

#: CI fields the master sends.
CI_APP_RESET = 0x50
CI_DATA_SEND = 0x51
CI_SELECT = 0x52
CI_DESELECT = 0x56
#: Longest user data (CI excluded) a long frame can carry: L is one byte.
MAX_DATA = 252
#: Longest frame on the wire: 68 L L 68 C A CI + 252 + CS 16.
MAX_FRAME = MAX_DATA + 9
#: Bits per character on the wire: 8E1 = start + 8 data + parity + stop.
BITS_PER_CHAR = 11
#: Baud rates EN 13757-2 masters and meters use.
BAUDRATES = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400)
#: The slave starts answering within 330 bit times + 50 ms (EN 13757-2 via libmbus).
RESPONSE_BITS = 330
RESPONSE_EXTRA_S = 0.050


class MBusFrameError(ValueError):
    """A frame that cannot be what it claims; ``what`` and ``offset`` say why and where."""

    def __init__(self, what: str, offset: int) -> None:
        super().__init__(f"{what} at byte {offset}")
        self.what = what
        self.offset = offset


@dataclass(frozen=True, slots=True)
class Frame:
    """One link-layer frame.

    ``kind`` is ``ack``, ``short``, ``control`` or ``long``; ``c``, ``a`` and
    ``ci`` are 0 where the kind has none; ``data`` is what follows the CI
    field, and ``data_offset`` where it starts in the raw frame.
    """

    kind: str
    c: int = 0
    a: int = 0
    ci: int = 0
    data: bytes = b""
    data_offset: int = 7

    @property
    def is_rsp_ud(self) -> bool:
        """Tell whether this is a slave's RSP_UD answer (ACD/DFC bits ignored)."""
        return self.kind in ("long", "control") and self.c & 0xCF == C_RSP_UD


@dataclass(frozen=True, slots=True)
class Garbled:
    """Bytes that started like a frame but are not one (a collision or line noise)."""

    reason: str
    raw: bytes


ACK_FRAME = Frame("ack")


def checksum(data: bytes) -> int:
    """Return the M-Bus checksum (byte sum mod 256) of ``data``."""
    return sum(data) & 0xFF


def short_frame(c: int, a: int) -> bytes:
    """Return a short frame ``10 C A CS 16``."""
    return bytes((SHORT_START, c, a, (c + a) & 0xFF, STOP))


def long_frame(c: int, a: int, ci: int, data: bytes = b"") -> bytes:
    """Return a long frame (a control frame when ``data`` is empty)."""
    if len(data) > MAX_DATA:
        raise ValueError(f"{len(data)} bytes of user data do not fit one frame (at most {MAX_DATA})")
    length = len(data) + 3
    body = bytes((c, a, ci)) + data
    return bytes((LONG_START, length, length, LONG_START)) + body + bytes((checksum(body), STOP))


def snd_nke(address: int) -> bytes:
    """Return SND_NKE (link reset; also clears the slave's FCB) to ``address``."""
    return short_frame(C_SND_NKE, address)


def req_ud2(address: int, fcb: bool) -> bytes:
    """Return REQ_UD2 (read class 2 data) to ``address`` with the given frame count bit."""
    return short_frame(C_REQ_UD2 | (FCB if fcb else 0), address)


def select(mask: bytes) -> bytes:
    """Return SND_UD with CI 52 to address 253: select the meter(s) matching ``mask``.

    ``mask`` is the 8-byte secondary address (see :func:`secondary_mask`).
    """
    if len(mask) != 8:
        raise ValueError(f"a secondary address mask has 8 bytes, not {len(mask)}")
    return long_frame(C_SND_UD, ADDR_SELECTED, CI_SELECT, mask)


def secondary_mask(text: str) -> bytes:
    """Turn a secondary address as written in configs into the 8 bytes of a select.

    ``text`` is the 8-digit identification number, optionally followed by
    the manufacturer as 4 hex digits (its 16-bit code, as libmbus prints
    it), the version and the medium as 2 hex digits each: 16 characters in
    all.  ``F`` is a wildcard in any digit of the id; ``FF``/``FFFF`` match
    any manufacturer, version or medium.  Raises ``ValueError`` naming the text.
    """
    clean = text.strip().upper()
    if len(clean) not in (8, 16) or any(ch not in "0123456789ABCDEF" for ch in clean):
        raise ValueError(f"{text!r} is not a secondary address: 8 id digits, optionally "
                         "followed by 8 hex digits of manufacturer, version and medium")
    digits = clean[:8]
    if any(ch in "ABCDE" for ch in digits):
        raise ValueError(f"{text!r}: the identification number {digits} has a non-decimal digit")
    rest = clean[8:] or "FFFFFFFF"
    id_bytes = bytes(int(digits[i:i + 2], 16) for i in (6, 4, 2, 0))
    manufacturer = int(rest[0:4], 16)
    return id_bytes + bytes((manufacturer & 0xFF, manufacturer >> 8, int(rest[4:6], 16), int(rest[6:8], 16)))


def secondary_text(header_bytes: bytes) -> str:
    """Return the 16-character secondary address of the first 8 bytes of a long header."""
    ident = header_bytes[3::-1].hex().upper()
    manufacturer = header_bytes[4] | header_bytes[5] << 8
    return f"{ident}{manufacturer:04X}{header_bytes[6]:02X}{header_bytes[7]:02X}"


# ------------------------------------------------------------------ timing

def char_time(baud: int) -> float:
    """Return the seconds one 8E1 character takes on the wire."""
    return BITS_PER_CHAR / baud


def response_window(baud: int) -> float:
    """Return how long a slave may take to start answering: 330 bit times + 50 ms."""
    return RESPONSE_BITS / baud + RESPONSE_EXTRA_S


def frame_time(nbytes: int, baud: int) -> float:
    """Return the seconds ``nbytes`` take on the wire."""
    return nbytes * BITS_PER_CHAR / baud


# ----------------------------------------------------------------- parsing

def parse_frame(raw: bytes) -> Frame:
    """Parse exactly one whole frame; raise :class:`MBusFrameError` otherwise."""
    n = len(raw)
    if n == 0:
        raise MBusFrameError("empty frame", 0)
    start = raw[0]
    if start == ACK:
        if n != 1:
            raise MBusFrameError(f"{n - 1} bytes after an ACK", 1)
        return ACK_FRAME
    if start == SHORT_START:
        if n < 5:
            raise MBusFrameError(f"short frame of {n} bytes, expected 5", n)
        _check_end(raw, 1, 3, 4)
        if n != 5:
            raise MBusFrameError(f"{n - 5} bytes after the short frame", 5)
        return Frame("short", raw[1], raw[2])
    if start == LONG_START:
        if n < 4:
            raise MBusFrameError(f"long frame header of {n} bytes, expected 4", n)
        length = raw[1]
        if raw[2] != length:
            raise MBusFrameError(f"length fields differ ({length} and {raw[2]})", 2)
        if raw[3] != LONG_START:
            raise MBusFrameError(f"second start byte is 0x{raw[3]:02x}, expected 0x68", 3)
        if length < 3:
            raise MBusFrameError(f"length {length} is too short for C, A and CI", 1)
        total = length + 6
        if n < total:
            raise MBusFrameError(f"frame ends after {n} of {total} bytes (L={length})", n)
        _check_end(raw, 4, total - 2, total - 1)
        if n != total:
            raise MBusFrameError(f"{n - total} bytes after the frame", total)
        kind = "control" if length == 3 else "long"
        return Frame(kind, raw[4], raw[5], raw[6], bytes(raw[7:total - 2]))
    raise MBusFrameError(f"0x{start:02x} starts no M-Bus frame", 0)


def _check_end(raw: bytes, first: int, cs_at: int, stop_at: int) -> None:
    """Check the checksum over ``raw[first:cs_at]`` and the stop byte."""
    expected = checksum(raw[first:cs_at])
    if raw[cs_at] != expected:
        raise MBusFrameError(f"checksum 0x{raw[cs_at]:02x}, expected 0x{expected:02x}", cs_at)
    if raw[stop_at] != STOP:
        raise MBusFrameError(f"stop byte is 0x{raw[stop_at]:02x}, expected 0x16", stop_at)


def frame_length(buf) -> int:
    """Return how many bytes the frame starting ``buf`` needs (0: unknown yet, -1: no frame start)."""
    if not buf:
        return 0
    start = buf[0]
    if start == ACK:
        return 1
    if start == SHORT_START:
        return 5
    if start == LONG_START:
        return buf[1] + 6 if len(buf) > 1 else 0
    return -1


def decode_stream(buf) -> tuple[int, Frame | Garbled | None]:
    """Find the next frame at the start of ``buf`` (the bus scheduler's decoder).

    Returns ``(0, None)`` while more bytes are needed, ``(n, frame)`` for a
    whole frame, ``(n, Garbled)`` for bytes that started like a frame but
    fail its checks (a collision or noise: the poller treats it as a
    checksum error and retries), and ``(n, None)`` for ``n`` bytes that
    start no frame at all.
    """
    need = frame_length(buf)
    if need < 0:
        skip = 1
        while skip < len(buf) and buf[skip] not in (ACK, SHORT_START, LONG_START):
            skip += 1
        return skip, None
    if need == 0 or len(buf) < need:
        if len(buf) >= 4 and buf[0] == LONG_START and (buf[2] != buf[1] or buf[3] != LONG_START):
            return 4, Garbled("bad long frame header", bytes(buf[:4]))
        return 0, None
    raw = bytes(buf[:need])
    try:
        return need, parse_frame(raw)
    except MBusFrameError as exc:
        return need, Garbled(str(exc), raw)
