"""The audit ledger cannot be edited without `ledger verify` saying where."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from agent_core.models import NewEvent, RunStatus
from agent_core.store.ledger import GENESIS_HASH, event_hash
from agent_core.store.schema import events, ledger_checkpoints, runs
from tests.support import KEY, make_objective, tamper


def _run_with_events(store, count=4):
    run = store.create_run(make_objective(store).id)  # event 1: run_queued
    store.append_events(
        run.id,
        [NewEvent(event_type="note", data={"n": n, "text": "été"}) for n in range(2, count + 1)],
    )
    return run


def _finish(store, run_id):
    with store.engine.begin() as conn:
        conn.execute(runs.update().where(runs.c.id == run_id).values(status=RunStatus.COMPLETED))


def test_events_are_numbered_and_chained(store):
    run = _run_with_events(store, count=3)
    chain = store.list_events(run.id)
    assert [event.seq for event in chain] == [1, 2, 3]
    assert chain[0].prev_hash == GENESIS_HASH
    assert [event.prev_hash for event in chain[1:]] == [event.hash for event in chain[:-1]]
    report = store.verify_ledger(KEY)
    assert report.ok
    assert (report.runs_checked, report.events_checked) == (1, 3)


def test_an_edited_event_is_named(store, database_url):
    run = _run_with_events(store)
    other = _run_with_events(store)
    tamper(
        database_url,
        lambda conn: conn.execute(
            events.update()
            .where(events.c.run_id == run.id, events.c.seq == 3)
            .values(data={"n": 3, "text": "changed"})
        ),
    )
    report = store.verify_ledger(KEY)
    assert not report.ok
    assert [(item.run_id, item.seq) for item in report.breaks] == [(run.id, 3)]
    assert "edited" in report.breaks[0].problem
    assert store.verify_ledger(KEY, other.id).ok


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(store, database_url):
    run = _run_with_events(store)
    original = store.list_events(run.id)[1]
    forged_data = {"n": 2, "text": "forged"}
    forged_hash = event_hash(
        run_id=run.id,
        seq=2,
        event_type=original.event_type,
        data=forged_data,
        created_at=original.created_at,
        prev_hash=original.prev_hash,
    )
    tamper(
        database_url,
        lambda conn: conn.execute(
            events.update()
            .where(events.c.run_id == run.id, events.c.seq == 2)
            .values(data=forged_data, hash=forged_hash)
        ),
    )
    (broken,) = store.verify_ledger(KEY).breaks
    assert broken.seq == 3
    assert "does not link to the event before it" in broken.problem


def test_a_deleted_event_is_named(store, database_url):
    run = _run_with_events(store)
    tamper(
        database_url,
        lambda conn: conn.execute(
            events.delete().where(events.c.run_id == run.id, events.c.seq == 2)
        ),
    )
    (broken,) = store.verify_ledger(KEY).breaks
    assert (broken.run_id, broken.seq) == (run.id, 2)
    assert "event 2 is missing" in broken.problem


def test_deleting_the_newest_events_is_detected(store, database_url):
    run = _run_with_events(store)
    tamper(
        database_url,
        lambda conn: conn.execute(
            events.delete().where(events.c.run_id == run.id, events.c.seq >= 3)
        ),
    )
    (broken,) = store.verify_ledger(KEY).breaks
    assert broken.seq == 3
    assert "events 3 to 4 are missing: the run recorded 4 events" in broken.problem


def test_an_inserted_event_is_named(store, database_url):
    run = _run_with_events(store)
    head = store.list_events(run.id)[-1]
    moment = head.created_at + timedelta(seconds=1)
    data = {"forged": True}
    forged = {
        "run_id": run.id,
        "seq": 5,
        "event_type": "approval_decided",
        "data": data,
        "created_at": moment,
        "prev_hash": head.hash,
        "hash": event_hash(
            run_id=run.id,
            seq=5,
            event_type="approval_decided",
            data=data,
            created_at=moment,
            prev_hash=head.hash,
        ),
    }
    tamper(database_url, lambda conn: conn.execute(events.insert().values(forged)))
    (broken,) = store.verify_ledger(KEY).breaks
    assert broken.seq == 5
    assert "added outside the runtime" in broken.problem


def test_an_event_slipped_into_the_middle_is_named(store, database_url):
    run = _run_with_events(store)
    stored = store.list_events(run.id)

    def shift_and_insert(conn):
        for event in reversed(stored[2:]):  # make room at seq 3
            conn.execute(
                events.update()
                .where(events.c.run_id == run.id, events.c.seq == event.seq)
                .values(seq=event.seq + 1)
            )
        conn.execute(
            events.insert().values(
                run_id=run.id,
                seq=3,
                event_type="note",
                data={"slipped": True},
                created_at=stored[2].created_at,
                prev_hash=stored[1].hash,
                hash="f" * 64,
            )
        )

    tamper(database_url, shift_and_insert)
    (broken,) = store.verify_ledger(KEY).breaks
    assert broken.seq == 3


def test_a_pruned_chain_still_verifies_and_keeps_growing(store, clock):
    old_run = _run_with_events(store, count=3)
    _finish(store, old_run.id)
    clock.advance(days=31)
    store.append_events(old_run.id, [NewEvent(event_type="late_note")])  # seq 4, recent
    active = _run_with_events(store, count=2)  # not finished: never pruned

    pruned = store.prune_events(older_than=clock.current - timedelta(days=30), signing_key=KEY)

    assert pruned == 3
    assert [event.seq for event in store.list_events(old_run.id)] == [4]
    with store.engine.connect() as conn:
        checkpoint = conn.execute(sa.select(ledger_checkpoints)).one()
    assert (checkpoint.run_id, checkpoint.seq) == (old_run.id, 3)
    assert store.verify_ledger(KEY).ok
    store.append_events(old_run.id, [NewEvent(event_type="after_prune")])
    assert store.verify_ledger(KEY).ok
    assert [event.seq for event in store.list_events(active.id)] == [1, 2]
    assert store.prune_events(older_than=clock.current - timedelta(days=30), signing_key=KEY) == 0


def test_pruning_every_event_of_a_run_keeps_it_verifiable(store, clock):
    run = _run_with_events(store, count=3)
    _finish(store, run.id)
    clock.advance(days=40)
    assert store.prune_events(older_than=clock.current - timedelta(days=30), signing_key=KEY) == 3
    assert store.list_events(run.id) == []
    report = store.verify_ledger(KEY)
    assert report.ok
    assert report.runs_checked == 1


def test_deleting_a_pruned_runs_checkpoint_is_detected(store, clock, database_url):
    run = _run_with_events(store, count=3)
    _finish(store, run.id)
    clock.advance(days=40)
    store.append_events(run.id, [NewEvent(event_type="recent")])
    store.prune_events(older_than=clock.current - timedelta(days=30), signing_key=KEY)
    tamper(database_url, lambda conn: conn.execute(ledger_checkpoints.delete()))
    (broken,) = store.verify_ledger(KEY).breaks
    assert broken.seq == 1
    assert "missing" in broken.problem


def test_postgresql_refuses_to_update_or_delete_events(pg_store, clock):
    store = pg_store
    run = _run_with_events(store)
    _finish(store, run.id)
    clock.advance(days=40)
    store.append_events(run.id, [NewEvent(event_type="recent")] * 2)
    assert store.prune_events(older_than=clock.current - timedelta(days=30), signing_key=KEY) == 4
    attempts = [
        events.update().where(events.c.run_id == run.id).values(data={}),
        events.delete().where(events.c.run_id == run.id),
        sa.text("TRUNCATE app_agent_events"),
        ledger_checkpoints.update().values(seq=1),
        ledger_checkpoints.delete(),
    ]
    for statement in attempts:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(statement)
    assert [event.seq for event in store.list_events(run.id)] == [5, 6]
    assert store.verify_ledger(KEY).ok


def test_sqlite_refuses_to_update_events(sqlite_store):
    store = sqlite_store
    run = _run_with_events(store)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.engine.begin() as conn:
        conn.execute(events.update().where(events.c.run_id == run.id).values(data={}))
    assert store.verify_ledger(KEY).ok


def test_event_data_is_stored_as_json_the_hash_can_recompute(store):
    run = store.create_run(make_objective(store).id)
    awkward = {
        "nan": float("nan"),
        "nul": "a\x00b",
        "nested": {"tuple": (1, 2), "float": 1.0, "big": 2**53, "unicode": "日本"},
        "when": store.now(),
    }
    (written,) = store.append_events(run.id, [NewEvent(event_type="awkward", data=awkward)])
    assert written.data["nan"] is None
    assert written.data["nul"] == "ab"
    assert written.data["nested"]["tuple"] == [1, 2]
    assert store.list_events(run.id)[-1] == written
    assert store.verify_ledger(KEY).ok


def test_large_floats_in_event_data_still_verify(store):
    # A float of 1e16 or more (a model's argument, say) is a whole number: PostgreSQL's
    # JSONB gives it back with all its digits, so it is stored and hashed as one.
    run = store.create_run(make_objective(store).id)
    large = {"amount": 1e16, "more": [1e20, -3.5e17], "huge": 1.5e300, "small": 123.456}
    (written,) = store.append_events(run.id, [NewEvent(event_type="large", data=large)])
    assert written.data["amount"] == 10**16
    assert written.data["small"] == 123.456
    assert store.list_events(run.id)[-1] == written
    assert store.verify_ledger(KEY, run.id).ok
