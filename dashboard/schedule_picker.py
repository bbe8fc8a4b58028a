"""The schedule of an objective, chosen in plain words ("every weekday at 09:00") with its
time zone; the crontab expression is shown beside it and editable for experts, and the
sentence and next three runs are shown before saving, once what is typed makes a schedule
(what is wrong is said by the page, in the slots the picker asks it for). The rules live in
agent_core: the minute and the day are text, read and checked there."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from datetime import UTC, datetime, time

import streamlit as st

from agent_core import api
from dashboard.plain import inline_code, plain

MANUAL = "manual"
CUSTOM = "custom"
WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


@st.cache_data(show_spinner=False)
def _zones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


def schedule_fields(
    prefix: str,
    schedule: str | None,
    timezone: str,
    problem_slot: Callable[..., None],
) -> dict[str, object]:
    """Draw the picker; returns the objective's schedule fields as typed: `schedule` (a cron
    expression, or None), or a preset with its values (`schedule_preset`, `schedule_minute`
    ...), and `timezone`. `problem_slot(field)` keeps a place for a field's problem."""
    presets = {preset.key: preset for preset in api.SCHEDULE_PRESETS}
    parsed = api.preset_of(schedule) if schedule else None
    whens = {MANUAL: "Only when started by hand"}
    whens |= {key: preset.label for key, preset in presets.items()}
    whens[CUSTOM] = "Custom (cron expression)"
    start = MANUAL if not schedule else (parsed[0] if parsed else CUSTOM)
    when = st.selectbox(
        "When should it run?",
        list(whens),
        index=list(whens).index(start),
        format_func=whens.__getitem__,
        key=f"{prefix}when",
    )
    zones = _zones()
    zone = st.selectbox(
        "Time zone",
        zones,
        index=zones.index(timezone if timezone in zones else "UTC"),
        key=f"{prefix}timezone",
    )
    chosen: dict[str, object] = {"timezone": zone}
    expression: str | None = None
    if when == MANUAL:
        st.caption("It runs only when someone presses “Run now” (or starts it from the CLI).")
        chosen["schedule"] = None
    elif when == CUSTOM:
        expression = st.text_input(
            "Cron expression (minute hour day month weekday)",
            value=schedule or "0 9 * * 1-5",
            key=f"{prefix}cron",
            help="Standard crontab: 0 and 7 are Sunday, 1-5 is Monday to Friday.",
        )
        chosen["schedule"] = expression
    else:
        preset = presets[when]
        starting = {**preset.defaults, **(parsed[1] if parsed else {})}
        # The minute and the day are text, checked by agent_core: a number input would drop
        # a value out of its range (or not a number) without a word, and save another one.
        typed: dict[str, int | str] = {}
        if "hour" in preset.parameters:
            moment = st.time_input(
                "At",
                value=time(starting["hour"], starting["minute"]),
                step=300,
                key=f"{prefix}at",
            )
            typed["hour"], typed["minute"] = moment.hour, moment.minute
        elif "minute" in preset.parameters:
            typed["minute"] = st.text_input(
                api.OBJECTIVE_FIELD_NAMES["schedule_minute"],
                value=str(starting["minute"]),
                key=f"{prefix}minute",
                placeholder=f"default {preset.defaults['minute']}",
            )
            problem_slot("schedule_minute")
        if "weekday" in preset.parameters:
            typed["weekday"] = WEEKDAYS.index(
                st.selectbox(
                    "On",
                    WEEKDAYS,
                    index=starting["weekday"] % 7,
                    key=f"{prefix}weekday",
                )
            )
        if "day" in preset.parameters:
            typed["day"] = st.text_input(
                api.OBJECTIVE_FIELD_NAMES["schedule_day"],
                value=str(starting["day"]),
                key=f"{prefix}day",
                placeholder=f"default {preset.defaults['day']}",
                help="From 29 to 31, the months without that day are skipped.",
            )
            problem_slot("schedule_day")
        chosen["schedule_preset"] = when
        chosen |= {f"schedule_{name}": value for name, value in typed.items()}
        try:
            expression = api.cron_for(when, **typed)
        except ValueError:  # said beside its field
            expression = None
        else:
            st.markdown(f"Cron expression: {inline_code(expression)}")
    if expression is not None:
        _preview(expression, zone)
    return chosen


def _preview(expression: str, zone: str) -> None:
    """The schedule's sentence and next runs. Nothing for an invalid expression: the page
    says what is wrong with it once, beside the field, as it says every field's problem."""
    try:
        sentence = api.describe_schedule(expression)
        upcoming = api.next_runs(expression, zone, after=datetime.now(UTC), count=3)
    except ValueError:
        return
    local = zoneinfo.ZoneInfo(zone)
    times = ", ".join(
        moment.astimezone(local).strftime("%a %Y-%m-%d %H:%M %Z") for moment in upcoming
    )
    st.info(plain(f"{sentence} ({zone}). Next runs: {times or 'none'}."), icon=":material/event:")
