"""asyncio tasks that Twisted code starts and stops: what the MQTT subscriber and the simulator's publisher share.

Both run one long-lived asyncio task on the loop Twisted's asyncio reactor
shares with them.  ``start(loop)`` schedules it on :func:`event_loop`;
``stop()`` cancels it and returns a Twisted ``Deferred`` (:func:`stop_task`),
``aclose()`` is the asyncio twin (:func:`cancel_and_wait`).  The
cancellation asked for is how the task ends, not an error.

Twisted is imported only when a Deferred is made, so importing this module
does not import it.
"""

from __future__ import annotations

import asyncio
import contextlib


def event_loop(loop: asyncio.AbstractEventLoop | None = None) -> asyncio.AbstractEventLoop:
    """Return ``loop``; ``None`` gives the running loop, else the current one."""
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = asyncio.get_event_loop_policy().get_event_loop()
    return loop


def cancelled_is_done(failure):
    """Swallow the cancellation a ``stop()`` asked for; pass anything else on."""
    from twisted.internet import defer

    failure.trap(asyncio.CancelledError, defer.CancelledError)


def stop_task(task: asyncio.Task | None):
    """Cancel ``task``; return a ``Deferred`` that fires with ``None`` once it has ended.

    A task that is ``None`` or already done gives a Deferred that has fired.
    Its cancellation is swallowed; any other error it ended with is the
    Deferred's failure.
    """
    from twisted.internet import defer

    if task is None or task.done():
        return defer.succeed(None)
    task.cancel()
    d = defer.Deferred.fromFuture(task)
    d.addErrback(cancelled_is_done)
    return d


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel ``task`` (``None``: nothing to do) and wait for it to end, its cancellation swallowed."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
