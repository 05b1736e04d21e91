"""From the IR to statements of JAX code, tracking the layout of every value.

Layouts: a value's layout inside the twin is a permutation ``perm`` of torch's axes, the twin's
array being ``torch_value.permute(perm)``. Images are channels last inside
(``(0, 2, 3, 1)``: NHWC), everything else starts in torch's order. Each operation either keeps
the layout (elementwise), needs one (a convolution wants channels last, a flatten, a view or a
Linear wants torch's order: the transpose is written where it is needed, as the hand-written
twins do before their flatten) or has its dims rewritten (``cat``, ``mean``, ``sum``,
``softmax``, slicing: torch's dim ``d`` is the twin's axis ``perm.index(d)``). A ``permute``
that lands on a layout the twin already has costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sympy
from torch import nn

from torchref.port.capture import PortError, Source
from torchref.port.expr import ADD, MUL, UNARY, E, Expr, Slot, Stmt, atom, call
from torchref.port.graph import Op, Scope, Value, leaf_type
from torchref.port.vocab import Lib, fmt, layer_rule

__all__ = ["Perm", "ScopeCode", "channels_last", "identity", "natural", "translate_scope"]

Perm = tuple[int, ...]


def identity(rank: int) -> Perm:
    return tuple(range(rank))


def channels_last(rank: int) -> Perm:
    """``(0, 2, ..., rank-1, 1)``: torch's channels (dim 1) moved last."""
    return (0, *range(2, rank), 1) if rank >= 3 else identity(rank)


def natural(v: Value) -> Perm:
    """The layout of ``v`` where the twin meets its caller: 4-D float arrays (images) NHWC,
    everything else as torch has it."""
    return channels_last(4) if v.rank == 4 and v.is_float else identity(v.rank)


def jax_shape(v: Value, perm: Perm) -> tuple[Any, ...]:
    return tuple(v.shape[p] for p in perm) if v.shape is not None else ()


def _inverse(p: Perm) -> Perm:
    out = [0] * len(p)
    for i, a in enumerate(p):
        out[a] = i
    return tuple(out)


BATCH = sympy.Symbol("N")


def shape_text(shape: tuple[Any, ...]) -> str:
    """``(N, 15, 15, 6)``: the symbolic batch size as N."""
    items = []
    for d in shape:
        if isinstance(d, sympy.Expr):
            text = str(d.subs({s: BATCH for s in d.free_symbols}))
            items.append(text.replace("**", "^").replace("*", " * ").replace("^", " ** "))
        else:
            items.append(str(d))
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


@dataclass
class ScopeCode:
    """What translating one scope gives the class generator."""

    stmts: list[Stmt]
    perms: dict[Value, Perm]
    aliases: dict[Value, Value]
    inputs: list[Value]
    outputs: list[Expr | Value]
    outputs_values: list[Value]
    seq_groups: list[tuple[int, int, str, Op]]  # (start, end, list text, the seq op)
    extra_attrs: dict[str, str] = field(default_factory=dict)  # synthesized: name -> ctor
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> ctor extras
    calls: list[Op] = field(default_factory=list)  # user submodule calls (for nested classes)


def _norm_dim(d: int, rank: int) -> int:
    return d + rank if d < 0 else d


def attr_text(rel: str) -> str:
    """``'net.0'`` -> ``'self.net[0]'``; ``'block.conv'`` -> ``'self.block.conv'``."""
    out = "self"
    for part in rel.split("."):
        out += f"[{part}]" if part.isdigit() else f".{part}"
    return out


