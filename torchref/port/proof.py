"""Prove a generated twin: load its source, copy torch's weights, run the parity harness.

The proof is the one every hand-written twin passes (:func:`torchref.parity.compare`): the
weights go across with :func:`jaxnets.convert.load_state_dict` (through
:func:`torchref.bridge.torch_to_flax`), then outputs, a loss and every parameter's gradient
are compared in float64 and float32, in eval mode and in training mode (BatchNorm normalises
with batch statistics and updates its running buffers, compared too). Dropout is compared in
eval mode in both (each framework draws its own masks; the porting guide's rule), so in the
training-mode checks every dropout, module or ``F.dropout``, passes its input through.
When a check fails, :func:`torchref.explain.explain` gives the layer-by-layer report.
"""

from __future__ import annotations

import contextlib
import copy
import linecache
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F
from flax import nnx
from torch import nn

from torchref.parity import Comparison, ParityError, ParityReport, compare
from torchref.precision import pin_full_precision

__all__ = ["Check", "Verdict", "load_twin", "prove"]

DTYPES = ("float64", "float32")
MODES = ("eval", "train")
JIT = True


def _relative(c: Comparison, atol: float) -> float:
    """``max|a - b| / max|b|``, or 0 for a tensor that is zero within ``atol`` on both sides
    (the gradient of a bias feeding a BatchNorm: rounding noise over noise says nothing)."""
    if c.max_rel == 0 or not np.isfinite(c.max_rel):
        return c.max_rel
    scale = c.max_abs / c.max_rel
    return 0.0 if scale <= atol and c.max_abs <= atol else c.max_rel


@dataclass
class Check:
    """One run of the harness: ``dtype`` x ``mode``, and its report (or why it could not
    run)."""

    dtype: str
    mode: str
    report: ParityReport | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.report is not None and self.report.ok

    def line(self) -> str:
        head = f"  {self.dtype:<8} {self.mode:<6}"
        if self.error is not None:
            return f"{head} FAILED: {self.error}"
        r = self.report
        assert r is not None
        parts = []
        for kind in ("output", "loss", "grad", "buffer"):
            items = [c for c in r.comparisons if c.kind == kind]
            if items:
                worst = max(_relative(c, r.tolerance.atol) for c in items)
                label = f"{kind}s ({len(items)})" if kind in ("grad", "buffer") else kind
                parts.append(f"{label} {worst:.1e}")
        status = "ok" if r.ok else "FAILED"
        return f"{head} {status:<6}  worst relative error: {', '.join(parts)}"


@dataclass
class Verdict:
    """Every check of one twin; ``ok`` when all hold. ``explain`` is the layer-by-layer
    report of the first failing check."""

    name: str
    loss: str
    checks: list[Check] = field(default_factory=list)
    explain: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def worst(self, dtype: str = "float64") -> tuple[float, str]:
        """The largest relative error (``max|a - b| / max|b|`` per tensor) over the checks of
        ``dtype``, and what it was; tensors that are zero within the tolerance's ``atol``
        count as 0."""
        best = (0.0, "")
        for c in self.checks:
            if c.dtype != dtype or c.report is None:
                continue
            for comp in c.report.comparisons:
                rel = _relative(comp, c.report.tolerance.atol)
                if rel > best[0] or not best[1]:
                    best = (rel, f"{comp.kind} {comp.name} ({c.mode})")
        return best

    def __str__(self) -> str:
        n = len(self.checks)
        if self.ok:
            head = f"{self.name}: parity holds, {n} of {n} checks (loss: {self.loss})"
        else:
            bad = sum(not c.ok for c in self.checks)
            head = f"{self.name}: parity FAILED, {bad} of {n} checks (loss: {self.loss})"
        lines = [head, *(c.line() for c in self.checks)]
        rel, what = self.worst("float64")
        if what:
            lines.append(f"  float64 worst relative error {rel:.1e}: {what}")
        if self.explain:
            lines += ["", self.explain]
        return "\n".join(lines)


def load_twin(source: str, name: str) -> type[nnx.Module]:
    """The class ``name`` defined by ``source`` (executed as a module of its own)."""
    filename = f"<jaxnets port: {name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(f"_jaxnets_port_twin_{name}")
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)
    return module.__dict__[name]


def _torch_layout_output(cls: type[nnx.Module]) -> type[nnx.Module]:
    """The twin with its 4-D output moved back to NCHW, for comparing against torch's."""

    class TorchLayout(cls):  # type: ignore[misc, valid-type]
        def __call__(self, *args: Any) -> jax.Array:
            return jnp.transpose(super().__call__(*args), (0, 3, 1, 2))

    TorchLayout.__name__ = TorchLayout.__qualname__ = cls.__name__
    return TorchLayout


@contextlib.contextmanager
def _dropout_off() -> Iterator[None]:
    """torch's functional dropouts as in eval mode (modules are switched with ``.eval()``)."""
    saved = {n: getattr(F, n) for n in ("dropout", "dropout1d", "dropout2d", "dropout3d")}

    def off(fn: Any) -> Any:
        def call(x: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False):
            return fn(x, p, False, inplace)

        return call

    try:
        for n, fn in saved.items():
            setattr(F, n, off(fn))
        yield
    finally:
        for n, fn in saved.items():
            setattr(F, n, fn)


