"""Array helpers every stage shares: torch tensors as numpy arrays, numpy arrays and torch
parameters as float64 tensors (the diagnoses recompute layers in float64), and TF32 rounding
(what a GPU's tensor cores see of a float32 operand).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn

__all__ = ["as_float64", "as_numpy", "param_float64", "tf32_round"]


def tf32_round(a: np.ndarray) -> np.ndarray:
    """Round float32 values to TF32 (10-bit mantissa, round to nearest even), as float32.

    TF32 keeps float32's 8-bit exponent and 10 of its 23 mantissa bits: what GPU tensor
    cores see of a float32 matmul or convolution operand when TF32 is on.
    """
    x = np.ascontiguousarray(a, dtype=np.float32)
    bits = x.view(np.uint32).astype(np.uint64)
    bits = (bits + 0x0FFF + ((bits >> 13) & 1)) & 0xFFFFE000
    out = bits.astype(np.uint32).view(np.float32)
    return np.where(np.isfinite(x), out, x)


def as_float64(a: Any) -> torch.Tensor:
    """``a`` (array-like) as a fresh float64 CPU tensor."""
    return torch.from_numpy(np.array(a, dtype=np.float64, copy=True))


def as_numpy(t: torch.Tensor) -> np.ndarray:
    """``t`` as a numpy array (detached, on the CPU; shares memory where torch can)."""
    return t.detach().cpu().numpy()


def param_float64(mod: nn.Module, name: str) -> torch.Tensor | None:
    """Parameter ``name`` of ``mod`` as a detached float64 CPU tensor, or None if it has none."""
    p = getattr(mod, name, None)
    return None if p is None else p.detach().to(torch.float64).cpu()
