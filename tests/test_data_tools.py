"""The data tools, called through the gateway as the orchestrator calls them, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from agent_core.config import load_settings
from agent_core.errors import ConfigError
from agent_core.models import ToolCallStatus
from agent_core.store import Store
from agent_core.tools import gateway
from agent_core.tools.data import DataAccess, data_tools
from agent_core.tools.gateway import ToolResult
from tests.support import create_leads, make_objective

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)
RUN_ID = "run-data-tools"
INJECTION = "x'); DROP TABLE app_leads; --"

LEADS = [
    {
        "id": 1,
        "name": "Alice Martin",
        "email": "alice@example.com",
        "score": 80,
        "followed_up": False,
        "created_at": NOW - timedelta(days=1),
    },
    {
        "id": 2,
        "name": "Bob Stone",
        "email": None,
        "score": 40,
        "followed_up": True,
        "created_at": NOW - timedelta(days=3),
    },
    {
        "id": 3,
        "name": "Carla Diaz",
        "email": "carla@example.com",
        "score": 60,
        "followed_up": False,
        "created_at": NOW - timedelta(days=6),
    },
    {
        "id": 4,
        "name": "Dan Old",
        "email": "dan@example.com",
        "score": 95,
        "followed_up": True,
        "created_at": NOW - timedelta(days=30),
    },
    {
        "id": 5,
        "name": "Eve 50% Off",
        "email": None,
        "score": None,
        "followed_up": False,
        "created_at": NOW - timedelta(days=10),
    },
]


@pytest.fixture
def leads(store: Store) -> Store:
    """The store with the seed's app_leads table holding LEADS."""
    create_leads(store, LEADS)
    return store


def tools_for(store: Store, tables: list[str] | None = None) -> dict[str, Any]:
    access = DataAccess(store.engine, tables or ["app_leads"])
    return {tool.name: tool for tool in data_tools(access, now=lambda: NOW)}


def call(store: Store, name: str, args: dict[str, Any], tables: list[str] | None = None):
    """One tool call as the orchestrator makes it: validate, then execute or report failure."""
    tool = tools_for(store, tables)[name]
    parsed = gateway.validate_args(tool, args)
    if isinstance(parsed, str):
        return gateway.failed(parsed)
    return gateway.ToolGateway().execute(tool, parsed, run_id=RUN_ID, timeout_s=10)


def ok(result: ToolResult) -> Any:
    assert result.error is None, result.error
    assert result.status is ToolCallStatus.SUCCEEDED
    return result.result


def refused(result: ToolResult, *words: str) -> str:
    assert result.status is ToolCallStatus.FAILED
    assert result.error, "a refusal must carry a sentence for the model"
    assert result.result == {"error": result.error}
    for word in words:
        assert word.lower() in result.error.lower(), (word, result.error)
    return result.error


def ids(result: ToolResult) -> list[int]:
    return [row["id"] for row in ok(result)["rows"]]


def leads_in_db(store: Store) -> list[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                sa.text("SELECT id, name, email, score, followed_up FROM app_leads ORDER BY id")
            )
        ]


def lead_row(store: Store, lead_id: int) -> dict[str, Any] | None:
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT name, email, score, followed_up FROM app_leads WHERE id = :id"),
            {"id": lead_id},
        ).one_or_none()
    if row is None:
        return None
    return {**row._mapping, "followed_up": bool(row.followed_up)}


# --- read_database ---------------------------------------------------------------------------


def test_read_returns_whole_rows_as_json(leads: Store) -> None:
    rows = ok(call(leads, "read_database", {"table": "app_leads", "filters": {"id": 1}}))["rows"]

    assert rows == [
        {
            "id": 1,
            "name": "Alice Martin",
            "email": "alice@example.com",
            "score": 80,
            "followed_up": False,
            "created_at": "2026-11-17T09:00:00.000000Z",
        }
    ]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"followed_up": True}, [2, 4]),
        ({"name": "Alice Martin"}, [1]),
        ({"followed_up": False, "score": 60}, [3]),
        ({"email": None}, [2, 5]),
        ({"score": {"ne": 80}}, [2, 3, 4]),
        ({"score": {"gte": 60, "lt": 95}}, [1, 3]),
        ({"email": {"is_null": True}}, [2, 5]),
        ({"email": {"is_null": False}}, [1, 3, 4]),
        ({"name": {"contains": "Stone"}}, [2]),
        ({"name": {"contains": "50%"}}, [5]),  # % is a literal, not a wildcard
        ({"id": {"in": [1, 3, 5]}}, [1, 3, 5]),
        ({"name": {"in": ["Bob Stone", "Dan Old", "Nobody"]}}, [2, 4]),
    ],
    ids=lambda value: repr(value) if isinstance(value, dict) else None,
)
def test_read_filters(leads: Store, filters: dict[str, Any], expected: list[int]) -> None:
    result = call(
        leads,
        "read_database",
        {"table": "app_leads", "filters": filters, "columns": ["id"], "order_by": "id"},
    )

    assert ids(result) == expected


