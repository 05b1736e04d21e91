"""Strict test configuration for the parity suite.

* float64 parity needs ``jax_enable_x64``; it is switched on for the whole session. float32
  twins keep float32 because every model and test passes its dtype explicitly, and the suite
  asserts output dtypes, so nothing silently runs in float64.
* On GPU, JAX's default float32 matmul/conv precision is TF32-class and torch's cuDNN
  convolutions default to TF32: both are pinned to true float32 here.
* ``JAXNETS_TEST_PLATFORM=cpu|gpu|tpu`` chooses JAX's platform (default: JAX's choice).
* ``JAXNETS_TEST_SEED`` changes the base seed (default 0); every test derives its keys from it.
* Markers: ``slow`` (long training runs) and ``gpu`` (skipped, with the reason, without a GPU).
* Speed only, never numerics: torch runs single-threaded here (its OpenMP threads spin-wait
  whenever anything else runs; parity does not depend on the thread count, and benchmarks,
  which do, never run under this file), and XLA's compiled programs are cached on disk in
  ``.pytest_cache/jax-compilation-cache`` for the whole run, so the many subprocess tests
  (examples, resume, distributed) do not recompile what the run already compiled.
"""

from __future__ import annotations

import os
from pathlib import Path

_CACHE = Path(__file__).resolve().parent.parent / ".pytest_cache" / "jax-compilation-cache"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_CACHE))  # inherited by subprocesses
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax  # noqa: E402 - after the cache variables, which JAX reads at import
import numpy as np  # noqa: E402
import pytest  # noqa: E402

_platform = os.environ.get("JAXNETS_TEST_PLATFORM")
if _platform:
    jax.config.update("jax_platforms", _platform)
jax.config.update("jax_enable_x64", True)

try:
    import torch
except ImportError:  # the suite needs torch; fail with the fix, not a bare ImportError
    raise pytest.UsageError(
        "the parity suite needs PyTorch: pip install 'torch==2.13.0' -e '.[torch,test]'"
    ) from None

from torchref.precision import pin_full_precision  # noqa: E402 - after the torch check

torch.set_num_threads(1)
pin_full_precision()


def _import_torch_test_utilities() -> None:
    """Import torch's test utilities once, before any test does, and leave the
    ``torch.backends`` flags settable.

    Their ``common_utils`` calls ``torch.backends.disable_global_flags()`` when first imported
    (for torch's own tests, which change flags only inside ``with`` blocks). The torch-table,
    schedule and optimizer tests import those utilities for torch's ``module_db``, ``op_db``
    and ``optim_db``; after that, every later ``pin_full_precision()`` in the session (the
    port, explain) would raise. The import runs the module once, so clearing the flag here
    holds for the whole session, whatever order the tests run in.
    """
    import torch.testing._internal.common_utils

    # the module global that disable_global_flags() cleared, in the namespace flags_frozen()
    # reads (torch/backends/__init__.py; torch.backends itself is a wrapper module)
    torch.backends.flags_frozen.__globals__["__allow_nonbracketed_mutation_flag"] = True
    assert not torch.backends.flags_frozen()


_import_torch_test_utilities()
torch.use_deterministic_algorithms(True, warn_only=False)


@pytest.fixture
def seed() -> int:
    """Base seed for a test (``JAXNETS_TEST_SEED``, default 0)."""
    return int(os.environ.get("JAXNETS_TEST_SEED", "0"))


@pytest.fixture
def np_rng(seed: int) -> np.random.Generator:
    """A numpy Generator seeded from ``seed``: inputs are drawn once and fed to both sides."""
    return np.random.default_rng(seed)


@pytest.fixture
def key(seed: int) -> jax.Array:
    """A JAX PRNG key derived from ``seed``."""
    return jax.random.key(seed)


@pytest.fixture
def write_tiny_mnist() -> object:
    """A function ``(folder, rng, n_train, n_test) -> folder`` writing the four MNIST IDX files
    (raw, torchvision's names) with random pixels and labels, via ``jaxnets.data.write_idx``."""
    from jaxnets import data

    def write(folder: Path, rng: np.random.Generator, n_train: int, n_test: int) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for split, n in (("train", n_train), ("test", n_test)):
            img_name, lbl_name = data.MNIST_FILES[split]
            data.write_idx(folder / img_name, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
            data.write_idx(folder / lbl_name, rng.integers(0, 10, n, dtype=np.uint8))
        return folder

    return write


@pytest.fixture
def python_process() -> object:
    """A function ``(*args) -> CompletedProcess`` running ``python ARGS`` in a fresh process
    with this tree's code (``PYTHONPATH``), text output captured: a command as a user runs
    it, or a check that needs an interpreter of its own (a package hidden, a clean start)."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(repo)}
        return subprocess.run(
            [sys.executable, *args], env=env, capture_output=True, text=True, timeout=300
        )

    return run


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu``-marked tests, with the reason, when JAX has no GPU backend."""
    if jax.default_backend() == "gpu":
        return
    skip = pytest.mark.skip(reason=f"needs a GPU; JAX backend here is {jax.default_backend()!r}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
