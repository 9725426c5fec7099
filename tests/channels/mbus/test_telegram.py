"""Tests for channels.mbus.telegram: EN 13757-3 user data, built byte by byte from the standard's tables."""

from __future__ import annotations

import math

import pytest

from channels.mbus import tables
from channels.mbus.link import long_frame
from channels.mbus.telegram import (
    Header, MBusDecodeError, Record, ShortHeader, Telegram, decode_frame, decode_user_data,
    telegram_to_json,
)

#: A long header: id 12345678, KAM, version 1, medium 04 (heat, outlet), access 0x2A, status 0, signature 0.
HEADER = "78563412 2d2c 01 04 2a 00 0000"


def records(hex_text: str, ci: int = 0x78) -> tuple[Record, ...]:
    """Decode user data given as hex (no header with the default CI 78h)."""
    return decode_user_data(ci, bytes.fromhex(hex_text)).records


def one(hex_text: str) -> Record:
    """Decode user data holding exactly one record."""
    (record,) = records(hex_text)
    return record


def error_of(hex_text: str, ci: int = 0x78, base: int = 0) -> MBusDecodeError:
    """Return the MBusDecodeError that decoding raises."""
    with pytest.raises(MBusDecodeError) as info:
        decode_user_data(ci, bytes.fromhex(hex_text), base)
    return info.value


# --------------------------------------------------------------- worked examples

@pytest.mark.parametrize("hex_text, quantity, unit, value", [
    ("04 6D 1A 2F 65 11", "datetime", "", "2011-01-05T15:26:00"),
    ("04 06 E7 91 00 00", "energy", "Wh", 37351000.0),
    ("04 14 2C DB 00 00", "volume", "m^3", 561.08),
])
def test_protocols_md_worked_examples(hex_text, quantity, unit, value):
    """The three records of protocols.md §1.5 decode to what libmbus's XML says."""
    record = one(hex_text)
    assert (record.quantity, record.unit, record.value) == (quantity, unit, value)
    assert record.function == "instantaneous" and record.error is None


# ------------------------------------------------------------------------ header

def test_long_header():
    """CI 72h: BCD id LSB first, manufacturer letters, version, medium, access, status, signature LE."""
    telegram = decode_user_data(0x72, bytes.fromhex("17 58 85 06 2d 2c 08 06 c3 10 34 12"))
    assert telegram.header == Header(id="06855817", manufacturer="KAM", version=8, medium="warm_water",
                                     medium_code=6, access_number=0xC3, status=0x10, signature=0x1234)
    assert telegram.records == () and not telegram.more_follows and telegram.error is None


@pytest.mark.parametrize("code, letters", [("2d2c", "KAM"), ("542e", "KRT"), ("2c35", "MIL")])
def test_manufacturer_codes(code, letters):
    """Manufacturer codes checked against real frames in protocols.md §1.5."""
    header = decode_user_data(0x72, bytes.fromhex(f"00000000 {code} 00 00 00 00 0000")).header
    assert header.manufacturer == letters


def test_id_that_is_not_bcd_stays_hex():
    """An identification field with nibbles A-F is kept as its hex text."""
    header = decode_user_data(0x72, bytes.fromhex("ff 3a 00 12 2d2c 01 07 00 00 0000")).header
    assert header.id == "12003AFF"


@pytest.mark.parametrize("code, name", [
    (0x02, "electricity"), (0x03, "gas"), (0x04, "heat_outlet"), (0x06, "warm_water"),
    (0x07, "water"), (0x08, "heat_cost_allocator"), (0x0C, "heat_inlet"), (0x16, "cold_water"),
    (0x3F, "unknown_3f"), (0xFF, "unknown_ff"),
])
def test_medium_names(code, name):
    """Medium byte → name; codes the standard reserves are unknown_xx."""
    header = decode_user_data(0x72, bytes.fromhex(f"78563412 2d2c 01 {code:02x} 00 00 0000")).header
    assert (header.medium, header.medium_code) == (name, code)


def test_short_header():
    """CI 7Ah: access number, status and signature only."""
    telegram = decode_user_data(0x7A, bytes.fromhex("2a 04 0000 0413 e8030000"))
    assert telegram.header == ShortHeader(access_number=0x2A, status=4, signature=0)
    assert telegram.records[0].value == 1.0


