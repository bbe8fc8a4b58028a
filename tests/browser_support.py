"""Driving the real dashboard in a real browser: Debian's chromium through Playwright.

`DemoServer` is `python -m agent_core up --demo` in a folder of its own (what a newcomer
runs), with a password set so that the login is part of the journey and the signed
approval link is seen to work without it. The helpers wait on Streamlit's own state: the
app root `[data-testid="stApp"]` carries `data-test-script-state` (notRunning when the
script is done) and `data-test-connection-state` (CONNECTED), read after Streamlit's
~200 ms debounce. Nothing sleeps a fixed time beyond that debounce; data written in the
background (by the worker) is awaited by polling with reloads.

Widgets are found by their key: Streamlit gives each widget's container the CSS class
`st-key-<key>` (see `key()`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

try:
    from playwright.sync_api import Locator, Page
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # require_browser() says so (skip, or fail under CI)
    PlaywrightTimeout = TimeoutError

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "artifacts"
DOCS = REPO / "docs"
UNDER_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

PASSWORD = "journey-password-0123"
ADMIN_NAME = "Ada (browser journey)"
DEBOUNCE_MS = 250  # Streamlit reports a script run ~200 ms after the event that starts it
SETTLE_TIMEOUT_MS = 30_000
START_TIMEOUT_S = 90.0
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE_WIDTH = 390
PHONE = {
    "viewport": {"width": PHONE_WIDTH, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}

T = TypeVar("T")

_SETTLED = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app !== null
        && app.getAttribute('data-test-script-state') === 'notRunning'
        && app.getAttribute('data-test-connection-state') === 'CONNECTED';
}"""


# --- the browser ------------------------------------------------------------------------


def chromium_executable() -> str | None:
    """Debian's chromium (never a browser Playwright downloads)."""
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def require_browser() -> str:
    """The chromium to drive; without one the browser tests are skipped with the reason,
    except under CI (CI=true), where they must run: there it is a failure."""
    problem = None
    try:
        import playwright.sync_api  # noqa: F401 - only to know it is installed
    except ImportError:
        problem = "the playwright package is not installed (pip install -r requirements-dev.txt)"
    executable = chromium_executable()
    if problem is None and executable is None:
        problem = (
            "chromium is not installed (apt-get install chromium; .ci/run does it): "
            "the browser journey needs Debian's chromium"
        )
    if problem is not None:
        if UNDER_CI:
            pytest.fail(f"{problem}; under CI the browser tests must run, not skip")
        pytest.skip(problem)
    assert executable is not None
    return executable


# --- the server -------------------------------------------------------------------------


def wait_for(predicate: Callable[[], T], timeout_s: float, what: str, every_s: float = 0.2) -> T:
    """Poll a condition outside the browser (a process, a file) until it holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


@dataclass
class DemoServer:
    """`python -m agent_core up --demo --port PORT` running in `folder`."""

    folder: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.folder / "up.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cli_env(self) -> dict[str, str]:
        """What the CLI needs to work on the demo's database from the same folder."""
        return {**self.env, "DATABASE_URL": "sqlite:///agent_demo.db", "AGENT_ENABLED": "true"}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> DemoServer:
        ready = f"agent runtime is up: open {self.url}"
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agent_core", "up", "--demo", "--port", str(self.port)],
                cwd=self.folder,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        process = self.process
        deadline = time.monotonic() + START_TIMEOUT_S
        while ready not in self.log():
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"`up --demo` did not start; its output:\n{self.log()[-3000:]}")
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def cli(self, *args: str) -> object:
        """`python -m agent_core ARGS --json` on the demo's database; the JSON it prints."""
        done = subprocess.run(
            [sys.executable, "-m", "agent_core", *args, "--json"],
            cwd=self.folder,
            env=self.cli_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"agent_core {' '.join(args)} failed:\n{done.stderr}"
        return json.loads(done.stdout)

    def outbox(self) -> list[dict[str, object]]:
        """What the demo "sent" (demo_outbox.jsonl: approval emails and messages)."""
        path = self.folder / "demo_outbox.jsonl"
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip().endswith("}")]

    def approval_link(self, run_id: str, timeout_s: float = 30.0) -> str:
        """The signed `/approval?token=...` link of the approval email sent for `run_id`."""
        pattern = re.compile(r"^Decide: (\S+/approval\?token=\S+)$", re.MULTILINE)

        def sent() -> str | None:
            for record in self.outbox():
                body = str(record.get("body") or "")
                found = pattern.search(body)
                if f"(run {run_id})" in body and found:
                    return found.group(1)
            return None

        return wait_for(sent, timeout_s, f"the approval email of run {run_id} in the outbox")

    def assert_no_traceback(self) -> None:
        assert "Traceback" not in self.log(), self.log()[-5000:]


