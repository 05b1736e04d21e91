"""The vocabulary: each torch layer the port knows, and the jaxnets layer it becomes.

Names are resolved against the jaxnets that is installed (``jaxnets.nn``, its ``functional``
and ``jaxnets.fast``), so the generated source only uses what exists; a layer the installed
jaxnets lacks is refused by name, like any other layer outside the vocabulary.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from torchref.port.capture import PortError

__all__ = ["LAYERS", "LayerRule", "Lib", "fmt", "layer_rule"]


def fmt(v: Any) -> str:
    """A literal as Python source (floats shortest-exact, tuples of equal ints as one int)."""
    if isinstance(v, bool) or v is None:
        return repr(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, tuple | list):
        inner = ", ".join(fmt(x) for x in v)
        return (
            f"({inner},)"
            if isinstance(v, tuple) and len(v) == 1
            else (f"({inner})" if isinstance(v, tuple) else f"[{inner}]")
        )
    if isinstance(v, str):
        return json.dumps(v)  # double quotes, as ruff writes strings
    return repr(v)


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


class Lib:
    """The names the generated source uses, and the imports they need."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.nn_module = "jaxnets.nn"
        self.f_module = "jaxnets.nn.functional" if _importable("jaxnets.nn.functional") else None
        self.fast_module = "jaxnets.fast" if _importable("jaxnets.fast") else None

    # -- lookups
    @staticmethod
    def _get(module: str | None, name: str) -> Any:
        if module is None:
            return None
        return getattr(importlib.import_module(module), name, None)

    def has_nn(self, name: str) -> bool:
        return self._get(self.nn_module, name) is not None

    def has_f(self, name: str) -> bool:
        return self._get(self.f_module, name) is not None

    def nn(self, name: str, what: str) -> str:
        """``nn.NAME``; ``what`` names the torch side for the refusal."""
        if not self.has_nn(name):
            raise PortError(f"{what} needs jaxnets.nn.{name}, which this jaxnets does not have yet")
        self.used.add("nn")
        return f"nn.{name}"

    def F(self, name: str, what: str) -> str:  # noqa: N802 - torch's F
        if not self.has_f(name):
            raise PortError(
                f"{what} needs jaxnets.nn.functional.{name}, which this jaxnets does not have yet"
            )
        self.used.add("F")
        return f"F.{name}"

    def fast(self, name: str) -> str | None:
        """``fast.NAME``, one of jaxnets' faster forms (None if this jaxnets lacks it)."""
        if self.fast_module is not None and self._get(self.fast_module, name) is not None:
            self.used.add("fast")
            return f"fast.{name}"
        return None

    def kw(self, qualified: str) -> str:
        """The construction keywords the jaxnets callable ``nn.NAME`` takes: ``**kw`` (rngs,
        dtype, param_dtype), ``rngs=rngs``, or nothing."""
        prefix, _, name = qualified.partition(".")
        module = {"nn": self.nn_module, "nnx": "flax.nnx"}.get(prefix)
        obj = self._get(module, name)
        target = obj.__init__ if isinstance(obj, type) else obj
        try:
            params = inspect.signature(target).parameters if obj is not None else {}
        except (TypeError, ValueError):
            params = {}
        if "rngs" in params and "param_dtype" in params:
            return "**kw"
        if "rngs" in params:
            return "rngs=rngs"
        return ""

    def use(self, name: str) -> None:
        self.used.add(name)

    def imports(self) -> list[str]:
        """The import lines, grouped and sorted as ruff's isort does."""
        lines = ["from typing import Any", "", "import jax"]
        if "jnp" in self.used:
            lines.append("import jax.numpy as jnp")
        lines += ["from flax import nnx", ""]
        names = sorted(n for n in ("convert", "fast", "nn") if n in self.used)
        if names:
            lines.append(f"from jaxnets import {', '.join(names)}")
        if "F" in self.used:
            lines.append("from jaxnets.nn import functional as F")
        return lines


def _ctor(lib: Lib, name: str, what: str, pos: list[Any], kw: dict[str, Any]) -> str:
    fn = lib.nn(name, what)
    args = [fmt(a) for a in pos] + [f"{k}={fmt(v)}" for k, v in kw.items()]
    extra = lib.kw(fn)
    if extra:
        args.append(extra)
    return f"{fn}({', '.join(args)})"


def _params(obj: Any) -> Any:
    """The parameters of a function, or of a class's constructor."""
    return inspect.signature(obj.__init__ if isinstance(obj, type) else obj).parameters


