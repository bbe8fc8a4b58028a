"""Two processes on one database (dashboard and worker) never collide or block readers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from agent_core.store import Store
from agent_core.store.schema import objectives
from tests.support import KEY, make_objective

REPO = Path(__file__).resolve().parent.parent

_CLAIM_RUNS = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from agent_core.store import Store
    url, owner, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    store = Store.open(url)
    while not go.exists():
        time.sleep(0.005)
    claimed = []
    while batch := store.claim_next(owner=owner, limit=3, lease_s=600):
        claimed += [run.id for run in batch]
    print(",".join(claimed))
    """
)

_CREATE_RUNS = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from agent_core.store import Store
    url, objective_id, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    store = Store.open(url)
    while not go.exists():
        time.sleep(0.005)
    numbers = [store.create_run(objective_id).run_number for _ in range(count)]
    print(",".join(map(str, numbers)))
    """
)


def _released_together(script: str, arguments: list[list[str]], go: Path) -> list[str]:
    """What each process running `script` with its arguments (and `go`, the file it waits
    for) printed, once all were started, then released together."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, *each, str(go)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for each in arguments
    ]
    time.sleep(1.5)  # let every process import and connect, then release them together
    go.touch()
    printed = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        printed.append(out.strip())
    return printed


def test_runs_started_at_once_by_several_processes_get_unique_numbers(
    database_url, store, tmp_path
):
    objective = make_objective(store)
    printed = _released_together(
        _CREATE_RUNS, [[database_url, objective.id, "40"]] * 3, tmp_path / "go"
    )
    numbers = [int(n) for out in printed for n in out.split(",")]
    assert sorted(numbers) == list(range(1, 121))
    assert len({run.run_number for run in store.list_runs(limit=500)}) == 120
    assert store.get_objective(objective.id).last_run_number == 120
    assert store.verify_ledger(KEY).ok


def test_the_dashboard_reads_while_the_worker_holds_a_write(sqlite_database):
    worker = Store.open(sqlite_database)
    dashboard = Store.open(sqlite_database)
    try:
        objective = make_objective(worker)
        with worker.engine.connect() as conn:
            conn.execution_options(agent_write=True)
            with conn.begin():
                conn.execute(
                    objectives.update()
                    .where(objectives.c.id == objective.id)
                    .values(title="being edited")
                )
                started = time.monotonic()
                seen = dashboard.get_objective(objective.id)
                waited = time.monotonic() - started
        assert seen.title == "Weekly leads"  # the committed state, without waiting
        assert waited < 1.0
        assert dashboard.get_objective(objective.id).title == "being edited"
    finally:
        worker.close()
        dashboard.close()


def test_sqlite_uses_wal_and_foreign_keys(sqlite_store):
    with sqlite_store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    with (
        pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"),
        sqlite_store.engine.begin() as conn,
    ):
        conn.execute(
            sa.text(
                "INSERT INTO app_agent_runs (id, objective_id, run_number, status, trigger, "
                "created_at, updated_at) VALUES ('a', 'missing', 1, 'queued', 'manual', "
                "'2026-01-01', '2026-01-01')"
            )
        )


def test_postgresql_never_prepares_statements_so_transaction_poolers_work(pg_store):
    """Supabase's pooler in transaction mode cannot route prepared statements; psycopg
    prepares a query after 5 executions unless told not to."""
    objective = make_objective(pg_store)
    for _ in range(12):
        pg_store.get_objective(objective.id)
        pg_store.list_runs(objective_id=objective.id)
    with pg_store.engine.connect() as conn:
        for _ in range(12):
            conn.execute(sa.select(objectives.c.id).where(objectives.c.id == objective.id))
        assert conn.exec_driver_sql("SELECT count(*) FROM pg_prepared_statements").scalar() == 0


def test_workers_claiming_at_once_take_every_queued_run_once_oldest_first(
    database_url, store, tmp_path
):
    objective = make_objective(store)
    queued = [store.create_run(objective.id).id for _ in range(45)]
    printed = _released_together(
        _CLAIM_RUNS, [[database_url, f"worker-{n}"] for n in range(3)], tmp_path / "go"
    )
    claimed: list[str] = []
    for out in printed:
        mine = [run_id for run_id in out.split(",") if run_id]
        # Each worker takes the oldest of what is left: its own claims are in queue order.
        assert mine == sorted(mine, key=queued.index)
        claimed += mine
    assert sorted(claimed) == sorted(queued)
    runs = {run.id: run for run in store.list_runs(limit=100)}
    assert {runs[run_id].attempts for run_id in queued} == {1}
    assert all(runs[run_id].lease_owner.startswith("worker-") for run_id in queued)
    assert store.verify_ledger(KEY).ok
