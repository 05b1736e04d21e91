"""What the twins share: config validation, input checks with errors that say the fix, and
small registry helpers. Private to :mod:`jaxnets.models`.

Config validation (errors that say the fix).

Every config dataclass calls :func:`validate_config` from ``__post_init__``; it checks each field
by its annotation and normalises the value in place (the dataclasses are frozen):

* ``int``: a positive integer. Python and numpy integers are accepted (``operator.index``) and
  stored as ``int``; ``bool``, floats and strings are refused.
* ``tuple[int, ...]``: a sequence (list, tuple, 1-D numpy array) of positive integers, stored
  as a tuple of ``int``; ``()`` is allowed.
* ``str`` with ``metadata={"choices": (...)}``: one of the choices.

Wrong types raise ``TypeError``, values of the right type out of range ``ValueError``; both name
the config class, the field, the value given and what is accepted (the example is the field's
default). :meth:`jaxnets.registry.ModelSpec.make_config` adds the registry name of the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnets._checks import as_int
from jaxnets.nn._common import NCHW_HINT


def _example(f: dataclasses.Field, fallback: Any) -> Any:
    """The field's default as the example of an accepted value (``fallback`` when it has none)."""
    return f.default if f.default not in (dataclasses.MISSING, ()) else fallback


def _got(value: Any) -> str:
    return f"got {value!r} of type {type(value).__name__}"


def validate_config(config: Any) -> None:
    """Check (and normalise) every field of a frozen config dataclass; see the module docstring.

    Raises ``TypeError`` for a value of the wrong type, ``ValueError`` for one out of range,
    and ``TypeError`` for a field whose annotation this validator does not know (a new config
    field must be given a check here).
    """
    cls = type(config).__name__
    for f in dataclasses.fields(config):
        where = f"{cls}.{f.name}"
        value = getattr(config, f.name)
        if f.type in ("int", int):
            accepted = f"{where} must be a positive integer such as {_example(f, 64)!r}"
            n = as_int(value)
            if n is None:
                raise TypeError(f"{accepted}, {_got(value)}")
            if n < 1:
                raise ValueError(f"{accepted}, got {value!r}")
            object.__setattr__(config, f.name, n)
        elif f.type in ("tuple[int, ...]", tuple[int, ...]):
            accepted = (
                f"{where} must be a positive-integer sequence such as {_example(f, (64, 32))!r} "
                f"(one entry per layer; () for none)"
            )
            is_sequence = isinstance(value, Sequence) and not isinstance(value, str | bytes)
            if not (is_sequence or (isinstance(value, np.ndarray) and value.ndim == 1)):
                raise TypeError(f"{accepted}, {_got(value)}")
            sizes = [as_int(v) for v in value]
            for i, (v, n) in enumerate(zip(value, sizes, strict=True)):
                if n is None:
                    raise TypeError(
                        f"{accepted}, got {value!r}: entry {i} is {v!r} of type {type(v).__name__}"
                    )
                if n < 1:
                    raise ValueError(f"{accepted}, got {value!r}: entry {i} is {v!r}")
            object.__setattr__(config, f.name, tuple(sizes))
        elif f.type in ("str", str) and "choices" in f.metadata:
            choices = sorted(f.metadata["choices"])
            if not isinstance(value, str):
                raise TypeError(f"{where} must be one of {choices} (a string), {_got(value)}")
            if value not in choices:
                raise ValueError(f"{where} must be one of {choices}, got {value!r}")
        else:
            raise TypeError(
                f"{where}: validate_config has no check for a field annotated {f.type!r}; "
                f"add one in jaxnets/models/_config.py"
            )


@dataclasses.dataclass(frozen=True)
class FixedConfig:
    """Models whose tutorial fixes every size take no config arguments."""


def check_float_input(x: jax.Array, model: str) -> None:
    """Refuse input that is not an array (torch wants a Tensor too) and integer/bool input
    (torch refuses it; jnp would silently promote it)."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(
            f"{model} expects an array, got {type(x).__name__}; convert it first with "
            f"jnp.asarray(x, dtype=jnp.float32)"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"{model} expects floating-point input, got dtype {x.dtype}; convert it first: "
            f"raw MNIST pixels with jaxnets.data.normalize_mnist(images), other data with "
            f"x.astype(jnp.float32)"
        )


def check_features(x: jax.Array, in_features: int, model: str) -> None:
    """Refuse input whose last dimension is not ``in_features``.

    Leading dimensions are free, as with torch's ``nn.Linear`` (``(*, in_features)``): the
    plain-Linear twins map ``(..., in_features) -> (..., out)`` exactly as torch does, and the
    message says so. Models that need exactly ``(N, in_features)`` check that themselves.
    """
    check_float_input(x, model)
    if x.ndim < 1 or x.shape[-1] != in_features:
        raise ValueError(
            f"{model} expects input of shape (N, {in_features}), got {tuple(x.shape)}: the "
            f"last dimension must be {in_features} (leading dimensions are free, (..., "
            f"{in_features}), as with torch's nn.Linear); flatten images first, e.g. "
            f"x.reshape(len(x), -1)"
        )


def check_nhwc(x: jax.Array, hw: tuple[int, int], channels: int, model: str) -> None:
    check_float_input(x, model)
    expected = (hw[0], hw[1], channels)
    if x.ndim == 4 and tuple(x.shape[1:]) == expected:
        return
    hint = ""
    if x.ndim == 4 and tuple(x.shape[1:]) == (channels, hw[0], hw[1]):
        hint = f"; Flax twins take NHWC, and {NCHW_HINT}"
    raise ValueError(
        f"{model} expects NHWC input of shape (N, {hw[0]}, {hw[1]}, {channels}), "
        f"got {tuple(x.shape)}{hint}"
    )


def check_batch_of_features(x: jax.Array, in_features: int, model: str) -> None:
    """Refuse anything but 2-D ``(N, in_features)`` input to ``batchnorm_mlp``.

    Unlike ``nn.Linear``, torch's ``BatchNorm1d`` reads a 3-D input as ``(N, C, L)``, channels
    at dim 1: an ``(N, L, in_features)`` batch either fails in torch or, when ``L`` equals the
    hidden width, is normalised over other axes than the twin's. Refusing it here keeps the
    twin from ever computing something torch does not.
    """
    check_float_input(x, model)
    if x.ndim != 2 or x.shape[-1] != in_features:
        raise ValueError(
            f"{model} (batchnorm_mlp) expects input of shape (N, {in_features}), exactly 2-D, "
            f"got {tuple(x.shape)}; reshape it to (N, {in_features}): x.reshape(len(x), -1) "
            f"flattens a batch of images, x.reshape(-1, {in_features}) makes every row of "
            f"{in_features} values one example. Leading dimensions are not free here as they "
            f"are for nn.Linear: torch's BatchNorm1d reads 3-D input as (N, C, L), channels "
            f"at dim 1"
        )


def constant(value: Any) -> Callable[[Any], Any]:
    """A registry size function that ignores the config: ``constant((784,))``."""
    return lambda _config: value
