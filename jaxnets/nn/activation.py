"""Activation functions by the names the tutorials' configurations use."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = ["ACTIVATIONS", "get_activation"]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
}


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """Return the activation function called ``name`` (``'relu'``, ``'sigmoid'``, ``'tanh'``)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}"
        ) from None
