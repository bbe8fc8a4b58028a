"""Analytics: whether the agents work, what they cost, and where they get stuck.

Every figure is computed by the database (api.analyze) for the runs created in the dates
chosen; each table shown can be downloaded as CSV (its full columns, raw numbers).
"""

from datetime import UTC, date, datetime, time, timedelta

import altair as alt
import pandas as pd
import streamlit as st

from agent_core import api
from dashboard import ui
from dashboard.core import shown_errors
from dashboard.shell import begin, page_path

DEFAULT_DAYS = 7
REFRESH_S = 60
OUTCOMES = {  # column: (words, colour)
    "completed": ("Completed", "#2e7d32"),
    "failed": ("Failed", "#c62828"),
    "cancelled": ("Cancelled", "#757575"),
    "skipped": ("Skipped", "#bdbdbd"),  # a schedule slot while the previous run was active
    "in_progress": ("In progress", "#1565c0"),
}


@st.cache_data(ttl=REFRESH_S, show_spinner="Computing the figures…")
def figures(
    _store: api.Store,
    database_url: str,
    since: datetime,
    until: datetime,
    objective_id: str | None,
    prices: dict[str, api.TokenPrice],
) -> api.Analytics:
    """One database's figures for a range, kept a minute: a rerun (a click) reuses them."""
    return api.analyze(_store, since=since, until=until, objective_id=objective_id, prices=prices)


def day_range(picked: object, today: date) -> tuple[datetime, datetime]:
    """The dates picked as [since, until): whole UTC days, the last one included."""
    days = list(picked) if isinstance(picked, tuple | list) else [picked]
    first = days[0] if days else today - timedelta(days=DEFAULT_DAYS - 1)
    last = days[1] if len(days) > 1 else first
    since = datetime.combine(first, time.min, tzinfo=UTC)
    return since, datetime.combine(last, time.min, tzinfo=UTC) + timedelta(days=1)


def headline(head: dict, analytics: api.Analytics) -> None:
    cells = st.columns(5)
    cells[0].metric(
        "Runs",
        f"{head['runs']:,}",
        help=f"{head['completed']:,} completed, {head['failed']:,} failed, "
        f"{head['cancelled']:,} cancelled, {head['skipped']:,} skipped, "
        f"{head['in_progress']:,} in progress.",
    )
    cells[1].metric(
        "Success rate",
        api.format_share(head["success_rate"]),
        help="Runs that reached their objective, out of the runs that ended (completed, "
        "failed or cancelled).",
    )
    cells[2].metric(
        "Cost",
        api.format_cost(head["cost_usd"]),
        help="What the language models' tokens cost, at AGENT_MODEL_PRICES or the "
        "maintained price list (genai-prices).",
    )
    cells[3].metric(
        "Median run time",
        ui.short_duration(head["median_duration_ms"]),
        help="Time spent working, half of the runs took less (pauses for approval excluded).",
    )
    cells[4].metric("Approvals waiting", f"{head['approvals_waiting']:,}")
    if head["completed_with_failed_calls"]:
        st.caption(
            f":material/warning: {head['completed_with_failed_calls']:,} completed "
            f"run{'s' if head['completed_with_failed_calls'] != 1 else ''} had tool calls "
            "that did not succeed."
        )
    if head["unpriced_tokens"]:
        models = analytics.tables["models"]
        unpriced = models.loc[models["unpriced_tokens"] > 0, "model"].tolist()
        st.warning(
            f"{head['unpriced_tokens']:,} tokens have no price "
            f"({ui.plain(', '.join(unpriced))}), so the cost leaves them out. Set their price "
            "in USD per 1,000 tokens in AGENT_MODEL_PRICES, for example "
            f"{ui.inline_code(unpriced[0] + '=0.5/1.5')} (input/output).",
            icon=":material/sell:",
        )


def chart(spec: alt.Chart, key: str) -> None:
    st.altair_chart(spec, width="stretch", key=key)


