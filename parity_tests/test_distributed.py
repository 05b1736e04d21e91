"""Data-parallel training (``jaxnets.training.distributed``) equals single-device training.

The 8-device cases run in ONE subprocess (``_distributed_worker.py``) with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``: a JAX process fixes its device count
when its backend starts, and the rest of the suite keeps one device. The worker measures,
these tests assert. The command-line and environment parsing is tested here in-process.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jaxnets.training import distributed as dist

WORKER = Path(__file__).with_name("_distributed_worker.py")
ROOT = Path(__file__).resolve().parent.parent
MODELS = ("mlp", "lenet", "batchnorm_mlp")
DTYPES = ("float32", "float64")


def _worker_env(devices: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "MASTER_"))}
    flags = env.get("XLA_FLAGS", "")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    env["JAX_PLATFORMS"] = "cpu"  # simulated devices exist on the CPU backend only
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def _run_worker(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    # -W error: warnings are errors in the worker too, as in this suite
    return subprocess.Popen(
        [sys.executable, "-W", "error", str(WORKER), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _read(out: Path, proc: subprocess.Popen, timeout: float) -> dict[str, Any]:
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        log, _ = proc.communicate()
        pytest.fail(f"distributed worker timed out after {timeout}s:\n{log[-4000:]}")
    if proc.returncode != 0 or not out.exists():
        pytest.fail(f"distributed worker exited with {proc.returncode}:\n{log[-4000:]}")
    results = json.loads(out.read_text())
    if "error" in results:
        pytest.fail(f"distributed worker raised:\n{results['error']}")
    return results


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Everything the 8-device worker measured (one subprocess for the whole module)."""
    out = tmp_path_factory.mktemp("distributed") / "results.json"
    proc = _run_worker([str(out)], _worker_env(8))
    return _read(out, proc, timeout=900)


def _case(results: dict[str, Any], model: str, dtype: str) -> dict[str, Any]:
    (case,) = [c for c in results["cases"] if c["model"] == model and c["dtype"] == dtype]
    return case


def _assert_close(comparison: dict[str, Any], what: str) -> None:
    assert comparison["ok"], (
        f"{what}: leaves {comparison['failed']} out of tolerance ({comparison['kind']}: "
        f"rtol={comparison['rtol']:g}, atol={comparison['atol']:g}); worst "
        f"{comparison['worst_leaf']!r} max_rel={comparison['max_rel']:.3e}"
    )


# ---- 8 devices: equality with one device ------------------------------------------------------


