"""Fixtures for tests against real servers and processes.

``influxd``: a fresh InfluxDB 1.x server per test (see `tests.integration.influxd`),
always stopped afterwards.  Tests outside this folder import it::

    from tests.integration.conftest import influxd  # noqa: F401 - pytest fixture
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.integration.influxd import Influxd, find_influxd

#: Set (to anything but "" or "0") to make a missing influxd a failure, not a skip.
REQUIRE_ENV = "SCADA_REQUIRE_INFLUXD"


def influxd_required() -> bool:
    """Tell whether the environment demands a real influxd (``make test`` does)."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def influxd_binary() -> str:
    """Return the influxd binary, or skip (or fail, when required) the test if there is none."""
    binary = find_influxd()
    if binary is None:
        if influxd_required():
            pytest.fail(f"{REQUIRE_ENV} is set but influxd is not installed (apt-get install influxdb)")
        pytest.skip(f"influxd is not installed (apt-get install influxdb; `make test` does it); "
                    f"set {REQUIRE_ENV}=1 to fail instead of skipping")
    return binary


@pytest.fixture
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """Start a throw-away influxd on free 127.0.0.1 ports; stop it after the test.

    The server object has ``url``, ``pid``, ``data_dir``, ``start()``,
    ``stop()`` (SIGTERM, then SIGKILL), ``kill()`` and ``restart()`` (same
    data and port), and ``query(q, db)`` for checks through the standard
    library.
    """
    server = Influxd(tmp_path_factory.mktemp("influxd"), influxd_binary())
    server.start()
    try:
        yield server
    finally:
        server.stop()
