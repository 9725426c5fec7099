"""Tests for channels.manual: the tags of hand-read meters, device health, the newest reading."""

from __future__ import annotations

from channels.manual import ManualChannel, ManualDevice
from scada.config.model import ChannelConfig, ProfileConfig
from tags.model import TagDef

PROFILES = {
    "water": ProfileConfig.model_validate({"points": [
        {"name": "volume_m3", "function": "input", "register": 0, "type": "u32", "unit": "m3", "deadband": 0.01,
         "description": "Cold water total"},
        {"name": "flow_m3h", "function": "input", "register": 2, "type": "f32", "unit": "m3/h"},
    ]}),
}


def manual_channel(devices: list[dict]) -> ManualChannel:
    """Return the channel of a validated ``manual`` channel config with ``devices``."""
    cfg = ChannelConfig.model_validate({"name": "hand", "type": "manual", "devices": devices})
    return ManualChannel(cfg, PROFILES)


def test_tagdefs_from_points():
    """Each point becomes ``<device>.<point>`` with its unit and deadband; the device's description fills in."""
    channel = manual_channel([{"name": "kv12-cold", "description": "Flat 12, cold water", "points": [
        {"name": "volume_m3", "unit": "m3", "deadband": 0.001, "description": "Total"},
        {"name": "t_c", "unit": "°C"}]}])
    assert channel.name == "hand" and channel.type == "manual"
    assert channel.tagdefs == [TagDef("kv12-cold.volume_m3", "m3", 0.001, "kv12-cold", "Total"),
                               TagDef("kv12-cold.t_c", "°C", 0.0, "kv12-cold", "Flat 12, cold water")]
    (device,) = channel.devices
    assert (device.name, device.points) == ("kv12-cold", ["volume_m3", "t_c"])


def test_tagdefs_from_a_profile():
    """A meter with a Modbus profile and no points of its own gets the profile's points."""
    channel = manual_channel([{"name": "kv7-cold", "profile": "water"}])
    assert channel.tagdefs == [TagDef("kv7-cold.volume_m3", "m3", 0.01, "kv7-cold", "Cold water total"),
                               TagDef("kv7-cold.flow_m3h", "m3/h", 0.0, "kv7-cold", "")]
    assert channel.devices[0].points == ["volume_m3", "flow_m3h"]


def test_own_points_win_over_the_profile():
    """Points given on the device are its registers even when it also names a profile."""
    channel = manual_channel([{"name": "kv8", "profile": "water", "points": [{"name": "reading", "unit": "m3"}]}])
    assert [t.name for t in channel.tagdefs] == ["kv8.reading"]


def test_disabled_devices_are_skipped():
    """A disabled meter has neither tags nor a device entry."""
    channel = manual_channel([
        {"name": "a", "points": [{"name": "v", "unit": "m3"}]},
        {"name": "b", "enabled": False, "points": [{"name": "v", "unit": "m3"}]},
        {"name": "c", "enabled": False, "profile": "water"},
    ])
    assert [t.name for t in channel.tagdefs] == ["a.v"]
    assert [d.name for d in channel.devices] == ["a"]
    assert channel.health()["devices"] == 1


def test_channel_health_and_lifecycle_do_nothing():
    """Nothing to open: the link is always up and every meter counts as ok."""
    channel = manual_channel([{"name": "a", "points": [{"name": "v"}]}, {"name": "b", "points": [{"name": "v"}]}])
    channel.start()
    channel.log_plan()
    assert channel.health() == {"name": "hand", "type": "manual", "link_up": True, "devices": 2, "devices_ok": 2,
                                "devices_degraded": 0, "devices_comm_loss": 0}
    channel.stop()


def test_device_health_before_and_after_a_reading():
    """A hand-read meter has state manual, period 0 and the time of its newest reading."""
    device = manual_channel([{"name": "kv12", "points": [{"name": "v"}, {"name": "w"}]}]).devices[0]
    assert isinstance(device, ManualDevice)
    assert device.health() == {"name": "kv12", "state": "manual", "period": 0.0, "last_good": None,
                               "points": ["v", "w"]}
    device.note_reading(1_700_000_000.0)
    assert device.health()["last_good"] == 1_700_000_000.0
    device.health()["points"].append("x")
    assert device.points == ["v", "w"]


def test_note_reading_keeps_the_newest():
    """An older reading entered later (a back-dated hand reading) does not move last_reading back."""
    device = ManualDevice("kv12", ["v"])
    device.note_reading(200.0)
    device.note_reading(100.0)
    assert device.last_reading == 200.0
    device.note_reading(300.0)
    assert device.last_reading == 300.0
    device.note_reading(300.0)
    assert device.last_reading == 300.0
