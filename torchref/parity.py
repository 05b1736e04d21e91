"""The parity harness: hand it a torch model and its Flax twin, get every difference by name.

This is what the parity suite and ``jaxnets compare`` run, public so that users can check
their own ports::

    from torchref import parity
    report = parity.compare(torch_model, flax_model, x, y, loss="cross_entropy")
    print(report)            # outputs, loss, every gradient and buffer: max abs / rel error
    report.raise_if_failed()

``compare`` copies the torch weights into the twin, runs both on the same input (torch
layout; converted to NHWC for image twins), and compares outputs, the loss, the gradient of
the loss for every parameter (in torch names and layout), optionally a vector-Jacobian
product ``out.backward(v)``, and finally every buffer (BatchNorm running statistics). Bounds
come from :mod:`jaxnets.tolerances` for the models' dtype and JAX's backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F
from flax import nnx

from jaxnets import convert, losses
from jaxnets.testing import leaf_diff
from jaxnets.tolerances import Tolerance, backend_name, tolerance
from torchref.bridge import torch_to_flax

__all__ = [
    "TORCH_LOSSES",
    "Comparison",
    "ParityError",
    "ParityReport",
    "compare",
    "count_params",
    "loss_pair",
    "model_dtype",
]

LossName = Literal["cross_entropy", "mse", "l1"]

#: torch's function for each loss name of :data:`jaxnets.losses.LOSSES` (the Flax side's).
TORCH_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "cross_entropy": F.cross_entropy,
    "mse": F.mse_loss,
    "l1": F.l1_loss,
}


class ParityError(AssertionError):
    """A twin disagrees with its torch original beyond the tolerance."""


@dataclass(frozen=True)
class Comparison:
    """One compared quantity: ``kind`` is output, loss, grad, vjp or buffer."""

    kind: str
    name: str
    max_abs: float
    max_rel: float
    ok: bool
    note: str = ""
    tolerance_used: float = 0.0  # max|a-b| / (atol + rtol*max|b|); fails above 1


@dataclass
class ParityReport:
    """Every comparison of one ``compare`` call, with the tolerance used."""

    model: str
    dtype: str
    backend: str
    tolerance: Tolerance
    torch_params: int
    flax_params: int
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every comparison is within tolerance and parameter counts agree."""
        return self.torch_params == self.flax_params and all(c.ok for c in self.comparisons)

    @property
    def failures(self) -> list[Comparison]:
        """The comparisons out of tolerance, in the order they were made."""
        return [c for c in self.comparisons if not c.ok]

    def worst(self, kind: str) -> Comparison | None:
        """The comparison of ``kind`` that uses most of its tolerance (None if none)."""
        items = [c for c in self.comparisons if c.kind == kind]
        if not items:
            return None
        return max(items, key=lambda c: (not c.ok, c.tolerance_used))

    def summary(self) -> dict[str, Any]:
        """One row: parameter counts and worst abs/rel error per kind (for tables, JSON)."""
        row: dict[str, Any] = {
            "model": self.model,
            "dtype": self.dtype,
            "backend": self.backend,
            "torch_params": self.torch_params,
            "flax_params": self.flax_params,
        }
        for kind in ("output", "loss", "grad", "vjp", "buffer"):
            w = self.worst(kind)
            row[f"{kind}_abs"] = None if w is None else w.max_abs
            row[f"{kind}_rel"] = None if w is None else w.max_rel
        row["tolerance_used"] = max((c.tolerance_used for c in self.comparisons), default=0.0)
        row["ok"] = self.ok
        return row

    def __str__(self) -> str:
        t = self.tolerance
        lines = [
            f"parity {self.model} [{self.dtype}, {self.backend}] "
            f"rtol={t.rtol:g} atol={t.atol:g}: {'OK' if self.ok else 'FAILED'}",
            f"  parameters: torch {self.torch_params:,}  flax {self.flax_params:,}",
            f"  {'kind':<7} {'name':<32} {'max abs':>10} {'max rel':>10}",
        ]
        for c in self.comparisons:
            mark = "" if c.ok else "  <-- out of tolerance"
            note = f"  ({c.note})" if c.note else ""
            lines.append(
                f"  {c.kind:<7} {c.name:<32} {c.max_abs:10.3e} {c.max_rel:10.3e}{mark}{note}"
            )
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        """Raise :class:`ParityError` naming every failing quantity."""
        if self.ok:
            return
        bad = [f"{c.kind} {c.name}: abs {c.max_abs:.3e} rel {c.max_rel:.3e}" for c in self.failures]
        if self.torch_params != self.flax_params:
            bad.insert(0, f"parameter count torch {self.torch_params} != flax {self.flax_params}")
        raise ParityError(f"{self.model} out of tolerance:\n  " + "\n  ".join(bad) + f"\n{self}")


