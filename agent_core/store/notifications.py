"""Notifications: one row per approval, channel and kind, and each attempt's outcome.

The unique key (approval, channel, kind) means a retry or two maintenance passes never
create a second message; an attempt is claimed before it is made, so two processes never
send the same one at once; each outcome is also an event in the run's ledger."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import sqlalchemy as sa

from agent_core.models import (
    Approval,
    ApprovalStatus,
    NewEvent,
    Notification,
    NotificationKind,
    NotificationStatus,
    storable_text,
)
from agent_core.store.base import (
    StoreBase,
    as_approval,
    as_notification,
    driver_cursor,
    new_id,
    parse_id,
    upsert_builder,
)
from agent_core.store.schema import (
    approvals,
    notifications,
)


class NotificationStore(StoreBase):
    """Queueing, claiming and recording approval notifications."""

    def add_notifications(
        self, approval: Approval, kind: NotificationKind, recipients: Mapping[str, str | None]
    ) -> list[Notification]:
        """One pending notification per channel (skipped when it already exists)."""
        now = self.now()
        created = []
        with self._transaction(write=True) as conn:
            for channel, recipient in recipients.items():
                values = {
                    "id": new_id(),
                    "approval_id": approval.id,
                    "run_id": approval.run_id,
                    "channel": channel,
                    "kind": kind,
                    "recipient": recipient,
                    "status": NotificationStatus.PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                insert = upsert_builder(self.dialect)(notifications).values(values)
                row = conn.execute(
                    insert.on_conflict_do_nothing().returning(notifications)
                ).one_or_none()
                if row is not None:
                    created.append(as_notification(row))
        return created

    def list_notifications(self, approval_id: str) -> list[Notification]:
        key = parse_id(approval_id, "approval")
        query = (
            notifications.select()
            .where(notifications.c.approval_id == key)
            .order_by(notifications.c.created_at, notifications.c.channel)
        )
        with self._transaction(write=False) as conn:
            return [as_notification(row) for row in conn.execute(query)]

    def run_notifications(self, run_id: str) -> list[Notification]:
        """The run's notifications that were attempted, oldest first, for the run page: sent,
        failed (to be retried) and given up (failed for good: no recipient, too many
        attempts, or no longer needed); those still waiting for their first attempt are left
        out."""
        key = parse_id(run_id, "run")
        query = (
            notifications.select()
            .where(
                notifications.c.run_id == key,
                notifications.c.status.in_(
                    [
                        NotificationStatus.SENT,
                        NotificationStatus.FAILED,
                        NotificationStatus.GAVE_UP,
                    ]
                ),
            )
            .order_by(notifications.c.created_at, notifications.c.channel)
        )
        with self._transaction(write=False) as conn:
            return [as_notification(row) for row in conn.execute(query)]

    def claim_notification(self, notification_id: str, *, hold: timedelta) -> bool:
        """Take a due notification for one sending attempt: it is not due again for `hold`,
        so a maintenance pass meanwhile does not send it a second time."""
        now = self.now()
        with self._transaction(write=True) as conn:
            claimed = conn.execute(
                notifications.update()
                .where(
                    notifications.c.id == notification_id,
                    notifications.c.status.in_(
                        [NotificationStatus.PENDING, NotificationStatus.FAILED]
                    ),
                    notifications.c.next_attempt_at <= now,
                )
                .values(next_attempt_at=now + hold)
            ).rowcount
        return bool(claimed)

    def due_notifications(self, *, limit: int = 100) -> list[Notification]:
        """Notifications to (re)send now: pending, or failed and due for another attempt."""
        now = self.now()
        query = (
            notifications.select()
            .where(
                notifications.c.status.in_([NotificationStatus.PENDING, NotificationStatus.FAILED]),
                notifications.c.next_attempt_at <= now,
            )
            .order_by(notifications.c.next_attempt_at)
            .limit(limit)
        )
        with self._transaction(write=False) as conn:
            return [as_notification(row) for row in conn.execute(query)]

    def record_notification(
        self,
        notification: Notification,
        *,
        status: NotificationStatus,
        error: str | None,
        next_attempt_at: datetime | None,
        event: NewEvent,
    ) -> None:
        """An attempt's outcome on the notification, and its event in the run's ledger."""
        now = self.now()
        with self._transaction(write=True) as conn:
            conn.execute(
                notifications.update()
                .where(notifications.c.id == notification.id)
                .values(
                    status=status,
                    attempts=notifications.c.attempts + 1,
                    last_error=storable_text(error),
                    next_attempt_at=next_attempt_at,
                    sent_at=now if status is NotificationStatus.SENT else None,
                )
            )
            self._write_run(driver_cursor(conn), notification.run_id, new_events=[event])

    def approvals_to_remind(self, *, within: timedelta) -> list[Approval]:
        """Pending approvals expiring within `within` that have had no reminder yet."""
        now = self.now()
        reminded = sa.select(notifications.c.approval_id).where(
            notifications.c.kind == NotificationKind.REMINDER
        )
        query = approvals.select().where(
            approvals.c.status == ApprovalStatus.PENDING,
            approvals.c.expires_at > now,
            approvals.c.expires_at <= now + within,
            approvals.c.id.not_in(reminded),
        )
        with self._transaction(write=False) as conn:
            return [as_approval(row) for row in conn.execute(query)]
