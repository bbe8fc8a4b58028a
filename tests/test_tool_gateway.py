"""The tool gateway and registry: timeouts that stop the work, safe retries, errors, plugins."""

from __future__ import annotations

import sys
import textwrap
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import BaseModel, Field

from agent_core.deadlines import Deadlines
from agent_core.models import RiskLevel, ToolCallStatus
from agent_core.tools import (
    TIMEOUT_BY_RISK,
    Tool,
    ToolContext,
    ToolError,
    ToolInputError,
    ToolOutcomeUnknown,
    ToolRegistry,
    ToolTransientError,
)
from agent_core.tools.data import DataAccess, NoArgs, data_tools
from agent_core.tools.gateway import ToolGateway, validate_args
from tests.support import create_leads, make_objective


class LookupArgs(BaseModel):
    table: str
    limit: int = Field(default=10, ge=1, le=100)


def make_tool(handler, *, name="probe", side_effects=False, risk=RiskLevel.LOW, args=NoArgs):
    return Tool(
        name=name,
        description="A tool written by the test.",
        risk=risk,
        side_effects=side_effects,
        args_model=args,
        handler=handler,
    )


def run(tool, args=None, *, timeout_s=5.0):
    parsed = validate_args(tool, args)
    assert not isinstance(parsed, str), parsed
    return ToolGateway().execute(tool, parsed, run_id="run-1", timeout_s=timeout_s)


class Flaky:
    """A handler failing with `error` the first `failures` times, then answering."""

    def __init__(self, error: BaseException, failures: int = 99) -> None:
        self.error = error
        self.failures = failures
        self.calls = 0

    def __call__(self, args, context):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return {"answer": 42, "call": self.calls}


# --- timeouts --------------------------------------------------------------------------------


def test_a_tool_that_hangs_is_stopped_at_its_timeout_and_told_to_stop():
    cancelled = threading.Event()
    ended = threading.Event()

    def hang(args, context: ToolContext):
        context.on_cancel(cancelled.set)
        cancelled.wait(10)  # the work a cancel callback interrupts
        ended.set()
        return {"too": "late"}

    started = time.monotonic()
    result = run(make_tool(hang, name="slow_report"), timeout_s=0.5)
    elapsed = time.monotonic() - started

    assert result.status is ToolCallStatus.FAILED
    assert result.timed_out is True
    assert result.error == "slow_report timed out after 0.5 s and was stopped"
    assert result.result == {"error": result.error}
    assert result.attempts == 1
    assert 0.5 <= elapsed < 1.5
    assert cancelled.is_set()
    assert ended.wait(1), "the handler kept running after its cancel callback"


def test_a_side_effect_still_running_at_its_timeout_is_unknown_never_failed():
    """Told to stop, a send may have gone already, or still go: a 'failed' call would invite
    the agent to send it again."""
    sent = threading.Event()

    def slow_send(args, context: ToolContext):
        time.sleep(0.8)  # ignores its cancellation, as a message already handed over does
        sent.set()
        return {"sent": True}

    result = run(make_tool(slow_send, name="send_email", side_effects=True), timeout_s=0.3)

    assert result.status is ToolCallStatus.UNKNOWN
    assert result.timed_out is True
    assert result.error == (
        "send_email did not finish within 0.3 s: whether it took effect is unknown (it may "
        "still complete), so it must not be repeated"
    )
    assert result.result == {"error": result.error, "outcome": "unknown"}
    assert sent.wait(2), "the send went on after the deadline, as the result warned"


def test_an_interruptible_read_only_tool_runs_on_the_callers_thread_and_is_stopped_in_time():
    threads: list[threading.Thread] = []
    cancelled = threading.Event()

    def hang(args, context: ToolContext):
        threads.append(threading.current_thread())
        context.on_cancel(cancelled.set)
        cancelled.wait(10)  # the work a cancel callback interrupts
        return {"too": "late"}

    tool = replace(make_tool(hang, name="slow_report"), interruptible=True)
    gateway = ToolGateway()
    started = time.monotonic()
    result = gateway.execute(tool, NoArgs(), run_id="run-1", timeout_s=0.5)
    elapsed = time.monotonic() - started
    fast = gateway.execute(
        replace(make_tool(lambda args, context: {"ok": True}), interruptible=True),
        NoArgs(),
        run_id="run-1",
        timeout_s=0.5,
    )

    assert threads == [threading.current_thread()]
    assert (result.status, result.timed_out) == (ToolCallStatus.FAILED, True)
    assert result.error == "slow_report timed out after 0.5 s and was stopped"
    assert 0.5 <= elapsed < 1.5
    assert (fast.status, fast.result) == (ToolCallStatus.SUCCEEDED, {"ok": True})


