"""``torch.nn.BatchNorm1d`` and ``BatchNorm2d`` semantics on channels-last input."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from jaxnets.nn._common import NCHW_HINT, Dtype

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class BatchNorm1d(nnx.BatchNorm):
    """``torch.nn.BatchNorm1d`` semantics on ``(N, C)`` input (features last, as in Flax).

    Differences from a plain ``nnx.BatchNorm`` that this class removes:

    * ``momentum`` is torch's (weight of the NEW batch statistic, default 0.1); Flax's
      momentum is the weight of the OLD running value, so ``nnx.BatchNorm`` gets ``1 - m``.
      ``momentum=None`` is torch's cumulative moving average (``1 / num_batches_tracked``).
    * In training, torch normalises with the biased batch variance but updates the running
      variance with the UNBIASED one (``var * n / (n - 1)``); Flax uses the biased one for
      both. This class updates with the unbiased variance.
    * ``num_batches_tracked`` counts training batches, as torch's buffer does.
    * ``eps`` defaults to 1e-5 (torch) and training on one value per channel is an error,
      as in torch.

    ``model.train()`` / ``model.eval()`` switch between batch and running statistics.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        *,
        rngs: nnx.Rngs,
        dtype: Dtype | None = None,
        param_dtype: Dtype | None = None,
    ) -> None:
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm1d momentum must be in [0, 1] or None, got {momentum}")
        super().__init__(
            num_features,
            momentum=0.0 if momentum is None else 1.0 - momentum,
            epsilon=eps,
            use_bias=affine,
            use_scale=affine,
            dtype=dtype,
            param_dtype=jnp.float32 if param_dtype is None else param_dtype,
            rngs=rngs,
        )
        self.torch_momentum = momentum
        # nnx.BatchNorm keeps running statistics in float32 whatever param_dtype says; torch
        # keeps them in the module's dtype, so a float64 twin needs float64 statistics.
        stat_dtype = jnp.float32 if param_dtype is None else param_dtype
        self.mean = nnx.BatchStat(jnp.zeros((num_features,), stat_dtype))
        self.var = nnx.BatchStat(jnp.ones((num_features,), stat_dtype))
        counter_dtype = jnp.int64 if jax.config.read("jax_enable_x64") else jnp.int32
        self.num_batches_tracked = nnx.BatchStat(jnp.zeros((), counter_dtype))

    _axes: tuple[str, ...] = ("N", "C")  # the input this class takes, channels last

    def _check_input(self, x: jax.Array) -> None:
        c = self.num_features
        if x.ndim != len(self._axes) or x.shape[-1] != c:
            name = f"{type(self).__name__}({c})"
            shape = f"({', '.join(self._axes[:-1])}, {c})"
            hint = ""
            if x.ndim == 4 and x.shape[1] == c and x.shape[-1] != c:
                hint = f"; {NCHW_HINT}"
            elif x.ndim == 4 and len(self._axes) == 2:
                hint = "; for images (N, H, W, C) use jaxnets.nn.BatchNorm2d"
            raise ValueError(f"{name} expects input of shape {shape}, got {tuple(x.shape)}{hint}")

    def __call__(  # type: ignore[override]
        self, x: jax.Array, use_running_average: bool | None = None, *, mask: None = None
    ) -> jax.Array:
        """Normalise ``x`` of shape ``(N, C)`` (``BatchNorm2d``: ``(N, H, W, C)``) per channel;
        in training also update the running statistics."""
        del mask
        self._check_input(x)
        use_running = (
            self.use_running_average if use_running_average is None else use_running_average
        )
        if use_running:
            mean, var = self.mean[...], self.var[...]
        else:
            axes = tuple(range(x.ndim - 1))  # every axis but the channels
            n = math.prod(x.shape[:-1])
            if n < 2:
                raise ValueError(
                    f"{type(self).__name__} in training mode needs more than 1 value per "
                    f"channel, got input of shape {tuple(x.shape)}; use a batch of 2 or more, "
                    f"or call model.eval() to use the running statistics"
                )
            stat_dtype = jnp.promote_types(x.dtype, jnp.float32)
            xs = x.astype(stat_dtype)
            mean = xs.mean(axis=axes)
            var = jnp.square(xs - mean).mean(axis=axes)  # biased: used to normalise, as torch
            count = self.num_batches_tracked[...] + 1
            if self.torch_momentum is None:
                m = 1.0 / count.astype(stat_dtype)
            else:
                m = self.torch_momentum
            unbiased = var * (n / (n - 1))
            self.mean[...] = ((1 - m) * self.mean[...] + m * mean).astype(self.mean.dtype)
            self.var[...] = ((1 - m) * self.var[...] + m * unbiased).astype(self.var.dtype)
            self.num_batches_tracked[...] = count
        y = (x - mean) * jax.lax.rsqrt(var + self.epsilon)
        if self.scale is not None:
            y = y * self.scale[...]
        if self.bias is not None:
            y = y + self.bias[...]
        dtype = self.dtype if self.dtype is not None else jnp.result_type(x.dtype, self.param_dtype)
        return y.astype(dtype)


class BatchNorm2d(BatchNorm1d):
    """``torch.nn.BatchNorm2d`` on NHWC input ``(N, H, W, C)``: :class:`BatchNorm1d`'s torch
    semantics (momentum convention, unbiased running variance over ``N*H*W`` values per
    channel, ``num_batches_tracked``, ``eps``), with statistics over the batch and both
    spatial axes. Same parameters and buffers, so the converter maps torch's
    ``bn.weight``/``bias``/``running_mean``/``running_var``/``num_batches_tracked`` to it as
    to :class:`BatchNorm1d`."""

    _axes = ("N", "H", "W", "C")
