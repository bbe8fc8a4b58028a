"""The schedule of an objective, chosen in plain words ("every weekday at 09:00") with its
time zone; the crontab expression is shown beside it and editable for experts, and the
sentence and next three runs are shown before saving (or, by the page, what is wrong with
the expression). The rules live in agent_core."""

from __future__ import annotations

import zoneinfo
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


def schedule_fields(prefix: str, schedule: str | None, timezone: str) -> dict[str, str | None]:
    """Draw the picker; returns the `schedule` and `timezone` fields of the objective."""
    presets = {preset.key: preset for preset in api.SCHEDULE_PRESETS}
    parsed = api.preset_of(schedule) if schedule else None
    start = MANUAL if not schedule else (parsed[0] if parsed else CUSTOM)
    params = parsed[1] if parsed else {}
    keys = [MANUAL, *presets, CUSTOM]
    labels = {MANUAL: "Only when started by hand", CUSTOM: "Custom (cron expression)"}
    labels |= {key: preset.label for key, preset in presets.items()}
    choice = st.selectbox(
        "When should it run?",
        keys,
        index=keys.index(start),
        format_func=labels.__getitem__,
        key=f"{prefix}when",
    )
    zones = _zones()
    zone = st.selectbox(
        "Time zone",
        zones,
        index=zones.index(timezone) if timezone in zones else zones.index("UTC"),
        key=f"{prefix}timezone",
    )
    if choice == MANUAL:
        st.caption("It runs only when someone presses “Run now” (or starts it from the CLI).")
        return {"schedule": None, "timezone": zone}
    if choice == CUSTOM:
        expression = st.text_input(
            "Cron expression (minute hour day month weekday)",
            value=schedule or "0 9 * * 1-5",
            key=f"{prefix}cron",
            help="Standard crontab: 0 and 7 are Sunday, 1-5 is Monday to Friday.",
        )
    else:
        preset = presets[choice]
        values = {"hour": 9, "minute": 0, "weekday": 1, "day": 1, **params}
        if "hour" in preset.parameters:
            moment = st.time_input(
                "At",
                value=time(values.get("hour", 9), values.get("minute", 0)),
                step=300,
                key=f"{prefix}at",
            )
            values["hour"], values["minute"] = moment.hour, moment.minute
        elif "minute" in preset.parameters:
            values["minute"] = int(
                st.number_input(
                    "Minutes past the hour",
                    min_value=0,
                    max_value=59,
                    value=values.get("minute", 0),
                    key=f"{prefix}minute",
                )
            )
        if "weekday" in preset.parameters:
            values["weekday"] = WEEKDAYS.index(
                st.selectbox(
                    "On",
                    WEEKDAYS,
                    index=values.get("weekday", 1) % 7,
                    key=f"{prefix}weekday",
                )
            )
        if "day" in preset.parameters:
            values["day"] = int(
                st.number_input(
                    "Day of the month",
                    min_value=1,
                    max_value=28,
                    value=values.get("day", 1),
                    key=f"{prefix}day",
                )
            )
        expression = api.cron_for(
            choice, **{k: v for k, v in values.items() if k in preset.parameters}
        )
        st.markdown(f"Cron expression: {inline_code(expression)}")
    _preview(expression, zone)
    return {"schedule": expression, "timezone": zone}


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
