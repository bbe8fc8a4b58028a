"""The tool gateway and the built-in tools."""

from agent_core.tools.registry import (
    ENTRY_POINT_GROUP,
    TIMEOUT_BY_RISK,
    Tool,
    ToolContext,
    ToolError,
    ToolInputError,
    ToolOutcomeUnknown,
    ToolRegistry,
    ToolTransientError,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "TIMEOUT_BY_RISK",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolInputError",
    "ToolOutcomeUnknown",
    "ToolRegistry",
    "ToolTransientError",
]
