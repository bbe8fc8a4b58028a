"""The runtime's exceptions. Each carries one sentence an admin can act on."""

from __future__ import annotations

from collections.abc import Mapping


class AgentRuntimeError(Exception):
    """A failure the runtime reports as a sentence, never as a traceback (CLI exit code 1)."""

    exit_code = 1


class InvalidInput(AgentRuntimeError):
    """What the admin asked for is wrong: a bad argument, value or id (CLI exit code 2)."""

    exit_code = 2


class ConfigError(InvalidInput):
    """A setting (environment, `.env` or secrets file) has a value the runtime cannot use."""


class InvalidFields(InvalidInput):
    """Some fields of a form (an objective, an approval's arguments) are invalid: each with
    its sentence, so that a page shows them beside the fields and the CLI names the option."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        super().__init__(self.sentence())

    def sentence(self, names: Mapping[str, str] | None = None) -> str:
        """Every problem, each naming its field as the caller knows it (`names`)."""
        known = names or {}
        return "; ".join(
            f"{known.get(field, field)}: {message}" for field, message in self.problems.items()
        )


class NotFound(InvalidInput):
    """The id names nothing that exists."""


class Conflict(InvalidInput):
    """The request is valid but the thing it targets is in the wrong state for it."""


class StoreUnavailable(AgentRuntimeError):
    """The database cannot be reached or is not migrated."""


class LeaseLost(AgentRuntimeError):
    """Another worker took over the run (this one's lease lapsed): stop writing to it."""
