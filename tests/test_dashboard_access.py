"""Who may see the dashboard: open on 127.0.0.1, a password (then a name, once) when one is
set, and nothing at all when served on a network without a login."""

from __future__ import annotations

import re
import time

import pytest

from tests.dashboard_support import no_traceback, serve_on, text
from tests.support import make_objective

PASSWORD = "correct horse battery staple"


@pytest.fixture
def with_password(monkeypatch):
    monkeypatch.setenv("AGENT_ADMIN_PASSWORD", PASSWORD)


def log_in(at, password=PASSWORD):
    at.text_input(key="password").input(password)
    return at.button(key="FormSubmitter:login-Log in").click().run()


def test_on_loopback_without_a_password_the_dashboard_is_open(dashboard, live_store):
    make_objective(live_store, title="Weekly leads")
    at = dashboard.open("objectives")
    no_traceback(at)
    assert "Objectives" in text(at)
    assert at.selectbox(key="objective_choice").options[1].startswith("Weekly leads")


def test_served_on_a_network_without_a_login_it_shows_no_data_and_says_what_to_set(
    dashboard, live_store
):
    make_objective(live_store, title="Secret plans")
    serve_on("0.0.0.0")
    for page in ("home", "objectives", "runs", "approvals", "system"):
        at = dashboard.open(page)
        no_traceback(at)
        assert "Set AGENT_ADMIN_PASSWORD" in text(at)
        assert "Secret plans" not in text(at)
        assert not at.selectbox


def test_the_password_is_asked_first_and_a_wrong_one_is_refused(
    dashboard, live_store, with_password
):
    make_objective(live_store, title="Secret plans")
    at = dashboard.open("objectives")
    assert "Secret plans" not in text(at)
    assert [field.label for field in at.text_input] == ["Password"]
    log_in(at, "guess")
    no_traceback(at)
    assert "Wrong password." in text(at)
    assert "Secret plans" not in text(at)


def test_the_right_password_then_a_name_once_opens_the_dashboard(
    dashboard, live_store, with_password
):
    make_objective(live_store, title="Weekly leads")
    at = dashboard.open("objectives")
    log_in(at)
    assert [field.label for field in at.text_input] == ["Your name"]
    at.text_input(key="name_input").input("Ana")
    at.button(key="FormSubmitter:who-Continue").click().run()
    no_traceback(at)
    assert "Deciding as **Ana**" in text(at)
    assert at.selectbox(key="objective_choice").options[1].startswith("Weekly leads")
    at.switch_page("pages/runs.py").run()  # the session stays open: no second login
    assert "Runs" in text(at)


def test_repeated_wrong_passwords_slow_every_further_try_down(dashboard, live_store, with_password):
    at = dashboard.open("home")
    for _ in range(4):
        log_in(at, "guess")
    log_in(at, PASSWORD)  # even the right one must wait now
    assert "Too many wrong passwords: try again in" in text(at)
    assert [field.label for field in at.text_input] == ["Password"]


def test_a_deep_link_keeps_its_page_and_query_through_the_login(
    dashboard, live_store, with_password
):
    objective = make_objective(live_store, title="Weekly leads")
    run = live_store.create_run(objective.id)
    at = dashboard.open("run", id=run.id)
    assert "Weekly leads" not in text(at)
    log_in(at)
    at.text_input(key="name_input").input("Ana")
    at.button(key="FormSubmitter:who-Continue").click().run()
    no_traceback(at)
    assert f"Run #{run.run_number} · Weekly leads" in text(at)
    assert at.query_params["id"] in (run.id, [run.id])


def test_wrong_passwords_from_one_browser_never_lock_out_another(
    dashboard, live_store, with_password
):
    make_objective(live_store, title="Weekly leads")
    guesser = dashboard.open("home")
    for _ in range(5):
        log_in(guesser, "guess")
    log_in(guesser, PASSWORD)  # the guesser still waits, even with the right one
    assert "Too many wrong passwords: try again in" in text(guesser)

    admin = dashboard.open("objectives")  # another browser: its own session
    log_in(admin)
    no_traceback(admin)
    assert "Too many wrong passwords" not in text(admin)
    assert [field.label for field in admin.text_input] == ["Your name"]


def test_guesses_spread_over_new_sessions_are_slowed_down_for_everyone_not_locked_out(
    dashboard, live_store, with_password
):
    """On 127.0.0.1 (or behind a proxy on this machine) Streamlit knows no address: a
    guesser could open a new session for every try. Past ten wrong passwords in all, tries
    are two seconds apart, whoever makes them."""
    for _ in range(10):
        log_in(dashboard.open("home"), "guess")

    guesser = log_in(dashboard.open("home"), "guess")
    assert re.search(r"Too many wrong passwords: try again in [12] seconds?\.", text(guesser))
    assert "Wrong password." not in text(guesser)

    time.sleep(2.1)
    admin = log_in(dashboard.open("home"))
    no_traceback(admin)
    assert [field.label for field in admin.text_input] == ["Your name"]
