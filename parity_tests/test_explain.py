"""The layer-by-layer divergence report: capture, the table, one planted fault per cause, and
the registry of diagnoses by layer type.

Each fault is planted in a COPY of a twin (an instance's attribute, an instance's class, or an
unregistered subclass; registered classes are never touched), and the report must name the
layer where the twin first departs from torch AND the cause, as ``confirmed`` (recomputing
the layer under that fault reproduces the twin within tolerance). A wrong layer, a wrong top
cause, or a second confirmed cause from the list fails the test.

Small models and batches, and twins built without running their initialisers
(:func:`_uninitialised`): ``explain`` copies every weight from torch first, and XLA compiling
one random initialiser per parameter shape costs about a second of CPU each (10 s for LeNet).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn as tnn
from flax import nnx

import jaxnets
import torchref
from jaxnets import nn as jnn
from jaxnets.debug import intercept
from jaxnets.models.lenet import LeNet
from jaxnets.nn import BatchNorm1d, Linear, max_pool2d
from jaxnets.tolerances import TF32_RELATIVE_ERROR
from torchref.bridge import torch_to_flax
from torchref.explain import (
    DIAGNOSES,
    Diagnosis,
    ExplainReport,
    diagnoses_for,
    explain,
    register_diagnosis,
    tf32_round,
)
from torchref.explain.arrays import as_float64

JIT = True  # one XLA program per explain call: cheaper than op-by-op compiles for one use

PLANTED = {
    "linear_kernel_untransposed",
    "weight_reshaped",
    "conv_padding",
    "flatten_nhwc",
    "bn_momentum",
    "bn_biased_running_var",
    "tf32",
    "gelu_approximation",
    "layernorm_eps",
    "conv_padding_mode",
    "pool_padding",
    "pool_pad_value",
    "pool_ceil_mode",
    "pool_stride",
    "pool_count_include_pad",
    "adaptive_windows",
    "dropout_mode",
}


def _uninitialised(make, rng: np.random.Generator | None = None):
    """``make()``'s module without running an initialiser: variables zero (or, with ``rng``,
    standard normal floats).

    For twins whose weights are all copied from torch before use (``explain`` does that).
    """

    def fill(s):
        if rng is None or not np.issubdtype(s.dtype, np.floating):
            return jax.device_put(np.zeros(s.shape, s.dtype))
        return jax.device_put(rng.standard_normal(s.shape).astype(s.dtype))

    graphdef, state = nnx.split(nnx.eval_shape(make))
    return nnx.merge(graphdef, jax.tree.map(fill, state))


def _pair(name: str, dtype: str = "float64", seed: int = 0, **config):
    """A registered torch model from ``seed`` and its (uninitialised) twin."""
    tdtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    torch.manual_seed(seed)
    return (
        torchref.create_model(name, dtype=tdtype, **config),
        _uninitialised(lambda: jaxnets.create_model(name, param_dtype=jnp.dtype(dtype), **config)),
    )


def _batch(name: str, n: int, dtype: str = "float64", seed: int = 0, **config):
    spec = jaxnets.get_model_spec(name)
    return spec.example_batch(n, np.random.default_rng(seed), dtype=np.dtype(dtype), **config)


def _assert_diagnosis(report: ExplainReport, layer: str, cause: str, kind: str = "forward"):
    """The first divergence is ``layer``, its top cause is ``cause``, confirmed, and no other
    planted cause is confirmed there."""
    text = str(report)
    assert not report.ok, text
    assert report.first_row is not None, text
    assert report.first_row.name == layer, text
    assert report.first_kind == kind, text
    assert report.causes, f"no cause named for {layer}:\n{text}"
    top = report.causes[0]
    assert (top.key, top.status) == (cause, "confirmed"), text
    others = {c.key for c in report.causes[1:] if c.status == "confirmed"} & PLANTED
    assert not others, text
    assert "<-- first divergence" in text and cause in text, text


# --- a small model outside the registry: Linear, LayerNorm, GELU (a module in torch, a
# --- plain function in the twin), Linear.


class TorchLNGelu(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = tnn.Linear(6, 8)
        self.ln = tnn.LayerNorm(8)
        self.act = tnn.GELU()
        self.fc2 = tnn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.act(self.ln(self.fc1(x))))


class FlaxLNGelu(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs, param_dtype=jnp.float64) -> None:
        kw = dict(rngs=rngs, param_dtype=param_dtype)
        self.fc1 = Linear(6, 8, **kw)
        self.ln = nnx.LayerNorm(8, epsilon=1e-5, use_fast_variance=False, **kw)
        self.act = functools.partial(jax.nn.gelu, approximate=False)
        self.fc2 = Linear(8, 3, **kw)

    def __call__(self, x):
        return self.fc2(self.act(self.ln(self.fc1(x))))


@pytest.fixture
def ln_gelu(seed: int):
    torch.manual_seed(seed)
    x = np.random.default_rng(seed).standard_normal((4, 6))
    twin = _uninitialised(lambda: FlaxLNGelu(rngs=nnx.Rngs(seed)))
    return TorchLNGelu().double(), twin, x, np.array([0, 1, 2, 1])


# --- capture -------------------------------------------------------------------------------


def test_intercept_records_every_layer_eagerly_and_under_jit_and_restores_classes() -> None:
    model = _uninitialised(
        lambda: jaxnets.create_model("mlp", in_features=4, hidden_sizes=(5,), out_features=3),
        np.random.default_rng(0),
    )
    classes = {p: type(m) for p, m in nnx.iter_modules(model)}
    x = jnp.ones((2, 4))
    out, records = intercept.capture(model, x)
    assert list(records) == ["layers.0", "layers.1", ""]
    assert records["layers.0"].output.shape == (2, 5)
    np.testing.assert_array_equal(records[""].output, out)
    assert {p: type(m) for p, m in nnx.iter_modules(model)} == classes

    @nnx.jit
    def jitted(m, x):
        with intercept.intercept(m) as rec:
            m(x)
        return {r.name: r.output for r in rec.records}

    np.testing.assert_allclose(jitted(model, x)["layers.0"], records["layers.0"].output)
    assert {p: type(m) for p, m in nnx.iter_modules(model)} == classes

    tr = intercept.trace(model, x, loss_fn=lambda o: jnp.sum(o**2), jit=False)
    np.testing.assert_array_equal(tr.output_grads["layers.1"], 2 * tr.output)  # exact: 2 * o
    assert tr.order == ["layers.0", "layers.1", ""]


def test_capture_until_error_names_the_module_that_raised() -> None:
    model = _uninitialised(lambda: jaxnets.create_model("xor_net"))
    # a layer expecting 4 features where it gets 5
    model.layer2 = _uninitialised(lambda: jaxnets.nn.Linear(4, 1, rngs=nnx.Rngs(0)))
    records, error_at, exc = intercept.capture_until_error(model, jnp.ones((2, 2)))
    assert list(records) == ["layer1", "layer2"] and error_at == "layer2" and exc is not None
    assert records["layer2"].output is None and records["layer2"].input.shape == (2, 5)


# --- the report ------------------------------------------------------------------------------


def test_a_faithful_twin_reports_every_layer_ok(ln_gelu) -> None:
    t, f, x, y = ln_gelu
    report = explain(t, f, x, y, name="ln_gelu", jit=JIT)
    assert report.ok and report.first is None, str(report)
    assert [r.label for r in report.rows] == ["fc1", "ln", "act", "fc2", "(model)"]
    act = report.row("act")
    assert act.flax_type == "(inferred)" and act.output is not None and act.output.ok
    for row in report.rows:
        assert row.status == "ok", str(report)
        if row.flax_type != "(inferred)":
            assert row.output_grad is not None and row.output_grad.ok
    assert report.loss is not None and report.loss.ok
    assert "OK" in str(report).splitlines()[0]
    rows = report.to_rows()
    assert [r["layer"] for r in rows] == ["fc1", "ln", "act", "fc2", "(model)"]
    assert all(r["output_used"] <= 1 for r in rows)
    assert rows[0]["param_grad_name"] in ("fc1.weight", "fc1.bias")  # the worst of the two


def test_linear_kernel_not_transposed(seed: int) -> None:
    t, f = _pair("advanced_nn", seed=seed)
    x, y = _batch("advanced_nn", 4, seed=seed)
    torch_to_flax(t, f)
    f.fc2.kernel[...] = jnp.asarray(t.fc2.weight.detach().numpy())  # a loader without .T
    report = explain(t, f, x, y, loss="mse", copy_weights=False, jit=JIT)
    _assert_diagnosis(report, "fc2", "linear_kernel_untransposed")
    assert report.row("fc1").status == "GRAD"  # upstream: only its gradient differs
    assert report.row("fc2").input.ok and not report.row("fc2").output.ok


@pytest.mark.parametrize(("layer", "twin_shape"), [("fc1", (576, 120)), ("conv2", (3, 3, 6, 16))])
def test_weight_reshaped_instead_of_transposed(seed: int, layer: str, twin_shape) -> None:
    """A loader that reshapes torch's weight to the twin's shape instead of transposing it
    (``weight.reshape(in, out)``): named as such, for a Linear and for a Conv2d."""
    t, f = _pair("lenet", seed=seed)
    x, y = _batch("lenet", 2, seed=seed)
    torch_to_flax(t, f)
    weight = getattr(t, layer).weight.detach().numpy()
    getattr(f, layer).kernel[...] = jnp.asarray(weight.reshape(twin_shape))
    report = explain(t, f, x, y, layout="image", copy_weights=False, jit=JIT)
    _assert_diagnosis(report, layer, "weight_reshaped")
    assert "transpose, do not reshape" in report.causes[0].fix


def test_conv_padding_same_against_torch_zero(seed: int) -> None:
    t, f = _pair("lenet", seed=seed)
    # nnx.Conv's default padding is 'SAME'
    f.conv1 = _uninitialised(
        lambda: nnx.Conv(1, 6, (3, 3), rngs=nnx.Rngs(0), param_dtype=jnp.float64)
    )
    x, y = _batch("lenet", 2, seed=seed)
    report = explain(t, f, x, y, layout="image", jit=JIT)
    _assert_diagnosis(report, "conv1", "conv_padding")
    conv1 = report.row("conv1")
    assert (conv1.flax_shape, conv1.torch_shape) == ((2, 6, 32, 32), (2, 6, 30, 30))
    # the twin then crashes in fc1 (784 features for 576): reported there, not diagnosed as a
    # second fault, since fc1's input shape already differs
    assert report.error_at == "fc1" and report.flax_error is not None
    assert report.row("fc1").status == "RAISED" and not report.row("fc1").layer_bad
    assert report.row("conv2").status == "INPUT" and not report.row("conv2").layer_bad


class _NHWCFlattenLeNet(LeNet):
    """LeNet flattening NHWC activations directly: fc1 sees (H, W, C) order."""

    def __call__(self, x):
        x = max_pool2d(jax.nn.relu(self.conv1(x)), 2)
        x = max_pool2d(jax.nn.relu(self.conv2(x)), 2)
        x = x.reshape(x.shape[0], -1)  # the fault: no transpose to NCHW first
        x = jax.nn.relu(self.fc1(x))
        x = jax.nn.relu(self.fc2(x))
        return self.fc3(x)


def test_flatten_in_nhwc_order(seed: int) -> None:
    t, f = _pair("lenet", seed=seed)
    f.__class__ = _NHWCFlattenLeNet  # this instance only
    x, y = _batch("lenet", 2, seed=seed)
    report = explain(t, f, x, y, layout="image", jit=JIT)
    _assert_diagnosis(report, "fc1", "flatten_nhwc")
    assert report.row("conv2").output.ok and report.row("fc1").status == "INPUT"
    assert "(16, 6, 6)" in report.causes[0].evidence


_BN_CFG = dict(in_features=6, hidden_size1=5, hidden_size2=4, output_size=3)


def test_batchnorm_momentum_m_instead_of_one_minus_m(seed: int) -> None:
    t, f = _pair("batchnorm_mlp", seed=seed, **_BN_CFG)
    f.bn1.torch_momentum = 0.9  # Flax's convention (1 - m) handed to a torch-convention layer
    x, y = _batch("batchnorm_mlp", 5, seed=seed, **_BN_CFG)
    report = explain(t, f, x, y, mode="train", jit=JIT)
    _assert_diagnosis(report, "bn1", "bn_momentum", kind="buffers")
    assert all(r.output is None or r.output.ok for r in report.rows)  # forward agrees
    assert report.row("bn2").status == "ok"


class _BiasedVarBatchNorm(BatchNorm1d):
    """BatchNorm1d with plain nnx.BatchNorm statistics: biased running variance."""

    def __call__(self, x, use_running_average=None, *, mask=None):
        use_running = (
            self.use_running_average if use_running_average is None else use_running_average
        )
        out = nnx.BatchNorm.__call__(self, x, use_running_average)
        if not use_running:
            self.num_batches_tracked[...] = self.num_batches_tracked[...] + 1
        return out


def test_batchnorm_biased_running_variance(seed: int) -> None:
    t, f = _pair("batchnorm_mlp", seed=seed, **_BN_CFG)
    f.bn2 = _uninitialised(
        lambda: _BiasedVarBatchNorm(4, rngs=nnx.Rngs(0), param_dtype=jnp.float64)
    )
    x, y = _batch("batchnorm_mlp", 5, seed=seed, **_BN_CFG)
    report = explain(t, f, x, y, mode="train", jit=JIT)
    _assert_diagnosis(report, "bn2", "bn_biased_running_var", kind="buffers")
    bn2 = report.row("bn2")
    assert bn2.buffers["bn2.running_mean"].ok and not bn2.buffers["bn2.running_var"].ok


def _tf32_jax(a: jax.Array) -> jax.Array:
    bits = jax.lax.bitcast_convert_type(a, jnp.uint32)
    bits = (bits + jnp.uint32(0xFFF) + ((bits >> 13) & 1)) & jnp.uint32(0xFFFFE000)
    return jax.lax.bitcast_convert_type(bits, jnp.float32)


class _TF32Linear(nnx.Linear):
    """What a GPU does to a float32 Linear at JAX's default precision: TF32 operands."""

    def __call__(self, x):
        y = jnp.dot(_tf32_jax(x), _tf32_jax(self.kernel[...]), precision="highest")
        return y + self.bias[...]


