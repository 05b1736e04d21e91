"""Runs in a subprocess with 8 simulated CPU devices; ``test_distributed.py`` starts it.

The device count of a JAX process is fixed when its backend starts, so the 8-device mesh
cannot live in the pytest process (the rest of the suite keeps one device). This script
measures every case once and writes the results as JSON to the path in ``argv[1]``; the
tests read them and assert. Measuring here and asserting there keeps one subprocess (one JAX
start-up, one compilation per function) for all the cases.

Usage: ``XLA_FLAGS=--xla_force_host_platform_device_count=8 python _distributed_worker.py OUT``
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import traceback
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

jax.config.update("jax_enable_x64", True)

from torchref.precision import set_precision  # noqa: E402

set_precision("highest", torch_too=False)

import jaxnets  # noqa: E402
from jaxnets import convert, data, optim  # noqa: E402
from jaxnets.checkpoint import load_run, save_run  # noqa: E402
from jaxnets.testing import leaf_diff  # noqa: E402
from jaxnets.tolerances import tolerance  # noqa: E402
from jaxnets.training.distributed import (  # noqa: E402
    DataParallelTrainer,
    initialize_distributed,
    make_mesh,
    process_batch_slice,
    replicated_sharding,
    shard_batch,
)
from jaxnets.training.trainer import Trainer  # noqa: E402

DEVICES = 8
N, BATCH = 64, 16  # 4 steps of a global batch of 16: 2 examples per device
LR, MOMENTUM = 0.05, 0.9
MODELS: dict[str, dict[str, Any]] = {
    "mlp": dict(in_features=20, hidden_sizes=(32, 16), out_features=5),
    "lenet": {},
    "batchnorm_mlp": dict(in_features=20, hidden_size1=32, hidden_size2=16, output_size=5),
}


class _CompileLog(logging.Handler):
    """Collects JAX's 'Compiling jit(<name>) ...' log lines (``jax.log_compiles``)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        m = re.match(r"Compiling jit\(([^)]*)\)", record.getMessage())
        if m:
            self.names.append(m.group(1))


COMPILES = _CompileLog()
logging.getLogger("jax").addHandler(COMPILES)


def compiles_during(fn: Callable[[], Any]) -> tuple[Any, list[str]]:
    """``fn()`` (waited for) and the names of the functions jit-compiled while it ran."""
    start = len(COMPILES.names)
    with jax.log_compiles(True):
        out = jax.block_until_ready(fn())
    return out, COMPILES.names[start:]


def compare(actual: dict[str, Any], expected: dict[str, Any], dtype: str, kind: str) -> dict:
    """Per-leaf error of two flat dicts under the project tolerance; the worst leaf first."""
    tol = tolerance(dtype, kind=kind)
    assert actual.keys() == expected.keys(), (sorted(actual), sorted(expected))
    leaves = {k: leaf_diff(actual[k], expected[k], rtol=tol.rtol, atol=tol.atol) for k in expected}
    worst = max(leaves, key=lambda k: leaves[k].tolerance_used)
    return {
        "ok": all(d.ok for d in leaves.values()),
        "failed": sorted(k for k, d in leaves.items() if not d.ok),
        "worst_leaf": worst,
        "max_rel": max(d.max_rel for d in leaves.values()),
        "tolerance_used": leaves[worst].tolerance_used,
        "rtol": tol.rtol,
        "atol": tol.atol,
        "kind": kind,
    }


def snapshot(trainer: Trainer, state: Any, losses: Any) -> dict[str, np.ndarray]:
    """Torch-named parameters and BatchNorm statistics of ``state``, plus the losses."""
    out = {k: np.asarray(v) for k, v in convert.state_dict(trainer.merge(state)).items()}
    out["losses"] = np.asarray(losses)
    return out


