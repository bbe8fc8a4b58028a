"""The CLI's entry point: `build_parser` assembles the commands of every area, `main` runs
one and prints its output, or its error as one sentence with its exit code.

Every command accepts --json and then prints exactly one JSON document on stdout, also on
error (`{"error": ..., "exit_code": ...}`). Errors are one sentence on stderr; the exit code
is 2 for bad input (arguments, settings, unknown ids) and 1 for failures.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from agent_core import __version__
from agent_core.cli import approvals, objectives, operations, report, runs
from agent_core.cli.common import Commands, Context, Output, Parser
from agent_core.errors import AgentRuntimeError


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON document"
    )
    parser = Parser(
        prog=".venv/bin/python -m agent_core",  # as the README shows it: from the clone
        description="agent runtime: objectives, runs and the audit ledger.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"agent runtime {__version__}")
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    commands = Commands(groups, common)
    # In the order `--help` lists them.
    operations.register_setup(commands)  # db upgrade, config check
    objectives.register(commands)
    runs.register(commands)
    approvals.register(commands)
    report.register(commands)
    operations.register(commands)  # worker, maintenance, up, tools list, ledger verify
    return parser


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
        from agent_core.config import load_settings  # pydantic-settings: not for `--help`

        context = Context(settings=load_settings())
        output = namespace.handler(namespace, context)
    except AgentRuntimeError as exc:
        return _fail(str(exc), exc.exit_code, as_json, out, err)
    except KeyboardInterrupt:
        stopped = _stopped_by_ctrl_c(arguments)
        if stopped is None:
            return _fail("interrupted", 130, as_json, out, err)
        output = Output({"stopped": True}, stopped)
    except Exception as exc:  # noqa: BLE001 - a bug: one line for the admin, no traceback
        first = (str(exc).strip().splitlines() or [""])[0]
        return _fail(f"unexpected {type(exc).__name__}: {first}", 1, as_json, out, err)
    finally:
        if context is not None:
            context.close()
    if as_json:
        from agent_core.render import visible_json

        out.write(visible_json(output.document, indent=2, sort_keys=False) + "\n")
    elif output.text:
        from agent_core.render import printable

        out.write(printable(output.text.rstrip("\n")) + "\n")
    return output.exit_code


# The commands that run until stopped, and what they say when stopped: Ctrl-C is how an admin
# stops them in a terminal (and `make run` its worker), also while they are still starting.
_RUN_UNTIL_STOPPED = {"worker": "worker stopped", "up": "agent runtime stopped"}


def _stopped_by_ctrl_c(arguments: Sequence[str]) -> str | None:
    """What a command interrupted by Ctrl-C says: a stop for those that run until stopped
    (None for the rest, whose interruption is an error)."""
    if not arguments or "status" in arguments[1:2]:
        return None
    return _RUN_UNTIL_STOPPED.get(arguments[0])


def _fail(message: str, code: int, as_json: bool, out: TextIO, err: TextIO) -> int:
    from agent_core.render import printable  # after the work: `--help` stays light

    err.write(f"error: {printable(message)}\n")
    if as_json:
        out.write(json.dumps({"error": message, "exit_code": code}) + "\n")
    return code
