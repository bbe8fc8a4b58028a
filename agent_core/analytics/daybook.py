"""Closed days, summarized once: what keeps the figures of a long range fast.

A UTC day is summarized (a row of app_agent_day_summaries, every objective in it) once it
is over, by more than CLOCK_SLACK, and every run created that day has ended: nothing of it
changes afterwards. Maintenance summarizes the most recent days first, up to a number per
pass (`summarize_closed_days`).

A range's figures then come from the stored days that lie wholly inside it, plus a Summary
of the runs no stored day covers (the range's first and last hours, today, a day with a run
still going), read from the runs as usual (`stored_and_rest`). Each stored day carries a
digest of the prices of the models that answered that day: under other prices the day is
read from its runs again, until maintenance summarizes it anew.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from agent_core.analytics.filters import CLOCK_SLACK, IN_PROGRESS, Scope
from agent_core.analytics.packing import VERSION, Unpacker, pack
from agent_core.analytics.summary import (
    COMPLETION_TOKENS,
    LATENCY,
    PROMPT_TOKENS,
    RUNS,
    Key,
    Summary,
    combine,
    summarize,
)
from agent_core.models import ApprovalStatus
from agent_core.prices import Pricing
from agent_core.store import Store
from agent_core.store.schema import approvals, day_summaries, runs

DAYS_PER_PASS = 31
BY_DAY_AND_OBJECTIVE = frozenset({RUNS, PROMPT_TOKENS, COMPLETION_TOKENS})
ONE_DAY = timedelta(days=1)


def prices_key(models: Iterable[Key], pricing: Pricing) -> str:
    """A digest of the price of each model (or of its having none), and of the layout the
    day is stored in: a day stored under other prices or by another version is not used."""
    prices: list[Any] = [VERSION]
    for model in sorted({model for model in models if model}):
        price = pricing.price(model)
        prices.append([model, None if price is None else [price[0], price[1]]])
    return hashlib.sha256(json.dumps(prices).encode()).hexdigest()


def _start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


# --- reading ----------------------------------------------------------------------------


def stored_and_rest(
    conn: sa.Connection, scope: Scope, pricing: Pricing, now: datetime
) -> Summary | None:
    """The Summary of the scope from its stored days and `summarize` of the rest; None when
    no stored day lies inside the scope (the figures are then read from the runs)."""
    days = _usable_days(conn, scope, pricing, now)
    if not days:
        return None
    try:
        parts = [_read_days(conn, days, scope.objective_id)]
    except (KeyError, TypeError, ValueError, IndexError):  # a damaged summary: read the runs
        return None
    for rest in _uncovered(scope, days):
        bounded = _bounded(conn, rest)
        if bounded is not None:
            parts.append(summarize(conn, bounded, pricing, now))
    return combine(parts)


def _usable_days(conn: sa.Connection, scope: Scope, pricing: Pricing, now: datetime) -> list[date]:
    first = scope.since.date() + (ONE_DAY if scope.since.time() != time() else timedelta())
    end = min(scope.until or now, now)
    last = end.date()  # the day `end` falls in is not whole inside the scope (or not over)
    if last <= first:
        return []
    rows = conn.execute(
        sa.select(day_summaries.c.day, day_summaries.c.models, day_summaries.c.prices_key).where(
            day_summaries.c.day >= first.isoformat(), day_summaries.c.day < last.isoformat()
        )
    ).all()
    keys: dict[str, str] = {}
    usable = []
    for day, models, key in rows:
        signature = json.dumps(sorted(model for model in models if model))
        if signature not in keys:
            keys[signature] = prices_key(models, pricing)
        if keys[signature] == key:
            usable.append(date.fromisoformat(day))
    return sorted(usable)


def _uncovered(scope: Scope, days: list[date]) -> Iterator[Scope]:
    """The parts of the scope outside the stored days, as scopes of the same objective."""
    start = scope.since
    for day in days:
        if _start(day) > start:
            yield Scope(since=start, until=_start(day), objective_id=scope.objective_id)
        start = _start(day) + ONE_DAY
    if scope.until is None or scope.until > start:
        yield Scope(since=start, until=scope.until, objective_id=scope.objective_id)


def _bounded(conn: sa.Connection, scope: Scope) -> Scope | None:
    """The scope with children_until (its runs' rows were all written by their last
    update); None when it has no run."""
    last = conn.execute(sa.select(sa.func.max(runs.c.updated_at)).where(*scope.conditions()))
    updated = last.scalar_one()
    if updated is None:
        return None
    return replace(scope, children_until=updated + CLOCK_SLACK)


def _read_days(conn: sa.Connection, days: list[date], objective_id: str | None) -> Summary:
    query = sa.select(day_summaries.c.day, day_summaries.c.figures, day_summaries.c.samples)
    unpacker = Unpacker(BY_DAY_AND_OBJECTIVE, objective_id)
    for day, figures, packed in conn.execute(
        query.where(day_summaries.c.day.in_([day.isoformat() for day in days]))
    ):
        unpacker.add(day, figures, packed)
    return unpacker.done()


# --- writing ----------------------------------------------------------------------------


def summarize_closed_days(
    store: Store, pricing: Pricing, *, limit: int = DAYS_PER_PASS
) -> list[str]:
    """Summarize up to `limit` closed days not yet summarized (or summarized under other
    prices), the most recent first; returns the days written. A day with a run still going
    is left for a later pass."""
    now = store.now()
    with store.reading() as conn:
        todo = _days_to_summarize(conn, pricing, now)
    written = []
    for day in todo:
        if len(written) >= limit:
            break
        with store.reading() as conn:
            if not _is_final(conn, day, now):
                continue
            bounded = _bounded(conn, Scope(since=_start(day), until=_start(day) + ONE_DAY))
            summary = summarize(conn, bounded, pricing, now) if bounded else Summary()
        models = summary.sample_keys(LATENCY) + _tallied_models(summary)
        models = sorted({model for model in models if model})
        figures, packed = pack(summary)
        try:
            store.save_day_summary(
                day.isoformat(), models, prices_key(models, pricing), figures, packed, now
            )
        except IntegrityError:  # another process wrote this day at the same moment
            continue
        written.append(day.isoformat())
    return written


def _tallied_models(summary: Summary) -> list[Key]:
    calls = summary.measure("calls")
    return list(calls["key"].drop_duplicates())


def _days_to_summarize(conn: sa.Connection, pricing: Pricing, now: datetime) -> list[date]:
    first = conn.execute(sa.select(sa.func.min(runs.c.created_at))).scalar_one()
    if first is None:
        return []
    last = (now - CLOCK_SLACK).date() - ONE_DAY  # the last day over by CLOCK_SLACK
    done = {
        day
        for day, models, key in conn.execute(
            sa.select(day_summaries.c.day, day_summaries.c.models, day_summaries.c.prices_key)
        )
        if prices_key(models, pricing) == key
    }
    days = []
    day = last
    while day >= first.date():
        if day.isoformat() not in done:
            days.append(day)
        day -= ONE_DAY
    return days


def _is_final(conn: sa.Connection, day: date, now: datetime) -> bool:
    """Whether every run created that day has ended and none of their approvals can still
    be decided."""
    in_day = (runs.c.created_at >= _start(day), runs.c.created_at < _start(day) + ONE_DAY)
    going = conn.execute(
        sa.select(sa.func.count())
        .select_from(runs)
        .where(*in_day, runs.c.status.in_([status.value for status in IN_PROGRESS]))
    ).scalar_one()
    if going:
        return False
    waiting = conn.execute(
        sa.select(sa.func.count())
        .select_from(approvals)
        .join(runs, runs.c.id == approvals.c.run_id)
        .where(
            *in_day,
            approvals.c.status == ApprovalStatus.PENDING.value,
            approvals.c.expires_at > now,
        )
    ).scalar_one()
    return not waiting
