"""Diagnosis: test hypotheses against the numbers, with a registry of diagnoses by layer type.

The third stage of :func:`torchref.explain.explain`. For the first divergence, and for every
row that fails on its own input, it names causes (:class:`~torchref.explain.report.Cause`):

* a row whose input differs while the layer before agrees: the code between them (an
  activation, a flatten in NHWC order, a permutation) is tested here;
* a layer that computes differently: generic checks first (the twin raised, its weights are
  not torch's or are torch's permuted or reshaped, the output dtype differs), then the
  diagnoses registered for the torch layer's type, then that type's usual suspects if nothing
  was confirmed;
* a layer whose buffers differ after the pass: the diagnoses registered for its type with
  ``kind='buffers'``;
* a first divergence in the backward pass: the usual places gradients go astray.

A diagnosis is a function of one :class:`Diagnosis` (the row's :class:`Context` and the
causes found so far) that recomputes the torch layer under a fault and calls
:meth:`Diagnosis.test`, or compares settings and calls :meth:`Diagnosis.add`. Teach explain a
layer of your own with :func:`register_diagnosis`, keyed like
:func:`jaxnets.convert.register_rule` by layer type, here the TORCH type (the spec)::

    def diagnose_scale(diag: Diagnosis) -> None:
        ctx = diag.ctx  # ctx.module: the torch layer; ctx.x_f: the twin's input, torch layout
        if ctx.x_f is not None:
            diag.test("scale_squared", "the twin squares the scale",
                      as_float64(ctx.x_f) * ctx.module.scale**2, fix="multiply by scale once")

    register_diagnosis(Scale, diagnose_scale)

The built-in diagnoses (:mod:`torchref.explain.layers`) are written the same way.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from flax import nnx

from jaxnets.debug import intercept
from jaxnets.testing import LeafDiff, leaf_diff
from jaxnets.tolerances import Tolerance
from torchref.explain.align import Alignment
from torchref.explain.arrays import as_float64, as_numpy
from torchref.explain.capture import Capture
from torchref.explain.report import STATUS_RANK, Cause, LayerRow, Status

__all__ = [
    "DIAGNOSES",
    "Context",
    "Diagnosis",
    "DiagnosisFn",
    "Kind",
    "diagnose",
    "diagnoses_for",
    "elementwise_mismatch",
    "register_diagnosis",
]

#: when a diagnosis runs: ``'forward'`` when the layer computes differently (or raised, or
#: is the first divergence of the forward pass); ``'buffers'`` when its buffers (running
#: statistics) differ after the pass
Kind = Literal["forward", "buffers"]
_KINDS = ("forward", "buffers")


@dataclass
class Context:
    """What a diagnosis may look at for one row. Arrays are numpy, in torch layout.

    Attributes:
      row: the row's :class:`~torchref.explain.report.LayerRow` (errors, shapes, name).
      module: the torch module of the row; flax_module: the twin's module of the same path
        name, or None (a plain function in the twin).
      x_t, x_f: torch's and the twin's input; y_t, y_f: their outputs (None where absent).
      tol: the tolerance of the comparison; dtype: the torch model's dtype.
      env_tf32: notes on what runs float32 matmuls in TF32 here (empty: nothing does).
      buffers_before: torch's buffers before the pass, by torch key (``'bn1.running_mean'``).
      buffers_after_t, buffers_after_f: both sides' buffers after the pass, by torch key.
      params_t, params_f: both sides' parameters, by torch key, in torch layout.
      channel_hints: the channel counts of earlier 4-D outputs (for flatten orders).
    """

    row: LayerRow
    module: nn.Module
    flax_module: nnx.Module | None
    x_t: np.ndarray | None
    x_f: np.ndarray | None
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
    channel_hints: list[int] = field(default_factory=list)


class Diagnosis:
    """Collects the causes and ruled-out hypotheses of one row; what a diagnosis receives.

    A diagnosis reads ``diag.ctx`` (:class:`Context`) and reports through :meth:`test`
    (recompute the torch layer under a fault: confirmed, likely or ruled out by the numbers),
    :meth:`add` (a finding of its own, e.g. settings that differ) and :meth:`suspect` (a
    usual suspect of the layer type, listed as ``possible`` only if nothing is confirmed).
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.causes: list[Cause] = []
        self.ruled_out: list[str] = []
        self.ruled_keys: set[str] = set()
        self._suspects: list[tuple[str, str, str]] = []

    @functools.cached_property
    def baseline(self) -> LeafDiff | None:
        """The twin's output against torch's (None when either is absent or shapes differ):
        the error a hypothesis must remove most of to count as ``likely``."""
        ctx = self.ctx
        if ctx.y_f is None or ctx.y_t is None or ctx.y_f.shape != ctx.y_t.shape:
            return None
        return leaf_diff(ctx.y_f, ctx.y_t, rtol=ctx.tol.rtol, atol=ctx.tol.atol)

    def add(self, key: str, title: str, status: Status, evidence: str = "", fix: str = "") -> None:
        """Record a cause; a weaker finding with the same ``key`` is replaced (its evidence
        kept next to the new one), a stronger one is kept."""
        old = next((c for c in self.causes if c.key == key), None)
        if old is not None and STATUS_RANK[old.status] <= STATUS_RANK[status]:
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
        fix: str,
    ) -> bool:
        """Does ``predicted`` (the layer recomputed under a fault, torch layout) reproduce the
        twin's output? Within tolerance: ``confirmed``; removing at least 90% of the error
        (:attr:`baseline`): ``likely``; else ruled out. Returns whether it was kept."""
        observed = self.ctx.y_f
        if predicted is None or observed is None:
            return False
        if isinstance(predicted, torch.Tensor):
            predicted = as_numpy(predicted)
        if tuple(predicted.shape) != tuple(observed.shape):
            self.ruled_out.append(f"{title} (shape {tuple(predicted.shape)})")
            self.ruled_keys.add(key)
            return False
        tol = self.ctx.tol
        baseline = self.baseline
        d = leaf_diff(observed, predicted, rtol=tol.rtol, atol=tol.atol)
        if d.ok:
            self.add(
                key,
                title,
                "confirmed",
                f"recomputing under this fault reproduces the twin's output to max abs "
                f"{d.max_abs:.1e} (rel {d.max_rel:.1e}, within tolerance)",
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

    def suspect(self, key: str, title: str, fix: str) -> None:
        """A usual suspect of this layer type: listed as ``possible`` after the diagnoses of
        the row have run, unless a cause is confirmed, ``key`` was ruled out or found."""
        self._suspects.append((key, title, fix))

    def _add_suspects(self) -> None:
        suspects, self._suspects = self._suspects, []
        if any(c.status == "confirmed" for c in self.causes):
            return
        for key, title, fix in suspects:
            if key not in self.ruled_keys and not any(c.key == key for c in self.causes):
                self.add(key, title, "possible", "", fix)

    def ranked(self) -> list[Cause]:
        """The causes, strongest status first (in the order found within a status)."""
        return sorted(self.causes, key=lambda c: STATUS_RANK[c.status])


# --------------------------------------------------------------------------- the registry

DiagnosisFn = Callable[[Diagnosis], None]

#: (torch layer type, kind) -> its diagnoses, run in registration order. Looked up through
#: the MRO, as convert.RULES: a subclass uses its base's diagnoses of a kind unless it
#: registers its own. ``nn.Module`` holds the fallback of every other leaf layer (which
#: elementwise function does each side apply?).
DIAGNOSES: dict[tuple[type, Kind], tuple[DiagnosisFn, ...]] = {}


def register_diagnosis(layer_type: type, fn: DiagnosisFn, *, kind: Kind = "forward") -> None:
    """Teach explain to diagnose a layer type of your own (or add to a built-in one's).

    ``layer_type``: the torch module class (``nn.Module`` subclass); rows of it and of its
    subclasses that register nothing of that kind run ``fn(diag)`` with a
    :class:`Diagnosis`. ``kind='forward'`` (default) runs when the layer computes differently,
    ``'buffers'`` when its buffers differ after the pass. Registering the same function twice
    is a no-op.
    """
    if not isinstance(layer_type, type):
        raise TypeError(
            f"register_diagnosis takes the layer's class, got {type(layer_type).__name__} "
            f"{layer_type!r}; pass type(layer) or the class itself, e.g. nn.Linear"
        )
    if issubclass(layer_type, nnx.Module):
        raise TypeError(
            f"register_diagnosis takes the TORCH layer type (the spec), got the Flax module "
            f"{layer_type.__name__}; register the torch class it twins and read the twin's "
            f"module as diag.ctx.flax_module (Flax layer types are keyed in "
            f"jaxnets.convert.register_rule)"
        )
    if not issubclass(layer_type, nn.Module):
        raise TypeError(
            f"register_diagnosis takes a torch.nn.Module subclass, got {layer_type.__name__}"
        )
    if not callable(fn):
        raise TypeError(
            f"fn must be a function taking one Diagnosis, got {type(fn).__name__} {fn!r}"
        )
    try:
        inspect.signature(fn).bind(None)
    except TypeError as exc:
        name = getattr(fn, "__qualname__", repr(fn))
        raise TypeError(
            f"fn {name} cannot be called with one argument ({exc}); a diagnosis is "
            f"def fn(diag: Diagnosis) -> None"
        ) from None
    except ValueError:  # no signature to read (some builtins): trust it
        pass
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    registered = DIAGNOSES.get((layer_type, kind), ())
    if fn not in registered:
        DIAGNOSES[(layer_type, kind)] = (*registered, fn)


def diagnoses_for(layer_type: type, kind: Kind = "forward") -> tuple[DiagnosisFn, ...]:
    """The diagnoses a row of torch ``layer_type`` runs for ``kind``: those of the first
    class in its MRO that has any (empty when none does)."""
    for cls in layer_type.__mro__:
        if (cls, kind) in DIAGNOSES:
            return DIAGNOSES[(cls, kind)]
    return ()


def _run(diag: Diagnosis, kind: Kind) -> None:
    for fn in diagnoses_for(type(diag.ctx.module), kind):
        try:
            fn(diag)
        except Exception as exc:
            name = getattr(fn, "__qualname__", repr(fn))
            exc.add_note(f"in the {kind} diagnosis {name} of {diag.ctx.row.label}")
            raise
    diag._add_suspects()


# --------------------------------------------------------------------------- generic checks


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


def _check_weights(diag: Diagnosis) -> None:
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


def elementwise_mismatch(
    diag: Diagnosis,
    x_t: np.ndarray | None,
    y_t: np.ndarray | None,
    x_f: np.ndarray | None,
    y_f: np.ndarray | None,
    where: str,
) -> bool:
    """Does each side apply a different elementwise function (``_ELEMENTWISE``) between its
    input ``x`` and output ``y`` (all of one shape)? Then a confirmed cause names both
    (``where`` says where, for the title) and this returns True."""
    if x_t is None or y_t is None or x_f is None or y_f is None:
        return False
    if not (x_t.shape == y_t.shape == x_f.shape == y_f.shape):
        return False
    tol = diag.ctx.tol

    def which(x: np.ndarray, y: np.ndarray) -> str | None:
        xt = as_float64(x)
        for fname, fn in _ELEMENTWISE.items():
            if leaf_diff(y, as_numpy(fn(xt)), rtol=tol.rtol, atol=tol.atol).ok:
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
    diag: Diagnosis, prev: LayerRow | None, prev_vals: tuple[Any, Any] | None
) -> None:
    """The input differs while the layer before agrees: test the code between them."""
    ctx = diag.ctx
    x_t, x_f = ctx.x_t, ctx.x_f
    where = f"between {prev.label} and {ctx.row.label}" if prev else f"before {ctx.row.label}"
    if x_t is None or x_f is None:
        return
    if prev_vals is not None and elementwise_mismatch(
        diag, prev_vals[0], x_t, prev_vals[1], x_f, where=f"the code {where}"
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


def _diagnose_layer(diag: Diagnosis) -> None:
    """A layer that computes differently: generic checks, then its type's diagnoses."""
    ctx = diag.ctx
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
    _run(diag, "forward")


# --------------------------------------------------------------------------- the stage


def diagnose(
    al: Alignment,
    cap: Capture,
    flax_model: nnx.Module,
    *,
    tol: Tolerance,
    dtype: np.dtype,
    environment: list[str],
) -> None:
    """Fill ``causes`` and ``ruled_out`` of the first divergence and of every row that fails
    on its own input (and, when the first divergence is in the buffers, of every row whose
    buffers differ), in place."""
    rows, t_records, vals = al.rows, cap.torch_records, al.values
    channel_hints = [
        r.torch_shape[1] for r in rows if r.torch_shape is not None and len(r.torch_shape) == 4
    ]
    to_diagnose = set() if al.first is None else {al.first}
    to_diagnose |= {i for i, r in enumerate(rows) if r.layer_bad}
    if al.first_kind == "buffers":
        to_diagnose |= {i for i, r in enumerate(rows) if r.buffers_bad}
    for i in sorted(to_diagnose):
        tr_, row, (fi, fo, _) = t_records[i], rows[i], vals[i]
        ctx = Context(
            row=row,
            module=tr_.module,
            flax_module=_flax_module(flax_model, tr_.name),
            x_t=tr_.input,
            x_f=fi,
            y_t=tr_.output,
            y_f=fo,
            tol=tol,
            dtype=dtype,
            env_tf32=environment,
            buffers_before=cap.buffers_before,
            buffers_after_t=cap.buffers_after_t,
            buffers_after_f=cap.buffers_after_f,
            params_t=cap.params_t,
            params_f=cap.params_f,
            channel_hints=channel_hints,
        )
        diag = Diagnosis(ctx)
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
        elif row.layer_bad or (al.first == i and al.first_kind == "forward"):
            _diagnose_layer(diag)
        if row.buffers_bad:
            _run(diag, "buffers")
        if al.first == i and al.first_kind == "backward" and not diag.causes:
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


def _flax_module(model: nnx.Module, name: str) -> nnx.Module | None:
    base = name.split("#")[0]
    for path, m in nnx.iter_modules(model):
        if intercept.module_name(path) == base:
            return m
    return None
