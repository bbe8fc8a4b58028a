"""A dashboard served on 127.0.0.1 without a login answers only a browser that names it so:
a web page whose name its attacker points at 127.0.0.1 (DNS rebinding) is refused, both by
the server `up` starts and by the page gate of a dashboard started another way."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from agent_core.up import dashboard_command
from tests.peers import free_port

REPO = Path(__file__).resolve().parent.parent
ATTACKER = "rebind.example"
HOME = "Latest runs"  # what the home page shows an admin


def start_dashboard(command: list[str], database_url: str) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AGENT_")}
    env.update(DATABASE_URL=database_url, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@pytest.fixture
def served(sqlite_database: str) -> Iterator[Callable[[Callable[[int], list[str]]], int]]:
    """`served(command_for)`: start the dashboard `command_for(port)` runs on a free port of
    127.0.0.1, on a fresh database; its port. Stopped afterwards."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(command_for: Callable[[int], list[str]]) -> int:
        port = free_port()
        process = start_dashboard(command_for(port), sqlite_database)
        processes.append(process)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                    return port
            except OSError:
                assert process.poll() is None, "the dashboard exited"
                time.sleep(0.3)
        pytest.fail("the dashboard did not answer its health check")

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=30)


async def _page_text(port: int, host: str) -> str:
    """Open the dashboard's connection as a browser at http://{host} would, run its home
    page, and return every text it shows."""
    address = f"ws://{host}/_stcore/stream"  # the Host header; the socket goes to 127.0.0.1
    texts: list[str] = []
    async with connect(
        address,
        host="127.0.0.1",
        port=port,
        origin=f"http://{host}",  # type: ignore[arg-type]
        subprotocols=["streamlit"],  # type: ignore[list-item]
        max_size=None,
    ) as connection:
        message = BackMsg()
        message.rerun_script.query_string = ""
        message.rerun_script.page_name = ""
        await connection.send(message.SerializeToString())
        while True:
            forward = ForwardMsg()
            forward.ParseFromString(await asyncio.wait_for(connection.recv(), 30))
            kind = forward.WhichOneof("type")
            if kind == "delta" and forward.delta.WhichOneof("type") == "new_element":
                element = forward.delta.new_element
                body = getattr(getattr(element, element.WhichOneof("type")), "body", None)
                if isinstance(body, str):
                    texts.append(body)
            if kind == "script_finished":
                break
    return "\n".join(texts)


def page_text(port: int, host: str) -> str:
    return asyncio.run(_page_text(port, host))


def test_the_dashboard_up_starts_refuses_a_connection_that_names_another_site(served):
    port = served(lambda port: dashboard_command("127.0.0.1", port))
    with pytest.raises(InvalidStatus) as refused:
        page_text(port, f"{ATTACKER}:{port}")
    assert refused.value.response.status_code == 403
    assert HOME in page_text(port, f"127.0.0.1:{port}")
    assert HOME in page_text(port, f"localhost:{port}")


def test_a_dashboard_started_without_that_guard_shows_such_a_page_nothing(served):
    """`streamlit run app.py` with every host allowed: the page gate still refuses."""
    port = served(
        lambda port: [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(REPO / "app.py"),
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--server.allowedHosts",
            "*",
        ]
    )
    shown = page_text(port, f"{ATTACKER}:{port}")
    assert "opened under a name that is not this machine's own" in shown
    assert HOME not in shown
    assert HOME in page_text(port, f"127.0.0.1:{port}")
