"""When parity breaks, say where: a layer-by-layer divergence report with evidence-ranked causes.

``torchref.parity.compare`` says THAT a twin disagrees with its torch original; this module
says WHERE and WHY::

    from torchref.explain import explain
    report = explain(torch_model, flax_model, x, y, loss="cross_entropy", layout="image")
    print(report)                 # every layer in forward order, the first divergence marked
    report.first_row              # the LayerRow where the twin first departs from torch
    report.causes                 # its ranked Cause objects: key, status, evidence, fix
    report.confirmed()            # every confirmed (row, cause), independent faults too

What is captured, for ONE batch (torch layout in; NHWC for image twins):

* torch: every module's input and output (forward hooks, in completion order), the gradient
  of the loss with respect to each module's output (``retain_grad``), every parameter
  gradient, and every buffer before and after the pass;
* Flax: the same, by module path name, through :mod:`jaxnets.debug.intercept` (instances' classes
  swapped to recording subclasses inside one ``jax.jit``, or eagerly with ``jit=False``;
  outputs' gradients through zero perturbations; the twin's own public methods such as
  ``def act(self, x)`` are recorded too). Names match because twins use torch's attribute
  names. Twin activations are converted to torch layout before comparing (NHWC -> NCHW).

Each layer row holds the error of its input, its output, ``d loss / d output`` and the worst
``d loss / d parameter`` of that layer (each as the fraction of the tolerance used, with the
project's normwise criterion ``max|a-b| <= atol + rtol*max|b|`` and the bound of
:func:`jaxnets.tolerances.tolerance`), its buffers after the pass, and a LOCAL check: the
torch layer run on the TWIN's input. The local check separates a wrong layer (local check
fails) from a layer that merely inherits an upstream error (input differs, local check
passes); a row whose input differs while the layer before agrees points at the code between
them (an activation, a pooling, a flatten).

Plain functions in the twin (``jax.nn.gelu`` where torch has an ``nn.GELU`` module) have no
Flax record; their values are inferred by dataflow: the twin's input to such a torch module
is the twin output of the module whose torch output equals its torch input, and its output
is the twin input of the next module whose torch input equals its torch output.

The first divergence is the first row, in forward order, whose input, output or shape
differs (a forward fault); else the first row whose buffers differ after the pass (running
statistics); else the last row whose output gradient differs (the backward pass goes wrong
just after it). For that row, and for every other row that fails on its own input, the
report tests hypotheses against the numbers: it recomputes the layer under each usual fault
(kernel untransposed or reshaped, SAME padding, NHWC flatten, momentum ``m`` for ``1 - m``, biased
running variance, TF32 rounding, GELU's tanh approximation, LayerNorm eps...) and calls a
cause ``confirmed`` when that recomputation reproduces the twin within tolerance, ``likely``
when it removes at least 90% of the error, ``config`` when the two modules' settings differ,
and ``possible`` for the usual suspects nothing has tested.

The stages, one module each: :mod:`~torchref.explain.capture` (run both sides, record every
layer), :mod:`~torchref.explain.align` (rows, errors, the first divergence),
:mod:`~torchref.explain.diagnosis` (hypotheses, and the registry of diagnoses by layer type;
the built-in ones in :mod:`~torchref.explain.layers`) and :mod:`~torchref.explain.report`
(the report's data and text). A layer type of your own gets a diagnosis with
:func:`register_diagnosis`, the counterpart of :func:`jaxnets.convert.register_rule`::

    from torchref.explain import Diagnosis, register_diagnosis

    def diagnose_my_layer(diag: Diagnosis) -> None:  # diag.ctx: the row's arrays and modules
        diag.test("my_fault", "what the fault is", recomputed_under_the_fault, fix="...")

    register_diagnosis(MyTorchLayer, diagnose_my_layer)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn as nn
from flax import nnx

from jaxnets.tolerances import Tolerance, backend_name, tolerance
from torchref.bridge import torch_to_flax
from torchref.explain import layers as _layers  # noqa: F401 - registers the built-in diagnoses
from torchref.explain.align import align
from torchref.explain.arrays import tf32_round
from torchref.explain.capture import capture, environment
from torchref.explain.diagnosis import (
    DIAGNOSES,
    Context,
    Diagnosis,
    DiagnosisFn,
    diagnose,
    diagnoses_for,
    register_diagnosis,
)
from torchref.explain.report import Cause, ExplainReport, LayerRow
from torchref.parity import FLAX_LOSSES, TORCH_LOSSES, model_dtype

__all__ = [
    "DIAGNOSES",
    "Cause",
    "Context",
    "Diagnosis",
    "DiagnosisFn",
    "ExplainReport",
    "LayerRow",
    "diagnoses_for",
    "explain",
    "explain_models",
    "register_diagnosis",
    "tf32_round",
]

LossName = Literal["cross_entropy", "mse"]


def explain(
    torch_model: nn.Module,
    flax_model: nnx.Module,
    inputs: np.ndarray,
    targets: np.ndarray | None = None,
    *,
    loss: LossName
    | tuple[Callable[[Any, Any], Any], Callable[[Any, Any], Any]]
    | None = "cross_entropy",
    layout: Literal["features", "image"] = "features",
    mode: Literal["train", "eval"] | None = None,
    copy_weights: bool = True,
    tol: Tolerance | None = None,
    name: str | None = None,
    jit: bool = True,
) -> ExplainReport:
    """Compare ``torch_model`` and its twin layer by layer on one batch, and diagnose.

    Args:
      torch_model, flax_model: the pair; ``copy_weights`` first copies torch -> Flax (all
        parameters and buffers) with :func:`torchref.bridge.torch_to_flax`.
      inputs: one batch in TORCH layout, ``(N, F)`` or ``(N, C, H, W)``, numpy.
      targets: ``(N,)`` class indices for ``cross_entropy``, ``(N, outputs)`` for ``mse``.
      loss: ``'cross_entropy'``, ``'mse'``, a ``(torch_fn, flax_fn)`` pair called as
        ``fn(output, targets)``, or None (forward only: no gradient columns).
      layout: ``'image'`` feeds the twin NHWC and converts its 4-D activations to NCHW.
      mode: ``'train'`` / ``'eval'`` sets both models' mode first; None keeps them.
      tol: the bound; default :func:`jaxnets.tolerances.tolerance` of the torch model's dtype
        on JAX's backend. Never loosen it to make a row pass.
      jit: run the twin under ``jax.jit`` (as users do); False runs op by op.

    Like :func:`torchref.parity.compare`, this runs ONE forward (and backward) pass on each
    side, so BatchNorm running statistics advance on both. Returns an
    :class:`ExplainReport`; ``print(report)`` shows the table.
    """
    dtype = model_dtype(torch_model)
    tol = tol or tolerance(dtype)
    if copy_weights:
        torch_to_flax(torch_model, flax_model)
    if mode is not None:
        torch_model.train(mode == "train")
        flax_model.train() if mode == "train" else flax_model.eval()
    if loss is not None and targets is None:
        raise ValueError("explain(loss=...) needs targets; pass loss=None to skip the loss")
    losses = (TORCH_LOSSES[loss], FLAX_LOSSES[loss]) if isinstance(loss, str) else loss
    env = environment(torch_model, dtype)

    cap = capture(
        torch_model, flax_model, inputs, targets, losses, image=layout == "image", jit=jit
    )
    al = align(cap, tol, image=layout == "image")
    diagnose(al, cap, flax_model, tol=tol, dtype=dtype, environment=env)
    return ExplainReport(
        model=name or type(torch_model).__name__,
        dtype=dtype.name,
        backend=backend_name(),
        tolerance=tol,
        rows=al.rows,
        layout=layout,
        loss=al.loss,
        first=al.first,
        first_kind=al.first_kind,
        flax_error=cap.flax_error,
        error_at=cap.error_at,
        environment=env,
        torch_only=al.torch_only,
        flax_only=al.flax_only,
        param_mismatches=al.param_mismatches,
    )


def explain_models(
    names: list[str],
    *,
    dtype: str = "float32",
    seed: int = 0,
    batch_size: int = 8,
) -> list[ExplainReport]:
    """Layer-by-layer reports for registered models, built as ``jaxnets compare`` builds them.

    Each pair comes from ``seed`` (torch initialises, weights copied to the twin), gets one
    random batch of ``batch_size`` in train mode, and is compared with the tolerance of
    ``dtype`` on JAX's backend.
    """
    import jaxnets
    import torchref
    from torchref.precision import pin_full_precision

    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    pin_full_precision()
    tdtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    out = []
    for name in names:
        spec = jaxnets.get_model_spec(name)
        torch.manual_seed(seed)
        t = torchref.create_model(name, dtype=tdtype)
        f = jaxnets.create_model(name, param_dtype=jnp.dtype(dtype))
        x, y = spec.example_batch(batch_size, np.random.default_rng(seed), dtype=np.dtype(dtype))
        out.append(explain(t, f, x, y, loss=spec.loss, layout=spec.layout, mode="train", name=name))
    return out
