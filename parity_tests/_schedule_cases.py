"""The lr-scheduler cases jaxnets.schedules is measured on, and the runner that measures them.

Three sources, each case naming its own:

* ``optim_db``: the scheduler configurations torch runs with every optimizer
  (``torch.testing._internal.common_optimizers.optim_db[...].scheduler_inputs``), read live.
  Several schedulers on one optimizer are stepped in turn each epoch, as torch's optimizer
  tests do; the metric for ``ReduceLROnPlateau`` is a fixed loss curve that plateaus
  (torch's tests feed their model's loss).
* ``test_lrscheduler.<test>``: the configurations of torch's ``test/optim/test_lrscheduler.py``
  (not shipped in the wheel, so transcribed), on parameter group 0 where torch uses two.
* ``options``: every option of every class, the corners torch's recursion makes (``total_iters=0``,
  beyond ``T_max``, milestones at 0, restarts inside ``SequentialLR``...).

Each case runs torch's real scheduler on a float64 SGD optimizer (``get_last_lr`` after each
``step()``, or after ``step(metric)``/``step(epoch)``) and the jaxnets schedule at the same
counts; a case jaxnets refuses on purpose names the reason (``unsupported``). Error cases:
torch raises (at construction or when stepped) -> jaxnets raises.

``python parity_tests/_schedule_cases.py`` prints the per-class table.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch

from jaxnets import schedules as S
from jaxnets.tolerances import tolerance
from torchref.handoff import epoch_schedule

T = torch.optim.lr_scheduler
LR = 0.1
LR_T = 0.05  # test_lrscheduler's param group 0

# torch warns when a scheduler steps before the optimizer has: a nested ChainedScheduler in a
# SequentialLR does so by construction, and the lr values are what is compared here.
_TORCH_ORDER_WARNING = "Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`"


@dataclass(frozen=True)
class Case:
    """One configuration: torch scheduler(s) on an optimizer vs a jaxnets schedule."""

    id: str
    cls: str  # the torch class the case is counted under
    source: str
    torch: Callable[[torch.optim.Optimizer], Any]  # a scheduler, or a list stepped in turn
    jax: Callable[[], Any]  # an LRSchedule or a ReduceLROnPlateau
    steps: int = 12  # compare counts 0..steps
    lr: float = LR
    metrics: tuple[float, ...] | None = None  # ReduceLROnPlateau: one per epoch
    epochs: tuple[float, ...] | None = None  # torch steps with step(epoch)
    unsupported: str | None = None  # jaxnets refuses: a regex of its message
    optimizer: str = "SGD"


@dataclass(frozen=True)
class ErrorCase:
    """torch raises (constructing or stepping) and jaxnets raises."""

    id: str
    cls: str
    source: str
    torch: Callable[[torch.optim.Optimizer], Any]
    jax: Callable[[], Any]


def _steps(n: int) -> Callable[[Any], None]:
    """A torch-side helper: build, then step ``n`` times (torch raises while stepping)."""

    def run(sched: Any) -> None:
        for _ in range(n):
            sched.optimizer.step()
            sched.step()

    return run


def _stepped(make: Callable[[Any], Any], n: int) -> Callable[[Any], None]:
    return lambda o: _steps(n)(make(o))


# --------------------------------------------------------------------------------------------
# Metrics for ReduceLROnPlateau.
# --------------------------------------------------------------------------------------------

# A loss that improves, then plateaus with noise below the default rel threshold, then
# improves again: long enough for the default patience of 10 to reduce twice.
PLATEAU_LOSS = tuple(
    [1.0, 0.8, 0.7, 0.65]
    + [0.65 * (1 + 1e-5 * (i % 3)) for i in range(14)]
    + [0.5, 0.45]
    + [0.45] * 14
)


# --------------------------------------------------------------------------------------------
# test_lrscheduler.py (torch 2.x), transcribed.
# --------------------------------------------------------------------------------------------


def _torch_test_cases() -> list[Case]:
    src = "test_lrscheduler."
    c: list[Case] = []

    def add(id_: str, cls: str, test: str, t: Callable, j: Callable, **kw: Any) -> None:
        c.append(Case(id_, cls, src + test, t, j, **{"lr": LR_T, **kw}))

    add(
        "step",
        "StepLR",
        "test_step_lr",
        lambda o: T.StepLR(o, gamma=0.1, step_size=3),
        lambda: S.step_lr(LR_T, 3, gamma=0.1),
        steps=10,
    )
    add(
        "step-lr0.1",
        "StepLR",
        "test_get_last_lr_step_lr",
        lambda o: T.StepLR(o, 3, gamma=0.1),
        lambda: S.step_lr(0.1, 3, gamma=0.1),
        steps=10,
        lr=0.1,
    )
    add(
        "step-closed",
        "StepLR",
        "test_closed_form_step_lr",
        lambda o: T.StepLR(o, gamma=0.1, step_size=3),
        lambda: S.step_lr(LR_T, 3),
        steps=20,
    )
    for test, n in (("test_multi_step_lr", 10), ("test_closed_form_multi_step_lr", 20)):
        add(
            f"multistep-{n}",
            "MultiStepLR",
            test,
            lambda o: T.MultiStepLR(o, gamma=0.1, milestones=[2, 5, 9]),
            lambda: S.multi_step_lr(LR_T, [2, 5, 9], gamma=0.1),
            steps=n,
        )
    add(
        "constant",
        "ConstantLR",
        "test_constantlr",
        lambda o: T.ConstantLR(o, factor=1.0 / 2, total_iters=5),
        lambda: S.constant_lr(LR_T, 1.0 / 2, 5),
        steps=10,
    )
    add(
        "constant-closed",
        "ConstantLR",
        "test_closed_form_constantlr",
        lambda o: T.ConstantLR(o, factor=1.0 / 3, total_iters=4),
        lambda: S.constant_lr(LR_T, 1.0 / 3, 4),
        steps=20,
    )
    add(
        "linear",
        "LinearLR",
        "test_linearlr",
        lambda o: T.LinearLR(o, start_factor=1.0 / 2, total_iters=4),
        lambda: S.linear_lr(LR_T, 1.0 / 2, total_iters=4),
        steps=10,
    )
    add(
        "linear-end",
        "LinearLR",
        "test_get_last_lr_linearlr",
        lambda o: T.LinearLR(o, start_factor=1.0 / 4, end_factor=3.0 / 5, total_iters=4),
        lambda: S.linear_lr(LR_T, 1.0 / 4, 3.0 / 5, 4),
        steps=10,
    )
    add(
        "linear-closed",
        "LinearLR",
        "test_closed_form_linearlr",
        lambda o: T.LinearLR(o, start_factor=1.0 / 3, end_factor=0.7, total_iters=4),
        lambda: S.linear_lr(LR_T, 1.0 / 3, 0.7, 4),
        steps=20,
    )
    for test, n in (("test_exp_lr", 10), ("test_closed_form_exp_lr", 20)):
        add(
            f"exp-{n}",
            "ExponentialLR",
            test,
            lambda o: T.ExponentialLR(o, gamma=0.9),
            lambda: S.exponential_lr(LR_T, 0.9),
            steps=n,
        )
    add(
        "poly",
        "PolynomialLR",
        "test_poly_lr",
        lambda o: T.PolynomialLR(o, power=0.9, total_iters=5),
        lambda: S.polynomial_lr(LR_T, 5, 0.9),
        steps=10,
    )
    add(
        "poly-closed",
        "PolynomialLR",
        "test_closed_form_poly_lr",
        lambda o: T.PolynomialLR(o, power=0.9),
        lambda: S.polynomial_lr(LR_T, power=0.9),
        steps=20,
    )
    add(
        "cos",
        "CosineAnnealingLR",
        "test_cos_anneal_lr",
        lambda o: T.CosineAnnealingLR(o, T_max=10, eta_min=1e-10),
        lambda: S.cosine_annealing_lr(LR_T, 10, 1e-10),
        steps=10,
    )
    add(
        "cos-closed",
        "CosineAnnealingLR",
        "test_closed_form_cos_anneal_lr",
        lambda o: T.CosineAnnealingLR(o, T_max=5, eta_min=1e-10),
        lambda: S.cosine_annealing_lr(LR_T, 5, 1e-10),
        steps=20,
    )
    add(
        "lambda",
        "LambdaLR",
        "test_lambda_lr",
        lambda o: T.LambdaLR(o, lambda x1: 0.9**x1),
        lambda: S.lambda_lr(LR_T, lambda x1: 0.9**x1),
        steps=10,
    )
    add(
        "multiplicative",
        "MultiplicativeLR",
        "test_multiplicative_lr",
        lambda o: T.MultiplicativeLR(o, lambda x1: 0.9),
        lambda: S.multiplicative_lr(LR_T, lambda x1: 0.9),
        steps=10,
    )

    # Plateau (lr 0.5; test_reduce_lr_on_plateau8's min_lr=[0.4, 0.3] is group 0's 0.4).
    plateau = [
        (
            "1",
            dict(threshold_mode="abs", mode="min", threshold=0.01, patience=5, cooldown=5),
            [10 - i * 0.0167 for i in range(20)],
        ),
        (
            "2",
            dict(patience=5, cooldown=0, threshold_mode="abs", mode="min", threshold=0.1),
            [10 - i * 0.0165 for i in range(22)],
        ),
        (
            "3",
            dict(mode="max", patience=5, cooldown=5, threshold_mode="abs"),
            [-0.8] * 2 + [-0.234] * 20,
        ),
        (
            "4",
            dict(mode="max", patience=3, threshold_mode="rel", threshold=0.1),
            [1.5 * (1.025**i) for i in range(20)],
        ),
        (
            "5",
            dict(mode="max", threshold_mode="rel", threshold=0.1, patience=5, cooldown=5),
            [1.5 * (1.005**i) for i in range(20)],
        ),
        (
            "6",
            dict(mode="min", threshold_mode="rel", threshold=0.1),
            [1.5 * (0.85**i) for i in range(20)],
        ),
        (
            "7",
            dict(mode="min", threshold_mode="rel", threshold=0.1, patience=5, cooldown=5),
            [1] * 7 + [0.6] + [0.5] * 12,
        ),
        (
            "8",
            dict(
                mode="max", threshold_mode="rel", min_lr=0.4, threshold=0.1, patience=5, cooldown=5
            ),
            [1.5 * (1.005**i) for i in range(20)],
        ),
    ]
    for n, kw, metrics in plateau:
        add(
            f"plateau{n}",
            "ReduceLROnPlateau",
            f"test_reduce_lr_on_plateau{n}",
            lambda o, kw=kw: T.ReduceLROnPlateau(o, **kw),
            lambda kw=kw: S.ReduceLROnPlateau(**kw),
            lr=0.5,
            metrics=tuple(metrics),
        )
    # Compound: the plateau steps first, then the other scheduler.
    compound = [
        (
            "1",
            plateau[0][1],
            plateau[0][2],
            lambda o: T.StepLR(o, gamma=0.1, step_size=3),
            lambda: S.step_lr(0.5, 3, 0.1),
        ),
        (
            "2",
            plateau[1][1],
            plateau[1][2],
            lambda o: T.MultiStepLR(o, gamma=0.1, milestones=[3, 8, 12]),
            lambda: S.multi_step_lr(0.5, [3, 8, 12], 0.1),
        ),
        (
            "3",
            plateau[2][1],
            plateau[2][2],
            lambda o: T.ExponentialLR(o, gamma=0.1),
            lambda: S.exponential_lr(0.5, 0.1),
        ),
        (
            "4",
            plateau[3][1],
            plateau[3][2],
            lambda o: T.CosineAnnealingLR(o, 10, 1e-10),
            lambda: S.cosine_annealing_lr(0.5, 10, 1e-10),
        ),
        (
            "5",
            plateau[1][1],
            plateau[1][2],
            lambda o: T.LinearLR(o, start_factor=0.4, total_iters=4),
            lambda: S.linear_lr(0.5, 0.4, total_iters=4),
        ),
    ]
    for n, kw, metrics, t_other, j_other in compound:
        add(
            f"plateau-compound{n}",
            "ReduceLROnPlateau",
            f"test_compound_reduce_lr_on_plateau{n}",
            lambda o, kw=kw, t=t_other: [T.ReduceLROnPlateau(o, **kw), t(o)],
            lambda kw=kw, j=j_other: S.ReduceLROnPlateau(**kw, after=[j()]),
            lr=0.5,
            metrics=tuple(metrics),
        )

    # SequentialLR.
    add(
        "seq1",
        "SequentialLR",
        "test_sequentiallr1",
        lambda o: T.SequentialLR(
            o, [T.ExponentialLR(o, gamma=0.8), T.StepLR(o, gamma=0.1, step_size=4)], milestones=[3]
        ),
        lambda: S.sequential_lr([S.exponential_lr(LR_T, 0.8), S.step_lr(LR_T, 4, 0.1)], [3]),
        steps=19,
    )
    add(
        "seq2",
        "SequentialLR",
        "test_sequentiallr2",
        lambda o: T.SequentialLR(
            o,
            [T.ConstantLR(o, factor=0.1, total_iters=3), T.ExponentialLR(o, gamma=0.9)],
            milestones=[3],
        ),
        lambda: S.sequential_lr([S.constant_lr(LR_T, 0.1, 3), S.exponential_lr(LR_T, 0.9)], [3]),
        steps=13,
    )
    for test in ("test_sequentiallr3", "test_get_last_lr_sequentiallr"):
        add(
            f"seq3-{test[5:12]}",
            "SequentialLR",
            test,
            lambda o: T.SequentialLR(
                o,
                [
                    T.ConstantLR(o, factor=0.1, total_iters=3),
                    T.ExponentialLR(o, gamma=0.8),
                    T.StepLR(o, gamma=0.1, step_size=2),
                ],
                milestones=[3, 6],
            ),
            lambda: S.sequential_lr(
                [S.constant_lr(LR_T, 0.1, 3), S.exponential_lr(LR_T, 0.8), S.step_lr(LR_T, 2, 0.1)],
                [3, 6],
            ),
            steps=12,
        )
    add(
        "seq4",
        "SequentialLR",
        "test_sequentiallr4",
        lambda o: T.SequentialLR(
            o, [T.ConstantLR(o, factor=1), T.ConstantLR(o, factor=0.1)], milestones=[10]
        ),
        lambda: S.sequential_lr([S.constant_lr(0.1, 1), S.constant_lr(0.1, 0.1)], [10]),
        lr=0.1,
        steps=15,
    )
    add(
        "seq5-chained",
        "SequentialLR",
        "test_sequentiallr5",
        lambda o: T.SequentialLR(
            o,
            [
                T.ChainedScheduler(
                    [
                        T.LinearLR(optimizer=o, start_factor=0.1, total_iters=5),
                        T.ConstantLR(optimizer=o, factor=0.1, total_iters=5),
                    ]
                ),
                T.ConstantLR(optimizer=o, factor=0.5, total_iters=5),
            ],
            milestones=[5],
        ),
        lambda: S.sequential_lr(
            [
                S.chained_scheduler(
                    [S.linear_lr(LR_T, 0.1, total_iters=5), S.constant_lr(LR_T, 0.1, 5)]
                ),
                S.constant_lr(LR_T, 0.5, 5),
            ],
            [5],
        ),
        steps=10,
    )
    add(
        "seq-alias",
        "SequentialLR",
        "test_sequentiallr_does_not_alias_lr_and_initial_lr",
        lambda o: T.SequentialLR(
            o,
            [T.LinearLR(o, 0.1, 0.8, total_iters=4), T.LinearLR(o, 0.8, 0.1, total_iters=4)],
            milestones=[4],
        ),
        lambda: S.sequential_lr(
            [S.linear_lr(2.0, 0.1, 0.8, 4), S.linear_lr(2.0, 0.8, 0.1, 4)], [4]
        ),
        lr=2.0,
        steps=8,
    )
    add(
        "seq-nowarn",
        "SequentialLR",
        "test_sequentiallr_no_warnings",
        lambda o: T.SequentialLR(
            o,
            [
                T.LinearLR(o, start_factor=0.5, end_factor=0.1, total_iters=5),
                T.ExponentialLR(o, gamma=0.9),
            ],
            milestones=[5],
        ),
        lambda: S.sequential_lr([S.linear_lr(LR_T, 0.5, 0.1, 5), S.exponential_lr(LR_T, 0.9)], [5]),
        steps=10,
    )

    # ChainedScheduler, and the "compound" tests (several schedulers stepped in turn).
    chained = [
        (
            "chained_lr1",
            [(lambda o: T.StepLR(o, gamma=0.1, step_size=3), lambda: S.step_lr(LR_T, 3, 0.1))],
            10,
        ),
        (
            "chained_lr2",
            [
                (
                    lambda o: T.LinearLR(o, start_factor=0.4, total_iters=3),
                    lambda: S.linear_lr(LR_T, 0.4, total_iters=3),
                )
            ],
            10,
        ),
        (
            "chained_lr3",
            [
                (
                    lambda o: T.LinearLR(o, start_factor=0.4, total_iters=3),
                    lambda: S.linear_lr(LR_T, 0.4, total_iters=3),
                ),
                (
                    lambda o: T.MultiStepLR(o, milestones=[4, 8, 10], gamma=0.1),
                    lambda: S.multi_step_lr(LR_T, [4, 8, 10]),
                ),
            ],
            10,
        ),
        (
            "chained_lr4",
            [
                (lambda o: T.ExponentialLR(o, gamma=0.9), lambda: S.exponential_lr(LR_T, 0.9)),
                (
                    lambda o: T.ConstantLR(o, factor=0.2, total_iters=4),
                    lambda: S.constant_lr(LR_T, 0.2, 4),
                ),
                (lambda o: T.StepLR(o, gamma=0.1, step_size=3), lambda: S.step_lr(LR_T, 3)),
            ],
            9,
        ),
        (
            "chained_lr5",
            [
                (
                    lambda o: T.PolynomialLR(o, power=0.9, total_iters=5),
                    lambda: S.polynomial_lr(LR_T, 5, 0.9),
                ),
                (lambda o: T.ConstantLR(o, factor=0.1), lambda: S.constant_lr(LR_T, 0.1)),
            ],
            10,
        ),
    ]
    for test, pairs, n in chained:
        add(
            test,
            "ChainedScheduler",
            "test_" + test,
            lambda o, p=pairs: T.ChainedScheduler([t(o) for t, _ in p]),
            lambda p=pairs: S.chained_scheduler([j() for _, j in p]),
            steps=n,
        )
    cos10 = (
        lambda o: T.CosineAnnealingLR(o, T_max=10, eta_min=1e-10),
        lambda: S.cosine_annealing_lr(LR_T, 10, 1e-10),
    )
    step3 = (lambda o: T.StepLR(o, gamma=0.1, step_size=3), lambda: S.step_lr(LR_T, 3))
    multi = (
        lambda o: T.MultiStepLR(o, gamma=0.1, milestones=[2, 5, 9]),
        lambda: S.multi_step_lr(LR_T, [2, 5, 9]),
    )
    exp9 = (lambda o: T.ExponentialLR(o, gamma=0.9), lambda: S.exponential_lr(LR_T, 0.9))
    lin4 = (
        lambda o: T.LinearLR(o, start_factor=0.4, total_iters=4),
        lambda: S.linear_lr(LR_T, 0.4, total_iters=4),
    )
    compound = [
        ("step_and_multistep_lr", [step3, multi]),
        ("step_and_exp_lr", [step3, exp9]),
        ("exp_and_multistep_lr", [multi, exp9]),
        (
            "exp_and_linearlr",
            [
                (
                    lambda o: T.LinearLR(o, start_factor=0.4, end_factor=0.9, total_iters=4),
                    lambda: S.linear_lr(LR_T, 0.4, 0.9, 4),
                ),
                exp9,
            ],
        ),
        (
            "step_and_constantlr",
            [
                step3,
                (
                    lambda o: T.ConstantLR(o, factor=0.4, total_iters=4),
                    lambda: S.constant_lr(LR_T, 0.4, 4),
                ),
            ],
        ),
        ("linearlr_and_multistep_lr", [multi, lin4]),
        ("cosanneal_and_step_lr", [cos10, step3]),
        ("cosanneal_and_multistep_lr", [cos10, multi]),
        ("cosanneal_and_linearlr", [lin4, cos10]),
        (
            "cosanneal_and_exp_lr",
            [cos10, (lambda o: T.ExponentialLR(o, gamma=0.1), lambda: S.exponential_lr(LR_T, 0.1))],
        ),
    ]
    for test, pairs in compound:
        add(
            "compound_" + test,
            "ChainedScheduler",
            "test_compound_" + test,
            lambda o, p=pairs: [t(o) for t, _ in p],
            lambda p=pairs: S.chained_scheduler([j() for _, j in p]),
            steps=10,
        )

    # CyclicLR (stepped per batch). torch's tables mostly cycle the momentum too.
    cyc = "CyclicLR"
    mom = "cycle_momentum=True"
    add(
        "cyclic-tri-mom",
        cyc,
        "test_cycle_lr_triangular_mode_one_lr",
        lambda o: T.CyclicLR(
            o,
            base_lr=1,
            max_lr=5,
            step_size_up=4,
            cycle_momentum=True,
            base_momentum=1,
            max_momentum=5,
            mode="triangular",
        ),
        lambda: S.cyclic_lr(1, 5, 4, cycle_momentum=True, base_momentum=1, max_momentum=5),
        steps=10,
        unsupported=mom,
    )
    add(
        "cyclic-tri",
        cyc,
        "test_cycle_lr_triangular_mode_one_lr_no_momentum",
        lambda o: T.CyclicLR(
            o, base_lr=1, max_lr=5, step_size_up=4, cycle_momentum=False, mode="triangular"
        ),
        lambda: S.cyclic_lr(1, 5, 4, cycle_momentum=False),
        steps=10,
    )
    add(
        "cyclic-tri-adam",
        cyc,
        "test_cycle_lr_with_momentumless_optimizer",
        lambda o: T.CyclicLR(
            o, base_lr=1, max_lr=5, step_size_up=4, cycle_momentum=False, mode="triangular"
        ),
        lambda: S.cyclic_lr(1, 5, 4, cycle_momentum=False),
        steps=10,
        optimizer="Adam",
    )
    for test, kw in (
        ("test_cycle_lr_triangular2_mode_one_lr", dict(mode="triangular2")),
        ("test_cycle_lr_exp_range_mode_one_lr", dict(mode="exp_range", gamma=0.9)),
        ("test_cycle_lr_triangular_mode_step_size_up_down", dict(step_size_down=6)),
        (
            "test_cycle_lr_exp_range_mode_step_size_up_down",
            dict(mode="exp_range", gamma=0.9, step_size_up=2, step_size_down=6),
        ),
        (
            "test_cycle_lr_triangular2_mode_step_size_up_down",
            dict(mode="triangular2", step_size_up=2, step_size_down=6),
        ),
    ):
        kw = {"step_size_up": 4, **kw}
        add(
            f"cyclic-{test[14:]}",
            cyc,
            test,
            lambda o, kw=kw: T.CyclicLR(
                o, base_lr=1, max_lr=5, cycle_momentum=True, base_momentum=1, max_momentum=5, **kw
            ),
            lambda kw=kw: S.cyclic_lr(1, 5, cycle_momentum=True, **kw),
            steps=24,
            unsupported=mom,
        )
    for test, mode in (
        ("test_cycle_lr_triangular_mode", "triangular"),
        ("test_cycle_lr_triangular2_mode", "triangular2"),
        ("test_cycle_lr_exp_range_mode", "exp_range"),
    ):
        add(
            f"cyclic-groups-{mode}",
            cyc,
            test,
            lambda o, m=mode: T.CyclicLR(
                o, base_lr=1, max_lr=5, step_size_up=4, cycle_momentum=True, mode=m
            ),
            lambda m=mode: S.cyclic_lr([1, 2], [5, 6], 4, mode=m),
            steps=12,
            unsupported="one parameter group",
        )
    add(
        "cyclic-adam-beta1",
        cyc,
        "test_cycle_lr_cycle_momentum_with_beta1_optimizer",
        lambda o: T.CyclicLR(o, base_lr=1, max_lr=5),
        lambda: S.cyclic_lr(1, 5),
        steps=12,
        optimizer="Adam",
        unsupported=mom,
    )

    # OneCycleLR: all of torch's cases cycle the momentum.
    one = "OneCycleLR"
    for test, kw in (
        ("test_onecycle_lr_linear_annealing", dict(anneal_strategy="linear")),
        (
            "test_onecycle_lr_linear_annealing_three_phases",
            dict(
                div_factor=25,
                anneal_strategy="linear",
                pct_start=0.4,
                final_div_factor=4,
                three_phase=True,
            ),
        ),
        ("test_onecycle_lr_cosine_annealing", dict()),
        ("test_cycle_lr_with_adam", dict(anneal_strategy="linear")),
    ):
        kw = {"final_div_factor": 2, **kw}
        add(
            f"onecycle-{test[5:]}",
            one,
            test,
            lambda o, kw=kw: T.OneCycleLR(
                o, max_lr=25, base_momentum=1, max_momentum=22, total_steps=10, **kw
            ),
            lambda kw=kw: S.one_cycle_lr(25, 10, base_momentum=1, max_momentum=22, **kw),
            steps=10,
            unsupported=mom,
            optimizer="Adam" if "adam" in test else "SGD",
        )

    # CosineAnnealingWarmRestarts: step() per epoch, step(epoch) with fractional and
    # interleaved epochs.
    cawr = "CosineAnnealingWarmRestarts"
    for m in (1, 2, 4):
        add(
            f"cawr-lr1-T_mult={m}",
            cawr,
            "test_CosineAnnealingWarmRestarts_lr1",
            lambda o, m=m: T.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=m, eta_min=1e-10),
            lambda m=m: S.cosine_annealing_warm_restarts(LR_T, 10, m, 1e-10),
            steps=99,
        )
        epochs = tuple(round(float(e), 1) for e in torch.arange(0, 30, 0.1))
        add(
            f"cawr-lr2-T_mult={m}",
            cawr,
            "test_CosineAnnealingWarmRestarts_lr2",
            lambda o, m=m: T.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=m, eta_min=1e-10),
            lambda m=m: S.cosine_annealing_warm_restarts(LR_T, 10, m, 1e-10),
            epochs=epochs,
        )
    for m, epochs in zip(
        (1, 2, 3),
        (
            [0, 1, 2, 3, 4, 5, 12, 27, 3, 4, 5, 6, 13],
            [0, 1, 2, 3, 4, 5, 25, 32, 33, 34, 80, 81, 3],
            [0, 0.1, 0.2, 0.3, 1.3, 2.3, 17.5, 18.5, 19.5, 29.5, 30.5, 31.5, 50],
        ),
        strict=True,
    ):
        add(
            f"cawr-lr3-T_mult={m}",
            cawr,
            "test_CosineAnnealingWarmRestarts_lr3",
            lambda o, m=m: T.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=m, eta_min=1e-10),
            lambda m=m: S.cosine_annealing_warm_restarts(LR_T, 10, m, 1e-10),
            epochs=tuple(float(e) for e in epochs),
        )

    # test_lr_scheduler_state_dict_load / test_constant_initial_lr: the classes at their
    # defaults (lr 0.05), stepped 25 times.
    defaults = [
        (
            "LambdaLR",
            lambda o: T.LambdaLR(o, lr_lambda=lambda e: e // 10),
            lambda: S.lambda_lr(LR_T, lambda e: e // 10),
            None,
        ),
        (
            "MultiplicativeLR",
            lambda o: T.MultiplicativeLR(o, lr_lambda=lambda e: 0.95),
            lambda: S.multiplicative_lr(LR_T, lambda e: 0.95),
            None,
        ),
        ("StepLR", lambda o: T.StepLR(o, step_size=30), lambda: S.step_lr(LR_T, 30), None),
        (
            "MultiStepLR",
            lambda o: T.MultiStepLR(o, milestones=[30, 80]),
            lambda: S.multi_step_lr(LR_T, [30, 80]),
            None,
        ),
        ("ConstantLR", T.ConstantLR, lambda: S.constant_lr(LR_T), None),
        ("LinearLR", T.LinearLR, lambda: S.linear_lr(LR_T), None),
        (
            "ExponentialLR",
            lambda o: T.ExponentialLR(o, gamma=0.9),
            lambda: S.exponential_lr(LR_T, 0.9),
            None,
        ),
        ("PolynomialLR", T.PolynomialLR, lambda: S.polynomial_lr(LR_T), None),
        (
            "CosineAnnealingLR",
            lambda o: T.CosineAnnealingLR(o, T_max=10),
            lambda: S.cosine_annealing_lr(LR_T, 10),
            None,
        ),
        (
            "ChainedScheduler",
            lambda o: T.ChainedScheduler([T.ConstantLR(o), T.ConstantLR(o)]),
            lambda: S.chained_scheduler([S.constant_lr(LR_T), S.constant_lr(LR_T)]),
            None,
        ),
        (
            "SequentialLR",
            lambda o: T.SequentialLR(o, [T.ConstantLR(o), T.ConstantLR(o)], milestones=[2]),
            lambda: S.sequential_lr([S.constant_lr(LR_T), S.constant_lr(LR_T)], [2]),
            None,
        ),
        (
            "CyclicLR",
            lambda o: T.CyclicLR(o, base_lr=0.01, max_lr=0.1),
            lambda: S.cyclic_lr(0.01, 0.1),
            mom,
        ),
        (
            "OneCycleLR",
            lambda o: T.OneCycleLR(o, max_lr=0.01, total_steps=10, anneal_strategy="linear"),
            lambda: S.one_cycle_lr(0.01, 10, anneal_strategy="linear"),
            mom,
        ),
        (
            "CosineAnnealingWarmRestarts",
            lambda o: T.CosineAnnealingWarmRestarts(o, T_0=20),
            lambda: S.cosine_annealing_warm_restarts(LR_T, 20),
            None,
        ),
    ]
    for cls, t, j, unsupported in defaults:
        add(
            f"defaults-{cls}",
            cls,
            "test_lr_scheduler_state_dict_load",
            t,
            j,
            steps=25,
            unsupported=unsupported,
        )
    add(
        "defaults-ReduceLROnPlateau",
        "ReduceLROnPlateau",
        "test_lr_scheduler_state_dict_load",
        T.ReduceLROnPlateau,
        S.ReduceLROnPlateau,
        metrics=PLATEAU_LOSS,
    )
    return c


def _torch_test_errors() -> list[ErrorCase]:
    src = "test_lrscheduler."
    return [
        ErrorCase(
            "linear-start-0",
            "LinearLR",
            src + "test_linearlr_start_factor_limits1",
            lambda o: T.LinearLR(o, start_factor=0.0, total_iters=4),
            lambda: S.linear_lr(LR_T, 0.0, total_iters=4),
        ),
        ErrorCase(
            "linear-start-1.1",
            "LinearLR",
            src + "test_linearlr_start_factor_limits2",
            lambda o: T.LinearLR(o, start_factor=1.1, total_iters=4),
            lambda: S.linear_lr(LR_T, 1.1, total_iters=4),
        ),
        ErrorCase(
            "cyclic-mode",
            "CyclicLR",
            src + "test_cycle_lr_invalid_mode",
            lambda o: T.CyclicLR(o, base_lr=0, max_lr=0, mode="CATS"),
            lambda: S.cyclic_lr(0, 0, mode="CATS"),
        ),
        ErrorCase(
            "cyclic-momentumless",
            "CyclicLR",
            src + "test_cycle_lr_cycle_momentum_fail_with_momentumless_optimizer",
            lambda o: T.CyclicLR(
                torch.optim.Rprop(o.param_groups[0]["params"]),
                base_lr=1,
                max_lr=5,
                cycle_momentum=True,
            ),
            lambda: S.cyclic_lr(1, 5, cycle_momentum=True),
        ),
        ErrorCase(
            "onecycle-anneal",
            "OneCycleLR",
            src + "test_onecycle_lr_invalid_anneal_strategy",
            lambda o: T.OneCycleLR(o, max_lr=1e-3, total_steps=10, anneal_strategy="CATS"),
            lambda: S.one_cycle_lr(1e-3, 10, anneal_strategy="CATS"),
        ),
        ErrorCase(
            "onecycle-pct",
            "OneCycleLR",
            src + "test_onecycle_lr_invalid_pct_start",
            lambda o: T.OneCycleLR(o, max_lr=1e-3, total_steps=10, pct_start=1.1),
            lambda: S.one_cycle_lr(1e-3, 10, pct_start=1.1),
        ),
        ErrorCase(
            "onecycle-no-total",
            "OneCycleLR",
            src + "test_onecycle_lr_cannot_calculate_total_steps",
            lambda o: T.OneCycleLR(o, max_lr=1e-3),
            lambda: S.one_cycle_lr(1e-3),
        ),
        ErrorCase(
            "multiplicative-float",
            "MultiplicativeLR",
            src + "test_multiplicative_lr_with_lr_lambda",
            lambda o: T.MultiplicativeLR(o, 0.95),
            lambda: S.multiplicative_lr(LR_T, 0.95),
        ),
        ErrorCase(
            "multiplicative-floats",
            "MultiplicativeLR",
            src + "test_multiplicative_lr_with_lr_lambda",
            lambda o: T.MultiplicativeLR(o, [0.95]),
            lambda: S.multiplicative_lr(LR_T, [0.95]),
        ),
    ]


# --------------------------------------------------------------------------------------------
# Every option (this project's table).
# --------------------------------------------------------------------------------------------


def _step_fn(e: Any) -> Any:
    # A warm-up factor written once for both sides: jnp.where works on Python ints too.
    return jnp.where(e < 3, (e + 1) / 3, 0.5 ** (e // 4))


def _option_cases() -> list[Case]:
    src = "options"
    c: list[Case] = []

    def add(id_: str, cls: str, t: Callable, j: Callable, **kw: Any) -> None:
        c.append(Case(id_, cls, src, t, j, **kw))

    add("step-size1-gamma2", "StepLR", lambda o: T.StepLR(o, 1, 2.0), lambda: S.step_lr(LR, 1, 2.0))
    add("step-gamma0", "StepLR", lambda o: T.StepLR(o, 2, 0.0), lambda: S.step_lr(LR, 2, 0.0))
    add(
        "multistep-at0-repeated",
        "MultiStepLR",
        lambda o: T.MultiStepLR(o, [0, 3, 3, 7], 0.5),
        lambda: S.multi_step_lr(LR, [7, 3, 0, 3], 0.5),
    )
    add(
        "multistep-none",
        "MultiStepLR",
        lambda o: T.MultiStepLR(o, []),
        lambda: S.multi_step_lr(LR, []),
    )
    add(
        "constant-factor1",
        "ConstantLR",
        lambda o: T.ConstantLR(o, 1.0, 3),
        lambda: S.constant_lr(LR, 1.0, 3),
    )
    add(
        "constant-total0",
        "ConstantLR",
        lambda o: T.ConstantLR(o, 0.25, 0),
        lambda: S.constant_lr(LR, 0.25, 0),
    )
    add(
        "constant-factor0-total0",
        "ConstantLR",
        lambda o: T.ConstantLR(o, 0.0, 0),
        lambda: S.constant_lr(LR, 0.0, 0),
    )
    add(
        "linear-decay-to0",
        "LinearLR",
        lambda o: T.LinearLR(o, 1.0, 0.0, 6),
        lambda: S.linear_lr(LR, 1.0, 0.0, 6),
    )
    add(
        "linear-total0",
        "LinearLR",
        lambda o: T.LinearLR(o, 0.3, 1.0, 0),
        lambda: S.linear_lr(LR, 0.3, 1.0, 0),
    )
    add(
        "linear-total1",
        "LinearLR",
        lambda o: T.LinearLR(o, 0.3, 0.9, 1),
        lambda: S.linear_lr(LR, 0.3, 0.9, 1),
    )
    add(
        "exp-gamma1",
        "ExponentialLR",
        lambda o: T.ExponentialLR(o, 1.0),
        lambda: S.exponential_lr(LR, 1.0),
    )
    add(
        "exp-long",
        "ExponentialLR",
        lambda o: T.ExponentialLR(o, 0.97),
        lambda: S.exponential_lr(LR, 0.97),
        steps=100,
    )
    add(
        "poly-power0",
        "PolynomialLR",
        lambda o: T.PolynomialLR(o, 4, 0.0),
        lambda: S.polynomial_lr(LR, 4, 0.0),
    )
    add(
        "poly-power2",
        "PolynomialLR",
        lambda o: T.PolynomialLR(o, 7, 2.0),
        lambda: S.polynomial_lr(LR, 7, 2.0),
    )
    add(
        "poly-total0",
        "PolynomialLR",
        lambda o: T.PolynomialLR(o, 0, 2.0),
        lambda: S.polynomial_lr(LR, 0, 2.0),
    )
    add(
        "poly-total1",
        "PolynomialLR",
        lambda o: T.PolynomialLR(o, 1),
        lambda: S.polynomial_lr(LR, 1),
    )
    add(
        "cos-T1",
        "CosineAnnealingLR",
        lambda o: T.CosineAnnealingLR(o, 1),
        lambda: S.cosine_annealing_lr(LR, 1),
    )
    add(
        "cos-3-periods",
        "CosineAnnealingLR",
        lambda o: T.CosineAnnealingLR(o, 3, 0.002),
        lambda: S.cosine_annealing_lr(LR, 3, 0.002),
        steps=40,
    )
    add(
        "cos-eta_min-above-lr",
        "CosineAnnealingLR",
        lambda o: T.CosineAnnealingLR(o, 5, 0.3),
        lambda: S.cosine_annealing_lr(LR, 5, 0.3),
        steps=20,
    )
    add(
        "cos-negative-eta_min",
        "CosineAnnealingLR",
        lambda o: T.CosineAnnealingLR(o, 5, -0.01),
        lambda: S.cosine_annealing_lr(LR, 5, -0.01),
    )
    add(
        "lambda-warmup",
        "LambdaLR",
        lambda o: T.LambdaLR(o, lambda e: float(_step_fn(e))),
        lambda: S.lambda_lr(LR, _step_fn),
        steps=15,
    )
    add(
        "lambda-list",
        "LambdaLR",
        lambda o: T.LambdaLR(o, [lambda e: 1 / (e + 1)]),
        lambda: S.lambda_lr(LR, [lambda e: 1 / (e + 1)]),
    )
    add(
        "multiplicative-by-epoch",
        "MultiplicativeLR",
        lambda o: T.MultiplicativeLR(o, lambda e: float(_step_fn(e))),
        lambda: S.multiplicative_lr(LR, _step_fn),
        steps=15,
    )
    add(
        "cawr-T0=1-T_mult=3",
        "CosineAnnealingWarmRestarts",
        lambda o: T.CosineAnnealingWarmRestarts(o, 1, 3, 0.01),
        lambda: S.cosine_annealing_warm_restarts(LR, 1, 3, 0.01),
        steps=50,
    )
    iters = 4
    frac = tuple(e + i / iters for e in range(6) for i in range(iters))
    add(
        "cawr-fractional-epochs",
        "CosineAnnealingWarmRestarts",
        lambda o: T.CosineAnnealingWarmRestarts(o, 2, 2),
        lambda: S.fractional_epoch(S.cosine_annealing_warm_restarts(LR, 2, 2), iters),
        epochs=frac,
    )

    cyc = "CyclicLR"
    for mode in ("triangular", "triangular2", "exp_range"):
        for up, down in ((3, None), (2, 5), (4, 0), (2.5, 1.5)):
            add(
                f"cyclic-{mode}-{up}-{down}",
                cyc,
                lambda o, m=mode, u=up, d=down: T.CyclicLR(
                    o, 0.01, 0.1, u, d, mode=m, gamma=0.95, cycle_momentum=False
                ),
                lambda m=mode, u=up, d=down: S.cyclic_lr(
                    0.01, 0.1, u, d, mode=m, gamma=0.95, cycle_momentum=False
                ),
                steps=30,
            )
    add(
        "cyclic-scale_fn-cycle",
        cyc,
        lambda o: T.CyclicLR(o, 0.01, 0.1, 3, scale_fn=lambda x: 1 / x, cycle_momentum=False),
        lambda: S.cyclic_lr(0.01, 0.1, 3, scale_fn=lambda x: 1 / x, cycle_momentum=False),
        steps=30,
    )
    add(
        "cyclic-scale_fn-iterations",
        cyc,
        lambda o: T.CyclicLR(
            o,
            0.01,
            0.1,
            3,
            mode="ignored",
            scale_fn=lambda x: 0.99**x,
            scale_mode="iterations",
            cycle_momentum=False,
        ),
        lambda: S.cyclic_lr(
            0.01,
            0.1,
            3,
            mode="ignored",
            scale_fn=lambda x: 0.99**x,
            scale_mode="iterations",
            cycle_momentum=False,
        ),
        steps=30,
    )
    add(
        "cyclic-base-above-max",
        cyc,
        lambda o: T.CyclicLR(o, 0.1, 0.01, 2, cycle_momentum=False),
        lambda: S.cyclic_lr(0.1, 0.01, 2, cycle_momentum=False),
        steps=10,
    )

    one = "OneCycleLR"
    for strategy in ("cos", "linear"):
        for three in (False, True):
            for pct in (0.3, 0.5, 0.0, 0.12):
                add(
                    f"onecycle-{strategy}-three={three}-pct={pct}",
                    one,
                    lambda o, s=strategy, t=three, p=pct: T.OneCycleLR(
                        o,
                        0.1,
                        total_steps=20,
                        pct_start=p,
                        anneal_strategy=s,
                        three_phase=t,
                        cycle_momentum=False,
                    ),
                    lambda s=strategy, t=three, p=pct: S.one_cycle_lr(
                        0.1, 20, pct_start=p, anneal_strategy=s, three_phase=t, cycle_momentum=False
                    ),
                    steps=20,
                )
    add(
        "onecycle-epochs-steps",
        one,
        lambda o: T.OneCycleLR(
            o,
            0.3,
            epochs=3,
            steps_per_epoch=7,
            div_factor=10.0,
            final_div_factor=100.0,
            cycle_momentum=False,
        ),
        lambda: S.one_cycle_lr(
            0.3,
            epochs=3,
            steps_per_epoch=7,
            div_factor=10.0,
            final_div_factor=100.0,
            cycle_momentum=False,
        ),
        steps=21,
    )
    add(
        "onecycle-total-wins",
        one,
        lambda o: T.OneCycleLR(
            o, 0.3, total_steps=9, epochs=3, steps_per_epoch=7, cycle_momentum=False
        ),
        lambda: S.one_cycle_lr(0.3, 9, epochs=3, steps_per_epoch=7, cycle_momentum=False),
        steps=9,
    )
    add(
        "onecycle-pct1-two-phase",
        one,
        lambda o: T.OneCycleLR(o, 0.1, total_steps=8, pct_start=1.0, cycle_momentum=False),
        lambda: S.one_cycle_lr(0.1, 8, pct_start=1.0, cycle_momentum=False),
        steps=7,
    )

    ch = "ChainedScheduler"
    add(
        "chained-cos-eta_min-exp",
        ch,
        lambda o: T.ChainedScheduler([T.CosineAnnealingLR(o, 4, 0.01), T.ExponentialLR(o, 0.9)]),
        lambda: S.chained_scheduler(
            [S.cosine_annealing_lr(LR, 4, 0.01), S.exponential_lr(LR, 0.9)]
        ),
        steps=20,
    )
    add(
        "chained-exp-lambda-constant",
        ch,
        lambda o: T.ChainedScheduler(
            [T.ExponentialLR(o, 0.9), T.LambdaLR(o, lambda e: 1 / (e + 1)), T.ConstantLR(o, 0.2, 4)]
        ),
        lambda: S.chained_scheduler(
            [
                S.exponential_lr(LR, 0.9),
                S.lambda_lr(LR, lambda e: 1 / (e + 1)),
                S.constant_lr(LR, 0.2, 4),
            ]
        ),
    )
    add(
        "chained-cawr-cos",
        ch,
        lambda o: T.ChainedScheduler(
            [T.CosineAnnealingWarmRestarts(o, 3, 2), T.CosineAnnealingLR(o, 5)]
        ),
        lambda: S.chained_scheduler(
            [S.cosine_annealing_warm_restarts(LR, 3, 2), S.cosine_annealing_lr(LR, 5)]
        ),
        steps=20,
    )
    add(
        "chained-multiplicative-poly",
        ch,
        lambda o: T.ChainedScheduler(
            [
                T.MultiplicativeLR(o, lambda e: 0.95),
                T.PolynomialLR(o, 6, 1.5),
                T.MultiStepLR(o, [0, 2]),
            ]
        ),
        lambda: S.chained_scheduler(
            [
                S.multiplicative_lr(LR, lambda e: 0.95),
                S.polynomial_lr(LR, 6, 1.5),
                S.multi_step_lr(LR, [0, 2]),
            ]
        ),
    )
    add(
        "chained-sequential-inside",
        ch,
        lambda o: T.ChainedScheduler(
            [
                T.ExponentialLR(o, 0.9),
                T.SequentialLR(o, [T.LinearLR(o, 0.5, 1.0, 3), T.StepLR(o, 2)], [4]),
            ]
        ),
        lambda: S.chained_scheduler(
            [
                S.exponential_lr(LR, 0.9),
                S.sequential_lr([S.linear_lr(LR, 0.5, 1.0, 3), S.step_lr(LR, 2)], [4]),
            ]
        ),
        steps=15,
    )
    add(
        "chained-onecycle",
        ch,
        lambda o: T.ChainedScheduler(
            [T.ExponentialLR(o, 0.9), T.OneCycleLR(o, 0.1, 20, cycle_momentum=False)]
        ),
        lambda: S.chained_scheduler(
            [S.exponential_lr(LR, 0.9), S.one_cycle_lr(0.1, 20, cycle_momentum=False)]
        ),
        unsupported="inside a chain is not supported",
    )

    seq = "SequentialLR"
    add(
        "seq-milestone0",
        seq,
        lambda o: T.SequentialLR(
            o, [T.ConstantLR(o, 0.1, 3), T.ConstantLR(o, 0.3, 0), T.ExponentialLR(o, 0.8)], [0, 5]
        ),
        lambda: S.sequential_lr(
            [S.constant_lr(LR, 0.1, 3), S.constant_lr(LR, 0.3, 0), S.exponential_lr(LR, 0.8)],
            [0, 5],
        ),
    )
    add(
        "seq-repeated-milestone",
        seq,
        lambda o: T.SequentialLR(
            o, [T.ExponentialLR(o, 0.8), T.StepLR(o, 1), T.LinearLR(o, 0.5, 1.0, 4)], [3, 3]
        ),
        lambda: S.sequential_lr(
            [S.exponential_lr(LR, 0.8), S.step_lr(LR, 1), S.linear_lr(LR, 0.5, 1.0, 4)], [3, 3]
        ),
    )
    add(
        "seq-restart-multiplicative",
        seq,
        lambda o: T.SequentialLR(
            o, [T.LinearLR(o, 0.5, 1.0, 3), T.MultiplicativeLR(o, lambda e: 0.9 if e else 0.5)], [4]
        ),
        lambda: S.sequential_lr(
            [
                S.linear_lr(LR, 0.5, 1.0, 3),
                S.multiplicative_lr(LR, lambda e: jnp.where(e == 0, 0.5, 0.9)),
            ],
            [4],
        ),
        steps=15,
    )
    add(
        "seq-restart-constant-total0",
        seq,
        lambda o: T.SequentialLR(o, [T.ExponentialLR(o, 0.8), T.ConstantLR(o, 0.3, 0)], [3]),
        lambda: S.sequential_lr([S.exponential_lr(LR, 0.8), S.constant_lr(LR, 0.3, 0)], [3]),
    )
    add(
        "seq-restart-cawr-lambda-cos",
        seq,
        lambda o: T.SequentialLR(
            o,
            [
                T.LinearLR(o, 0.5, 1.0, 3),
                T.CosineAnnealingWarmRestarts(o, 3, 2),
                T.LambdaLR(o, lambda e: 0.9**e),
                T.CosineAnnealingLR(o, 3, 0.01),
            ],
            [4, 12, 15],
        ),
        lambda: S.sequential_lr(
            [
                S.linear_lr(LR, 0.5, 1.0, 3),
                S.cosine_annealing_warm_restarts(LR, 3, 2),
                S.lambda_lr(LR, lambda e: 0.9**e),
                S.cosine_annealing_lr(LR, 3, 0.01),
            ],
            [4, 12, 15],
        ),
        steps=30,
    )
    add(
        "seq-warmup-cosine",
        seq,
        lambda o: T.SequentialLR(o, [T.LinearLR(o, 0.01, 1.0, 5), T.CosineAnnealingLR(o, 20)], [5]),
        lambda: S.sequential_lr(
            [S.linear_lr(LR, 0.01, 1.0, 5), S.cosine_annealing_lr(LR, 20)], [5]
        ),
        steps=30,
    )
    add(
        "seq-cyclic",
        seq,
        lambda o: T.SequentialLR(
            o, [T.LinearLR(o, 0.5, 1.0, 3), T.CyclicLR(o, 0.01, 0.1, 2, cycle_momentum=False)], [4]
        ),
        lambda: S.sequential_lr(
            [S.linear_lr(LR, 0.5, 1.0, 3), S.cyclic_lr(0.01, 0.1, 2, cycle_momentum=False)], [4]
        ),
        unsupported="inside a chain is not supported",
    )

    pl = "ReduceLROnPlateau"
    for mode, sign in (("min", 1.0), ("max", -1.0)):
        for tmode in ("rel", "abs"):
            metrics = tuple(sign * m for m in PLATEAU_LOSS)
            add(
                f"plateau-{mode}-{tmode}",
                pl,
                lambda o, m=mode, t=tmode: T.ReduceLROnPlateau(o, m, 0.5, 3, 1e-3, t, 2),
                lambda m=mode, t=tmode: S.ReduceLROnPlateau(m, 0.5, 3, 1e-3, t, 2),
                metrics=metrics,
            )
    add(
        "plateau-min_lr-patience0",
        pl,
        lambda o: T.ReduceLROnPlateau(o, patience=0, factor=0.3, min_lr=0.004),
        lambda: S.ReduceLROnPlateau(patience=0, factor=0.3, min_lr=0.004),
        metrics=PLATEAU_LOSS,
    )
    add(
        "plateau-eps-skips",
        pl,
        lambda o: T.ReduceLROnPlateau(o, patience=1, eps=0.02),
        lambda: S.ReduceLROnPlateau(patience=1, eps=0.02),
        metrics=PLATEAU_LOSS,
    )
    add(
        "plateau-threshold0-nan",
        pl,
        lambda o: T.ReduceLROnPlateau(o, patience=1, threshold=0.0),
        lambda: S.ReduceLROnPlateau(patience=1, threshold=0.0),
        metrics=(1.0, 1.0, math.nan, 0.5, math.nan, math.nan, 0.4, 0.4, 0.4),
    )
    add(
        "plateau-threshold1-rel",
        pl,
        lambda o: T.ReduceLROnPlateau(o, patience=1, threshold=1.0),
        lambda: S.ReduceLROnPlateau(patience=1, threshold=1.0),
        metrics=PLATEAU_LOSS[:8],
    )
    add(
        "plateau-negative-factor",
        pl,
        lambda o: T.ReduceLROnPlateau(o, patience=2, factor=-0.5, min_lr=0.01),
        lambda: S.ReduceLROnPlateau(patience=2, factor=-0.5, min_lr=0.01),
        metrics=PLATEAU_LOSS,
    )
    add(
        "plateau-before-and-after",
        pl,
        lambda o: [
            T.LinearLR(o, 0.5, 1.0, 3),
            T.ReduceLROnPlateau(o, patience=2),
            T.CosineAnnealingLR(o, 10, 0.001),
        ],
        lambda: S.ReduceLROnPlateau(
            patience=2,
            before=[S.linear_lr(LR, 0.5, 1.0, 3)],
            after=[S.cosine_annealing_lr(LR, 10, 0.001)],
        ),
        metrics=PLATEAU_LOSS,
    )
    return c


def _option_errors() -> list[ErrorCase]:
    src = "options"
    E = ErrorCase
    return [
        E(
            "step-size0",
            "StepLR",
            src,
            _stepped(lambda o: T.StepLR(o, 0), 1),
            lambda: S.step_lr(LR, 0),
        ),
        E(
            "cos-T_max0",
            "CosineAnnealingLR",
            src,
            _stepped(lambda o: T.CosineAnnealingLR(o, 0), 1),
            lambda: S.cosine_annealing_lr(LR, 0),
        ),
        E(
            "linear-end-neg",
            "LinearLR",
            src,
            lambda o: T.LinearLR(o, 0.5, -0.1),
            lambda: S.linear_lr(LR, 0.5, -0.1),
        ),
        E(
            "linear-end-1.5",
            "LinearLR",
            src,
            lambda o: T.LinearLR(o, 0.5, 1.5),
            lambda: S.linear_lr(LR, 0.5, 1.5),
        ),
        E(
            "constant-factor-1.5",
            "ConstantLR",
            src,
            lambda o: T.ConstantLR(o, 1.5),
            lambda: S.constant_lr(LR, 1.5),
        ),
        E(
            "constant-factor-neg",
            "ConstantLR",
            src,
            lambda o: T.ConstantLR(o, -0.1),
            lambda: S.constant_lr(LR, -0.1),
        ),
        E(
            "constant-factor0",
            "ConstantLR",
            src,
            _stepped(lambda o: T.ConstantLR(o, 0.0, 3), 3),
            lambda: S.constant_lr(LR, 0.0, 3),
        ),
        E(
            "poly-negative-power",
            "PolynomialLR",
            src,
            _stepped(lambda o: T.PolynomialLR(o, 3, -1.0), 3),
            lambda: S.polynomial_lr(LR, 3, -1.0),
        ),
        E(
            "lambda-not-callable",
            "LambdaLR",
            src,
            lambda o: T.LambdaLR(o, 0.9),
            lambda: S.lambda_lr(LR, 0.9),
        ),
        E(
            "lambda-two-groups",
            "LambdaLR",
            src,
            lambda o: T.LambdaLR(o, [lambda e: 1.0, lambda e: 1.0]),
            lambda: S.lambda_lr(LR, [lambda e: 1.0, lambda e: 1.0]),
        ),
        E(
            "cawr-T0-0",
            "CosineAnnealingWarmRestarts",
            src,
            lambda o: T.CosineAnnealingWarmRestarts(o, 0),
            lambda: S.cosine_annealing_warm_restarts(LR, 0),
        ),
        E(
            "cawr-T0-float",
            "CosineAnnealingWarmRestarts",
            src,
            lambda o: T.CosineAnnealingWarmRestarts(o, 2.0),
            lambda: S.cosine_annealing_warm_restarts(LR, 2.0),
        ),
        E(
            "cawr-T_mult-0",
            "CosineAnnealingWarmRestarts",
            src,
            lambda o: T.CosineAnnealingWarmRestarts(o, 2, 0),
            lambda: S.cosine_annealing_warm_restarts(LR, 2, 0),
        ),
        E(
            "cawr-T_mult-float",
            "CosineAnnealingWarmRestarts",
            src,
            lambda o: T.CosineAnnealingWarmRestarts(o, 2, 1.5),
            lambda: S.cosine_annealing_warm_restarts(LR, 2, 1.5),
        ),
        E(
            "cawr-eta_min-str",
            "CosineAnnealingWarmRestarts",
            src,
            lambda o: T.CosineAnnealingWarmRestarts(o, 2, 1, "0"),
            lambda: S.cosine_annealing_warm_restarts(LR, 2, 1, "0"),
        ),
        E(
            "cawr-negative-epoch",
            "CosineAnnealingWarmRestarts",
            src,
            lambda o: T.CosineAnnealingWarmRestarts(o, 2).step(-1.0),
            lambda: S.cosine_annealing_warm_restarts(LR, 2)(-1.0),
        ),
        E(
            "cyclic-step_size_up-0",
            "CyclicLR",
            src,
            lambda o: T.CyclicLR(o, 0.01, 0.1, 0, 5, cycle_momentum=False),
            lambda: S.cyclic_lr(0.01, 0.1, 0, 5, cycle_momentum=False),
        ),
        E(
            "onecycle-total0",
            "OneCycleLR",
            src,
            lambda o: T.OneCycleLR(o, 0.1, 0),
            lambda: S.one_cycle_lr(0.1, 0, cycle_momentum=False),
        ),
        E(
            "onecycle-total-float",
            "OneCycleLR",
            src,
            lambda o: T.OneCycleLR(o, 0.1, 10.0),
            lambda: S.one_cycle_lr(0.1, 10.0, cycle_momentum=False),
        ),
        E(
            "onecycle-epochs0",
            "OneCycleLR",
            src,
            lambda o: T.OneCycleLR(o, 0.1, epochs=0, steps_per_epoch=3),
            lambda: S.one_cycle_lr(0.1, epochs=0, steps_per_epoch=3, cycle_momentum=False),
        ),
        E(
            "onecycle-steps_per_epoch0",
            "OneCycleLR",
            src,
            lambda o: T.OneCycleLR(o, 0.1, epochs=2, steps_per_epoch=0),
            lambda: S.one_cycle_lr(0.1, epochs=2, steps_per_epoch=0, cycle_momentum=False),
        ),
        E(
            "onecycle-pct-neg",
            "OneCycleLR",
            src,
            lambda o: T.OneCycleLR(o, 0.1, 10, pct_start=-0.1),
            lambda: S.one_cycle_lr(0.1, 10, pct_start=-0.1, cycle_momentum=False),
        ),
        E(
            "onecycle-pct-int",
            "OneCycleLR",
            src,
            lambda o: T.OneCycleLR(o, 0.1, 10, pct_start=1),
            lambda: S.one_cycle_lr(0.1, 10, pct_start=1, cycle_momentum=False),
        ),
        E(
            "onecycle-div0",
            "OneCycleLR",
            src,
            lambda o: T.OneCycleLR(o, 0.1, 10, div_factor=0.0),
            lambda: S.one_cycle_lr(0.1, 10, div_factor=0.0, cycle_momentum=False),
        ),
        E(
            "onecycle-final-div0",
            "OneCycleLR",
            src,
            lambda o: T.OneCycleLR(o, 0.1, 10, final_div_factor=0.0),
            lambda: S.one_cycle_lr(0.1, 10, final_div_factor=0.0, cycle_momentum=False),
        ),
        E(
            "onecycle-empty-warmup",
            "OneCycleLR",
            src,
            lambda o: T.OneCycleLR(o, 0.1, 10, pct_start=0.1, cycle_momentum=False),
            lambda: S.one_cycle_lr(0.1, 10, pct_start=0.1, cycle_momentum=False),
        ),
        E(
            "onecycle-beyond-total",
            "OneCycleLR",
            src,
            _stepped(lambda o: T.OneCycleLR(o, 0.1, 10, cycle_momentum=False), 11),
            lambda: S.one_cycle_lr(0.1, 10, cycle_momentum=False)(11),
        ),
        E(
            "onecycle-pct1-last-step",
            "OneCycleLR",
            src,
            _stepped(lambda o: T.OneCycleLR(o, 0.1, 8, pct_start=1.0, cycle_momentum=False), 8),
            lambda: S.one_cycle_lr(0.1, 8, pct_start=1.0, cycle_momentum=False)(8),
        ),
        E(
            "plateau-factor1",
            "ReduceLROnPlateau",
            src,
            lambda o: T.ReduceLROnPlateau(o, factor=1.0),
            lambda: S.ReduceLROnPlateau(factor=1.0),
        ),
        E(
            "plateau-mode",
            "ReduceLROnPlateau",
            src,
            lambda o: T.ReduceLROnPlateau(o, "minimum"),
            lambda: S.ReduceLROnPlateau("minimum"),
        ),
        E(
            "plateau-threshold-mode",
            "ReduceLROnPlateau",
            src,
            lambda o: T.ReduceLROnPlateau(o, threshold_mode="relative"),
            lambda: S.ReduceLROnPlateau(threshold_mode="relative"),
        ),
        E(
            "plateau-min_lr-groups",
            "ReduceLROnPlateau",
            src,
            lambda o: T.ReduceLROnPlateau(o, min_lr=[0.1, 0.2]),
            lambda: S.ReduceLROnPlateau(min_lr=[0.1, 0.2]),
        ),
        E(
            "seq-empty",
            "SequentialLR",
            src,
            lambda o: T.SequentialLR(o, [], []),
            lambda: S.sequential_lr([], []),
        ),
        E(
            "seq-milestones-count",
            "SequentialLR",
            src,
            lambda o: T.SequentialLR(o, [T.StepLR(o, 2), T.StepLR(o, 3)], [1, 2]),
            lambda: S.sequential_lr([S.step_lr(LR, 2), S.step_lr(LR, 3)], [1, 2]),
        ),
        E(
            "seq-plateau",
            "SequentialLR",
            src,
            lambda o: T.SequentialLR(o, [T.StepLR(o, 2), T.ReduceLROnPlateau(o)], [2]),
            lambda: S.sequential_lr([S.step_lr(LR, 2), S.ReduceLROnPlateau()], [2]),
        ),
        E(
            "seq-chained-later",
            "SequentialLR",
            src,
            _stepped(
                lambda o: T.SequentialLR(
                    o, [T.StepLR(o, 2), T.ChainedScheduler([T.StepLR(o, 2)])], [2]
                ),
                2,
            ),
            lambda: S.sequential_lr(
                [S.step_lr(LR, 2), S.chained_scheduler([S.step_lr(LR, 2)])], [2]
            ),
        ),
        E(
            "seq-linear-total0-later",
            "SequentialLR",
            src,
            _stepped(
                lambda o: T.SequentialLR(o, [T.StepLR(o, 2), T.LinearLR(o, 0.5, 1.0, 0)], [2]), 2
            ),
            lambda: S.sequential_lr([S.step_lr(LR, 2), S.linear_lr(LR, 0.5, 1.0, 0)], [2]),
        ),
        E(
            "chained-empty",
            "ChainedScheduler",
            src,
            lambda o: T.ChainedScheduler([]),
            lambda: S.chained_scheduler([]),
        ),
        E(
            "chained-plateau",
            "ChainedScheduler",
            src,
            lambda o: T.ChainedScheduler([T.StepLR(o, 2), T.ReduceLROnPlateau(o)]),
            lambda: S.chained_scheduler([S.step_lr(LR, 2), S.ReduceLROnPlateau()]),
        ),
    ]


# Where jaxnets refuses a value torch accepts (and computes something odd with), on purpose.
STRICTER = [
    (
        "StepLR",
        "step_size=-2 (torch: acts as 2 through Python's modulo)",
        lambda: S.step_lr(LR, -2),
    ),
    (
        "MultiStepLR",
        "a negative milestone (torch: never reached)",
        lambda: S.multi_step_lr(LR, [-1, 3]),
    ),
    ("CosineAnnealingLR", "T_max=-4 (torch: acts as 4)", lambda: S.cosine_annealing_lr(LR, -4)),
    ("LinearLR", "total_iters=-1 (torch: as 0)", lambda: S.linear_lr(LR, total_iters=-1)),
    (
        "ReduceLROnPlateau",
        "patience=-1 (torch: reduces every epoch)",
        lambda: S.ReduceLROnPlateau(patience=-1),
    ),
    (
        "SequentialLR",
        "unsorted milestones (torch: bisects them anyway)",
        lambda: S.sequential_lr([S.step_lr(LR, 2)] * 3, [5, 2]),
    ),
    (
        "CyclicLR",
        "scale_mode='cycles' with a scale_fn (torch: treated as 'iterations')",
        lambda: S.cyclic_lr(
            0.01, 0.1, scale_fn=lambda x: 1.0, scale_mode="cycles", cycle_momentum=False
        ),
    ),
]


# --------------------------------------------------------------------------------------------
# optim_db: torch's scheduler configurations run with each optimizer.
# --------------------------------------------------------------------------------------------


def _plateau(p: Any, before: Sequence[Any] = (), after: Sequence[Any] = ()) -> Any:
    """The jaxnets twin of a torch ``ReduceLROnPlateau``, read from its fields (group 0)."""
    return S.ReduceLROnPlateau(
        p.mode,
        p.factor,
        p.patience,
        p.threshold,
        p.threshold_mode,
        p.cooldown,
        p.min_lrs[0],
        p.eps,
        before=before,
        after=after,
    )


def from_torch(sched: Any) -> Any:
    """The jaxnets schedule for a torch scheduler: the library's own mapping
    (:func:`torchref.handoff.epoch_schedule`, param group 0), so the tables here check it too;
    ``ReduceLROnPlateau``, which follows a metric and does not cross in a hand-over, is read
    from its fields here."""
    if type(sched).__name__ == "ReduceLROnPlateau":
        return _plateau(sched)
    return epoch_schedule(sched)


def from_torch_list(scheds: list[Any]) -> Any:
    """Several torch schedulers stepped in turn on one optimizer, as one jaxnets schedule."""
    plateaus = [i for i, s in enumerate(scheds) if type(s).__name__ == "ReduceLROnPlateau"]
    if not plateaus:
        return S.chained_scheduler([from_torch(s) for s in scheds])
    (i,) = plateaus
    before = [from_torch(s) for s in scheds[:i]]
    return _plateau(scheds[i], before, [from_torch(s) for s in scheds[i + 1 :]])


def _optim_db_cases() -> list[Case]:
    from torch.testing._internal.common_optimizers import optim_db

    cases = []
    for info in optim_db:
        opt_name = info.optim_cls.__name__
        for n, makers in enumerate(info.scheduler_inputs):
            probe = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
            names = [type(m(probe)).__name__ for m in makers]
            cls = (
                "ReduceLROnPlateau"
                if "ReduceLROnPlateau" in names
                else (names[0] if len(names) == 1 else "ChainedScheduler")
            )
            plateau = "ReduceLROnPlateau" in names

            def torch_side(o: Any, makers: Any = makers) -> list[Any]:
                return [m(o) for m in makers]

            def jax_side(makers: Any = makers) -> Any:
                o = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
                return from_torch_list([m(o) for m in makers])

            cases.append(
                Case(
                    f"{opt_name}-{n}-{'+'.join(names)}",
                    cls,
                    f"optim_db[{opt_name}]",
                    torch_side,
                    jax_side,
                    steps=20,
                    metrics=PLATEAU_LOSS if plateau else None,
                )
            )
    return cases


def all_cases() -> list[Case]:
    return _optim_db_cases() + _torch_test_cases() + _option_cases()


def all_errors() -> list[ErrorCase]:
    return _torch_test_errors() + _option_errors()


# --------------------------------------------------------------------------------------------
# Running a case.
# --------------------------------------------------------------------------------------------


def _optimizer(case: Case) -> torch.optim.Optimizer:
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    cls = {"SGD": torch.optim.SGD, "Adam": torch.optim.Adam}[case.optimizer]
    return cls([p], lr=case.lr)


def torch_lrs(case: Case) -> np.ndarray:
    """torch's lrs: at counts 0..steps; after each ``step(metric)``; after each ``step(epoch)``."""
    opt = _optimizer(case)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _TORCH_ORDER_WARNING, UserWarning)
        made = case.torch(opt)
        scheds = made if isinstance(made, list) else [made]
        lrs = []
        if case.metrics is not None:
            for m in case.metrics:
                opt.step()
                for s in scheds:
                    if isinstance(s, T.ReduceLROnPlateau):
                        s.step(m)
                    else:
                        s.step()
                lrs.append(opt.param_groups[0]["lr"])
        elif case.epochs is not None:
            for e in case.epochs:
                opt.step()
                scheds[0].step(e)
                lrs.append(opt.param_groups[0]["lr"])
        else:
            lrs.append(opt.param_groups[0]["lr"])
            for _ in range(case.steps):
                opt.step()
                for s in scheds:
                    s.step()
                lrs.append(opt.param_groups[0]["lr"])
    return np.asarray([float(x) for x in lrs])


