"""`python -m agent_core report`: the Analytics page's figures for scripts and cron."""

from __future__ import annotations

import json

from agent_core.models import RunChanges, RunStatus
from tests.support import make_objective, run_cli


def test_report_prints_the_figures_in_words_and_as_one_json_document(
    live_store, database_url, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", database_url)
    objective = make_objective(live_store, title="Weekly leads")
    run = live_store.create_run(objective.id)
    live_store.claim_run(run.id, owner="w", lease_s=60)
    live_store.update_run(run.id, RunChanges(owner="w", status=RunStatus.COMPLETED, summary="ok"))

    text = run_cli(["report", "--since", "7d"])
    assert text.exit_code == 0, text.stderr
    assert text.stdout.startswith("Run analytics from ")
    assert "Runs: 1 run (1 completed, 0 failed" in text.stdout
    assert "Success rate: 100% of the 1 run that ended" in text.stdout

    document = json.loads(run_cli(["report", "--json", "--objective", objective.id]).stdout)
    assert document["headline"]["runs"] == 1
    assert document["objective_id"] == objective.id


def test_a_bad_range_is_one_sentence_with_exit_code_2(database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    result = run_cli(["report", "--since", "yesterday"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --since must be a duration such as 7d, 24h or 30m, or a date such as "
        "2026-11-01, not 'yesterday'\n"
    )
