"""Human approval end to end: pause, notify, decide, and the run carries on with exactly the
approved call, executed at most once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent_core.approvals import decide
from agent_core.errors import Conflict, InvalidInput
from agent_core.maintenance import run_maintenance
from agent_core.models import (
    ApprovalStatus,
    NewEvent,
    RunStatus,
    StepStatus,
    StopReason,
    ToolCallStatus,
)
from agent_core.notify import Notifier
from agent_core.render import event_sentence
from agent_core.store import Store
from agent_core.store.schema import approvals
from tests.support import (
    KEY,
    SECRET_KEY,
    agent_settings,
    make_objective,
    make_orchestrator,
    pause_on_email,
    run_cli,
    tamper,
)

REPO = Path(__file__).resolve().parent.parent
EMAIL = {"to": "lead@example.com", "subject": "Following up", "body": "Hello Ada, any news?"}


def _paused(store, llm_server, settings):
    """A run paused on send_email, its notifications sent; returns (run, approval)."""
    objective = make_objective(store, risk_level="high", tools_allowed=["send_email"])
    llm_server.step("Ada has not answered: follow up.", "send_email", **EMAIL)
    orchestrator = make_orchestrator(
        store,
        llm_server.url,
        settings=settings,
        on_approval=Notifier(store, settings).request_approval,
    )
    run = store.create_run(objective.id)
    store.claim_run(run.id, owner=orchestrator.owner, lease_s=300)
    paused = orchestrator.execute(run.id)
    assert paused.status is RunStatus.PAUSED
    (approval,) = store.list_approvals()
    return paused, approval, orchestrator


def _resume(orchestrator, run_id):
    store = orchestrator.store
    assert store.claim_run(run_id, owner=orchestrator.owner, lease_s=300) is not None
    return orchestrator.execute(run_id)


def _event_types(store, run_id):
    return [event.event_type for event in store.list_events(run_id)]


def test_approve_delivers_the_exact_email_once_and_the_run_completes(
    store, llm_server, mail_server, twilio_server, notify_settings
):
    settings = agent_settings(**notify_settings)
    run, approval, orchestrator = _paused(store, llm_server, settings)

    (notice,) = mail_server.received
    assert notice.recipients == ["admin@example.com"]
    assert "send_email" in notice.subject
    assert "Ada has not answered: follow up." in notice.body
    assert '"to": "lead@example.com"' in notice.body
    assert "/approval?token=" in notice.body  # signed: approvals need AGENT_SECRET_KEY
    assert len(twilio_server.messages) == 1
    assert twilio_server.messages[0]["To"] == "whatsapp:+33600000001"

    decided = decide(store, settings, approval.id, approve=True, by="alice")
    assert (decided.status, decided.decided_by) == (ApprovalStatus.APPROVED, "alice")
    assert store.get_run(run.id).status is RunStatus.QUEUED

    llm_server.done("Followed up with Ada.")
    ended = _resume(orchestrator, run.id)
    assert ended.status is RunStatus.COMPLETED
    sent = mail_server.received[1:]
    assert [(m.recipients, m.subject, m.body.strip()) for m in sent] == [
        (["lead@example.com"], "Following up", "Hello Ada, any news?")
    ]
    detail = store.run_detail(run.id)
    assert detail.tool_calls[0].status is ToolCallStatus.SUCCEEDED
    assert detail.steps[0].status is StepStatus.COMPLETED
    types = _event_types(store, run.id)
    for expected in (
        "approval_requested",
        "notification_sent",
        "approval_decided",
        "approved_call_started",
        "step_completed",
        "objective_completed",
    ):
        assert expected in types
    assert types.count("notification_sent") == 2
    assert store.verify_ledger(KEY).ok
    # The agent was told the call happened.
    assert '"sent": true' in llm_server.requests[-1]["messages"][-1]["content"]


def test_reject_tells_the_agent_why_and_it_adapts(store, llm_server, mail_server, notify_settings):
    settings = agent_settings(**notify_settings)
    run, approval, orchestrator = _paused(store, llm_server, settings)
    decide(store, settings, approval.id, approve=False, by="bob", reason="Ada asked for no emails")
    llm_server.done("Did not email Ada, as the admin asked.")
    ended = _resume(orchestrator, run.id)
    assert ended.status is RunStatus.COMPLETED
    assert len(mail_server.received) == 1  # the notification only
    (call,) = store.run_detail(run.id).tool_calls
    assert call.status is ToolCallStatus.REJECTED
    told = llm_server.requests[-1]["messages"][-1]["content"]
    assert "the admin (bob) rejected this call: Ada asked for no emails" in told


def test_an_expired_approval_fails_the_run_and_is_never_shown_as_rejected(
    store, clock, llm_server, mail_server, notify_settings, database_url, monkeypatch
):
    settings = agent_settings(**notify_settings)
    run, approval, _ = _paused(store, llm_server, settings)
    clock.advance(hours=25)
    report = run_maintenance(store, settings, Notifier(store, settings))
    assert report.approvals_expired == [approval.id]
    ended = store.get_run(run.id)
    assert (ended.status, ended.stop_reason) == (RunStatus.FAILED, StopReason.APPROVAL_EXPIRED)
    assert store.get_approval(approval.id).status is ApprovalStatus.EXPIRED
    (call,) = store.run_detail(run.id).tool_calls
    assert call.status is ToolCallStatus.EXPIRED
    with pytest.raises(Conflict, match=r"expired .* can no longer be decided"):
        decide(store, settings, approval.id, approve=True, by="alice")
    assert len(mail_server.received) == 1
    assert store.verify_ledger(KEY).ok
    monkeypatch.setenv("DATABASE_URL", database_url)
    shown = run_cli(["approval", "show", approval.id]).stdout
    assert "decided      nobody: it expired at 2026-11-03 09:00:00 UTC" in shown


def test_tampered_arguments_are_refused(
    store, database_url, llm_server, mail_server, notify_settings
):
    settings = agent_settings(**notify_settings)
    run, approval, orchestrator = _paused(store, llm_server, settings)
    decide(store, settings, approval.id, approve=True, by="alice")
    tamper(
        database_url,
        lambda conn: conn.execute(
            approvals.update()
            .where(approvals.c.id == approval.id)
            .values(args={**EMAIL, "to": "attacker@example.com"})
        ),
    )
    ended = _resume(orchestrator, run.id)
    assert (ended.status, ended.stop_reason) == (RunStatus.FAILED, StopReason.APPROVAL_INVALID)
    assert "hash no longer matches" in ended.error
    assert len(mail_server.received) == 1  # only the notification, never the tampered mail
    assert "approval_tampered" in _event_types(store, run.id)


def test_deciding_twice_is_refused_and_two_admins_at_once_give_one_decision(
    store, llm_server, mail_server, notify_settings
):
    settings = agent_settings(**notify_settings)
    run, approval, _ = _paused(store, llm_server, settings)
    outcomes: list[object] = []

    def click(name, approve):
        try:
            outcomes.append(decide(store, settings, approval.id, approve=approve, by=name))
        except Conflict as exc:
            outcomes.append(exc)

    clicks = [
        threading.Thread(target=click, args=(name, name == "alice")) for name in ("alice", "bob")
    ]
    for thread in clicks:
        thread.start()
    for thread in clicks:
        thread.join()
    winners = [item for item in outcomes if not isinstance(item, Conflict)]
    losers = [item for item in outcomes if isinstance(item, Conflict)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert f"was already {winners[0].status} by {winners[0].decided_by}" in str(losers[0])
    decisions = [e for e in store.list_events(run.id) if e.event_type == "approval_decided"]
    assert len(decisions) == 1


def test_approvers_are_restricted_when_configured(store, llm_server, mail_server, notify_settings):
    settings = agent_settings(**notify_settings, agent_approvers=["alice"])
    _, approval, _ = _paused(store, llm_server, settings)
    with pytest.raises(InvalidInput, match="'mallory' may not decide approvals"):
        decide(store, settings, approval.id, approve=True, by="mallory")
    assert decide(store, settings, approval.id, approve=True, by="alice").decided_by == "alice"


def test_the_approval_of_a_cancelled_run_cannot_be_decided(
    store, llm_server, mail_server, notify_settings
):
    settings = agent_settings(**notify_settings)
    run, approval, _ = _paused(store, llm_server, settings)
    store.request_cancel(run.id)
    assert store.get_approval(approval.id).status is ApprovalStatus.CANCELLED
    with pytest.raises(Conflict, match="cancelled"):
        decide(store, settings, approval.id, approve=True, by="alice")


def test_a_dead_mail_server_does_not_stop_the_run_and_maintenance_retries(
    store, clock, llm_server, mail_server, twilio_server, notify_settings, dead_port
):
    broken = agent_settings(**{**notify_settings, "smtp_port": dead_port})
    run, _, _ = _paused(store, llm_server, broken)
    assert store.get_run(run.id).status is RunStatus.PAUSED
    failed = [e for e in store.list_events(run.id) if e.event_type == "notification_failed"]
    assert len(failed) == 1
    assert failed[0].data["channel"] == "email"
    assert "refused or failed" in failed[0].data["error"]
    assert len(twilio_server.messages) == 1  # the other channel still went out

    clock.advance(minutes=2)
    fixed = agent_settings(**notify_settings)
    report = run_maintenance(store, fixed, Notifier(store, fixed))
    assert report.notifications_sent == 1
    assert len(mail_server.received) == 1
    assert store.verify_ledger(KEY).ok


def test_resuming_twice_delivers_once(store, llm_server, mail_server, notify_settings):
    settings = agent_settings(**notify_settings)
    run, approval, orchestrator = _paused(store, llm_server, settings)
    decide(store, settings, approval.id, approve=True, by="alice")
    llm_server.done("Done.")
    assert _resume(orchestrator, run.id).status is RunStatus.COMPLETED
    assert store.claim_run(run.id, owner="another-worker", lease_s=60) is None
    assert store.start_approved_call(store.get_approval(approval.id), None) is False
    assert len(mail_server.received) == 2


_RESUME = [sys.executable, "-m", "agent_core", "run", "resume"]


@pytest.fixture
def live_store(database_url):
    """The store on the wall clock, as the CLI processes of these tests use it."""
    opened = Store.open(database_url)
    yield opened
    opened.close()


def _cli_env(database_url, llm_server, notify_settings):
    env = {name.upper(): str(value) for name, value in notify_settings.items()}
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        **env,
        "DATABASE_URL": database_url,
        "AGENT_ENABLED": "true",
        "AGENT_LLM_BASE_URL": llm_server.url,
        "AGENT_AI_MODEL": "test-model",
        "AGENT_RUN_LEASE_S": "1",
        "AGENT_SECRET_KEY": SECRET_KEY,
    }


def test_two_resumes_at_once_deliver_once(
    live_store, database_url, llm_server, mail_server, notify_settings
):
    store = live_store
    settings = agent_settings(**notify_settings)
    run, approval, _ = _paused(store, llm_server, settings)
    decide(store, settings, approval.id, approve=True, by="alice")
    llm_server.done("Done.")
    llm_server.done("Done.")
    env = _cli_env(database_url, llm_server, notify_settings)
    workers = [
        subprocess.Popen(
            [*_RESUME, run.id, "--wait", "--json"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    codes = sorted(worker.wait(timeout=60) for worker in workers)
    assert codes == [0, 2]  # one executed it, the other was told it cannot
    assert [m.recipients for m in mail_server.received[1:]] == [["lead@example.com"]]


def test_a_worker_killed_after_sending_never_sends_again(
    live_store, database_url, llm_server, mail_server, notify_settings
):
    store = live_store
    settings = agent_settings(**notify_settings)
    run, approval, _ = _paused(store, llm_server, settings)
    decide(store, settings, approval.id, approve=True, by="alice")
    env = _cli_env(database_url, llm_server, notify_settings)
    mail_server.hold_s = 30  # the mail is received; the worker waits for the server's reply
    first = subprocess.Popen(
        [*_RESUME, run.id, "--wait"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while len(mail_server.received) < 2:
        assert time.monotonic() < deadline, first.communicate()[1]
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    mail_server.hold_s = 0
    time.sleep(1.2)  # its lease (1 s) lapses

    llm_server.done("Checked: the email may have gone; not sending again.")
    second = subprocess.run(
        [*_RESUME, run.id, "--wait", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["status"] == "completed"
    assert len(mail_server.received) == 2  # the notification and the one email, never again
    (call,) = store.run_detail(run.id).tool_calls
    assert call.status is ToolCallStatus.UNKNOWN
    told = llm_server.requests[-1]["messages"][-1]["content"]
    assert "may or may not have taken effect" in told
    assert "tool_outcome_unknown" in _event_types(store, run.id)


def test_from_the_cli_an_admin_sees_approves_and_the_run_finishes(
    database_url, llm_server, mail_server, twilio_server, notify_settings, monkeypatch
):
    for name, value in _cli_env(database_url, llm_server, notify_settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AGENT_RUN_LEASE_S", "300")
    created = json.loads(
        run_cli(
            [
                "objective",
                "create",
                "--json",
                "--title",
                "Follow up",
                "--description",
                "Email Ada",
                "--tools",
                "send_email",
                "--risk-level",
                "high",
            ]
        ).stdout
    )
    llm_server.step("Email Ada.", "send_email", **EMAIL)
    started = run_cli(["run", "start", created["id"], "--wait", "--json"])
    assert json.loads(started.stdout)["status"] == "paused"

    waiting = json.loads(run_cli(["approval", "list", "--status", "pending", "--json"]).stdout)
    assert [(a["tool_name"], a["args"]) for a in waiting] == [("send_email", EMAIL)]
    approval_id = waiting[0]["id"]
    shown = run_cli(["approval", "show", approval_id])
    assert "lead@example.com" in shown.stdout
    assert "approval_request  sent" in shown.stdout

    approved = run_cli(["approval", "approve", approval_id, "--by", "alice"])
    assert approved.exit_code == 0, approved.stderr
    again = run_cli(["approval", "approve", approval_id, "--by", "bob"])
    assert again.exit_code == 2
    assert "was already approved by alice" in again.stderr

    llm_server.done("Emailed Ada.")
    run_id = json.loads(started.stdout)["id"]
    resumed = run_cli(["run", "resume", run_id, "--wait", "--json"])
    assert json.loads(resumed.stdout)["status"] == "completed"
    assert [m.recipients for m in mail_server.received] == [
        ["admin@example.com"],
        ["lead@example.com"],
    ]
    assert run_cli(["ledger", "verify"]).exit_code == 0
    maintenance = run_cli(["maintenance", "--json"])
    assert json.loads(maintenance.stdout)["approvals_expired"] == []
    events = json.loads(run_cli(["run", "show", run_id, "--json"]).stdout)["events"]
    assert {"notification_sent", "approval_decided", "approved_call_started"} <= {
        e["event_type"] for e in events
    }
    store = Store.open(database_url)
    assert twilio_server.auth_token not in json.dumps([e.data for e in store.list_events(run_id)])
    store.close()


def test_a_run_resumed_on_an_undecided_approval_waits_again_and_says_so(store, clock, llm_server):
    # The approval's step is written, but its worker died before the run was paused: the run
    # is recovered, and its next worker finds the approval still pending.
    objective = make_objective(store, risk_level="high", tools_allowed=["send_email"])
    run = store.create_run(objective.id)
    store.claim_run(run.id, owner="gone", lease_s=60)
    pause_on_email(
        store,
        run.id,
        owner="gone",
        paused=False,
        new_events=[NewEvent(event_type="approval_requested")],
    )
    clock.advance(seconds=120)
    assert store.recover_lapsed_runs(max_attempts=5) == ([run.id], [])
    orchestrator = make_orchestrator(store, llm_server.url)
    assert store.claim_run(run.id, owner=orchestrator.owner, lease_s=300) is not None

    ended = orchestrator.execute(run.id)

    assert ended.status is RunStatus.PAUSED
    assert ended == store.get_run(run.id)
    last = store.list_events(run.id)[-1]
    assert event_sentence(last) == "Waiting for an admin again (its approval is still pending)."
    assert llm_server.requests == []  # nothing asked of the model while it waits
    assert store.verify_ledger(KEY).ok