def test_the_watchdog_cancels_only_calls_still_running_at_their_deadline():
    watchdog = Deadlines(name="tool-watchdog")
    finished = ToolContext(run_id="run-1", deadline=time.monotonic() + 0.05)
    running = ToolContext(run_id="run-1", deadline=time.monotonic() + 0.1)
    done = watchdog.watch(finished.deadline, finished.cancel)
    late = watchdog.watch(running.deadline, running.cancel)

    assert watchdog.release(done) is True
    time.sleep(0.4)

    assert finished.cancelled is False
    assert running.cancelled is True
    assert watchdog.release(late) is False


def test_a_tool_with_side_effects_never_runs_inline_even_if_interruptible():
    threads: list[threading.Thread] = []

    def record(args, context):
        threads.append(threading.current_thread())
        return {"sent": True}

    tool = replace(make_tool(record, side_effects=True), interruptible=True)
    result = run(tool)

    assert result.status is ToolCallStatus.SUCCEEDED
    assert len(threads) == 1
    assert threads[0] is not threading.current_thread()


def test_a_cancel_callback_registered_after_the_deadline_runs_at_once():
    context = ToolContext(run_id="run-1", deadline=time.monotonic())
    context.cancel()
    ran = threading.Event()

    context.on_cancel(ran.set)

    assert ran.is_set()
    assert context.remaining() == 0.0


def test_a_fast_tool_returns_its_result():
    result = run(make_tool(lambda args, context: {"rows": [1, 2]}))

    assert result.status is ToolCallStatus.SUCCEEDED
    assert result.result == {"rows": [1, 2]}
    assert (result.error, result.attempts, result.timed_out) == (None, 1, False)


# A query SQLite would take hours to finish: counting to 10^12, one row at a time.
ENDLESS_SQLITE = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000000) "
    "SELECT count(*) FROM c"
)


def _db_tool(access: DataAccess, sql: str, *, write: bool, outcome: dict, ended: threading.Event):
    def handler(args, context: ToolContext):
        try:
            with access.connect(context, write=write) as conn:
                outcome["pid"] = (
                    conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
                    if conn.dialect.name == "postgresql"
                    else None
                )
                if outcome.get("no_statement_timeout"):
                    conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
                conn.exec_driver_sql(sql)
            outcome["finished"] = True
        except Exception as exc:
            outcome["error"] = exc
            raise
        finally:
            ended.set()

    return make_tool(handler, name="heavy_query", side_effects=write)


def test_a_long_sqlite_query_is_interrupted_at_the_timeout(sqlite_store):
    create_leads(sqlite_store, [])
    access = DataAccess(sqlite_store.engine, ["app_leads"])
    outcome: dict = {}
    ended = threading.Event()

    started = time.monotonic()
    result = run(
        _db_tool(access, ENDLESS_SQLITE, write=False, outcome=outcome, ended=ended), timeout_s=0.5
    )

    assert result.timed_out is True
    assert time.monotonic() - started < 1.5
    assert ended.wait(1), "the query went on running after the timeout"
    assert "interrupted" in str(outcome["error"])
    assert "finished" not in outcome
    # The database answers at once, through the data tools and the store.
    count = next(tool for tool in data_tools(access) if tool.name == "count_database")
    follow_up = time.monotonic()
    counted = run(count, {"table": "app_leads"}, timeout_s=2)
    assert counted.status is ToolCallStatus.SUCCEEDED
    assert counted.result == {"count": 0}
    assert time.monotonic() - follow_up < 0.5


def test_an_interrupted_sqlite_write_rolls_back_and_releases_the_write_lock(sqlite_store):
    with sqlite_store.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE scratch (x INTEGER)")
    access = DataAccess(sqlite_store.engine, ["scratch"])
    fill = "INSERT INTO scratch " + ENDLESS_SQLITE.replace("count(*)", "x")
    outcome: dict = {}
    ended = threading.Event()

    result = run(_db_tool(access, fill, write=True, outcome=outcome, ended=ended), timeout_s=0.5)

    assert result.timed_out is True
    assert result.attempts == 1
    assert ended.wait(1), "the write went on running after the timeout"
    # Writing again does not wait for SQLite's 30 s busy timeout: the lock was released.
    follow_up = time.monotonic()
    objective = make_objective(sqlite_store)
    assert time.monotonic() - follow_up < 1
    assert sqlite_store.get_objective(objective.id).title == "Weekly leads"
    with sqlite_store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM scratch").scalar() == 0


