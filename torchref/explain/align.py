"""Alignment: pair the two sides layer by layer, measure every difference, find where the
twin first departs from torch.

The second stage of :func:`torchref.explain.explain`. One :class:`LayerRow` per torch module
call, in forward (completion) order, matched to the twin's record of the same path name
(twins use torch's attribute names) with the twin's arrays moved to torch layout. A torch
module that is a plain function in the twin (``jax.nn.gelu`` where torch has ``nn.GELU``) is
inferred by dataflow: its twin input is the twin output of the module whose torch output
equals its torch input, its twin output the twin input of the next module whose torch input
equals its torch output. Each row then gets the error of its input, output, ``d loss /
d output``, worst parameter gradient and buffers, and a local check (the torch layer run on
the TWIN's input), which tells a wrong layer from one that inherits an upstream error.

The first divergence is the first row, in forward order, whose input, output or shape differs
(or where the twin raised); else the first row whose buffers differ after the pass; else the
last row whose output gradient differs (the backward pass goes wrong just after it); else the
loss, else the parameters.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from jaxnets.testing import LeafDiff, leaf_diff
from jaxnets.tolerances import Tolerance
from torchref.explain.arrays import as_numpy
from torchref.explain.capture import Capture
from torchref.explain.report import LayerRow

__all__ = ["Alignment", "TwinValues", "align", "to_torch_layout"]

#: the twin's input, output and ``d loss / d output`` of one row, in torch layout (None: none)
TwinValues = tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]


@dataclass
class Alignment:
    """The rows of one comparison, the twin's values behind them, and the first divergence.

    ``values[i]`` belongs to ``rows[i]``; ``first`` indexes ``rows`` (None: no row diverges)
    and ``first_kind`` is ``'forward'``, ``'buffers'``, ``'backward'``, ``'loss'``,
    ``'parameters'`` or None.
    """

    rows: list[LayerRow] = field(default_factory=list)
    values: list[TwinValues] = field(default_factory=list)
    loss: LeafDiff | None = None
    param_mismatches: list[str] = field(default_factory=list)
    torch_only: list[str] = field(default_factory=list)
    flax_only: list[str] = field(default_factory=list)
    first: int | None = None
    first_kind: str | None = None


def to_torch_layout(a: np.ndarray, torch_shape: tuple[int, ...] | None, image: bool) -> np.ndarray:
    """The twin's channels-last array in torch's channels-first layout.

    Image twins: every array of 3 or more dimensions is channels-last (``(N, H, W, C) ->
    (N, C, H, W)``) unless it already has torch's shape and the moved one would not.
    Feature twins: moved only when that, and only that, gives torch's shape.
    """
    if a.ndim < 3:
        return a
    moved = np.moveaxis(a, -1, 1)
    target = None if torch_shape is None else tuple(torch_shape)
    if image:
        return a if (a.shape == target and moved.shape != target) else moved
    return moved if (moved.shape == target and a.shape != target) else a


def _is_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def align(cap: Capture, tol: Tolerance, *, image: bool) -> Alignment:
    """Rows for every torch module call of ``cap``, measured against ``tol``, with the first
    divergence located. ``image``: the twin's activations are NHWC."""
    al = Alignment()
    if cap.torch_loss is not None and cap.flax_loss is not None:
        al.loss = leaf_diff(
            np.asarray(cap.flax_loss), as_numpy(cap.torch_loss), rtol=tol.rtol, atol=tol.atol
        )
    for k, t in cap.params_t.items():
        f = cap.params_f.get(k)
        if f is None or f.shape != t.shape or not leaf_diff(f, t, rtol=tol.rtol, atol=tol.atol).ok:
            al.param_mismatches.append(k)
    t_names = {r.name for r in cap.torch_records}
    al.flax_only = [  # modules only: the twin's own helper methods are no news
        n for n in cap.flax_types if n not in t_names and not cap.flax_types[n].endswith("()")
    ]
    _pair_rows(cap, al, image)
    _infer_plain_functions(cap, al)
    _measure(cap, al, tol)
    _mark_containers(cap, al.rows)
    al.first, al.first_kind = _first_divergence(cap, al)
    return al