class Translator:
    """Statements for one scope (one user module's forward)."""

    def __init__(self, lib: Lib, scope: Scope) -> None:
        self.lib = lib
        self.scope = scope
        self.perm: dict[Value, Perm] = {}
        self.alias: dict[Value, Value] = {}
        self.stmts: list[Stmt] = []
        self.seq_groups: list[tuple[int, int, str, Op]] = []
        self.extra_attrs: dict[str, str] = {}
        self.overrides: dict[str, dict[str, Any]] = {}
        self.dim_layouts: dict[str, Perm] = {}
        self.calls: list[Op] = []
        self.taken_attrs = {name for name, _ in scope.module.named_children()} | {
            name for name, _ in scope.module.named_parameters(recurse=False)
        }
        for v in scope.inputs:
            self.perm[v] = natural(v)

    # -- helpers -----------------------------------------------------------------------------
    def rel(self, path: str) -> str:
        base = self.scope.path
        return path[len(base) + 1 :] if base else path

    def ref(self, v: Value) -> Value:
        while v in self.alias:
            v = self.alias[v]
        return v

    def perm_of(self, v: Value) -> Perm:
        """The layout of ``v`` in the twin (an alias has its own: a permute relabels)."""
        if v.param is not None:
            return identity(v.rank)
        if v in self.perm:
            return self.perm[v]
        if v in self.alias:
            return self.perm_of(self.alias[v])
        return identity(v.rank)

    def value(self, v: Value) -> Expr | Value:
        """``v`` as the twin holds it (a parameter read as ``self.name[...]``)."""
        if v.param is not None:
            return self.param_expr(v)
        return self.ref(v)

    def param_expr(self, v: Value) -> Expr:
        rel = self.rel(v.param) if self.scope.path else v.param
        owner, _, name = rel.rpartition(".")
        module = self.scope.module.get_submodule(owner) if owner else self.scope.module
        if leaf_type(module) is not None:
            raise PortError(
                f"forward reads {v.param} of a torch layer directly (at "
                f"{self.current_source}); only parameters of your own modules "
                f"(nn.Parameter attributes) can be read in forward"
            )
        if name not in module._parameters:
            raise PortError(
                f"forward reads the buffer {v.param} (at {self.current_source}); buffers "
                f"of your own modules are outside the vocabulary"
            )
        return E(attr_text(rel), "[...]")

    def as_perm(self, v: Value, want: Perm) -> Expr | Value:
        """``v`` in layout ``want``: the value itself, or a transpose of it."""
        have = self.perm_of(v)
        base = self.value(v)
        if have == want:
            return base
        q = tuple(have.index(w) for w in want)
        return E(atom(base), f".transpose{fmt(q)}")

    def torch_order(self, v: Value) -> Expr | Value:
        return self.as_perm(v, identity(v.rank))

    def emit(self, stmt: Stmt, perms: list[Perm]) -> None:
        for out, p in zip(stmt.outs, perms, strict=True):
            self.perm[out] = p
        self.stmts.append(stmt)

    def alias_to(self, out: Value, v: Value, perm: Perm | None = None) -> None:
        src = self.ref(v)
        if src.param is not None:  # an alias of a parameter: read it once, as torch
            self.emit(
                Stmt(E(self.param_expr(src)), [out], self.current_source, "p"), [identity(out.rank)]
            )
            return
        self.alias[out] = src
        self.perm[out] = perm if perm is not None else self.perm_of(v)

    # -- the scope ---------------------------------------------------------------------------
    current_source: Source | None = None

    def run(self) -> ScopeCode:
        self.ops(fuse(self.scope.ops))
        outs: list[Expr | Value] = []
        for v in self.scope.outputs:
            outs.append(self.as_perm(v, natural(v)))
        return ScopeCode(
            self.stmts,
            self.perm,
            self.alias,
            list(self.scope.inputs),
            outs,
            list(self.scope.outputs),
            self.seq_groups,
            self.extra_attrs,
            self.overrides,
            self.calls,
        )

    def ops(self, ops: list[Op]) -> None:
        for op in ops:
            self.current_source = op.source
            if op.kind == "module":
                self.module_op(op)
            elif op.kind == "call":
                self.call_op(op)
            elif op.kind == "seq":
                self.seq_op(op)
            elif op.kind == "fused":
                self.fused_op(op)
            else:
                self.fn_op(op)

    def module_op(self, op: Op) -> None:
        cls = leaf_type(op.module)
        rule = layer_rule(cls)
        if rule is None:
            where = f" at {op.source}" if op.source else ""
            raise PortError(
                f"nn.{cls.__name__} ({op.path}){where} is outside the vocabulary of jaxnets port"
            )
        if len(op.inputs) != 1 or len(op.outputs) != 1:
            raise PortError(
                f"nn.{cls.__name__} ({op.path}) at {op.source} takes {len(op.inputs)} tensors "
                f"and gives {len(op.outputs)}; jaxnets port maps layers of one input and one "
                f"output"
            )
        (x,), (out,) = op.inputs, op.outputs
        have = self.perm_of(x)
        if rule.layout == "features":
            want = identity(x.rank)
        elif rule.layout == "channels":
            want = channels_last(x.rank)
        else:
            want = have
        if rule.dim is not None:  # Softmax(dim): torch's dim, rewritten for this layout
            want = self.dim_layouts.setdefault(op.path, want)  # one dim for every call
            torch_dim = getattr(op.module, rule.dim)
            dim = want.index(_norm_dim(torch_dim, x.rank))
            self.overrides[op.path] = {"dim": torch_dim if want == identity(x.rank) else dim}
        arg = self.as_perm(x, want)
        out_perm = _out_perm(rule.layout, want, out)
        text = attr_text(self.rel(op.path))
        stmt = Stmt(call(text, arg), [out], op.source, _hint(op.path))
        moved = not (arg is self.ref(x) or arg is x)
        if moved and x.rank == 4 and want == identity(4):
            stmt.note = (
                "NHWC -> NCHW before flattening, so the features come in torch's (C, H, W) order"
                if cls is nn.Flatten
                else f"NHWC -> NCHW: nn.{cls.__name__} acts on torch's last dims"
            )
        stmt.meta["module"] = (text, not moved, rule.function)
        self.emit(stmt, [out_perm])

    def call_op(self, op: Op) -> None:
        args = [self.as_perm(v, natural(v)) for v in op.inputs]
        text = attr_text(self.rel(op.path))
        stmt = Stmt(call(text, *args), list(op.outputs), op.source, _hint(op.path))
        stmt.meta["module"] = (
            text,
            all(a is self.ref(v) for a, v in zip(args, op.inputs, strict=True)),
            False,
        )
        self.calls.append(op)
        self.emit(stmt, [natural(v) for v in op.outputs])

    def seq_op(self, op: Op) -> None:
        start = len(self.stmts)
        self.ops(op.children)
        self.seq_groups.append((start, len(self.stmts), attr_text(self.rel(op.path)), op))

    def fused_op(self, op: Op) -> None:
        conv, act, k = op.args
        (x,) = op.inputs
        (out,) = op.outputs
        fn = self.lib.fast("conv2d_max_pool2d")
        arg = self.as_perm(x, channels_last(4))
        inner = call(fn, attr_text(self.rel(conv.path)), arg, str(k))
        expr = inner if act is None else self.act_expr(act, inner)
        self.emit(Stmt(expr, [out], op.source, "x"), [channels_last(4)])

    def act_expr(self, act: Op, inner: Expr) -> Expr:
        if act.kind == "module":
            return call(attr_text(self.rel(act.path)), inner)
        self.lib.use("jax")
        return call("jax.nn.relu", inner)

    # -- functional operations ---------------------------------------------------------------
    def fn_op(self, op: Op) -> None:
        handler = FN.get(op.name)
        if handler is None:
            where = f" at {op.source}" if op.source else ""
            raise PortError(
                f"torch operation {op.name}{where} is outside the vocabulary of jaxnets port"
            )
        handler(self, op)

    def synth_attr(self, base: str, ctor: str) -> str:
        """A module the twin needs where torch has none (``F.dropout`` needs a Dropout to
        follow train/eval): the first free name of ``base``, ``base_1``..."""
        name, i = base, 0
        while name in self.taken_attrs:
            i += 1
            name = f"{base}_{i}"
        self.taken_attrs.add(name)
        self.extra_attrs[name] = ctor
        return f"self.{name}"


