"""The exported graph as a small IR: module calls and operations, with module paths and the
user's source lines.

``torch.export`` gives a flat list of ATen operations; each carries the stack of module calls
it ran in (``nn_module_stack``). :func:`lower` turns that into a tree that reads like the
user's code: the operations run by a torch layer (``nn.Linear``, ``nn.BatchNorm2d``...) become
one :class:`Op` of kind ``'module'`` (its own ATen operations do not matter: the twin calls the
jaxnets layer of the same type), a user-defined submodule becomes a ``'call'`` of its own
:class:`Scope`, an ``nn.Sequential`` a ``'seq'`` holding its children, and what the user's
``forward`` does between them stays an ``'fn'`` operation (``relu``, ``view``, ``cat``...).
"""

from __future__ import annotations

import functools
import inspect
import operator
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn

from torchref.port.capture import PortError, Source, source_of_frames

__all__ = ["Op", "Scope", "Value", "is_container", "leaf_type", "lower"]


@dataclass(eq=False)
class Value:
    """A tensor (``shape`` and ``dtype`` from torch) or a symbolic int (``sym``).

    ``shape`` holds ints and, for the symbolic batch size, sympy expressions. ``param`` is
    the torch name (``'scale'``, ``'block.scale'``) of a parameter read directly.
    """

    id: str
    shape: tuple[Any, ...] | None = None
    dtype: torch.dtype | None = None
    sym: Any = None
    param: str | None = None

    @property
    def rank(self) -> int:
        return len(self.shape or ())

    @property
    def is_float(self) -> bool:
        return self.dtype is not None and self.dtype.is_floating_point

    def __repr__(self) -> str:
        return f"%{self.id}"


@dataclass(eq=False)
class Op:
    """One step of a forward pass.

    ``kind``: ``'fn'`` (an ATen operation written in the user's forward; ``name`` is its short
    name, ``args`` its arguments with :class:`Value` in place of tensors), ``'module'`` (a
    torch layer called; ``path`` its module path), ``'call'`` (a user-defined submodule called;
    ``scope`` its body) or ``'seq'`` (an ``nn.Sequential`` called; ``children`` its layers).
    ``inputs`` are the tensors it reads, ``outputs`` what it gives back.
    """

    kind: str
    name: str
    inputs: list[Value]
    outputs: list[Value]
    source: Source | None = None
    path: str = ""
    module: nn.Module | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    scope: Scope | None = None
    children: list[Op] = field(default_factory=list)


@dataclass(eq=False)
class Scope:
    """The body of one call of a user-defined module: its inputs, operations and outputs."""

    path: str
    module: nn.Module
    inputs: list[Value]
    ops: list[Op]
    outputs: list[Value]


CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def is_container(m: nn.Module) -> bool:
    return type(m) in CONTAINERS


def leaf_type(m: nn.Module) -> type | None:
    """The torch layer type whose ``forward`` ``m`` runs (``nn.Linear`` for a subclass that
    keeps Linear's forward), or None for a module with a forward of its own (a user module)."""
    if is_container(m):
        return None
    for cls in type(m).__mro__:
        if (cls.__module__ or "").startswith("torch."):
            return cls  # the first torch class: the layer whose forward runs
        if "forward" in cls.__dict__:
            return None  # a forward of the user's own
    return None


# --- values ---------------------------------------------------------------------------------


def _shape(val: Any) -> tuple[Any, ...]:
    out: list[Any] = []
    for d in val.shape:
        if isinstance(d, torch.SymInt):
            expr = d.node.expr
            out.append(int(expr) if expr.is_number else expr)
        else:
            out.append(int(d))
    return tuple(out)


def _value_of(node: fx.Node, param: str | None = None) -> Value | list[Value] | None:
    val = node.meta.get("val")
    if isinstance(val, torch.Tensor):
        return Value(node.name, _shape(val), val.dtype, param=param)
    if isinstance(val, torch.SymInt):
        expr = val.node.expr
        return Value(node.name, sym=int(expr) if expr.is_number else expr)
    if isinstance(val, list | tuple):
        return [
            Value(f"{node.name}_{i}", _shape(v), v.dtype)
            if isinstance(v, torch.Tensor)
            else Value(f"{node.name}_{i}")
            for i, v in enumerate(val)
        ]
    return None


# --- the call tree --------------------------------------------------------------------------


@dataclass(eq=False)
class _Call:
    key: str
    path: str
    module: nn.Module
    kind: str  # 'root' | 'user' | 'container' | 'leaf'
    items: list[Any] = field(default_factory=list)  # fx.Node | _Call


def _kind(m: nn.Module) -> str:
    if is_container(m):
        return "container"
    return "leaf" if leaf_type(m) is not None else "user"


