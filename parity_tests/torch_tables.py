"""Layer cases drawn from PyTorch's own test tables, run on torch and on ``jaxnets.nn``.

PyTorch tests its layers with tables of configurations: ``common_modules.module_db`` (one
``ModuleInfo`` per ``torch.nn`` class, with constructor and forward inputs and error inputs)
and ``common_methods_invocations.op_db`` (one ``OpInfo`` per function, with sample inputs and
error inputs). This module turns the entries for ``jaxnets.nn``'s vocabulary into cases:

* a sample runs in float64 on both sides, torch's tensors moved to channels last at the
  boundary (images ``NCHW <-> NHWC``, sequences ``NCL <-> NLC``, BatchNorm's ``(N, C, *)``
  with the channels last, convolution weights ``OIHW <-> HWIO``), module weights and
  buffers copied with :mod:`jaxnets.convert`; compared: the output(s), the gradient of
  ``sum(output * cotangent)`` with respect to the input and every parameter, and the
  buffers after the call (running statistics, ``num_batches_tracked``), each with the
  float64 bound of :mod:`jaxnets.tolerances`;
* an error input must make jaxnets raise where torch raises;
* a sample jaxnets refuses on purpose is *unsupported*, with its reason, and counted.

Dropout in training draws its own mask, so a dropout sample compares what does not depend
on it: every output is 0 or ``x / (1 - p)`` (whole channels for ``dropout2d``) and the input
gradient is the cotangent through the same mask.

``python -m parity_tests.torch_tables`` prints the table (cases, passed, unsupported with
the reasons, failed, worst float64 relative error) per area; the test suite
(``parity_tests/test_torch_tables.py``) runs the same cases.
"""

from __future__ import annotations

import functools
import inspect
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch
from flax import nnx

from jaxnets import convert
from jaxnets import nn as jnn
from jaxnets.nn import functional as JF
from jaxnets.testing import leaf_diff
from jaxnets.tolerances import tolerance

# ------------------------------------------------------------------------------- layouts

# torch layout -> jaxnets layout, by the number of dimensions of the tensor
_LAYOUTS: dict[str, dict[int, tuple[int, ...]]] = {
    "image": {4: (0, 2, 3, 1), 3: (1, 2, 0)},  # NCHW -> NHWC, CHW -> HWC
    "seq": {3: (0, 2, 1), 2: (1, 0)},  # NCL -> NLC, CL -> LC
    "conv_weight": {4: (2, 3, 1, 0), 3: (2, 1, 0)},  # OIHW -> HWIO, OIL -> LIO
}


def _perm(layout: str, ndim: int) -> tuple[int, ...] | None:
    if layout == "channels_last":  # BatchNorm's (N, C, *) -> (N, *, C)
        return (0, *range(2, ndim), 1) if ndim >= 3 else None
    return _LAYOUTS.get(layout, {}).get(ndim)


def to_jax_layout(a: np.ndarray, layout: str) -> np.ndarray:
    """``a`` (torch layout) in jaxnets' layout."""
    perm = _perm(layout, a.ndim)
    return a if perm is None else np.transpose(a, perm)


def to_torch_layout(a: np.ndarray, layout: str) -> np.ndarray:
    """``a`` (jaxnets layout) back in torch's."""
    perm = _perm(layout, a.ndim)
    return a if perm is None else np.transpose(a, np.argsort(perm))


# ------------------------------------------------------------------------------- results


@dataclass
class Result:
    """What one case gave: ``'passed'``, ``'unsupported'`` or ``'failed'``, why, and the
    worst normwise relative error (``max|a-b| / max|b|``) over what was compared."""

    status: str
    reason: str = ""
    worst: float = 0.0
    worst_leaf: str = ""
    used: float = 0.0
    compared: list[str] = field(default_factory=list)


class MismatchError(AssertionError):
    pass


class UnsupportedError(Exception):
    """A sample jaxnets refuses on purpose; the message is the reason."""


