"""The one table of parity tolerances, per dtype, backend and kind of comparison.

Every parity check in the project (the test suite, ``jaxnets compare``, ``torchref.parity``)
reads its bounds from here. A compared tensor passes when

    max|actual - expected| <= atol + rtol * max|expected|

i.e. the bound is relative to the tensor's scale (its infinity norm), not to each element.
That is deliberate: the rounding error of a computed sum (a matmul, a convolution, a
gradient accumulated over a batch) is proportional to the sum of the magnitudes of its
terms, not to the magnitude of the result, so an element that cancels to near zero carries
the absolute error of its large neighbours. An elementwise relative bound would flag that as
a failure in float32 (seen: a VJP weight gradient element of ~0.1 with a 2e-6 error while the
tensor's scale is 4). ``atol`` only matters for tensors that are zero or nearly so
everywhere (e.g. the gradient of a bias that feeds a BatchNorm, which is exactly zero in
exact arithmetic: both sides hold ~1e-17 noise there).

Rules for this file:

* An entry is never loosened to make a test pass. A mismatch is a bug to explain
  (layout, default, formula, precision), and the fix goes where the cause is.
* Each entry carries the reason for its size.
* float64 is tight on purpose: a wrong formula (a biased variance, an eps inside a square
  root, a missing factor of 2) shows up at 1e-3..1e-8 and cannot hide there, while float32
  rounding noise could mask it.

Kinds:

* ``"eval"``: one forward pass, loss, gradient or optimizer update from identical inputs.
* ``"trajectory"``: parameters after many optimizer steps from identical starts; rounding
  differences of one step feed into the next, so the bound is wider than one evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TF32_RELATIVE_ERROR", "TOLERANCES", "Tolerance", "backend_name", "tolerance"]


@dataclass(frozen=True)
class Tolerance:
    """Bound ``max|a - b| <= atol + rtol * max|b|`` over a tensor (normwise, see the module
    docstring) and the reason for its size."""

    rtol: float
    atol: float
    reason: str


_F32_EPS = float(np.finfo(np.float32).eps)  # 1.19e-07
_F64_EPS = float(np.finfo(np.float64).eps)  # 2.22e-16

TOLERANCES: dict[tuple[str, str, str], Tolerance] = {
    ("float32", "cpu", "eval"): Tolerance(
        rtol=1e-5,
        atol=1e-5,
        reason=(
            "float32 eps is 1.2e-7; XLA and oneDNN sum the same dot products in different "
            "orders and blockings, so a reduction over n terms differs by ~sqrt(n) ulps of its "
            "largest TERMS (784-wide layers: ~30 ulps, ~4e-6 of the tensor's scale; measured "
            "worst normwise over the registry ~1e-6). atol covers sums of O(1) terms that cancel "
            "to near zero, where the result's own scale says nothing: the VJP bias gradient of a "
            "1-output layer is a sum of 64 N(0,1) cotangents (~0.05 after cancellation, 2.5e-6 "
            "apart), and a bias feeding a BatchNorm has an exactly-zero gradient that both "
            "sides hold as ~2e-6 of noise. The same cases agree to 1e-16 in float64, so these "
            "are rounding, not formulas. 1e-5 is also torch.testing.assert_close's float32 "
            "default atol (pytorch.org/docs/stable/testing.html)."
        ),
    ),
    ("float64", "cpu", "eval"): Tolerance(
        rtol=1e-12,
        atol=1e-14,
        reason=(
            "float64 eps is 2.2e-16; the same reordering argument gives < 1e-13 relative. "
            "1e-12 leaves headroom for cancellation yet is 4+ orders below any formula error."
        ),
    ),
    ("float32", "cpu", "trajectory"): Tolerance(
        rtol=1e-4,
        atol=1e-5,
        reason=(
            "per-step float32 rounding (~1e-6 relative) compounds over tens to hundreds of "
            "optimizer steps; adaptive optimizers divide by sqrt(v)+eps, which amplifies "
            "differences in tiny second moments. Bounded empirically far below any formula "
            "error, which shows as >1e-3 after one step."
        ),
    ),
    ("float64", "cpu", "trajectory"): Tolerance(
        rtol=1e-10,
        atol=1e-12,
        reason=(
            "the float64 analogue of the float32 trajectory bound: ~1e-15 per step compounding "
            "over up to 1000 steps stays below 1e-11; still 5+ orders below a formula error."
        ),
    ),
    # GPU: the parity suite pins jax_default_matmul_precision='highest' and turns torch TF32
    # off, so float32 matmuls/convs are true float32. cuBLAS/cuDNN pick split-K and Winograd
    # algorithms that reorder sums more aggressively than CPU BLAS, hence a little more room.
    ("float32", "gpu", "eval"): Tolerance(
        rtol=2e-5,
        atol=2e-5,
        reason=(
            "true float32 (TF32 off, 'highest' precision); cuBLAS/cuDNN split-K and Winograd "
            "algorithms reorder reductions more than CPU BLAS: ~2x the CPU bound."
        ),
    ),
    ("float64", "gpu", "eval"): Tolerance(
        rtol=1e-12,
        atol=1e-14,
        reason="float64 on GPU is IEEE double; same reasoning as the CPU entry.",
    ),
    ("float32", "gpu", "trajectory"): Tolerance(
        rtol=2e-4,
        atol=2e-5,
        reason="GPU float32 per-step bound compounded as on CPU.",
    ),
    ("float64", "gpu", "trajectory"): Tolerance(
        rtol=1e-10,
        atol=1e-12,
        reason="as the CPU float64 trajectory bound.",
    ),
    # TPU: 'highest' precision emulates float32 matmuls with several bfloat16 passes
    # (about float32 accuracy, not bit-equal rounding); float64 is emulated in software.
    ("float32", "tpu", "eval"): Tolerance(
        rtol=5e-5,
        atol=5e-5,
        reason="TPU 'highest' precision emulates f32 matmul with bf16 passes (~f32 accuracy).",
    ),
    ("float32", "tpu", "trajectory"): Tolerance(
        rtol=5e-4,
        atol=5e-5,
        reason="TPU float32 per-step bound compounded over steps.",
    ),
}


def backend_name() -> str:
    """Return JAX's default backend as a table key: ``'cpu'``, ``'gpu'`` or ``'tpu'``."""
    import jax

    backend = jax.default_backend()
    return "gpu" if backend in ("cuda", "rocm", "gpu") else backend


