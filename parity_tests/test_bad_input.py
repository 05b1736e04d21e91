"""The bad-input table of docs/bad_input.md, one test per row.

Each row asserts the error type, that the message names the cause AND the fix, and that every
file and the model are exactly as they were before the call.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

import jaxnets
from jaxnets import checkpoint, convert, data, optim
from jaxnets.training.trainer import Trainer
from torchref.checkpoint import load_torch_file


def _model_snapshot(model: nnx.Module) -> list[tuple[tuple, np.ndarray]]:
    return [(p, np.array(v[...], copy=True)) for p, v in nnx.to_flat_state(nnx.state(model))]


def _assert_model_unchanged(model: nnx.Module, snapshot: list) -> None:
    now = _model_snapshot(model)
    assert [p for p, _ in now] == [p for p, _ in snapshot]
    for (p, a), (_, b) in zip(now, snapshot, strict=True):
        assert a.dtype == b.dtype, p
        np.testing.assert_array_equal(a, b, err_msg=str(p))


def _files(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def _raises(exc_type: type, cause: str, fix: str, fn, *args, **kwargs) -> str:
    """Call ``fn``; assert it raises ``exc_type`` whose message matches both regexes."""
    with pytest.raises(exc_type) as err:
        fn(*args, **kwargs)
    msg = str(err.value)
    assert re.search(cause, msg, re.S), f"cause {cause!r} not named in: {msg}"
    assert re.search(fix, msg, re.S), f"fix {fix!r} not named in: {msg}"
    return msg


_MLP = {"in_features": 6, "hidden_sizes": (5,), "out_features": 3}


@pytest.fixture
def mlp() -> nnx.Module:
    return jaxnets.create_model("mlp", **_MLP)


# ---- inputs --------------------------------------------------------------------------------


def test_wrong_input_shape(mlp):
    snap = _model_snapshot(mlp)
    x = np.zeros((4, 5), np.float32)
    _raises(ValueError, r"expects input of shape \(N, 6\), got \(4, 5\)", r"flatten", mlp, x)
    _assert_model_unchanged(mlp, snap)


def test_nchw_given_to_nhwc_twin():
    model = jaxnets.create_model("lenet")
    snap = _model_snapshot(model)
    x = np.zeros((2, 1, 32, 32), np.float32)
    _raises(ValueError, r"NCHW", r"x\.transpose\(0, 2, 3, 1\)", model, x)
    _assert_model_unchanged(model, snap)


@pytest.mark.parametrize("name", ["mlp", "lenet", "batchnorm_mlp"])
def test_input_that_is_not_an_array(name):
    # a list reached the model through Trainer.predict's jit as a list of tracers and failed
    # with "'list' object has no attribute 'dtype'"
    model = jaxnets.create_model(name)
    trainer = Trainer(model, optim.sgd(0.1), "cross_entropy")
    x = [[0.0] * 784]
    for call in (lambda: model(x), lambda: trainer.predict(trainer.init(), x)):
        _raises(TypeError, r"expects an array, got list", r"jnp\.asarray\(x", call)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.bool_])
def test_integer_input_dtype(dtype):
    model = jaxnets.create_model("lenet")
    snap = _model_snapshot(model)
    x = np.zeros((2, 32, 32, 1), dtype)
    _raises(TypeError, r"floating-point input, got dtype", r"normalize_mnist|astype", model, x)
    _assert_model_unchanged(model, snap)


@pytest.mark.parametrize("impl", ["auto", "im2col", "xla"])
@pytest.mark.parametrize(
    ("shape", "fix"),
    [
        ((2, 3, 8, 8), r"NCHW layout: transpose it with x\.transpose\(0, 2, 3, 1\)"),
        ((2, 8, 8, 5), r"give it NHWC input with 3 channels"),
    ],
    ids=["nchw", "channels"],
)
def test_conv2d_input_of_other_channels(impl, shape, fix):
    # the layer "Port your own model" builds on: its own message, not a reshape error from
    # inside im2col or lax's feature-dimension arithmetic
    conv = jaxnets.nn.Conv2d(3, 4, 3, rngs=nnx.Rngs(0), impl=impl)
    cause = rf"Conv2d: the input {re.escape(str(shape))} has {shape[3]} channels .*takes 3"
    x = jnp.ones(shape)
    _raises(ValueError, cause, fix, conv, x)
    _raises(ValueError, cause, fix, jaxnets.fast.conv2d_max_pool2d, conv, x)


@pytest.mark.parametrize(
    ("shape", "kwargs", "cause", "fix"),
    [
        ((2, 4, 4, 1), {"kernel_size": 0}, "kernel_size must be positive", "1 or more"),
        ((2, 4, 4, 1), {"kernel_size": 2.0}, "kernel_size must be an int or a tuple", "2 ints"),
        ((2, 4, 4, 1), {"kernel_size": 2, "stride": -1}, "stride must be positive", "1 or more"),
        ((2, 4, 4, 1), {"kernel_size": 3, "padding": 2}, "at most half the kernel", r"\(3, 3\)"),
        ((2, 3, 3, 1), {"kernel_size": 4}, r"4x4 window .*does not fit the input's 3x3",
         "smaller kernel_size"),
        ((3, 3), {"kernel_size": 2}, r"non-empty \(N, H, W, C\) or unbatched \(H, W, C\)",
         r"got shape \(3, 3\)"),
    ],
    ids=["zero", "float", "stride", "padding", "too-small", "2d"],
)  # fmt: skip
def test_max_pool2d_bad_window_or_input(shape, kwargs, cause, fix):
    # k=0 divided by zero; a window larger than the input gave an empty array (torch raises)
    _raises(ValueError, cause, fix, jaxnets.nn.max_pool2d, jnp.ones(shape), **kwargs)


# ---- weights -------------------------------------------------------------------------------


def _torch_layout_file(tmp_path: Path, arrays: dict) -> Path:
    return checkpoint.write_safetensors(tmp_path / "w.safetensors", arrays)


def test_missing_weights(mlp, tmp_path):
    sd = convert.state_dict(
        jaxnets.create_model("mlp", in_features=6, hidden_sizes=(5,), out_features=3)
    )
    del sd["layers.1.bias"]
    path = _torch_layout_file(tmp_path, sd)
    snap, files = _model_snapshot(mlp), _files(tmp_path)
    _raises(
        convert.StateDictError,
        r"missing key 'layers\.1\.bias'",
        r"Fix: build the model with the architecture and config",
        checkpoint.load_torch_layout,
        path,
        mlp,
    )
    _assert_model_unchanged(mlp, snap)
    assert _files(tmp_path) == files


def test_unexpected_weights(mlp, tmp_path):
    sd = convert.state_dict(mlp)
    sd = {k: v + 1 for k, v in sd.items()}  # would change the model if anything were written
    sd["layers.2.weight"] = np.zeros((3, 3), np.float32)
    path = _torch_layout_file(tmp_path, sd)
    snap, files = _model_snapshot(mlp), _files(tmp_path)
    _raises(
        convert.StateDictError,
        r"unexpected key 'layers\.2\.weight'",
        r"Fix: .*strict=False",
        checkpoint.load_torch_layout,
        path,
        mlp,
    )
    _assert_model_unchanged(mlp, snap)
    assert _files(tmp_path) == files


def test_misshapen_weights(mlp, tmp_path):
    other = jaxnets.create_model("mlp", in_features=6, hidden_sizes=(7,), out_features=3)
    path = checkpoint.save_torch_layout(tmp_path / "w.safetensors", other)
    snap, files = _model_snapshot(mlp), _files(tmp_path)
    msg = _raises(
        convert.StateDictError,
        r"'layers\.0\.weight': shape \(7, 6\) in the state dict, \(5, 6\) expected",
        r"saved from a MLP.*Fix: the file holds a model of other sizes: build the model with "
        r"the architecture and config",
        checkpoint.load_torch_layout,
        path,
        mlp,
    )
    # one fix, and not strict=False, which skips missing keys but still refuses shapes
    assert msg.count("Fix:") == 1 and "strict=False" not in msg, msg
    _assert_model_unchanged(mlp, snap)
    assert _files(tmp_path) == files


def test_wrong_dtype_weights(mlp, tmp_path):
    sd = {k: v.astype(np.float64) for k, v in convert.state_dict(mlp).items()}
    path = _torch_layout_file(tmp_path, {k: v * 2 for k, v in sd.items()})
    snap, files = _model_snapshot(mlp), _files(tmp_path)
    _raises(
        convert.StateDictError,
        r"dtype float64 in the state dict, float32 expected",
        r"astype\(np\.float32\).*param_dtype=jnp\.float64",  # the file's dtype, not the model's
        checkpoint.load_torch_layout,
        path,
        mlp,
    )
    _assert_model_unchanged(mlp, snap)
    assert _files(tmp_path) == files


def test_wrong_dtype_weights_flax_layout(mlp, tmp_path):
    f64 = jaxnets.create_model(
        "mlp", in_features=6, hidden_sizes=(5,), out_features=3, param_dtype=jnp.float64
    )
    path = checkpoint.save_flax(tmp_path / "w.safetensors", f64)
    snap, files = _model_snapshot(mlp), _files(tmp_path)
    _raises(
        convert.StateDictError,
        r"'layers\.0\.kernel': dtype float64 in the file, float32 expected",
        r"param_dtype=jnp\.float64",
        checkpoint.load_flax,
        path,
        mlp,
    )
    _assert_model_unchanged(mlp, snap)
    assert _files(tmp_path) == files


@pytest.mark.parametrize("layout", ["torch", "flax"])
def test_batch_counter_too_large_for_the_twin(layout, tmp_path):
    # torch counts batches in int64; the twin's counter is int32 without x64: a larger value
    # would wrap around (2**31 + 5 became -2147483643)
    with jax.enable_x64(False):  # the suite runs with x64 on, which makes the counter int64
        bn = jaxnets.create_model("batchnorm_mlp", in_features=4, hidden_size1=3, hidden_size2=3)
    assert bn.bn1.num_batches_tracked[...].dtype == jnp.int32
    if layout == "torch":
        sd = convert.state_dict(bn)
        sd["bn1.num_batches_tracked"] = np.array(2**31 + 5, np.int64)
        path = _torch_layout_file(tmp_path, sd)
        load, key = checkpoint.load_torch_layout, "bn1.num_batches_tracked"
    else:
        arrays = {k: np.asarray(v[...]) for k, v in checkpoint._flax_variables(bn).items()}
        key = next(k for k in arrays if k.endswith("num_batches_tracked"))
        arrays[key] = np.array(2**31 + 5, np.int64)
        path = checkpoint.write_safetensors(
            tmp_path / "w.safetensors", arrays, {"jaxnets_format": "flax"}
        )
        load = checkpoint.load_flax
    snap, files = _model_snapshot(bn), _files(tmp_path)
    _raises(
        convert.StateDictError,
        rf"'{re.escape(key)}': value 2147483653 does not fit the twin's int32 counter",
        r"jax_enable_x64",
        load,
        path,
        bn,
    )
    _assert_model_unchanged(bn, snap)
    assert _files(tmp_path) == files


@pytest.mark.parametrize("fn", ["save_torch_layout", "load_torch_layout", "save_flax", "load_flax"])
def test_checkpoint_functions_given_no_model(mlp, tmp_path, fn):
    path = tmp_path / "w.safetensors"
    checkpoint.save_flax(path, mlp) if fn == "load_flax" else checkpoint.save_torch_layout(
        path, mlp
    )
    files = _files(tmp_path)
    call = getattr(checkpoint, fn)
    _raises(TypeError, r"model must be an nnx\.Module, got NoneType", fn, call, path, None)
    _raises(
        TypeError, "got PosixPath", r"arguments look swapped: the path comes first", call, mlp, path
    )
    assert _files(tmp_path) == files


# ---- files ---------------------------------------------------------------------------------


def _saved(tmp_path: Path) -> Path:
    other = jaxnets.create_model(
        "mlp", in_features=6, hidden_sizes=(5,), out_features=3, rngs=nnx.Rngs(9)
    )
    return checkpoint.save_torch_layout(tmp_path / "w.safetensors", other)


@pytest.mark.parametrize("keep", [4, 60, -7])
def test_truncated_safetensors(mlp, tmp_path, keep):
    good = _saved(tmp_path).read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(good[:keep])
    snap, files = _model_snapshot(mlp), _files(tmp_path)
    _raises(
        checkpoint.CheckpointError,
        r"bad\.safetensors: truncated",
        r"restore it from a backup or save it again",
        checkpoint.load_torch_layout,
        bad,
        mlp,
    )
    _assert_model_unchanged(mlp, snap)
    assert _files(tmp_path) == files


def test_corrupt_safetensors_data(mlp, tmp_path):
    good = bytearray(_saved(tmp_path).read_bytes())
    good[-5] ^= 0x01  # one flipped bit in the tensor data: framing intact
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(good))
    snap, files = _model_snapshot(mlp), _files(tmp_path)
    _raises(
        checkpoint.CheckpointError,
        r"corrupt: the tensor data does not match the SHA-256",
        r"restore it from a backup or save it again",
        checkpoint.load_torch_layout,
        bad,
        mlp,
    )
    _assert_model_unchanged(mlp, snap)
    assert _files(tmp_path) == files


def test_corrupt_safetensors_header(mlp, tmp_path):
    good = _saved(tmp_path).read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(good[:8] + b"#" + good[9:])  # the JSON header no longer parses
    snap = _model_snapshot(mlp)
    _raises(
        checkpoint.CheckpointError,
        r"corrupt safetensors header",
        r"restore it from a backup or save it again",
        checkpoint.load_torch_layout,
        bad,
        mlp,
    )
    _assert_model_unchanged(mlp, snap)


def test_pt_file_given_to_safetensors_loader(mlp, tmp_path):
    path = tmp_path / "w.safetensors"  # a torch.save zip under a misleading name
    torch.save({"layers.0.weight": torch.zeros(5, 6)}, path)
    snap = _model_snapshot(mlp)
    _raises(
        checkpoint.CheckpointError,
        r"not a safetensors file.*torch\.save zip",
        r"torchref\.checkpoint\.load_torch_file",
        checkpoint.load_torch_layout,
        path,
        mlp,
    )
    _assert_model_unchanged(mlp, snap)


@pytest.mark.parametrize(
    ("saver", "loader", "fix"),
    [
        ("save_flax", "load_torch_layout", "load_flax"),
        ("save_torch_layout", "load_flax", "load_torch_layout"),
    ],
)
def test_wrong_kind_of_weights_file(mlp, tmp_path, saver, loader, fix):
    path = getattr(checkpoint, saver)(tmp_path / "w.safetensors", mlp)
    target = jaxnets.create_model(
        "mlp", in_features=6, hidden_sizes=(5,), out_features=3, rngs=nnx.Rngs(4)
    )
    snap, files = _model_snapshot(target), _files(tmp_path)
    _raises(
        checkpoint.CheckpointError,
        r"this file holds weights in",
        rf"Fix: read it with jaxnets\.checkpoint\.{fix}",
        getattr(checkpoint, loader),
        path,
        target,
    )
    _assert_model_unchanged(target, snap)
    assert _files(tmp_path) == files


def test_missing_file(mlp, tmp_path):
    snap = _model_snapshot(mlp)
    _raises(
        checkpoint.CheckpointError,
        r"nope\.safetensors: no such file",
        r"check the path",
        checkpoint.load_flax,
        tmp_path / "nope.safetensors",
        mlp,
    )
    _assert_model_unchanged(mlp, snap)
    assert list(tmp_path.iterdir()) == []


def test_pickle_with_code(tmp_path):
    marker = tmp_path / "code_ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch '{marker}'",))

    path = tmp_path / "model.pth"
    path.write_bytes(pickle.dumps({"weight": [1.0], "bias": Payload()}, protocol=2))
    files = _files(tmp_path)
    _raises(
        checkpoint.CheckpointError,
        r"refused.*GLOBAL posix\.system.*nothing in it ran",
        r"re-save only the weights.*state_dict\(\)",
        load_torch_file,
        path,
    )
    assert not marker.exists()
    assert _files(tmp_path) == files


def test_stale_run_file(tmp_path):
    model = jaxnets.create_model("mlp", in_features=6, hidden_sizes=(5,), out_features=3)
    old = Trainer(model, optim.sgd(0.1, momentum=0.9), "cross_entropy")
    path = checkpoint.save_run(tmp_path / "run.safetensors", old, old.init(), meta={"epoch": 1})
    files = _files(tmp_path)
    bigger = jaxnets.create_model("mlp", in_features=6, hidden_sizes=(8,), out_features=3)
    _raises(
        checkpoint.CheckpointError,
        r"saved from a different model or optimizer.*params: .*saved layers\.0\.kernel: "
        r"float32\[6, 5\], expected layers\.0\.kernel: float32\[6, 8\]",
        r"Fix: build the model and optimizer with the settings the run was started with",
        checkpoint.load_run,
        path,
        Trainer(bigger, optim.sgd(0.1, momentum=0.9), "cross_entropy"),
    )
    _raises(
        checkpoint.CheckpointError,
        r"optimizer state structure: saved .*TraceState.*this trainer has .*ScaleByAdamState",
        r"or start a new run",
        checkpoint.load_run,
        path,
        Trainer(model, optim.adam(0.1), "cross_entropy"),
    )
    assert _files(tmp_path) == files


def test_run_meta_not_json(tmp_path):
    model = jaxnets.create_model("xor_net")
    trainer = Trainer(model, optim.sgd(0.1), "mse")
    path = checkpoint.save_run(tmp_path / "run.safetensors", trainer, trainer.init(), meta={})
    files = _files(tmp_path)
    _raises(
        TypeError,
        r"meta must be JSON-serialisable.*ndarray",
        r"\.tolist\(\).*nothing was written",
        checkpoint.save_run,
        path,
        trainer,
        trainer.init(),
        meta={"order": np.arange(3)},
    )
    assert _files(tmp_path) == files


def test_save_into_missing_folder(mlp, tmp_path):
    target = tmp_path / "no" / "such" / "dir" / "w.safetensors"
    _raises(
        FileNotFoundError,
        r"the folder .*dir does not exist",
        r"create it first",
        checkpoint.save_flax,
        target,
        mlp,
    )
    assert list(tmp_path.iterdir()) == []


# ---- data files ----------------------------------------------------------------------------


def _idx(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    head = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    return head + payload


def test_truncated_idx_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(_idx(0x00000803, (3, 28, 28), bytes(3 * 28 * 28))[:-100])
    files = _files(tmp_path)
    _raises(data.DataError, r"truncated", r"re-download", data.read_idx, path)
    assert _files(tmp_path) == files


def test_idx_file_with_wrong_magic(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(_idx(0x12345678, (3,), bytes(3)))
    files = _files(tmp_path)
    _raises(
        data.DataError,
        r"not an IDX file: magic number 0x12345678",
        r"re-download",
        data.read_idx,
        path,
    )
    assert _files(tmp_path) == files


# ---- training ------------------------------------------------------------------------------


def test_nan_loss_fails_fast_with_the_step(mlp, tmp_path, np_rng):
    trainer = Trainer(mlp, optim.sgd(0.1), "cross_entropy")
    state = trainer.init()
    good = checkpoint.save_run(tmp_path / "run.safetensors", trainer, state, meta={"epoch": 0})
    files, snap = _files(tmp_path), _model_snapshot(mlp)
    x = np_rng.standard_normal((32, 6)).astype(np.float32)
    y = np_rng.integers(0, 3, 32)
    x[13] = np.nan  # example 13 is in the second batch of idx (rows 8-15)
    idx = np.arange(32).reshape(4, 8)
    state, _ = trainer.run_epoch(state, x[:8], y[:8], np.zeros((2, 8), np.int64))  # 2 good steps
    first = int(state.step)
    state, losses = trainer.run_epoch(state, x, y, idx)
    msg = _raises(
        checkpoint.NonFiniteLossError,
        r"the training loss is NaN at step 3 ",
        r"Fix: resume from the last checkpoint saved before step 3",
        checkpoint.check_finite_losses,
        losses,
        first,
    )
    with pytest.raises(checkpoint.NonFiniteLossError) as err:
        checkpoint.check_finite_losses(losses, first)
    assert err.value.step == 3 and np.isnan(err.value.loss), msg
    # The loop stopped before saving: the last good checkpoint and the model are untouched.
    assert _files(tmp_path) == files
    _assert_model_unchanged(mlp, snap)
    assert str(good).endswith("run.safetensors")


def test_inf_loss_single_value():
    with pytest.raises(checkpoint.NonFiniteLossError, match=r"loss is inf at step 41") as err:
        checkpoint.check_finite_losses(jnp.asarray(jnp.inf), 41)
    assert err.value.step == 41
    checkpoint.check_finite_losses(np.array([0.5, 0.25]), 0)  # finite: no error


@pytest.mark.parametrize("label", [3, -1])
def test_class_label_out_of_range_in_a_jitted_step(mlp, np_rng, label):
    # torch raises; a jitted loss cannot, so it must at least not look fine (-1 would otherwise
    # be read as the last class), and the NaN check then names labels as a cause
    trainer = Trainer(mlp, optim.sgd(0.1), "cross_entropy")
    x = np_rng.standard_normal((8, 6)).astype(np.float32)
    y = np_rng.integers(0, 3, 8)
    y[5] = label
    _, loss = trainer.step(trainer.init(), x, y)
    _raises(
        checkpoint.NonFiniteLossError,
        "loss is NaN at step 0",
        r"class labels outside 0\.\.C-1",
        checkpoint.check_finite_losses,
        loss,
        0,
    )


_IDX = np.arange(32).reshape(4, 8)


@pytest.mark.parametrize(
    ("idx", "n_targets", "exc", "cause", "fix"),
    [
        (_IDX + 100, 32, ValueError, r"from 100 to 131, but the data set has 32", "0 to 31"),
        (_IDX - 1, 32, ValueError, r"indices from -1 to 30", r"epoch_batches\(32, "),
        (_IDX, 16, ValueError, r"differ in length: \(32, 6\) vs \(16,\)", "one target per"),
        (_IDX.ravel(), 32, ValueError, r"shape \(steps, batch_size\), got \(32,\)", "epoch_b"),
        (_IDX.astype(np.float32), 32, TypeError, "integer indices, got dtype float32", "astype"),
    ],
    ids=["index-too-large", "index-negative", "targets-short", "idx-1d", "idx-float"],
)
def test_run_epoch_checks_its_data(mlp, np_rng, idx, n_targets, exc, cause, fix):
    # Inside jit a gather clamps an index out of range: the epoch would train on wrong rows.
    trainer = Trainer(mlp, optim.sgd(0.1), "cross_entropy")
    state = trainer.init()
    before = [np.array(a) for a in state.params]
    x = np_rng.standard_normal((32, 6)).astype(np.float32)
    y = np_rng.integers(0, 3, n_targets)
    _raises(exc, cause, fix, trainer.run_epoch, state, x, y, idx)
    _raises(exc, cause, fix, trainer.run_epoch, state, x, y, jnp.asarray(idx))
    # checked before the call: the state was not donated and still holds the same values
    for a, b in zip(state.params, before, strict=True):
        np.testing.assert_array_equal(np.asarray(a), b)
    trainer.run_epoch(state, x, np_rng.integers(0, 3, 32), _IDX)  # the same state still trains


def test_write_back_into_a_model_of_other_sizes(mlp):
    trainer = Trainer(mlp, optim.sgd(0.1), "cross_entropy")
    other = jaxnets.create_model("mlp", **{**_MLP, "hidden_sizes": (7,)})
    snap = _model_snapshot(other)
    _raises(
        ValueError,
        r"layers\.0\.kernel: \(6, 5\) float32 in the state, \(6, 7\) float32 in the model",
        r"nothing was copied.*architecture and sizes",
        trainer.write_back,
        trainer.init(),
        other,
    )
    _assert_model_unchanged(other, snap)


def test_state_of_another_trainer(mlp):
    trainer = Trainer(mlp, optim.adam(1e-3), "cross_entropy")
    other = Trainer(jaxnets.create_model("mlp", **{**_MLP, "hidden_sizes": (7,)}), optim.adam(1e-3))
    snap = _model_snapshot(mlp)
    for fn in (trainer.optimizer_state_dict, trainer.write_back):
        _raises(
            ValueError,
            r"layers\.0\.bias: \(7,\) float32 in the state, \(5,\) float32 in the model",
            r"a state made by this trainer's init\(\) or step\(\)",
            fn,
            other.init(),
        )
    _assert_model_unchanged(mlp, snap)


def test_diverged_state_is_not_saved_over_a_good_run(mlp, tmp_path):
    trainer = Trainer(mlp, optim.sgd(0.1), "cross_entropy")
    good = trainer.init()
    checkpoint.save_run(tmp_path / "run.safetensors", trainer, good, meta={"epoch": 1})
    files = _files(tmp_path)
    bad = good._replace(params=[p.at[0].set(np.inf) for p in good.params])
    _raises(
        checkpoint.NonFiniteStateError,
        r"state at step 0 holds NaN or inf in params\.0 \(layers\.0\.bias\)",
        r"nothing was written.*Fix: resume from the last run saved there",
        checkpoint.save_run,
        tmp_path / "run.safetensors",
        trainer,
        bad,
        meta={"epoch": 2},
    )
    assert _files(tmp_path) == files


def test_written_back_model_survives_later_steps(mlp, np_rng):
    # write_back used to hand the model the state's own buffers, which the next step donated:
    # the model then held deleted arrays ("Array has been deleted" on its next call)
    trainer = Trainer(mlp, optim.sgd(0.1), "cross_entropy")
    x = np_rng.standard_normal((8, 6)).astype(np.float32)
    y = np_rng.integers(0, 3, 8)
    state, _ = trainer.step(trainer.init(), x, y)
    trainer.write_back(state)
    snap = _model_snapshot(mlp)
    state, _ = trainer.step(state, x, y)
    _assert_model_unchanged(mlp, snap)
    mlp(jnp.asarray(x))  # usable
    trainer.init()  # reads the model


def test_unknown_compiler_option_is_refused_at_construction(mlp):
    _raises(
        ValueError,
        r"XLA refuses compiler_options \{'xla_no_such_option': 1\}.*No such compile option",
        r"options this jaxlib knows",
        Trainer,
        mlp,
        optim.sgd(0.1),
        compiler_options={"xla_no_such_option": 1},
    )


@pytest.mark.parametrize(
    ("optimizer", "fix"),
    [(optim.sgd, r"sgd builds one: call it"), (None, r"e\.g\. jaxnets\.optim\.sgd")],
    ids=["builder-not-called", "none"],
)
def test_trainer_without_an_optimizer(mlp, optimizer, fix):
    _raises(TypeError, "must be an optax.GradientTransformation", fix, Trainer, mlp, optimizer)


# ---- names and configs ---------------------------------------------------------------------


def test_unknown_model_name():
    _raises(
        jaxnets.UnknownModelError,
        r"unknown model 'lenett'",
        r"Did you mean 'lenet'\?.*Known models: .*mlp",
        jaxnets.create_model,
        "lenett",
    )


@pytest.mark.parametrize("name", ["resnet18", "resnet", "vgg16", "transformer"])
def test_a_model_not_here_suggests_nothing(name):
    """A name that only shares a few letters with a registered one ('resnet18' and 'lenet')
    gets the list of models, not a misleading guess."""
    msg = _raises(
        jaxnets.UnknownModelError,
        f"unknown model '{name}'",
        "Known models: ",
        jaxnets.create_model,
        name,
    )
    assert "Did you mean" not in msg


_WITHOUT_TORCH = """
import sys
sys.modules["torch"] = None  # as if torch were not installed: import torch fails
import torchref  # cheap, and fine without torch
from torchref.precision import set_precision
set_precision("highest", torch_too=False)  # the JAX half needs no torch
try:
    torchref.create_model("lenet")
except ModuleNotFoundError as exc:
    print("refused:", exc)
"""


def test_torchref_without_torch_says_how_to_install(python_process):
    proc = python_process("-c", _WITHOUT_TORCH)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "refused: torchref needs PyTorch" in proc.stdout
    assert "pip install 'torch==2.13.0'" in proc.stdout


@pytest.mark.parametrize(
    ("config", "exc", "cause", "fix"),
    [
        ({"activation": "gelu"}, ValueError, r"activation must be one of", r"'relu', 'sigmoid'"),
        ({"hidden_sizes": (16, 0)}, ValueError, r"hidden_sizes must be a positive", r"\(16, 0\)"),
        ({"hidden": 3}, TypeError, r"unknown config argument\(s\) \['hidden'\]", r"accepts: "),
    ],
    ids=["bad_activation", "zero_width", "unknown_argument"],
)
def test_bad_config_value(config, exc, cause, fix):
    _raises(exc, cause, fix, jaxnets.create_model, "mlp", **config)
