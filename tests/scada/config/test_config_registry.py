"""The ``registry:`` section of a site file: buildings, premises, meters.

One valid site is loaded once; each error case changes one line of it, and
its problem must sit on the exact line of the bad value and name it.
"""

from __future__ import annotations

import io
from datetime import date

import pytest

from scada.config import ConfigError, check_main, load_config
from scada.config.registry import MeterConfig, RegistryConfig, tag_registers

SITE = """\
site: {name: Registry}
channels:
  - name: gw
    type: modbus-rtu
    transport: {tcp: 127.0.0.1:1}
    devices:
      - {name: b1-heat, address: 1, profile: heat, next_verification: 2026-12-10}
      - {name: b1-cold, address: 2, profile: water}
      - {name: b1-kv01-cold, address: 11, profile: water}
      - {name: b1-kv02-cold, address: 21, profile: water}
      - {name: weather, address: 5, profile: outdoor}
      - {name: spare, address: 9, profile: water, enabled: false}
  - name: bus
    type: mbus
    transport: {serial: /dev/ttyUSB2}
    devices:
      - {name: b1-kv01-hot, secondary: "30000102"}
  - name: hand
    type: manual
    devices:
      - {name: b1-kv02-hot, serial: "ВСГ-0002", points: [{name: volume_m3, unit: m3}]}
profiles:
  heat:
    points:
      - {name: energy_kwh, function: holding, register: 0, type: u32, unit: kWh}
      - {name: t_supply_c, function: holding, register: 2, type: i16, unit: °C}
      - {name: t_return_c, function: holding, register: 3, type: i16, unit: °C}
  water:
    points:
      - {name: volume_m3, function: holding, register: 0, type: u32, unit: m3}
      - {name: temperature_c, function: holding, register: 2, type: i16, unit: °C}
  outdoor:
    points:
      - {name: t_outdoor_c, function: input, register: 0, type: i16, unit: °C}
registry:
  buildings:
    - id: b1
      address: "г. Подольск, ул. Ленина, д. 10"
      fias: "0C5B2444-70A0-4932-980C-B4DC0D3F02B5"
      coordinates: [55.4312, 37.5447]
      weather_tag: weather.t_outdoor_c
      norms:
        cold_water: {per_person: 6.935}
        hot_water: {per_person: 4.745}
        heat: {per_m2: 0.016, unit: Gcal}
      premises:
        - {number: 1, account: "7701000101", area: 54.2, residents: 2}
        - {number: "2", account: "7701000201", kind: office}
      meters:
        - {serial: "10000101", model: "ВКТ-7", resource: heat, tag: b1-heat.energy_kwh, role: odpu,
           installed: 2018-10-01, verified: 2022-12-10, next_verification: 2026-12-10}
        - {serial: "10000201", model: "ВСХН-50", resource: cold_water, tag: b1-cold.volume_m3, role: odpu}
        - {serial: "11011001", model: "ВСХ-15", resource: cold_water, tag: b1-kv01-cold.volume_m3, role: ipu,
           premises: "1", installed: 2021-03-01, verified: 2021-03-01, next_verification: 2027-03-01}
        - {id: kv01-hot, serial: "30000102", resource: hot_water, tag: b1-kv01-hot.volume, role: ipu, premises: 1}
        - {serial: "11021001", model: "ВСХ-15", resource: cold_water, tag: b1-kv02-cold.volume_m3, role: ipu,
           premises: "2", balance: false}
        - {serial: "ВСГ-0002", resource: hot_water, tag: b1-kv02-hot.volume_m3, role: ipu, premises: "2",
           next_verification: "2026-08-01"}
"""


def site_with(old: str, new: str) -> str:
    """Return the valid site with one text replaced (it must occur exactly once)."""
    assert SITE.count(old) == 1, old
    return SITE.replace(old, new)


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    """The valid site, loaded once: (config, warnings)."""
    path = tmp_path_factory.mktemp("registry") / "site.yaml"
    path.write_text(SITE, encoding="utf-8")
    return load_config(path)


