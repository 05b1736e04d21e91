"""``torch.optim.lr_scheduler`` twins: each scheduler as a pure function of its step count.

torch code calls ``scheduler.step()`` once at the end of each epoch (``CyclicLR`` and
``OneCycleLR``: after each batch), so the lr used during epoch ``e`` (0-based) is what the
scheduler holds after ``e`` calls, i.e. at ``last_epoch == e``. Each builder here returns that
as a schedule ``f(e) -> lr`` (an :class:`LRSchedule`: jit- and vmap-compatible, shape ``()``);
:func:`per_epoch` turns an epoch schedule into one that an optimizer counting steps (optax's
``count``) can take::

    tx = optim.sgd(per_epoch(step_lr(0.1, step_size=2), steps_per_epoch=len(loader)))
    # == torch: opt = SGD(params, lr=0.1); sched = StepLR(opt, 2)
    #    for epoch ...: (for batch ...: opt.step()); sched.step()

    tx = optim.sgd(one_cycle_lr(0.1, total_steps=n, cycle_momentum=False))  # stepped per batch

``lr`` is the optimizer's lr (torch's ``base_lrs``); one parameter group. :class:`ReduceLROnPlateau`
watches a metric, so it is a small state machine instead (``init``/``step``), fed to the
optimizer through :func:`inject_lr`/:func:`set_lr`.

**torch's numbers, not its formulas.** torch computes most lrs recursively (``get_lr``
multiplies the lr the optimizer holds; ``_get_closed_form_lr`` is used only for
``step(epoch)``). The closed forms here agree with that recursion to float64 rounding,
including where the recursion is not the textbook formula: ``CosineAnnealingLR`` beyond
``T_max`` rises back towards ``lr`` (period ``2*T_max``); ``LinearLR``/``ConstantLR`` with
``total_iters=0`` keep ``lr*start_factor``/``lr*factor`` for ever; ``PolynomialLR`` with
``total_iters=0`` keeps ``lr``. Chaining composes the recursions exactly as torch does
(:func:`chained_scheduler`, :func:`sequential_lr`, and schedulers stepped before or after a
:class:`ReduceLROnPlateau`), so a non-chainable member (``LambdaLR``,
``CosineAnnealingWarmRestarts``) overwrites what came before it in each step, and a
``CosineAnnealingLR`` chained with others adds ``(lr - eta_min)*(1 - cos(pi/T_max))/2`` where
its own recursion does.

**Resuming.** Every schedule is a pure function of the count, so starting at torch's state
``last_epoch = k`` is ``offset(schedule, k)`` (its value at 0 is torch's current lr).

**Checks** happen when a schedule is built, where torch refuses (with torch's conditions), and
also where torch would fail later with a ``ZeroDivisionError`` (``ConstantLR(factor=0)`` at
``total_iters``, ``PolynomialLR`` with a negative power, ``OneCycleLR`` with a phase of no
steps). Integer arguments take Python or numpy integers (not bool, not float); float
arguments take finite real numbers; ``lr``-like arguments must be >= 0, as torch's optimizers
require. Stricter than torch, on purpose: negative ``step_size``/``T_max``/``total_iters``/
milestones/``patience``/``cooldown`` (meaningless; torch silently does something odd with
them), unsorted ``SequentialLR`` milestones, unknown ``scale_mode``. A wrong type is a
``TypeError``, a wrong value a ``ValueError``.

**Not supported, refused with the reason:** ``cycle_momentum=True`` (torch's default for
``CyclicLR``/``OneCycleLR``: it also cycles the optimizer's momentum, which jaxnets'
optimizers take as a constant), ``OneCycleLR``/``CyclicLR`` inside a chain (they rewrite the
optimizer's ``initial_lr``), a ``SequentialLR`` nested in a ``SequentialLR``, and lists of
per-group values (one parameter group).
"""

from __future__ import annotations

import bisect
import inspect
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnets._checks import as_int, is_real

__all__ = [
    "LRSchedule",
    "PlateauState",
    "ReduceLROnPlateau",
    "chained_scheduler",
    "constant_lr",
    "cosine_annealing_lr",
    "cosine_annealing_warm_restarts",
    "cyclic_lr",
    "exponential_lr",
    "fractional_epoch",
    "inject_lr",
    "lambda_lr",
    "linear_lr",
    "multi_step_lr",
    "multiplicative_lr",
    "offset",
    "one_cycle_lr",
    "per_epoch",
    "polynomial_lr",
    "sequential_lr",
    "set_lr",
    "step_lr",
]

Schedule = Callable[[Any], jax.Array]
"""``f(count) -> lr``: ``count`` an int or int array of shape ``()``, the result shape ``()``."""

LrLambda = Callable[[jax.Array], Any]
"""``lr_lambda(epoch) -> factor`` written with ``jnp`` operations: it is called with a traced
int array (no Python ``if`` on it; use ``jnp.where``)."""


# --------------------------------------------------------------------------------------------
# Argument checks.
# --------------------------------------------------------------------------------------------


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


def _check_float(name: str, value: Any, *, nonnegative: bool = False) -> float:
    """``value`` as a Python float; raise unless it is a real number (int, float, numpy scalar
    or shape-``()`` array; not bool or str) that is finite, and >= 0 when ``nonnegative``."""
    if not is_real(value):
        raise TypeError(
            f"{name}={value!r} must be a number (int or float), not {type(value).__name__}."
        )
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{name}={value} is not finite; pass a finite number.")
    if nonnegative and x < 0:
        raise ValueError(
            f"{name}={value} is negative; pass a learning rate >= 0 (torch's optimizers reject "
            "a negative one)."
        )
    return x


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r} is unknown; use one of {', '.join(choices)}.")
    return value


def _check_one_group(name: str, value: Any) -> Any:
    """torch takes a list of per-group values; jaxnets schedules drive one group."""
    if isinstance(value, list | tuple):
        if len(value) != 1:
            raise ValueError(
                f"{name} has {len(value)} values: a jaxnets schedule drives one parameter group "
                "(one lr); pass a single value."
            )
        return value[0]
    return value


def _check_lambda(value: Any) -> LrLambda:
    value = _check_one_group("lr_lambda", value)
    if not callable(value):
        raise TypeError(f"lr_lambda should be a function, but got {type(value).__name__}")
    return value


def _no_cycle_momentum(cls: str, cycle_momentum: bool) -> None:
    if cycle_momentum:
        raise ValueError(
            f"{cls}(cycle_momentum=True), torch's default, also cycles the optimizer's momentum "
            "(or Adam's beta1) inversely to the lr at every step; jaxnets' optimizers take a "
            "constant momentum, so this is not supported. Pass cycle_momentum=False (to torch's "
            f"{cls} too, for parity)."
        )


# --------------------------------------------------------------------------------------------
# Numerics shared by the schedules.
# --------------------------------------------------------------------------------------------


def _float(x: Any) -> jax.Array:
    # The default float dtype (float64 under jax_enable_x64): torch's lrs are Python floats.
    return jnp.asarray(x, dtype=jnp.result_type(float))


