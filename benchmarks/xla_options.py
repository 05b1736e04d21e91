"""One model's JAX training step under several sets of XLA options, side by side in one run.

    PYTHONPATH=. .venv/bin/python benchmarks/xla_options.py --model lenet --batch-size 64 \\
        --options '{"xla_cpu_use_fusion_emitters": false}' \\
        '{"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}'

``jaxnets bench --xla-flags`` sets XLA's flags for a whole process, so two settings can only be
compared across two processes, on a machine whose speed drifts between them. Here each
``--options`` set (a JSON object of XLA debug options, as ``jax.jit(...,
compiler_options=...)`` takes them) is laid over the model's own options
(:func:`jaxnets.fast.training.default_compiler_options`; ``--from-xla-defaults`` starts from XLA's
instead) and compiled into a :class:`jaxnets.Trainer` of its own. The first set is
always the model's options unchanged, the baseline. Every set's ``jax_jit`` step and
``jax_scan`` epoch (:func:`jaxnets.app.bench.jax_train_variants`, ``SGD(lr=0.01)`` on the same
synthetic batches) are then timed in the same interleaved rounds
(:func:`jaxnets.app.bench.time_interleaved`), and each line gives the medians and the speed
relative to the baseline (median of per-round ratios; above 1: faster than the baseline).

A set XLA rejects (an unknown option, a value out of its enum) is reported with XLA's message
and left out; the others are still timed. A set whose first loss differs from the baseline's
beyond the float32 tolerance is left out as well: it would not be the same computation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

import jax
import numpy as np

from jaxnets import optim
from jaxnets.app import host
from jaxnets.app.bench import (
    Variant,
    default_steps,
    jax_train_variants,
    same_computation,
    time_interleaved,
)
from jaxnets.fast.training import default_compiler_options
from jaxnets.registry import UnknownModelError, create_model, get_model_spec
from jaxnets.training.trainer import Trainer


def _option_set(text: str) -> dict[str, Any]:
    """``--options`` value: a JSON object of XLA options."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"not JSON ({exc.msg}): {text!r}; write an object such as "
            "'{\"xla_cpu_use_fusion_emitters\": false}'"
        ) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object of XLA options, got {text!r}")
    return value


def _label(options: dict[str, Any]) -> str:
    return json.dumps(options, sort_keys=True) if options else "baseline"


def main(argv: list[str] | None = None) -> int:
    """Time every option set and print one line each; 1 when a set was left out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, help="steps per timed block (default: as bench)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--options",
        type=_option_set,
        nargs="+",
        default=[],
        metavar="JSON",
        help="one JSON object of XLA options per set to compare with the baseline",
    )
    parser.add_argument(
        "--from-xla-defaults",
        action="store_true",
        help="lay each set over XLA's defaults instead of the model's own options",
    )
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.repeats < 1 or (args.steps is not None and args.steps < 1):
        parser.error("--batch-size, --steps and --repeats must be positive")
    try:
        spec = get_model_spec(args.model)
    except UnknownModelError as exc:
        parser.error(str(exc))

    jax.config.update("jax_cpu_enable_async_dispatch", False)  # as jaxnets bench runs
    if jax.default_backend() == "cpu":
        host.retain_freed_memory()
    steps = args.steps or default_steps(args.model, args.batch_size)
    x, y = spec.example_batch(steps * args.batch_size, np.random.default_rng(0))
    x = spec.to_flax_layout(x)
    base = {} if args.from_xla_defaults else default_compiler_options(create_model(args.model))
    print(
        f"{args.model} batch {args.batch_size}, {steps} steps a block, {args.repeats} repeats, "
        f"jax {jax.__version__} ({jax.default_backend()}); "
        f"baseline: {base or 'XLA defaults'}"
    )

    sets: list[tuple[str, list[Variant]]] = []
    base_loss = None
    left_out = 0
    for extra in [{}, *args.options]:
        label = _label(extra)
        try:  # Trainer refuses options XLA does not know; a value XLA accepts may still fail
            trainer = Trainer(
                create_model(args.model), optim.sgd(lr=0.01), spec.loss,
                compiler_options={**(base or {}), **extra},
            )  # fmt: skip
            variants, info = jax_train_variants(trainer, x, y, args.batch_size, steps)
        except Exception as exc:  # XLA's rejection of an option comes as a runtime error
            why = f"{type(exc).__name__}: {exc}".splitlines()[0]
            print(f"{label}: left out, XLA did not compile or run with it: {why}")
            left_out += 1
            continue
        loss = info["first_loss"]
        if base_loss is None:
            base_loss = loss
        elif not same_computation(loss, base_loss):
            print(f"{label}: left out, first loss {loss!r} is not the baseline's {base_loss}")
            left_out += 1
            continue
        for v in variants:
            v.name = f"{len(sets)}:{v.name}"
        sets.append((label, variants))

    times = time_interleaved([v for _, vs in sets for v in vs], args.repeats)
    for label, variants in list(sets):
        failed = [v.error for v in variants if v.error]
        if failed:  # the step or the epoch did not compile or run (Variant.error says why)
            print(f"{label}: left out, {failed[0]}")
            left_out += 1
            sets.remove((label, variants))
    if not sets or sets[0][0] != _label({}):
        print("the baseline itself did not run; nothing to compare with")
        return 1
    print(f"{'jit us':>10} {'scan us':>10} {'jit x':>7} {'scan x':>7}  options")
    base_jit, base_scan = (times[v.name] for v in sets[0][1])
    for label, (jit, scan) in sets:
        cells = []
        for v, ref in ((jit, base_jit), (scan, base_scan)):
            ratio = statistics.median(r / t for r, t in zip(ref, times[v.name], strict=True))
            cells.append((statistics.median(times[v.name]) * 1e6, ratio))
        (jit_us, jit_x), (scan_us, scan_x) = cells
        print(f"{jit_us:10.1f} {scan_us:10.1f} {jit_x:7.3f} {scan_x:7.3f}  {label}")
    return 1 if left_out else 0


if __name__ == "__main__":
    sys.exit(main())
