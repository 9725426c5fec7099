"""``scada grafana push`` against a local HTTP server that records every request and answers like Grafana.

The server (the standard library's ``http.server`` in a thread, on a free
port of 127.0.0.1, stopped after each test) plays Grafana's HTTP API for
data sources, folders and dashboards.  The tests check method, path,
``Authorization: Bearer <token>`` and body of each request for a fresh
Grafana and for one that has the data source and folder already; and that
401, 403, an unreachable port and a server that is not Grafana end in one
line on stderr and exit status 1, never a traceback.  One run goes through
the installed ``scada`` command in a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from scada import cli
from tests.integration.servers import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo.yaml"
SCADA = Path(sys.executable).with_name("scada")
TOKEN = "glsa_test_0123456789"
DASHBOARDS = ["scada-overview", "scada-building-b1", "scada-building-b2", "scada-building-b3", "scada-building-b4",
              "scada-building-b5", "scada-channels"]

INFLUX_SITE = """\
site: {name: influx site, timezone: Europe/Moscow}
history: {backend: influxdb, url: "http://influxdb:8086", database: scada, username: reader, password: "p@ss"}
channels:
  - name: seg
    type: modbus-rtu
    transport: {tcp: 127.0.0.1:1}
    devices:
      - {name: h1, address: 1, profile: generic_heat_meter, poll: 10s}
"""


class Grafana:
    """A recording stand-in for Grafana's HTTP API; ``answer(method, path, body)`` decides each reply."""

    def __init__(self, answer: Callable[[str, str, Any], tuple[int, Any]]) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer = answer
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                recorder.requests.append({"method": self.command, "path": self.path,
                                          "auth": self.headers.get("Authorization"), "body": body})
                status, reply = recorder.answer(self.command, self.path, body)
                data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if isinstance(reply, bytes) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:  # keep the test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A thread: the standard library's server blocks, and the client under test is synchronous.
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Grafana":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def grafana_like(existing: bool = False, prefix: str = "") -> Callable[[str, str, Any], tuple[int, Any]]:
    """Answers of a Grafana with (``existing``) or without the data source and folder."""

    def answer(method: str, path: str, body: Any) -> tuple[int, Any]:
        path = path.removeprefix(prefix)
        if method == "GET" and path == "/api/datasources/uid/scada-influxdb":
            if existing:
                return 200, {"uid": "scada-influxdb", "id": 3}
            return 404, {"message": "data source not found"}
        if method == "POST" and path == "/api/datasources":
            return 200, {"id": 3, "message": "Datasource added", "name": body["name"]}
        if method == "PUT" and path == "/api/datasources/uid/scada-influxdb":
            return 200, {"id": 3, "message": "Datasource updated"}
        if method == "GET" and path == "/api/folders/scada":
            return (200, {"uid": "scada", "title": "SCADA"}) if existing else (404, {"message": "folder not found"})
        if method == "POST" and path == "/api/folders":
            return 200, {"uid": body["uid"], "title": body["title"], "id": 7}
        if method == "POST" and path == "/api/dashboards/db":
            uid = body["dashboard"]["uid"]
            return 200, {"id": 1, "uid": uid, "url": f"{prefix}/d/{uid}/slug", "status": "success", "version": 2}
        return 404, {"message": "Not found"}

    return answer


@pytest.fixture
def fresh() -> Iterator[Grafana]:
    with Grafana(grafana_like()) as server:
        yield server


def run(argv: list[str], capsys) -> tuple[int, list[str], list[str]]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out.splitlines(), [line for line in err.splitlines() if not line.startswith("warning: ")]


def test_push_to_a_fresh_grafana(fresh, capsys):
    """Data source created, folder created, every dashboard saved in it with overwrite; all with the token."""
    code, out, err = run(["grafana", "push", "--url", fresh.url, "--token", TOKEN, "-c", str(DEMO)], capsys)
    assert code == 0 and err == []
    calls = [(r["method"], r["path"]) for r in fresh.requests]
    assert calls == [("GET", "/api/datasources/uid/scada-influxdb"), ("POST", "/api/datasources"),
                     ("GET", "/api/folders/scada"), ("POST", "/api/folders")] + [("POST", "/api/dashboards/db")] * 7
    assert {r["auth"] for r in fresh.requests} == {f"Bearer {TOKEN}"}
    source = fresh.requests[1]["body"]
    assert (source["uid"], source["name"], source["type"], source["access"]) == (
        "scada-influxdb", "SCADA InfluxDB", "influxdb", "proxy")
    assert source["jsonData"] == {"dbName": "scada", "httpMode": "POST", "version": "InfluxQL"}
    assert fresh.requests[3]["body"] == {"uid": "scada", "title": "SCADA"}
    saved = [r["body"] for r in fresh.requests[4:]]
    assert [b["dashboard"]["uid"] for b in saved] == DASHBOARDS
    assert all(b["overwrite"] is True and b["folderUid"] == "scada" and b["dashboard"]["id"] is None for b in saved)
    assert saved[0]["dashboard"]["title"] == "Обзор района" and saved[0]["dashboard"]["panels"]
    assert out[:2] == ["data source scada-influxdb (SCADA InfluxDB): created, http://127.0.0.1:8086",
                       "folder SCADA (scada): created"]
    assert out[2] == f"dashboard scada-overview (Обзор района): saved, {fresh.url}/d/scada-overview/slug"
    assert len(out) == 2 + 7


