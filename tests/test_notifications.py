"""Approval notifications by email and WhatsApp: content, ledger events, retries, reminders."""

from __future__ import annotations

import json
import threading
import time

import pytest

from agent_core.models import (
    Approval,
    ApprovalStatus,
    NotificationKind,
    NotificationStatus,
    NotifyChannel,
    RunStatus,
)
from agent_core.notify import MAX_ATTEMPTS, RETRY_BACKOFF, SEND_TIMEOUT_S, Notifier
from agent_core.runtime import open_runtime
from tests.support import (
    KEY,
    SECRET_KEY,
    agent_settings,
    make_objective,
    make_orchestrator,
    run_cli,
    run_to_end,
)

THOUGHT = "Lead 7 is a duplicate of lead 3; deleting it keeps the follow-ups clean."
ARGS = {"table": "app_leads", "id": 7}
ARGS_TEXT = json.dumps(ARGS, indent=2, sort_keys=True)
EXPIRY_TEXT = "2026-11-03 09:00 UTC"  # the ManualClock starts 2026-11-02 09:00; TTL 24 h
SMTP_PASSWORD = "smtp-s3cret-Pa55word"
WRONG_TWILIO_TOKEN = "wr0ng-tw1lio-s3cret"


def pause_for_approval(
    store, llm_server, *, tool="delete_data", thought=THOUGHT, **args: object
) -> Approval:
    """A run of a high-risk objective paused on `tool`: its pending approval."""
    objective = make_objective(store, risk_level="high")
    llm_server.step(thought, tool, **(args or ARGS))
    settings = agent_settings(agent_approval_flow=True)
    run = run_to_end(make_orchestrator(store, llm_server.url, settings=settings), objective.id)
    assert run.status is RunStatus.PAUSED
    (approval,) = [a for a in store.list_approvals() if a.run_id == run.id]
    return approval


def notifier(store, notify_settings, **overrides: object) -> Notifier:
    """Without AGENT_SECRET_KEY unless told (links then open the request's page)."""
    return Notifier(
        store, agent_settings(**{"agent_secret_key": None, **notify_settings, **overrides})
    )


def events(store, run_id, *types):
    wanted = types or ("notification_sent", "notification_failed")
    return [e for e in store.list_events(run_id) if e.event_type in wanted]


def by_channel(store, approval_id, kind=NotificationKind.APPROVAL_REQUEST):
    return {n.channel: n for n in store.list_notifications(approval_id) if n.kind is kind}


def text_of(mail) -> str:
    """A received mail's text, with the wire's CRLF line ends made plain newlines."""
    return mail.body.replace("\r\n", "\n")


def due_after(delay) -> dict[str, float]:
    return {"seconds": delay.total_seconds() + 1}


