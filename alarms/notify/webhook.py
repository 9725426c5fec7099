# -*- test-case-name: tests.integration.test_notify_servers -*-
"""Webhook channel: POST the notification as JSON with Twisted's HTTP client.

The body is the message's ``payload``: ``{"site", "event", "alarm",
"entry", "ts", "text"}`` (``text`` is the one-line subject, which chat
services such as Mattermost or Rocket.Chat show as is).  One call is one
attempt bounded by ``timeout``; :class:`~alarms.notify.dispatcher.Notifier`
does the retrying.  What a retry may cure (no connection, a timeout, a
dropped connection, HTTP 5xx, 408 and 429) fails with a retryable
:class:`SendError`; any other answer that is not 2xx (a 4xx, a redirect,
which is not followed) fails for good.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, error
from twisted.web.client import Agent, HTTPConnectionPool, ResponseFailed, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from alarms.notify.dispatcher import Message, SendError

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred
    from twisted.internet.interfaces import IReactorTime

_USER_AGENT = b"scada-metering notifier"
# Longest piece of a server's answer quoted in a journal line.
_MAX_ANSWER = 200
#: Client errors that say "later", not "never".
RETRY_CODES = frozenset({408, 429})


class _Timeout(Exception):
    """The server gave no complete answer in time."""


@implementer(IBodyProducer)
class _Body:
    """A request body already in memory, written in one go (no cooperator, no global reactor)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer: Any) -> Deferred[None]:  # noqa: N802 - Twisted interface
        """Write the whole body."""
        consumer.write(self._data)
        return defer.succeed(None)

    def pauseProducing(self) -> None:  # noqa: N802 - Twisted interface
        """Nothing to pause."""

    def resumeProducing(self) -> None:  # noqa: N802 - Twisted interface
        """Nothing to resume."""

    def stopProducing(self) -> None:  # noqa: N802 - Twisted interface
        """Nothing to stop."""


def encode(message: Message) -> bytes:
    """Return the request body of ``message``: its payload as UTF-8 JSON (Cyrillic unescaped)."""
    return json.dumps(message.payload, ensure_ascii=False, default=str).encode("utf-8")


class WebhookSender:
    """The ``webhook`` channel: one POST per :meth:`send`, on the injected reactor.

    Connections are not kept between notifications (they are rare); an
    https URL needs Twisted's TLS extras (``pip install 'twisted[tls]'``).
    """

    channel = "webhook"

    def __init__(self, reactor: IReactorTime, timeout: float = 10.0, agent: Any = None) -> None:
        """Prepare the client; ``timeout`` bounds each attempt (connect, send, answer), in seconds."""
        if not timeout > 0:
            raise ValueError(f"webhook timeout must be positive, not {timeout!r}")
        self._reactor = reactor
        self.timeout = float(timeout)
        self._agent = agent or Agent(reactor, connectTimeout=self.timeout,
                                     pool=HTTPConnectionPool(reactor, persistent=False))

    def send(self, address: str, message: Message) -> Deferred[None]:
        """POST ``message`` to the URL ``address``; fire with None on 2xx, else fail with :class:`SendError`."""
        return defer.Deferred.fromCoroutine(self._send(address, message))

    async def _send(self, url: str, message: Message) -> None:
        headers = Headers({
            b"User-Agent": [_USER_AGENT],
            b"Content-Type": [b"application/json; charset=utf-8"],
        })
        try:
            code, answer = await self._exchange(url.encode("utf-8"), headers, encode(message))
        except _Timeout:
            raise SendError(f"no answer within {self.timeout:g} s") from None
        except (error.ConnectError, error.DNSLookupError, error.ConnectionLost, ResponseFailed,
                error.TimeoutError) as exc:
            raise SendError(f"cannot reach {_where(url)}: {_reason(exc)}") from None
        except (SendError, defer.CancelledError):
            raise
        except Exception as exc:  # noqa: BLE001 - TLS trouble and the like may pass
            raise SendError(f"request to {_where(url)} failed: {_reason(exc)}") from None
        if 200 <= code < 300:
            return
        text = answer.decode("utf-8", "replace").strip()
        if len(text) > _MAX_ANSWER:
            text = text[:_MAX_ANSWER] + "…"
        reason = f"HTTP {code}" + (f": {text}" if text else "")
        if 300 <= code < 400:
            raise SendError(reason + " (redirects are not followed; configure the final URL)", retry=False)
        raise SendError(reason, retry=code >= 500 or code in RETRY_CODES)

    async def _exchange(self, uri: bytes, headers: Headers, body: bytes) -> tuple[int, bytes]:
        """One POST and its answer, cancelled after ``timeout`` seconds."""

        async def go() -> tuple[int, bytes]:
            response = await self._agent.request(b"POST", uri, headers, _Body(body))
            data = await readBody(response)
            return response.code, data

        d = defer.Deferred.fromCoroutine(go())
        expired: list[bool] = []

        def expire() -> None:
            expired.append(True)
            d.cancel()

        timer = self._reactor.callLater(self.timeout, expire)
        try:
            return await d
        except Exception:
            if expired:
                raise _Timeout() from None
            raise
        finally:
            if timer.active():
                timer.cancel()


def _where(url: str) -> str:
    """Return the URL without its query (which may hold a token) for messages."""
    return url.split("?", 1)[0]


def _reason(exc: BaseException) -> str:
    """Return a short text for a Twisted error, unwrapping the failures some carry."""
    reasons = getattr(exc, "reasons", None)
    if reasons:
        return "; ".join(str(getattr(r, "value", r)) for r in reasons)
    return str(exc) or type(exc).__name__