def loss_pair(loss: Any) -> tuple[Callable[..., Any], Callable[..., Any]] | None:
    """``(torch_fn, flax_fn)`` for a ``loss`` argument (:func:`compare`, ``explain``): a name of
    :data:`TORCH_LOSSES`, the pair itself, or None (no loss). A bad one raises before anything
    runs."""
    if loss is None:
        return None
    if isinstance(loss, str):
        if loss not in TORCH_LOSSES:
            raise ValueError(
                f"unknown loss {loss!r}: pass one of {sorted(TORCH_LOSSES)}, a (torch_fn, "
                f"flax_fn) pair such as (F.nll_loss, jaxnets.losses.nll_loss), or None"
            )
        return TORCH_LOSSES[loss], losses.LOSSES[loss]
    if isinstance(loss, tuple) and len(loss) == 2 and all(callable(f) for f in loss):
        return loss
    raise TypeError(
        f"loss must be a name ({sorted(TORCH_LOSSES)}), a (torch_fn, flax_fn) pair of "
        f"callables (output, targets) -> loss, or None; got {loss!r}"
    )


def _flax_side(
    model: nnx.Module, x: jax.Array, y: Any, v: Any, *, loss_fn: Callable[..., Any] | None
) -> dict[str, Any]:
    """The twin's side of :func:`compare` in one function (one compilation): forward, loss
    and gradients, then the vector-Jacobian product, in the same order as the torch side, so
    BatchNorm running statistics see the same sequence of updates."""
    result: dict[str, Any] = {}
    if loss_fn is None:
        result["output"] = model(x)
    else:

        def f(m: nnx.Module) -> tuple[jax.Array, jax.Array]:
            out = m(x)
            return loss_fn(out, y), out

        (result["loss"], result["output"]), result["grads"] = nnx.value_and_grad(f, has_aux=True)(
            model
        )
    if v is not None:
        result["vjp"] = nnx.grad(lambda m: jnp.sum(m(x) * v))(model)
    return result


# Module-level, so nnx.jit's cache survives across calls: the same model structure, shapes
# and loss compile once per process, not once per compare() call.
_flax_side_jit = nnx.jit(_flax_side, static_argnames=("loss_fn",))


def count_params(model: torch.nn.Module | nnx.Module) -> int:
    """Number of trainable parameters (torch ``parameters()``, or nnx ``Param`` leaves)."""
    if isinstance(model, torch.nn.Module):
        return sum(p.numel() for p in model.parameters())
    return sum(int(np.prod(v.shape)) for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param)))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def model_dtype(torch_model: torch.nn.Module) -> np.dtype:
    """The single parameter dtype of a torch model as numpy's (mixed dtypes are an error)."""
    dtypes = {p.dtype for p in torch_model.parameters()}
    if len(dtypes) != 1:
        raise ValueError(f"torch model has mixed parameter dtypes {dtypes}; use one dtype")
    return np.dtype(str(dtypes.pop()).removeprefix("torch."))


def _absent(kind: str, name: str, note: str) -> Comparison:
    """A failed comparison of something one side lacks (or has in another shape)."""
    inf = float("inf")
    return Comparison(kind, name, inf, inf, False, note, inf)


