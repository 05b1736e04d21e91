"""Smoke test of ``examples/port_your_own_model.py``: the worked port runs to parity.

The example starts from a first-draft twin with four classic faults and fixes, round by
round, the cause each layer-by-layer report confirms. This test runs the script's ``main``
and checks each fault is found, in the rounds it can be, and that the final harness says OK.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from jaxnets.tolerances import backend_name

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "port_your_own_model.py"


def _load() -> ModuleType:
    name = "example_port_your_own_model"
    spec = importlib.util.spec_from_file_location(name, EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file executes
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def test_port_your_own_model_runs_to_parity(capsys) -> None:
    assert _load().main(["--brief"]) == 0
    out = capsys.readouterr().out
    assert "parity harness on the first draft: the twin raised" in out
    rounds = out.split("=== round ")[1:]
    fixed = [[ln.split(":")[0][3:] for ln in r.splitlines() if ln.startswith("->")] for r in rounds]
    # round 1: the GELU and, independently, conv2's padding; round 2: the flatten feeding fc1
    # and, independently, the LayerNorm eps; round 3: parity
    assert fixed == [["act", "conv2"], ["fc1", "norm"], []], out
    assert out.count("[confirmed]") == 4, out
    assert "every layer agrees" in out and f"parity port [float64, {backend_name()}]" in out
    assert out.rstrip().splitlines()[-1].split()[0] == "grad"  # the harness table printed
    assert ": OK" in out
