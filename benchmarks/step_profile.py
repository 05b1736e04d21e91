"""Where a jitted training step's time goes: XLA's operations, timed by JAX's profiler.

    PYTHONPATH=. .venv/bin/python benchmarks/step_profile.py --model lenet --batch-size 256

Builds the model's :class:`jaxnets.train.Trainer` as ``jaxnets bench`` does (``SGD(lr=0.01)``,
the model's loss, ``Trainer``'s per-model XLA options, freed memory kept on the CPU), runs
``--steps`` steps under ``jax.profiler.trace`` and adds up, per operation of the compiled
step, the time its thunks took (XLA:CPU runs each fusion, library call or copy as one
thunk and the profiler records each by the HLO instruction's name). It prints the costliest
operations with their shapes and what JAX op they come from, the totals by kind (library
matrix products, XLA's fused loops, copies and concatenations) and, for comparison, the
step's wall time measured without the profiler.

Read the per-operation times as shares, not as a sum to the step: the profiler costs time
itself, a library product may run on both cores while another thunk waits, and independent
thunks can overlap. It reads XLA:CPU's events only: on another backend it says so and exits
(there, open the trace of ``jax.profiler.trace`` in XProf or TensorBoard).
"""

from __future__ import annotations

import argparse
import collections
import glob
import re
import statistics
import sys
import tempfile
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from jaxnets import host, optim
from jaxnets.bench import Variant, time_interleaved
from jaxnets.registry import UnknownModelError, create_model, get_model_spec
from jaxnets.train import Trainer

_INSTRUCTION = re.compile(
    r"^\s*(?:ROOT\s+)?%?(?P<name>[\w.\-]+)\s*=\s*(?P<shape>\S+(?:\{[^}]*\})?)\s+"
    r"(?P<opcode>[\w\-]+)\((?P<rest>.*)$"
)
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_OPERAND = re.compile(r"%([\w.\-]+)")
_FUSION_KIND = re.compile(r"kind=(k\w+)")


@dataclass(frozen=True)
class Instruction:
    """One instruction of the compiled step's HLO: what a profiler event's name refers to."""

    name: str
    shape: str
    opcode: str
    kind: str  # 'library product', 'fused loop', 'copy/concatenate', 'other'
    source: str  # the JAX op it comes from (metadata op_name), '' when none
    operands: tuple[str, ...]  # the operands' names


def _kind(opcode: str, rest: str) -> str:
    if opcode in ("dot", "convolution", "custom-call"):
        return "library product"
    if opcode == "fusion":
        if '"__ynn_fusion"' in rest or "kind=kCustom" in rest:
            return "library product"
        return "fused loop"
    if opcode in ("copy", "concatenate", "transpose", "slice", "pad", "dynamic-slice"):
        return "copy/concatenate"
    return "other"


def parse_hlo(text: str) -> dict[str, Instruction]:
    """Every instruction of an HLO module's text, by name.

    ``text`` is ``compiled.as_text()``; returns ``{name: Instruction}`` (instructions inside
    fused computations are included; the profiler names the fusion, which is what matters).
    """
    out: dict[str, Instruction] = {}
    for line in text.splitlines():
        m = _INSTRUCTION.match(line)
        if not m:
            continue
        rest = m["rest"]
        op = _OP_NAME.search(rest)
        args = rest.split(")", 1)[0]
        out[m["name"]] = Instruction(
            name=m["name"],
            shape=m["shape"].split("{")[0],
            opcode=m["opcode"],
            kind=_kind(m["opcode"], rest),
            source=op.group(1) if op else "",
            operands=tuple(_OPERAND.findall(args)),
        )
    return out


def describe(ins: Instruction, hlo: dict[str, Instruction]) -> str:
    """What an instruction computes, in a few words: a library product as its operand and
    result shapes (``f32[9,230400] x f32[6,230400] -> f32[9,6]``), anything else by the JAX
    op it comes from."""
    source = ins.source.removeprefix("jit(_step)/")
    if ins.kind != "library product":
        return source
    shapes = [hlo[o].shape for o in ins.operands if o in hlo]
    return f"{' x '.join(shapes)} -> {ins.shape}" + (f"  ({source})" if source else "")


