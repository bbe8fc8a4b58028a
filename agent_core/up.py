"""`python -m agent_core up`: the dashboard and a worker, started and watched together.

Both are child processes: the dashboard is `streamlit run app.py` bound to the given address
(127.0.0.1 unless told otherwise), the worker is `python -m agent_core worker`. A worker that
dies is started again; Ctrl-C or SIGTERM stops both (the worker gives its runs back first).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent_core.demo import DEMO_MODEL

log = logging.getLogger("agent_core.up")

PROJECT = Path(__file__).resolve().parent.parent  # where app.py and dashboard/ are
HEALTH_TIMEOUT_S = 90.0
RESTART_PAUSE_S = 2.0
# A child that stops this many times within the window is broken, not unlucky: give up.
MAX_RESTARTS = 5
RESTART_WINDOW_S = 120.0


# The names a browser may reach a dashboard served on loopback by. Any other Host header
# is refused, so a web page whose name its attacker points at 127.0.0.1 (DNS rebinding)
# cannot open the dashboard's connection from the admin's browser.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str) -> list[str]:
    """Streamlit's `server.allowedHosts` for a dashboard served on `host`: on loopback, its
    loopback names only; on a network, any (a login is required there: access.py)."""
    if not is_loopback(host):
        return ["*"]
    return list(dict.fromkeys([*LOOPBACK_NAMES, host.strip("[]")]))


def dashboard_command(host: str, port: int) -> list[str]:
    """`streamlit run app.py` through dashboard/serve.py (see why there)."""
    hosts = [option for name in allowed_hosts(host) for option in ("--server.allowedHosts", name)]
    return [
        sys.executable,
        "-m",
        "dashboard.serve",
        "--server.address",
        host,
        "--server.port",
        str(port),
        *hosts,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--logger.level",
        "warning",
        "--logger.hideWelcomeMessage",  # `up` says where to open it, once
        "true",
    ]


def worker_command() -> list[str]:
    return [sys.executable, "-m", "agent_core", "worker"]


def dashboard_url(host: str, port: int) -> str:
    """Where to open the dashboard (a wildcard address is reached through loopback)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}"


def another_port(port: int, *, demo: bool = False) -> str:
    """How to start on another port, for a `make run` (or `make demo`) user, who cannot
    pass `--port` through make, as for one who starts `up` themselves."""
    other = port + 1 if port < 65535 else port - 1
    make = "make demo" if demo else "make run"
    up = ".venv/bin/python -m agent_core up" + (" --demo" if demo else "")
    return f"`{make} PORT={other}`, or `--port {other}` when you start `{up}` yourself"


def listen_problem(host: str, port: int, *, demo: bool = False) -> str | None:
    """Why the dashboard could not listen on host:port, or None. Checked before anything
    starts, so that another program already answering there is never taken for ours."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return f"cannot listen on {host!r}: it is not an address of this machine ({reason})"
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the dashboard does
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {host} is already in use (is agent runtime already "
                    f"running?): stop that program or choose another port: "
                    f"{another_port(port, demo=demo)}"
                )
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def wait_healthy(url: str, *, timeout_s: float, alive: Callable[[], bool]) -> bool:
    """Whether the dashboard answers its health check within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


