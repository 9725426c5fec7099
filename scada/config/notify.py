# -*- test-case-name: tests.alarms.test_notify -*-
"""Typed model of the ``notifications:`` section: who hears about alarms, how, and when.

Recipients get a webhook POST and/or an e-mail for the alarm events they
subscribe to, within their on-call hours (an :mod:`alarms.schedule`
window in the site's time zone).  Escalation entries notify more people
when an alarm stays unacknowledged; a per-recipient rate limit keeps an
alarm flood from becoming a mail flood.  :mod:`scada.notify_build` turns
this model into an :class:`alarms.notify.Notifier`.

The module does not import :mod:`scada.config.model`, so that the site
model can import it without an import cycle; the base model and the
duration types it shares with the site model come from
:mod:`scada.config.types`.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, ConfigDict, Field, ValidationInfo
from pydantic import field_validator, model_validator

from alarms.schedule import WindowError, parse_window

from .problems import show_value
from .types import ConfigModel, PositiveDuration, http_url_check

#: Alarm events a recipient may subscribe to (``notify`` entries are the
#: notifier's own and are never routed).
EVENTS = ("raise", "clear", "ack", "shelve", "unshelve", "comment", "suppress", "unsuppress",
          "out_of_service", "in_service", "flood_on", "flood_off")
PRIORITIES = ("low", "medium", "high", "critical")

EventName = Literal["raise", "clear", "ack", "shelve", "unshelve", "comment", "suppress", "unsuppress",
                    "out_of_service", "in_service", "flood_on", "flood_off"]
PriorityName = Literal["low", "medium", "high", "critical"]

_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\".]+")


def _check_address(value: str) -> str:
    """Accept a bare e-mail address such as ``chief@example.org``."""
    if not _ADDRESS.fullmatch(value):
        raise ValueError(f"{show_value(value)} is not an e-mail address such as 'chief@example.org'")
    return value


#: Accept an http(s) URL with a host.
_check_webhook = http_url_check("https://hooks.example.org/scada")


def _check_window(value: str) -> str:
    """Accept an :mod:`alarms.schedule` window; the time zone is the site's, applied later."""
    try:
        parse_window(value, "UTC")
    except WindowError as exc:
        raise ValueError(str(exc)) from None
    return value


def _check_recipient_name(value: str) -> str:
    """Reject empty names and names with whitespace (they are referenced from ``escalation.to``)."""
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"{show_value(value)} is not a recipient name: it must be non-empty, without spaces")
    return value


Address = Annotated[str, AfterValidator(_check_address), Field(examples=["chief@example.org"])]
WebhookUrl = Annotated[str, AfterValidator(_check_webhook), Field(examples=["https://hooks.example.org/scada"])]
WindowText = Annotated[str, AfterValidator(_check_window), Field(examples=["mon-fri(08-17)", "always"])]
RecipientName = Annotated[str, AfterValidator(_check_recipient_name)]


