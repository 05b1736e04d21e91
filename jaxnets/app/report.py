"""The one table renderer of the application: aligned plain text (:func:`text_table`), and
result rows (lists of flat dicts) as text, JSON or CSV (:func:`render`). No torch, no jax."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any, Literal

__all__ = ["Column", "render", "text_table"]

Format = Literal["table", "json", "csv"]


class Column:
    """A table column: a row key, a header and how to print a value."""

    def __init__(self, key: str, header: str, fmt: str = "{}", align: str = ">") -> None:
        self.key, self.header, self.fmt, self.align = key, header, fmt, align

    def cell(self, row: dict[str, Any]) -> str:
        """The printed value of this column in ``row`` ('-' for a missing value)."""
        value = row.get(self.key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return self.fmt.format(value)


def render(rows: Sequence[dict[str, Any]], columns: Sequence[Column], fmt: Format) -> str:
    """Render ``rows`` as an aligned text table, a JSON array, or CSV (all keys of the rows)."""
    if fmt == "json":
        return json.dumps(list(rows), indent=2, default=float)
    if fmt == "csv":
        buf = io.StringIO()
        keys = list(dict.fromkeys(k for r in rows for k in r))
        writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue().rstrip("\n")
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}; choose table, json or csv")
    cells = [[c.cell(r) for c in columns] for r in rows]
    return text_table([c.header for c in columns], cells, "".join(c.align for c in columns))


def text_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], align: str, *, rule: bool = True
) -> str:
    """Rows of cells as aligned text: ``align`` holds one ``'<'`` or ``'>'`` per column,
    columns are two spaces apart, and with ``rule`` a line of dashes under the headers."""
    widths = [
        max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
        for i, h in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(f"{v:{a}{w}}" for v, a, w in zip(cells, align, widths, strict=True))

    head = line(headers)
    return "\n".join([head, *(["-" * len(head)] if rule else []), *map(line, rows)])
