"""``jaxnets port``: torch models become Flax NNX source that passes the parity harness.

* Every registered tutorial model, from ``torchref/models.py`` as written, ports with no
  hand-written code and passes the proof (float64 and float32, eval and train mode: outputs,
  a loss, every gradient, BatchNorm's buffers). Its generated source is kept as a golden file
  (``parity_tests/golden/port/NAME.py``): a change in the generator shows as a diff there.
* The models of ``port_models.py``, written as a PyTorch user would and not in the registry,
  cover the vocabulary (layers, functional forms, containers, nested modules, raw parameters)
  and the layout rewrites (flatten, ``cat`` on channels, ``mean`` over space, permutes).
* What is outside the vocabulary is refused with one line naming it and the user's source
  line, exit status 2, and no file written.

To accept an intended change of the generated source, regenerate the golden files:
``JAXNETS_ACCEPT_GOLDEN=1 pytest parity_tests/test_port.py -k golden`` (then read the diff).
"""

from __future__ import annotations

import difflib
import functools
import os
from pathlib import Path

import jax
import numpy as np
import pytest
import torch
from flax import nnx

import torchref.models as torch_models
from jaxnets import convert
from jaxnets.app.cli import main
from jaxnets.registry import get_model_spec
from jaxnets.testing import assert_trees_all_close
from jaxnets.tolerances import tolerance
from torchref.port import PortError, port, port_source
from torchref.port.proof import load_twin, prove

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden" / "port"
USER_MODELS = HERE / "port_models.py"
ACCEPT = os.environ.get("JAXNETS_ACCEPT_GOLDEN", "") not in ("", "0")
BATCH = 4  # examples in the captured and compared batch (BatchNorm trains on 2 or more)

SEEDS = torch_models.list_models()

# name of the golden file -> (class in port_models.py, the example batch's torch shape); a
# shape of ints in [0, 50) for token ids
TOKENS = "tokens"
USER_CASES: dict[str, tuple[str, tuple[int, ...] | str]] = {
    "small_conv_net": ("SmallConvNet", (BATCH, 3, 8, 8)),
    "tiny_resnet": ("TinyResNet", (BATCH, 1, 8, 8)),
    "inception": ("Inception", (BATCH, 3, 6, 6)),
    "text_classifier": ("TextClassifier", TOKENS),
    "signal_net": ("SignalNet", (BATCH, 2, 12)),
    "channel_mixer": ("ChannelMixer", (BATCH, 6, 5, 5)),
    "gated_mlp": ("GatedMLP", (BATCH, 3, 4)),
    "activation_zoo": ("ActivationZoo", (BATCH, 10)),
    "deep_narrow": ("DeepNarrow", (BATCH, 8)),
    "pool_zoo": ("PoolZoo", (BATCH, 2, 12, 12)),
    "channel_attention": ("ChannelAttention", (BATCH, 3, 7, 7)),
    "tensor_ops": ("TensorOps", (BATCH, 2, 8)),
}


def _check_golden(stem: str, source: str) -> None:
    path = GOLDEN / f"{stem}.py"
    if ACCEPT:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        return
    regenerate = (
        "If the change is intended, regenerate the golden files with "
        "JAXNETS_ACCEPT_GOLDEN=1 pytest parity_tests/test_port.py -k golden, and review the diff"
    )
    assert path.exists(), f"no golden file {path.relative_to(HERE.parent)}. {regenerate}"
    expected = path.read_text()
    if source != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(True), source.splitlines(True), str(path), "generated"
            )
        )
        pytest.fail(
            f"the generated source of {stem} differs from its golden file:\n{diff}\n{regenerate}"
        )


def _seed_model(name: str) -> tuple[torch.nn.Module, np.ndarray]:
    torch.manual_seed(0)
    model = torch_models.create_model(name)
    shape = get_model_spec(name).torch_input_shape(BATCH)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    return model, x


@functools.cache
def _seed_source(name: str) -> str:
    model, x = _seed_model(name)
    return port_source(model, x)


@pytest.mark.parametrize("name", SEEDS)
def test_seed_model_source_matches_golden(name: str) -> None:
    _check_golden(name, _seed_source(name))


@pytest.mark.parametrize("name", SEEDS)
def test_seed_model_twin_passes_parity(name: str) -> None:
    model, x = _seed_model(name)
    verdict = prove(model, _seed_source(name), x)
    assert verdict.ok, str(verdict)
    assert [(c.dtype, c.mode) for c in verdict.checks] == [
        ("float64", "eval"),
        ("float64", "train"),
        ("float32", "eval"),
        ("float32", "train"),
    ]
    # every parameter's gradient was compared, in every check
    n_params = len(list(model.parameters()))
    for c in verdict.checks:
        assert sum(k.kind == "grad" for k in c.report.comparisons) == n_params, str(verdict)


def _user_example(case: tuple[str, tuple[int, ...] | str]) -> np.ndarray:
    rng = np.random.default_rng(0)
    if case[1] == TOKENS:
        return rng.integers(0, 50, size=(BATCH, 7))  # int64 token ids
    return rng.standard_normal(case[1]).astype(np.float32)


@pytest.mark.parametrize("stem", sorted(USER_CASES))
def test_user_model_ports_matches_golden_and_passes(stem: str) -> None:
    cls, _ = USER_CASES[stem]
    torch.manual_seed(0)
    result = port(f"{USER_MODELS}:{cls}", example=_user_example(USER_CASES[stem]))
    _check_golden(stem, result.source)
    assert result.ok, str(result.verdict)


# --- what the generated twins are -----------------------------------------------------------


