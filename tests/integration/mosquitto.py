"""A throw-away Mosquitto MQTT broker for integration tests.

`Mosquitto` runs the ``mosquitto`` binary (Debian package ``mosquitto``,
``/usr/sbin/mosquitto``) with its own configuration: one listener on
127.0.0.1 on a free port, anonymous clients allowed, no persistence, the log
written to a file under a temporary directory.  It is stopped by PID
(SIGTERM, then SIGKILL), and can be started again on the same port, so a
test can take the broker away under a running client::

    broker = Mosquitto(tmp_path)
    broker.start()           # returns once the port accepts connections
    ...                      # talk to 127.0.0.1:broker.port
    broker.stop()
    broker.start()           # same port again

Installing the Debian package may start a system broker on 1883; these
brokers never use that port.  Without the binary, `mosquitto_binary` skips
the test, or fails it when ``SCADA_REQUIRE_MOSQUITTO=1``.
"""

from __future__ import annotations

import os
import shutil
import socket

from tests.integration.servers import ServerProcess, free_port

#: Set (to anything but "" or "0") to make a missing mosquitto a failure, not a skip.
REQUIRE_ENV = "SCADA_REQUIRE_MOSQUITTO"
#: How long `Mosquitto.start` waits for the port before giving up.
START_TIMEOUT = 15.0
#: How long `Mosquitto.stop` waits after SIGTERM before SIGKILL.
STOP_TIMEOUT = 5.0

_CONFIG = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence false
log_dest stderr
log_type error
log_type warning
log_type notice
connection_messages true
"""


def find_mosquitto() -> str | None:
    """Return the path of the ``mosquitto`` binary, or None if it is not installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for path in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(path, os.X_OK):
            return path
    return None


def mosquitto_required() -> bool:
    """Tell whether the environment demands a real broker."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def mosquitto_binary() -> str:
    """Return the broker binary, or skip (or fail, when required) the calling test if there is none."""
    import pytest

    binary = find_mosquitto()
    if binary is None:
        if mosquitto_required():
            pytest.fail(f"{REQUIRE_ENV} is set but mosquitto is not installed (apt-get install mosquitto)")
        pytest.skip(f"mosquitto is not installed (apt-get install mosquitto); set {REQUIRE_ENV}=1 to fail "
                    "instead of skipping")
    return binary


class MosquittoError(RuntimeError):
    """The broker did not start (the message holds the tail of its log)."""


class Mosquitto(ServerProcess):
    """One ``mosquitto`` process on a free 127.0.0.1 port; see the module docstring."""

    name = "mosquitto"
    package = "mosquitto"
    error = MosquittoError
    start_timeout = START_TIMEOUT
    stop_timeout = STOP_TIMEOUT
    poll_interval = 0.02

    def __init__(self, root: str | os.PathLike[str], binary: str | None = None, port: int | None = None) -> None:
        """Prepare a broker whose files live under ``root``; ``port`` None picks a free one."""
        super().__init__(root, binary or find_mosquitto(), "mosquitto.log")
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.config_path = self.root / "mosquitto.conf"
        self.config_path.write_text(_CONFIG.format(port=self.port))

    def command(self) -> list[str]:
        """Run the broker on its own configuration."""
        return [self.binary, "-c", str(self.config_path)]

    def ready(self) -> bool:
        """Tell whether the broker's port accepts connections."""
        return self.accepts()

    def not_ready(self) -> str:
        """Say that the port did not open."""
        return f"did not open port {self.port}"

    def accepts(self) -> bool:
        """Tell whether the broker's port accepts a TCP connection now."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False
