"""Reloading the site file (SIGHUP): channels added, removed, restarted; the others untouched.

On a memory reactor: Modbus TCP channels "connect" to addresses nothing
listens on, nothing is simulated, no port is opened.
"""

from __future__ import annotations

import logging
import textwrap

import pytest
from twisted.internet.testing import MemoryReactorClock

from scada.app import Runtime
from scada.config import load_config
from scada.reload import ReloadReport, channel_change, plan_reload
from tags.model import Sample
from tags.quality import Quality

HEAD = "site: {name: reload test}\nhistory: {backend: sqlite, path: var/h.db}\n"

#: A profile of the site file itself, so that a test can change it.
PROFILES = textwrap.dedent("""\
    profiles:
      flow_meter:
        description: a one-register flow meter
        points:
          - {name: flow_m3h, function: holding, register: 0, type: u16, scale: 0.01, unit: m3/h}
    """)


def channel(name: str, port: int, *devices: str, extra: str = "") -> str:
    """Return a Modbus TCP channel of the site file; devices as ``name:profile[:poll]``."""
    lines = [f"  - name: {name}", "    type: modbus-tcp", f"    transport: {{tcp: 127.0.0.1:{port}}}"]
    if extra:
        lines.append(f"    {extra}")
    lines.append("    devices:")
    for address, spec in enumerate(devices, 1):
        dev, profile, *poll = spec.split(":")
        lines.append(f"      - {{name: {dev}, address: {address}, profile: {profile}, poll: {poll[0] if poll else '10s'}}}")
    return "\n".join(lines) + "\n"


def site_text(*channels: str, head: str = HEAD, profiles: str = PROFILES) -> str:
    """Return a whole site file."""
    return head + profiles + "channels:\n" + "".join(channels)


A = channel("a", 1, "a1:generic_water_meter")
B = channel("b", 2, "b1:flow_meter")
C = channel("c", 3, "c1:generic_water_meter", "c2:flow_meter")


@pytest.fixture
def site(tmp_path):
    """Yield ``start(text)`` -> (runtime, reactor, path); every runtime is stopped afterwards."""
    started = []

    def start(text: str):
        path = tmp_path / "site.yaml"
        path.write_text(text)
        cfg, _ = load_config(path)
        reactor = MemoryReactorClock()
        runtime = Runtime(cfg, reactor, base_dir=tmp_path)
        runtime.start()
        started.append(runtime)
        return runtime, reactor, path

    yield start
    for runtime in started:
        runtime.stop()


def reload(runtime, path, text: str) -> ReloadReport:
    """Write ``text`` to the site file and reload it; return the report (no reload here waits)."""
    path.write_text(text)
    done = runtime.reload_file(path)
    assert done.called
    return done.result


def names(runtime) -> list[str]:
    return [c.name for c in runtime.channels]


def test_add_and_remove_leave_the_others_polling(site):
    """A new channel starts, a removed one stops with its tags; the untouched one keeps object, poller and values."""
    runtime, reactor, path = site(site_text(A, B))
    a, b = runtime.channels
    runtime.tags.update(Sample("a1.volume_m3", 12.5, Quality.GOOD, 1000.0))
    old_sink = runtime._built["b"].sink
    assert runtime.tags.get("channel-b.link_up") is not None  # published at start
    report = reload(runtime, path, site_text(A, C))
    assert (report.added, report.removed, report.restarted, report.unchanged) == ({"c": 2}, ["b"], {}, ["a"])
    assert report.outcome == "applied" and not report.failed and not report.problems
    assert names(runtime) == ["a", "c"] and runtime.channels[0] is a
    assert a.scheduler._running and a.link.state != "closed"
    assert runtime.tags.get("a1.volume_m3").value == 12.5
    # b: stopped, its tags and statistics gone; whatever it still delivers is dropped.
    assert not b.scheduler._running and b.link.state == "closed"
    assert not [n for n in runtime.tags.names() if n.startswith(("b1.", "channel-b."))]
    old_sink.samples([Sample("b1.flow_m3h", 1.0, Quality.GOOD, 1001.0)])
    # c: built, its tags defined, polling started (it connects to its gateway).
    c = runtime.channels[1]
    assert c.scheduler._running and runtime.tags.get("c2.flow_m3h").quality is Quality.NOT_YET_READ
    assert ("127.0.0.1", 3) in [(host, port) for host, port, *_ in reactor.tcpClients]
    assert [ch.name for ch in runtime.cfg.channels] == ["a", "c"]
    # The API's views follow runtime.channels.
    assert [d.name for _, d in runtime.device_index()] == ["a1", "c1", "c2"]


