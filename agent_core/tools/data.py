"""The data tools: read, count, create, update and delete rows of the business tables, and the
seed's analyze_leads.

They reach only the tables named in AGENT_DATA_TABLES that exist in the business database,
and never one of the runtime's own `app_agent_*` tables, whatever the configuration says.
Table and column names are checked against the reflected schema and used as quoted
identifiers from it; every value is a bound parameter; reads return at most 100 rows.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    WithJsonSchema,
)
from sqlalchemy.engine import Engine

from agent_core.models import RiskLevel
from agent_core.store import RUNTIME_TABLES
from agent_core.store.engine import WRITE
from agent_core.store.ledger import to_json_value
from agent_core.tools.registry import Tool, ToolContext, ToolInputError, ToolTransientError

MAX_READ_LIMIT = 100
RUNTIME_PREFIX = "app_agent_"
LEADS_TABLE = "app_leads"

MAX_VALUE_CHARS = 10_000  # one value of a filter or a row: a long note, not a document dump
MAX_COLUMNS = 200
INT64 = 2**63


Scalar = str | int | float | bool | None


def _scalar(value: Any) -> Scalar:
    """A value as the databases can hold it: bounded text, a 64-bit whole number, a finite
    number, true, false or null; anything else is refused with one sentence for the model."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -INT64 <= value < INT64:
            raise ValueError("is a whole number too large for a database (64 bits at most)")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS:
            raise ValueError(f"must be at most {MAX_VALUE_CHARS} characters of text")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("contains an invalid character (a lone surrogate)") from None
        return value
    raise ValueError("must be text, a number, true, false or null")


ScalarValue = Annotated[
    Scalar,
    PlainValidator(_scalar),
    WithJsonSchema({"type": ["string", "number", "boolean", "null"]}),
]
Text = Annotated[str, Field(max_length=MAX_VALUE_CHARS)]
Integer = Annotated[int, Field(ge=-INT64, lt=INT64)]
Identifier = Annotated[str, Field(min_length=1, max_length=63)]


