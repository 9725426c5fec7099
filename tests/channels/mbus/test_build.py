"""Tests for channels.mbus.build: the EN 13757-3 encoder, and that decoding what it builds round-trips."""

from __future__ import annotations

import datetime
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.mbus import build
from channels.mbus.telegram import decode_user_data

# ---------------------------------------------------------------- identity

@pytest.mark.parametrize("value, encoded", [
    (6855817, "17588506"), (0, "00000000"), (99999999, "99999999"),
    ("12345678", "78563412"), ("1234FFFF", "ffff3412"), ("ffffffff", "ffffffff"),
])
def test_encode_id(value, encoded):
    """Identification number: 8 BCD digits, least significant byte first; F is a wildcard."""
    assert build.encode_id(value).hex() == encoded


@pytest.mark.parametrize("value", [-1, 100000000, "1234567", "123456789", "1234567A", "1234 678"])
def test_encode_id_rejects(value):
    """Anything that is not 8 digits (or F) is refused."""
    with pytest.raises(ValueError):
        build.encode_id(value)


@pytest.mark.parametrize("code, encoded", [
    ("KAM", "2d2c"), ("KRT", "542e"), ("MIL", "2c35"), ("AAA", "2104"),
])
def test_encode_manufacturer(code, encoded):
    """Three letters in 15 bits, little endian (protocols.md §1.5)."""
    assert build.encode_manufacturer(code).hex() == encoded


@pytest.mark.parametrize("code", ["KA", "KAMS", "kam", "K1M"])
def test_encode_manufacturer_rejects(code):
    """Only three capital letters are a manufacturer code."""
    with pytest.raises(ValueError):
        build.encode_manufacturer(code)


def test_long_header():
    """Twelve bytes: id, manufacturer, version, medium, access number, status, signature."""
    header = build.long_header(6855817, "KAM", 8, 0x06, access=0xC3, status=0x10, signature=0x1234)
    assert header.hex() == "175885062d2c0806c3103412"
    with pytest.raises(ValueError):
        build.long_header(1, "KAM", 256, 0x06, access=0)
    with pytest.raises(ValueError):
        build.long_header(1, "KAM", 1, 0x06, access=0, signature=0x10000)


# ---------------------------------------------------------------- records

@pytest.mark.parametrize("kwargs, encoded", [
    ({}, "04"),
    ({"function": "maximum"}, "14"),
    ({"function": "error"}, "34"),
    ({"storage": 1}, "44"),
    ({"storage": 2}, "8401"),
    ({"storage": 510}, "848f0f"),
    ({"tariff": 5}, "849010"),
    ({"subunit": 1}, "8440"),
    ({"storage": 3, "tariff": 1, "subunit": 1}, "c451"),
])
def test_dib(kwargs, encoded):
    """DIF and DIFEs: storage LSB in the DIF, then 4 storage, 2 tariff, 1 subunit bits per DIFE."""
    assert build.dib(0x4, **kwargs).hex() == encoded


@pytest.mark.parametrize("kwargs", [
    {"storage": 1 << 41}, {"tariff": 1 << 20}, {"subunit": 1 << 10}, {"storage": -1},
    {"function": "average"},
])
def test_dib_rejects(kwargs):
    """More than 10 DIFEs, negative numbers and unknown functions are refused."""
    with pytest.raises(ValueError):
        build.dib(0x4, **kwargs)


@pytest.mark.parametrize("data_type, value, vib, encoded", [
    (0x4, 37351, 0x06, "0406e7910000"),                 # protocols.md §1.5
    (0x4, 56108, 0x14, "04142cdb0000"),
    (0x1, -1, 0x03, "0103ff"),
    (0x1, 255, 0x03, "0103ff"),                         # unsigned bit pattern, same bytes
    (0x5, 1.5, 0x2B, "052b0000c03f"),
    (0xA, -234, 0x03, "0a0334f2"),                      # negative BCD: leading F digit
    (0xC, 12345678, 0x13, "0c1378563412"),
    (0xD, "hello", 0x03, "0d03056f6c6c6568"),           # text, last character first
    (0xD, -123456, 0x03, "0d03d3563412"),               # LVAR negative BCD
    (0xD, 1234, 0x03, "0d03c23412"),
    (0x4, bytes.fromhex("1a2f6511"), 0x6D, "046d1a2f6511"),
    (0x0, b"", 0x13, "0013"),
    (0x4, 1, bytes.fromhex("fd48"), "04fd4801000000"),
])
def test_record(data_type, value, vib, encoded):
    """One record: DIB, VIB and the data field."""
    assert build.record(data_type, value, vib).hex() == encoded


@pytest.mark.parametrize("data_type, value", [
    (0x1, 256), (0x1, -129), (0x2, -32769), (0x4, 1 << 32), (0x4, 1.5), (0x5, 1e39),
    (0x9, 100), (0x9, -10), (0xA, "12"),
    (0xD, "x" * 192), (0xD, 10 ** 30), (0xD, 1.5), (0xF, 0), (0x4, b"\x00\x00"),
])
def test_record_rejects(data_type, value):
    """Values that do not fit their data field raise ValueError."""
    with pytest.raises(ValueError):
        build.record(data_type, value, 0x03)


# ------------------------------------------------------------------ dates

