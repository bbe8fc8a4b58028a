"""`python -m agent_core up --demo`: one command starts the dashboard and a worker, the demo
runs to its approval with no LLM configured, and Ctrl-C (SIGTERM) stops both cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from agent_core.config import cpu_cores
from agent_core.up import listen_problem
from agent_core.worker import split_concurrency
from tests.peers import free_port

REPO = Path(__file__).resolve().parent.parent


def cli(args, cwd, env):
    return subprocess.run(
        [sys.executable, "-m", "agent_core", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def wait_for(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def clean_env(isolated_environment):
    env = {key: value for key, value in os.environ.items() if not key.startswith("AGENT_")}
    env.pop("DATABASE_URL", None)
    env["PYTHONPATH"] = str(REPO)
    return env


def test_up_demo_serves_the_dashboard_runs_the_demo_to_its_approval_and_stops_cleanly(
    isolated_environment, clean_env
):
    port = free_port()
    up = subprocess.Popen(
        [sys.executable, "-m", "agent_core", "up", "--demo", "--port", str(port)],
        cwd=isolated_environment,
        env=clean_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    try:
        ready = (
            f"agent runtime is up: open http://127.0.0.1:{port}  "
            "(Ctrl-C stops the dashboard and the worker)"
        )
        wait_for(
            lambda: seen.append(up.stdout.readline()) or seen[-1].strip() == ready,
            90,
            "the ready line",
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5) as ok:
            assert (ok.status, ok.read()) == (200, b"ok")

        env = {**clean_env, "DATABASE_URL": "sqlite:///agent_demo.db"}
        assert "AGENT_SECRET_KEY=" in (isolated_environment / ".env").read_text()
        # The default: the default concurrency spread over one process per core.
        processes = len(split_concurrency(4, cpu_cores()))
        wait_for(
            lambda: (
                len(
                    json.loads(
                        cli(["worker", "status", "--json"], isolated_environment, env).stdout
                    )
                )
                == processes
            ),
            30,
            "the heartbeat of each worker process",
        )
        objectives = json.loads(
            cli(["objective", "list", "--json"], isolated_environment, env).stdout
        )
        follow_up = next(o for o in objectives if o["title"] == "Follow up last week's leads")
        started = cli(
            ["run", "start", follow_up["id"], "--json"],
            isolated_environment,
            {**env, "AGENT_ENABLED": "true"},
        )
        assert started.returncode == 0, started.stderr
        run_id = json.loads(started.stdout)["id"]

        def paused():
            shown = json.loads(
                cli(["run", "show", run_id, "--json"], isolated_environment, env).stdout
            )
            return shown if shown["run"]["status"] == "paused" else None

        detail = wait_for(paused, 60, "the demo run to pause for approval")
        (approval,) = detail["approvals"]
        assert approval["tool_name"] == "send_email"
        assert detail["steps"][0]["model"] == "demo-model (scripted)"

        def told() -> set[str]:  # by email and by WhatsApp, both into the demo's outbox
            outbox = isolated_environment / "demo_outbox.jsonl"
            lines = outbox.read_text().splitlines() if outbox.exists() else []
            return {json.loads(line)["to"] for line in lines}

        wait_for(
            lambda: {"admin@example.com", "+15555550100"} <= told(),
            30,
            "the approval request in the outbox, by email and by WhatsApp",
        )
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            rest = "".join(seen) + up.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            up.kill()
            raise
    assert up.returncode == 0
    assert rest.rstrip().endswith("agent runtime stopped")
    assert "Traceback" not in rest
    assert rest.count(f"http://127.0.0.1:{port}") == 1  # up's own line, not Streamlit's too
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
    status = cli(
        ["worker", "status", "--json"],
        isolated_environment,
        {**clean_env, "DATABASE_URL": "sqlite:///agent_demo.db"},
    )
    assert json.loads(status.stdout) == []
    assert re.search(r"worker \S+ stopped", rest)


def start_up(cwd, env):
    """`up` in a process group of its own, as a terminal starts it: Ctrl-C reaches the group."""
    return subprocess.Popen(
        [sys.executable, "-m", "agent_core", "up", "--port", str(free_port())],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def stopped_quietly(up, sig=signal.SIGINT):
    """Send `sig` to `up`'s process group (Ctrl-C sends SIGINT to it) and check that
    everything stopped: no traceback, the last line, exit code 0, no process left."""
    try:
        os.killpg(up.pid, sig)
        out = up.communicate(timeout=60)[0]
        left = in_group(up.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(up.pid, signal.SIGKILL)
    assert "Traceback" not in out
    assert "Aborted" not in out
    assert out.rstrip().endswith("agent runtime stopped")
    assert up.returncode == 0
    assert left == []


def in_group(pgid, *, children_of=None):
    """The live processes of process group `pgid` (those `children_of` started, if given),
    as Linux's /proc shows them."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):  # gone meanwhile
            state, parent, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if int(group) == pgid and state != "Z" and children_of in (None, int(parent)):
                found.append(int(stat.parent.name))
    return found


