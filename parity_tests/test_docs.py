"""The front door: the README stays short and its commands true, and every code block of the
documentation is one that runs when the site is built (``.ci/run`` builds it with warnings
as errors, every cell executed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PAGES = sorted(p for p in (ROOT / "docs").glob("**/*.md") if "_build" not in p.parts)
FENCE = re.compile(r"^(`{3,}|:{3,})(.*)$", re.M)


def fenced_python(text: str) -> list[str]:
    """The bodies of the ```python blocks of a Markdown text."""
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


def test_readme_is_short() -> None:
    assert len(README.encode()) <= 15_000, "the README is a front door: move detail to docs/"


def test_ci_runs_the_readme_test_command() -> None:
    blocks = re.findall(r"^```bash\n(.*?)^```", README, re.S | re.M)
    test_cmd = next(b.strip() for b in blocks if "-m pytest" in b)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci, f".ci/run must run the README's test command:\n{test_cmd}"
    assert "sphinx-build -W --keep-going" in ci, ".ci/run must build the docs, warnings as errors"
    assert "ruff format --check" in ci and "ruff check" in ci


def test_readme_usage_block_runs(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    (code,) = fenced_python(README)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert ": OK" in done.stdout


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT / "docs")))
def test_every_code_block_on_a_page_runs(page: Path) -> None:
    """A fenced block on a page is a MyST directive: an executed ``{code-cell}``, or a
    directive such as ``{toctree}`` or ``{note}``. A plain code block would not run at build
    time, so it could drift from the code; show code in a code cell instead."""
    text = page.read_text()
    plain = [
        m.group(0) for m in FENCE.finditer(text) if m.group(2) and not m.group(2).startswith("{")
    ]
    assert not plain, f"{page.name}: blocks that would not run: {plain}"
    if "{code-cell}" in text:
        front = text.split("---", 2)[1] if text.startswith("---") else ""
        assert "file_format: mystnb" in front and "kernelspec" in front, (
            f"{page.name} has code cells but no myst-nb front matter: they would not execute"
        )
