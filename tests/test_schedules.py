"""Schedules mean standard crontab (Vixie cron) everywhere: weekday 0 and 7 are Sunday,
`1-5` is Monday to Friday, names, ranges, lists and steps work, the two day fields are ORed
when both are restricted, a 09:00 slot stays 09:00 local across a DST change, and an
invalid expression is refused with one readable sentence. Pure: no database."""

from __future__ import annotations

import itertools
import random
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from agent_core.schedules import (
    MISFIRE_GRACE,
    SCHEDULE_PRESETS,
    cron_for,
    cron_trigger,
    describe_schedule,
    latest_due_slot,
    next_runs,
    normalize_cron,
    preset_of,
    schedule_preset,
)

MONDAY = datetime(2026, 11, 30, tzinfo=UTC)  # midnight, a Monday
PARIS = ZoneInfo("Europe/Paris")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # Python's weekday() order


def _weekdays_within(expression, days=14, start=MONDAY):
    """The set of weekday names a schedule fires on in the `days` days after `start`."""
    runs = next_runs(expression, "UTC", after=start, count=days * 2)
    return {DAYS[slot.weekday()] for slot in runs if slot < start + timedelta(days=days)}


# --- weekdays -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "weekday"),
    [
        ("0", "sun"),
        ("1", "mon"),
        ("2", "tue"),
        ("3", "wed"),
        ("4", "thu"),
        ("5", "fri"),
        ("6", "sat"),
        ("7", "sun"),
        ("sun", "sun"),
        ("mon", "mon"),
        ("tue", "tue"),
        ("wed", "wed"),
        ("thu", "thu"),
        ("fri", "fri"),
        ("sat", "sat"),
        ("MON", "mon"),
        ("Sun", "sun"),
    ],
)
def test_each_weekday_number_and_name_fires_on_that_day(token, weekday):
    runs = next_runs(f"0 9 * * {token}", "UTC", after=MONDAY, count=3)
    assert [DAYS[slot.weekday()] for slot in runs] == [weekday] * 3
    assert all((slot.hour, slot.minute) == (9, 0) for slot in runs)
    assert MONDAY < runs[0] < MONDAY + timedelta(days=7)  # the first one, not a week late
    assert [b - a for a, b in itertools.pairwise(runs)] == [timedelta(days=7)] * 2


@pytest.mark.parametrize(
    ("field", "weekdays"),
    [
        ("1-5", "mon tue wed thu fri"),
        ("mon-fri", "mon tue wed thu fri"),
        ("MON-FRI", "mon tue wed thu fri"),
        ("5-7", "fri sat sun"),
        ("fri-sun", "fri sat sun"),
        ("0-7", "mon tue wed thu fri sat sun"),
        ("*/2", "sun tue thu sat"),
        ("1-5/2", "mon wed fri"),
        ("mon-fri/2", "mon wed fri"),
        ("1/2", "mon wed fri sun"),  # 1-7/2
        ("1,3,5", "mon wed fri"),
        ("sat,sun", "sat sun"),
        ("0,6", "sat sun"),
        ("6,7", "sat sun"),
        ("5-7,1", "fri sat sun mon"),
        ("tue,thu-sat/2", "tue thu sat"),
    ],
)
def test_weekday_ranges_steps_and_lists(field, weekdays):
    assert _weekdays_within(f"0 9 * * {field}") == set(weekdays.split())


def test_a_weekday_schedule_fires_at_its_local_time():
    runs = next_runs("0 9 * * 1-5", "Europe/Paris", after=MONDAY, count=6)
    local = [slot.astimezone(PARIS) for slot in runs]
    assert [f"{moment:%a %H:%M}" for moment in local] == [
        "Mon 09:00",
        "Tue 09:00",
        "Wed 09:00",
        "Thu 09:00",
        "Fri 09:00",
        "Mon 09:00",
    ]
    assert all(slot.tzinfo is UTC and slot.hour == 8 for slot in runs)  # CET is UTC+1


# --- the two day fields -------------------------------------------------------------------


