"""Forward, loss, gradient, vector-Jacobian and running-statistics parity for every registered
model, in float32 and float64, at batch sizes 1, an odd size and a larger one.

One parametrised test per property, over the registry: a new model is tested everywhere by
registering it on both sides.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

import jaxnets
import torchref
from jaxnets import optim
from jaxnets.debug.summary import torch_repr
from jaxnets.nn import max_pool2d
from jaxnets.testing import assert_trees_all_close, leaf_diff
from jaxnets.tolerances import tolerance
from jaxnets.training.trainer import Trainer
from torchref import parity
from torchref.bridge import torch_to_flax
from torchref.compare import compare_registered

DTYPES = {"float32": (jnp.float32, torch.float32), "float64": (jnp.float64, torch.float64)}
BATCH_SIZES = [1, 7, 64]


def _pair(name: str, dtype: str, seed: int) -> tuple[torch.nn.Module, object]:
    jdtype, tdtype = DTYPES[dtype]
    torch.manual_seed(seed)
    return (
        torchref.create_model(name, dtype=tdtype),
        jaxnets.create_model(name, param_dtype=jdtype),
    )


def _run(name: str, dtype: str, batch: int, seed: int, mode: str) -> parity.ParityReport:
    return compare_registered(name, dtype=dtype, seed=seed, batch_size=batch, mode=mode)


# batchnorm_mlp at batch 1 in train mode is an error in torch itself (one value per
# channel); test_batchnorm_single_example_fails_* and the eval-mode test cover batch 1.
CASES = [
    pytest.param(name, dtype, batch, id=f"{name}-{dtype}-b{batch}")
    for name in jaxnets.list_models()
    for dtype in DTYPES
    for batch in BATCH_SIZES
    if not (name == "batchnorm_mlp" and batch == 1)
]


@pytest.mark.parametrize(("dtype", "batch"), [("float64", 256), ("float32", 1024)])
def test_gradients_that_cancel_to_zero_stay_within_tolerance_at_large_batches(
    dtype: str, batch: int
) -> None:
    # The biases feeding batchnorm_mlp's BatchNorms have an exactly zero gradient; both sides
    # hold rounding noise. With an unscaled out.backward(v) that noise was a sum of `batch`
    # O(1) terms and passed atol at these sizes for a correct model (float64 seeds 0-5 at 256:
    # 1.0e-14 median, float32 at 1024: 1.5e-5 to 2e-5). compare_registered scales v as a
    # batch-mean loss scales its gradient, which keeps the noise flat in the batch size.
    for seed in range(3):
        report = _run("batchnorm_mlp", dtype, batch, seed, mode="train")
        report.raise_if_failed()
        biases = [c for c in report.comparisons if c.kind == "vjp" and c.name in _FC_BIASES]
        assert len(biases) == 3 and max(c.tolerance_used for c in biases) < 0.5, biases


_FC_BIASES = ("fc1.bias", "fc2.bias", "fc3.bias")


@pytest.mark.parametrize(("name", "dtype", "batch"), CASES)
def test_forward_loss_gradients_match(name: str, dtype: str, batch: int, seed: int) -> None:
    """Outputs, loss, d(loss)/d(every parameter) and out.backward(v) agree with torch.

    Models are in train mode as torch builds them (batchnorm_mlp uses batch statistics and
    updates its running statistics, which are compared too).
    """
    report = _run(name, dtype, batch, seed, mode="train")
    report.raise_if_failed()
    kinds = {c.kind for c in report.comparisons}
    assert {"output", "loss", "grad", "vjp"} <= kinds
    n_params = len(list(torchref.create_model(name).parameters()))
    assert sum(c.kind == "grad" for c in report.comparisons) == n_params
    assert sum(c.kind == "vjp" for c in report.comparisons) == n_params
    assert report.torch_params == report.flax_params


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("batch", BATCH_SIZES)
def test_batchnorm_eval_mode_uses_running_statistics(dtype: str, batch: int, seed: int) -> None:
    """Eval mode after a few training batches: both sides normalise with running statistics."""
    t, f = _pair("batchnorm_mlp", dtype, seed)
    spec = jaxnets.get_model_spec("batchnorm_mlp")
    rng = np.random.default_rng(seed)

    # Move the running statistics away from (0, 1) in torch, then copy everything across.
    with torch.no_grad():
        for _ in range(3):
            t(torch.from_numpy(spec.example_batch(16, rng, dtype=np.dtype(dtype))[0] * 2 + 1))
    torch_to_flax(t, f)
    x, y = spec.example_batch(batch, rng, dtype=np.dtype(dtype))
    report = parity.compare(t, f, x, y, loss="cross_entropy", mode="eval", name="batchnorm_mlp")
    report.raise_if_failed()
    buffers = {c.name: c for c in report.comparisons if c.kind == "buffer"}
    assert buffers["bn1.num_batches_tracked"].max_abs == 0
    assert float(t.bn1.num_batches_tracked) == 3  # eval mode did not update


def test_batchnorm_single_example_fails_in_train_mode_on_both_sides(seed: int) -> None:
    t, f = _pair("batchnorm_mlp", "float32", seed)
    x = np.random.default_rng(seed).standard_normal((1, 784)).astype(np.float32)
    with pytest.raises(ValueError, match=r"more than 1 value per channel"):
        t(torch.from_numpy(x))
    with pytest.raises(ValueError, match=r"more than 1 value per channel"):
        f(jnp.asarray(x))


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_batchnorm_running_statistics_use_the_unbiased_variance(dtype: str, seed: int) -> None:
    """Torch updates running_var with the unbiased batch variance; a Flax default would not."""
    t, f = _pair("batchnorm_mlp", dtype, seed)
    spec = jaxnets.get_model_spec("batchnorm_mlp")
    x, y = spec.example_batch(5, np.random.default_rng(seed), dtype=np.dtype(dtype))
    report = parity.compare(t, f, x, y, loss="cross_entropy", mode="train", name="batchnorm_mlp")
    report.raise_if_failed()
    # The check has teeth: the biased update differs from torch by far more than tolerance.
    h = x @ t.fc1.weight.detach().numpy().T + t.fc1.bias.detach().numpy()  # bn1's input
    biased = 0.9 + 0.1 * h.var(axis=0)
    unbiased = 0.9 + 0.1 * h.var(axis=0, ddof=1)
    tol = tolerance(dtype)  # torch's variance against numpy's: two summation orders
    assert leaf_diff(t.bn1.running_var.numpy(), unbiased, rtol=tol.rtol, atol=tol.atol).ok
    assert np.abs(biased - unbiased).max() > 1e-3


@pytest.mark.parametrize("name", jaxnets.list_models())
def test_output_dtype_follows_the_twin(name: str) -> None:
    spec = jaxnets.get_model_spec(name)
    for jdtype in (jnp.float32, jnp.float64):
        f = jaxnets.create_model(name, param_dtype=jdtype)
        f.eval()
        x = jnp.zeros(spec.flax_input_shape(2), jdtype)
        assert f(x).dtype == jdtype


def test_report_flags_a_planted_fault(seed: int) -> None:
    """The harness catches a wrong twin: a bias off by 1e-9 and parity must fail by name."""
    t, f = _pair("xor_net", "float64", seed)
    x, y = jaxnets.get_model_spec("xor_net").example_batch(
        4, np.random.default_rng(seed), dtype=np.float64
    )
    report = parity.compare(t, f, x, y, loss="mse")
    assert report.ok
    f.layer2.bias[...] = f.layer2.bias[...] + 1e-9  # a tiny fault, far below float32 noise
    report = parity.compare(t, f, x, y, loss="mse", copy_weights=False)
    assert not report.ok
    assert report.worst("output").ok is False
    with pytest.raises(parity.ParityError, match=r"xor_net|XORNet"):
        report.raise_if_failed()


class _TorchConvBN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4, momentum=0.2)
        self.fc = torch.nn.Linear(4 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


class _FlaxConvBN(nnx.Module):
    def __init__(self, dtype: Any) -> None:
        rngs = nnx.Rngs(0)
        self.conv = jaxnets.nn.Conv2d(2, 4, 3, padding=1, rngs=rngs, param_dtype=dtype)
        self.bn = jaxnets.nn.BatchNorm2d(4, momentum=0.2, rngs=rngs, param_dtype=dtype)
        self.fc = jaxnets.nn.Linear(4 * 6 * 6, 3, rngs=rngs, param_dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = jax.nn.relu(self.bn(self.conv(x)))  # NHWC
        return self.fc(h.transpose(0, 3, 1, 2).reshape(h.shape[0], -1))  # torch's flatten


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_batchnorm2d_matches_torch(dtype: str, seed: int) -> None:
    """nn.BatchNorm2d against torch.nn.BatchNorm2d inside a small CNN: statistics over
    N*H*W per channel, torch's momentum and unbiased running variance, in training (two
    passes, buffers compared) and then in eval mode; and torch's repr."""
    jdtype, tdtype = DTYPES[dtype]
    torch.manual_seed(seed)
    t, f = _TorchConvBN().to(tdtype), _FlaxConvBN(jdtype)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((5, 2, 6, 6)).astype(dtype) * 2 + 1
    y = rng.integers(0, 3, 5)
    parity.compare(t, f, x, y, loss="cross_entropy", layout="image", mode="train").raise_if_failed()
    report = parity.compare(
        t, f, x, y, loss="cross_entropy", layout="image", mode="train", copy_weights=False
    )
    report.raise_if_failed()
    assert {c.name for c in report.comparisons if c.kind == "buffer"} == {
        "bn.running_mean",
        "bn.running_var",
        "bn.num_batches_tracked",
    }
    assert float(t.bn.num_batches_tracked) == 2
    parity.compare(
        t, f, x, y, loss="cross_entropy", layout="image", mode="eval", copy_weights=False
    ).raise_if_failed()
    assert torch_repr(f.bn) == repr(t.bn)


