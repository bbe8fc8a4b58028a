"""Day summaries for analytics (agent_core.analytics.daybook): derived data, replaced whole."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agent_core.store.base import StoreBase
from agent_core.store.schema import day_summaries


class SummaryStore(StoreBase):
    def save_day_summary(
        self,
        day: str,
        version: int,
        figures: dict[str, Any],
        samples: bytes,
        summarized_at: datetime,
    ) -> None:
        """Replace the summary of `day` ('YYYY-MM-DD'); IntegrityError when another process
        wrote it at the same moment."""
        with self._transaction(write=True) as conn:
            conn.execute(day_summaries.delete().where(day_summaries.c.day == day))
            conn.execute(
                day_summaries.insert().values(
                    day=day,
                    version=version,
                    summarized_at=summarized_at,
                    figures=figures,
                    samples=samples,
                )
            )
