"""Stored text shown as it is: whatever the model, a tool, a user or the database wrote is
escaped before Streamlit reads it as Markdown, so it can never draw an image (fetched
without a click), a link, a colour, an icon or a formula in the admin's browser.

Every value that is not a literal of the dashboard goes through `plain` before it reaches
st.markdown, st.caption, an alert, a title or a widget label.
"""

from __future__ import annotations

import re

from agent_core.api import printable

# CommonMark lets any ASCII punctuation be backslash-escaped; these are the ones Markdown,
# GitHub's extensions (tables, autolinks, strikethrough) or Streamlit (`:red[...]`,
# `:material/x:`, `$...$`) give a meaning to. Streamlit rewrites ":material/" in the raw
# source before parsing, so the slash is escaped too.
_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=^/])")
_INDENT = re.compile(r"^[ \t]+", re.MULTILINE)


def plain(text: object) -> str:
    """`text` as Markdown that shows exactly its characters (leading indentation, which
    would make a code block, is dropped; what would act instead of showing, a control or
    bidi character, is shown as its escape, as the CLI shows it)."""
    return _SPECIALS.sub(r"\\\1", _INDENT.sub("", printable(str(text))))


def inline_code(text: object) -> str:
    """`text` as a Markdown code span, which shows its characters as they are: fenced by
    more backticks than any run of them inside, so the text cannot close it."""
    value = " ".join(printable(str(text)).splitlines())
    runs = [len(run) for run in re.findall(r"`+", value)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"
