"""With AGENT_LLM_BASE_URL and no model named, the runtime plans with the model the server
serves (its /v1/models), asked once per process; never the Hugging Face default name."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from agent_core.config import load_settings
from agent_core.errors import ConfigError
from agent_core.llm import (
    build_content_llm,
    build_llm,
    models_url,
    planning_model,
    served_model,
)
from agent_core.models import RunStatus, StopReason
from agent_core.runtime import open_runtime
from agent_core.system import checks
from tests.support import agent_settings, make_objective, run_cli, run_to_end

ASK = [{"role": "user", "content": "Say OK."}]
HF_DEFAULT = "Qwen/Qwen2.5-72B-Instruct"


pytestmark = pytest.mark.usefixtures("fresh_served_models")


# --- which settings name a model -------------------------------------------------------------


def test_by_default_no_model_is_named_and_the_default_is_unchanged():
    settings = load_settings()
    assert settings.llm_model_named is False
    assert settings.llm_model == HF_DEFAULT


@pytest.mark.parametrize("variable", ["AGENT_AI_MODEL", "HF_MODEL_HEAVY"])
def test_a_model_named_in_the_environment_is_named(monkeypatch, variable):
    monkeypatch.setenv(variable, "org/named")
    settings = load_settings()
    assert settings.llm_model_named is True
    assert settings.llm_model == "org/named"


def test_hf_model_heavy_named_in_dotenv_or_secrets_is_named(isolated_environment: Path):
    (isolated_environment / ".env").write_text(f"HF_MODEL_HEAVY={HF_DEFAULT}\n")
    assert load_settings().llm_model_named is True  # even spelled as the default
    (isolated_environment / ".env").unlink()
    secrets = isolated_environment / ".streamlit"
    secrets.mkdir()
    (secrets / "secrets.toml").write_text('HF_MODEL_HEAVY = "org/from-secrets"\n')
    settings = load_settings()
    assert (settings.llm_model_named, settings.llm_model) == (True, "org/from-secrets")


# --- asking the server ----------------------------------------------------------------------------


def test_without_a_named_model_the_first_model_the_server_serves_is_used_and_logged(
    llm_server, monkeypatch, caplog
):
    llm_server.models = ["llama3.2:3b", "qwen2.5:7b"]
    llm_server.reply("OK").reply("OK again")
    monkeypatch.setenv("AGENT_LLM_BASE_URL", llm_server.url)
    llm = build_llm(load_settings())
    assert llm_server.models_requests == 0  # building asks nothing: it stays quick

    with caplog.at_level(logging.INFO, logger="agent_core.llm"):
        first = llm.complete(ASK, timeout_s=5)
        second = llm.complete(ASK, timeout_s=5)

    assert (first.model, second.model) == ("llama3.2:3b", "llama3.2:3b")
    assert [r["model"] for r in llm_server.requests] == ["llama3.2:3b", "llama3.2:3b"]
    assert HF_DEFAULT not in str(llm_server.requests)
    assert llm_server.models_requests == 1  # once per process
    [line] = [r.getMessage() for r in caplog.records if "AGENT_AI_MODEL is not set" in r.message]
    assert "llama3.2:3b" in line
    assert llm_server.url in line


def test_the_fallbacks_follow_the_served_model(llm_server, monkeypatch):
    llm_server.models = ["served"]
    llm_server.fail(500, model="served")
    llm_server.reply("from the fallback", model="backup")
    monkeypatch.setenv("AGENT_LLM_BASE_URL", llm_server.url)
    monkeypatch.setenv("AGENT_LLM_FALLBACK_MODELS", "backup")

    reply = build_llm(load_settings()).complete(ASK, timeout_s=5)

    assert reply.model == "backup"
    assert [r["model"] for r in llm_server.requests] == ["served", "backup"]


def test_the_content_model_is_the_served_one_too_unless_hf_model_fast_is_set(
    llm_server, monkeypatch
):
    llm_server.models = ["served"]
    llm_server.reply("text").reply("text")
    monkeypatch.setenv("AGENT_LLM_BASE_URL", llm_server.url)
    content = build_content_llm(load_settings())
    assert content is not None
    assert content.complete(ASK, timeout_s=5).model == "served"
    monkeypatch.setenv("HF_MODEL_FAST", "fast")
    fast = build_content_llm(load_settings())
    assert fast is not None
    assert fast.complete(ASK, timeout_s=5).model == "fast"


@pytest.mark.parametrize("variable", ["AGENT_AI_MODEL", "HF_MODEL_HEAVY"])
def test_a_named_model_is_used_and_the_server_is_not_asked(llm_server, monkeypatch, variable):
    llm_server.models = ["something-else"]
    llm_server.reply("OK")
    monkeypatch.setenv("AGENT_LLM_BASE_URL", llm_server.url)
    monkeypatch.setenv(variable, "org/named")

    reply = build_llm(load_settings()).complete(ASK, timeout_s=5)

    assert reply.model == "org/named"
    assert llm_server.models_requests == 0


@pytest.mark.parametrize(
    ("setup", "told"),
    [
        (lambda server: setattr(server, "models", []), "lists no model"),
        (lambda server: setattr(server, "models_status", 500), "HTTP 500"),
        (lambda server: setattr(server, "models_document", ["not", "a", "list"]), "no model"),
        (lambda server: setattr(server, "models_document", {"data": [{"id": 4}]}), "no model"),
    ],
    ids=["empty", "http-500", "odd-shape", "no-id"],
)
def test_a_server_that_cannot_say_gives_one_line_naming_agent_ai_model(llm_server, setup, told):
    setup(llm_server)

    with pytest.raises(ConfigError) as caught:
        served_model(llm_server.url, None)

    message = str(caught.value)
    assert "\n" not in message
    assert "AGENT_AI_MODEL" in message
    assert told in message


def test_a_server_that_does_not_answer_is_given_up_after_a_short_timeout(llm_server):
    llm_server.models = ["late"]
    llm_server.models_delay_s = 10

    started = time.monotonic()
    with pytest.raises(ConfigError, match="AGENT_AI_MODEL"):
        served_model(llm_server.url, None, timeout_s=0.5)

    assert time.monotonic() - started < 1.5


def test_a_run_without_a_usable_model_fails_as_config_error_naming_agent_ai_model(
    store, llm_server
):
    llm_server.models_status = 404
    objective = make_objective(store)
    runtime = open_runtime(agent_settings(agent_llm_base_url=llm_server.url), store)

    run = run_to_end(runtime.orchestrator(), objective.id)

    assert (run.status, run.stop_reason) == (RunStatus.FAILED, StopReason.CONFIG_ERROR)
    assert "AGENT_AI_MODEL" in run.error
    assert llm_server.requests == []  # nothing was sent under a made-up name


def test_a_run_plans_with_the_served_model(store, llm_server):
    llm_server.models = ["served-model"]
    llm_server.done("Done with the served model.")
    objective = make_objective(store)
    runtime = open_runtime(agent_settings(agent_llm_base_url=llm_server.url), store)

    run = run_to_end(runtime.orchestrator(), objective.id)

    assert (run.status, run.summary) == (RunStatus.COMPLETED, "Done with the served model.")
    [step] = store.run_detail(run.id).steps
    assert step.model == "served-model"


# --- where an admin sees it -----------------------------------------------------------------------


def _llm_check(runtime):
    return next(check for check in checks(runtime) if check.area == "Language model")


def test_the_system_check_names_the_served_model_and_says_why(store, llm_server):
    llm_server.models = ["served-model"]
    runtime = open_runtime(agent_settings(agent_llm_base_url=llm_server.url), store)

    check = _llm_check(runtime)

    assert check.ok
    assert check.sentence.startswith("served-model (the model the server serves")
    assert "AGENT_AI_MODEL is not set" in check.sentence
    assert HF_DEFAULT not in check.sentence


def test_the_system_check_says_what_to_set_when_the_server_cannot_say(store, llm_server):
    llm_server.models = []
    runtime = open_runtime(agent_settings(agent_llm_base_url=llm_server.url), store)

    check = _llm_check(runtime)

    assert not check.ok
    assert "set AGENT_AI_MODEL" in check.sentence


def test_the_system_check_of_a_named_model_asks_nothing(store, llm_server):
    runtime = open_runtime(
        agent_settings(agent_llm_base_url=llm_server.url, agent_ai_model="org/named"), store
    )
    assert _llm_check(runtime).sentence.startswith("org/named through the server at")
    assert llm_server.models_requests == 0


def test_config_check_does_not_ask_the_server(llm_server, monkeypatch):
    llm_server.models_delay_s = 30
    monkeypatch.setenv("AGENT_LLM_BASE_URL", llm_server.url)

    started = time.monotonic()
    result = run_cli(["config", "check"])

    assert result.exit_code == 0
    assert time.monotonic() - started < 5
    assert llm_server.models_requests == 0
    assert planning_model(load_settings(agent_ai_model="m")) == "m"


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://host:11434/v1", "http://host:11434/v1/models"),
        ("http://host:11434/v1/", "http://host:11434/v1/models"),
        ("http://host:8080", "http://host:8080/v1/models"),
        ("http://host:8080/", "http://host:8080/v1/models"),
        ("http://host/proxy/v1/chat/completions", "http://host/proxy/v1/models"),
    ],
)
def test_the_models_url_sits_beside_the_chat_completions_url(base_url, expected):
    assert models_url(base_url) == expected
