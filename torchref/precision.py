"""The one place that pins float32 matmul and convolution precision, for both frameworks.

On GPU, JAX's default float32 matmul/conv precision is TF32-class and torch's cuDNN
convolutions default to TF32: parity in float32 needs both pinned to true float32.
On CPU both settings compute true float32 either way.
"""

from __future__ import annotations

from typing import Literal

import jax

__all__ = ["Precision", "pin_full_precision", "set_precision"]

Precision = Literal["highest", "default"]


def set_precision(precision: Precision = "highest", *, torch_too: bool = True) -> None:
    """Pin float32 products: ``'highest'`` is true float32 on both sides (JAX matmuls at
    ``'highest'``, torch's TF32 off for matmuls and cuDNN convolutions), as the parity suite
    runs; ``'default'`` restores each framework's default (JAX may use TF32 on Ampere+ GPUs
    and bfloat16 passes on TPU, about 1e-3 relative; torch keeps matmul TF32 off and cuDNN
    TF32 on). ``torch_too=False`` sets JAX's alone and does not import torch."""
    if precision not in ("highest", "default"):
        raise ValueError(f"precision must be 'highest' or 'default', got {precision!r}")
    jax.config.update("jax_default_matmul_precision", precision)
    if torch_too:
        import torch

        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = precision == "default"


def pin_full_precision() -> None:
    """True float32 on GPU for both frameworks: ``set_precision('highest')``."""
    set_precision("highest")