class Condition(BaseModel):
    """A comparison on one column; several keys combine with AND."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    eq: ScalarValue = None
    ne: ScalarValue = None
    gt: ScalarValue = None
    gte: ScalarValue = None
    lt: ScalarValue = None
    lte: ScalarValue = None
    in_: list[ScalarValue] | None = Field(default=None, alias="in", max_length=500)
    is_null: bool | None = None
    contains: Text | None = None


def _filter_kind(value: Any) -> str:
    return "condition" if isinstance(value, dict | Condition) else "value"


# A dict is always read as a Condition, so that a wrong operator is named in the error.
FilterValue = Annotated[
    Annotated[ScalarValue, Tag("value")] | Annotated[Condition, Tag("condition")],
    Discriminator(_filter_kind),
]
Filters = Annotated[dict[Identifier, FilterValue], Field(max_length=MAX_COLUMNS)]


class ReadArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    table: Identifier
    filters: Filters = Field(
        default_factory=dict,
        description='column -> value (equality), or column -> {"gte": v, "lt": v, "in": [..], '
        '"ne": v, "is_null": true, "contains": "text"}',
    )
    columns: list[Identifier] | None = Field(
        default=None, max_length=MAX_COLUMNS, description="columns to return"
    )
    order_by: Identifier | None = Field(
        default=None, description="column to sort by; prefix with - for descending"
    )
    limit: int = Field(default=10, ge=1, description=f"at most {MAX_READ_LIMIT} rows")


class CountArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    table: Identifier
    filters: Filters = Field(default_factory=dict)


class CreateArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    table: Identifier
    data: dict[Identifier, ScalarValue] = Field(
        min_length=1, max_length=MAX_COLUMNS, description="column -> value"
    )


class UpdateArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    table: Identifier
    id: Text | Integer = Field(description="the row's primary key")
    data: dict[Identifier, ScalarValue] = Field(
        min_length=1, max_length=MAX_COLUMNS, description="column -> new value"
    )


class DeleteArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    table: Identifier
    id: Text | Integer = Field(description="the row's primary key")


class NoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


def is_runtime_table(name: str) -> bool:
    return name.lower().startswith(RUNTIME_PREFIX) or name in RUNTIME_TABLES


class DataAccess:
    """The business database as the agent may see it."""

    def __init__(self, engine: Engine, allowed_tables: Sequence[str]) -> None:
        self.engine = engine
        self.allowed = [name for name in allowed_tables if not is_runtime_table(name)]
        self._tables: dict[str, sa.Table] = {}
        self._count_all: dict[str, str] = {}
        self._lock = threading.Lock()

    def table(self, name: str) -> sa.Table:
        if is_runtime_table(name):
            raise ToolInputError(
                f"table {name!r} belongs to the agent runtime itself and is never available "
                f"to the agent; {self._offer()}"
            )
        if name not in self.allowed:
            raise ToolInputError(f"table {name!r} is not available to the agent; {self._offer()}")
        with self._lock:
            cached = self._tables.get(name)
        if cached is not None:
            return cached
        try:
            reflected = sa.Table(
                name,
                sa.MetaData(),
                autoload_with=self.engine,
                listeners=[("column_reflect", self._declared_types(name))],
            )
        except sa.exc.NoSuchTableError:
            raise ToolInputError(
                f"table {name!r} is allowed but does not exist in the business database"
            ) from None
        with self._lock:
            self._tables[name] = reflected
        return reflected

    def _declared_types(self, table_name: str) -> Any:
        """SQLite keeps the type a column was declared with as text; SQLAlchemy does not
        know names like `TIMESTAMP WITH TIME ZONE` (the seed's PostgreSQL DDL) and reads such
        columns as numbers. Date-times are recognised here by their declared name."""
        declared: dict[str, str] = {}
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:
                declared = {
                    row.name: (row.type or "").upper()
                    for row in conn.execute(
                        sa.text("SELECT name, type FROM pragma_table_info(:table)"),
                        {"table": table_name},
                    )
                }

        def adjust(_inspector: Any, _table: Any, column_info: dict[str, Any]) -> None:
            kind = declared.get(column_info["name"], "")
            if "TIMESTAMP" in kind or "DATETIME" in kind:
                column_info["type"] = sa.DateTime(timezone=True)

        return adjust

    def count_all_sql(self, table: sa.Table) -> str | None:
        """SELECT count(*) of a whole table, as SQLAlchemy compiles it for this database,
        kept per table: building, keying and looking up the statement at every count cost
        more CPU than the count (a run's usual step on a small table). None for a name with
        a % (escaped for bound parameters there are none of): the statement is built then."""
        known = self._count_all.get(table.name)
        if known is None:
            statement = sa.select(sa.func.count()).select_from(table)
            compiled = statement.compile(dialect=self.engine.dialect)
            known = "" if compiled.params or "%" in str(compiled) else str(compiled)
            with self._lock:
                self._count_all[table.name] = known
        return known or None

    def column(self, table: sa.Table, name: str) -> sa.Column[Any]:
        column = table.columns.get(name)
        if column is None:
            known = ", ".join(table.columns.keys())
            raise ToolInputError(f"table {table.name!r} has no column {name!r}; columns: {known}")
        return column

    def problem(self, table: str | None = None) -> str | None:
        """Why the data tools (or a tool needing `table`) cannot work as configured."""
        if not self.allowed:
            return "no business table is open to the agent: set AGENT_DATA_TABLES"
        if table is not None and table not in self.allowed:
            return f"{table} is not open to the agent: add it to AGENT_DATA_TABLES"
        return None

    def _offer(self) -> str:
        if not self.allowed:
            return "no table is available (the admin sets AGENT_DATA_TABLES)"
        return "available tables: " + ", ".join(self.allowed)

    @contextmanager
    def connect(self, context: ToolContext, *, write: bool) -> Iterator[sa.Connection]:
        """A transaction whose work stops when the tool's time is up."""
        try:
            with self.engine.connect() as conn:
                if write:
                    conn.execution_options(**{WRITE: True})
                raw = conn.connection.dbapi_connection
                context.on_cancel(_canceller(raw))
                with conn.begin():
                    if conn.dialect.name == "postgresql":
                        budget_ms = max(1, int(context.remaining() * 1000))
                        conn.execute(
                            sa.select(sa.func.set_config("statement_timeout", str(budget_ms), True))
                        )
                    yield conn
        except sa.exc.OperationalError as exc:
            if context.cancelled:
                raise
            raise ToolTransientError(
                f"the business database is unavailable: {_first_line(exc)}"
            ) from None
        except sa.exc.DBAPIError as exc:
            raise ToolInputError(f"the business database refused it: {_first_line(exc)}") from None

    # --- queries -----------------------------------------------------------------------------

    def where(self, table: sa.Table, filters: Filters) -> list[sa.ColumnElement[bool]]:
        clauses: list[sa.ColumnElement[bool]] = []
        for name, condition in filters.items():
            column = self.column(table, name)
            if not isinstance(condition, Condition):
                clauses.append(
                    column.is_(None) if condition is None else column == _coerce(column, condition)
                )
                continue
            for op, value in condition.model_dump(exclude_unset=True, by_alias=True).items():
                clauses.append(_compare(column, op, value))
        return clauses

    def values(self, table: sa.Table, data: dict[str, Scalar]) -> dict[str, Any]:
        return {name: _coerce(self.column(table, name), value) for name, value in data.items()}

    def primary_key(self, table: sa.Table) -> sa.Column[Any]:
        keys = list(table.primary_key.columns)
        if len(keys) != 1:
            raise ToolInputError(f"table {table.name!r} has no single-column primary key")
        return keys[0]


def _compare(column: sa.Column[Any], op: str, value: Any) -> sa.ColumnElement[bool]:
    if op == "is_null":
        return column.is_(None) if value else column.is_not(None)
    if op == "in":
        return column.in_([_coerce(column, item) for item in value or []])
    if op == "contains":
        if _python_type(column) is not str:
            raise ToolInputError(f"contains works on text columns; {column.name!r} is not text")
        return column.icontains(str(value), autoescape=True)
    if value is None:
        if op in ("eq", "ne"):
            return column.is_(None) if op == "eq" else column.is_not(None)
        raise ToolInputError(f"{op} on column {column.name!r} needs a value, not null")
    bound = _coerce(column, value)
    comparisons = {
        "eq": column == bound,
        "ne": column != bound,
        "gt": column > bound,
        "gte": column >= bound,
        "lt": column < bound,
        "lte": column <= bound,
    }
    return comparisons[op]


def _coerce(column: sa.Column[Any], value: Scalar) -> Any:
    """The value as the column's Python type, so that drivers bind it correctly."""
    if value is None:
        return None
    expected = _python_type(column)
    if expected is None:
        return value
    try:
        if expected is datetime:
            moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
            return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        if expected is date:
            return date.fromisoformat(str(value)[:10])
        if expected is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1", "yes"):
                return True
            if str(value).lower() in ("false", "0", "no"):
                return False
            raise ValueError
        if expected is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            number = int(value)
            if not -INT64 <= number < INT64:
                raise ValueError
            return number
        if expected is float:
            return float(value)
        if expected is Decimal:
            return Decimal(str(value))
        if expected is str:
            return str(value)
    except (ValueError, TypeError, OverflowError, InvalidOperation):
        raise ToolInputError(
            f"column {column.name!r} expects {_type_name(expected)}, got {value!r}"
        ) from None
    return value


def _python_type(column: sa.Column[Any]) -> type | None:
    try:
        return column.type.python_type
    except NotImplementedError:
        return None


def _type_name(expected: type) -> str:
    return {
        datetime: "a date-time such as 2026-11-18T09:00:00",
        date: "a date such as 2026-11-18",
        bool: "true or false",
        int: "a whole number",
        float: "a number",
        Decimal: "a number",
        str: "text",
    }.get(expected, expected.__name__)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _canceller(raw: Any) -> Any:
    if hasattr(raw, "interrupt"):  # sqlite3
        return raw.interrupt
    if hasattr(raw, "cancel_safe"):  # psycopg 3
        return raw.cancel_safe
    return getattr(raw, "cancel", lambda: None)


def _rows(result: sa.CursorResult[Any]) -> list[dict[str, Any]]:
    return [to_json_value(dict(row._mapping)) for row in result]


# --- the tools ---------------------------------------------------------------------------------


def data_tools(access: DataAccess, *, now: Any = None) -> list[Tool]:
    """The seed's data tools over `access`. `now` (a callable) dates analyze_leads' week."""
    clock = now or (lambda: datetime.now(UTC))

    def read_database(args: ReadArgs, context: ToolContext) -> dict[str, Any]:
        table = access.table(args.table)
        limit = min(args.limit, MAX_READ_LIMIT)
        selected = (
            [access.column(table, name) for name in args.columns] if args.columns else [table]
        )
        query = sa.select(*selected).where(*access.where(table, args.filters)).limit(limit)
        if args.order_by:
            column = access.column(table, args.order_by.removeprefix("-"))
            query = query.order_by(column.desc() if args.order_by.startswith("-") else column)
        with access.connect(context, write=False) as conn:
            rows = _rows(conn.execute(query))
        result: dict[str, Any] = {"rows": rows, "count": len(rows)}
        if args.limit > MAX_READ_LIMIT:
            result["note"] = f"limit capped at {MAX_READ_LIMIT} rows"
        return result

    def count_database(args: CountArgs, context: ToolContext) -> dict[str, Any]:
        table = access.table(args.table)
        count_all = None if args.filters else access.count_all_sql(table)
        if count_all is not None:  # the whole table: its statement compiled once
            with access.connect(context, write=False) as conn:
                return {"count": conn.exec_driver_sql(count_all).scalar_one()}
        query = (
            sa.select(sa.func.count()).select_from(table).where(*access.where(table, args.filters))
        )
        with access.connect(context, write=False) as conn:
            return {"count": conn.execute(query).scalar_one()}

    def create_data(args: CreateArgs, context: ToolContext) -> dict[str, Any]:
        table = access.table(args.table)
        values = access.values(table, args.data)
        with access.connect(context, write=True) as conn:
            row = conn.execute(table.insert().values(values).returning(*table.columns)).one()
        created = to_json_value(dict(row._mapping))
        keys = [column.name for column in table.primary_key.columns]
        return {"created": created, "id": created.get(keys[0]) if len(keys) == 1 else None}

    def update_data(args: UpdateArgs, context: ToolContext) -> dict[str, Any]:
        table = access.table(args.table)
        key = access.primary_key(table)
        values = access.values(table, args.data)
        with access.connect(context, write=True) as conn:
            changed = conn.execute(
                table.update().where(key == _coerce(key, args.id)).values(values)
            ).rowcount
        if not changed:
            raise ToolInputError(f"no row of {args.table!r} has {key.name} = {args.id!r}")
        return {"updated": True, "id": args.id}

    def delete_data(args: DeleteArgs, context: ToolContext) -> dict[str, Any]:
        table = access.table(args.table)
        key = access.primary_key(table)
        with access.connect(context, write=True) as conn:
            removed = conn.execute(table.delete().where(key == _coerce(key, args.id))).rowcount
        if not removed:
            raise ToolInputError(f"no row of {args.table!r} has {key.name} = {args.id!r}")
        return {"deleted": True, "id": args.id}

    def analyze_leads(_: NoArgs, context: ToolContext) -> dict[str, Any]:
        table = access.table(LEADS_TABLE)
        created = access.column(table, "created_at")
        since = _coerce(created, (clock() - timedelta(days=7)).isoformat())
        email = table.columns.get("email")
        score = table.columns.get("score")
        query = sa.select(
            sa.func.count(),
            sa.func.count(email) if email is not None else sa.literal(0),
            sa.func.avg(sa.func.coalesce(score, 0)) if score is not None else sa.literal(0),
        ).where(created >= since)
        with access.connect(context, write=False) as conn:
            total, with_email, average = conn.execute(query).one()
        return {
            "total_leads_7d": total,
            "with_email": with_email,
            "avg_score": round(float(average or 0)),
        }

    tables_hint = (
        "Tables: " + ", ".join(access.allowed) + "." if access.allowed else "No table is available."
    )
    return [
        Tool(
            name="read_database",
            description=f"Read up to {MAX_READ_LIMIT} rows of a business table. {tables_hint}",
            risk=RiskLevel.LOW,
            side_effects=False,
            args_model=ReadArgs,
            handler=read_database,
            interruptible=True,  # its query is interrupted at the deadline
            readiness=access.problem,
        ),
        Tool(
            name="count_database",
            description=f"Count the rows of a business table that match filters. {tables_hint}",
            risk=RiskLevel.LOW,
            side_effects=False,
            args_model=CountArgs,
            handler=count_database,
            interruptible=True,  # its query is interrupted at the deadline
            readiness=access.problem,
        ),
        Tool(
            name="create_data",
            description=f"Insert one row into a business table. {tables_hint}",
            risk=RiskLevel.MEDIUM,
            side_effects=True,
            args_model=CreateArgs,
            handler=create_data,
            readiness=access.problem,
        ),
        Tool(
            name="update_data",
            description=f"Change columns of one row, found by its primary key. {tables_hint}",
            risk=RiskLevel.MEDIUM,
            side_effects=True,
            args_model=UpdateArgs,
            handler=update_data,
            readiness=access.problem,
        ),
        Tool(
            name="delete_data",
            description=f"Delete one row, found by its primary key. {tables_hint}",
            risk=RiskLevel.HIGH,
            side_effects=True,
            args_model=DeleteArgs,
            handler=delete_data,
            readiness=access.problem,
        ),
        Tool(
            name="analyze_leads",
            description=(
                "Summarise the leads of the last 7 days in app_leads: how many, how many "
                "with an email, their average score."
            ),
            risk=RiskLevel.LOW,
            side_effects=False,
            args_model=NoArgs,
            handler=analyze_leads,
            interruptible=True,  # its query is interrupted at the deadline
            readiness=lambda: access.problem(LEADS_TABLE),
        ),
    ]