def _pair_rows(cap: Capture, al: Alignment, image: bool) -> None:
    """One row per torch record, with the twin's values of the same name in torch layout."""
    for i, tr_ in enumerate(cap.torch_records):
        fo = cap.flax_out.get(tr_.name)
        fi = cap.flax_in.get(tr_.name)
        fo = np.asarray(fo) if _is_array(fo) else None
        fi = np.asarray(fi) if _is_array(fi) else None
        tshape = None if tr_.output is None else tuple(tr_.output.shape)
        if fo is not None:
            fo = to_torch_layout(fo, tshape, image)
        if fi is not None and tr_.input is not None:
            fi = to_torch_layout(fi, tuple(tr_.input.shape), image)
        fg = cap.flax_grads.get(tr_.name)
        fg = to_torch_layout(np.asarray(fg), tshape, image) if _is_array(fg) else None
        known = tr_.name in cap.flax_types
        row = LayerRow(
            index=i + 1,
            name=tr_.name,
            torch_type=tr_.type_name,
            flax_type=cap.flax_types.get(tr_.name) if known else None,
            torch_shape=tshape,
            flax_shape=None if fo is None else tuple(fo.shape),
            torch_in_shape=None if tr_.input is None else tuple(tr_.input.shape),
            flax_in_shape=None if fi is None else tuple(fi.shape),
        )
        if tr_.name == cap.error_at:
            row.error = cap.flax_error
            if fi is not None and tr_.input is not None:
                row.note = f"twin input {tuple(fi.shape)}, torch input {tuple(tr_.input.shape)}"
        al.rows.append(row)
        al.values.append((fi, fo, fg))


def _infer_plain_functions(cap: Capture, al: Alignment) -> None:
    """Torch modules that are plain functions in the twin: their values by dataflow."""
    t_records, vals = cap.torch_records, al.values
    for i, (tr_, row) in enumerate(zip(t_records, al.rows, strict=True)):
        if row.flax_type is not None or tr_.input is None or tr_.output is None:
            continue
        if any(True for _ in tr_.module.children()):
            continue
        src = next(
            (
                j
                for j in range(i - 1, -1, -1)
                if vals[j][1] is not None
                and t_records[j].output is not None
                and t_records[j].output.shape == tr_.input.shape
                and np.array_equal(t_records[j].output, tr_.input)
            ),
            None,
        )
        dst = next(
            (
                j
                for j in range(i + 1, len(t_records))
                if vals[j][0] is not None
                and t_records[j].input is not None
                and t_records[j].input.shape == tr_.output.shape
                and np.array_equal(t_records[j].input, tr_.output)
            ),
            None,
        )
        if src is None or dst is None:
            if cap.flax_error is None:
                al.torch_only.append(tr_.name)
            continue
        vals[i] = (vals[src][1], vals[dst][0], None)
        row.flax_type = "(inferred)"
        row.flax_shape = tuple(vals[dst][0].shape)
        row.flax_in_shape = tuple(vals[src][1].shape)


