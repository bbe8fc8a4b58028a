"""Schedules: what a crontab expression means, in the one place the worker, the CLI and the
dashboard all read it from, so that a schedule fires when its sentence says it does.

The meaning is standard crontab (Vixie cron, as `crontab -e` on any Linux has it):

- five fields, `minute hour day month weekday`, each `*`, a number, a name (`jan`, `mon`),
  a range (`1-5`), a step (`*/15`, `1-5/2`, `mon-fri/2`; `5/15` is `5-last/15`) or a list;
- weekdays 0 and 7 are both Sunday, so `1-5` is Monday to Friday (a range may also end on
  Sunday written as 0 or `sun`: `fri-sun` is `5-7`, where Vixie cron would refuse it);
- when both the day of the month and the weekday are restricted, a day that matches EITHER
  fires (`0 9 13 * 5`: every Friday, and every 13th). As in Vixie cron, a field that begins
  with `*` (`*/2`) does not count as restricted for this rule: the two then both apply.
- in the hour the clocks go back, a job at a fixed time fires once; one whose minute or hour
  begins with `*` fires in both passes (Vixie cron's rule).

APScheduler's own `CronTrigger.from_crontab` reads weekday numbers with 0 = Monday, refuses
7, drops the step of `mon-fri/2` and ANDs the two day fields; it is not used. Expressions are
parsed here into sets of values and handed to APScheduler as explicit lists instead.

Pure (no I/O). APScheduler and cron-descriptor are imported inside the functions that need
them, because models.py imports this module and `python -m agent_core --help` should not pay
for them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent_core.numbers import typed_whole_number

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator, Mapping

    from apscheduler.triggers.base import BaseTrigger

# A slot missed by more than this (every worker down) is not fired late.
MISFIRE_GRACE = timedelta(days=1)

WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbers 0-6
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAY_WORDS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTH_WORDS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_LONGEST_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_NEEDS_FIVE_FIELDS = (
    "schedule {expression!r} is not a cron expression: it needs 5 fields "
    "(minute hour day month weekday), e.g. '0 8 * * mon'"
)
_NOT_VALID = "schedule {expression!r} is not a valid cron expression: {problem}"


# --- parsing ----------------------------------------------------------------------------------


class _Field(NamedTuple):
    name: str  # as the error sentences name it
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] is the value name_base + i
    name_base: int = 0

    @property
    def allowed(self) -> str:
        numbers = f"{self.low} to {self.high}"
        if self.name == "weekday":
            return f"{numbers} (0 and 7 are Sunday) or sun to sat"
        if self.names:
            return f"{numbers} or {self.names[0]} to {self.names[-1]}"
        return numbers


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day", 1, 31),
    _Field("month", 1, 12, MONTH_NAMES, 1),
    _Field("weekday", 0, 7, WEEKDAY_NAMES, 0),
)
_ITEM = r"(?P<base>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>[0-9]+))?"  # compiled on first use
_ALL_DAYS = frozenset(range(1, 32))
_ALL_WEEKDAYS = frozenset(range(7))

# How the two day fields combine, once parsed: every day; by day of the month only; by
# weekday only; a day that matches either (Vixie's OR); a day that matches both.
_DayRule = Literal["every", "month_days", "weekdays", "either", "both"]


class _Cron(NamedTuple):
    """A parsed expression; `text` keeps the fields as written (lower case). Two
    expressions that fire at the same times have the same `meaning` (the day sets are
    normalised by `day_rule`)."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday
    day_rule: _DayRule
    text: tuple[str, ...]

    @property
    def meaning(self) -> tuple[object, ...]:
        return tuple(self[:6])

    @property
    def repeats_when_clocks_go_back(self) -> bool:
        """Vixie cron runs a job again in the repeated hour only if its minute or hour field
        begins with `*` (a job meant to run every so often, not at a time of day)."""
        return self.text[0].startswith("*") or self.text[1].startswith("*")


