"""Maintenance, from the CLI (`maintenance`) or the worker on an interval: the seed's
(expire approvals past their TTL, prune old events) plus the ledger's seal, notification
retries, reminders, and the summaries of closed days that keep long analytics ranges fast.
Each part is safe to run from several processes at once.

Sealing and pruning sign under AGENT_SECRET_KEY: without it they are skipped (the report
says why) and the rest of maintenance still runs. `ledger seal` and `ledger verify` start
here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from agent_core.analytics.daybook import summarize_closed_days
from agent_core.config import Settings, ledger_key
from agent_core.errors import ConfigError
from agent_core.models import LedgerReport, NotificationStatus, Seal
from agent_core.notify import Notifier
from agent_core.render import counted
from agent_core.store import Store


@dataclass
class MaintenanceReport:
    approvals_expired: list[str] = field(default_factory=list)
    seal: int | None = None  # the sequence number of the seal written
    runs_sealed: int = 0
    events_pruned: int = 0
    notifications_sent: int = 0
    notifications_failed: int = 0
    reminders_sent: int = 0
    days_summarized: list[str] = field(default_factory=list)  # for analytics (daybook)
    ledger_problem: str | None = None  # why the ledger was not sealed nor pruned

    def lines(self) -> list[str]:
        sealed = (
            f"seal {self.seal} ({counted(self.runs_sealed, 'run')} with new events)"
            if self.seal is not None
            else f"skipped, and no prune either: {self.ledger_problem}"
        )
        return [
            f"approvals expired:     {len(self.approvals_expired)}",
            f"ledger seal:           {sealed}",
            f"events pruned:         {self.events_pruned}",
            f"notifications retried: {self.notifications_sent} sent, "
            f"{self.notifications_failed} failed",
            f"reminders sent:        {self.reminders_sent}",
            f"days summarized:       {len(self.days_summarized)}",
        ]


def run_maintenance(store: Store, settings: Settings, notifier: Notifier) -> MaintenanceReport:
    report = MaintenanceReport()
    report.approvals_expired = [approval.id for approval in store.expire_approvals()]
    # The analytics of closed days, a bounded number per pass, before the prune removes the
    # events some of their figures come from (invalid replies, fallbacks, refusals).
    report.days_summarized = summarize_closed_days(store)
    try:
        key = ledger_key(settings)
    except ConfigError as exc:
        report.ledger_problem = str(exc)
    else:
        # Seal first: what the prune then removes was sealed, and is covered by its
        # signed checkpoint.
        seal = store.seal_ledger(key)
        report.seal, report.runs_sealed = seal.seq, seal.entries_count
        cutoff = store.now() - timedelta(days=settings.agent_events_retention_days)
        report.events_pruned = store.prune_events(older_than=cutoff, signing_key=key)
    for notification in notifier.retry_due():
        if notification.status is NotificationStatus.SENT:
            report.notifications_sent += 1
        else:
            report.notifications_failed += 1
    report.reminders_sent = sum(
        1 for sent in notifier.remind() if sent.status is NotificationStatus.SENT
    )
    return report


def seal_ledger(store: Store, settings: Settings) -> Seal:
    """Write a seal now (`ledger seal`); maintenance writes one on every pass."""
    return store.seal_ledger(ledger_key(settings))


def verify_ledger(store: Store, settings: Settings, run_id: str | None = None) -> LedgerReport:
    """Check the whole ledger (or one run): chains, checkpoints and seals, and warn when the
    last seal is older than twice the maintenance interval."""
    return store.verify_ledger(
        ledger_key(settings),
        run_id,
        stale_after=timedelta(seconds=2 * settings.agent_maintenance_interval_s),
    )
