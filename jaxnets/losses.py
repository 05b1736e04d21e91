"""torch.nn.functional losses in JAX: torch names, argument names, defaults and reductions.

Shapes follow torch: the class dimension is 1 for inputs ``(N, C)`` or ``(N, C, d1, ...)``
(and 0 for an unbatched ``(C,)`` input), so a channels-last model output must be moved to
``(N, C, ...)`` first (``jnp.moveaxis(x, -1, 1)``). ``reduction`` is ``'mean'``, ``'sum'`` or
``'none'``. Every function is jit-compatible (no Python branching on array values; argument
and shape checks run at trace time) and differentiable in ``input`` (and in probability or
binary targets).

torch semantics kept here (reference: ``torch/nn/functional.py`` and ATen ``Loss.cpp``,
``LossNLL.cpp``; each is a case in ``parity_tests/test_losses.py``):

* ``cross_entropy``/``nll_loss`` with class-index targets: the ``'mean'`` divides by the SUM OF
  THE WEIGHTS of the non-ignored targets (by their count when ``weight`` is None). When every
  target is ``ignore_index``, ``'mean'`` is ``0/0 = nan`` and ``'sum'`` is 0, as in torch.
  Label smoothing mixes ``(1-eps) * nll + eps/C * sum_c(-w_c log p_c)`` with the smoothing
  term averaged over the same weight sum.
* ``cross_entropy`` with class-probability targets (floating dtype, same shape as the input):
  ``'mean'`` divides by the number of samples ``N*d1*...``, not by weights; label smoothing
  is ``target*(1-eps) + eps/C``; ``ignore_index >= 0`` is an error, as in torch.
* ``optax.l2_loss`` is ``0.5 * (x - t)^2``: half of ``mse_loss``. ``optax``'s
  ``softmax_cross_entropy_with_integer_labels`` has no weights, ignore_index or smoothing and
  puts the classes last.
* ``binary_cross_entropy`` clamps each log at -100 (so ``input`` of exactly 0 or 1 gives a
  finite loss) and its input gradient is torch's ``(x - t) / max(x*(1-x), 1e-12)`` (with a
  float32 1e-12, even in float64), not the derivative of the clamped formula (nan at 0 and 1).
* Shapes: torch broadcasts a mismatched ``target`` in ``mse_loss``/``l1_loss``/
  ``smooth_l1_loss``/``huber_loss`` with only a warning ((N, 1) against (N,) silently becomes
  (N, N)); here it is an error, as torch already makes it for the binary cross entropies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

__all__ = [
    "LOSSES",
    "LossFn",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "get_loss",
    "huber_loss",
    "l1_loss",
    "mse_loss",
    "nll_loss",
    "smooth_l1_loss",
]

_REDUCTIONS = ("mean", "sum", "none")


# --------------------------------------------------------------------------------------------
# Argument checks (static: shapes, dtypes and Python arguments only) and reduction.
# --------------------------------------------------------------------------------------------


def _check_reduction(reduction: str, fn: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"{fn}: reduction={reduction!r} is not valid; use 'mean', 'sum' or 'none' "
            "(torch's deprecated size_average/reduce arguments map to these)."
        )


def _reduce(loss: jax.Array, reduction: str) -> jax.Array:
    if reduction == "mean":
        return jnp.mean(loss)
    if reduction == "sum":
        return jnp.sum(loss)
    return loss


def _reduce_weighted(loss: jax.Array, w: jax.Array, reduction: str) -> jax.Array:
    """torch's weighted NLL reduction: ``'mean'`` is ``sum(loss) / sum(w)`` (0/0 = nan)."""
    if reduction == "mean":
        return jnp.sum(loss) / jnp.sum(w)
    return _reduce(loss, reduction)


