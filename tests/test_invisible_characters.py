"""A call is shown as it will be made: a control or bidi character the model wrote (one that
acts on the text around it instead of showing: U+202E shows "moc.liame@ssob" for an address
that ends in another domain) is shown as its escape on the dashboard, in the email and the
WhatsApp message, and in the CLI; an email address holding one is refused before anyone is
asked to approve it."""

from __future__ import annotations

import json

import pytest

from agent_core.models import RunStatus, ToolCallStatus
from agent_core.notify import Notifier
from agent_core.render import printable, visible_json
from tests.dashboard_support import no_traceback, raw_text
from tests.support import agent_settings, make_objective, make_orchestrator, run_cli, run_to_end

OVERRIDE = "\u202e"
# Reads "Invoice for Acme" followed by a reversed "fdp.exe" in a mail client.
SUBJECT = f"Invoice for Acme {OVERRIDE}fdp.exe"
ACTING = ("\u202e", "\u2066", "\u200f", "\x1b", "\x85")
# Shown as nothing: in a call's arguments, written as escapes too (two coupon codes that
# differ by one would look the same).
UNSEEN = ("\u200b", "\u200d", "\ufeff", "\xad", "\u2028", "\u2060")


def pause_on_hostile_email(store, llm_server, notify_settings):
    """A run paused on an email whose subject holds a bidi override; the admin notified by
    email and WhatsApp."""
    settings = agent_settings(**notify_settings)
    objective = make_objective(store, tools_allowed=["send_email"])
    llm_server.step(
        "Send the invoice.", "send_email", to="ap@acme.example", subject=SUBJECT, body="Hi"
    )
    orchestrator = make_orchestrator(
        store,
        llm_server.url,
        settings=settings,
        on_approval=Notifier(store, settings).request_approval,
    )
    run = run_to_end(orchestrator, objective.id)
    assert run.status is RunStatus.PAUSED
    (approval,) = store.list_approvals()
    return approval


def assert_shown_escaped(text: str) -> None:
    assert OVERRIDE not in text
    assert "Invoice for Acme \\u202efdp.exe" in text


@pytest.mark.parametrize("acting", ACTING + UNSEEN)
def test_visible_json_reads_back_as_the_same_value(acting):
    value = {"to": f"a{acting}b@example.com", "list": [acting, {"k": acting}]}
    shown = visible_json(value, indent=2)
    assert acting not in shown
    assert json.loads(shown) == value


@pytest.mark.parametrize(
    "address", [f"{OVERRIDE}moc.liam@ssob.evil.example", "bo\u200bss@example.com"]
)
def test_an_email_address_holding_an_invisible_character_is_refused_before_approval(
    store, llm_server, address
):
    objective = make_objective(store, tools_allowed=["send_email"])
    llm_server.step("Email the boss.", "send_email", to=address, subject="Q3", body="Figures")
    llm_server.done("Could not send.")
    settings = agent_settings(agent_approval_flow=True)

    run = run_to_end(make_orchestrator(store, llm_server.url, settings=settings), objective.id)

    assert run.status is RunStatus.COMPLETED
    assert store.list_approvals() == []
    (call,) = store.list_tool_calls(run.id)
    assert call.status is ToolCallStatus.FAILED
    assert (call.error or "").startswith("invalid arguments for send_email: to: ")


def test_the_email_and_whatsapp_messages_show_the_override_as_an_escape(
    store, llm_server, notify_settings, mail_server, twilio_server
):
    pause_on_hostile_email(store, llm_server, notify_settings)

    (mail,) = mail_server.received
    assert_shown_escaped(mail.body)
    (message,) = twilio_server.messages
    assert_shown_escaped(message["Body"])


def test_the_inbox_and_the_approval_page_show_the_override_as_an_escape(
    dashboard, live_store, llm_server, notify_settings
):
    approval = pause_on_hostile_email(live_store, llm_server, notify_settings)

    for page, query in (("approvals", {}), ("approval", {"id": approval.id})):
        at = dashboard.open(page, **query)
        no_traceback(at)
        code = "\n".join(str(element.value) for element in at.code)
        assert_shown_escaped(code)
        assert OVERRIDE not in raw_text(at)
        assert json.loads(code) == approval.args  # the arguments block is the call's JSON


def test_approval_show_prints_the_override_as_an_escape(
    store, llm_server, notify_settings, database_url, monkeypatch
):
    approval = pause_on_hostile_email(store, llm_server, notify_settings)
    monkeypatch.setenv("DATABASE_URL", database_url)

    shown = run_cli(["approval", "show", approval.id])
    as_json = run_cli(["--json", "approval", "show", approval.id])

    assert shown.exit_code == 0, shown.stderr
    assert_shown_escaped(shown.stdout)
    assert as_json.exit_code == 0, as_json.stderr
    assert OVERRIDE not in as_json.stdout
    assert json.loads(as_json.stdout)["args"]["subject"] == SUBJECT


def test_a_windows_line_end_is_a_line_break_not_an_escape():
    assert printable("Dear Ada,\r\nthe figures.\rX") == "Dear Ada,\nthe figures.\\x0dX"