def thunk_times(trace_dir: str, names: set[str]) -> dict[str, float]:
    """Total seconds of the profiler events in ``trace_dir`` named like an instruction.

    Reads the ``*.xplane.pb`` that ``jax.profiler.trace(trace_dir)`` wrote; every event
    whose name is in ``names`` is added up, on whatever thread it ran.
    """
    from jax.profiler import ProfileData

    files = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)
    if not files:
        raise RuntimeError(f"jax.profiler wrote no trace under {trace_dir}")
    totals: dict[str, float] = collections.defaultdict(float)
    for plane in ProfileData.from_file(files[0]).planes:
        for line in plane.lines:
            for event in line.events:
                if event.name in names:
                    totals[event.name] += event.duration_ns * 1e-9
    return dict(totals)


def main(argv: list[str] | None = None) -> int:
    """Profile the step and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="profiled steps (default 10)")
    parser.add_argument("--top", type=int, default=20, help="operations to list (default 20)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or args.top < 1:
        parser.error("--steps, --batch-size and --top must be positive")
    try:
        spec = get_model_spec(args.model)
    except UnknownModelError as exc:
        parser.error(str(exc))
    if jax.default_backend() != "cpu":
        print(
            f"step_profile.py reads XLA:CPU's thunk events; JAX's backend here is "
            f"{jax.default_backend()!r}. Run it with JAX_PLATFORMS=cpu, or open a "
            "jax.profiler.trace of the step in XProf or TensorBoard.",
            file=sys.stderr,
        )
        return 2
    host.retain_freed_memory()  # as jaxnets bench and jaxnets train run
    trainer = Trainer(create_model(args.model), optim.sgd(lr=0.01), spec.loss)
    x, y = spec.example_batch(args.batch_size, np.random.default_rng(0))
    xj, yj = jnp.asarray(spec.to_flax_layout(x)), jnp.asarray(y)
    state = trainer.init()
    # The executable that is timed and profiled is the one whose HLO names the events.
    step = trainer.step.lower(state, xj, yj).compile()
    hlo = parse_hlo(step.as_text())
    holder = {"state": state}

    def run_steps(n: int = args.steps) -> None:
        s, loss = holder["state"], None
        for _ in range(n):
            s, loss = step(s, xj, yj)
        holder["state"] = s
        jax.block_until_ready(loss)

    wall = Variant("step", "train", args.steps, lambda: run_steps(3), run_steps)
    walls = time_interleaved([wall], repeats=5)["step"]  # seconds a step, one per repeat
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp):
            run_steps()
        times = thunk_times(tmp, set(hlo))

    per_step = {k: v / args.steps for k, v in times.items()}
    total = sum(per_step.values())
    print(
        f"{args.model} batch {args.batch_size}, jax {jax.__version__} ({jax.default_backend()}), "
        f"XLA options {trainer.compiler_options}"
    )
    print(
        f"step wall time without the profiler: {statistics.median(walls) * 1e3:.2f} ms "
        f"(median of 5 x {args.steps} steps); operations' thunks: {total * 1e3:.2f} ms a step"
    )
    print(f"\n{'us/step':>9} {'share':>6}  {'operation':<26} {'kind':<17} computes")
    for name, sec in sorted(per_step.items(), key=lambda kv: -kv[1])[: args.top]:
        ins = hlo[name]
        what = describe(ins, hlo)
        if ins.kind != "library product":
            what = f"{ins.shape}  {what}".rstrip()
        print(f"{sec * 1e6:9.1f} {100 * sec / total:5.1f}%  {name:<26} {ins.kind:<17} {what}")
    by_kind: dict[str, float] = collections.defaultdict(float)
    for name, sec in per_step.items():
        by_kind[hlo[name].kind] += sec
    print("\nby kind:")
    for kind, sec in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"{sec * 1e6:9.1f} {100 * sec / total:5.1f}%  {kind}")
    return 0


if __name__ == "__main__":
    jax.config.update("jax_cpu_enable_async_dispatch", False)  # as jaxnets bench runs
    sys.exit(main())
