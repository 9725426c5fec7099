"""Tests for removing tags from a TagTable (a channel removed by a reload of the site file)."""

from __future__ import annotations

import pytest

from tags.model import Sample, TagDef
from tags.quality import Quality
from tags.table import TagTable

GOOD = Quality.GOOD
T0 = 1795244400.0  # 2026-11-21T07:00:00Z


@pytest.fixture
def table() -> TagTable:
    """Return a table with two devices and a channel statistics tag."""
    table = TagTable()
    table.define(TagDef("b1.flow", device="b1"))
    table.define(TagDef("b1.volume", device="b1"))
    table.define(TagDef("b10.flow", device="b10"))
    table.define(TagDef("channel-b.link_up", device="channel-b"))
    return table


def test_remove_one_tag(table: TagTable) -> None:
    """A removed tag is gone: get() says None, an update raises KeyError; removing it again says False."""
    assert table.remove("b1.flow") is True
    assert table.get("b1.flow") is None and "b1.flow" not in table.names() and len(table) == 3
    with pytest.raises(KeyError, match="b1.flow"):
        table.update(Sample("b1.flow", 1.0, GOOD, T0))
    assert table.remove("b1.flow") is False


def test_remove_device_is_exact(table: TagTable) -> None:
    """remove_device takes the device's tags, not those of a device whose name merely starts the same."""
    assert table.remove_device("b1") == ["b1.flow", "b1.volume"]
    assert table.names() == ["b10.flow", "channel-b.link_up"]


def test_remove_prefix(table: TagTable) -> None:
    """remove_prefix takes every tag under the prefix; an empty prefix is refused."""
    assert table.remove_prefix("channel-b.") == ["channel-b.link_up"]
    with pytest.raises(ValueError):
        table.remove_prefix("")


def test_subscribers_follow_a_tag_defined_again(table: TagTable) -> None:
    """Subscriptions are by prefix: a tag removed and defined again reaches the same subscribers."""
    seen: list[str] = []
    table.subscribe(lambda s: seen.append(s.name), prefix="b1.")
    table.update(Sample("b1.flow", 1.0, GOOD, T0))
    table.remove_device("b1")
    table.define(TagDef("b1.flow", device="b1"))
    state = table.get("b1.flow")
    assert state.value is None and state.quality is Quality.NOT_YET_READ
    table.update(Sample("b1.flow", 2.0, GOOD, T0 + 1))
    assert seen == ["b1.flow", "b1.flow"]