def test_no_header():
    """CI 78h: records start at the first byte."""
    telegram = decode_user_data(0x78, bytes.fromhex("0413 e8030000"))
    assert telegram.header is None and telegram.records[0].value == 1.0


# ------------------------------------------------------------ DIF data field types

@pytest.mark.parametrize("dif, data, value", [
    (0x01, "ff", -1.0),                                # int8, two's complement
    (0x01, "7f", 127.0),
    (0x02, "0080", -32768.0),                          # int16
    (0x03, "563412", 0x123456),                        # int24
    (0x03, "ffffff", -1.0),
    (0x04, "78563412", 0x12345678),                    # int32
    (0x04, "feffffff", -2.0),
    (0x06, "010000000080", -(1 << 47) + 1),            # int48
    (0x07, "00e40b5402000000", 1e10),                  # int64
    (0x07, "feffffffffffffff", -2.0),
    (0x05, "0000c03f", 1.5),                           # real32, IEEE 754 little endian
    (0x05, "000020c1", -10.0),
    (0x09, "99", 99.0),                                # BCD 2 digits
    (0x0A, "3412", 1234.0),                            # BCD 4
    (0x0B, "563412", 123456.0),                        # BCD 6
    (0x0C, "78563412", 12345678.0),                    # BCD 8
    (0x0E, "907856341212", 121234567890.0),            # BCD 12
    (0x0A, "34f2", -234.0),                            # negative BCD: leading F digit
    (0x0C, "785634f1", -1345678.0),
    (0x09, "f5", -5.0),
])
def test_data_field_types(dif, data, value):
    """Every numeric DIF data field, read with VIF 03h (energy in Wh, scale 1)."""
    record = one(f"{dif:02x} 03 {data}")
    assert record.value == value and type(record.value) is float
    assert (record.quantity, record.unit, record.error) == ("energy", "Wh", None)


@pytest.mark.parametrize("dif", [0x00, 0x08])
def test_no_data_and_readout_selection(dif):
    """Data fields 0h (no data) and 8h (selection for readout) carry no bytes."""
    first, second = records(f"{dif:02x} 13 0413 01000000")
    assert first.value == "" and first.quantity == "volume"
    assert second.value == 0.001


def test_bcd_with_hex_digit_is_a_record_error():
    """A BCD digit A-F (other than the sign) keeps the digits as text and names the error."""
    record = one("0c 13 5634a2ff")
    assert record.value == "ffa23456" and record.error == "BCD field with a digit A-F"


def test_real_that_is_not_finite():
    """A NaN real cannot be a reading: hex and an error, so JSON stays valid."""
    record = one("05 2b 0000c07f")
    assert record.value == "7fc00000" and "finite" in record.error


@pytest.mark.parametrize("lvar, data, value", [
    ("05", "6f6c6c6568", "hello"),          # text, last character first
    ("00", "", ""),
    ("c2", "3412", 1234.0),                 # positive BCD, 2 bytes
    ("d3", "563412", -123456.0),            # negative BCD, 3 bytes
    ("e3", "010203", "030201"),             # binary, most significant byte first
    ("f0", "00" * 15 + "01", "01" + "00" * 15),   # big number: 4 * (F0h - ECh) = 16 bytes
])
def test_variable_length_data(lvar, data, value):
    """DIF data field Dh: LVAR picks text, BCD (C0h/D0h) or binary (E0h, F0h-F4h)."""
    record = one(f"0d 03 {lvar} {data}")
    assert record.value == value and record.error is None


def test_variable_length_bcd_with_hex_digit():
    """An A-F digit in variable-length BCD is a record error, as in fixed BCD."""
    record = one("0d 03 c2 3a12")
    assert (record.value, record.error) == ("123a", "BCD field with a digit A-F")


def test_variable_length_text_is_latin1():
    """Text bytes above 7Fh are ISO 8859-1, never a decoding error."""
    assert one("0d fd11 03 e9fcc4").value == "Äüé"


@pytest.mark.parametrize("lvar", ["f5", "fa", "ff"])
def test_reserved_lvar(lvar):
    """LVAR F5h-FFh is reserved: the record cannot be delimited."""
    error = error_of(f"0413 00000000 0d03 {lvar} 00", base=7)
    assert error.what == f"reserved LVAR 0x{lvar}" and error.offset == 7 + 8


