"""A real OpenAI-compatible chat-completions server on 127.0.0.1 that replays a script.

The client under test is the real huggingface_hub client, speaking HTTP to it. Besides
replies and errors, the script can trickle a reply a few bytes at a time (headers included,
or headers at once and then a slow body), answer 429/503 with a Retry-After, send any JSON
document as the reply, and list models on GET /v1/models.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANY_MODEL = "*"


@dataclass
class Action:
    """One scripted answer: a reply text, or an HTTP error, after an optional delay."""

    content: str | Callable[[dict[str, Any]], str] | None = None
    status: int = 200
    delay_s: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    document: Any = None  # sent as the whole reply body instead of a chat completion
    trickle_s: float = 0.0  # seconds between chunks of `trickle_bytes` bytes
    trickle_bytes: int = 1
    headers_first: bool = False  # trickle only the body, the headers going out at once
    usage: dict[str, Any] | None = None  # more fields of the usage object (token details)
    echo_credentials: bool = False  # an error quoting the Authorization header it was sent


@dataclass
class ScriptedLLMServer:
    latency_s: float = 0.0  # added to every reply, like a real model's thinking time
    reject_json_mode: bool = False
    # Answers when the script is empty: given the request body, returns the reply text.
    responder: Callable[[dict[str, Any]], str] | None = None
    responder_delay_s: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    # GET /v1/models: the ids listed, or a whole document / an HTTP status instead.
    models: list[str] = field(default_factory=list)
    models_document: Any = None
    models_status: int = 200
    models_delay_s: float = 0.0
    models_requests: int = 0
    # The client's port of each chat completion request: a port seen again is a kept connection.
    peer_ports: list[int] = field(default_factory=list)
    # When a client went away in the middle of a reply: time.monotonic() of each.
    disconnects: list[float] = field(default_factory=list)
    _script: dict[str, deque[Action]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # scripting ---------------------------------------------------------------------------------

    def reply(
        self,
        content: str | Callable[[dict[str, Any]], str],
        *,
        model: str = ANY_MODEL,
        delay_s: float = 0.0,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        usage: dict[str, Any] | None = None,
    ) -> ScriptedLLMServer:
        return self._add(
            model,
            Action(
                content=content,
                delay_s=delay_s,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                usage=usage,
            ),
        )

    def step(self, thought: str, tool: str, **args: Any) -> ScriptedLLMServer:
        return self.reply(
            json.dumps(
                {"thought": thought, "tool": tool, "args": args, "done": False, "summary": None}
            )
        )

    def done(self, summary: str, thought: str = "The objective is achieved.") -> ScriptedLLMServer:
        return self.reply(
            json.dumps(
                {"thought": thought, "tool": None, "args": None, "done": True, "summary": summary}
            )
        )

    def fail(
        self, status: int = 500, *, model: str = ANY_MODEL, echo_credentials: bool = False
    ) -> ScriptedLLMServer:
        return self._add(model, Action(status=status, echo_credentials=echo_credentials))

    def hang(self, seconds: float, *, model: str = ANY_MODEL) -> ScriptedLLMServer:
        return self._add(model, Action(content="{}", delay_s=seconds))

    def limit(
        self, status: int = 429, *, retry_after: str | None = None, model: str = ANY_MODEL
    ) -> ScriptedLLMServer:
        """A rate limit (429) or an overload (503), with a Retry-After header if given."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return self._add(model, Action(status=status, headers=headers))

    def trickle(
        self,
        content: str,
        *,
        every_s: float,
        chunk_bytes: int = 1,
        headers_first: bool = False,
        model: str = ANY_MODEL,
    ) -> ScriptedLLMServer:
        """A reply sent `chunk_bytes` at a time, one chunk every `every_s` seconds: quick
        enough that no read waits long, slow enough that the whole takes minutes."""
        return self._add(
            model,
            Action(
                content=content,
                trickle_s=every_s,
                trickle_bytes=chunk_bytes,
                headers_first=headers_first,
            ),
        )

    def raw(self, document: Any, *, model: str = ANY_MODEL) -> ScriptedLLMServer:
        """Any JSON document as the reply body (HTTP 200), whatever its shape."""
        return self._add(model, Action(document=document))

    def _add(self, model: str, action: Action) -> ScriptedLLMServer:
        with self._lock:
            self._script.setdefault(model, deque()).append(action)
        return self

    def _next(self, model: str) -> Action | None:
        with self._lock:
            for key in (model, ANY_MODEL):
                queue = self._script.get(key)
                if queue:
                    return queue.popleft()
        return None

    def requests_for(self, model: str) -> list[dict[str, Any]]:
        return [request for request in self.requests if request.get("model") == model]

    # serving -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> ScriptedLLMServer:
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms stall

            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                if not self.path.rstrip("/").endswith("/models"):
                    self._send(404, {"error": f"no route {self.path}"})
                    return
                with scripted._lock:
                    scripted.models_requests += 1
                time.sleep(scripted.models_delay_s)
                if scripted.models_status != 200:
                    self._send(scripted.models_status, {"error": "scripted failure"})
                    return
                document = scripted.models_document
                if document is None:
                    document = {
                        "object": "list",
                        "data": [
                            {"id": name, "object": "model", "owned_by": "test"}
                            for name in scripted.models
                        ],
                    }
                self._send(200, document)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": f"no route {self.path}"})
                    return
                with scripted._lock:
                    scripted.requests.append(body)
                    scripted.peer_ports.append(self.client_address[1])
                if scripted.reject_json_mode and body.get("response_format"):
                    self._send(400, {"error": "response_format is not supported"})
                    return
                action = scripted._next(str(body.get("model")))
                if action is None and scripted.responder is not None:
                    action = Action(content=scripted.responder, delay_s=scripted.responder_delay_s)
                if action is None:
                    self._send(500, {"error": "the script has no more replies"})
                    return
                time.sleep(scripted.latency_s + action.delay_s)
                if action.status != 200:
                    error = f"scripted failure {action.status}"
                    if action.echo_credentials:
                        error = f"invalid credentials: {self.headers.get('Authorization')}"
                    self._send(action.status, {"error": error}, headers=action.headers)
                    return
                if action.document is not None:
                    self._send(200, action.document)
                    return
                content = action.content(body) if callable(action.content) else action.content
                prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{len(scripted.requests)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {
                            "prompt_tokens": action.prompt_tokens or prompt // 4,
                            "completion_tokens": action.completion_tokens
                            or len(content or "") // 4,
                            "total_tokens": 0,
                            **(action.usage or {}),
                        },
                    },
                    action=action,
                )

            def _send(
                self,
                status: int,
                document: Any,
                *,
                headers: dict[str, str] | None = None,
                action: Action | None = None,
            ) -> None:
                payload = json.dumps(document).encode()
                head = (
                    f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}\r\n"
                    "Content-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\n"
                    + "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
                    + "\r\n"
                ).encode()
                try:
                    if action is None or not action.trickle_s:
                        self.wfile.write(head + payload)
                        return
                    slow = payload if action.headers_first else head + payload
                    if action.headers_first:
                        self.wfile.write(head)
                    step = action.trickle_bytes
                    for start in range(0, len(slow), step):
                        self.wfile.write(slow[start : start + step])
                        self.wfile.flush()
                        time.sleep(action.trickle_s)
                except (BrokenPipeError, ConnectionResetError):
                    # the client gave up waiting (a timeout under test)
                    with scripted._lock:
                        scripted.disconnects.append(time.monotonic())

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a hung scripted reply must not hold up the test
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
