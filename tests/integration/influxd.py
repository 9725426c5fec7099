"""A throw-away InfluxDB 1.x server for integration tests.

`Influxd` runs ``influxd run`` with its own configuration, data, meta and WAL
directories under a temporary directory, with HTTP and RPC bound to free
ports on 127.0.0.1, nothing else listening, no usage reporting and no
``_internal`` monitor database.  It can be stopped and started again on the
same data and port, so outage and crash tests can take the database away
under a running historian::

    server = Influxd(tmp_path)
    server.start()
    ...  # talk to server.url
    server.stop()            # SIGTERM, then SIGKILL
    server.restart()         # same data, same port
    server.kill()            # SIGKILL: a crash
    server.stop()

The ``influxd`` fixture of ``tests/integration/conftest.py`` wraps it and
always stops the server, so a test run leaves no process behind.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

#: How long `Influxd.start` waits for ``/ping`` before giving up.
START_TIMEOUT = 30.0
#: How long `Influxd.stop` waits after SIGTERM before SIGKILL.
STOP_TIMEOUT = 10.0

_CONFIG = """\
reporting-enabled = false
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"
  retention-autocreate = true
  logging-enabled = false

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  wal-fsync-delay = "0s"
  index-version = "inmem"
  query-log-enabled = false
  trace-logging-enabled = false

[coordinator]
  write-timeout = "10s"

[retention]
  enabled = false

[shard-precreation]
  enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false
  suppress-write-log = true
  pprof-enabled = false
  https-enabled = false
  unix-socket-enabled = false
  max-row-limit = {max_row_limit}

[logging]
  level = "warn"
  suppress-logo = true

[ifql]
  enabled = false

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false

[continuous_queries]
  enabled = false
"""


def find_influxd() -> str | None:
    """Return the path of the ``influxd`` binary, or None if it is not installed."""
    return shutil.which("influxd") or (
        "/usr/bin/influxd" if os.access("/usr/bin/influxd", os.X_OK) else None
    )


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Servers started and not yet stopped: stopped at interpreter exit, so an
# interrupted test run does not leave them behind.
_RUNNING: set[Influxd] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        server.kill()


def _child_setup() -> None:
    """In the child: a session of its own, and SIGKILL when the test process dies.

    The new session keeps a Ctrl-C aimed at pytest from reaching influxd
    before pytest can stop it; the parent-death signal (Linux) covers a
    test process that is itself killed and cannot run its cleanup.
    """
    os.setsid()
    with contextlib.suppress(Exception):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


class InfluxdError(RuntimeError):
    """The server did not start (the message holds the tail of its log)."""


class Influxd:
    """One ``influxd`` process on temporary directories; see the module docstring."""

    def __init__(
        self, root: str | os.PathLike[str], binary: str | None = None, max_row_limit: int = 0
    ) -> None:
        """Prepare a server whose files all live under ``root`` (created if needed).

        ``max_row_limit`` is the ``[http]`` setting of that name: 0 returns
        whole query results, n > 0 cuts them at n rows (``"partial": true``).
        """
        self.binary = binary or find_influxd()
        if self.binary is None:
            raise InfluxdError("influxd is not installed (apt-get install influxdb)")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.root / "data"
        self.http_port = free_port()
        self.rpc_port = free_port()
        while self.rpc_port == self.http_port:
            self.rpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.config_path = self.root / "influxdb.conf"
        self.log_path = self.root / "influxd.log"
        self.config_path.write_text(
            _CONFIG.format(
                root=self.root,
                http_port=self.http_port,
                rpc_port=self.rpc_port,
                max_row_limit=int(max_row_limit),
            )
        )
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Return the process id while the server runs, else None."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    @property
    def running(self) -> bool:
        """Tell whether the server process is alive."""
        return self.pid is not None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the server and return once ``/ping`` answers.

        Raises `InfluxdError` with the tail of the server's log if it exits
        or does not answer within ``timeout`` seconds (the process is then
        stopped).
        """
        if self.running:
            return
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self._proc = subprocess.Popen(
                [self.binary, "run", "-config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_child_setup,  # noqa: PLW1509 - no threads start servers
            )
        finally:
            log.close()
        _RUNNING.add(self)
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                _RUNNING.discard(self)
                raise InfluxdError(f"influxd exited with {code} at start:\n{self.log_tail()}")
            if self.ping():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise InfluxdError(
                    f"influxd did not answer {self.url}/ping within {timeout:g} s:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def ping(self) -> bool:
        """Tell whether ``/ping`` answers 204 now."""
        try:
            with urllib.request.urlopen(self.url + "/ping", timeout=1.0) as resp:
                return resp.status == 204
        except (OSError, urllib.error.URLError):
            return False

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the server: SIGTERM by pid, wait, then SIGKILL.  Does nothing if stopped."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        self._proc = None
        _RUNNING.discard(self)

    def kill(self) -> None:
        """Kill the server with SIGKILL (a crash) and reap it."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        self._proc = None
        _RUNNING.discard(self)

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """Stop and start again on the same data directory and port."""
        self.stop()
        self.start(timeout)

    def query(self, q: str, db: str | None = None, method: str = "GET") -> dict:
        """Run InfluxQL ``q`` with the standard library and return the decoded JSON."""
        return self.query_url(self.url, q, db, method)

    @staticmethod
    def query_url(url: str, q: str, db: str | None = None, method: str = "GET") -> dict:
        """Run InfluxQL ``q`` on the server at ``url`` (blocking) and return the decoded JSON."""
        params = {"q": q, "epoch": "u"}
        if db is not None:
            params["db"] = db
        data = urllib.parse.urlencode(params)
        if method == "GET":
            req = urllib.request.Request(f"{url}/query?{data}")
        else:
            req = urllib.request.Request(f"{url}/query", data=data.encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read() or b"{}")

    def log_tail(self, lines: int = 30) -> str:
        """Return the last ``lines`` lines of the server's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Influxd:
        """Start the server."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the server."""
        self.stop()
