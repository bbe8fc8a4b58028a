"""Who may see the dashboard, and under which name their decisions are recorded.

- Served on 127.0.0.1 (the default, `.streamlit/config.toml`) with nothing configured: open
  to whoever can reach the machine's loopback, deciding under their OS user name.
- `AGENT_ADMIN_PASSWORD` set (env, `.env` or `.streamlit/secrets.toml`): the password is
  asked first (constant-time comparison; wrong tries slow that client's further tries down,
  never another client's), then the admin's name once, which the ledger records with each
  decision.
- Streamlit's OIDC login configured (`[auth]` in `.streamlit/secrets.toml`): used instead of
  the password; the name comes from the identity provider.
- Served on any other address with neither: nothing is shown but how to set one.

A signed approval link (links.py) opens its one approval without any of this.
"""

from __future__ import annotations

import getpass
import hmac
import math
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import streamlit as st
from streamlit import config

from agent_core import api

NAME_KEY = "admin_name"
PASSED_KEY = "password_passed"
FREE_TRIES = 3
MAX_DELAY_S = 60.0
MAX_CLIENTS = 10_000
FORGET_AFTER_S = 3600.0
CLIENT_KEY = "login_client"
# Every client together: past this many wrong passwords within the window, tries are spaced
# at least GLOBAL_SPACING_S apart, whoever makes them. A client Streamlit cannot tell apart
# (on 127.0.0.1, or behind a proxy on this machine, it knows no address) could otherwise
# open a new session for every few guesses; this bounds guessing to one try per
# GLOBAL_SPACING_S, and slows the admin by that much at most.
GLOBAL_FREE_TRIES = 10
GLOBAL_WINDOW_S = 600.0
GLOBAL_SPACING_S = 2.0


@dataclass
class _Guesses:
    """One client's wrong passwords in a row, and when the last one came."""

    failures: int = 0
    last_failure: float = 0.0


@dataclass
class _Throttle:
    """Wrong passwords per client (its IP address, or its browser session when Streamlit
    does not know the address): after a few, each further try from that client must wait
    longer (doubling up to a minute). And of every client together: past GLOBAL_FREE_TRIES
    within the window, tries are GLOBAL_SPACING_S apart. Guessing is slow for the guesser,
    and never locks out the admin typing the right password elsewhere (who waits a few
    seconds at most)."""

    clients: dict[str, _Guesses] = field(default_factory=dict)
    recent: deque[float] = field(default_factory=deque)  # every client's, within the window
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_s(self, client: str, now: float) -> float:
        with self.lock:
            while self.recent and now - self.recent[0] > GLOBAL_WINDOW_S:
                self.recent.popleft()
            wait = 0.0
            if len(self.recent) >= GLOBAL_FREE_TRIES:
                wait = max(0.0, self.recent[-1] + GLOBAL_SPACING_S - now)
            guesses = self.clients.get(client)
            if guesses is None or guesses.failures < FREE_TRIES:
                return wait
            delay = min(MAX_DELAY_S, 2.0 ** (guesses.failures - FREE_TRIES + 1))
            return max(wait, guesses.last_failure + delay - now)

    def failed(self, client: str, now: float) -> None:
        with self.lock:
            if len(self.clients) >= MAX_CLIENTS:  # forget those who stopped guessing
                self.clients = {
                    key: guesses
                    for key, guesses in self.clients.items()
                    if now - guesses.last_failure < FORGET_AFTER_S
                }
            guesses = self.clients.setdefault(client, _Guesses())
            guesses.failures += 1
            guesses.last_failure = now
            self.recent.append(now)

    def passed(self, client: str) -> None:
        with self.lock:
            self.clients.pop(client, None)


@st.cache_resource(show_spinner=False)
def _throttle() -> _Throttle:
    return _Throttle()


def _client() -> str:
    """Who is guessing: the connection's IP address, else this browser session."""
    address = st.context.ip_address
    if isinstance(address, str) and address:  # None on localhost (and not a str in AppTest)
        return f"ip:{address}"
    if CLIENT_KEY not in st.session_state:
        st.session_state[CLIENT_KEY] = secrets.token_hex(8)
    return f"session:{st.session_state[CLIENT_KEY]}"


def served_on_loopback() -> bool:
    """Whether the server listens on the loopback interface only (the client cannot lie
    about this, unlike the Host header)."""
    address = config.get_option("server.address")
    if not address:
        return False  # unset: Streamlit listens on every interface
    return str(address).startswith("unix://") or api.is_loopback(str(address))


