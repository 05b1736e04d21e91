"""jaxnets.fast: the XLA:CPU forms equal the plain ones, and the Trainer's automatic options.

* the im2col convolution (the default on CPU) equals ``lax.conv`` in value and gradient, in
  float64 at the parity tolerance, for strides, padding and rectangular kernels, and the
  convolution fused with its max-pooling equals the composition;
* the elementwise form of tiny Linear products (the default on CPU up to
  ``ELEMENTWISE_DOT_MAX`` multiply-adds) equals ``lax.dot_general`` in value and gradient,
  and hands every other product to it;
* FLOP counts are the same for either form of a convolution or a Linear product;
* the per-model XLA options of ``Trainer`` (YNNPACK off for im2col convolutions on CPU),
  gathering ahead and the epoch kernel layout are chosen as documented, reach the compiled
  program, and change results by rounding at most.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax import lax

import jaxnets
from jaxnets import fast, nn, optim
from jaxnets.app import bench as jbench
from jaxnets.debug import intercept
from jaxnets.fast import training as fast_training
from jaxnets.fast.training import default_compiler_options
from jaxnets.tolerances import tolerance
from jaxnets.training.trainer import Trainer

# --------------------------------------------------------------------------------------------
# the fast convolution
# --------------------------------------------------------------------------------------------

CONV_CASES = [
    # (N, H, W, C), (kH, kW, C, O), stride, padding
    pytest.param((2, 9, 9, 1), (3, 3, 1, 4), (1, 1), ((0, 0), (0, 0)), id="lenet-conv1-like"),
    # one input channel takes the stacked-windows layout: strides, padding, 1x1
    pytest.param((2, 7, 8, 1), (2, 3, 1, 3), (2, 1), ((1, 0), (2, 1)), id="1ch-stride-pad-rect"),
    pytest.param((1, 4, 4, 1), (1, 1, 1, 2), (1, 1), ((0, 0), (0, 0)), id="1ch-1x1"),
    pytest.param((3, 8, 7, 3), (3, 2, 3, 5), (2, 1), ((1, 1), (0, 2)), id="stride-pad-rect"),
    pytest.param((1, 5, 5, 2), (1, 1, 2, 3), (1, 1), ((0, 0), (0, 0)), id="1x1"),
    pytest.param((2, 6, 6, 2), (6, 6, 2, 2), (1, 1), ((0, 0), (0, 0)), id="kernel-fills-input"),
]


@pytest.mark.parametrize(("xs", "ks", "stride", "pad"), CONV_CASES)
def test_im2col_conv_equals_lax_conv_value_and_gradients(
    xs: tuple, ks: tuple, stride: tuple, pad: tuple, np_rng: np.random.Generator
) -> None:
    """Same result as lax.conv_general_dilated and the same gradients w.r.t. input and
    kernel, in float64 at the eval tolerance (a wrong patch order would be O(1) off)."""
    x = jnp.asarray(np_rng.standard_normal(xs))
    k = jnp.asarray(np_rng.standard_normal(ks))
    dn = ("NHWC", "HWIO", "NHWC")

    @jax.jit
    def fast_fn(x, k):
        return fast.conv2d_im2col(x, k, stride, pad, dimension_numbers=dn)

    @jax.jit
    def ref(x, k):
        return lax.conv_general_dilated(x, k, stride, pad, dimension_numbers=dn)

    tol = tolerance(jnp.float64, kind="eval")
    y, y_ref = fast_fn(x, k), ref(x, k)
    assert y.shape == y_ref.shape and y.dtype == jnp.float64
    for a, b in [
        (y, y_ref),
        *zip(
            jax.grad(lambda x, k: jnp.sum(jnp.sin(fast_fn(x, k))), argnums=(0, 1))(x, k),
            jax.grad(lambda x, k: jnp.sum(jnp.sin(ref(x, k))), argnums=(0, 1))(x, k),
            strict=True,
        ),
    ]:
        err = float(jnp.max(jnp.abs(a - b)))
        assert err <= tol.atol + tol.rtol * float(jnp.max(jnp.abs(b))), err


def test_im2col_falls_back_to_lax_conv_for_what_it_does_not_handle(
    np_rng: np.random.Generator,
) -> None:
    """Dilation and string padding go to lax.conv unchanged (bit-identical)."""
    x = jnp.asarray(np_rng.standard_normal((1, 9, 9, 2)))
    k = jnp.asarray(np_rng.standard_normal((3, 3, 2, 2)))
    dn = ("NHWC", "HWIO", "NHWC")
    for kw in ({"rhs_dilation": (2, 2)}, {"lhs_dilation": (2, 1)}):
        a = fast.conv2d_im2col(x, k, (1, 1), ((0, 0), (0, 0)), dimension_numbers=dn, **kw)
        b = lax.conv_general_dilated(x, k, (1, 1), ((0, 0), (0, 0)), dimension_numbers=dn, **kw)
        np.testing.assert_array_equal(a, b)
    a = fast.conv2d_im2col(x, k, (1, 1), "SAME", dimension_numbers=dn)
    np.testing.assert_array_equal(a, lax.conv_general_dilated(x, k, (1, 1), "SAME", None, None, dn))


def test_conv2d_impls_share_parameters_and_agree(np_rng: np.random.Generator) -> None:
    """Conv2d(impl=...) changes only how the output is computed: same kernel layout
    [kH, kW, I, O], same draws from the same seed, same outputs within tolerance."""
    x = jnp.asarray(np_rng.standard_normal((2, 10, 10, 3)), jnp.float32)
    convs = {
        impl: nn.Conv2d(3, 4, (3, 2), stride=2, padding=1, rngs=nnx.Rngs(0), impl=impl)
        for impl in ("auto", "im2col", "xla")
    }
    np.testing.assert_array_equal(convs["im2col"].kernel[...], convs["xla"].kernel[...])
    assert convs["auto"].kernel[...].shape == (3, 2, 3, 4)
    tol = tolerance(jnp.float32, kind="eval")
    ref = convs["xla"](x)
    for impl in ("auto", "im2col"):
        err = float(jnp.max(jnp.abs(convs[impl](x) - ref)))
        assert err <= tol.atol + tol.rtol * float(jnp.max(jnp.abs(ref))), (impl, err)
    with pytest.raises(ValueError, match="impl must be"):
        nn.Conv2d(3, 4, 3, rngs=nnx.Rngs(0), impl="fast")  # type: ignore[arg-type]


POOL_CASES = [
    # (N, H, W, C), out channels, kernel, padding, pool, bias
    pytest.param((2, 12, 12, 1), 3, 3, 0, 2, True, id="lenet-conv1-like"),
    pytest.param((2, 9, 9, 3), 4, 3, 0, 2, True, id="lenet-conv2-like-odd-output"),
    pytest.param((3, 11, 10, 3), 4, (3, 2), 1, 3, False, id="rect-pad-pool3-no-bias"),
    pytest.param((1, 7, 9, 1), 2, (2, 3), (1, 2), 2, True, id="1ch-rect-pad"),
    pytest.param((2, 5, 5, 2), 3, 5, 0, 1, True, id="pool1-kernel-fills-input"),
]


@pytest.mark.parametrize(("xs", "out", "ks", "pad", "pool", "bias"), POOL_CASES)
def test_conv2d_max_pool2d_equals_conv_then_pool(
    xs: tuple, out: int, ks: Any, pad: Any, pool: int, bias: bool, np_rng: np.random.Generator
) -> None:
    """The fused convolution and pooling: the composition's value and gradients w.r.t.
    input, kernel and bias, in float64 at the eval tolerance (a window or offset out of
    place would be O(1) off), with floor-mode cropping, padding, pools of 1-3."""
    conv = nn.Conv2d(
        xs[-1], out, ks, padding=pad, bias=bias, rngs=nnx.Rngs(0), param_dtype=jnp.float64,
        impl="im2col",
    )  # fmt: skip
    x = jnp.asarray(np_rng.standard_normal(xs))

    def fused(c: nnx.Conv, x: jax.Array) -> jax.Array:
        return jnp.sum(jnp.sin(fast.conv2d_max_pool2d(c, x, pool)))

    def ref(c: nnx.Conv, x: jax.Array) -> jax.Array:
        return jnp.sum(jnp.sin(nn.max_pool2d(c(x), pool)))

    y, y_ref = fast.conv2d_max_pool2d(conv, x, pool), nn.max_pool2d(conv(x), pool)
    assert y.shape == y_ref.shape and y.dtype == jnp.float64
    grads = nnx.grad(fused, argnums=(0, 1))(conv, x)
    grads_ref = nnx.grad(ref, argnums=(0, 1))(conv, x)
    tol = tolerance(jnp.float64, kind="eval")
    pairs = [(y, y_ref), *zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref), strict=True)]
    assert len(pairs) == (4 if bias else 3)
    for a, b in pairs:
        err = float(jnp.max(jnp.abs(a - b)))
        assert err <= tol.atol + tol.rtol * float(jnp.max(jnp.abs(b))), err


def test_conv2d_max_pool2d_takes_the_fused_product_only_where_it_applies(
    np_rng: np.random.Generator,
) -> None:
    """The fused product (found by its jitted name) for an im2col convolution; the plain
    composition, bit for bit, for lax.conv, a stride, 'SAME' padding, and a convolution
    being recorded by intercept (whose record must hold the convolution's output)."""
    x = jnp.asarray(np_rng.standard_normal((2, 10, 10, 2)), jnp.float32)

    def fused_names(c: nnx.Conv) -> bool:
        jaxpr = jax.make_jaxpr(lambda x: fast.conv2d_max_pool2d(c, x, 2))(x)
        return "_pooled_conv_dot" in str(jaxpr)

    assert fused_names(nn.Conv2d(2, 3, 3, rngs=nnx.Rngs(0), impl="im2col"))
    others = [
        nn.Conv2d(2, 3, 3, rngs=nnx.Rngs(0), impl="xla"),
        nn.Conv2d(2, 3, 3, stride=2, rngs=nnx.Rngs(0), impl="im2col"),
        nnx.Conv(2, 3, (3, 3), padding="SAME", rngs=nnx.Rngs(0)),
    ]
    for conv in others:
        assert not fused_names(conv)
        np.testing.assert_array_equal(fast.conv2d_max_pool2d(conv, x, 2), nn.max_pool2d(conv(x), 2))
    conv = nn.Conv2d(2, 3, 3, rngs=nnx.Rngs(0), impl="im2col")
    with intercept.intercept(conv) as rec:
        fast.conv2d_max_pool2d(conv, x, 2)
    assert [r.name for r in rec.records] == [""]  # the convolution itself, called
    for bad in (0, 2.0, (2, 2)):
        with pytest.raises(ValueError, match="kernel_size must be a positive int"):
            fast.conv2d_max_pool2d(conv, x, bad)  # type: ignore[arg-type]
    np.testing.assert_array_equal(rec.records[0].output, conv(x))


def test_lenet_flops_count_the_plain_convolutions() -> None:
    """LeNet's fused convolution-and-pooling products count the plain convolutions' work
    (every output position, the kernel's taps), as with impl='xla'."""
    from jaxnets.models.lenet import LeNet

    counts = []
    for impl in ("im2col", "xla"):
        model = LeNet(rngs=nnx.Rngs(0))
        for name in ("conv1", "conv2"):
            old = getattr(model, name)
            cin, cout = old.in_features, old.out_features
            setattr(model, name, nn.Conv2d(cin, cout, 3, rngs=nnx.Rngs(0), impl=impl))
        graph, params = nnx.split(model)

        def loss(p: Any, graph: Any = graph) -> jax.Array:
            return jnp.sum(nnx.merge(graph, p)(jnp.ones((2, 32, 32, 1), jnp.float32)))

        counts.append(jbench.matmul_flops(jax.grad(loss), params))
    macs = 30 * 30 * 6 * 9, 13 * 13 * 16 * 54, 576 * 120, 120 * 84, 84 * 10
    # batch 2 x 2 FLOP per multiply-add x (forward and weight gradient of every layer, input
    # gradient of all but conv1)
    assert counts == [2 * 2 * (3 * sum(macs) - macs[0])] * 2


# --------------------------------------------------------------------------------------------
# the elementwise form of tiny Linear products
# --------------------------------------------------------------------------------------------

LINEAR_CASES = [
    # lhs shape, (in, out)
    pytest.param((4, 2), (2, 5), id="xor-layer1"),
    pytest.param((1, 5), (5, 1), id="to-one-output"),
    pytest.param((7, 37), (37, 23), id="odd-and-larger"),
    pytest.param((2, 3, 6), (6, 4), id="extra-batch-axis"),
]


@pytest.mark.parametrize(("xs", "ws"), LINEAR_CASES)
def test_dot_elementwise_equals_dot_general_value_and_gradients(
    xs: tuple, ws: tuple, np_rng: np.random.Generator
) -> None:
    """dot_elementwise is Linear's product (and its gradients w.r.t. input and kernel) at the
    float64 parity tolerance: the same products summed in another order."""
    x = jnp.asarray(np_rng.standard_normal(xs), jnp.float64)
    w = jnp.asarray(np_rng.standard_normal(ws), jnp.float64)
    dims = (((x.ndim - 1,), (0,)), ((), ()))
    tol = tolerance(jnp.float64, kind="eval")

    def check(a: jax.Array, b: jax.Array) -> None:
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol.rtol, atol=tol.atol)

    check(fast.dot_elementwise(x, w, dims), lax.dot_general(x, w, dims))
    g = jnp.asarray(np_rng.standard_normal((*xs[:-1], ws[1])), jnp.float64)
    for argnum in (0, 1):
        ge = jax.grad(lambda *a: jnp.vdot(fast.dot_elementwise(*a, dims), g), argnum)(x, w)
        gd = jax.grad(lambda *a: jnp.vdot(lax.dot_general(*a, dims), g), argnum)(x, w)
        check(ge, gd)