def _skip(node: fx.Node) -> bool:
    if node.op != "call_function":
        return True
    t = node.target
    if t in (torch.ops.aten.sym_size.int, torch.ops.aten.sym_numel.default):
        return True
    if isinstance(node.meta.get("val"), torch.SymInt | int):
        return True  # arithmetic on sizes: rendered from the batch size where used
    name = getattr(t, "__name__", str(t))
    return name.startswith("_assert") or "sym_constrain" in name or name.startswith("sym_")


def _call_tree(ep: torch.export.ExportedProgram, root: nn.Module) -> _Call:
    top = _Call("", "", root, "root")
    calls: dict[str, _Call] = {}
    for node in ep.graph.nodes:
        if _skip(node):
            continue
        stack = list((node.meta.get("nn_module_stack") or {}).items())
        here = top
        for key, (path, _type) in stack:
            if not path:
                continue  # the root's own entry
            if key in calls:
                here = calls[key]
            else:
                try:
                    module = root.get_submodule(path)
                except AttributeError:
                    break
                call = _Call(key, path, module, _kind(module))
                calls[key] = call
                here.items.append(call)
                here = call
            if here.kind == "leaf":
                break
        here.items.append(node)
    return top


# --- lowering -------------------------------------------------------------------------------


class _Lowering:
    def __init__(self, ep: torch.export.ExportedProgram, root: nn.Module) -> None:
        self.ep = ep
        self.root = root
        self.values: dict[str, Any] = {}
        sig = ep.graph_signature
        kinds: dict[str, tuple[str, str | None]] = {}
        for spec in sig.input_specs:
            kinds[spec.arg.name] = (spec.kind.name, spec.target)
        self.user_inputs: list[Value] = []
        for node in ep.graph.nodes:
            if node.op == "placeholder":
                kind, target = kinds.get(node.name, ("USER_INPUT", None))
                if kind in ("PARAMETER", "BUFFER"):
                    self.values[node.name] = _value_of(node, param=target)
                elif kind == "USER_INPUT":
                    v = _value_of(node)
                    self.values[node.name] = v
                    self.user_inputs.append(v)
                else:  # a tensor constant made in forward (torch.tensor(...)): refused on use
                    self.values[node.name] = Value(node.name, param=None)
                    self.values[node.name].sym = ("constant", target)
            elif node.op == "call_function":
                v = _value_of(node)
                if v is not None:
                    self.values[node.name] = v
        # uses: node -> consumers
        self.users: dict[str, list[fx.Node]] = {n.name: list(n.users) for n in ep.graph.nodes}
        self._data: dict[str, bool] = {}
        # the forward's own results (not the buffers or inputs it updates in place)
        self.output_names = [
            spec.arg.name
            for spec in sig.output_specs
            if spec.kind.name == "USER_OUTPUT" and hasattr(spec.arg, "name")
        ]
        nodes = {n.name: n for n in ep.graph.nodes}
        self.graph_outputs = [nodes[name] for name in self.output_names]
        mutated = [s.kind.name for s in sig.output_specs if s.kind.name == "USER_INPUT_MUTATION"]
        if mutated:
            raise PortError(
                "forward changes its input in place (an in-place operation on x); jaxnets port "
                "needs a forward that leaves its input as it is"
            )

    def is_data(self, node: fx.Node) -> bool:
        """Whether ``node`` depends on the model's input (not only on parameters and buffers:
        BatchNorm's ``num_batches_tracked += 1`` is state, not data)."""
        if node.name in self._data:
            return self._data[node.name]
        if node.op == "placeholder":
            out = any(v is self.values.get(node.name) for v in self.user_inputs)
        else:
            out = any(self.is_data(a) for a in node.all_input_nodes)
        self._data[node.name] = out
        return out

    # -- values of an argument
    def val(self, a: Any) -> Any:
        if isinstance(a, fx.Node):
            if a.target is operator.getitem and isinstance(self.values.get(a.args[0].name), list):
                return self.values[a.args[0].name][a.args[1]]
            return self.values.get(a.name)
        if isinstance(a, list | tuple):
            return type(a)(self.val(x) for x in a)
        return a

    def lower(self) -> Scope:
        tree = _call_tree(self.ep, self.root)
        outputs = [self.val(n) for n in self.graph_outputs]
        return Scope("", self.root, list(self.user_inputs), self._ops(tree, self.root), outputs)

    # -- nodes inside a call, and what flows in and out
    def _nodes(self, call: _Call) -> list[fx.Node]:
        out: list[fx.Node] = []
        for item in call.items:
            out.extend(self._nodes(item) if isinstance(item, _Call) else [item])
        return out

    def _io(self, call: _Call) -> tuple[list[Value], list[Value]]:
        nodes = self._nodes(call)
        inside = {n.name for n in nodes}
        inputs: list[Value] = []
        for n in nodes:
            for a in n.all_input_nodes:
                if a.name in inside or not self.is_data(a):
                    continue
                v = self.val(a)
                if (
                    isinstance(v, Value)
                    and v.param is None
                    and v.shape is not None
                    and v not in inputs
                ):
                    inputs.append(v)
        outputs: list[Value] = []
        for n in nodes:
            if not self.is_data(n):
                continue  # a buffer's update (BatchNorm's counter), not a result
            escapes = n.name in self.output_names or any(
                u.name not in inside for u in self.users[n.name] if u.op != "output"
            )
            if not escapes:
                continue
            v = self.val(n)
            if isinstance(v, Value) and v.shape is not None:
                outputs.append(v)
            elif isinstance(v, list):  # a tuple result: the elements used outside
                for u in self.users[n.name]:
                    if u.name not in inside or u.name in self.output_names:
                        outputs.append(self.val(u))
        return inputs, outputs

    def _ops(self, call: _Call, owner: nn.Module) -> list[Op]:
        """The operations of ``call``, run by the forward of ``owner`` (a user module)."""
        ops: list[Op] = []
        for item in call.items:
            if isinstance(item, _Call):
                ops.append(self._call_op(item, owner))
            elif item.target is operator.getitem:
                continue  # read through by val()
            else:
                ops.append(self._fn_op(item, owner))
        return ops

    def _call_op(self, call: _Call, owner: nn.Module) -> Op:
        inputs, outputs = self._io(call)
        source = _first_source(self._nodes(call), owner)
        name = type(call.module).__name__
        if call.kind == "leaf":
            return Op("module", name, inputs, outputs, source, call.path, call.module)
        if call.kind == "container":
            children = self._ops(call, owner)
            return Op(
                "seq", name, inputs, outputs, source, call.path, call.module, children=children
            )
        scope = Scope(call.path, call.module, inputs, self._ops(call, call.module), outputs)
        return Op("call", name, inputs, outputs, source, call.path, call.module, scope=scope)

    def _fn_op(self, node: fx.Node, owner: nn.Module) -> Op:
        target = node.target
        name = _op_name(target)
        source = source_of_frames(node.meta.get("stack_trace"), _class_span(type(owner)))
        args = tuple(self.val(a) for a in node.args)
        kwargs = {k: self.val(v) for k, v in node.kwargs.items()}
        inputs = [v for v in _flat(args) + _flat(tuple(kwargs.values())) if isinstance(v, Value)]
        for v in inputs:
            if isinstance(v.sym, tuple) and v.sym[0] == "constant":
                raise PortError(
                    f"a tensor made inside forward (torch.tensor or a constant) feeds "
                    f"{name} at {source}: create it in __init__ as a parameter instead"
                    if source
                    else f"a tensor constant made inside forward feeds {name}"
                )
        out = self.val(node)
        outputs = out if isinstance(out, list) else ([out] if out is not None else [])
        return Op("fn", name, inputs, outputs, source, args=args, kwargs=kwargs)


