"""Tests for tags.table: current values and change subscriptions."""

from __future__ import annotations

import logging
import math

import pytest

from tags.model import Sample, TagDef
from tags.quality import Quality
from tags.table import TagState, TagTable

GOOD = Quality.GOOD
T0 = 1795244400.0  # 2026-11-21T07:00:00Z


@pytest.fixture
def table() -> TagTable:
    """Return a table with two heat meters and a water meter."""
    table = TagTable()
    table.define(TagDef("heat1.energy_kwh", unit="kWh"))
    table.define(TagDef("heat1.flow_m3h", unit="m3/h", deadband=0.1))
    table.define(TagDef("water7.volume_m3", unit="m3"))
    return table


def test_new_tag_not_yet_read(table: TagTable) -> None:
    """A defined tag starts with no value, no time and quality NOT_YET_READ."""
    state = table.get("heat1.energy_kwh")
    assert state is not None
    assert (state.value, state.quality, state.ts) == (None, Quality.NOT_YET_READ, None)
    assert state.definition.unit == "kWh"


def test_redefine_raises_naming_tag(table: TagTable) -> None:
    """Defining a name twice is refused with the name in the message."""
    with pytest.raises(ValueError, match="heat1.energy_kwh"):
        table.define(TagDef("heat1.energy_kwh"))


def test_update_stores_and_reports_change(table: TagTable) -> None:
    """update stores value, quality and time and says whether value or quality changed."""
    assert table.update(Sample("heat1.energy_kwh", 10.0, GOOD, T0)) is True
    assert table.update(Sample("heat1.energy_kwh", 10.0, GOOD, T0 + 1)) is False
    assert table.update(Sample("heat1.energy_kwh", 11.0, GOOD, T0 + 2)) is True
    assert table.update(Sample("heat1.energy_kwh", None, Quality.TIMEOUT, T0 + 3)) is True
    assert table.update(Sample("heat1.energy_kwh", None, Quality.COMM_LOSS, T0 + 4)) is True
    state = table.get("heat1.energy_kwh")
    assert state == TagState(TagDef("heat1.energy_kwh", unit="kWh"), None, Quality.COMM_LOSS, T0 + 4)


def test_repeated_nan_is_not_a_change(table: TagTable) -> None:
    """A value stuck on NaN counts as unchanged, a move to or from NaN as a change."""
    assert table.update(Sample("heat1.flow_m3h", math.nan, GOOD, T0)) is True
    assert table.update(Sample("heat1.flow_m3h", math.nan, GOOD, T0 + 1)) is False
    assert table.update(Sample("heat1.flow_m3h", 1.0, GOOD, T0 + 2)) is True
    assert table.update(Sample("heat1.flow_m3h", math.nan, GOOD, T0 + 3)) is True


def test_update_unknown_raises_naming_tag(table: TagTable) -> None:
    """A sample of an undefined tag is refused with KeyError naming it."""
    with pytest.raises(KeyError, match="nosuch.point"):
        table.update(Sample("nosuch.point", 1.0, GOOD, T0))


def test_update_many(table: TagTable) -> None:
    """update_many stores each sample in order; the last one of a tag wins."""
    table.update_many(
        [
            Sample("heat1.energy_kwh", 1.0, GOOD, T0),
            Sample("water7.volume_m3", 5.0, GOOD, T0),
            Sample("heat1.energy_kwh", 2.0, GOOD, T0 + 1),
        ]
    )
    assert table.get("heat1.energy_kwh").value == 2.0  # type: ignore[union-attr]
    assert table.get("water7.volume_m3").value == 5.0  # type: ignore[union-attr]


def test_get_unknown_is_none(table: TagTable) -> None:
    """get of an undefined name returns None."""
    assert table.get("nosuch.point") is None


def test_states_names_len(table: TagTable) -> None:
    """states and names are sorted by name; a prefix filters by name start."""
    assert table.names() == ["heat1.energy_kwh", "heat1.flow_m3h", "water7.volume_m3"]
    assert [s.definition.name for s in table.states()] == table.names()
    assert [s.definition.name for s in table.states("heat1.")] == [
        "heat1.energy_kwh",
        "heat1.flow_m3h",
    ]
    assert table.states("gas") == []
    assert len(table) == 3
    assert len(TagTable()) == 0


def test_to_json(table: TagTable) -> None:
    """to_json gives name, value, unit, quality text and an ISO 8601 UTC time."""
    assert table.get("heat1.energy_kwh").to_json() == {  # type: ignore[union-attr]
        "name": "heat1.energy_kwh",
        "value": None,
        "unit": "kWh",
        "quality": "not_yet_read",
        "ts": None,
    }
    table.update(Sample("heat1.energy_kwh", 12.5, GOOD, T0 + 0.123))
    assert table.get("heat1.energy_kwh").to_json() == {  # type: ignore[union-attr]
        "name": "heat1.energy_kwh",
        "value": 12.5,
        "unit": "kWh",
        "quality": "good",
        "ts": "2026-11-21T07:00:00.123Z",
    }


