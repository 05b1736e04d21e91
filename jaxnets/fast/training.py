"""The Trainer's automatic choices on XLA:CPU: compiler options, gathering each batch one
step ahead, and the layout ``run_epoch`` carries Linear kernels in.

Each is a speed choice with the same results (bit for bit, or within float32 rounding where
said); the torch semantics live in :mod:`jaxnets.training.trainer` and :mod:`jaxnets.optim`.
"""

from __future__ import annotations

import functools
import os
import weakref
from collections.abc import Mapping
from typing import Any, Literal

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxnets.fast.conv import is_im2col

__all__ = [
    "KernelLayout",
    "check_compiler_options",
    "default_compiler_options",
    "default_epoch_kernel_layout",
    "default_gather_ahead",
    "is_layout_free",
    "linear_kernel_flags",
    "mark_layout_free",
    "state_is_param_copies",
]

KernelLayout = Literal["in_out", "out_in"]
"""How ``run_epoch`` carries ``nnx.Linear`` kernels: ``'in_out'`` as the model holds them
(``(in, out)``), ``'out_in'`` transposed, as torch's ``weight``."""

# The update functions of the transformations this module's builders returned (each builder
# makes a new one), for is_layout_free. Weak: a dropped optimizer leaves the set.
_LAYOUT_FREE_UPDATES: weakref.WeakSet[Any] = weakref.WeakSet()


