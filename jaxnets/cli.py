"""The ``jaxnets`` command. Thin: parse arguments, dispatch to library functions, print."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]

TORCH_MISSING = (
    "jaxnets {cmd} needs PyTorch to build the reference side, and it is not installed.\n"
    "Install the CPU build:  pip install 'torch==2.13.0' -e '.[torch]'\n"
    "(an unpinned `pip install torch` pulls several GB of CUDA libraries)"
)


def _need_torch(cmd: str) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        print(TORCH_MISSING.format(cmd=cmd), file=sys.stderr)
        raise SystemExit(2) from None


def cmd_list(args: argparse.Namespace) -> int:
    """Every registered model, its tutorial, and parameter counts on both sides."""
    import jaxnets
    from jaxnets.report import Column, render

    try:
        import torchref
        from torchref.parity import count_params
    except ImportError:  # the Flax side lists fine without torch
        torchref = count_params = None
    rows = []
    for name in jaxnets.list_models():
        spec = jaxnets.get_model_spec(name)
        rows.append(
            {
                "model": name,
                "tutorial": spec.tutorial,
                "torch_params": count_params(torchref.create_model(name)) if torchref else None,
                "flax_params": _flax_count(jaxnets.create_model(name)),
                "input": "x".join(map(str, spec.torch_input_shape(1)[1:]))
                + (" (NHWC in Flax)" if spec.layout == "image" else ""),
                "loss": spec.loss,
                "description": spec.description,
            }
        )
    cols = [
        Column("model", "model", align="<"),
        Column("tutorial", "tutorial"),
        Column("torch_params", "torch params", "{:,}"),
        Column("flax_params", "flax params", "{:,}"),
        Column("input", "input", align="<"),
        Column("loss", "loss", align="<"),
        Column("description", "architecture", align="<"),
    ]
    print(render(rows, cols, args.format))
    return 0


def _flax_count(model: object) -> int:
    import numpy as np
    from flax import nnx

    return sum(int(np.prod(v.shape)) for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param)))


def cmd_compare(args: argparse.Namespace) -> int:
    """The parity table: both sides from one seed, weights copied, every error measured."""
    _need_torch("compare")
    import jaxnets
    from jaxnets.report import Column, render
    from torchref.compare import compare_models, summary_rows

    names = jaxnets.match_models(args.model)
    reports = compare_models(names, dtype=args.dtype, seed=args.seed, batch_size=args.batch_size)
    rows = summary_rows(reports)
    e = "{:.1e}"
    cols = [
        Column("model", "model", align="<"),
        Column("tutorial", "tut"),
        Column("torch_params", "torch params", "{:,}"),
        Column("flax_params", "flax params", "{:,}"),
        Column("output_abs", "out abs", e),
        Column("output_rel", "out rel", e),
        Column("loss_abs", "loss abs", e),
        Column("loss_rel", "loss rel", e),
        Column("grad_abs", "grad abs", e),
        Column("grad_rel", "grad rel", e),
        Column("buffer_abs", "stats abs", e),
        Column("ok", "parity", align="<"),
    ]
    for row in rows:
        row["ok"] = "ok" if row["ok"] else "FAILED"
    print(render(rows, cols, args.format))
    failed = [r for r in reports if not r.ok]
    if args.format == "table":
        t = reports[0].tolerance
        print(
            f"\n{len(reports) - len(failed)}/{len(reports)} models within tolerance "
            f"({args.dtype} on {reports[0].backend}: |a-b| <= {t.atol:g} + {t.rtol:g}*|b|, "
            f"elementwise; 'rel' is max|a-b| / max|b|). Gradients: worst parameter; "
            f"stats: BatchNorm running statistics."
        )
        for r in failed:
            print(f"\n{r}", file=sys.stderr)
    if args.explain:  # layer by layer; text, so it goes to stderr when stdout is JSON/CSV
        from torchref.explain import explain_models

        out = sys.stdout if args.format == "table" else sys.stderr
        for r in explain_models(
            names, dtype=args.dtype, seed=args.seed, batch_size=args.batch_size
        ):
            print(f"\n{r}", file=out)
    return 1 if failed else 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Training-step time and batch-1 latency, PyTorch and JAX side by side (needs torch)."""
    _need_torch("bench")
    from torchref.bench import cli_main

    return cli_main(args)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="training-step time and latency, PyTorch vs JAX (needs torch)")
    p.add_argument("--model", metavar="GLOB", help="only models matching this glob ('*net*')")
    p.add_argument(
        "--batch-size", type=int, nargs="+", metavar="N", help="batch sizes (default: per model)"
    )
    p.add_argument("--steps", type=int, help="training steps per timed block (default: per model)")
    p.add_argument("--repeats", type=int, default=7, help="interleaved rounds (medians over them)")
    p.add_argument("--infer-calls", type=int, default=200, help="forward calls per latency block")
    p.add_argument("--no-inference", dest="inference", action="store_false")
    p.add_argument("--no-torch-compile", dest="torch_compile", action="store_false")
    p.add_argument("--json", metavar="PATH", help="also write every result as JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--async-dispatch",
        action="store_true",
        help="keep JAX's asynchronous CPU dispatch (default: run computations inline, which "
        "removes a thread hand-off per call)",
    )
    p.add_argument("--xla-flags", default="", help="extra XLA_FLAGS for the JAX side")
    p.add_argument("--peak-ghz", type=float, help="clock for the FP32 peak (default: cpuinfo)")
    p.add_argument("--peak-cores", type=int, help="cores for the FP32 peak (default: all)")
    p.add_argument("--peak-flops-per-cycle", type=int, help="FP32 FLOP/cycle/core (default: ISA)")
    p.set_defaults(func=cmd_bench)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``jaxnets`` command."""
    parser = argparse.ArgumentParser(
        prog="jaxnets",
        description="Flax NNX twins of the PyTorch tutorial models, and proof that they agree.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="every registered model with parameter counts")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("compare", help="parity table: outputs, loss and gradients vs PyTorch")
    p.add_argument("--model", metavar="GLOB", help="only models matching this glob ('*net*')")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--explain",
        action="store_true",
        help="after the table, a layer-by-layer report for EVERY selected model (narrow with "
        "--model): each layer's output and gradient error, the first divergence and its "
        "likely causes",
    )
    p.set_defaults(func=cmd_compare)
    _add_bench(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxnets`` console script."""
    args = build_parser().parse_args(argv)
    from jaxnets.registry import UnknownModelError

    try:
        return args.func(args)
    except UnknownModelError as exc:
        print(f"jaxnets {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
