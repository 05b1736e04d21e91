"""Tree comparison in one place: structure first, then leaves, naming the first path that differs.

Pure numpy (no torch), so users can compare a twin's outputs, gradients or state against any
reference. Bounds come from :mod:`jaxnets.tolerances`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["LeafDiff", "assert_trees_all_close", "flatten_tree", "leaf_diff"]


@dataclass(frozen=True)
class LeafDiff:
    """Error of one leaf: largest absolute error, relative error, and the verdict.

    ``max_rel`` is ``max|a - b| / max|b|`` (infinity-norm relative error; 0 when both are 0).
    ``ok`` is the project's criterion ``max|a - b| <= atol + rtol * max|b|`` (see
    :mod:`jaxnets.tolerances` for why it is normwise), and ``tolerance_used`` is the left side
    over the right: the fraction of the tolerance spent (fails above 1).
    """

    max_abs: float
    max_rel: float
    ok: bool
    tolerance_used: float = 0.0


def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor handed in directly; no torch import needed
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def leaf_diff(actual: Any, expected: Any, *, rtol: float, atol: float) -> LeafDiff:
    """Compare two arrays of the same shape. Returns the errors; never raises on values."""
    a = _as_array(actual).astype(np.float64)
    b = _as_array(expected).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: actual {a.shape} vs expected {b.shape}")
    if a.size == 0:
        return LeafDiff(0.0, 0.0, True, 0.0)
    finite_a, finite_b = np.isfinite(a), np.isfinite(b)
    if not np.array_equal(finite_a, finite_b) or not np.array_equal(a[~finite_a], b[~finite_b]):
        return LeafDiff(float("inf"), float("inf"), False, float("inf"))
    a, b = a[finite_a], b[finite_b]
    if a.size == 0:
        return LeafDiff(0.0, 0.0, True, 0.0)
    err = np.abs(a - b)
    max_abs = float(err.max())
    scale = float(np.abs(b).max())
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    bound = atol + rtol * scale
    used = max_abs / bound if bound > 0 else (0.0 if max_abs == 0 else float("inf"))
    return LeafDiff(max_abs, max_rel, max_abs <= bound, used)


def flatten_tree(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings and sequences into ``{'a.b.0': leaf}`` (mapping order kept)."""
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(flatten_tree(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(tree, Sequence) and not isinstance(tree, str | bytes):
        out = {}
        for i, v in enumerate(tree):
            out.update(flatten_tree(v, f"{prefix}.{i}" if prefix else str(i)))
        return out
    return {prefix: tree}


def assert_trees_all_close(actual: Any, expected: Any, *, rtol: float, atol: float) -> None:
    """Assert two trees have the same structure and leaves close within ``rtol``/``atol``.

    Trees are nested dicts/lists/tuples of arrays (numpy, jax or torch tensors). Checks the
    set of paths first, then shapes, then values; the error names the first differing path
    with its max absolute and relative error, and counts how many leaves fail.
    """
    fa, fe = flatten_tree(actual), flatten_tree(expected)
    if fa.keys() != fe.keys():
        missing = sorted(set(fe) - set(fa))
        extra = sorted(set(fa) - set(fe))
        raise AssertionError(
            f"tree structures differ: missing in actual {missing}, unexpected in actual {extra}"
        )
    failures = []
    for path in fe:
        a, e = _as_array(fa[path]), _as_array(fe[path])
        if a.shape != e.shape:
            raise AssertionError(f"{path}: shape {a.shape} != expected {e.shape}")
        d = leaf_diff(a, e, rtol=rtol, atol=atol)
        if not d.ok:
            failures.append((path, d))
    if failures:
        path, d = failures[0]
        raise AssertionError(
            f"{len(failures)} of {len(fe)} leaves differ; first: {path!r} "
            f"max_abs={d.max_abs:.3e} max_rel={d.max_rel:.3e} (rtol={rtol:g}, atol={atol:g})"
        )
