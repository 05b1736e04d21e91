"""jaxnets.losses vs torch.nn.functional: values and gradients for every loss and option.

Each case draws its inputs once (numpy), evaluates the torch loss and the JAX loss on the same
values, and compares the loss and its gradient with respect to the input (and to floating
targets) from torch autograd and ``jax.grad``, for every reduction, in float32 and float64.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F

from jaxnets import losses
from jaxnets.testing import assert_trees_all_close
from jaxnets.tolerances import tolerance

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
REDUCTIONS = ["mean", "sum", "none"]
IGNORE = -100

Inputs = tuple[np.ndarray, np.ndarray, dict[str, Any]]


@dataclass(frozen=True)
class Case:
    """A loss (same name in torch.nn.functional and jaxnets.losses) and how to draw its inputs.

    ``draw(rng, dtype)`` returns ``(input, target, kwargs)``; array kwargs (weights) are numpy
    and converted for each side.
    """

    id: str
    fn: str
    draw: Callable[[np.random.Generator, type], Inputs]


def _class_targets(
    rng: np.random.Generator, shape: tuple[int, ...], n_classes: int, ignore: int | None = None
) -> np.ndarray:
    t = rng.integers(0, n_classes, size=shape)
    if ignore is not None:
        t.flat[:: max(1, t.size // 3)] = ignore  # about a third ignored, the first one included
    return t


def _probs(rng: np.random.Generator, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    p = rng.random(shape) + 0.05
    return (p / p.sum(axis=1, keepdims=True)).astype(dtype)


def _logits(rng: np.random.Generator, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    return (2.0 * rng.standard_normal(shape)).astype(dtype)


def _weight(rng: np.random.Generator, c: int, dtype: type) -> np.ndarray:
    return rng.uniform(0.2, 2.0, size=c).astype(dtype)


def ce_case(
    id: str,
    shape: tuple[int, ...],
    *,
    weight: bool = False,
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    probs: bool = False,
    fn: str = "cross_entropy",
) -> Case:
    """A cross_entropy / nll_loss case; classes at dim 1 (dim 0 for a 1-D input)."""

    def draw(rng: np.random.Generator, dtype: type) -> Inputs:
        class_dim = 0 if len(shape) == 1 else 1
        c = shape[class_dim]
        x = _logits(rng, shape, dtype)
        if fn == "nll_loss":  # nll_loss takes log-probabilities
            x = (x - np.log(np.exp(x).sum(axis=class_dim, keepdims=True))).astype(dtype)
        kwargs: dict[str, Any] = {}
        if probs:
            t = _probs(rng, shape, dtype) if class_dim == 1 else _probs(rng, (1, c), dtype)[0]
        else:
            tshape = shape[:class_dim] + shape[class_dim + 1 :]
            ignore = None if ignore_index is None else ignore_index
            t = _class_targets(rng, tshape, c, ignore)
            if ignore_index is not None:
                kwargs["ignore_index"] = ignore_index
        if weight:
            kwargs["weight"] = _weight(rng, c, dtype)
        if label_smoothing:
            kwargs["label_smoothing"] = label_smoothing
        return x, t, kwargs

    return Case(id, fn, draw)


def elementwise_case(
    id: str, fn: str, shape: tuple[int, ...], kind: str = "real", **extra: Any
) -> Case:
    """A loss on same-shape input and target. ``kind``: 'real', 'prob' (BCE) or 'logit'."""

    def draw(rng: np.random.Generator, dtype: type) -> Inputs:
        if kind == "prob":
            x = rng.uniform(0.02, 0.98, size=shape)
            t = rng.uniform(0.0, 1.0, size=shape)
        elif kind == "logit":
            x = 3.0 * rng.standard_normal(shape)
            t = rng.uniform(0.0, 1.0, size=shape)
        else:  # differences spread over both sides of beta/delta
            x = 1.5 * rng.standard_normal(shape)
            t = 1.5 * rng.standard_normal(shape)
        kwargs: dict[str, Any] = {}
        for name, value in extra.items():
            if value == "per-class":  # broadcasts along the last dim
                kwargs[name] = rng.uniform(0.2, 3.0, size=shape[-1]).astype(dtype)
            elif value == "full":
                kwargs[name] = rng.uniform(0.2, 3.0, size=shape).astype(dtype)
            else:
                kwargs[name] = value
        return x.astype(dtype), t.astype(dtype), kwargs

    return Case(id, fn, draw)


# Few distinct shapes on purpose: eager JAX compiles each primitive once per shape and dtype,
# so sharing (N, C) = (6, 5) and (N, C, d1) = (3, 5, 4) keeps the suite fast.
S2, SK, S1 = (6, 5), (3, 5, 4), (5,)

CASES = [
    ce_case("ce-2d", S2),
    ce_case("ce-2d-weight", S2, weight=True),
    ce_case("ce-2d-weight-ignore", S2, weight=True, ignore_index=IGNORE),
    ce_case("ce-2d-ignore_index=2", S2, ignore_index=2),
    ce_case("ce-unbatched", S1),
    ce_case("ce-kdim", SK),
    ce_case("ce-kdim-weight-ignore", SK, weight=True, ignore_index=IGNORE),
    ce_case("ce-smooth", S2, label_smoothing=0.1),
    ce_case("ce-smooth-weight-ignore", S2, weight=True, ignore_index=IGNORE, label_smoothing=0.2),
    ce_case("ce-kdim-smooth-weight-ignore", SK, weight=True, ignore_index=1, label_smoothing=0.3),
    ce_case("ce-probs", S2, probs=True),
    ce_case("ce-probs-weight-smooth", S2, probs=True, weight=True, label_smoothing=0.2),
    ce_case("ce-kdim-probs-weight", SK, probs=True, weight=True),
    ce_case("ce-unbatched-probs", S1, probs=True),
    ce_case("nll-2d", S2, fn="nll_loss"),
    ce_case("nll-2d-weight-ignore", S2, weight=True, ignore_index=IGNORE, fn="nll_loss"),
    ce_case("nll-kdim-weight-ignore", SK, weight=True, ignore_index=0, fn="nll_loss"),
    ce_case("nll-unbatched", S1, fn="nll_loss"),
    elementwise_case("mse", "mse_loss", S2),
    elementwise_case("mse-kdim", "mse_loss", SK),
    elementwise_case("l1", "l1_loss", S2),
    elementwise_case("smooth_l1", "smooth_l1_loss", S2),
    elementwise_case("smooth_l1-beta=0.5", "smooth_l1_loss", SK, beta=0.5),
    elementwise_case("smooth_l1-beta=0", "smooth_l1_loss", S2, beta=0.0),
    elementwise_case("huber", "huber_loss", S2),
    elementwise_case("huber-delta=0.5", "huber_loss", SK, delta=0.5),
    elementwise_case("bce", "binary_cross_entropy", S2, kind="prob"),
    elementwise_case("bce-weight", "binary_cross_entropy", SK, kind="prob", weight="per-class"),
    elementwise_case("bce_logits", "binary_cross_entropy_with_logits", S2, kind="logit"),
    elementwise_case(
        "bce_logits-weight-pos_weight",
        "binary_cross_entropy_with_logits",
        S2,
        kind="logit",
        weight="full",
        pos_weight="per-class",
    ),
    elementwise_case(
        "bce_logits-kdim-pos_weight",
        "binary_cross_entropy_with_logits",
        SK,
        kind="logit",
        pos_weight="per-class",
    ),
]


# --------------------------------------------------------------------------------------------
# Evaluation on both sides.
# --------------------------------------------------------------------------------------------


def torch_loss_and_grads(
    fn: str, x: np.ndarray, t: np.ndarray, kwargs: dict, cot: np.ndarray | None
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Loss, then the gradients of ``sum(loss * cot)`` w.r.t. input (and a floating target)."""
    tx = torch.tensor(x, requires_grad=True)
    tt = torch.tensor(t, requires_grad=np.issubdtype(t.dtype, np.floating))
    tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    out = getattr(F, fn)(tx, tt, **tkw)
    weighted = out if cot is None else out * torch.tensor(cot)
    weighted.sum().backward()
    grads = (tx.grad.numpy(),) + ((tt.grad.numpy(),) if tt.requires_grad else ())
    return out.detach().numpy(), grads


