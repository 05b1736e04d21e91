"""The ``jaxnets`` command: summary, convert, train, list and the timing columns of compare;
every user mistake ends in ``jaxnets CMD: error: ...`` (status 2), never in a traceback, and no
command replaces its input or an existing file it was not told to replace."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from flax import nnx

import jaxnets
import torchref
from jaxnets import checkpoint, convert
from jaxnets.app.cli import main
from jaxnets.tolerances import backend_name
from torchref.checkpoint import load_torch_file, save_torch_file


def test_summary_side_by_side(capsys):
    assert main(["summary", "lenet", "--params"]) == 0
    out = capsys.readouterr().out
    assert "(architecture text identical)" in out
    assert "conv1.weight  [6, 1, 3, 3]" in out and "conv1.kernel  [3, 3, 1, 6]" in out
    assert "10 parameter tensors, 81,194 parameters" in out


def test_summary_with_config(capsys):
    assert (
        main(["summary", "mlp", "--config", "hidden_sizes=(8, 8)", "--config", "activation=tanh"])
        == 0
    )
    out = capsys.readouterr().out
    assert "(0): Linear(in_features=784, out_features=8, bias=True)" in out
    assert "(architecture text identical)" in out


def test_convert_round_trip_is_exact(tmp_path, capsys):
    torch.manual_seed(0)
    t = torchref.create_model("batchnorm_mlp")
    t.train()(torch.randn(4, 784))  # non-trivial running statistics
    pt, flax, back = tmp_path / "m.pt", tmp_path / "m.flax.safetensors", tmp_path / "back.pth"
    save_torch_file(pt, t)
    assert main(["convert", str(pt), str(flax), "--model", "batchnorm_mlp"]) == 0
    assert "(torch layout) -> " in capsys.readouterr().out
    assert checkpoint.read_metadata(flax)["jaxnets_format"] == "flax"
    assert main(["convert", str(flax), str(back), "--model", "batchnorm_mlp"]) == 0
    original, again = load_torch_file(pt), load_torch_file(back)
    assert list(original) == list(again)
    for k in original:
        np.testing.assert_array_equal(again[k], original[k], err_msg=k)


def test_convert_errors_name_the_problem(tmp_path, capsys):
    flax = tmp_path / "m.flax.safetensors"
    checkpoint.save_flax(flax, jaxnets.create_model("xor_net"))
    assert (
        main(["convert", str(flax), str(tmp_path / "x.flax.safetensors"), "--model", "xor_net"])
        == 2
    )
    assert "both files are Flax layout" in capsys.readouterr().err
    assert main(["convert", str(flax), str(tmp_path / "x.pt"), "--model", "simple_nn"]) == 2
    err = capsys.readouterr().err
    assert "fc1" in err and not (tmp_path / "x.pt").exists()


def test_train_both_frameworks_with_plot(tmp_path, write_tiny_mnist, capsys):
    folder = write_tiny_mnist(tmp_path / "mnist", np.random.default_rng(0), 48, 24)
    png, js = tmp_path / "c.png", tmp_path / "r.json"
    device = ["--device", backend_name()]
    if backend_name() == "gpu" and not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here; the JAX-only train test covers the GPU")
    args = ["train", "custom_neural_network", "--data-dir", str(folder), "--no-verify"]
    args += [*device, "--epochs", "1", "--batch-size", "16", "--plot", str(png)]
    args += ["--results", str(js), "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "torch (" in out and "jax (" in out and "test accuracy" in out
    # both times, and no verdict drawn from one timed run of each
    (wall,) = [line for line in out.splitlines() if line.startswith("wall time")]
    assert wall.count(" s") == 2 and "faster" not in out
    assert png.read_bytes()[:4] == b"\x89PNG"
    runs = json.loads(js.read_text())
    assert [r["framework"] for r in runs] == ["torch", "jax"]


def test_train_jax_checkpoint_and_resume(tmp_path, write_tiny_mnist, capsys):
    folder = write_tiny_mnist(tmp_path / "mnist", np.random.default_rng(1), 32, 16)
    ckpt = tmp_path / "run.safetensors"
    base = ["train", "mlp", "--config", "hidden_sizes=(8,)", "--data-dir", str(folder)]
    base += ["--no-verify", "--framework", "jax", "--device", backend_name(), "--no-progress"]
    base += ["--batch-size", "16", "--checkpoint", str(ckpt)]
    assert main([*base, "--epochs", "1", "--resume"]) == 0  # no file yet: a new run, said so
    out, err = capsys.readouterr()
    assert f"{ckpt} does not exist yet: starting a new run" in err
    assert ", 1 epoch, " in out and "1 epochs" not in out
    assert ckpt.exists()
    assert main([*base, "--epochs", "2", "--resume"]) == 0
    out, err = capsys.readouterr()
    assert "jax (" in out
    assert f"resuming from {ckpt} at epoch 1 (step 2), training to epoch 2" in err
    # other settings: refused before anything runs, with the difference and the fix
    assert main([*base, "--epochs", "3", "--resume", "--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "jaxnets train: error: --resume:" in err and "lr: saved 0.01, now 0.5" in err
    assert "Traceback" not in err
    with pytest.raises(SystemExit) as info:  # checkpoints are JAX-only
        main([*base, "--framework", "both"])
    assert info.value.code == 2
    assert "--checkpoint/--resume need --framework jax" in capsys.readouterr().err


def test_train_refuses_non_mnist_model(tmp_path, capsys):
    assert main(["train", "xor_net", "--data-dir", str(tmp_path), "--framework", "jax"]) == 2
    assert "examples/xor.py" in capsys.readouterr().err


def test_compare_has_step_times(capsys):
    assert main(["compare", "--model", "xor_net", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["torch_step_ms"] > 0 and row["jax_step_ms"] > 0
    assert main(["compare", "--model", "xor_net", "--format", "json", "--no-timing"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert "torch_step_ms" not in row


# ---------------------------------------------------------------- user mistakes: no tracebacks


def run_cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` -> ``(exit status, stdout, stderr)``; an argparse exit counts too."""
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["compare", "--model", "xor_net", "--batch-size", "0"], "--batch-size"),
        (["compare", "--model", "xor_net", "--batch-size", "-3"], "--batch-size"),
        (["compare", "--model", "xor_net", "--seed", "-1"], "--seed"),
        (["train", "lenet", "--batch-size", "0"], "--batch-size"),
        (["train", "lenet", "--epochs", "-1"], "--epochs"),
        (["train", "lenet", "--epochs", "0"], "--epochs"),  # no epoch: nothing to compare
        (["train", "lenet", "--lr", "-1"], "--lr"),
        (["train", "lenet", "--lr", "nan"], "--lr"),
        (["train", "lenet", "--test-limit", "0"], "--test-limit"),
        (["train", "lenet", "--limit", "-5"], "--limit"),
        (["bench", "--batch-size", "0"], "--batch-size"),
        (["bench", "--repeats", "0"], "--repeats"),
    ],
)
def test_bad_numbers_are_refused_while_parsing(capsys, argv, flag):
    status, _, err = run_cli(capsys, argv)
    assert status == 2
    assert f"jaxnets {argv[0]}: error: argument {flag}: expected a" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ("activation=gelu", "must be one of"),
        ("hidden=(64,)", "unknown config argument(s) ['hidden']"),
        ("hidden_sizes=64", "hidden_sizes must be"),
        ("foo=1", "it accepts: in_features, hidden_sizes"),
        ("novalue", "--config expects KEY=VALUE"),
    ],
)
def test_config_mistakes_are_clean_errors(capsys, config, words):
    status, _, err = run_cli(capsys, ["summary", "mlp", "--config", config])
    assert status == 2
    assert err.startswith("jaxnets summary: error: --config") and words in err


