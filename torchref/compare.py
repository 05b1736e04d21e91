"""``jaxnets compare``: build every registered pair from one seed, copy weights, compare."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch

import jaxnets
import torchref
from torchref.parity import ParityReport, compare

__all__ = ["compare_models", "pin_full_precision"]


def pin_full_precision() -> None:
    """True float32 on GPU for both frameworks: JAX matmuls at 'highest', torch TF32 off."""
    jax.config.update("jax_default_matmul_precision", "highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def compare_models(
    names: list[str],
    *,
    dtype: str = "float32",
    seed: int = 0,
    batch_size: int = 8,
) -> list[ParityReport]:
    """Parity reports for ``names``: forward, loss, gradients, a VJP and buffers.

    Each pair is built from ``seed`` (torch initialises, the weights are copied to the twin),
    fed one random batch of ``batch_size`` in train mode, and compared within the tolerance
    of ``dtype`` on JAX's backend. float64 switches on ``jax_enable_x64``.
    """
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    if batch_size < 2:
        raise ValueError("batch_size must be at least 2 (batchnorm_mlp trains on batch statistics)")
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    pin_full_precision()
    tdtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    reports = []
    for name in names:
        spec = jaxnets.get_model_spec(name)
        torch.manual_seed(seed)
        t = torchref.create_model(name, dtype=tdtype)
        f = jaxnets.create_model(name, param_dtype=jnp.dtype(dtype))
        rng = np.random.default_rng(seed)
        x, y = spec.example_batch(batch_size, rng, dtype=np.dtype(dtype))
        v = rng.standard_normal((batch_size, spec.output_size(spec.make_config()))).astype(dtype)
        reports.append(
            compare(
                t, f, x, y, loss=spec.loss, layout=spec.layout, mode="train", cotangent=v, name=name
            )
        )
    return reports


def summary_rows(reports: list[ParityReport]) -> list[dict[str, Any]]:
    """One flat row per report, with the tutorial and the tolerance used."""
    rows = []
    for r in reports:
        row = r.summary()
        row["tutorial"] = jaxnets.get_model_spec(r.model).tutorial
        row["rtol"], row["atol"] = r.tolerance.rtol, r.tolerance.atol
        rows.append(row)
    return rows
