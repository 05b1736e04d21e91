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
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from flax import nnx

from jaxnets import convert
from jaxnets.debug import intercept
from jaxnets.testing import LeafDiff, leaf_diff
from jaxnets.tolerances import TF32_RELATIVE_ERROR, Tolerance, backend_name, tolerance
from torchref.bridge import torch_to_flax
from torchref.parity import FLAX_LOSSES, TORCH_LOSSES, model_dtype

__all__ = [
    "Cause",
    "ExplainReport",
    "LayerRow",
    "explain",
    "explain_models",
    "tf32_round",
]

LossName = Literal["cross_entropy", "mse"]
Status = Literal["confirmed", "likely", "config", "possible"]
_STATUS_RANK = {"confirmed": 0, "likely": 1, "config": 2, "possible": 3}

# --------------------------------------------------------------------------- data model


@dataclass(frozen=True)
class Cause:
    """One candidate explanation of a divergence.

    Attributes:
      key: stable identifier (``'linear_kernel_untransposed'``, ``'conv_padding'``,
        ``'flatten_nhwc'``, ``'bn_momentum'``, ``'bn_biased_running_var'``, ``'tf32'``,
        ``'gelu_approximation'``, ``'layernorm_eps'``, ...), for tests and tooling.
      title: what is wrong, in one line.
      status: ``'confirmed'`` (recomputing the layer under this fault reproduces the twin
        within tolerance), ``'likely'`` (removes >= 90% of the error), ``'config'`` (the two
        modules' settings differ), ``'possible'`` (a usual suspect, not tested).
      evidence: what was measured.
      fix: what to change in the twin.
    """

    key: str
    title: str
    status: Status
    evidence: str = ""
    fix: str = ""

    def __str__(self) -> str:
        lines = [f"[{self.status}] {self.title} ({self.key})"]
        if self.evidence:
            lines.append(f"    evidence: {self.evidence}")
        if self.fix:
            lines.append(f"    fix: {self.fix}")
        return "\n".join(lines)


@dataclass
class LayerRow:
    """One module, compared in torch layout.

    Attributes:
      index: position in forward (completion) order, from 1.
      name: module path (``'fc1'``, ``'layers.0'``; ``''`` is the whole model).
      torch_type, flax_type: class names; ``flax_type`` is ``'(inferred)'`` for a torch
        module that is a plain function in the twin, ``None`` when the twin has nothing.
      torch_shape, flax_shape: output shapes (the twin's converted to torch layout).
      input, output: errors of the twin's input/output against torch's (None: not compared).
      local: error of the twin's output against the torch layer run on the TWIN's input.
      output_grad: error of ``d loss / d output``.
      param_grad: ``(torch parameter name, error)`` of this layer's worst parameter gradient.
      buffers: ``{torch buffer name: error}`` after the pass.
      note: anything else (shape mismatch, the exception the twin raised here...).
      causes: ranked causes (filled for the first divergence and for layers that fail on
        their own input).
      ruled_out: hypotheses that were tested and do not reproduce the twin.
    """

    index: int
    name: str
    torch_type: str
    flax_type: str | None
    torch_shape: tuple[int, ...] | None
    flax_shape: tuple[int, ...] | None
    torch_in_shape: tuple[int, ...] | None = None
    flax_in_shape: tuple[int, ...] | None = None
    input: LeafDiff | None = None
    output: LeafDiff | None = None
    local: LeafDiff | None = None
    output_grad: LeafDiff | None = None
    param_grad: tuple[str, LeafDiff] | None = None
    buffers: dict[str, LeafDiff] = field(default_factory=dict)
    note: str = ""
    error: str | None = None
    inherits: bool = False
    causes: list[Cause] = field(default_factory=list)
    ruled_out: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The name to print: ``'(model)'`` for the root."""
        return self.name or "(model)"

    @property
    def shape_mismatch(self) -> bool:
        """Both sides produced an array output, of different shapes."""
        return (
            self.torch_shape is not None
            and self.flax_shape is not None
            and self.torch_shape != self.flax_shape
        )

    @property
    def input_shape_mismatch(self) -> bool:
        """Both sides' inputs are arrays, of different shapes."""
        return (
            self.torch_in_shape is not None
            and self.flax_in_shape is not None
            and self.torch_in_shape != self.flax_in_shape
        )

    @property
    def input_bad(self) -> bool:
        """The twin's input to this layer differs from torch's (values or shape)."""
        return self.input_shape_mismatch or (self.input is not None and not self.input.ok)

    @property
    def layer_bad(self) -> bool:
        """This layer itself computes differently (or raised, or changed the shape)."""
        if self.error is not None:
            return not self.input_shape_mismatch
        if self.inherits:  # a container whose children already diverge
            return False
        if self.shape_mismatch:
            return not self.input_shape_mismatch
        if self.local is not None:
            return not self.local.ok
        return self.output is not None and not self.output.ok and not self.input_bad

    @property
    def forward_bad(self) -> bool:
        """Input, output or shape differs, or the twin raised here."""
        return self.layer_bad or self.input_bad or (self.output is not None and not self.output.ok)

    @property
    def buffers_bad(self) -> bool:
        """A buffer (running statistic) differs after the pass."""
        return any(not d.ok for d in self.buffers.values())

    @property
    def grad_bad(self) -> bool:
        """``d loss / d output`` or a parameter gradient differs."""
        return (self.output_grad is not None and not self.output_grad.ok) or (
            self.param_grad is not None and not self.param_grad[1].ok
        )

    @property
    def status(self) -> str:
        """One word for the table."""
        if self.error is not None:
            return "RAISED"
        if self.layer_bad:
            return "SHAPE" if self.shape_mismatch else "LAYER"
        if self.input_bad:
            return "INPUT"
        if self.output is not None and not self.output.ok:
            return "OUTPUT"
        if self.buffers_bad:
            return "BUFFERS"
        if self.grad_bad:
            return "GRAD"
        if self.output is None and self.flax_type is None:
            return "-"
        return "ok"