def test_generated_twin_loads_torch_weights_with_the_converter() -> None:
    # the user's path: build the generated class, load torch's state dict, run it
    model, x = _seed_model("lenet")
    cls = load_twin(_seed_source("lenet"), "LeNet")
    # built abstract (no initialiser runs: torch's weights replace them), then filled
    twin = nnx.eval_shape(lambda: cls(rngs=nnx.Rngs(0)))
    convert.load_state_dict(twin, {k: v.numpy() for k, v in model.state_dict().items()})
    out = np.asarray(nnx.jit(lambda m, x: m(x))(twin, x.transpose(0, 2, 3, 1)))
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    tol = tolerance(np.float32)
    assert_trees_all_close(out, expected, rtol=tol.rtol, atol=tol.atol)


@pytest.mark.parametrize(("name", "hand_written"), [("lenet", "lenet"), ("mlp", "mlp")])
def test_generated_twin_computes_what_the_hand_written_one_does(
    name: str, hand_written: str
) -> None:
    # The same jaxpr, primitive for primitive (fused conv+pool form included): the generated
    # twins train as fast as the hand-written ones because they are the same program.
    import jaxnets

    spec = get_model_spec(name)
    cls = load_twin(_seed_source(name), type(torch_models.create_model(name)).__name__)
    generated = cls(rngs=nnx.Rngs(0))
    twin = jaxnets.create_model(hand_written, rngs=nnx.Rngs(0))
    x = np.zeros(spec.flax_input_shape(BATCH), np.float32)

    def program(m: nnx.Module) -> str:
        graphdef, state = nnx.split(m)

        def loss(state: nnx.State, x: jax.Array) -> jax.Array:
            return nnx.merge(graphdef, state)(x).sum()

        return str(jax.make_jaxpr(jax.value_and_grad(loss))(state, x))

    assert program(generated) == program(twin)


# --- refusals ---------------------------------------------------------------------------------


def test_unsupported_layer_is_refused_in_one_line_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "twin.py"
    argv = ["port", f"{USER_MODELS}:Unsupported", "--input-shape", "2,5,3", "-o", str(out)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    line = next(
        i for i, t in enumerate(USER_MODELS.read_text().splitlines(), 1) if "self.lstm(x)" in t
    )
    assert lines[0].startswith(
        f"jaxnets port: error: nn.LSTM (lstm) at port_models.py:{line} (x, _ = self.lstm(x))"
    ), lines[0]
    assert "Traceback" not in captured.err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_unsupported_operation_is_refused_with_its_source_line(tmp_path: Path) -> None:
    src = tmp_path / "cumulative.py"
    src.write_text(
        "import torch\n"
        "import torch.nn as nn\n"
        "\n"
        "\n"
        "class Cumulative(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(4, 4)\n"
        "\n"
        "    def forward(self, x):\n"
        "        return torch.cumsum(self.fc(x), dim=1)\n"
    )
    with pytest.raises(PortError) as err:
        port(f"{src}:Cumulative", input_shape=(2, 4), check=False)
    assert str(err.value) == (
        "torch operation cumsum at cumulative.py:11 (return torch.cumsum(self.fc(x), dim=1)) "
        "is outside the vocabulary of jaxnets port"
    )


def test_forward_that_branches_on_training_is_refused(tmp_path: Path) -> None:
    # the twin has one __call__; a forward that differs by mode would be half ported
    src = tmp_path / "noisy.py"
    src.write_text(
        "import torch\n"
        "import torch.nn as nn\n"
        "\n"
        "\n"
        "class Noisy(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(4, 3)\n"
        "\n"
        "    def forward(self, x):\n"
        "        if self.training:\n"
        "            x = x + 0.1 * torch.tanh(x)\n"
        "        return self.fc(x)\n"
    )
    with pytest.raises(PortError, match=r"in eval mode than in training mode at noisy.py:12 "):
        port(f"{src}:Noisy", input_shape=(2, 4), check=False)


# --- the command ------------------------------------------------------------------------------


def test_command_writes_the_twin_and_the_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "xor_twin.py"
    models = Path(torch_models.__file__)
    assert main(["port", f"{models}:XORNet", "--input-shape", "4,2", "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "XORNet: parity holds, 4 of 4 checks" in stdout
    assert f"wrote {out} (class XORNet)" in stdout
    assert out.read_text() == (GOLDEN / "xor_net.py").read_text()


def test_command_takes_an_example_batch_of_token_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens = tmp_path / "tokens.npy"
    np.save(tokens, _user_example(USER_CASES["text_classifier"]))
    argv = ["port", f"{USER_MODELS}:TextClassifier", "--example", str(tokens), "--no-check"]
    assert main(argv) == 0
    assert capsys.readouterr().out == (GOLDEN / "text_classifier.py").read_text()


def test_failed_proof_prints_the_layer_report_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a generator that got the activation wrong: the proof must catch it, say where, and
    # write nothing
    import torchref.port as port_pkg

    real = port_pkg.port_source

    def wrong(*args, **kwargs) -> str:
        return real(*args, **kwargs).replace("jax.nn.relu(self.layer1(x))", "self.layer1(x)")

    monkeypatch.setattr(port_pkg, "port_source", wrong)
    out = tmp_path / "twin.py"
    models = Path(torch_models.__file__)
    assert main(["port", f"{models}:XORNet", "--input-shape", "8,2", "-o", str(out)]) == 1
    stdout = capsys.readouterr().out
    assert "XORNet: parity FAILED, 4 of 4 checks" in stdout
    assert "first divergence" in stdout  # explain's layer-by-layer report
    assert "the twin was not written" in stdout
    assert not out.exists()
