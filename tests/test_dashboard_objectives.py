"""Objectives in the dashboard: create one with a plain-words schedule (its sentence and next
runs shown before saving, once the minute or day typed is allowed), see each invalid field
named beside it in one sentence (and see it go once put right), edit, and run it now."""

from __future__ import annotations

from datetime import time

import pytest

from agent_core.models import Budget, RunStatus
from tests.dashboard_support import beside, errors, no_traceback, text
from tests.support import make_objective

NEW = "objective_new_"


def fill_new(at, *, title="Weekly leads", description="Count last week's leads."):
    at.text_input(key=f"{NEW}title").input(title)
    at.text_area(key=f"{NEW}description").input(description)
    return at


def test_an_objective_is_created_with_a_schedule_in_plain_words(dashboard, live_store):
    at = dashboard.open("objectives")
    no_traceback(at)
    assert "Describe a task for the agent" in text(at)
    fill_new(at)
    at.multiselect(key=f"{NEW}tools").select("count_database").select("read_database")
    at.selectbox(key=f"{NEW}when").select("weekdays").run()
    at.selectbox(key=f"{NEW}timezone").select("Europe/Paris").run()
    shown = text(at)
    assert "Cron expression: `0 9 * * 1-5`" in shown
    assert "At 09:00, Monday through Friday (Europe/Paris). Next runs:" in shown
    assert "CET" in shown  # the next runs, in the objective's time zone

    at.button(key=f"{NEW}save").click().run()
    no_traceback(at)
    assert "Saved “Weekly leads”." in text(at)
    (created,) = live_store.list_objectives()
    assert (created.schedule, created.timezone) == ("0 9 * * 1-5", "Europe/Paris")
    assert created.tools_allowed == ["count_database", "read_database"]
    assert at.query_params["id"] in (created.id, [created.id])


def test_the_tool_picker_shows_each_tools_risk_and_knows_only_registered_tools(dashboard):
    at = dashboard.open("objectives")
    picker = at.multiselect(key=f"{NEW}tools")
    assert any(option.startswith("send_email · high risk · ") for option in picker.options)
    assert any(option.startswith("read_database · low risk · ") for option in picker.options)
    assert not any("not installed" in option for option in picker.options)


def test_each_invalid_field_is_named_beside_it_and_nothing_is_saved(dashboard, live_store):
    at = dashboard.open("objectives")
    at.text_input(key=f"{NEW}title").input("   ")
    at.text_area(key=f"{NEW}description").input("Do it.")
    at.text_input(key=f"{NEW}max_steps").input("0")
    at.button(key=f"{NEW}save").click().run()
    no_traceback(at)
    assert beside(at, f"{NEW}title") == ["Title is required."]
    assert beside(at, f"{NEW}max_steps") == ["Steps must be a whole number from 1 to 10,000."]
    assert beside(at, f"{NEW}description") == []
    assert "Some fields need a change: see the messages above." in errors(at)
    assert "Saved" not in text(at)
    assert live_store.list_objectives() == []


@pytest.mark.parametrize("typed", ["-5", "abc", "1.5", "99999999999999999999"])
def test_a_budget_that_is_not_allowed_is_refused_not_replaced(dashboard, live_store, typed):
    """A number input would drop what was typed and save the default, saying "Saved"."""
    at = fill_new(dashboard.open("objectives"))
    at.text_input(key=f"{NEW}max_tokens").input(typed)
    at.button(key=f"{NEW}save").click().run()
    no_traceback(at)
    assert beside(at, f"{NEW}max_tokens") == [
        "Tokens must be a whole number from 1 to 1,000,000,000,000."
    ]
    assert "Saved" not in text(at)
    assert live_store.list_objectives() == []


def test_budgets_are_typed_with_separators_and_shown_again_when_editing(dashboard, live_store):
    at = fill_new(dashboard.open("objectives"))
    assert at.text_input(key=f"{NEW}max_steps").placeholder == "default 20"
    assert at.text_input(key=f"{NEW}max_tokens").placeholder == "default 200,000"
    at.text_input(key=f"{NEW}max_steps").input("8")
    at.text_input(key=f"{NEW}max_tokens").input("20,000")
    at.button(key=f"{NEW}save").click().run()
    no_traceback(at)
    (created,) = live_store.list_objectives()
    assert created.budget.as_document() == {"maxSteps": 8, "maxTokens": 20_000}

    prefix = f"objective_{created.id}_"
    at = dashboard.open("objectives", id=created.id)
    assert at.text_input(key=f"{prefix}max_steps").value == "8"
    assert at.text_input(key=f"{prefix}max_tokens").value == "20,000"
    assert at.text_input(key=f"{prefix}max_tool_calls").value == ""  # the default
    at.text_input(key=f"{prefix}max_steps").input("")  # back to the default
    at.button(key=f"{prefix}save").click().run()
    no_traceback(at)
    assert "Saved “Weekly leads”." in text(at)
    assert live_store.get_objective(created.id).budget == Budget(max_tokens=20_000)


