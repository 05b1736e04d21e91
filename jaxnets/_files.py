"""Atomic file writes, the one writer behind checkpoints, data files and benchmark results.

A write goes to ``.<name>.<random>.tmp`` in the target's folder (same file system, so the
rename is atomic), is flushed and ``fsync``-ed, then ``os.replace``-d over the target, and the
folder is ``fsync``-ed so the rename survives a crash. An interrupted write leaves the previous
file as it was; a process killed mid-write can at worst leave the ``.tmp`` file behind. An
``OSError`` names the target and the fix, never the temporary file. No jax, no torch.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_write_bytes", "atomic_writer"]

StrPath = str | os.PathLike[str]


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: fsync the folder that holds the new entry (POSIX only)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _new_file_mode(target: Path) -> int:
    """The mode the file would get from a plain ``open(..., 'w')``: the old file's mode when
    replacing one, else ``0o666`` minus the umask (``mkstemp`` would make it ``0o600``)."""
    with contextlib.suppress(OSError):
        return target.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _write_error(path: Path, exc: OSError) -> OSError:
    """``exc`` (same type, same errno) reworded to name ``path`` and the fix, not the
    temporary file."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.exists():
        why = (
            f"the folder {folder} does not exist; create it first "
            f"(mkdir -p {folder}, or Path({str(folder)!r}).mkdir(parents=True)) or write "
            f"somewhere else"
        )
    elif not folder.is_dir():
        why = f"{folder} is a file, not a folder; choose a path inside a folder"
    elif path.is_dir():
        why = f"{path} is a folder; choose a file name inside it"
    elif isinstance(exc, PermissionError):
        why = f"no permission to create files in {folder}; choose a writable folder"
    else:
        why = exc.strerror or str(exc)
    err = type(exc)(f"cannot write {path}: {why}")
    err.errno = exc.errno
    return err


@contextlib.contextmanager
def atomic_writer(path: StrPath) -> Iterator[IO[bytes]]:
    """Open a binary file whose content replaces ``path`` only if the ``with`` block succeeds.

    On any exception the temporary file is removed and ``path`` is untouched. Usage::

        with atomic_writer("model.pt") as f:
            torch.save(state_dict, f)
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    mode = _new_file_mode(target)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise _write_error(target, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _write_error(target, exc) from exc
        raise
    _fsync_dir(folder)


def atomic_write_bytes(path: StrPath, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_writer`); returns the path."""
    with atomic_writer(path) as f:
        f.write(data)
    return Path(path)
