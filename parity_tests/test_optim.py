"""jaxnets.optim vs torch.optim: every optimizer and option, step by step.

Both sides start from the same random parameters (a small dict of arrays of different shapes)
and receive the same sequence of random gradients (set as ``p.grad`` in torch). After step 1 the
parameters must agree to the ``eval`` tolerance, after 50 steps to the ``trajectory`` one.
The ``test_optax_*`` cases pin down each documented torch-vs-optax difference: the optax alias
misses torch where the difference bites, and the jaxnets builder does not.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from jaxnets import optim
from jaxnets.testing import assert_trees_all_close, flatten_tree, leaf_diff
from jaxnets.tolerances import tolerance

# The same shapes as test_losses.py: eager JAX compiles each primitive once per shape and
# dtype, so sharing shapes across the suite keeps it fast.
SHAPES = {"weight": (6, 5), "bias": (5,), "kernel": (3, 5, 4)}
N_STEPS = 50
DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}
TORCH_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}
JAX_OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": optim.sgd,
    "adam": optim.adam,
    "adamw": optim.adamw,
    "rmsprop": optim.rmsprop,
    "adagrad": optim.adagrad,
}


def lr_multiplier(step: Any, xp: Any) -> Any:
    """A non-monotone lr factor in [0.5, 1.5]: torch LambdaLR with ``math``, optax with ``jnp``."""
    return 1.0 + 0.5 * xp.cos(0.7 * step)


def scheduled(base: float) -> Callable[[Any], Any]:
    """The optax schedule equal to torch ``LambdaLR(opt, lambda k: lr_multiplier(k, math))``."""
    return lambda count: base * lr_multiplier(count, jnp)


@dataclass(frozen=True)
class Case:
    """One optimizer configuration; ``kwargs`` are passed verbatim to torch and to jaxnets."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    schedule: bool = False  # lr * lr_multiplier(step): torch LambdaLR stepped every step
    clip: dict[str, Any] | None = None  # clip_grad_norm_ arguments, applied before each step

    @property
    def id(self) -> str:
        parts = [self.name] + [f"{k}={v}" for k, v in self.kwargs.items()]
        if self.schedule:
            parts.append("schedule")
        if self.clip:
            parts.append("clip=" + ",".join(f"{v}" for v in self.clip.values()))
        return "-".join(parts)


CASES = [
    Case("sgd"),  # torch defaults (lr=1e-3)
    Case("sgd", {"lr": 0.1, "momentum": 0.9}),
    Case("sgd", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3}),
    Case("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    Case("sgd", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.05, "maximize": True}),
    Case("sgd", {"lr": 0.1, "momentum": 0.9, "dampening": 0.1}, schedule=True),
    Case("sgd", {"lr": 0.1, "momentum": 0.9}, clip={"max_norm": 0.5, "norm_type": math.inf}),
    Case("adam"),
    Case("adam", {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6, "maximize": True}),
    Case("adam", {"lr": 1e-2, "weight_decay": 0.1}),
    Case("adam", {"lr": 1e-2, "amsgrad": True}),
    Case("adam", {"lr": 1e-2, "amsgrad": True, "weight_decay": 0.1, "maximize": True}),
    Case("adam", {"lr": 1e-2}, schedule=True),
    Case("adam", {"lr": 1e-2}, clip={"max_norm": 1.0, "norm_type": 2.0}),
    Case("adamw"),
    Case("adamw", {"lr": 1e-2, "amsgrad": True, "maximize": True}),
    Case("adamw", {"lr": 1e-2, "weight_decay": 0.1}, schedule=True),
    Case("rmsprop"),
    Case("rmsprop", {"lr": 1e-2, "alpha": 0.9, "eps": 1e-6, "maximize": True}),
    Case("rmsprop", {"lr": 1e-2, "centered": True}),
    Case("rmsprop", {"lr": 1e-2, "momentum": 0.9}),
    Case("rmsprop", {"lr": 1e-2, "momentum": 0.9, "centered": True, "weight_decay": 0.1}),
    Case("rmsprop", {"lr": 1e-2, "momentum": 0.9}, schedule=True),
    Case("adagrad"),
    Case("adagrad", {"lr": 0.1, "lr_decay": 0.05}),
    Case("adagrad", {"lr": 0.1, "initial_accumulator_value": 0.5, "eps": 1e-6}),
    Case("adagrad", {"lr": 0.1, "weight_decay": 0.1, "maximize": True}),
    Case("adagrad", {"lr": 0.1, "lr_decay": 0.05}, schedule=True),
]


