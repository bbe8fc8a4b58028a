"""Worker throughput and queued-to-started latency, beside the ideal measured in the same run.

    PYTHONPATH=. .venv/bin/python bench/worker_throughput.py [--concurrency 1 8 32]

Runs of 5 LLM calls (4 steps with a read-only data tool, then done) against the scripted
OpenAI-compatible server replying after a fixed 100 ms, in its own process; the worker
(`scheduler.py`, one process or several sharing the concurrency) on a SQLite file.
Ideal throughput: concurrency / (5 x 0.1 s), over 20 runs per slot (a run's start-up and
the last runs' drain are part of the figure).
Latency: with the worker idle, single runs are queued one at a time and the time from queued
to started is taken from the runs' own timestamps (default poll interval).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent_core.models import ObjectiveSpec, RunStatus
from agent_core.store import Store
from tests.support import create_leads

REPO = Path(__file__).resolve().parent.parent
LLM_LATENCY_S = 0.1
CALLS_PER_RUN = 5

_SERVER = """
import json, sys, time
from tests.llm_server import ScriptedLLMServer

def respond(body):
    turns = sum(1 for m in body["messages"] if m["role"] == "assistant")
    if turns < 4:
        return json.dumps({"thought": "count", "tool": "count_database",
                           "args": {"table": "app_leads"}, "done": False})
    return json.dumps({"thought": "done", "done": True, "summary": "counted"})

server = ScriptedLLMServer(latency_s=float(sys.argv[1]))
server.responder = respond
server.start()
print(server.url, flush=True)
while True:
    time.sleep(3600)
"""


def _wait(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("benchmark timed out")
        time.sleep(0.05)


def _worker(url: str, llm_url: str, concurrency: int, processes: int = 1) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": url,
        "AGENT_ENABLED": "true",
        "AGENT_LLM_BASE_URL": llm_url,
        "AGENT_AI_MODEL": "bench-model",
        "AGENT_DATA_TABLES": "app_leads",
        "AGENT_WORKER_CONCURRENCY": str(concurrency),
        "AGENT_WORKER_PROCESSES": str(processes),
    }
    return subprocess.Popen(
        [sys.executable, "scheduler.py"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def measure(
    folder: Path, llm_url: str, concurrency: int, processes: int, database_url: str | None
) -> dict[str, float]:
    url = database_url or f"sqlite:///{folder / f'c{concurrency}p{processes}.db'}"
    store = Store.open(url, check_schema=False)
    store.upgrade()
    create_leads(store, [])
    objective = store.create_objective(ObjectiveSpec(title="bench", description="count"))
    count = max(20, 20 * concurrency)
    for _ in range(count):
        store.create_run(objective.id)
    worker = _worker(url, llm_url, concurrency, processes)
    try:
        _wait(lambda: all(r.status.is_final for r in store.list_runs(limit=count)), 600)
        ended = store.list_runs(limit=count)
        assert {r.status for r in ended} == {RunStatus.COMPLETED}, {r.status for r in ended}
        first = min(r.started_at for r in ended if r.started_at)
        last = max(r.completed_at for r in ended if r.completed_at)
        throughput = count / (last - first).total_seconds()

        latencies = []
        for _ in range(30):  # the worker is idle now: one run at a time
            run = store.create_run(objective.id)
            _wait(lambda run=run: store.get_run(run.id).status.is_final, 60)
            done = store.get_run(run.id)
            latencies.append((done.started_at - done.created_at).total_seconds())
            time.sleep(0.05)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        store.close()
    ideal = concurrency / (CALLS_PER_RUN * LLM_LATENCY_S)
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "concurrency": concurrency,
        "processes": processes,
        "runs": count,
        "throughput": throughput,
        "ideal": ideal,
        "ratio": throughput / ideal,
        "latency_p50": statistics.median(latencies),
        "latency_p99": quantiles[98],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--setups",
        nargs="+",
        default=["1x1", "8x1", "32x1", "32x2"],
        help="CONCURRENCYxPROCESSES: total runs at once, and worker processes sharing them",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--database-url", help="an empty PostgreSQL database (default: a new SQLite file)"
    )
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(LLM_LATENCY_S)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        llm_url = server.stdout.readline().strip() if server.stdout else ""
        results = []
        with tempfile.TemporaryDirectory() as folder:
            for setup in args.setups:
                concurrency, processes = (int(part) for part in setup.split("x"))
                results.append(
                    measure(Path(folder), llm_url, concurrency, processes, args.database_url)
                )
    finally:
        server.terminate()
        server.wait(timeout=30)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"worker throughput, runs of {CALLS_PER_RUN} LLM calls at "
        f"{LLM_LATENCY_S * 1000:.0f} ms each, {backend}"
    )
    print(
        f"{'concurrency':>11}{'processes':>10}{'runs':>6}{'runs/s':>9}{'ideal':>8}"
        f"{'of ideal':>10}{'claim p50':>11}{'claim p99':>11}"
    )
    for row in results:
        print(
            f"{row['concurrency']:>11}{row['processes']:>10}{row['runs']:>6}"
            f"{row['throughput']:>9.1f}{row['ideal']:>8.1f}{row['ratio']:>9.0%}"
            f"{row['latency_p50'] * 1000:>9.0f}ms{row['latency_p99'] * 1000:>9.0f}ms"
        )


if __name__ == "__main__":
    main()