def test_push_updates_what_exists(tmp_path, capsys):
    """An existing data source is updated in place by uid; an existing folder is used; credentials are sent."""
    site = tmp_path / "site.yaml"
    site.write_text(INFLUX_SITE, encoding="utf-8")
    with Grafana(grafana_like(existing=True, prefix="/grafana")) as server:
        code, out, err = run(["grafana", "push", "--url", server.url + "/grafana", "--token", TOKEN, "-c", str(site),
                              "--folder", "Учёт", "--lang", "en"], capsys)
        assert code == 0 and err == []
        calls = [(r["method"], r["path"]) for r in server.requests]
    folder = "uchyot-" + hashlib.sha1("учёт".encode()).hexdigest()[:8]
    assert calls[:3] == [("GET", "/grafana/api/datasources/uid/scada-influxdb"),
                         ("PUT", "/grafana/api/datasources/uid/scada-influxdb"),
                         ("GET", f"/grafana/api/folders/{folder}")]
    # Another folder than the existing SCADA: created, and the dashboards go there.
    assert calls[3:] == [("POST", "/grafana/api/folders")] + [("POST", "/grafana/api/dashboards/db")] * 3
    assert server.requests[3]["body"] == {"uid": folder, "title": "Учёт"}
    assert {r["body"]["folderUid"] for r in server.requests[4:]} == {folder}
    source = server.requests[1]["body"]
    assert (source["url"], source["user"], source["secureJsonData"]) == (
        "http://influxdb:8086", "reader", {"password": "p@ss"})
    assert out[0] == "data source scada-influxdb (SCADA InfluxDB): updated, http://influxdb:8086"
    assert out[-1] == f"dashboard scada-channels (Channel health): saved, {server.url}/grafana/d/scada-channels/slug"


def test_an_existing_folder_is_used(tmp_path, capsys):
    site = tmp_path / "site.yaml"
    site.write_text(INFLUX_SITE, encoding="utf-8")
    with Grafana(grafana_like(existing=True)) as server:
        code, out, err = run(["grafana", "push", "--url", server.url, "--token", TOKEN, "-c", str(site)], capsys)
    assert code == 0 and err == []
    assert [(r["method"], r["path"]) for r in server.requests][2:] == [
        ("GET", "/api/folders/scada")] + [("POST", "/api/dashboards/db")] * 3
    assert out[1] == "folder SCADA (scada): exists"


def test_push_through_the_installed_command(fresh):
    """The console script, as an operator runs it (token from the environment)."""
    env = {"PATH": "/usr/bin:/bin", "GRAFANA_TOKEN": TOKEN, "HOME": str(ROOT)}
    done = subprocess.run([str(SCADA), "grafana", "push", "--url", fresh.url, "-c", str(DEMO),
                           "--influx-url", "http://influxdb:8086"],
                          capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 9 and "Traceback" not in done.stderr
    assert {r["auth"] for r in fresh.requests} == {f"Bearer {TOKEN}"}
    assert fresh.requests[1]["body"]["url"] == "http://influxdb:8086"


def refusing(status: int, message: str, on: str = "") -> Callable[[str, str, Any], tuple[int, Any]]:
    """A Grafana that answers ``status`` to requests whose path contains ``on`` (all of them by default)."""
    normal = grafana_like()

    def answer(method: str, path: str, body: Any) -> tuple[int, Any]:
        if on in path:
            return status, {"message": message}
        return normal(method, path, body)

    return answer


@pytest.mark.parametrize("answer, expected", [
    (refusing(401, "invalid API key"),
     "refused the token: 401 Unauthorized (looking up data source scada-influxdb); give a service account token "
     "with --token or GRAFANA_TOKEN"),
    (refusing(403, "You'll need additional permissions to perform this action. Permissions needed: "
                   "datasources:create", on="/api/datasources"),
     "does not let this token do that: 403 Forbidden (looking up data source scada-influxdb: You'll need "
     "additional permissions"),
    (refusing(500, "database is locked", on="/api/dashboards/db"),
     "failed: 500 (saving dashboard scada-overview): database is locked"),
    (lambda method, path, body: (200, b"<html>not grafana</html>") if path.endswith("scada-influxdb")
     else (404, {"message": "x"}),
     "does not answer like Grafana's API (looking up data source scada-influxdb)"),
])
def test_refusals_are_one_line(capsys, answer, expected):
    with Grafana(answer) as server:
        code, out, err = run(["grafana", "push", "--url", server.url, "--token", TOKEN, "-c", str(DEMO)], capsys)
    assert code == 1 and len(err) == 1, err
    assert expected in err[0] and "Traceback" not in err[0]


def test_an_unreachable_grafana_is_one_line(capsys):
    port = free_port()
    code, out, err = run(["grafana", "push", "--url", f"http://127.0.0.1:{port}", "--token", TOKEN, "-c", str(DEMO)],
                         capsys)
    assert code == 1 and out == []
    assert err == [f"cannot reach Grafana at http://127.0.0.1:{port}: Connection refused "
                   "(looking up data source scada-influxdb)"]


def test_an_unknown_host_is_one_line(capsys):
    code, out, err = run(["grafana", "push", "--url", "http://grafana.invalid:3000", "--token", TOKEN,
                          "-c", str(DEMO)], capsys)
    assert code == 1 and len(err) == 1
    assert err[0].startswith("cannot reach Grafana at http://grafana.invalid:3000: ")
