"""Parity beyond the fixed set: hypothesis draws random MLP and CNN configurations, batch sizes
and dtypes. Every case must convert bit-exactly both ways, and agree with torch on outputs, loss
and every gradient within the written tolerance (``jaxnets.tolerances``).

Runs are reproducible (``derandomize=True``: the same cases every run, no example database).
A failing case prints the drawn arguments (hypothesis' falsifying example) and the model
configuration (``note``), enough to rebuild it by hand.

Cost decides the split. A round trip moves bytes only, so its cases draw any sizes and fill
the weights with random BIT PATTERNS (NaN payloads, infinities, subnormals, -0.0 included:
a transpose must move every one unchanged); the twin is traced once (``nnx.eval_shape``) and
filled from numpy, so nothing compiles. A parity case compiles: ``compare`` builds a new
function per call, so ``jit=True`` compiles every case (~0.7 s CPU for an MLP, ~2 s for a
CNN), while eager primitives compile once per shape (~2 s CPU for a model's first batch) and
are then reused (~0.1 s a case). MLP parity cases therefore run eagerly with sizes from a
small vocabulary ({2, 5} features, batch {1, 4}) and vary depth, activation and dtype around
it; CNN cases share few conv shapes, so they run under jit and are fewer.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F
from flax import nnx
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from torch import nn

import jaxnets
import torchref
from jaxnets.nn import Conv2d, Linear, get_activation, max_pool2d
from torchref import bridge, parity

_SETTINGS = {
    "derandomize": True,
    "database": None,
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much],
}
# Cases per test in CI (315 in all); JAXNETS_PROPERTY_SCALE=10 runs ten times as many.
_SCALE = float(os.environ.get("JAXNETS_PROPERTY_SCALE", "1"))
ROUND_TRIP_EXAMPLES = int(120 * _SCALE)
MLP_PARITY_EXAMPLES = int(60 * _SCALE)
CNN_PARITY_EXAMPLES = int(15 * _SCALE)

_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_BITS = {"float32": np.uint32, "float64": np.uint64}


def _bit_exact(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert sorted(actual) == sorted(expected)
    for k, e in expected.items():
        a = actual[k]
        assert a.dtype == e.dtype and a.shape == e.shape, k
        assert a.tobytes() == e.tobytes(), f"{k} changed in the round trip"


def _random_bits(shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    """Every bit pattern of ``dtype`` equally likely (floats); counters: small integers."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, 1000, shape).astype(dtype)
    bits = rng.integers(
        0, np.iinfo(_BITS[dtype.name]).max, shape, dtype=_BITS[dtype.name], endpoint=True
    )
    return bits.view(dtype)


def _twin_filler(make_flax: Any) -> Any:
    """``fill(rng)``: a new twin with every Variable holding random bits from numpy. The twin
    is traced once (``nnx.eval_shape``: its initialisers never run, nothing compiles)."""
    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: make_flax(nnx.Rngs(0))))

    def fill(rng: np.random.Generator) -> nnx.Module:
        state = jax.tree.map(
            lambda spec: jnp.asarray(_random_bits(spec.shape, spec.dtype, rng)), abstract
        )
        return nnx.merge(graphdef, state)

    return fill


def _check_round_trips(make_torch: Any, make_flax: Any, seed: int) -> None:
    """torch -> Flax -> torch and Flax -> torch -> Flax move every bit pattern unchanged."""
    rng = np.random.default_rng(seed)
    t = make_torch()
    sd = {k: _random_bits(tuple(v.shape), v.numpy().dtype, rng) for k, v in t.state_dict().items()}
    t.load_state_dict(bridge.from_numpy_state_dict(sd))
    fill = _twin_filler(make_flax)
    f = fill(rng)
    bridge.torch_to_flax(t, f)
    back = make_torch()
    bridge.flax_to_torch(f, back)
    _bit_exact(bridge.to_numpy_state_dict(back), sd)

    g = fill(rng)
    before = [(p, np.array(v.get_value())) for p, v in nnx.to_flat_state(nnx.state(g))]
    bridge.flax_to_torch(g, back)
    h = fill(rng)
    bridge.torch_to_flax(back, h)
    after = [(p, np.array(v.get_value())) for p, v in nnx.to_flat_state(nnx.state(h))]
    assert [p for p, _ in after] == [p for p, _ in before]
    for (p, a), (_, b) in zip(after, before, strict=True):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), f"{p} changed"


