"""Fuzz channels.mbus.telegram: random and mutated input raises MBusDecodeError or decodes, nothing else."""

from __future__ import annotations

import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.mbus import build
from channels.mbus.link import long_frame
from channels.mbus.telegram import MBusDecodeError, Telegram, decode_frame, decode_user_data

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: The CI fields the decoder knows, and some it does not.
CIS = st.one_of(st.sampled_from([0x70, 0x71, 0x72, 0x78, 0x7A]), st.integers(0, 255))

#: A telegram with every construct the decoder has a branch for.
VALID = build.user_data(
    build.long_header(12345678, "KAM", 1, 0x04, access=7),
    [
        build.record(0x4, 37351, 0x06),
        build.record(0x1, -5, 0x03, function="maximum", storage=3, tariff=2, subunit=1),
        build.record(0x2, 7, 0x5B),
        build.record(0x3, 100, 0x3B),
        build.record(0x5, 21.5, 0x2B),
        build.record(0x6, 1 << 40, 0x16),
        build.record(0x7, -(1 << 60), 0x03),
        build.record(0xA, -234, 0x61),
        build.record(0xC, 12345678, 0x78),
        build.record(0xE, 123456789012, 0x03),
        build.record(0xD, "text", bytes.fromhex("fd11")),
        build.record(0xD, -1234, 0x13),
        build.record(0x2, build.date_g(datetime.date(2014, 3, 13)), 0x6C, storage=1),
        build.record(0x4, build.datetime_f(datetime.datetime(2011, 1, 5, 15, 26)), 0x6D),
        build.record(0x6, build.datetime_i(datetime.datetime(2012, 1, 13, 12, 10, 45)), 0x6D),
        build.record(0x4, 1000, bytes.fromhex("83 f4 3b")),                  # scale + qualifier
        build.record(0x4, 1000, bytes.fromhex("86 78")),                     # additive
        build.record(0x2, 230, bytes.fromhex("fd c9 fc 01")),                # extended VIFE
        build.record(0x4, 5, bytes.fromhex("ac ff 01")),                     # manufacturer VIFE
        build.record(0x2, 4564, bytes.fromhex("fc 03 48 52 25 74")),         # plain-text VIF
        build.record(0x4, 9, bytes.fromhex("fb 0d")),
        build.record(0x2, 2120, bytes.fromhex("fb 72")),                     # °F
        build.record(0x4, bytes.fromhex("32147a18"), bytes.fromhex("da 6f")),  # date/time VIFE
        build.record(0x4, 10, bytes.fromhex("93 15")),                       # record error
        build.record(0x0, b"", 0x13),
    ],
    more_follows=True, manufacturer_data=b"\x01\x02",
)


def decodes_or_refuses(ci: int, data: bytes) -> None:
    """Decoding gives a Telegram or raises MBusDecodeError; nothing else may escape."""
    try:
        assert isinstance(decode_user_data(ci, data, 7), Telegram)
    except MBusDecodeError as exc:
        assert exc.offset >= 0 and exc.what


def frame_decodes_or_refuses(raw: bytes) -> None:
    """The same for whole frames."""
    try:
        assert isinstance(decode_frame(raw), Telegram)
    except MBusDecodeError as exc:
        assert exc.offset >= 0 and exc.what


def test_valid_telegram_decodes():
    """The telegram the mutations start from is itself valid."""
    telegram = decode_user_data(0x72, VALID)
    assert telegram.more_follows and len(telegram.records) == 26
    assert all(r.error is None for r in telegram.records[:-3])


@FUZZ
@given(CIS, st.binary(max_size=300))
def test_random_user_data(ci, data):
    """Random bytes after any CI field."""
    decodes_or_refuses(ci, data)


@FUZZ
@given(st.binary(max_size=300))
def test_random_frames(raw):
    """Random bytes as a frame, with a plausible start now and then."""
    frame_decodes_or_refuses(raw)
    frame_decodes_or_refuses(b"\x68" + raw)


@FUZZ
@given(CIS, st.binary(max_size=252))
def test_random_user_data_in_valid_frames(ci, data):
    """A correct link layer around random user data reaches the application layer."""
    frame_decodes_or_refuses(long_frame(0x08, 0x01, ci, data))


MUTATIONS = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, len(VALID) - 1), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, len(VALID)), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, len(VALID) - 1), st.just(0)),
    st.tuples(st.just("truncate"), st.integers(0, len(VALID)), st.just(0)),
)


def mutate(data: bytes, mutations) -> bytes:
    """Apply (operation, position, byte) mutations in turn."""
    buf = bytearray(data)
    for operation, position, value in mutations:
        position = min(position, len(buf))
        if operation == "flip" and position < len(buf):
            buf[position] ^= value
        elif operation == "insert":
            buf.insert(position, value)
        elif operation == "delete" and position < len(buf):
            del buf[position]
        elif operation == "truncate":
            del buf[position:]
    return bytes(buf)


@FUZZ
@given(st.lists(MUTATIONS, min_size=1, max_size=4))
def test_mutated_telegrams(mutations):
    """Flipped, inserted, deleted and cut bytes of a valid telegram, bare and framed."""
    data = mutate(VALID, mutations)
    decodes_or_refuses(0x72, data)
    decodes_or_refuses(0x78, data[12:])
    if len(data) <= 252:
        frame_decodes_or_refuses(long_frame(0x08, 0x01, 0x72, data))
