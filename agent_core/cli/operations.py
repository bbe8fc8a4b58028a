"""Running the runtime: `db upgrade`, `config check` (listed first in `--help`), `worker`,
`worker status`, `maintenance`, `up`, `tools list` and `ledger verify`.

Each handler imports what its command needs: the worker (APScheduler), the supervisor of
`up`, the tools and their clients are loaded only by the commands that use them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from agent_core.cli.common import Commands, Context, Output, document
from agent_core.errors import InvalidInput


def register_setup(commands: Commands) -> None:
    db = commands.group("db", "the database schema")
    db.command("upgrade", _db_upgrade, "create or migrate the schema on DATABASE_URL")

    config = commands.group("config", "the settings")
    config.command("check", _config_check, "validate and print the settings (secrets hidden)")


def register(commands: Commands) -> None:
    worker = commands.command(
        "worker",
        _worker,
        "execute queued, resumed and scheduled runs (what scheduler.py starts)",
        "Execute queued, resumed and scheduled runs until stopped (SIGTERM or "
        "Ctrl-C); `worker status` lists the live workers.",
    )
    worker.add_argument("action", nargs="?", choices=["run", "status"], default="run")
    worker.add_argument("--once", action="store_true", help="run what is due now, then exit")
    worker.add_argument(
        "--concurrency", type=int, help="runs at once in all (AGENT_WORKER_CONCURRENCY)"
    )
    worker.add_argument(
        "--processes", type=int, help="worker processes sharing them (AGENT_WORKER_PROCESSES)"
    )
    # One of a supervisor's processes: its log says it stopped, and the supervisor says so
    # for all of them, so it prints nothing more.
    worker.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)

    commands.command(
        "maintenance",
        _maintenance,
        "expire approvals, prune old events, retry notifications, send reminders",
    )

    up = commands.command(
        "up",
        _up,
        "start the dashboard and a worker together (Ctrl-C stops both)",
        "Start the dashboard and a worker, restart a worker that dies, and stop "
        "both on Ctrl-C or SIGTERM. Prints the address to open.",
    )
    up.add_argument("--host", default="127.0.0.1", help="address to serve on (127.0.0.1)")
    up.add_argument("--port", type=int, default=8501, help="port of the dashboard (8501)")
    up.add_argument(
        "--demo",
        action="store_true",
        help="example data and a scripted demo model, in agent_demo.db: no LLM needed",
    )

    tools = commands.group("tools", "what the agent can do")
    tools.command("list", _tools_list, "every registered tool, its risk and arguments")

    ledger = commands.group("ledger", "the tamper-evident audit ledger")
    verify = ledger.command(
        "verify", _ledger_verify, "recompute every hash chain and check the signed seals"
    )
    verify.add_argument("--run", metavar="RUN_ID", help="verify one run only")
    ledger.command(
        "seal",
        _ledger_seal,
        "sign the heads of the runs whose ledger grew (maintenance does it on every pass)",
    )


# --- handlers ---------------------------------------------------------------------------------


def _db_upgrade(_: argparse.Namespace, context: Context) -> Output:
    from agent_core.config import redact_url

    store = context.store(check_schema=False)
    before = store.schema_revision()
    revision = store.upgrade()
    where = redact_url(context.settings.database_url)
    done = (
        "was already at"
        if before == revision
        else "had no schema: created at"
        if before is None
        else f"upgraded from {before} to"
    )
    return Output(
        {"revision": revision, "previous_revision": before, "database": where},
        f"database {where} {done} schema revision {revision}",
    )


def _config_check(_: argparse.Namespace, context: Context) -> Output:
    from agent_core.config import settings_summary

    summary = dict(settings_summary(context.settings))
    width = max(len(name) for name in summary)
    shown = {name: _plain(value) for name, value in summary.items()}
    if summary.get("agent_data_database_url") is None:  # unset: the data tools use the runtime's
        shown["agent_data_database_url"] = "(DATABASE_URL)"
    lines = [f"{name.upper():<{width}}  {value}" for name, value in shown.items()]
    return Output(summary, "\n".join(lines))


def _worker(args: argparse.Namespace, context: Context) -> Output:
    if args.action == "status":
        return _worker_status(context)
    from agent_core import runs
    from agent_core.worker import Worker, configure_logging, split_concurrency, supervise

    if args.concurrency is not None and args.concurrency < 1:
        raise InvalidInput("--concurrency must be at least 1")
    runs.ensure_enabled(context.settings, "run the worker")
    if args.processes is not None and args.processes < 1:
        raise InvalidInput("--processes must be at least 1")
    configure_logging()
    store = context.store(check_schema=False)
    store.upgrade()
    store.check_schema()
    settings = context.settings
    processes = args.processes or settings.agent_worker_processes
    concurrency = args.concurrency or settings.agent_worker_concurrency
    if processes > 1 and not args.once:
        store.close()
        supervise(
            split_concurrency(concurrency, processes), shutdown_s=settings.agent_worker_shutdown_s
        )
        return Output({"stopped": True}, "workers stopped")
    from agent_core.config import reload_settings
    from agent_core.render import counted

    worker = Worker(context.runtime(), concurrency=concurrency, load_settings=reload_settings)
    if args.once:
        executed = worker.run_once()
        return Output(
            {"worker": worker.id, "executed": executed},
            f"worker {worker.id}: {counted(executed, 'run')} executed",
        )
    stop = lambda *_: worker.request_stop()  # noqa: E731
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda *_: worker.request_reload())
    worker.start()
    try:
        worker.wait()
    finally:
        worker.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    said = "" if args.supervised else f"worker {worker.id} stopped"
    return Output({"worker": worker.id, "stopped": True}, said)


def _worker_status(context: Context) -> Output:
    from agent_core import runs
    from agent_core.render import format_table, format_time

    live = runs.live_workers(context.store(), context.settings)
    table = format_table(
        ["WORKER", "HOST", "PID", "RUNS", "LAST HEARTBEAT"],
        [
            [
                w.id,
                w.hostname,
                w.pid,
                f"{len(w.running)}/{w.concurrency}",
                format_time(w.heartbeat_at),
            ]
            for w in live
        ],
        empty="no live worker: start one with `.venv/bin/python scheduler.py`",
    )
    if live:
        table += "\n" + "\n".join(f"  {w.id} runs: {', '.join(w.running) or '-'}" for w in live)
    return Output(document(live), table)


def _maintenance(_: argparse.Namespace, context: Context) -> Output:
    from agent_core.maintenance import run_maintenance

    runtime = context.runtime()
    report = run_maintenance(runtime.store, context.settings, runtime.notifier)
    return Output(asdict(report), "\n".join(report.lines()))


def _up(args: argparse.Namespace, context: Context) -> Output:
    from agent_core.config import ensure_secret_key, load_settings
    from agent_core.demo import DEMO_DATABASE_URL, seed_demo
    from agent_core.store import Store
    from agent_core.up import Supervisor, child_environment

    if not 1 <= args.port <= 65535:
        raise InvalidInput("--port must be between 1 and 65535")
    settings = context.settings
    if args.demo:
        settings = load_settings(
            database_url=DEMO_DATABASE_URL,
            agent_data_database_url=DEMO_DATABASE_URL,
            agent_demo=True,
            agent_enabled=True,
        )
    settings = ensure_secret_key(settings)
    store = Store.open(settings.database_url, check_schema=False)
    try:
        store.upgrade()
        if args.demo:
            seed_demo(store)
    finally:
        store.close()
    env = child_environment(
        os.environ,
        host=args.host,
        port=args.port,
        demo=args.demo,
        secret_key=settings.agent_secret_key.get_secret_value(),  # type: ignore[union-attr]
    )
    if args.demo:
        env["DATABASE_URL"] = env["AGENT_DATA_DATABASE_URL"] = DEMO_DATABASE_URL
    say = _say(args)
    if not settings.agent_enabled:
        say(
            "warning: AGENT_ENABLED is not true: the dashboard starts, the worker does not "
            "(set AGENT_ENABLED=true in .env to run objectives)"
        )
    if args.host not in ("127.0.0.1", "localhost", "::1") and settings.agent_admin_password is None:
        say(
            f"warning: serving on {args.host} without AGENT_ADMIN_PASSWORD (or an [auth] "
            "login): the dashboard shows no data until one is set"
        )
    supervisor = Supervisor(
        env=env,
        host=args.host,
        port=args.port,
        shutdown_s=settings.agent_worker_shutdown_s,
        say=say,
        with_worker=settings.agent_enabled,
        demo=args.demo,
    )
    code = supervisor.run()
    return Output({"url": supervisor.url, "exit_code": code}, "", exit_code=code)


def _say(args: argparse.Namespace) -> Callable[[str], None]:
    """Progress lines: on stdout, or on stderr when stdout holds the one JSON document."""
    stream = sys.stderr if getattr(args, "json", False) else sys.stdout

    def say(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    return say


def _tools_list(_: argparse.Namespace, context: Context) -> Output:
    """Every tool with its risk, and `problem`: why it cannot run as configured (or null)."""
    from agent_core.render import format_table

    registry = context.tools()
    described = [{**tool.describe(), "problem": tool.problem()} for tool in registry]
    text = format_table(
        ["TOOL", "RISK", "SIDE EFFECTS", "TIMEOUT", "READY", "DESCRIPTION"],
        [
            [
                item["name"],
                item["risk"],
                "yes" if item["side_effects"] else "no",
                f"{item['timeout_s']:g} s",
                "no" if item["problem"] else "yes",
                item["description"],
            ]
            for item in described
        ],
        empty="no tools",
    )
    not_ready = [f"{item['name']}: {item['problem']}" for item in described if item["problem"]]
    if not_ready:
        text += "\n\nnot ready as configured:\n" + "\n".join(f"  {line}" for line in not_ready)
    if registry.problems:
        text += "\n\n" + "\n".join(f"warning: {problem}" for problem in registry.problems)
    return Output({"tools": described, "problems": registry.problems}, text)


def _ledger_verify(args: argparse.Namespace, context: Context) -> Output:
    from agent_core.maintenance import verify_ledger
    from agent_core.render import ledger_report_lines

    report = verify_ledger(context.store(), context.settings, args.run)
    result = {**document(report), "ok": report.ok}
    return Output(result, "\n".join(ledger_report_lines(report)), exit_code=0 if report.ok else 1)


def _ledger_seal(_: argparse.Namespace, context: Context) -> Output:
    from agent_core.maintenance import seal_ledger
    from agent_core.render import counted

    seal = seal_ledger(context.store(), context.settings)
    adopted = (
        f"; it adopted {counted(seal.checkpoints_adopted, 'prune checkpoint')} written before seals"
        if seal.checkpoints_adopted
        else ""
    )
    text = (
        f"ledger sealed: seal {seal.seq} covers {counted(seal.entries_count, 'run')} with new "
        "events"
        f"{adopted} (signature {seal.signature[:16]}…)"
    )
    return Output(document(seal), text)


# --- text rendering ---------------------------------------------------------------------------


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(item) for item in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True) if value else "-"
    return str(value)
