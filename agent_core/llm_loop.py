"""Where an LLM call's HTTP request runs: on the calling thread, on that thread's own HTTP
client (kept for its next calls, with its open connection), under a wall-clock deadline.

An HTTP client's timeouts are per read: a server trickling its reply a byte at a time never
trips them. Each request is therefore also watched by its LLM client's deadline thread
(`agent_core.deadlines.Deadlines`): at the deadline it shuts down the socket the calling
thread is blocked on, the read returns at once, the request ends as timed out, and the
thread's client is dropped (its connection is the one cut). Nothing of the request runs on
afterwards; no thread is started per call.

Synchronous on purpose: the same request through httpx's async client, on a per-thread event
loop, cost about 0.6 ms more CPU per call (anyio cancel scopes around every read and write,
a task, the loop's select), a fifth of a worker's CPU per LLM call at concurrency 32.
`run_coroutine` remains for the odd coroutine (asking a server which models it serves).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import httpx2

from agent_core.deadlines import Deadlines, Watch

T = TypeVar("T")


class _ThreadClient:
    """A thread's HTTP client: one connection at most, whose socket is known (httpcore's
    connect trace) so that the deadline thread can cut the request in flight."""

    def __init__(self, client: httpx2.Client) -> None:
        self.client = client
        self._stream: Any = None
        # Its connection closed when the thread (or the ThreadClients) is gone.
        weakref.finalize(self, self.client.close)

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            self._stream = info.get("return_value")

    def cut(self) -> None:
        """Shut the connection's socket down: a read blocked on it returns at once."""
        stream = self._stream
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)


class ThreadClients:
    """Per thread, one HTTP client made by `make_client` (which must allow one connection:
    that connection is the one cut at a deadline), posting requests under `deadlines`. The
    threads' clients share one TLS context: building one loads the CA bundle, some 25 ms of
    CPU, which 32 threads starting their first runs at once used to pay each."""

    def __init__(
        self, make_client: Callable[[ssl.SSLContext], httpx2.Client], deadlines: Deadlines
    ) -> None:
        self._make_client = make_client
        self._deadlines = deadlines
        self._local = threading.local()
        self._tls: ssl.SSLContext | None = None
        self._tls_lock = threading.Lock()

    def _new_client(self) -> _ThreadClient:
        with self._tls_lock:
            if self._tls is None:
                self._tls = httpx2.create_ssl_context()
            tls = self._tls
        return _ThreadClient(self._make_client(tls))

    def post(
        self, url: str, *, content: bytes, headers: Mapping[str, str], deadline: float
    ) -> httpx2.Response:
        """The response to a POST, read whole by `deadline` (time.monotonic()): TimeoutError
        when a read outlives it or it passes; httpx2's other errors as they come."""
        held: _ThreadClient | None = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = self._new_client()
        watch = self._deadlines.watch(deadline, held.cut)
        try:
            response = held.client.post(
                url,
                content=content,
                headers=headers,
                timeout=max(0.01, deadline - time.monotonic()),
                extensions={"trace": held.trace},
            )
        except httpx2.TransportError as exc:
            in_time = self._end(held, watch)
            if not in_time or isinstance(exc, httpx2.TimeoutException):
                raise TimeoutError(f"no answer before the deadline ({exc})") from exc
            raise
        except BaseException:
            self._end(held, watch)
            raise
        self._end(held, watch)  # cut as it came in whole: the reply stands
        return response

    def _end(self, held: _ThreadClient, watch: Watch) -> bool:
        """Stop watching; when the deadline fired, drop the thread's client (its connection
        is cut or about to be) and return False."""
        if self._deadlines.release(watch):
            return True
        self._local.held = None
        with contextlib.suppress(Exception):
            held.client.close()
        return False


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` to its end on a private event loop: in this thread, or, when this
    thread already runs a loop, in a helper thread joined at once. The coroutine bounds its
    own time; when it returns, nothing it started is still running."""
    if not _loop_running():
        return _on_new_loop(coroutine)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = _on_new_loop(coroutine)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            box["error"] = exc

    helper = threading.Thread(target=target, name="llm-call", daemon=True)
    helper.start()
    helper.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _on_new_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        try:
            _cancel_pending(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            # Unlike asyncio.run, never wait for the loop's executor (a name lookup stuck in
            # it must not hold the caller past the deadline): close() shuts it down unwaited.
            loop.close()


def _cancel_pending(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel and reap whatever a finished call left scheduled on `loop`."""
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
