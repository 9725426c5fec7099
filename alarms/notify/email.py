# -*- test-case-name: tests.integration.test_notify_servers -*-
"""E-mail channel: a plain-text UTF-8 message over SMTP with Twisted's ESMTP client.

The message is built with the standard library's :mod:`email` package
(:func:`build_message`: UTF-8 subject and body, ``Auto-Submitted:
auto-generated`` so vacation responders stay quiet) and sent with
``twisted.mail.smtp.ESMTPSenderFactory`` on the injected reactor.  With
``starttls`` the server must offer STARTTLS and present a certificate
valid for ``host``; with ``username``/``password`` the client logs in
(the first of CRAM-MD5, LOGIN and PLAIN that the server offers).

One :meth:`EmailSender.send` is one attempt bounded by ``timeout``; the
notifier retries.  Connection trouble, timeouts and SMTP 4xx replies are
worth a retry; 5xx replies (an unknown mailbox, a refused login, a
server without the required STARTTLS) are not.
"""

from __future__ import annotations

import sys
from email.message import EmailMessage
from email.policy import default as _POLICY
from email.utils import formataddr, formatdate, make_msgid
from io import BytesIO
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from alarms.notify.dispatcher import Message, SendError

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred
    from twisted.internet.interfaces import IReactorTime


def build_message(sender: str, to: str, subject: str, text: str, ts: float, site: str = "") -> bytes:
    """Return an RFC 5322 message (``\\n`` line ends, as Twisted's client wants) for one recipient.

    ``site`` becomes the display name of ``From``; ``ts`` (Unix seconds) the ``Date``.
    """
    message = EmailMessage(policy=_POLICY)
    message["From"] = formataddr((site, sender)) if site else sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(ts, usegmt=True)
    # With an explicit domain make_msgid does not look up this host's name.
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text, charset="utf-8")
    return message.as_bytes()


def _smtp() -> Any:
    """Return ``twisted.mail.smtp``.

    That module imports the global reactor (and resolves this host's name)
    when it is first imported, so it is imported only where a reactor is
    already installed: never at module level here.
    """
    from twisted.mail import smtp

    return smtp


class EmailSender:
    """The ``email`` channel: one SMTP transaction per :meth:`send`.

    ``sender`` is the envelope and ``From`` address; ``site`` its display name.
    """

    channel = "email"

    def __init__(
        self,
        reactor: IReactorTime,
        host: str,
        port: int = 25,
        sender: str = "scada@localhost",
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 30.0,
        site: str = "",
    ) -> None:
        """Check the settings; raise ``RuntimeError`` if STARTTLS is asked for but TLS support is missing."""
        if not timeout > 0:
            raise ValueError(f"SMTP timeout must be positive, not {timeout!r}")
        if (username is None) != (password is None):
            raise ValueError("SMTP username and password go together")
        if starttls:
            try:
                import OpenSSL  # noqa: F401
                import service_identity  # noqa: F401
            except ImportError:
                raise RuntimeError(
                    "notifications.smtp.starttls needs Twisted's TLS extras: pip install 'twisted[tls]'"
                ) from None
        self._reactor = reactor
        self.host = host
        self.port = int(port)
        self.sender = sender
        self.site = site
        self._username = username.encode("utf-8") if username is not None else None
        self._password = password.encode("utf-8") if password is not None else None
        self.starttls = bool(starttls)
        self.timeout = float(timeout)
        if "twisted.internet.reactor" in sys.modules:
            # Pay the import (and its host name lookup) at start-up rather
            # than on the first alarm; without an installed reactor (unit
            # tests on a Clock) importing would install the default one.
            _smtp()

    def send(self, address: str, message: Message) -> Deferred[None]:
        """Mail ``message`` to ``address``; fire with None once the server took it, else fail with SendError."""
        smtp = _smtp()
        data = build_message(self.sender, address, message.subject, message.text, self._reactor.seconds(), self.site)
        result: Deferred[None] = defer.Deferred(lambda _: stop())
        done = defer.Deferred()
        context = None
        if self.starttls:
            from twisted.internet.ssl import optionsForClientTLS

            context = optionsForClientTLS(self.host)
        factory = smtp.ESMTPSenderFactory(
            self._username, self._password, self.sender, [address], BytesIO(data), done,
            retries=0,  # the notifier retries, with its own back-off
            timeout=None,  # the protocol's own timer would use the global reactor
            contextFactory=context,
            # Plain HELO only when nothing needs ESMTP.
            heloFallback=not (self.starttls or self._username),
            requireAuthentication=self._username is not None,
            requireTransportSecurity=self.starttls,
            # Without a host name the client makes no TLS context, so it
            # never tries STARTTLS on its own when starttls is off.
            hostname=self.host if self.starttls else None,
        )
        connector = self._reactor.connectTCP(self.host, self.port, factory, timeout=self.timeout)

        def stop() -> None:
            factory.sendFinished = True
            if factory.currentProtocol is not None and factory.currentProtocol.transport is not None:
                factory.currentProtocol.transport.abortConnection()
            else:
                connector.disconnect()

        def expire() -> None:
            stop()
            if not result.called:
                result.errback(SendError(f"SMTP {self.host}:{self.port}: no answer within {self.timeout:g} s"))

        timer = self._reactor.callLater(self.timeout, expire)

        def sent(_: Any) -> None:
            if timer.active():
                timer.cancel()
            if not result.called:
                result.callback(None)

        def failed(failure: Any) -> None:
            if timer.active():
                timer.cancel()
            if not result.called:
                result.errback(_classify(failure.value, self.host, self.port, smtp))

        done.addCallbacks(sent, failed)
        return result


def _classify(exc: BaseException, host: str, port: int, smtp: Any) -> SendError:
    """Turn an SMTP client error into a SendError that says whether to retry."""
    if isinstance(exc, smtp.SMTPClientError):
        code = exc.code
        resp = exc.resp.decode("utf-8", "replace") if isinstance(exc.resp, bytes) else str(exc.resp)
        resp = " ".join(resp.split())
        refused = [(c, r) for _a, c, r in (getattr(exc, "addresses", None) or ()) if not 200 <= c < 300]
        if refused:
            # "No recipients accepted" says less than the server's own reply.
            code, text = refused[0]
            resp = " ".join((text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)).split())
        reason = f"SMTP {host}:{port}: " + (f"{code} {resp}" if code > 0 else resp or type(exc).__name__)
        if isinstance(exc, (smtp.AUTHDeclinedError, smtp.AUTHRequiredError, smtp.TLSRequiredError,
                            smtp.EHLORequiredError)):
            return SendError(reason, retry=400 <= code < 500)
        return SendError(reason, retry=code < 500)
    return SendError(f"SMTP {host}:{port}: {str(exc) or type(exc).__name__}")
