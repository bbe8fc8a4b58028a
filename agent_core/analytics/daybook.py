"""Closed days, summarized once: what keeps the figures of a long range fast.

A UTC day is summarized (a row of app_agent_day_summaries, every objective in it) once it
is over, by more than CLOCK_SLACK, and every run created that day has ended: nothing of it
changes afterwards. Maintenance summarizes the most recent days first, up to a number per
pass (`summarize_closed_days`).

A range's figures then come from the stored days that lie wholly inside it, plus a Summary
of the runs no stored day covers (the range's first and last hours, today, a day with a run
still going), read from the runs as usual (`stored_and_rest`), unless the stored days are
under half of the range's whole days. A stored day keeps each run's tokens per model, not
their cost: it is priced when read, under the prices of the moment. Maintenance summarizes
a day before the retention prune removes its events, so a summarized day keeps the figures
its events gave (invalid replies, fallbacks, refusals) once the runs no longer can.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from agent_core.analytics.approvals import waiting_approval
from agent_core.analytics.filters import CLOCK_SLACK, IN_PROGRESS, LATE_ROW_SLACK, Scope
from agent_core.analytics.packing import VERSION, Unpacker, pack
from agent_core.analytics.summary import (
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    RUNS,
    Summary,
    combine,
    summarize,
)
from agent_core.store import Store
from agent_core.store.schema import approvals, day_summaries, runs

log = logging.getLogger(__name__)

DAYS_PER_PASS = 31
BY_DAY_AND_OBJECTIVE = frozenset({RUNS, PROMPT_TOKENS, COMPLETION_TOKENS})
ONE_DAY = timedelta(days=1)


def _start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


# --- reading ----------------------------------------------------------------------------


def stored_and_rest(conn: sa.Connection, scope: Scope, now: datetime) -> Summary | None:
    """The Summary of the scope from its stored days and `summarize` of the rest; None when
    no stored day lies inside the scope (the figures are then read from the runs)."""
    days = _usable_days(conn, scope, now)
    if not days:
        return None
    try:
        parts = [_read_days(conn, days, scope.objective_id)]
    except (KeyError, TypeError, ValueError, IndexError) as exc:  # damaged: read the runs
        log.warning("analytics: a day summary cannot be read (%s); reading the runs", exc)
        return None
    for rest in _uncovered(scope, days):
        bounded = _bounded(conn, rest)
        if bounded is not None:
            parts.append(summarize(conn, bounded, now))
    return combine(parts)


def _usable_days(conn: sa.Connection, scope: Scope, now: datetime) -> list[date]:
    """The summarized days wholly inside the scope; none when they are under half of its
    whole days (reading the rest from the runs would then cost more than it saves)."""
    first = scope.since.date() + (ONE_DAY if scope.since.time() != time() else timedelta())
    end = min(scope.until or now, now)
    last = end.date()  # the day `end` falls in is not whole inside the scope (or not over)
    if last <= first:
        return []
    rows = conn.execute(
        sa.select(day_summaries.c.day).where(
            day_summaries.c.day >= first.isoformat(),
            day_summaries.c.day < last.isoformat(),
            day_summaries.c.version == VERSION,
        )
    ).scalars()
    days = sorted(date.fromisoformat(day) for day in rows)
    return days if 2 * len(days) >= (last - first).days else []


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
    return replace(scope, children_until=updated + LATE_ROW_SLACK)


def _read_days(conn: sa.Connection, days: list[date], objective_id: str | None) -> Summary:
    query = sa.select(day_summaries.c.day, day_summaries.c.figures, day_summaries.c.samples)
    unpacker = Unpacker(BY_DAY_AND_OBJECTIVE, objective_id)
    for day, figures, packed in conn.execute(
        query.where(day_summaries.c.day.in_([day.isoformat() for day in days]))
    ):
        unpacker.add(day, figures, packed)
    return unpacker.done()


# --- writing ----------------------------------------------------------------------------


def summarize_closed_days(store: Store, *, limit: int = DAYS_PER_PASS) -> list[str]:
    """Summarize up to `limit` closed days not yet summarized (or by another version), the
    most recent first; returns the days written. A day with a run still going is left for a
    later pass."""
    now = store.now()
    with store.reading() as conn:
        todo = _days_to_summarize(conn, now)
    written = []
    for day in todo:
        if len(written) >= limit:
            break
        with store.reading() as conn:
            if not _is_final(conn, day, now):
                continue
            bounded = _bounded(conn, Scope(since=_start(day), until=_start(day) + ONE_DAY))
            summary = summarize(conn, bounded, now) if bounded else Summary()
        figures, packed = pack(summary)
        try:
            store.save_day_summary(day.isoformat(), VERSION, figures, packed, now)
        except IntegrityError:  # another process wrote this day at the same moment
            continue
        written.append(day.isoformat())
    return written


def _days_to_summarize(conn: sa.Connection, now: datetime) -> list[date]:
    first = conn.execute(sa.select(sa.func.min(runs.c.created_at))).scalar_one()
    if first is None:
        return []
    last = (now - CLOCK_SLACK).date() - ONE_DAY  # the last day over by CLOCK_SLACK
    done = set(
        conn.execute(
            sa.select(day_summaries.c.day).where(day_summaries.c.version == VERSION)
        ).scalars()
    )
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
        .where(*in_day, waiting_approval(now))
    ).scalar_one()
    return not waiting