def compare(
    torch_model: torch.nn.Module,
    flax_model: nnx.Module,
    inputs: np.ndarray,
    targets: np.ndarray | None = None,
    *,
    loss: LossName | tuple[Callable[..., Any], Callable[..., Any]] | None = "cross_entropy",
    layout: Literal["features", "image"] = "features",
    mode: Literal["train", "eval"] | None = None,
    cotangent: np.ndarray | None = None,
    copy_weights: bool = True,
    tol: Tolerance | None = None,
    name: str | None = None,
    jit: bool = True,
) -> ParityReport:
    """Run ``torch_model`` and ``flax_model`` on the same data and compare everything.

    Args:
      torch_model, flax_model: the pair; ``copy_weights`` first copies torch -> Flax.
      inputs: one batch in TORCH layout (``(N, F)`` or ``(N, C, H, W)``), numpy.
      targets: ``(N,)`` class indices for ``cross_entropy``, ``(N, outputs)`` for ``mse``;
        with ``loss=None`` no loss or gradient is compared.
      loss: ``'cross_entropy'``, ``'mse'``, or a ``(torch_fn, flax_fn)`` pair, each called
        as ``fn(outputs, targets)`` (e.g. ``(F.nll_loss, jaxnets.losses.nll_loss)``), as
        :func:`torchref.explain.explain` takes it; ``None`` compares outputs only.
      layout: ``'image'`` transposes inputs to NHWC for the twin.
      mode: ``'train'`` / ``'eval'`` sets both models' mode first; None keeps them as they are.
      cotangent: ``v`` of the output's shape: also compare the parameter gradients of
        ``out.backward(v)`` (the vector-Jacobian product of tutorial 003).
      tol: bound to use; default ``jaxnets.tolerances.tolerance(dtype)`` for the model dtype.
      jit: run the Flax side under ``nnx.jit`` (as users do).

    Returns a :class:`ParityReport`; call ``raise_if_failed()`` to assert.
    """
    dtype = model_dtype(torch_model)
    if copy_weights:
        torch_to_flax(torch_model, flax_model)
    if mode is not None:
        torch_model.train(mode == "train")
        flax_model.train() if mode == "train" else flax_model.eval()
    tol = tol or tolerance(dtype)
    report = ParityReport(
        model=name or type(torch_model).__name__,
        dtype=dtype.name,
        backend=backend_name(),
        tolerance=tol,
        torch_params=count_params(torch_model),
        flax_params=count_params(flax_model),
    )

    def add(kind: str, what: str, actual: Any, expected: Any, note: str = "") -> None:
        actual, expected = np.asarray(actual), np.asarray(expected)
        if actual.shape != expected.shape:
            note = f"shape {actual.shape} != torch {expected.shape}"
            report.comparisons.append(_absent(kind, what, note))
            return
        d = leaf_diff(actual, expected, rtol=tol.rtol, atol=tol.atol)
        ok = d.ok
        if actual.dtype != expected.dtype:
            ok, note = False, f"dtype {actual.dtype} != torch {expected.dtype}"
        report.comparisons.append(
            Comparison(kind, what, d.max_abs, d.max_rel, ok, note, d.tolerance_used)
        )

    def _add_grads(kind: str, model: torch.nn.Module, flax_grads: dict[str, np.ndarray]) -> None:
        for pname, p in model.named_parameters():
            if p.grad is None:
                continue
            if pname not in flax_grads:
                report.comparisons.append(_absent(kind, pname, "no gradient on the Flax side"))
            else:
                add(kind, pname, flax_grads[pname], _np(p.grad))

    if loss is not None and targets is None:
        raise ValueError("compare(loss=...) needs targets; pass loss=None to skip the loss")
    x_t = torch.from_numpy(np.ascontiguousarray(inputs))
    x_f = jnp.asarray(np.transpose(inputs, (0, 2, 3, 1)) if layout == "image" else inputs)
    y_f = None if targets is None else jnp.asarray(targets)
    v_f = None if cotangent is None else jnp.asarray(cotangent)
    losses = loss_pair(loss)  # validates it before anything runs

    try:
        flax = (_flax_side_jit if jit else _flax_side)(
            flax_model, x_f, y_f, v_f, loss_fn=None if losses is None else losses[1]
        )
    except (TypeError, ValueError) as exc:  # a twin that cannot even run: say where to look
        raise ParityError(
            f"the Flax twin {report.model} raised before it could be compared: "
            f"{type(exc).__name__}: {exc}\nTo see which layer fails and on what input, run "
            f"torchref.explain.explain(torch_model, flax_model, inputs, targets, "
            f"layout={layout!r}) (for a registered model also `jaxnets compare --explain`)."
        ) from exc

    # 1) torch: forward, loss and gradients in one pass, as a training step does.
    torch_model.zero_grad(set_to_none=True)
    out_t = torch_model(x_t)
    add("output", "output", flax["output"], _np(out_t))
    if losses is not None:
        loss_t = losses[0](out_t, torch.from_numpy(np.ascontiguousarray(targets)))
        loss_t.backward()
        add("loss", "loss", flax["loss"], _np(loss_t))
        _add_grads("grad", torch_model, convert.state_to_torch(flax_model, flax["grads"]))

    # 2) vector-Jacobian product, as tutorial 003's out.backward(v).
    if cotangent is not None:
        torch_model.zero_grad(set_to_none=True)
        torch_model(x_t).backward(torch.from_numpy(np.ascontiguousarray(cotangent)))
        _add_grads("vjp", torch_model, convert.state_to_torch(flax_model, flax["vjp"]))

    # 3) buffers (running statistics) after the passes above, on both sides.
    flax_state = convert.state_dict(flax_model)
    for bname, buf in torch_model.named_buffers():
        if bname in flax_state:
            add("buffer", bname, flax_state[bname], _np(buf))
        else:
            report.comparisons.append(_absent("buffer", bname, "buffer missing on the Flax side"))
    torch_keys = set(torch_model.state_dict())
    for bname in flax_state:
        if bname not in torch_keys:  # state the twin keeps and torch does not
            note = "only on the Flax side (torch has no such parameter or buffer)"
            report.comparisons.append(_absent("buffer", bname, note))
    return report
