"""Tutorial 001, "how to use the nn module": ``MyNetwork``, MSELoss, SGD, a print interval.

    python examples/regression_loop.py                       # torch and JAX, side by side
    python examples/regression_loop.py --num-epochs 500 --print-interval 50 --framework jax

Each epoch is one full-batch step on noisy linear data (``jaxnets.data.regression_dataset``,
``input_dim=10``, ``output_dim=1``), as in the tutorial's loop; both frameworks start from
the same weights.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jaxnets import data
from jaxnets.app import loop as jl
from jaxnets.app.cliargs import nonnegative_float, nonnegative_int, positive_int, show_progress


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--framework", choices=["torch", "jax", "both"], default="both")
    p.add_argument("--device", choices=["cpu", "gpu", "tpu"], default="cpu")
    p.add_argument("--num-epochs", type=positive_int, default=100)
    p.add_argument("--print-interval", type=positive_int, default=10, help="print every N epochs")
    p.add_argument("--learning-rate", type=nonnegative_float, default=0.01)
    p.add_argument("--batch-size", type=positive_int, default=256, help="examples (one batch)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars (not on a pipe)")
    args = p.parse_args(argv)
    jl.select_jax_platform(args.device)
    frameworks = jl.parse_frameworks(args.framework)

    x, y = data.regression_dataset(args.batch_size, 10, 1, seed=args.seed)
    dataset = jl.Dataset(x, y)
    cfg = jl.TrainConfig(
        "my_network",
        epochs=args.num_epochs,
        batch_size=args.batch_size,
        lr=args.learning_rate,
        momentum=0.0,
        seed=args.seed,
    )
    progress = show_progress(args.no_progress)
    if frameworks == ["jax"]:
        results = [jl.run_jax(cfg, dataset, progress=progress)]
    else:
        from jaxnets.app.torch_runs import run_frameworks

        kw = {"device": args.device, "progress": progress}
        results = run_frameworks(cfg, dataset, frameworks, **kw)
    print(f"{'epoch':>12}" + "".join(f"{r.framework + ' loss':>14}" for r in results))
    for epoch in range(args.print_interval, args.num_epochs + 1, args.print_interval):
        row = "".join(f"{r.losses[epoch - 1]:>14.6f}" for r in results)
        print(f"{f'{epoch}/{args.num_epochs}':>12}{row}")
    print("\n" + jl.result_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
