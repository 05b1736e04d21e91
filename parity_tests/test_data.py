"""The data layer: IDX reading and its error messages, MNIST loading, download, preprocessing,
batch order and toy sets. Every file is a tiny one written here; nothing reads the real MNIST
folder or the network."""

from __future__ import annotations

import errno
import gzip
import hashlib
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from jaxnets import data
from jaxnets.data import DataError, idx_bytes, write_idx

CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def tiny_mnist(
    folder: Path, rng: np.random.Generator, *, n: int = 5, split: str = "train", gz: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Write a tiny MNIST split (n images of 28x28) in torchvision's names; return its arrays."""
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    img_name, lbl_name = data.MNIST_FILES[split]
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / img_name, images, gz=gz)
    write_idx(folder / lbl_name, labels, gz=gz)
    return images, labels


# ------------------------------------------------------------------------------------- read_idx


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("dtype", list(CODES), ids=lambda d: d.name)
def test_read_idx_round_trip_every_type_code(tmp_path, np_rng, dtype, gz):
    arr = (np_rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    path = write_idx(tmp_path / "x-idx3", arr, gz=gz)
    out = data.read_idx(path)
    assert out.dtype == dtype and out.dtype.isnative
    assert out.shape == (3, 4, 5)
    np.testing.assert_array_equal(out, arr)
    assert out.flags.writeable  # torch.from_numpy warns (an error here) on read-only arrays


def test_read_idx_big_endian_bytes_on_disk(tmp_path):
    # 0x0102 as a big-endian int16 after the header 00 00 0B 01 | 00 00 00 01
    path = tmp_path / "one"
    path.write_bytes(bytes([0, 0, 0x0B, 1, 0, 0, 0, 1, 0x01, 0x02]))
    np.testing.assert_array_equal(data.read_idx(path), np.array([258], np.int16))


@pytest.mark.parametrize("shape", [(7,), (2, 3), (0, 28, 28), (1, 2, 3, 4)])
def test_read_idx_header_dims(tmp_path, shape):
    arr = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    np.testing.assert_array_equal(data.read_idx(write_idx(tmp_path / "a", arr)), arr)


def test_read_idx_detects_gzip_by_content_not_name(tmp_path):
    arr = np.arange(6, dtype=np.uint8).reshape(2, 3)
    path = tmp_path / "no-suffix"
    path.write_bytes(gzip.compress(idx_bytes(arr)))
    np.testing.assert_array_equal(data.read_idx(path), arr)


@pytest.mark.parametrize(
    ("head", "why"),
    [
        (b"\x01\x00\x08\x01", "0x01000801"),  # first bytes not zero
        (b"\x00\x00\x07\x01", "0x00000701"),  # unknown type code
        (b"\x00\x00\x08\x00", "0x00000800"),  # zero dimensions
    ],
    ids=["nonzero-lead", "bad-type-code", "zero-dims"],
)
def test_read_idx_wrong_magic(tmp_path, head, why):
    path = tmp_path / "bad"
    path.write_bytes(head + b"\x00\x00\x00\x01\x00")
    with pytest.raises(DataError, match="not an IDX file") as err:
        data.read_idx(path)
    assert why in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("cut", [0, 3, 4, 11], ids=["empty", "in-magic", "no-dims", "in-dims"])
def test_read_idx_truncated_header(tmp_path, cut):
    full = idx_bytes(np.zeros((2, 2, 2), np.uint8))  # 16 header bytes
    path = tmp_path / "short"
    path.write_bytes(full[:cut])
    with pytest.raises(DataError, match="truncated IDX header") as err:
        data.read_idx(path)
    assert "re-download" in str(err.value)


def test_read_idx_truncated_data_says_expected_and_found(tmp_path):
    arr = np.zeros((4, 28, 28), np.uint8)
    path = tmp_path / "short-data"
    path.write_bytes(idx_bytes(arr)[:-100])
    with pytest.raises(DataError) as err:
        data.read_idx(path)
    msg = str(err.value)
    assert "truncated" in msg and "4x28x28" in msg
    assert f"expected {4 * 784} bytes" in msg and f"found {4 * 784 - 100}" in msg
    assert "re-download" in msg


def test_read_idx_trailing_bytes(tmp_path):
    path = tmp_path / "long"
    path.write_bytes(idx_bytes(np.zeros(3, np.int32)) + b"\x00")
    with pytest.raises(DataError, match=r"trailing bytes.*expected 12 bytes.*found 13"):
        data.read_idx(path)


def test_read_idx_truncated_gzip_stream(tmp_path):
    buf = gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32)))
    path = tmp_path / "cut.gz"
    path.write_bytes(buf[: len(buf) // 2])
    with pytest.raises(DataError, match=r"gzip stream ends early.*truncated"):
        data.read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found") as err:
        data.read_idx(tmp_path / "nope")
    msg = str(err.value)
    assert "nope" in msg
    # The hint fits a call with an explicit file path, from Python or the scripts alike: the
    # data-folder options (--data-dir, JAXNETS_DATA_DIR) do not apply to it.
    assert "check the path" in msg and "download_mnist(" in msg and "--download" in msg
    assert "--data-dir" not in msg and "JAXNETS_DATA_DIR" not in msg


def test_read_idx_folder_is_not_a_file(tmp_path):
    with pytest.raises(DataError, match="is a folder, not a file"):
        data.read_idx(tmp_path)


# ------------------------------------------------------------------------------------ write_idx


def test_write_idx_missing_folder_names_it_and_leaves_nothing(tmp_path):
    target = tmp_path / "missing" / "x"
    with pytest.raises(FileNotFoundError) as err:
        write_idx(target, np.zeros(3, np.uint8))
    msg = str(err.value)
    assert f"cannot write {target}" in msg
    assert f"the folder {tmp_path / 'missing'} does not exist" in msg and "mkdir" in msg
    assert ".part" not in msg  # not the temporary file's name
    assert err.value.errno == errno.ENOENT
    assert list(tmp_path.iterdir()) == []


def test_write_idx_file_in_place_of_folder(tmp_path):
    (tmp_path / "f").write_bytes(b"keep")
    with pytest.raises(NotADirectoryError, match=r"is a file, not a folder") as err:
        write_idx(tmp_path / "f" / "x", np.zeros(3, np.uint8), gz=True)
    assert str(tmp_path / "f" / "x.gz") in str(err.value) and ".part" not in str(err.value)
    assert [p.name for p in tmp_path.iterdir()] == ["f"]
    assert (tmp_path / "f").read_bytes() == b"keep"


def test_write_idx_failed_write_names_the_target_and_leaves_nothing(tmp_path, monkeypatch):
    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", src)

    monkeypatch.setattr(data.os, "replace", full)
    with pytest.raises(OSError, match=r"cannot write .*x: No space left on device") as err:
        write_idx(tmp_path / "x", np.zeros(3, np.uint8))
    assert ".part" not in str(err.value) and err.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------ load_mnist


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_load_mnist_tiny_files(tmp_path, np_rng, split, gz):
    images, labels = tiny_mnist(tmp_path, np_rng, split=split, gz=gz)
    x, y = data.load_mnist(tmp_path, split=split, verify=False)
    assert x.dtype == np.uint8 and x.shape == (5, 28, 28)
    assert y.dtype == np.int64 and y.shape == (5,)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)


def test_load_mnist_finds_torchvision_layout(tmp_path, np_rng):
    images, _ = tiny_mnist(tmp_path / "MNIST" / "raw", np_rng, split="test")
    x, _ = data.load_mnist(tmp_path, split="test", verify=False)
    np.testing.assert_array_equal(x, images)


def test_load_mnist_verify_checks_raw_counts(tmp_path, np_rng):
    tiny_mnist(tmp_path, np_rng, split="test", n=3)
    with pytest.raises(DataError, match=r"has 10000 entries, this file has 3.*verify=False"):
        data.load_mnist(tmp_path, split="test")


def test_load_mnist_md5_mismatch(tmp_path, np_rng):
    tiny_mnist(tmp_path, np_rng, gz=True)
    with pytest.raises(DataError) as err:
        data.load_mnist(tmp_path, split="train")
    msg = str(err.value)
    assert "train-images-idx3-ubyte.gz" in msg and "MD5 mismatch" in msg
    assert data.MNIST_MD5["train-images-idx3-ubyte.gz"] in msg
    assert "expected 9912422" in msg and "re-download" in msg and "verify=False" in msg
    data.load_mnist(tmp_path, split="train", verify=False)  # the structure itself is fine


def test_load_mnist_md5_match_passes(tmp_path, np_rng, monkeypatch):
    tiny_mnist(tmp_path, np_rng, gz=True)
    for name in data.MNIST_FILES["train"]:
        digest = hashlib.md5((tmp_path / f"{name}.gz").read_bytes()).hexdigest()
        monkeypatch.setitem(data.MNIST_MD5, f"{name}.gz", digest)
    x, _ = data.load_mnist(tmp_path, split="train")  # verify=True: MD5 stands in for counts
    assert x.shape == (5, 28, 28)


def test_load_mnist_missing_file_message(tmp_path):
    with pytest.raises(DataError) as err:
        data.load_mnist(tmp_path / "empty", split="train")
    msg = str(err.value)
    assert "train-images-idx3-ubyte" in msg and str(tmp_path / "empty") in msg
    assert "does not exist" in msg
    # Fixes for both callers: Python (load_mnist/download_mnist) and the example scripts.
    for fix in ("--data-dir", "JAXNETS_DATA_DIR", "--download", "download=True", "download_mnist("):
        assert fix in msg


def test_load_mnist_data_dir_is_a_file(tmp_path, np_rng):
    tiny_mnist(tmp_path, np_rng)
    not_a_folder = tmp_path / "train-images-idx3-ubyte"
    before = not_a_folder.read_bytes()
    for call in (data.load_mnist, data.download_mnist):
        with pytest.raises(DataError) as err:
            call(not_a_folder)
        msg = str(err.value)
        assert f"{not_a_folder} is a file, not a folder" in msg and "does not exist" not in msg
        assert str(tmp_path) in msg and "data_dir" in msg  # names the folder to pass instead
    assert not_a_folder.read_bytes() == before


def test_load_mnist_swapped_files_wrong_magic(tmp_path, np_rng):
    _, labels = tiny_mnist(tmp_path, np_rng)
    write_idx(tmp_path / "train-images-idx3-ubyte", labels)
    with pytest.raises(DataError) as err:
        data.load_mnist(tmp_path, verify=False)
    msg = str(err.value)
    assert "wrong magic number" in msg and "0x00000803" in msg and "0x00000801" in msg


@pytest.mark.parametrize(
    ("images", "labels", "match"),
    [
        (np.zeros((2, 32, 32), np.uint8), np.zeros(2, np.uint8), "must be 28x28"),
        (np.zeros((2, 28, 28), np.uint8), np.zeros(3, np.uint8), "2 images but .* 3 labels"),
        (np.zeros((2, 28, 28), np.uint8), np.array([1, 10], np.uint8), "labels must be 0-9"),
    ],
    ids=["size", "counts", "label-range"],
)
def test_load_mnist_structure_checks(tmp_path, images, labels, match):
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    with pytest.raises(DataError, match=match):
        data.load_mnist(tmp_path, verify=False)


def _bad_magic(folder: Path) -> Path:
    return write_idx(folder / "train-images-idx3-ubyte", idx_bytes(np.zeros(1, np.uint8))[:3])


def _truncated_data(folder: Path) -> Path:
    buf = idx_bytes(np.zeros((2, 28, 28), np.uint8))[:-1]
    return write_idx(folder / "train-images-idx3-ubyte", buf)


def _truncated_gz(folder: Path) -> Path:
    buf = gzip.compress(idx_bytes(np.zeros((2, 28, 28), np.uint8)))
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(buf[:20])
    return path


def _md5_mismatch(folder: Path) -> Path:
    return write_idx(folder / "train-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8), gz=True)


@pytest.mark.parametrize(
    ("make", "verify"),
    [(_bad_magic, False), (_truncated_data, False), (_truncated_gz, False), (_md5_mismatch, True)],
    ids=["truncated-header", "truncated-data", "truncated-gz", "md5"],
)
def test_error_messages_name_the_file(tmp_path, np_rng, make, verify):
    tiny_mnist(tmp_path, np_rng, n=2)
    (tmp_path / "train-images-idx3-ubyte").unlink()
    path = make(tmp_path)
    with pytest.raises(DataError) as err:
        data.load_mnist(tmp_path, verify=verify)
    assert str(path) in str(err.value)


def test_load_mnist_bad_split(tmp_path):
    with pytest.raises(ValueError, match="split must be"):
        data.load_mnist(tmp_path, split="val")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ resolve_data_dir


def test_resolve_data_dir_order(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("JAXNETS_DATA_DIR", raising=False)
    assert data.resolve_data_dir(None) == tmp_path / "home" / ".cache" / "jaxnets" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.resolve_data_dir(None) == tmp_path / "xdg" / "jaxnets" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec: ignore relative
    assert data.resolve_data_dir(None) == tmp_path / "home" / ".cache" / "jaxnets" / "mnist"
    monkeypatch.setenv("JAXNETS_DATA_DIR", str(tmp_path / "env"))
    assert data.resolve_data_dir(None) == tmp_path / "env"
    assert data.resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"
    assert data.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert data.resolve_data_dir("~/x") == tmp_path / "home" / "x"
    assert not (tmp_path / "env").exists()  # resolving creates nothing


def test_load_mnist_uses_env_dir(tmp_path, np_rng, monkeypatch):
    images, _ = tiny_mnist(tmp_path, np_rng)
    monkeypatch.setenv("JAXNETS_DATA_DIR", str(tmp_path))
    np.testing.assert_array_equal(data.load_mnist(verify=False)[0], images)


# ---------------------------------------------------------------------------------- download


class FakeMirror:
    """Stands in for ``data._fetch``: serves given bytes per file name, counts requests."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.urls: list[str] = []

    def __call__(self, url: str, *, timeout: float = 60.0) -> bytes:
        self.urls.append(url)
        return self.files[url.rsplit("/", 1)[1]]


def _served(np_rng, monkeypatch, split="test") -> tuple[FakeMirror, np.ndarray]:
    """A fake mirror with tiny gz files for ``split``, their MD5s patched into MNIST_MD5."""
    images = np_rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    labels = np.array([1, 2, 3], np.uint8)
    files = {}
    for name, arr in zip(data.MNIST_FILES[split], (images, labels), strict=True):
        buf = gzip.compress(idx_bytes(arr), mtime=0)
        files[f"{name}.gz"] = buf
        monkeypatch.setitem(data.MNIST_MD5, f"{name}.gz", hashlib.md5(buf).hexdigest())
    mirror = FakeMirror(files)
    monkeypatch.setattr(data, "_fetch", mirror)
    return mirror, images


def test_download_writes_verified_files_then_skips_them(tmp_path, np_rng, monkeypatch):
    mirror, images = _served(np_rng, monkeypatch)
    root = data.download_mnist(tmp_path / "new", splits=("test",))
    assert root == tmp_path / "new"
    assert sorted(p.name for p in root.iterdir()) == sorted(mirror.files)
    assert mirror.urls == [data.MNIST_MIRRORS[0] + n for n in mirror.files]
    x, y = data.load_mnist(root, split="test")
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, [1, 2, 3])
    data.download_mnist(root, splits=("test",))
    assert len(mirror.urls) == 2  # verified files are not fetched again


def test_load_mnist_download_flag(tmp_path, np_rng, monkeypatch):
    _, images = _served(np_rng, monkeypatch)
    x, _ = data.load_mnist(tmp_path, split="test", download=True)
    np.testing.assert_array_equal(x, images)


def test_download_replaces_a_corrupt_file(tmp_path, np_rng, monkeypatch):
    mirror, _ = _served(np_rng, monkeypatch)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"junk")
    data.download_mnist(tmp_path, splits=("test",))
    assert (tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes() == mirror.files[
        "t10k-images-idx3-ubyte.gz"
    ]


def test_download_md5_mismatch_leaves_nothing(tmp_path, np_rng, monkeypatch):
    mirror, _ = _served(np_rng, monkeypatch)
    mirror.files["t10k-images-idx3-ubyte.gz"] = mirror.files["t10k-images-idx3-ubyte.gz"][:-8]
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz.*MD5 mismatch"):
        data.download_mnist(tmp_path, splits=("test",))
    assert list(tmp_path.iterdir()) == []  # no file, no temporary file


def test_download_no_network_leaves_nothing(tmp_path, monkeypatch):
    def offline(url: str, *, timeout: float = 60.0) -> bytes:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(data, "_fetch", offline)
    with pytest.raises(DataError) as err:
        data.download_mnist(tmp_path, splits=("train",))
    msg = str(err.value)
    assert "could not download train-images-idx3-ubyte.gz" in msg
    assert "name resolution" in msg and "network" in msg and "JAXNETS_DATA_DIR" in msg
    assert list(tmp_path.iterdir()) == []


def test_download_interrupted_write_leaves_nothing(tmp_path, np_rng, monkeypatch):
    _served(np_rng, monkeypatch)

    def boom(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(data.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        data.download_mnist(tmp_path, splits=("test",))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------- normalize_mnist


@pytest.mark.parametrize(
    ("layout", "pad_to", "shape"),
    [
        ("flat", None, (3, 784)),
        ("NCHW", None, (3, 1, 28, 28)),
        ("NHWC", None, (3, 28, 28, 1)),
        ("flat", 32, (3, 1024)),
        ("NCHW", 32, (3, 1, 32, 32)),
        ("NHWC", 32, (3, 32, 32, 1)),
    ],
)
def test_normalize_shapes(np_rng, layout, pad_to, shape):
    images = np_rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    out = data.normalize_mnist(images, layout=layout, pad_to=pad_to)
    assert out.shape == shape and out.dtype == np.float32 and out.flags.c_contiguous


def test_normalize_values_and_padding(np_rng):
    images = np_rng.integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    x = data.normalize_mnist(images, layout="NCHW", dtype=np.float64)
    assert x.dtype == np.float64
    np.testing.assert_allclose(x[0, 0, 0, :2], [-0.1307 / 0.3081, (1 - 0.1307) / 0.3081])
    np.testing.assert_allclose(x[:, 0], (images / 255 - 0.1307) / 0.3081, rtol=1e-15)
    p = data.normalize_mnist(images, layout="NCHW", pad_to=32, dtype=np.float64)
    np.testing.assert_array_equal(p[:, :, 2:30, 2:30], x)  # centred: 2 pixels each side
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert np.all(p[:, 0][:, border] == x[0, 0, 0, 0])  # the border is a black pixel's value
    nhwc = data.normalize_mnist(images, layout="NHWC", pad_to=32)
    nchw = data.normalize_mnist(images, layout="NCHW", pad_to=32)
    np.testing.assert_array_equal(nhwc, nchw.transpose(0, 2, 3, 1))
    flat = data.normalize_mnist(images)
    np.testing.assert_array_equal(flat, nchw[:, :, 2:30, 2:30].reshape(4, 784))


def test_normalize_bit_identical_to_torch_pipeline():
    images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    # torchvision ToTensor: float().div(255); Normalize: sub(mean).div(std), constants in float32
    want = torch.from_numpy(images).float().div(255).sub(0.1307).div(0.3081).numpy()
    np.testing.assert_array_equal(data.normalize_mnist(images, layout="flat"), want.reshape(1, -1))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"images": np.zeros((2, 28, 28), np.float32)}, TypeError),
        ({"images": np.zeros((28, 28), np.uint8)}, ValueError),
        ({"layout": "CHW"}, ValueError),
        ({"pad_to": 31}, ValueError),
        ({"pad_to": 26}, ValueError),
        ({"dtype": np.int32}, TypeError),
    ],
    ids=["float-input", "2d", "layout", "odd-pad", "shrink", "int-dtype"],
)
def test_normalize_rejects(kwargs, error):
    kwargs = {"images": np.zeros((2, 28, 28), np.uint8), **kwargs}
    with pytest.raises(error):
        data.normalize_mnist(**kwargs)


# ---------------------------------------------------------------------------------- batch order


def test_batch_indices_deterministic_and_cover_all(seed):
    a = data.batch_indices(103, 10, seed=seed, epoch=0)
    b = data.batch_indices(103, 10, seed=seed, epoch=0)
    assert len(a) == 11 and [len(i) for i in a] == [10] * 10 + [3]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
        assert x.dtype == np.int64
    np.testing.assert_array_equal(np.sort(np.concatenate(a)), np.arange(103))
    other_epoch = np.concatenate(data.batch_indices(103, 10, seed=seed, epoch=1))
    other_seed = np.concatenate(data.batch_indices(103, 10, seed=seed + 1, epoch=0))
    assert not np.array_equal(np.concatenate(a), other_epoch)
    assert not np.array_equal(np.concatenate(a), other_seed)
    want = np.random.default_rng(np.random.SeedSequence([seed, 0])).permutation(103)
    np.testing.assert_array_equal(np.concatenate(a), want)  # the documented recipe


def test_batch_indices_drop_last_and_no_shuffle(seed):
    kept = data.batch_indices(103, 10, seed=seed, epoch=2, drop_last=True)
    assert len(kept) == 10 and all(len(i) == 10 for i in kept)
    plain = data.batch_indices(7, 3, seed=seed, epoch=5, shuffle=False)
    assert [i.tolist() for i in plain] == [[0, 1, 2], [3, 4, 5], [6]]
    assert data.batch_indices(0, 4, seed=seed, epoch=0) == []
    assert data.batch_indices(3, 4, seed=seed, epoch=0, drop_last=True) == []
    with pytest.raises(ValueError, match="batch_size"):
        data.batch_indices(10, 0, seed=seed, epoch=0)


def test_epoch_batches_matches_batch_indices(seed):
    rows = data.epoch_batches(103, 10, seed=seed, epoch=3)
    assert rows.shape == (10, 10) and rows.dtype == np.int64
    np.testing.assert_array_equal(
        rows, np.stack(data.batch_indices(103, 10, seed=seed, epoch=3, drop_last=True))
    )
    full = data.epoch_batches(100, 10, seed=seed, epoch=3, drop_last=False)
    np.testing.assert_array_equal(np.sort(full.ravel()), np.arange(100))
    with pytest.raises(ValueError, match="not a multiple"):
        data.epoch_batches(103, 10, seed=seed, epoch=3, drop_last=False)


@pytest.mark.parametrize("drop_last", [True, False], ids=["drop_last", "keep_last"])
def test_epoch_batches_fewer_examples_than_a_batch_raise(seed, drop_last):
    """torch's DataLoader(drop_last=True) yields zero batches here (batch_indices returns []);
    epoch_batches raises instead, since an epoch of zero steps is almost always a mistake."""
    loader = torch.utils.data.DataLoader(range(10), batch_size=64, drop_last=True)
    assert len(loader) == 0 and data.batch_indices(10, 64, seed=seed, epoch=0, drop_last=True) == []
    with pytest.raises(ValueError, match=r"n=10 .*batch_size=64.*no steps.*batch_size <= 10"):
        data.epoch_batches(10, 64, seed=seed, epoch=0, drop_last=drop_last)
    with pytest.raises(ValueError, match=r"n=0.*empty.*no steps"):
        data.epoch_batches(0, 64, seed=seed, epoch=0, drop_last=drop_last)
    assert data.epoch_batches(10, 10, seed=seed, epoch=0).shape == (1, 10)  # one full batch


# ------------------------------------------------------------------------------------ toy sets


def test_xor_dataset():
    x, y = data.xor_dataset()
    assert x.dtype == y.dtype == np.float32 and x.shape == (4, 2) and y.shape == (4, 1)
    assert x.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert y.tolist() == [[0], [1], [1], [0]]
    assert data.xor_dataset(np.float64)[0].dtype == np.float64


def test_regression_dataset(seed):
    x, y = data.regression_dataset(50, 3, 2, seed=seed)
    assert x.shape == (50, 3) and y.shape == (50, 2) and x.dtype == y.dtype == np.float32
    x2, y2 = data.regression_dataset(50, 3, 2, seed=seed)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    x64, y64 = data.regression_dataset(50, 3, 2, seed=seed, dtype=np.float64)
    np.testing.assert_array_equal(x64.astype(np.float32), x)
    # noise=0: exactly affine, the same map for any n
    xa, ya = data.regression_dataset(20, 3, 2, seed=seed, noise=0.0, dtype=np.float64)
    xb, yb = data.regression_dataset(40, 3, 2, seed=seed, noise=0.0, dtype=np.float64)
    coef = np.linalg.lstsq(np.c_[xa, np.ones(20)], ya, rcond=None)[0]
    np.testing.assert_allclose(np.c_[xb, np.ones(40)] @ coef, yb, atol=1e-10)
    # noise=0.1: residual std about 0.1
    res = y64 - np.c_[x64, np.ones(50)] @ coef
    assert 0.05 < res.std() < 0.2


def test_random_classification(seed):
    x, y = data.random_classification(200, 8, 4, seed=seed)
    assert x.shape == (200, 8) and x.dtype == np.float32
    assert y.shape == (200,) and y.dtype == np.int64
    assert set(np.unique(y)) <= set(range(4)) and len(np.unique(y)) > 1
    x2, y2 = data.random_classification(200, 8, 4, seed=seed)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    x64, _ = data.random_classification(200, 8, 4, seed=seed, dtype=np.float64)
    assert x64.dtype == np.float64