def test_changed_channel_restarts_alone(site):
    """A changed device restarts its channel (a new object, its tags redefined); the other is not touched."""
    runtime, _, path = site(site_text(A, B))
    a, b = runtime.channels
    report = reload(runtime, path, site_text(A, channel("b", 2, "b1:flow_meter:5s")))
    assert report.restarted == {"b": "device b1 changed"} and report.unchanged == ["a"]
    assert runtime.channels[0] is a and runtime.channels[1] is not b
    assert not b.scheduler._running and runtime.channels[1].scheduler._running
    assert runtime.channels[1].devices[0].period == 5.0
    # The statistics tags of a restarted channel stay: the same figures follow.
    assert runtime.tags.get("channel-b.link_up") is not None


def test_profile_change_restarts_only_its_users(site):
    """Changing a profile restarts the channels whose devices use it, and no other."""
    runtime, _, path = site(site_text(A, B, C))
    a, b, c = runtime.channels
    changed = PROFILES.replace("scale: 0.01", "scale: 0.1")
    report = reload(runtime, path, site_text(A, B, C, profiles=changed))
    assert report.restarted == {"b": "profile flow_meter changed", "c": "profile flow_meter changed"}
    assert report.unchanged == ["a"] and runtime.channels[0] is a
    assert runtime.channels[1] is not b and runtime.channels[2] is not c


def test_invalid_file_changes_nothing(site, caplog):
    """A file with errors is refused with its FILE:LINE problems; channels, tags and config stay."""
    runtime, _, path = site(site_text(A, B))
    before = list(runtime.channels)
    tags = runtime.tags.names()
    cfg = runtime.cfg
    with caplog.at_level(logging.INFO, logger="scada.reload"):
        report = reload(runtime, path, site_text(A, channel("b", 2, "b1:no_such_profile"), C))
    assert report.refused and report.outcome == "refused"
    assert any(p.startswith(f"{path}:") and "no_such_profile" in p for p in report.problems)
    assert runtime.channels == before and runtime.tags.names() == tags and runtime.cfg is cfg
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("no_such_profile" in line for line in errors)
    assert errors[-1].endswith("the site keeps running unchanged")
    health = runtime.config_health()
    assert health["reloads"] == 1 and health["last_reload"]["outcome"] == "refused"


def test_other_sections_need_a_restart(site, caplog):
    """history and api changes are reported, not applied; the channels are not touched."""
    runtime, _, path = site(site_text(A, B))
    before = list(runtime.channels)
    head = HEAD.replace("path: var/h.db}", "path: var/h.db, flush_interval: 2s}") + "api: {listen: 127.0.0.1:9}\n"
    with caplog.at_level(logging.INFO, logger="scada.reload"):
        report = reload(runtime, path, site_text(A, B, head=head))
    assert report.needs_restart == {"history": "changed", "api": "changed"}
    assert report.outcome == "no change" and report.unchanged == ["a", "b"] and runtime.channels == before
    assert runtime.cfg.history.flush_interval != 2.0  # still what runs
    assert "reload: needs a restart to apply: history, api" in [r.getMessage() for r in caplog.records]


def test_alarm_rules_of_new_devices_need_a_restart(site):
    """A new device whose profile brings alarm shortcuts is polled; its alarm rules wait for a restart."""
    runtime, _, path = site(site_text(A))
    report = reload(runtime, path, site_text(A, channel("h", 4, "h1:generic_heat_meter")))
    assert report.added == {"h": 1}
    assert "h1" in report.needs_restart["alarms"]
    # A second reload of the same file says so again: the running rules did not change.
    again = reload(runtime, path, site_text(A, channel("h", 4, "h1:generic_heat_meter")))
    assert again.added == {} and "alarms" in again.needs_restart and again.unchanged == ["a", "h"]


