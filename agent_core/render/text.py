"""Text building blocks: tables, times, durations, cut text, validation sentences."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

MAX_CELL = 80


# What acts on the text around it instead of showing, as a regex character class (read alike
# by Python's re and pydantic's Rust regex): control characters (C0 but newline and tab, DEL,
# C1: escape sequences that clear a screen or hide what follows) and the bidi controls
# (embeddings, overrides, isolates and marks, which can show "moc.liame@ssob" for an address
# that ends in another domain).
ACTING_CHARS = r"\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# With what shows as nothing (soft hyphen, zero-width spaces and joiners, word joiners, BOM)
# and the Unicode line separators: two coupon codes, or two addresses, that differ by one of
# these must not look the same to the admin approving one. A call's arguments show them as
# escapes (`visible_json`); an email address may hold none (notify.EMAIL_PATTERN).
INVISIBLE_CHARS = ACTING_CHARS + r"\xad\u180e\u200b-\u200d\u2028\u2029\u2060-\u2065\ufeff"
_ACTING = re.compile(f"[{ACTING_CHARS}]")
_INVISIBLE = re.compile(f"[{INVISIBLE_CHARS}]")
_SECRET_QUERY_KEYS = re.compile(r"pass|pwd|secret|token|key|auth|sig", re.IGNORECASE)
HIDDEN = "***"


def printable(text: str) -> str:
    """The text safe to show in a terminal, a page or a message: what would act instead of
    showing (control characters, bidi controls) is shown as its escape. Text from the LLM,
    tools and the database passes here. A Windows line end (CR LF) is a line break."""
    return _ACTING.sub(_escape, text.replace("\r\n", "\n"))


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible_json(value: Any, *, indent: int | None = None, sort_keys: bool = True) -> str:
    """`value` as JSON (Unicode kept) in which what would act instead of showing (see
    `printable`) or shows as nothing is written as its \\u escape: read back, it is the same
    value, and shown, it is what will be used (the arguments of a call an admin approves)."""
    text = json.dumps(value, indent=indent, ensure_ascii=False, sort_keys=sort_keys, default=str)
    return _INVISIBLE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def counted(number: float | None, one: str, many: str | None = None) -> str:
    """ "1 run", "2 runs", "1,000 invalid replies": a whole number with its noun."""
    amount = int(number or 0)
    return f"{amount:,} {one if amount == 1 else (many or one + 's')}"


def redact_url(url: str) -> str:
    """The URL with its secrets hidden, for messages, logs and pages: the password of its
    user part, and the value of any query parameter named like a secret (PostgreSQL's
    `?password=`, an API `?token=` or `?key=`). Works for database and HTTP URLs alike."""
    text = url.strip()
    user, at, _host = urlsplit(text).netloc.rpartition("@")
    if at and ":" in user:
        text = text.replace(f"{user}@", f"{user.split(':', 1)[0]}:{HIDDEN}@", 1)
    base, question_mark, query = text.partition("?")
    if not question_mark:
        return text
    hidden = "&".join(
        f"{name}={HIDDEN}" if sep and _SECRET_QUERY_KEYS.search(name) else f"{name}{sep}{value}"
        for name, sep, value in (item.partition("=") for item in query.split("&"))
    )
    return f"{base}?{hidden}"


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact_urls_in(text: str) -> str:
    """`text` with every URL in it passed through `redact_url`: the error texts of HTTP
    clients quote the URL they failed on, user:password and `?api_key=` included."""
    return _URL_IN_TEXT.sub(lambda found: redact_url(found.group(0)), text)


def without_secrets_of(url: str | None, text: str, also: Iterable[str | None] = ()) -> str:
    """`text` with its URLs redacted and every secret of `url` (its password, the values of
    its query parameters named like secrets) hidden wherever it appears, with those `also`
    given (the token sent to it): a server may echo what it was sent in its error page."""
    text = redact_urls_in(text)
    parts = urlsplit(url.strip()) if url else None
    found = [parts.password] if parts else []
    if parts:
        found += [
            value
            for name, sep, value in (item.partition("=") for item in parts.query.split("&"))
            if sep and _SECRET_QUERY_KEYS.search(name)
        ]
    return without_secrets(text, [*found, *also])


def without_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with each of `secrets` (of 4 characters or more) shown as ***: for a text from
    outside (an error page, an exception) that may echo a token it was sent."""
    for secret in sorted(
        {each for each in secrets if each and len(each) >= 4}, key=len, reverse=True
    ):
        text = text.replace(secret, HIDDEN)
    return text


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
    return cut(" ".join(printable(str(value)).split()), MAX_CELL)  # measured as shown


