"""From the command line to a run: the options of ``jaxnets`` and of the examples, one spelling
each, and the run configuration built from them.

* Option types refuse a bad value while parsing (``error: argument --batch-size: expected a
  positive integer (1 or more), got 0``, exit status 2), and :class:`ArgumentParser` adds the
  closest option to an unknown one (``--modle``: did you mean ``--model``?).
* The option groups, shared by the command and the examples: :func:`add_framework_args`
  (``--framework``, ``--device``), :func:`add_training_args` (``--epochs``, ``--lr``,
  ``--seed``, ``--no-progress``, ``--print-every``, ``--batch-size``), :func:`add_device_args`
  (``--devices``, ``--mesh``, ``--distributed``) and :func:`add_run_args` (all of an MNIST
  run: ``jaxnets train`` and ``examples/mnist.py``).
* What acts on them, in the order JAX needs: :func:`configure_runtime` (platform, mesh,
  precision, float64; returns the mesh, which is passed on, never kept), then
  :func:`train_config` and :func:`run_dataset` (the :class:`~jaxnets.app.runs.TrainConfig`
  and the MNIST data of a run).

Mistakes that parsing cannot see raise :class:`CommandError` with the fix. jax, flax and
torch are imported only by the functions that need them, so building a parser is cheap.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from jax.sharding import Mesh

    from jaxnets.app.runs import Dataset, TrainConfig

__all__ = [
    "ArgumentParser",
    "CommandError",
    "add_device_args",
    "add_framework_args",
    "add_run_args",
    "add_training_args",
    "check_output",
    "configure_runtime",
    "mesh_from_args",
    "model_name",
    "nonnegative_float",
    "nonnegative_int",
    "parse_frameworks",
    "positive_float",
    "positive_int",
    "require_plotting",
    "require_torch",
    "run_dataset",
    "run_main",
    "select_device",
    "select_jax_platform",
    "select_models",
    "setup_frameworks",
    "show_progress",
    "train_config",
    "with_default",
]

Device = Literal["cpu", "gpu", "tpu"]
_PLATFORMS = {"cpu": "cpu", "gpu": "cuda", "tpu": "tpu"}

TORCH_MISSING = (
    "{what} needs PyTorch for the reference side, and it is not installed. Install the CPU "
    "build: pip install 'torch==2.13.0' -e '.[torch]' (an unpinned `pip install torch` pulls "
    "several GB of CUDA libraries)"
)


class CommandError(Exception):
    """A mistake on the command line that argparse cannot see (a model config the model
    refuses, a batch larger than the data, a missing optional package...); the command
    prints ``jaxnets CMD: error: MESSAGE`` and returns 2. The message says what is wrong
    and how to fix it."""


# --------------------------------------------------------------------------------------------
# Option types and the parser
# --------------------------------------------------------------------------------------------


def _integer(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def _real(text: str, positive: bool, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse ``type=``: an integer >= 1."""
    return _integer(text, 1, "a positive integer (1 or more)")


def nonnegative_int(text: str) -> int:
    """argparse ``type=``: an integer >= 0."""
    return _integer(text, 0, "a non-negative integer (0 or more)")


def positive_float(text: str) -> float:
    """argparse ``type=``: a finite number > 0."""
    return _real(text, True, "a positive number")


def nonnegative_float(text: str) -> float:
    """argparse ``type=``: a finite number >= 0."""
    return _real(text, False, "a non-negative number")


def model_name(text: str) -> str:
    """argparse ``type=``: a registered model name; an unknown one is refused with the
    closest registered name ("Did you mean 'lenet'?") and the list of them all."""
    from jaxnets.registry import UnknownModelError, get_model_spec

    try:
        get_model_spec(text)
    except UnknownModelError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def with_default(help_text: str | None) -> str:
    """``help_text`` with argparse's ``(default: %(default)s)`` after it."""
    return f"{help_text + ' ' if help_text else ''}(default: %(default)s)"


