"""Channel statistics system tags: names from config, the publisher on a Clock, site_tags and the loader."""

from __future__ import annotations

import logging
import textwrap
from types import SimpleNamespace

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock

from scada.app import Runtime
from scada.channelstats import (
    PUBLISH_EVERY_S,
    ChannelStatsPublisher,
    channel_stat_tagdefs,
    channel_stat_tags,
)
from scada.config import ConfigError, load_config
from scada.config.alarms import site_tags
from tags.quality import Quality
from tags.table import TagTable

POLLED = ["link_up", "tx_per_s", "utilisation_pct", "timeouts", "crc_errors", "devices_comm_loss", "queue_depth"]
UPLINK = ["uplinks", "decode_errors", "devices_comm_loss"]

SITE = textwrap.dedent("""\
    site: {name: stats test}
    history: {backend: sqlite, path: history.db}
    channels:
      - name: gw
        type: modbus-rtu
        transport: {tcp: 127.0.0.1:1}
        devices:
          - {name: m1, address: 1, profile: generic_water_meter, poll: 10s}
          - {name: m2, address: 2, profile: generic_water_meter, poll: 10s}
      - name: lora
        type: lorawan
        devices:
          - {name: l1, dev_eui: 70B3D59BA0000511, decoder: pulse_counter_le, poll: 1m,
             decoder_options: {litres_per_pulse: 1}}
      - name: hand
        type: manual
        devices:
          - {name: h1, points: [{name: volume_m3, unit: m3}]}
    """)


@pytest.mark.parametrize("kind, points", [
    ("modbus-rtu", POLLED), ("modbus-tcp", POLLED), ("mbus", POLLED),
    ("lorawan", UPLINK), ("nbiot", UPLINK), ("manual", []),
])
def test_tags_by_channel_type(kind, points):
    """Polled channels have seven figures, uplink ones three, hand-read ones none."""
    cfg = SimpleNamespace(name="seg-1", type=kind)
    assert channel_stat_tags(cfg) == [f"channel-seg-1.{p}" for p in points]
    defs = channel_stat_tagdefs(cfg)
    assert [d.name for d in defs] == channel_stat_tags(cfg)
    assert all(d.device == "channel-seg-1" and "seg-1" in d.description and d.deadband == 0 for d in defs)
    units = {d.name.split(".")[1]: d.unit for d in defs}
    if kind == "modbus-rtu":
        assert units["utilisation_pct"] == "%" and units["tx_per_s"] == "1/s"


class FakeDevice:
    def __init__(self, name, **health):
        self.name = name
        self._health = {"name": name, "state": "ok", **health}

    def health(self):
        return dict(self._health)


class FakeScheduler:
    def __init__(self, depth):
        self.depth = depth

    def queue_depth(self):
        return self.depth


class FakeChannel:
    def __init__(self, name, kind, devices=(), depth=0, **health):
        self.name, self.type, self.devices = name, kind, list(devices)
        self.scheduler = FakeScheduler(depth)
        self._health = {"name": name, "type": kind, **health}

    def health(self):
        return dict(self._health)


def _values(tags: TagTable, prefix: str) -> dict[str, float]:
    return {s.definition.name.split(".", 1)[1]: s.value for s in tags.states(prefix)}


def test_publisher_now_and_every_minute_following_the_channel_list():
    """Published at start and every 60 s, quality good; a channel added later is defined and published."""
    clock = Clock()
    clock.advance(1000)
    tags = TagTable()
    gw = FakeChannel("gw", "modbus-rtu", [FakeDevice("a", timeouts=3, crc_errors=1), FakeDevice("b", timeouts=2)],
                     depth=4, link_up=True, tx_per_s=2.5, utilisation_pct=31.5, devices_comm_loss=1)
    channels = [gw, FakeChannel("hand", "manual")]
    publisher = ChannelStatsPublisher(clock, lambda: channels, tags)
    publisher.start()
    assert _values(tags, "channel-gw.") == {"link_up": 1.0, "tx_per_s": 2.5, "utilisation_pct": 31.5,
                                            "timeouts": 5.0, "crc_errors": 1.0, "devices_comm_loss": 1.0,
                                            "queue_depth": 4.0}
    states = tags.states("channel-gw.")
    assert {s.quality for s in states} == {Quality.GOOD} and {s.ts for s in states} == {1000.0}
    assert tags.states("channel-hand") == []
    channels.append(FakeChannel("lora", "lorawan", uplinks=12, decode_errors=2, devices_comm_loss=0))
    gw._health["link_up"] = False
    clock.advance(PUBLISH_EVERY_S - 1)
    assert tags.get("channel-lora.uplinks") is None
    clock.advance(1)
    assert _values(tags, "channel-lora.") == {"uplinks": 12.0, "decode_errors": 2.0, "devices_comm_loss": 0.0}
    assert tags.get("channel-gw.link_up").value == 0.0 and tags.get("channel-gw.link_up").ts == 1060.0
    # A channel removed (a reload) is no longer published; the others are.
    channels.remove(gw)
    clock.advance(PUBLISH_EVERY_S)
    assert tags.get("channel-gw.link_up").ts == 1060.0 and tags.get("channel-lora.uplinks").ts == 1120.0
    publisher.stop()
    assert clock.getDelayedCalls() == []


