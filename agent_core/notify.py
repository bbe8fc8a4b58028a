"""Telling the admin that an action waits for approval: email (SMTP) and WhatsApp (Twilio).

A notification is a row per approval and channel. Every attempt is a ledger event on the
run (sent, or failed with the reason); a failure never fails the run, and maintenance tries
again with backoff. The transports are also what the send_email and send_whatsapp tools use.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from typing import Protocol

import requests
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client as TwilioClient
from urllib3.exceptions import NewConnectionError

from agent_core import events as ledger_events
from agent_core.config import Settings
from agent_core.links import sign_link
from agent_core.models import (
    Approval,
    ApprovalStatus,
    Notification,
    NotificationKind,
    NotificationStatus,
    NotifyChannel,
    SmtpSecurity,
)
from agent_core.render import (
    INVISIBLE_CHARS,
    approval_request_sentence,
    cut,
    event_sentence,
    printable,
    visible_json,
    without_secrets,
)
from agent_core.store import Store

log = logging.getLogger("agent_core.notify")

SEND_TIMEOUT_S = 15.0
MAX_ATTEMPTS = 5
CLAIM_HOLD = timedelta(seconds=4 * SEND_TIMEOUT_S)  # a sender that died frees its claim then
RETRY_BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
)
# No part of an address holds a control, an invisible or a bidi character (one can make an
# address read as another: "\u202emoc.liam@..." shows reversed).
_ADDRESS_PART = rf"[^@\s<>,;\"()\[\]\\{INVISIBLE_CHARS}]+"
EMAIL_PATTERN = re.compile(rf"^{_ADDRESS_PART}@{_ADDRESS_PART}\.{_ADDRESS_PART}$")
PHONE_PATTERN = re.compile(r"^(whatsapp:)?\+[1-9][0-9]{6,14}$")


class NotificationError(Exception):
    """A message could not be sent; the text says why, without any secret."""


class NotificationOutcomeUnknown(NotificationError):
    """The message was handed over and no answer came back: it may have been sent. Never to
    be sent again on that account (the send_* tools record the call as outcome unknown)."""


class _TrackedSMTP(smtplib.SMTP):
    """smtplib.SMTP noting when the DATA command went out: from then on the server may keep
    the message whatever happens to the connection."""

    data_sent = False

    def data(self, msg: bytes | str) -> tuple[int, bytes]:
        self.data_sent = True
        return super().data(msg)


class _TrackedSMTPSSL(_TrackedSMTP, smtplib.SMTP_SSL):
    """The same over TLS from the start."""


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


class MailSender(Protocol):
    def send(self, to: str, subject: str, body: str) -> object: ...

    def problem(self) -> str | None:
        """Why nothing can be sent as configured (naming what to set), or None."""
        ...


class MessageSender(Protocol):
    def send(self, to: str, body: str) -> object: ...

    def problem(self) -> str | None:
        """Why nothing can be sent as configured (naming what to set), or None."""
        ...


@dataclass(frozen=True)
class EmailTransport:
    host: str | None
    port: int
    security: SmtpSecurity
    user: str | None
    password: str | None
    sender: str | None
    timeout_s: float = SEND_TIMEOUT_S

    @classmethod
    def from_settings(cls, settings: Settings) -> EmailTransport:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            user=settings.smtp_user,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            sender=settings.smtp_from or settings.smtp_user,
        )

    def problem(self) -> str | None:
        if not self.host:
            return "email is not configured: set SMTP_HOST (and SMTP_FROM)"
        if not self.sender:
            return "email has no sender: set SMTP_FROM"
        return None

    def send(self, to: str, subject: str, body: str) -> None:
        problem = self.problem()
        if problem:
            raise NotificationError(problem)
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        client: _TrackedSMTP | _TrackedSMTPSSL | None = None
        delivered = False
        try:
            if self.security == SmtpSecurity.SSL:
                client = _TrackedSMTPSSL(
                    self.host,
                    self.port,
                    timeout=self.timeout_s,
                    context=ssl.create_default_context(),
                )
            else:
                client = _TrackedSMTP(self.host, self.port, timeout=self.timeout_s)
            with client:
                if self.security == SmtpSecurity.STARTTLS:
                    client.starttls(context=ssl.create_default_context())
                if self.user and self.password:
                    client.login(self.user, self.password)
                client.send_message(message, to_addrs=[to])  # one recipient, whatever To says
                delivered = True
        except (OSError, smtplib.SMTPException) as exc:
            if delivered:
                return  # the server accepted the message; only saying goodbye failed
            if (
                client is not None
                and client.data_sent
                and not isinstance(exc, smtplib.SMTPResponseException)
            ):
                raise NotificationOutcomeUnknown(
                    f"the mail server {self.host}:{self.port} stopped answering once it had the "
                    f"message, which it may have sent: {_reason(exc)}"
                ) from None
            raise NotificationError(
                f"the mail server {self.host}:{self.port} refused or failed: {_reason(exc)}"
            ) from None


@dataclass(frozen=True)
class WhatsAppTransport:
    account_sid: str | None
    auth_token: str | None
    sender: str | None
    api_base_url: str = "https://api.twilio.com"
    timeout_s: float = SEND_TIMEOUT_S

    @classmethod
    def from_settings(cls, settings: Settings) -> WhatsAppTransport:
        token = settings.twilio_auth_token
        return cls(
            account_sid=settings.twilio_account_sid,
            auth_token=token.get_secret_value() if token else None,
            sender=settings.twilio_whatsapp_from,
            api_base_url=settings.twilio_api_base_url,
        )

    def problem(self) -> str | None:
        if not (self.account_sid and self.auth_token and self.sender):
            return (
                "WhatsApp is not configured: set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN "
                "and TWILIO_WHATSAPP_FROM"
            )
        return None

    def send(self, to: str, body: str) -> str:
        """Send through Twilio's Messages API; returns the message SID."""
        problem = self.problem()
        if problem:
            raise NotificationError(problem)
        client = TwilioClient(
            self.account_sid,
            self.auth_token,
            http_client=TwilioHttpClient(timeout=self.timeout_s, max_retries=0),
        )
        # Twilio rewrites hosts for edges and regions; a configured API address is used as is.
        client.edge = None
        client.region = None
        client.api.base_url = self.api_base_url.rstrip("/")
        try:
            message = client.messages.create(
                from_=whatsapp_address(self.sender), to=whatsapp_address(to), body=body
            )
        except (TwilioException, OSError) as exc:
            if _request_may_have_arrived(exc):
                raise NotificationOutcomeUnknown(
                    f"Twilio did not answer once it had the request, which it may have carried "
                    f"out: {_reason(exc)}"
                ) from None
            raise NotificationError(f"Twilio refused or failed: {_reason(exc)}") from None
        return str(message.sid)


