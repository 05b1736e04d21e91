"""Tutorial 003, "introduction of neural networks": the LeNet walk-through, in PyTorch and JAX.

    python examples/lenet_walkthrough.py
    python examples/lenet_walkthrough.py --framework jax

Prints the model and its 10 parameter shapes, forwards a random 1x1x32x32 input (NHWC
1x32x32x1 for the Flax twin), backpropagates a random vector from the output
(``out.backward(torch.randn(1, 10))``, a vector-Jacobian product; in JAX the gradient of
``sum(out * v)``), computes the MSE against a random target, shows conv1's bias gradient
before and after ``backward`` and applies the tutorial's hand-written SGD update
``f.data.sub_(f.grad.data * learning_rate)``. Both sides start from the same weights.

The tutorial draws a second random input for the loss; this walk-through uses one input
throughout, so that its printouts describe one batch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from jaxnets.app import loop as jl
from jaxnets.app.cliargs import nonnegative_float, nonnegative_int


def jax_side(init: dict, x: np.ndarray, v: np.ndarray, target: np.ndarray, lr: float) -> dict:
    """The walk-through with the Flax twin. JAX keeps no ``.grad`` buffers: gradients are
    values returned by ``nnx.grad``, and an update is a new set of parameters."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    import jaxnets
    from jaxnets import convert, losses
    from jaxnets.debug.summary import parameter_table, torch_repr

    net = jaxnets.create_model("lenet")
    convert.load_state_dict(net, init)
    x_nhwc = jnp.asarray(x.transpose(0, 2, 3, 1))  # NCHW -> NHWC
    out = nnx.jit(lambda m, x: m(x))(net, x_nhwc)
    # out.backward(v): the vector-Jacobian product is the gradient of sum(out * v)
    vjp = nnx.jit(nnx.grad(lambda m: jnp.sum(m(x_nhwc) * jnp.asarray(v))))(net)

    def criterion(model: nnx.Module) -> jax.Array:
        return losses.mse_loss(model(x_nhwc), jnp.asarray(target))

    loss, grads = nnx.jit(nnx.value_and_grad(criterion))(net)  # loss.backward(), compiled
    params = nnx.state(net, nnx.Param)
    nnx.update(net, jax.tree.map(lambda p, g: p - lr * g, params, grads))  # p -= lr * grad
    return {
        "print(net)": torch_repr(net),
        "shapes": [
            f"{r['flax']} {list(r['flax_shape'])}" for r in parameter_table(net) if r["trainable"]
        ],
        "out": np.asarray(out),
        "vjp": np.asarray(vjp["conv1"]["bias"][...]),
        "loss": float(loss),
        "grad before": "no gradient buffers in JAX: gradients are return values",
        "grad after": np.asarray(grads["conv1"]["bias"][...]),
        "loss after update": float(nnx.jit(criterion)(net)),
        "weights": convert.state_dict(net),
    }


def torch_side(
    init: dict, x: np.ndarray, v: np.ndarray, target: np.ndarray, lr: float, device: str
) -> dict:
    """The tutorial's code, as written there."""
    import torch
    import torch.nn as nn

    import torchref
    from jaxnets.app.torch_runs import torch_device
    from torchref.bridge import from_numpy_state_dict, to_numpy_state_dict

    dev = torch_device(device)
    net = torchref.create_model("lenet")
    net.load_state_dict(from_numpy_state_dict(init))
    net.to(dev)
    params = list(net.parameters())
    inp, tgt = torch.from_numpy(x).to(dev), torch.from_numpy(target).to(dev)
    out = net(inp)
    net.zero_grad()
    out.backward(torch.from_numpy(v).to(dev))  # backprops with random gradients
    vjp = net.conv1.bias.grad.cpu().numpy().copy()
    out = net(inp)  # the tutorial runs the network again for the loss
    criterion = nn.MSELoss()
    loss = criterion(out, tgt)
    net.zero_grad()
    before = net.conv1.bias.grad  # None: zero_grad() sets grads to None since torch 2.0
    loss.backward()
    after = net.conv1.bias.grad.cpu().numpy().copy()
    for f in net.parameters():
        f.data.sub_(f.grad.data * lr)
    with torch.no_grad():
        loss_after = criterion(net(inp), tgt).item()
    return {
        "print(net)": repr(net),
        "shapes": [str(p.size()) for p in params],
        "out": out.detach().cpu().numpy(),
        "vjp": vjp,
        "loss": loss.item(),
        "grad before": str(before),
        "grad after": after,
        "loss after update": loss_after,
        "weights": to_numpy_state_dict(net),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--framework", choices=["torch", "jax", "both"], default="both")
    p.add_argument("--device", choices=["cpu", "gpu", "tpu"], default="cpu")
    p.add_argument("--learning-rate", type=nonnegative_float, default=0.01)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    args = p.parse_args(argv)
    jl.select_jax_platform(args.device)
    init = jl.initial_state_dict(jl.TrainConfig("lenet", seed=args.seed))
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((1, 1, 32, 32)).astype(np.float32)  # torch.randn(1, 1, 32, 32)
    target = rng.standard_normal((1, 10)).astype(np.float32)  # torch.randn(10).view(1, -1)
    v = rng.standard_normal((1, 10)).astype(np.float32)  # out.backward(torch.randn(1, 10))
    res = {}
    for fw in jl.parse_frameworks(args.framework):
        if fw == "jax":
            res[fw] = jax_side(init, x, v, target, args.learning_rate)
        else:
            res[fw] = torch_side(init, x, v, target, args.learning_rate, args.device)

    from jaxnets.debug.summary import side_by_side

    def show(title: str, key: str, fmt: str = "{}") -> None:
        print(f"\n{title}")
        for fw, r in res.items():
            text = fmt.format(r[key]) if not isinstance(r[key], list) else None
            if text is None:
                print(f"  {fw}: {len(r[key])} tensors")
                for line in r[key]:
                    print(f"    {line}")
            else:
                print(f"  {fw:<5}  {text}")

    np.set_printoptions(precision=4, suppress=True, linewidth=110)
    if len(res) == 2:
        print(side_by_side(res["torch"]["print(net)"], res["jax"]["print(net)"]))
    else:
        print(next(iter(res.values()))["print(net)"])
    show("parameters (torch [out, in, kH, kW]; Flax kernels [kH, kW, in, out]):", "shapes")
    show("out = net(input), input 1x1x32x32:", "out")
    show("conv1.bias.grad after out.backward(v), v = randn(1, 10):", "vjp")
    show("loss = nn.MSELoss()(out, target):", "loss", "{:.7f}")
    show("conv1.bias.grad before backward:", "grad before")
    show("conv1.bias.grad after backward:", "grad after")
    show(
        f"loss after the hand-written SGD update (lr={args.learning_rate}):",
        "loss after update",
        "{:.7f}",
    )
    if len(res) == 2:
        a, b = res["torch"], res["jax"]
        g = float(np.max(np.abs(a["grad after"] - b["grad after"])))
        vj = float(np.max(np.abs(a["vjp"] - b["vjp"])))
        w = max(float(np.max(np.abs(a["weights"][k] - b["weights"][k]))) for k in a["weights"])
        print(
            f"\nsummary: |conv1.bias.grad diff| after out.backward(v) {vj:.1e}, |loss diff| "
            f"{abs(a['loss'] - b['loss']):.1e}, |conv1.bias.grad diff| {g:.1e}, max |weight "
            f"diff| after the update {w:.1e}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
