"""Ledger cost: appending events, sealing and verifying the chain (and the seal), beside
pure hashing of the same chain measured in the same run (the floor no database can beat).

    .venv/bin/python bench/ledger.py [--database-url URL] [--events N] [--runs N]

Prints events per second for each phase and its ratio to the floor, and the seal's time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from agent_core.models import NewEvent, ObjectiveSpec
from agent_core.store import Store
from agent_core.store.ledger import GENESIS_HASH, event_hash, to_json_value
from agent_core.store.signing import LedgerKey

BATCH = 10  # events per transaction, about what one agent step writes
_NOW = datetime.now(UTC)


def _payload(n: int) -> dict[str, object]:
    return {"step_number": n, "tool": "read_database", "args": {"table": "app_leads", "limit": 10}}


def floor_hashing(count: int) -> float:
    started = time.perf_counter()
    previous = GENESIS_HASH
    for n in range(count):
        previous = event_hash(
            run_id="00000000-0000-4000-8000-000000000000",
            seq=n + 1,
            event_type="step_completed",
            data=to_json_value(_payload(n)),
            created_at=_NOW,
            prev_hash=previous,
        )
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=1, help="runs the events are spread over")
    args = parser.parse_args()
    key = LedgerKey("bench-secret-key")
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        store = Store.open(url, check_schema=False)
        store.upgrade()
        objective = store.create_objective(ObjectiveSpec(title="bench", description="bench"))
        runs = [store.create_run(objective.id) for _ in range(args.runs)]

        floor = floor_hashing(args.events)
        started = time.perf_counter()
        for batch, first in enumerate(range(0, args.events, BATCH)):
            store.append_events(
                runs[batch % len(runs)].id,
                [
                    NewEvent(event_type="step_completed", data=_payload(n))
                    for n in range(first, min(first + BATCH, args.events))
                ],
            )
        append_rate = args.events / (time.perf_counter() - started)
        started = time.perf_counter()
        seal = store.seal_ledger(key)
        seal_s = time.perf_counter() - started
        started = time.perf_counter()
        report = store.verify_ledger(key)
        verify_rate = report.events_checked / (time.perf_counter() - started)
        assert report.ok, (report.breaks, report.seal_breaks)
        store.close()

    backend = url.split(":", 1)[0]
    print(
        f"ledger benchmark on {backend}, {args.events} events in {args.runs} run(s), "
        f"{BATCH} per transaction"
    )
    print(f"  floor (hash the chain in memory) {floor:>10,.0f} events/s")
    print(
        f"  append                           {append_rate:>10,.0f} events/s  "
        f"({append_rate / floor:.1%} of floor)"
    )
    print(f"  seal ({seal.entries_count} run heads)          {seal_s * 1000:>10,.0f} ms")
    print(
        f"  verify (chains and seals)        {verify_rate:>10,.0f} events/s  "
        f"({verify_rate / floor:.1%} of floor)"
    )


if __name__ == "__main__":
    main()