def _active_queries(pg_admin, marker: str) -> list[tuple]:
    return pg_admin.execute(
        "SELECT pid, state, query FROM pg_stat_activity "
        "WHERE state = 'active' AND query LIKE %s AND pid <> pg_backend_pid()",
        (f"%{marker}%",),
    ).fetchall()


@pytest.mark.parametrize(
    "no_statement_timeout",
    [False, True],
    ids=["as-configured", "only-the-cancel-can-stop-it"],
)
def test_a_long_postgresql_query_is_cancelled_at_the_timeout(
    pg_store, pg_admin, no_statement_timeout
):
    # With `statement_timeout = 0` the server would let pg_sleep run its 30 s: only the
    # canceller DataAccess.connect registered can stop it.
    marker = f"gateway-test-{uuid.uuid4().hex}"
    access = DataAccess(pg_store.engine, [])
    outcome: dict = {"no_statement_timeout": no_statement_timeout}
    ended = threading.Event()
    tool = _db_tool(
        access, f"SELECT pg_sleep(30) /* {marker} */", write=False, outcome=outcome, ended=ended
    )

    started = time.monotonic()
    result = run(tool, timeout_s=1.0)

    assert result.timed_out is True
    assert result.error == "heavy_query timed out after 1 s and was stopped"
    assert time.monotonic() - started < 2
    assert ended.wait(2), "the query went on running after the timeout"
    assert "canceling statement" in str(outcome["error"])
    if no_statement_timeout:
        assert "user request" in str(outcome["error"])
    assert _active_queries(pg_admin, marker) == []
    state = pg_admin.execute(
        "SELECT state FROM pg_stat_activity WHERE pid = %s", (outcome["pid"],)
    ).fetchone()
    assert state is None or state[0] != "active"
    # The same pool answers at once.
    follow_up = time.monotonic()
    with pg_store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    make_objective(pg_store)
    assert time.monotonic() - follow_up < 1


# --- retries ---------------------------------------------------------------------------------


def test_a_transient_failure_of_a_read_only_tool_is_retried_twice_then_reported():
    handler = Flaky(ToolTransientError("the CRM is busy, try again"))

    started = time.monotonic()
    result = run(make_tool(handler), timeout_s=5)

    assert result.status is ToolCallStatus.FAILED
    assert result.attempts == 3
    assert handler.calls == 3
    assert result.error == "the CRM is busy, try again"
    assert 0.8 <= time.monotonic() - started < 2  # the 0.2 s and 0.6 s backoffs


@pytest.mark.parametrize(
    "error",
    [ToolTransientError("busy"), ConnectionError("reset by peer"), TimeoutError("slow")],
    ids=lambda error: type(error).__name__,
)
def test_a_read_only_tool_that_recovers_on_the_second_attempt_succeeds(error):
    handler = Flaky(error, failures=1)

    result = run(make_tool(handler), timeout_s=5)

    assert result.status is ToolCallStatus.SUCCEEDED
    assert result.result == {"answer": 42, "call": 2}
    assert result.attempts == 2
    assert result.error is None


def test_retries_stop_when_the_backoff_would_pass_the_deadline():
    handler = Flaky(ToolTransientError("still busy"))

    started = time.monotonic()
    result = run(make_tool(handler), timeout_s=0.5)

    assert result.attempts == 2  # 0.2 s fits in 0.5 s; the next 0.6 s does not
    assert handler.calls == 2
    assert result.timed_out is False
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize(
    "error",
    [ToolTransientError("the mail server is busy"), ConnectionError("connection reset")],
    ids=lambda error: type(error).__name__,
)
def test_a_tool_with_side_effects_is_never_retried(error):
    handler = Flaky(error, failures=1)

    result = run(make_tool(handler, name="notify_team", side_effects=True), timeout_s=5)

    assert result.status is ToolCallStatus.FAILED
    assert result.attempts == 1
    assert handler.calls == 1


# --- errors the model reads ------------------------------------------------------------------


def test_a_tool_input_error_reaches_the_model_word_for_word():
    message = "table 'x' is not available to the agent; available tables: app_leads"
    handler = Flaky(ToolInputError(message))

    result = run(make_tool(handler), timeout_s=5)

    assert result.status is ToolCallStatus.FAILED
    assert result.error == message
    assert result.result == {"error": message}
    assert result.attempts == 1  # a bad argument is not retried
    assert handler.calls == 1