def _out_perm(layout: str, want: Perm, out: Value) -> Perm:
    if layout == "channels":
        return channels_last(out.rank) if out.rank == len(want) else identity(out.rank)
    if layout == "any":
        return want if out.rank == len(want) else identity(out.rank)
    return identity(out.rank)


def _hint(path: str) -> str:
    last = path.rpartition(".")[2]
    return "h" if last.isdigit() else last


# --- fusion: conv -> relu -> max_pool2d(k) as the fused fast form ------------------------------


def _is_relu(op: Op) -> bool:
    if op.kind == "fn":
        return op.name in ("relu", "relu_")
    return op.kind == "module" and leaf_type(op.module) is nn.ReLU


def _pool_k(op: Op) -> int | None:
    """k of a ``max_pool2d(x, k)`` with stride k, no padding, dilation 1, floor mode."""
    if op.kind == "fn" and op.name == "max_pool2d":
        args = list(op.args) + [None] * 6
        k, stride, pad, dil, ceil = args[1], args[2], args[3], args[4], args[5]
        k = _pair(k)
        stride = _pair(stride) if stride not in (None, []) else k
    elif op.kind == "module" and leaf_type(op.module) is nn.MaxPool2d:
        m = op.module
        k, stride = _pair(m.kernel_size), _pair(m.stride or m.kernel_size)
        pad, dil, ceil = m.padding, m.dilation, m.ceil_mode
        if m.return_indices:
            return None
    else:
        return None
    if k is None or k[0] != k[1] or stride != k:
        return None
    if _pair(pad or 0) != (0, 0) or _pair(dil or 1) != (1, 1) or ceil:
        return None
    return k[0]


def _pair(v: Any) -> tuple[int, int] | None:
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, list | tuple) and len(v) == 1:
        return (int(v[0]), int(v[0]))
    if isinstance(v, list | tuple) and len(v) == 2:
        return (int(v[0]), int(v[1]))
    return None


def _is_conv2d(op: Op) -> bool:
    return (
        op.kind == "module"
        and leaf_type(op.module) is nn.Conv2d
        and op.module.padding_mode == "zeros"
        and len(op.outputs) == 1
        and len(op.inputs) == 1
    )


def fuse(ops: list[Op]) -> list[Op]:
    """Rewrite ``max_pool2d(relu(conv(x)), k)`` and ``relu(max_pool2d(conv(x), k))`` (and
    ``max_pool2d(conv(x), k)``) into one ``'fused'`` op: jaxnets' fused convolution and pooling
    (relu and max commute, so relu comes after), the form the hand-written LeNet uses."""
    uses: dict[Value, int] = {}
    for op in ops:
        for v in op.inputs:
            uses[v] = uses.get(v, 0) + 1
    out: list[Op] = []
    i = 0
    while i < len(ops):
        op = ops[i]
        if _is_conv2d(op) and i + 1 < len(ops):
            c = op.outputs[0]
            nxt = ops[i + 1]
            third = ops[i + 2] if i + 2 < len(ops) else None
            only = uses.get(c, 0) == 1
            if only and _is_relu(nxt) and nxt.inputs == [c] and third is not None:
                r = nxt.outputs[0]
                k = _pool_k(third)
                if k and uses.get(r, 0) == 1 and third.inputs == [r]:
                    out.append(_fused(op, nxt, k, third))
                    i += 3
                    continue
            k = _pool_k(nxt)
            if only and k and nxt.inputs == [c]:
                p = nxt.outputs[0]
                if (
                    third is not None
                    and _is_relu(third)
                    and uses.get(p, 0) == 1
                    and third.inputs == [p]
                ):
                    out.append(_fused(op, third, k, third))
                    i += 3
                    continue
                out.append(_fused(op, None, k, nxt))
                i += 2
                continue
        out.append(op)
        i += 1
    return out