def mark_layout_free(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """Record that ``tx``'s update does not depend on how a parameter's values are laid out
    (see :func:`is_layout_free`); returns ``tx``."""
    _LAYOUT_FREE_UPDATES.add(tx.update)
    return tx


def is_layout_free(tx: optax.GradientTransformation) -> bool:
    """Whether ``tx`` came from one of :mod:`jaxnets.optim`'s builders (``sgd``, ``adam``,
    ``adamw``, ``rmsprop``, ``adagrad``, ``clip_grad_norm``), whose update
    does not depend on how a parameter's values are laid out: it is elementwise, plus norms
    over all values, and its state holds only copies of the parameters and scalars. So a
    transposed ``(out, in)`` kernel gets the transposed update of its ``(in, out)`` original
    (up to the order of a norm's sum). :class:`jaxnets.Trainer` relies on it to carry
    ``nnx.Linear`` kernels transposed through ``run_epoch``. A transformation built
    elsewhere, or an ``optax.chain`` of these, is not known to be: ``False``."""
    return getattr(tx, "update", None) in _LAYOUT_FREE_UPDATES


# XLA:CPU gives matrix products and reductions to YNNPACK by default. For the im2col
# products of small convolutions ((N*H*W, k*k*C) @ (k*k*C, O) with O = 6 or 16) and for
# reductions over their few channels it is many times slower than XLA's own loops and
# Eigen; for the MLPs turning it off gained nothing. So it is chosen per model, where it
# helped (the measurements: docs/investigation.md). An empty list turns every YNNPACK
# fusion type off.
_YNN_OFF: dict[str, Any] = {"xla_cpu_experimental_ynn_fusion_type": ""}


@functools.cache
def _compiler_options_error(items: tuple[tuple[str, Any], ...]) -> str | None:
    """XLA's message when this jaxlib refuses the options (an unknown option or value: they
    are XLA debug options, which change between versions), or None when it takes them."""
    try:
        jax.jit(lambda x: x + 1, compiler_options=dict(items)).lower(jnp.zeros(2)).compile()
    except Exception as exc:
        return str(exc)
    return None


def check_compiler_options(options: Mapping[str, Any]) -> None:
    """``ValueError`` with XLA's own message when this jaxlib refuses ``options`` (an unknown
    option or value), at construction rather than at the first step."""
    try:
        items = tuple(sorted(options.items()))
        hash(items)
    except TypeError:
        raise ValueError(
            f"compiler_options values must be numbers, strings or booleans (XLA debug "
            f"options), got {dict(options)!r}"
        ) from None
    error = _compiler_options_error(items)
    if error is not None:
        raise ValueError(
            f"XLA refuses compiler_options {dict(items)!r}: {error}. Pass options this jaxlib "
            f"knows (XLA debug options, as jax.jit(..., compiler_options=...) takes them), "
            f"'auto' or None"
        )


def _has_im2col_convs(model: nnx.Module) -> bool:
    """Whether ``model`` has an ``nnx.Conv`` computed by :func:`jaxnets.fast.conv2d_im2col`
    (``Conv2d`` with ``impl='auto'`` or ``'im2col'``)."""
    return any(is_im2col(m) for _, m in nnx.iter_modules(model))


def default_gather_ahead(model: nnx.Module) -> bool:
    """Whether :meth:`Trainer.run_epoch` gathers each step's batch one step ahead by default:
    on the CPU backend, for models with im2col convolutions (see :func:`_has_im2col_convs`).

    XLA:CPU fuses the gather of a batch from the data set into whatever reads the batch
    first. For an im2col convolution that is the loop that builds its patches, which reads
    each input value ``kH*kW`` times, so the gather's index arithmetic ran ``kH*kW`` times
    per value. Gathered one step ahead, the batch reaches the step through the loop's carry,
    a plain array, which made LeNet's scan-fused epoch faster. For a model whose first layer
    is a matrix product (the MLPs) the product cannot fuse the gather, so it is done once
    either way, and carrying the batch only costs a copy. The measurements:
    docs/investigation.md.
    """
    return jax.default_backend() == "cpu" and _has_im2col_convs(model)


def default_compiler_options(model: nnx.Module) -> dict[str, Any] | None:
    """The XLA options :class:`Trainer` compiles ``model``'s functions with by default.

    On the CPU backend, a model with im2col convolutions (:func:`jaxnets.nn.Conv2d`
    with ``impl='auto'`` or ``'im2col'``) gets YNNPACK fusions turned off
    (``xla_cpu_experimental_ynn_fusion_type=""``, see the note above this function's
    source); every other case gets ``None`` (XLA's defaults). Also ``None`` when ``XLA_FLAGS``
    already sets that option (your setting wins) or this jaxlib does not know it.
    """
    if jax.default_backend() != "cpu":
        return None
    if "xla_cpu_experimental_ynn_fusion_type" in os.environ.get("XLA_FLAGS", ""):
        return None
    if not _has_im2col_convs(model) or _compiler_options_error(tuple(_YNN_OFF.items())):
        return None
    return dict(_YNN_OFF)


def linear_kernel_flags(model: nnx.Module, params: nnx.State) -> list[bool]:
    """For each leaf of ``params`` (flattened as :class:`Trainer` flattens it), whether it is
    the kernel of an ``nnx.Linear`` of ``model``."""
    modules = nnx.iter_modules(model)
    kernels = {(*path, "kernel") for path, m in modules if isinstance(m, nnx.Linear)}
    flags = []
    for key_path, _ in jax.tree_util.tree_leaves_with_path(params):
        keys = tuple(getattr(k, "key", getattr(k, "name", k)) for k in key_path)
        flags.append(keys[:-1] in kernels if keys[-1:] == ("value",) else keys in kernels)
    return flags


def state_is_param_copies(optimizer: optax.GradientTransformation, params: list[Any]) -> bool:
    """Whether ``optimizer``'s state for ``params`` holds nothing but copies of the parameters
    (momenta, moments: arrays of each parameter's shape) and scalars (counters): what
    :class:`Trainer` can transpose along with the kernels. Factored moments (Adafactor's row
    and column statistics) are not: their shapes follow the kernel's axes."""
    shapes = jax.eval_shape(optimizer.init, params)
    same_shape: list[bool] = []

    def check(leaf: Any, param: Any) -> Any:
        same_shape.append(getattr(leaf, "shape", None) == param.shape)
        return leaf

    def scalar(leaf: Any) -> Any:
        same_shape.append(getattr(leaf, "shape", ()) == ())
        return leaf

    try:
        optax.tree_utils.tree_map_params(
            optimizer, check, shapes, params, transform_non_params=scalar
        )
    except Exception:  # an init the placeholders cannot go through: not known to be copies
        return False
    return all(same_shape)


# The fewest values a model's largest nnx.Linear kernel has for run_epoch to carry the
# kernels transposed by default: faster from the 784x128 first layers up, slower below
# (see default_epoch_kernel_layout).
_OUT_IN_MIN_KERNEL = 784 * 128


def default_epoch_kernel_layout(
    model: nnx.Module, optimizer: optax.GradientTransformation
) -> KernelLayout:
    """How :meth:`Trainer.run_epoch` carries ``model``'s ``nnx.Linear`` kernels by default:
    ``'out_in'`` (transposed, as torch's ``(out, in)`` weights) on the CPU backend when the
    model's largest kernel has at least 784*128 values and ``optimizer`` is layout-free
    (:func:`is_layout_free`: this library's torch optimizers); ``'in_out'``
    (as the model holds them) otherwise.

    Each step then computes ``x @ W.T`` and ``g.T @ x``, which XLA folds into the products'
    operand order, and the optimizer updates the transposed arrays. On XLA:CPU that made the
    scan-fused step of the MLPs with a 784x128 or larger first layer faster, most of all the
    first layer's forward product right after the optimizer has rewritten its weights;
    LeNet, the small regressors and XOR were not faster, so they keep ``'in_out'``
    (``benchmarks/epoch_layout.py`` measures it; the figures: docs/investigation.md). The
    results equal :meth:`Trainer.step`'s within float32 rounding, not bit for bit (the sums
    may run in another order). Other backends keep ``'in_out'``: nothing was measured
    there.
    """
    if jax.default_backend() != "cpu" or not is_layout_free(optimizer):
        return "in_out"
    sizes = [m.kernel.shape[0] * m.kernel.shape[1] for _, m in nnx.iter_modules(model)
             if isinstance(m, nnx.Linear)]  # fmt: skip
    return "out_in" if max(sizes, default=0) >= _OUT_IN_MIN_KERNEL else "in_out"
