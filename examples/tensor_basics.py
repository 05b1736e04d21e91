"""Tutorial 004, "PyTorch basics: tensors": element-wise ops, matmul and a gradient, side by side.

    python examples/tensor_basics.py                    # torch and JAX, side by side
    python examples/tensor_basics.py --framework jax

torch's ``y.backward()`` fills ``x.grad``; JAX has no gradient buffers: ``jax.grad(f)`` is a
new function that returns the gradient.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jaxnets.app import loop as jl


def jax_side() -> dict[str, str]:
    """The tutorial's three computations in JAX, printed as strings."""
    import jax
    import jax.numpy as jnp

    x = jnp.array([1, 2, 3, 4, 5])
    y = jnp.array([2, 4, 6, 8, 10])
    a = jnp.array([[1, 2], [3, 4]])
    b = jnp.array([[5, 6], [7, 8]])
    grad = jax.grad(lambda x: x**2)(2.0)  # d(x^2)/dx at x = 2
    return {"x + y": str(x + y), "A @ B": str(jnp.matmul(a, b)), "d(x^2)/dx at 2": str(grad)}


def torch_side(device: str = "cpu") -> dict[str, str]:
    """The tutorial's code, as written there (on ``device``)."""
    import torch

    from jaxnets.app.torch_runs import torch_device

    with torch.device(torch_device(device)):  # scoped: the process default stays the CPU
        x = torch.tensor([1, 2, 3, 4, 5])
        y = torch.tensor([2, 4, 6, 8, 10])
        a = torch.tensor([[1, 2], [3, 4]])
        b = torch.tensor([[5, 6], [7, 8]])
        xg = torch.tensor([2.0], requires_grad=True)
        (xg**2).backward()
        # CUDA has no integer matmul ("addmm_cuda" not implemented for 'Long'): there, the
        # same sums of integer products, exactly, with elementwise ops that CUDA has
        ab = (a[:, :, None] * b[None, :, :]).sum(dim=1) if a.is_cuda else torch.matmul(a, b)
    return {"x + y": str(x + y), "A @ B": str(ab), "d(x^2)/dx at 2": str(xg.grad)}


def main(argv: Sequence[str] | None = None) -> int:
    """Print each computation in the chosen frameworks; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--framework", choices=["torch", "jax", "both"], default="both")
    p.add_argument("--device", choices=["cpu", "gpu", "tpu"], default="cpu")
    args = p.parse_args(argv)
    jl.select_jax_platform(args.device)
    sides = {"torch": lambda: torch_side(args.device), "jax": jax_side}
    results = {fw: sides[fw]() for fw in jl.parse_frameworks(args.framework)}
    for op in ("x + y", "A @ B", "d(x^2)/dx at 2"):
        print(f"\n{op}")
        for fw, res in results.items():
            lines = res[op].splitlines()
            print(f"  {fw:<5}  {lines[0]}")
            for line in lines[1:]:
                print(f"  {'':<5}  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
