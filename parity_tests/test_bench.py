"""The benchmark harness and the fast forms it relies on: correctness only, no timing claims.

* the im2col convolution (the default on CPU) equals ``lax.conv`` in value and gradient, in
  float64 at the parity tolerance, for strides, padding and rectangular kernels;
* the elementwise form of tiny Linear products (the default on CPU up to
  ``ELEMENTWISE_DOT_MAX`` multiply-adds) equals ``lax.dot_general`` in value and gradient,
  and hands every other product to it;
* FLOP counts are exact for known shapes (LeNet's from its layer sizes) and the same for
  either form of a convolution or a Linear product;
* the interleaved timer runs what it should, in rotating order and back to back with the
  garbage collector off, and reports a variant that cannot run instead of failing;
* ``jaxnets.app.torch_bench.run`` on a tiny configuration emits well-formed JSON with the required
  fields, and the jitted step compiled once;
* ``jaxnets bench`` says plainly that it needs torch when torch is missing;
* the scripts of ``benchmarks/`` run, and report what they could not time instead of failing;
* the per-model XLA options of ``Trainer`` (YNNPACK off for im2col convolutions on CPU) are
  chosen as documented, reach the compiled program, and give what XLA's defaults give.
"""

from __future__ import annotations

import gc
import json
import math
import sys
from pathlib import Path
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
        np.testing.assert_array_equal(
            fast.conv2d_max_pool2d(conv, x, 2), nn.max_pool2d(conv(x), 2)
        )
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


# --------------------------------------------------------------------------------------------
# FLOP counts, peak, timer
# --------------------------------------------------------------------------------------------


def test_matmul_flops_counts_dots_convs_and_scans() -> None:
    a, b = jnp.ones((8, 5), jnp.float32), jnp.ones((5, 3), jnp.float32)
    assert jbench.matmul_flops(jnp.dot, a, b) == 2 * 8 * 5 * 3
    x, k = jnp.ones((2, 7, 7, 3), jnp.float32), jnp.ones((3, 3, 3, 4), jnp.float32)
    dn = ("NHWC", "HWIO", "NHWC")

    def ref(x, k):
        return lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=dn)

    def fast_fn(x, k):
        return fast.conv2d_im2col(x, k, (1, 1), ((0, 0), (0, 0)), dimension_numbers=dn)

    expected = 2 * (2 * 5 * 5 * 4) * (3 * 3 * 3)  # outputs x window, 2 per multiply-add
    assert jbench.matmul_flops(ref, x, k) == expected
    assert jbench.matmul_flops(fast_fn, x, k) == expected

    def loop(c):
        return lax.scan(lambda c, _: (c @ b @ b.T, None), c, None, length=4)[0]

    assert jbench.matmul_flops(loop, a) == 4 * (2 * 8 * 5 * 3 + 2 * 8 * 3 * 5)


def test_lenet_train_step_flops_match_its_layer_sizes() -> None:
    """LeNet's step: forward and weight gradients for every layer, input gradients for all
    but conv1 (the input is not differentiated), in multiply-adds per example:
    conv1 30*30*6*9, conv2 13*13*16*54, fc1 576*120, fc2 120*84, fc3 84*10."""
    from jaxnets import optim
    from jaxnets.training.trainer import Trainer

    macs = [30 * 30 * 6 * 9, 13 * 13 * 16 * 54, 576 * 120, 120 * 84, 84 * 10]
    per_example = 2 * (2 * sum(macs) + sum(macs[1:]))
    trainer = Trainer(jaxnets.create_model("lenet"), optim.sgd(lr=0.01), "cross_entropy")
    state = trainer.init()
    x = jnp.zeros((3, 32, 32, 1), jnp.float32)
    y = jnp.zeros((3,), jnp.int32)
    assert jbench.matmul_flops(trainer._step, state, x, y) == 3 * per_example


def test_cpu_peak_formula_and_overrides() -> None:
    p = jbench.cpu_peak(cores=2, flops_per_cycle=32, ghz=2.25)
    assert p.gflops == pytest.approx(144.0)
    assert "144.0 GFLOP/s = 2 cores x 32 FLOP/cycle x 2.25 GHz" in p.describe()
    detected = jbench.cpu_peak()
    assert detected.cores >= 1 and detected.flops_per_cycle in (8, 16, 32, 64)
    assert detected.ghz > 0 and detected.basis