@dataclass
class ExplainReport:
    """The layer-by-layer comparison of one batch, with the first divergence diagnosed.

    ``rows`` are in forward (completion) order; ``first`` is the index into ``rows`` of the
    first divergence (None when everything agrees) and ``first_kind`` says how it diverges:
    ``'forward'``, ``'buffers'``, ``'backward'`` or ``'loss'``.
    """

    model: str
    dtype: str
    backend: str
    tolerance: Tolerance
    rows: list[LayerRow]
    layout: str = "features"
    loss: LeafDiff | None = None
    first: int | None = None
    first_kind: str | None = None
    flax_error: str | None = None
    error_at: str | None = None
    environment: list[str] = field(default_factory=list)
    torch_only: list[str] = field(default_factory=list)
    flax_only: list[str] = field(default_factory=list)
    param_mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no row, loss or parameter diverges and the twin did not raise."""
        return self.first is None and self.flax_error is None

    @property
    def first_row(self) -> LayerRow | None:
        """The :class:`LayerRow` of the first divergence, or None."""
        return None if self.first is None else self.rows[self.first]

    @property
    def causes(self) -> list[Cause]:
        """The ranked causes of the first divergence (empty when parity holds)."""
        row = self.first_row
        return [] if row is None else list(row.causes)

    def confirmed(self) -> list[tuple[LayerRow, Cause]]:
        """Every confirmed cause in forward order: the first divergence's and those of layers
        that fail on their own input (independent faults a single run can already name)."""
        return [(r, c) for r in self.rows for c in r.causes if c.status == "confirmed"]

    def to_rows(self) -> list[dict[str, Any]]:
        """One flat dict per layer with every number (max abs, max rel, tolerance used of the
        input, output, local check, output gradient and worst parameter gradient), for JSON,
        CSV (``jaxnets.app.report.render``) or a DataFrame."""
        out = []
        for r in self.rows:
            row: dict[str, Any] = {
                "index": r.index,
                "layer": r.label,
                "torch_type": r.torch_type,
                "twin_type": r.flax_type,
                "torch_shape": r.torch_shape,
                "twin_shape": r.flax_shape,
                "status": r.status,
                "first_divergence": self.first is not None and self.rows[self.first] is r,
            }
            pg = r.param_grad[1] if r.param_grad else None
            for kind, d in (
                ("input", r.input),
                ("output", r.output),
                ("local", r.local),
                ("output_grad", r.output_grad),
                ("param_grad", pg),
            ):
                row[f"{kind}_abs"] = None if d is None else d.max_abs
                row[f"{kind}_rel"] = None if d is None else d.max_rel
                row[f"{kind}_used"] = None if d is None else d.tolerance_used
            row["param_grad_name"] = r.param_grad[0] if r.param_grad else None
            row["causes"] = [f"{c.status}:{c.key}" for c in r.causes]
            out.append(row)
        return out

    def row(self, name: str) -> LayerRow:
        """The row of module ``name`` (``''`` or ``'(model)'`` for the model)."""
        name = "" if name == "(model)" else name
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no layer {name!r}; layers: {[r.label for r in self.rows]}")

    def __str__(self) -> str:
        return _format(self)


# --------------------------------------------------------------------------- numerics


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


def _t64(a: Any) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float64, copy=True))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _weight(mod: nn.Module, name: str) -> torch.Tensor | None:
    p = getattr(mod, name, None)
    return None if p is None else p.detach().to(torch.float64).cpu()


def _to_torch_layout(a: np.ndarray, torch_shape: tuple[int, ...] | None, image: bool) -> np.ndarray:
    """The twin's channels-last array in torch's channels-first layout.

    Image twins: every array of 3 or more dimensions is channels-last (``(N, H, W, C) ->
    (N, C, H, W)``) unless it already has torch's shape and the moved one would not.
    Feature twins: moved only when that, and only that, gives torch's shape.
    """
    if a.ndim < 3:
        return a
    moved = np.moveaxis(a, -1, 1)
    target = None if torch_shape is None else tuple(torch_shape)
    if image:
        return a if (a.shape == target and moved.shape != target) else moved
    return moved if (moved.shape == target and a.shape != target) else a


def _is_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


_ELEMENTWISE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda x: x,
    "relu": F.relu,
    "gelu (exact erf: torch nn.GELU() default)": lambda x: F.gelu(x),
    "gelu (tanh approximation: jax.nn.gelu default)": lambda x: F.gelu(x, approximate="tanh"),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "silu": F.silu,
    "elu": F.elu,
    "leaky_relu(0.01)": F.leaky_relu,
    "softplus": F.softplus,
    "relu6": F.relu6,
}


# --------------------------------------------------------------------------- capture


@dataclass
class _TorchRecord:
    name: str
    type_name: str
    module: nn.Module
    input: np.ndarray | None
    output: np.ndarray | None
    tensor: torch.Tensor | None


def _torch_trace(
    model: nn.Module,
    x: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor] | None,
) -> tuple[list[_TorchRecord], torch.Tensor, torch.Tensor | None]:
    """Forward (and backward) with a hook on every module; returns records, output, loss."""
    records: list[_TorchRecord] = []
    calls: dict[str, int] = {}

    def make_hook(name: str) -> Callable[..., None]:
        def hook(mod: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            n = calls.get(name, 0) + 1
            calls[name] = n
            key = name if n == 1 else f"{name}#{n}"
            inp = args[0] if args and isinstance(args[0], torch.Tensor) else None
            tensor = out if isinstance(out, torch.Tensor) else None
            if tensor is not None and tensor.requires_grad:
                tensor.retain_grad()
            records.append(
                _TorchRecord(
                    key,
                    type(mod).__name__,
                    mod,
                    None if inp is None else _np(inp).copy(),
                    None if tensor is None else _np(tensor).copy(),
                    tensor,
                )
            )

        return hook

    handles = [m.register_forward_hook(make_hook(n)) for n, m in model.named_modules()]
    try:
        model.zero_grad(set_to_none=True)
        out = model(x)
        loss = None
        if loss_fn is not None:
            loss = loss_fn(out)
            loss.backward()
    finally:
        for h in handles:
            h.remove()
    return records, out, loss


# --------------------------------------------------------------------------- hypotheses


@dataclass
class _Ctx:
    """What a diagnosis may look at for one row (all arrays in torch layout)."""

    row: LayerRow
    module: nn.Module
    flax_module: nnx.Module | None
    x_t: np.ndarray | None  # torch's input
    x_f: np.ndarray | None  # the twin's input
    y_t: np.ndarray | None
    y_f: np.ndarray | None
    tol: Tolerance
    dtype: np.dtype
    env_tf32: list[str]
    buffers_before: dict[str, torch.Tensor]
    buffers_after_t: dict[str, np.ndarray]
    buffers_after_f: dict[str, np.ndarray]
    params_t: dict[str, np.ndarray]
    params_f: dict[str, np.ndarray]
    channel_hints: list[int] = field(default_factory=list)  # channels of earlier 4-D outputs


class _Diagnosis:
    """Collects causes and ruled-out hypotheses for one row."""

    def __init__(self, ctx: _Ctx) -> None:
        self.ctx = ctx
        self.causes: list[Cause] = []
        self.ruled_out: list[str] = []
        self.ruled_keys: set[str] = set()

    def add(self, key: str, title: str, status: Status, evidence: str = "", fix: str = "") -> None:
        old = next((c for c in self.causes if c.key == key), None)
        if old is not None and _STATUS_RANK[old.status] <= _STATUS_RANK[status]:
            return
        if old is not None and old.evidence and old.evidence not in evidence:
            # keep what the weaker finding saw (e.g. the settings) next to the new evidence
            lead = old.evidence if old.title == title else f"{old.title}: {old.evidence}"
            evidence = f"{evidence}; {lead}" if evidence else lead
        self.causes = [c for c in self.causes if c.key != key]
        self.causes.append(Cause(key, title, status, evidence, fix))

    def test(
        self,
        key: str,
        title: str,
        predicted: np.ndarray | torch.Tensor | None,
        observed: np.ndarray | None,
        baseline: LeafDiff | None,
        fix: str,
        what: str = "the twin's output",
    ) -> bool:
        """Does ``predicted`` (the layer recomputed under a fault) reproduce ``observed``?"""
        if predicted is None or observed is None:
            return False
        if isinstance(predicted, torch.Tensor):
            predicted = _np(predicted)
        if tuple(predicted.shape) != tuple(observed.shape):
            self.ruled_out.append(f"{title} (shape {tuple(predicted.shape)})")
            self.ruled_keys.add(key)
            return False
        tol = self.ctx.tol
        d = leaf_diff(observed, predicted, rtol=tol.rtol, atol=tol.atol)
        if d.ok:
            self.add(
                key,
                title,
                "confirmed",
                f"recomputing under this fault reproduces {what} to max abs {d.max_abs:.1e} "
                f"(rel {d.max_rel:.1e}, within tolerance)",
                fix,
            )
            return True
        if (
            baseline is not None
            and math.isfinite(baseline.max_abs)
            and 0 < d.max_abs <= 0.1 * baseline.max_abs
        ):
            explained = 100 * (1 - d.max_abs / baseline.max_abs)
            self.add(
                key,
                title,
                "likely",
                f"recomputing under this fault leaves max abs {d.max_abs:.1e} of the "
                f"{baseline.max_abs:.1e} error ({explained:.0f}% explained)",
                fix,
            )
            return True
        self.ruled_out.append(f"{title} (residual {d.max_rel:.1e} rel)")
        self.ruled_keys.add(key)
        return False

    def ranked(self) -> list[Cause]:
        return sorted(self.causes, key=lambda c: _STATUS_RANK[c.status])


def _baseline(ctx: _Ctx) -> LeafDiff | None:
    if ctx.y_f is None or ctx.y_t is None or ctx.y_f.shape != ctx.y_t.shape:
        return None
    return leaf_diff(ctx.y_f, ctx.y_t, rtol=ctx.tol.rtol, atol=ctx.tol.atol)


def _layout_rule(module: nn.Module) -> str:
    """The converter's layout rule for the layer's weight, in words."""
    if isinstance(module, nn.Linear):
        return "kernel = weight.T, [out, in] -> [in, out]"
    if isinstance(module, nn.Conv2d):
        return "kernel = weight.permute(2, 3, 1, 0), [O, I, kH, kW] -> [kH, kW, I, O]"
    return "the one for this layer type"


def _reshaped(twin: np.ndarray, torch_value: np.ndarray) -> bool:
    """Whether the twin's parameter (read back in torch layout) is torch's, reshaped instead
    of transposed: in the twin's own layout (some permutation of the torch-layout axes) its
    values in memory order are torch's values in memory order. Needs at least two axes of
    size > 1 and values not all equal, or a reshape could not be told from the right copy."""
    if twin.size != torch_value.size or np.unique(torch_value).size < 2:
        return False
    if sum(d > 1 for d in torch_value.shape) < 2:
        return False
    flat = torch_value.ravel()
    return any(
        np.array_equal(np.transpose(twin, perm).ravel(), flat)
        for perm in itertools.permutations(range(twin.ndim))
    )


def _check_weights(diag: _Diagnosis) -> None:
    """Compare the layer's parameters with torch's; name the axis permutation if one fits."""
    ctx = diag.ctx
    prefix = f"{ctx.row.name}." if ctx.row.name else ""
    for pname, _ in ctx.module.named_parameters(recurse=False):
        key = prefix + pname
        t = ctx.params_t.get(key)
        f = ctx.params_f.get(key)
        if t is None:
            continue
        if f is None:
            diag.add(
                "weights_missing",
                f"the twin has no {key}",
                "confirmed",
                f"torch has {key} {tuple(t.shape)}; the converter found no twin variable for it",
                "check the layer type and use_bias/use_scale settings of the twin's layer",
            )
            continue
        if f.shape == t.shape and leaf_diff(f, t, rtol=ctx.tol.rtol, atol=ctx.tol.atol).ok:
            continue
        for perm in itertools.permutations(range(t.ndim)):
            if perm == tuple(range(t.ndim)):
                continue
            tp = np.transpose(t, perm)
            if tp.shape == f.shape and np.array_equal(tp, f):
                if isinstance(ctx.module, nn.Linear):
                    diag.add(
                        "linear_kernel_untransposed",
                        f"{key}: the kernel holds torch's weight untransposed",
                        "confirmed",
                        f"the twin's kernel read back in torch layout is torch's {pname} "
                        f"transposed, exactly: it was stored as [out, in], Flax wants [in, out]",
                        "copy weights with jaxnets.convert / torchref.bridge.torch_to_flax "
                        "(kernel = weight.T), or fix your own loader",
                    )
                else:
                    diag.add(
                        "weight_layout",
                        f"{key}: the weight's axes are permuted {perm}",
                        "confirmed",
                        f"the twin's {pname} in torch layout equals torch's with axes {perm}",
                        f"use the layout rule of jaxnets.convert: {_layout_rule(ctx.module)}",
                    )
                break
        else:
            if _reshaped(f, t):
                diag.add(
                    "weight_reshaped",
                    f"{key}: the weight was reshaped where it needs a transpose",
                    "confirmed",
                    f"the twin's {pname} holds torch's values in torch's memory order, "
                    f"reshaped to the twin's shape: a reshape keeps the order, a transpose "
                    f"({_layout_rule(ctx.module)}) moves the values",
                    f"transpose, do not reshape: {_layout_rule(ctx.module)}; "
                    "jaxnets.convert.load_state_dict / torchref.bridge.torch_to_flax do it",
                )
                continue
            if f.shape != t.shape:
                detail = f"shape {f.shape} in the twin, {t.shape} in torch"
            else:
                d = leaf_diff(f, t, rtol=ctx.tol.rtol, atol=ctx.tol.atol)
                detail = f"max abs {d.max_abs:.1e}, rel {d.max_rel:.1e}"
            diag.add(
                "weights_differ",
                f"{key} differs from torch's",
                "confirmed",
                f"{detail}: not copied, or changed after copying",
                "copy the weights after building the twin (torchref.bridge.torch_to_flax) and "
                "do not modify them afterwards",
            )


def _diagnose_linear(diag: _Diagnosis, base: LeafDiff | None) -> None:
    ctx, mod = diag.ctx, diag.ctx.module
    assert isinstance(mod, nn.Linear)
    if ctx.x_f is None:
        return
    x = _t64(ctx.x_f)
    w, b = _weight(mod, "weight"), _weight(mod, "bias")
    fm = ctx.flax_module
    if isinstance(fm, nnx.Linear) and (fm.bias is not None) != (b is not None):
        diag.add(
            "linear_bias",
            "bias: the twin and torch disagree on having one",
            "config",
            f"twin use_bias={fm.bias is not None}, torch bias={b is not None}",
            "pass use_bias to match torch's bias=...",
        )
    if w.shape[0] == w.shape[1]:
        pred = x @ w + (0 if b is None else b)
        diag.test(
            "linear_kernel_untransposed",
            "Linear kernel not transposed (torch weight [out, in] used as kernel [in, out])",
            pred,
            ctx.y_f,
            base,
            "kernel = weight.T; use jaxnets.convert.load_state_dict / torch_to_flax",
        )
    else:
        diag.ruled_keys.add("linear_kernel_untransposed")
        diag.ruled_out.append(
            f"kernel not transposed (a {w.shape[0]}x{w.shape[1]} weight cannot be used "
            f"untransposed: the shapes would not fit)"
        )
    if b is not None:
        diag.test(
            "linear_bias",
            "the twin adds no bias",
            F.linear(x, w),
            ctx.y_f,
            base,
            "use_bias=True and copy torch's bias",
        )
    if ctx.dtype == np.float32:
        pred = F.linear(_t64(tf32_round(ctx.x_f)), _t64(tf32_round(_np(w))), b)
        _tf32_test(diag, pred, base)


def _tf32_test(diag: _Diagnosis, pred: torch.Tensor, base: LeafDiff | None) -> None:
    ctx = diag.ctx
    fix = (
        "pin true float32: jax.config.update('jax_default_matmul_precision', 'highest') and "
        "torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False"
    )
    if diag.test(
        "tf32", "TF32 matmul/convolution in the twin (10-bit mantissa)", pred, ctx.y_f, base, fix
    ):
        return
    # the other way round: torch computed in TF32 and the twin in float32
    if ctx.y_t is not None and ctx.x_t is not None and ctx.env_tf32:
        d = leaf_diff(ctx.y_t, _np(pred), rtol=ctx.tol.rtol, atol=ctx.tol.atol)
        if d.ok:
            diag.add("tf32", "TF32 matmul/convolution on the torch side", "confirmed", "", fix)
    lo, hi = TF32_RELATIVE_ERROR
    if ctx.env_tf32 and base is not None and lo <= base.max_rel <= hi:
        diag.add(
            "tf32",
            "TF32 on the GPU (float32 matmuls/convolutions with a 10-bit mantissa)",
            "likely",
            f"relative error {base.max_rel:.1e} is TF32-sized (2^-11 = 4.9e-4 per operand) and "
            + "; ".join(ctx.env_tf32),
            fix,
        )


def _flax_conv_padding(
    fm: nnx.Conv, in_hw: tuple[int, ...], k: tuple[int, ...], s: tuple[int, ...], d: tuple[int, ...]
) -> list[tuple[int, int]] | None:
    p = fm.padding
    n = len(in_hw)
    if isinstance(p, str):
        if p.upper() == "VALID":
            return [(0, 0)] * n
        if p.upper() == "SAME":
            pads = []
            for i in range(n):
                out = -(-in_hw[i] // s[i])
                total = max((out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in_hw[i], 0)
                pads.append((total // 2, total - total // 2))
            return pads
        return None
    if isinstance(p, int):
        return [(p, p)] * n
    pads = []
    for q in p:
        pads.append((q, q) if isinstance(q, int) else (int(q[0]), int(q[1])))
    return pads if len(pads) == n else None


def _tuple(v: Any, n: int) -> tuple[int, ...]:
    if v is None:
        return (1,) * n
    return (int(v),) * n if isinstance(v, int) else tuple(int(a) for a in v)


def _diagnose_conv(diag: _Diagnosis, base: LeafDiff | None) -> None:
    ctx, mod = diag.ctx, diag.ctx.module
    assert isinstance(mod, nn.modules.conv._ConvNd)
    fm = ctx.flax_module
    if ctx.x_f is None or not isinstance(fm, nnx.Conv) or mod.padding_mode != "zeros":
        return
    nsp = len(mod.kernel_size)
    in_hw = tuple(ctx.x_f.shape[2:])
    k, s, dil = tuple(mod.kernel_size), tuple(mod.stride), tuple(mod.dilation)
    if isinstance(mod.padding, str):
        if mod.padding == "valid":
            t_pad = [(0, 0)] * nsp
        else:  # torch 'same' (stride 1): total d*(k-1), the extra one on the right
            t_pad = [
                ((dil[i] * (k[i] - 1)) // 2, dil[i] * (k[i] - 1) - (dil[i] * (k[i] - 1)) // 2)
                for i in range(nsp)
            ]
    else:
        t_pad = [(int(p), int(p)) for p in mod.padding]
    fk = _tuple(fm.kernel_size, nsp)
    fs, fd = _tuple(fm.strides, nsp), _tuple(fm.kernel_dilation, nsp)
    f_pad = _flax_conv_padding(fm, in_hw, fk, fs, fd)
    w, b = _weight(mod, "weight"), _weight(mod, "bias")
    x = _t64(ctx.x_f)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nsp]
    if fk != k:
        diag.add(
            "conv_kernel_size",
            f"kernel size: twin {fk}, torch {k}",
            "config",
            "an int kernel_size makes nnx.Conv 1-D" if len(fk) != len(k) else "",
            f"kernel_size={k}",
        )
    if (fs, fd, fm.feature_group_count) != (s, dil, mod.groups):
        diag.add(
            "conv_config",
            "stride / dilation / groups differ",
            "config",
            f"twin strides={fs} kernel_dilation={fd} feature_group_count={fm.feature_group_count}; "
            f"torch stride={s} dilation={dil} groups={mod.groups}",
            "pass torch's stride, dilation and groups to nnx.Conv",
        )
    if f_pad is not None and f_pad != t_pad:
        label = f"'{fm.padding}'" if isinstance(fm.padding, str) else str(f_pad)
        shape_note = ""
        if ctx.row.shape_mismatch:
            shape_note = (
                f"; the twin's output is {ctx.row.flax_shape}, torch's {ctx.row.torch_shape}"
            )
        diag.add(
            "conv_padding",
            f"convolution padding: twin {label} = {f_pad}, torch {t_pad}",
            "config",
            f"nnx.Conv defaults to padding='SAME', torch to 0{shape_note}",
            f"padding={tuple(p for p, _ in t_pad)!r} as explicit pairs "
            f"({[tuple(p) for p in t_pad]}), e.g. jaxnets.nn.Conv2d",
        )
        if (fs, fd, fm.feature_group_count) == (s, dil, mod.groups) and fk == k:
            flat = [p for pair in reversed(f_pad) for p in pair]
            pred = conv(F.pad(x, flat), w, b, s, 0, dil, mod.groups)
            diag.test(
                "conv_padding",
                f"convolution padding: twin {label} = {f_pad}, torch {t_pad}",
                pred,
                ctx.y_f,
                base,
                f"pass torch's explicit padding {[tuple(p) for p in t_pad]} to nnx.Conv "
                "(jaxnets.nn.Conv2d does)",
            )
    if ctx.dtype == np.float32 and not ctx.row.shape_mismatch:
        pred = conv(
            _t64(tf32_round(ctx.x_f)), _t64(tf32_round(_np(w))), b, s, mod.padding, dil, mod.groups
        )
        _tf32_test(diag, pred, base)


def _bn_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    axes = tuple(i for i in range(x.ndim) if i != 1)
    xs = x.astype(np.float64)
    n = int(np.prod([x.shape[i] for i in axes]))
    mean = xs.mean(axis=axes)
    var = xs.var(axis=axes)
    return mean, var, var * n / max(n - 1, 1), n


def _diagnose_bn_forward(diag: _Diagnosis, base: LeafDiff | None) -> None:
    ctx, mod = diag.ctx, diag.ctx.module
    assert isinstance(mod, nn.modules.batchnorm._BatchNorm)
    fm = ctx.flax_module
    if isinstance(fm, nnx.BatchNorm) and not math.isclose(fm.epsilon, mod.eps, rel_tol=1e-9):
        diag.add(
            "bn_eps",
            f"BatchNorm eps: twin {fm.epsilon:g}, torch {mod.eps:g}",
            "config",
            "",
            f"epsilon={mod.eps:g}",
        )
    if isinstance(fm, nnx.BatchNorm) and bool(fm.use_running_average) == mod.training:
        diag.add(
            "bn_mode",
            "train/eval mode differs: one side normalises with batch statistics, the other "
            "with running statistics",
            "config",
            f"torch training={mod.training}, twin use_running_average={fm.use_running_average}",
            "call model.train() / model.eval() on both sides (nnx: model.eval() sets "
            "use_running_average=True)",
        )
    if ctx.x_f is None:
        return
    x = _t64(ctx.x_f)
    w, b = _weight(mod, "weight"), _weight(mod, "bias")
    prefix = f"{ctx.row.name}." if ctx.row.name else ""
    rm = ctx.buffers_before.get(prefix + "running_mean")
    rv = ctx.buffers_before.get(prefix + "running_var")
    eps = fm.epsilon if isinstance(fm, nnx.BatchNorm) else mod.eps
    if rm is not None and rv is not None:
        other = not mod.training
        pred = F.batch_norm(x, rm.double().clone(), rv.double().clone(), w, b, other, 0.0, eps)
        diag.test(
            "bn_mode",
            "train/eval mode differs (the twin used "
            + ("batch" if other else "running")
            + " statistics)",
            pred,
            ctx.y_f,
            base,
            "call model.train() / model.eval() on both sides",
        )
    if isinstance(fm, nnx.BatchNorm) and fm.epsilon != mod.eps:
        pred = F.batch_norm(
            x,
            None if rm is None else rm.double().clone(),
            None if rv is None else rv.double().clone(),
            w,
            b,
            mod.training or rm is None,
            0.0,
            fm.epsilon,
        )
        diag.test(
            "bn_eps",
            f"BatchNorm eps {fm.epsilon:g} (torch {mod.eps:g})",
            pred,
            ctx.y_f,
            base,
            # jaxnets.nn.BatchNorm1d/2d take torch's name for it; nnx.BatchNorm Flax's
            f"eps={mod.eps:g}" if hasattr(fm, "torch_momentum") else f"epsilon={mod.eps:g}",
        )


def _diagnose_bn_buffers(diag: _Diagnosis) -> None:
    """Which update rule gives the twin's running statistics after the pass?"""
    ctx, mod = diag.ctx, diag.ctx.module
    assert isinstance(mod, nn.modules.batchnorm._BatchNorm)
    prefix = f"{ctx.row.name}." if ctx.row.name else ""
    km, kv, kn = (prefix + s for s in ("running_mean", "running_var", "num_batches_tracked"))
    fm = ctx.flax_module
    m_t = mod.momentum
    if isinstance(fm, nnx.BatchNorm):
        if hasattr(fm, "torch_momentum"):  # jaxnets.nn.BatchNorm1d: torch's convention
            tm = fm.torch_momentum
            if tm is not None and m_t is not None and not math.isclose(tm, m_t):
                diag.add(
                    "bn_momentum",
                    f"BatchNorm momentum: twin torch_momentum={tm:g}, torch momentum={m_t:g}",
                    "config",
                    "" if not math.isclose(tm, 1 - m_t) else "the twin's is 1 - m",
                    f"{type(fm).__name__}(..., momentum={m_t:g}): it takes torch's "
                    f"convention, the same number as torch",
                )
        elif m_t is not None and not math.isclose(fm.momentum, 1 - m_t):
            diag.add(
                "bn_momentum",
                f"BatchNorm momentum: nnx momentum={fm.momentum:g}, torch momentum={m_t:g}",
                "config",
                f"Flax's momentum weighs the OLD running value: it must be 1 - m = {1 - m_t:g}",
                f"nnx.BatchNorm(momentum={1 - m_t:g}), or jaxnets.nn.BatchNorm1d (2d for "
                f"images), which take torch's",
            )
    if ctx.x_t is None or km not in ctx.buffers_before or km not in ctx.buffers_after_f:
        return
    x = ctx.x_f if ctx.x_f is not None and ctx.x_f.shape == ctx.x_t.shape else ctx.x_t
    mean, var_b, var_u, _ = _bn_stats(x)
    rm0 = _np(ctx.buffers_before[km]).astype(np.float64)
    rv0 = _np(ctx.buffers_before[kv]).astype(np.float64)
    nbt = int(_np(ctx.buffers_before[kn])) if kn in ctx.buffers_before else 0
    m = (1.0 / (nbt + 1)) if m_t is None else m_t
    obs_m, obs_v = ctx.buffers_after_f[km], ctx.buffers_after_f.get(kv)
    tol = ctx.tol

    def fits(pred: np.ndarray, obs: np.ndarray | None) -> bool:
        return obs is not None and leaf_diff(obs, pred, rtol=tol.rtol, atol=tol.atol).ok

    if fits(rm0, obs_m) and fits(rv0, obs_v):  # the twin did not update at all
        eval_mode = isinstance(fm, nnx.BatchNorm) and bool(fm.use_running_average)
        diag.add(
            "bn_mode" if eval_mode else "bn_no_update",
            "the twin did not update its running statistics"
            + (" (it is in eval mode)" if eval_mode else ""),
            "confirmed",
            "its running_mean and running_var are still the values before the pass",
            "call model.train() on the twin (nnx: use_running_average=False)"
            if eval_mode
            else "update mean/var in the twin's training forward pass",
        )
        return
    rules = {
        ("m", "unbiased"): (m, var_u),
        ("1-m", "unbiased"): (1 - m, var_u),
        ("m", "biased"): (m, var_b),
        ("1-m", "biased"): (1 - m, var_b),
    }
    fix_m = (
        f"torch momentum m={m:g} weighs the NEW batch statistic; Flax's momentum weighs the OLD "
        f"running value: nnx.BatchNorm(momentum={1 - m:g}) or jaxnets.nn.BatchNorm1d/2d"
    )
    fix_v = (
        "torch updates running_var with the UNBIASED batch variance (x n/(n-1)) while "
        "nnx.BatchNorm uses the biased one: use jaxnets.nn.BatchNorm1d (2d for images)"
    )
    mean_rule = next(
        (r for r, mm in (("m", m), ("1-m", 1 - m)) if fits((1 - mm) * rm0 + mm * mean, obs_m)),
        None,
    )
    var_rule = None
    for (mr, vr), (mm, vv) in rules.items():
        if fits((1 - mm) * rv0 + mm * vv, obs_v):
            var_rule = (mr, vr)
            break
    if mean_rule == "1-m" or (var_rule is not None and var_rule[0] == "1-m"):
        which = "running_mean" if mean_rule == "1-m" else "running_var"
        diag.add(
            "bn_momentum",
            f"BatchNorm momentum used as {1 - m:g} instead of {m:g} (m for 1 - m)",
            "confirmed",
            f"the twin's {which} equals the update with momentum {1 - m:g} (to tolerance); "
            f"torch's uses {m:g}",
            fix_m,
        )
    if var_rule is not None and var_rule[1] == "biased":
        diag.add(
            "bn_biased_running_var",
            "running variance updated with the BIASED batch variance",
            "confirmed",
            f"the twin's running_var equals the update with the biased variance (n = "
            f"{x.size // x.shape[1]} values per channel); torch uses the unbiased one",
            fix_v,
        )
    if mean_rule is None and var_rule is None:
        diag.ruled_out.append("momentum m vs 1-m, biased vs unbiased running variance")
        diag.add(
            "bn_update",
            "running statistics follow none of the usual update rules",
            "possible",
            "tried momentum m and 1-m with biased and unbiased variance",
            "check that the twin updates mean/var once per training forward pass",
        )
    counts = (ctx.buffers_after_t.get(kn), ctx.buffers_after_f.get(kn))
    if None not in counts and not np.array_equal(*counts):
        diag.add(
            "bn_num_batches_tracked",
            "num_batches_tracked not counted as torch counts it",
            "confirmed",
            f"twin {int(counts[1])}, torch {int(counts[0])}",
            "use jaxnets.nn.BatchNorm1d (2d for images), which counts training batches",
        )


