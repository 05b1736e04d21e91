"""Checks and small helpers shared by the torch-semantics layers and their fast forms."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxnets._checks import as_int, is_real

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


def ntuple(value: Any, n: int, name: str, fn: str) -> tuple[int, ...]:
    """torch's ``_single``/``_pair``: an int is ``n`` copies, a sequence of ``n`` ints is kept,
    and a sequence of one int stands for all ``n`` (torch accepts ``stride=(2,)`` for a 2-D
    convolution). Anything else is a ``ValueError`` naming ``fn``'s argument ``name``."""
    v = as_int(value)
    if v is not None:
        return (v,) * n
    if isinstance(value, str) or not hasattr(value, "__len__"):
        raise ValueError(f"{fn}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    items = [as_int(a) for a in value]
    if len(items) == 1:
        items = items * n
    if len(items) != n or any(a is None for a in items):
        raise ValueError(f"{fn}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    return tuple(items)  # type: ignore[arg-type]


def check_positive(values: tuple[int, ...], name: str, fn: str) -> None:
    """``ValueError`` unless every entry of ``values`` (``fn``'s ``name``) is at least 1."""
    if any(v < 1 for v in values):
        raise ValueError(
            f"{fn}: {name} must be positive (as in torch), got {values}; give values of 1 or more"
        )


def check_non_negative(values: tuple[int, ...], name: str, fn: str) -> None:
    """``ValueError`` unless every entry of ``values`` (``fn``'s ``name``) is at least 0."""
    if any(v < 0 for v in values):
        raise ValueError(
            f"{fn}: {name} must be non-negative (as in torch), got {values}; give 0 or more"
        )


def check_real(value: Any, name: str, fn: str) -> float:
    """``value`` as a float; ``TypeError`` naming ``fn``'s ``name`` unless it is a real number."""
    if not is_real(value):
        raise TypeError(f"{fn}: {name} must be a real number, got {value!r}")
    return float(value)


def check_dim(dim: Any, ndim: int, fn: str) -> int:
    """torch's dimension wrapping: ``dim`` in ``[-ndim, ndim)`` (``[-1, 0]`` for a 0-d array)
    as a non-negative axis; ``ValueError`` otherwise."""
    d = as_int(dim)
    lo, hi = -max(ndim, 1), max(ndim, 1) - 1
    if d is None or not lo <= d <= hi:
        raise ValueError(
            f"{fn}: dim {dim!r} is out of range for an array of {ndim} dimension(s) "
            f"(expected an int in [{lo}, {hi}], as torch)"
        )
    return d % max(ndim, 1)


def check_floating(x: Any, fn: str) -> jax.Array:
    """``x`` as a jax array; ``TypeError`` unless it is floating point (torch's layers compute
    in floating point and refuse integer input)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{fn}: expects floating-point input, got dtype {x.dtype}; cast it, e.g. "
            f"x.astype(jnp.float32)"
        )
    return x