def _request_may_have_arrived(error: BaseException) -> bool:
    """Whether an HTTP request that failed may still have reached the server: an answer
    (any status) or a connection never made says no; an answer that never came says maybe."""
    if isinstance(error, (TwilioException, requests.ConnectTimeout)):
        return False
    if isinstance(error, requests.ConnectionError):
        reason = getattr(error.args[0], "reason", None) if error.args else None
        return not isinstance(reason, NewConnectionError)
    return isinstance(error, requests.RequestException)


def whatsapp_address(number: str) -> str:
    number = number.strip()
    return number if number.startswith("whatsapp:") else f"whatsapp:{number}"


def approval_link(
    approval: Approval, settings: Settings, *, channel: str = "email", recipient: str | None = None
) -> str:
    """Where to decide: with AGENT_SECRET_KEY, a signed link that opens this one request
    without a password (see links.py); without it, the request's page behind the login."""
    base = f"{settings.agent_dashboard_url.rstrip('/')}/approval"
    if settings.agent_secret_key is None:
        return f"{base}?id={approval.id}"
    token = sign_link(
        settings.agent_secret_key.get_secret_value(),
        approval_id=approval.id,
        args_hash=approval.args_hash,
        expires_at=approval.expires_at,
        channel=channel,
        recipient=recipient,
    )
    return f"{base}?token={token}"


