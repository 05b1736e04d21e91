"""torchref: the PyTorch references of the tutorial models, the bridge to the Flax twins, and
the tools that prove and explain parity. Needs PyTorch (``jaxnets`` itself never imports it)::

    import torchref
    torch_model = torchref.create_model("lenet")
    torchref.bridge.torch_to_flax(torch_model, flax_model)
    report = torchref.parity.compare(torch_model, flax_model, x, y)

Submodules load on first use, so ``import torchref`` is cheap, and a missing PyTorch is
reported with the command that installs it.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["bridge", "create_model", "list_models", "models", "parity"]

_SUBMODULES = {"bridge", "checkpoint", "compare", "explain", "models", "parity", "precision"}
_FROM_MODELS = {"create_model", "list_models"}
INSTALL_HINT = (
    "torchref needs PyTorch; install the CPU build with: pip install 'torch==2.13.0' "
    "(or the project's extra: pip install -e '.[torch]')"
)


def __getattr__(name: str) -> Any:
    if name not in _SUBMODULES | _FROM_MODELS:
        raise AttributeError(f"module 'torchref' has no attribute {name!r}")
    try:
        module = importlib.import_module(f"torchref.{'models' if name in _FROM_MODELS else name}")
    except ModuleNotFoundError as e:
        if e.name == "torch":
            raise ModuleNotFoundError(INSTALL_HINT, name="torch") from None
        raise
    return getattr(module, name) if name in _FROM_MODELS else module
