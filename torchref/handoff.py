"""Move a training run between PyTorch and JAX mid-way, optimizer and schedule included.

Weights cross bit for bit (:mod:`torchref.bridge`); this module moves the rest of a run: the
optimizer's hyperparameters and state (momentum buffers, Adam's moments, RMSprop's averages,
Adagrad's sums, step counts) and the learning-rate schedule's position::

    twin, tx, opt_state = to_jax(model, optimizer, scheduler, steps_per_epoch=len(loader))
    # ... train the twin with tx from opt_state (a Trainer: trainer_state(trainer, opt_state))
    to_torch(twin, opt_state, model, optimizer, scheduler, steps_per_epoch=len(loader))
    optimizer.step()  # continues as if the run had never left torch

``to_jax`` returns the Flax twin holding torch's parameters and buffers in the torch model's
dtype, the :mod:`jaxnets.optim` transformation of the torch optimizer with its current
hyperparameters, and its state over ``nnx.state(twin, nnx.Param)``. ``to_torch`` writes
parameters, buffers, optimizer state and scheduler state back. What cannot cross is refused
by name before anything is written (:class:`HandoffError`): an optimizer, option or schedule
jaxnets does not have, state that belongs to another model or optimizer.

How the pieces map:

* Optimizers (:data:`OPTIMIZERS`, by torch class name): ``SGD``, ``Adam``, ``AdamW``,
  ``RMSprop``, ``Adagrad`` with every option of their :mod:`jaxnets.optim` builders. The
  options that only choose torch's kernel (``foreach``, ``fused``, ``capturable``,
  ``differentiable``) do not change the formulas and are accepted. Several parameter
  groups become an ``optax.partition`` with one transformation per group (labels
  ``'group0'``, ``'group1'``...); parameters the optimizer does not hold stay frozen
  (``optax.set_to_zero``, label ``'frozen'``).
* State: buffers by torch's names and in torch's layout through
  :func:`jaxnets.training.steps.optimizer_state_from_torch` and ``optimizer_state_to_torch``.
  Every parameter of an optimizer must have taken the same number of steps (jaxnets'
  optimizers keep one count). SGD and Adam keep their counts themselves; RMSprop and Adagrad
  states hold none, so their ``lr`` is given as a schedule, whose count is torch's ``step``.
* Schedules (:data:`SCHEDULES`, by torch class name; :func:`register_schedule` adds one):
  every ``torch.optim.lr_scheduler`` class that is a function of its step count
  (``StepLR``, ``MultiStepLR``, ``ConstantLR``, ``LinearLR``, ``ExponentialLR``,
  ``PolynomialLR``, ``CosineAnnealingLR``, ``CosineAnnealingWarmRestarts``, ``CyclicLR``,
  ``OneCycleLR``, ``LambdaLR``, ``MultiplicativeLR``, and ``SequentialLR`` and
  ``ChainedScheduler`` of those). The transformation's ``lr`` is
  ``jaxnets.schedules.per_epoch(f, steps_per_epoch)`` with ``f`` the closed form of the
  scheduler (``f(e)`` = the lr after ``e`` calls of ``scheduler.step()``), counted in
  optimizer steps; it agrees with torch's recursion to rounding. ``steps_per_epoch`` is how
  many ``optimizer.step()`` calls the loop makes between two ``scheduler.step()`` calls
  (``len(loader)`` for the usual per-epoch loop, 1 when the scheduler steps with every batch,
  as ``CyclicLR`` and ``OneCycleLR`` do). The count is torch's ``step``, which must lie in the
  scheduler's epoch (``step // steps_per_epoch == last_epoch``: the scheduler was made with
  the optimizer and stepped every ``steps_per_epoch`` steps); a hand-over may fall anywhere
  in an epoch. SGD keeps no step count: its position is taken as the start of the
  scheduler's epoch, so hand SGD over right after ``scheduler.step()``. ``to_torch`` brings
  the scheduler to ``count // steps_per_epoch`` with its own ``step()``: torch's recursion
  then gives its lrs and inner state (a sequence's members, warm restarts' cycle) exactly as
  an uninterrupted run holds them.

  Decisions: ``LambdaLR``/``MultiplicativeLR`` carry a Python function, not state. They are
  accepted when JAX computes it as torch does: JAX calls it on a traced int array, and the
  values on the 16 epochs from the current one must agree with torch's Python calls
  (within the evaluation bound of ``jaxnets.tolerances``), so a
  function that branches on the epoch in Python (``1.0 if e < 3 else 0.1``) is refused with
  the fix (``jnp.where``). ``ReduceLROnPlateau`` follows a metric, not the count: refused
  (``jaxnets.schedules.ReduceLROnPlateau`` with ``inject_lr`` drives one in JAX).
  ``CyclicLR``/``OneCycleLR`` need ``cycle_momentum=False``: jaxnets' momentum is constant.

Files: :func:`checkpoint_to_run` turns a PyTorch training checkpoint (``torch.save`` of the
model's, optimizer's and scheduler's ``state_dict()`` and the epoch, read with
``weights_only=True``) into a jaxnets run file (:func:`jaxnets.checkpoint.save_run`) that the
Trainer of :func:`trainer_for` continues, and :func:`run_to_checkpoint` turns one back. The
torch objects they take are templates built as the run built them; they are not changed.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
from flax import nnx

import jaxnets
from jaxnets import convert, optim, schedules
from jaxnets.checkpoint import load_run, save_run
from jaxnets.tolerances import tolerance
from jaxnets.training import Trainer, TrainState, steps
from torchref import bridge, models
from torchref.checkpoint import EPOCH_KEY, load_training_checkpoint, save_training_checkpoint

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "HandoffError",
    "OptimizerRule",
    "ScheduleRule",
    "checkpoint_to_run",
    "epoch_schedule",
    "register_schedule",
    "run_to_checkpoint",
    "to_jax",
    "to_torch",
    "trainer_for",
    "trainer_state",
]

Schedule = Callable[[Any], jax.Array]


class HandoffError(ValueError):
    """A run cannot cross as it is: every reason, by name, in one message (``problems``
    holds one line each). Nothing was written: not the twin, not the torch objects."""

    def __init__(self, problems: Sequence[str], direction: str) -> None:
        self.problems = list(problems)
        lines = "\n  ".join(self.problems)
        super().__init__(
            f"cannot hand the run over {direction}: {len(self.problems)} problem(s), nothing "
            f"was written:\n  {lines}"
        )


# --------------------------------------------------------------------------------------------
# Optimizers
# --------------------------------------------------------------------------------------------

#: param-group entries that choose torch's implementation, not the formulas.
IMPLEMENTATION_OPTIONS = frozenset({"foreach", "fused", "capturable", "differentiable"})
#: param-group entries that are not the optimizer's hyperparameters: its parameters, and what
#: lr schedulers write there (``initial_lr``; OneCycleLR's ``max_lr``, ``min_lr`` and
#: momentum bounds), which the scheduler's twin carries.
_NOT_OPTIONS = frozenset(
    {"params", "param_names", "initial_lr", "max_lr", "min_lr", "base_momentum", "max_momentum"}
)


@dataclass(frozen=True)
class OptimizerRule:
    """How one torch optimizer class crosses.

    ``build(options, lr)`` returns the :mod:`jaxnets.optim` transformation of a param group
    (``options``: the group's hyperparameters but ``lr``, as numbers and bools; ``lr``: a
    float or a schedule of the step count). ``options`` names the hyperparameters it takes;
    ``state_keys(options)`` the entries torch keeps in ``optimizer.state[p]``; with
    ``lr_schedule`` the lr is always given as a schedule, so that the state holds torch's
    ``step`` (the builder's own state keeps no count); with ``eager_state`` torch makes the
    state together with the optimizer (Adagrad), not at the first step."""

    build: Callable[[Mapping[str, Any], Any], optax.GradientTransformation]
    options: frozenset[str]
    state_keys: Callable[[Mapping[str, Any]], tuple[str, ...]]
    lr_schedule: bool = False
    eager_state: bool = False


def _adam_keys(o: Mapping[str, Any]) -> tuple[str, ...]:
    return ("step", "exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if o["amsgrad"] else ())


def _rmsprop_keys(o: Mapping[str, Any]) -> tuple[str, ...]:
    extra = (("momentum_buffer",) if o["momentum"] > 0 else ()) + (
        ("grad_avg",) if o["centered"] else ()
    )
    return ("step", "square_avg", *extra)


_ADAM = OptimizerRule(
    build=lambda o, lr: optim.adam(lr, **o),
    options=frozenset(
        {"betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay"}
    ),
    state_keys=_adam_keys,
)

#: torch optimizer class name -> how it crosses. The class must be torch.optim's own.
OPTIMIZERS: dict[str, OptimizerRule] = {
    "SGD": OptimizerRule(
        build=lambda o, lr: optim.sgd(lr, **o),
        options=frozenset({"momentum", "dampening", "weight_decay", "nesterov", "maximize"}),
        state_keys=lambda o: ("momentum_buffer",) if o["momentum"] != 0 else (),
    ),
    "Adam": _ADAM,
    "AdamW": _ADAM,  # Adam with decoupled_weight_decay=True in every group
    "RMSprop": OptimizerRule(
        build=lambda o, lr: optim.rmsprop(lr, **o),
        options=frozenset({"alpha", "eps", "weight_decay", "momentum", "centered", "maximize"}),
        state_keys=_rmsprop_keys,
        lr_schedule=True,
    ),
    "Adagrad": OptimizerRule(
        build=lambda o, lr: optim.adagrad(lr, **o),
        options=frozenset(
            {"lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize"}
        ),
        state_keys=lambda o: ("step", "sum"),
        lr_schedule=True,
        eager_state=True,
    ),
}


def _plain(value: Any) -> Any:
    """A hyperparameter as a Python number/bool (torch accepts tensors for lr and betas)."""
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value
    if isinstance(value, tuple | list):
        return type(value)(_plain(v) for v in value)
    return value


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleRule:
    """How one torch scheduler class crosses: ``epoch_schedule(scheduler, group)`` is the
    :mod:`jaxnets.schedules` closed form ``f(epoch) -> lr`` of param group ``group`` (the
    lr after ``epoch`` calls of ``scheduler.step()``), read from the scheduler's attributes;
    it raises ``ValueError``/``TypeError`` saying why an instance cannot cross."""

    epoch_schedule: Callable[[Any, int], Schedule]


def epoch_schedule(scheduler: Any, group: int = 0) -> Schedule:
    """The jaxnets closed form of a torch scheduler for param group ``group``, by
    :data:`SCHEDULES` (members of ``SequentialLR``/``ChainedScheduler`` too); ``ValueError``
    naming what has no counterpart."""
    cls = _torch_class(scheduler, torch.optim.lr_scheduler, SCHEDULES)
    if cls is None:
        known = ", ".join(sorted(SCHEDULES))
        raise ValueError(
            f"{type(scheduler).__name__}: jaxnets.schedules has no twin of it; known: {known}"
        )
    return SCHEDULES[cls].epoch_schedule(scheduler, group)


def _base(s: Any, g: int) -> float:
    return float(_plain(s.base_lrs[g]))


def _lambda(s: Any, g: int, build: Callable[[float, Any], Schedule]) -> Schedule:
    """``LambdaLR``/``MultiplicativeLR``: torch's own ``lr_lambda``, which JAX calls with a
    traced int array; refused unless that gives what torch's Python call gives."""
    fn = s.lr_lambdas[g]
    schedule = build(_base(s, g), fn)
    start = max(int(s.last_epoch), 0)
    epochs = range(start, start + 16)
    try:
        traced = np.asarray(jax.jit(jax.vmap(lambda e: fn(e) * 1.0))(jnp.asarray(list(epochs))))
    except Exception as exc:  # the function does what a traced array cannot
        raise ValueError(
            f"its lr_lambda cannot be computed by JAX on a traced epoch ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Fix: write it with operations "
            f"on arrays (jnp.where instead of an if on the epoch)"
        ) from None
    plain = np.asarray([float(fn(e)) for e in epochs])
    # one evaluation each, in the float JAX computes schedules in (float64 under x64)
    tol = tolerance(jnp.result_type(float), backend="cpu", kind="eval")
    if not np.max(np.abs(traced - plain)) <= tol.atol + tol.rtol * np.max(np.abs(plain)):
        raise ValueError(
            "its lr_lambda gives other values on a traced epoch than on torch's int epochs; "
            "write it with operations on arrays"
        )
    return schedule


def _warm_restarts(s: Any, g: int) -> Schedule:
    if float(s.T_cur) != int(s.T_cur):
        raise ValueError(
            f"it was stepped with fractional epochs (T_cur={s.T_cur}); the hand-over counts "
            f"whole scheduler.step() calls"
        )
    return schedules.cosine_annealing_warm_restarts(_base(s, g), s.T_0, s.T_mult, s.eta_min)


def _cyclic(s: Any, g: int) -> Schedule:
    up = s.total_size * s.step_ratio
    return schedules.cyclic_lr(
        _base(s, g),
        float(_plain(s.max_lrs[g])),
        up,
        s.total_size - up,
        s.mode,
        s.gamma,
        s._scale_fn_custom,
        s.scale_mode,
        s.cycle_momentum,
    )


def _one_cycle(s: Any, g: int) -> Schedule:
    group = s.optimizer.param_groups[g]
    phases = s._schedule_phases
    return schedules.one_cycle_lr(
        group["max_lr"],
        s.total_steps,
        pct_start=(phases[0]["end_step"] + 1) / s.total_steps,
        anneal_strategy=s._anneal_func_type,
        cycle_momentum=s.cycle_momentum,
        div_factor=group["max_lr"] / group["initial_lr"],
        final_div_factor=group["initial_lr"] / group["min_lr"],
        three_phase=len(phases) == 3,
    )


def _plateau(s: Any, g: int) -> Schedule:
    raise ValueError(
        "it follows a metric, not the step count: the hand-over carries schedules of the "
        "step count. Hand the run over at a reduction-free point with a constant lr, or "
        "drive jaxnets.schedules.ReduceLROnPlateau with inject_lr/set_lr yourself"
    )


#: torch scheduler class name -> how it crosses (the class must be torch's own). Schedulers
#: made with a list per param group (a ``lr_lambda`` each, ``max_lr`` each) cross per group.
SCHEDULES: dict[str, ScheduleRule] = {
    "StepLR": ScheduleRule(lambda s, g: schedules.step_lr(_base(s, g), s.step_size, s.gamma)),
    "MultiStepLR": ScheduleRule(
        # torch keeps a Counter: a milestone listed twice decays twice
        lambda s, g: schedules.multi_step_lr(_base(s, g), sorted(s.milestones.elements()), s.gamma)
    ),
    "ConstantLR": ScheduleRule(
        lambda s, g: schedules.constant_lr(_base(s, g), s.factor, s.total_iters)
    ),
    "LinearLR": ScheduleRule(
        lambda s, g: schedules.linear_lr(_base(s, g), s.start_factor, s.end_factor, s.total_iters)
    ),
    "ExponentialLR": ScheduleRule(lambda s, g: schedules.exponential_lr(_base(s, g), s.gamma)),
    "PolynomialLR": ScheduleRule(
        lambda s, g: schedules.polynomial_lr(_base(s, g), s.total_iters, s.power)
    ),
    "CosineAnnealingLR": ScheduleRule(
        lambda s, g: schedules.cosine_annealing_lr(_base(s, g), s.T_max, s.eta_min)
    ),
    # a Python callable, not state: accepted when JAX computes it as torch does (checked)
    "LambdaLR": ScheduleRule(lambda s, g: _lambda(s, g, schedules.lambda_lr)),
    "MultiplicativeLR": ScheduleRule(lambda s, g: _lambda(s, g, schedules.multiplicative_lr)),
    "CosineAnnealingWarmRestarts": ScheduleRule(_warm_restarts),
    "CyclicLR": ScheduleRule(_cyclic),
    "OneCycleLR": ScheduleRule(_one_cycle),
    "SequentialLR": ScheduleRule(
        lambda s, g: schedules.sequential_lr(
            [epoch_schedule(m, g) for m in s._schedulers], s._milestones
        )
    ),
    "ChainedScheduler": ScheduleRule(
        lambda s, g: schedules.chained_scheduler([epoch_schedule(m, g) for m in s._schedulers])
    ),
    "ReduceLROnPlateau": ScheduleRule(_plateau),
}


def register_schedule(name: str, rule: ScheduleRule) -> None:
    """Teach the handoff a torch scheduler class (its ``__name__``), or override one."""
    SCHEDULES[name] = rule


def _torch_class(obj: Any, module: Any, table: Mapping[str, Any]) -> str | None:
    """``type(obj).__name__`` when it is a key of ``table`` and ``module``'s own class of that
    name (a subclass or a look-alike may compute something else), else None."""
    name = type(obj).__name__
    return name if name in table and getattr(module, name, None) is type(obj) else None


# --------------------------------------------------------------------------------------------
# The plan: what crosses, checked, shared by both directions
# --------------------------------------------------------------------------------------------


@dataclass
class _Group:
    index: int
    options: dict[str, Any]
    lr: float
    names: list[str]  # torch parameter names, in the group's order
    epoch_schedule: Schedule | None = None
    tx: optax.GradientTransformation | None = None

    @property
    def label(self) -> str:
        return f"group{self.index}"


@dataclass
class _Plan:
    twin: nnx.Module
    torch_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    steps_per_epoch: int | None
    problems: list[str] = field(default_factory=list)
    rule: OptimizerRule | None = None
    groups: list[_Group] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # per twin parameter leaf
    tx: optax.GradientTransformation | None = None

    @property
    def partitioned(self) -> bool:
        return len(self.groups) > 1 or "frozen" in self.labels

    def masked_params(self, params: Any, label: str) -> Any:
        """``params`` with ``optax.MaskedNode`` where another group's parameters are, as the
        branch of ``optax.partition`` for ``label`` sees them."""
        leaves = jax.tree.leaves(params)
        kept = [
            p if lab == label else optax.MaskedNode()
            for p, lab in zip(leaves, self.labels, strict=True)
        ]
        return jax.tree.unflatten(jax.tree.structure(params), kept)

    def group_state(self, opt_state: Any, label: str) -> Any:
        return opt_state.inner_states[label].inner_state if self.partitioned else opt_state

    def with_group_states(self, template: Any, states: Mapping[str, Any]) -> Any:
        if not self.partitioned:
            return states[self.groups[0].label]
        inner = dict(template.inner_states)
        for label, state in states.items():
            inner[label] = inner[label]._replace(inner_state=state)
        return template._replace(inner_states=inner)


def _plan(
    twin: nnx.Module,
    torch_model: torch.nn.Module,
    optimizer: Any,
    scheduler: Any,
    steps_per_epoch: int | None,
) -> _Plan:
    """Check the optimizer, its groups and the scheduler against the twin, and build the
    transformation; every problem goes to ``plan.problems``."""
    plan = _Plan(twin, torch_model, optimizer, scheduler, steps_per_epoch)
    problems = plan.problems
    if not isinstance(optimizer, torch.optim.Optimizer):
        problems.append(f"optimizer: {type(optimizer).__name__} is not a torch.optim.Optimizer")
        return plan
    cls = _torch_class(optimizer, torch.optim, OPTIMIZERS)
    if cls is None:
        problems.append(
            f"optimizer {type(optimizer).__name__}: jaxnets.optim has no such optimizer; it "
            f"has torch.optim.{', '.join(OPTIMIZERS)}"
        )
        return plan
    rule = plan.rule = OPTIMIZERS[cls]
    names = {id(p): n for n, p in torch_model.named_parameters()}
    for g, group in enumerate(optimizer.param_groups):
        where = f"{cls} param group {g}"
        unknown = sorted(set(group) - rule.options - IMPLEMENTATION_OPTIONS - _NOT_OPTIONS - {"lr"})
        for key in unknown:
            problems.append(
                f"{where}: option {key}={_plain(group[key])!r} has no counterpart in "
                f"jaxnets.optim ({cls} there takes lr, {', '.join(sorted(rule.options))})"
            )
        options = {k: _plain(group[k]) for k in rule.options if k in group}
        missing = sorted(rule.options - set(options))
        if missing:
            problems.append(
                f"{where}: no value for {missing} (an optimizer from another torch version?)"
            )
            continue
        lr = _plain(group["lr"])
        group_names = []
        for p in group["params"]:
            name = names.get(id(p))
            if name is None:
                problems.append(
                    f"{where} holds a tensor of shape {tuple(p.shape)} that is not a "
                    f"parameter of {type(torch_model).__name__}: the optimizer belongs to "
                    f"another model"
                )
            elif not p.requires_grad:
                problems.append(
                    f"{where} holds {name!r} with requires_grad=False, which torch never "
                    f"updates; jaxnets steps every parameter it is given. Fix: leave it out "
                    f"of the optimizer"
                )
            elif p.is_complex():
                problems.append(f"{where}: {name!r} is complex; the twins are real")
            else:
                group_names.append(name)
        plan.groups.append(_Group(g, options, lr, group_names))
    _plan_schedule(plan)
    if problems:
        return plan
    # the twin's parameters, each with its group (or frozen when no group holds it)
    group_of = {n: grp.label for grp in plan.groups for n in grp.names}
    try:
        slots = convert.param_slots(twin)
    except TypeError as exc:
        problems.append(f"twin: {exc}")
        return plan
    plan.labels = [group_of.get(s.key, "frozen") for s in slots]
    twin_keys = {s.key for s in slots}
    for n in group_of:
        if n not in twin_keys:
            problems.append(f"{n!r}: the optimizer holds it, the twin has no such parameter")
    for grp in plan.groups:
        if grp.epoch_schedule is not None:
            lr: Any = schedules.per_epoch(grp.epoch_schedule, plan.steps_per_epoch or 1)
        elif rule.lr_schedule:
            lr = optax.constant_schedule(grp.lr)
        else:
            lr = grp.lr
        try:
            grp.tx = rule.build(grp.options, lr)
        except (TypeError, ValueError) as exc:
            problems.append(f"{cls} param group {grp.index}: {exc}")
    if problems:
        return plan
    if plan.partitioned:
        transforms = {grp.label: grp.tx for grp in plan.groups}
        if "frozen" in plan.labels:
            transforms["frozen"] = optax.set_to_zero()
        labels = list(plan.labels)

        def param_labels(params: Any) -> Any:  # by position: a State or a Trainer's list
            return jax.tree.unflatten(jax.tree.structure(params), labels)

        plan.tx = optax.partition(transforms, param_labels)
    else:
        plan.tx = plan.groups[0].tx
    return plan


def _plan_schedule(plan: _Plan) -> None:
    """Each group's epoch schedule from the scheduler (problems when it cannot cross)."""
    scheduler, problems = plan.scheduler, plan.problems
    if scheduler is None:
        return
    kind = type(scheduler).__name__
    if _torch_class(scheduler, torch.optim.lr_scheduler, SCHEDULES) is None:
        problems.append(
            f"scheduler {kind}: jaxnets.schedules has no twin of it; known: "
            f"{', '.join(sorted(SCHEDULES))}"
        )
        return
    if getattr(scheduler, "optimizer", None) is not plan.optimizer:
        problems.append(f"scheduler {kind} belongs to another optimizer")
        return
    spe = plan.steps_per_epoch
    if spe is None:
        problems.append(
            f"scheduler {kind}: pass steps_per_epoch, the optimizer steps between two "
            f"scheduler.step() calls (len(loader) for a per-epoch scheduler, 1 when it steps "
            f"with every batch)"
        )
        return
    if isinstance(spe, bool) or not isinstance(spe, int) or spe < 1:
        problems.append(f"steps_per_epoch={spe!r} must be a positive int")
        return
    for grp in plan.groups:
        try:
            grp.epoch_schedule = epoch_schedule(scheduler, grp.index)
        except (TypeError, ValueError) as exc:
            problems.append(f"scheduler {kind}, param group {grp.index}: {exc}")


def _last_epoch(scheduler: Any) -> int:
    """The scheduler's ``scheduler.step()`` count (a ``ChainedScheduler``'s: its members')."""
    if not hasattr(scheduler, "last_epoch") and hasattr(scheduler, "_schedulers"):
        return _last_epoch(scheduler._schedulers[0])
    return int(scheduler.last_epoch)


def _lr_close(a: float, b: float) -> bool:
    """Whether two lrs agree to the rounding of torch's recursive form against the closed
    form (the trajectory bound of the float in which JAX computes the schedule)."""
    tol = tolerance(jnp.result_type(float), backend="cpu", kind="trajectory")
    return abs(a - b) <= tol.atol + tol.rtol * abs(b)


# --------------------------------------------------------------------------------------------
# torch -> JAX
# --------------------------------------------------------------------------------------------


def _torch_dtype_name(torch_model: torch.nn.Module) -> tuple[str | None, list[str]]:
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in torch_model.parameters()})
    if len(dtypes) > 1:
        return None, [f"the model's parameters mix dtypes {dtypes}; the twin holds one"]
    return (dtypes[0] if dtypes else None), []


