"""Model prices: AGENT_MODEL_PRICES (validated, one sentence naming the variable) overrides
the maintained list of genai-prices (looked up offline, with the sensible provider split);
a model priced nowhere has no price, never 0, and the analytics say so."""

from __future__ import annotations

import math
import socket

import pytest

from agent_core import analytics
from agent_core.config import load_settings
from agent_core.errors import ConfigError
from agent_core.prices import (
    OVERRIDE_SOURCE,
    ModelPrice,
    Pricing,
    TokenPrice,
    library_price,
    parse_model_prices,
)
from tests.analytics_support import SINCE, Answer, Recorder
from tests.support import make_objective


def test_the_setting_is_model_equals_input_slash_output_or_one_price(monkeypatch):
    monkeypatch.setenv(
        "AGENT_MODEL_PRICES", "model-a=0.5/1.5, model-b=0.2,Qwen/Qwen2.5-72B-Instruct=0.0004"
    )
    assert load_settings().agent_model_prices == {
        "model-a": TokenPrice(0.5, 1.5),
        "model-b": TokenPrice(0.2, 0.2),
        "Qwen/Qwen2.5-72B-Instruct": TokenPrice(0.0004, 0.0004),
    }
    monkeypatch.setenv("AGENT_MODEL_PRICES", "")
    assert load_settings().agent_model_prices == {}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("model-a", "'model-a' is not model=price"),
        ("model-a=cheap", "the price of model-a must be a number of USD per 1,000 tokens"),
        ("model-a=1/2/3", "the price of model-a must be input/output or one number"),
        ("model-a=-1", "the price of model-a must be 0 or more"),
        ("model-a=nan", "the price of model-a must be 0 or more"),
        ("model-a=1,model-a=2", "model-a is priced twice"),
    ],
)
def test_a_bad_setting_is_one_sentence_naming_the_variable(monkeypatch, value, problem):
    monkeypatch.setenv("AGENT_MODEL_PRICES", value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith(f"AGENT_MODEL_PRICES: {problem}")
    assert "\n" not in message


def test_a_mapping_is_accepted_from_code():
    assert parse_model_prices({"m": 1, "n": (1, 2), "o": "0.1/0.2"}) == {
        "m": TokenPrice(1.0, 1.0),
        "n": TokenPrice(1.0, 2.0),
        "o": TokenPrice(0.1, 0.2),
    }


def test_the_library_prices_known_models_per_1000_tokens():
    gpt = library_price("gpt-4o")
    assert gpt is not None
    assert (gpt.input_per_1k, gpt.output_per_1k) == pytest.approx((0.0025, 0.01))
    assert gpt.source == "genai-prices (openai gpt-4o)"
    assert gpt.cost(1000, 500) == pytest.approx(0.0025 + 0.005)
    assert library_price("gpt-4o-2024-08-06") == gpt  # a dated name resolves


@pytest.mark.parametrize(
    ("model", "source"),
    [
        ("openai:gpt-4o", "genai-prices (openai gpt-4o)"),
        ("openai/gpt-4o", "genai-prices (openai gpt-4o)"),
        ("anthropic/claude-3-5-sonnet", "genai-prices (anthropic claude-3-5-sonnet)"),
        # Hugging Face's router names the provider after the model
        (
            "Qwen/Qwen2.5-72B-Instruct:novita",
            "genai-prices (huggingface_novita Qwen/Qwen2.5-72B-Instruct)",
        ),
    ],
)
def test_the_provider_is_split_off_the_name(model, source):
    price = library_price(model)
    assert price is not None
    assert price.source == source


@pytest.mark.parametrize("model", ["test-model", "Qwen/Qwen2.5-72B-Instruct", "ollama:llama3"])
def test_an_unknown_model_has_no_price(model):
    assert library_price(model) is None  # the library's LookupError is caught
    assert Pricing().price(model) is None


def test_the_library_is_read_offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    library_price.cache_clear()
    assert library_price("gpt-4o-mini") is not None


def test_the_admin_price_overrides_the_library():
    pricing = Pricing({"gpt-4o": TokenPrice(1.0, 3.0), "My-Model": TokenPrice(0.2, 0.2)})
    assert pricing.price("gpt-4o") == ModelPrice(1.0, 3.0, OVERRIDE_SOURCE)
    assert pricing.price("my-model") == ModelPrice(0.2, 0.2, OVERRIDE_SOURCE)  # any case
    assert pricing.price("gpt-4o-mini").source.startswith("genai-prices")
    assert pricing.price(None) is None


def _three_models(store, clock):
    objective = make_objective(store)
    record = Recorder(store, clock)
    record.at(SINCE)
    record.run(
        objective.id,
        answers=(
            Answer("gpt-4o", 2000, 1000, 100, "count_database"),
            Answer("house-model", 1000, 1000, 100, "count_database"),
            Answer("mystery-model", 300, 200, 100),
        ),
    )


def test_analytics_price_with_the_override_the_library_or_no_price(store, clock):
    _three_models(store, clock)
    by_model = analytics.cost_by_model(
        store, since=SINCE, prices={"house-model": TokenPrice(0.5, 1.5)}
    )
    found = {row["model"]: row for row in by_model.to_dict(orient="records")}
    assert found["house-model"]["cost_usd"] == pytest.approx(0.5 + 1.5)
    assert found["house-model"]["price_source"] == "AGENT_MODEL_PRICES"
    assert found["gpt-4o"]["cost_usd"] == pytest.approx(2 * 0.0025 + 1 * 0.01)
    assert found["gpt-4o"]["price_source"] == "genai-prices (openai gpt-4o)"
    assert math.isnan(found["mystery-model"]["cost_usd"])
    assert found["mystery-model"]["price_source"] == "no price"
    assert found["mystery-model"]["unpriced_tokens"] == 500
    head = analytics.analyze(store, since=SINCE, prices={"house-model": (0.5, 1.5)}).headline
    assert head["cost_usd"] == pytest.approx(2.015)
    assert head["unpriced_tokens"] == 500


def test_analytics_read_the_configured_prices_by_default(store, clock, monkeypatch):
    _three_models(store, clock)
    monkeypatch.setenv("AGENT_MODEL_PRICES", "house-model=0.5/1.5,mystery-model=1")
    head = analytics.analyze(store, since=SINCE).headline
    assert head["cost_usd"] == pytest.approx(0.015 + 2.0 + 0.5)
    assert head["unpriced_tokens"] == 0
