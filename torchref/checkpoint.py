"""torch checkpoint files, read safely: ``.pt``/``.pth`` only with ``weights_only=True``.

A ``.pt`` file written by ``torch.save`` is a pickle, and unpickling can run any code the file
names. :func:`load_torch_file` reads it only with ``torch.load(path, map_location='cpu',
weights_only=True)``, whose unpickler accepts tensors and plain containers and refuses every
other global (PyTorch docs, ``torch.load``: "weights_only: Indicates whether unpickler should
be restricted to loading only tensors, primitive types, dictionaries and any types added via
torch.serialization.add_safe_globals()"). A file that carries code is refused with a
:class:`~jaxnets.checkpoint.CheckpointError` before any of it runs. ``.safetensors`` files
cannot carry code at all and go through :func:`jaxnets.checkpoint.read_safetensors`.

Both functions speak numpy state dicts (``{'fc1.weight': array}``), the currency of
:mod:`jaxnets.convert`::

    sd = load_torch_file("model.pt")                  # or model.safetensors
    jaxnets.convert.load_state_dict(flax_model, sd)   # checks every key, shape and dtype
    save_torch_file("model.safetensors", torch_model)  # atomic
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jaxnets.checkpoint import (
    FORMAT_KEY,
    TORCH_SAVE_SUFFIXES,
    CheckpointError,
    atomic_writer,
    read_safetensors,
    write_safetensors,
)

__all__ = ["load_torch_file", "save_torch_file"]

StrPath = str | os.PathLike[str]

_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")


def _is_tensor_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _to_numpy(path: Path, sd: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for k, v in sd.items():
        if v.dtype == torch.bfloat16:
            raise CheckpointError(
                f"{path}: tensor {k!r} is bfloat16, which numpy cannot hold. Fix: in torch, "
                f"cast first (model.float()) and save again"
            )
        out[k] = v.detach().cpu().numpy().copy()
    return out


def _load_pickle(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with every failure turned into a CheckpointError."""
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no such file" if not path.exists() else f"{path}: is not a file"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines()]
        detail = next((ln for ln in lines if "GLOBAL" in ln), "a global torch does not allow")
        raise CheckpointError(
            f"{path}: refused: the file holds pickled objects other than tensors and plain "
            f"containers ({detail}), which could run code when loaded. It was read "
            f"with torch.load(weights_only=True), so nothing in it ran. Fix: if you trust "
            f"where it came from, re-save only the weights from the environment that made it "
            f"(torch.save(model.state_dict(), 'weights.pt'), or "
            f"safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')); "
            f"never load an untrusted file with weights_only=False"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(
            f"{path}: cannot read it as a torch.save file ({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'}); it is "
            f"truncated, corrupt or not a torch checkpoint. Fix: restore it from a backup or "
            f"save it again"
        ) from None


class NeedsKeyError(CheckpointError):
    """The file holds more than a state dict and no one entry is plainly the model's (none
    under a usual name, or several): the caller must say which. ``candidates`` are the
    entries that look like state dicts under usual names; :meth:`advice` words the fix for
    the API (``key=``) or the command line (``--key``)."""

    def __init__(self, path: Path, non_tensor: list[str], candidates: list[str]) -> None:
        self.path, self.non_tensor, self.candidates = path, non_tensor, candidates
        super().__init__(self.advice())

    def advice(self, *, cli: bool = False) -> str:
        """The message, its fix worded for the API (``key='...'``) or, with ``cli``, for the
        command line (``--key ...``)."""

        def arg(name: str | None) -> str:
            if cli:
                return f"--key {name or 'NAME'}"
            return f"key={name!r}" if name else "key="

        if not self.candidates:
            hint = f"pass {arg(None)} naming the entry that holds the model's state dict"
        else:
            where = " and ".join(repr(c) for c in self.candidates)
            hint = f"it holds state dicts under {where}: pass " + " or ".join(
                arg(c) for c in self.candidates
            )
        return (
            f"{self.path}: not a plain state dict: entries {self.non_tensor[:8]} are not "
            f"tensors (a training checkpoint with optimizer state and counters?). Fix: {hint}"
        )


def _pick_state_dict(path: Path, obj: Any, key: str | None) -> Mapping[str, torch.Tensor]:
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            have = sorted(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
            raise CheckpointError(f"{path}: no entry {key!r} in the file; it holds {have}")
        obj = obj[key]
        if not _is_tensor_dict(obj):
            raise CheckpointError(
                f"{path}: entry {key!r} is not a state dict of tensors "
                f"({type(obj).__name__}); pass the key of the model's state dict"
            )
        return obj
    if _is_tensor_dict(obj):
        return obj
    if isinstance(obj, Mapping):
        # a training checkpoint ({'model_state_dict': ..., 'optimizer_state_dict': ...,
        # 'epoch': ...}): its one state dict under a usual name is the model's
        inner = [k for k in _STATE_DICT_KEYS if k in obj and _is_tensor_dict(obj[k])]
        if len(inner) == 1:
            return obj[inner[0]]
        non_tensor = sorted(str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor))
        raise NeedsKeyError(path, non_tensor, inner)
    raise CheckpointError(
        f"{path}: holds a {type(obj).__name__}, not a state dict of tensors. Fix: save "
        f"model.state_dict() rather than the model"
    )


def load_torch_file(path: StrPath, *, key: str | None = None) -> dict[str, np.ndarray]:
    """Read a torch state dict from ``.pt``/``.pth``/``.bin``/``.ckpt`` or ``.safetensors``.

    Pickle files are read ONLY with ``torch.load(path, map_location='cpu',
    weights_only=True)``: a file that carries code (any global other than tensors and plain
    containers) is refused with :class:`~jaxnets.checkpoint.CheckpointError`, and nothing in
    it runs. ``key`` picks the state dict inside a checkpoint dict (e.g.
    ``'model_state_dict'``); without it, a dict that holds exactly one state dict under
    ``state_dict``, ``model_state_dict`` or ``model`` (a usual training checkpoint) gives
    that one, and any other dict is refused with :class:`NeedsKeyError`.

    Returns ``{torch key: numpy array}`` copies in torch layout, for
    :func:`jaxnets.convert.load_state_dict`.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".safetensors":
        arrays, meta = read_safetensors(p)
        kind = meta.get(FORMAT_KEY)
        if kind not in (None, "torch"):
            raise CheckpointError(
                f"{p}: holds jaxnets_format={kind!r}, not a torch state dict. Fix: load it "
                f"with jaxnets.checkpoint.load_{'flax' if kind == 'flax' else 'run'}"
            )
        return arrays
    if suffix not in TORCH_SAVE_SUFFIXES:
        raise CheckpointError(
            f"{p}: unknown checkpoint suffix {p.suffix!r}. Fix: use .safetensors, or one of "
            f"{', '.join(TORCH_SAVE_SUFFIXES)} for torch.save files"
        )
    return _to_numpy(p, _pick_state_dict(p, _load_pickle(p), key))


def save_torch_file(
    path: StrPath,
    state_dict_or_module: torch.nn.Module | Mapping[str, torch.Tensor | np.ndarray],
    *,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Save a torch module's ``state_dict()`` (or a state dict of tensors/numpy arrays)
    atomically: ``.safetensors`` (recommended: cannot carry code) or ``.pt``/``.pth`` via
    ``torch.save``. The previous file, if any, stays intact until the new one is complete.

    ``metadata`` (string to string) is stored in the header of ``.safetensors`` files only.
    """
    p = Path(path)
    sd = (
        state_dict_or_module.state_dict()
        if isinstance(state_dict_or_module, torch.nn.Module)
        else state_dict_or_module
    )
    if not isinstance(sd, Mapping):
        raise TypeError(
            f"expected a torch module or a state dict, got {type(state_dict_or_module)}"
        )
    tensors = {
        k: (v.detach().cpu() if isinstance(v, torch.Tensor) else torch.from_numpy(np.array(v)))
        for k, v in sd.items()
    }
    suffix = p.suffix.lower()
    if suffix == ".safetensors":
        bf16 = [k for k, t in tensors.items() if t.dtype == torch.bfloat16]
        if bf16:
            raise TypeError(
                f"{bf16[:3]} are bfloat16, which the numpy side (jaxnets) cannot read; cast "
                f"first (model.float()) or use safetensors.torch.save_file directly"
            )
        arrays = {k: t.numpy() for k, t in tensors.items()}
        meta = {**(metadata or {}), "format": "pt", FORMAT_KEY: "torch"}
        return write_safetensors(p, arrays, meta)
    if suffix in TORCH_SAVE_SUFFIXES:
        if metadata:
            raise ValueError("metadata is stored in .safetensors files only")
        with atomic_writer(p) as f:
            torch.save(tensors, f)
        return p
    raise ValueError(
        f"{p}: unknown checkpoint suffix {p.suffix!r}; use .safetensors (recommended) or one "
        f"of {', '.join(TORCH_SAVE_SUFFIXES)}"
    )
