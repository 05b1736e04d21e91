"""Plain-text, JSON and CSV rendering of result rows (lists of flat dicts). No torch."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any, Literal

__all__ = ["Column", "render"]

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
    widths = [
        max(len(c.header), *(len(row[i]) for row in cells)) if cells else len(c.header)
        for i, c in enumerate(columns)
    ]
    head = "  ".join(
        f"{c.header:{'<' if c.align == '<' else '>'}{w}}"
        for c, w in zip(columns, widths, strict=True)
    )
    lines = [head, "-" * len(head)]
    for row in cells:
        lines.append(
            "  ".join(
                f"{v:{'<' if c.align == '<' else '>'}{w}}"
                for v, c, w in zip(row, columns, widths, strict=True)
            )
        )
    return "\n".join(lines)
