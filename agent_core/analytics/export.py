"""Tables as files people open in a spreadsheet."""

from __future__ import annotations

from typing import Any

import pandas as pd

# A cell a spreadsheet would read as a formula (or as the start of one, once it trims a tab
# or a line break). Tool names and other text an LLM wrote reach the tables: such a cell is
# written with a leading apostrophe, which spreadsheets show as text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def _as_text_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(frame: pd.DataFrame) -> str:
    """The table as CSV, every column, numbers as they are; text that a spreadsheet would
    run as a formula is kept as text."""
    return frame.map(_as_text_cell).to_csv(index=False)
