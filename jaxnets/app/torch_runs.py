"""The torch side of ``jaxnets.app.loop``: the same run, the same start, the same batch order.

:func:`run_torch` trains the torch reference of a :class:`~jaxnets.app.loop.TrainConfig` the way
the tutorials do (``optimizer.zero_grad(); loss = criterion(model(x), y); loss.backward();
optimizer.step()``), starting from the state dict the JAX side starts from and visiting
``jaxnets.data.epoch_batches`` in order, so its loss curve and the JAX one are comparable
step by step. :func:`run_frameworks` runs both and returns their
:class:`~jaxnets.app.loop.RunResult`\\ s::

    cfg = TrainConfig("lenet", epochs=3)
    results = run_frameworks(cfg, mnist_dataset("lenet"), ["torch", "jax"])
    print(result_table(results))
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

import torchref
from jaxnets import data
from jaxnets.app.loop import Dataset, RunResult, TrainConfig, initial_state_dict, run_jax
from torchref.bridge import from_numpy_state_dict, to_numpy_state_dict

__all__ = [
    "evaluate_torch",
    "make_torch_optimizer",
    "run_frameworks",
    "run_torch",
    "torch_device",
]

_LOSSES = {"cross_entropy": F.cross_entropy, "mse": F.mse_loss}


def torch_device(device: Literal["cpu", "gpu", "tpu"]) -> torch.device:
    """torch's device for ``--device``: ``cuda`` for gpu; torch has no TPU backend here, so
    ``tpu`` runs torch on the CPU (the JAX side uses the TPU)."""
    if device == "gpu":
        if not torch.cuda.is_available():
            raise RuntimeError(
                "--device gpu: torch sees no CUDA GPU (this torch is "
                f"{torch.__version__}; the pinned 2.13.0 CPU wheel has no CUDA). Fix: install a "
                "CUDA build of torch on a GPU machine, or use --device cpu"
            )
        return torch.device("cuda")
    if device in ("cpu", "tpu"):
        return torch.device("cpu")
    raise ValueError(f"device must be cpu, gpu or tpu, got {device!r}")


def make_torch_optimizer(cfg: TrainConfig, params: object) -> torch.optim.Optimizer:
    """``torch.optim.SGD(params, lr, momentum)`` or ``torch.optim.Adam(params, lr)``."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.Adam(params, lr=cfg.lr)


