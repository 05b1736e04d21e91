"""Where a jitted training step's time goes: XLA's operations, timed by JAX's profiler.

    PYTHONPATH=. .venv/bin/python benchmarks/step_profile.py --model lenet --batch-size 256
    PYTHONPATH=. .venv/bin/python benchmarks/step_profile.py --model lenet --scan   # run_epoch

Builds the model's :class:`jaxnets.Trainer` as ``jaxnets bench`` does (``SGD(lr=0.01)``,
the model's loss, ``Trainer``'s per-model XLA options, freed memory kept on the CPU), runs
``--steps`` steps under ``jax.profiler.trace`` and adds up, per operation of the compiled
step, the time its thunks took (XLA:CPU runs each fusion, library call or copy as one
thunk and the profiler records each by the HLO instruction's name). It prints the costliest
operations with their shapes and what JAX op they come from, the totals by kind (library
matrix products, XLA's fused loops, copies and concatenations) and, for comparison, the
step's wall time measured without the profiler. With ``--scan`` it profiles
``Trainer.run_epoch`` instead, the ``--steps`` steps in one ``lax.scan`` over shuffled
batches of a data set of ``steps * batch_size`` examples (as ``jaxnets bench``'s ``jax_scan``
runs), and every figure is per step of that loop: the operations inside the loop body,
plus the loop's own, such as gathering the batches.

XLA:CPU runs Eigen's matrix products asynchronously: the product's thunk event covers only
its launch, the product then runs on XLA's thread pool, and the executor goes on with whatever
does not need its result. When nothing is left to run, no thunk is recorded until the product
is done (the first thunk that reads it starts). The script therefore adds each such idle
stretch to the products in flight during it (from a product's launch to the start of its first
consumer; split evenly when several are), shows it in the ``waited`` column, and puts idle time
with no product in flight under ``(no thunk running)``: the executor's own time, and the
dispatch between steps. Together they cover the profiled span. A product's time that
overlapped other thunks is not added, so the products' figures are lower bounds.

Read the per-operation times as shares, not as a sum to the step: the profiler costs time
itself, and a product that runs on both cores slows the thunks beside it. It reads XLA:CPU's
events only: on another backend it says so and exits (there, open the trace of
``jax.profiler.trace`` in XProf or TensorBoard).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import glob
import itertools
import re
import statistics
import sys
import tempfile
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from jaxnets import optim
from jaxnets.app import host
from jaxnets.app.bench import Variant, time_interleaved
from jaxnets.registry import UnknownModelError, create_model, get_model_spec
from jaxnets.training.trainer import Trainer

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
    source = ins.source.removeprefix("jit(_step)/").removeprefix("jit(_epoch)/")
    source = source.removeprefix("while/body/").removeprefix("closed_call/")
    if ins.kind != "library product":
        return source
    shapes = [hlo[o].shape for o in ins.operands if o in hlo]
    return f"{' x '.join(shapes)} -> {ins.shape}" + (f"  ({source})" if source else "")


@dataclass(frozen=True)
class Event:
    """One profiler event of an instruction's thunk: its name and its span in nanoseconds."""

    name: str
    start_ns: int
    end_ns: int


IDLE = "(no thunk running)"
"""The key of :func:`step_times` for idle time with no library product in flight."""


def read_events(trace_dir: str, names: set[str]) -> list[Event]:
    """The profiler events in ``trace_dir`` named like an instruction, on every thread.

    Reads the ``*.xplane.pb`` that ``jax.profiler.trace(trace_dir)`` wrote.
    """
    from jax.profiler import ProfileData

    files = glob.glob(f"{trace_dir}/**/*.xplane.pb", recursive=True)
    if not files:
        raise RuntimeError(f"jax.profiler wrote no trace under {trace_dir}")
    return [
        Event(event.name, int(event.start_ns), int(event.start_ns + event.duration_ns))
        for plane in ProfileData.from_file(files[0]).planes
        for line in plane.lines
        for event in line.events
        if event.name in names
    ]


def _consumers(hlo: dict[str, Instruction], timed: set[str]) -> dict[str, set[str]]:
    """For each instruction, the timed instructions that read its result first: its users,
    looking through the ones that run no thunk of their own (bitcasts, tuples)."""
    users: dict[str, set[str]] = collections.defaultdict(set)
    for ins in hlo.values():
        for operand in ins.operands:
            users[operand].add(ins.name)
    out: dict[str, set[str]] = {}
    for name in hlo:
        found: set[str] = set()
        seen: set[str] = set()
        todo = list(users[name])
        while todo:
            user = todo.pop()
            if user in seen:
                continue
            seen.add(user)
            if user in timed:
                found.add(user)
            else:
                todo.extend(users[user])
        out[name] = found
    return out