def _fill(path: tuple[Any, ...], leaf: jax.ShapeDtypeStruct, rng: np.random.Generator) -> Any:
    """A value for one variable of an abstract model, drawn with numpy (nothing compiles)."""
    name = str(getattr(path[-1], "key", path[-1]))
    if not np.issubdtype(leaf.dtype, np.floating):  # counters (num_batches_tracked)
        return np.zeros(leaf.shape, leaf.dtype)
    if name == "kernel":  # [in, out] or [kh, kw, in, out]: torch's bound 1/sqrt(fan_in)
        bound = 1.0 / np.sqrt(np.prod(leaf.shape[:-1]))
        value = rng.uniform(-bound, bound, leaf.shape)
    elif name in ("scale", "var"):  # BatchNorm weight and running variance: positive
        value = rng.uniform(0.5, 1.5, leaf.shape)
    else:  # biases, running means
        value = rng.uniform(-0.1, 0.1, leaf.shape)
    return value.astype(leaf.dtype)


@functools.cache
def _problem(name: str, dtype: str) -> tuple[nnx.Module, np.ndarray, np.ndarray, np.ndarray]:
    spec = jaxnets.get_model_spec(name)
    np_dtype = np.dtype(dtype)
    # Built abstractly and filled from numpy: eager initialisation would compile one random
    # kernel per parameter shape and dtype, which costs more than the whole comparison here.
    abstract = nnx.eval_shape(
        lambda: jaxnets.create_model(
            name, rngs=nnx.Rngs(0), param_dtype=np_dtype, dtype=np_dtype, **MODELS[name]
        )
    )
    graphdef, state = nnx.split(abstract)
    rng = np.random.default_rng(0)
    pure = jax.tree_util.tree_map_with_path(
        lambda path, leaf: _fill(path, leaf, rng), nnx.to_pure_dict(state)
    )
    nnx.replace_by_pure_dict(state, pure)
    model = nnx.merge(graphdef, state)
    model.train()
    x, y = spec.example_batch(N, np.random.default_rng(1), dtype=np_dtype, **MODELS[name])
    idx = data.epoch_batches(N, BATCH, seed=0, epoch=0)
    return model, spec.to_flax_layout(x), y, idx


def problem(name: str, dtype: str) -> tuple[nnx.Module, np.ndarray, np.ndarray, np.ndarray]:
    """A model in train mode (a fresh copy), a data set in the twin's layout, and the
    epoch's batches ``(steps, BATCH)``; the same values on every call."""
    model, x, y, idx = _problem(name, dtype)
    return nnx.clone(model), x, y, idx


def collectives(compiled_text: str) -> list[str]:
    ops = r"all-reduce|all-gather|reduce-scatter|collective-permute|all-to-all"
    return sorted(set(re.findall(rf"\b({ops})(?:-start)?\(", compiled_text)))


def is_replicated(a: jax.Array, mesh: jax.sharding.Mesh) -> bool:
    return a.sharding.is_equivalent_to(replicated_sharding(mesh), a.ndim)


@functools.cache
def reference_epoch(name: str, dtype: str) -> dict[str, np.ndarray]:
    """The model, and its single-device epoch (``Trainer.run_epoch``) as a snapshot."""
    model, x, y, idx = problem(name, dtype)
    single = Trainer(model, make_optimizer(), jaxnets.get_model_spec(name).loss)
    state, losses = single.run_epoch(single.init(), x, y, idx)
    return snapshot(single, state, losses)


def make_optimizer() -> Any:
    return optim.sgd(lr=LR, momentum=MOMENTUM)


DP_EPOCH: dict[tuple[str, str], dict[str, np.ndarray]] = {}
"""The data-parallel epoch of each ``run_case``, for the comparison with torch."""


