"""The epoch loop of the examples and ``jaxnets train``, JAX side (the torch side is
``jaxnets.app.torch_runs``; both read the same batch order from :mod:`jaxnets.data`).

One run is described by a :class:`TrainConfig` (model, optimizer, epochs, batch size, seed)
and fed a :class:`Dataset` of numpy arrays in TORCH layout; both frameworks start from the
same weights, :func:`initial_state_dict` (the twin's torch-distribution initialisation from
``nnx.Rngs(seed)``, as a torch-named state dict), and visit the same batches in the same
order (:func:`jaxnets.data.epoch_batches`), so their loss curves can be laid on top of each
other::

    cfg = TrainConfig("custom_neural_network", epochs=3)
    data = mnist_dataset("custom_neural_network", data_dir="~/data/mnist")
    result = run_jax(cfg, data)                 # a RunResult: losses, accuracy, wall time
    print(result_table([result]))

Inside :func:`fit` an epoch runs as a few ``lax.scan`` chunks of :meth:`Trainer.run_epoch`
(Python runs once per chunk, not per batch), with a tqdm bar per epoch, a NaN/inf check after
every chunk (:func:`jaxnets.checkpoint.check_finite_losses`), evaluation after each epoch,
and an ``on_epoch_end`` hook that :func:`run_jax` uses to save resumable checkpoints.
No torch here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxnets import convert, data, optim
from jaxnets.app import cliargs, host
from jaxnets.registry import ModelSpec, create_model, get_model_spec
from jaxnets.training import distributed
from jaxnets.training.trainer import Trainer, TrainState

__all__ = [
    "Dataset",
    "EpochEnd",
    "Evaluation",
    "History",
    "RunResult",
    "TrainConfig",
    "add_run_args",
    "check_resume",
    "compile_seconds",
    "configure_runtime",
    "evaluate",
    "fit",
    "initial_state_dict",
    "make_optimizer",
    "make_trainer",
    "mnist_dataset",
    "parse_frameworks",
    "result_table",
    "results_from_json",
    "results_to_json",
    "run_jax",
    "seed_spread_table",
    "select_jax_platform",
]

Device = Literal["cpu", "gpu", "tpu"]
_PLATFORMS = {"cpu": "cpu", "gpu": "cuda", "tpu": "tpu"}


# --------------------------------------------------------------------------------------------
# Devices and precision
# --------------------------------------------------------------------------------------------


def select_jax_platform(device: Device) -> str:
    """Make JAX run on ``device`` (``'cpu'``, ``'gpu'`` = CUDA, ``'tpu'``); returns the platform.

    Must run before JAX initialises its backends (before the first array is made). If they
    are already initialised on the requested platform this is a no-op; on another one it is
    an error that says so.
    """
    if device not in _PLATFORMS:
        raise ValueError(f"device must be one of {sorted(_PLATFORMS)}, got {device!r}")
    from jax._src import xla_bridge

    want = "gpu" if device == "gpu" else device
    if xla_bridge.backends_are_initialized():
        have = jax.default_backend()
        if (have in ("cuda", "rocm", "gpu") and want == "gpu") or have == want:
            return have
        raise RuntimeError(
            f"JAX is already running on {have!r}; --device {device} must be chosen before the "
            f"first JAX computation (or set JAX_PLATFORMS={_PLATFORMS[device]} in the environment)"
        )
    jax.config.update("jax_platforms", _PLATFORMS[device])
    try:
        jax.devices()
    except (RuntimeError, AssertionError) as exc:
        jax.config.update("jax_platforms", None)
        hint = {
            "gpu": "install JAX with CUDA (pip install -e '.[gpu]') on an NVIDIA GPU machine",
            "tpu": "run on a Cloud TPU VM with jax[tpu] installed",
        }.get(device, "check the JAX installation")
        raise RuntimeError(
            f"--device {device}: JAX cannot use {device.upper()} here ({exc}). Fix: {hint}, "
            f"or use --device cpu"
        ) from None
    return jax.default_backend()


def parse_frameworks(framework: str) -> list[str]:
    """``--framework`` value -> frameworks in run order: ``'both'`` is ``['torch', 'jax']``."""
    choices = {"both": ["torch", "jax"], "torch": ["torch"], "jax": ["jax"]}
    if framework not in choices:
        raise ValueError(f"framework must be torch, jax or both, got {framework!r}")
    return choices[framework]


# --------------------------------------------------------------------------------------------
# Configuration, data and initial weights
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """One training run, the same for both frameworks.

    Attributes:
      model: registry name; ``model_config`` its config arguments (e.g. ``hidden_sizes``).
      epochs, batch_size: batches of ``batch_size`` in a new shuffled order each epoch; the
        last incomplete batch is dropped (a scan needs equal batches), on both sides.
      optimizer: ``'sgd'`` (torch.optim.SGD with ``momentum``) or ``'adam'`` (torch defaults
        apart from ``lr``).
      seed: initial weights (``nnx.Rngs(seed)``) and batch order.
      dtype: ``'float32'`` or ``'float64'`` (needs ``jax_enable_x64``).
    """

    model: str
    model_config: Mapping[str, Any] = field(default_factory=dict)
    epochs: int = 3
    batch_size: int = 64
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    seed: int = 0
    dtype: Literal["float32", "float64"] = "float32"

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1:
            raise ValueError(
                f"epochs must be >= 0 and batch_size >= 1, got {self.epochs}, {self.batch_size}"
            )
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        get_model_spec(self.model).make_config(**self.model_config)  # names checked early

    @property
    def spec(self) -> ModelSpec:
        """The registry entry of :attr:`model`."""
        return get_model_spec(self.model)

    def describe(self) -> str:
        """One line: optimizer and schedule, for logs and plot titles."""
        opt = (
            f"SGD(lr={self.lr:g}, momentum={self.momentum:g})"
            if self.optimizer == "sgd"
            else f"Adam(lr={self.lr:g})"
        )
        epochs = f"{self.epochs} epoch" + ("" if self.epochs == 1 else "s")
        return f"{opt}, batch {self.batch_size}, {epochs}, seed {self.seed}"

    def to_json(self) -> dict[str, Any]:
        """The config as JSON-ready data (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


class Dataset(NamedTuple):
    """Train and test arrays in TORCH layout (``(N, F)`` or NCHW), targets int64 ``(N,)`` for
    classification or float ``(N, outputs)`` for regression. ``x_test`` may be None."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None


def mnist_dataset(
    model: str,
    *,
    data_dir: str | Path | None = None,
    download: bool = False,
    verify: bool = True,
    limit: int | None = None,
    test_limit: int | None = None,
    dtype: str = "float32",
    **config: Any,
) -> Dataset:
    """MNIST prepared for ``model``: normalised as torchvision does, flattened to ``(N, 784)``
    for the MLPs, or ``(N, 1, 32, 32)`` (zero-padded 28 -> 32, the LeNet input) for image
    models. ``limit`` / ``test_limit`` keep the first N examples (quick runs).

    Raises :class:`jaxnets.data.DataError` for missing or damaged files (with the fix), and
    ``ValueError`` for a model that does not take MNIST-shaped input.
    """
    spec = get_model_spec(model)
    shape = spec.torch_input_shape(1, **config)[1:]
    classes = spec.output_size(spec.make_config(**config))
    fits = shape in ((784,), (1, 28, 28), (1, 32, 32))
    if not fits or classes != 10 or spec.loss != "cross_entropy":
        raise ValueError(
            f"model {model!r} takes inputs of shape {shape} with {classes} output(s) and "
            f"{spec.loss} loss; MNIST needs 784 features or a 1x28x28 / 1x32x32 image and 10 "
            f"classes. The toy models have their own examples: examples/xor.py (xor_net), "
            f"examples/regression_loop.py (my_network)"
        )
    layout = "flat" if shape == (784,) else "NCHW"
    pad = 32 if shape == (1, 32, 32) else None
    out = []
    for split, n in (("train", limit), ("test", test_limit)):
        images, labels = data.load_mnist(data_dir, split=split, download=download, verify=verify)
        if n is not None:
            images, labels = images[:n], labels[:n]
        out += [data.normalize_mnist(images, layout=layout, pad_to=pad, dtype=dtype), labels]
    return Dataset(*out)


def initial_state_dict(cfg: TrainConfig) -> dict[str, np.ndarray]:
    """The run's starting weights as a torch-named state dict (numpy): the twin initialised
    from ``nnx.Rngs(cfg.seed)`` with torch's distributions. Both frameworks load these."""
    model = create_model(
        cfg.model, rngs=nnx.Rngs(cfg.seed), param_dtype=cfg.dtype, **cfg.model_config
    )
    return convert.state_dict(model)


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """The optax twin of the run's torch optimizer (:mod:`jaxnets.optim`)."""
    if cfg.optimizer == "sgd":
        return optim.sgd(lr=cfg.lr, momentum=cfg.momentum)
    return optim.adam(lr=cfg.lr)


def add_run_args(parser: argparse.ArgumentParser) -> None:
    """Add the MNIST run flags shared by ``jaxnets train`` and ``examples/mnist.py``: what to
    run (``--framework``, ``--device``, ``--precision``, ``--dtype``, the devices/mesh flags
    of :func:`jaxnets.training.distributed.add_device_args`), the training recipe (``--epochs``,
    ``--batch-size``, ``--optimizer``, ``--lr``, ``--momentum``) and the data (``--data-dir``,
    ``--download``, ``--no-verify``, ``--limit``, ``--test-limit``). :func:`configure_runtime`
    acts on the first group; each caller adds its own ``--seed``, ``--plot``, ``--results``."""
    p, d = parser, cliargs.with_default
    p.add_argument(
        "--framework",
        choices=["torch", "jax", "both"],
        default="both",
        help=d("which framework(s) train, from the same start and batch order"),
    )
    p.add_argument(
        "--device", choices=["cpu", "gpu", "tpu"], default="cpu", help=d("where both run")
    )
    p.add_argument(
        "--precision",
        choices=["highest", "default"],
        default="highest",
        help=d(
            "float32 matmul precision on GPU/TPU: highest is true float32, default allows "
            "TF32/bfloat16 passes"
        ),
    )
    p.add_argument(
        "--dtype", choices=["float32", "float64"], default="float32", help=d("parameters, data")
    )
    distributed.add_device_args(p)  # --devices N|all, --mesh data=8, --distributed
    # numbers are checked while parsing: a bad one ends with the usage line, not a traceback
    p.add_argument(
        "--epochs", type=cliargs.nonnegative_int, default=3, help=d("passes over the data")
    )
    p.add_argument(
        "--batch-size",
        type=cliargs.positive_int,
        default=64,
        help=d("examples per step; the last incomplete batch is dropped"),
    )
    p.add_argument(
        "--optimizer",
        choices=["sgd", "adam"],
        default="sgd",
        help=d("torch.optim.SGD or Adam, twinned in optax"),
    )
    p.add_argument("--lr", type=cliargs.nonnegative_float, default=0.01, help=d("learning rate"))
    p.add_argument(
        "--momentum", type=cliargs.nonnegative_float, default=0.9, help=d("SGD momentum")
    )
    p.add_argument("--data-dir", help="folder with the MNIST IDX files (else $JAXNETS_DATA_DIR)")
    p.add_argument("--download", action="store_true", help="fetch missing MNIST files first")
    p.add_argument("--no-verify", action="store_true", help="accept subsets (no MD5/size check)")
    p.add_argument("--limit", type=cliargs.positive_int, help="use the first N training images")
    p.add_argument("--test-limit", type=cliargs.positive_int, help="use the first N test images")


def configure_runtime(args: Any) -> None:
    """Act on the run flags shared by ``jaxnets train`` and ``examples/mnist.py``, in the order
    JAX needs: the platform (``args.device``) and ``--devices``/``--mesh``/``--distributed``
    before anything starts JAX (on the CPU also :func:`jaxnets.app.host.retain_freed_memory`),
    then matmul precision (``args.precision``) and, for
    ``args.dtype == 'float64'``, 64-bit JAX."""
    select_jax_platform(args.device)
    if args.device == "cpu":
        host.retain_freed_memory()  # XLA:CPU's per-call temporaries stay paged in
    distributed.setup_from_args(args)
    from torchref.precision import set_precision

    set_precision(args.precision, torch_too=False)  # torch is pinned where a torch run starts
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)