def _diagnose_layernorm(diag: _Diagnosis, base: LeafDiff | None) -> None:
    ctx, mod = diag.ctx, diag.ctx.module
    assert isinstance(mod, nn.LayerNorm)
    fm = ctx.flax_module
    fix = f"nnx.LayerNorm(..., epsilon={mod.eps:g}) (Flax defaults to 1e-6, torch to 1e-5)"
    if isinstance(fm, nnx.LayerNorm) and not math.isclose(fm.epsilon, mod.eps, rel_tol=1e-9):
        diag.add(
            "layernorm_eps",
            f"LayerNorm eps: twin {fm.epsilon:g}, torch {mod.eps:g}",
            "config",
            "Flax's nnx.LayerNorm defaults to epsilon=1e-6, torch's to 1e-5",
            fix,
        )
    if ctx.x_f is None:
        return
    x = _t64(ctx.x_f)
    w, b = _weight(mod, "weight"), _weight(mod, "bias")
    candidates = [1e-6, 1e-5, 1e-12]
    if isinstance(fm, nnx.LayerNorm):
        candidates.insert(0, float(fm.epsilon))
    for eps in dict.fromkeys(candidates):
        if math.isclose(eps, mod.eps):
            continue
        pred = F.layer_norm(x, mod.normalized_shape, w, b, eps)
        if diag.test(
            "layernorm_eps",
            f"LayerNorm eps {eps:g} instead of torch's {mod.eps:g}",
            pred,
            ctx.y_f,
            base,
            fix,
        ):
            break
    if isinstance(fm, nnx.LayerNorm) and fm.use_fast_variance and ctx.dtype == np.float32:
        diag.add(
            "layernorm_fast_variance",
            "nnx.LayerNorm computes the variance as E[x^2] - E[x]^2 (use_fast_variance=True)",
            "possible",
            "in float32 that cancels badly when |mean| >> std; torch uses two passes",
            "nnx.LayerNorm(..., use_fast_variance=False)",
        )


