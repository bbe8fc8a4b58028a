"""Tools added by plugins: the example package of examples/ installed into the test
environment (requirements-dev.txt), offered with its risk and called by a run; and plugins
that fail, reported once and never in the way of the runtime or of the other tools."""

from __future__ import annotations

import json
import logging
import sys
import textwrap
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
import sqlalchemy as sa

from agent_core.models import RiskLevel, RunStatus, ToolCallStatus
from agent_core.runtime import build_tools, open_runtime
from agent_core.tools import ENTRY_POINT_GROUP, ToolRegistry
from tests.support import agent_settings, make_objective, make_orchestrator, run_cli, run_to_end

EXAMPLE = "agent-runtime-shipping-rates"
BUILTIN = {"read_database", "send_email", "wix_search_products", "wix_create_coupon"}


@pytest.fixture(scope="module")
def example_plugin() -> None:
    try:
        distribution(EXAMPLE)
    except PackageNotFoundError:
        pytest.fail(
            f"the example plugin {EXAMPLE} is not installed in this environment: run "
            "`make install-dev` (or `.venv/bin/pip install -e ./examples/shipping_rates`)"
        )


@pytest.fixture
def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install a distribution into a folder on sys.path the way pip lays one out: its modules
    and a .dist-info folder with METADATA and entry_points.txt."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    installed: list[str] = []

    def install(name: str, modules: dict[str, str], entries: dict[str, str]) -> None:
        for module, source in modules.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
            installed.append(module)
        info = site / f"{name.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", encoding="utf-8"
        )
        lines = "".join(f"{entry} = {target}\n" for entry, target in entries.items())
        (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}", encoding="utf-8")

    yield install
    for module in installed:
        sys.modules.pop(module, None)


@pytest.fixture(scope="module")
def installed_tools() -> frozenset[str]:
    """Every tool a runtime of this environment offers before a test installs its own plugins:
    the built-in ones and the installed plugins' (the example's, in `make test`)."""
    engine = sa.create_engine("sqlite://")
    try:
        registry = build_tools(agent_settings(), data_engine=engine, content_llm=None)
    finally:
        engine.dispose()
    assert registry.problems == [], "a plugin installed in the test environment is broken"
    assert set(registry.names()) >= BUILTIN
    return frozenset(registry.names())


def registry_for(store) -> ToolRegistry:
    """The registry a runtime builds: the built-in tools, then the installed plugins."""
    return build_tools(agent_settings(), data_engine=store.engine, content_llm=None)


# --- the example plugin -------------------------------------------------------------------------


def test_the_example_plugin_declares_its_tool_through_the_entry_point(example_plugin):
    entries = [e for e in distribution(EXAMPLE).entry_points if e.group == ENTRY_POINT_GROUP]

    assert [(e.name, e.value) for e in entries] == [
        ("shipping_rates", "agent_shipping_rates:tools")
    ]


def test_the_example_tool_is_offered_with_its_risk_beside_the_builtin_tools(
    example_plugin, installed_tools, sqlite_store
):
    registry = registry_for(sqlite_store)

    assert registry.problems == []
    assert "lookup_shipping_rate" in installed_tools
    assert set(registry.names()) == installed_tools  # the built-in tools and the example's
    tool = registry.get("lookup_shipping_rate")
    assert (tool.risk, tool.side_effects, tool.timeout) == (RiskLevel.LOW, False, 10.0)
    described = tool.describe()
    assert described["description"].startswith("Price of sending one parcel")
    assert described["args_schema"]["required"] == ["country", "weight_kg"]
    assert described["args_schema"]["properties"]["service"]["enum"] == ["standard", "express"]


def test_tools_list_shows_the_example_tool_with_its_risk(example_plugin):
    listed = run_cli(["tools", "list", "--json"])
    text = run_cli(["tools", "list"])

    assert listed.exit_code == 0, listed.stderr
    document = json.loads(listed.stdout)
    tools = {tool["name"]: tool for tool in document["tools"]}
    example = tools["lookup_shipping_rate"]
    assert (example["risk"], example["side_effects"], example["problem"]) == ("low", False, None)
    assert document["problems"] == []
    (line,) = [line for line in text.stdout.splitlines() if line.startswith("lookup_shipping_rate")]
    assert line.split()[1:6] == ["low", "no", "10", "s", "yes"]  # risk, side effects, ready


def test_a_run_calls_the_example_tool(example_plugin, store, llm_server):
    objective = make_objective(store, tools_allowed=["lookup_shipping_rate"])
    llm_server.step(
        "What does express to Berlin cost?",
        "lookup_shipping_rate",
        country="de",
        weight_kg=2.5,
        service="express",
    )
    llm_server.done("Express to Germany: 28 EUR, 1-2 days.")

    run = run_to_end(make_orchestrator(store, llm_server.url), objective.id)

    assert run.status is RunStatus.COMPLETED
    detail = store.run_detail(run.id)
    (call,) = detail.tool_calls
    assert (call.tool_name, call.status) == ("lookup_shipping_rate", ToolCallStatus.SUCCEEDED)
    assert detail.steps[0].result == {
        "country": "DE",
        "zone": "europe",
        "service": "express",
        "weight_kg": 2.5,
        "price": 28.0,
        "currency": "EUR",
        "delivery_days": "1-2",
    }
    system = llm_server.requests[0]["messages"][0]["content"]
    assert "lookup_shipping_rate (risk low)" in system
    assert "wix_create_coupon" not in system  # not one of this objective's tools


# --- plugins that fail --------------------------------------------------------------------------


