"""Objectives: what the agent is asked to do, with which tools, budgets, risk and schedule.
Create one, edit it, run it now, and see its last runs."""

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from agent_core import api
from dashboard import ui
from dashboard.core import shown_errors
from dashboard.schedule_picker import schedule_fields
from dashboard.shell import begin

NEW = "new"
RISKS = {
    "low": "Low: reads only",
    "medium": "Medium: may create and change data",
    "high": "High: may also send messages and delete data",
}
# Problems said as soon as they are typed: the schedule's sentence and next runs go while it
# is wrong, and saying why at once is better than a preview that is just gone.
SAID_AT_ONCE = ("schedule", "schedule_preset", "schedule_minute", "schedule_day")


core = begin()
st.title("Objectives")
notice = st.session_state.pop("objective_notice", None)
if notice:
    st.success(notice, icon=":material/check_circle:")

with shown_errors():
    store, settings, tools = core.store, core.settings, core.runtime.tools
    objectives = {objective.id: objective for objective in store.list_objectives()}
    keys = [NEW, *objectives]
    if "objective_next" in st.session_state:  # just saved: show it
        st.session_state["objective_choice"] = st.session_state.pop("objective_next")
    wanted = st.query_params.get("id")
    chosen = st.selectbox(
        "Objective",
        keys,
        index=keys.index(wanted) if wanted in objectives else (1 if objectives else 0),
        format_func=lambda key: (
            "➕ New objective"
            if key == NEW
            else f"{objectives[key].title}{'' if objectives[key].enabled else ' (off)'}"
        ),
        key="objective_choice",
    )
    if chosen != NEW:
        st.query_params["id"] = chosen
    elif "id" in st.query_params:
        del st.query_params["id"]
    current = objectives.get(chosen)
    fields = (
        api.objective_fields(current)
        if current
        else {
            "title": "",
            "description": "",
            "tools_allowed": [],
            "max_steps": None,
            "max_tool_calls": None,
            "max_duration_ms": None,
            "max_tokens": None,
            "risk_level": "medium",
            "schedule": None,
            "timezone": st.context.timezone or "UTC",
            "enabled": True,
        }
    )
    prefix = f"objective_{chosen}_"
    # Where each field's problem shows, right under the field: filled once every field is
    # read, so that what is shown is about what is typed now, not about the last save.
    slots: list[tuple[DeltaGenerator, tuple[str, ...]]] = []

    def problem_slot(*fields: str) -> None:
        slots.append((st.empty(), fields))

    if current is None and not objectives:
        ui.empty(
            "Describe a task for the agent: what to do, which tools it may use and how much "
            "it may spend. It runs when you press “Run now”, or on a schedule."
        )

    title = st.text_input("Title", value=fields["title"], key=f"{prefix}title", max_chars=200)
    problem_slot("title")
    description = st.text_area(
        "What should the agent do?",
        value=fields["description"],
        key=f"{prefix}description",
        height=140,
        placeholder="Every Monday, find last week's leads without a follow-up and draft an "
        "email to each.",
    )
    problem_slot("description")

    catalogue = {tool.name: tool for tool in tools}
    options = sorted({*catalogue, *fields["tools_allowed"]})
    chosen_tools = st.multiselect(
        "Tools it may use",
        options,
        default=fields["tools_allowed"],
        format_func=lambda name: (
            f"{name} · {catalogue[name].risk} risk · {api.cut(catalogue[name].description, 70)}"
            if name in catalogue
            else f"{name} (not installed)"
        ),
        key=f"{prefix}tools",
        placeholder="Any tool its risk level allows",
    )
    problem_slot("tools_allowed")
    risk = st.selectbox(
        "Risk level",
        list(RISKS),
        index=list(RISKS).index(fields["risk_level"]),
        format_func=RISKS.__getitem__,
        key=f"{prefix}risk",
        help="Tools above this level, or above AGENT_ALLOWED_RISK_LEVELS, wait for your "
        "approval (or are refused when approvals are off).",
    )
    problem_slot("risk_level")

    with st.expander("Budget (empty: the runtime's defaults)"):
        budget_columns = st.columns(2)
        defaults = {
            "max_steps": settings.agent_max_steps,
            "max_tool_calls": settings.agent_max_tool_calls,
            "max_duration_ms": settings.agent_max_duration_ms,
            "max_tokens": settings.agent_max_tokens_per_run,
        }
        # Text, checked by agent_core: a number input would drop a value out of its range
        # (or not a number) without a word, and save the previous one.
        budget: dict[str, str] = {}
        for index, name in enumerate(api.BUDGET_FIELDS):
            with budget_columns[index % 2]:
                budget[name] = st.text_input(
                    api.OBJECTIVE_FIELD_NAMES[name],
                    value="" if fields[name] is None else f"{fields[name]:,}",
                    key=f"{prefix}{name}",
                    placeholder=f"default {defaults[name]:,}",
                )
                problem_slot(name)

    st.subheader("Schedule")
    schedule = schedule_fields(prefix, fields["schedule"], fields["timezone"], problem_slot)
    problem_slot("schedule", "schedule_preset", "timezone")
    enabled = st.toggle("Enabled", value=fields["enabled"], key=f"{prefix}enabled")
    problem_slot("enabled")

    values = {
        "title": title,
        "description": description,
        "tools_allowed": chosen_tools,
        "risk_level": risk,
        "enabled": enabled,
        **budget,
        **schedule,
    }
    checked = f"{prefix}checked"  # set by a refused save: from then on, check as they type
    problems = api.objective_problems(values, known_tools=tools.names())
    save_label = "Create objective" if current is None else "Save changes"
    if st.button(save_label, type="primary", key=f"{prefix}save"):
        try:
            if current is None:
                saved = api.create_objective(store, values, known_tools=tools.names())
            else:
                saved = api.update_objective(store, current.id, values, known_tools=tools.names())
        except api.InvalidFields as exc:
            st.session_state[checked] = True
            problems = exc.problems
        else:
            st.session_state.pop(checked, None)
            st.session_state["objective_notice"] = f"Saved “{ui.plain(saved.title)}”."
            st.session_state["objective_next"] = saved.id
            st.query_params["id"] = saved.id
            st.rerun()
    # The schedule's problems show as soon as they are typed, in place of its sentence and
    # next runs; the others once a save was refused, until they are put right.
    shown = problems if st.session_state.get(checked) else {}
    shown = {**shown, **{name: problems[name] for name in SAID_AT_ONCE if name in problems}}
    for slot, names in slots:
        found = [shown[name] for name in names if name in shown]
        if found:
            with slot.container():
                for sentence in found:
                    st.error(ui.plain(sentence), icon=":material/error:")
    if st.session_state.get(checked) and problems:
        st.error("Some fields need a change: see the messages above.")

    if current is not None:
        st.divider()
        if st.button("Run now", key=f"{prefix}run_now", icon=":material/play_arrow:"):
            with shown_errors():
                run = api.start_run(store, settings, current.id)
                st.session_state["objective_notice"] = (
                    f"Run #{run.run_number} is queued: a worker starts it in a moment."
                )
                st.rerun()
        st.subheader("Last runs")
        recent = store.runs_page(objective_id=current.id, limit=10)
        if not recent.rows:
            ui.empty("No run yet.")
        for row in recent.rows:
            with st.container(border=True):
                ui.run_link(row.id, f"Run #{row.run_number} · {ui.when(row.created_at)}")
                st.markdown(f"{ui.run_badge(row, row.failed_calls)} · {api.run_counters(row)}")
