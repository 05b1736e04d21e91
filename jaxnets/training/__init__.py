"""Training with torch's step semantics: :class:`Trainer` (jitted steps, scan-fused epochs),
plain-array steps (:mod:`~jaxnets.training.steps`), and data parallel training over a mesh
(:mod:`~jaxnets.training.distributed`)."""

from jaxnets.training.trainer import Trainer, TrainState

__all__ = ["TrainState", "Trainer"]
