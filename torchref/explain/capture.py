"""Capture: run ONE batch through each side and keep what every layer saw and produced.

The first stage of :func:`torchref.explain.explain`. The torch side runs with a forward hook
on every module (inputs, outputs in completion order; ``retain_grad`` on the outputs gives
``d loss / d output``) and keeps every buffer before and after the pass. The twin runs through
:mod:`jaxnets.debug.intercept` (one ``jax.jit`` program, or op by op) in its plain forms
(inside ``jaxnets.fast.disabled()``), recording every submodule's input, output and output
gradient by module path name; if the twin raises, it is rerun eagerly to find the module that
raised and what reached it. Both sides' parameters and buffers after the pass are read in
torch names and layout (the twin's through :mod:`jaxnets.convert`). Arrays stay in each
side's own layout here: alignment converts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn as nn
from flax import nnx

from jaxnets import convert, fast
from jaxnets.debug import intercept
from jaxnets.tolerances import backend_name
from torchref.explain.arrays import as_numpy

__all__ = ["Capture", "TorchRecord", "capture", "environment", "torch_trace"]

LossFn = Callable[[Any, Any], Any]


@dataclass
class TorchRecord:
    """One call of one torch module.

    Attributes:
      name: module path (``'fc1'``; ``''`` is the model; ``'act#2'`` for a second call).
      type_name: the module's class name.
      module: the module itself.
      input, output: copies of its first positional argument and of its output (None when
        not a tensor).
      tensor: the live output tensor, whose ``.grad`` holds ``d loss / d output`` after the
        backward pass.
    """

    name: str
    type_name: str
    module: nn.Module
    input: np.ndarray | None
    output: np.ndarray | None
    tensor: torch.Tensor | None


def torch_trace(
    model: nn.Module,
    x: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor] | None,
) -> tuple[list[TorchRecord], torch.Tensor, torch.Tensor | None]:
    """Forward (and backward) with a hook on every module: ``(records, output, loss)``.

    ``records`` in completion order (a layer before the container that called it); the
    backward pass runs when ``loss_fn`` (output -> scalar loss) is given.
    """
    records: list[TorchRecord] = []
    calls: dict[str, int] = {}

    def make_hook(name: str) -> Callable[..., None]:
        def hook(mod: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            n = calls.get(name, 0) + 1
            calls[name] = n
            key = name if n == 1 else f"{name}#{n}"
            inp = args[0] if args and isinstance(args[0], torch.Tensor) else None
            tensor = out if isinstance(out, torch.Tensor) else None
            if tensor is not None and tensor.requires_grad:
                tensor.retain_grad()
            records.append(
                TorchRecord(
                    key,
                    type(mod).__name__,
                    mod,
                    None if inp is None else as_numpy(inp).copy(),
                    None if tensor is None else as_numpy(tensor).copy(),
                    tensor,
                )
            )

        return hook

    handles = [m.register_forward_hook(make_hook(n)) for n, m in model.named_modules()]
    try:
        model.zero_grad(set_to_none=True)
        out = model(x)
        loss = None
        if loss_fn is not None:
            loss = loss_fn(out)
            loss.backward()
    finally:
        for h in handles:
            h.remove()
    return records, out, loss


@dataclass
class Capture:
    """What both sides computed for one batch.

    The twin's values are keyed by module path name and in the twin's layout (NHWC for image
    twins); parameters, gradients and buffers are in torch names and layout.
    """

    torch_records: list[TorchRecord]
    torch_loss: torch.Tensor | None
    buffers_before: dict[str, torch.Tensor]  # torch's, before the pass
    params_t: dict[str, np.ndarray]
    buffers_after_t: dict[str, np.ndarray]
    params_f: dict[str, np.ndarray]
    buffers_after_f: dict[str, np.ndarray]
    flax_in: dict[str, Any] = field(default_factory=dict)
    flax_out: dict[str, Any] = field(default_factory=dict)
    flax_grads: dict[str, Any] = field(default_factory=dict)
    flax_types: dict[str, str] = field(default_factory=dict)
    param_grads: dict[str, np.ndarray] = field(default_factory=dict)
    flax_loss: Any = None
    flax_error: str | None = None  # "TypeError: first line of the message"
    error_at: str | None = None  # the module that raised


@dataclass
class _Twin:
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    output_grads: dict[str, Any] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    param_grads: dict[str, np.ndarray] = field(default_factory=dict)
    loss: Any = None
    error: str | None = None
    error_at: str | None = None


def _twin_trace(
    flax_model: nnx.Module, x: jax.Array, loss_fn: Callable[[Any], Any] | None, jit: bool
) -> _Twin:
    """The twin's forward (and backward) pass with every submodule recorded."""
    twin = _Twin()
    # The plain forms: a fast form may compute a module's output without calling the module
    # (a convolution fused with its pooling), which would leave that module without a record.
    with fast.disabled():
        try:
            tr = intercept.trace(flax_model, x, loss_fn=loss_fn, jit=jit)
            twin.inputs, twin.outputs, twin.output_grads = tr.inputs, tr.outputs, tr.output_grads
            twin.types, twin.loss = tr.types, tr.loss
            if tr.param_grads is not None:
                try:
                    twin.param_grads = convert.state_to_torch(flax_model, tr.param_grads)
                except (TypeError, ValueError):
                    twin.param_grads = {}
        except Exception:
            records, twin.error_at, exc = intercept.capture_until_error(flax_model, x)
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            twin.error = f"{type(exc).__name__}: {first_line}"[:400]
            twin.inputs = {k: r.input for k, r in records.items()}
            twin.outputs = {k: r.output for k, r in records.items()}
            twin.types = {k: r.type_name for k, r in records.items()}
    return twin


