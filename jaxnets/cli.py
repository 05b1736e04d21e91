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
    import importlib.util

    if importlib.util.find_spec("torch") is None:  # look, don't import: that is torchref's job
        print(TORCH_MISSING.format(cmd=cmd), file=sys.stderr)
        raise SystemExit(2)


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
    if args.timing:
        from torchref.timing import step_times

        for row in rows:
            st = step_times(row["model"], batch_size=args.batch_size, dtype=args.dtype)
            row["torch_step_ms"], row["jax_step_ms"] = st.torch_ms, st.jax_ms
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
        *(
            [
                Column("torch_step_ms", "torch ms/step", "{:.3f}"),
                Column("jax_step_ms", "jax ms/step", "{:.3f}"),
            ]
            if args.timing
            else []
        ),
        Column("tolerance_used", "tol used", "{:.1%}"),
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
            f"({args.dtype} on {reports[0].backend}: max|a-b| <= {t.atol:g} + "
            f"{t.rtol:g}*max|b| per tensor; 'rel' is max|a-b| / max|b|). Gradients: the "
            f"parameter using most of its tolerance (a 'rel' near 1 there is noise over noise: "
            f"batchnorm_mlp's fc1/fc2 biases feed a BatchNorm, so their gradient is exactly zero "
            f"and both sides hold rounding noise far below atol); 'tol used': the largest "
            f"fraction of the tolerance any compared tensor spends (fails above 100%); "
            f"stats: BatchNorm running statistics."
            + (
                f" ms/step: median time of one SGD training step (batch {args.batch_size}, "
                f"JAX after compilation; --no-timing skips it)."
                if args.timing
                else ""
            )
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