def test_a_fields_message_goes_as_soon_as_it_is_put_right(dashboard, live_store):
    at = fill_new(dashboard.open("objectives"), title=" ")
    at.text_input(key=f"{NEW}max_steps").input("-5")
    at.button(key=f"{NEW}save").click().run()
    assert beside(at, f"{NEW}title") == ["Title is required."]
    assert beside(at, f"{NEW}max_steps") == ["Steps must be a whole number from 1 to 10,000."]

    at.text_input(key=f"{NEW}title").input("Weekly leads").run()
    assert beside(at, f"{NEW}title") == []
    assert beside(at, f"{NEW}max_steps") == ["Steps must be a whole number from 1 to 10,000."]
    assert "Some fields need a change: see the messages above." in errors(at)

    at.text_input(key=f"{NEW}max_steps").input("5").run()
    no_traceback(at)
    assert errors(at) == []
    assert live_store.list_objectives() == []  # checked, not saved, until "Create"
    at.button(key=f"{NEW}save").click().run()
    assert live_store.list_objectives()[0].budget.max_steps == 5


def test_a_field_is_not_faulted_before_a_save_is_tried(dashboard):
    at = dashboard.open("objectives")
    at.text_input(key=f"{NEW}max_steps").input("abc").run()
    assert errors(at) == []


def test_a_custom_cron_expression_is_checked_before_saving_and_said_once(dashboard, live_store):
    at = fill_new(dashboard.open("objectives"))
    at.selectbox(key=f"{NEW}when").select("custom").run()
    at.text_input(key=f"{NEW}cron").input("0 9 * * 8").run()
    wrong = (
        "Schedule '0 9 * * 8' is not a valid cron expression: the weekday field takes 0 to 7 "
        "(0 and 7 are Sunday) or sun to sat, not 8."
    )
    assert beside(at, f"{NEW}cron") == [wrong]
    assert errors(at) == [wrong]
    at.button(key=f"{NEW}save").click().run()
    assert beside(at, f"{NEW}cron") == [wrong]
    assert errors(at).count(wrong) == 1
    assert live_store.list_objectives() == []
    at.text_input(key=f"{NEW}cron").input("30 7 * * 0").run()
    assert "At 07:30, only on Sunday" in text(at)
    assert errors(at) == []
    at.button(key=f"{NEW}save").click().run()
    assert live_store.list_objectives()[0].schedule == "30 7 * * 0"


def test_the_minute_and_the_day_start_at_their_defaults(dashboard, live_store):
    at = fill_new(dashboard.open("objectives"))
    at.selectbox(key=f"{NEW}when").select("hourly").run()
    minute = at.text_input(key=f"{NEW}minute")
    assert (minute.label, minute.value, minute.placeholder) == (
        "Minutes past the hour",
        "0",
        "default 0",
    )
    assert "Cron expression: `0 * * * *`" in text(at)

    at.selectbox(key=f"{NEW}when").select("monthly").run()
    day = at.text_input(key=f"{NEW}day")
    assert (day.label, day.value, day.placeholder) == ("Day of the month", "1", "default 1")
    assert at.time_input(key=f"{NEW}at").value == time(9, 0)
    assert "Cron expression: `0 9 1 * *`" in text(at)
    at.text_input(key=f"{NEW}day").input("").run()  # empty: the default, as the placeholder says
    assert "Cron expression: `0 9 1 * *`" in text(at)
    at.button(key=f"{NEW}save").click().run()
    no_traceback(at)
    assert live_store.list_objectives()[0].schedule == "0 9 1 * *"


MINUTE_WRONG = "Minutes past the hour must be a whole number from 0 to 59."
DAY_WRONG = "Day of the month must be a whole number from 1 to 31."


@pytest.mark.parametrize("typed", ["75", "60", "-1", "abc", "1.5", "0,30", "*/15"])
def test_a_minute_that_is_not_allowed_is_refused_not_replaced(dashboard, live_store, typed):
    """A number input would keep the previous minute and save it, saying "Saved"."""
    at = fill_new(dashboard.open("objectives"))
    at.selectbox(key=f"{NEW}when").select("hourly").run()
    at.text_input(key=f"{NEW}minute").input(typed).run()
    no_traceback(at)
    assert beside(at, f"{NEW}minute") == [MINUTE_WRONG]  # at once: it replaces the preview
    assert "Cron expression" not in text(at)
    assert "Next runs" not in text(at)
    at.button(key=f"{NEW}save").click().run()
    no_traceback(at)
    assert beside(at, f"{NEW}minute") == [MINUTE_WRONG]
    assert errors(at) == [MINUTE_WRONG, "Some fields need a change: see the messages above."]
    assert "Saved" not in text(at)
    assert live_store.list_objectives() == []


