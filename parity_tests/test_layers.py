"""``jaxnets.nn`` where torch's own tables do not reach: padding modes, dropout modules,
refusals of values torch refuses, the fast max pool, and defaults that differ from JAX's.

Parity is float64 against torch with the float64 bound of ``jaxnets.tolerances``; the cases
drawn from torch's ``module_db``/``op_db`` are in ``test_torch_tables.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as tF
from flax import nnx

from jaxnets import convert, fast
from jaxnets import nn as jnn
from jaxnets.nn import functional as F
from jaxnets.testing import leaf_diff
from jaxnets.tolerances import tolerance

TOL = tolerance(np.float64, kind="eval")


def _close(actual: object, expected: object) -> None:
    d = leaf_diff(actual, expected, rtol=TOL.rtol, atol=TOL.atol)
    assert d.ok, d


def _nchw(a: jax.Array) -> np.ndarray:
    a = np.asarray(a)
    return np.array(a.transpose(0, 3, 1, 2) if a.ndim == 4 else a.transpose(0, 2, 1))


def _nhwc(a: np.ndarray) -> jax.Array:
    return jnp.asarray(a.transpose(0, 2, 3, 1) if a.ndim == 4 else a.transpose(0, 2, 1))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize(
    ("dims", "kwargs"),
    [
        (2, {"kernel_size": 3, "padding": 1}),
        (2, {"kernel_size": (3, 2), "padding": (2, 1), "stride": (2,), "dilation": 1}),
        (2, {"kernel_size": 3, "padding": "same", "dilation": 2}),
        (1, {"kernel_size": 4, "padding": "same"}),
        (1, {"kernel_size": 3, "padding": 2, "stride": 2, "groups": 2}),
    ],
    ids=["2d-pad1", "2d-rect-stride-tuple", "2d-same-dilated", "1d-same-even", "1d-groups"],
)
def test_conv_padding_modes_match_torch(dims, kwargs, mode, np_rng) -> None:
    """Output, input and parameter gradients of reflect/replicate/circular padding."""
    tcls, jcls = (torch.nn.Conv2d, jnn.Conv2d) if dims == 2 else (torch.nn.Conv1d, jnn.Conv1d)
    t = tcls(4, 6, padding_mode=mode, **kwargs).double()
    j = jcls(4, 6, padding_mode=mode, **kwargs, rngs=nnx.Rngs(0), param_dtype=jnp.float64)
    convert.load_state_dict(j, {k: v.detach().numpy() for k, v in t.state_dict().items()})
    x = np_rng.standard_normal((2, 4, 7, 6) if dims == 2 else (2, 4, 9))
    xt = torch.tensor(x, requires_grad=True)
    yt = t(xt)
    g = np_rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.from_numpy(g))

    def loss(m: nnx.Module, x: jax.Array) -> jax.Array:
        return jnp.sum(m(x) * _nhwc(g))

    _close(_nchw(j(_nhwc(x))), yt.detach().numpy())
    gm, gx = nnx.grad(loss, argnums=(0, 1))(j, _nhwc(x))
    _close(_nchw(gx), xt.grad.numpy())
    grads = convert.state_to_torch(j, gm)
    for name, p in t.named_parameters():
        _close(grads[name], p.grad.numpy())


def test_conv_with_a_padding_mode_is_never_fused_with_its_pool(np_rng) -> None:
    conv = jnn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect", rngs=nnx.Rngs(0),
                      param_dtype=jnp.float64, impl="im2col")  # fmt: skip
    x = jnp.asarray(np_rng.standard_normal((2, 8, 8, 2)))
    np.testing.assert_array_equal(fast.conv2d_max_pool2d(conv, x, 2), F.max_pool2d(conv(x), 2))
    assert "_pooled_conv_dot" not in str(
        jax.make_jaxpr(lambda x: fast.conv2d_max_pool2d(conv, x, 2))(x)
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stride": 0}, r"stride must be positive .*got \(0, 0\)"),
        ({"stride": -1}, r"stride must be positive"),
        ({"stride": (1, 2, 3)}, r"stride must be an int or a tuple of 2 ints"),
        ({"padding": -1}, r"padding must be non-negative"),
        ({"dilation": 0}, r"dilation must be positive"),
        ({"kernel_size": 0}, r"kernel_size must be positive"),
        ({"padding": "same", "stride": 2}, r"'same' is not supported for strided"),
        ({"padding": "full"}, r"padding must be an int, a tuple, 'same' or 'valid'"),
        ({"groups": 0}, r"groups must be a positive int"),
        ({"groups": 3}, r"groups=3 must be a positive divisor of in_channels=4"),
        ({"padding_mode": "mirror"}, r"padding_mode must be one of"),
    ],
)
def test_conv2d_refuses_what_torch_refuses(kwargs, match) -> None:
    args = {"kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        jnn.Conv2d(4, 6, **args, rngs=nnx.Rngs(0))


def test_conv2d_takes_torch_one_element_tuples() -> None:
    conv = jnn.Conv2d(1, 1, (3,), stride=(2,), padding=(1,), dilation=(1,), rngs=nnx.Rngs(0))
    assert conv.kernel_size == (3, 3) and conv.strides == (2, 2)
    assert conv(jnp.ones((1, 8, 8, 1))).shape == (1, 4, 4, 1)


def test_conv_padding_mode_larger_than_the_input_is_refused() -> None:
    conv = jnn.Conv1d(1, 1, 3, padding=3, padding_mode="reflect", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="padding_mode='reflect' pads each side by at most"):
        conv(jnp.ones((1, 3, 1)))
    kernel_too_big = jnn.Conv2d(1, 1, 5, rngs=nnx.Rngs(0), impl="xla")
    with pytest.raises(ValueError, match=r"kernel \(5, 5\) .*is larger than the padded input"):
        kernel_too_big(jnp.ones((1, 3, 3, 1)))


@pytest.mark.parametrize("eps", [0.0, -1.0])
@pytest.mark.parametrize("cls", [jnn.BatchNorm1d, jnn.BatchNorm2d])
def test_batchnorm_eps_torch_refuses_raises_instead_of_nan(cls, eps) -> None:
    bn = cls(3, eps=eps, rngs=nnx.Rngs(0))
    x = jnp.ones((2, 4, 4, 3) if cls is jnn.BatchNorm2d else (2, 3))
    with pytest.raises(ValueError, match="eps must be positive when normalising with the batch"):
        bn(x)
    bn.eval()
    if eps < 0:  # torch: "batch_norm eps must be non-negative"
        with pytest.raises(ValueError, match="eps must be non-negative"):
            bn(x)
    else:  # torch computes with the running statistics
        assert np.isfinite(np.asarray(bn(x))).all()
    nostats = cls(3, eps=eps, track_running_stats=False, rngs=nnx.Rngs(0))
    nostats.eval()  # still the batch statistics: torch refuses eps <= 0 there too
    with pytest.raises(ValueError, match="eps must be positive"):
        nostats(x)


def test_batchnorm1d_takes_sequences_channels_last_and_names_torchs_layout() -> None:
    bn = jnn.BatchNorm1d(5, rngs=nnx.Rngs(0))
    assert bn(jnp.ones((2, 7, 5))).shape == (2, 7, 5)
    with pytest.raises(ValueError, match=r"\(N, C, L\) layout: move the channels last"):
        bn(jnp.ones((2, 5, 7)))
    with pytest.raises(ValueError, match=r"one value per channel|more than 1 value"):
        bn(jnp.ones((1, 1, 5)))


def test_embedding_padding_row_is_zero_and_gets_no_gradient(np_rng) -> None:
    t = torch.nn.Embedding(6, 3, padding_idx=-2).double()
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(np_rng.standard_normal((6, 3))))  # a non-zero pad row
    j = jnn.Embedding(6, 3, padding_idx=-2, rngs=nnx.Rngs(0), param_dtype=jnp.float64)
    np.testing.assert_array_equal(np.asarray(j.embedding[...])[4], np.zeros(3))  # torch's init
    convert.load_state_dict(j, {"weight": t.weight.detach().numpy()})
    idx = np.array([[4, 1, 4], [0, 5, 1]])
    g = np_rng.standard_normal((2, 3, 3))
    t(torch.from_numpy(idx)).backward(torch.from_numpy(g))
    grad = nnx.grad(lambda m: jnp.sum(m(jnp.asarray(idx)) * g))(j)
    got = convert.state_to_torch(j, grad)["weight"]
    np.testing.assert_array_equal(got[4], np.zeros(3))
    _close(got, t.weight.grad.numpy())


def test_embedding_refusals_and_index_checks() -> None:
    with pytest.raises(ValueError, match="max_norm is not supported"):
        jnn.Embedding(5, 2, max_norm=1.0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="padding_idx must be an int within num_embeddings=5"):
        jnn.Embedding(5, 2, padding_idx=5, rngs=nnx.Rngs(0))
    e = jnn.Embedding(5, 2, rngs=nnx.Rngs(0))
    with pytest.raises(IndexError, match=r"index 5 is out of range for 5 embeddings"):
        e(jnp.array([0, 5]))
    with pytest.raises(TypeError, match="indices must be integers"):
        e(jnp.array([0.0, 1.0]))


def test_dropout_modules_train_and_eval(np_rng) -> None:
    x = jnp.asarray(np_rng.standard_normal((4, 6, 6, 8)) + 3.0)  # no zeros in the input
    drop = jnn.Dropout(0.25, rngs=nnx.Rngs(dropout=1))
    y = np.asarray(drop(x))
    kept = y != 0
    np.testing.assert_allclose(y[kept], np.asarray(x)[kept] / 0.75, rtol=1e-15)
    assert 0.6 < kept.mean() < 0.9
    assert not np.array_equal(np.asarray(drop(x)) != 0, kept)  # a new mask each call
    drop2d = jnn.Dropout2d(0.5, rngs=nnx.Rngs(dropout=2))
    planes = np.asarray(drop2d(x)) != 0
    assert (planes == planes[:, :1, :1, :]).all()  # whole channels
    assert 0 < planes.mean() < 1
    for m in (drop, drop2d):
        m.eval()
        np.testing.assert_array_equal(m(x), x)
        m.train()
    assert np.asarray(jnn.Dropout(1.0)(x)).sum() == 0  # p=1: zeros, no random numbers
    with pytest.raises(ValueError, match=r"needs random numbers: pass rngs=nnx\.Rngs"):
        jnn.Dropout(0.5)(x)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        jnn.Dropout(1.5)
    with pytest.raises(ValueError, match=r"expects \(N, H, W, C\) or \(N, L, C\)"):
        F.dropout2d(x[0, 0], 0.5, rngs=jax.random.key(0))


def test_max_pool_takes_the_reshape_form_when_windows_tile(np_rng) -> None:
    """kernel == stride, no padding: crop, reshape and max (exact); otherwise reduce_window."""
    x = jnp.asarray(np_rng.standard_normal((2, 9, 8, 3)))
    tiled = str(jax.make_jaxpr(lambda x: F.max_pool2d(x, 2))(x))
    assert "reduce_window" not in tiled and "reduce_max" in tiled
    general = str(jax.make_jaxpr(lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True))(x))
    assert "reduce_window_max" in general
    ref = tF.max_pool2d(torch.from_numpy(_nchw(x)), 2)
    np.testing.assert_array_equal(_nchw(F.max_pool2d(x, 2)), ref.numpy())


@pytest.mark.parametrize(
    ("fn", "kwargs", "match"),
    [
        (F.max_pool2d, {"kernel_size": 3, "padding": 2}, "at most half the kernel size"),
        (F.max_pool2d, {"kernel_size": 2, "dilation": 0}, "dilation must be positive"),
        (F.avg_pool2d, {"kernel_size": 2, "divisor_override": 0}, "divisor_override must be"),
        (F.avg_pool2d, {"kernel_size": 2, "padding": -1}, "padding must be non-negative"),
        (F.adaptive_avg_pool2d, {"output_size": (-1, 2)}, "must be non-negative"),
        (F.adaptive_max_pool2d, {"output_size": (1, 2, 3)}, "an int or a pair"),
    ],
)  # fmt: skip
def test_pools_refuse_what_torch_refuses(fn, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        fn(jnp.ones((1, 4, 4, 2)), **kwargs)


def test_defaults_that_differ_from_jax_are_torchs(np_rng) -> None:
    x = np_rng.standard_normal((3, 5))
    _close(jnn.GELU()(jnp.asarray(x)), tF.gelu(torch.from_numpy(x)).numpy())  # exact erf
    assert not np.allclose(jnn.GELU()(jnp.asarray(x)), jax.nn.gelu(jnp.asarray(x)), rtol=1e-8)
    ln = jnn.LayerNorm(5, rngs=nnx.Rngs(0), param_dtype=jnp.float64)
    assert ln.epsilon == 1e-5
    _close(ln(jnp.asarray(x)), tF.layer_norm(torch.from_numpy(x), (5,)).numpy())
    # leaky_relu's gradient at 0 is the slope (jax.nn.leaky_relu's is 1)
    assert float(jax.grad(lambda v: F.leaky_relu(v, 0.2))(0.0)) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="approximate must be 'none'"):
        jnn.GELU("erf")
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        np.testing.assert_allclose(jnn.Softmax()(jnp.asarray(x)).sum(axis=1), 1.0)


def test_flatten_and_identity_match_torch(np_rng) -> None:
    x = np_rng.standard_normal((2, 3, 4, 5))
    for args in [(), (0, 2), (2,), (-3, -2)]:
        got = jnn.Flatten(*args)(jnp.asarray(x))
        np.testing.assert_array_equal(got, torch.nn.Flatten(*args)(torch.from_numpy(x)).numpy())
    with pytest.raises(ValueError, match="start_dim 2 cannot come after end_dim 1"):
        F.flatten(jnp.asarray(x), 2, 1)
    assert jnn.Identity(54, unused="x")(x) is x
