"""argparse helpers shared by the ``jaxnets`` command, :func:`jaxnets.app.loop.add_run_args` and the
example scripts: option types that refuse a bad value while parsing (so the user gets the usage
line and ``error: argument --batch-size: expected a positive integer (1 or more), got 0``, exit
status 2, instead of a traceback later), help text with defaults, and when to draw progress
bars. No torch, no JAX.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

__all__ = [
    "model_name",
    "nonnegative_float",
    "nonnegative_int",
    "positive_float",
    "positive_int",
    "show_progress",
    "with_default",
]


def _integer(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def _real(text: str, positive: bool, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
    return value


def positive_int(text: str) -> int:
    """argparse ``type=``: an integer >= 1."""
    return _integer(text, 1, "a positive integer (1 or more)")


def nonnegative_int(text: str) -> int:
    """argparse ``type=``: an integer >= 0."""
    return _integer(text, 0, "a non-negative integer (0 or more)")


def positive_float(text: str) -> float:
    """argparse ``type=``: a finite number > 0."""
    return _real(text, True, "a positive number")


def nonnegative_float(text: str) -> float:
    """argparse ``type=``: a finite number >= 0."""
    return _real(text, False, "a non-negative number")


def model_name(text: str) -> str:
    """argparse ``type=``: a registered model name; an unknown one is refused with the
    closest registered name ("Did you mean 'lenet'?") and the list of them all."""
    from jaxnets.registry import UnknownModelError, get_model_spec

    try:
        get_model_spec(text)
    except UnknownModelError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def with_default(help_text: str | None) -> str:
    """``help_text`` with argparse's ``(default: %(default)s)`` after it."""
    return f"{help_text + ' ' if help_text else ''}(default: %(default)s)"


def show_progress(no_progress: bool, stream: Any = None) -> bool:
    """Whether to draw progress bars: not with ``--no-progress``, and only on a terminal
    (``stream``, default stderr, where the bars go), so logs get no carriage-return floods."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return not no_progress and bool(isatty and isatty())
