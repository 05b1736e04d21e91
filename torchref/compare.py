"""``jaxnets compare``: build every registered pair from one seed, copy weights, compare."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx

import jaxnets
import torchref
from torchref.parity import ParityReport, compare
from torchref.precision import pin_full_precision

__all__ = [
    "batchnorm_models",
    "compare_models",
    "compare_registered",
    "summary_rows",
]


def compare_registered(
    name: str,
    *,
    dtype: str = "float32",
    seed: int = 0,
    batch_size: int = 8,
    mode: str = "train",
) -> ParityReport:
    """Parity report for one registered model: forward, loss, gradients, a VJP and buffers.

    The pair is built from ``seed`` (torch initialises, the weights are copied to the twin),
    fed one random batch of ``batch_size`` (torch layout; NHWC for image twins) with its
    default loss and a random cotangent for ``out.backward(v)`` (standard normal over
    ``batch_size``, as a batch-mean loss scales its gradient), and compared within the
    tolerance of ``dtype`` on JAX's backend. float64 needs ``jax_enable_x64`` (on by
    :func:`compare_models`).
    """
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    spec = jaxnets.get_model_spec(name)
    torch.manual_seed(seed)
    t = torchref.create_model(
        name, dtype={"float32": torch.float32, "float64": torch.float64}[dtype]
    )
    f = jaxnets.create_model(name, param_dtype=jnp.dtype(dtype))
    rng = np.random.default_rng(seed)
    x, y = spec.example_batch(batch_size, rng, dtype=np.dtype(dtype))
    # The cotangent of out.backward(v) is scaled as a batch-mean loss scales its gradient
    # (1/N per example; tutorial 003's randn at batch 1). Unscaled, a parameter gradient that
    # cancels to exactly zero (a bias feeding a BatchNorm) is a sum of N O(1) terms whose
    # rounding noise grows with N past the tolerance's atol, which assumes O(1) sums: float64
    # 1.4e-14 at batch 256 and float32 2e-5 at batch 1024, both sides equally, for a correct
    # model. Scaled, that noise stays flat in N, as it does for the loss's gradient.
    v = rng.standard_normal((batch_size, spec.output_size(spec.make_config()))) / batch_size
    v = v.astype(dtype)
    return compare(
        t, f, x, y, loss=spec.loss, layout=spec.layout, mode=mode, cotangent=v, name=name
    )


def compare_models(
    names: list[str],
    *,
    dtype: str = "float32",
    seed: int = 0,
    batch_size: int = 8,
) -> list[ParityReport]:
    """:func:`compare_registered` for each of ``names`` in train mode, at full precision.

    float64 switches on ``jax_enable_x64``; ``batch_size`` must be at least 2 when a model
    has a BatchNorm (:func:`batchnorm_models`): it trains on batch statistics, and torch
    refuses one value per channel.
    """
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    if batch_size < 2 and (bn := batchnorm_models(names)):
        raise ValueError(
            f"batch_size={batch_size}: {', '.join(bn)} train(s) on batch statistics "
            f"(BatchNorm), which need at least 2 examples; compare a batch of 2 or more, or "
            f"leave {', '.join(bn)} out"
        )
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    pin_full_precision()
    return [
        compare_registered(name, dtype=dtype, seed=seed, batch_size=batch_size) for name in names
    ]


def batchnorm_models(names: Sequence[str]) -> list[str]:
    """The registered models among ``names`` whose twin holds a BatchNorm, i.e. that train
    on batch statistics (need batches of 2 or more, and have biases with a zero gradient)."""

    def has_bn(name: str) -> bool:  # abstract twin: the layer types, no initialisation
        model = nnx.eval_shape(lambda: jaxnets.create_model(name))
        return any(isinstance(m, nnx.BatchNorm) for _, m in nnx.iter_graph(model))

    return [n for n in names if has_bn(n)]


def summary_rows(reports: list[ParityReport]) -> list[dict[str, Any]]:
    """One flat row per report, with the tutorial and the tolerance used."""
    rows = []
    for r in reports:
        row = r.summary()
        row["tutorial"] = jaxnets.get_model_spec(r.model).tutorial
        row["rtol"], row["atol"] = r.tolerance.rtol, r.tolerance.atol
        rows.append(row)
    return rows
