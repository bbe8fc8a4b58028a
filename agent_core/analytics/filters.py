"""Which runs count (the Scope: a date range and an objective), the shared constants, and how a
figure reads the database (a Store or an Engine) and prices tokens."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agent_core.config import load_settings
from agent_core.errors import InvalidInput
from agent_core.models import RunStatus, StopReason
from agent_core.prices import Pricing, TokenPrice, parse_model_prices
from agent_core.store import Store
from agent_core.store.base import parse_id
from agent_core.store.schema import runs

Source = Store | Engine

Prices = Pricing | Mapping[str, TokenPrice] | None

QUANTILES = ((0.5, "p50"), (0.9, "p90"))

ENDED = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)

IN_PROGRESS = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED)

BUDGET_REASONS = (
    StopReason.BUDGET_STEPS,
    StopReason.BUDGET_TOOL_CALLS,
    StopReason.BUDGET_DURATION,
    StopReason.BUDGET_TOKENS,
)

NO_MODEL = "(no model answered)"

NO_PRICE = "no price"

TOP_RUNS = 10

MAX_FILLED_DAYS = 400

CLOCK_SLACK = timedelta(hours=1)

# Beyond a run's last update, how late one of its rows may be stamped: a worker whose clock
# runs ahead of the one that ended the run (generous: the bound only saves reading rows).
LATE_ROW_SLACK = timedelta(days=1)


@dataclass(frozen=True)
class Scope:
    """The runs created in [since, until), of one objective or all."""

    since: datetime
    until: datetime | None = None
    objective_id: str | None = None
    # When known, a bound on the creation time of the runs' own rows (see after_start).
    children_until: datetime | None = None

    @classmethod
    def of(cls, since: datetime, until: datetime | None, objective_id: str | None) -> Scope:
        for name, moment in (("since", since), ("until", until)):
            if name == "until" and moment is None:
                continue
            if not isinstance(moment, datetime) or moment.tzinfo is None:
                raise InvalidInput(f"{name} must be a datetime with a time zone, not {moment!r}")
        if until is not None and until <= since:
            raise InvalidInput(f"the range ends ({until:%Y-%m-%d}) before it starts")
        key = parse_id(objective_id, "objective") if objective_id else None
        return cls(
            since=since.astimezone(UTC), until=until and until.astimezone(UTC), objective_id=key
        )

    def after_start(self, created_at: sa.ColumnElement[datetime]) -> sa.ColumnElement[bool]:
        """A bound on the creation time of a run's own rows (steps, tool calls, approvals,
        events), which come after the run: redundant with the run's range, it lets an index
        on the child table's created_at find the range's rows without reading the whole
        table. CLOCK_SLACK keeps a row written by a worker whose clock lags a little.
        With children_until (the runs' last update, plus LATE_ROW_SLACK: a run is updated
        in the transaction that writes each of its rows), an old range reads only its rows."""
        found = created_at >= self.since - CLOCK_SLACK
        if self.children_until is not None:
            return sa.and_(found, created_at < self.children_until)
        return found

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        found = [runs.c.created_at >= self.since]
        if self.until is not None:
            found.append(runs.c.created_at < self.until)
        if self.objective_id is not None:
            found.append(runs.c.objective_id == self.objective_id)
        return found


@contextmanager
def _reading(source: Source) -> Iterator[sa.Connection]:
    if isinstance(source, Store):
        with source.reading() as conn:
            yield conn
    else:
        with source.connect() as conn, conn.begin():
            yield conn


def _pricing(prices: Prices) -> Pricing:
    """The given prices, or the configured ones (AGENT_MODEL_PRICES over genai-prices)."""
    if isinstance(prices, Pricing):
        return prices
    if prices is None:
        return Pricing(load_settings().agent_model_prices)
    return Pricing(parse_model_prices(prices))


def _now(source: Source) -> datetime:
    return source.now() if isinstance(source, Store) else datetime.now(UTC)
