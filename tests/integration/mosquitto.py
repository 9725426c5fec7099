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

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

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


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Brokers started and not yet stopped: killed at interpreter exit.
_RUNNING: set[Mosquitto] = set()


@atexit.register
def _stop_all() -> None:
    for broker in list(_RUNNING):
        broker.kill()


def _child_setup() -> None:
    """In the child: a session of its own, and SIGKILL when the test process dies (Linux)."""
    os.setsid()
    with contextlib.suppress(Exception):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


class MosquittoError(RuntimeError):
    """The broker did not start (the message holds the tail of its log)."""


class Mosquitto:
    """One ``mosquitto`` process on a free 127.0.0.1 port; see the module docstring."""

    def __init__(self, root: str | os.PathLike[str], binary: str | None = None, port: int | None = None) -> None:
        """Prepare a broker whose files live under ``root``; ``port`` None picks a free one."""
        self.binary = binary or find_mosquitto()
        if self.binary is None:
            raise MosquittoError("mosquitto is not installed (apt-get install mosquitto)")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.config_path = self.root / "mosquitto.conf"
        self.log_path = self.root / "mosquitto.log"
        self.config_path.write_text(_CONFIG.format(port=self.port))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Return the process id while the broker runs, else None."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    @property
    def running(self) -> bool:
        """Tell whether the broker process is alive."""
        return self.pid is not None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the broker and return once its port accepts connections.

        Raises `MosquittoError` with the tail of the log if it exits or the
        port does not open within ``timeout`` seconds (the process is then
        stopped).
        """
        if self.running:
            return
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self._proc = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_child_setup,  # noqa: PLW1509 - no threads start brokers
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
                raise MosquittoError(f"mosquitto exited with {code} at start:\n{self.log_tail()}")
            if self.accepts():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise MosquittoError(f"mosquitto did not open port {self.port} within {timeout:g} s:\n"
                                     f"{self.log_tail()}")
            time.sleep(0.02)

    def accepts(self) -> bool:
        """Tell whether the broker's port accepts a TCP connection now."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the broker: SIGTERM by pid, wait, then SIGKILL.  Does nothing if stopped."""
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
        """Kill the broker with SIGKILL and reap it."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        self._proc = None
        _RUNNING.discard(self)

    def log_tail(self, lines: int = 30) -> str:
        """Return the last ``lines`` lines of the broker's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Mosquitto:
        """Start the broker."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the broker."""
        self.stop()
