"""One tap from the phone: the signed link in a notification opens its one request without a
password and decides it once; a reused, changed or expired link shows a sentence, no data."""

from __future__ import annotations

import re
from datetime import timedelta

from agent_core.links import sign_link
from agent_core.models import ApprovalStatus, RunStatus
from agent_core.notify import Notifier
from tests.dashboard_support import no_traceback, text
from tests.support import agent_settings, make_objective, make_orchestrator
from tests.test_dashboard_approvals import EMAIL

SECRET = "test-secret-key-for-links-0123456789"  # the dashboard fixture's AGENT_SECRET_KEY


def paused_with_link(store, llm_server, mail_server):
    """A paused run whose approval email went out; the approval and the link's token."""
    settings = agent_settings(
        agent_approval_flow=True,
        agent_secret_key=SECRET,
        smtp_host="127.0.0.1",
        smtp_port=mail_server.port,
        smtp_security="none",
        smtp_from="agent@example.com",
        admin_email="boss@example.com",
        agent_approval_notify_channels="email",
    )
    objective = make_objective(store, tools_allowed=["send_email"])
    llm_server.step("Ada has not answered: follow up.", "send_email", **EMAIL)
    orchestrator = make_orchestrator(
        store,
        llm_server.url,
        settings=settings,
        on_approval=Notifier(store, settings).request_approval,
    )
    run = store.create_run(objective.id)
    store.claim_run(run.id, owner=orchestrator.owner, lease_s=300)
    assert orchestrator.execute(run.id).status is RunStatus.PAUSED
    (approval,) = store.list_approvals()
    (mail,) = mail_server.received
    token = re.search(r"/approval\?token=(\S+)", mail.body).group(1)
    return approval, token


def test_the_emailed_link_opens_the_request_without_the_password_and_decides_it_once(
    dashboard, live_store, llm_server, mail_server, monkeypatch
):
    monkeypatch.setenv("AGENT_ADMIN_PASSWORD", "correct horse battery staple")
    approval, token = paused_with_link(live_store, llm_server, mail_server)

    at = dashboard.open("approval", token=token)
    no_traceback(at)
    shown = text(at)
    assert "The agent wants to send an email to lead@example.com" in shown
    assert "Password" not in [field.label for field in at.text_input]
    assert not at.get("expander")  # no "approve with changes" through a link
    at.button(key="approve_link").click().run()
    no_traceback(at)
    assert "Approved: the run carries on with exactly this call." in text(at)
    decided = live_store.get_approval(approval.id)
    assert decided.status is ApprovalStatus.APPROVED
    assert decided.decided_by == "boss@example.com (via email link)"

    again = dashboard.open("approval", token=token)  # another tap, another session
    no_traceback(again)
    assert text(again).startswith("Approval request\nThis approval link was already used")
    assert "lead@example.com" not in text(again)
    assert not again.button


def test_a_changed_link_shows_a_sentence_and_no_data(
    dashboard, live_store, llm_server, mail_server
):
    _, token = paused_with_link(live_store, llm_server, mail_server)
    tampered = token[:-3] + ("xyz" if not token.endswith("xyz") else "abc")
    at = dashboard.open("approval", token=tampered)
    no_traceback(at)
    assert "This approval link is not valid (it may have been cut or changed)." in text(at)
    assert "lead@example.com" not in text(at)
    assert not at.button


def test_an_expired_link_shows_a_sentence_and_no_data(
    dashboard, live_store, llm_server, mail_server
):
    approval, _ = paused_with_link(live_store, llm_server, mail_server)
    expired = sign_link(
        SECRET,
        approval_id=approval.id,
        args_hash=approval.args_hash,
        expires_at=live_store.now() - timedelta(minutes=1),
        channel="email",
        recipient="boss@example.com",
    )
    at = dashboard.open("approval", token=expired)
    assert "This approval link has expired" in text(at)
    assert "lead@example.com" not in text(at)


def test_a_link_for_other_arguments_opens_nothing(dashboard, live_store, llm_server, mail_server):
    approval, _ = paused_with_link(live_store, llm_server, mail_server)
    other = sign_link(
        SECRET,
        approval_id=approval.id,
        args_hash="0" * 64,
        expires_at=approval.expires_at,
        channel="email",
        recipient="boss@example.com",
    )
    at = dashboard.open("approval", token=other)
    assert "the request it was sent for has changed" in text(at)
    assert "lead@example.com" not in text(at)


def test_a_link_decision_is_recorded_with_its_channel_and_recipient_even_for_an_approver(
    dashboard, live_store, llm_server, mail_server, monkeypatch
):
    monkeypatch.setenv("AGENT_APPROVERS", "Ana,Ben")
    approval, token = paused_with_link(live_store, llm_server, mail_server)
    at = dashboard.open("approval", token=token)
    no_traceback(at)
    at.selectbox(key="link_name").select("Ben").run()
    assert "Recorded as Ben (via email link to boss@example.com)" in text(at)
    at.button(key="approve_link").click().run()
    no_traceback(at)
    decided = live_store.get_approval(approval.id)
    assert decided.status is ApprovalStatus.APPROVED
    assert decided.decided_by == "Ben (via email link to boss@example.com)"


def test_a_link_with_a_non_ascii_character_is_a_sentence(dashboard, live_store):
    at = dashboard.open("approval", token="é.abc")  # /approval?token=%C3%A9.abc
    no_traceback(at)
    assert "This approval link is not valid (it may have been cut or changed)." in text(at)
    assert "Something went wrong" not in text(at)