# --------------------------------------------------------------- DIF and DIFEs

@pytest.mark.parametrize("dib, function, storage, tariff, subunit", [
    ("04", "instantaneous", 0, 0, 0),
    ("14", "maximum", 0, 0, 0),
    ("24", "minimum", 0, 0, 0),
    ("34", "error", 0, 0, 0),
    ("44", "instantaneous", 1, 0, 0),          # DIF bit 6: storage number LSB
    ("84 01", "instantaneous", 2, 0, 0),        # DIFE bits 0-3: storage bits 1-4
    ("c4 0f", "instantaneous", 31, 0, 0),
    ("84 10", "instantaneous", 0, 1, 0),        # DIFE bits 4-5: tariff
    ("84 40", "instantaneous", 0, 0, 1),        # DIFE bit 6: subunit
    ("c4 ff 7f", "instantaneous", 511, 15, 3),  # second DIFE: 4, 2 and 1 more bits
    ("84 8f 0f", "instantaneous", 510, 0, 0),   # storage 510, as in the Landis+Gyr T230 frame
])
def test_function_storage_tariff_subunit(dib, function, storage, tariff, subunit):
    """Function from DIF bits 4-5; storage, tariff and subunit assembled from DIF and DIFEs."""
    record = one(f"{dib} 13 01000000")
    assert (record.function, record.storage, record.tariff, record.subunit) == (
        function, storage, tariff, subunit)
    assert record.dib == bytes.fromhex(dib) and record.vib == b"\x13"


def test_ten_difes_allowed_eleven_not():
    """EN 13757-3 allows 10 DIFEs per record; the 11th is an error at its own byte."""
    assert one("84" + "80" * 9 + "00 13 01000000").storage == 0
    error = error_of("84" + "80" * 10 + "00 13 01000000")
    assert error.what == "more than 10 DIFEs" and error.offset == 11


# ---------------------------------------------------------- primary VIF ranges

#: (first code, count, quantity, unit, value of raw 1 at the first code, step factor per code)
PRIMARY_RANGES = [
    (0x00, 8, "energy", "Wh", 1e-3, 10),
    (0x08, 8, "energy", "J", 1, 10),
    (0x10, 8, "volume", "m^3", 1e-6, 10),
    (0x18, 8, "mass", "kg", 1e-3, 10),
    (0x28, 8, "power", "W", 1e-3, 10),
    (0x30, 8, "power", "J/h", 1, 10),
    (0x38, 8, "volume_flow", "m^3/h", 1e-6, 10),
    (0x40, 8, "volume_flow", "m^3/h", 1e-7 * 60, 10),      # m³/min
    (0x48, 8, "volume_flow", "m^3/h", 1e-9 * 3600, 10),    # m³/s
    (0x50, 8, "mass_flow", "kg/h", 1e-3, 10),
    (0x58, 4, "flow_temperature", "°C", 1e-3, 10),
    (0x5C, 4, "return_temperature", "°C", 1e-3, 10),
    (0x60, 4, "temperature_difference", "K", 1e-3, 10),
    (0x64, 4, "external_temperature", "°C", 1e-3, 10),
    (0x68, 4, "pressure", "bar", 1e-3, 10),
]
#: Durations: seconds, minutes, hours, days.
DURATION_RANGES = [(0x20, "on_time"), (0x24, "operating_time"),
                   (0x70, "averaging_duration"), (0x74, "actuality_duration")]
SINGLE_CODES = [(0x6E, "heat_cost_allocation"), (0x6F, "reserved"), (0x78, "fabrication_number"),
                (0x79, "enhanced_identification"), (0x7A, "bus_address"), (0x7B, "reserved"),
                (0x7D, "reserved"), (0x7E, "any"), (0x7F, "manufacturer_specific")]


@pytest.mark.parametrize("first, count, quantity, unit, scale, step", PRIMARY_RANGES)
def test_primary_vif_scaled_ranges(first, count, quantity, unit, scale, step):
    """Each code of each decade range: quantity, base unit, value of a raw 1000 scaled exactly."""
    for n in range(count):
        record = one(f"04 {first + n:02x} e8030000")
        assert (record.quantity, record.unit) == (quantity, unit), hex(first + n)
        assert math.isclose(record.value, 1000 * scale * step ** n, rel_tol=1e-12), hex(first + n)