def test_tf32_matmul_simulated_on_cpu(seed: int) -> None:
    t, f = _pair("advanced_nn", "float32", seed=seed)
    f.fc1.__class__ = _TF32Linear  # this instance only
    x, y = _batch("advanced_nn", 4, "float32", seed=seed)
    report = explain(t, f, x, y, loss="mse", jit=JIT)
    _assert_diagnosis(report, "fc1", "tf32")
    lo, hi = TF32_RELATIVE_ERROR
    assert lo < report.row("fc1").output.max_rel < hi  # TF32-sized, not a formula error


def test_tf32_round_is_round_to_nearest_even_on_ten_mantissa_bits() -> None:
    x = np.array([1 + 2**-11, 1 + 3 * 2**-11, 1 + 2**-10, -2.5, np.inf], np.float32)
    np.testing.assert_array_equal(tf32_round(x), [1, 1 + 2**-9, 1 + 2**-10, -2.5, np.inf])
    np.testing.assert_array_equal(np.asarray(_tf32_jax(jnp.asarray(x))), tf32_round(x))


def test_gelu_tanh_approximation(ln_gelu) -> None:
    t, f, x, y = ln_gelu
    f.act = jax.nn.gelu  # jax's default is the tanh approximation; torch's nn.GELU() is erf
    report = explain(t, f, x, y, jit=JIT)
    _assert_diagnosis(report, "act", "gelu_approximation")
    assert report.row("fc2").status == "INPUT"  # inherits; not blamed