def jax_loss_and_grads(
    fn: str, x: np.ndarray, t: np.ndarray, kwargs: dict, cot: np.ndarray | None
) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    loss_fn = getattr(losses, fn)
    argnums = (0, 1) if np.issubdtype(t.dtype, np.floating) else (0,)

    def weighted(x: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = loss_fn(x, t, **kwargs)
        return jnp.sum(out if cot is None else out * cot), out

    grads, out = jax.grad(weighted, argnums=argnums, has_aux=True)(jnp.asarray(x), jnp.asarray(t))
    return out, grads


def cotangent(rng: np.random.Generator, reduction: str, shape: tuple, dtype: type) -> Any:
    return None if reduction != "none" else rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_loss_matches_torch(
    case: Case, reduction: str, dtype: type, np_rng: np.random.Generator
) -> None:
    x, t, kwargs = case.draw(np_rng, dtype)
    kwargs["reduction"] = reduction
    expected, expected_grads = torch_loss_and_grads(case.fn, x, t, kwargs, None)
    cot = cotangent(np_rng, reduction, expected.shape, dtype)
    if cot is not None:
        expected, expected_grads = torch_loss_and_grads(case.fn, x, t, kwargs, cot)
    actual, grads = jax_loss_and_grads(case.fn, x, t, kwargs, cot)
    assert actual.dtype == dtype and actual.shape == expected.shape
    tol = tolerance(dtype)
    assert_trees_all_close(actual, expected, rtol=tol.rtol, atol=tol.atol)
    assert_trees_all_close(grads, expected_grads, rtol=tol.rtol, atol=tol.atol)


# --------------------------------------------------------------------------------------------
# Edge cases torch defines: all targets ignored, probabilities at 0 and 1.
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("fn", "kwargs"),
    [
        pytest.param("cross_entropy", {}, id="ce"),
        pytest.param("cross_entropy", {"weight": "w"}, id="ce-weight"),
        pytest.param("cross_entropy", {"weight": "w", "label_smoothing": 0.1}, id="ce-w-smooth"),
        pytest.param("cross_entropy", {"label_smoothing": 0.1}, id="ce-smooth"),
        pytest.param("nll_loss", {}, id="nll"),
        pytest.param("nll_loss", {"weight": "w"}, id="nll-weight"),
    ],
)
def test_all_targets_ignored(
    fn: str, kwargs: dict, dtype: type, np_rng: np.random.Generator
) -> None:
    """torch: 'mean' is 0/0 = nan yet its gradient is 0; 'sum' is 0; 'none' all zeros."""
    x = _logits(np_rng, SK, dtype)
    t = np.full((SK[0], SK[2]), IGNORE)
    kw = {k: (_weight(np_rng, SK[1], dtype) if v == "w" else v) for k, v in kwargs.items()}
    for reduction in REDUCTIONS:
        kw["reduction"] = reduction
        cot = cotangent(np_rng, reduction, t.shape, dtype)
        expected, (expected_grad,) = torch_loss_and_grads(fn, x, t, kw, cot)
        actual, (grad,) = jax_loss_and_grads(fn, x, t, kw, cot)
        np.testing.assert_array_equal(np.asarray(actual), expected)  # nan == nan here
        np.testing.assert_array_equal(np.asarray(grad), expected_grad)
        if reduction == "mean":
            assert np.isnan(expected) and not np.any(expected_grad)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_at_zero_and_one(dtype: type) -> None:
    """torch clamps each log at -100 and bounds the input gradient by ``1e-12`` in the
    denominator; the target gradient is ``-logit(x)`` (infinite at 0 and 1)."""
    x = np.array([0.0, 1e-30, 1e-13, 0.5, 1 - 1e-7, 1.0, 1.0, 0.0], dtype=dtype)
    t = np.array([1.0, 1.0, 1.0, 0.3, 0.0, 0.0, 1.0, 0.0], dtype=dtype)
    kw = {"reduction": "none"}
    cot = np.linspace(0.5, 1.5, x.size).astype(dtype)
    expected, expected_grads = torch_loss_and_grads("binary_cross_entropy", x, t, kw, cot)
    actual, grads = jax_loss_and_grads("binary_cross_entropy", x, t, kw, cot)
    tol = tolerance(dtype)
    assert np.all(np.isfinite(expected)) and np.all(np.isfinite(expected_grads[0]))
    assert_trees_all_close(actual, expected, rtol=tol.rtol, atol=tol.atol)
    assert_trees_all_close(grads, expected_grads, rtol=tol.rtol, atol=tol.atol)