@pytest.mark.parametrize("first, quantity", DURATION_RANGES)
def test_primary_vif_durations(first, quantity):
    """nn = seconds, minutes, hours, days, reported in seconds."""
    values = [one(f"02 {first + n:02x} 0200").value for n in range(4)]
    assert values == [2.0, 120.0, 7200.0, 172800.0]
    assert one(f"02 {first:02x} 0200").unit == "s"


@pytest.mark.parametrize("code, quantity", SINGLE_CODES)
def test_primary_vif_single_codes(code, quantity):
    """Dimensionless codes: the number as it is, no unit."""
    record = one(f"0c {code:02x} 78563412")
    assert (record.quantity, record.unit, record.value) == (quantity, "", 12345678.0)


def test_vif_tables_cover_every_code():
    """Every table has an entry for each of the 128 codes."""
    assert len(tables.VIF) == len(tables.VIF_FB) == len(tables.VIF_FD) == len(tables.VIFE) == 128


def test_plain_text_vif():
    """VIF 7Ch: length and text (last character first) follow the VIF and precede any VIFE."""
    record = one("02 fc 03 48 52 25 74 d4 11")   # "%RH", ×10^-2 (the Elvaco humidity record)
    assert (record.quantity, record.unit, record.value) == ("plain_text_RH", "", 45.64)
    assert record.vib == bytes.fromhex("fc 03 48 52 25 74")
    assert one("02 7c 00 0500").quantity == "plain_text"


def test_manufacturer_specific_vif_and_its_vifes():
    """VIF FFh: the VIFEs are the manufacturer's, named by their codes; the value stays raw."""
    record = one("01 ff 92 00 07")
    assert (record.quantity, record.value) == ("manufacturer_specific_1200", 7.0)


# ----------------------------------------------------------- extension tables

@pytest.mark.parametrize("vib, quantity, unit, value", [
    ("fb 00", "energy", "Wh", 1e5),              # 0.1 MWh
    ("fb 01", "energy", "Wh", 1e6),
    ("fb 09", "energy", "J", 1e9),               # GJ
    ("fb 0d", "energy", "J", 4.1868e6),          # Mcal
    ("fb 11", "volume", "m^3", 1e3),
    ("fb 19", "mass", "kg", 1e6),                # 1000 t
    ("fb 1a", "relative_humidity", "", 0.1),
    ("fb 21", "volume", "m^3", 0.0028316846592),  # 0.1 ft³
    ("fb 23", "volume", "m^3", 0.003785411784),  # US gallon
    ("fb 29", "power", "W", 1e6),                # MW
    ("fb 31", "power", "J/h", 1e9),              # GJ/h
    ("fb 63", "temperature_difference", "K", 5 / 9),
    ("fb 7b", "cumulative_max_power", "W", 1.0),
    ("fd 03", "credit", "", 1.0),
    ("fd 08", "access_number", "", 1.0),
    ("fd 0e", "firmware_version", "", 1.0),
    ("fd 17", "error_flags", "", 1.0),
    ("fd 1c", "baud_rate", "", 1.0),
    ("fd 26", "storage_interval", "s", 3600.0),
    ("fd 28", "storage_interval_months", "", 1.0),
    ("fd 2f", "duration_since_last_readout", "s", 86400.0),
    ("fd 31", "tariff_duration", "s", 60.0),
    ("fd 3a", "dimensionless", "", 1.0),
    ("fd 47", "voltage", "V", 0.01),             # 10^(7-9) V
    ("fd 49", "voltage", "V", 1.0),
    ("fd 59", "current", "A", 0.001),            # 10^(9-12) A
    ("fd 60", "reset_counter", "", 1.0),
    ("fd 61", "cumulation_counter", "", 1.0),
    ("fd 69", "duration_since_last_cumulation", "s", 86400.0),
    ("fd 6c", "battery_operating_time", "s", 3600.0),
    ("fd 74", "remaining_battery_life", "s", 86400.0),
])
def test_extension_tables(vib, quantity, unit, value):
    """VIF FBh and FDh: the first VIFE is a code of the extension table."""
    record = one(f"01 {vib} 01")
    assert (record.quantity, record.unit) == (quantity, unit)
    assert math.isclose(record.value, value, rel_tol=1e-12)


