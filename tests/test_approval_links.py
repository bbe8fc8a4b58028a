"""Signed approval links: what a notification carries, and what a token grants or refuses."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from agent_core.links import InvalidLink, read_link, sign_link
from tests.test_notifications import notifier, pause_for_approval, text_of

SECRET = "k" * 43
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def token_for(**overrides):
    claims = {
        "approval_id": "55555555-5555-5555-5555-555555555555",
        "args_hash": "a" * 64,
        "expires_at": NOW + timedelta(hours=24),
        "channel": "email",
        "recipient": "admin@example.com",
        **overrides,
    }
    return sign_link(SECRET, **claims)


def test_a_genuine_token_reads_back_its_claim():
    claim = read_link(SECRET, token_for(), now=NOW)
    assert claim.approval_id == "55555555-5555-5555-5555-555555555555"
    assert claim.args_hash == "a" * 64
    assert claim.expires_at == NOW + timedelta(hours=24)
    assert (claim.channel, claim.recipient) == ("email", "admin@example.com")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # signature
        lambda token: token[:5] + ("x" if token[5] != "x" else "y") + token[6:],  # payload
        lambda token: token.split(".")[0],  # no signature
        lambda token: "",
        lambda token: "not-a-token",
        lambda token: "é.abc",  # /approval?token=%C3%A9.abc
        lambda token: token[:5] + "é" + token[6:],
        lambda token: token[:-2] + "é",
    ],
)
def test_a_changed_or_cut_token_opens_nothing(mangle):
    with pytest.raises(InvalidLink) as caught:
        read_link(SECRET, mangle(token_for()), now=NOW)
    assert str(caught.value) == "this approval link is not valid (it may have been cut or changed)"


def test_a_token_signed_with_another_key_opens_nothing():
    with pytest.raises(InvalidLink, match="not valid"):
        read_link("another key", token_for(), now=NOW)


def test_an_expired_token_says_so_and_nothing_else():
    with pytest.raises(InvalidLink) as caught:
        read_link(SECRET, token_for(expires_at=NOW - timedelta(seconds=1)), now=NOW)
    assert str(caught.value) == (
        "this approval link has expired: the request can no longer be decided"
    )


def test_each_notification_carries_a_link_signed_for_its_channel(
    store, llm_server, mail_server, twilio_server, notify_settings
):
    approval = pause_for_approval(store, llm_server)
    notifier(store, notify_settings, agent_secret_key=SECRET).request_approval(approval.id)

    def claim_in(text):
        token = re.search(r"http://dashboard\.example\.com/approval\?token=(\S+)", text).group(1)
        return read_link(SECRET, token, now=store.now())

    by_mail = claim_in(text_of(mail_server.received[0]))
    by_phone = claim_in(twilio_server.messages[0]["Body"])
    for claim in (by_mail, by_phone):
        assert (claim.approval_id, claim.args_hash) == (approval.id, approval.args_hash)
        assert claim.expires_at == approval.expires_at.replace(microsecond=0)
    assert (by_mail.channel, by_mail.recipient) == ("email", "admin@example.com")
    assert (by_phone.channel, by_phone.recipient) == ("whatsapp", "whatsapp:+33600000001")
