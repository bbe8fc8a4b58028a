"""Settings from the environment, a `.env` file and `.streamlit/secrets.toml`.

Variable names and defaults are the seed's (AGENT_MAX_STEPS=20, ...), so an admin coming
from the original JavaScript system keeps their configuration. A bad value stops the
program with one sentence naming the variable: see `load_settings`.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import time
import tomllib
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from dotenv.parser import parse_stream
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from agent_core.errors import ConfigError
from agent_core.models import (
    MAX_BUDGET_DURATION_MS,
    MAX_BUDGET_STEPS,
    MAX_BUDGET_TOKENS,
    MAX_BUDGET_TOOL_CALLS,
    NotifyChannel,
    RiskLevel,
    SmtpSecurity,
)
from agent_core.prices import TokenPrice, parse_model_prices
from agent_core.render import describe_validation_error, redact_url
from agent_core.store.engine import InvalidDatabaseURL, normalize_database_url
from agent_core.store.signing import LedgerKey

SECRETS_TOML = Path(".streamlit") / "secrets.toml"

# Values of these variables are never echoed back in an error message.
_SECRET_VARIABLES = frozenset(
    {
        "DATABASE_URL",
        "AGENT_DATA_DATABASE_URL",
        "HF_TOKEN",
        "SMTP_PASSWORD",
        "TWILIO_AUTH_TOKEN",
        "AGENT_SECRET_KEY",
        "AGENT_ADMIN_PASSWORD",
        "WIX_API_KEY",
    }
)
# Settings printed as "set" or null, never their value.
SECRET_SETTINGS = (
    "hf_token",
    "smtp_password",
    "twilio_auth_token",
    "agent_secret_key",
    "agent_admin_password",
    "wix_api_key",
)
RUNTIME_TABLE_PREFIX = "app_agent_"
TABLE_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

# Upper bounds keep every duration computable as a date (no overflow) and every limit sane
# (the run budgets' own are in models, shared with an objective's budget).
DAY_S = 24 * 3600
# Names the agent may never be given as business tables: the database's own catalogues.
SYSTEM_TABLE_PREFIXES = ("sqlite_", "pg_")
SECRET_KEY_MIN_CHARS = 32

CommaList = Annotated[list[str], NoDecode]


def cpu_cores() -> int:
    """The machine's cores (at most 64): one worker process each by default, since a Python
    process runs on one core at a time."""
    return max(1, min(os.cpu_count() or 1, 64))


# The secret settings sent to other servers, whose errors may quote them back.
SENT_SECRETS = ("hf_token", "smtp_password", "twilio_auth_token", "wix_api_key")
SECRET_HIDDEN_MIN_CHARS = 8
MAX_RECIPIENT_CHARS = 200


class Settings(BaseSettings):
    """Every knob of the runtime. Attribute names are the variable names in lower case."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
        allow_inf_nan=False,  # "inf" hours or seconds would overflow every date computed from them
    )

    # The seed's variables, with the seed's defaults.
    agent_enabled: bool = False
    agent_max_steps: int = Field(default=20, ge=1, le=MAX_BUDGET_STEPS)
    agent_max_tool_calls: int = Field(default=50, ge=0, le=MAX_BUDGET_TOOL_CALLS)
    agent_max_duration_ms: int = Field(default=300_000, ge=1, le=MAX_BUDGET_DURATION_MS)
    agent_ai_model: str | None = None
    hf_model_heavy: str = "Qwen/Qwen2.5-72B-Instruct"
    hf_model_fast: str | None = None
    agent_ai_temperature: float = Field(default=0.2, ge=0, le=2)
    agent_ai_max_tokens: int = Field(default=2048, ge=1, le=1_000_000)
    agent_allowed_risk_levels: Annotated[list[RiskLevel], NoDecode] = [
        RiskLevel.LOW,
        RiskLevel.MEDIUM,
    ]
    agent_approval_flow: bool = False
    agent_approval_ttl_hours: float = Field(default=24, gt=0, le=24 * 366)
    agent_approval_notify_channels: Annotated[list[NotifyChannel], NoDecode] = [
        NotifyChannel.EMAIL,
        NotifyChannel.WHATSAPP,
    ]
    # A notification records its recipient: at most 200 characters (app_agent_notifications).
    admin_email: str | None = Field(default=None, max_length=MAX_RECIPIENT_CHARS)
    admin_phone: str | None = Field(default=None, max_length=MAX_RECIPIENT_CHARS)
    agent_events_retention_days: int = Field(default=30, ge=1, le=36_600)

    # Added by this runtime.
    database_url: str = "sqlite:///agent_runtime.db"
    hf_token: SecretStr | None = None
    agent_llm_base_url: str | None = None
    agent_llm_fallback_models: CommaList = []
    # USD per 1,000 tokens, `model=input/output` or `model=price`: overrides genai-prices.
    agent_model_prices: Annotated[dict[str, TokenPrice], NoDecode] = {}
    agent_data_tables: CommaList = []
    agent_observation_max_chars: int = Field(default=4000, ge=200, le=1_000_000)
    agent_result_max_chars: int = Field(default=100_000, ge=1000, le=10_000_000)
    agent_max_repairs: int = Field(default=2, ge=0, le=20)
    agent_max_tokens_per_run: int = Field(default=200_000, ge=1, le=MAX_BUDGET_TOKENS)
    agent_llm_timeout_s: float = Field(default=60, gt=0, le=3600)
    agent_data_database_url: str | None = None
    agent_run_lease_s: float = Field(default=60, ge=1, le=DAY_S)
    agent_run_max_attempts: int = Field(default=3, ge=1, le=100)

    # The worker process (scheduler.py).
    agent_worker_concurrency: int = Field(default=4, ge=1, le=256)
    agent_worker_processes: int = Field(default_factory=cpu_cores, ge=1, le=64)
    agent_worker_poll_s: float = Field(default=0.25, gt=0, le=3600)
    agent_worker_heartbeat_s: float = Field(default=10, gt=0, le=3600)
    agent_worker_shutdown_s: float = Field(default=30, ge=0, le=3600)
    agent_maintenance_interval_s: float = Field(default=300, gt=0, le=DAY_S)

    # Approvals and notifications.
    agent_dashboard_url: str = "http://localhost:8501"
    # Signs approval links, approval bindings and decisions, prune checkpoints and the
    # ledger's seals; kept outside the database (see ledger_key).
    agent_secret_key: SecretStr | None = None
    # With it set, the dashboard asks for it before showing anything.
    agent_admin_password: SecretStr | None = None
    # `up --demo`: a scripted demo model on example data, labelled as such on every page.
    agent_demo: bool = False
    agent_approvers: CommaList = []
    agent_approval_remind_before_minutes: float = Field(default=60, ge=0, le=60 * 24 * 366)
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str | None = None
    smtp_security: SmtpSecurity = SmtpSecurity.STARTTLS
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_whatsapp_from: str | None = None
    twilio_api_base_url: str = "https://api.twilio.com"

    # The Wix shop tools (wix_search_products, wix_search_orders, wix_create_coupon).
    wix_api_key: SecretStr | None = None
    wix_site_id: str | None = None
    wix_api_base_url: str = "https://www.wixapis.com"

    @field_validator(
        "agent_allowed_risk_levels",
        "agent_approval_notify_channels",
        "agent_llm_fallback_models",
        "agent_data_tables",
        "agent_approvers",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """Lists are written `low,medium` in the environment, as in the seed."""
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("agent_model_prices", mode="before")
    @classmethod
    def _model_prices(cls, value: Any) -> dict[str, TokenPrice]:
        return parse_model_prices(value)

    @field_validator("database_url", "agent_data_database_url")
    @classmethod
    def _valid_database_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            return normalize_database_url(value)
        except InvalidDatabaseURL as exc:
            raise ValueError(str(exc)) from None

    @field_validator("agent_data_tables")
    @classmethod
    def _business_tables_only(cls, names: list[str]) -> list[str]:
        for name in names:
            if name.lower().startswith(RUNTIME_TABLE_PREFIX):
                raise ValueError(
                    f"{name} is one of the runtime's own tables, which the agent may never reach"
                )
            if name.lower().startswith(SYSTEM_TABLE_PREFIXES):
                raise ValueError(f"{name} is one of the database's own catalogue tables")
            if not TABLE_NAME_PATTERN.match(name):
                raise ValueError(f"{name!r} is not a table name")
        return list(dict.fromkeys(names))

    @field_validator("agent_secret_key")
    @classmethod
    def _long_enough_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value()) < SECRET_KEY_MIN_CHARS:
            raise ValueError(
                f"must be at least {SECRET_KEY_MIN_CHARS} random characters long "
                "(remove it from .env and `up` writes a new one)"
            )
        return key

    @field_validator(
        "agent_ai_model",
        "hf_model_fast",
        "agent_llm_base_url",
        "admin_email",
        "admin_phone",
        "smtp_host",
        "smtp_user",
        "smtp_password",
        "smtp_from",
        "twilio_account_sid",
        "twilio_auth_token",
        "twilio_whatsapp_from",
        "agent_secret_key",
        "agent_admin_password",
        "wix_api_key",
        "wix_site_id",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("wix_api_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// address")
        return value.rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit values, then the environment, then `.env`, then Streamlit's secrets file."""
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            _StreamlitSecretsSource(settings_cls),
        )

    @property
    def data_database_url(self) -> str:
        """The business database the data tools use; by default the runtime's own, as in the
        seed where one Supabase project holds both."""
        return self.agent_data_database_url or self.database_url

    @property
    def secret_values(self) -> tuple[str, ...]:
        """The secrets the runtime sends to other servers (tokens, keys, passwords), hidden
        wherever a text from outside (an error page, an exception) may quote one back
        (`render.without_secrets`). Not the dashboard's password nor the signing key, which
        no server is sent; and none shorter than SECRET_HIDDEN_MIN_CHARS: hiding a short one
        would garble ordinary words, and show where it is."""
        values = (getattr(self, name) for name in SENT_SECRETS)
        return tuple(
            secret
            for value in values
            if isinstance(value, SecretStr)
            and len(secret := value.get_secret_value()) >= SECRET_HIDDEN_MIN_CHARS
        )

    @property
    def worker_heartbeat_s(self) -> float:
        """How often a worker renews its leases and says it is alive: often enough that a
        lease never lapses under a live worker (three beats per lease at least)."""
        return min(self.agent_worker_heartbeat_s, self.agent_run_lease_s / 3)

    @property
    def worker_alive_window(self) -> timedelta:
        """A worker whose last heartbeat is older than this is taken for dead."""
        return timedelta(seconds=3 * self.worker_heartbeat_s + 5)

    @property
    def llm_models(self) -> list[str]:
        """The planning model followed by the fallbacks, each once."""
        return list(dict.fromkeys([self.llm_model, *self.agent_llm_fallback_models]))

    @property
    def llm_model(self) -> str:
        """The model the agent plans with: AGENT_AI_MODEL, else HF_MODEL_HEAVY (as the seed)."""
        return self.agent_ai_model or self.hf_model_heavy

    @property
    def llm_model_named(self) -> bool:
        """Whether a planning model is named: AGENT_AI_MODEL, or HF_MODEL_HEAVY given
        explicitly (environment, `.env`, secrets or code) rather than left at its default.
        Without one, an AGENT_LLM_BASE_URL server is asked which model it serves."""
        return bool(self.agent_ai_model) or "hf_model_heavy" in self.model_fields_set


