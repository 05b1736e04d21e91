"""``torch.nn.BatchNorm1d``/``BatchNorm2d`` and ``LayerNorm`` semantics on channels-last input,
as modules and as ``F.batch_norm``/``F.layer_norm``."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxnets._checks import as_int
from jaxnets.nn._common import NCHW_HINT, Dtype, check_floating, check_real

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "batch_norm", "layer_norm"]


def _check_eps(eps: float, batch_statistics: bool, fn: str) -> None:
    """torch's rule: ``eps`` must be positive where the batch statistics are used (training,
    or no running statistics), non-negative where the running ones are (``1/sqrt(var+eps)``
    would otherwise be NaN or infinite)."""
    if batch_statistics and not eps > 0:
        raise ValueError(
            f"{fn}: eps must be positive when normalising with the batch statistics (training "
            f"mode, or no running statistics), as torch requires; got {eps}"
        )
    if not eps >= 0:
        raise ValueError(f"{fn}: eps must be non-negative (as in torch), got {eps}")


def _normalise(
    x: jax.Array,
    mean_buf: jax.Array | None,
    var_buf: jax.Array | None,
    weight: jax.Array | None,
    bias: jax.Array | None,
    batch_statistics: bool,
    factor: Any,
    eps: float,
    fn: str,
) -> tuple[jax.Array, jax.Array | None, jax.Array | None]:
    """Batch normalisation over every axis but the last (the channels) of ``x``.

    Returns ``(y, new_mean, new_var)``: the running statistics moved by ``factor`` (torch's
    momentum, the weight of the new batch statistic) toward the batch mean and the UNBIASED
    batch variance, as torch updates them (it normalises with the biased one), or returned
    unchanged in eval mode and for an empty batch."""
    _check_eps(eps, batch_statistics, fn)
    axes = tuple(range(x.ndim - 1))  # every axis but the channels
    n = math.prod(x.shape[:-1])
    new_mean, new_var = mean_buf, var_buf
    stat_dtype = jnp.promote_types(x.dtype, jnp.float32)
    if batch_statistics:
        if n == 1:
            raise ValueError(
                f"{fn} in training mode needs more than 1 value per channel, got input of "
                f"shape {tuple(x.shape)}; use a batch of 2 or more, or call model.eval() to "
                f"use the running statistics"
            )
        if n == 0:  # torch returns the empty output and leaves the statistics alone
            return x, mean_buf, var_buf
        xs = x.astype(stat_dtype)
        mean = xs.mean(axis=axes)
        var = jnp.square(xs - mean).mean(axis=axes)  # biased: used to normalise, as torch
        if mean_buf is not None and var_buf is not None:
            unbiased = var * (n / (n - 1))
            new_mean = ((1 - factor) * mean_buf + factor * mean).astype(mean_buf.dtype)
            new_var = ((1 - factor) * var_buf + factor * unbiased).astype(var_buf.dtype)
    else:
        if mean_buf is None or var_buf is None:
            raise ValueError(
                f"{fn}: normalising with the running statistics needs running_mean and "
                f"running_var; pass them, or training=True for the batch statistics"
            )
        mean, var = mean_buf, var_buf
    y = (x - mean) * jax.lax.rsqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y, new_mean, new_var


def batch_norm(
    input: jax.Array,
    running_mean: jax.Array | None,
    running_var: jax.Array | None,
    weight: jax.Array | None = None,
    bias: jax.Array | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    *,
    return_running_stats: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array | None, jax.Array | None]:
    """``F.batch_norm`` on channels-last input ``(N, C)``, ``(N, L, C)``, ``(N, H, W, C)``...
    (torch's ``(N, C, *)``), statistics per channel (the last axis).

    torch updates ``running_mean``/``running_var`` in place when ``training`` is true; JAX
    arrays cannot change, so pass ``return_running_stats=True`` and use the returned
    ``(output, new_running_mean, new_running_var)`` (torch's update: ``momentum`` weighs the
    batch mean and the unbiased batch variance). Training with running statistics and
    without it is refused rather than silently leaving them as they were; the modules
    :class:`BatchNorm1d`/:class:`BatchNorm2d` keep their statistics themselves.
    ``eps`` must be positive in training and non-negative otherwise, as torch requires.
    """
    x = check_floating(input, "batch_norm")
    if x.ndim < 2:
        raise ValueError(
            f"batch_norm: expects input (N, ..., C) with the channels last, got shape "
            f"{tuple(x.shape)}"
        )
    eps = check_real(eps, "eps", "batch_norm")
    factor = check_real(momentum, "momentum", "batch_norm")
    c = x.shape[-1]
    for name, a in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        if a is not None and tuple(jnp.shape(a)) != (c,):
            raise ValueError(
                f"batch_norm: {name} must have shape ({c},), one value per channel (the last "
                f"axis of the input {tuple(x.shape)}), got {tuple(jnp.shape(a))}"
            )
    if training and running_mean is not None and not return_running_stats:
        raise ValueError(
            "batch_norm: in training mode torch updates running_mean and running_var in "
            "place, which JAX arrays cannot do; pass return_running_stats=True and use the "
            "returned (output, running_mean, running_var), or pass running_mean=None and "
            "running_var=None for the output alone"
        )
    y, mean, var = _normalise(
        x,
        None if running_mean is None else jnp.asarray(running_mean),
        None if running_var is None else jnp.asarray(running_var),
        None if weight is None else jnp.asarray(weight),
        None if bias is None else jnp.asarray(bias),
        training,
        factor,
        eps,
        "batch_norm",
    )
    return (y, mean, var) if return_running_stats else y


class BatchNorm1d(nnx.BatchNorm):
    """``torch.nn.BatchNorm1d`` on ``(N, C)`` input, or on sequences ``(N, L, C)`` (torch's
    ``(N, C, L)``, channels last as in every twin).

    Torch's constructor (``num_features, eps=1e-5, momentum=0.1, affine=True,
    track_running_stats=True, *, bias=True``) and semantics, where a plain ``nnx.BatchNorm``
    differs:

    * ``momentum`` is torch's (weight of the NEW batch statistic, default 0.1); Flax's
      momentum is the weight of the OLD running value. ``momentum=None`` is torch's
      cumulative moving average (``1 / num_batches_tracked``).
    * In training, torch normalises with the biased batch variance but updates the running
      variance with the UNBIASED one (``var * n / (n - 1)``); Flax uses the biased one for
      both. This class updates with the unbiased variance.
    * ``num_batches_tracked`` counts training batches, as torch's buffer does.
    * ``affine=False`` has neither ``scale`` nor ``bias``; ``bias=False`` keeps the scale
      only. ``track_running_stats=False`` keeps no running statistics (nor counter) and
      always normalises with the batch statistics, in eval mode too, as torch's does.
    * ``eps`` defaults to 1e-5 and must be positive when the batch statistics are used
      (non-negative otherwise); training on one value per channel is an error, as in torch.

    ``model.train()`` / ``model.eval()`` switch between batch and running statistics.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        bias: bool = True,
        rngs: nnx.Rngs,
        dtype: Dtype | None = None,
        param_dtype: Dtype | None = None,
    ) -> None:
        fn = type(self).__name__
        if as_int(num_features) is None or num_features < 1:
            raise ValueError(f"{fn}: num_features must be a positive int, got {num_features!r}")
        eps = check_real(eps, "eps", fn)
        if momentum is not None:
            momentum = check_real(momentum, "momentum", fn)
        super().__init__(
            num_features,
            momentum=0.0 if momentum is None else 1.0 - momentum,
            epsilon=eps,
            use_bias=affine and bias,
            use_scale=affine,
            dtype=dtype,
            param_dtype=jnp.float32 if param_dtype is None else param_dtype,
            rngs=rngs,
        )
        self.torch_momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        self.mean: nnx.BatchStat | None
        self.var: nnx.BatchStat | None
        self.num_batches_tracked: nnx.BatchStat | None
        if track_running_stats:
            # nnx.BatchNorm keeps running statistics in float32 whatever param_dtype says;
            # torch keeps them in the module's dtype, so a float64 twin needs float64 ones.
            stat_dtype = jnp.float32 if param_dtype is None else param_dtype
            self.mean = nnx.BatchStat(jnp.zeros((num_features,), stat_dtype))
            self.var = nnx.BatchStat(jnp.ones((num_features,), stat_dtype))
            counter_dtype = jnp.int64 if jax.config.read("jax_enable_x64") else jnp.int32
            self.num_batches_tracked = nnx.BatchStat(jnp.zeros((), counter_dtype))
        else:
            self.mean = nnx.data(None)
            self.var = nnx.data(None)
            self.num_batches_tracked = nnx.data(None)

    # the inputs this class takes, channels last
    _shapes: tuple[tuple[str, ...], ...] = (("N", "C"), ("N", "L", "C"))

    def _check_input(self, x: jax.Array) -> None:
        c = self.num_features
        if any(x.ndim == len(s) for s in self._shapes) and x.shape[-1] == c:
            return
        name = f"{type(self).__name__}({c})"
        shapes = " or ".join(f"({', '.join(s[:-1])}, {c})" for s in self._shapes)
        hint = ""
        if x.ndim >= 3 and x.shape[1] == c and x.shape[-1] != c:
            hint = (
                f"; {NCHW_HINT}"
                if x.ndim == 4
                else "; it looks like torch's (N, C, L) layout: move the channels last with "
                "x.swapaxes(1, 2)"
            )
        elif x.ndim == 4 and len(self._shapes) == 2:
            hint = "; for images (N, H, W, C) use jaxnets.nn.BatchNorm2d"
        raise ValueError(f"{name} expects input of shape {shapes}, got {tuple(x.shape)}{hint}")

    def __call__(  # type: ignore[override]
        self, x: jax.Array, use_running_average: bool | None = None, *, mask: None = None
    ) -> jax.Array:
        """Normalise ``x`` of shape ``(N, C)`` or ``(N, L, C)`` (``BatchNorm2d``:
        ``(N, H, W, C)``) per channel; in training also update the running statistics."""
        del mask
        x = jnp.asarray(x)
        self._check_input(x)
        use_running = (
            self.use_running_average if use_running_average is None else use_running_average
        )
        tracking = self.mean is not None
        batch_statistics = not (use_running and tracking)
        factor: Any = self.torch_momentum
        if batch_statistics and tracking:
            count = self.num_batches_tracked[...] + 1
            if self.torch_momentum is None:
                factor = 1.0 / count.astype(jnp.promote_types(x.dtype, jnp.float32))
        y, mean, var = _normalise(
            x,
            self.mean[...] if tracking else None,
            self.var[...] if tracking else None,
            self.scale[...] if self.scale is not None else None,
            self.bias[...] if self.bias is not None else None,
            batch_statistics,
            factor,
            self.epsilon,
            type(self).__name__,
        )
        if batch_statistics and tracking:
            self.mean[...] = mean
            self.var[...] = var
            self.num_batches_tracked[...] = count
        dtype = self.dtype if self.dtype is not None else jnp.result_type(x.dtype, self.param_dtype)
        return y.astype(dtype)


