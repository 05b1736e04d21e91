"""jaxnets: Flax NNX twins of the PyTorch tutorial models, and the tools that prove parity.

The Flax side never imports torch::

    import jaxnets
    model = jaxnets.create_model("lenet")           # an nnx.Module, NHWC input
    jaxnets.list_models()                            # every registered name
    jaxnets.convert.load_state_dict(model, sd)       # torch-named numpy state dict -> twin

The torch side and the bridge live in the ``torchref`` package.
"""

from jaxnets import convert, layers, models, tolerances
from jaxnets.registry import (
    ModelSpec,
    UnknownModelError,
    create_model,
    get_model_spec,
    list_models,
    match_models,
    register_model,
)

__version__ = "0.1.0"

__all__ = [
    "ModelSpec",
    "UnknownModelError",
    "__version__",
    "convert",
    "create_model",
    "get_model_spec",
    "layers",
    "list_models",
    "match_models",
    "models",
    "register_model",
    "tolerances",
]