def test_cpu_peak_knows_zen1_has_128_bit_fma_pipes(monkeypatch) -> None:
    info = {
        "vendor_id": "AuthenticAMD",
        "cpu family": "23",
        "model": "1",
        "flags": "sse avx avx2 fma",
        "cpu MHz": "1996.248",
        "model name": "AMD EPYC",
    }
    monkeypatch.setattr(jbench, "_cpuinfo", lambda: info)
    p = jbench.cpu_peak(cores=2)
    assert p.flops_per_cycle == 16 and p.gflops == pytest.approx(2 * 16 * 1.996248)
    monkeypatch.setattr(jbench, "_cpuinfo", lambda: {**info, "model": "49"})  # Zen 2
    assert jbench.cpu_peak(cores=2).flops_per_cycle == 32


def test_time_interleaved_rotates_and_reports_a_variant_that_cannot_run() -> None:
    calls: list[str] = []

    def make(name: str, fail: bool = False) -> jbench.Variant:
        def first() -> None:
            calls.append(f"{name}:first")
            if fail:
                raise RuntimeError("no compiler here\nsecond line")

        return jbench.Variant(name, "train", 5, first, lambda: calls.append(name))

    variants = [make("a"), make("b"), make("broken", fail=True), make("c")]
    times = jbench.time_interleaved(variants, repeats=3, warmup_blocks=1)
    assert set(times) == {"a", "b", "c"}
    assert all(len(t) == 3 and all(s >= 0 for s in t) for t in times.values())
    assert variants[2].error == "RuntimeError: no compiler here"
    timed = [c for c in calls if ":" not in c][3:]  # after one warm-up block each
    assert timed == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    with pytest.raises(ValueError, match="repeats"):
        jbench.time_interleaved(variants, repeats=0)