@dataclass
class _Checker:
    """Compares leaves with the float64 bound and remembers the worst relative error."""

    worst: float = 0.0
    worst_leaf: str = ""
    used: float = 0.0
    compared: list[str] = field(default_factory=list)

    def close(self, name: str, actual: Any, expected: Any) -> None:
        a, e = np.asarray(actual), np.asarray(expected)
        if a.shape != e.shape:
            raise MismatchError(f"{name}: shape {a.shape}, torch {e.shape}")
        if not np.issubdtype(e.dtype, np.floating):
            if not np.array_equal(a, e):
                raise MismatchError(f"{name}: integer values differ from torch's")
            self.compared.append(name)
            return
        tol = tolerance(np.float64, kind="eval")
        d = leaf_diff(a, e, rtol=tol.rtol, atol=tol.atol)
        if not d.ok:
            raise MismatchError(
                f"{name}: max|diff| {d.max_abs:.3g}, relative {d.max_rel:.3g} (float64 bound "
                f"rtol {tol.rtol:g}, atol {tol.atol:g})"
            )
        scale = float(np.abs(e[np.isfinite(e)]).max(initial=0.0))
        # The relative error of tensors the bound judges relatively (rtol * scale >= atol);
        # below that scale the bound is absolute, and a relative error says little (an
        # input gradient of a 2-value LayerNorm is ~1e-5 left over from O(1) terms that
        # cancel: 1e-16 of rounding is 1e-11 of it).
        if np.isfinite(d.max_rel) and tol.rtol * scale >= tol.atol and d.max_rel > self.worst:
            self.worst, self.worst_leaf = d.max_rel, name
        self.used = max(self.used, d.tolerance_used)
        self.compared.append(name)


def _seed(case_id: str) -> int:
    return zlib.crc32(case_id.encode())


