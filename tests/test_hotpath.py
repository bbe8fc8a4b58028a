"""The step writes' shortcuts compute exactly what the slower, obvious code computes."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from agent_core.errors import NotFound
from agent_core.models import NewEvent
from agent_core.store.base import new_id, parse_id
from agent_core.store.hotpath import HotPath, json_encoder, json_text, json_value, ledger_time
from agent_core.store.ledger import (
    canonical_json,
    canonical_time,
    event_hash,
    to_json_value,
    tool_args_hash,
)

AWKWARD = [
    {},
    {"step_number": 3, "tool": "noop", "success": True, "error": None, "fallback_from": None},
    {"quote": 'say "hi"\\', "tab": "a\tb\nc", "unicode": "日本 é \u2028", "emoji": "🙂"},
    {"nested": {"b": [1, 2.5, {"z": None, "a": False}], "a": -0.0}, "big": 2**70},
    {"nan": float("nan"), "inf": float("inf"), "nul": "a\x00b", "tuple": (1, "x")},
    {"when": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "z": 1, "A": 2, "é": 3},
]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
@pytest.mark.parametrize("data", AWKWARD)
def test_chained_events_hash_as_the_ledger_does(dialect, data):
    now = datetime(2026, 11, 26, 3, 24, 50, 631385, tzinfo=UTC)
    run_id = new_id()
    news = [NewEvent(event_type="step_completed", data=data), NewEvent(event_type='o"dd')]
    first, second = HotPath(dialect).chain(run_id, news, first_seq=7, prev_hash="a" * 64, now=now)
    assert first.hash == event_hash(
        run_id=run_id,
        seq=7,
        event_type="step_completed",
        data=to_json_value(data),
        created_at=now,
        prev_hash="a" * 64,
    )
    assert first.data_json == canonical_json(to_json_value(data))
    assert (second.seq, second.prev_hash) == (8, first.hash)
    assert second.hash == event_hash(
        run_id=run_id, seq=8, event_type='o"dd', data={}, created_at=now, prev_hash=first.hash
    )


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 26, 3, 24, 50, 631385, tzinfo=UTC),
        datetime(2026, 11, 26, 3, 24, 50, tzinfo=UTC),  # no microseconds
        datetime(2026, 11, 26, 5, 24, 50, 1, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 11, 26, 3, 24, 50, 999999),  # naive: taken as UTC
    ],
)
def test_ledger_time_is_the_canonical_time(moment):
    assert ledger_time(moment) == canonical_time(moment)


def test_new_ids_are_random_version_4_uuids():
    ids = [new_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    for value in ids:
        parsed = uuid.UUID(value)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == value


def test_parse_id_keeps_canonical_ids_and_normalises_the_rest():
    value = new_id()
    assert parse_id(value, "run") is value
    assert parse_id(f" {value.upper()} ", "run") == value
    assert parse_id(value.replace("-", ""), "run") == value
    with pytest.raises(NotFound, match="not a valid run id"):
        parse_id(value[:-1] + "g", "run")


@pytest.mark.parametrize("args", [{}, {"table": "app_leads", "limit": 5}, {"q": 'a "b" 日本'}])
def test_the_args_hash_is_the_ledger_s(args):
    assert HotPath("sqlite").args_hash("count_database", json_value(args)) == tool_args_hash(
        "count_database", args
    )


@pytest.mark.parametrize("value", [*AWKWARD, None, 3, "x\x00", [1, (2,)], {"k": 1.5}, {1: 2}])
def test_json_value_is_to_json_value(value):
    assert canonical_json(json_value(value)) == canonical_json(to_json_value(value))


@pytest.mark.parametrize(
    "value",
    [{}, {"ok": True}, [1, 2.5, None], '日本 "q"', {"b": {"a": [1e300, -0.0]}}, 2**70, 1.5],
)
def test_the_json_encoders_write_what_json_dumps_writes(value):
    assert json_text(value) == json.dumps(value)
    assert json_encoder(canonical=False, ensure_ascii=False)(value) == json.dumps(
        value, ensure_ascii=False
    )
    assert json_encoder(canonical=True)(value) == canonical_json(value)
    with pytest.raises(ValueError, match="not JSON compliant"):
        json_encoder(canonical=True)(float("nan"))
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_text({"when": datetime(2026, 1, 1, tzinfo=UTC)})
