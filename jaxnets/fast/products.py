"""Faster forms of a Linear layer's matrix product (XLA:CPU), and the names they carry."""

from __future__ import annotations

import math
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax import lax

from jaxnets.fast._switch import enabled, register_product

__all__ = ["ELEMENTWISE_DOT_MAX", "dot_elementwise", "linear_dot_general"]


# XLA:CPU runs every matrix product that is not fused into a YNNPACK call as a step of its
# own, at a fixed cost, and cannot fuse it with the bias add, the activation or the
# optimizer update around it. A product this small is cheaper as a broadcast multiply and a
# sum, which XLA fuses with its neighbours. Larger ones lose: XLA:CPU hands bigger sums to
# YNNPACK, which is slow for them, and from a few thousand multiply-adds a blocked matrix
# product wins anyway. The threshold stays below every case measured to lose
# (docs/investigation.md, "Small products elementwise").
ELEMENTWISE_DOT_MAX = 1024
"""The most multiply-adds (``batch * in * out``) a ``Linear(impl='auto')`` computes
elementwise on CPU."""


def _is_linear_product(
    lhs: jax.Array,
    rhs: jax.Array,
    dimension_numbers: Any,
    preferred_element_type: Any,
    out_sharding: Any,
) -> bool:
    """``lhs (..., K) @ rhs (K, O)`` in float32/float64 with nothing else asked: the product
    ``nnx.Linear`` computes, which :func:`dot_elementwise` can take."""
    dtype = jnp.result_type(lhs)
    return (
        rhs.ndim == 2
        and lhs.ndim >= 1
        and _dims_tuple(dimension_numbers) == (((lhs.ndim - 1,), (0,)), ((), ()))
        and jnp.result_type(rhs) == dtype
        and dtype in (jnp.float32, jnp.float64)
        and (preferred_element_type is None or jnp.dtype(preferred_element_type) == dtype)
        and out_sharding is None
    )


def _dims_tuple(dimension_numbers: Any) -> Any:
    try:
        return tuple(tuple(tuple(int(d) for d in ds) for ds in pair) for pair in dimension_numbers)
    except TypeError:
        return None


# Its own jit only to carry a name, which register_product records, so that FLOP accounting
# can ask this package what the product is (XLA inlines the call).
@jax.jit
def _elementwise_dot(lhs: jax.Array, rhs: jax.Array) -> jax.Array:
    return jnp.sum(lhs[..., :, None] * rhs, axis=-2)


register_product("_elementwise_dot", kind="elementwise")


def _linear_dot(
    lhs: jax.Array,
    rhs: jax.Array,
    dimension_numbers: Any,
    precision: Any,
    preferred_element_type: Any,
    out_sharding: Any,
    max_products: float,
) -> jax.Array:
    """:func:`_elementwise_dot` for Linear's product of at most ``max_products``
    multiply-adds, ``lax.dot_general`` for anything else."""
    if (
        _is_linear_product(lhs, rhs, dimension_numbers, preferred_element_type, out_sharding)
        and lhs.size * rhs.shape[1] <= max_products
    ):
        return _elementwise_dot(lhs, rhs)
    return lax.dot_general(
        lhs,
        rhs,
        dimension_numbers,
        precision=precision,
        preferred_element_type=preferred_element_type,
        out_sharding=out_sharding,
    )


def dot_elementwise(
    lhs: jax.Array,
    rhs: jax.Array,
    dimension_numbers: Any,
    precision: Any = None,
    preferred_element_type: Any = None,
    out_sharding: Any = None,
) -> jax.Array:
    """``lax.dot_general`` for a Linear layer's product as a broadcast multiply and a sum.

    ``lhs (..., K)`` and ``rhs (K, O)`` (contracting ``lhs``'s last axis with ``rhs``'s
    first) give ``(..., O)``: ``sum(lhs[..., :, None] * rhs, axis=-2)``, the same products
    as the matrix product, summed over ``K`` in a different order. Its gradients are
    multiplies and sums too. Fast only for tiny products (see :data:`ELEMENTWISE_DOT_MAX`).
    Any other contraction, dtype or option goes to ``lax.dot_general`` unchanged. Same
    signature, so it can be passed as ``nnx.Linear(dot_general=...)``.
    """
    return _linear_dot(
        lhs, rhs, dimension_numbers, precision, preferred_element_type, out_sharding, math.inf
    )


def _dot_auto(
    lhs: jax.Array,
    rhs: jax.Array,
    dimension_numbers: Any,
    precision: Any = None,
    preferred_element_type: Any = None,
    out_sharding: Any = None,
) -> jax.Array:
    """:func:`dot_elementwise` on CPU for at most :data:`ELEMENTWISE_DOT_MAX` multiply-adds,
    ``lax.dot_general`` otherwise."""
    limit = ELEMENTWISE_DOT_MAX if enabled() and jax.default_backend() == "cpu" else -1
    return _linear_dot(
        lhs, rhs, dimension_numbers, precision, preferred_element_type, out_sharding, limit
    )


ConvImpl = Literal["auto", "im2col", "xla"]


def linear_dot_general(impl: Literal["auto", "dot", "elementwise"]) -> Any:
    """The ``dot_general`` an ``nnx.Linear`` built by :func:`jaxnets.nn.Linear` computes with:
    ``'dot'`` is ``lax.dot_general``, ``'elementwise'`` :func:`dot_elementwise`, ``'auto'``
    :func:`dot_elementwise` for a product of at most :data:`ELEMENTWISE_DOT_MAX`
    multiply-adds on the CPU while this package is enabled, ``lax.dot_general`` otherwise.
    The size is the one the layer is traced with: under ``jax.vmap`` that is one example's,
    so a vmapped call over many examples can end up elementwise where the matmul is faster;
    pass ``impl='dot'`` there."""
    return {"auto": _dot_auto, "dot": lax.dot_general, "elementwise": dot_elementwise}[impl]
