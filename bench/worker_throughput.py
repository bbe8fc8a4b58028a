"""Worker throughput, claim latency and CPU per LLM call, beside the ideal and the targets,
all measured in the same run.

    PYTHONPATH=. .venv/bin/python bench/worker_throughput.py [--setups 1x1 8x1 32x1 32x2]

Runs of 5 LLM calls (4 steps with a read-only data tool, then done) against a stand-in
OpenAI-compatible server answering after a fixed 100 ms (bench/llm_standin.py, its own
process, one asyncio loop); the worker is `scheduler.py`, one process or several sharing the
concurrency, on a SQLite file (or `--database-url`).
Ideal throughput: concurrency / (5 x 0.1 s), over 20 runs per slot (a run's start-up and
the last runs' drain are part of the figure). Target: 90% of ideal.
CPU per call: the worker processes' CPU time (from /proc, each process counted from its
"started" line, so imports are left out) over the LLM calls they made; beside it, the CPU per
call at which the worker's processes, one core each, would be saturated at 90% of ideal
(a figure above that cannot reach the target), and the stand-in server's own CPU per reply.
Claim latency: with the worker idle, single runs are queued one at a time and the time from
queued to started is taken from the runs' own timestamps (default poll interval). Target:
p50 under 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import sqlalchemy as sa

from agent_core.models import ObjectiveSpec, RunStatus
from agent_core.store import Store
from tests.support import create_leads

REPO = Path(__file__).resolve().parent.parent
LLM_LATENCY_S = 0.1
CALLS_PER_RUN = 5
TARGET_OF_IDEAL = 0.90
TARGET_CLAIM_P50_S = 1.0
STARTED = re.compile(r"worker [^ ]*:(\d+):[0-9a-f]+ started")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait(predicate, timeout: float, *, every_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("benchmark timed out")
        time.sleep(every_s)


def _finished(store: Store, objective_id: str) -> int:
    counts = store.run_counts(objective_id=objective_id)
    return sum(n for status, n in counts.items() if status.is_final)


class WorkerProcesses:
    """`scheduler.py` with its log read as it comes: each worker process's CPU is counted
    from its "started" line on."""

    def __init__(self, url: str, llm_url: str, concurrency: int, processes: int) -> None:
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
        self.processes = processes
        self.baseline: dict[int, float] = {}
        self.popen = subprocess.Popen(
            [sys.executable, "scheduler.py"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            found = STARTED.search(line)
            if found:
                pid = int(found.group(1))
                self.baseline[pid] = _cpu_s(pid)

    def wait_started(self) -> None:
        _wait(lambda: len(self.baseline) >= self.processes, 120)
        self.baseline.setdefault(self.popen.pid, _cpu_s(self.popen.pid))  # the supervisor

    def cpu_since_started(self) -> float:
        return sum(_cpu_s(pid) - start for pid, start in list(self.baseline.items()))

    def stop(self) -> None:
        self.popen.terminate()
        self.popen.wait(timeout=60)


def _server_stats(llm_url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{llm_url}/stats", timeout=10) as response:
        return json.load(response)


def measure(
    folder: Path, llm_url: str, concurrency: int, processes: int, database_url: str | None
) -> dict[str, float]:
    url = database_url or f"sqlite:///{folder / f'c{concurrency}p{processes}.db'}"
    store = Store.open(url, check_schema=False)
    store.upgrade()
    if not sa.inspect(store.engine).has_table("app_leads"):  # setups may share a database
        create_leads(store, [])
    objective = store.create_objective(ObjectiveSpec(title="bench", description="count"))
    count = max(20, 20 * concurrency)
    for _ in range(count):
        store.create_run(objective.id)
    worker = WorkerProcesses(url, llm_url, concurrency, processes)
    try:
        worker.wait_started()
        server_before = _server_stats(llm_url)
        # A cheap count, not every run loaded: this process must not take the worker's CPU.
        _wait(lambda: _finished(store, objective.id) >= count, 600, every_s=0.2)
        worker_cpu = worker.cpu_since_started()
        server_after = _server_stats(llm_url)
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
        worker.stop()
        store.close()
    ideal = concurrency / (CALLS_PER_RUN * LLM_LATENCY_S)
    calls = count * CALLS_PER_RUN
    served = server_after["served"] - server_before["served"]
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
        "cpu_per_call_ms": 1000 * worker_cpu / calls,
        # one core per process, all busy, at 90% of ideal: CPU per call above this misses it
        "cpu_budget_ms": 1000 * processes / (TARGET_OF_IDEAL * ideal * CALLS_PER_RUN),
        "server_cpu_per_call_ms": 1000
        * (server_after["cpu_s"] - server_before["cpu_s"])
        / max(1, served),
    }


def _table(results: list[dict[str, float]], backend: str) -> str:
    lines = [
        f"worker throughput, runs of {CALLS_PER_RUN} LLM calls at "
        f"{LLM_LATENCY_S * 1000:.0f} ms each, {backend}, {os.cpu_count()} cores",
        f"{'conc':>4} {'proc':>4} {'runs':>5} {'runs/s':>7} {'ideal':>6} {'of ideal':>8} "
        f"{'target':>6} {'claim p50':>9} {'target':>7} {'claim p99':>9} "
        f"{'CPU/call':>8} {'budget':>7} {'server':>7}",
    ]
    for row in results:
        lines.append(
            f"{row['concurrency']:>4} {row['processes']:>4} {row['runs']:>5} "
            f"{row['throughput']:>7.1f} {row['ideal']:>6.1f} {row['ratio']:>8.0%} "
            f"{TARGET_OF_IDEAL:>6.0%} {row['latency_p50'] * 1000:>7.0f}ms "
            f"{TARGET_CLAIM_P50_S * 1000:>5.0f}ms {row['latency_p99'] * 1000:>7.0f}ms "
            f"{row['cpu_per_call_ms']:>6.2f}ms {row['cpu_budget_ms']:>5.2f}ms "
            f"{row['server_cpu_per_call_ms']:>5.2f}ms"
        )
    lines.append(
        "CPU/call: worker processes' CPU per LLM call; budget: the CPU per call that would "
        "fill one core per process at 90% of ideal; server: the stand-in's CPU per reply."
    )
    return "\n".join(lines)


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
        [sys.executable, str(REPO / "bench" / "llm_standin.py"), str(LLM_LATENCY_S)],
        cwd=REPO,
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
    print(_table(results, "PostgreSQL" if args.database_url else "SQLite"))


if __name__ == "__main__":
    main()
