"""Build the user's torch model and capture its forward pass with ``torch.export``.

``torch.export`` traces through ordinary Python (the tutorial LeNet's ``num_flat_features``
loop over ``x.size()[1:]``, which ``torch.fx.symbolic_trace`` cannot iterate), specialises
control flow on the example, and keeps for each operation the stack of module calls it ran
in (``nn_module_stack``) and the Python stack that produced it (``stack_trace``): the port
needs both, to map operations back to torch's attribute names and to the user's source.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib.util
import inspect
import linecache
import os
import re
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["PortError", "Source", "build_model", "capture", "load_class", "source_of_frames"]


class PortError(ValueError):
    """The model cannot be ported; the message is one line naming what and where."""


@dataclass(frozen=True)
class Source:
    """A line of the user's source: file, line number and the statement's text."""

    file: str
    line: int
    text: str

    def where(self) -> str:
        """``file.py:12``."""
        return f"{os.path.basename(self.file)}:{self.line}"

    def __str__(self) -> str:
        return f"{self.where()} ({self.text.strip()})"


_TORCH_DIR = os.path.dirname(torch.__file__)
_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<fn>\S+)\n(?P<code>.*)')


def source_of_frames(
    stack_trace: str | None, within: tuple[str, int, int] | None = None
) -> Source | None:
    """The innermost frame of ``stack_trace`` that is the user's code (not torch's own); with
    ``within`` (file, first line, last line), the innermost one there if there is one."""
    if not stack_trace:
        return None
    found = inside = None
    for m in _FRAME.finditer(stack_trace):
        file = m.group("file")
        if file.startswith(_TORCH_DIR) or not os.path.isabs(file):
            continue  # torch's modules, or a frame torch.export made up ("torch/fx/...")
        if "/site-packages/" in file or "/dist-packages/" in file:
            continue
        found = Source(file, int(m.group("line")), _code(m.group("code")))
        if (
            within is not None
            and os.path.realpath(file) == within[0]
            and within[1] <= found.line <= within[2]
        ):
            inside = found
    return inside or found


def load_class(spec: str) -> type[nn.Module]:
    """``'path/to/model.py:CLASS'`` -> the class, importing the file as a module."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name:
        raise PortError(f"expected FILE.py:CLASS, got {spec!r} (e.g. my_model.py:Net)")
    file = Path(path)
    if not file.is_file():
        raise PortError(f"no such file {path!r} (in FILE.py:CLASS, {spec!r})")
    module_name = f"_jaxnets_port_{file.stem}"
    mod_spec = importlib.util.spec_from_file_location(module_name, file.resolve())
    if mod_spec is None or mod_spec.loader is None:
        raise PortError(f"cannot import {path!r} as a Python module")
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[module_name] = module  # dataclasses and pickling look classes up here
    sys.path.insert(0, str(file.resolve().parent))  # its own imports of neighbouring files
    try:
        mod_spec.loader.exec_module(module)
    except Exception as exc:
        raise PortError(f"importing {path} raised {type(exc).__name__}: {_first(exc)}") from exc
    finally:
        sys.path.remove(str(file.resolve().parent))
    cls = getattr(module, name, None)
    if cls is None:
        found = sorted(
            k
            for k, v in vars(module).items()
            if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == module_name
        )
        raise PortError(f"{path} has no class {name!r}; its nn.Module classes: {found}")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise PortError(f"{name} in {path} is not an nn.Module subclass")
    return cls


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def build_model(
    cls: type[nn.Module], init: dict[str, Any] | None = None
) -> tuple[nn.Module, dict[int, dict[str, Any]]]:
    """``cls(**init)`` in float32, with a message naming the class when it raises; and the
    constructor arguments of each of its own modules, by ``id`` (see :func:`record_init_args`)."""
    try:
        with record_init_args() as args:
            model = cls(**(init or {}))
    except Exception as exc:
        raise PortError(
            f"{cls.__name__}(**{init or {}}) raised {type(exc).__name__}: {_first(exc)}; pass "
            f"the constructor's arguments with --init '{{\"name\": value}}'"
        ) from exc
    return model.float(), args


def _user_classes() -> list[type]:
    out, todo = [], [nn.Module]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if not (sub.__module__ or "").startswith("torch") and "__init__" in sub.__dict__:
                out.append(sub)
    return out


@contextlib.contextmanager
def record_init_args() -> Iterator[dict[int, dict[str, Any]]]:
    """While open, record the arguments each user-defined module is constructed with (its
    own ``__init__``'s, bound to its signature with the defaults): ``{id(module): {name:
    value}}``. The port gives several instances of one class, built with other sizes, one
    class whose constructor takes those sizes."""
    records: dict[int, dict[str, Any]] = {}
    saved = {}

    def wrap(cls: type) -> Any:
        original = cls.__dict__["__init__"]
        try:
            sig = inspect.signature(original)
        except (TypeError, ValueError):
            return original

        @functools.wraps(original)
        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            if id(self) not in records:  # the most derived class's arguments
                try:
                    bound = sig.bind(self, *args, **kwargs)
                    bound.apply_defaults()
                    records[id(self)] = dict(list(bound.arguments.items())[1:])
                except TypeError:
                    records[id(self)] = {}
            original(self, *args, **kwargs)

        return init

    for cls in _user_classes():
        saved[cls] = cls.__dict__["__init__"]
        cls.__init__ = wrap(cls)
    try:
        yield records
    finally:
        for cls, original in saved.items():
            cls.__init__ = original


def example_tensor(example: np.ndarray) -> torch.Tensor:
    """The example input as a torch tensor (float64 is taken as float32, the model's dtype)."""
    arr = np.ascontiguousarray(example)
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    return torch.from_numpy(arr)