_CONVS = [
    dict(padding="same"),
    dict(padding="same", kernel_size=4, dilation=2),  # even kernel: the odd zero goes after
    dict(padding="valid", stride=2),
    dict(padding=(2, 1), dilation=(2, 1), groups=2),
    dict(padding=1, groups=4, bias=False),
]


@pytest.mark.parametrize("impl", ["im2col", "xla"])
@pytest.mark.parametrize("kw", _CONVS, ids=[str(i) for i in range(len(_CONVS))])
def test_conv2d_padding_modes_dilation_and_groups_match_torch(kw: dict, impl: str) -> None:
    """nn.Conv2d takes torch's 'same'/'valid', dilation and groups: outputs, the
    gradients of weight, bias and input against torch.nn.Conv2d in float64, and torch's
    repr."""
    args = {"kernel_size": 3, **kw}
    torch.manual_seed(0)
    t = torch.nn.Conv2d(4, 8, **args).double()
    f = jaxnets.nn.Conv2d(4, 8, **args, rngs=nnx.Rngs(0), param_dtype=jnp.float64, impl=impl)
    assert tuple(f.kernel[...].shape) == tuple(t.weight.permute(2, 3, 1, 0).shape)
    torch_to_flax(t, f)
    x = np.random.default_rng(0).standard_normal((2, 4, 9, 8))
    xt = torch.from_numpy(x).requires_grad_(True)
    out_t = t(xt)
    v = np.random.default_rng(1).standard_normal(out_t.shape)
    out_t.backward(torch.from_numpy(v))

    def loss(model: nnx.Module, x: jax.Array) -> jax.Array:
        return jnp.sum(model(x) * jnp.asarray(v.transpose(0, 2, 3, 1)))

    xf = jnp.asarray(x.transpose(0, 2, 3, 1))
    (g_model, g_x) = nnx.grad(loss, argnums=(0, 1))(f, xf)
    tol = tolerance("float64")
    got = {
        "out": np.asarray(f(xf)).transpose(0, 3, 1, 2),
        "x": np.asarray(g_x).transpose(0, 3, 1, 2),
        "weight": np.asarray(g_model.kernel[...]).transpose(3, 2, 0, 1),
    }
    want = {"out": out_t.detach().numpy(), "x": xt.grad.numpy(), "weight": t.weight.grad.numpy()}
    if t.bias is not None:
        got["bias"], want["bias"] = np.asarray(g_model.bias[...]), t.bias.grad.numpy()
    assert_trees_all_close(got, want, rtol=tol.rtol, atol=tol.atol)
    assert torch_repr(f) == repr(t)


