"""jaxnets.schedules vs torch.optim.lr_scheduler, step by step, and with optimizers end to end.

torch's schedulers are stepped as users step them (``scheduler.step()`` after each epoch, or
each batch for ``CyclicLR``/``OneCycleLR``; ``step(metric)`` for ``ReduceLROnPlateau``) and
the lr is read from the optimizer; the JAX schedule evaluated at that count must agree to the
float64 ``eval`` tolerance. The cases (torch's optim_db and test_lrscheduler configurations,
and every option) live in ``_schedule_cases.py``, which also prints the per-class table.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import _schedule_cases as cases
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


# --------------------------------------------------------------------------------------------
# Every torch.optim.lr_scheduler class against torch's own tables (parity_tests/_schedule_cases):
# optim_db's scheduler inputs, test_lrscheduler's configurations, and every option.
# --------------------------------------------------------------------------------------------

CASES = cases.all_cases()
ERRORS = cases.all_errors()


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c.cls}-{c.id}") for c in CASES])
def test_case_matches_torch(case: cases.Case) -> None:
    """torch's lrs, step by step (or per metric / per fractional epoch), in float64; a case
    jaxnets does not support is refused with its stated reason."""
    if case.unsupported is not None:
        with pytest.raises((ValueError, TypeError), match=case.unsupported):
            case.jax()
        return
    expected, actual = cases.torch_lrs(case), cases.jax_lrs(case)
    tol = tolerance(np.float64)
    assert_trees_all_close(actual, expected, rtol=tol.rtol, atol=tol.atol)


def test_every_scheduler_class_has_cases() -> None:
    expected = {
        "StepLR",
        "MultiStepLR",
        "ConstantLR",
        "LinearLR",
        "ExponentialLR",
        "PolynomialLR",
        "CosineAnnealingLR",
        "LambdaLR",
        "MultiplicativeLR",
        "CosineAnnealingWarmRestarts",
        "CyclicLR",
        "OneCycleLR",
        "SequentialLR",
        "ChainedScheduler",
        "ReduceLROnPlateau",
    }
    supported = {c.cls for c in CASES if c.unsupported is None}
    assert supported == expected
    assert expected <= {e.cls for e in ERRORS} | {"MultiStepLR", "ExponentialLR"}
    assert any(c.source.startswith("optim_db") for c in CASES)


@pytest.mark.parametrize("case", [pytest.param(e, id=f"{e.cls}-{e.id}") for e in ERRORS])
def test_error_inputs_raise_where_torch_raises(case: cases.ErrorCase) -> None:
    """torch raises (building or stepping) -> jaxnets raises a ValueError or TypeError."""
    assert cases.run_error(case), f"{case.id}: torch raised but jaxnets did not (or vice versa)"


@pytest.mark.parametrize(("call", "why"), [pytest.param(f, w, id=c) for c, w, f in cases.STRICTER])
def test_stricter_than_torch(call: Callable[[], Any], why: str) -> None:
    """Values torch accepts and silently bends; jaxnets refuses them."""
    with pytest.raises((ValueError, TypeError)):
        call()


# torch's scheduler fields -> jaxnets arguments (what a run handoff reads), checked on every
# case built from one torch scheduler whose lambdas, if any, are jnp-traceable (a lambda with a
# Python `if` on the epoch is not: it must be rewritten with jnp.where).
UNTRACEABLE_TORCH_LAMBDAS = {
    "seq-restart-multiplicative",
    "lambda-warmup",
    "multiplicative-by-epoch",
}
MAPPED = [
    c
    for c in CASES
    if c.unsupported is None
    and c.id not in UNTRACEABLE_TORCH_LAMBDAS
    and not c.source.startswith("optim_db")  # several schedulers: from_torch_list, checked there
    and not c.id.startswith(("plateau-compound", "compound_"))
    and c.id not in ("plateau-before-and-after", "cawr-fractional-epochs")
]


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c.cls}-{c.id}") for c in MAPPED])
def test_torch_fields_map_onto_the_schedule(case: cases.Case) -> None:
    opt = cases._optimizer(case)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", cases._TORCH_ORDER_WARNING, UserWarning)
        sched = case.torch(opt)
    mapped = cases.from_torch(sched)
    tol = tolerance(np.float64)
    assert_trees_all_close(
        cases.jax_lrs(case, mapped), cases.jax_lrs(case), rtol=tol.rtol, atol=tol.atol
    )


RESUMED = [
    ("StepLR", lambda o: LRS.StepLR(o, 3, 0.5)),
    ("MultiStepLR", lambda o: LRS.MultiStepLR(o, [2, 5, 5, 9], 0.5)),
    ("ConstantLR", lambda o: LRS.ConstantLR(o, 0.25, 6)),
    ("LinearLR", lambda o: LRS.LinearLR(o, 0.2, 0.9, 8)),
    ("ExponentialLR", lambda o: LRS.ExponentialLR(o, 0.9)),
    ("PolynomialLR", lambda o: LRS.PolynomialLR(o, 9, 1.5)),
    ("CosineAnnealingLR", lambda o: LRS.CosineAnnealingLR(o, 4, 0.01)),
    ("CosineAnnealingWarmRestarts", lambda o: LRS.CosineAnnealingWarmRestarts(o, 2, 2, 0.01)),
    ("CyclicLR", lambda o: LRS.CyclicLR(o, 0.01, 0.1, 3, 2, "triangular2", cycle_momentum=False)),
    ("OneCycleLR", lambda o: LRS.OneCycleLR(o, 0.1, 20, pct_start=0.25, cycle_momentum=False)),
    (
        "SequentialLR",
        lambda o: LRS.SequentialLR(
            o, [LRS.LinearLR(o, 0.5, 1.0, 3), LRS.CosineAnnealingLR(o, 6)], [4]
        ),
    ),
    (
        "ChainedScheduler",
        lambda o: LRS.ChainedScheduler(
            [LRS.CosineAnnealingLR(o, 4, 0.01), LRS.ExponentialLR(o, 0.9)]
        ),
    ),
]


@pytest.mark.parametrize("make", [pytest.param(m, id=n) for n, m in RESUMED])
def test_resume_at_torch_last_epoch_is_an_offset(make: Callable) -> None:
    """A torch scheduler stepped k times continues as offset(schedule, last_epoch)."""
    k, more = 7, 12
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=LR)
    sched = make(opt)
    for _ in range(k):
        opt.step()
        sched.step()
    # A ChainedScheduler keeps no count of its own: its members' last_epoch is the count.
    last_epoch = getattr(sched, "last_epoch", None) or sched._schedulers[0].last_epoch
    schedule = schedules.offset(cases.from_torch(sched), last_epoch)
    expected = []
    for _ in range(more):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    actual = np.array([schedule(i) for i in range(more)])
    tol = tolerance(np.float64)
    assert_trees_all_close(actual, np.array(expected), rtol=tol.rtol, atol=tol.atol)


def test_plateau_resumes_from_torch_state() -> None:
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=LR)
    sched = LRS.ReduceLROnPlateau(opt, patience=2, cooldown=1, factor=0.5)
    metrics = cases.PLATEAU_LOSS
    for m in metrics[:9]:
        opt.step()
        sched.step(m)
    sd = sched.state_dict()
    plateau = cases.from_torch(sched)
    state = plateau.init(
        sched.get_last_lr()[0],
        best=sd["best"],
        num_bad_epochs=sd["num_bad_epochs"],
        cooldown_counter=sd["cooldown_counter"],
        last_epoch=sd["last_epoch"],
    )
    expected, actual = [], []
    for m in metrics[9:]:
        opt.step()
        sched.step(m)
        expected.append(opt.param_groups[0]["lr"])
        state = plateau.step(state, m)
        actual.append(float(state.lr))
    assert actual == pytest.approx(expected, rel=1e-15)
    assert int(state.last_epoch) == sched.last_epoch


def test_every_class_traces_under_one_jit() -> None:
    """The optax use: a traced scalar count (one compile for all), values as eager."""
    picks = {}
    for c in CASES:
        if c.unsupported is None and c.metrics is None and c.epochs is None:
            picks.setdefault(c.cls, c.jax())
    assert len(picks) == 14
    fns = list(picks.values())
    traced = jax.jit(lambda k: [f(k) for f in fns])
    for k in (0, 3, 9):
        tol = tolerance(np.float64)
        assert_trees_all_close(traced(k), [f(k) for f in fns], rtol=tol.rtol, atol=tol.atol)


def test_one_cycle_beyond_total_steps_raises_under_jit_too() -> None:
    schedule = schedules.one_cycle_lr(0.1, 10, cycle_momentum=False)
    # Step total_steps itself is allowed (torch extrapolates the last phase a step past its end).
    assert float(jax.jit(schedule)(10)) == pytest.approx(float(schedule(10)), rel=1e-15)
    with pytest.raises(ValueError, match="Tried to step 11 times"):
        schedule(11)
    with pytest.raises(ValueError, match="Tried to step 11 times"):
        jax.block_until_ready(jax.jit(schedule)(11))


def test_plateau_step_jits() -> None:
    plateau = schedules.ReduceLROnPlateau(patience=1, cooldown=1, factor=0.5)
    step = jax.jit(plateau.step)
    eager = jitted = plateau.init(LR)
    for m in cases.PLATEAU_LOSS[:12]:
        eager, jitted = plateau.step(eager, m), step(jitted, m)
        assert float(jitted.lr) == float(eager.lr)
        assert int(jitted.num_bad_epochs) == int(eager.num_bad_epochs)


def test_chained_members_must_share_the_lr() -> None:
    with pytest.raises(ValueError, match="same lr"):
        schedules.chained_scheduler([schedules.step_lr(0.1, 2), schedules.step_lr(0.2, 2)])
    with pytest.raises(ValueError, match="built with lr"):
        schedules.ReduceLROnPlateau(before=[schedules.step_lr(0.2, 2)]).init(0.1)


def test_offset_and_fractional_epoch_arguments() -> None:
    s = schedules.exponential_lr(1.0, 0.5)
    assert float(schedules.offset(s, 3)(1)) == 0.5**4
    f = schedules.fractional_epoch(lambda e: e, 4)
    assert [float(f(c)) for c in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]
    with pytest.raises(ValueError, match="steps=-1"):
        schedules.offset(s, -1)
    with pytest.raises(TypeError, match="steps_per_epoch"):
        schedules.fractional_epoch(s, 2.0)


# --------------------------------------------------------------------------------------------
# End to end with optimizers: per-batch schedules, a sequence per epoch, a plateau fed through
# the optimizer state.
# --------------------------------------------------------------------------------------------


def _run_torch(
    make_opt: Callable,
    make_sched: Callable,
    grads: list,
    params: dict,
    per_batch: bool,
    metrics: Any = None,
) -> dict:
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = make_opt(list(tparams.values()))
    sched = make_sched(opt)
    for epoch in range(EPOCHS):
        for step in range(STEPS_PER_EPOCH):
            for k, p in tparams.items():
                p.grad = torch.tensor(grads[epoch * STEPS_PER_EPOCH + step][k])
            opt.step()
            if per_batch:
                sched.step()
        if metrics is not None:
            sched.step(metrics[epoch])
        elif not per_batch:
            sched.step()
    return {k: p.detach().numpy() for k, p in tparams.items()}


def _grads(np_rng: np.random.Generator) -> tuple[dict, list]:
    params = {k: np_rng.standard_normal(s) for k, s in SHAPES.items()}
    grads = [
        {k: np_rng.standard_normal(s) for k, s in SHAPES.items()}
        for _ in range(STEPS_PER_EPOCH * EPOCHS)
    ]
    return params, grads


@pytest.mark.parametrize(
    ("make_opt", "make_sched", "tx", "per_batch"),
    [
        pytest.param(
            lambda ps: torch.optim.SGD(ps, lr=LR, momentum=0.9),
            lambda o: LRS.OneCycleLR(
                o, 0.5, total_steps=STEPS_PER_EPOCH * EPOCHS, cycle_momentum=False, three_phase=True
            ),
            lambda: optim.sgd(
                schedules.one_cycle_lr(
                    0.5, STEPS_PER_EPOCH * EPOCHS, cycle_momentum=False, three_phase=True
                ),
                momentum=0.9,
            ),
            True,
            id="sgd-one_cycle-per_batch",
        ),
        pytest.param(
            lambda ps: torch.optim.Adam(ps, lr=LR),
            lambda o: LRS.CyclicLR(o, 0.01, 0.1, 3, 4, "exp_range", 0.97, cycle_momentum=False),
            lambda: optim.adam(
                schedules.cyclic_lr(0.01, 0.1, 3, 4, "exp_range", 0.97, cycle_momentum=False)
            ),
            True,
            id="adam-cyclic-per_batch",
        ),
        pytest.param(
            lambda ps: torch.optim.AdamW(ps, lr=LR),
            lambda o: LRS.SequentialLR(
                o, [LRS.LinearLR(o, 0.1, 1.0, 2), LRS.CosineAnnealingLR(o, 3)], [2]
            ),
            lambda: optim.adamw(
                schedules.per_epoch(
                    schedules.sequential_lr(
                        [
                            schedules.linear_lr(LR, 0.1, 1.0, 2),
                            schedules.cosine_annealing_lr(LR, 3),
                        ],
                        [2],
                    ),
                    STEPS_PER_EPOCH,
                )
            ),
            False,
            id="adamw-warmup_cosine-per_epoch",
        ),
    ],
)
def test_optimizer_with_new_schedules_matches_torch(
    make_opt: Callable,
    make_sched: Callable,
    tx: Callable,
    per_batch: bool,
    np_rng: np.random.Generator,
) -> None:
    params, grads = _grads(np_rng)
    expected = _run_torch(make_opt, make_sched, grads, params, per_batch)
    t = tx()
    p = jax.device_put(params)
    state = t.init(p)
    update = jax.jit(t.update)
    for g in grads:
        updates, state = update(g, state, p)
        p = optax.apply_updates(p, updates)
    tol = tolerance(np.float64, kind="trajectory")
    assert_trees_all_close(p, expected, rtol=tol.rtol, atol=tol.atol)


def test_sgd_with_reduce_lr_on_plateau_matches_torch(np_rng: np.random.Generator) -> None:
    """The plateau's lr reaches the optimizer through inject_lr/set_lr, once per epoch."""
    params, grads = _grads(np_rng)
    metrics = [1.0, 0.9, 0.9, 0.9, 0.9]
    expected = _run_torch(
        lambda ps: torch.optim.SGD(ps, lr=LR, momentum=0.9, nesterov=True),
        lambda o: LRS.ReduceLROnPlateau(o, patience=1, factor=0.5),
        grads,
        params,
        per_batch=False,
        metrics=metrics,
    )
    tx = schedules.inject_lr(optim.sgd, LR, momentum=0.9, nesterov=True)
    plateau = schedules.ReduceLROnPlateau(patience=1, factor=0.5)
    pstate = plateau.init(LR)
    p = jax.device_put(params)
    state = tx.init(p)
    update = jax.jit(tx.update)
    for epoch in range(EPOCHS):
        for step in range(STEPS_PER_EPOCH):
            updates, state = update(grads[epoch * STEPS_PER_EPOCH + step], state, p)
            p = optax.apply_updates(p, updates)
        pstate = plateau.step(pstate, metrics[epoch])
        state = schedules.set_lr(state, pstate.lr)
    assert float(pstate.lr) == LR * 0.5  # one reduction, after epoch 3
    tol = tolerance(np.float64, kind="trajectory")
    assert_trees_all_close(p, expected, rtol=tol.rtol, atol=tol.atol)


def test_set_lr_needs_an_injected_optimizer() -> None:
    state = optim.sgd(LR).init({"w": jnp.zeros(2)})
    with pytest.raises(TypeError, match="inject_lr"):
        schedules.set_lr(state, 0.1)