# --------------------------------------------------------------------------------------------
# jit, and the optax look-alikes that do not match torch.
# --------------------------------------------------------------------------------------------


def test_losses_jit_and_grad_under_jit(np_rng: np.random.Generator) -> None:
    """Every loss traces (one jit for all), and the jitted values and gradients are eager's."""
    dtype = np.float64
    # The cases with Python-side logic that could break tracing: the shape/range checks, the
    # ignore/smoothing masks, BCE's custom_vjp, smooth_l1's beta=0 dispatch. One compile.
    traced = [
        "ce-kdim-smooth-weight-ignore",
        "ce-probs-weight-smooth",
        "bce-weight",
        "smooth_l1-beta=0",
        "bce_logits-weight-pos_weight",
    ]
    drawn = [(c.fn, *c.draw(np_rng, dtype)) for c in CASES if c.id in traced]
    assert len(drawn) == len(traced)

    def all_losses(xs: list, ts: list) -> list:
        out = []
        for (fn, _, _, kw), x, t in zip(drawn, xs, ts, strict=True):
            out.append(
                jax.value_and_grad(lambda x, t, fn=fn, kw=kw: getattr(losses, fn)(x, t, **kw))(x, t)
            )
        return out

    xs = [jnp.asarray(d[1]) for d in drawn]
    ts = [jnp.asarray(d[2]) for d in drawn]
    tol = tolerance(dtype)
    assert_trees_all_close(
        jax.jit(all_losses)(xs, ts), all_losses(xs, ts), rtol=tol.rtol, atol=tol.atol
    )


