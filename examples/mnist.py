"""Tutorial 004's challenge, "recognizing handwritten digits": MNIST in PyTorch and JAX.

Trains tutorial 000's ``custom_neural_network`` (784-256-128-10 MLP) and tutorial 003's
``lenet`` on real MNIST in both frameworks, from the same initial weights and in the same
batch order, then prints each side's test accuracy and wall time and draws both loss curves
in one PNG. The tutorial only suggests MNIST, so the recipe is this project's: tutorial 000's
``CrossEntropyLoss`` and ``SGD(lr=0.01)`` with momentum 0.9 added (``--momentum 0`` for the
tutorials' plain SGD), batch 64 (the last incomplete batch of each epoch is dropped on both
sides).

    python examples/mnist.py --data-dir /path/to/mnist                # both models, 3 epochs
    python examples/mnist.py --model lenet --framework jax --device gpu

Precision on GPU: ``--precision highest`` (default) runs true float32 in both frameworks (JAX
``jax_default_matmul_precision='highest'``, torch TF32 off), so the two runs stay comparable;
``--precision default`` lets JAX use TF32 matmuls and torch TF32 cuDNN convolutions: faster on
Ampere and newer GPUs, about 1e-3 relative error per product. On CPU both are float32.

Data: the four standard IDX files (torchvision names, .gz or raw) from ``--data-dir``, else
``$JAXNETS_DATA_DIR``, else the cache folder; ``--download`` fetches them (MD5-checked).
The loss curves go to ``mnist_loss_curves.png`` in the current directory (``--plot PATH`` to
choose, ``--plot ''`` for none).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from jaxnets.app import loop as jl
from jaxnets.app.cliargs import model_name, nonnegative_int, show_progress


def build_parser() -> argparse.ArgumentParser:
    """Arguments of this example."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model",
        type=model_name,
        nargs="+",
        default=["custom_neural_network", "lenet"],
        help="registered models that take MNIST (default: %(default)s)",
    )
    jl.add_run_args(p)  # framework, device, precision, dtype, devices; recipe; data
    p.add_argument(
        "--seed",
        type=nonnegative_int,
        nargs="+",
        default=[0],
        help="initial weights and batch order; several seeds add a table of the accuracy "
        "gap over them (float32 runs drift apart by rounding, so one seed's gap is a draw)",
    )
    p.add_argument(
        "--plot",
        default="mnist_loss_curves.png",
        help="PNG of the loss curves; a bare name is written in the current directory "
        "(default: %(default)s; '' for none)",
    )
    p.add_argument("--results", help="also write the runs (losses, accuracy, times) as JSON")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars (never drawn when stderr is not a terminal)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        jl.configure_runtime(args)  # platform, devices/mesh, precision, float64
    except (ValueError, RuntimeError) as exc:  # --device, --devices, --mesh, --distributed
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    frameworks = jl.parse_frameworks(args.framework)
    if "torch" in frameworks:
        from jaxnets.app.torch_runs import run_frameworks
        from torchref.precision import set_precision

        set_precision(args.precision)
    results = []
    described: dict[int, str] = {}  # seed -> optimizer, batch, epochs, seed in words
    for model in args.model:
        try:
            dataset = jl.mnist_dataset(
                model,
                data_dir=args.data_dir,
                download=args.download,
                verify=not args.no_verify,
                limit=args.limit,
                test_limit=args.test_limit,
                dtype=args.dtype,
            )
        except ValueError as exc:  # jaxnets.data.DataError, or a model that does not take MNIST
            print(f"{parser.prog}: error: {exc}", file=sys.stderr)
            return 2
        if len(dataset.x_train) < args.batch_size:
            print(
                f"{parser.prog}: error: --batch-size {args.batch_size} is larger than the "
                f"{len(dataset.x_train)} training images; use a smaller --batch-size",
                file=sys.stderr,
            )
            return 2
        for seed in args.seed:
            cfg = jl.TrainConfig(
                model,
                epochs=args.epochs,
                batch_size=args.batch_size,
                optimizer=args.optimizer,
                lr=args.lr,
                momentum=args.momentum,
                seed=seed,
                dtype=args.dtype,
            )
            described[seed] = cfg.describe()
            progress = show_progress(args.no_progress)
            if frameworks == ["jax"]:
                results.append(jl.run_jax(cfg, dataset, progress=progress))
            else:
                kw = {"device": args.device, "progress": progress}
                results += run_frameworks(cfg, dataset, frameworks, **kw)
    for seed in args.seed:
        first = [r for r in results if r.seed == seed]
        print(f"\nMNIST, {described[seed]}, {args.dtype}, same initial weights and batch order")
        for model in args.model:
            print("\n" + jl.result_table([r for r in first if r.model == model]))
    if len(args.seed) > 1:
        for model in args.model:
            print(f"\n{model}: test accuracy over seeds {args.seed} ({args.dtype})")
            print(jl.seed_spread_table([r for r in results if r.model == model]))
    if args.plot:
        from jaxnets.app.plot import plot_loss_curves

        seed = args.seed[0]
        runs = [r for r in results if r.seed == seed]
        sub = f"MNIST, {described[seed]}, {args.dtype}"
        print(f"\nloss curves: {plot_loss_curves(runs, args.plot, subtitle=sub)}")
    if args.results:
        with open(args.results, "w") as f:
            json.dump(jl.results_to_json(results), f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