def test_manual_channels_need_a_restart(site):
    """Hand-read channels are not added or removed by a reload; they are reported."""
    manual = ("  - name: hand\n    type: manual\n    devices:\n"
              "      - {name: kv1, serial: S-1, points: [{name: volume_m3, unit: m3}]}\n")
    runtime, _, path = site(site_text(A, manual))
    report = reload(runtime, path, site_text(A))
    assert "removed" in report.needs_restart["channel hand"] and names(runtime) == ["a", "hand"]
    assert runtime.tags.get("kv1.volume_m3") is not None
    report = reload(runtime, path, site_text(A, manual.replace("S-1", "S-2")))
    assert "manual channels are changed by a restart" in report.needs_restart["channel hand"]


def test_reloads_run_one_at_a_time(site):
    """A reload asked for while another holds the lock waits for it, then applies in order."""
    runtime, _, path = site(site_text(A, B))
    runtime._reload_lock.acquire()
    path.write_text(site_text(A))
    first = runtime.reload_file(path)
    second = runtime.reload_file(path)
    assert not first.called and names(runtime) == ["a", "b"]
    path.write_text(site_text(A, C))  # what the file holds when they run
    runtime._reload_lock.release()
    assert first.result.removed == ["b"] and first.result.added == {"c": 2}
    assert second.result.outcome == "no change" and names(runtime) == ["a", "c"]


def test_modem_channel_removed_and_added_again(site):
    """A removed modem channel unregisters its modem; the same modem can come back with a new channel."""
    head = HEAD + "modem_server: {listen: '127.0.0.1:5999', id_pattern: '^ID(?P<id>\\d+)\\n'}\n"
    gprs = ("  - name: g\n    type: modbus-rtu\n    transport: {modem: '42'}\n    devices:\n"
            "      - {name: g1, address: 1, profile: flow_meter, poll: 10s}\n")
    runtime, _, path = site(site_text(A, gprs, head=head))
    server = runtime.modem_server
    assert "42" in server.links
    report = reload(runtime, path, site_text(A, head=head))
    assert report.removed == ["g"] and "42" not in server.links
    report = reload(runtime, path, site_text(A, gprs.replace("name: g\n", "name: g2\n"), head=head))
    assert report.added == {"g2": 1} and server.links["42"].started


def test_health_and_stop(site):
    """/health shows the file and the last reload; after stop() a reload changes nothing."""
    runtime, _, path = site(site_text(A))
    health = runtime.services.health()["config"]
    assert health["path"] == str(path) and health["reloads"] == 0 and health["last_reload"] is None
    runtime.stop()
    report = reload(runtime, path, site_text(A, B))
    assert report.refused and names(runtime) == ["a"]


def test_channel_change_reasons(tmp_path):
    """The reason names what changed: settings, devices, profiles."""
    path = tmp_path / "s.yaml"
    path.write_text(site_text(channel("b", 2, "b1:flow_meter")))
    old, _ = load_config(path)
    path.write_text(site_text(channel("b", 3, "b1:flow_meter", "b2:flow_meter", extra="retries: 5"),
                              profiles=PROFILES.replace("0.01", "0.02")))
    new, _ = load_config(path)
    why = channel_change(old.channels[0], old.profiles, new.channels[0], new.profiles)
    assert why == "transport changed; retries changed; device b2 added; profile flow_meter changed"
    built = {"b": (old.channels[0], {"flow_meter": old.profiles["flow_meter"]})}
    plan = plan_reload(old, built, None, new)
    assert list(plan.restart) == ["b"] and plan.channels == [new.channels[0]] and not plan.needs_restart


