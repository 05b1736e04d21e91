"""Activations with torch's names, arguments and formulas, as functions and as modules.

The functions mirror ``torch.nn.functional`` (``relu(input)``, ``leaky_relu(input,
negative_slope)``, ``gelu(input, approximate='none')``, ``softmax(input, dim)``...) and the
modules mirror ``torch.nn`` (``ReLU()``, ``GELU(approximate='tanh')``, ``Softmax(dim=1)``...).
Where JAX's own function differs from torch's these follow torch:

* ``gelu``: torch's default is the exact (erf) form, ``jax.nn.gelu``'s the tanh approximation.
* ``leaky_relu``: torch's gradient at exactly 0 is ``negative_slope`` (``x > 0`` selects the
  identity), ``jax.nn.leaky_relu``'s is 1.
* ``softmax``/``log_softmax``: ``dim`` is torch's (applied to the array as given) and
  ``dim=None`` picks torch's legacy implicit dimension, with torch's warning.

``inplace=`` is accepted for torch's signatures; JAX arrays are immutable, so the result is
the same either way.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxnets.nn._common import check_dim, check_real

__all__ = [
    "ACTIVATIONS",
    "ELU",
    "GELU",
    "LeakyReLU",
    "LogSoftmax",
    "ReLU",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "elu",
    "gelu",
    "get_activation",
    "leaky_relu",
    "log_softmax",
    "relu",
    "sigmoid",
    "silu",
    "softmax",
    "tanh",
]

# ---------------------------------------------------------------------------- functions


def relu(input: jax.Array, inplace: bool = False) -> jax.Array:
    """``F.relu``: ``max(x, 0)``, any shape; gradient 0 at 0, as torch's."""
    del inplace
    return jax.nn.relu(input)


def leaky_relu(
    input: jax.Array,
    negative_slope: float = 0.01,
    inplace: bool = False,
) -> jax.Array:
    """``F.leaky_relu``: ``x`` where ``x > 0``, else ``negative_slope * x``; any shape.

    The gradient at exactly 0 is ``negative_slope``, as torch's (``jax.nn.leaky_relu``'s is 1).
    """
    del inplace
    slope = check_real(negative_slope, "negative_slope", "leaky_relu")
    x = jnp.asarray(input)
    return jnp.where(x > 0, x, x * jnp.asarray(slope, x.dtype))


def elu(input: jax.Array, alpha: float = 1.0, inplace: bool = False) -> jax.Array:
    """``F.elu``: ``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``; any shape."""
    del inplace
    a = check_real(alpha, "alpha", "elu")
    return jax.nn.elu(jnp.asarray(input), alpha=a)


def _check_approximate(approximate: Any, fn: str) -> bool:
    if approximate not in ("none", "tanh"):
        raise ValueError(
            f"{fn}: approximate must be 'none' (the exact erf form, torch's default) or 'tanh', "
            f"got {approximate!r}"
        )
    return approximate == "tanh"


def gelu(input: jax.Array, approximate: str = "none") -> jax.Array:
    """``F.gelu``: ``x * Phi(x)`` exactly (``approximate='none'``, torch's default), or its tanh
    approximation (``'tanh'``). ``jax.nn.gelu`` defaults to the approximation; this does not."""
    tanh_form = _check_approximate(approximate, "gelu")
    return jax.nn.gelu(jnp.asarray(input), approximate=tanh_form)


def silu(input: jax.Array, inplace: bool = False) -> jax.Array:
    """``F.silu``: ``x * sigmoid(x)``; any shape."""
    del inplace
    return jax.nn.silu(input)


def tanh(input: jax.Array) -> jax.Array:
    """``F.tanh``; any shape."""
    return jnp.tanh(input)


def sigmoid(input: jax.Array) -> jax.Array:
    """``F.sigmoid``: ``1 / (1 + exp(-x))``; any shape."""
    return jax.nn.sigmoid(input)


def _softmax_dim(dim: int | None, ndim: int, fn: str) -> int:
    """torch's ``_get_softmax_dim``: ``dim=None`` is 0 for 0-, 1- and 3-d input, else 1, with
    torch's deprecation warning."""
    if dim is None:
        warnings.warn(
            f"Implicit dimension choice for {fn} has been deprecated. Change the call to "
            f"include dim=X as an argument.",
            UserWarning,
            stacklevel=3,
        )
        dim = 0 if ndim in (0, 1, 3) else 1
    return check_dim(dim, ndim, fn)


