"""Dashboard at scale: each page's render and each analytics query on a database of 100,000
runs (about 1,000,000 events and 300,000 steps), beside a trivial page rendered by AppTest in
the same run (the floor: what Streamlit's script run costs whatever the page).

    PYTHONPATH=. .venv/bin/python bench/dashboard_scale.py [--database-url URL] [--runs 100000]

Without --database-url the database is a SQLite file in a temporary folder; with it, it must
be a fresh, empty PostgreSQL database (`createdb -h 127.0.0.1 -U postgres scale_bench`).
Once built, every closed day is summarized (what maintenance does as days close, a bounded
number of days per pass), so that a long range reads its days' summaries, not their runs.
Each figure is the median of --repeats renders after one warm-up, the pages interleaved with
the floor; the analytics page is measured with its one-minute cache cleared before each
render (the first visitor's wait), and also as a rerun served by that cache.
Prints a markdown table: what, median, floor, target 1 s, met or missed.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from scale_data import Picks, build  # bench/, the script's folder

from agent_core import analytics
from agent_core.analytics.daybook import summarize_closed_days
from agent_core.store import Store

ROOT = Path(__file__).resolve().parent.parent

TARGET_S = 1.0
TIMEOUT_S = 120
BROKEN = ("Something went wrong", "The dashboard cannot start")  # shown_errors' sentences
FLOOR_PAGE = 'import streamlit as st\n\nst.title("Floor")\nst.write("A trivial page.")\n'


@dataclass(frozen=True)
class Page:
    label: str
    file: str | None  # None: the home page (app.py's default)
    query: dict[str, str]
    state: dict[str, object]
    cold: bool = False  # clear st.cache_data first (the analytics figures' cache)


def _environment(url: str) -> None:
    """What `make run` sets: the agent and approvals on, served on 127.0.0.1 (no login)."""
    os.environ.update(
        {
            "DATABASE_URL": url,
            "AGENT_ENABLED": "true",
            "AGENT_APPROVAL_FLOW": "true",
            "AGENT_DATA_TABLES": "app_leads",
            "AGENT_LLM_BASE_URL": "http://127.0.0.1:9/v1",
            "AGENT_SECRET_KEY": "bench-secret-key-for-links-0123456789",
        }
    )
    from streamlit import config

    config.set_option("server.address", "127.0.0.1")
    logging.getLogger("streamlit").setLevel(logging.ERROR)  # "missing ScriptRunContext"


def pages(picks: Picks) -> list[Page]:
    analytics_page = "pages/analytics.py"
    today = datetime.now(UTC).date()
    return [
        Page("Overview (home)", None, {}, {}),
        Page("Runs", "pages/runs.py", {}, {}),
        Page("A run", "pages/run.py", {"id": picks.run_id}, {}),
        Page("A 500-step run", "pages/run.py", {"id": picks.long_run_id}, {}),
        Page("Approvals (inbox)", "pages/approvals.py", {}, {}),
        Page("An approval", "pages/approval.py", {"id": picks.approval_id}, {}),
        Page("Analytics, last 7 days", analytics_page, {}, {}, cold=True),
        Page("Analytics, cached rerun", analytics_page, {}, {}),
        Page(
            "Analytics, one objective",
            analytics_page,
            {},
            {"analytics_objective": picks.objective_id},
            cold=True,
        ),
        Page(
            "Analytics, all 90 days",
            analytics_page,
            {},
            {"analytics_dates": (today - timedelta(days=90), today)},
            cold=True,
        ),
    ]


def render(page: Page) -> float:
    """Seconds for one AppTest run of the page (app.py's frame included), as a new session."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT_S)
    if page.file is not None:
        at.switch_page(page.file)
    for key, value in page.query.items():
        at.query_params[key] = value
    for key, value in page.state.items():
        at.session_state[key] = value
    if page.cold:
        st.cache_data.clear()
    started = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - started
    problems = [item.value for item in at.exception] + [
        item.value for item in at.error if item.value.startswith(BROKEN)
    ]
    if problems:
        raise SystemExit(f"{page.label} failed: {problems[0]}")
    return elapsed


def render_floor() -> float:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_string(FLOOR_PAGE, default_timeout=TIMEOUT_S)
    started = time.perf_counter()
    at.run()
    return time.perf_counter() - started


def query_timers(store: Store, objective_id: str) -> dict[str, Callable[[], object]]:
    """Each public analytics function over the page's default range (the last 7 days)."""
    today = datetime.now(UTC).date()
    since = datetime.combine(today - timedelta(days=6), datetime.min.time(), tzinfo=UTC)
    until = since + timedelta(days=7)
    scope = {"since": since, "until": until}
    named = (
        "runs_by_day",
        "stop_reasons",
        "run_distributions",
        "model_stats",
        "cost_by_model",
        "cost_by_objective",
        "cost_by_day",
        "cost_per_run",
        "most_expensive_runs",
        "slowest_runs",
        "tool_stats",
        "refusals",
        "approvals_summary",
        "budgets_exhausted",
    )
    timers: dict[str, Callable[[], object]] = {
        f"analytics.{name}": partial(getattr(analytics, name), store, **scope) for name in named
    }
    timers["analytics.analyze"] = lambda: analytics.analyze(store, **scope)
    timers["analytics.analyze, one objective"] = lambda: analytics.analyze(
        store, **scope, objective_id=objective_id
    )
    timers["analytics.analyze, all 90 days"] = lambda: analytics.analyze(
        store, since=since - timedelta(days=90), until=until
    )
    return timers


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def measure(store: Store, picks: Picks, repeats: int) -> list[tuple[str, float, float]]:
    """(what, median seconds, floor median seconds), renders interleaved with the floor."""
    shown = pages(picks)
    queries = query_timers(store, picks.objective_id)
    samples: dict[str, list[float]] = {name: [] for name in [p.label for p in shown] + [*queries]}
    floors: list[float] = []
    for round_number in range(repeats + 1):  # round 0 warms up
        for page in shown:
            floor = render_floor()
            took = render(page)
            if round_number:
                floors.append(floor)
                samples[page.label].append(took)
        for name, action in queries.items():
            took = timed(action)
            if round_number:
                samples[name].append(took)
    floor_median = statistics.median(floors)
    return [(name, statistics.median(values), floor_median) for name, values in samples.items()]


def table(rows: list[tuple[str, float, float]], backend: str, header: str) -> str:
    lines = [
        header,
        "",
        f"| {backend}: page or query | median | floor (trivial page) | target | |",
        "|---|---:|---:|---:|---|",
    ]
    for name, median, floor in rows:
        verdict = "met" if median < TARGET_S else "**missed**"
        floor_text = f"{floor * 1000:,.0f} ms" if not name.startswith("analytics.") else "-"
        lines.append(
            f"| {name} | {median * 1000:,.0f} ms | {floor_text} | {TARGET_S:g} s | {verdict} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a fresh, empty PostgreSQL database")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5, help="renders per page after warm-up")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'scale.db'}"
        store = Store.open(url, check_schema=False)
        store.upgrade()
        started = time.perf_counter()
        picks, counts = build(store.engine, args.runs)
        build_s = time.perf_counter() - started
        # What maintenance does as days close (DAYS_PER_PASS a pass), all at once here.
        started = time.perf_counter()
        summarized = summarize_closed_days(store, limit=10_000)
        summary_s = time.perf_counter() - started
        _environment(url)
        rows = measure(store, picks, args.repeats)
        store.close()
    backend = store.dialect
    sizes = ", ".join(f"{name.removeprefix('app_agent_')} {n:,}" for name, n in counts.rows.items())
    print(
        table(
            rows,
            "SQLite" if backend == "sqlite" else "PostgreSQL",
            f"Built in {build_s:.0f} s: {sizes}. {len(summarized)} closed days summarized in "
            f"{summary_s:.0f} s ({summary_s / max(len(summarized), 1):.2f} s a day). "
            f"Median of {args.repeats} after a warm-up.",
        )
    )


if __name__ == "__main__":
    main()