def test_read_filters_created_at_by_iso_range(leads: Store) -> None:
    week_ago = (NOW - timedelta(days=7)).isoformat()  # with +00:00
    two_days_ago = (NOW - timedelta(days=2)).replace(tzinfo=None).isoformat()  # naive means UTC

    result = call(
        leads,
        "read_database",
        {
            "table": "app_leads",
            "filters": {"created_at": {"gte": week_ago, "lt": two_days_ago}},
            "columns": ["id"],
            "order_by": "id",
        },
    )

    assert ids(result) == [2, 3]


def test_read_created_at_with_an_offset_means_the_same_instant(leads: Store) -> None:
    # 09:30+01:00 is 08:30 UTC: Alice, created at 09:00 UTC the day before NOW, is after it.
    result = call(
        leads,
        "read_database",
        {
            "table": "app_leads",
            "filters": {"created_at": {"gte": "2026-11-17T09:30:00+01:00"}},
            "columns": ["id"],
        },
    )

    assert ids(result) == [1]


def test_timestamp_with_time_zone_column_is_a_time_on_both_backends(store: Store) -> None:
    # The seed's DDL style, which SQLite accepts as well as PostgreSQL.
    visits = sa.table(
        "app_visits", sa.column("id"), sa.column("seen_at", sa.DateTime(timezone=True))
    )
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE app_visits (id INTEGER PRIMARY KEY, "
            "seen_at TIMESTAMP WITH TIME ZONE NOT NULL)"
        )
        conn.execute(visits.insert(), [{"id": 1, "seen_at": NOW - timedelta(days=1)}])
    tables = ["app_visits"]

    read = call(store, "read_database", {"table": "app_visits"}, tables)
    recent = call(
        store,
        "count_database",
        {"table": "app_visits", "filters": {"seen_at": {"gte": "2026-11-17T00:00:00Z"}}},
        tables,
    )
    created = call(
        store,
        "create_data",
        {"table": "app_visits", "data": {"id": 2, "seen_at": "2026-11-18T08:00:00Z"}},
        tables,
    )

    assert ok(read)["rows"] == [{"id": 1, "seen_at": "2026-11-17T09:00:00.000000Z"}]
    assert ok(recent) == {"count": 1}
    assert ok(created)["created"] == {"id": 2, "seen_at": "2026-11-18T08:00:00.000000Z"}


def test_read_projects_the_requested_columns(leads: Store) -> None:
    result = call(
        leads,
        "read_database",
        {"table": "app_leads", "columns": ["name", "score"], "filters": {"id": {"lte": 2}}},
    )

    assert sorted(ok(result)["rows"], key=lambda row: row["name"]) == [
        {"name": "Alice Martin", "score": 80},
        {"name": "Bob Stone", "score": 40},
    ]


def test_read_orders_ascending_and_descending(leads: Store) -> None:
    base = {"table": "app_leads", "columns": ["id"], "filters": {"score": {"is_null": False}}}

    descending = call(leads, "read_database", {**base, "order_by": "-score"})
    ascending = call(leads, "read_database", {**base, "order_by": "score"})

    assert ids(descending) == [4, 1, 3, 2]
    assert ids(ascending) == [2, 3, 1, 4]


def test_read_limit_defaults_to_10_and_is_capped_at_100(store: Store) -> None:
    many = [
        {"id": n, "name": f"Lead {n}", "score": n, "created_at": NOW - timedelta(minutes=n)}
        for n in range(1, 121)
    ]
    create_leads(store, many)
    base = {"table": "app_leads", "columns": ["id"], "order_by": "id"}

    default = ok(call(store, "read_database", base))
    asked_1000 = ok(call(store, "read_database", {**base, "limit": 1000}))
    asked_100 = ok(call(store, "read_database", {**base, "limit": 100}))

    assert default["count"] == 10
    assert "note" not in default
    assert [row["id"] for row in default["rows"]] == list(range(1, 11))
    assert asked_1000["count"] == 100 == len(asked_1000["rows"])
    assert "100" in asked_1000["note"]
    assert asked_100["count"] == 100
    assert "note" not in asked_100