def problems(write, text: str):
    """Return every problem (errors and warnings) of a site file."""
    path = write(text)
    try:
        _config, found = load_config(path)
    except ConfigError as exc:
        found = exc.problems
    return path, found


def test_valid_registry_loads_without_problems(valid):
    """Every key is read; numbers of premises become text, the FIAS GUID lower case, dates dates."""
    config, warnings = valid
    assert warnings == []
    (building,) = config.registry.buildings
    assert building.fias == "0c5b2444-70a0-4932-980c-b4dc0d3f02b5"
    assert building.coordinates == (55.4312, 37.5447)
    assert [(p.number, p.kind, p.area, p.residents) for p in building.premises] == [
        ("1", "apartment", 54.2, 2), ("2", "office", None, None)]
    assert building.norms["heat"].unit == "Gcal" and building.norms["cold_water"].per_person == 6.935
    meters = building.meters
    assert [m.meter_id for m in meters] == ["b1-heat", "b1-cold", "b1-kv01-cold", "kv01-hot", "b1-kv02-cold",
                                            "b1-kv02-hot"]
    assert meters[3].premises == "1" and meters[4].balance is False
    assert meters[5].next_verification == date(2026, 8, 1)


def test_a_site_without_registry_has_none(write):
    """No section: ``registry`` is None; an empty one is an empty registry."""
    config, _ = load_config(write("site: {name: T}\n"))
    assert config.registry is None
    config, _ = load_config(write("site: {name: T}\nregistry:\n"))
    assert config.registry == RegistryConfig()


def test_tag_registers_know_units_and_counters(valid):
    """Profile, hand-read and decoder points give (unit, cumulative); M-Bus automatic tags are unknown."""
    config, _ = valid
    registers = tag_registers(config.channels, config.profiles)
    assert registers["b1-cold.volume_m3"] == ("m3", True)
    assert registers["b1-heat.t_supply_c"] == ("°C", False)
    assert registers["b1-kv02-hot.volume_m3"] == ("m3", True)
    assert "b1-kv01-hot.volume" not in registers


BAD_VALUES = [
    ('fias: "0C5B2444-70A0-4932-980C-B4DC0D3F02B5"', 'fias: "0c5b2444-70a0-4932-980c"',
     "registry.buildings[0].fias: '0c5b2444-70a0-4932-980c' is not a FIAS/GAR house GUID"),
    ("coordinates: [55.4312, 37.5447]", "coordinates: [37.5447, 255.4312]",
     "registry.buildings[0].coordinates: longitude 255.431 is out of range -180..180"),
    ("coordinates: [55.4312, 37.5447]", "coordinates: [95, 37]",
     "registry.buildings[0].coordinates: latitude 95 is out of range -90..90"),
    ("cold_water: {per_person: 6.935}", "cold_wter: {per_person: 6.935}",
     "registry.buildings[0].norms.cold_wter: 'cold_wter' is not a resource; use one of heat, cold_water, "
     "hot_water, electricity, gas (did you mean 'cold_water'?)"),
    ("hot_water: {per_person: 4.745}", "hot_water: {unit: m3}",
     "registry.buildings[0].norms.hot_water: a norm needs per_person"),
    ('account: "7701000101"', "account: 7701000101",
     "registry.buildings[0].premises[0].account: account 7701000101 is a number; write it in quotes"),
    ("area: 54.2", "area: -54.2", "registry.buildings[0].premises[0].area: -54.2 must be greater than zero"),
    ("resource: heat, tag: b1-heat.energy_kwh", "resource: heet, tag: b1-heat.energy_kwh",
     "registry.buildings[0].meters[0].resource: 'heet' is not a resource; use one of heat, cold_water, hot_water, "
     "electricity, gas (did you mean 'heat'?)"),
    ('serial: "10000201"', "serial: 10000201",
     "registry.buildings[0].meters[1].serial: serial 10000201 is a number; write it in quotes"),
    ("tag: b1-cold.volume_m3, role: odpu}", "tag: b1-cold.volume_m3, role: odpu, premises: \"1\"}",
     "registry.buildings[0].meters[1].premises: an odpu (building meter) belongs to no premises"),
    ('tag: b1-kv02-hot.volume_m3, role: ipu, premises: "2"', "tag: b1-kv02-hot.volume_m3, role: ipu",
     "registry.buildings[0].meters[5].role: an ipu (apartment meter) needs 'premises'"),
    ("verified: 2021-03-01, next_verification: 2027-03-01", "verified: 2021-03-01, next_verification: 2021-03-01",
     "registry.buildings[0].meters[2].next_verification: next_verification 2021-03-01 must be after verified "
     "2021-03-01"),
    ("installed: 2021-03-01, verified", "installed: 2021-03-01, decommissioned: 2020-01-01, verified",
     "registry.buildings[0].meters[2].decommissioned: decommissioned 2020-01-01 is before installed 2021-03-01"),
    ('next_verification: "2026-08-01"', 'next_verification: "2026-08-32"',
     "registry.buildings[0].meters[5].next_verification: '2026-08-32' is not a date such as 2026-12-10"),
    ("tag: b1-cold.volume_m3, role: odpu}", "tag: b1-cold.volume_m3, role: odpu, unit: kWh}",
     "registry.buildings[0].meters[1].unit: unit 'kWh' is not a unit of cold_water"),
    ("tag: b1-cold.volume_m3, role: odpu}", "tag: 'b1-*.volume_m3', role: odpu}",
     "registry.buildings[0].meters[1].tag: 'b1-*.volume_m3' is a glob; this key takes one tag name"),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD_VALUES, ids=[case[2].split(":")[0] for case in BAD_VALUES])
