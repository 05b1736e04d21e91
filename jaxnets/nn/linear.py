"""``torch.nn.Linear`` as an ``nnx.Linear`` with torch's init; ``Identity``; ``F.linear``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import nnx

from jaxnets import fast
from jaxnets.nn._common import Dtype, check_floating

__all__ = ["Identity", "Linear", "LinearImpl", "linear", "torch_uniform_init"]


def torch_uniform_init(fan_in: int) -> Callable[..., jax.Array]:
    """Initializer drawing ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, torch's Linear/Conv default.

    torch initialises weights with ``kaiming_uniform_(a=sqrt(5))``: gain ``sqrt(2/(1+a^2))``
    times ``sqrt(3/fan_in)`` equals ``1/sqrt(fan_in)``; biases use the same bound
    (``torch/nn/modules/linear.py``, ``reset_parameters``).
    """
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Dtype = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)

    return init


LinearImpl = Literal["auto", "dot", "elementwise"]


def Linear(  # noqa: N802 - mirrors torch.nn.Linear
    in_features: int,
    out_features: int,
    bias: bool = True,
    *,
    rngs: nnx.Rngs,
    dtype: Dtype | None = None,
    param_dtype: Dtype | None = None,
    impl: LinearImpl = "auto",
) -> nnx.Linear:
    """``torch.nn.Linear(in_features, out_features)`` as an ``nnx.Linear`` with torch's init.

    Input ``(..., in_features)``, output ``(..., out_features)``. The kernel is stored
    ``[in, out]`` (torch's weight is ``[out, in]``; :mod:`jaxnets.convert` transposes).

    ``impl`` chooses how the product is computed; the parameters and the result are the
    same either way (within rounding): ``'dot'`` (``lax.dot_general``), ``'elementwise'``
    (:func:`jaxnets.fast.dot_elementwise`), or ``'auto'`` (the default), which lets
    :mod:`jaxnets.fast` pick the faster form for the backend while it is enabled.
    """
    if impl not in ("auto", "dot", "elementwise"):
        raise ValueError(f"Linear impl must be 'auto', 'dot' or 'elementwise', got {impl!r}")
    init = torch_uniform_init(in_features)
    param_dtype = jnp.float32 if param_dtype is None else param_dtype
    return nnx.Linear(
        in_features,
        out_features,
        use_bias=bias,
        kernel_init=init,
        bias_init=init,
        dtype=dtype,
        param_dtype=param_dtype,
        dot_general=fast.linear_dot_general(impl),
        rngs=rngs,
    )


def linear(
    input: jax.Array,
    weight: jax.Array,
    bias: jax.Array | None = None,
) -> jax.Array:
    """``F.linear(input, weight, bias)``: ``input @ weight.T + bias``, with torch's weight
    layout ``(out_features, in_features)`` (a :func:`Linear` stores its ``kernel``
    transposed, ``(in, out)``: pass ``layer.kernel[...].T``).

    ``input (..., in)`` gives ``(..., out)``; a 1-D weight ``(in,)`` gives ``(...)``. The
    three arrays must share one floating dtype, as in torch.
    """
    x = check_floating(input, "linear")
    w = jnp.asarray(weight)
    if w.ndim not in (1, 2) or x.ndim == 0 or x.shape[-1] != w.shape[-1]:
        raise ValueError(
            f"linear: input {tuple(x.shape)} and weight {tuple(w.shape)} do not fit: the weight "
            f"is (out_features, in_features) in torch's layout and the input's last axis "
            f"has in_features"
        )
    dtypes = {x.dtype, w.dtype} | ({jnp.asarray(bias).dtype} if bias is not None else set())
    if len(dtypes) != 1:
        raise ValueError(
            f"linear: input, weight and bias must have the same dtype (as in torch), got "
            f"{sorted(str(d) for d in dtypes)}; cast them to one"
        )
    y = x @ w.T if w.ndim == 2 else x @ w
    if bias is not None:
        y = y + jnp.asarray(bias)
    return y


class Identity(nnx.Module):
    """``torch.nn.Identity``: returns its input; the constructor takes and ignores any
    arguments, as torch's does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        del args, kwargs

    def __call__(self, input: Any) -> Any:
        """The input, unchanged."""
        return input
