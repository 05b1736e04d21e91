"""``jaxnets convert --run``: PyTorch training checkpoints <-> the run files of ``jaxnets train``.

A PyTorch training checkpoint is a ``torch.save`` of the model's and the optimizer's
``state_dict()`` (and the ``epoch``: epochs trained); a run file is what ``jaxnets train
--checkpoint`` saves every epoch and ``--resume`` continues (:func:`jaxnets.checkpoint.save_run`).
The conversion itself is :mod:`torchref.handoff`'s (every check, no pickled code run); this
module adds what ``jaxnets train`` runs: one of its :class:`~jaxnets.app.loop.TrainConfig`
settings (a registered model, ``torch.optim.SGD`` with momentum or ``Adam`` with torch's
defaults but ``lr``, one param group, a constant lr), so a checkpoint of any other optimizer,
option or schedule is refused by name (:mod:`torchref.handoff` carries those in Python).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import torch

import jaxnets
import torchref
from jaxnets.app.loop import TrainConfig, make_optimizer
from jaxnets.app.torch_runs import make_torch_optimizer
from jaxnets.checkpoint import CheckpointError, read_run_meta
from jaxnets.training import Trainer
from torchref import handoff
from torchref.checkpoint import (
    EPOCH_KEY,
    MODEL_KEY,
    OPTIMIZER_KEY,
    SCHEDULER_KEY,
    read_training_checkpoint,
)

__all__ = ["checkpoint_to_run", "run_to_checkpoint", "train_command"]

StrPath = str | os.PathLike[str]


def _torch_dtype(dtype: str) -> torch.dtype:
    return {"float32": torch.float32, "float64": torch.float64}[dtype]


def _use_dtype(cfg: TrainConfig) -> None:
    if cfg.dtype == "float64":  # the twin of a float64 run needs 64-bit JAX
        jax.config.update("jax_enable_x64", True)


def _templates(cfg: TrainConfig) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The torch model and optimizer of ``cfg``, as ``jaxnets train --framework torch`` builds
    them (their values are replaced by the checkpoint's)."""
    model = torchref.create_model(cfg.model, dtype=_torch_dtype(cfg.dtype), **cfg.model_config)
    return model, make_torch_optimizer(cfg, model.parameters())


def _trainer(cfg: TrainConfig) -> Trainer:
    """A trainer built as ``jaxnets train`` builds the run's (the run file's structure)."""
    twin = jaxnets.create_model(cfg.model, param_dtype=cfg.dtype, **cfg.model_config)
    return Trainer(twin, make_optimizer(cfg), cfg.spec.loss)


def _config(
    path: Path,
    ckpt: Mapping[str, Any],
    model: str,
    model_config: Mapping[str, Any],
    *,
    batch_size: int,
    seed: int,
) -> TrainConfig:
    """The settings of ``jaxnets train`` that continue the torch run in ``ckpt``;
    :class:`CheckpointError` names everything such a run cannot hold."""
    problems = []
    groups = ckpt[OPTIMIZER_KEY]["param_groups"]
    group = dict(groups[0]) if groups else {}
    kind = "sgd" if "nesterov" in group else "adam" if "betas" in group else None
    if kind is None or (kind == "adam" and "amsgrad" not in group):
        options = sorted(k for k in group if k != "params")
        problems.append(
            f"the optimizer state is not torch.optim.SGD's or Adam's (its options: {options}); "
            f"jaxnets train runs SGD with momentum or Adam"
        )
    if len(groups) != 1:
        problems.append(f"{len(groups)} param groups; jaxnets train runs one")
    if ckpt.get(SCHEDULER_KEY) is not None:
        problems.append(
            "it holds a learning-rate scheduler's state; jaxnets train keeps the lr constant "
            "(torchref.handoff.checkpoint_to_run carries schedules to a Trainer in Python)"
        )
    floats = [v for v in ckpt[MODEL_KEY].values() if v.is_floating_point()]
    dtypes = sorted({str(v.dtype).removeprefix("torch.") for v in floats})
    if len(dtypes) != 1 or dtypes[0] not in ("float32", "float64"):
        problems.append(f"the model's tensors are {dtypes}; jaxnets train runs float32 or float64")
    if kind is None or len(dtypes) != 1 or not groups:
        raise CheckpointError(_message(path, problems))
    cfg = TrainConfig(
        model,
        model_config=dict(model_config),
        epochs=int(ckpt.get(EPOCH_KEY, 0)),
        batch_size=batch_size,
        optimizer=kind,
        lr=float(group["lr"]),
        momentum=float(group.get("momentum", 0.0)) if kind == "sgd" else TrainConfig.momentum,
        seed=seed,
        dtype=dtypes[0],
    )
    _, template = _templates(cfg)
    name = type(template).__name__
    for key, want in template.param_groups[0].items():
        if key in ("params", "lr") or key in handoff.IMPLEMENTATION_OPTIONS:
            continue
        if key in group and group[key] != want:
            problems.append(
                f"{name} {key}={group[key]!r}: jaxnets train runs {name} with {key}={want!r}"
            )
    if problems:
        raise CheckpointError(_message(path, problems))
    return cfg


