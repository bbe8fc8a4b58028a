"""`python -m agent_core`: the command line scripts and cron jobs rely on.

Every command accepts --json and then prints exactly one JSON document on stdout, also on
error (`{"error": ..., "exit_code": ...}`). Errors are one sentence on stderr; the exit code
is 2 for bad input (arguments, settings, unknown ids) and 1 for failures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, NoReturn, TextIO
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from agent_core import __version__, objectives, runs
from agent_core.approvals import decide
from agent_core.config import (
    Settings,
    ensure_secret_key,
    load_settings,
    redact_url,
    settings_summary,
)
from agent_core.demo import DEMO_DATABASE_URL, seed_demo
from agent_core.errors import AgentRuntimeError, InvalidFields, InvalidInput
from agent_core.llm import build_content_llm
from agent_core.maintenance import run_maintenance, seal_ledger, verify_ledger
from agent_core.models import (
    FAILED_CALL_STATUSES,
    ApprovalStatus,
    Objective,
    Run,
    RunDetail,
    RunStatus,
    StopReason,
)
from agent_core.render import (
    APPROVAL_STATUS_LABELS,
    cut,
    describe_result,
    event_sentence,
    format_table,
    format_time,
    ledger_report_lines,
    run_counters,
    run_headline,
    step_error,
    step_sentence,
)
from agent_core.runtime import Runtime, build_tools, open_runtime
from agent_core.schedules import describe_schedule
from agent_core.store import Store, create_engine
from agent_core.tools import ToolRegistry
from agent_core.up import Supervisor, child_environment
from agent_core.worker import Worker, configure_logging, split_concurrency, supervise


@dataclass(frozen=True)
class Output:
    """What a command produced: the JSON document and its human-readable form."""

    document: Any
    text: str
    exit_code: int = 0


@dataclass
class Context:
    settings: Settings
    _store: Store | None = None
    _runtime: Runtime | None = None

    def store(self, *, check_schema: bool = True) -> Store:
        if self._store is None:
            self._store = Store.open(self.settings.database_url, check_schema=check_schema)
        return self._store

    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = open_runtime(self.settings, self.store())
        return self._runtime

    def tools(self) -> ToolRegistry:
        """The tools as a worker would have them (built-ins and plugins), without a store."""
        if self._runtime is not None:
            return self._runtime.tools
        settings = self.settings
        engine = create_engine(settings.data_database_url)
        try:
            return build_tools(
                settings, data_engine=engine, content_llm=build_content_llm(settings)
            )
        finally:
            engine.dispose()

    def tool_names(self) -> list[str]:
        return self.tools().names()

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
        if self._store is not None:
            self._store.close()


Command = Callable[[argparse.Namespace, Context], Output]


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so that errors look alike."""

    def error(self, message: str) -> NoReturn:
        raise InvalidInput(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON document"
    )
    parser = _Parser(
        prog="python -m agent_core",
        description="agent runtime: objectives, runs and the audit ledger.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"agent runtime {__version__}")
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    def group(name: str, help_text: str) -> argparse._SubParsersAction[_Parser]:
        sub = groups.add_parser(name, help=help_text, description=help_text, parents=[common])
        return sub.add_subparsers(dest="command", required=True, metavar="ACTION")

    def command(
        actions: argparse._SubParsersAction[_Parser], name: str, handler: Command, help_text: str
    ) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    db = group("db", "the database schema")
    command(db, "upgrade", _db_upgrade, "create or migrate the schema on DATABASE_URL")

    config = group("config", "the settings")
    command(config, "check", _config_check, "validate and print the settings (secrets hidden)")

    objective = group("objective", "what the agent is asked to do")
    create = command(objective, "create", _objective_create, "create an objective")
    create.add_argument("--title", required=True)
    create.add_argument("--description", required=True)
    create.add_argument("--tools", default="", help="comma-separated tools the agent may use")
    create.add_argument("--max-steps", type=int)
    create.add_argument("--max-tool-calls", type=int)
    create.add_argument("--max-duration-ms", type=int)
    create.add_argument("--max-tokens", type=int)
    create.add_argument("--risk-level", choices=["low", "medium", "high"], default="medium")
    create.add_argument("--schedule", help="cron expression, e.g. '0 8 * * mon'")
    create.add_argument("--timezone", default="UTC", help="IANA time zone of the schedule")
    create.add_argument("--disabled", action="store_true", help="create it switched off")
    update = command(objective, "update", _objective_update, "change an objective")
    update.add_argument("objective_id", metavar="ID")
    update.add_argument("--title")
    update.add_argument("--description")
    update.add_argument("--tools", help="comma-separated tools the agent may use ('' for any)")
    update.add_argument("--max-steps", type=int)
    update.add_argument("--max-tool-calls", type=int)
    update.add_argument("--max-duration-ms", type=int)
    update.add_argument("--max-tokens", type=int)
    update.add_argument("--risk-level", choices=["low", "medium", "high"])
    update.add_argument("--schedule", help="cron expression; '' removes the schedule")
    update.add_argument("--timezone")
    switch = update.add_mutually_exclusive_group()
    switch.add_argument("--enable", action="store_true")
    switch.add_argument("--disable", action="store_true")
    command(objective, "list", _objective_list, "list objectives")
    show = command(objective, "show", _objective_show, "show one objective")
    show.add_argument("objective_id", metavar="ID")

    run = group("run", "runs of objectives")
    run_list = command(run, "list", _run_list, "list runs, newest first")
    run_list.add_argument("--objective", metavar="ID")
    run_list.add_argument("--status", choices=[status.value for status in RunStatus])
    run_list.add_argument("--limit", type=int, default=50)
    run_show = command(run, "show", _run_show, "a run with its steps, calls, events, approvals")
    run_show.add_argument("run_id", metavar="RUN_ID")
    start = command(run, "start", _run_start, "queue a run of an objective")
    start.add_argument("objective_id", metavar="OBJECTIVE_ID")
    start.add_argument(
        "--wait", action="store_true", help="execute it in this process until it stops"
    )
    resume = command(run, "resume", _run_resume, "execute a queued or abandoned run here")
    resume.add_argument("run_id", metavar="RUN_ID")
    resume.add_argument(
        "--wait", action="store_true", help="execute it in this process until it stops"
    )
    cancel = command(
        run, "cancel", _run_cancel, "cancel a run (a running one stops before its next step)"
    )
    cancel.add_argument("run_id", metavar="RUN_ID")
    cancel.add_argument("--by", default=_default_admin(), help="who cancels (default: $USER)")

    approval = group("approval", "risky actions waiting for a human")
    approval_list = command(approval, "list", _approval_list, "approvals, newest first")
    approval_list.add_argument("--status", choices=[status.value for status in ApprovalStatus])
    approval_show = command(approval, "show", _approval_show, "one approval and its notices")
    approval_show.add_argument("approval_id", metavar="ID")
    for name, handler, help_text in (
        ("approve", _approval_approve, "approve: the run resumes with exactly this call"),
        ("reject", _approval_reject, "reject: the run resumes and the agent is told why"),
    ):
        decide_parser = command(approval, name, handler, help_text)
        decide_parser.add_argument("approval_id", metavar="ID")
        decide_parser.add_argument(
            "--by", default=_default_admin(), help="who decides (default: $USER)"
        )
        if name == "reject":
            decide_parser.add_argument("--reason", help="told to the agent")

    worker = groups.add_parser(
        "worker",
        help="execute queued, resumed and scheduled runs (what scheduler.py starts)",
        description="Execute queued, resumed and scheduled runs until stopped (SIGTERM or "
        "Ctrl-C); `worker status` lists the live workers.",
        parents=[common],
    )
    worker.add_argument("action", nargs="?", choices=["run", "status"], default="run")
    worker.add_argument("--once", action="store_true", help="run what is due now, then exit")
    worker.add_argument(
        "--concurrency", type=int, help="runs at once in all (AGENT_WORKER_CONCURRENCY)"
    )
    worker.add_argument(
        "--processes", type=int, help="worker processes sharing them (AGENT_WORKER_PROCESSES)"
    )
    worker.set_defaults(handler=_worker)

    maintenance = groups.add_parser(
        "maintenance",
        help="expire approvals, prune old events, retry notifications, send reminders",
        description="expire approvals, prune old events, retry notifications, send reminders",
        parents=[common],
    )
    maintenance.set_defaults(handler=_maintenance)

    up = groups.add_parser(
        "up",
        help="start the dashboard and a worker together (Ctrl-C stops both)",
        description="Start the dashboard and a worker, restart a worker that dies, and stop "
        "both on Ctrl-C or SIGTERM. Prints the address to open.",
        parents=[common],
    )
    up.add_argument("--host", default="127.0.0.1", help="address to serve on (127.0.0.1)")
    up.add_argument("--port", type=int, default=8501, help="port of the dashboard (8501)")
    up.add_argument(
        "--demo",
        action="store_true",
        help="example data and a scripted demo model, in agent_demo.db: no LLM needed",
    )
    up.set_defaults(handler=_up)

    tools = group("tools", "what the agent can do")
    command(tools, "list", _tools_list, "every registered tool, its risk and arguments")

    ledger = group("ledger", "the tamper-evident audit ledger")
    verify = command(
        ledger, "verify", _ledger_verify, "recompute every hash chain and check the signed seals"
    )
    verify.add_argument("--run", metavar="RUN_ID", help="verify one run only")
    command(
        ledger,
        "seal",
        _ledger_seal,
        "sign the heads of the runs whose ledger grew (maintenance does it on every pass)",
    )
    return parser


def _default_admin() -> str:
    return os.environ.get("USER") or "cli"


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    arguments = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in arguments
    context: Context | None = None
    try:
        namespace = build_parser().parse_args(arguments)
        context = Context(settings=load_settings())
        output = namespace.handler(namespace, context)
    except AgentRuntimeError as exc:
        return _fail(str(exc), exc.exit_code, as_json, out, err)
    except KeyboardInterrupt:
        return _fail("interrupted", 130, as_json, out, err)
    except Exception as exc:  # noqa: BLE001 - a bug: one line for the admin, no traceback
        return _fail(f"unexpected {type(exc).__name__}: {exc}", 1, as_json, out, err)
    finally:
        if context is not None:
            context.close()
    if as_json:
        out.write(json.dumps(output.document, indent=2, ensure_ascii=False, default=str) + "\n")
    elif output.text:
        out.write(output.text.rstrip("\n") + "\n")
    return output.exit_code


def _fail(message: str, code: int, as_json: bool, out: TextIO, err: TextIO) -> int:
    err.write(f"error: {message}\n")
    if as_json:
        out.write(json.dumps({"error": message, "exit_code": code}) + "\n")
    return code


def _document(value: BaseModel | Sequence[BaseModel]) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    return [item.model_dump(mode="json", by_alias=True) for item in value]


# --- commands ---------------------------------------------------------------------------------


def _db_upgrade(_: argparse.Namespace, context: Context) -> Output:
    store = context.store(check_schema=False)
    revision = store.upgrade()
    where = redact_url(context.settings.database_url)
    return Output(
        {"revision": revision, "database": where},
        f"database {where} is at schema revision {revision}",
    )


def _config_check(_: argparse.Namespace, context: Context) -> Output:
    summary = dict(settings_summary(context.settings))
    width = max(len(name) for name in summary)
    lines = [f"{name.upper():<{width}}  {_plain(value)}" for name, value in summary.items()]
    return Output(summary, "\n".join(lines))


# How the CLI names each field of an objective, in its error sentences.
_OBJECTIVE_OPTIONS = {
    "title": "--title",
    "description": "--description",
    "tools_allowed": "--tools",
    "max_steps": "--max-steps",
    "max_tool_calls": "--max-tool-calls",
    "max_duration_ms": "--max-duration-ms",
    "max_tokens": "--max-tokens",
    "risk_level": "--risk-level",
    "schedule": "--schedule",
    "timezone": "--timezone",
    "enabled": "--enable/--disable",
}


def _objective_create(args: argparse.Namespace, context: Context) -> Output:
    fields = {**_given_fields(args), "enabled": not args.disabled}
    with _named_options():
        objective = objectives.create_objective(
            context.store(), fields, known_tools=context.tool_names()
        )
    return _objective_output(objective, context.store())


def _objective_update(args: argparse.Namespace, context: Context) -> Output:
    changes = _given_fields(args)
    if args.enable or args.disable:
        changes["enabled"] = bool(args.enable)
    with _named_options():
        objective = objectives.update_objective(
            context.store(), args.objective_id, changes, known_tools=context.tool_names()
        )
    return _objective_output(objective, context.store())


def _given_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The objective fields given on the command line (`--tools` is `tools_allowed`)."""
    given = {
        field: getattr(args, "tools" if field == "tools_allowed" else field)
        for field in objectives.OBJECTIVE_FIELDS
        if field != "enabled"
    }
    return {field: value for field, value in given.items() if value is not None}


@contextmanager
def _named_options() -> Iterator[None]:
    """Field problems worded with the option names the admin typed."""
    try:
        yield
    except InvalidFields as exc:
        raise InvalidInput(exc.sentence(_OBJECTIVE_OPTIONS)) from None


def _objective_list(_: argparse.Namespace, context: Context) -> Output:
    found = context.store().list_objectives()
    table = format_table(
        ["ID", "TITLE", "RISK", "TOOLS", "SCHEDULE", "ENABLED", "RUNS"],
        [
            [
                item.id,
                item.title,
                item.risk_level,
                ",".join(item.tools_allowed) or "-",
                f"{item.schedule} ({item.timezone})" if item.schedule else "-",
                "yes" if item.enabled else "no",
                item.last_run_number,
            ]
            for item in found
        ],
        empty="no objectives yet: create one with `python -m agent_core objective create`",
    )
    return Output(_document(found), table)


def _objective_show(args: argparse.Namespace, context: Context) -> Output:
    store = context.store()
    return _objective_output(store.get_objective(args.objective_id), store)


def _objective_output(objective: Objective, store: Store) -> Output:
    """The objective, plus `next_runs`: its next three slots in UTC (ISO 8601), empty when it
    has no schedule or is disabled; the text words the schedule and gives those slots in the
    objective's time zone."""
    upcoming: list[datetime] = []
    words = next_runs = "-"
    if objective.schedule:
        try:
            words = describe_schedule(objective.schedule)
            upcoming = objectives.upcoming_runs(objective, after=store.now())
        except ValueError as exc:  # stored before the rules it breaks: shown all the same
            words, next_runs = str(exc), "none until the schedule is fixed"
        else:
            zone = ZoneInfo(objective.timezone)
            next_runs = (
                ", ".join(f"{slot.astimezone(zone):%Y-%m-%d %H:%M %Z}" for slot in upcoming)
                if objective.enabled
                else "none while the objective is disabled"
            )
    document = {
        **_document(objective),
        "next_runs": [f"{slot:%Y-%m-%dT%H:%M:%SZ}" for slot in upcoming],
    }
    return Output(document, _objective_text(objective, words, next_runs))


def _run_list(args: argparse.Namespace, context: Context) -> Output:
    if args.limit < 1:
        raise InvalidInput("--limit must be at least 1")
    found = context.store().list_runs(
        objective_id=args.objective,
        status=RunStatus(args.status) if args.status else None,
        limit=args.limit,
    )
    return Output(_document(found), _runs_table(found))


def _run_show(args: argparse.Namespace, context: Context) -> Output:
    store = context.store()
    detail = store.run_detail(args.run_id)
    title = store.get_objective(detail.run.objective_id).title
    return Output(_document(detail), _run_detail_text(detail, title))


def _run_start(args: argparse.Namespace, context: Context) -> Output:
    run = runs.start_run(context.store(), context.settings, args.objective_id)
    if args.wait:
        run = runs.execute_here(context.runtime(), run.id)
    return _run_output(run)


def _run_resume(args: argparse.Namespace, context: Context) -> Output:
    runs.ensure_enabled(context.settings, "resume runs")
    run = context.store().get_run(args.run_id)
    if args.wait:
        run = runs.execute_here(context.runtime(), run.id)
    return _run_output(run)


def _run_cancel(args: argparse.Namespace, context: Context) -> Output:
    run = runs.cancel_run(context.store(), args.run_id, by=args.by)
    return _run_output(run)


def _run_output(run: Run) -> Output:
    lines = [f"run {run.id}: {run_headline(run)}", f"status: {_status_code(run)}"]
    if run.summary:
        lines.append(f"summary: {run.summary}")
    if run.error and run.stop_reason is not StopReason.CANCELLED:
        lines.append(f"error: {run.error}")
    lines.append(run_counters(run))
    return Output(
        _document(run), "\n".join(lines), exit_code=1 if run.status is RunStatus.FAILED else 0
    )


def _tools_list(_: argparse.Namespace, context: Context) -> Output:
    """Every tool with its risk, and `problem`: why it cannot run as configured (or null)."""
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


def _approval_list(args: argparse.Namespace, context: Context) -> Output:
    found = context.store().list_approvals(
        status=ApprovalStatus(args.status) if args.status else None
    )
    table = format_table(
        ["APPROVAL ID", "RUN ID", "TOOL", "STATUS", "EXPIRES", "DECIDED BY"],
        [
            [a.id, a.run_id, a.tool_name, a.status, format_time(a.expires_at), a.decided_by or "-"]
            for a in found
        ],
        empty="no approvals match",
    )
    return Output(_document(found), table)


def _approval_show(args: argparse.Namespace, context: Context) -> Output:
    store = context.store()
    approval = store.get_approval(args.approval_id)
    notices = store.list_notifications(approval.id)
    document = {**_document(approval), "notifications": _document(notices)}
    lines = [
        f"approval     {approval.id} ({approval.status})",
        f"run          {approval.run_id}",
        f"tool         {approval.tool_name}",
        "arguments    " + json.dumps(approval.args, ensure_ascii=False, sort_keys=True),
        f"why risky    {approval.risk_reason}",
        f"expires      {format_time(approval.expires_at)}",
        f"decided      {approval.decided_by or '-'} at {format_time(approval.decided_at)}"
        + (f" ({approval.decision_reason})" if approval.decision_reason else ""),
        "notifications:",
        format_table(
            ["CHANNEL", "KIND", "STATUS", "ATTEMPTS", "LAST ERROR"],
            [[n.channel, n.kind, n.status, n.attempts, n.last_error or "-"] for n in notices],
            empty="  (none)",
        ),
    ]
    return Output(document, "\n".join(lines))


def _approval_approve(args: argparse.Namespace, context: Context) -> Output:
    return _decided(context, args, approve=True, reason=None)


def _approval_reject(args: argparse.Namespace, context: Context) -> Output:
    return _decided(context, args, approve=False, reason=args.reason)


def _decided(
    context: Context, args: argparse.Namespace, *, approve: bool, reason: str | None
) -> Output:
    approval = decide(
        context.store(),
        context.settings,
        args.approval_id,
        approve=approve,
        by=args.by,
        reason=reason,
    )
    text = (
        f"approval {approval.id} {approval.status} by {approval.decided_by}; "
        f"run {approval.run_id} is queued again (a worker, or "
        f"`python -m agent_core run resume {approval.run_id} --wait`, carries it on)"
    )
    return Output(_document(approval), text)


def _worker(args: argparse.Namespace, context: Context) -> Output:
    if args.action == "status":
        return _worker_status(context)
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
    worker = Worker(context.runtime(), concurrency=concurrency)
    if args.once:
        executed = worker.run_once()
        return Output(
            {"worker": worker.id, "executed": executed},
            f"worker {worker.id}: {executed} runs executed",
        )
    stop = lambda *_: worker.stop()  # noqa: E731
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    worker.start()
    try:
        worker.wait()
    finally:
        worker.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return Output({"worker": worker.id, "stopped": True}, f"worker {worker.id} stopped")


def _worker_status(context: Context) -> Output:
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
        empty="no live worker: start one with `python scheduler.py`",
    )
    if live:
        table += "\n" + "\n".join(f"  {w.id} runs: {', '.join(w.running) or '-'}" for w in live)
    return Output(_document(live), table)


