# -*- test-case-name: tests.channels.mbus.test_telegram -*-
"""EN 13757-3 code tables as data: media, VIF/VIFE codes, error codes.

Every table is indexed by the code byte (without the extension bit) so that
the decoder does one tuple lookup per VIF or VIFE.  A VIF entry is
``(quantity, unit, num, den, kind)``: a reading ``raw`` of that VIF is
``raw * num / den`` in ``unit`` (integer ``num``/``den`` so that the only
rounding is the final division: ``56108 * 1 / 100`` is exactly 561.08).

Units are base units only: "Wh", "J", "m^3", "kg", "W", "J/h", "m^3/h",
"kg/h", "°C", "K", "bar", "s", "V", "A", or "" where the quantity has none
of them (counts, identifiers, dates; a few quantities whose unit is outside
that set, listed in README "Application layer").

Sources: the EN 13757-3:2004 tables as libmbus (``mbus-protocol-aux.c``) and
the M-Bus documentation 4.8 give them, plus the codes EN 13757-3:2013 and the
OMS specification added (marked "2013"; FB reactive/apparent energy and power,
frequency, relative humidity; FD security key, remote control, RF level,
remaining battery life; combinable VIFEs 12h–14h, 1Dh–1Fh, 3Dh–3Fh, 68h, 69h,
6Ch, 7Ch), cross-checked with wmbusmeters (``src/dvparser.h``) and the VIF
tests of other open decoders.
"""

from __future__ import annotations

# ---------------------------------------------------------------- VIF kinds

#: ``raw * num / den`` in ``unit``.
NUMBER = 0
#: A point in time; the data length picks the type: 2 bytes G (date),
#: 3 bytes J (time), 4 bytes F (date and time), 6 bytes I (with seconds).
TIME_POINT = 1
#: VIF 7Ch/FCh: the unit is a text that follows the VIF.
PLAIN_TEXT = 2
#: VIF FBh/FDh: the next byte is a code of the first/second extension table.
EXTENSION = 3
#: VIF 7Fh/FFh: the value and any VIFEs are manufacturer specific.
MANUFACTURER = 4
#: Degrees Fahrenheit: ``raw * num / den`` is °F, reported as °C.
FAHRENHEIT = 5

# ------------------------------------------------------------------ helpers


def _pow10(exponent: int) -> tuple[int, int]:
    """Return 10**exponent as an integer fraction ``(num, den)``."""
    return (10 ** exponent, 1) if exponent >= 0 else (1, 10 ** -exponent)


def _decade(quantity: str, unit: str, first_exponent: int, count: int, factor: int = 1,
            divisor: int = 1, kind: int = NUMBER) -> list[tuple]:
    """Return ``count`` entries of ``factor/divisor * 10**(first_exponent + n)`` ``unit``."""
    entries = []
    for n in range(count):
        num, den = _pow10(first_exponent + n)
        entries.append((quantity, unit, num * factor, den * divisor, kind))
    return entries


#: Seconds per unit of the two-bit duration code ``nn`` (s, min, h, d).
_DURATION_NN = (1, 60, 3600, 86400)


def _durations(quantity: str) -> list[tuple]:
    """Return the four entries of a duration coded ``nn``: seconds, minutes, hours, days."""
    return [(quantity, "s", seconds, 1, NUMBER) for seconds in _DURATION_NN]


def _one(quantity: str, unit: str = "", kind: int = NUMBER) -> tuple:
    """Return a single entry with scale 1."""
    return (quantity, unit, 1, 1, kind)


# -------------------------------------------------------- primary VIF table

_RESERVED = _one("reserved")

