"""Integration: ``scada run`` reloads its site file on SIGHUP; ``--log-format json`` writes only JSON lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.integration.test_run import SCADA, free_port, get, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def segment(name: str, *devices: str, kind: str = "modbus-rtu") -> str:
    """Return a channel of the site file: a pty segment (or a TCP gateway), devices ``name:profile``."""
    transport = "{serial: /dev/ttyUSB9, baudrate: 19200}" if kind == "modbus-rtu" else "{tcp: 127.0.0.1:1502}"
    text = f"  - name: {name}\n    type: {kind}\n    transport: {transport}\n    timeout: 100ms\n    devices:\n"
    for address, spec in enumerate(devices, 1):
        dev, profile = spec.split(":")
        text += f"      - {{name: {dev}, address: {address}, profile: {profile}, poll: 300ms}}\n"
    return text


def site_file(port: int, *channels: str) -> str:
    head = textwrap.dedent(f"""\
        site: {{name: reload test, timezone: Europe/Moscow}}
        history: {{backend: sqlite, path: var/history.db, flush_interval: 200ms}}
        api: {{listen: 127.0.0.1:{port}, auth: false}}
        channels:
        """)
    return head + "".join(channels)


def start(tmp: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    """Start ``scada ARGS`` in ``tmp`` with stderr to a file; return the process and that file."""
    err = tmp / "stderr.txt"
    with open(err, "w") as handle:
        proc = subprocess.Popen(SCADA + list(args), cwd=tmp, env=ENV, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=handle)
    return proc, err


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    return proc.returncode


def channel_stats(base: str) -> dict[str, dict]:
    return {c["name"]: c for c in get(base, "/channels")[1]["channels"]}


def all_good(base: str, prefix: str) -> bool:
    tags = get(base, f"/tags?prefix={prefix}")[1]["tags"]
    return bool(tags) and all(t["quality"] == "good" for t in tags)


def test_sighup_adds_and_removes_channels(tmp_path):
    """Add a channel and remove another: the new one polls good values, the old one is gone, the third untouched."""
    port = free_port()
    site = tmp_path / "site.yaml"
    keep = segment("keep", "k1:generic_heat_meter", "k2:generic_water_meter")
    site.write_text(site_file(port, keep, segment("old", "o1:generic_water_meter")))
    proc, err = start(tmp_path, "run", "--simulate", "-c", str(site))
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        wait_for(lambda: get(base, "/health")[0] == 200)
        wait_for(lambda: all_good(base, "k1.") and all_good(base, "o1."))
        seen = [channel_stats(base)["keep"]["transactions"]]

        site.write_text(site_file(port, keep, segment("new", "n1:generic_water_meter", "n2:generic_electricity_meter",
                                                      kind="modbus-tcp")))
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: list(channel_stats(base)) == ["keep", "new"])
        seen.append(channel_stats(base)["keep"]["transactions"])
        wait_for(lambda: all_good(base, "n1.") and all_good(base, "n2."))
        assert get(base, "/tags?prefix=o1.")[1]["tags"] == []
        assert get(base, "/tags/o1.volume_m3")[0] == 404
        assert all_good(base, "k1.") and all_good(base, "k2.")
        seen.append(channel_stats(base)["keep"]["transactions"])
        # The untouched segment kept polling: its counter only ever grew.
        assert seen == sorted(seen) and seen[-1] > seen[0]
        devices = {d["name"] for d in get(base, "/devices")[1]["devices"]}
        assert devices == {"k1", "k2", "n1", "n2"}
        config = get(base, "/health")[1]["services"]["config"]
        assert config["path"] == str(site) and config["reloads"] == 1
        assert config["last_reload"]["added"] == ["new"] and config["last_reload"]["removed"] == ["old"]
        assert config["last_reload"]["unchanged"] == 1

        # A broken file: refused, logged with FILE:LINE, nothing changes.
        site.write_text(site_file(port, keep, segment("bad", "b1:no_such_profile")))
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "the site keeps running unchanged" in err.read_text())
        assert proc.poll() is None and list(channel_stats(base)) == ["keep", "new"]
        log = err.read_text()
        assert f"reload refused: {site}:" in log and "no_such_profile" in log
        assert all_good(base, "n1.")
        before = channel_stats(base)["keep"]["transactions"]
        wait_for(lambda: channel_stats(base)["keep"]["transactions"] > before)
        refused = get(base, "/health")[1]["services"]["config"]["last_reload"]
        # The public /health counts the problems; their texts (which may quote the file) are in the log only.
        assert refused["outcome"] == "refused" and refused["problems"] >= 1
        assert "no_such_profile" not in json.dumps(refused)
    finally:
        code = stop(proc)
    log = err.read_text()
    assert code == 0, log[-3000:]
    assert "reload: channel new added (2 devices)" in log and "reload: channel old removed" in log
    assert "reload: unchanged: keep" in log and "Traceback" not in log


def test_json_logs_every_line(tmp_path):
    """With --log-format json every line on stderr is a JSON object, a reload's and shutdown's too."""
    port = free_port()
    site = tmp_path / "site.yaml"
    site.write_text(site_file(port, segment("seg", "heat:generic_heat_meter", "dead:generic_water_meter")
                              .replace("profile: generic_water_meter, poll: 300ms",
                                       "profile: generic_water_meter, poll: 300ms, sim: {fault: silent}")))
    proc, err = start(tmp_path, "--log-format", "json", "run", "--simulate", "-c", str(site))
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        wait_for(lambda: get(base, "/health")[0] == 200)
        wait_for(lambda: get(base, "/tags?prefix=dead.")[1]["tags"][0]["quality"] == "comm_loss")
        assert get(base, "/no/such/path")[0] == 404
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload: unchanged: seg" in err.read_text())
        time.sleep(0.5)
    finally:
        code = stop(proc)
    lines = err.read_text(encoding="utf-8").splitlines()
    assert code == 0 and lines
    records = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert all(set(r) >= {"ts", "level", "logger", "message"} and r["ts"].endswith("Z") for r in records)
    messages = [r["message"] for r in records]
    assert any(m.startswith("site 'reload test' running") for m in messages)
    assert any("communication lost" in m for m in messages) and "reload: unchanged: seg" in messages
    assert any(m.startswith("site 'reload test' stopped") for m in messages)
    # The config check's warning (no terminated node; "120 Ω") comes through logging, in UTF-8.
    assert any(r["logger"] == "scada.config" and "Ω" in r["message"] for r in records)


def test_json_logs_twisted_and_warnings():
    """Twisted's own log (an unhandled error in a Deferred) and Python warnings are JSON lines too."""
    code = textwrap.dedent("""\
        import gc, warnings
        from scada import logs
        logs.setup(False, "json")
        from twisted.internet import defer
        d = defer.fail(RuntimeError("опрос сорвался"))
        del d
        gc.collect()
        warnings.warn("old option", DeprecationWarning)
        import logging
        logging.getLogger("sanic.error").error("a sanic error")
        """)
    proc = subprocess.run([sys.executable, "-W", "always", "-c", code], cwd=ROOT, env=ENV, capture_output=True,
                          timeout=60)
    lines = proc.stderr.decode("utf-8").splitlines()
    assert proc.returncode == 0 and lines, proc.stderr
    records = [json.loads(line) for line in lines]
    twisted = [r for r in records if r["logger"] == "twisted"]
    assert twisted and all(r["level"] == "CRITICAL" for r in twisted)
    failure = next(r for r in twisted if "exc" in r)
    assert "опрос сорвался" in failure["exc"] and failure["message"] == "RuntimeError: опрос сорвался"
    assert any(r["logger"] == "py.warnings" and "old option" in r["message"] for r in records)
    assert any(r["logger"] == "sanic.error" for r in records)