def _value(token: str, spec: _Field) -> int:
    name = token.lower()
    if token.isdigit():
        number = int(token)
    elif name in spec.names:
        number = spec.name_base + spec.names.index(name)
    else:
        number = spec.low - 1
    if not spec.low <= number <= spec.high:
        shown = token if token.isdigit() else repr(token)
        raise ValueError(f"the {spec.name} field takes {spec.allowed}, not {shown}")
    return number


def _parse_field(text: str, spec: _Field) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        match = re.fullmatch(_ITEM, item, re.IGNORECASE | re.ASCII)
        if match is None:
            raise ValueError(
                f"{item or text!r} in the {spec.name} field is not a value, a range (1-5), "
                "a step (*/15) or a list (1,15)"
            )
        base, step_text = match["base"], match["step"]
        step = int(step_text) if step_text is not None else 1
        if step < 1:
            raise ValueError(f"the step in {item!r} ({spec.name} field) must be at least 1")
        if base == "*":
            low, high = spec.low, spec.high
        elif "-" in base:
            first, last = base.split("-")
            low, high = _value(first, spec), _value(last, spec)
            if spec.name == "weekday" and high == 0 < low:
                high = 7  # fri-sun: Sunday as the end of the week
            if low > high:
                raise ValueError(
                    f"the range {item!r} in the {spec.name} field runs backwards: "
                    "write it from the lower value to the higher one"
                )
        else:
            low = _value(base, spec)
            high = spec.high if step_text is not None else low  # "5/15" is "5-last/15"
        values.update(range(low, high + 1, step))
    return frozenset(values)


def _parse(expression: str) -> _Cron:
    """The parsed expression, or ValueError with one sentence that says what is wrong."""
    written = " ".join(expression.split())
    fields = written.split()
    if len(fields) != 5:
        raise ValueError(_NEEDS_FIVE_FIELDS.format(expression=written))
    try:
        minutes, hours, days, months, weekdays = (
            _parse_field(text, spec) for text, spec in zip(fields, _FIELDS, strict=True)
        )
        fields = [text.lower() for text in fields]
        weekdays = frozenset(day % 7 for day in weekdays)  # 7 is Sunday too
        cron = _Cron(minutes, hours, days, months, weekdays, _day_rule(fields, days, weekdays), ())
        _check_reachable(cron)
    except ValueError as exc:
        raise ValueError(_NOT_VALID.format(expression=written, problem=exc)) from None
    return _Cron(
        cron.minutes,
        cron.hours,
        _ALL_DAYS if cron.day_rule in ("every", "weekdays") else cron.days,
        cron.months,
        _ALL_WEEKDAYS if cron.day_rule in ("every", "month_days") else cron.weekdays,
        cron.day_rule,
        tuple(fields),
    )


def _day_rule(fields: list[str], days: frozenset[int], weekdays: frozenset[int]) -> _DayRule:
    """Vixie cron: when neither day field begins with `*`, a day matching either fires;
    otherwise a day must match both (a `*` field matches every day anyway)."""
    some_days = days != _ALL_DAYS
    some_weekdays = weekdays != _ALL_WEEKDAYS
    if not fields[2].startswith("*") and not fields[4].startswith("*"):
        if some_days and some_weekdays:
            return "either"
        return "every"  # one of the two matches every day
    if some_days and some_weekdays:
        return "both"
    if some_days:
        return "month_days"
    return "weekdays" if some_weekdays else "every"


def _check_reachable(cron: _Cron) -> None:
    """Refuse days of the month that none of the months has (`0 9 30 2 *`): APScheduler would
    search up to the year 9999 for them."""
    if cron.day_rule in ("every", "weekdays"):
        return
    longest = max(_LONGEST_MONTH[month - 1] for month in cron.months)
    if min(cron.days) > longest:
        months = [_MONTH_WORDS[month - 1] for month in sorted(cron.months)]
        have = "has" if len(months) == 1 else "have"
        raise ValueError(
            f"it would never fire: {', '.join(months)} {have} no day {_spans(cron.days)}"
        )