def _single(v: Any) -> Any:
    """torch keeps (3, 3); write 3 where both are equal, as the user most likely did."""
    if isinstance(v, tuple) and len(v) >= 1 and all(x == v[0] for x in v):
        return v[0]
    return v


def _nondefault(m: nn.Module, defaults: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, d in defaults.items():
        v = getattr(m, k)
        if isinstance(v, tuple):
            v = _single(v)
        if v != d:
            out[k] = v
    return out


@dataclass(frozen=True)
class LayerRule:
    """How the twin holds one torch layer type.

    ``layout``: which layout its input must have inside the twin: ``'features'`` (torch's
    own order: Linear, LayerNorm, Flatten act on the last or given dims), ``'channels'``
    (channels last: convolutions, pooling, BatchNorm on more than 2 dims) or ``'any'``
    (elementwise; the output keeps the input's layout). ``build(lib, module, extra)`` is the
    constructor's source (``extra``: settings the forward pass decided, e.g. a rewritten dim).
    ``function``: the twin holds a plain function (``jax.nn.relu``), as the hand-written
    twins do for torch's parameterless activation modules.
    """

    layout: str
    build: Callable[[Lib, nn.Module, dict[str, Any], str], str]
    function: bool = False
    dim: str | None = None  # the attribute holding a torch dim the layout rewrites


def _linear(lib: Lib, m: nn.Linear, _: dict, what: str) -> str:
    kw = {} if m.bias is not None else {"bias": False}
    return _ctor(lib, "Linear", what, [m.in_features, m.out_features], kw)


def _conv(lib: Lib, m: nn.Conv1d | nn.Conv2d, _: dict, what: str) -> str:
    name = type(m).__name__
    kw = _nondefault(m, {"stride": 1, "padding": 0, "dilation": 1, "groups": 1})
    if m.bias is None:
        kw["bias"] = False
    if m.padding_mode != "zeros":
        kw["padding_mode"] = m.padding_mode
    if kw.get("padding_mode") or name != "Conv2d":
        fn = lib.nn(name, what)
        sig = _params(lib._get(lib.nn_module, name))
        if "padding_mode" in kw and "padding_mode" not in sig:
            raise PortError(
                f"{what}: padding_mode={m.padding_mode!r} needs {fn} with "
                f"padding_mode, which this jaxnets does not have yet"
            )
    pos = [m.in_channels, m.out_channels, _single(m.kernel_size)]
    return _ctor(lib, name, what, pos, kw)


def _bn(lib: Lib, m: nn.modules.batchnorm._BatchNorm, _: dict, what: str) -> str:
    kw = _nondefault(m, {"eps": 1e-5, "momentum": 0.1, "affine": True})
    if not m.track_running_stats:
        kw["track_running_stats"] = False
    name = type(m).__name__
    fn = lib.nn(name, what)
    sig = _params(lib._get(lib.nn_module, name))
    for k in kw:
        if k not in sig:
            raise PortError(
                f"{what}: {k}={getattr(m, k)!r} needs {fn} with {k}, which this jaxnets "
                f"does not have yet"
            )
    return _ctor(lib, name, what, [m.num_features], kw)


def _layernorm(lib: Lib, m: nn.LayerNorm, _: dict, what: str) -> str:
    shape = (
        _single(tuple(m.normalized_shape))
        if len(m.normalized_shape) == 1
        else tuple(m.normalized_shape)
    )
    kw: dict[str, Any] = {}
    if m.eps != 1e-5:
        kw["eps"] = m.eps
    if not m.elementwise_affine:
        kw["elementwise_affine"] = False
    elif m.bias is None:
        kw["bias"] = False
    return _ctor(lib, "LayerNorm", what, [shape], kw)


def _embedding(lib: Lib, m: nn.Embedding, _: dict, what: str) -> str:
    if m.max_norm is not None or m.sparse or m.scale_grad_by_freq:
        raise PortError(
            f"{what}: max_norm, sparse and scale_grad_by_freq are outside the vocabulary "
            f"(jaxnets.nn.Embedding has no such option)"
        )
    kw = {} if m.padding_idx is None else {"padding_idx": m.padding_idx}
    return _ctor(lib, "Embedding", what, [m.num_embeddings, m.embedding_dim], kw)


def _dropout(lib: Lib, m: nn.Module, _: dict, what: str) -> str:
    return _ctor(lib, type(m).__name__, what, [m.p], {})


def _plain(
    name: str,
    pos: Callable[[nn.Module], list[Any]] = lambda m: [],
    kw: Callable[[nn.Module], dict[str, Any]] = lambda m: {},
) -> Callable[..., str]:
    def build(lib: Lib, m: nn.Module, extra: dict, what: str) -> str:
        return _ctor(lib, name, what, pos(m), {**kw(m), **extra})

    return build


def _function(text: str) -> Callable[..., str]:
    def build(lib: Lib, m: nn.Module, _: dict, what: str) -> str:
        lib.use("jnp" if text.startswith("jnp.") else "jax")
        return text

    return build


def _pool_kw(m: nn.Module, defaults: dict[str, Any]) -> dict[str, Any]:
    kw = _nondefault(m, defaults)
    if "stride" in kw and _single(m.stride) == _single(m.kernel_size):
        del kw["stride"]
    return kw


def _maxpool(lib: Lib, m: nn.MaxPool2d, _: dict, what: str) -> str:
    if m.return_indices:
        raise PortError(f"{what}: return_indices=True is outside the vocabulary")
    kw = _pool_kw(m, {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False})
    return _ctor(lib, "MaxPool2d", what, [_single(m.kernel_size)], kw)


def _avgpool(lib: Lib, m: nn.AvgPool2d, _: dict, what: str) -> str:
    kw = _pool_kw(
        m,
        {
            "stride": None,
            "padding": 0,
            "ceil_mode": False,
            "count_include_pad": True,
            "divisor_override": None,
        },
    )
    return _ctor(lib, "AvgPool2d", what, [_single(m.kernel_size)], kw)


def _adaptive(lib: Lib, m: nn.Module, _: dict, what: str) -> str:
    if getattr(m, "return_indices", False):
        raise PortError(f"{what}: return_indices=True is outside the vocabulary")
    size = m.output_size
    size = _single(tuple(size)) if isinstance(size, tuple | list) else size
    return _ctor(lib, type(m).__name__, what, [size], {})


def _gelu(lib: Lib, m: nn.GELU, _: dict, what: str) -> str:
    kw = {} if m.approximate == "none" else {"approximate": m.approximate}
    return _ctor(lib, "GELU", what, [], kw)


def _flatten(lib: Lib, m: nn.Flatten, _: dict, what: str) -> str:
    return _ctor(lib, "Flatten", what, [], _nondefault(m, {"start_dim": 1, "end_dim": -1}))


def _softmax(lib: Lib, m: nn.Module, extra: dict, what: str) -> str:
    return _ctor(lib, type(m).__name__, what, [], {"dim": extra.get("dim", m.dim)})


LAYERS: dict[type, LayerRule] = {
    nn.Linear: LayerRule("features", _linear),
    nn.Conv1d: LayerRule("channels", _conv),
    nn.Conv2d: LayerRule("channels", _conv),
    nn.BatchNorm1d: LayerRule("channels", _bn),
    nn.BatchNorm2d: LayerRule("channels", _bn),
    nn.LayerNorm: LayerRule("features", _layernorm),
    nn.Embedding: LayerRule("features", _embedding),
    nn.Dropout: LayerRule("any", _dropout),
    nn.Dropout2d: LayerRule("channels", _dropout),
    nn.Flatten: LayerRule("features", _flatten),
    nn.Identity: LayerRule("any", _plain("Identity")),
    nn.MaxPool2d: LayerRule("channels", _maxpool),
    nn.AvgPool2d: LayerRule("channels", _avgpool),
    nn.AdaptiveAvgPool2d: LayerRule("channels", _adaptive),
    nn.AdaptiveMaxPool2d: LayerRule("channels", _adaptive),
    nn.ReLU: LayerRule("any", _function("jax.nn.relu"), function=True),
    nn.Sigmoid: LayerRule("any", _function("jax.nn.sigmoid"), function=True),
    nn.Tanh: LayerRule("any", _function("jnp.tanh"), function=True),
    nn.SiLU: LayerRule("any", _function("jax.nn.silu"), function=True),
    nn.LeakyReLU: LayerRule(
        "any", _plain("LeakyReLU", kw=lambda m: _nondefault(m, {"negative_slope": 0.01}))
    ),
    nn.ELU: LayerRule("any", _plain("ELU", kw=lambda m: _nondefault(m, {"alpha": 1.0}))),
    nn.GELU: LayerRule("any", _gelu),
    nn.Softmax: LayerRule("any", _softmax, dim="dim"),
    nn.LogSoftmax: LayerRule("any", _softmax, dim="dim"),
}


def layer_rule(cls: type) -> LayerRule | None:
    """The rule for torch layer type ``cls`` (exact type: a subclass with its own forward is
    a user module, see :func:`torchref.port.graph.leaf_type`)."""
    return LAYERS.get(cls)
