"""One daemon thread that acts on what is still running at its deadline.

Two things are watched this way: a read-only tool run on the caller's thread (cancelled at
its deadline, which an interruptible tool obeys: tools/gateway.py) and an LLM request (its
socket shut down at the deadline, so that a server trickling its reply is cut on time:
llm_loop.py). Handing the work to another thread and waiting for it would cost two thread
switches per call, more than a step's bookkeeping. Watching costs a lock and a heap push;
the thread wakes when the earliest watched deadline passes, no more often than COALESCE_S.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable

# Work still running at its deadline is acted on at most this much later.
COALESCE_S = 0.02
# The thread ends after this long with nothing to watch (the next watch starts another).
IDLE_EXIT_S = 30.0


class Watch:
    """One watched piece of work; `fired` once its deadline passed while it still ran."""

    __slots__ = ("cut", "fired")

    def __init__(self, cut: Callable[[], object]) -> None:
        self.cut: Callable[[], object] | None = cut
        self.fired = False


class Deadlines:
    """Calls `cut` for each watched piece of work still running at its deadline."""

    def __init__(self, *, name: str) -> None:
        self._name = name
        self._condition = threading.Condition()
        self._heap: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._wake_at = float("inf")
        self._thread: threading.Thread | None = None

    def watch(self, deadline: float, cut: Callable[[], object]) -> Watch:
        """Start watching work about to run until `deadline` (time.monotonic)."""
        entry = Watch(cut)
        with self._condition:
            heapq.heappush(self._heap, (deadline, next(self._order), entry))
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                self._thread.start()
            elif deadline < self._wake_at:
                self._condition.notify()
        return entry

    def release(self, entry: Watch) -> bool:
        """The work returned: stop watching it. False when its deadline had already fired."""
        with self._condition:
            entry.cut = None  # the heap keeps the entry until its deadline, not the work
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
                        for cut in due:
                            with contextlib.suppress(Exception):  # best effort, nobody to tell
                                cut()
                    finally:
                        condition.acquire()
                    continue
                if not self._heap:
                    self._wake_at = float("inf")
                    if not condition.wait(IDLE_EXIT_S) and not self._heap:
                        self._thread = None  # idle: the next watch starts another
                        return
                    continue
                # Finished work stays in the heap until its deadline (popping it at once would
                # empty the heap between calls, and every next call would wake this thread):
                # wake-ups are at least COALESCE_S apart, so a busy loop costs a few per second.
                self._wake_at = max(self._heap[0][0], now + COALESCE_S)
                condition.wait(self._wake_at - now)

    def _take_due(self, now: float) -> list[Callable[[], object]]:
        """Pop the entries whose deadline passed; those still running are due to be cut."""
        due: list[Callable[[], object]] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)[2]
            if entry.cut is not None:
                entry.fired = True
                due.append(entry.cut)
                entry.cut = None
        return due
