"""The System page: what is set up and what to set, live tests of the model, email and
WhatsApp against real peers, the ledger check; and never a secret on the page."""

from __future__ import annotations

import json

from agent_core.store.schema import events
from tests.dashboard_support import no_traceback, text, visible
from tests.support import make_objective, run_cli, tamper

SECRETS = {
    "SMTP_PASSWORD": "smtp-s3cret-Pa55word",
    "TWILIO_AUTH_TOKEN": "tw1lio-s3cret-t0ken",
    "HF_TOKEN": "hf_s3cretTOKENvalue",
}


def test_each_part_says_whether_it_is_set_up_and_what_to_set(dashboard):
    at = dashboard.open("system")
    no_traceback(at)
    shown = text(at)
    # No model named and nothing listening at AGENT_LLM_BASE_URL to say which it serves: the
    # page says what to set, and never offers the Hugging Face default to a local server.
    assert "**Language model.** AGENT_AI_MODEL is not set and the server at" in shown
    assert "set AGENT_AI_MODEL to the model to use." in shown
    assert "**Language model.** Qwen/Qwen2.5-72B-Instruct" not in shown
    assert "**Email.** Not configured: set SMTP_HOST, SMTP_FROM and ADMIN_EMAIL." in shown
    assert "**WhatsApp.** Not configured: set TWILIO_ACCOUNT_SID" in shown
    assert "**Worker.** No worker is alive: queued runs wait." in shown
    assert "**Database.** sqlite" in shown or "**Database.** postgresql" in shown
    # Tools lacking a setting: the page counts them and says what each needs.
    assert "**Tools.** 8 of 13 tools can run as configured." in shown
    assert "send_email: email is not configured: set SMTP_HOST (and SMTP_FROM)." in shown
    assert (
        "wix_create_coupon, wix_search_orders, wix_search_products: Wix is not configured: "
        "set WIX_API_KEY and WIX_SITE_ID." in shown
    )


def test_the_test_buttons_reach_the_model_the_mail_server_and_twilio(
    dashboard, monkeypatch, llm_server, mail_server, twilio_server
):
    for name, value in {
        "AGENT_LLM_BASE_URL": llm_server.url,
        "AGENT_AI_MODEL": "test-model",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(mail_server.port),
        "SMTP_SECURITY": "none",
        "SMTP_FROM": "agent@example.com",
        "ADMIN_EMAIL": "boss@example.com",
        "ADMIN_PHONE": "whatsapp:+33600000001",
        "TWILIO_ACCOUNT_SID": twilio_server.account_sid,
        "TWILIO_AUTH_TOKEN": twilio_server.auth_token,
        "TWILIO_WHATSAPP_FROM": "whatsapp:+14155238886",
        "TWILIO_API_BASE_URL": twilio_server.url,
    }.items():
        monkeypatch.setenv(name, value)
    llm_server.reply("OK")
    at = dashboard.open("system")
    at.button(key="test_llm").click().run()
    no_traceback(at)
    assert "answered in" in text(at)
    assert "'OK'" in text(at)
    at.button(key="test_email").click().run()
    assert "A test email was sent to boss@example.com." in text(at)
    (mail,) = mail_server.received
    assert mail.recipients == ["boss@example.com"]
    at.button(key="test_whatsapp").click().run()
    assert "A test message was sent to whatsapp:+33600000001." in text(at)
    assert len(twilio_server.messages) == 1


def test_a_failing_test_message_is_a_sentence(dashboard, monkeypatch, dead_port):
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(dead_port))
    monkeypatch.setenv("SMTP_FROM", "agent@example.com")
    monkeypatch.setenv("ADMIN_EMAIL", "boss@example.com")
    at = dashboard.open("system")
    at.button(key="test_email").click().run()
    no_traceback(at)
    assert f"The test email was not sent: the mail server 127.0.0.1:{dead_port}" in text(at)


def test_the_ledger_is_verified_on_request(dashboard, live_store):
    live_store.create_run(make_objective(live_store).id)
    at = dashboard.open("system")
    at.button(key="verify_ledger").click().run()
    assert "Ledger OK: 1 event in 1 run verified." in text(at)


def test_a_broken_ledger_is_said_on_the_page_as_ledger_verify_says_it(
    dashboard, live_store, database_url
):
    live_store.create_run(make_objective(live_store).id)
    tamper(database_url, lambda conn: conn.execute(events.update().values(data={"x": 1})))

    at = dashboard.open("system")
    at.button(key="verify_ledger").click().run()
    verified = run_cli(["ledger", "verify"])

    no_traceback(at)
    assert verified.exit_code == 1
    head = verified.stdout.splitlines()[0]  # "ledger BROKEN: ...; no seal yet"
    assert head.startswith("ledger BROKEN: verification fails for 1 run (1 run checked)")
    assert "Ledger BROKEN: verification fails for 1 run (1 run checked). " in text(at)


def test_no_secret_ever_reaches_the_page(dashboard, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    at = dashboard.open("system")
    no_traceback(at)
    shown = text(at)
    for secret in [*SECRETS.values(), "test-secret-key-for-links"]:
        assert secret not in shown
    assert '"smtp_password": "set"' in shown


def test_in_demo_mode_the_model_is_the_scripted_one_and_test_messages_go_to_the_outbox(
    dashboard, monkeypatch, tmp_path, mail_server, twilio_server
):
    monkeypatch.chdir(tmp_path)  # the demo outbox is a file in the working directory
    for name, value in {
        "AGENT_DEMO": "true",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(mail_server.port),
        "SMTP_SECURITY": "none",
        "SMTP_FROM": "agent@example.com",
        "ADMIN_EMAIL": "boss@example.com",
        "ADMIN_PHONE": "whatsapp:+33600000001",
        "TWILIO_ACCOUNT_SID": twilio_server.account_sid,
        "TWILIO_AUTH_TOKEN": twilio_server.auth_token,
        "TWILIO_WHATSAPP_FROM": "whatsapp:+14155238886",
        "TWILIO_API_BASE_URL": twilio_server.url,
    }.items():
        monkeypatch.setenv(name, value)
    at = dashboard.open("system")
    no_traceback(at)
    shown = text(at)
    assert "**Language model.** demo-model (scripted): demo mode" in shown
    checks = "\n".join(visible(item.value) for item in [*at.success, *at.warning])
    assert "Hugging Face" not in checks
    assert "Qwen" not in checks
    assert "**Email.** Demo mode: messages are written to the local outbox" in shown
    at.button(key="test_email").click().run()
    no_traceback(at)
    assert "Demo mode: a test email to boss@example.com went to demo_outbox.jsonl." in text(at)
    at.button(key="test_whatsapp").click().run()
    no_traceback(at)
    assert "Demo mode: a test message to whatsapp:+33600000001 went to" in text(at)
    assert not mail_server.received
    assert not twilio_server.messages
    outbox = [
        json.loads(line) for line in (tmp_path / "demo_outbox.jsonl").read_text().splitlines()
    ]
    assert [item["to"] for item in outbox] == ["boss@example.com", "whatsapp:+33600000001"]