def _model_config(pairs: Sequence[str] | None) -> dict[str, object]:
    """``['hidden_sizes=(64, 32)', 'activation=tanh']`` -> config keyword arguments."""
    import ast

    config: dict[str, object] = {}
    for pair in pairs or ():
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"jaxnets: --config expects KEY=VALUE, got {pair!r}")
        try:
            config[key.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            config[key.strip()] = text  # a bare word such as tanh
    return config


def cmd_train(args: argparse.Namespace) -> int:
    """Train MODEL on MNIST in torch and/or JAX from one start and batch order; summary, plot."""
    import json

    from jaxnets import data
    from jaxnets import loop as jl

    frameworks = jl.parse_frameworks(args.framework)
    if args.checkpoint and frameworks != ["jax"]:
        print("jaxnets train: --checkpoint/--resume need --framework jax", file=sys.stderr)
        return 2
    cfg = jl.TrainConfig(
        args.model,
        model_config=_model_config(args.config),
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        momentum=args.momentum,
        seed=args.seed,
        dtype=args.dtype,
    )
    try:
        dataset = jl.mnist_dataset(
            args.model,
            data_dir=args.data_dir,
            download=args.download,
            verify=not args.no_verify,
            limit=args.limit,
            test_limit=args.test_limit,
            dtype=args.dtype,
            **cfg.model_config,
        )
    except (data.DataError, ValueError) as exc:
        print(f"jaxnets train: error: {exc}", file=sys.stderr)
        return 2
    # after the checks above (numpy only), so bad arguments are refused before JAX starts
    jl.configure_runtime(args)  # platform, devices/mesh, precision, float64
    progress = not args.no_progress
    if frameworks == ["jax"]:
        results = [
            jl.run_jax(
                cfg, dataset, progress=progress, checkpoint=args.checkpoint, resume=args.resume
            )
        ]
    else:
        _need_torch("train --framework torch|both")
        from torchref.loop import run_frameworks, set_torch_precision

        set_torch_precision(args.precision)
        results = run_frameworks(cfg, dataset, frameworks, device=args.device, progress=progress)
    print(f"\n{args.model} on MNIST, {cfg.describe()}, {args.dtype}\n")
    print(jl.result_table(results))
    if args.plot:
        from jaxnets.plot import plot_loss_curves

        sub = f"MNIST, {cfg.describe()}, {args.dtype}"
        print(f"\nloss curves: {plot_loss_curves(results, args.plot, subtitle=sub)}")
    if args.results:
        with open(args.results, "w") as f:
            json.dump(jl.results_to_json(results), f)
    return 0


def _is_flax_file(path: str) -> bool:
    """A Flax-layout checkpoint: named ``*.flax.safetensors``, or a .safetensors file whose
    header says ``jaxnets_format=flax``."""
    from pathlib import Path

    p = Path(path)
    if p.name.lower().endswith(".flax.safetensors"):
        return True
    if p.suffix.lower() == ".safetensors" and p.exists():
        from jaxnets.checkpoint import FORMAT_KEY, read_metadata

        return read_metadata(p).get(FORMAT_KEY) == "flax"
    return False


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert a checkpoint between torch layout (.pt/.pth/.safetensors state dict) and Flax
    layout (*.flax.safetensors), through the registered twin (every key and shape checked)."""
    import jaxnets
    from jaxnets import checkpoint, convert

    src_flax, dst_flax = (
        _is_flax_file(args.input),
        args.output.lower().endswith(".flax.safetensors"),
    )
    if src_flax and dst_flax:
        print(
            "jaxnets convert: both files are Flax layout; OUT must be a torch file "
            "(.pt, .pth or .safetensors not ending in .flax.safetensors)",
            file=sys.stderr,
        )
        return 2
    model = jaxnets.create_model(args.model, **_model_config(args.config))
    meta = {"jaxnets_model": args.model}
    try:
        if src_flax:
            checkpoint.load_flax(args.input, model)
        elif args.input.lower().endswith(".safetensors"):
            checkpoint.load_torch_layout(args.input, model)
        else:
            _need_torch("convert (reading a torch.save file)")
            from torchref.checkpoint import load_torch_file

            convert.load_state_dict(model, load_torch_file(args.input))
        if dst_flax:
            out = checkpoint.save_flax(args.output, model, metadata=meta)
        elif args.output.lower().endswith(".safetensors"):
            out = checkpoint.save_torch_layout(args.output, model, metadata=meta)
        else:
            _need_torch("convert (writing a torch.save file)")
            from torchref.checkpoint import save_torch_file

            out = save_torch_file(args.output, convert.state_dict(model))
    except (checkpoint.CheckpointError, convert.StateDictError, OSError) as exc:
        print(f"jaxnets convert: error: {exc}", file=sys.stderr)
        return 2
    kind = {True: "Flax layout", False: "torch layout"}
    print(f"{args.input} ({kind[src_flax]}) -> {out} ({kind[dst_flax]}), model {args.model}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    """The twin printed as torch prints a model, beside torch's own ``print(model)``."""
    import math

    import jaxnets
    from jaxnets.summary import parameter_table, side_by_side, torch_repr

    config = _model_config(args.config)
    flax_text = torch_repr(jaxnets.create_model(args.model, **config))
    try:
        import torchref
    except ImportError:
        torchref = None
    if torchref is None:
        print(flax_text)
    else:
        torch_text = repr(torchref.create_model(args.model, **config))
        print(side_by_side(torch_text, flax_text, titles=("PyTorch print(model)", "Flax NNX twin")))
        same = "identical" if torch_text == flax_text else "DIFFERENT"
        print(f"\n(architecture text {same})")
    if args.params:
        rows = parameter_table(jaxnets.create_model(args.model, **config))
        w = max(len(r["torch"]) for r in rows)
        wf = max(len(r["flax"]) for r in rows)
        print(f"\n{'torch key':<{w}}  {'torch shape':<16}  {'Flax path':<{wf}}  Flax shape")
        for r in rows:
            ts, fs = str(list(r["torch_shape"])), str(list(r["flax_shape"]))
            print(f"{r['torch']:<{w}}  {ts:<16}  {r['flax']:<{wf}}  {fs}")
        n = sum(math.prod(r["torch_shape"]) for r in rows if r["trainable"])
        print(f"{len([r for r in rows if r['trainable']])} parameter tensors, {n:,} parameters")
    return 0


def _add_train_convert_summary(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on MNIST in torch and/or JAX, side by side")
    p.add_argument("model", metavar="MODEL")
    from jaxnets.loop import add_run_args

    add_run_args(p)
    p.add_argument("--config", action="append", metavar="KEY=VALUE", help="model config")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", metavar="PNG", help="draw the loss curves into this PNG")
    p.add_argument("--results", metavar="JSON", help="write the runs (losses, accuracy) here")
    p.add_argument("--checkpoint", metavar="PATH", help="save the JAX run here every epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "convert",
        help="checkpoint: torch state dict <-> Flax layout (OUT *.flax.safetensors = Flax)",
    )
    p.add_argument("input", metavar="IN", help=".pt/.pth/.safetensors or *.flax.safetensors")
    p.add_argument("output", metavar="OUT", help="*.flax.safetensors for Flax layout, else torch")
    p.add_argument("--model", required=True, help="registry name of the model the weights fit")
    p.add_argument("--config", action="append", metavar="KEY=VALUE", help="model config")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("summary", help="print(model) of the Flax twin beside torch's")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--config", action="append", metavar="KEY=VALUE", help="model config")
    p.add_argument("--params", action="store_true", help="every tensor in both layouts")
    p.set_defaults(func=cmd_summary)


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
        "--device",
        choices=["cpu", "gpu"],
        default="cpu",
        help="where both frameworks run (gpu: torch on cuda, JAX on CUDA, true float32)",
    )
    p.add_argument(
        "--async-dispatch",
        action="store_true",
        help="keep JAX's asynchronous CPU dispatch (default: run computations inline, which "
        "removes a thread hand-off per call)",
    )
    p.add_argument(
        "--system-malloc",
        action="store_true",
        help="leave glibc malloc as it is (default on the CPU: keep freed memory for reuse, "
        "jaxnets.host.retain_freed_memory, so XLA's large per-call temporaries are not "
        "page-faulted in again on every call; torch in the same process gets the same)",
    )
    p.add_argument(
        "--xla-flags",
        default="",
        help="extra XLA_FLAGS for the JAX side; write it with '=' since the value starts "
        "with dashes: --xla-flags='--xla_cpu_use_xnnpack=false'",
    )
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
    p.add_argument(
        "--no-timing",
        dest="timing",
        action="store_false",
        help="skip the time-per-training-step columns (torch and JAX)",
    )
    p.set_defaults(func=cmd_compare)
    _add_train_convert_summary(sub)
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
