"""What every page stands on: the settings, the cached runtime, and errors worded for people.

The runtime (its database engine, tool registry, notifier) is built once per process and
database, and shared by every session: pages stay fast and never open connections of their
own. Settings are read on every script run, so a changed `.env` shows on the next click.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import streamlit as st

from agent_core import api

log = logging.getLogger("dashboard")


@dataclass(frozen=True)
class Core:
    settings: api.Settings
    runtime: api.Runtime

    @property
    def store(self) -> api.Store:
        return self.runtime.store


@st.cache_resource(show_spinner=False, max_entries=8)
def _runtime(database_url: str, data_database_url: str) -> api.Runtime:
    """One runtime per database for the whole process (every session shares it)."""
    settings = api.load_settings()
    store = api.Store.open(database_url)
    return api.open_runtime(settings, store)


def load_core() -> Core:
    """The settings and the shared runtime, or a sentence on the page and a stop."""
    try:
        settings = api.load_settings()
        runtime = _runtime(settings.database_url, settings.data_database_url)
    except api.AgentRuntimeError as exc:
        st.error(f"The dashboard cannot start: {exc}")
        st.stop()
    return Core(settings=settings.model_copy(), runtime=_with_settings(runtime, settings))


def _with_settings(runtime: api.Runtime, settings: api.Settings) -> api.Runtime:
    """The shared runtime seen with this run's settings (budgets, approvers, channels)."""
    if runtime.settings == settings:
        return runtime
    return api.Runtime(
        settings=settings,
        store=runtime.store,
        tools=runtime.tools,
        llm=runtime.llm,
        llm_problem=runtime.llm_problem,
        owner=runtime.owner,
    )


@contextmanager
def shown_errors() -> Iterator[None]:
    """Any failure inside becomes one sentence on the page, never a traceback."""
    try:
        yield
    except api.AgentRuntimeError as exc:
        st.error(_sentence(str(exc)))
    except Exception as exc:
        log.exception("page failed")
        st.error(
            f"Something went wrong ({type(exc).__name__}). Nothing was changed; "
            "try again, and see the dashboard's log for details."
        )


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
