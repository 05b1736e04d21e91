"""Torch modules and state dicts <-> numpy <-> Flax twins. All layout rules live in
:mod:`jaxnets.convert`; this module only moves tensors in and out of torch."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from flax import nnx

from jaxnets import convert

__all__ = [
    "flax_to_torch",
    "flax_to_torch_problems",
    "from_numpy_state_dict",
    "to_numpy_state_dict",
    "torch_to_flax",
]


def to_numpy_state_dict(
    module_or_state: torch.nn.Module | Mapping[str, torch.Tensor],
) -> dict[str, np.ndarray]:
    """A torch module's ``state_dict()`` (or a state dict) as ``{key: numpy array}`` copies."""
    sd = (
        module_or_state.state_dict()
        if isinstance(module_or_state, torch.nn.Module)
        else module_or_state
    )
    return {k: v.detach().cpu().numpy().copy() for k, v in sd.items()}


def from_numpy_state_dict(state: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """``{key: numpy array}`` as a torch state dict (tensors own their memory)."""
    return {k: torch.from_numpy(np.array(v, copy=True)) for k, v in state.items()}


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return torch.from_numpy(np.empty(0, dtype)).dtype


def torch_to_flax(torch_model: torch.nn.Module, flax_model: nnx.Module) -> nnx.Module:
    """Copy every parameter and buffer (BatchNorm running statistics included) of
    ``torch_model`` into ``flax_model`` in place; returns ``flax_model``.

    Raises :class:`jaxnets.convert.StateDictError` listing every mismatch before writing.
    """
    convert.load_state_dict(flax_model, to_numpy_state_dict(torch_model))
    return flax_model


def flax_to_torch_problems(flax_model: nnx.Module, torch_model: torch.nn.Module) -> list[str]:
    """What keeps :func:`flax_to_torch` from copying ``flax_model`` into ``torch_model``:
    one line per missing or unexpected key and shape or dtype mismatch; empty when it fits."""
    return _problems(convert.state_dict(flax_model), torch_model.state_dict())


def _problems(state: Mapping[str, np.ndarray], target: Mapping[str, torch.Tensor]) -> list[str]:
    problems = [f"missing key {k!r}" for k in target if k not in state]
    problems += [f"unexpected key {k!r}" for k in state if k not in target]
    for k, v in state.items():
        if k in target:
            t = target[k]
            if tuple(t.shape) != v.shape:
                problems.append(f"{k!r}: shape {v.shape} from the twin, {tuple(t.shape)} expected")
            elif t.dtype != _torch_dtype(v.dtype):
                problems.append(f"{k!r}: dtype {v.dtype} from the twin, {t.dtype} expected")
    return problems


def flax_to_torch(flax_model: nnx.Module, torch_model: torch.nn.Module) -> torch.nn.Module:
    """Copy every variable of ``flax_model`` into ``torch_model`` in place (strict, exact
    dtypes); returns ``torch_model``. Nothing is written when anything does not fit."""
    state = convert.state_dict(flax_model)
    problems = _problems(state, torch_model.state_dict())
    if problems:
        raise convert.StateDictError(problems, type(torch_model).__name__)
    torch_model.load_state_dict(from_numpy_state_dict(state), strict=True)
    return torch_model