def _fused(conv: Op, act: Op | None, k: int, last: Op) -> Op:
    return Op(
        "fused",
        "conv2d_max_pool2d",
        list(conv.inputs),
        list(last.outputs),
        last.source,
        args=(conv, act, k),
    )


# --- the functional vocabulary ---------------------------------------------------------------

FN: dict[str, Callable[[Translator, Op], None]] = {}


def _fn(*names: str) -> Callable[[Callable[[Translator, Op], None]], Callable[..., None]]:
    def register(f: Callable[[Translator, Op], None]) -> Callable[..., None]:
        for n in names:
            FN[n] = f
        return f

    return register


def _elementwise(t: Translator, op: Op, build: Callable[[Expr | Value], Expr]) -> None:
    x = op.args[0]
    out = op.outputs[0]
    perm = t.perm_of(x)
    t.emit(Stmt(build(t.value(x)), [out], op.source, op.name.rstrip("_")), [perm])


_UNARY_JAX = {
    "relu": "jax.nn.relu",
    "relu6": "jax.nn.relu6",
    "sigmoid": "jax.nn.sigmoid",
    "silu": "jax.nn.silu",
    "tanh": "jnp.tanh",
    "exp": "jnp.exp",
    "log": "jnp.log",
    "sqrt": "jnp.sqrt",
    "abs": "jnp.abs",
    "sin": "jnp.sin",
    "cos": "jnp.cos",
    "rsqrt": "jax.lax.rsqrt",
}


def _unary(t: Translator, op: Op) -> None:
    fn = _UNARY_JAX[op.name.rstrip("_")]
    t.lib.use("jnp" if fn.startswith("jnp.") else "jax")
    _elementwise(t, op, lambda x: call(fn, x))


for _name in _UNARY_JAX:
    FN[_name] = _unary
    FN[_name + "_"] = _unary


@_fn("gelu", "gelu_")
def _gelu(t: Translator, op: Op) -> None:
    approx = op.kwargs.get("approximate", op.args[1] if len(op.args) > 1 else "none")
    t.lib.use("jax")
    _elementwise(t, op, lambda x: call("jax.nn.gelu", x, approximate=str(approx == "tanh")))


@_fn("leaky_relu", "leaky_relu_")
def _leaky(t: Translator, op: Op) -> None:
    slope = op.args[1] if len(op.args) > 1 else op.kwargs.get("negative_slope", 0.01)
    t.lib.use("jax")
    kw = {} if slope == 0.01 else {"negative_slope": fmt(slope)}
    _elementwise(t, op, lambda x: call("jax.nn.leaky_relu", x, **kw))


@_fn("elu", "elu_")
def _elu(t: Translator, op: Op) -> None:
    alpha = op.args[1] if len(op.args) > 1 else op.kwargs.get("alpha", 1.0)
    scale = op.args[2] if len(op.args) > 2 else 1
    in_scale = op.args[3] if len(op.args) > 3 else 1
    if scale != 1 or in_scale != 1:
        raise PortError(
            f"torch operation elu with scale at {op.source} is outside the vocabulary (selu/celu)"
        )
    t.lib.use("jax")
    kw = {} if alpha == 1.0 else {"alpha": fmt(alpha)}
    _elementwise(t, op, lambda x: call("jax.nn.elu", x, **kw))


@_fn("hardtanh", "hardtanh_")
def _hardtanh(t: Translator, op: Op) -> None:
    lo = op.args[1] if len(op.args) > 1 else -1.0
    hi = op.args[2] if len(op.args) > 2 else 1.0
    t.lib.use("jnp")
    _elementwise(t, op, lambda x: call("jnp.clip", x, fmt(lo), fmt(hi)))


@_fn("neg")
def _neg(t: Translator, op: Op) -> None:
    _elementwise(t, op, lambda x: E("-", Slot(x, UNARY), prec=UNARY))


@_fn("reciprocal")
def _reciprocal(t: Translator, op: Op) -> None:
    _elementwise(t, op, lambda x: E("1 / ", Slot(x, UNARY), prec=MUL))


@_fn("pow")
def _pow(t: Translator, op: Op) -> None:
    base, exp = op.args[0], op.args[1]
    if not isinstance(base, Value) or isinstance(exp, Value):
        raise PortError(
            f"torch operation pow of two tensors at {op.source} is outside the vocabulary"
        )
    t.lib.use("jnp")
    if exp == 2:
        _elementwise(t, op, lambda x: call("jnp.square", x))
    else:
        _elementwise(t, op, lambda x: call("jnp.power", x, fmt(exp)))