def test_layernorm_eps(ln_gelu, seed: int) -> None:
    t, f, x, y = ln_gelu
    f.ln = _uninitialised(lambda: nnx.LayerNorm(8, rngs=nnx.Rngs(0), param_dtype=jnp.float64))
    assert f.ln.epsilon == 1e-6  # Flax's default
    report = explain(t, f, x, y, jit=JIT)
    _assert_diagnosis(report, "ln", "layernorm_eps")
    assert "1e-06" in report.causes[0].evidence and "1e-05" in report.causes[0].evidence


def test_the_table_names_every_column_and_marks_the_first_divergence(ln_gelu) -> None:
    t, f, x, y = ln_gelu
    f.act = jax.nn.gelu
    text = str(explain(t, f, x, y, jit=JIT))
    lines = text.splitlines()
    assert "FAILED" in lines[0] and "first divergence: act (GELU)" in lines[1]
    head = next(line for line in lines if line.lstrip().startswith("#"))
    for col in ("layer", "torch", "twin", "in", "out", "max abs", "max rel", "dL/dout"):
        assert col in head
    marked = [line for line in lines if "<-- first divergence" in line]
    assert len(marked) == 1 and " act " in marked[0]
    assert "why act?" in text and "fix: jax.nn.gelu(x, approximate=False)" in text


