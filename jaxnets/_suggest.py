"""The one "Did you mean ...?" of the project: model names, command-line options. No jax."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["closest"]


def _one_edit(a: str, b: str) -> bool:
    """Whether ``b`` is ``a`` with one letter changed, added, removed or two neighbours
    swapped ('mpl' -> 'mlp')."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        i, j = diff[0], diff[-1]
        return len(diff) == 2 and j == i + 1 and (a[i], a[j]) == (b[j], b[i])
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate ``word`` most likely misspells, or None when none is close.

    Close means: one edit away (a letter changed, added, removed, or two swapped), or a
    ``difflib`` similarity of 0.75 or more, case aside; failing those, the one candidate
    that contains ``word`` (3 letters or more: 'batchnorm' -> 'batchnorm_mlp'). A name that
    merely shares a few letters ('resnet18' and 'lenet') is not close."""
    names = list(candidates)
    key = word.strip().lower()
    if not key:
        return None
    for name in names:
        if _one_edit(key, name.lower()):
            return name
    lowered = {name.lower(): name for name in names}
    close = difflib.get_close_matches(key, list(lowered), n=1, cutoff=0.75)
    if close:
        return lowered[close[0]]
    inside = [name for name in names if len(key) >= 3 and key in name.lower()]
    return inside[0] if len(inside) == 1 else None