def _spans(values: frozenset[int] | list[int], *, run: int = 2) -> str:
    """`1,2,3,5` as `1-3,5`: runs of at least `run` consecutive values become ranges."""
    ordered = sorted(values)
    parts: list[str] = []
    start = 0
    for index in range(1, len(ordered) + 1):
        if index == len(ordered) or ordered[index] != ordered[index - 1] + 1:
            chunk = ordered[start:index]
            if len(chunk) >= run and len(chunk) > 1:
                parts.append(f"{chunk[0]}-{chunk[-1]}")
            else:
                parts.extend(str(value) for value in chunk)
            start = index
    return ",".join(parts)


def _zone(timezone: str | tzinfo) -> tzinfo:
    if not isinstance(timezone, str):
        return timezone
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {timezone!r} (use an IANA name such as Europe/Paris)"
        ) from None


# --- the public functions ---------------------------------------------------------------------


def normalize_cron(expression: str) -> str:
    """The expression as stored: fields separated by one space, names in lower case.

    Raises ValueError with one readable sentence unless it is a valid 5-field crontab. The
    APScheduler trigger is built too, so that whatever is accepted here can be scheduled.
    """
    cron = _parse(expression)
    _trigger(cron, UTC)
    return " ".join(cron.text)


def cron_trigger(expression: str, timezone: str | tzinfo = "UTC") -> BaseTrigger:
    """The APScheduler trigger that fires on the standard crontab meaning of `expression`
    in `timezone`: a CronTrigger, or an OrTrigger for Vixie's either-day rule.

    Note: fed to APScheduler's own scheduler, its repeated-hour handling is APScheduler's
    (a fixed-time slot may fire twice when the clocks go back); `next_runs` and
    `latest_due_slot` apply Vixie's rule on top.
    """
    return _trigger(_parse(expression), _zone(timezone))


def _trigger(cron: _Cron, zone: tzinfo) -> BaseTrigger:
    from apscheduler.triggers.combining import OrTrigger
    from apscheduler.triggers.cron import CronTrigger

    every_minute, every_hour = frozenset(range(60)), frozenset(range(24))
    common = {
        "minute": "*" if cron.minutes == every_minute else _spans(cron.minutes),
        "hour": "*" if cron.hours == every_hour else _spans(cron.hours),
        "month": "*" if len(cron.months) == 12 else _spans(cron.months),
        "timezone": zone,
    }
    days = _spans(cron.days)
    # APScheduler numbers weekdays from Monday = 0: hand it names, which it reads right.
    weekdays = ",".join(WEEKDAY_NAMES[day] for day in sorted(cron.weekdays))
    if cron.day_rule == "either":
        return OrTrigger(
            [
                CronTrigger(day=days, day_of_week="*", **common),
                CronTrigger(day="*", day_of_week=weekdays, **common),
            ]
        )
    return CronTrigger(
        day="*" if cron.day_rule in ("every", "weekdays") else days,
        day_of_week="*" if cron.day_rule in ("every", "month_days") else weekdays,
        **common,
    )


def _slots(cron: _Cron, zone: tzinfo, after: datetime) -> Iterator[datetime]:
    """Every slot strictly after `after`, in order, as aware UTC datetimes.

    Each slot is asked for afresh from the instant after the previous one: APScheduler 3.11,
    given its previous fire time inside the hour the clocks go back, can return that same
    time again and again (a worker looping on it would never return).
    """
    if after.tzinfo is None:
        raise ValueError("`after` must be an aware datetime (in UTC, say)")
    trigger = _trigger(cron, zone)
    current = after.astimezone(UTC)
    while True:
        found = trigger.get_next_fire_time(None, current + timedelta(microseconds=1))
        if found is None:
            return
        slot = found.astimezone(UTC)
        if slot <= current:  # no progress: step over the confusion
            current += timedelta(minutes=1)
            continue
        current = slot
        if cron.repeats_when_clocks_go_back or not _second_pass(slot, zone):
            yield slot


