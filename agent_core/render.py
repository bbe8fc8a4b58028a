"""Turning domain values into text an admin reads: tables, times, validation sentences."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

MAX_CELL = 80


def format_time(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, empty: str) -> str:
    if not rows:
        return empty
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(header), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def describe_validation_error(
    exc: ValidationError,
    names: Mapping[str, str] | None = None,
    *,
    hide_input_of: Collection[str] = (),
) -> str:
    """One sentence for the first problem pydantic found, naming the field as the admin
    knows it (`names` maps field names to option or variable names)."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    path = [str(part) for part in first["loc"] if isinstance(part, str)]
    known = names or {}
    field = next((known[part] for part in reversed(path) if part in known), None)
    field = field or ".".join(path) or "value"
    sentence = f"{field}: {first['msg'].removeprefix('Value error, ')}"
    given = first.get("input")
    if (
        field not in hide_input_of
        and isinstance(given, str | int | float)
        and not isinstance(given, bool)
    ):
        sentence += f" (got {given!r})"
    if len(errors) > 1:
        sentence += f"; and {len(errors) - 1} more problem(s)"
    return sentence
