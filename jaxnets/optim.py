"""torch.optim twins as optax ``GradientTransformation``\\s: torch names, arguments and defaults.

Each builder is an ``optax.chain`` of optax pieces; what optax lacks is written once here.
``lr`` is a float or an optax-style schedule ``f(count) -> lr`` (``count`` = number of
optimizer steps taken so far, starting at 0), as torch's ``group['lr']`` at that step.
Use them like any optax optimizer::

    tx = optim.adamw(1e-3)                     # == torch.optim.AdamW(params, lr=1e-3)
    state = tx.init(params)
    updates, state = tx.update(grads, state, params)   # params are needed for weight decay
    params = optax.apply_updates(params, updates)

The reference for every formula is the single-tensor path of torch.optim
(``torch/optim/{sgd,adam,rmsprop,adagrad}.py``: ``_single_tensor_sgd`` etc.; torch uses it on
CPU and the foreach/fused kernels compute the same formulas) and ``torch/nn/utils/clip_grad.py``.

Where torch and optax's ready-made aliases disagree. Each row is a tested case in
``parity_tests/test_optim.py`` (``test_optax_*``); "here" says what this module does.

=============== ================================= ==========================================
what            torch (source file)               optax (API docs of the alias named)
=============== ================================= ==========================================
SGD dampening   ``buf = m*buf + (1-d)*g``, and    ``optax.sgd``/``optax.trace``: no
                ``buf = g`` on step 1 (sgd.py)    dampening. Here: ``_torch_momentum``
weight_decay    coupled L2 ``g += wd*p`` before   ``optax.sgd``/``adam``/``rmsprop``/
(SGD, Adam,     the moments (sgd.py, adam.py,     ``adagrad`` take no weight decay. Here:
RMSprop,        rmsprop.py, adagrad.py)           ``add_decayed_weights`` first in chain
Adagrad)
AdamW default   ``weight_decay=1e-2`` (adamw.py)  ``optax.adamw``: ``weight_decay=1e-4``
AMSGrad         max of the RAW ``v``, then        ``optax.amsgrad``: max of ``v/(1-b2^t)``
                ``/ sqrt(1-b2^t)`` (adam.py)      (or no correction). Here:
                                                  ``_scale_by_torch_amsgrad``
RMSprop alpha   ``alpha=0.99`` (rmsprop.py)       ``optax.rmsprop``: ``decay=0.9``
RMSprop eps     outside: ``g/(sqrt(v)+eps)``      default ``eps_in_sqrt=True``:
                (rmsprop.py)                      ``g/sqrt(v+eps)``
RMSprop         ``buf = m*buf + g/avg``,          ``optax.rmsprop``: ``trace`` after
momentum        ``p -= lr*buf`` (rmsprop.py)      ``scale_by_learning_rate``, so the buffer
                                                  holds past lrs: equal only for a constant
                                                  lr. Here: ``trace`` before the lr
Adagrad init    ``initial_accumulator_value=0``   ``optax.adagrad``: ``0.1``
                (adagrad.py)
Adagrad eps     outside: ``g/(sqrt(s)+eps)``,     ``optax.adagrad``: inside,
                ``eps=1e-10`` (adagrad.py)        ``g*rsqrt(s+eps)``, ``eps=1e-7``. Here:
                                                  ``_scale_by_torch_adagrad``
Adagrad         ``lr/(1+(t-1)*lr_decay)``         no such argument. Here: folded into the
lr_decay        (adagrad.py)                      lr schedule
clip_grad_norm  ``g*min(max_norm/(norm+1e-6),1)`` ``optax.clip_by_global_norm``:
                any p-norm (nn/utils/clip_grad)   ``g/norm*max_norm``, 2-norm only
=============== ================================= ==========================================

``optax.adam`` itself agrees with torch Adam (``m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps)`` is
torch's ``lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)`` rearranged), so ``adam`` uses
``optax.scale_by_adam``. AdamW's decoupled decay ``p *= 1 - lr*wd`` happens before torch's Adam
update, which does not depend on ``p``, so it equals adding ``wd*p`` to the Adam direction before
the lr scale (``optax.add_decayed_weights`` after ``scale_by_adam``), schedules included.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnets._checks import is_real
from jaxnets.fast.training import mark_layout_free

__all__ = [
    "adagrad",
    "adam",
    "adamw",
    "clip_grad_norm",
    "clip_grad_norm_",
    "rmsprop",
    "sgd",
]

LearningRate = optax.ScalarOrSchedule
"""A float, or an optax schedule ``f(count) -> lr`` with ``count`` the steps taken so far."""


def _check(ok: bool | Callable[[], bool], message: str, **values: Any) -> None:
    """Raise ``ValueError(message)`` unless ``ok``: every builder's argument check.

    ``values`` (argument name = value) are first checked to be real numbers, with a
    ``TypeError`` naming the argument. Pass ``ok`` as a lambda when it compares them, so a
    value of the wrong type (``lr="0.01"``) gets that TypeError, not a failed comparison.
    """
    for name, value in values.items():
        if not is_real(value):
            fix = "pass the number itself (e.g. 0.01, not '0.01')"
            raise TypeError(
                f"{name} must be a number (an int or a float), got {value!r} of type "
                f"{type(value).__name__}; {fix if isinstance(value, str) else 'pass a number'}"
            )
    if not (ok() if callable(ok) else ok):
        raise ValueError(message)


def _check_lr(lr: LearningRate) -> None:
    # A traced lr is optax.inject_hyperparams rebuilding the optimizer inside a jitted update
    # (jaxnets.schedules.inject_lr): its value was checked where it was set.
    if not callable(lr) and not isinstance(lr, jax.core.Tracer):
        _check(
            lambda: lr >= 0.0,
            f"Invalid learning rate: {lr}; it must be >= 0 (or a schedule).",
            lr=lr,
        )


def _check_betas(betas: Any) -> tuple[Any, Any]:
    """``betas`` as ``(beta1, beta2)``, each a number in ``[0, 1)`` (torch's checks)."""
    pair = not isinstance(betas, str | bytes) and hasattr(betas, "__len__")
    if not pair or len(betas) != 2:
        message = f"betas must be a pair (beta1, beta2), e.g. betas=(0.9, 0.999); got {betas!r}"
        raise (ValueError if pair else TypeError)(message)
    b1, b2 = betas
    for i, b in enumerate((b1, b2)):
        _check(
            lambda b=b: 0.0 <= b < 1.0,
            f"Invalid beta parameter at index {i}: {b}; it must be in [0, 1).",
            **{f"betas[{i}]": b},
        )
    return b1, b2


def _maximize(maximize: bool) -> list[optax.GradientTransformation]:
    # torch negates the gradient first, before weight decay: grad = -grad if maximize.
    return [optax.scale(-1.0)] if maximize else []


def _weight_decay(weight_decay: float) -> list[optax.GradientTransformation]:
    # torch's coupled L2: grad = grad + weight_decay * param.
    _check(
        lambda: weight_decay >= 0.0,
        f"Invalid weight_decay value: {weight_decay}; it must be >= 0.",
        weight_decay=weight_decay,
    )
    return [optax.add_decayed_weights(weight_decay)] if weight_decay != 0 else []


# --------------------------------------------------------------------------------------------
# What optax lacks, written once.
# --------------------------------------------------------------------------------------------


class TorchMomentumState(NamedTuple):
    """State of :func:`_torch_momentum`: steps taken and torch's ``momentum_buffer``."""

    count: jax.Array  # shape (), int32
    momentum_buffer: optax.Updates


def _torch_momentum(momentum: float, dampening: float) -> optax.GradientTransformation:
    """torch SGD momentum with dampening (``_single_tensor_sgd``).

    Step 1: ``buf = g`` (no dampening); later ``buf = momentum*buf + (1-dampening)*g``.
    The update is ``buf``. (optax.trace has no dampening; with ``dampening=0`` it is the same.)
    """

    def init_fn(params: optax.Params) -> TorchMomentumState:
        return TorchMomentumState(
            count=jnp.zeros([], jnp.int32), momentum_buffer=optax.tree.zeros_like(params)
        )

    def update_fn(
        updates: optax.Updates, state: TorchMomentumState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, TorchMomentumState]:
        del params
        first = state.count == 0
        buf = jax.tree.map(
            lambda g, b: jnp.where(first, g, b * momentum + g * (1.0 - dampening)).astype(g.dtype),
            updates,
            state.momentum_buffer,
        )
        count = optax.safe_increment(state.count)
        return buf, TorchMomentumState(count=count, momentum_buffer=buf)

    return optax.GradientTransformation(init_fn, update_fn)


class TorchAmsgradState(NamedTuple):
    """State of :func:`_scale_by_torch_amsgrad`: torch's ``exp_avg``, ``exp_avg_sq``, max."""

    count: jax.Array  # shape (), int32
    exp_avg: optax.Updates
    exp_avg_sq: optax.Updates
    max_exp_avg_sq: optax.Updates


@jax.jit
def _torch_bias_corrections(b1: float, b2: float, count: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``1 - b1^t`` and ``sqrt(1 - b2^t)`` (jitted so an eager step does not compile a new
    integer power for every value of ``t``, as optax's bias correction is)."""
    t = count.astype(jnp.result_type(float))
    return 1.0 - b1**t, jnp.sqrt(1.0 - b2**t)


def _scale_by_torch_amsgrad(b1: float, b2: float, eps: float) -> optax.GradientTransformation:
    """torch Adam with ``amsgrad=True`` (``_single_tensor_adam``), without the lr.

    ``m = b1*m + (1-b1)*g``, ``v = b2*v + (1-b2)*g^2``, ``vmax = max(vmax, v)`` on the RAW
    second moment, then ``update = (m / bc1) / (sqrt(vmax)/sqrt(bc2) + eps)`` with
    ``bc_i = 1 - b_i^t``. optax.scale_by_amsgrad takes the max of ``v/bc2`` instead.
    """

    def init_fn(params: optax.Params) -> TorchAmsgradState:
        # One zeros tree per field: sharing one would alias the buffers, and a jitted step
        # that donates its state would then donate the same buffer three times.
        def zeros() -> optax.Params:
            return optax.tree.zeros_like(params)

        return TorchAmsgradState(jnp.zeros([], jnp.int32), zeros(), zeros(), zeros())

    def update_fn(
        updates: optax.Updates, state: TorchAmsgradState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, TorchAmsgradState]:
        del params
        count = optax.safe_increment(state.count)
        m = jax.tree.map(lambda g, m: m + (g - m) * (1.0 - b1), updates, state.exp_avg)
        v = jax.tree.map(lambda g, v: v * b2 + g * g * (1.0 - b2), updates, state.exp_avg_sq)
        vmax = jax.tree.map(jnp.maximum, state.max_exp_avg_sq, v)
        bc1, bc2_sqrt = _torch_bias_corrections(b1, b2, count)

        def direction(m: jax.Array, vmax: jax.Array) -> jax.Array:
            denom = jnp.sqrt(vmax) / bc2_sqrt.astype(m.dtype) + eps
            return (m / bc1.astype(m.dtype)) / denom

        out = jax.tree.map(direction, m, vmax)
        return out, TorchAmsgradState(count, m, v, vmax)

    return optax.GradientTransformation(init_fn, update_fn)


class TorchAdagradState(NamedTuple):
    """State of :func:`_scale_by_torch_adagrad`: torch's ``sum`` of squared gradients."""

    sum: optax.Updates


def _scale_by_torch_adagrad(
    initial_accumulator_value: float, eps: float
) -> optax.GradientTransformation:
    """torch Adagrad without the lr: ``s += g^2``, ``update = g / (sqrt(s) + eps)``.

    optax.scale_by_rss puts eps inside the root (``g * rsqrt(s + eps)``) and starts at 0.1.
    """

    def init_fn(params: optax.Params) -> TorchAdagradState:
        return TorchAdagradState(optax.tree.full_like(params, initial_accumulator_value))

    def update_fn(
        updates: optax.Updates, state: TorchAdagradState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, TorchAdagradState]:
        del params
        s = jax.tree.map(lambda g, s: s + g * g, updates, state.sum)
        out = jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + eps), updates, s)
        return out, TorchAdagradState(s)

    return optax.GradientTransformation(init_fn, update_fn)


# --------------------------------------------------------------------------------------------
# The torch-named builders.
# --------------------------------------------------------------------------------------------


def sgd(
    lr: LearningRate = 1e-3,
    momentum: float = 0,
    dampening: float = 0,
    weight_decay: float = 0,
    nesterov: bool = False,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """``torch.optim.SGD`` (torch 2.x default ``lr=1e-3``).

    Per leaf ``p`` (any shape) with gradient ``g`` (same shape): ``g = -g`` if maximize;
    ``g += weight_decay*p``; with momentum ``buf = g`` on step 1, else
    ``buf = momentum*buf + (1-dampening)*g``; ``g = g + momentum*buf`` if nesterov else
    ``buf``; ``p -= lr*g``.
    """
    _check_lr(lr)
    _check(
        lambda: momentum >= 0.0,
        f"Invalid momentum value: {momentum}; it must be >= 0.",
        momentum=momentum,
    )
    _check(
        lambda: math.isfinite(dampening),
        f"Invalid dampening value: {dampening}; it must be finite.",
        dampening=dampening,
    )
    _check(
        not nesterov or (momentum > 0 and dampening == 0),
        "Nesterov momentum requires a momentum and zero dampening "
        f"(got momentum={momentum}, dampening={dampening}).",
    )
    parts = _maximize(maximize) + _weight_decay(weight_decay)
    if momentum != 0:
        if dampening == 0:  # optax.trace is torch's buffer when there is no dampening
            parts.append(optax.trace(decay=momentum, nesterov=nesterov))
        else:
            parts.append(_torch_momentum(momentum, dampening))
    parts.append(optax.scale_by_learning_rate(lr))
    return mark_layout_free(optax.chain(*parts))


def adam(
    lr: LearningRate = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0,
    amsgrad: bool = False,
    maximize: bool = False,
    decoupled_weight_decay: bool = False,
) -> optax.GradientTransformation:
    """``torch.optim.Adam``: ``weight_decay`` is coupled L2 (``g += wd*p``) unless
    ``decoupled_weight_decay=True`` (then it is :func:`adamw`).

    Per leaf (any shape): ``p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)``, ``bc_i = 1-b_i^t``;
    with amsgrad ``v`` is replaced by the running max of the raw ``v``.
    """
    _check_lr(lr)
    b1, b2 = _check_betas(betas)
    _check(lambda: eps >= 0.0, f"Invalid epsilon value: {eps}; it must be >= 0.", eps=eps)
    scale = _scale_by_torch_amsgrad(b1, b2, eps) if amsgrad else optax.scale_by_adam(b1, b2, eps)
    if decoupled_weight_decay:
        _check(
            lambda: weight_decay >= 0.0,
            f"Invalid weight_decay value: {weight_decay}; it must be >= 0.",
            weight_decay=weight_decay,
        )
        decay = [optax.add_decayed_weights(weight_decay)] if weight_decay != 0 else []
        parts = [*_maximize(maximize), scale, *decay]
    else:
        parts = [*_maximize(maximize), *_weight_decay(weight_decay), scale]
    return mark_layout_free(optax.chain(*parts, optax.scale_by_learning_rate(lr)))


def adamw(
    lr: LearningRate = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """``torch.optim.AdamW`` (default ``weight_decay=1e-2``; optax.adamw defaults to 1e-4).

    Decoupled decay: ``p *= 1 - lr*weight_decay`` before the Adam step of :func:`adam`.
    """
    return adam(lr, betas, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay=True)


def rmsprop(
    lr: LearningRate = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0,
    momentum: float = 0,
    centered: bool = False,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """``torch.optim.RMSprop``.

    Per leaf (any shape): ``v = alpha*v + (1-alpha)*g^2``; ``avg = sqrt(v - gbar^2) + eps`` if
    centered (``gbar = alpha*gbar + (1-alpha)*g``) else ``sqrt(v) + eps``; with momentum
    ``buf = momentum*buf + g/avg``, ``p -= lr*buf``, else ``p -= lr*g/avg``. The momentum
    buffer holds no lr, so it matches torch for any schedule.
    """
    _check_lr(lr)
    _check(lambda: alpha >= 0.0, f"Invalid alpha value: {alpha}; it must be >= 0.", alpha=alpha)
    _check(lambda: eps >= 0.0, f"Invalid epsilon value: {eps}; it must be >= 0.", eps=eps)
    _check(
        lambda: momentum >= 0.0,
        f"Invalid momentum value: {momentum}; it must be >= 0.",
        momentum=momentum,
    )
    scale = (
        optax.scale_by_stddev(decay=alpha, eps=eps, eps_in_sqrt=False)
        if centered
        else optax.scale_by_rms(decay=alpha, eps=eps, eps_in_sqrt=False)
    )
    parts = [*_maximize(maximize), *_weight_decay(weight_decay), scale]
    if momentum > 0:
        parts.append(optax.trace(decay=momentum))
    parts.append(optax.scale_by_learning_rate(lr))
    return mark_layout_free(optax.chain(*parts))


def adagrad(
    lr: LearningRate = 1e-2,
    lr_decay: float = 0,
    weight_decay: float = 0,
    initial_accumulator_value: float = 0,
    eps: float = 1e-10,
    maximize: bool = False,
) -> optax.GradientTransformation:
    """``torch.optim.Adagrad``.

    Per leaf (any shape): ``s += g^2``; ``p -= clr * g/(sqrt(s) + eps)`` with
    ``clr = lr / (1 + (t-1)*lr_decay)`` at step ``t = 1, 2, ...`` (``lr`` may be a schedule).
    """
    _check_lr(lr)
    _check(
        lambda: lr_decay >= 0.0,
        f"Invalid lr_decay value: {lr_decay}; it must be >= 0.",
        lr_decay=lr_decay,
    )
    _check(
        lambda: initial_accumulator_value >= 0.0,
        f"Invalid initial_accumulator_value value: {initial_accumulator_value}; must be >= 0.",
        initial_accumulator_value=initial_accumulator_value,
    )
    _check(lambda: eps >= 0.0, f"Invalid epsilon value: {eps}; it must be >= 0.", eps=eps)
    if lr_decay != 0:
        base = lr

        def lr(count: Any) -> Any:  # count = t - 1
            value = base(count) if callable(base) else base
            return value / (1 + count * lr_decay)

    return mark_layout_free(
        optax.chain(
            *_maximize(maximize),
            *_weight_decay(weight_decay),
            _scale_by_torch_adagrad(initial_accumulator_value, eps),
            optax.scale_by_learning_rate(lr),
        )
    )


# --------------------------------------------------------------------------------------------
# Gradient clipping.
# --------------------------------------------------------------------------------------------


def _leaf_norm(g: jax.Array, norm_type: float) -> jax.Array:
    a = jnp.abs(g)
    if norm_type == math.inf:
        return jnp.max(a, initial=0.0)
    if norm_type == 2.0:
        return jnp.sqrt(jnp.sum(a * a))
    if norm_type == 1.0:
        return jnp.sum(a)
    return jnp.sum(a**norm_type) ** (1.0 / norm_type)


def _total_norm(grads: optax.Updates, norm_type: float) -> jax.Array:
    """torch ``get_total_norm``: the p-norm of the vector of per-leaf p-norms."""
    leaves = jax.tree.leaves(grads)
    if not leaves:
        return jnp.zeros(())
    return _leaf_norm(jnp.stack([_leaf_norm(jnp.asarray(g), norm_type) for g in leaves]), norm_type)


def _nonfinite_error(norm_type: float) -> RuntimeError:
    return RuntimeError(
        f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
        "so it cannot be clipped. To disable this error and scale the gradients by the "
        "non-finite norm anyway, set `error_if_nonfinite=False`"
    )


def _check_finite(total_norm: jax.Array, norm_type: float) -> None:
    if isinstance(total_norm, jax.core.Tracer):
        # Under jit the check runs on the host when the step executes; the error surfaces
        # as a JaxRuntimeError that carries this message.
        def host_check(norm: np.ndarray) -> None:
            if not np.isfinite(norm):
                raise _nonfinite_error(norm_type)

        jax.debug.callback(host_check, total_norm)
    elif not bool(jnp.isfinite(total_norm)):
        raise _nonfinite_error(norm_type)


def _check_norm_args(max_norm: float, norm_type: float) -> float:
    _check(
        lambda: norm_type == math.inf or norm_type > 0,
        f"norm_type={norm_type} is not supported: use a positive p (e.g. 2.0) or float('inf').",
        norm_type=norm_type,
    )
    _check(lambda: max_norm >= 0, f"max_norm={max_norm} must be >= 0.", max_norm=max_norm)
    return float(norm_type)


def clip_grad_norm_(
    grads: optax.Updates,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> tuple[optax.Updates, jax.Array]:
    """``torch.nn.utils.clip_grad_norm_`` as a pure function: returns ``(clipped, total_norm)``.

    ``total_norm`` (shape ``()``) is the ``norm_type``-norm over ALL leaves (as if concatenated);
    every leaf is multiplied by ``min(max_norm / (total_norm + 1e-6), 1)`` in its own dtype.
    """
    norm_type = _check_norm_args(max_norm, norm_type)
    total_norm = _total_norm(grads, norm_type)
    if error_if_nonfinite:
        _check_finite(total_norm, norm_type)
    coef = jnp.minimum(max_norm / (total_norm + 1e-6), 1.0)
    clipped = jax.tree.map(lambda g: g * coef.astype(jnp.result_type(g)), grads)
    return clipped, total_norm


def clip_grad_norm(
    max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False
) -> optax.GradientTransformation:
    """:func:`clip_grad_norm_` as a stateless optax transformation; chain it first.

    As torch's ``clip_grad_norm_`` before ``optimizer.step()``::

        optax.chain(clip_grad_norm(1.0), adam(1e-3))
    """
    norm_type = _check_norm_args(max_norm, norm_type)

    def update_fn(
        updates: optax.Updates, state: optax.EmptyState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, optax.EmptyState]:
        del params
        clipped, _ = clip_grad_norm_(updates, max_norm, norm_type, error_if_nonfinite)
        return clipped, state

    return mark_layout_free(optax.GradientTransformation(optax.init_empty_state, update_fn))