#: Primary VIF codes 00h–7Fh (M-Bus documentation 4.8 §8.4.3, EN 13757-3).
VIF: tuple[tuple, ...] = tuple(
    _decade("energy", "Wh", -3, 8)                          # 00–07 10^(n-3) Wh
    + _decade("energy", "J", 0, 8)                          # 08–0F 10^n J
    + _decade("volume", "m^3", -6, 8)                       # 10–17 10^(n-6) m³
    + _decade("mass", "kg", -3, 8)                          # 18–1F 10^(n-3) kg
    + _durations("on_time")                                 # 20–23
    + _durations("operating_time")                          # 24–27
    + _decade("power", "W", -3, 8)                          # 28–2F 10^(n-3) W
    + _decade("power", "J/h", 0, 8)                         # 30–37 10^n J/h
    + _decade("volume_flow", "m^3/h", -6, 8)                # 38–3F 10^(n-6) m³/h
    + _decade("volume_flow", "m^3/h", -7, 8, factor=60)     # 40–47 10^(n-7) m³/min
    + _decade("volume_flow", "m^3/h", -9, 8, factor=3600)   # 48–4F 10^(n-9) m³/s
    + _decade("mass_flow", "kg/h", -3, 8)                   # 50–57 10^(n-3) kg/h
    + _decade("flow_temperature", "°C", -3, 4)              # 58–5B 10^(n-3) °C
    + _decade("return_temperature", "°C", -3, 4)            # 5C–5F
    + _decade("temperature_difference", "K", -3, 4)         # 60–63 10^(n-3) K
    + _decade("external_temperature", "°C", -3, 4)          # 64–67
    + _decade("pressure", "bar", -3, 4)                     # 68–6B 10^(n-3) bar
    + [_one("date", kind=TIME_POINT),                       # 6C type G
       _one("datetime", kind=TIME_POINT),                   # 6D type F, I (and J)
       _one("heat_cost_allocation"),                        # 6E units for H.C.A.
       _RESERVED]                                           # 6F
    + _durations("averaging_duration")                      # 70–73
    + _durations("actuality_duration")                      # 74–77
    + [_one("fabrication_number"),                          # 78
       _one("enhanced_identification"),                     # 79
       _one("bus_address"),                                 # 7A
       # 7B/7D select an extension table only with the extension bit set
       # (FBh/FDh, the code is in the VIFE); without it they are reserved.
       _one("reserved", kind=EXTENSION),                    # 7B
       _one("plain_text", kind=PLAIN_TEXT),                 # 7C
       _one("reserved", kind=EXTENSION),                    # 7D
       _one("any"),                                         # 7E any VIF (readout selection)
       _one("manufacturer_specific", kind=MANUFACTURER)]    # 7F
)

# ------------------------------------------- first extension table (VIF FBh)

_FT3 = 28316846592          # one cubic foot is 0.028316846592 m³ ...
_FT3_DEN = 10 ** 12
_GAL = 3785411784           # ... and one US gallon 0.003785411784 m³
_GAL_DEN = 10 ** 12
#: One (international table) megacalorie is 4.1868 MJ.
_MCAL_J = 4186800