def test_dot_elementwise_hands_other_products_to_dot_general(
    np_rng: np.random.Generator,
) -> None:
    """A contraction that is not Linear's, an integer or half dtype, or a requested result
    type goes to lax.dot_general unchanged (bit for bit)."""
    a = jnp.asarray(np_rng.standard_normal((3, 4, 5)), jnp.float32)
    b = jnp.asarray(np_rng.standard_normal((3, 5, 2)), jnp.float32)
    batched = (((2,), (1,)), ((0,), (0,)))
    np.testing.assert_array_equal(
        fast.dot_elementwise(a, b, batched), lax.dot_general(a, b, batched)
    )
    x, w = a[0], b[0]
    dims = (((1,), (0,)), ((), ()))
    for xx, ww, kw in [
        (x.astype(jnp.int32), w.astype(jnp.int32), {}),
        (x.astype(jnp.float16), w.astype(jnp.float16), {}),
        (x, w, {"preferred_element_type": jnp.float64}),
    ]:
        got = fast.dot_elementwise(xx, ww, dims, **kw)
        want = lax.dot_general(xx, ww, dims, **kw)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def _uses_elementwise(layer: nnx.Linear, x: jax.Array) -> bool:
    return "_elementwise_dot" in str(jax.make_jaxpr(lambda x: layer(x))(x))


