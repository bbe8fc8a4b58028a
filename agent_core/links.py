"""Signed approval links: one tap from an email or a WhatsApp message to a decision.

A link carries a token that names one approval and the hash of its arguments, expires with
the approval, and is signed with HMAC-SHA256 under AGENT_SECRET_KEY, a key kept outside the
database. Whoever holds a valid token may see and decide that one approval, once, without a
password: possession of the admin's inbox or phone is the credential. A token for other
arguments (the call was changed), past its expiry, or with a wrong signature opens nothing.
Pure functions: the caller loads the approval and checks it is still pending.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from agent_core.errors import InvalidInput

TOKEN_VERSION = 1
NOT_VALID = "this approval link is not valid (it may have been cut or changed)"


class InvalidLink(InvalidInput):
    """The link cannot be used; the sentence says so without revealing any data."""


@dataclass(frozen=True)
class LinkClaim:
    """What a valid token grants: deciding this approval, with these arguments, until then."""

    approval_id: str
    args_hash: str
    expires_at: datetime
    channel: str
    recipient: str | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, payload: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), payload.encode("ascii"), hashlib.sha256).digest()
    return _b64(digest)


def sign_link(
    secret: str,
    *,
    approval_id: str,
    args_hash: str,
    expires_at: datetime,
    channel: str,
    recipient: str | None,
) -> str:
    """A token for deciding `approval_id` (with arguments hashing to `args_hash`)."""
    claims = {
        "v": TOKEN_VERSION,
        "a": approval_id,
        "h": args_hash,
        "e": int(expires_at.timestamp()),
        "c": channel,
        "r": recipient,
    }
    payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode("utf-8"))
    return f"{payload}.{_signature(secret, payload)}"


def read_link(secret: str, token: str, *, now: datetime) -> LinkClaim:
    """The claim of a genuine, unexpired token; InvalidLink (one sentence, no data) else."""
    payload, dot, signature = token.strip().partition(".")
    if not (dot and payload and signature) or not token.isascii():  # a token is base64url
        raise InvalidLink(NOT_VALID)
    if not hmac.compare_digest(_signature(secret, payload), signature):
        raise InvalidLink(NOT_VALID)
    try:
        claims = json.loads(_unb64(payload))
        claim = LinkClaim(
            approval_id=str(claims["a"]),
            args_hash=str(claims["h"]),
            expires_at=datetime.fromtimestamp(int(claims["e"]), UTC),
            channel=str(claims["c"]),
            recipient=claims.get("r"),
        )
    except (ValueError, KeyError, TypeError):
        raise InvalidLink(NOT_VALID) from None
    if claim.expires_at <= now:
        raise InvalidLink("this approval link has expired: the request can no longer be decided")
    return claim