def make_trainer(model: nnx.Module, cfg: TrainConfig) -> Trainer:
    """The :class:`~jaxnets.Trainer` for ``model`` under ``cfg``: the one place a run's
    trainer is built: data-parallel over the mesh that ``--devices``/``--mesh`` set up
    (:func:`jaxnets.training.distributed.setup_from_args`), else one device."""
    return distributed.trainer_for(model, make_optimizer(cfg), cfg.spec.loss)


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


class Evaluation(NamedTuple):
    """Mean loss over a data set, and accuracy (fraction in [0, 1]) for class targets."""

    loss: float
    accuracy: float | None


@dataclass
class EpochEnd:
    """What :func:`fit` passes to ``on_epoch_end`` after each epoch (``epoch`` counts from 1).

    ``state`` is the live training state: use it inside the hook (e.g. save it), don't keep
    it, since the next epoch donates its buffers."""

    epoch: int
    state: TrainState
    losses: np.ndarray
    evaluation: Evaluation | None


@dataclass
class History:
    """Per-step training losses ``(steps,)``, per-epoch mean loss and evaluations."""

    losses: list[float] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)


def _device_targets(y: np.ndarray) -> jax.Array:
    y = np.asarray(y)
    if np.issubdtype(y.dtype, np.integer) and not jax.config.read("jax_enable_x64"):
        y = y.astype(np.int32)  # class indices; int64 needs x64
    return jnp.asarray(y)


