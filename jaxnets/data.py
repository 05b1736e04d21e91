"""Data layer: the MNIST IDX reader, preprocessing and batch order, and the tutorials' toy sets.

Pure numpy (no torch, no jax), so both frameworks are fed the same arrays in the same order:

* :func:`load_mnist` reads the four standard IDX files, in torchvision's names
  (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``), each gzipped (``.gz``) or raw, from a folder found by
  :func:`resolve_data_dir`; it also looks in ``<dir>/MNIST/raw``, where torchvision keeps them.
  Gzipped files with the standard names are checked against torchvision's MD5s; raw files
  are checked for structure and size. :func:`download_mnist` fetches them from torchvision's
  mirror. Every failure is a :class:`DataError` that names the file, what is wrong and the fix.
* :func:`normalize_mnist` is torchvision's ``ToTensor`` + ``Normalize((0.1307,), (0.3081,))``
  (same float operations, same order), with optional padding and a torch or Flax layout.
* :func:`batch_indices` / :func:`epoch_batches` give the shuffled batch order for an epoch,
  from numpy's Generator: identical for both frameworks, the per-step and the scan-fused loop.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from jaxnets._files import atomic_write_bytes

__all__ = [
    "IDX_DTYPES",
    "MNIST_FILES",
    "MNIST_MD5",
    "MNIST_MEAN",
    "MNIST_MIRRORS",
    "MNIST_STD",
    "DataError",
    "batch_indices",
    "download_mnist",
    "epoch_batches",
    "idx_bytes",
    "load_mnist",
    "normalize_mnist",
    "random_classification",
    "read_idx",
    "regression_dataset",
    "resolve_data_dir",
    "write_idx",
    "xor_dataset",
]

StrPath = str | os.PathLike[str]
Split = Literal["train", "test"]
Layout = Literal["flat", "NCHW", "NHWC"]


class DataError(ValueError):
    """A data file is missing, truncated, corrupt or not what it claims to be.

    The message names the file, says what is wrong and what to do about it.
    """


# --------------------------------------------------------------------------------------------
# MNIST constants
# --------------------------------------------------------------------------------------------

#: Mirror torchvision downloads MNIST from (``torchvision.datasets.MNIST.mirrors[0]``).
MNIST_MIRRORS: tuple[str, ...] = ("https://ossci-datasets.s3.amazonaws.com/mnist/",)

#: (images, labels) base names of each split, as torchvision names them.
MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: torchvision's published MD5s of the gzipped files (``torchvision.datasets.MNIST.resources``).
MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

#: Sizes in bytes of those gzipped files; only used to say "truncated" in an MD5 error.
_MNIST_GZ_SIZES: dict[str, int] = {
    "train-images-idx3-ubyte.gz": 9_912_422,
    "train-labels-idx1-ubyte.gz": 28_881,
    "t10k-images-idx3-ubyte.gz": 1_648_877,
    "t10k-labels-idx1-ubyte.gz": 4_542,
}

_MNIST_COUNTS: dict[str, int] = {"train": 60_000, "test": 10_000}
_MNIST_HW = (28, 28)
_MAGIC_IMAGES = 0x00000803  # uint8, 3 dims (N, 28, 28)
_MAGIC_LABELS = 0x00000801  # uint8, 1 dim (N,)

#: torchvision's MNIST normalisation constants (mean and std of the training pixels in [0, 1]).
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

#: What to do about missing MNIST files, for Python callers and the example scripts alike.
_FIX = (
    "from Python, pass load_mnist(data_dir=...) the folder holding them, or download=True "
    "(or call jaxnets.data.download_mnist(folder) first); from the example scripts, pass "
    "--data-dir DIR or --download; or set JAXNETS_DATA_DIR"
)
#: What to do about a missing file given by its own path (read_idx).
_FIX_FILE = (
    "check the path; for MNIST, jaxnets.data.download_mnist(folder) (--download in the example "
    "scripts) fetches the four files"
)

# --------------------------------------------------------------------------------------------
# IDX reading
# --------------------------------------------------------------------------------------------

#: IDX type code (third magic byte) -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path, fix: str = _FIX) -> bytes:
    """The file's bytes; ``fix`` is the advice given when it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; {fix}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not a file; {fix}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc


