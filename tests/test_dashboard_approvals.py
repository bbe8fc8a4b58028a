"""The approvals inbox: what waits is shown in words with its exact call; approve, reject with
a reason, approve with changes; and the run carries on with exactly what was approved."""

from __future__ import annotations

import json

import pytest

from agent_core.models import ApprovalStatus, RunStatus, StepStatus
from dashboard.decisions import parsed_arguments
from tests.dashboard_support import no_traceback, text
from tests.support import KEY, agent_settings, make_objective, make_orchestrator

EMAIL = {"to": "lead@example.com", "subject": "Following up", "body": "Hello Ada, any news?"}


def paused_run(store, llm_server, **settings):
    objective = make_objective(store, risk_level="medium", tools_allowed=["send_email"])
    llm_server.step("Ada has not answered: follow up.", "send_email", **EMAIL)
    orchestrator = make_orchestrator(
        store, llm_server.url, settings=agent_settings(agent_approval_flow=True, **settings)
    )
    run = store.create_run(objective.id)
    store.claim_run(run.id, owner=orchestrator.owner, lease_s=300)
    assert orchestrator.execute(run.id).status is RunStatus.PAUSED
    (approval,) = store.list_approvals()
    return orchestrator, run, approval


def smtp(mail_server):
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": mail_server.port,
        "smtp_security": "none",
        "smtp_from": "agent@example.com",
    }


def resume(orchestrator, run_id):
    store = orchestrator.store
    assert store.claim_run(run_id, owner=orchestrator.owner, lease_s=300) is not None
    return orchestrator.execute(run_id)


def test_the_inbox_says_what_the_agent_wants_why_and_with_which_arguments(
    dashboard, live_store, llm_server
):
    _, _, approval = paused_run(live_store, llm_server)
    at = dashboard.open("approvals")
    no_traceback(at)
    shown = text(at)
    assert "Waiting for you (1)" in shown
    assert (
        "The agent wants to send an email to lead@example.com with the subject “Following up”."
        in shown
    )
    assert "*Why:* Ada has not answered: follow up." in shown
    assert json.loads(at.code[0].value) == EMAIL
    assert "left)" in shown
    assert "1 approval waiting" in [link.label for link in at.sidebar.get("page_link")]
    assert "Nothing waits" not in shown
    assert at.button(key=f"approve_{approval.id}")


def test_approving_queues_the_run_which_sends_exactly_the_approved_email(
    dashboard, live_store, llm_server, mail_server
):
    orchestrator, run, approval = paused_run(live_store, llm_server, **smtp(mail_server))
    at = dashboard.open("approvals")
    at.button(key=f"approve_{approval.id}").click().run()
    no_traceback(at)
    assert "Approved: the run carries on with exactly this call." in text(at)
    assert "Waiting for you (0)" in text(at)
    decided = live_store.get_approval(approval.id)
    assert decided.status is ApprovalStatus.APPROVED
    assert decided.decided_by  # the admin's name, recorded with the decision
    assert live_store.get_run(run.id).status is RunStatus.QUEUED

    llm_server.done("Followed up with Ada.")
    finished = resume(orchestrator, run.id)
    assert finished.status is RunStatus.COMPLETED
    (mail,) = mail_server.received
    assert (mail.recipients, mail.subject) == (["lead@example.com"], "Following up")


def test_rejecting_with_a_reason_tells_the_agent(dashboard, live_store, llm_server):
    orchestrator, run, approval = paused_run(live_store, llm_server)
    at = dashboard.open("approvals")
    at.text_input(key=f"reason_{approval.id}").input("Ada asked not to be emailed").run()
    at.button(key=f"reject_{approval.id}").click().run()
    no_traceback(at)
    assert "Rejected: the agent is told and adapts." in text(at)
    decided = live_store.get_approval(approval.id)
    assert (decided.status, decided.decision_reason) == (
        ApprovalStatus.REJECTED,
        "Ada asked not to be emailed",
    )
    llm_server.done("Did not email Ada.")
    resume(orchestrator, run.id)
    told = llm_server.requests[-1]["messages"][-1]["content"]
    assert "rejected this call: Ada asked not to be emailed" in told


