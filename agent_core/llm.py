"""LLM clients: Hugging Face Inference Providers or any OpenAI-compatible server, through
huggingface_hub, with a fallback chain of models.

A chat request is prepared by huggingface_hub's provider helper (the URL, headers and body
shape AsyncInferenceClient.chat_completion would send), once per model and request shape,
and posted with httpx2, huggingface_hub's HTTP client, on the calling thread; the reply is
read as plain JSON. The client's own per-call path (a token lookup on disk, headers
rebuilt, the reply parsed into dataclasses) cost about 0.25 ms of CPU per call, a fifth of
the call's, for the same request on the wire.

The orchestrator only sees `LLMClient.complete(messages, ...)`; which model answered, its
token counts and latency come back in the reply so that the step records them.

One call has a wall-clock deadline, however the server sends its bytes. The HTTP client's
own timeout is per read, so a server trickling its reply a byte at a time would never trip
it; each request is therefore watched until its deadline (agent_core/llm_loop.py: the
calling thread's own client, kept for its next calls), and at the deadline its connection is
shut down: the request ends there, nothing of it runs on afterwards, and no thread is left
behind.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx2
from huggingface_hub import get_async_session
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.inference._providers import get_provider_helper
from huggingface_hub.utils import hf_raise_for_status

from agent_core.config import Settings, redact_url
from agent_core.deadlines import Deadlines
from agent_core.errors import AgentRuntimeError, ConfigError
from agent_core.llm_loop import ThreadClients, run_coroutine
from agent_core.models import storable_text
from agent_core.render import redact_urls_in, without_secrets_of

Message = dict[str, str]

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 503})  # rate limited, overloaded: worth asking again
MAX_RETRIES = 4  # per model and call, after the first request
FIRST_BACKOFF_S = 0.5  # doubled at each retry when the server sends no Retry-After
MODELS_TIMEOUT_S = 5.0  # asking a server which models it serves
_MARGIN_S = 0.05  # less time than this left: do not start another request
MAX_MODEL_NAME_CHARS = 200  # a longer name a server gives for itself is not recorded
# A larger token count a server reports for one reply is taken as this: a hundred times the
# largest context window served, it stops any run on its token budget (at most 10**12), and
# fits the step's counters.
MAX_REPLY_TOKENS = 10**9


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
    """The call reached its deadline (`timeout_s`) without an answer: the chain had no more
    time, or every model of it timed out."""


class LLMClient(Protocol):
    def complete(
        self,
        messages: Sequence[Message],
        *,
        timeout_s: float,
        response_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> LLMReply:
        """The reply, within `timeout_s` seconds of wall-clock time. Raises LLMTimeout,
        LLMError, or ConfigError when the model to ask cannot be known."""
        ...


def estimate_tokens(text: str) -> int:
    """About four characters per token: used only when a server reports no usage."""
    return max(1, len(text) // 4)


def _short(error: BaseException) -> str:
    """The error in one line, any URL in it without its secrets (the text is stored in the
    run's error and the ledger, and shown)."""
    text = redact_urls_in(" ".join(str(error).split())) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _describe(error: BaseException) -> str:
    """One line on why a request failed; a refused connection says so in those words."""
    cause: BaseException | None = error
    for _ in range(10):  # the chain from httpx down to the socket is a few links long
        if cause is None:
            break
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    return _short(error)


class _GaveUp(Exception):
    """A rate-limited or overloaded model is given up for this call: no retry fits."""


@dataclass
class InferenceLLM:
    """Chat completion through huggingface_hub, trying `models` in order.

    An HTTP error, a timeout or a refused connection moves on to the next model; a 429 or 503
    is first asked again on the same model, after the server's Retry-After or a backoff, as
    long as the wait ends before the deadline (at most MAX_RETRIES times). A server that
    rejects `response_format` (JSON mode) is asked again without it, and not asked with it
    again: the reply is then parsed from text, with the same validation.

    With `use_served_model`, the first model is the one the server at `base_url` lists first
    on its /v1/models (asked once per process), followed by `models`.
    """

    models: Sequence[str]
    base_url: str | None = None
    token: str | None = field(default=None, repr=False)  # a secret: never in a repr
    temperature: float = 0.2
    max_tokens: int = 2048
    timeout_s: float = 60.0  # one model's longest wait, within the call's deadline
    use_served_model: bool = False
    _no_json_mode: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _clients: ThreadClients = field(init=False, repr=False, compare=False)
    _prepared: dict[tuple[str, int, int], _Request] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _encodings: dict[tuple[tuple[str, Any], ...], bytes] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self._clients = ThreadClients(_thread_http_client, Deadlines(name="llm-deadline"))

    def chain(self, *, timeout_s: float = MODELS_TIMEOUT_S) -> list[str]:
        """The models tried in order. ConfigError when the server must say which model it
        serves and does not."""
        if not (self.use_served_model and self.base_url):
            return list(self.models)
        served = served_model(self.base_url, self.token, timeout_s=timeout_s)
        return list(dict.fromkeys([served, *self.models]))

    def complete(
        self,
        messages: Sequence[Message],
        *,
        timeout_s: float,
        response_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> LLMReply:
        deadline = time.monotonic() + timeout_s
        models = self.chain(timeout_s=max(0.1, min(MODELS_TIMEOUT_S, timeout_s)))
        return self._complete(
            models,
            list(messages),
            deadline=deadline,
            response_schema=response_schema,
            max_tokens=max_tokens or self.max_tokens,
        )

    def _complete(
        self,
        models: Sequence[str],
        messages: list[Message],
        *,
        deadline: float,
        response_schema: dict[str, Any] | None,
        max_tokens: int,
    ) -> LLMReply:
        failures: list[str] = []
        timeouts = 0
        for model in models:
            started = time.monotonic()
            if deadline - started <= _MARGIN_S:
                raise LLMTimeout(_out_of_time(failures))
            model_deadline = min(started + self.timeout_s, deadline)
            try:
                return self._ask(
                    model,
                    messages,
                    deadline=model_deadline,
                    response_schema=response_schema,
                    max_tokens=max_tokens,
                    failures=failures,
                )
            except TimeoutError:  # the deadline, or the HTTP client's per-read timeout
                timeouts += 1
                failures.append(f"{model}: timed out after {time.monotonic() - started:.1f} s")
            except Exception as exc:  # noqa: BLE001 - any failure of one model means: next one
                failure = f"{model}: {_describe(exc)}"
                failures.append(without_secrets_of(self.base_url, failure, also=[self.token]))
        if failures and (timeouts == len(failures) or time.monotonic() >= deadline - _MARGIN_S):
            raise LLMTimeout(_out_of_time(failures))
        raise LLMError("no model answered: " + "; ".join(failures))

    def _ask(
        self,
        model: str,
        messages: list[Message],
        *,
        deadline: float,
        response_schema: dict[str, Any] | None,
        max_tokens: int,
        failures: list[str],
    ) -> LLMReply:
        json_mode = response_schema is not None and model not in self._no_json_mode
        encoded = [self._encoded(message) for message in messages]
        started = time.monotonic()
        retries = 0
        while True:
            request = self._request(model, max_tokens, response_schema if json_mode else None)
            try:
                output = request.send(self._clients, encoded, deadline=deadline)
                break
            except HfHubHTTPError as exc:
                status = exc.response.status_code if exc.response is not None else None
                if json_mode and status in (400, 422):
                    with self._lock:
                        self._no_json_mode.add(model)
                    json_mode = False
                    continue
                if status not in RETRY_STATUSES:
                    raise
                wait = _retry_wait(exc, retries)
                left = deadline - time.monotonic()
                if retries >= MAX_RETRIES:
                    raise _GaveUp(
                        f"{_short(exc)} (still {status} after {retries} retries)"
                    ) from exc
                if wait >= left - _MARGIN_S:
                    raise _GaveUp(
                        f"{_short(exc)} (a retry after {wait:.1f} s would end past the deadline, "
                        f"{max(0.0, left):.1f} s away)"
                    ) from exc
                retries += 1
                time.sleep(wait)  # ends before the deadline (checked above)
        latency_ms = int((time.monotonic() - started) * 1000)
        content = _content_of(output)
        usage = output.get("usage")
        # Estimated only when the server reports no usable count (0 is never a count).
        prompt_tokens = _count(_field(usage, "prompt_tokens"), 0) or estimate_tokens(
            "".join(str(m.get("content", "")) for m in messages)
        )
        return LLMReply(
            content=content,
            model=_model_name(output.get("model"), model),
            prompt_tokens=prompt_tokens,
            completion_tokens=_count(_field(usage, "completion_tokens"), estimate_tokens(content)),
            latency_ms=latency_ms,
            failures=tuple(failures),
            usage=dict(usage) if isinstance(usage, dict) else None,
        )

    def _encoded(self, message: Message) -> bytes:
        """A message's JSON, kept by its content: a run sends its system prompt (some 10 KB)
        and every earlier turn again at each step, and encoding them was a tenth of a
        call's CPU. A message holding a list (content parts) is encoded each time."""
        try:
            key = tuple(message.items())
            known = self._encodings.get(key)
        except TypeError:  # an unhashable value
            return _json_bytes(message)
        if known is None:
            known = _json_bytes(message)
            if len(self._encodings) >= _MAX_ENCODINGS:
                self._encodings.clear()
            self._encodings[key] = known
        return known

    def _request(self, model: str, max_tokens: int, schema: dict[str, Any] | None) -> _Request:
        """The request for `model`, as huggingface_hub prepares it, kept for the next calls
        of the same shape. A schema is known by identity (the loop sends one constant
        schema); the request keeps it, so that its id is never another's meanwhile."""
        key = (model, max_tokens, id(schema))
        request = self._prepared.get(key)
        if request is None or request.schema is not schema:
            request = _Request.prepare(
                base_url=self.base_url,
                token=self.token,
                model=model,
                schema=schema,
                parameters={  # in chat_completion's order: the body's keys keep it
                    "model": model,
                    "max_tokens": max_tokens,
                    "response_format": _json_schema_format(schema),
                    "temperature": self.temperature,
                    "stream": False,
                },
            )
            with self._lock:
                if len(self._prepared) >= _MAX_PREPARED:
                    self._prepared.clear()
                self._prepared[key] = request
        return request


_MAX_PREPARED = 64  # request shapes kept per client (models x token limits x schemas)
_MAX_ENCODINGS = 512  # messages' JSON kept per client: the turns of the runs under way


@dataclass(frozen=True)
class _Request:
    """A chat completion request as AsyncInferenceClient.chat_completion sends it: the URL,
    headers and body huggingface_hub's provider helper prepares (a `base_url` is the
    OpenAI-compatible server's; without one, Inference Providers' router), with the
    messages put in per call."""

    url: str
    headers: dict[str, Any] = field(repr=False)  # the token's Authorization header
    head: bytes  # the body's JSON before the messages' array items...
    tail: bytes  # ... and after them
    schema: dict[str, Any] | None  # the response schema it was prepared for

    @classmethod
    def prepare(
        cls,
        *,
        base_url: str | None,
        token: str | None,
        model: str,
        schema: dict[str, Any] | None,
        parameters: dict[str, Any],
    ) -> _Request:
        target = base_url or model
        helper = get_provider_helper(None if base_url else "auto", "conversational", target)
        prepared = helper.prepare_request(
            inputs=[], parameters=parameters, headers={}, model=target, api_key=token
        )
        assert isinstance(prepared.json, dict)
        assert "messages" in prepared.json
        # The body httpx would encode from `json=`, in the provider's key order, split around
        # the items of the messages' array (json.dumps of a dict is its items joined).
        items = [
            b"[" if key == "messages" else _json_bytes(key) + b":" + _json_bytes(value)
            for key, value in prepared.json.items()
        ]
        cut = items.index(b"[")
        head = b"{" + b",".join([*items[:cut], _json_bytes("messages") + b":["])
        tail = b"]" + b"".join(b"," + item for item in items[cut + 1 :]) + b"}"
        headers = {**prepared.headers, "content-type": "application/json"}
        return cls(url=prepared.url, headers=headers, head=head, tail=tail, schema=schema)

    def send(
        self, clients: ThreadClients, messages: list[bytes], *, deadline: float
    ) -> dict[str, Any]:
        """The server's reply to `messages` (each one's JSON) as a JSON object;
        HfHubHTTPError for an HTTP error status, TimeoutError at the deadline, ValueError
        for a reply that is not a JSON object."""
        body = self.head + b",".join(messages) + self.tail
        response = clients.post(self.url, content=body, headers=self.headers, deadline=deadline)
        hf_raise_for_status(response)
        document = json.loads(response.content)
        if not isinstance(document, dict):
            raise ValueError(f"the reply is not a JSON object but {type(document).__name__}")
        return document


def _thread_http_client(tls: ssl.SSLContext) -> httpx2.Client:
    """A thread's HTTP client, as huggingface_hub builds its own (redirects followed, no
    default timeout), holding one connection: the one cut at a deadline."""
    return httpx2.Client(
        verify=tls,
        follow_redirects=True,
        timeout=None,
        limits=httpx2.Limits(max_connections=1, max_keepalive_connections=1),
    )


def _json_bytes(value: Any) -> bytes:
    """`value` as httpx encodes a `json=` body: compact, UTF-8, no NaN."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _field(document: Any, name: str) -> Any:
    """`document[name]` when `document` is a JSON object, else None."""
    return document.get(name) if isinstance(document, dict) else None


def _out_of_time(failures: Sequence[str]) -> str:
    return "no answer before the deadline" + (f" ({'; '.join(failures)})" if failures else "")


def _retry_wait(error: HfHubHTTPError, retries: int) -> float:
    """How long to wait before asking again: the server's Retry-After (seconds or an HTTP
    date; retry-after-ms too), else an exponential backoff with a little jitter."""
    headers = error.response.headers if error.response is not None else {}
    asked = retry_after_s(headers.get("retry-after-ms"), milliseconds=True)
    if asked is None:
        asked = retry_after_s(headers.get("retry-after"))
    if asked is not None:
        return asked
    return FIRST_BACKOFF_S * 2**retries * random.uniform(1.0, 1.25)


def retry_after_s(value: str | None, *, milliseconds: bool = False) -> float | None:
    """A Retry-After header in seconds from now (0 for a date past), or None if absent or
    unreadable."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text) / (1000 if milliseconds else 1)
    except ValueError:
        if milliseconds:
            return None
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _content_of(output: Any) -> str:
    """The reply's text, whatever shape the server gave it: a string; a list of content
    parts (their text joined); any other JSON value as JSON; nothing as ''. NUL characters,
    which no database column takes, are dropped."""
    choices = _field(output, "choices")
    if not choices or not isinstance(choices, list):
        return ""
    content = _field(_field(choices[0], "message"), "content")
    if content is None:
        return ""
    if isinstance(content, list) and all(isinstance(part, dict) for part in content):
        texts = [part.get("text") for part in content]
        if all(isinstance(text, str) for text in texts):
            content = "".join(texts)  # type: ignore[arg-type]
    if not isinstance(content, str):
        try:
            content = json.dumps(content, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            content = str(content)
    return storable_text(content)


def _model_name(served: Any, asked: str) -> str:
    """The model the server says answered, when it says so sensibly; else the one asked;
    as a step records it (storable, at most MAX_MODEL_NAME_CHARS)."""
    if isinstance(served, str) and served.strip() and len(served) <= MAX_MODEL_NAME_CHARS:
        return storable_text(served)
    return storable_text(asked)[:MAX_MODEL_NAME_CHARS]


def _count(value: Any, estimate: int) -> int:
    """A token count the server reported (at most MAX_REPLY_TOKENS), or the estimate when
    it reported none usable."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return estimate
    if not math.isfinite(value) or value <= 0:
        return estimate
    return min(int(value), MAX_REPLY_TOKENS)


def _json_schema_format(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    if schema is None:
        return None
    return {"type": "json_schema", "json_schema": {"name": "agent_step", "schema": schema}}


# --- which model a server serves -----------------------------------------------------------------

_served: dict[str, str] = {}
_served_failures: dict[str, tuple[float, str]] = {}
_served_lock = threading.Lock()
_FAILURE_MEMORY_S = 15.0  # callers arriving meanwhile get the same answer, not another wait


def served_model(base_url: str, token: str | None, *, timeout_s: float = MODELS_TIMEOUT_S) -> str:
    """The first model the OpenAI-compatible server at `base_url` lists on /v1/models, asked
    once per process (and logged); ConfigError naming AGENT_AI_MODEL when it cannot say."""
    with _served_lock:
        if base_url in _served:
            return _served[base_url]
        remembered = _served_failures.get(base_url)
        if remembered is not None and time.monotonic() < remembered[0]:
            raise ConfigError(remembered[1])
        try:
            models = run_coroutine(_list_models(base_url, token, timeout_s))
            failure = "it lists no model"
        except TimeoutError:
            models, failure = [], f"no answer within {timeout_s:g} s"
        except Exception as exc:  # noqa: BLE001 - any failure is told as one sentence
            models, failure = [], without_secrets_of(base_url, _describe(exc), also=[token])
        if not models:
            where = redact_url(base_url)
            message = (
                f"AGENT_AI_MODEL is not set and the server at {where} did not say which model "
                f"it serves (/v1/models: {failure}): set AGENT_AI_MODEL to the model to use"
            )
            _served_failures[base_url] = (time.monotonic() + _FAILURE_MEMORY_S, message)
            raise ConfigError(message)
        _served[base_url] = models[0]
        _served_failures.pop(base_url, None)
    log.info(
        "AGENT_AI_MODEL is not set: using %s, the first of the %d model(s) the server at %s serves",
        models[0],
        len(models),
        redact_url(base_url),
    )
    return models[0]


def forget_served_models() -> None:
    """Forget what servers said they serve (a test starting servers on reused ports)."""
    with _served_lock:
        _served.clear()
        _served_failures.clear()


def models_url(base_url: str) -> str:
    """/v1/models beside the chat completions URL huggingface_hub derives from `base_url`."""
    head, _, query = base_url.partition("?")
    path = head.rstrip("/").removesuffix("/chat/completions")
    if not path.endswith("/v1"):
        path += "/v1"
    return f"{path}/models" + (f"?{query}" if query else "")


async def _list_models(base_url: str, token: str | None, timeout_s: float) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with asyncio.timeout(timeout_s), get_async_session() as session:
        response = await session.get(models_url(base_url), headers=headers, timeout=timeout_s)
        if response.status_code != 200:
            raise LLMError(f"HTTP {response.status_code}")
        try:
            document = response.json()
        except ValueError:
            raise LLMError("the answer is not JSON") from None
    return _model_ids(document)


def _model_ids(document: Any) -> list[str]:
    """The model ids of a /v1/models answer: OpenAI's {"data": [{"id": ...}]}, tolerating
    {"models": [...]} and entries named by "name" or "model"."""
    if not isinstance(document, dict):
        return []
    entries = document.get("data")
    if not isinstance(entries, list):
        entries = document.get("models")
    if not isinstance(entries, list):
        return []
    found: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            name: Any = entry
        elif isinstance(entry, dict):
            name = entry.get("id") or entry.get("name") or entry.get("model")
        else:
            continue
        # A name no database can store is no name to ask for (nor to record).
        if (
            isinstance(name, str)
            and 0 < len(name.strip()) <= MAX_MODEL_NAME_CHARS
            and storable_text(name) == name
        ):
            found.append(name.strip())
    return list(dict.fromkeys(found))


# --- the scripted client ------------------------------------------------------------------------


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


# --- from the settings ------------------------------------------------------------------------


def asks_server_for_model(settings: Settings) -> bool:
    """True when no model is named and an OpenAI-compatible server is: the model is then
    the one that server serves, never the Hugging Face default name."""
    return bool(settings.agent_llm_base_url) and not settings.llm_model_named


def planning_model(settings: Settings) -> str:
    """The model the agent plans with: the one the settings name, else (AGENT_LLM_BASE_URL
    set, no model named) the one the server serves. ConfigError when it cannot say."""
    if not asks_server_for_model(settings):
        return settings.llm_model
    assert settings.agent_llm_base_url is not None
    return served_model(settings.agent_llm_base_url, _token(settings))


def _token(settings: Settings) -> str | None:
    return settings.hf_token.get_secret_value() if settings.hf_token else None


def build_llm(
    settings: Settings, *, models: Sequence[str] | None = None, temperature: float | None = None
) -> InferenceLLM:
    """The configured client, or ConfigError naming the variable to set. Without a named
    model, the server's own is asked for at the first call (never here: building is quick)."""
    if models is not None:
        return _build(settings, models, temperature=temperature, use_served_model=False)
    if asks_server_for_model(settings):
        return _build(
            settings,
            settings.agent_llm_fallback_models,
            temperature=temperature,
            use_served_model=True,
        )
    return _build(settings, settings.llm_models, temperature=temperature, use_served_model=False)


def build_content_llm(settings: Settings) -> InferenceLLM | None:
    """The client of generate_content: HF_MODEL_FAST (else the planning model) at the seed's
    temperature 0.7; None when no LLM is configured."""
    served = not settings.hf_model_fast and asks_server_for_model(settings)
    models = [] if served else [settings.hf_model_fast or settings.llm_model]
    try:
        return _build(settings, models, temperature=0.7, use_served_model=served)
    except ConfigError:
        return None


def _build(
    settings: Settings,
    models: Sequence[str],
    *,
    temperature: float | None,
    use_served_model: bool,
) -> InferenceLLM:
    token = _token(settings)
    if not settings.agent_llm_base_url and not token:
        raise ConfigError(NO_LLM_CONFIGURED)
    return InferenceLLM(
        models=list(dict.fromkeys(models)),
        base_url=settings.agent_llm_base_url,
        token=token,
        temperature=settings.agent_ai_temperature if temperature is None else temperature,
        max_tokens=settings.agent_ai_max_tokens,
        timeout_s=settings.agent_llm_timeout_s,
        use_served_model=use_served_model,
    )
