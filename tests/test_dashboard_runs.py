"""Runs in the dashboard: the list (filters, paging by the store) and a run's page, which
tells in plain words what each step did, never dresses failures up as success, cancels, and
pages a long timeline."""

from __future__ import annotations

from agent_core.models import (
    NewStep,
    NewToolCall,
    RiskLevel,
    RunChanges,
    RunStatus,
    StepOutcome,
    StepStatus,
    ToolCallStatus,
)
from tests.dashboard_support import no_traceback, text, visible
from tests.support import agent_settings, create_leads, make_objective, make_orchestrator

OWNER = "test-worker"


def completed_run(store, llm_server):
    """A real run: it reads the leads, tries a table it may not read, then finishes."""
    create_leads(
        store,
        [
            {
                "id": 1,
                "name": "Ada",
                "email": "ada@example.com",
                "score": 9,
                "followed_up": False,
                "created_at": store.now(),
            },
        ],
    )
    objective = make_objective(store, title="Weekly leads", tools_allowed=["read_database"])
    llm_server.step("Read the leads.", "read_database", table="app_leads")
    llm_server.step("Look at the approvals too.", "read_database", table="app_agent_approvals")
    llm_server.done("One lead, Ada.")
    orchestrator = make_orchestrator(store, llm_server.url, settings=agent_settings())
    run = store.create_run(objective.id)
    store.claim_run(run.id, owner=orchestrator.owner, lease_s=300)
    return orchestrator.execute(run.id)


def test_a_runs_page_tells_what_each_step_did_with_its_result_and_error(
    dashboard, live_store, llm_server
):
    run = completed_run(live_store, llm_server)
    assert run.status is RunStatus.COMPLETED
    at = dashboard.open("run", id=run.id)
    no_traceback(at)
    shown = text(at)
    assert "Run #1 · Weekly leads" in shown
    # completed, but not a plain success: a call failed
    assert "completed, but 1 tool call did not succeed" in shown
    assert "**Summary.** One lead, Ada." in shown
    assert "**Step 1: read rows of app_leads (read_database) — succeeded.**" in shown
    assert "*Why:* Read the leads." in shown
    assert "ada@example.com" in shown  # the result, shown inline when short
    assert "**Step 2: read rows of app_agent_approvals (read_database) — failed.**" in shown
    assert [error for error in at.error if "app_agent_approvals" in visible(error.value)]
    assert "**Step 3: the agent finished and wrote its summary.**" in shown
    assert "Objective reached: One lead, Ada." in shown  # the ledger, in words
    assert "test-model" in shown


def test_the_runs_list_filters_and_pages_in_the_store(dashboard, live_store):
    leads = make_objective(live_store, title="Weekly leads")
    other = make_objective(live_store, title="Invoices")
    for _ in range(30):
        live_store.create_run(leads.id)
    failed = live_store.create_run(other.id)
    live_store.claim_run(failed.id, owner=OWNER, lease_s=60)
    live_store.update_run(
        failed.id,
        RunChanges(owner=OWNER, status=RunStatus.FAILED, stop_reason="budget_steps", error="x"),
    )

    at = dashboard.open("runs")
    no_traceback(at)
    assert "31 runs" in text(at)
    assert len(at.get("page_link")) >= 25
    assert at.number_input(key="runs_page").max == 2
    at.number_input(key="runs_page").set_value(2).run()
    assert "Run #1 · Weekly leads" in [link.label for link in at.get("page_link")]

    at.multiselect(key="runs_status").select("failed").run()
    shown = text(at)
    assert "1 run" in shown
    assert "The run used all the steps its budget allows before finishing." in shown
    assert [link.label for link in at.get("page_link") if "·" in link.label] == [
        "Run #1 · Invoices"
    ]
    at.multiselect(key="runs_status").unselect("failed").run()
    at.selectbox(key="runs_objective").select(other.id).run()
    assert "1 run" in text(at)


def test_an_empty_list_says_what_to_do(dashboard):
    at = dashboard.open("runs")
    assert "No run yet. Open an objective and press “Run now”" in text(at)


def test_a_queued_run_can_be_cancelled_from_its_page(dashboard, live_store):
    run = live_store.create_run(make_objective(live_store).id)
    at = dashboard.open("run", id=run.id)
    at.button(key="cancel_run").click().run()
    no_traceback(at)
    cancelled = live_store.get_run(run.id)
    assert cancelled.status is RunStatus.CANCELLED
    assert "An admin cancelled the run." in text(at)
    assert not [button for button in at.button if button.key == "cancel_run"]


def test_a_500_step_run_pages_its_timeline(dashboard, live_store):
    run = live_store.create_run(make_objective(live_store, title="Long").id)
    live_store.claim_run(run.id, owner=OWNER, lease_s=600)
    for number in range(1, 501):
        live_store.start_step(
            run.id,
            NewStep(thought=f"thought {number}", tool="count_database", args={"table": "t"}),
            tool_call=NewToolCall(
                tool_name="count_database", args={"table": "t"}, risk_level=RiskLevel.LOW
            ),
            outcome=StepOutcome(
                step_status=StepStatus.COMPLETED,
                result={"count": number},
                tool_call_status=ToolCallStatus.SUCCEEDED,
            ),
        )
    at = dashboard.open("run", id=run.id)
    no_traceback(at)
    shown = text(at)
    assert "*Why:* thought 1" in shown
    assert "*Why:* thought 50" in shown
    assert "*Why:* thought 51" not in shown
    assert at.number_input(key="timeline_page").max == 10
    at.number_input(key="timeline_page").set_value(10).run()
    shown = text(at)
    assert "*Why:* thought 500" in shown
    assert "*Why:* thought 450" not in shown


def test_an_unknown_run_is_a_sentence(dashboard):
    at = dashboard.open("run", id="00000000-0000-4000-8000-000000000000")
    no_traceback(at)
    assert "No run has id 00000000-0000-4000-8000-000000000000." in text(at)