def _diagnose_elementwise(diag: _Diagnosis, base: LeafDiff | None) -> None:
    """Which elementwise function maps the twin's input to its output?"""
    ctx, mod = diag.ctx, diag.ctx.module
    if ctx.x_f is None or ctx.y_f is None or ctx.x_f.shape != ctx.y_f.shape:
        return
    x = _t64(ctx.x_f)
    if isinstance(mod, nn.modules.dropout._DropoutNd) and mod.training and mod.p > 0:
        diag.add(
            "dropout_random",
            f"dropout (p={mod.p:g}) in training mode: each framework draws its own random mask",
            "likely",
            "a twin that computes the right function still differs here, by the masks",
            "compare in eval mode (parity.compare(..., mode='eval'), explain(..., mode="
            "'eval')), or with p=0 on both sides",
        )
        return
    if isinstance(mod, nn.GELU):
        other = "tanh" if mod.approximate == "none" else "none"
        diag.test(
            "gelu_approximation",
            f"GELU approximation: the twin uses approximate={other!r}, torch {mod.approximate!r}",
            F.gelu(x, approximate=other),
            ctx.y_f,
            base,
            "jax.nn.gelu(x, approximate=False) for torch's nn.GELU() (jax defaults to tanh)"
            if other == "tanh"
            else "jax.nn.gelu(x, approximate=True) for nn.GELU(approximate='tanh')",
        )
        if diag.causes:
            return
    _elementwise_library(diag, ctx.x_t, ctx.y_t, ctx.x_f, ctx.y_f, base, where=ctx.row.label)


