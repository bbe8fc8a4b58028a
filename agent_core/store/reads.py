"""Views for pages: what the dashboard shows, filtered, joined and paged in SQL.

A page never loads every row: each method here runs a fixed number of queries whatever the
size of the tables (a page of rows and one COUNT; or the rows of one page and the rows
attached to them, fetched together by their ids), and each query is served by an index
(see the 0002 migration). Where a page is decorated (an objective's title, a count of failed
calls, a step's thought), the page's rows are chosen first in a subquery and only they are
decorated, so a deep page does not pay for the rows it skips. The decorations are LEFT JOINs
(the foreign keys make them match exactly one row each): an outer join keeps the page as the
driving table, which SQLite would otherwise be free to scan last.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa

from agent_core.errors import InvalidInput, NotFound
from agent_core.models import (
    FAILED_CALL_STATUSES,
    ApprovalPage,
    ApprovalRow,
    ApprovalStatus,
    ApprovalView,
    Event,
    RunPage,
    RunRow,
    RunStatus,
    RunView,
    TimelineItem,
    TimelinePage,
)
from agent_core.store.base import (
    StoreBase,
    as_approval,
    as_event,
    as_notification,
    as_record,
    as_run,
    as_step,
    as_tool_call,
    parse_id,
)
from agent_core.store.schema import (
    approvals,
    events,
    notifications,
    objectives,
    runs,
    steps,
    tool_calls,
)

MAX_PAGE_SIZE = 500

StatusT = TypeVar("StatusT", bound=StrEnum)


class PageReads(StoreBase):
    """Runs, a run's timeline and events, and approvals, as the dashboard's pages read them."""

    # --- runs --------------------------------------------------------------------------------

    def runs_page(
        self,
        *,
        statuses: Collection[RunStatus] = (),
        objective_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> RunPage:
        """Runs newest first (created_at, then run number), with their objective's title and
        failed calls: one query for the page, one COUNT for the total. `since` is inclusive,
        `until` exclusive, both on created_at; no status means every status."""
        _check_page(limit=limit, offset=offset)
        conditions: list[sa.ColumnElement[bool]] = []
        if statuses:
            chosen = _statuses(statuses, RunStatus, "run status")
            conditions.append(runs.c.status.in_([status.value for status in chosen]))
        if objective_id is not None:
            conditions.append(runs.c.objective_id == parse_id(objective_id, "objective"))
        if since is not None:
            conditions.append(runs.c.created_at >= _aware(since, "since"))
        if until is not None:
            conditions.append(runs.c.created_at < _aware(until, "until"))
        page = (
            runs.select()
            .where(*conditions)
            .order_by(*_newest_runs(runs.c))
            .limit(limit)
            .offset(offset)
            .subquery("page")
        )
        rows_query = (
            sa.select(
                page,
                objectives.c.title.label("objective_title"),
                _failed_calls(page.c.id).label("failed_calls"),
            )
            .outerjoin(objectives, objectives.c.id == page.c.objective_id)
            .order_by(*_newest_runs(page.c))
        )
        count_query = sa.select(sa.func.count()).select_from(runs).where(*conditions)
        with self._transaction(write=False) as conn:
            rows = [as_record(RunRow, row) for row in conn.execute(rows_query)]
            total = conn.execute(count_query).scalar_one()
        return RunPage(rows=rows, total=total, limit=limit, offset=offset)

    def run_counts(self, *, objective_id: str | None = None) -> dict[RunStatus, int]:
        """How many runs are in each status (every status present, 0 when none)."""
        query = sa.select(runs.c.status, sa.func.count()).group_by(runs.c.status)
        if objective_id is not None:
            query = query.where(runs.c.objective_id == parse_id(objective_id, "objective"))
        counts = dict.fromkeys(RunStatus, 0)
        with self._transaction(write=False) as conn:
            for status, count in conn.execute(query):
                counts[RunStatus(status)] = count
        return counts

    def run_view(self, run_id: str) -> RunView:
        """A run with its objective's title and failed calls, in one query."""
        key = parse_id(run_id, "run")
        query = (
            sa.select(
                runs,
                objectives.c.title.label("objective_title"),
                _failed_calls(runs.c.id).label("failed_calls"),
            )
            .join(objectives, objectives.c.id == runs.c.objective_id)
            .where(runs.c.id == key)
        )
        with self._transaction(write=False) as conn:
            row = conn.execute(query).one_or_none()
        if row is None:
            raise NotFound(f"no run has id {run_id}")
        return RunView(
            run=as_run(row), objective_title=row.objective_title, failed_calls=row.failed_calls
        )

    def timeline_page(self, run_id: str, *, offset: int = 0, limit: int = 50) -> TimelinePage:
        """A run's steps in order, each with its tool call and approval: the page of steps
        (which also reads the run's step count), then the tool calls and the approvals of
        those steps, three queries whatever the page size."""
        _check_page(limit=limit, offset=offset)
        key = parse_id(run_id, "run")
        step_count = sa.select(runs.c.steps_count).where(runs.c.id == key).scalar_subquery()
        step_query = (
            sa.select(steps, step_count.label("run_steps_count"))
            .where(steps.c.run_id == key)
            .order_by(steps.c.step_number)
            .limit(limit)
            .offset(offset)
        )
        with self._transaction(write=False) as conn:
            step_rows = conn.execute(step_query).all()
            if not step_rows:  # no step on this page: is there such a run at all?
                total = conn.execute(
                    sa.select(runs.c.steps_count).where(runs.c.id == key)
                ).scalar_one_or_none()
                if total is None:
                    raise NotFound(f"no run has id {run_id}")
                return TimelinePage(items=[], total=total, offset=offset, limit=limit)
            step_ids = [row.id for row in step_rows]
            calls = {
                row.step_id: as_tool_call(row)
                for row in conn.execute(
                    tool_calls.select().where(tool_calls.c.step_id.in_(step_ids))
                )
            }
            asked = {
                row.step_id: as_approval(row)
                for row in conn.execute(approvals.select().where(approvals.c.step_id.in_(step_ids)))
            }
        items = [
            TimelineItem(step=as_step(row), tool_call=calls.get(row.id), approval=asked.get(row.id))
            for row in step_rows
        ]
        return TimelinePage(
            items=items, total=step_rows[0].run_steps_count, offset=offset, limit=limit
        )

    def events_page(self, run_id: str, *, after_seq: int = 0, limit: int = 100) -> list[Event]:
        """The run's events after `after_seq`, in order (keyset paging on the primary key:
        the next page starts after the last seq of this one)."""
        _check_page(limit=limit, offset=after_seq, offset_name="after_seq")
        key = parse_id(run_id, "run")
        query = (
            events.select()
            .where(events.c.run_id == key, events.c.seq > after_seq)
            .order_by(events.c.seq)
            .limit(limit)
        )
        with self._transaction(write=False) as conn:
            page = [as_event(row) for row in conn.execute(query)]
            if not page and self._run_missing(conn, key):
                raise NotFound(f"no run has id {run_id}")
        return page

    # --- approvals ---------------------------------------------------------------------------

    def approval_view(self, approval_id: str) -> ApprovalView:
        """An approval with its run, its objective's title, the thought of the step that asked
        for it and its notifications: three queries."""
        key = parse_id(approval_id, "approval")
        approval_query = (
            sa.select(approvals, objectives.c.title.label("objective_title"), steps.c.thought)
            .join(runs, runs.c.id == approvals.c.run_id)
            .join(objectives, objectives.c.id == runs.c.objective_id)
            .join(steps, steps.c.id == approvals.c.step_id)
            .where(approvals.c.id == key)
        )
        with self._transaction(write=False) as conn:
            row = conn.execute(approval_query).one_or_none()
            if row is None:
                raise NotFound(f"no approval has id {approval_id}")
            run = conn.execute(runs.select().where(runs.c.id == row.run_id)).one()
            sent = conn.execute(
                notifications.select()
                .where(notifications.c.approval_id == key)
                .order_by(notifications.c.created_at, notifications.c.channel)
            )
            return ApprovalView(
                approval=as_approval(row),
                run=as_run(run),
                objective_title=row.objective_title,
                thought=row.thought,
                notifications=[as_notification(notification) for notification in sent],
            )

    def approvals_page(
        self,
        *,
        statuses: Collection[ApprovalStatus] = (),
        limit: int = 50,
        offset: int = 0,
    ) -> ApprovalPage:
        """Approvals, pending ones first, then newest first, each with its objective's title,
        its run's number and its step's thought: one query for the page, one COUNT.

        The page is the union of two index-ordered scans, the pending approvals and the
        others, each cut at `offset + limit` rows; so the first pages cost the same at ten
        approvals or a million, where sorting every approval by "pending first" would not."""
        _check_page(limit=limit, offset=offset)
        conditions: list[sa.ColumnElement[bool]] = []
        if statuses:
            chosen = _statuses(statuses, ApprovalStatus, "approval status")
            conditions.append(approvals.c.status.in_([status.value for status in chosen]))
        pending = approvals.c.status == ApprovalStatus.PENDING

        def newest(bucket: int, where: sa.ColumnElement[bool]) -> sa.Select[Any]:
            part = (
                sa.select(
                    approvals.c.id, sa.literal(bucket).label("bucket"), approvals.c.created_at
                )
                .where(where, *conditions)
                .order_by(approvals.c.created_at.desc(), approvals.c.id.desc())
                .limit(offset + limit)
                .subquery()
            )
            return sa.select(part)

        both = sa.union_all(newest(0, pending), newest(1, ~pending)).subquery("candidates")
        order = (both.c.bucket, both.c.created_at.desc(), both.c.id.desc())
        page = sa.select(both).order_by(*order).limit(limit).offset(offset).subquery("page")
        rows_query = (
            sa.select(
                approvals,
                objectives.c.title.label("objective_title"),
                runs.c.run_number,
                steps.c.thought,
            )
            .select_from(page)
            .outerjoin(approvals, approvals.c.id == page.c.id)
            .outerjoin(runs, runs.c.id == approvals.c.run_id)
            .outerjoin(objectives, objectives.c.id == runs.c.objective_id)
            .outerjoin(steps, steps.c.id == approvals.c.step_id)
            .order_by(page.c.bucket, page.c.created_at.desc(), page.c.id.desc())
        )
        count_query = sa.select(sa.func.count()).select_from(approvals).where(*conditions)
        with self._transaction(write=False) as conn:
            rows = [as_record(ApprovalRow, row) for row in conn.execute(rows_query)]
            total = conn.execute(count_query).scalar_one()
        return ApprovalPage(rows=rows, total=total, limit=limit, offset=offset)

    def pending_approvals_count(self) -> int:
        """Approvals waiting for a decision that can still be decided (not yet expired)."""
        query = (
            sa.select(sa.func.count())
            .select_from(approvals)
            .where(
                approvals.c.status == ApprovalStatus.PENDING, approvals.c.expires_at > self.now()
            )
        )
        with self._transaction(write=False) as conn:
            return conn.execute(query).scalar_one()

    def _run_missing(self, conn: sa.Connection, key: str) -> bool:
        return conn.execute(sa.select(runs.c.id).where(runs.c.id == key)).first() is None