@pytest.mark.parametrize("typed", ["0", "32", "40", "abc", "1.5", "-3"])
def test_a_day_that_is_not_allowed_is_refused_not_replaced(dashboard, live_store, typed):
    at = fill_new(dashboard.open("objectives"))
    at.selectbox(key=f"{NEW}when").select("monthly").run()
    at.text_input(key=f"{NEW}day").input(typed).run()
    no_traceback(at)
    assert beside(at, f"{NEW}day") == [DAY_WRONG]
    assert "Cron expression" not in text(at)
    assert "Next runs" not in text(at)
    at.button(key=f"{NEW}save").click().run()
    no_traceback(at)
    assert beside(at, f"{NEW}day") == [DAY_WRONG]
    assert errors(at) == [DAY_WRONG, "Some fields need a change: see the messages above."]
    assert live_store.list_objectives() == []


def test_a_typed_minute_is_saved_with_its_cron_and_shown_again_when_editing(dashboard, live_store):
    at = fill_new(dashboard.open("objectives"))
    at.selectbox(key=f"{NEW}when").select("hourly").run()
    at.text_input(key=f"{NEW}minute").input("75").run()
    assert beside(at, f"{NEW}minute") == [MINUTE_WRONG]
    at.text_input(key=f"{NEW}minute").input(" 45 ").run()  # put right: the message goes
    no_traceback(at)
    assert errors(at) == []
    assert "Cron expression: `45 * * * *`" in text(at)
    assert "At 45 minutes past the hour (" in text(at)
    assert live_store.list_objectives() == []  # checked, not saved, until "Create"
    at.button(key=f"{NEW}save").click().run()
    no_traceback(at)
    assert "Saved “Weekly leads”." in text(at)
    (created,) = live_store.list_objectives()
    assert created.schedule == "45 * * * *"

    prefix = f"objective_{created.id}_"
    at = dashboard.open("objectives", id=created.id)
    assert at.selectbox(key=f"{prefix}when").value == "hourly"
    assert at.text_input(key=f"{prefix}minute").value == "45"


def test_a_day_past_the_28th_is_saved_and_says_the_months_it_skips(dashboard, live_store):
    """Crontab runs "0 9 31 * *" only in the months that have a 31st: the picker takes the
    day, and the sentence beside it says which months are skipped."""
    at = fill_new(dashboard.open("objectives"))
    at.selectbox(key=f"{NEW}when").select("monthly").run()
    at.selectbox(key=f"{NEW}timezone").select("UTC").run()
    at.time_input(key=f"{NEW}at").set_value(time(7, 30)).run()
    at.text_input(key=f"{NEW}day").input("31").run()
    no_traceback(at)
    assert errors(at) == []
    shown = text(at)
    assert "Cron expression: `30 7 31 * *`" in shown
    assert (
        "At 07:30, on day 31 of the month, except in February, April, June, September and "
        "November (UTC). Next runs:"
    ) in shown
    at.button(key=f"{NEW}save").click().run()
    no_traceback(at)
    (created,) = live_store.list_objectives()
    assert created.schedule == "30 7 31 * *"

    prefix = f"objective_{created.id}_"
    at = dashboard.open("objectives", id=created.id)
    assert at.selectbox(key=f"{prefix}when").value == "monthly"
    assert at.text_input(key=f"{prefix}day").value == "31"
    at.text_input(key=f"{prefix}day").input("40").run()
    at.button(key=f"{prefix}save").click().run()
    assert beside(at, f"{prefix}day") == [DAY_WRONG]
    assert live_store.get_objective(created.id).schedule == "30 7 31 * *"  # unchanged


def test_an_objectives_schedule_is_edited_in_plain_words(dashboard, live_store):
    objective = make_objective(live_store, schedule="0 9 * * 1-5", timezone="UTC")
    prefix = f"objective_{objective.id}_"
    at = dashboard.open("objectives", id=objective.id)
    assert at.selectbox(key=f"{prefix}when").value == "weekdays"
    at.selectbox(key=f"{prefix}when").select("weekly").run()
    at.selectbox(key=f"{prefix}weekday").select("Monday").run()
    at.time_input(key=f"{prefix}at").set_value(time(8, 0)).run()
    assert "Cron expression: `0 8 * * 1`" in text(at)
    at.button(key=f"{prefix}save").click().run()
    no_traceback(at)
    assert live_store.get_objective(objective.id).schedule == "0 8 * * 1"


def test_run_now_queues_a_run_that_shows_in_the_last_runs(dashboard, live_store):
    objective = make_objective(live_store, title="Weekly leads")
    at = dashboard.open("objectives", id=objective.id)
    at.button(key=f"objective_{objective.id}_run_now").click().run()
    no_traceback(at)
    assert "Run #1 is queued: a worker starts it in a moment." in text(at)
    (run,) = live_store.list_runs(objective_id=objective.id)
    assert run.status is RunStatus.QUEUED
    assert "Run #1 · " in " ".join(link.label for link in at.get("page_link"))


def test_run_now_is_refused_in_words_when_the_objective_is_off(dashboard, live_store):
    objective = make_objective(live_store, title="Paused", enabled=False)
    at = dashboard.open("objectives", id=objective.id)
    at.button(key=f"objective_{objective.id}_run_now").click().run()
    no_traceback(at)
    assert "is disabled: enable it before starting runs." in text(at)
    assert live_store.list_runs() == []