def evaluate(
    trainer: Trainer,
    state: TrainState,
    inputs: np.ndarray | jax.Array,
    targets: np.ndarray | jax.Array,
    *,
    batch_size: int = 1000,
) -> Evaluation:
    """Loss and accuracy of ``state`` on ``(inputs, targets)`` in eval mode, in Flax layout.

    Batches of ``batch_size`` (the last one padded, so one compilation serves all); accuracy
    is ``mean(argmax(outputs) == targets)`` for integer targets ``(N,)``, else None.
    """
    n = len(inputs)
    if n == 0:
        raise ValueError("evaluate needs at least one example")
    x = jnp.asarray(inputs)
    bs = min(batch_size, n)
    outs = []
    for i in range(0, n, bs):
        chunk = x[i : i + bs]
        if len(chunk) < bs:
            chunk = jnp.concatenate([chunk, jnp.zeros((bs - len(chunk), *x.shape[1:]), x.dtype)])
        outs.append(trainer.predict(state, chunk))
    outputs = jnp.concatenate(outs)[:n]
    y = _device_targets(np.asarray(targets))
    loss = float(trainer.loss_fn(outputs, y))
    accuracy = None
    if jnp.issubdtype(y.dtype, jnp.integer) and y.ndim == 1:
        accuracy = int(jnp.sum(jnp.argmax(outputs, axis=-1) == y)) / n  # exact count / n
    return Evaluation(loss, accuracy)