#: VIFE codes after VIF FBh (M-Bus 4.8 §8.4.4 b, EN 13757-3, 2013 additions).
VIF_FB: tuple[tuple, ...] = tuple(
    _decade("energy", "Wh", 5, 2)                           # 00–01 10^(n-1) MWh
    + _decade("reactive_energy", "", 3, 2)                  # 02–03 10^n kvarh (2013), in varh
    + _decade("apparent_energy", "", 3, 2)                  # 04–05 10^n kVAh (2013), in VAh
    + [_RESERVED] * 2                                       # 06–07
    + _decade("energy", "J", 8, 2)                          # 08–09 10^(n-1) GJ
    + [_RESERVED] * 2                                       # 0A–0B
    + _decade("energy", "J", -1, 4, factor=_MCAL_J)         # 0C–0F 10^(n-1) Mcal (2013)
    + _decade("volume", "m^3", 2, 2)                        # 10–11 10^(n+2) m³
    + [_RESERVED] * 2                                       # 12–13
    + _decade("reactive_power", "", 0, 4)                   # 14–17 10^(n-3) kvar (2013), in var
    + _decade("mass", "kg", 5, 2)                           # 18–19 10^(n+2) t
    + _decade("relative_humidity", "", -1, 2)               # 1A–1B 10^(n-1) % (2013)
    + [_RESERVED] * 4                                       # 1C–1F
    + [("volume", "m^3", _FT3, _FT3_DEN, NUMBER),           # 20 ft³ (2013)
       ("volume", "m^3", _FT3, _FT3_DEN * 10, NUMBER)]      # 21 0.1 ft³
    + _decade("volume", "m^3", -1, 2, factor=_GAL, divisor=_GAL_DEN)  # 22–23 10^(n-1) US gal
    + [("volume_flow", "m^3/h", _GAL * 60, _GAL_DEN * 1000, NUMBER),  # 24 0.001 US gal/min
       ("volume_flow", "m^3/h", _GAL * 60, _GAL_DEN, NUMBER),         # 25 US gal/min
       ("volume_flow", "m^3/h", _GAL, _GAL_DEN, NUMBER),              # 26 US gal/h
       _RESERVED]                                                     # 27
    + _decade("power", "W", 5, 2)                           # 28–29 10^(n-1) MW
    + _decade("phase_voltage_voltage", "", -1, 1)           # 2A 0.1° (2013)
    + _decade("phase_voltage_current", "", -1, 1)           # 2B 0.1° (2013)
    + _decade("frequency", "", -3, 4)                       # 2C–2F 10^(n-3) Hz (2013)
    + _decade("power", "J/h", 8, 2)                         # 30–31 10^(n-1) GJ/h
    + [_RESERVED] * 2                                       # 32–33
    + _decade("apparent_power", "", 0, 4)                   # 34–37 10^(n-3) kVA (2013), in VA
    + [_RESERVED] * 32                                      # 38–57
    + _decade("flow_temperature", "°C", -3, 4, kind=FAHRENHEIT)       # 58–5B 10^(n-3) °F
    + _decade("return_temperature", "°C", -3, 4, kind=FAHRENHEIT)     # 5C–5F
    + _decade("temperature_difference", "K", -3, 4, factor=5, divisor=9)  # 60–63 °F difference
    + _decade("external_temperature", "°C", -3, 4, kind=FAHRENHEIT)   # 64–67
    + [_RESERVED] * 8                                       # 68–6F
    + _decade("temperature_limit", "°C", -3, 4, kind=FAHRENHEIT)      # 70–73 cold/warm limit °F
    + _decade("temperature_limit", "°C", -3, 4)             # 74–77 cold/warm limit °C
    + _decade("cumulative_max_power", "W", -3, 8)           # 78–7F 10^(n-3) W
)

# ------------------------------------------ second extension table (VIF FDh)

_MONTHS, _YEARS = "_months", "_years"

