"""A watchdog for tools run on the caller's thread: it cancels their context at the deadline.

Handing a call to another thread and waiting for it costs two thread switches, more than a
whole step's bookkeeping. A read-only tool that stops when told (its cancel callbacks
interrupt its query) runs instead on the thread that asks for it, and this one daemon
thread calls `ToolContext.cancel` if the deadline comes first. Watching a call costs a lock
and a heap push; the thread wakes when the earliest watched deadline passes, no more often
than every COALESCE_S.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time

from agent_core.tools.registry import ToolContext

# A call still running at its deadline is cancelled at most this much later.
COALESCE_S = 0.02
# The thread ends after this long with nothing to watch (a gateway per Orchestrator).
IDLE_EXIT_S = 30.0


class Watch:
    """One watched call; `fired` once its deadline passed while it was still running."""

    __slots__ = ("context", "deadline", "fired", "running")

    def __init__(self, context: ToolContext) -> None:
        self.context: ToolContext | None = context
        self.deadline = context.deadline
        self.running = True
        self.fired = False


class Watchdog:
    """Cancels the context of every watched call still running at its deadline."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._heap: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._wake_at = float("inf")
        self._thread: threading.Thread | None = None

    def watch(self, context: ToolContext) -> Watch:
        """Start watching a call about to run on the caller's thread."""
        entry = Watch(context)
        with self._condition:
            heapq.heappush(self._heap, (entry.deadline, next(self._order), entry))
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="watchdog", daemon=True)
                self._thread.start()
            elif entry.deadline < self._wake_at:
                self._condition.notify()
        return entry

    def release(self, entry: Watch) -> bool:
        """The call returned: stop watching it. False when its deadline had already fired."""
        with self._condition:
            entry.running = False
            entry.context = None  # the heap keeps the entry until its deadline, not the call
            return not entry.fired

    def _serve(self) -> None:
        condition = self._condition
        with condition:
            while True:
                now = time.monotonic()
                due = self._take_due(now)
                if due:
                    condition.release()
                    try:
                        for context in due:
                            context.cancel()
                    finally:
                        condition.acquire()
                    continue
                if not self._heap:
                    self._wake_at = float("inf")
                    if not condition.wait(IDLE_EXIT_S) and not self._heap:
                        self._thread = None  # idle: the next call starts another
                        return
                    continue
                # Finished calls stay in the heap until their deadline (popping them at once
                # would empty it between steps, and every next call would wake this thread):
                # wake-ups are at least COALESCE_S apart, so a busy loop costs a few per second.
                self._wake_at = max(self._heap[0][0], now + COALESCE_S)
                condition.wait(self._wake_at - now)

    def _take_due(self, now: float) -> list[ToolContext]:
        """Pop the calls whose deadline passed; the ones still running are due for cancel."""
        due: list[ToolContext] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)[2]
            if entry.running and entry.context is not None:
                entry.fired = True
                due.append(entry.context)
        return due