def test_conv2d_refuses_what_torch_refuses() -> None:
    with pytest.raises(ValueError, match="not supported for strided convolutions"):
        jaxnets.nn.Conv2d(4, 8, 3, stride=2, padding="same", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="groups=3 must be a positive divisor"):
        jaxnets.nn.Conv2d(4, 8, 3, groups=3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="'same' or 'valid', got 'full'"):
        jaxnets.nn.Conv2d(4, 8, 3, padding="full", rngs=nnx.Rngs(0))


def test_compare_takes_a_loss_pair_and_refuses_unknown_names(seed: int) -> None:
    t, f = _pair("mlp", "float64", seed)
    spec = jaxnets.get_model_spec("mlp")
    x, y = spec.example_batch(6, np.random.default_rng(seed), dtype=np.float64)

    def nll_t(o: torch.Tensor, t_: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.nll_loss(torch.log_softmax(o, 1), t_)

    def nll_f(o: jax.Array, t_: jax.Array) -> jax.Array:
        return jaxnets.losses.nll_loss(jax.nn.log_softmax(o, 1), t_)

    report = parity.compare(t, f, x, y, loss=(nll_t, nll_f))
    report.raise_if_failed()
    assert {"loss", "grad"} <= {c.kind for c in report.comparisons}

    def nll_sum(o: jax.Array, t_: jax.Array) -> jax.Array:  # a different reduction
        return jaxnets.losses.nll_loss(jax.nn.log_softmax(o, 1), t_, reduction="sum")

    assert not parity.compare(t, f, x, y, loss=(nll_t, nll_sum)).ok
    with pytest.raises(ValueError, match=r"unknown loss 'nll': pass one of \['cross_entropy'"):
        parity.compare(t, f, x, y, loss="nll")


def test_report_flags_state_the_twin_keeps_and_torch_does_not(seed: int) -> None:
    """A variable only on the Flax side is a failure by name, not silently left out."""
    t, f = _pair("xor_net", "float64", seed)
    spec = jaxnets.get_model_spec("xor_net")
    x, y = spec.example_batch(4, np.random.default_rng(seed), dtype=np.float64)
    assert parity.compare(t, f, x, y, loss="mse").ok
    f.extra = jaxnets.nn.BatchNorm1d(5, rngs=nnx.Rngs(0), param_dtype=jnp.float64)
    report = parity.compare(t, f, x, y, loss="mse", copy_weights=False)
    flagged = {c.name for c in report.failures if "only on the Flax side" in c.note}
    assert {"extra.running_mean", "extra.running_var", "extra.num_batches_tracked"} <= flagged


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_lenet_gradients_match_on_padded_digits_with_tied_maxima(dtype: str, seed: int) -> None:
    """MNIST digits padded to 32x32 as the examples pad them: the uniform border and
    background give thousands of pooling windows whose maximum is tied. JAX splits a tied
    window's gradient, torch gives it to the first element; the tied outputs read identical
    patches, so every parameter gradient still agrees with torch."""
    t, f = _pair("lenet", dtype, seed)
    rng = np.random.default_rng(seed)
    digits = np.zeros((8, 1, 28, 28))
    digits[:, :, 6:22, 8:20] = rng.integers(0, 256, (8, 1, 16, 12)) * (
        rng.random((8, 1, 16, 12)) < 0.4
    )
    x = np.pad(
        (digits / 255 - 0.1307) / 0.3081,
        ((0, 0), (0, 0), (2, 2), (2, 2)),
        constant_values=-0.1307 / 0.3081,
    ).astype(dtype)
    y = rng.integers(0, 10, 8)
    # the case is real: torch's first conv + pool sees windows with a tied maximum
    with torch.no_grad():
        c1 = t.conv1(torch.from_numpy(x)).numpy()
    windows = c1[:, :, :30, :30].reshape(8, 6, 15, 2, 15, 2).transpose(0, 1, 2, 4, 3, 5)
    windows = windows.reshape(8, 6, 15, 15, 4)
    tied = ((windows == windows.max(-1, keepdims=True)).sum(-1) > 1).sum()
    assert tied > 1000, tied
    report = parity.compare(t, f, x, y, loss="cross_entropy", layout="image", mode="train")
    report.raise_if_failed()
    assert sum(c.kind == "grad" for c in report.comparisons) == 10


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", jaxnets.list_models())
def test_frozen_predictor_matches_torch_eval(name: str, dtype: str, seed: int) -> None:
    """``Trainer.frozen_predictor`` (weights compiled in as constants) gives torch's eval-mode
    outputs, at batch 1 and 7, as ``Trainer.predict`` does; batchnorm_mlp with running
    statistics moved away from (0, 1) first, so that folding them in is checked too."""

    t, f = _pair(name, dtype, seed)
    spec = jaxnets.get_model_spec(name)
    rng = np.random.default_rng(seed)
    if name == "batchnorm_mlp":
        with torch.no_grad():
            for _ in range(3):
                t(torch.from_numpy(spec.example_batch(16, rng, dtype=np.dtype(dtype))[0] * 2 + 1))
    torch_to_flax(t, f)
    t.eval()
    trainer = Trainer(f, optim.sgd(lr=0.01), spec.loss)
    state = trainer.init()
    frozen = trainer.frozen_predictor(state)
    tol = tolerance(dtype)
    for batch in (1, 7):
        x, _ = spec.example_batch(batch, rng, dtype=np.dtype(dtype))
        with torch.no_grad():
            expected = t(torch.from_numpy(x)).numpy()
        out = frozen(jnp.asarray(spec.to_flax_layout(x)))
        assert out.dtype == jnp.dtype(dtype) and out.shape == expected.shape
        assert_trees_all_close({"out": out}, {"out": expected}, rtol=tol.rtol, atol=tol.atol)
    # the weights are constants of the executable: x is its only argument
    assert len(frozen.lower(jnp.asarray(spec.to_flax_layout(x))).args_info[0]) == 1


def test_max_pool2d_gradient_on_ties() -> None:
    """The one documented difference of ``max_pool2d`` from ``F.max_pool2d``: a window with
    a repeated maximum splits its gradient among the ties in JAX, torch gives it to the
    first. After a ReLU the ties are zeros, and both gradients agree bit for bit."""

    def grads(x: np.ndarray, relu: bool) -> tuple[np.ndarray, np.ndarray]:
        w = np.arange(1, x.size // 4 + 1, dtype=np.float64).reshape(1, 1, *np.array(x.shape) // 2)
        xt = torch.tensor(x[None, None], requires_grad=True)
        yt = torch.nn.functional.max_pool2d(torch.relu(xt) if relu else xt, 2)
        (yt * torch.from_numpy(w)).sum().backward()

        def f(a: jnp.ndarray) -> jnp.ndarray:
            y = max_pool2d(jax.nn.relu(a) if relu else a, 2)
            return (y[..., 0] * w[0]).sum()

        gj = jax.grad(f)(jnp.asarray(x)[None, :, :, None])
        return np.asarray(gj)[0, :, :, 0], xt.grad.numpy()[0, 0]

    tied = np.array([[1.0, 1.0, 0.0, 0.0], [0.5, 1.0, 0.0, 0.0]])
    g_jax, g_torch = grads(tied, relu=False)
    np.testing.assert_array_equal(g_torch, [[1, 0, 2, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(g_jax, [[1 / 3, 1 / 3, 0.5, 0.5], [0, 1 / 3, 0.5, 0.5]])
    # after a ReLU: negative windows become all-zero ties, positive values are distinct
    x = np.random.default_rng(0).standard_normal((8, 8)) - 0.5
    x[:2, :2] = -1.0  # one window tied at zero for sure
    g_jax, g_torch = grads(x, relu=True)
    np.testing.assert_array_equal(g_jax, g_torch)