def approval_message(
    approval: Approval,
    thought: str | None,
    settings: Settings,
    *,
    reminder: bool = False,
    link: str | None = None,
) -> tuple[str, str]:
    """Subject and text telling the admin what the agent wants to do, why, until when, and
    where to decide."""
    link = link or approval_link(approval, settings)
    prefix = "Reminder: approval still needed" if reminder else "Approval needed"
    subject = printable(f"[Agent Runtime] {prefix}: {approval.tool_name}")
    body = "\n".join(
        [
            f"{prefix}. {approval_request_sentence(approval)}",
            f"Tool: {approval.tool_name} (run {approval.run_id})",
            "",
            f"Why: {thought or '(no reasoning given)'}",
            f"Risk: {approval.risk_reason}",
            "Arguments:",
            visible_json(approval.args, indent=2),
            "",
            f"Expires: {approval.expires_at:%Y-%m-%d %H:%M UTC} (then the run fails)",
            f"Decide: {link}",
            f"Or: .venv/bin/python -m agent_core approval approve {approval.id}",
            f"    .venv/bin/python -m agent_core approval reject {approval.id} --reason '...'",
        ]
    )
    return subject, printable(body)  # what acts instead of showing is shown as its escape


WHATSAPP_MAX_CHARS = 1600  # Twilio refuses a longer body


def whatsapp_text(
    approval: Approval,
    thought: str | None,
    settings: Settings,
    *,
    reminder: bool = False,
    link: str | None = None,
) -> str:
    """The approval message in WhatsApp's limit: long arguments and reasoning are cut, the
    expiry and the link to decide are always there."""
    link = link or approval_link(approval, settings, channel="whatsapp")
    subject, _ = approval_message(approval, thought, settings, reminder=reminder, link=link)
    tail = f"\nExpires: {approval.expires_at:%Y-%m-%d %H:%M UTC}\nDecide: {link}"
    arguments = visible_json(approval.args)
    sentence = cut(printable(approval_request_sentence(approval)), 300)
    head = f"{subject}\n{sentence}\nWhy: {cut(printable(thought or '-'), 300)}\nArgs: "
    room = WHATSAPP_MAX_CHARS - len(head) - len(tail) - len(" (full details in the dashboard)")
    if len(arguments) > room:
        arguments = cut(arguments, max(room, 0)) + " (full details in the dashboard)"
    return cut(head + arguments + tail, WHATSAPP_MAX_CHARS)


