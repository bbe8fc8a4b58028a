"""`python -m agent_core`: the command line scripts and cron jobs rely on.

    app.py          build_parser (every area's commands) and main (run one, print its
                    output or its error as one sentence and an exit code)
    common.py       Output, Context (settings, store, runtime), Commands (how areas register)
    objectives.py   objective create | update | list | show
    runs.py         run list | show | start | resume | cancel
    approvals.py    approval list | show | approve | reject
    operations.py   db upgrade, config check, worker [status], maintenance, up, tools list,
                    ledger verify

An area registers its commands and holds their handlers (parse -> service -> render) and text.
The parser is built on every call, so these modules import only the standard library and
light agent_core modules (errors, enums) at the top; each handler imports what its command
needs (store, services, render), so `--help` and `run list` start fast
(tests/test_cli_startup.py, bench/cli_startup.py).
"""

from agent_core.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
