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

import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request

from tests.integration.servers import ServerProcess, free_port

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


class InfluxdError(RuntimeError):
    """The server did not start (the message holds the tail of its log)."""


class Influxd(ServerProcess):
    """One ``influxd`` process on temporary directories; see the module docstring."""

    name = "influxd"
    package = "influxdb"
    error = InfluxdError
    start_timeout = START_TIMEOUT
    stop_timeout = STOP_TIMEOUT
    poll_interval = 0.05

    def __init__(
        self, root: str | os.PathLike[str], binary: str | None = None, max_row_limit: int = 0
    ) -> None:
        """Prepare a server whose files all live under ``root`` (created if needed).

        ``max_row_limit`` is the ``[http]`` setting of that name: 0 returns
        whole query results, n > 0 cuts them at n rows (``"partial": true``).
        """
        super().__init__(root, binary or find_influxd(), "influxd.log")
        self.data_dir = self.root / "data"
        self.http_port = free_port()
        self.rpc_port = free_port()
        while self.rpc_port == self.http_port:
            self.rpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.config_path = self.root / "influxdb.conf"
        self.config_path.write_text(
            _CONFIG.format(
                root=self.root,
                http_port=self.http_port,
                rpc_port=self.rpc_port,
                max_row_limit=int(max_row_limit),
            )
        )

    def command(self) -> list[str]:
        """Run the server on its own configuration."""
        return [self.binary, "run", "-config", str(self.config_path)]

    def ready(self) -> bool:
        """Tell whether ``/ping`` answers."""
        return self.ping()

    def not_ready(self) -> str:
        """Say that ``/ping`` did not answer."""
        return f"did not answer {self.url}/ping"

    def ping(self) -> bool:
        """Tell whether ``/ping`` answers 204 now."""
        try:
            with urllib.request.urlopen(self.url + "/ping", timeout=1.0) as resp:
                return resp.status == 204
        except (OSError, urllib.error.URLError):
            return False

    def restart(self, timeout: float | None = None) -> None:
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
