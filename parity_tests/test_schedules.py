"""jaxnets.schedules vs torch.optim.lr_scheduler, epoch by epoch, and SGD + StepLR end to end.

torch's schedulers are stepped as users step them (``scheduler.step()`` after each epoch) and
the lr of each epoch is read from ``get_last_lr()``; the JAX schedule evaluated at that epoch
must agree to the float64 ``eval`` tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from jaxnets import optim, schedules
from jaxnets.testing import assert_trees_all_close
from jaxnets.tolerances import tolerance

N_EPOCHS = 12
LR = 0.1
LRS = torch.optim.lr_scheduler

# (id, torch scheduler factory, jaxnets schedule): same arguments on both sides.
SCHEDULES = [
    ("step_lr-3", lambda o: LRS.StepLR(o, 3), schedules.step_lr(LR, 3)),
    ("step_lr-2-gamma=0.5", lambda o: LRS.StepLR(o, 2, 0.5), schedules.step_lr(LR, 2, 0.5)),
    (
        "multi_step_lr-repeated-milestone",
        lambda o: LRS.MultiStepLR(o, [2, 5, 5, 9], 0.5),
        schedules.multi_step_lr(LR, [9, 5, 2, 5], 0.5),
    ),
    ("multi_step_lr-none", lambda o: LRS.MultiStepLR(o, []), schedules.multi_step_lr(LR, [])),
    ("exponential_lr", lambda o: LRS.ExponentialLR(o, 0.9), schedules.exponential_lr(LR, 0.9)),
    (
        "cosine-T_max=12",
        lambda o: LRS.CosineAnnealingLR(o, 12),
        schedules.cosine_annealing_lr(LR, 12),
    ),
    (  # beyond T_max: torch's recursion continues the cosine back up
        "cosine-T_max=4-beyond",
        lambda o: LRS.CosineAnnealingLR(o, 4),
        schedules.cosine_annealing_lr(LR, 4),
    ),
    (
        "cosine-T_max=5-eta_min",
        lambda o: LRS.CosineAnnealingLR(o, 5, eta_min=0.01),
        schedules.cosine_annealing_lr(LR, 5, eta_min=0.01),
    ),
]


def torch_epoch_lrs(make: Callable[[torch.optim.Optimizer], Any], n_epochs: int) -> np.ndarray:
    """The lr torch uses in each epoch, stepping the scheduler once per epoch."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=LR)
    sched = make(opt)
    lrs = []
    for _ in range(n_epochs):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return np.array(lrs)


@pytest.mark.parametrize(
    ("make_torch", "schedule"), [pytest.param(t, j, id=i) for i, t, j in SCHEDULES]
)
def test_schedule_matches_torch_scheduler_step(
    make_torch: Callable, schedule: schedules.Schedule
) -> None:
    expected = torch_epoch_lrs(make_torch, N_EPOCHS)
    actual = np.array([schedule(e) for e in range(N_EPOCHS)])
    tol = tolerance(np.float64)
    assert_trees_all_close(actual, expected, rtol=tol.rtol, atol=tol.atol)


def test_schedules_jit_and_vmap() -> None:
    """Traced counts give the eager values (one compile for all schedules)."""
    epochs = jnp.arange(N_EPOCHS)
    traced = jax.jit(lambda e: [jax.vmap(s)(e) for _, _, s in SCHEDULES])(epochs)
    eager = [np.array([s(e) for e in range(N_EPOCHS)]) for _, _, s in SCHEDULES]
    tol = tolerance(np.float64)
    assert_trees_all_close(traced, eager, rtol=tol.rtol, atol=tol.atol)


def test_cosine_closed_form_equals_torch_recursion_far_beyond_t_max() -> None:
    """The closed form and torch's recursive ``get_lr`` agree over several periods."""
    expected = torch_epoch_lrs(lambda o: LRS.CosineAnnealingLR(o, 3, eta_min=0.002), 40)
    schedule = schedules.cosine_annealing_lr(LR, 3, eta_min=0.002)
    actual = np.array([schedule(e) for e in range(40)])
    tol = tolerance(np.float64)
    assert_trees_all_close(actual, expected, rtol=tol.rtol, atol=tol.atol)
    assert actual[6] == pytest.approx(LR)  # back at the top after 2*T_max epochs