class BatchNorm2d(BatchNorm1d):
    """``torch.nn.BatchNorm2d`` on NHWC input ``(N, H, W, C)``: :class:`BatchNorm1d`'s torch
    semantics and options (momentum convention and ``momentum=None``, unbiased running
    variance over ``N*H*W`` values per channel, ``num_batches_tracked``, ``eps``, ``affine``,
    ``bias``, ``track_running_stats``), with statistics over the batch and both spatial axes.
    Same parameters and buffers, so the converter maps torch's ``bn.weight``/``bias``/
    ``running_mean``/``running_var``/``num_batches_tracked`` to it as to
    :class:`BatchNorm1d`."""

    _shapes = (("N", "H", "W", "C"),)


def _normalized_shape(normalized_shape: Any, fn: str) -> tuple[int, ...]:
    single = as_int(normalized_shape)
    shape = (single,) if single is not None else None
    if shape is None:
        try:
            shape = tuple(as_int(d) for d in normalized_shape)  # type: ignore[misc]
        except TypeError:
            shape = None
    if not shape or any(d is None or d < 0 for d in shape):
        raise ValueError(
            f"{fn}: normalized_shape must be an int or a non-empty sequence of non-negative "
            f"ints (the trailing axes to normalise), got {normalized_shape!r}"
        )
    return shape  # type: ignore[return-value]


