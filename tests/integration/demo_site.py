"""Copies of ``config/demo.yaml`` for tests that run the demo as a real process, and that process.

The demo listens on fixed ports (the modem server on 5020, its MQTT broker
on 1883); a test copy moves them to free ones so that tests never meet a
service of the machine or of another test.  :func:`start_demo` runs a copy
with its API on a free port, :func:`stop_demo` stops it as a service
manager would (SIGTERM).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

from tests.integration.test_run import ROOT, SCADA, free_port

DEMO = ROOT / "config" / "demo.yaml"


def demo_copy(directory: Path, mqtt: bool = True, history: bool = False) -> Path:
    """Write the demo to ``directory/site.yaml`` with free ports; without ``mqtt``, drop its broker.

    Without ``history`` the ``simulate_history:`` section goes too: filling
    months of history takes the demo some seconds of CPU at start, which
    tests that do not look at the past should not wait for.
    """
    text = DEMO.read_text(encoding="utf-8")
    if not history:
        text, sections = re.subn(r"(?m)^simulate_history:\n(?:[ #].*\n)*", "", text)
        assert sections == 1, "the demo's simulate_history section changed; update demo_copy"
    text, modems = re.subn(r"(?m)^  listen: 127\.0\.0\.1:5020$", f"  listen: 127.0.0.1:{free_port()}", text)
    text, brokers = re.subn(r"(?m)^mqtt: \{broker: 127\.0\.0\.1:1883, spawn: true\}$",
                            f"mqtt: {{broker: 127.0.0.1:{free_port()}, spawn: true}}" if mqtt else "", text)
    assert (modems, brokers) == (1, 1), "the demo's modem server or broker line changed; update demo_copy"
    path = directory / "site.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def start_demo(directory: Path) -> tuple[subprocess.Popen, str]:
    """Run ``scada run`` on ``directory/site.yaml`` with the API on a free port; return (process, API base URL).

    The process's output (stderr included) is kept for :func:`stop_demo`.
    """
    port = free_port()
    proc = subprocess.Popen(SCADA + ["run", "-c", "site.yaml", "--listen", f"127.0.0.1:{port}"], cwd=directory,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, f"http://127.0.0.1:{port}/api/v1"


def stop_demo(proc: subprocess.Popen, tail: int = 5000) -> str:
    """Stop the demo with SIGTERM (killed if it has not stopped in 30 s); print the end of its output, return all."""
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    print(out[-tail:])
    return out