# --- count_database --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, 5),
        ({"followed_up": False}, 3),
        ({"score": {"gte": 60}}, 3),
        ({"email": {"is_null": True}, "followed_up": False}, 1),
        ({"id": {"in": [2, 4, 99]}}, 2),
    ],
    ids=repr,
)
def test_count_with_filters(leads: Store, filters: dict[str, Any], expected: int) -> None:
    result = call(leads, "count_database", {"table": "app_leads", "filters": filters})

    assert ok(result) == {"count": expected}


# --- create / update / delete ----------------------------------------------------------------


def test_create_inserts_a_row(leads: Store) -> None:
    data = {
        "id": 6,
        "name": "Frank New",
        "email": "frank@example.com",
        "score": 70,
        "created_at": "2026-11-18T08:00:00Z",
    }

    result = ok(call(leads, "create_data", {"table": "app_leads", "data": data}))

    assert result["id"] == 6
    assert result["created"]["name"] == "Frank New"
    assert result["created"]["followed_up"] is False  # the table's default
    assert lead_row(leads, 6) == {
        "name": "Frank New",
        "email": "frank@example.com",
        "score": 70,
        "followed_up": False,
    }
    assert len(leads_in_db(leads)) == 6


def test_update_changes_only_the_named_row(leads: Store) -> None:
    before = leads_in_db(leads)

    result = call(
        leads,
        "update_data",
        {"table": "app_leads", "id": 2, "data": {"email": "bob@example.com", "followed_up": False}},
    )

    assert ok(result) == {"updated": True, "id": 2}
    assert lead_row(leads, 2) == {
        "name": "Bob Stone",
        "email": "bob@example.com",
        "score": 40,
        "followed_up": False,
    }
    after = leads_in_db(leads)
    assert [row for row in after if row[0] != 2] == [row for row in before if row[0] != 2]


def test_delete_removes_the_row(leads: Store) -> None:
    result = call(leads, "delete_data", {"table": "app_leads", "id": 4})

    assert ok(result) == {"deleted": True, "id": 4}
    assert lead_row(leads, 4) is None
    assert [row[0] for row in leads_in_db(leads)] == [1, 2, 3, 5]


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("update_data", {"table": "app_leads", "id": 999, "data": {"score": 1}}),
        ("delete_data", {"table": "app_leads", "id": 999}),
    ],
)
def test_update_or_delete_of_a_missing_id_is_a_clear_error(
    leads: Store, tool: str, args: dict[str, Any]
) -> None:
    before = leads_in_db(leads)

    refused(call(leads, tool, args), "no row", "app_leads", "999")

    assert leads_in_db(leads) == before


# --- analyze_leads ---------------------------------------------------------------------------


def test_analyze_leads_summarises_the_last_7_days(leads: Store) -> None:
    result = ok(call(leads, "analyze_leads", {}))

    # Alice, Bob and Carla; Dan (30 days) and Eve (10 days) are too old.
    assert result == {"total_leads_7d": 3, "with_email": 2, "avg_score": 60}


# --- refused inputs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("read_database", {"table": "app_leads; drop table x"}),
        ("count_database", {"table": "app_leads; drop table x"}),
        ("delete_data", {"table": "app_leads; drop table x", "id": 1}),
    ],
)
def test_table_name_with_sql_is_refused_and_the_table_survives(
    leads: Store, tool: str, args: dict[str, Any]
) -> None:
    before = leads_in_db(leads)

    refused(call(leads, tool, args), "not available", "available tables: app_leads")

    assert sa.inspect(leads.engine).has_table("app_leads")
    assert leads_in_db(leads) == before


def test_unknown_table_is_refused_naming_the_available_ones(leads: Store) -> None:
    error = refused(
        call(leads, "read_database", {"table": "app_customers"}), "app_customers", "not available"
    )

    assert "app_leads" in error