def _registered_twin(torch_model: torch.nn.Module) -> Callable[[], nnx.Module]:
    """A function building the registered twin of a registered torch model, in its dtype."""
    found = models.config_of(torch_model)
    if found is None:
        raise HandoffError(
            [
                f"{type(torch_model).__name__} is not a registered model "
                f"(torchref.list_models()), so its twin cannot be built here. Fix: pass "
                f"twin=, an nnx.Module with the same parameter names (jaxnets port writes one)"
            ],
            "to JAX",
        )
    name, config = found
    dtype, problems = _torch_dtype_name(torch_model)
    if problems:
        raise HandoffError(problems, "to JAX")
    return lambda: jaxnets.create_model(name, param_dtype=dtype or "float32", **config)


def _is_abstract(model: nnx.Module) -> bool:
    return any(isinstance(v, jax.ShapeDtypeStruct) for v in jax.tree.leaves(nnx.state(model)))


def _numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().copy()
    return value


def to_jax(
    torch_model: torch.nn.Module,
    torch_optimizer: torch.optim.Optimizer,
    scheduler: Any = None,
    twin: nnx.Module | None = None,
    *,
    steps_per_epoch: int | None = None,
) -> tuple[nnx.Module, optax.GradientTransformation, Any]:
    """Hand a torch training run to JAX: ``(twin, tx, opt_state)``.

    ``twin``: the Flax twin holding torch's parameters and buffers (BatchNorm statistics and
    counters), in the torch model's dtype and mode (``train()``/``eval()``); built from the
    registry when ``torch_model`` is a registered model (by class, with the sizes it was
    built with), else the ``twin`` given, loaded in place. ``tx``: the :mod:`jaxnets.optim`
    transformation of ``torch_optimizer`` with its current hyperparameters (per param group,
    see the module docstring) and, with ``scheduler``, its schedule. ``opt_state``: the state
    of ``tx`` over ``nnx.state(twin, nnx.Param)`` where torch stopped: buffers, step counts,
    and the schedule's position, so the next step uses torch's next lr.

    ``steps_per_epoch`` (needed with a scheduler): optimizer steps between two
    ``scheduler.step()`` calls. Raises :class:`HandoffError` naming everything that cannot
    cross, before anything is written.
    """
    build = None
    if twin is None:
        build = _registered_twin(torch_model)
        # abstract: its random initialisation would be overwritten by torch's weights anyway
        twin = nnx.eval_shape(build)
    elif not isinstance(twin, nnx.Module):
        raise TypeError(f"twin must be an nnx.Module, got {type(twin).__name__}")
    plan = _plan(twin, torch_model, torch_optimizer, scheduler, steps_per_epoch)
    problems = plan.problems
    weights = bridge.to_numpy_state_dict(torch_model)
    probe = nnx.clone(twin)  # checked on a copy: nothing is written before all is checked
    try:
        convert.load_state_dict(probe, weights)
    except convert.StateDictError as exc:
        problems.extend(f"weights: {p}" for p in exc.problems)
    if problems:
        raise HandoffError(problems, "to JAX")
    assert plan.tx is not None and plan.rule is not None
    params = nnx.state(probe, nnx.Param)
    template = plan.tx.init(params)
    by_name = dict(torch_model.named_parameters())
    filled = {}
    for grp in plan.groups:
        state = {
            n: {k: _numpy(v) for k, v in torch_optimizer.state.get(by_name[n], {}).items()}
            for n in grp.names
        }
        count = None
        if grp.epoch_schedule is not None:
            count = _check_position(plan, grp, state)
        try:
            filled[grp.label] = steps.optimizer_state_from_torch(
                probe,
                plan.group_state(template, grp.label),
                plan.masked_params(params, grp.label),
                state,
                step=count,
            )
        except convert.StateDictError as exc:
            problems.extend(f"param group {grp.index}: {p}" for p in exc.problems)
    if problems:
        raise HandoffError(problems, "to JAX")
    opt_state = plan.with_group_states(template, filled)
    # all checked: now the twin (a given one is loaded in place)
    if build is None:
        convert.load_state_dict(twin, weights)
    elif _is_abstract(probe):  # variables torch has no weights for (none in the registry)
        twin = build()
        convert.load_state_dict(twin, weights)
    else:
        twin = probe
    if torch_model.training:
        twin.train()
    else:
        twin.eval()
    return twin, plan.tx, opt_state


