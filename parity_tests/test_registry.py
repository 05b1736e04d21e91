"""The registry: both sides list the same models, bad requests get clear errors, and the Flax
side imports without torch."""

from __future__ import annotations

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
        # every module of the package, the CLI included (its torch-needing commands import
        # torchref lazily, inside the command)
        for mod in pkgutil.walk_packages(jaxnets.__path__, "jaxnets."):
            importlib.import_module(mod.name)
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
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 784\).*flatten"):
        jaxnets.create_model("simple_neural_network")(jnp.zeros((2, 28, 28)))
