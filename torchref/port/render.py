"""Readable source from the statements: names, folding, comments, loops, and the classes.

Names come from the user's own code where it has them: the value a line of ``forward``
assigns takes that line's name (``x = F.relu(self.fc1(x))`` gives ``x``), a value used once
on the same line is folded into the expression that uses it (so that line is one line here
too), and a returned expression is returned. A name is only reused once nothing needs its old
value any more. Each line carries its shape in the twin (``# (N, 15, 15, 6)``) and the user's
own comment.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import itertools
import keyword
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from torchref.port.capture import PortError, Source, Statement, init_statements, statement_at
from torchref.port.expr import Expr, Slot, Stmt
from torchref.port.graph import Scope, Value, is_container, leaf_type
from torchref.port.translate import (
    ScopeCode,
    jax_shape,
    natural,
    shape_text,
    translate_scope,
)
from torchref.port.vocab import Lib, fmt, layer_rule

__all__ = ["generate"]

LINE = 100
_RESERVED = (
    set(keyword.kwlist)
    | set(dir(builtins))
    | {"jax", "jnp", "nnx", "nn", "F", "fast", "convert", "self", "np", "kw", "rngs", "layer"}
)


def _key(src: Source | None) -> tuple[str, int] | None:
    return None if src is None else (src.file, src.line)


def _stmt_info(src: Source | None) -> Statement | None:
    return None if src is None else statement_at(src.file, src.line)


@dataclass
class _Body:
    lines: list[str] = field(default_factory=list)


class BodyWriter:
    """Writes one ``__call__`` body from a translated scope."""

    def __init__(self, code: ScopeCode, arg_names: list[str], indent: str, comments: bool):
        self.code = code
        self.indent = indent
        self.comments = comments
        self.stmts = _loops(code)
        self.uses: dict[Value, int] = {}
        self.consumer: dict[Value, int] = {}
        for i, s in enumerate(self.stmts):
            for v in _reads(s):
                self.uses[v] = self.uses.get(v, 0) + 1
                self.consumer[v] = i
        self.ret_index = len(self.stmts)
        for o in code.outputs:
            for v in o.values() if isinstance(o, Expr) else [o]:
                self.uses[v] = self.uses.get(v, 0) + 1
                self.consumer[v] = self.ret_index
        self.out_values = [
            v for o in code.outputs for v in (o.values() if isinstance(o, Expr) else [o])
        ]
        self.ret_source = self._return_source()
        self.remaining = dict(self.uses)
        self.name_of: dict[Value, str] = {}
        self.binding: dict[str, Value] = {}
        self.folded: dict[Value, Expr] = {}
        self.lines: list[str] = []
        self.commented: set[tuple[str, int]] = set()
        for v, n in zip(code.inputs, arg_names, strict=True):
            self.name_of[v] = n
            self.binding[n] = v
        self.segment = _segments(self.stmts)
        self.fold = [self.foldable(i, st) for i, st in enumerate(self.stmts)]
        self.last_root: dict[int, int] = {}  # segment -> its last statement written as a line
        for i, st in enumerate(self.stmts):
            if not self.fold[i] and (st.expr is not None or st.loop is not None):
                self.last_root[self.segment[i]] = i

    def _return_source(self) -> tuple[str, int] | None:
        """The source line of the ``return`` statement, where the last output is made."""
        self.ret_segment = -1
        for i, s in reversed(list(enumerate(self.stmts))):
            if any(v in self.out_values for v in s.outs):
                info = _stmt_info(s.source)
                if info is not None and info.is_return:
                    self.ret_segment = _segments(self.stmts)[i]
                    return _key(s.source)
                return None
        return None

    # -- rendering
    def render(self, item: Expr | Value | str, need: int = 0) -> str:
        if isinstance(item, str):
            return item
        if isinstance(item, Value):
            if item in self.folded:
                expr = self.folded.pop(item)
                return self.render(expr, need)
            self.remaining[item] = self.remaining.get(item, 1) - 1
            if item not in self.name_of:
                raise AssertionError(f"value {item} used before it has a name")
            return self.name_of[item]
        text = "".join(
            self.render(p.item, p.need) if isinstance(p, Slot) else p for p in item.parts
        )
        return f"({text})" if item.prec < need else text

    def fresh(self, preferred: str) -> str:
        base = preferred if preferred.isidentifier() else "h"
        if base in _RESERVED:
            base += "_"
        name, i = base, 0
        while name in _RESERVED or (
            name in self.binding and self.remaining.get(self.binding[name], 0) > 0
        ):
            i += 1
            name = f"{base}_{i}"
        return name

    def bind(self, v: Value, name: str) -> None:
        self.name_of[v] = name
        self.binding[name] = v

    def comment_for(self, s: Stmt, v: Value | None) -> tuple[list[str], str]:
        """Lines above and the trailing comment of the first line written for ``s``'s source
        line: the user's comments there, and the shape of ``v`` here. The user's trailing
        comment is marked ``torch:`` where the twin holds the value in another layout (its
        shapes would be torch's)."""
        above: list[str] = []
        if s.note:
            above.append(s.note)
        shape = self.shape_of(v) if v is not None else None
        trailing = shape or ""
        k = _key(s.source)
        if self.comments and k is not None and k not in self.commented:
            self.commented.add(k)
            info = _stmt_info(s.source)
            if info is not None:
                above = list(info.above) + above
                comment = info.comment
                if comment and v is not None and self.permuted(v):
                    comment = f"torch: {comment}"
                if comment and shape and shape in comment:
                    trailing = comment
                elif comment:
                    trailing = f"{trailing}  {comment}" if trailing else comment
        return above, trailing

    def permuted(self, v: Value) -> bool:
        perm = self.code.perms.get(v)
        return perm is not None and perm != tuple(range(len(perm)))

    def write(self, code: str, above: list[str], trailing: str) -> None:
        for a in above:
            self.lines.append(f"{self.indent}# {a}")
        self.lines.extend(fit(code, self.indent, trailing))

    def shape_of(self, v: Value) -> str | None:
        if v.shape is None or not self.comments:
            return None
        return shape_text(jax_shape(v, self.code.perms.get(v, natural(v))))

    def run(self) -> list[str]:
        for i, s in enumerate(self.stmts):
            if s.loop is not None:
                self.write_loop(s)
                continue
            if s.expr is None:
                if s.note and self.comments:
                    self.lines.append(f"{self.indent}# {s.note}")
                continue
            if self.fold[i]:
                self.folded[s.outs[0]] = s.expr
                continue
            if self.is_return(i, s):
                self.write_return(s)
                return self.lines
            expr = self.render(s.expr)
            names = [self.fresh(self.preferred(i, s, j)) for j in range(len(s.outs))]
            for v, n in zip(s.outs, names, strict=True):
                self.bind(v, n)
            target = ", ".join(names) if names else "_"
            above, trailing = self.comment_for(s, s.outs[0] if len(s.outs) == 1 else None)
            self.write(f"{target} = {expr}", above, trailing)
        self.write_return(None)
        return self.lines

    def foldable(self, i: int, s: Stmt) -> bool:
        """Whether ``s`` is written inside the one expression that uses it: it makes one
        value, used once, by a statement of the same execution of the same source line."""
        if len(s.outs) != 1 or s.note or s.expr is None or s.loop is not None:
            return False
        v = s.outs[0]
        if self.uses.get(v, 0) != 1 or _key(s.source) is None:
            return False
        j = self.consumer[v]
        if j == self.ret_index:
            return self.ret_source == _key(s.source) and self.ret_segment == self.segment[i]
        target = self.stmts[j]
        return target.loop is None and self.segment[j] == self.segment[i]

    def is_return(self, i: int, s: Stmt) -> bool:
        """Write ``return expr`` for this statement: it makes the only output, on the return
        line, and nothing after it writes code."""
        if len(self.code.outputs) != 1 or len(s.outs) != 1:
            return False
        out = self.code.outputs[0]
        if out is not s.outs[0] or self.uses.get(s.outs[0], 0) != 1:
            return False
        if _key(s.source) != self.ret_source or self.ret_source is None:
            return False
        return all(t.expr is None and t.loop is None for t in self.stmts[i + 1 :])

    def preferred(self, i: int, s: Stmt, j: int) -> str:
        """The name the user gave this value: the target of its line when it is the line's
        result (``x = ...``, or ``a, b = ...`` for several values), else a hint."""
        if self.last_root.get(self.segment[i]) == i:
            info = _stmt_info(s.source)
            if info is not None and info.target and len(s.outs) == 1:
                return info.target
            if info is not None and len(info.targets) == len(s.outs):
                return info.targets[j]
        return s.hint if j == 0 else f"{s.hint}_{j}"

    def write_loop(self, s: Stmt) -> None:
        text, v = s.loop  # type: ignore[misc]
        name = self.render(v)
        out = s.outs[0]
        if self.remaining.get(v, 0) > 0:  # the input is needed again: loop on a copy
            new = self.fresh(self.preferred_loop(s))
            self.write(f"{new} = {name}", [], "")
            name = new
        self.bind(out, name)
        above, trailing = self.comment_for(s, out)
        self.write(f"for layer in {text}:", above, trailing)
        self.lines.append(f"{self.indent}    {name} = layer({name})")

    def preferred_loop(self, s: Stmt) -> str:
        info = _stmt_info(s.source)
        return info.target if info is not None and info.target else "h"

    def write_return(self, s: Stmt | None) -> None:
        if s is not None:
            expr = self.render(s.expr)  # type: ignore[arg-type]
            above, trailing = self.comment_for(s, s.outs[0])
            self.write(f"return {expr}", above, trailing)
            return
        parts = [self.render(o) for o in self.code.outputs]
        self.write(f"return {', '.join(parts)}", [], "")


def _segments(stmts: list[Stmt]) -> list[int]:
    """Each statement's execution of its source line: a line's statements are one execution
    until a layer of the same list comes again (``for layer in self.layers: x =
    act(layer(x))`` runs its line once per layer)."""
    out: list[int] = []
    seg, key, seen = 0, None, set()
    for s in stmts:
        k = _key(s.source)
        mod = s.meta.get("module")
        sig = None
        if mod is not None and "[" in mod[0]:
            sig = mod[0].split("[")[0]
        if k != key or (sig is not None and sig in seen):
            seg, key, seen = seg + 1, k, set()
        if sig is not None:
            seen.add(sig)
        out.append(seg)
    return out


def _reads(s: Stmt) -> list[Value]:
    if s.loop is not None:
        return [s.loop[1]]
    return s.expr.values() if s.expr is not None else []


def _loops(code: ScopeCode) -> list[Stmt]:
    """Replace the unrolled calls of an ``nn.Sequential`` by ``for layer in self.net: x =
    layer(x)`` where that is the same computation: each layer takes the previous one's output
    as it is (no transpose between them), nothing else reads the values in between, and no
    layer is itself a list."""
    stmts = list(code.stmts)
    groups = sorted(code.seq_groups, key=lambda g: -g[0])
    nested = {
        (a, b)
        for a, b, _, _ in code.seq_groups
        for c, d, _, _ in code.seq_groups
        if (c, d) != (a, b) and a <= c and d <= b
    }
    reads: dict[Value, int] = {}
    for s in stmts:
        for v in _reads(s):
            reads[v] = reads.get(v, 0) + 1
    for o in code.outputs:
        for v in o.values() if isinstance(o, Expr) else [o]:
            reads[v] = reads.get(v, 0) + 1
    for start, end, text, op in groups:
        if (start, end) in nested or end - start < 2:
            continue
        body = stmts[start:end]
        if len(body) != len(op.children):
            continue
        ok = True
        prev: Value | None = None
        for s in body:
            mod = s.meta.get("module")
            if mod is None or not mod[1] or len(s.outs) != 1 or s.loop is not None:
                ok = False
                break
            inputs = _reads(s)
            if len(inputs) != 1 or (prev is not None and inputs[0] is not prev):
                ok = False
                break
            if prev is not None and reads.get(prev, 0) != 1:
                ok = False
                break
            prev = s.outs[0]
        if not ok or prev is None:
            continue
        first_in = _reads(body[0])[0]
        loop = Stmt(None, [prev], body[0].source, "x", loop=(text, first_in))
        stmts[start:end] = [loop]
    return stmts


# --- classes ---------------------------------------------------------------------------------


@dataclass
class _ClassInfo:
    name: str
    module: nn.Module
    path: str
    code: ScopeCode | None
    text: str = ""
    plain: str = ""  # the text without shape comments (classes shared by several instances)
    raw_params: list[str] = field(default_factory=list)
    lifted: list[tuple[str, type]] | None = None  # constructor parameters of a shared class
    lifted_texts: list[str] | None = None  # its __init__ items with those parameters


@dataclass
class _InitItem:
    attr: str
    text: str  # the constructor expression
    above: list[str]
    trailing: str


def _arg_names(module: nn.Module, n: int) -> list[str]:
    try:
        params = list(inspect.signature(type(module).forward).parameters)[1:]
    except (TypeError, ValueError):
        params = []
    params = [p for p in params if p.isidentifier() and p not in _RESERVED]
    if len(params) >= n and n == 1:
        return params[:1]
    if len(params) == n:
        return params
    return ["x"] if n == 1 else [f"x{i}" for i in range(n)]


class Generator:
    def __init__(
        self,
        model: nn.Module,
        root: Scope,
        name: str,
        comments: bool = True,
        init_args: dict[int, dict[str, Any]] | None = None,
    ) -> None:
        self.model = model
        self.root = root
        self.name = name
        self.comments = comments
        self.lib = Lib()
        self.codes: dict[int, list[tuple[Scope, ScopeCode]]] = {}
        self.class_names: dict[int, str] = {}
        self.ctor_args: dict[int, str] = {}  # instance -> its constructor's lifted arguments
        self.init_args = init_args or {}
        self.order: list[nn.Module] = []

    def collect(self, scope: Scope) -> None:
        code = translate_scope(self.lib, scope)
        self.codes.setdefault(id(scope.module), []).append((scope, code))
        for op in code.calls:
            if op.scope is not None:
                self.collect(op.scope)

    def run(self) -> str:
        self.collect(self.root)
        self.classes: list[str] = []
        self.registrations: list[str] = []
        self.used_names = {self.name}
        # every user module's instances, in post-order (children before parents)
        self.user_modules = [
            (p, m)
            for p, m in _post_order(self.model)
            if not is_container(m) and leaf_type(m) is None
        ]
        for _, m in self.user_modules:
            self.name_class(m)
        top = self.class_for(self.model, "", top=True)
        top.name = self.name
        self.classes.append(self.render_class(top, top=True, shared=False))
        self.registrations += self.registration(top)
        return self.file_text(self.classes, self.registrations)

    def name_class(self, m: nn.Module) -> None:
        """Write the class of ``m``'s type (once for all its instances): one class when every
        instance's code is the same, or differs only in numbers that are the constructor's
        arguments (lifted into parameters); else one class per distinct code."""
        if id(m) in self.class_names:
            return
        group = [(p, o) for p, o in self.user_modules if type(o) is type(m)]
        for _, inst in group:  # the classes of their children first
            for _, child in _post_order(inst):
                if not is_container(child) and leaf_type(child) is None:
                    self.name_class(child)
        infos = [self.class_for(inst, path, top=False) for path, inst in group]
        # instances whose code differs only in numbers: one class if those are arguments
        clusters: dict[str, list[_ClassInfo]] = {}
        for info in infos:
            sp = _split_numbers(info.plain)
            clusters.setdefault("\0".join(sp[0]) if sp else info.plain, []).append(info)
        distinct: list[list[_ClassInfo]] = []
        for members in clusters.values():
            same: dict[str, list[_ClassInfo]] = {}
            for info in members:
                same.setdefault(info.plain, []).append(info)
            if len(same) > 1 and (lifted := self.lift(members)) is not None:
                members[0].lifted = lifted
                distinct.append(members)
            else:
                distinct += list(same.values())
        for members in distinct:
            info = members[0]
            # one commented body for every instance (their shapes agree), or none
            bodies = {
                tuple(self.body(o.code, o.module, comments=True)) if o.code else () for o in members
            }
            shared = len(bodies) > 1 or info.lifted is not None
            base, i = type(m).__name__, 1
            cname = base
            while cname in self.used_names:
                i += 1
                cname = f"{base}{i}"
            self.used_names.add(cname)
            info.name = cname
            for other in members:
                self.class_names[id(other.module)] = cname
            self.classes.append(self.render_class(info, top=False, shared=shared))
            self.registrations += self.registration(info)

    def lift(self, infos: list[_ClassInfo]) -> list[tuple[str, type]] | None:
        """The constructor parameters that make every instance's code one class, or None.

        Every instance must have the same code but for number literals in ``__init__``; each
        number that differs must equal one of the constructor's arguments (recorded when the
        model was built) in every instance. Those arguments become the class's parameters,
        and each instance is built with its own values."""
        args = [self.init_args.get(id(i.module)) for i in infos]
        if any(a is None for a in args):
            return None
        bodies = {
            tuple(self.body(i.code, i.module, comments=False)) if i.code else () for i in infos
        }
        if len(bodies) > 1:
            return None
        items = [self.init_items(i) for i in infos]
        if len({tuple(it.attr for it in its) for its in items}) > 1:
            return None
        params = list(args[0])  # signature order
        used: dict[str, type] = {}
        rewritten: list[list[str]] = [[] for _ in infos]
        for k in range(len(items[0])):
            texts = [its[k].text for its in items]
            split = [_split_numbers(t) for t in texts]
            if any(sp is None for sp in split) or len({tuple(sp[0]) for sp in split}) > 1:
                return None
            numbers = [sp[1] for sp in split]
            names: list[str | None] = []
            for slot in range(len(numbers[0])):
                values = [nums[slot] for nums in numbers]
                if len(set(values)) == 1:
                    names.append(None)
                    continue
                name = next(
                    (
                        p
                        for p in params
                        if all(_same_number(a.get(p), v) for a, v in zip(args, values, strict=True))
                    ),
                    None,
                )
                if name is None:
                    return None
                used[name] = type(args[0][name])
                names.append(name)
            for idx, sp in enumerate(split):
                rewritten[idx].append(_join_numbers(sp[0], sp[2], names))
        for info, texts in zip(infos, rewritten, strict=True):
            info.lifted_texts = texts
        ordered = [(p, used[p]) for p in params if p in used]
        for info, a in zip(infos, args, strict=True):
            self.ctor_args[id(info.module)] = ", ".join(f"{p}={fmt(a[p])}" for p, _ in ordered)
        return ordered

    def _shared(self, m: nn.Module, user_modules: list[tuple[str, nn.Module]]) -> bool:
        return sum(type(o) is type(m) for _, o in user_modules) > 1

    def class_for(self, m: nn.Module, path: str, top: bool) -> _ClassInfo:
        entries = self.codes.get(id(m), [])
        code = entries[0][1] if entries else None
        info = _ClassInfo(type(m).__name__, m, path, code)
        # the plain text decides whether two instances can share one class
        info.plain = self.render_class(info, top=top, shared=True, dry=True)
        if len(entries) > 1:
            first = self.body(entries[0][1], m, comments=False)
            for _, other in entries[1:]:
                if self.body(other, m, comments=False) != first:
                    raise PortError(
                        f"{path or type(m).__name__} ({type(m).__name__}) runs different code "
                        f"on different calls (control flow that depends on its input); jaxnets "
                        f"port writes one __call__ per module"
                    )
        return info

    def body(self, code: ScopeCode, m: nn.Module, comments: bool) -> list[str]:
        names = _arg_names(m, len(code.inputs))
        return BodyWriter(code, names, " " * 8, comments).run()

    # -- __init__
    def init_items(self, info: _ClassInfo) -> list[_InitItem]:
        """One item per attribute of ``__init__``: torch's raw parameters, then its submodules
        (torch's state-dict order), then modules the forward pass needs (``F.dropout``)."""
        m = info.module
        items: list[_InitItem] = []
        info.raw_params = []
        statements = init_statements(type(m)) if self.comments else {}
        extra: dict[str, str] = {}
        overrides: dict[str, dict[str, Any]] = {}
        for _, code in self.codes.get(id(m), []):
            extra.update(code.extra_attrs)
        for entries in self.codes.values():
            for _, code in entries:
                overrides.update(code.overrides)

        def add(attr: str, text: str, note: str | None = None) -> None:
            above: list[str] = []
            trailing = ""
            if attr in statements:
                _, st = statements[attr]
                above, trailing = list(st.above), st.comment or ""
            items.append(_InitItem(attr, text, [*above, *([note] if note else [])], trailing))

        for name, p in m._parameters.items():
            if p is None:
                continue
            info.raw_params.append(name)
            text = self.param_ctor(p)
            note = None
            if "random" in text:
                note = (
                    "an nn.Parameter drawn in torch's __init__: load torch's state dict for its "
                    "values"
                )
            add(name, text, note)
        for name, b in m._buffers.items():
            if b is not None and name not in m._non_persistent_buffers_set:
                raise PortError(
                    f"{type(m).__name__} registers the buffer {name!r}: buffers of your own "
                    f"modules are outside the vocabulary of jaxnets port"
                )
        for name, child in m._modules.items():
            if child is None:
                continue
            path = f"{info.path}.{name}" if info.path else name
            add(name, self.ctor(child, path, overrides))
        for name, text in extra.items():
            add(name, text)
        return items

    def init_lines(self, info: _ClassInfo) -> tuple[list[str], bool]:
        """The body of ``__init__`` and whether it uses ``kw``."""
        items = self.init_items(info)
        texts = info.lifted_texts or [it.text for it in items]
        lines: list[str] = []
        for it, text in zip(items, texts, strict=True):
            for a in it.above:
                lines.append(f"        # {a}")
            lines.extend(fit(f"self.{it.attr} = {text}", " " * 8, it.trailing))
        return lines, any("**kw" in t for t in texts)

    def param_ctor(self, p: torch.Tensor) -> str:
        self.lib.use("jnp")
        shape = fmt(tuple(p.shape))
        dtype = "param_dtype or jnp.float32"
        flat = p.detach().flatten()
        if flat.numel() and bool((flat == flat[0]).all()):
            v = float(flat[0])
            if v == 0.0:
                return f"nnx.Param(jnp.zeros({shape}, {dtype}))"
            if v == 1.0:
                return f"nnx.Param(jnp.ones({shape}, {dtype}))"
            # the shortest text that gives the same float32 (0.01, not 0.009999999776482582)
            text = str(np.float32(v)) if p.dtype == torch.float32 else repr(v)
            return f"nnx.Param(jnp.full({shape}, {text}, {dtype}))"
        self.lib.use("jax")
        return f"nnx.Param(jax.random.normal(rngs.params(), {shape}, {dtype}))"

    def ctor(self, child: nn.Module, path: str, overrides: dict[str, dict[str, Any]]) -> str:
        if type(child) in (nn.Sequential, nn.ModuleList):
            items = [self.ctor(c, f"{path}.{n}", overrides) for n, c in child._modules.items()]
            return "nnx.List([" + ", ".join(items) + "])"
        if isinstance(child, nn.ModuleDict):
            items = [
                f'"{n}": {self.ctor(c, f"{path}.{n}", overrides)}'
                for n, c in child._modules.items()
            ]
            return "nnx.Dict({" + ", ".join(items) + "})"
        cls = leaf_type(child)
        if cls is None:
            args = self.ctor_args.get(id(child))
            return f"{self.class_names[id(child)]}({args + ', ' if args else ''}**kw)"
        rule = layer_rule(cls)
        if rule is None:
            raise PortError(
                f"nn.{cls.__name__} ({path}){_init_where(self.model, path)} is outside the "
                f"vocabulary of jaxnets port"
            )
        what = f"nn.{cls.__name__} ({path}){_init_where(self.model, path)}"
        return rule.build(self.lib, child, overrides.get(path, {}), what)

    def registration(self, info: _ClassInfo) -> list[str]:
        if not info.raw_params:
            return []
        self.lib.use("convert")
        rules = ", ".join(f'convert.Rule("{n}", "{n}")' for n in info.raw_params)
        rules = f"({rules},)" if len(info.raw_params) == 1 else f"({rules})"
        return fit(f"convert.register_rule({info.name}, {rules})", "", "")

    # -- the class
    def render_class(self, info: _ClassInfo, top: bool, shared: bool, dry: bool = False) -> str:
        m = info.module
        init, uses_kw = self.init_lines(info)
        if dry:
            # only the structure: child constructors and the body without comments
            body = self.body(info.code, m, comments=False) if info.code else []
            return "\n".join(init + body)
        lines = [f"class {info.name}(nnx.Module):"]
        lines.append(f'    """{self.class_doc(info, top)}"""')
        lines.append("")
        lifted = "".join(f"{p}: {t.__name__}, " for p, t in info.lifted or [])
        lines += fit(
            f"def __init__(self, {lifted}*, rngs: nnx.Rngs, dtype: Any = None, "
            "param_dtype: Any = None) -> None:",
            "    ",
        )
        if uses_kw:
            lines.append("        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)")
        if not init:
            init = ["        del rngs, dtype, param_dtype  # no parameters"]
        lines += init
        if info.code is not None:
            code = info.code
            names = _arg_names(m, len(code.inputs))
            self.lib.use("jax")
            sig = ", ".join(f"{n}: jax.Array" for n in names)
            ret = "jax.Array" if len(code.outputs) == 1 else "tuple[jax.Array, ...]"
            lines.append("")
            lines.append(f"    def __call__(self, {sig}) -> {ret}:")
            doc = self.call_doc(code, names, shared)
            lines.append(f'        """{doc}"""')
            lines += self.body(code, m, comments=not shared)
        return "\n".join(lines)

    def class_doc(self, info: _ClassInfo, top: bool) -> str:
        m = info.module
        file = inspect.getsourcefile(type(m)) if not _builtin(type(m)) else None
        where = f" ({os.path.basename(file)})" if file else ""
        return f"torch's ``{type(m).__name__}``{where} in Flax NNX."

    def call_doc(self, code: ScopeCode, names: list[str], shared: bool) -> str:
        def describe(v: Value) -> str:
            shape = shape_text(jax_shape(v, natural(v)))
            return f"NHWC {shape}" if natural(v) != tuple(range(v.rank)) else shape

        ins = ", ".join(describe(v) for v in code.inputs)
        outs = ", ".join(describe(v) for v in code.outputs_values)
        if shared:
            return "Forward pass, as torch's ``forward``."
        return f"Forward pass: {ins} -> {outs}."

    def file_text(self, classes: list[str], registrations: list[str]) -> str:
        m = self.model
        file = inspect.getsourcefile(type(m))
        origin = os.path.basename(file) if file else "?"
        top = self.codes[id(m)][0][1]

        def torch_desc(v: Value) -> str:
            return shape_text(v.shape)

        ins = ", ".join(torch_desc(v) for v in top.inputs)
        image = any(natural(v) != tuple(range(v.rank)) for v in top.inputs)
        lines = [
            f'"""torch\'s ``{type(m).__name__}`` ({origin}) as a Flax NNX twin, written by '
            f"``jaxnets port``.",
            "",
            f"torch input {ins}"
            + (" NCHW; here NHWC (images are channels last in Flax)." if image else "."),
            "Load torch's weights with ``jaxnets.convert.load_state_dict(twin, state_dict)``.",
            '"""',
            "",
            "from __future__ import annotations",
            "",
        ]
        lines += self.lib.imports()
        out = "\n".join(lines) + "\n\n\n" + "\n\n\n".join(classes) + "\n"
        if registrations:
            out += (
                "\n\n# The nn.Parameter attributes above keep torch's names and layout.\n"
                + "\n".join(registrations)
                + "\n"
            )
        return out


def _post_order(m: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """Submodules of ``m`` (not ``m`` itself), children before their parent."""
    out: list[tuple[str, nn.Module]] = []
    for name, child in m.named_children():
        path = f"{prefix}.{name}" if prefix else name
        out += _post_order(child, path)
        out.append((path, child))
    return out


def _builtin(cls: type) -> bool:
    return (cls.__module__ or "").startswith(("torch.", "builtins"))


def _init_where(model: nn.Module, path: str) -> str:
    """`` at model.py:12 (self.lstm = nn.LSTM(...))`` for the ``__init__`` line that created
    the module at ``path``."""
    owner_path, _, attr = path.rpartition(".")
    owner = model.get_submodule(owner_path) if owner_path else model
    while is_container(owner) and owner_path:
        attr = owner_path.rpartition(".")[2]
        owner_path = owner_path.rpartition(".")[0]
        owner = model.get_submodule(owner_path) if owner_path else model
    found = init_statements(type(owner)).get(attr)
    return f" at {found[0]}" if found else ""


def fit(code: str, indent: str, trailing: str = "") -> list[str]:
    """``code`` at ``indent`` within the line length, split as ruff's formatter splits it: a
    long expression of ``+``/``-`` (or ``*``/``/``) inside parentheses, one operand a line;
    else the outermost brackets, their contents on one line if that fits, else one item a
    line with a trailing comma. The comment goes after the last line, or above if too long."""
    line = f"{indent}{code}"
    if len(line) <= LINE:
        lines = [line]
    else:
        lines = _split(code, indent)
        for prefix in ("return ", *(code[: i + 3] for i in [code.find(" = ")] if i > 0)):
            operands = _top_level_operands(code[len(prefix) :])
            if code.startswith(prefix) and operands is not None:
                body = [f"{indent}    {op}" for op in operands]
                lines = [f"{indent}{prefix}(", *body, f"{indent})"]
                break
    if not trailing:
        return lines
    if len(f"{lines[-1]}  # {trailing}") <= LINE:
        return [*lines[:-1], f"{lines[-1]}  # {trailing}"]
    return [f"{indent}# {trailing}", *lines]


def _top_level_operands(expr: str) -> list[str] | None:
    """``a + f(b) - c`` as ``['a', '+ f(b)', '- c']``: split before the operators of the
    lowest precedence outside brackets (None when there are none), as ruff breaks a long
    expression inside parentheses."""
    for ops in ((" + ", " - "), (" * ", " / ", " @ ")):
        cuts, depth = [], 0
        for i, ch in enumerate(expr):
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
            elif depth == 0 and any(expr.startswith(op, i) for op in ops):
                cuts.append(i)
        if cuts:
            bounds = [0, *[c + 1 for c in cuts], len(expr)]
            return [expr[a:b].strip() for a, b in itertools.pairwise(bounds)]
    return None


def _split(code: str, indent: str) -> list[str]:
    """``head(items)tail`` over several lines (the last top-level bracket pair of ``code``)."""
    opening = _outer_bracket(code)
    if opening is None:
        return [f"{indent}{code}"]
    close = _matching(code, opening)
    head, inner, tail = code[: opening + 1], code[opening + 1 : close], code[close:]
    items = _split_top(inner)
    one = f"{indent}    {inner.strip()}"
    magic = inner.rstrip().endswith(",")
    if len(one) <= LINE and not magic:
        return [f"{indent}{head}", one, f"{indent}{tail}"]
    if len(items) == 1:
        return [f"{indent}{head}", *_split(items[0], indent + "    "), f"{indent}{tail}"]
    body = [f"{indent}    {it}," for it in items]
    out = [f"{indent}{head}"]
    for b in body:
        out += [b] if len(b) <= LINE else _split(b, indent + "    ")
    return [*out, f"{indent}{tail}"]


def _outer_bracket(code: str) -> int | None:
    """The index of the opening bracket whose pair closes at the end of ``code``'s first
    top-level bracket group ending the expression (``f(`` in ``x = f(a, b)``)."""
    depth = 0
    for i, ch in enumerate(code):
        if ch in "([{":
            if depth == 0:
                return i
            depth += 1
        elif ch in ")]}":
            depth -= 1
    return None


def _matching(code: str, opening: int) -> int:
    depth = 0
    for i in range(opening, len(code)):
        if code[i] in "([{":
            depth += 1
        elif code[i] in ")]}":
            depth -= 1
            if depth == 0:
                return i
    return len(code) - 1


def _split_top(s: str) -> list[str]:
    """Split ``a(1, 2), b, c([3])`` at its top-level commas."""
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def generate(
    model: nn.Module,
    root: Scope,
    name: str | None = None,
    init_args: dict[int, dict[str, Any]] | None = None,
) -> str:
    """The twin's source for ``model`` (whose forward pass is ``root``). ``init_args``: each
    user module's constructor arguments by ``id`` (:func:`torchref.port.capture.build_model`
    records them), so that instances of one class with other sizes share one class."""
    name = name or type(model).__name__
    return Generator(model, root, name, init_args=init_args).run()


def _split_numbers(text: str) -> tuple[list[str], list[Any], list[str]] | None:
    """``text`` as the pieces between its number literals, the numbers and their text (None
    when it does not tokenize)."""
    import io
    import textwrap
    import tokenize

    text = textwrap.dedent(text)
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    offsets = [0]
    for line in text.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    pieces, numbers, raws, last = [], [], [], 0
    for tok in toks:
        if tok.type == tokenize.NUMBER:
            start = offsets[tok.start[0] - 1] + tok.start[1]
            end = offsets[tok.end[0] - 1] + tok.end[1]
            pieces.append(text[last:start])
            numbers.append(ast.literal_eval(tok.string))
            raws.append(tok.string)
            last = end
    pieces.append(text[last:])
    return pieces, numbers, raws


def _join_numbers(pieces: list[str], raws: list[str], names: list[str | None]) -> str:
    out = pieces[0]
    for piece, raw, name in zip(pieces[1:], raws, names, strict=True):
        out += (name if name is not None else raw) + piece
    return out


def _same_number(a: Any, b: Any) -> bool:
    return (
        isinstance(a, int | float)
        and not isinstance(a, bool)
        and isinstance(b, int | float)
        and a == b
        and type(a) is type(b)
    )