def run_case(name: str, dtype: str, *, step_loop: bool, inspect_hlo: bool) -> dict[str, Any]:
    """Single-device epoch vs the data-parallel epoch (and step loop), on the same batches."""
    model, x, y, idx = problem(name, dtype)
    reference = reference_epoch(name, dtype)
    mesh = make_mesh(DEVICES)
    dp = DataParallelTrainer(model, make_optimizer(), jaxnets.get_model_spec(name).loss, mesh=mesh)
    r: dict[str, Any] = {"model": name, "dtype": dtype, "mesh": dict(mesh.shape)}
    r["gather_ahead"] = dp.gather_ahead  # True for lenet on the CPU: both epoch forms covered

    # the scan-fused epoch: data set replicated, batch_idx split along the batch
    X, Y = dp.replicate(x), dp.replicate(y)
    (state, losses), r["epoch_first_compiles"] = compiles_during(
        lambda: dp.run_epoch(dp.init(), X, Y, idx)
    )
    DP_EPOCH[name, dtype] = snapshot(dp, state, losses)
    r["epoch_vs_single"] = compare(DP_EPOCH[name, dtype], reference, dtype, "eval")
    r["epoch_state_replicated"] = all(is_replicated(a, mesh) for a in jax.tree.leaves(state))
    r["epoch_losses_replicated"] = is_replicated(losses, mesh)
    if inspect_hlo:
        r["epoch_collectives"] = collectives(
            dp.jit_epoch.lower(state, X, Y, jax.device_put(idx, dp.batch_idx)).compile().as_text()
        )
    _, r["epoch_later_compiles"] = compiles_during(lambda: dp.run_epoch(state, X, Y, idx))

    if step_loop:  # the per-step loop (torch's loop body), each global batch split over 8
        state, losses, compiled = dp.init(), [], []
        for batch in idx:
            xb, yb = shard_batch((x[batch], y[batch]), mesh)
            (state, loss), names = compiles_during(lambda s=state, xb=xb, yb=yb: dp.step(s, xb, yb))
            losses.append(loss)
            compiled.append(names)
        r["step_first_compiles"] = compiled[0]
        r["step_later_compiles"] = [n for names in compiled[1:] for n in names]
        r["step_vs_single"] = compare(
            snapshot(dp, state, jnp.stack(losses)), reference, dtype, "eval"
        )
        r["step_state_replicated"] = all(is_replicated(a, mesh) for a in jax.tree.leaves(state))
        r["step_loss_replicated"] = all(is_replicated(a, mesh) for a in losses)
        r["batch_spec"] = str(xb.sharding.spec)
        r["batch_shard_shapes"] = sorted({tuple(s.data.shape) for s in xb.addressable_shards})
        r["batch_shard_devices"] = len({s.device for s in xb.addressable_shards})
        if inspect_hlo:
            r["step_collectives"] = collectives(
                dp.jit_step.lower(state, xb, yb).compile().as_text()
            )
    return r


def layouts_case(name: str, dtype: str) -> dict[str, Any]:
    """Other layouts of the same epoch: pre-gathered batches split along B (``run_batches``)
    and a two-axis mesh ``hosts=2,data=4``; eval-mode ``predict`` with a padded batch."""
    model, x, y, idx = problem(name, dtype)
    reference = reference_epoch(name, dtype)
    loss = jaxnets.get_model_spec(name).loss
    r: dict[str, Any] = {"model": name, "dtype": dtype}

    dp = DataParallelTrainer(nnx.clone(model), make_optimizer(), loss, mesh=make_mesh(DEVICES))
    state, losses = dp.run_batches(dp.init(), x[idx], y[idx])
    r["batches_vs_single"] = compare(snapshot(dp, state, losses), reference, dtype, "eval")

    # the epoch with each batch gathered one step ahead, carried sharded through the loop
    ahead = DataParallelTrainer(
        nnx.clone(model), make_optimizer(), loss, mesh=make_mesh(DEVICES), gather_ahead=True
    )
    state, losses = ahead.run_epoch(ahead.init(), x, y, idx)
    r["ahead_vs_single"] = compare(snapshot(ahead, state, losses), reference, dtype, "eval")
    r["ahead_collectives"] = collectives(
        ahead.jit_epoch.lower(
            state, ahead.replicate(x), ahead.replicate(y), jax.device_put(idx, ahead.batch_idx)
        )
        .compile()
        .as_text()
    )

    mesh2 = make_mesh(mesh_shape="hosts=2,data=-1")
    r["mesh2"] = dict(mesh2.shape)
    dp2 = DataParallelTrainer(nnx.clone(model), make_optimizer(), loss, mesh=mesh2)
    state2, losses2 = dp2.run_epoch(dp2.init(), x, y, idx)
    r["mesh2_vs_single"] = compare(snapshot(dp2, state2, losses2), reference, dtype, "eval")
    r["mesh2_batch_spec"] = str(dp2.batch.spec)

    # eval mode: 10 examples do not divide by 8; predict pads and cuts, per example exact
    single = Trainer(nnx.clone(model), make_optimizer(), loss)
    s_state = single.init()
    expected = {"outputs": np.asarray(single.predict(s_state, x[:10]))}
    actual = {"outputs": np.asarray(dp.predict(dp.init(), x[:10]))}
    r["predict_vs_single"] = compare(actual, expected, dtype, "eval")
    return r


