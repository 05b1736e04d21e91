"""The one switch of :mod:`jaxnets.fast`, and the names of the products it jits."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar("jaxnets_fast", default=True)


def enabled() -> bool:
    """Whether the fast forms are used for layers with ``impl='auto'`` and for
    :func:`jaxnets.fast.conv2d_max_pool2d` (``True`` unless inside :func:`disabled`)."""
    return _ENABLED.get()


@contextmanager
def disabled() -> Iterator[None]:
    """Within the block, every layer computes its plain form (``lax.dot_general``,
    ``lax.conv_general_dilated``, pooling after the convolution). The choice is made when a
    function is traced: call (or trace) the model inside the block; a function ``jax.jit``
    already compiled keeps the form it was traced with."""
    token = _ENABLED.set(False)
    try:
        yield
    finally:
        _ENABLED.reset(token)


@dataclass(frozen=True)
class ProductInfo:
    """What a product jitted by :mod:`jaxnets.fast` computes, for FLOP accounting.

    ``kind``: ``'elementwise'`` (a Linear product as a broadcast multiply and a sum: count
    its multiplies) or ``'scaled'`` (a matrix product that computes ``1 / scale`` times the
    model's multiply-adds: count its ``dot_general``s times ``scale``)."""

    kind: str
    scale: float = 1.0


_PRODUCTS: dict[str, ProductInfo] = {}


def register_product(name: str, *, kind: str, scale: float = 1.0) -> None:
    """Record that the function jitted under ``name`` is a product of ``kind``."""
    _PRODUCTS[name] = ProductInfo(kind, scale)


def product_info(jit_name: str) -> ProductInfo | None:
    """The product behind a jitted call's name as a jaxpr shows it (``name`` of a ``jit``
    equation; JAX names its derivatives ``jvp(name)``, ``transpose(jvp(name))``), or None
    when the call is not one of this package's products."""
    base = jit_name
    while base.endswith(")") and "(" in base:
        base = base[base.index("(") + 1 : -1]
    return _PRODUCTS.get(base)
