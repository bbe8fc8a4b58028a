"""Fixtures that build real parts on temporary data.

`database_url` is parametrized over both backends: a SQLite file copied from a migrated
template, and a PostgreSQL database cloned (CREATE DATABASE ... TEMPLATE) from a migrated
template database on the server named by AGENT_TEST_DATABASE_URL. Without a reachable
PostgreSQL the PostgreSQL half is skipped with the reason; under CI (CI=true) it fails.
"""

from __future__ import annotations

import itertools
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from agent_core.config import Settings
from agent_core.llm import forget_served_models
from agent_core.store import Store
from tests.llm_server import ScriptedLLMServer
from tests.peers import MailServer, TwilioServer, free_port
from tests.support import ManualClock
from tests.wix_server import WixServer

DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_ADMIN_URL = os.environ.get("AGENT_TEST_DATABASE_URL") or DEFAULT_PG_ADMIN_URL
UNDER_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_SESSION_TAG = uuid.uuid4().hex[:8]
_database_numbers = itertools.count(1)


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _pg_url_for(database: str) -> str:
    return (
        make_url(_libpq(PG_ADMIN_URL)).set(database=database).render_as_string(hide_password=False)
    )


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Each test starts in an empty folder with none of the runtime's variables set, so a
    developer's own `.env` or DATABASE_URL never leaks into a test."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    # One worker process whatever the machine's cores (the default): tests wanting more say so.
    monkeypatch.setenv("AGENT_WORKER_PROCESSES", "1")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[psycopg.Connection]:
    """An autocommit connection to the PostgreSQL server, for CREATE/DROP DATABASE."""
    try:
        connection = psycopg.connect(_libpq(PG_ADMIN_URL), autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        where = make_url(PG_ADMIN_URL).render_as_string(hide_password=True)
        reason = f"PostgreSQL is not reachable at {where} ({str(exc).strip().splitlines()[0]})"
        if UNDER_CI:
            pytest.fail(f"{reason}: under CI the PostgreSQL tests must run, not skip")
        pytest.skip(f"{reason}; set AGENT_TEST_DATABASE_URL to run the PostgreSQL tests")
    with connection:
        yield connection


@pytest.fixture(scope="session")
def pg_template(pg_admin: psycopg.Connection) -> Iterator[str]:
    """A database migrated once per session, cloned by every PostgreSQL test."""
    name = f"agent_test_template_{_SESSION_TAG}"
    pg_admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    store = Store.open(_pg_url_for(name), check_schema=False)
    store.upgrade()
    store.close()
    yield name
    pg_admin.execute(
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    )


@pytest.fixture
def pg_database(pg_admin: psycopg.Connection, pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test; its URL."""
    name = f"agent_test_{_SESSION_TAG}_{next(_database_numbers)}"
    pg_admin.execute(
        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(pg_template)
        )
    )
    yield _pg_url_for(name)
    pg_admin.execute(
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    )


@pytest.fixture
def empty_pg_database(pg_admin: psycopg.Connection) -> Iterator[str]:
    """A PostgreSQL database with nothing in it, for migration tests."""
    name = f"agent_test_{_SESSION_TAG}_{next(_database_numbers)}_empty"
    pg_admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield _pg_url_for(name)
    pg_admin.execute(
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    )


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "agent.db"
    store = Store.open(f"sqlite:///{path}", check_schema=False)
    store.upgrade()
    store.close()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def sqlite_database(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh, migrated SQLite file for one test; its URL."""
    path = tmp_path / "agent.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str:
    """A migrated database of the test's backend, empty of data."""
    return request.getfixturevalue("pg_database" if backend == "postgresql" else "sqlite_database")


@pytest.fixture
def empty_database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database of the test's backend with no schema at all."""
    if backend == "postgresql":
        return request.getfixturevalue("empty_pg_database")
    return f"sqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(database_url: str, clock: ManualClock) -> Iterator[Store]:
    opened = Store.open(database_url, clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def pg_store(pg_database: str, clock: ManualClock) -> Iterator[Store]:
    opened = Store.open(pg_database, clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def sqlite_store(sqlite_database: str, clock: ManualClock) -> Iterator[Store]:
    opened = Store.open(sqlite_database, clock=clock)
    yield opened
    opened.close()


@pytest.fixture
def fresh_served_models() -> Iterator[None]:
    """What a server serves is remembered per process: the test starts as a new process
    would (its server may have a port an earlier test's server had)."""
    forget_served_models()
    yield
    forget_served_models()


@pytest.fixture
def llm_server() -> Iterator[ScriptedLLMServer]:
    """An OpenAI-compatible server on 127.0.0.1 replaying the replies the test scripts."""
    server = ScriptedLLMServer().start()
    yield server
    server.stop()


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    server = MailServer().start()
    yield server
    server.stop()


@pytest.fixture
def twilio_server() -> Iterator[TwilioServer]:
    server = TwilioServer().start()
    yield server
    server.stop()


@pytest.fixture
def wix_server() -> Iterator[WixServer]:
    """An HTTP server on 127.0.0.1 standing in for Wix's REST API (see tests/wix_server.py)."""
    server = WixServer().start()
    yield server
    server.stop()


@pytest.fixture
def notify_settings(mail_server: MailServer, twilio_server: TwilioServer) -> dict[str, object]:
    """Settings values wiring email and WhatsApp to the local peers."""
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": mail_server.port,
        "smtp_security": "none",
        "smtp_from": "agent@example.com",
        "admin_email": "admin@example.com",
        "admin_phone": "whatsapp:+33600000001",
        "twilio_account_sid": twilio_server.account_sid,
        "twilio_auth_token": twilio_server.auth_token,
        "twilio_whatsapp_from": "whatsapp:+14155238886",
        "twilio_api_base_url": twilio_server.url,
        "agent_approval_flow": True,
        "agent_dashboard_url": "http://dashboard.example.com",
    }


@pytest.fixture
def dead_port() -> int:
    """A port on 127.0.0.1 nothing listens on."""
    return free_port()


@pytest.fixture
def dashboard(database_url, monkeypatch):
    """The dashboard's pages on a real store of the test's backend, served on 127.0.0.1,
    with the agent enabled and approvals on (what `make run` sets up)."""
    from tests.dashboard_support import Dashboard, reset_streamlit, serve_on

    for name, value in {
        "DATABASE_URL": database_url,
        "AGENT_ENABLED": "true",
        "AGENT_APPROVAL_FLOW": "true",
        "AGENT_DATA_TABLES": "app_leads",
        "AGENT_LLM_BASE_URL": "http://127.0.0.1:9/v1",
        "AGENT_SECRET_KEY": "test-secret-key-for-links-0123456789",
    }.items():
        monkeypatch.setenv(name, value)
    reset_streamlit()
    serve_on("127.0.0.1")
    yield Dashboard(database_url)
    serve_on(None)
    reset_streamlit()


@pytest.fixture
def live_store(database_url) -> Iterator[Store]:
    """The dashboard's database with the real clock (what the dashboard itself sees)."""
    opened = Store.open(database_url)
    yield opened
    opened.close()