def torch_case(name: str, dtype: str) -> dict[str, Any]:
    """The data-parallel epoch against torch training the WHOLE global batch on one device:
    torch's BatchNorm over the global batch, which is what SyncBatchNorm computes across
    ranks (torch.nn.SyncBatchNorm normalises with the statistics of all ranks' inputs)."""
    import torch
    import torch.nn.functional as F

    import torchref
    from torchref import bridge

    model, x, y, idx = problem(name, dtype)
    tmodel = torchref.create_model(name, dtype=getattr(torch, dtype), **MODELS[name])
    bridge.flax_to_torch(model, tmodel)
    tmodel.train()
    opt = torch.optim.SGD(tmodel.parameters(), lr=LR, momentum=MOMENTUM)
    losses = []
    for batch in idx:  # torch layout: x is (N, F) for this model, as in the twin
        opt.zero_grad()
        out = tmodel(torch.from_numpy(x[batch]))
        loss = F.cross_entropy(out, torch.from_numpy(y[batch]))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    expected = bridge.to_numpy_state_dict(tmodel)
    expected["losses"] = np.asarray(losses)
    return {
        "model": name,
        "dtype": dtype,
        "dp_vs_torch": compare(DP_EPOCH[name, dtype], expected, dtype, "trajectory"),
        "single_vs_torch": compare(reference_epoch(name, dtype), expected, dtype, "trajectory"),
    }


def error_cases() -> dict[str, str]:
    """The message of each bad input (empty string: no error was raised)."""
    model, x, y, _ = problem("mlp", "float32")
    mesh = make_mesh(DEVICES)
    dp = DataParallelTrainer(model, make_optimizer(), "cross_entropy", mesh=mesh)
    state = dp.init()
    attempts: dict[str, Callable[[], Any]] = {
        "step_batch_12": lambda: dp.step(state, x[:12], y[:12]),
        "epoch_batch_12": lambda: dp.run_epoch(state, x, y, np.arange(24).reshape(2, 12)),
        "shard_batch_12": lambda: shard_batch(x[:12], mesh),
        "make_mesh_16": lambda: make_mesh(16),
        "make_mesh_shape_3x3": lambda: make_mesh(mesh_shape={"hosts": 3, "data": 3}),
        "make_mesh_bad_spec": lambda: make_mesh(mesh_shape="data:8"),
    }
    messages = {}
    for key, attempt in attempts.items():
        try:
            attempt()
            messages[key] = ""
        except ValueError as exc:
            messages[key] = str(exc)
    # the failed calls lost nothing: the (donated) state was not consumed
    alive = not any(a.is_deleted() for a in jax.tree.leaves(state))
    messages["state_alive_after_errors"] = str(alive)
    # a state reused after a step donated it: a clear error (handing the deleted buffers to
    # the compiled multi-device call crashed the process)
    used = dp.init()
    dp.step(used, x[:8], y[:8])
    try:
        dp.step(used, x[:8], y[:8])
        messages["donated_state_reused"] = ""
    except RuntimeError as exc:
        messages["donated_state_reused"] = str(exc)
    return messages