def _power(gamma: float, k: Any) -> jax.Array:
    # A float exponent: jnp.power with a concrete integer exponent would compile a new
    # integer_pow for every value of k outside jit.
    return jnp.power(_float(gamma), _float(k))


def _loop(
    first: jax.Array, k: jax.Array, body: Callable[[jax.Array, jax.Array], jax.Array]
) -> jax.Array:
    """``lr = first; for j in 1..k: lr = body(j, lr)`` (k traced or not; no steps if k < 1)."""
    return jax.lax.fori_loop(
        jnp.ones_like(k), k + 1, lambda j, lr: _float(body(j, lr)), _float(first)
    )


def _guard(
    x: jax.Array, bad: jax.Array, at: jax.Array, error: Callable[[np.ndarray], Exception]
) -> jax.Array:
    """``x``, after raising ``error(at[bad])`` where ``bad`` holds: at once for concrete
    values; for traced ones when the computation runs, through a host callback that ``x`` is
    made to depend on (the error then arrives wrapped in a JaxRuntimeError carrying the
    message). One callback for a whole vmapped batch."""
    if not isinstance(bad, jax.core.Tracer):
        if bool(jnp.any(bad)):
            raise error(np.asarray(at)[np.asarray(bad)])
        return x

    def check(b: np.ndarray, a: np.ndarray) -> np.ndarray:
        if np.any(b):
            raise error(np.asarray(a)[np.asarray(b)])
        return np.zeros(np.shape(b), np.bool_)

    never = jax.pure_callback(
        check, jax.ShapeDtypeStruct(jnp.shape(bad), jnp.bool_), bad, at, vmap_method="expand_dims"
    )
    return jnp.where(never, jnp.nan, x)


# --------------------------------------------------------------------------------------------
# The schedule object and torch's chaining protocol.
# --------------------------------------------------------------------------------------------


class LRSchedule:
    """A torch lr scheduler as a pure function ``schedule(count) -> lr`` (shape ``()``).

    ``count`` is torch's ``last_epoch``: the number of ``scheduler.step()`` calls made. The
    private methods mirror what torch's scheduler does to the lr the optimizer holds, which is
    what chaining composes: ``_initial(lr)`` (the constructor's step), ``_step(k, lr)``
    (``get_lr`` at ``last_epoch == k`` outside construction), ``_restart(lr)`` (what
    ``SequentialLR`` does at a milestone: ``_update_lr(0)``), ``_restarted(j, before)`` (the
    lr ``j`` steps after such a restart; ``before()`` is the lr just before it) and
    ``_factor(k)`` (``lr(k)/lr`` for schedulers whose every step multiplies the lr, else
    None).
    """

    torch_name: str = "LRScheduler"
    overwrites: bool = False  # each step sets the lr from base values, ignoring the current one
    chainable: bool = True  # may sit inside chained_scheduler/sequential_lr

    def __init__(self, lr: float) -> None:
        self.lr = lr

    def __call__(self, count: Any) -> jax.Array:
        return self._value(jnp.asarray(count))

    def __repr__(self) -> str:
        return f"<{self.torch_name} schedule, lr={self.lr}>"

    def _value(self, k: jax.Array) -> jax.Array:
        return _loop(self._initial(_float(self.lr)), k, self._step)

    def _initial(self, lr: jax.Array) -> jax.Array:
        return lr

    def _step(self, k: jax.Array, lr: jax.Array) -> jax.Array:
        raise NotImplementedError

    def _restart(self, lr: jax.Array) -> jax.Array:
        return self._step(jnp.asarray(0), lr)

    def _restarted(self, j: jax.Array, before: Callable[[], jax.Array]) -> jax.Array:
        del before
        return self._value(j)

    def _factor(self, k: jax.Array) -> jax.Array | None:
        del k
        return None