def test_day_of_month_or_weekday_when_both_are_restricted():
    runs = next_runs("0 9 13 * 5", "UTC", after=MONDAY, count=5)
    assert [slot.date() for slot in runs] == [
        date(2026, 12, 4),  # Friday
        date(2026, 12, 11),  # Friday
        date(2026, 12, 13),  # the 13th, a Sunday
        date(2026, 12, 18),
        date(2026, 12, 25),
    ]
    assert isinstance(cron_trigger("0 9 13 * 5", "UTC"), OrTrigger)


def test_one_restricted_day_field_alone_decides():
    assert {slot.day for slot in next_runs("0 9 13 * *", "UTC", after=MONDAY, count=4)} == {13}
    assert _weekdays_within("0 9 * * 5") == {"fri"}
    assert _weekdays_within("0 9 13 * 0-7") == set(DAYS)  # OR with every weekday: every day
    assert _weekdays_within("0 9 1-31 * 1") == set(DAYS)


def test_a_day_field_that_begins_with_a_star_ands_as_in_vixie_cron():
    # Vixie cron tests the first character: `*/2` is not "restricted" for the OR rule.
    runs = next_runs("0 9 */2 * 1", "UTC", after=MONDAY, count=3)
    assert [slot.date() for slot in runs] == [
        date(2026, 12, 7),
        date(2026, 12, 21),
        date(2027, 1, 11),
    ]
    assert all(slot.day % 2 == 1 and slot.weekday() == 0 for slot in runs)


# --- time zones and DST -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "utc_hours"),
    [
        (datetime(2026, 10, 22, 12, tzinfo=UTC), [7, 7, 8, 8]),  # back to CET on the 25th
        (datetime(2026, 3, 26, 12, tzinfo=UTC), [8, 8, 7, 7]),  # on to CEST on the 29th
    ],
)
def test_a_nine_oclock_slot_stays_nine_oclock_local_across_dst(after, utc_hours):
    runs = next_runs("0 9 * * *", "Europe/Paris", after=after, count=4)
    assert [slot.astimezone(PARIS).hour for slot in runs] == [9, 9, 9, 9]
    assert [slot.hour for slot in runs] == utc_hours
    assert len({slot.astimezone(PARIS).date() for slot in runs}) == 4


def _local_day(expression, day):
    start = datetime(day.year, day.month, day.day, tzinfo=PARIS).astimezone(UTC)
    end = start + timedelta(days=1, hours=1)
    runs = next_runs(expression, "Europe/Paris", after=start - timedelta(seconds=1), count=100)
    return [slot for slot in runs if slot < end and slot.astimezone(PARIS).date() == day]


@pytest.mark.timeout(30)
def test_when_the_clocks_go_back_a_fixed_time_fires_once_and_a_star_field_in_both_passes():
    day = date(2026, 10, 25)  # 03:00 CEST becomes 02:00 CET
    (once,) = _local_day("30 2 * * *", day)
    assert once == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # the first 02:30
    assert len(_local_day("0 * * * *", day)) == 25  # every hour of a 25-hour day
    assert len(_local_day("*/30 2 * * *", day)) == 4  # 02:00 and 02:30, twice
    # APScheduler asked with its previous fire time loops on the repeated 02:30 forever.
    now = datetime(2026, 10, 25, 3, tzinfo=UTC)
    slot = latest_due_slot("30 2 * * *", "Europe/Paris", after=now - timedelta(hours=4), now=now)
    assert slot == once


def test_when_the_clocks_go_forward_a_slot_in_the_skipped_hour_fires_once():
    (slot,) = _local_day("30 2 * * *", date(2026, 3, 29))  # 02:00 CET becomes 03:00 CEST
    assert slot.astimezone(PARIS).hour == 3


# --- invalid expressions ------------------------------------------------------------------

FIVE_FIELDS = (
    "is not a cron expression: it needs 5 fields (minute hour day month weekday), "
    "e.g. '0 8 * * mon'"
)


