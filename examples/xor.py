"""Tutorial 004, "building a simple neural network": the XOR problem in PyTorch and JAX.

    python examples/xor.py                      # 1000 epochs, loss every 100, predictions
    python examples/xor.py --framework jax --epochs 5000

The tutorial's ``SimpleNN`` (``xor_net``: 2-5-1, relu), MSELoss and SGD(lr=0.01), one
full-batch step per epoch on the four XOR points; both frameworks start from the same
weights, so their losses and final predictions agree to float32 rounding.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from jaxnets import data
from jaxnets.app import config, runs


def predictions(result: runs.RunResult, x: np.ndarray) -> np.ndarray:
    """The trained model's outputs on ``x`` (``with torch.no_grad(): model(X)``), ``(4, 1)``."""
    if result.framework == "jax":
        import jax.numpy as jnp

        import jaxnets
        from jaxnets import convert

        model = jaxnets.create_model("xor_net")
        convert.load_state_dict(model, result.state_dict)
        return np.asarray(model(jnp.asarray(x)))
    import torch

    import torchref
    from torchref.bridge import from_numpy_state_dict

    model = torchref.create_model("xor_net")
    model.load_state_dict(from_numpy_state_dict(result.state_dict))
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns the exit status."""
    p = config.ArgumentParser(description=__doc__.split("\n\n")[0])
    config.add_framework_args(p)
    config.add_training_args(p, epochs=1000, print_every=100)
    return config.run_main(p, _run, argv)


def _run(args: argparse.Namespace) -> int:
    frameworks = config.setup_frameworks(args)  # torch installed if it runs; JAX's device
    x, y = data.xor_dataset()
    cfg = runs.TrainConfig(
        "xor_net", epochs=args.epochs, batch_size=4, lr=args.lr, momentum=0.0, seed=args.seed
    )
    progress = config.show_progress(args.no_progress)
    results = runs.run_frameworks(
        cfg, runs.Dataset(x, y), frameworks, device=args.device, progress=progress
    )
    print(runs.loss_log(results, args.print_every, digits=4))
    preds = {r.framework: predictions(r, x) for r in results}
    print("\nFinal predictions:")
    print(f"{'input':>12}{'target':>8}" + "".join(f"{fw:>12}" for fw in preds))
    for i in range(len(x)):
        cells = "".join(f"{float(p[i, 0]):>12.4f}" for p in preds.values())
        print(f"{x[i].astype(int).tolist()!s:>12}{float(y[i, 0]):>8.0f}{cells}")
    print("\n" + runs.result_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
