"""Capture every submodule's input, output and output gradient of a Flax NNX model. No torch.

The Flax half of a layer-by-layer parity report (``torchref.explain``), usable on its own::

    from jaxnets.debug import intercept
    out, records = intercept.capture(model, x)         # eager; records by module name
    records["fc1"].output                               # (N, 120) array
    trace = intercept.trace(model, x, loss_fn=lambda out: loss(out, y))
    trace.output_grads["conv2"]                         # d loss / d (conv2's output)

How it works, and why this way. Every callable submodule's class is swapped, for the duration
of a ``with intercept(model)`` block and for that instance only, to a cached subclass whose
``__call__`` calls the original and records ``(args, output)`` under the module's path name
(``'fc1'``, ``'layers.0'``; ``''`` is the model itself; a module called twice gives ``'act'``
and ``'act#2'``). Gradients with respect to outputs use the perturbation trick: the wrapper
returns ``output + delta[name]`` with ``delta`` zeros, and ``d loss / d delta`` is the
gradient with respect to the output.

* It needs no change to the model (no ``sow`` calls), and records every ``nnx.Module``
  whatever its class, including the standard ``nnx.Linear`` / ``nnx.Conv``.
* It mutates no class: ``nnx.capture(method_outputs=...)`` patches methods on the CLASS
  (every instance, every thread, while it runs) and only methods defined on the class
  itself; here only the given instances change, and the active recording lives in a
  ``ContextVar``.
* It works eagerly and under ``jax.jit``/``nnx.jit``, as long as the ``with`` block runs
  INSIDE the traced function (values are then tracers; return them from the function).
  :func:`trace` does exactly that: split, merge inside ``jax.jit``, intercept, return.
* Public methods of the twin's own classes are recorded too, as ``'<path>.<method>'``
  (``'act'`` on the model itself), so ``def act(self, x)`` lines up with torch's
  ``self.act = nn.GELU()``. Flax's own methods (``train``, ``eval``...) are left alone.
* What it cannot see: plain functions (``jax.nn.relu``, a reshape) called in ``__call__``.
  ``torchref.explain`` infers those from the torch side's modules where it can.

Layout is not touched here: outputs are in the twin's layout (NHWC for images).
"""

from __future__ import annotations

import contextvars
import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxnets import fast

__all__ = [
    "Intercept",
    "Record",
    "Trace",
    "capture",
    "intercept",
    "is_intercepted",
    "module_name",
    "trace",
]


def module_name(path: tuple[Any, ...]) -> str:
    """A module path as torch names it: ``('layers', 0) -> 'layers.0'``; ``() -> ''``."""
    return ".".join(str(p) for p in path)


@dataclass(frozen=True)
class Record:
    """One call of one submodule.

    Attributes:
      name: path name (``'fc1'``, ``'layers.0'``, ``''`` for the model; ``'act#2'`` for the
        second call of a module).
      type_name: the module's class name (``'Linear'``, ``'Conv'``...).
      args: the positional arguments it was called with (arrays, in the twin's layout).
      output: what it returned (the un-perturbed value).
    """

    name: str
    type_name: str
    args: tuple[Any, ...]
    output: Any

    @property
    def input(self) -> Any:
        """The first positional argument (the layer's input), or None."""
        return self.args[0] if self.args else None


@dataclass
class Intercept:
    """The recording of one ``with intercept(model)`` block.

    ``records`` are in completion order (a layer before the container that called it);
    ``error_at`` names the innermost module that raised, if the forward pass failed.
    """

    names: dict[int, str]
    modules: dict[str, nnx.Module]
    perturbations: Mapping[str, Any]
    records: list[Record] = field(default_factory=list)
    error_at: str | None = None
    error_args: tuple[Any, ...] = ()
    error_type: str = ""
    _calls: dict[str, int] = field(default_factory=dict)

    def by_name(self) -> dict[str, Record]:
        """``{name: Record}`` in completion order."""
        return {r.name: r for r in self.records}

    def _key(self, name: str) -> str:
        n = self._calls.get(name, 0) + 1
        self._calls[name] = n
        return name if n == 1 else f"{name}#{n}"


_ACTIVE: contextvars.ContextVar[Intercept | None] = contextvars.ContextVar(
    "jaxnets_intercept", default=None
)
_WRAPPED: dict[type, type] = {}