@pytest.mark.parametrize(
    ("expression", "sentence"),
    [
        (
            "0 9 * * 8",
            "schedule '0 9 * * 8' is not a valid cron expression: the weekday field takes "
            "0 to 7 (0 and 7 are Sunday) or sun to sat, not 8",
        ),
        (
            "60 * * * *",
            "schedule '60 * * * *' is not a valid cron expression: "
            "the minute field takes 0 to 59, not 60",
        ),
        (
            "0 25 * * *",
            "schedule '0 25 * * *' is not a valid cron expression: "
            "the hour field takes 0 to 23, not 25",
        ),
        ("0 9 * *", f"schedule '0 9 * *' {FIVE_FIELDS}"),
        ("0 0 9 * * *", f"schedule '0 0 9 * * *' {FIVE_FIELDS}"),
        ("@daily", f"schedule '@daily' {FIVE_FIELDS}"),
        ("0 9 0 * *", "the day field takes 1 to 31, not 0"),
        ("0 9 L * *", "the day field takes 1 to 31, not 'L'"),
        ("0 9 * 13 *", "the month field takes 1 to 12 or jan to dec, not 13"),
        ("0 9 * * funday", "or sun to sat, not 'funday'"),
        ("0 9 * * fri-mon", "the range 'fri-mon' in the weekday field runs backwards"),
        ("*/0 * * * *", "the step in '*/0' (minute field) must be at least 1"),
        ("0 9 * * 5#2", "'5#2' in the weekday field is not a value, a range (1-5)"),
        ("0 9 ? * *", "'?' in the day field is not a value"),
        ("0 9 1,,2 * *", "'1,,2' in the day field is not a value"),
        ("0 9 30 2 *", "it would never fire: February has no day 30"),
        ("0 9 31 2,4 *", "it would never fire: February, April have no day 31"),
    ],
)
def test_an_invalid_expression_is_refused_with_one_sentence(expression, sentence):
    for use in (
        normalize_cron,
        describe_schedule,
        lambda e: cron_trigger(e, "UTC"),
        lambda e: next_runs(e, "UTC", after=MONDAY),
        lambda e: latest_due_slot(e, "UTC", after=MONDAY, now=MONDAY),
    ):
        with pytest.raises(ValueError, match=re.escape(sentence)) as caught:
            use(expression)
        assert "\n" not in str(caught.value)
    assert preset_of(expression) is None


def test_normalize_keeps_the_spelling_with_single_spaces_and_lower_case():
    assert normalize_cron("0 8 * * mon") == "0 8 * * mon"
    assert normalize_cron("  0   9 * *\tMON-FRI ") == "0 9 * * mon-fri"
    assert normalize_cron("0 9 * * 7") == "0 9 * * 7"


def test_unknown_time_zone_and_naive_times_are_refused():
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        next_runs("0 9 * * *", "Mars/Olympus", after=MONDAY)
    with pytest.raises(ValueError, match="aware datetime"):
        next_runs("0 9 * * *", "UTC", after=datetime(2026, 11, 30))


# --- sentences ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "sentence"),
    [
        ("0 9 * * 1-5", "At 09:00, Monday through Friday"),
        ("0 9 * * mon-fri", "At 09:00, Monday through Friday"),
        ("30 14 * * *", "At 14:30"),
        ("0 9 * * 0", "At 09:00, only on Sunday"),
        ("0 9 * * 7", "At 09:00, only on Sunday"),
        ("0 9 * * 5-7", "At 09:00, Friday through Sunday"),
        ("0 9 * * 1-5/2", "At 09:00, only on Monday, Wednesday, and Friday"),
        ("0 9 * * mon-fri/2", "At 09:00, only on Monday, Wednesday, and Friday"),
        ("0 9 * * */2", "At 09:00, only on Tuesday, Thursday, Saturday, and Sunday"),
        ("0 9 13 * 5", "At 09:00, on day 13 of the month, or on Friday"),
        ("0 9 */2 * 1", "At 09:00, every 2 days, only when it falls on a Monday"),
        ("0 9 1-31 * 1", "At 09:00"),
        ("0 8 1 * *", "At 08:00, on day 1 of the month"),
        # crontab skips the months without the day: the sentence says which
        (
            "0 9 31 * *",
            "At 09:00, on day 31 of the month, except in February, April, June, September "
            "and November",
        ),
        ("0 9 30 * *", "At 09:00, on day 30 of the month, except in February"),
        ("0 9 29 * *", "At 09:00, on day 29 of the month, except in February outside leap years"),
        (
            "0 9 30 1-3 *",
            "At 09:00, on day 30 of the month, January through March, except in February",
        ),
        ("0 9 31 * 5", "At 09:00, on day 31 of the month, or on Friday"),  # every Friday too
        ("0 9 30 4-6 *", "At 09:00, on day 30 of the month, April through June"),
        ("*/15 * * * *", "Every 15 minutes"),
        ("0 * * * *", "Every hour"),
    ],
)
def test_the_sentence_says_what_fires_on_a_24_hour_clock(expression, sentence):
    assert describe_schedule(expression) == sentence