def show_progress(no_progress: bool, stream: Any = None) -> bool:
    """Whether to draw progress bars: not with ``--no-progress``, and only on a terminal
    (``stream``, default stderr, where the bars go), so logs get no carriage-return floods."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return not no_progress and bool(isatty and isatty())


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose error for an unknown option names the closest known
    one of the command it was given to: ``jaxnets compare: error: unrecognized arguments:
    --modle (did you mean --model?)``. Its subcommands' parsers are of this class too."""

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        """As argparse's, but an unknown argument is reported by the subcommand's parser
        (its usage line and its options), with a suggestion."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.subparser(parsed).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def subparser(self, parsed: argparse.Namespace) -> argparse.ArgumentParser:
        """The parser of the subcommand ``parsed`` was parsed for, or this one."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = getattr(parsed, action.dest, None)
                if chosen in action.choices:
                    return action.choices[chosen]
        return self

    def error(self, message: str) -> Any:  # argparse's hook; exits with status 2
        """Print the usage and ``message`` (with a suggestion for an unknown option), exit 2."""
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            from jaxnets._suggest import closest

            known = [s for a in self._actions for s in a.option_strings if s.startswith("--")]
            words = []
            for word in message[len(prefix) :].split():
                guess = closest(word.partition("=")[0], known) if word.startswith("-") else None
                words.append(f"{word} (did you mean {guess}?)" if guess else word)
            message = prefix + " ".join(words)
        super().error(message)


# --------------------------------------------------------------------------------------------
# Option groups, one spelling each
# --------------------------------------------------------------------------------------------


def add_framework_args(parser: argparse.ArgumentParser) -> None:
    """``--framework torch|jax|both`` (default both) and ``--device cpu|gpu|tpu``."""
    parser.add_argument(
        "--framework",
        choices=["torch", "jax", "both"],
        default="both",
        help=with_default("which framework(s) run, from the same start"),
    )
    parser.add_argument(
        "--device",
        choices=["cpu", "gpu", "tpu"],
        default="cpu",
        help=with_default("where both run"),
    )


def add_training_args(
    parser: argparse.ArgumentParser,
    *,
    epochs: int | None,
    lr: float = 0.01,
    batch_size: int | None = None,
    print_every: int | None = None,
    seed: bool = True,
    progress: bool = True,
) -> None:
    """The training recipe's options, each added when it has a default: ``--epochs``,
    ``--lr``, ``--batch-size``, ``--print-every``; ``--seed`` (one, default 0) unless
    ``seed=False``; ``--no-progress`` unless ``progress=False``."""
    d = with_default
    if epochs is not None:
        parser.add_argument(
            "--epochs", type=positive_int, default=epochs, help=d("passes over data")
        )
    parser.add_argument("--lr", type=nonnegative_float, default=lr, help=d("learning rate"))
    if batch_size is not None:
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            default=batch_size,
            help=d("examples per step; the last incomplete batch is dropped"),
        )
    if print_every is not None:
        parser.add_argument(
            "--print-every", type=positive_int, default=print_every, help=d("print every N epochs")
        )
    if seed:
        parser.add_argument(
            "--seed", type=nonnegative_int, default=0, help=d("initial weights and batch order")
        )
    if progress:
        parser.add_argument(
            "--no-progress",
            action="store_true",
            help="no progress bars (never drawn when stderr is not a terminal)",
        )


def _devices_arg(text: str) -> int | None:
    if text == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or 'all', got {text!r}"
        ) from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {n}")
    return n