class _StreamlitSecretsSource(TomlConfigSettingsSource):
    """Top-level keys of `.streamlit/secrets.toml`, matched without regard to case."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        try:
            super().__init__(settings_cls, toml_file=SECRETS_TOML)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"{SECRETS_TOML} is not valid TOML ({exc}): fix or remove it"
            ) from None
        self.toml_data = {key.lower(): value for key, value in self.toml_data.items()}


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning a validation failure or an unreadable settings file into one
    readable sentence (a ConfigError: a running worker keeps its settings on one)."""
    try:
        _check_env_file(Path(str(Settings.model_config.get("env_file") or ".env")))
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_settings_error(exc)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{SECRETS_TOML} is not UTF-8 text (byte {exc.start}): save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read the settings file {exc.filename or '.env'}: {exc.strerror or exc}"
        ) from None


# A settings file written this recently may still be being written (an editor that empties
# it, then writes it): a running worker reads it once it has been left alone this long.
SETTLE_S = 0.5
_SETTLE_WAIT_MAX_S = 3.0
_SETTLE_READS_MAX = 5


def reload_settings(
    *,
    settle_s: float = SETTLE_S,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], object] = time.sleep,
) -> Settings:
    """`load_settings` for a process already running, which has settings to keep: it reads
    `.env` and the secrets file once neither has changed for `settle_s`, and again if one
    changed while it read (waiting at most _SETTLE_WAIT_MAX_S in all), so that a file caught
    half-written (empty, or its first lines only) is not taken, which would put every
    setting it holds back to its default until the next reload."""
    files = (Path(str(Settings.model_config.get("env_file") or ".env")), SECRETS_TOML)
    waited, reads = 0.0, 0
    while True:
        stamps = [_stamp(path) for path in files]
        now = clock()
        ages = [now - stamp[0] / 1e9 for stamp in stamps if stamp is not None]
        # A file dated ahead of the clock (copied from another machine, a clock set back)
        # is not being written now: a write would date it now. Each file counts alone.
        young = max((settle_s - age for age in ages if age >= 0), default=0.0)
        if young > 0 and waited < _SETTLE_WAIT_MAX_S:
            pause = min(young, _SETTLE_WAIT_MAX_S - waited)
            sleep(pause)
            waited += pause
            continue
        fresh = load_settings()
        reads += 1
        settled = [_stamp(path) for path in files] == stamps
        if settled or waited >= _SETTLE_WAIT_MAX_S or reads >= _SETTLE_READS_MAX:
            return fresh
        # Changed while it was read: read it again once it is left alone.


