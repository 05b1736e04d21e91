"""``jaxnets port``: a PyTorch model becomes readable Flax NNX source, with its parity proved.

::

    from torchref.port import port
    result = port("my_model.py:Net", input_shape=(8, 1, 28, 28))
    print(result.verdict)          # every check: float64/float32, eval/train
    open("twin.py", "w").write(result.source)

The steps, one module each: :mod:`~torchref.port.capture` builds the model and captures its
forward pass with ``torch.export``; :mod:`~torchref.port.graph` turns the exported graph into a
small IR of module calls and operations (module paths, the user's source lines);
:mod:`~torchref.port.translate` maps each to jaxnets' torch-semantics layers
(:mod:`~torchref.port.vocab`) while tracking the image layout (NCHW outside, NHWC inside);
:mod:`~torchref.port.render` writes the source; :mod:`~torchref.port.proof` loads it, copies
torch's weights with :func:`jaxnets.convert.load_state_dict` and runs the parity harness.
What falls outside the vocabulary raises :class:`PortError` with one line that names the
operation and the user's source line; no source is produced then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from torchref.port.capture import (
    PortError,
    Source,
    build_model,
    capture,
    example_tensor,
    load_class,
)
from torchref.port.graph import Op, Scope, lower
from torchref.port.proof import Verdict, prove
from torchref.port.render import generate

__all__ = ["PortError", "PortResult", "Verdict", "parse_init", "port", "port_source", "prove"]


@dataclass
class PortResult:
    """What :func:`port` gives: the twin's ``source``, and the ``verdict`` of the proof
    (None when ``check=False``)."""

    name: str
    source: str
    verdict: Verdict | None

    @property
    def ok(self) -> bool:
        return self.verdict is not None and self.verdict.ok


def parse_init(text: str | None) -> dict[str, Any]:
    """``--init '{"hidden": 64}'`` as keyword arguments."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PortError(f"--init is not JSON ({exc.msg} at column {exc.colno}): {text!r}") from exc
    if not isinstance(value, dict):
        raise PortError(f"--init must be a JSON object of constructor arguments, got {text!r}")
    return value


def example_input(
    input_shape: tuple[int, ...] | None = None, example: np.ndarray | None = None, seed: int = 0
) -> np.ndarray:
    """The example batch in torch's layout: ``example`` as given, or float32 standard normal
    of ``input_shape``."""
    if (input_shape is None) == (example is None):
        raise PortError("give the example input: an input shape (N,C,H,W) or an example array")
    if example is not None:
        arr = np.asarray(example)
        if arr.ndim == 0:
            raise PortError("the example input is a scalar; give a batch (its first dim is N)")
        _check_batch(arr.shape)
        return arr
    shape = tuple(input_shape or ())
    if not shape or any(not isinstance(d, int) or d < 1 for d in shape):
        raise PortError(f"input shape must be positive integers such as 8,1,28,28, got {shape}")
    _check_batch(shape)
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _check_batch(shape: tuple[int, ...]) -> None:
    """A batch of one would be captured as a constant 1 (torch.export specialises sizes 0 and
    1), and the twin would then only take batches of one."""
    if shape[0] < 2:
        raise PortError(
            f"the example batch {tuple(shape)} has N={shape[0]}; give 2 or more examples, so "
            f"that the twin takes any batch size (and BatchNorm can train on it)"
        )


def port_source(
    model: nn.Module,
    example: np.ndarray,
    name: str | None = None,
    init_args: dict[int, dict[str, Any]] | None = None,
) -> str:
    """The Flax NNX source of ``model`` (a built torch module) traced on ``example``.

    ``init_args``: the constructor arguments of its modules, as :func:`build_model` records
    them; instances of one class built with other sizes then share one class."""
    x = example_tensor(example)
    root = lower(capture(model, x), model)
    _same_in_eval_mode(root, lower(capture(model, x, train=False), model))
    if len(root.inputs) != 1:
        raise PortError(
            f"{type(model).__name__}.forward takes {len(root.inputs)} tensors; jaxnets port "
            f"captures models of one input"
        )
    if len(root.outputs) != 1:
        raise PortError(
            f"{type(model).__name__}.forward returns {len(root.outputs)} tensors; jaxnets port "
            f"proves models of one output"
        )
    return generate(model, root, name, init_args)


def _signature(ops: list[Op]) -> list[tuple[str, str, str, Source | None]]:
    """What a forward pass runs, for comparing train and eval mode: each layer call and
    operation, in order, without dropouts and the operations that compute nothing."""
    out: list[tuple[str, str, str, Source | None]] = []
    for op in ops:
        if op.kind == "fn" and op.name.rstrip("_") in _MODE_OPS:
            continue
        out.append((op.kind, op.name, op.path, op.source))
        out += _signature(op.children)
        if op.scope is not None:
            out += _signature(op.scope.ops)
    return out


# functional dropout (an identity in eval mode) and operations that compute nothing
_MODE_OPS = {"dropout", "feature_dropout", "alpha_dropout", "clone", "contiguous", "alias"}


def _same_in_eval_mode(train: Scope, eval_: Scope) -> None:
    """Refuse a forward that branches on ``self.training``: the twin has one ``__call__``
    (its layers follow train/eval themselves)."""
    a, b = _signature(train.ops), _signature(eval_.ops)
    if [s[:3] for s in a] == [s[:3] for s in b]:
        return
    i = next(
        (i for i, (s, t) in enumerate(zip(a, b, strict=False)) if s[:3] != t[:3]),
        min(len(a), len(b)),
    )
    src = (a[i] if i < len(a) else b[i] if i < len(b) else (None,) * 4)[3]
    where = f" at {src}" if src else ""
    raise PortError(
        f"the forward pass runs other operations in eval mode than in training mode{where} "
        f"(it branches on self.training); jaxnets port writes one forward for both: move the "
        f"difference into a layer that follows model.train()/model.eval(), such as nn.Dropout"
    )


def port(
    model: str | type[nn.Module] | nn.Module,
    *,
    init: dict[str, Any] | None = None,
    input_shape: tuple[int, ...] | None = None,
    example: np.ndarray | None = None,
    check: bool = True,
    seed: int = 0,
) -> PortResult:
    """Port a torch model to Flax NNX source and prove the twin agrees with it.

    Args:
      model: ``'path/model.py:CLASS'``, an ``nn.Module`` class (built as ``cls(**init)``) or
        a built module.
      input_shape: the example batch's torch shape (float32 standard normal), e.g.
        ``(8, 1, 28, 28)``; or ``example``: the batch itself (any dtype, e.g. token ids).
      check: run the proof (:func:`torchref.port.proof.prove`).

    Returns a :class:`PortResult`; raises :class:`PortError` (one line) when the model is
    outside the vocabulary.
    """
    if isinstance(model, str):
        model = load_class(model)
    init_args = None
    if isinstance(model, type):
        if not issubclass(model, nn.Module):
            raise PortError(f"{model.__name__} is not an nn.Module subclass")
        model, init_args = build_model(model, init)
    elif init:
        raise PortError("init is for a class; this model is already built")
    x = example_input(input_shape, example, seed)
    name = type(model).__name__
    with torch.no_grad():
        source = port_source(model, x, name, init_args)
    verdict = prove(model, source, x, name=name, seed=seed) if check else None
    return PortResult(name, source, verdict)