def _elementwise_library(
    diag: _Diagnosis,
    x_t: np.ndarray | None,
    y_t: np.ndarray | None,
    x_f: np.ndarray | None,
    y_f: np.ndarray | None,
    base: LeafDiff | None,
    where: str,
) -> bool:
    if x_t is None or y_t is None or x_f is None or y_f is None:
        return False
    if not (x_t.shape == y_t.shape == x_f.shape == y_f.shape):
        return False
    tol = diag.ctx.tol

    def which(x: np.ndarray, y: np.ndarray) -> str | None:
        xt = _t64(x)
        for fname, fn in _ELEMENTWISE.items():
            if leaf_diff(y, _np(fn(xt)), rtol=tol.rtol, atol=tol.atol).ok:
                return fname
        return None

    f_t, f_f = which(x_t, y_t), which(x_f, y_f)
    if f_t is None or f_f is None or f_t == f_f:
        return False
    gelu = f_t.startswith("gelu") and f_f.startswith("gelu")
    fix = (
        "jax.nn.gelu(x, approximate=False) matches torch's default nn.GELU()"
        if gelu and "tanh" in f_f
        else f"apply {f_t} where the twin applies {f_f}"
    )
    diag.add(
        "gelu_approximation" if gelu else "activation",
        f"{where}: the twin applies {f_f}, torch applies {f_t}",
        "confirmed",
        f"{f_f} of the twin's input reproduces its output and {f_t} of torch's reproduces "
        "torch's, each within tolerance",
        fix,
    )
    return True


