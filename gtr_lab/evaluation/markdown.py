"""Markdown for the results pages (`gtr report`, `gtr eval`, `gtr bench`): one way to write a table and a cell."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table: the head row, the rule, a row per entry (cells as given), ending in a newline."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def number(value: float | None, template: str) -> str:
    """A table cell: `value` formatted with `template`, or "n/a" when it is missing or not a number."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return template.format(value)