class SmtpConfig(ConfigModel):
    """``notifications.smtp``: the mail server e-mail recipients are reached through.

    ``starttls: true`` requires the server to offer STARTTLS and checks its
    certificate against ``host``; ``username``/``password`` log in (after
    STARTTLS when it is on).  ``timeout`` bounds one delivery attempt.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    #: The sender address (``From:`` and the envelope sender); YAML key ``from``.
    from_: Address = Field(alias="from")
    username: Optional[str] = None
    password: Optional[str] = None
    starttls: bool = False
    timeout: PositiveDuration = 30.0

    @model_validator(mode="after")
    def _login_pair(self) -> SmtpConfig:
        """Refuse a password without a user name, or a user name without a password."""
        if self.password is not None and self.username is None:
            raise ValueError("password is set but username is not")
        if self.password is None and self.username is not None:
            raise ValueError("username is set but password is not")
        return self


class RateLimitConfig(ConfigModel):
    """``notifications.rate_limit``: at most ``max`` notifications per recipient in any ``per`` window.

    What is over the limit is counted and announced in one digest message
    once the window has room again.
    """

    max: Annotated[int, Field(ge=1)] = 20
    per: PositiveDuration = 600.0


class RecipientConfig(ConfigModel):
    """One person or system to notify: a webhook, an e-mail address, or both.

    ``priorities`` (default: all) and ``events`` (default: ``raise`` and
    ``flood_on``) select what they hear about; ``on_call`` (default:
    always) is when, in site time.
    """

    name: RecipientName
    webhook: Optional[WebhookUrl] = None
    email: Optional[Address] = None
    priorities: Annotated[list[PriorityName], Field(min_length=1)] = list(PRIORITIES)
    on_call: WindowText = "always"
    events: Annotated[list[EventName], Field(min_length=1)] = ["raise", "flood_on"]

    @model_validator(mode="after")
    def _reachable(self) -> RecipientConfig:
        """Require a webhook or an e-mail address."""
        if not (self.webhook or self.email):
            raise ValueError(f"recipient {self.name!r} has neither 'webhook' nor 'email'; give at least one")
        return self


class EscalationConfig(ConfigModel):
    """One escalation level: an alarm of ``priority`` or higher still unacknowledged ``after`` its raise.

    It is sent to the recipients in ``to`` who are on call at that moment;
    if none is, to the next level's, or else at their next on-call start.
    """

    priority: PriorityName
    after: PositiveDuration
    to: Annotated[list[RecipientName], Field(min_length=1)]


class NotificationsConfig(ConfigModel):
    """The ``notifications:`` section: recipients, mail server, rate limit, escalation.

    ``lang`` is the language of the texts (``ru`` or ``en``).
    ``retry_backoff`` lists the waits before each retry of a failed
    delivery (connection errors, timeouts, server errors; not a request
    the other side refuses for good): three retries by default.
    ``webhook_timeout`` bounds one webhook attempt, ``smtp.timeout`` one
    e-mail attempt.
    """

    lang: Literal["ru", "en"] = "ru"
    smtp: Optional[SmtpConfig] = None
    rate_limit: RateLimitConfig = RateLimitConfig()
    retry_backoff: Annotated[list[PositiveDuration], Field(max_length=10)] = [5.0, 30.0, 120.0]
    #: Bound of one webhook attempt (connect, send, answer).
    webhook_timeout: PositiveDuration = 10.0
    recipients: list[RecipientConfig] = []
    escalation: list[EscalationConfig] = []

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, value: list[RecipientConfig], info: ValidationInfo) -> list[RecipientConfig]:
        """Refuse duplicate names, and e-mail recipients when there is no ``smtp:`` section."""
        seen: set[str] = set()
        for index, recipient in enumerate(value):
            if recipient.name in seen:
                raise ValueError(f"item {index}: duplicate recipient name {recipient.name!r}")
            seen.add(recipient.name)
        # A broken smtp section is reported by itself; only a missing one is this error.
        if "smtp" in info.data and info.data["smtp"] is None:
            mailed = [r.name for r in value if r.email]
            if mailed:
                raise ValueError(
                    f"recipient(s) {', '.join(map(repr, mailed))} have 'email' but there is no 'smtp:' section "
                    "(e.g. smtp: {host: 127.0.0.1, port: 25, from: scada@example.org})")
        return value

    @field_validator("escalation")
    @classmethod
    def _known_recipients(cls, value: list[EscalationConfig], info: ValidationInfo) -> list[EscalationConfig]:
        """Refuse escalation targets that are not recipients."""
        if "recipients" not in info.data:
            return value  # the recipients failed; their problems are reported instead
        names = [r.name for r in info.data["recipients"]]
        for index, step in enumerate(value):
            for target in step.to:
                if target not in names:
                    message = f"item {index}: 'to' names unknown recipient {target!r}"
                    close = difflib.get_close_matches(target, names, n=1)
                    if close:
                        message += f" (did you mean {close[0]!r}?)"
                    elif names:
                        message += f"; recipients are {', '.join(names)}"
                    else:
                        message += "; there are no recipients"
                    raise ValueError(message)
        return value
