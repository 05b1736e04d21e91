"""Pooling with torch's semantics on channels-last input: ``(N, H, W, C)`` or unbatched
``(H, W, C)`` (torch's ``(N, C, H, W)`` / ``(C, H, W)``), as functions and modules.

Every option of torch's: ``kernel_size``/``stride``/``padding``/``dilation`` as ints or
pairs, ``ceil_mode`` with torch's rule (the last window must start inside the input or the
left padding), ``count_include_pad`` and ``divisor_override`` for the average,
``return_indices`` for the maxima (flat ``h * W + w`` indices into each channel's input
plane, as torch's), and the adaptive pools' uneven windows (window ``i`` of ``out`` over a
size ``H`` is ``[floor(i*H/out), ceil((i+1)*H/out))``). Values torch refuses raise a
``ValueError`` here.

How: the common case of a max pool (a window equal to its stride, no padding, no dilation,
windows that tile the input) is a crop, a reshape and a max, which is exact and avoids
``reduce_window`` (slow on XLA:CPU, especially its gradient); other pools use
``lax.reduce_window`` on the input padded to exactly the windows torch takes. Where a window
holds its maximum more than once, the reshape form splits the gradient among the tied
values, ``reduce_window``'s gradient (like torch's) gives it to the first. The indices
(``return_indices=True``) and dilated windows (whose ``reduce_window`` has no gradient in JAX)
come from the windows gathered and an argmax, whose gradient goes to the first maximum too.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

from jaxnets._checks import as_int
from jaxnets.nn._common import check_floating, check_non_negative, check_positive, ntuple

__all__ = [
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "AvgPool2d",
    "MaxPool2d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "avg_pool2d",
    "max_pool2d",
]

_SHAPES = "(N, H, W, C) or unbatched (H, W, C), channels last"


def _batched(x: Any, fn: str) -> tuple[jax.Array, bool]:
    """``x`` as ``(N, H, W, C)`` and whether it was unbatched; torch's input checks (3-D or
    4-D, every axis but the batch non-empty)."""
    x = check_floating(x, fn)
    if x.ndim not in (3, 4) or 0 in x.shape[-3:]:
        raise ValueError(
            f"{fn}: expects a non-empty {_SHAPES} (a batch of 0 is allowed), got shape "
            f"{tuple(x.shape)}"
        )
    return (x, False) if x.ndim == 4 else (x[None], True)


def _out_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """torch's ``pooling_output_shape``: floor or ceil, and in ceil mode the last window must
    start inside the input or the left padding."""
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _geometry(
    kernel_size: Any, stride: Any, padding: Any, dilation: Any, fn: str
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Checked ``(kernel, stride, padding, dilation)`` pairs; ``stride=None`` (or an empty
    tuple, as torch's functional form takes it) is the kernel size."""
    k = ntuple(kernel_size, 2, "kernel_size", fn)
    s = k if stride is None or (hasattr(stride, "__len__") and len(stride) == 0) else None
    s = s or ntuple(stride, 2, "stride", fn)
    p = ntuple(padding, 2, "padding", fn)
    d = ntuple(dilation, 2, "dilation", fn)
    check_positive(k, "kernel_size", fn)
    check_positive(s, "stride", fn)
    check_positive(d, "dilation", fn)
    check_non_negative(p, "padding", fn)
    if any(pi > ki // 2 for pi, ki in zip(p, k, strict=True)):
        raise ValueError(
            f"{fn}: padding {p} must be at most half the kernel size {k} (as torch requires)"
        )
    return k, s, p, d  # type: ignore[return-value]


def _output_shape(
    x: jax.Array,
    k: tuple[int, int],
    s: tuple[int, int],
    p: tuple[int, int],
    d: tuple[int, int],
    ceil_mode: bool,
    fn: str,
) -> tuple[int, int]:
    h, w = x.shape[1:3]
    out = (_out_size(h, k[0], s[0], p[0], d[0], ceil_mode),
           _out_size(w, k[1], s[1], p[1], d[1], ceil_mode))  # fmt: skip
    if min(out) < 1:  # torch: "Output size is too small"
        raise ValueError(
            f"{fn}: the {k[0]}x{k[1]} window (dilation {d}, padding {p}) does not fit the "
            f"input's {h}x{w} spatial size (input {tuple(x.shape)}, channels last); use a "
            f"smaller kernel_size or a larger input"
        )
    return out


def _pad_to_windows(
    x: jax.Array,
    value: Any,
    k: tuple[int, int],
    s: tuple[int, int],
    p: tuple[int, int],
    d: tuple[int, int],
    out: tuple[int, int],
) -> jax.Array:
    """``x`` padded with ``value`` by ``p`` before and cropped or padded after so that the
    ``out`` windows are exactly those a VALID ``reduce_window`` takes."""
    config = [(0, 0, 0)]
    for i in range(2):
        needed = (out[i] - 1) * s[i] + d[i] * (k[i] - 1) + 1
        config.append((p[i], needed - x.shape[1 + i] - p[i], 0))
    config.append((0, 0, 0))
    return lax.pad(x, np.array(value, x.dtype), config)


def _window_indices(
    size: int, out: int, starts: list[int], lengths: list[int], d: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per output position, the input indices of its window taps (``(out, max length)``) and
    which of them are inside the input."""
    taps = max(lengths) if lengths else 1
    idx = np.zeros((out, taps), np.int64)
    valid = np.zeros((out, taps), bool)
    for i, (start, length) in enumerate(zip(starts, lengths, strict=True)):
        pos = start + d * np.arange(length)
        idx[i, :length] = np.clip(pos, 0, size - 1)
        valid[i, :length] = (pos >= 0) & (pos < size)
    return idx, valid


def _gathered_max(
    x: jax.Array, rows: tuple[np.ndarray, np.ndarray], cols: tuple[np.ndarray, np.ndarray]
) -> tuple[jax.Array, jax.Array]:
    """The maximum of each window and its flat ``h * W + w`` index, windows given by their
    row and column taps; the first maximum in row-major window order wins, as in torch, and
    takes the whole gradient."""
    (ri, rv), (ci, cv) = rows, cols
    w = x.shape[2]
    patches = x[:, ri[:, None, :, None], ci[None, :, None, :], :]  # (N, oh, ow, th, tw, C)
    valid = rv[:, None, :, None] & cv[None, :, None, :]  # (oh, ow, th, tw)
    n, oh, ow, th, tw, c = patches.shape
    patches = jnp.where(valid[None, :, :, :, :, None], patches, -jnp.inf)
    patches = patches.reshape(n, oh, ow, th * tw, c)
    arg = jnp.argmax(patches, axis=3, keepdims=True)  # the first maximum of each window
    values = jnp.take_along_axis(patches, arg, axis=3)[:, :, :, 0]
    flat = (ri[:, None, :, None] * w + ci[None, :, None, :]).reshape(1, oh, ow, th * tw, 1)
    flat = jnp.broadcast_to(jnp.asarray(flat), patches.shape)
    return values, jnp.take_along_axis(flat, arg, axis=3)[:, :, :, 0]


def max_pool2d(
    input: jax.Array,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """``F.max_pool2d`` on ``(N, H, W, C)`` or unbatched ``(H, W, C)`` input.

    Output ``(N, H', W', C)`` with ``H' = floor_or_ceil((H + 2p - d*(k-1) - 1) / s) + 1``
    (``stride`` defaults to the kernel size); the padding is ``-inf`` (never the maximum),
    at most half the kernel, as torch requires. ``return_indices=True`` also returns the
    flat index ``h * W + w`` of each maximum in its channel's input plane (torch's indices,
    channels last), for ``max_unpool2d``-style use.
    """
    fn = "max_pool2d"
    x, unbatched = _batched(input, fn)
    k, s, p, d = _geometry(kernel_size, stride, padding, dilation, fn)
    out = _output_shape(x, k, s, p, d, ceil_mode, fn)
    h, w = x.shape[1:3]
    if return_indices or d != (1, 1):
        # the windows gathered and an argmax: the indices, and a gradient for dilated windows
        # (JAX has no VJP of a dilated reduce_window max)
        rows = _window_indices(h, out[0], [i * s[0] - p[0] for i in range(out[0])],
                               [k[0]] * out[0], d[0])  # fmt: skip
        cols = _window_indices(w, out[1], [j * s[1] - p[1] for j in range(out[1])],
                               [k[1]] * out[1], d[1])  # fmt: skip
        y, idx = _gathered_max(x, rows, cols)
        if unbatched:
            y, idx = y[0], idx[0]
        return (y, idx) if return_indices else y
    if k == s and p == (0, 0) and d == (1, 1) and out == (h // k[0], w // k[1]):
        # the windows tile the input (after cropping the rows and columns floor mode drops):
        # crop, reshape and max, exact and fast (no reduce_window)
        n, c = x.shape[0], x.shape[3]
        y = x[:, : out[0] * k[0], : out[1] * k[1], :]
        y = y.reshape(n, out[0], k[0], out[1], k[1], c).max(axis=(2, 4))
    else:
        padded = _pad_to_windows(x, -jnp.inf, k, s, p, d, out)
        y = lax.reduce_window(
            padded,
            np.array(-np.inf, x.dtype),  # a concrete identity: reduce_window_max, with its VJP
            lax.max,
            (1, k[0], k[1], 1),
            (1, s[0], s[1], 1),
            "VALID",
            window_dilation=(1, d[0], d[1], 1),
        )
    return y[0] if unbatched else y


def _avg_divisors(size: int, out: int, k: int, s: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output position along one axis: the window's length clipped to the padded input
    (torch's ``count_include_pad`` divisor) and clipped to the input itself."""
    start = np.arange(out) * s - p
    end = np.minimum(start + k, size + p)
    padded = end - start
    inside = np.minimum(end, size) - np.maximum(start, 0)
    return padded, np.maximum(inside, 0)


def avg_pool2d(
    input: jax.Array,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> jax.Array:
    """``F.avg_pool2d`` on ``(N, H, W, C)`` or unbatched ``(H, W, C)`` input.

    Output size as :func:`max_pool2d` (no dilation). Each window's sum is divided by
    ``divisor_override`` when given (non-zero), else by the window's size counting the zero
    padding (``count_include_pad=True``; a ceil-mode window is clipped to the padded input)
    or counting only the input values inside it, as torch's. A window entirely outside the
    input gives 0.
    """
    fn = "avg_pool2d"
    x, unbatched = _batched(input, fn)
    k, s, p, d = _geometry(kernel_size, stride, padding, 1, fn)
    if divisor_override is not None:
        dv = as_int(divisor_override)
        if dv is None or dv == 0:
            raise ValueError(
                f"{fn}: divisor_override must be a non-zero int or None (as in torch), got "
                f"{divisor_override!r}"
            )
    out = _output_shape(x, k, s, p, d, ceil_mode, fn)
    h, w = x.shape[1:3]
    if k == s and p == (0, 0) and out == (h // k[0], w // k[1]):
        n, c = x.shape[0], x.shape[3]
        sums = x[:, : out[0] * k[0], : out[1] * k[1], :]
        sums = sums.reshape(n, out[0], k[0], out[1], k[1], c).sum(axis=(2, 4))
    else:
        padded = _pad_to_windows(x, 0, k, s, p, d, out)
        sums = lax.reduce_window(
            padded, np.array(0, x.dtype), lax.add, (1, k[0], k[1], 1), (1, s[0], s[1], 1),
            "VALID",
        )  # fmt: skip
    if divisor_override is not None:
        y = sums / jnp.asarray(divisor_override, x.dtype)
    else:
        (ph, ih), (pw, iw) = (
            _avg_divisors(h, out[0], k[0], s[0], p[0]),
            _avg_divisors(w, out[1], k[1], s[1], p[1]),
        )
        div = np.outer(ph, pw) if count_include_pad else np.outer(ih, iw)
        empty = np.outer(ih, iw) == 0  # a window of padding only: torch gives 0
        safe = jnp.asarray(np.where(empty, 1, div), x.dtype)[:, :, None]
        y = jnp.where(jnp.asarray(empty)[:, :, None], 0, sums / safe)
    return y[0] if unbatched else y


def _adaptive_size(output_size: Any, x: jax.Array, fn: str) -> tuple[int, int]:
    """torch's ``output_size``: an int, or a pair whose ``None`` entries keep the input size."""
    if output_size is None:
        sizes: list[Any] = [None, None]
    elif as_int(output_size) is not None:
        sizes = [as_int(output_size)] * 2
    else:
        try:
            sizes = list(output_size)
        except TypeError:
            sizes = []
    if len(sizes) != 2 or any(v is not None and as_int(v) is None for v in sizes):
        raise ValueError(
            f"{fn}: output_size must be an int or a pair of ints or None, got {output_size!r}"
        )
    got = tuple(x.shape[1 + i] if v is None else as_int(v) for i, v in enumerate(sizes))
    if any(v < 0 for v in got):  # type: ignore[operator]
        raise ValueError(
            f"{fn}: the elements of output_size must be non-negative (as in torch), got "
            f"{output_size!r}"
        )
    return got  # type: ignore[return-value]


def _adaptive_windows(size: int, out: int) -> tuple[list[int], list[int]]:
    """torch's adaptive windows: ``start = floor(i*size/out)``, ``end = ceil((i+1)*size/out)``."""
    starts = [(i * size) // out for i in range(out)]
    ends = [-((-(i + 1) * size) // out) for i in range(out)]
    return starts, [e - b for b, e in zip(starts, ends, strict=True)]


def _check_adaptive_input(input: Any, fn: str) -> tuple[jax.Array, bool]:
    x = check_floating(input, fn)
    if x.ndim not in (3, 4) or 0 in x.shape[-3:-1]:
        raise ValueError(
            f"{fn}: expects {_SHAPES} with a non-empty height and width, got shape {tuple(x.shape)}"
        )
    return (x, False) if x.ndim == 4 else (x[None], True)


def adaptive_avg_pool2d(input: jax.Array, output_size: Any) -> jax.Array:
    """``F.adaptive_avg_pool2d`` on ``(N, H, W, C)`` or unbatched ``(H, W, C)`` input:
    ``(N, oh, ow, C)``, each output the mean of torch's window
    ``[floor(i*H/oh), ceil((i+1)*H/oh))`` by ``[floor(j*W/ow), ceil((j+1)*W/ow))`` (windows
    of uneven sizes that may overlap when the sizes do not divide)."""
    fn = "adaptive_avg_pool2d"
    x, unbatched = _check_adaptive_input(input, fn)
    oh, ow = _adaptive_size(output_size, x, fn)
    h, w = x.shape[1:3]
    if (oh, ow) == (1, 1):
        y = x.mean(axis=(1, 2), keepdims=True)
    else:
        # each axis as a matrix of window weights 1/length (the mean over a rectangle is the
        # mean over its rows of the means over its columns)
        mats = []
        for size, out in ((h, oh), (w, ow)):
            starts, lengths = _adaptive_windows(size, out)
            m = np.zeros((out, size))
            for i, (b, n) in enumerate(zip(starts, lengths, strict=True)):
                m[i, b : b + n] = 1.0 / n
            mats.append(jnp.asarray(m, x.dtype))
        y = jnp.einsum("ph,nhwc->npwc", mats[0], x, precision=lax.Precision.HIGHEST)
        y = jnp.einsum("qw,npwc->npqc", mats[1], y, precision=lax.Precision.HIGHEST)
    return y[0] if unbatched else y


def adaptive_max_pool2d(
    input: jax.Array, output_size: Any, return_indices: bool = False
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """``F.adaptive_max_pool2d`` on ``(N, H, W, C)`` or unbatched ``(H, W, C)`` input: the
    maximum over torch's adaptive windows (see :func:`adaptive_avg_pool2d`);
    ``return_indices=True`` also returns the flat ``h * W + w`` index of each maximum, as
    torch's."""
    fn = "adaptive_max_pool2d"
    x, unbatched = _check_adaptive_input(input, fn)
    oh, ow = _adaptive_size(output_size, x, fn)
    h, w = x.shape[1:3]
    rows = _window_indices(h, oh, *_adaptive_windows(h, oh), 1)
    cols = _window_indices(w, ow, *_adaptive_windows(w, ow), 1)
    y, idx = _gathered_max(x, rows, cols)
    if unbatched:
        y, idx = y[0], idx[0]
    return (y, idx) if return_indices else y


# ------------------------------------------------------------------------------ modules


class MaxPool2d(nnx.Module):
    """``torch.nn.MaxPool2d(kernel_size, stride=None, padding=0, dilation=1,
    return_indices=False, ceil_mode=False)``: :func:`max_pool2d` on ``(N, H, W, C)`` or
    ``(H, W, C)``. ``stride`` defaults to the kernel size, as torch's."""

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        _geometry(kernel_size, stride, padding, dilation, "MaxPool2d")
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def __call__(self, input: jax.Array) -> jax.Array | tuple[jax.Array, jax.Array]:
        """The pooled input (and the indices with ``return_indices``)."""
        return max_pool2d(
            input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
            self.return_indices,
        )  # fmt: skip


class AvgPool2d(nnx.Module):
    """``torch.nn.AvgPool2d(kernel_size, stride=None, padding=0, ceil_mode=False,
    count_include_pad=True, divisor_override=None)``: :func:`avg_pool2d` on
    ``(N, H, W, C)`` or ``(H, W, C)``."""

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        _geometry(kernel_size, stride, padding, 1, "AvgPool2d")
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def __call__(self, input: jax.Array) -> jax.Array:
        """The pooled input."""
        return avg_pool2d(
            input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
            self.count_include_pad, self.divisor_override,
        )  # fmt: skip


class AdaptiveAvgPool2d(nnx.Module):
    """``torch.nn.AdaptiveAvgPool2d(output_size)``: :func:`adaptive_avg_pool2d` (an int, or a
    pair with ``None`` for "as the input")."""

    def __init__(self, output_size: int | tuple[int | None, int | None] | None) -> None:
        self.output_size = output_size

    def __call__(self, input: jax.Array) -> jax.Array:
        """``(N, H, W, C) -> (N, oh, ow, C)`` (unbatched likewise)."""
        return adaptive_avg_pool2d(input, self.output_size)


class AdaptiveMaxPool2d(nnx.Module):
    """``torch.nn.AdaptiveMaxPool2d(output_size, return_indices=False)``:
    :func:`adaptive_max_pool2d`."""

    def __init__(
        self,
        output_size: int | tuple[int | None, int | None] | None,
        return_indices: bool = False,
    ) -> None:
        self.output_size = output_size
        self.return_indices = return_indices

    def __call__(self, input: jax.Array) -> jax.Array | tuple[jax.Array, jax.Array]:
        """``(N, H, W, C) -> (N, oh, ow, C)`` (and the indices with ``return_indices``)."""
        return adaptive_max_pool2d(input, self.output_size, self.return_indices)