def _check_finite(losses: np.ndarray, first_step: int) -> None:
    from jaxnets.checkpoint import check_finite_losses

    check_finite_losses(losses, first_step)


def fit(
    trainer: Trainer,
    state: TrainState,
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    epochs: int,
    batch_size: int | None = None,
    seed: int = 0,
    shuffle: bool = True,
    start_epoch: int = 0,
    eval_data: tuple[np.ndarray, np.ndarray] | None = None,
    progress: bool = True,
    desc: str = "jax",
    chunks_per_epoch: int = 10,
    on_epoch_end: Callable[[EpochEnd], None] | None = None,
) -> tuple[TrainState, History]:
    """Train ``epochs`` epochs from ``start_epoch``; returns the final state and the history.

    Args:
      inputs, targets: the whole training set in the twin's layout (``(N, ...)``), put on the
        device once; batches are gathered inside the compiled loop.
      batch_size: None = the whole set each step (the tutorials' full-batch loops).
      seed, shuffle: epoch ``e`` visits ``jaxnets.data.epoch_batches(N, batch_size, seed=seed,
        epoch=e, shuffle=shuffle)``, the order ``jaxnets.app.torch_runs`` uses too.
      start_epoch: resume here (0-based): the batch orders of earlier epochs are skipped.
      eval_data: ``(inputs, targets)`` evaluated after every epoch.
      progress: a tqdm bar per epoch (or one over epochs when an epoch is a single step),
        drawn only when stderr is a terminal (no carriage-return floods in logs).
      chunks_per_epoch: an epoch runs as this many ``lax.scan`` calls (the bar moves, NaN
        checks happen, between them); the result does not depend on it.
      on_epoch_end: called with an :class:`EpochEnd` after each epoch (checkpointing).

    Raises:
      jaxnets.checkpoint.NonFiniteLossError: at the first NaN/inf loss, naming its step.
    """
    from tqdm.auto import tqdm

    n = len(inputs)
    bs = n if batch_size is None else batch_size
    steps = n // bs if bs > 0 else 0
    if steps == 0:
        raise ValueError(
            f"batch_size={bs} is larger than the {n} training examples (incomplete batches are "
            f"dropped); use a smaller batch size"
        )
    x, y = jnp.asarray(inputs), _device_targets(targets)
    chunk = max(1, math.ceil(steps / max(1, chunks_per_epoch)))
    history = History()
    per_epoch_bar = steps > 1
    outer = tqdm(
        total=epochs - start_epoch,
        desc=desc,
        unit="epoch",
        disable=True if not progress or per_epoch_bar else None,  # None: only on a terminal
        leave=True,
    )
    for epoch in range(start_epoch, epochs):
        order = data.epoch_batches(n, bs, seed=seed, epoch=epoch, shuffle=shuffle)
        order = jnp.asarray(order.astype(np.int32))
        bar = tqdm(
            total=steps,
            desc=f"{desc} epoch {epoch + 1}/{epochs}",
            unit="step",
            disable=True if not progress or not per_epoch_bar else None,
            leave=True,
        )
        epoch_losses = []
        for i in range(0, steps, chunk):
            first_step = int(state.step)
            state, losses = trainer.run_epoch(state, x, y, order[i : i + chunk])
            losses = np.asarray(losses, dtype=np.float64)
            _check_finite(losses, first_step)
            epoch_losses.append(losses)
            bar.update(len(losses))
            bar.set_postfix(loss=f"{losses.mean():.4f}")
        losses = np.concatenate(epoch_losses)
        history.losses.extend(losses.tolist())
        history.epoch_losses.append(float(losses.mean()))
        ev = None
        if eval_data is not None:
            ev = evaluate(trainer, state, *eval_data)
            history.evaluations.append(ev)
            post = {"loss": f"{losses.mean():.4f}"}
            if ev.accuracy is not None:
                post["test_acc"] = f"{100 * ev.accuracy:.2f}%"
            bar.set_postfix(post)
        bar.close()
        outer.update(1)
        outer.set_postfix(loss=f"{losses[-1]:.4f}")
        if on_epoch_end is not None:
            on_epoch_end(EpochEnd(epoch + 1, state, losses, ev))
    outer.close()
    return state, history


