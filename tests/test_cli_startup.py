"""The CLI starts fast enough for scripts and cron because it imports only what a command
uses: `--help` builds the parser from light modules, `run list` opens the store and renders,
without the runtime. Checked by what gets imported, not by timing (bench/cli_startup.py
times it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Seconds of imports between them; no command's parser needs any of them.
HEAVY = {
    "huggingface_hub",
    "twilio",
    "apscheduler",
    "sqlalchemy",
    "alembic",
    "pandas",
    "streamlit",
    "pydantic",
    "pydantic_settings",
}
# What `run list` has no use for: it reads runs, it does not execute them.
RUNTIME = (
    "agent_core.runtime",
    "agent_core.loop",
    "agent_core.tools",
    "agent_core.llm",
    "agent_core.notify",
    "agent_core.worker",
    "agent_core.up",
)


def _imported(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> set[str]:
    """The modules `python -m agent_core ARGS` imports, as `-X importtime` lists them."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "agent_core", *args],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {
        line.split("|")[2].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "self [us]" not in line
    }


def _packages(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


@pytest.mark.parametrize(
    "args", [["--help"], ["run", "list", "--help"], ["worker", "--help"], ["up", "--help"]]
)
def test_help_imports_no_heavy_dependency_and_only_the_cli(args, isolated_environment):
    imported = _imported(args, isolated_environment)
    assert _packages(imported) & HEAVY == set()
    ours = {name for name in imported if name.startswith("agent_core")}
    assert ours <= {
        "agent_core",
        "agent_core.cli",
        "agent_core.cli.app",
        "agent_core.cli.common",
        "agent_core.cli.objectives",
        "agent_core.cli.runs",
        "agent_core.cli.approvals",
        "agent_core.cli.report",
        "agent_core.cli.operations",
        "agent_core.enums",
        "agent_core.errors",
    }


def test_run_list_opens_the_store_without_the_runtime_or_alembic(
    sqlite_database, isolated_environment
):
    imported = _imported(["run", "list"], isolated_environment, {"DATABASE_URL": sqlite_database})
    assert "agent_core.store" in imported
    assert _packages(imported) & (HEAVY - {"sqlalchemy", "pydantic", "pydantic_settings"}) == set()
    assert sorted(name for name in imported if name.startswith(RUNTIME)) == []
