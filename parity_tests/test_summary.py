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


def test_vocabulary_layers_print_as_torch() -> None:
    """Every layer of jaxnets.nn, with non-default options, prints as torch prints it."""

    def pairs() -> list[tuple[nn.Module, object]]:
        r = nnx.Rngs(0)
        return [
            (nn.Conv1d(3, 4, 3), jnn.Conv1d(3, 4, 3, rngs=r)),
            (
                nn.Conv1d(3, 4, (3,), stride=(2,), padding=1, padding_mode="reflect", bias=False),
                jnn.Conv1d(3, 4, (3,), stride=(2,), padding=1, padding_mode="reflect",
                           bias=False, rngs=r),
            ),
            (
                nn.Conv2d(3, 4, 3, padding="same", padding_mode="circular"),
                jnn.Conv2d(3, 4, 3, padding="same", padding_mode="circular", rngs=r),
            ),
            (nn.Conv2d(3, 4, 3, padding="valid"), jnn.Conv2d(3, 4, 3, padding="valid", rngs=r)),
            (
                nn.BatchNorm2d(3, affine=False, track_running_stats=False),
                jnn.BatchNorm2d(3, affine=False, track_running_stats=False, rngs=r),
            ),
            (nn.BatchNorm1d(3, bias=False), jnn.BatchNorm1d(3, bias=False, rngs=r)),
            (nn.LayerNorm(5), jnn.LayerNorm(5, rngs=r)),
            (
                nn.LayerNorm([2, 5], eps=1e-3, elementwise_affine=False),
                jnn.LayerNorm([2, 5], eps=1e-3, elementwise_affine=False, rngs=r),
            ),
            (nn.LayerNorm(5, bias=False), jnn.LayerNorm(5, bias=False, rngs=r)),
            (nn.Embedding(10, 3), jnn.Embedding(10, 3, rngs=r)),
            (
                nn.Embedding(10, 3, padding_idx=-1, scale_grad_by_freq=True, sparse=True),
                jnn.Embedding(10, 3, padding_idx=-1, scale_grad_by_freq=True, sparse=True, rngs=r),
            ),
            (nn.Dropout(), jnn.Dropout(rngs=r)),
            (nn.Dropout2d(0.2, inplace=True), jnn.Dropout2d(0.2, inplace=True, rngs=r)),
            (nn.MaxPool2d(2), jnn.MaxPool2d(2)),
            (
                nn.MaxPool2d((3, 2), stride=(2, 1), padding=1, dilation=2, ceil_mode=True),
                jnn.MaxPool2d((3, 2), stride=(2, 1), padding=1, dilation=2, ceil_mode=True),
            ),
            (nn.AvgPool2d(2), jnn.AvgPool2d(2)),
            (
                nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False, divisor_override=2),
                jnn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False, divisor_override=2),
            ),
            (nn.AdaptiveAvgPool2d((5, None)), jnn.AdaptiveAvgPool2d((5, None))),
            (nn.AdaptiveAvgPool2d(1), jnn.AdaptiveAvgPool2d(1)),
            (nn.AdaptiveMaxPool2d((2, 3)), jnn.AdaptiveMaxPool2d((2, 3))),
            (nn.Flatten(), jnn.Flatten()),
            (nn.Flatten(0, 2), jnn.Flatten(0, 2)),
            (nn.Identity(), jnn.Identity()),
            (nn.ReLU(), jnn.ReLU()),
            (nn.ReLU(inplace=True), jnn.ReLU(inplace=True)),
            (nn.LeakyReLU(), jnn.LeakyReLU()),
            (nn.LeakyReLU(0.2, True), jnn.LeakyReLU(0.2, True)),
            (nn.ELU(0.5), jnn.ELU(0.5)),
            (nn.GELU(), jnn.GELU()),
            (nn.GELU("tanh"), jnn.GELU("tanh")),
            (nn.SiLU(), jnn.SiLU()),
            (nn.Tanh(), jnn.Tanh()),
            (nn.Sigmoid(), jnn.Sigmoid()),
            (nn.Softmax(dim=1), jnn.Softmax(dim=1)),
            (nn.Softmax(), jnn.Softmax()),
            (nn.LogSoftmax(-1), jnn.LogSoftmax(-1)),
        ]  # fmt: skip

    for torch_layer, twin in pairs():
        assert torch_repr(twin) == repr(torch_layer)

    class Net(nn.Module):  # the same layers inside a model, as a port holds them
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 2, 3), nn.GELU(), nn.MaxPool2d(2))
            self.norm = nn.LayerNorm(8)
            self.drop = nn.Dropout(0.1)

    class Twin(nnx.Module):
        def __init__(self, rngs: nnx.Rngs) -> None:
            self.features = nnx.List([jnn.Conv2d(1, 2, 3, rngs=rngs), jnn.GELU(), jnn.MaxPool2d(2)])
            self.norm = jnn.LayerNorm(8, rngs=rngs)
            self.drop = jnn.Dropout(0.1, rngs=rngs)

    text = torch_repr(Twin(nnx.Rngs(0)))
    assert text.replace("Twin(", "Net(").replace("ModuleList(", "Sequential(") == repr(Net())