# --------------------------------------------------------------------------------------------
# Whole runs and their side-by-side summary
# --------------------------------------------------------------------------------------------


_COMPILE_EVENTS = frozenset(
    {
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",
    }
)
_compile_total = [0.0]
_listening = [False]


def _on_duration(event: str, duration_secs: float, **_: Any) -> None:
    if event in _COMPILE_EVENTS:
        _compile_total[0] += duration_secs


def compile_seconds() -> float:
    """Seconds this process has spent in JAX tracing, lowering and XLA compilation so far
    (from ``jax.monitoring``'s duration events; counting starts at the first call)."""
    if not _listening[0]:
        jax.monitoring.register_event_duration_secs_listener(_on_duration)
        _listening[0] = True
    return _compile_total[0]


@dataclass
class RunResult:
    """One framework's run of a :class:`TrainConfig`.

    ``losses``: per-step training loss ``(steps,)``; ``epoch_losses`` and
    ``epoch_accuracies``: per epoch (a resumed run's include the epochs trained before it
    was saved; ``None`` for an accuracy not recorded); ``test_accuracy``: fraction in [0, 1]
    (None without class targets); ``wall_time``: seconds for the whole run, compilation or
    warm-up included; ``state_dict``: the trained weights, torch names and layout;
    ``seed``: the run's :attr:`TrainConfig.seed`; ``compile_time``: seconds of ``wall_time``
    that JAX spent tracing, lowering and compiling (None for torch, which compiles nothing).
    """

    framework: str
    model: str
    device: str
    losses: np.ndarray
    steps_per_epoch: int
    epoch_losses: list[float]
    test_loss: float | None
    test_accuracy: float | None
    wall_time: float
    state_dict: dict[str, np.ndarray] | None = None
    epoch_accuracies: list[float | None] = field(default_factory=list)
    seed: int | None = None
    compile_time: float | None = None


