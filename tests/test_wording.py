"""The wording of domain facts an admin reads (CLI, dashboard, notifications): pure, fast."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent_core import events
from agent_core.events import EventType
from agent_core.models import (
    Approval,
    ApprovalStatus,
    Event,
    Run,
    RunStatus,
    Step,
    StepStatus,
    StopReason,
    ToolCall,
    ToolCallStatus,
)
from agent_core.render import (
    RUN_STATUS_LABELS,
    STOP_REASONS,
    TOOL_CALL_STATUS_LABELS,
    approval_request_sentence,
    describe_call,
    describe_result,
    event_sentence,
    format_duration,
    run_headline,
    run_outcome,
    step_error,
    step_sentence,
    why_not_claimable,
    why_undecidable,
)
from tests.test_events import MINIMAL

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def make_run(**fields) -> Run:
    base = {
        "id": "11111111-1111-1111-1111-111111111111",
        "objective_id": "22222222-2222-2222-2222-222222222222",
        "run_number": 4,
        "status": RunStatus.COMPLETED,
        "stop_reason": StopReason.DONE,
        "summary": "Sent 3 emails.",
        "error": None,
        "trigger": "manual",
        "previous_run_id": None,
        "steps_count": 4,
        "tool_calls_count": 3,
        "prompt_tokens": 1000,
        "completion_tokens": 200,
        "event_seq": 12,
        "created_at": NOW,
        "started_at": NOW,
        "completed_at": NOW,
        "updated_at": NOW,
        "lease_owner": None,
        "lease_expires_at": None,
        "attempts": 1,
        "cancel_requested_at": None,
        "active_ms": 4200,
        "schedule_slot": None,
    }
    return Run.model_validate({**base, **fields})


def make_step(**fields) -> Step:
    base = {
        "id": "33333333-3333-3333-3333-333333333333",
        "run_id": "11111111-1111-1111-1111-111111111111",
        "step_number": 2,
        "thought": "Email the lead.",
        "tool": "send_email",
        "args": {"to": "ana@example.com", "subject": "Your quote", "body": "Hello"},
        "raw_output": "{}",
        "result": None,
        "status": StepStatus.COMPLETED,
        "model": "m",
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "latency_ms": 5,
        "created_at": NOW,
        "completed_at": NOW,
    }
    return Step.model_validate({**base, **fields})


def make_call(status: ToolCallStatus, error: str | None = None) -> ToolCall:
    return ToolCall.model_validate(
        {
            "id": "44444444-4444-4444-4444-444444444444",
            "run_id": "11111111-1111-1111-1111-111111111111",
            "step_id": "33333333-3333-3333-3333-333333333333",
            "tool_name": "send_email",
            "args": {},
            "args_hash": "h",
            "risk_level": "high",
            "status": status,
            "result": None,
            "error": error,
            "duration_ms": 10,
            "attempts": 1,
            "created_at": NOW,
            "completed_at": NOW,
        }
    )


def make_approval(**fields) -> Approval:
    base = {
        "id": "55555555-5555-5555-5555-555555555555",
        "run_id": "11111111-1111-1111-1111-111111111111",
        "step_id": "33333333-3333-3333-3333-333333333333",
        "tool_call_id": "44444444-4444-4444-4444-444444444444",
        "tool_name": "send_email",
        "args": {"to": "ana@example.com", "subject": "Your quote", "body": "Hello"},
        "args_hash": "h",
        "risk_reason": "send_email is high risk",
        "status": ApprovalStatus.PENDING,
        "expires_at": datetime(2026, 11, 3, 9, 0, tzinfo=UTC),
        "decided_by": None,
        "decided_at": None,
        "decision_reason": None,
        "created_at": NOW,
    }
    return Approval.model_validate({**base, **fields})


def test_every_status_and_stop_reason_has_words():
    assert set(RUN_STATUS_LABELS) == set(RunStatus)
    assert set(STOP_REASONS) == set(StopReason)
    assert set(TOOL_CALL_STATUS_LABELS) == set(ToolCallStatus)
    assert all(sentence.endswith(".") for sentence in STOP_REASONS.values())


@pytest.mark.parametrize("kind", list(EventType))
def test_every_event_type_reads_as_a_sentence_without_its_code(kind):
    built = getattr(events, kind.value)(**MINIMAL[kind.value])
    event = Event(
        run_id="r",
        seq=1,
        event_type=built.event_type,
        data=built.data,
        created_at=NOW,
        prev_hash="0",
        hash="1",
    )
    sentence = event_sentence(event)
    assert sentence
    assert kind.value not in sentence
    assert "{" not in sentence


def test_events_written_by_older_versions_are_still_worded():
    old_expiry = Event(
        run_id="r",
        seq=1,
        event_type="approval_expired",
        data={"approval_id": "a"},
        created_at=NOW,
        prev_hash="0",
        hash="1",
    )
    assert event_sentence(old_expiry) == "The approval for the call expired without a decision."
    unknown = old_expiry.model_copy(update={"event_type": "something_new", "data": {"x": 1}})
    assert event_sentence(unknown) == 'something_new: {"x": 1}'


def test_a_completed_run_whose_calls_failed_does_not_read_as_a_plain_success():
    run = make_run()
    assert run_outcome(run) == "completed"
    assert run_outcome(run, failed_calls=2) == "completed, but 2 tool calls did not succeed"
    assert run_outcome(make_run(status=RunStatus.FAILED), 1) == (
        "failed; 1 tool call did not succeed"
    )


def test_a_failed_run_says_why_in_plain_words():
    run = make_run(status=RunStatus.FAILED, stop_reason=StopReason.BUDGET_STEPS)
    assert run_headline(run) == (
        "Run #4 failed. The run used all the steps its budget allows before finishing."
    )


def test_calls_are_described_by_what_they_do():
    assert describe_call("send_email", {"to": "ana@example.com", "subject": "Your quote"}) == (
        "send an email to ana@example.com with the subject “Your quote”"
    )
    assert describe_call(
        "read_database", {"table": "app_leads", "filters": {"score": {"gte": 5}}}
    ) == ("read rows of app_leads where score ≥ 5")
    assert describe_call("delete_data", {"table": "app_leads", "id": 7}) == (
        "delete row 7 from app_leads"
    )
    assert describe_call("my_plugin_tool", {"sku": "A-1", "qty": 2}) == (
        "run my_plugin_tool (sku=A-1, qty=2)"
    )
    assert describe_call("read_database", {"filters": "not a mapping"}).startswith("read rows of ?")
    assert describe_call(None, None) == "finish"


def test_steps_say_what_they_did_and_how_it_went():
    done = make_step(tool=None, args=None, step_number=5)
    assert step_sentence(done) == "Step 5: the agent finished and wrote its summary."
    rejected = make_call(ToolCallStatus.REJECTED, "the admin (ana) rejected this call: no")
    step = make_step(status=StepStatus.FAILED)
    assert step_sentence(step, rejected) == (
        "Step 2: send an email to ana@example.com with the subject “Your quote” (send_email)"
        " — rejected by an admin."
    )
    assert step_error(step, rejected) == "the admin (ana) rejected this call: no"
    assert step_error(make_step(), make_call(ToolCallStatus.SUCCEEDED)) is None
    failed_without_call = make_step(status=StepStatus.FAILED, result={"error": "boom"})
    assert step_error(failed_without_call) == "boom"


def test_long_results_are_cut_with_a_visible_marker():
    text = describe_result({"rows": ["x" * 50] * 20}, max_chars=100)
    assert len(text) == 100
    assert text.endswith("…")
    assert describe_result(None) == "(no result)"


def test_durations_read_as_people_say_them():
    assert [format_duration(ms) for ms in (850, 12_400, 200_000, 7_500_000)] == [
        "850 ms",
        "12.4 s",
        "3 min 20 s",
        "2 h 5 min",
    ]


def test_why_a_run_or_an_approval_cannot_be_acted_on():
    assert why_not_claimable(make_run(status=RunStatus.PAUSED)) == (
        "it is paused, waiting for an approval decision"
    )
    paused = make_run(status=RunStatus.PAUSED)
    approval = make_approval()
    assert why_undecidable(approval, paused, NOW) is None
    decided = make_approval(status=ApprovalStatus.APPROVED, decided_by="ana", decided_at=NOW)
    assert "was already approved by ana at 2026-11-02 09:00 UTC" in why_undecidable(
        decided, paused, NOW
    )
    late = datetime(2026, 11, 4, tzinfo=UTC)
    assert "can no longer be decided" in why_undecidable(approval, paused, late)


def test_an_approval_request_says_what_the_agent_wants_to_do():
    assert approval_request_sentence(make_approval()) == (
        "The agent wants to send an email to ana@example.com with the subject “Your quote”."
    )