def test_a_channel_or_device_that_raises_does_not_stop_the_others(caplog):
    """A broken channel is skipped (logged once); a broken device is left out of its channel's sums."""
    def broken():
        raise RuntimeError("boom")

    bad_device = FakeDevice("b")
    bad_device.health = broken
    good = FakeChannel("gw", "modbus-rtu", [FakeDevice("a", timeouts=3), bad_device], link_up=True)
    bad = FakeChannel("bad", "modbus-rtu")
    bad.health = broken
    clock = Clock()
    tags = TagTable()
    publisher = ChannelStatsPublisher(clock, lambda: [bad, good], tags)
    with caplog.at_level(logging.ERROR, logger="scada.channelstats"):
        publisher.start()
        clock.advance(PUBLISH_EVERY_S)
    assert tags.get("channel-gw.timeouts").value == 3.0
    assert tags.get("channel-bad.link_up") is None
    assert len([r for r in caplog.records if "channel bad" in r.getMessage()]) == 1
    publisher.stop()


def test_the_runtime_publishes_its_channels_figures(tmp_path):
    """Runtime.start() publishes every polled and uplink channel's figures; stop() ends the loop."""
    path = tmp_path / "site.yaml"
    path.write_text(SITE, encoding="utf-8")
    cfg, _ = load_config(path)
    reactor = MemoryReactorClock()
    reactor.advance(5000)
    runtime = Runtime(cfg, reactor, base_dir=tmp_path)
    gw = runtime.channels[0]
    try:
        runtime.start()
        values = _values(runtime.tags, "channel-gw.")
        assert sorted(values) == sorted(POLLED)
        # As a timed-out poll leaves it (the TCP link never connects here).
        gw.devices[0].stats.timeouts = 2
        reactor.advance(PUBLISH_EVERY_S)
        assert runtime.tags.get("channel-gw.timeouts").value == 2.0
        assert runtime.tags.get("channel-gw.queue_depth").value == gw.scheduler.queue_depth()
        assert sorted(_values(runtime.tags, "channel-lora.")) == sorted(UPLINK)
        assert runtime.tags.get("channel-hand.link_up") is None
        assert runtime.tags.get("channel-gw.link_up").quality is Quality.GOOD
    finally:
        assert runtime.stop() == []
    ts = runtime.tags.get("channel-gw.link_up").ts
    reactor.advance(3 * PUBLISH_EVERY_S)
    assert runtime.tags.get("channel-gw.link_up").ts == ts


def test_site_tags_list_the_figures_under_their_pseudo_device(tmp_path):
    """site_tags (alarm rules, Grafana export) knows every channel-<ch>.* tag; rules may watch them."""
    path = tmp_path / "site.yaml"
    path.write_text(SITE + textwrap.dedent("""\
        alarms:
          - {name: gw-timeouts, type: limit, tag: channel-gw.timeouts, hi: 100}
          - {name: lora-silent, type: limit, tag: channel-lora.devices_comm_loss, hi: 0.5}
        """), encoding="utf-8")
    cfg, _ = load_config(path)
    tags = site_tags(cfg.channels, cfg.profiles).tags
    assert {t: d for t, d in tags.items() if t.startswith("channel-")} == {
        **{f"channel-gw.{p}": "channel-gw" for p in POLLED},
        **{f"channel-lora.{p}": "channel-lora" for p in UPLINK}}
    assert [r.name for r in cfg.alarms] == ["gw-timeouts", "lora-silent"]


def test_a_device_named_like_a_channels_pseudo_device_is_refused(tmp_path):
    """A device called channel-<an existing channel> would share its figures' tags: FILE:LINE error."""
    path = tmp_path / "site.yaml"
    path.write_text(SITE.replace("{name: m2,", "{name: channel-lora,"), encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    lines = path.read_text().splitlines()
    device_line = next(n for n, text in enumerate(lines, 1) if "name: channel-lora" in text)
    channel_line = next(n for n, text in enumerate(lines, 1) if "- name: lora" in text)
    assert [(p.file, p.line, p.message) for p in raised.value.problems] == [(
        str(path), device_line,
        f"device name 'channel-lora' is taken by the statistics of channel 'lora' (line {channel_line}): "
        "its figures are published as channel-lora.<figure>; rename the device")]
    # channel-<a name no channel has> is an ordinary device name.
    path.write_text(SITE.replace("{name: m2,", "{name: channel-old,"), encoding="utf-8")
    cfg, _ = load_config(path)
    assert "channel-old" in [d.name for d in cfg.channels[0].devices]