# --------------------------------------------------------------------------------------------
# Drivers: the same parameters and gradients through torch and through optax.
# --------------------------------------------------------------------------------------------


def draw(
    np_rng: np.random.Generator, dtype: type, n_steps: int = N_STEPS
) -> tuple[dict, list[dict]]:
    """Random parameters and ``n_steps`` gradients whose scale varies from step to step (so
    second moments rise and fall: amsgrad's max and centered variances get exercised)."""
    params = {k: np_rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
    scales = np.exp(0.7 * np_rng.standard_normal(n_steps))
    grads = [
        {k: (scale * np_rng.standard_normal(s)).astype(dtype) for k, s in SHAPES.items()}
        for scale in scales
    ]
    return params, grads


def run_torch(
    make: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
    params: dict,
    grads: list[dict],
    record: tuple[int, ...],
    schedule: bool = False,
    clip: dict | None = None,
) -> dict[int, dict[str, np.ndarray]]:
    """Run torch for ``max(record)`` steps; parameters after each step number in ``record``."""
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = make(list(tparams.values()))
    sched = (
        torch.optim.lr_scheduler.LambdaLR(opt, lambda k: lr_multiplier(k, math))
        if schedule
        else None
    )
    out = {}
    for t in range(max(record)):
        for k, p in tparams.items():
            p.grad = torch.tensor(grads[t][k])
        if clip:
            torch.nn.utils.clip_grad_norm_(list(tparams.values()), **clip)
        opt.step()
        if sched:
            sched.step()
        if t + 1 in record:
            out[t + 1] = {k: p.detach().numpy().copy() for k, p in tparams.items()}
    return out


def run_jax(
    tx: optax.GradientTransformation, params: dict, grads: list[dict], record: tuple[int, ...]
) -> dict[int, dict[str, jax.Array]]:
    """Run optax eagerly (50 tiny steps: cheaper than compiling) for ``max(record)`` steps."""
    p, grads = jax.device_put((params, grads))
    state = tx.init(p)
    out = {}
    for t in range(max(record)):
        updates, state = tx.update(grads[t], state, p)
        p = optax.apply_updates(p, updates)
        if t + 1 in record:
            out[t + 1] = p
    return out


def jax_tx(case: Case) -> optax.GradientTransformation:
    kwargs = dict(case.kwargs)
    if case.schedule:
        kwargs["lr"] = scheduled(kwargs["lr"])
    tx = JAX_OPTIMIZERS[case.name](**kwargs)
    if case.clip:
        tx = optax.chain(optim.clip_grad_norm(**case.clip), tx)
    return tx


def torch_factory(name: str, kwargs: dict) -> Callable[[list[torch.Tensor]], torch.optim.Optimizer]:
    return lambda ps: TORCH_OPTIMIZERS[name](ps, **kwargs)


def assert_differs(actual: Any, expected: Any, dtype: type, kind: str, why: str) -> float:
    """Assert that some leaf is NOT within the tolerance; return the largest relative error."""
    tol = tolerance(dtype, kind=kind)
    fa, fe = flatten_tree(actual), flatten_tree(expected)
    diffs = [leaf_diff(fa[k], fe[k], rtol=tol.rtol, atol=tol.atol) for k in fe]
    worst = max(d.max_rel for d in diffs)
    assert not all(d.ok for d in diffs), f"expected a mismatch ({why}), got max_rel={worst:.2e}"
    return worst


# --------------------------------------------------------------------------------------------
# Parity of every optimizer and option.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_optimizer_matches_torch(case: Case, dtype: type, np_rng: np.random.Generator) -> None:
    params, grads = draw(np_rng, dtype)
    record = (1, N_STEPS)
    expected = run_torch(
        torch_factory(case.name, case.kwargs), params, grads, record, case.schedule, case.clip
    )
    actual = run_jax(jax_tx(case), params, grads, record)
    for leaf in jax.tree.leaves(actual[N_STEPS]):
        assert leaf.dtype == dtype, f"parameters changed dtype to {leaf.dtype}"
    for step, kind in ((1, "eval"), (N_STEPS, "trajectory")):
        tol = tolerance(dtype, kind=kind)
        try:
            assert_trees_all_close(actual[step], expected[step], rtol=tol.rtol, atol=tol.atol)
        except AssertionError as err:
            raise AssertionError(f"after step {step} ({kind} tolerance): {err}") from None


@pytest.mark.parametrize("name", list(JAX_OPTIMIZERS))
def test_defaults_are_torch_defaults(name: str) -> None:
    """Every argument jaxnets shares with torch has torch's default (SGD's lr=1e-3 included)."""
    ours = inspect.signature(JAX_OPTIMIZERS[name]).parameters
    theirs = inspect.signature(TORCH_OPTIMIZERS[name]).parameters
    for arg, param in ours.items():
        assert arg in theirs, f"{name}({arg}=...) is not a torch argument"
        assert param.default == theirs[arg].default, (
            f"{name}({arg}=) default {param.default!r} != torch {theirs[arg].default!r}"
        )


def test_updates_jit_without_recompiling(np_rng: np.random.Generator) -> None:
    """All builders (schedules, amsgrad, dampening, lr_decay, clipping) trace under one jit and
    give the eager result; the second call reuses the compiled step."""
    params, grads = draw(np_rng, np.float64, n_steps=2)
    sched = scheduled(0.1)
    txs = [
        optim.sgd(sched, momentum=0.9, dampening=0.2),
        optim.adam(sched, amsgrad=True),
        optim.adamw(sched),
        optim.rmsprop(sched, momentum=0.9, centered=True),
        optim.adagrad(sched, lr_decay=0.1),
        optax.chain(optim.clip_grad_norm(0.5, error_if_nonfinite=True), optim.sgd(0.1)),
    ]
    traces = 0

    def steps(ps, states, g):
        nonlocal traces
        traces += 1
        out = [tx.update(g, s, p) for tx, s, p in zip(txs, states, ps, strict=True)]
        return [optax.apply_updates(p, u) for p, (u, _) in zip(ps, out, strict=True)], [
            s for _, s in out
        ]

    ps = eager_ps = [params] * len(txs)
    states = eager_states = [tx.init(params) for tx in txs]
    for g in grads:
        eager_ps, eager_states = steps(eager_ps, eager_states, g)
    traces = 0
    jitted = jax.jit(steps)
    for g in grads:
        ps, states = jitted(ps, states, g)
    assert traces == 1, f"the jitted step was traced {traces} times for {len(grads)} calls"
    tol = tolerance(np.float64)
    assert_trees_all_close(ps, eager_ps, rtol=tol.rtol, atol=tol.atol)


@pytest.mark.parametrize(
    ("builder", "kwargs", "match"),
    [
        pytest.param(optim.sgd, {"lr": -1.0}, "Invalid learning rate", id="sgd-negative-lr"),
        pytest.param(optim.sgd, {"lr": math.nan}, "Invalid learning rate", id="sgd-nan-lr"),
        pytest.param(optim.adam, {"lr": math.nan}, "Invalid learning rate", id="adam-nan-lr"),
        pytest.param(optim.sgd, {"dampening": math.nan}, "dampening", id="sgd-nan-dampening"),
        pytest.param(
            optim.adam,
            {"betas": (0.9,)},
            r"betas must be a pair \(beta1, beta2\)",
            id="adam-1-beta",
        ),
        pytest.param(
            optim.adamw, {"betas": (0.9, 0.99, 0.9)}, "betas must be a pair", id="adamw-3-betas"
        ),
        pytest.param(
            optim.sgd,
            {"momentum": 0.9, "dampening": 0.1, "nesterov": True},
            "Nesterov",
            id="sgd-nesterov-dampening",
        ),
        pytest.param(optim.sgd, {"nesterov": True}, "Nesterov", id="sgd-nesterov-no-momentum"),
        pytest.param(optim.adam, {"betas": (1.0, 0.999)}, "beta", id="adam-beta1"),
        pytest.param(optim.adamw, {"weight_decay": -1.0}, "weight_decay", id="adamw-wd"),
        pytest.param(optim.rmsprop, {"momentum": -0.1}, "momentum", id="rmsprop-momentum"),
        pytest.param(
            optim.adagrad,
            {"initial_accumulator_value": -1.0},
            "initial_accumulator_value",
            id="adagrad-initial",
        ),
        pytest.param(
            optim.clip_grad_norm,
            {"max_norm": 1.0, "norm_type": 0},
            "norm_type",
            id="clip-norm-type",
        ),
    ],
)
def test_invalid_arguments_raise(builder: Callable, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        builder(**kwargs)


def _numeric_parameters(builder: Callable) -> list[str]:
    """The builder's int/float hyperparameters (those with a number as default)."""
    params = inspect.signature(builder).parameters.values()
    return [p.name for p in params if type(p.default) in (int, float)]


@pytest.mark.parametrize("name", sorted(JAX_OPTIMIZERS))
def test_every_numeric_hyperparameter_rejects_a_wrong_type(name: str) -> None:
    """One check for all builders: a string (or bool, None) where a number belongs is a
    TypeError naming the argument and the value, not a failed comparison inside."""
    builder = JAX_OPTIMIZERS[name]
    params = _numeric_parameters(builder)
    assert "lr" in params and len(params) >= 3
    for param in params:
        for bad in ("0.01", None, True):
            with pytest.raises(TypeError, match=rf"^{param} must be a number .*{bad!r}"):
                builder(**{param: bad})


@pytest.mark.parametrize(
    ("builder", "kwargs", "match"),
    [
        pytest.param(
            optim.adam, {"betas": 0.9}, r"betas must be a pair \(beta1, beta2\)", id="adam-float"
        ),
        pytest.param(optim.adam, {"betas": "ab"}, "betas must be a pair", id="adam-str"),
        pytest.param(
            optim.adamw,
            {"betas": (0.9, "0.999")},
            r"betas\[1\] must be a number",
            id="adamw-str-beta",
        ),
        pytest.param(
            optim.clip_grad_norm,
            {"max_norm": "1.0"},
            "max_norm must be a number",
            id="clip-max_norm",
        ),
        pytest.param(
            optim.clip_grad_norm,
            {"max_norm": 1.0, "norm_type": "2"},
            "norm_type must be a number",
            id="clip-norm_type",
        ),
    ],
)
def test_wrong_types_raise_type_error(builder: Callable, kwargs: dict, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        builder(**kwargs)


def test_numpy_and_jax_scalars_are_numbers() -> None:
    """numpy scalars and shape-() arrays pass the type check, as torch accepts them."""
    optim.sgd(np.float32(0.1), momentum=np.float64(0.9), weight_decay=np.int64(0))
    optim.adam(jnp.asarray(0.1), betas=[np.float32(0.9), jnp.asarray(0.999)], eps=np.float64(1e-8))
    optim.clip_grad_norm(np.float32(1.0), norm_type=np.int64(2))


# --------------------------------------------------------------------------------------------
# Gradient clipping.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("max_norm", [pytest.param(0.5, id="active"), pytest.param(1e3, id="idle")])
@pytest.mark.parametrize("norm_type", [2.0, math.inf, 1.0, 3.0], ids=lambda p: f"norm{p:g}")
def test_clip_grad_norm_matches_torch(
    norm_type: float, max_norm: float, dtype: type, np_rng: np.random.Generator
) -> None:
    _, (grads,) = draw(np_rng, dtype, n_steps=1)
    tparams = [torch.zeros(g.shape, dtype=TORCH_DTYPE[dtype]) for g in grads.values()]
    for p, g in zip(tparams, grads.values(), strict=True):
        p.grad = torch.tensor(g)
    expected_norm = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type=norm_type)
    expected = {k: p.grad.numpy() for k, p in zip(grads, tparams, strict=True)}

    clipped, total_norm = optim.clip_grad_norm_(grads, max_norm, norm_type=norm_type)
    via_tx, _ = optim.clip_grad_norm(max_norm, norm_type).update(grads, optax.EmptyState())
    tol = tolerance(dtype)
    assert_trees_all_close(total_norm, expected_norm, rtol=tol.rtol, atol=tol.atol)
    assert_trees_all_close(clipped, expected, rtol=tol.rtol, atol=tol.atol)
    assert_trees_all_close(via_tx, expected, rtol=tol.rtol, atol=tol.atol)
    assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(clipped))
    assert (float(total_norm) > max_norm) == (max_norm == 0.5), "case does not test what it says"


def test_clip_grad_norm_error_if_nonfinite(np_rng: np.random.Generator) -> None:
    """torch raises on a non-finite total norm; so do we, eagerly and under jit."""
    _, (grads,) = draw(np_rng, np.float64, n_steps=1)
    grads["bias"] = grads["bias"].copy()
    grads["bias"][1] = np.inf
    p = torch.zeros(SHAPES["bias"], dtype=torch.float64)
    p.grad = torch.tensor(grads["bias"])
    with pytest.raises(RuntimeError, match="non-finite"):
        torch.nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="non-finite"):
        optim.clip_grad_norm_(grads, 1.0, error_if_nonfinite=True)
    tx = optim.clip_grad_norm(1.0, error_if_nonfinite=True)
    with pytest.raises(Exception, match="non-finite"):  # JaxRuntimeError carrying the message
        jax.block_until_ready(jax.jit(tx.update)(grads, optax.EmptyState()))
    # Without the flag torch scales by the non-finite norm anyway: inf*0 = nan, the rest 0.
    torch.nn.utils.clip_grad_norm_([p], 1.0)
    clipped, norm = optim.clip_grad_norm_(grads, 1.0)
    assert math.isinf(float(norm))
    np.testing.assert_array_equal(np.asarray(clipped["bias"]), p.grad.numpy())