def _check_position(plan: _Plan, grp: _Group, state: Mapping[str, Mapping[str, Any]]) -> int:
    """The step count at which the group's schedule resumes (problems when torch's lr or
    step do not sit where the scheduler says)."""
    spe = plan.steps_per_epoch or 1
    epoch = _last_epoch(plan.scheduler)
    kind = type(plan.scheduler).__name__
    steps_taken = {int(np.asarray(s["step"])) for s in state.values() if "step" in s}
    if not steps_taken:
        # SGD keeps no count (and a fresh Adam none yet): the start of the epoch
        count = epoch * spe if plan.rule is OPTIMIZERS["SGD"] else 0
    else:
        count = max(steps_taken)  # differing counts are named by the state conversion
    if count // spe != epoch:
        plan.problems.append(
            f"scheduler {kind} has stepped {epoch} times, the optimizer {count} times: with "
            f"steps_per_epoch={spe} the scheduler would be at {count // spe}. Pass the "
            f"steps_per_epoch of your loop, with a scheduler made together with the optimizer"
        )
    expected = float(grp.epoch_schedule(epoch))  # type: ignore[misc]
    if not _lr_close(grp.lr, expected):
        plan.problems.append(
            f"param group {grp.index}: lr {grp.lr!r}, but {kind} at epoch {epoch} gives "
            f"{expected!r} (an lr set by hand, or another scheduler?)"
        )
    return count