def test_optax_l2_loss_is_half_mse(np_rng: np.random.Generator) -> None:
    x, t = np_rng.standard_normal((2, *S2))
    expected = F.mse_loss(torch.tensor(x), torch.tensor(t)).numpy()
    tol = tolerance(np.float64)
    assert_trees_all_close(losses.mse_loss(x, t), expected, rtol=tol.rtol, atol=tol.atol)
    assert_trees_all_close(2 * optax.l2_loss(x, t).mean(), expected, rtol=tol.rtol, atol=tol.atol)
    assert not np.isclose(float(optax.l2_loss(x, t).mean()), expected, rtol=0.1)


def test_optax_cross_entropy_lacks_weighted_mean_and_ignore(np_rng: np.random.Generator) -> None:
    """optax's integer-label cross entropy has classes last and no weight/ignore_index; the
    obvious ``mean`` of weighted or masked per-sample losses is not torch's mean."""
    x = _logits(np_rng, SK, np.float64)  # (N, C, d1)
    t = _class_targets(np_rng, (SK[0], SK[2]), SK[1], IGNORE)
    w = _weight(np_rng, SK[1], np.float64)
    tol = tolerance(np.float64)
    tx, tt, tw = torch.tensor(x), torch.tensor(t), torch.tensor(w)
    safe = np.where(t == IGNORE, 0, t)
    per = optax.softmax_cross_entropy_with_integer_labels(jnp.moveaxis(x, 1, -1), safe)
    kept = t != IGNORE
    # Unweighted, nothing ignored: the same per-sample losses once classes are moved last.
    assert_trees_all_close(
        per, F.cross_entropy(tx, torch.tensor(safe), reduction="none"), rtol=tol.rtol, atol=tol.atol
    )
    expected = F.cross_entropy(tx, tt, weight=tw).numpy()
    naive = jnp.mean(per * w[safe] * kept)
    assert not np.isclose(float(naive), expected, rtol=1e-3), "naive mean should differ"
    assert_trees_all_close(
        jnp.sum(per * w[safe] * kept) / jnp.sum(w[safe] * kept),
        expected,
        rtol=tol.rtol,
        atol=tol.atol,
    )
    assert_trees_all_close(
        losses.cross_entropy(x, t, weight=w), expected, rtol=tol.rtol, atol=tol.atol
    )