@_fn("clone", "contiguous", "alias", "lift_fresh_copy")
def _same(t: Translator, op: Op) -> None:
    t.alias_to(op.outputs[0], op.args[0])


@_fn("detach", "detach_")
def _detach(t: Translator, op: Op) -> None:
    t.lib.use("jax")
    _elementwise(t, op, lambda x: call("jax.lax.stop_gradient", x))


@_fn("dropout", "dropout_", "feature_dropout", "feature_dropout_")
def _dropout(t: Translator, op: Op) -> None:
    x, p = op.args[0], op.args[1]
    train = op.args[2] if len(op.args) > 2 else op.kwargs.get("train", True)
    if not train or p == 0:
        t.alias_to(op.outputs[0], x)  # F.dropout(..., training=False) is the identity
        return
    feature = op.name.startswith("feature")
    name = "Dropout2d" if feature else "Dropout"
    ctor = t.lib.nn(name, f"F.{name.lower()}")
    kw = t.lib.kw(ctor)
    attr = t.synth_attr(name.lower(), f"{ctor}({fmt(p)}{', ' + kw if kw else ''})")
    want = channels_last(x.rank) if feature else t.perm_of(x)
    arg = t.as_perm(x, want)
    stmt = Stmt(call(attr, arg), list(op.outputs), op.source, "x")
    stmt.note = f"F.{name.lower()} in torch; {attr} follows model.train() / model.eval()"
    t.emit(stmt, [want])


# -- arithmetic


def _operand(t: Translator, a: Any, torch_order: bool) -> Any:
    if isinstance(a, Value):
        return t.torch_order(a) if torch_order else t.value(a)
    return fmt(a)


def _binary_layout(t: Translator, op: Op) -> tuple[bool, Perm]:
    """Whether to compute a broadcasting binary operation in torch's order, and the result's
    layout: the operands' own layout when they all have it at the result's rank, torch's
    order otherwise (broadcasting aligns torch's trailing dims)."""
    out = op.outputs[0]
    tensors = [a for a in op.args[:2] if isinstance(a, Value) and a.rank > 0]
    perms = {t.perm_of(a) for a in tensors}
    ranks = {a.rank for a in tensors}
    if len(perms) == 1 and ranks == {out.rank}:
        return False, perms.pop()
    return True, identity(out.rank)


_BINOPS = {
    "add": (" + ", ADD),
    "sub": (" - ", ADD),
    "mul": (" * ", MUL),
    "div": (" / ", MUL),
}