def runs_chart(by_day: pd.DataFrame) -> None:
    long = by_day.melt(id_vars=["day"], value_vars=list(OUTCOMES), var_name="outcome")
    long["outcome"] = long["outcome"].map(lambda name: OUTCOMES[name][0])
    spec = (
        alt.Chart(long, title="Runs per day, by outcome")
        .mark_bar()
        .encode(
            x=alt.X("yearmonthdate(day):O", title="Day (UTC)"),
            y=alt.Y("sum(value):Q", title="Runs"),
            color=alt.Color(
                "outcome:N",
                title="Outcome",
                scale=alt.Scale(
                    domain=[words for words, _ in OUTCOMES.values()],
                    range=[colour for _, colour in OUTCOMES.values()],
                ),
            ),
            tooltip=[
                alt.Tooltip("yearmonthdate(day):T", title="Day"),
                alt.Tooltip("outcome:N", title="Outcome"),
                alt.Tooltip("sum(value):Q", title="Runs"),
            ],
        )
    )
    chart(spec, "chart_runs")


def cost_chart(by_day: pd.DataFrame) -> None:
    shown = by_day.assign(cost=by_day["cost_usd"].fillna(0))
    spec = (
        alt.Chart(shown, title="Cost per day (USD)")
        .mark_bar(color="#6a1b9a")
        .encode(
            x=alt.X("yearmonthdate(day):O", title="Day (UTC)"),
            y=alt.Y("cost:Q", title="Cost (USD)"),
            tooltip=[
                alt.Tooltip("yearmonthdate(day):T", title="Day"),
                alt.Tooltip("cost:Q", title="Cost (USD)", format="$.4f"),
                alt.Tooltip("tokens:Q", title="Tokens", format=","),
            ],
        )
    )
    chart(spec, "chart_cost")


def tools_chart(tools: pd.DataFrame) -> None:
    long = pd.DataFrame(
        {
            "tool": list(tools["tool"]) * 2,
            "result": ["Succeeded"] * len(tools) + ["Did not succeed"] * len(tools),
            "calls": list(tools["succeeded"]) + list(tools["not_succeeded"]),
        }
    )
    spec = (
        alt.Chart(long, title="Tool calls, by result")
        .mark_bar()
        .encode(
            y=alt.Y("tool:N", title="Tool", sort="-x"),
            x=alt.X("sum(calls):Q", title="Calls"),
            color=alt.Color(
                "result:N",
                title="Result",
                scale=alt.Scale(
                    domain=["Succeeded", "Did not succeed"], range=["#2e7d32", "#c62828"]
                ),
            ),
            tooltip=["tool:N", "result:N", alt.Tooltip("sum(calls):Q", title="Calls")],
        )
    )
    chart(spec, "chart_tools")


def seconds(ms: pd.Series) -> pd.Series:
    return ms / 1000


def run_list(frame: pd.DataFrame, fact: str) -> None:
    """Runs with a link each to its page, and one fact (time, cost) beside it."""
    for row in frame.itertuples():
        link, value = st.columns([2, 3], vertical_alignment="center")
        with link:
            ui.run_link(row.run_id, f"Run #{row.run_number} · {ui.plain(row.objective)}")
        value.markdown(fact_of(row, fact))


def fact_of(row: object, fact: str) -> str:
    if fact == "duration":
        steps = f"{row.steps} step{'s' if row.steps != 1 else ''}"
        return f"{api.format_duration(row.duration_ms)} working · {steps}"
    if pd.isna(row.cost_usd):
        return f"no price · {row.tokens:,} tokens"
    text = api.format_cost(row.cost_usd)
    if row.unpriced_tokens:
        text += f" + {row.unpriced_tokens:,} tokens with no price"
    return f"{text} · {row.tokens:,} tokens"


core = begin()
st.title("Analytics")
st.caption("How the agents are doing: whether they work, what they cost, where they get stuck.")

