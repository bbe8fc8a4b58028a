"""Ledger events: every type has one builder, and each builder writes one payload shape."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime

import pytest

from agent_core import events
from agent_core.events import EventType

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LLM = events.llm_facts(model="m", prompt_tokens=3, completion_tokens=4, latency_ms=5)
NOTICE = events.notification_facts(
    approval_id="a", channel="email", kind="approval_request", recipient="x@y.z", attempt=1
)

# One call of each builder with its required arguments only.
MINIMAL = {
    "run_queued": {"objective_id": "o", "run_number": 1, "trigger": "manual"},
    "run_skipped": {
        "objective_id": "o",
        "run_number": 2,
        "trigger": "schedule",
        "slot": NOW,
        "active_run_id": "r",
    },
    "run_claimed": {"owner": "w", "from_status": "queued"},
    "run_started": {
        "objective_id": "o",
        "attempt": 1,
        "owner": "w",
        "resumed_at_step": 0,
        "budget": {"maxSteps": 3},
        "previous_run_id": None,
    },
    "run_released": {"owner": "w", "reason": "shutdown"},
    "run_paused": {"owner": "w", "reason": "its approval is still pending"},
    "run_requeued": {"lease_lapsed_for": "w", "attempts": 1},
    "cancel_requested": {"by": "ana"},
    "run_cancelled": {"by": "ana", "stop_reason": "cancelled", "error": None},
    "run_failed": {"stop_reason": "llm_error", "error": "down"},
    "budget_exceeded": {"budget_type": "steps", "limit": 3},
    "step_error": {"attempt": 1, "error": "no JSON", "reply": "hi", "llm": LLM},
    "step_started": {"step_number": 1, "tool": "send_email", "llm": LLM},
    "step_completed": {"step_number": 1, "tool": "read_database"},
    "tool_error": {"step_number": 1, "tool": "t", "error": "boom", "timed_out": False},
    "tool_denied": {"step_number": 1, "tool": "t", "reason": "no"},
    "tool_outcome_unknown": {"step_number": 1, "tool": "t"},
    "objective_completed": {"summary": "done"},
    "approval_requested": {
        "approval_id": "a",
        "step_number": 1,
        "tool": "send_email",
        "args": {"to": "x@y.z"},
        "reason": "high risk",
        "expires_at": NOW,
        "llm": LLM,
    },
    "approval_decided": {
        "approval_id": "a",
        "decision": "approved",
        "by": "ana",
        "reason": None,
        "tool": "send_email",
        "args_hash": "h",
    },
    "approval_expired": {"approval_id": "a", "tool": "t", "expired_at": NOW},
    "approval_tampered": {"approval_id": "a", "args_hash": "h"},
    "approval_rejection_observed": {"approval_id": "a", "step_number": 1},
    "approved_call_started": {"approval_id": "a", "tool": "t", "args_hash": "h"},
    "notification_sent": {"notice": NOTICE},
    "notification_failed": {"notice": NOTICE, "error": "refused", "will_retry": True},
    "notification_cancelled": {"notice": NOTICE, "reason": "decided"},
}


def test_every_event_type_has_a_builder_of_its_name():
    assert set(MINIMAL) == {kind.value for kind in EventType}
    for kind in EventType:
        assert inspect.isfunction(getattr(events, kind.value))


def documented_shapes() -> dict[str, set[str]]:
    """The payload keys of each type, as the table in agent_core/events.py documents them."""
    shapes: dict[str, set[str]] = {}
    current = None
    for line in (events.__doc__ or "").splitlines():
        if not line.startswith("| ") or line.startswith("| type") or line.startswith("| ---"):
            continue
        name, keys = (cell.strip() for cell in line.strip("|").split("|"))
        current = name or current
        for key in keys.split(","):
            key = key.strip()
            if key == "+ LLM facts":
                shapes[current] |= set(events.NO_LLM)
            elif key:
                shapes.setdefault(current, set()).add(key)
    return shapes


@pytest.mark.parametrize("name", sorted(MINIMAL))
def test_a_builder_writes_its_type_and_exactly_the_documented_keys(name):
    built = getattr(events, name)(**MINIMAL[name])
    assert built.event_type == name
    assert set(built.data) == documented_shapes()[name]


def test_step_completed_has_one_shape_for_the_final_answer_a_call_and_an_approved_call():
    final = events.step_completed(step_number=3, tool=None, done=True, llm=LLM)
    call = events.step_completed(step_number=1, tool="read_database", success=False, error="x")
    approved = events.step_completed(step_number=2, tool="send_email", approval_id="a")
    assert set(final.data) == set(call.data) == set(approved.data)
    assert final.data["done"] is True
    assert call.data["error"] == "x"
    assert approved.data["approval_id"] == "a"


def test_approval_expired_has_one_shape_from_maintenance_and_from_a_resume():
    shapes = {
        frozenset(events.approval_expired(approval_id="a", tool="t", expired_at=NOW).data),
        frozenset(events.approval_expired(approval_id="b", tool="u", expired_at=NOW).data),
    }
    assert shapes == {frozenset({"approval_id", "tool", "expired_at"})}
