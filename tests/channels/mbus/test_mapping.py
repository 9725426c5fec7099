"""Records to tags: automatic names, profile rules, archives at their dates, the meter clock."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from channels.mbus.mapping import RecordMapper, RecordRule, auto_name, to_unix


def rec(quantity, value, unit="", *, function="instantaneous", storage=0, tariff=0, subunit=0,
        dib=b"\x04", vib=b"\x06"):
    return SimpleNamespace(quantity=quantity, value=value, unit=unit, function=function, storage=storage,
                           tariff=tariff, subunit=subunit, dib=dib, vib=vib)


def test_auto_names_say_what_the_record_is():
    assert auto_name(rec("energy", 1.0)) == "energy"
    assert auto_name(rec("volume_flow", 1.0, function="maximum")) == "volume_flow_maximum"
    assert auto_name(rec("energy", 1.0, tariff=2, subunit=1, storage=3)) == "energy_t2_u1_s3"
    assert auto_name(rec("energy", 1.0, storage=3), storage=False) == "energy"


def test_automatic_mapping_numbers_repeats_and_skips_identity_and_text():
    mapper = RecordMapper("m", timezone.utc)
    mapped = mapper.map([rec("energy", 1.0, "Wh"), rec("energy", 2.0, "Wh"), rec("fabrication_number", 42.0),
                         rec("plain_text", "abc"), rec("volume", 3.0, "m^3", storage=4)])
    assert mapped.live == [("m.energy", 1.0, "Wh"), ("m.energy_2", 2.0, "Wh"), ("m.volume_s4", 3.0, "m^3")]
    assert mapped.history == [] and mapped.clock is None


def test_archive_records_with_a_date_of_their_storage_become_history():
    moscow = ZoneInfo("Europe/Moscow")
    records = [rec("volume", 10.0, "m^3"), rec("date", "2026-10-01", storage=1),
               rec("volume", 9.0, "m^3", storage=1), rec("volume", 8.0, "m^3", storage=2)]
    mapped = RecordMapper("m", moscow).map(records)
    first_october = datetime(2026, 10, 1, tzinfo=moscow).timestamp()
    assert mapped.history == [("m.volume", 9.0, first_october)]
    # Storage 2 has no date in the telegram: a tag of its own.
    assert ("m.volume_s2", 8.0, "m^3") in mapped.live
    rules = [RecordRule("m.v", quantity="volume", scale=1000.0)]
    mapped = RecordMapper("m", moscow, rules).map(records)
    assert mapped.live == [("m.v", 10000.0, "m^3")] and mapped.history == [("m.v", 9000.0, first_october)]


def test_profile_rules_match_all_keys_and_report_missing():
    rules = [RecordRule("m.e1", quantity="energy", tariff=1), RecordRule("m.vib", vib=b"\x13"),
             RecordRule("m.max", quantity="power", function="maximum"), RecordRule("m.gone", quantity="mass")]
    records = [rec("energy", 5.0, tariff=0), rec("energy", 7.0, tariff=1), rec("volume", 0.5, vib=b"\x13"),
               rec("power", 3.0), rec("power", 4.0, function="maximum")]
    mapped = RecordMapper("m", timezone.utc, rules).map(records)
    assert [(t, v) for t, v, _ in mapped.live] == [("m.e1", 7.0), ("m.vib", 0.5), ("m.max", 4.0)]
    assert mapped.missing == ["m.gone"]


def test_decimal_scales_leave_no_binary_noise():
    mapped = RecordMapper("m", timezone.utc, [RecordRule("m.kwh", quantity="energy", scale=0.001)]).map(
        [rec("energy", 4893612100.0)])
    assert mapped.live[0][1] == 4893612.1


def test_meter_clock_minute_records_count_from_the_middle_of_the_minute():
    utc = timezone.utc
    minute = RecordMapper("m", utc).map([rec("datetime", "2026-11-21T12:00:00", dib=b"\x04")]).clock
    second = RecordMapper("m", utc).map([rec("datetime", "2026-11-21T12:00:00", dib=b"\x06")]).clock
    noon = datetime(2026, 11, 21, 12, tzinfo=utc).timestamp()
    assert (minute, second) == (noon + 30, noon)


def test_unreadable_dates_are_ignored():
    assert to_unix("2026-13-01", timezone.utc) is None
    mapped = RecordMapper("m", timezone.utc).map([rec("date", "not a date", storage=1),
                                                 rec("volume", 1.0, storage=1)])
    assert mapped.history == [] and mapped.live == [("m.volume_s1", 1.0, "")]


@pytest.mark.parametrize("value", ["2026-11-21", "2026-11-21T06:07:08"])
def test_to_unix_reads_local_time(value):
    assert to_unix(value, ZoneInfo("Europe/Moscow")) == pytest.approx(
        datetime.fromisoformat(value).replace(tzinfo=ZoneInfo("Europe/Moscow")).timestamp())


def test_records_the_meter_flags_are_left_out():
    flagged = rec("volume", 1.0)
    flagged.error = "no data available"
    invalid_clock = rec("datetime", "2026-11-21T12:00:00")
    invalid_clock.error = "time invalid"
    mapped = RecordMapper("m", timezone.utc).map([flagged, invalid_clock, rec("energy", 2.0)])
    assert mapped.live == [("m.energy", 2.0, "")] and mapped.clock is None
