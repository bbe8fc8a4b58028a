"""`report [--since 7d] [--objective ID]`: how the agents did, what they cost and where they
got stuck, the same figures as the dashboard's Analytics page, for scripts and cron."""

from __future__ import annotations

import argparse

from agent_core.cli.common import Commands, Context, Output
from agent_core.errors import InvalidInput


def register(commands: Commands) -> None:
    report = commands.command(
        "report",
        _report,
        "run analytics: outcomes, cost, models, tools, approvals, budgets",
    )
    report.add_argument(
        "--since",
        default="7d",
        help="start of the range: 7d, 24h, 30m, 2w, a date (2026-11-01) or a time (default 7d)",
    )
    report.add_argument("--objective", metavar="ID", help="one objective only")


def _report(args: argparse.Namespace, context: Context) -> Output:
    from agent_core.analytics import parse_since, report, report_text

    try:
        since = parse_since(args.since)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    found = report(
        context.store(),
        since=since,
        objective_id=args.objective,
        prices=context.settings.agent_model_prices,
    )
    return Output(found, report_text(found))
