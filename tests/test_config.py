"""Settings keep the seed's names and defaults; a bad value is one sentence naming it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent_core.config import load_settings, settings_summary
from agent_core.errors import ConfigError
from agent_core.models import NotifyChannel, RiskLevel


def test_defaults_are_the_seeds():
    settings = load_settings()
    assert settings.agent_enabled is False
    assert settings.agent_max_steps == 20
    assert settings.agent_max_tool_calls == 50
    assert settings.agent_max_duration_ms == 300_000
    assert settings.agent_ai_model is None
    assert settings.hf_model_heavy == "Qwen/Qwen2.5-72B-Instruct"
    assert settings.llm_model == "Qwen/Qwen2.5-72B-Instruct"
    assert settings.agent_ai_temperature == 0.2
    assert settings.agent_ai_max_tokens == 2048
    assert settings.agent_allowed_risk_levels == [RiskLevel.LOW, RiskLevel.MEDIUM]
    assert settings.agent_approval_flow is False
    assert settings.agent_approval_ttl_hours == 24
    assert settings.agent_approval_notify_channels == [NotifyChannel.EMAIL, NotifyChannel.WHATSAPP]
    assert settings.agent_events_retention_days == 30
    assert settings.database_url == "sqlite:///agent_runtime.db"
    assert settings.agent_data_tables == []


def test_the_worker_runs_one_process_per_core_by_default(monkeypatch):
    monkeypatch.delenv("AGENT_WORKER_PROCESSES")  # the test fixture pins one
    assert load_settings().agent_worker_processes == min(os.cpu_count() or 1, 64)


def test_environment_values_are_read_as_the_seed_wrote_them(monkeypatch):
    monkeypatch.setenv("AGENT_ENABLED", "true")
    monkeypatch.setenv("AGENT_MAX_STEPS", "7")
    monkeypatch.setenv("AGENT_ALLOWED_RISK_LEVELS", "low, medium,high")
    monkeypatch.setenv("AGENT_APPROVAL_NOTIFY_CHANNELS", "whatsapp")
    monkeypatch.setenv("AGENT_AI_MODEL", "meta-llama/Llama-3.3-70B-Instruct")
    monkeypatch.setenv("AGENT_LLM_FALLBACK_MODELS", "a/b,c/d")
    monkeypatch.setenv("AGENT_DATA_TABLES", "app_leads,app_orders")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db.example.com:5432/postgres")
    settings = load_settings()
    assert settings.agent_enabled is True
    assert settings.agent_max_steps == 7
    assert settings.agent_allowed_risk_levels == [RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH]
    assert settings.agent_approval_notify_channels == [NotifyChannel.WHATSAPP]
    assert settings.llm_model == "meta-llama/Llama-3.3-70B-Instruct"
    assert settings.agent_llm_fallback_models == ["a/b", "c/d"]
    assert settings.agent_data_tables == ["app_leads", "app_orders"]
    assert settings.database_url == "postgresql+psycopg://u:p@db.example.com:5432/postgres"


def test_env_beats_dotenv_beats_streamlit_secrets(monkeypatch, isolated_environment: Path):
    (isolated_environment / ".streamlit").mkdir()
    (isolated_environment / ".streamlit" / "secrets.toml").write_text(
        'HF_TOKEN = "hf_from_secrets"\nADMIN_EMAIL = "secrets@example.com"\nAGENT_MAX_STEPS = 3\n'
    )
    (isolated_environment / ".env").write_text(
        "ADMIN_EMAIL=dotenv@example.com\nAGENT_MAX_STEPS=4\n"
    )
    monkeypatch.setenv("AGENT_MAX_STEPS", "5")
    settings = load_settings()
    assert settings.hf_token is not None
    assert settings.hf_token.get_secret_value() == "hf_from_secrets"
    assert settings.admin_email == "dotenv@example.com"
    assert settings.agent_max_steps == 5


@pytest.mark.parametrize(
    ("variable", "value", "sentence"),
    [
        ("AGENT_MAX_STEPS", "abc", "AGENT_MAX_STEPS: Input should be a valid integer"),
        ("AGENT_MAX_STEPS", "0", "AGENT_MAX_STEPS: Input should be greater than or equal to 1"),
        ("AGENT_ENABLED", "maybe", "AGENT_ENABLED: Input should be a valid boolean"),
        ("AGENT_ALLOWED_RISK_LEVELS", "low,extreme", "AGENT_ALLOWED_RISK_LEVELS: Input should be"),
        ("AGENT_APPROVAL_NOTIFY_CHANNELS", "email,pigeon", "AGENT_APPROVAL_NOTIFY_CHANNELS:"),
        ("AGENT_AI_TEMPERATURE", "hot", "AGENT_AI_TEMPERATURE: Input should be a valid number"),
        ("DATABASE_URL", "not a url", "DATABASE_URL: not a database URL"),
        ("DATABASE_URL", "mysql://u@h/db", "DATABASE_URL: database 'mysql' is not supported"),
        ("DATABASE_URL", "postgresql+asyncpg://u@h/db", "DATABASE_URL: PostgreSQL driver"),
        ("DATABASE_URL", "sqlite://", "DATABASE_URL: a SQLite URL needs a file path"),
        ("WIX_API_BASE_URL", "www.wixapis.com", "WIX_API_BASE_URL: must be an http:// or"),
        ("DATABASE_URL", "postgresql://u@h:notaport/db", "DATABASE_URL: the port is not a number"),
        # Durations that no date can hold, which once overflowed deep inside a run.
        ("AGENT_APPROVAL_TTL_HOURS", "inf", "AGENT_APPROVAL_TTL_HOURS: Input should be a finite"),
        ("AGENT_RUN_LEASE_S", "inf", "AGENT_RUN_LEASE_S: Input should be a finite number"),
        ("AGENT_APPROVAL_REMIND_BEFORE_MINUTES", "nan", "AGENT_APPROVAL_REMIND_BEFORE_MINUTES:"),
        ("AGENT_EVENTS_RETENTION_DAYS", "99999999999", "AGENT_EVENTS_RETENTION_DAYS: Input should"),
        ("AGENT_MAINTENANCE_INTERVAL_S", "1e12", "AGENT_MAINTENANCE_INTERVAL_S: Input should be"),
        ("AGENT_DATA_TABLES", "sqlite_master", "AGENT_DATA_TABLES: sqlite_master is one of the"),
        ("AGENT_DATA_TABLES", "pg_authid", "AGENT_DATA_TABLES: pg_authid is one of the database"),
        ("AGENT_SECRET_KEY", "short", "AGENT_SECRET_KEY: must be at least 32 random characters"),
        # A notification records its recipient in at most 200 characters: refused up front,
        # instead of approvals never notified on PostgreSQL.
        ("ADMIN_EMAIL", "a" * 200 + "@example.com", "ADMIN_EMAIL: String should have at most 200"),
        ("ADMIN_PHONE", "whatsapp:+" + "3" * 200, "ADMIN_PHONE: String should have at most 200"),
    ],
)
def test_a_bad_value_is_one_sentence_naming_the_variable(monkeypatch, variable, value, sentence):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith(sentence)
    assert "\n" not in message


def test_a_bad_database_url_never_echoes_its_password(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "mysql://admin:s3cret-pw@db.example.com/prod")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "s3cret-pw" not in str(raised.value)


def test_the_printable_summary_hides_secrets(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_verysecret")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2@db.example.com/postgres")
    monkeypatch.setenv("WIX_API_KEY", "IST.wix-verysecret")
    summary = settings_summary(load_settings())
    assert summary["hf_token"] == "set"
    assert summary["wix_api_key"] == "set"
    assert "hunter2" not in str(summary)
    assert "hf_verysecret" not in str(summary)
    assert "wix-verysecret" not in str(summary)


def test_secrets_in_a_url_query_or_the_llm_address_are_hidden(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://db.example.com/prod?user=u&password=qsPW")
    monkeypatch.setenv("AGENT_LLM_BASE_URL", "http://bot:llmPW@127.0.0.1:8000/v1?api_key=kPW")
    summary = settings_summary(load_settings())
    assert "qsPW" not in str(summary)
    assert "llmPW" not in str(summary)
    assert "kPW" not in str(summary)
    assert "password=***" in summary["database_url"]
    assert summary["agent_llm_base_url"] == "http://bot:***@127.0.0.1:8000/v1?api_key=***"


def test_a_broken_secrets_file_is_one_sentence_naming_it(isolated_environment: Path):
    (isolated_environment / ".streamlit").mkdir()
    (isolated_environment / ".streamlit" / "secrets.toml").write_text("AGENT_MAX_STEPS = \n")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith(".streamlit/secrets.toml is not valid TOML")
    assert "\n" not in message


def test_a_dotenv_line_that_cannot_be_read_is_named_not_skipped(isolated_environment: Path):
    """python-dotenv skips such a line with a warning, and the earlier value is used: here a
    DATABASE_URL edited with an unclosed quote would silently keep the old database."""
    (isolated_environment / ".env").write_text(
        'DATABASE_URL=sqlite:///old.db\nDATABASE_URL="sqlite:///new.db\nSMTP_PASSWORD="s3cret\n'
    )
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value) == (
        "line 2 of .env cannot be read (an unclosed quote, or no '=' after the name?): fix "
        "it, then start again"
    )
    assert "s3cret" not in str(raised.value)


def test_a_dotenv_that_is_not_utf8_is_one_sentence_naming_it(isolated_environment: Path):
    (isolated_environment / ".env").write_bytes(b"AGENT_ENABLED=true\nADMIN_EMAIL=caf\xe9@x.fr\n")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value) == "line 2 of .env is not UTF-8 text: save it as UTF-8"


def test_a_secrets_file_that_is_not_utf8_is_one_sentence_naming_it(isolated_environment: Path):
    (isolated_environment / ".streamlit").mkdir(exist_ok=True)
    (isolated_environment / ".streamlit" / "secrets.toml").write_bytes(b'ADMIN_EMAIL = "caf\xe9"\n')
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value).startswith(".streamlit/secrets.toml is not UTF-8 text (byte ")