def _softmax_like(
    f: Callable[..., jax.Array], input: jax.Array, dim: int | None, dtype: Any, fn: str
) -> jax.Array:
    x = jnp.asarray(input)
    axis = _softmax_dim(dim, x.ndim, fn)
    if dtype is not None:  # torch casts before the operation
        x = x.astype(dtype)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{fn}: expects floating-point input, got dtype {x.dtype}")
    if x.ndim == 0:
        return f(x.reshape(1), axis=0).reshape(())
    return f(x, axis=axis)


def softmax(
    input: jax.Array,
    dim: int | None = None,
    _stacklevel: int = 3,
    dtype: Any = None,
) -> jax.Array:
    """``F.softmax(input, dim)``: ``exp(x) / sum(exp(x))`` along torch's ``dim`` of the array
    as given; ``dtype`` casts the input first, as torch."""
    del _stacklevel
    return _softmax_like(jax.nn.softmax, input, dim, dtype, "softmax")


def log_softmax(
    input: jax.Array,
    dim: int | None = None,
    _stacklevel: int = 3,
    dtype: Any = None,
) -> jax.Array:
    """``F.log_softmax(input, dim)``: ``x - logsumexp(x)`` along torch's ``dim`` of the array
    as given; ``dtype`` casts the input first, as torch."""
    del _stacklevel
    return _softmax_like(jax.nn.log_softmax, input, dim, dtype, "log_softmax")


# ------------------------------------------------------------------------------ modules


class ReLU(nnx.Module):
    """``torch.nn.ReLU``: :func:`relu` on any shape."""

    def __init__(self, inplace: bool = False) -> None:
        self.inplace = inplace

    def __call__(self, input: jax.Array) -> jax.Array:
        """``relu(input)``; same shape."""
        return relu(input)


class LeakyReLU(nnx.Module):
    """``torch.nn.LeakyReLU(negative_slope=0.01)``: :func:`leaky_relu` on any shape."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        self.negative_slope = check_real(negative_slope, "negative_slope", "LeakyReLU")
        self.inplace = inplace

    def __call__(self, input: jax.Array) -> jax.Array:
        """``leaky_relu(input, negative_slope)``; same shape."""
        return leaky_relu(input, self.negative_slope)


class ELU(nnx.Module):
    """``torch.nn.ELU(alpha=1.0)``: :func:`elu` on any shape."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        self.alpha = check_real(alpha, "alpha", "ELU")
        self.inplace = inplace

    def __call__(self, input: jax.Array) -> jax.Array:
        """``elu(input, alpha)``; same shape."""
        return elu(input, self.alpha)


class GELU(nnx.Module):
    """``torch.nn.GELU(approximate='none')``: :func:`gelu`, exact by default (as torch; not
    ``jax.nn.gelu``'s tanh default)."""

    def __init__(self, approximate: str = "none") -> None:
        _check_approximate(approximate, "GELU")
        self.approximate = approximate

    def __call__(self, input: jax.Array) -> jax.Array:
        """``gelu(input, approximate)``; same shape."""
        return gelu(input, self.approximate)


class SiLU(nnx.Module):
    """``torch.nn.SiLU``: :func:`silu` on any shape."""

    def __init__(self, inplace: bool = False) -> None:
        self.inplace = inplace

    def __call__(self, input: jax.Array) -> jax.Array:
        """``silu(input)``; same shape."""
        return silu(input)


class Tanh(nnx.Module):
    """``torch.nn.Tanh``: :func:`tanh` on any shape."""

    def __call__(self, input: jax.Array) -> jax.Array:
        """``tanh(input)``; same shape."""
        return tanh(input)


class Sigmoid(nnx.Module):
    """``torch.nn.Sigmoid``: :func:`sigmoid` on any shape."""

    def __call__(self, input: jax.Array) -> jax.Array:
        """``sigmoid(input)``; same shape."""
        return sigmoid(input)


class Softmax(nnx.Module):
    """``torch.nn.Softmax(dim)``: :func:`softmax` along torch's ``dim`` of the array as given
    (a port that moves channels last rewrites the dim itself)."""

    def __init__(self, dim: int | None = None) -> None:
        self.dim = dim

    def __call__(self, input: jax.Array) -> jax.Array:
        """``softmax(input, dim)``; same shape."""
        return softmax(input, self.dim)


class LogSoftmax(nnx.Module):
    """``torch.nn.LogSoftmax(dim)``: :func:`log_softmax` along torch's ``dim`` of the array as
    given."""

    def __init__(self, dim: int | None = None) -> None:
        self.dim = dim

    def __call__(self, input: jax.Array) -> jax.Array:
        """``log_softmax(input, dim)``; same shape."""
        return log_softmax(input, self.dim)


# ------------------------------------------------------- activations by configuration name

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