class _StepLR(LRSchedule):
    torch_name = "StepLR"

    def __init__(self, lr: float, step_size: int, gamma: float) -> None:
        super().__init__(lr)
        self.step_size, self.gamma = step_size, gamma

    def _factor(self, k: jax.Array) -> jax.Array:
        return _power(self.gamma, k // self.step_size)

    def _value(self, k: jax.Array) -> jax.Array:
        return self.lr * self._factor(k)

    def _step(self, k: jax.Array, lr: jax.Array) -> jax.Array:
        return jnp.where((k == 0) | (k % self.step_size != 0), lr, lr * self.gamma)

    def _restart(self, lr: jax.Array) -> jax.Array:
        return self._value(jnp.asarray(0)) + 0 * lr


def step_lr(lr: float, step_size: int, gamma: float = 0.1) -> LRSchedule:
    """``StepLR(step_size, gamma)``: ``lr * gamma ** (epoch // step_size)``."""
    lr = _check_float("lr", lr, nonnegative=True)
    step_size = _check_int("step_size", step_size, "a positive number of epochs per decay")
    return _StepLR(lr, step_size, _check_float("gamma", gamma))


class _MultiStepLR(LRSchedule):
    torch_name = "MultiStepLR"

    def __init__(self, lr: float, milestones: list[int], gamma: float) -> None:
        super().__init__(lr)
        self.milestones, self.gamma = milestones, gamma

    def _marks(self, k: jax.Array) -> jax.Array:
        return jnp.asarray(self.milestones, dtype=k.dtype).reshape(-1)

    def _factor(self, k: jax.Array) -> jax.Array:
        return _power(self.gamma, jnp.sum(self._marks(k) <= k[..., None], axis=-1))

    def _value(self, k: jax.Array) -> jax.Array:
        return self.lr * self._factor(k)

    def _initial(self, lr: jax.Array) -> jax.Array:
        return self._step(jnp.asarray(0), lr)

    def _step(self, k: jax.Array, lr: jax.Array) -> jax.Array:
        hits = jnp.sum(self._marks(k) == k[..., None], axis=-1)
        return jnp.where(hits == 0, lr, lr * _power(self.gamma, hits))

    def _restart(self, lr: jax.Array) -> jax.Array:
        return self._value(jnp.asarray(0)) + 0 * lr


def multi_step_lr(lr: float, milestones: Iterable[int], gamma: float = 0.1) -> LRSchedule:
    """``MultiStepLR(milestones, gamma)``: ``lr * gamma ** (number of milestones <= epoch)``.

    A milestone listed twice decays twice, as torch's ``Counter(milestones)`` does.
    """
    lr = _check_float("lr", lr, nonnegative=True)
    gamma = _check_float("gamma", gamma)
    ms = sorted(
        _check_int(f"milestones[{i}]", m, "a non-negative epoch index", minimum=0)
        for i, m in enumerate(milestones)
    )
    return _MultiStepLR(lr, ms, gamma)


class _ConstantLR(LRSchedule):
    torch_name = "ConstantLR"

    def __init__(self, lr: float, factor: float, total_iters: int) -> None:
        super().__init__(lr)
        self.factor, self.total_iters = factor, total_iters

    def _factor(self, k: jax.Array) -> jax.Array:
        if self.total_iters == 0:  # the recursion never undoes the factor
            return _float(self.factor) + 0 * k
        return jnp.where(k < self.total_iters, _float(self.factor), _float(1.0))

    def _value(self, k: jax.Array) -> jax.Array:
        return self.lr * self._factor(k)

    def _initial(self, lr: jax.Array) -> jax.Array:
        return lr * self.factor

    def _step(self, k: jax.Array, lr: jax.Array) -> jax.Array:
        undo = lr * (1.0 / self.factor) if self.factor != 0 else lr
        return jnp.where(k == 0, lr * self.factor, jnp.where(k == self.total_iters, undo, lr))

    def _closed_at_0(self) -> jax.Array:
        # torch's _get_closed_form_lr at last_epoch 0.
        f = self.factor
        return _float(self.lr * (f + (self.total_iters <= 0) * (1 - f)))

    def _restart(self, lr: jax.Array) -> jax.Array:
        return self._closed_at_0() + 0 * lr

    def _restarted(self, j: jax.Array, before: Callable[[], jax.Array]) -> jax.Array:
        if self.total_iters == 0:  # restarted at lr, never changed again
            return self._closed_at_0() + 0 * j
        return self._value(j)


def constant_lr(lr: float, factor: float = 1.0 / 3, total_iters: int = 5) -> LRSchedule:
    """``ConstantLR(factor, total_iters)``: ``lr * factor`` before epoch ``total_iters``, then
    ``lr``; with ``total_iters=0`` torch's recursion keeps ``lr * factor`` for ever.

    ``factor`` in [0, 1] as torch requires; ``factor=0`` only with ``total_iters=0`` (torch
    divides by the factor at epoch ``total_iters``).
    """
    lr = _check_float("lr", lr, nonnegative=True)
    factor = _check_float("factor", factor)
    if factor > 1.0 or factor < 0:
        raise ValueError(
            f"factor={factor}: Constant multiplicative factor expected to be between 0 and 1."
        )
    total_iters = _check_int(
        "total_iters", total_iters, "a non-negative number of epochs", minimum=0
    )
    if factor == 0 and total_iters > 0:
        raise ValueError(
            f"factor=0 with total_iters={total_iters}: torch's ConstantLR divides the lr by the "
            "factor at epoch total_iters (ZeroDivisionError); use a factor > 0."
        )
    return _ConstantLR(lr, factor, total_iters)


class _LinearLR(LRSchedule):
    torch_name = "LinearLR"

    def __init__(self, lr: float, start_factor: float, end_factor: float, total_iters: int):
        super().__init__(lr)
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters

    def _factor(self, k: jax.Array) -> jax.Array:
        s, e, t = self.start_factor, self.end_factor, self.total_iters
        if t == 0:  # the recursion never moves off start_factor
            return _float(s) + 0 * k
        return s + (e - s) * _float(jnp.minimum(t, k)) / t

    def _value(self, k: jax.Array) -> jax.Array:
        return self.lr * self._factor(k)

    def _initial(self, lr: jax.Array) -> jax.Array:
        return lr * self.start_factor

    def _step(self, k: jax.Array, lr: jax.Array) -> jax.Array:
        s, e, t = self.start_factor, self.end_factor, self.total_iters
        ratio = 1.0 + (e - s) / (t * s + _float(k - 1) * (e - s))
        return jnp.where(k == 0, lr * s, jnp.where(k > t, lr, lr * ratio))

    def _restart(self, lr: jax.Array) -> jax.Array:
        return self._value(jnp.asarray(0)) + 0 * lr


def linear_lr(
    lr: float, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5
) -> LRSchedule:
    """``LinearLR(start_factor, end_factor, total_iters)``:
    ``lr * (start + (end - start) * min(epoch, total_iters) / total_iters)``.

    ``start_factor`` in (0, 1] and ``end_factor`` in [0, 1] as torch requires. With
    ``total_iters=0`` torch's recursion keeps ``lr * start_factor`` for ever.
    """
    lr = _check_float("lr", lr, nonnegative=True)
    start_factor = _check_float("start_factor", start_factor)
    end_factor = _check_float("end_factor", end_factor)
    if start_factor > 1.0 or start_factor <= 0:
        raise ValueError(
            f"start_factor={start_factor}: Starting multiplicative factor expected to be greater "
            "than 0 and less or equal to 1."
        )
    if end_factor > 1.0 or end_factor < 0:
        raise ValueError(
            f"end_factor={end_factor}: Ending multiplicative factor expected to be between 0 and 1."
        )
    total_iters = _check_int(
        "total_iters", total_iters, "a non-negative number of epochs", minimum=0
    )
    return _LinearLR(lr, start_factor, end_factor, total_iters)


class _ExponentialLR(LRSchedule):
    torch_name = "ExponentialLR"

    def __init__(self, lr: float, gamma: float) -> None:
        super().__init__(lr)
        self.gamma = gamma

    def _factor(self, k: jax.Array) -> jax.Array:
        return _power(self.gamma, k)

    def _value(self, k: jax.Array) -> jax.Array:
        return self.lr * self._factor(k)

    def _step(self, k: jax.Array, lr: jax.Array) -> jax.Array:
        return lr * self.gamma + 0 * k

    def _restart(self, lr: jax.Array) -> jax.Array:
        return self._value(jnp.asarray(0)) + 0 * lr


def exponential_lr(lr: float, gamma: float) -> LRSchedule:
    """``ExponentialLR(gamma)``: ``lr * gamma ** epoch``."""
    lr = _check_float("lr", lr, nonnegative=True)
    return _ExponentialLR(lr, _check_float("gamma", gamma))


class _PolynomialLR(LRSchedule):
    torch_name = "PolynomialLR"

    def __init__(self, lr: float, total_iters: int, power: float) -> None:
        super().__init__(lr)
        self.total_iters, self.power = total_iters, power

    def _factor(self, k: jax.Array) -> jax.Array:
        t = self.total_iters
        if t == 0:  # the recursion never changes the lr
            return _float(1.0) + 0 * k
        # Clamped at 0: XLA may divide by t as a multiplication by 1/t, and 1 - t*(1/t) can
        # come out as -1e-16, whose fractional power is NaN where torch has 0.
        return jnp.power(jnp.maximum(1.0 - _float(jnp.minimum(t, k)) / t, 0.0), self.power)

    def _value(self, k: jax.Array) -> jax.Array:
        return self.lr * self._factor(k)

    def _step(self, k: jax.Array, lr: jax.Array) -> jax.Array:
        t = self.total_iters
        if t == 0:
            return lr + 0 * k
        kf = _float(k)
        decay = jnp.power(jnp.maximum(1.0 - kf / t, 0.0) / (1.0 - (kf - 1) / t), self.power)
        return jnp.where(k > t, lr, lr * decay)

    def _restart(self, lr: jax.Array) -> jax.Array:
        return self._value(jnp.asarray(0)) + 0 * lr


def polynomial_lr(lr: float, total_iters: int = 5, power: float = 1.0) -> LRSchedule:
    """``PolynomialLR(total_iters, power)``:
    ``lr * (1 - min(epoch, total_iters) / total_iters) ** power``.

    ``power`` must be >= 0 when ``total_iters > 0`` (torch raises ``0.0 ** power`` at
    epoch ``total_iters`` otherwise); ``total_iters=0`` keeps ``lr``.
    """
    lr = _check_float("lr", lr, nonnegative=True)
    total_iters = _check_int(
        "total_iters", total_iters, "a non-negative number of epochs", minimum=0
    )
    power = _check_float("power", power)
    if power < 0 and total_iters > 0:
        raise ValueError(
            f"power={power} is negative: torch's PolynomialLR raises at epoch total_iters "
            "(0.0 cannot be raised to a negative power); use a power >= 0."
        )
    return _PolynomialLR(lr, total_iters, power)


class _CosineAnnealingLR(LRSchedule):
    torch_name = "CosineAnnealingLR"

    def __init__(self, lr: float, T_max: int, eta_min: float) -> None:  # noqa: N803
        super().__init__(lr)
        self.T_max, self.eta_min = T_max, eta_min

    def _value(self, k: jax.Array) -> jax.Array:
        phase = math.pi * _float(k) / self.T_max
        return self.eta_min + (self.lr - self.eta_min) * (1 + jnp.cos(phase)) / 2

    def _step(self, k: jax.Array, lr: jax.Array) -> jax.Array:
        t, eta = self.T_max, self.eta_min
        kf = _float(k)
        bump = lr + (self.lr - eta) * (1 - math.cos(math.pi / t)) / 2
        ratio = (1 + jnp.cos(math.pi * kf / t)) / (1 + jnp.cos(math.pi * (kf - 1) / t))
        return jnp.where((k - 1 - t) % (2 * t) == 0, bump, ratio * (lr - eta) + eta)

    def _restart(self, lr: jax.Array) -> jax.Array:
        return self._value(jnp.asarray(0)) + 0 * lr


def cosine_annealing_lr(lr: float, T_max: int, eta_min: float = 0.0) -> LRSchedule:  # noqa: N803
    """``CosineAnnealingLR(T_max, eta_min)``:
    ``eta_min + (lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``.

    Periodic beyond ``T_max`` (period ``2*T_max``), exactly as torch's ``scheduler.step()``.
    """
    lr = _check_float("lr", lr, nonnegative=True)
    t_max = _check_int("T_max", T_max, "a positive number of epochs")
    return _CosineAnnealingLR(lr, t_max, _check_float("eta_min", eta_min))


class _LambdaLR(LRSchedule):
    torch_name = "LambdaLR"
    overwrites = True

    def __init__(self, lr: float, lr_lambda: LrLambda) -> None:
        super().__init__(lr)
        self.lr_lambda = lr_lambda

    def _value(self, k: jax.Array) -> jax.Array:
        return _float(self.lr * jnp.asarray(self.lr_lambda(k)))

    def _initial(self, lr: jax.Array) -> jax.Array:
        return self._value(jnp.asarray(0)) + 0 * lr

    def _step(self, k: jax.Array, lr: jax.Array) -> jax.Array:
        return self._value(k) + 0 * lr


def lambda_lr(lr: float, lr_lambda: LrLambda) -> LRSchedule:
    """``LambdaLR(lr_lambda)``: ``lr * lr_lambda(epoch)``.

    ``lr_lambda`` is called with a traced int array: write it with ``jnp`` (``0.95 ** e`` and
    ``e // 30`` work as they are; ``jnp.where`` instead of ``if``).
    """
    lr = _check_float("lr", lr, nonnegative=True)
    return _LambdaLR(lr, _check_lambda(lr_lambda))


class _MultiplicativeLR(LRSchedule):
    torch_name = "MultiplicativeLR"

    def __init__(self, lr: float, lr_lambda: LrLambda) -> None:
        super().__init__(lr)
        self.lr_lambda = lr_lambda

    def _step(self, k: jax.Array, lr: jax.Array) -> jax.Array:
        return lr * self.lr_lambda(k)

    def _factor(self, k: jax.Array) -> jax.Array:
        return _loop(_float(1.0), k, self._step)

    def _restarted(self, j: jax.Array, before: Callable[[], jax.Array]) -> jax.Array:
        # No closed form in torch: the milestone multiplies the lr it finds by lr_lambda(0).
        return _loop(self._restart(before()), j, self._step)


def multiplicative_lr(lr: float, lr_lambda: LrLambda) -> LRSchedule:
    """``MultiplicativeLR(lr_lambda)``: ``lr * prod(lr_lambda(j) for j in 1..epoch)``.

    Evaluated as torch does, one multiplication per epoch (a loop of ``epoch`` steps).
    ``lr_lambda`` is called with a traced int array (see :func:`lambda_lr`).
    """
    lr = _check_float("lr", lr, nonnegative=True)
    return _MultiplicativeLR(lr, _check_lambda(lr_lambda))


class _CosineAnnealingWarmRestarts(LRSchedule):
    torch_name = "CosineAnnealingWarmRestarts"
    overwrites = True

    def __init__(self, lr: float, T_0: int, T_mult: int, eta_min: float) -> None:  # noqa: N803
        super().__init__(lr)
        self.T_0, self.T_mult, self.eta_min = T_0, T_mult, eta_min
        # Restart epochs sum(T_0 * T_mult**i for i < n) and period lengths, as exact ints.
        starts, periods, s, p = [], [], 0, T_0
        while s < 2**62:
            starts.append(s)
            periods.append(p)
            if T_mult == 1:
                break
            s, p = s + p, p * T_mult
        self._starts, self._periods = starts, periods

    def _lr(self, t_cur: jax.Array, t_i: jax.Array) -> jax.Array:
        phase = math.pi * _float(t_cur) / _float(t_i)
        return self.eta_min + (self.lr - self.eta_min) * (1 + jnp.cos(phase)) / 2

    def _value(self, k: jax.Array) -> jax.Array:
        if jnp.issubdtype(k.dtype, jnp.floating):
            return self._value_at_float_epoch(k)
        if self.T_mult == 1:
            return self._lr(k % self.T_0, jnp.asarray(self.T_0))
        top = np.iinfo(np.dtype(k.dtype)).max
        starts = jnp.asarray([s for s in self._starts if s <= top], dtype=k.dtype)
        periods = jnp.asarray(self._periods[: len(starts)], dtype=jnp.result_type(float))
        n = jnp.searchsorted(starts, k, side="right") - 1
        return self._lr(k - starts[n], periods[n])

    def _value_at_float_epoch(self, epoch: jax.Array) -> jax.Array:
        # torch's step(epoch) (used as step(epoch + i / iters) within an epoch).
        epoch = _guard(
            epoch,
            epoch < 0,
            epoch,
            lambda e: ValueError(f"Expected non-negative epoch, but got {np.min(e)}"),
        )
        t0, m = self.T_0, self.T_mult
        if m == 1:
            late = (jnp.mod(epoch, t0), _float(t0))
        else:
            n = jnp.floor(jnp.log(epoch / t0 * (m - 1) + 1) / math.log(m))
            n = jnp.where(epoch >= t0, n, 0)
            powers = jnp.power(_float(m), n)
            late = (epoch - t0 * (powers - 1) / (m - 1), t0 * powers)
        early = epoch >= t0
        return self._lr(jnp.where(early, late[0], epoch), jnp.where(early, late[1], t0))

    def _initial(self, lr: jax.Array) -> jax.Array:
        return self._value(jnp.asarray(0)) + 0 * lr

    def _step(self, k: jax.Array, lr: jax.Array) -> jax.Array:
        return self._value(k) + 0 * lr


def cosine_annealing_warm_restarts(
    lr: float,
    T_0: int,  # noqa: N803
    T_mult: int = 1,  # noqa: N803
    eta_min: float = 0.0,
) -> LRSchedule:
    """``CosineAnnealingWarmRestarts(T_0, T_mult, eta_min)``: cosine from ``lr`` to
    ``eta_min`` over ``T_i`` epochs, then restart with ``T_i *= T_mult`` (``T_0`` first).

    An integer count follows ``scheduler.step()``; a float count follows torch's
    ``scheduler.step(epoch)`` with a fractional epoch (``T_cur`` found by torch's log formula),
    which is how torch steps it within an epoch: ``fractional_epoch(schedule, iters)`` gives
    ``epoch + i / iters`` as torch's loop computes it.
    """
    lr = _check_float("lr", lr, nonnegative=True)
    if as_int(T_0) is None or as_int(T_0) <= 0:
        raise ValueError(f"Expected positive integer T_0, but got {T_0}")
    if as_int(T_mult) is None or as_int(T_mult) < 1:
        raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
    if not is_real(eta_min):
        raise ValueError(
            f"Expected float or int eta_min, but got {eta_min} of type {type(eta_min)}"
        )
    return _CosineAnnealingWarmRestarts(
        lr, as_int(T_0), as_int(T_mult), _check_float("eta_min", eta_min)
    )


class _CyclicLR(LRSchedule):
    torch_name = "CyclicLR"
    overwrites = True
    chainable = False

    def __init__(
        self,
        base_lr: float,
        max_lr: float,
        total_size: float,
        step_ratio: float,
        scale_fn: Callable[[jax.Array], Any],
        scale_mode: str,
    ) -> None:
        super().__init__(base_lr)
        self.max_lr, self.total_size, self.step_ratio = max_lr, total_size, step_ratio
        self.scale_fn, self.scale_mode = scale_fn, scale_mode

    def _value(self, k: jax.Array) -> jax.Array:
        kf = _float(k)
        cycle = jnp.floor(1 + kf / self.total_size)
        x = 1.0 + kf / self.total_size - cycle
        up = x / self.step_ratio
        down = (x - 1) / (self.step_ratio - 1) if self.step_ratio != 1 else x
        scale_factor = jnp.where(x <= self.step_ratio, up, down)
        base_height = (self.max_lr - self.lr) * scale_factor
        scale = self.scale_fn(cycle if self.scale_mode == "cycle" else k)
        return _float(self.lr + base_height * scale)

    def _initial(self, lr: jax.Array) -> jax.Array:
        return self._value(jnp.asarray(0)) + 0 * lr

    def _step(self, k: jax.Array, lr: jax.Array) -> jax.Array:
        return self._value(k) + 0 * lr


def cyclic_lr(
    base_lr: float,
    max_lr: float,
    step_size_up: float = 2000,
    step_size_down: float | None = None,
    mode: str = "triangular",
    gamma: float = 1.0,
    scale_fn: Callable[[jax.Array], Any] | None = None,
    scale_mode: str = "cycle",
    cycle_momentum: bool = True,
    base_momentum: float = 0.8,
    max_momentum: float = 0.9,
) -> LRSchedule:
    """``CyclicLR`` (stepped per batch): the lr moves linearly from ``base_lr`` to ``max_lr``
    over ``step_size_up`` steps and back over ``step_size_down`` (default: the same), the
    amplitude scaled by ``mode``: ``triangular`` (1), ``triangular2`` (halved each cycle),
    ``exp_range`` (``gamma ** step``), or a ``scale_fn`` of the cycle number (float, from 1) or
    of the step (``scale_mode="iterations"``), written with ``jnp``; ``mode`` is then ignored.

    ``cycle_momentum=True`` (torch's default) is refused: pass ``cycle_momentum=False``.
    ``base_momentum``/``max_momentum`` are accepted for torch's signature and unused.
    """
    del base_momentum, max_momentum
    base_lr = _check_float("base_lr", _check_one_group("base_lr", base_lr), nonnegative=True)
    max_lr = _check_float("max_lr", _check_one_group("max_lr", max_lr), nonnegative=True)
    up = _check_float("step_size_up", step_size_up)
    down = up if step_size_down is None else _check_float("step_size_down", step_size_down)
    if up <= 0 or down < 0:
        raise ValueError(
            f"step_size_up={step_size_up} and step_size_down={step_size_down}: use a positive "
            "step_size_up (torch divides by it) and a step_size_down >= 0."
        )
    if scale_fn is None:
        if mode not in ("triangular", "triangular2", "exp_range"):
            raise ValueError(f"mode={mode!r}: mode is invalid and scale_fn is None")
        gamma = _check_float("gamma", gamma)
        if mode == "triangular":
            scale_fn, scale_mode = (lambda x: 1.0), "cycle"
        elif mode == "triangular2":
            scale_fn, scale_mode = (lambda x: 1 / (2.0 ** (x - 1))), "cycle"
        else:
            scale_fn, scale_mode = (lambda x: _power(gamma, x)), "iterations"
    else:
        if not callable(scale_fn):
            raise TypeError(f"scale_fn should be a function, but got {type(scale_fn).__name__}")
        _check_choice("scale_mode", scale_mode, ("cycle", "iterations"))
    _no_cycle_momentum("CyclicLR", cycle_momentum)
    total = up + down
    return _CyclicLR(base_lr, max_lr, total, up / total, scale_fn, scale_mode)


class _OneCycleLR(LRSchedule):
    torch_name = "OneCycleLR"
    overwrites = True
    chainable = False

    def __init__(
        self,
        max_lr: float,
        total_steps: int,
        phases: list[tuple[float, str, str]],
        anneal_strategy: str,
        div_factor: float,
        final_div_factor: float,
    ) -> None:
        initial_lr = max_lr / div_factor
        super().__init__(initial_lr)
        self.max_lr, self.total_steps, self.phases = max_lr, total_steps, phases
        self.anneal_strategy = anneal_strategy
        self._levels = {"initial_lr": initial_lr, "max_lr": max_lr}
        self._levels["min_lr"] = initial_lr / final_div_factor
        # Where the last phase has no steps, torch divides by zero at step total_steps.
        self.last_step = total_steps
        if len(phases) > 1 and phases[-1][0] == phases[-2][0]:
            self.last_step = total_steps - 1

    def _anneal(self, start: float, end: float, pct: jax.Array) -> jax.Array:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (jnp.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _value(self, k: jax.Array) -> jax.Array:
        last, total = self.last_step, self.total_steps
        kf = _guard(
            _float(k),
            k > last,
            k,
            lambda s: ValueError(
                f"Tried to step {np.max(s)} times. The specified number of total steps is "
                f"{total}" + ("" if last == total else " (and torch's last phase has no steps)")
            ),
        )
        out, chosen, start_step = _float(0.0), jnp.zeros(k.shape, bool), 0.0
        for i, (end_step, start_lr, end_lr) in enumerate(self.phases):
            here = ~chosen & ((kf <= end_step) | (i == len(self.phases) - 1))
            width = end_step - start_step
            pct = (kf - start_step) / (width if width != 0 else 1.0)
            lr = self._anneal(self._levels[start_lr], self._levels[end_lr], pct)
            out, chosen, start_step = jnp.where(here, lr, out), chosen | here, end_step
        return out

    def _initial(self, lr: jax.Array) -> jax.Array:
        return self._value(jnp.asarray(0)) + 0 * lr

    def _step(self, k: jax.Array, lr: jax.Array) -> jax.Array:
        return self._value(k) + 0 * lr


def one_cycle_lr(
    max_lr: float,
    total_steps: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    pct_start: float = 0.3,
    anneal_strategy: str = "cos",
    cycle_momentum: bool = True,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
) -> LRSchedule:
    """``OneCycleLR`` (stepped per batch, steps ``0..total_steps``): from
    ``max_lr/div_factor`` up to ``max_lr`` over the first ``pct_start`` of the steps, then
    down to ``max_lr/div_factor/final_div_factor`` (``anneal_strategy`` ``cos`` or
    ``linear``); ``three_phase`` goes back down to ``max_lr/div_factor`` symmetrically first.

    ``total_steps``, or ``epochs * steps_per_epoch``. A count beyond ``total_steps`` raises, as
    torch's ``step()`` does (under jit, when the step runs). ``cycle_momentum=True`` (torch's
    default) is refused: pass ``cycle_momentum=False``; ``base_momentum``/``max_momentum`` are
    accepted for torch's signature and unused.
    """
    del base_momentum, max_momentum
    if total_steps is not None:
        n = as_int(total_steps)
        if n is None or n <= 0 or isinstance(total_steps, bool):
            raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
    elif epochs is not None and steps_per_epoch is not None:
        e, s = as_int(epochs), as_int(steps_per_epoch)
        if e is None or e <= 0 or isinstance(epochs, bool):
            raise ValueError(f"Expected positive integer epochs, but got {epochs}")
        if s is None or s <= 0 or isinstance(steps_per_epoch, bool):
            raise ValueError(
                f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}"
            )
        n = e * s
    else:
        raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
    if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
        raise ValueError(
            f"Expected float between 0 and 1 pct_start, but got {pct_start!r} (torch takes a "
            "Python float only: write 1.0, not 1)"
        )
    _check_choice("anneal_strategy", anneal_strategy, ("cos", "linear"))
    max_lr = _check_float("max_lr", _check_one_group("max_lr", max_lr), nonnegative=True)
    div_factor = _check_float("div_factor", div_factor)
    final_div_factor = _check_float("final_div_factor", final_div_factor)
    if div_factor == 0 or final_div_factor == 0:
        raise ValueError(
            f"div_factor={div_factor}, final_div_factor={final_div_factor}: torch divides by "
            "both (ZeroDivisionError); use non-zero factors."
        )
    first_end = float(pct_start * n) - 1
    if three_phase:
        phases = [
            (first_end, "initial_lr", "max_lr"),
            (float(2 * pct_start * n) - 2, "max_lr", "initial_lr"),
            (float(n - 1), "initial_lr", "min_lr"),
        ]
    else:
        phases = [(first_end, "initial_lr", "max_lr"), (float(n - 1), "max_lr", "min_lr")]
    if first_end == 0:
        raise ValueError(
            f"pct_start={pct_start} with total_steps={n}: the warm-up phase has no steps and "
            "torch's OneCycleLR divides by zero at step 0; change pct_start or total_steps."
        )
    _no_cycle_momentum("OneCycleLR", cycle_momentum)
    return _OneCycleLR(max_lr, n, phases, anneal_strategy, div_factor, final_div_factor)


# --------------------------------------------------------------------------------------------
# Chaining.
# --------------------------------------------------------------------------------------------


def _check_members(cls: str, schedulers: Sequence[Any]) -> list[LRSchedule]:
    members = list(schedulers)
    if len(members) < 1:
        raise ValueError(f"{cls} expects at least one scheduler, but got no scheduler.")
    for i, s in enumerate(members):
        if isinstance(s, ReduceLROnPlateau):
            raise ValueError(
                f"{cls} does not support `ReduceLROnPlateau` scheduler as it requires additional "
                "kwargs to be specified when calling `step`, but got one at index "
                f"{i} in the given schedulers sequence."
            )
        if not isinstance(s, LRSchedule):
            raise TypeError(
                f"{cls} at index {i}: expected a jaxnets schedule (e.g. schedules.step_lr(...)), "
                f"got {type(s).__name__}."
            )
        if not s.chainable:
            raise ValueError(
                f"{cls} at index {i}: a {s.torch_name} inside a chain is not supported (torch's "
                f"{s.torch_name} rewrites the optimizer's lr/initial_lr from its own arguments, "
                "which changes the base of every other scheduler on the optimizer)."
            )
    lrs = {s.lr for s in members}
    if len(lrs) > 1:
        raise ValueError(
            f"{cls}: the schedules were built with different lrs {sorted(lrs)}; torch's "
            "schedulers on one optimizer all start from its lr (initial_lr): build each with "
            "the same lr."
        )
    return members


class _ChainedScheduler(LRSchedule):
    torch_name = "ChainedScheduler"

    def __init__(self, members: list[LRSchedule]) -> None:
        super().__init__(members[0].lr)
        self.members = members

    def _initial(self, lr: jax.Array) -> jax.Array:
        for m in self.members:
            lr = m._initial(lr)
        return lr

    def _step(self, k: jax.Array, lr: jax.Array) -> jax.Array:
        for m in self.members:
            lr = m._step(k, lr)
        return lr

    def _value(self, k: jax.Array) -> jax.Array:
        last = max((i for i, m in enumerate(self.members) if m.overwrites), default=None)
        if last is not None:
            # The last overwriting member sets the lr afresh at each step; only the members
            # after it act on that value, each with its own step at this count.
            first, later = self.members[last], self.members[last + 1 :]
            at0 = first._value(jnp.zeros_like(k))
            now = first._value(k)
            for m in later:
                at0, now = m._initial(at0), m._step(k, now)
            return jnp.where(k == 0, at0, now)
        factors = [m._factor(k) for m in self.members]
        if all(f is not None for f in factors):
            # Every member multiplies the lr by a factor of its own count: the product of the
            # members' closed forms (torch's recursion, to rounding).
            out = _float(self.lr)
            for f in factors:
                out = out * f
            return out
        return super()._value(k)

    def _value_as_first_of_sequence(self, k: jax.Array) -> jax.Array:
        # SequentialLR runs its first scheduler's _initial_step(); for a ChainedScheduler that
        # steps every member at last_epoch 0 outside construction.
        return _loop(self._step(jnp.asarray(0), _float(self.lr)), k, self._step)


def chained_scheduler(schedulers: Sequence[LRSchedule]) -> LRSchedule:
    """``ChainedScheduler(schedulers)``: every member steps the one lr in turn, each epoch.

    As in torch this composes the members' recursions, not their formulas: multiplicative
    members (``StepLR``, ``MultiStepLR``, ``ExponentialLR``, ``ConstantLR``, ``LinearLR``,
    ``PolynomialLR``, ``MultiplicativeLR``) multiply, a ``LambdaLR`` or
    ``CosineAnnealingWarmRestarts`` overwrites what the members before it produced, and a
    ``CosineAnnealingLR`` applies its own step to the product so far (evaluated as a loop of
    ``epoch`` steps when the chain holds one and no overwriting member after it). All members
    are built with the same ``lr``, the optimizer's, in the order torch constructed them.
    """
    return _ChainedScheduler(_check_members("ChainedScheduler", schedulers))


class _SequentialLR(LRSchedule):
    torch_name = "SequentialLR"

    def __init__(self, members: list[LRSchedule], milestones: list[int]) -> None:
        super().__init__(members[0].lr)
        self.members, self.milestones = members, milestones
        self._first = bisect.bisect_right(milestones, 0)  # the scheduler running at epoch 0

    def _start(self, i: int) -> int:
        return self.milestones[i - 1] if i > 0 else 0

    def _segment(self, i: int, k: jax.Array) -> jax.Array:
        m = self.members[i]
        if i == self._first:
            if isinstance(m, _ChainedScheduler):
                return m._value_as_first_of_sequence(k)
            return m._value(k)
        start = self._start(i)
        return m._restarted(k - start, lambda: self._value_at(start - 1))

    def _value_at(self, epoch: int) -> jax.Array:
        # A concrete epoch: only the segment it falls in (the restart of a later segment asks
        # for the lr just before it, which lies in an earlier one).
        i = bisect.bisect_right(self.milestones, epoch)
        return self._segment(i, jnp.asarray(epoch))

    def _value(self, k: jax.Array) -> jax.Array:
        idx = jnp.searchsorted(jnp.asarray(self.milestones, dtype=k.dtype), k, side="right")
        out = _float(0.0) + 0 * k
        for i in range(self._first, len(self.members)):
            out = jnp.where(idx == i, self._segment(i, k), out)
        return out

    def _initial(self, lr: jax.Array) -> jax.Array:
        # torch's constructor puts initial_lr back, then runs the first scheduler's first step.
        m, base = self.members[self._first], _float(self.lr) + 0 * lr
        if isinstance(m, _ChainedScheduler):
            return m._step(jnp.asarray(0), base)
        return m._initial(base)

    def _step(self, k: jax.Array, lr: jax.Array) -> jax.Array:
        ms = self.milestones
        idx = jnp.searchsorted(jnp.asarray(ms, dtype=k.dtype), k, side="right")
        out = lr
        for i in range(self._first, len(self.members)):
            m, start = self.members[i], self._start(i)
            here = m._step(k - start, lr)
            if i > self._first:
                here = jnp.where(k == start, m._restart(lr), here)
            out = jnp.where(idx == i, here, out)
        return out


def sequential_lr(schedulers: Sequence[LRSchedule], milestones: Sequence[int]) -> LRSchedule:
    """``SequentialLR(schedulers, milestones)``: ``schedulers[i]`` runs from ``milestones[i-1]``.

    torch's semantics at a milestone: the next scheduler restarts from its closed form at
    epoch 0 (``StepLR``, ``MultiStepLR``, ``ConstantLR``, ``LinearLR``, ``ExponentialLR``,
    ``PolynomialLR``, ``CosineAnnealingLR``: their lr at epoch 0, computed from ``lr``; for
    ``ConstantLR(total_iters=0)`` that is ``lr`` itself) or, without one, from its ``get_lr``
    at epoch 0 (``MultiplicativeLR`` multiplies the lr it finds by ``lr_lambda(0)``), and counts
    its epochs from there. The first scheduler runs its construction step at epoch 0; a
    ``ChainedScheduler`` there steps each member at epoch 0 instead, as torch does.
    ``milestones`` are non-decreasing epoch indices, one fewer than ``schedulers``.
    """
    members = _check_members("SequentialLR", schedulers)
    milestones = list(milestones)
    if len(milestones) != len(members) - 1:
        raise ValueError(
            "Sequential Schedulers expects number of schedulers provided to be one more than the "
            f"number of milestone points, but got number of schedulers {len(members)} and the "
            f"number of milestones to be equal to {len(milestones)}"
        )
    ms = [
        _check_int(f"milestones[{i}]", m, "a non-negative epoch index", minimum=0)
        for i, m in enumerate(milestones)
    ]
    if ms != sorted(ms):
        raise ValueError(f"milestones={ms} must be non-decreasing epoch indices.")
    first = bisect.bisect_right(ms, 0)
    for i, m in enumerate(members):
        if isinstance(m, _SequentialLR):
            raise ValueError(
                f"SequentialLR at index {i}: a SequentialLR inside a SequentialLR is not "
                "supported; list its schedulers and milestones in the outer one."
            )
        if i > first and isinstance(m, _ChainedScheduler):
            raise ValueError(
                f"SequentialLR at index {i}: torch's SequentialLR cannot restart a "
                "ChainedScheduler at a milestone (NotImplementedError in its get_lr); only the "
                "first scheduler may be a chain."
            )
        if i > first and isinstance(m, _LinearLR | _PolynomialLR) and m.total_iters == 0:
            raise ValueError(
                f"SequentialLR at index {i}: torch restarts a {m.torch_name} with "
                "total_iters=0 by dividing by total_iters (ZeroDivisionError); use "
                "total_iters >= 1."
            )
    return _SequentialLR(members, ms)


# --------------------------------------------------------------------------------------------
# Driving optimizers: per-step counts, resumes.
# --------------------------------------------------------------------------------------------


def per_epoch(schedule: Schedule, steps_per_epoch: int) -> Schedule:
    """Turn an epoch schedule into an optimizer-step schedule: ``epoch = count // steps_per_epoch``.

    Steps ``0 .. steps_per_epoch-1`` use the epoch-0 lr, the next ``steps_per_epoch`` the
    epoch-1 lr, and so on, as ``scheduler.step()`` at each epoch end does in torch.
    """
    steps_per_epoch = _check_int("steps_per_epoch", steps_per_epoch, "a positive number of steps")

    def stepwise(count: Any) -> jax.Array:
        return schedule(jnp.asarray(count) // steps_per_epoch)

    return stepwise


def fractional_epoch(schedule: Schedule, steps_per_epoch: int) -> Schedule:
    """Drive a schedule at ``epoch + i / steps_per_epoch`` for step ``i`` of each epoch.

    torch's ``CosineAnnealingWarmRestarts`` is stepped this way within an epoch
    (``scheduler.step(epoch + i / iters)``); the float is computed as torch's loop computes it.
    """
    steps_per_epoch = _check_int("steps_per_epoch", steps_per_epoch, "a positive number of steps")

    def stepwise(count: Any) -> jax.Array:
        count = jnp.asarray(count)
        return schedule(
            _float(count // steps_per_epoch) + _float(count % steps_per_epoch) / steps_per_epoch
        )

    return stepwise


def offset(schedule: Schedule, steps: int) -> Schedule:
    """``schedule`` started ``steps`` counts in: ``count -> schedule(count + steps)``.

    Resuming a torch run whose scheduler holds ``last_epoch = k``: ``offset(schedule, k)``
    gives torch's current lr at 0 and its next lrs after.
    """
    steps = _check_int("steps", steps, "a non-negative number of steps", minimum=0)

    def shifted(count: Any) -> jax.Array:
        return schedule(jnp.asarray(count) + steps)

    return shifted


# --------------------------------------------------------------------------------------------
# ReduceLROnPlateau.
# --------------------------------------------------------------------------------------------


class PlateauState(NamedTuple):
    """The state of :class:`ReduceLROnPlateau` (arrays of shape ``()``): torch's fields."""

    lr: jax.Array  # the optimizer's lr (torch: param_groups[0]["lr"])
    best: jax.Array  # best metric so far (inf for "min", -inf for "max" at the start)
    num_bad_epochs: jax.Array
    cooldown_counter: jax.Array
    last_epoch: jax.Array


class ReduceLROnPlateau:
    """``ReduceLROnPlateau``: multiply the lr by ``factor`` once the metric has not improved
    for more than ``patience`` epochs, then wait ``cooldown`` epochs; never below ``min_lr``,
    and a reduction smaller than ``eps`` is skipped. torch's arguments and defaults.

    Not a function of the count (it watches a metric), so a pure state machine::

        plateau = ReduceLROnPlateau(patience=2)
        state = plateau.init(0.1)                     # torch: ReduceLROnPlateau(opt), lr 0.1
        state = plateau.step(state, val_loss)         # torch: scheduler.step(val_loss)
        tx = inject_lr(optim.sgd, 0.1, momentum=0.9)  # the lr lives in the optimizer state
        opt_state = set_lr(opt_state, state.lr)       # once per epoch, after step

    ``before``/``after``: other schedules on the same optimizer, stepped (``scheduler.step()``)
    just before/after this one each epoch, as torch users step several schedulers in turn;
    built with the same ``lr`` as ``init``. ``step`` is jit-compatible.
    """

    def __init__(
        self,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0,
        eps: float = 1e-8,
        *,
        before: Sequence[LRSchedule] = (),
        after: Sequence[LRSchedule] = (),
    ) -> None:
        factor = _check_float("factor", factor)
        if factor >= 1.0:
            raise ValueError(f"factor={factor}: Factor should be < 1.0.")
        self.mode = _check_choice("mode", mode, ("min", "max"))
        self.threshold_mode = _check_choice("threshold_mode", threshold_mode, ("rel", "abs"))
        self.factor = factor
        self.patience = _check_int(
            "patience", patience, "a non-negative number of epochs", minimum=0
        )
        self.cooldown = _check_int(
            "cooldown", cooldown, "a non-negative number of epochs", minimum=0
        )
        self.threshold = _check_float("threshold", threshold)
        self.min_lr = _check_float("min_lr", _check_one_group("min_lr", min_lr))
        self.eps = _check_float("eps", eps)
        self.before = _check_members("ReduceLROnPlateau(before=...)", before) if before else []
        self.after = _check_members("ReduceLROnPlateau(after=...)", after) if after else []

    @property
    def mode_worse(self) -> float:
        return math.inf if self.mode == "min" else -math.inf

    def init(
        self,
        lr: Any,
        *,
        best: Any = None,
        num_bad_epochs: Any = 0,
        cooldown_counter: Any = 0,
        last_epoch: Any = 0,
    ) -> PlateauState:
        """The state after torch's constructor, on an optimizer with lr ``lr``; the keywords
        resume from a torch ``state_dict()`` (``best``, ``num_bad_epochs``,
        ``cooldown_counter``, ``last_epoch``; ``lr`` then is the optimizer's current lr)."""
        lr_value = _check_float("lr", lr, nonnegative=True)
        others = self.before + self.after
        if others and {s.lr for s in others} != {lr_value}:
            raise ValueError(
                f"ReduceLROnPlateau.init(lr={lr_value}): the chained schedules were built with "
                f"lr {sorted({s.lr for s in others})}; build them with the optimizer's lr."
            )
        lr = _float(lr_value)
        if last_epoch == 0:  # the others' construction steps; a resumed lr already has them
            for s in others:
                lr = s._initial(lr)
        return PlateauState(
            lr=lr,
            best=_float(self.mode_worse if best is None else best),
            num_bad_epochs=jnp.asarray(num_bad_epochs),
            cooldown_counter=jnp.asarray(cooldown_counter),
            last_epoch=jnp.asarray(last_epoch),
        )

    def _is_better(self, a: jax.Array, best: jax.Array) -> jax.Array:
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def step(self, state: PlateauState, metrics: Any) -> PlateauState:
        """torch's ``scheduler.step(metrics)`` (with ``before``/``after`` stepped around it);
        ``metrics`` a number or shape-``()`` array."""
        current = _float(metrics)
        epoch = state.last_epoch + 1
        lr = state.lr
        for s in self.before:
            lr = s._step(epoch, lr)
        better = self._is_better(current, state.best)
        best = jnp.where(better, current, state.best)
        bad = jnp.where(better, 0, state.num_bad_epochs + 1)
        cooling = state.cooldown_counter > 0
        cooldown_counter = jnp.where(cooling, state.cooldown_counter - 1, state.cooldown_counter)
        bad = jnp.where(cooling, 0, bad)
        reduce = bad > self.patience
        new_lr = jnp.maximum(lr * self.factor, self.min_lr)
        lr = jnp.where(reduce & (lr - new_lr > self.eps), new_lr, lr)
        cooldown_counter = jnp.where(reduce, self.cooldown, cooldown_counter)
        bad = jnp.where(reduce, 0, bad)
        for s in self.after:
            lr = s._step(epoch, lr)
        return PlateauState(lr, best, bad, cooldown_counter, epoch)


def inject_lr(
    factory: Callable[..., optax.GradientTransformation], lr: float, **kwargs: Any
) -> optax.GradientTransformation:
    """``factory(lr=lr, **kwargs)`` (a :mod:`jaxnets.optim` builder) with the lr held in its
    state, so :func:`set_lr` can change it between steps (for :class:`ReduceLROnPlateau`).

    ``optax.inject_hyperparams`` with every other argument static.
    """
    names = [n for n in inspect.signature(factory).parameters if n != "lr"]
    return optax.inject_hyperparams(factory, static_args=tuple(names))(lr=lr, **kwargs)


def set_lr(opt_state: Any, lr: Any) -> Any:
    """``opt_state`` of an :func:`inject_lr` optimizer with its lr replaced by ``lr``."""
    if not hasattr(opt_state, "hyperparams") or "lr" not in opt_state.hyperparams:
        raise TypeError(
            "set_lr needs the state of an optimizer built with inject_lr(...) (its lr is an "
            f"injected hyperparameter); got {type(opt_state).__name__}."
        )
    old = opt_state.hyperparams["lr"]
    hyperparams = {**opt_state.hyperparams, "lr": jnp.asarray(lr, dtype=old.dtype)}
    return opt_state._replace(hyperparams=hyperparams)
