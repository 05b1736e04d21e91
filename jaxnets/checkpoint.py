"""Checkpoints that lose nothing: weights in safetensors, whole training runs, atomic writes.

Three kinds of ``.safetensors`` file, each marked in its metadata (``jaxnets_format``):

==========  ==============================================  =================================
kind        keys and layout                                 write / read
==========  ==============================================  =================================
``torch``   torch names and layout                          :func:`save_torch_layout` /
            (``fc1.weight`` ``[out, in]``)                  :func:`load_torch_layout`
``flax``    nnx paths, Flax layout                          :func:`save_flax` / :func:`load_flax`
            (``fc1.kernel`` ``[in, out]``)
``run``     a :class:`~jaxnets.TrainState` and a JSON       :func:`save_run` / :func:`load_run`
            ``meta`` dict
==========  ==============================================  =================================

A torch-layout file is an ordinary safetensors state dict: torch loads it with
``model.load_state_dict(safetensors.torch.load_file(path))``, and a file that torch wrote with
``safetensors.torch.save_file(model.state_dict(), path)`` loads into the twin with
:func:`load_torch_layout`. safetensors holds arrays and a string-to-string header only: reading
one cannot run code (unlike a pickled ``.pt`` file; for those see ``torchref.checkpoint``).

Safety rules every function here keeps:

* Writes are atomic (:func:`atomic_writer`): a temporary file in the same folder, flushed and
  ``fsync``-ed, then renamed over the target. An interrupted save leaves the previous file as
  it was; a crash can at worst leave a ``.<name>.*.tmp`` file behind.
* Reads check everything before touching the model: a missing, truncated or corrupt file, the
  wrong kind of file, or weights that do not fit raise one error naming the file, the cause
  and the fix, and the model keeps its values. Files written here carry a SHA-256 of their
  tensors, so a flipped byte in the data is caught, not loaded.

No torch here: the numpy API of safetensors only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import safetensors.numpy
from flax import nnx

from jaxnets import convert
from jaxnets._files import atomic_write_bytes, atomic_writer

__all__ = [
    "FORMAT_KEY",
    "MODEL_NAME_KEY",
    "TORCH_SAVE_SUFFIXES",
    "CheckpointError",
    "NonFiniteLossError",
    "NonFiniteStateError",
    "atomic_write_bytes",
    "atomic_writer",
    "check_finite_losses",
    "load_flax",
    "load_run",
    "load_run_weights",
    "load_torch_layout",
    "read_metadata",
    "read_run_meta",
    "read_safetensors",
    "save_flax",
    "save_run",
    "save_torch_layout",
    "write_safetensors",
]

StrPath = str | os.PathLike[str]

#: Metadata key naming the kind of a jaxnets file: ``'torch'``, ``'flax'`` or ``'run'``.
FORMAT_KEY = "jaxnets_format"
_VERSION_KEY = "jaxnets_version"
_CLASS_KEY = "jaxnets_model_class"
#: Suffixes of files written by ``torch.save`` (pickles; ``.bin``: e.g. ``pytorch_model.bin``),
#: which ``torchref.checkpoint`` reads with ``torch.load(weights_only=True)``.
TORCH_SAVE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
#: Metadata key holding the registry name of the model a file was saved from (``'lenet'``).
MODEL_NAME_KEY = "jaxnets_model"
_SHA_KEY = "jaxnets_sha256"
_META_KEY = "jaxnets_meta"
_STRUCT_KEY = "jaxnets_structure"
_RESERVED = (
    FORMAT_KEY,
    _VERSION_KEY,
    _CLASS_KEY,
    MODEL_NAME_KEY,
    _SHA_KEY,
    _META_KEY,
    _STRUCT_KEY,
    "format",
)

_LOADERS = {
    "torch": "jaxnets.checkpoint.load_torch_layout",
    "flax": "jaxnets.checkpoint.load_flax",
    "run": "jaxnets.checkpoint.load_run",
}


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, truncated, corrupt or of the wrong kind, or
    does not belong to the model/trainer it is loaded into. The message names the file, the
    cause and the fix; nothing was written to the model."""


