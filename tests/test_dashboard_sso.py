"""Single sign-on: with Streamlit's OIDC login configured (`[auth]` in
.streamlit/secrets.toml), it replaces the password, and the name recorded with decisions
comes from the identity."""

from __future__ import annotations

import pytest

from tests.dashboard_support import no_traceback, serve_on, text
from tests.support import make_objective

AUTH = """
[auth]
redirect_uri = "http://localhost:8501/oauth2callback"
cookie_secret = "a-long-random-cookie-secret-for-tests"
client_id = "agent-runtime"
client_secret = "not-a-real-secret"
server_metadata_url = "https://accounts.example.com/.well-known/openid-configuration"
"""


@pytest.fixture
def sso(isolated_environment, monkeypatch):
    secrets = isolated_environment / ".streamlit" / "secrets.toml"
    secrets.parent.mkdir()
    secrets.write_text(AUTH)
    monkeypatch.setenv("AGENT_ADMIN_PASSWORD", "unused when single sign-on is configured")


def test_a_signed_out_visitor_sees_only_the_sign_in_button(dashboard, live_store, sso):
    make_objective(live_store, title="Secret plans")
    serve_on("0.0.0.0")
    at = dashboard.open("objectives")
    at.user = {"is_logged_in": False}
    at.run()
    no_traceback(at)
    assert [button.label for button in at.button] == ["Sign in"]
    assert "Secret plans" not in text(at)
    assert not at.text_input  # no password form: single sign-on replaces it


def test_a_signed_in_admin_decides_under_the_name_of_their_identity(dashboard, live_store, sso):
    make_objective(live_store, title="Weekly leads")
    serve_on("0.0.0.0")
    at = dashboard.open("objectives")
    at.user = {"is_logged_in": True, "name": "Ada Lovelace", "email": "ada@example.com"}
    at.run()
    no_traceback(at)
    assert "Deciding as **Ada Lovelace**" in text(at)
    assert at.selectbox(key="objective_choice").options[1].startswith("Weekly leads")
