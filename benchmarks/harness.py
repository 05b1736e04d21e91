"""Reproduce the benchmark tables of docs/performance.md: every model, its default batch
sizes, all variants.

    .venv/bin/python benchmarks/harness.py [--out benchmarks/results] [jaxnets bench options]

Runs ``jaxnets bench`` (see ``jaxnets/app/torch_bench.py`` for what is timed and how) with the JSON
written to ``OUT/cpu.json`` and the markdown table to ``OUT/cpu.md``. Extra arguments go to
``jaxnets bench`` unchanged (e.g. ``--model 'lenet' --repeats 3``). It takes a while: every
model is compiled by XLA and by ``torch.compile``; ``--no-torch-compile`` is much quicker.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write ``cpu.json`` and ``cpu.md`` under ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args, rest = parser.parse_known_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from jaxnets.app.cli import main as cli

    code = cli(["bench", "--json", str(out / "cpu.json"), *rest])
    if code == 0:
        from jaxnets.app.torch_bench import markdown

        table = markdown(json.loads((out / "cpu.json").read_text()))
        (out / "cpu.md").write_text(table + "\n")
        print(f"wrote {out / 'cpu.md'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
