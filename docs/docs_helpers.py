"""Presentation helpers for the documentation pages (not part of the package).

The pages show the models' real source, read from the code at build time, so a page cannot
show code that differs from what it runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from IPython.display import Markdown

ROOT = Path(__file__).resolve().parent.parent


def _block(obj: Any, title: str) -> str:
    path = Path(inspect.getsourcefile(obj)).resolve().relative_to(ROOT)
    src = inspect.getsource(obj).rstrip()
    return f":::{{code-block}} python\n:caption: {title}: {path}\n\n{src}\n:::\n"


def source(obj: Any, title: str) -> Markdown:
    """The source of ``obj`` as a captioned code block."""
    return Markdown(_block(obj, title))


def source_pair(torch_obj: Any, jax_obj: Any) -> Markdown:
    """The torch original and its Flax twin, side by side."""
    return Markdown(
        "::::{container} twin\n"
        + _block(torch_obj, "PyTorch")
        + _block(jax_obj, "JAX (Flax NNX)")
        + "::::\n"
    )


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> Markdown:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return Markdown("\n".join(lines))


def max_diff(a: Any, b: Any) -> float:
    """Largest absolute difference of two arrays (torch tensors, jax or numpy arrays)."""
    import numpy as np

    def arr(x: Any) -> Any:
        return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)

    return float(np.max(np.abs(arr(a).astype(np.float64) - arr(b).astype(np.float64))))
