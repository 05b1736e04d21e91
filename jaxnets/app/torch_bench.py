"""``jaxnets bench``: training-step time and batch-1 latency, PyTorch and JAX side by side.

For each model and batch size, four ways to train the same model on the same batches with
``SGD(lr=0.01)`` and the model's loss are timed in one process, interleaved round by round
(:func:`jaxnets.app.bench.time_interleaved`):

* ``torch_eager``: torch's loop body, ``zero_grad(); loss = f(model(x), y); loss.backward();
  opt.step()``, at torch's default thread count;
* ``torch_compile``: the same with ``model = torch.compile(model)`` (left out, with the error,
  where it does not work);
* ``jax_jit``: one ``Trainer.step`` call per step (a pure jitted function of flat arrays);
* ``jax_scan``: all steps of a block in one ``Trainer.run_epoch`` (one ``lax.scan``).

Batch-1 inference latency is timed the same way (``torch.inference_mode()`` against the jitted
``Trainer.predict``, ``jax_jit``, and ``Trainer.frozen_predictor`` with the weights compiled
in, ``jax_frozen``), each call waiting for its result. In the same rounds it times the
cheapest jitted call on the same input (:func:`jaxnets.app.bench.dispatch_floor_variant`), so the
JAX rows also say what JAX's dispatch alone costs here (``dispatch_floor_us``) and the
best latency ratio any JAX call could reach (``ceiling_vs_torch_eager``).

``device="gpu"`` runs both sides on the GPU (torch on ``cuda``, JAX on its CUDA backend), with
true float32 on both (JAX matmul precision ``'highest'``, torch TF32 off): the same arithmetic
the parity suite checks. Every torch block ends with ``torch.cuda.synchronize()`` and every
JAX block waits for its last result, so each timing covers the finished work. On a GPU the
peak column is left empty (the CPU peak formula does not apply). Both sides start from the same
weights (torch initialises, the bridge copies) and the first loss and the eval outputs are
checked to agree before anything is timed, so the numbers compare equal computations.

Every result is a median over repeats; speedups are medians of the per-round ratios
``time(torch_eager) / time(variant)``. Compile time (first call minus one steady call) is
reported apart from steady-state time. Achieved GFLOP/s counts the FLOPs of the matrix
products and convolutions of one step (:func:`jaxnets.app.bench.matmul_flops`), the same work
for every variant.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import math
import os
import platform
import statistics
from collections.abc import Callable, Sequence
from typing import Any, Literal

import jax
import numpy as np
import torch

import jaxnets
import torchref
from jaxnets import optim
from jaxnets.app import bench as jbench
from jaxnets.app import host
from jaxnets.app.torch_runs import torch_device
from jaxnets.training.trainer import Trainer
from torchref.bridge import torch_to_flax
from torchref.parity import TORCH_LOSSES
from torchref.precision import set_precision

__all__ = [
    "INFER_JAX_VARIANTS",
    "TRAIN_VARIANTS",
    "BenchmarkError",
    "bench_inference",
    "bench_training",
    "check_targets",
    "cli_main",
    "dump_json",
    "markdown",
    "render",
    "run",
]

TRAIN_VARIANTS = ("torch_eager", "torch_compile", "jax_jit", "jax_scan")
INFER_JAX_VARIANTS = ("jax_jit", "jax_frozen")  # Trainer.predict, Trainer.frozen_predictor
LR = 0.01  # the tutorials' SGD learning rate


class BenchmarkError(RuntimeError):
    """The two sides do not compute the same thing, so timing them would compare nothing."""


# --------------------------------------------------------------------------------------------
# torch variants
# --------------------------------------------------------------------------------------------


def _torch_train_variant(
    name: str,
    model: torch.nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    sync: Callable[[], None],
) -> jbench.Variant:
    opt = torch.optim.SGD(model.parameters(), lr=LR)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    def first() -> None:
        step(*batches[0])
        sync()

    def block() -> None:
        for x, y in batches:
            step(x, y)
        sync()

    return jbench.Variant(name, "train", len(batches), first, block, first_units=1)


def _torch_infer_variant(
    name: str, model: torch.nn.Module, x: torch.Tensor, calls: int, sync: Callable[[], None]
) -> Any:
    def first() -> None:
        with torch.inference_mode():
            model(x)
        sync()

    def block() -> None:
        with torch.inference_mode():
            for _ in range(calls):
                model(x)
                sync()  # each call waits for its result (a no-op on the CPU)

    return jbench.Variant(name, "infer", calls, first, block, first_units=1)


def _inductor_cache() -> dict[str, Any]:
    """Where torch.compile's Inductor caches compiled code, and how many files it held before
    this run: with a warm cache ``torch_compile``'s ``compile_s`` skips most of the compile
    (xor_net's training step here: 1.9 s warm, 11 s cold). ``TORCHINDUCTOR_CACHE_DIR`` set to a
    new empty folder times a cold compile."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    folder = cache_dir()
    files = sum(len(f) for _, _, f in os.walk(folder)) if os.path.isdir(folder) else 0
    return {"dir": folder, "files_at_start": files}


def _compiled(model: torch.nn.Module) -> torch.nn.Module:
    return torch.compile(copy.deepcopy(model))


# --------------------------------------------------------------------------------------------
# one model
# --------------------------------------------------------------------------------------------


Device = Literal["cpu", "gpu"]


def _sync(dev: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)


def _pair(name: str, seed: int, dev: torch.device) -> tuple[torch.nn.Module, Any]:
    torch.manual_seed(seed)
    t = torchref.create_model(name)
    f = jaxnets.create_model(name)
    torch_to_flax(t, f)
    return t.to(dev), f


def _rows(
    name: str,
    batch_size: int,
    kind: str,
    variants: Sequence[jbench.Variant],
    times: dict[str, list[float]],
    flops: int,
    peak: jbench.CpuPeak | None,
    compiler_options: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    """One result row per variant; JAX rows record the XLA options they were compiled with."""
    base = times.get("torch_eager")
    rows = []
    for v in variants:
        row: dict[str, Any] = {
            "model": name,
            "batch_size": batch_size,
            "kind": kind,
            "variant": v.name,
            "us_per_step": None,
            "compile_s": None,
            "speedup_vs_torch_eager": None,
            "gflops": None,
            "peak_fraction": None,
            "us_all": [],
            "units_per_block": v.units,
            "flops_per_step": flops,
            "error": v.error or None,
        }
        if v.name.startswith("jax"):
            row["compiler_options"] = compiler_options
        t = times.get(v.name)
        if t:
            med = statistics.median(t)
            row["us_per_step"] = med * 1e6
            row["us_all"] = [round(s * 1e6, 3) for s in t]
            if v.name != "torch_eager":  # eager has nothing to compile
                # not clamped at 0: a negative value would say the first call compiled
                # nothing (already compiled elsewhere), which must show, not hide
                row["compile_s"] = v.first_s - v.first_units * med
            if base:
                row["speedup_vs_torch_eager"] = statistics.median(
                    b / s for b, s in zip(base, t, strict=True)
                )
            row["gflops"] = flops / med / 1e9
            row["peak_fraction"] = row["gflops"] / peak.gflops if peak else None
        rows.append(row)
    return rows


def bench_training(
    name: str,
    batch_size: int,
    *,
    steps: int,
    repeats: int,
    torch_compile: bool,
    peak: jbench.CpuPeak | None,
    seed: int = 0,
    device: Device = "cpu",
) -> list[dict[str, Any]]:
    """Time one training step of ``name`` at ``batch_size`` in every variant; one row each.

    Raises :class:`BenchmarkError` when the two sides' first losses differ beyond the
    float32 tolerance (the timed programs would not be the same computation).
    """
    spec = jaxnets.get_model_spec(name)
    dev = torch_device(device)
    sync = _sync(dev)
    t_model, f_model = _pair(name, seed, dev)
    x, y = spec.example_batch(steps * batch_size, np.random.default_rng(seed))
    loss_fn = TORCH_LOSSES[spec.loss]

    xt, yt = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
    batches = [
        (xt[i * batch_size : (i + 1) * batch_size], yt[i * batch_size : (i + 1) * batch_size])
        for i in range(steps)
    ]
    with torch.no_grad():
        torch_first = float(loss_fn(t_model(batches[0][0]), batches[0][1]))

    trainer = Trainer(f_model, optim.sgd(lr=LR), spec.loss)
    jax_variants, info = jbench.jax_train_variants(
        trainer, spec.to_flax_layout(x), y, batch_size, steps
    )
    if not jbench.same_computation(info["first_loss"], torch_first):
        raise BenchmarkError(
            f"{name}: first loss differs (torch {torch_first!r}, JAX {info['first_loss']!r}); "
            "the twin does not compute what torch computes, run `jaxnets compare`"
        )
    variants = [_torch_train_variant("torch_eager", t_model, loss_fn, batches, sync)]
    if torch_compile:
        torch._dynamo.reset()  # a fresh recompile budget for each model
        variants.append(
            _torch_train_variant("torch_compile", _compiled(t_model), loss_fn, batches, sync)
        )
    variants += jax_variants
    times = jbench.time_interleaved(variants, repeats)
    flops = info["flops_per_step"]
    rows = _rows(name, batch_size, "train", variants, times, flops, peak, trainer.compiler_options)
    compiles = info["step_fn"]._cache_size()
    for row in rows:
        row["loss_check"] = {"torch": torch_first, "jax": info["first_loss"]}
        if row["variant"] == "jax_jit":
            row["jit_cache_size"] = compiles  # 1: the step never recompiled
    return rows


def bench_inference(
    name: str,
    *,
    calls: int,
    repeats: int,
    torch_compile: bool,
    peak: jbench.CpuPeak | None,
    seed: int = 0,
    batch_size: int = 1,
    device: Device = "cpu",
) -> list[dict[str, Any]]:
    """Latency of one eval-mode forward call of ``name`` (batch 1 by default); one row each.

    Raises :class:`BenchmarkError` when the two sides' outputs differ beyond tolerance.
    """
    spec = jaxnets.get_model_spec(name)
    dev = torch_device(device)
    sync = _sync(dev)
    t_model, f_model = _pair(name, seed, dev)
    t_model.eval()
    x, _ = spec.example_batch(batch_size, np.random.default_rng(seed))
    xt = torch.from_numpy(x).to(dev)
    trainer = Trainer(f_model, optim.sgd(lr=LR), spec.loss)
    jax_variants, info = jbench.jax_infer_variants(trainer, spec.to_flax_layout(x), calls)
    with torch.inference_mode():
        t_out = t_model(xt).cpu().numpy()
    variants = [_torch_infer_variant("torch_eager", t_model, xt, calls, sync)]
    if torch_compile:
        torch._dynamo.reset()
        variants.append(_torch_infer_variant("torch_compile", _compiled(t_model), xt, calls, sync))
    variants += jax_variants
    floor = jbench.dispatch_floor_variant(spec.to_flax_layout(x), calls)
    times = jbench.time_interleaved([*variants, floor], repeats)
    # The JAX outputs come from each variant's first (compiling) call, inside the timing.
    for variant, out in info["outputs"].items():
        if not jbench.same_computation(out, t_out):
            raise BenchmarkError(
                f"{name}: eval outputs differ between torch and JAX's {variant}; "
                "run `jaxnets compare`"
            )
    flops = info["flops"]
    rows = _rows(name, batch_size, "infer", variants, times, flops, peak, trainer.compiler_options)
    _attach_floor(rows, times, floor)
    return rows


def _attach_floor(
    rows: Sequence[dict[str, Any]], times: dict[str, list[float]], floor: jbench.Variant
) -> None:
    """Record the dispatch floor on the JAX rows (``jax_jit``, ``jax_frozen``):
    ``dispatch_floor_us`` (median) and ``ceiling_vs_torch_eager`` (median of per-round
    ``torch_eager / floor``: the best ratio any JAX call on this input could reach in this
    run). ``None`` when it could not run."""
    ft, base = times.get(floor.name), times.get("torch_eager")
    for row in rows:
        if row["variant"] not in INFER_JAX_VARIANTS:
            continue
        row["dispatch_floor_us"] = statistics.median(ft) * 1e6 if ft else None
        row["ceiling_vs_torch_eager"] = (
            statistics.median(b / f for b, f in zip(base, ft, strict=True)) if ft and base else None
        )


# --------------------------------------------------------------------------------------------
# the whole run
# --------------------------------------------------------------------------------------------


def _machine(device: Device = "cpu") -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    gpu = torch.cuda.get_device_name(0) if device == "gpu" else None
    return {
        "device": device,
        "gpu": gpu,
        "jax_matmul_precision": str(jax.config.jax_default_matmul_precision),
        "torch_allow_tf32": [
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
        ],
        "cpu": jbench.cpu_peak().cpu,
        "cpus": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "jax_cpu_async_dispatch": bool(jax.config.read("jax_cpu_enable_async_dispatch")),
        "host_malloc": host.retained(),
        "loadavg_start": [round(v, 1) for v in load] if load else None,
    }


def run(
    names: Sequence[str],
    *,
    batch_sizes: Sequence[int] | None = None,
    steps: int | None = None,
    repeats: int = 7,
    infer_calls: int = 200,
    inference: bool = True,
    torch_compile: bool = True,
    peak: jbench.CpuPeak | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    device: Device = "cpu",
) -> dict[str, Any]:
    """Benchmark ``names``; returns the JSON document (``results`` rows, ``targets``,
    ``machine``, ``peak``, ``settings``).

    ``device="gpu"`` times both frameworks on the GPU (the caller selects JAX's CUDA backend
    first; :func:`cli_main` does) and has no peak (``peak`` is ignored).

    ``batch_sizes`` overrides every model's defaults (:func:`jaxnets.app.bench.default_batch_sizes`)
    and ``steps`` the steps per timed block (:func:`jaxnets.app.bench.default_steps`).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if batch_sizes is not None and any(b < 1 for b in batch_sizes):
        raise ValueError(f"batch sizes must be >= 1, got {list(batch_sizes)}")
    torch_device(device)  # a clear error before anything runs
    if device == "gpu" and jax.default_backend() != "gpu":
        raise BenchmarkError(
            f"--device gpu: JAX runs on {jax.default_backend()!r}; select its GPU backend first "
            "(jaxnets bench --device gpu does) and install JAX with CUDA (pip install -e '.[gpu]')"
        )
    peak = None if device == "gpu" else (peak or jbench.cpu_peak())
    say = progress or (lambda _msg: None)
    doc: dict[str, Any] = {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": _machine(device),
        "peak": (
            {**dataclasses.asdict(peak), "gflops": peak.gflops, "describe": peak.describe()}
            if peak
            else {"describe": "no peak on a GPU run (GFLOP/s are reported)"}
        ),
        "settings": {
            "repeats": repeats,
            "steps": steps,
            "infer_calls": infer_calls,
            "optimizer": f"SGD(lr={LR})",
            "seed": seed,
            "torch_compile": torch_compile,
            "inductor_cache": _inductor_cache() if torch_compile else None,
            "device": device,
        },
        "results": [],
    }
    for name in names:
        for b in batch_sizes or jbench.default_batch_sizes(name):
            n_steps = steps or jbench.default_steps(name, b)
            say(f"train {name} batch {b} ({n_steps} steps x {repeats} repeats)")
            doc["results"] += bench_training(
                name,
                b,
                steps=n_steps,
                repeats=repeats,
                torch_compile=torch_compile,
                peak=peak,
                seed=seed,
                device=device,
            )
        if inference:
            say(f"infer {name} batch 1 ({infer_calls} calls x {repeats} repeats)")
            doc["results"] += bench_inference(
                name,
                calls=infer_calls,
                repeats=repeats,
                torch_compile=torch_compile,
                peak=peak,
                seed=seed,
                device=device,
            )
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    doc["machine"]["loadavg_end"] = [round(v, 1) for v in load] if load else None
    doc["targets"] = check_targets(doc["results"], peak, device=device)
    return doc


# --------------------------------------------------------------------------------------------
# targets and rendering
# --------------------------------------------------------------------------------------------

_MNIST_MLPS = frozenset(
    {
        "simple_neural_network",
        "custom_neural_network",
        "neural_network",
        "two_layer_net",
        "batchnorm_mlp",
        "mlp",
    }
)


def _find(rows: Sequence[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for r in rows:
        if all(r.get(k) == v for k, v in match.items()) and r.get("us_per_step") is not None:
            return r
    return None


def _best_jax(rows: Sequence[dict[str, Any]], model: str, b: int) -> dict[str, Any] | None:
    cands = [
        r
        for v in ("jax_jit", "jax_scan")
        if (r := _find(rows, model=model, batch_size=b, kind="train", variant=v)) is not None
    ]
    return max(cands, key=lambda r: r["speedup_vs_torch_eager"] or 0.0) if cands else None


def check_targets(
    rows: Sequence[dict[str, Any]], peak: jbench.CpuPeak | None, *, device: Device = "cpu"
) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it is met.

    Training targets use the faster JAX variant (named in the row). Only the targets whose
    models and batch sizes were measured are listed. The CPU targets are for CPU runs; a GPU
    run has one of its own: a scan-fused epoch of an MNIST MLP at batch 64 at least 10x torch
    eager (run it with ``--steps 937``, one MNIST epoch of 60000 images).
    """
    out: list[dict[str, Any]] = []

    def add(target: str, model: str, b: int, value: float, need: float, unit: str, how: str):
        out.append(
            {
                "target": target,
                "model": model,
                "batch_size": b,
                "measured": value,
                "required": need,
                "unit": unit,
                "met": bool(value >= need),
                "how": how,
            }
        )

    train = sorted({(r["model"], r["batch_size"]) for r in rows if r["kind"] == "train"})
    for model, b in train:
        best = _best_jax(rows, model, b)
        if best is None or best["speedup_vs_torch_eager"] is None:
            continue
        s, how = best["speedup_vs_torch_eager"], best["variant"]
        scan_row = _find(rows, model=model, batch_size=b, kind="train", variant="jax_scan")
        if device == "gpu":
            if model in _MNIST_MLPS and b == 64 and scan_row is not None:
                add(
                    "scan-fused MLP epoch vs torch eager on a GPU, batch 64",
                    model,
                    b,
                    scan_row["speedup_vs_torch_eager"],
                    10.0,
                    "x",
                    f"jax_scan, {scan_row['units_per_block']} steps per block",
                )
        elif model == "xor_net":
            steps = best["units_per_block"]
            what = "whole run" if steps == 1000 else f"{steps} of the run's 1000 epochs"
            add(f"xor_net {what} vs torch eager", model, b, s, 150.0, "x", how)
        elif model in _MNIST_MLPS or jaxnets.get_model_spec(model).layout == "features":
            if b == 64:
                add("MLP train step vs torch eager, batch 64", model, b, s, 2.0, "x", how)
            if b == 1024 and model in _MNIST_MLPS and peak is not None:
                frac = best["peak_fraction"] or 0.0
                add("MLP train step, fraction of FP32 peak", model, b, frac, 0.85, "of peak", how)
        elif model == "lenet" and b in (64, 256):
            add(f"lenet train step vs torch eager, batch {b}", model, b, s, 1.5, "x", how)
        add("JAX ahead of torch eager", model, b, s, 1.0, "x", how)
        jit = _find(rows, model=model, batch_size=b, kind="train", variant="jax_jit")
        scan = _find(rows, model=model, batch_size=b, kind="train", variant="jax_scan")
        if jit and scan:
            ratio = statistics.median(
                j / s for j, s in zip(jit["us_all"], scan["us_all"], strict=True)
            )
            add("scan-fused epoch not slower than steps one by one", model, b, ratio, 1.0, "x",
                "jax_jit time / jax_scan time")  # fmt: skip
    infer = [] if device == "gpu" else sorted({r["model"] for r in rows if r["kind"] == "infer"})
    for model in infer:  # the latency target is a CPU one
        cands = [
            r
            for r in rows
            if r["model"] == model
            and r["kind"] == "infer"
            and r["variant"] in INFER_JAX_VARIANTS
            and r["speedup_vs_torch_eager"]
        ]
        if cands:
            r = max(cands, key=lambda r: r["speedup_vs_torch_eager"])
            how = r["variant"]
            if r.get("ceiling_vs_torch_eager"):
                how += (
                    f"; a jitted call doing nothing on this input takes "
                    f"{r['dispatch_floor_us']:.1f} µs, so at most "
                    f"{r['ceiling_vs_torch_eager']:.2f}x"
                )
            add(
                "batch-1 inference latency vs torch eager",
                r["model"],
                r["batch_size"],
                r["speedup_vs_torch_eager"],
                3.0,
                "x",
                how,
            )
            out[-1]["ceiling"] = r.get("ceiling_vs_torch_eager")
    return out


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def _pct(fraction: float | None) -> str:
    """A fraction as a percentage: two significant digits, whole numbers from 10 % up."""
    if fraction is None:
        return "-"
    pct = 100 * fraction
    return f"{pct:.0f}" if pct >= 10 else f"{pct:.2g}"


def _where(doc: dict[str, Any]) -> str:
    """The hardware that ran the benchmark, in words."""
    m = doc["machine"]
    cpus = doc["peak"].get("cores") or m.get("cpus", "?")
    where = f"{m['cpu']} ({cpus} CPUs)"
    if m.get("device") == "gpu":
        where = (
            f"GPU {m['gpu']} (both frameworks on it, true float32: JAX matmul precision "
            f"{m['jax_matmul_precision']}, torch TF32 off) with host {where}"
        )
    return where


def render(doc: dict[str, Any]) -> str:
    """The results, the targets and the machine as plain text tables."""
    lines = [
        f"{'model':<22} {'batch':>5} {'kind':<5} {'variant':<13} {'us/step':>10} "
        f"{'compile s':>9} {'x eager':>8} {'GFLOP/s':>8} {'% peak':>6}"
    ]
    lines.append("-" * len(lines[0]))
    for r in doc["results"]:
        lines.append(
            f"{r['model']:<22} {r['batch_size']:>5} {r['kind']:<5} {r['variant']:<13} "
            f"{_fmt(r['us_per_step'], '10.1f')} {_fmt(r['compile_s'], '9.2f')} "
            f"{_fmt(r['speedup_vs_torch_eager'], '8.2f')} {_fmt(r['gflops'], '8.3g')} "
            f"{_fmt(r['peak_fraction'] and 100 * r['peak_fraction'], '6.2g')}"
            + (f"  [not run: {r['error']}]" if r.get("error") else "")
        )
    lines += ["", "targets (medians of per-round ratios):"]
    for t in doc.get("targets", []):
        unit = "x" if t["unit"] == "x" else ""
        value = f"{_measured(t)} %" if t["unit"] == "of peak" else f"{_measured(t)}x"
        need = (
            f"{100 * t['required']:.0f} %"
            if t["unit"] == "of peak"
            else f">= {t['required']:g}{unit}"
        )
        lines.append(
            f"  {'met    ' if t['met'] else 'NOT MET'} {t['target']}: {t['model']} "
            f"b{t['batch_size']} {value} (need {need}; {t['how']})"
        )
    m = doc["machine"]
    lines += [
        "",
        f"machine: {_where(doc)}, {m['platform']}; jax {m['jax']} ({m['jax_backend']}), "
        f"torch {m['torch']} ({m['torch_threads']} threads, its default)",
        f"XLA_FLAGS: {m['xla_flags'] or '(none)'}; JAX CPU async dispatch: "
        f"{m['jax_cpu_async_dispatch']}; host malloc: "
        f"{m.get('host_malloc') or 'as the system has it'}",
        f"load average at start {m['loadavg_start']}, at end {m.get('loadavg_end')}",
        doc["peak"]["describe"],
        "GFLOP/s count the FLOPs of the matrix products and convolutions of one step "
        "(2 per multiply-add), the same work for every variant.",
    ]
    cache = doc["settings"].get("inductor_cache")
    if cache:
        warm = "warm" if cache["files_at_start"] else "empty (cold compiles)"
        lines.append(
            f"torch.compile's compile s: Inductor cache {cache['dir']}, {warm} at the start "
            f"({cache['files_at_start']} files); a warm cache skips most of the compile. "
            f"TORCHINDUCTOR_CACHE_DIR=<a new empty folder> times cold compiles."
        )
    return "\n".join(lines)


def dump_json(doc: dict[str, Any], path: str) -> None:
    """Write ``doc`` to ``path`` as indented JSON (atomically: a temporary file, then rename)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    os.replace(tmp, path)


def cli_main(args: Any) -> int:
    """``jaxnets bench``: parse-free body of the command (``args`` from ``jaxnets.app.cli``)."""
    import sys

    note = ""
    try:  # before JAX's first computation: XLA reads these when its backend starts
        jbench.configure_xla_cpu(
            args.xla_flags.split() if args.xla_flags else (),
            async_dispatch=args.async_dispatch,
        )
    except RuntimeError as exc:
        note = f"XLA settings not applied: {exc}"
        print(f"jaxnets bench: {note}", file=sys.stderr)
    device = getattr(args, "device", "cpu")
    if device == "gpu":
        from jaxnets.app.loop import select_jax_platform

        try:
            torch_device("gpu")
            select_jax_platform("gpu")
        except RuntimeError as exc:
            print(f"jaxnets bench: {exc}", file=sys.stderr)
            return 2
        set_precision("highest")  # true float32 on both sides, as the parity suite runs
    elif not getattr(args, "system_malloc", False):
        host.retain_freed_memory()  # both frameworks share it; the machine info records it
    names = jaxnets.match_models(args.model)
    peak = jbench.cpu_peak(
        cores=args.peak_cores, flops_per_cycle=args.peak_flops_per_cycle, ghz=args.peak_ghz
    )
    doc = run(
        names,
        batch_sizes=args.batch_size,
        steps=args.steps,
        repeats=args.repeats,
        infer_calls=args.infer_calls,
        inference=args.inference,
        torch_compile=args.torch_compile,
        peak=peak,
        seed=args.seed,
        device=device,
        progress=lambda msg: print(f"jaxnets bench: {msg}", file=sys.stderr, flush=True),
    )
    if note:
        doc["machine"]["note"] = note
    print(render(doc))
    if args.json:
        dump_json(doc, args.json)
        print(f"\nwrote {args.json}")
    return 0


def _measured(target: dict[str, Any]) -> str:
    """A target's measured value (percent for 'of peak'), with as many decimals as it takes
    for the printed value to read the way the verdict went: 2.9992x of a 3x target prints
    as 2.999, not as 3.00 next to 'not met'."""
    scale = 100.0 if target["unit"] == "of peak" else 1.0
    value, need = scale * target["measured"], scale * target["required"]
    digits = 1 if target["unit"] == "of peak" else 2
    text = f"{value:.{digits}f}"
    while (float(text) >= need) != bool(target["met"]) and digits < 6:
        digits += 1
        text = f"{value:.{digits}f}"
    return text


def markdown(doc: dict[str, Any]) -> str:
    """The results as a markdown table (one row per model, batch size and kind), followed by
    the targets and the machine, for benchmarks/results."""
    by_key: dict[tuple[str, int, str], dict[str, dict[str, Any]]] = {}
    for r in doc["results"]:
        by_key.setdefault((r["model"], r["batch_size"], r["kind"]), {})[r["variant"]] = r
    head = (
        "| model | batch | kind | torch eager µs | torch.compile µs | JAX jit µs | JAX scan µs "
        "| JAX frozen µs | best JAX × eager | JAX GFLOP/s | % of peak |"
    )
    lines = [head, "|---" * 11 + "|"]
    for (model, b, kind), vs in by_key.items():
        jax_rows = [
            vs[v] for v in ("jax_jit", "jax_scan", "jax_frozen") if v in vs and vs[v]["us_per_step"]
        ]
        best = max(jax_rows, key=lambda r: r["speedup_vs_torch_eager"] or 0.0, default=None)

        def us(v: str, vs: dict[str, dict[str, Any]] = vs) -> str:
            r = vs.get(v)
            if r is None:
                return "-"
            return "n/a" if r["us_per_step"] is None else f"{r['us_per_step']:.1f}"

        lines.append(
            f"| `{model}` | {b} | {kind} | {us('torch_eager')} | {us('torch_compile')} | "
            f"{us('jax_jit')} | {us('jax_scan')} | {us('jax_frozen')} | "
            + (
                f"{best['speedup_vs_torch_eager']:.2f}× ({best['variant'].removeprefix('jax_')}) "
                f"| {best['gflops']:.3g} | {_pct(best['peak_fraction'])} |"
                if best and best["speedup_vs_torch_eager"]
                else "- | - | - |"
            )
        )
    lines += ["", "| target | model | batch | measured | required | met |", "|---" * 6 + "|"]
    for t in doc.get("targets", []):
        pct = t["unit"] == "of peak"
        value = f"{_measured(t)} %" if pct else f"{_measured(t)}×"
        need = f"{100 * t['required']:.0f} %" if pct else f"{t['required']:g}×"
        lines.append(
            f"| {t['target']} | `{t['model']}` | {t['batch_size']} | {value} ({t['how']}) | "
            f"{need} | {'yes' if t['met'] else '**no**'} |"
        )
    m = doc["machine"]
    lines += [
        "",
        f"Machine: {_where(doc)}, jax {m['jax']}, torch {m['torch']} "
        f"at {m['torch_threads']} threads (its default); XLA_FLAGS `{m['xla_flags'] or 'none'}`, "
        f"JAX CPU async dispatch {m['jax_cpu_async_dispatch']}; "
        f"host malloc: {m.get('host_malloc') or 'as the system has it'}; load average "
        f"{m['loadavg_start']} at start, {m.get('loadavg_end')} at end. {doc['peak']['describe']}.",
    ]
    results = doc["results"]
    options = {r["model"]: r["compiler_options"] for r in results if r.get("compiler_options")}
    if options:
        lines.append(
            "JAX compiled with XLA options (`Trainer`'s per-model default): "
            + "; ".join(f"`{k}` {v}" for k, v in options.items())
            + "."
        )
    return "\n".join(lines)