def test_fahrenheit_is_reported_in_celsius():
    """FB 58h-5Fh, 64h-67h, 70h-73h are °F; the value is converted to °C."""
    assert math.isclose(one("02 fb 5b d400").value, 100.0)                # 212 °F
    assert math.isclose(one("02 fb 5a 4001").value, 0.0, abs_tol=1e-12)  # 32.0 °F
    record = one("02 fb 72 3cff")                                         # -19.6 °F cold/warm limit
    assert (record.quantity, record.unit) == ("temperature_limit", "°C")
    assert math.isclose(record.value, (-19.6 - 32) * 5 / 9)


@pytest.mark.parametrize("vib, data, quantity, value", [
    ("fd 30", "6c11", "tariff_start", "2011-01-12"),
    ("fd 70", "1a2f6511", "battery_change_datetime", "2011-01-05T15:26:00"),
])
def test_extension_time_points(vib, data, quantity, value):
    """FD 30h (start of tariff) and 70h (battery change) carry dates."""
    record = one(f"{len(data) // 2:02x} {vib} {data}")
    assert (record.quantity, record.value) == (quantity, value)


# --------------------------------------------------------------- combinable VIFEs

@pytest.mark.parametrize("vifes, factor", [
    ("70", 1e-6), ("73", 1e-3), ("76", 1.0), ("77", 10.0),   # ×10^(nnn-6)
    ("7d", 1000.0),                                          # ×10^3
    ("f4 7d", 10.0),                                         # both, in order
])
def test_multiplicative_correction(vifes, factor):
    """Combinable VIFEs 70h-77h and 7Dh scale the value (here of a raw 1000 Wh, VIF 83h)."""
    record = one(f"04 83 {vifes} e8030000")
    assert math.isclose(record.value, 1000 * factor) and record.quantity == "energy"


@pytest.mark.parametrize("vife, offset_wh", [("78", 0.001), ("79", 0.01), ("7a", 0.1), ("7b", 1.0)])
def test_additive_correction(vife, offset_wh):
    """78h-7Bh add 10^(nn-3) units of the VIF: with VIF 06h (kWh) that is 10^nn Wh."""
    record = one(f"04 86 {vife} 01000000")
    assert math.isclose(record.value, 1000 + offset_wh * 1000)


@pytest.mark.parametrize("vife, quantity", [
    ("3b", "energy_forward"), ("3c", "energy_backward"), ("7e", "energy_future_value"),
    ("22", "energy_per_hour"), ("28", "energy_per_input_pulse_ch0"), ("40", "energy_lower_limit"),
    ("49", "energy_upper_limit_exceed_count"), ("3e", "energy_base_conditions"),
])
def test_qualifier_vifes_name_a_variant(vife, quantity):
    """VIFEs that say what kind of value it is extend the quantity; the value is unchanged."""
    record = one(f"04 83 {vife} 05000000")
    assert (record.quantity, record.unit, record.value) == (quantity, "Wh", 5.0)


def test_record_error_vife_keeps_the_value():
    """Error VIFEs (00h-1Fh) set Record.error; decoding goes on; 00h means no error."""
    broken, fine, after = records("04 93 15 0a000000  04 93 00 0b000000  04 13 0c000000")
    assert (broken.value, broken.error) == (0.01, "record error: no data available")
    assert (fine.value, fine.error) == (0.011, None)
    assert after.value == 0.012


def test_manufacturer_vife_ends_interpretation():
    """VIFE 7Fh: this and the following VIFEs are manufacturer specific; no scaling from them."""
    record = one("04 ac ff 01 e8030000")   # power ×10 W, then the manufacturer's 01
    assert (record.quantity, record.unit, record.value) == ("power_manufacturer_specific_01", "W", 10000.0)
    assert one("04 83 7f 05000000").quantity == "energy_manufacturer_specific"
    assert one("04 83 ff f0 74 05000000").value == 5.0   # F0h/74h after 7Fh are not scale codes


def test_extended_combinable_vifes():
    """VIFE 7Ch takes the next code from the 2013 extension table: phases, type C."""
    assert one("02 fd c9 fc 01 e600").quantity == "voltage_phase_l1"
    unsigned = one("02 ab fc 11 ffff")     # data presented as type C: unsigned
    assert unsigned.value == 65535.0