def _check_resumed_config(
    path: Path, meta: Mapping[str, Any], cfg: TrainConfig, n_train: int | None = None
) -> None:
    """``ValueError`` naming each setting (all but ``epochs``, which may grow) in which the
    run saved at ``path`` differs from ``cfg``, and the training set's size when the run
    recorded it and ``n_train`` is given; also when the run has trained more epochs than
    ``cfg.epochs``."""
    saved, now = dict(meta.get("config", {})), cfg.to_json()
    diff = [
        f"{k}: saved {saved.get(k)!r}, now {now.get(k)!r}"
        for k in sorted(set(saved) | set(now))
        if k != "epochs" and saved.get(k) != now.get(k)
    ]
    if n_train is not None and meta.get("n_train", n_train) != n_train:
        diff.append(f"training examples: saved {meta['n_train']}, now {n_train}")
    done = int(meta.get("epoch", 0))
    if not diff and done > cfg.epochs:
        raise ValueError(
            f"{path} has trained {done} epochs, more than the {cfg.epochs} asked for. Fix: "
            f"ask for {done} or more epochs (with {done} the run is only evaluated), or start "
            f"a new run"
        )
    if diff:
        raise ValueError(
            f"{path} was saved by a run with other settings ({'; '.join(diff)}). Fix: rerun "
            f"with the saved settings, or start a new run (another checkpoint path, or no "
            f"resume: the file is then overwritten)"
        )


def _prior_epochs(
    meta: Mapping[str, Any], cfg: TrainConfig, n_train: int
) -> tuple[list[float], list[float | None]]:
    """The per-epoch mean losses and test accuracies of the epochs a saved run has trained,
    so that a resumed run's :class:`RunResult` covers every epoch, as an uninterrupted run's.

    Runs saved before the meta held them recorded only the per-step losses: the means are
    then recomputed from those (each epoch's steps in order, as :func:`fit` averages them)
    and the accuracies, which cannot be, are ``None``."""
    done = int(meta["epoch"])
    if "epoch_losses" in meta:
        return [float(v) for v in meta["epoch_losses"]], list(meta["epoch_accuracies"])
    per_epoch = n_train // cfg.batch_size
    steps = np.asarray(meta["losses"], dtype=np.float64)
    means = [float(steps[e * per_epoch : (e + 1) * per_epoch].mean()) for e in range(done)]
    return means, [None] * done


def check_resume(path: str | Path, cfg: TrainConfig, n_train: int | None = None) -> tuple[int, int]:
    """``(epoch, step)`` the run saved at ``path`` (:func:`run_jax`'s ``checkpoint``) has
    reached, after checking that it was started with ``cfg``'s settings (and ``n_train``
    training examples, when given), as :func:`run_jax` checks before resuming it; cheap (the
    file's header and checksum, no trainer or JAX). ``ValueError`` names the settings that
    differ; ``CheckpointError`` a damaged file or one that is not a run."""
    from jaxnets import checkpoint as ckpt

    meta = ckpt.read_run_meta(path)
    _check_resumed_config(Path(path), meta, cfg, n_train)
    # a run converted from a torch checkpoint has no losses of its earlier steps: its step
    return int(meta["epoch"]), int(meta.get("step", len(meta["losses"])))


