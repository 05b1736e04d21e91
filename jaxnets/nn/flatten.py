"""``torch.flatten`` and ``torch.nn.Flatten``, with torch's dims applied to the array as given."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from jaxnets.nn._common import check_dim

__all__ = ["Flatten", "flatten"]


def flatten(input: jax.Array, start_dim: int = 0, end_dim: int = -1) -> jax.Array:
    """``torch.flatten(input, start_dim=0, end_dim=-1)``: axes ``start_dim..end_dim`` merged
    into one (a 0-d array becomes shape ``(1,)``). The dims are torch's, applied to the array
    as given: flatten an NHWC image in torch's order by moving its channels first."""
    x = jnp.asarray(input)
    s = check_dim(start_dim, x.ndim, "flatten")
    e = check_dim(end_dim, x.ndim, "flatten")
    if x.ndim == 0:
        return x.reshape(1)
    if s > e:
        raise ValueError(
            f"flatten: start_dim {start_dim} cannot come after end_dim {end_dim} (for an array "
            f"of {x.ndim} dimensions)"
        )
    return x.reshape((*x.shape[:s], math.prod(x.shape[s : e + 1]), *x.shape[e + 1 :]))


class Flatten(nnx.Module):
    """``torch.nn.Flatten(start_dim=1, end_dim=-1)``: :func:`flatten` with torch's default
    ``start_dim=1`` (the batch axis kept)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        self.start_dim = start_dim
        self.end_dim = end_dim

    def __call__(self, input: jax.Array) -> jax.Array:
        """``flatten(input, start_dim, end_dim)``."""
        return flatten(input, self.start_dim, self.end_dim)