@torch.no_grad()
def evaluate_torch(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss: str,
    *,
    batch_size: int = 1000,
) -> tuple[float, float | None]:
    """``(mean loss, accuracy or None)`` of ``model`` in eval mode over ``(inputs, targets)``."""
    was_training = model.training
    model.eval()
    outputs = torch.cat(
        [model(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]
    )
    model.train(was_training)
    value = float(_LOSSES[loss](outputs, targets))
    acc = None
    if not targets.is_floating_point() and targets.ndim == 1:
        acc = int((outputs.argmax(dim=1) == targets).sum()) / len(targets)
    return value, acc


def run_torch(
    cfg: TrainConfig,
    dataset: Dataset,
    init: Mapping[str, np.ndarray] | None = None,
    *,
    device: Literal["cpu", "gpu", "tpu"] = "cpu",
    progress: bool = True,
) -> RunResult:
    """Train the torch reference of ``cfg`` on ``dataset`` from ``init`` (default
    ``jaxnets.app.loop.initial_state_dict(cfg)``), batch order from ``jaxnets.data``."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    dev = torch_device(device)
    dtype = {"float32": torch.float32, "float64": torch.float64}[cfg.dtype]
    model = torchref.create_model(cfg.model, dtype=dtype, **cfg.model_config)
    model.load_state_dict(from_numpy_state_dict(init or initial_state_dict(cfg)), strict=True)
    model.to(dev).train()
    optimizer = make_torch_optimizer(cfg, model.parameters())
    criterion = _LOSSES[cfg.spec.loss]
    x = torch.from_numpy(np.ascontiguousarray(dataset.x_train)).to(dev)
    y = torch.from_numpy(np.ascontiguousarray(dataset.y_train)).to(dev)
    n, bs = len(x), cfg.batch_size
    steps = n // bs
    if steps == 0:
        raise ValueError(f"batch_size={bs} is larger than the {n} training examples")
    losses: list[float] = []
    epoch_losses, epoch_accs = [], []
    test = None
    if dataset.x_test is not None and dataset.y_test is not None:
        test = (
            torch.from_numpy(np.ascontiguousarray(dataset.x_test)).to(dev),
            torch.from_numpy(np.ascontiguousarray(dataset.y_test)).to(dev),
        )
    test_loss = test_acc = None
    outer = tqdm(  # tiny epochs (full-batch loops): one bar over epochs instead
        total=cfg.epochs,
        desc=f"torch {cfg.model}",
        unit="epoch",
        disable=True if not progress or steps > 1 else None,  # None: only on a terminal
    )
    for epoch in range(cfg.epochs):
        order = torch.from_numpy(
            data.epoch_batches(n, bs, seed=cfg.seed, epoch=epoch, shuffle=True)
        ).to(dev)
        bar = tqdm(
            total=steps,
            desc=f"torch {cfg.model} epoch {epoch + 1}/{cfg.epochs}",
            unit="step",
            disable=True if not progress or steps == 1 else None,
            leave=True,
        )
        epoch_loss = torch.zeros((), dtype=torch.float64, device=dev)
        start = len(losses)
        for i, idx in enumerate(order):
            optimizer.zero_grad()
            loss = criterion(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            loss = loss.detach()
            losses.append(loss)
            epoch_loss += loss
            if (i + 1) % 50 == 0 or i + 1 == steps:
                bar.update((i + 1) - bar.n)
                bar.set_postfix(loss=f"{loss.item():.4f}")
        losses[start:] = [float(v) for v in losses[start:]]
        if not np.all(np.isfinite(losses[start:])):
            bad = start + int(np.flatnonzero(~np.isfinite(losses[start:]))[0])
            raise FloatingPointError(
                f"torch: the training loss is not finite at step {bad}; lower the learning rate"
            )
        epoch_losses.append(float(epoch_loss) / steps)
        if test is not None:
            test_loss, test_acc = evaluate_torch(model, *test, cfg.spec.loss)
            epoch_accs.append(test_acc)
            if test_acc is not None:
                bar.set_postfix(loss=f"{epoch_losses[-1]:.4f}", test_acc=f"{100 * test_acc:.2f}%")
        bar.close()
        outer.update(1)
    outer.close()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    return RunResult(
        framework="torch",
        model=cfg.model,
        device=str(dev),
        losses=np.asarray(losses, dtype=np.float64),
        steps_per_epoch=steps,
        epoch_losses=epoch_losses,
        test_loss=test_loss,
        test_accuracy=test_acc,
        wall_time=wall,
        state_dict=to_numpy_state_dict(model),
        epoch_accuracies=epoch_accs,
        seed=cfg.seed,
    )


def run_frameworks(
    cfg: TrainConfig,
    dataset: Dataset,
    frameworks: Sequence[str] = ("torch", "jax"),
    *,
    device: Literal["cpu", "gpu", "tpu"] = "cpu",
    progress: bool = True,
) -> list[RunResult]:
    """Run ``cfg`` in each of ``frameworks`` (``'torch'``, ``'jax'``), one after the other,
    from the same initial weights and batch order; results in the order given."""
    unknown = sorted(set(frameworks) - {"torch", "jax"})
    if unknown:
        raise ValueError(f"unknown framework(s) {unknown}; use 'torch' and/or 'jax'")
    init = initial_state_dict(cfg)
    results = []
    for fw in frameworks:
        if fw == "torch":
            results.append(run_torch(cfg, dataset, init, device=device, progress=progress))
        else:
            results.append(run_jax(cfg, dataset, init, progress=progress))
    return results