#: VIFE codes after VIF FDh (M-Bus 4.8 §8.4.4 a, EN 13757-3, 2013 additions).  Months
#: and years have no fixed length in seconds: those entries count calendar
#: months or years, named ``…_months``/``…_years``, unit "".
VIF_FD: tuple[tuple, ...] = tuple(
    _decade("credit", "", -3, 4)                            # 00–03 10^(n-3) currency units
    + _decade("debit", "", -3, 4)                           # 04–07
    + [_one(name) for name in (
        "access_number",                                    # 08
        "medium",                                           # 09
        "manufacturer",                                     # 0A
        "parameter_set_id",                                 # 0B
        "model_version",                                    # 0C
        "hardware_version",                                 # 0D
        "firmware_version",                                 # 0E
        "software_version",                                 # 0F
        "customer_location",                                # 10
        "customer",                                         # 11
        "access_code_user",                                 # 12
        "access_code_operator",                             # 13
        "access_code_system_operator",                      # 14
        "access_code_developer",                            # 15
        "password",                                         # 16
        "error_flags",                                      # 17
        "error_mask",                                       # 18
        "security_key",                                     # 19 (2013; reserved in 2004)
        "digital_output",                                   # 1A
        "digital_input",                                    # 1B
        "baud_rate",                                        # 1C
        "response_delay_time",                              # 1D in bit times
        "retry",                                            # 1E
        "remote_control",                                   # 1F (2013; reserved in 2004)
        "first_storage_number",                             # 20 for cyclic storage
        "last_storage_number",                              # 21
        "storage_block_size",                               # 22
        "tariff_subunit_descriptor",                        # 23 (2013; reserved in 2004)
    )]
    + _durations("storage_interval")                        # 24–27
    + [_one("storage_interval" + _MONTHS),                  # 28
       _one("storage_interval" + _YEARS),                   # 29
       _one("operator_specific_data"),                      # 2A (2013)
       _one("time_point_second")]                           # 2B (2013)
    + _durations("duration_since_last_readout")             # 2C–2F
    + [_one("tariff_start", kind=TIME_POINT)]               # 30 type G or F
    + _durations("tariff_duration")[1:]                     # 31–33 min, h, d
    + _durations("tariff_period")                           # 34–37
    + [_one("tariff_period" + _MONTHS),                     # 38
       _one("tariff_period" + _YEARS),                      # 39
       _one("dimensionless"),                               # 3A
       _RESERVED]                                           # 3B
    + _durations("transmission_period")                     # 3C–3F (OMS; reserved in 2004)
    + _decade("voltage", "V", -9, 16)                       # 40–4F 10^(n-9) V
    + _decade("current", "A", -12, 16)                      # 50–5F 10^(n-12) A
    + [_one(name) for name in (
        "reset_counter",                                    # 60
        "cumulation_counter",                               # 61
        "control_signal",                                   # 62
        "day_of_week",                                      # 63
        "week_number",                                      # 64
        "day_change_time",                                  # 65 time point of day change
        "parameter_activation_state",                       # 66
        "special_supplier_information",                     # 67
    )]
    + [("duration_since_last_cumulation", "s", 3600, 1, NUMBER),      # 68 hours
       ("duration_since_last_cumulation", "s", 86400, 1, NUMBER),     # 69 days
       _one("duration_since_last_cumulation" + _MONTHS),              # 6A
       _one("duration_since_last_cumulation" + _YEARS),               # 6B
       ("battery_operating_time", "s", 3600, 1, NUMBER),              # 6C hours
       ("battery_operating_time", "s", 86400, 1, NUMBER),             # 6D days
       _one("battery_operating_time" + _MONTHS),                      # 6E
       _one("battery_operating_time" + _YEARS),                       # 6F
       _one("battery_change_datetime", kind=TIME_POINT),              # 70
       _one("rf_level"),                                              # 71 dBm (2013)
       _one("daylight_saving"),                                       # 72 type K (2013)
       _one("listening_window"),                                      # 73 type L (2013)
       ("remaining_battery_life", "s", 86400, 1, NUMBER),             # 74 days (2013)
       _one("meter_stop_count"),                                      # 75 (2013)
       _one("manufacturer_data_container")]                           # 76 (2013)
    + [_RESERVED] * 9                                                 # 77–7F
)

# ----------------------------------------- combinable (orthogonal) VIFE codes

#: Nothing to do: "no error", reserved codes, content hints.  Kept in ``vib``.
V_IGNORE = 0
#: Multiply the value by ``arg = (num, den)``.
V_SCALE = 1
#: Add ``arg = (num, den)`` units of the VIF (before converting to base units).
V_OFFSET = 2
#: The record is a variant of the VIF's quantity: ``quantity + "_" + arg``.
V_QUALIFIER = 3
#: A record error code: the value is not valid; ``arg`` says why.
V_ERROR = 4
#: The record is the date/time of an event of the quantity: ``quantity + "_" + arg``.
V_TIME_POINT = 5
#: The record is the duration of an event: ``arg = (suffix, seconds per unit)``.
V_DURATION = 6
#: The next VIFE is a code of the combinable extension table (7Ch, 2013).
V_EXTENDED = 7
#: Data presented as type C, unsigned integer (7Ch 11h, 2013).
V_UNSIGNED = 8
#: This and every following VIFE are manufacturer specific (7Fh).
V_MANUFACTURER = 9


def _errors() -> list[tuple]:
    """Return VIFE codes 00h–1Fh.

    EN 13757-3:2004 reserves 00h–1Fh for record error codes (slave to
    master).  2013 keeps 15h–1Ch as errors, calls 00h–11h reserved and uses
    12h–14h and 1Dh–1Fh for other things; where the editions differ, the
    2004 error meaning is used for 01h–0Fh since a meter that sets them
    means an error either way.
    """
    names = {
        0x01: "too many DIFEs", 0x02: "storage number not implemented",
        0x03: "unit number not implemented", 0x04: "tariff number not implemented",
        0x05: "function not implemented", 0x06: "data class not implemented",
        0x07: "data size not implemented", 0x0B: "too many VIFEs",
        0x0C: "illegal VIF group", 0x0D: "illegal VIF exponent",
        0x0E: "VIF/DIF mismatch", 0x0F: "unimplemented action",
        0x15: "no data available", 0x16: "data overflow", 0x17: "data underflow",
        0x18: "data error", 0x1C: "premature end of record",
    }
    table = [(V_ERROR, f"record error: {names[code]}") if code in names else (V_IGNORE, None)
             for code in range(0x20)]
    table[0x12] = (V_QUALIFIER, "average")
    table[0x13] = (V_QUALIFIER, "inverse_compact_profile")
    table[0x14] = (V_QUALIFIER, "relative_deviation")
    table[0x1E] = (V_QUALIFIER, "compact_profile_with_registers")
    table[0x1F] = (V_QUALIFIER, "compact_profile")
    return table