def _measure(cap: Capture, al: Alignment, tol: Tolerance) -> None:
    """Every row's errors: input, output, gradients, buffers and the local check."""
    t_grads: dict[str, np.ndarray] = {}
    for tr_ in cap.torch_records:
        if tr_.tensor is not None and tr_.tensor.grad is not None:
            t_grads[tr_.name] = as_numpy(tr_.tensor.grad)
    for tr_, row, (fi, fo, fg) in zip(cap.torch_records, al.rows, al.values, strict=True):
        if fi is not None and tr_.input is not None and fi.shape == tr_.input.shape:
            row.input = leaf_diff(fi, tr_.input, rtol=tol.rtol, atol=tol.atol)
        if fo is not None and tr_.output is not None and fo.shape == tr_.output.shape:
            row.output = leaf_diff(fo, tr_.output, rtol=tol.rtol, atol=tol.atol)
        elif row.shape_mismatch:
            row.note = row.note or f"output shape: twin {row.flax_shape}, torch {row.torch_shape}"
        if fg is not None and tr_.name in t_grads and fg.shape == t_grads[tr_.name].shape:
            row.output_grad = leaf_diff(fg, t_grads[tr_.name], rtol=tol.rtol, atol=tol.atol)
        prefix = f"{tr_.name}." if tr_.name else ""
        worst: tuple[str, LeafDiff] | None = None
        for pname, p in tr_.module.named_parameters(recurse=False):
            key = prefix + pname
            if p.grad is None or key not in cap.param_grads:
                continue
            d = leaf_diff(cap.param_grads[key], as_numpy(p.grad), rtol=tol.rtol, atol=tol.atol)
            if worst is None or (not d.ok, d.tolerance_used) > (
                not worst[1].ok,
                worst[1].tolerance_used,
            ):
                worst = (key, d)
        row.param_grad = worst
        if cap.flax_error is None and "#" not in tr_.name:
            for bname, _ in tr_.module.named_buffers(recurse=False):
                key = prefix + bname
                if key in cap.buffers_after_f:
                    row.buffers[key] = leaf_diff(
                        cap.buffers_after_f[key],
                        cap.buffers_after_t[key],
                        rtol=tol.rtol,
                        atol=tol.atol,
                    )
        # local check: the torch layer on the twin's input
        if (
            tr_.name
            and fi is not None
            and fo is not None
            and tr_.input is not None
            and fi.shape == tr_.input.shape
            and tr_.output is not None
            and fo.shape == tr_.output.shape
        ):
            local_mod = copy.deepcopy(tr_.module)
            for h in list(local_mod._forward_hooks):
                local_mod._forward_hooks.pop(h)
            with torch.no_grad():
                xin = torch.from_numpy(np.array(fi, copy=True)).to(tr_.tensor.dtype)
                try:
                    y_local = local_mod(xin)
                except Exception:  # a module that needs more than one input
                    y_local = None
            if isinstance(y_local, torch.Tensor):
                row.local = leaf_diff(fo, as_numpy(y_local), rtol=tol.rtol, atol=tol.atol)


def _mark_containers(cap: Capture, rows: list[LayerRow]) -> None:
    """Containers (the model itself, a Sequential) inherit their children's divergence."""
    for i, (tr_, row) in enumerate(zip(cap.torch_records, rows, strict=True)):
        if any(True for _ in tr_.module.children()):
            prefix = f"{tr_.name.split('#')[0]}." if tr_.name else ""
            row.inherits = any(
                rows[j].forward_bad for j in range(i) if rows[j].name.startswith(prefix)
            )


def _first_divergence(cap: Capture, al: Alignment) -> tuple[int | None, str | None]:
    """``(row index or None, kind or None)`` of where the twin first departs from torch."""
    rows = al.rows
    fwd = [i for i, r in enumerate(rows) if r.forward_bad]
    buf = [i for i, r in enumerate(rows) if r.buffers_bad]
    grd = [i for i, r in enumerate(rows) if r.grad_bad]
    if fwd:
        return fwd[0], "forward"
    if cap.error_at is not None or cap.flax_error is not None:
        return None, "forward"
    if buf:
        return buf[0], "buffers"
    if grd:
        out_grad_bad = [
            i for i in grd if rows[i].output_grad is not None and not rows[i].output_grad.ok
        ]
        return (out_grad_bad[-1] if out_grad_bad else grd[0]), "backward"
    if al.loss is not None and not al.loss.ok:
        return None, "loss"
    if al.param_mismatches:
        return None, "parameters"
    return None, None
