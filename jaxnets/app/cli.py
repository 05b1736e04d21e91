"""The ``jaxnets`` command. Thin: parse arguments, dispatch to library functions, print.

User mistakes end as ``jaxnets CMD: error: MESSAGE`` on stderr with exit status 2, as argparse
reports its own: options are checked while parsing (:mod:`jaxnets.app.config`; an unknown one
gets the closest known one), and the library's own error types (a damaged checkpoint, a model
config it refuses, missing data...) are caught around the subcommand. Anything else is a bug
and keeps its traceback; ``JAXNETS_TRACEBACK=1`` shows the traceback of user errors too.
Each command imports what it needs when it runs: ``jaxnets list`` loads neither torch nor a
model's weights.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from jaxnets.app.config import (
    ArgumentParser,
    CommandError,
    check_output,
    nonnegative_int,
    positive_float,
    positive_int,
    require_torch,
    select_models,
    show_progress,
    with_default,
)

__all__ = ["CommandError", "build_parser", "main"]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def cmd_list(args: argparse.Namespace) -> int:
    """Every registered model, its tutorial and parameter count (the twin's, which equals
    torch's: ``jaxnets compare`` checks both), counted from shapes alone: no weights are
    initialised and torch is not loaded, so the listing answers at once."""
    from flax import nnx

    import jaxnets
    from jaxnets.app.report import Column, render

    rows = []
    for name in jaxnets.list_models():
        spec = jaxnets.get_model_spec(name)
        abstract = nnx.eval_shape(lambda name=name: jaxnets.create_model(name))
        rows.append(
            {
                "model": name,
                "tutorial": spec.tutorial,
                "params": _param_count(abstract),
                "input": "x".join(map(str, spec.torch_input_shape(1)[1:]))
                + (" (NHWC in Flax)" if spec.layout == "image" else ""),
                "loss": spec.loss,
                "description": spec.description,
            }
        )
    cols = [
        Column("model", "model", align="<"),
        Column("tutorial", "tutorial"),
        Column("params", "params", "{:,}"),
        Column("input", "input", align="<"),
        Column("loss", "loss", align="<"),
        Column("description", "architecture", align="<"),
    ]
    print(render(rows, cols, args.format))
    return 0


def _param_count(model: object) -> int:
    import math

    from flax import nnx

    return sum(math.prod(v.shape) for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param)))


def cmd_compare(args: argparse.Namespace) -> int:
    """The parity table: both sides from one seed, weights copied, every error measured."""
    names = select_models(args.model)
    require_torch("jaxnets compare")
    from jaxnets.app.report import Column, render
    from torchref.compare import batchnorm_models, compare_models, summary_rows

    if args.batch_size < 2 and (bn := batchnorm_models(names)):
        raise CommandError(
            f"--batch-size {args.batch_size}: {', '.join(bn)} "
            f"{'trains' if len(bn) == 1 else 'train'} on batch statistics (BatchNorm), "
            f"which need at least 2 examples. Fix: use --batch-size 2 or more, or leave "
            f"{'it' if len(bn) == 1 else 'them'} out with --model"
        )
    reports = compare_models(names, dtype=args.dtype, seed=args.seed, batch_size=args.batch_size)
    rows = summary_rows(reports)
    if args.timing:
        from jaxnets.app.bench import step_times

        for row in rows:
            st = step_times(row["model"], batch_size=args.batch_size, dtype=args.dtype)
            row["torch_step_ms"], row["jax_step_ms"] = st.torch_ms, st.jax_ms
    e = "{:.1e}"
    cols = [
        Column("model", "model", align="<"),
        Column("tutorial", "tut"),
        Column("torch_params", "torch params", "{:,}"),
        Column("flax_params", "flax params", "{:,}"),
        Column("output_abs", "out abs", e),
        Column("output_rel", "out rel", e),
        Column("loss_abs", "loss abs", e),
        Column("loss_rel", "loss rel", e),
        Column("grad_abs", "grad abs", e),
        Column("grad_rel", "grad rel", e),
        Column("buffer_abs", "stats abs", e),
        *(
            [
                Column("torch_step_ms", "torch ms/step", "{:.3f}"),
                Column("jax_step_ms", "jax ms/step", "{:.3f}"),
            ]
            if args.timing
            else []
        ),
        Column("tolerance_used", "tol used", "{:.1%}"),
        Column("ok", "parity", align="<"),
    ]
    for row in rows:  # JSON keeps the boolean; CSV writes it as JSON does; the table in words
        if args.format == "table":
            row["ok"] = "ok" if row["ok"] else "FAILED"
        elif args.format == "csv":
            row["ok"] = "true" if row["ok"] else "false"
    print(render(rows, cols, args.format))
    failed = [r for r in reports if not r.ok]
    if args.format == "table":
        print(_compare_footer(args, reports, len(failed)))
        for r in failed:
            print(f"\n{r}", file=sys.stderr)
    if args.explain:  # layer by layer; text, so it goes to stderr when stdout is JSON/CSV
        from torchref.explain import explain_models

        out = sys.stdout if args.format == "table" else sys.stderr
        for r in explain_models(
            names, dtype=args.dtype, seed=args.seed, batch_size=args.batch_size
        ):
            print(f"\n{r}", file=out)
    return 1 if failed else 0


def _compare_footer(args: argparse.Namespace, reports: Sequence[Any], failed: int) -> str:
    """The explanation under the parity table; BatchNorm notes only when such a model ran."""
    t = reports[0].tolerance
    from torchref.compare import batchnorm_models

    bn = batchnorm_models([r.model for r in reports])
    zero_grad = (
        f" (a 'rel' near 1 there is noise over noise: in {', '.join(bn)} the biases of the "
        f"layers that feed a BatchNorm have an exactly zero gradient, so both sides hold "
        f"rounding noise far below atol)"
        if bn
        else ""
    )
    return (
        f"\n{len(reports) - failed}/{len(reports)} models within tolerance "
        f"({args.dtype} on {reports[0].backend}: max|a-b| <= {t.atol:g} + "
        f"{t.rtol:g}*max|b| per tensor; 'rel' is max|a-b| / max|b|). Gradients: the "
        f"parameter using most of its tolerance{zero_grad}; 'tol used': the largest "
        f"fraction of the tolerance any compared tensor spends (fails above 100%)."
        + (" stats: BatchNorm running statistics." if bn else "")
        + (
            f" ms/step: median time of one SGD training step (batch {args.batch_size}, "
            f"JAX after compilation; --no-timing skips it)."
            if args.timing
            else ""
        )
    )


def _model_config(pairs: Sequence[str] | None, model: str) -> dict[str, object]:
    """``['hidden_sizes=(64, 32)', 'activation=tanh']`` -> config keyword arguments of
    ``model``, checked by its config class (a bad name or value is a :class:`CommandError`)."""
    import ast

    from jaxnets.registry import get_model_spec

    config: dict[str, object] = {}
    for pair in pairs or ():
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise CommandError(
                f"--config expects KEY=VALUE, got {pair!r}; e.g. --config 'hidden_sizes=(64, 32)'"
            )
        try:
            config[key.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            config[key.strip()] = text  # a bare word such as tanh
    spec = get_model_spec(model)  # UnknownModelError: main reports it
    try:
        spec.make_config(**config)
    except (TypeError, ValueError) as exc:
        raise CommandError(f"--config: {exc}") from None
    return config


def _checkpoint_note(args: argparse.Namespace, cfg: Any, n_train: int) -> str | None:
    """The one line to print about ``--checkpoint``/``--resume`` before training, after
    checking that a run to resume was saved with these settings, and that a new run does not
    replace an existing file without ``--overwrite``."""
    from pathlib import Path

    from jaxnets.app.runs import check_resume

    path = Path(args.checkpoint)
    if not args.resume:
        if path.exists():
            check_output(args.checkpoint, overwrite=args.overwrite)  # refused without it
            return f"{path} exists and is overwritten by this new run (--overwrite)"
        return None
    if not path.exists():
        return f"{path} does not exist yet: starting a new run, saved there after every epoch"
    try:
        epoch, steps = check_resume(path, cfg, n_train)  # CheckpointError: main reports
    except ValueError as exc:
        raise CommandError(f"--resume: {exc}") from None
    done = f"resuming from {path} at epoch {epoch} (step {steps})"
    if epoch >= cfg.epochs:
        return (
            f"{done}: {_plural(epoch, 'epoch')} done and --epochs is {cfg.epochs}, so it is "
            f"only evaluated (raise --epochs to train on)"
        )
    return f"{done}, training to epoch {cfg.epochs}"


def _check_train_args(args: argparse.Namespace) -> str | None:
    """Option combinations the train parser refuses (its usage error), or None."""
    if args.resume and not args.checkpoint:
        return "--resume needs --checkpoint PATH (the run file to continue)"
    if args.checkpoint and args.framework != "jax":
        return "--checkpoint/--resume need --framework jax (runs are saved from the JAX side)"
    return None


def cmd_train(args: argparse.Namespace) -> int:
    """Train MODEL on MNIST in torch and/or JAX from one start and batch order; summary, plot."""

    from jaxnets.app import config, runs

    frameworks = config.parse_frameworks(args.framework)
    # everything that can be refused is refused before JAX starts or a step runs
    if "torch" in frameworks:
        require_torch("jaxnets train --framework torch|both")
    if args.plot:
        config.require_plotting(f"--plot {args.plot}")
    cfg = config.train_config(args, args.model, model_config=_model_config(args.config, args.model))
    dataset = config.run_dataset(args, cfg)
    note = _checkpoint_note(args, cfg, len(dataset.x_train)) if args.checkpoint else None
    mesh = config.configure_runtime(args)  # platform, devices/mesh, precision, float64
    if mesh is not None:
        from jaxnets.training.distributed import check_global_batch

        try:
            check_global_batch(cfg.batch_size, mesh, what="--batch-size")
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    if note:
        print(f"jaxnets train: {note}", file=sys.stderr)
    results = runs.run_frameworks(
        cfg,
        dataset,
        frameworks,
        device=args.device,
        progress=show_progress(args.no_progress),
        mesh=mesh,
        checkpoint=args.checkpoint,
        resume=args.resume,
    )
    described = cfg.describe()
    print(f"\n{args.model} on MNIST, {described}, {args.dtype}\n")
    print(runs.result_table(results))
    if args.plot:
        from jaxnets.app.plot import plot_loss_curves

        sub = f"MNIST, {described}, {args.dtype}"
        print(f"\nloss curves: {plot_loss_curves(results, args.plot, subtitle=sub)}")
    if args.results:
        runs.save_results(results, args.results)
    return 0


_KINDS = {"flax": "Flax layout", "run": "training run", "torch": "torch layout"}


def _file_kind(path: str, *, reading: bool) -> str:
    """What convert reads or writes at ``path``: ``'flax'`` (``*.flax.safetensors``, or a
    .safetensors file whose header says so), ``'run'`` (a training run, read only),
    ``'torch'`` (.safetensors state dict) or ``'torch.save'`` (.pt, .pth, .bin, .ckpt).
    ``CommandError`` for any other suffix; a damaged file raises ``CheckpointError``."""
    from pathlib import Path

    from jaxnets.checkpoint import FORMAT_KEY, TORCH_SAVE_SUFFIXES, read_metadata

    p = Path(path)
    if p.name.lower().endswith(".flax.safetensors"):
        return "flax"
    if p.suffix.lower() == ".safetensors":
        if reading and p.exists():
            kind = read_metadata(p).get(FORMAT_KEY)
            return kind if kind in ("flax", "run") else "torch"
        return "torch"
    if p.suffix.lower() in TORCH_SAVE_SUFFIXES:
        return "torch.save"
    raise CommandError(
        f"{path}: convert {'reads' if reading else 'writes'} files by their suffix, and "
        f"{p.suffix or 'no suffix'!r} is none it knows. Fix: name it *.flax.safetensors (Flax "
        f"layout), *.safetensors (torch state dict) or {', '.join(TORCH_SAVE_SUFFIXES)} "
        f"(torch.save)"
    )


def _is_zip(path: str) -> bool:
    """Whether ``path`` starts as a zip archive does (what ``torch.save`` writes)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:  # missing or unreadable: the loader says which
        return False


def _run_model_config(path: str, model: str, pairs: Sequence[str] | None) -> dict[str, object]:
    """The model config a training run was saved with (``--config`` overrides it), after
    checking that the run trained ``model``."""
    from jaxnets.checkpoint import read_run_meta

    saved = {"model_config": {}, **read_run_meta(path).get("config", {})}
    if saved.get("model") not in (None, model):
        raise CommandError(
            f"{path} is a run of {saved['model']!r}, not {model!r}. Fix: --model {saved['model']}"
        )
    if pairs:
        return _model_config(pairs, model)
    # JSON made the config's tuples lists
    return {k: tuple(v) if isinstance(v, list) else v for k, v in saved["model_config"].items()}


def _convert_run(args: argparse.Namespace, from_run: bool) -> int:
    """``convert --run``: a PyTorch training checkpoint -> a run file ``jaxnets train
    --resume`` continues; and a run file (``from_run``) -> a PyTorch training checkpoint."""
    from jaxnets import checkpoint, convert

    out = args.output.lower()
    if from_run and out.endswith(".safetensors"):
        raise CommandError(
            f"{args.input} is a jaxnets run file; OUT is the PyTorch training checkpoint to "
            f"write: name it .pt (or .pth, .ckpt)"
        )
    if not from_run and (not out.endswith(".safetensors") or out.endswith(".flax.safetensors")):
        raise CommandError(
            f"--run writes a jaxnets run file: name OUT *.safetensors (not .flax.safetensors), "
            f"got {args.output}"
        )
    if from_run and (args.batch_size is not None or args.seed is not None or args.config):
        raise CommandError(
            "a run file holds its own settings: drop --batch-size, --seed and --config"
        )
    require_torch("convert --run")
    from jaxnets.app import torch_checkpoints as tc
    from torchref.handoff import HandoffError

    try:
        if from_run:
            cfg = tc.run_to_checkpoint(args.input, args.output, args.model)
            print(
                f"{args.input} (jaxnets run of {cfg.model}) -> {args.output} (PyTorch training "
                f"checkpoint: model_state_dict, optimizer_state_dict, epoch)"
            )
            return 0
        cfg = tc.checkpoint_to_run(
            args.input,
            args.output,
            args.model,
            _model_config(args.config, args.model),
            batch_size=64 if args.batch_size is None else args.batch_size,
            seed=0 if args.seed is None else args.seed,
        )
    except (checkpoint.CheckpointError, convert.StateDictError, HandoffError, OSError) as exc:
        raise CommandError(str(exc)) from None
    print(
        f"{args.input} (PyTorch training checkpoint, {_plural(cfg.epochs, 'epoch')} trained, "
        f"{cfg.describe().split(', batch')[0]}) -> {args.output} (jaxnets run)\n"
        f"continue it with: {tc.train_command(cfg, args.output)}"
    )
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert a checkpoint between torch layout (.pt/.pth/.safetensors state dict) and Flax
    layout (*.flax.safetensors), through the registered twin (every key and shape checked);
    a run saved by ``jaxnets train --checkpoint`` exports its trained weights to either layout;
    with ``--run`` (or a run file as IN and a torch.save file as OUT) a whole training run,
    optimizer state included."""
    import jaxnets
    from jaxnets import checkpoint, convert

    try:
        if args.input.lower().endswith(".safetensors") and _is_zip(args.input):
            raise CommandError(
                f"{args.input} is a torch.save file (a zip archive) with a .safetensors name, "
                f"and convert reads files by their suffix. Fix: rename it to .pt and convert that"
            )
        src, dst = _file_kind(args.input, reading=True), _file_kind(args.output, reading=False)
        check_output(args.output, overwrite=args.overwrite, inputs=[args.input])
        if args.run or (src == "run" and dst == "torch.save"):
            return _convert_run(args, from_run=src == "run")
        if args.batch_size is not None or args.seed is not None:
            raise CommandError(
                "--batch-size and --seed are the settings of a converted run: they go with --run"
            )
        if args.key is not None and src != "torch.save":
            raise CommandError(
                f"--key picks the state dict inside a torch.save file (.pt, .pth, .bin, .ckpt); "
                f"{args.input} is a safetensors file, which holds one state dict. Fix: drop --key"
            )
        if src == "flax" and dst == "flax":
            raise CommandError(
                "both files are Flax layout; OUT must be a torch file "
                "(.pt, .pth or .safetensors not ending in .flax.safetensors)"
            )
        if src == "run":
            config = _run_model_config(args.input, args.model, args.config)
            dtype = checkpoint.read_run_meta(args.input).get("config", {}).get("dtype")
            if dtype == "float64":  # the run trained in float64: its twin must hold it
                import jax

                jax.config.update("jax_enable_x64", True)
            model = jaxnets.create_model(args.model, param_dtype=dtype, **config)
            checkpoint.load_run_weights(args.input, model)
        else:
            model = jaxnets.create_model(args.model, **_model_config(args.config, args.model))
        if src == "flax":
            checkpoint.load_flax(args.input, model)
        elif src == "torch":
            checkpoint.load_torch_layout(args.input, model)
        elif src == "torch.save":
            require_torch("reading a torch.save file")
            from torchref.checkpoint import NeedsKeyError, load_torch_file

            try:
                state = load_torch_file(args.input, key=args.key)
            except NeedsKeyError as exc:  # the fix in this command's words
                whole = (
                    "; or --run to convert the whole training run (optimizer state included) "
                    "to a run file jaxnets train --resume continues"
                    if "optimizer_state_dict" in exc.non_tensor
                    else ""
                )
                raise CommandError(exc.advice(cli=True) + whole) from None
            convert.load_state_dict(model, state)
        if dst == "flax":
            out = checkpoint.save_flax(args.output, model)
        elif dst == "torch":
            out = checkpoint.save_torch_layout(args.output, model)
        else:
            require_torch("writing a torch.save file")
            from torchref.checkpoint import save_torch_file

            out = save_torch_file(args.output, convert.state_dict(model))
    except (checkpoint.CheckpointError, convert.StateDictError, OSError) as exc:
        raise CommandError(str(exc)) from None
    src_kind, dst_kind = (_KINDS.get(k, "torch layout") for k in (src, dst))
    print(f"{args.input} ({src_kind}) -> {out} ({dst_kind}), model {args.model}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    """The twin printed as torch prints a model, beside torch's own ``print(model)`` (the twin
    alone where torch is not installed)."""
    import importlib.util
    import math

    import jaxnets
    from jaxnets.app.report import text_table
    from jaxnets.debug.summary import parameter_table, side_by_side, torch_repr

    config = _model_config(args.config, args.model)
    flax_text = torch_repr(jaxnets.create_model(args.model, **config))
    if importlib.util.find_spec("torch") is None:
        print(flax_text)
    else:
        import torchref

        torch_text = repr(torchref.create_model(args.model, **config))
        print(side_by_side(torch_text, flax_text, titles=("PyTorch print(model)", "Flax NNX twin")))
        same = "identical" if torch_text == flax_text else "DIFFERENT"
        print(f"\n(architecture text {same})")
    if args.params:
        rows = parameter_table(jaxnets.create_model(args.model, **config))
        cells = [
            [r["torch"], str(list(r["torch_shape"])), r["flax"], str(list(r["flax_shape"]))]
            for r in rows
        ]
        heads = ["torch key", "torch shape", "Flax path", "Flax shape"]
        print("\n" + text_table(heads, cells, "<<<<", rule=False))
        n = sum(math.prod(r["torch_shape"]) for r in rows if r["trainable"])
        print(f"{len([r for r in rows if r['trainable']])} parameter tensors, {n:,} parameters")
    return 0


def _add_train_convert_summary(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on MNIST in torch and/or JAX, side by side")
    p.add_argument("model", metavar="MODEL")
    from jaxnets.app.config import add_run_args

    add_run_args(p)
    p.add_argument("--config", action="append", metavar="KEY=VALUE", help="model config")
    p.add_argument("--plot", metavar="PNG", help="draw the loss curves into this PNG")
    p.add_argument("--checkpoint", metavar="PATH", help="save the JAX run here every epoch")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run saved in --checkpoint (a new run if the file does not exist)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="let a new run replace an existing --checkpoint file",
    )
    p.set_defaults(func=cmd_train, check=_check_train_args)

    p = sub.add_parser(
        "convert",
        help="checkpoint: torch state dict <-> Flax layout (OUT *.flax.safetensors = Flax); "
        "--run: PyTorch training checkpoint <-> jaxnets run file",
        description="Convert weights between torch layout and Flax layout; a run file saved "
        "by jaxnets train --checkpoint exports its trained weights to either layout. With "
        "--run, a PyTorch training checkpoint (torch.save of model_state_dict, "
        "optimizer_state_dict, epoch) becomes a run file that jaxnets train --resume "
        "continues, and a run file as IN with a .pt OUT becomes such a PyTorch checkpoint. "
        "OUT is never IN, and an existing OUT is replaced only with --overwrite. No pickled "
        "code runs: torch.save files are read with torch.load(weights_only=True).",
    )
    p.add_argument(
        "input",
        metavar="IN",
        help=".pt/.pth/.bin/.ckpt/.safetensors, *.flax.safetensors, or a train --checkpoint run",
    )
    p.add_argument("output", metavar="OUT", help="*.flax.safetensors for Flax layout, else torch")
    p.add_argument("--model", required=True, help="registry name of the model the weights fit")
    p.add_argument("--config", action="append", metavar="KEY=VALUE", help="model config")
    p.add_argument(
        "--key",
        metavar="NAME",
        help="the entry of a torch.save checkpoint dict that holds the state dict (e.g. "
        "model_state_dict; default: the file itself, or its one state_dict/model_state_dict/"
        "model entry)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument(
        "--run",
        action="store_true",
        help="IN is a PyTorch training checkpoint, OUT the run file (*.safetensors) that "
        "jaxnets train --resume continues (SGD with momentum or Adam, constant lr)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        help="with --run: the batch size the run goes on with (jaxnets train's; default 64)",
    )
    p.add_argument(
        "--seed",
        type=nonnegative_int,
        help="with --run: the seed of the run's batch order (jaxnets train's; default 0)",
    )
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("summary", help="print(model) of the Flax twin beside torch's")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--config", action="append", metavar="KEY=VALUE", help="model config")
    p.add_argument("--params", action="store_true", help="every tensor in both layouts")
    p.set_defaults(func=cmd_summary)


def cmd_bench(args: argparse.Namespace) -> int:
    """Training-step time and batch-1 latency, PyTorch and JAX side by side (needs torch)."""
    select_models(args.model)  # an unknown name is refused before anything is timed
    require_torch("jaxnets bench")
    from jaxnets.app.bench import cli_main

    return cli_main(args)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="training-step time and latency, PyTorch vs JAX (needs torch)")
    _add_model_globs(p)
    p.add_argument(
        "--batch-size",
        type=positive_int,
        nargs="+",
        metavar="N",
        help="batch sizes (default: per model)",
    )
    p.add_argument(
        "--steps", type=positive_int, help="training steps per timed block (default: per model)"
    )
    p.add_argument(
        "--repeats",
        type=positive_int,
        default=7,
        help=with_default("interleaved rounds (medians over them)"),
    )
    p.add_argument(
        "--infer-calls",
        type=positive_int,
        default=200,
        help=with_default("forward calls per latency block"),
    )
    p.add_argument("--no-inference", dest="inference", action="store_false")
    p.add_argument("--no-torch-compile", dest="torch_compile", action="store_false")
    p.add_argument("--json", metavar="PATH", help="also write every result as JSON")
    p.add_argument(
        "--targets",
        action="store_true",
        help="also print the project's own speed targets and whether this run met them",
    )
    p.add_argument("--seed", type=nonnegative_int, default=0, help=with_default(None))
    p.add_argument(
        "--device",
        choices=["cpu", "gpu"],
        default="cpu",
        help="where both frameworks run (gpu: torch on cuda, JAX on CUDA, true float32) "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--async-dispatch",
        action="store_true",
        help="keep JAX's asynchronous CPU dispatch (default: run computations inline, which "
        "removes a thread hand-off per call)",
    )
    p.add_argument(
        "--system-malloc",
        action="store_true",
        help="leave glibc malloc as it is (default on the CPU: keep freed memory for reuse, "
        "jaxnets.app.host.retain_freed_memory, so XLA's large per-call temporaries are not "
        "page-faulted in again on every call; torch in the same process gets the same)",
    )
    p.add_argument(
        "--xla-flags",
        default="",
        help="extra XLA_FLAGS for the JAX side; write it with '=' since the value starts "
        "with dashes: --xla-flags='--xla_cpu_use_xnnpack=false'",
    )
    p.add_argument(
        "--peak-ghz", type=positive_float, help="clock for the FP32 peak (default: cpuinfo)"
    )
    p.add_argument("--peak-cores", type=positive_int, help="cores for the FP32 peak (default: all)")
    p.add_argument(
        "--peak-flops-per-cycle",
        type=positive_int,
        help="FP32 FLOP/cycle/core (default: ISA)",
    )
    p.set_defaults(func=cmd_bench)


def _add_model_globs(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        action="extend",
        nargs="+",
        metavar="GLOB",
        help="only models matching one of these globs ('*net*'); repeat or list several",
    )


def build_parser() -> ArgumentParser:
    """The argument parser of the ``jaxnets`` command."""
    parser = ArgumentParser(
        prog="jaxnets",
        description="Flax NNX twins of the PyTorch tutorial models, and proof that they agree.",
        epilog="A mistake in the arguments ends with 'jaxnets COMMAND: error: ...' and exit "
        "status 2; set JAXNETS_TRACEBACK=1 to see the Python traceback behind it.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="every registered model with parameter counts")
    p.add_argument(
        "--format", choices=["table", "json", "csv"], default="table", help=with_default(None)
    )
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("compare", help="parity table: outputs, loss and gradients vs PyTorch")
    _add_model_globs(p)
    p.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        default="float32",
        help=with_default("both sides' dtype"),
    )
    p.add_argument(
        "--format",
        choices=["table", "json", "csv"],
        default="table",
        help=with_default("json/csv: one row per model, 'ok' true or false"),
    )
    p.add_argument(
        "--seed",
        type=nonnegative_int,
        default=0,
        help=with_default("initial weights and the random batch"),
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=8,
        help=with_default("examples in the compared batch (2 or more for BatchNorm models)"),
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="after the table, a layer-by-layer report for EVERY selected model (narrow with "
        "--model): each layer's output and gradient error, the first divergence and its "
        "likely causes",
    )
    p.add_argument(
        "--no-timing",
        dest="timing",
        action="store_false",
        help="skip the time-per-training-step columns (torch and JAX)",
    )
    p.set_defaults(func=cmd_compare)
    _add_train_convert_summary(sub)
    _add_bench(sub)
    from jaxnets.app.port import add_parser as _add_port

    _add_port(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """The exception types that report a user's mistake (a message with its fix), not a bug."""
    from jaxnets.checkpoint import CheckpointError, NonFiniteLossError, NonFiniteStateError
    from jaxnets.convert import StateDictError
    from jaxnets.data import DataError
    from jaxnets.registry import UnknownModelError

    return (
        CommandError,
        CheckpointError,
        NonFiniteLossError,
        NonFiniteStateError,
        StateDictError,
        DataError,
        UnknownModelError,
    )


def _stdout_to_devnull() -> None:
    """After a broken pipe: point stdout at /dev/null so that Python's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor (e.g. captured by a test)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxnets`` console script; returns the exit status.

    0 on success, 1 when ``compare`` finds a pair out of tolerance, 2 for a user mistake
    (``jaxnets CMD: error: ...`` on stderr), 141 when stdout is closed early
    (``jaxnets summary lenet --params | head``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    check = getattr(args, "check", None)
    problem = check(args) if check is not None else None
    if problem:
        parser.subparser(args).error(problem)
    try:
        try:
            status = args.func(args)
        except Exception as exc:
            if os.environ.get("JAXNETS_TRACEBACK", "") not in ("", "0"):
                raise
            if not isinstance(exc, _user_errors()):
                raise  # a bug: keep the traceback
            print(f"jaxnets {args.command}: error: {exc}", file=sys.stderr)
            status = 2
        sys.stdout.flush()  # a closed pipe shows here, not in Python's shutdown
    except BrokenPipeError:
        _stdout_to_devnull()
        return 141  # 128 + SIGPIPE, what a shell reports for a program killed by it
    return status


if __name__ == "__main__":
    sys.exit(main())