def test_duration_of_limit_exceed():
    """VIFE 50h-5Fh: the record is a duration (the SEN Pollustat frame's BE 50 / BE 58)."""
    lower = one("04 be 50 71bbb000")
    upper = one("04 be 58 f4020000")
    assert (lower.quantity, lower.unit, lower.value) == (
        "volume_flow_lower_limit_first_exceed_duration", "s", 11582321.0)
    assert (upper.quantity, upper.value) == ("volume_flow_upper_limit_first_exceed_duration", 756.0)
    assert one("02 be 5a 0200").value == 7200.0    # nn = 10: hours


def test_time_point_vife():
    """VIFE 6Fh (date/time of the last end): the data is a type F date (the Landis+Gyr T230 frame)."""
    record = one("94 10 da 6f 32 14 7a 18")
    assert (record.function, record.tariff) == ("maximum", 1)
    assert (record.quantity, record.unit, record.value) == (
        "flow_temperature_last_end_time", "", "2011-08-26T20:50:00")


def test_ten_vifes_allowed_eleven_not():
    """EN 13757-3 allows 10 VIFEs per record (the FBh/FDh code byte counts)."""
    assert one("04 93" + " 80" * 9 + " 00 01000000").value == 0.001
    error = error_of("0493" + "80" * 10 + "00 01000000", base=7)
    assert error.what == "more than 10 VIFEs" and error.offset == 7 + 12


# ---------------------------------------------------------------------- dates

@pytest.mark.parametrize("dif, vif, data, value", [
    ("02", "6c", "8d11", "2012-01-13"),                       # G
    ("02", "6c", "ff1c", "2015-12-31"),
    ("04", "6d", "19 0f 8a 17", "2012-07-10T15:25:00"),       # F, hundred-year field 0
    ("04", "6d", "1a 2f 65 11", "2011-01-05T15:26:00"),       # F, hundred-year 1 (19xx + 100)
    ("04", "6d", "00 40 01 02", "2100-02-01T00:00:00"),       # F, hundred-year 2
    ("06", "6d", "2d 0a 0c 8d 11 02", "2012-01-13T12:10:45"),  # I, with seconds
    ("03", "6d", "2d 0a 0c", "12:10:45"),                     # J, time only
    ("02", "6c", "1d22", "2016-02-29"),                       # G, leap day
])
def test_date_types(dif, vif, data, value):
    """Types G, F, I and J to ISO 8601, meter-local time (no zone)."""
    record = one(f"{dif} {vif} {data}")
    assert record.value == value and record.error is None and record.unit == ""


@pytest.mark.parametrize("vib, data, hex_value, problem", [
    ("02 6c", "0000", "0000", "invalid date"),                 # day 0, month 0: "not set"
    ("02 6c", "010d", "0d01", "invalid date"),                 # month 13
    ("02 6c", "9d12", "129d", None),                           # 2012-02-29 exists ...
    ("02 6c", "7d12", "127d", "invalid date"),                 # ... 2011-02-29 does not
    ("04 6d", "0000e1f1", "f1e10000", "invalid date/time"),    # year 127 (a periodic date)
    ("04 6d", "3c0c8d11", "118d0c3c", "invalid date/time"),    # minute 60
    ("03 6d", "00003c", "3c0000", "invalid time"),             # hour 28
])
def test_impossible_dates_keep_the_bytes(vib, data, hex_value, problem):
    """A date that cannot exist is kept as hex (most significant byte first) with an error."""
    record = one(f"{vib} {data}")
    if problem is None:
        assert record.value == "2012-02-29" and record.error is None
    else:
        assert (record.value, record.error) == (hex_value, problem)


def test_time_invalid_flag_keeps_the_value():
    """Type F/I bit IV set: the fields are kept, the record says the meter marked them invalid."""
    record = one("04 6d a1 15 e9 17")     # the Relay PadPuls2 clock: 2015-07-09 21:33, IV set
    assert record.value == "2015-07-09T21:33:00"
    assert record.error == "date/time marked invalid by the meter"


