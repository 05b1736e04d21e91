"""Checkpoints: weights cross between frameworks bit for bit, files cannot run code, writes
are atomic, and a run killed part-way resumes to the same bits as a run left alone."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.torch
import torch
from flax import nnx

import jaxnets
import torchref
from jaxnets import checkpoint, convert, optim
from jaxnets.tolerances import backend_name
from jaxnets.training.trainer import Trainer
from torchref import bridge, parity
from torchref.checkpoint import load_torch_file, save_torch_file

REPO = Path(__file__).resolve().parents[1]
DTYPES = [(jnp.float32, torch.float32), (jnp.float64, torch.float64)]


def _torch_model(name: str, tdtype: torch.dtype, seed: int) -> torch.nn.Module:
    """A torch reference with random weights and non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    model = torchref.create_model(name, dtype=tdtype)
    with torch.no_grad():
        for _, buf in model.named_buffers():
            if buf.is_floating_point():
                buf.copy_(torch.rand_like(buf) + 0.5)
            else:
                buf.fill_(7)
    return model


def _assert_state_dicts_identical(actual: dict, expected: dict) -> None:
    assert sorted(actual) == sorted(expected)
    for k in expected:
        a, e = np.asarray(actual[k]), np.asarray(expected[k])
        assert a.dtype == e.dtype, k
        assert a.shape == e.shape, k
        np.testing.assert_array_equal(a, e, err_msg=k)


def _forward_parity(t: torch.nn.Module, f: nnx.Module, name: str, rng) -> None:
    spec = jaxnets.get_model_spec(name)
    dtype = next(t.parameters()).dtype
    x, _ = spec.example_batch(4, rng, dtype=np.float64 if dtype == torch.float64 else np.float32)
    report = parity.compare(
        t, f, x, None, loss=None, layout=spec.layout, mode="eval", copy_weights=False, jit=False
    )
    report.raise_if_failed()


# ---- weights interchange -------------------------------------------------------------------