def trainer_state(trainer: Trainer, opt_state: Any) -> TrainState:
    """A :class:`jaxnets.training.TrainState` for ``trainer`` (built on the twin and ``tx`` of
    :func:`to_jax`): its ``init()`` with ``opt_state`` laid out as the Trainer holds it (a
    flat list of parameters instead of ``nnx.State``; same leaves) and ``step`` the
    optimizer's step count (0 when the state keeps none)."""
    state = trainer.init()
    treedef = jax.tree.structure(state.opt_state)
    leaves = jax.tree.leaves(opt_state)
    if treedef.num_leaves != len(leaves):
        raise HandoffError(
            [
                f"opt_state has {len(leaves)} arrays, the trainer's optimizer state "
                f"{treedef.num_leaves}: build the Trainer with the tx of to_jax"
            ],
            "to a Trainer",
        )
    opt = jax.tree.unflatten(treedef, [jnp.array(a) for a in leaves])
    step = jnp.asarray(_step_count(_counts(opt)), state.step.dtype)
    return state._replace(opt_state=opt, step=step)


# --------------------------------------------------------------------------------------------
# JAX -> torch
# --------------------------------------------------------------------------------------------


def _counts(tree: Any) -> dict[str, int]:
    """``{'ScaleByAdamState.count': 5, ...}``: the step counts of an optax state."""
    out: dict[str, int] = {}

    def walk(node: Any) -> None:
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            for name in node._fields:
                value = getattr(node, name)
                if name == "count" and jnp.ndim(value) == 0:
                    out[f"{type(node).__name__}.count"] = int(value)
                else:
                    walk(value)
        elif isinstance(node, list | tuple):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for item in node.values():
                walk(item)

    walk(tree)
    return out