def _second_pass(slot: datetime, zone: tzinfo) -> bool:
    """True when `slot` is the second occurrence of its wall-clock time (the clocks went
    back and the hour repeats)."""
    local = slot.astimezone(zone)
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def next_runs(
    expression: str, timezone: str | tzinfo, *, after: datetime, count: int = 3
) -> list[datetime]:
    """The next `count` slots strictly after `after`, as aware UTC datetimes: when a worker
    will start the objective next (shown by `objective show` and the dashboard)."""
    if count < 0:
        raise ValueError("count must be 0 or more")
    found: list[datetime] = []
    if count == 0:
        return found
    for slot in _slots(_parse(expression), _zone(timezone), after):
        found.append(slot)
        if len(found) == count:
            break
    return found


def latest_due_slot(
    expression: str, timezone: str | tzinfo, *, after: datetime, now: datetime
) -> datetime | None:
    """The most recent slot in (after, now], or None: the one slot a worker fires now.

    Slots missed while no worker ran are coalesced into the latest one, as APScheduler does
    by default, and none older than MISFIRE_GRACE is fired late. The search looks back a
    little first, then further: an every-minute schedule missed for a day costs two steps,
    not 1,440.
    """
    cron, zone = _parse(expression), _zone(timezone)
    start = max(after, now - MISFIRE_GRACE)
    for reach in (timedelta(minutes=2), timedelta(hours=2), MISFIRE_GRACE):
        begin = max(start, now - reach)
        latest = None
        for slot in _slots(cron, zone, begin):
            if slot > now:
                break
            latest = slot
        if latest is not None or begin == start:
            return latest
    return None


@lru_cache(maxsize=512)
def describe_schedule(expression: str) -> str:
    """The schedule in plain English with a 24-hour clock: "At 09:00, Monday through Friday".

    Worded by cron-descriptor (0 = Sunday, as crontab), from the fields as parsed here
    rather than as written where its wording would not match what fires: weekday steps
    (`mon-fri/2` reads "Monday, Wednesday, and Friday") and the Vixie day rules.
    Raises ValueError for an invalid expression.
    """
    cron = _parse(expression)
    canonical = (
        _canonical(cron.minutes, 60, 0),
        _canonical(cron.hours, 24, 0),
        _canonical(cron.days, 31, 1),
        _canonical(cron.months, 12, 1),
    )
    # As written first ("*/15" reads "Every 15 minutes"); as parsed if cron-descriptor
    # cannot read the spelling (it refuses `may-8,*`, say).
    for minute, hour, day, month in (cron.text[:4], canonical):
        sentence = _sentence(cron, minute, hour, day, month)
        if sentence is not None:
            skipped = _skipped_months(cron.days, cron.months)
            if skipped and cron.day_rule in ("month_days", "both"):
                return f"{sentence}, {skipped}"
            return sentence
    return f"On the cron schedule {' '.join(cron.text)}"


def _skipped_months(days: Collection[int], months: Collection[int]) -> str | None:
    """The months that have none of `days` (crontab does not move the 31st to the 30th):
    "except in February, April, June, September and November"; None when each of `months`
    has one of them."""
    first = min(days)
    if first <= 28:
        return None
    skipped = [
        _MONTH_WORDS[month - 1] for month in sorted(months) if _LONGEST_MONTH[month - 1] < first
    ]
    if first == 29 and 2 in months:
        skipped.append("February outside leap years")
    if not skipped:
        return None
    listed = ", ".join(skipped[:-1]) + f" and {skipped[-1]}" if len(skipped) > 1 else skipped[0]
    return f"except in {listed}"


