"""Pooling with ``torch.nn.functional``'s semantics, on NHWC input."""

from __future__ import annotations

import jax

from jaxnets.nn._common import check_pool_size

__all__ = ["max_pool2d"]


def max_pool2d(x: jax.Array, kernel_size: int = 2) -> jax.Array:
    """``F.max_pool2d(x, kernel_size)`` on NHWC input: stride = kernel, no padding, floor mode.

    ``(N, H, W, C) -> (N, H // k, W // k, C)``. Written as crop, reshape and max, which is
    exact and avoids ``reduce_window`` (slow on XLA:CPU, especially its gradient).

    The gradient differs from torch's where a window holds its maximum more than once: JAX
    splits the window's gradient equally among the tied values, torch gives it all to the
    first. After a ReLU, ties at zero get a gradient the ReLU zeroes either way. Positive
    ties come from uniform regions (a flat background, MNIST's padded border), where the
    tied convolution outputs read identical input patches: the parameters' gradients are the
    same either way, only the gradient with respect to the input differs.
    """
    k = kernel_size
    check_pool_size(k, "max_pool2d")
    if x.ndim != 4:
        raise ValueError(f"max_pool2d: expects NHWC input (N, H, W, C), got shape {x.shape}")
    n, h, w, c = x.shape
    ho, wo = h // k, w // k
    if ho == 0 or wo == 0:  # torch: "Output size is too small"
        raise ValueError(
            f"max_pool2d: the {k}x{k} window does not fit the input's {h}x{w} spatial size "
            f"(input {x.shape}, NHWC); use a smaller kernel_size or a larger input"
        )
    x = x[:, : ho * k, : wo * k, :]
    return x.reshape(n, ho, k, wo, k, c).max(axis=(2, 4))
