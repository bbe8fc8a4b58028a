"""Persistence: the tables, their migrations, the ledger's hash chain and the Store."""

from agent_core.store.engine import create_engine, normalize_database_url
from agent_core.store.schema import RUNTIME_TABLES
from agent_core.store.store import Clock, StepStarted, Store, utc_now

__all__ = [
    "RUNTIME_TABLES",
    "Clock",
    "StepStarted",
    "Store",
    "create_engine",
    "normalize_database_url",
    "utc_now",
]