def capture(
    model: nn.Module, example: torch.Tensor, *, train: bool = True
) -> torch.export.ExportedProgram:
    """``torch.export`` the forward pass of ``model`` on ``example`` in training mode (or eval
    mode), the batch size left symbolic where the model allows it (so that
    ``x.view(x.size(0), -1)`` stays general). The model is left in the mode it had."""
    dims = {0: torch.export.Dim.AUTO} if example.ndim else None
    was_training = model.training
    try:
        model.train(train)
        with warnings.catch_warnings():  # torch's notes on its own internals, not the user's
            warnings.simplefilter("ignore")
            return torch.export.export(model, (example,), dynamic_shapes=(dims,), strict=False)
    except Exception as exc:
        where = _user_line_of(exc)
        raise PortError(
            f"torch.export could not capture {type(model).__name__}.forward"
            f"{' at ' + where if where else ''}: {type(exc).__name__}: {_first(exc)}"
        ) from exc
    finally:
        model.train(was_training)


def _user_line_of(exc: BaseException) -> str | None:
    """``file.py:12`` of the innermost frame of the user's code in ``exc``'s traceback."""
    tb = exc.__traceback__
    found = None
    while tb is not None:
        file = tb.tb_frame.f_code.co_filename
        if (
            os.path.isabs(file)
            and not file.startswith(_TORCH_DIR)
            and "/site-packages/" not in file
            and not file.startswith(os.path.dirname(__file__))
        ):
            found = f"{os.path.basename(file)}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


# --- comments and assignment targets of the user's source -----------------------------------


@dataclass(frozen=True)
class Statement:
    """The statement of the user's source that holds a line: where it starts, its single
    assignment target name (``x = ...``) or ``return``, and its comments."""

    target: str | None  # 'x' for "x = ...", None otherwise
    targets: tuple[str, ...]  # ('a', 'b') for "a, b = ..."
    is_return: bool
    comment: str | None  # the trailing comment of its first line
    above: tuple[str, ...]  # whole-line comments right above it


def _parse(file: str) -> ast.Module | None:
    try:
        return ast.parse("".join(linecache.getlines(file)))
    except SyntaxError:
        return None


_TREES: dict[str, ast.Module | None] = {}


def statement_at(file: str, line: int) -> Statement | None:
    """The innermost simple statement of ``file`` that spans ``line``."""
    if file not in _TREES:
        _TREES[file] = _parse(file)
    tree = _TREES[file]
    if tree is None:
        return None
    best: ast.stmt | None = None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.Return | ast.Expr)
            and node.lineno <= line <= (node.end_lineno or node.lineno)
            and (best is None or node.lineno >= best.lineno)
        ):
            best = node
    if best is None:
        return None
    target = None
    targets: tuple[str, ...] = ()
    if isinstance(best, ast.Assign) and len(best.targets) == 1:
        t = best.targets[0]
        target = t.id if isinstance(t, ast.Name) else None
        if isinstance(t, ast.Tuple) and all(isinstance(e, ast.Name) for e in t.elts):
            targets = tuple(e.id for e in t.elts)  # type: ignore[attr-defined]
    elif isinstance(best, ast.AnnAssign | ast.AugAssign) and isinstance(best.target, ast.Name):
        target = best.target.id  # "x += y" names its result x too
    lines = linecache.getlines(file)
    return Statement(
        target=target,
        targets=targets,
        is_return=isinstance(best, ast.Return),
        comment=_trailing_comment(lines[best.lineno - 1]) if best.lineno <= len(lines) else None,
        above=_comments_above(lines, best.lineno),
    )


def _code(text: str) -> str:
    """A line of source without its trailing comment."""
    import io
    import tokenize

    try:
        for tok in tokenize.generate_tokens(io.StringIO(text.strip()).readline):
            if tok.type == tokenize.COMMENT:
                return text.strip()[: tok.start[1]].rstrip()
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return text.strip()


def _trailing_comment(text: str) -> str | None:
    """The ``# ...`` comment at the end of a line of code (None if there is none)."""
    try:
        import io
        import tokenize

        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT:
                return tok.string.lstrip("#").strip() or None
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    return None


def _comments_above(lines: list[str], lineno: int) -> tuple[str, ...]:
    out: list[str] = []
    i = lineno - 2
    while i >= 0 and lines[i].strip().startswith("#"):
        out.append(lines[i].strip().lstrip("#").strip())
        i -= 1
    return tuple(reversed(out))


def init_statements(cls: type) -> dict[str, tuple[Source, Statement]]:
    """``{attribute: (source, statement)}`` for each ``self.NAME = ...`` in ``cls.__init__``
    (the first one; comments carried over to the twin's ``__init__``)."""
    init = cls.__dict__.get("__init__")
    if init is None:
        return {}
    try:
        file = inspect.getsourcefile(init)
        lines, start = inspect.getsourcelines(init)
    except (OSError, TypeError):
        return {}
    if file is None:
        return {}
    try:
        tree = ast.parse(_dedent(lines))
    except SyntaxError:
        return {}
    out: dict[str, tuple[Source, Statement]] = {}
    all_lines = linecache.getlines(file)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if (
                    isinstance(t, ast.Attribute)
                    and isinstance(t.value, ast.Name)
                    and t.value.id == "self"
                    and t.attr not in out
                ):
                    lineno = start + node.lineno - 1
                    text = all_lines[lineno - 1] if lineno <= len(all_lines) else ""
                    stmt = Statement(
                        None,
                        (),
                        False,
                        _trailing_comment(text),
                        _comments_above(all_lines, lineno),
                    )
                    out[t.attr] = (Source(file, lineno, text.strip()), stmt)
    return out


def _dedent(lines: list[str]) -> str:
    import textwrap

    return textwrap.dedent("".join(lines))