def _diagnose_glue(
    diag: _Diagnosis, prev: LayerRow | None, prev_vals: tuple[Any, Any] | None
) -> None:
    """The input differs while the layer before agrees: test the code between them."""
    ctx = diag.ctx
    x_t, x_f = ctx.x_t, ctx.x_f
    where = f"between {prev.label} and {ctx.row.label}" if prev else f"before {ctx.row.label}"
    if x_t is None or x_f is None:
        return
    base = (
        leaf_diff(x_f, x_t, rtol=ctx.tol.rtol, atol=ctx.tol.atol)
        if x_f.shape == x_t.shape
        else None
    )
    if prev_vals is not None and _elementwise_library(
        diag, prev_vals[0], x_t, prev_vals[1], x_f, base, where=f"the code {where}"
    ):
        return
    if x_t.shape == x_f.shape and x_t.ndim == 2 and x_t.shape[1] > 1:
        n, feat = x_t.shape
        cs = list(dict.fromkeys([*ctx.channel_hints, *_divisors(feat)]))
        for c in cs:
            if c in (1, feat) or feat % c:
                continue
            hw = feat // c
            for h in sorted(_divisors(hw), key=lambda d: abs(d - math.sqrt(hw))):
                w = feat // c // h
                if h * w == 1:
                    continue
                perm = x_t.reshape(n, c, h, w).transpose(0, 2, 3, 1).reshape(n, feat)
                if leaf_diff(x_f, perm, rtol=ctx.tol.rtol, atol=ctx.tol.atol).ok:
                    diag.add(
                        "flatten_nhwc",
                        f"flatten in NHWC order {where}: the twin flattens (H, W, C), torch "
                        "(C, H, W)",
                        "confirmed",
                        f"the twin's input to {ctx.row.label} is torch's reordered from "
                        f"(C, H, W) = ({c}, {h}, {w}) to (H, W, C) order, exactly (to "
                        "tolerance)",
                        "transpose NHWC -> NCHW before the reshape: "
                        "x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)",
                    )
                    return
        if np.allclose(
            np.sort(x_f, axis=1), np.sort(x_t, axis=1), rtol=ctx.tol.rtol * 10, atol=ctx.tol.atol
        ):
            diag.add(
                "layout_permutation",
                f"the same values in a different order {where}",
                "likely",
                "each row of the twin's input is a permutation of torch's",
                "a reshape/transpose/flatten in another axis order (NHWC vs NCHW?)",
            )
            return
    diag.add(
        "glue",
        f"the twin's code {where} differs from torch's forward",
        "possible",
        f"{ctx.row.label}'s input differs while "
        + (f"{prev.label}'s output agrees" if prev else "the model input agrees")
        + ": look at the activation, pooling, reshape or residual there",
        "compare the two forward() bodies line by line between these layers",
    )


_SUSPECTS: dict[type, list[tuple[str, str, str]]] = {
    nn.Linear: [
        ("linear_kernel_untransposed", "Linear kernel not transposed", "kernel = weight.T"),
        (
            "tf32",
            "TF32 on a GPU",
            "jax_default_matmul_precision='highest'; torch allow_tf32=False",
        ),
    ],
    nn.modules.conv._ConvNd: [
        ("conv_padding", "conv padding 'SAME' (nnx default) against torch's 0", "explicit padding"),
        ("weight_layout", "conv kernel layout [O, I, kH, kW] -> [kH, kW, I, O]", "jaxnets.convert"),
        ("tf32", "TF32 on a GPU (cuDNN allow_tf32 defaults to True)", "pin float32"),
    ],
    nn.modules.batchnorm._BatchNorm: [
        ("bn_momentum", "momentum m where Flax wants 1 - m", "jaxnets.nn.BatchNorm1d/2d"),
        ("bn_biased_running_var", "biased running variance", "jaxnets.nn.BatchNorm1d/2d"),
        ("bn_mode", "train/eval mode differs", "model.train()/model.eval() on both"),
    ],
    nn.LayerNorm: [
        ("layernorm_eps", "LayerNorm eps (Flax 1e-6, torch 1e-5)", "epsilon=1e-5"),
    ],
    nn.GELU: [
        (
            "gelu_approximation",
            "GELU: jax.nn.gelu defaults to tanh, torch to erf",
            "approximate=False",
        ),
    ],
}


def _add_suspects(diag: _Diagnosis) -> None:
    """The usual suspects of the layer type not tested, when nothing is confirmed."""
    if any(c.status == "confirmed" for c in diag.causes):
        return
    for cls, items in _SUSPECTS.items():
        if isinstance(diag.ctx.module, cls):
            for key, title, fix in items:
                if key == "tf32" and not diag.ctx.env_tf32:
                    continue
                if key not in diag.ruled_keys and not any(c.key == key for c in diag.causes):
                    diag.add(key, title, "possible", "", fix)


def _diagnose_layer(diag: _Diagnosis) -> None:
    ctx = diag.ctx
    base = _baseline(ctx)
    if ctx.row.error is not None:
        diag.add(
            "twin_raised",
            f"the twin raised in {ctx.row.label}",
            "confirmed",
            ctx.row.error,
            "its input shape or dtype is not what this layer expects: see the rows above",
        )
    _check_weights(diag)
    if ctx.y_f is not None and ctx.y_t is not None and ctx.y_f.dtype != ctx.y_t.dtype:
        diag.add(
            "dtype",
            f"output dtype: twin {ctx.y_f.dtype}, torch {ctx.y_t.dtype}",
            "confirmed",
            "",
            "build the twin with the torch model's dtype (param_dtype=..., and float64 needs "
            "jax_enable_x64)",
        )
    mod = ctx.module
    if isinstance(mod, nn.Linear):
        _diagnose_linear(diag, base)
    elif isinstance(mod, nn.modules.conv._ConvNd):
        _diagnose_conv(diag, base)
    elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
        _diagnose_bn_forward(diag, base)
    elif isinstance(mod, nn.LayerNorm):
        _diagnose_layernorm(diag, base)
    elif not any(True for _ in mod.children()):
        _diagnose_elementwise(diag, base)
    _add_suspects(diag)


# --------------------------------------------------------------------------- explain


def _environment(torch_model: nn.Module, dtype: np.dtype) -> list[str]:
    notes = []
    if dtype != np.float32:
        return notes
    if backend_name() == "gpu":
        prec = jax.config.jax_default_matmul_precision
        if prec not in ("highest", "float32", "HIGHEST"):
            notes.append(
                f"JAX on GPU with jax_default_matmul_precision={prec!r}: float32 matmuls and "
                "convolutions run in TF32"
            )
    on_cuda = any(p.is_cuda for p in torch_model.parameters())
    if on_cuda and (torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32):
        notes.append(
            "torch on CUDA with allow_tf32 on (cuda.matmul="
            f"{torch.backends.cuda.matmul.allow_tf32}, cudnn={torch.backends.cudnn.allow_tf32})"
        )
    return notes