def test_time_interleaved_runs_blocks_back_to_back_with_the_collector_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A collection before each block would be a pause charged to that block (see the
    # docstring): one collection before the warm-ups, none between blocks, gc off throughout.
    events: list[str] = []
    monkeypatch.setattr(jbench.gc, "collect", lambda *a: events.append("collect") or 0)

    def make(name: str) -> jbench.Variant:
        def block() -> None:
            events.append(f"{name}:{'gc-on' if gc.isenabled() else 'gc-off'}")

        return jbench.Variant(name, "train", 1, lambda: events.append(f"{name}:first"), block)

    was_enabled = gc.isenabled()
    jbench.time_interleaved([make("a"), make("b")], repeats=2, warmup_blocks=1)
    assert events == [
        "a:first",
        "b:first",
        "collect",
        *["a:gc-off", "b:gc-off"],  # warm-ups
        *["a:gc-off", "b:gc-off", "b:gc-off", "a:gc-off"],  # two rounds, rotated
    ]
    assert gc.isenabled() == was_enabled


def test_default_batch_sizes_cover_the_issue_targets() -> None:
    assert jbench.default_batch_sizes("xor_net") == (4,)
    assert jbench.default_batch_sizes("lenet") == (64, 256)
    assert jbench.default_batch_sizes("mlp") == (64, 1024)
    assert jbench.default_batch_sizes("simple_nn") == (64,)
    assert jbench.default_steps("xor_net") == 1000
    assert jbench.default_steps("mlp", 1024) == 20 and jbench.default_steps("mlp", 64) == 50


# --------------------------------------------------------------------------------------------
# the harness end to end, tiny
# --------------------------------------------------------------------------------------------

REQUIRED = {"model", "batch_size", "variant", "us_per_step", "compile_s"}


def test_harness_emits_well_formed_json(tmp_path) -> None:
    from jaxnets.app import torch_bench as tbench

    doc = tbench.run(
        ["xor_net", "lenet"],
        batch_sizes=[2],
        steps=2,
        repeats=2,
        infer_calls=2,
        torch_compile=False,
    )
    path = tmp_path / "bench.json"
    tbench.dump_json(doc, str(path))
    back = json.loads(path.read_text())
    assert back["results"] and back["targets"]
    assert back["peak"]["gflops"] > 0 and "FLOP/cycle" in back["peak"]["describe"]
    kinds = {}
    for row in back["results"]:
        assert set(row) >= REQUIRED, row
        assert row["error"] is None
        assert row["us_per_step"] > 0 and math.isfinite(row["us_per_step"])
        if row["variant"] == "torch_eager":
            assert row["compile_s"] is None and row["speedup_vs_torch_eager"] == 1.0
        else:
            # every JAX variant compiles in its first, timed call (XLA takes milliseconds at
            # the least): a compile spent before the timing (as an output cross-check once
            # did for inference) would show as ~0 here
            assert row["compile_s"] > 1e-3, row
        assert row["flops_per_step"] > 0
        kinds.setdefault((row["model"], row["kind"]), set()).add(row["variant"])
        if row["variant"] in ("jax_jit", "jax_frozen") and row["kind"] == "infer":
            # the dispatch floor was timed in the same rounds
            assert row["dispatch_floor_us"] > 0 and math.isfinite(row["dispatch_floor_us"])
            assert row["ceiling_vs_torch_eager"] > 0
        if row["variant"] == "jax_jit" and row["kind"] == "train":
            assert row["jit_cache_size"] == 1  # the step did not recompile
            lc = row["loss_check"]
            assert jbench.same_computation(lc["torch"], lc["jax"]), lc
    for model in ("xor_net", "lenet"):
        assert kinds[(model, "train")] == {"torch_eager", "jax_jit", "jax_scan"}
        assert kinds[(model, "infer")] == {"torch_eager", "jax_jit", "jax_frozen"}
    for t in back["targets"]:
        assert {"target", "model", "batch_size", "measured", "required", "met"} <= set(t)
        if t["target"].startswith("batch-1 inference latency"):
            assert t["ceiling"] > 0 and "takes" in t["how"], t
    text = tbench.render(doc)
    assert "jax_scan" in text and "FP32 peak" in text
    assert tbench.markdown(doc).startswith("| model | batch |")
    # the rows say how JAX was compiled: the trainer's per-model default
    for row in back["results"]:
        if row["variant"].startswith("jax"):
            expected = default_compiler_options(jaxnets.create_model(row["model"]))
            assert row["compiler_options"] == expected, row


def test_target_values_print_the_way_the_verdict_went() -> None:
    from jaxnets.app.torch_bench import _measured, _pct

    def target(measured: float, required: float, unit: str = "x") -> dict:
        met = measured >= required
        return {"measured": measured, "required": required, "unit": unit, "met": met}

    assert _measured(target(2.999242, 3.0)) == "2.999"  # not "3.00" next to "not met"
    assert _measured(target(3.004, 3.0)) == "3.00"
    assert _measured(target(148.6482, 150.0)) == "148.65"
    assert _measured(target(0.8499, 0.85, "of peak")) == "84.99"
    assert _measured(target(1.008, 0.85, "of peak")) == "100.8"
    assert (_pct(1.008), _pct(0.0743), _pct(None)) == ("101", "7.4", "-")


def test_latency_target_takes_the_faster_jax_predictor() -> None:
    """The batch-1 target is judged on the faster of ``Trainer.predict`` (``jax_jit``) and
    ``Trainer.frozen_predictor`` (``jax_frozen``), and says which one it was."""
    from jaxnets.app.torch_bench import check_targets

    def row(variant: str, speedup: float | None) -> dict[str, Any]:
        r = {"model": "mlp", "batch_size": 1, "kind": "infer", "variant": variant,
             "speedup_vs_torch_eager": speedup, "us_per_step": 10.0}  # fmt: skip
        if variant.startswith("jax"):
            r |= {"dispatch_floor_us": 4.0, "ceiling_vs_torch_eager": 9.0}
        return r

    rows = [row("torch_eager", None), row("jax_jit", 2.4), row("jax_frozen", 3.1)]
    (t,) = check_targets(rows, None)
    assert (t["measured"], t["met"]) == (3.1, True) and t["how"].startswith("jax_frozen;")
    rows[2]["speedup_vs_torch_eager"] = 1.9
    (t,) = check_targets(rows, None)
    assert (t["measured"], t["met"]) == (2.4, False) and t["how"].startswith("jax_jit;")


def test_bench_command_says_it_needs_torch(monkeypatch, capsys) -> None:
    from jaxnets.app import cli

    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--model", "xor_net"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "jaxnets bench needs PyTorch" in err and "torch==2.13.0" in err


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


def _load_benchmark(name: str) -> Any:
    """A script of ``benchmarks/`` (not a package) imported as a module."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return module


def test_conv_pool_script_runs(capsys) -> None:
    """``benchmarks/conv_pool.py`` (the README's figures for LeNet's fused convolution and
    pooling) times both forms of the same LeNet, jitted steps and scan, one line each."""
    module = _load_benchmark("conv_pool")
    assert module.main(["--batch-size", "2", "--steps", "2", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(maxsplit=3)[3] for ln in lines[2:]] == ["2, jax_jit", "2, jax_scan"]
    for ln in lines[2:]:
        assert all(float(v) > 0 for v in ln.split()[:3])


def test_mlp_products_script_runs(capsys) -> None:
    """``benchmarks/mlp_products.py`` (the README's bound on the MLP's step) runs and reports
    both products and their sum, with torch's same products beside them (torch is installed
    here) or without them under ``--no-torch``."""
    module = _load_benchmark("mlp_products")
    assert module.main(["--batch-size", "2", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "torch" in lines[0]
    assert [ln.split()[0] for ln in lines[1:]] == ["forward", "weight", "both"]
    for ln in lines[1:3]:
        assert ln.count("GFLOP/s") == 2
        assert float(ln.split("JAX/torch")[1]) > 0
    assert "torch" in lines[3]

    assert module.main(["--batch-size", "2", "--repeats", "1", "--no-torch"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in lines[1:]] == ["forward", "weight", "both"]
    assert not any("torch" in ln for ln in lines)


_HLO = """\
HloModule jit__step, entry_computation_layout={(f32[4,3]{1,0})->f32[4,2]{1,0}}

