"""Torch-style ``print(model)`` for a Flax NNX twin, and side-by-side text for two frameworks.

The tutorials print a model to show its architecture::

    LeNet(
      (conv1): Conv2d(1, 6, kernel_size=(3, 3), stride=(1, 1))
      ...
      (fc3): Linear(in_features=84, out_features=10, bias=True)
    )

:func:`torch_repr` writes that text for a Flax twin by walking its nnx module tree, in the
order the attributes were assigned (torch lists submodules in registration order), with
torch's names and constructor arguments for each layer: ``nnx.Linear`` -> ``Linear(...)``,
``nnx.Conv`` -> ``Conv2d(...)`` (``Conv1d``, with ``padding_mode``),
:class:`jaxnets.nn.BatchNorm1d` (``2d``) -> ``BatchNorm1d(...)`` (``BatchNorm2d(...)``), the
rest of :mod:`jaxnets.nn` (``LayerNorm``, ``Embedding``, ``Dropout``, the pools,
``Flatten``, ``Identity``, the activation modules) with torch's arguments,
``nnx.List`` -> ``ModuleList(...)`` (with torch's ``(1-2): 2 x ...`` folding of repeats).
The text equals ``repr(torchref.create_model(name))`` for every registered model under the
installed torch; a test holds it to that. BatchNorm's repr gained ``bias=`` when torch's norm
layers got a ``bias`` argument (pytorch/pytorch#176573, merged March 2026: torch 2.13.0
prints it, 2.11.0 does not); the installed torch's version is read from its package
metadata, without importing it, and without torch the newer form is written.

Activation functions stored as attributes (``self.activation1 = jax.nn.relu``) are the twin's
port of a torch module attribute (``self.activation1 = nn.ReLU()``) and print as ``ReLU()``.
Where the torch original stores a plain FUNCTION as an attribute instead (the challenge
``MLP``: ``self.activation = torch.relu``), torch's repr does not list it; such attributes
are registered with :func:`register_functional` so the twin's text matches.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxnets import convert
from jaxnets import nn as jnn
from jaxnets.models import MLP
from jaxnets.nn import BatchNorm1d

__all__ = [
    "parameter_table",
    "register_functional",
    "side_by_side",
    "torch_repr",
]

# Activation functions a twin stores as attributes -> the torch module they stand for.
_ACTIVATION_MODULES: dict[Any, str] = {
    jax.nn.relu: "ReLU()",
    jax.nn.sigmoid: "Sigmoid()",
    jnp.tanh: "Tanh()",
}

# Attributes whose torch original is a plain function, not a module (not in torch's repr).
_FUNCTIONAL: dict[type, frozenset[str]] = {}


def register_functional(cls: type, *names: str) -> None:
    """Declare that ``cls``'s attributes ``names`` are plain functions in the torch original.

    Torch's ``repr`` lists only submodules; an activation attribute of a twin prints as a
    module (``ReLU()``) unless registered here.
    """
    _FUNCTIONAL[cls] = _FUNCTIONAL.get(cls, frozenset()) | frozenset(names)


# torchref.models.MLP stores ``self.activation = _ACTIVATIONS[activation]`` (a function).
register_functional(MLP, "activation")


def _addindent(text: str, spaces: int = 2) -> str:
    """torch.nn.modules.module._addindent: indent every line but the first."""
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    pad = " " * spaces
    return "\n".join([lines[0], *((pad + ln) if ln.strip() else "" for ln in lines[1:])])


def _tuple(v: Any, n: int = 2) -> tuple[Any, ...]:
    return tuple(v) if isinstance(v, tuple | list) else (v,) * n


def _conv_repr(m: nnx.Conv) -> str:
    k = tuple(m.kernel_size)
    n = len(k)
    if n not in (1, 2):
        return f"Conv{n}d(...)"
    if isinstance(m, jnn.Conv1d | jnn.Conv2d):  # torch's own padding value and mode
        padding: Any = m.torch_padding
    else:
        pad = m.padding
        if isinstance(pad, str):
            padding = pad.lower()  # torch prints padding=same, unquoted
        else:
            pairs = [(p, p) if isinstance(p, int) else tuple(p) for p in _tuple(pad, n)]
            symmetric = all(lo == hi for lo, hi in pairs)
            padding = tuple(lo for lo, _ in pairs) if symmetric else tuple(pairs)
    s = f"{m.in_features}, {m.out_features}, kernel_size={k}, stride={_tuple(m.strides or 1, n)}"
    if padding != (0,) * n:
        s += f", padding={padding}"
    dilation = _tuple(m.kernel_dilation or 1, n)
    if dilation != (1,) * n:
        s += f", dilation={dilation}"
    if m.feature_group_count != 1:
        s += f", groups={m.feature_group_count}"
    if not m.use_bias:
        s += ", bias=False"
    mode = getattr(m, "padding_mode", "zeros")
    if mode != "zeros":
        s += f", padding_mode={mode}"
    return f"Conv{n}d({s})"


@functools.cache
def _torch_bn_repr_has_bias() -> bool:
    """Whether the installed torch's BatchNorm repr lists ``bias=`` (2.12 and later)."""
    from importlib import metadata

    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return True
    major, minor = (
        int("".join(c for c in part if c.isdigit()) or 0) for part in version.split(".")[:2]
    )
    return (major, minor) >= (2, 12)


