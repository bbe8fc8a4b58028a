"""`run list | show | start | resume | cancel`: runs of objectives.

Starting, resuming and cancelling are the service's (agent_core.runs); the sentences a run
is told in are agent_core.render's. `run list` loads only the store and the table renderer.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from agent_core.cli.common import Commands, Context, Output, default_admin, document
from agent_core.enums import RunStatus, StopReason
from agent_core.errors import InvalidInput

if TYPE_CHECKING:
    from agent_core.models import Run, RunDetail


def register(commands: Commands) -> None:
    run = commands.group("run", "runs of objectives")
    run_list = run.command("list", _run_list, "list runs, newest first")
    run_list.add_argument("--objective", metavar="ID")
    run_list.add_argument("--status", choices=[status.value for status in RunStatus])
    run_list.add_argument("--limit", type=int, default=50)
    run_show = run.command("show", _run_show, "a run with its steps, calls, events, approvals")
    run_show.add_argument("run_id", metavar="RUN_ID")
    start = run.command("start", _run_start, "queue a run of an objective")
    start.add_argument("objective_id", metavar="OBJECTIVE_ID")
    start.add_argument(
        "--wait", action="store_true", help="execute it in this process until it stops"
    )
    resume = run.command("resume", _run_resume, "execute a queued or abandoned run here")
    resume.add_argument("run_id", metavar="RUN_ID")
    resume.add_argument(
        "--wait", action="store_true", help="execute it in this process until it stops"
    )
    cancel = run.command(
        "cancel", _run_cancel, "cancel a run (a running one stops before its next step)"
    )
    cancel.add_argument("run_id", metavar="RUN_ID")
    cancel.add_argument("--by", default=default_admin(), help="who cancels (default: $USER)")


# --- handlers ---------------------------------------------------------------------------------


def _run_list(args: argparse.Namespace, context: Context) -> Output:
    if args.limit < 1:
        raise InvalidInput("--limit must be at least 1")
    store = context.store()
    found = store.list_runs(
        objective_id=args.objective,
        status=RunStatus(args.status) if args.status else None,
        limit=args.limit,
    )
    titles = {objective.id: objective.title for objective in store.list_objectives()}
    return Output(document(found), _runs_table(found, titles))


def _run_show(args: argparse.Namespace, context: Context) -> Output:
    store = context.store()
    detail = store.run_detail(args.run_id)
    title = store.get_objective(detail.run.objective_id).title
    return Output(document(detail), _run_detail_text(detail, title))


def _run_start(args: argparse.Namespace, context: Context) -> Output:
    from agent_core import runs

    run = runs.start_run(context.store(), context.settings, args.objective_id)
    if args.wait:
        run = runs.execute_here(context.runtime(), run.id)
    elif not runs.live_workers(context.store(), context.settings):
        return _run_output(run, context, note=NO_WORKER)
    return _run_output(run, context)


def _run_resume(args: argparse.Namespace, context: Context) -> Output:
    from agent_core import runs

    runs.ensure_enabled(context.settings, "resume runs")
    run = context.store().get_run(args.run_id)
    if args.wait:
        run = runs.execute_here(context.runtime(), run.id)
    elif not run.status.is_final and run.status is not RunStatus.PAUSED:
        alive = runs.live_workers(context.store(), context.settings)
        return _run_output(run, context, note=LEFT_TO_WORKERS if alive else NO_WORKER)
    return _run_output(run, context)


def _run_cancel(args: argparse.Namespace, context: Context) -> Output:
    from agent_core import runs

    run = runs.cancel_run(context.store(), args.run_id, by=args.by)
    return _run_output(run, context)


# --- text rendering ---------------------------------------------------------------------------


NO_WORKER = (
    "no worker is running: start one with `.venv/bin/python scheduler.py` (`make run` starts "
    "one), or run it here with --wait"
)


LEFT_TO_WORKERS = (
    "a worker resumes it (a run whose worker died is queued again once its lease lapses); "
    "--wait executes it here"
)


def _run_output(run: Run, context: Context, *, note: str | None = None) -> Output:
    """The run as a command left it, worded as `run show` and the dashboard word it (a
    completed run whose tool calls did not all succeed says so)."""
    from agent_core.render import run_counters, run_headline

    failed = context.store().run_view(run.id).failed_calls if run.tool_calls_count else 0
    lines = [f"run {run.id}: {run_headline(run, failed)}", f"status: {_status_code(run)}"]
    if run.summary:
        lines.append(f"summary: {run.summary}")
    if run.error and run.stop_reason is not StopReason.CANCELLED:
        lines.append(f"error: {run.error}")
    lines.append(run_counters(run))
    if note:
        lines.append(note)
    return Output(
        document(run), "\n".join(lines), exit_code=1 if run.status is RunStatus.FAILED else 0
    )


def _runs_table(found: Sequence[Run], titles: Mapping[str, str]) -> str:
    """The runs, each with its objective's title (the id is in `run show` and --json)."""
    from agent_core.render import format_table, format_time

    return format_table(
        ["RUN ID", "OBJECTIVE", "#", "STATUS", "STOP REASON", "STEPS", "CALLS", "QUEUED"],
        [
            [
                run.id,
                titles.get(run.objective_id, run.objective_id),
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
    if run.stop_reason is None or run.stop_reason.value == run.status.value:
        return str(run.status)  # `cancelled`, not `cancelled (cancelled)`
    return f"{run.status} ({run.stop_reason})"


def _run_detail_text(detail: RunDetail, objective_title: str) -> str:
    """`run show`: what happened, in the words the dashboard uses."""
    from agent_core.models import FAILED_CALL_STATUSES
    from agent_core.render import (
        APPROVAL_STATUS_LABELS,
        cut,
        describe_result,
        event_sentence,
        format_time,
        run_counters,
        run_headline,
        step_error,
        step_sentence,
    )

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
