"""SQL pieces the two dialects write differently (a day, milliseconds, floor), percentiles
computed in the database on both, and the small helpers turning results into typed frames."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from agent_core.analytics.filters import QUANTILES


class _Day(FunctionElement[str]):
    """The UTC day of a timestamp as 'YYYY-MM-DD'."""

    type = sa.String()
    name = "utc_day"
    inherit_cache = True


@compiles(_Day, "sqlite")
def _day_sqlite(element: _Day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"  # stored as UTC text


@compiles(_Day, "postgresql")
def _day_postgresql(element: _Day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


class _Millis(FunctionElement[float]):
    """Milliseconds from the first timestamp to the second."""

    type = sa.Float()
    name = "millis_between"
    inherit_cache = True


@compiles(_Millis, "sqlite")
def _millis_sqlite(element: _Millis, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"ROUND((julianday({end}) - julianday({start})) * 86400000.0)"


@compiles(_Millis, "postgresql")
def _millis_postgresql(element: _Millis, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"ROUND(EXTRACT(EPOCH FROM ({end} - {start})) * 1000)"


class _Floor(FunctionElement[int]):
    """floor() of a number that is 0 or more (SQLite may lack floor(): CAST truncates)."""

    type = sa.Integer()
    name = "floor_of"
    inherit_cache = True


@compiles(_Floor, "sqlite")
def _floor_sqlite(element: _Floor, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS INTEGER)"


@compiles(_Floor, "postgresql")
def _floor_postgresql(element: _Floor, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(floor({compiler.process(element.clauses, **kw)}) AS INTEGER)"


def _quantiles(
    dialect: str,
    source: sa.Subquery,
    values: Sequence[str],
    *,
    by: Sequence[str] = (),
    extra: Callable[[Any], Sequence[sa.ColumnElement[Any]]] = lambda columns: (),
    carry: Sequence[str] = (),
    portable: bool = False,
) -> sa.Select[Any]:
    """Per group of `by`: for each column of `values`, `{v}_n` (values that are not NULL),
    `{v}_mean`, `{v}_p50` and `{v}_p90`; then the `extra` aggregates (given the columns of
    the relation aggregated: `by`, `values` and the columns named in `carry`).

    PostgreSQL: percentile_cont(f) WITHIN GROUP (ORDER BY v). Elsewhere (SQLite, or with
    `portable`): each value's rank among its group's values, ROW_NUMBER() ordered with NULLs
    last, and COUNT() of the group's values, are computed by window functions; then, with
    pos = f * (n - 1), the percentile is the value at rank floor(pos) + 1 plus the fraction
    pos - floor(pos) of the step to the value at the next rank: percentile_cont's definition.
    Only the columns used are ranked: SQLite copies each ranked row whole into its window.
    """
    if dialect == "postgresql" and not portable:
        columns = source.c
        parts: list[sa.ColumnElement[Any]] = [columns[name] for name in by]
        for name in values:
            value = columns[name]
            parts += [
                sa.func.count(value).label(f"{name}_n"),
                sa.func.avg(value).label(f"{name}_mean"),
            ]
            parts += [
                sa.func.percentile_cont(sa.literal(fraction, sa.Float))
                .within_group(value)
                .label(f"{name}_{tag}")
                for fraction, tag in QUANTILES
            ]
        return sa.select(*parts, *extra(columns)).group_by(*(columns[name] for name in by))

    keys = [source.c[name] for name in by] or None
    ranks: list[sa.ColumnElement[Any]] = []
    for name in values:
        value = source.c[name]
        ranks.append(
            sa.func.row_number()
            .over(partition_by=keys, order_by=(value.is_(None), value))
            .label(f"{name}__rank")
        )
        ranks.append(sa.func.count(value).over(partition_by=keys).label(f"{name}__n"))
    used = dict.fromkeys([*by, *values, *carry])
    ranked = sa.select(*(source.c[name] for name in used), *ranks).subquery("ranked")
    columns = ranked.c
    parts = [columns[name] for name in by]
    for name in values:
        value, rank, count = columns[name], columns[f"{name}__rank"], columns[f"{name}__n"]
        total = sa.func.max(count)
        parts += [
            sa.func.coalesce(total, 0).label(f"{name}_n"),
            sa.func.avg(value).label(f"{name}_mean"),
        ]
        for fraction, tag in QUANTILES:
            share = sa.literal(fraction, sa.Float)
            low_rank = _Floor(share * (count - 1)) + 1  # per row: the same in a whole group
            low = sa.func.max(sa.case((rank == low_rank, value)))
            high = sa.func.max(sa.case((rank == low_rank + 1, value)))
            step = share * (total - 1) - _Floor(share * (total - 1))
            parts.append((low + step * (sa.func.coalesce(high, low) - low)).label(f"{name}_{tag}"))
    return sa.select(*parts, *extra(columns)).group_by(*(columns[name] for name in by))


def _frame(conn: sa.Connection, query: sa.Select[Any]) -> pd.DataFrame:
    result = conn.execute(query)
    columns = list(result.keys())
    # Plain tuples: pandas inspects a Row object at a time, several times slower.
    return pd.DataFrame([tuple(row) for row in result], columns=columns)


def _number(value: Any) -> float | None:
    """A database number (int, float, Decimal, None) as a float, or None."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _floats(frame: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    for name in names:
        frame[name] = pd.to_numeric(frame[name].map(_number), errors="coerce").astype("float64")
    return frame


def _ints(frame: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    for name in names:
        frame[name] = frame[name].fillna(0).astype("int64")
    return frame


def _rate(part: pd.Series, whole: pd.Series) -> pd.Series:
    """part / whole, NaN where whole is 0."""
    return (part / whole.where(whole > 0)).astype("float64")
