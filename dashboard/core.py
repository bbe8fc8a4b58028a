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
from dashboard.plain import plain

log = logging.getLogger("dashboard")


@dataclass(frozen=True)
class Core:
    settings: api.Settings
    runtime: api.Runtime

    @property
    def store(self) -> api.Store:
        return self.runtime.store


@st.cache_resource(show_spinner=False, max_entries=4)
def _store(database_url: str) -> api.Store:
    """One store (engine and connection pool) per database for the whole process."""
    return api.Store.open(database_url)


@st.cache_resource(show_spinner=False, max_entries=4)
def _runtime(_settings: api.Settings, fingerprint: str) -> api.Runtime:
    """The runtime for these settings (LLM client, tools, notifier) on the shared store:
    built again only when a setting changes, e.g. after editing `.env`."""
    return api.open_runtime(_settings, _store(_settings.database_url))


def load_core() -> Core:
    """The settings and the shared runtime, or a sentence on the page and a stop."""
    try:
        settings = api.load_settings()
        runtime = _runtime(settings, settings.model_dump_json())
    except api.AgentRuntimeError as exc:
        st.error(f"The dashboard cannot start: {plain(str(exc))}")
        st.stop()
    return Core(settings=settings, runtime=runtime)


@contextmanager
def shown_errors() -> Iterator[None]:
    """Any failure inside becomes one sentence on the page, never a traceback."""
    try:
        yield
    except api.AgentRuntimeError as exc:
        st.error(plain(_sentence(str(exc))))
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
