"""The ledger's signed seals: against someone who can write the database (but does not hold
AGENT_SECRET_KEY), `ledger verify` names an edited, deleted, inserted or reordered sealed
event even when the chain's hashes were recomputed, a deleted run, a forged or unsigned
prune checkpoint, and a deleted or altered seal. Tampering is done as the database's owner
would (tests/support.py `tamper`: triggers out of the way)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from agent_core.maintenance import run_maintenance, verify_ledger
from agent_core.models import NewEvent, RunStatus
from agent_core.notify import Notifier
from agent_core.store import Store, migrations
from agent_core.store.ledger import GENESIS_HASH, event_hash
from agent_core.store.schema import (
    UTCDateTime,
    events,
    ledger_checkpoints,
    ledger_seal_entries,
    ledger_seals,
    runs,
)
from agent_core.store.signing import entries_digest
from tests.support import KEY, SECRET_KEY, agent_settings, make_objective, run_cli, tamper

# The checkpoints table as the previous version wrote it: no signature.
OLD_CHECKPOINTS = sa.table(
    "app_agent_ledger_checkpoints",
    sa.column("run_id", sa.Uuid(as_uuid=False)),
    sa.column("seq", sa.Integer),
    sa.column("hash", sa.String),
    sa.column("pruned_at", UTCDateTime()),
)


def _run_with_events(store, count=4):
    run = store.create_run(make_objective(store).id)  # event 1: run_queued
    store.append_events(
        run.id, [NewEvent(event_type="note", data={"n": n}) for n in range(2, count + 1)]
    )
    return run


def _finish(store, run_id):
    with store.engine.begin() as conn:
        conn.execute(runs.update().where(runs.c.id == run_id).values(status=RunStatus.COMPLETED))


def _rechain(conn, run_id, rows):
    """Rewrite a run's events as `rows` (event_type, data, created_at) numbered from 1 with
    every hash recomputed, and its head to match: a chain that verifies on its own."""
    conn.execute(events.delete().where(events.c.run_id == run_id))
    previous = GENESIS_HASH
    for seq, (event_type, data, created_at) in enumerate(rows, start=1):
        digest = event_hash(
            run_id=run_id,
            seq=seq,
            event_type=event_type,
            data=data,
            created_at=created_at,
            prev_hash=previous,
        )
        conn.execute(
            events.insert().values(
                run_id=run_id,
                seq=seq,
                event_type=event_type,
                data=data,
                created_at=created_at,
                prev_hash=previous,
                hash=digest,
            )
        )
        previous = digest
    conn.execute(runs.update().where(runs.c.id == run_id).values(event_seq=len(rows)))


def _rows(store, run_id):
    return [(e.event_type, e.data, e.created_at) for e in store.list_events(run_id)]


def _only_break(store):
    report = store.verify_ledger(KEY)
    assert not report.seal_breaks, report.seal_breaks
    (broken,) = report.breaks
    return broken


# --- seals are written and verified -------------------------------------------------------------


def test_a_sealed_ledger_verifies_and_says_how_old_its_last_seal_is(store, clock):
    first = _run_with_events(store)
    second = _run_with_events(store, count=2)
    seal = store.seal_ledger(KEY)
    assert (seal.seq, seal.entries_count) == (1, 2)
    with store.engine.connect() as conn:
        entries = conn.execute(sa.select(ledger_seal_entries)).all()
    assert sorted((e.run_id, e.seq) for e in entries) == sorted([(first.id, 4), (second.id, 2)])

    store.append_events(first.id, [NewEvent(event_type="note")])
    assert store.seal_ledger(KEY).entries_count == 1  # only the run whose ledger grew
    empty = store.seal_ledger(KEY)
    assert (empty.seq, empty.entries_count) == (3, 0)  # a pass with nothing new still seals

    settings = agent_settings(agent_maintenance_interval_s=300)
    report = verify_ledger(store, settings)
    assert report.ok, (report.breaks, report.seal_breaks)
    assert (report.seals_checked, report.last_seal_seq, report.warnings) == (3, 3, [])
    clock.advance(minutes=11)
    stale = verify_ledger(store, settings)
    assert stale.ok
    assert stale.last_seal_age_s > 600
    (warning,) = stale.warnings
    assert "more than twice the maintenance interval" in warning
    assert "newest seals were deleted" in warning


def test_maintenance_seals_on_every_pass_and_the_cli_seals_and_verifies(
    store, database_url, monkeypatch
):
    run = _run_with_events(store)
    settings = agent_settings()
    report = run_maintenance(store, settings, Notifier(store, settings))
    assert (report.seal, report.runs_sealed) == (1, 1)
    assert "ledger seal:           seal 1 (1 run with new events)" in report.lines()

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AGENT_SECRET_KEY", SECRET_KEY)
    sealed = run_cli(["ledger", "seal"])
    assert sealed.exit_code == 0, sealed.stderr
    assert sealed.stdout.startswith("ledger sealed: seal 2 covers 0 runs with new events")
    verified = run_cli(["ledger", "verify"])
    assert verified.exit_code == 0, verified.stderr
    assert verified.stdout.startswith(
        "ledger OK: 4 events in 1 run verified; 2 seals checked, the last (seal 2)"
    )
    document = json.loads(run_cli(["ledger", "verify", "--run", run.id, "--json"]).stdout)
    assert (document["ok"], document["seals_checked"], document["last_seal_seq"]) == (True, 2, 2)


def test_without_the_secret_key_nothing_is_sealed_nor_verified(store, database_url, monkeypatch):
    _run_with_events(store)
    monkeypatch.setenv("DATABASE_URL", database_url)
    for command in (["ledger", "verify"], ["ledger", "seal"]):
        result = run_cli(command)
        assert result.exit_code == 2
        assert result.stderr.startswith("error: AGENT_SECRET_KEY is not set")
        assert result.stderr.count("\n") == 1  # one sentence
    keyless = agent_settings(agent_secret_key=None)
    report = run_maintenance(store, keyless, Notifier(store, keyless))
    assert report.seal is None
    assert report.ledger_problem.startswith("AGENT_SECRET_KEY is not set")
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ledger_seals)).scalar() == 0


# --- edits, deletions, insertions, reorders of sealed events ----------------------------------


@pytest.mark.parametrize("recompute", [False, True], ids=["as-is", "chain-recomputed"])
def test_an_edited_sealed_event_is_named(store, database_url, recompute):
    run = _run_with_events(store)
    store.seal_ledger(KEY)
    rows = _rows(store, run.id)
    if recompute:
        rows[1] = (rows[1][0], {"n": 2, "forged": True}, rows[1][2])
        tamper(database_url, lambda conn: _rechain(conn, run.id, rows))
    else:
        tamper(
            database_url,
            lambda conn: conn.execute(
                events.update()
                .where(events.c.run_id == run.id, events.c.seq == 2)
                .values(data={"n": 2, "forged": True})
            ),
        )
    broken = _only_break(store)
    if recompute:  # nothing in the database tells which event: the sealed span is named
        assert (broken.run_id, broken.seq) == (run.id, 4)
        assert "no longer has the hash a seal recorded for it" in broken.problem
        assert "one of events 1 to 4 was changed" in broken.problem
    else:
        assert (broken.run_id, broken.seq) == (run.id, 2)
        assert "edited" in broken.problem


def test_a_rewritten_chain_is_narrowed_to_the_span_between_two_seals(store, database_url):
    run = _run_with_events(store)
    store.seal_ledger(KEY)
    store.append_events(run.id, [NewEvent(event_type="note", data={"n": n}) for n in (5, 6, 7)])
    store.seal_ledger(KEY)
    rows = _rows(store, run.id)
    rows[5] = (rows[5][0], {"n": 6, "forged": True}, rows[5][2])
    tamper(database_url, lambda conn: _rechain(conn, run.id, rows))
    broken = _only_break(store)
    assert (broken.run_id, broken.seq) == (run.id, 7)
    assert "one of events 5 to 7" in broken.problem


@pytest.mark.parametrize("recompute", [False, True], ids=["as-is", "chain-recomputed"])
def test_a_deleted_sealed_event_is_named(store, database_url, recompute):
    run = _run_with_events(store)
    store.seal_ledger(KEY)
    rows = _rows(store, run.id)
    if recompute:
        tamper(database_url, lambda conn: _rechain(conn, run.id, rows[:1] + rows[2:]))
    else:
        tamper(
            database_url,
            lambda conn: conn.execute(
                events.delete().where(events.c.run_id == run.id, events.c.seq == 2)
            ),
        )
    broken = _only_break(store)
    if recompute:  # three events now, the seal recorded four
        assert (broken.run_id, broken.seq) == (run.id, 4)
        assert "event 4 is missing" in broken.problem
        assert "a seal recorded the ledger up to event 4" in broken.problem
    else:
        assert (broken.run_id, broken.seq) == (run.id, 2)
        assert "event 2 is missing" in broken.problem


def test_deleting_the_newest_sealed_events_with_the_runs_head_is_named(store, database_url):
    run = _run_with_events(store)
    store.seal_ledger(KEY)

    def cut_back(conn):
        conn.execute(events.delete().where(events.c.run_id == run.id, events.c.seq >= 3))
        conn.execute(runs.update().where(runs.c.id == run.id).values(event_seq=2))

    tamper(database_url, cut_back)
    broken = _only_break(store)
    assert (broken.run_id, broken.seq) == (run.id, 3)
    assert "events 3 to 4 are missing" in broken.problem


@pytest.mark.parametrize("recompute", [False, True], ids=["as-is", "chain-recomputed"])
def test_an_event_inserted_among_sealed_ones_is_named(store, database_url, recompute):
    run = _run_with_events(store)
    store.seal_ledger(KEY)
    rows = _rows(store, run.id)
    slipped = ("approval_decided", {"forged": True}, rows[1][2])
    if recompute:
        tamper(database_url, lambda conn: _rechain(conn, run.id, [*rows[:2], slipped, *rows[2:]]))
    else:

        def shift_and_insert(conn):
            for seq in (4, 3):
                conn.execute(
                    events.update()
                    .where(events.c.run_id == run.id, events.c.seq == seq)
                    .values(seq=seq + 1)
                )
            conn.execute(
                events.insert().values(
                    run_id=run.id,
                    seq=3,
                    event_type=slipped[0],
                    data=slipped[1],
                    created_at=slipped[2],
                    prev_hash="0" * 64,
                    hash="f" * 64,
                )
            )
            conn.execute(runs.update().where(runs.c.id == run.id).values(event_seq=5))

        tamper(database_url, shift_and_insert)
    broken = _only_break(store)
    assert broken.run_id == run.id
    if recompute:
        assert broken.seq == 4
        assert "one of events 1 to 4" in broken.problem
    else:
        assert broken.seq == 3


@pytest.mark.parametrize("recompute", [False, True], ids=["as-is", "chain-recomputed"])
def test_reordered_sealed_events_are_named(store, database_url, recompute):
    run = _run_with_events(store)
    store.seal_ledger(KEY)
    rows = _rows(store, run.id)
    if recompute:
        tamper(
            database_url, lambda conn: _rechain(conn, run.id, [rows[0], rows[2], rows[1], rows[3]])
        )
    else:

        def swap(conn):
            for seq, new in ((2, -2), (3, 2), (-2, 3)):
                conn.execute(
                    events.update()
                    .where(events.c.run_id == run.id, events.c.seq == seq)
                    .values(seq=new)
                )

        tamper(database_url, swap)
    broken = _only_break(store)
    assert broken.run_id == run.id
    assert broken.seq == (4 if recompute else 2)


# --- whole runs, checkpoints and the prune --------------------------------------------------------


def test_a_deleted_sealed_run_is_named_with_its_last_sealed_event(store, database_url):
    run = _run_with_events(store)
    other = _run_with_events(store, count=2)
    store.seal_ledger(KEY)

    def delete_run(conn):
        conn.execute(events.delete().where(events.c.run_id == run.id))
        conn.execute(runs.delete().where(runs.c.id == run.id))

    tamper(database_url, delete_run)
    report = store.verify_ledger(KEY)
    (broken,) = report.breaks
    assert (broken.run_id, broken.seq) == (run.id, 4)
    assert "the run is gone" in broken.problem
    assert report.runs_checked == 1
    assert store.verify_ledger(KEY, other.id).ok
    (alone,) = store.verify_ledger(KEY, run.id).breaks  # named by id, not "no such run"
    assert "the run is gone" in alone.problem


def test_a_forged_checkpoint_is_named(store, database_url):
    run = _run_with_events(store)
    store.seal_ledger(KEY)
    second = store.list_events(run.id)[1]

    def prune_by_hand(conn, signature):
        conn.execute(events.delete().where(events.c.run_id == run.id, events.c.seq <= 2))
        conn.execute(
            ledger_checkpoints.insert().values(
                run_id=run.id,
                seq=2,
                hash=second.hash,
                pruned_at=second.created_at,
                signature=signature,
            )
        )

    tamper(database_url, lambda conn: prune_by_hand(conn, "a" * 64))
    broken = _only_break(store)
    assert (broken.run_id, broken.seq) == (run.id, 2)
    assert "the prune checkpoint at event 2 is forged" in broken.problem

    tamper(database_url, lambda conn: conn.execute(ledger_checkpoints.delete()))
    tamper(
        database_url,
        lambda conn: conn.execute(
            ledger_checkpoints.insert().values(
                run_id=run.id, seq=2, hash=second.hash, pruned_at=second.created_at
            )
        ),
    )
    broken = _only_break(store)
    assert (broken.run_id, broken.seq) == (run.id, 2)
    assert "the prune checkpoint at event 2 is not signed" in broken.problem


def test_pruning_through_the_prune_setting_without_a_signed_checkpoint_is_named(store, clock):
    """No trigger is disabled here: on PostgreSQL the owner sets app_agent.prune as the
    retention prune does (SQLite never refused deletes); only the signature is missing."""
    run = _run_with_events(store)
    _finish(store, run.id)
    store.seal_ledger(KEY)
    second = store.list_events(run.id)[1]
    with store.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.set_config("app_agent.prune", "on", True)))
        conn.execute(
            ledger_checkpoints.insert().values(
                run_id=run.id, seq=2, hash=second.hash, pruned_at=clock()
            )
        )
        conn.execute(events.delete().where(events.c.run_id == run.id, events.c.seq <= 2))
    broken = _only_break(store)
    assert (broken.run_id, broken.seq) == (run.id, 2)
    assert "deleted outside the runtime's retention prune" in broken.problem


def test_the_retention_prune_signs_its_checkpoints_and_still_verifies(store, clock):
    run = _run_with_events(store, count=3)
    _finish(store, run.id)
    store.seal_ledger(KEY)
    clock.advance(days=40)
    store.append_events(run.id, [NewEvent(event_type="recent")])
    gone = _run_with_events(store, count=2)
    _finish(store, gone.id)
    clock.advance(days=40)
    settings = agent_settings()
    report = run_maintenance(store, settings, Notifier(store, settings))
    assert report.events_pruned == 6  # every event of both runs: older than 30 days
    assert [e.seq for e in store.list_events(run.id)] == []
    assert store.verify_ledger(KEY).ok


# --- the seals themselves ---------------------------------------------------------------------


def _three_seals(store):
    run = _run_with_events(store)
    for n in range(3):
        store.append_events(run.id, [NewEvent(event_type="note", data={"seal": n})])
        store.seal_ledger(KEY)
    return run


def test_an_altered_seal_is_named(store, database_url, clock):
    _three_seals(store)
    tamper(
        database_url,
        lambda conn: conn.execute(
            ledger_seals.update().where(ledger_seals.c.seq == 2).values(sealed_at=clock())
        ),
    )
    report = store.verify_ledger(KEY)
    (broken,) = report.seal_breaks
    assert broken.seal == 2
    assert "its signature is not this runtime's" in broken.problem
    assert not report.ok


def test_a_deleted_seal_is_named(store, database_url):
    _three_seals(store)

    def delete_seal(conn):
        conn.execute(ledger_seal_entries.delete().where(ledger_seal_entries.c.seal_seq == 2))
        conn.execute(ledger_seals.delete().where(ledger_seals.c.seq == 2))

    tamper(database_url, delete_seal)
    (broken,) = store.verify_ledger(KEY).seal_breaks
    assert broken.seal == 2
    assert "seal 2 is missing: deleted" in broken.problem


def test_deleting_the_newest_seal_leaves_its_entries_or_an_old_last_seal(
    store, database_url, clock
):
    _three_seals(store)
    tamper(
        database_url,
        lambda conn: conn.execute(ledger_seals.delete().where(ledger_seals.c.seq == 3)),
    )
    (broken,) = store.verify_ledger(KEY).seal_breaks
    assert broken.seal == 3
    assert "the seal is gone but its entries remain" in broken.problem

    tamper(
        database_url,
        lambda conn: conn.execute(
            ledger_seal_entries.delete().where(ledger_seal_entries.c.seal_seq == 3)
        ),
    )
    clock.advance(minutes=20)  # truncation leaves no trace but the age of the last seal
    report = verify_ledger(store, agent_settings(agent_maintenance_interval_s=300))
    assert report.ok
    assert report.last_seal_seq == 2
    assert any("newest seals were deleted" in warning for warning in report.warnings)


def test_a_forged_seal_is_named(store, database_url, clock):
    _three_seals(store)
    with store.engine.connect() as conn:
        last = conn.execute(sa.select(ledger_seals).where(ledger_seals.c.seq == 3)).one()
    tamper(
        database_url,
        lambda conn: conn.execute(
            ledger_seals.insert().values(
                seq=4,
                sealed_at=clock(),
                entries_count=0,
                entries_digest=entries_digest([])[1],
                prev_signature=last.signature,
                signature="b" * 64,
            )
        ),
    )
    (broken,) = store.verify_ledger(KEY).seal_breaks
    assert broken.seal == 4
    assert "not this runtime's" in broken.problem


@pytest.mark.parametrize("edit", ["change", "delete"])
def test_an_edited_or_deleted_seal_entry_is_named(store, database_url, edit):
    run = _three_seals(store)
    where = sa.and_(ledger_seal_entries.c.seal_seq == 2, ledger_seal_entries.c.run_id == run.id)
    statement = (
        ledger_seal_entries.update().where(where).values(hash="c" * 64)
        if edit == "change"
        else ledger_seal_entries.delete().where(where)
    )
    tamper(database_url, lambda conn: conn.execute(statement))
    report = store.verify_ledger(KEY)
    (broken,) = report.seal_breaks
    assert broken.seal == 2
    assert "its entries no longer match its digest" in broken.problem


def test_postgresql_refuses_to_change_or_delete_seals(pg_store):
    store = pg_store
    _three_seals(store)
    attempts = [
        ledger_seals.update().values(entries_count=0),
        ledger_seals.delete(),
        ledger_seal_entries.update().values(hash="c" * 64),
        ledger_seal_entries.delete(),
        sa.text("TRUNCATE app_agent_ledger_seals CASCADE"),
        sa.text("TRUNCATE app_agent_ledger_seal_entries"),
    ]
    with store.engine.connect() as conn:  # even with the retention prune's setting on
        conn.execute(sa.select(sa.func.set_config("app_agent.prune", "on", False)))
        conn.commit()
        for statement in attempts:
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                conn.execute(statement)
            conn.rollback()
    assert store.verify_ledger(KEY).ok


def test_sqlite_refuses_to_change_or_delete_seals(sqlite_store):
    store = sqlite_store
    _three_seals(store)
    for statement in (
        ledger_seals.update().values(entries_count=0),
        ledger_seals.delete(),
        ledger_seal_entries.update().values(hash="c" * 64),
        ledger_seal_entries.delete(),
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(statement)
    assert store.verify_ledger(KEY).ok


# --- a ledger written before seals --------------------------------------------------------------


def test_an_old_ledger_verifies_after_the_first_seal(empty_database_url, clock):
    store = Store.open(empty_database_url, clock=clock, check_schema=False)
    try:
        with store.engine.begin() as conn:
            migrations.upgrade(conn, "0003")  # the schema before seals
        kept = _run_with_events(store)
        pruned = _run_with_events(store, count=3)
        _finish(store, pruned.id)
        head = store.list_events(pruned.id)[-1]
        with store.engine.begin() as conn:  # the previous version's prune: no signature
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.set_config("app_agent.prune", "on", True)))
            conn.execute(
                OLD_CHECKPOINTS.insert().values(
                    run_id=pruned.id, seq=3, hash=head.hash, pruned_at=clock()
                )
            )
            conn.execute(events.delete().where(events.c.run_id == pruned.id))

        assert store.upgrade() == migrations.head_revision()
        before = store.verify_ledger(KEY)
        assert before.ok, before.breaks
        assert any("no seal yet" in warning for warning in before.warnings)
        assert any("unsigned (written before seals)" in warning for warning in before.warnings)

        seal = store.seal_ledger(KEY)
        assert (seal.entries_count, seal.checkpoints_adopted) == (2, 1)
        after = store.verify_ledger(KEY)
        assert after.ok, after.breaks
        assert after.warnings == []
        assert after.events_checked == 4

        rows = _rows(store, kept.id)
        rows[0] = (rows[0][0], {**rows[0][1], "forged": True}, rows[0][2])
        tamper(empty_database_url, lambda conn: _rechain(conn, kept.id, rows))
        broken = _only_break(store)
        assert (broken.run_id, broken.seq) == (kept.id, 4)
    finally:
        store.close()