def _step_count(counts: Mapping[str, int]) -> int:
    """The optimizer's step count among an optax state's counts (torch's ``step``): Adam's
    own, else the lr schedule's; 0 when it keeps none."""
    for key in ("ScaleByAdamState.count", "TorchAmsgradState.count", "ScaleByScheduleState.count"):
        if key in counts:
            return counts[key]
    return 0


def _scalar_dtype(existing: Any) -> torch.dtype:
    """torch's dtype for a ``step`` tensor: the one it holds, else its default
    (``torch.optim.optimizer._get_scalar_dtype``: float64 when that is the default)."""
    if isinstance(existing, torch.Tensor):
        return existing.dtype
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _layout_of(plan: _Plan, opt_state: Any, params: Any) -> Any | None:
    """``params`` as the tree ``opt_state`` was built over (``nnx.State`` or a Trainer's
    list), or None when the state fits neither: it belongs to another model or optimizer."""
    assert plan.tx is not None
    got = jax.tree.structure(opt_state)
    got_leaves = [(jnp.shape(a), jnp.result_type(a)) for a in jax.tree.leaves(opt_state)]
    for tree in (params, jax.tree.leaves(params)):
        want = jax.eval_shape(plan.tx.init, tree)
        shapes = [(a.shape, a.dtype) for a in jax.tree.leaves(want)]
        if jax.tree.structure(want) == got and shapes == got_leaves:
            return tree
    return None


