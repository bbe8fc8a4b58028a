"""Assembling a runtime from the settings: the one place that knows which concrete parts
(store, LLM client, tools) go together. The CLI and the worker start here; tests build the
same parts themselves on temporary data."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from agent_core.config import Settings
from agent_core.demo import DemoLLM, DemoOutbox
from agent_core.errors import ConfigError
from agent_core.llm import LLMClient, build_content_llm, build_llm
from agent_core.loop import Orchestrator
from agent_core.notify import (
    EmailTransport,
    MailSender,
    MessageSender,
    Notifier,
    WhatsAppTransport,
)
from agent_core.store import Store, create_engine
from agent_core.tools import ToolRegistry
from agent_core.tools.content import content_tools
from agent_core.tools.data import DataAccess, data_tools
from agent_core.tools.messaging import messaging_tools
from agent_core.tools.wix import WixClient, wix_tools

log = logging.getLogger("agent_core.runtime")


def worker_identity() -> str:
    """Who holds a lease: readable in `worker status`, unique across restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def transports(settings: Settings) -> tuple[MailSender, MessageSender]:
    """How email and WhatsApp leave: the configured servers, or the demo's local outbox."""
    if settings.agent_demo:
        outbox = DemoOutbox()
        return outbox, outbox
    return EmailTransport.from_settings(settings), WhatsAppTransport.from_settings(settings)


def build_tools(
    settings: Settings, *, data_engine: Engine, content_llm: LLMClient | None
) -> ToolRegistry:
    registry = ToolRegistry(data_tools(DataAccess(data_engine, settings.agent_data_tables)))
    for tool in messaging_tools(*transports(settings)):
        registry.register(tool)
    for tool in wix_tools(
        WixClient.from_settings(settings), max_chars=settings.agent_observation_max_chars
    ):
        registry.register(tool)
    for tool in content_tools(content_llm):  # without an LLM, listed with what to set
        registry.register(tool)
    registry.load_plugins()
    return registry


@dataclass
class Runtime:
    settings: Settings
    store: Store
    tools: ToolRegistry
    llm: LLMClient | None
    llm_problem: str | None
    owner: str = field(default_factory=worker_identity)
    data_engine: Engine | None = None
    _closers: list[Callable[[], object]] = field(default_factory=list)

    def reloaded(self, settings: Settings) -> Runtime:
        """The same runtime (store, business database, worker identity) with new settings:
        a new LLM client and tools; the caller keeps closing this one's resources."""
        return open_runtime(settings, self.store, data_engine=self.data_engine, owner=self.owner)

    @property
    def notifier(self) -> Notifier:
        email, whatsapp = transports(self.settings)
        return Notifier(self.store, self.settings, email=email, whatsapp=whatsapp)

    def orchestrator(self) -> Orchestrator:
        return Orchestrator(
            store=self.store,
            llm=self.llm,
            tools=self.tools,
            settings=self.settings,
            owner=self.owner,
            llm_problem=self.llm_problem,
            on_approval=self.notifier.request_approval,
        )

    def close(self) -> None:
        for close in self._closers:
            close()


def open_runtime(
    settings: Settings,
    store: Store,
    *,
    data_engine: Engine | None = None,
    owner: str | None = None,
) -> Runtime:
    """The runtime for `settings` on an open store. A missing LLM is not an error here: runs
    then fail at once with stop_reason config_error, saying which variable to set.
    `data_engine` and `owner` carry a running runtime's over (see Runtime.reloaded)."""
    closers: list[Callable[[], object]] = []
    if data_engine is None:
        if settings.data_database_url == settings.database_url:
            data_engine = store.engine
        else:
            data_engine = create_engine(settings.data_database_url)
            closers.append(data_engine.dispose)
    llm: LLMClient | None
    if settings.agent_demo:
        llm, problem, content_llm = DemoLLM(), None, None
    else:
        try:
            llm, problem = build_llm(settings), None
        except ConfigError as exc:
            llm, problem = None, str(exc)
        content_llm = build_content_llm(settings)
    tools = build_tools(settings, data_engine=data_engine, content_llm=content_llm)
    for broken in tools.problems:  # once per runtime: the worker's log, the CLI's stderr
        log.warning("%s", broken)
    return Runtime(
        settings=settings,
        store=store,
        tools=tools,
        llm=llm,
        llm_problem=problem,
        owner=owner or worker_identity(),
        data_engine=data_engine,
        _closers=closers,
    )
