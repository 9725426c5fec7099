# -*- test-case-name: tests.channels.mbus.test_build -*-
"""Build EN 13757-3 user data: the encoder the tests and the meter simulators use.

The inverse of :mod:`channels.mbus.telegram` for what a meter sends: a long
header, data records of any DIF data field, dates of types G, F and I, the
closing manufacturer data.  Functions return bytes and raise ``ValueError``
for anything that cannot be encoded; framing is :mod:`channels.mbus.link`'s.

Example, a heat meter's answer::

    user_data(
        long_header(12345678, "KAM", 1, 0x04, access=7),
        [record(0x4, 37351, 0x06),                 # 37 351 kWh
         record(0x4, datetime_f(now), 0x6D)],      # meter clock
    )
"""

from __future__ import annotations

import datetime
import struct

from channels.mbus.tables import FUNCTIONS

#: DIFs that open the manufacturer data at the end (1Fh: and more telegrams follow).
DIF_MANUFACTURER = 0x0F
DIF_MORE_FOLLOWS = 0x1F
#: EN 13757-3 limit on DIFEs per record.
MAX_DIFES = 10

_INT_SIZES = {0x1: 1, 0x2: 2, 0x3: 3, 0x4: 4, 0x6: 6, 0x7: 8}
_BCD_SIZES = {0x9: 1, 0xA: 2, 0xB: 3, 0xC: 4, 0xE: 6}


def encode_id(id: int | str) -> bytes:
    """Return a secondary identification number as 4 BCD bytes, least significant first.

    ``id`` is an int 0..99999999 or 8 characters of digits and ``F``
    (a wildcard digit when selecting meters).
    """
    text = f"{id:08d}" if isinstance(id, int) else id.upper()
    if len(text) != 8 or any(ch not in "0123456789F" for ch in text):
        raise ValueError(f"identification number {id!r} is not 8 digits (or F wildcards)")
    return bytes.fromhex(text)[::-1]


def encode_manufacturer(code: str) -> bytes:
    """Return a three-letter manufacturer code as its 2 bytes, little endian ("KAM" → 2D 2C)."""
    if len(code) != 3 or not all("A" <= ch <= "Z" for ch in code):
        raise ValueError(f"manufacturer code {code!r} is not three letters A-Z")
    value = (ord(code[0]) - 64) << 10 | (ord(code[1]) - 64) << 5 | (ord(code[2]) - 64)
    return value.to_bytes(2, "little")


def long_header(id: int | str, manufacturer: str, version: int, medium: int,
                access: int, status: int = 0, signature: int = 0) -> bytes:
    """Return the 12-byte long header of CI 72h."""
    return (encode_id(id) + encode_manufacturer(manufacturer)
            + bytes(_byte(name, value) for name, value in (
                ("version", version), ("medium", medium), ("access number", access),
                ("status", status)))
            + _unsigned("signature", signature, 2))


def dib(data_type: int, *, function: str = "instantaneous", storage: int = 0, tariff: int = 0,
        subunit: int = 0) -> bytes:
    """Return the DIF and as many DIFEs as storage number, tariff and subunit need."""
    if not 0 <= data_type <= 0xF:
        raise ValueError(f"data field 0x{data_type:x} is not 0..0xF")
    if function not in FUNCTIONS:
        raise ValueError(f"function {function!r} is not one of {', '.join(FUNCTIONS)}")
    if storage < 0 or tariff < 0 or subunit < 0:
        raise ValueError("storage number, tariff and subunit cannot be negative")
    # Each DIFE carries 4 more storage bits, 2 tariff bits and 1 subunit bit.
    rest = storage >> 1
    difes = []
    while rest or tariff or subunit:
        difes.append(rest & 0x0F | (tariff & 3) << 4 | (subunit & 1) << 6)
        rest >>= 4
        tariff >>= 2
        subunit >>= 1
    if len(difes) > MAX_DIFES:
        raise ValueError(f"storage number, tariff or subunit needs more than {MAX_DIFES} DIFEs")
    dif = data_type | FUNCTIONS.index(function) << 4 | (storage & 1) << 6 | (0x80 if difes else 0)
    return bytes([dif] + [d | 0x80 for d in difes[:-1]] + difes[-1:])


def record(data_type: int, value, vib: bytes | int, *, function: str = "instantaneous",
           storage: int = 0, tariff: int = 0, subunit: int = 0) -> bytes:
    """Return one data record: DIB, ``vib`` (a VIF byte or the whole VIB) and the data.

    ``value`` by ``data_type``: an int for the integer types (1h–4h, 6h,
    7h; signed, or unsigned up to the full width, as bit fields are) and
    the BCD types (9h–Ch, Eh; negative as EN 13757-3 type A, with a leading
    F digit), a float for 5h, bytes for 0h and 8h (empty) or for data
    already encoded (a date from :func:`date_g`, say), and for the
    variable length type Dh a str or bytes (text) or an int (BCD).
    """
    head = dib(data_type, function=function, storage=storage, tariff=tariff, subunit=subunit)
    if isinstance(vib, int):
        vib = bytes([_byte("VIF", vib)])
    return head + vib + _data(data_type, value)


