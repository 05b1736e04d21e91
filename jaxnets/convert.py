"""Every layout rule between torch-style state dicts (numpy) and Flax NNX models, in one place.

A torch state dict names a tensor by module path and torch attribute (``fc1.weight``,
``bn1.running_var``, ``layers.0.bias``) in torch's layout. A Flax twin uses the same module
names (``model.fc1``, ``model.layers[0]``) and Flax's attribute names and layouts. This module
walks the twin's module tree, finds each layer's rule by its type, and maps in both
directions. One rule per layer type, each with its shapes:

================  ===========================  ======================================
layer             torch key  [torch shape]     Flax attribute  [Flax shape]
================  ===========================  ======================================
nnx.Linear        weight [out, in]             kernel [in, out]         (transpose)
                  bias [out]                   bias [out]
nnx.Conv (2-D)    weight [O, I, kH, kW]        kernel [kH, kW, I, O]    (2, 3, 1, 0)
                  bias [O]                     bias [O]
nnx.Conv (1-D)    weight [O, I, k]             kernel [k, I, O]         (2, 1, 0)
nnx.BatchNorm     weight [C] / bias [C]        scale [C] / bias [C]
                  running_mean / running_var   mean / var (BatchStat)
                  num_batches_tracked []       num_batches_tracked (jaxnets BatchNorm1d)
nnx.LayerNorm     weight [S] / bias [S]        scale [S] / bias [S]     (S: normalized_shape)
nnx.Embed         weight [V, D]                embedding [V, D]
================  ===========================  ======================================

A layer without some of these (``affine=False`` or ``bias=False`` norms, a BatchNorm with
``track_running_stats=False``, ``elementwise_affine=False``, ``bias=False`` convolutions)
has neither the torch keys nor the Flax attributes, as torch's state dict has not; the
jaxnets layers (:mod:`jaxnets.nn`) are subclasses of these nnx types and use their rules.

Loading fails loudly BEFORE anything is written: every missing key, unexpected key, shape
mismatch and dtype mismatch is listed in one :class:`StateDictError`. Round trips are
bit-exact (transposes and copies only; no arithmetic).

No torch here: state dicts are mappings of numpy arrays (``{k: v.numpy() for k, v in
model.state_dict().items()}``); ``torchref.bridge`` does that for torch modules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = [
    "RULES",
    "IncompatibleKeys",
    "ParamSlot",
    "Rule",
    "StateDictError",
    "counter_problem",
    "dtype_problem",
    "load_state_dict",
    "materialize_rng_state",
    "param_slots",
    "register_rule",
    "state_dict",
    "state_to_torch",
    "torch_to_flax_key_map",
]

Array = np.ndarray
Path = tuple[str | int, ...]


def _same(x: Array) -> Array:
    return x


def _t2(x: Array) -> Array:  # Linear: [out, in] <-> [in, out]
    return np.transpose(x)


def _conv_to_flax(w: Array) -> Array:
    """[O, I, kH, kW] -> [kH, kW, I, O] (2-D); [O, I, k] -> [k, I, O] (1-D)."""
    return np.transpose(w, (*range(2, w.ndim), 1, 0))


def _conv_to_torch(k: Array) -> Array:
    """[kH, kW, I, O] -> [O, I, kH, kW] (2-D); [k, I, O] -> [O, I, k] (1-D)."""
    return np.transpose(k, (k.ndim - 1, k.ndim - 2, *range(k.ndim - 2)))


@dataclass(frozen=True)
class Rule:
    """How one torch tensor of a layer maps to one Flax variable of the twin layer.

    ``to_flax``/``to_torch`` must be exact inverses that move data only (transposes), so
    round trips are bit-exact. ``integer`` marks counters stored as int64 in torch.
    """

    torch_name: str
    attr: str
    to_flax: Callable[[Array], Array] = _same
    to_torch: Callable[[Array], Array] = _same
    integer: bool = False


_BN = (
    Rule("weight", "scale"),
    Rule("bias", "bias"),
    Rule("running_mean", "mean"),
    Rule("running_var", "var"),
    Rule("num_batches_tracked", "num_batches_tracked", integer=True),
)

#: layer type -> its rules. Looked up through the MRO, so subclasses (e.g. the
#: jaxnets BatchNorm1d) use their base's rule unless they register their own.
RULES: dict[type, tuple[Rule, ...]] = {
    nnx.Linear: (Rule("weight", "kernel", _t2, _t2), Rule("bias", "bias")),
    nnx.Conv: (Rule("weight", "kernel", _conv_to_flax, _conv_to_torch), Rule("bias", "bias")),
    nnx.BatchNorm: _BN,
    nnx.LayerNorm: (Rule("weight", "scale"), Rule("bias", "bias")),
    nnx.Embed: (Rule("weight", "embedding"),),
}


def register_rule(layer_type: type, rules: tuple[Rule, ...]) -> None:
    """Teach the converter a layer type of your own (or override a built-in one)."""
    RULES[layer_type] = tuple(rules)


class StateDictError(ValueError):
    """A state dict does not fit the model. Lists every problem, by key; nothing was written."""

    def __init__(self, problems: list[str], model: str, fixes: list[str] | None = None) -> None:
        """``problems``: one line each; ``model``: what was loaded into, for the message;
        ``fixes``: what to do, one line each (default: the fixes for loading a mapping with
        :func:`load_state_dict`)."""
        self.problems = problems
        lines = "\n  ".join(problems)
        if fixes is None:
            fixes = []
            if any(p.startswith(("missing key", "unexpected key")) for p in problems):
                fixes.append(
                    "build the model with the config the weights were saved from, or skip "
                    "missing and unexpected keys with strict=False (convert.load_state_dict, "
                    "checkpoint.load_torch_layout)"
                )
            if any(": shape " in p for p in problems):
                fixes.append(
                    "the weights come from a model of other sizes: build it with those sizes "
                    "(a Flax-layout array, e.g. an untransposed kernel, also shows up here)"
                )
            if any(": dtype " in p for p in problems):
                fixes.append("cast the arrays, or build the model with the matching param_dtype")
        fix = "".join(f"\nFix: {f}" for f in fixes)
        super().__init__(
            f"state dict does not fit {model}: {len(problems)} problem(s), nothing was "
            f"written:\n  {lines}{fix}"
        )


class IncompatibleKeys(NamedTuple):
    """Keys skipped by ``load_state_dict(..., strict=False)`` (as torch returns them)."""

    missing_keys: list[str]
    unexpected_keys: list[str]


@dataclass(frozen=True)
class _Slot:
    key: str  # torch key, e.g. "fc1.weight"
    path: Path  # flax path of the variable, e.g. ("fc1", "kernel")
    variable: nnx.Variable
    rule: Rule
    layer: str  # layer type name, for messages


def _rule_for(module: nnx.Module) -> tuple[Rule, ...] | None:
    for cls in type(module).__mro__:
        if cls in RULES:
            return RULES[cls]
    return None


def _children(obj: Any) -> Iterator[tuple[str | int, Any]]:
    """Sub-objects of a module in definition order (torch's state-dict order)."""
    if isinstance(obj, nnx.List | list | tuple):
        yield from enumerate(obj)
    elif isinstance(obj, dict):
        yield from obj.items()
    else:
        for name, value in vars(obj).items():
            if not name.startswith("_"):
                yield name, value


def _walk(obj: Any, path: Path, slots: list[_Slot], unruled: list[str]) -> None:
    if isinstance(obj, nnx.Module):
        rules = _rule_for(obj)
        if rules is not None:
            for rule in rules:
                var = getattr(obj, rule.attr, None)
                if isinstance(var, nnx.Variable):
                    key = ".".join(str(p) for p in (*path, rule.torch_name))
                    slots.append(_Slot(key, (*path, rule.attr), var, rule, type(obj).__name__))
        else:
            for name, value in vars(obj).items():
                if isinstance(value, nnx.Variable):
                    where = ".".join(str(p) for p in (*path, name))
                    unruled.append(f"{where} ({type(obj).__name__}.{name})")
    for name, child in _children(obj):
        if isinstance(child, nnx.Module | nnx.List | list | tuple | dict):
            _walk(child, (*path, name), slots, unruled)


def _slots(model: nnx.Module) -> list[_Slot]:
    """The model's variables in torch key order, each with its rule; fails on unknown layers."""
    slots: list[_Slot] = []
    unruled: list[str] = []
    _walk(model, (), slots, unruled)
    if unruled:
        known = ", ".join(sorted(t.__name__ for t in RULES))
        raise TypeError(
            f"no conversion rule for the variables {unruled} of {type(model).__name__}; "
            f"known layer types: {known}. Register one with "
            f"jaxnets.convert.register_rule(YourLayer, (Rule('weight', 'kernel', ...), ...))"
        )
    # Every Param/BatchStat the model holds must be covered by exactly one rule.
    covered = {id(s.variable) for s in slots}
    leftover = [
        ".".join(map(str, p))
        for p, v in nnx.to_flat_state(nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat)))
        if id(_variable_at(model, p)) not in covered
    ]
    if leftover:
        raise TypeError(
            f"variables {leftover} of {type(model).__name__} are not reachable through layer "
            f"rules (a Variable stored outside a registered layer type?)"
        )
    return slots


