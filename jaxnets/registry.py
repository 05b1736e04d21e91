"""One registry of named models (the Flax side of the matched pairs).

Each model registers, under one name, its Flax factory, the config dataclass whose fields are
the tutorial's own constructor arguments (the torch side builds from the same dataclass), the
tutorial it comes from, its input layout and its default loss. ``torchref`` registers the
torch factory under the same name, and a test asserts that both sides list the same names.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = [
    "ModelSpec",
    "UnknownModelError",
    "create_model",
    "get_model_spec",
    "list_models",
    "match_models",
    "register_model",
]

Loss = Literal["cross_entropy", "mse"]


class UnknownModelError(KeyError):
    """Raised for a model name that is not registered; the message lists the known names."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0])


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one model.

    Attributes:
      name: registry name, shared with ``torchref``.
      factory: the Flax NNX class; called with the config's fields as keyword arguments
        and ``rngs``, ``dtype``, ``param_dtype``.
      config_cls: frozen dataclass of the tutorial's constructor arguments with defaults.
      tutorial: which tutorial in ``shared/seeds`` documents it (``'000'`` to ``'004'``).
      description: one line for listings.
      input_shape: per-example input shape IN TORCH LAYOUT, from a config.
      layout: ``'features'`` (``(N, F)`` on both sides) or ``'image'`` (torch NCHW, Flax NHWC).
      loss: default loss, ``'cross_entropy'`` (integer class targets) or ``'mse'``.
      output_size: number of outputs per example, from a config.
    """

    name: str
    factory: Callable[..., nnx.Module]
    config_cls: type
    tutorial: str
    description: str
    input_shape: Callable[[Any], tuple[int, ...]]
    output_size: Callable[[Any], int]
    layout: Literal["features", "image"] = "features"
    loss: Loss = "cross_entropy"

    def make_config(self, **config: Any) -> Any:
        """Build the config dataclass from keyword arguments, rejecting unknown names.

        The dataclass validates its own fields (``jaxnets.models._common.validate_config``);
        its ``TypeError``/``ValueError`` is re-raised with this model's registry name first.
        """
        fields = [f.name for f in dataclasses.fields(self.config_cls)]
        unknown = sorted(set(config) - set(fields))
        if unknown:
            accepted = ", ".join(fields) if fields else "none (this model has fixed sizes)"
            raise TypeError(
                f"model {self.name!r} got unknown config argument(s) {unknown}; "
                f"it accepts: {accepted}"
            )
        try:
            return self.config_cls(**config)
        except (TypeError, ValueError) as err:  # the config's own check: add the model's name
            kind = TypeError if isinstance(err, TypeError) else ValueError
            raise kind(f"model {self.name!r}: {err}") from None

    def torch_input_shape(self, batch_size: int, **config: Any) -> tuple[int, ...]:
        """Input shape for torch: ``(N, F)`` or ``(N, C, H, W)``."""
        return (batch_size, *self.input_shape(self.make_config(**config)))

    def flax_input_shape(self, batch_size: int, **config: Any) -> tuple[int, ...]:
        """Input shape for the Flax twin: ``(N, F)`` or ``(N, H, W, C)``."""
        shape = self.torch_input_shape(batch_size, **config)
        if self.layout == "image":
            n, c, h, w = shape
            return (n, h, w, c)
        return shape

    def to_flax_layout(self, x: np.ndarray) -> np.ndarray:
        """Convert a torch-layout input batch to the twin's layout (NCHW -> NHWC for images)."""
        return np.transpose(x, (0, 2, 3, 1)) if self.layout == "image" else x

    def example_batch(
        self,
        batch_size: int,
        rng: np.random.Generator,
        dtype: Any = np.float32,
        **config: Any,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Random ``(inputs, targets)`` in TORCH layout, as numpy.

        Inputs are standard normal of :meth:`torch_input_shape`; targets are integer class
        indices ``(N,)`` for ``cross_entropy`` and standard normal ``(N, outputs)`` for
        ``mse``. Feed the same arrays to both sides (``to_flax_layout`` for the twin).
        """
        cfg = self.make_config(**config)
        x = rng.standard_normal(self.torch_input_shape(batch_size, **config)).astype(dtype)
        out = self.output_size(cfg)
        if self.loss == "cross_entropy":
            y = rng.integers(0, out, size=(batch_size,)).astype(np.int64)
        else:
            y = rng.standard_normal((batch_size, out)).astype(dtype)
        return x, y


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    config: type,
    tutorial: str,
    description: str,
    input_shape: Callable[[Any], tuple[int, ...]],
    output_size: Callable[[Any], int],
    layout: Literal["features", "image"] = "features",
    loss: Loss = "cross_entropy",
) -> Callable[[type], type]:
    """Class decorator registering a Flax twin under ``name``. Names must be unique."""

    def decorate(cls: type) -> type:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelSpec(
            name=name,
            factory=cls,
            config_cls=config,
            tutorial=tutorial,
            description=description,
            input_shape=input_shape,
            output_size=output_size,
            layout=layout,
            loss=loss,
        )
        return cls

    return decorate


def list_models() -> list[str]:
    """Sorted names of every registered model."""
    return sorted(_REGISTRY)


def match_models(pattern: str | None) -> list[str]:
    """Registered names matching a shell glob (``'*net*'``); all when ``pattern`` is None.

    Raises :class:`UnknownModelError` when nothing matches (for a plain name, with the
    closest registered one, as :func:`get_model_spec` suggests it).
    """
    names = list_models()
    if pattern is None:
        return names
    hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    if not hits:
        if not any(c in pattern for c in "*?["):
            get_model_spec(pattern)  # a plain name: its error names the closest model
        raise UnknownModelError(
            f"no registered model matches {pattern!r}; known models: {', '.join(names)}"
        )
    return hits


def get_model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered under ``name``.

    Raises ``TypeError`` when ``name`` is not a string, and :class:`UnknownModelError` (a
    ``KeyError``) for an empty or unregistered name; the message suggests the closest
    registered names (``difflib``) and lists them all.
    """
    known = ", ".join(list_models())
    if not isinstance(name, str):
        raise TypeError(
            f"a model name string is expected, got {name!r} of type {type(name).__name__}; "
            f"known models (jaxnets.list_models()): {known}"
        )
    if name in _REGISTRY:
        return _REGISTRY[name]
    if not name.strip():
        raise UnknownModelError(f"the model name is empty ({name!r}); known models: {known}")
    raise UnknownModelError(f"unknown model {name!r}.{_did_you_mean(name)} Known models: {known}")


def _did_you_mean(name: str) -> str:
    """`` Did you mean 'x'?`` for the registered name closest to ``name``, or ``''``."""
    key = name.strip().lower()
    close = difflib.get_close_matches(key, list_models(), n=1, cutoff=0.6)
    if not close and len(key) >= 3:  # a fragment of a long name: 'batchnorm' -> batchnorm_mlp
        close = [n for n in list_models() if key in n][:1]
    return f" Did you mean {close[0]!r}?" if close else ""


def _check_dtype(dtype: Any, what: str) -> Any:
    if dtype is None:
        return None
    dt = jnp.dtype(dtype)
    if dt == jnp.float64 and not jax.config.read("jax_enable_x64"):
        raise ValueError(
            f"{what}=float64 needs 64-bit JAX: call jax.config.update('jax_enable_x64', True) "
            f"before creating the model (or set JAX_ENABLE_X64=1)"
        )
    if not jnp.issubdtype(dt, jnp.floating):
        raise ValueError(f"{what} must be a floating dtype, got {dt}")
    return dt


def create_model(
    name: str,
    *,
    rngs: nnx.Rngs | None = None,
    dtype: Any = None,
    param_dtype: Any = None,
    **config: Any,
) -> nnx.Module:
    """Build the Flax twin registered as ``name``.

    ``config`` takes the tutorial's own constructor arguments (see the model's config
    dataclass); anything left out uses the registry default. ``rngs`` defaults to
    ``nnx.Rngs(0)``; ``param_dtype`` (storage, default float32) and ``dtype`` (computation,
    default: promoted from input and parameters) work as in ``nnx`` layers, so a float64
    twin is ``create_model(name, param_dtype=jnp.float64)`` with x64 enabled.

    ``rngs`` must be an ``nnx.Rngs`` (or None); a bare seed such as ``rngs=0`` is refused with
    a ``TypeError`` rather than guessed at: write ``rngs=nnx.Rngs(0)``. A bad name, config
    value or ``rngs`` raises before anything is built.
    """
    spec = get_model_spec(name)
    cfg = spec.make_config(**config)
    if rngs is not None and not isinstance(rngs, nnx.Rngs):
        seed = rngs if isinstance(rngs, int) and not isinstance(rngs, bool) else 0
        raise TypeError(
            f"create_model({name!r}): rngs must be an nnx.Rngs, e.g. rngs=nnx.Rngs({seed}) "
            f"(or leave it out for nnx.Rngs(0)), got {rngs!r} of type {type(rngs).__name__}"
        )
    kwargs = dataclasses.asdict(cfg)
    return spec.factory(
        **kwargs,
        rngs=rngs if rngs is not None else nnx.Rngs(0),
        dtype=_check_dtype(dtype, "dtype"),
        param_dtype=_check_dtype(param_dtype, "param_dtype") or jnp.float32,
    )
