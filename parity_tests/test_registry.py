"""The registry: both sides list the same models, bad requests get clear errors, and the Flax
side imports without torch."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

import jaxnets
import torchref
from jaxnets import convert
from jaxnets.tolerances import tolerance
from torchref.bridge import torch_to_flax


def test_both_sides_list_the_same_models() -> None:
    assert jaxnets.list_models() == torchref.list_models()
    assert len(jaxnets.list_models()) == 11


def test_import_jaxnets_without_torch() -> None:
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked for this test")
        sys.meta_path.insert(0, Block())
        import importlib, pkgutil
        import jax, numpy as np
        import jaxnets
        from jaxnets import convert
        # every module of the library, and the command line (its torch-needing commands
        # import torch and torchref lazily, inside the command); the application's modules
        # that run torch import it, as they may
        for mod in pkgutil.walk_packages(jaxnets.__path__, "jaxnets."):
            if not mod.name.startswith("jaxnets.app."):
                importlib.import_module(mod.name)
        importlib.import_module("jaxnets.app.cli")
        for name in jaxnets.list_models():
            m = jaxnets.create_model(name)
            sd = convert.state_dict(m)
            convert.load_state_dict(m, sd)
        assert not any(k == "torch" or k.startswith("torch.") for k in sys.modules)
        print("ok", len(jaxnets.list_models()))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok 11"


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"unknown model 'lenet5'.*Did you mean 'lenet'"):
        jaxnets.create_model("lenet5")
    with pytest.raises(KeyError, match=r"known models: advanced_nn, batchnorm_mlp"):
        torchref.create_model("resnet")
    with pytest.raises(KeyError, match=r"no registered model matches 'vgg\*'"):
        jaxnets.match_models("vgg*")
    assert jaxnets.match_models("*net*") == [
        "custom_neural_network",
        "lenet",
        "my_network",
        "neural_network",
        "simple_neural_network",
        "two_layer_net",
        "xor_net",
    ]


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("mpl", "mlp"), ("lenet5", "lenet"), ("LeNet", "lenet"), ("batchnorm", "batchnorm_mlp")],
)
def test_unknown_model_suggests_the_closest_name(name: str, suggestion: str) -> None:
    with pytest.raises(jaxnets.UnknownModelError) as err:
        jaxnets.create_model(name)
    assert f"Did you mean {suggestion!r}?" in str(err.value)
    assert str(err.value).count("Did you mean") == 1


def test_unknown_model_far_from_every_name_suggests_nothing() -> None:
    with pytest.raises(jaxnets.UnknownModelError, match=r"unknown model 'xyz'\. Known models: "):
        jaxnets.create_model("xyz")


@pytest.mark.parametrize("name", ["", "   "])
def test_empty_model_name_says_so_and_lists_the_models(name: str) -> None:
    with pytest.raises(jaxnets.UnknownModelError) as err:
        jaxnets.create_model(name)
    msg = str(err.value)
    assert "model name is empty" in msg and "Did you mean" not in msg
    assert msg.endswith("known models: " + ", ".join(jaxnets.list_models()))


@pytest.mark.parametrize("name", [None, 3, ["mlp"], b"mlp"])
def test_non_string_model_name_is_a_type_error(name: object) -> None:
    with pytest.raises(TypeError) as err:
        jaxnets.create_model(name)  # type: ignore[arg-type]
    msg = str(err.value)
    assert f"a model name string is expected, got {name!r} of type {type(name).__name__}" in msg
    assert msg.endswith("known models (jaxnets.list_models()): " + ", ".join(jaxnets.list_models()))
    assert not isinstance(err.value, KeyError)


_SEQ = r"hidden_sizes must be a positive-integer sequence such as \(256, 128\)"


@pytest.mark.parametrize(
    ("name", "config", "exc", "message"),
    [
        ("mlp", {"hidden_sizes": 64}, TypeError, _SEQ + r".*got 64 of type int$"),
        ("mlp", {"hidden_sizes": None}, TypeError, _SEQ + r".*got None of type NoneType$"),
        ("mlp", {"hidden_sizes": "64"}, TypeError, _SEQ + r".*got '64' of type str$"),
        (
            "mlp",
            {"hidden_sizes": (16, 2.0)},
            TypeError,
            _SEQ + r".*got \(16, 2\.0\): entry 1 is 2\.0 of type float$",
        ),
        ("mlp", {"hidden_sizes": [16, 0]}, ValueError, _SEQ + r".*got \[16, 0\]: entry 1 is 0$"),
        (
            "mlp",
            {"activation": ["relu"]},
            TypeError,
            r"activation must be one of \['relu', 'sigmoid', 'tanh'\] \(a string\), "
            r"got \['relu'\] of type list$",
        ),
        (
            "mlp",
            {"activation": "gelu"},
            ValueError,
            r"activation must be one of \['relu', 'sigmoid', 'tanh'\], got 'gelu'$",
        ),
        (
            "neural_network",
            {"in_features": True},
            TypeError,
            r"NeuralNetworkConfig\.in_features must be a positive integer such as 784, "
            r"got True of type bool$",
        ),
        (
            "my_network",
            {"input_dim": 20.0},
            TypeError,
            r"MyNetworkConfig\.input_dim must be a positive integer such as 10, "
            r"got 20\.0 of type float$",
        ),
        (
            "batchnorm_mlp",
            {"output_size": np.int64(-1)},
            ValueError,
            r"NeuralNetworkConfig\.output_size must be a positive integer such as 10, got np",
        ),
    ],
    ids=[
        "sizes_int",
        "sizes_none",
        "sizes_str",
        "sizes_float_entry",
        "sizes_zero_entry",
        "activation_list",
        "activation_unknown",
        "bool_size",
        "float_size",
        "negative_numpy_size",
    ],
)
def test_bad_config_value_names_model_field_value_and_what_is_accepted(
    name: str, config: dict, exc: type, message: str
) -> None:
    """Both sides refuse it with the model's registry name (a shared config class serves
    neural_network and batchnorm_mlp, so the class name alone does not say which)."""
    for create in (jaxnets.create_model, torchref.create_model):
        with pytest.raises(exc) as err:
            create(name, **config)
        msg = str(err.value)
        assert msg.startswith(f"model {name!r}: "), msg
        assert re.search(message, msg), msg


def test_numpy_integer_sizes_are_accepted_as_ints() -> None:
    spec = jaxnets.get_model_spec("mlp")
    cfg = spec.make_config(
        in_features=np.int64(20), hidden_sizes=np.array([8, 7]), out_features=np.int32(3)
    )
    assert cfg == spec.make_config(in_features=20, hidden_sizes=(8, 7), out_features=3)
    assert all(type(v) is int for v in (cfg.in_features, *cfg.hidden_sizes, cfg.out_features))
    assert spec.make_config(hidden_sizes=[np.int64(5)]).hidden_sizes == (5,)
    model = jaxnets.create_model("neural_network", in_features=np.int64(20))
    assert model(jnp.ones((2, 20))).shape == (2, 10)
    assert torchref.create_model("neural_network", in_features=np.int64(20)).fc1.in_features == 20


@pytest.mark.parametrize("rngs", [0, 7, "seed", np.int64(1)])
def test_rngs_must_be_an_nnx_rngs(rngs: object) -> None:
    """A bare seed is refused, not guessed at: the docstring and type hint say nnx.Rngs."""
    seed = rngs if isinstance(rngs, int) else 0
    with pytest.raises(TypeError) as err:
        jaxnets.create_model("xor_net", rngs=rngs)  # type: ignore[arg-type]
    assert str(err.value).startswith(
        f"create_model('xor_net'): rngs must be an nnx.Rngs, e.g. rngs=nnx.Rngs({seed})"
    )
    assert f"got {rngs!r} of type {type(rngs).__name__}" in str(err.value)


def test_bad_config_is_refused_with_the_accepted_names() -> None:
    with pytest.raises(TypeError, match=r"unknown config argument.*hidden.*accepts: input_dim"):
        jaxnets.create_model("my_network", hidden=3)
    with pytest.raises(TypeError, match=r"fixed sizes"):
        torchref.create_model("lenet", channels=3)
    with pytest.raises(ValueError, match=r"hidden_size1 must be a positive integer"):
        jaxnets.create_model("neural_network", hidden_size1=0)
    with pytest.raises(ValueError, match=r"activation must be one of"):
        jaxnets.create_model("mlp", activation="gelu")
    with pytest.raises(ValueError, match=r"floating dtype"):
        jaxnets.create_model("xor_net", param_dtype=jnp.int32)


def test_float64_without_x64_says_how_to_enable_it() -> None:
    code = (
        "import jax.numpy as jnp, jaxnets\n"
        "try:\n"
        "    jaxnets.create_model('xor_net', param_dtype=jnp.float64)\n"
        "except ValueError as e:\n"
        "    print(e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "jax_enable_x64" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", jaxnets.list_models())
def test_config_serves_both_sides(name: str) -> None:
    """Symbolic sizes given once build matching twins on both sides."""
    spec = jaxnets.get_model_spec(name)
    overrides = {
        "neural_network": dict(in_features=20, hidden_size1=9, hidden_size2=7, output_size=3),
        "batchnorm_mlp": dict(in_features=20, hidden_size1=9, hidden_size2=7, output_size=3),
        "my_network": dict(input_dim=4, hidden_dim=6, output_dim=2),
        "two_layer_net": dict(input_size=12, hidden_size=5, output_size=4),
        "mlp": dict(in_features=12, hidden_sizes=[8, 7, 6], out_features=3, activation="tanh"),
    }.get(name, {})
    flax_sd = convert.state_dict(jaxnets.create_model(name, **overrides))
    torch_sd = torchref.create_model(name, **overrides).state_dict()
    assert list(flax_sd) == list(torch_sd)  # same keys, in torch's order
    assert {k: v.shape for k, v in flax_sd.items()} == {
        k: tuple(v.shape) for k, v in torch_sd.items()
    }
    assert spec.torch_input_shape(2, **overrides)[1:] == tuple(
        spec.input_shape(spec.make_config(**overrides))
    )


@pytest.mark.parametrize("name", jaxnets.list_models())
def test_twin_initialisation_follows_torch(name: str) -> None:
    """Fresh twins draw from torch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    flax_sd = convert.state_dict(jaxnets.create_model(name, rngs=nnx.Rngs(3)))
    torch_sd = torchref.create_model(name).state_dict()
    for key, t in torch_sd.items():
        f = flax_sd[key]
        if key.endswith(("weight", "bias")) and t.ndim >= 1 and "bn" not in key:
            fan_in = int(np.prod(torch_sd[key.rsplit(".", 1)[0] + ".weight"].shape[1:]))
            bound = 1 / np.sqrt(fan_in)
            assert np.abs(f).max() <= bound and np.abs(t.numpy()).max() <= bound
            if f.size >= 500:  # uniform on [-b, b] has std b/sqrt(3)
                assert abs(f.std() - bound / np.sqrt(3)) < 0.1 * bound / np.sqrt(3), key
        else:  # BatchNorm: weight 1, bias 0, running mean 0, var 1, counter 0 on both sides
            np.testing.assert_array_equal(f, t.numpy())


