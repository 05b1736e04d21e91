"""Expressions and statements of the generated forward pass, before names are chosen.

An :class:`Expr` is text with slots; a slot holds a :class:`~torchref.port.graph.Value`
(rendered later as a variable name, or as the expression that computed it when that is
folded in) or another expression, with the operator precedence it needs (``x + y`` as the
receiver of ``.reshape`` needs parentheses, as an argument of a call it does not).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torchref.port.capture import Source
from torchref.port.graph import Value

__all__ = ["ADD", "ATOM", "MUL", "POW", "UNARY", "E", "Expr", "Slot", "Stmt", "atom", "call"]

# Python's precedence levels, as far as the generated code needs them.
ADD, MUL, UNARY, POW, ATOM = 11, 12, 13, 14, 100


@dataclass(eq=False)
class Slot:
    item: Expr | Value
    need: int = 0  # the least precedence the item may have here without parentheses


@dataclass(eq=False)
class Expr:
    parts: list[str | Slot]
    prec: int = ATOM

    def values(self) -> list[Value]:
        """Every value this expression reads, once per occurrence."""
        out: list[Value] = []
        for p in self.parts:
            if isinstance(p, Slot):
                out.extend(p.item.values() if isinstance(p.item, Expr) else [p.item])
        return out


def _slot(x: Any) -> str | Slot:
    if isinstance(x, Slot | str):
        return x
    if isinstance(x, Expr | Value):
        return Slot(x)
    raise TypeError(f"not an expression part: {x!r}")


def E(*parts: Any, prec: int = ATOM) -> Expr:  # noqa: N802 - a constructor, read as one
    """An expression from text and slots (an Expr or Value is a slot needing nothing)."""
    return Expr([_slot(p) for p in parts], prec)


def atom(x: Expr | Value) -> Slot:
    """``x`` where only an atom fits (a receiver of ``.method``, an operand of ``**``)."""
    return Slot(x, ATOM)


def call(fn: str, *args: Any, **kwargs: Any) -> Expr:
    """``fn(arg, ..., key=value)``: args are values/expressions or literal text."""
    parts: list[Any] = [f"{fn}("]
    items: list[list[Any]] = [[a] for a in args]
    items += [[f"{k}=", v] for k, v in kwargs.items()]
    for i, item in enumerate(items):
        if i:
            parts.append(", ")
        parts.extend(item)
    parts.append(")")
    return E(*parts)


@dataclass(eq=False)
class Stmt:
    """One line (or loop) of the generated ``__call__``: ``outs = expr``.

    ``expr`` None with ``alias`` set: the outputs are another value under a new layout (no
    code). ``loop``: ``for layer in self.net: x = layer(x)`` (the list's text, its input).
    """

    expr: Expr | None
    outs: list[Value]
    source: Source | None
    hint: str = "h"
    loop: tuple[str, Value] | None = None
    note: str | None = None  # a comment line placed above (why a transpose is there)
    meta: dict[str, Any] = field(default_factory=dict)
