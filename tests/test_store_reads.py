"""The reads the dashboard's pages use: filtered, joined and paged in SQL, on both backends,
with a number of queries that does not grow with the rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from agent_core import events as ledger_events
from agent_core.errors import InvalidInput, NotFound
from agent_core.models import (
    ApprovalStatus,
    NewEvent,
    NewStep,
    NewToolCall,
    NotificationKind,
    NotificationStatus,
    RiskLevel,
    RunChanges,
    RunStatus,
    StepOutcome,
    StepStatus,
    ToolCallStatus,
)
from agent_core.store import schema
from tests.support import EMAIL, KEY, make_objective, pause_on_email

OWNER = "test-worker"
MISSING = "00000000-0000-4000-8000-000000000000"
COUNT = {"table": "app_leads"}


def _claimed(store, objective_id):
    run = store.create_run(objective_id)
    assert store.claim_run(run.id, owner=OWNER, lease_s=300) is not None
    return run


def _finished_step(store, run_id, call_status, *, tool="count_database"):
    """A step whose tool call ended with `call_status`, written at once."""
    return store.start_step(
        run_id,
        NewStep(thought=f"call {tool}", tool=tool, args=COUNT),
        tool_call=NewToolCall(tool_name=tool, args=COUNT, risk_level=RiskLevel.LOW),
        outcome=StepOutcome(
            step_status=StepStatus.COMPLETED
            if call_status is ToolCallStatus.SUCCEEDED
            else StepStatus.FAILED,
            result={"n": 1},
            tool_call_status=call_status,
        ),
    )


def _paused(store, objective_id, *, thought="Ada has not answered: email her.", expires_in=None):
    """A run paused on send_email, waiting for its approval; returns StepStarted."""
    run = _claimed(store, objective_id)
    return pause_on_email(
        store,
        run.id,
        owner=OWNER,
        step=NewStep(thought=thought, tool="send_email", args=EMAIL),
        risk_reason="sends an email outside the company",
        expires_in=expires_in or timedelta(hours=24),
    )


def _end(store, run_id, status=RunStatus.COMPLETED):
    return store.update_run(run_id, RunChanges(owner=OWNER, status=status, summary="done"))


# --- runs ----------------------------------------------------------------------------------


def test_runs_page_is_newest_first_and_counts_every_matching_run(store, clock):
    objective = make_objective(store)
    created = []
    for _ in range(7):
        clock.advance(minutes=1)
        created.append(store.create_run(objective.id))
    newest_first = [run.id for run in reversed(created)]

    pages = [store.runs_page(limit=3, offset=offset) for offset in (0, 3, 6, 9)]
    assert [[row.id for row in page.rows] for page in pages] == [
        newest_first[0:3],
        newest_first[3:6],
        newest_first[6:7],
        [],
    ]
    assert {(page.total, page.limit) for page in pages} == {(7, 3)}
    assert [page.offset for page in pages] == [0, 3, 6, 9]
    first = pages[0].rows[0]
    assert first.model_dump(exclude={"objective_title", "failed_calls"}) == (
        store.get_run(first.id).model_dump()
    )
    assert (first.objective_title, first.failed_calls, first.run_number) == ("Weekly leads", 0, 7)


def test_runs_in_the_same_instant_are_ordered_by_run_number(store):
    objective = make_objective(store)
    runs = [store.create_run(objective.id) for _ in range(3)]
    with store.engine.begin() as conn:  # the same created_at for all three
        conn.execute(schema.runs.update().values(created_at=runs[0].created_at))
    assert [row.run_number for row in store.runs_page().rows] == [3, 2, 1]


def test_runs_page_filters_by_status_objective_and_time(store, clock):
    leads = make_objective(store, title="Weekly leads")
    invoices = make_objective(store, title="Unpaid invoices")
    start = clock.current
    clock.advance(hours=1)
    queued = store.create_run(leads.id)
    clock.advance(hours=1)
    running = _claimed(store, leads.id)
    clock.advance(hours=1)
    cancelled = store.request_cancel(store.create_run(invoices.id).id)
    clock.advance(hours=1)
    completed = _end(store, _claimed(store, invoices.id).id)

    def ids(**filters):
        page = store.runs_page(**filters)
        assert page.total == len(page.rows)
        return [row.id for row in page.rows]

    assert ids() == [completed.id, cancelled.id, running.id, queued.id]
    assert ids(statuses=[RunStatus.QUEUED]) == [queued.id]
    assert ids(statuses=[RunStatus.RUNNING, RunStatus.COMPLETED]) == [completed.id, running.id]
    assert ids(statuses=RunStatus.CANCELLED) == [cancelled.id]  # one status, not a list
    assert ids(statuses=["paused"]) == []
    assert ids(objective_id=leads.id) == [running.id, queued.id]
    assert ids(objective_id=invoices.id, statuses=[RunStatus.COMPLETED]) == [completed.id]
    assert ids(objective_id=MISSING) == []
    assert ids(since=start + timedelta(hours=2)) == [completed.id, cancelled.id, running.id]
    assert ids(until=start + timedelta(hours=2)) == [queued.id]  # until is exclusive
    assert ids(since=running.created_at, until=completed.created_at) == [
        cancelled.id,
        running.id,
    ]
    assert {row.objective_title for row in store.runs_page(objective_id=invoices.id).rows} == {
        "Unpaid invoices"
    }
    page = store.runs_page(objective_id=leads.id, limit=1, offset=1)
    assert ([row.id for row in page.rows], page.total) == ([queued.id], 2)


def test_a_completed_run_whose_calls_failed_says_so(store):
    objective = make_objective(store)
    run = _claimed(store, objective.id)
    for status in (
        ToolCallStatus.SUCCEEDED,
        ToolCallStatus.FAILED,
        ToolCallStatus.UNKNOWN,
        ToolCallStatus.DENIED,
        ToolCallStatus.REJECTED,
        ToolCallStatus.EXPIRED,
        ToolCallStatus.SUCCEEDED,
    ):
        _finished_step(store, run.id, status)
    store.start_step(run.id, NewStep(thought="no tool this time"))
    in_flight = store.start_step(
        run.id,
        NewStep(thought="count", tool="count_database", args=COUNT),
        tool_call=NewToolCall(tool_name="count_database", args=COUNT, risk_level=RiskLevel.LOW),
    )
    assert in_flight.tool_call.status is ToolCallStatus.STARTED  # not a failure (yet)
    _end(store, run.id)
    clean = _claimed(store, objective.id)
    _finished_step(store, clean.id, ToolCallStatus.SUCCEEDED)
    _end(store, clean.id)
    waiting = _paused(store, objective.id)  # awaiting approval: not a failure either

    rows = {row.id: row for row in store.runs_page().rows}
    assert rows[run.id].status is RunStatus.COMPLETED
    assert rows[run.id].failed_calls == 5
    assert rows[clean.id].failed_calls == 0
    assert rows[waiting.run.id].failed_calls == 0
    view = store.run_view(run.id)
    assert (view.run, view.objective_title, view.failed_calls) == (
        store.get_run(run.id),
        "Weekly leads",
        5,
    )
    assert store.run_view(clean.id).failed_calls == 0


def test_run_counts_name_every_status(store):
    leads, invoices = make_objective(store), make_objective(store, title="Invoices")
    store.create_run(leads.id)
    store.create_run(leads.id)
    _claimed(store, leads.id)
    store.request_cancel(store.create_run(invoices.id).id)
    assert store.run_counts() == {
        **dict.fromkeys(RunStatus, 0),
        RunStatus.QUEUED: 2,
        RunStatus.RUNNING: 1,
        RunStatus.CANCELLED: 1,
    }
    assert store.run_counts(objective_id=invoices.id) == {
        **dict.fromkeys(RunStatus, 0),
        RunStatus.CANCELLED: 1,
    }
    assert store.run_counts(objective_id=MISSING) == dict.fromkeys(RunStatus, 0)
    assert all(isinstance(status, RunStatus) for status in store.run_counts())


# --- a run's page --------------------------------------------------------------------------


def test_the_timeline_attaches_each_steps_call_and_approval(store):
    objective = make_objective(store)
    run = _claimed(store, objective.id)
    counted = _finished_step(store, run.id, ToolCallStatus.SUCCEEDED)
    thought = store.start_step(run.id, NewStep(thought="Now email the leads."))
    paused = pause_on_email(store, run.id, owner=OWNER)

    page = store.timeline_page(run.id)
    assert (page.total, page.offset, page.limit) == (3, 0, 50)
    first, second, third = page.items
    assert first.step == store.get_step(counted.step.id)
    assert first.tool_call.id == counted.tool_call.id
    assert first.tool_call.status is ToolCallStatus.SUCCEEDED
    assert first.approval is None
    assert (second.step.id, second.tool_call, second.approval) == (thought.step.id, None, None)
    assert third.step.status is StepStatus.AWAITING_APPROVAL
    assert third.tool_call.id == paused.tool_call.id
    assert third.tool_call.status is ToolCallStatus.AWAITING_APPROVAL
    assert third.approval == store.get_approval(paused.approval.id)
    assert third.approval.status is ApprovalStatus.PENDING
    detail = store.run_detail(run.id)
    assert [item.step for item in page.items] == detail.steps
    assert [item.tool_call for item in page.items if item.tool_call] == detail.tool_calls


def test_a_long_timeline_comes_in_pages_of_steps(store):
    run = _claimed(store, make_objective(store).id)
    for number in range(1, 121):
        store.start_step(run.id, NewStep(thought=f"step {number}"))

    pages = [store.timeline_page(run.id, offset=offset, limit=50) for offset in (0, 50, 100)]
    assert [[item.step.step_number for item in page.items] for page in pages] == [
        list(range(1, 51)),
        list(range(51, 101)),
        list(range(101, 121)),
    ]
    assert {page.total for page in pages} == {120}
    assert [item.step.thought for item in pages[2].items][-1] == "step 120"
    beyond = store.timeline_page(run.id, offset=120)
    assert (beyond.items, beyond.total) == ([], 120)
    empty = store.create_run(make_objective(store).id)
    assert store.timeline_page(empty.id) == store.timeline_page(empty.id, offset=10).model_copy(
        update={"offset": 0}
    )
    assert store.timeline_page(empty.id).total == 0


def test_events_come_in_keyset_pages(store):
    run = store.create_run(make_objective(store).id)
    store.append_events(
        run.id, [NewEvent(event_type="note", data={"n": n}) for n in range(1, 25)]
    )  # 25 events with run_queued
    first = store.events_page(run.id, limit=10)
    assert [event.seq for event in first] == list(range(1, 11))
    second = store.events_page(run.id, after_seq=first[-1].seq, limit=10)
    assert [event.seq for event in second] == list(range(11, 21))
    last = store.events_page(run.id, after_seq=second[-1].seq, limit=10)
    assert [event.seq for event in last] == list(range(21, 26))
    assert store.events_page(run.id, after_seq=25) == []
    assert first + second + last == store.list_events(run.id)
    assert store.events_page(run.id)[0].event_type == "run_queued"


def test_interrupted_calls_are_found_with_their_call_in_one_query(store):
    run = _claimed(store, make_objective(store).id)
    _finished_step(store, run.id, ToolCallStatus.SUCCEEDED)
    in_flight = store.start_step(
        run.id,
        NewStep(thought="email", tool="send_email", args=EMAIL),
        tool_call=NewToolCall(tool_name="send_email", args=EMAIL, risk_level=RiskLevel.HIGH),
    )
    bare = store.start_step(run.id, NewStep(thought="thinking, nothing called"))
    assert bare.step.status is StepStatus.EXECUTING

    found = store.interrupted_calls(run.id)
    assert [(step.step_number, call.id if call else None) for step, call in found] == [
        (2, in_flight.tool_call.id),
        (3, None),
    ]
    step, call = found[0]
    assert step == store.get_step(in_flight.step.id)
    assert call == next(c for c in store.list_tool_calls(run.id) if c.id == call.id)
    assert call.status is ToolCallStatus.STARTED
    assert store.interrupted_calls(_claimed(store, run.objective_id).id) == []


def test_get_step_reads_one_step(store):
    run = _claimed(store, make_objective(store).id)
    written = _finished_step(store, run.id, ToolCallStatus.SUCCEEDED)
    assert store.get_step(written.step.id) == store.list_steps(run.id)[0]


def test_a_runs_notifications_are_those_attempted(store):
    paused = _paused(store, make_objective(store).id)
    email, whatsapp = store.add_notifications(
        paused.approval,
        NotificationKind.APPROVAL_REQUEST,
        {"email": "admin@example.com", "whatsapp": "whatsapp:+33600000001"},
    )
    (reminder,) = store.add_notifications(
        paused.approval, NotificationKind.REMINDER, {"email": "admin@example.com"}
    )
    assert store.run_notifications(paused.run.id) == []  # none attempted yet

    def notice(notification):
        return ledger_events.notification_facts(
            approval_id=paused.approval.id,
            channel=notification.channel,
            kind=notification.kind,
            recipient=notification.recipient,
            attempt=1,
        )

    store.record_notification(
        email,
        status=NotificationStatus.SENT,
        error=None,
        next_attempt_at=None,
        event=ledger_events.notification_sent(notice=notice(email)),
    )
    store.record_notification(
        whatsapp,
        status=NotificationStatus.FAILED,
        error="Twilio refused",
        next_attempt_at=store.now() + timedelta(minutes=1),
        event=ledger_events.notification_failed(
            notice=notice(whatsapp), error="Twilio refused", will_retry=True
        ),
    )
    shown = store.run_notifications(paused.run.id)
    assert [(n.id, n.status, n.last_error) for n in shown] == [
        (email.id, NotificationStatus.SENT, None),
        (whatsapp.id, NotificationStatus.FAILED, "Twilio refused"),
    ]
    assert reminder.id not in {n.id for n in shown}  # still pending
    assert store.run_notifications(_claimed(store, paused.run.objective_id).id) == []


# --- approvals -----------------------------------------------------------------------------


def _approvals(store, clock):
    """Five approvals over time: approved, pending, rejected, pending, expired."""
    objective = make_objective(store, title="Follow-ups")
    made = []
    for index in range(5):
        clock.advance(minutes=10)
        expires = timedelta(minutes=5) if index == 4 else None
        made.append(_paused(store, objective.id, thought=f"thought {index}", expires_in=expires))
    store.decide_approval(made[0].approval.id, approve=True, by="alice", signing_key=KEY)
    store.decide_approval(
        made[2].approval.id, approve=False, by="bob", reason="no", signing_key=KEY
    )
    clock.advance(minutes=6)
    assert [a.id for a in store.expire_approvals()] == [made[4].approval.id]
    return made


def test_approvals_page_shows_pending_first_then_newest(store, clock):
    made = _approvals(store, clock)
    ids = [started.approval.id for started in made]
    page = store.approvals_page()
    assert [row.id for row in page.rows] == [ids[3], ids[1], ids[4], ids[2], ids[0]]
    assert [row.status for row in page.rows] == [
        ApprovalStatus.PENDING,
        ApprovalStatus.PENDING,
        ApprovalStatus.EXPIRED,
        ApprovalStatus.REJECTED,
        ApprovalStatus.APPROVED,
    ]
    assert page.total == 5
    row = page.rows[0]
    assert (row.objective_title, row.run_number, row.thought) == ("Follow-ups", 4, "thought 3")
    assert row.model_dump(exclude={"objective_title", "run_number", "thought"}) == (
        store.get_approval(ids[3]).model_dump()
    )

    pages = [store.approvals_page(limit=2, offset=offset) for offset in (0, 2, 4, 6)]
    assert [[row.id for row in page.rows] for page in pages] == [
        [ids[3], ids[1]],
        [ids[4], ids[2]],
        [ids[0]],
        [],
    ]
    assert {page.total for page in pages} == {5}
    one = store.approvals_page(limit=1, offset=2)
    assert ([row.id for row in one.rows], one.total) == ([ids[4]], 5)

    pending = store.approvals_page(statuses=[ApprovalStatus.PENDING])
    assert ([row.id for row in pending.rows], pending.total) == ([ids[3], ids[1]], 2)
    decided = store.approvals_page(statuses=["approved", ApprovalStatus.REJECTED], limit=1)
    assert ([row.id for row in decided.rows], decided.total) == ([ids[2]], 2)
    assert store.approvals_page(statuses=[ApprovalStatus.CANCELLED]).rows == []


def test_pending_count_leaves_out_what_expired(store, clock):
    made = _approvals(store, clock)
    assert store.pending_approvals_count() == 2
    late = _paused(store, made[0].run.objective_id, expires_in=timedelta(minutes=1))
    assert store.pending_approvals_count() == 3
    clock.advance(minutes=2)  # expired, though maintenance has not marked it yet
    assert store.get_approval(late.approval.id).status is ApprovalStatus.PENDING
    assert store.pending_approvals_count() == 2
    assert store.approvals_page().rows[0].id == late.approval.id  # still listed as pending


def test_approval_view_has_what_the_page_shows(store):
    paused = _paused(store, make_objective(store, title="Follow-ups").id)
    (email,) = store.add_notifications(
        paused.approval, NotificationKind.APPROVAL_REQUEST, {"email": "admin@example.com"}
    )
    view = store.approval_view(paused.approval.id)
    assert view.approval == store.get_approval(paused.approval.id)
    assert view.run == store.get_run(paused.run.id)
    assert view.run.status is RunStatus.PAUSED
    assert (view.objective_title, view.thought) == (
        "Follow-ups",
        "Ada has not answered: email her.",
    )
    assert view.notifications == [email]
    assert view.notifications == store.list_notifications(paused.approval.id)


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("read", "message"),
    [
        (lambda s: s.runs_page(limit=0), "limit must be a whole number from 1 to 500, not 0"),
        (lambda s: s.runs_page(limit=501), "limit must be a whole number from 1 to 500, not 501"),
        (lambda s: s.runs_page(offset=-1), "offset must be a whole number, 0 or more, not -1"),
        (lambda s: s.runs_page(statuses=["done"]), "'done' is not a run status: use one of"),
        (lambda s: s.approvals_page(limit=1000), "limit must be a whole number from 1 to 500"),
        (lambda s: s.approvals_page(offset=-5), "offset must be a whole number, 0 or more"),
        (
            lambda s: s.approvals_page(statuses=["waiting"]),
            "'waiting' is not a approval status: use one of pending, approved",
        ),
        (lambda s: s.timeline_page(MISSING, limit=0), "limit must be a whole number"),
        (lambda s: s.timeline_page(MISSING, offset=-1), "offset must be a whole number"),
        (lambda s: s.events_page(MISSING, limit=501), "limit must be a whole number"),
        (lambda s: s.events_page(MISSING, after_seq=-1), "after_seq must be a whole number"),
    ],
)
def test_invalid_paging_is_refused_with_a_sentence(store, read, message):
    with pytest.raises(InvalidInput, match=message):
        read(store)


def test_a_naive_time_filter_is_refused(store):
    naive = store.now().replace(tzinfo=None)
    with pytest.raises(InvalidInput, match="since must be a datetime with a time zone"):
        store.runs_page(since=naive)
    with pytest.raises(InvalidInput, match="until must be a datetime with a time zone"):
        store.runs_page(until=naive)


@pytest.mark.parametrize(
    ("read", "message"),
    [
        (lambda s: s.run_view(MISSING), f"no run has id {MISSING}"),
        (lambda s: s.timeline_page(MISSING), f"no run has id {MISSING}"),
        (lambda s: s.events_page(MISSING), f"no run has id {MISSING}"),
        (lambda s: s.get_step(MISSING), f"no step has id {MISSING}"),
        (lambda s: s.approval_view(MISSING), f"no approval has id {MISSING}"),
        (lambda s: s.run_view("nope"), "'nope' is not a valid run id"),
        (lambda s: s.timeline_page("nope"), "'nope' is not a valid run id"),
        (lambda s: s.get_step("nope"), "'nope' is not a valid step id"),
        (lambda s: s.approval_view("nope"), "'nope' is not a valid approval id"),
        (lambda s: s.runs_page(objective_id="nope"), "'nope' is not a valid objective id"),
        (lambda s: s.run_counts(objective_id="nope"), "'nope' is not a valid objective id"),
        (lambda s: s.interrupted_calls("nope"), "'nope' is not a valid run id"),
        (lambda s: s.run_notifications("nope"), "'nope' is not a valid run id"),
    ],
)
def test_unknown_ids_are_named(store, read, message):
    with pytest.raises(NotFound, match=message):
        read(store)


# --- cost ----------------------------------------------------------------------------------


class _Statements:
    """The SELECT statements the store sends, counted on the engine."""

    def __init__(self, engine):
        self.engine = engine
        self.seen = []

    def __enter__(self):
        sa.event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_):
        sa.event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, _conn, _cursor, statement, *_):
        if statement.lstrip().upper().startswith("SELECT"):
            self.seen.append(statement)


def _selects(store, read):
    with _Statements(store.engine) as statements:
        read()
    return len(statements.seen)


def test_pages_cost_the_same_number_of_queries_whatever_the_rows(store):
    small, large = make_objective(store), make_objective(store, title="Large")
    small_run = _claimed(store, small.id)
    large_run = _claimed(store, large.id)
    for run, steps in ((small_run, 2), (large_run, 40)):
        for _ in range(steps):
            _finished_step(store, run.id, ToolCallStatus.FAILED)
    _paused(store, small.id)
    for _ in range(30):
        store.create_run(large.id)
    for _ in range(3):
        _paused(store, large.id)

    def timeline(run):
        return lambda: store.timeline_page(run.id, limit=50)

    def runs(objective):
        return lambda: store.runs_page(objective_id=objective.id, limit=50)

    assert len(store.timeline_page(large_run.id).items) == 40
    assert len(store.runs_page(objective_id=large.id).rows) == 34
    assert _selects(store, timeline(small_run)) == _selects(store, timeline(large_run)) == 3
    assert _selects(store, runs(small)) == _selects(store, runs(large)) == 2
    assert _selects(store, store.approvals_page) == 2
    newest = store.approvals_page().rows[0].id
    assert _selects(store, lambda: store.approval_view(newest)) == 3
    assert _selects(store, lambda: store.run_view(large_run.id)) == 1
    assert _selects(store, lambda: store.interrupted_calls(large_run.id)) == 1
    assert _selects(store, store.run_counts) == 1


def test_a_run_starts_from_its_objective_and_the_run_before_it_skipped_ones_left_out(store):
    objective = make_objective(
        store, budget={"maxSteps": 7}, tools_allowed=["count_database"], risk_level="high"
    )
    first = store.create_run(objective.id)
    slot = store.now().replace(minute=0, second=0, microsecond=0)
    skipped = store.schedule_run(objective.id, slot)  # the first run is still queued
    assert skipped is not None
    assert skipped.status is RunStatus.SKIPPED
    latest = store.create_run(objective.id)
    remembered, previous = store.run_memory(latest)
    assert remembered == store.get_objective(objective.id)
    assert remembered.budget.max_steps == 7
    assert previous == store.get_run(first.id)
    assert store.run_memory(first) == (remembered, None)
    with pytest.raises(NotFound):
        store.run_memory(latest.model_copy(update={"objective_id": MISSING}))