def test_allowed_table_that_does_not_exist_is_refused(leads: Store) -> None:
    tables = ["app_leads", "app_invoices"]

    result = call(leads, "count_database", {"table": "app_invoices"}, tables)

    refused(result, "app_invoices", "does not exist")
    assert not sa.inspect(leads.engine).has_table("app_invoices")


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("read_database", {"table": "app_leads", "filters": {"nickname": "Al"}}),
        ("count_database", {"table": "app_leads", "filters": {"nickname": {"is_null": True}}}),
        ("read_database", {"table": "app_leads", "columns": ["name", "nickname"]}),
        ("read_database", {"table": "app_leads", "order_by": "-nickname"}),
        (
            "create_data",
            {"table": "app_leads", "data": {"id": 7, "name": "G", "nickname": "Gee"}},
        ),
        ("update_data", {"table": "app_leads", "id": 1, "data": {"nickname": "Al"}}),
    ],
    ids=["filter", "count-filter", "columns", "order_by", "create", "update"],
)
def test_unknown_column_is_refused_listing_the_columns(
    leads: Store, tool: str, args: dict[str, Any]
) -> None:
    before = leads_in_db(leads)

    refused(call(leads, tool, args), "no column 'nickname'", "columns: id, name, email")

    assert leads_in_db(leads) == before


def runtime_rows(store: Store) -> list[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        return [
            tuple(row) for row in conn.execute(sa.text("SELECT id, status FROM app_agent_runs"))
        ]


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("read_database", {"table": "app_agent_runs"}),
        ("count_database", {"table": "app_agent_runs", "filters": {"status": "queued"}}),
        ("read_database", {"table": "app_agent_approvals", "filters": {"status": "pending"}}),
        ("read_database", {"table": "APP_AGENT_RUNS"}),
        ("update_data", {"table": "app_agent_runs", "id": "RUN", "data": {"status": "succeeded"}}),
        ("delete_data", {"table": "app_agent_runs", "id": "RUN"}),
        ("create_data", {"table": "app_agent_approvals", "data": {"tool_name": "delete_data"}}),
    ],
    ids=["read", "count", "read-approvals", "upper-case", "update", "delete", "create"],
)
def test_runtime_tables_are_never_reachable_even_when_allowed(
    leads: Store, tool: str, args: dict[str, Any]
) -> None:
    run = leads.create_run(make_objective(leads).id)
    args = {**args, **({"id": run.id} if args.get("id") == "RUN" else {})}
    tables = ["app_leads", "app_agent_runs", "app_agent_approvals", "APP_AGENT_RUNS"]
    before = runtime_rows(leads)

    refused(call(leads, tool, args, tables), "runtime", args["table"])

    assert runtime_rows(leads) == before
    assert leads.get_run(run.id).status == run.status
    with leads.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM app_agent_approvals")).scalar_one() == 0


def test_runtime_tables_are_not_offered_in_the_descriptions(leads: Store) -> None:
    tools = tools_for(leads, ["app_leads", "app_agent_runs", "app_agent_approvals"])

    for name in ("read_database", "count_database", "create_data", "update_data", "delete_data"):
        assert "app_leads" in tools[name].description
        assert "app_agent" not in tools[name].description


@pytest.mark.parametrize(
    ("tool", "args", "words"),
    [
        (
            "create_data",
            {
                "table": "app_leads",
                "data": {"id": 8, "name": "H", "score": "high", "created_at": NOW.isoformat()},
            },
            ("score", "whole number", "high"),
        ),
        (
            "create_data",
            {"table": "app_leads", "data": {"id": 8, "name": "H", "created_at": "yesterday"}},
            ("created_at", "date-time", "yesterday"),
        ),
        (
            "update_data",
            {"table": "app_leads", "id": 1, "data": {"score": "high"}},
            ("score", "whole number"),
        ),
        (
            "update_data",
            {"table": "app_leads", "id": 1, "data": {"followed_up": "maybe"}},
            ("followed_up", "true or false"),
        ),
        (
            "update_data",
            {"table": "app_leads", "id": "abc", "data": {"score": 1}},
            ("'id'", "whole number", "abc"),
        ),
        (
            "count_database",
            {"table": "app_leads", "filters": {"score": {"gte": "high"}}},
            ("score", "whole number"),
        ),
        (
            "read_database",
            {"table": "app_leads", "filters": {"created_at": {"lt": "yesterday"}}},
            ("created_at", "date-time"),
        ),
    ],
    ids=[
        "create-score",
        "create-created_at",
        "update-score",
        "update-bool",
        "update-id",
        "count-filter",
        "read-filter",
    ],
)
def test_value_of_the_wrong_type_is_refused(
    leads: Store, tool: str, args: dict[str, Any], words: tuple[str, ...]
) -> None:
    before = leads_in_db(leads)

    refused(call(leads, tool, args), *words)

    assert leads_in_db(leads) == before


