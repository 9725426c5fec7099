# -*- test-case-name: tests.scada.test_grafana -*-
"""The key values of a building: which tags are its heat power, temperatures, flows and imbalance.

The HMI's building tiles (:mod:`scada.api.hmi`, from a running site's tag
table) and the Grafana dashboards (:mod:`scada.grafana.model`, from the site
file alone) show the same key values, so both ask this module, each with
its own ``exists(name) -> bool`` predicate.

With a registry a building's key values come from its building meters
(ОДПУ): the heat meter's ``power_tag``, ``t_supply_tag``, ``t_return_tag`` and
``flow_tag`` when the registry names them, else the heat meter device's
points by their usual names; the cold-water meter's flow; the building's
``weather_tag``; the balance service's ``imbalance_pct`` figure of each
resource.  Without a registry each channel stands for a building and its
devices are searched by point name.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from scada.config.alarms import balance_tag

#: Key values of a building tile when the registry names none: tag suffixes of its heat meter.
HEAT_SUFFIXES = {"power": ("power_kw", "power"), "t_supply": ("t_supply_c", "flow_temperature"),
                 "t_return": ("t_return_c", "return_temperature"), "heat_flow": ("flow_m3h", "volume_flow")}
#: Point names of a water meter's flow.
FLOW_SUFFIXES = ("flow_m3h", "volume_flow")
#: Resources whose balance figures a building may have, in the order they are shown.
IMBALANCE_RESOURCES = ("heat", "cold_water", "hot_water", "electricity", "gas")
#: The keys of a building's key values besides ``imbalance``.
KEYS = ("power", "t_supply", "t_return", "heat_flow", "flow", "t_outdoor")

Exists = Callable[[str], bool]


def first_existing(exists: Exists, *names: str | None) -> str | None:
    """Return the first of ``names`` that is set and exists, or None."""
    return next((n for n in names if n and exists(n)), None)


def by_suffix(exists: Exists, device: str, suffixes: Iterable[str]) -> str | None:
    """Return the first existing ``<device>.<suffix>``, or None."""
    return first_existing(exists, *(f"{device}.{s}" for s in suffixes))


def imbalance_tags(building: str, exists: Exists) -> dict[str, str]:
    """Return resource -> the existing ``imbalance_pct`` balance figure of ``building``."""
    out = {}
    for resource in IMBALANCE_RESOURCES:
        name = balance_tag(building, resource, "imbalance_pct")
        if exists(name):
            out[resource] = name
    return out


def odpu(building: Any, resource: str) -> Any:
    """Return the first building meter (ОДПУ) of ``resource`` in a registry building, or None."""
    return next((m for m in building.meters if m.role == "odpu" and m.resource == resource), None)


def building_key_tags(building: Any, exists: Exists) -> dict[str, Any]:
    """Return the key values of a registry building (:class:`scada.registry.Building`).

    ``{"power", "t_supply", "t_return", "heat_flow", "flow", "t_outdoor"}``
    each an existing tag name or None, and ``"imbalance"``: resource -> tag.
    """
    heat = odpu(building, "heat")
    cold = odpu(building, "cold_water")
    key: dict[str, Any] = dict.fromkeys(KEYS)
    key["t_outdoor"] = first_existing(exists, building.weather_tag)
    if heat is not None:
        named = {"power": heat.power_tag, "t_supply": heat.t_supply_tag, "t_return": heat.t_return_tag,
                 "heat_flow": heat.flow_tag}
        for name, tag in named.items():
            key[name] = first_existing(exists, tag) or by_suffix(exists, heat.device, HEAT_SUFFIXES[name])
    if cold is not None:
        key["flow"] = first_existing(exists, cold.flow_tag) or by_suffix(exists, cold.device, FLOW_SUFFIXES)
    key["imbalance"] = imbalance_tags(building.id, exists)
    return key


def channel_key_tags(devices: Iterable[str], exists: Exists) -> dict[str, Any]:
    """Return the key values of a channel shown as a building: the first of its ``devices`` with each point.

    A channel has no registry building, so no water flow of a building
    meter, no outdoor temperature and no imbalance.
    """
    members = list(devices)
    key: dict[str, Any] = dict.fromkeys(KEYS)
    for name, suffixes in HEAT_SUFFIXES.items():
        key[name] = next((t for t in (by_suffix(exists, d, suffixes) for d in members) if t), None)
    key["imbalance"] = {}
    return key
