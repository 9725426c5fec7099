"""Stand-ins for the site config, built from the repository's YAML files.

The simulator reads configs by attribute only, so plain namespaces loaded
from ``config/profiles`` and ``config/demo.yaml`` are enough; this keeps the
tests independent of the config package's classes.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from channels.modbus.points import PointSpec, function_code

ROOT = Path(__file__).resolve().parents[3]
PROFILE_DIR = ROOT / "config" / "profiles"
DEMO = ROOT / "config" / "demo.yaml"
#: 2025-10-09T08:53:20Z, a weekday morning in Moscow: value time for the tests.
T0 = 1_760_000_000.0


def load_profiles() -> dict[str, SimpleNamespace]:
    """Return every profile in config/profiles as namespaces, by file stem."""
    profiles = {}
    for path, data in _profile_data():
        points = [SimpleNamespace(**{"word_order": "big", "scale": 1.0, "offset": 0.0, **p})
                  for p in data.get("points", ())]
        records = [SimpleNamespace(**r) for r in data.get("records", ())]
        profiles[path.stem] = SimpleNamespace(points=points, records=records, sim=data.get("sim"))
    return profiles


@functools.lru_cache(maxsize=1)
def _parsed_profiles() -> tuple[tuple[Path, Any], ...]:
    """Parse config/profiles once per test process (YAML parsing is most of a simulator test's time)."""
    return tuple((path, yaml.safe_load(path.read_text(encoding="utf-8"))) for path in sorted(PROFILE_DIR.glob("*.yaml")))


def _profile_data() -> list[tuple[Path, Any]]:
    """Return the parsed profiles, a fresh deep copy each call: no test sees another's changes."""
    return copy.deepcopy(list(_parsed_profiles()))


def profile_points(name: str) -> list[PointSpec]:
    """Return a profile's points as the driver's PointSpecs."""
    return [PointSpec(p.name, function_code(p.function), p.register, p.type, p.word_order, p.scale, p.offset)
            for p in load_profiles()[name].points]


def device(name: str, address: int, profile: str, sim: dict[str, Any] | None = None) -> SimpleNamespace:
    """Return a device stand-in."""
    return SimpleNamespace(name=name, address=address, profile=profile, sim=sim, enabled=True)


def channel(name: str, devices: list[SimpleNamespace], type_: str = "modbus-rtu") -> SimpleNamespace:
    """Return a channel stand-in."""
    return SimpleNamespace(name=name, type=type_, transport=None, devices=devices)


def site(channels: list[SimpleNamespace], timezone: str = "Europe/Moscow") -> SimpleNamespace:
    """Return a site config stand-in with the repository's profiles."""
    return SimpleNamespace(site=SimpleNamespace(name="test", timezone=timezone),
                           channels=channels, profiles=load_profiles())


def demo_site() -> SimpleNamespace:
    """Return config/demo.yaml as a site config stand-in."""
    data = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    channels = [
        SimpleNamespace(name=c["name"], type=c["type"], transport=c.get("transport"),
                        devices=[SimpleNamespace(**{"sim": None, "enabled": True, "address": None, "secondary": None,
                                                    "profile": None, **d}) for d in c["devices"]])
        for c in data["channels"]
    ]
    return SimpleNamespace(site=SimpleNamespace(**data["site"]), channels=channels,
                           profiles=load_profiles(), raw=data)
