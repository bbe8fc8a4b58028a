"""The dashboard in a real browser (Debian's chromium through Playwright), against
`python -m agent_core up --demo` as a newcomer starts it, with a password set.

On a desktop screen: log in, create an objective through the form, run the demo objective,
approve its email in Approvals, and read the completed run. On a phone: the Approvals inbox,
then the approval opened from the signed link of its email, without any login, approved
once; the same link then says it was used. Screenshots of every page go to tests/artifacts/.

Without chromium these tests are skipped with the reason, except under CI (CI=true), where
that is a failure. Run only them: `.venv/bin/python -m pytest tests/test_browser_journey.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest

from tests.browser_support import (
    ADMIN_NAME,
    DESKTOP,
    PHONE,
    PHONE_WIDTH,
    DemoServer,
    choose,
    demo_server,
    docs_shot,
    download_csv,
    fill,
    goto,
    key,
    key_with_prefix,
    log_in_if_asked,
    main,
    open_in_sidebar,
    overflow_px,
    press,
    query_param,
    require_browser,
    shot,
    until_shown,
    wait_for,
)
from tests.peers import free_port

try:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright
except ImportError:  # the `chromium` fixture skips (or fails under CI) with the reason
    pass
else:
    expect.set_options(timeout=20_000)

FOLLOW_UP = "Follow up last week's leads"
APPROVED = "Approved: the run carries on with exactly this call."
NEW_TITLE = "Weekly lead count"
NEW_DESCRIPTION = "Count the leads created last week and say how many there are."
WEEKDAYS = "Every weekday (Monday to Friday)"


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_browser()


@pytest.fixture(scope="module")
def server(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    yield from demo_server(tmp_path_factory.mktemp("journey"), free_port())


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium)
        yield launched
        launched.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[[dict], Page]]:
    """Pages in fresh browser contexts (nothing shared: no session, no storage)."""
    contexts: list[BrowserContext] = []

    def open_page(device: dict) -> Page:
        context = browser.new_context(**device)
        context.set_default_timeout(30_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def request_card(page: Page, run_id: str) -> Locator:
    """The approval request of run `run_id` in the Approvals inbox (its link names the run)."""
    return page.locator('[class*="st-key-request_"]').filter(
        has=page.locator(f'a[href*="id={run_id}"]')
    )


def visit_analytics(page: Page) -> None:
    """Analytics: the week's figures, in words, and every table as a CSV download."""
    open_in_sidebar(page, "Analytics")
    expect(main(page)).to_contain_text("Success rate")
    shot(page, "desktop-09-analytics")
    buttons = main(page).locator('[data-testid="stDownloadButton"] button')
    until_shown(page, buttons, "the Analytics page's CSV downloads")
    downloaded = [download_csv(page, button) for button in buttons.all()]
    assert any("run" in path.name for path in downloaded), [path.name for path in downloaded]


def test_desktop_journey_from_a_new_objective_to_an_approved_completed_run(server, new_page):
    page = new_page(DESKTOP)

    goto(page, server.url)
    expect(key(page, "password")).to_be_visible()
    shot(page, "desktop-01-login")
    assert log_in_if_asked(page)
    expect(page.locator('[data-testid="stSidebar"]')).to_contain_text(f"Deciding as {ADMIN_NAME}")
    expect(main(page).get_by_role("heading", name="Overview")).to_be_visible()
    shot(page, "desktop-02-overview")

    # A new objective, through the form: title, description, a tool, a schedule in words.
    open_in_sidebar(page, "Objectives")
    choose(page, "objective_choice", "New objective")
    fill(page, "objective_new_title", NEW_TITLE)
    fill(page, "objective_new_description", NEW_DESCRIPTION)
    choose(page, "objective_new_tools", re.compile(r"^count_database · "))
    choose(page, "objective_new_when", WEEKDAYS)
    expect(main(page)).to_contain_text("Cron expression: 0 9 * * 1-5")
    expect(main(page)).to_contain_text("Next runs:")
    shot(page, "desktop-03-objective-form")
    press(page, "objective_new_save")
    expect(main(page)).to_contain_text(f"Saved “{NEW_TITLE}”.")
    saved_id = query_param(page.url, "id")
    assert saved_id, page.url
    expect(key(page, f"objective_{saved_id}_title").locator("input")).to_have_value(NEW_TITLE)
    expect(key(page, "objective_choice").get_by_role("combobox")).to_have_value(NEW_TITLE)
    shot(page, "desktop-04-objective-saved")
    saved = next(o for o in server.cli("objective", "list") if o["id"] == saved_id)
    assert (saved["title"], saved["tools_allowed"], saved["schedule"]) == (
        NEW_TITLE,
        ["count_database"],
        "0 9 * * 1-5",
    )

    # The demo objective: Run now.
    choose(page, "objective_choice", FOLLOW_UP)
    expect(main(page).get_by_label("Title", exact=True)).to_have_value(FOLLOW_UP)
    follow_up_id = query_param(page.url, "id")
    assert follow_up_id != saved_id
    press(page, f"objective_{follow_up_id}_run_now")
    queued = main(page).get_by_text(re.compile(r"Run #\d+ is queued"))
    expect(queued).to_be_visible()
    run_number = re.search(r"Run #(\d+)", queued.inner_text()).group(1)
    run_link = main(page).get_by_role("link", name=re.compile(rf"^Run #{run_number} · "))
    run_id = query_param(run_link.get_attribute("href"), "id")
    shot(page, "desktop-05-run-queued")

    # Approvals: the request appears when the worker pauses the run; approve it.
    open_in_sidebar(page, "Approvals")
    card = until_shown(page, request_card(page, run_id), "the request of the demo run")
    expect(card).to_contain_text("send_email")
    approval_id = key_with_prefix(card, "request_").removeprefix("request_")
    shot(page, "desktop-06-approvals")
    press(page, f"approve_{approval_id}")
    expect(main(page)).to_contain_text(APPROVED)
    expect(key(page, f"approve_{approval_id}")).to_have_count(0)

    # Runs: open the run, wait until it has completed, read its summary.
    open_in_sidebar(page, "Runs")
    listed = main(page).locator(f'a[href*="id={run_id}"]').first
    expect(listed).to_be_visible()
    shot(page, "desktop-07-runs")
    listed.click()
    until_shown(
        page,
        main(page).get_by_text(f"Run #{run_number} completed.", exact=True),
        "the run to complete",
    )
    summary = main(page).get_by_text(re.compile(r"^Summary\. ")).inner_text()
    assert re.fullmatch(r"Summary\. Followed up .+ by email and marked the lead as done\.", summary)
    expect(main(page)).to_contain_text("What the agent did")
    expect(main(page)).to_contain_text(f"approved by {ADMIN_NAME}")
    shot(page, "desktop-08-run")
    docs_shot(
        "run-desktop",
        page.locator('[data-testid="stMainBlockContainer"]'),
        top=main(page).get_by_role("heading", name=f"Run #{run_number}"),
        bottom=main(page)
        .locator('[data-testid="stLayoutWrapper"]')
        .filter(has_text="the agent finished and wrote its summary")
        .last,
    )

    visit_analytics(page)
    server.assert_no_traceback()


