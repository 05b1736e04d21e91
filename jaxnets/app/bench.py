"""Benchmark pieces that need no torch: the machine's FP32 peak, FLOP counts, JAX variants and
the interleaved timer. ``jaxnets.app.torch_bench`` adds the torch side and runs the comparison.

* :func:`cpu_peak` computes the nominal FP32 peak of this CPU from ``/proc/cpuinfo`` (cores
  x FLOP per cycle from the vector ISA x clock) and says how.
* :func:`matmul_flops` counts the FLOPs of the matrix products and convolutions in a
  function's jaxpr (2 per multiply-add); both frameworks compute the same products, so one
  count serves both for achieved GFLOP/s.
* :class:`Variant` is one timed thing (a framework's training step or a forward call), and
  :func:`time_interleaved` times several of them round-robin, so that drift of a shared
  machine affects each alike, and returns every repeat (medians are taken by the caller).
* :func:`jax_train_variants` and :func:`jax_infer_variants` build the JAX variants from a
  :class:`jaxnets.Trainer`: ``jax_jit`` (one ``Trainer.step`` call per step) and
  ``jax_scan`` (all steps of a block in one ``Trainer.run_epoch``); for inference
  ``jax_jit`` (``Trainer.predict``) and ``jax_frozen`` (``Trainer.frozen_predictor``, the
  weights compiled in).
* :func:`dispatch_floor_variant` times the cheapest jitted call on the same input: the floor
  under any JAX model's latency on this machine.
* :func:`configure_xla_cpu` sets XLA:CPU's options; it must run before JAX's first
  computation (``jaxnets bench`` does that).
"""

from __future__ import annotations

import gc
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.extend.core as jcore
import jax.numpy as jnp
import numpy as np

from jaxnets import fast
from jaxnets.testing import leaf_diff
from jaxnets.tolerances import tolerance

__all__ = [
    "CpuPeak",
    "Variant",
    "configure_xla_cpu",
    "cpu_peak",
    "default_batch_sizes",
    "default_steps",
    "dispatch_floor_variant",
    "jax_infer_variants",
    "jax_train_variants",
    "matmul_flops",
    "same_computation",
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
      step), ``first_loss`` (the loss of batch 0 from the initial weights) and the jitted
      step function (``step_fn``) so callers can check it compiled once.
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
    flops = matmul_flops(trainer._step, init, *batches[0])

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
    info = {"flops_per_step": flops, "first_loss": float(first_loss), "step_fn": trainer.step}
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
    flops = matmul_flops(trainer._predict, state, xj)  # traces only: compiles nothing
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
