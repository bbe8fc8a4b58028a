"""Driving the dashboard's real pages with Streamlit's AppTest, on a real store.

`Dashboard.open(page, **query)` runs app.py (navigation, access gate, sidebar) and the page,
as a browser session would; `text(at)` is everything the page shows, to assert on what an
admin reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from streamlit import config
from streamlit.runtime.secrets import secrets_singleton
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block, Error, Node, Widget

APP = Path(__file__).resolve().parent.parent / "app.py"
TIMEOUT_S = 30
UNESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")  # CommonMark: any ASCII punctuation


@dataclass
class Dashboard:
    database_url: str

    def open(self, page: str | None = None, **query: str) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
        if page is not None:
            at.switch_page(f"pages/{page}.py")
        for key, value in query.items():
            at.query_params[key] = value
        return at.run()


def reset_streamlit() -> None:
    """AppTest shares Streamlit's caches, and the secrets it has read (an `[auth]` section,
    say), across instances in one process."""
    st.cache_resource.clear()
    st.cache_data.clear()
    secrets_singleton._reset()


def serve_on(address: str | None) -> None:
    config.set_option("server.address", address)


def text(at: AppTest) -> str:
    """Every piece of text the page shows (markdown, captions, alerts, titles...), as an
    admin reads it: the backslash escapes that keep stored text literal are removed."""
    return visible(raw_text(at))


def visible(markdown: str) -> str:
    """Markdown as it reads once its backslash escapes are removed."""
    return UNESCAPE.sub(r"\1", markdown)


def raw_text(at: AppTest) -> str:
    """Every piece of text the page shows, exactly as Streamlit receives it (Markdown)."""
    parts: list[str] = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "caption",
        "success",
        "info",
        "warning",
        "error",
        "code",
        "metric",
    ):
        for element in getattr(at, kind):
            value = getattr(element, "value", None)
            if kind == "metric":
                value = f"{element.label}: {element.value}"
            parts.append(str(value))
    return "\n".join(parts)


def no_traceback(at: AppTest) -> None:
    assert not at.exception, [item.value for item in at.exception]
    assert "Traceback" not in text(at)


def labels(elements: Iterable[object]) -> list[str]:
    return [str(getattr(element, "label", "")) for element in elements]


def beside(at: AppTest, key: str) -> list[str]:
    """The errors shown right under the widget with `key`, before the next widget: what an
    admin reads beside that field, in the order the page shows them."""
    nodes = list(_in_order(at.main))
    start = next(i for i, node in enumerate(nodes) if getattr(node, "key", None) == key)
    found: list[str] = []
    for node in nodes[start + 1 :]:
        if isinstance(node, Widget):
            break
        if isinstance(node, Error):
            found.append(visible(str(node.value)))
    return found


def errors(at: AppTest) -> list[str]:
    """Every error the page shows, as an admin reads it."""
    return [visible(str(error.value)) for error in at.error]


def _in_order(node: Node) -> Iterable[Node]:
    """The node and everything inside it, in the order the page shows them."""
    yield node
    if isinstance(node, Block):
        for index in sorted(node.children):
            yield from _in_order(node.children[index])