def test_a_channel_that_cannot_be_built_is_reported(site):
    """A new channel whose tags a kept (not reloaded) channel still holds fails alone; the rest is applied."""
    manual = ("  - name: hand\n    type: manual\n    devices:\n"
              "      - {name: kv1, serial: S-1, points: [{name: flow_m3h, unit: m3/h}]}\n")
    runtime, _, path = site(site_text(A, manual))
    report = reload(runtime, path, site_text(A, channel("m", 5, "kv1:flow_meter"), C))
    assert "kv1.flow_m3h" in report.failed["m"] and report.added == {"c": 2}
    assert "channel hand" in report.needs_restart and report.outcome == "applied"
    assert names(runtime) == ["a", "c", "hand"] and "m" not in runtime._built
    assert [ch.name for ch in runtime.cfg.channels] == ["a", "c", "hand"]


MODEM_HEAD = HEAD + "modem_server: {listen: '127.0.0.1:5999', id_pattern: '^ID(?P<id>\\d+)\\n'}\n"


def gprs(name: str, modem: str = "860000000000001", device: str = "g1") -> str:
    """Return a Modbus RTU channel behind a dial-in modem."""
    return (f"  - name: {name}\n    type: modbus-rtu\n    transport: {{modem: '{modem}'}}\n    devices:\n"
            f"      - {{name: {device}, address: 1, profile: flow_meter, poll: 10s}}\n")


def test_a_channel_refused_for_a_taken_modem_leaves_the_running_link(site):
    """A new channel whose modem a kept channel still has fails alone; the kept channel's link stays registered."""
    runtime, _, path = site(site_text(A, gprs("a-gprs"), head=MODEM_HEAD))
    server = runtime.modem_server
    link = server.links["860000000000001"]
    # a-gprs turns LoRaWAN (only a restart applies that: it keeps running with its modem) and b takes the modem.
    lora = ("  - name: a-gprs\n    type: lorawan\n    devices:\n"
            "      - {name: l1, dev_eui: 70B3D59BA0000511, decoder: pulse_counter_le, poll: 1m,\n"
            "         decoder_options: {litres_per_pulse: 1}}\n")
    report = reload(runtime, path, site_text(A, lora, gprs("b", device="b1"), head=MODEM_HEAD))
    assert "channel a-gprs" in report.needs_restart and "registered twice" in report.failed["b"]
    assert server.links == {"860000000000001": link} and link.started
    assert names(runtime) == ["a", "a-gprs"] and "b" not in runtime._built


def test_a_channel_whose_start_fails_is_taken_down(site, monkeypatch):
    """start() raising: reported failed, and nothing of it stays (tags, statistics, modem link, channel list)."""
    from channels.modbus.channel import ModbusChannel

    runtime, _, path = site(site_text(A, head=MODEM_HEAD))
    stopped = []
    monkeypatch.setattr(ModbusChannel, "start", lambda self: (_ for _ in ()).throw(OSError("port busy")))
    monkeypatch.setattr(ModbusChannel, "stop", lambda self: stopped.append(self.name))
    report = reload(runtime, path, site_text(A, gprs("g"), head=MODEM_HEAD))
    assert report.failed == {"g": "port busy"} and report.added == {} and report.outcome == "applied"
    assert names(runtime) == ["a"] and "g" not in runtime._built and stopped == ["g"]
    assert not [n for n in runtime.tags.names() if n.startswith(("g1.", "channel-g."))]
    assert runtime.modem_server.links == {}
    assert [ch.name for ch in runtime.cfg.channels] == ["a"]


def test_a_reload_finishing_after_stop_opens_nothing(site, monkeypatch):
    """stop() while the taken-down channels' simulators close: the added channels are not built."""
    from twisted.internet.defer import Deferred

    runtime, reactor, path = site(site_text(A, B))
    closing = Deferred()
    take_down = runtime._take_down
    monkeypatch.setattr(runtime, "_take_down", lambda channel, removed: take_down(channel, removed) + [closing])
    path.write_text(site_text(A, C))
    got = []
    runtime.reload_file(path).addCallback(got.append)
    assert got == [] and names(runtime) == ["a"]  # b is down, c waits for the simulators
    runtime.stop()
    closing.callback(None)
    [report] = got
    assert report.problems == ["the site is stopping"] and report.removed == ["b"] and report.added == {}
    assert runtime.last_reload is report and "c" not in runtime._built and names(runtime) == ["a"]
    assert ("127.0.0.1", 3) not in [(host, port) for host, port, *_ in reactor.tcpClients]
    assert runtime.tags.get("c1.volume_m3") is None


