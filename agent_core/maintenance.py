"""Maintenance, from the CLI (`maintenance`) or the worker on an interval: the seed's
(expire approvals past their TTL, prune old events) plus notification retries and
reminders. Each part is safe to run from several processes at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from agent_core.config import Settings
from agent_core.models import NotificationStatus
from agent_core.notify import Notifier
from agent_core.store import Store


@dataclass
class MaintenanceReport:
    approvals_expired: list[str] = field(default_factory=list)
    events_pruned: int = 0
    notifications_sent: int = 0
    notifications_failed: int = 0
    reminders_sent: int = 0

    def lines(self) -> list[str]:
        return [
            f"approvals expired:     {len(self.approvals_expired)}",
            f"events pruned:         {self.events_pruned}",
            f"notifications retried: {self.notifications_sent} sent, "
            f"{self.notifications_failed} failed",
            f"reminders sent:        {self.reminders_sent}",
        ]


def run_maintenance(store: Store, settings: Settings, notifier: Notifier) -> MaintenanceReport:
    report = MaintenanceReport()
    report.approvals_expired = [approval.id for approval in store.expire_approvals()]
    cutoff = store.now() - timedelta(days=settings.agent_events_retention_days)
    report.events_pruned = store.prune_events(older_than=cutoff)
    for notification in notifier.retry_due():
        if notification.status is NotificationStatus.SENT:
            report.notifications_sent += 1
        else:
            report.notifications_failed += 1
    report.reminders_sent = sum(
        1 for sent in notifier.remind() if sent.status is NotificationStatus.SENT
    )
    return report