def test_worker_ran_on_8_cpu_devices(results: dict[str, Any]) -> None:
    assert results["devices"] == 8
    assert results["backend"] == "cpu"
    assert all(c["mesh"] == {"data": 8} for c in results["cases"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("model", MODELS)
def test_epoch_equals_single_device(results: dict[str, Any], model: str, dtype: str) -> None:
    """4 scan-fused SGD-momentum steps of a global batch of 16 split over 8 devices equal the
    single-device ``Trainer.run_epoch``: parameters, BatchNorm statistics and every loss,
    within the one-evaluation tolerance (only the order of additions differs)."""
    _assert_close(_case(results, model, dtype)["epoch_vs_single"], f"{model} {dtype} epoch")


@pytest.mark.parametrize("dtype", DTYPES)
def test_step_loop_equals_single_device(results: dict[str, Any], dtype: str) -> None:
    """The per-step path (``shard_batch`` + ``step``) equals the single-device epoch too."""
    case = _case(results, "batchnorm_mlp", dtype)
    _assert_close(case["step_vs_single"], f"batchnorm_mlp {dtype} step loop")


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_over_global_batch_matches_torch(results: dict[str, Any], dtype: str) -> None:
    """Data-parallel ``batchnorm_mlp`` equals torch training the whole global batch on one
    device (torch's BatchNorm over the global batch: SyncBatchNorm's statistics), running
    statistics included; so does the single-device twin."""
    (case,) = [c for c in results["torch"] if c["dtype"] == dtype]
    _assert_close(case["dp_vs_torch"], f"data-parallel vs torch ({dtype})")
    _assert_close(case["single_vs_torch"], f"single-device vs torch ({dtype})")


def test_other_layouts_equal_single_device(results: dict[str, Any]) -> None:
    """``run_batches`` (pre-gathered batches split along B), ``run_epoch`` gathering each
    batch one step ahead (``gather_ahead=True``), a ``hosts=2,data=4`` mesh (the batch split
    over both axes) and ``predict`` on a batch that needs padding."""
    r = results["layouts"]
    _assert_close(r["batches_vs_single"], "run_batches")
    _assert_close(r["ahead_vs_single"], "run_epoch gathering one step ahead")
    assert r["mesh2"] == {"hosts": 2, "data": 4}
    assert r["mesh2_batch_spec"] == "P(('hosts', 'data'),)"
    _assert_close(r["mesh2_vs_single"], "hosts=2,data=4 mesh")
    _assert_close(r["predict_vs_single"], "predict on 10 examples over 8 devices")


# ---- 8 devices: compilation and layout -------------------------------------------------------


def test_second_call_does_not_recompile(results: dict[str, Any]) -> None:
    for case in results["cases"]:
        name = f"{case['model']} {case['dtype']}"
        assert case["epoch_first_compiles"] == ["_epoch"], name
        assert case["epoch_later_compiles"] == [], f"{name}: run_epoch recompiled"
        if "step_first_compiles" in case:
            assert case["step_first_compiles"] == ["_step"], name
            assert case["step_later_compiles"] == [], f"{name}: step recompiled"


def test_outputs_keep_their_shardings(results: dict[str, Any]) -> None:
    """State and losses come back replicated (``P()``); a batch is split ``P('data')`` with
    2 of the 16 examples on each of the 8 devices."""
    for case in results["cases"]:
        name = f"{case['model']} {case['dtype']}"
        assert case["epoch_state_replicated"] and case["epoch_losses_replicated"], name
        if "step_state_replicated" in case:
            assert case["step_state_replicated"] and case["step_loss_replicated"], name
            assert case["batch_spec"] == "P('data',)", name
            assert case["batch_shard_devices"] == 8, name
            assert [s[0] for s in case["batch_shard_shapes"]] == [2], name


def test_gradients_are_all_reduced_by_the_compiler(results: dict[str, Any]) -> None:
    """The compiled step and epoch hold all-reduces (gradients, BatchNorm moments, the loss)
    and nothing else: the batch is never gathered, and run_epoch's gather from the
    replicated data set is local to each device."""
    case = _case(results, "batchnorm_mlp", "float32")
    assert case["step_collectives"] == ["all-reduce"]
    assert case["epoch_collectives"] == ["all-reduce"]
    # gathered one step ahead and carried through the loop, the batch stays where it is
    lenet = _case(results, "lenet", "float32")
    assert lenet["gather_ahead"] is (results["backend"] == "cpu")
    assert lenet["epoch_collectives"] == ["all-reduce"]
    assert results["layouts"]["ahead_collectives"] == ["all-reduce"]


def test_global_batch_that_does_not_divide_is_a_clear_error(results: dict[str, Any]) -> None:
    errors = results["errors"]
    for key in ("step_batch_12", "epoch_batch_12", "shard_batch_12"):
        assert "global batch size 12 does not divide by the 8 devices" in errors[key], key
        assert "multiple of 8 (e.g. 8 or 16)" in errors[key], key
    assert "asked for 16 devices but JAX sees 8" in errors["make_mesh_16"]
    assert "asked for 9 devices" in errors["make_mesh_shape_3x3"]
    assert "is not AXIS=SIZE" in errors["make_mesh_bad_spec"]
    assert errors["state_alive_after_errors"] == "True"
    assert "this state was donated to an earlier step" in errors["donated_state_reused"]


def test_data_parallel_run_saved_and_resumed(results: dict[str, Any]) -> None:
    """A data-parallel run file loads into the data-parallel trainer (whose init places
    arrays on the mesh, also under jax.eval_shape) and into a single-device one, bit for bit,
    and the resumed run continues exactly."""
    assert results["checkpoint"] == {
        "data_parallel_bit_exact": True,
        "single_bit_exact": True,
        "continued_bit_exact": True,
    }


# ---- many processes ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_single_device(tmp_path: Path) -> None:
    """Two processes of 2 CPU devices each, started through ``initialize_distributed`` from
    the JAX_* environment (cross-process collectives: gloo), train ``batchnorm_mlp``
    data-parallel over the 4 devices, each process loading only its half of every global
    batch, and equal the single-device run that each process also computes."""
    address = f"127.0.0.1:{_free_port()}"
    outs = [tmp_path / f"proc{i}.json" for i in range(2)]
    procs = [
        _run_worker(
            ["--multiprocess", str(outs[i])],
            _worker_env(
                2,
                JAX_COORDINATOR_ADDRESS=address,
                JAX_NUM_PROCESSES="2",
                JAX_PROCESS_ID=str(i),
            ),
        )
        for i in range(2)
    ]
    for i, (out, proc) in enumerate(zip(outs, procs, strict=True)):
        r = _read(out, proc, timeout=600)
        assert r["process_index"] == i and r["process_count"] == 2
        assert r["global_devices"] == 4 and r["local_devices"] == 2
        assert r["config_source"] == "JAX_* environment"
        _assert_close(r["step_vs_single"], f"process {i}: step loop, process-local batches")
        assert r["rows"] == [8 * i, 8 * i + 8]  # its half of each global batch of 16
        assert r["state_replicated"]


# ---- in-process: parsing and environment ------------------------------------------------------


def test_parse_mesh() -> None:
    assert dist.parse_mesh("data=8") == {"data": 8}
    assert dist.parse_mesh(" hosts=2, data=-1 ") == {"hosts": 2, "data": -1}
    for bad, msg in [
        ("data:8", "is not AXIS=SIZE"),
        ("data=x", "is not an integer"),
        ("data=2,data=4", "appears twice"),
        ("", "must be 'AXIS=SIZE"),
        ("2x4", "is not AXIS=SIZE"),
    ]:
        with pytest.raises(ValueError, match=msg):
            dist.parse_mesh(bad)


def test_make_mesh_refuses_a_bool_device_count() -> None:
    with pytest.raises(ValueError, match="devices must be a positive integer or None"):
        dist.make_mesh(True)  # bool is an int in Python: this built a 1-device mesh


def test_make_mesh_rejects_bad_shapes_before_touching_devices() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        dist.make_mesh(0)
    with pytest.raises(ValueError, match="at most one axis may have size -1"):
        dist.make_mesh(mesh_shape={"a": -1, "b": -1})
    with pytest.raises(ValueError, match="holds 6 devices but devices=4"):
        dist.make_mesh(4, mesh_shape="hosts=2,data=3")


def test_make_mesh_on_this_process() -> None:
    import jax

    mesh = dist.make_mesh()
    assert mesh.axis_names == ("data",) and mesh.shape["data"] == jax.device_count()
    assert str(dist.batch_sharding(mesh).spec) == "P('data',)"
    assert str(dist.batch_sharding(mesh, batch_dim=1).spec) == "P(None, 'data')"
    assert str(dist.replicated_sharding(mesh).spec) == "P()"


JAX_ENV = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4"}


def test_distributed_config_from_env() -> None:
    cfg = dist.distributed_config_from_env({**JAX_ENV, "JAX_PROCESS_ID": "3"})
    assert (cfg.coordinator_address, cfg.num_processes, cfg.process_id) == ("10.0.0.1:1234", 4, 3)
    torchrun = {"MASTER_ADDR": "node0", "MASTER_PORT": "29500", "WORLD_SIZE": "2", "RANK": "1"}
    cfg = dist.distributed_config_from_env(torchrun)
    assert (cfg.coordinator_address, cfg.num_processes, cfg.process_id) == ("node0:29500", 2, 1)
    assert cfg.source == "torchrun environment"
    assert dist.distributed_config_from_env({"PATH": "/bin"}) is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (JAX_ENV, "JAX_PROCESS_ID not set while JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES"),
        ({**JAX_ENV, "JAX_PROCESS_ID": "4"}, "process id 4 is out of range for 4 processes"),
        ({**JAX_ENV, "JAX_PROCESS_ID": "one"}, "JAX_PROCESS_ID='one' must be an integer"),
        ({**JAX_ENV, "JAX_PROCESS_ID": "0", "JAX_COORDINATOR_ADDRESS": "host"}, "host:port"),
        ({"MASTER_ADDR": "node0", "WORLD_SIZE": "2"}, "MASTER_PORT, RANK not set"),
    ],
)
def test_incomplete_environment_is_a_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dist.distributed_config_from_env(env)
    with pytest.raises(ValueError, match=message):  # and nothing is initialised
        dist.initialize_distributed(env=env)


