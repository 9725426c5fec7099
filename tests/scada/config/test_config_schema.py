"""The committed JSON Schemas match the models, and describe the shipped files."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from scada.config import schema

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", sorted(schema.SCHEMAS))
def test_committed_schema_is_current(name):
    """config/schema/*.json equals what the models generate (run `scada schema --write`)."""
    assert (schema.SCHEMA_DIR / name).read_text(encoding="utf-8") == schema.render(name)


def test_demo_and_profiles_validate_against_schemas():
    """The demo site and every built-in profile are valid by the published schemas."""
    site = json.loads(schema.render("site.schema.json"))
    profile = json.loads(schema.render("profile.schema.json"))
    jsonschema.validate(yaml.safe_load((ROOT / "config/demo.yaml").read_text(encoding="utf-8")), site)
    for path in sorted((ROOT / "config/profiles").glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text(encoding="utf-8")), profile)


def test_schema_rejects_a_bad_site():
    """The schema catches what an editor should flag: a wrong parity value."""
    site = json.loads(schema.render("site.schema.json"))
    bad = {"site": {"name": "x"}, "channels": [{"name": "a", "type": "modbus-rtu",
                                                 "transport": {"serial": "/dev/ttyS0", "parity": "X"},
                                                 "devices": []}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, site)
