"""Data-parallel training over every local device, and over many hosts, with JAX's own sharding.

Nothing here is a home-made scheme: a :class:`jax.sharding.Mesh` names the devices, a
:class:`~jax.sharding.NamedSharding` says how each array is laid out on it, ``jax.jit`` takes
those as ``in_shardings``/``out_shardings``, and the compiler (GSPMD/Shardy) partitions the
single-device program and inserts the collectives. Multi-host runs start with
``jax.distributed.initialize()`` (:func:`initialize_distributed`)::

    mesh = make_mesh()                                     # every device on one 'data' axis
    trainer = DataParallelTrainer(model, optim.sgd(0.01), "cross_entropy", mesh=mesh)
    state = trainer.init()                                 # replicated on every device
    state, loss = trainer.step(state, x, y)                # x: the GLOBAL batch (B, ...)
    X, Y = trainer.replicate(X), trainer.replicate(Y)      # the data set, once per device
    state, losses = trainer.run_epoch(state, X, Y, idx)    # idx: (steps, B), one scan
    trainer.write_back(state, model)

A command line gets ``--devices N|all``, ``--mesh AXIS=SIZE,...`` and ``--distributed`` from
:func:`add_device_args`; :func:`setup_from_args` acts on them and :func:`trainer_for` then
builds the trainer they ask for (the single-device ``Trainer`` when none is given).

What is sharded and what is replicated:

* The batch is split along its first dimension over every mesh axis (``P('data')``; a
  ``hosts=2,data=4`` mesh splits it over both, ``P(('hosts', 'data'))``). Each device runs the
  forward and backward pass of its ``B / D`` examples.
* Parameters, optimizer state, BatchNorm statistics and the step counter are replicated
  (``P()``). ``out_shardings`` says they stay replicated, so the compiler all-reduces the
  gradient (it is a sum over the batch, and the batch is split) before the optimizer update;
  every device then applies the same update to its copy. No ``psum`` is written by hand.
* BatchNorm in training mode takes ``mean``/``var`` over the batch axis of the GLOBAL batch
  (the program is written for the global shape; the compiler turns the mean into a local sum
  and an all-reduce): that is what ``torch.nn.SyncBatchNorm`` computes across ranks, including
  the unbiased running variance with the global count ``n / (n - 1)``.
* ``run_epoch`` keeps the data set replicated (one full copy per device, as the single-device
  trainer keeps it on its one device) and shards ``batch_idx`` ``(steps, B)`` along ``B``:
  inside the scan each device gathers its own ``B / D`` rows from its local copy, so the data
  costs no communication at all. Memory: ``D`` copies of the data set (MNIST in float32:
  188 MB per device). When the data set does not fit on every device, or each host reads
  only its own part of it, use :meth:`DataParallelTrainer.run_batches` over pre-gathered
  batches ``(steps, B, ...)`` sharded along ``B``: ``1/D`` of an epoch's data per device, at
  the price of a host-side gather and a transfer per epoch.

A data-parallel step computes the same function as the single-device step on the global batch:
only the order of the additions in the reductions differs, so results agree to rounding
(``parity_tests/test_distributed.py``).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxnets.training.trainer import KernelLayout, LossFn, Trainer, TrainState, check_epoch_args

__all__ = [
    "DATA_AXIS",
    "DataParallelTrainer",
    "DistributedConfig",
    "add_device_args",
    "batch_sharding",
    "check_global_batch",
    "data_parallel_size",
    "distributed_config_from_env",
    "initialize_distributed",
    "make_mesh",
    "parse_mesh",
    "process_batch_slice",
    "replicate",
    "replicated_sharding",
    "setup_from_args",
    "shard_batch",
    "trainer_for",
    "trainer_from_args",
]

DATA_AXIS = "data"
"""Name of the mesh axis the batch is split over when no mesh shape is given."""

# ---- meshes ---------------------------------------------------------------------------------

_AXIS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_mesh(spec: str) -> dict[str, int]:
    """Parse a mesh shape ``'data=8'`` or ``'hosts=2,data=4'`` into ``{'hosts': 2, 'data': 4}``.

    One size may be ``-1``: "the devices left over". Axes keep their order (outermost first).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(
            f"mesh shape must be 'AXIS=SIZE[,AXIS=SIZE...]', e.g. 'data=8' or 'hosts=2,data=4'; "
            f"got {spec!r}"
        )
    shape: dict[str, int] = {}
    for part in spec.split(","):
        name, sep, size = part.strip().partition("=")
        name = name.strip()
        if not sep or not _AXIS_NAME.match(name):
            raise ValueError(
                f"mesh shape {spec!r}: {part.strip()!r} is not AXIS=SIZE (an axis name, '=', "
                f"an integer), e.g. 'data=8' or 'hosts=2,data=4'"
            )
        try:
            n = int(size)
        except ValueError:
            raise ValueError(
                f"mesh shape {spec!r}: size {size.strip()!r} of axis {name!r} is not an integer"
            ) from None
        if name in shape:
            raise ValueError(f"mesh shape {spec!r}: axis {name!r} appears twice")
        shape[name] = n
    return shape