def assert_ledger_verifies(database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AGENT_SECRET_KEY", SECRET_KEY)
    verified = run_cli(["ledger", "verify"])
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("ledger OK")


# --- a new approval -----------------------------------------------------------------------------


def test_a_new_approval_notifies_the_admin_by_email_and_whatsapp(
    store, llm_server, mail_server, twilio_server, notify_settings, database_url, monkeypatch
):
    approval = pause_for_approval(store, llm_server)
    link = f"http://dashboard.example.com/approval?id={approval.id}"

    results = notifier(store, notify_settings).request_approval(approval.id)

    assert sorted((r.channel, r.status) for r in results) == [
        (NotifyChannel.EMAIL, NotificationStatus.SENT),
        (NotifyChannel.WHATSAPP, NotificationStatus.SENT),
    ]
    (mail,) = mail_server.received
    assert mail.sender == "agent@example.com"
    assert mail.recipients == ["admin@example.com"]
    assert mail.subject == "[Agent Runtime] Approval needed: delete_data"
    for fact in ("delete_data", ARGS_TEXT, THOUGHT, EXPIRY_TEXT, link, approval.run_id):
        assert fact in text_of(mail), fact

    (message,) = twilio_server.messages
    assert message["To"] == "whatsapp:+33600000001"
    assert message["From"] == "whatsapp:+14155238886"
    compact_args = json.dumps(ARGS, ensure_ascii=False, sort_keys=True)  # WhatsApp is terse
    for fact in ("delete_data", compact_args, THOUGHT, EXPIRY_TEXT, link):
        assert fact in message["Body"], fact

    sent = events(store, approval.run_id)
    assert [e.event_type for e in sent] == ["notification_sent"] * 2
    assert sorted(
        (e.data["channel"], e.data["recipient"], e.data["kind"], e.data["attempt"]) for e in sent
    ) == [
        ("email", "admin@example.com", "approval_request", 1),
        ("whatsapp", "whatsapp:+33600000001", "approval_request", 1),
    ]
    assert {e.data["approval_id"] for e in sent} == {approval.id}
    rows = by_channel(store, approval.id)
    assert {channel: row.status for channel, row in rows.items()} == {
        NotifyChannel.EMAIL: NotificationStatus.SENT,
        NotifyChannel.WHATSAPP: NotificationStatus.SENT,
    }
    assert all(row.attempts == 1 and row.sent_at is not None for row in rows.values())
    assert_ledger_verifies(database_url, monkeypatch)


def test_a_run_paused_by_the_runtime_notifies_without_being_asked(
    store, database_url, llm_server, mail_server, twilio_server, notify_settings
):
    """The runtime's orchestrator hands every new approval to the notifier."""
    objective = make_objective(store, risk_level="high")
    llm_server.step(THOUGHT, "delete_data", **ARGS)
    settings = agent_settings(
        **notify_settings,
        database_url=database_url,
        agent_llm_base_url=llm_server.url,
        agent_ai_model="test-model",
    )
    runtime = open_runtime(settings, store)
    try:
        run = run_to_end(runtime.orchestrator(), objective.id)
    finally:
        runtime.close()

    assert run.status is RunStatus.PAUSED
    (approval,) = store.list_approvals()
    assert len(mail_server.received) == 1
    assert approval.id in mail_server.received[0].body
    assert len(twilio_server.messages) == 1
    assert [e.data["channel"] for e in events(store, run.id, "notification_sent")] in (
        ["email", "whatsapp"],
        ["whatsapp", "email"],
    )


@pytest.mark.parametrize("channel", ["email", "whatsapp"])
def test_only_the_configured_channels_are_used(
    store, llm_server, mail_server, twilio_server, notify_settings, channel
):
    approval = pause_for_approval(store, llm_server)

    notifier(store, notify_settings, agent_approval_notify_channels=channel).request_approval(
        approval.id
    )

    assert len(mail_server.received) == (1 if channel == "email" else 0)
    assert len(twilio_server.messages) == (1 if channel == "whatsapp" else 0)
    assert list(by_channel(store, approval.id)) == [channel]
    assert [e.data["channel"] for e in events(store, approval.run_id)] == [channel]


def test_requesting_twice_for_the_same_approval_sends_once(
    store, llm_server, mail_server, twilio_server, notify_settings
):
    approval = pause_for_approval(store, llm_server)
    first = notifier(store, notify_settings)
    first.request_approval(approval.id)

    again = first.request_approval(approval.id)
    other_worker = notifier(store, notify_settings).request_approval(approval.id)

    assert again == other_worker == []
    assert len(mail_server.received) == 1
    assert len(twilio_server.messages) == 1
    assert len(events(store, approval.run_id, "notification_sent")) == 2
    assert len(store.list_notifications(approval.id)) == 2


def test_maintenance_does_not_resend_a_notification_being_sent(
    store, llm_server, mail_server, notify_settings
):
    """The worker is still talking to a slow mail server when maintenance runs: the admin
    must still get one mail, not two."""
    approval = pause_for_approval(store, llm_server)
    email_only = {**notify_settings, "agent_approval_notify_channels": "email"}
    mail_server.hold_s = 1.0  # the mail is received; the server's answer comes a second later
    worker = threading.Thread(
        target=notifier(store, email_only).request_approval, args=(approval.id,)
    )
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while not mail_server.received and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(mail_server.received) == 1
        notifier(store, email_only).retry_due()  # maintenance, meanwhile
    finally:
        worker.join(timeout=30)

    assert len(mail_server.received) == 1
    assert len(events(store, approval.run_id, "notification_sent")) == 1


# --- failures and retries -----------------------------------------------------------------------


def test_a_dead_mail_server_is_recorded_then_retried_once_due(
    store, clock, llm_server, mail_server, notify_settings, dead_port
):
    approval = pause_for_approval(store, llm_server)
    down = notifier(
        store, notify_settings, smtp_port=dead_port, agent_approval_notify_channels="email"
    )

    (result,) = down.request_approval(approval.id)

    assert result.status is NotificationStatus.FAILED
    (failed,) = events(store, approval.run_id, "notification_failed")
    reason = failed.data["error"]
    assert reason.startswith(f"the mail server 127.0.0.1:{dead_port} refused or failed:")
    assert "Connection refused" in reason
    assert failed.data["will_retry"] is True
    assert failed.data["attempt"] == 1
    (row,) = store.list_notifications(approval.id)
    assert (row.status, row.attempts, row.last_error) == (NotificationStatus.FAILED, 1, reason)

    live = notifier(store, notify_settings, agent_approval_notify_channels="email")
    clock.advance(seconds=RETRY_BACKOFF[0].total_seconds() - 5)
    assert live.retry_due() == []  # not due before its backoff
    assert mail_server.received == []

    clock.advance(seconds=10)
    (retried,) = live.retry_due()

    assert retried.status is NotificationStatus.SENT
    (mail,) = mail_server.received
    assert approval.id in mail.body
    (row,) = store.list_notifications(approval.id)
    assert (row.status, row.attempts, row.last_error) == (NotificationStatus.SENT, 2, None)
    attempts = [(e.event_type, e.data["attempt"]) for e in events(store, approval.run_id)]
    assert attempts == [("notification_failed", 1), ("notification_sent", 2)]
    clock.advance(hours=2)
    assert live.retry_due() == []  # a sent notification is never sent again
    assert len(mail_server.received) == 1
    assert store.verify_ledger(KEY).ok


def test_twilio_answering_an_error_is_a_failure_with_a_reason(
    store, clock, llm_server, twilio_server, notify_settings
):
    approval = pause_for_approval(store, llm_server)
    twilio_server.fail_with = 500
    only_whatsapp = notifier(store, notify_settings, agent_approval_notify_channels="whatsapp")

    (result,) = only_whatsapp.request_approval(approval.id)  # no exception

    assert result.status is NotificationStatus.FAILED
    (failed,) = events(store, approval.run_id, "notification_failed")
    assert failed.data["error"] == (
        "Twilio refused or failed: HTTP 500 error: Unable to create record: Queue overflow"
    )
    assert failed.data["will_retry"] is True
    assert twilio_server.messages == []

    twilio_server.fail_with = None
    clock.advance(**due_after(RETRY_BACKOFF[0]))
    (retried,) = only_whatsapp.retry_due()
    assert retried.status is NotificationStatus.SENT
    assert len(twilio_server.messages) == 1


def test_after_max_attempts_the_notification_gives_up(
    store, clock, llm_server, mail_server, notify_settings, dead_port
):
    approval = pause_for_approval(store, llm_server)
    down = notifier(
        store, notify_settings, smtp_port=dead_port, agent_approval_notify_channels="email"
    )
    down.request_approval(approval.id)

    for delay in RETRY_BACKOFF[: MAX_ATTEMPTS - 1]:  # each retry waits its backoff
        clock.advance(seconds=delay.total_seconds() - 5)
        assert down.retry_due() == []
        clock.advance(seconds=10)
        assert len(down.retry_due()) == 1

    failures = events(store, approval.run_id, "notification_failed")
    assert [e.data["attempt"] for e in failures] == list(range(1, MAX_ATTEMPTS + 1))
    assert [e.data["will_retry"] for e in failures] == [True] * (MAX_ATTEMPTS - 1) + [False]
    (row,) = store.list_notifications(approval.id)
    assert row.status is NotificationStatus.GAVE_UP
    assert row.attempts == MAX_ATTEMPTS
    assert row.next_attempt_at is None
    assert "Connection refused" in (row.last_error or "")

    clock.advance(days=2)
    live = notifier(store, notify_settings, agent_approval_notify_channels="email")
    assert live.retry_due() == []
    assert mail_server.received == []
    assert len(events(store, approval.run_id)) == MAX_ATTEMPTS


@pytest.mark.parametrize(
    ("channel", "unset", "variable"),
    [("email", "admin_email", "ADMIN_EMAIL"), ("whatsapp", "admin_phone", "ADMIN_PHONE")],
)
def test_an_unset_recipient_is_a_failure_saying_which_variable_to_set(
    store, llm_server, mail_server, twilio_server, notify_settings, channel, unset, variable
):
    approval = pause_for_approval(store, llm_server)

    notifier(store, notify_settings, **{unset: ""}).request_approval(approval.id)

    rows = by_channel(store, approval.id)
    assert rows[channel].status in (NotificationStatus.FAILED, NotificationStatus.GAVE_UP)
    assert rows[channel].last_error == f"no recipient: set {variable}"
    (failed,) = events(store, approval.run_id, "notification_failed")
    assert failed.data["channel"] == channel
    assert variable in failed.data["error"]
    # The other channel is not held back by this one.
    other = "whatsapp" if channel == "email" else "email"
    assert rows[other].status is NotificationStatus.SENT
    assert len(mail_server.received) == (0 if channel == "email" else 1)
    assert len(twilio_server.messages) == (0 if channel == "whatsapp" else 1)


def test_a_notifier_without_smtp_says_smtp_host_is_not_set(store, llm_server, notify_settings):
    approval = pause_for_approval(store, llm_server)
    without_smtp = {k: v for k, v in notify_settings.items() if not k.startswith("smtp_")}

    (result,) = Notifier(
        store, agent_settings(**without_smtp, agent_approval_notify_channels="email")
    ).request_approval(approval.id)

    assert result.status is NotificationStatus.FAILED
    (failed,) = events(store, approval.run_id, "notification_failed")
    assert "SMTP_HOST" in failed.data["error"]
    assert failed.data["error"].startswith("email is not configured")


@pytest.mark.parametrize(
    ("security", "reason"),
    [
        ("ssl", "WRONG_VERSION_NUMBER"),  # TLS spoken to a server that answers in plain text
        ("starttls", "STARTTLS extension not supported by server"),
    ],
)
def test_tls_against_a_plain_mail_server_fails_quickly_with_a_reason(
    store, llm_server, mail_server, notify_settings, security, reason
):
    approval = pause_for_approval(store, llm_server)
    tls = notifier(
        store, notify_settings, smtp_security=security, agent_approval_notify_channels="email"
    )

    started = time.monotonic()
    (result,) = tls.request_approval(approval.id)
    elapsed = time.monotonic() - started

    assert elapsed < SEND_TIMEOUT_S  # an answer, not a hang until the transport's timeout
    assert result.status is NotificationStatus.FAILED
    (failed,) = events(store, approval.run_id, "notification_failed")
    assert failed.data["error"].startswith(
        f"the mail server 127.0.0.1:{mail_server.port} refused or failed:"
    )
    assert reason in failed.data["error"]
    assert mail_server.received == []


def test_a_retry_never_asks_to_decide_an_approval_already_decided(
    store, clock, llm_server, mail_server, notify_settings, dead_port
):
    """The email failed; meanwhile the admin rejected the call (say from the WhatsApp link).
    Maintenance must not then send "Approval needed" for it."""
    approval = pause_for_approval(store, llm_server)
    notifier(
        store, notify_settings, smtp_port=dead_port, agent_approval_notify_channels="email"
    ).request_approval(approval.id)
    store.decide_approval(
        approval.id, approve=False, by="admin", reason="not a duplicate", signing_key=KEY
    )

    clock.advance(**due_after(RETRY_BACKOFF[0]))
    notifier(store, notify_settings, agent_approval_notify_channels="email").retry_due()

    assert mail_server.received == []
    (row,) = store.list_notifications(approval.id)
    assert row.status is not NotificationStatus.SENT


def test_the_whatsapp_text_fits_twilio_s_1600_character_limit(
    store, llm_server, twilio_server, notify_settings
):
    """Twilio refuses a Body over 1,600 characters (error 21617): an approval of a long email
    must still reach the admin on WhatsApp, with the link to decide."""
    approval = pause_for_approval(
        store,
        llm_server,
        tool="send_email",
        thought="Send the weekly report to the sales team.",
        to="sales@example.com",
        subject="Weekly report",
        body="Lead summary. " * 200,
    )

    notifier(store, notify_settings, agent_approval_notify_channels="whatsapp").request_approval(
        approval.id
    )

    (message,) = twilio_server.messages
    assert len(message["Body"]) <= 1600
    assert f"http://dashboard.example.com/approval?id={approval.id}" in message["Body"]
    assert EXPIRY_TEXT in message["Body"]


# --- reminders ----------------------------------------------------------------------------------


def test_a_reminder_goes_out_once_per_channel_shortly_before_expiry(
    store, clock, llm_server, mail_server, twilio_server, notify_settings
):
    approval = pause_for_approval(store, llm_server)
    reminding = notifier(store, notify_settings, agent_approval_remind_before_minutes=90)
    reminding.request_approval(approval.id)
    assert reminding.remind() == []  # 24 h left

    clock.advance(hours=22, minutes=29)  # 91 minutes left
    assert reminding.remind() == []
    clock.advance(minutes=2)  # 89 minutes left
    reminders = reminding.remind()

    assert sorted((r.channel, r.kind, r.status) for r in reminders) == [
        (NotifyChannel.EMAIL, NotificationKind.REMINDER, NotificationStatus.SENT),
        (NotifyChannel.WHATSAPP, NotificationKind.REMINDER, NotificationStatus.SENT),
    ]
    assert [m.subject for m in mail_server.received] == [
        "[Agent Runtime] Approval needed: delete_data",
        "[Agent Runtime] Reminder: approval still needed: delete_data",
    ]
    reminder_mail = mail_server.received[1]
    assert EXPIRY_TEXT in text_of(reminder_mail)
    assert f"approval?id={approval.id}" in text_of(reminder_mail)
    assert len(twilio_server.messages) == 2
    assert twilio_server.messages[1]["Body"].startswith("[Agent Runtime] Reminder")
    reminded = [e for e in events(store, approval.run_id) if e.data["kind"] == "reminder"]
    assert sorted(e.data["channel"] for e in reminded) == ["email", "whatsapp"]
    assert all(e.event_type == "notification_sent" for e in reminded)

    assert reminding.remind() == []
    clock.advance(minutes=60)  # 29 minutes left: still never a second reminder
    assert reminding.remind() == []
    assert len(mail_server.received) == 2
    assert len(twilio_server.messages) == 2
    assert store.verify_ledger(KEY).ok


def test_the_default_reminder_window_is_an_hour(
    store, clock, llm_server, mail_server, notify_settings
):
    approval = pause_for_approval(store, llm_server)
    reminding = notifier(store, notify_settings, agent_approval_notify_channels="email")

    clock.advance(hours=22, minutes=58)  # 62 minutes left
    assert reminding.remind() == []
    clock.advance(minutes=4)  # 58 minutes left
    (reminder,) = reminding.remind()

    assert reminder.approval_id == approval.id
    assert [m.subject for m in mail_server.received] == [
        "[Agent Runtime] Reminder: approval still needed: delete_data"
    ]


@pytest.mark.parametrize("outcome", ["approved", "rejected", "expired"])
def test_no_reminder_for_an_approval_no_longer_pending(
    store, clock, llm_server, mail_server, twilio_server, notify_settings, outcome
):
    approval = pause_for_approval(store, llm_server)
    reminding = notifier(store, notify_settings)
    if outcome == "expired":
        clock.advance(hours=24, minutes=1)
        store.expire_approvals()
    else:
        store.decide_approval(
            approval.id, approve=outcome == "approved", by="admin", signing_key=KEY
        )
        clock.advance(hours=23, minutes=30)  # inside the reminder window
    assert store.get_approval(approval.id).status is ApprovalStatus(outcome)

    assert reminding.remind() == []
    assert mail_server.received == []
    assert twilio_server.messages == []
    assert store.list_notifications(approval.id) == []


# --- secrets ------------------------------------------------------------------------------------


def test_no_secret_appears_in_events_or_notification_records(
    store, clock, llm_server, mail_server, twilio_server, notify_settings, database_url, monkeypatch
):
    approval = pause_for_approval(store, llm_server)
    with_secrets = {**notify_settings, "smtp_user": "agent", "smtp_password": SMTP_PASSWORD}
    # The local mail server offers no AUTH; Twilio is given a wrong token first.
    notifier(store, with_secrets, twilio_auth_token=WRONG_TWILIO_TOKEN).request_approval(
        approval.id
    )
    clock.advance(**due_after(RETRY_BACKOFF[0]))
    notifier(store, with_secrets).retry_due()

    failures = events(store, approval.run_id, "notification_failed")
    reasons = sorted(e.data["error"] for e in failures)
    assert (
        reasons[0]
        == "Twilio refused or failed: HTTP 401 error: Unable to create record: Authenticate"
    )
    assert "SMTP AUTH extension not supported by server" in reasons[1]
    assert len(twilio_server.messages) == 1  # the right token worked on the retry

    secrets = (SMTP_PASSWORD, WRONG_TWILIO_TOKEN, twilio_server.auth_token)
    recorded = json.dumps([e.data for e in store.list_events(approval.run_id)])
    recorded += json.dumps([n.last_error for n in store.list_notifications(approval.id)])
    monkeypatch.setenv("DATABASE_URL", database_url)
    for command in (["run", "show", approval.run_id, "--json"], ["approval", "show", approval.id]):
        shown = run_cli(command)
        assert shown.exit_code == 0, shown.stderr
        recorded += shown.stdout
    assert "notification_failed" in recorded
    for secret in secrets:
        assert secret not in recorded
    assert_ledger_verifies(database_url, monkeypatch)