def test_a_tool_error_reaches_the_model_word_for_word_and_is_not_retried():
    handler = Flaky(ToolError("the CRM is down; gave up after 3 attempts"))

    result = run(make_tool(handler), timeout_s=5)

    assert result.status is ToolCallStatus.FAILED
    assert result.error == "the CRM is down; gave up after 3 attempts"
    assert handler.calls == 1


@pytest.mark.parametrize("side_effects", [True, False])
def test_an_outcome_in_doubt_is_recorded_unknown_and_never_retried(side_effects):
    handler = Flaky(ToolOutcomeUnknown("the order may or may not have been placed"))

    result = run(make_tool(handler, name="place_order", side_effects=side_effects), timeout_s=5)

    assert result.status is ToolCallStatus.UNKNOWN
    assert result.error == "the order may or may not have been placed"
    assert result.result == {"error": result.error, "outcome": "unknown"}
    assert (result.attempts, handler.calls) == (1, 1)


def test_an_unexpected_exception_is_reported_with_the_tool_and_its_type():
    result = run(make_tool(Flaky(KeyError("email")), name="enrich_lead"))
    assert result.error == "enrich_lead failed: KeyError: 'email'"

    spread = run(make_tool(Flaky(ValueError("bad\n   value\there")), name="enrich_lead"))
    assert spread.error == "enrich_lead failed: ValueError: bad value here"

    silent = run(make_tool(Flaky(RuntimeError()), name="enrich_lead"))
    assert silent.error == "enrich_lead failed: RuntimeError"

    long = run(make_tool(Flaky(RuntimeError("x" * 1000)), name="enrich_lead"))
    assert long.error.startswith("enrich_lead failed: RuntimeError: xxx")
    assert long.error.endswith("...")
    assert len(long.error) < 400


def test_validate_args_names_the_bad_field():
    tool = make_tool(lambda args, context: None, name="lookup", args=LookupArgs)

    too_many = validate_args(tool, {"table": "app_leads", "limit": 500})
    missing = validate_args(tool, {})
    parsed = validate_args(tool, {"table": "app_leads"})

    assert isinstance(too_many, str)
    assert too_many.startswith("invalid arguments for lookup: limit")
    assert "100" in too_many
    assert isinstance(missing, str)
    assert "table" in missing
    assert "\n" not in too_many + missing
    assert parsed == LookupArgs(table="app_leads", limit=10)


# --- the registry and plugins ----------------------------------------------------------------


GOOD_PLUGIN = """
from pydantic import BaseModel

from agent_core.models import RiskLevel
from agent_core.tools import Tool


class GreetArgs(BaseModel):
    name: str


def greet(args, context):
    return {"greeting": f"Hello, {args.name}!"}


def tools():
    return [
        Tool(
            name="greet",
            description="Greet someone by name.",
            risk=RiskLevel.LOW,
            side_effects=False,
            args_model=GreetArgs,
            handler=greet,
        )
    ]
"""


@pytest.fixture
def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install a distribution into a folder on sys.path the way pip would lay it out: the
    modules, and a .dist-info folder with METADATA and entry_points.txt."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    installed: list[str] = []

    def install(name: str, modules: dict[str, str], entries: dict[str, str]) -> None:
        for module, source in modules.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
            installed.append(module)
        info = site / f"{name.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", encoding="utf-8"
        )
        lines = "".join(f"{entry} = {target}\n" for entry, target in entries.items())
        (info / "entry_points.txt").write_text(f"[agent_core.tools]\n{lines}", encoding="utf-8")

    yield install
    for module in installed:
        sys.modules.pop(module, None)


@pytest.fixture(scope="session")
def environment_tools() -> frozenset[str]:
    """The tools of the plugins installed in the test environment (the example plugin,
    lookup_shipping_rate, when it is installed): a test's own plugin loads beside exactly
    these."""
    registry = ToolRegistry()
    registry.load_plugins()
    assert registry.problems == [], "a plugin installed in the test environment is broken"
    return frozenset(registry.names())


def test_a_plugin_tool_is_loaded_from_its_entry_point_and_runs(install_plugin, environment_tools):
    install_plugin("demo-plugin", {"demo_plugin": GOOD_PLUGIN}, {"demo": "demo_plugin:tools"})
    registry = ToolRegistry()

    registry.load_plugins()

    assert registry.problems == []
    assert set(registry.names()) == environment_tools | {"greet"}
    greet = registry.get("greet")
    assert greet.describe()["args_schema"]["required"] == ["name"]
    result = run(greet, {"name": "Ada"})
    assert result.status is ToolCallStatus.SUCCEEDED
    assert result.result == {"greeting": "Hello, Ada!"}


