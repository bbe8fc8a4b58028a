"""The send_email and send_whatsapp tools: validation, one delivery, failures never retried."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from agent_core.demo import DemoOutbox
from agent_core.models import ApprovalStatus, RiskLevel, RunStatus, ToolCallStatus
from agent_core.notify import EmailTransport, WhatsAppTransport
from agent_core.tools.gateway import ToolGateway, validate_args
from agent_core.tools.messaging import messaging_tools
from tests.peers import MailServer, TwilioServer
from tests.support import KEY, agent_settings, make_objective, make_orchestrator, run_to_end

EMAIL = {
    "to": "boss@example.com",
    "subject": "Weekly leads",
    "body": "Bonjour Zoé,\n\n3 new leads this week; 2 were followed up.\n",
}
WHATSAPP = {"to": "+33612345678", "message": "3 new leads this week."}


class CountingTwilioServer(TwilioServer):
    """TwilioServer that also keeps the path of every POST it is sent, failed ones included
    (`messages` holds only the messages it accepted)."""

    posts: list[str]

    def start(self) -> CountingTwilioServer:
        self.posts = []
        super().start()
        assert self._server is not None
        answering = self._server.RequestHandlerClass
        peer = self

        class Counting(answering):  # type: ignore[misc, valid-type]
            def do_POST(self) -> None:
                peer.posts.append(self.path)
                super().do_POST()

        self._server.RequestHandlerClass = Counting
        return self


class RefusingMailServer(MailServer):
    """An SMTP server that takes the whole message, then answers DATA with a temporary
    failure: the kind of error a careless client would retry, sending the mail twice."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await super().handle_DATA(server, session, envelope)
        return "451 4.3.0 Mailbox temporarily unavailable"


@pytest.fixture
def counting_twilio() -> Iterator[CountingTwilioServer]:
    server = CountingTwilioServer().start()
    yield server
    server.stop()


def tools(**settings: object):
    configured = agent_settings(**settings)
    return {
        tool.name: tool
        for tool in messaging_tools(
            EmailTransport.from_settings(configured), WhatsAppTransport.from_settings(configured)
        )
    }


def call(tool, args):
    parsed = validate_args(tool, args)
    assert not isinstance(parsed, str), parsed
    return ToolGateway().execute(tool, parsed, run_id="run-1", timeout_s=tool.timeout)


def twilio_settings(notify_settings, server: TwilioServer) -> dict[str, object]:
    return {**notify_settings, "twilio_api_base_url": server.url}


def test_both_tools_are_high_risk_with_side_effects(notify_settings):
    found = tools(**notify_settings)

    assert sorted(found) == ["send_email", "send_whatsapp"]
    for tool in found.values():
        assert tool.risk is RiskLevel.HIGH
        assert tool.side_effects is True
        assert tool.describe()["risk"] == "high"


# --- delivery -----------------------------------------------------------------------------------


def test_send_email_delivers_exactly_one_mail_with_the_given_fields(mail_server, notify_settings):
    result = call(tools(**notify_settings)["send_email"], EMAIL)

    assert result.status is ToolCallStatus.SUCCEEDED
    assert result.result == {"sent": True, "to": "boss@example.com"}
    assert result.attempts == 1
    (mail,) = mail_server.received
    assert mail.sender == "agent@example.com"
    assert mail.recipients == ["boss@example.com"]
    assert mail.message["To"] == "boss@example.com"
    assert mail.subject == "Weekly leads"
    assert mail.body.replace("\r\n", "\n") == EMAIL["body"]


def test_send_whatsapp_delivers_exactly_one_message_with_the_given_fields(
    counting_twilio, notify_settings
):
    found = tools(**twilio_settings(notify_settings, counting_twilio))

    result = call(found["send_whatsapp"], WHATSAPP)

    assert result.status is ToolCallStatus.SUCCEEDED
    assert result.result["sent"] is True
    assert result.result["to"] == "+33612345678"
    assert result.result["sid"].startswith("SM")
    assert counting_twilio.messages == [
        {
            "From": "whatsapp:+14155238886",
            "To": "whatsapp:+33612345678",
            "Body": "3 new leads this week.",
        }
    ]
    assert len(counting_twilio.posts) == 1