def _limits() -> list[tuple]:
    """Return VIFE codes 40h–4Fh: ``E100 u f 1 b`` limit values, counts and times."""
    table = []
    for code in range(0x40, 0x50):
        side = "upper" if code & 0x08 else "lower"
        low = code & 0x07
        if low == 0:
            table.append((V_QUALIFIER, f"{side}_limit"))
        elif low == 1:
            table.append((V_QUALIFIER, f"{side}_limit_exceed_count"))
        elif low & 0x02:
            order = "last" if low & 0x04 else "first"
            edge = "end" if low & 0x01 else "begin"
            table.append((V_TIME_POINT, f"{side}_limit_{order}_exceed_{edge}_time"))
        else:
            table.append((V_IGNORE, None))
    return table


def _durations_of(prefix_of) -> list[tuple]:
    """Return 16 duration codes ``u f nn``; ``prefix_of(code)`` names the event from the low bits."""
    return [(V_DURATION, (prefix_of(code), _DURATION_NN[code & 3])) for code in range(16)]


#: Combinable VIFE codes 00h–7Fh (M-Bus 4.8 §8.4.5, EN 13757-3, 2013 additions).
VIFE: tuple[tuple, ...] = tuple(
    _errors()                                               # 00–1F
    + [(V_QUALIFIER, name) for name in (
        "per_second", "per_minute", "per_hour", "per_day",  # 20–23
        "per_week", "per_month", "per_year", "per_revolution",  # 24–27
        "per_input_pulse_ch0", "per_input_pulse_ch1",       # 28–29 increment per pulse
        "per_output_pulse_ch0", "per_output_pulse_ch1",     # 2A–2B
        "per_litre", "per_m3", "per_kg", "per_kelvin",      # 2C–2F
        "per_kwh", "per_gj", "per_kw", "per_kelvin_litre",  # 30–33
        "per_volt", "per_ampere",                           # 34–35
        "times_second", "times_second_per_volt", "times_second_per_ampere",  # 36–38
    )]
    + [(V_TIME_POINT, "start_time"),                        # 39 start date(/time) of
       (V_QUALIFIER, "uncorrected"),                        # 3A value at metering conditions
       (V_QUALIFIER, "forward"),                            # 3B only positive contributions
       (V_QUALIFIER, "backward"),                           # 3C only negative contributions
       (V_QUALIFIER, "non_metric"),                         # 3D (2013)
       (V_QUALIFIER, "base_conditions"),                    # 3E (2013)
       (V_QUALIFIER, "obis")]                               # 3F OBIS declaration (2013)
    + _limits()                                             # 40–4F
    + _durations_of(lambda code: "{}_limit_{}_exceed_duration".format(   # 50–5F E101 u f nn
        "upper" if code & 8 else "lower", "last" if code & 4 else "first"))
    + _durations_of(lambda code: "last_duration" if code & 4 else "first_duration")[:8]  # 60–67
    + [(V_QUALIFIER, "during_lower_limit_exceed"),          # 68 (2013)
       (V_QUALIFIER, "leakage"),                            # 69 (2013)
       (V_TIME_POINT, "first_begin_time"),                  # 6A E110 1f1b date/time of
       (V_TIME_POINT, "first_end_time"),                    # 6B
       (V_QUALIFIER, "during_upper_limit_exceed"),          # 6C (2013)
       (V_IGNORE, None),                                    # 6D
       (V_TIME_POINT, "last_begin_time"),                   # 6E
       (V_TIME_POINT, "last_end_time")]                     # 6F
    + [(V_SCALE, _pow10(n - 6)) for n in range(8)]          # 70–77 10^(n-6)
    + [(V_OFFSET, _pow10(n - 3)) for n in range(4)]         # 78–7B + 10^(n-3) VIF units
    + [(V_EXTENDED, None),                                  # 7C (2013)
       (V_SCALE, (1000, 1)),                                # 7D 10^3
       (V_QUALIFIER, "future_value"),                       # 7E
       (V_MANUFACTURER, None)]                              # 7F
)