def test_linear_impls_share_parameters_and_choose_as_documented(
    np_rng: np.random.Generator,
) -> None:
    """Linear(impl=...) changes only how the product is computed: the same kernel draws,
    outputs within tolerance; 'auto' is elementwise on CPU up to ELEMENTWISE_DOT_MAX
    multiply-adds (batch * in * out) and a dot_general above it."""
    lin = {
        impl: nn.Linear(8, 16, rngs=nnx.Rngs(0), impl=impl)
        for impl in ("auto", "dot", "elementwise")
    }
    np.testing.assert_array_equal(lin["dot"].kernel[...], lin["elementwise"].kernel[...])
    np.testing.assert_array_equal(lin["dot"].bias[...], lin["auto"].bias[...])
    tol = tolerance(jnp.float32, kind="eval")
    x = jnp.asarray(np_rng.standard_normal((8, 8)), jnp.float32)  # 8*8*16 = 1024: at the limit
    ref = lin["dot"](x)
    for impl in ("auto", "elementwise"):
        err = float(jnp.max(jnp.abs(lin[impl](x) - ref)))
        assert err <= tol.atol + tol.rtol * float(jnp.max(jnp.abs(ref))), (impl, err)
    on_cpu = jax.default_backend() == "cpu"
    assert fast.ELEMENTWISE_DOT_MAX == 8 * 8 * 16
    assert _uses_elementwise(lin["auto"], x) == on_cpu
    assert not _uses_elementwise(lin["auto"], jnp.zeros((9, 8), jnp.float32))
    assert not _uses_elementwise(lin["dot"], x)
    assert _uses_elementwise(lin["elementwise"], jnp.zeros((9, 8), jnp.float32))
    with pytest.raises(ValueError, match="impl must be"):
        nn.Linear(3, 4, rngs=nnx.Rngs(0), impl="fast")  # type: ignore[arg-type]


