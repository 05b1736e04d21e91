"""Convolutions as matrix products (XLA:CPU): im2col, and a convolution fused with its
max-pooling. Same values as ``lax.conv_general_dilated`` within rounding."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from jaxnets.fast._switch import enabled, register_product
from jaxnets.nn._common import check_conv_channels, check_pool_size, is_nhwc_hwio, pair
from jaxnets.nn.pooling import max_pool2d

__all__ = ["conv2d_im2col", "conv2d_max_pool2d", "conv_general_dilated", "is_im2col"]


def _windows(
    x: jax.Array, kh: int, kw: int, strides: tuple[int, int], ho: int, wo: int
) -> list[list[jax.Array]]:
    """The ``kh x kw`` shifted, strided windows of NHWC ``x``: ``windows[i][j]`` is
    ``x[:, i::sh, j::sw, :]`` cropped to ``(N, ho, wo, C)``, the input each kernel tap
    ``(i, j)`` of a convolution with these strides reads."""
    n, _, _, c = x.shape
    sh, sw = strides
    return [
        [
            lax.slice(x, (0, i, j, 0), (n, i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1, c),
                      (1, sh, sw, 1))
            for j in range(kw)
        ]
        for i in range(kh)
    ]  # fmt: skip


# The windows are joined one kernel row at a time, then the rows: XLA:CPU fuses a
# concatenate of at most 8 operands with the slices that feed it into one loop
# (kMaxConcatenateArguments in its cpu_instruction_fusion.cc), where a 3x3 kernel's 9
# windows in one concatenate were 9 slice kernels and a copy (the gain:
# docs/investigation.md). Same values in the same order, so the output is bit for bit the
# same.


def _taps_major_patches(windows: list[list[jax.Array]]) -> jax.Array:
    """:func:`_windows` stacked on leading axes: ``(kh, kw, N, ho, wo, C)``."""
    return jnp.stack([jnp.stack(row) for row in windows])


def _channels_last_patches(windows: list[list[jax.Array]]) -> jax.Array:
    """:func:`_windows` joined along the channels a row at a time, the rows then stacked on
    a new axis (not one more concatenate, which XLA would merge with the rows' into one
    again): ``(N, ho, wo, kh, kw*C)``, taps in ``(i, j, c)`` order once flattened."""
    return jnp.stack([jnp.concatenate(row, axis=-1) for row in windows], axis=3)


def conv2d_im2col(
    lhs: jax.Array,
    rhs: jax.Array,
    window_strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: Any = None,
    preferred_element_type: Any = None,
    out_sharding: Any = None,
) -> jax.Array:
    """``lax.conv_general_dilated`` for NHWC input and HWIO kernel, as im2col: one matmul.

    ``lhs (N, H, W, C)`` and ``rhs (kH, kW, C, O)`` give ``(N, H', W', O)``. The input is
    zero-padded, the ``kH*kW`` shifted (strided) windows are concatenated along channels into
    ``(N, H', W', kH*kW*C)`` in ``(i, j, c)`` order, which is the row order of
    ``rhs.reshape(kH*kW*C, O)``, and one ``dot_general`` contracts them (with one input
    channel the windows are stacked as ``(kH*kW, N*H'*W')`` rows and the product taken as
    ``W^T @ patches``, a layout XLA:CPU assembles and differentiates faster). Same products and
    sums as the convolution, in a different summation order. Its gradient is slices, pads
    and matmuls, which XLA:CPU runs fast inside ``lax.scan`` too, where the gradient of
    ``lax.conv`` misses XLA's fast path (jax-ml/jax#12868).

    Anything else (dilation, groups, string padding, other layouts, sharding) goes to
    ``lax.conv_general_dilated`` unchanged. Same signature, so it can be passed as
    ``nnx.Conv(conv_general_dilated=...)``.
    """
    nhwc = is_nhwc_hwio(dimension_numbers, lhs, rhs)
    if nhwc:
        check_conv_channels(lhs, rhs, feature_group_count, "Conv2d")
        if isinstance(padding, str) and all(d == 1 for d in (rhs_dilation or (1, 1))):
            # 'SAME'/'VALID' as the explicit pairs XLA would use, for the im2col path
            padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
    plain = (
        nhwc
        and not isinstance(padding, str)
        and all(d == 1 for d in (lhs_dilation or (1, 1)))
        and all(d == 1 for d in (rhs_dilation or (1, 1)))
        and feature_group_count == 1
        and batch_group_count == 1
        and out_sharding is None
    )
    if not plain:
        return lax.conv_general_dilated(
            lhs,
            rhs,
            window_strides,
            padding,
            lhs_dilation=lhs_dilation,
            rhs_dilation=rhs_dilation,
            dimension_numbers=dimension_numbers,
            feature_group_count=feature_group_count,
            batch_group_count=batch_group_count,
            precision=precision,
            preferred_element_type=preferred_element_type,
            out_sharding=out_sharding,
        )
    (pt, pb), (pl, pr) = padding
    if pt or pb or pl or pr:
        lhs = jnp.pad(lhs, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    n, h, w, c = lhs.shape
    kh, kw, _, o = rhs.shape
    sh, sw = window_strides
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    if ho <= 0 or wo <= 0:
        raise ValueError(
            f"Conv2d: the {kh}x{kw} kernel does not fit the padded input of size {h}x{w}; "
            "use a larger input or more padding"
        )
    windows = _windows(lhs, kh, kw, (sh, sw), ho, wo)
    if c == 1:
        # One input channel (LeNet's conv1): the windows stacked on leading axes make
        # patches (kH*kW, N*H'*W') and W^T @ patches gives (O, N*H'*W'), moved to NHWC by a
        # transpose that XLA fuses into the consumer (the activation and pooling). XLA:CPU
        # joins the windows as whole blocks here, where the channels-last patches (a minor
        # axis of kH*kW) are interleaved value by value, and its weight-gradient product on
        # this layout was faster too. With more channels (conv2) the same layout gained
        # nothing (the figures: docs/investigation.md).
        patches = _taps_major_patches(windows)
        out = lax.dot_general(
            rhs.reshape(kh * kw, o),
            patches.reshape(kh * kw, n * ho * wo),
            (((0,), (0,)), ((), ())),
            precision=precision,
            preferred_element_type=preferred_element_type,
        )
        return out.reshape(o, n, ho, wo).transpose(1, 2, 3, 0)
    patches = _channels_last_patches(windows).reshape(n, ho, wo, kh * kw * c)
    return lax.dot_general(
        patches,
        rhs.reshape(kh * kw * c, o),
        (((3,), (0,)), ((), ())),
        precision=precision,
        preferred_element_type=preferred_element_type,
    )


def _conv_auto(lhs: jax.Array, rhs: jax.Array, *args: Any, **kwargs: Any) -> jax.Array:
    """:func:`conv2d_im2col` on CPU while this package is enabled, :func:`_conv_xla`
    otherwise."""
    conv = conv2d_im2col if enabled() and jax.default_backend() == "cpu" else _conv_xla
    return conv(lhs, rhs, *args, **kwargs)


def _conv_xla(lhs: jax.Array, rhs: jax.Array, *args: Any, **kwargs: Any) -> jax.Array:
    """``lax.conv_general_dilated``, after :func:`conv2d_im2col`'s check of the input's
    channels (which names torch's NCHW layout when the input looks like it)."""
    dims = kwargs.get("dimension_numbers", args[4] if len(args) > 4 else None)
    if is_nhwc_hwio(dims, lhs, rhs):
        groups = kwargs.get("feature_group_count", args[5] if len(args) > 5 else 1)
        check_conv_channels(lhs, rhs, groups, "Conv2d")
    return lax.conv_general_dilated(lhs, rhs, *args, **kwargs)


def _explicit_padding(padding: Any) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """``nnx.Conv``'s padding as ``((top, bottom), (left, right))``, or None for the modes
    (``'SAME'``, ``'CIRCULAR'``, ...) the fused path leaves to ``nnx.Conv``."""
    if isinstance(padding, str):
        return ((0, 0), (0, 0)) if padding.upper() == "VALID" else None
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    try:
        pairs = tuple(pair(p) for p in padding)
    except TypeError:
        return None
    if len(pairs) != 2 or any(p is None for p in pairs):
        return None
    return pairs  # type: ignore[return-value]


def _fusable_conv_pool(conv: nnx.Module, x: jax.Array, k: int) -> bool:
    """Whether :func:`conv2d_max_pool2d` can compute ``max_pool2d(conv(x), k)`` as one
    product: a stride-1 2-D ``nnx.Conv`` computed by im2col on NHWC input, with nothing
    (dilation, groups, a mask, another output dtype) that the im2col product does not do."""
    if not isinstance(conv, nnx.Conv) or len(conv.kernel_size) != 2 or x.ndim != 4:
        return False
    if not enabled() or getattr(conv, "mode_padding", None) is not None:
        return False  # (a reflect/replicate/circular padding is applied by the layer's call)
    im2col = conv.conv_general_dilated is conv2d_im2col or (
        conv.conv_general_dilated is _conv_auto and jax.default_backend() == "cpu"
    )
    pad = _explicit_padding(conv.padding)
    if not im2col or pad is None:
        return False
    (pt, pb), (pl, pr) = pad
    kh, kw = conv.kernel_size
    return (
        all(pair(v) == (1, 1) for v in (conv.strides, conv.input_dilation, conv.kernel_dilation))
        and conv.feature_group_count == 1
        and conv.mask is None
        and getattr(conv, "preferred_element_type", None) is None
        and x.shape[-1] == conv.in_features
        and x.shape[1] + pt + pb - kh + 1 >= k
        and x.shape[2] + pl + pr - kw + 1 >= k
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4, 5))
def _pool_windows(x: jax.Array, k: int, wa: int, wb: int, ho: int, wo: int) -> jax.Array:
    """The ``wa x wb`` windows of NHWC ``x`` at stride ``k``: ``(N, ho, wo, wa, wb, C)``.

    Window ``(p, q)`` holds ``x[:, k*p : k*p + wa, k*q : k*q + wb, :]``: the channels-last
    im2col patches of a ``wa x wb`` kernel at stride ``k`` (:func:`_channels_last_patches`).
    It has a gradient of its own: JAX's is a sum of ``wa*wb`` slices padded with ``k - 1`` zeros
    between values, one slow loop in XLA:CPU (``benchmarks/step_profile.py --scan`` shows
    it). This one splits the input's rows and columns by their remainder mod ``k``: each
    remainder class is a sum of ``ceil(wa/k) * ceil(wb/k)`` blocks of the window gradient,
    shifted (padded at the edges only), and the classes are then interleaved, which XLA:CPU
    runs several times faster (docs/investigation.md). The same sums, so the same gradient
    up to the order of the additions.
    """
    n, c = x.shape[0], x.shape[-1]
    windows = _windows(x, wa, wb, (k, k), ho, wo)
    return _channels_last_patches(windows).reshape(n, ho, wo, wa, wb, c)