def _recorder(cls: type, method: str | None, original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``original`` (``__call__``, or the public method ``method``) to record its calls."""

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        active = _ACTIVE.get()
        path = None if active is None else active.names.get(id(self))
        if active is None or path is None:
            return original(self, *args, **kwargs)
        if method is None:
            name, type_name = path, cls.__name__
        else:
            name, type_name = (f"{path}.{method}" if path else method), f"{method}()"
        key = active._key(name)
        try:
            out = original(self, *args, **kwargs)
        except Exception:
            if active.error_at is None:  # the innermost call sees it first
                active.error_at = key
                active.error_args = args
                active.error_type = type_name
            raise
        active.records.append(Record(key, type_name, args, out))
        delta = active.perturbations.get(key)
        if delta is not None:
            out = jax.tree.map(lambda o, d: o + d.astype(o.dtype), out, delta)
        return out

    wrapper.__name__ = getattr(original, "__name__", "__call__")
    wrapper.__doc__ = getattr(original, "__doc__", None)
    return wrapper


def _public_methods(cls: type) -> dict[str, Callable[..., Any]]:
    """Public plain methods defined by ``cls`` and its bases outside Flax itself."""
    found: dict[str, Callable[..., Any]] = {}
    for base in cls.__mro__:
        if base is object or base.__module__.startswith("flax."):
            continue
        for attr, value in vars(base).items():
            if attr.startswith("_") or attr in found or not isinstance(value, types.FunctionType):
                continue
            found[attr] = getattr(cls, attr)
    return found


def is_intercepted(module: object) -> bool:
    """Whether ``module`` is being recorded by an :func:`intercept` block."""
    return getattr(type(module), "_jaxnets_intercepts", None) is not None


def _wrapped_class(cls: type) -> type:
    """A subclass of ``cls`` whose ``__call__`` and public methods record their calls.

    Methods are recorded as ``'<module path>.<method>'`` (just ``'<method>'`` on the model),
    so a twin's ``def act(self, x)`` lines up with torch's ``self.act = nn.GELU()``.
    """
    if getattr(cls, "_jaxnets_intercepts", None) is not None:
        return cls
    if cls in _WRAPPED:
        return _WRAPPED[cls]
    methods = _public_methods(cls)

    def body(ns: dict[str, Any]) -> None:
        ns["__call__"] = _recorder(cls, None, cls.__call__)
        for attr, fn in methods.items():
            ns[attr] = _recorder(cls, attr, fn)
        ns["__qualname__"] = cls.__qualname__
        ns["__module__"] = cls.__module__
        ns["__doc__"] = cls.__doc__
        ns["_jaxnets_intercepts"] = cls

    sub = types.new_class(cls.__name__, (cls,), {}, body)
    _WRAPPED[cls] = sub
    return sub


@contextmanager
def intercept(
    model: nnx.Module, *, perturbations: Mapping[str, Any] | None = None
) -> Iterator[Intercept]:
    """Record every callable submodule of ``model`` (and ``model`` itself) while in the block.

    Args:
      model: the module tree to instrument (only these instances change, and only inside
        the block; their classes are restored on exit, even on error).
      perturbations: ``{name: array}`` added to those modules' outputs (zeros, to take
        gradients with respect to outputs; see :func:`trace`).

    Yields the :class:`Intercept` that fills up as modules are called. Use it inside a jitted
    function to record tracers, or eagerly to record arrays.
    """
    names: dict[int, str] = {}
    modules: dict[str, nnx.Module] = {}
    swapped: list[tuple[nnx.Module, type]] = []
    for path, mod in nnx.iter_modules(model):
        if not callable(mod) or id(mod) in names:
            continue
        name = module_name(path)
        names[id(mod)] = name
        modules[name] = mod
    rec = Intercept(names=names, modules=modules, perturbations=perturbations or {})
    token = _ACTIVE.set(rec)
    # The fast forms may compute a module's output without calling it (a convolution fused
    # with its pooling); the plain forms call every module, so each one is recorded.
    plain = fast.disabled()
    plain.__enter__()
    try:
        for mod in modules.values():
            cls = type(mod)
            sub = _wrapped_class(cls)
            if sub is not cls:
                mod.__class__ = sub
                swapped.append((mod, cls))
        yield rec
    finally:
        for mod, cls in swapped:
            mod.__class__ = cls
        plain.__exit__(None, None, None)
        _ACTIVE.reset(token)


def capture(model: nnx.Module, *args: Any, **kwargs: Any) -> tuple[Any, dict[str, Record]]:
    """Run ``model(*args, **kwargs)`` eagerly and return ``(output, {name: Record})``.

    The model runs as it is (a BatchNorm in training mode updates its statistics). For a
    failing forward pass use :func:`capture_until_error`.
    """
    with intercept(model) as rec:
        out = model(*args, **kwargs)
    return out, rec.by_name()


def capture_until_error(
    model: nnx.Module, *args: Any, **kwargs: Any
) -> tuple[dict[str, Record], str | None, BaseException | None]:
    """Run ``model`` eagerly on a clone and keep what was recorded before any exception.

    Returns ``(records, error_at, exception)``: the modules that completed, then the innermost
    module that raised (its record has the input it got and ``output=None``), its name (None
    if nothing raised) and the exception. The model itself is untouched.
    """
    clone = nnx.clone(model)
    try:
        with intercept(clone) as rec:
            clone(*args, **kwargs)
    except Exception as exc:  # the point is to report it, by module
        records = rec.by_name()
        if rec.error_at is not None:
            records[rec.error_at] = Record(rec.error_at, rec.error_type, rec.error_args, None)
        return records, rec.error_at, exc
    return rec.by_name(), None, None


@dataclass
class Trace:
    """One forward (and backward) pass of a model with every submodule recorded.

    Attributes:
      output: the model's output.
      loss: the scalar loss, or None without ``loss_fn``.
      order: module names in completion order; ``types[name]`` is the class name.
      inputs: ``{name: first positional input}``; ``outputs``: ``{name: output}`` (the
        twin's layout, e.g. NHWC).
      output_grads: ``{name: d loss / d output}`` (same shapes as ``outputs``; empty without
        ``loss_fn``).
      param_grads: ``nnx.State`` of ``d loss / d Param`` (None without ``loss_fn``).
    """

    output: Any
    loss: Any
    order: list[str]
    types: dict[str, str]
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    output_grads: dict[str, Any]
    param_grads: nnx.State | None


def _float_leaves_ok(tree: Any) -> bool:
    leaves = jax.tree.leaves(tree)
    return bool(leaves) and all(
        hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.inexact) for x in leaves
    )


def trace(
    model: nnx.Module,
    *args: Any,
    loss_fn: Callable[[Any], jax.Array] | None = None,
    jit: bool = True,
) -> Trace:
    """Run ``model(*args)`` once with every submodule recorded, and backpropagate.

    Args:
      model: the twin; its non-parameter state (BatchNorm statistics, RNG counters) is
        updated as one forward pass would, its parameters are not.
      args: the inputs, in the twin's layout.
      loss_fn: maps the model output to a scalar loss; with it, :attr:`Trace.output_grads`
        holds ``d loss / d output`` of every recorded module and :attr:`Trace.param_grads`
        the parameter gradients.
      jit: run under ``jax.jit`` (one compilation), else op by op.

    Raises whatever the forward pass raises (see :func:`capture_until_error`).
    """
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    # The rest of the state (BatchNorm statistics, RNG counters) travels as plain leaves and
    # is rebuilt inside the transformed function, so its Variables belong to that trace and
    # may be updated there (passing the State itself fails eagerly with TraceContextError).
    rest_leaves, rest_def = jax.tree.flatten(rest)
    meta: dict[str, Any] = {}

    def run(
        params: nnx.State, rest_leaves: list[Any], deltas: dict[str, Any], args: tuple[Any, ...]
    ) -> tuple[jax.Array, tuple[Any, ...]]:
        m = nnx.merge(graphdef, params, jax.tree.unflatten(rest_def, rest_leaves))
        with intercept(m, perturbations=deltas) as rec:
            out = m(*args)
        meta["order"] = [r.name for r in rec.records]
        meta["types"] = {r.name: r.type_name for r in rec.records}
        ins = {r.name: r.input for r in rec.records}
        outs = {r.name: r.output for r in rec.records}
        loss = loss_fn(out) if loss_fn is not None else jnp.zeros(())
        new_rest = nnx.state(m, nnx.Not(nnx.Param))
        return loss, (out, ins, outs, new_rest)

    shapes = jax.eval_shape(run, params, rest_leaves, {}, args)[1][2]
    deltas = {
        k: jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), v)  # numpy: no compile
        for k, v in shapes.items()
        if _float_leaves_ok(v)
    }
    if loss_fn is None:
        fn = run
        fn = jax.jit(fn) if jit else fn
        loss, (out, ins, outs, new_rest) = fn(params, rest_leaves, deltas, args)
        grads, out_grads, loss = None, {}, None
    else:
        fn = jax.value_and_grad(run, argnums=(0, 2), has_aux=True)
        fn = jax.jit(fn) if jit else fn
        (loss, (out, ins, outs, new_rest)), (grads, out_grads) = fn(
            params, rest_leaves, deltas, args
        )
    nnx.update(model, new_rest)
    return Trace(
        output=out,
        loss=loss,
        order=list(meta["order"]),
        types=dict(meta["types"]),
        inputs=ins,
        outputs=outs,
        output_grads=dict(out_grads),
        param_grads=grads,
    )