# --- next runs and the due slot -----------------------------------------------------------


def test_next_runs_are_strictly_after_and_in_utc():
    slot = datetime(2026, 11, 30, 9, tzinfo=UTC)
    runs = next_runs("0 9 * * *", "UTC", after=slot, count=2)
    assert runs == [slot + timedelta(days=1), slot + timedelta(days=2)]
    assert next_runs("0 9 * * *", "UTC", after=slot - timedelta(microseconds=1), count=1) == [slot]
    assert next_runs("0 9 * * *", "UTC", after=slot, count=0) == []
    assert len(next_runs("0 9 * * *", "Asia/Tokyo", after=slot)) == 3
    assert all(run.tzinfo is UTC for run in next_runs("0 9 * * *", "Asia/Tokyo", after=slot))


def test_latest_due_slot_coalesces_missed_slots_in_the_objectives_time_zone():
    now = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)  # 10:30 in Paris
    slot = latest_due_slot("0 10 * * *", "Europe/Paris", after=now - timedelta(days=3), now=now)
    assert slot == datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    assert (
        latest_due_slot("0 11 * * *", "Europe/Paris", after=now - timedelta(hours=1), now=now)
        is None
    )


def test_latest_due_slot_fires_nothing_older_than_the_grace():
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    monthly = latest_due_slot("0 9 1 * *", "UTC", after=now - timedelta(days=30), now=now)
    assert monthly is None  # Dec 1st 09:00 is more than MISFIRE_GRACE late
    within_grace = datetime(2026, 12, 1, 9, tzinfo=UTC) + MISFIRE_GRACE - timedelta(hours=1)
    late = latest_due_slot("0 9 1 * *", "UTC", after=now - timedelta(days=30), now=within_grace)
    assert late == datetime(2026, 12, 1, 9, tzinfo=UTC)
    every_minute = latest_due_slot(
        "* * * * *", "UTC", after=now - timedelta(days=3), now=now + timedelta(seconds=30)
    )
    assert every_minute == now
    assert latest_due_slot("* * * * *", "UTC", after=now, now=now + timedelta(seconds=30)) is None


def test_the_trigger_is_an_apscheduler_trigger_with_standard_weekdays():
    trigger = cron_trigger("0 9 * * 1-5", "Europe/Paris")
    assert isinstance(trigger, CronTrigger)
    fired = trigger.get_next_fire_time(None, datetime(2026, 12, 5, tzinfo=UTC))  # a Saturday
    assert fired.astimezone(PARIS).strftime("%a %d %H:%M") == "Mon 07 09:00"
    assert "day_of_week='mon,tue,wed,thu,fri'" in str(trigger)


# --- against a plain reference: every minute checked by Vixie's rule ------------------------

_NAMES = {3: "jan feb mar apr may jun jul aug sep oct nov dec", 4: "sun mon tue wed thu fri sat"}
_BOUNDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def _reference_values(text, index):
    low, high = _BOUNDS[index]
    names = _NAMES.get(index, "").split()
    base_of = 1 if index == 3 else 0

    def number(token):
        return names.index(token) + base_of if token in names else int(token)

    values = set()
    for item in text.split(","):
        span, _, step = item.partition("/")
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first, last = (number(token) for token in span.split("-"))
        else:
            first = number(span)
            last = high if step else first
        values.update(range(first, last + 1, int(step or 1)))
    return {value % 7 for value in values} if index == 4 else values


