"""A training run handed from PyTorch to JAX mid-way and back (``torchref.handoff``).

Every case runs ``K`` torch steps, hands the run to JAX (``to_jax``), runs ``K`` JAX steps,
hands it back (``to_torch``) and runs ``K`` more torch steps; a second torch run takes the
``3K`` steps uninterrupted. Parameters, BatchNorm buffers, the optimizer's state and the
schedule's position must agree within the float64 trajectory bound of
``jaxnets/tolerances.py``. The model is the registered ``batchnorm_mlp`` at small sizes.

The adaptive optimizers (Adam, RMSprop, Adagrad) are not given the biases that feed a
BatchNorm (``fc1.bias``, ``fc2.bias``): the BatchNorm subtracts the batch mean, so their
gradient is exactly zero in exact arithmetic and each framework holds ~1e-17 of rounding noise
there, which those optimizers divide by the root of its own square: noise becomes a step of
up to ``lr * noise / eps``. Leaving them out is common practice (they are redundant before a
BatchNorm) and tests the frozen parameters too; SGD gets every parameter.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from flax import nnx
from torch import nn, optim
from torch.optim import lr_scheduler

import jaxnets
import jaxnets.checkpoint
import torchref
from jaxnets import losses
from jaxnets.checkpoint import CheckpointError
from jaxnets.testing import leaf_diff
from jaxnets.tolerances import tolerance
from jaxnets.training import Trainer
from torchref import checkpoint as checkpoint_mod
from torchref.handoff import (
    HandoffError,
    checkpoint_to_run,
    run_to_checkpoint,
    to_jax,
    to_torch,
    trainer_for,
    trainer_state,
)

CFG = {"in_features": 6, "hidden_size1": 5, "hidden_size2": 4, "output_size": 3}
K = 2  # steps per segment
TOL = tolerance(np.float64, kind="trajectory")
PRE_BN_BIASES = ("fc1.bias", "fc2.bias")

Factory = Callable[[nn.Module], optim.Optimizer]


def _adaptive(m: nn.Module) -> list[nn.Parameter]:
    """The parameters but the biases feeding a BatchNorm (see the module docstring)."""
    return [p for n, p in m.named_parameters() if n not in PRE_BN_BIASES]


def _case(
    id: str,
    opt: Factory,
    sched: Callable[[optim.Optimizer], Any] | None = None,
    spe: int = 1,
) -> Any:
    return pytest.param(opt, sched, spe, id=id)


CASES = [
    _case("sgd", lambda m: optim.SGD(m.parameters(), lr=0.1)),
    _case("sgd-momentum", lambda m: optim.SGD(m.parameters(), lr=0.1, momentum=0.9)),
    _case(
        "sgd-momentum-dampening-weight_decay",
        lambda m: optim.SGD(m.parameters(), lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01),
    ),
    _case("sgd-nesterov", lambda m: optim.SGD(m.parameters(), lr=0.1, momentum=0.8, nesterov=True)),
    _case(
        "sgd-maximize", lambda m: optim.SGD(m.parameters(), lr=0.05, momentum=0.5, maximize=True)
    ),
    _case("adam", lambda m: optim.Adam(_adaptive(m), lr=0.01)),
    _case("adam-weight_decay", lambda m: optim.Adam(_adaptive(m), lr=0.01, weight_decay=0.1)),
    _case("adam-amsgrad", lambda m: optim.Adam(_adaptive(m), lr=0.01, amsgrad=True)),
    _case("adam-maximize", lambda m: optim.Adam(_adaptive(m), lr=0.01, maximize=True)),
    _case(
        "adam-decoupled_weight_decay",
        lambda m: optim.Adam(_adaptive(m), lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
    ),
    _case("adamw", lambda m: optim.AdamW(_adaptive(m), lr=0.01)),
    _case(
        "adamw-amsgrad",
        lambda m: optim.AdamW(_adaptive(m), lr=0.01, amsgrad=True, betas=(0.8, 0.9)),
    ),
    _case("rmsprop", lambda m: optim.RMSprop(_adaptive(m), lr=0.01)),
    _case("rmsprop-centered", lambda m: optim.RMSprop(_adaptive(m), lr=0.01, centered=True)),
    _case("rmsprop-momentum", lambda m: optim.RMSprop(_adaptive(m), lr=0.01, momentum=0.5)),
    _case(
        "rmsprop-centered-momentum-weight_decay-maximize",
        lambda m: optim.RMSprop(
            _adaptive(m),
            lr=0.01,
            alpha=0.9,
            centered=True,
            momentum=0.5,
            weight_decay=0.1,
            maximize=True,
        ),
    ),
    _case("adagrad", lambda m: optim.Adagrad(_adaptive(m), lr=0.1)),
    _case("adagrad-lr_decay", lambda m: optim.Adagrad(_adaptive(m), lr=0.1, lr_decay=0.5)),
    _case(
        "adagrad-initial_accumulator_value-weight_decay-maximize",
        lambda m: optim.Adagrad(
            _adaptive(m), lr=0.1, initial_accumulator_value=0.3, weight_decay=0.1, maximize=True
        ),
    ),
    _case(
        "param-groups",
        lambda m: optim.SGD(
            [
                {"params": [m.fc1.weight, m.fc1.bias, m.bn1.weight], "lr": 0.2},
                {"params": [m.fc2.weight, m.fc3.weight], "momentum": 0.0, "weight_decay": 0.1},
                {"params": [m.fc3.bias], "nesterov": True},
            ],
            lr=0.1,
            momentum=0.9,
        ),
    ),
    # schedules: the scheduler steps every `spe` optimizer steps
    _case(
        "sgd-momentum-StepLR",
        lambda m: optim.SGD(m.parameters(), lr=0.1, momentum=0.9, dampening=0.1),
        lambda o: lr_scheduler.StepLR(o, step_size=1, gamma=0.5),
        spe=2,
    ),
    _case(
        "adam-MultiStepLR-mid-epoch",
        lambda m: optim.Adam(_adaptive(m), lr=0.01),
        lambda o: lr_scheduler.MultiStepLR(o, milestones=[1, 2, 2], gamma=0.5),
        spe=3,
    ),
    _case(
        "rmsprop-ExponentialLR",
        lambda m: optim.RMSprop(_adaptive(m), lr=0.01, momentum=0.5),
        lambda o: lr_scheduler.ExponentialLR(o, gamma=0.8),
        spe=1,
    ),
    _case(
        "adagrad-lr_decay-CosineAnnealingLR",
        lambda m: optim.Adagrad(_adaptive(m), lr=0.1, lr_decay=0.2),
        lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=3, eta_min=0.01),
        spe=1,
    ),
    _case(
        "param-groups-adam-CosineAnnealingLR",
        lambda m: optim.Adam(
            [
                {"params": [m.fc1.weight, m.bn1.weight], "lr": 0.02, "amsgrad": True},
                {"params": [m.fc2.weight, m.fc3.weight, m.fc3.bias], "weight_decay": 0.1},
            ],
            lr=0.01,
        ),
        lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=4),
        spe=2,
    ),
    _case(
        "sgd-nesterov-LinearLR",
        lambda m: optim.SGD(m.parameters(), lr=0.1, momentum=0.8, nesterov=True),
        lambda o: lr_scheduler.LinearLR(o, start_factor=0.2, total_iters=3),
    ),
    _case(
        "rmsprop-PolynomialLR",
        lambda m: optim.RMSprop(_adaptive(m), lr=0.01, centered=True),
        lambda o: lr_scheduler.PolynomialLR(o, total_iters=5, power=2.0),
    ),
    _case(
        "adam-ChainedScheduler-ConstantLR-ExponentialLR",
        lambda m: optim.Adam(_adaptive(m), lr=0.01),
        lambda o: lr_scheduler.ChainedScheduler(
            [
                lr_scheduler.ConstantLR(o, factor=0.5, total_iters=3),
                lr_scheduler.ExponentialLR(o, gamma=0.9),
            ]
        ),
    ),
    _case(
        "sgd-SequentialLR-warmup-cosine-at-the-milestone",
        lambda m: optim.SGD(m.parameters(), lr=0.1, momentum=0.9),
        lambda o: lr_scheduler.SequentialLR(
            o,
            [
                lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=2),
                lr_scheduler.CosineAnnealingLR(o, T_max=4),
            ],
            milestones=[2],
        ),
    ),
    _case(
        "param-groups-adagrad-LambdaLR",
        lambda m: optim.Adagrad(
            [
                {"params": [m.fc1.weight, m.bn1.weight]},
                {"params": [m.fc2.weight, m.fc3.weight], "lr": 0.05},
            ],
            lr=0.1,
        ),
        lambda o: lr_scheduler.LambdaLR(o, [lambda e: 0.9**e, lambda e: 1.0 / (1 + e)]),
    ),
    _case(
        "adamw-MultiplicativeLR",
        lambda m: optim.AdamW(_adaptive(m), lr=0.01),
        lambda o: lr_scheduler.MultiplicativeLR(o, lambda e: 0.95),
        spe=2,
    ),
    _case(
        "sgd-CosineAnnealingWarmRestarts",
        lambda m: optim.SGD(m.parameters(), lr=0.1, momentum=0.5),
        lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2, eta_min=0.01),
    ),
    _case(
        "sgd-CyclicLR",
        lambda m: optim.SGD(m.parameters(), lr=0.1, momentum=0.9),
        lambda o: lr_scheduler.CyclicLR(
            o, 0.01, 0.1, step_size_up=2, mode="triangular2", cycle_momentum=False
        ),
    ),
    _case(
        "adam-OneCycleLR",
        lambda m: optim.Adam(_adaptive(m), lr=0.01),
        lambda o: lr_scheduler.OneCycleLR(o, 0.05, total_steps=8, cycle_momentum=False),
    ),
]


def _batches(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((8, 6)), rng.integers(0, 3, 8)) for _ in range(n)]


def _torch_steps(
    model: nn.Module, opt: optim.Optimizer, sched: Any, batches: list[Any], first: int, spe: int
) -> None:
    """The tutorials' loop body per batch; the scheduler steps after every ``spe``-th
    optimizer step, counted from the run's first (``first``: this segment's first index)."""
    criterion = nn.CrossEntropyLoss()
    for i, (x, y) in enumerate(batches, start=first):
        opt.zero_grad()
        criterion(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
        if sched is not None and (i + 1) % spe == 0:
            sched.step()


def _jax_steps(twin: nnx.Module, tx: optax.GradientTransformation, opt_state: Any, batches):
    """The nnx loop over ``opt_state`` as ``to_jax`` gives it (over nnx.state(twin, Param))."""
    for x, y in batches:

        def loss(m: nnx.Module, x: np.ndarray = x, y: np.ndarray = y) -> jax.Array:
            return losses.cross_entropy(m(x), y)

        grads = nnx.grad(loss)(twin)
        params = nnx.state(twin, nnx.Param)
        updates, opt_state = tx.update(grads, opt_state, params)
        nnx.update(twin, optax.apply_updates(params, updates))
    return opt_state


def _pair(make_opt: Factory, make_sched: Any, seed: int) -> tuple[Any, Any]:
    torch.manual_seed(seed)
    model = torchref.create_model("batchnorm_mlp", dtype=torch.float64, **CFG)
    other = copy.deepcopy(model)
    runs = []
    for m in (model, other):
        opt = make_opt(m)
        runs.append((m, opt, make_sched(opt) if make_sched else None))
    return runs[0], runs[1]


def _assert_same_run(label: str, expected: tuple[Any, ...], actual: tuple[Any, ...]) -> float:
    """Model state, optimizer state, lrs and scheduler position of two torch runs agree within
    the float64 trajectory bound; returns the largest fraction of the bound spent."""
    (m1, o1, s1), (m2, o2, s2) = expected, actual
    worst = [0.0, ""]

    def close(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
        assert a.shape == b.shape and a.dtype == b.dtype, (name, a.shape, b.shape, a.dtype)
        d = leaf_diff(b.detach().numpy(), a.detach().numpy(), rtol=TOL.rtol, atol=TOL.atol)
        assert d.ok, f"{label}: {name} differs by {d.max_abs:.3e} ({d.max_rel:.3e} relative)"
        if d.tolerance_used >= worst[0]:
            worst[:] = [d.tolerance_used, f"{name} max_abs={d.max_abs:.2e}"]

    sd1, sd2 = m1.state_dict(), m2.state_dict()
    assert sd1.keys() == sd2.keys()
    for k in sd1:
        if sd1[k].dtype == torch.int64:  # num_batches_tracked: a count, exact
            assert torch.equal(sd1[k], sd2[k]), (label, k)
        else:
            close(k, sd1[k], sd2[k])
    names = [n for n, _ in m1.named_parameters()]
    for n, p1, p2 in zip(names, m1.parameters(), m2.parameters(), strict=True):
        st1, st2 = o1.state.get(p1, {}), o2.state.get(p2, {})
        assert st1.keys() == st2.keys(), (label, n, st1.keys(), st2.keys())
        for key in st1:
            close(f"{n}.{key}", st1[key], st2[key])
    for g1, g2 in zip(o1.param_groups, o2.param_groups, strict=True):
        assert {k: v for k, v in g1.items() if k not in ("params", "lr")} == {
            k: v for k, v in g2.items() if k not in ("params", "lr")
        }
        close("lr", torch.tensor(g1["lr"]), torch.tensor(g2["lr"]))
    if s1 is not None:
        _same_scheduler_state(label, "scheduler", s1.state_dict(), s2.state_dict(), close)
    print(f"[handoff] {label}: worst {worst[1]} ({worst[0]:.2e} of the float64 bound)")
    return worst[0]


def _same_scheduler_state(label: str, where: str, a: Any, b: Any, close: Any) -> None:
    """Two scheduler ``state_dict()``s agree: counts and flags exactly, lrs (floats) within
    the float64 trajectory bound; members of chains and sequences too."""
    assert type(a) is type(b), (label, where, a, b)
    if isinstance(a, dict):
        assert a.keys() == b.keys(), (label, where)
        for k in a:
            _same_scheduler_state(label, f"{where}.{k}", a[k], b[k], close)
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), (label, where)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same_scheduler_state(label, f"{where}.{i}", x, y, close)
    elif isinstance(a, float):
        close(where, torch.tensor(a), torch.tensor(b))
    else:
        assert a == b, (label, where, a, b)


@pytest.mark.parametrize(("make_opt", "make_sched", "spe"), CASES)
def test_torch_jax_torch_continues_exactly(
    make_opt: Factory, make_sched: Any, spe: int, seed: int, request: pytest.FixtureRequest
) -> None:
    """torch K steps -> to_jax -> JAX K steps -> to_torch -> torch K steps equals torch 3K
    steps: parameters, BatchNorm buffers, optimizer state, lrs and scheduler position."""
    batches = _batches(3 * K, seed)
    whole, handed = _pair(make_opt, make_sched, seed)
    _torch_steps(*whole, batches, 0, spe)

    model, opt, sched = handed
    _torch_steps(model, opt, sched, batches[:K], 0, spe)
    twin, tx, opt_state = to_jax(model, opt, sched, steps_per_epoch=spe)
    assert jnp.result_type(*jax.tree.leaves(nnx.state(twin, nnx.Param))) == jnp.float64
    opt_state = _jax_steps(twin, tx, opt_state, batches[K : 2 * K])
    to_torch(twin, opt_state, model, opt, sched, steps_per_epoch=spe)
    _torch_steps(model, opt, sched, batches[2 * K :], 2 * K, spe)

    _assert_same_run(request.node.callspec.id, whole, handed)


def test_trainer_carries_the_handed_state(seed: int) -> None:
    """The same through a :class:`jaxnets.Trainer`: ``trainer_state`` lays the state
    out as the Trainer holds it, and ``to_torch`` takes the Trainer's ``state.opt_state``."""
    spe = 2
    batches = _batches(3 * K, seed)

    def make_opt(m: nn.Module) -> optim.Optimizer:
        return optim.RMSprop(_adaptive(m), lr=0.01, centered=True, momentum=0.3)

    def make_sched(o: optim.Optimizer) -> Any:
        return lr_scheduler.StepLR(o, step_size=1, gamma=0.5)

    whole, handed = _pair(make_opt, make_sched, seed)
    _torch_steps(*whole, batches, 0, spe)
    model, opt, sched = handed
    _torch_steps(model, opt, sched, batches[:K], 0, spe)
    twin, tx, opt_state = to_jax(model, opt, sched, steps_per_epoch=spe)
    trainer = Trainer(twin, tx, "cross_entropy")
    state = trainer_state(trainer, opt_state)
    assert int(state.step) == K
    for x, y in batches[K : 2 * K]:
        state, _ = trainer.step(state, x, y)
    to_torch(trainer.write_back(state), state.opt_state, model, opt, sched, steps_per_epoch=spe)
    _torch_steps(model, opt, sched, batches[2 * K :], 2 * K, spe)
    _assert_same_run("trainer rmsprop StepLR", whole, handed)


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.fc2 = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class _TinyTwin(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.fc1 = nnx.Linear(3, 4, rngs=rngs, param_dtype=jnp.float64)
        self.fc2 = nnx.Linear(4, 2, rngs=rngs, param_dtype=jnp.float64)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(jax.nn.relu(self.fc1(x)))


def test_unregistered_model_crosses_with_the_twin_given(seed: int) -> None:
    """A model that is not registered needs ``twin=``; the one given is loaded in place."""
    torch.manual_seed(seed)
    model = _Tiny().double()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(HandoffError, match=r"_Tiny is not a registered model.*twin="):
        to_jax(model, opt)
    twin = _TinyTwin(nnx.Rngs(seed))
    got, _, opt_state = to_jax(model, opt, twin=twin)
    assert got is twin
    np.testing.assert_array_equal(np.asarray(twin.fc1.kernel[...]), model.fc1.weight.detach().T)
    to_torch(twin, opt_state, model, opt)


# --------------------------------------------------------------------------------------------
# Refusals: by name, before anything is written
# --------------------------------------------------------------------------------------------


def _small(seed: int, **config: Any) -> nn.Module:
    torch.manual_seed(seed)
    return torchref.create_model("batchnorm_mlp", dtype=torch.float64, **(config or CFG))


def _snapshot(model: nn.Module, opt: optim.Optimizer) -> Any:
    return copy.deepcopy((model.state_dict(), opt.state_dict()))


def _assert_unchanged(before: Any, model: nn.Module, opt: optim.Optimizer) -> None:
    sd, osd = before
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k
    now = opt.state_dict()
    assert now["param_groups"] == osd["param_groups"]
    assert now["state"].keys() == osd["state"].keys()
    for i, entries in osd["state"].items():
        for k, v in entries.items():
            assert torch.equal(now["state"][i][k], v), (i, k)


def test_refuses_an_optimizer_jaxnets_lacks(seed: int) -> None:
    model = _small(seed)
    with pytest.raises(HandoffError, match=r"optimizer NAdam: jaxnets.optim has no such"):
        to_jax(model, optim.NAdam(model.parameters()))


def test_refuses_an_option_jaxnets_lacks(seed: int) -> None:
    model = _small(seed)
    opt = optim.SGD(model.parameters(), lr=0.1)
    opt.param_groups[0]["lookahead"] = 5
    with pytest.raises(HandoffError, match=r"option lookahead=5 has no counterpart"):
        to_jax(model, opt)


def test_refuses_an_unknown_schedule(seed: int) -> None:
    model = _small(seed)
    opt = optim.SGD(model.parameters(), lr=0.1)

    class Halving(lr_scheduler.LRScheduler):
        def get_lr(self) -> list[float]:
            return [g["lr"] / 2 for g in self.optimizer.param_groups]

    with pytest.raises(HandoffError, match=r"scheduler Halving: jaxnets.schedules has no twin"):
        to_jax(model, opt, Halving(opt), steps_per_epoch=1)


def test_refuses_schedules_that_follow_more_than_the_count(seed: int) -> None:
    """ReduceLROnPlateau follows a metric; a LambdaLR whose lambda branches on the epoch in
    Python cannot be computed by JAX; CyclicLR with cycle_momentum=True (torch's default)
    also cycles the momentum. Each is refused by name."""
    model = _small(seed)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(HandoffError, match=r"ReduceLROnPlateau.*follows a metric"):
        to_jax(model, opt, lr_scheduler.ReduceLROnPlateau(opt), steps_per_epoch=1)
    branchy = lr_scheduler.LambdaLR(opt, lambda e: 1.0 if e < 3 else 0.1)
    with pytest.raises(HandoffError, match=r"LambdaLR.*lr_lambda cannot be computed by JAX"):
        to_jax(model, opt, branchy, steps_per_epoch=1)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    cyclic = lr_scheduler.CyclicLR(opt, 0.01, 0.1)
    with pytest.raises(HandoffError, match=r"CyclicLR.*cycle_momentum=True"):
        to_jax(model, opt, cyclic, steps_per_epoch=1)


def test_refuses_a_schedule_it_cannot_place(seed: int) -> None:
    """No steps_per_epoch, a scheduler of another optimizer, a position that the step count
    contradicts, an lr set by hand: each named, all in one error."""
    model = _small(seed)
    opt = optim.Adam(_adaptive(model), lr=0.01)
    sched = lr_scheduler.StepLR(opt, step_size=1)
    with pytest.raises(HandoffError, match="pass steps_per_epoch"):
        to_jax(model, opt, sched)
    other = lr_scheduler.StepLR(optim.SGD(model.parameters(), lr=0.1), step_size=1)
    with pytest.raises(HandoffError, match="belongs to another optimizer"):
        to_jax(model, opt, other, steps_per_epoch=1)
    _torch_steps(model, opt, sched, _batches(2, seed), 0, 1)  # 2 steps, scheduler at epoch 2
    opt.param_groups[0]["lr"] = 0.5
    with pytest.raises(HandoffError) as err:
        to_jax(model, opt, sched, steps_per_epoch=2)
    assert "with steps_per_epoch=2 the scheduler would be at 1" in str(err.value)
    assert "lr 0.5, but StepLR at epoch 2 gives" in str(err.value)
    assert len(err.value.problems) == 2


def test_refuses_state_of_another_model(seed: int) -> None:
    """An optimizer over another model's parameters, a twin of other sizes, an opt_state of
    another optimizer: refused, and the torch model and optimizer are left as they were."""
    model, stranger = _small(seed), _small(seed)
    with pytest.raises(HandoffError, match="not a parameter of BatchNormMLP"):
        to_jax(model, optim.SGD(stranger.parameters(), lr=0.1))

    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _torch_steps(model, opt, None, _batches(1, seed), 0, 1)
    wide = jaxnets.create_model(
        "batchnorm_mlp", param_dtype=jnp.float64, **{**CFG, "hidden_size1": 7}
    )
    with pytest.raises(HandoffError, match=r"weights: 'fc1.weight': shape"):
        to_jax(model, opt, twin=wide)

    twin, _, opt_state = to_jax(model, opt)
    before = _snapshot(model, opt)
    with pytest.raises(HandoffError, match=r"weights: 'fc1.weight': shape"):
        to_torch(wide, opt_state, model, opt)
    adam_state = to_jax(model, optim.Adam(model.parameters()))[2]
    with pytest.raises(HandoffError, match="opt_state is not the state of this optimizer"):
        to_torch(twin, adam_state, model, opt)
    _assert_unchanged(before, model, opt)


def test_refuses_parameters_that_stepped_apart(seed: int) -> None:
    """torch skips a parameter without a gradient; jaxnets steps all together: refused."""
    model = _small(seed)
    opt = optim.Adam(_adaptive(model), lr=0.01)
    _torch_steps(model, opt, None, _batches(1, seed), 0, 1)
    opt.zero_grad()
    x, y = _batches(1, seed + 1)[0]
    nn.CrossEntropyLoss()(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    model.fc3.weight.grad = None  # fc3.weight sits this step out: 1 step against 2
    opt.step()
    with pytest.raises(HandoffError, match="different numbers of steps"):
        to_jax(model, opt)


# --------------------------------------------------------------------------------------------
# Files: a PyTorch training checkpoint -> a jaxnets run file -> a PyTorch training checkpoint
# --------------------------------------------------------------------------------------------

FILE_CASES = [
    c
    for c in CASES
    if c.id
    in (
        "sgd-momentum-dampening-weight_decay",
        "adamw-amsgrad",
        "sgd-momentum-StepLR",
        "adam-MultiStepLR-mid-epoch",
        "rmsprop-ExponentialLR",
        "adagrad-lr_decay-CosineAnnealingLR",
        "param-groups-adam-CosineAnnealingLR",
    )
]


def _templates(make_opt: Factory, make_sched: Any) -> tuple[Any, Any, Any]:
    """Fresh torch objects built as the run built them (their values do not matter)."""
    model = torchref.create_model("batchnorm_mlp", dtype=torch.float64, **CFG)
    opt = make_opt(model)
    return model, opt, make_sched(opt) if make_sched else None


@pytest.mark.parametrize(("make_opt", "make_sched", "spe"), FILE_CASES)
def test_files_torch_run_torch_continue_exactly(
    make_opt: Factory, make_sched: Any, spe: int, seed: int, tmp_path: Any, request: Any
) -> None:
    """torch K steps -> torch.save training checkpoint -> jaxnets run file -> K steps of a
    Trainer that loads it -> run file -> training checkpoint -> torch K steps, against torch
    3K steps: the same bounds as in memory; the templates are left as they were."""
    batches = _batches(3 * K, seed)
    whole, handed = _pair(make_opt, make_sched, seed)
    _torch_steps(*whole, batches, 0, spe)
    _torch_steps(*handed, batches[:K], 0, spe)
    torch_ckpt = tmp_path / "torch.pt"
    checkpoint_mod.save_training_checkpoint(torch_ckpt, *handed, epoch=K // spe)

    templates = _templates(make_opt, make_sched)
    before = _snapshot(*templates[:2])
    run = checkpoint_to_run(
        torch_ckpt, tmp_path / "run.safetensors", *templates, steps_per_epoch=spe, meta={"a": 1}
    )
    _assert_unchanged(before, *templates[:2])
    trainer = trainer_for(*_templates(make_opt, make_sched), steps_per_epoch=spe)
    state, meta = jaxnets.checkpoint.load_run(run, trainer)
    assert meta["a"] == 1 and meta["epoch"] == K // spe
    for x, y in batches[K : 2 * K]:
        state, _ = trainer.step(state, x, y)
    jaxnets.checkpoint.save_run(tmp_path / "run2.safetensors", trainer, state, meta=meta)
    back = run_to_checkpoint(
        tmp_path / "run2.safetensors",
        tmp_path / "back.pt",
        trainer,
        *templates,
        steps_per_epoch=spe,
    )
    model, opt, sched = _templates(make_opt, make_sched)
    entries = checkpoint_mod.load_training_checkpoint(back, model, opt, sched)
    assert entries == {"epoch": K // spe}
    _torch_steps(model, opt, sched, batches[2 * K :], 2 * K, spe)
    _assert_same_run(f"files {request.node.callspec.id}", whole, (model, opt, sched))


def test_training_checkpoint_errors_list_every_problem(seed: int, tmp_path: Any) -> None:
    """A file that carries code is refused unread; one that is not a training checkpoint, or
    belongs to another model, optimizer or scheduler, names every problem; nothing is
    loaded and no run file is written."""
    model = _small(seed)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    class Payload:
        def __reduce__(self) -> Any:
            return (print, ("this ran",))

    evil = tmp_path / "evil.pt"
    torch.save({"model_state_dict": model.state_dict(), "x": Payload()}, evil)
    with pytest.raises(CheckpointError, match=r"refused.*nothing in it ran"):
        checkpoint_to_run(evil, tmp_path / "r.safetensors", model, opt)

    weights = tmp_path / "weights.pt"
    torch.save({"model_state_dict": {"w": torch.zeros(2)}, "epoch": -1}, weights)
    with pytest.raises(CheckpointError) as err:
        checkpoint_mod.read_training_checkpoint(weights)
    assert "no 'optimizer_state_dict' entry" in str(err.value)
    assert "'epoch' is -1" in str(err.value) and "2 problem(s)" in str(err.value)

    other = _small(seed, **{**CFG, "hidden_size2": 7})
    adam = optim.Adam(_adaptive(other), lr=0.01)
    _torch_steps(other, adam, None, _batches(1, seed), 0, 1)
    sched = lr_scheduler.StepLR(adam, 1)
    foreign = tmp_path / "foreign.pt"
    checkpoint_mod.save_training_checkpoint(foreign, other, adam, sched, epoch=1)
    before = _snapshot(model, opt)
    with pytest.raises(CheckpointError) as err:
        checkpoint_to_run(foreign, tmp_path / "r.safetensors", model, opt)
    text = str(err.value)
    assert "model: 'fc2.weight' has shape (7, 5)" in text
    assert "the state of another optimizer" in text and "'amsgrad'" in text
    assert "optimizer param group 0: 8 parameters saved, the SGD's group holds 10" in text
    assert "holds a scheduler state" in text and "nothing was loaded" in text
    _assert_unchanged(before, model, opt)
    assert not (tmp_path / "r.safetensors").exists()


# --------------------------------------------------------------------------------------------
# The command line: jaxnets convert --run, and jaxnets train --resume of what it wrote
# --------------------------------------------------------------------------------------------


def test_command_line_carries_a_run_both_ways(tmp_path: Any, write_tiny_mnist: Any, capsys):
    """``jaxnets train`` one epoch (Adam, float64) -> ``convert`` the run file to a PyTorch
    training checkpoint -> ``convert --run`` it back -> ``train --resume`` one more epoch
    from there, against torch continuing the PyTorch checkpoint over the same batches: the
    same parameters and Adam state within the float64 trajectory bound. The run file that
    went through torch resumes bit for bit as the original does."""
    from jaxnets.app import loop as jl
    from jaxnets.app.cli import main
    from jaxnets.tolerances import backend_name

    folder = write_tiny_mnist(tmp_path / "mnist", np.random.default_rng(0), 32, 8)
    run_a, run_b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    pt, final_pt = tmp_path / "run.pt", tmp_path / "final.pt"
    train = ["train", "mlp", "--config", "hidden_sizes=(8,)", "--data-dir", str(folder)]
    train += ["--no-verify", "--framework", "jax", "--device", backend_name(), "--no-progress"]
    train += ["--batch-size", "16", "--optimizer", "adam", "--dtype", "float64"]
    assert main([*train, "--epochs", "1", "--checkpoint", str(run_a)]) == 0
    assert main(["convert", str(run_a), str(pt), "--model", "mlp"]) == 0
    assert "(PyTorch training checkpoint: model_state_dict" in capsys.readouterr().out
    convert = ["convert", str(pt), str(run_b), "--model", "mlp", "--run"]
    convert += ["--config", "hidden_sizes=(8,)", "--batch-size", "16"]
    assert main(convert) == 0
    out = capsys.readouterr().out
    assert "1 epoch trained, Adam(lr=0.01)" in out
    assert "continue it with: jaxnets train mlp --config 'hidden_sizes=(8,)'" in out
    assert "--optimizer adam --lr 0.01 --dtype float64 --batch-size 16 --seed 0" in out
    for run in (run_a, run_b):
        assert main([*train, "--epochs", "2", "--checkpoint", str(run), "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"resuming from {run_b} at epoch 1 (step 2), training to epoch 2" in err
    a, _ = jaxnets.checkpoint.read_safetensors(run_a)
    b, _ = jaxnets.checkpoint.read_safetensors(run_b)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)

    # torch continues the PyTorch checkpoint for the second epoch, over the same batches
    cfg = jl.TrainConfig("mlp", {"hidden_sizes": (8,)}, optimizer="adam", batch_size=16)
    data = jl.mnist_dataset("mlp", data_dir=folder, verify=False, dtype="float64")
    model = torchref.create_model("mlp", dtype=torch.float64, hidden_sizes=(8,))
    opt = optim.Adam(model.parameters(), lr=cfg.lr)
    assert checkpoint_mod.load_training_checkpoint(pt, model, opt) == {"epoch": 1}
    order = jaxnets.data.epoch_batches(len(data.x_train), 16, seed=0, epoch=1)
    _torch_steps(model, opt, None, [(data.x_train[i], data.y_train[i]) for i in order], 0, 1)
    assert main(["convert", str(run_b), str(final_pt), "--model", "mlp"]) == 0
    jax_model = torchref.create_model("mlp", dtype=torch.float64, hidden_sizes=(8,))
    jax_opt = optim.Adam(jax_model.parameters(), lr=cfg.lr)
    assert checkpoint_mod.load_training_checkpoint(final_pt, jax_model, jax_opt) == {"epoch": 2}
    _assert_same_run("command line adam", (model, opt, None), (jax_model, jax_opt, None))


def test_command_line_refuses_what_train_cannot_continue(tmp_path: Any, capsys) -> None:
    """A checkpoint of an optimizer, option or schedule jaxnets train does not run is refused
    by name, and no run file is written."""
    from jaxnets.app.cli import main

    model = torchref.create_model("mlp", hidden_sizes=(8,))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    sched = lr_scheduler.StepLR(opt, 1)
    pt, out = tmp_path / "sgd.pt", tmp_path / "run.safetensors"
    checkpoint_mod.save_training_checkpoint(pt, model, opt, sched, epoch=0)
    args = ["convert", str(pt), str(out), "--model", "mlp", "--config", "hidden_sizes=(8,)"]
    assert main([*args, "--run"]) == 2
    err = capsys.readouterr().err
    assert "jaxnets train cannot continue this run (2 problem(s)" in err
    assert "learning-rate scheduler's state" in err and "SGD nesterov=True" in err
    assert not out.exists()
    assert main(args) == 2  # without --run: weights only, or --run
    assert "or --run to convert the whole training run" in capsys.readouterr().err
    rms = tmp_path / "rms.pt"
    checkpoint_mod.save_training_checkpoint(rms, model, optim.RMSprop(model.parameters()))
    assert main(["convert", str(rms), str(out), "--model", "mlp", "--run"]) == 2
    err = capsys.readouterr().err
    assert "not torch.optim.SGD's or Adam's" in err and "'centered'" in err