def test_a_whatsapp_address_is_accepted_as_given(counting_twilio, notify_settings):
    found = tools(**twilio_settings(notify_settings, counting_twilio))

    result = call(found["send_whatsapp"], {**WHATSAPP, "to": "whatsapp:+33612345678"})

    assert result.status is ToolCallStatus.SUCCEEDED
    assert [m["To"] for m in counting_twilio.messages] == ["whatsapp:+33612345678"]


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool_name", "args", "field"),
    [
        ("send_email", {**EMAIL, "to": "not-an-address"}, "to"),
        ("send_email", {**EMAIL, "to": "boss@example"}, "to"),
        ("send_email", {**EMAIL, "to": "Boss <boss@example.com>"}, "to"),
        ("send_email", {**EMAIL, "to": "boss@example.com, intern@example.com"}, "to"),
        # One address: a comma would make the mail header a list of recipients.
        ("send_email", {**EMAIL, "to": "boss@example.com,intern"}, "to"),
        ("send_email", {**EMAIL, "to": 'boss,"spy"@evil.example'}, "to"),
        ("send_email", {**EMAIL, "subject": ""}, "subject"),
        ("send_email", {**EMAIL, "body": ""}, "body"),
        ("send_email", {**EMAIL, "cc": "spy@example.com"}, "cc"),
        ("send_whatsapp", {**WHATSAPP, "to": "0612345678"}, "to"),
        ("send_whatsapp", {**WHATSAPP, "to": "+33 6 12 34 56 78"}, "to"),
        ("send_whatsapp", {**WHATSAPP, "to": "+33612345678\n"}, "to"),
        ("send_whatsapp", {**WHATSAPP, "to": "boss@example.com"}, "to"),
        ("send_whatsapp", {**WHATSAPP, "message": ""}, "message"),
        ("send_whatsapp", {**WHATSAPP, "message": "x" * 1601}, "message"),
    ],
)
def test_invalid_arguments_are_refused_with_a_sentence_naming_the_field(
    notify_settings, tool_name, args, field
):
    refusal = validate_args(tools(**notify_settings)[tool_name], args)

    assert isinstance(refusal, str), f"{args} was accepted"
    assert refusal.startswith(f"invalid arguments for {tool_name}: {field}: ")


# --- failures: reported, never retried ----------------------------------------------------------


def test_a_dead_mail_server_fails_the_call_with_a_readable_error(notify_settings, dead_port):
    result = call(tools(**{**notify_settings, "smtp_port": dead_port})["send_email"], EMAIL)

    assert result.status is ToolCallStatus.FAILED
    assert result.attempts == 1
    assert result.error.startswith(
        f"the email was not sent: the mail server 127.0.0.1:{dead_port} refused or failed: "
    )
    assert "Connection refused" in result.error
    assert result.result == {"error": result.error}


def test_a_mail_server_error_after_the_data_is_not_retried(notify_settings):
    server = RefusingMailServer().start()
    try:
        result = call(tools(**{**notify_settings, "smtp_port": server.port})["send_email"], EMAIL)
    finally:
        server.stop()

    assert result.status is ToolCallStatus.FAILED
    assert result.attempts == 1
    assert len(server.received) == 1  # the side effect was attempted exactly once
    assert "451" in result.error
    assert "Mailbox temporarily unavailable" in result.error


def test_a_mail_server_silent_once_it_has_the_mail_makes_the_call_unknown_never_failed(
    notify_settings,
):
    """The mail is in the server's hands, its answer never comes: it may be delivered, and
    'not sent' would invite the agent to send it again."""
    server = MailServer(hold_s=3).start()
    try:
        settings = agent_settings(**{**notify_settings, "smtp_port": server.port})
        email = replace(EmailTransport.from_settings(settings), timeout_s=0.5)
        (send_email, _) = messaging_tools(email, WhatsAppTransport.from_settings(settings))
        result = call(send_email, EMAIL)
    finally:
        server.stop()

    assert result.status is ToolCallStatus.UNKNOWN
    assert result.attempts == 1
    assert len(server.received) == 1
    assert result.error.startswith(
        f"the email may have been sent: the mail server 127.0.0.1:{server.port} stopped "
        "answering once it had the message, which it may have sent: "
    )
    assert result.error.endswith("; do not send it again")


def test_twilio_silent_once_it_has_the_message_makes_the_call_unknown_never_failed(
    counting_twilio, notify_settings
):
    counting_twilio.hold_s = 3
    settings = agent_settings(**twilio_settings(notify_settings, counting_twilio))
    whatsapp = replace(WhatsAppTransport.from_settings(settings), timeout_s=0.5)
    (_, send_whatsapp) = messaging_tools(EmailTransport.from_settings(settings), whatsapp)

    result = call(send_whatsapp, WHATSAPP)

    assert result.status is ToolCallStatus.UNKNOWN
    assert len(counting_twilio.messages) == 1
    assert result.error.startswith(
        "the WhatsApp message may have been sent: Twilio did not answer once it had the "
        "request, which it may have carried out: "
    )
    assert counting_twilio.auth_token not in result.error


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_twilio_error_fails_the_call_once_with_a_readable_error(
    counting_twilio, notify_settings, status
):
    counting_twilio.fail_with = status
    found = tools(**twilio_settings(notify_settings, counting_twilio))

    result = call(found["send_whatsapp"], WHATSAPP)

    assert result.status is ToolCallStatus.FAILED
    assert result.attempts == 1
    assert len(counting_twilio.posts) == 1  # never sent a second time
    assert counting_twilio.messages == []
    assert result.error == (
        "the WhatsApp message was not sent: Twilio refused or failed: "
        f"HTTP {status} error: Unable to create record: Queue overflow"
    )
    assert counting_twilio.auth_token not in result.error