def test_optax_clip_by_global_norm_lacks_torch_eps(np_rng: np.random.Generator) -> None:
    """torch divides by ``norm + 1e-6``; optax.clip_by_global_norm by ``norm``: a 1e-6/norm
    relative difference, visible in float64 only. Idle clipping agrees."""
    _, (grads,) = draw(np_rng, np.float64, n_steps=1)
    tparams = [torch.zeros(g.shape, dtype=torch.float64) for g in grads.values()]
    for p, g in zip(tparams, grads.values(), strict=True):
        p.grad = torch.tensor(g)
    torch.nn.utils.clip_grad_norm_(tparams, 0.5)
    expected = {k: p.grad.numpy() for k, p in zip(grads, tparams, strict=True)}
    tol = tolerance(np.float64)
    ours, _ = optim.clip_grad_norm_(grads, 0.5)
    assert_trees_all_close(ours, expected, rtol=tol.rtol, atol=tol.atol)
    theirs, _ = optax.clip_by_global_norm(0.5).update(grads, optax.EmptyState())
    assert_differs(theirs, expected, np.float64, "eval", "optax clips without the 1e-6")
    idle, _ = optax.clip_by_global_norm(1e3).update(grads, optax.EmptyState())
    assert_trees_all_close(idle, grads, rtol=0, atol=0)