# --------------------------------------------------------------------------------------------
# Argument validation: clear errors that say what is wrong and how to fix it.
# --------------------------------------------------------------------------------------------

_X = np.zeros((4, 3))
_P = np.full((4, 3), 0.5)
_T = np.zeros(4, dtype=np.int64)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        pytest.param(
            lambda: losses.mse_loss(_X, _X, reduction="avg"), "reduction='avg'", id="bad-reduction"
        ),
        pytest.param(
            lambda: losses.cross_entropy(_X, _T, reduction="elementwise_mean"),
            "use 'mean', 'sum' or 'none'",
            id="ce-bad-reduction",
        ),
        pytest.param(lambda: losses.mse_loss(_X, np.zeros((4, 1))), "reshape", id="mse-shape"),
        pytest.param(
            lambda: losses.l1_loss(_X[:, :1], _X[:, 0]), r"target shape \(4,\)", id="l1-shape"
        ),
        pytest.param(
            lambda: losses.binary_cross_entropy(_P, _P[:, :1]), "same shape", id="bce-shape"
        ),
        pytest.param(
            lambda: losses.binary_cross_entropy(_X - 1, _P), "between 0 and 1", id="bce-range"
        ),
        pytest.param(
            lambda: losses.binary_cross_entropy_with_logits(_X, _P, pos_weight=np.ones(4)),
            "pos_weight of shape",
            id="bce_logits-pos_weight",
        ),
        pytest.param(
            lambda: losses.cross_entropy(_X, _T[:, None]),
            r"without the class",
            id="ce-target-shape",
        ),
        pytest.param(
            lambda: losses.cross_entropy(_X, _T.astype(np.float64)),
            "class probabilities",
            id="ce-float-indices",
        ),
        pytest.param(
            lambda: losses.nll_loss(_X, _T.astype(np.float32)),
            "integer dtype",
            id="nll-float-target",
        ),
        pytest.param(
            lambda: losses.cross_entropy(_X, _T + 3), "out of bounds", id="ce-target-range"
        ),
        pytest.param(
            lambda: losses.cross_entropy(_X, _T, weight=np.ones(4)),
            r"shape \(C,\)",
            id="ce-weight-shape",
        ),
        pytest.param(
            lambda: losses.cross_entropy(_X, _P, ignore_index=0),
            "ignore_index",
            id="ce-probs-ignore_index",
        ),
        pytest.param(
            lambda: losses.cross_entropy(_X, _T, label_smoothing=1.5),
            "label_smoothing",
            id="ce-smoothing",
        ),
        pytest.param(
            lambda: losses.cross_entropy(np.float64(1.0), _T[0]), "class dimension", id="ce-scalar"
        ),
        pytest.param(lambda: losses.smooth_l1_loss(_X, _X, beta=-1.0), "beta", id="beta"),
        pytest.param(lambda: losses.huber_loss(_X, _X, delta=0.0), "delta", id="delta"),
    ],
)
def test_invalid_arguments_raise(call: Callable[[], Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("bad", [3, -1, -2], ids=["C", "minus1", "minus2"])
def test_class_target_out_of_range_is_nan_under_jit(fn: str, bad: int) -> None:
    # torch raises (and so do these losses on concrete targets, above); inside jit nothing can
    # raise, so the loss must not come out looking fine: a negative target would otherwise be
    # read from the end of the class dimension, as Python indexing does.
    t = _T.copy()
    t[1] = bad
    loss = getattr(losses, fn)
    out = jax.jit(lambda x, t: loss(x, t, reduction="none"))(_X, t)
    assert np.isnan(out[1]) and np.isfinite(np.delete(np.asarray(out), 1)).all(), out
    assert np.isnan(jax.jit(loss)(_X, t))
    with pytest.raises(ValueError, match=f"target {bad} is out of bounds for 3 classes"):
        loss(_X, t)
    ignored = t.copy()
    ignored[1] = IGNORE  # ignore_index is still skipped, not nan
    assert np.isfinite(jax.jit(loss)(_X, ignored))
