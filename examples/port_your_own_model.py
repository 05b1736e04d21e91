"""Port your own model: a PyTorch CNN that is not in the registry, its Flax twin, and the report.

    python examples/port_your_own_model.py            # every round's report in full
    python examples/port_your_own_model.py --brief    # one line per round

The torch model below uses Conv2d, GELU and LayerNorm. The twin starts as a first draft
written with Flax's defaults, which is how most ports begin, and carries four classic faults:
``jax.nn.gelu`` (tanh approximation; torch's ``nn.GELU()`` is exact), ``nnx.Conv``'s default
``padding='SAME'`` (torch pads 0), a flatten of NHWC activations (torch flattens NCHW), and
``nnx.LayerNorm``'s ``epsilon=1e-6`` (torch uses 1e-5).

The parity harness (``torchref.parity.compare``) gives one verdict for the whole model: the
draft fails (it does not even run). Then each round copies the torch weights into the twin
(``torchref.bridge.torch_to_flax``) and reads the layer-by-layer report
(``torchref.explain.explain``): the first layer where the twin departs from torch and a
``confirmed`` cause, plus the confirmed causes of any other layer that is wrong on its own
input. The script applies the fixes those causes name and goes again until every layer
agrees, and the harness confirms parity once more, as your own test will.

Everything runs in float64, where a wrong formula cannot hide in rounding noise (a LayerNorm
eps of 1e-6 against 1e-5 moves float32 outputs by about the float32 tolerance; in float64 it
is 10 orders above).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax

jax.config.update("jax_enable_x64", True)  # float64 parity first, before anything is built

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from flax import nnx  # noqa: E402

from torchref import parity  # noqa: E402
from torchref.bridge import torch_to_flax  # noqa: E402
from torchref.explain import explain  # noqa: E402

# --- 1. the PyTorch model, as you have it --------------------------------------------------


class SmallConvNet(nn.Module):
    """``(N, 1, 10, 10) -> (N, 4)`` logits."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)  # 10x10 -> 10x10
        self.conv2 = nn.Conv2d(4, 8, 3)  # 5x5 -> 3x3 (padding 0)
        self.fc1 = nn.Linear(8 * 3 * 3, 32)
        self.norm = nn.LayerNorm(32)
        self.act = nn.GELU()  # one module, called three times
        self.fc2 = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.act(self.conv1(x)), 2)  # (N, 4, 5, 5)
        x = self.act(self.conv2(x))  # (N, 8, 3, 3)
        x = torch.flatten(x, 1)  # (N, 72), (C, H, W) order
        x = self.act(self.norm(self.fc1(x)))
        return self.fc2(x)


# --- 2. the Flax twin, written from scratch ------------------------------------------------
# Same attribute names as torch (conv1, conv2, fc1, norm, fc2): the converter and the report
# match layers by name. Each choice a port has to get right is a field, so the script can
# show the first draft and the fixes; a real twin just hard-codes the right values.


@dataclass(frozen=True)
class PortChoices:
    """The choices where Flax's defaults differ from torch's. Defaults: torch's semantics."""

    gelu_approximate: bool = False  # nn.GELU() is exact (erf); jax.nn.gelu defaults to tanh
    conv2_padding: Any = 0  # nn.Conv2d pads 0; nnx.Conv defaults to 'SAME'
    flatten_nchw: bool = True  # torch.flatten of NCHW; the twin's activations are NHWC
    norm_eps: float = 1e-5  # nn.LayerNorm eps; nnx.LayerNorm defaults to 1e-6


FIRST_DRAFT = PortChoices(
    gelu_approximate=True, conv2_padding="SAME", flatten_nchw=False, norm_eps=1e-6
)


class SmallConvNetTwin(nnx.Module):
    """NHWC ``(N, 10, 10, 1) -> (N, 4)`` logits."""

    def __init__(
        self,
        num_classes: int = 4,
        choices: PortChoices = PortChoices(),
        *,
        rngs: nnx.Rngs,
        param_dtype: Any = jnp.float64,
    ) -> None:
        kw = dict(rngs=rngs, param_dtype=param_dtype)
        pad = choices.conv2_padding
        self.conv1 = nnx.Conv(1, 4, (3, 3), padding=((1, 1), (1, 1)), **kw)
        self.conv2 = nnx.Conv(
            4, 8, (3, 3), padding=pad if isinstance(pad, str) else ((pad, pad), (pad, pad)), **kw
        )
        self.fc1 = nnx.Linear(8 * 3 * 3, 32, **kw)
        self.norm = nnx.LayerNorm(32, epsilon=choices.norm_eps, **kw)
        self.fc2 = nnx.Linear(32, num_classes, **kw)
        self.approximate = choices.gelu_approximate
        self.flatten_nchw = choices.flatten_nchw

    def act(self, x: jax.Array) -> jax.Array:
        """torch's ``self.act`` (a plain function here: the report infers it by dataflow)."""
        return jax.nn.gelu(x, approximate=self.approximate)

    def __call__(self, x: jax.Array) -> jax.Array:
        n = x.shape[0]
        x = self.act(self.conv1(x))  # (N, 10, 10, 4)
        x = x.reshape(n, 5, 2, 5, 2, 4).max(axis=(2, 4))  # 2x2 max pool: (N, 5, 5, 4)
        x = self.act(self.conv2(x))  # (N, 3, 3, 8)
        if self.flatten_nchw:  # torch flattens (C, H, W): transpose NHWC -> NCHW first
            x = x.transpose(0, 3, 1, 2)
        x = x.reshape(n, -1)  # (N, 72)
        x = self.act(self.norm(self.fc1(x)))
        return self.fc2(x)


