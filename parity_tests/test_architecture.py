"""The three layers and the direction of their imports, read from the source.

The library (``jaxnets``, except its ``app`` subpackage) imports neither torch, nor torchref,
nor the application, at module level or inside a function. The torch side (``torchref``)
builds on the library and never imports the application. Only the application imports both.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# (layer, its folder, the top-level names it must never import)
LAYERS = {
    "library": (ROOT / "jaxnets", ("torch", "torchref", "jaxnets.app")),
    "torch side": (ROOT / "torchref", ("jaxnets.app",)),
}


def imported_names(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports, anywhere in the file: ``[(line, 'pkg.mod'), ...]``.
    Relative imports are resolved against the file's package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return out


def violations(folder: Path, forbidden: tuple[str, ...], skip: Path | None = None) -> list[str]:
    """``'file:line imports name'`` for each forbidden import under ``folder``."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        if skip is not None and skip in path.parents:
            continue
        for line, name in imported_names(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return sorted(set(found))


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layer_imports_point_one_way(layer: str) -> None:
    folder, forbidden = LAYERS[layer]
    skip = ROOT / "jaxnets" / "app" if layer == "library" else None
    assert violations(folder, forbidden, skip) == []


def test_planted_import_is_caught(tmp_path: Path) -> None:
    """The check fails on a library module that imports torchref, lazily or not."""
    planted = ROOT / "jaxnets" / "_planted_for_test.py"
    planted.write_text("def f():\n    import torchref\n\n    return torchref\n")
    try:
        folder, forbidden = LAYERS["library"]
        assert violations(folder, forbidden, ROOT / "jaxnets" / "app") == [
            "jaxnets/_planted_for_test.py:2 imports torchref"
        ]
    finally:
        planted.unlink()


def test_import_jaxnets_loads_no_torch_and_no_application() -> None:
    """At run time too: ``import jaxnets`` (and its subpackages) leaves torch unloaded."""
    code = (
        "import sys, jaxnets, jaxnets.nn, jaxnets.fast, jaxnets.training, jaxnets.debug.summary\n"
        "import jaxnets.training.distributed, jaxnets.checkpoint, jaxnets.data\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'torchref')"
        " or m.startswith('jaxnets.app')]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