BROKEN_PLUGINS = {  # case: (the plugin module's source, what the problem must say)
    "missing-attribute": ("", "has no attribute 'tools'"),
    "fails-on-import": ("raise RuntimeError('no licence key found')", "no licence key found"),
    "returns-a-non-tool": (
        "def tools():\n    return ['greet']",
        "'greet' is not an agent_core Tool",
    ),
    "multi-line-error": (
        "def tools():\n"
        "    raise ConnectionError('could not reach the CRM\\n\\tIs it running on crm.local?')",
        "could not reach the CRM Is it running on crm.local?",
    ),
    "error-without-a-message": ("def tools():\n    raise RuntimeError()", "RuntimeError"),
}


@pytest.mark.parametrize("case", list(BROKEN_PLUGINS))
def test_a_broken_plugin_is_reported_in_one_sentence_and_the_others_still_load(
    install_plugin, environment_tools, case
):
    source, says = BROKEN_PLUGINS[case]
    module = f"broken_{case.replace('-', '_')}"
    install_plugin(
        "mixed-plugins",
        {module: source, f"good_{module}": GOOD_PLUGIN},
        {"broken": f"{module}:tools", "demo": f"good_{module}:tools"},
    )
    registry = ToolRegistry()

    registry.load_plugins()  # does not raise

    assert set(registry.names()) == environment_tools | {"greet"}
    [problem] = registry.problems
    assert problem.startswith(f"plugin 'broken' ({module}:tools) not loaded: ")
    assert says in problem
    assert "\n" not in problem
    assert "\t" not in problem


def test_a_plugin_cannot_make_send_email_low_risk(install_plugin):
    plugin = """
    from pydantic import BaseModel

    from agent_core.models import RiskLevel
    from agent_core.tools import Tool


    class EmailArgs(BaseModel):
        to: str


    def tools():
        return [
            Tool(
                name="send_email",
                description="Send an email.",
                risk=RiskLevel.LOW,
                side_effects=True,
                args_model=EmailArgs,
                handler=lambda args, context: {"sent": True},
            )
        ]
    """
    install_plugin("mailer", {"mailer_plugin": plugin}, {"mail": "mailer_plugin:tools"})
    registry = ToolRegistry()

    registry.load_plugins()

    send_email = registry.get("send_email")
    assert send_email.risk is RiskLevel.HIGH
    assert send_email.timeout == TIMEOUT_BY_RISK[RiskLevel.HIGH]
    assert send_email.describe()["risk"] == "high"


def test_the_seed_risk_is_a_floor_not_a_ceiling():
    handler = lambda args, context: None  # noqa: E731
    low_create = make_tool(handler, name="create_data", risk=RiskLevel.LOW, side_effects=True)
    high_create = make_tool(handler, name="create_data", risk=RiskLevel.HIGH, side_effects=True)
    other = make_tool(handler, name="lookup_weather", risk=RiskLevel.LOW)

    assert low_create.risk is RiskLevel.MEDIUM
    assert high_create.risk is RiskLevel.HIGH
    assert other.risk is RiskLevel.LOW


def test_a_tool_says_why_it_cannot_run_as_configured_in_one_line_or_none():
    def declared(readiness):
        return replace(make_tool(lambda args, context: None), readiness=readiness)

    def broken_check():
        raise KeyError("CRM_URL")

    assert make_tool(lambda args, context: None).problem() is None  # it does not say
    assert declared(lambda: None).problem() is None
    assert declared(lambda: "").problem() is None
    assert declared(lambda: "the CRM is not configured:\n\tset CRM_URL").problem() == (
        "the CRM is not configured: set CRM_URL"
    )
    assert declared(broken_check).problem() == "probe could not check its configuration: 'CRM_URL'"
    with pytest.raises(ValueError, match="readiness must be callable or None"):
        declared("set CRM_URL")


def test_registering_the_same_name_twice_raises():
    registry = ToolRegistry([make_tool(lambda args, context: 1, name="greet")])

    with pytest.raises(ValueError, match="'greet' is already registered"):
        registry.register(make_tool(lambda args, context: 2, name="greet"))
    assert len(registry) == 1


def test_a_plugin_reusing_a_registered_name_is_reported_not_raised(install_plugin):
    install_plugin("demo-plugin", {"clash_plugin": GOOD_PLUGIN}, {"demo": "clash_plugin:tools"})
    builtin = make_tool(lambda args, context: {"builtin": True}, name="greet", args=LookupArgs)
    registry = ToolRegistry([builtin])

    registry.load_plugins()

    assert registry.get("greet") is builtin
    [problem] = registry.problems
    assert "'greet' is already registered" in problem
