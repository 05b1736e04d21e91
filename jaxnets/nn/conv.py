"""``torch.nn.Conv1d``/``Conv2d`` as ``nnx.Conv`` layers on channels-last input, with torch's
initialisation, padding and padding modes; ``F.conv1d``/``F.conv2d`` on channels-last input."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from jaxnets import fast
from jaxnets.nn._common import (
    NCHW_HINT,
    Dtype,
    check_floating,
    check_non_negative,
    check_positive,
    ntuple,
)
from jaxnets.nn.linear import torch_uniform_init

__all__ = ["Conv1d", "Conv2d", "ConvImpl", "PaddingMode", "conv1d", "conv2d"]

ConvImpl = Literal["auto", "im2col", "xla"]
PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]

# torch's F.pad mode -> jnp.pad's
_JNP_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}
_LAYOUTS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}
_AXES = {1: "(N, L, C)", 2: "(N, H, W, C)"}


def _same_pads(kernel: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """torch's ``padding='same'``: ``dilation*(kernel-1)`` zeros per axis, the odd one after."""
    totals = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
    return tuple((t // 2, t - t // 2) for t in totals)


def _conv_geometry(
    n: int,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
    in_channels: int,
    out_channels: int | None,
    fn: str,
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], Any]:
    """Checked ``(kernel, stride, dilation, padding)``, torch's rules and messages; padding
    is ``'same'``/``'valid'`` or one ``(before, after)`` pair per spatial axis."""
    kernel = ntuple(kernel_size, n, "kernel_size", fn)
    strides = ntuple(stride, n, "stride", fn)
    dilations = ntuple(dilation, n, "dilation", fn)
    check_positive(kernel, "kernel_size", fn)
    check_positive(strides, "stride", fn)
    check_positive(dilations, "dilation", fn)
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(
                f"{fn}: padding must be an int, a tuple, 'same' or 'valid', got {padding!r}"
            )
        if padding == "same" and strides != (1,) * n:
            raise ValueError(  # torch refuses it too
                f"{fn}: padding='same' is not supported for strided convolutions (as in "
                f"torch); give the padding as an int or a tuple"
            )
        pads: Any = padding
    else:
        amounts = ntuple(padding, n, "padding", fn)
        check_non_negative(amounts, "padding", fn)
        pads = tuple((p, p) for p in amounts)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive int (as in torch), got {groups!r}")
    if in_channels % groups or (out_channels is not None and out_channels % groups):
        out = f" and out_channels={out_channels}" if out_channels is not None else ""
        raise ValueError(
            f"{fn}: groups={groups} must be a positive divisor of in_channels={in_channels}"
            f"{out} (as in torch)"
        )
    return kernel, strides, dilations, pads


def _explicit(pads: Any, kernel: tuple[int, ...], dilation: tuple[int, ...]) -> tuple:
    if pads == "same":
        return _same_pads(kernel, dilation)
    if pads == "valid":
        return ((0, 0),) * len(kernel)
    return pads


def _check_fits(
    spatial: Sequence[int],
    kernel: tuple[int, ...],
    dilation: tuple[int, ...],
    pads: tuple[tuple[int, int], ...],
    shape: tuple[int, ...],
    fn: str,
) -> None:
    """``ValueError`` when the dilated kernel is larger than the padded input (torch: "Kernel
    size can't be greater than actual input size")."""
    for size, k, d, (lo, hi) in zip(spatial, kernel, dilation, pads, strict=True):
        if size + lo + hi < d * (k - 1) + 1:
            raise ValueError(
                f"{fn}: the kernel {kernel} (dilation {dilation}) is larger than the padded "
                f"input {shape}; use a larger input, more padding or a smaller kernel"
            )


class _ConvNd(nnx.Conv):
    """The torch constructor and padding modes over ``nnx.Conv``; subclasses set ``_n``."""

    _n = 2
    _name = "Conv2d"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] | Literal["same", "valid"] = 0,
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        *,
        rngs: nnx.Rngs,
        dtype: Dtype | None = None,
        param_dtype: Dtype | None = None,
        impl: ConvImpl = "auto",
    ) -> None:
        fn, n = self._name, self._n
        if impl not in ("auto", "im2col", "xla"):
            raise ValueError(f"{fn} impl must be 'auto', 'im2col' or 'xla', got {impl!r}")
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{fn}: {name} must be a positive int, got {v!r}")
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(
                f"{fn}: padding_mode must be one of 'zeros', 'reflect', 'replicate', "
                f"'circular' (as in torch), got {padding_mode!r}"
            )
        kernel, strides, dilations, pads = _conv_geometry(
            n, kernel_size, stride, padding, dilation, groups, in_channels, out_channels, fn
        )
        if padding_mode == "zeros":
            # torch's 'same' at stride 1 is XLA's 'SAME' (the odd zero after)
            flax_padding: Any = pads.upper() if isinstance(pads, str) else pads
        else:
            flax_padding = "VALID"  # the mode's padding is applied in __call__
        init = torch_uniform_init(in_channels // groups * math.prod(kernel))
        super().__init__(
            in_channels,
            out_channels,
            kernel_size=kernel,
            strides=strides,
            padding=flax_padding,
            kernel_dilation=dilations,
            feature_group_count=groups,
            use_bias=bias,
            kernel_init=init,
            bias_init=init,
            dtype=dtype,
            param_dtype=jnp.float32 if param_dtype is None else param_dtype,
            conv_general_dilated=fast.conv_general_dilated(impl),
            rngs=rngs,
        )
        self.padding_mode = padding_mode
        # torch's own value, for printing and porting: 'same'/'valid' or one int per axis
        self.torch_padding: str | tuple[int, ...] = (
            pads if isinstance(pads, str) else tuple(lo for lo, _ in pads)
        )
        # the (before, after) amounts per spatial axis, and those the padding mode applies
        self.explicit_padding: tuple[tuple[int, int], ...] = _explicit(pads, kernel, dilations)
        self.mode_padding = None if padding_mode == "zeros" else self.explicit_padding

    def _check_input(self, x: jax.Array) -> None:
        n, fn, c = self._n, self._name, self.in_features
        if x.ndim not in (n + 1, n + 2):
            raise ValueError(
                f"{fn} expects input {_AXES[n]} or unbatched {_AXES[n].replace('N, ', '')} "
                f"(channels last), got shape {tuple(x.shape)}"
            )
        if x.shape[-1] != c:
            hint = f"give it {'NHWC' if n == 2 else 'channels-last'} input with {c} channels"
            if x.shape[-n - 1] == c:
                hint = (
                    NCHW_HINT
                    if n == 2
                    else "it looks like torch's (N, C, L) layout: move the channels last with "
                    "x.swapaxes(-1, -2)"
                )
            raise ValueError(
                f"{fn}: the input {tuple(x.shape)} has {x.shape[-1]} channels (last axis), the "
                f"convolution takes {c}; {hint}"
            )

    def __call__(self, inputs: jax.Array, out_sharding: Any = None) -> jax.Array:
        """Input ``(N, *spatial, in_channels)`` or unbatched ``(*spatial, in_channels)``;
        output ``(N, *spatial', out_channels)`` (unbatched likewise)."""
        x = jnp.asarray(inputs)
        self._check_input(x)
        n = self._n
        spatial = x.shape[-n - 1 : -1]
        kernel, dilation = tuple(self.kernel_size), tuple(self.kernel_dilation)  # type: ignore[arg-type]
        _check_fits(spatial, kernel, dilation, self.explicit_padding, x.shape, self._name)
        if self.mode_padding is not None:
            for size, (lo, hi) in zip(spatial, self.mode_padding, strict=True):
                limit = size if self.padding_mode == "circular" else size - 1
                if self.padding_mode != "replicate" and max(lo, hi) > limit:
                    raise ValueError(
                        f"{self._name}: padding_mode={self.padding_mode!r} pads each side by at "
                        f"most {'the' if self.padding_mode == 'circular' else 'one less than the'}"
                        f" input size (as in torch); the padding {self.torch_padding} does not "
                        f"fit the input {tuple(x.shape)}"
                    )
            widths = [(0, 0)] * (x.ndim - n - 1) + list(self.mode_padding) + [(0, 0)]
            x = jnp.pad(x, widths, mode=_JNP_PAD_MODES[self.padding_mode])
        return super().__call__(x, out_sharding=out_sharding)


class Conv2d(_ConvNd):
    """``torch.nn.Conv2d`` as an ``nnx.Conv`` on NHWC input, with torch's init and padding.

    Same constructor as torch's (``in_channels, out_channels, kernel_size, stride=1,
    padding=0, dilation=1, groups=1, bias=True, padding_mode='zeros'``); an int or a
    one-element tuple stands for both axes, as in torch. Input ``(N, H, W, in_channels)`` or
    unbatched ``(H, W, in_channels)``, output ``(N, H', W', out_channels)`` with
    ``H' = (H + 2*padding - dilation*(kernel-1) - 1) // stride + 1``. The padding is torch's
    explicit zero padding (``nnx.Conv`` defaults to ``'SAME'``), or torch's ``'same'``
    (stride 1 only, as in torch; ``dilation*(kernel-1)`` zeros, the odd one after) or
    ``'valid'``; ``padding_mode`` ``'reflect'``, ``'replicate'`` or ``'circular'`` pads the
    input that way instead of with zeros, as torch's does. ``groups`` splits the channels as
    torch's does (kernel ``[kH, kW, in/groups, out]``, torch's ``[out, in/groups, kH, kW]``
    transposed; both channel counts must divide by it). Values torch refuses (a stride,
    kernel or dilation below 1, negative padding, ``'same'`` with a stride) raise here.

    ``impl`` chooses how the convolution is computed; the parameters (``kernel``
    ``[kH, kW, I, O]``, ``bias``) and the result are the same either way (within rounding):
    ``'xla'`` (``lax.conv_general_dilated``), ``'im2col'``
    (:func:`jaxnets.fast.conv2d_im2col`: shifted slices and one matmul), or ``'auto'`` (the
    default), which lets :mod:`jaxnets.fast` pick the faster form for the backend while it
    is enabled.
    """

    _n = 2
    _name = "Conv2d"


class Conv1d(_ConvNd):
    """``torch.nn.Conv1d`` on channels-last sequences: torch's ``(N, C, L)`` is ``(N, L, C)``
    here (unbatched ``(L, C)``). Torch's constructor, initialisation, padding, padding modes
    and checks, as :class:`Conv2d`; the kernel is ``[k, in/groups, out]`` (torch's
    ``[out, in/groups, k]`` transposed)."""

    _n = 1
    _name = "Conv1d"


def _conv_nd(
    n: int,
    input: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
) -> jax.Array:
    fn = f"conv{n}d"
    x = check_floating(input, fn)
    w = jnp.asarray(weight)
    if w.ndim != n + 2:
        raise ValueError(
            f"{fn}: weight must have {n + 2} dimensions {('(k, ', '(kH, kW, ')[n - 1]}"
            f"in/groups, out) (channels-last kernel), got shape {tuple(w.shape)}"
        )
    if x.ndim not in (n + 1, n + 2):
        raise ValueError(
            f"{fn}: expects input {_AXES[n]} or unbatched (channels last), got shape "
            f"{tuple(x.shape)}"
        )
    dtypes = {x.dtype, w.dtype} | ({jnp.asarray(bias).dtype} if bias is not None else set())
    if len(dtypes) != 1:
        raise ValueError(
            f"{fn}: input, weight and bias must have the same dtype (as in torch), got "
            f"{sorted(str(d) for d in dtypes)}"
        )
    kernel = tuple(int(k) for k in w.shape[:n])
    in_channels = x.shape[-1]
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive int (as in torch), got {groups!r}")
    out_channels = w.shape[-1]
    if out_channels % groups or w.shape[-2] * groups != in_channels:
        raise ValueError(
            f"{fn}: the weight {tuple(w.shape)} with groups={groups} takes "
            f"{w.shape[-2] * groups} input channels and needs out channels divisible by "
            f"groups; the input {tuple(x.shape)} has {in_channels} (last axis)"
        )
    kernel, strides, dilations, pads = _conv_geometry(
        n, kernel, stride, padding, dilation, groups, in_channels, None, fn
    )
    pads = _explicit(pads, kernel, dilations)
    batched = x if x.ndim == n + 2 else x[None]
    _check_fits(batched.shape[1:-1], kernel, dilations, pads, x.shape, fn)
    y = lax.conv_general_dilated(
        batched,
        w,
        strides,
        pads,
        rhs_dilation=dilations,
        dimension_numbers=_LAYOUTS[n],
        feature_group_count=groups,
    )
    if bias is not None:
        y = y + jnp.asarray(bias)
    return y if x.ndim == n + 2 else y[0]


def conv2d(
    input: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> jax.Array:
    """``F.conv2d`` on NHWC input ``(N, H, W, C)`` or unbatched ``(H, W, C)``.

    ``weight`` is the channels-last kernel ``(kH, kW, C/groups, out)``, the layout of
    :class:`Conv2d`'s ``kernel`` (torch's ``(out, C/groups, kH, kW)`` transposed by
    ``(2, 3, 1, 0)``, as :mod:`jaxnets.convert` does); ``bias`` ``(out,)``. Stride, padding
    (ints, tuples, ``'same'``, ``'valid'``), dilation and groups as torch's, with its checks.
    Output ``(N, H', W', out)``.
    """
    return _conv_nd(2, input, weight, bias, stride, padding, dilation, groups)


def conv1d(
    input: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None = None,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | str = 0,
    dilation: int | tuple[int] = 1,
    groups: int = 1,
) -> jax.Array:
    """``F.conv1d`` on channels-last input ``(N, L, C)`` (torch's ``(N, C, L)``) or unbatched
    ``(L, C)``; ``weight`` ``(k, C/groups, out)`` (torch's ``(out, C/groups, k)`` transposed
    by ``(2, 1, 0)``). Output ``(N, L', out)``."""
    return _conv_nd(1, input, weight, bias, stride, padding, dilation, groups)