# --------------------------------------------------------------------------------------------
# Each documented optax-vs-torch difference, as a test (float64, where formulas cannot hide).
# --------------------------------------------------------------------------------------------

F64 = np.float64
N_SHORT = 10  # every difference below shows within a few steps; keeps these tests cheap


def _torch_run(name: str, kwargs: dict, params: dict, grads: list, schedule: bool = False) -> dict:
    return run_torch(torch_factory(name, kwargs), params, grads, (N_SHORT,), schedule)[N_SHORT]


def _jax_run(tx: optax.GradientTransformation, params: dict, grads: list) -> dict:
    return run_jax(tx, params, grads, (N_SHORT,))[N_SHORT]


def _assert_matches(actual: Any, expected: Any) -> None:
    tol = tolerance(F64, kind="trajectory")
    assert_trees_all_close(actual, expected, rtol=tol.rtol, atol=tol.atol)


def test_optax_sgd_has_no_dampening(np_rng: np.random.Generator) -> None:
    params, grads = draw(np_rng, F64, N_SHORT)
    kw = {"lr": 0.1, "momentum": 0.9}
    _assert_matches(
        _jax_run(optax.sgd(0.1, momentum=0.9), params, grads), _torch_run("sgd", kw, params, grads)
    )  # equal while dampening=0
    expected = _torch_run("sgd", {**kw, "dampening": 0.5}, params, grads)
    assert_differs(
        _jax_run(optax.sgd(0.1, momentum=0.9), params, grads),
        expected,
        F64,
        "trajectory",
        "optax.sgd cannot dampen",
    )
    _assert_matches(_jax_run(optim.sgd(**kw, dampening=0.5), params, grads), expected)