# --- 3. reading the report: each confirmed cause and the fix it names ----------------------

FIXES: dict[str, tuple[str, Any]] = {
    "gelu_approximation": ("gelu_approximate", False),
    "conv_padding": ("conv2_padding", 0),
    "flatten_nhwc": ("flatten_nchw", True),
    "layernorm_eps": ("norm_eps", 1e-5),
}


def make_pair(choices: PortChoices, seed: int) -> tuple[SmallConvNet, SmallConvNetTwin]:
    """The torch model from ``seed`` (float64) and a twin with ``choices``, weights copied."""
    torch.manual_seed(seed)
    torch_model = SmallConvNet().double()
    # SmallConvNetTwin(choices=choices, rngs=nnx.Rngs(seed)) works; but its initial values
    # never matter here (torch_to_flax overwrites every one), and nnx.eval_shape builds it
    # without running, and XLA-compiling, a random initialiser per parameter shape.
    abstract = nnx.eval_shape(lambda: SmallConvNetTwin(choices=choices, rngs=nnx.Rngs(seed)))
    graphdef, state = nnx.split(abstract)
    twin = nnx.merge(
        graphdef, jax.tree.map(lambda s: jax.device_put(np.zeros(s.shape, s.dtype)), state)
    )
    torch_to_flax(torch_model, twin)  # every weight, by name; fails loudly on any mismatch
    return torch_model, twin


def port(seed: int = 0, brief: bool = False, jit: bool = False, max_rounds: int = 6) -> bool:
    """Start from the first draft, fix what each report confirms; True once parity holds."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 1, 10, 10))  # torch layout; the tools move it to NHWC
    y = rng.integers(0, 4, size=4)

    # 3. the harness: one verdict for the whole model (here: the draft does not even run)
    torch_model, twin = make_pair(FIRST_DRAFT, seed)
    try:
        verdict = parity.compare(torch_model, twin, x, y, layout="image", name="port")
        print(f"parity harness on the first draft: {'OK' if verdict.ok else 'FAILED'}")
    except Exception as exc:
        print(f"parity harness on the first draft: the twin raised {type(exc).__name__}")

    # 4. read the layer-by-layer report, fix what it confirms, go again
    choices = FIRST_DRAFT
    for rnd in range(1, max_rounds + 1):
        torch_model, twin = make_pair(choices, seed)
        report = explain(torch_model, twin, x, y, layout="image", name="port", jit=jit)
        print(f"\n=== round {rnd}: {choices}")
        if not brief:
            print(report)
        if report.ok:
            print("every layer agrees: outputs, gradients, loss")
            break
        # the first divergence, and layers that fail on their own input: independent faults
        confirmed = report.confirmed()
        for row, cause in confirmed:
            print(f"-> {row.label}: [{cause.status}] {cause.title}\n   fix: {cause.fix}")
        fixes = {FIXES[c.key] for _, c in confirmed if c.key in FIXES}
        if not fixes:
            print("no confirmed cause this script knows how to fix: read the report above")
            return False
        choices = dataclasses.replace(choices, **dict(fixes))
    else:
        return False

    # 5. the harness again, as your own test will run it
    torch_model, twin = make_pair(choices, seed)
    verdict = parity.compare(torch_model, twin, x, y, layout="image", name="port", jit=jit)
    print(f"\n{verdict}")
    verdict.raise_if_failed()
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Run the worked example; returns the exit status (0 once the port has parity)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--brief", action="store_true", help="one line per round, no tables")
    p.add_argument("--jit", action="store_true", help="run the report's twin under jax.jit")
    args = p.parse_args(argv)
    return 0 if port(args.seed, brief=args.brief, jit=args.jit) else 1


if __name__ == "__main__":
    sys.exit(main())