def _flat(xs: tuple[Any, ...]) -> list[Any]:
    out: list[Any] = []
    for x in xs:
        if isinstance(x, list | tuple):
            out.extend(_flat(tuple(x)))
        else:
            out.append(x)
    return out


def _op_name(target: Any) -> str:
    """``aten.relu.default`` -> ``'relu'``; ``aten.add.Tensor`` -> ``'add'``; ``operator.mul``
    (arithmetic on sizes) -> ``'sym_mul'``."""
    if isinstance(target, torch._ops.OpOverload):
        return target.overloadpacket.__name__
    return "sym_" + getattr(target, "__name__", str(target))


def _first_source(nodes: list[fx.Node], owner: nn.Module) -> Source | None:
    """The line of ``owner``'s forward (or of a method of its class) that the first of
    ``nodes`` comes from: for a submodule's call, the caller's line, not the callee's."""
    span = _class_span(type(owner))
    for n in nodes:
        src = source_of_frames(n.meta.get("stack_trace"), span)
        if src is not None:
            return src
    return None


@functools.cache
def _class_span(cls: type) -> tuple[str, int, int] | None:
    """``(file, first line, last line)`` of a class's source (None where it has none)."""
    try:
        file = inspect.getsourcefile(cls)
        lines, start = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return None
    return (os.path.realpath(file), start, start + len(lines) - 1) if file else None


def lower(ep: torch.export.ExportedProgram, root: nn.Module) -> Scope:
    """The forward pass of ``root`` captured in ``ep`` as a :class:`Scope` tree."""
    return _Lowering(ep, root).lower()
