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
The loss curves go to ``mnist_loss_curves.png`` in the current directory when matplotlib is
installed (``pip install -e '.[plot]'``; ``--plot PATH`` to choose, which then requires it,
``--plot ''`` for none).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jaxnets.app import config, runs
from jaxnets.app.config import ArgumentParser, CommandError, model_name

DEFAULT_PLOT = "mnist_loss_curves.png"


def build_parser() -> ArgumentParser:
    """Arguments of this example."""
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model",
        type=model_name,
        nargs="+",
        default=["custom_neural_network", "lenet"],
        help="registered models that take MNIST (default: %(default)s)",
    )
    config.add_run_args(p, seeds=True)  # framework, device, precision, dtype, devices; recipe
    p.add_argument(
        "--plot",
        help=f"PNG of the loss curves; a bare name is written in the current directory "
        f"(default: {DEFAULT_PLOT} when matplotlib is installed; '' for none)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns the exit status."""
    return config.run_main(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    """Everything that can be refused is refused first (a missing package, data or a bad
    batch size), then JAX starts and the runs train."""
    frameworks = config.setup_frameworks(args)
    plot = args.plot
    if plot is None:  # the default picture: drawn when it can be, said so when not
        try:
            config.require_plotting("the loss-curve picture")
            plot = DEFAULT_PLOT
        except CommandError as exc:
            print(f"no plot: {exc} (--plot '' for none says nothing)", file=sys.stderr)
            plot = ""
    elif plot:
        config.require_plotting(f"--plot {plot}")
    cfgs = [config.train_config(args, m, seed=seed) for m in args.model for seed in args.seed]
    datasets = {
        m: config.run_dataset(args, config.train_config(args, m, seed=0)) for m in args.model
    }
    mesh = config.configure_runtime(args)  # platform, devices/mesh, precision, float64
    progress = config.show_progress(args.no_progress)
    results = []
    for cfg in cfgs:
        results += runs.run_frameworks(
            cfg, datasets[cfg.model], frameworks, device=args.device, progress=progress, mesh=mesh
        )
    described = {cfg.seed: cfg.describe() for cfg in cfgs}  # optimizer, batch, epochs, seed
    for seed in args.seed:
        first = [r for r in results if r.seed == seed]
        print(f"\nMNIST, {described[seed]}, {args.dtype}, same initial weights and batch order")
        for model in args.model:
            print("\n" + runs.result_table([r for r in first if r.model == model]))
    if len(args.seed) > 1:
        for model in args.model:
            print(f"\n{model}: test accuracy over seeds {args.seed} ({args.dtype})")
            print(runs.seed_spread_table([r for r in results if r.model == model]))
    if plot:
        from jaxnets.app.plot import plot_loss_curves

        seed = args.seed[0]
        sub = f"MNIST, {described[seed]}, {args.dtype}"
        curves = plot_loss_curves([r for r in results if r.seed == seed], plot, subtitle=sub)
        print(f"\nloss curves: {curves}")
    if args.results:
        runs.save_results(results, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