def test_phone_inbox_and_the_signed_link_approve_once_without_login(server, new_page):
    follow_up = next(o for o in server.cli("objective", "list") if o["title"] == FOLLOW_UP)
    run_id = server.cli("run", "start", follow_up["id"])["id"]

    # The inbox on a phone: the request of the new run, readable and within the screen.
    inbox = new_page(PHONE)
    goto(inbox, f"{server.url}/approvals")
    assert log_in_if_asked(inbox)
    card = until_shown(inbox, request_card(inbox, run_id), "the request of the new run")
    approval_id = key_with_prefix(card, "request_").removeprefix("request_")
    approve = key(inbox, f"approve_{approval_id}").get_by_role("button")
    expect(approve).to_be_visible()
    box = approve.bounding_box()
    assert box is not None
    assert box["x"] >= 0, box
    assert box["x"] + box["width"] <= PHONE_WIDTH, box
    assert overflow_px(inbox) <= 1, "the inbox scrolls sideways on a phone"
    shot(inbox, "phone-01-approvals")

    # The signed link of the approval email, in a browser that never logged in.
    link = server.approval_link(run_id)
    assert link.startswith(f"{server.url}/approval?token="), link
    phone = new_page(PHONE)
    goto(phone, link)
    expect(main(phone).get_by_role("heading", name="Approval request")).to_be_visible()
    expect(key(phone, "password")).to_have_count(0)
    expect(key(phone, "request_link")).to_contain_text("send_email")
    expect(key(phone, "approve_link")).to_be_visible()
    assert overflow_px(phone) <= 1, "the approval page scrolls sideways on a phone"
    shot(phone, "phone-02-signed-link")
    docs_shot(
        "approval-link-phone",
        phone.locator('[data-testid="stMainBlockContainer"]'),
        top=main(phone).get_by_role("heading", name="Approval request"),
        bottom=key(phone, "request_link"),
    )

    press(phone, "approve_link", tap=True)
    expect(main(phone)).to_contain_text(APPROVED)
    expect(key(phone, "approve_link")).to_have_count(0)
    assert overflow_px(phone) <= 1, "the approval page scrolls sideways on a phone"
    shot(phone, "phone-03-signed-link-approved")

    # The same link again: one sentence, no data, no buttons.
    goto(phone, link)
    expect(main(phone)).to_contain_text("This approval link was already used")
    expect(main(phone).get_by_role("button")).to_have_count(0)
    expect(key(phone, "request_link")).to_have_count(0)
    assert overflow_px(phone) <= 1, "the approval page scrolls sideways on a phone"
    shot(phone, "phone-04-signed-link-used")

    def completed() -> dict | None:
        detail = server.cli("run", "show", run_id)
        return detail if detail["run"]["status"] == "completed" else None

    shown = wait_for(completed, 60, "the run approved from the link to complete")
    (approval,) = shown["approvals"]
    assert approval["status"] == "approved"
    assert approval["decided_by"] == "admin@example.com (via email link)"
    server.assert_no_traceback()