def cut(text: str, limit: int) -> str:
    """`text` within `limit` characters, an ellipsis marking what was cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def format_duration(ms: int | float | None) -> str:
    """A duration as people say it: 850 ms, 12.4 s, 3 min 20 s, 2 h 5 min."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{int(ms)} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def as_sentence(text: str) -> str:
    """`text` as a sentence on its own: a capital first letter and a full stop. The runtime's
    own problems are written as clauses ("unknown time zone 'Mars'") so that they can follow
    a field's name in a list; beside a field they read as sentences."""
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _amount(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def whole_number_problem(label: str, low: int, high: int) -> str:
    """What a whole-number field allows, said the same way for every wrong value ("-5",
    "abc", "1.5", a number too large): "Steps must be a whole number from 1 to 10,000."."""
    return f"{label} must be a whole number from {low:,} to {high:,}."


def field_problem(label: str, error: Mapping[str, Any]) -> str:
    """One pydantic error (an item of `ValidationError.errors()`) as a sentence naming the
    field as people know it (`label`): pydantic's own wording ("String should have at least
    1 character") is written for programmers."""
    ctx = error.get("ctx") or {}
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    match error.get("type"):
        case "missing":
            return f"{label} is required."
        case "string_too_short" if ctx.get("min_length") == 1:
            return f"{label} is required."
        case "string_too_short":
            return f"{label} must be at least {_amount(ctx.get('min_length'))} characters."
        case "string_too_long":
            return f"{label} must be at most {_amount(ctx.get('max_length'))} characters."
        case "too_short":
            return f"{label} must have at least {_amount(ctx.get('min_length'))} items."
        case "too_long":
            return f"{label} must have at most {_amount(ctx.get('max_length'))} items."
        case "greater_than_equal":
            return f"{label} must be at least {_amount(ctx.get('ge'))}."
        case "greater_than":
            return f"{label} must be more than {_amount(ctx.get('gt'))}."
        case "less_than_equal":
            return f"{label} must be at most {_amount(ctx.get('le'))}."
        case "less_than":
            return f"{label} must be less than {_amount(ctx.get('lt'))}."
        case "int_parsing" | "int_type" | "int_from_float" | "int_parsing_size":
            return f"{label} must be a whole number."
        case "float_parsing" | "float_type" | "finite_number":
            return f"{label} must be a number."
        case "bool_parsing" | "bool_type":
            return f"{label} must be yes or no."
        case "string_type":
            return f"{label} must be text."
        case "list_type":
            return f"{label} must be a list."
        case "enum" | "literal_error":
            return f"{label} must be {ctx.get('expected')}."
        case "value_error" | "assertion_error":
            return as_sentence(message)  # the runtime's own clause, naming what is wrong
        case "extra_forbidden":
            return f"{label} is not a field here."
    return as_sentence(f"{label} is not valid: {message[:1].lower()}{message[1:]}")


def field_problems(exc: ValidationError, names: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each invalid field (its innermost name) with one sentence naming it as `names` has it
    (the field's own name else), in order: what InvalidFields carries to a page and the CLI."""
    known = names or {}
    problems: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        path = [str(part) for part in error["loc"] if isinstance(part, str)]
        field = path[-1] if path else "value"
        if field not in problems:
            problems[field] = field_problem(known.get(field, field), error)
    return problems


def describe_validation_error(
    exc: ValidationError,
    names: Mapping[str, str] | None = None,
    *,
    hide_input_of: Collection[str] = (),
) -> str:
    """One sentence naming every problem pydantic found, each with its field as the admin
    knows it (`names` maps field names to option or variable names)."""
    known = names or {}
    problems = []
    for error in exc.errors(include_url=False):
        path = [str(part) for part in error["loc"] if isinstance(part, str)]
        field = next((known[part] for part in reversed(path) if part in known), None)
        field = field or ".".join(path) or "value"
        problem = f"{field}: {error['msg'].removeprefix('Value error, ')}"
        given = error.get("input")
        if (
            field not in hide_input_of
            and isinstance(given, str | int | float)
            and not isinstance(given, bool)
        ):
            problem += f" (got {given!r})"
        problems.append(problem)
    return "; ".join(problems)
