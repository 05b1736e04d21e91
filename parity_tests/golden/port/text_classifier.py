"""torch's ``TextClassifier`` (port_models.py) as a Flax NNX twin, written by ``jaxnets port``.

torch input (N, 7).
Load torch's weights with ``jaxnets.convert.load_state_dict(twin, state_dict)``.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxnets import nn


class TextClassifier(nnx.Module):
    """torch's ``TextClassifier`` (port_models.py) in Flax NNX."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.embedding = nn.Embedding(50, 16, padding_idx=0, **kw)
        self.norm = nn.LayerNorm(16, **kw)
        self.fc1 = nn.Linear(16, 32, **kw)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(32, 4, **kw)
        self.log_softmax = nn.LogSoftmax(dim=1)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        """Forward pass: (N, 7) -> (N, 4)."""
        x = self.embedding(tokens)  # (N, 7, 16)  (N, L, dim)
        x = x.mean(axis=1)  # (N, 16)
        x = self.act(self.fc1(self.norm(x)))  # (N, 32)
        return self.log_softmax(self.fc2(x))
