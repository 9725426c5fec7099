# -*- test-case-name: tests.alarms.test_notify -*-
"""Build the alarm notifier from the ``notifications:`` section of a site configuration.

The composition root calls :func:`build_notifier` once the reactor is
installed and the alarm engine exists; the notifier subscribes to the
engine itself.
"""

from __future__ import annotations

from typing import Any

from alarms.notify.dispatcher import EscalationStep, Notifier, Recipient, Sender
from alarms.schedule import parse_window
from scada.config.notify import NotificationsConfig, RecipientConfig


def build_notifier(cfg: Any, reactor: Any, engine: Any, journal: Any = None) -> Notifier:
    """Return a :class:`Notifier` for ``cfg`` subscribed to ``engine`` (when not None).

    ``cfg`` is the :class:`~scada.config.model.SiteConfig` (its ``site``
    gives the name used in subjects and the time zone of on-call windows
    and texts) or a bare :class:`NotificationsConfig` (UTC, no site name).
    ``journal`` (an :class:`alarms.model.Journal`, or None) receives the
    outcome of every delivery.  Raises ``RuntimeError`` if an https
    webhook or STARTTLS is configured but Twisted's TLS extras are not
    installed.
    """
    section: NotificationsConfig = getattr(cfg, "notifications", cfg)
    site = getattr(cfg, "site", None)
    site_name = site.name if site is not None else ""
    tz = site.timezone if site is not None else "UTC"
    recipients = [_recipient(r, tz) for r in section.recipients]
    senders: dict[str, Sender] = {}
    webhooks = [r.webhook for r in recipients if r.webhook]
    if webhooks:
        from alarms.notify.webhook import WebhookSender

        if any(url.lower().startswith("https:") for url in webhooks):
            _need_tls("an https webhook")
        senders["webhook"] = WebhookSender(reactor, timeout=section.webhook_timeout)
    if any(r.email for r in recipients) and section.smtp is not None:
        from alarms.notify.email import EmailSender

        smtp = section.smtp
        senders["email"] = EmailSender(
            reactor, smtp.host, smtp.port, smtp.from_, username=smtp.username, password=smtp.password,
            starttls=smtp.starttls, timeout=smtp.timeout, site=site_name,
        )
    notifier = Notifier(
        reactor,
        recipients,
        senders,
        site=site_name,
        tz=tz,
        lang=section.lang,
        escalation=[EscalationStep(s.priority, s.after, tuple(s.to)) for s in section.escalation],
        rate_max=section.rate_limit.max,
        rate_per=section.rate_limit.per,
        backoff=section.retry_backoff,
        journal=journal,
    )
    if engine is not None:
        notifier.attach(engine)
    return notifier


def _recipient(cfg: RecipientConfig, tz: str) -> Recipient:
    """Return the runtime form of one configured recipient (its window in the site's zone)."""
    window = None if cfg.on_call.strip().lower() == "always" else parse_window(cfg.on_call, tz)
    return Recipient(
        name=cfg.name,
        webhook=cfg.webhook,
        email=cfg.email,
        priorities=frozenset(cfg.priorities),
        events=frozenset(cfg.events),
        on_call=window,
    )


def _need_tls(what: str) -> None:
    try:
        import OpenSSL  # noqa: F401
        import service_identity  # noqa: F401
    except ImportError:
        raise RuntimeError(f"{what} needs Twisted's TLS extras: pip install 'twisted[tls]'") from None
