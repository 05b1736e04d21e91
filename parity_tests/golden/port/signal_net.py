"""torch's ``SignalNet`` (port_models.py) as a Flax NNX twin, written by ``jaxnets port``.

torch input (N, 2, 12).
Load torch's weights with ``jaxnets.convert.load_state_dict(twin, state_dict)``.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from jaxnets import nn


class SignalNet(nnx.Module):
    """torch's ``SignalNet`` (port_models.py) in Flax NNX."""

    def __init__(self, *, rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None) -> None:
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.conv1 = nn.Conv1d(2, 8, 5, padding=2, **kw)
        self.bn1 = nn.BatchNorm1d(8, **kw)
        self.conv2 = nn.Conv1d(8, 8, 3, dilation=2, **kw)
        self.act = nn.ELU(alpha=0.5)
        self.fc = nn.Linear(8, 3, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Forward pass: (N, 2, 12) -> (N, 3)."""
        x = self.act(self.bn1(self.conv1(x.transpose(0, 2, 1))))  # (N, 12, 8)
        x = jax.nn.elu(self.conv2(x))  # (N, 8, 8)  torch: (N, 8, L - 4)
        # torch: x = x.transpose(1, 2); this array is already in that order, nothing moves
        x = self.fc(x)  # (N, 8, 3)
        return x.sum(axis=1)