def _up(args: argparse.Namespace, context: Context) -> Output:
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


def _maintenance(_: argparse.Namespace, context: Context) -> Output:
    runtime = context.runtime()
    report = run_maintenance(runtime.store, context.settings, runtime.notifier)
    return Output(asdict(report), "\n".join(report.lines()))


def _ledger_verify(args: argparse.Namespace, context: Context) -> Output:
    report = verify_ledger(context.store(), context.settings, args.run)
    document = {**_document(report), "ok": report.ok}
    return Output(document, "\n".join(ledger_report_lines(report)), exit_code=0 if report.ok else 1)


def _ledger_seal(_: argparse.Namespace, context: Context) -> Output:
    seal = seal_ledger(context.store(), context.settings)
    adopted = (
        f"; it adopted {seal.checkpoints_adopted} prune checkpoint(s) written before seals"
        if seal.checkpoints_adopted
        else ""
    )
    text = (
        f"ledger sealed: seal {seal.seq} covers {seal.entries_count} run(s) with new events"
        f"{adopted} (signature {seal.signature[:16]}…)"
    )
    return Output(_document(seal), text)


# --- text rendering ---------------------------------------------------------------------------


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(item) for item in value) or "-"
    return str(value)


def _objective_text(objective: Objective, schedule_words: str, next_runs: str) -> str:
    budget = objective.budget.as_document()
    schedule = "-"
    if objective.schedule:
        schedule = f"{objective.schedule} ({objective.timezone}): {schedule_words}"
    rows = [
        ("id", objective.id),
        ("title", objective.title),
        ("description", objective.description),
        ("tools", ",".join(objective.tools_allowed) or "(any allowed by policy)"),
        ("risk level", objective.risk_level),
        ("budget", ", ".join(f"{key}={value}" for key, value in budget.items()) or "defaults"),
        ("schedule", schedule),
        ("next runs", next_runs),
        ("enabled", "yes" if objective.enabled else "no"),
        ("runs", objective.last_run_number),
        ("created", format_time(objective.created_at)),
    ]
    return "\n".join(f"{label:<12} {value}" for label, value in rows)


