"""``torch.nn.Embedding`` and ``F.embedding``, with ``padding_idx`` and its zero gradient."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

from jaxnets._checks import as_int
from jaxnets.nn._common import Dtype

__all__ = ["Embedding", "embedding"]


def _padding_idx(padding_idx: Any, num_embeddings: int, fn: str) -> int | None:
    """torch's rule: ``-num_embeddings <= padding_idx < num_embeddings``, negative counted from
    the end."""
    if padding_idx is None:
        return None
    p = as_int(padding_idx)
    if p is None or not -num_embeddings <= p < num_embeddings:
        raise ValueError(
            f"{fn}: padding_idx must be an int within num_embeddings={num_embeddings} "
            f"(-{num_embeddings} <= padding_idx < {num_embeddings}), got {padding_idx!r}"
        )
    return p % num_embeddings


def _refuse_max_norm(max_norm: Any, fn: str) -> None:
    if max_norm is not None:
        raise ValueError(
            f"{fn}: max_norm is not supported: torch renormalises the rows it looks up in "
            f"place during the forward pass, which a JAX parameter cannot do; leave it None "
            f"(and renormalise the weight in the update if you need it)"
        )


def embedding(
    input: jax.Array,
    weight: jax.Array,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> jax.Array:
    """``F.embedding``: the rows of ``weight (num_embeddings, embedding_dim)`` at the integer
    indices ``input`` (any shape), giving ``input.shape + (embedding_dim,)``.

    The row at ``padding_idx`` gets no gradient, as in torch. Indices outside
    ``[0, num_embeddings)`` raise an ``IndexError`` when they are concrete (as torch's); inside
    a ``jax.jit`` trace they cannot be checked, and such a lookup gives NaN rows rather than
    a clamped, plausible row. ``scale_grad_by_freq=True`` divides each row's gradient by
    how often its index occurs in ``input``, as torch's. ``max_norm`` is refused (torch
    renormalises the weight in place); ``sparse`` only changes how torch stores the
    gradient, and is ignored.
    """
    del norm_type, sparse
    _refuse_max_norm(max_norm, "embedding")
    w = jnp.asarray(weight)
    if w.ndim != 2:
        raise ValueError(
            f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got shape "
            f"{tuple(w.shape)}"
        )
    idx = jnp.asarray(input)
    if not jnp.issubdtype(idx.dtype, jnp.integer):
        raise TypeError(
            f"embedding: indices must be integers, got dtype {idx.dtype}; cast them, e.g. "
            f"x.astype(jnp.int32)"
        )
    num = w.shape[0]
    if not isinstance(idx, jax.core.Tracer) and idx.size:
        concrete = np.asarray(idx)
        lo, hi = int(concrete.min()), int(concrete.max())
        if lo < 0 or hi >= num:
            raise IndexError(
                f"embedding: index {lo if lo < 0 else hi} is out of range for "
                f"{num} embeddings (indices must be in [0, {num}))"
            )
    p = _padding_idx(padding_idx, num, "embedding")
    if p is not None:  # torch gives the padding row no gradient
        row = (jnp.arange(num) == p)[:, None]
        w = jnp.where(row, lax.stop_gradient(w), w)
    rows = jnp.take(w, idx, axis=0, mode="fill", fill_value=jnp.nan)
    if scale_grad_by_freq:
        # torch divides each looked-up row's gradient by how often its index occurs in the
        # input; the forward value is unchanged (rows + 0)
        counts = jnp.zeros(num, jnp.int32).at[idx.reshape(-1)].add(1, mode="drop")
        scale = (1.0 / jnp.maximum(counts, 1)).astype(rows.dtype)[jnp.clip(idx, 0, num - 1)]
        frozen = lax.stop_gradient(rows)
        rows = frozen + (rows - frozen) * scale[..., None]
    return rows


class Embedding(nnx.Embed):
    """``torch.nn.Embedding(num_embeddings, embedding_dim, padding_idx=None, ...)``: a lookup
    table ``embedding [num_embeddings, embedding_dim]`` (torch's ``weight``, same layout),
    initialised from ``N(0, 1)`` with the ``padding_idx`` row zeroed, as torch's.

    Input: integer indices of any shape; output ``input.shape + (embedding_dim,)``. The
    ``padding_idx`` row gets no gradient, as in torch (the row itself is whatever the
    weights hold). ``scale_grad_by_freq`` as torch's; ``max_norm`` is refused; see
    :func:`embedding` for out-of-range indices.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        *,
        rngs: nnx.Rngs,
        dtype: Dtype | None = None,
        param_dtype: Dtype | None = None,
    ) -> None:
        for name, v in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if as_int(v) is None or v < 0:
                raise ValueError(f"Embedding: {name} must be a non-negative int, got {v!r}")
        _refuse_max_norm(max_norm, "Embedding")
        padding = _padding_idx(padding_idx, num_embeddings, "Embedding")
        param_dtype = jnp.float32 if param_dtype is None else param_dtype
        super().__init__(
            num_embeddings,
            embedding_dim,
            dtype=dtype,
            param_dtype=param_dtype,
            embedding_init=jax.nn.initializers.normal(stddev=1.0),
            rngs=rngs,
        )
        if padding is not None:
            self.embedding[...] = self.embedding[...].at[padding].set(0)
        self.padding_idx = padding
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.sparse = sparse

    def __call__(self, inputs: jax.Array, *, out_sharding: Any = None) -> jax.Array:  # type: ignore[override]
        """``embedding(inputs, weight, padding_idx)``: ``inputs.shape + (embedding_dim,)``."""
        del out_sharding
        y = embedding(
            inputs, self.embedding[...], self.padding_idx,
            scale_grad_by_freq=self.scale_grad_by_freq,
        )  # fmt: skip
        return y if self.dtype is None else y.astype(self.dtype)