def test_subscribe_changes_only_vs_all(table: TagTable) -> None:
    """A change subscriber sees only changes; an all-samples subscriber sees every sample."""
    changes: list[Sample] = []
    every: list[Sample] = []
    table.subscribe(changes.append)
    table.subscribe(every.append, changes_only=False)
    stream = [
        Sample("heat1.energy_kwh", 1.0, GOOD, T0),
        Sample("heat1.energy_kwh", 1.0, GOOD, T0 + 1),
        Sample("heat1.energy_kwh", 1.0, Quality.MANUAL, T0 + 2),
        Sample("heat1.energy_kwh", 2.0, Quality.MANUAL, T0 + 3),
    ]
    table.update_many(stream)
    assert every == stream
    assert changes == [stream[0], stream[2], stream[3]]


def test_subscribe_prefix(table: TagTable) -> None:
    """A prefix subscription sees only tags whose name starts with it, including later tags."""
    seen: list[str] = []
    table.subscribe(lambda s: seen.append(s.name), prefix="heat1.")
    table.define(TagDef("heat1.power_kw"))
    table.define(TagDef("heat10.power_kw"))
    for name in ["heat1.energy_kwh", "water7.volume_m3", "heat1.power_kw", "heat10.power_kw"]:
        table.update(Sample(name, 1.0, GOOD, T0))
    assert seen == ["heat1.energy_kwh", "heat1.power_kw"]


def test_subscribers_called_in_subscription_order(table: TagTable) -> None:
    """Subscribers of both kinds are called in the order they subscribed."""
    calls: list[str] = []
    table.subscribe(lambda s: calls.append("a"), changes_only=False)
    table.subscribe(lambda s: calls.append("b"))
    table.subscribe(lambda s: calls.append("c"), changes_only=False)
    table.update(Sample("heat1.energy_kwh", 1.0, GOOD, T0))
    table.update(Sample("heat1.energy_kwh", 1.0, GOOD, T0 + 1))
    assert calls == ["a", "b", "c", "a", "c"]


def test_unsubscribe(table: TagTable) -> None:
    """After unsubscribing a callback gets nothing; unsubscribing twice is harmless."""
    seen: list[Sample] = []
    unsubscribe = table.subscribe(seen.append, changes_only=False)
    table.update(Sample("heat1.energy_kwh", 1.0, GOOD, T0))
    unsubscribe()
    unsubscribe()
    table.update(Sample("heat1.energy_kwh", 2.0, GOOD, T0 + 1))
    table.define(TagDef("heat2.energy_kwh"))
    table.update(Sample("heat2.energy_kwh", 2.0, GOOD, T0 + 1))
    assert len(seen) == 1


def test_unsubscribe_during_delivery(table: TagTable) -> None:
    """A subscriber may unsubscribe itself from inside its callback."""
    seen: list[Sample] = []

    def once(sample: Sample) -> None:
        seen.append(sample)
        unsubscribe()

    unsubscribe = table.subscribe(once, changes_only=False)
    table.update(Sample("heat1.energy_kwh", 1.0, GOOD, T0))
    table.update(Sample("heat1.energy_kwh", 2.0, GOOD, T0 + 1))
    assert len(seen) == 1


def test_raising_subscriber_isolated(table: TagTable, caplog: pytest.LogCaptureFixture) -> None:
    """A raising subscriber stops neither others nor the update; each error type is logged once."""
    seen: list[Sample] = []
    errors = iter([RuntimeError("boom"), RuntimeError("again"), ZeroDivisionError("zero")])

    def broken(sample: Sample) -> None:
        raise next(errors)

    table.subscribe(broken, changes_only=False)
    table.subscribe(seen.append, changes_only=False)
    with caplog.at_level(logging.ERROR, logger="tags.table"):
        for i in range(3):
            table.update(Sample("heat1.energy_kwh", float(i), GOOD, T0 + i))
    assert len(seen) == 3
    assert table.get("heat1.energy_kwh").value == 2.0  # type: ignore[union-attr]
    logged = [r for r in caplog.records if r.name == "tags.table"]
    assert [r.exc_info[1].__class__ for r in logged] == [RuntimeError, ZeroDivisionError]  # type: ignore[index]
    assert "heat1.energy_kwh" in logged[0].getMessage()


def test_batch_end_listeners() -> None:
    """on_batch_end listeners run once per update_many and once per lone update; errors stay contained."""
    table = TagTable()
    table.define(TagDef("a.x"))
    table.define(TagDef("a.y"))
    calls: list[int] = []
    seen: list[str] = []
    table.subscribe(lambda s: seen.append(s.name), changes_only=False)
    remove = table.on_batch_end(lambda: calls.append(len(seen)))

    def broken() -> None:
        raise RuntimeError("listener bug")

    table.on_batch_end(broken)
    table.update_many([Sample("a.x", 1.0, Quality.GOOD, 1.0), Sample("a.y", 2.0, Quality.GOOD, 1.0)])
    table.update(Sample("a.x", 3.0, Quality.GOOD, 2.0))
    assert calls == [2, 3]
    remove()
    remove()
    table.update(Sample("a.x", 4.0, Quality.GOOD, 3.0))
    assert calls == [2, 3]
