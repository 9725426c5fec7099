# -*- test-case-name: tests.scada.reports.test_reports -*-
"""Units of meter registers and the conversions reports need (heat in Gcal and kWh, litres to m3).

Heat: 1 kWh = 0.000859845 Gcal (1 Gcal ≈ 1163 kWh), 1 GJ = 0.238846 Gcal.
"""

from __future__ import annotations

#: Gcal per kWh (1 Gcal ≈ 1163 kWh).
GCAL_PER_KWH = 0.000859845
#: Gcal per GJ.
GCAL_PER_GJ = 0.238846

#: Each unit as a multiple of its family's base unit (m3 for volumes, kWh for energy).
_BASE: dict[str, tuple[str, float]] = {
    "m3": ("volume", 1.0), "m³": ("volume", 1.0), "m^3": ("volume", 1.0), "l": ("volume", 0.001),
    "L": ("volume", 0.001),
    "kWh": ("energy", 1.0), "Wh": ("energy", 0.001), "MWh": ("energy", 1000.0),
    "Gcal": ("energy", 1.0 / GCAL_PER_KWH), "GJ": ("energy", GCAL_PER_GJ / GCAL_PER_KWH),
}


def factor(from_unit: str, to_unit: str) -> float:
    """Return what a value in ``from_unit`` is multiplied by to be in ``to_unit``; ValueError if they do not convert."""
    if from_unit == to_unit:
        return 1.0
    a, b = _BASE.get(from_unit), _BASE.get(to_unit)
    if a is None or b is None or a[0] != b[0]:
        raise ValueError(f"cannot convert {from_unit!r} to {to_unit!r}")
    return a[1] / b[1]


def convert(value: float | None, from_unit: str, to_unit: str) -> float | None:
    """Return ``value`` converted (None stays None)."""
    return None if value is None else value * factor(from_unit, to_unit)


def heat(value: float | None, unit: str) -> tuple[float | None, float | None]:
    """Return a heat quantity as ``(Gcal, kWh)``; ``(None, None)`` if the unit is not an energy unit."""
    if value is None:
        return None, None
    try:
        return value * factor(unit, "Gcal"), value * factor(unit, "kWh")
    except ValueError:
        return None, None