def _sentence(cron: _Cron, minute: str, hour: str, day: str, month: str) -> str | None:
    weekdays = _weekday_text(cron.weekdays)
    if cron.day_rule == "every":
        return _cron_descriptor((minute, hour, "*", month, "*"))
    if cron.day_rule == "month_days":
        return _cron_descriptor((minute, hour, day, month, "*"))
    if cron.day_rule == "weekdays":
        return _cron_descriptor((minute, hour, "*", month, weekdays))
    if cron.day_rule == "either":  # cron-descriptor words it "..., or on Friday"
        return _cron_descriptor((minute, hour, day, month, weekdays))
    # both: cron-descriptor would say "or" where Vixie cron means "and"
    base = _cron_descriptor((minute, hour, day, month, "*"))
    if base is None:
        return None
    names = [DAY_WORDS[day] for day in sorted(cron.weekdays, key=lambda d: (d + 6) % 7)]
    listed = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
    return f"{base}, only when it falls on a {listed}"


def _canonical(values: frozenset[int], size: int, low: int) -> str:
    return "*" if values == frozenset(range(low, low + size)) else _spans(values)


def _weekday_text(weekdays: frozenset[int]) -> str:
    """Weekdays in the order a week is read (Monday first, Sunday as 7), runs of three or
    more as ranges: {0, 5, 6} is `5-7`, "Friday through Sunday"."""
    if weekdays == _ALL_WEEKDAYS:
        return "*"
    return _spans([7 if day == 0 else day for day in weekdays], run=3)


def _cron_descriptor(fields: tuple[str, ...]) -> str | None:
    from cron_descriptor import (
        ExpressionDescriptor,
        FormatException,
        MissingFieldException,
        Options,
        WrongArgumentException,
    )

    options = Options()
    options.use_24hour_time_format = True
    expression = " ".join(fields)
    try:
        return ExpressionDescriptor(expression, options).get_description()
    except (FormatException, MissingFieldException, WrongArgumentException, ValueError):
        return None


# --- presets: the dashboard's schedule picker -------------------------------------------------


# What a preset may ask for, each a field of the crontab expression it fills in and taking
# what that field takes (minute 0-59, hour 0-23, day 1-31, weekday 0-7 with 0 and 7 Sunday),
# and what each is when not given.
_PRESET_FIELDS = {spec.name: spec for spec in _FIELDS if spec.name != "month"}
_PRESET_DEFAULTS: Mapping[str, int] = {"hour": 9, "minute": 0, "weekday": 1, "day": 1}


class SchedulePreset(NamedTuple):
    """A schedule an admin picks in plain words; `parameters` are what the form asks for
    (among hour, minute, weekday and day, see `preset_parameter`)."""

    key: str
    label: str
    parameters: tuple[str, ...]

    @property
    def defaults(self) -> dict[str, int]:
        """Each of its parameters with the value it has when not given."""
        return {name: _PRESET_DEFAULTS[name] for name in self.parameters}

    def words(
        self,
        *,
        hour: int | str | None = None,
        minute: int | str | None = None,
        weekday: int | str | None = None,
        day: int | str | None = None,
    ) -> str:
        """The preset with its parameters, as the picker says it: "Every week on Monday at
        08:00". Raises ValueError for a parameter out of range."""
        given = _parameters(hour=hour, minute=minute, weekday=weekday, day=day)
        at = f"at {given['hour']:02d}:{given['minute']:02d}"
        if self.key == "hourly":
            if given["minute"] == 0:
                return "Every hour, on the hour"
            return f"Every hour at {given['minute']} minutes past the hour"
        if self.key == "weekly":
            return f"{self.label} on {DAY_WORDS[given['weekday'] % 7]} {at}"
        if self.key == "monthly":
            which = "the first day of the month" if given["day"] == 1 else f"day {given['day']}"
            skipped = _skipped_months([given["day"]], range(1, 13))
            return f"{self.label} on {which} {at}" + (f", {skipped}" if skipped else "")
        return f"{self.label} {at}"


