"""What a tool is, and the registry of the tools the agent may be offered.

Each tool declares its name, a description written for the model, its risk, whether it has
side effects, a pydantic model of its arguments and a handler. Plugins add tools through the
`agent_core.tools` entry point group (see docs/tools.md); a plugin that cannot be loaded is
listed in `ToolRegistry.problems` (the runtime logs them), and the other tools load all the
same.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from agent_core.models import TOOL_NAME_PATTERN, RiskLevel

ENTRY_POINT_GROUP = "agent_core.tools"

# Seconds a tool may take, by risk (the seed's TIMEOUT_BY_RISK).
TIMEOUT_BY_RISK = {RiskLevel.LOW: 10.0, RiskLevel.MEDIUM: 30.0, RiskLevel.HIGH: 60.0}

# The seed's classification. A tool carrying one of these names is at least this risky,
# whatever it declares: a plugin cannot make `send_email` low risk.
SEED_RISK = {
    "delete_data": RiskLevel.HIGH,
    "send_email": RiskLevel.HIGH,
    "send_whatsapp": RiskLevel.HIGH,
    "publish_social": RiskLevel.HIGH,
    "modify_database": RiskLevel.HIGH,
    "create_data": RiskLevel.MEDIUM,
    "update_data": RiskLevel.MEDIUM,
    "generate_content": RiskLevel.MEDIUM,
    "upload_drive": RiskLevel.MEDIUM,
}


class ToolError(Exception):
    """A failure its message fully explains: the model reads it word for word. A plain
    ToolError is not retried (a tool that retried on its own and gave up raises one)."""


class ToolInputError(ToolError):
    """The arguments cannot be used; the message tells the model what to change."""


class ToolTransientError(ToolError):
    """A failure worth trying again (network, lock): retried for tools without side effects."""


class ToolOutcomeUnknown(ToolError):
    """A side effect may or may not have happened (the request left, no answer came back).
    The call is recorded with the status `unknown`, as one interrupted by a crash, and is never
    repeated; the message tells the model how to find out."""


class ToolContext:
    """Given to a handler: the time it has, and a way to be told it ran out."""

    def __init__(self, *, run_id: str, deadline: float) -> None:
        self.run_id = run_id
        self.deadline = deadline
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self._cancelled = False
        self._on_cancel: list[Callable[[], object]] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def spent_tokens(self, prompt_tokens: int, completion_tokens: int) -> None:
        """Tokens this call spent on a language model (generate_content's): they count
        for the run, against its token budget, as the agent's own do."""
        with self._lock:
            self.prompt_tokens += max(0, prompt_tokens)
            self.completion_tokens += max(0, completion_tokens)

    @property
    def cancelled(self) -> bool:
        """True once the time is up: a handler that loops should check it and stop."""
        return self._cancelled

    def on_cancel(self, callback: Callable[[], object]) -> None:
        """Register what stops the handler's work (interrupt a query, close a socket)."""
        with self._lock:
            already = self._cancelled
            if not already:
                self._on_cancel.append(callback)
        if already:
            callback()

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            callbacks, self._on_cancel = self._on_cancel, []
        for callback in callbacks:
            with contextlib.suppress(Exception):  # best effort: the wait is already over
                callback()


Handler = Callable[[Any, ToolContext], Any]
# Why a tool cannot run as configured, one sentence naming what to set; None when it can.
Readiness = Callable[[], str | None]


@functools.cache
def _json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Computing a JSON schema takes milliseconds, and every run's prompt lists them all."""
    schema = model.model_json_schema()
    schema.pop("title", None)
    return schema


@functools.cache
def _json_schema_text(model: type[BaseModel]) -> str:
    """The schema's JSON, written once: every run's system prompt lists every tool's (a copy
    and an encoding per tool and run were a few percent of a worker's CPU)."""
    return json.dumps(_json_schema(model), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    risk: RiskLevel
    side_effects: bool
    args_model: type[BaseModel]
    handler: Handler = field(repr=False)
    timeout_s: float | None = None
    # The handler stops promptly once its ToolContext is cancelled (its cancel callbacks
    # interrupt its work): a read-only tool that says so runs on the caller's thread under a
    # watchdog instead of being handed to a thread of its own (see gateway.py).
    interruptible: bool = False
    # Read from the settings only (no network, no database): see problem().
    readiness: Readiness | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not TOOL_NAME_PATTERN.match(self.name):
            raise ValueError(
                f"tool name {self.name!r} is not valid (lower-case letters, digits and _, "
                "starting with a letter, at most 64 characters)"
            )
        if not isinstance(self.description, str) or not self.description.strip():
            raise ValueError(f"tool {self.name!r} has no description")
        try:
            object.__setattr__(self, "risk", RiskLevel(self.risk))
        except ValueError:
            levels = ", ".join(level.value for level in RiskLevel)
            raise ValueError(
                f"tool {self.name!r} has risk {self.risk!r}; it must be one of {levels}"
            ) from None
        if not isinstance(self.side_effects, bool):
            raise ValueError(f"tool {self.name!r}: side_effects must be True or False")
        if not isinstance(self.interruptible, bool):
            raise ValueError(f"tool {self.name!r}: interruptible must be True or False")
        if not (isinstance(self.args_model, type) and issubclass(self.args_model, BaseModel)):
            raise ValueError(f"tool {self.name!r}: args_model must be a pydantic model class")
        if not callable(self.handler):
            raise ValueError(f"tool {self.name!r}: handler must be callable")
        if self.timeout_s is not None and not (
            isinstance(self.timeout_s, int | float) and self.timeout_s > 0
        ):
            raise ValueError(f"tool {self.name!r}: timeout_s must be a positive number of seconds")
        if self.readiness is not None and not callable(self.readiness):
            raise ValueError(f"tool {self.name!r}: readiness must be callable or None")
        floor = SEED_RISK.get(self.name)
        if floor is not None and floor.rank > self.risk.rank:
            object.__setattr__(self, "risk", floor)

    @property
    def timeout(self) -> float:
        return self.timeout_s if self.timeout_s is not None else TIMEOUT_BY_RISK[self.risk]

    def problem(self) -> str | None:
        """Why a call of this tool cannot succeed as configured, in one sentence naming what
        to set ("email is not configured: set SMTP_HOST (and SMTP_FROM)"), or None when it
        can (or the tool does not say). It reads the settings only, so the dashboard can ask
        it before an admin approves a call and `tools list` for every tool; it says nothing of
        whether the other system is up."""
        if self.readiness is None:
            return None
        try:
            found = self.readiness()
        except Exception as exc:  # noqa: BLE001 - a plugin's check must not break a listing
            reason = " ".join(str(exc).split()) or type(exc).__name__
            return f"{self.name} could not check its configuration: {reason}"
        if not found:
            return None
        return " ".join(str(found).split()) or None

    def args_schema(self) -> dict[str, Any]:
        return copy.deepcopy(_json_schema(self.args_model))

    def args_schema_json(self) -> str:
        """The arguments' JSON schema as the prompt lists it (compact, keys sorted)."""
        return _json_schema_text(self.args_model)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "risk": self.risk.value,
            "side_effects": self.side_effects,
            "timeout_s": self.timeout,
            "args_schema": self.args_schema(),
        }


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self.problems: list[str] = []  # plugins that could not be loaded, one sentence each
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return sorted(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(sorted(self._tools.values(), key=lambda tool: tool.name))

    def __len__(self) -> int:
        return len(self._tools)

    def load_plugins(self) -> None:
        """Add the tools of installed packages that declare the `agent_core.tools` entry point:
        a Tool, an iterable of Tools, or a callable returning either.

        A plugin loads whole or not at all. One that fails to import, raises, declares
        something that is not a valid Tool, or reuses a registered name is skipped with one
        sentence in `problems`, and every other tool loads."""
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            try:
                tools = self._plugin_tools(entry.load())
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the runtime
                reason = " ".join(str(exc).split()) or type(exc).__name__
                self.problems.append(f"plugin {entry.name!r} ({entry.value}) not loaded: {reason}")
                continue
            for tool in tools:
                self.register(tool)

    def _plugin_tools(self, provided: Any) -> list[Tool]:
        """The tools a plugin's entry point provides, checked before any is registered."""
        if callable(provided) and not isinstance(provided, Tool):
            provided = provided()
        if isinstance(provided, Tool):
            tools = [provided]
        elif isinstance(provided, Iterable) and not isinstance(provided, str | bytes | Mapping):
            tools = list(provided)
        else:
            raise TypeError(f"{provided!r} is neither an agent_core Tool nor a list of them")
        names: set[str] = set()
        for tool in tools:
            if not isinstance(tool, Tool):
                raise TypeError(f"{tool!r} is not an agent_core Tool")
            if tool.name in self._tools or tool.name in names:
                raise ValueError(f"a tool named {tool.name!r} is already registered")
            names.add(tool.name)
            try:  # every run's prompt lists it: a schema that cannot be built would fail them all
                _json_schema(tool.args_model)
            except Exception as exc:  # noqa: BLE001 - reported as the plugin's problem
                raise ValueError(
                    f"the arguments of tool {tool.name!r} have no JSON schema: {exc}"
                ) from None
        return tools