def test_linear_flops_do_not_depend_on_the_formulation() -> None:
    """Two stacked Linear layers, gradients w.r.t. both kernels and biases: the same count
    for the elementwise form as for dot_general (forward, weight gradients, and the input
    gradient of the second layer only)."""
    x = jnp.ones((4, 3), jnp.float32)
    counts = []
    for impl in ("dot", "elementwise"):
        l1 = nn.Linear(3, 5, rngs=nnx.Rngs(0), impl=impl)
        l2 = nn.Linear(5, 2, rngs=nnx.Rngs(1), impl=impl)
        params = nnx.state((l1, l2), nnx.Param)

        def loss(p: object, l1: nnx.Linear = l1, l2: nnx.Linear = l2) -> jax.Array:
            a, b = nnx.merge(nnx.graphdef((l1, l2)), p)
            return jnp.sum(b(jax.nn.relu(a(x))))

        counts.append(jbench.matmul_flops(jax.grad(loss), params))
    macs1, macs2 = 4 * 3 * 5, 4 * 5 * 2
    assert counts == [2 * (2 * macs1 + 3 * macs2)] * 2


@pytest.mark.parametrize("impl", ["im2col", "xla"])
def test_conv_gradient_flops_do_not_depend_on_the_formulation(impl: str) -> None:
    """Two stacked convolutions, weight gradients of both and the input gradient of the
    second: the same multiply-adds whether the convolutions are im2col matmuls or
    ``lax.conv`` (whose input gradient is a convolution over a cotangent padded by
    ``kernel - 1``, whose zero taps are not work)."""
    from flax import nnx

    from jaxnets.nn import Conv2d

    c1 = Conv2d(1, 6, 3, rngs=nnx.Rngs(0), impl=impl)
    c2 = Conv2d(6, 16, 3, rngs=nnx.Rngs(1), impl=impl)
    params = nnx.state((c1, c2), nnx.Param)
    x = jnp.ones((2, 15, 15, 1), jnp.float32)

    def loss(p: object) -> jax.Array:
        a, b = nnx.merge(nnx.graphdef((c1, c2)), p)
        return jnp.sum(b(a(x)))

    macs1, macs2 = 13 * 13 * 6 * 9, 11 * 11 * 16 * 54
    # batch 2 x 2 FLOP per multiply-add x (forward and weight gradient of both convolutions,
    # input gradient of the second only)
    assert jbench.matmul_flops(jax.grad(loss), params) == 2 * 2 * (2 * macs1 + 3 * macs2)