def _variable_at(model: nnx.Module, path: Path) -> Any:
    obj: Any = model
    for p in path:
        obj = obj[p] if isinstance(p, int) else getattr(obj, p)
    return obj


def _torch_dtype_name(slot: _Slot) -> np.dtype:
    return np.dtype(np.int64) if slot.rule.integer else np.dtype(slot.variable.dtype)


def _to_numpy(value: Any) -> Array:
    if hasattr(value, "detach"):  # a torch tensor slipped in: accept it without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def state_dict(model: nnx.Module) -> dict[str, Array]:
    """The twin's weights as a torch-named, torch-layout ``{key: numpy array}``.

    Keys and order match the torch original's ``state_dict()``; arrays are fresh copies
    (``num_batches_tracked`` is int64 as in torch).
    """
    out: dict[str, Array] = {}
    for slot in _slots(model):
        value = np.array(slot.variable[...], copy=True)
        arr = np.array(slot.rule.to_torch(value), order="C")
        out[slot.key] = arr.astype(np.int64) if slot.rule.integer else arr
    return out


def state_to_torch(model: nnx.Module, state: nnx.State | Mapping[Any, Any]) -> dict[str, Array]:
    """Convert an nnx ``State`` shaped like the model's params (gradients, optimizer moments)
    to torch names and layout: ``{'fc1.weight': [out, in] array, ...}``.

    Only the paths present in ``state`` are converted (``nnx.grad`` gives Params only).
    """
    flat = {
        tuple(p): (v[...] if isinstance(v, nnx.Variable) else v)
        for p, v in nnx.to_flat_state(state if isinstance(state, nnx.State) else nnx.State(state))
    }
    out: dict[str, Array] = {}
    for slot in _slots(model):
        if slot.path in flat:
            out[slot.key] = np.array(slot.rule.to_torch(np.asarray(flat[slot.path])), order="C")
    return out