def _np(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    return (t.to_dense() if t.is_sparse else t).numpy().copy()


def _is_float(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.is_floating_point()


def _jax_value(v: Any) -> Any:
    """A torch argument as a jaxnets one: tensors to arrays, torch dtypes to numpy's."""
    if isinstance(v, torch.Tensor):
        return jnp.asarray(_np(v))
    if isinstance(v, torch.dtype):
        return _np(torch.empty(0, dtype=v)).dtype
    if isinstance(v, tuple | list):
        return type(v)(_jax_value(a) for a in v)
    return v


def _outputs(y: Any) -> list[Any]:
    return list(y) if isinstance(y, tuple | list) else [y]


def _run_jax(
    f: Callable[..., Any], primals: list[Any], cots: list[np.ndarray | None], layout: str
) -> tuple[Any, Any, Any]:
    """``f(*primals) -> (outputs, aux)`` and its VJP with torch's cotangents (torch layout,
    None for integer outputs), in one ``jax.jit``: ``(outputs, primal gradients, aux)``.
    Output shapes are checked against the cotangents' first, so a wrong shape is reported as
    such rather than as a failed VJP."""
    shapes = jax.eval_shape(f, *primals)[0]
    if len(shapes) != len(cots):
        raise MismatchError(f"{len(shapes)} output(s), torch {len(cots)}")
    for i, (o, c) in enumerate(zip(shapes, cots, strict=True)):
        want = None if c is None else c.shape
        got = to_torch_layout(np.empty(o.shape, np.uint8), layout).shape
        if want is not None and got != want:
            raise MismatchError(f"output[{i}]: shape {got} (torch layout), torch {want}")
    float_ct = [jnp.asarray(to_jax_layout(c, layout)) for c in cots if c is not None]

    @jax.jit
    def go(primals: list[Any], float_ct: list[jax.Array]) -> tuple[Any, Any, Any]:
        outs, vjp, aux = jax.vjp(f, *primals, has_aux=True)
        given = iter(float_ct)
        ct = tuple(
            next(given) if c is not None else np.zeros(o.shape, jax.dtypes.float0)
            for o, c in zip(outs, cots, strict=True)
        )
        return outs, vjp(ct), aux

    return go(primals, float_ct)


# ---------------------------------------------------------------------------- module cases

# torch.nn class -> (jaxnets class, layout of its input and output)
MODULES: dict[type, tuple[Callable[..., Any], str]] = {
    torch.nn.Linear: (jnn.Linear, "none"),
    torch.nn.Conv1d: (jnn.Conv1d, "seq"),
    torch.nn.Conv2d: (jnn.Conv2d, "image"),
    torch.nn.BatchNorm1d: (jnn.BatchNorm1d, "channels_last"),
    torch.nn.BatchNorm2d: (jnn.BatchNorm2d, "channels_last"),
    torch.nn.LayerNorm: (jnn.LayerNorm, "none"),
    torch.nn.Embedding: (jnn.Embedding, "none"),
    torch.nn.MaxPool2d: (jnn.MaxPool2d, "image"),
    torch.nn.AvgPool2d: (jnn.AvgPool2d, "image"),
    torch.nn.AdaptiveAvgPool2d: (jnn.AdaptiveAvgPool2d, "image"),
    torch.nn.AdaptiveMaxPool2d: (jnn.AdaptiveMaxPool2d, "image"),
    torch.nn.Flatten: (jnn.Flatten, "none"),
    torch.nn.Identity: (jnn.Identity, "none"),
    torch.nn.ReLU: (jnn.ReLU, "none"),
    torch.nn.LeakyReLU: (jnn.LeakyReLU, "none"),
    torch.nn.ELU: (jnn.ELU, "none"),
    torch.nn.GELU: (jnn.GELU, "none"),
    torch.nn.SiLU: (jnn.SiLU, "none"),
    torch.nn.Tanh: (jnn.Tanh, "none"),
    torch.nn.Sigmoid: (jnn.Sigmoid, "none"),
    torch.nn.Softmax: (jnn.Softmax, "none"),
    torch.nn.LogSoftmax: (jnn.LogSoftmax, "none"),
    torch.nn.Dropout: (jnn.Dropout, "none"),
    torch.nn.Dropout2d: (jnn.Dropout2d, "channels_last"),
}


def _build_jaxnets(cls: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """The jaxnets twin of a torch module built from torch's constructor arguments (plus
    ``rngs`` and float64 parameters for the classes that take them)."""
    params = inspect.signature(cls.__init__ if isinstance(cls, type) else cls).parameters
    extra: dict[str, Any] = {}
    if "rngs" in params:
        extra["rngs"] = nnx.Rngs(0)
    if "param_dtype" in params:
        extra["param_dtype"] = jnp.float64
    return cls(*_jax_value(args), **_jax_value(kwargs), **extra)


def run_module_case(module_info: Any, module_input: Any, training: bool, case_id: str) -> Result:
    """Construct, load torch's weights, run forward and backward on both sides, compare."""
    jcls, layout = MODULES[module_info.module_cls]
    c_args, c_kwargs = module_input.constructor_input.args, module_input.constructor_input.kwargs
    f_args = list(module_input.forward_input.args)
    f_kwargs = dict(module_input.forward_input.kwargs)
    if not f_args and "input" in f_kwargs:
        f_args = [f_kwargs.pop("input")]
    torch.manual_seed(_seed(case_id))
    tm = module_info.module_cls(*c_args, **c_kwargs).to(torch.float64)
    tm.train(training)
    # non-trivial parameters and statistics, so the copies and updates move real values
    with torch.no_grad():
        for name, buf in tm.named_buffers():
            if buf.is_floating_point():
                buf.copy_(torch.rand_like(buf) + (0.5 if "var" in name else -0.5))
    try:
        jm = _build_jaxnets(jcls, c_args, c_kwargs)
    except (ValueError, TypeError) as exc:
        raise UnsupportedError(str(exc)) from exc
    convert.load_state_dict(jm, {k: _np(v) for k, v in tm.state_dict().items()})
    jm.train() if training else jm.eval()

    x_t = f_args[0].detach().clone()
    grad_input = _is_float(x_t)
    x_t.requires_grad_(grad_input)
    y_t = tm(x_t, *f_args[1:], **f_kwargs)
    outs_t = _outputs(y_t)
    rng = np.random.default_rng(_seed(case_id))
    cots = [rng.standard_normal(tuple(o.shape)) if _is_float(o) else None for o in outs_t]
    float_outs = [(o, c) for o, c in zip(outs_t, cots, strict=True) if c is not None]
    targets = ([x_t] if grad_input else []) + [p for _, p in tm.named_parameters()]
    grads_t = (
        torch.autograd.grad(
            [o for o, _ in float_outs],
            targets,
            [torch.from_numpy(c) for _, c in float_outs],
            allow_unused=True,
        )
        if float_outs and targets and any(o.requires_grad for o, _ in float_outs)
        else [None] * len(targets)
    )

    x_j = jnp.asarray(to_jax_layout(_np(x_t), layout))
    others = [_jax_value(a) for a in f_args[1:]]
    graphdef, params, rest = nnx.split(jm, nnx.Param, ...)

    def forward(p: Any, r: Any, x: Any) -> tuple[Any, Any]:
        m = nnx.merge(graphdef, p, r)
        out = m(x, *others)
        return tuple(_outputs(out)), nnx.state(m, nnx.BatchStat)

    outs_j, (g_params, _, g_x), stats = _run_jax(forward, [params, rest, x_j], cots, layout)
    check = _Checker()
    for i, (oj, ot) in enumerate(zip(outs_j, outs_t, strict=True)):
        check.close(f"output[{i}]", to_torch_layout(np.asarray(oj), layout), _np(ot))
    names = [n for n, _ in tm.named_parameters()]
    named = dict(zip(names, grads_t[int(grad_input) :], strict=True))
    if grad_input:
        check.close("input gradient", to_torch_layout(np.asarray(g_x), layout), _np(grads_t[0]))
    if named:
        g_torch = convert.state_to_torch(jm, g_params)
        shapes = {n: tuple(p.shape) for n, p in tm.named_parameters()}
        for name, g in named.items():
            expected = np.zeros(shapes[name]) if g is None else _np(g)
            check.close(f"{name} gradient", g_torch[name], expected)
    nnx.update(jm, stats)
    after = convert.state_dict(jm)
    for name, buf in tm.state_dict().items():
        check.close(f"{name} after", after[name], _np(buf))
    return Result(
        "passed",
        worst=check.worst,
        worst_leaf=check.worst_leaf,
        used=check.used,
        compared=check.compared,
    )


def run_module_error(module_info: Any, error_input: Any) -> Result:
    """torch raises for this error input (checked here): jaxnets must raise too."""
    from torch.testing._internal.common_modules import ModuleErrorEnum

    jcls, layout = MODULES[module_info.module_cls]
    mi = error_input.module_error_input
    c_args, c_kwargs = mi.constructor_input.args, mi.constructor_input.kwargs
    try:
        tm = module_info.module_cls(*c_args, **c_kwargs)
        if error_input.error_on == ModuleErrorEnum.FORWARD_ERROR:
            tm(*mi.forward_input.args, **mi.forward_input.kwargs)
    except Exception:  # any error torch raises counts
        pass
    else:
        raise MismatchError("torch did not raise for this error input")
    try:
        jm = _build_jaxnets(jcls, c_args, c_kwargs)
        if error_input.error_on == ModuleErrorEnum.FORWARD_ERROR:
            x = mi.forward_input.args[0]
            jm(jnp.asarray(to_jax_layout(_np(x), layout)), *_jax_value(mi.forward_input.args[1:]))
    except (ValueError, TypeError, IndexError) as exc:
        return Result("passed", reason=f"{type(exc).__name__}: {exc}")
    raise MismatchError(
        f"jaxnets did not raise where torch raises {error_input.error_type.__name__}"
    )


# ------------------------------------------------------------------------------ op cases


@dataclass(frozen=True)
class OpSpec:
    """How an ``op_db`` function maps to jaxnets: the function (called like torch's op on
    jaxnets-layout arguments), and the layout of each tensor argument by position
    (``'input'``, ``0``, ``1``... for the positional arguments, names for keywords)."""

    fn: Callable[..., Any]
    layouts: dict[Any, str] = field(default_factory=dict)
    output_layout: str = "none"
    unsupported: Callable[[Any], str | None] = lambda s: None


def _embedding(weight: Any, idx: Any, **kwargs: Any) -> Any:
    return JF.embedding(idx, weight, **kwargs)  # op_db's op takes the weight first


def _batch_norm_unsupported(sample: Any) -> str | None:
    if sample.input.ndim < 2:
        return "1-D input has no channel axis to put last"
    return None


def _embedding_unsupported(sample: Any) -> str | None:
    if sample.kwargs.get("max_norm") is not None:
        return "max_norm renormalises the weight in place during the forward pass (refused)"
    return None


_IMAGE = {"input": "image"}
OPS: dict[str, OpSpec] = {
    "nn.functional.relu": OpSpec(JF.relu),
    "nn.functional.leaky_relu": OpSpec(JF.leaky_relu),
    "nn.functional.elu": OpSpec(JF.elu),
    "nn.functional.gelu": OpSpec(JF.gelu),
    "nn.functional.silu": OpSpec(JF.silu),
    "tanh": OpSpec(JF.tanh),
    "sigmoid": OpSpec(JF.sigmoid),
    "softmax": OpSpec(JF.softmax),
    "log_softmax": OpSpec(JF.log_softmax),
    "flatten": OpSpec(JF.flatten),
    "nn.functional.linear": OpSpec(JF.linear),
    "nn.functional.conv1d": OpSpec(JF.conv1d, {"input": "seq", 0: "conv_weight"}, "seq"),
    "nn.functional.conv2d": OpSpec(JF.conv2d, {"input": "image", 0: "conv_weight"}, "image"),
    "nn.functional.layer_norm": OpSpec(JF.layer_norm),
    "nn.functional.batch_norm": OpSpec(
        JF.batch_norm, {"input": "channels_last"}, "channels_last", _batch_norm_unsupported
    ),
    "nn.functional.embedding": OpSpec(_embedding, unsupported=_embedding_unsupported),
    "nn.functional.max_pool2d": OpSpec(JF.max_pool2d, _IMAGE, "image"),
    "nn.functional.avg_pool2d": OpSpec(JF.avg_pool2d, _IMAGE, "image"),
    "nn.functional.adaptive_avg_pool2d": OpSpec(JF.adaptive_avg_pool2d, _IMAGE, "image"),
    "nn.functional.adaptive_max_pool2d": OpSpec(JF.adaptive_max_pool2d, _IMAGE, "image"),
    "nn.functional.dropout": OpSpec(JF.dropout),
    "nn.functional.dropout2d": OpSpec(JF.dropout2d, {"input": "channels_last"}, "channels_last"),
}


def _leaves(sample: Any) -> list[tuple[Any, torch.Tensor]]:
    """``(position, tensor)`` for every tensor of a sample, input first."""
    out: list[tuple[Any, torch.Tensor]] = [("input", sample.input)]
    out += [(i, a) for i, a in enumerate(sample.args) if isinstance(a, torch.Tensor)]
    out += [(k, v) for k, v in sample.kwargs.items() if isinstance(v, torch.Tensor)]
    return out


def _with(sample: Any, values: dict[Any, Any], convert_rest: bool) -> tuple[Any, list, dict]:
    """The sample's ``(input, args, kwargs)`` with the tensors at ``values``' positions
    replaced; with ``convert_rest``, the other arguments made jaxnets values."""
    conv = _jax_value if convert_rest else (lambda v: v)
    args = [values[i] if i in values else conv(a) for i, a in enumerate(sample.args)]
    kwargs = {k: values[k] if k in values else conv(v) for k, v in sample.kwargs.items()}
    return values["input"], args, kwargs


def _is_dropout_draw(op_name: str, sample: Any) -> bool:
    p = sample.kwargs.get("p", 0.5)
    return "dropout" in op_name and sample.kwargs.get("training", True) and 0 < p < 1


def run_op_case(op: Any, sample: Any, case_id: str) -> Result:
    """Run one ``op_db`` sample on torch and on jaxnets (float64), compare."""
    spec = OPS[op.name]
    reason = spec.unsupported(sample)
    if reason:
        raise UnsupportedError(reason)
    # batch_norm's running statistics (positions 0 and 1) are updated in place, not
    # differentiated; every other floating tensor is
    stats = (0, 1) if "batch_norm" in op.name else ()
    t_values = {}
    for pos, t in _leaves(sample):
        t = t.detach().clone()
        t.requires_grad_(t.is_floating_point() and pos not in stats)
        t_values[pos] = t
    before = {pos: _np(t) for pos, t in t_values.items()}
    inp, args, kwargs = _with(sample, t_values, convert_rest=False)
    y_t = op(inp, *args, **kwargs)
    outs_t = _outputs(y_t)
    diff = [pos for pos, t in t_values.items() if t.requires_grad]
    rng = np.random.default_rng(_seed(case_id))
    cots = [rng.standard_normal(tuple(o.shape)) if _is_float(o) else None for o in outs_t]
    float_outs = [(o, c) for o, c in zip(outs_t, cots, strict=True) if c is not None]
    grads_t: Any = [None] * len(diff)
    if diff and any(o.requires_grad for o, _ in float_outs):
        grads_t = torch.autograd.grad(
            [o for o, _ in float_outs],
            [t_values[p] for p in diff],
            [torch.from_numpy(c) for _, c in float_outs],
            allow_unused=True,
        )

    def jax_arg(pos: Any) -> jax.Array:
        return jnp.asarray(to_jax_layout(before[pos], spec.layouts.get(pos, "none")))

    fixed = {pos: jax_arg(pos) for pos in t_values if pos not in diff}
    training_bn = "batch_norm" in op.name and sample.kwargs.get("training", False) and 0 in t_values

    def call(*xs: jax.Array) -> Any:
        values = dict(fixed)
        values.update(zip(diff, xs, strict=True))
        i, a, k = _with(sample, values, convert_rest=True)
        if "dropout" in op.name:
            k["rngs"] = jax.random.key(_seed(case_id))
        if training_bn:
            y, mean, var = spec.fn(i, *a, **k, return_running_stats=True)
            return (y,), (mean, var)
        return tuple(_outputs(spec.fn(i, *a, **k))), ()

    outs_j, grads_j, running = _run_jax(call, [jax_arg(p) for p in diff], cots, spec.output_layout)
    check = _Checker()
    if _is_dropout_draw(op.name, sample):
        x = to_jax_layout(before["input"], spec.layouts.get("input", "none"))
        g = to_jax_layout(cots[0], spec.output_layout)
        _check_dropout(check, op.name, sample, outs_j[0], grads_j[0], x, g)
        return Result(
            "passed", worst=check.worst, worst_leaf=check.worst_leaf, compared=check.compared
        )
    for i, (oj, ot) in enumerate(zip(outs_j, outs_t, strict=True)):
        check.close(f"output[{i}]", to_torch_layout(np.asarray(oj), spec.output_layout), _np(ot))
    for pos, gj, gt in zip(diff, grads_j, grads_t, strict=True):
        layout = spec.layouts.get(pos, "none")
        expected = np.zeros(tuple(t_values[pos].shape)) if gt is None else _np(gt)
        check.close(f"{pos} gradient", to_torch_layout(np.asarray(gj), layout), expected)
    for pos, value in zip((0, 1), running, strict=False):
        check.close(f"running statistic {pos} after", value, _np(t_values[pos]))
    return Result(
        "passed",
        worst=check.worst,
        worst_leaf=check.worst_leaf,
        used=check.used,
        compared=check.compared,
    )


def _check_dropout(
    check: _Checker,
    name: str,
    sample: Any,
    y: jax.Array,
    gx: jax.Array,
    x: np.ndarray,
    g: np.ndarray,
) -> None:
    """A dropout draw: each output is 0 or ``x / (1 - p)``, whole channels for
    ``dropout2d``, and the input gradient is the cotangent ``g`` through the same mask."""
    p = sample.kwargs.get("p", 0.5)
    y = np.asarray(y)
    kept = y != 0
    check.close("kept outputs", np.where(kept, y, 0), np.where(kept, x / (1 - p), 0))
    if "2d" in name and x.ndim >= 3:  # one draw per sample and channel
        planes = kept.reshape(x.shape[0], -1, x.shape[-1])
        if not (planes == planes[:, :1]).all():
            raise MismatchError("dropout2d dropped parts of a channel")
    if x.size > 16 and not 0 < kept.mean() < 1:
        raise MismatchError(f"dropout with p={p} kept {kept.mean():.0%} of the values")
    check.close("input gradient", np.asarray(gx), np.where(kept, g / (1 - p), 0))


def run_op_error(op: Any, error: Any) -> Result:
    """torch raises for this error input (checked here): jaxnets must raise too."""
    spec = OPS[op.name]
    s = error.sample_input
    try:
        op(s.input, *s.args, **s.kwargs)
    except Exception:  # any error torch raises counts
        pass
    else:
        raise MismatchError("torch did not raise for this error input")
    values = {
        pos: jnp.asarray(to_jax_layout(_np(t), spec.layouts.get(pos, "none")))
        for pos, t in _leaves(s)
    }
    i, a, k = _with(s, values, convert_rest=True)
    try:
        spec.fn(i, *a, **k)
    except (ValueError, TypeError, IndexError) as exc:
        return Result("passed", reason=f"{type(exc).__name__}: {exc}")
    raise MismatchError(f"jaxnets did not raise where torch raises {error.error_type.__name__}")


# ------------------------------------------------------------------------------- catalog


@dataclass(frozen=True)
class Case:
    """One case: ``area`` (a torch class or function, or its error inputs), a stable ``id``,
    whether it belongs to the long tail (``slow``), and how to run it."""

    area: str
    id: str
    slow: bool
    run: Callable[[], Result]


def _module_area(info: Any) -> str:
    return info.name  # 'nn.Conv2d'


def _op_area(op: Any) -> str:
    name = op.name.replace("nn.functional.", "F.")
    return name if not op.variant_test_name else f"{name} ({op.variant_test_name})"


# The long tail: of op_db's 1,440 max_pool2d samples (every combination of its options,
# in a fixed order) every FAST_EVERY-th runs by default. A prime step cuts across the
# product of options (every 24th had only ceil mode, indices, no dilation, no padding).
FAST_EVERY = {"nn.functional.max_pool2d": 29}


def _torch_test_tables() -> tuple[list[Any], list[Any]]:
    """``module_db`` and ``op_db`` (importing them needs ``expecttest``; ``conftest.py``
    keeps the ``torch.backends`` flags that torch's test utilities freeze settable)."""
    from torch.testing._internal.common_methods_invocations import op_db
    from torch.testing._internal.common_modules import module_db

    return module_db, op_db


def _module_cases() -> Iterator[Case]:
    module_db, _ = _torch_test_tables()

    for info in module_db:
        if info.module_cls not in MODULES or torch.float64 not in info.dtypes:
            continue
        modes = (True, False) if info.train_and_eval_differ else (True,)
        for training in modes:
            torch.manual_seed(0)
            inputs = info.module_inputs_func(
                info, device="cpu", dtype=torch.float64, requires_grad=False, training=training
            )
            for i, mi in enumerate(inputs):
                mode = "train" if training else "eval"
                cid = f"{info.name}/{mode}/{i}-{mi.desc or 'default'}"
                run = functools.partial(run_module_case, info, mi, training, cid)
                yield Case(_module_area(info), cid, False, run)
        if info.module_error_inputs_func is not None:
            torch.manual_seed(0)
            errors = info.module_error_inputs_func(
                info, device="cpu", dtype=torch.float64, requires_grad=False, training=True
            )
            for i, e in enumerate(errors):
                cid = f"{info.name}/error/{i}"
                yield Case(
                    f"errors: {_module_area(info)}", cid, False,
                    functools.partial(run_module_error, info, e),
                )  # fmt: skip


def _op_cases() -> Iterator[Case]:
    _, op_db = _torch_test_tables()

    for op in op_db:
        if op.name not in OPS or torch.float64 not in op.supported_dtypes("cpu"):
            continue
        torch.manual_seed(0)
        every = FAST_EVERY.get(op.name, 1)
        for i, s in enumerate(op.sample_inputs("cpu", torch.float64, requires_grad=False)):
            cid = f"{_op_area(op)}/{i}"
            yield Case(
                _op_area(op), cid, i % every != 0, functools.partial(run_op_case, op, s, cid)
            )
        if op.error_inputs_func is not None:
            torch.manual_seed(0)
            for i, e in enumerate(op.error_inputs("cpu")):
                cid = f"{_op_area(op)}/error/{i}"
                yield Case(
                    f"errors: {_op_area(op)}", cid, False, functools.partial(run_op_error, op, e)
                )


@functools.cache
def cases() -> tuple[Case, ...]:
    """Every case, module classes first, then functions, each with its error inputs."""
    return (*_module_cases(), *_op_cases())


# What jaxnets refuses on purpose, by area: a refusal with any other message is a failure.
REFUSED: dict[str, tuple[str, ...]] = {
    "F.batch_norm": ("1-D input has no channel axis to put last",),
    "F.embedding": ("max_norm renormalises the weight in place",),
}


def run(case: Case) -> Result:
    """Run a case: passed, unsupported (a known refusal, with the reason) or failed (with
    what differed, or an unexpected refusal)."""
    try:
        with warnings.catch_warnings():
            # torch's own notes on its samples: a 3-D dropout2d input is read as (N, C, L)
            # today and will be read as (C, H, W); an even 'same' kernel copies its input
            warnings.filterwarnings("ignore", "dropout2d: Received a", UserWarning)
            warnings.filterwarnings("ignore", "Using padding='same' with even", UserWarning)
            return case.run()
    except UnsupportedError as exc:
        if any(known in str(exc) for known in REFUSED.get(case.area, ())):
            return Result("unsupported", reason=str(exc))
        return Result("failed", reason=f"refused: {exc}")
    except MismatchError as exc:
        return Result("failed", reason=str(exc))
    except Exception as exc:  # a crash is a failure to report, with its type
        return Result("failed", reason=f"{type(exc).__name__}: {exc}")


# -------------------------------------------------------------------------------- report


def table(results: list[tuple[Case, Result]]) -> str:
    """The per-area table: torch's cases, passed, unsupported (reasons below), failed, the
    worst float64 relative error (over tensors the bound judges relatively) and the largest
    fraction of the float64 bound any compared tensor used."""
    areas: dict[str, list[Result]] = {}
    for case, res in results:
        areas.setdefault(case.area, []).append(res)
    head = (
        f"{'area':<32} {'cases':>6} {'passed':>6} {'unsup.':>6} {'failed':>6} "
        f"{'worst rel':>9} {'bound used':>10}"
    )
    lines = [head, "-" * len(head)]
    notes: list[str] = []
    for area, res in areas.items():
        n = {s: sum(r.status == s for r in res) for s in ("passed", "unsupported", "failed")}
        ok = [r for r in res if r.status == "passed"]
        if area.startswith("errors:"):
            worst_s = used_s = "-"
        else:
            worst_s = f"{max((r.worst for r in ok), default=0.0):.1e}"
            used_s = f"{max((r.used for r in ok), default=0.0):.2f}"
        lines.append(
            f"{area:<32} {len(res):>6} {n['passed']:>6} {n['unsupported']:>6} {n['failed']:>6} "
            f"{worst_s:>9} {used_s:>10}"
        )
        for why in sorted({r.reason for r in res if r.status == "unsupported"}):
            count = sum(r.reason == why for r in res if r.status == "unsupported")
            notes.append(f"  {area}: {count} unsupported: {why}")
        notes += [f"  {area}: FAILED: {r.reason}" for r in res if r.status == "failed"]
    total = [r for _, r in results]
    lines.append("-" * len(head))
    counts = [sum(r.status == s for r in total) for s in ("passed", "unsupported", "failed")]
    lines.append(f"{'total':<32} {len(total):>6} {counts[0]:>6} {counts[1]:>6} {counts[2]:>6}")
    return "\n".join(lines + (["", *notes] if notes else []))


def main() -> None:
    """Run every case (the long tail included) and print the table."""
    jax.config.update("jax_enable_x64", True)
    from torchref.precision import pin_full_precision

    pin_full_precision()
    torch.set_num_threads(1)
    results = [(c, run(c)) for c in cases()]
    print(table(results))


if __name__ == "__main__":
    main()