def test_sql_looking_value_is_stored_literally(leads: Store) -> None:
    ok(call(leads, "update_data", {"table": "app_leads", "id": 1, "data": {"name": INJECTION}}))

    found = call(
        leads,
        "read_database",
        {"table": "app_leads", "filters": {"name": INJECTION}, "columns": ["id", "name"]},
    )

    assert ok(found)["rows"] == [{"id": 1, "name": INJECTION}]
    assert sa.inspect(leads.engine).has_table("app_leads")
    assert lead_row(leads, 1)["name"] == INJECTION
    assert len(leads_in_db(leads)) == 5


@pytest.mark.parametrize(
    ("tool", "args", "words"),
    [
        ("read_database", {"table": "app_leads", "where": "1=1"}, ("where", "extra")),
        ("delete_data", {"table": "app_leads", "id": 1, "cascade": True}, ("cascade", "extra")),
        ("read_database", {"table": "app_leads", "limit": 0}, ("limit", "greater than")),
        ("read_database", {"table": "app_leads", "limit": -5}, ("limit", "greater than")),
        (
            "count_database",
            {"table": "app_leads", "filters": {"name": {"like": "%"}}},
            ("like", "extra"),
        ),
        ("create_data", {"table": "app_leads", "data": {}}, ("data",)),
    ],
    ids=[
        "extra-key",
        "extra-key-delete",
        "limit-0",
        "limit-negative",
        "unknown-operator",
        "empty-data",
    ],
)
def test_malformed_arguments_are_refused_by_validation(
    leads: Store, tool: str, args: dict[str, Any], words: tuple[str, ...]
) -> None:
    before = leads_in_db(leads)
    sentence = gateway.validate_args(tools_for(leads)[tool], args)

    assert isinstance(sentence, str)
    refused(call(leads, tool, args), f"invalid arguments for {tool}", *words)
    assert leads_in_db(leads) == before


@pytest.mark.parametrize(
    ("tool", "args", "words"),
    [
        (
            "update_data",
            {"table": "app_leads", "id": 1, "data": {"score": 10**30}},
            ("score", "64 bits"),
        ),
        ("read_database", {"table": "app_leads", "filters": {"score": 1e400}}, ("finite",)),
        (
            "read_database",
            {"table": "app_leads", "filters": {"name": "\ud800"}},
            ("name", "invalid character"),
        ),
        (
            "read_database",
            {"table": "app_leads", "columns": ["name"] * 100_000},
            ("columns", "at most 200"),
        ),
        (
            "create_data",
            {"table": "app_leads", "data": {"id": 9, "name": "x" * 5_000_000}},
            ("name", "at most 10000 characters"),
        ),
    ],
    ids=["huge-int", "infinite-float", "lone-surrogate", "100k-columns", "5MB-value"],
)
def test_hostile_values_are_refused_with_a_sentence(
    leads: Store, tool: str, args: dict[str, Any], words: tuple[str, ...]
) -> None:
    before = leads_in_db(leads)

    refused(call(leads, tool, args), *words)

    assert leads_in_db(leads) == before


def test_a_date_beyond_the_calendar_is_a_sentence_not_an_overflow(leads: Store) -> None:
    found = call(
        leads,
        "read_database",
        {"table": "app_leads", "filters": {"created_at": {"lt": "0001-01-01T00:00:00+05:00"}}},
    )

    refused(found, "created_at", "date-time")


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tables",
    [["app_leads", "app_agent_runs"], "app_leads,app_agent_approvals", ["app_leads; drop table x"]],
)
def test_config_refuses_runtime_or_malformed_data_tables(tables: object) -> None:
    with pytest.raises(ConfigError, match="AGENT_DATA_TABLES"):
        load_settings(agent_data_tables=tables)


def test_each_tool_says_when_no_table_is_open_to_it(store: Store) -> None:
    def problems(tables: list[str]) -> dict[str, str | None]:
        access = DataAccess(store.engine, tables)
        return {tool.name: tool.problem() for tool in data_tools(access, now=lambda: NOW)}

    nothing = problems([])
    orders_only = problems(["orders"])

    assert nothing == dict.fromkeys(
        nothing, "no business table is open to the agent: set AGENT_DATA_TABLES"
    )
    assert problems(["app_agent_runs"]) == nothing  # a runtime table never counts
    assert orders_only == {
        **dict.fromkeys(orders_only, None),
        "analyze_leads": "app_leads is not open to the agent: add it to AGENT_DATA_TABLES",
    }
    assert problems(["app_leads"]) == dict.fromkeys(nothing, None)
