"""The runtime's own cost per agent step, beside floors and peers measured in the same run.

    PYTHONPATH=. .venv/bin/python bench/step_overhead.py [--postgres-url URL] [--no-postgres]
        [--rounds N]

Each step: an LLM answering instantly in-process (ScriptedLLM), the policy check, a trivial
read-only, interruptible tool run through the gateway (on the calling thread, under the
gateway's watchdog, with its timeout), and the full ledger writes (step row, tool call row,
event with its hash chain, run counters), in one transaction. Runs of 10 and of 200 steps
show whether a step costs more as a run grows.

Floor: the same rows written by raw sqlite3 (WAL, synchronous=NORMAL, foreign keys checked,
as the runtime) in one transaction per step, one statement at a time, or by raw psycopg in
one round trip per step (pipeline mode: the statements and the COMMIT sent together, as our
step's one call is), with values prepared in advance: what the database itself costs for
those rows. A second PostgreSQL floor sends the same statements one at a time, a round trip
each, as a client without pipelining would. A second SQLite
floor runs the runtime's own run UPDATE (the whole run and the previous event's hash returned,
fenced by the lease owner) in place of the minimal one: what the runtime's SQL costs the
database, so that the difference to our step is its Python. A third runs the floor's SQL
after the least Python a durable agent step needs (its reply checked by pydantic, its event
hashed on the last, ids, time, the observation; `minimal_step`): what Python costs any
runtime before its own abstractions. Peers, each optional
(requirements-bench.txt; skipped with a printed line when not installed): the same loop as a
LangGraph graph with its SqliteSaver (durability "sync": each step's checkpoint saved before the
next step starts, the guarantee our step gives; its default, "async", saves it while the next
step runs, and costs about the same here), and as a DBOS workflow whose steps (one `@DBOS.step`
per agent step) are checkpointed in a fresh database of the same PostgreSQL server.

Each contender runs in a process of its own, which holds only it: a peer's background
threads (DBOS keeps several, polling its queues) and its heap would otherwise tax the
contenders sharing its interpreter (they made our step about 12% slower). Measurements are
interleaved: every round has ours, the floors and the peers run one after the other, so the
noise of a shared machine hits all of them alike; the figures are medians over the rounds.
The table ends with each target of the issue beside its figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import make_url

from agent_core.config import load_settings
from agent_core.llm import ScriptedLLM
from agent_core.loop import Orchestrator
from agent_core.models import ObjectiveSpec, RiskLevel, StepDecision
from agent_core.store import Store
from agent_core.store.hotpath import HotPath
from agent_core.tools import Tool, ToolRegistry
from agent_core.tools.gateway import ToolGateway

STEP = json.dumps(
    {"thought": "Look again.", "tool": "noop", "args": {}, "done": False, "summary": None}
)
DONE = json.dumps(
    {"thought": "Finished.", "tool": None, "args": None, "done": True, "summary": "ok"}
)
LENGTHS = (10, 200)
SHORT_RUNS_PER_ROUND = 3  # a 10-step run is short: three of them per round
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


class NoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


NOOP = Tool(
    name="noop",
    description="Does nothing, quickly.",
    risk=RiskLevel.LOW,
    side_effects=False,
    args_model=NoArgs,
    handler=lambda _args, _context: {"ok": True},
    interruptible=True,
)


Measure = Callable[[int], float]


class Contender(NamedTuple):
    """What is measured: seconds per step of a run of N steps."""

    label: str
    measure: Measure
    close: Callable[[], object] = lambda: None


# --- ours ----------------------------------------------------------------------------------------


def ours(url: str) -> Contender:
    store = Store.open(url, check_schema=False)
    store.upgrade()
    settings = load_settings(
        agent_enabled=True,
        agent_max_steps=10_000,
        agent_max_tool_calls=10_000,
        agent_max_duration_ms=10**9,
        agent_max_tokens_per_run=10**12,
        agent_llm_base_url="http://127.0.0.1:9/v1",
    )
    objective = store.create_objective(ObjectiveSpec(title="bench", description="bench"))
    tools = ToolRegistry([NOOP])
    gateway = ToolGateway()  # one per runtime, as the worker's orchestrator has

    def measure(steps: int) -> float:
        orchestrator = Orchestrator(
            store=store,
            llm=ScriptedLLM([STEP] * steps + [DONE], record=False),
            tools=tools,
            settings=settings,
            owner="bench",
            gateway=gateway,
        )
        run = store.create_run(objective.id)
        store.claim_run(run.id, owner="bench", lease_s=3600)
        started = time.perf_counter()
        ended = orchestrator.execute(run.id)
        elapsed = time.perf_counter() - started
        assert ended.status == "completed", ended
        return elapsed / (steps + 1)

    return Contender("ours", measure, store.close)


# --- floors --------------------------------------------------------------------------------------


def _floor_rows(
    run_key: str, step: int, now: Any, new_id: Callable[[], str]
) -> tuple[tuple[Any, ...], ...]:
    """The rows one step writes: run counters, its event, the step and its tool call."""
    step_id = new_id()
    event = '{"step_number": 1, "tool": "noop", "success": true, "model": "scripted"}'
    return (
        (step, now, run_key),
        (run_key, step, "step_completed", event, now, "0" * 64, "1" * 64),
        (
            step_id,
            run_key,
            step,
            "Look again.",
            "noop",
            "{}",
            STEP,
            '{"ok": true}',
            "completed",
            "scripted",
            100,
            20,
            0,
            now,
            now,
        ),
        (
            new_id(),
            run_key,
            step_id,
            "noop",
            "{}",
            "2" * 64,
            "low",
            "succeeded",
            '{"ok": true}',
            1,
            1,
            now,
            now,
        ),
    )


_FLOOR_SQL = (
    "UPDATE app_agent_runs SET steps_count = steps_count + 1, tool_calls_count = "
    "tool_calls_count + 1, prompt_tokens = prompt_tokens + 100, completion_tokens = "
    "completion_tokens + 20, event_seq = event_seq + 1, active_ms = {p}, updated_at = {p} "
    "WHERE id = {p} RETURNING event_seq",
    "INSERT INTO app_agent_events (run_id, seq, event_type, data, created_at, prev_hash, hash) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})",
    "INSERT INTO app_agent_run_steps (id, run_id, step_number, thought, tool, args, raw_output, "
    "result, status, model, prompt_tokens, completion_tokens, latency_ms, created_at, "
    "completed_at) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, "
    "{p}, {p})",
    "INSERT INTO app_agent_tool_calls (id, run_id, step_id, tool_name, args, args_hash, "
    "risk_level, status, result, duration_ms, attempts, created_at, completed_at) VALUES "
    "({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p})",
)


def _prepared_run(url: str, *, owner: str | None = None) -> str:
    store = Store.open(url, check_schema=False)
    store.upgrade()
    objective = store.create_objective(ObjectiveSpec(title="floor", description="floor"))
    run_id = store.create_run(objective.id).id
    if owner is not None:
        store.claim_run(run_id, owner=owner, lease_s=10**6)
    store.close()
    return run_id


# The run update a step of the runtime makes: its counters, active time and lease renewed,
# fenced by the lease owner, returning the whole run and the hash of the event before.
_RUNTIME_STEP_UPDATE = (
    ("active_ms", "lease_expires_at"),
    ("steps_count", "tool_calls_count", "prompt_tokens", "completion_tokens"),
    (),
    True,
)


def sqlite_floor(path: Path, runtime_update: bool = False) -> Contender:
    """The raw sqlite3 floor; with `runtime_update`, its run UPDATE is the runtime's own
    statement (built by the store's HotPath) instead of the minimal one: what the runtime's
    SQL costs the database, so that the rest of the runtime's step is its Python."""
    run_hex = uuid.UUID(_prepared_run(f"sqlite:///{path}", owner="floor")).hex
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")  # the runtime's integrity, checked alike
    statements = [sql.format(p="?") for sql in _FLOOR_SQL]
    if runtime_update:
        statements[0] = HotPath("sqlite")._run_update(_RUNTIME_STEP_UPDATE, False).sql
    counter = iter(range(1, 10**9))

    def step_rows(step: int, now: str) -> tuple[Any, ...]:
        rows = _floor_rows(run_hex, step, now, lambda: uuid.uuid4().hex)
        if not runtime_update:
            return rows
        update = {
            "p_run_id": run_hex,
            "p_owner": "floor",
            "p_now": now,
            "p_events": 1,
            "set_active_ms": step,
            "set_lease_expires_at": now,
            "add_steps_count": 1,
            "add_tool_calls_count": 1,
            "add_prompt_tokens": 100,
            "add_completion_tokens": 20,
        }
        return (update, *rows[1:])

    def measure(steps: int) -> float:
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        prepared = [step_rows(next(counter) + 1_000_000, now) for _ in range(steps)]
        started = time.perf_counter()
        for rows in prepared:
            connection.execute("BEGIN IMMEDIATE")
            for sql, values in zip(statements, rows, strict=True):
                connection.execute(sql, values).fetchall()
            connection.execute("COMMIT")
        return (time.perf_counter() - started) / steps

    return Contender("raw sqlite3", measure, connection.close)


def minimal_step(path: Path) -> Contender:
    """The least Python a durable agent step needs, on the floor's SQL (raw sqlite3, one
    transaction): the model's reply read and checked (json, then pydantic, as ours), its
    arguments checked, the tool called, the result encoded, the event's payload encoded
    canonically and hashed on the previous hash, two ids, the time, the observation added
    to the conversation. No policy, budgets, gateway, watchdog, run read back or models of
    what was written: what separates ours from this is the runtime itself."""
    run_hex = uuid.UUID(_prepared_run(f"sqlite:///{path}", owner="minimal")).hex
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    statements = [sql.format(p="?") for sql in _FLOOR_SQL]
    counter = iter(range(1_000_000, 10**9))
    StepDecision.model_rebuild()

    def measure(steps: int) -> float:
        messages: list[dict[str, str]] = []
        prev_hash = "0" * 64
        started = time.perf_counter()
        for _ in range(steps):
            step = next(counter)
            decision = StepDecision.model_validate(json.loads(STEP))
            args = NoArgs.model_validate(decision.args or {})
            result_json = json.dumps(NOOP.handler(args, None))  # type: ignore[arg-type]
            now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
            payload = {"step_number": step, "tool": decision.tool, "success": True}
            data = json.dumps(payload, sort_keys=True, separators=(",", ":"))
            event_hash = hashlib.sha256(f"{prev_hash}{data}{now}".encode()).hexdigest()
            step_id = uuid.uuid4().hex
            rows = (
                (step, now, run_hex),
                (run_hex, step, "step_completed", data, now, prev_hash, event_hash),
                (step_id, run_hex, step, decision.thought, decision.tool, "{}", STEP,
                 result_json, "completed", "scripted", 100, 20, 0, now, now),
                (uuid.uuid4().hex, run_hex, step_id, decision.tool, "{}", event_hash, "low",
                 "succeeded", result_json, 1, 1, now, now),
            )  # fmt: skip
            connection.execute("BEGIN IMMEDIATE")
            for sql, values in zip(statements, rows, strict=True):
                connection.execute(sql, values).fetchall()
            connection.execute("COMMIT")
            prev_hash = event_hash
            messages += [
                {"role": "assistant", "content": STEP},
                {"role": "user", "content": f"<observation>{result_json}</observation>"},
            ]
        return (time.perf_counter() - started) / steps

    return Contender("minimal Python step", measure, connection.close)


def postgres_floor(url: str, pipeline: bool = True) -> Contender:
    """The raw psycopg floor: a step's statements and its COMMIT in one round trip
    (`pipeline`), or each statement in a round trip of its own."""
    run_id = _prepared_run(url)
    connection = psycopg.connect(url.replace("+psycopg", ""), prepare_threshold=None)
    statements = [sql.format(p="%s") for sql in _FLOOR_SQL]
    counter = iter(range(1, 10**9))

    def measure(steps: int) -> float:
        now = datetime.now(UTC)
        prepared = [
            _floor_rows(run_id, next(counter) + 1_000_000, now, lambda: str(uuid.uuid4()))
            for _ in range(steps)
        ]
        started = time.perf_counter()
        for rows in prepared:
            with connection.pipeline() if pipeline else nullcontext():
                with connection.cursor() as cursor:
                    for sql, values in zip(statements, rows, strict=True):
                        cursor.execute(sql, values)
                connection.commit()
        return (time.perf_counter() - started) / steps

    return Contender("raw psycopg", measure, connection.close)


# --- peer: LangGraph -----------------------------------------------------------------------------


def langgraph_peer(path: Path) -> Contender | None:
    try:
        from importlib.metadata import version

        from langgraph.checkpoint.sqlite import SqliteSaver
        from langgraph.graph import END, START, StateGraph
        from typing_extensions import TypedDict
    except ImportError:
        return None

    class State(TypedDict):
        messages: list[dict[str, str]]
        decision: dict[str, Any]

    connection = sqlite3.connect(path, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    checkpointer = SqliteSaver(connection)

    def build(steps: int) -> Any:
        llm = ScriptedLLM([STEP] * steps + [DONE], record=False)

        def plan(state: State) -> dict[str, Any]:
            reply = llm.complete(state["messages"], timeout_s=60)
            return {
                "decision": json.loads(reply.content),
                "messages": [*state["messages"], {"role": "assistant", "content": reply.content}],
            }

        def act(state: State) -> dict[str, Any]:
            result = NOOP.handler(NoArgs(), None)  # type: ignore[arg-type]
            observation = {"role": "user", "content": f"<observation>{json.dumps(result)}"}
            return {"messages": [*state["messages"], observation]}

        graph = StateGraph(State)
        graph.add_node("plan", plan)
        graph.add_node("act", act)
        graph.add_edge(START, "plan")
        graph.add_conditional_edges(
            "plan", lambda state: END if state["decision"]["done"] else "act"
        )
        graph.add_edge("act", "plan")
        return graph.compile(checkpointer=checkpointer)

    def measure(steps: int) -> float:
        graph = build(steps)
        config = {"configurable": {"thread_id": uuid.uuid4().hex}, "recursion_limit": 10 * steps}
        initial = {"messages": [{"role": "user", "content": "objective"}], "decision": {}}
        started = time.perf_counter()
        graph.invoke(initial, config, durability="sync")  # each step saved before the next
        return (time.perf_counter() - started) / (steps + 1)

    label = f"LangGraph {version('langgraph')} + SqliteSaver, durability sync"
    return Contender(label, measure, connection.close)


# --- peer: DBOS ---------------------------------------------------------------------------------


def dbos_peer(url: str) -> Contender | None:
    """The loop as a DBOS workflow, one checkpointed step per agent step, its system database
    a fresh PostgreSQL database of the same server; None when DBOS is not installed."""
    try:
        from importlib.metadata import version

        from dbos import DBOS
    except ImportError:
        return None
    current: dict[str, ScriptedLLM] = {}

    @DBOS.step()
    def agent_step(turn: int) -> dict[str, Any]:
        messages = [{"role": "user", "content": f"objective, turn {turn}"}]
        reply = current["llm"].complete(messages, timeout_s=60)
        decision = json.loads(reply.content)
        if decision["done"]:
            return {"done": True, "summary": decision["summary"]}
        result = NOOP.handler(NoArgs(), None)  # type: ignore[arg-type]
        return {"done": False, "observation": f"<observation>{json.dumps(result)}"}

    @DBOS.workflow()
    def agent_loop() -> int:
        turn = 0
        while not agent_step(turn)["done"]:
            turn += 1
        return turn

    DBOS(config={"name": "step_overhead", "system_database_url": url, "log_level": "WARNING"})
    DBOS.launch()

    def measure(steps: int) -> float:
        current["llm"] = ScriptedLLM([STEP] * steps + [DONE], record=False)
        started = time.perf_counter()
        turns = agent_loop()
        elapsed = time.perf_counter() - started
        assert turns == steps, turns
        return elapsed / (steps + 1)

    return Contender(f"DBOS {version('dbos')}", measure, DBOS.destroy)


# --- each in a process of its own -------------------------------------------------------------


def _serve(
    connection: Any, factory: Callable[..., Contender | None], args: tuple[Any, ...]
) -> None:
    """The child's side: build the contender, send its label (None: not installed), then
    measure each run length asked for until None comes."""
    contender = factory(*args)
    connection.send(None if contender is None else contender.label)
    if contender is None:
        return
    try:
        while (steps := connection.recv()) is not None:
            connection.send(contender.measure(steps))
    finally:
        contender.close()


class Isolated:
    """A contender built and measured in a child process of its own (`factory(*args)`
    there); called like its measure, from the parent."""

    def __init__(self, factory: Callable[..., Contender | None], *args: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, factory, args), daemon=True)
        self._process.start()
        child.close()
        self.label: str | None = self._connection.recv()

    def __call__(self, steps: int) -> float:
        self._connection.send(steps)
        return float(self._connection.recv())

    def close(self) -> None:
        with suppress(OSError):
            self._connection.send(None)
        self._process.join(timeout=60)


# --- interleaved rounds --------------------------------------------------------------------------


def interleaved(contenders: dict[str, Measure], rounds: int) -> dict[tuple[str, int], float]:
    """Median seconds per step of every contender at every run length: each round runs every
    contender once (a short run SHORT_RUNS_PER_ROUND times) before the next round starts."""
    for measure in contenders.values():
        for steps in LENGTHS:
            measure(steps)  # warm caches, connections and compiled statements
    samples: dict[tuple[str, int], list[float]] = {
        (name, steps): [] for name in contenders for steps in LENGTHS
    }
    for _ in range(rounds):
        for steps in LENGTHS:
            runs = SHORT_RUNS_PER_ROUND if steps <= 10 else 1
            for name, measure in contenders.items():
                samples[name, steps] += [measure(steps) for _ in range(runs)]
    return {key: statistics.median(values) for key, values in samples.items()}


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms"


def targets(
    medians: dict[tuple[str, int], float], labels: dict[str, str]
) -> list[tuple[str, str, str, str, str, bool]]:
    """The issue's targets beside their figures: (what, ours, floor or peer, figure, target,
    met), for the contenders that were measured."""
    rows = []
    for backend, name, limit in (("SQLite", "sqlite", 2.0), ("PostgreSQL", "postgresql", 1.5)):
        if (f"{name} ours", 200) in medians:
            ours, floor = medians[f"{name} ours", 200], medians[f"{name} floor", 200]
            rows.append(
                (
                    f"step, {backend}, 200 steps",
                    _ms(ours),
                    f"raw floor {_ms(floor)}",
                    f"{ours / floor:.2f}x the floor",
                    f"within {limit:g}x of the floor",
                    ours / floor <= limit,
                )
            )
    for peer, backend, factor in (("langgraph", "sqlite", 5.0), ("dbos", "postgresql", 2.0)):
        if (peer, 200) in medians and (f"{backend} ours", 200) in medians:
            ours, theirs = medians[f"{backend} ours", 200], medians[peer, 200]
            rows.append(
                (
                    f"step vs {labels[peer]}, 200 steps",
                    _ms(ours),
                    f"{_ms(theirs)} per step",
                    f"{theirs / ours:.1f}x cheaper",
                    f"{factor:g}x cheaper",
                    theirs / ours >= factor,
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", default=DEFAULT_PG, help="an admin connection")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median)")
    args = parser.parse_args()
    print(f"step overhead, {datetime.now(UTC):%Y-%m-%d}, SQLite {sqlite3.sqlite_version}")
    contenders: dict[str, Isolated] = {}
    databases: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        try:
            _start_contenders(args, Path(folder), contenders, databases)
            medians = interleaved(dict(contenders), args.rounds)
        finally:
            for contender in contenders.values():
                contender.close()
            for url in databases:
                _drop_pg_database(args.postgres_url, url)
    labels = {name: contender.label or name for name, contender in contenders.items()}
    _print_report(medians, labels, args.rounds)


def _start_contenders(
    args: argparse.Namespace, folder: Path, contenders: dict[str, Isolated], databases: list[str]
) -> None:
    """Each contender in its own process, on its own database (a file of `folder`, or a
    fresh PostgreSQL database, listed in `databases` to be dropped); a peer that is not
    installed is left out with a printed line."""
    contenders["sqlite ours"] = Isolated(ours, f"sqlite:///{folder}/ours.db")
    contenders["sqlite floor"] = Isolated(sqlite_floor, folder / "f.db")
    contenders["sqlite floor, runtime's SQL"] = Isolated(sqlite_floor, folder / "fr.db", True)
    contenders["sqlite minimal step"] = Isolated(minimal_step, folder / "minimal.db")
    peers: list[tuple[str, str, Callable[..., Contender | None], Any]] = [
        ("langgraph", "LangGraph", langgraph_peer, folder / "langgraph.db")
    ]
    if not args.no_postgres:
        urls = [_create_pg_database(args.postgres_url) for _ in range(4)]
        databases += [url for url in urls if url]
        if all(urls):
            contenders["postgresql ours"] = Isolated(ours, urls[0])
            contenders["postgresql floor"] = Isolated(postgres_floor, urls[1])
            contenders["postgresql floor, a round trip per statement"] = Isolated(
                postgres_floor, urls[3], False
            )
            peers.append(("dbos", "DBOS", dbos_peer, str(urls[2]).replace("+psycopg", "")))
        else:
            print("postgresql: not measured (server not reachable at --postgres-url)")
    for name, product, factory, where in peers:
        peer = Isolated(factory, where)
        if peer.label is None:
            peer.close()
            print(f"peer: {product} not installed (pip install -r requirements-bench.txt)")
        else:
            contenders[name] = peer


def _print_report(
    medians: dict[tuple[str, int], float], labels: dict[str, str], rounds: int
) -> None:
    print(f"medians over {rounds} interleaved rounds, per step")
    print(f"{'backend':<12}{'steps':>6}{'ours':>12}{'floor':>12}{'ratio':>8}")
    for backend in ("sqlite", "postgresql"):
        for steps in LENGTHS:
            if (f"{backend} ours", steps) not in medians:
                continue
            mine, floor = medians[f"{backend} ours", steps], medians[f"{backend} floor", steps]
            print(
                f"{backend:<12}{steps:>6}{mine * 1e3:>10.3f}ms{floor * 1e3:>10.3f}ms"
                f"{mine / floor:>7.2f}x"
            )
    mine, floor = medians["sqlite ours", 200], medians["sqlite floor", 200]
    runtime_sql = medians.get(("sqlite floor, runtime's SQL", 200))
    if runtime_sql is not None:
        print(
            f"sqlite, 200 steps: raw sqlite3 running the runtime's own run update (whole run "
            f"and previous hash returned) {runtime_sql * 1e3:.3f} ms, {runtime_sql / floor:.2f}x "
            f"the floor; the rest of our step, {(mine - runtime_sql) * 1e3:.3f} ms, is Python"
        )
    minimal = medians.get(("sqlite minimal step", 200))
    if minimal is not None:
        print(
            f"sqlite, 200 steps: the least Python a durable agent step needs (the reply "
            f"checked by pydantic, the event hashed on the last, ids, time, the observation) "
            f"on the floor's SQL: {minimal * 1e3:.3f} ms, {minimal / floor:.2f}x the floor; "
            f"ours is {mine / minimal:.2f}x that"
        )
    per_statement = medians.get(("postgresql floor, a round trip per statement", 200))
    if per_statement is not None:
        mine, floor = medians["postgresql ours", 200], medians["postgresql floor", 200]
        print(
            f"postgresql, 200 steps: raw psycopg sending the floor's statements one at a time "
            f"(a round trip each) {per_statement * 1e3:.3f} ms, {per_statement / floor:.2f}x "
            f"the floor (one round trip); ours is {mine / per_statement:.2f}x that"
        )
    growth = medians["sqlite ours", 200] / medians["sqlite ours", 10]
    print(f"sqlite growth from 10 to 200 steps: {growth:.2f}x per step (1.00 = none)")
    for peer, backend in (("langgraph", "sqlite"), ("dbos", "postgresql")):
        for steps in LENGTHS:
            if (peer, steps) in medians and (f"{backend} ours", steps) in medians:
                theirs, mine = medians[peer, steps], medians[f"{backend} ours", steps]
                print(
                    f"{labels[peer]} ({backend}), {steps} steps: {theirs * 1e3:.3f} ms/step; "
                    f"ours is {theirs / mine:.1f}x cheaper"
                )
    print()
    print("| what | ours | floor / peer | figure | target | met |")
    print("| --- | --- | --- | --- | --- | --- |")
    for what, mine, other, figure, target, met in targets(medians, labels):
        print(f"| {what} | {mine} | {other} | {figure} | {target} | {'yes' if met else 'no'} |")


def _create_pg_database(admin_url: str) -> str | None:
    name = f"agent_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error:
        return None
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _drop_pg_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    with suppress(psycopg.Error), psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
