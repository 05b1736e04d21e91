"""Tutorial 000, "creating a simple neural network": build, print, forward, one SGD step.

    python examples/first_network.py                                # SimpleNeuralNetwork
    python examples/first_network.py --model custom_neural_network  # the exercise
    python examples/first_network.py --framework jax

Both frameworks start from the same weights (the twin's torch-style initialisation, copied
into torch) and see the same random 1x784 input and target class 3, so every printed number
can be compared across the columns.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from jaxnets.app import loop as jl
from jaxnets.app.cliargs import nonnegative_float, nonnegative_int


def run_jax(model_name: str, init: dict, x: np.ndarray, y: np.ndarray, lr: float) -> dict:
    """The tutorial's steps with the Flax twin: print(model), forward, one SGD step."""
    import jax.numpy as jnp

    import jaxnets
    from jaxnets import convert, optim
    from jaxnets.debug.summary import torch_repr
    from jaxnets.training.trainer import Trainer

    model = jaxnets.create_model(model_name)
    convert.load_state_dict(model, init)
    output = model(jnp.asarray(x))  # forward pass
    trainer = Trainer(model, optim.sgd(lr=lr), "cross_entropy")  # criterion + optimizer
    state, loss = trainer.step(trainer.init(), jnp.asarray(x), jnp.asarray(y, jnp.int32))
    trainer.write_back(state)  # the updated weights, back into the model
    return {
        "print(model)": torch_repr(model),
        "output": np.asarray(output),
        "loss": float(loss),
        "weights": convert.state_dict(model),
    }


def run_torch(
    model_name: str, init: dict, x: np.ndarray, y: np.ndarray, lr: float, device: str
) -> dict:
    """The tutorial's code with the torch reference."""
    import torch
    import torch.nn as nn
    import torch.optim as optim

    import torchref
    from jaxnets.app.torch_runs import torch_device
    from torchref.bridge import from_numpy_state_dict, to_numpy_state_dict

    dev = torch_device(device)
    model = torchref.create_model(model_name)
    model.load_state_dict(from_numpy_state_dict(init))
    model.to(dev)
    input_data, target = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
    output = model(input_data)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=lr)
    optimizer.zero_grad()
    loss = criterion(output, target)
    loss.backward()
    optimizer.step()
    return {
        "print(model)": repr(model),
        "output": output.detach().cpu().numpy(),
        "loss": loss.item(),
        "weights": to_numpy_state_dict(model),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model",
        choices=["simple_neural_network", "custom_neural_network"],
        default="simple_neural_network",
    )
    p.add_argument("--framework", choices=["torch", "jax", "both"], default="both")
    p.add_argument("--device", choices=["cpu", "gpu", "tpu"], default="cpu")
    p.add_argument("--lr", type=nonnegative_float, default=0.01)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    args = p.parse_args(argv)
    jl.select_jax_platform(args.device)
    frameworks = jl.parse_frameworks(args.framework)

    init = jl.initial_state_dict(jl.TrainConfig(args.model, seed=args.seed))
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((1, 784)).astype(np.float32)  # input_data = torch.randn(1, 784)
    y = np.array([3])  # target = torch.tensor([3])
    res = {}
    for fw in frameworks:
        if fw == "jax":
            res[fw] = run_jax(args.model, init, x, y, args.lr)
        else:
            res[fw] = run_torch(args.model, init, x, y, args.lr, args.device)

    from jaxnets.debug.summary import side_by_side

    if len(res) == 2:
        print(side_by_side(res["torch"]["print(model)"], res["jax"]["print(model)"]))
    else:
        print(next(iter(res.values()))["print(model)"])
    np.set_printoptions(precision=4, suppress=True, linewidth=100)
    print("\noutput = model(input_data), input_data of shape (1, 784):")
    for fw, r in res.items():
        print(f"  {fw:<5}  {r['output']}")
    print(f"\none SGD step (lr={args.lr}) with CrossEntropyLoss, target class 3:")
    for fw, r in res.items():
        print(f"  {fw:<5}  Loss: {r['loss']:.7f}")
    if len(res) == 2:
        a, b = res["torch"], res["jax"]
        out = float(np.max(np.abs(a["output"] - b["output"])))
        w = max(float(np.max(np.abs(a["weights"][k] - b["weights"][k]))) for k in a["weights"])
        print(
            f"\nsummary: |output diff| {out:.1e}, |loss diff| {abs(a['loss'] - b['loss']):.1e}, "
            f"max |weight diff| after the step {w:.1e}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