def _stamp(path: Path) -> tuple[int, int] | None:
    """A file's time of change (ns) and size; None when there is none to read."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


def _check_env_file(path: Path) -> None:
    """ConfigError naming the first line of `path` that cannot be read (python-dotenv skips
    it with a warning, and an earlier value of its variable, or the default, is used). The
    line itself is not shown: it may hold a secret."""
    if not path.is_file():
        return
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"line {line} of {path} is not UTF-8 text: save it as UTF-8") from None
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            raise ConfigError(
                f"line {binding.original.line} of {path} cannot be read (an unclosed "
                "quote, or no '=' after the name?): fix it, then start again"
            )


def describe_settings_error(exc: ValidationError) -> str:
    names = {field: field.upper() for field in Settings.model_fields}
    return describe_validation_error(exc, names, hide_input_of=_SECRET_VARIABLES)


def settings_summary(settings: Settings) -> Mapping[str, Any]:
    """The settings as a mapping safe to print: secrets are replaced by whether they are set."""
    summary = settings.model_dump(mode="json")
    for secret in SECRET_SETTINGS:
        summary[secret] = "set" if getattr(settings, secret) else None
    summary["database_url"] = redact_url(settings.database_url)
    for name in ("agent_data_database_url", "agent_llm_base_url"):
        if getattr(settings, name):
            summary[name] = redact_url(getattr(settings, name))
    return summary


# Settings a running worker cannot take on without a restart: where the data is, and how
# the worker itself is laid out. Every other setting is re-read while it runs.
RESTART_SETTINGS = frozenset(
    {
        "database_url",
        "agent_data_database_url",
        "agent_worker_concurrency",
        "agent_worker_processes",
        "agent_worker_poll_s",
        "agent_worker_heartbeat_s",
        "agent_worker_shutdown_s",
        "agent_maintenance_interval_s",
        "agent_run_lease_s",
        "agent_demo",
    }
)


def changed_settings(old: Settings, new: Settings) -> list[str]:
    """The names of the settings whose values differ, in declaration order."""
    return [name for name in Settings.model_fields if getattr(old, name) != getattr(new, name)]


def ensure_secret_key(settings: Settings, env_file: Path = Path(".env")) -> Settings:
    """The settings with AGENT_SECRET_KEY: when none is set anywhere, a new random key is
    appended to `.env` (created if need be, readable by its owner only), so the dashboard
    and the worker started from this folder share it across restarts."""
    if settings.agent_secret_key is not None:
        return settings
    key = secrets.token_urlsafe(32)
    try:
        existing = env_file.read_text(encoding="utf-8") if env_file.exists() else ""
        separator = "" if not existing or existing.endswith("\n") else "\n"
        with env_file.open("a", encoding="utf-8") as handle:
            handle.write(
                f"{separator}# Generated on first start: signs approvals, approval links and "
                "the ledger's seals. Keep it secret.\n"
                f"AGENT_SECRET_KEY={key}\n"
            )
        env_file.chmod(0o600)
    except OSError as exc:
        raise ConfigError(
            f"AGENT_SECRET_KEY is not set and could not be written to {env_file} "
            f"({exc.strerror or exc}): set AGENT_SECRET_KEY to a long random value"
        ) from None
    return settings.model_copy(update={"agent_secret_key": SecretStr(key)})


def ledger_key(settings: Settings) -> LedgerKey:
    """The key that signs approvals, decisions, checkpoints and seals: AGENT_SECRET_KEY, or a
    ConfigError saying how to set it."""
    if settings.agent_secret_key is None:
        raise ConfigError(
            "AGENT_SECRET_KEY is not set: it signs approvals and the ledger's seals; set it in "
            ".env to a long random value (`.venv/bin/python -m agent_core up` generates one)"
        )
    return LedgerKey(settings.agent_secret_key.get_secret_value())