GOOD = """
from pydantic import BaseModel

from agent_core.models import RiskLevel
from agent_core.tools import Tool


class StockArgs(BaseModel):
    sku: str


def tools():
    return [
        Tool(
            name="check_stock_level",
            description="How many units of a SKU are in the warehouse.",
            risk=RiskLevel.LOW,
            side_effects=False,
            args_model=StockArgs,
            handler=lambda args, context: {"sku": args.sku, "units": 7},
        )
    ]
"""

TOOL_HEADER = """
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict

from agent_core.models import RiskLevel
from agent_core.tools import Tool


class Args(BaseModel):
    sku: str


def handler(args, context):
    return {}

"""

BROKEN = {  # case: (the plugin module's source, what its one problem says)
    "raises-on-import": (
        "raise RuntimeError('WAREHOUSE_API_TOKEN is not set')",
        "WAREHOUSE_API_TOKEN is not set",
    ),
    "bad-import": ("import warehouse_sdk_that_is_not_installed", "No module named"),
    "bad-tool-name": (
        TOOL_HEADER + "def tools():\n    return [Tool(name='Check Stock', description='d', "
        "risk=RiskLevel.LOW, side_effects=False, args_model=Args, handler=handler)]",
        "tool name 'Check Stock' is not valid",
    ),
    "unknown-risk": (
        TOOL_HEADER + "def tools():\n    return [Tool(name='reorder', description='d', "
        "risk='extreme', side_effects=True, args_model=Args, handler=handler)]",
        "tool 'reorder' has risk 'extreme'; it must be one of low, medium, high",
    ),
    "side-effects-not-a-flag": (
        TOOL_HEADER + "def tools():\n    return [Tool(name='reorder', description='d', "
        "risk=RiskLevel.HIGH, side_effects='yes', args_model=Args, handler=handler)]",
        "side_effects must be True or False",
    ),
    "args-not-a-model": (
        TOOL_HEADER + "def tools():\n    return [Tool(name='reorder', description='d', "
        "risk=RiskLevel.HIGH, side_effects=True, args_model={'sku': str}, handler=handler)]",
        "args_model must be a pydantic model class",
    ),
    "args-without-json-schema": (
        TOOL_HEADER + "class Hooked(BaseModel):\n"
        "    model_config = ConfigDict(arbitrary_types_allowed=True)\n"
        "    callback: Callable[[], Any]\n\n"
        "def tools():\n    return [Tool(name='reorder', description='d', "
        "risk=RiskLevel.HIGH, side_effects=True, args_model=Hooked, handler=handler)]",
        "the arguments of tool 'reorder' have no JSON schema",
    ),
    "readiness-not-callable": (
        TOOL_HEADER + "def tools():\n    return [Tool(name='reorder', description='d', "
        "risk=RiskLevel.HIGH, side_effects=True, args_model=Args, handler=handler, "
        "readiness='set WAREHOUSE_URL')]",
        "tool 'reorder': readiness must be callable or None",
    ),
    "not-a-tool": ("def tools():\n    return [{'name': 'reorder'}]", "is not an agent_core Tool"),
    "one-good-one-bad": (
        GOOD.replace("def tools():", "def _good():")
        + "\ndef tools():\n    return [*_good(), 'reorder']\n",
        "'reorder' is not an agent_core Tool",
    ),
    "reuses-a-builtin-name": (
        GOOD.replace('"check_stock_level"', '"wix_create_coupon"'),
        "a tool named 'wix_create_coupon' is already registered",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_plugin_is_reported_once_and_every_other_tool_loads(
    install_plugin, installed_tools, sqlite_store, caplog, case
):
    source, says = BROKEN[case]
    module = f"warehouse_{case.replace('-', '_')}"
    install_plugin(
        "warehouse-tools",
        {module: source, "stock_levels": GOOD},
        {"warehouse": f"{module}:tools", "stock": "stock_levels:tools"},
    )

    with caplog.at_level(logging.WARNING):
        runtime = open_runtime(agent_settings(), sqlite_store)  # does not raise
    registry = runtime.tools

    (problem,) = registry.problems  # what the dashboard's System page shows
    assert problem.startswith(f"plugin 'warehouse' ({module}:tools) not loaded: ")
    assert says in problem
    assert "\n" not in problem
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("agent_core.runtime", logging.WARNING, problem)
    ]
    # The other plugin and every tool loaded before are there; nothing of the broken one is.
    assert set(registry.names()) == installed_tools | {"check_stock_level"}
    assert registry.get("wix_create_coupon").risk is RiskLevel.MEDIUM  # the built-in one


def test_a_plugin_loads_whole_or_not_at_all(install_plugin, installed_tools, sqlite_store):
    source, _ = BROKEN["one-good-one-bad"]
    install_plugin("warehouse-tools", {"half_good": source}, {"warehouse": "half_good:tools"})

    registry = registry_for(sqlite_store)

    assert set(registry.names()) == installed_tools  # its good tool waits for the fix
    assert len(registry.problems) == 1


def test_tools_list_warns_about_a_broken_plugin_and_lists_the_rest(
    install_plugin, installed_tools, caplog
):
    source, says = BROKEN["raises-on-import"]
    install_plugin(
        "warehouse-tools",
        {"warehouse_broken": source, "stock_levels": GOOD},
        {"warehouse": "warehouse_broken:tools", "stock": "stock_levels:tools"},
    )

    listed = run_cli(["tools", "list", "--json"])
    text = run_cli(["tools", "list"])

    assert listed.exit_code == text.exit_code == 0
    document = json.loads(listed.stdout)
    assert {tool["name"] for tool in document["tools"]} == installed_tools | {"check_stock_level"}
    (problem,) = document["problems"]
    assert says in problem
    assert f"warning: {problem}" in text.stdout.splitlines()
    assert caplog.records == []  # said once, in the command's own output