def _reference_runs(expression, after, count, horizon_days=15_000):
    fields = expression.split()
    minutes, hours, days, months, weekdays = (
        _reference_values(text, index) for index, text in enumerate(fields)
    )
    either = not fields[2].startswith("*") and not fields[4].startswith("*")
    found = []
    day = after.date()
    for _ in range(horizon_days):
        day_hit, weekday_hit = day.day in days, (day.weekday() + 1) % 7 in weekdays
        if day.month in months and (
            (day_hit or weekday_hit) if either else (day_hit and weekday_hit)
        ):
            for hour in sorted(hours):
                for minute in sorted(minutes):
                    moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                    if moment > after:
                        found.append(moment)
                        if len(found) == count:
                            return found
        day += timedelta(days=1)
    return found


def _random_field(rng, index):
    low, high = _BOUNDS[index]
    names = _NAMES.get(index, "").split()

    def value(at_least=low):
        number = rng.randint(at_least, high)
        if names and rng.random() < 0.3 and number - (index == 3) < len(names):
            return names[number - (index == 3)], number
        return str(number), number

    def item():
        shape = rng.choice(["star", "value", "range", "step", "range-step", "value-step"])
        if shape == "star":
            return "*"
        if shape == "step":
            return f"*/{rng.randint(1, 6)}"
        first, number = value()
        if shape == "value":
            return first
        if shape == "value-step":
            return f"{first}/{rng.randint(1, 4)}"
        last, _ = value(number)
        suffix = f"/{rng.randint(1, 3)}" if shape == "range-step" else ""
        return f"{first}-{last}{suffix}"

    return ",".join(item() for _ in range(rng.choice([1, 1, 1, 2])))


def test_next_runs_and_sentences_agree_with_a_plain_reference_on_random_expressions():
    rng = random.Random(20261130)
    checked = 0
    while checked < 300:
        expression = " ".join(_random_field(rng, index) for index in range(5))
        try:
            normalize_cron(expression)
        except ValueError:
            continue  # e.g. days no chosen month has
        after = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randint(0, 10**6))
        expected = _reference_runs(expression, after, 5)
        assert next_runs(expression, "UTC", after=after, count=5) == expected, expression
        assert describe_schedule(expression), expression
        assert not describe_schedule(expression).startswith("On the cron schedule"), expression
        checked += 1


# --- presets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "parameters", "expression", "words"),
    [
        ("hourly", {}, "0 * * * *", "Every hour, on the hour"),
        ("hourly", {"minute": 15}, "15 * * * *", "Every hour at 15 minutes past the hour"),
        ("daily", {}, "0 9 * * *", "Every day at 09:00"),
        ("daily", {"hour": 18, "minute": 30}, "30 18 * * *", "Every day at 18:30"),
        ("weekdays", {}, "0 9 * * 1-5", "Every weekday (Monday to Friday) at 09:00"),
        ("weekly", {"hour": 8}, "0 8 * * 1", "Every week on Monday at 08:00"),
        ("weekly", {"weekday": 0}, "0 9 * * 0", "Every week on Sunday at 09:00"),
        ("weekly", {"weekday": 7}, "0 9 * * 0", "Every week on Sunday at 09:00"),
        ("monthly", {}, "0 9 1 * *", "Every month on the first day of the month at 09:00"),
        ("monthly", {"day": 15, "hour": 7}, "0 7 15 * *", "Every month on day 15 at 07:00"),
        (
            "monthly",
            {"day": 30},
            "0 9 30 * *",
            "Every month on day 30 at 09:00, except in February",
        ),
        (
            "monthly",
            {"day": 31},
            "0 9 31 * *",
            "Every month on day 31 at 09:00, except in February, April, June, September and "
            "November",
        ),
    ],
)
def test_a_preset_is_standard_crontab_and_reads_back(key, parameters, expression, words):
    assert cron_for(key, **parameters) == expression
    assert schedule_preset(key).words(**parameters) == words
    found_key, found = preset_of(expression)
    assert found_key == key
    assert cron_for(found_key, **found) == expression
    assert set(found) == set(schedule_preset(key).parameters)