def test_bad_values_are_named_on_their_line(write, line_of, old, new, message):
    """Each bad value gives one error on its own line, naming it."""
    path, found = problems(write, site_with(old, new))
    errors = [p for p in found if p.is_error]
    assert len(errors) == 1, [str(p) for p in found]
    assert errors[0].message.startswith(message), errors[0].message
    assert errors[0].line == line_of(path, new.splitlines()[0].strip())


CROSS = [
    # (old, new, message, text on the line it is reported at)
    ('tag: b1-kv01-cold.volume_m3, role: ipu,\n           premises: "1"',
     'tag: b1-kv01-cold.volume_m3, role: ipu,\n           premises: "3"',
     "registry.buildings[0].meters[2].premises: building 'b1' has no premises '3'", 'premises: "3"'),
    ('{number: "2", account: "7701000201"', '{number: "1", account: "7701000201"',
     "registry.buildings[0].premises[1].number: premises '1' is listed twice in building 'b1' (first at line ",
     '{number: "1", account: "7701000201"'),
    ('account: "7701000201"', 'account: "7701000101"',
     "registry.buildings[0].premises[1].account: account '7701000101' is already used at line ",
     'account: "7701000101", kind'),
    ('{serial: "10000201", model: "ВСХН-50", resource: cold_water, tag: b1-cold.volume_m3',
     '{serial: "11011001", model: "ВСХ-15", resource: cold_water, tag: b1-cold.volume_m3',
     "registry.buildings[0].meters[2].serial: serial '11011001' model 'ВСХ-15' is already meter 'b1-cold'",
     "tag: b1-kv01-cold.volume_m3"),
    ("{id: kv01-hot,", "{id: b1-cold,", "registry.buildings[0].meters[3].id: duplicate meter id 'b1-cold' "
     "(first at line ", "{id: b1-cold,"),
    ("resource: cold_water, tag: b1-kv02-cold.volume_m3, role: ipu", "resource: cold_water, "
     "tag: b1-cold.volume_m3, role: ipu", "registry.buildings[0].meters[4].tag: duplicate meter id 'b1-cold'",
     'serial: "11021001"'),
    ("tag: b1-cold.volume_m3, role: odpu}", "tag: b1-cold.volume_m3, role: odpu}\n"
     '        - {id: other, serial: "X", resource: cold_water, tag: b1-kv02-cold.temperature_c, role: odpu}',
     "registry.buildings[0].meters[2].role: building 'b1' already has an odpu for cold_water: 'b1-cold' at line ",
     "{id: other"),
    ("tag: b1-cold.volume_m3, role: odpu}", "tag: b1-cold.volume_m4, role: odpu}",
     "registry.buildings[0].meters[1].tag: unknown tag 'b1-cold.volume_m4': device 'b1-cold' has no point "
     "'volume_m4' (did you mean 'volume_m3'?)", "tag: b1-cold.volume_m4"),
    ("tag: b1-cold.volume_m3, role: odpu}", "tag: b2-cold.volume_m3, role: odpu}",
     "registry.buildings[0].meters[1].tag: unknown tag 'b2-cold.volume_m3' (no device 'b2-cold') "
     "(did you mean 'b1-cold.volume_m3'?)", "tag: b2-cold.volume_m3"),
    ("weather_tag: weather.t_outdoor_c", "weather_tag: weather.temperature_c",
     "registry.buildings[0].weather_tag: unknown tag 'weather.temperature_c': device 'weather' has no point "
     "'temperature_c'", "weather_tag:"),
    ("tag: b1-cold.volume_m3, role: odpu}", "tag: b1-cold.temperature_c, role: odpu}",
     "registry.buildings[0].meters[1].tag: tag 'b1-cold.temperature_c' (°C) is not a counter",
     "tag: b1-cold.temperature_c"),
    ("tag: b1-cold.volume_m3, role: odpu}", "tag: b1-cold.volume_m3, role: odpu, resource: heat}",
     "duplicate key 'resource'", None),
    ("heat: {per_m2: 0.016, unit: Gcal}", "heat: {per_m2: 0.016, unit: m3}",
     "registry.buildings[0].norms.heat.unit: unit 'm3' is not a unit of heat", "heat: {per_m2"),
    ("tag: b1-cold.volume_m3, role: odpu}", "tag: b1-cold.volume_m3, role: odpu, unit: l}",
     "registry.buildings[0].meters[1].unit: unit 'l' differs from 'm3', the unit of tag 'b1-cold.volume_m3'",
     "unit: l}"),
    ("resource: cold_water, tag: b1-cold.volume_m3", "resource: heat, tag: b1-cold.volume_m3",
     "registry.buildings[0].meters[1].tag: tag 'b1-cold.volume_m3' counts m3, which is not a unit of heat",
     "resource: heat, tag: b1-cold.volume_m3"),
]