# From 0.25 s `up` is loading its modules and opening its store (0.2-0.5 s on an idle
# machine, later on a busy one): Python's KeyboardInterrupt could land in a weakref callback
# there (SQLAlchemy's, as the store closed), which swallowed it, and `up` served on.
@pytest.mark.parametrize("after_s", [0.25, 0.35, 0.45, 0.55, 0.7, 0.75, 0.8, 0.9, 1.2, 2.0])
def test_ctrl_c_while_up_starts_stops_everything_without_a_traceback(
    isolated_environment, clean_env, after_s
):
    """A terminal's Ctrl-C reaches the whole process group: `up`, and its dashboard while
    Streamlit is still loading. Whenever it lands, everything stops, quietly."""
    up = start_up(isolated_environment, clean_env)
    time.sleep(after_s)
    stopped_quietly(up)


@pytest.mark.parametrize("after_s", [0.0, 0.005, 0.01, 0.02])
def test_ctrl_c_as_up_starts_its_worker_stops_it_without_a_traceback(
    isolated_environment, clean_env, after_s
):
    """The worker (started first) is a new Python process when the Ctrl-C lands: it starts
    ignoring Ctrl-C (Python printed "Could not import runpy module" and a traceback, landing
    while it loaded its first modules), and `up` stops it."""
    up = start_up(isolated_environment, {**clean_env, "AGENT_ENABLED": "true"})
    deadline = time.monotonic() + 60
    while not in_group(up.pid, children_of=up.pid) and up.poll() is None:
        if time.monotonic() > deadline:
            os.killpg(up.pid, signal.SIGKILL)
            pytest.fail("the worker did not start")
        time.sleep(0.001)
    assert up.poll() is None, "up stopped before it started its worker"
    time.sleep(after_s)
    stopped_quietly(up)


def test_sigterm_while_up_loads_stops_it_as_ctrl_c_does(isolated_environment, clean_env):
    """A stop that comes before the supervisor takes the signals over is kept for it: SIGTERM
    too (it ended `up` by the signal, with no word)."""
    up = start_up(isolated_environment, clean_env)
    time.sleep(0.3)
    stopped_quietly(up, signal.SIGTERM)


def test_up_on_a_port_already_taken_says_so_and_starts_nothing(isolated_environment, clean_env):
    """Another program on the port is never taken for the dashboard: one sentence, exit 2."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli(["up", "--port", str(port)], isolated_environment, clean_env)
        demo = listen_problem("127.0.0.1", port, demo=True)
    assert result.returncode == 2
    assert result.stdout.strip().splitlines()[-1] == (
        f"error: port {port} on 127.0.0.1 is already in use (is agent runtime already "
        f"running?): stop that program or choose another port: `make run PORT={port + 1}`, "
        f"or `--port {port + 1}` when you start `.venv/bin/python -m agent_core up` yourself"
    )
    assert "agent runtime is up" not in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert demo is not None
    assert demo.endswith(
        f"`make demo PORT={port + 1}`, or `--port {port + 1}` when you start "
        "`.venv/bin/python -m agent_core up --demo` yourself"
    )


@pytest.mark.parametrize("target", ["run", "demo"])
def test_make_run_takes_the_port_the_advice_names(target):
    """`make run PORT=8502`, as the sentence above advises, starts `up` on that port (make
    cannot pass `--port` on); without PORT, `up` keeps its own default."""

    def planned(*args: str) -> str:
        dry = subprocess.run(
            ["make", "--dry-run", "--no-print-directory", "-C", str(REPO), target, *args],
            env={
                key: value
                for key, value in os.environ.items()
                if key != "PORT" and not key.startswith("MAKE")
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return next(line for line in dry.stdout.splitlines() if "-m agent_core up" in line)

    assert planned("PORT=8502").endswith(" --port 8502")
    assert "--port" not in planned()


def test_up_on_a_host_that_is_not_here_is_one_sentence(isolated_environment, clean_env):
    result = cli(["up", "--host", "999.1.1.1"], isolated_environment, clean_env)
    assert result.returncode == 2
    assert (
        result.stdout.strip()
        .splitlines()[-1]
        .startswith("error: cannot listen on '999.1.1.1': it is not an address")
    )
    assert "Traceback" not in result.stdout + result.stderr


def _serving(up):
    """Read `up`'s lines until it says it is up; the lines read."""
    seen = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = up.stdout.readline()
        if not line:
            break
        seen.append(line)
        if "agent runtime is up" in line:
            return seen
    os.killpg(up.pid, signal.SIGKILL)
    pytest.fail(f"up did not start: {''.join(seen)}")


@pytest.mark.parametrize("whole_group", [True, False], ids=["terminal-closed", "kill-hup"])
def test_a_hang_up_stops_up_and_its_worker(isolated_environment, clean_env, whole_group):
    """A closed terminal (or a lost SSH session) sends SIGHUP to the whole group; `kill -HUP`
    to `up` alone. Either stops everything `up` started: its worker is not left running."""
    up = start_up(isolated_environment, {**clean_env, "AGENT_ENABLED": "true"})
    _serving(up)
    assert in_group(up.pid, children_of=up.pid), "up started no children"
    if whole_group:
        stopped_quietly(up, signal.SIGHUP)
        return
    try:
        up.send_signal(signal.SIGHUP)
        out = up.communicate(timeout=60)[0]
        left = in_group(up.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(up.pid, signal.SIGKILL)
    assert out.rstrip().endswith("agent runtime stopped")
    assert "Traceback" not in out
    assert (up.returncode, left) == (0, [])