def checkpoint_case(folder: str) -> dict[str, Any]:
    """A data-parallel run saved part-way and loaded back, into the data-parallel trainer
    (checkpoint.load_run builds its template with jax.eval_shape(trainer.init)) and into a
    single-device one: the same arrays, bit for bit, and the continued runs agree."""
    name, dtype = "batchnorm_mlp", "float64"
    model, x, y, idx = problem(name, dtype)
    mesh = make_mesh(DEVICES)

    def dp_trainer() -> DataParallelTrainer:
        return DataParallelTrainer(model, make_optimizer(), "cross_entropy", mesh=mesh)

    dp = dp_trainer()
    half = len(idx) // 2
    state, _ = dp.run_epoch(dp.init(), x, y, idx[:half])
    path = f"{folder}/dp.run.safetensors"
    save_run(path, dp, state, meta={"epoch": 0})
    saved = [np.asarray(a) for a in jax.tree.leaves(state)]
    r: dict[str, Any] = {}
    for kind, trainer in (
        ("data_parallel", dp_trainer()),
        ("single", Trainer(model, make_optimizer(), "cross_entropy")),
    ):
        loaded, meta = load_run(path, trainer)
        r[f"{kind}_bit_exact"] = all(
            np.array_equal(np.asarray(a), b)
            for a, b in zip(jax.tree.leaves(loaded), saved, strict=True)
        ) and meta == {"epoch": 0}
    dp2 = dp_trainer()
    loaded, _ = load_run(path, dp2)
    end_a, losses_a = dp.run_epoch(state, x, y, idx[half:])
    end_b, losses_b = dp2.run_epoch(loaded, x, y, idx[half:])
    r["continued_bit_exact"] = all(
        np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(
            jax.tree.leaves((end_a, losses_a)), jax.tree.leaves((end_b, losses_b)), strict=True
        )
    )
    return r


def multiprocess_case(cfg: Any) -> dict[str, Any]:
    """One process of a multi-process run: the step loop with each process loading only its
    rows of every global batch (as the hosts of a pod do), against the single-device epoch
    that this process computes on its first local device."""
    name, dtype = "batchnorm_mlp", "float64"
    model, x, y, idx = problem(name, dtype)
    reference = reference_epoch(name, dtype)
    mesh = make_mesh()
    dp = DataParallelTrainer(model, make_optimizer(), "cross_entropy", mesh=mesh)
    rows = process_batch_slice(mesh, BATCH)
    state, losses = dp.init(), []
    for batch in idx:
        xb, yb = dp.shard((x[batch][rows], y[batch][rows]), process_local=True)
        state, loss = dp.step(state, xb, yb)
        losses.append(loss)
    step = compare(snapshot(dp, state, jnp.stack(losses)), reference, dtype, "eval")
    return {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "global_devices": jax.device_count(),
        "local_devices": jax.local_device_count(),
        "config_source": cfg.source,
        "rows": [rows.start, rows.stop],
        "step_vs_single": step,
        "state_replicated": all(is_replicated(a, mesh) for a in jax.tree.leaves(state)),
    }


def main(out_path: str) -> None:
    results: dict[str, Any] = {"devices": jax.device_count(), "backend": jax.default_backend()}
    try:
        if jax.device_count() != DEVICES:
            raise RuntimeError(
                f"expected {DEVICES} devices, JAX sees {jax.device_count()}: set "
                f"XLA_FLAGS=--xla_force_host_platform_device_count={DEVICES} before starting"
            )
        results["cases"] = [
            run_case(name, dtype, step_loop=bn, inspect_hlo=name != "mlp" and dtype == "float32")
            for name, bn in (("mlp", False), ("lenet", False), ("batchnorm_mlp", True))
            for dtype in ("float32", "float64")
        ]
        results["layouts"] = layouts_case("batchnorm_mlp", "float64")
        results["torch"] = [torch_case("batchnorm_mlp", d) for d in ("float32", "float64")]
        results["errors"] = error_cases()
        results["checkpoint"] = checkpoint_case(out_path.rsplit("/", 1)[0] or ".")
    except Exception:
        results["error"] = traceback.format_exc()
    with open(out_path, "w") as f:
        json.dump(results, f, indent=1)


def main_multiprocess(out_path: str) -> None:
    results: dict[str, Any] = {}
    try:
        cfg = initialize_distributed()  # before anything starts JAX's backend
        results = multiprocess_case(cfg)
    except Exception:
        results["error"] = traceback.format_exc()
    with open(out_path, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    if sys.argv[1] == "--multiprocess":
        main_multiprocess(sys.argv[2])
    else:
        main(sys.argv[1])
