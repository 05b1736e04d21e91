"""jaxnets.optim against torch's own optimizer table, ``optim_db``, in float64.

Every configuration ``optim_db`` lists for SGD, Adam, AdamW, RMSprop and Adagrad (its
``optim_inputs_func``), with torch's default single-tensor loop and, where torch supports it,
its ``foreach`` implementation: the same start, the same gradient function, 30 steps, and the
parameters of both sides compared after every step within the float64 trajectory bound.
``python -m parity_tests.test_optim_db`` prints the table: cases, passed, worst relative error.
"""

from __future__ import annotations

import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxnets import optim
from jaxnets.tolerances import tolerance

STEPS = 30
BUILDERS = {
    "SGD": optim.sgd,
    "Adam": optim.adam,
    "AdamW": optim.adamw,
    "RMSprop": optim.rmsprop,
    "Adagrad": optim.adagrad,
}
SHAPES = ((3, 4), (4,))


def _cases() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """``(class, description, kwargs, implementation flags)`` for each configuration."""
    from torch.testing._internal.common_optimizers import optim_db

    cases = []
    for info in optim_db:
        name = info.optim_cls.__name__
        if name not in BUILDERS:
            continue
        impls: list[dict[str, Any]] = [{}]
        if "foreach" in info.supported_impls:
            impls.append({"foreach": True})
        for inp in info.optim_inputs_func(device="cpu", dtype=torch.float64):
            for impl in impls:
                cases.append((name, inp.desc, dict(inp.kwargs), impl))
    return cases


CASES = _cases()


def _grad(p: Any, c: Any, lib: Any) -> Any:
    """The gradient of ``sum(c * sin(p) + p**2)``: smooth, and new at every step."""
    return c * lib.cos(p) + 2 * p


def run_case(name: str, kwargs: dict[str, Any], impl: dict[str, Any]) -> float:
    """The worst relative difference over the parameters and the steps; raises
    ``AssertionError`` when a step leaves the float64 trajectory bound."""
    rng = np.random.default_rng(0)
    starts = [rng.standard_normal(s) for s in SHAPES]
    coefs = [rng.standard_normal(s) for s in SHAPES]
    # torch's tensor lr is the same number to the jaxnets builder
    jkw = {k: float(v) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    tx = BUILDERS[name](**jkw)
    t_params = [torch.tensor(s, dtype=torch.float64, requires_grad=True) for s in starts]
    t_opt = getattr(torch.optim, name)(t_params, **kwargs, **impl)
    t_coefs = [torch.tensor(c) for c in coefs]
    j_params = [jnp.asarray(s) for s in starts]
    j_coefs = [jnp.asarray(c) for c in coefs]
    state = tx.init(j_params)

    @jax.jit
    def step(params: list[jax.Array], state: Any) -> tuple[list[jax.Array], Any]:
        grads = [_grad(p, c, jnp) for p, c in zip(params, j_coefs, strict=True)]
        updates, state = tx.update(grads, state, params)
        return [p + u for p, u in zip(params, updates, strict=True)], state

    tol = tolerance("float64", "cpu", "trajectory")
    worst = 0.0
    for k in range(STEPS):
        with torch.no_grad():
            for p, c in zip(t_params, t_coefs, strict=True):
                p.grad = _grad(p, c, torch)
        t_opt.step()
        j_params, state = step(j_params, state)
        for i, (tp, jp) in enumerate(zip(t_params, j_params, strict=True)):
            want, got = tp.detach().numpy(), np.asarray(jp)
            err = float(np.max(np.abs(got - want)))
            scale = float(np.max(np.abs(want)))
            assert err <= tol.atol + tol.rtol * scale, (
                f"{name}({kwargs}, {impl}) parameter {i} after step {k + 1}: "
                f"max|a-b| = {err:.3g}, bound {tol.atol + tol.rtol * scale:.3g}"
            )
            worst = max(worst, err / scale if scale else err)
    return worst


@pytest.mark.parametrize(
    ("name", "desc", "kwargs", "impl"),
    CASES,
    ids=[f"{n}-{d}-{'foreach' if i else 'single'}".replace(" ", "_") for n, d, _, i in CASES],
)
def test_optimizer_matches_torch_optim_db(
    name: str, desc: str, kwargs: dict[str, Any], impl: dict[str, Any]
) -> None:
    run_case(name, kwargs, impl)


def test_optim_db_covers_every_optimizer() -> None:
    """The table really drew cases for each optimizer jaxnets has."""
    assert {n for n, *_ in CASES} == set(BUILDERS)
    assert len(CASES) >= 50


def main() -> int:
    """Print the table per optimizer: torch's cases, passed, failed, worst relative error."""
    jax.config.update("jax_enable_x64", True)
    rows: dict[str, list[Any]] = {}
    for name, _desc, kwargs, impl in CASES:
        row = rows.setdefault(name, [0, 0, 0, 0.0])
        row[0] += 1
        try:
            row[3] = max(row[3], run_case(name, kwargs, impl))
            row[1] += 1
        except AssertionError:
            row[2] += 1
    print(f"{'optimizer':10} {'cases':>6} {'passed':>7} {'failed':>7} {'worst rel':>10}")
    for name, (n, ok, bad, worst) in rows.items():
        print(f"{name:10} {n:>6} {ok:>7} {bad:>7} {worst:>10.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