class ParamSlot(NamedTuple):
    """One ``nnx.Param`` of a twin: its torch key (``'fc1.weight'``), its nnx path
    (``'fc1.kernel'``) and the layout rule between the two (``rule.to_torch``/``to_flax``)."""

    key: str
    path: str
    rule: Rule


def param_slots(model: nnx.Module) -> list[ParamSlot]:
    """Every ``nnx.Param`` of ``model`` in the order of
    ``jax.tree.leaves(nnx.state(model, nnx.Param))``: the order of a Trainer's
    ``state.params`` and of every optax state over those parameters, so the ``i``-th leaf of
    a gradient or optimizer buffer belongs to ``param_slots(model)[i]``."""
    by_path = {".".join(map(str, s.path)): s for s in _slots(model)}
    out = []
    for path, _ in jax.tree_util.tree_flatten_with_path(nnx.state(model, nnx.Param))[0]:
        # a Param's own field ('.value') is not part of its name (checkpoint names it so too)
        name = jax.tree_util.keystr(path, simple=True, separator=".").removesuffix(".value")
        slot = by_path[name]
        out.append(ParamSlot(slot.key, name, slot.rule))
    return out


def torch_to_flax_key_map(model: nnx.Module) -> dict[str, str]:
    """``{'fc1.weight': 'fc1.kernel', ...}``: where each torch key lives in the twin."""
    return {s.key: ".".join(map(str, s.path)) for s in _slots(model)}


def counter_problem(arr: np.ndarray, stored: np.dtype) -> str | None:
    """Why an integer counter ``arr`` (any shape) cannot go into a variable of integer dtype
    ``stored``, or None if it can.

    torch keeps counters as int64; the twin holds them in its own integer dtype (int32 unless
    x64 is on), so a value past that range would wrap around silently."""
    if not np.issubdtype(arr.dtype, np.integer):
        return f"dtype {arr.dtype}, an integer dtype expected"
    info = np.iinfo(stored)
    if arr.size and (arr.min() < info.min or arr.max() > info.max):
        return (
            f"value {int(arr.max() if arr.max() > info.max else arr.min())} does not fit the "
            f"twin's {stored} counter ({info.min} to {info.max}); enable 64-bit integers with "
            f"jax.config.update('jax_enable_x64', True) before building the twin"
        )
    return None


def dtype_problem(key: str, got: Any, want: Any, where: str) -> str:
    """The problem line for an array of dtype ``got`` where the twin holds ``want``: both
    ways out, casting the array or building the twin in the array's dtype."""
    return (
        f"{key!r}: dtype {got} {where}, {want} expected; cast it (e.g. .astype(np.{want})) or "
        f"build the twin with param_dtype=jnp.{got}"
    )


def _without_layers(key: str) -> str:
    """``'net.layers.0.weight'`` -> ``'net.0.weight'``: an nnx.Sequential key in torch's form."""
    parts = key.split(".")
    return ".".join(
        p
        for i, p in enumerate(parts)
        if not (p == "layers" and i + 1 < len(parts) and parts[i + 1].isdigit())
    )


