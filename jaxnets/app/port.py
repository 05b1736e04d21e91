"""``jaxnets port FILE.py:CLASS``: write a PyTorch model's Flax NNX twin and prove it.

The work is :func:`torchref.port.port` (imported when the command runs, so that the rest of
the command line never waits for torch). This module parses the arguments, writes the file
only when everything holds, and prints the verdict.
"""

from __future__ import annotations

import argparse
import os
import sys

from jaxnets.app.config import nonnegative_int, with_default

__all__ = ["add_parser", "cmd_port", "input_shape"]


def input_shape(text: str) -> tuple[int, ...]:
    """argparse ``type=``: ``'8,1,28,28'`` as a tuple of positive ints."""
    try:
        dims = tuple(int(d) for d in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 8,1,28,28, got {text!r}"
        ) from None
    if not dims or any(d < 1 for d in dims):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 8,1,28,28, got {text!r}"
        )
    return dims


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``port`` subcommand's arguments."""
    p = sub.add_parser(
        "port",
        help="a PyTorch model of your own -> readable Flax NNX source, with its parity proved",
        description="Capture FILE.py:CLASS's forward pass with torch.export, write the Flax "
        "NNX twin (torch's attribute names, jaxnets' torch-semantics layers, NHWC images) and "
        "prove it: torch's weights copied in, outputs, a loss and every gradient compared in "
        "float64 and float32, eval and train mode. Exit 0 only when every check holds; the "
        "file is written only then.",
    )
    p.add_argument("model", metavar="FILE.py:CLASS", help="the torch model's file and class")
    p.add_argument(
        "--init",
        metavar="JSON",
        help="constructor arguments as a JSON object, e.g. '{\"hidden\": 64}' (default: none)",
    )
    example = p.add_mutually_exclusive_group(required=True)
    example.add_argument(
        "--input-shape",
        type=input_shape,
        metavar="N,C,H,W",
        help="the example batch's torch shape (float32 standard normal), e.g. 8,1,28,28",
    )
    example.add_argument(
        "--example",
        metavar="X.npy",
        help="the example batch itself, any dtype (e.g. integer token ids)",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="TWIN.py",
        help="where to write the twin (default: print it on stdout, the verdict on stderr)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace the --output file if it exists"
    )
    p.add_argument(
        "--no-check",
        dest="prove",
        action="store_false",
        help="write the source without running the proof",
    )
    p.add_argument(
        "--seed", type=nonnegative_int, default=0, help=with_default("the example and targets")
    )
    p.set_defaults(func=cmd_port)


def cmd_port(args: argparse.Namespace) -> int:
    """Port, prove, and write the twin when every check holds."""
    from jaxnets.app.config import CommandError, check_output, require_torch

    require_torch("jaxnets port")
    if args.output:  # refused before the work: never the model's own file, nor one unnamed
        check_output(args.output, overwrite=args.overwrite, inputs=[args.model.split(":")[0]])
    import numpy as np

    from torchref.port import PortError, parse_init, port

    example = None
    if args.example is not None:
        try:
            example = np.load(args.example, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise CommandError(
                f"--example {args.example}: cannot read it as .npy ({exc}); save the batch with "
                f"numpy.save"
            ) from None
    try:
        result = port(
            args.model,
            init=parse_init(args.init),
            input_shape=args.input_shape,
            example=example,
            check=args.prove,
            seed=args.seed,
        )
    except PortError as exc:
        if os.environ.get("JAXNETS_TRACEBACK", "") not in ("", "0"):
            raise
        # one line, as the command reports every user mistake (CommandError's format)
        print(f"jaxnets port: error: {exc}", file=sys.stderr)
        return 2
    report = sys.stdout if args.output else sys.stderr
    if result.verdict is not None:
        print(result.verdict, file=report)
        if not result.ok:
            print(
                "\nthe twin was not written: parity does not hold (write it anyway with "
                "--no-check to read it beside the report)",
                file=report,
            )
            return 1
    if args.output:
        from jaxnets._files import atomic_write_bytes

        out = atomic_write_bytes(args.output, result.source.encode())  # whole or not at all
        print(f"wrote {out} (class {result.name})", file=report)
    else:
        sys.stdout.write(result.source)
    return 0