def server_environment() -> dict[str, str]:
    """The environment `up --demo` runs in: this one without the runtime's settings (a
    developer's own DATABASE_URL or AGENT_* never leaks in), plus the admin password."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AGENT_", "SMTP_", "TWILIO_", "ADMIN_"))
        and name not in ("DATABASE_URL", "HF_TOKEN")
    }
    env["PYTHONPATH"] = str(REPO)
    env["AGENT_ADMIN_PASSWORD"] = PASSWORD
    return env


def demo_server(folder: Path, port: int) -> Iterator[DemoServer]:
    """Start `up --demo` in `folder`, yield it, stop it (SIGTERM, as Ctrl-C)."""
    server = DemoServer(folder, port, server_environment())
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- waiting on Streamlit ---------------------------------------------------------------


def settle(page: Page) -> None:
    """Wait until Streamlit has finished the script run the last action started."""
    page.wait_for_timeout(DEBOUNCE_MS)
    page.wait_for_function(_SETTLED, timeout=SETTLE_TIMEOUT_MS)


def goto(page: Page, url: str) -> None:
    page.goto(url)
    settle(page)


def key(page: Page, widget_key: str) -> Locator:
    """The container Streamlit draws for the widget (or container) created with `key=`."""
    return page.locator(f".st-key-{widget_key}")


def main(page: Page) -> Locator:
    return page.locator('[data-testid="stMain"]')


def log_in_if_asked(page: Page) -> bool:
    """Pass the password form and the name form when the page shows them (once the page
    has drawn its title: the login's, or the page's own)."""
    main(page).get_by_role("heading", level=1).first.wait_for()
    password = key(page, "password")
    if not password.count():
        return False
    password.locator("input").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    settle(page)
    name = main(page).get_by_label("Your name")
    name.fill(ADMIN_NAME)
    page.get_by_role("button", name="Continue").click()
    settle(page)
    return True


def reload(page: Page) -> None:
    """A fresh page load (a new Streamlit session: the login is asked again, and the
    page and its query survive it)."""
    page.reload()
    settle(page)
    log_in_if_asked(page)


def until_shown(page: Page, locator: Locator, what: str, *, timeout_s: float = 60.0) -> Locator:
    """Wait for `locator` to be visible: the page's own refresh may bring it; if not
    within a few seconds, reload and look again, until `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            locator.first.wait_for(state="visible", timeout=5_000)
            return locator
        except PlaywrightTimeout:
            if time.monotonic() > deadline:
                shot(page, "timed-out")
                pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        reload(page)


def open_in_sidebar(page: Page, title: str) -> None:
    """Follow the sidebar's link to a page (same session, as a click does)."""
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title).click()
    settle(page)


def fill(page: Page, widget_key: str, text: str) -> None:
    """Type into a text input or text area and leave it (which submits the value)."""
    field_ = key(page, widget_key).locator("input, textarea").first
    field_.fill(text)
    field_.blur()
    settle(page)


def choose(page: Page, widget_key: str, option: str | re.Pattern[str]) -> None:
    """Pick an option of a selectbox or multiselect. The list is opened with the field in
    the middle of the screen: a list that opens at the bottom edge scrolls the page, and
    a scroll closes it."""
    box = key(page, widget_key).get_by_role("combobox")
    box.evaluate("element => element.scrollIntoView({block: 'center'})")
    box.click()
    page.get_by_role("listbox").get_by_role("option", name=option).click()
    if page.get_by_role("listbox").count():  # a multiselect stays open
        page.keyboard.press("Escape")
    settle(page)


def press(page: Page, widget_key: str, *, tap: bool = False) -> None:
    button = key(page, widget_key).get_by_role("button")
    if tap:
        button.tap()
    else:
        button.click()
    settle(page)


def key_with_prefix(locator: Locator, prefix: str) -> str:
    """The `key=` a container was created with, read back from its `st-key-` class."""
    classes = (locator.get_attribute("class") or "").split()
    return next(c.removeprefix("st-key-") for c in classes if c.startswith(f"st-key-{prefix}"))


def query_param(url: str | None, name: str) -> str:
    """The value of `name` in the query of `url` (a page's, or a link's href)."""
    found = re.search(rf"[?&]{name}=([^&#]+)", url or "")
    assert found, f"no {name}= in {url!r}"
    return found.group(1)


def overflow_px(page: Page) -> int:
    """How far the page is wider than the screen (0: nothing scrolls sideways): the
    document, and Streamlit's main element (the one that scrolls)."""
    return int(
        page.evaluate(
            """() => {
                const main = document.querySelector('[data-testid="stMain"]');
                return Math.max(
                    document.documentElement.scrollWidth - window.innerWidth,
                    main === null ? 0 : main.scrollWidth - main.clientWidth);
            }"""
        )
    )


# --- what a run leaves behind: screenshots and downloads --------------------------------


class _WholePage:
    """The viewport made as tall as the page for a screenshot: Streamlit scrolls inside
    its main element, so a "full page" screenshot of the document shows only the screen."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.size = page.viewport_size

    def __enter__(self) -> Page:
        assert self.size is not None
        height = self.page.evaluate(
            """() => Math.max(...[...document.querySelectorAll(
                '[data-testid="stMain"], [data-testid="stSidebarContent"]')].map(
                element => element.scrollHeight), window.innerHeight)"""
        )
        self.page.set_viewport_size({"width": self.size["width"], "height": int(height)})
        return self.page

    def __exit__(self, *exc: object) -> None:
        assert self.size is not None
        self.page.set_viewport_size(self.size)


def shot(page: Page, name: str) -> Path:
    """A screenshot of the whole page under tests/artifacts/ (git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    with _WholePage(page):
        page.screenshot(path=str(path), animations="disabled")
    return path


def docs_shot(name: str, area: Locator, top: Locator, bottom: Locator, margin: int = 16) -> Path:
    """A screenshot for the README: from `top` to the end of `bottom`, within `area`.
    Written to tests/artifacts/docs-NAME.png, and to docs/NAME.png as well when
    UPDATE_DOCS_SCREENSHOTS=1 (so that an ordinary run leaves the working tree clean)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"docs-{name}.png"
    with _WholePage(area.page) as page:
        frame, first, last = (part.bounding_box() for part in (area, top, bottom))
        assert frame is not None, f"{name}: the area is not on the page"
        assert first is not None, f"{name}: the top part is not on the page"
        assert last is not None, f"{name}: the bottom part is not on the page"
        x, y = max(frame["x"], first["x"] - margin), max(0, first["y"] - margin)
        right = min(frame["x"] + frame["width"], last["x"] + last["width"] + margin)
        clip = {
            "x": x,
            "y": y,
            "width": right - x,
            "height": last["y"] + last["height"] + margin - y,
        }
        page.screenshot(path=str(path), clip=clip, animations="disabled")
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(path, DOCS / f"{name}.png")
    return path


def download_csv(page: Page, button: Locator) -> Path:
    """Press a download button and return the file the browser saved (under
    tests/artifacts/downloads/), after checking it is a CSV with a header.

    The browser context must be created with `accept_downloads=True` (Playwright's
    default)."""
    target = ARTIFACTS / "downloads"
    target.mkdir(parents=True, exist_ok=True)
    with page.expect_download() as started:
        button.scroll_into_view_if_needed()
        button.click()
    download = started.value
    failure = download.failure()
    assert failure is None, f"the download failed: {failure}"
    path = target / download.suggested_filename
    download.save_as(path)
    assert path.suffix == ".csv", f"the button downloaded {path.name}, not a CSV file"
    header = path.read_text(encoding="utf-8-sig").splitlines()[:1]
    assert header, f"{path.name} is empty"
    assert "," in header[0], f"{path.name} has no CSV header line: {header[0]!r}"
    return path