def test_wrong_twilio_credentials_fail_without_showing_the_token(counting_twilio, notify_settings):
    settings = {**twilio_settings(notify_settings, counting_twilio)}
    settings["twilio_auth_token"] = "wr0ng-tw1lio-s3cret"

    result = call(tools(**settings)["send_whatsapp"], WHATSAPP)

    assert result.status is ToolCallStatus.FAILED
    assert "HTTP 401 error" in result.error
    assert "wr0ng-tw1lio-s3cret" not in result.error
    assert counting_twilio.messages == []


def test_unconfigured_tools_say_which_variables_to_set():
    found = tools()

    email = call(found["send_email"], EMAIL)
    whatsapp = call(found["send_whatsapp"], WHATSAPP)

    assert email.status is whatsapp.status is ToolCallStatus.FAILED
    assert email.error == (
        "the email was not sent: email is not configured: set SMTP_HOST (and SMTP_FROM)"
    )
    assert whatsapp.error == (
        "the WhatsApp message was not sent: WhatsApp is not configured: set "
        "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_WHATSAPP_FROM"
    )


def test_each_tool_says_before_any_call_what_to_set_and_the_demo_outbox_is_ready(
    notify_settings, tmp_path
):
    unconfigured = tools()
    without_sender = tools(smtp_host="127.0.0.1", twilio_account_sid="AC1", twilio_auth_token="t")
    configured = tools(**notify_settings)
    outbox = DemoOutbox(tmp_path / "outbox.jsonl")
    demo = {tool.name: tool for tool in messaging_tools(outbox, outbox)}

    problems = {
        "unconfigured": {name: tool.problem() for name, tool in unconfigured.items()},
        "without a sender": {name: tool.problem() for name, tool in without_sender.items()},
        "configured": {name: tool.problem() for name, tool in configured.items()},
        "demo": {name: tool.problem() for name, tool in demo.items()},
    }

    assert problems == {
        "unconfigured": {
            "send_email": "email is not configured: set SMTP_HOST (and SMTP_FROM)",
            "send_whatsapp": "WhatsApp is not configured: set TWILIO_ACCOUNT_SID, "
            "TWILIO_AUTH_TOKEN and TWILIO_WHATSAPP_FROM",
        },
        "without a sender": {
            "send_email": "email has no sender: set SMTP_FROM",
            "send_whatsapp": "WhatsApp is not configured: set TWILIO_ACCOUNT_SID, "
            "TWILIO_AUTH_TOKEN and TWILIO_WHATSAPP_FROM",
        },
        "configured": {"send_email": None, "send_whatsapp": None},
        "demo": {"send_email": None, "send_whatsapp": None},
    }


# --- inside a run -------------------------------------------------------------------------------


def test_an_agent_sending_email_waits_for_approval_then_sends_exactly_that_mail(
    store, llm_server, mail_server, notify_settings
):
    objective = make_objective(store, risk_level="high")
    llm_server.step("Tell the boss about this week's leads.", "send_email", **EMAIL)
    llm_server.done("The boss was told.")
    settings = agent_settings(**notify_settings)  # AGENT_APPROVAL_FLOW=true
    orchestrator = make_orchestrator(store, llm_server.url, settings=settings)

    run = run_to_end(orchestrator, objective.id)

    assert run.status is RunStatus.PAUSED
    assert mail_server.received == []  # nothing is sent before a human says yes
    (approval,) = store.list_approvals()
    assert (approval.tool_name, approval.args) == ("send_email", EMAIL)
    assert approval.status is ApprovalStatus.PENDING

    store.decide_approval(approval.id, approve=True, by="admin", signing_key=KEY)
    assert store.claim_run(run.id, owner=orchestrator.owner, lease_s=300) is not None
    resumed = orchestrator.execute(run.id)

    assert resumed.status is RunStatus.COMPLETED
    (mail,) = mail_server.received
    assert mail.recipients == ["boss@example.com"]
    assert mail.subject == "Weekly leads"
    assert mail.body.replace("\r\n", "\n") == EMAIL["body"]
    (tool_call,) = store.run_detail(run.id).tool_calls
    assert tool_call.status is ToolCallStatus.SUCCEEDED
    assert store.verify_ledger(KEY).ok


def test_an_agent_sending_email_is_refused_when_approvals_are_off(
    store, llm_server, mail_server, notify_settings
):
    objective = make_objective(store, risk_level="high")
    llm_server.step("Tell the boss about this week's leads.", "send_email", **EMAIL)
    llm_server.done("I may not send email.")
    settings = agent_settings(**{**notify_settings, "agent_approval_flow": False})

    run = run_to_end(make_orchestrator(store, llm_server.url, settings=settings), objective.id)

    assert mail_server.received == []
    assert store.list_approvals() == []
    assert run.status is RunStatus.COMPLETED
    (tool_call,) = store.run_detail(run.id).tool_calls
    assert tool_call.status is ToolCallStatus.DENIED
    assert tool_call.error is not None
    assert tool_call.error.endswith(
        "send_email is high risk, AGENT_ALLOWED_RISK_LEVELS is low,medium, and approvals "
        "are off (AGENT_APPROVAL_FLOW): it is refused"
    )
    # The refusal is what the agent is told before its next step.
    assert "approvals are off" in str(llm_server.requests[1]["messages"])