def layer_norm(
    input: jax.Array,
    normalized_shape: int | tuple[int, ...] | list[int],
    weight: jax.Array | None = None,
    bias: jax.Array | None = None,
    eps: float = 1e-5,
) -> jax.Array:
    """``F.layer_norm``: normalise over the trailing ``normalized_shape`` axes of the array as
    given (mean and biased variance), then ``* weight + bias`` (each of that shape). Same
    shape out. torch's default ``eps`` is 1e-5 (Flax's ``nnx.LayerNorm``: 1e-6)."""
    fn = "layer_norm"
    x = check_floating(input, fn)
    shape = _normalized_shape(normalized_shape, fn)
    eps = check_real(eps, "eps", fn)
    k = len(shape)
    if x.ndim < k or tuple(x.shape[x.ndim - k :]) != shape:
        raise ValueError(
            f"{fn}: normalized_shape={list(shape)} expects input of shape (*, "
            f"{', '.join(map(str, shape))}), got {tuple(x.shape)}"
        )
    for name, a in (("weight", weight), ("bias", bias)):
        if a is not None and tuple(jnp.shape(a)) != shape:
            raise ValueError(f"{fn}: {name} must have shape {shape}, got {tuple(jnp.shape(a))}")
    axes = tuple(range(x.ndim - k, x.ndim))
    xs = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    mean = xs.mean(axis=axes, keepdims=True)
    var = jnp.square(xs - mean).mean(axis=axes, keepdims=True)
    y = ((xs - mean) * jax.lax.rsqrt(var + eps)).astype(x.dtype)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