def test_train_and_eval_switch_batchnorm_on_both_sides() -> None:
    f, t = jaxnets.create_model("batchnorm_mlp"), torchref.create_model("batchnorm_mlp")
    assert t.training and not f.bn1.use_running_average
    f.eval()
    t.eval()
    assert not t.training and f.bn1.use_running_average and f.bn2.use_running_average
    x = jnp.ones((1, 784))
    f(x)  # eval mode accepts a single example and leaves the statistics alone
    assert int(f.bn1.num_batches_tracked[...]) == 0
    f.train()
    with pytest.raises(ValueError, match=r"more than 1 value per channel"):
        f(x)
    t.train()
    with pytest.raises(ValueError, match=r"more than 1 value per channel"):
        t(torch.ones(1, 784))


def test_wrong_input_shapes_say_what_to_do() -> None:
    lenet = jaxnets.create_model("lenet")
    with pytest.raises(
        ValueError, match=r"looks like torch's NCHW layout.*transpose\(0, 2, 3, 1\)"
    ):
        lenet(jnp.zeros((2, 1, 32, 32)))
    with pytest.raises(
        ValueError,
        match=r"expects input of shape \(N, 784\), got \(2, 28, 28\): the last dimension must "
        r"be 784 \(leading dimensions are free, \(\.\.\., 784\).*flatten",
    ):
        jaxnets.create_model("simple_neural_network")(jnp.zeros((2, 28, 28)))