def _safe_state_dict(model: nnx.Module) -> dict[str, np.ndarray]:
    try:
        return convert.state_dict(model)
    except (TypeError, ValueError):
        return {}


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
    image = layout == "image"
    if copy_weights:
        torch_to_flax(torch_model, flax_model)
    if mode is not None:
        torch_model.train(mode == "train")
        flax_model.train() if mode == "train" else flax_model.eval()
    if loss is not None and targets is None:
        raise ValueError("explain(loss=...) needs targets; pass loss=None to skip the loss")
    if isinstance(loss, str):
        t_loss, f_loss = TORCH_LOSSES[loss], FLAX_LOSSES[loss]
    elif loss is not None:
        t_loss, f_loss = loss
    else:
        t_loss = f_loss = None

    report = ExplainReport(
        model=name or type(torch_model).__name__,
        dtype=dtype.name,
        backend=backend_name(),
        tolerance=tol,
        rows=[],
        layout=layout,
        environment=_environment(torch_model, dtype),
    )
    x_np = np.array(inputs, copy=True, order="C")
    x_f = jnp.asarray(np.transpose(x_np, (0, 2, 3, 1)) if image else x_np)
    y_f = None if targets is None else jnp.asarray(targets)
    buffers_before = {k: v.detach().clone() for k, v in torch_model.named_buffers()}

    # --- the twin: one jitted forward + backward with every submodule recorded.
    flax_in: dict[str, Any] = {}
    flax_out: dict[str, Any] = {}
    flax_grads: dict[str, Any] = {}
    flax_types: dict[str, str] = {}
    param_grads: dict[str, np.ndarray] = {}
    flax_loss_value = None
    error_at = None
    try:
        tr = intercept.trace(
            flax_model,
            x_f,
            loss_fn=None if f_loss is None else (lambda out: f_loss(out, y_f)),
            jit=jit,
        )
        flax_in, flax_out, flax_grads, flax_types = tr.inputs, tr.outputs, tr.output_grads, tr.types
        flax_loss_value = tr.loss
        if tr.param_grads is not None:
            try:
                param_grads = convert.state_to_torch(flax_model, tr.param_grads)
            except (TypeError, ValueError):
                param_grads = {}
    except Exception:
        records, error_at, exc = intercept.capture_until_error(flax_model, x_f)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        report.flax_error = f"{type(exc).__name__}: {first_line}"[:400]
        report.error_at = error_at
        flax_in = {k: r.input for k, r in records.items()}
        flax_out = {k: r.output for k, r in records.items()}
        flax_types = {k: r.type_name for k, r in records.items()}

    # --- torch: forward + backward with hooks.
    x_t = torch.from_numpy(x_np)
    t_loss_fn = None
    if t_loss is not None and report.flax_error is None:
        y_t = torch.from_numpy(np.ascontiguousarray(targets))
        t_loss_fn = lambda out: t_loss(out, y_t)  # noqa: E731
    t_records, _, t_loss_value = _torch_trace(torch_model, x_t, t_loss_fn)
    if t_loss_value is not None and flax_loss_value is not None:
        report.loss = leaf_diff(
            np.asarray(flax_loss_value), _np(t_loss_value), rtol=tol.rtol, atol=tol.atol
        )

    params_t = {k: _np(v) for k, v in torch_model.named_parameters()}
    buffers_after_t = {k: _np(v) for k, v in torch_model.named_buffers()}
    flax_sd = _safe_state_dict(flax_model)
    params_f = {k: v for k, v in flax_sd.items() if k in params_t}
    buffers_after_f = {k: v for k, v in flax_sd.items() if k in buffers_after_t}
    for k, t in params_t.items():
        f = params_f.get(k)
        if f is None or f.shape != t.shape or not leaf_diff(f, t, rtol=tol.rtol, atol=tol.atol).ok:
            report.param_mismatches.append(k)

    # --- rows, with the twin's values in torch layout.
    t_names = {r.name for r in t_records}
    report.flax_only = [  # modules only: the twin's own helper methods are no news
        n for n in flax_types if n not in t_names and not flax_types[n].endswith("()")
    ]
    vals: list[tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]] = []
    for i, tr_ in enumerate(t_records):
        fo = flax_out.get(tr_.name)
        fi = flax_in.get(tr_.name)
        fo = np.asarray(fo) if _is_array(fo) else None
        fi = np.asarray(fi) if _is_array(fi) else None
        tshape = None if tr_.output is None else tuple(tr_.output.shape)
        if fo is not None:
            fo = _to_torch_layout(fo, tshape, image)
        if fi is not None and tr_.input is not None:
            fi = _to_torch_layout(fi, tuple(tr_.input.shape), image)
        fg = flax_grads.get(tr_.name)
        fg = _to_torch_layout(np.asarray(fg), tshape, image) if _is_array(fg) else None
        known = tr_.name in flax_types
        row = LayerRow(
            index=i + 1,
            name=tr_.name,
            torch_type=tr_.type_name,
            flax_type=flax_types.get(tr_.name) if known else None,
            torch_shape=tshape,
            flax_shape=None if fo is None else tuple(fo.shape),
            torch_in_shape=None if tr_.input is None else tuple(tr_.input.shape),
            flax_in_shape=None if fi is None else tuple(fi.shape),
        )
        if tr_.name == error_at:
            row.error = report.flax_error
            if fi is not None and tr_.input is not None:
                row.note = f"twin input {tuple(fi.shape)}, torch input {tuple(tr_.input.shape)}"
        report.rows.append(row)
        vals.append((fi, fo, fg))

    # torch modules that are plain functions in the twin: infer by dataflow.
    for i, (tr_, row) in enumerate(zip(t_records, report.rows, strict=True)):
        if row.flax_type is not None or tr_.input is None or tr_.output is None:
            continue
        if any(True for _ in tr_.module.children()):
            continue
        src = next(
            (
                j
                for j in range(i - 1, -1, -1)
                if vals[j][1] is not None
                and t_records[j].output is not None
                and t_records[j].output.shape == tr_.input.shape
                and np.array_equal(t_records[j].output, tr_.input)
            ),
            None,
        )
        dst = next(
            (
                j
                for j in range(i + 1, len(t_records))
                if vals[j][0] is not None
                and t_records[j].input is not None
                and t_records[j].input.shape == tr_.output.shape
                and np.array_equal(t_records[j].input, tr_.output)
            ),
            None,
        )
        if src is None or dst is None:
            if report.flax_error is None:
                report.torch_only.append(tr_.name)
            continue
        vals[i] = (vals[src][1], vals[dst][0], None)
        row.flax_type = "(inferred)"
        row.flax_shape = tuple(vals[dst][0].shape)
        row.flax_in_shape = tuple(vals[src][1].shape)

    # --- errors per row.
    t_grads: dict[str, np.ndarray] = {}
    for tr_ in t_records:
        if tr_.tensor is not None and tr_.tensor.grad is not None:
            t_grads[tr_.name] = _np(tr_.tensor.grad)
    for tr_, row, (fi, fo, fg) in zip(t_records, report.rows, vals, strict=True):
        if fi is not None and tr_.input is not None and fi.shape == tr_.input.shape:
            row.input = leaf_diff(fi, tr_.input, rtol=tol.rtol, atol=tol.atol)
        if fo is not None and tr_.output is not None and fo.shape == tr_.output.shape:
            row.output = leaf_diff(fo, tr_.output, rtol=tol.rtol, atol=tol.atol)
        elif row.shape_mismatch:
            row.note = row.note or f"output shape: twin {row.flax_shape}, torch {row.torch_shape}"
        if fg is not None and tr_.name in t_grads and fg.shape == t_grads[tr_.name].shape:
            row.output_grad = leaf_diff(fg, t_grads[tr_.name], rtol=tol.rtol, atol=tol.atol)
        prefix = f"{tr_.name}." if tr_.name else ""
        worst: tuple[str, LeafDiff] | None = None
        for pname, p in tr_.module.named_parameters(recurse=False):
            key = prefix + pname
            if p.grad is None or key not in param_grads:
                continue
            d = leaf_diff(param_grads[key], _np(p.grad), rtol=tol.rtol, atol=tol.atol)
            if worst is None or (not d.ok, d.tolerance_used) > (
                not worst[1].ok,
                worst[1].tolerance_used,
            ):
                worst = (key, d)
        row.param_grad = worst
        if report.flax_error is None and "#" not in tr_.name:
            for bname, _ in tr_.module.named_buffers(recurse=False):
                key = prefix + bname
                if key in buffers_after_f:
                    row.buffers[key] = leaf_diff(
                        buffers_after_f[key], buffers_after_t[key], rtol=tol.rtol, atol=tol.atol
                    )
        # local check: the torch layer on the twin's input
        if (
            tr_.name
            and fi is not None
            and fo is not None
            and tr_.input is not None
            and fi.shape == tr_.input.shape
            and tr_.output is not None
            and fo.shape == tr_.output.shape
        ):
            local_mod = copy.deepcopy(tr_.module)
            for h in list(local_mod._forward_hooks):
                local_mod._forward_hooks.pop(h)
            with torch.no_grad():
                xin = torch.from_numpy(np.array(fi, copy=True)).to(tr_.tensor.dtype)
                try:
                    y_local = local_mod(xin)
                except Exception:  # a module that needs more than one input
                    y_local = None
            if isinstance(y_local, torch.Tensor):
                row.local = leaf_diff(fo, _np(y_local), rtol=tol.rtol, atol=tol.atol)

    # --- containers (the model itself, a Sequential) inherit their children's divergence.
    rows = report.rows
    for i, (tr_, row) in enumerate(zip(t_records, rows, strict=True)):
        if any(True for _ in tr_.module.children()):
            prefix = f"{tr_.name.split('#')[0]}." if tr_.name else ""
            row.inherits = any(
                rows[j].forward_bad for j in range(i) if rows[j].name.startswith(prefix)
            )

    # --- the first divergence.
    fwd = [i for i, r in enumerate(rows) if r.forward_bad]
    buf = [i for i, r in enumerate(rows) if r.buffers_bad]
    grd = [i for i, r in enumerate(rows) if r.grad_bad]
    if fwd:
        report.first, report.first_kind = fwd[0], "forward"
    elif error_at is not None or report.flax_error is not None:
        report.first_kind = "forward"
    elif buf:
        report.first, report.first_kind = buf[0], "buffers"
    elif grd:
        out_grad_bad = [
            i for i in grd if rows[i].output_grad is not None and not rows[i].output_grad.ok
        ]
        report.first = out_grad_bad[-1] if out_grad_bad else grd[0]
        report.first_kind = "backward"
    elif report.loss is not None and not report.loss.ok:
        report.first_kind = "loss"
    elif report.param_mismatches:
        report.first_kind = "parameters"

    # --- diagnose the first divergence and every layer that fails on its own input.
    channel_hints = [
        r.torch_shape[1] for r in rows if r.torch_shape is not None and len(r.torch_shape) == 4
    ]
    to_diagnose = set() if report.first is None else {report.first}
    to_diagnose |= {i for i, r in enumerate(rows) if r.layer_bad}
    if report.first_kind == "buffers":
        to_diagnose |= set(buf)
    for i in sorted(to_diagnose):
        tr_, row, (fi, fo, _) = t_records[i], rows[i], vals[i]
        ctx = _Ctx(
            row=row,
            module=tr_.module,
            flax_module=_flax_module(flax_model, tr_.name),
            x_t=tr_.input,
            x_f=fi,
            y_t=tr_.output,
            y_f=fo,
            tol=tol,
            dtype=dtype,
            env_tf32=report.environment,
            buffers_before=buffers_before,
            buffers_after_t=buffers_after_t,
            buffers_after_f=buffers_after_f,
            params_t=params_t,
            params_f=params_f,
            channel_hints=channel_hints,
        )
        diag = _Diagnosis(ctx)
        if row.input_bad and not row.layer_bad:
            prev_i = next(
                (
                    j
                    for j in range(i - 1, -1, -1)
                    if rows[j].output is not None and rows[j].output.ok
                ),
                None,
            )
            prev = None if prev_i is None else rows[prev_i]
            prev_vals = None
            if prev_i is not None:
                prev_vals = (t_records[prev_i].output, vals[prev_i][1])
            _diagnose_glue(diag, prev, prev_vals)
        elif row.layer_bad or (report.first == i and report.first_kind == "forward"):
            _diagnose_layer(diag)
        if row.buffers_bad and isinstance(tr_.module, nn.modules.batchnorm._BatchNorm):
            _diagnose_bn_buffers(diag)
        if report.first == i and report.first_kind == "backward" and not diag.causes:
            diag.add(
                "backward",
                f"the gradient first differs at {row.label}'s output, so the backward pass of "
                "what follows it differs",
                "possible",
                "the forward pass agrees everywhere",
                "look for jax.lax.stop_gradient, custom_vjp, integer casts or jnp.where with a "
                "non-finite branch after this layer",
            )
        row.causes = diag.ranked()
        row.ruled_out = diag.ruled_out
    return report