def test_dates():
    """Types G, F and I; F is the worked example of protocols.md (2011-01-05 15:26)."""
    assert build.date_g(datetime.date(2014, 3, 13)).hex() == "cd13"
    assert build.datetime_f(datetime.datetime(2011, 1, 5, 15, 26)).hex() == "1a2f6511"
    # 2012-01-13 12:10:45 is a Friday (5) in ISO week 2.
    assert build.datetime_i(datetime.datetime(2012, 1, 13, 12, 10, 45)).hex() == "2d0aac8d1102"
    for encoder, moment in ((build.date_g, datetime.date(1999, 12, 31)),
                            (build.datetime_f, datetime.datetime(1999, 12, 31)),
                            (build.datetime_i, datetime.datetime(2100, 1, 1))):
        with pytest.raises(ValueError):
            encoder(moment)


def test_user_data_ends():
    """Nothing, 0Fh with manufacturer data, or 1Fh (more telegrams follow)."""
    head, rec = b"H", b"R"
    assert build.user_data(head, [rec]) == b"HR"
    assert build.user_data(head, [rec], manufacturer_data=b"\x01") == b"HR\x0f\x01"
    assert build.user_data(head, [rec], more_follows=True) == b"HR\x1f"
    assert build.user_data(head, [], more_follows=True, manufacturer_data=b"\x01") == b"H\x1f\x01"


# -------------------------------------------------------------- round trip

#: VIFs whose scale is 1 (energy Wh, volume m³, bus address, FD dimensionless): values compare as they are.
UNIT_VIFS = [(b"\x03", "energy"), (b"\x16", "volume"), (b"\x7a", "bus_address"),
             (b"\xfd\x3a", "dimensionless")]
_INT_BITS = {0x1: 8, 0x2: 16, 0x3: 24, 0x4: 32, 0x6: 48, 0x7: 64}
_BCD_DIGITS = {0x9: 2, 0xA: 4, 0xB: 6, 0xC: 8, 0xE: 12}


@st.composite
def numbers(draw):
    """A data type and a value it can hold, with the value the decoder must return."""
    kind = draw(st.sampled_from(["int", "real", "bcd", "lvar_bcd", "text"]))
    if kind == "int":
        data_type = draw(st.sampled_from(sorted(_INT_BITS)))
        bits = _INT_BITS[data_type]
        value = draw(st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1))
        return data_type, value, float(value)
    if kind == "real":
        value = draw(st.floats(width=32, allow_nan=False, allow_infinity=False))
        return 0x5, value, struct.unpack("<f", struct.pack("<f", value))[0]
    if kind == "bcd":
        data_type = draw(st.sampled_from(sorted(_BCD_DIGITS)))
        digits = _BCD_DIGITS[data_type]
        value = draw(st.integers(-(10 ** (digits - 1) - 1), 10 ** digits - 1))
        return data_type, value, float(value)
    if kind == "lvar_bcd":
        value = draw(st.integers(-(10 ** 30 - 1), 10 ** 30 - 1))
        return 0xD, value, float(value)
    text = draw(st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=191))
    return 0xD, text, text


@st.composite
def records(draw):
    """Keyword arguments of build.record and the Record fields decoding must give."""
    data_type, value, expected = draw(numbers())
    vib, quantity = draw(st.sampled_from(UNIT_VIFS))
    place = {"function": draw(st.sampled_from(["instantaneous", "maximum", "minimum", "error"])),
             "storage": draw(st.integers(0, (1 << 41) - 1)),
             "tariff": draw(st.integers(0, (1 << 20) - 1)),
             "subunit": draw(st.integers(0, (1 << 10) - 1))}
    return (data_type, value, vib, place), (quantity, expected, place)


@settings(max_examples=300, deadline=None)
@given(st.lists(records(), max_size=8), st.booleans(), st.binary(max_size=8))
def test_round_trip(recs, more_follows, manufacturer_data):
    """Whatever build encodes, telegram decodes back: values, quantities, DIFE fields, the end."""
    header = build.long_header(12345678, "KAM", 1, 0x04, access=1)
    body = build.user_data(header, [build.record(t, v, vib, **place) for (t, v, vib, place), _ in recs],
                           more_follows=more_follows, manufacturer_data=manufacturer_data)
    telegram = decode_user_data(0x72, body)
    closing = more_follows or bool(manufacturer_data)
    assert len(telegram.records) == len(recs) + closing
    for record, (_, (quantity, expected, place)) in zip(telegram.records, recs):
        assert (record.quantity, record.value, record.error) == (quantity, expected, None)
        assert (record.function, record.storage, record.tariff, record.subunit) == (
            place["function"], place["storage"], place["tariff"], place["subunit"])
    assert telegram.more_follows == more_follows
    if closing:
        assert telegram.records[-1].value == manufacturer_data.hex()


@settings(max_examples=200, deadline=None)
@given(st.datetimes(datetime.datetime(2000, 1, 1), datetime.datetime(2099, 12, 31, 23, 59, 59)))
def test_date_round_trip(moment):
    """Dates and times of types G, F and I decode to the ISO text of what was encoded."""
    g, f, i = (build.record(2, build.date_g(moment.date()), 0x6C),
               build.record(4, build.datetime_f(moment), 0x6D),
               build.record(6, build.datetime_i(moment), 0x6D))
    values = [r.value for r in decode_user_data(0x78, g + f + i).records]
    assert values == [moment.date().isoformat(), moment.replace(second=0, microsecond=0).isoformat(),
                      moment.replace(microsecond=0).isoformat()]
