"""PostgreSQL's `app_agent_write_step`, as the migrations create it (0008, and 0009 with
64-bit token counters): one place, so that each revision creates the function it names.

A step's writes in one function call, whose plans the server keeps: the run updated under
the same guard as the Store's own statements (lease, event count, step count, hash at that
head), and the rows inserted only when it matched; it returns the run as updated, or
nothing. Executable by the runtime's own role only (its owner): a runtime role that may not
execute it writes its steps the usual way (StoreBase._write_at_once).

What a revision created is fixed: change this module only by adding a parameter whose
default keeps what the earlier revisions create.
"""

from __future__ import annotations

from alembic import op

# The run's columns a step (or another change of the run by its worker) may set: each is
# set when `p_set` names it, to its value there (JSON null: NULL), and kept otherwise.
SETTABLE = (
    "status",
    "stop_reason",
    "summary",
    "error",
    "previous_run_id",
    "started_at",
    "completed_at",
    "lease_owner",
    "lease_expires_at",
    "cancel_requested_at",
    "attempts",
    "active_ms",
)
INSERTED = {
    "app_agent_events": (
        "p_events_rows",
        "run_id, seq, event_type, data, created_at, prev_hash, hash",
    ),
    "app_agent_run_steps": (
        "p_steps_rows",
        "id, run_id, step_number, thought, tool, args, raw_output, status, result, model, "
        "prompt_tokens, completion_tokens, latency_ms, usage, created_at, completed_at",
    ),
    "app_agent_tool_calls": (
        "p_calls_rows",
        "id, run_id, step_id, tool_name, args, args_hash, risk_level, status, result, error, "
        "duration_ms, attempts, created_at, completed_at",
    ),
    "app_agent_approvals": (
        "p_approvals_rows",
        "id, run_id, step_id, tool_call_id, tool_name, args, args_hash, risk_reason, status, "
        "expires_at, created_at, binding",
    ),
}


def signature(tokens: str) -> str:
    """The function's signature, its token counters typed `tokens`."""
    return (
        "app_agent_write_step(uuid, text, timestamptz, integer, integer, text, jsonb, integer, "
        f"integer, {tokens}, {tokens}, integer, json, json, json, json)"
    )


def _definition(tokens: str) -> str:
    sets = ",\n            ".join(
        f"{name} = CASE WHEN p_set ? '{name}' THEN s.{name} ELSE r.{name} END" for name in SETTABLE
    )
    # In the order their foreign keys need: each statement's are checked at its end.
    inserts = "\n        ".join(
        f"IF {rows} IS NOT NULL THEN INSERT INTO {table} ({columns}) SELECT {columns} "
        f"FROM json_populate_recordset(NULL::{table}, {rows}); END IF;"
        for table, (rows, columns) in INSERTED.items()
    )
    return f"""
    CREATE FUNCTION app_agent_write_step(
        p_run uuid, p_owner text, p_now timestamptz,
        g_seq integer, g_steps integer, g_hash text,
        p_set jsonb, p_steps integer, p_tool_calls integer, p_prompt_tokens {tokens},
        p_completion_tokens {tokens}, p_events integer,
        p_events_rows json, p_steps_rows json, p_calls_rows json, p_approvals_rows json
    ) RETURNS SETOF app_agent_runs
    LANGUAGE plpgsql AS $$
    DECLARE
        updated app_agent_runs;
    BEGIN
        UPDATE app_agent_runs AS r SET
            {sets},
            steps_count = r.steps_count + p_steps,
            tool_calls_count = r.tool_calls_count + p_tool_calls,
            prompt_tokens = r.prompt_tokens + p_prompt_tokens,
            completion_tokens = r.completion_tokens + p_completion_tokens,
            event_seq = r.event_seq + p_events,
            updated_at = p_now
        FROM jsonb_populate_record(NULL::app_agent_runs, p_set) AS s
        -- Operands of the same type (text = text, not varchar = text): no operator another
        -- role may have created in a schema on the search path matches better than the
        -- built-in one.
        WHERE r.id = p_run
            AND (p_owner IS NULL OR r.lease_owner::text = p_owner)
            AND r.event_seq = g_seq
            AND r.steps_count = g_steps
            AND COALESCE(
                (SELECT e.hash FROM app_agent_events e WHERE e.run_id = p_run AND e.seq = g_seq),
                (SELECT c.hash FROM app_agent_ledger_checkpoints c
                 WHERE c.run_id = p_run AND c.seq = g_seq)
            )::text = g_hash
        RETURNING r.* INTO updated;
        IF NOT FOUND THEN
            RETURN;  -- not at that head, or no longer held: nothing written
        END IF;
        {inserts}
        RETURN NEXT updated;
    END
    $$
    """


def create(tokens: str = "integer") -> None:
    """Create the function (PostgreSQL only), executable by its owner alone."""
    op.execute(_definition(tokens))
    named = signature(tokens)
    # Functions are executable by PUBLIC unless revoked; Supabase also grants its API roles
    # every function of the public schema. Only the runtime (the owner) calls this one.
    op.execute(f"REVOKE ALL ON FUNCTION {named} FROM PUBLIC")
    op.execute(
        f"""
        DO $$
        DECLARE api_role text;
        BEGIN
            FOR api_role IN SELECT rolname FROM pg_roles
                WHERE rolname IN ('anon', 'authenticated', 'service_role')
            LOOP
                EXECUTE format('REVOKE ALL ON FUNCTION {named} FROM %I', api_role);
            END LOOP;
        END
        $$
        """
    )


def drop(tokens: str = "integer") -> None:
    op.execute(f"DROP FUNCTION {signature(tokens)}")
