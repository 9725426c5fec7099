# -*- test-case-name: tests.channels.mbus.test_telegram -*-
"""EN 13757-3 application layer: the user data of an RSP_UD, decoded.  A pure codec.

:func:`decode_user_data` takes the bytes after the CI field of a long frame
and returns a :class:`Telegram`: the header (CI 72h long, 7Ah short, 78h
none), the data records with values in base units, whether more telegrams
follow (DIF 1Fh), or the error/alarm a CI 70h/71h report carries.
:func:`decode_frame` does the same for a whole frame.  Anything malformed
raises :class:`MBusDecodeError` naming what and the byte offset; nothing
else escapes.

A data record::

    DIF [DIFE ×0..10] VIF [VIFE ×0..10] data
    DIF   bit 7 DIFE follows, bit 6 storage LSB, bits 5-4 function, bits 3-0 data field
    DIFE  bit 7 DIFE follows, bit 6 subunit, bits 5-4 tariff, bits 3-0 storage
    VIF   bit 7 VIFE follows, bits 6-0 code (tables.VIF; FBh/FDh: the first
          VIFE is a code of tables.VIF_FB/VIF_FD; 7Ch/FCh: a length byte and
          the unit as text, last character first, come before any VIFE)
    VIFE  bit 7 VIFE follows, bits 6-0 combinable code (tables.VIFE)

What the README ("Application layer") documents in full: values are floats
in base units, dates ISO 8601 strings in meter-local time, text and binary
strings; combinable VIFEs that scale or offset the value are applied, the
others name a variant of the quantity (``volume_forward``), and record
errors (VIFE 15h "no data available", an impossible date, a BCD digit A–F)
keep the record but set :attr:`Record.error`.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass

from channels.mbus import link
from channels.mbus.tables import (
    APPLICATION_ERRORS, DATA_LENGTH, EXTENSION, FAHRENHEIT, FUNCTIONS, MANUFACTURER, MEDIA,
    NUMBER, PLAIN_TEXT, TIME_POINT, V_DURATION, V_ERROR, V_EXTENDED, V_MANUFACTURER, V_OFFSET,
    V_QUALIFIER, V_SCALE, V_TIME_POINT, V_UNSIGNED, VIF, VIF_FB, VIF_FD, VIFE, VIFE_EXTENDED,
)

CI_ERROR = 0x70
CI_ALARM = 0x71
CI_LONG_HEADER = 0x72
CI_NO_HEADER = 0x78
CI_SHORT_HEADER = 0x7A
#: EN 13757-3 allows at most 10 DIFEs and 10 VIFEs per record (as libmbus enforces).
MAX_EXTENSIONS = 10
#: What a plain-text unit keeps in its quantity name: letters and digits.
_NOT_NAME = re.compile(r"[^A-Za-z0-9]+")


class MBusDecodeError(ValueError):
    """User data that cannot be decoded; ``what`` and ``offset`` say why and where."""

    def __init__(self, what: str, offset: int) -> None:
        super().__init__(f"{what} at byte {offset}")
        self.what = what
        self.offset = offset


@dataclass(slots=True, frozen=True)
class Header:
    """The 12-byte long header of CI 72h."""

    id: str              # identification number: 8 BCD digits (hex text if not BCD)
    manufacturer: str    # three letters, e.g. "KAM"
    version: int
    medium: str          # tables.MEDIA name, or "unknown_xx"
    medium_code: int
    access_number: int
    status: int
    signature: int


@dataclass(slots=True, frozen=True)
class ShortHeader:
    """The 4-byte short header of CI 7Ah: no identification, the link layer addressed the meter."""

    access_number: int
    status: int
    signature: int


@dataclass(slots=True, frozen=True)
class Record:
    """One data record.

    ``value`` is a float in ``unit`` for numbers, an ISO 8601 string for a
    point in time, the text of a text field, lowercase hex for binary and
    manufacturer data.  ``error`` is None unless a VIFE reports a record
    error or the field fails its checks (an impossible date, a BCD digit
    A-F: the value is then the field as hex).  ``dib``/``vib`` are the raw
    DIF+DIFEs and VIF+VIFEs; ``offset`` is where the DIF is in the caller's
    buffer.
    """

    function: str        # instantaneous | maximum | minimum | error
    storage: int
    tariff: int
    subunit: int
    quantity: str
    unit: str
    value: float | str
    dib: bytes
    vib: bytes
    offset: int
    error: str | None = None


@dataclass(slots=True, frozen=True)
class Telegram:
    """The decoded user data of one telegram."""

    ci: int
    header: Header | ShortHeader | None
    records: tuple[Record, ...]
    more_follows: bool = False   # DIF 1Fh: the meter has another telegram
    error: str | None = None     # what a CI 70h error or 71h alarm report says


# ------------------------------------------------------------------ decoding

def decode_frame(raw: bytes) -> Telegram:
    """Decode a whole long (or control) frame ``68 L L 68 C A CI … CS 16``.

    The link layer's checks come first; a :class:`link.MBusFrameError` is
    raised as :class:`MBusDecodeError` with the same ``what`` and ``offset``.
    """
    try:
        frame = link.parse_frame(raw)
    except link.MBusFrameError as exc:
        raise MBusDecodeError(exc.what, exc.offset) from exc
    if frame.kind not in ("long", "control"):
        raise MBusDecodeError(f"{frame.kind} frame carries no user data", 0)
    return decode_user_data(frame.ci, frame.data, frame.data_offset)


def decode_user_data(ci: int, data: bytes, base_offset: int = 0) -> Telegram:
    """Decode the user data that follows CI field ``ci``.

    ``base_offset`` is where ``data[0]`` sits in the caller's buffer (7 in a
    long frame); error offsets and :attr:`Record.offset` count from there.
    """
    data = bytes(data)
    if ci == CI_LONG_HEADER:
        if len(data) < 12:
            raise MBusDecodeError(f"long header needs 12 bytes, {len(data)} present",
                                  base_offset + len(data))
        manufacturer = data[4] | data[5] << 8
        medium = data[7]
        header = Header(
            id=data[3::-1].hex().upper(),
            manufacturer="".join(chr((manufacturer >> shift & 0x1F) + 64) for shift in (10, 5, 0)),
            version=data[6],
            medium=MEDIA.get(medium) or f"unknown_{medium:02x}",
            medium_code=medium,
            access_number=data[8],
            status=data[9],
            signature=data[10] | data[11] << 8,
        )
        start = 12
    elif ci == CI_SHORT_HEADER:
        if len(data) < 4:
            raise MBusDecodeError(f"short header needs 4 bytes, {len(data)} present",
                                  base_offset + len(data))
        header = ShortHeader(data[0], data[1], data[2] | data[3] << 8)
        start = 4
    elif ci == CI_NO_HEADER:
        header = None
        start = 0
    elif ci == CI_ERROR:
        return Telegram(ci, None, (), False, _application_error(data))
    elif ci == CI_ALARM:
        status = f"alarm status 0x{data.hex()}" if data else "alarm without status"
        return Telegram(ci, None, (), False, status + " (manufacturer specific)")
    else:
        # The CI field is the byte before the user data.
        raise MBusDecodeError(f"unsupported CI field 0x{ci:02x}", max(base_offset - 1, 0))
    records, more_follows = _decode_records(data, start, base_offset)
    return Telegram(ci, header, records, more_follows, None)


def _application_error(data: bytes) -> str:
    """Describe a CI 70h report: error code, then any further bytes as hex."""
    if not data:
        return APPLICATION_ERRORS[0]
    code = data[0]
    text = APPLICATION_ERRORS.get(code)
    if text is None:
        kind = "manufacturer-specific" if code > 0xF0 else "unknown"
        text = f"{kind} application error 0x{code:02x}"
    if len(data) > 1:
        text += f" (data {data[1:].hex()})"
    return text


_unpack_real = struct.Struct("<f").unpack_from
_from_bytes = int.from_bytes


def _decode_records(data: bytes, pos: int, base: int) -> tuple[tuple[Record, ...], bool]:
    """Decode the data records from ``data[pos:]``; return them and whether more telegrams follow.

    The common record (no VIFE, fixed-length data) is decoded inline; VIFEs,
    plain-text VIFs, variable-length data and dates go to helpers.
    """
    end = len(data)
    records = []
    append = records.append
    while pos < end:
        dif = data[pos]
        field = dif & 0x0F
        if field == 0x0F:
            if dif == 0x2F:                      # idle filler
                pos += 1
                continue
            if dif == 0x0F or dif == 0x1F:       # manufacturer data up to the end
                append(Record("instantaneous", 0, 0, 0, "manufacturer_specific", "",
                              data[pos + 1:].hex(), data[pos:pos + 1], b"", base + pos))
                return tuple(records), dif == 0x1F
            raise MBusDecodeError(f"reserved special-function DIF 0x{dif:02x}", base + pos)
        start = pos
        pos += 1
        storage = dif >> 6 & 1
        tariff = subunit = 0
        if dif & 0x80:
            count = 0
            while True:
                if pos >= end:
                    raise MBusDecodeError("record ends inside its DIFEs", base + pos)
                if count == MAX_EXTENSIONS:
                    raise MBusDecodeError(f"more than {MAX_EXTENSIONS} DIFEs", base + pos)
                dife = data[pos]
                pos += 1
                storage |= (dife & 0x0F) << (1 + 4 * count)
                tariff |= (dife >> 4 & 3) << (2 * count)
                subunit |= (dife >> 6 & 1) << count
                count += 1
                if dife < 0x80:
                    break
        if pos >= end:
            raise MBusDecodeError("record ends before its VIF", base + pos)
        vib_start = pos
        vif = data[pos]
        pos += 1
        quantity, unit, num, den, kind = VIF[vif & 0x7F]
        add = 0.0
        unsigned = False
        error = None
        if vif & 0x80 or kind == PLAIN_TEXT:
            quantity, unit, num, den, kind, add, unsigned, error, pos = _decode_vib(
                data, pos, vif, base)
        vib_end = pos

        length = DATA_LENGTH[field]
        if length < 0:
            value, pos, problem = _variable_data(data, pos, base, num, den, add)
        else:
            if pos + length > end:
                raise MBusDecodeError(f"record data needs {length} bytes, {end - pos} present",
                                      base + pos)
            chunk = data[pos:pos + length]
            pos += length
            problem = None
            if length == 0:
                value = ""
            elif kind == TIME_POINT:
                value, problem = _time_point(chunk, field)
            elif field == 5:
                raw = _unpack_real(chunk)[0]
                if math.isfinite(raw):
                    value = raw * num / den + add
                else:
                    value, problem = chunk[::-1].hex(), "real value is not a finite number"
            elif field < 8:
                value = _from_bytes(chunk, "little", signed=not unsigned) * num / den + add
            else:
                digits = chunk[::-1].hex()
                if digits.isdigit():
                    value = int(digits) * num / den + add
                elif digits[0] == "f" and digits[1:].isdigit():
                    # EN 13757-3 type A: a leading F nibble is the minus sign.
                    value = -int(digits[1:]) * num / den + add
                else:
                    value, problem = digits, "BCD field with a digit A-F"
        if kind == FAHRENHEIT and type(value) is float:
            value = (value - 32) * 5 / 9
        if problem is not None:
            error = problem if error is None else f"{error}; {problem}"
        append(Record(FUNCTIONS[dif >> 4 & 3], storage, tariff, subunit, quantity, unit, value,
                      data[start:vib_start], data[vib_start:vib_end], base + start, error))
    return tuple(records), False


def _decode_vib(data: bytes, pos: int, vif: int, base: int) -> tuple:
    """Decode a VIB that has a plain-text VIF or VIFEs; ``pos`` is just past the VIF.

    Returns ``(quantity, unit, num, den, kind, add, unsigned, error, pos)``:
    the VIF's entry with the combinable VIFEs applied, the additive
    correction in base units, whether the integer is unsigned (type C),
    the record errors VIFEs name, and the position after the VIB.
    """
    end = len(data)
    quantity, unit, num, den, kind = VIF[vif & 0x7F]
    if kind == PLAIN_TEXT:
        if pos >= end:
            raise MBusDecodeError("plain-text VIF without its length byte", base + pos)
        size = data[pos]
        if pos + 1 + size > end:
            raise MBusDecodeError(f"plain-text VIF of {size} characters runs past the end",
                                  base + pos)
        # Characters are sent last first, like the bytes of a number.
        text = data[pos + 1:pos + 1 + size][::-1].decode("latin-1")
        slug = _NOT_NAME.sub("_", text).strip("_")
        quantity = f"plain_text_{slug}" if slug else "plain_text"
        kind = NUMBER
        pos += 1 + size
    if not vif & 0x80:
        return quantity, unit, num, den, kind, 0.0, False, None, pos

    # The VIFE chain ends at the first byte without the extension bit,
    # whatever the codes mean; read it whole, then interpret it.
    first = pos
    more = True
    while more:
        if pos >= end:
            raise MBusDecodeError("record ends inside its VIFEs", base + pos)
        if pos - first == MAX_EXTENSIONS:
            raise MBusDecodeError(f"more than {MAX_EXTENSIONS} VIFEs", base + pos)
        more = data[pos] & 0x80
        pos += 1
    vifes = data[first:pos]
    if kind == MANUFACTURER:
        return _manufacturer_specific(vifes), unit, num, den, kind, 0.0, False, None, pos
    index = 0
    if kind == EXTENSION:
        quantity, unit, num, den, kind = (VIF_FB if vif == 0xFB else VIF_FD)[vifes[0] & 0x7F]
        index = 1

    vif_num, vif_den = num, den
    add = 0.0
    unsigned = False
    errors = []
    suffixes = []
    while index < len(vifes):
        action, arg = VIFE[vifes[index] & 0x7F]
        index += 1
        if action == V_EXTENDED and index < len(vifes):
            action, arg = VIFE_EXTENDED.get(vifes[index] & 0x7F, (None, None))
            index += 1
        if action == V_SCALE:
            num *= arg[0]
            den *= arg[1]
        elif action == V_OFFSET:
            add += arg[0] * vif_num / (arg[1] * vif_den)
        elif action == V_QUALIFIER:
            suffixes.append(arg)
        elif action == V_TIME_POINT:
            suffixes.append(arg)
            kind, unit = TIME_POINT, ""
        elif action == V_DURATION:
            suffixes.append(arg[0])
            kind, unit, num, den = NUMBER, "s", arg[1], 1
        elif action == V_ERROR:
            errors.append(arg)
        elif action == V_UNSIGNED:
            unsigned = True
        elif action == V_MANUFACTURER:
            suffixes.append(_manufacturer_specific(vifes[index:]))
            break
    if suffixes:
        quantity = "_".join([quantity, *suffixes])
    return (quantity, unit, num, den, kind, add, unsigned,
            "; ".join(errors) if errors else None, pos)


def _manufacturer_specific(codes: bytes) -> str:
    """Name a manufacturer-specific quantity after its VIFE codes (``manufacturer_specific_1200``)."""
    if not codes:
        return "manufacturer_specific"
    return "manufacturer_specific_" + "".join(f"{code & 0x7F:02x}" for code in codes)


def _variable_data(data: bytes, pos: int, base: int, num: int, den: int,
                   add: float) -> tuple[float | str, int, str | None]:
    """Decode a variable-length field (DIF data field Dh) at ``pos``, its LVAR byte.

    Returns ``(value, position after the field, problem or None)``.  LVAR:
    00h–BFh text of that many characters (last character first), C0h–CFh
    positive and D0h–DFh negative BCD of (LVAR & 0Fh) bytes (the standard
    defines up to C9h/D9h), E0h–EFh binary of (LVAR - E0h) bytes, F0h–F4h
    big binary numbers of 4·(LVAR - ECh) bytes; binary comes back as hex,
    most significant byte first.
    """
    end = len(data)
    if pos >= end:
        raise MBusDecodeError("record ends before its LVAR byte", base + pos)
    lvar = data[pos]
    if lvar < 0xC0:
        size = lvar
    elif lvar < 0xE0:
        size = lvar & 0x0F
    elif lvar < 0xF0:
        size = lvar - 0xE0
    elif lvar <= 0xF4:
        size = 4 * (lvar - 0xEC)
    else:
        raise MBusDecodeError(f"reserved LVAR 0x{lvar:02x}", base + pos)
    first = pos + 1
    if first + size > end:
        raise MBusDecodeError(f"variable-length data needs {size} bytes, {end - first} present",
                              base + first)
    field = data[first:first + size][::-1]
    after = first + size
    if lvar < 0xC0:
        return field.decode("latin-1"), after, None
    if lvar >= 0xE0:
        return field.hex(), after, None
    digits = field.hex()
    if digits and not digits.isdigit():
        return digits, after, "BCD field with a digit A-F"
    number = int(digits) if digits else 0
    if lvar >= 0xD0:
        number = -number
    return number * num / den + add, after, None


# Days per month; February is checked for leap years separately.
_MONTH_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _valid_date(year: int, month: int, day: int) -> bool:
    """Tell whether the date exists in the Gregorian calendar."""
    if not 1 <= month <= 12 or not 1 <= day <= _MONTH_DAYS[month]:
        return False
    return month != 2 or day < 29 or (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0))


def _time_point(chunk: bytes, field: int) -> tuple[str, str | None]:
    """Decode a date/time field (EN 13757-3 Annex A) to ISO 8601, meter-local time.

    By length: 2 bytes type G (date), 3 bytes type J (time of day), 4 bytes
    type F (date and time to the minute), 6 bytes type I (to the second).
    The 7-bit year counts from 2000 except where type F's hundred-year
    field says otherwise (most meters leave it 0).  Returns ``(value,
    problem)``: an impossible date or time comes back as hex with a
    problem; a set "time invalid" bit keeps the value and says so.
    """
    if field not in (2, 3, 4, 6):
        return chunk[::-1].hex(), "date/time in a data field that is not an integer of 2, 3, 4 or 6 bytes"
    if field == 3:
        second, minute, hour = chunk[0] & 0x3F, chunk[1] & 0x3F, chunk[2] & 0x1F
        if second > 59 or minute > 59 or hour > 23:
            return chunk[::-1].hex(), "invalid time"
        return f"{hour:02d}:{minute:02d}:{second:02d}", None
    # G, F and I code the date alike; in type I the week number follows it.
    low, high = (chunk[3], chunk[4]) if field == 6 else (chunk[-2], chunk[-1])
    day, month, year = low & 0x1F, high & 0x0F, low >> 5 | (high & 0xF0) >> 1
    century = chunk[1] >> 5 & 3 if field == 4 else 0
    valid = year <= 99
    year += (1900 + 100 * century) if century else 2000
    valid = valid and _valid_date(year, month, day)
    if field == 2:
        return (f"{year:04d}-{month:02d}-{day:02d}", None) if valid else (chunk[::-1].hex(), "invalid date")
    if field == 4:
        second, minute, hour, invalid = 0, chunk[0] & 0x3F, chunk[1] & 0x1F, chunk[0] & 0x80
    else:
        second, minute, hour, invalid = chunk[0] & 0x3F, chunk[1] & 0x3F, chunk[2] & 0x1F, chunk[1] & 0x80
    problem = "date/time marked invalid by the meter" if invalid else None
    if not valid or second > 59 or minute > 59 or hour > 23:
        return chunk[::-1].hex(), problem or "invalid date/time"
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}", problem


# --------------------------------------------------------------------- JSON

def telegram_to_json(t: Telegram) -> dict:
    """Return ``t`` as a JSON-ready dict (the ``scada mbus decode`` output).

    ``header`` is null without a header and has only access number, status
    and signature for a short header; ``error`` appears only on error and
    alarm reports (and on records with a record error), ``more_follows``
    only when true.
    """
    header = t.header
    if header is None:
        head = None
    elif isinstance(header, ShortHeader):
        head = {"access_number": header.access_number, "status": header.status,
                "signature": header.signature}
    else:
        head = {"id": header.id, "manufacturer": header.manufacturer, "version": header.version,
                "medium": header.medium, "access_number": header.access_number,
                "status": header.status, "signature": header.signature}
    records = []
    for r in t.records:
        item = {"function": r.function, "storage": r.storage, "tariff": r.tariff,
                "subunit": r.subunit, "quantity": r.quantity, "unit": r.unit, "value": r.value}
        if r.error is not None:
            item["error"] = r.error
        records.append(item)
    out = {"header": head, "records": records}
    if t.error is not None:
        out["error"] = t.error
    if t.more_follows:
        out["more_follows"] = True
    return out
