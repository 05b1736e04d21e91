"""torchref: the PyTorch references of the tutorial models, and the bridge to the Flax twins.

Imports torch and jaxnets (``jaxnets`` itself never imports torch)::

    import torchref
    torch_model = torchref.create_model("lenet")
    torchref.bridge.torch_to_flax(torch_model, flax_model)
    report = torchref.parity.compare(torch_model, flax_model, x, y)
"""

from torchref import bridge, models, parity
from torchref.models import create_model, list_models

__all__ = ["bridge", "create_model", "list_models", "models", "parity"]
