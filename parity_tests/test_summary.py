"""``jaxnets.debug.summary.torch_repr``: a Flax twin prints what torch's ``print(model)`` does."""

from __future__ import annotations

import pytest
import torch.nn as nn
from flax import nnx

import jaxnets
import torchref
from jaxnets import nn as jnn
from jaxnets.debug.summary import parameter_table, side_by_side, torch_repr


@pytest.mark.parametrize("name", jaxnets.list_models())
def test_repr_matches_torch(name: str) -> None:
    assert torch_repr(jaxnets.create_model(name)) == repr(torchref.create_model(name))


@pytest.mark.parametrize(
    "config",
    [
        {"hidden_sizes": (64, 64, 64), "activation": "tanh"},  # ModuleList folds (1-2): 2 x
        {"hidden_sizes": ()},
        {"hidden_sizes": (8, 8), "out_features": 8},  # the whole list folds
    ],
    ids=["folded", "single-layer", "all-equal"],
)
def test_mlp_configs_match_torch(config: dict) -> None:
    assert torch_repr(jaxnets.create_model("mlp", **config)) == repr(
        torchref.create_model("mlp", **config)
    )


def test_layer_options_match_torch() -> None:
    """Non-default conv stride/padding/bias and BatchNorm options print as torch prints them."""

    class Own(nn.Module):  # torch's side
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, (3, 5), stride=2, padding=1, bias=False)
            self.bn = nn.BatchNorm1d(5, momentum=None, affine=False)
            self.act = nn.Sigmoid()
            self.block = nn.Sequential(nn.Linear(2, 3, bias=False), nn.Tanh())

    torch_text = repr(Own())

    class Own(nnx.Module):  # type: ignore[no-redef]  # the twin, same class name
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.conv = jnn.Conv2d(3, 4, (3, 5), stride=2, padding=1, bias=False, rngs=rngs)
            self.bn = jnn.BatchNorm1d(5, momentum=None, affine=False, rngs=rngs)
            self.act = jnn.get_activation("sigmoid")
            self.block = nnx.Sequential(
                jnn.Linear(2, 3, bias=False, rngs=rngs), jnn.get_activation("tanh")
            )

    assert torch_repr(Own(nnx.Rngs(0))) == torch_text


def test_parameter_table_lists_both_layouts() -> None:
    rows = parameter_table(jaxnets.create_model("lenet"))
    assert [r["torch"] for r in rows] == list(torchref.create_model("lenet").state_dict())
    conv = rows[0]
    assert (conv["torch_shape"], conv["flax"], conv["flax_shape"]) == (
        (6, 1, 3, 3),
        "conv1.kernel",
        (3, 3, 1, 6),
    )


def test_side_by_side_aligns_columns() -> None:
    text = side_by_side("a\nlonger line", "x\ny\nz", titles=("L", "R"), gap=2)
    lines = text.splitlines()
    assert lines[0].startswith("L") and lines[0].endswith("R")
    assert lines[3] == "longer line  y"
    assert lines[4] == " " * 13 + "z"


def test_rejects_non_module() -> None:
    with pytest.raises(TypeError, match=r"nnx\.Module"):
        torch_repr(object())  # type: ignore[arg-type]