@_fn("add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "rsub")
def _binop(t: Translator, op: Op) -> None:
    name = op.name.rstrip("_")
    a, b = op.args[0], op.args[1]
    alpha = op.kwargs.get("alpha", 1)
    if name == "div" and op.kwargs.get("rounding_mode") is not None:
        raise PortError(
            f"torch operation div(rounding_mode=...) at {op.source} is outside the vocabulary"
        )
    if name == "rsub":
        name, a, b = "sub", b, a
    # x * 1 and x / 1 compute nothing (torch writes 1 / y as reciprocal(y) * 1)
    out = op.outputs[0]
    for x, one in {"mul": [(a, b), (b, a)], "div": [(a, b)]}.get(name, []):
        if (
            isinstance(x, Value)
            and not isinstance(one, Value)
            and one == 1
            and tuple(x.shape) == tuple(out.shape)
            and x.dtype == out.dtype
        ):
            t.alias_to(out, x)
            return
    coerce, perm = _binary_layout(t, op)
    left, right = _operand(t, a, coerce), _operand(t, b, coerce)
    if alpha != 1:
        right = E(
            fmt(alpha),
            " * ",
            Slot(right, MUL + 1) if not isinstance(right, str) else right,
            prec=MUL,
        )
    sym, prec = _BINOPS[name]
    expr = E(
        Slot(left, prec) if not isinstance(left, str) else left,
        sym,
        Slot(right, prec + 1) if not isinstance(right, str) else right,
        prec=prec,
    )
    t.emit(Stmt(expr, [op.outputs[0]], op.source, name), [perm])


@_fn("matmul", "mm", "bmm")
def _matmul(t: Translator, op: Op) -> None:
    a, b = op.args[0], op.args[1]
    left, right = t.torch_order(a), t.torch_order(b)
    expr = E(Slot(left, MUL), " @ ", Slot(right, MUL + 1), prec=MUL)
    out = op.outputs[0]
    t.emit(Stmt(expr, [out], op.source, "h"), [identity(out.rank)])


@_fn("linear")
def _linear(t: Translator, op: Op) -> None:
    x, w = op.args[0], op.args[1]
    b = op.args[2] if len(op.args) > 2 else None
    expr = E(Slot(t.torch_order(x), MUL), " @ ", atom(t.value(w)), ".T", prec=MUL)
    if b is not None:
        expr = E(Slot(expr, ADD), " + ", Slot(t.value(b), ADD + 1), prec=ADD)
    out = op.outputs[0]
    t.emit(Stmt(expr, [out], op.source, "h"), [identity(out.rank)])


# -- softmax, reductions, concatenation


@_fn("softmax", "_softmax", "log_softmax", "_log_softmax")
def _softmax(t: Translator, op: Op) -> None:
    x, dim = op.args[0], op.args[1]
    perm = t.perm_of(x)
    axis = perm.index(_norm_dim(dim, x.rank))
    fn = "jax.nn.log_softmax" if "log" in op.name else "jax.nn.softmax"
    t.lib.use("jax")
    stmt = Stmt(
        call(fn, t.value(x), axis=str(axis)), [op.outputs[0]], op.source, op.name.strip("_")
    )
    t.emit(stmt, [perm])


def _reduce(t: Translator, op: Op, method: str) -> None:
    x = op.args[0]
    dims = op.args[1] if len(op.args) > 1 else None
    keep = op.args[2] if len(op.args) > 2 else op.kwargs.get("keepdim", False)
    if op.kwargs.get("dtype") is not None:
        raise PortError(
            f"torch operation {op.name}(dtype=...) at {op.source} is outside the vocabulary"
        )
    out = op.outputs[0]
    perm = t.perm_of(x)
    if dims is None or dims == []:
        t.emit(
            Stmt(E(atom(t.value(x)), f".{method}()"), [out], op.source, method),
            [identity(out.rank)],
        )
        return
    dims = [dims] if isinstance(dims, int) else list(dims)
    tdims = sorted(_norm_dim(d, x.rank) for d in dims)
    axes = tuple(sorted(perm.index(d) for d in tdims))
    axis = str(axes[0]) if len(axes) == 1 else fmt(axes)
    kw = ", keepdims=True" if keep else ""
    expr = E(atom(t.value(x)), f".{method}(axis={axis}{kw})")
    if keep:
        new = perm
    else:
        left = [p for p in perm if p not in tdims]
        new = tuple(sorted(left).index(p) for p in left)
    t.emit(Stmt(expr, [out], op.source, method), [new])


@_fn("mean")
def _mean(t: Translator, op: Op) -> None:
    _reduce(t, op, "mean")


@_fn("sum")
def _sum(t: Translator, op: Op) -> None:
    _reduce(t, op, "sum")


@_fn("cat", "concat", "concatenate")
def _cat(t: Translator, op: Op) -> None:
    tensors = list(op.args[0])
    dim = op.args[1] if len(op.args) > 1 else op.kwargs.get("dim", 0)
    out = op.outputs[0]
    perms = {t.perm_of(v) for v in tensors}
    perm = perms.pop() if len(perms) == 1 else identity(out.rank)
    items: list[Any] = ["["]
    for i, v in enumerate(tensors):
        if i:
            items.append(", ")
        items.append(t.as_perm(v, perm))
    items.append("]")
    axis = perm.index(_norm_dim(dim, out.rank))
    t.lib.use("jnp")
    expr = E("jnp.concatenate(", *items, f", axis={axis})")
    t.emit(Stmt(expr, [out], op.source, "cat"), [perm])


# -- shapes


def _size_expr(t: Translator, size: Any, sources: list[Value]) -> Expr | str:
    """A size of a view: an int, -1, or the symbolic batch size read off a value."""
    if isinstance(size, int):
        return str(size)
    if isinstance(size, Value) and size.sym is not None and not isinstance(size.sym, tuple):
        size = size.sym
    if isinstance(size, int | sympy.Integer):
        return str(int(size))
    if isinstance(size, sympy.Expr):
        symbols = sorted(size.free_symbols, key=str)
        parts: dict[sympy.Symbol, Any] = {}
        for s in symbols:
            found = None
            for v in [*sources, *t.scope.inputs]:
                v = t.ref(v)
                perm = t.perm_of(v)
                for axis, p in enumerate(perm):
                    if v.shape[p] == s:
                        found = E(atom(t.value(v)), f".shape[{axis}]")
                        break
                if found is not None:
                    break
            if found is None:
                raise PortError(
                    f"a size in {t.current_source} depends on the batch size in "
                    f"a way jaxnets port cannot express"
                )
            parts[s] = found
        if size in parts:
            return parts[size]
        # an expression of the batch size (2 * N): the symbol as text, then substituted
        if len(symbols) != 1:
            raise PortError(
                f"a size at {t.current_source} depends on several symbolic sizes; jaxnets "
                f"port keeps only the batch size symbolic"
            )
        (s,) = symbols
        text = str(size).replace("**", "^").replace("*", " * ").replace("^", " ** ")
        text = text.replace(str(s), "\0")
        pieces = text.split("\0")
        items: list[Any] = []
        for i, piece in enumerate(pieces):
            if i:
                items.append(parts[s])
            if piece:
                items.append(piece)
        return E(*items, prec=ADD)
    raise PortError(
        f"a size {size!r} at {t.current_source} is outside what jaxnets port can express"
    )


def _reshape_to(t: Translator, op: Op, x: Value, sizes: list[Any]) -> None:
    out = op.outputs[0]
    if tuple(out.shape) == tuple(x.shape):  # a view to the same shape: nothing moves
        t.alias_to(out, x)
        return
    src = t.ref(x)
    arg = t.torch_order(x)
    parts: list[Any] = [atom(arg), ".reshape("]
    for i, s in enumerate(sizes):
        if i:
            parts.append(", ")
        parts.append(_size_expr(t, s, [x]))
    parts.append(")")
    stmt = Stmt(E(*parts), [out], op.source, "x")
    if arg is not src:
        stmt.note = (
            "NHWC -> NCHW before flattening, so the features come in torch's (C, H, W) order"
            if src.rank == 4
            else "back to torch's order before the reshape"
        )
    t.emit(stmt, [identity(out.rank)])


@_fn("view", "reshape", "_unsafe_view")
def _view(t: Translator, op: Op) -> None:
    x, sizes = op.args[0], list(op.args[1])
    _reshape_to(t, op, x, sizes)


@_fn("flatten")
def _flatten(t: Translator, op: Op) -> None:
    x = op.args[0]
    start = _norm_dim(op.args[1] if len(op.args) > 1 else 0, x.rank)
    end = _norm_dim(op.args[2] if len(op.args) > 2 else -1, x.rank)
    sizes: list[Any] = [*x.shape[:start], -1, *x.shape[end + 1 :]]
    _reshape_to(t, op, x, sizes)


@_fn("unsqueeze", "unsqueeze_")
def _unsqueeze(t: Translator, op: Op) -> None:
    x, dim = op.args[0], op.args[1]
    out = op.outputs[0]
    t.lib.use("jnp")
    expr = call("jnp.expand_dims", t.torch_order(x), str(_norm_dim(dim, out.rank)))
    t.emit(Stmt(expr, [out], op.source, "x"), [identity(out.rank)])


@_fn("squeeze", "squeeze_")
def _squeeze(t: Translator, op: Op) -> None:
    x = op.args[0]
    out = op.outputs[0]
    dims = op.args[1] if len(op.args) > 1 else None
    if dims is None:
        dims = [i for i, d in enumerate(x.shape) if d == 1]
    dims = [dims] if isinstance(dims, int) else list(dims)
    dims = [_norm_dim(d, x.rank) for d in dims if x.shape[_norm_dim(d, x.rank)] == 1]
    if not dims:
        t.alias_to(out, x)
        return
    # size-1 dims go wherever the twin holds them; the others keep their order
    perm = t.perm_of(x)
    axes = sorted(perm.index(d) for d in dims)
    left = [p for p in perm if p not in dims]
    new = tuple(sorted(left).index(p) for p in left)
    t.lib.use("jnp")
    axis = str(axes[0]) if len(axes) == 1 else fmt(tuple(axes))
    expr = call("jnp.squeeze", t.value(x), axis)
    t.emit(Stmt(expr, [out], op.source, "x"), [new])


def _permute_to(t: Translator, op: Op, x: Value, p: Perm) -> None:
    """torch ``x.permute(p)``: nothing to compute when the twin's array already has the
    result's layout (identity or channels last), a transpose otherwise."""
    out = op.outputs[0]
    src = t.ref(x)
    have = t.perm_of(x)
    pinv = _inverse(p)
    relabel = tuple(pinv[a] for a in have)  # the twin's array as a permutation of the result
    if relabel in (identity(out.rank), natural(out)) and src.param is None:
        t.alias_to(out, x, relabel)
        t.stmts.append(Stmt(None, [out], op.source, "x", note=_relabel_note(op, relabel, out)))
        return
    q = tuple(have.index(d) for d in p)
    t.emit(
        Stmt(E(atom(t.value(x)), f".transpose{fmt(q)}"), [out], op.source, "x"),
        [identity(out.rank)],
    )


def _relabel_note(op: Op, relabel: Perm, out: Value) -> str:
    text = op.source.text if op.source else op.name
    if relabel == identity(out.rank):
        return f"torch: {text}; this array is already in that order, nothing moves"
    return f"torch: {text}; images stay channels last here, nothing moves"


@_fn("permute")
def _permute(t: Translator, op: Op) -> None:
    x = op.args[0]
    p = tuple(_norm_dim(d, x.rank) for d in op.args[1])
    _permute_to(t, op, x, p)


@_fn("transpose", "swapaxes", "swapdims")
def _transpose(t: Translator, op: Op) -> None:
    x = op.args[0]
    d0, d1 = (_norm_dim(d, x.rank) for d in op.args[1:3])
    p = list(range(x.rank))
    p[d0], p[d1] = p[d1], p[d0]
    _permute_to(t, op, x, tuple(p))


@_fn("t")
def _t(t: Translator, op: Op) -> None:
    x = op.args[0]
    if x.rank < 2:
        t.alias_to(op.outputs[0], x)
        return
    _permute_to(t, op, x, (1, 0))


@_fn("slice")
def _slice(t: Translator, op: Op) -> None:
    x = op.args[0]
    dim = _norm_dim(op.args[1] if len(op.args) > 1 else 0, x.rank)
    start = op.args[2] if len(op.args) > 2 else None
    end = op.args[3] if len(op.args) > 3 else None
    step = op.args[4] if len(op.args) > 4 else 1
    out = op.outputs[0]
    if out.shape == x.shape:
        t.alias_to(out, x)
        return
    perm = t.perm_of(x)
    axis = perm.index(dim)
    if start in (None, 0):
        start = None
    if isinstance(end, int) and end >= 2**62:
        end = None
    text = f"{'' if start is None else start}:{'' if end is None else end}"
    if step not in (None, 1):
        text += f":{step}"
    index = ", ".join([":"] * axis + [text])
    t.emit(Stmt(E(atom(t.value(x)), f"[{index}]"), [out], op.source, "x"), [perm])


@_fn("select")
def _select(t: Translator, op: Op) -> None:
    x, dim, index = op.args[0], op.args[1], op.args[2]
    dim = _norm_dim(dim, x.rank)
    out = op.outputs[0]
    perm = t.perm_of(x)
    axis = perm.index(dim)
    idx = ", ".join([":"] * axis + [str(index)])
    left = [p for p in perm if p != dim]
    new = tuple(sorted(left).index(p) for p in left)
    t.emit(Stmt(E(atom(t.value(x)), f"[{idx}]"), [out], op.source, "x"), [new])


# -- pooling


def _pool_args(op: Op, names: list[str], defaults: list[Any]) -> dict[str, Any]:
    vals = dict(zip(names, defaults, strict=True))
    for n, a in zip(names, op.args[1:], strict=False):
        vals[n] = a
    vals.update({k: v for k, v in op.kwargs.items() if k in vals})
    return vals


def _one(v: Any) -> Any:
    if isinstance(v, list | tuple):
        v = tuple(v)
        return v[0] if len(set(v)) == 1 else v
    return v


@_fn("max_pool2d")
def _max_pool(t: Translator, op: Op) -> None:
    x = op.args[0]
    a = _pool_args(
        op, ["kernel_size", "stride", "padding", "dilation", "ceil_mode"], [None, [], 0, 1, False]
    )
    k = _one(a["kernel_size"])
    stride = _one(a["stride"]) if a["stride"] not in ([], None) else k
    kw: dict[str, str] = {}
    if stride != k:
        kw["stride"] = fmt(stride)
    for name, default in (("padding", 0), ("dilation", 1), ("ceil_mode", False)):
        if _one(a[name]) != default:
            kw[name] = fmt(_one(a[name]))
    if t.lib.has_f("max_pool2d"):
        fn = t.lib.F("max_pool2d", "F.max_pool2d")
    elif not kw and isinstance(k, int) and t.lib.has_nn("max_pool2d"):
        fn = t.lib.nn("max_pool2d", "F.max_pool2d")  # jaxnets.layers: stride = kernel
    else:
        fn = t.lib.F("max_pool2d", f"F.max_pool2d({fmt(k)}, {kw})")
    expr = call(fn, t.as_perm(x, channels_last(4)), fmt(k), **kw)
    t.emit(Stmt(expr, [op.outputs[0]], op.source, "x"), [channels_last(4)])


@_fn("avg_pool2d")
def _avg_pool(t: Translator, op: Op) -> None:
    x = op.args[0]
    a = _pool_args(
        op,
        ["kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"],
        [None, [], 0, False, True, None],
    )
    k = _one(a["kernel_size"])
    stride = _one(a["stride"]) if a["stride"] not in ([], None) else k
    kw: dict[str, str] = {}
    if stride != k:
        kw["stride"] = fmt(stride)
    for name, default in (
        ("padding", 0),
        ("ceil_mode", False),
        ("count_include_pad", True),
        ("divisor_override", None),
    ):
        if _one(a[name]) != default:
            kw[name] = fmt(_one(a[name]))
    fn = t.lib.F("avg_pool2d", "F.avg_pool2d")
    expr = call(fn, t.as_perm(x, channels_last(4)), fmt(k), **kw)
    t.emit(Stmt(expr, [op.outputs[0]], op.source, "x"), [channels_last(4)])


@_fn("adaptive_avg_pool2d", "adaptive_max_pool2d", "_adaptive_avg_pool2d")
def _adaptive(t: Translator, op: Op) -> None:
    x, size = op.args[0], _one(op.args[1])
    name = "adaptive_max_pool2d" if "max" in op.name else "adaptive_avg_pool2d"
    fn = t.lib.F(name, f"F.{name}")
    out = op.outputs[0]
    expr = call(fn, t.as_perm(x, channels_last(4)), fmt(size))
    t.emit(Stmt(expr, [out], op.source, "x"), [channels_last(4)])
    for extra in op.outputs[1:]:  # adaptive_max_pool2d's indices: refused if used
        t.perm[extra] = identity(extra.rank)


def translate_scope(lib: Lib, scope: Scope) -> ScopeCode:
    """Translate one scope's operations; :class:`PortError` names what is outside the
    vocabulary and where."""
    return Translator(lib, scope).run()
