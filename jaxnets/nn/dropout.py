"""``torch.nn.Dropout``/``Dropout2d`` and ``F.dropout``/``F.dropout2d`` on channels-last input.

Train and eval as in nnx: ``model.train()`` drops (torch's training mode, the default of a
new module, as in torch), ``model.eval()`` returns the input unchanged. The random numbers
come from an ``nnx.Rngs`` (its ``dropout`` stream) given to the module, or a key given to the
function; the masks cannot equal torch's, so parity checks compare the other properties:
every output is 0 or ``x / (1 - p)``, whole channels at once for ``Dropout2d``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxnets.nn._common import check_real

__all__ = ["Dropout", "Dropout2d", "dropout", "dropout2d"]

Key = jax.Array | nnx.Rngs | nnx.RngStream


def _check_p(p: Any, fn: str) -> float:
    p = check_real(p, "p", fn)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{fn}: dropout probability has to be between 0 and 1, but got {p}")
    return p


def _key(rngs: Key | None, fn: str) -> jax.Array:
    if isinstance(rngs, nnx.Rngs):
        return rngs.dropout()
    if isinstance(rngs, nnx.RngStream):
        return rngs()
    if rngs is None:
        raise ValueError(
            f"{fn} in training mode needs random numbers: pass rngs=nnx.Rngs(dropout=0) (a "
            f"module takes it when built) or a jax.random key, or turn it off (training=False, "
            f"model.eval())"
        )
    return rngs


def _drop(x: jax.Array, p: float, mask_shape: tuple[int, ...], rngs: Key | None, fn: str) -> Any:
    if p == 1.0:  # torch: input * 0
        return x * jnp.zeros((), x.dtype)
    keep = jax.random.bernoulli(_key(rngs, fn), 1.0 - p, mask_shape)
    return x * keep.astype(x.dtype) * jnp.asarray(1.0 / (1.0 - p), x.dtype)


def dropout(
    input: jax.Array,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    *,
    rngs: Key | None = None,
) -> jax.Array:
    """``F.dropout``: in training, each element is zeroed with probability ``p`` and the
    others scaled by ``1 / (1 - p)``; ``training=False`` or ``p=0`` returns the input. Any
    shape. ``rngs``: an ``nnx.Rngs`` (its ``dropout`` stream) or a key, needed in training.
    ``inplace`` is accepted for torch's signature (the result is the same)."""
    del inplace
    p = _check_p(p, "dropout")
    x = jnp.asarray(input)
    if not training or p == 0.0:
        return x
    return _drop(x, p, x.shape, rngs, "dropout")


def dropout2d(
    input: jax.Array,
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
    *,
    rngs: Key | None = None,
) -> jax.Array:
    """``F.dropout2d`` on channels-last input: whole channels are zeroed with probability
    ``p`` (the others scaled by ``1 / (1 - p)``), one draw per sample and channel.

    ``(N, H, W, C)`` drops ``(n, :, :, c)`` planes. 3-D input is ``(N, L, C)``, torch's
    current reading of a 3-D input (``(N, C, L)``, channel-wise 1-D dropout), which drops
    ``(n, :, c)``. Other ranks are refused (torch warns they will be); use :func:`dropout`.
    """
    del inplace
    p = _check_p(p, "dropout2d")
    x = jnp.asarray(input)
    if x.ndim not in (3, 4):
        raise ValueError(
            f"dropout2d: expects (N, H, W, C) or (N, L, C) input (channels last), got shape "
            f"{tuple(x.shape)}; for elementwise dropout use dropout"
        )
    if not training or p == 0.0:
        return x
    mask_shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
    return _drop(x, p, mask_shape, rngs, "dropout2d")


class Dropout(nnx.Dropout):
    """``torch.nn.Dropout(p=0.5)``: :func:`dropout` in training mode (``model.train()``, the
    default), the identity after ``model.eval()``. Build it with ``rngs=nnx.Rngs(...)`` (its
    ``dropout`` stream draws the masks) or pass ``rngs=`` when calling."""

    _fn = staticmethod(dropout)

    def __init__(self, p: float = 0.5, inplace: bool = False, *, rngs: nnx.Rngs | None = None):
        p = _check_p(p, type(self).__name__)
        super().__init__(p, rngs=rngs)
        self.p = p
        self.inplace = inplace

    def __call__(  # type: ignore[override]
        self,
        inputs: jax.Array,
        *,
        deterministic: bool | None = None,
        rngs: Key | None = None,
    ) -> jax.Array:
        """Same shape out; ``deterministic=True`` (or ``model.eval()``) returns the input."""
        deterministic = self.deterministic if deterministic is None else deterministic
        if deterministic or self.p == 0.0:
            return type(self)._fn(inputs, self.p, training=False)
        stream = rngs if rngs is not None else self.rngs
        return type(self)._fn(inputs, self.p, training=True, rngs=stream)


class Dropout2d(Dropout):
    """``torch.nn.Dropout2d(p=0.5)``: :func:`dropout2d` (whole channels of ``(N, H, W, C)``
    input) in training mode, the identity after ``model.eval()``."""

    _fn = staticmethod(dropout2d)