def test_optax_adamw_default_weight_decay(np_rng: np.random.Generator) -> None:
    params, grads = draw(np_rng, F64, N_SHORT)
    expected = _torch_run("adamw", {"lr": 1e-2}, params, grads)  # torch default wd 1e-2
    assert_differs(
        _jax_run(optax.adamw(1e-2), params, grads),
        expected,
        F64,
        "trajectory",
        "optax.adamw defaults to weight_decay=1e-4",
    )
    _assert_matches(_jax_run(optax.adamw(1e-2, weight_decay=1e-2), params, grads), expected)
    _assert_matches(_jax_run(optim.adamw(1e-2), params, grads), expected)


def test_optax_adamw_is_not_adam_weight_decay(np_rng: np.random.Generator) -> None:
    """torch Adam(weight_decay=) is coupled L2 on the gradient, not AdamW's decoupled decay."""
    params, grads = draw(np_rng, F64, N_SHORT)
    expected = _torch_run("adam", {"lr": 1e-2, "weight_decay": 0.1}, params, grads)
    assert_differs(
        _jax_run(optax.adamw(1e-2, weight_decay=0.1), params, grads),
        expected,
        F64,
        "trajectory",
        "decoupled decay is not Adam's L2",
    )
    _assert_matches(_jax_run(optim.adam(1e-2, weight_decay=0.1), params, grads), expected)


