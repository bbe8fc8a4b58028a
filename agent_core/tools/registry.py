"""What a tool is, and the registry of the tools the agent may be offered.

Each tool declares its name, a description written for the model, its risk, whether it has
side effects, a pydantic model of its arguments and a handler. Plugins add tools through the
`agent_core.tools` entry point group.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
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


class ToolInputError(Exception):
    """The arguments cannot be used; the message tells the model what to change."""


class ToolTransientError(Exception):
    """A failure worth trying again (network, lock): retried for tools without side effects."""


class ToolContext:
    """Given to a handler: the time it has, and a way to be told it ran out."""

    def __init__(self, *, run_id: str, deadline: float) -> None:
        self.run_id = run_id
        self.deadline = deadline
        self._cancelled = False
        self._on_cancel: list[Callable[[], object]] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

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


@functools.cache
def _json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Computing a JSON schema takes milliseconds, and every run's prompt lists them all."""
    schema = model.model_json_schema()
    schema.pop("title", None)
    return schema


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    risk: RiskLevel
    side_effects: bool
    args_model: type[BaseModel]
    handler: Handler = field(repr=False)
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if not TOOL_NAME_PATTERN.match(self.name):
            raise ValueError(f"tool name {self.name!r} is not valid")
        floor = SEED_RISK.get(self.name)
        if floor is not None and floor.rank > self.risk.rank:
            object.__setattr__(self, "risk", floor)

    @property
    def timeout(self) -> float:
        return self.timeout_s if self.timeout_s is not None else TIMEOUT_BY_RISK[self.risk]

    def args_schema(self) -> dict[str, Any]:
        return copy.deepcopy(_json_schema(self.args_model))

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
        a Tool, an iterable of Tools, or a callable returning either."""
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            try:
                provided = entry.load()
                if callable(provided) and not isinstance(provided, Tool):
                    provided = provided()
                for tool in [provided] if isinstance(provided, Tool) else list(provided):
                    if not isinstance(tool, Tool):
                        raise TypeError(f"{tool!r} is not an agent_core Tool")
                    self.register(tool)
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the runtime
                reason = " ".join(str(exc).split()) or type(exc).__name__
                self.problems.append(f"plugin {entry.name!r} ({entry.value}) not loaded: {reason}")
