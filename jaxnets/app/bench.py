"""``jaxnets bench``: training-step time and batch-1 latency, PyTorch and JAX side by side.

For each model and batch size, four ways to train the same model on the same batches with
``SGD(lr=0.01)`` and the model's loss are timed in one process, interleaved round by round
(:func:`time_interleaved`, so that drift of a shared machine affects each alike):

* ``torch_eager``: torch's loop body, ``zero_grad(); loss = f(model(x), y); loss.backward();
  opt.step()``, at torch's default thread count;
* ``torch_compile``: the same with ``model = torch.compile(model)`` (left out, with the error,
  where it does not work);
* ``jax_jit``: one ``Trainer.step`` call per step (a pure jitted function of flat arrays);
* ``jax_scan``: all steps of a block in one ``Trainer.run_epoch`` (one ``lax.scan``).

Batch-1 inference latency is timed the same way (``torch.inference_mode()`` against the jitted
``Trainer.predict``, ``jax_jit``, and ``Trainer.frozen_predictor`` with the weights compiled
in, ``jax_frozen``), each call waiting for its result. In the same rounds it times the
cheapest jitted call on the same input (:func:`dispatch_floor_variant`), so the JAX rows also
say what JAX's dispatch alone costs here (``dispatch_floor_us``) and the best latency ratio
any JAX call could reach (``ceiling_vs_torch_eager``).

``device="gpu"`` runs both sides on the GPU (torch on ``cuda``, JAX on its CUDA backend), with
true float32 on both (JAX matmul precision ``'highest'``, torch TF32 off): the same arithmetic
the parity suite checks. Every torch block ends with ``torch.cuda.synchronize()`` and every
JAX block waits for its last result, so each timing covers the finished work. On a GPU the
peak column is left empty. Both sides start from the same weights (torch initialises, the
bridge copies) and the first loss and the eval outputs are checked to agree before anything
is timed, so the numbers compare equal computations.

Every result is a median over repeats; speedups are medians of the per-round ratios
``time(torch_eager) / time(variant)``. Compile time (first call minus one steady call) is
reported apart from steady-state time. Achieved GFLOP/s count the FLOPs of the matrix products
and convolutions of one step (:func:`matmul_flops`, 2 per multiply-add), the same work for
every variant, against the machine's nominal FP32 peak (:func:`cpu_peak`). The project's own
speed targets (:func:`check_targets`) go into the JSON, and into the printout with
``--targets``.

Also here: the step-time columns of ``jaxnets compare`` (:func:`step_times`) and the A/B
printout of the scripts in ``benchmarks/`` (:func:`ab_lines`). torch is imported only by the
functions that run it.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import gc
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import jax
import jax.extend.core as jcore
import jax.numpy as jnp
import numpy as np

import jaxnets
from jaxnets import fast, optim
from jaxnets._files import atomic_write_bytes
from jaxnets.app import host
from jaxnets.app.report import text_table
from jaxnets.app.runs import torch_device
from jaxnets.testing import leaf_diff
from jaxnets.tolerances import tolerance
from jaxnets.training.trainer import Trainer

if TYPE_CHECKING:
    import torch

__all__ = [
    "INFER_JAX_VARIANTS",
    "TRAIN_VARIANTS",
    "BenchmarkError",
    "CpuPeak",
    "StepTime",
    "Variant",
    "ab_lines",
    "bench_inference",
    "bench_training",
    "check_targets",
    "cli_main",
    "configure_xla_cpu",
    "cpu_peak",
    "default_batch_sizes",
    "default_steps",
    "dispatch_floor_variant",
    "dump_json",
    "jax_infer_variants",
    "jax_train_variants",
    "markdown",
    "matmul_flops",
    "median_ratio",
    "render",
    "run",
    "same_computation",
    "step_times",
    "time_interleaved",
]

# --------------------------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuPeak:
    """Nominal FP32 peak: ``cores * flops_per_cycle * ghz`` GFLOP/s.

    Attributes:
      cpu: model name from ``/proc/cpuinfo``.
      cores: logical CPUs this process may run on (``os.sched_getaffinity``).
      flops_per_cycle: FP32 FLOP per cycle per core from the widest vector FMA the CPU
        reports (see :func:`cpu_peak`).
      ghz: clock in GHz.
      basis: how each factor was obtained, in words.
    """

    cpu: str
    cores: int
    flops_per_cycle: int
    ghz: float
    basis: str

    @property
    def gflops(self) -> float:
        """The peak in GFLOP/s."""
        return self.cores * self.flops_per_cycle * self.ghz

    def describe(self) -> str:
        """One line: the formula with its numbers, and where they come from."""
        return (
            f"FP32 peak {self.gflops:.1f} GFLOP/s = {self.cores} cores x "
            f"{self.flops_per_cycle} FLOP/cycle x {self.ghz:.3g} GHz ({self.basis})"
        )


def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in info:  # the first processor's entry
            info[key.strip()] = value.strip()
    return info


def _int(text: str | None) -> int:
    try:
        return int(text or "", 0)
    except ValueError:
        return -1


def cpu_peak(
    *, cores: int | None = None, flops_per_cycle: int | None = None, ghz: float | None = None
) -> CpuPeak:
    """The nominal FP32 peak of this machine; any factor can be given instead of detected.

    FLOP per cycle per core from the CPU flags, assuming two FMA pipes of the widest vector
    width (Intel Haswell and later, AMD Zen 2 and later; an FMA is 2 FLOP): AVX-512 64, AVX2
    with FMA 32, AVX 16, otherwise 8; except AMD Zen 1 (family 23, model < 0x30), whose two
    FMA pipes are 128 bits wide (16), and AMD Zen 4 (family 25), whose AVX-512 runs on
    256-bit pipes (32). Under a hypervisor the family and model are what it reports. The
    clock is the "cpu MHz" that ``/proc/cpuinfo`` reports (the base clock; turbo and, in a
    VM, the host's real clock are invisible), and ``cores`` counts logical CPUs (with SMT, two
    share one core's FMA pipes: pass ``cores``).
    """
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    notes = []
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        cores = cores or os.cpu_count() or 1
        notes.append("logical CPUs available to this process")
    if flops_per_cycle is None:
        amd = info.get("vendor_id") == "AuthenticAMD"
        family, model = _int(info.get("cpu family")), _int(info.get("model"))
        if amd and family == 23 and model < 0x30 and "fma" in flags:
            # Zen / Zen+ (EPYC 7001): AVX2 instructions run on two 128-bit FMA pipes
            flops_per_cycle, isa = 16, f"AMD family 23 model {model} (Zen 1): 2 x 128-bit FMA"
        elif "avx512f" in flags and not (amd and family == 25):
            flops_per_cycle, isa = 64, "AVX-512"
        elif {"avx2", "fma"} <= flags:
            flops_per_cycle, isa = 32, "AVX2+FMA"
        elif "avx" in flags:
            flops_per_cycle, isa = 16, "AVX"
        else:
            flops_per_cycle, isa = 8, "SSE"
        notes.append(f"{isa}: {flops_per_cycle} FP32 FLOP/cycle (2 FMA pipes x lanes x 2)")
    if ghz is None:
        mhz = info.get("cpu MHz")
        if mhz:
            ghz = float(mhz) / 1000.0
            notes.append("clock from /proc/cpuinfo 'cpu MHz'")
        else:
            ghz = 2.0
            notes.append("clock unknown, 2.0 GHz assumed: pass --peak-ghz")
    return CpuPeak(
        cpu=info.get("model name", "unknown CPU"),
        cores=int(cores),
        flops_per_cycle=int(flops_per_cycle),
        ghz=float(ghz),
        basis="; ".join(notes) if notes else "given",
    )


def configure_xla_cpu(flags: Sequence[str] = (), *, async_dispatch: bool | None = None) -> str:
    """Append ``flags`` to ``XLA_FLAGS`` and set JAX's CPU dispatch mode; returns the flags.

    XLA reads its flags when JAX creates the backend, at the first computation, so call this
    before any JAX array is made. ``async_dispatch=False`` runs CPU computations inline on the
    calling thread (``jax_cpu_enable_async_dispatch``), which removes a thread hand-off per
    call. Raises ``RuntimeError`` when the backend already exists.
    """
    from jax._src import xla_bridge  # the only way to ask whether a backend exists

    if xla_bridge.backends_are_initialized():
        raise RuntimeError(
            "configure_xla_cpu must run before JAX's first computation (XLA reads its flags "
            "when the backend starts); call it at the top of the program"
        )
    current = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = " ".join([current, *flags]).strip()
    if async_dispatch is not None:
        jax.config.update("jax_cpu_enable_async_dispatch", async_dispatch)
    return os.environ["XLA_FLAGS"]


# --------------------------------------------------------------------------------------------
# FLOP counts
# --------------------------------------------------------------------------------------------


def _valid_taps(
    out: int, k: int, in_: int, stride: int, lo: int, lhs_dil: int, rhs_dil: int
) -> int:
    """Pairs (output position, kernel tap) along one spatial axis whose input position lands
    on a real input element, not on padding or on a hole of ``lhs_dilation``."""
    last = (in_ - 1) * lhs_dil
    count = 0
    for o in range(out):
        for t in range(k):
            p = o * stride + t * rhs_dil - lo
            count += 0 <= p <= last and p % lhs_dil == 0
    return count


def _conv_macs(eqn: jcore.JaxprEqn) -> int:
    """Multiply-adds of one ``conv_general_dilated`` that touch real input elements.

    Taps on padding or on ``lhs_dilation`` holes multiply zeros and are not counted. This
    matters for gradients: the input gradient of a convolution is a convolution of the
    cotangent padded by ``kernel - 1`` (JAX's transpose rule), which multiplies more zeros
    than the forward does; counted this way it costs the forward's multiply-adds, as an
    im2col gradient (a plain matmul) does.
    """
    lhs, rhs = eqn.invars[0].aval.shape, eqn.invars[1].aval.shape
    out = eqn.outvars[0].aval.shape
    dn = eqn.params["dimension_numbers"]
    p = eqn.params
    n_sp = len(dn.lhs_spec) - 2
    lhs_dil = p.get("lhs_dilation") or (1,) * n_sp
    rhs_dil = p.get("rhs_dilation") or (1,) * n_sp
    macs = out[dn.out_spec[0]] * out[dn.out_spec[1]] * rhs[dn.rhs_spec[1]]
    for d in range(n_sp):
        macs *= _valid_taps(
            out[dn.out_spec[2 + d]],
            rhs[dn.rhs_spec[2 + d]],
            lhs[dn.lhs_spec[2 + d]],
            p["window_strides"][d],
            p["padding"][d][0],
            lhs_dil[d],
            rhs_dil[d],
        )
    return macs


def _elementwise_products(jaxpr: jcore.Jaxpr) -> int:
    """Multiply-adds inside :func:`jaxnets.fast.dot_elementwise` (or its jvp/transpose):
    each ``mul`` there forms the broadcast products of one matrix product (the forward, or
    the input or weight gradient), which a sum then reduces."""
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "mul":
            total += math.prod(eqn.outvars[0].aval.shape)
        for sub in _subjaxprs(eqn):
            total += _elementwise_products(sub.jaxpr if isinstance(sub, jcore.ClosedJaxpr) else sub)
    return total


_JITS = ("jit", "pjit")


def _jaxpr_flops(jaxpr: jcore.Jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        product = fast.product_info(str(eqn.params.get("name", ""))) if name in _JITS else None
        if product is not None:
            inner = eqn.params["jaxpr"]
            inner = getattr(inner, "jaxpr", inner)
            if product.kind == "elementwise":
                total += 2 * _elementwise_products(inner)
            else:  # a product that computes more than the model's work: count the model's
                total += round(_jaxpr_flops(inner) * product.scale)
            continue
        if name == "dot_general":
            (lhs_contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            k = math.prod(lhs[d] for d in lhs_contract)
            total += 2 * math.prod(eqn.outvars[0].aval.shape) * k
        elif name == "conv_general_dilated":
            total += 2 * _conv_macs(eqn)
        subs = [j.jaxpr if isinstance(j, jcore.ClosedJaxpr) else j for j in _subjaxprs(eqn)]
        if not subs:
            continue
        if name == "cond":  # one branch runs: count the dearest
            total += max(_jaxpr_flops(s) for s in subs)
        elif name == "while":
            raise ValueError(
                "matmul_flops cannot count a while loop (its trip count is unknown); "
                "count one iteration's function instead"
            )
        else:
            n = eqn.params.get("length", 1) if name == "scan" else 1
            total += n * sum(_jaxpr_flops(s) for s in subs)
    return total


def _subjaxprs(eqn: jcore.JaxprEqn) -> list[Any]:
    return list(jcore.jaxprs_in_params(eqn.params))


def matmul_flops(fn: Callable[..., Any], *args: Any) -> int:
    """FLOPs of the matrix products and convolutions ``fn(*args)`` performs (2 per
    multiply-add), counted from its jaxpr: what the program computes, whatever the
    formulation (an im2col convolution and ``lax.conv`` count the same, and so do a Linear
    layer's ``lax.dot_general`` and :func:`jaxnets.fast.dot_elementwise`). Elementwise work
    (activations, the optimizer update) is not counted. Loops of ``lax.scan`` count every
    iteration.
    """
    closed = jax.make_jaxpr(fn)(*args)
    return _jaxpr_flops(closed.jaxpr)


# --------------------------------------------------------------------------------------------
# Variants and the interleaved timer
# --------------------------------------------------------------------------------------------


@dataclass
class Variant:
    """One timed thing.

    Attributes:
      name: ``'torch_eager'``, ``'torch_compile'``, ``'jax_jit'``, ``'jax_scan'``.
      kind: ``'train'`` (a unit is one training step) or ``'infer'`` (one forward call).
      units: units per block.
      first: runs the first block (compilation included); called once before timing.
      block: runs one block of ``units`` units and returns when the work is done.
      first_units: units the first call runs (compile time = its wall time minus that many
        steady units).
      note: anything the reader should know.
      error: set by :func:`time_interleaved` when ``first`` raised (the variant is then not
        timed, e.g. ``torch.compile`` without a working compiler).
    """

    name: str
    kind: str
    units: int
    first: Callable[[], None]
    block: Callable[[], None]
    first_units: int = 0
    note: str = ""
    first_s: float = field(default=math.nan, init=False)
    error: str = field(default="", init=False)


def _timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_interleaved(
    variants: Sequence[Variant], repeats: int, *, warmup_blocks: int = 1
) -> dict[str, list[float]]:
    """Seconds per unit of each variant, one entry per repeat.

    Every variant's ``first`` runs once (its wall time goes to ``Variant.first_s``; if it
    raises, the error goes to ``Variant.error`` and the variant is left out). Then Python's
    garbage is collected once, the collector is switched off, and each variant runs
    ``warmup_blocks`` untimed blocks, then ``repeats`` rounds in each of which every variant
    runs one block; the starting variant rotates from round to round, so slow drift of a
    shared machine affects each variant alike and ratios within a round compare like with
    like. The collector stays off until the last round ends (as in ``timeit``, for all
    rounds at once), so the blocks run back to back.

    Why not collect before every block: a collection is a pause during which the second
    core idles, and on small virtual machines the work right after such a pause ran slower,
    whatever the pause was (a collection, a sleep, one busy thread). Charged to the block
    after it, the pause cost one framework more than the other (the figures:
    docs/investigation.md).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    ok = []
    for v in variants:
        try:
            v.first_s = _timed(v.first)
        except Exception as exc:  # a variant that cannot run is reported, not fatal
            first_line = (str(exc).strip().splitlines() or [""])[0]
            v.error = f"{type(exc).__name__}: {first_line[:300]}"
            continue
        ok.append(v)
    variants = ok
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    k = len(variants)
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for v in variants:
            for _ in range(warmup_blocks):
                v.block()
        for r in range(repeats):
            for i in range(k):
                v = variants[(r + i) % k]
                times[v.name].append(_timed(v.block) / v.units)
    finally:
        if enabled:
            gc.enable()
    return times


# --------------------------------------------------------------------------------------------
# JAX variants
# --------------------------------------------------------------------------------------------


def default_batch_sizes(name: str) -> tuple[int, ...]:
    """The batch sizes ``jaxnets bench`` times a model at when none are given.

    ``xor_net``: 4 (the tutorial trains on the four XOR points); image models (LeNet): 64 and
    256; models with 256 or more input features (the MNIST MLPs): 64 and 1024; the small
    regressors: 64.
    """
    from jaxnets.registry import get_model_spec

    spec = get_model_spec(name)
    if name == "xor_net":
        return (4,)
    if spec.layout == "image":
        return (64, 256)
    if math.prod(spec.input_shape(spec.make_config())) >= 256:
        return (64, 1024)
    return (64,)


def default_steps(name: str, batch_size: int = 64) -> int:
    """Training steps per timed block: ``xor_net`` 1000 (the tutorial's whole run of 1000
    epochs), 20 at batch sizes of 256 and more (each step is long enough), otherwise 50."""
    if name == "xor_net":
        return 1000
    return 20 if batch_size >= 256 else 50


def same_computation(a: float | np.ndarray, b: float | np.ndarray) -> bool:
    """Whether two timed programs' results agree (a first loss, or ``(N, ...)`` outputs)
    within the float32 ``eval`` entry of the tolerance table for the backend JAX runs on:
    the check a benchmark makes before it compares their speed. Results of different shapes
    raise ``ValueError``."""
    tol = tolerance("float32", kind="eval")
    return leaf_diff(np.asarray(a), np.asarray(b), rtol=tol.rtol, atol=tol.atol).ok


def _block_ready(tree: Any) -> None:
    jax.block_until_ready(tree)


def jax_train_variants(
    trainer: Any,
    inputs: np.ndarray,
    targets: np.ndarray,
    batch_size: int,
    steps: int,
) -> tuple[list[Variant], dict[str, Any]]:
    """The ``jax_jit`` and ``jax_scan`` training variants of one model at one batch size.

    Args:
      trainer: a :class:`jaxnets.Trainer` (its model's mode is the one trained in).
      inputs: ``(steps * batch_size, ...)`` in the twin's layout (NHWC for images).
      targets: ``(steps * batch_size, ...)``.
      batch_size: examples per step.
      steps: steps per timed block.

    Both variants train on the same batches in the same order: batch ``i`` is rows
    ``i*batch_size .. (i+1)*batch_size - 1``. ``jax_jit`` calls ``trainer.step`` once per
    batch on pre-sliced device arrays and waits for the last loss; ``jax_scan`` runs all
    ``steps`` in one ``trainer.run_epoch``. Each keeps its own training state.

    Returns:
      ``(variants, info)``; ``info`` has ``flops_per_step`` (:func:`matmul_flops` of one
      step) and ``first_loss`` (the loss of batch 0 from the initial weights);
      ``trainer.jit_step._cache_size()`` says how often the step compiled.
    """
    n = steps * batch_size
    if inputs.shape[0] < n or targets.shape[0] < n:
        raise ValueError(
            f"need {n} examples for {steps} steps of batch {batch_size}, got inputs "
            f"{inputs.shape} and targets {targets.shape}"
        )
    x_all = jnp.asarray(inputs[:n])
    y_all = jnp.asarray(targets[:n])
    batches = [
        (x_all[i * batch_size : (i + 1) * batch_size], y_all[i * batch_size : (i + 1) * batch_size])
        for i in range(steps)
    ]
    jax.block_until_ready(batches)
    idx = jnp.arange(n, dtype=jnp.int32).reshape(steps, batch_size)

    init = trainer.init()
    first_loss, _ = trainer.loss_and_grad(init, *batches[0])
    flops = matmul_flops(trainer.step_function, init, *batches[0])

    holder = {"jit": trainer.init(), "scan": trainer.init()}

    def jit_first() -> None:
        holder["jit"], loss = trainer.step(holder["jit"], *batches[0])
        _block_ready(loss)

    def jit_block() -> None:
        s = holder["jit"]
        loss = None
        for xb, yb in batches:
            s, loss = trainer.step(s, xb, yb)
        holder["jit"] = s
        _block_ready(loss)

    def scan_block() -> None:
        holder["scan"], losses = trainer.run_epoch(holder["scan"], x_all, y_all, idx)
        _block_ready(losses)

    variants = [
        Variant("jax_jit", "train", steps, jit_first, jit_block, first_units=1),
        Variant("jax_scan", "train", steps, scan_block, scan_block, first_units=steps),
    ]
    info = {"flops_per_step": flops, "first_loss": float(first_loss)}
    return variants, info


def jax_infer_variants(
    trainer: Any, x: np.ndarray, calls: int
) -> tuple[list[Variant], dict[str, Any]]:
    """The inference variants, each ``calls`` synchronous calls on the same weights and input:
    ``jax_jit`` (``trainer.predict(state, x)``, the weights passed as arguments) and
    ``jax_frozen`` (``trainer.frozen_predictor(state)(x)``, the weights compiled in).

    ``x`` is one batch in the twin's layout (``(1, ...)`` for batch-1 latency). Each call
    waits for its result, as a latency-bound server would. Returns ``(variants, info)`` with
    ``flops`` per call and ``outputs``: each variant's first result by name, for a
    cross-check, filled in by the variant's first (compiling) call, so that its compile time
    is measured there and not spent before the timing starts.
    """
    state = trainer.init()
    xj = jnp.asarray(x)
    jax.block_until_ready(xj)
    frozen = trainer.frozen_predictor(state)
    outputs: dict[str, np.ndarray] = {}
    variants = [
        _latency_variant("jax_jit", calls, trainer.predict, state, xj, outputs=outputs),
        _latency_variant("jax_frozen", calls, frozen, xj, outputs=outputs),
    ]
    flops = matmul_flops(trainer.predict_function, state, xj)  # traces only: compiles nothing
    return variants, {"flops": flops, "outputs": outputs}


def _latency_variant(
    name: str,
    calls: int,
    fn: Callable[..., jax.Array],
    *args: Any,
    outputs: dict[str, np.ndarray] | None = None,
) -> Variant:
    """An ``'infer'`` variant of ``calls`` calls ``fn(*args)``, each waiting for its result;
    its first call stores its result in ``outputs[name]``."""

    def first() -> None:
        out = fn(*args).block_until_ready()
        if outputs is not None:
            outputs[name] = np.asarray(out)

    def block() -> None:
        for _ in range(calls):
            fn(*args).block_until_ready()

    return Variant(name, "infer", calls, first, block, first_units=1)


DISPATCH_FLOOR = "jax_dispatch_floor"


def dispatch_floor_variant(x: np.ndarray, calls: int) -> Variant:
    """The ``jax_dispatch_floor`` variant: ``calls`` synchronous calls of a jitted ``-x``.

    ``x`` is the input the model's latency is measured on (e.g. ``(1, 784)``). A one-argument
    executable that negates it is the cheapest jitted call on that input, so its time is what
    JAX's dispatch alone costs (argument checks, the executable launch, allocating and
    waiting for the output): no JAX model call on ``x`` can return faster. Timed in the same
    rounds as the model, ``torch_eager / floor`` is the highest latency ratio any JAX
    formulation of the model could reach on this machine.
    """
    xj = jnp.asarray(x)
    jax.block_until_ready(xj)
    return _latency_variant(DISPATCH_FLOOR, calls, jax.jit(jnp.negative), xj)


# --------------------------------------------------------------------------------------------
# torch against JAX, one model at a time
# --------------------------------------------------------------------------------------------

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
) -> Variant:
    import torch

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

    return Variant(name, "train", len(batches), first, block, first_units=1)


def _torch_infer_variant(
    name: str, model: torch.nn.Module, x: torch.Tensor, calls: int, sync: Callable[[], None]
) -> Variant:
    import torch

    def first() -> None:
        with torch.inference_mode():
            model(x)
        sync()

    def block() -> None:
        with torch.inference_mode():
            for _ in range(calls):
                model(x)
                sync()  # each call waits for its result (a no-op on the CPU)

    return Variant(name, "infer", calls, first, block, first_units=1)


def _inductor_cache() -> dict[str, Any]:
    """Where torch.compile's Inductor caches compiled code, and how many files it held before
    this run: with a warm cache ``torch_compile``'s ``compile_s`` skips most of the compile
    (xor_net's training step here: 1.9 s warm, 11 s cold). ``TORCHINDUCTOR_CACHE_DIR`` set to a
    new empty folder times a cold compile."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir  # torch is imported

    folder = cache_dir()
    files = sum(len(f) for _, _, f in os.walk(folder)) if os.path.isdir(folder) else 0
    return {"dir": folder, "files_at_start": files}


def _compiled(model: torch.nn.Module) -> torch.nn.Module:
    import torch

    torch._dynamo.reset()  # a fresh recompile budget for each model
    return torch.compile(copy.deepcopy(model))


# --------------------------------------------------------------------------------------------
# one model
# --------------------------------------------------------------------------------------------


Device = Literal["cpu", "gpu"]


def _sync(dev: torch.device) -> Callable[[], None]:
    import torch

    return torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)


def _pair(
    name: str, seed: int, dev: torch.device | None = None, dtype: str = "float32"
) -> tuple[torch.nn.Module, Any]:
    """The torch reference of ``name`` (initialised from ``seed``, on ``dev``) and its twin
    holding the same weights, both in ``dtype``."""
    import torch

    import torchref
    from torchref.bridge import torch_to_flax

    torch.manual_seed(seed)
    tdtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    t = torchref.create_model(name, dtype=tdtype)
    f = jaxnets.create_model(name, param_dtype=jnp.dtype(dtype))
    torch_to_flax(t, f)
    return (t if dev is None else t.to(dev)), f


def _rows(
    name: str,
    batch_size: int,
    kind: str,
    variants: Sequence[Variant],
    times: dict[str, list[float]],
    flops: int,
    peak: CpuPeak | None,
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
                row["speedup_vs_torch_eager"] = median_ratio(base, t)
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
    peak: CpuPeak | None,
    seed: int = 0,
    device: Device = "cpu",
) -> list[dict[str, Any]]:
    """Time one training step of ``name`` at ``batch_size`` in every variant; one row each.

    Raises :class:`BenchmarkError` when the two sides' first losses differ beyond the
    float32 tolerance (the timed programs would not be the same computation).
    """
    import torch

    from torchref.parity import TORCH_LOSSES

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
    jax_variants, info = jax_train_variants(trainer, spec.to_flax_layout(x), y, batch_size, steps)
    if not same_computation(info["first_loss"], torch_first):
        raise BenchmarkError(
            f"{name}: first loss differs (torch {torch_first!r}, JAX {info['first_loss']!r}); "
            "the twin does not compute what torch computes, run `jaxnets compare`"
        )
    variants = [_torch_train_variant("torch_eager", t_model, loss_fn, batches, sync)]
    if torch_compile:
        variants.append(
            _torch_train_variant("torch_compile", _compiled(t_model), loss_fn, batches, sync)
        )
    variants += jax_variants
    times = time_interleaved(variants, repeats)
    flops = info["flops_per_step"]
    rows = _rows(name, batch_size, "train", variants, times, flops, peak, trainer.compiler_options)
    compiles = trainer.jit_step._cache_size()
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
    peak: CpuPeak | None,
    seed: int = 0,
    batch_size: int = 1,
    device: Device = "cpu",
) -> list[dict[str, Any]]:
    """Latency of one eval-mode forward call of ``name`` (batch 1 by default); one row each.

    Raises :class:`BenchmarkError` when the two sides' outputs differ beyond tolerance.
    """
    import torch

    spec = jaxnets.get_model_spec(name)
    dev = torch_device(device)
    sync = _sync(dev)
    t_model, f_model = _pair(name, seed, dev)
    t_model.eval()
    x, _ = spec.example_batch(batch_size, np.random.default_rng(seed))
    xt = torch.from_numpy(x).to(dev)
    trainer = Trainer(f_model, optim.sgd(lr=LR), spec.loss)
    jax_variants, info = jax_infer_variants(trainer, spec.to_flax_layout(x), calls)
    with torch.inference_mode():
        t_out = t_model(xt).cpu().numpy()
    variants = [_torch_infer_variant("torch_eager", t_model, xt, calls, sync)]
    if torch_compile:
        variants.append(_torch_infer_variant("torch_compile", _compiled(t_model), xt, calls, sync))
    variants += jax_variants
    floor = dispatch_floor_variant(spec.to_flax_layout(x), calls)
    times = time_interleaved([*variants, floor], repeats)
    # The JAX outputs come from each variant's first (compiling) call, inside the timing.
    for variant, out in info["outputs"].items():
        if not same_computation(out, t_out):
            raise BenchmarkError(
                f"{name}: eval outputs differ between torch and JAX's {variant}; "
                "run `jaxnets compare`"
            )
    flops = info["flops"]
    rows = _rows(name, batch_size, "infer", variants, times, flops, peak, trainer.compiler_options)
    _attach_floor(rows, times, floor)
    return rows


def _attach_floor(
    rows: Sequence[dict[str, Any]], times: dict[str, list[float]], floor: Variant
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
        row["ceiling_vs_torch_eager"] = median_ratio(base, ft) if ft and base else None


# --------------------------------------------------------------------------------------------
# the whole run
# --------------------------------------------------------------------------------------------


def _machine(device: Device = "cpu") -> dict[str, Any]:
    import torch

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
        "cpu": cpu_peak().cpu,
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
    peak: CpuPeak | None = None,
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
    peak = None if device == "gpu" else (peak or cpu_peak())
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
    common = {
        "repeats": repeats,
        "torch_compile": torch_compile,
        "peak": peak,
        "seed": seed,
        "device": device,
    }
    for name in names:
        for b in batch_sizes or default_batch_sizes(name):
            n_steps = steps or default_steps(name, b)
            say(f"train {name} batch {b} ({n_steps} steps x {repeats} repeats)")
            doc["results"] += bench_training(name, b, steps=n_steps, **common)
        if inference:
            say(f"infer {name} batch 1 ({infer_calls} calls x {repeats} repeats)")
            doc["results"] += bench_inference(name, calls=infer_calls, **common)
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
    rows: Sequence[dict[str, Any]], peak: CpuPeak | None, *, device: Device = "cpu"
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
            ratio = median_ratio(jit["us_all"], scan["us_all"])
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


def render(doc: dict[str, Any], *, targets: bool = False) -> str:
    """The results and the machine as plain text; with ``targets``, the project's speed
    targets too (``jaxnets bench --targets``; they stay in the JSON either way)."""
    cells = [
        [
            r["model"],
            str(r["batch_size"]),
            r["kind"],
            r["variant"],
            _fmt(r["us_per_step"], ".1f"),
            _fmt(r["compile_s"], ".2f"),
            _fmt(r["speedup_vs_torch_eager"], ".2f"),
            _fmt(r["gflops"], ".3g"),
            _fmt(r["peak_fraction"] and 100 * r["peak_fraction"], ".2g"),
            f"[not run: {r['error']}]" if r.get("error") else "",
        ]
        for r in doc["results"]
    ]
    heads = ["model", "batch", "kind", "variant", "us/step", "compile s", "x eager", "GFLOP/s"]
    table = text_table([*heads, "% peak", ""], cells, "<><<>>>>><")
    lines = [line.rstrip() for line in table.splitlines()]
    if targets:
        lines += ["", "project targets (medians of per-round ratios):"]
    for t in doc.get("targets", []) if targets else []:
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
    """Write ``doc`` to ``path`` as indented JSON, atomically (:func:`jaxnets.checkpoint.
    atomic_write_bytes`)."""
    atomic_write_bytes(path, (json.dumps(doc, indent=1) + "\n").encode())


def cli_main(args: Any) -> int:
    """``jaxnets bench``: the body of the command (``args`` from :mod:`jaxnets.app.cli`).
    ``CommandError`` for a GPU run where JAX or torch sees no GPU."""
    import sys

    from jaxnets.app.config import CommandError, select_jax_platform, select_models
    from jaxnets.app.runs import torch_device

    names = select_models(args.model)  # an unknown name is refused before anything is timed
    note = ""
    try:  # before JAX's first computation: XLA reads these when its backend starts
        configure_xla_cpu(
            args.xla_flags.split() if args.xla_flags else (),
            async_dispatch=args.async_dispatch,
        )
    except RuntimeError as exc:
        note = f"XLA settings not applied: {exc}"
        print(f"jaxnets bench: {note}", file=sys.stderr)
    device = getattr(args, "device", "cpu")
    if device == "gpu":
        from torchref.precision import set_precision

        try:
            torch_device("gpu")
            select_jax_platform("gpu")
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
        set_precision("highest")  # true float32 on both sides, as the parity suite runs
    elif not getattr(args, "system_malloc", False):
        host.retain_freed_memory()  # both frameworks share it; the machine info records it
    peak = cpu_peak(
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
    print(render(doc, targets=args.targets))
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


# --------------------------------------------------------------------------------------------
# the step-time columns of `jaxnets compare`
# --------------------------------------------------------------------------------------------


class StepTime(NamedTuple):
    """Median milliseconds per training step on each side."""

    torch_ms: float
    jax_ms: float


def step_times(
    name: str,
    *,
    batch_size: int = 64,
    dtype: str = "float32",
    seed: int = 0,
    steps: int = 20,
    repeats: int = 5,
) -> StepTime:
    """Milliseconds per training step of model ``name`` in torch and in JAX, for ``jaxnets
    compare``: a quick indication; :func:`run` is the measurement.

    One step is the tutorials' loop body, torch ``optimizer.zero_grad(); loss =
    criterion(model(x), y); loss.backward(); optimizer.step()`` with ``SGD(lr=0.01)``, against
    the twin's jitted ``Trainer.step`` with ``jaxnets.optim.sgd(lr=0.01)``, both from the same
    weights on the same random batch of ``batch_size`` in ``dtype``, timed as :func:`run`
    times (:func:`time_interleaved`: a first step, where JAX compiles, and a warm-up block
    untimed, then ``repeats`` interleaved rounds of ``steps`` steps); each figure is the
    median over the rounds.
    """
    import torch

    from torchref.parity import TORCH_LOSSES

    if steps < 1 or repeats < 1:
        raise ValueError(f"steps and repeats must be >= 1, got {steps}, {repeats}")
    spec = jaxnets.get_model_spec(name)
    t, f = _pair(name, seed, dtype=dtype)
    t.train()
    f.train()
    x, y = spec.example_batch(batch_size, np.random.default_rng(seed), dtype=np.dtype(dtype))
    batches = [(torch.from_numpy(x), torch.from_numpy(y))] * steps
    torch_variant = _torch_train_variant("torch", t, TORCH_LOSSES[spec.loss], batches, _no_sync)
    trainer = Trainer(f, optim.sgd(lr=LR), spec.loss)
    if y.dtype.kind == "i" and not jax.config.read("jax_enable_x64"):
        y = y.astype(np.int32)  # class indices; int64 needs x64
    xj, yj = jnp.asarray(spec.to_flax_layout(x)), jnp.asarray(y)
    box = [trainer.init()]

    def jax_steps(n: int) -> None:
        state = box[0]
        for _ in range(n):
            state, loss = trainer.step(state, xj, yj)
        jax.block_until_ready(loss)
        box[0] = state

    jax_variant = Variant("jax", "train", steps, lambda: jax_steps(1), lambda: jax_steps(steps))
    times = time_interleaved([torch_variant, jax_variant], repeats)
    for v in (torch_variant, jax_variant):
        if v.error:
            raise RuntimeError(f"{name}: the {v.name} step did not run: {v.error}")
    return StepTime(
        torch_ms=statistics.median(times["torch"]) * 1e3,
        jax_ms=statistics.median(times["jax"]) * 1e3,
    )


def _no_sync() -> None:
    """A CPU run's synchronisation: none, the work is done when the call returns."""


# --------------------------------------------------------------------------------------------
# the A/B printout of the benchmark scripts
# --------------------------------------------------------------------------------------------


def scan_pair(
    label: str, trainers: Sequence[tuple[str, Any]], x: Any, y: Any, batch: int, steps: int
) -> list[Variant] | str:
    """The ``jax_scan`` variants of several :class:`~jaxnets.Trainer` (``(tag, trainer)``) on
    the same batches, named ``label/tag``, ready for :func:`time_interleaved`; or why they
    were left out: their first losses differ, so they do not compute the same thing."""
    scans, losses = [], []
    for tag, trainer in trainers:
        variants, info = jax_train_variants(trainer, x, y, batch, steps)
        scan = variants[1]
        scan.name = f"{label}/{tag}"
        scans.append(scan)
        losses.append(info["first_loss"])
    if not same_computation(*losses):
        return f"left out, first losses {losses} differ"
    return scans


def median_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """The median of the per-round ratios ``a[i] / b[i]`` of two variants timed in the same
    rounds: how many times faster ``b`` ran (a slow round slows both, so it cancels)."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def ab_lines(
    pairs: Sequence[tuple[str, Variant, Variant]],
    times: dict[str, list[float]],
    heads: tuple[str, str],
) -> tuple[list[str], int]:
    """The A/B comparison of ``benchmarks/*.py``: one line per ``(label, a, b)`` with each
    median per unit in µs and the speed of ``b`` relative to ``a`` (median of the per-round
    ratios ``time(a) / time(b)``: above 1, ``b`` is faster), or the label and why a pair was
    left out (a variant that did not run). Returns the lines and how many pairs were left
    out."""
    cells, notes, left_out = [], [], 0
    for label, a, b in pairs:
        if a.error or b.error:
            notes.append(f"{label}: left out, {a.error or b.error}")
            left_out += 1
            continue
        ratio = median_ratio(times[a.name], times[b.name])
        a_us, b_us = (statistics.median(times[v.name]) * 1e6 for v in (a, b))
        cells.append([f"{a_us:.1f}", f"{b_us:.1f}", f"{ratio:.3f}", label])
    table = text_table([f"{heads[0]} us", f"{heads[1]} us", "speed", ""], cells, ">>><", rule=False)
    return notes + [line.rstrip() for line in table.splitlines()], left_out
