"""Whole numbers as an admin types them (a budget, a schedule's hour), read one way for
every field: nothing is rounded or clipped, so that a form never saves a value other than
the one typed."""

from __future__ import annotations

import re

_MAX_TYPED_CHARS = 40  # longer text is no number of any field (and int() takes this at once)


def typed_whole_number(value: object, pattern: re.Pattern[str], low: int, high: int) -> int | None:
    """`value` as a whole number from `low` to `high`: an int (not a bool), or text that
    matches `pattern` once stripped (its commas, where the pattern allows them, ignored);
    None when it is not one."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif (
        isinstance(value, str)
        and len(value) <= _MAX_TYPED_CHARS
        and pattern.fullmatch(value.strip())
    ):
        number = int(value.strip().replace(",", ""))
    return number if number is not None and low <= number <= high else None
