"""Integration scenarios that run in a child process on Twisted's asyncio reactor, as ``scada run`` has it.

A test module runs itself as a script: the child side hands its scenario to
:func:`child_main`, which installs the reactor, runs the scenario and
prints what it returned (or how it crashed) as JSON on its last line; the
test side calls :func:`run_child` and gets that result back::

    async def scenario(reactor, loop, *, port): ...    # child side

    def test_it():                                      # test side
        assert run_child(__file__, {"port": 1883})["ok"]

    if __name__ == "__main__":
        raise SystemExit(child_main(scenario, sys.argv))

Nothing here imports Twisted at module level: the reactor must be installed
before anything else imports it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

ROOT = Path(__file__).resolve().parents[2]


def child_main(scenario: Callable[..., Awaitable[Any]], argv: list[str], timeout: float = 60) -> int:
    """Run ``scenario(reactor, loop, **kwargs)`` on the asyncio reactor; print the JSON result last.

    ``kwargs`` are the JSON object ``argv[1]``, or none without it.  The
    last line printed is ``{"result": ...}``, or ``{"crash": traceback}``
    when the scenario raised or did not finish within ``timeout`` seconds.
    """
    from scada.app import install_reactor

    reactor, loop = install_reactor()
    from twisted.internet.defer import Deferred

    kwargs = json.loads(argv[1]) if len(argv) > 1 else {}
    result: dict[str, Any] = {}

    def start() -> None:
        d = Deferred.fromCoroutine(scenario(reactor, loop, **kwargs))
        d.addCallbacks(lambda value: result.update(result=value),
                       lambda failure: result.update(crash=failure.getTraceback()))
        d.addBoth(lambda _: reactor.stop())

    def too_long() -> None:
        result["crash"] = f"the scenario did not finish in {timeout:g} s"
        reactor.stop()

    reactor.callWhenRunning(start)
    reactor.callLater(timeout, too_long)
    reactor.run()
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    return 0


def run_child(script: str, kwargs: dict[str, Any] | None = None, timeout: float = 90) -> Any:
    """Run ``script`` (a :func:`child_main` script) with JSON ``kwargs``; return its scenario's result.

    Fails the calling test, with the child's stderr, when the child printed
    nothing or its scenario crashed.
    """
    args = [] if kwargs is None else [json.dumps(kwargs)]
    proc = subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    lines = proc.stdout.strip().splitlines()
    assert lines, f"the child printed nothing (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    report = json.loads(lines[-1])
    assert "crash" not in report, f"{report['crash']}\n--- stderr:\n{proc.stderr[-4000:]}"
    return report["result"]