%fused_computation (param_0: f32[4,3]) -> f32[4,3] {
  %param_0 = f32[4,3]{1,0} parameter(0)
  ROOT %neg.1 = f32[4,3]{1,0} negate(%param_0)
}

ENTRY %main (x.1: f32[4,3], w.1: f32[3,2]) -> f32[4,2] {
  %x.1 = f32[4,3]{1,0} parameter(0)
  %w.1 = f32[3,2]{1,0} parameter(1)
  %negate_fusion = f32[4,3]{1,0} fusion(%x.1), kind=kLoop, calls=%fused_computation, \
metadata={op_name="jit(_step)/jvp()/neg" stack_frame_id=3}
  %ynn_fusion.2 = f32[4,2]{1,0} fusion(%negate_fusion, %w.1), kind=kCustom, \
calls=%fused_computation, backend_config={"fusion_config":{"kind":"__ynn_fusion"}}
  %dot.3 = f32[3,2]{1,0} dot(%x.1, %ynn_fusion.2), lhs_contracting_dims={0}, \
rhs_contracting_dims={0}, metadata={op_name="jit(_step)/transpose(jvp())/transpose"}
  ROOT %concatenate.1 = f32[4,5]{1,0} concatenate(%negate_fusion, %ynn_fusion.2), \
dimensions={1}
}
"""


def test_step_profile_reads_hlo_instructions() -> None:
    """``benchmarks/step_profile.py`` names each profiled thunk's HLO instruction right: its
    shape, its kind (YNNPACK fusions and dots are library products) and its operands."""
    module = _load_benchmark("step_profile")
    hlo = module.parse_hlo(_HLO)
    assert {"x.1", "w.1", "neg.1", "negate_fusion", "ynn_fusion.2", "dot.3"} <= set(hlo)
    assert hlo["negate_fusion"].kind == "fused loop"
    assert hlo["negate_fusion"].source == "jit(_step)/jvp()/neg"
    assert hlo["ynn_fusion.2"].kind == "library product"
    assert hlo["dot.3"].kind == "library product"
    assert hlo["dot.3"].operands == ("x.1", "ynn_fusion.2")
    assert hlo["concatenate.1"].kind == "copy/concatenate"
    assert hlo["concatenate.1"].shape == "f32[4,5]"
    assert module.describe(hlo["dot.3"], hlo) == (
        "f32[4,3] x f32[4,2] -> f32[3,2]  (transpose(jvp())/transpose)"
    )
    assert module.describe(hlo["negate_fusion"], hlo) == "jvp()/neg"


def test_step_profile_adds_waiting_to_asynchronous_products() -> None:
    """Idle time while an asynchronous product is in flight (its launch to the first thunk
    that reads it, through bitcasts) is the product's; two in flight share it; idle time with
    none in flight is reported apart, and the parts cover the span."""
    module = _load_benchmark("step_profile")
    hlo = module.parse_hlo(
        """\