def test_conv_flops_skip_padding_taps() -> None:
    """A padded 3x3 convolution: taps on the zero border are not counted (brute force)."""
    x = jnp.ones((1, 5, 5, 2), jnp.float32)
    w = jnp.ones((3, 3, 2, 4), jnp.float32)
    dn = ("NHWC", "HWIO", "NHWC")
    f = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn)  # noqa: E731
    per_axis = sum(0 <= o + t - 1 < 5 for o in range(5) for t in range(3))  # 13 of 15
    assert jbench.matmul_flops(f, x, w) == 2 * 4 * 2 * per_axis**2


# --------------------------------------------------------------------------------------------
# per-model XLA options
# --------------------------------------------------------------------------------------------

YNN_OFF = {"xla_cpu_experimental_ynn_fusion_type": ""}
on_cpu = pytest.mark.skipif(
    jax.default_backend() != "cpu", reason="the options are chosen for XLA:CPU only"
)
knows_ynn_option = pytest.mark.skipif(
    fast_training._compiler_options_error(tuple(YNN_OFF.items())) is not None,
    reason="this jaxlib's XLA has no xla_cpu_experimental_ynn_fusion_type option",
)


@on_cpu
@knows_ynn_option
def test_default_compiler_options_turn_ynnpack_off_for_im2col_convolutions(monkeypatch) -> None:
    off = YNN_OFF
    assert default_compiler_options(jaxnets.create_model("lenet")) == off
    for name in ("mlp", "xor_net", "batchnorm_mlp"):
        assert default_compiler_options(jaxnets.create_model(name)) is None, name
    xla = nn.Conv2d(1, 2, 3, rngs=nnx.Rngs(0), impl="xla")
    assert default_compiler_options(xla) is None  # lax.conv: nothing to fix
    im2col = nn.Conv2d(1, 2, 3, rngs=nnx.Rngs(0), impl="im2col")
    assert default_compiler_options(im2col) == off
    # the user's own XLA_FLAGS setting of the option wins
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=reduce")
    assert default_compiler_options(jaxnets.create_model("lenet")) is None


