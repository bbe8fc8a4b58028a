"""Workers: heartbeat rows, so the dashboard and `worker status` see who is alive."""

from __future__ import annotations

from datetime import timedelta

from agent_core.models import (
    WorkerInfo,
)
from agent_core.store.base import (
    StoreBase,
    as_record,
    upsert_builder,
)
from agent_core.store.schema import (
    workers,
)


class WorkerStore(StoreBase):
    """Recording and listing worker heartbeats."""

    def record_worker(
        self,
        *,
        worker_id: str,
        hostname: str,
        pid: int,
        concurrency: int,
        running: list[str],
        stopped: bool = False,
    ) -> None:
        """The worker's heartbeat row, so the dashboard and `worker status` see it alive."""
        now = self.now()
        values = {
            "hostname": hostname,
            "pid": pid,
            "concurrency": concurrency,
            "heartbeat_at": now,
            "stopped_at": now if stopped else None,
            "running": running,
        }
        insert = upsert_builder(self.dialect)(workers).values(
            id=worker_id, started_at=now, **values
        )
        with self._transaction(write=True) as conn:
            conn.execute(insert.on_conflict_do_update(index_elements=[workers.c.id], set_=values))

    def list_workers(self, *, alive_within: timedelta | None = None) -> list[WorkerInfo]:
        query = workers.select().order_by(workers.c.heartbeat_at.desc())
        if alive_within is not None:
            query = query.where(
                workers.c.stopped_at.is_(None),
                workers.c.heartbeat_at >= self.now() - alive_within,
            )
        with self._transaction(write=False) as conn:
            return [as_record(WorkerInfo, row) for row in conn.execute(query)]
