"""Every example runs for one tiny epoch, and the side-by-side loop keeps the frameworks equal.

The MNIST example reads tiny IDX files this test writes (never the shared data set). Examples
are imported from their files and run through ``main(argv)``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

import jaxnets
from jaxnets import data
from jaxnets.app import loop as jl
from jaxnets.app.torch_runs import run_frameworks
from jaxnets.checkpoint import NonFiniteLossError, NonFiniteStateError
from jaxnets.tolerances import backend_name, tolerance
from jaxnets.training.trainer import Trainer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def device_args() -> list[str]:
    """``--device`` for the backend the suite runs on; JAX only when torch cannot follow."""
    dev = backend_name()
    if dev == "gpu" and not torch.cuda.is_available():
        return ["--device", "gpu", "--framework", "jax"]
    return ["--device", dev]


# ---------------------------------------------------------------------------- smoke tests


def test_tensor_basics(capsys):
    assert load_example("tensor_basics").main(device_args()) == 0
    out = capsys.readouterr().out
    assert "[ 3  6  9 12 15]" in out  # jax x + y
    assert "[43 50]" in out  # jax A @ B
    assert "4.0" in out  # jax d(x^2)/dx at 2


def test_first_network(capsys):
    assert (
        load_example("first_network").main([*device_args(), "--model", "custom_neural_network"])
        == 0
    )
    out = capsys.readouterr().out
    assert "CustomNeuralNetwork(" in out and "Loss:" in out


def test_regression_loop(capsys):
    args = [*device_args(), "--num-epochs", "4", "--print-interval", "2"]  # bars: tty only
    assert load_example("regression_loop").main(args) == 0
    out, err = capsys.readouterr()
    assert "4/4" in out and "final batch loss" in out
    assert "\r" not in err  # stderr is not a terminal here: no progress bars


@pytest.mark.parametrize(
    ("example", "argv", "words"),
    [
        ("regression_loop", ["--print-interval", "0"], "argument --print-interval: expected"),
        ("xor", ["--print-every", "0"], "argument --print-every: expected"),
        ("mnist", ["--model", "lenett"], "Did you mean 'lenet'?"),
        ("mnist", ["--epochs", "-1"], "argument --epochs: expected"),
    ],
)
def test_example_argument_mistakes_are_usage_errors(capsys, example, argv, words):
    with pytest.raises(SystemExit) as info:
        load_example(example).main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and words in err and "Traceback" not in err


def test_mnist_refuses_a_toy_model_cleanly(tmp_path, write_tiny_mnist, capsys):
    folder = write_tiny_mnist(tmp_path / "mnist", np.random.default_rng(5), 32, 16)
    args = [*device_args(), "--data-dir", str(folder), "--no-verify", "--plot", ""]
    assert load_example("mnist").main([*args, "--model", "xor_net"]) == 2
    assert "error: model 'xor_net' takes inputs" in capsys.readouterr().err


def test_mnist_plot_default_is_documented_and_ignored(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    with pytest.raises(SystemExit):
        load_example("mnist").main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    plot = text[text.index("--plot PLOT PNG") :]
    assert "current directory (default: mnist_loss_curves.png" in plot
    ignored = (EXAMPLES.parent / ".gitignore").read_text().splitlines()
    assert "/mnist_loss_curves.png" in ignored


def test_xor(capsys):
    args = [*device_args(), "--epochs", "4", "--print-every", "2", "--no-progress"]
    assert load_example("xor").main(args) == 0
    out = capsys.readouterr().out
    assert "[4/4]" in out and "Final predictions:" in out and "[1, 1]" in out


def test_lenet_walkthrough(capsys):
    assert load_example("lenet_walkthrough").main(device_args()) == 0
    out = capsys.readouterr().out
    assert "10 tensors" in out and "conv1.bias.grad after backward" in out
    assert "after out.backward(v)" in out


def test_lenet_walkthrough_sides_agree():
    """Each printed figure of the walk-through (the VJP of a random vector, the loss, the
    gradient and the weights after the hand-written update) agrees between the frameworks."""
    ex = load_example("lenet_walkthrough")
    init = jl.initial_state_dict(jl.TrainConfig("lenet", seed=0))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1, 32, 32)).astype(np.float32)
    v, target = rng.standard_normal((2, 1, 10)).astype(np.float32)
    j = ex.jax_side(init, x, v, target, 0.01)
    t = ex.torch_side(init, x, v, target, 0.01, "cpu")
    tol = tolerance("float32")
    for key in ("vjp", "loss", "grad after", "loss after update"):
        np.testing.assert_allclose(j[key], t[key], rtol=tol.rtol, atol=tol.atol, err_msg=key)
    for name, w in t["weights"].items():
        np.testing.assert_allclose(j["weights"][name], w, rtol=tol.rtol, atol=tol.atol)
    # the VJP is v's, not the loss's: a different vector gives a different gradient
    assert not np.allclose(j["vjp"], j["grad after"])


def test_mnist_one_tiny_epoch(tmp_path, write_tiny_mnist, np_rng, capsys):
    folder = write_tiny_mnist(tmp_path / "mnist", np_rng, n_train=64, n_test=32)
    png, js = tmp_path / "curves.png", tmp_path / "runs.json"
    args = [
        *device_args(),
        *("--data-dir", str(folder), "--no-verify", "--epochs", "1", "--batch-size", "16"),
        *("--plot", str(png), "--results", str(js)),  # progress bars: only on a terminal
    ]
    assert load_example("mnist").main(args) == 0
    out, err = capsys.readouterr()
    assert "custom_neural_network" in out and "lenet" in out and "test accuracy" in out
    assert ", 1 epoch, " in out and "1 epochs" not in out
    assert "\r" not in err
    assert "of it compiling" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = jl.results_from_json(json.loads(js.read_text()))
    assert {r.model for r in runs} == {"custom_neural_network", "lenet"}
    assert all(len(r.losses) == 4 for r in runs)  # 64 images / batch 16, one epoch


def test_mnist_several_seeds_add_the_spread_table(tmp_path, write_tiny_mnist, np_rng, capsys):
    folder = write_tiny_mnist(tmp_path / "mnist", np_rng, n_train=32, n_test=16)
    js = tmp_path / "runs.json"
    args = [
        *device_args(),
        *("--data-dir", str(folder), "--no-verify", "--epochs", "1", "--batch-size", "16"),
        *("--model", "custom_neural_network", "--seed", "3", "5", "--plot", ""),
        *("--results", str(js), "--no-progress"),
    ]
    assert load_example("mnist").main(args) == 0
    out = capsys.readouterr().out
    assert "seed 3" in out and "seed 5" in out
    assert "custom_neural_network: test accuracy over seeds [3, 5]" in out
    assert "per-seed gap over" in out
    runs = jl.results_from_json(json.loads(js.read_text()))
    assert sorted(r.seed for r in runs if r.framework == "jax") == [3, 5]


def test_compile_seconds_counts_a_new_compilation():
    import jax
    import jax.numpy as jnp

    before = jl.compile_seconds()
    f = jax.jit(lambda x: jnp.tanh(x) * 3.25 + x.sum())  # a function nothing has compiled
    f(jnp.ones((7, 5), jnp.float32)).block_until_ready()
    middle = jl.compile_seconds()
    assert middle > before
    f(jnp.ones((7, 5), jnp.float32)).block_until_ready()  # cached: no new compilation
    assert jl.compile_seconds() == middle


def test_seed_spread_table_arithmetic():
    def run(fw: str, seed: int, acc: float) -> jl.RunResult:
        return jl.RunResult(fw, "m", "cpu", np.zeros(1), 1, [0.0], 0.1, acc, 1.0, seed=seed)

    runs = [run("torch", 0, 0.9700), run("jax", 0, 0.9720), run("torch", 1, 0.9800)]
    runs += [run("jax", 1, 0.9790)]
    text = jl.seed_spread_table(runs)
    assert "0.20 pp" in text and "0.10 pp" in text  # per-seed gaps
    assert "97.50 %" in text and "97.55 %" in text and "0.05 pp" in text  # means and their gap
    assert "median 0.15 pp, largest 0.20 pp" in text


def test_mnist_missing_file_says_which(tmp_path, write_tiny_mnist, capsys):
    folder = write_tiny_mnist(tmp_path / "mnist", np.random.default_rng(0), 32, 16)
    (folder / "t10k-labels-idx1-ubyte").unlink()
    args = [*device_args(), "--data-dir", str(folder), "--no-verify", "--plot", ""]
    assert load_example("mnist").main(args) == 2
    assert "t10k-labels-idx1-ubyte" in capsys.readouterr().err


# ------------------------------------------------------------------------- the loop itself


def small_run(dtype: str = "float32", **kw: object) -> tuple[jl.TrainConfig, jl.Dataset]:
    x, y = data.random_classification(96, 12, 3, seed=1, dtype=np.dtype(dtype))
    xt, yt = data.random_classification(40, 12, 3, seed=2, dtype=np.dtype(dtype))
    cfg = jl.TrainConfig(
        "mlp",
        model_config={"in_features": 12, "hidden_sizes": (16,), "out_features": 3},
        epochs=2,
        batch_size=32,
        dtype=dtype,
        **kw,
    )
    return cfg, jl.Dataset(x, y, xt, yt)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_torch_and_jax_runs_agree_step_by_step(optimizer):
    """Same start, same batch order: every per-step loss and the trained weights agree
    within the float64 trajectory tolerance (a batch-order or optimizer mismatch would not)."""
    cfg, ds = small_run("float64", optimizer=optimizer, lr=0.05)
    _assert_runs_agree(*run_frameworks(cfg, ds, ["torch", "jax"], progress=False), steps=6)


def _assert_runs_agree(torch_run: jl.RunResult, jax_run: jl.RunResult, steps: int) -> None:
    """Every step's loss and every trained array within the float64 trajectory tolerance,
    and the same test accuracy."""
    tol = tolerance("float64", kind="trajectory")
    assert len(torch_run.losses) == len(jax_run.losses) == steps
    bound = tol.atol + tol.rtol * np.max(np.abs(torch_run.losses))
    assert np.max(np.abs(torch_run.losses - jax_run.losses)) <= bound
    for k, want in torch_run.state_dict.items():
        got = jax_run.state_dict[k]
        assert np.max(np.abs(got - want)) <= tol.atol + tol.rtol * np.max(np.abs(want)), k
    assert torch_run.test_accuracy == jax_run.test_accuracy


@pytest.mark.parametrize("model", ["custom_neural_network", "lenet"])
def test_mnist_recipe_agrees_step_by_step(model, tmp_path, write_tiny_mnist, np_rng):
    """examples/mnist.py's recipe (SGD with momentum 0.9) on MNIST-format files, through
    mnist_dataset (normalised, flattened or padded to 32x32) and both training loops (torch
    NCHW, JAX NHWC for LeNet): every step's loss, the trained weights and the test accuracy
    agree within the float64 trajectory tolerance."""
    folder = write_tiny_mnist(tmp_path / "mnist", np_rng, n_train=96, n_test=32)
    ds = jl.mnist_dataset(model, data_dir=folder, verify=False, dtype="float64")
    cfg = jl.TrainConfig(model, epochs=2, batch_size=32, dtype="float64", seed=4)
    assert (cfg.optimizer, cfg.lr, cfg.momentum) == ("sgd", 0.01, 0.9)  # the recipe
    torch_run, jax_run = run_frameworks(cfg, ds, ["torch", "jax"], progress=False)
    _assert_runs_agree(torch_run, jax_run, steps=6)
    init = jl.initial_state_dict(cfg)
    moved = max(float(np.max(np.abs(torch_run.state_dict[k] - init[k]))) for k in init)
    assert moved > 1e-4  # the weights did train: agreement is not two copies of the start


def test_progress_bars_are_drawn_only_on_a_terminal(capsys):
    # a library caller with progress=True whose stderr goes to a log (here: captured) gets no
    # carriage-return updates from either framework's loop
    cfg, ds = small_run("float64")
    run_frameworks(cfg, ds, ["torch", "jax"], progress=True)
    assert "\r" not in capsys.readouterr().err


def test_fit_is_the_step_loop_in_batch_order():
    """fit (scan chunks) == Trainer.step over epoch_batches, epoch by epoch."""
    cfg, ds = small_run("float64")
    model = jaxnets.create_model(cfg.model, param_dtype="float64", **cfg.model_config)
    trainer = Trainer(model, jl.make_optimizer(cfg), "cross_entropy", donate=False)
    state, hist = jl.fit(
        trainer,
        trainer.init(),
        ds.x_train,
        ds.y_train,
        epochs=2,
        batch_size=32,
        seed=3,
        progress=False,
        chunks_per_epoch=2,
    )
    ref, losses = trainer.init(), []
    for epoch in range(2):
        for idx in data.epoch_batches(96, 32, seed=3, epoch=epoch):
            ref, loss = trainer.step(ref, ds.x_train[idx], ds.y_train[idx])
            losses.append(float(loss))
    tol = tolerance("float64")
    np.testing.assert_allclose(hist.losses, losses, rtol=tol.rtol, atol=tol.atol)
    assert int(state.step) == int(ref.step) == 6


def test_resume_continues_exactly(tmp_path):
    """1 epoch, saved; resumed for a 2nd == 2 epochs in one go, bit for bit."""
    cfg, ds = small_run()
    whole = jl.run_jax(cfg, ds, progress=False)
    ckpt = tmp_path / "run.safetensors"
    one = dataclasses.replace(cfg, epochs=1)
    assert len(jl.run_jax(one, ds, progress=False, checkpoint=ckpt).losses) == 3
    resumed = jl.run_jax(cfg, ds, progress=False, checkpoint=ckpt, resume=True)
    np.testing.assert_array_equal(resumed.losses, whole.losses)
    assert resumed.test_accuracy == whole.test_accuracy
    # the per-epoch history covers the epochs trained before the resume too
    assert len(whole.epoch_losses) == len(whole.epoch_accuracies) == 2
    assert resumed.epoch_losses == whole.epoch_losses
    assert resumed.epoch_accuracies == whole.epoch_accuracies
    with pytest.raises(
        ValueError, match=r"saved by a run with other settings \(lr: saved 0\.01, now 0\.5\)"
    ):
        jl.run_jax(dataclasses.replace(cfg, lr=0.5), ds, checkpoint=ckpt, resume=True)
    # another model is named as such (before: arrays that do not fit, from load_run)
    other = dataclasses.replace(cfg, model_config={**cfg.model_config, "hidden_sizes": (8,)})
    with pytest.raises(ValueError, match=r"model_config: saved .*'hidden_sizes': \[16\]"):
        jl.run_jax(other, ds, checkpoint=ckpt, resume=True)
    # another training set, and fewer epochs than the run has trained, are refused too
    fewer = jl.Dataset(ds.x_train[:64], ds.y_train[:64], ds.x_test, ds.y_test)
    with pytest.raises(ValueError, match=r"training examples: saved 96, now 64"):
        jl.run_jax(cfg, fewer, checkpoint=ckpt, resume=True)
    with pytest.raises(ValueError, match=r"has trained 2 epochs, more than the 1 asked for"):
        jl.run_jax(one, ds, checkpoint=ckpt, resume=True)
    assert jl.check_resume(ckpt, cfg, 96) == (2, 6)


def test_resume_of_a_run_saved_without_epoch_history(tmp_path):
    """A run saved before the meta held per-epoch figures resumes with the epoch means
    recomputed from its per-step losses, and its unknown accuracies as None."""
    from jaxnets import checkpoint as ck

    cfg, ds = small_run()
    whole = jl.run_jax(cfg, ds, progress=False)
    path = tmp_path / "run.safetensors"
    jl.run_jax(dataclasses.replace(cfg, epochs=1), ds, progress=False, checkpoint=path)
    model = jaxnets.create_model(cfg.model, param_dtype=cfg.dtype, **cfg.model_config)
    trainer = jl.make_trainer(model, cfg)
    state, meta = ck.load_run(path, trainer)
    old = {k: v for k, v in meta.items() if k not in ("epoch_losses", "epoch_accuracies")}
    ck.save_run(path, trainer, state, meta=old)
    resumed = jl.run_jax(cfg, ds, progress=False, checkpoint=path, resume=True)
    assert resumed.epoch_losses == whole.epoch_losses
    assert resumed.epoch_accuracies == [None, whole.epoch_accuracies[1]]


# lr=1e300 is inf in float32 (numpy warns as it casts): the first update makes the state inf
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_diverged_state_never_replaces_the_last_good_run(tmp_path):
    # one step per epoch: the loss of a step is computed before its update, so the step whose
    # update overflows still reports a finite loss, and only the state shows the divergence
    cfg, ds = small_run(lr=1e300, momentum=0.0)
    cfg = dataclasses.replace(cfg, batch_size=96, epochs=3)
    ckpt = tmp_path / "run.safetensors"
    with pytest.raises(NonFiniteStateError, match=r"holds NaN or inf in params\.0") as info:
        jl.run_jax(cfg, ds, progress=False, checkpoint=ckpt)
    assert info.value.step == 1 and "params.0" in info.value.arrays
    assert not ckpt.exists()  # nothing was written (no good run yet; see test_bad_input)


def test_nonfinite_loss_stops_with_the_step():
    cfg, ds = small_run(lr=1e30)
    with pytest.raises(NonFiniteLossError) as info:
        jl.run_jax(cfg, ds, progress=False)
    assert info.value.step >= 1


def test_mnist_dataset_refuses_toy_models(tmp_path):
    with pytest.raises(ValueError, match=r"examples/xor\.py"):
        jl.mnist_dataset("xor_net", data_dir=tmp_path)