def test_trainer_compiler_options_argument() -> None:
    model = jaxnets.create_model("lenet")
    assert Trainer(model, optim.sgd(0.1), compiler_options=None).compiler_options is None
    given = {"xla_cpu_enable_fast_math": False}
    assert Trainer(model, optim.sgd(0.1), compiler_options=given).compiler_options == given
    auto = Trainer(model, optim.sgd(0.1)).compiler_options
    assert auto == default_compiler_options(model)
    with pytest.raises(TypeError, match="compiler_options must be 'auto', None or a dict"):
        Trainer(model, optim.sgd(0.1), compiler_options="fast")  # type: ignore[arg-type]


@on_cpu
@knows_ynn_option
def test_lenet_options_reach_the_program_and_change_no_result() -> None:
    """The default (YNNPACK off) compiles to a program without YNNPACK fusions, and one
    training step and the eval outputs equal those under XLA's defaults (float32 parity
    bound: only the libraries computing the same products differ)."""
    spec = jaxnets.get_model_spec("lenet")
    x, y = spec.example_batch(8, np.random.default_rng(0))
    x = spec.to_flax_layout(x)
    fast = Trainer(jaxnets.create_model("lenet"), optim.sgd(0.1))
    plain = Trainer(jaxnets.create_model("lenet"), optim.sgd(0.1), compiler_options=None)
    assert fast.compiler_options is not None
    hlo = fast.step.lower(fast.init(), x, y).compile().as_text()
    assert "__ynn_fusion" not in hlo
    tol = tolerance("float32", kind="eval")

    def check(what: str, a: jax.Array, b: jax.Array) -> None:
        err = float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
        assert err <= tol.atol + tol.rtol * float(np.max(np.abs(np.asarray(b)))), (what, err)

    outs = []
    for trainer in (fast, plain):
        state, loss = trainer.step(trainer.init(), x, y)
        outs.append((loss, state.params, trainer.predict(state, x)))
    (l1, p1, o1), (l2, p2, o2) = outs
    check("loss", l1, l2)
    for a, b in zip(p1, p2, strict=True):
        check("params after one step", a, b)
    check("eval outputs", o1, o2)


def test_trainer_gather_ahead_argument() -> None:
    """'auto' gathers each batch a step ahead for im2col-convolution models on the CPU only;
    True and False are taken as given; anything else is a TypeError."""
    lenet, mlp = jaxnets.create_model("lenet"), jaxnets.create_model("mlp")
    on_cpu_backend = jax.default_backend() == "cpu"
    assert Trainer(lenet, optim.sgd(0.1)).gather_ahead is on_cpu_backend
    assert Trainer(mlp, optim.sgd(0.1)).gather_ahead is False
    xla = nn.Conv2d(1, 2, 3, rngs=nnx.Rngs(0), impl="xla")
    assert fast_training.default_gather_ahead(xla) is False  # lax.conv: no patches to build
    for given in (True, False):
        assert Trainer(mlp, optim.sgd(0.1), gather_ahead=given).gather_ahead is given
    with pytest.raises(TypeError, match="gather_ahead must be True, False or 'auto'"):
        Trainer(mlp, optim.sgd(0.1), gather_ahead="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["lenet", "batchnorm_mlp"])
@pytest.mark.parametrize("n_steps", [4, 1, 0])
def test_run_epoch_gathering_ahead_changes_no_result(name: str, n_steps: int) -> None:
    """run_epoch over shuffled, repeated indices gives the same losses, parameters and
    statistics whether each batch is gathered in its step or a step ahead (the same step on
    the same batches: equal bit for bit on XLA:CPU; on a GPU held to the trajectory
    tolerance, as XLA:GPU may fuse the two loops differently). One step and none too."""
    spec = jaxnets.get_model_spec(name)
    rng = np.random.default_rng(0)
    x, y = spec.example_batch(24, rng)
    x = spec.to_flax_layout(x)
    idx = np.concatenate([rng.permutation(24).reshape(3, 8), rng.permutation(24)[:8][None]])
    idx = idx[:n_steps]
    results = []
    for ahead in (True, False):
        trainer = Trainer(
            jaxnets.create_model(name), optim.sgd(0.1, momentum=0.9), gather_ahead=ahead
        )
        state, losses = trainer.run_epoch(trainer.init(), x, y, idx)
        assert losses.shape == (n_steps,)
        results.append([np.asarray(losses), *map(np.asarray, jax.tree.leaves(state))])
    tol = tolerance("float32", kind="trajectory")
    for a, b in zip(*results, strict=True):
        if jax.default_backend() == "cpu":
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=tol.rtol, atol=tol.atol)