with shown_errors():
    store = core.store
    objectives = {objective.id: objective.title for objective in store.list_objectives()}
    today = datetime.now(UTC).date()
    left, right = st.columns(2)
    picked = left.date_input(
        "Runs created between (UTC)",
        value=(today - timedelta(days=DEFAULT_DAYS - 1), today),
        key="analytics_dates",
        format="YYYY-MM-DD",
    )
    objective_id = right.selectbox(
        "Objective",
        [None, *objectives],
        format_func=lambda key: "All objectives" if key is None else objectives[key],
        key="analytics_objective",
    )
    since, until = day_range(picked, today)
    found = figures(
        store,
        core.settings.database_url,
        since,
        until,
        objective_id,
        dict(core.settings.agent_model_prices),
    )
    head = found.headline
    tables = found.tables
    span = f"{since:%Y-%m-%d}_{until - timedelta(days=1):%Y-%m-%d}"

    if not head["runs"]:
        if not objectives:
            ui.empty(
                "No run yet, so nothing to measure. Create an objective and press “Run now” "
                "(or give it a schedule): its runs' outcomes, cost and time show here."
            )
            st.page_link(page_path("objectives"), label="Objectives", icon=":material/flag:")
        else:
            which = f" for {ui.plain(objectives[objective_id])}" if objective_id else ""
            ui.empty(
                f"No run was created between {since:%Y-%m-%d} and "
                f"{until - timedelta(days=1):%Y-%m-%d}{which}. Widen the dates above, or "
                "choose all objectives."
            )
        st.stop()

    headline(head, found)
    st.caption(f"Figures are refreshed every {REFRESH_S} s.")

    st.header("Do the agents work?")
    runs_chart(tables["runs_by_day"])
    st.subheader("Why runs ended")
    reasons = tables["stop_reasons"]
    ui.table(
        "stop_reasons",
        reasons,
        span,
        shown=pd.DataFrame(
            {
                "Why": reasons["sentence"],
                "Runs": reasons["runs"],
                "Share": reasons["share"],
            }
        ),
        column_config={"Share": st.column_config.NumberColumn(format="percent")},
    )
    budgets = tables["budgets_exhausted"]
    if not budgets.empty:
        st.subheader("Runs that ran out of budget")
        ui.table(
            "budgets_exhausted",
            budgets,
            span,
            shown=pd.DataFrame(
                {
                    "Objective": budgets["objective"],
                    "Out of budget": budgets["exhausted"],
                    "Of runs ended": budgets["ended_runs"],
                    "Steps": budgets["budget_steps"],
                    "Tool calls": budgets["budget_tool_calls"],
                    "Time": budgets["budget_duration"],
                    "Tokens": budgets["budget_tokens"],
                }
            ),
        )

    st.header("What do they cost?")
    cost_chart(tables["cost_by_day"])
    st.subheader("Cost by objective")
    by_objective = tables["cost_by_objective"]
    ui.table(
        "cost_by_objective",
        by_objective,
        span,
        shown=pd.DataFrame(
            {
                "Objective": by_objective["objective"],
                "Runs": by_objective["runs"],
                "Tokens": by_objective["tokens"],
                "Cost": by_objective["cost_usd"].map(api.format_cost),
                "Per run": by_objective["cost_per_run_usd"].map(api.format_cost),
                "Tokens with no price": by_objective["unpriced_tokens"],
            }
        ),
    )
    st.subheader("Language models")
    models = tables["models"]
    ui.table(
        "models",
        models,
        span,
        shown=pd.DataFrame(
            {
                "Model": models["model"],
                "Calls": models["calls"],
                "Invalid replies": models["invalid_replies"],
                "Fallbacks": models["fallbacks"],
                "Errors": models["errors"],
                "Tokens": models["tokens"],
                "Median latency (s)": seconds(models["latency_p50_ms"]),
                "p90 latency (s)": seconds(models["latency_p90_ms"]),
                "Price": models["price_source"],
                "Cost": models["cost_usd"].map(api.format_cost).where(models["tokens"] > 0, ""),
            }
        ),
        column_config={
            "Median latency (s)": st.column_config.NumberColumn(format="%.2f"),
            "p90 latency (s)": st.column_config.NumberColumn(format="%.2f"),
        },
    )
    st.caption(
        "Invalid replies: answers the agent could not use and sent back for correction. "
        "Fallbacks: answers given after the models before it in the chain failed."
    )

    st.header("Where do they get stuck?")
    spread = tables["run_distributions"]
    st.subheader("A typical run")
    ui.table(
        "run_distributions",
        spread,
        span,
        shown=pd.DataFrame(
            {
                "Per run": spread["label"],
                "Half of the runs under (median)": [
                    ui.measure(value, unit)
                    for value, unit in zip(spread["median"], spread["unit"], strict=True)
                ],
                "9 in 10 runs under (p90)": [
                    ui.measure(value, unit)
                    for value, unit in zip(spread["p90"], spread["unit"], strict=True)
                ],
                "Average": [
                    ui.measure(value, unit)
                    for value, unit in zip(spread["mean"], spread["unit"], strict=True)
                ],
                "Runs counted": spread["runs"],
            }
        ),
    )
    st.subheader("Tools")
    tools = tables["tools"]
    if tools.empty:
        ui.empty("No tool was called by these runs.")
    else:
        tools_chart(tools)
        ui.table(
            "tools",
            tools,
            span,
            shown=pd.DataFrame(
                {
                    "Tool": tools["tool"],
                    "Calls": tools["calls"],
                    "Did not succeed": tools["not_succeeded"],
                    "Failure rate": tools["failure_rate"],
                    "Refused": tools["denied"],
                    "Median time (s)": seconds(tools["duration_p50_ms"]),
                    "p90 time (s)": seconds(tools["duration_p90_ms"]),
                }
            ),
            column_config={
                "Failure rate": st.column_config.NumberColumn(format="percent"),
                "Median time (s)": st.column_config.NumberColumn(format="%.2f"),
                "p90 time (s)": st.column_config.NumberColumn(format="%.2f"),
            },
        )
    refused = tables["refusals"]
    if not refused.empty:
        st.subheader("Refused by policy")
        ui.table(
            "refusals",
            refused,
            span,
            shown=pd.DataFrame({"Tool": refused["tool"], "Calls refused": refused["denied_calls"]}),
        )
    asked = tables["approvals"].to_dict(orient="records")[0]
    st.subheader("Approvals")
    if not asked["requested"]:
        ui.empty("No run asked for an approval in these dates.")
    else:
        cells = st.columns(4)
        cells[0].metric("Asked", f"{asked['requested']:,}")
        cells[1].metric(
            "Approved", f"{asked['approved']:,}", help=f"{asked['changed']:,} with changes."
        )
        cells[2].metric("Rejected", f"{asked['rejected']:,}")
        cells[3].metric("Expired", f"{asked['expired']:,}")
        st.markdown(
            f"Time to a decision: half within **{ui.duration(asked['wait_p50_ms'])}**, "
            f"9 in 10 within **{ui.duration(asked['wait_p90_ms'])}**. "
            f"{asked['pending']:,} still waiting; {asked['changed']:,} approved with changes."
        )
        by_tool = tables["approvals_by_tool"]
        ui.table(
            "approvals_by_tool",
            by_tool,
            span,
            shown=pd.DataFrame(
                {
                    "Tool": by_tool["tool"],
                    "Asked": by_tool["requested"],
                    "Approved": by_tool["approved"],
                    "With changes": by_tool["changed"],
                    "Rejected": by_tool["rejected"],
                    "Expired": by_tool["expired"],
                    "Waiting": by_tool["pending"],
                    "Median wait": by_tool["wait_p50_ms"].map(ui.duration),
                }
            ),
        )

    st.header("Runs to look at")
    st.subheader("The slowest")
    slowest = tables["slowest_runs"]
    if slowest.empty:
        ui.empty("No run has worked long enough to measure yet.")
    run_list(slowest, "duration")
    ui.csv_download("slowest_runs", slowest, span)
    st.subheader("The most expensive")
    dearest = tables["most_expensive_runs"]
    if dearest.empty:
        ui.empty("No run has called a language model yet.")
    run_list(dearest, "cost")
    ui.csv_download("most_expensive_runs", dearest, span)