@pytest.mark.parametrize("name", ["simple_neural_network", "mlp", "two_layer_net"])
def test_plain_linear_twins_take_leading_dims_as_torch_does(name: str) -> None:
    """nn.Linear maps (*, F) -> (*, out); the twins do too, with torch's values."""
    torch.manual_seed(0)
    t = torchref.create_model(name)
    f = torch_to_flax(t, jaxnets.create_model(name))
    x = np.random.default_rng(0).standard_normal((2, 3, 784)).astype(np.float32)
    with torch.no_grad():
        expected = t(torch.from_numpy(x)).numpy()
    got = np.asarray(f(jnp.asarray(x)))
    assert got.shape == expected.shape == (2, 3, 10)
    tol = tolerance("float32")
    np.testing.assert_allclose(got, expected, rtol=tol.rtol, atol=tol.atol)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("shape", [(4, 8, 20), (4, 3, 20), (20,), (4, 10)])
def test_batchnorm_mlp_refuses_all_but_2d_input(shape: tuple[int, ...], mode: str) -> None:
    """torch's BatchNorm1d reads 3-D input as (N, C, L): with L equal to both hidden widths
    torch computes something else than per-row batch norm (and fails otherwise), so the twin
    refuses it."""
    cfg = dict(in_features=20, hidden_size1=8, hidden_size2=8, output_size=3)
    f = jaxnets.create_model("batchnorm_mlp", **cfg)
    getattr(f, mode)()
    with pytest.raises(
        ValueError,
        match=rf"BatchNormMLP \(batchnorm_mlp\) expects input of shape \(N, 20\), exactly "
        rf"2-D, got {re.escape(str(shape))}; reshape it to \(N, 20\).*BatchNorm1d reads 3-D",
    ):
        f(jnp.ones(shape))
    assert int(f.bn1.num_batches_tracked[...]) == 0
    if shape == (4, 8, 20):  # torch runs it, normalising over other axes than per row
        t = getattr(torchref.create_model("batchnorm_mlp", **cfg), mode)()
        assert t(torch.ones(shape)).shape == (4, 8, 3)
