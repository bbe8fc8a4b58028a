"""The one place the runtime reads and writes its database: the `Store`.

Every public method is one transaction. Writes that belong together (a step, its tool call,
its events and the run's counters) are written by one method so that a crash leaves all of
them or none. Ledger events are appended by `_write_run` (base.py), which also moves the
run's ledger head, so nothing writes an event without extending the hash chain.

Where to look:

    base.py           engine, transactions, SQLite writer lock, driver errors as sentences,
                      id parsing, row -> record converters, `_write_run` (the ledger append)
    objectives.py     objectives
    runs.py           creating, reading, changing and cancelling runs
    leases.py         claims, lease renewals, releases, recovery of runs whose worker died
    steps.py          start_step / finish_step, approved calls moved on (at most once)
    approvals.py      reading, deciding, expiring approvals
    notifications.py  approval notifications and their attempts
    workers.py        worker heartbeats
    event_log.py      appending, listing, verifying and pruning ledger events
    seals.py          the ledger's signed seals: writing them, checking them
    reads.py          views for pages: filtered, joined and paged in SQL
    summaries.py      day summaries for analytics (derived data, replaced whole)
    hotpath.py        the per-step SQL on the driver connection (used by `_write_run`)
    ledger.py         the hash chain (pure); signing.py: signatures under the secret key

The Store is assembled from the aggregates as mixins over `StoreBase` rather than composed
of objects it delegates to. Every aggregate needs the same engine, clock, writer lock and
ledger append, and some writes span aggregates inside one transaction (deciding an approval
queues its run; cancelling a run cancels its approvals); mixins share all of that without
passing it around, and callers keep calling `store.method(...)` with no delegating stub to
keep in step with each method. Each mixin subclasses `StoreBase`, so what an aggregate relies
on is visible in one small class; aggregates never call each other's methods (a helper two
of them need is a module function, like `steps.close_unapproved_step`).
"""

from __future__ import annotations

from agent_core.store.approvals import ApprovalStore
from agent_core.store.base import Clock, utc_now
from agent_core.store.event_log import EventLogStore
from agent_core.store.leases import LeaseStore
from agent_core.store.notifications import NotificationStore
from agent_core.store.objectives import ObjectiveStore
from agent_core.store.reads import PageReads
from agent_core.store.runs import RunStore
from agent_core.store.seals import SealStore
from agent_core.store.steps import StepStarted, StepStore
from agent_core.store.summaries import SummaryStore
from agent_core.store.workers import WorkerStore

__all__ = ["Clock", "StepStarted", "Store", "utc_now"]


class Store(
    ObjectiveStore,
    RunStore,
    LeaseStore,
    StepStore,
    ApprovalStore,
    NotificationStore,
    WorkerStore,
    EventLogStore,
    SealStore,
    SummaryStore,
    PageReads,
):
    """Queries the runtime and the dashboard need, on SQLite or PostgreSQL."""