def load_state_dict(
    model: nnx.Module, state: Mapping[str, Any], *, strict: bool = True
) -> IncompatibleKeys:
    """Write a torch-named, torch-layout mapping of arrays into the twin, in place.

    Every problem is collected first and raised together in a :class:`StateDictError`
    (missing keys, unexpected keys, shape and dtype mismatches); on error the model is left
    untouched. Dtypes must match the twin's exactly (cast explicitly if you mean to convert
    precision); integer counters accept any integer dtype. With ``strict=False`` missing and
    unexpected keys are skipped and returned, as in torch; shape and dtype are still checked.
    """
    if not isinstance(state, Mapping):
        raise TypeError(
            f"state must be a mapping of torch keys to arrays, got {type(state).__name__}; "
            f"for a torch module pass {{k: v.numpy() for k, v in m.state_dict().items()}} "
            f"or use torchref.bridge.torch_to_flax"
        )
    slots = _slots(model)
    by_key = {s.key: s for s in slots}
    missing = [k for k in by_key if k not in state]
    unexpected = [k for k in state if k not in by_key]
    problems: list[str] = []
    if strict:
        problems += [f"missing key {k!r} ({by_key[k].layer})" for k in missing]
        seq = sorted({k for k in missing if _without_layers(k) in set(unexpected)})
        if seq:
            problems.append(
                f"keys such as {seq[0]!r} are torch's {_without_layers(seq[0])!r} with an extra "
                f"'layers.': an nnx.Sequential numbers its children under 'layers', torch's "
                f"nn.Sequential under the attribute itself. Hold them in nnx.List([...]) with "
                f"torch's indices (activations included, as in the nn.Sequential)"
            )
        for k in unexpected:
            hint = ""
            if k.endswith("num_batches_tracked"):
                hint = (
                    " (a plain nnx.BatchNorm keeps no counter; use jaxnets.nn.BatchNorm1d, "
                    "or BatchNorm2d for images)"
                )
            problems.append(f"unexpected key {k!r}{hint}")
    staged: list[tuple[_Slot, Array]] = []
    for key, slot in by_key.items():
        if key not in state:
            continue
        try:
            arr = _to_numpy(state[key])
        except Exception as exc:
            problems.append(f"{key!r}: cannot read as an array ({exc})")
            continue
        expected_shape = slot.rule.to_torch(np.empty(slot.variable.shape, dtype=np.uint8)).shape
        if arr.shape != expected_shape:
            problems.append(
                f"{key!r}: shape {tuple(arr.shape)} in the state dict, "
                f"{tuple(expected_shape)} expected (torch layout) for {slot.layer}"
            )
            continue
        want = _torch_dtype_name(slot)
        if slot.rule.integer:
            problem = counter_problem(arr, np.dtype(slot.variable.dtype))
            if problem:
                problems.append(f"{key!r}: {problem}")
                continue
        elif arr.dtype != want:
            problems.append(dtype_problem(key, arr.dtype, want, "in the state dict"))
            continue
        staged.append((slot, arr))
    if problems:
        raise StateDictError(problems, type(model).__name__)
    for slot, arr in staged:
        value = slot.rule.to_flax(arr)
        # Set the whole value (not var[...] = ...): an abstract twin from nnx.eval_shape
        # holds ShapeDtypeStructs, and loading real weights into it is the cheap way to build
        # a twin whose random initialisation would be thrown away anyway.
        slot.variable.set_value(jnp.asarray(value, dtype=slot.variable.dtype))
    materialize_rng_state(model)
    return IncompatibleKeys(missing, unexpected)


def materialize_rng_state(model: nnx.Module, seed: int = 0) -> nnx.Module:
    """Give concrete values to the random-number streams an ``nnx.eval_shape`` twin holds
    abstractly (a Dropout's key and counter), so that it runs in training mode; returns
    ``model``.

    Loading weights fills Params and BatchNorm statistics, but a stream is no weight: without
    this an abstract twin fails in training mode with a JAX type error. Stream ``i`` (in
    graph order) gets ``fold_in(key(seed), i)`` and a zero counter: a fixed, deterministic
    start (torch's dropout masks come from its own generator, so no JAX key reproduces
    them). Streams that already hold values are left as they are. :func:`load_state_dict`
    calls it."""
    abstract = [
        (path, var)
        for path, var in nnx.to_flat_state(nnx.state(model, nnx.RngState))
        if isinstance(var.get_value(), jax.ShapeDtypeStruct)
    ]
    for i, (path, _) in enumerate(abstract):
        var = _variable_at(model, path)
        if isinstance(var, nnx.RngKey):
            var.set_value(jax.random.fold_in(jax.random.key(seed), i))
        else:
            var.set_value(jnp.zeros(var.shape, var.dtype))
    return model