@pytest.mark.parametrize(("old", "new", "message", "at"), CROSS, ids=[case[2][:60] for case in CROSS])
def test_cross_checks_name_the_value_on_its_line(write, line_of, old, new, message, at):
    """Problems spanning objects are reported on the line of the later object's bad key."""
    path, found = problems(write, site_with(old, new))
    matching = [p for p in found if message in p.message]
    assert len(matching) == 1, [str(p) for p in found]
    if at is not None:
        assert matching[0].line == line_of(path, at), str(matching[0])


def test_a_missing_norm_is_a_warning(write):
    """An apartment meter's resource without a norm is only a warning: the file still loads."""
    path, found = problems(write, site_with("        hot_water: {per_person: 4.745}\n", ""))
    assert [(p.severity, p.message) for p in found] == [
        ("warning", "registry.buildings[0].id: building 'b1' has no norm for hot_water; an apartment meter without "
                    "readings for more than 3 months cannot be billed by the norm (ПП 354 п.59-60)")]


def test_device_dates_and_serials_must_agree(write, line_of):
    """A registry date or serial other than its device's is a warning on the registry meter's line."""
    text = site_with("next_verification: 2026-12-10}\n        - {serial: \"10000201\"",
                     "next_verification: 2027-12-10}\n        - {serial: \"10000201\"")
    text = text.replace('{serial: "ВСГ-0002", resource', '{serial: "ВСГ-0003", resource')
    path, found = problems(write, text)
    assert all(not p.is_error for p in found)
    messages = {p.message: p.line for p in found}
    assert messages == {
        "registry.buildings[0].meters[0].next_verification: next_verification 2027-12-10 differs from the date of "
        "device 'b1-heat' (2026-12-10, line 7), which the verification alarms follow":
            line_of(path, "next_verification: 2027-12-10"),
        f"registry.buildings[0].meters[5].serial: device 'b1-kv02-hot' has serial 'ВСГ-0002' (line "
        f"{line_of(path, 'name: b1-kv02-hot')}), which no registry meter on it has": line_of(path, '{serial: "ВСГ-0003"'),
    }


