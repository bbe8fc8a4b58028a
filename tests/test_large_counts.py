"""A run's totals go as far as its budgets allow (10**12 tokens, 30 days of execution), past
what a 32-bit counter holds, on both databases; a token count a server reports beyond any
real reply is taken as llm.MAX_REPLY_TOKENS, so that it stops the run on its budget instead
of failing its writes."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from agent_core import analytics
from agent_core.llm import MAX_REPLY_TOKENS
from agent_core.models import Budget, NewEvent, NewStep, RunChanges, RunStatus, StopReason
from tests.support import KEY, make_objective, make_orchestrator, run_to_end

INT32_MAX = 2**31 - 1
DAY_MS = 24 * 3600 * 1000
COUNT = json.dumps(
    {"thought": "Count.", "tool": "count_database", "args": {"table": "app_leads"}, "done": False}
)


def test_a_run_counts_tokens_past_two_billion(store, llm_server):
    objective = make_objective(
        store, tools_allowed=["count_database"], budget=Budget(max_tokens=10**12)
    )
    for _ in range(2):
        llm_server.reply(
            COUNT,
            prompt_tokens=900_000_000,
            completion_tokens=900_000_000,
        )
    llm_server.reply('{"thought": "t", "done": true, "summary": "Counted."}', prompt_tokens=10**30)

    run = run_to_end(make_orchestrator(store, llm_server.url), objective.id)

    assert (run.status, run.summary) == (RunStatus.COMPLETED, "Counted.")
    assert run.prompt_tokens == 1_800_000_000 + MAX_REPLY_TOKENS
    assert run.prompt_tokens > INT32_MAX
    assert [step.prompt_tokens for step in store.list_steps(run.id)] == [
        900_000_000,
        900_000_000,
        MAX_REPLY_TOKENS,
    ]
    assert store.get_run(run.id) == run
    assert store.verify_ledger(KEY).ok
    tokens = f"{run.prompt_tokens + run.completion_tokens:,}"  # 4,600,000,013
    text = analytics.report_text(analytics.report(store, since=run.created_at, prices={}))
    assert f"for {tokens} tokens" in text
    assert re.search(rf"^  Tokens per run \(1 run\) +{tokens}  +{tokens}  +{tokens}$", text, re.M)


def test_a_server_reporting_more_tokens_than_any_reply_stops_the_run_on_its_budget(
    store, llm_server
):
    objective = make_objective(store, tools_allowed=["count_database"])  # 200,000 tokens
    llm_server.reply(
        COUNT,
        prompt_tokens=1e300,
    )

    run = run_to_end(make_orchestrator(store, llm_server.url), objective.id)

    assert (run.status, run.stop_reason) == (RunStatus.FAILED, StopReason.BUDGET_TOKENS)
    assert run.prompt_tokens == MAX_REPLY_TOKENS


def test_a_run_counts_its_active_time_past_twenty_five_days(store):
    run = store.create_run(make_objective(store, budget=Budget(max_duration_ms=30 * DAY_MS)).id)
    store.claim_run(run.id, owner="worker", lease_s=60)
    active_ms = 29 * DAY_MS  # past 2**31 ms (24.8 days)

    written = store.start_step(
        run.id,
        NewStep(thought="t", model="m", prompt_tokens=3),
        run=RunChanges(
            owner="worker",
            active_ms=active_ms,
            lease_expires_at=store.now() + timedelta(seconds=60),
        ),
    )
    assert written.run.active_ms == active_ms
    ended = store.update_run(
        run.id,
        RunChanges(owner="worker", status=RunStatus.COMPLETED, active_ms=active_ms + 1),
        [NewEvent(event_type="run_completed")],
    )
    assert ended.active_ms == store.get_run(run.id).active_ms == active_ms + 1