@pytest.mark.parametrize(("jdtype", "tdtype"), DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", jaxnets.list_models())
def test_torch_saved_safetensors_loads_into_twin(name, jdtype, tdtype, seed, np_rng, tmp_path):
    t = _torch_model(name, tdtype, seed)
    path = tmp_path / "from_torch.safetensors"
    safetensors.torch.save_file(t.state_dict(), path)  # torch's own writer, no jaxnets metadata
    f = jaxnets.create_model(name, param_dtype=jdtype, rngs=nnx.Rngs(seed + 1))
    checkpoint.load_torch_layout(path, f)
    _assert_state_dicts_identical(convert.state_dict(f), bridge.to_numpy_state_dict(t))
    if tdtype == torch.float32:
        _forward_parity(t, f, name, np_rng)


@pytest.mark.parametrize("name", jaxnets.list_models())
def test_twin_saved_safetensors_loads_in_torch(name, seed, np_rng, tmp_path):
    f = jaxnets.create_model(name, rngs=nnx.Rngs(seed + 2))
    path = checkpoint.save_torch_layout(tmp_path / "twin.safetensors", f)
    t = torchref.create_model(name)
    t.load_state_dict(safetensors.torch.load_file(path), strict=True)  # torch's own reader
    _assert_state_dicts_identical(bridge.to_numpy_state_dict(t), convert.state_dict(f))
    _forward_parity(t, f, name, np_rng)


@pytest.mark.parametrize(("jdtype", "tdtype"), DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", ["batchnorm_mlp", "lenet", "mlp"])
def test_flax_layout_round_trip_is_bit_exact(name, jdtype, tdtype, seed, tmp_path):
    src = jaxnets.create_model(name, param_dtype=jdtype, rngs=nnx.Rngs(seed))
    bridge.torch_to_flax(_torch_model(name, tdtype, seed), src)  # non-trivial BN statistics
    path = checkpoint.save_flax(tmp_path / "twin.flax.safetensors", src, metadata={"note": "x"})
    meta = checkpoint.read_metadata(path)
    assert meta["jaxnets_format"] == "flax"
    assert meta["jaxnets_model_class"] == type(src).__name__
    assert meta["note"] == "x"
    dst = jaxnets.create_model(name, param_dtype=jdtype, rngs=nnx.Rngs(seed + 9))
    checkpoint.load_flax(path, dst)
    before, after = nnx.to_flat_state(nnx.state(src)), nnx.to_flat_state(nnx.state(dst))
    assert [p for p, _ in before] == [p for p, _ in after]
    for (p, a), (_, b) in zip(before, after, strict=True):
        assert a[...].dtype == b[...].dtype, p
        np.testing.assert_array_equal(np.asarray(a[...]), np.asarray(b[...]), err_msg=str(p))


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors"])
def test_torch_file_round_trip_into_twin(suffix, seed, np_rng, tmp_path):
    t = _torch_model("batchnorm_mlp", torch.float32, seed)
    path = save_torch_file(tmp_path / f"weights{suffix}", t)
    sd = load_torch_file(path)
    _assert_state_dicts_identical(sd, bridge.to_numpy_state_dict(t))
    f = jaxnets.create_model("batchnorm_mlp")
    convert.load_state_dict(f, sd)
    _forward_parity(t, f, "batchnorm_mlp", np_rng)


def test_pt_training_checkpoint_needs_its_key(seed, tmp_path):
    t = _torch_model("xor_net", torch.float32, seed)
    path = tmp_path / "ckpt.pt"
    torch.save({"model_state_dict": t.state_dict(), "epoch": 3}, path)
    with pytest.raises(checkpoint.CheckpointError, match="pass key='model_state_dict'"):
        load_torch_file(path)
    torch.save({"net": t.state_dict(), "epoch": 3}, path)
    with pytest.raises(checkpoint.CheckpointError, match="pass key= naming the entry"):
        load_torch_file(path)
    torch.save({"model_state_dict": t.state_dict(), "epoch": 3}, path)
    sd = load_torch_file(path, key="model_state_dict")
    _assert_state_dicts_identical(sd, bridge.to_numpy_state_dict(t))


class _Payload:
    """Pickles to a call of os.system: unpickling it runs a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@pytest.mark.parametrize("container", ["torch_zip", "torch_legacy", "raw_pickle"])
def test_pickle_with_code_is_refused_and_never_runs(container, tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "weights.pt"
    payload = {"fc.weight": torch.zeros(2, 2), "fc.bias": _Payload(marker)}
    if container == "torch_zip":
        torch.save(payload, path)
    elif container == "torch_legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        # A hand-made pickle (no torch storages, which torch would refuse first).
        raw = {"fc.weight": [[0.0, 0.0]], "fc.bias": _Payload(marker)}
        path.write_bytes(pickle.dumps(raw, protocol=2))  # torch.save's protocol
    with pytest.raises(checkpoint.CheckpointError) as err:
        load_torch_file(path)
    msg = str(err.value)
    assert "refused" in msg and "nothing in it ran" in msg and "system" in msg
    assert "state_dict()" in msg  # the fix: re-save only the weights
    assert not marker.exists()
    # Control: the payload is live. An unrestricted load runs it, so the check above can fail.
    if container == "raw_pickle":
        pickle.loads(path.read_bytes())  # deliberately unsafe: our own payload
    else:
        torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("name", ["batchnorm_mlp", "lenet"])
def test_bfloat16_weights_cross_frameworks_bit_for_bit(name, seed, tmp_path):
    # numpy has no bfloat16 (ml_dtypes gives it) and safetensors' numpy reader refuses BF16,
    # so reading such a file is jaxnets' own decoder: check it against torch's writer/reader
    t = _torch_model(name, torch.bfloat16, seed)
    path = tmp_path / "torch.safetensors"
    safetensors.torch.save_file(t.state_dict(), path)
    f = jaxnets.create_model(name, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(seed + 1))
    checkpoint.load_torch_layout(path, f)
    back = safetensors.torch.load_file(checkpoint.save_torch_layout(tmp_path / "twin.st", f))
    expected = t.state_dict()
    assert sorted(back) == sorted(expected)
    for k, v in expected.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
    dst = jaxnets.create_model(name, param_dtype=jnp.bfloat16, rngs=nnx.Rngs(seed + 2))
    checkpoint.load_flax(checkpoint.save_flax(tmp_path / "twin.flax.st", f), dst)
    for (p, a), (_, b) in zip(
        nnx.to_flat_state(nnx.state(f)), nnx.to_flat_state(nnx.state(dst)), strict=True
    ):
        assert a[...].dtype == b[...].dtype, p
        np.testing.assert_array_equal(
            np.atleast_1d(a[...]).view(np.uint8),
            np.atleast_1d(b[...]).view(np.uint8),
            err_msg=str(p),
        )


def test_bfloat16_file_with_wrong_byte_count_is_corrupt(tmp_path):
    path = checkpoint.write_safetensors(
        tmp_path / "w.safetensors", {"a": np.zeros((2, 3), jnp.bfloat16)}
    )
    buf = bytearray(path.read_bytes())
    buf = buf.replace(b'"shape":[2,3]', b'"shape":[3,3]')  # same header length, 6 more bytes
    path.write_bytes(bytes(buf))
    with pytest.raises(checkpoint.CheckpointError, match=r"'a' covers 12 bytes.*needs 18"):
        checkpoint.read_safetensors(path)


@pytest.mark.parametrize("layout", ["torch", "flax"])
def test_weights_load_into_an_abstract_twin(layout, seed, tmp_path):
    # nnx.eval_shape builds a twin without initialising it: the cheap way to load weights
    src = jaxnets.create_model("batchnorm_mlp", rngs=nnx.Rngs(seed))
    save, load = {
        "torch": (checkpoint.save_torch_layout, checkpoint.load_torch_layout),
        "flax": (checkpoint.save_flax, checkpoint.load_flax),
    }[layout]
    path = save(tmp_path / "w.safetensors", src)
    abstract = nnx.eval_shape(lambda: jaxnets.create_model("batchnorm_mlp"))
    load(path, abstract)
    for (p, a), (_, b) in zip(
        nnx.to_flat_state(nnx.state(src)), nnx.to_flat_state(nnx.state(abstract)), strict=True
    ):
        assert isinstance(b[...], jax.Array), p
        np.testing.assert_array_equal(np.asarray(a[...]), np.asarray(b[...]), err_msg=str(p))


# ---- atomic writes -------------------------------------------------------------------------


def _litter(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_failed_rename_leaves_previous_file_and_no_temp(tmp_path, monkeypatch):
    f = jaxnets.create_model("xor_net")
    path = checkpoint.save_flax(tmp_path / "w.safetensors", f)
    before = path.read_bytes()
    g = jaxnets.create_model("xor_net", rngs=nnx.Rngs(5))

    def crash(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save_flax(path, g)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _litter(tmp_path) == []
    checkpoint.load_flax(path, g)  # still a valid file


def test_exception_while_writing_leaves_previous_file_and_no_temp(tmp_path):
    path = checkpoint.atomic_write_bytes(tmp_path / "blob.bin", b"old")
    with pytest.raises(RuntimeError, match="interrupted"), checkpoint.atomic_writer(path) as fh:
        fh.write(b"new, half written")
        raise RuntimeError("interrupted")
    assert path.read_bytes() == b"old"
    assert _litter(tmp_path) == []


def test_new_file_gets_normal_permissions(tmp_path):
    path = checkpoint.atomic_write_bytes(tmp_path / "blob.bin", b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0o600


_KILL_DURING_SAVE = """
import os, signal, sys
from jaxnets import checkpoint
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # die after writing, before rename
checkpoint.atomic_write_bytes(sys.argv[1], b"new" * 1_000_000)
"""


def test_process_killed_mid_save_leaves_previous_file(tmp_path):
    path = tmp_path / "w.safetensors"
    checkpoint.save_flax(path, jaxnets.create_model("xor_net"))
    before = path.read_bytes()
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_DURING_SAVE, str(path)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert path.read_bytes() == before
    checkpoint.load_flax(path, jaxnets.create_model("xor_net"))


# ---- resume exactly ------------------------------------------------------------------------

# A training loop as a user writes one: BatchNorm MLP (parameters AND running statistics),
# Adam (moment estimates and a step counter), shuffled batches per epoch, Gaussian input
# noise from a numpy Generator (RNG state), a checkpoint after every chunk of 4 steps holding
# everything needed to continue: state, epoch, position in the epoch and the RNG state.
_TRAIN = """
import os, sys, time
import numpy as np
from flax import nnx
from jaxnets import create_model, data, optim
from jaxnets.checkpoint import check_finite_losses, load_run, save_run
from jaxnets.training.trainer import Trainer

mode, ckpt, out = sys.argv[1], sys.argv[2], sys.argv[3]
pace = float(os.environ.get("JAXNETS_TEST_PACE", "0"))
SEED, EPOCHS, N, BATCH, CHUNK, F = 7, 4, 96, 8, 4, 6
X, Y = data.random_classification(N, F, 3, seed=SEED)


def train():
    model = create_model("batchnorm_mlp", in_features=F, hidden_size1=8, hidden_size2=8,
                         output_size=3, rngs=nnx.Rngs(SEED))
    trainer = Trainer(model, optim.adam(1e-2), "cross_entropy")
    if mode == "resume":
        state, meta = load_run(ckpt, trainer)
        epoch, pos = meta["epoch"], meta["position"]
        rng = np.random.default_rng()
        rng.bit_generator.state = meta["rng_state"]
        print("resumed", int(state.step), flush=True)
    else:
        state, epoch, pos, rng = trainer.init(), 0, 0, np.random.default_rng(SEED)
    local = np.arange(CHUNK * BATCH).reshape(CHUNK, BATCH)
    while epoch < EPOCHS:
        order = data.epoch_batches(N, BATCH, seed=SEED, epoch=epoch)
        idx = order[pos : pos + CHUNK].reshape(-1)
        xs = X[idx] + 0.05 * rng.standard_normal((len(idx), F)).astype(np.float32)
        first = int(state.step)
        state, losses = trainer.run_epoch(state, xs, Y[idx], local)
        check_finite_losses(losses, first)
        pos += CHUNK
        if pos >= len(order):
            epoch, pos = epoch + 1, 0
        meta = {"epoch": epoch, "position": pos, "seed": SEED, "rng_state": rng.bit_generator.state}
        save_run(ckpt, trainer, state, meta=meta)
        print("saved", int(state.step), flush=True)
        time.sleep(pace)
    return trainer, state, meta


trainer, state, meta = train()
save_run(out, trainer, state, meta=meta)
if mode == "twice":  # the same seed again, from scratch, in the same process
    trainer, state, meta = train()
    save_run(out + ".again", trainer, state, meta=meta)
print("done", flush=True)
"""
_TOTAL_STEPS = 4 * (96 // 8)


def _child(args: list[str], tmp_path: Path, pace: float = 0.0) -> subprocess.Popen:
    script = tmp_path / "train_loop.py"
    script.write_text(textwrap.dedent(_TRAIN))
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAXNETS_TEST_PACE": str(pace)}
    if backend_name() == "gpu":
        # XLA:GPU may reduce with atomics in a run-dependent order; bit-identical runs on a GPU
        # need its deterministic mode, as torch needs use_deterministic_algorithms (docs/testing.md)
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_gpu_deterministic_ops=true".strip()
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_files_identical(a: Path, b: Path) -> None:
    arrays_a, meta_a = checkpoint.read_safetensors(a)
    arrays_b, meta_b = checkpoint.read_safetensors(b)
    assert meta_a["jaxnets_meta"] == meta_b["jaxnets_meta"]
    assert sorted(arrays_a) == sorted(arrays_b)
    for k in arrays_a:
        assert arrays_a[k].dtype == arrays_b[k].dtype, k
        assert arrays_a[k].tobytes() == arrays_b[k].tobytes(), f"{k} differs"
    assert meta_a["jaxnets_sha256"] == meta_b["jaxnets_sha256"]


def test_killed_run_resumes_bit_identical(tmp_path):
    procs: list[subprocess.Popen] = []
    try:
        # A: left alone, and the same seed a second time.
        ref = _child(["twice", str(tmp_path / "a.ckpt"), str(tmp_path / "a.final")], tmp_path)
        procs.append(ref)
        # B: SIGKILL-ed part-way through the second epoch.
        b_args = ["fresh", str(tmp_path / "b.ckpt"), str(tmp_path / "b.final")]
        victim = _child(b_args, tmp_path, pace=0.2)
        procs.append(victim)
        killed_after = None
        assert victim.stdout is not None
        for line in victim.stdout:
            if line.startswith("saved") and int(line.split()[1]) >= 16:
                killed_after = int(line.split()[1])
                os.kill(victim.pid, signal.SIGKILL)
                break
        _, err_b = victim.communicate(timeout=120)
        assert killed_after is not None, err_b
        assert victim.returncode == -signal.SIGKILL
        assert not (tmp_path / "b.final").exists()
        # C: a new process resumes from what B left and finishes.
        resumed = _child(["resume", *b_args[1:]], tmp_path)
        procs.append(resumed)
        out_c, err_c = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, err_c
        start = int(out_c.split("resumed")[1].split()[0])
        assert killed_after <= start < _TOTAL_STEPS
        _, err_a = ref.communicate(timeout=300)
        assert ref.returncode == 0, err_a
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
    _run_files_identical(tmp_path / "a.final", tmp_path / "a.final.again")  # same seed twice
    _run_files_identical(tmp_path / "a.final", tmp_path / "b.final")  # killed + resumed
    arrays, _ = checkpoint.read_safetensors(tmp_path / "b.final")
    assert int(arrays["step"]) == _TOTAL_STEPS


def test_save_run_round_trip_in_process(tmp_path, np_rng):
    model = jaxnets.create_model("batchnorm_mlp", in_features=5, hidden_size1=4, hidden_size2=4)
    trainer = Trainer(model, optim.sgd(0.1, momentum=0.9), "cross_entropy", donate=False)
    x = np_rng.standard_normal((8, 5)).astype(np.float32)
    y = np_rng.integers(0, 10, 8)
    state, _ = trainer.step(trainer.init(), x, y)
    meta = {"epoch": 2, "position": 3, "rng": np.random.default_rng(1).bit_generator.state}
    path = checkpoint.save_run(tmp_path / "run.safetensors", trainer, state, meta=meta)
    restored, meta2 = checkpoint.load_run(path, trainer)
    assert meta2 == meta
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The restored state trains on exactly as the original.
    s1, l1 = trainer.step(state, x, y)
    s2, l2 = trainer.step(restored, x, y)
    assert float(l1) == float(l2)
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