def test_tags_of_run_time_and_disabled_devices(write, line_of):
    """A counter of an automatically mapped M-Bus meter is trusted; other such tags and disabled devices warn."""
    text = site_with("tag: b1-kv01-hot.volume, role: ipu, premises: 1}",
                     "tag: b1-kv01-hot.volume, role: ipu, premises: 1, flow_tag: b1-kv01-hot.volume_flow}")
    text = text.replace("tag: b1-kv02-cold.volume_m3", "tag: spare.volume_m3")
    path, found = problems(write, text)
    assert [(p.severity, p.line, p.message) for p in found] == [
        ("warning", line_of(path, "flow_tag"), "registry.buildings[0].meters[3].flow_tag: tag "
         "'b1-kv01-hot.volume_flow' cannot be checked: device 'b1-kv01-hot' is mapped at run time, so its tags "
         "appear only then"),
        ("warning", line_of(path, "spare.volume_m3"), "registry.buildings[0].meters[4].tag: tag 'spare.volume_m3' "
         "belongs to disabled device 'spare'"),
    ]


def test_a_building_with_errors_does_not_hide_the_others(write):
    """Every building is validated; a broken meter does not hide its neighbours' problems."""
    text = site_with('model: "ВСХН-50", resource: cold_water', 'model: "ВСХН-50", resource: water')
    text = text.replace("tag: b1-kv02-cold.volume_m3", "tag: b1-kv02-cold.volume")
    text += ("    - {id: b1, address: \"x\"}\n"
             "    - {id: b2, address: \"\"}\n")
    path, found = problems(write, text)
    messages = [p.message for p in found]
    assert any("meters[1].resource: 'water' is not a resource" in m for m in messages)
    assert any("meters[4].tag: unknown tag 'b1-kv02-cold.volume'" in m for m in messages)
    assert any("buildings[1].id: duplicate building id 'b1'" in m for m in messages)
    assert any("buildings[2].address: must not be empty" in m for m in messages)


def test_tags_are_not_checked_when_a_channel_is_broken(write):
    """A device with an error of its own makes no "unknown tag" noise in the registry."""
    text = site_with("{name: b1-cold, address: 2, profile: water}", "{name: b1-cold, address: 999, profile: water}")
    _path, found = problems(write, text)
    assert [p.message for p in found if p.is_error] == [
        "channels[0].devices[1].address: 999 is out of range 1-247"]


def test_scada_check_prints_file_line_message(write):
    """``scada check`` prints the registry's problems as FILE:LINE: message and exits 1."""
    path = write(site_with("premises: \"1\", installed", "premises: \"9\", installed"))
    out = io.StringIO()
    assert check_main(str(path), out=out) == 1
    (line,) = out.getvalue().splitlines()
    assert line.startswith(f"{path}:")
    assert line.endswith("registry.buildings[0].meters[2].premises: building 'b1' has no premises '9'; list it "
                         "under 'premises' with its account")


def test_meter_model_defaults():
    """A meter's id defaults to its tag's device; model, description and balance have defaults."""
    meter = MeterConfig.model_validate({"serial": "1", "resource": "gas", "tag": "g1.volume_m3", "role": "odpu"})
    assert (meter.meter_id, meter.device, meter.model, meter.balance, meter.unit) == ("g1", "g1", "", True, None)