def test_cli_compare_explain_prints_a_layer_report(capsys) -> None:
    from jaxnets.app.cli import main

    assert main(["compare", "--model", "xor_net", "--explain", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "explain xor_net [float32" in out and "layer1" in out and "layer2" in out


@pytest.mark.gpu
def test_tf32_on_a_gpu_is_named(seed: int) -> None:
    """JAX's default float32 matmul precision on a GPU is TF32: the report must say so."""
    t, f = _pair("simple_neural_network", "float32", seed=seed)
    x, y = _batch("simple_neural_network", 8, "float32", seed=seed)
    with jax.default_matmul_precision("default"):
        report = explain(t, f, x, y)
    assert report.environment, str(report)
    assert report.first_row is not None and report.first_row.name == "fc1", str(report)
    assert report.causes[0].key == "tf32", str(report)
    assert report.causes[0].status in ("confirmed", "likely"), str(report)


# --- dropout: the masks differ by design ------------------------------------------------------


class _TorchDrop(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = tnn.Linear(6, 8)
        self.drop = tnn.Dropout(0.5)
        self.fc2 = tnn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.drop(self.fc1(x)))


class _FlaxDrop(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs) -> None:
        self.fc1 = Linear(6, 8, rngs=rngs, param_dtype=jnp.float64)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.fc2 = Linear(8, 3, rngs=rngs, param_dtype=jnp.float64)

    def __call__(self, x):
        return self.fc2(self.drop(self.fc1(x)))


def test_dropout_in_training_mode_is_named_as_the_cause(seed: int) -> None:
    # a correct twin with dropout fails a training-mode comparison: each framework draws its
    # own mask. The report says so at the dropout layer, and eval mode agrees.
    torch.manual_seed(seed)
    t, f = _TorchDrop().double(), _FlaxDrop(rngs=nnx.Rngs(seed))
    x, y = np.random.default_rng(seed).standard_normal((8, 6)), np.arange(8) % 3
    report = explain(t, f, x, y, loss="cross_entropy", mode="train", jit=JIT)
    assert report.first_row is not None and report.first_row.name == "drop", str(report)
    assert report.causes[0].key == "dropout_random", str(report)
    assert "mode='eval'" in report.causes[0].fix
    assert explain(t, f, x, y, loss="cross_entropy", mode="eval", jit=JIT).ok


# --- the pools, padding modes and dropout of jaxnets.nn: one planted fault each ----------------


class _TorchPools(tnn.Module):
    """14x14 images through a reflect-padded conv, a ceil-mode max pool, an average pool that
    does not count its padding, an adaptive pool over a size that does not divide, dropout."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = tnn.Conv2d(1, 3, 3, padding=1, padding_mode="reflect")
        self.pool = tnn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)  # 14 -> 8
        self.avg = tnn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        self.adapt = tnn.AdaptiveAvgPool2d((3, 3))  # 5 -> 3: windows [0, 2), [1, 4), [3, 5)
        self.drop = tnn.Dropout(0.5)
        self.fc = tnn.Linear(27, 4)

    def forward(self, x):
        x = self.adapt(self.avg(self.pool(self.conv(x))))
        return self.fc(self.drop(x.flatten(1)))


class _FlaxPools(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs) -> None:
        kw = dict(rngs=rngs, param_dtype=jnp.float64)
        self.conv = jnn.Conv2d(1, 3, 3, padding=1, padding_mode="reflect", **kw)
        self.pool = jnn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.avg = jnn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        self.adapt = jnn.AdaptiveAvgPool2d((3, 3))
        self.drop = jnn.Dropout(0.5, rngs=rngs)
        self.fc = jnn.Linear(27, 4, **kw)

    def __call__(self, x):
        x = self.adapt(self.avg(self.pool(self.conv(x))))
        x = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)  # NHWC -> torch's (C, H, W) order
        return self.fc(self.drop(x))


class _ZeroPaddedMaxPool(jnn.MaxPool2d):
    """A hand port padding with zeros before a max pool (torch's padding is -inf)."""

    def __call__(self, x):
        x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        return jnn.functional.max_pool2d(x, 3, 2, 0, ceil_mode=True)


@pytest.fixture
def pools(seed: int):
    torch.manual_seed(seed)
    t = _TorchPools().double().eval()
    f = _FlaxPools(rngs=nnx.Rngs(seed))  # (a dropout key: not for _uninitialised)
    f.eval()
    x = np.random.default_rng(seed).standard_normal((2, 1, 14, 14))
    return t, f, x, np.array([0, 3])


def test_the_pools_twin_agrees(pools) -> None:
    t, f, x, y = pools
    report = explain(t, f, x, y, layout="image", jit=JIT)
    assert report.ok, str(report)


@pytest.mark.parametrize(
    ("layer", "twin", "cause"),
    [
        ("conv", lambda r: jnn.Conv2d(1, 3, 3, padding=1, rngs=r, param_dtype=jnp.float64),
         "conv_padding_mode"),
        ("pool", lambda r: jnn.MaxPool2d(3, stride=2, ceil_mode=True), "pool_padding"),
        ("pool", lambda r: _ZeroPaddedMaxPool(3, stride=2, padding=1, ceil_mode=True),
         "pool_pad_value"),
        ("pool", lambda r: jnn.MaxPool2d(3, stride=2, padding=1), "pool_ceil_mode"),
        ("pool", lambda r: jnn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), "pool_stride"),
        ("avg", lambda r: jnn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True),
         "pool_count_include_pad"),
        ("adapt", lambda r: jnn.AvgPool2d(3, stride=1), "adaptive_windows"),
    ],
    ids=["padding-mode", "no-padding", "zero-padding", "floor-mode", "stride-1",
         "count-include-pad", "adaptive-as-fixed"],
)  # fmt: skip
def test_pool_and_padding_faults_are_named(pools, layer, twin, cause) -> None:
    t, f, x, y = pools
    setattr(f, layer, twin(nnx.Rngs(0)))
    report = explain(t, f, x, y, layout="image", jit=JIT)
    _assert_diagnosis(report, layer, cause)


def test_dropout_left_in_training_mode_is_named(pools) -> None:
    t, f, x, y = pools
    f.drop.train()  # torch is in eval mode: its dropout returns its input
    report = explain(t, f, x, y, layout="image", jit=JIT)
    _assert_diagnosis(report, "drop", "dropout_mode")
    assert "model.eval()" in report.causes[0].fix


# --- a diagnosis of your own: the registry ---------------------------------------------------


class _TorchSwish(tnn.Module):
    """A layer type of a user's own: ``x * sigmoid(beta * x)``."""

    def __init__(self, beta: float) -> None:
        super().__init__()
        self.beta = beta

    def forward(self, x):
        return x * torch.sigmoid(self.beta * x)


class _FlaxSwish(nnx.Module):
    def __init__(self, beta: float) -> None:
        self.beta = beta

    def __call__(self, x):
        return x * jax.nn.sigmoid(self.beta * x)


class _TorchSwishNet(tnn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = tnn.Linear(6, 8)
        self.act = _TorchSwish(1.5)
        self.fc2 = tnn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class _FlaxSwishNet(nnx.Module):
    def __init__(self, beta: float, *, rngs: nnx.Rngs) -> None:
        self.fc1 = Linear(6, 8, rngs=rngs, param_dtype=jnp.float64)
        self.act = _FlaxSwish(beta)
        self.fc2 = Linear(8, 3, rngs=rngs, param_dtype=jnp.float64)

    def __call__(self, x):
        return self.fc2(self.act(self.fc1(x)))


def _diagnose_swish(diag: Diagnosis) -> None:
    """What a user writes for their layer: compare the setting, recompute under the fault."""
    ctx, fm = diag.ctx, diag.ctx.flax_module
    if not isinstance(fm, _FlaxSwish) or fm.beta == ctx.module.beta:
        return
    title = f"Swish beta: twin {fm.beta:g}, torch {ctx.module.beta:g}"
    diag.add("swish_beta", title, "config", fix=f"beta={ctx.module.beta:g}")
    if ctx.x_f is not None:
        x = as_float64(ctx.x_f)
        diag.test("swish_beta", title, x * torch.sigmoid(fm.beta * x), f"beta={ctx.module.beta:g}")


@pytest.fixture
def registry():
    """The diagnosis registry, restored after the test."""
    saved = dict(DIAGNOSES)
    yield DIAGNOSES
    DIAGNOSES.clear()
    DIAGNOSES.update(saved)


def test_a_diagnosis_registered_for_a_layer_type_of_ones_own_is_used(registry, seed) -> None:
    torch.manual_seed(seed)
    t = _TorchSwishNet().double()
    f = _uninitialised(lambda: _FlaxSwishNet(1.0, rngs=nnx.Rngs(seed)))
    x, y = np.random.default_rng(seed).standard_normal((4, 6)), np.array([0, 1, 2, 1])

    before = explain(t, f, x, y, jit=JIT)  # found, but nothing knows this layer type
    assert before.first_row is not None and before.first_row.name == "act", str(before)
    assert not any(c.key == "swish_beta" for c in before.causes), str(before)

    register_diagnosis(_TorchSwish, _diagnose_swish)
    register_diagnosis(_TorchSwish, _diagnose_swish)  # a second registration is a no-op
    assert diagnoses_for(_TorchSwish) == (_diagnose_swish,)

    class _SubSwish(_TorchSwish):
        pass

    assert diagnoses_for(_SubSwish) == (_diagnose_swish,)  # through the MRO, as convert
    assert diagnoses_for(_TorchSwish, "buffers") == ()

    report = explain(t, f, x, y, jit=JIT)
    _assert_diagnosis(report, "act", "swish_beta")
    assert "1.5" in report.causes[0].title and report.causes[0].fix == "beta=1.5"


def test_register_diagnosis_refuses_bad_input_by_name(registry) -> None:
    saved = dict(registry)
    with pytest.raises(TypeError, match=r"takes the layer's class.*type\(layer\)"):
        register_diagnosis(tnn.Linear(2, 2), _diagnose_swish)
    with pytest.raises(TypeError, match=r"TORCH layer type.*Flax module Linear"):
        register_diagnosis(nnx.Linear, _diagnose_swish)
    with pytest.raises(TypeError, match=r"torch.nn.Module subclass, got int"):
        register_diagnosis(int, _diagnose_swish)
    with pytest.raises(TypeError, match=r"a function taking one Diagnosis, got str"):
        register_diagnosis(_TorchSwish, "swish_beta")
    with pytest.raises(TypeError, match=r"cannot be called with one argument.*def fn\(diag"):
        register_diagnosis(_TorchSwish, lambda diag, base: None)
    with pytest.raises(ValueError, match=r"kind must be one of \('forward', 'buffers'\)"):
        register_diagnosis(_TorchSwish, _diagnose_swish, kind="backward")
    assert registry == saved  # nothing half-registered