def _devices_for(count: int) -> list[jax.Device]:
    """``count`` devices: all of them, or the same number from every process."""
    available = jax.devices()
    if count > len(available):
        raise ValueError(
            f"asked for {count} devices but JAX sees {len(available)} "
            f"({jax.default_backend()}: {available[0].device_kind}); use at most "
            f"{len(available)}. On CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N "
            f"(set before JAX starts) simulates N devices."
        )
    nproc = jax.process_count()
    if count == len(available) or nproc == 1:
        return available[:count]
    if count % nproc:
        raise ValueError(
            f"asked for {count} devices over {nproc} processes: every process must take part "
            f"with the same number of devices, so the count must be a multiple of {nproc}"
        )
    per = count // nproc
    devs: list[jax.Device] = []
    for p in range(nproc):
        local = [d for d in available if d.process_index == p]
        if len(local) < per:
            raise ValueError(f"process {p} has {len(local)} devices, fewer than {per} needed")
        devs.extend(local[:per])
    return devs


def make_mesh(
    devices: int | None = None, *, mesh_shape: Mapping[str, int] | str | None = None
) -> Mesh:
    """A device mesh whose every axis is a data-parallel axis.

    Args:
      devices: how many devices to use (default: all of them, every process's). With many
        processes, the same number is taken from each.
      mesh_shape: axis names and sizes, outermost first, e.g. ``{'hosts': 2, 'data': 4}`` or
        ``'hosts=2,data=4'``; one size may be ``-1`` (the rest). Default: one axis
        ``'data'`` over all the devices. The batch is split over every axis; a two-level
        mesh maps the outer axis across hosts so that XLA can reduce within a host first.

    Returns:
      a ``jax.sharding.Mesh`` built by ``jax.make_mesh`` (which orders devices by the
      physical topology on TPU) with ``AxisType.Auto`` axes: shardings are given by
      ``in_shardings``/``out_shardings`` and the compiler propagates them.
    """
    if devices is not None and (
        isinstance(devices, bool) or not isinstance(devices, int) or devices < 1
    ):
        raise ValueError(f"devices must be a positive integer or None (all), got {devices!r}")
    shape = parse_mesh(mesh_shape) if isinstance(mesh_shape, str) else dict(mesh_shape or {})
    if not shape:
        shape = {DATA_AXIS: -1}
    if sum(v == -1 for v in shape.values()) > 1:
        raise ValueError(f"mesh shape {shape}: at most one axis may have size -1")
    bad = {k: v for k, v in shape.items() if v != -1 and (not isinstance(v, int) or v < 1)}
    if bad:
        raise ValueError(f"mesh shape {shape}: sizes must be positive integers (or one -1)")
    known = math.prod(v for v in shape.values() if v != -1)
    total = devices if devices is not None else jax.device_count()
    if -1 in shape.values():
        if total % known:
            raise ValueError(
                f"mesh shape {shape}: {total} devices do not divide by the fixed axes' "
                f"product {known}"
            )
        shape = {k: (total // known if v == -1 else v) for k, v in shape.items()}
    size = math.prod(shape.values())
    if devices is not None and size != devices:
        raise ValueError(
            f"mesh shape {shape} holds {size} devices but devices={devices}; make them agree "
            f"(or give only one of them)"
        )
    devs = _devices_for(size)
    names = tuple(shape)
    return jax.make_mesh(
        tuple(shape.values()), names, axis_types=(AxisType.Auto,) * len(names), devices=devs
    )


def data_parallel_size(mesh: Mesh) -> int:
    """Number of batch shards: the product of the mesh's axis sizes."""
    return math.prod(mesh.shape.values())


def batch_sharding(mesh: Mesh, *, batch_dim: int = 0) -> NamedSharding:
    """Sharding of a batch ``(B, ...)``: dimension ``batch_dim`` split over every mesh axis."""
    axes = tuple(mesh.axis_names)
    spec = axes[0] if len(axes) == 1 else axes
    return NamedSharding(mesh, P(*([None] * batch_dim), spec))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding of a replicated array: a full copy on every device of ``mesh`` (``P()``)."""
    return NamedSharding(mesh, P())


def check_global_batch(batch_size: int, mesh: Mesh, *, what: str = "global batch size") -> None:
    """Raise ``ValueError`` unless ``batch_size`` divides evenly over ``mesh``'s devices."""
    d = data_parallel_size(mesh)
    if batch_size % d:
        lo, hi = (batch_size // d) * d, (batch_size // d + 1) * d
        sizes = f"{lo} or {hi}" if lo else f"{hi}"
        raise ValueError(
            f"{what} {batch_size} does not divide by the {d} devices it is split over "
            f"(mesh {dict(mesh.shape)}): every device must get the same number of examples. "
            f"Use a batch size that is a multiple of {d} (e.g. {sizes}), run on a number of "
            f"devices that divides {batch_size}, or drop the short last batch (drop_last)."
        )


def _leading_dim(x: Any, what: str) -> int:
    shape = np.shape(x)
    if not shape:
        raise ValueError(f"{what} must have a batch dimension, got a scalar")
    return shape[0]


def _place(x: Any, sharding: NamedSharding) -> jax.Array:
    """``x`` as a global array with ``sharding``; ``x`` holds the GLOBAL value (the same in
    every process). Arrays already laid out so are returned as they are (no copy), and so
    are tracers (``jax.eval_shape(trainer.init)``, as ``checkpoint.load_run`` calls it)."""
    if isinstance(x, jax.core.Tracer):
        return x
    if isinstance(x, jax.Array):
        if x.sharding.is_equivalent_to(sharding, x.ndim):
            return x
        if x.is_fully_addressable and jax.process_count() == 1:
            return jax.device_put(x, sharding)
        if not x.is_fully_addressable:
            raise ValueError(
                f"array of shape {x.shape} spans several processes with sharding "
                f"{x.sharding}; expected {sharding.spec} on this mesh"
            )
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    host = np.asarray(x)  # every process holds the whole value: each fills its own shards
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Every array leaf of ``tree`` copied to every device of ``mesh`` (sharding ``P()``).

    With many processes every process must pass the same values."""
    sharding = replicated_sharding(mesh)
    return jax.tree.map(lambda a: _place(a, sharding), tree)


def process_batch_slice(mesh: Mesh, global_batch_size: int) -> slice:
    """The rows of a global batch of ``global_batch_size`` that THIS process's devices hold
    (``rows = slice(lo, hi)``): what each host of a pod loads for ``shard_batch(...,
    process_local=True)``. With one process it is the whole batch."""
    check_global_batch(global_batch_size, mesh)
    index_map = batch_sharding(mesh).addressable_devices_indices_map((global_batch_size,))
    rows = sorted(
        {(idx[0].start or 0, idx[0].stop or global_batch_size) for idx in index_map.values()}
    )
    lo, hi = rows[0][0], rows[-1][1]
    if sum(b - a for a, b in rows) != hi - lo:
        raise ValueError(
            f"this process's devices hold rows {rows} of the batch, not one contiguous range; "
            f"order the mesh so that each process's devices are adjacent on the batch axes"
        )
    return slice(lo, hi)


def shard_batch(batch: Any, mesh: Mesh, *, process_local: bool = False) -> Any:
    """Split every array leaf of ``batch`` along its first dimension over ``mesh``.

    Args:
      batch: an array ``(B, ...)`` or a tree of them (e.g. ``(x, y)``), numpy or jax.
      mesh: from :func:`make_mesh`.
      process_local: ``False``: ``batch`` is the global batch (with many processes, every
        process passes the same global batch). ``True``: ``batch`` is THIS process's part of
        the global batch, ``(B / process_count, ...)``, as each host of a pod loads its own
        examples: the rows :func:`process_batch_slice` names
        (``jax.make_array_from_process_local_data``).

    Returns:
      the same tree of global ``jax.Array``\\ s, each sharded ``P('data')`` (first dimension).
      Raises ``ValueError`` when a batch size does not divide by the number of devices.
    """
    sharding = batch_sharding(mesh)

    def one(a: Any) -> jax.Array:
        n = _leading_dim(a, "a batch array")
        if not process_local:
            check_global_batch(n, mesh)
            return _place(a, sharding)
        local_devices = len(
            {d for d in mesh.devices.flat if d.process_index == jax.process_index()}
        )
        if local_devices == 0:
            raise ValueError(f"process {jax.process_index()} owns no device of this mesh")
        if n % local_devices:
            raise ValueError(
                f"process-local batch size {n} does not divide by this process's "
                f"{local_devices} devices of the mesh; use a multiple of {local_devices}"
            )
        return jax.make_array_from_process_local_data(sharding, np.asarray(a))

    return jax.tree.map(one, batch)


# ---- the trainer ----------------------------------------------------------------------------


def _fingerprint(tree: Any) -> int:
    crc = 0
    for leaf in jax.tree.leaves(tree):
        crc = zlib.crc32(np.ascontiguousarray(np.asarray(leaf)).tobytes(), crc)
    return crc


class DataParallelTrainer(Trainer):
    """:class:`~jaxnets.Trainer` whose step and scan-fused epoch run over a device mesh.

    The pure functions are the single-device trainer's (``_step``, and ``_step`` inside the
    scan); only the layout of their arguments and results changes, through ``jax.jit``'s
    ``in_shardings``/``out_shardings``. See the module docstring for what is sharded.

    Args:
      model, optimizer, loss, donate, compiler_options, epoch_kernel_layout, gather_ahead: as
        for :class:`~jaxnets.Trainer` (both epochs carry the kernels in that layout;
        ``run_batches`` gathers nothing).
      mesh: from :func:`make_mesh` (default: every device on one ``'data'`` axis).

    Attributes:
      mesh, replicated (``P()``), batch (``P('data')``), batch_idx (``P(None, 'data')``): the
      mesh and the three shardings used. ``jit_step``, ``jit_epoch``, ``jit_batches``: the
      jitted functions behind :meth:`step`, :meth:`run_epoch`, :meth:`run_batches` (for
      ``.lower(...)``); they expect arguments already laid out as above.
    """

    def __init__(
        self,
        model: nnx.Module,
        optimizer: optax.GradientTransformation,
        loss: str | LossFn = "cross_entropy",
        *,
        mesh: Mesh | None = None,
        donate: bool = True,
        compiler_options: Mapping[str, Any] | Literal["auto"] | None = "auto",
        epoch_kernel_layout: KernelLayout | Literal["auto"] = "auto",
        gather_ahead: bool | Literal["auto"] = "auto",
    ) -> None:
        super().__init__(
            model,
            optimizer,
            loss,
            donate=donate,
            compiler_options=compiler_options,
            epoch_kernel_layout=epoch_kernel_layout,
            gather_ahead=gather_ahead,
        )
        self.mesh = mesh if mesh is not None else make_mesh()
        self.num_shards = data_parallel_size(self.mesh)
        self.replicated = replicated_sharding(self.mesh)
        self.batch = batch_sharding(self.mesh)
        self.batch_idx = batch_sharding(self.mesh, batch_dim=1)
        rep, bat, idx = self.replicated, self.batch, self.batch_idx
        donate_argnums = (0,) if donate else ()
        # A sharding given for an argument is a prefix of its pytree: ``rep`` lays out the
        # whole TrainState (params, optimizer state, statistics, counter) replicated.
        jit = functools.partial(jax.jit, compiler_options=self.compiler_options)
        self.jit_step = jit(
            self._step,
            in_shardings=(rep, bat, bat),
            out_shardings=(rep, rep),
            donate_argnums=donate_argnums,
        )
        self.jit_epoch = jit(
            self._epoch,
            in_shardings=(rep, rep, rep, idx),
            out_shardings=(rep, rep),
            donate_argnums=donate_argnums,
        )
        batches = NamedSharding(self.mesh, idx.spec)  # (steps, B, ...): B split
        self.jit_batches = jit(
            self._batches_epoch,
            in_shardings=(rep, batches, batches),
            out_shardings=(rep, rep),
            donate_argnums=donate_argnums,
        )
        self.jit_predict = jit(self._predict, in_shardings=(rep, bat), out_shardings=bat)
        self.jit_loss_and_grad = jit(
            self._loss_and_grad, in_shardings=(rep, bat, bat), out_shardings=(rep, rep)
        )
        if hasattr(self, "_apply_gradients"):  # optimizer.step() on given (replicated) grads
            self.apply_gradients = jit(
                self._apply_gradients,
                in_shardings=(rep, rep),
                out_shardings=rep,
                donate_argnums=donate_argnums,
            )
        self._data_cache: dict[str, tuple[jax.Array, jax.Array]] = {}
        # the public names of Trainer, now checking and placing their arguments first
        self.step = self._checked_step
        self.run_epoch = self._checked_epoch
        self.predict = self._padded_predict
        self.loss_and_grad = self._checked_loss_and_grad

    # ---- placement -------------------------------------------------------------------------

    def init(self, model: nnx.Module | None = None) -> TrainState:
        """A fresh :class:`~jaxnets.TrainState`, replicated on every device of the mesh.

        With many processes, every process must build the model from the same seed; this
        checks that their parameters agree (a CRC of the bytes, gathered once)."""
        state = super().init(model)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            mine = np.array([_fingerprint(state.params)], np.uint32)
            crcs = np.asarray(multihost_utils.process_allgather(mine)).ravel()
            if len(set(crcs.tolist())) != 1:
                raise ValueError(
                    f"the processes built different initial parameters (CRCs {crcs.tolist()}): "
                    f"create the model from the same seed in every process, e.g. "
                    f"nnx.Rngs(0), so that the replicas start equal"
                )
        return self.replicate(state)

    def replicate(self, tree: Any) -> Any:
        """``tree``'s arrays with a full copy on every device (e.g. the data set for
        :meth:`run_epoch`, placed once instead of on every call)."""
        return replicate(tree, self.mesh)

    def shard(self, batch: Any, *, process_local: bool = False) -> Any:
        """:func:`shard_batch` on this trainer's mesh."""
        return shard_batch(batch, self.mesh, process_local=process_local)

    def write_back(self, state: TrainState, model: nnx.Module | None = None) -> nnx.Module:
        """Copy ``state`` into ``model`` in place, as ordinary single-device arrays."""
        local = jax.tree.map(lambda a: jnp.asarray(np.asarray(a)), state)
        return super().write_back(local, model)

    # ---- checked entry points --------------------------------------------------------------

    def _checked_step(self, state: TrainState, x: Any, y: Any) -> tuple[TrainState, jax.Array]:
        """One data-parallel step on the GLOBAL batch ``x`` ``(B, ...)``, ``y`` ``(B, ...)``;
        ``B`` must divide by the number of devices. Returns the new state and the loss."""
        x, y = self._batch_pair(x, y)
        return self.jit_step(self._state(state), x, y)

    def _checked_loss_and_grad(
        self, state: TrainState, x: Any, y: Any
    ) -> tuple[jax.Array, list[jax.Array]]:
        """Loss and gradients (replicated) for the global batch ``(x, y)``; no update."""
        x, y = self._batch_pair(x, y)
        return self.jit_loss_and_grad(self._state(state), x, y)

    def _checked_epoch(
        self, state: TrainState, inputs: Any, targets: Any, batch_idx: Any
    ) -> tuple[TrainState, jax.Array]:
        """``len(batch_idx)`` data-parallel steps in one scan; step ``i`` trains on the global
        batch ``inputs[batch_idx[i]]``.

        ``inputs`` ``(N, ...)`` and ``targets`` ``(N, ...)`` are replicated (place them once
        with :meth:`replicate`), ``batch_idx`` ``(steps, B)`` is split along ``B``. Returns
        the final state and the ``(steps,)`` losses, replicated."""
        check_epoch_args(inputs, targets, batch_idx)
        check_global_batch(np.shape(batch_idx)[1], self.mesh)
        return self.jit_epoch(
            self._state(state),
            self._replicated_data("inputs", inputs),
            self._replicated_data("targets", targets),
            _place(batch_idx, self.batch_idx),
        )

    def _replicated_data(self, key: str, a: Any) -> jax.Array:
        """``a`` replicated; a single-device ``jax.Array`` passed again (a loop calling
        ``run_epoch`` per chunk with the same data set) reuses its replicated copy instead of
        copying the data set to every device on every call. (numpy arrays can change in
        place, so they are copied each call: place them once with :meth:`replicate`.)"""
        hit = self._data_cache.get(key)
        if hit is not None and hit[0] is a:
            return hit[1]
        placed = _place(a, self.replicated)
        if isinstance(a, jax.Array) and placed is not a:
            self._data_cache[key] = (a, placed)
        return placed

    def run_batches(self, state: TrainState, xs: Any, ys: Any) -> tuple[TrainState, jax.Array]:
        """``len(xs)`` data-parallel steps in one scan over pre-gathered batches: step ``i``
        trains on ``(xs[i], ys[i])``.

        ``xs`` ``(steps, B, ...)`` and ``ys`` ``(steps, B, ...)`` are split along ``B``: each
        device holds ``1/D`` of the epoch (e.g. ``X[idx]`` for ``idx`` from
        ``jaxnets.data.epoch_batches``). With many processes pass global arrays (the same on
        every process), or build them with ``jax.make_array_from_process_local_data``."""
        for a, what in ((xs, "xs"), (ys, "ys")):
            if np.ndim(a) < 2:
                raise ValueError(
                    f"{what} must have shape (steps, batch_size, ...), got {np.shape(a)}"
                )
        if np.shape(xs)[:2] != np.shape(ys)[:2]:
            raise ValueError(
                f"xs and ys must agree in (steps, batch_size): {np.shape(xs)} vs {np.shape(ys)}"
            )
        check_global_batch(np.shape(xs)[1], self.mesh)
        sharding = NamedSharding(self.mesh, self.batch_idx.spec)
        return self.jit_batches(self._state(state), _place(xs, sharding), _place(ys, sharding))

    def _padded_predict(self, state: TrainState, x: Any) -> jax.Array:
        """Eval-mode outputs for ``x`` ``(B, ...)``, split over the devices. A ``B`` that does
        not divide is padded with zeros and the padding cut off again (eval mode uses running
        statistics, so every example is computed on its own)."""
        n = _leading_dim(x, "x")
        pad = -n % self.num_shards
        if pad:
            x = jnp.concatenate([jnp.asarray(x), jnp.zeros((pad, *np.shape(x)[1:]), x.dtype)])
        out = self.jit_predict(self._state(state), _place(x, self.batch))
        return out[:n] if pad else out

    def _batch_pair(self, x: Any, y: Any) -> tuple[jax.Array, jax.Array]:
        nx, ny = _leading_dim(x, "x"), _leading_dim(y, "y")
        if nx != ny:
            raise ValueError(f"x and y differ in batch size: {np.shape(x)} vs {np.shape(y)}")
        check_global_batch(nx, self.mesh)
        return _place(x, self.batch), _place(y, self.batch)

    def _state(self, state: TrainState) -> TrainState:
        """``state`` replicated on the mesh. A state donated to an earlier step is refused
        here: handing its deleted buffers to a compiled multi-device call can crash the
        process (jax 0.10, XLA:CPU) instead of raising."""
        for a in jax.tree.leaves(state):
            if isinstance(a, jax.Array) and a.is_deleted():
                raise RuntimeError(
                    "this state was donated to an earlier step (its arrays are deleted): use "
                    "the state that call returned, state, loss = trainer.step(state, x, y), "
                    "or build the trainer with donate=False"
                )
        return jax.tree.map(lambda a: _place(a, self.replicated), state)

    # ---- the pure functions under jit ------------------------------------------------------

    def _gather(
        self, inputs: jax.Array, targets: jax.Array, idx: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """``Trainer._gather`` with the batch pinned to the batch sharding, so in
        ``Trainer._epoch`` each device gathers its own rows from its replica of the data set
        (no communication), one step ahead or not."""
        return jax.lax.with_sharding_constraint(super()._gather(inputs, targets, idx), self.batch)

    def _batches_epoch(
        self, state: TrainState, xs: jax.Array, ys: jax.Array
    ) -> tuple[TrainState, jax.Array]:
        def body(s: TrainState, xy: tuple[jax.Array, jax.Array]) -> tuple[TrainState, jax.Array]:
            return self._epoch_step(s, *xy)

        return self._scan_epoch(body, state, (xs, ys))


# ---- many hosts -----------------------------------------------------------------------------

_JAX_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
_TORCHRUN_ENV = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK")
_ENV_HELP = (
    "set on every process JAX_COORDINATOR_ADDRESS=host:port (process 0's address, a free "
    "port), JAX_NUM_PROCESSES=N and JAX_PROCESS_ID=0..N-1; or torchrun's MASTER_ADDR, "
    "MASTER_PORT, WORLD_SIZE and RANK; or run under SLURM, Open MPI, Kubernetes or Cloud TPU, "
    "which jax.distributed.initialize() detects by itself"
)


@dataclass(frozen=True)
class DistributedConfig:
    """How this process joins a multi-process run, and where that came from.

    ``None`` fields are left to JAX's cluster auto-detection (``source='auto-detect'``)."""

    coordinator_address: str | None
    num_processes: int | None
    process_id: int | None
    source: str


def _int_var(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} must be an integer") from None


def distributed_config_from_env(env: Mapping[str, str] | None = None) -> DistributedConfig | None:
    """The multi-process settings in ``env`` (default ``os.environ``), or ``None`` if none.

    Reads ``JAX_COORDINATOR_ADDRESS`` (which ``jax.distributed.initialize`` itself reads),
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` (this project's names for its other two
    arguments); failing those, torchrun's ``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE`` and
    ``RANK``. A partial set is an error that names what is missing.
    """
    env = os.environ if env is None else env
    if any(env.get(k) for k in _JAX_ENV):
        missing = [k for k in _JAX_ENV if not env.get(k)]
        if missing:
            raise ValueError(
                f"incomplete multi-process environment: {', '.join(missing)} not set while "
                f"{', '.join(k for k in _JAX_ENV if env.get(k))} is; {_ENV_HELP}"
            )
        cfg = DistributedConfig(
            env["JAX_COORDINATOR_ADDRESS"],
            _int_var(env, "JAX_NUM_PROCESSES"),
            _int_var(env, "JAX_PROCESS_ID"),
            "JAX_* environment",
        )
    elif any(env.get(k) for k in _TORCHRUN_ENV):
        missing = [k for k in _TORCHRUN_ENV if not env.get(k)]
        if missing:
            raise ValueError(
                f"incomplete torchrun-style environment: {', '.join(missing)} not set; {_ENV_HELP}"
            )
        cfg = DistributedConfig(
            f"{env['MASTER_ADDR']}:{env['MASTER_PORT']}",
            _int_var(env, "WORLD_SIZE"),
            _int_var(env, "RANK"),
            "torchrun environment",
        )
    else:
        return None
    _validate(cfg)
    return cfg


def _validate(cfg: DistributedConfig) -> None:
    addr, n, pid = cfg.coordinator_address, cfg.num_processes, cfg.process_id
    if addr is not None and not re.match(r"^.+:\d+$", addr):
        raise ValueError(
            f"coordinator address {addr!r} ({cfg.source}) must be host:port, e.g. 10.0.0.1:1234"
        )
    if n is not None and n < 1:
        raise ValueError(f"number of processes must be >= 1, got {n} ({cfg.source})")
    if pid is not None and n is not None and not 0 <= pid < n:
        raise ValueError(
            f"process id {pid} is out of range for {n} processes ({cfg.source}); ids run 0..{n - 1}"
        )


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: Sequence[int] | None = None,
    env: Mapping[str, str] | None = None,
) -> DistributedConfig:
    """Join a multi-process run: ``jax.distributed.initialize()`` with settings from the
    arguments, else the environment (:func:`distributed_config_from_env`), else JAX's own
    detection of SLURM, Open MPI, Kubernetes and Cloud TPU.

    Call it once per process, before any other JAX call (creating a model or an array starts
    JAX's backend). Afterwards ``jax.devices()`` lists every process's devices and
    :func:`make_mesh` spans them all. Calling it again is a no-op. Returns the settings used.
    """
    args = (coordinator_address, num_processes, process_id)
    if all(a is not None for a in args):
        cfg = DistributedConfig(*args, source="arguments")
    elif any(a is not None for a in args):
        names = ("coordinator_address", "num_processes", "process_id")
        missing = [n for n, a in zip(names, args, strict=True) if a is None]
        raise ValueError(
            f"initialize_distributed: pass all three of coordinator_address, num_processes "
            f"and process_id, or none (to read the environment); missing: {', '.join(missing)}"
        )
    else:
        cfg = distributed_config_from_env(env) or DistributedConfig(None, None, None, "auto-detect")
    _validate(cfg)
    if jax.distributed.is_initialized():
        return cfg
    kwargs: dict[str, Any] = {}
    if local_device_ids is not None:
        kwargs["local_device_ids"] = list(local_device_ids)
    if cfg.source != "auto-detect":
        kwargs["cluster_detection_method"] = "deactivate"
    try:
        jax.distributed.initialize(
            cfg.coordinator_address, cfg.num_processes, cfg.process_id, **kwargs
        )
    except (RuntimeError, ValueError) as exc:
        msg = str(exc)
        if "before any JAX" in msg or "before any jax" in msg.lower():
            raise RuntimeError(
                "initialize_distributed() must run before any other JAX call in this process "
                "(creating a model, an array, or asking for jax.devices() starts the backend); "
                "call it first thing, right after parsing the command line"
            ) from exc
        if cfg.source == "auto-detect":
            raise RuntimeError(f"no multi-process environment found ({msg}); {_ENV_HELP}") from exc
        raise
    return cfg


# ---- command-line wiring --------------------------------------------------------------------


def _devices_arg(text: str) -> int | None:
    if text == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or 'all', got {text!r}"
        ) from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {n}")
    return n