SCHEDULE_PRESETS = (
    SchedulePreset("hourly", "Every hour", ("minute",)),
    SchedulePreset("daily", "Every day", ("hour", "minute")),
    SchedulePreset("weekdays", "Every weekday (Monday to Friday)", ("hour", "minute")),
    SchedulePreset("weekly", "Every week", ("weekday", "hour", "minute")),
    SchedulePreset("monthly", "Every month", ("day", "hour", "minute")),
)
_PRESETS = {preset.key: preset for preset in SCHEDULE_PRESETS}


def schedule_preset(key: str) -> SchedulePreset:
    try:
        return _PRESETS[key]
    except KeyError:
        raise ValueError(
            f"unknown schedule preset {key!r}; the presets are: {', '.join(_PRESETS)}"
        ) from None


_PRESET_NUMBER = re.compile(r"[0-9]{1,9}")


def preset_parameter_bounds(name: str) -> tuple[int, int]:
    """The lowest and highest value of a preset's parameter: those of its crontab field."""
    spec = _PRESET_FIELDS[name]
    return spec.low, spec.high


def preset_parameter(name: str, value: object) -> int:
    """A preset's parameter (hour, minute, weekday or day) as given: a number, or its text as
    typed in a form (" 15 "); None or empty is its default. ValueError unless it is a whole
    number its crontab field takes: nothing is rounded or clipped, so that a form never saves
    a value other than the one typed.

    A day from 29 to 31 is taken, as crontab takes it: the months without that day are
    skipped, which the schedule's sentence says ("..., except in February").
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return _PRESET_DEFAULTS[name]
    low, high = preset_parameter_bounds(name)
    number = typed_whole_number(value, _PRESET_NUMBER, low, high)
    if number is None:
        raise ValueError(f"the {name} of a schedule preset goes from {low} to {high}")
    return number


def _parameters(**given: object) -> dict[str, int]:
    return {name: preset_parameter(name, value) for name, value in given.items()}


def cron_for(
    preset_key: str,
    *,
    hour: int | str | None = None,
    minute: int | str | None = None,
    weekday: int | str | None = None,
    day: int | str | None = None,
) -> str:
    """The standard crontab expression of a preset: `cron_for("weekdays")` is
    "0 9 * * 1-5", `cron_for("weekly", hour=8)` "0 8 * * 1" (weekday 0 or 7 = Sunday).
    Each parameter is read by `preset_parameter` (text as typed too: `minute="15"`)."""
    preset = schedule_preset(preset_key)
    at = _parameters(hour=hour, minute=minute, weekday=weekday, day=day)
    return {
        "hourly": f"{at['minute']} * * * *",
        "daily": f"{at['minute']} {at['hour']} * * *",
        "weekdays": f"{at['minute']} {at['hour']} * * 1-5",
        "weekly": f"{at['minute']} {at['hour']} * * {at['weekday'] % 7}",
        "monthly": f"{at['minute']} {at['hour']} {at['day']} * *",
    }[preset.key]


def preset_of(expression: str) -> tuple[str, dict[str, int]] | None:
    """The preset and parameters that fire exactly as `expression` does, for an edit form
    to start from ("0 9 * * mon-fri" is ("weekdays", {"hour": 9, "minute": 0})); None for
    anything else, invalid expressions included: the form shows it as a custom schedule."""
    try:
        cron = _parse(expression)
    except ValueError:
        return None
    single = {
        name: next(iter(values))
        for name, values in (
            ("minute", cron.minutes),
            ("hour", cron.hours),
            ("weekday", cron.weekdays),
            ("day", cron.days),
        )
        if len(values) == 1
    }
    for preset in SCHEDULE_PRESETS:
        if any(name not in single for name in preset.parameters):
            continue
        parameters = {name: single[name] for name in preset.parameters}
        if _parse(cron_for(preset.key, **parameters)).meaning == cron.meaning:
            return preset.key, parameters
    return None