def _check_same_shape(input: jax.Array, target: jax.Array, fn: str) -> None:
    if input.shape != target.shape:
        raise ValueError(
            f"{fn}: target shape {target.shape} differs from input shape {input.shape}. "
            "torch would broadcast them (with a warning), which silently computes the wrong "
            "loss; reshape one of them (e.g. target.reshape(input.shape) or "
            "input.squeeze(-1)) so both have the same shape."
        )


def _check_broadcasts(name: str, value: jax.Array, shape: tuple[int, ...], fn: str) -> None:
    try:
        out = np.broadcast_shapes(value.shape, shape)
    except ValueError:
        out = None
    if out != shape:
        raise ValueError(
            f"{fn}: {name} of shape {value.shape} does not broadcast to the input shape "
            f"{shape}; give it a shape that broadcasts (e.g. ({shape[-1]},) for per-class values)."
        )


def _class_dim(input: jax.Array, fn: str) -> int:
    if input.ndim == 0:
        raise ValueError(
            f"{fn}: input must have a class dimension: shape (C,), (N, C) or (N, C, d1, ...); "
            "got a scalar."
        )
    return 0 if input.ndim == 1 else 1


def _is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_class_targets(
    input: jax.Array, target: jax.Array, class_dim: int, ignore_index: int, fn: str
) -> None:
    """Shape and dtype of class-index targets; their range too when the values are concrete."""
    expected = input.shape[:class_dim] + input.shape[class_dim + 1 :]
    if not jnp.issubdtype(target.dtype, jnp.integer):
        raise ValueError(
            f"{fn}: class-index targets must have an integer dtype, got {target.dtype}; "
            "cast them with target.astype(jnp.int32)"
            + (
                " (or pass floating class probabilities of the input's shape to cross_entropy)."
                if fn == "cross_entropy"
                else "."
            )
        )
    if target.shape != expected:
        raise ValueError(
            f"{fn}: class-index targets must have the input's shape without the class "
            f"dimension {class_dim}: expected {expected} for input {input.shape}, got "
            f"{target.shape}. Squeeze a trailing 1 (target[..., 0]); for channels-last logits "
            "move the classes to dim 1 (jnp.moveaxis(input, -1, 1))."
        )
    if _is_concrete(target) and target.size:
        t = np.asarray(target)
        n_classes = input.shape[class_dim]
        bad = t[(t != ignore_index) & ((t < 0) | (t >= n_classes))]
        if bad.size:
            raise ValueError(
                f"{fn}: target {int(bad[0])} is out of bounds for {n_classes} classes "
                f"(and is not ignore_index={ignore_index})."
            )


def _class_weight(
    weight: ArrayLike | None, input: jax.Array, class_dim: int, fn: str
) -> jax.Array | None:
    if weight is None:
        return None
    weight = jnp.asarray(weight, dtype=input.dtype)
    n_classes = input.shape[class_dim]
    if weight.shape != (n_classes,):
        raise ValueError(
            f"{fn}: weight must have shape (C,) = ({n_classes},) with one entry per class, "
            f"got {weight.shape}."
        )
    return weight


def _along_class_dim(weight: jax.Array, ndim: int, class_dim: int) -> jax.Array:
    """Reshape a ``(C,)`` vector to broadcast against an input with classes at ``class_dim``."""
    shape = [1] * ndim
    shape[class_dim] = weight.shape[0]
    return weight.reshape(shape)


# --------------------------------------------------------------------------------------------
# Classification losses.
# --------------------------------------------------------------------------------------------


