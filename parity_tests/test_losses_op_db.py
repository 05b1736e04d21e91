"""jaxnets.losses against torch's own samples, ``op_db``'s ``sample_inputs_func``, in float64.

For each loss jaxnets has, every float64 sample torch tests its own function with: the same
input, target and keyword arguments (reduction, class weights, ignore_index,
label_smoothing, pos_weight, beta, delta, soft targets), the value and the gradient with
respect to the input compared within the float64 evaluation bound.
``python -m parity_tests.test_losses_op_db`` prints the table.
"""

from __future__ import annotations

import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxnets import losses
from jaxnets.tolerances import tolerance

LOSSES = {
    "nn.functional.cross_entropy": losses.cross_entropy,
    "nn.functional.nll_loss": losses.nll_loss,
    "nn.functional.mse_loss": losses.mse_loss,
    "nn.functional.l1_loss": losses.l1_loss,
    "nn.functional.smooth_l1_loss": losses.smooth_l1_loss,
    "nn.functional.huber_loss": losses.huber_loss,
    "nn.functional.binary_cross_entropy": losses.binary_cross_entropy,
    "nn.functional.binary_cross_entropy_with_logits": losses.binary_cross_entropy_with_logits,
}


def _np(x: Any) -> Any:
    return x.detach().numpy() if isinstance(x, torch.Tensor) else x


def _cases() -> list[tuple[str, int, Any]]:
    """``(op name, sample index, sample)`` for every float64 sample of each loss."""
    from torch.testing._internal.common_methods_invocations import op_db

    torch.manual_seed(0)
    cases = []
    for info in op_db:
        if info.name not in LOSSES or info.variant_test_name:
            continue
        samples = info.sample_inputs(device="cpu", dtype=torch.float64, requires_grad=True)
        cases += [(info.name, i, s) for i, s in enumerate(samples)]
    return cases


CASES = _cases()


def run_case(name: str, sample: Any) -> float:
    """The worst relative error of the value and the input gradient; raises
    ``AssertionError`` outside the float64 evaluation bound."""
    torch_fn = getattr(torch.nn.functional, name.removeprefix("nn.functional."))
    x = sample.input.detach().clone().requires_grad_(True)
    args = [a.detach() if isinstance(a, torch.Tensor) else a for a in sample.args]
    kwargs = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in sample.kwargs.items()}
    out = torch_fn(x, *args, **kwargs)
    out.sum().backward()
    want_out, want_grad = out.detach().numpy(), x.grad.numpy()

    jargs = [jnp.asarray(_np(a)) if isinstance(a, torch.Tensor) else a for a in args]
    jkw = {k: jnp.asarray(_np(v)) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    fn = LOSSES[name]
    got_out, vjp = jax.vjp(lambda xi: fn(xi, *jargs, **jkw), jnp.asarray(_np(x)))
    (got_grad,) = vjp(jnp.ones_like(got_out))

    tol = tolerance("float64", "cpu", "eval")
    worst = 0.0
    for what, got, want in (("value", got_out, want_out), ("input gradient", got_grad, want_grad)):
        got, want = np.asarray(got), np.asarray(want)
        assert got.shape == want.shape, f"{name} {what}: shape {got.shape} != {want.shape}"
        err = float(np.max(np.abs(got - want), initial=0.0))
        scale = float(np.max(np.abs(want), initial=0.0))
        assert err <= tol.atol + tol.rtol * scale, (
            f"{name}{tuple(x.shape)} {sample.kwargs} {what}: max|a-b| = {err:.3g}"
        )
        worst = max(worst, err / scale if scale else err)
    return worst


@pytest.mark.parametrize(
    ("name", "index", "sample"), CASES, ids=[f"{n.split('.')[-1]}-{i}" for n, i, _ in CASES]
)
def test_loss_matches_torch_op_db(name: str, index: int, sample: Any) -> None:
    run_case(name, sample)


def test_op_db_covers_every_loss() -> None:
    assert {n for n, *_ in CASES} == set(LOSSES)


def main() -> int:
    """Print the table per loss: torch's samples, passed, failed, worst relative error."""
    jax.config.update("jax_enable_x64", True)
    rows: dict[str, list[Any]] = {}
    for name, _i, sample in CASES:
        row = rows.setdefault(name, [0, 0, 0, 0.0])
        row[0] += 1
        try:
            row[3] = max(row[3], run_case(name, sample))
            row[1] += 1
        except AssertionError:
            row[2] += 1
    print(f"{'loss':34} {'samples':>7} {'passed':>7} {'failed':>7} {'worst rel':>10}")
    for name, (n, ok, bad, worst) in rows.items():
        print(f"{name:34} {n:>7} {ok:>7} {bad:>7} {worst:>10.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
