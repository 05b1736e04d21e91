"""Loss-curve pictures (PNG) of side-by-side runs.

matplotlib is imported inside the functions and drawn with its Agg canvas directly (no
``pyplot``, no global backend switch), so ``import jaxnets`` never imports matplotlib and
plotting works on machines without a display. Install it with ``pip install -e '.[plot]'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from jaxnets.app.loop import RunResult

__all__ = ["plot_loss_curves", "running_mean"]

_STYLE = {"torch": ("#ee4c2c", "-"), "jax": ("#1f4fa8", "--")}  # PyTorch orange, JAX blue


def running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each step (shorter at the start): ``(n,) -> (n,)``."""
    v = np.asarray(values, dtype=np.float64)
    if window <= 1 or v.size == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, v.size + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_loss_curves(
    results: Sequence[RunResult],
    path: str | Path,
    *,
    title: str = "Training loss: PyTorch and JAX, same start and batch order",
    subtitle: str | None = None,
    smooth: int = 50,
) -> Path:
    """Draw each model's per-step training loss for every framework in one PNG.

    One column per model: on top the loss (running mean over ``smooth`` steps, epoch
    boundaries dotted, test accuracy in the legend); below it the absolute difference
    between the two frameworks' per-step losses on a log scale, when there are two.
    Returns the path written.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib: pip install -e '.[plot]' (or pip install matplotlib)"
        ) from None
    if not results:
        raise ValueError("plot_loss_curves needs at least one RunResult")
    models = list(dict.fromkeys(r.model for r in results))
    paired = any(sum(r.model == m for r in results) == 2 for m in models)
    rows = 2 if paired else 1
    fig = Figure(figsize=(6.0 * len(models), 3.4 + 2.2 * (rows - 1)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(
        rows,
        len(models),
        squeeze=False,
        sharex="col",
        gridspec_kw={"height_ratios": [3, 1.4][:rows]},
    )
    for col, model in enumerate(models):
        runs = [r for r in results if r.model == model]
        ax = axes[0][col]
        for r in runs:
            color, ls = _STYLE.get(r.framework, (None, "-"))
            steps = np.arange(1, len(r.losses) + 1)
            acc = "" if r.test_accuracy is None else f", test acc {100 * r.test_accuracy:.2f}%"
            label = f"{'PyTorch' if r.framework == 'torch' else 'JAX'} ({r.device}){acc}"
            ax.plot(steps, r.losses, color=color, alpha=0.15, linewidth=0.6)
            ax.plot(steps, running_mean(r.losses, smooth), color=color, linestyle=ls, label=label)
        spe = runs[0].steps_per_epoch
        total = max(len(r.losses) for r in runs)
        for e in range(spe, total, spe):
            for a in axes[:, col]:
                a.axvline(e, color="grey", linestyle=":", linewidth=0.8)
        ax.set_title(model)
        ax.set_ylabel(f"training loss (mean of {smooth} steps)")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(loc="upper right", fontsize="small")
        if rows == 2:
            ax2 = axes[1][col]
            if len(runs) == 2 and len(runs[0].losses) == len(runs[1].losses):
                d = np.abs(runs[0].losses - runs[1].losses)
                ax2.plot(steps, np.maximum(running_mean(d, smooth), 1e-12), color="black")
                ax2.set_yscale("log")
            ax2.set_ylabel(f"|torch - jax| loss\n(mean of {smooth} steps)")
            ax2.grid(True, which="major", alpha=0.3)
            ax2.set_xlabel("training step (dotted: epoch boundaries)")
        else:
            ax.set_xlabel("training step (dotted: epoch boundaries)")
    fig.suptitle(title if subtitle is None else f"{title}\n{subtitle}", fontsize="medium")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out