def _batchnorm_repr(m: nnx.BatchNorm) -> str:
    momentum = m.torch_momentum if isinstance(m, BatchNorm1d) else round(1.0 - m.momentum, 12)
    affine = bool(m.use_scale or m.use_bias)
    name = type(m).__name__ if isinstance(m, BatchNorm1d) else "BatchNorm"  # ...1d, ...2d
    bias = f"bias={bool(m.use_bias)}, " if _torch_bn_repr_has_bias() else ""
    tracking = getattr(m, "track_running_stats", True)
    return (
        f"{name}({m.num_features}, eps={m.epsilon}, momentum={momentum}, affine={affine}, "
        f"{bias}track_running_stats={tracking})"
    )


def _layernorm_repr(m: nnx.LayerNorm) -> str:
    shape = m.normalized_shape if isinstance(m, jnn.LayerNorm) else (int(m.num_features),)
    return (
        f"LayerNorm({tuple(shape)}, eps={m.epsilon}, elementwise_affine={bool(m.use_scale)}, "
        f"bias={bool(m.use_bias)})"
    )


def _embedding_repr(m: nnx.Embed) -> str:
    s = f"{m.num_embeddings}, {m.features}"
    if getattr(m, "padding_idx", None) is not None:
        s += f", padding_idx={m.padding_idx}"
    if getattr(m, "scale_grad_by_freq", False):
        s += ", scale_grad_by_freq=True"
    if getattr(m, "sparse", False):
        s += ", sparse=True"
    return f"Embedding({s})"


def _inplace(m: Any, first: str = "") -> str:
    """torch's activation repr arguments: ``first`` and ``inplace=True`` when set."""
    parts = [first] if first else []
    if getattr(m, "inplace", False):
        parts.append("inplace=True")
    return ", ".join(parts)


# jaxnets.nn's argument-only modules -> torch's repr (subclasses before their bases)
_REPRS: list[tuple[type, Any]] = [
    (jnn.Dropout2d, lambda m: f"Dropout2d(p={m.p}, inplace={m.inplace})"),
    (jnn.Dropout, lambda m: f"Dropout(p={m.p}, inplace={m.inplace})"),
    (
        jnn.MaxPool2d,
        lambda m: (
            f"MaxPool2d(kernel_size={m.kernel_size}, stride={m.stride}, padding={m.padding}, "
            f"dilation={m.dilation}, ceil_mode={m.ceil_mode})"
        ),
    ),
    (
        jnn.AvgPool2d,
        lambda m: f"AvgPool2d(kernel_size={m.kernel_size}, stride={m.stride}, padding={m.padding})",
    ),
    (jnn.AdaptiveAvgPool2d, lambda m: f"AdaptiveAvgPool2d(output_size={m.output_size})"),
    (jnn.AdaptiveMaxPool2d, lambda m: f"AdaptiveMaxPool2d(output_size={m.output_size})"),
    (jnn.Flatten, lambda m: f"Flatten(start_dim={m.start_dim}, end_dim={m.end_dim})"),
    (jnn.Identity, lambda m: "Identity()"),
    (jnn.ReLU, lambda m: f"ReLU({_inplace(m)})"),
    (jnn.LeakyReLU, lambda m: f"LeakyReLU({_inplace(m, f'negative_slope={m.negative_slope}')})"),
    (jnn.ELU, lambda m: f"ELU({_inplace(m, f'alpha={m.alpha}')})"),
    (jnn.GELU, lambda m: f"GELU(approximate={m.approximate!r})"),
    (jnn.SiLU, lambda m: f"SiLU({_inplace(m)})"),
    (jnn.Tanh, lambda m: "Tanh()"),
    (jnn.Sigmoid, lambda m: "Sigmoid()"),
    (jnn.Softmax, lambda m: f"Softmax(dim={m.dim})"),
    (jnn.LogSoftmax, lambda m: f"LogSoftmax(dim={m.dim})"),
]


def _leaf_repr(m: Any) -> str | None:
    """torch's one-line repr of a known layer, or None for a container."""
    if isinstance(m, nnx.Linear):
        sizes = f"in_features={m.in_features}, out_features={m.out_features}"
        return f"Linear({sizes}, bias={m.use_bias})"
    if isinstance(m, nnx.Conv):
        return _conv_repr(m)
    if isinstance(m, nnx.BatchNorm):
        return _batchnorm_repr(m)
    if isinstance(m, nnx.LayerNorm):
        return _layernorm_repr(m)
    if isinstance(m, nnx.Embed):
        return _embedding_repr(m)
    for cls, text in _REPRS:
        if isinstance(m, cls):
            return text(m)
    if isinstance(m, nnx.Dropout):
        return f"Dropout(p={m.rate}, inplace=False)"
    return None