TF32_RELATIVE_ERROR: tuple[float, float] = (1e-5, 1e-2)
"""The normwise relative error ``jaxnets explain`` reads as TF32 (float32 matmuls and
convolutions with 10-bit mantissas) rather than as float32 rounding or a wrong formula.
TF32 rounds each operand to 2^-11 = 4.9e-4 relative, and sums of tens to hundreds of such
products land between about 1e-5 and 1e-2; float32 rounding of the same sums stays below the
eval bound (1e-5), and a wrong formula usually shows well above 1e-2. A diagnosis window, not
a pass/fail bound: a layer inside it is only reported as *likely* TF32."""


def tolerance(dtype: object, backend: str | None = None, kind: str = "eval") -> Tolerance:
    """Look up the tolerance for ``dtype`` (``'float32'``, ``np.float64``...) on ``backend``.

    ``backend`` defaults to JAX's default backend. ``kind`` is ``'eval'`` or ``'trajectory'``.
    Raises ``KeyError`` naming the known entries when there is no entry: a missing entry is
    a decision to make in this file, not something to guess at a call site.
    """
    name = np.dtype(dtype).name
    key = (name, backend or backend_name(), kind)
    try:
        return TOLERANCES[key]
    except KeyError:
        known = ", ".join("/".join(k) for k in sorted(TOLERANCES))
        raise KeyError(
            f"no parity tolerance for dtype={key[0]!r} backend={key[1]!r} kind={key[2]!r}; "
            f"known entries: {known}. Add one to jaxnets/tolerances.py with its reason."
        ) from None