class LayerNorm(nnx.LayerNorm):
    """``torch.nn.LayerNorm(normalized_shape, eps=1e-5, elementwise_affine=True, bias=True)``.

    Normalises over the trailing ``normalized_shape`` axes of the array as given, with
    torch's eps (1e-5; Flax's ``nnx.LayerNorm`` defaults to 1e-6) and the two-pass variance
    (``nnx.LayerNorm``'s default ``E[x^2] - E[x]^2`` loses precision). ``scale`` and ``bias``
    have the shape ``normalized_shape``, initialised to ones and zeros as torch's ``weight``
    and ``bias``; ``elementwise_affine=False`` has neither, ``bias=False`` the scale only.
    """

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...] | list[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        *,
        rngs: nnx.Rngs,
        dtype: Dtype | None = None,
        param_dtype: Dtype | None = None,
    ) -> None:
        shape = _normalized_shape(normalized_shape, "LayerNorm")
        eps = check_real(eps, "eps", "LayerNorm")
        param_dtype = jnp.float32 if param_dtype is None else param_dtype
        super().__init__(
            shape[-1],
            epsilon=eps,
            dtype=dtype,
            param_dtype=param_dtype,
            use_bias=elementwise_affine and bias,
            use_scale=elementwise_affine,
            reduction_axes=tuple(range(-len(shape), 0)),
            feature_axes=tuple(range(-len(shape), 0)),
            use_fast_variance=False,
            rngs=rngs,
        )
        self.normalized_shape = shape
        self.elementwise_affine = elementwise_affine
        if self.scale is not None:
            self.scale = nnx.Param(jnp.ones(shape, param_dtype))
        if self.bias is not None:
            self.bias = nnx.Param(jnp.zeros(shape, param_dtype))

    def __call__(self, x: jax.Array, *, mask: None = None) -> jax.Array:  # type: ignore[override]
        """``layer_norm(x, normalized_shape, weight, bias, eps)``; same shape."""
        del mask
        y = layer_norm(
            x,
            self.normalized_shape,
            None if self.scale is None else self.scale[...],
            None if self.bias is None else self.bias[...],
            self.epsilon,
        )
        dtype = self.dtype if self.dtype is not None else jnp.result_type(y.dtype, self.param_dtype)
        return y.astype(dtype)
