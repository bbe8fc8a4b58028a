"""The worker: claims queued runs and executes them, fires recurring objectives, keeps its
leases and heartbeat, and runs maintenance, on an APScheduler BackgroundScheduler.

Several workers, on one machine or many, share one database: claims are atomic (FOR UPDATE
SKIP LOCKED on PostgreSQL), a cron slot yields one run (a unique key), and a run whose worker
died is queued again once its lease lapses, to resume from the ledger elsewhere.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from agent_core.config import RESTART_SETTINGS, Settings, changed_settings
from agent_core.errors import AgentRuntimeError, ConfigError
from agent_core.maintenance import run_maintenance
from agent_core.models import Objective, Run, RunStatus
from agent_core.render import counted, printable, run_log_line
from agent_core.runtime import Runtime
from agent_core.schedules import latest_due_slot

log = logging.getLogger("agent_core.worker")


class PrintableFormatter(logging.Formatter):
    """Log lines as the CLI prints text: what the model, a tool or a server wrote (a call's
    arguments, an error page) cannot clear or rewrite the admin's terminal, nor read
    reversed (`render.printable`)."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def configure_logging() -> None:
    """One readable line per event on stderr, unless the host application set logging up."""
    if not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(PrintableFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.basicConfig(level=logging.INFO, handlers=[handler])
    for chatty in ("httpx", "httpx2", "alembic"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    # "job skipped: maximum number of running instances" is normal while a claim is running.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)


class Worker:
    def __init__(
        self,
        runtime: Runtime,
        *,
        concurrency: int | None = None,
        load_settings: Callable[[], Settings] | None = None,
    ) -> None:
        self.runtime = runtime
        self._load_settings = load_settings
        self.store = runtime.store
        self.settings = runtime.settings
        self.id = runtime.owner
        self.concurrency = concurrency or self.settings.agent_worker_concurrency
        self._orchestrator = runtime.orchestrator()
        self._active: set[str] = set()
        self._claiming = 0  # slots reserved by claims under way
        self._lock = threading.Lock()
        self._ended = threading.Condition(self._lock)  # notified when a run ends
        # A thread that ended a run claims the next: no slot waits for the next poll.
        self._threads = RunThreads(
            self._execute, then=self._guarded(self.fill, "claim queued runs"), name="run"
        )
        self._stopping = threading.Event()
        self._scheduler: BackgroundScheduler | None = None
        self._unreadable: set[tuple[str, str | None]] = set()
        # Raised by signal handlers, which must take no lock: the main thread may hold the
        # one inside an Event (waiting on it) when the signal arrives. wait() acts on them.
        self._stop_requested = False
        self._reload_requested = False
        self._told_restart: set[str] = set()
        # The worker's row: written by heartbeats and by the stop, one at a time; once the
        # stop is written, a heartbeat that was under way (shutdown does not wait for it)
        # must not write the worker back alive.
        self._record_lock = threading.Lock()
        self._recorded_stop = False

    # lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        settings = self.settings
        heartbeat_s = settings.worker_heartbeat_s
        scheduler = BackgroundScheduler(timezone=UTC)
        jobs: list[tuple[Callable[[], object], float, str]] = [
            (self.fill, settings.agent_worker_poll_s, "claim queued runs"),
            (self.heartbeat, heartbeat_s, "heartbeat and leases"),
            (self.fire_schedules, heartbeat_s, "recurring objectives"),
            (self.recover, heartbeat_s, "runs of dead workers"),
            (self.maintain, settings.agent_maintenance_interval_s, "maintenance"),
        ]
        for job, seconds, name in jobs:
            scheduler.add_job(
                self._guarded(job, name),
                "interval",
                seconds=seconds,
                name=name,
                max_instances=1,
                coalesce=True,
                next_run_time=datetime.now(UTC),
            )
        self.heartbeat()
        scheduler.start()
        self._scheduler = scheduler
        log.info(
            "worker %s started: concurrency %d, polling every %g s",
            self.id,
            self.concurrency,
            settings.agent_worker_poll_s,
        )

    def stop(self) -> None:
        """Stop claiming; running runs stop before their next step (see shutdown)."""
        self._stopping.set()

    def wait(self) -> None:
        while not self._stopping.wait(0.5):
            if self._stop_requested:
                self.stop()
            elif self._reload_requested:
                self._reload_requested = False
                self._guarded(self.reload_settings, "settings reload")()

    def request_stop(self) -> None:
        """SIGTERM, Ctrl-C: stop, from a signal handler (a flag wait() acts on within
        0.5 s; stop() itself takes the lock of an Event the main thread may hold)."""
        self._stop_requested = True

    def request_reload(self) -> None:
        """SIGHUP: re-read the settings now rather than at the next heartbeat (a flag, as
        for request_stop)."""
        self._reload_requested = True

    def shutdown(self) -> None:
        """Let each run finish its current step, give the rest back to the queue, and return
        within AGENT_WORKER_SHUTDOWN_S."""
        self._stopping.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        self._wait_for_runs(self.settings.agent_worker_shutdown_s)
        self._threads.stop()
        for run_id in self._running_ids():  # stuck in a long step: given back all the same
            if self.store.release_run(run_id, owner=self.id, reason="worker shutdown timeout"):
                log.info("run %s given back to the queue (worker stopping)", run_id)
        self._record(stopped=True)
        log.info("worker %s stopped", self.id)

    def run_once(self) -> int:
        """Execute everything queued (and due) now, then return how many runs were executed."""
        with self._record_lock:
            self._recorded_stop = False  # alive again until this pass ends (no other writer)
        self.heartbeat()
        self.recover()
        self.fire_schedules()
        executed = 0
        while True:
            claimed = self.fill()
            if not claimed and not self._running_ids():
                break
            executed += claimed
            self._wait_for_runs(0.2)
        self._threads.stop()
        self.maintain()
        self._record(stopped=True)
        return executed

    # jobs -------------------------------------------------------------------------------------

    def fill(self) -> int:
        """Claim queued runs up to the free capacity and start them; returns how many.

        The slots are reserved under the lock and claimed outside it: a claim waits on the
        database, and meanwhile the threads ending their runs must not wait on the claim."""
        if self._stopping.is_set():
            return 0
        with self._lock:
            free = self.concurrency - len(self._active) - self._claiming
            if free <= 0:
                return 0
            self._claiming += free
        claimed: list[Run] = []
        try:
            claimed = self.store.claim_next(
                owner=self.id, limit=free, lease_s=self.settings.agent_run_lease_s
            )
        finally:
            with self._lock:
                self._claiming -= free
                self._active.update(run.id for run in claimed)
        for run in claimed:
            self._threads.submit(run)
        return len(claimed)

    def heartbeat(self) -> None:
        self.reload_settings()
        lost = self.store.renew_leases(
            owner=self.id, run_ids=self._running_ids(), lease_s=self.settings.agent_run_lease_s
        )
        for run_id in lost:
            log.warning("run %s: lease lost to another worker; this worker stops writing", run_id)
        self._record()

    def reload_settings(self) -> None:
        """Take on changed settings without a restart (each heartbeat, and on SIGHUP): the
        LLM, email and WhatsApp, budgets, risk levels, approvers... reach the next step of
        every run. Those that need a restart (RESTART_SETTINGS) are logged once as such."""
        if self._load_settings is None:
            return
        try:
            fresh = self._load_settings()
        except ConfigError as exc:
            log.error("settings not reloaded: %s", exc)
            return
        changed = changed_settings(self.settings, fresh)
        later = [name for name in changed if name in RESTART_SETTINGS]
        for name in later:
            if name not in self._told_restart:
                log.warning("%s changed: restart the worker to apply it", name.upper())
                self._told_restart.add(name)
        now = {name: getattr(fresh, name) for name in changed if name not in RESTART_SETTINGS}
        if not now:
            return
        settings = self.settings.model_copy(update=now)
        runtime = self.runtime.reloaded(settings)
        with self._lock:
            self.runtime, self.settings = runtime, settings
            self._orchestrator = runtime.orchestrator()
        log.info("settings reloaded: %s", ", ".join(name.upper() for name in now))

    def fire_schedules(self) -> list[Run]:
        """Queue one run per recurring objective whose slot has come (standard crontab in
        the objective's time zone: agent_core/schedules.py)."""
        fired = []
        now = self.store.now()
        for objective in self.store.list_objectives():
            if not (objective.enabled and objective.schedule):
                continue
            try:
                slot = self._due_slot(objective, now)
            except ValueError as exc:  # stored before the rules it breaks: the others go on
                self._unreadable_schedule(objective, exc)
                continue
            if slot is None:
                continue
            run = self.store.schedule_run(objective.id, slot)
            if run is not None:
                fired.append(run)
                log.info(
                    "objective %r: slot %s -> run #%d %s",
                    objective.title,
                    f"{slot:%Y-%m-%d %H:%M} UTC",
                    run.run_number,
                    run.status,
                )
        return fired

    def recover(self) -> None:
        requeued, failed = self.store.recover_lapsed_runs(
            max_attempts=self.settings.agent_run_max_attempts
        )
        for run_id in requeued:
            log.info("run %s: its worker stopped answering; queued again", run_id)
        for run_id in failed:
            log.warning("run %s: failed (worker_lost) after too many attempts", run_id)

    def maintain(self) -> None:
        report = run_maintenance(self.store, self.settings, self.runtime.notifier)
        if report.ledger_problem:
            log.warning(
                "maintenance: the ledger was not sealed nor pruned: %s", report.ledger_problem
            )
        if (
            report.approvals_expired
            or report.events_pruned
            or report.notifications_sent
            or report.days_summarized
        ):
            log.info("maintenance: %s", "; ".join(line.strip() for line in report.lines()))

    # helpers ----------------------------------------------------------------------------------

    def _due_slot(self, objective: Objective, now: datetime) -> datetime | None:
        assert objective.schedule is not None
        last = self.store.last_schedule_slot(objective.id)
        after = max(filter(None, [last, objective.updated_at]))
        return latest_due_slot(objective.schedule, objective.timezone, after=after, now=now)

    def _unreadable_schedule(self, objective: Objective, problem: ValueError) -> None:
        """Say once per worker and schedule, not every heartbeat, that it does not fire."""
        key = (objective.id, objective.schedule)
        if key not in self._unreadable:
            self._unreadable.add(key)
            log.warning(
                "objective %r does not fire until its schedule is fixed: %s",
                objective.title,
                problem,
            )

    def _execute(self, run: Run) -> None:
        started = time.monotonic()
        log.info("run %s (#%d) started", run.id, run.run_number)
        try:
            ended = self._orchestrator.execute(
                run.id, should_stop=self._stopping.is_set, claimed=run
            )
            waiting = None
            if ended.status is RunStatus.PAUSED:
                found = self.store.step_awaiting_decision(ended.id)
                waiting = found[2] if found else None
            line = run_log_line(ended, waiting)
            log.log(
                logging.WARNING if ended.status is RunStatus.FAILED else logging.INFO,
                "%s; %.1f s, %s, %s",
                line,
                time.monotonic() - started,
                counted(ended.steps_count, "step"),
                counted(ended.tool_calls_count, "tool call"),
            )
        except AgentRuntimeError as exc:
            log.error("run %s stopped: %s", run.id, exc)
        except Exception:
            log.exception("run %s crashed in the worker", run.id)
        finally:
            with self._lock:
                self._active.discard(run.id)
                self._ended.notify_all()

    def _wait_for_runs(self, timeout_s: float) -> None:
        """Return when no run is executing, or after `timeout_s`."""
        with self._lock:
            self._ended.wait_for(lambda: not self._active, timeout=max(0.0, timeout_s))

    def _running_ids(self) -> list[str]:
        with self._lock:
            return list(self._active)

    def _record(self, *, stopped: bool = False) -> None:
        with self._record_lock:
            if self._recorded_stop:
                return
            self.store.record_worker(
                worker_id=self.id,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                concurrency=self.concurrency,
                running=self._running_ids(),
                stopped=stopped,
            )
            self._recorded_stop = stopped

    def _guarded(self, job: Callable[[], object], name: str) -> Callable[[], None]:
        """A job that logs one line instead of dying when the database is away."""

        def run() -> None:
            try:
                job()
            except AgentRuntimeError as exc:
                log.error("%s: %s", name, exc)
            except Exception:
                log.exception("%s failed", name)

        return run


class RunThreads:
    """Long-lived daemon threads executing the runs handed to them, one thread more each time
    all are busy (so no more threads than runs at once). A thread keeps what it built from one
    run to the next (its LLM client, TLS context and open connection:
    agent_core/llm_loop.py); being daemons, a run stuck in a long step never holds up the
    process's exit."""

    def __init__(
        self, execute: Callable[[Run], object], *, then: Callable[[], object], name: str
    ) -> None:
        self._execute = execute
        self._then = then  # called by a thread each time it is free again
        self._name = name
        self._queue: queue.SimpleQueue[Run | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0

    def submit(self, run: Run) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                thread = threading.Thread(
                    target=self._serve, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._queue.put(run)

    def stop(self) -> None:
        """Let every thread end once it is idle; runs submitted later start new ones."""
        with self._lock:
            for _ in self._threads:
                self._queue.put(None)
            self._threads.clear()
            self._idle = 0

    def _serve(self) -> None:
        while (run := self._queue.get()) is not None:
            try:
                self._execute(run)
            finally:
                with self._lock:
                    self._idle += 1
            self._then()


def split_concurrency(total: int, processes: int) -> list[int]:
    """`total` runs at once spread over `processes` processes, as evenly as possible."""
    processes = max(1, min(processes, total))
    base, extra = divmod(total, processes)
    return [base + (1 if index < extra else 0) for index in range(processes)]


def supervise(concurrencies: list[int], *, shutdown_s: float) -> int:
    """Run one worker process per entry (a Python process uses one core: several use
    several) and keep them running: a process that dies is started again. SIGTERM or Ctrl-C
    is passed on, and each process shuts down gracefully; so is SIGHUP (re-read settings)."""

    def spawn(concurrency: int) -> subprocess.Popen[bytes]:
        command = [
            sys.executable,
            "-m",
            "agent_core",
            "worker",
            "--processes",
            "1",
            "--concurrency",
            str(concurrency),
            "--supervised",
        ]
        return subprocess.Popen(command)

    children = [spawn(concurrency) for concurrency in concurrencies]
    # The handlers only raise flags: the main thread may hold a lock they would need
    # (Popen's, in poll()) when a signal arrives. The loop below passes the signals on.
    requested = {signal.SIGTERM: False, signal.SIGHUP: False}

    def stop(*_: object) -> None:
        requested[signal.SIGTERM] = True

    def reload(*_: object) -> None:  # SIGHUP: every process re-reads its settings
        requested[signal.SIGHUP] = True

    def pass_on(sig: signal.Signals) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(sig)

    handlers = {signal.SIGTERM: stop, signal.SIGINT: stop, signal.SIGHUP: reload}
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    log.info("supervising %d worker processes", len(children))
    try:
        while True:
            time.sleep(1.0)
            if requested[signal.SIGTERM]:
                pass_on(signal.SIGTERM)
                break
            if requested[signal.SIGHUP]:
                requested[signal.SIGHUP] = False
                pass_on(signal.SIGHUP)
            for index, child in enumerate(children):
                if child.poll() is not None:
                    log.warning(
                        "worker process %d exited (%s); starting it again",
                        child.pid,
                        child.returncode,
                    )
                    children[index] = spawn(concurrencies[index])
        deadline = time.monotonic() + shutdown_s + 10
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