def run_jax(
    cfg: TrainConfig,
    dataset: Dataset,
    init: Mapping[str, np.ndarray] | None = None,
    *,
    progress: bool = True,
    checkpoint: str | Path | None = None,
    resume: bool = False,
) -> RunResult:
    """Train ``cfg`` on ``dataset`` in JAX from ``init`` (default :func:`initial_state_dict`).

    ``checkpoint``: save the whole run there after every epoch
    (:func:`jaxnets.checkpoint.save_run`); with ``resume`` and an existing file, continue from
    it and get the same result as an uninterrupted run. The config must be the saved one,
    except ``epochs``, which may grow (train a finished run for more epochs).
    """
    from jaxnets import checkpoint as ckpt

    t0 = time.perf_counter()
    c0 = compile_seconds()
    spec = cfg.spec
    model = create_model(cfg.model, param_dtype=cfg.dtype, **cfg.model_config)
    convert.load_state_dict(model, init if init is not None else initial_state_dict(cfg))
    model.train()
    trainer = make_trainer(model, cfg)
    state = trainer.init()
    start_epoch, prior_losses = 0, []
    prior_epoch_losses: list[float] = []
    prior_accuracies: list[float | None] = []
    path = Path(checkpoint) if checkpoint is not None else None
    n_train = len(dataset.x_train)
    if resume and path is not None and path.exists():
        # the settings first: a run of another model or optimizer is named as such, not as
        # arrays that do not fit
        check_resume(path, cfg, n_train)
        state, meta = ckpt.load_run(path, trainer)
        start_epoch, prior_losses = int(meta["epoch"]), list(meta["losses"])
        prior_epoch_losses, prior_accuracies = _prior_epochs(meta, cfg, n_train)

    def save(end: EpochEnd) -> None:
        if path is not None:
            history_losses.extend(end.losses.tolist())
            epoch_losses.append(float(end.losses.mean()))  # as fit's history has it
            accuracies.append(end.evaluation.accuracy if end.evaluation else None)
            meta = {
                "epoch": end.epoch,
                "config": cfg.to_json(),
                "losses": prior_losses + history_losses,
                "epoch_losses": prior_epoch_losses + epoch_losses,
                "epoch_accuracies": prior_accuracies + accuracies,
                "n_train": n_train,
            }
            ckpt.save_run(path, trainer, end.state, meta=meta)

    history_losses: list[float] = []
    epoch_losses: list[float] = []
    accuracies: list[float | None] = []
    to_flax = spec.to_flax_layout
    eval_data = None
    if dataset.x_test is not None and dataset.y_test is not None:
        eval_data = (to_flax(dataset.x_test), dataset.y_test)
    state, history = fit(
        trainer,
        state,
        to_flax(dataset.x_train),
        dataset.y_train,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        start_epoch=start_epoch,
        eval_data=eval_data,
        progress=progress,
        desc=f"jax {cfg.model}",
        on_epoch_end=save,
    )
    trained_accuracies = [e.accuracy for e in history.evaluations]
    if eval_data is not None and not history.evaluations:  # resumed a finished run
        history.evaluations.append(evaluate(trainer, state, *eval_data))
    final = history.evaluations[-1] if history.evaluations else None
    trained = trainer.write_back(state)
    jax.block_until_ready(state.params)
    wall = time.perf_counter() - t0
    return RunResult(
        framework="jax",
        model=cfg.model,
        device=jax.default_backend(),
        losses=np.asarray(prior_losses + history.losses, dtype=np.float64),
        steps_per_epoch=len(dataset.x_train) // cfg.batch_size,
        epoch_losses=prior_epoch_losses + history.epoch_losses,
        test_loss=final.loss if final else None,
        test_accuracy=final.accuracy if final else None,
        wall_time=wall,
        state_dict=convert.state_dict(trained),
        epoch_accuracies=prior_accuracies + trained_accuracies,
        seed=cfg.seed,
        compile_time=compile_seconds() - c0,
    )


