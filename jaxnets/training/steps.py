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
"did my step recompile?"                       ``with count_compiles() as c: ...``
=============================================  ==============================================

Parameter and gradient trees are any matching pytrees: the :class:`~jaxnets.Trainer`'s
flat lists of arrays, or ``nnx.State``\\s from ``nnx.split``/``nnx.grad``. No torch here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxnets import convert

__all__ = [
    "TORCH_STATE_NAMES",
    "CompileCounter",
    "accumulate",
    "count_compiles",
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
# Optimizer state in torch's names and layout.
# --------------------------------------------------------------------------------------------

#: (optax/jaxnets state class name, field) -> torch's ``optimizer.state[p]`` key.
#: torch names from ``torch/optim/{adam,rmsprop,sgd,adagrad}.py``.
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
}


def _named_fields(tree: Any) -> Iterator[tuple[str, str, Any]]:
    """``(class name, field, value)`` of every NamedTuple field in an optax state, in order."""
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        for name in tree._fields:
            value = getattr(tree, name)
            yield type(tree).__name__, name, value
            yield from _named_fields(value)
    elif isinstance(tree, list | tuple):
        for item in tree:
            yield from _named_fields(item)
    elif isinstance(tree, dict):
        for item in tree.values():
            yield from _named_fields(item)


def optimizer_state_to_torch(
    model: nnx.Module, opt_state: Any, params: Any
) -> dict[str, dict[str, np.ndarray]]:
    """An optax state as torch's ``optimizer.state``, keyed by the torch parameter name.

    ``params`` is the tree the optimizer was initialised on (a Trainer's ``state.params``, or
    ``nnx.state(model, nnx.Param)``); ``opt_state`` its optax state (``state.opt_state``).
    Every per-parameter buffer (a field shaped like ``params``) is converted to torch's layout
    with :func:`jaxnets.convert.state_to_torch`, and named as torch names it where the optax
    or :mod:`jaxnets.optim` state is known (:data:`TORCH_STATE_NAMES`: Adam's ``mu``/``nu``
    are ``exp_avg``/``exp_avg_sq``, RMSprop's ``nu`` is ``square_avg``...); other fields keep
    ``'ClassName.field'``. Adam's ``count`` is torch's ``step`` (shape ``()``). optax's
    RMSprop keeps no step count (torch does): use the Trainer's ``state.step``.

    Returns ``{'fc1.weight': {'exp_avg': [out, in] array, ...}, ...}``, numpy copies.
    """
    leaves = jax.tree.leaves(params)
    param_def = jax.tree.structure(nnx.state(model, nnx.Param))
    if param_def.num_leaves != len(leaves):
        raise ValueError(
            f"optimizer_state_to_torch: params has {len(leaves)} arrays but the model has "
            f"{param_def.num_leaves} parameters; pass the tree the optimizer was initialised on."
        )
    params_def = jax.tree.structure(params)
    shapes = [jnp.shape(p) for p in leaves]
    out: dict[str, dict[str, np.ndarray]] = {}
    counts: list[tuple[str, np.ndarray]] = []
    for cls, name, value in _named_fields(opt_state):
        key = TORCH_STATE_NAMES.get((cls, name), f"{cls}.{name}")
        if (
            jax.tree.structure(value) == params_def
            and [jnp.shape(v) for v in jax.tree.leaves(value)] == shapes
        ):
            named = convert.state_to_torch(
                model, jax.tree.unflatten(param_def, jax.tree.leaves(value))
            )
            for pname, arr in named.items():
                slot = out.setdefault(pname, {})
                if key in slot:
                    raise ValueError(
                        f"optimizer_state_to_torch: two optimizer states map to {key!r}; "
                        "the chain holds the same transformation twice"
                    )
                slot[key] = arr
        elif key == "step" and jnp.ndim(value) == 0:
            counts.append((key, np.array(value, copy=True)))
    for pname in out:
        for key, value in counts:
            out[pname].setdefault(key, value.copy())
    return out


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