def reached_by_loopback_name() -> bool:
    """Whether the browser reached the dashboard by a loopback name (localhost, 127.0.0.1,
    [::1]): a page of another site whose name was pointed at 127.0.0.1 (DNS rebinding)
    sends its own. `up` also has Streamlit refuse such connections (server.allowedHosts);
    this holds when the dashboard is started another way. No Host header (no browser):
    nothing to check."""
    host = st.context.headers.get("Host") if st.context.headers else None
    if not host:
        return True
    name = host[1 : host.find("]")] if host.startswith("[") else host.split(":", 1)[0]
    return api.is_loopback(name)


def oidc_configured() -> bool:
    """Whether `[auth]` is configured for Streamlit's OIDC login (with Authlib installed)."""
    try:
        from streamlit.auth_util import is_authlib_installed, validate_auth_credentials

        if not is_authlib_installed():
            return False
        validate_auth_credentials("default")
    except Exception:  # noqa: BLE001 - any gap in the [auth] section means: not configured
        return False
    return True


def authenticated(settings: api.Settings) -> bool:
    """Whether this session may see the dashboard now (no UI is drawn)."""
    if oidc_configured():
        return bool(st.user.get("is_logged_in", False))
    if settings.agent_admin_password is not None:
        return bool(st.session_state.get(PASSED_KEY)) and bool(st.session_state.get(NAME_KEY))
    return served_on_loopback() and reached_by_loopback_name()


def current_admin(settings: api.Settings) -> str:
    """The name decisions are recorded under."""
    if oidc_configured():
        return str(st.user.get("name") or st.user.get("email") or "admin")
    name = st.session_state.get(NAME_KEY)
    if name:
        return str(name)
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "admin"


def login(settings: api.Settings) -> None:
    """Draw what this session must do to get in, and stop the script there."""
    if oidc_configured():
        st.title("Agent runtime")
        st.write("Sign in to see your agents.")
        if st.button("Sign in", type="primary", key="oidc_login"):
            st.login()
        st.stop()
    if settings.agent_admin_password is None and served_on_loopback():
        st.title("Agent runtime")
        st.error(
            "This dashboard was opened under a name that is not this machine's own, so "
            "nothing is shown: open it at http://127.0.0.1 with its port (or localhost)."
        )
        st.stop()
    if settings.agent_admin_password is None:
        st.title("Agent runtime")
        st.error(
            "This dashboard is reachable from other machines and has no login: nothing is "
            "shown. Set AGENT_ADMIN_PASSWORD (in the environment, .env or "
            ".streamlit/secrets.toml) or configure an [auth] section for single sign-on, "
            "then restart it; or serve it on 127.0.0.1 only."
        )
        st.stop()
    if not st.session_state.get(PASSED_KEY):
        _password_form(settings)
        st.stop()
    _name_form(settings)
    st.stop()


def _password_form(settings: api.Settings) -> None:
    st.title("Agent runtime")
    throttle, client = _throttle(), _client()
    with st.form("login", border=True):
        password = st.text_input("Password", type="password", key="password")
        submitted = st.form_submit_button("Log in", type="primary")
    if not submitted:
        return
    wait = throttle.wait_s(client, time.monotonic())
    if wait > 0:
        seconds = math.ceil(wait)
        st.error(
            f"Too many wrong passwords: try again in {seconds} second{'' if seconds == 1 else 's'}."
        )
        return
    expected = settings.agent_admin_password
    assert expected is not None
    if hmac.compare_digest(password.encode("utf-8"), expected.get_secret_value().encode("utf-8")):
        throttle.passed(client)
        st.session_state[PASSED_KEY] = True
        st.rerun()
    throttle.failed(client, time.monotonic())
    time.sleep(0.5)
    st.error("Wrong password.")


def _name_form(settings: api.Settings) -> None:
    st.title("Agent runtime")
    st.write("Your name is recorded with every decision you make.")
    with st.form("who", border=True):
        if settings.agent_approvers:
            name = st.selectbox("Your name", settings.agent_approvers, key="name_choice")
        else:
            name = st.text_input("Your name", key="name_input")
        submitted = st.form_submit_button("Continue", type="primary")
    if submitted:
        cleaned = (name or "").strip()
        if not cleaned:
            st.error("Type your name to continue.")
            return
        st.session_state[NAME_KEY] = cleaned
        st.rerun()