def _safe_state_dict(model: nnx.Module) -> dict[str, np.ndarray]:
    try:
        return convert.state_dict(model)
    except (TypeError, ValueError):
        return {}


def capture(
    torch_model: nn.Module,
    flax_model: nnx.Module,
    inputs: np.ndarray,
    targets: np.ndarray | None,
    losses: tuple[LossFn, LossFn] | None,
    *,
    image: bool,
    jit: bool,
) -> Capture:
    """Run one batch through both models and capture every layer.

    Args:
      inputs: ``(N, F)`` or ``(N, C, H, W)`` in torch layout; image twins get it as NHWC.
      targets: what the losses take as their second argument (None without losses).
      losses: ``(torch_fn, flax_fn)``, each called as ``fn(output, targets)``; None runs the
        forward pass only. The torch side skips its loss when the twin raised.
    """
    x_np = np.array(inputs, copy=True, order="C")
    x_f = jnp.asarray(np.transpose(x_np, (0, 2, 3, 1)) if image else x_np)
    y_f = None if targets is None else jnp.asarray(targets)
    buffers_before = {k: v.detach().clone() for k, v in torch_model.named_buffers()}
    t_loss, f_loss = (None, None) if losses is None else losses
    twin = _twin_trace(
        flax_model, x_f, None if f_loss is None else (lambda out: f_loss(out, y_f)), jit
    )

    t_loss_fn = None
    if t_loss is not None and twin.error is None:
        y_t = torch.from_numpy(np.ascontiguousarray(targets))
        t_loss_fn = lambda out: t_loss(out, y_t)  # noqa: E731
    records, _, t_loss_value = torch_trace(torch_model, torch.from_numpy(x_np), t_loss_fn)

    params_t = {k: as_numpy(v) for k, v in torch_model.named_parameters()}
    buffers_after_t = {k: as_numpy(v) for k, v in torch_model.named_buffers()}
    flax_sd = _safe_state_dict(flax_model)
    return Capture(
        torch_records=records,
        torch_loss=t_loss_value,
        buffers_before=buffers_before,
        params_t=params_t,
        buffers_after_t=buffers_after_t,
        params_f={k: v for k, v in flax_sd.items() if k in params_t},
        buffers_after_f={k: v for k, v in flax_sd.items() if k in buffers_after_t},
        flax_in=twin.inputs,
        flax_out=twin.outputs,
        flax_grads=twin.output_grads,
        flax_types=twin.types,
        param_grads=twin.param_grads,
        flax_loss=twin.loss,
        flax_error=twin.error,
        error_at=twin.error_at,
    )


def environment(torch_model: nn.Module, dtype: np.dtype) -> list[str]:
    """Notes on what makes float32 matmuls and convolutions run in TF32 here (JAX on a GPU
    below 'highest' precision, torch on CUDA with ``allow_tf32``); empty otherwise."""
    notes = []
    if dtype != np.float32:
        return notes
    if backend_name() == "gpu":
        prec = jax.config.jax_default_matmul_precision
        if prec not in ("highest", "float32", "HIGHEST"):
            notes.append(
                f"JAX on GPU with jax_default_matmul_precision={prec!r}: float32 matmuls and "
                "convolutions run in TF32"
            )
    on_cuda = any(p.is_cuda for p in torch_model.parameters())
    if on_cuda and (torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32):
        notes.append(
            "torch on CUDA with allow_tf32 on (cuda.matmul="
            f"{torch.backends.cuda.matmul.allow_tf32}, cudnn={torch.backends.cudnn.allow_tf32})"
        )
    return notes
