"""The converter: bit-exact round trips both ways, and loud, complete, harmless failures."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

import jaxnets
import torchref
from jaxnets import convert
from torchref import bridge

DTYPES = [(jnp.float32, torch.float32), (jnp.float64, torch.float64)]
DTYPE_IDS = ["float32", "float64"]


def _torch_model(name: str, tdtype: torch.dtype, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torchref.create_model(name, dtype=tdtype)
    # Make running statistics non-trivial so the round trip moves real values.
    for _buf_name, buf in model.named_buffers():
        if buf.is_floating_point():
            buf.copy_(torch.rand_like(buf) + 0.5)
        else:
            buf.fill_(7)
    return model


@pytest.mark.parametrize(("jdtype", "tdtype"), DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", jaxnets.list_models())
def test_torch_flax_torch_round_trip_is_bit_exact(name, jdtype, tdtype, seed) -> None:
    t = _torch_model(name, tdtype, seed)
    f = jaxnets.create_model(name, param_dtype=jdtype)
    before = bridge.to_numpy_state_dict(t)
    bridge.torch_to_flax(t, f)
    back = torchref.create_model(name, dtype=tdtype)
    bridge.flax_to_torch(f, back)
    after = bridge.to_numpy_state_dict(back)
    assert list(after) == list(before)
    for k in before:
        assert after[k].dtype == before[k].dtype, k
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


@pytest.mark.parametrize(("jdtype", "tdtype"), DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", jaxnets.list_models())
def test_flax_torch_flax_round_trip_is_bit_exact(name, jdtype, tdtype, seed) -> None:
    f = jaxnets.create_model(name, rngs=nnx.Rngs(seed + 1), param_dtype=jdtype)
    before = nnx.to_flat_state(nnx.state(f))
    t = torchref.create_model(name, dtype=tdtype)
    bridge.flax_to_torch(f, t)
    g = jaxnets.create_model(name, rngs=nnx.Rngs(seed + 2), param_dtype=jdtype)
    bridge.torch_to_flax(t, g)
    after = nnx.to_flat_state(nnx.state(g))
    assert [p for p, _ in before] == [p for p, _ in after]
    for (path, a), (_, b) in zip(before, after, strict=True):
        assert a[...].dtype == b[...].dtype, path
        np.testing.assert_array_equal(np.asarray(b[...]), np.asarray(a[...]), err_msg=str(path))


def test_layout_rules_are_the_documented_ones() -> None:
    f = jaxnets.create_model("lenet")
    sd = convert.state_dict(f)
    np.testing.assert_array_equal(sd["fc1.weight"], np.asarray(f.fc1.kernel[...]).T)  # [out, in]
    np.testing.assert_array_equal(  # [O, I, kH, kW] <- [kH, kW, I, O]
        sd["conv2.weight"], np.asarray(f.conv2.kernel[...]).transpose(3, 2, 0, 1)
    )
    assert sd["conv2.weight"].shape == (16, 6, 3, 3)
    assert f.conv1.kernel_size == (3, 3) and f.conv1.padding == ((0, 0), (0, 0))
    assert convert.torch_to_flax_key_map(f)["conv1.weight"] == "conv1.kernel"
    bn = convert.torch_to_flax_key_map(jaxnets.create_model("batchnorm_mlp"))
    assert bn["bn1.running_var"] == "bn1.var" and bn["bn1.weight"] == "bn1.scale"


def _snapshot(model: nnx.Module) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in convert.state_dict(model).items()}


def test_every_problem_is_reported_at_once_and_nothing_is_written() -> None:
    f = jaxnets.create_model("batchnorm_mlp")
    before = _snapshot(f)
    sd = convert.state_dict(jaxnets.create_model("batchnorm_mlp", rngs=nnx.Rngs(9)))
    del sd["fc3.bias"]  # missing
    sd["fc4.weight"] = np.zeros((1, 1), np.float32)  # unexpected
    sd["fc1.weight"] = sd["fc1.weight"].T  # wrong shape (a Flax-layout kernel)
    sd["fc2.bias"] = sd["fc2.bias"].astype(np.float64)  # wrong dtype
    sd["bn1.num_batches_tracked"] = np.float32(1.0)  # counter must be an integer
    with pytest.raises(convert.StateDictError) as err:
        convert.load_state_dict(f, sd)
    msg = str(err.value)
    assert "5 problem(s), nothing was written" in msg
    for needle in (
        "missing key 'fc3.bias'",
        "unexpected key 'fc4.weight'",
        "'fc1.weight': shape (784, 128) in the state dict, (128, 784) expected",
        "'fc2.bias': dtype float64 in the state dict, float32 expected",
        "'bn1.num_batches_tracked': dtype float32, an integer dtype expected",
    ):
        assert needle in msg
    assert len(err.value.problems) == 5
    after = _snapshot(f)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


def test_non_strict_load_returns_skipped_keys_like_torch() -> None:
    f = jaxnets.create_model("xor_net")
    sd = convert.state_dict(jaxnets.create_model("xor_net", rngs=nnx.Rngs(5)))
    del sd["layer2.bias"]
    sd["extra"] = np.zeros(3, np.float32)
    result = convert.load_state_dict(f, sd, strict=False)
    assert result.missing_keys == ["layer2.bias"] and result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(np.asarray(f.layer1.kernel[...]), sd["layer1.weight"].T)


def test_flax_to_torch_refuses_mismatches_before_writing() -> None:
    f = jaxnets.create_model("my_network", input_dim=4)
    t = torchref.create_model("my_network", input_dim=5)
    before = bridge.to_numpy_state_dict(t)
    with pytest.raises(convert.StateDictError, match=r"'layer1.weight': shape \(32, 4\)"):
        bridge.flax_to_torch(f, t)
    with pytest.raises(convert.StateDictError, match=r"dtype float32 from the twin, torch.float64"):
        bridge.flax_to_torch(
            jaxnets.create_model("xor_net"), torchref.create_model("xor_net", dtype=torch.float64)
        )
    for k, v in bridge.to_numpy_state_dict(t).items():
        np.testing.assert_array_equal(v, before[k])


def test_a_layer_without_a_rule_is_named() -> None:
    class Odd(nnx.Module):
        def __init__(self) -> None:
            self.w = nnx.Param(jnp.zeros(3))

    class Holder(nnx.Module):
        def __init__(self) -> None:
            self.fc = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
            self.odd = Odd()

    with pytest.raises(TypeError, match=r"no conversion rule for the variables \['odd.w"):
        convert.state_dict(Holder())


def test_register_rule_teaches_a_new_layer() -> None:
    class Scale(nnx.Module):
        def __init__(self) -> None:
            self.gain = nnx.Param(jnp.arange(3.0, dtype=jnp.float32))

    convert.register_rule(Scale, (convert.Rule("weight", "gain"),))
    try:
        s = Scale()
        assert list(convert.state_dict(s)) == ["weight"]
        convert.load_state_dict(s, {"weight": np.ones(3, np.float32)})
        np.testing.assert_array_equal(np.asarray(s.gain[...]), np.ones(3))
    finally:
        del convert.RULES[Scale]


def test_state_to_torch_converts_gradients() -> None:
    f = jaxnets.create_model("lenet")
    grads = nnx.grad(lambda m: m(jnp.ones((2, 32, 32, 1))).sum())(f)
    g = convert.state_to_torch(f, grads)
    assert list(g) == [k for k in convert.state_dict(f)]
    assert g["conv1.weight"].shape == (6, 1, 3, 3) and g["fc1.weight"].shape == (120, 576)
    np.testing.assert_array_equal(g["fc2.weight"], np.asarray(grads["fc2"]["kernel"][...]).T)


def test_float64_twin_keeps_float64_running_statistics() -> None:
    assert jax.config.read("jax_enable_x64")
    sd = convert.state_dict(jaxnets.create_model("batchnorm_mlp", param_dtype=jnp.float64))
    assert sd["bn1.running_var"].dtype == np.float64 and sd["bn1.weight"].dtype == np.float64
    assert sd["bn1.num_batches_tracked"].dtype == np.int64


def test_an_abstract_twin_can_be_filled_from_torch(seed: int) -> None:
    """nnx.eval_shape builds the twin without running its initialisers; loading fills it."""
    abstract = nnx.eval_shape(lambda: jaxnets.create_model("batchnorm_mlp"))
    assert isinstance(abstract.fc1.kernel.get_value(), jax.ShapeDtypeStruct)
    torch.manual_seed(seed)
    t = torchref.create_model("batchnorm_mlp")
    bridge.torch_to_flax(t, abstract)
    assert isinstance(abstract.fc1.kernel.get_value(), jax.Array)
    for k, v in bridge.to_numpy_state_dict(t).items():
        np.testing.assert_array_equal(convert.state_dict(abstract)[k], v, err_msg=k)


class _TorchSeq(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _FlaxSeq(nnx.Module):
    def __init__(self, container: type, rngs: nnx.Rngs) -> None:
        fc = jaxnets.nn.Linear
        parts = [fc(4, 5, rngs=rngs), jax.nn.relu, fc(5, 2, rngs=rngs)]
        self.net = container(parts) if container is nnx.List else container(*parts)


def test_nnx_sequential_for_torch_sequential_is_named_with_the_fix() -> None:
    # nnx.Sequential keys its children net.layers.0, torch's nn.Sequential net.0: the load
    # says so and points at nnx.List, which takes torch's indices
    t = _TorchSeq()
    with pytest.raises(
        convert.StateDictError,
        match=r"'net\.layers\.0\.bias' are torch's "
        r"'net\.0\.bias' with an extra 'layers\.'.*nnx\.List",
    ):
        bridge.torch_to_flax(t, _FlaxSeq(nnx.Sequential, nnx.Rngs(0)))
    bridge.torch_to_flax(t, _FlaxSeq(nnx.List, nnx.Rngs(0)))  # loads


class _DropoutNet(torch.nn.Module):
    """The porting recipe's kind of model: a Dropout between two Linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.drop, self.fc2 = (
            torch.nn.Linear(4, 8),
            torch.nn.Dropout(0.5),
            torch.nn.Linear(8, 3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


class _DropoutTwin(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs) -> None:
        self.fc1 = jaxnets.nn.Linear(4, 8, rngs=rngs, param_dtype=jnp.float64)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.fc2 = jaxnets.nn.Linear(8, 3, rngs=rngs, param_dtype=jnp.float64)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(self.drop(jax.nn.relu(self.fc1(x))))


def test_abstract_twin_with_dropout_runs_after_loading(seed) -> None:
    """The porting recipe (an ``nnx.eval_shape`` twin, then ``torch_to_flax``): loading the
    weights also gives the Dropout's random stream concrete values, so the twin runs in
    training mode and ``parity.compare`` compares it (before, both failed with a JAX type
    error on an abstract key). In eval mode it equals torch within the parity tolerance."""
    from torchref import parity

    torch.manual_seed(seed)
    t = _DropoutNet().double()
    twin = nnx.eval_shape(lambda: _DropoutTwin(rngs=nnx.Rngs(0)))
    bridge.torch_to_flax(t, twin)
    x = np.random.default_rng(seed).standard_normal((6, 4))
    y = np.arange(6) % 3
    twin.train()
    out = np.asarray(twin(jnp.asarray(x)))
    assert out.shape == (6, 3) and np.isfinite(out).all()
    assert not np.array_equal(out, np.asarray(twin(jnp.asarray(x))))  # the stream moves on
    report = parity.compare(t.train(), twin, x, y)  # compared, not a type error
    assert report.comparisons
    t.eval()
    twin.eval()
    parity.compare(t, twin, x, y).raise_if_failed()
    # a stream that already holds values is left as it is
    key = twin.drop.rngs.key.get_value()
    convert.materialize_rng_state(twin, seed=5)
    assert jnp.array_equal(
        jax.random.key_data(twin.drop.rngs.key.get_value()), jax.random.key_data(key)
    )


class _TorchLayers(torch.nn.Module):
    """Every jaxnets.nn layer with parameters or buffers, in its variants."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        nn = torch.nn
        self.conv1d = nn.Conv1d(3, 4, 3, padding_mode="circular", padding=1)
        self.conv1d_nobias = nn.Conv1d(4, 2, (2,), bias=False)
        self.conv2d = nn.Conv2d(2, 4, (3, 2), groups=2, padding_mode="reflect", padding=1)
        self.ln = nn.LayerNorm(5)
        self.ln_2d = nn.LayerNorm([2, 5], eps=1e-3)
        self.ln_nobias = nn.LayerNorm(5, bias=False)
        self.ln_plain = nn.LayerNorm(5, elementwise_affine=False)
        self.emb = nn.Embedding(7, 3, padding_idx=2)
        self.bn = nn.BatchNorm1d(4)
        self.bn_noaffine = nn.BatchNorm2d(4, affine=False)
        self.bn_nobias = nn.BatchNorm1d(4, bias=False)
        self.bn_nostats = nn.BatchNorm2d(4, track_running_stats=False)
        self.bn_bare = nn.BatchNorm1d(4, affine=False, track_running_stats=False, momentum=None)
        self.to(dtype)


class _FlaxLayers(nnx.Module):
    def __init__(self, rngs: nnx.Rngs, param_dtype: object) -> None:
        nn, kw = jaxnets.nn, {"rngs": rngs, "param_dtype": param_dtype}
        self.conv1d = nn.Conv1d(3, 4, 3, padding_mode="circular", padding=1, **kw)
        self.conv1d_nobias = nn.Conv1d(4, 2, (2,), bias=False, **kw)
        self.conv2d = nn.Conv2d(2, 4, (3, 2), groups=2, padding_mode="reflect", padding=1, **kw)
        self.ln = nn.LayerNorm(5, **kw)
        self.ln_2d = nn.LayerNorm([2, 5], eps=1e-3, **kw)
        self.ln_nobias = nn.LayerNorm(5, bias=False, **kw)
        self.ln_plain = nn.LayerNorm(5, elementwise_affine=False, **kw)
        self.emb = nn.Embedding(7, 3, padding_idx=2, **kw)
        self.bn = nn.BatchNorm1d(4, **kw)
        self.bn_noaffine = nn.BatchNorm2d(4, affine=False, **kw)
        self.bn_nobias = nn.BatchNorm1d(4, bias=False, **kw)
        self.bn_nostats = nn.BatchNorm2d(4, track_running_stats=False, **kw)
        self.bn_bare = nn.BatchNorm1d(
            4, affine=False, track_running_stats=False, momentum=None, **kw
        )


@pytest.mark.parametrize(("jdtype", "tdtype"), DTYPES, ids=DTYPE_IDS)
def test_vocabulary_layers_round_trip_bit_exact_both_ways(jdtype, tdtype, seed) -> None:
    torch.manual_seed(seed)
    t = _TorchLayers(tdtype)
    with torch.no_grad():  # every tensor non-trivial, counters included
        for _, tensor in [*t.named_parameters(), *t.named_buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5)
            else:
                tensor.fill_(11)
    before = bridge.to_numpy_state_dict(t)
    f = _FlaxLayers(nnx.Rngs(seed), jdtype)
    assert list(convert.state_dict(f)) == list(before)  # same keys, same order
    bridge.torch_to_flax(t, f)
    back = _TorchLayers(tdtype)
    bridge.flax_to_torch(f, back)
    after = bridge.to_numpy_state_dict(back)
    for k in before:
        assert after[k].dtype == before[k].dtype, k
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)
    # and from the twin's own draws: flax -> torch -> flax
    g = _FlaxLayers(nnx.Rngs(seed + 1), jdtype)
    first = nnx.to_flat_state(nnx.state(g))
    bridge.flax_to_torch(g, t)
    h = _FlaxLayers(nnx.Rngs(seed + 2), jdtype)
    bridge.torch_to_flax(t, h)
    again = nnx.to_flat_state(nnx.state(h, nnx.Any(nnx.Param, nnx.BatchStat)))
    first = [(p, v) for p, v in first if isinstance(v, nnx.Param | nnx.BatchStat)]
    assert [p for p, _ in first] == [p for p, _ in again]
    for (path, a), (_, b) in zip(first, again, strict=True):
        np.testing.assert_array_equal(np.asarray(b[...]), np.asarray(a[...]), err_msg=str(path))


def test_vocabulary_layouts_are_the_documented_ones() -> None:
    f = _FlaxLayers(nnx.Rngs(0), jnp.float32)
    sd = convert.state_dict(f)
    assert sd["conv1d.weight"].shape == (4, 3, 3)  # [O, I, k] <- [k, I, O]
    np.testing.assert_array_equal(
        sd["conv1d.weight"], np.asarray(f.conv1d.kernel[...]).transpose(2, 1, 0)
    )
    assert sd["conv2d.weight"].shape == (4, 1, 3, 2)  # groups=2: [O, I/groups, kH, kW]
    assert sd["ln_2d.weight"].shape == (2, 5) and "ln_plain.weight" not in sd
    assert "ln_nobias.bias" not in sd and "bn_noaffine.weight" not in sd
    assert "bn_nostats.running_mean" not in sd and "bn_nostats.weight" in sd
    assert "bn_nobias.bias" not in sd and "bn_nobias.weight" in sd
    assert not any(k.startswith("bn_bare.") for k in sd)
    np.testing.assert_array_equal(sd["emb.weight"][2], np.zeros(3))  # padding row, as torch's
    key_map = convert.torch_to_flax_key_map(f)
    assert key_map["emb.weight"] == "emb.embedding" and key_map["ln_2d.weight"] == "ln_2d.scale"
