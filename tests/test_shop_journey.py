"""The shop objective of the original design, end to end: "find this week's unpaid orders and
create a 10% coupon for each customer" runs against the Wix stand-in, pauses where policy
says (a coupon is a medium-risk side effect on a low-risk objective), is approved in the
dashboard, and creates each coupon exactly once."""

from __future__ import annotations

from agent_core.models import RunStatus, ToolCallStatus
from tests.dashboard_support import no_traceback, text
from tests.support import KEY, agent_settings, make_objective, make_orchestrator
from tests.test_wix_tools import wix_settings
from tests.wix_server import _order

COUPONS = "/stores/v2/coupons"


def test_unpaid_orders_get_a_coupon_each_once_approved_in_the_dashboard(
    dashboard, live_store, llm_server, wix_server
):
    wix_server.orders.append(
        _order(
            "10005",
            "2026-11-21T09:00:00.000Z",
            "max@example.com",
            "Max",
            "NOT_PAID",
            "NOT_FULFILLED",
            "18.00",
            [("Coffee Mug", 1)],
        )
    )
    objective = make_objective(
        live_store,
        title="Coupons for unpaid orders",
        description="Find this week's unpaid orders and create a 10% coupon for each customer.",
        tools_allowed=["wix_search_orders", "wix_create_coupon"],
        risk_level="low",
    )
    llm_server.step(
        "Find this week's unpaid orders.",
        "wix_search_orders",
        payment_status="NOT_PAID",
        created_from="2026-11-16",
    )
    for code, email in (("ZOE10", "zoe@example.com"), ("MAX10", "max@example.com")):
        llm_server.step(
            f"A 10% coupon for {email}.",
            "wix_create_coupon",
            code=code,
            name=f"10% for {email}",
            percent_off=10,
            usage_limit=1,
        )
    llm_server.done("Created ZOE10 and MAX10 for the two unpaid orders.")
    settings = agent_settings(agent_approval_flow=True, **wix_settings(wix_server))
    orchestrator = make_orchestrator(live_store, llm_server.url, settings=settings)

    def execute():
        run = live_store.list_runs(objective_id=objective.id)[0]
        assert live_store.claim_run(run.id, owner=orchestrator.owner, lease_s=300)
        return orchestrator.execute(run.id)

    live_store.create_run(objective.id)
    for code in ("ZOE10", "MAX10"):
        paused = execute()
        assert paused.status is RunStatus.PAUSED
        assert wix_server.creations == (0 if code == "ZOE10" else 1)
        (pending,) = [a for a in live_store.list_approvals() if a.status == "pending"]
        at = dashboard.open("approvals")
        no_traceback(at)
        assert f"The agent wants to create the shop coupon “{code}”." in text(at)
        at.button(key=f"approve_{pending.id}").click().run()
        assert "Approved" in text(at)

    finished = execute()
    assert finished.status is RunStatus.COMPLETED
    assert sorted(wix_server.coupons) == ["MAX10", "ZOE10"]
    assert wix_server.creations == 2
    assert len(wix_server.hits(COUPONS)) == 2  # each created once, never repeated
    calls = live_store.run_detail(finished.id).tool_calls
    assert [call.status for call in calls] == [ToolCallStatus.SUCCEEDED] * 3
    assert live_store.verify_ledger(KEY).ok
