"""EN 13757-2 link layer codec: frames built from the standard, fed whole, split and corrupted."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.mbus import link

# Frames from protocols.md §1.1-1.2 (verified against libmbus).
SND_NKE_254 = bytes.fromhex("10 40 FE 3E 16")
REQ_UD2_1_FCB = bytes.fromhex("10 7B 01 7C 16")
REQ_UD2_SELECTED = bytes.fromhex("10 7B FD 78 16")
SELECT_12345678 = bytes.fromhex("68 0B 0B 68 73 FD 52 78 56 34 12 FF FF FF FF D2 16")
RSP_UD = link.long_frame(0x08, 0x05, 0x72, bytes(range(12)) + bytes.fromhex("04 06 E7 91 00 00"))


def test_requests_match_the_standard_examples():
    assert link.snd_nke(254) == SND_NKE_254
    assert link.req_ud2(1, fcb=True) == REQ_UD2_1_FCB
    assert link.req_ud2(link.ADDR_SELECTED, fcb=True) == REQ_UD2_SELECTED
    assert link.req_ud2(1, fcb=False) == bytes.fromhex("10 5B 01 5C 16")


def test_select_uses_the_documented_mask():
    # The standard's C field for SND_UD is 53 or 73 (FCB); libmbus sends 73.
    frame = link.select(link.secondary_mask("12345678"))
    assert frame[:4] == SELECT_12345678[:4]
    assert frame[5:] == SELECT_12345678[5:-2] + frame[-2:]
    assert link.parse_frame(frame).data == bytes.fromhex("78 56 34 12 FF FF FF FF")


def test_secondary_mask_parsing():
    assert link.secondary_mask("1234FFFF") == bytes.fromhex("FF FF 34 12 FF FF FF FF")
    assert link.secondary_mask("12345678" "2C2D" "08" "04") == bytes.fromhex("78 56 34 12 2D 2C 08 04")
    assert link.secondary_text(bytes.fromhex("78 56 34 12 2D 2C 08 04")) == "123456782C2D0804"
    for bad in ("1234567", "1234567G", "12A45678", "123456782C2D08"):
        with pytest.raises(ValueError, match=bad):
            link.secondary_mask(bad)


def test_parse_each_kind():
    assert link.parse_frame(b"\xe5").kind == "ack"
    short = link.parse_frame(REQ_UD2_1_FCB)
    assert (short.kind, short.c, short.a) == ("short", 0x7B, 1)
    control = link.parse_frame(link.long_frame(0x53, 0xFD, 0x50))
    assert (control.kind, control.ci, control.data) == ("control", 0x50, b"")
    long = link.parse_frame(RSP_UD)
    assert long.kind == "long" and long.is_rsp_ud and long.a == 5 and long.ci == 0x72
    assert long.data[12:] == bytes.fromhex("04 06 E7 91 00 00")
    assert long.data_offset == 7


@pytest.mark.parametrize(
    ("raw", "what", "offset"),
    [
        (b"", "empty frame", 0),
        (b"\xe5\xe5", "1 bytes after an ACK", 1),
        (bytes.fromhex("10 7B 01 7D 16"), "checksum 0x7d, expected 0x7c", 3),
        (bytes.fromhex("10 7B 01 7C 17"), "stop byte is 0x17", 4),
        (bytes.fromhex("10 7B 01"), "short frame of 3 bytes", 3),
        (bytes.fromhex("68 04 05 68"), "length fields differ (4 and 5)", 2),
        (bytes.fromhex("68 04 04 69"), "second start byte is 0x69", 3),
        (bytes.fromhex("68 02 02 68 08 01 09 16"), "length 2 is too short", 1),
        (RSP_UD[:-3], f"frame ends after {len(RSP_UD) - 3} of {len(RSP_UD)} bytes", len(RSP_UD) - 3),
        (RSP_UD + b"\x00", "1 bytes after the frame", len(RSP_UD)),
        (b"\x42", "0x42 starts no M-Bus frame", 0),
    ],
)
def test_parse_errors_name_what_and_where(raw, what, offset):
    with pytest.raises(link.MBusFrameError) as info:
        link.parse_frame(raw)
    assert what in info.value.what
    assert info.value.offset == offset
    assert str(info.value).endswith(f"at byte {offset}")


def test_long_frame_refuses_too_much_data():
    with pytest.raises(ValueError, match="253 bytes"):
        link.long_frame(0x08, 1, 0x72, bytes(253))
    assert len(link.long_frame(0x08, 1, 0x72, bytes(252))) == link.MAX_FRAME


def _feed(chunks):
    """Run chunks through decode_stream as the bus scheduler does; return what it found."""
    buf, found = bytearray(), []
    for chunk in chunks:
        buf += chunk
        while buf:
            consumed, frame = link.decode_stream(buf)
            if consumed == 0:
                break
            del buf[:consumed]
            if frame is not None:
                found.append(frame)
    return found, bytes(buf)


@pytest.mark.parametrize("frame", [b"\xe5", REQ_UD2_1_FCB, RSP_UD])
def test_stream_whole_split_and_byte_by_byte(frame):
    for chunks in ([frame], [frame[:3], frame[3:]], [bytes((b,)) for b in frame]):
        found, rest = _feed(chunks)
        assert found == [link.parse_frame(frame)] and rest == b""


def test_stream_skips_garbage_and_reports_garbled_frames():
    found, _ = _feed([b"\x00\x42" + RSP_UD])
    assert found == [link.parse_frame(RSP_UD)]
    corrupt = bytearray(RSP_UD)
    corrupt[10] ^= 0x01
    found, _ = _feed([bytes(corrupt)])
    assert isinstance(found[0], link.Garbled) and "checksum" in found[0].reason
    found, _ = _feed([bytes.fromhex("68 10 11 68") + bytes(20)])
    assert isinstance(found[0], link.Garbled)


def test_collision_of_acks_is_visible_as_extra_bytes():
    with pytest.raises(link.MBusFrameError, match="bytes after an ACK"):
        link.parse_frame(b"\xe5\xe5")


def test_timing_follows_the_baud_rate():
    assert link.response_window(2400) == pytest.approx(330 / 2400 + 0.05)
    assert link.char_time(2400) == pytest.approx(11 / 2400)
    assert link.frame_time(link.MAX_FRAME, 300) == pytest.approx(261 * 11 / 300)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise_anything_else(data):
    try:
        link.parse_frame(data)
    except link.MBusFrameError:
        pass
    found, rest = _feed([data])
    assert all(isinstance(f, (link.Frame, link.Garbled)) for f in found)
    assert len(rest) <= len(data)
