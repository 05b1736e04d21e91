"""torch checkpoint files, read safely: ``.pt``/``.pth`` only with ``weights_only=True``.

A ``.pt`` file written by ``torch.save`` is a pickle, and unpickling can run any code the file
names. :func:`load_torch_file` reads it only with ``torch.load(path, map_location='cpu',
weights_only=True)``, whose unpickler accepts tensors and plain containers and refuses every
other global (PyTorch docs, ``torch.load``: "weights_only: Indicates whether unpickler should
be restricted to loading only tensors, primitive types, dictionaries and any types added via
torch.serialization.add_safe_globals()"). A file that carries code is refused with a
:class:`~jaxnets.checkpoint.CheckpointError` before any of it runs. ``.safetensors`` files
cannot carry code at all and go through :func:`jaxnets.checkpoint.read_safetensors`.

Training checkpoints (the model's, optimizer's and scheduler's ``state_dict()`` and the epoch in
one ``torch.save`` dict) are read the same way, checked whole before anything is loaded
(:func:`load_training_checkpoint`), and written atomically (:func:`save_training_checkpoint`);
``torchref.handoff`` turns them into jaxnets run files and back.

The weight functions speak numpy state dicts (``{'fc1.weight': array}``), the currency of
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
    CheckpointError,
    atomic_writer,
    read_safetensors,
    write_safetensors,
)

__all__ = [
    "EPOCH_KEY",
    "MODEL_KEY",
    "OPTIMIZER_KEY",
    "SCHEDULER_KEY",
    "load_torch_file",
    "load_training_checkpoint",
    "read_training_checkpoint",
    "save_torch_file",
    "save_training_checkpoint",
]

StrPath = str | os.PathLike[str]

#: suffixes read with torch.load(weights_only=True) (``.bin``: e.g. ``pytorch_model.bin``).
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
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
    """The file holds more than a state dict (a training checkpoint): the caller must say
    which entry is the model's. ``suggested`` is the entry that looks like one, if any;
    :meth:`advice` words the fix for the API (``key=``) or the command line (``--key``)."""

    def __init__(self, path: Path, non_tensor: list[str], suggested: str | None) -> None:
        self.path, self.non_tensor, self.suggested = path, non_tensor, suggested
        super().__init__(self.advice())

    def advice(self, *, cli: bool = False) -> str:
        """The message, its fix worded for the API (``key='...'``) or, with ``cli``, for the
        command line (``--key ...``)."""
        if cli:
            arg = f"--key {self.suggested or 'NAME'}"
        else:
            arg = f"key={self.suggested!r}" if self.suggested else "key="
        hint = (
            f"the state dict looks to be under {self.suggested!r}: pass {arg}"
            if self.suggested
            else f"pass {arg} naming the entry that holds the model's state dict"
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
        inner = [k for k in _STATE_DICT_KEYS if k in obj and _is_tensor_dict(obj[k])]
        non_tensor = sorted(str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor))
        raise NeedsKeyError(path, non_tensor, inner[0] if inner else None)
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
    ``'model_state_dict'``).

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
    if suffix not in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{p}: unknown checkpoint suffix {p.suffix!r}. Fix: use .safetensors, or one of "
            f"{', '.join(PICKLE_SUFFIXES)} for torch.save files"
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
    if suffix in PICKLE_SUFFIXES:
        if metadata:
            raise ValueError("metadata is stored in .safetensors files only")
        with atomic_writer(p) as f:
            torch.save(tensors, f)
        return p
    raise ValueError(
        f"{p}: unknown checkpoint suffix {p.suffix!r}; use .safetensors (recommended) or one "
        f"of {', '.join(PICKLE_SUFFIXES)}"
    )


# --------------------------------------------------------------------------------------------
# Training checkpoints: model, optimizer, scheduler and epoch in one torch.save file
# --------------------------------------------------------------------------------------------

#: The entries of a PyTorch training checkpoint, as PyTorch's recipe "Saving and loading a
#: general checkpoint" writes them: ``torch.save({'epoch': ..., 'model_state_dict': ...,
#: 'optimizer_state_dict': ...}, path)``, plus the scheduler's ``state_dict()`` when there is
#: one. ``epoch`` counts the epochs trained (the next one to run, 0-based).
MODEL_KEY = "model_state_dict"
OPTIMIZER_KEY = "optimizer_state_dict"
SCHEDULER_KEY = "scheduler_state_dict"
EPOCH_KEY = "epoch"

_SAVE_FIX = (
    "save it as torch.save({'model_state_dict': model.state_dict(), 'optimizer_state_dict': "
    "optimizer.state_dict(), 'epoch': epoch}, path) (and 'scheduler_state_dict': "
    "scheduler.state_dict() with a scheduler)"
)


def _optimizer_dict_problems(osd: Any) -> list[str]:
    """What keeps ``osd`` from being an ``optimizer.state_dict()``."""
    if not isinstance(osd, Mapping) or set(osd) != {"state", "param_groups"}:
        what = sorted(map(str, osd)) if isinstance(osd, Mapping) else type(osd).__name__
        return [f"{OPTIMIZER_KEY!r} is not an optimizer.state_dict() (it holds {what})"]
    problems = []
    groups = osd["param_groups"]
    if not isinstance(groups, list) or not all(
        isinstance(g, Mapping) and isinstance(g.get("params"), list) for g in groups
    ):
        problems.append(f"{OPTIMIZER_KEY!r}: 'param_groups' is not a list of groups with params")
    state = osd["state"]
    if not isinstance(state, Mapping) or not all(
        isinstance(k, int) and isinstance(v, Mapping) for k, v in state.items()
    ):
        problems.append(f"{OPTIMIZER_KEY!r}: 'state' is not a dict of per-parameter dicts")
    return problems


def read_training_checkpoint(path: StrPath) -> dict[str, Any]:
    """A PyTorch training checkpoint (``.pt``/``.pth``/``.ckpt``/``.bin``), read only with
    ``torch.load(weights_only=True)`` (no pickled code runs) and checked for its entries:
    ``model_state_dict`` (tensors), ``optimizer_state_dict`` (an ``optimizer.state_dict()``),
    optionally ``scheduler_state_dict`` (a dict) and ``epoch`` (an int >= 0); other entries
    (a ``loss``...) are returned as they are. One :class:`CheckpointError` lists every
    problem."""
    p = Path(path)
    if p.suffix.lower() not in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{p}: a training checkpoint is a torch.save file ({', '.join(PICKLE_SUFFIXES)}), "
            f"not {p.suffix or 'a file without suffix'!r}"
        )
    obj = _load_pickle(p)
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{p}: holds a {type(obj).__name__}, not a training checkpoint dict. Fix: {_SAVE_FIX}"
        )
    problems = []
    if MODEL_KEY not in obj:
        problems.append(f"no {MODEL_KEY!r} entry")
    elif not _is_tensor_dict(obj[MODEL_KEY]):
        problems.append(f"{MODEL_KEY!r} is not a state dict of tensors")
    if OPTIMIZER_KEY not in obj:
        problems.append(f"no {OPTIMIZER_KEY!r} entry")
    else:
        problems += _optimizer_dict_problems(obj[OPTIMIZER_KEY])
    if SCHEDULER_KEY in obj and not isinstance(obj[SCHEDULER_KEY], Mapping):
        problems.append(f"{SCHEDULER_KEY!r} is a {type(obj[SCHEDULER_KEY]).__name__}, not a dict")
    epoch = obj.get(EPOCH_KEY)
    if EPOCH_KEY in obj and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
        problems.append(f"{EPOCH_KEY!r} is {epoch!r}, not a count of epochs >= 0")
    if problems:
        lines = "\n  ".join(problems)
        raise CheckpointError(
            f"{p}: not a training checkpoint ({len(problems)} problem(s); it holds "
            f"{sorted(map(str, obj))}):\n  {lines}\nFix: {_SAVE_FIX}"
        )
    return dict(obj)


def _model_problems(sd: Mapping[str, torch.Tensor], model: torch.nn.Module) -> list[str]:
    target = model.state_dict()
    problems = [f"model: missing key {k!r}" for k in target if k not in sd]
    problems += [f"model: unexpected key {k!r}" for k in sd if k not in target]
    for k, v in sd.items():
        if k in target and tuple(v.shape) != tuple(target[k].shape):
            problems.append(f"model: {k!r} has shape {tuple(v.shape)}, {tuple(target[k].shape)}")
        elif k in target and v.dtype != target[k].dtype:
            problems.append(f"model: {k!r} is {v.dtype}, the model holds {target[k].dtype}")
    return problems


# not options: the parameters, and what lr schedulers write into a group (OneCycleLR's bounds)
_GROUP_KEYS_OPTIONAL = {
    "params",
    "param_names",
    "initial_lr",
    "max_lr",
    "min_lr",
    "base_momentum",
    "max_momentum",
}


def _optimizer_problems(osd: Mapping[str, Any], optimizer: torch.optim.Optimizer) -> list[str]:
    kind = type(optimizer).__name__
    groups = osd["param_groups"]
    current = optimizer.param_groups
    if len(groups) != len(current):
        return [f"optimizer: {len(groups)} param groups saved, the {kind} has {len(current)}"]
    problems = []
    params = []
    for g, (saved, now) in enumerate(zip(groups, current, strict=True)):
        have, want = set(saved) - _GROUP_KEYS_OPTIONAL, set(now) - _GROUP_KEYS_OPTIONAL
        if have != want:
            extra, lacking = sorted(have - want), sorted(want - have)
            problems.append(
                f"optimizer param group {g}: the saved group has options {extra} the {kind} "
                f"does not and lacks {lacking}: the state of another optimizer"
            )
        if len(saved["params"]) != len(now["params"]):
            problems.append(
                f"optimizer param group {g}: {len(saved['params'])} parameters saved, the "
                f"{kind}'s group holds {len(now['params'])}"
            )
        params += list(now["params"])
    saved_ids = [i for group in groups for i in group["params"]]
    index = dict(zip(saved_ids, params, strict=False))  # (sizes that differ are named above)
    for i, entries in osd["state"].items():
        p = index.get(i)
        if p is None:
            problems.append(f"optimizer: state for parameter {i}, which no param group holds")
            continue
        for key, value in entries.items():
            if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape != p.shape:
                problems.append(
                    f"optimizer: state {key!r} of parameter {i} has shape {tuple(value.shape)}, "
                    f"the parameter {tuple(p.shape)}"
                )
    return problems


def _scheduler_problems(ckpt: Mapping[str, Any], scheduler: Any) -> list[str]:
    saved = ckpt.get(SCHEDULER_KEY)
    if saved is None and scheduler is None:
        return []
    if scheduler is None:
        return [
            f"the checkpoint holds a scheduler state ({sorted(saved)[:6]}): pass the scheduler "
            f"the run used"
        ]
    kind = type(scheduler).__name__
    if saved is None:
        return [f"the checkpoint holds no {SCHEDULER_KEY!r} for the {kind} given"]
    want = set(scheduler.state_dict())
    if set(saved) != want:
        return [
            f"scheduler: the saved state has {sorted(set(saved) - want)} a {kind} does not and "
            f"lacks {sorted(want - set(saved))}: the state of another scheduler"
        ]
    return []


def load_training_checkpoint(
    path: StrPath,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any = None,
) -> dict[str, Any]:
    """Load a PyTorch training checkpoint (:func:`read_training_checkpoint`) into ``model``,
    ``optimizer`` and ``scheduler``, built as the run built them (classes, sizes, param
    groups), with their ``load_state_dict``.

    Everything is checked first: the model's keys, shapes and dtypes, the optimizer's param
    groups (their count, sizes and options: the state of another optimizer class is named as
    such) and per-parameter state shapes, the scheduler's state; one
    :class:`CheckpointError` lists every problem and nothing is loaded. Returns the
    checkpoint's other entries (``{'epoch': 3, ...}``).
    """
    p = Path(path)
    ckpt = read_training_checkpoint(p)
    problems = _model_problems(ckpt[MODEL_KEY], model)
    problems += _optimizer_problems(ckpt[OPTIMIZER_KEY], optimizer)
    problems += _scheduler_problems(ckpt, scheduler)
    if problems:
        lines = "\n  ".join(problems)
        raise CheckpointError(
            f"{p}: does not fit {type(model).__name__} and its {type(optimizer).__name__} "
            f"({len(problems)} problem(s), nothing was loaded):\n  {lines}\nFix: build the "
            f"model, optimizer and scheduler as the run that saved it did"
        )
    model.load_state_dict(ckpt[MODEL_KEY])
    optimizer.load_state_dict(ckpt[OPTIMIZER_KEY])
    if scheduler is not None:
        scheduler.load_state_dict(ckpt[SCHEDULER_KEY])
    return {k: v for k, v in ckpt.items() if k not in (MODEL_KEY, OPTIMIZER_KEY, SCHEDULER_KEY)}


def save_training_checkpoint(
    path: StrPath,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any = None,
    *,
    epoch: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Save a PyTorch training checkpoint atomically: ``model_state_dict``,
    ``optimizer_state_dict``, ``scheduler_state_dict`` (with a scheduler), ``epoch`` (when
    given) and the ``extra`` entries, with ``torch.save`` to ``.pt``/``.pth``/``.ckpt``/``.bin``.
    torch resumes from it with ``model.load_state_dict(ckpt['model_state_dict'])`` and so on,
    or :func:`load_training_checkpoint`."""
    p = Path(path)
    if p.suffix.lower() not in PICKLE_SUFFIXES:
        raise ValueError(
            f"{p}: a training checkpoint is a torch.save file; name it with one of "
            f"{', '.join(PICKLE_SUFFIXES)}"
        )
    entries: dict[str, Any] = {MODEL_KEY: model.state_dict(), OPTIMIZER_KEY: optimizer.state_dict()}
    if scheduler is not None:
        entries[SCHEDULER_KEY] = scheduler.state_dict()
    if epoch is not None:
        entries[EPOCH_KEY] = int(epoch)
    clash = sorted(set(extra or {}) & set(entries))
    if clash:
        raise ValueError(f"extra entries {clash} would replace the checkpoint's own")
    entries.update(extra or {})
    with atomic_writer(p) as f:
        torch.save(entries, f)
    return p