def test_initialize_distributed_needs_all_three_arguments() -> None:
    with pytest.raises(ValueError, match="missing: num_processes, process_id"):
        dist.initialize_distributed("10.0.0.1:1234")


def _parse(*argv: str) -> argparse.Namespace:
    return dist.add_device_args(argparse.ArgumentParser()).parse_args(list(argv))


def test_device_flags() -> None:
    args = _parse()
    assert (args.devices, args.mesh, args.distributed) == (False, None, False)
    assert _parse("--devices", "4").devices == 4
    assert _parse("--devices", "all").devices is None
    assert _parse("--mesh", "hosts=2,data=4").mesh == {"hosts": 2, "data": 4}
    assert _parse("--distributed").distributed


@pytest.mark.parametrize("argv", [["--devices", "0"], ["--devices", "two"], ["--mesh", "x:1"]])
def test_bad_device_flags_exit_with_usage(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        _parse(*argv)
    assert "error: argument" in capsys.readouterr().err


def test_trainer_from_args_without_flags_is_the_single_device_trainer() -> None:
    from flax import nnx

    import jaxnets
    from jaxnets import optim
    from jaxnets.training.trainer import Trainer

    model = nnx.eval_shape(lambda: jaxnets.create_model("xor_net"))  # no arrays needed
    trainer = dist.trainer_from_args(_parse(), model, optim.sgd(lr=0.1), "mse")
    assert type(trainer) is Trainer
    try:
        trainer = dist.trainer_from_args(_parse("--devices", "1"), model, optim.sgd(0.1), "mse")
        assert isinstance(trainer, dist.DataParallelTrainer)
        assert trainer.mesh.shape == {"data": 1}
        # setup_from_args made that mesh the default: a loop's trainer_for() picks it up
        assert isinstance(dist.trainer_for(model, optim.sgd(0.1)), dist.DataParallelTrainer)
        # every Trainer argument goes through, gather_ahead included (a TypeError before)
        import inspect

        single, parallel = (
            inspect.signature(t).parameters for t in (Trainer, dist.DataParallelTrainer)
        )
        assert set(single) <= set(parallel), set(single) - set(parallel)
        ahead = dist.trainer_for(model, optim.sgd(0.1), gather_ahead=True)
        assert isinstance(ahead, dist.DataParallelTrainer) and ahead.gather_ahead is True
    finally:
        dist.setup_from_args(_parse())  # back to one device for the rest of the session
    assert type(dist.trainer_for(model, optim.sgd(0.1))) is Trainer


@pytest.mark.gpu
def test_data_parallel_on_the_local_gpus(np_rng: Any) -> None:
    """On a GPU machine: the same code path over every local GPU equals one GPU."""
    import jax
    import numpy as np

    import jaxnets
    from jaxnets import data, optim
    from jaxnets.testing import assert_trees_all_close
    from jaxnets.tolerances import tolerance
    from jaxnets.training.trainer import Trainer

    n_dev = jax.local_device_count()
    batch = 8 * n_dev
    model = jaxnets.create_model("batchnorm_mlp", in_features=20, output_size=5)
    model.train()
    x, y = jaxnets.get_model_spec("batchnorm_mlp").example_batch(
        4 * batch, np_rng, in_features=20, output_size=5
    )
    idx = data.epoch_batches(len(x), batch, seed=0, epoch=0)
    single = Trainer(model, optim.sgd(lr=0.05, momentum=0.9), "cross_entropy")
    s_state, s_losses = single.run_epoch(single.init(), x, y, idx)
    dp = dist.DataParallelTrainer(model, optim.sgd(lr=0.05, momentum=0.9), "cross_entropy")
    d_state, d_losses = dp.run_epoch(dp.init(), dp.replicate(x), dp.replicate(y), idx)
    tol = tolerance("float32", kind="eval")
    to_np = lambda s: [np.asarray(a) for a in (*s.params, *s.rest)]  # noqa: E731
    assert_trees_all_close(
        [*to_np(d_state), np.asarray(d_losses)],
        [*to_np(s_state), np.asarray(s_losses)],
        rtol=tol.rtol,
        atol=tol.atol,
    )
