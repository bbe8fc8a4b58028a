"""LLM clients: Hugging Face Inference Providers or any OpenAI-compatible server, through
huggingface_hub's InferenceClient, with a fallback chain of models.

The orchestrator only sees `LLMClient.complete(messages, ...)`; which model answered, its
token counts and latency come back in the reply so that the step records them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from huggingface_hub import InferenceClient
from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError

from agent_core.config import Settings
from agent_core.errors import AgentRuntimeError, ConfigError

Message = dict[str, str]


@dataclass(frozen=True)
class LLMReply:
    content: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int
    failures: tuple[str, ...] = ()  # models tried before this one, and why they failed
    usage: dict[str, Any] | None = None  # the server's usage object, every field it has


class LLMError(AgentRuntimeError):
    """Every model of the chain failed; the message says how each one failed."""


class LLMTimeout(LLMError):
    """The call could not finish within the time the run had left."""


class LLMClient(Protocol):
    def complete(
        self,
        messages: Sequence[Message],
        *,
        timeout_s: float,
        response_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> LLMReply: ...


def estimate_tokens(text: str) -> int:
    """About four characters per token: used only when a server reports no usage."""
    return max(1, len(text) // 4)


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


@dataclass
class InferenceLLM:
    """Chat completion through huggingface_hub, trying `models` in order.

    An HTTP error, a timeout or a refused connection moves on to the next model. A server that
    rejects `response_format` (JSON mode) is asked again without it, and not asked with it
    again: the reply is then parsed from text, with the same validation.
    """

    models: Sequence[str]
    base_url: str | None = None
    token: str | None = None
    temperature: float = 0.2
    max_tokens: int = 2048
    timeout_s: float = 60.0
    _no_json_mode: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def complete(
        self,
        messages: Sequence[Message],
        *,
        timeout_s: float,
        response_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> LLMReply:
        deadline = time.monotonic() + timeout_s
        failures: list[str] = []
        for model in self.models:
            remaining = deadline - time.monotonic()
            if remaining <= 0.05:
                raise LLMTimeout(
                    "the run's time ran out while waiting for the LLM"
                    + (f" ({'; '.join(failures)})" if failures else "")
                )
            try:
                return self._ask(
                    model,
                    messages,
                    timeout_s=min(self.timeout_s, remaining),
                    response_schema=response_schema,
                    max_tokens=max_tokens or self.max_tokens,
                    failures=failures,
                )
            except Exception as exc:  # noqa: BLE001 - any failure of one model means: next one
                failures.append(f"{model}: {_short(exc)}")
        if time.monotonic() >= deadline - 0.05:
            raise LLMTimeout(
                "the run's time ran out while waiting for the LLM (" + "; ".join(failures) + ")"
            )
        raise LLMError("no model answered: " + "; ".join(failures))

    def _ask(
        self,
        model: str,
        messages: Sequence[Message],
        *,
        timeout_s: float,
        response_schema: dict[str, Any] | None,
        max_tokens: int,
        failures: list[str],
    ) -> LLMReply:
        if self.base_url:
            client = InferenceClient(base_url=self.base_url, api_key=self.token, timeout=timeout_s)
        else:
            client = InferenceClient(provider="auto", api_key=self.token, timeout=timeout_s)
        json_mode = response_schema is not None and model not in self._no_json_mode
        started = time.monotonic()
        try:
            output = client.chat_completion(
                list(messages),
                model=model,
                temperature=self.temperature,
                max_tokens=max_tokens,
                response_format=_json_schema_format(response_schema) if json_mode else None,
            )
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if not (json_mode and status in (400, 422)):
                raise
            with self._lock:
                self._no_json_mode.add(model)
            remaining = timeout_s - (time.monotonic() - started)
            if remaining <= 0:
                raise InferenceTimeoutError("no time left to retry without JSON mode") from exc
            client.timeout = remaining
            output = client.chat_completion(
                list(messages), model=model, temperature=self.temperature, max_tokens=max_tokens
            )
        latency_ms = int((time.monotonic() - started) * 1000)
        content = (output.choices[0].message.content or "") if output.choices else ""
        usage = output.usage
        prompt_tokens = getattr(usage, "prompt_tokens", None) or estimate_tokens(
            "".join(message["content"] for message in messages)
        )
        completion_tokens = getattr(usage, "completion_tokens", None) or estimate_tokens(content)
        return LLMReply(
            content=content,
            model=getattr(output, "model", None) or model,
            prompt_tokens=int(prompt_tokens),
            completion_tokens=int(completion_tokens),
            latency_ms=latency_ms,
            failures=tuple(failures),
            usage=dict(usage) if isinstance(usage, dict) else None,
        )


def _json_schema_format(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    if schema is None:
        return None
    return {"type": "json_schema", "json_schema": {"name": "agent_step", "schema": schema}}


@dataclass
class ScriptedLLM:
    """Replies from a script, in order: for offline demos, benchmarks and in-process tests.

    Each item is the reply text, or a callable given the messages that returns it.
    """

    replies: Iterable[str | Callable[[Sequence[Message]], str]]
    model: str = "scripted"
    record: bool = True  # keep every conversation sent, in `calls`
    calls: list[list[Message]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._replies = iter(self.replies)

    def complete(
        self,
        messages: Sequence[Message],
        *,
        timeout_s: float,
        response_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> LLMReply:
        if self.record:
            self.calls.append(list(messages))
        try:
            reply = next(self._replies)
        except StopIteration:
            raise LLMError(f"{self.model}: the script has no more replies") from None
        content = reply(messages) if callable(reply) else reply
        return LLMReply(
            content=content,
            model=self.model,
            prompt_tokens=estimate_tokens(messages[-1]["content"]) if messages else 0,
            completion_tokens=len(content) // 4,
            latency_ms=0,
        )


NO_LLM_CONFIGURED = (
    "no LLM is configured: set HF_TOKEN (Hugging Face Inference Providers) or "
    "AGENT_LLM_BASE_URL (an OpenAI-compatible server such as TGI, vLLM or Ollama)"
)


def build_llm(
    settings: Settings, *, models: Sequence[str] | None = None, temperature: float | None = None
) -> InferenceLLM:
    """The configured client, or ConfigError naming the variable to set."""
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    if not settings.agent_llm_base_url and not token:
        raise ConfigError(NO_LLM_CONFIGURED)
    return InferenceLLM(
        models=list(models or settings.llm_models),
        base_url=settings.agent_llm_base_url,
        token=token,
        temperature=settings.agent_ai_temperature if temperature is None else temperature,
        max_tokens=settings.agent_ai_max_tokens,
        timeout_s=settings.agent_llm_timeout_s,
    )


def build_content_llm(settings: Settings) -> InferenceLLM | None:
    """The client of generate_content: HF_MODEL_FAST (else the planning model) at the seed's
    temperature 0.7; None when no LLM is configured."""
    try:
        return build_llm(
            settings, models=[settings.hf_model_fast or settings.llm_model], temperature=0.7
        )
    except ConfigError:
        return None
