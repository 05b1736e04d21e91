"""The ``jaxnets`` command: summary, convert, train and the timing columns of compare."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import jaxnets
import torchref
from jaxnets import checkpoint
from jaxnets.cli import main
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
    assert png.read_bytes()[:4] == b"\x89PNG"
    runs = json.loads(js.read_text())
    assert [r["framework"] for r in runs] == ["torch", "jax"]


def test_train_jax_checkpoint_and_resume(tmp_path, write_tiny_mnist, capsys):
    folder = write_tiny_mnist(tmp_path / "mnist", np.random.default_rng(1), 32, 16)
    ckpt = tmp_path / "run.safetensors"
    base = ["train", "mlp", "--config", "hidden_sizes=(8,)", "--data-dir", str(folder)]
    base += ["--no-verify", "--framework", "jax", "--device", backend_name(), "--no-progress"]
    base += ["--batch-size", "16", "--checkpoint", str(ckpt)]
    assert main([*base, "--epochs", "1"]) == 0
    assert ckpt.exists()
    assert main([*base, "--epochs", "2", "--resume"]) == 0
    assert "jax (" in capsys.readouterr().out
    assert main([*base, "--framework", "both"]) == 2  # checkpoints are JAX-only


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