def results_to_json(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    """Runs as JSON-ready dicts (everything but the trained weights), to plot them later."""
    out = []
    for r in results:
        d = {k: v for k, v in dataclasses.asdict(r).items() if k != "state_dict"}
        d["losses"] = r.losses.tolist()
        out.append(d)
    return out


def results_from_json(items: Sequence[Mapping[str, Any]]) -> list[RunResult]:
    """Inverse of :func:`results_to_json` (``state_dict`` is None)."""
    return [RunResult(**{**d, "losses": np.asarray(d["losses"], dtype=np.float64)}) for d in items]


def _fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def result_table(results: Sequence[RunResult]) -> str:
    """A side-by-side summary of runs of one model, one column per framework, and the
    difference when there are two: final loss, test loss and accuracy, weights, wall time."""
    if not results:
        return "(no runs)"
    rows: list[tuple[str, list[str], str]] = []

    def diff(values: list[float | None], fmt: Callable[[float], str]) -> str:
        if len(values) != 2 or any(v is None for v in values):
            return ""
        return fmt(abs(values[0] - values[1]))  # type: ignore[operator]

    final = [float(r.losses[-1]) if len(r.losses) else None for r in results]
    rows.append(
        (
            "final batch loss",
            [f"{v:.6f}" if v is not None else "-" for v in final],
            diff(final, lambda d: f"{d:.1e}"),
        )
    )
    if any(r.test_loss is not None for r in results):
        tl = [r.test_loss for r in results]
        rows.append(
            (
                "test loss",
                [f"{v:.6f}" if v is not None else "-" for v in tl],
                diff(tl, lambda d: f"{d:.1e}"),
            )
        )
    if any(r.test_accuracy is not None for r in results):
        acc = [r.test_accuracy for r in results]
        rows.append(
            ("test accuracy", [_fmt_pct(v) for v in acc], diff(acc, lambda d: f"{100 * d:.2f} pp"))
        )
    if len(results) == 2 and all(r.state_dict for r in results):
        a, b = results[0].state_dict, results[1].state_dict
        worst = max(float(np.max(np.abs(a[k] - b[k]), initial=0.0)) for k in a)  # type: ignore[index]
        rows.append(("max |weight diff|", ["", ""], f"{worst:.1e}"))
    times = [r.wall_time for r in results]
    ratio = ""
    if len(times) == 2 and min(times) > 0:
        fast = 0 if times[0] < times[1] else 1
        ratio = f"{results[fast].framework} {max(times) / min(times):.1f}x faster"
    rows.append(("wall time", [f"{t:.1f} s" for t in times], ratio))
    if any(r.compile_time is not None for r in results):
        # JAX's tracing and XLA compilation, measured; torch's one-time start-up costs (lazy
        # initialisation, first calls) are not separable, so no ratio is drawn from this row
        comp = [r.compile_time for r in results]
        rows.append(("of it compiling", [f"{c:.1f} s" if c is not None else "-" for c in comp], ""))
    heads = [f"{r.framework} ({r.device})" for r in results]
    w0 = max(len(r[0]) for r in rows)
    ws = [max(len(h), *(len(r[1][i]) for r in rows)) for i, h in enumerate(heads)]
    has_diff = len(results) == 2
    head = f"{results[0].model:<{w0}}  " + "  ".join(
        f"{h:>{w}}" for h, w in zip(heads, ws, strict=True)
    )
    head += "  difference" if has_diff else ""
    lines = [head, "-" * len(head)]
    for label, vals, d in rows:
        line = f"{label:<{w0}}  " + "  ".join(f"{v:>{w}}" for v, w in zip(vals, ws, strict=True))
        lines.append((line + (f"  {d}" if has_diff and d else "")).rstrip())
    return "\n".join(lines)


def seed_spread_table(results: Sequence[RunResult]) -> str:
    """Test accuracy of torch and JAX runs of one model over several seeds, with the gap.

    One row per seed (the runs with that :attr:`RunResult.seed`), then the mean accuracy of
    each framework, the gap between the means, and the median and largest per-seed gap. In
    float32 two runs from the same start stay equal to rounding for a few hundred steps and
    then become different, equally valid runs, so one seed's gap is a draw from a spread; the
    mean over seeds is what compares the frameworks (float64 runs stay equal: gap 0).
    """
    by_seed: dict[int | None, dict[str, float | None]] = {}
    for r in results:
        by_seed.setdefault(r.seed, {})[r.framework] = r.test_accuracy
    rows = [(s, v.get("torch"), v.get("jax")) for s, v in sorted(by_seed.items(), key=str)]
    pairs = [(t, j) for _, t, j in rows if t is not None and j is not None]
    lines = [f"{'seed':>6} {'torch':>9} {'JAX':>9} {'gap':>8}"]
    for s, t, j in rows:
        gap = f"{100 * abs(t - j):.2f} pp" if t is not None and j is not None else "-"
        lines.append(f"{s!s:>6} {_fmt_pct(t):>9} {_fmt_pct(j):>9} {gap:>8}")
    if pairs:
        mt = float(np.mean([t for t, _ in pairs]))
        mj = float(np.mean([j for _, j in pairs]))
        gaps = [abs(t - j) for t, j in pairs]
        lines.append(f"{'mean':>6} {_fmt_pct(mt):>9} {_fmt_pct(mj):>9} {100 * abs(mt - mj):.2f} pp")
        lines.append(
            f"per-seed gap over {len(pairs)} seeds: median {100 * float(np.median(gaps)):.2f} pp, "
            f"largest {100 * max(gaps):.2f} pp"
        )
    return "\n".join(lines)