def test_per_epoch_holds_each_epoch_lr_for_its_steps() -> None:
    stepwise = schedules.per_epoch(schedules.step_lr(1.0, 1, 0.5), steps_per_epoch=3)
    actual = [float(stepwise(c)) for c in range(9)]
    assert actual == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]


# --------------------------------------------------------------------------------------------
# End to end: an optimizer driven per step by an epoch schedule, vs torch + scheduler.step().
# --------------------------------------------------------------------------------------------

SHAPES = {"weight": (6, 5), "bias": (5,)}  # shared with test_optim/test_losses (compile reuse)
STEPS_PER_EPOCH = 5
EPOCHS = 5

END_TO_END = [
    pytest.param(
        lambda ps: torch.optim.SGD(ps, lr=LR),
        lambda o: LRS.StepLR(o, 2),
        lambda s: optim.sgd(s),
        schedules.step_lr(LR, 2),
        id="sgd-step_lr",
    ),
    pytest.param(
        lambda ps: torch.optim.SGD(ps, lr=LR, momentum=0.9, dampening=0.1, weight_decay=0.01),
        lambda o: LRS.MultiStepLR(o, [1, 3]),
        lambda s: optim.sgd(s, momentum=0.9, dampening=0.1, weight_decay=0.01),
        schedules.multi_step_lr(LR, [1, 3]),
        id="sgd-momentum-multi_step_lr",
    ),
    pytest.param(
        lambda ps: torch.optim.AdamW(ps, lr=LR),
        lambda o: LRS.CosineAnnealingLR(o, 3),
        lambda s: optim.adamw(s),
        schedules.cosine_annealing_lr(LR, 3),
        id="adamw-cosine",
    ),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(("make_opt", "make_sched", "make_tx", "schedule"), END_TO_END)
def test_optimizer_with_epoch_schedule_matches_torch(
    make_opt: Callable,
    make_sched: Callable,
    make_tx: Callable,
    schedule: schedules.Schedule,
    dtype: type,
    np_rng: np.random.Generator,
) -> None:
    params = {k: np_rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
    n_steps = STEPS_PER_EPOCH * EPOCHS
    grads = [
        {k: np_rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
        for _ in range(n_steps)
    ]

    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = make_opt(list(tparams.values()))
    sched = make_sched(opt)
    for epoch in range(EPOCHS):
        for step in range(STEPS_PER_EPOCH):
            for k, p in tparams.items():
                p.grad = torch.tensor(grads[epoch * STEPS_PER_EPOCH + step][k])
            opt.step()
        sched.step()
    expected = {k: p.detach().numpy() for k, p in tparams.items()}

    tx = make_tx(schedules.per_epoch(schedule, steps_per_epoch=STEPS_PER_EPOCH))
    p = jax.device_put(params)
    state = tx.init(p)
    for g in grads:
        updates, state = tx.update(g, state, p)
        p = optax.apply_updates(p, updates)
    assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(p))
    tol = tolerance(dtype, kind="trajectory")
    assert_trees_all_close(p, expected, rtol=tol.rtol, atol=tol.atol)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        pytest.param(lambda: schedules.step_lr(LR, 0), "step_size", id="step_size"),
        pytest.param(lambda: schedules.multi_step_lr(LR, [-1]), "milestones", id="milestones"),
        pytest.param(lambda: schedules.cosine_annealing_lr(LR, 0), "T_max", id="T_max"),
        pytest.param(
            lambda: schedules.per_epoch(schedules.exponential_lr(LR, 0.9), 0),
            "steps_per_epoch",
            id="steps_per_epoch",
        ),
    ],
)
def test_invalid_arguments_raise(call: Callable[[], Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


NAN = math.nan


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        pytest.param(
            lambda: schedules.step_lr(NAN, 2), ValueError, "lr=nan is not finite", id="step-nan-lr"
        ),
        pytest.param(
            lambda: schedules.step_lr(-0.1, 2), ValueError, "lr=-0.1 is negative", id="step-neg-lr"
        ),
        pytest.param(
            lambda: schedules.step_lr(LR, 2, NAN), ValueError, "gamma=nan", id="step-nan-gamma"
        ),
        pytest.param(
            lambda: schedules.multi_step_lr(math.inf, [1]), ValueError, "lr=inf", id="multi-inf-lr"
        ),
        pytest.param(
            lambda: schedules.exponential_lr(LR, NAN), ValueError, "gamma=nan", id="exp-nan-gamma"
        ),
        pytest.param(
            lambda: schedules.exponential_lr(-1.0, 0.9), ValueError, "negative", id="exp-neg-lr"
        ),
        pytest.param(
            lambda: schedules.cosine_annealing_lr(NAN, 4), ValueError, "lr=nan", id="cos-nan-lr"
        ),
        pytest.param(
            lambda: schedules.cosine_annealing_lr(LR, 4, math.inf),
            ValueError,
            "eta_min=inf",
            id="cos-inf-eta_min",
        ),
        # integer arguments: a float (NaN included), bool or str is a TypeError
        pytest.param(
            lambda: schedules.cosine_annealing_lr(LR, NAN),
            TypeError,
            "T_max=nan",
            id="cos-nan-T_max",
        ),
        pytest.param(
            lambda: schedules.step_lr(LR, 2.0), TypeError, "step_size=2.0", id="step-float-size"
        ),
        pytest.param(
            lambda: schedules.step_lr(LR, True), TypeError, "step_size=True", id="step-bool-size"
        ),
        pytest.param(
            lambda: schedules.multi_step_lr(LR, [2, 2.5]),
            TypeError,
            r"milestones\[1\]=2.5",
            id="multi-float",
        ),
        pytest.param(
            lambda: schedules.per_epoch(schedules.exponential_lr(LR, 0.9), "3"),
            TypeError,
            "steps_per_epoch='3'",
            id="per_epoch-str",
        ),
        pytest.param(
            lambda: schedules.exponential_lr("0.1", 0.9), TypeError, "lr='0.1'", id="exp-str-lr"
        ),
    ],
)
def test_bad_numbers_raise(call: Callable[[], Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_numpy_integers_are_accepted() -> None:
    """operator.index: numpy integers (e.g. from np.arange or a config array) work as ints."""
    pairs = [
        (schedules.step_lr(LR, np.int64(3)), schedules.step_lr(LR, 3)),
        (schedules.multi_step_lr(LR, np.array([2, 5])), schedules.multi_step_lr(LR, [2, 5])),
        (schedules.cosine_annealing_lr(LR, np.int32(4)), schedules.cosine_annealing_lr(LR, 4)),
        (
            schedules.per_epoch(schedules.step_lr(LR, 1), np.int64(3)),
            schedules.per_epoch(schedules.step_lr(LR, 1), 3),
        ),
    ]
    for numpy_int, python_int in pairs:
        for e in range(N_EPOCHS):
            assert float(numpy_int(e)) == float(python_int(e))


def test_unchecked_torch_arguments_stay_accepted() -> None:
    """torch's schedulers check neither gamma nor eta_min: a finite negative one is kept."""
    expected = torch_epoch_lrs(lambda o: LRS.CosineAnnealingLR(o, 5, eta_min=-0.01), N_EPOCHS)
    schedule = schedules.cosine_annealing_lr(LR, 5, eta_min=-0.01)
    actual = np.array([schedule(e) for e in range(N_EPOCHS)])
    tol = tolerance(np.float64)
    assert_trees_all_close(actual, expected, rtol=tol.rtol, atol=tol.atol)


def test_math_is_torch_closed_form() -> None:
    """The documented formulas, spelled out once more in plain Python."""
    assert float(schedules.cosine_annealing_lr(LR, 10, 0.01)(3)) == pytest.approx(
        0.01 + (LR - 0.01) * (1 + math.cos(math.pi * 3 / 10)) / 2, rel=1e-15
    )
    assert float(schedules.step_lr(LR, 4, 0.3)(9)) == pytest.approx(LR * 0.3**2, rel=1e-15)
