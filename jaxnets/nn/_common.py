"""Checks and small helpers shared by the torch-semantics layers and their fast forms."""

from __future__ import annotations

from typing import Any

import jax
from jax import lax

Dtype = Any

# how a channel check says that 4-D input is in torch's layout, not Flax's
NCHW_HINT = "it looks like torch's NCHW layout: transpose it with x.transpose(0, 2, 3, 1)"


def is_nhwc_hwio(dimension_numbers: Any, lhs: jax.Array, rhs: jax.Array) -> bool:
    """Whether a convolution's ``dimension_numbers`` are NHWC input, HWIO kernel."""
    if dimension_numbers is None or lhs.ndim != 4 or rhs.ndim != 4:
        return False
    nhwc = lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC"))
    given = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    return given == nhwc


def check_conv_channels(lhs: jax.Array, rhs: jax.Array, groups: int, fn: str) -> None:
    """``ValueError`` unless NHWC ``lhs`` has the channels HWIO ``rhs`` (with ``groups``)
    expects; says when the input looks like torch's NCHW layout."""
    c, want = lhs.shape[3], rhs.shape[2] * groups
    if c == want:
        return
    nchw = lhs.shape[1] == want
    raise ValueError(
        f"{fn}: the input {tuple(lhs.shape)} has {c} channels (last axis, NHWC), the "
        f"convolution takes {want}"
        + (f"; {NCHW_HINT}" if nchw else f"; give it NHWC input with {want} channels")
    )


def check_pool_size(k: Any, fn: str) -> None:
    """``ValueError`` unless the pooling size ``k`` is a positive int."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(
            f"{fn}: kernel_size must be a positive int (the pooling window and stride), got {k!r}"
        )


def pair(v: Any) -> tuple[int, int] | None:
    """``v`` as a pair of ints (an int is both; None is ``(1, 1)``), or None if it is neither."""
    if v is None:
        return (1, 1)
    if isinstance(v, int):
        return (v, v)
    try:
        a, b = v
    except (TypeError, ValueError):
        return None
    return (a, b) if isinstance(a, int) and isinstance(b, int) else None
