"""jaxnets: Flax NNX twins of the PyTorch tutorial models, and the tools that prove parity.

The Flax side never imports torch::

    import jaxnets
    model = jaxnets.create_model("lenet")            # an nnx.Module, NHWC input
    jaxnets.list_models()                             # every registered name
    jaxnets.convert.load_state_dict(model, sd)        # torch-named numpy state dict -> twin
    trainer = jaxnets.Trainer(model, jaxnets.optim.sgd(lr=0.01), "cross_entropy")

What is here, by kind: :mod:`jaxnets.models` (the twins) and the registry;
:mod:`jaxnets.nn` (layers with torch's semantics); :mod:`jaxnets.optim`,
:mod:`jaxnets.losses`, :mod:`jaxnets.schedules` (torch's optimizers, losses and learning-rate
schedules); :mod:`jaxnets.training` (:class:`Trainer`, data parallel); :mod:`jaxnets.convert`
and :mod:`jaxnets.checkpoint` (torch state dicts and files); :mod:`jaxnets.data` (MNIST);
:mod:`jaxnets.fast` (the XLA:CPU speed forms, one switch); :mod:`jaxnets.debug` and
:mod:`jaxnets.testing` (per-layer capture, tree comparison); :mod:`jaxnets.tolerances`.
The torch side and the bridge live in the ``torchref`` package; the ``jaxnets`` command in
:mod:`jaxnets.app`, which this package never imports.
"""

from jaxnets import checkpoint, convert, fast, losses, models, nn, optim, schedules, tolerances
from jaxnets.registry import (
    ModelSpec,
    UnknownModelError,
    create_model,
    get_model_spec,
    list_models,
    match_models,
    register_model,
)
from jaxnets.training.trainer import Trainer, TrainState

__version__ = "0.1.0"

__all__ = [
    "ModelSpec",
    "TrainState",
    "Trainer",
    "UnknownModelError",
    "__version__",
    "checkpoint",
    "convert",
    "create_model",
    "fast",
    "get_model_spec",
    "list_models",
    "losses",
    "match_models",
    "models",
    "nn",
    "optim",
    "register_model",
    "schedules",
    "tolerances",
]