def _message(path: Path, problems: list[str]) -> str:
    lines = "\n  ".join(problems)
    return (
        f"{path}: jaxnets train cannot continue this run ({len(problems)} problem(s), nothing "
        f"was written):\n  {lines}"
    )


def checkpoint_to_run(
    src: StrPath,
    dst: StrPath,
    model: str,
    model_config: Mapping[str, Any] | None = None,
    *,
    batch_size: int = 64,
    seed: int = 0,
) -> TrainConfig:
    """Convert the PyTorch training checkpoint ``src`` of registered model ``model`` into the
    run file ``dst`` that ``jaxnets train`` continues with the returned settings
    (:func:`train_command` spells them). ``batch_size`` and ``seed`` are the settings the run
    will go on with (the batch order of its coming epochs); the optimizer, ``lr``,
    ``momentum`` and dtype come from the checkpoint, its ``epoch`` is the epochs trained."""
    p = Path(src)
    ckpt = read_training_checkpoint(p)
    cfg = _config(p, ckpt, model, model_config or {}, batch_size=batch_size, seed=seed)
    _use_dtype(cfg)
    torch_model, optimizer = _templates(cfg)
    meta = {
        "config": cfg.to_json(),
        # the torch run's losses are not in its checkpoint: the resumed run reports its own
        "losses": [],
        "epoch_losses": [],
        "epoch_accuracies": [],
    }
    handoff.checkpoint_to_run(p, dst, torch_model, optimizer, loss=cfg.spec.loss, meta=meta)
    return cfg


def _config_of_run(path: Path, model: str) -> TrainConfig:
    meta = read_run_meta(path)
    saved = dict(meta.get("config", {}))
    if saved.get("model") != model:
        raise CheckpointError(
            f"{path}: holds a run of {saved.get('model')!r}, not {model!r}. Fix: --model "
            f"{saved.get('model')}"
        )
    # JSON made the config's tuples lists
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in saved["model_config"].items()}
    try:
        return TrainConfig(**{**saved, "model_config": config})
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its run settings are not jaxnets train's ({exc})") from None


def run_to_checkpoint(src: StrPath, dst: StrPath, model: str) -> TrainConfig:
    """Convert the run file ``src`` of ``jaxnets train`` into the PyTorch training checkpoint
    ``dst`` (``model_state_dict``, ``optimizer_state_dict`` of the run's ``torch.optim.SGD``
    or ``Adam``, ``epoch``), from which torch continues exactly; returns the run's settings."""
    p = Path(src)
    cfg = _config_of_run(p, model)
    _use_dtype(cfg)
    torch_model, optimizer = _templates(cfg)
    handoff.run_to_checkpoint(p, dst, _trainer(cfg), torch_model, optimizer)
    return cfg


def train_command(cfg: TrainConfig, checkpoint: StrPath) -> str:
    """The ``jaxnets train`` command line that resumes ``checkpoint`` with ``cfg``."""
    words = ["jaxnets", "train", cfg.model]
    for key, value in cfg.model_config.items():
        words += ["--config", f"'{key}={value!r}'"]
    words += ["--framework", "jax", "--optimizer", cfg.optimizer, "--lr", repr(cfg.lr)]
    if cfg.optimizer == "sgd":
        words += ["--momentum", repr(cfg.momentum)]
    words += ["--dtype", cfg.dtype, "--batch-size", str(cfg.batch_size), "--seed", str(cfg.seed)]
    words += ["--checkpoint", str(checkpoint), "--resume", "--epochs", "EPOCHS"]
    return " ".join(words)
