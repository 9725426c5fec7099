# -*- test-case-name: tests.alarms.test_notify -*-
"""Alarm notifications: webhooks and e-mail, escalation by on-call hours, rate limiting.

- :mod:`alarms.notify.dispatcher`: :class:`Notifier` (routing, escalation,
  rate limit, retries, journal) and the :class:`Sender` contract;
- :mod:`alarms.notify.webhook`: the ``webhook`` channel (JSON POST);
- :mod:`alarms.notify.email`: the ``email`` channel (SMTP);
- :mod:`alarms.notify.texts`: subjects and bodies in Russian or English.

``scada.notify_build.build_notifier`` builds a Notifier from the
``notifications:`` section of the site configuration.
"""

from alarms.notify.dispatcher import (
    DEFAULT_BACKOFF,
    EscalationStep,
    Message,
    Notifier,
    Recipient,
    Sender,
    SendError,
)

__all__ = ["DEFAULT_BACKOFF", "EscalationStep", "Message", "Notifier", "Recipient", "SendError", "Sender"]
