"""What the worker's log says: a run that ends or pauses says why (the stop reason and its
sentence; the approval and its tool), and a notification that fails says why too."""

from __future__ import annotations

import logging

from agent_core.runtime import open_runtime
from agent_core.worker import PrintableFormatter, Worker
from tests.support import agent_settings, make_objective


def worker_for(store, llm_server, **values):
    settings = agent_settings(
        agent_llm_base_url=llm_server.url, agent_ai_model="test-model", **values
    )
    return Worker(open_runtime(settings, store))


def test_a_failed_run_is_logged_with_its_reason_in_words(store, llm_server, caplog):
    make_objective(store, budget={"maxSteps": 1})
    llm_server.step("Count.", "count_database", table="app_leads")
    store.create_run(store.list_objectives()[0].id)
    with caplog.at_level(logging.INFO, logger="agent_core.worker"):
        worker_for(store, llm_server).run_once()
    (line,) = [r for r in caplog.records if "(budget_steps" in r.getMessage()]
    assert line.levelno == logging.WARNING
    assert (
        "failed (budget_steps: The run used all the steps its budget allows before finishing. "
        "Details: step budget exhausted (1 step))" in line.getMessage()
    )


def test_a_paused_run_is_logged_with_the_approval_and_its_tool(store, llm_server, caplog):
    objective = make_objective(store, tools_allowed=["send_email"])
    llm_server.step(
        "Email Ada.", "send_email", to="ada@example.com", subject="Hello", body="Any news?"
    )
    run = store.create_run(objective.id)
    with caplog.at_level(logging.INFO, logger="agent_core.worker"):
        worker_for(store, llm_server, agent_approval_flow=True).run_once()
    (approval,) = store.list_approvals()
    (line,) = [
        r.getMessage() for r in caplog.records if f"run {run.id} (#1) paused" in r.getMessage()
    ]
    assert (
        f"waiting for approval {approval.id} of send_email (The agent wants to send an email "
        "to ada@example.com with the subject “Hello”.)" in line
    )


def test_a_failed_notification_is_logged_with_its_reason(store, llm_server, caplog, dead_port):
    objective = make_objective(store, tools_allowed=["send_email"])
    llm_server.step(
        "Email Ada.", "send_email", to="ada@example.com", subject="Hello", body="Any news?"
    )
    store.create_run(objective.id)
    settings = {
        "agent_approval_flow": True,
        "agent_approval_notify_channels": "email",
        "admin_email": "boss@example.com",
        "smtp_host": "127.0.0.1",
        "smtp_port": dead_port,
        "smtp_from": "agent@example.com",
        "smtp_security": "none",
    }
    with caplog.at_level(logging.WARNING, logger="agent_core.notify"):
        worker_for(store, llm_server, **settings).run_once()
    (approval,) = store.list_approvals()
    (line,) = [r.getMessage() for r in caplog.records if r.name == "agent_core.notify"]
    assert line.startswith(
        f"approval {approval.id}: Email (approval request) to boss@example.com failed: "
        f"the mail server 127.0.0.1:{dead_port} refused or failed"
    )
    assert line.endswith("It will be tried again.")


def test_what_the_model_wrote_cannot_rewrite_the_admin_s_terminal(store, llm_server, caplog):
    """The worker's log goes to the admin's terminal under `make run`: a control or bidi
    character in a call's arguments is written as its escape there, as the CLI shows it."""
    objective = make_objective(store, tools_allowed=["send_email"])
    subject = "Invoice \u202efdp.exe \x1b[2J"
    llm_server.step("Email Ada.", "send_email", to="ada@example.com", subject=subject, body="Hi")
    store.create_run(objective.id)
    with caplog.at_level(logging.INFO, logger="agent_core.worker"):
        worker_for(store, llm_server, agent_approval_flow=True).run_once()
    formatter = PrintableFormatter("%(levelname)s %(name)s: %(message)s")
    (line,) = [formatter.format(r) for r in caplog.records if " paused" in r.getMessage()]
    assert "with the subject “Invoice \\u202efdp.exe \\x1b[2J”" in line
    assert "\u202e" not in line
    assert "\x1b" not in line
