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
from jaxnets.app import loop as jl
from jaxnets.app.cliargs import nonnegative_float, nonnegative_int, positive_int, show_progress


def predictions(result: jl.RunResult, x: np.ndarray) -> np.ndarray:
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
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--framework", choices=["torch", "jax", "both"], default="both")
    p.add_argument("--device", choices=["cpu", "gpu", "tpu"], default="cpu")
    p.add_argument("--epochs", type=positive_int, default=1000)
    p.add_argument("--print-every", type=positive_int, default=100, help="print every N epochs")
    p.add_argument("--lr", type=nonnegative_float, default=0.01)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars (not on a pipe)")
    args = p.parse_args(argv)
    jl.select_jax_platform(args.device)
    frameworks = jl.parse_frameworks(args.framework)

    x, y = data.xor_dataset()
    cfg = jl.TrainConfig(
        "xor_net", epochs=args.epochs, batch_size=4, lr=args.lr, momentum=0.0, seed=args.seed
    )
    progress = show_progress(args.no_progress)
    if frameworks == ["jax"]:
        results = [jl.run_jax(cfg, jl.Dataset(x, y), progress=progress)]
    else:
        from jaxnets.app.torch_runs import run_frameworks

        kw = {"device": args.device, "progress": progress}
        results = run_frameworks(cfg, jl.Dataset(x, y), frameworks, **kw)
    print(f"{'epoch':>12}" + "".join(f"{r.framework + ' loss':>14}" for r in results))
    for epoch in range(args.print_every, args.epochs + 1, args.print_every):
        row = "".join(f"{r.losses[epoch - 1]:>14.4f}" for r in results)
        print(f"{f'[{epoch}/{args.epochs}]':>12}{row}")
    preds = {r.framework: predictions(r, x) for r in results}
    print("\nFinal predictions:")
    print(f"{'input':>12}{'target':>8}" + "".join(f"{fw:>12}" for fw in preds))
    for i in range(len(x)):
        cells = "".join(f"{float(p[i, 0]):>12.4f}" for p in preds.values())
        print(f"{x[i].astype(int).tolist()!s:>12}{float(y[i, 0]):>8.0f}{cells}")
    print("\n" + jl.result_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