def test_trainer_epoch_kernel_layout_argument() -> None:
    """'auto' carries Linear kernels transposed on the CPU backend for this library's
    optimizers only, and only for models with a kernel of 784x128 values or more (not LeNet's
    576x120, not XOR's); an optimizer whose state is not copies of the parameters (Adafactor's
    factored moments) is refused 'out_in' with a ValueError, as is an unknown layout."""
    mlp = jaxnets.create_model("mlp")
    on_cpu = jax.default_backend() == "cpu"
    for opt in (optim.sgd(0.1, momentum=0.9), optim.adam(), optim.rmsprop(), optim.adagrad()):
        assert fast_training.is_layout_free(opt)
        assert Trainer(mlp, opt).epoch_kernel_layout == ("out_in" if on_cpu else "in_out")
    for small in ("lenet", "xor_net", "advanced_nn"):
        assert Trainer(jaxnets.create_model(small), optim.sgd(0.1)).epoch_kernel_layout == "in_out"
    assert Trainer(jaxnets.create_model("two_layer_net"), optim.sgd(0.1)).epoch_kernel_layout == (
        "out_in" if on_cpu else "in_out"
    )  # 784x128, the smallest kernel measured faster transposed
    foreign = optax.sgd(0.1)
    assert not fast_training.is_layout_free(foreign)
    assert not fast_training.is_layout_free(optax.chain(optim.sgd(0.1)))
    assert Trainer(mlp, foreign).epoch_kernel_layout == "in_out"
    assert Trainer(mlp, foreign, epoch_kernel_layout="out_in").epoch_kernel_layout == "out_in"
    factored = optax.adafactor(1e-3, min_dim_size_to_factor=8)
    assert Trainer(mlp, factored).epoch_kernel_layout == "in_out"
    with pytest.raises(ValueError, match="not copies of the parameters"):
        Trainer(mlp, factored, epoch_kernel_layout="out_in")
    with pytest.raises(ValueError, match="must be 'auto', 'in_out' or 'out_in'"):
        Trainer(mlp, optim.sgd(0.1), epoch_kernel_layout="transposed")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["advanced_nn", "lenet", "batchnorm_mlp", "mlp"])
@pytest.mark.parametrize("n_steps", [3, 0])
def test_run_epoch_kernel_layout_changes_results_only_by_rounding(name: str, n_steps: int) -> None:
    """run_epoch with the Linear kernels carried transposed ('out_in') returns its state in the
    model's layout, equal to the 'in_out' epoch's within the float32 trajectory tolerance:
    losses, parameters, statistics and the momentum buffers (transposed back with the
    kernels). ``advanced_nn`` has a square 50x50 kernel, whose transposition no shape check
    would catch. With no step the state comes back bit for bit."""
    spec = jaxnets.get_model_spec(name)
    rng = np.random.default_rng(0)
    x, y = spec.example_batch(24, rng)
    x = spec.to_flax_layout(x)
    idx = rng.permutation(24).reshape(3, 8)[:n_steps]
    results = []
    for layout in ("in_out", "out_in"):
        model = jaxnets.create_model(name)
        trainer = Trainer(model, optim.sgd(0.1, momentum=0.9), epoch_kernel_layout=layout)
        start = trainer.init()
        before = [np.asarray(a) for a in jax.tree.leaves(start)]
        state, losses = trainer.run_epoch(start, x, y, idx)
        after = [np.asarray(a) for a in jax.tree.leaves(state)]
        if n_steps == 0:
            for a, b in zip(before, after, strict=True):
                np.testing.assert_array_equal(a, b)
        results.append([np.asarray(losses), *after])
    tol = tolerance("float32", kind="trajectory")
    for a, b in zip(*results, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(b, a, rtol=tol.rtol, atol=tol.atol)