class NonFiniteStateError(FloatingPointError):
    """A training state to save holds NaN or infinite values; nothing was written. ``step``
    is ``TrainState.step`` of that state, ``arrays`` the names of the arrays concerned."""

    def __init__(self, message: str, *, step: int, arrays: list[str]) -> None:
        super().__init__(message)
        self.step = step
        self.arrays = arrays


class NonFiniteLossError(FloatingPointError):
    """A training loss was NaN or infinite. ``step`` is the global step (0-based, the value
    of ``TrainState.step`` before that step ran) whose loss was not finite; ``loss`` is it."""

    def __init__(self, message: str, *, step: int, loss: float) -> None:
        super().__init__(message)
        self.step = step
        self.loss = loss


def _version() -> str:
    from jaxnets import __version__

    return __version__


# --------------------------------------------------------------------------------------------
# safetensors with checks
# --------------------------------------------------------------------------------------------


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in sorted key order."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.asarray(arrays[key], order="C")  # (ascontiguousarray makes 0-d arrays 1-d)
        h.update(f"{key}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def write_safetensors(
    path: StrPath, arrays: Mapping[str, Any], metadata: Mapping[str, str] | None = None
) -> Path:
    """Atomically write ``{name: array}`` to a ``.safetensors`` file with string ``metadata``.

    A SHA-256 of the tensors is added to the metadata (``jaxnets_sha256``) so that
    :func:`read_safetensors` detects corrupted data. Arrays may be numpy or jax arrays of any
    shape (0-d included); they are stored C-contiguous, bit for bit.
    """
    if not isinstance(arrays, Mapping):
        raise TypeError(f"arrays must be a mapping of names to arrays, got {type(arrays)}")
    tensors: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        if not isinstance(key, str):
            raise TypeError(f"tensor names must be strings, got {key!r}")
        arr = np.asarray(value, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
        if arr.dtype != _BF16 and (arr.dtype == object or arr.dtype.kind not in "biuf"):
            raise TypeError(
                f"cannot store {key!r} of dtype {arr.dtype} in safetensors; numeric arrays only "
                f"(bool, integers, float16/32/64, bfloat16)"
            )
        tensors[key] = arr
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta[_SHA_KEY] = _digest(tensors)
    data = safetensors.numpy.save(tensors, metadata=meta)
    return atomic_write_bytes(path, data)


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(
            f"{path}: no such file; check the path (saved checkpoints are written with "
            f"jaxnets.checkpoint.save_*)"
        ) from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file; pass a file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc


def _sniff(buf: bytes) -> str:
    """A hint about what a file that is not safetensors might be."""
    if buf[:4] == b"PK\x03\x04":
        return (
            " It looks like a torch.save zip archive (.pt/.pth): load it with "
            "torchref.checkpoint.load_torch_file, which refuses pickled code"
        )
    if buf[:1] == b"\x80":
        return (
            " It looks like a Python pickle (a legacy torch .pt file?): load it with "
            "torchref.checkpoint.load_torch_file, which refuses pickled code"
        )
    if buf[:2] == b"\x1f\x8b":
        return " It looks gzipped: decompress it first"
    return ""


def _parse_header(buf: bytes, path: Path) -> dict[str, Any]:
    """Check the safetensors framing of ``buf`` and return its JSON header (not the data).

    Layout (safetensors spec, huggingface/safetensors README): 8-byte little-endian header
    length ``n``, ``n`` bytes of JSON, then the tensor data, exactly covered by the
    ``data_offsets`` of the header entries.
    """
    fix = "restore it from a backup or save it again"
    if len(buf) < 8:
        raise CheckpointError(
            f"{path}: truncated or not a safetensors file: {len(buf)} bytes, a safetensors "
            f"file starts with an 8-byte header length.{_sniff(buf)} Fix: {fix}"
        )
    (n,) = struct.unpack("<Q", buf[:8])
    if n > 100_000_000 or (n > len(buf) - 8 and buf[8:9] != b"{"):
        raise CheckpointError(
            f"{path}: not a safetensors file (header length field {n} is not plausible)."
            f"{_sniff(buf)} Fix: check that the path points at a .safetensors file, or {fix}"
        )
    if 8 + n > len(buf):
        raise CheckpointError(
            f"{path}: truncated: the header says {n} header bytes, the file has "
            f"{len(buf) - 8} after the length field (an interrupted copy or download?). "
            f"Fix: {fix}"
        )
    try:
        header = json.loads(buf[8 : 8 + n].decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        end = 0
        for key, entry in header.items():
            if key == "__metadata__":
                continue
            start, stop = entry["data_offsets"]
            end = max(end, int(stop))
            if not 0 <= int(start) <= int(stop):
                raise ValueError(f"bad data_offsets for {key!r}")
    except (UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(
            f"{path}: corrupt safetensors header ({exc}).{_sniff(buf)} Fix: {fix}"
        ) from None
    have = len(buf) - 8 - n
    if have < end:
        raise CheckpointError(
            f"{path}: truncated: the header describes {end} bytes of tensor data, the file "
            f"holds {have} (an interrupted copy or download?). Fix: {fix}"
        )
    if have > end:
        raise CheckpointError(
            f"{path}: corrupt: {have - end} bytes after the last tensor. Fix: {fix}"
        )
    return header


_BF16 = np.dtype(ml_dtypes.bfloat16)
# safetensors' dtype names (its format spec) for the dtypes write_safetensors stores
_SAFETENSORS_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype(np.uint8),
    "I8": np.dtype(np.int8),
    "U16": np.dtype(np.uint16),
    "I16": np.dtype(np.int16),
    "F16": np.dtype(np.float16),
    "BF16": _BF16,
    "U32": np.dtype(np.uint32),
    "I32": np.dtype(np.int32),
    "F32": np.dtype(np.float32),
    "U64": np.dtype(np.uint64),
    "I64": np.dtype(np.int64),
    "F64": np.dtype(np.float64),
}


def _load_with_bfloat16(buf: bytes, header: dict[str, Any]) -> dict[str, np.ndarray]:
    """Decode a safetensors file holding bfloat16 tensors, which ``safetensors.numpy.load``
    cannot (numpy has no bfloat16; ``ml_dtypes``, a dependency of JAX, gives it). The framing
    was checked by :func:`_parse_header`; each tensor's byte count is checked here."""
    (n,) = struct.unpack("<Q", buf[:8])
    out = {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(entry.get("dtype"))
        if dtype is None:
            raise CheckpointError(f"{key!r} has dtype {entry.get('dtype')!r}, not one stored here.")
        shape = tuple(int(d) for d in entry["shape"])
        start, stop = (int(o) for o in entry["data_offsets"])
        count = math.prod(shape)
        if stop - start != count * dtype.itemsize:
            raise CheckpointError(
                f"corrupt: {key!r} covers {stop - start} bytes, its shape {list(shape)} of "
                f"{dtype.name} needs {count * dtype.itemsize}."
            )
        data = np.frombuffer(buf, dtype=dtype, count=count, offset=8 + n + start)
        out[key] = data.reshape(shape).copy()
    return out


def read_safetensors(path: StrPath) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read and check a ``.safetensors`` file: ``({name: array}, metadata)``.

    The file is read once, its framing checked (truncation, corrupt header, trailing bytes),
    decoded by safetensors, and, when it carries a ``jaxnets_sha256``, its tensors hashed
    and compared. Raises :class:`CheckpointError` naming the file, the cause and the fix.
    """
    p = Path(path)
    buf = _read_file(p)
    header = _parse_header(buf, p)
    metadata = header.get("__metadata__") or {}
    try:
        if any(isinstance(e, dict) and e.get("dtype") == "BF16" for e in header.values()):
            arrays = _load_with_bfloat16(buf, header)
        else:
            arrays = safetensors.numpy.load(buf)
    except CheckpointError as exc:
        raise CheckpointError(
            f"{p}: {exc} Fix: restore it from a backup or save it again"
        ) from None
    except Exception as exc:  # safetensors raises its own SafetensorError (and others)
        raise CheckpointError(
            f"{p}: safetensors cannot decode the file ({exc}); restore it from a backup or "
            f"save it again"
        ) from None
    want = metadata.get(_SHA_KEY)
    if want is not None and _digest(arrays) != want:
        raise CheckpointError(
            f"{p}: corrupt: the tensor data does not match the SHA-256 recorded when it was "
            f"saved (bit rot or a damaged copy); restore it from a backup or save it again"
        )
    return arrays, dict(metadata)


def read_metadata(path: StrPath) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` file (``jaxnets_format``, ``jaxnets_version``,
    ``jaxnets_model_class``, ... for files written here), after the same checks as a load."""
    return read_safetensors(path)[1]


def _check_kind(path: Path, metadata: Mapping[str, str], want: str) -> None:
    """Refuse a jaxnets file of another kind, naming the loader that reads it."""
    kind = metadata.get(FORMAT_KEY)
    if kind is None or kind == want:
        return
    described = {
        "torch": "weights in torch names and layout",
        "flax": "weights in Flax layout (nnx paths)",
        "run": "a whole training run (parameters, optimizer state, step, loop position)",
    }
    raise CheckpointError(
        f"{path}: this file holds {described.get(kind, repr(kind))} (jaxnets_format={kind!r}), "
        f"not {described[want]}. Fix: read it with {_LOADERS.get(kind, 'the matching loader')}"
    )


def _user_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(
                f"metadata must map str to str (safetensors stores strings only), got "
                f"{k!r}: {type(v).__name__}; json.dumps other values first"
            )
        if k in _RESERVED:
            raise ValueError(f"metadata key {k!r} is reserved by jaxnets; use another name")
        out[k] = v
    return out


def _check_model(model: Any, fn: str) -> None:
    """``TypeError`` unless ``model`` is an NNX module (``fn``'s second argument)."""
    if isinstance(model, nnx.Module):
        return
    swapped = isinstance(model, str | os.PathLike)
    raise TypeError(
        f"{fn}(path, model): model must be an nnx.Module, got {type(model).__name__}"
        + ("; the arguments look swapped: the path comes first" if swapped else "")
    )


def _model_class(model: nnx.Module) -> str:
    return type(model).__name__


def _model_metadata(model: nnx.Module) -> dict[str, str]:
    """What every file written here records about the model it was saved from: its class,
    and its registry name when it has one (``jaxnets_model``; the command reads it)."""
    from jaxnets.registry import model_name

    name = model_name(model)
    return {_CLASS_KEY: _model_class(model), **({MODEL_NAME_KEY: name} if name else {})}


def _saved_from(metadata: Mapping[str, str]) -> str:
    cls = metadata.get(_CLASS_KEY)
    return f" (the file was saved from a {cls})" if cls else ""


def _reraise_with_fix(
    exc: convert.StateDictError,
    path: Path,
    model: nnx.Module,
    meta: Mapping[str, str],
    loader: str,
) -> convert.StateDictError:
    """A StateDictError for a file read by ``loader`` (``'load_torch_layout'``, which takes
    ``strict=False``, or ``'load_flax'``): names the file, and says how to fix it."""
    where = f"{_model_class(model)} from {path}{_saved_from(meta)}"
    problems = exc.problems
    fixes = []
    if any(p.startswith(("missing key", "unexpected key")) for p in problems):
        fixes.append(
            "build the model with the architecture and config the file was saved from"
            + (
                ", or pass strict=False to load_torch_layout to skip missing and unexpected keys"
                if loader == "load_torch_layout"
                else ""
            )
        )
    if any(": shape " in p for p in problems):
        fixes.append(
            "the file holds a model of other sizes: build the model with the architecture and "
            "config the file was saved from (the shapes above give the sizes)"
        )
    if any(": dtype " in p for p in problems):  # as StateDictError's own fixes tell them
        fixes.append("build the model with the file's param_dtype (named above), or cast it")
    return convert.StateDictError(problems, where, fixes)


# --------------------------------------------------------------------------------------------
# Weights: torch layout
# --------------------------------------------------------------------------------------------


def save_torch_layout(
    path: StrPath, model: nnx.Module, *, metadata: Mapping[str, str] | None = None
) -> Path:
    """Save the twin's weights as a torch state dict in ``.safetensors`` (atomic).

    Keys and layouts are torch's (``fc1.weight [out, in]``, ``conv1.weight [O, I, kH, kW]``,
    BatchNorm ``running_mean``...; :mod:`jaxnets.convert`), so torch loads it with
    ``model.load_state_dict(safetensors.torch.load_file(path))``. ``metadata``: extra string
    fields (e.g. the registry name and config) stored in the header.
    """
    _check_model(model, "save_torch_layout")
    arrays = convert.state_dict(model)
    meta = _user_metadata(metadata)
    meta.update(
        {
            "format": "pt",  # the key Hugging Face transformers reads in from_pretrained
            FORMAT_KEY: "torch",
            _VERSION_KEY: _version(),
            **_model_metadata(model),
        }
    )
    return write_safetensors(path, arrays, meta)


def load_torch_layout(path: StrPath, model: nnx.Module, *, strict: bool = True) -> None:
    """Load a torch-layout ``.safetensors`` state dict into the twin, in place.

    Accepts files from :func:`save_torch_layout` and from torch
    (``safetensors.torch.save_file(model.state_dict(), path)``). The file is checked
    (framing, checksum, kind) and every key, shape and dtype is checked against the model
    before anything is written: :class:`CheckpointError` for a bad file,
    :class:`~jaxnets.convert.StateDictError` listing every mismatch; either way the model
    keeps its values. ``strict=False`` skips missing/unexpected keys as in torch.
    """
    _check_model(model, "load_torch_layout")
    p = Path(path)
    arrays, meta = read_safetensors(p)
    _check_kind(p, meta, "torch")
    try:
        convert.load_state_dict(model, arrays, strict=strict)
    except convert.StateDictError as exc:
        raise _reraise_with_fix(exc, p, model, meta, "load_torch_layout") from None


# --------------------------------------------------------------------------------------------
# Weights: Flax layout
# --------------------------------------------------------------------------------------------


def _flax_variables(model: nnx.Module) -> dict[str, nnx.Variable]:
    """Every Variable of the model by dotted nnx path (``fc1.kernel``, ``layers.0.bias``)."""
    out: dict[str, nnx.Variable] = {}
    for path, var in nnx.to_flat_state(nnx.state(model)):
        key = ".".join(map(str, path))
        value = var.get_value() if isinstance(var, nnx.Variable) else var
        dtype = value.dtype if hasattr(value, "dtype") else jnp.asarray(value).dtype
        if jnp.issubdtype(dtype, jax.dtypes.prng_key):
            raise TypeError(
                f"{key} holds a PRNG key ({type(var).__name__}); save_flax stores arrays only. "
                f"Split the key out (nnx.split(model, nnx.RngState, ...)) and save its "
                f"jax.random.key_data separately"
            )
        out[key] = var
    return out


def save_flax(
    path: StrPath, model: nnx.Module, *, metadata: Mapping[str, str] | None = None
) -> Path:
    """Save every Variable of the twin (Params and BatchNorm statistics) by nnx path, in Flax
    layout (``fc1.kernel [in, out]``), to ``.safetensors`` (atomic).

    The header records ``jaxnets_format='flax'``, the jaxnets version and the model class, so
    that :func:`load_torch_layout` refuses it with a clear message and :func:`load_flax` knows
    what it reads. ``metadata``: extra string fields stored in the header.
    """
    _check_model(model, "save_flax")
    arrays = {k: np.asarray(v[...]) for k, v in _flax_variables(model).items()}
    meta = _user_metadata(metadata)
    meta.update(
        {
            "format": "flax",
            FORMAT_KEY: "flax",
            _VERSION_KEY: _version(),
            **_model_metadata(model),
        }
    )
    return write_safetensors(path, arrays, meta)


def load_flax(path: StrPath, model: nnx.Module) -> None:
    """Load a file written by :func:`save_flax` into ``model``, in place.

    Every key, shape and dtype must match the model's Variables exactly (integer counters
    accept any integer dtype); all mismatches are reported together in a
    :class:`~jaxnets.convert.StateDictError` and nothing is written. A torch-layout or run
    file gets a :class:`CheckpointError` naming the loader to use.
    """
    _check_model(model, "load_flax")
    p = Path(path)
    arrays, meta = read_safetensors(p)
    _check_kind(p, meta, "flax")
    keys = set(arrays)
    torch_keys = set(convert.torch_to_flax_key_map(model))
    if (
        meta.get(FORMAT_KEY) is None
        and keys
        and keys <= torch_keys
        and not keys <= set(_flax_variables(model))
    ):
        raise CheckpointError(
            f"{p}: these are weights in torch names and layout (e.g. {sorted(arrays)[0]!r}), "
            f"not Flax layout. Fix: read it with jaxnets.checkpoint.load_torch_layout"
        )
    _load_by_path(p, arrays, meta, model, "load_flax")


def _load_by_path(
    p: Path,
    arrays: Mapping[str, np.ndarray],
    meta: Mapping[str, str],
    model: nnx.Module,
    loader: str,
) -> None:
    """Write ``{nnx path: array}`` into ``model``'s Variables after checking every key, shape
    and dtype (all problems in one :class:`~jaxnets.convert.StateDictError`, nothing
    written)."""
    variables = _flax_variables(model)
    problems = [f"missing key {k!r}" for k in variables if k not in arrays]
    problems += [f"unexpected key {k!r}" for k in arrays if k not in variables]
    staged: list[tuple[nnx.Variable, np.ndarray]] = []
    for key, var in variables.items():
        if key not in arrays:
            continue
        arr = arrays[key]
        want_dtype = np.dtype(var.dtype)  # var.shape/.dtype: also for an nnx.eval_shape twin
        if arr.shape != tuple(var.shape):
            problems.append(f"{key!r}: shape {arr.shape} in the file, {tuple(var.shape)} expected")
        elif np.issubdtype(want_dtype, np.integer):
            problem = convert.counter_problem(arr, want_dtype)
            if problem:
                problems.append(f"{key!r}: {problem}")
            else:
                staged.append((var, arr))
        elif arr.dtype != want_dtype:
            problems.append(convert.dtype_problem(key, arr.dtype, want_dtype, "in the file"))
        else:
            staged.append((var, arr))
    if problems:
        exc = convert.StateDictError(problems, _model_class(model))
        raise _reraise_with_fix(exc, p, model, meta, loader) from None
    for var, arr in staged:
        # the whole value, as convert.load_state_dict sets it: an abstract twin from
        # nnx.eval_shape holds ShapeDtypeStructs, which cannot be written into
        var.set_value(jnp.asarray(arr, dtype=var.dtype))


# --------------------------------------------------------------------------------------------
# Whole training runs
# --------------------------------------------------------------------------------------------


def _leaf_signature(leaf: Any) -> str:
    return f"{np.dtype(leaf.dtype).name}{list(leaf.shape)}"


def _leaf_names(tree: Any) -> list[str]:
    """Dotted path of every leaf (``fc1.kernel``, ``0.mu.3``), in ``jax.tree.leaves`` order."""
    names = []
    for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = jax.tree_util.keystr(path, simple=True, separator=".")
        names.append(name.removesuffix(".value"))
    return names


def _run_structure(trainer: Any, state: Any) -> dict[str, Any]:
    """What a run file must agree on with the trainer: tree structures, and every leaf's
    name, dtype and shape (``'fc1.kernel: float32[784, 128]'``)."""

    def describe(tree: Any) -> list[str]:
        leaves = jax.tree.leaves(tree)
        return [
            f"{n}: {_leaf_signature(a)}" for n, a in zip(_leaf_names(tree), leaves, strict=True)
        ]

    return {
        "params": describe(trainer.params_state(state)),
        "rest": describe(trainer.rest_state(state)),
        "opt_state_tree": str(jax.tree.structure(state.opt_state)),
        "opt_state": describe(state.opt_state),
        "step": _leaf_signature(state.step),
    }


def save_run(path: StrPath, trainer: Any, state: Any, *, meta: Mapping[str, Any]) -> Path:
    """Save a whole training run atomically: ``state`` (a :class:`~jaxnets.TrainState`:
    parameters, optimizer state, BatchNorm statistics, step) and ``meta``.

    ``meta`` is a JSON-serialisable dict of what the loop needs to continue exactly: epoch,
    position within the epoch, seed, RNG states (``np.random.Generator.bit_generator.state``
    is JSON-ready; a JAX key as ``jax.random.key_data(key).tolist()``), settings. It is
    checked before anything is written. Save only states whose losses were finite
    (:func:`check_finite_losses` first), so a NaN never replaces the last good run; the state
    itself is checked too (:class:`NonFiniteStateError`, nothing written), since a step's loss
    is computed before its update: finite losses do not prove the state after the last
    update finite.
    """
    try:
        meta_json = json.dumps(dict(meta), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"save_run meta must be JSON-serialisable (dict of str, numbers, lists, dicts; "
            f"no NaN): {exc}. Convert arrays with .tolist() and numpy scalars with int()/"
            f"float(); nothing was written"
        ) from None
    leaves = jax.tree.leaves(state.opt_state)
    arrays: dict[str, np.ndarray] = {"step": np.asarray(jax.device_get(state.step))}
    for group, items in (("params", state.params), ("rest", state.rest), ("opt_state", leaves)):
        for i, a in enumerate(items):
            arrays[f"{group}.{i}"] = np.asarray(jax.device_get(a))
    bad = [
        k
        for k, a in arrays.items()
        if (a.dtype.kind in "fc" or a.dtype == _BF16) and not np.isfinite(a).all()
    ]
    structure = _run_structure(trainer, state)  # also written to the header below
    if bad:
        names = {
            f"{group}.{i}": entry.partition(":")[0]
            for group in ("params", "rest", "opt_state")
            for i, entry in enumerate(structure[group])
        }

        def named(k: str) -> str:
            return f"{k} ({names[k]})" if k in names else k

        step = int(arrays["step"])
        raise NonFiniteStateError(
            f"the state at step {step} holds NaN or inf in {', '.join(map(named, bad[:6]))}"
            f"{' and more' if len(bad) > 6 else ''}: nothing was written to {path}. The last "
            f"update diverged (a step's loss is computed before its update, so its loss could "
            f"still be finite). Fix: resume from the last run saved there, if any, with a "
            f"lower learning rate or gradient clipping (jaxnets.optim.clip_grad_norm)",
            step=step,
            arrays=bad,
        )
    metadata = {
        FORMAT_KEY: "run",
        _VERSION_KEY: _version(),
        **_model_metadata(trainer.model),
        _STRUCT_KEY: json.dumps(structure, sort_keys=True),
        _META_KEY: meta_json,
    }
    return write_safetensors(path, arrays, metadata)


def _run_header(p: Path, metadata: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(structure, meta)`` from a run file's header; :class:`CheckpointError` for a file
    of another kind or a damaged header."""
    _check_kind(p, metadata, "run")
    if metadata.get(FORMAT_KEY) != "run":
        raise CheckpointError(
            f"{p}: not a training-run file (no jaxnets_format='run' in its header). Fix: pass "
            f"a file written by jaxnets.checkpoint.save_run; weights go through load_flax or "
            f"load_torch_layout"
        )
    try:
        return json.loads(metadata[_STRUCT_KEY]), json.loads(metadata[_META_KEY])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(
            f"{p}: corrupt run header ({exc}); restore it from a backup or start a new run"
        ) from None


def read_run_meta(path: StrPath) -> dict[str, Any]:
    """The ``meta`` a run file was saved with (:func:`save_run`: epoch, settings, ...),
    after the same file checks as :func:`load_run`, without a trainer: e.g. to check that
    a run about to be resumed was started with the same settings."""
    p = Path(path)
    return _run_header(p, read_metadata(p))[1]


def load_run_weights(path: StrPath, model: nnx.Module) -> dict[str, Any]:
    """Load the trained weights of a run file (:func:`save_run`) into ``model``, in place:
    its parameters and BatchNorm statistics, by nnx path; the optimizer state and the step
    stay in the file. Returns the run's ``meta`` (its config names the model and settings).

    No trainer is needed, so a run saved by ``jaxnets train --checkpoint`` can be exported
    with :func:`save_flax`, :func:`save_torch_layout` or ``jaxnets convert``. Every key,
    shape and dtype is checked first, as :func:`load_flax` checks them; nothing is written
    when anything does not fit.
    """
    _check_model(model, "load_run_weights")
    p = Path(path)
    arrays, metadata = read_safetensors(p)
    structure, meta = _run_header(p, metadata)
    named: dict[str, np.ndarray] = {}
    for group in ("params", "rest"):
        for i, entry in enumerate(structure.get(group, [])):
            if f"{group}.{i}" not in arrays:
                raise CheckpointError(
                    f"{p}: corrupt run file: tensor '{group}.{i}' is missing; restore it from "
                    f"a backup"
                )
            named[entry.partition(":")[0]] = arrays[f"{group}.{i}"]
    _load_by_path(p, named, metadata, model, "load_run_weights")
    return meta


def load_run(path: StrPath, trainer: Any) -> tuple[Any, dict[str, Any]]:
    """Restore a run saved by :func:`save_run`: ``(state, meta)``.

    ``trainer`` must be built like the one that saved it (same model architecture, dtypes and
    optimizer): the parameter, statistics and optimizer-state structure and every leaf's shape
    and dtype are compared with ``trainer.init()``'s, and a mismatch raises
    :class:`CheckpointError` listing the differences. Continuing from the returned state with
    the same data order gives bit-identical results to a run that was never interrupted.
    """
    from jaxnets.training.trainer import TrainState

    p = Path(path)
    arrays, metadata = read_safetensors(p)
    saved, meta = _run_header(p, metadata)
    template = jax.eval_shape(trainer.init)
    expected = _run_structure(trainer, template)
    problems = []
    for part in ("params", "rest", "opt_state", "step"):
        s, e = saved.get(part), expected[part]
        if s == e:
            continue
        if isinstance(s, list) and isinstance(e, list) and len(s) == len(e):
            pairs = enumerate(zip(s, e, strict=True))
            diff = [f"saved {a}, expected {b}" for _, (a, b) in pairs if a != b]
            more = f" (and {len(diff) - 3} more)" if len(diff) > 3 else ""
            problems.append(f"{part}: {'; '.join(diff[:3])}{more}")
        elif isinstance(s, list) and isinstance(e, list):
            problems.append(f"{part}: {len(s)} arrays saved, this trainer has {len(e)}")
        else:
            problems.append(f"{part}: saved {s}, this trainer has {e}")
    if saved.get("opt_state_tree") != expected["opt_state_tree"]:
        problems.append(
            f"optimizer state structure: saved {saved.get('opt_state_tree')}, this trainer has "
            f"{expected['opt_state_tree']}"
        )
    if problems:
        cls = metadata.get(_CLASS_KEY) or "?"
        raise CheckpointError(
            f"{p}: this run was saved from a different model or optimizer (saved model class "
            f"{cls}):\n  " + "\n  ".join(problems) + "\nFix: build the model and optimizer "
            "with the settings the run was started with (see its meta), or start a new run"
        )

    def take(group: str, n: int) -> list[jax.Array]:
        return [jnp.asarray(arrays[f"{group}.{i}"]) for i in range(n)]

    try:
        params = take("params", len(template.params))
        rest = take("rest", len(template.rest))
        opt_leaves = take("opt_state", len(jax.tree.leaves(template.opt_state)))
        step = jnp.asarray(arrays["step"])
    except KeyError as exc:
        raise CheckpointError(
            f"{p}: corrupt run file: tensor {exc} is missing; restore it from a backup"
        ) from None
    opt_state = jax.tree.unflatten(jax.tree.structure(template.opt_state), opt_leaves)
    return TrainState(params, opt_state, rest, step), meta


# --------------------------------------------------------------------------------------------
# NaN / inf
# --------------------------------------------------------------------------------------------


def check_finite_losses(losses: Any, first_step: int) -> None:
    """Raise :class:`NonFiniteLossError` at the first NaN or infinite loss.

    ``losses``: one loss (scalar) or the ``(steps,)`` losses of ``Trainer.run_epoch``;
    ``first_step``: the global step of ``losses[0]`` (``int(state.step)`` before the call).
    The error's ``step`` is ``first_step + i`` for the first bad ``losses[i]``. Call it after
    each step or epoch and BEFORE saving, so a diverged state never overwrites a good
    checkpoint.
    """
    arr = np.atleast_1d(np.asarray(jax.device_get(losses)))
    if arr.ndim != 1:
        raise ValueError(f"losses must be a scalar or 1-D (steps,), got shape {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size == 0:
        return
    i = int(bad[0])
    step = int(first_step) + i
    value = float(arr[i])
    kind = "NaN" if math.isnan(value) else f"{value}"
    raise NonFiniteLossError(
        f"the training loss is {kind} at step {step} ({bad.size} of {arr.size} steps in this "
        f"call are not finite); the parameters after it are not usable. Fix: resume from the "
        f"last checkpoint saved before step {step} with a lower learning rate or gradient "
        f"clipping (jaxnets.optim.clip_grad_norm), and check the inputs and targets for "
        f"NaN/inf and, for cross-entropy, class labels outside 0..C-1 (a jitted loss is nan "
        f"for them instead of raising)",
        step=step,
        loss=value,
    )