def test_date_vif_with_wrong_data_field():
    """A date VIF on a BCD or real field cannot be a date: hex plus an error."""
    record = one("0a 6c 3412")
    assert record.value == "1234" and "not an integer" in record.error


# ----------------------------------------------- special DIFs, more telegrams

def test_manufacturer_data_to_the_end():
    """DIF 0Fh: everything after it is one manufacturer-specific record, as hex."""
    first, last = records("0413 01000000 0f 01 02 ab")
    assert (last.quantity, last.unit, last.value) == ("manufacturer_specific", "", "0102ab")
    assert last.dib == b"\x0f" and last.vib == b"" and last.offset == 6
    assert not decode_user_data(0x78, bytes.fromhex("0413 01000000 0f 01")).more_follows


def test_more_records_follow():
    """DIF 1Fh: manufacturer data and the meter has another telegram."""
    telegram = decode_user_data(0x78, bytes.fromhex("0413 01000000 1f"))
    assert telegram.more_follows and telegram.records[-1].value == ""


def test_idle_filler_is_skipped():
    """DIF 2Fh fills; it is no record, wherever it is."""
    found = records("2f 2f 0413 01000000 2f 0413 02000000 2f")
    assert [r.value for r in found] == [0.001, 0.002]
    assert [r.offset for r in found] == [2, 9]


@pytest.mark.parametrize("dif", ["3f", "4f", "6f", "7f", "8f", "ff"])
def test_reserved_special_functions(dif):
    """Special-function DIFs other than 0Fh, 1Fh, 2Fh are reserved: an error at the DIF."""
    error = error_of(f"0413 01000000 {dif} 00")
    assert error.what == f"reserved special-function DIF 0x{dif}" and error.offset == 6


def test_record_offsets_count_from_base_offset():
    """Record.offset is where the DIF is in the caller's buffer."""
    telegram = decode_user_data(0x72, bytes.fromhex(HEADER + "0413 01000000 8440 13 02000000"), 7)
    assert [r.offset for r in telegram.records] == [19, 25]


# ------------------------------------------------------- error and alarm reports

@pytest.mark.parametrize("data, text", [
    ("", "unspecified error"),
    ("00", "unspecified error"),
    ("01", "unimplemented CI field"),
    ("02", "buffer too long, truncated"),
    ("03", "too many records"),
    ("04", "premature end of record"),
    ("05", "more than 10 DIFEs"),
    ("06", "more than 10 VIFEs"),
    ("07", "reserved"),
    ("08", "application busy"),
    ("09", "too many readouts"),
    ("0a", "unknown application error 0x0a"),
    ("f5", "manufacturer-specific application error 0xf5"),
    ("08 0102", "application busy (data 0102)"),
])
def test_application_error_report(data, text):
    """CI 70h: the error code, decoded; no header, no records."""
    telegram = decode_user_data(0x70, bytes.fromhex(data))
    assert telegram == Telegram(0x70, None, (), False, text)


def test_alarm_report():
    """CI 71h: the alarm status byte, whose bits are manufacturer specific."""
    assert decode_user_data(0x71, b"\x05").error == "alarm status 0x05 (manufacturer specific)"
    assert decode_user_data(0x71, b"").error == "alarm without status (manufacturer specific)"


# ----------------------------------------------------------------- malformed

@pytest.mark.parametrize("ci, data, what, offset", [
    (0x72, "785634122d2c01", "long header needs 12 bytes, 7 present", 7 + 7),
    (0x7A, "2a04", "short header needs 4 bytes, 2 present", 7 + 2),
    (0x78, "04 13 0100", "record data needs 4 bytes, 2 present", 7 + 2),
    (0x78, "0c 13 01", "record data needs 4 bytes, 1 present", 7 + 2),
    (0x78, "84 81", "record ends inside its DIFEs", 7 + 2),
    (0x78, "04", "record ends before its VIF", 7 + 1),
    (0x78, "04 93", "record ends inside its VIFEs", 7 + 2),
    (0x78, "04 fd", "record ends inside its VIFEs", 7 + 2),
    (0x78, "0d 13", "record ends before its LVAR byte", 7 + 2),
    (0x78, "0d 13 05 4142", "variable-length data needs 5 bytes, 2 present", 7 + 3),
    (0x78, "0d 13 c4 0000", "variable-length data needs 4 bytes, 2 present", 7 + 3),
    (0x78, "02 7c", "plain-text VIF without its length byte", 7 + 2),
    (0x78, "02 fc 13 48 52 25 74 b4 16", "plain-text VIF of 19 characters runs past the end", 7 + 2),
    (0x51, "0413 01000000", "unsupported CI field 0x51", 6),
    (0x73, "93929190 10 00 05 69 31650000 69000000", "unsupported CI field 0x73", 6),
])
def test_malformed_user_data(ci, data, what, offset):
    """Each malformed input names what is wrong and where, counting from base_offset."""
    error = error_of(data, ci=ci, base=7)
    assert (error.what, error.offset) == (what, offset)
    assert str(error) == f"{what} at byte {offset}"
    assert isinstance(error, ValueError)


