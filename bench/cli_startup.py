"""CLI start-up: how long scripts and cron wait for `python -m agent_core`, beside the floor
`python -c pass` measured in the same run.

    PYTHONPATH=. .venv/bin/python bench/cli_startup.py [--runs N] [--no-imports]

Wall clock of whole processes (subprocess, output captured), in rounds that take each command
in turn so that a busy machine weighs on all alike: `python -c pass` (the interpreter alone),
`import sqlalchemy, pydantic_settings` (the libraries `run list` cannot do without), `--help`
(the parser) and `run list` on a fresh SQLite database made with `db upgrade`, one objective
and a few runs. Prints the median, p90 and fastest of each, and whether both commands are
under the target (300 ms median); then, from one `-X importtime` run of each, where their
import time goes, by package.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 0.3
SEEDED_RUNS = 5


def _cli(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "agent_core", *arguments]


FLOOR = "python -c pass"
LIBRARIES = "python -c 'import sqlalchemy, pydantic_settings'"
COMMANDS = {
    FLOOR: [sys.executable, "-c", "pass"],
    # What `run list` cannot do without: the store's SQLAlchemy, the settings' pydantic.
    LIBRARIES: [sys.executable, "-c", "import sqlalchemy, pydantic_settings"],
    "python -m agent_core --help": _cli("--help"),
    "python -m agent_core run list": _cli("run", "list"),
}
MEASURED = list(COMMANDS)[2:]


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[1:])} failed: {done.stderr.strip()}")
    return done


def seed(env: dict[str, str]) -> None:
    """A fresh schema, one objective and a few queued runs, made with the CLI itself."""
    _run(_cli("db", "upgrade"), env)
    created = _run(_cli("--json", "objective", "create", "--title", "t", "--description", "d"), env)
    objective_id = json.loads(created.stdout)["id"]
    for _ in range(SEEDED_RUNS):
        _run(_cli("run", "start", objective_id), {**env, "AGENT_ENABLED": "true"})


def measure(runs: int, env: dict[str, str]) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for command in COMMANDS.values():  # warm-up: bytecode caches, the file system cache
        _run(command, env)
    for _ in range(runs):
        for name, command in COMMANDS.items():
            started = time.perf_counter()
            _run(command, env)
            samples[name].append(time.perf_counter() - started)
    return samples


def import_breakdown(command: list[str], env: dict[str, str], top: int = 6) -> str:
    """Import time by top-level package (self times summed), from one -X importtime run."""
    done = _run([command[0], "-X", "importtime", *command[1:]], env)
    by_package: Counter[str] = Counter()
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _, name = line.removeprefix("import time:").split("|")
        package = name.strip().split(".")[0]
        if package in sys.stdlib_module_names or package.startswith("_"):
            package = "stdlib"
        by_package[package] += int(own)
    total = sum(by_package.values())
    parts = [f"{name} {micros / 1000:.0f}" for name, micros in by_package.most_common(top)]
    rest = total - sum(micros for _, micros in by_package.most_common(top))
    if rest:
        parts.append(f"other {rest / 1000:.0f}")
    return f"{total / 1000:.0f} ms: " + ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command (15)")
    parser.add_argument("--no-imports", action="store_true", help="skip the import time breakdown")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": f"sqlite:///{Path(folder) / 'cli.db'}",
        }
        # As installed: the warm-up writes the bytecode caches that every later run reads.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        seed(env)
        samples = measure(args.runs, env)
        breakdown = (
            {}
            if args.no_imports
            else {name: import_breakdown(COMMANDS[name], env) for name in MEASURED}
        )

    print(
        f"CLI start-up, {datetime.now(UTC):%Y-%m-%d}, Python {sys.version.split()[0]}, "
        f"{args.runs} runs of each (wall clock, whole process), {SEEDED_RUNS} runs in the database"
    )
    print(f"  {'command':<50}{'median':>9}{'p90':>9}{'fastest':>9}{'over floor':>12}")
    floor = statistics.median(samples[FLOOR])
    medians = {}
    for name, values in samples.items():
        median = medians[name] = statistics.median(values)
        p90 = statistics.quantiles(values, n=10, method="inclusive")[-1]
        over = "(floor)" if name == FLOOR else f"{(median - floor) * 1000:.0f} ms"
        print(
            f"  {name:<50}{median * 1000:>6.0f} ms{p90 * 1000:>6.0f} ms"
            f"{min(values) * 1000:>6.0f} ms{over:>12}"
        )
    slowest = max(medians[name] for name in MEASURED)
    verdict = "met" if slowest < TARGET_S else "not met"
    print(
        f"target: --help and run list under {TARGET_S * 1000:.0f} ms (median): {verdict} "
        f"(slowest median {slowest * 1000:.0f} ms)"
    )
    for name, text in breakdown.items():
        print(f"imports of {name.removeprefix('python -m agent_core ')}: {text}")


if __name__ == "__main__":
    main()