def _newest_runs(columns: Any) -> tuple[sa.UnaryExpression[Any], ...]:
    """Newest first; the id breaks ties so that pages never overlap or leave a run out."""
    return (columns.created_at.desc(), columns.run_number.desc(), columns.id.desc())


def _failed_calls(run_id: sa.ColumnElement[str]) -> sa.ScalarSelect[int]:
    """How many of the run's tool calls failed (FAILED_CALL_STATUSES); correlated to the run
    so it is computed only for the rows of the page (index on tool_calls(run_id, status))."""
    return (
        sa.select(sa.func.count())
        .select_from(tool_calls)
        .where(
            tool_calls.c.run_id == run_id,
            tool_calls.c.status.in_(sorted(status.value for status in FAILED_CALL_STATUSES)),
        )
        .scalar_subquery()
    )


def _check_page(*, limit: int, offset: int, offset_name: str = "offset") -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}, not {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInput(f"{offset_name} must be a whole number, 0 or more, not {offset!r}")


def _statuses(values: Collection[Any], kind: type[StatusT], what: str) -> list[StatusT]:
    """The statuses asked for, as the enum; a single status is accepted as well as a list."""
    chosen = []
    for value in [values] if isinstance(values, str) else values:
        try:
            chosen.append(kind(value))
        except ValueError:
            known = ", ".join(status.value for status in kind)
            raise InvalidInput(f"{value!r} is not a {what}: use one of {known}") from None
    return chosen


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None:
        raise InvalidInput(f"{name} must be a datetime with a time zone (UTC), not {moment}")
    return moment
