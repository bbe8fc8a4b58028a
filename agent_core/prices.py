"""What a model's tokens cost: the admin's prices (AGENT_MODEL_PRICES) first, then the
maintained price list of the `genai-prices` library (its bundled data: no network).

Prices are USD per 1,000 tokens, one for prompt (input) tokens and one for completion
(output) tokens. A model priced nowhere has no price (None), never a price of 0: the
analytics then say "no price" and count its tokens apart.

AGENT_MODEL_PRICES is written `model-a=0.5/1.5,model-b=0.2`: input/output USD per 1,000
tokens, or one price for both.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

OVERRIDE_SOURCE = "AGENT_MODEL_PRICES"
LIBRARY_SOURCE = "genai-prices"


class TokenPrice(NamedTuple):
    """USD per 1,000 tokens, as the admin configures it."""

    input_per_1k: float
    output_per_1k: float


class ModelPrice(NamedTuple):
    """A model's price and where it comes from (AGENT_MODEL_PRICES, or genai-prices with
    the provider and model it matched)."""

    input_per_1k: float
    output_per_1k: float
    source: str

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        """USD for these tokens."""
        return (prompt_tokens * self.input_per_1k + completion_tokens * self.output_per_1k) / 1000


def parse_model_prices(value: Any) -> dict[str, TokenPrice]:
    """AGENT_MODEL_PRICES as a mapping of model name to price; ValueError with one sentence
    when it is not `model=input/output` or `model=price` items separated by commas. A mapping
    (from code or a secrets file) of model to a number, a pair or such a string works too."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(model).strip(): _price_of(model, price) for model, price in value.items()}
    if not isinstance(value, str):
        raise ValueError("must be written model=input/output,model=price (USD per 1,000 tokens)")
    prices: dict[str, TokenPrice] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        model, equals, price = item.rpartition("=")
        model = model.strip()
        if not equals or not model:
            raise ValueError(
                f"{item!r} is not model=price: write model=input/output or model=price "
                "(USD per 1,000 tokens), separated by commas"
            )
        if model in prices:
            raise ValueError(f"{model} is priced twice")
        prices[model] = _price_of(model, price)
    return prices


def _price_of(model: Any, price: Any) -> TokenPrice:
    if isinstance(price, TokenPrice):
        parts: list[Any] = list(price)
    elif isinstance(price, str):
        parts = [part.strip() for part in price.split("/")]
    elif isinstance(price, list | tuple):
        parts = list(price)
    else:
        parts = [price]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise ValueError(f"the price of {model} must be input/output or one number, not {price!r}")
    numbers = []
    for part in parts:
        try:
            number = float(part)
        except (TypeError, ValueError):
            raise ValueError(
                f"the price of {model} must be a number of USD per 1,000 tokens, not {part!r}"
            ) from None
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"the price of {model} must be 0 or more, not {part!r}")
        numbers.append(number)
    return TokenPrice(*numbers)


class Pricing:
    """Looks models up: the admin's prices (exact name, then the same name in another case),
    then genai-prices. Each model is looked up once per Pricing."""

    def __init__(self, overrides: Mapping[str, TokenPrice] | None = None) -> None:
        self.overrides = dict(overrides or {})
        self._folded = {model.casefold(): price for model, price in self.overrides.items()}
        self._found: dict[str, ModelPrice | None] = {}

    def price(self, model: str | None) -> ModelPrice | None:
        """The model's price, or None when neither the admin nor the library prices it (or
        the answer named no model: None, or NaN read back from a table)."""
        if not model or not isinstance(model, str):
            return None
        if model not in self._found:
            given = self.overrides.get(model) or self._folded.get(model.casefold())
            if given is not None:
                self._found[model] = ModelPrice(*given, source=OVERRIDE_SOURCE)
            else:
                self._found[model] = library_price(model)
        return self._found[model]


@functools.cache
def library_price(model: str) -> ModelPrice | None:
    """The model's price in genai-prices' bundled data, trying the name as written and then
    its sensible provider split (`openai:gpt-4o`, `openai/gpt-4o`, and Hugging Face's
    `org/model:provider`); None when the library knows no such model."""
    from genai_prices import Usage, calc_price  # imported on first use: about 0.2 s

    for model_ref, provider_id in _candidates(model):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = calc_price(
                    Usage(input_tokens=1000, output_tokens=1000),
                    model_ref,
                    provider_id=provider_id,
                )
        except LookupError:
            continue
        return ModelPrice(
            float(found.input_price),
            float(found.output_price),
            source=f"{LIBRARY_SOURCE} ({found.provider.id} {found.model.id})",
        )
    return None


def _candidates(model: str) -> Iterator[tuple[str, str | None]]:
    """(model, provider) pairs to try, most literal first."""
    name = model.strip()
    yield name, None
    if ":" in name:  # openai:gpt-4o, or Hugging Face's Qwen/Qwen2.5-72B-Instruct:novita
        left, right = (part.strip() for part in name.split(":", 1))
        if left and right:
            yield right, left
            yield left, right
            yield left, f"huggingface_{right}"
            name = left
    if "/" in name:  # openai/gpt-4o
        provider, _, bare = name.partition("/")
        if provider and bare:
            yield bare, provider
            yield bare, None