def _check_parity(
    make_torch: Any,
    make_flax: Any,
    x: np.ndarray,
    y: np.ndarray,
    layout: str,
    seed: int,
    *,
    jit: bool,
) -> None:
    """Outputs, loss and every gradient against torch, weights from torch's own init."""
    torch.manual_seed(seed)
    t = make_torch()
    f = make_flax(nnx.Rngs(seed))
    report = parity.compare(t, f, x, y, loss="cross_entropy", layout=layout, jit=jit)
    note(str(report))
    report.raise_if_failed()


# ---- MLP (the registry's `mlp`) ------------------------------------------------------------


def _mlp_configs(sizes: st.SearchStrategy[int]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "in_features": sizes,
            "hidden_sizes": st.lists(sizes, max_size=3).map(tuple),
            "out_features": sizes,
            "activation": st.sampled_from(["relu", "sigmoid", "tanh"]),
        }
    )


def _mlp_pair(config: dict[str, Any], dtype: str) -> tuple[Any, Any]:
    def make_torch() -> nn.Module:
        return torchref.create_model("mlp", dtype=_TORCH_DTYPES[dtype], **config)

    def make_flax(rngs: nnx.Rngs) -> nnx.Module:
        return jaxnets.create_model("mlp", rngs=rngs, param_dtype=jnp.dtype(dtype), **config)

    return make_torch, make_flax


_DTYPES = st.sampled_from(["float32", "float64"])
_SEEDS = st.integers(0, 2**16)


@settings(max_examples=ROUND_TRIP_EXAMPLES, **_SETTINGS)
@given(config=_mlp_configs(st.integers(1, 40)), dtype=_DTYPES, seed=_SEEDS)
def test_mlp_round_trip_bit_exact(config, dtype, seed):
    note(f"create_model('mlp', **{config}), dtype={dtype}, seed={seed}")
    _check_round_trips(*_mlp_pair(config, dtype), seed)


@settings(max_examples=MLP_PARITY_EXAMPLES, **_SETTINGS)
@given(
    config=_mlp_configs(st.sampled_from([2, 5])),
    batch=st.sampled_from([1, 4]),
    dtype=_DTYPES,
    seed=_SEEDS,
)
def test_mlp_parity(config, batch, dtype, seed):
    note(f"create_model('mlp', **{config}), batch={batch}, dtype={dtype}, seed={seed}")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, config["in_features"])).astype(dtype)
    y = rng.integers(0, config["out_features"], batch)
    _check_parity(*_mlp_pair(config, dtype), x, y, "features", seed, jit=False)


# ---- a small configurable CNN pair, defined here -------------------------------------------


@dataclasses.dataclass(frozen=True)
class CNNConfig:
    """conv (k x k, zero padding p) + relu [+ 2x2 max pool] per entry of ``convs``, then
    flatten (NCHW order), fc1 + relu, fc2. ``convs``: ``(out_channels, k, p, pool)``."""

    in_channels: int
    height: int
    width: int
    convs: tuple[tuple[int, int, int, bool], ...]
    hidden: int
    classes: int

    def feature_shape(self) -> tuple[int, int, int] | None:
        """``(C, H, W)`` entering the flatten, or None when a layer would leave no pixels."""
        c, h, w = self.in_channels, self.height, self.width
        for out, k, p, pool in self.convs:
            c, h, w = out, h + 2 * p - k + 1, w + 2 * p - k + 1
            if pool:
                h, w = h // 2, w // 2
            if h < 1 or w < 1:
                return None
        return c, h, w


