"""Tutorial 001, "how to use the nn module": ``MyNetwork``, MSELoss, SGD, a print interval.

    python examples/regression_loop.py                       # torch and JAX, side by side
    python examples/regression_loop.py --epochs 500 --print-every 50 --framework jax

Each epoch is one full-batch step on noisy linear data (``jaxnets.data.regression_dataset``,
``input_dim=10``, ``output_dim=1``), as in the tutorial's loop; both frameworks start from
the same weights.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jaxnets import data
from jaxnets.app import config, runs


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns the exit status."""
    p = config.ArgumentParser(description=__doc__.split("\n\n")[0])
    config.add_framework_args(p)
    config.add_training_args(p, epochs=100, print_every=10, batch_size=256)
    return config.run_main(p, _run, argv)


def _run(args: argparse.Namespace) -> int:
    frameworks = config.setup_frameworks(args)  # torch installed if it runs; JAX's device
    x, y = data.regression_dataset(args.batch_size, 10, 1, seed=args.seed)
    cfg = runs.TrainConfig(
        "my_network",
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=0.0,
        seed=args.seed,
    )
    progress = config.show_progress(args.no_progress)
    results = runs.run_frameworks(
        cfg, runs.Dataset(x, y), frameworks, device=args.device, progress=progress
    )
    print(runs.loss_log(results, args.print_every))
    print("\n" + runs.result_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