def _mesh_arg(text: str) -> dict[str, int]:
    from jaxnets.training.distributed import parse_mesh

    try:
        return parse_mesh(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_device_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--devices N|all``, ``--mesh AXIS=SIZE,...`` and ``--distributed`` to ``parser``
    (:func:`mesh_from_args` acts on them). Without any of them a run uses one device."""
    g = parser.add_argument_group(
        "devices", "data-parallel training (the batch is split over the devices)"
    )
    g.add_argument(
        "--devices",
        type=_devices_arg,
        default=False,
        metavar="N|all",
        help="train data-parallel over N devices, or all of them; the batch size must be a "
        "multiple of the device count (default: one device)",
    )
    g.add_argument(
        "--mesh",
        type=_mesh_arg,
        default=None,
        metavar="AXIS=SIZE[,...]",
        help="device mesh, outermost axis first, e.g. 'data=8' or 'hosts=2,data=4' (one size "
        "may be -1: the rest); the batch is split over every axis",
    )
    g.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: join the run with jax.distributed.initialize() (environment: "
        "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID; or torchrun's; or "
        "SLURM/Open MPI/Kubernetes/Cloud TPU) and use every process's devices",
    )
    return parser


def add_run_args(parser: argparse.ArgumentParser, *, seeds: bool = False) -> None:
    """Add the MNIST run options shared by ``jaxnets train`` and ``examples/mnist.py``: what
    to run (:func:`add_framework_args`, ``--precision``, ``--dtype``, :func:`add_device_args`),
    the recipe (:func:`add_training_args`, ``--optimizer``, ``--momentum``; with ``seeds``,
    ``--seed`` takes several), the data (``--data-dir``, ``--download``, ``--no-verify``,
    ``--limit``, ``--test-limit``) and the outputs (``--plot``, ``--results``)."""
    p, d = parser, with_default
    add_framework_args(p)
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
    add_device_args(p)
    add_training_args(p, epochs=3, batch_size=64, seed=not seeds)
    if seeds:
        p.add_argument(
            "--seed",
            type=nonnegative_int,
            nargs="+",
            default=[0],
            help="initial weights and batch order; several seeds add a table of the accuracy "
            "gap over them (float32 runs drift apart by rounding, so one seed's gap is a draw)",
        )
    p.add_argument(
        "--optimizer",
        choices=["sgd", "adam"],
        default="sgd",
        help=d("torch.optim.SGD or Adam, twinned in optax"),
    )
    p.add_argument("--momentum", type=nonnegative_float, default=0.9, help=d("SGD momentum"))
    p.add_argument("--data-dir", help="folder with the MNIST IDX files (else $JAXNETS_DATA_DIR)")
    p.add_argument("--download", action="store_true", help="fetch missing MNIST files first")
    p.add_argument("--no-verify", action="store_true", help="accept subsets (no MD5/size check)")
    p.add_argument("--limit", type=positive_int, help="use the first N training images")
    p.add_argument("--test-limit", type=positive_int, help="use the first N test images")
    p.add_argument("--results", metavar="JSON", help="write the runs (losses, accuracy) here")


# --------------------------------------------------------------------------------------------
# Acting on them
# --------------------------------------------------------------------------------------------


def parse_frameworks(framework: str) -> list[str]:
    """``--framework`` value -> frameworks in run order: ``'both'`` is ``['torch', 'jax']``."""
    choices = {"both": ["torch", "jax"], "torch": ["torch"], "jax": ["jax"]}
    if framework not in choices:
        raise ValueError(f"framework must be torch, jax or both, got {framework!r}")
    return choices[framework]


def setup_frameworks(args: argparse.Namespace) -> list[str]:
    """``--framework`` as the frameworks to run, in order (:func:`parse_frameworks`), after
    checking that PyTorch is installed when torch runs and making JAX run on ``--device``
    (:func:`select_device`); :class:`CommandError` for either."""
    frameworks = parse_frameworks(args.framework)
    if "torch" in frameworks:
        require_torch(f"--framework {args.framework}")
    select_device(args.device)
    return frameworks


def run_main(
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv`` and return ``body(args)``, the shape of every example's ``main``: a
    :class:`CommandError` ends as ``PROG: error: MESSAGE`` with status 2, as argparse ends
    its own errors, not as a traceback."""
    args = parser.parse_args(argv)
    try:
        return body(args)
    except CommandError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2


def select_models(patterns: Sequence[str] | None) -> list[str]:
    """The registered models matching any of ``patterns`` (``--model`` globs, each as
    :func:`jaxnets.match_models` takes it), in registry order; all of them for None.
    ``UnknownModelError`` for a pattern that matches nothing."""
    from jaxnets.registry import list_models, match_models

    if not patterns:
        return list_models()
    hits = {name for pattern in patterns for name in match_models(pattern)}
    return [name for name in list_models() if name in hits]


def require_torch(what: str) -> None:
    """:class:`CommandError` with the install command when PyTorch is missing (looked up,
    not imported)."""
    if importlib.util.find_spec("torch") is None:
        raise CommandError(TORCH_MISSING.format(what=what))


def require_plotting(what: str) -> None:
    """:class:`CommandError` with the install command when matplotlib is missing: checked
    before any work, so a run is not trained only to fail at its plot."""
    from jaxnets.app.plot import MATPLOTLIB_MISSING

    if importlib.util.find_spec("matplotlib") is None:
        raise CommandError(f"{what}: {MATPLOTLIB_MISSING}")


def select_jax_platform(device: Device) -> str:
    """Make JAX run on ``device`` (``'cpu'``, ``'gpu'`` = CUDA, ``'tpu'``); returns the platform.

    Must run before JAX initialises its backends (before the first array is made). If they
    are already initialised on the requested platform this is a no-op; on another one it is
    an error that says so.
    """
    import jax
    from jax._src import xla_bridge

    if device not in _PLATFORMS:
        raise ValueError(f"device must be one of {sorted(_PLATFORMS)}, got {device!r}")
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


def select_device(device: Device) -> str:
    """:func:`select_jax_platform` for ``--device``, a device JAX cannot use being a
    :class:`CommandError` with the fix."""
    try:
        return select_jax_platform(device)
    except (ValueError, RuntimeError) as exc:
        raise CommandError(str(exc)) from None


def mesh_from_args(args: argparse.Namespace) -> Mesh | None:
    """The mesh :func:`add_device_args`' flags ask for, or None (no flag: one device). Joins
    the multi-process run first for ``--distributed`` (which must come before any other JAX
    work)."""
    from jaxnets.training import distributed

    devices = getattr(args, "devices", False)
    mesh_shape = getattr(args, "mesh", None)
    if getattr(args, "distributed", False):
        distributed.initialize_distributed()
    elif devices is False and mesh_shape is None:
        return None
    return distributed.make_mesh(devices or None, mesh_shape=mesh_shape)


def configure_runtime(args: argparse.Namespace) -> Mesh | None:
    """Act on :func:`add_run_args`' runtime options in the order JAX needs: the platform
    (``--device``; on the CPU also :func:`jaxnets.app.host.retain_freed_memory`), the devices
    (returns :func:`mesh_from_args`' mesh, for the runs), the float32 precision of JAX and,
    when torch runs, of torch (``--precision``), and 64-bit JAX for ``--dtype float64``.
    ``CommandError`` for a device or mesh this machine cannot give."""
    import jax

    from jaxnets.app import host
    from torchref.precision import set_precision

    select_device(args.device)
    if args.device == "cpu":
        host.retain_freed_memory()  # XLA:CPU's per-call temporaries stay paged in
    try:
        mesh = mesh_from_args(args)
    except (ValueError, RuntimeError) as exc:  # --devices, --mesh, --distributed
        raise CommandError(str(exc)) from None
    set_precision(args.precision, torch_too="torch" in parse_frameworks(args.framework))
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    return mesh


def train_config(
    args: argparse.Namespace,
    model: str,
    *,
    seed: int | None = None,
    model_config: dict[str, Any] | None = None,
) -> TrainConfig:
    """The :class:`~jaxnets.app.runs.TrainConfig` of ``model`` that :func:`add_run_args`'
    options describe (``seed``: one of several ``--seed`` values)."""
    from jaxnets.app.runs import TrainConfig

    return TrainConfig(
        model,
        model_config=model_config or {},
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        momentum=args.momentum,
        seed=args.seed if seed is None else seed,
        dtype=args.dtype,
    )


def run_dataset(args: argparse.Namespace, cfg: TrainConfig) -> Dataset:
    """MNIST prepared for ``cfg``'s model as :func:`add_run_args`' data options ask
    (:func:`jaxnets.app.runs.mnist_dataset`). ``CommandError`` for missing or damaged files,
    a model that does not take MNIST, or a batch larger than the training images (the last
    incomplete batch is dropped, so no step would run)."""
    from jaxnets.app.runs import mnist_dataset

    try:
        dataset = mnist_dataset(
            cfg.model,
            data_dir=args.data_dir,
            download=args.download,
            verify=not args.no_verify,
            limit=args.limit,
            test_limit=args.test_limit,
            dtype=args.dtype,
            **cfg.model_config,
        )
    except ValueError as exc:  # jaxnets.data.DataError, or a model that does not take MNIST
        raise CommandError(str(exc)) from None
    n = len(dataset.x_train)
    if n < cfg.batch_size:
        raise CommandError(
            f"--batch-size {cfg.batch_size} is larger than the {n} training images, and the "
            f"last incomplete batch is dropped, so no step would run. Fix: --batch-size {n} "
            f"or less" + (", or a larger --limit" if args.limit is not None else "")
        )
    return dataset


def check_output(path: str, *, overwrite: bool, inputs: Sequence[str] = ()) -> None:
    """:class:`CommandError` when writing ``path`` would replace one of ``inputs`` (always
    refused), or an existing file without ``--overwrite``."""
    import os

    for src in inputs:
        if os.path.exists(src) and os.path.exists(path) and os.path.samefile(src, path):
            raise CommandError(
                f"{path} is the input file too; writing it would replace what is being read. "
                f"Fix: give another output path"
            )
    if os.path.exists(path) and not overwrite:
        raise CommandError(
            f"{path} exists; it is not replaced unless you ask. Fix: pass --overwrite, or "
            f"give another output path"
        )