def test_unsupported_ci_without_base_offset():
    """With no position given, an unsupported CI is reported at byte 0."""
    assert error_of("", ci=0xFF).offset == 0


# --------------------------------------------------------------------- frames

def test_decode_frame():
    """A whole RSP_UD long frame: link layer checked, then the user data decoded."""
    frame = long_frame(0x08, 0x01, 0x72, bytes.fromhex(HEADER + "0406 e7910000"))
    telegram = decode_frame(frame)
    assert telegram.header.id == "12345678" and telegram.records[0].value == 37351000.0
    assert telegram.records[0].offset == 19


def test_decode_frame_link_errors_become_decode_errors():
    """A link-layer problem (bad checksum) is raised as MBusDecodeError with the link's offset."""
    frame = bytearray(long_frame(0x08, 0x01, 0x72, bytes.fromhex(HEADER)))
    frame[-2] ^= 0xFF
    with pytest.raises(MBusDecodeError) as info:
        decode_frame(bytes(frame))
    assert info.value.offset == len(frame) - 2 and "checksum" in info.value.what


def test_decode_frame_needs_user_data():
    """ACK and short frames carry no application layer."""
    for raw in (b"\xe5", bytes.fromhex("10 5b 01 5c 16")):
        with pytest.raises(MBusDecodeError):
            decode_frame(raw)


def test_decode_control_frame_error_report():
    """A control frame (no data) with CI 70h is an unspecified error report."""
    assert decode_frame(bytes.fromhex("68 03 03 68 08 01 70 79 16")).error == "unspecified error"


def test_offsets_in_frame_errors_count_from_frame_start():
    """Errors inside the user data of a frame point into the frame."""
    frame = long_frame(0x08, 0x01, 0x72, bytes.fromhex(HEADER + "0413 0100"))
    with pytest.raises(MBusDecodeError) as info:
        decode_frame(frame)
    assert info.value.offset == 7 + 12 + 2


# ----------------------------------------------------------------------- JSON

def test_json_long_header():
    """JSON: header fields, records with the seven fields, no error key."""
    telegram = decode_user_data(0x72, bytes.fromhex(HEADER + "0406 e7910000 1f"))
    assert telegram_to_json(telegram) == {
        "header": {"id": "12345678", "manufacturer": "KAM", "version": 1, "medium": "heat_outlet",
                   "access_number": 0x2A, "status": 0, "signature": 0},
        "records": [
            {"function": "instantaneous", "storage": 0, "tariff": 0, "subunit": 0,
             "quantity": "energy", "unit": "Wh", "value": 37351000.0},
            {"function": "instantaneous", "storage": 0, "tariff": 0, "subunit": 0,
             "quantity": "manufacturer_specific", "unit": "", "value": ""},
        ],
        "more_follows": True,
    }


def test_json_short_and_no_header_and_errors():
    """JSON: short header has three fields, CI 78h a null header, reports an error key."""
    short = telegram_to_json(decode_user_data(0x7A, bytes.fromhex("01 00 0000")))
    assert short == {"header": {"access_number": 1, "status": 0, "signature": 0}, "records": []}
    assert telegram_to_json(decode_user_data(0x78, b"")) == {"header": None, "records": []}
    assert telegram_to_json(decode_user_data(0x70, b"\x08")) == {
        "header": None, "records": [], "error": "application busy"}
    record = telegram_to_json(decode_user_data(0x78, bytes.fromhex("02 6c 0000")))["records"][0]
    assert record["error"] == "invalid date" and record["value"] == "0000"