def _mesh_arg(text: str) -> dict[str, int]:
    try:
        return parse_mesh(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_device_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--devices N|all``, ``--mesh AXIS=SIZE,...`` and ``--distributed`` to ``parser``.

    Without any of them a command trains on one device, as before."""
    g = parser.add_argument_group(
        "devices", "data-parallel training (the batch is split over the devices)"
    )
    g.add_argument(
        "--devices",
        type=_devices_arg,
        default=False,
        metavar="N|all",
        help="train data-parallel over N devices, or all of them; the batch size must be a "
        "multiple of the device count (default: one device)",
    )
    g.add_argument(
        "--mesh",
        type=_mesh_arg,
        default=None,
        metavar="AXIS=SIZE[,...]",
        help="device mesh, outermost axis first, e.g. 'data=8' or 'hosts=2,data=4' (one size "
        "may be -1: the rest); the batch is split over every axis",
    )
    g.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: join the run with jax.distributed.initialize() (environment: "
        "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID; or torchrun's; or "
        "SLURM/Open MPI/Kubernetes/Cloud TPU) and use every process's devices",
    )
    return parser


_DEFAULT_MESH: Mesh | None = None


def setup_from_args(args: argparse.Namespace) -> Mesh | None:
    """Act on :func:`add_device_args`' flags; call it first thing after parsing (before any
    other JAX work, which ``--distributed`` needs). Joins the multi-process run for
    ``--distributed``, builds the mesh that ``--devices``/``--mesh`` ask for and makes it the
    default of :func:`trainer_for`. Returns that mesh, or None (no flag: one device)."""
    global _DEFAULT_MESH
    devices = getattr(args, "devices", False)
    mesh_shape = getattr(args, "mesh", None)
    distributed = getattr(args, "distributed", False)
    if distributed:
        initialize_distributed()
    if devices is False and mesh_shape is None and not distributed:
        _DEFAULT_MESH = None
    else:
        _DEFAULT_MESH = make_mesh(devices or None, mesh_shape=mesh_shape)
    return _DEFAULT_MESH


def trainer_for(
    model: nnx.Module,
    optimizer: optax.GradientTransformation,
    loss: str | LossFn = "cross_entropy",
    *,
    mesh: Mesh | None = None,
    **kwargs: Any,
) -> Trainer:
    """A :class:`DataParallelTrainer` on ``mesh`` (default: the mesh :func:`setup_from_args`
    made), or the single-device :class:`~jaxnets.Trainer` when there is none; the one
    call a training loop needs to honour the device flags. ``kwargs`` go to the trainer."""
    mesh = mesh if mesh is not None else _DEFAULT_MESH
    if mesh is None:
        return Trainer(model, optimizer, loss, **kwargs)
    return DataParallelTrainer(model, optimizer, loss, mesh=mesh, **kwargs)


def trainer_from_args(
    args: argparse.Namespace,
    model: nnx.Module,
    optimizer: optax.GradientTransformation,
    loss: str | LossFn = "cross_entropy",
    **kwargs: Any,
) -> Trainer:
    """:func:`setup_from_args` then :func:`trainer_for`: the trainer the flags ask for."""
    return trainer_for(model, optimizer, loss, mesh=setup_from_args(args), **kwargs)