def test_the_preset_catalogue():
    assert [(preset.key, preset.label) for preset in SCHEDULE_PRESETS] == [
        ("hourly", "Every hour"),
        ("daily", "Every day"),
        ("weekdays", "Every weekday (Monday to Friday)"),
        ("weekly", "Every week"),
        ("monthly", "Every month"),
    ]
    assert describe_schedule(cron_for("weekdays")) == "At 09:00, Monday through Friday"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 9 * * mon-fri", ("weekdays", {"hour": 9, "minute": 0})),
        ("00 09 * * MON-FRI", ("weekdays", {"hour": 9, "minute": 0})),
        ("0 8 * * 7", ("weekly", {"weekday": 0, "hour": 8, "minute": 0})),
        ("0 8 * * sun", ("weekly", {"weekday": 0, "hour": 8, "minute": 0})),
        ("0 9 1-31 * 1", ("daily", {"hour": 9, "minute": 0})),  # OR with every day
        ("0 9 */1 * *", ("daily", {"hour": 9, "minute": 0})),
        ("*/15 * * * *", None),
        ("0 9,17 * * *", None),
        ("0 9 * * 1,3", None),
        ("0 9 * * 1-5/2", None),
        ("0 9 31 * *", ("monthly", {"day": 31, "hour": 9, "minute": 0})),
        ("0 9 31 1 *", None),  # January only
        ("0 9 13 * 5", None),
        ("0 9 * 1 *", None),
        ("not cron", None),
    ],
)
def test_preset_of_recognises_a_preset_by_what_fires(expression, expected):
    assert preset_of(expression) == expected


@pytest.mark.parametrize(
    ("call", "sentence"),
    [
        (lambda: cron_for("yearly"), "unknown schedule preset 'yearly'; the presets are: hourly"),
        (lambda: cron_for("daily", hour=24), "the hour of a schedule preset goes from 0 to 23"),
        (lambda: cron_for("hourly", minute=60), "the minute of a schedule preset goes from 0"),
        (lambda: cron_for("weekly", weekday=8), "the weekday of a schedule preset goes from 0"),
        (lambda: cron_for("monthly", day=0), "the day of a schedule preset goes from 1 to 31"),
        (lambda: cron_for("monthly", day=32), "the day of a schedule preset goes from 1 to 31"),
        (lambda: cron_for("hourly", minute=True), "the minute of a schedule preset goes from 0"),
        (lambda: schedule_preset("weekly").words(hour=-1), "the hour of a schedule preset"),
    ],
)
def test_preset_parameters_out_of_range_are_refused(call, sentence):
    with pytest.raises(ValueError, match=re.escape(sentence)):
        call()


@pytest.mark.parametrize(
    ("typed", "expression"),
    [("15", "15 * * * *"), (" 05 ", "5 * * * *"), ("", "0 * * * *"), (None, "0 * * * *")],
)
def test_a_presets_parameter_is_read_as_typed_and_empty_is_its_default(typed, expression):
    assert cron_for("hourly", minute=typed) == expression
    assert schedule_preset("hourly").defaults == {"minute": 0}
    assert schedule_preset("monthly").defaults == {"day": 1, "hour": 9, "minute": 0}


@pytest.mark.parametrize("typed", ["75", "-5", "abc", "1.5", "0,30", "*/15", "1e1", "5 min"])
def test_a_presets_parameter_that_is_not_a_whole_number_in_range_is_refused(typed):
    """Nothing is rounded, clipped or read as a crontab list: a form saves what was typed."""
    with pytest.raises(ValueError, match="the minute of a schedule preset goes from 0 to 59"):
        cron_for("hourly", minute=typed)
