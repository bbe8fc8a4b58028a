"""Text from outside that a database cannot hold is stored as it can, on both databases,
instead of failing the write: a NUL character (which PostgreSQL refuses in text, and SQLite
keeps) is dropped; a lone surrogate (which no UTF-8 text holds: a \\ud800 escape in a
server's JSON decodes to one) becomes U+FFFD."""

from __future__ import annotations

import json

import pytest

from agent_core.llm import MAX_MODEL_NAME_CHARS
from agent_core.models import (
    MAX_ADMIN_NAME_CHARS,
    NewEvent,
    NotificationKind,
    NotificationStatus,
    ObjectiveSpec,
    RunChanges,
    RunStatus,
    StopReason,
    ToolCallStatus,
)
from agent_core.runtime import open_runtime
from agent_core.tools import ToolRegistry
from tests.support import (
    KEY,
    agent_settings,
    crm_tool,
    make_objective,
    make_orchestrator,
    pause_on_email,
    run_to_end,
)
from tests.test_wix_tools import wix_settings


def _broken(_args, _context):
    raise ValueError("the CRM answered \x00\x00 garbage \udced")


BROKEN = crm_tool(_broken)


def test_a_tool_error_holding_unstorable_characters_is_stored_as_it_can_be(store, llm_server):
    objective = make_objective(store, tools_allowed=["read_crm"])
    llm_server.step("Read the CRM.", "read_crm")
    llm_server.done("The CRM could not be read.")

    run = run_to_end(
        make_orchestrator(store, llm_server.url, tools=ToolRegistry([BROKEN])), objective.id
    )

    assert run.status is RunStatus.COMPLETED
    call = store.run_detail(run.id).tool_calls[0]
    assert call.status is ToolCallStatus.FAILED
    assert "the CRM answered  garbage \ufffd" in call.error
    assert store.verify_ledger(KEY).ok


def test_a_run_ending_on_a_server_s_text_holding_nul_keeps_its_reason(store):
    run = store.create_run(make_objective(store).id)
    store.claim_run(run.id, owner="worker", lease_s=60)
    ended = store.update_run(
        run.id,
        RunChanges(
            owner="worker",
            status=RunStatus.FAILED,
            stop_reason=StopReason.LLM_ERROR,
            error="the LLM answered 502 «\x00bad gateway»",
        ),
        [NewEvent(event_type="run_failed")],
    )
    assert ended.error == "the LLM answered 502 «bad gateway»"
    assert store.get_run(run.id).error == ended.error
    assert store.verify_ledger(KEY).ok


def test_an_admin_s_text_holding_unstorable_characters_is_saved_as_it_can_be(store):
    spec = ObjectiveSpec(title="Weekly\x00 leads", description="Find\x00 them \udcff.")
    saved = store.create_objective(spec)
    assert (saved.title, saved.description) == ("Weekly leads", "Find them \ufffd.")


def _paused(store):
    """A run paused on send_email, waiting for its approval; returns StepStarted."""
    run = store.create_run(make_objective(store).id)
    store.claim_run(run.id, owner="worker", lease_s=60)
    return pause_on_email(store, run.id, owner="worker")


def test_an_approval_s_and_a_notification_s_text_holding_nul_is_stored_without_it(store):
    paused = _paused(store)
    (email,) = store.add_notifications(
        paused.approval, NotificationKind.APPROVAL_REQUEST, {"email": "admin@example.com"}
    )
    store.record_notification(
        email,
        status=NotificationStatus.FAILED,
        error="550 mailbox \x00unavailable",
        next_attempt_at=store.now(),
        event=NewEvent(event_type="notification_failed"),
    )
    assert store.run_notifications(paused.run.id)[0].last_error == "550 mailbox unavailable"
    decided = store.decide_approval(
        paused.approval.id,
        approve=False,
        by="ad\x00min",
        signing_key=KEY,
        reason="not \x00this week",
    )
    assert (decided.decided_by, decided.decision_reason) == ("admin", "not this week")
    assert store.verify_ledger(KEY).ok


def test_a_shop_answer_holding_a_lone_surrogate_is_kept_with_a_replacement(
    store, llm_server, wix_server
):
    wix_server.products[0]["name"] = "Mug \ud800 blue"
    objective = make_objective(store, tools_allowed=["wix_search_products"])
    llm_server.step("Look at the products.", "wix_search_products")
    llm_server.done("Looked.")
    settings = agent_settings(**wix_settings(wix_server))

    run = run_to_end(make_orchestrator(store, llm_server.url, settings=settings), objective.id)

    assert run.status is RunStatus.COMPLETED
    products = store.run_detail(run.id).tool_calls[0].result["products"]
    assert "Mug \ufffd blue" in [product["name"] for product in products]
    assert store.verify_ledger(KEY).ok


def test_an_llm_reply_holding_a_lone_surrogate_is_kept_with_a_replacement(store, llm_server):
    objective = make_objective(store)
    done = {"thought": "All done.", "tool": None, "args": None, "done": True, "summary": "ok"}
    # A literal surrogate, sent as the \\ud83d escape of the server's JSON; and a JSON
    # escape for one inside the step.
    llm_server.reply("Here \ud83d: " + json.dumps(done).replace("All", "All \\udfff"))

    run = run_to_end(make_orchestrator(store, llm_server.url), objective.id)

    assert (run.status, run.summary) == (RunStatus.COMPLETED, "ok")
    (step,) = store.list_steps(run.id)
    assert step.raw_output.startswith("Here \ufffd: ")
    assert step.thought == "All \ufffd done."
    assert store.verify_ledger(KEY).ok


def test_an_admin_name_no_database_can_hold_still_cancels_a_paused_run(store):
    paused = _paused(store)
    name = "ad\ud800min\x00" + "n" * 300  # a lone surrogate, a NUL, and too long

    cancelled = store.request_cancel(paused.run.id, by=name)

    assert cancelled.status is RunStatus.CANCELLED
    decided_by = store.get_approval(paused.approval.id).decided_by
    assert decided_by == ("ad\ufffdmin" + "n" * 300)[:MAX_ADMIN_NAME_CHARS]
    assert store.verify_ledger(KEY).ok


@pytest.mark.usefixtures("fresh_served_models")
def test_a_served_model_name_no_database_can_hold_is_never_asked_for(store, llm_server):
    llm_server.models = ["served\x00x", "served\ud800", "good-model"]
    llm_server.done("Done.")
    runtime = open_runtime(agent_settings(agent_llm_base_url=llm_server.url), store)

    run = run_to_end(runtime.orchestrator(), make_objective(store).id)

    assert (run.status, run.summary) == (RunStatus.COMPLETED, "Done.")
    assert [request["model"] for request in llm_server.requests] == ["good-model"]
    assert store.run_detail(run.id).steps[0].model == "good-model"


def test_a_model_name_longer_than_a_step_records_is_recorded_cut(store, llm_server):
    name = "org/" + "m" * 246  # 250 characters: the server's echo of it is not taken either
    llm_server.done("Done.")
    settings = agent_settings(agent_llm_base_url=llm_server.url, agent_ai_model=name)

    run = run_to_end(open_runtime(settings, store).orchestrator(), make_objective(store).id)

    assert run.status is RunStatus.COMPLETED
    assert [request["model"] for request in llm_server.requests] == [name]
    assert store.run_detail(run.id).steps[0].model == name[:MAX_MODEL_NAME_CHARS]