ENTRY %main (x.1: f32[4,3], w.1: f32[3,2]) -> f32[4,2] {
  %x.1 = f32[4,3]{1,0} parameter(0)
  %w.1 = f32[3,2]{1,0} parameter(1)
  %dot.1 = f32[4,2]{1,0} dot(%x.1, %w.1), lhs_contracting_dims={1}, rhs_contracting_dims={0}
  %dot.2 = f32[4,2]{1,0} dot(%x.1, %w.1), lhs_contracting_dims={1}, rhs_contracting_dims={0}
  %bitcast.1 = f32[8]{0} bitcast(%dot.1)
  %add_fusion = f32[8]{0} fusion(%bitcast.1), kind=kLoop, calls=%c
  ROOT %neg_fusion = f32[4,2]{1,0} fusion(%dot.2, %add_fusion), kind=kLoop, calls=%c
}
"""
    )
    ev = module.Event
    us = 1000  # nanoseconds
    events = [
        ev("dot.1", 0, 1 * us),  # launched, then runs on the pool until add_fusion reads it
        ev("dot.2", 2 * us, 3 * us),  # launched too; read by neg_fusion
        ev("add_fusion", 10 * us, 12 * us),
        ev("neg_fusion", 20 * us, 21 * us),
        ev("add_fusion", 30 * us, 31 * us),  # a later step's: not dot.1's first reader
    ]
    total, waited = module.step_times(events, hlo)
    # idle: 1-2 (dot.1 alone), 3-10 (both: split), 12-20 (dot.2 alone), 21-30 (none)
    assert waited["dot.1"] == pytest.approx((1 + 3.5) * 1e-6)
    assert waited["dot.2"] == pytest.approx((3.5 + 8) * 1e-6)
    assert total["dot.1"] == pytest.approx((1 + 4.5) * 1e-6)
    assert total["dot.2"] == pytest.approx((1 + 11.5) * 1e-6)
    assert total["add_fusion"] == pytest.approx(3e-6)
    assert total[module.IDLE] == pytest.approx(9e-6)
    assert sum(total.values()) == pytest.approx(31e-6)  # the span, no overlap here
    assert module.step_times([], hlo) == ({}, {})


@pytest.mark.parametrize("scan", [False, True], ids=["step", "scan"])
def test_step_profile_script_runs(capsys, scan: bool) -> None:
    """The script profiles a real step, or with --scan a real run_epoch: LeNet's im2col
    products show up as library products and every kind's share adds up to the whole."""
    module = _load_benchmark("step_profile")
    args = ["--model", "lenet", "--batch-size", "2", "--steps", "2", "--top", "40"]
    assert module.main(args + ["--scan"] * scan) == 0
    out = capsys.readouterr().out
    header = "lenet batch 2, run_epoch (scan), jax" if scan else "lenet batch 2, jax"
    assert out.startswith(header)
    assert ("steps in one scan" in out) is scan
    table, kinds = out.split("\nby kind:\n")
    assert "library product" in table and " -> f32[" in table
    assert "waiting on asynchronous products" in table
    shares = [float(ln.split()[1].rstrip("%")) for ln in kinds.strip().splitlines()]
    assert abs(sum(shares) - 100.0) < 0.5


