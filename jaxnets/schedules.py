"""torch.optim.lr_scheduler twins as optax-style schedules, stepped per EPOCH as torch users do.

torch code calls ``scheduler.step()`` once at the end of each epoch, so the lr used during
epoch ``e`` (0-based) is what the scheduler holds after ``e`` calls. Each function here
returns that as a schedule ``f(epoch) -> lr`` (jit-compatible, closed form); wrap it with
:func:`per_epoch` to drive an optimizer that counts steps (optax's ``count``)::

    tx = optim.sgd(per_epoch(step_lr(0.1, step_size=2), steps_per_epoch=len(loader)))
    # == torch: opt = SGD(params, lr=0.1); sched = StepLR(opt, 2)
    #    for epoch ...: (for batch ...: opt.step()); sched.step()

torch computes these lrs recursively (``get_lr`` multiplies the previous lr, which is what
``scheduler.step()`` uses); the closed forms here agree with that recursion to float64
rounding (the test compares against ``scheduler.step()`` epoch by epoch). For
:func:`cosine_annealing_lr` beyond ``T_max`` both continue the cosine, so the lr rises back
towards ``lr`` with period ``2*T_max`` rather than staying at ``eta_min``: torch's recursive
branch for ``(epoch - 1 - T_max) % (2*T_max) == 0`` exists to do exactly that.

Arguments are checked when the schedule is built. Integer arguments (``step_size``,
``milestones``, ``T_max``, ``steps_per_epoch``) take Python or numpy integers (anything
``operator.index`` accepts, except bool); float arguments take real numbers and must be
finite. ``lr`` must also be >= 0, as torch's optimizers require of it (``torch/optim/sgd.py``,
``adam.py``: ``Invalid learning rate``); torch's schedulers themselves
(``torch/optim/lr_scheduler.py``: ``StepLR``, ``MultiStepLR``, ``ExponentialLR``,
``CosineAnnealingLR``) store ``gamma`` and ``eta_min`` unchecked, so any finite value is
accepted here. A wrong type is a ``TypeError``, a wrong value a ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp

from jaxnets._checks import as_int, is_real

__all__ = [
    "cosine_annealing_lr",
    "exponential_lr",
    "multi_step_lr",
    "per_epoch",
    "step_lr",
]

Schedule = Callable[[Any], jax.Array]
"""``f(count) -> lr``: ``count`` an int or int array of shape ``()``, the result shape ``()``."""


def _check_int(name: str, value: Any, what: str, *, minimum: int = 1) -> int:
    """``value`` as a Python int, via ``operator.index`` (so numpy integers pass; bool, float
    and str do not), checked to be >= ``minimum``; ``what`` says what the argument is."""
    n = as_int(value)
    if n is None:
        raise TypeError(
            f"{name}={value!r} must be {what}, given as an int or numpy integer, "
            f"not {type(value).__name__}."
        )
    if n < minimum:
        raise ValueError(f"{name}={n} must be {what}.")
    return n


def _check_float(name: str, value: Any, *, nonnegative: bool = False) -> None:
    """Raise unless ``value`` is a real number (int, float, numpy scalar or shape-``()`` array;
    not bool or str) that is finite, and >= 0 when ``nonnegative``."""
    if not is_real(value):
        raise TypeError(
            f"{name}={value!r} must be a number (int or float), not {type(value).__name__}."
        )
    if not math.isfinite(float(value)):
        raise ValueError(f"{name}={value} is not finite; pass a finite number.")
    if nonnegative and value < 0:
        raise ValueError(
            f"{name}={value} is negative; pass a learning rate >= 0 (torch's optimizers reject "
            "a negative one)."
        )


def _float(x: Any) -> jax.Array:
    # The default float dtype (float64 under jax_enable_x64): torch's lrs are Python floats.
    return jnp.asarray(x, dtype=jnp.result_type(float))


def _power(gamma: float, k: Any) -> jax.Array:
    # A float exponent: jnp.power with a concrete integer exponent would compile a new
    # integer_pow for every value of k outside jit.
    return jnp.power(_float(gamma), _float(k))


def step_lr(lr: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """``StepLR``: ``lr * gamma ** (epoch // step_size)``."""
    _check_float("lr", lr, nonnegative=True)
    step_size = _check_int("step_size", step_size, "a positive number of epochs per decay")
    _check_float("gamma", gamma)

    def schedule(epoch: Any) -> jax.Array:
        return lr * _power(gamma, jnp.asarray(epoch) // step_size)

    return schedule


def multi_step_lr(lr: float, milestones: Iterable[int], gamma: float = 0.1) -> Schedule:
    """``MultiStepLR``: ``lr * gamma ** (number of milestones <= epoch)``.

    A milestone listed twice decays twice, as torch's ``Counter(milestones)`` does.
    """
    _check_float("lr", lr, nonnegative=True)
    _check_float("gamma", gamma)
    ms = sorted(
        _check_int(f"milestones[{i}]", m, "a non-negative epoch index", minimum=0)
        for i, m in enumerate(milestones)
    )
    marks = jnp.asarray(ms, dtype=jnp.int32).reshape(-1)

    def schedule(epoch: Any) -> jax.Array:
        passed = jnp.sum(marks <= jnp.asarray(epoch))
        return lr * _power(gamma, passed)

    return schedule


def exponential_lr(lr: float, gamma: float) -> Schedule:
    """``ExponentialLR``: ``lr * gamma ** epoch``."""
    _check_float("lr", lr, nonnegative=True)
    _check_float("gamma", gamma)

    def schedule(epoch: Any) -> jax.Array:
        return lr * _power(gamma, epoch)

    return schedule


def cosine_annealing_lr(lr: float, T_max: int, eta_min: float = 0.0) -> Schedule:  # noqa: N803
    """``CosineAnnealingLR``: ``eta_min + (lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``.

    Periodic beyond ``T_max`` (period ``2*T_max``), exactly as torch's ``scheduler.step()``.
    """
    _check_float("lr", lr, nonnegative=True)
    t_max = _check_int("T_max", T_max, "a positive number of epochs")
    _check_float("eta_min", eta_min)

    def schedule(epoch: Any) -> jax.Array:
        phase = math.pi * _float(epoch) / t_max
        return eta_min + (lr - eta_min) * (1 + jnp.cos(phase)) / 2

    return schedule


def per_epoch(schedule: Schedule, steps_per_epoch: int) -> Schedule:
    """Turn an epoch schedule into an optimizer-step schedule: ``epoch = count // steps_per_epoch``.

    Steps ``0 .. steps_per_epoch-1`` use the epoch-0 lr, the next ``steps_per_epoch`` the
    epoch-1 lr, and so on, as ``scheduler.step()`` at each epoch end does in torch.
    """
    steps_per_epoch = _check_int("steps_per_epoch", steps_per_epoch, "a positive number of steps")

    def stepwise(count: Any) -> jax.Array:
        return schedule(jnp.asarray(count) // steps_per_epoch)

    return stepwise
