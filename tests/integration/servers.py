"""Throw-away server processes for integration tests: what `Mosquitto` and `Influxd` share.

A :class:`ServerProcess` subclass says how to run its binary
(:meth:`~ServerProcess.command`), how to tell that it serves
(:meth:`~ServerProcess.ready`) and what it failed to do when it does not
(:meth:`~ServerProcess.not_ready`).  The base class starts the process with
its output appended to a log file, in a session of its own that dies with
the test process, waits until it is ready, stops it by PID (SIGTERM, then
SIGKILL) or kills it, and kills whatever is still running at interpreter
exit, so an interrupted test run leaves no process behind.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Self


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Servers started and not yet stopped: killed at interpreter exit.
_RUNNING: set[ServerProcess] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        server.kill()


def _child_setup() -> None:
    """In the child: a session of its own, and SIGKILL when the test process dies.

    The new session keeps a Ctrl-C aimed at pytest from reaching the server
    before pytest can stop it; the parent-death signal (Linux) covers a
    test process that is itself killed and cannot run its cleanup.
    """
    os.setsid()
    with contextlib.suppress(Exception):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


class ServerProcess:
    """One server process whose files live under ``root``; see the module docstring."""

    #: The binary's name, for messages.
    name = "server"
    #: The Debian package that installs the binary, for messages.
    package = "?"
    #: What :meth:`start` raises when the server does not come up.
    error: type[Exception] = RuntimeError
    #: Default seconds :meth:`start` waits for :meth:`ready`.
    start_timeout = 15.0
    #: Default seconds :meth:`stop` waits after SIGTERM before SIGKILL.
    stop_timeout = 5.0
    #: Seconds between two :meth:`ready` checks while starting.
    poll_interval = 0.05

    def __init__(self, root: str | os.PathLike[str], binary: str | None, log_name: str) -> None:
        """Keep the server's files under ``root`` (created if needed), its output in ``root/log_name``.

        ``binary`` None (not installed) raises :attr:`error`.
        """
        if binary is None:
            raise self.error(f"{self.name} is not installed (apt-get install {self.package})")
        self.binary = binary
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_path = self.root / log_name
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """Return the command line that runs the server."""
        raise NotImplementedError

    def ready(self) -> bool:
        """Tell whether the server serves now."""
        raise NotImplementedError

    def not_ready(self) -> str:
        """Say what the server did not do in time, after its name (``did not open port 1234``)."""
        raise NotImplementedError

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

    def start(self, timeout: float | None = None) -> None:
        """Start the server and return once it is :meth:`ready`.

        Raises :attr:`error` with the tail of the server's log if it exits or
        is not ready within ``timeout`` seconds (default
        :attr:`start_timeout`; the process is then stopped).
        """
        if self.running:
            return
        if timeout is None:
            timeout = self.start_timeout
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self._proc = subprocess.Popen(
                self.command(),
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
                raise self.error(f"{self.name} exited with {code} at start:\n{self.log_tail()}")
            if self.ready():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise self.error(f"{self.name} {self.not_ready()} within {timeout:g} s:\n{self.log_tail()}")
            time.sleep(self.poll_interval)

    def stop(self, timeout: float | None = None) -> None:
        """Stop the server: SIGTERM by pid, wait ``timeout`` s (default :attr:`stop_timeout`), then SIGKILL.

        Does nothing if stopped.
        """
        self._end(signal.SIGTERM, self.stop_timeout if timeout is None else timeout)

    def kill(self) -> None:
        """Kill the server with SIGKILL (a crash) and reap it."""
        self._end(signal.SIGKILL, None)

    def _end(self, sig: int, timeout: float | None) -> None:
        """Send ``sig`` by pid and reap the process, with SIGKILL after ``timeout`` s (None: wait)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        self._proc = None
        _RUNNING.discard(self)

    def log_tail(self, lines: int = 30) -> str:
        """Return the last ``lines`` lines of the server's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        """Start the server."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the server."""
        self.stop()