#: Codes of the combinable extension table after VIFE 7Ch (EN 13757-3:2013).
VIFE_EXTENDED: dict[int, tuple] = {
    0x01: (V_QUALIFIER, "phase_l1"), 0x02: (V_QUALIFIER, "phase_l2"),
    0x03: (V_QUALIFIER, "phase_l3"), 0x04: (V_QUALIFIER, "neutral"),
    0x05: (V_QUALIFIER, "phase_l1_l2"), 0x06: (V_QUALIFIER, "phase_l2_l3"),
    0x07: (V_QUALIFIER, "phase_l3_l1"), 0x08: (V_QUALIFIER, "quadrant_q1"),
    0x09: (V_QUALIFIER, "quadrant_q2"), 0x0A: (V_QUALIFIER, "quadrant_q3"),
    0x0B: (V_QUALIFIER, "quadrant_q4"), 0x0C: (V_QUALIFIER, "import_export_delta"),
    0x10: (V_QUALIFIER, "absolute"), 0x11: (V_UNSIGNED, None),
    0x12: (V_QUALIFIER, "boolean"),
}

# ----------------------------------------------------------------- DIF codes

#: Data field (DIF bits 0–3) → data length in bytes; -1 variable (LVAR), -2 special.
DATA_LENGTH = (0, 1, 2, 3, 4, 4, 6, 8, 0, 1, 2, 3, 4, -1, 6, -2)
#: Function field (DIF bits 4–5).
FUNCTIONS = ("instantaneous", "maximum", "minimum", "error")

# --------------------------------------------------------------- header codes

#: Medium (device type) byte of the long header (EN 13757-3 as listed in libmbus ``mbus-protocol.c``).
MEDIA: dict[int, str] = {
    0x00: "other", 0x01: "oil", 0x02: "electricity", 0x03: "gas",
    0x04: "heat_outlet", 0x05: "steam", 0x06: "warm_water", 0x07: "water",
    0x08: "heat_cost_allocator", 0x09: "compressed_air",
    0x0A: "cooling_outlet", 0x0B: "cooling_inlet", 0x0C: "heat_inlet",
    0x0D: "heat_cooling", 0x0E: "bus_system", 0x0F: "unknown_medium",
    0x10: "irrigation_water", 0x11: "water_data_logger", 0x12: "gas_data_logger",
    0x13: "gas_converter", 0x14: "calorific_value", 0x15: "hot_water",
    0x16: "cold_water", 0x17: "dual_water", 0x18: "pressure",
    0x19: "ad_converter", 0x1A: "smoke_detector", 0x1B: "room_sensor",
    0x1C: "gas_detector", 0x20: "breaker_electricity", 0x21: "valve",
    0x25: "customer_unit", 0x28: "waste_water", 0x29: "garbage",
    0x30: "service_unit", 0x31: "gateway", 0x32: "unidirectional_repeater",
    0x33: "bidirectional_repeater", 0x36: "radio_converter_system",
    0x37: "radio_converter_meter", 0x38: "bus_converter_meter",
}

#: General application errors of a CI 70h error report (M-Bus 4.8 §6.6, EN 13757-3:2004;
#: 11h–22h and F0h–FFh from later editions).
APPLICATION_ERRORS: dict[int, str] = {
    0x00: "unspecified error", 0x01: "unimplemented CI field",
    0x02: "buffer too long, truncated", 0x03: "too many records",
    0x04: "premature end of record", 0x05: "more than 10 DIFEs",
    0x06: "more than 10 VIFEs", 0x07: "reserved", 0x08: "application busy",
    0x09: "too many readouts", 0x11: "no function", 0x12: "data error",
    0x13: "routing or relaying error", 0x14: "access violation",
    0x15: "parameter error", 0x16: "size error", 0x20: "security error",
    0x21: "security mechanism not supported", 0x22: "inadequate security method",
    0xF0: "dynamic error",
}