def test_approving_with_changes_runs_the_changed_call_and_keeps_the_original(
    dashboard, live_store, llm_server, mail_server
):
    orchestrator, run, approval = paused_run(live_store, llm_server, **smtp(mail_server))
    changed = {**EMAIL, "subject": "Quick question about your project"}
    at = dashboard.open("approvals")
    at.text_area(key=f"args_{approval.id}").input(json.dumps(changed)).run()
    at.button(key=f"approve_changed_{approval.id}").click().run()
    no_traceback(at)
    assert "Approved with your changes" in text(at)

    decided = live_store.get_approval(approval.id)
    assert decided.args == changed
    assert decided.original_args == EMAIL
    (event,) = [e for e in live_store.list_events(run.id) if e.event_type == "approval_decided"]
    assert event.data["approved_args"] == changed
    assert event.data["original_args_hash"] == approval.args_hash
    assert event.data["args_hash"] == decided.args_hash != approval.args_hash

    llm_server.done("Sent the changed email.")
    assert resume(orchestrator, run.id).status is RunStatus.COMPLETED
    (mail,) = mail_server.received
    assert mail.subject == "Quick question about your project"
    step = live_store.list_steps(run.id)[0]
    assert step.status is StepStatus.COMPLETED
    told = llm_server.requests[-1]["messages"][-1]["content"]
    assert "changed the arguments before approving" in told
    assert "Quick question about your project" in told


def test_changed_arguments_the_tool_refuses_are_named_and_nothing_is_decided(
    dashboard, live_store, llm_server
):
    _, _, approval = paused_run(live_store, llm_server)
    at = dashboard.open("approvals")
    at.text_area(key=f"args_{approval.id}").input('{"to": "not an address"}').run()
    at.button(key=f"approve_changed_{approval.id}").click().run()
    no_traceback(at)
    assert "The changed arguments:" in text(at)
    at.text_area(key=f"args_{approval.id}").input("{not json").run()
    at.button(key=f"approve_changed_{approval.id}").click().run()
    assert "The arguments are not valid JSON" in text(at)
    assert live_store.get_approval(approval.id).status is ApprovalStatus.PENDING


def test_a_call_that_cannot_succeed_as_configured_is_flagged_before_approval(
    dashboard, live_store, llm_server
):
    paused_run(live_store, llm_server)  # send_email, and no SMTP_HOST in the settings
    at = dashboard.open("approvals")
    assert "This call cannot succeed as the runtime is configured: email is not configured" in (
        text(at)
    )


def test_decided_requests_show_who_decided_and_when(dashboard, live_store, llm_server):
    _, _, approval = paused_run(live_store, llm_server)
    live_store.decide_approval(
        approval.id, approve=False, by="ana", reason="not now", signing_key=KEY
    )
    at = dashboard.open("approvals")
    shown = text(at)
    assert "Nothing waits for your approval" in shown
    assert "Rejected by ana at" in shown
    assert ": not now" in shown
    assert not at.button  # no decision buttons on a decided request


def test_a_request_opened_by_its_own_link_is_decided_there(dashboard, live_store, llm_server):
    _, run, approval = paused_run(live_store, llm_server)
    at = dashboard.open("approval", id=approval.id)
    no_traceback(at)
    assert "The agent wants to send an email to lead@example.com" in text(at)
    at.button(key=f"approve_{approval.id}").click().run()
    assert "Approved: the run carries on with exactly this call." in text(at)
    assert live_store.get_run(run.id).status is RunStatus.QUEUED


@pytest.mark.parametrize(
    ("typed", "sentence"),
    [
        ('{"to": ' + "9" * 5000 + "}", "a number too long to be read"),
        ("[" * 100_000 + "]" * 100_000, "too long"),
        ('{"to": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
        ('{"to": ' + "[" * 40 + "]" * 40 + "}", "nested more than 32 levels deep"),
    ],
    ids=["huge-number", "huge-text", "deep-json", "deep-arguments"],
)
def test_changed_arguments_python_cannot_read_are_one_sentence(
    dashboard, live_store, llm_server, typed, sentence
):
    _, _, approval = paused_run(live_store, llm_server)
    at = dashboard.open("approvals")
    at.text_area(key=f"args_{approval.id}").input(typed).run()
    at.button(key=f"approve_changed_{approval.id}").click().run()
    no_traceback(at)
    assert "Something went wrong" not in text(at)
    assert [error.value for error in at.error if sentence in error.value]
    assert live_store.get_approval(approval.id).status is ApprovalStatus.PENDING


def test_edited_arguments_that_are_a_json_string_are_read_as_such_not_shown_as_a_problem():
    """A JSON string is valid JSON: it goes to the service, which says an object is needed."""
    assert parsed_arguments('"hello"') == ("hello", None)
    value, problem = parsed_arguments("{")
    assert value is None
    assert problem is not None
    assert problem.startswith("The arguments are not valid JSON")