@dataclass
class Supervisor:
    """Keeps the dashboard and the worker running until told to stop."""

    env: Mapping[str, str]
    host: str
    port: int
    shutdown_s: float
    with_worker: bool = True
    demo: bool = False  # only to word the advice on another port (`make demo PORT=...`)
    say: Callable[[str], None] = print
    _children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # Raised by the signal handler, which takes no lock (the main thread may hold one it
    # would need, inside an Event or Popen.poll, when the signal arrives).
    _stopping: bool = False
    _restarts: dict[str, deque[float]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return dashboard_url(self.host, self.port)

    def _start(self, name: str) -> None:
        command = (
            dashboard_command(self.host, self.port) if name == "dashboard" else worker_command()
        )
        env = dict(self.env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT), env.get("PYTHONPATH")]))
        # Both start ignoring the terminal's Ctrl-C, which reaches the whole process group:
        # landing while Streamlit starts its server, or while Python starts the worker (before
        # it installs its own handlers), it left a traceback. `up` stops them with SIGTERM.
        self._children[name] = subprocess.Popen(command, env=env, preexec_fn=_ignore_ctrl_c)

    def run(self) -> int:
        problem = listen_problem(self.host, self.port, demo=self.demo)
        if problem:
            self.say(f"error: {problem}")
            return 2
        previous = {sig: signal.signal(sig, self._request_stop) for sig in stop_signals()}
        # A Ctrl-C, SIGTERM or hang-up that came while `up` was loading, kept by the handler
        # replaced here (StopRequest, agent_core/__main__.py): nothing starts.
        if any(getattr(handler, "stop_requested", False) for handler in previous.values()):
            self._stopping = True
        try:
            for name in (["worker"] if self.with_worker else []) + ["dashboard"]:
                if self._stopping:
                    return 0
                self._start(name)
            dashboard = self._children["dashboard"]
            if not wait_healthy(
                self.url,
                timeout_s=HEALTH_TIMEOUT_S,
                alive=lambda: dashboard.poll() is None and not self._stopping,
            ):
                if self._stopping:
                    return 0
                self.say(
                    f"error: the dashboard did not start on {self.host}:{self.port} "
                    f"(is the port taken? try {another_port(self.port, demo=self.demo)})"
                )
                return 1
            self.say(
                f"agent runtime is up: open {self.url}  (Ctrl-C stops the dashboard and the worker)"
            )
            while not self._stopping:
                time.sleep(1.0)
                if not self._stopping and not self._restart_dead():
                    return 1
            return 0
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _restart_dead(self) -> bool:
        """Start again what stopped; False when a child keeps stopping (it is broken: its
        own lines above say why), after saying so."""
        for name, child in list(self._children.items()):
            code = child.poll()
            if code is None:
                continue
            now = time.monotonic()
            recent = self._restarts.setdefault(name, deque())
            while recent and now - recent[0] > RESTART_WINDOW_S:
                recent.popleft()
            if len(recent) >= MAX_RESTARTS:
                self.say(
                    f"error: the {name} stopped {len(recent) + 1} times within "
                    f"{RESTART_WINDOW_S:.0f} s (last exit code {code}): see its lines above"
                )
                return False
            recent.append(now)
            log.warning("the %s stopped (exit code %s); starting it again", name, code)
            self.say(f"the {name} stopped (exit code {code}); starting it again")
            time.sleep(RESTART_PAUSE_S * len(recent))  # a little longer each time
            if not self._stopping:
                self._start(name)
        return True

    def _request_stop(self, *_: object) -> None:
        self._stopping = True

    def _stop_all(self) -> None:
        for child in self._children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.shutdown_s + 5
        for child in self._children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.say("agent runtime stopped")


def stop_signals() -> list[signal.Signals]:
    """What stops `up` and everything it started: Ctrl-C, SIGTERM, and the hang-up of its
    terminal (closed, or a lost SSH session: SIGHUP, unless ignored as under nohup), which
    would otherwise end `up` alone and leave its worker running, orphaned. (The worker
    command alone takes SIGHUP as "re-read the settings", as daemons do.)"""
    found = [signal.SIGTERM, signal.SIGINT]
    if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN:
        found.append(signal.SIGHUP)
    return found


def _ignore_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def child_environment(
    base: Mapping[str, str], *, host: str, port: int, demo: bool, secret_key: str
) -> dict[str, str]:
    """What the dashboard and the worker are started with: the caller's environment, the
    secret key both share, where approval links point, and the demo's settings."""
    env = dict(base)
    env["AGENT_SECRET_KEY"] = secret_key
    env.setdefault("AGENT_DASHBOARD_URL", dashboard_url(host, port))
    env.setdefault("PYTHONUNBUFFERED", "1")
    if demo:
        env.update(
            {
                "AGENT_DEMO": "true",
                "AGENT_ENABLED": "true",
                "AGENT_APPROVAL_FLOW": "true",
                "AGENT_DATA_TABLES": "app_leads",
                "ADMIN_EMAIL": env.get("ADMIN_EMAIL") or "admin@example.com",
                # A number kept for fiction: the demo's WhatsApp message goes to the outbox.
                "ADMIN_PHONE": env.get("ADMIN_PHONE") or "+15555550100",
                "AGENT_WORKER_POLL_S": "0.25",
                # An example price, so that the demo's Analytics page shows costs too.
                "AGENT_MODEL_PRICES": env.get("AGENT_MODEL_PRICES") or f"{DEMO_MODEL}=0.5/1.5",
            }
        )
    return env
