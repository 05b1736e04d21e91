"""Jitted training: a pure step function, and many steps fused with ``jax.lax.scan``.

A :class:`Trainer` splits an NNX model once into its static graph and two flat lists of
arrays, the parameters and the rest of the state (BatchNorm running statistics and
counters). The step is a pure function of plain arrays under ``jax.jit``, with the training
state donated so XLA updates it in place; nothing in the hot loop walks the object graph
(``nnx.jit`` does, on every call; see the Flax performance guide) or flattens Variable
wrappers::

    trainer = Trainer(model, jaxnets.optim.sgd(lr=0.01), "cross_entropy")
    state = trainer.init()
    state, loss = trainer.step(state, x, y)                 # one step, as torch's loop body
    state, losses = trainer.run_epoch(state, X, Y, idx)     # idx: (steps, batch) -> one scan
    loss, grads = trainer.loss_and_grad(state, x, y)         # loss.backward(), no update
    state = trainer.apply_gradients(state, grads)            # optimizer.step() on given grads
    trainer.write_back(state, model)                        # the trained model, in place

``step`` and ``run_epoch`` compute the same thing: ``run_epoch`` over ``idx`` equals calling
``step`` on ``X[idx[i]], Y[idx[i]]`` for each ``i`` in order.

One step is torch's ``optimizer.zero_grad(); loss = criterion(model(x), y); loss.backward();
optimizer.step()``: the forward pass runs in the model's current mode (``model.train()`` for
batch statistics), gradients are fresh each step, and the optax update is applied with
``optax.apply_updates``.

The options left at ``'auto'`` (``compiler_options``, ``gather_ahead``, and the layout
``run_epoch`` carries Linear kernels in) are chosen by :mod:`jaxnets.fast.training` for the
model and backend: speed choices with the same results (bit for bit, or within float32
rounding where it says so).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxnets import losses
from jaxnets.fast.training import (
    KernelLayout,
    check_compiler_options,
    default_compiler_options,
    default_epoch_kernel_layout,
    default_gather_ahead,
    linear_kernel_flags,
    state_is_param_copies,
)
from jaxnets.training import steps

__all__ = [
    "KernelLayout",
    "LossFn",
    "TrainState",
    "Trainer",
    "check_epoch_args",
    "resolve_loss",
]

LossFn = Callable[[jax.Array, jax.Array], jax.Array]

_LOSSES: dict[str, LossFn] = {
    "cross_entropy": losses.cross_entropy,
    "mse": losses.mse_loss,
    "l1": losses.l1_loss,
}


def resolve_loss(loss: str | LossFn) -> LossFn:
    """A loss function ``(outputs, targets) -> scalar`` from a name or a callable."""
    if callable(loss):
        return loss
    try:
        return _LOSSES[loss]
    except KeyError:
        raise ValueError(
            f"unknown loss {loss!r}; use one of {sorted(_LOSSES)} or pass a function "
            f"(outputs, targets) -> scalar, e.g. from jaxnets.losses"
        ) from None


def _check_optimizer(optimizer: Any) -> None:
    """``TypeError`` unless ``optimizer`` is an optax transformation (``init``/``update``)."""
    if hasattr(optimizer, "init") and hasattr(optimizer, "update"):
        return
    hint = (
        f"; {getattr(optimizer, '__name__', 'it')} builds one: call it, e.g. optim.sgd(lr=0.01)"
        if callable(optimizer)
        else ", e.g. jaxnets.optim.sgd(lr=0.01) or optax.adam(1e-3)"
    )
    raise TypeError(f"optimizer must be an optax.GradientTransformation, got {optimizer!r}{hint}")


def _check_same_arrays(want: Any, got: Any) -> None:
    """``ValueError`` unless the two ``nnx.State`` trees have the same paths, shapes and
    dtypes (what :meth:`Trainer.write_back` is about to copy over)."""

    w, g = _flat_shapes(want), _flat_shapes(got)
    if w == g:
        return
    diffs = [f"{k} missing from the model" for k in g if k not in w]
    diffs += [f"{k} missing from the state" for k in w if k not in g]
    diffs += [
        f"{k}: {g[k][0]} {g[k][1]} in the state, {w[k][0]} {w[k][1]} in the model"
        for k in w
        if k in g and w[k] != g[k]
    ]
    raise ValueError(
        f"the model does not fit the trainer's state, nothing was copied ({_listed(diffs)}): "
        f"write back into a model of the trainer's architecture and sizes"
    )


def _flat_shapes(tree: Any) -> dict[str, tuple[tuple[int, ...], Any]]:
    """``{'layers.0.kernel': (shape, dtype), ...}`` for the arrays of an ``nnx.State``."""
    return {
        # names as checkpoint's run files write them: the Variable's own field is not a name
        jax.tree_util.keystr(path, simple=True, separator=".").removesuffix(".value"): (
            tuple(np.shape(a)),
            jnp.dtype(a.dtype),
        )
        for path, a in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


def _listed(items: list[str], most: int = 5) -> str:
    """The first ``most`` of ``items`` joined with '; ', and how many more there are."""
    more = f"; and {len(items) - most} more" if len(items) > most else ""
    return "; ".join(items[:most]) + more


def check_epoch_args(inputs: Any, targets: Any, batch_idx: Any) -> None:
    """Check :meth:`Trainer.run_epoch`'s data arguments; ``ValueError`` (or ``TypeError``
    for non-integer indices) says what does not fit.

    ``inputs`` ``(N, ...)`` and ``targets`` ``(N, ...)`` must agree in ``N``; ``batch_idx``
    must be ``(steps, batch_size)`` integers in ``0..N-1`` (checked when its values are
    concrete, not while tracing: inside ``jit`` an index out of range would be clamped).
    """
    if np.ndim(batch_idx) != 2:
        raise ValueError(
            f"batch_idx must have shape (steps, batch_size), got {np.shape(batch_idx)}; "
            f"jaxnets.data.epoch_batches makes it"
        )
    if not isinstance(batch_idx, (jax.Array, np.ndarray)):
        batch_idx = np.asarray(batch_idx)
    dtype = batch_idx.dtype
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(
            f"batch_idx must hold integer indices, got dtype {dtype}; "
            f"cast it with .astype(np.int32)"
        )
    for a, what in ((inputs, "inputs"), (targets, "targets")):
        if np.ndim(a) < 1:
            raise ValueError(f"{what} must have a leading example dimension (N, ...), got a scalar")
    n, n_targets = np.shape(inputs)[0], np.shape(targets)[0]
    if n != n_targets:
        raise ValueError(
            f"inputs and targets differ in length: {np.shape(inputs)} vs {np.shape(targets)}; "
            f"pass one target per example"
        )
    if batch_idx.size and not isinstance(batch_idx, jax.core.Tracer):
        if isinstance(batch_idx, jax.Array) and not batch_idx.is_fully_addressable:
            lo, hi = int(jnp.min(batch_idx)), int(jnp.max(batch_idx))  # a global array
        else:
            host = np.asarray(batch_idx)  # no copy for a CPU array; min/max without dispatch
            lo, hi = int(host.min()), int(host.max())
        if lo < 0 or hi >= n:
            raise ValueError(
                f"batch_idx holds indices from {lo} to {hi}, but the data set has {n} "
                f"examples (valid: 0 to {n - 1}); make them with "
                f"jaxnets.data.epoch_batches({n}, batch_size, ...)"
            )


class TrainState(NamedTuple):
    """Everything a training step reads and writes, as plain arrays.

    ``params`` and ``rest`` are flat lists of arrays in the order of the model's flattened
    ``nnx.State`` (``rest``: BatchNorm statistics and counters); ``opt_state`` is the optax
    state over ``params``; ``step`` counts optimizer steps (int32 scalar).
    """

    params: list[jax.Array]
    opt_state: Any
    rest: list[jax.Array]
    step: jax.Array


class Trainer:
    """Compiled training for one model, optimizer and loss.

    Args:
      model: the NNX model. Its mode (``train()`` / ``eval()``) at construction is the mode
        steps run in; :meth:`predict` always runs in eval mode.
      optimizer: any ``optax.GradientTransformation`` (``jaxnets.optim`` gives torch's).
      loss: ``'cross_entropy'``, ``'mse'``, ``'l1'`` or a function ``(outputs, targets)``.
      donate: donate the state to each step so XLA reuses its buffers (the state passed in
        must not be used again; use the returned one).
      compiler_options: XLA options every function is compiled with: ``'auto'`` (the
        default) takes :func:`default_compiler_options` for the model, ``None`` XLA's
        defaults, a dict those options (as ``jax.jit(..., compiler_options=...)``). The
        resolved value is ``self.compiler_options``.
      gather_ahead: how :meth:`run_epoch` takes its batches from the data set: ``False``
        gathers each step's batch inside the step, ``True`` gathers it one step ahead and
        hands it to the step through the loop's carry (one more batch in memory), ``'auto'``
        (the default) takes :func:`default_gather_ahead` for the model. The results are the
        same either way. The resolved value is ``self.gather_ahead``.
      epoch_kernel_layout: how :meth:`run_epoch` carries the ``nnx.Linear`` kernels through
        its loop: ``'in_out'`` as the model holds them, ``'out_in'`` transposed (with the
        optimizer's copies of them), ``'auto'`` (the default)
        :func:`default_epoch_kernel_layout`. The state going in and coming out is in the
        model's layout either way; ``'out_in'`` equals :meth:`step`'s results within
        float32 rounding instead of bit for bit. ``'out_in'`` needs an optimizer whose
        state holds only copies of the parameters and scalars (``ValueError`` otherwise)
        and whose update does not depend on the layout (elementwise: yours to know for an
        optimizer not from ``jaxnets.optim``). The resolved value is
        ``self.epoch_kernel_layout``.
    """

    def __init__(
        self,
        model: nnx.Module,
        optimizer: optax.GradientTransformation,
        loss: str | LossFn = "cross_entropy",
        *,
        donate: bool = True,
        compiler_options: Mapping[str, Any] | Literal["auto"] | None = "auto",
        gather_ahead: bool | Literal["auto"] = "auto",
        epoch_kernel_layout: KernelLayout | Literal["auto"] = "auto",
    ) -> None:
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if gather_ahead == "auto":
            self.gather_ahead = default_gather_ahead(model)
        elif isinstance(gather_ahead, bool):
            self.gather_ahead = gather_ahead
        else:
            raise TypeError(f"gather_ahead must be True, False or 'auto', got {gather_ahead!r}")
        if compiler_options == "auto":
            self.compiler_options = default_compiler_options(model)
        elif compiler_options is None or isinstance(compiler_options, Mapping):
            self.compiler_options = None if compiler_options is None else dict(compiler_options)
            if self.compiler_options:
                check_compiler_options(self.compiler_options)
        else:
            raise TypeError(
                f"compiler_options must be 'auto', None or a dict of XLA options, "
                f"got {compiler_options!r}"
            )
        self.loss_fn = resolve_loss(loss)
        self.graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        self._params_def = jax.tree.structure(params)
        flat = _flat_shapes(params)  # in jax.tree.leaves order, as state.params holds them
        self._param_names, self._param_shapes = list(flat), list(flat.values())
        self._kernel_flags = linear_kernel_flags(model, params)
        self.epoch_kernel_layout = self._resolve_kernel_layout(
            epoch_kernel_layout, model, optimizer, jax.tree.leaves(params)
        )
        self._rest_def = jax.tree.structure(rest)
        self._model = model
        eval_model = nnx.clone(model)
        eval_model.eval()
        self.eval_graphdef = nnx.graphdef(eval_model)
        donate_argnums = (0,) if donate else ()
        jit = functools.partial(jax.jit, compiler_options=self.compiler_options)
        self.step = jit(self._step, donate_argnums=donate_argnums)
        self.jit_epoch = jit(self._epoch, donate_argnums=donate_argnums)
        self._predict_jit = jit(self._predict_arrays)
        self.loss_and_grad = jit(self._loss_and_grad)
        self.apply_gradients = jit(self._apply_gradients, donate_argnums=donate_argnums)

    # ---- state <-> model -----------------------------------------------------------------

    def init(self, model: nnx.Module | None = None) -> TrainState:
        """A fresh :class:`TrainState` from ``model`` (default: the model given at init)."""
        _, params, rest = nnx.split(model if model is not None else self._model, nnx.Param, ...)
        p = [jnp.array(a) for a in jax.tree.leaves(params)]  # copies: donation must not
        r = [jnp.array(a) for a in jax.tree.leaves(rest)]  # invalidate the model's arrays
        # An optax init may hand out one buffer for several fields (one zeros tree for two
        # moments); donating the state would then donate it twice. Copy each leaf.
        opt_state = jax.tree.map(jnp.array, self.optimizer.init(p))
        return TrainState(p, opt_state, r, jnp.zeros((), jnp.int32))

    def merge(self, state: TrainState, *, eval_mode: bool = False) -> nnx.Module:
        """A model holding ``state``'s arrays (the graph given at init, train or eval mode)."""
        params = jax.tree.unflatten(self._params_def, state.params)
        rest = jax.tree.unflatten(self._rest_def, state.rest)
        return nnx.merge(self.eval_graphdef if eval_mode else self.graphdef, params, rest)

    def write_back(self, state: TrainState, model: nnx.Module | None = None) -> nnx.Module:
        """Copy ``state``'s parameters and statistics into ``model`` in place and return it
        (default: the model given at init). The model gets copies, so later steps, which
        donate the state, leave it intact. ``ValueError`` for a model of other sizes."""
        self._check_state(state)
        target = model if model is not None else self._model
        trained = self.merge(state)
        _check_same_arrays(nnx.state(target), nnx.state(trained))
        # copies: the model must not hold the state's buffers, which the next step donates
        nnx.update(target, jax.tree.map(jnp.copy, nnx.state(trained)))
        return target

    def params_state(self, state: TrainState) -> nnx.State:
        """``state.params`` as an ``nnx.State`` (e.g. for ``jaxnets.convert.state_to_torch``)."""
        return jax.tree.unflatten(self._params_def, state.params)

    def optimizer_state_dict(self, state: TrainState) -> dict[str, dict[str, np.ndarray]]:
        """The optimizer's per-parameter state as torch's ``optimizer.state``, by torch name:
        ``{'fc1.weight': {'step': (), 'exp_avg': [out, in], 'exp_avg_sq': [out, in]}, ...}``
        (see :func:`jaxnets.training.steps.optimizer_state_to_torch`)."""
        self._check_state(state)
        return steps.optimizer_state_to_torch(self._model, state.opt_state, state.params)

    def _check_state(self, state: TrainState) -> None:
        """``ValueError`` unless ``state.params`` has this trainer's parameter shapes and
        dtypes (a state from another trainer or model would be read as this model's)."""
        got = [(tuple(np.shape(a)), jnp.dtype(a.dtype)) for a in state.params]
        if got == self._param_shapes:
            return
        if len(got) != len(self._param_shapes):
            raise ValueError(
                f"the state holds {len(got)} parameter arrays, this trainer's model has "
                f"{len(self._param_shapes)}: pass a state made by this trainer's init() or step()"
            )
        diffs = [
            f"{name}: {g[0]} {g[1]} in the state, {w[0]} {w[1]} in the model"
            for name, g, w in zip(self._param_names, got, self._param_shapes, strict=True)
            if g != w
        ]
        raise ValueError(
            f"the state does not fit this trainer's model ({_listed(diffs)}): pass a state "
            f"made by this trainer's init() or step()"
        )

    def _resolve_kernel_layout(
        self,
        layout: KernelLayout | Literal["auto"],
        model: nnx.Module,
        optimizer: optax.GradientTransformation,
        params: list[Any],
    ) -> KernelLayout:
        """``epoch_kernel_layout`` checked and resolved (see the class docstring)."""
        if layout == "auto":  # 'out_in' only for layout-free optimizers: nothing to check
            return default_epoch_kernel_layout(model, optimizer)
        if layout not in ("in_out", "out_in"):
            raise ValueError(
                f"epoch_kernel_layout must be 'auto', 'in_out' or 'out_in', got {layout!r}"
            )
        if layout == "out_in" and not state_is_param_copies(optimizer, params):
            raise ValueError(
                "epoch_kernel_layout='out_in' transposes the optimizer's copies of the "
                "kernels with them, but this optimizer's state holds arrays that are not "
                "copies of the parameters (factored moments, for example), whose shapes "
                "follow the kernels' axes; use epoch_kernel_layout='in_out' (or 'auto')"
            )
        return layout

    def _transpose_kernels(self, params: list[jax.Array]) -> list[jax.Array]:
        """``params`` with every ``nnx.Linear`` kernel transposed (its own inverse)."""
        return [p.T if k else p for p, k in zip(params, self._kernel_flags, strict=True)]

    def _to_epoch_layout(self, state: TrainState) -> TrainState:
        """``state`` with the kernels, and the optimizer's copies of them, switched between the
        model's layout and ``epoch_kernel_layout`` (either way: a transposition is its own
        inverse). Unchanged for ``'in_out'``."""
        if self.epoch_kernel_layout == "in_out":
            return state
        opt_state = optax.tree_utils.tree_map_params(
            self.optimizer,
            lambda a, k: a.T if k else a,
            state.opt_state,
            self._kernel_flags,
            transform_non_params=lambda a: a,
        )
        return state._replace(params=self._transpose_kernels(state.params), opt_state=opt_state)

    def _epoch_step(
        self, state: TrainState, x: jax.Array, y: jax.Array
    ) -> tuple[TrainState, jax.Array]:
        """:meth:`_step` on a state in ``epoch_kernel_layout`` (see :meth:`_to_epoch_layout`)."""
        return self._step(state, x, y, kernels_out_in=self.epoch_kernel_layout == "out_in")

    def _scan_epoch(
        self,
        body: Callable[[Any, Any], tuple[Any, jax.Array]],
        state: TrainState,
        xs: Any,
        extra: Any = None,
    ) -> tuple[TrainState, jax.Array]:
        """``jax.lax.scan(body, state, xs)`` with ``state`` carried in ``epoch_kernel_layout``
        (``body`` takes and returns it so, e.g. through :meth:`_epoch_step`) and returned in
        the model's layout. With ``extra`` the loop carries ``(state, extra)`` instead, and
        ``body`` takes and returns that pair."""
        start = self._to_epoch_layout(state)
        carry, losses = jax.lax.scan(body, start if extra is None else (start, extra), xs)
        return self._to_epoch_layout(carry if extra is None else carry[0]), losses

    def _gather(
        self, inputs: jax.Array, targets: jax.Array, idx: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """One step's batch ``(inputs[idx], targets[idx])`` from the data set, ``idx``
        ``(batch_size,)``; the data-parallel trainer lays it out over its devices."""
        return inputs[idx], targets[idx]

    # ---- the pure functions under jit ----------------------------------------------------

    def _loss(
        self,
        params: list[jax.Array],
        rest: list[jax.Array],
        x: jax.Array,
        y: jax.Array,
        kernels_out_in: bool = False,
    ) -> tuple[jax.Array, list[jax.Array]]:
        if kernels_out_in:  # the model's layout back; XLA folds the transposes into the dots
            params = self._transpose_kernels(params)
        model = nnx.merge(
            self.graphdef,
            jax.tree.unflatten(self._params_def, params),
            jax.tree.unflatten(self._rest_def, rest),
        )
        loss = self.loss_fn(model(x), y)
        new_rest = jax.tree.leaves(nnx.state(model, nnx.Not(nnx.Param)))
        return loss, new_rest

    def _loss_and_grad(
        self, state: TrainState, x: jax.Array, y: jax.Array
    ) -> tuple[jax.Array, list[jax.Array]]:
        """Loss and gradients w.r.t. ``state.params`` for one batch (no update)."""
        (loss, _), grads = jax.value_and_grad(self._loss, has_aux=True)(
            state.params, state.rest, x, y
        )
        return loss, grads

    def _step(
        self, state: TrainState, x: jax.Array, y: jax.Array, kernels_out_in: bool = False
    ) -> tuple[TrainState, jax.Array]:
        """One optimizer step on batch ``(x, y)``; returns the new state and the batch loss.
        With ``kernels_out_in`` the state's ``nnx.Linear`` kernels (and the optimizer's copies)
        are transposed, and so are their gradients and updates."""
        (loss, rest), grads = jax.value_and_grad(self._loss, has_aux=True)(
            state.params, state.rest, x, y, kernels_out_in
        )
        return self._apply_gradients(state._replace(rest=rest), grads), loss

    def _apply_gradients(self, state: TrainState, grads: list[jax.Array]) -> TrainState:
        """torch's ``optimizer.step()`` with the given gradients (a list like ``state.params``,
        e.g. summed over micro-batches with :func:`~jaxnets.training.steps.accumulate`): the
        update of :meth:`step` without its forward and backward pass, so ``state.rest`` is
        unchanged."""
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, opt_state, state.rest, state.step + 1)

    def _epoch(
        self, state: TrainState, inputs: jax.Array, targets: jax.Array, batch_idx: jax.Array
    ) -> tuple[TrainState, jax.Array]:
        """``len(batch_idx)`` steps in one ``lax.scan``: step i trains on
        ``inputs[batch_idx[i]]``.

        ``inputs``: ``(N, ...)``, ``targets``: ``(N, ...)`` (on device once; batches are
        gathered inside the loop), ``batch_idx``: ``(steps, batch_size)`` int indices.
        Returns the final state and the ``(steps,)`` losses. With ``self.gather_ahead`` the
        loop gathers the next step's batch while it runs this one's, and carries it. The loop
        carries the kernels in ``self.epoch_kernel_layout``.
        """
        steps = batch_idx.shape[0]
        if self.gather_ahead and steps > 0:

            def ahead(
                carry: tuple[TrainState, tuple[jax.Array, jax.Array]], i: jax.Array
            ) -> tuple[tuple[TrainState, tuple[jax.Array, jax.Array]], jax.Array]:
                s, (x, y) = carry
                s, loss = self._epoch_step(s, x, y)
                nxt = batch_idx[jnp.minimum(i + 1, steps - 1)]  # the last step fetches again
                return (s, self._gather(inputs, targets, nxt)), loss

            first = self._gather(inputs, targets, batch_idx[0])
            return self._scan_epoch(ahead, state, jnp.arange(steps), extra=first)

        def body(s: TrainState, idx: jax.Array) -> tuple[TrainState, jax.Array]:
            return self._epoch_step(s, *self._gather(inputs, targets, idx))

        return self._scan_epoch(body, state, batch_idx)

    def run_epoch(
        self, state: TrainState, inputs: jax.Array, targets: jax.Array, batch_idx: jax.Array
    ) -> tuple[TrainState, jax.Array]:
        """``len(batch_idx)`` training steps in one compiled ``lax.scan``: step ``i`` trains on
        ``(inputs[batch_idx[i]], targets[batch_idx[i]])``, as :meth:`step` would.

        ``inputs`` ``(N, ...)`` and ``targets`` ``(N, ...)`` are the whole data set (put it on
        the device once: the batches are gathered inside the loop); ``batch_idx``
        ``(steps, batch_size)`` holds integer indices in ``0..N-1``
        (:func:`jaxnets.data.epoch_batches` makes them). Returns the final state and the
        ``(steps,)`` losses. The arguments are checked first (shapes, and the indices' range,
        since a gather inside ``jit`` would clamp an index out of range without a word);
        ``ValueError`` if they do not fit, before the state is donated. ``self.jit_epoch`` is
        the jitted function behind it (for ``.lower(...)``), unchecked.
        """
        check_epoch_args(inputs, targets, batch_idx)
        return self.jit_epoch(state, inputs, targets, batch_idx)

    def predict(self, state: TrainState, x: jax.Array) -> jax.Array:
        """Eval-mode model outputs for ``x`` (jitted), e.g. ``(N, 10)`` logits.

        Only ``state.params`` and ``state.rest`` go into the compiled call: each array
        argument costs a few microseconds of dispatch, which is most of a small model's
        batch-1 latency (the optimizer state would double the argument count)."""
        return self._predict_jit(state.params, state.rest, x)

    def frozen_predictor(self, state: TrainState) -> Callable[[jax.Array], jax.Array]:
        """A jitted ``x -> outputs`` (eval mode) with ``state``'s weights compiled in.

        The parameters and statistics become constants of the executable, as
        ``torch.jit.freeze`` folds a module's weights into its graph: each call passes only
        ``x`` (``(N, ...)`` in the twin's layout, e.g. ``(1, 784)`` -> ``(1, 10)``), and XLA
        can precompute what depends on the weights alone. For serving fixed weights at small
        batches, where dispatch is most of the time: every array argument of a jitted call
        costs time, so :meth:`predict`, which passes the weights, is slower there
        (``jaxnets bench`` times both: the ``jax_jit`` and ``jax_frozen`` rows). The outputs
        equal :meth:`predict`'s within float32 rounding (XLA may fold the weights into a
        different order of operations). Build a new predictor when the weights change: each
        one is compiled on its first call for each input shape, and holds a host copy of the
        weights.
        """
        params = [np.asarray(a) for a in state.params]  # numpy: embedded as constants
        rest = [np.asarray(a) for a in state.rest]

        def predict(x: jax.Array) -> jax.Array:
            return self._predict_arrays(params, rest, x)

        return jax.jit(predict, compiler_options=self.compiler_options)

    def _predict_arrays(
        self, params: list[jax.Array], rest: list[jax.Array], x: jax.Array
    ) -> jax.Array:
        """Model outputs for ``x`` in eval mode (running statistics), without any update."""
        params_tree = jax.tree.unflatten(self._params_def, params)
        rest_tree = jax.tree.unflatten(self._rest_def, rest)
        return nnx.merge(self.eval_graphdef, params_tree, rest_tree)(x)

    def _predict(self, state: TrainState, x: jax.Array) -> jax.Array:
        """:meth:`predict`'s function of the whole state (the data-parallel trainer jits it)."""
        return self._predict_arrays(state.params, state.rest, x)