def test_resume_needs_a_checkpoint(capsys):
    status, _, err = run_cli(capsys, ["train", "lenet", "--framework", "jax", "--resume"])
    assert status == 2 and "usage: jaxnets train" in err
    assert "jaxnets train: error: --resume needs --checkpoint PATH" in err


def test_train_mistakes_found_after_parsing(tmp_path, write_tiny_mnist, capsys):
    folder = write_tiny_mnist(tmp_path / "mnist", np.random.default_rng(2), 32, 16)
    base = ["train", "mlp", "--config", "hidden_sizes=(8,)", "--data-dir", str(folder)]
    base += ["--no-verify", "--framework", "jax", "--no-progress"]
    status, _, err = run_cli(capsys, [*base, "--devices", "3", "--batch-size", "16"])
    assert status == 2 and "jaxnets train: error: asked for 3 devices" in err
    status, _, err = run_cli(capsys, [*base, "--limit", "10", "--batch-size", "16"])
    assert status == 2 and "--batch-size 16 is larger than the 10 training images" in err


def test_train_batch_must_split_over_the_devices(tmp_path, write_tiny_mnist):
    """8 simulated CPU devices (a fresh process: the count is fixed when JAX starts)."""
    folder = write_tiny_mnist(tmp_path / "mnist", np.random.default_rng(3), 64, 16)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    env["JAX_PLATFORMS"] = "cpu"
    argv = ["train", "mlp", "--data-dir", str(folder), "--no-verify", "--framework", "jax"]
    argv += ["--devices", "8", "--batch-size", "60", "--no-progress"]
    proc = subprocess.run(
        [sys.executable, "-m", "jaxnets.app.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "jaxnets train: error: --batch-size 60 does not divide by the 8 devices" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_compare_batch_minimum_follows_the_selected_models(capsys):
    status, _, err = run_cli(capsys, ["compare", "--model", "batchnorm_mlp", "--batch-size", "1"])
    assert status == 2 and "batchnorm_mlp trains on batch statistics" in err
    argv = ["compare", "--model", "xor_net", "--batch-size", "1", "--no-timing"]
    status, out, err = run_cli(capsys, argv)
    assert status == 0, err
    assert "1/1 models within tolerance" in out and "BatchNorm" not in out  # no BN footnote
    status, out, _ = run_cli(capsys, ["compare", "--model", "batchnorm_mlp", "--no-timing"])
    assert status == 0 and "in batchnorm_mlp the biases" in out and "stats: BatchNorm" in out


def test_compare_json_and_csv_carry_a_boolean(capsys):
    argv = ["compare", "--model", "xor_net", "--no-timing", "--format"]
    status, out, _ = run_cli(capsys, [*argv, "json"])
    (row,) = json.loads(out)
    assert status == 0 and row["ok"] is True
    status, out, _ = run_cli(capsys, [*argv, "csv"])
    head, line = out.strip().splitlines()
    assert dict(zip(head.split(","), line.split(","), strict=True))["ok"] == "true"


def test_compare_unknown_model_suggests_the_closest(capsys):
    status, _, err = run_cli(capsys, ["compare", "--model", "lenett"])
    assert status == 2 and "Did you mean 'lenet'?" in err
    status, _, err = run_cli(capsys, ["compare", "--model", "nothing*"])
    assert status == 2 and "no registered model matches 'nothing*'" in err


def test_convert_bad_files_are_clean_errors(tmp_path, capsys):
    t = torchref.create_model("lenet")
    good = tmp_path / "m.safetensors"
    save_torch_file(good, t)
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(good.read_bytes()[:1000])
    status, _, err = run_cli(
        capsys, ["convert", str(trunc), str(tmp_path / "o.pt"), "--model", "lenet"]
    )
    assert status == 2 and "jaxnets convert: error:" in err and "truncated" in err
    fake = tmp_path / "fake.safetensors"
    torch.save(t.state_dict(), fake)  # a .pt file renamed
    out_flax = str(tmp_path / "o.flax.safetensors")
    status, _, err = run_cli(capsys, ["convert", str(fake), out_flax, "--model", "lenet"])
    assert status == 2 and "is a torch.save file" in err and "rename it to .pt" in err
    assert "Traceback" not in err


def test_convert_key_picks_the_state_dict_of_a_training_checkpoint(tmp_path, capsys):
    t = torchref.create_model("xor_net")
    ckpt, out = tmp_path / "ckpt.pt", tmp_path / "x.flax.safetensors"
    torch.save({"model_state_dict": t.state_dict(), "epoch": 3}, ckpt)
    status, stdout, err = run_cli(capsys, ["convert", str(ckpt), str(out), "--model", "xor_net"])
    assert status == 0 and "(Flax layout)" in stdout, err  # the default finds it, as --help says
    out.unlink()
    odd = tmp_path / "odd.pt"  # an entry name no training loop uses: nothing to suggest
    torch.save({"net": t.state_dict(), "epoch": 3}, odd)
    status, _, err = run_cli(capsys, ["convert", str(odd), str(out), "--model", "xor_net"])
    assert status == 2 and "pass --key NAME naming the entry" in err and "key=" not in err
    argv = ["convert", str(ckpt), str(out), "--model", "xor_net", "--key", "model_state_dict"]
    status, stdout, err = run_cli(capsys, argv)
    assert status == 0, err
    assert "(Flax layout)" in stdout and out.exists()


def test_only_user_errors_lose_their_traceback(capsys, monkeypatch):
    from jaxnets.app import cli

    monkeypatch.setenv("JAXNETS_TRACEBACK", "1")
    with pytest.raises(cli.CommandError, match="--config"):
        main(["summary", "mlp", "--config", "foo=1"])
    monkeypatch.delenv("JAXNETS_TRACEBACK")

    def bug(args: object) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "cmd_summary", bug)
    with pytest.raises(ZeroDivisionError):
        main(["summary", "mlp"])


def test_broken_pipe_is_quiet(tmp_path):
    """``jaxnets summary lenet --params | head``: the reader is gone before the output."""
    with subprocess.Popen(
        [sys.executable, "-m", "jaxnets.app.cli", "summary", "lenet", "--params"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        proc.stdout.close()  # type: ignore[union-attr]
        err = proc.stderr.read().decode()  # type: ignore[union-attr]
        assert proc.wait(timeout=300) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_help_shows_defaults(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # one line per option: nothing wrapped
    status, out, _ = run_cli(capsys, ["compare", "--help"])
    assert status == 0
    for text in ("(default: float32)", "(default: 0)", "(default: 8)"):
        assert text in out
    status, out, _ = run_cli(capsys, ["train", "--help"])
    blocks = " ".join(out.split()).split(" --")  # one block per option: flag, metavar, help
    for flag, text in (("epochs", "3"), ("lr", "0.01"), ("batch-size", "64"), ("seed", "0")):
        block = next(b for b in blocks if b.startswith(f"{flag} "))
        assert f"(default: {text})" in block, block
    assert "JAXNETS_TRACEBACK" in run_cli(capsys, ["--help"])[1]


def test_progress_bars_only_on_a_terminal(tmp_path, write_tiny_mnist, capsys):
    from jaxnets.app.config import show_progress

    class Tty:
        def isatty(self) -> bool:
            return True

    assert show_progress(False, Tty()) and not show_progress(True, Tty())
    assert not show_progress(False)  # captured stderr is not a terminal
    folder = write_tiny_mnist(tmp_path / "mnist", np.random.default_rng(4), 32, 16)
    argv = ["train", "mlp", "--config", "hidden_sizes=(8,)", "--data-dir", str(folder)]
    argv += ["--no-verify", "--framework", "jax", "--epochs", "1", "--batch-size", "16"]
    status, _, err = run_cli(capsys, argv)  # no --no-progress
    assert status == 0 and "\r" not in err and "epoch 1/1" not in err


# ---------------------------------------------------------------- files: refused, not lost


def test_convert_refuses_unknown_suffixes_without_a_traceback(tmp_path, python_process):
    pt, npz, h5 = tmp_path / "lenet.pt", tmp_path / "x.npz", tmp_path / "w.h5"
    save_torch_file(pt, torchref.create_model("lenet"))
    proc = python_process("-m", "jaxnets.app.cli", "convert", str(pt), str(npz), "--model", "lenet")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "jaxnets convert: error:" in proc.stderr and "'.npz' is none it knows" in proc.stderr
    assert not npz.exists()
    h5.write_bytes(b"x")
    proc = python_process("-m", "jaxnets.app.cli", "convert", str(h5), str(pt), "--model", "lenet")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and ".h5" in proc.stderr


def test_convert_never_replaces_its_input_or_an_unnamed_file(tmp_path, capsys):
    pt = tmp_path / "lenet.pt"
    save_torch_file(pt, torchref.create_model("lenet"))
    before = pt.read_bytes()
    for argv in (["--overwrite"], []):  # the input is refused even with --overwrite
        status, _, err = run_cli(capsys, ["convert", str(pt), str(pt), "--model", "lenet", *argv])
        assert status == 2 and "is the input file too" in err and "Traceback" not in err
    assert pt.read_bytes() == before
    out = tmp_path / "out.flax.safetensors"
    out.write_bytes(b"precious")
    status, _, err = run_cli(capsys, ["convert", str(pt), str(out), "--model", "lenet"])
    assert status == 2 and f"{out} exists" in err and "--overwrite" in err
    assert out.read_bytes() == b"precious"
    assert (
        run_cli(capsys, ["convert", str(pt), str(out), "--model", "lenet", "--overwrite"])[0] == 0
    )
    assert checkpoint.read_metadata(out)["jaxnets_model"] == "lenet"


def test_train_plot_without_matplotlib_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # find_spec -> None: not installed
    argv = ["train", "mlp", "--framework", "jax", "--data-dir", str(tmp_path / "nowhere")]
    status, _, err = run_cli(capsys, [*argv, "--plot", "c.png"])
    assert status == 2 and "--plot c.png: plotting needs matplotlib" in err
    assert "pip install -e '.[plot]'" in err
    assert "nowhere" not in err  # refused before the data was looked for


def test_a_new_run_does_not_replace_a_checkpoint_unasked(tmp_path, write_tiny_mnist, capsys):
    folder = write_tiny_mnist(tmp_path / "mnist", np.random.default_rng(8), 16, 8)
    ckpt = tmp_path / "run.safetensors"
    ckpt.write_bytes(b"an earlier run")
    argv = ["train", "mlp", "--config", "hidden_sizes=(8,)", "--data-dir", str(folder)]
    argv += ["--no-verify", "--framework", "jax", "--batch-size", "16", "--checkpoint", str(ckpt)]
    status, _, err = run_cli(capsys, argv)
    assert status == 2 and f"{ckpt} exists" in err and "--overwrite" in err
    assert ckpt.read_bytes() == b"an earlier run"


def test_a_trained_run_exports_from_the_command_line(tmp_path, write_tiny_mnist, capsys):
    """``train --checkpoint`` then ``convert`` of the run file: its trained weights, with its
    model config read from the run, out in Flax layout or as a PyTorch training checkpoint
    whose model torch loads strictly (the weights read back with no --key)."""
    folder = write_tiny_mnist(tmp_path / "mnist", np.random.default_rng(9), 32, 8)
    run = tmp_path / "run.safetensors"
    argv = ["train", "mlp", "--config", "hidden_sizes=(8,)", "--data-dir", str(folder)]
    argv += ["--no-verify", "--framework", "jax", "--batch-size", "16", "--epochs", "1"]
    assert run_cli(capsys, [*argv, "--checkpoint", str(run)])[0] == 0
    twin = jaxnets.create_model("mlp", hidden_sizes=(8,))
    checkpoint.load_run_weights(run, twin)
    trained = convert.state_dict(twin)
    flax = tmp_path / "trained.flax.safetensors"
    status, out, err = run_cli(capsys, ["convert", str(run), str(flax), "--model", "mlp"])
    assert status == 0, err
    assert "(training run) ->" in out and "(Flax layout)" in out
    back = jaxnets.create_model("mlp", hidden_sizes=(8,), rngs=nnx.Rngs(3))
    checkpoint.load_flax(flax, back)
    pt = tmp_path / "trained.pt"
    status, out, err = run_cli(capsys, ["convert", str(run), str(pt), "--model", "mlp"])
    assert status == 0 and "PyTorch training checkpoint" in out, err
    weights = load_torch_file(pt)  # model_state_dict, found without --key
    t = torchref.create_model("mlp", hidden_sizes=(8,))
    t.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    for k, v in trained.items():
        np.testing.assert_array_equal(weights[k], v, err_msg=k)
        np.testing.assert_array_equal(convert.state_dict(back)[k], v, err_msg=k)
    argv = ["convert", str(run), str(tmp_path / "x.flax.safetensors"), "--model", "lenet"]
    status, _, err = run_cli(capsys, argv)
    assert status == 2 and "is a run of 'mlp', not 'lenet'. Fix: --model mlp" in err


@pytest.mark.parametrize(
    ("argv", "suggestion"),
    [
        (["compare", "--modle", "lenet"], "--modle (did you mean --model?)"),
        (["train", "lenet", "--epoch", "2", "--lrr", "0.1"], "--lrr (did you mean --lr?)"),
        (["bench", "--repaets=3"], "--repaets=3 (did you mean --repeats?)"),
    ],
)
def test_a_misspelled_option_gets_the_closest(capsys, argv, suggestion):
    status, _, err = run_cli(capsys, argv)
    assert status == 2 and suggestion in err and "Traceback" not in err


def test_list_answers_without_torch_or_weights(python_process):
    """``jaxnets list`` counts parameters from shapes (no weights are initialised) and does
    not load torch: it answers in about the time JAX takes to import."""
    code = (
        "import sys; from jaxnets.app.cli import main; main(['list']); "
        "print('torch loaded:', 'torch' in sys.modules)"
    )
    proc = python_process("-c", code)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "torch loaded: False" in proc.stdout
    assert "lenet" in proc.stdout and "81,194" in proc.stdout and "235,146" in proc.stdout


def test_compare_takes_several_model_globs(capsys):
    argv = ["compare", "--model", "xor_net", "--model", "simple_nn", "--no-timing"]
    status, out, _ = run_cli(capsys, [*argv, "--format", "json"])
    assert status == 0 and [r["model"] for r in json.loads(out)] == ["simple_nn", "xor_net"]


def test_port_never_writes_over_the_model_or_an_unnamed_file(tmp_path, capsys):
    """``jaxnets port model.py:Net -o model.py`` would replace the model's own source: refused
    before any work, as an existing ``-o`` file is without ``--overwrite``."""
    src = tmp_path / "model.py"
    src.write_text("import torch\n")
    twin = tmp_path / "twin.py"
    twin.write_text("# mine\n")
    argv = ["port", f"{src}:Net", "--input-shape", "2,3", "-o"]
    status, _, err = run_cli(capsys, [*argv, str(src), "--overwrite"])
    assert status == 2 and "is the input file too" in err and "Traceback" not in err
    status, _, err = run_cli(capsys, [*argv, str(twin)])
    assert status == 2 and f"{twin} exists" in err and "--overwrite" in err
    assert src.read_text() == "import torch\n" and twin.read_text() == "# mine\n"
