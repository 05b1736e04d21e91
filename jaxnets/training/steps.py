"""Pieces for training loops written by hand, as the tutorials write them in torch.

:class:`jaxnets.Trainer` is the fast path (one jitted step, scan-fused epochs). The
tutorials also train "by hand"; these are the JAX spellings of what they do:

=============================================  ==============================================
torch                                          jaxnets
=============================================  ==============================================
``net.zero_grad(); loss.backward()``           ``loss, grads = trainer.loss_and_grad(state,
                                               x, y)``: gradients are fresh values, there is
                                               no buffer to clear
``for f in net.parameters():``                 ``params = sgd_update(params, grads, lr)``
``    f.data.sub_(f.grad.data * lr)``
``loss.backward()`` again without              ``grads = accumulate(grads, more_grads)``:
``zero_grad()`` (``.grad`` accumulates)        the sum torch forms, made explicit
``optimizer.step()`` on accumulated grads      ``trainer.apply_gradients(state, grads)``
``optimizer.state[p]['exp_avg']`` ...          ``optimizer_state_to_torch(model, opt_state,
                                               params)['fc1.weight']['exp_avg']``
``optimizer.load_state_dict(torch_state)``     ``optimizer_state_from_torch(model,
                                               tx.init(params), params, torch_state)``
"did my step recompile?"                       ``with count_compiles() as c: ...``
=============================================  ==============================================

Parameter and gradient trees are any matching pytrees: the :class:`~jaxnets.Trainer`'s
flat lists of arrays, or ``nnx.State``\\s from ``nnx.split``/``nnx.grad``. No torch here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxnets import convert

__all__ = [
    "TORCH_STATE_NAMES",
    "CompileCounter",
    "accumulate",
    "count_compiles",
    "optimizer_state_from_torch",
    "optimizer_state_to_torch",
    "sgd_update",
]

Tree = TypeVar("Tree")


def _check_same_structure(a: Any, b: Any, what_a: str, what_b: str, fn: str) -> None:
    """Raise a ValueError naming the first difference between two trees of arrays."""
    sa, sb = jax.tree.structure(a), jax.tree.structure(b)
    if sa != sb:
        raise ValueError(
            f"{fn}: {what_a} and {what_b} have different tree structures ({sa.num_leaves} vs "
            f"{sb.num_leaves} leaves): {sa} vs {sb}. Pass trees of the same model, e.g. "
            "state.params with the grads of trainer.loss_and_grad(state, x, y)."
        )
    for i, (x, y) in enumerate(zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)):
        if jnp.shape(x) != jnp.shape(y):
            raise ValueError(
                f"{fn}: leaf {i} has shape {jnp.shape(x)} in {what_a} but {jnp.shape(y)} in "
                f"{what_b}; the trees must belong to the same model."
            )


def sgd_update(params: Tree, grads: Tree, lr: float | jax.Array) -> Tree:
    """The tutorials' hand-written update ``p -= lr * grad`` for every parameter.

    torch (tutorial 003)::

        for f in net.parameters():
            f.data.sub_(f.grad.data * learning_rate)

    is ``params = sgd_update(params, grads, learning_rate)``: per leaf ``p - g * lr`` (the
    product is rounded first, then subtracted, as ``sub_`` of the product does), in the
    parameter's dtype. ``params`` and ``grads`` are matching trees of arrays of any shapes;
    returns a new tree (JAX arrays are immutable). Jit-compatible.
    """
    _check_same_structure(params, grads, "params", "grads", "sgd_update")
    return jax.tree.map(lambda p, g: (p - g * lr).astype(jnp.result_type(p)), params, grads)


def accumulate(acc: Tree | None, grads: Tree) -> Tree:
    """Add ``grads`` into ``acc`` leaf by leaf: what torch's ``backward()`` does to ``.grad``.

    torch adds every new gradient into ``param.grad`` until ``zero_grad()`` clears it
    (tutorial 003: "otherwise it will gradually accumulate"). In JAX gradients are returned
    values, so accumulation is explicit::

        acc = None                                   # torch: after zero_grad(set_to_none=True)
        for x, y in micro_batches:
            _, g = trainer.loss_and_grad(state, x, y)
            acc = accumulate(acc, g)                 # torch: loss.backward()
        state = trainer.apply_gradients(state, acc)  # torch: optimizer.step()

    ``acc`` of ``None`` (torch's ``.grad`` before the first backward) returns ``grads``.
    Trees of any matching structure and shapes; returns a new tree. Jit-compatible.
    """
    if acc is None:
        return grads
    _check_same_structure(acc, grads, "acc", "grads", "accumulate")
    return jax.tree.map(jnp.add, acc, grads)


# --------------------------------------------------------------------------------------------
# Optimizer state in torch's names and layout, both ways.
# --------------------------------------------------------------------------------------------

#: (optax/jaxnets state class name, field) -> torch's ``optimizer.state[p]`` key.
#: torch names from ``torch/optim/{adam,rmsprop,sgd,adagrad}.py``. The count of an lr schedule
#: (``optax.scale_by_schedule``, which the builders use when ``lr`` is a schedule) is the
#: optimizer's step count, torch's ``step``: the only count RMSprop and Adagrad states hold.
TORCH_STATE_NAMES: dict[tuple[str, str], str] = {
    ("ScaleByAdamState", "count"): "step",
    ("ScaleByAdamState", "mu"): "exp_avg",
    ("ScaleByAdamState", "nu"): "exp_avg_sq",
    ("TorchAmsgradState", "count"): "step",
    ("TorchAmsgradState", "exp_avg"): "exp_avg",
    ("TorchAmsgradState", "exp_avg_sq"): "exp_avg_sq",
    ("TorchAmsgradState", "max_exp_avg_sq"): "max_exp_avg_sq",
    ("ScaleByRmsState", "nu"): "square_avg",
    ("ScaleByRStdDevState", "mu"): "grad_avg",
    ("ScaleByRStdDevState", "nu"): "square_avg",
    ("TraceState", "trace"): "momentum_buffer",
    ("TorchMomentumState", "momentum_buffer"): "momentum_buffer",
    ("TorchAdagradState", "sum"): "sum",
    ("ScaleByScheduleState", "count"): "step",
}


def _is_masked(x: Any) -> bool:
    return isinstance(x, optax.MaskedNode)


def _is_state(x: Any) -> bool:
    """An optax state: a NamedTuple (``optax.MaskedNode``, a placeholder, is none)."""
    return isinstance(x, tuple) and hasattr(x, "_fields") and not _is_masked(x)


def _states(tree: Any) -> Iterator[Any]:
    """Every optax state (NamedTuple) in an optimizer state, outermost first, in order."""
    if _is_state(tree):
        yield tree
        for name in tree._fields:
            yield from _states(getattr(tree, name))
    elif isinstance(tree, list | tuple):
        for item in tree:
            yield from _states(item)
    elif isinstance(tree, dict):
        for item in tree.values():
            yield from _states(item)


class _ParamLayout:
    """Which leaf of a per-parameter buffer belongs to which torch parameter.

    ``params`` is the tree an optimizer was initialised on: ``nnx.state(model, nnx.Param)``,
    a Trainer's list ``state.params``, or either with ``optax.MaskedNode`` for the parameters
    an ``optax.masked``/``optax.partition`` branch leaves out (its state holds MaskedNode
    there too). A buffer is a field whose tree has that structure and the parameters' shapes.
    """

    def __init__(self, model: nnx.Module, params: Any, fn: str) -> None:
        self.slots = convert.param_slots(model)
        leaves = jax.tree.leaves(params, is_leaf=_is_masked)
        if len(leaves) != len(self.slots):
            raise ValueError(
                f"{fn}: params has {len(leaves)} arrays but the model has {len(self.slots)} "
                "parameters; pass the tree the optimizer was initialised on."
            )
        self.treedef = jax.tree.structure(params, is_leaf=_is_masked)
        self.shapes = [None if _is_masked(p) else tuple(jnp.shape(p)) for p in leaves]
        self.present = [i for i, p in enumerate(leaves) if not _is_masked(p)]

    def buffer(self, value: Any) -> list[Any] | None:
        """``value``'s leaves in parameter order (MaskedNode where masked) when it is a
        per-parameter buffer, else None."""
        if jax.tree.structure(value, is_leaf=_is_masked) != self.treedef:
            return None
        leaves = jax.tree.leaves(value, is_leaf=_is_masked)
        ok = all(
            _is_masked(v) if s is None else (not _is_masked(v) and tuple(jnp.shape(v)) == s)
            for v, s in zip(leaves, self.shapes, strict=True)
        )
        return leaves if ok else None

    def unflatten(self, leaves: list[Any]) -> Any:
        return jax.tree.unflatten(self.treedef, leaves)


def optimizer_state_to_torch(
    model: nnx.Module, opt_state: Any, params: Any
) -> dict[str, dict[str, np.ndarray]]:
    """An optax state as torch's ``optimizer.state``, keyed by the torch parameter name.

    ``params`` is the tree the optimizer was initialised on (a Trainer's ``state.params``, or
    ``nnx.state(model, nnx.Param)``; with ``optax.MaskedNode`` for parameters a masked branch
    leaves out, whose state is then converted for the others only); ``opt_state`` its optax
    state (``state.opt_state``). Every per-parameter buffer (a field shaped like ``params``)
    is converted to torch's layout by the rules of :mod:`jaxnets.convert`, and named as torch
    names it where the optax or :mod:`jaxnets.optim` state is known
    (:data:`TORCH_STATE_NAMES`: Adam's ``mu``/``nu`` are ``exp_avg``/``exp_avg_sq``,
    RMSprop's ``nu`` is ``square_avg``...); other fields keep ``'ClassName.field'``. Adam's
    ``count``, and the count of an lr schedule, are torch's ``step`` (shape ``()``). optax's
    RMSprop and jaxnets' Adagrad with a constant lr keep no step count (torch does): use the
    Trainer's ``state.step``. A :func:`jaxnets.optim.sgd` momentum buffer with dampening
    that has not taken a step is left out, as torch creates ``momentum_buffer`` at the first.

    Returns ``{'fc1.weight': {'exp_avg': [out, in] array, ...}, ...}``, numpy copies.
    """
    layout = _ParamLayout(model, params, "optimizer_state_to_torch")
    out: dict[str, dict[str, np.ndarray]] = {}
    counts: list[tuple[str, np.ndarray]] = []
    for state in _states(opt_state):
        cls = type(state).__name__
        for name in state._fields:
            value = getattr(state, name)
            key = TORCH_STATE_NAMES.get((cls, name), f"{cls}.{name}")
            leaves = layout.buffer(value)
            if leaves is not None:
                if cls == "TorchMomentumState" and int(state.count) == 0:
                    continue  # torch's buffer does not exist before the first step
                for i in layout.present:
                    slot = layout.slots[i]
                    pslot = out.setdefault(slot.key, {})
                    if key in pslot:
                        raise ValueError(
                            f"optimizer_state_to_torch: two optimizer states map to {key!r}; "
                            "the chain holds the same transformation twice"
                        )
                    arr = slot.rule.to_torch(np.asarray(leaves[i]))
                    pslot[key] = np.array(arr, order="C", copy=True)
            elif key == "step" and jnp.ndim(value) == 0:
                counts.append((key, np.array(value, copy=True)))
    for pname in out:
        for key, value in counts:
            out[pname].setdefault(key, value.copy())
    return out


def _count_of(value: Any) -> int | None:
    """A torch step count (a float or integer tensor of shape ``()``) as an int, or None when
    it is not a whole number >= 0."""
    arr = np.asarray(value)
    if arr.shape != () or arr.dtype.kind not in "fiu":
        return None
    number = float(arr)
    return int(number) if number >= 0 and number.is_integer() else None


def optimizer_state_from_torch(
    model: nnx.Module,
    opt_state: Tree,
    params: Any,
    torch_state: Mapping[str, Mapping[str, Any]],
    *,
    step: int | None = None,
) -> Tree:
    """The inverse of :func:`optimizer_state_to_torch`: ``opt_state`` (the optimizer's
    ``init(params)``, the template) with torch's ``optimizer.state`` written in.

    ``torch_state`` maps torch parameter names to their state in torch's layout, numpy
    arrays (``{'fc1.weight': {'step': (), 'exp_avg': [out, in]}, ...}``). Each buffer is
    converted to the twin's layout by the rules of :mod:`jaxnets.convert`; counts (Adam's,
    an lr schedule's) take torch's ``step``, the same for every parameter. A parameter with
    no state keeps the template's (torch creates most states at the first step); either
    every parameter has state or none. ``step`` gives the count where torch keeps none
    (SGD); a :func:`jaxnets.optim.sgd` momentum state with dampening counts as started when
    torch holds its ``momentum_buffer``.

    Raises :class:`jaxnets.convert.StateDictError` listing every problem (a missing or
    unexpected parameter or entry, a shape or dtype, counts that differ); returns a new
    state, ``opt_state`` itself is not changed.
    """
    layout = _ParamLayout(model, params, "optimizer_state_from_torch")
    names = {layout.slots[i].key: i for i in layout.present}
    problems = [
        f"state for {k!r}, which is not one of this optimizer's parameters"
        for k in torch_state
        if k not in names
    ]
    held = {k: dict(v) for k, v in torch_state.items() if k in names and v}
    if held and len(held) != len(names):
        without = [k for k in names if k not in held]
        problems.append(
            f"torch holds state for {len(held)} of the {len(names)} parameters (none for "
            f"{without[:4]}): they have not all taken the same steps, jaxnets' optimizers "
            f"step every parameter together"
        )
    counts: dict[str, int] = {}
    for pname, entries in held.items():
        if entries.get("step") is not None:
            count = _count_of(entries["step"])
            if count is None:
                problems.append(f"{pname!r}: step {entries['step']!r} is not a count >= 0")
            else:
                counts[pname] = count
    if len(set(counts.values())) > 1:
        seen = ", ".join(f"{k}: {v}" for k, v in list(counts.items())[:4])
        problems.append(
            f"the parameters have taken different numbers of steps ({seen}); jaxnets' "
            f"optimizers keep one count for all of them"
        )
    count = next(iter(counts.values()), None) if counts else step
    used: dict[str, set[str]] = {k: set() for k in held}

    def fill_buffer(cls: str, key: str, leaves: list[Any]) -> list[Any]:
        new = list(leaves)
        for pname in held:
            i = names[pname]
            slot, leaf = layout.slots[i], leaves[i]
            arr = held[pname].get(key)
            if arr is None:
                problems.append(f"{pname!r}: no {key!r} in torch's state, which {cls} holds")
                continue
            used[pname].add(key)
            arr = np.asarray(arr)
            want = slot.rule.to_torch(np.empty(jnp.shape(leaf), np.uint8)).shape
            if arr.shape != want:
                problems.append(f"{pname!r} {key!r}: shape {arr.shape}, {want} expected")
            elif arr.dtype != np.dtype(leaf.dtype):
                problems.append(
                    f"{pname!r} {key!r}: dtype {arr.dtype}, {np.dtype(leaf.dtype)} expected"
                )
            else:
                new[i] = jnp.asarray(slot.rule.to_flax(arr), dtype=leaf.dtype)
        return new

    def fill(node: Any) -> Any:
        if _is_state(node):
            cls, updates = type(node).__name__, {}
            for name in node._fields:
                value = getattr(node, name)
                key = TORCH_STATE_NAMES.get((cls, name))
                leaves = layout.buffer(value)
                if leaves is not None:
                    if key is None:
                        problems.append(f"{cls}.{name}: torch has no name for this state")
                    else:
                        updates[name] = layout.unflatten(fill_buffer(cls, key, leaves))
                elif key == "step" and jnp.ndim(value) == 0:
                    for pname in counts:
                        used[pname].add("step")
                    if count is not None:
                        updates[name] = jnp.asarray(count, dtype=jnp.result_type(value))
                elif not (cls == "TorchMomentumState" and name == "count"):
                    updates[name] = fill(value)
            if cls == "TorchMomentumState":  # started once torch has made its buffer
                started = any("momentum_buffer" in used[p] for p in held)
                steps = max(count or 1, 1) if started else 0
                updates["count"] = jnp.asarray(steps, dtype=jnp.result_type(node.count))
            return node._replace(**updates)
        if isinstance(node, list | tuple):
            return type(node)(fill(item) for item in node)
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        return node

    result = fill(opt_state)
    for pname, entries in held.items():
        left = [k for k, v in entries.items() if k not in used[pname] and v is not None]
        if left:
            problems.append(
                f"{pname!r}: torch's state {left} has no place in this optimizer's state "
                f"(another optimizer or option; a step count needs lr as a schedule, e.g. "
                f"optax.constant_schedule(lr))"
            )
    if problems:
        raise convert.StateDictError(
            problems,
            f"the optimizer state of {type(model).__name__}",
            fixes=["build the optimizer with the torch optimizer's class and options"],
        )
    return result


# --------------------------------------------------------------------------------------------
# Recompilation check.
# --------------------------------------------------------------------------------------------

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"


@dataclass
class CompileCounter:
    """What :func:`count_compiles` saw: XLA compilations and jaxpr traces, in order."""

    compiles: int = 0
    traces: int = 0
    events: list[str] = field(default_factory=list)


@contextlib.contextmanager
def count_compiles() -> Iterator[CompileCounter]:
    """Count the XLA compilations (and traces) that JAX performs inside the block.

    A jitted training step must compile once and then run from its cache::

        state, _ = trainer.step(state, x, y)          # compiles
        with count_compiles() as c:
            state, _ = trainer.step(state, x, y)      # same shapes and dtypes
        assert c.compiles == 0, c

    A recompile on the second call means an argument changed shape, dtype, weak type or
    a static value between calls. Uses JAX's public ``jax.monitoring`` duration events
    (``/jax/core/compile/backend_compile_duration`` and ``.../jaxpr_trace_duration``), so it
    sees every compilation in the process while the block runs, from any function.
    """
    counter = CompileCounter()

    def listener(event: str, duration: float, **kwargs: Any) -> None:
        del duration, kwargs
        if event == _COMPILE_EVENT:
            counter.compiles += 1
            counter.events.append(event)
        elif event == _TRACE_EVENT:
            counter.traces += 1
            counter.events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counter
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
