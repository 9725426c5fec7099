"""Integration: ``scada import readings`` against a real ``scada run`` over HTTP, with an operator's token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.integration.test_run import free_port, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SCADA = [sys.executable, "-m", "scada.cli"]
TAG = "m1.volume_m3"


def scada(tmp: Path, *argv: str, token: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SCADA_TOKEN"} | {"PYTHONPATH": str(ROOT)}
    if token is not None:
        env["SCADA_TOKEN"] = token
    return subprocess.run(SCADA + list(argv), cwd=tmp, env=env, capture_output=True, text=True, timeout=60)


def get(base: str, path: str, token: str) -> dict:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """``scada run`` with auth on, one meter nobody answers for (so only manual values are usable)."""
    tmp = tmp_path_factory.mktemp("import")
    port = free_port()
    (tmp / "site.yaml").write_text(textwrap.dedent(f"""\
        site: {{name: import test, timezone: Europe/Moscow}}
        history: {{backend: sqlite, path: var/history.db, flush_interval: 200ms}}
        api: {{listen: 127.0.0.1:{port}}}
        channels:
          - name: gw
            type: modbus-rtu
            transport: {{tcp: 127.0.0.1:1}}
            devices:
              - {{name: m1, address: 1, profile: generic_water_meter, poll: 1h, serial: "ВСХ-123456"}}
        """))
    tokens = {}
    for role in ("operator", "viewer"):
        made = scada(tmp, "token", "create", "--name", role, "--role", role, "-c", "site.yaml")
        assert made.returncode == 0, made.stderr
        tokens[role] = made.stdout.strip()
    proc = subprocess.Popen(SCADA + ["run", "-c", "site.yaml"], cwd=tmp, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        wait_for(lambda: get(base, "/health", tokens["viewer"]))
        yield tmp, base, tokens
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_import_round_trip(site):
    """Imported once: stored, attributed, in history as manual; again: duplicates; lower: refused by line."""
    tmp, base, tokens = site
    local = datetime.now(ZoneInfo("Europe/Moscow")) - timedelta(minutes=10)
    when = local.strftime("%d.%m.%Y %H:%M")
    (tmp / "обход.csv").write_text(f"Заводской номер;Дата и время;Показание\nВСХ-123456;{when};12,5\n",
                                   encoding="cp1251")
    done = scada(tmp, "import", "readings", "обход.csv", "-c", "site.yaml", token=tokens["operator"])
    assert done.returncode == 0, done.stderr
    assert "1 readings accepted, 0 already stored" in done.stdout
    again = scada(tmp, "import", "readings", "обход.csv", "-c", "site.yaml", token=tokens["operator"])
    assert again.returncode == 0 and "0 readings accepted, 1 already stored" in again.stdout

    listed = get(base, f"/readings/manual?tag={TAG}", tokens["viewer"])["readings"]
    assert [(r["value"], r["user"], r["source"], r["serial"]) for r in listed] == [
        (12.5, "token:operator", "import:обход.csv", "ВСХ-123456")]
    def manual_in_history():
        points = get(base, f"/tags/{TAG}/history?from={listed[0]['ts']}", tokens["viewer"])["points"]
        return [(p["ts"], p["value"]) for p in points if p["quality"] == "manual"]

    assert wait_for(manual_in_history, deadline_s=10) == [(listed[0]["ts"], 12.5)]

    later = (local + timedelta(minutes=5)).strftime("%d.%m.%Y %H:%M")
    (tmp / "r2.csv").write_text(f"serial,date,value\nВСХ-123456,{later},10\n")
    refused = scada(tmp, "import", "readings", "r2.csv", "-c", "site.yaml", token=tokens["operator"])
    assert refused.returncode == 1
    assert "r2.csv:2: m1.volume_m3: 10.0 at" in refused.stderr and "lower than the previous reading 12.5" \
        in refused.stderr
    denied = scada(tmp, "import", "readings", "r2.csv", "-c", "site.yaml", token=tokens["viewer"])
    assert denied.returncode == 1 and "answered 403" in denied.stderr and "Traceback" not in denied.stderr


def test_unreachable_site_is_one_line(tmp_path):
    """Nothing listening at --url: one line, exit 1."""
    (tmp_path / "r.csv").write_text("tag;time;value\nm1.volume_m3;2026-11-20T10:00:00Z;1\n")
    done = scada(tmp_path, "import", "readings", "r.csv", "--url", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 1 and "cannot reach the site" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