def jax_lrs(case: Case, schedule: Any = None) -> np.ndarray:
    """jaxnets' lrs at the same points as :func:`torch_lrs` (``schedule`` built if None)."""
    schedule = case.jax() if schedule is None else schedule
    if case.metrics is not None:
        state, lrs = schedule.init(case.lr), []
        for m in case.metrics:
            state = schedule.step(state, m)
            lrs.append(state.lr)
        return np.asarray(lrs, dtype=np.float64)
    if case.epochs is not None and isinstance(schedule, S.LRSchedule):
        counts = np.asarray(case.epochs, dtype=np.float64)
    else:  # counts 0..steps (fractional_epoch: integer step counts too)
        counts = np.arange(len(case.epochs) if case.epochs is not None else case.steps + 1)
    # Evaluated eagerly under vmap, padded to a few fixed lengths so that the primitives
    # compiled for one case serve the next (the counts past the end are dropped).
    n = len(counts)
    size = max(32, 1 << (n - 1).bit_length())
    padded = np.zeros(size, dtype=counts.dtype)
    padded[:n] = counts
    return np.asarray(jax.vmap(schedule)(jnp.asarray(padded)), dtype=np.float64)[:n]


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max|a - b| / max|b| (the normwise measure of jaxnets.tolerances); NaNs must match."""
    if not np.array_equal(np.isnan(actual), np.isnan(expected)):
        return math.inf
    a, b = np.nan_to_num(actual), np.nan_to_num(expected)
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    diff = float(np.max(np.abs(a - b))) if b.size else 0.0
    return diff / scale if scale > 0 else diff


def passes(actual: np.ndarray, expected: np.ndarray) -> bool:
    tol = tolerance(np.float64)
    if actual.shape != expected.shape or not np.array_equal(np.isnan(actual), np.isnan(expected)):
        return False
    a, b = np.nan_to_num(actual), np.nan_to_num(expected)
    return bool(
        np.max(np.abs(a - b), initial=0.0) <= tol.atol + tol.rtol * np.max(np.abs(b), initial=0.0)
    )


def run_case(case: Case) -> tuple[str, float]:
    """``("passed" | "unsupported" | "failed", worst relative error)``."""
    import re

    if case.unsupported is not None:
        try:
            case.jax()
        except (ValueError, TypeError) as e:
            if re.search(case.unsupported, str(e)):
                return "unsupported", math.nan
        return "failed", math.inf
    expected, actual = torch_lrs(case), jax_lrs(case)
    return ("passed" if passes(actual, expected) else "failed"), relative_error(actual, expected)


def run_error(case: ErrorCase) -> bool:
    """True when torch raises and jaxnets raises (a ValueError/TypeError)."""
    opt = _optimizer(Case("", "", "", lambda o: None, lambda: None))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", _TORCH_ORDER_WARNING, UserWarning)
            case.torch(opt)
    except Exception:
        pass
    else:
        return False
    try:
        case.jax()
    except (ValueError, TypeError):
        return True
    except jax.errors.JaxRuntimeError:
        return True
    return False


def table() -> str:
    """The per-class table for the closing note: cases, passed, unsupported (why), failed,
    worst float64 relative error; then the error inputs."""
    rows: dict[str, dict[str, Any]] = {}
    for case in all_cases():
        status, err = run_case(case)
        r = rows.setdefault(
            case.cls,
            {
                "cases": 0,
                "passed": 0,
                "unsupported": {},
                "failed": 0,
                "worst": 0.0,
                "sources": set(),
                "errors": [0, 0],
            },
        )
        r["cases"] += 1
        r["sources"].add(case.source.split(".")[0].split("[")[0])
        if status == "passed":
            r["passed"] += 1
            r["worst"] = max(r["worst"], err)
        elif status == "unsupported":
            r["unsupported"][case.unsupported] = r["unsupported"].get(case.unsupported, 0) + 1
        else:
            r["failed"] += 1
    for e in all_errors():
        r = rows.setdefault(
            e.cls,
            {
                "cases": 0,
                "passed": 0,
                "unsupported": {},
                "failed": 0,
                "worst": 0.0,
                "sources": set(),
                "errors": [0, 0],
            },
        )
        r["errors"][0] += 1
        r["errors"][1] += run_error(e)
    lines = [
        f"{'class':28s} {'cases':>5s} {'passed':>6s} {'unsup':>5s} {'failed':>6s} "
        f"{'worst rel err':>13s} {'errors raised':>13s}  unsupported because"
    ]
    total = [0, 0, 0, 0, 0, 0]
    for cls in sorted(rows):
        r = rows[cls]
        unsup = sum(r["unsupported"].values())
        why = "; ".join(f"{k} ({v})" for k, v in r["unsupported"].items())
        lines.append(
            f"{cls:28s} {r['cases']:5d} {r['passed']:6d} {unsup:5d} {r['failed']:6d} "
            f"{r['worst']:13.1e} {r['errors'][1]:6d}/{r['errors'][0]:<6d}  {why}"
        )
        for i, v in enumerate((r["cases"], r["passed"], unsup, r["failed"], *r["errors"])):
            total[i] += v
    lines.append(
        f"{'total':28s} {total[0]:5d} {total[1]:6d} {total[2]:5d} {total[3]:6d} "
        f"{'':13s} {total[5]:6d}/{total[4]:<6d}"
    )
    by_source: dict[str, int] = {}
    for case in all_cases():
        key = case.source.split(".")[0].split("[")[0]
        by_source[key] = by_source.get(key, 0) + 1
    lines.append("cases by source: " + ", ".join(f"{k} {v}" for k, v in by_source.items()))
    lines.append(f"stricter than torch (jaxnets refuses, torch accepts): {len(STRICTER)}")
    return "\n".join(lines)


if __name__ == "__main__":
    jax.config.update("jax_enable_x64", True)
    print(table())