def _children(m: nnx.Module) -> Iterator[tuple[str, Any]]:
    """(name, child) in assignment order: submodules and activation attributes."""
    if isinstance(m, nnx.List | nnx.Sequential):
        items = m.layers if isinstance(m, nnx.Sequential) else m
        for i, child in enumerate(items):
            yield str(i), child
        return
    hidden = set().union(*(names for cls, names in _FUNCTIONAL.items() if isinstance(m, cls)))
    for name, value in vars(m).items():
        if name.startswith("_") or name in hidden:
            continue
        if isinstance(value, nnx.Module) or _is_activation(value):
            yield name, value


def _is_activation(value: Any) -> bool:
    try:
        return value in _ACTIVATION_MODULES
    except TypeError:  # unhashable
        return False


def _repr(m: Any) -> str:
    if _is_activation(m):
        return _ACTIVATION_MODULES[m]
    leaf = _leaf_repr(m)
    if leaf is not None:
        return leaf
    if isinstance(m, nnx.List):
        return _module_list_repr(m)
    name = "Sequential" if isinstance(m, nnx.Sequential) else type(m).__name__
    lines = [f"({k}): {_addindent(_repr(child))}" for k, child in _children(m)]
    if not lines:
        return f"{name}()"
    return name + "(\n  " + "\n  ".join(lines) + "\n)"


def _module_list_repr(m: nnx.List) -> str:
    """torch ModuleList.__repr__: consecutive identical entries fold into ``(i-j): n x ...``."""
    reprs = [_repr(child) for _, child in _children(m)]
    if not reprs:
        return "ModuleList()"
    lines, start = [], 0
    for text, group in itertools.groupby(reprs):
        n = len(list(group))
        label = f"({start})" if n == 1 else f"({start}-{start + n - 1}): {n} x"
        lines.append(_addindent(f"{label}: {text}" if n == 1 else f"{label} {text}"))
        start += n
    return "ModuleList(\n  " + "\n  ".join(lines) + "\n)"


def torch_repr(model: nnx.Module) -> str:
    """The text torch's ``print(model)`` shows for the torch original of ``model``.

    Walks the nnx module tree (any twin, or your own module built from nnx layers and
    :mod:`jaxnets.nn`); unknown module types print as containers of their submodules.
    Children are listed in the order they were assigned in ``__init__``, as torch lists them;
    a module rebuilt by ``nnx.merge`` or ``nnx.eval_shape`` has lost that order (nnx sorts
    attributes), so print the model you constructed.
    """
    if not isinstance(model, nnx.Module):
        raise TypeError(f"torch_repr expects an nnx.Module, got {type(model).__name__}")
    return _repr(model)


def parameter_table(model: nnx.Module) -> list[dict[str, Any]]:
    """One row per torch state-dict entry of ``model``: where it lives in the twin, and both
    shapes (torch layout vs Flax layout, e.g. ``conv1.weight [6, 1, 3, 3]`` is
    ``conv1.kernel [3, 3, 1, 6]``).

    Rows: ``{'torch': key, 'torch_shape': tuple, 'flax': path, 'flax_shape': tuple,
    'trainable': bool}``, in torch's ``state_dict()`` order.
    """
    sd = convert.state_dict(model)
    where = convert.torch_to_flax_key_map(model)
    flat = {".".join(map(str, p)): v for p, v in nnx.to_flat_state(nnx.state(model))}
    rows = []
    for key, arr in sd.items():
        var = flat[where[key]]
        rows.append(
            {
                "torch": key,
                "torch_shape": tuple(int(d) for d in np.shape(arr)),
                "flax": where[key],
                "flax_shape": tuple(int(d) for d in var.shape),
                "trainable": isinstance(var, nnx.Param),
            }
        )
    return rows


def side_by_side(
    left: str,
    right: str,
    *,
    titles: tuple[str, str] = ("PyTorch", "JAX / Flax NNX"),
    gap: int = 4,
    width: int | None = None,
) -> str:
    """Two blocks of text in two columns under their titles (for a terminal).

    ``width`` is the left column's width (default: its longest line). Returns one string.
    """
    lrows, rrows = [titles[0], *left.splitlines()], [titles[1], *right.splitlines()]
    w = width if width is not None else max(len(s) for s in lrows)
    lrows.insert(1, "-" * max(len(titles[0]), min(w, 40)))
    rrows.insert(1, "-" * max(len(titles[1]), min(max(map(len, rrows)), 40)))
    out = []
    for a, b in itertools.zip_longest(lrows, rrows, fillvalue=""):
        out.append(f"{a:<{w}}{' ' * gap}{b}".rstrip())
    return "\n".join(out)