def _data(data_type: int, value) -> bytes:
    """Encode ``value`` as the data field ``data_type``."""
    if isinstance(value, (bytes, bytearray)) and data_type != 0xD:
        size = _INT_SIZES.get(data_type) or _BCD_SIZES.get(data_type) or (4 if data_type == 5 else 0)
        if len(value) != size:
            raise ValueError(f"data field 0x{data_type:x} holds {size} bytes, not {len(value)}")
        return bytes(value)
    if data_type in _INT_SIZES:
        # Signed, or the unsigned number with the same bits (flags, a date as an int).
        bits = 8 * _INT_SIZES[data_type]
        if not isinstance(value, int) or not -(1 << (bits - 1)) <= value < 1 << bits:
            raise ValueError(f"{value!r} does not fit a {bits}-bit integer")
        return value.to_bytes(bits // 8, "little", signed=value < 0)
    if data_type == 0x5:
        try:
            return struct.pack("<f", value)
        except (struct.error, OverflowError) as exc:
            raise ValueError(f"{value!r} is not a 32-bit real: {exc}") from None
    if data_type in _BCD_SIZES:
        return _bcd(value, 2 * _BCD_SIZES[data_type])
    if data_type == 0xD:
        return _variable(value)
    raise ValueError(f"data field 0x{data_type:x} takes no value here (give b'' for 0h/8h)")


def _bcd(value, digits: int) -> bytes:
    """Encode an int as ``digits`` BCD digits, least significant byte first; negative with an F digit."""
    if not isinstance(value, int):
        raise ValueError(f"BCD needs an int, not {value!r}")
    text = f"{-value:0{digits - 1}d}" if value < 0 else f"{value:0{digits}d}"
    if len(text) > digits - (value < 0):
        raise ValueError(f"{value} does not fit {digits} BCD digits")
    return bytes.fromhex(("f" if value < 0 else "") + text)[::-1]


def _variable(value) -> bytes:
    """Encode a variable-length field: LVAR then the data."""
    if isinstance(value, str):
        value = value.encode("latin-1")
    if isinstance(value, (bytes, bytearray)):
        if len(value) > 0xBF:
            raise ValueError(f"text of {len(value)} characters is longer than 191")
        return bytes([len(value)]) + bytes(value)[::-1]
    if isinstance(value, int):
        digits = len(str(abs(value)))
        size = (digits + 1) // 2
        if size > 0x0F:
            raise ValueError(f"{value} has more digits than a variable-length BCD holds (30)")
        return bytes([(0xD0 if value < 0 else 0xC0) + size]) + _bcd(abs(value), 2 * size)
    raise ValueError(f"a variable-length field takes str, bytes or int, not {value!r}")


# ----------------------------------------------------------------- dates

def date_g(d: datetime.date) -> bytes:
    """Return a date as type G (2 bytes), years 2000-2099."""
    year = _year(d.year, 2000)
    return bytes((d.day | (year & 0x07) << 5, d.month | (year & 0x78) << 1))


def datetime_f(dt: datetime.datetime) -> bytes:
    """Return a date and time to the minute as type F (4 bytes), years 2000-2299."""
    century, year = divmod(dt.year - 1900, 100)
    if not 1 <= century <= 3:
        raise ValueError(f"year {dt.year} is outside 2000-2299")
    return bytes((dt.minute, dt.hour | century << 5,
                  dt.day | (year & 0x07) << 5, dt.month | (year & 0x78) << 1))


def datetime_i(dt: datetime.datetime) -> bytes:
    """Return a date and time to the second as type I (6 bytes), years 2000-2099.

    Day of week (1 Monday … 7 Sunday) and ISO week number are filled in too.
    """
    year = _year(dt.year, 2000)
    return bytes((dt.second, dt.minute, dt.hour | dt.isoweekday() << 5,
                  dt.day | (year & 0x07) << 5, dt.month | (year & 0x78) << 1,
                  dt.isocalendar()[1]))


def _year(year: int, base: int) -> int:
    """Return the two-digit year of a type without a century field."""
    if not base <= year < base + 100:
        raise ValueError(f"year {year} is outside {base}-{base + 99}")
    return year - base


# ------------------------------------------------------------ user data

def user_data(header: bytes, records: list[bytes], *, more_follows: bool = False,
              manufacturer_data: bytes = b"") -> bytes:
    """Join header and records; close with 1Fh (more telegrams follow) or 0Fh and manufacturer data."""
    body = header + b"".join(records)
    if more_follows:
        return body + bytes([DIF_MORE_FOLLOWS]) + manufacturer_data
    if manufacturer_data:
        return body + bytes([DIF_MANUFACTURER]) + manufacturer_data
    return body


def _byte(name: str, value: int) -> int:
    """Check that ``value`` fits one byte."""
    if not isinstance(value, int) or not 0 <= value <= 0xFF:
        raise ValueError(f"{name} {value!r} is not 0..255")
    return value


def _unsigned(name: str, value: int, size: int) -> bytes:
    """Encode an unsigned little-endian field, checking its range."""
    if not isinstance(value, int) or not 0 <= value < 1 << (8 * size):
        raise ValueError(f"{name} {value!r} does not fit {size} bytes")
    return value.to_bytes(size, "little")