def test_a_stopped_channels_archive_records_leave_the_book_behind(site):
    """Its closed sink raises on archive records, and both archive readers then keep the book where it was."""
    from tests.channels.mbus.test_archive_book import MemoryArchiveBook, Site
    from tests.channels.modbus.test_archive import HOUR, PERIOD, Rig

    runtime, _, path = site(site_text(A, B))
    sink = runtime._built["b"].sink
    reload(runtime, path, site_text(A))
    with pytest.raises(RuntimeError, match="^channel b was stopped by a reload$"):
        sink.history([Sample("b1.flow_m3h", 1.0, Quality.BACKFILLED, 1000.0)])
    # Modbus archives.
    rig = Rig()
    rig.slave.history(10)
    device = rig.device(lookback_s=2 * HOUR, on_history=sink.history)
    rig.start()
    rig.run(PERIOD * 3)
    assert rig.book.newest("m1", "hourly") is None
    assert device.health()["archive_last_error"].endswith("channel b was stopped by a reload")
    # M-Bus archives.
    book = MemoryArchiveBook()
    mbus = Site(book)
    meter = mbus.device()
    meter._on_history = sink.history
    mbus.run(30)
    assert book.newest("heat", "monthly") is None and meter.health()["archive_errors"] == 1


def test_health_shows_names_and_counts_not_problem_texts(site):
    """The public /health keeps outcome, names and counts; reasons and FILE:LINE texts stay in the log."""
    runtime, _, path = site(site_text(A, B))
    report = reload(runtime, path, site_text(A, channel("b", 2, "b1:flow_meter:5s"), C,
                                             head=HEAD.replace("h.db}", "h.db, flush_interval: 2s}")))
    assert report.restarted == {"b": "device b1 changed"}  # the reason: in the report and the log only
    health = runtime.services.health()["config"]["last_reload"]
    assert {k: v for k, v in health.items() if k != "ts"} == {
        "path": str(path), "outcome": "applied", "added": ["c"], "removed": [], "restarted": ["b"], "failed": [],
        "needs_restart": ["history"], "unchanged": 1, "problems": 0}
    secret = "s3cr3t-from-env"
    reload(runtime, path, site_text(A, channel("b", 2, f"b1:{secret}")))
    health = runtime.services.health()["config"]["last_reload"]
    assert health["outcome"] == "refused" and health["problems"] >= 1
    assert secret in " ".join(runtime.last_reload.problems) and secret not in repr(health)


def test_a_simulated_channel_taken_down_is_no_longer_served(site):
    """Simulated site: the site-wide simulator closes a removed (or restarted) channel's listener, not the others'."""
    from twisted.internet.testing import StringTransport

    runtime, reactor, path = site(site_text(A, B, head=HEAD + "simulate: true\n"))
    field = runtime.field
    factories = {name: factory for name, factory in field._factories}
    served = {}
    for name, factory in factories.items():
        served[name] = StringTransport()
        factory.buildProtocol(None).makeConnection(served[name])
    report = reload(runtime, path, site_text(A, channel("c", 3, "c1:flow_meter"), head=HEAD + "simulate: true\n"))
    assert report.removed == ["b"] and report.added == {"c": 1}
    assert served["b"].disconnecting and not served["a"].disconnecting
    assert [name for name, _ in field._ports] == ["a"] and [name for name, _ in field._factories] == ["a"]
    # Restarted: the old listener goes as well; the new channel has its own simulator.
    reload(runtime, path, site_text(channel("a", 1, "a1:generic_water_meter:5s"), channel("c", 3, "c1:flow_meter"),
                                    head=HEAD + "simulate: true\n"))
    assert served["a"].disconnecting and field._ports == [] and runtime._built["a"].field is not None