def step_times(
    events: list[Event], hlo: dict[str, Instruction]
) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds per instruction over the profiled span, and the part of it spent waiting.

    Returns ``(total, waited)``: ``total[name]`` is the thunk events' time of ``name`` plus
    the idle time (no thunk running on any thread) while it was an asynchronous library
    product in flight, from its launch to the first start of a thunk that reads its result,
    split evenly among the products in flight; ``waited[name]`` is that idle part.
    ``total[IDLE]`` is the idle time with no product in flight. Together they cover the span
    from the first event's start to the last one's end (where thunks overlap, each counts).
    """
    if not events:
        return {}, {}
    events = sorted(events, key=lambda e: e.start_ns)
    total: dict[str, float] = collections.defaultdict(float)
    for e in events:
        total[e.name] += (e.end_ns - e.start_ns) * 1e-9
    # when a product's result is first read: the next start, after its launch, of a consumer
    consumers = _consumers(hlo, {e.name for e in events})
    starts: dict[str, list[int]] = collections.defaultdict(list)
    for e in events:
        starts[e.name].append(e.start_ns)
    flights = []  # (launch, done, name) of each library product's run
    for e in events:
        if hlo[e.name].kind != "library product":
            continue
        later = []  # each consumer's first start after this launch
        for c in consumers[e.name]:
            i = bisect.bisect_right(starts[c], e.start_ns)
            if i < len(starts[c]):
                later.append(starts[c][i])
        if later:
            flights.append((e.start_ns, min(later), e.name))
    # idle stretches: the span minus the union of all events
    idle, busy_until = [], events[0].start_ns
    for e in events:
        if e.start_ns > busy_until:
            idle.append((busy_until, e.start_ns))
        busy_until = max(busy_until, e.end_ns)
    waited: dict[str, float] = collections.defaultdict(float)
    for lo, hi in idle:
        cuts = sorted({lo, hi} | {t for f in flights for t in f[:2] if lo < t < hi})
        for a, b in itertools.pairwise(cuts):
            flying = [name for launch, done, name in flights if launch <= a and done >= b]
            for name in flying:
                waited[name] += (b - a) * 1e-9 / len(flying)
            if not flying:
                total[IDLE] += (b - a) * 1e-9
    for name, sec in waited.items():
        total[name] += sec
    return dict(total), dict(waited)


def main(argv: list[str] | None = None) -> int:
    """Profile the step and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="profiled steps (default 10)")
    parser.add_argument("--top", type=int, default=20, help="operations to list (default 20)")
    parser.add_argument(
        "--scan",
        action="store_true",
        help="profile Trainer.run_epoch (the steps in one lax.scan) instead of jitted steps",
    )
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
    rng = np.random.default_rng(0)
    state = trainer.init()
    holder = {"state": state}
    if args.scan:
        n = args.steps * args.batch_size
        x, y = spec.example_batch(n, rng)
        xa, ya = jnp.asarray(spec.to_flax_layout(x)), jnp.asarray(y)
        idx = jnp.asarray(rng.permutation(n).reshape(args.steps, args.batch_size))
        # The executable that is timed and profiled is the one whose HLO names the events.
        epoch = trainer.jit_epoch.lower(state, xa, ya, idx).compile()
        hlo = parse_hlo(epoch.as_text())

        def run_steps() -> None:
            holder["state"], losses = epoch(holder["state"], xa, ya, idx)
            jax.block_until_ready(losses)

        first = run_steps
        timed = f"median of 5 epochs of {args.steps} steps in one scan"
    else:
        x, y = spec.example_batch(args.batch_size, rng)
        xj, yj = jnp.asarray(spec.to_flax_layout(x)), jnp.asarray(y)
        step = trainer.step.lower(state, xj, yj).compile()
        hlo = parse_hlo(step.as_text())

        def run_steps(n: int = args.steps) -> None:
            s, loss = holder["state"], None
            for _ in range(n):
                s, loss = step(s, xj, yj)
            holder["state"] = s
            jax.block_until_ready(loss)

        def first() -> None:
            run_steps(3)

        timed = f"median of 5 x {args.steps} steps"

    wall = Variant("step", "train", args.steps, first, run_steps)
    walls = time_interleaved([wall], repeats=5)["step"]  # seconds a step, one per repeat
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp):
            run_steps()
        events = read_events(tmp, set(hlo))
    times, waits = step_times(events, hlo)

    per_step = {k: v / args.steps for k, v in times.items()}
    waited = {k: v / args.steps for k, v in waits.items()}
    total = sum(per_step.values())
    print(
        f"{args.model} batch {args.batch_size}{', run_epoch (scan)' if args.scan else ''}, "
        f"jax {jax.__version__} ({jax.default_backend()}), "
        f"XLA options {trainer.compiler_options}"
    )
    print(
        f"step wall time without the profiler: {statistics.median(walls) * 1e3:.2f} ms "
        f"({timed}); profiled: {total * 1e3:.2f} ms a step, "
        f"of which {sum(waited.values()) * 1e3:.2f} ms waiting on asynchronous products "
        f"and {per_step.get(IDLE, 0.0) * 1e3:.2f} ms with nothing running"
    )
    print(f"\n{'us/step':>9} {'share':>6} {'waited':>7}  {'operation':<26} {'kind':<17} computes")
    for name, sec in sorted(per_step.items(), key=lambda kv: -kv[1])[: args.top]:
        if name == IDLE:
            print(f"{sec * 1e6:9.1f} {100 * sec / total:5.1f}% {'':>7}  {IDLE}")
            continue
        ins = hlo[name]
        what = describe(ins, hlo)
        if ins.kind != "library product":
            what = f"{ins.shape}  {what}".rstrip()
        wait = f"{waited[name] * 1e6:7.1f}" if name in waited else ""
        share = f"{sec * 1e6:9.1f} {100 * sec / total:5.1f}% {wait:>7}"
        print(f"{share}  {name:<26} {ins.kind:<17} {what}")
    by_kind: dict[str, float] = collections.defaultdict(float)
    for name, sec in per_step.items():
        by_kind[IDLE if name == IDLE else hlo[name].kind] += sec
    print("\nby kind:")
    for kind, sec in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"{sec * 1e6:9.1f} {100 * sec / total:5.1f}%  {kind}")
    return 0


if __name__ == "__main__":
    jax.config.update("jax_cpu_enable_async_dispatch", False)  # as jaxnets bench runs
    sys.exit(main())
