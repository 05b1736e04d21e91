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


# --- benchmark results (benchmarks/results/*.json, written by `jaxnets bench --json`) ------

RESULTS = ROOT / "benchmarks" / "results"
_TRAIN_JAX = ("jax_jit", "jax_scan")
_INFER_JAX = ("jax_jit", "jax_frozen")


def load_bench(name: str) -> dict[str, Any]:
    """One recorded ``jaxnets bench --json`` file of ``benchmarks/results``."""
    import json

    return json.loads((RESULTS / f"{name}.json").read_text())


def bench_rows(run: dict[str, Any]) -> dict[tuple[str, int, str], dict[str, dict[str, Any]]]:
    """``{(model, batch, kind): {variant: result}}``, in the file's order."""
    rows: dict[tuple[str, int, str], dict[str, dict[str, Any]]] = {}
    for r in run["results"]:
        rows.setdefault((r["model"], r["batch_size"], r["kind"]), {})[r["variant"]] = r
    return rows


def best_jax(variants: dict[str, dict[str, Any]], kind: str) -> tuple[str, float] | None:
    """The fastest JAX variant and its speed over torch eager (median of per-round ratios)."""
    names = _TRAIN_JAX if kind == "train" else _INFER_JAX
    got = [
        (v, variants[v]["speedup_vs_torch_eager"])
        for v in names
        if v in variants and variants[v].get("speedup_vs_torch_eager")
    ]
    return max(got, key=lambda t: t[1]) if got else None


def bench_command(run: dict[str, Any]) -> str:
    """The ``jaxnets bench`` command line that measures ``run`` again."""
    import fnmatch

    import jaxnets

    s = run["settings"]
    rows = bench_rows(run)
    models = sorted({m for m, _, _ in rows})
    cmd = ["jaxnets bench", f"--repeats {s['repeats']}"]
    if s["device"] != "cpu":
        cmd.append(f"--device {s['device']}")
    if models != jaxnets.list_models():
        glob = "[" + "".join(sorted({m[0] for m in models})) + "]*"
        if fnmatch.filter(jaxnets.list_models(), glob) == models:
            cmd.append(f"--model '{glob}'")
        else:
            cmd += [f"--model {m}" for m in models]
        if len(models) == 1:
            cmd += [f"--batch-size {b}" for b in sorted({b for _, b, k in rows if k == "train"})]
    if s.get("steps"):
        cmd.append(f"--steps {s['steps']}")
    if not any(k == "infer" for _, _, k in rows):
        cmd.append("--no-inference")
    if not s["torch_compile"]:
        cmd.append("--no-torch-compile")
    return " ".join(cmd)


def bench_table(run: dict[str, Any]) -> Markdown:
    """The recorded times of one run: microseconds a step (train) or a call (batch-1
    inference), and the best JAX variant over torch eager."""

    def us(variants: dict[str, dict[str, Any]], v: str) -> str:
        r = variants.get(v)
        if r is None:
            return "-"
        if r.get("error"):
            return "failed"
        return f"{r['us_per_step']:.1f}"

    out = []
    for (model, batch, kind), variants in bench_rows(run).items():
        best = best_jax(variants, kind)
        frac = variants.get(best[0], {}).get("peak_fraction") if best else None
        out.append(
            [
                f"`{model}`",
                batch,
                kind,
                us(variants, "torch_eager"),
                us(variants, "torch_compile"),
                us(variants, "jax_jit"),
                us(variants, "jax_scan"),
                us(variants, "jax_frozen"),
                f"{best[1]:.2f}× ({best[0][4:]})" if best else "-",
                "-" if frac is None else f"{100 * frac:.2g}",
            ]
        )
    return table(
        out,
        [
            "model",
            "batch",
            "kind",
            "torch eager µs",
            "torch.compile µs",
            "JAX jit µs",
            "JAX scan µs",
            "JAX frozen µs",
            "best JAX × eager",
            "% of peak",
        ],
    )


def machine_line(run: dict[str, Any]) -> str:
    """The machine and software a run was measured on, from its own record."""
    m = run["machine"]
    where = m["gpu"] or f"{m['cpus']}-CPU {m['cpu']}"
    peak = run.get("peak", {}).get("describe", "")
    load = m.get("loadavg_start")
    return (
        f"{where}; jax {m['jax']}, torch {m['torch']} at {m['torch_threads']} threads; "
        f"{run['settings']['repeats']} repeats; recorded {run['created'][:10]}"
        + (f"; load average at the start {load[0]}" if load else "")
        + (f". {peak}" if peak and m["device"] == "cpu" else "")
    )