def _set_mode(torch_model: nn.Module, twin: nnx.Module, mode: str) -> None:
    torch_model.train(mode == "train")
    if mode == "train":
        twin.train()
        for m in torch_model.modules():
            if isinstance(m, nn.modules.dropout._DropoutNd):
                m.eval()
        for _, m in nnx.iter_modules(twin):
            if isinstance(m, nnx.Dropout) or "Dropout" in type(m).__name__:
                m.eval()
    else:
        twin.eval()


def _loss_and_targets(out: torch.Tensor, rng: np.random.Generator) -> tuple[str, np.ndarray | None]:
    """Cross-entropy on random classes for ``(N, K)`` float output (K >= 2), MSE to a random
    target of the output's shape for other float output, and no loss (outputs compared
    only) for integer output, which has no gradient."""
    if not out.dtype.is_floating_point:
        return "none", None
    if out.ndim == 2 and out.shape[1] >= 2:
        return "cross_entropy", rng.integers(0, out.shape[1], size=out.shape[0])
    return "mse", rng.standard_normal(tuple(out.shape))


def _targets(y: np.ndarray | None, loss: str, dtype: str) -> np.ndarray | None:
    return y.astype(dtype) if loss == "mse" and y is not None else y


def prove(
    torch_model: nn.Module,
    source: str,
    example: np.ndarray,
    *,
    name: str | None = None,
    seed: int = 0,
    dtypes: tuple[str, ...] = DTYPES,
    modes: tuple[str, ...] = MODES,
    explain_failures: bool = True,
) -> Verdict:
    """Run the parity harness on the twin ``source`` against ``torch_model``.

    ``example``: one batch in torch's layout (a 4-D float batch is fed NHWC to the twin).
    Each of ``dtypes`` x ``modes`` is one :class:`Check` on a fresh copy of both models.
    float64 runs with ``jax_enable_x64`` on (inside this call only).
    """
    name = name or type(torch_model).__name__
    pin_full_precision()
    x = np.asarray(example)
    image = x.ndim == 4 and np.issubdtype(x.dtype, np.floating)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        probe = copy.deepcopy(torch_model).eval()(torch.from_numpy(_as(x, "float32")))
    loss, y = _loss_and_targets(probe, rng)
    verdict = Verdict(name, loss)
    cls = load_twin(source, name)
    if probe.ndim == 4 and probe.dtype.is_floating_point:
        cls = _torch_layout_output(cls)
    first_failure: tuple[str, str] | None = None
    with jax.enable_x64(True):
        for dtype in dtypes:
            for mode in modes:
                check = _check(torch_model, cls, x, y, loss, dtype, mode, image, seed, name)
                verdict.checks.append(check)
                if not check.ok and first_failure is None:
                    first_failure = (dtype, mode)
        if first_failure is not None and explain_failures:
            verdict.explain = _explain(
                torch_model, cls, x, y, loss, *first_failure, image, seed, name
            )
    return verdict


def _as(x: np.ndarray, dtype: str) -> np.ndarray:
    return x.astype(dtype) if np.issubdtype(x.dtype, np.floating) else x


def _pair(
    torch_model: nn.Module, cls: type[nnx.Module], dtype: str, seed: int
) -> tuple[nn.Module, nnx.Module]:
    t = copy.deepcopy(torch_model).to(getattr(torch, dtype))
    return t, _abstract_twin(cls, getattr(jnp, dtype), seed)


def _abstract_twin(cls: type[nnx.Module], param_dtype: Any, seed: int) -> nnx.Module:
    """The twin with shapes only (``nnx.eval_shape``): its random initialisers never run,
    since torch's weights replace them anyway; :func:`jaxnets.convert.load_state_dict`, which
    the parity harness calls, fills the weights and the random streams (dropout)."""
    return nnx.eval_shape(lambda: cls(rngs=nnx.Rngs(seed), param_dtype=param_dtype))


def _check(
    torch_model: nn.Module,
    cls: type[nnx.Module],
    x: np.ndarray,
    y: np.ndarray | None,
    loss: str,
    dtype: str,
    mode: str,
    image: bool,
    seed: int,
    name: str,
) -> Check:
    try:
        t, twin = _pair(torch_model, cls, dtype, seed)
    except Exception as exc:  # the generated class does not build: a generator bug
        return Check(dtype, mode, None, f"building the twin raised {type(exc).__name__}: {exc}")
    _set_mode(t, twin, mode)
    try:
        with _dropout_off() if mode == "train" else contextlib.nullcontext():
            report = compare(
                t,
                twin,
                _as(x, dtype),
                _targets(y, loss, dtype),
                loss=None if loss == "none" else loss,
                layout="image" if image else "features",
                mode=None,
                name=f"{name} [{mode}]",
                jit=JIT,
            )
    except (ParityError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Check(dtype, mode, None, first)
    return Check(dtype, mode, report)


def _explain(
    torch_model: nn.Module,
    cls: type[nnx.Module],
    x: np.ndarray,
    y: np.ndarray | None,
    loss: str,
    dtype: str,
    mode: str,
    image: bool,
    seed: int,
    name: str,
) -> str:
    from torchref.explain import explain

    try:
        t, twin = _pair(torch_model, cls, dtype, seed)
        _set_mode(t, twin, mode)
        with _dropout_off() if mode == "train" else contextlib.nullcontext():
            report = explain(
                t,
                twin,
                _as(x, dtype),
                _targets(y, loss, dtype),
                loss=None if loss == "none" else loss,
                layout="image" if image else "features",
                mode=None,
                name=f"{name} [{dtype}, {mode}]",
            )
    except Exception as exc:
        return f"(explain could not run: {type(exc).__name__}: {exc})"
    return str(report)