def test_optax_adam_matches_torch_adam(np_rng: np.random.Generator) -> None:
    """No difference here: optax.adam's bias correction rearranges torch's exactly."""
    params, grads = draw(np_rng, F64, N_SHORT)
    _assert_matches(
        _jax_run(optax.adam(1e-2), params, grads), _torch_run("adam", {"lr": 1e-2}, params, grads)
    )


def test_optax_amsgrad_takes_max_after_bias_correction(np_rng: np.random.Generator) -> None:
    params, grads = draw(np_rng, F64, N_SHORT)
    expected = _torch_run("adam", {"lr": 1e-2, "amsgrad": True}, params, grads)
    for bias_correction_nu in (True, False):
        tx = optax.amsgrad(1e-2, bias_correction_nu=bias_correction_nu)
        assert_differs(
            _jax_run(tx, params, grads),
            expected,
            F64,
            "trajectory",
            "torch takes max(v) raw, then divides by sqrt(1-b2^t)",
        )
    _assert_matches(_jax_run(optim.adam(1e-2, amsgrad=True), params, grads), expected)


def test_optax_rmsprop_defaults_and_momentum_order(np_rng: np.random.Generator) -> None:
    params, grads = draw(np_rng, F64, N_SHORT)
    kw = {"lr": 1e-2, "momentum": 0.9}
    expected = _torch_run("rmsprop", kw, params, grads)
    assert_differs(
        _jax_run(optax.rmsprop(1e-2, momentum=0.9), params, grads),
        expected,
        F64,
        "trajectory",
        "optax decay=0.9 and eps inside the sqrt",
    )
    like_torch = {"decay": 0.99, "eps": 1e-8, "eps_in_sqrt": False, "momentum": 0.9}
    _assert_matches(_jax_run(optax.rmsprop(1e-2, **like_torch), params, grads), expected)
    # With a schedule, optax's buffer accumulates lr-scaled steps; torch's does not.
    expected = _torch_run("rmsprop", kw, params, grads, schedule=True)
    sched = scheduled(1e-2)
    assert_differs(
        _jax_run(optax.rmsprop(sched, **like_torch), params, grads),
        expected,
        F64,
        "trajectory",
        "optax applies momentum after the learning rate",
    )
    _assert_matches(_jax_run(optim.rmsprop(sched, momentum=0.9), params, grads), expected)


def test_optax_adagrad_initial_value_and_eps(np_rng: np.random.Generator) -> None:
    params, grads = draw(np_rng, F64, N_SHORT)
    expected = _torch_run("adagrad", {"lr": 0.1}, params, grads)
    assert_differs(
        _jax_run(optax.adagrad(0.1), params, grads),
        expected,
        F64,
        "trajectory",
        "optax starts the accumulator at 0.1",
    )
    tx = optax.adagrad(0.1, initial_accumulator_value=0.0, eps=1e-7)
    assert_differs(
        _jax_run(tx, params, grads),
        _torch_run("adagrad", {"lr": 0.1, "eps": 1e-7}, params, grads),
        F64,
        "trajectory",
        "optax puts eps inside the sqrt",
    )
    _assert_matches(_jax_run(optim.adagrad(0.1), params, grads), expected)