def _flax_module(model: nnx.Module, name: str) -> nnx.Module | None:
    base = name.split("#")[0]
    for path, m in nnx.iter_modules(model):
        if intercept.module_name(path) == base:
            return m
    return None


# --------------------------------------------------------------------------- report text


def _used(d: LeafDiff | None) -> str:
    if d is None:
        return "-"
    u = d.tolerance_used
    if not math.isfinite(u):
        return "inf"
    return f"{u:.2f}" if u < 100 else f"{u:.1e}"


def _sci(v: float | None) -> str:
    if v is None:
        return "-"
    return "inf" if not math.isfinite(v) else f"{v:.1e}"


def _format(r: ExplainReport) -> str:
    t = r.tolerance
    verdict = "OK" if r.ok else "FAILED"
    lines = [
        f"explain {r.model} [{r.dtype}, {r.backend}]: {verdict}  "
        f"(pass: max|twin - torch| <= {t.atol:g} + {t.rtol:g}*max|torch|)",
    ]
    first = r.first_row
    if first is not None:
        what = {
            "forward": "forward",
            "buffers": "running statistics after the pass",
            "backward": "backward (gradients)",
        }[r.first_kind or "forward"]
        lines.append(f"first divergence: {first.label} ({first.torch_type}), in the {what}")
    if r.flax_error is not None:
        where = "" if r.error_at is None else f" in {r.error_at or '(model)'}"
        lines.append(
            f"the twin raised{where}: {r.flax_error} (layers after it were not reached; no "
            "loss or gradients)"
        )
    elif r.first_kind == "loss":
        lines.append("every layer agrees but the loss differs: the loss function is the suspect")
    elif r.first_kind == "parameters":
        lines.append(f"activations agree but parameters differ: {', '.join(r.param_mismatches)}")
    lines.append(
        "in/out/dL/dout/dL/dparam: fraction of the tolerance used (fails above 1)"
        + (
            "; arrays in torch layout (the twin's NHWC moved to NCHW)"
            if r.layout == "image"
            else ""
        )
    )
    head = (
        f"{'#':>3}  {'layer':<14} {'torch':<12} {'twin':<12} {'shape (torch)':<18} "
        f"{'in':>7} {'out':>7} {'max abs':>8} {'max rel':>8} {'dL/dout':>7} "
        f"{'dL/dparam':>9}  status"
    )
    lines += [head, "-" * len(head)]
    for i, row in enumerate(r.rows):
        shape = "-" if row.torch_shape is None else str(row.torch_shape).replace(" ", "")
        mark = "  <-- first divergence" if r.first == i else ""
        lines.append(
            f"{row.index:>3}  {row.label:<14.14} {row.torch_type:<12.12} "
            f"{(row.flax_type or '-'):<12.12} {shape:<18.18} {_used(row.input):>7} "
            f"{_used(row.output):>7} {_sci(row.output.max_abs if row.output else None):>8} "
            f"{_sci(row.output.max_rel if row.output else None):>8} {_used(row.output_grad):>7} "
            f"{_used(row.param_grad[1] if row.param_grad else None):>9}  {row.status}{mark}"
        )
        if row.note:
            lines.append(f"{'':>5}{row.note}")
        for k, d in row.buffers.items():
            if not d.ok:
                lines.append(
                    f"{'':>5}buffer {k}: max abs {d.max_abs:.1e}, rel {d.max_rel:.1e} "
                    f"({_used(d)} of tolerance)"
                )
    if r.loss is not None:
        lines.append(
            f"{'':>5}loss: max abs {r.loss.max_abs:.1e}, rel {r.loss.max_rel:.1e} "
            f"({_used(r.loss)} of tolerance)"
        )
    if first is not None:
        lines.append("")
        lines.append(f"why {first.label}?")
        lines.append("  " + _why(r, first))
        if first.causes:
            lines.append("  likely causes, strongest evidence first:")
            for n, c in enumerate(first.causes, 1):
                body = str(c).replace("\n", "\n     ")
                lines.append(f"  {n}. {body}")
        if first.ruled_out:
            lines.append("  ruled out: " + "; ".join(first.ruled_out))
        if r.first_kind == "forward" and any(row.grad_bad for row in r.rows[: r.first]):
            lines.append(
                "  (the GRAD rows above it are a consequence: their gradients flow back through "
                f"{first.label})"
            )
    others = [row for i, row in enumerate(r.rows) if i != r.first and row.layer_bad and row.causes]
    if others:
        lines.append("")
        lines.append("also wrong on their own input (independent of the first divergence):")
        for row in others:
            lines.append(f"  {row.label}: {row.causes[0].title} [{row.causes[0].status}]")
    if r.torch_only or r.flax_only:
        lines.append("")
        if r.torch_only:
            lines.append(f"not compared, torch only: {', '.join(r.torch_only)}")
        if r.flax_only:
            lines.append(
                f"not compared, twin only: {', '.join(n or '(model)' for n in r.flax_only)}"
            )
    if r.environment:
        lines.append("")
        lines.extend(f"environment: {e}" for e in r.environment)
    return "\n".join(lines)


def _why(r: ExplainReport, row: LayerRow) -> str:
    if r.first_kind == "buffers":
        bad = [k for k, d in row.buffers.items() if not d.ok]
        return (
            f"outputs and gradients agree, but after one training pass the twin's "
            f"{', '.join(bad)} differ from torch's: the running-statistics update differs"
        )
    if r.first_kind == "backward":
        return (
            "the forward pass agrees everywhere; going backward from the loss, the gradient "
            f"with respect to {row.label}'s output is the first to differ"
        )
    if row.error is not None:
        return f"the twin raised here: {row.error}" + (f" ({row.note})" if row.note else "")
    if row.shape_mismatch:
        return (
            f"the output shapes differ: twin {row.flax_shape}, torch {row.torch_shape} "
            "(layer configuration: padding, stride, kernel size)"
        )
    if row.input_bad and not row.layer_bad:
        return (
            f"{row.label}'s input already differs (used {_used(row.input)} of the tolerance) "
            "while the layers before it agree, and torch's layer run on the twin's input gives "
            "the twin's output: the fault is in the code BEFORE this layer, not in it"
        )
    lo, out = row.local, row.output
    return (
        f"the input agrees but the output does not (max abs "
        f"{_sci(out.max_abs if out else None)}, rel {_sci(out.max_rel if out else None)})"
        + (
            f"; torch's layer on the twin's input differs from the twin by "
            f"{lo.max_rel:.1e} rel: the fault is in this layer"
            if lo is not None
            else ""
        )
    )


# --------------------------------------------------------------------------- registry


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
