"""Two checkouts of jaxnets timed against each other, interleaved: did a change cost speed?

    .venv/bin/python benchmarks/ab_trees.py OLD_TREE NEW_TREE [--rounds 5] \\
        [--model lenet --model xor_net ...] [jaxnets bench options]

Each round runs ``jaxnets bench`` once per tree, alternating which goes first, in a fresh
process with ``PYTHONPATH`` set to that tree (so both use this environment's packages and
only the project's code differs), and collects every variant's time per step. The table
gives, per model, batch size and variant, the median over rounds for each tree and their
ratio (new over old; above 1 is slower). Rounds interleave the trees so that a host that
slows down during the run slows both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def _bench_module(tree: Path) -> str:
    """The module of the ``jaxnets`` command in ``tree`` (it moved once)."""
    return "jaxnets.app.cli" if (tree / "jaxnets" / "app" / "cli.py").exists() else "jaxnets.cli"


def run_once(tree: Path, bench_args: list[str]) -> dict[tuple[str, int, str], float]:
    """``{(model, batch, variant): us_per_step}`` of one ``jaxnets bench`` run of ``tree``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        env = {**os.environ, "PYTHONPATH": str(tree)}
        cmd = [sys.executable, "-m", _bench_module(tree), "bench", "--json", str(out)]
        # run from the tree itself: ``-m`` puts the working folder first on the path
        subprocess.run(
            [*cmd, *bench_args], env=env, cwd=tree, check=True, stdout=subprocess.DEVNULL
        )
        doc = json.loads(out.read_text())
    return {
        (r["model"], r["batch_size"], r["variant"]): r["us_per_step"]
        for r in doc["results"]
        if r.get("error") is None and r.get("us_per_step") is not None
    }


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=lambda p: Path(p).resolve())
    parser.add_argument("new", type=lambda p: Path(p).resolve())
    parser.add_argument("--rounds", type=int, default=5)
    args, bench_args = parser.parse_known_args(argv)
    times: dict[str, dict[tuple[str, int, str], list[float]]] = {"old": {}, "new": {}}
    for i in range(args.rounds):
        order = ("old", "new") if i % 2 == 0 else ("new", "old")
        for which in order:
            for key, us in run_once(getattr(args, which), bench_args).items():
                times[which].setdefault(key, []).append(us)
        print(f"round {i + 1}/{args.rounds} done", file=sys.stderr)
    print(f"{'model':24} {'batch':>5} {'variant':16} {'old us':>10} {'new us':>10} {'new/old':>8}")
    for key in sorted(set(times["old"]) & set(times["new"])):
        old, new = (statistics.median(times[w][key]) for w in ("old", "new"))
        model, batch, variant = key
        print(f"{model:24} {batch:>5} {variant:16} {old:>10.1f} {new:>10.1f} {new / old:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
