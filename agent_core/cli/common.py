"""What every area of the CLI shares: a command's `Output`, the `Context` it runs in, the
parser that raises instead of exiting, and `Commands`, where an area adds its commands.

Only the standard library and agent_core.errors at the top: the parser is built on every call
(`--help` too), so the store, the runtime and pydantic are imported when first used.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from agent_core.errors import InvalidInput

if TYPE_CHECKING:
    from pydantic import BaseModel

    from agent_core.config import Settings
    from agent_core.runtime import Runtime
    from agent_core.store import Store
    from agent_core.tools import ToolRegistry


@dataclass(frozen=True)
class Output:
    """What a command produced: the JSON document and its human-readable form."""

    document: Any
    text: str
    exit_code: int = 0


@dataclass
class Context:
    """The settings, and the store and runtime a command opens on first use (closed by main)."""

    settings: Settings
    _store: Store | None = None
    _runtime: Runtime | None = None

    def store(self, *, check_schema: bool = True) -> Store:
        if self._store is None:
            from agent_core.store import Store

            self._store = Store.open(self.settings.database_url, check_schema=check_schema)
        return self._store

    def runtime(self) -> Runtime:
        if self._runtime is None:
            from agent_core.runtime import open_runtime

            self._runtime = open_runtime(self.settings, self.store())
        return self._runtime

    def tools(self) -> ToolRegistry:
        """The tools as a worker would have them (built-ins and plugins), without a store."""
        if self._runtime is not None:
            return self._runtime.tools
        from agent_core.llm import build_content_llm
        from agent_core.runtime import build_tools
        from agent_core.store import create_engine

        settings = self.settings
        engine = create_engine(settings.data_database_url)
        try:
            return build_tools(
                settings, data_engine=engine, content_llm=build_content_llm(settings)
            )
        finally:
            engine.dispose()

    def tool_names(self) -> list[str]:
        return self.tools().names()

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
        if self._store is not None:
            self._store.close()


Command = Callable[[argparse.Namespace, Context], Output]


class Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so that errors look alike."""

    def error(self, message: str) -> NoReturn:
        raise InvalidInput(f"{message} (see `{self.prog} --help`)")


class Commands:
    """Where an area adds its commands: `group` for `NOUN VERB` ones (`run list`), `command`
    for a top-level one (`worker`). Every parser takes the common options (`--json`)."""

    def __init__(self, groups: argparse._SubParsersAction[Parser], common: Parser) -> None:
        self._groups = groups
        self._common = common

    def group(self, name: str, help_text: str) -> Group:
        sub = self._groups.add_parser(
            name, help=help_text, description=help_text, parents=[self._common]
        )
        actions = sub.add_subparsers(dest="command", required=True, metavar="ACTION")
        return Group(actions, self._common)

    def command(
        self, name: str, handler: Command, help_text: str, description: str | None = None
    ) -> argparse.ArgumentParser:
        sub = self._groups.add_parser(
            name,
            help=help_text,
            description=help_text if description is None else description,
            parents=[self._common],
        )
        sub.set_defaults(handler=handler)
        return sub


class Group:
    """The actions of one group (`run`): `command` adds one (`list`) with its handler."""

    def __init__(self, actions: argparse._SubParsersAction[Parser], common: Parser) -> None:
        self._actions = actions
        self._common = common

    def command(self, name: str, handler: Command, help_text: str) -> argparse.ArgumentParser:
        sub = self._actions.add_parser(
            name, help=help_text, description=help_text, parents=[self._common]
        )
        sub.set_defaults(handler=handler)
        return sub


def document(value: BaseModel | Sequence[BaseModel]) -> Any:
    """A record, or a list of them, as the JSON document `--json` prints."""
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    return [item.model_dump(mode="json", by_alias=True) for item in value]


def default_admin() -> str:
    """Who decides or cancels when `--by` is not given."""
    return os.environ.get("USER") or "cli"
