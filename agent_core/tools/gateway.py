"""Running one tool call: validate its arguments, bound its time, retry what is safe to retry.

Errors come back as results the model can act on ("table 'x' is not available; you may use:
app_leads"), never as exceptions that end the run.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from agent_core.deadlines import Deadlines
from agent_core.models import ToolCallStatus
from agent_core.render import describe_validation_error, without_secrets
from agent_core.tools.registry import (
    Tool,
    ToolContext,
    ToolError,
    ToolOutcomeUnknown,
    ToolTransientError,
)

RETRY_DELAYS_S = (0.2, 0.6)  # two retries, for tools without side effects only
_TRANSIENT = (ToolTransientError, ConnectionError, TimeoutError)


@dataclass(frozen=True)
class ToolResult:
    status: ToolCallStatus
    result: Any
    error: str | None
    duration_ms: int
    attempts: int
    timed_out: bool = False
    # Tokens the call spent on a language model (ToolContext.spent_tokens), every attempt's.
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def without_secrets(self, secrets: Sequence[str]) -> ToolResult:
        """The same outcome with each of `secrets` hidden in its error (and in the result
        that carries it)."""
        error = without_secrets(self.error or "", secrets)
        if error == self.error:
            return self
        result = self.result
        if isinstance(result, dict) and isinstance(result.get("error"), str):
            result = {**result, "error": without_secrets(result["error"], secrets)}
        return dataclasses.replace(self, error=error, result=result)

    def with_result(self, result: Any) -> ToolResult:
        """The same outcome with `result` (as stored): cheaper than dataclasses.replace."""
        return ToolResult(
            self.status,
            result,
            self.error,
            self.duration_ms,
            self.attempts,
            self.timed_out,
            self.prompt_tokens,
            self.completion_tokens,
        )


def validate_args(tool: Tool, args: dict[str, Any] | None) -> BaseModel | str:
    """The parsed arguments, or a sentence telling the model what is wrong with them."""
    try:
        return tool.args_model.model_validate(args or {})
    except ValidationError as exc:
        return f"invalid arguments for {tool.name}: {describe_validation_error(exc)}"


def failed(error: str, *, duration_ms: int = 0, attempts: int = 0) -> ToolResult:
    return ToolResult(
        status=ToolCallStatus.FAILED,
        result={"error": error},
        error=error,
        duration_ms=duration_ms,
        attempts=attempts,
    )


def unknown(error: str, *, duration_ms: int, attempts: int, timed_out: bool = False) -> ToolResult:
    """A call whose side effect may or may not have happened: never to be repeated."""
    return ToolResult(
        status=ToolCallStatus.UNKNOWN,
        result={"error": error, "outcome": "unknown"},
        error=error,
        duration_ms=duration_ms,
        attempts=attempts,
        timed_out=timed_out,
    )


class ToolGateway:
    """Runs tool handlers on a pool of daemon threads and stops waiting at the deadline; a
    read-only tool that declares itself `interruptible` runs on the caller's thread instead,
    and a watchdog cancels it at the deadline (no thread hand-off: the cheaper way).

    Threads are reused (starting one per call would cost more than a whole step's
    bookkeeping) and created when none is idle, so a handler that ignores its cancellation
    occupies one thread without starving the others. They are daemon threads: a stuck
    handler never keeps the process from exiting.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], dict[str, Any], threading.Lock]] = (
            queue.SimpleQueue()
        )
        self._idle = 0
        self._lock = threading.Lock()
        self._watchdog = Deadlines(name="tool-watchdog")

    def execute(self, tool: Tool, args: BaseModel, *, run_id: str, timeout_s: float) -> ToolResult:
        """Run the tool, retrying transient failures of tools without side effects.

        At the deadline the tool's cancel callbacks run (a data tool interrupts its query), so
        the work stops as well as the wait. Transient failures of tools without side effects
        are retried with backoff while time remains; a side effect is never attempted twice.
        A handler raising ToolOutcomeUnknown (its request left and no answer came back) gives
        the status `unknown`, as a call interrupted by a crash. The tokens the handler spent
        on a language model, over every attempt, come with the result.
        """
        contexts: list[ToolContext] = []
        result = self._attempts(tool, args, run_id, timeout_s, contexts)
        prompt = sum(context.prompt_tokens for context in contexts)
        completion = sum(context.completion_tokens for context in contexts)
        if prompt or completion:
            result = dataclasses.replace(result, prompt_tokens=prompt, completion_tokens=completion)
        return result

    def _attempts(
        self,
        tool: Tool,
        args: BaseModel,
        run_id: str,
        timeout_s: float,
        contexts: list[ToolContext],
    ) -> ToolResult:
        """The tool's attempts, each with its context (appended to `contexts`)."""
        started = time.monotonic()
        deadline = started + timeout_s
        attempts = 0
        while True:
            attempts += 1
            contexts.append(ToolContext(run_id=run_id, deadline=deadline))
            outcome, value = self._attempt(tool, args, contexts[-1])
            elapsed_ms = int((time.monotonic() - started) * 1000)
            if outcome == "ok":
                return ToolResult(
                    status=ToolCallStatus.SUCCEEDED,
                    result=value,
                    error=None,
                    duration_ms=elapsed_ms,
                    attempts=attempts,
                )
            if outcome == "timeout" and tool.side_effects:
                # Asked to stop, a handler may have done its work already, or do it still
                # (a message handed over, a reply late): never "failed", which invites a retry.
                error = (
                    f"{tool.name} did not finish within {timeout_s:g} s: whether it took effect "
                    "is unknown (it may still complete), so it must not be repeated"
                )
                return unknown(error, duration_ms=elapsed_ms, attempts=attempts, timed_out=True)
            if outcome == "timeout":
                error = f"{tool.name} timed out after {timeout_s:g} s and was stopped"
                return ToolResult(
                    status=ToolCallStatus.FAILED,
                    result={"error": error},
                    error=error,
                    duration_ms=elapsed_ms,
                    attempts=attempts,
                    timed_out=True,
                )
            if isinstance(value, ToolOutcomeUnknown):
                return unknown(str(value), duration_ms=elapsed_ms, attempts=attempts)
            retryable = not tool.side_effects and isinstance(value, _TRANSIENT)
            if retryable and attempts <= len(RETRY_DELAYS_S):
                delay = RETRY_DELAYS_S[attempts - 1]
                if time.monotonic() + delay < deadline:
                    time.sleep(delay)
                    continue
            return failed(_describe(tool, value), duration_ms=elapsed_ms, attempts=attempts)

    def _attempt(self, tool: Tool, args: BaseModel, context: ToolContext) -> tuple[str, Any]:
        deadline = context.deadline
        if tool.interruptible and not tool.side_effects:
            return self._attempt_inline(tool, args, context)
        box: dict[str, Any] = {}
        finished = threading.Lock()  # held until the handler is done: the cheapest signal
        finished.acquire()
        self._submit(lambda: tool.handler(args, context), box, finished)
        if not finished.acquire(timeout=max(0.0, deadline - time.monotonic())):
            context.cancel()
            return "timeout", None
        if "error" in box:
            return "error", box["error"]
        return "ok", box.get("value")

    def _attempt_inline(self, tool: Tool, args: BaseModel, context: ToolContext) -> tuple[str, Any]:
        """Run the handler here; past the deadline the watchdog cancels it, which an
        interruptible handler obeys, and the call counts as timed out whatever it returned."""
        watch = self._watchdog.watch(context.deadline, context.cancel)
        try:
            outcome: tuple[str, Any] = ("ok", tool.handler(args, context))
        except Exception as exc:  # noqa: BLE001 - reported as the tool's failure
            outcome = ("error", exc)
        finally:
            in_time = self._watchdog.release(watch)
        return outcome if in_time else ("timeout", None)

    def _submit(
        self, work: Callable[[], Any], box: dict[str, Any], finished: threading.Lock
    ) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                threading.Thread(target=self._serve, name="tool", daemon=True).start()
        self._jobs.put((work, box, finished))

    def _serve(self) -> None:
        while True:
            work, box, finished = self._jobs.get()
            try:
                box["value"] = work()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                box["error"] = exc
            finally:
                finished.release()
            with self._lock:
                self._idle += 1


def _describe(tool: Tool, error: BaseException) -> str:
    if isinstance(error, ToolError):
        return str(error)
    text = " ".join(str(error).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return (
        f"{tool.name} failed: {type(error).__name__}: {text}"
        if text
        else (f"{tool.name} failed: {type(error).__name__}")
    )
