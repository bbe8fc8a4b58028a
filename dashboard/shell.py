"""The frame around every page: navigation, the access gate, the sidebar, the demo banner.

`app.py` calls `run_app()` (navigation, then the gate, so a deep link survives the login).
Every page starts with `begin()`, which applies the gate again and draws the sidebar:
Streamlit may run a file of `pages/` directly (its older multipage mode, until a session
has called `st.navigation`, and always under AppTest), and a page must neither show data
nor lose its frame on that path.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from agent_core import api
from dashboard import access
from dashboard.core import Core, load_core, shown_errors
from dashboard.plain import plain


@dataclass(frozen=True)
class PageSpec:
    path: str
    title: str
    icon: str
    url_path: str
    hidden: bool = False


PAGES = (
    PageSpec("pages/home.py", "Overview", ":material/home:", "home"),
    PageSpec("pages/objectives.py", "Objectives", ":material/flag:", "objectives"),
    PageSpec("pages/runs.py", "Runs", ":material/history:", "runs"),
    PageSpec("pages/approvals.py", "Approvals", ":material/gavel:", "approvals"),
    PageSpec("pages/analytics.py", "Analytics", ":material/insights:", "analytics"),
    PageSpec("pages/system.py", "System", ":material/settings:", "system"),
    PageSpec("pages/run.py", "Run", ":material/play_arrow:", "run", hidden=True),
    PageSpec("pages/approval.py", "Approval", ":material/task_alt:", "approval", hidden=True),
)
TOKEN_PAGE = "approval"


def _page(spec: PageSpec) -> st.Page:
    return st.Page(
        spec.path,
        title=spec.title,
        icon=spec.icon,
        url_path=spec.url_path,
        default=spec.url_path == "home",
        visibility="hidden" if spec.hidden else "visible",
    )


def page_path(url_path: str) -> str:
    """The file of a page, for st.page_link and st.switch_page."""
    return next(spec.path for spec in PAGES if spec.url_path == url_path)


def run_app() -> None:
    """app.py: navigation first (so a deep link and its query survive the login), then the
    gate, then the sidebar and the page."""
    st.set_page_config(page_title="Agent runtime", page_icon=":material/smart_toy:", layout="wide")
    core = load_core()
    allowed = access.authenticated(core.settings)
    page = st.navigation(
        [_page(spec) for spec in PAGES], position="sidebar" if allowed else "hidden"
    )
    if page.url_path == TOKEN_PAGE and st.query_params.get("token"):
        page.run()  # the signed link is the credential for that one approval
        return
    if not allowed:
        access.login(core.settings)
    page.run()


def begin(*, token_page: bool = False) -> Core:
    """The first line of every page: the gate (again: see the module docstring), the
    sidebar, the demo banner, and the core the page works with."""
    core = load_core()
    if token_page and st.query_params.get("token"):
        return core
    if not access.authenticated(core.settings):
        access.login(core.settings)
    with st.sidebar, shown_errors():
        _sidebar(core)
    if core.settings.agent_demo:
        st.info(
            "Demo mode: the agent is a scripted demo model working on example data, "
            "not a real LLM.",
            icon=":material/science:",
        )
    return core


def _sidebar(core: Core) -> None:
    store, settings = core.store, core.settings
    if settings.agent_demo:
        st.caption(":violet-badge[Demo mode] scripted model, example data")
    waiting = store.pending_approvals_count()
    if waiting:
        label = f"{waiting} approval{'s' if waiting > 1 else ''} waiting"
        st.page_link(page_path("approvals"), label=label, icon=":material/notifications_active:")
    else:
        st.caption(":material/check_circle: No approval waiting")
    workers = api.live_workers(store, settings)
    if workers:
        busy = sum(len(worker.running) for worker in workers)
        st.caption(
            f":material/bolt: {len(workers)} worker{'s' if len(workers) > 1 else ''} alive, "
            f"{busy} run{'s' if busy != 1 else ''} in progress"
        )
    else:
        st.warning(
            "No worker is running: queued runs will wait. Start one with "
            "`.venv/bin/python -m agent_core up` (or `python scheduler.py`).",
            icon=":material/warning:",
        )
    st.caption(f"Deciding as **{plain(access.current_admin(settings))}**")