def _decompress(buf: bytes, source: str) -> bytes:
    """Gunzip ``buf`` if it is gzipped (detected by content, not by the file name)."""
    if buf[:2] != _GZIP_MAGIC:
        return buf
    try:
        return gzip.decompress(buf)
    except EOFError:
        raise DataError(
            f"{source}: the gzip stream ends early ({len(buf)} bytes): the file is truncated, "
            "delete it and re-download"
        ) from None
    except (OSError, zlib.error) as exc:
        raise DataError(
            f"{source}: corrupt gzip data ({exc}): delete the file and re-download"
        ) from exc


def _parse_idx(buf: bytes, source: str, *, expect_magic: int | None = None) -> np.ndarray:
    """Parse an uncompressed IDX buffer into a native-endian, writable array.

    ``expect_magic`` (e.g. 0x00000803 for MNIST images) is checked before the sizes.
    """
    if len(buf) < 4:
        raise DataError(
            f"{source}: truncated IDX header: {len(buf)} bytes, need at least 4 for the magic "
            "number; re-download the file"
        )
    magic = int.from_bytes(buf[:4], "big")
    code, ndim = buf[2], buf[3]
    if buf[:2] != b"\x00\x00" or code not in IDX_DTYPES or ndim == 0:
        hint = ""
        if buf[:2] == _GZIP_MAGIC:
            hint = " (it looks gzipped but could not be read as such)"
        raise DataError(
            f"{source}: not an IDX file: magic number 0x{magic:08X}{hint}; an IDX magic is "
            "0x0000TTDD with type code TT in {08, 09, 0B, 0C, 0D, 0E} and DD >= 1 dimensions. "
            "Check that the path points at an MNIST IDX file, or re-download it"
        )
    if expect_magic is not None and magic != expect_magic:
        raise DataError(
            f"{source}: wrong magic number: expected 0x{expect_magic:08X} "
            f"({_describe_magic(expect_magic)}), found 0x{magic:08X} ({_describe_magic(magic)}). "
            "Is it the right file (images and labels swapped?)? Re-download it"
        )
    header_len = 4 + 4 * ndim
    if len(buf) < header_len:
        raise DataError(
            f"{source}: truncated IDX header: magic 0x{magic:08X} announces {ndim} dimensions "
            f"({header_len} header bytes), file has {len(buf)} bytes; re-download the file"
        )
    dims = tuple(int.from_bytes(buf[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize  # Python ints: a hostile header cannot overflow
    found = len(buf) - header_len
    shape = "x".join(map(str, dims))
    if found != expected:
        what = "truncated" if found < expected else "has trailing bytes"
        raise DataError(
            f"{source}: {what}: header says {shape} of {dtype.name}, so expected {expected} "
            f"bytes of data, found {found}; re-download the file"
        )
    arr = np.frombuffer(buf, dtype=dtype, count=expected // dtype.itemsize, offset=header_len)
    # A copy either way: native byte order, and writable (torch.from_numpy warns on read-only
    # arrays, and frombuffer over bytes is read-only).
    return arr.astype(dtype.newbyteorder("="), copy=True).reshape(dims)


def _describe_magic(magic: int) -> str:
    ndim = magic & 0xFF
    return f"{IDX_DTYPES[magic >> 8 & 0xFF].name}, {ndim} dim{'s' if ndim != 1 else ''}"


def read_idx(path: StrPath) -> np.ndarray:
    """Read one IDX file, gzipped or raw (detected from the content), into a numpy array.

    The header is ``0x00 0x00 TT DD`` then ``DD`` big-endian uint32 dimensions, then the data,
    big-endian. Type codes ``TT``: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64. The data size must match the header exactly.

    Returns:
        A writable, native-endian array of shape ``dims`` (e.g. ``(N, 28, 28)`` uint8 images).

    Raises:
        DataError: missing or unreadable file, bad gzip, bad magic, truncated header or data.
    """
    p = Path(path)
    return _parse_idx(_decompress(_read_bytes(p, _FIX_FILE), str(p)), str(p))


# --------------------------------------------------------------------------------------------
# Finding and verifying the MNIST files
# --------------------------------------------------------------------------------------------


def idx_bytes(arr: np.ndarray, *, code: int | None = None) -> bytes:
    """IDX encoding of ``arr`` (any shape, a dtype of :data:`IDX_DTYPES`): the inverse of
    :func:`read_idx`. Magic ``0x0000TTDD`` (type code, number of dims), big-endian uint32 dims,
    big-endian data. ``code`` overrides the type byte (to make deliberately bad files)."""
    arr = np.asarray(arr)
    if code is None:
        native = {dt.newbyteorder("="): c for c, dt in IDX_DTYPES.items()}
        try:
            code = native[arr.dtype.newbyteorder("=")]
        except KeyError:
            raise ValueError(
                f"IDX has no type code for dtype {arr.dtype}; use one of "
                f"{sorted(str(d.newbyteorder('=')) for d in IDX_DTYPES.values())}"
            ) from None
    header = bytes([0, 0, code, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: StrPath, arr: np.ndarray | bytes, *, gz: bool = False) -> Path:
    """Write ``arr`` (or ready-made IDX bytes) to ``path`` atomically, gzipped with ``.gz``
    appended to the name when ``gz``. Returns the path written, e.g. to build small data sets
    in the MNIST layout for tests.

    The folder must exist: a missing one (or a file in its place) raises the ``OSError`` that
    ``open`` would, with a message naming ``path`` and the fix; nothing is left behind."""
    path = Path(path)
    buf = arr if isinstance(arr, bytes) else idx_bytes(arr)
    if gz:
        path = path.with_name(path.name + ".gz")
        buf = gzip.compress(buf, mtime=0)
    atomic_write_bytes(path, buf)
    return path


def resolve_data_dir(data_dir: StrPath | None = None) -> Path:
    """Folder holding the MNIST files: ``data_dir`` if given, else ``$JAXNETS_DATA_DIR``, else
    ``$XDG_CACHE_HOME/jaxnets/mnist`` (``~/.cache/jaxnets/mnist`` when that is unset).

    An empty string counts as not given. ``~`` is expanded; the folder is not created and
    need not exist.
    """
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get("JAXNETS_DATA_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says to ignore a relative XDG_CACHE_HOME.
    cache = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return cache / "jaxnets" / "mnist"


def _search_dirs(root: Path) -> tuple[Path, Path]:
    """``root`` itself, then torchvision's ``root/MNIST/raw``."""
    return root, root / "MNIST" / "raw"


def _locate(root: Path, name: str) -> Path | None:
    """First existing ``name.gz`` or ``name`` in the search folders (gzipped first: it has an
    MD5 to check)."""
    for folder in _search_dirs(root):
        for candidate in (folder / f"{name}.gz", folder / name):
            if candidate.is_file():
                return candidate
    return None


def _md5(buf: bytes) -> str:
    return hashlib.md5(buf, usedforsecurity=False).hexdigest()


def _check_md5(buf: bytes, name: str, source: str) -> None:
    """Raise DataError unless ``buf`` has torchvision's MD5 for the gzipped file ``name``."""
    want = MNIST_MD5[name]
    got = _md5(buf)
    if got == want:
        return
    size = _MNIST_GZ_SIZES.get(name)
    size_note = ""
    if size is not None and len(buf) != size:
        size_note = f" ({len(buf)} bytes, expected {size}: truncated or incomplete download?)"
    raise DataError(
        f"{source}: MD5 mismatch: expected {want}, found {got}{size_note}. The file is corrupt "
        "or not torchvision's MNIST: delete it and re-download (load_mnist(download=True) or "
        "download_mnist(); --download in the example scripts). If it is another data set in "
        "MNIST's format (e.g. Fashion-MNIST), pass verify=False (--no-verify in the example "
        "scripts and jaxnets train)"
    )


def _load_checked(path: Path, magic: int, *, verify: bool) -> np.ndarray:
    buf = _read_bytes(path)
    source = str(path)
    if verify and path.name in MNIST_MD5:
        _check_md5(buf, path.name, source)
    return _parse_idx(_decompress(buf, source), source, expect_magic=magic)


def _check_root(root: Path) -> None:
    """Raise DataError if ``root`` is an existing file: the data folder must be a folder."""
    if root.exists() and not root.is_dir():
        raise DataError(
            f"{root} is a file, not a folder: the data folder is the folder that holds (or will "
            f"hold) the MNIST files, e.g. {root.parent}; pass that as data_dir (--data-dir in "
            "the example scripts) or set JAXNETS_DATA_DIR to it"
        )


def _check_split(split: str) -> None:
    if split not in MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def load_mnist(
    data_dir: StrPath | None = None,
    *,
    split: Split = "train",
    download: bool = False,
    verify: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Load one MNIST split from the IDX files in torchvision's names (gzipped or raw).

    Files are looked up in ``resolve_data_dir(data_dir)`` and then in its ``MNIST/raw``
    (torchvision's layout); a ``.gz`` file is preferred over a raw one.

    Args:
        data_dir: folder with the files; see :func:`resolve_data_dir` for the default.
        split: ``'train'`` (60000 images) or ``'test'`` (10000 images).
        download: fetch missing files first with :func:`download_mnist`.
        verify: check gzipped files with the standard names against torchvision's MD5s, and
            raw files against the split's image count (60000 or 10000). Structure (magic,
            header, sizes, 28x28, labels 0-9, as many labels as images) is always checked.
            Pass ``False`` for subsets or other data sets in MNIST's format.

    Returns:
        ``(images, labels)``: uint8 ``(N, 28, 28)`` and int64 ``(N,)``; both writable.

    Raises:
        DataError: a file is missing, truncated, corrupt, has a wrong magic or MD5.
    """
    _check_split(split)
    root = resolve_data_dir(data_dir)
    _check_root(root)
    if download:
        download_mnist(root, splits=(split,))
    paths = []
    for name in MNIST_FILES[split]:
        path = _locate(root, name)
        if path is None:
            where = " or ".join(str(d) for d in _search_dirs(root))
            missing = "" if root.is_dir() else f" (the folder {root} does not exist)"
            raise DataError(
                f"MNIST file {name}.gz (or raw {name}) not found in {where}{missing}: {_FIX}"
            )
        paths.append(path)
    img_path, lbl_path = paths
    images = _load_checked(img_path, _MAGIC_IMAGES, verify=verify)
    labels = _load_checked(lbl_path, _MAGIC_LABELS, verify=verify)
    if images.shape[1:] != _MNIST_HW:
        raise DataError(
            f"{img_path}: MNIST images must be 28x28, header says "
            f"{images.shape[1]}x{images.shape[2]}; re-download the file"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{img_path} has {len(images)} images but {lbl_path} has {len(labels)} labels: "
            "the files belong to different sets or one is damaged; re-download both"
        )
    if len(labels) and int(labels.max()) > 9:
        raise DataError(
            f"{lbl_path}: MNIST labels must be 0-9, found {int(labels.max())}; re-download the file"
        )
    if verify:
        want = _MNIST_COUNTS[split]
        for path, n in ((img_path, len(images)), (lbl_path, len(labels))):
            if path.suffix != ".gz" and n != want:  # .gz files were checked by MD5
                raise DataError(
                    f"{path}: the MNIST {split} split has {want} entries, this file has {n}; "
                    "re-download it, or pass verify=False for a subset"
                )
    return images, labels.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------


def _fetch(url: str, *, timeout: float = 60.0) -> bytes:
    """GET ``url`` and return the body. Tests replace this function to serve bytes offline."""
    request = urllib.request.Request(url, headers={"User-Agent": "jaxnets"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def _fetch_verified(name: str, target: Path) -> None:
    """Fetch ``name`` (a key of MNIST_MD5) from the mirrors and write it atomically."""
    errors = []
    for mirror in MNIST_MIRRORS:
        url = mirror + name
        try:
            data = _fetch(url)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            errors.append(f"{url}: {getattr(exc, 'reason', None) or exc}")
            continue
        _check_md5(data, name, f"{url} (downloaded for {target})")
        atomic_write_bytes(target, data)
        return
    raise DataError(
        f"could not download {name} to {target} ({'; '.join(errors)}). Check the network or "
        f"proxy; without network, copy the four MNIST files (torchvision's names, .gz or raw) "
        f"into {target.parent} by hand, then pass that folder as data_dir (--data-dir in the "
        f"example scripts) or set JAXNETS_DATA_DIR"
    )


def download_mnist(
    data_dir: StrPath | None = None,
    *,
    splits: tuple[Split, ...] = ("train", "test"),
    force: bool = False,
) -> Path:
    """Download the gzipped MNIST files of ``splits`` from torchvision's mirror into a folder.

    A file already present (in the folder or its ``MNIST/raw``) is kept if it is raw or passes
    its MD5; a gzipped file that fails it is fetched again (``force=True`` fetches all). Every
    download is MD5-checked before it is written, and written atomically (temporary file, then
    ``os.replace``), so an interrupted or corrupt download leaves nothing behind.

    Returns:
        The resolved data folder (created if needed).

    Raises:
        DataError: no network / HTTP error (with what to do instead), an MD5 mismatch, or a
            data folder that is a file.
    """
    for split in splits:
        _check_split(split)
    root = resolve_data_dir(data_dir)
    _check_root(root)
    root.mkdir(parents=True, exist_ok=True)
    for split in splits:
        for base in MNIST_FILES[split]:
            name = f"{base}.gz"
            found = None if force else _locate(root, base)
            if found is not None:
                if found.suffix != ".gz":
                    continue
                if _md5(_read_bytes(found)) == MNIST_MD5[name]:
                    continue
            _fetch_verified(name, root / name)
    return root


# --------------------------------------------------------------------------------------------
# Preprocessing and batch order
# --------------------------------------------------------------------------------------------


def normalize_mnist(
    images: np.ndarray,
    *,
    layout: Layout = "flat",
    pad_to: int | None = None,
    dtype: npt.DTypeLike = np.float32,
) -> np.ndarray:
    """uint8 images ``(N, H, W)`` -> normalised floats, as torchvision's ``ToTensor()`` then
    ``Normalize((0.1307,), (0.3081,))``: ``(x / 255 - 0.1307) / 0.3081`` in ``dtype``, the same
    operations in the same order (bit-identical to torch in float32).

    Args:
        images: uint8 ``(N, H, W)``, e.g. ``(N, 28, 28)`` from :func:`load_mnist`.
        layout: ``'flat'`` -> ``(N, H*W)``; ``'NCHW'`` (torch) -> ``(N, 1, H, W)``;
            ``'NHWC'`` (Flax) -> ``(N, H, W, 1)``.
        pad_to: zero-pad each image to ``pad_to x pad_to`` before normalising, evenly on both
            sides (28 -> 32 adds 2 pixels each side, for the tutorial's LeNet on 1x32x32), so
            the border is what a black pixel maps to: ``-0.1307 / 0.3081``.
        dtype: a floating dtype (float32, or float64 for x64 parity runs).

    Returns:
        A new C-contiguous array of ``dtype`` in the requested layout.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"normalize_mnist expects uint8 pixels in 0-255, got {images.dtype}")
    if images.ndim != 3:
        raise ValueError(f"normalize_mnist expects images of shape (N, H, W), got {images.shape}")
    dt = np.dtype(dtype)
    if not np.issubdtype(dt, np.floating):
        raise TypeError(f"dtype must be a floating type, got {dt}")
    if layout not in ("flat", "NCHW", "NHWC"):
        raise ValueError(f"layout must be 'flat', 'NCHW' or 'NHWC', got {layout!r}")
    if pad_to is not None:
        h, w = images.shape[1:]
        dh, dw = pad_to - h, pad_to - w
        if dh < 0 or dw < 0 or dh % 2 or dw % 2:
            raise ValueError(
                f"pad_to={pad_to} must be at least the image size {h}x{w} and differ from it "
                "by an even number (the padding is symmetric)"
            )
        images = np.pad(images, ((0, 0), (dh // 2, dh // 2), (dw // 2, dw // 2)))
    x = images.astype(dt)
    x /= dt.type(255)
    x -= dt.type(MNIST_MEAN)
    x /= dt.type(MNIST_STD)
    n, h, w = x.shape
    if layout == "flat":
        return x.reshape(n, h * w)
    if layout == "NCHW":
        return x.reshape(n, 1, h, w)
    return x.reshape(n, h, w, 1)


def _permutation(n: int, *, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, epoch]))
    return rng.permutation(n).astype(np.int64, copy=False)


def batch_indices(
    n: int,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    drop_last: bool = False,
) -> list[np.ndarray]:
    """Sample indices of each batch of one epoch over ``n`` examples.

    The order is ``np.random.default_rng(np.random.SeedSequence([seed, epoch])).permutation(n)``
    (``np.arange(n)`` when ``shuffle=False``), cut into consecutive batches of ``batch_size``;
    the last one is shorter unless ``drop_last``. Both frameworks index the same numpy arrays
    with these, so they see the same examples in the same order; a new epoch is a new order.
    (It is not torch ``DataLoader``'s order, which comes from torch's generator.)

    Returns:
        A list of int64 arrays of shape ``(batch_size,)`` (the last possibly shorter).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    perm = _permutation(n, seed=seed, epoch=epoch, shuffle=shuffle)
    stop = n - n % batch_size if drop_last else n
    return [perm[i : i + batch_size] for i in range(0, stop, batch_size)]


def epoch_batches(
    n: int,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    drop_last: bool = True,
    shuffle: bool = True,
) -> np.ndarray:
    """The batch order of :func:`batch_indices` as one array, for ``lax.scan``-fused epochs.

    Row ``i`` equals ``batch_indices(n, batch_size, seed=seed, epoch=epoch,
    drop_last=True)[i]``. A scan needs equal batches: with ``drop_last=False``, ``n`` must be
    a multiple of ``batch_size``.

    Fewer than ``batch_size`` examples (``n < batch_size``, ``n = 0`` included) raise a
    ValueError. torch's ``DataLoader(drop_last=True)`` yields zero batches then (as
    :func:`batch_indices` returns ``[]``), but an epoch of zero steps is almost always a
    mistake, and ``Trainer.run_epoch`` would silently do nothing with it.

    Returns:
        int64 array of shape ``(n // batch_size, batch_size)``, at least one row.

    Raises:
        ValueError: ``batch_size <= 0``, ``n < batch_size``, or ``drop_last=False`` and ``n``
            not a multiple of ``batch_size``.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if n == 0:
        raise ValueError(
            "n=0: the data set is empty, so the epoch would have no steps; check the data "
            "(e.g. a filter or limit that removed every example)"
        )
    if 0 < n < batch_size:
        raise ValueError(
            f"n={n} examples are fewer than one batch of batch_size={batch_size}: the short "
            f"batch is dropped, so the epoch would have no steps; use batch_size <= {n}, or "
            "batch_indices(..., drop_last=False) for one short batch (outside a scan)"
        )
    if not drop_last and n % batch_size:
        raise ValueError(
            f"n={n} is not a multiple of batch_size={batch_size}: a scan needs equal batches; "
            "pass drop_last=True or use batch_indices for a short last batch"
        )
    perm = _permutation(n, seed=seed, epoch=epoch, shuffle=shuffle)
    steps = n // batch_size
    return perm[: steps * batch_size].reshape(steps, batch_size)


# --------------------------------------------------------------------------------------------
# Toy data sets from the tutorials
# --------------------------------------------------------------------------------------------


def xor_dataset(dtype: npt.DTypeLike = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """The XOR tutorial's data: inputs ``[[0,0],[0,1],[1,0],[1,1]]``, targets ``[[0],[1],[1],[0]]``.

    Returns:
        ``(X, y)`` of shapes ``(4, 2)`` and ``(4, 1)``, both ``dtype``.
    """
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype)
    y = np.array([[0], [1], [1], [0]], dtype=dtype)
    return x, y


def regression_dataset(
    n: int,
    input_dim: int,
    output_dim: int,
    *,
    seed: int,
    noise: float = 0.1,
    dtype: npt.DTypeLike = np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy linear regression data for the tutorial's MSE loop: ``y = X @ W + b + noise * e``.

    ``W (input_dim, output_dim)`` and ``b (output_dim,)`` are drawn first from
    ``default_rng(seed)``, so the map depends only on ``(seed, input_dim, output_dim)``; then
    ``X`` and ``e`` (standard normal). Computed in float64, then cast, so float32 and float64
    runs see the same data up to rounding. For a held-out set of the same map, draw a larger
    ``n`` and split it.

    Returns:
        ``(X, y)`` of shapes ``(n, input_dim)`` and ``(n, output_dim)``, both ``dtype``.
    """
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((input_dim, output_dim))
    b = rng.standard_normal(output_dim)
    x = rng.standard_normal((n, input_dim))
    y = x @ w + b + noise * rng.standard_normal((n, output_dim))
    return x.astype(dtype), y.astype(dtype)


def random_classification(
    n: int,
    in_features: int,
    num_classes: int,
    *,
    seed: int,
    dtype: npt.DTypeLike = np.float32,
) -> tuple[np.ndarray, np.ndarray]:
    """Random classification data: standard normal inputs, labels from a fixed random linear
    "teacher" (``argmax(X @ W)``), so a model can actually learn them and a loss must go down.

    Computed in float64 from ``default_rng(seed)`` (``W`` first, then ``X``), then cast.

    Returns:
        ``(X, y)``: ``X`` of shape ``(n, in_features)`` and ``dtype``, ``y`` int64 ``(n,)`` in
        ``[0, num_classes)``.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((in_features, num_classes))
    x = rng.standard_normal((n, in_features))
    y = np.argmax(x @ w, axis=1).astype(np.int64)
    return x.astype(dtype), y
