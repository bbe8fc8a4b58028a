"""send_email and send_whatsapp: high risk, side effects, on the same transports as the
approval notifications."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from agent_core.models import RiskLevel
from agent_core.notify import (
    EMAIL_PATTERN,
    PHONE_PATTERN,
    MailSender,
    MessageSender,
    NotificationError,
    NotificationOutcomeUnknown,
)
from agent_core.tools.registry import Tool, ToolContext, ToolInputError, ToolOutcomeUnknown

T = TypeVar("T")


class EmailArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(pattern=EMAIL_PATTERN.pattern, max_length=254, description="one address")
    subject: str = Field(min_length=1, max_length=200, pattern=r"^[^\r\n]+$")
    body: str = Field(min_length=1, max_length=50_000, description="plain text")


class WhatsAppArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(
        pattern=PHONE_PATTERN.pattern, description="international number, e.g. +33612345678"
    )
    message: str = Field(min_length=1, max_length=1600)


def _sending(what: str, send: Callable[[], T]) -> T:
    """`send()`, its failure told as the tool's: not sent (the call failed), or perhaps
    sent (outcome unknown, never repeated)."""
    try:
        return send()
    except NotificationOutcomeUnknown as exc:
        raise ToolOutcomeUnknown(
            f"the {what} may have been sent: {exc}; do not send it again"
        ) from None
    except NotificationError as exc:
        raise ToolInputError(f"the {what} was not sent: {exc}") from None


def messaging_tools(email: MailSender, whatsapp: MessageSender) -> list[Tool]:
    def send_email(args: EmailArgs, _context: ToolContext) -> dict[str, Any]:
        _sending("email", lambda: email.send(args.to, args.subject, args.body))
        return {"sent": True, "to": args.to}

    def send_whatsapp(args: WhatsAppArgs, _context: ToolContext) -> dict[str, Any]:
        sid = _sending("WhatsApp message", lambda: whatsapp.send(args.to, args.message))
        return {"sent": True, "to": args.to, "sid": sid}

    return [
        Tool(
            name="send_email",
            description="Send a plain-text email to one address.",
            risk=RiskLevel.HIGH,
            side_effects=True,
            args_model=EmailArgs,
            handler=send_email,
            readiness=email.problem,
        ),
        Tool(
            name="send_whatsapp",
            description="Send a WhatsApp message to one phone number.",
            risk=RiskLevel.HIGH,
            side_effects=True,
            args_model=WhatsAppArgs,
            handler=send_whatsapp,
            readiness=whatsapp.problem,
        ),
    ]