def _pool_windows_fwd(
    x: jax.Array, k: int, wa: int, wb: int, ho: int, wo: int
) -> tuple[jax.Array, tuple[int, ...]]:
    return _pool_windows(x, k, wa, wb, ho, wo), x.shape


def _pool_windows_bwd(
    k: int, wa: int, wb: int, ho: int, wo: int, shape: tuple[int, ...], g: jax.Array
) -> tuple[jax.Array]:
    n, h, w, c = shape
    a2, b2 = -(-wa // k), -(-wb // k)  # window rows = a2 blocks of k (zeros past wa)
    g = jnp.pad(g, ((0, 0), (0, 0), (0, 0), (0, a2 * k - wa), (0, b2 * k - wb), (0, 0)))
    g = g.reshape(n, ho, wo, a2, k, b2, k, c)
    # Input row k*p' + r gets window row k*s + r of window p = p' - s: block s, shifted by s.
    blocks = [
        jnp.pad(g[:, :, :, s, :, t], ((0, 0), (s, a2 - 1 - s), (t, b2 - 1 - t), *[(0, 0)] * 3))
        for s in range(a2)
        for t in range(b2)
    ]
    dx = functools.reduce(jnp.add, blocks)  # (N, ho + a2 - 1, wo + b2 - 1, k, k, C)
    hh, ww = (ho + a2 - 1) * k, (wo + b2 - 1) * k
    dx = dx.transpose(0, 1, 3, 2, 4, 5).reshape(n, hh, ww, c)[:, :h, :w]
    return (jnp.pad(dx, ((0, 0), (0, h - dx.shape[1]), (0, w - dx.shape[2]), (0, 0))),)


_pool_windows.defvjp(_pool_windows_fwd, _pool_windows_bwd)


@functools.cache
def _pooled_conv_dot(
    nominal: int, computed: int, channels_first: bool, precision: Any
) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The product of :func:`conv2d_max_pool2d`, jitted under a name of its own that
    :func:`register_product` records with ``nominal / computed``: the multiply-adds of the
    plain convolution (all its output positions, each over the kernel's taps) over those of
    this product (the positions the pooling keeps, each over the window's taps, the
    kernel's and the zeros around them). FLOP accounting scales the products it finds under
    this name (and their gradients) by that ratio, so the work counted is the model's,
    whatever the formulation. XLA inlines the call."""

    def product(patches: jax.Array, weights: jax.Array) -> jax.Array:
        if channels_first:  # weights (K, O'), patches (K, M) -> (O', M)
            dims = (((0,), (0,)), ((), ()))
            return lax.dot_general(weights, patches, dims, precision=precision)
        dims = (((1,), (0,)), ((), ()))  # patches (M, K), weights (K, O') -> (M, O')
        return lax.dot_general(patches, weights, dims, precision=precision)

    product.__name__ = f"_pooled_conv_dot_{nominal}_{computed}"
    register_product(product.__name__, kind="scaled", scale=nominal / computed)
    return jax.jit(product)


def conv2d_max_pool2d(conv: nnx.Module, x: jax.Array, kernel_size: int = 2) -> jax.Array:
    """``max_pool2d(conv(x), kernel_size)`` for an ``nnx.Conv`` from :func:`Conv2d`, computed
    as one matrix product whose output holds each pooling window's convolution outputs.

    ``x (N, H, W, C)`` gives ``(N, H' // k, W' // k, O)``, ``H' x W'`` being the
    convolution's output size. Each output is the sum of the same products as in the
    composition, taps in the same order, with products by zero weights in between (which
    change no sum); the gradients are the same sums in another order. Values and gradients
    agree within rounding (the parity suite checks LeNet against torch).

    How: a ``k x k`` pooling window covers ``k x k`` convolution outputs, which together read
    a ``(kH + k - 1) x (kW + k - 1)`` window of the input. Those windows (stride ``k``) are
    the patches, one row per pooled output (only the convolution outputs the floor-mode
    pooling keeps are computed), and the weights are the kernel placed at each of the
    ``k x k`` offsets of the window, zeros elsewhere: ``(window, k*k*O)``. The product gives
    the ``k*k`` convolution outputs of each pooling window side by side, and the pooling is
    an elementwise maximum over ``k*k`` contiguous blocks. For LeNet's conv1 (3x3, pooled
    2x2) that is 16 taps instead of 9, but patches of a quarter as many positions (a 16-row
    matrix instead of a 9-row one four times as long), no reshuffling of the output for the
    pooling and a gradient that is an elementwise select, no scatter. With the patches' own
    gradient (``_pool_windows``) XLA:CPU runs LeNet's training step markedly faster
    (``benchmarks/conv_pool.py`` measures both forms; the figures: docs/investigation.md).
    The bias is added after the maximum (the same value: adding a constant does not change
    which element is largest, and rounding is monotone).

    Gradients: where a window holds its maximum more than once, JAX splits the gradient
    among the tied values (as :func:`max_pool2d`). Since ``relu`` and ``max`` commute,
    ``relu(conv2d_max_pool2d(conv, x))`` is ``max_pool2d(relu(conv(x)))``.

    Falls back to ``max_pool2d(conv(x), kernel_size)`` where the fused form does not apply:
    a convolution that is not im2col (``impl='xla'``, or ``'auto'`` off the CPU), a stride,
    dilation, groups, a mask, string padding other than ``'VALID'``, a ``padding_mode``
    other than zeros, input that is not
    4-D NHWC, or inside :func:`jaxnets.fast.disabled` (as ``torchref.explain`` and
    :mod:`jaxnets.debug.intercept` use it, to see the convolution's own output).
    """
    k = kernel_size
    check_pool_size(k, "conv2d_max_pool2d")
    if not _fusable_conv_pool(conv, x, k):
        return max_pool2d(conv(x), k)
    kernel = conv.kernel[...]
    bias = conv.bias[...] if conv.bias is not None else None
    dtype = conv.dtype or jnp.result_type(x, kernel, *(() if bias is None else (bias,)))
    x, kernel = x.astype(dtype), kernel.astype(dtype)
    (pt, pb), (pl, pr) = _explicit_padding(conv.padding)  # type: ignore[misc]
    if pt or pb or pl or pr:
        x = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    n, h, w, c = x.shape
    kh, kw, _, o = kernel.shape
    hf, wf = h - kh + 1, w - kw + 1  # the convolution's output size
    ho, wo = hf // k, wf // k
    wa, wb = kh + k - 1, kw + k - 1  # the input window under one pooling window
    m = n * ho * wo
    # The kernel at each offset (di, dj) of the pooling window: (wa, wb, C, k*k, O).
    weights = jnp.stack(
        [
            jnp.pad(kernel, ((di, k - 1 - di), (dj, k - 1 - dj), (0, 0), (0, 0)))
            for di in range(k)
            for dj in range(k)
        ],
        axis=3,
    ).reshape(wa * wb * c, k * k * o)
    product = _pooled_conv_dot(
        n * hf * wf * kh * kw * c * o, m * wa * wb * c * k * k * o, c == 1, conv.precision
    )

    if c == 1:
        # One input channel, as in conv2d_im2col: taps as rows, (wa*wb, M), and the product
        # (k*k*O, M), whose k*k blocks of O rows are the offsets; the result is moved to NHWC
        # by a transpose that XLA fuses into the consumer.
        patches = _taps_major_patches(_windows(x, wa, wb, (k, k), ho, wo))
        z = product(patches.reshape(wa * wb, m), weights).reshape(k * k, o, m)
        y = z.max(axis=0)
        if bias is not None:
            y = y + bias.astype(dtype)[:, None]
        return y.reshape(o, n, ho, wo).transpose(1, 2, 3, 0)
    patches = _pool_windows(x, k, wa, wb, ho, wo).reshape(m, wa * wb * c)  # (a, b, c) order
    y = product(patches, weights).reshape(m, k * k, o).max(axis=1)
    if bias is not None:
        y = y + bias.astype(dtype)
    return y.reshape(n, ho, wo, o)


def conv_general_dilated(impl: Literal["auto", "im2col", "xla"]) -> Callable[..., jax.Array]:
    """The ``conv_general_dilated`` an ``nnx.Conv`` built by :func:`jaxnets.nn.Conv2d`
    computes with: ``'xla'`` is ``lax.conv_general_dilated`` (after a check of the input's
    channels), ``'im2col'`` :func:`conv2d_im2col`, ``'auto'`` im2col on the CPU while this
    package is enabled and ``lax.conv_general_dilated`` otherwise."""
    return {"auto": _conv_auto, "im2col": conv2d_im2col, "xla": _conv_xla}[impl]


def is_im2col(conv: nnx.Module) -> bool:
    """Whether ``conv`` is an ``nnx.Conv`` whose convolution may run as im2col here (built
    with ``impl='im2col'``, or ``'auto'`` on the CPU)."""
    return isinstance(conv, nnx.Conv) and (
        conv.conv_general_dilated is conv2d_im2col
        or (conv.conv_general_dilated is _conv_auto and jax.default_backend() == "cpu")
    )