def test_step_profile_rejects_bad_arguments(capsys) -> None:
    """An unknown model or a non-positive count is a usage error naming the problem, not a
    traceback."""
    module = _load_benchmark("step_profile")
    with pytest.raises(SystemExit) as exc:
        module.main(["--model", "no_such_model"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown model 'no_such_model'" in err and "lenet" in err
    with pytest.raises(SystemExit):
        module.main(["--steps", "0"])
    assert "must be positive" in capsys.readouterr().err


def test_step_profile_stops_on_other_backends(monkeypatch, capsys) -> None:
    """It reads XLA:CPU's thunk events only; elsewhere it says so instead of printing a table
    it was never checked to build right."""
    module = _load_benchmark("step_profile")
    monkeypatch.setattr(module.jax, "default_backend", lambda: "gpu")
    assert module.main(["--model", "xor_net", "--batch-size", "4"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "XLA:CPU" in captured.err and "'gpu'" in captured.err


def test_xla_options_script_compares_sets_in_one_run(capsys) -> None:
    """``benchmarks/xla_options.py`` times the baseline and each option set in the same
    rounds: one line each, the baseline's ratio exactly 1, and an option XLA rejects is
    reported with XLA's message and left out while the rest are still timed (exit 1)."""
    module = _load_benchmark("xla_options")
    common = ["--model", "my_network", "--batch-size", "4", "--steps", "2", "--repeats", "1"]
    fast_math_off = '{"xla_cpu_enable_fast_math": false}'
    assert module.main([*common, "--options", fast_math_off]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("my_network batch 4, 2 steps a block, 1 repeats")
    rows = lines[2:]
    assert [r.split("  ")[-1] for r in rows] == ["baseline", fast_math_off]
    jit_us, scan_us, jit_x, scan_x = (float(c) for c in rows[0].split()[:4])
    assert jit_us > 0 and scan_us > 0 and jit_x == scan_x == 1.0
    assert all(float(c) > 0 for c in rows[1].split()[:4])

    assert module.main([*common, "--options", '{"xla_cpu_no_such_option": 1}']) == 1
    out = capsys.readouterr().out
    assert "left out, XLA did not compile or run with it" in out and "xla_cpu_no_such_option" in out
    assert out.splitlines()[-1].endswith("baseline")


def test_xla_options_script_leaves_out_a_different_computation(monkeypatch, capsys) -> None:
    """A set whose first loss is not the baseline's (beyond the float32 tolerance) is not
    timed against it: it would be another computation."""
    module = _load_benchmark("xla_options")
    real = module.jax_train_variants
    calls = []

    def shifted(*args: Any, **kwargs: Any) -> Any:
        variants, info = real(*args, **kwargs)
        calls.append(info["first_loss"])
        if len(calls) > 1:
            info = {**info, "first_loss": info["first_loss"] + 1.0}
        return variants, info

    monkeypatch.setattr(module, "jax_train_variants", shifted)
    argv = ["--model", "my_network", "--batch-size", "4", "--steps", "2", "--repeats", "1"]
    assert module.main([*argv, "--options", '{"xla_cpu_enable_fast_math": false}']) == 1
    out = capsys.readouterr().out
    assert "left out, first loss" in out and "is not the baseline's" in out
    assert out.splitlines()[-1].endswith("baseline")


def test_xla_options_script_rejects_bad_arguments(capsys) -> None:
    """An option set that is not a JSON object, or a non-positive count, is a usage error
    that says what to write."""
    module = _load_benchmark("xla_options")
    for bad, says in (("{not json", "not JSON"), ("[1, 2]", "must be a JSON object")):
        with pytest.raises(SystemExit) as exc:
            module.main(["--options", bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert says in err and repr(bad) in err
    with pytest.raises(SystemExit):
        module.main(["--repeats", "0"])
    assert "must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        module.main(["--model", "no_such_model"])
    assert "unknown model 'no_such_model'" in capsys.readouterr().err


def test_same_computation_is_the_float32_eval_tolerance() -> None:
    """The check every benchmark makes before comparing two programs' speed: results within
    the table's float32 ``eval`` entry agree, results just beyond it do not, and a shape
    mismatch is an error, not a verdict."""
    tol = tolerance("float32", kind="eval")
    ref = np.array([1.0, -2.0, 3.0], np.float32)
    inside = ref + 0.5 * (tol.atol + tol.rtol * np.abs(ref))
    outside = ref + 2.0 * (tol.atol + tol.rtol * np.abs(ref))
    assert jbench.same_computation(ref, ref)
    assert jbench.same_computation(inside, ref)
    assert not jbench.same_computation(outside, ref)
    assert jbench.same_computation(2.5, np.float32(2.5))
    with pytest.raises(ValueError, match="shape mismatch"):
        jbench.same_computation(ref[:2], ref)
