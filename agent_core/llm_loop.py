"""Where an LLM call's coroutine runs: on its thread's own event loop, kept for the next call.

A call builds nothing per call: the thread's loop, the huggingface_hub client built on it
(and that client's TLS context and open connections) serve every call the thread makes.
Building them per call cost about 30 ms of CPU (a TLS context loads the CA bundle), most
of a worker's CPU at concurrency 32. A thread that already runs an event loop cannot run
another: its call goes to a helper thread, on a loop and client made for it and closed after.

Each call bounds its own time (asyncio.timeout): when it returns, nothing it started is
still running, on a kept loop or a private one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")
C = TypeVar("C")


class ThreadLoops(Generic[C]):
    """Per thread, one event loop and one client made by `make_client` on first use. The
    client must be one that is used on a single event loop (httpx's async clients are)."""

    def __init__(self, make_client: Callable[[], C], close_client: Callable[[C], Any]) -> None:
        self._make_client = make_client
        self._close_client = close_client
        self._local = threading.local()

    def run(self, call: Callable[[C], Coroutine[Any, Any, T]]) -> T:
        """`call(client)` to its end, on this thread's loop and client; in a helper thread on
        a fresh pair when this thread already runs a loop."""
        if _loop_running():
            return run_coroutine(self._once(call))
        kept: _KeptLoop[C] | None = getattr(self._local, "kept", None)
        if kept is None:
            kept = _KeptLoop(self._make_client(), self._close_client)
            self._local.kept = kept
        return kept.run(call)

    async def _once(self, call: Callable[[C], Coroutine[Any, Any, T]]) -> T:
        client = self._make_client()
        try:
            return await call(client)
        finally:
            await self._close_client(client)


class _KeptLoop(Generic[C]):
    """A thread's loop and client. Closed (the client's connections first) when the thread
    ends, when its ThreadLoops is dropped, or at exit, whichever comes first."""

    def __init__(self, client: C, close_client: Callable[[C], Any]) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = client
        self._finalizer = weakref.finalize(self, _close_kept, self.loop, client, close_client)

    def run(self, call: Callable[[C], Coroutine[Any, Any, T]]) -> T:
        try:
            return self.loop.run_until_complete(call(self.client))
        finally:
            _cancel_pending(self.loop)


def _close_kept(loop: asyncio.AbstractEventLoop, client: Any, close_client: Callable) -> None:
    """Close a kept client (its connections) and its loop, from whichever thread drops them:
    a thread running another loop hands the closing to a helper thread. A loop still running
    (a call stuck at exit) is left for its sockets to close with their objects."""
    if loop.is_running() or loop.is_closed():
        return
    if _loop_running():
        threading.Thread(
            target=_close_kept, args=(loop, client, close_client), name="llm-close", daemon=True
        ).start()
        return
    with contextlib.suppress(Exception):  # best effort: a dropped loop has no caller to tell
        loop.run_until_complete(close_client(client))
        loop.run_until_complete(loop.shutdown_asyncgens())
    with contextlib.suppress(Exception):
        loop.close()


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