def to_torch(
    twin: nnx.Module,
    opt_state: Any,
    torch_model: torch.nn.Module,
    torch_optimizer: torch.optim.Optimizer,
    scheduler: Any = None,
    *,
    steps_per_epoch: int | None = None,
) -> None:
    """Hand a run back from JAX: write the twin's parameters and buffers, the optimizer state
    and the schedule's position into ``torch_model``, ``torch_optimizer`` and ``scheduler``,
    so that ``torch_optimizer.step()`` (and ``scheduler.step()``) continue exactly.

    ``opt_state`` is the state of the ``tx`` that :func:`to_jax` returned for these torch
    objects, over ``nnx.state(twin, nnx.Param)`` or a Trainer's ``state.opt_state``. The
    scheduler is stepped with its own ``step()`` from where it stands (as :func:`to_jax` left
    it, or new) to the run's epoch, so its lrs and inner state are torch's own.
    ``steps_per_epoch`` as for :func:`to_jax`. Raises :class:`HandoffError` naming
    everything that does not fit before writing anything.
    """
    plan = _plan(twin, torch_model, torch_optimizer, scheduler, steps_per_epoch)
    problems = plan.problems
    try:
        problems.extend(f"weights: {p}" for p in bridge.flax_to_torch_problems(twin, torch_model))
    except TypeError as exc:
        problems.append(f"twin: {exc}")
    if problems:
        raise HandoffError(problems, "to torch")
    assert plan.tx is not None and plan.rule is not None
    params = _layout_of(plan, opt_state, nnx.state(twin, nnx.Param))
    if params is None:
        raise HandoffError(
            [
                "opt_state is not the state of this optimizer over the twin's parameters "
                "(another model, optimizer or set of options): pass the opt_state of the tx "
                "that to_jax returned for these torch objects"
            ],
            "to torch",
        )
    by_name = dict(torch_model.named_parameters())
    new_state: dict[str, dict[str, Any]] = {}
    epochs: set[int] = set()
    for grp in plan.groups:
        sub = plan.group_state(opt_state, grp.label)
        named = steps.optimizer_state_to_torch(twin, sub, plan.masked_params(params, grp.label))
        counts = _counts(sub)
        count = _step_count(counts)
        keys = plan.rule.state_keys(grp.options)
        if "step" in keys and count == 0 and not plan.rule.eager_state:
            continue  # no step taken: torch makes this state at the first step
        for n in grp.names:
            old = torch_optimizer.state.get(by_name[n], {})
            entries = named.get(n, {})
            out = {}
            for key in keys:
                if key == "step":
                    out[key] = torch.tensor(float(count), dtype=_scalar_dtype(old.get("step")))
                elif key in entries:  # (an SGD buffer with dampening exists from step 1)
                    out[key] = torch.from_numpy(entries[key])
            if out:
                new_state[n] = out
        if grp.epoch_schedule is not None:
            position = counts.get("ScaleByScheduleState.count", count)
            epochs.add(position // (plan.steps_per_epoch or 1))
    if len(epochs) > 1:
        problems.append(
            f"the param groups have taken different numbers of steps, the scheduler holds one "
            f"position: epochs {sorted(epochs)}"
        )
    epoch = epochs.pop() if len(epochs) == 1 else 0
    if scheduler is not None and not problems:
        _check_replay(plan, epoch)
    if problems:
        raise HandoffError(problems, "to torch")
    # everything checked: write
    bridge.flax_to_torch(twin, torch_model)
    index = {id(p): i for i, p in enumerate(_optimizer_params(torch_optimizer))}
    groups = torch_optimizer.state_dict()["param_groups"]
    state = {index[id(by_name[n])]: entries for n, entries in new_state.items()}
    torch_optimizer.load_state_dict({"state": state, "param_groups": groups})
    if scheduler is not None:
        _replay(scheduler, epoch - _last_epoch(scheduler))


# torch warns when a scheduler steps before its optimizer has, or after the optimizer's step
# was replaced (a deep copy's is): neither applies to steps that replay a finished epoch.
_ORDER_WARNINGS = (
    r"Detected call of `lr_scheduler\.step\(\)` before `optimizer\.step\(\)`",
    r"Seems like `optimizer\.step\(\)` has been overridden after learning rate scheduler",
)


def _replay(scheduler: Any, epochs: int) -> None:
    """``scheduler.step()`` ``epochs`` times: torch's own recursion brings the scheduler and
    the optimizer's lrs to where the JAX side has counted (every scheduler's inner state,
    chains and sequences included, as an uninterrupted torch run holds it)."""
    with warnings.catch_warnings():
        for message in _ORDER_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        for _ in range(epochs):
            scheduler.step()


def _check_replay(plan: _Plan, epoch: int) -> None:
    """Problems when the scheduler cannot be brought to ``epoch``: it is past it, the lrs it
    holds are not its own, or torch refuses a step on the way (tried on copies)."""
    scheduler, kind = plan.scheduler, type(plan.scheduler).__name__
    start = _last_epoch(scheduler)
    if epoch < start:
        plan.problems.append(
            f"scheduler {kind} is at epoch {start}, past the run's epoch {epoch}: pass the "
            f"scheduler as to_jax found it (or a new one)"
        )
        return
    for grp in plan.groups:
        expected = float(grp.epoch_schedule(start))  # type: ignore[misc]
        if not _lr_close(grp.lr, expected):
            plan.problems.append(
                f"param group {grp.index}: lr {grp.lr!r}, but {kind} at epoch {start} gives "
                f"{expected!r} (an lr set by hand, or another scheduler?)"
            )
    if plan.problems:
        return
    _, trial = copy.deepcopy((plan.optimizer, scheduler))
    try:
        _replay(trial, epoch - start)
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        plan.problems.append(f"scheduler {kind} refuses to step to epoch {epoch}: {exc}")


def _optimizer_params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The optimizer's parameters in the order its ``state_dict()`` numbers them."""
    return [p for group in optimizer.param_groups for p in group["params"]]


# --------------------------------------------------------------------------------------------
# Files: a PyTorch training checkpoint <-> a jaxnets run file
# --------------------------------------------------------------------------------------------


def trainer_for(
    torch_model: torch.nn.Module,
    torch_optimizer: torch.optim.Optimizer,
    scheduler: Any = None,
    *,
    steps_per_epoch: int | None = None,
    twin: nnx.Module | None = None,
    loss: str | Callable[..., Any] = "cross_entropy",
) -> Trainer:
    """The :class:`jaxnets.Trainer` of a torch run (its twin and the ``tx`` of
    :func:`to_jax`), to load the run files :func:`checkpoint_to_run` writes
    (``jaxnets.checkpoint.load_run(path, trainer)``). The torch objects are templates, built
    as the run built them; they are not changed."""
    model, optimizer, sched = copy.deepcopy((torch_model, torch_optimizer, scheduler))
    twin, tx, _ = to_jax(model, optimizer, sched, twin, steps_per_epoch=steps_per_epoch)
    return Trainer(twin, tx, loss)


def checkpoint_to_run(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    torch_model: torch.nn.Module,
    torch_optimizer: torch.optim.Optimizer,
    scheduler: Any = None,
    *,
    steps_per_epoch: int | None = None,
    twin: nnx.Module | None = None,
    loss: str | Callable[..., Any] = "cross_entropy",
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """A PyTorch training checkpoint (``torch.save`` of ``model_state_dict``,
    ``optimizer_state_dict``, optionally ``scheduler_state_dict`` and ``epoch``) as a
    jaxnets run file (:func:`jaxnets.checkpoint.save_run`), which a :class:`jaxnets.Trainer`
    with the same twin and ``tx`` continues (:func:`trainer_for`; ``jaxnets train --resume``
    for the runs it can express).

    ``torch_model``, ``torch_optimizer`` and ``scheduler`` are templates built as the run
    built them (classes, sizes, param groups, options); the checkpoint is loaded into copies
    of them (:func:`torchref.checkpoint.load_training_checkpoint`, read with
    ``weights_only=True``) and handed over by :func:`to_jax`. The run's ``meta`` is ``meta``
    with the checkpoint's ``epoch`` (0 without one) and, when the optimizer counts its steps,
    ``step``. Everything is checked before the file is written (atomically).
    """
    model, optimizer, sched = copy.deepcopy((torch_model, torch_optimizer, scheduler))
    entries = load_training_checkpoint(src, model, optimizer, sched)
    twin, tx, opt_state = to_jax(model, optimizer, sched, twin, steps_per_epoch=steps_per_epoch)
    trainer = Trainer(twin, tx, loss)
    state = trainer_state(trainer, opt_state)
    run_meta = {**(meta or {}), "epoch": int(entries.get(EPOCH_KEY, 0))}
    if int(state.step) > 0:
        run_meta["step"] = int(state.step)
    return save_run(dst, trainer, state, meta=run_meta)


def run_to_checkpoint(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    trainer: Trainer,
    torch_model: torch.nn.Module,
    torch_optimizer: torch.optim.Optimizer,
    scheduler: Any = None,
    *,
    steps_per_epoch: int | None = None,
) -> Path:
    """A jaxnets run file (:func:`jaxnets.checkpoint.save_run`) as a PyTorch training
    checkpoint (:func:`torchref.checkpoint.save_training_checkpoint`: ``model_state_dict``,
    ``optimizer_state_dict``, ``scheduler_state_dict`` with a scheduler, and the run's
    ``epoch``), from which torch continues exactly.

    ``trainer`` is built like the one that saved the run (:func:`trainer_for` of the same
    templates, or the trainer of the run's own settings); ``torch_model``,
    ``torch_optimizer`` and ``scheduler`` are templates, handed the run in copies by
    :func:`to_torch`. Everything is checked before the file is written (atomically).
    """
    state, meta = load_run(src, trainer)
    model, optimizer, sched = copy.deepcopy((torch_model, torch_optimizer, scheduler))
    to_torch(
        trainer.merge(state),
        state.opt_state,
        model,
        optimizer,
        sched,
        steps_per_epoch=steps_per_epoch,
    )
    return save_training_checkpoint(dst, model, optimizer, sched, epoch=meta.get("epoch"))