def _runs_table(found: Sequence[Run]) -> str:
    return format_table(
        ["RUN ID", "OBJECTIVE", "#", "STATUS", "STOP REASON", "STEPS", "CALLS", "QUEUED"],
        [
            [
                run.id,
                run.objective_id,
                run.run_number,
                run.status,
                run.stop_reason or "-",
                run.steps_count,
                run.tool_calls_count,
                format_time(run.created_at),
            ]
            for run in found
        ],
        empty="no runs match",
    )


def _status_code(run: Run) -> str:
    """The status and stop reason as scripts and the docs name them: `failed (llm_error)`."""
    return f"{run.status} ({run.stop_reason})" if run.stop_reason else str(run.status)


def _run_detail_text(detail: RunDetail, objective_title: str) -> str:
    """`run show`: what happened, in the words the dashboard uses."""
    run = detail.run
    calls = {call.step_id: call for call in detail.tool_calls}
    failed = sum(1 for call in detail.tool_calls if call.status in FAILED_CALL_STATUSES)
    lines = [
        f"{run_headline(run, failed)}",
        f"objective    {objective_title} ({run.objective_id})",
        f"run id       {run.id}",
        f"status       {_status_code(run)}",
        f"trigger      {run.trigger}",
    ]
    if run.stop_reason is StopReason.DONE or run.summary:
        lines.append(f"summary      {run.summary or '-'}")
    if run.error and run.stop_reason is not StopReason.CANCELLED:
        lines.append(f"error        {run.error}")
    lines += [
        f"work         {run_counters(run)}",
        f"queued       {format_time(run.created_at)}",
        f"started      {format_time(run.started_at)}",
        f"ended        {format_time(run.completed_at)}",
        "",
        "what the agent did:",
    ]
    if not detail.steps:
        lines.append("  (no step yet)")
    approvals = {approval.step_id: approval for approval in detail.approvals}
    for step in detail.steps:
        call = calls.get(step.id)
        lines.append("  " + step_sentence(step, call))
        if step.thought:
            lines.append(f"      why: {cut(' '.join(step.thought.split()), 300)}")
        error = step_error(step, call)
        if error:
            lines.append(f"      error: {cut(' '.join(error.split()), 500)}")
        elif step.tool is not None and step.result is not None:
            lines.append(f"      result: {describe_result(step.result, 500)}")
        approval = approvals.get(step.id)
        if approval is not None:
            decided = (
                f" by {approval.decided_by} at {format_time(approval.decided_at)}"
                if approval.decided_by
                else f" (expires {format_time(approval.expires_at)})"
            )
            lines.append(
                f"      approval {approval.id}: {APPROVAL_STATUS_LABELS[approval.status]}{decided}"
            )
    lines += ["", "ledger:"]
    lines += [
        f"  {event.seq:>4}  {format_time(event.created_at)}  {event_sentence(event)}"
        for event in detail.events
    ] or ["  (none)"]
    return "\n".join(lines)