def _nll_terms(
    input: jax.Array,
    target: jax.Array,
    weight: jax.Array | None,
    ignore_index: int,
    class_dim: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per-sample ``-w[t] * input[t]``, the per-sample weights ``w[t]`` (0 where ignored) and
    the ignore mask; all of the target's shape.

    A target out of ``0..C-1`` (and not ``ignore_index``) gives a nan loss: torch raises, and
    :func:`_check_class_targets` does too when the targets are concrete, but inside ``jit``
    there is no raising. Negative targets are sent out of range first, or the gather would
    read them from the end, as Python indexing does, and the loss would look fine."""
    ignored = target == ignore_index
    n_classes = input.shape[class_dim]
    safe = jnp.where(ignored, 0, jnp.where(target < 0, n_classes, target))
    picked = jnp.take_along_axis(
        input, jnp.expand_dims(safe, class_dim), axis=class_dim, mode="fill", fill_value=jnp.nan
    )
    picked = jnp.squeeze(picked, class_dim)
    w = jnp.ones_like(picked) if weight is None else weight[safe]
    w = jnp.where(ignored, jnp.zeros_like(w), w)
    # A select, not a product with w=0: when every target is ignored the 'mean' is 0/0 = nan,
    # and torch's gradient is still 0 (its backward skips ignored targets); 0 * inf would be nan.
    loss = jnp.where(ignored, jnp.zeros_like(picked), -w * picked)
    return loss, w, ignored


def nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> jax.Array:
    """``F.nll_loss``: negative log-likelihood of log-probabilities.

    input: ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)`` log-probabilities; target: integer class
    indices of shape ``(N,)``, ``(N, d1, ...)`` or ``()``; weight: ``(C,)``. Returns a scalar,
    or the target's shape for ``'none'`` (0 where ignored). ``'mean'`` divides by the sum of
    the weights of the non-ignored targets (nan when all are ignored).
    """
    _check_reduction(reduction, "nll_loss")
    input, target = jnp.asarray(input), jnp.asarray(target)
    class_dim = _class_dim(input, "nll_loss")
    _check_class_targets(input, target, class_dim, ignore_index, "nll_loss")
    weight = _class_weight(weight, input, class_dim, "nll_loss")
    loss, w, _ = _nll_terms(input, target, weight, ignore_index, class_dim)
    return _reduce_weighted(loss, w, reduction)


def cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> jax.Array:
    """``F.cross_entropy``: log-softmax over the class dimension, then NLL.

    input: logits ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``. target: integer class indices
    with the input's shape minus the class dimension, or floating class probabilities of the
    input's shape. weight: ``(C,)``. Returns a scalar, or per-sample losses of shape
    ``(N, d1, ...)`` for ``'none'``. See the module docstring for how ``'mean'`` is weighted.
    """
    fn = "cross_entropy"
    _check_reduction(reduction, fn)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{fn}: label_smoothing={label_smoothing} must be in [0.0, 1.0].")
    input, target = jnp.asarray(input), jnp.asarray(target)
    class_dim = _class_dim(input, fn)
    n_classes = input.shape[class_dim]
    weight = _class_weight(weight, input, class_dim, fn)
    logp = jax.nn.log_softmax(input, axis=class_dim)
    w_b = 1.0 if weight is None else _along_class_dim(weight, input.ndim, class_dim)

    if jnp.issubdtype(target.dtype, jnp.floating):  # class probabilities
        if target.shape != input.shape:
            raise ValueError(
                f"{fn}: floating targets are class probabilities and need the input's shape "
                f"{input.shape}, got {target.shape}. For class indices pass an integer array "
                f"of shape {input.shape[:class_dim] + input.shape[class_dim + 1 :]}."
            )
        if ignore_index >= 0:
            raise ValueError(
                f"{fn}: ignore_index is not supported for floating point (probability) "
                "targets; leave it at -100 or pass integer class indices."
            )
        if label_smoothing > 0:
            target = target * (1 - label_smoothing) + label_smoothing / n_classes
        loss = -jnp.sum(logp * target * w_b, axis=class_dim)
        return _reduce(loss, reduction)

    _check_class_targets(input, target, class_dim, ignore_index, fn)
    nll, w, ignored = _nll_terms(logp, target, weight, ignore_index, class_dim)
    nll_red = _reduce_weighted(nll, w, reduction)
    if label_smoothing == 0:
        return nll_red
    # ATen cross_entropy_loss_label_smoothing: the smoothing term uses the same normalizer.
    smooth = -jnp.sum(logp * w_b, axis=class_dim)
    smooth = jnp.where(ignored, jnp.zeros_like(smooth), smooth)
    smooth_red = _reduce_weighted(smooth, w, reduction)
    return (1 - label_smoothing) * nll_red + smooth_red * (label_smoothing / n_classes)


@jax.custom_vjp
def _bce(x: jax.Array, t: jax.Array) -> jax.Array:
    """Elementwise torch BCE: ``-(t*max(log x, -100) + (1-t)*max(log1p(-x), -100))``."""
    return (t - 1) * jnp.maximum(jnp.log1p(-x), -100.0) - t * jnp.maximum(jnp.log(x), -100.0)


def _bce_fwd(x: jax.Array, t: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    return _bce(x, t), (x, t)


# ATen's EPSILON for the BCE gradient is the float 1e-12 (9.99999996e-13), even for doubles:
# float64 parity at x in {0, 1} sees the difference.
_BCE_GRAD_EPS = float(np.float32(1e-12))


def _bce_bwd(res: tuple[jax.Array, jax.Array], g: jax.Array) -> tuple[jax.Array, jax.Array]:
    # ATen binary_cross_entropy_backward: (x - t) / max((1 - x) * x, EPSILON);
    # binary_cross_entropy_target_backward: -logit(x) = -log(x / (1 - x)).
    x, t = res
    grad_x = g * (x - t) / jnp.maximum((1 - x) * x, _BCE_GRAD_EPS)
    grad_t = -g * jnp.log(x / (1 - x))
    return grad_x, grad_t


_bce.defvjp(_bce_fwd, _bce_bwd)


def binary_cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """``F.binary_cross_entropy`` on probabilities ``input`` in [0, 1].

    input, target: same shape (any); weight broadcasts to it. Each log is clamped at -100 as
    torch does. Returns a scalar, or the input's shape for ``'none'``. Values outside [0, 1]
    raise when the input is concrete (not under jit), as torch does.
    """
    fn = "binary_cross_entropy"
    _check_reduction(reduction, fn)
    input, target = jnp.asarray(input), jnp.asarray(target)
    _check_same_shape(input, target, fn)
    if _is_concrete(input) and input.size:
        x = np.asarray(input)
        if not np.all((x >= 0) & (x <= 1)):
            raise ValueError(
                f"{fn}: all elements of input should be between 0 and 1 (probabilities); "
                "for logits use binary_cross_entropy_with_logits."
            )
    loss = _bce(input, target.astype(input.dtype))
    if weight is not None:
        weight = jnp.asarray(weight, dtype=input.dtype)
        _check_broadcasts("weight", weight, input.shape, fn)
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    reduction: str = "mean",
    pos_weight: ArrayLike | None = None,
) -> jax.Array:
    """``F.binary_cross_entropy_with_logits``: sigmoid + BCE in one stable formula.

    input (logits), target: same shape, e.g. ``(N, C)`` for C independent labels; weight
    broadcasts to it; pos_weight (e.g. ``(C,)``) weighs positive targets:
    ``loss = (1 - t)*x - (1 + (pos_weight - 1)*t) * log_sigmoid(x)``.
    """
    fn = "binary_cross_entropy_with_logits"
    _check_reduction(reduction, fn)
    input, target = jnp.asarray(input), jnp.asarray(target)
    _check_same_shape(input, target, fn)
    target = target.astype(input.dtype)
    log_sig = jax.nn.log_sigmoid(input)
    if pos_weight is not None:
        pos_weight = jnp.asarray(pos_weight, dtype=input.dtype)
        _check_broadcasts("pos_weight", pos_weight, input.shape, fn)
        log_sig = log_sig * ((pos_weight - 1) * target + 1)
    loss = (1 - target) * input - log_sig
    if weight is not None:
        weight = jnp.asarray(weight, dtype=input.dtype)
        _check_broadcasts("weight", weight, input.shape, fn)
        loss = loss * weight
    return _reduce(loss, reduction)


# --------------------------------------------------------------------------------------------
# Regression losses.
# --------------------------------------------------------------------------------------------


def _diff(input: ArrayLike, target: ArrayLike, reduction: str, fn: str) -> jax.Array:
    _check_reduction(reduction, fn)
    input, target = jnp.asarray(input), jnp.asarray(target)
    _check_same_shape(input, target, fn)
    return input - target


def mse_loss(input: ArrayLike, target: ArrayLike, reduction: str = "mean") -> jax.Array:
    """``F.mse_loss``: ``(input - target)^2``; input and target of the same shape.

    Note ``optax.l2_loss`` is half of this (``0.5 * (x - t)^2``).
    """
    d = _diff(input, target, reduction, "mse_loss")
    return _reduce(d * d, reduction)


def l1_loss(input: ArrayLike, target: ArrayLike, reduction: str = "mean") -> jax.Array:
    """``F.l1_loss``: ``|input - target|``; input and target of the same shape."""
    return _reduce(jnp.abs(_diff(input, target, reduction, "l1_loss")), reduction)


def smooth_l1_loss(
    input: ArrayLike, target: ArrayLike, reduction: str = "mean", beta: float = 1.0
) -> jax.Array:
    """``F.smooth_l1_loss``: ``0.5*d^2/beta`` where ``|d| < beta``, else ``|d| - 0.5*beta``.

    input and target of the same shape; ``beta=0`` is exactly :func:`l1_loss`, as in torch.
    """
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta={beta} must be >= 0 (torch rejects it too).")
    z = jnp.abs(_diff(input, target, reduction, "smooth_l1_loss"))
    if beta == 0:  # torch dispatches to l1_loss; 0.5*z*z/0 would poison gradients with nan
        return _reduce(z, reduction)
    return _reduce(jnp.where(z < beta, 0.5 * z * z / beta, z - 0.5 * beta), reduction)


def huber_loss(
    input: ArrayLike, target: ArrayLike, reduction: str = "mean", delta: float = 1.0
) -> jax.Array:
    """``F.huber_loss``: ``0.5*d^2`` where ``|d| < delta``, else ``delta*(|d| - 0.5*delta)``.

    input and target of the same shape; equals ``delta * smooth_l1_loss(beta=delta)``.
    """
    if delta <= 0:
        raise ValueError(f"huber_loss: delta={delta} must be > 0 (torch rejects it too).")
    z = jnp.abs(_diff(input, target, reduction, "huber_loss"))
    return _reduce(jnp.where(z < delta, 0.5 * z * z, delta * (z - 0.5 * delta)), reduction)


# --------------------------------------------------------------------------------------------
# Losses by name: what Trainer, the parity harness and the command accept as ``loss='...'``.
# --------------------------------------------------------------------------------------------

LossFn = Callable[[jax.Array, jax.Array], jax.Array]

#: The losses a model, a Trainer or a comparison can name, each ``(outputs, targets) ->
#: scalar`` with torch's default reduction; ``torchref.parity.TORCH_LOSSES`` holds torch's
#: functions under the same names.
LOSSES: dict[str, LossFn] = {"cross_entropy": cross_entropy, "mse": mse_loss, "l1": l1_loss}


def get_loss(loss: str | LossFn) -> LossFn:
    """A loss function ``(outputs, targets) -> scalar`` from a name of :data:`LOSSES` or a
    callable (returned as it is); ``ValueError`` for an unknown name."""
    if callable(loss):
        return loss
    try:
        return LOSSES[loss]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown loss {loss!r}; use one of {sorted(LOSSES)} or pass a function "
            f"(outputs, targets) -> scalar, e.g. from jaxnets.losses"
        ) from None