class TorchCNN(nn.Module):
    """The torch side: NCHW input ``(N, C, H, W) -> (N, classes)``."""

    def __init__(self, cfg: CNNConfig) -> None:
        super().__init__()
        chans = [cfg.in_channels] + [c[0] for c in cfg.convs]
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, k, padding=p)
            for (a, b), (_, k, p, _) in zip(itertools.pairwise(chans), cfg.convs, strict=True)
        )
        self.pools = [c[3] for c in cfg.convs]
        c, h, w = cfg.feature_shape()
        self.fc1 = nn.Linear(c * h * w, cfg.hidden)
        self.fc2 = nn.Linear(cfg.hidden, cfg.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, pool in zip(self.convs, self.pools, strict=True):
            x = F.relu(conv(x))
            if pool:
                x = F.max_pool2d(x, 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


class FlaxCNN(nnx.Module):
    """The twin: NHWC input ``(N, H, W, C) -> (N, classes)``, same names as TorchCNN."""

    def __init__(self, cfg: CNNConfig, *, rngs: nnx.Rngs, param_dtype: Any) -> None:
        kw = {"rngs": rngs, "param_dtype": param_dtype}
        chans = [cfg.in_channels] + [c[0] for c in cfg.convs]
        self.convs = nnx.List(
            [
                Conv2d(a, b, k, padding=p, **kw)
                for (a, b), (_, k, p, _) in zip(itertools.pairwise(chans), cfg.convs, strict=True)
            ]
        )
        self.pools = tuple(c[3] for c in cfg.convs)
        c, h, w = cfg.feature_shape()
        self.fc1 = Linear(c * h * w, cfg.hidden, **kw)
        self.fc2 = Linear(cfg.hidden, cfg.classes, **kw)
        self.relu = get_activation("relu")

    def __call__(self, x: jax.Array) -> jax.Array:
        for conv, pool in zip(self.convs, self.pools, strict=True):
            x = self.relu(conv(x))
            if pool:
                x = max_pool2d(x, 2)
        # NHWC -> NCHW before flattening, so fc1 sees torch's (C, H, W) feature order.
        x = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)
        return self.fc2(self.relu(self.fc1(x)))


def _cnn_configs(
    channels: st.SearchStrategy[int],
    heights: st.SearchStrategy[int],
    widths: st.SearchStrategy[int],
    features: st.SearchStrategy[int],
) -> st.SearchStrategy[CNNConfig]:
    conv = st.tuples(
        features,  # out channels
        st.sampled_from([1, 3]),  # kernel
        st.sampled_from([0, 1]),  # zero padding
        st.booleans(),  # 2x2 max pool after it
    )
    return st.builds(
        CNNConfig,
        in_channels=channels,
        height=heights,
        width=widths,
        convs=st.lists(conv, min_size=1, max_size=2).map(tuple),
        hidden=features,
        classes=features,
    ).filter(lambda c: c.feature_shape() is not None)


def _cnn_pair(config: CNNConfig, dtype: str) -> tuple[Any, Any]:
    def make_torch() -> nn.Module:
        return TorchCNN(config).to(_TORCH_DTYPES[dtype])

    def make_flax(rngs: nnx.Rngs) -> nnx.Module:
        return FlaxCNN(config, rngs=rngs, param_dtype=jnp.dtype(dtype))

    return make_torch, make_flax


@settings(max_examples=ROUND_TRIP_EXAMPLES, **_SETTINGS)
@given(
    config=_cnn_configs(
        st.integers(1, 4), st.integers(3, 12), st.integers(3, 12), st.integers(1, 6)
    ),
    dtype=_DTYPES,
    seed=_SEEDS,
)
def test_cnn_round_trip_bit_exact(config, dtype, seed):
    note(f"{config}, dtype={dtype}, seed={seed}")
    _check_round_trips(*_cnn_pair(config, dtype), seed)


@settings(max_examples=CNN_PARITY_EXAMPLES, **_SETTINGS)
@given(
    config=_cnn_configs(st.just(1), st.just(6), st.just(7), st.just(3)),
    batch=st.sampled_from([2]),
    dtype=_DTYPES,
    seed=_SEEDS,
)
def test_cnn_parity(config, batch, dtype, seed):
    note(f"{config}, batch={batch}, dtype={dtype}, seed={seed}")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, config.in_channels, config.height, config.width))
    y = rng.integers(0, config.classes, batch)
    # jit: CNN cases rarely share conv shapes, and one compile beats many eager ones here.
    _check_parity(*_cnn_pair(config, dtype), x.astype(dtype), y, "image", seed, jit=True)