class Notifier:
    """Sends approval notifications on the configured channels and keeps their record."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        email: MailSender | None = None,
        whatsapp: MessageSender | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.email = email or EmailTransport.from_settings(settings)
        self.whatsapp = whatsapp or WhatsAppTransport.from_settings(settings)

    def request_approval(self, approval_id: str) -> list[Notification]:
        """Queue one notification per channel for a new approval, and send them now."""
        approval = self.store.get_approval(approval_id)
        created = self.store.add_notifications(
            approval, NotificationKind.APPROVAL_REQUEST, self._recipients()
        )
        return [n for n in (self._deliver(c) for c in created) if n is not None]

    def remind(self) -> list[Notification]:
        """One reminder per channel for approvals about to expire."""
        window = timedelta(minutes=self.settings.agent_approval_remind_before_minutes)
        if not window:
            return []
        sent = []
        for approval in self.store.approvals_to_remind(within=window):
            created = self.store.add_notifications(
                approval, NotificationKind.REMINDER, self._recipients()
            )
            sent += [n for n in (self._deliver(c) for c in created) if n is not None]
        return sent

    def retry_due(self) -> list[Notification]:
        """Send what is pending or failed and due again (maintenance)."""
        delivered = (self._deliver(n) for n in self.store.due_notifications())
        return [notification for notification in delivered if notification is not None]

    def _recipients(self) -> Mapping[str, str | None]:
        addresses = {
            NotifyChannel.EMAIL: self.settings.admin_email,
            NotifyChannel.WHATSAPP: self.settings.admin_phone,
        }
        return {
            channel.value: addresses[channel]
            for channel in self.settings.agent_approval_notify_channels
        }

    def _deliver(self, notification: Notification) -> Notification | None:
        """One attempt, if this process wins the notification (None otherwise: another
        process is sending it); an approval no longer waiting is not notified at all."""
        if not self.store.claim_notification(notification.id, hold=CLAIM_HOLD):
            return None
        approval = self.store.get_approval(notification.approval_id)
        notice = ledger_events.notification_facts(
            approval_id=approval.id,
            channel=notification.channel,
            kind=notification.kind,
            recipient=notification.recipient,
            attempt=notification.attempts + 1,
        )
        if approval.status is not ApprovalStatus.PENDING or approval.expires_at <= self.store.now():
            reason = f"not sent: the approval is already {approval.status}"
            if approval.status is ApprovalStatus.PENDING:
                reason = "not sent: the approval has expired"
            self.store.record_notification(
                notification,
                status=NotificationStatus.GAVE_UP,
                error=reason,
                next_attempt_at=None,
                event=ledger_events.notification_cancelled(notice=notice, reason=reason),
            )
            return notification.model_copy(
                update={"status": NotificationStatus.GAVE_UP, "last_error": reason}
            )
        try:
            self._send(notification, approval)
        except NotificationError as exc:
            error = without_secrets(str(exc), self.settings.secret_values)  # a server may echo one
            attempts = notification.attempts + 1
            gave_up = attempts >= MAX_ATTEMPTS or notification.recipient is None
            status = NotificationStatus.GAVE_UP if gave_up else NotificationStatus.FAILED
            delay = RETRY_BACKOFF[min(attempts, len(RETRY_BACKOFF)) - 1]
            failed = ledger_events.notification_failed(
                notice=notice, error=error, will_retry=not gave_up
            )
            self.store.record_notification(
                notification,
                status=status,
                error=error,
                next_attempt_at=None if gave_up else self.store.now() + delay,
                event=failed,
            )
            log.warning("approval %s: %s", approval.id, event_sentence(failed))
            return notification.model_copy(update={"status": status, "last_error": error})
        self.store.record_notification(
            notification,
            status=NotificationStatus.SENT,
            error=None,
            next_attempt_at=None,
            event=ledger_events.notification_sent(notice=notice),
        )
        return notification.model_copy(update={"status": NotificationStatus.SENT})

    def _send(self, notification: Notification, approval: Approval) -> None:
        if notification.recipient is None:
            email = notification.channel == NotifyChannel.EMAIL
            variable = "ADMIN_EMAIL" if email else "ADMIN_PHONE"
            raise NotificationError(f"no recipient: set {variable}")
        thought = self._thought(approval)
        reminder = notification.kind is NotificationKind.REMINDER
        link = approval_link(
            approval,
            self.settings,
            channel=notification.channel,
            recipient=notification.recipient,
        )
        if notification.channel == NotifyChannel.EMAIL:
            subject, body = approval_message(
                approval, thought, self.settings, reminder=reminder, link=link
            )
            self.email.send(notification.recipient, subject, body)
        else:
            text = whatsapp_text(approval, thought, self.settings, reminder=reminder, link=link)
            self.whatsapp.send(notification.recipient, text)

    def _thought(self, approval: Approval) -> str | None:
        return self.store.get_step(approval.step_id).thought
