"""The built-in diagnoses: one function per torch layer type, each registered with
:func:`~torchref.explain.diagnosis.register_diagnosis` at the bottom of this module.

Each recomputes the torch layer on the twin's input under the usual porting faults and lets
the numbers decide (:meth:`~torchref.explain.diagnosis.Diagnosis.test`), compares the two
modules' settings, and names the layer type's usual suspects:

==================  ==========================================================================
torch layer         what is tested
==================  ==========================================================================
nn.Linear           kernel used untransposed, bias missing, TF32 operands
conv (_ConvNd)      kernel size, stride/dilation/groups, padding ('SAME' against torch's 0),
                    TF32 operands
BatchNorm (any)     eps, train/eval mode; after the pass: momentum m for 1 - m, biased running
                    variance, no update, num_batches_tracked
conv padding_mode   zeros where torch pads with reflect, replicate or circular
nn.LayerNorm        eps (Flax 1e-6, torch 1e-5), nnx's fast variance in float32
nn.GELU             tanh approximation against erf
dropout (any)       training mode (each framework draws its own mask), the twin in the
                    other mode (it drops where torch does not, or the reverse)
MaxPool2d,          padding (none, or zeros instead of -inf), ceil_mode, stride 1 (Flax's
AvgPool2d           pooling default) instead of the kernel size, count_include_pad
adaptive pools      fixed windows (kernel and stride H // out, or the usual emulations)
                    where torch's adaptive windows are uneven
any other leaf      which elementwise function each side applies
==================  ==========================================================================

A new diagnosis is a function of one ``Diagnosis`` and one ``register_diagnosis`` call.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from flax import nnx

from jaxnets import nn as jnn
from jaxnets.testing import leaf_diff
from jaxnets.tolerances import TF32_RELATIVE_ERROR
from torchref.explain.arrays import as_float64, as_numpy, param_float64, tf32_round
from torchref.explain.diagnosis import Diagnosis, elementwise_mismatch, register_diagnosis

__all__ = [
    "diagnose_adaptive_pool",
    "diagnose_batchnorm",
    "diagnose_conv",
    "diagnose_conv_padding_mode",
    "diagnose_dropout",
    "diagnose_elementwise",
    "diagnose_gelu",
    "diagnose_layernorm",
    "diagnose_linear",
    "diagnose_pool",
    "diagnose_running_stats",
    "tf32_test",
]

_TF32_FIX = "jax_default_matmul_precision='highest'; torch allow_tf32=False"


def diagnose_linear(diag: Diagnosis) -> None:
    """nn.Linear: a kernel used untransposed, a bias one side lacks, TF32 operands."""
    ctx, mod = diag.ctx, diag.ctx.module
    diag.suspect("linear_kernel_untransposed", "Linear kernel not transposed", "kernel = weight.T")
    if ctx.env_tf32:
        diag.suspect("tf32", "TF32 on a GPU", _TF32_FIX)
    if ctx.x_f is None:
        return
    x = as_float64(ctx.x_f)
    w, b = param_float64(mod, "weight"), param_float64(mod, "bias")
    fm = ctx.flax_module
    if isinstance(fm, nnx.Linear) and (fm.bias is not None) != (b is not None):
        diag.add(
            "linear_bias",
            "bias: the twin and torch disagree on having one",
            "config",
            f"twin use_bias={fm.bias is not None}, torch bias={b is not None}",
            "pass use_bias to match torch's bias=...",
        )
    if w.shape[0] == w.shape[1]:
        pred = x @ w + (0 if b is None else b)
        diag.test(
            "linear_kernel_untransposed",
            "Linear kernel not transposed (torch weight [out, in] used as kernel [in, out])",
            pred,
            "kernel = weight.T; use jaxnets.convert.load_state_dict / torch_to_flax",
        )
    else:
        diag.ruled_keys.add("linear_kernel_untransposed")
        diag.ruled_out.append(
            f"kernel not transposed (a {w.shape[0]}x{w.shape[1]} weight cannot be used "
            f"untransposed: the shapes would not fit)"
        )
    if b is not None:
        diag.test(
            "linear_bias",
            "the twin adds no bias",
            F.linear(x, w),
            "use_bias=True and copy torch's bias",
        )
    if ctx.dtype == np.float32:
        pred = F.linear(as_float64(tf32_round(ctx.x_f)), as_float64(tf32_round(as_numpy(w))), b)
        tf32_test(diag, pred)


def tf32_test(diag: Diagnosis, pred: torch.Tensor) -> None:
    """Test TF32 both ways round with ``pred``, the layer recomputed on TF32-rounded operands:
    in the twin (``pred`` reproduces it), in torch, or TF32-sized errors on a TF32 machine."""
    ctx, base = diag.ctx, diag.baseline
    fix = (
        "pin true float32: jax.config.update('jax_default_matmul_precision', 'highest') and "
        "torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False"
    )
    if diag.test("tf32", "TF32 matmul/convolution in the twin (10-bit mantissa)", pred, fix):
        return
    # the other way round: torch computed in TF32 and the twin in float32
    if ctx.y_t is not None and ctx.x_t is not None and ctx.env_tf32:
        d = leaf_diff(ctx.y_t, as_numpy(pred), rtol=ctx.tol.rtol, atol=ctx.tol.atol)
        if d.ok:
            diag.add("tf32", "TF32 matmul/convolution on the torch side", "confirmed", "", fix)
    lo, hi = TF32_RELATIVE_ERROR
    if ctx.env_tf32 and base is not None and lo <= base.max_rel <= hi:
        diag.add(
            "tf32",
            "TF32 on the GPU (float32 matmuls/convolutions with a 10-bit mantissa)",
            "likely",
            f"relative error {base.max_rel:.1e} is TF32-sized (2^-11 = 4.9e-4 per operand) and "
            + "; ".join(ctx.env_tf32),
            fix,
        )


def _flax_conv_padding(
    fm: nnx.Conv, in_hw: tuple[int, ...], k: tuple[int, ...], s: tuple[int, ...], d: tuple[int, ...]
) -> list[tuple[int, int]] | None:
    p = fm.padding
    n = len(in_hw)
    if isinstance(p, str):
        if p.upper() == "VALID":
            return [(0, 0)] * n
        if p.upper() == "SAME":
            pads = []
            for i in range(n):
                out = -(-in_hw[i] // s[i])
                total = max((out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in_hw[i], 0)
                pads.append((total // 2, total - total // 2))
            return pads
        return None
    if isinstance(p, int):
        return [(p, p)] * n
    pads = []
    for q in p:
        pads.append((q, q) if isinstance(q, int) else (int(q[0]), int(q[1])))
    return pads if len(pads) == n else None


def _tuple(v: Any, n: int) -> tuple[int, ...]:
    if v is None:
        return (1,) * n
    return (int(v),) * n if isinstance(v, int) else tuple(int(a) for a in v)


def diagnose_conv(diag: Diagnosis) -> None:
    """Convolutions: kernel size, stride/dilation/groups and padding settings; padding and
    TF32 operands recomputed."""
    ctx, mod = diag.ctx, diag.ctx.module
    diag.suspect(
        "conv_padding", "conv padding 'SAME' (nnx default) against torch's 0", "explicit padding"
    )
    diag.suspect(
        "weight_layout", "conv kernel layout [O, I, kH, kW] -> [kH, kW, I, O]", "jaxnets.convert"
    )
    if ctx.env_tf32:
        diag.suspect("tf32", "TF32 on a GPU (cuDNN allow_tf32 defaults to True)", "pin float32")
    fm = ctx.flax_module
    if ctx.x_f is None or not isinstance(fm, nnx.Conv) or mod.padding_mode != "zeros":
        return
    nsp = len(mod.kernel_size)
    in_hw = tuple(ctx.x_f.shape[2:])
    k, s, dil = tuple(mod.kernel_size), tuple(mod.stride), tuple(mod.dilation)
    if isinstance(mod.padding, str):
        if mod.padding == "valid":
            t_pad = [(0, 0)] * nsp
        else:  # torch 'same' (stride 1): total d*(k-1), the extra one on the right
            t_pad = [
                ((dil[i] * (k[i] - 1)) // 2, dil[i] * (k[i] - 1) - (dil[i] * (k[i] - 1)) // 2)
                for i in range(nsp)
            ]
    else:
        t_pad = [(int(p), int(p)) for p in mod.padding]
    fk = _tuple(fm.kernel_size, nsp)
    fs, fd = _tuple(fm.strides, nsp), _tuple(fm.kernel_dilation, nsp)
    f_pad = _flax_conv_padding(fm, in_hw, fk, fs, fd)
    w, b = param_float64(mod, "weight"), param_float64(mod, "bias")
    x = as_float64(ctx.x_f)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nsp]
    if fk != k:
        diag.add(
            "conv_kernel_size",
            f"kernel size: twin {fk}, torch {k}",
            "config",
            "an int kernel_size makes nnx.Conv 1-D" if len(fk) != len(k) else "",
            f"kernel_size={k}",
        )
    if (fs, fd, fm.feature_group_count) != (s, dil, mod.groups):
        diag.add(
            "conv_config",
            "stride / dilation / groups differ",
            "config",
            f"twin strides={fs} kernel_dilation={fd} feature_group_count={fm.feature_group_count}; "
            f"torch stride={s} dilation={dil} groups={mod.groups}",
            "pass torch's stride, dilation and groups to nnx.Conv",
        )
    if f_pad is not None and f_pad != t_pad:
        label = f"'{fm.padding}'" if isinstance(fm.padding, str) else str(f_pad)
        shape_note = ""
        if ctx.row.shape_mismatch:
            shape_note = (
                f"; the twin's output is {ctx.row.flax_shape}, torch's {ctx.row.torch_shape}"
            )
        diag.add(
            "conv_padding",
            f"convolution padding: twin {label} = {f_pad}, torch {t_pad}",
            "config",
            f"nnx.Conv defaults to padding='SAME', torch to 0{shape_note}",
            f"padding={tuple(p for p, _ in t_pad)!r} as explicit pairs "
            f"({[tuple(p) for p in t_pad]}), e.g. jaxnets.nn.Conv2d",
        )
        if (fs, fd, fm.feature_group_count) == (s, dil, mod.groups) and fk == k:
            flat = [p for pair in reversed(f_pad) for p in pair]
            pred = conv(F.pad(x, flat), w, b, s, 0, dil, mod.groups)
            diag.test(
                "conv_padding",
                f"convolution padding: twin {label} = {f_pad}, torch {t_pad}",
                pred,
                f"pass torch's explicit padding {[tuple(p) for p in t_pad]} to nnx.Conv "
                "(jaxnets.nn.Conv2d does)",
            )
    if ctx.dtype == np.float32 and not ctx.row.shape_mismatch:
        pred = conv(
            as_float64(tf32_round(ctx.x_f)),
            as_float64(tf32_round(as_numpy(w))),
            b,
            s,
            mod.padding,
            dil,
            mod.groups,
        )
        tf32_test(diag, pred)


def _bn_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    axes = tuple(i for i in range(x.ndim) if i != 1)
    xs = x.astype(np.float64)
    n = int(np.prod([x.shape[i] for i in axes]))
    mean = xs.mean(axis=axes)
    var = xs.var(axis=axes)
    return mean, var, var * n / max(n - 1, 1), n


def diagnose_batchnorm(diag: Diagnosis) -> None:
    """BatchNorm's output: eps and train/eval mode, as settings and recomputed."""
    ctx, mod = diag.ctx, diag.ctx.module
    fix = "jaxnets.nn.BatchNorm1d/2d"
    diag.suspect("bn_momentum", "momentum m where Flax wants 1 - m", fix)
    diag.suspect("bn_biased_running_var", "biased running variance", fix)
    diag.suspect("bn_mode", "train/eval mode differs", "model.train()/model.eval() on both")
    fm = ctx.flax_module
    if isinstance(fm, nnx.BatchNorm) and not math.isclose(fm.epsilon, mod.eps, rel_tol=1e-9):
        diag.add(
            "bn_eps",
            f"BatchNorm eps: twin {fm.epsilon:g}, torch {mod.eps:g}",
            "config",
            "",
            f"epsilon={mod.eps:g}",
        )
    if isinstance(fm, nnx.BatchNorm) and bool(fm.use_running_average) == mod.training:
        diag.add(
            "bn_mode",
            "train/eval mode differs: one side normalises with batch statistics, the other "
            "with running statistics",
            "config",
            f"torch training={mod.training}, twin use_running_average={fm.use_running_average}",
            "call model.train() / model.eval() on both sides (nnx: model.eval() sets "
            "use_running_average=True)",
        )
    if ctx.x_f is None:
        return
    x = as_float64(ctx.x_f)
    w, b = param_float64(mod, "weight"), param_float64(mod, "bias")
    prefix = f"{ctx.row.name}." if ctx.row.name else ""
    rm = ctx.buffers_before.get(prefix + "running_mean")
    rv = ctx.buffers_before.get(prefix + "running_var")
    eps = fm.epsilon if isinstance(fm, nnx.BatchNorm) else mod.eps
    if rm is not None and rv is not None:
        other = not mod.training
        pred = F.batch_norm(x, rm.double().clone(), rv.double().clone(), w, b, other, 0.0, eps)
        diag.test(
            "bn_mode",
            "train/eval mode differs (the twin used "
            + ("batch" if other else "running")
            + " statistics)",
            pred,
            "call model.train() / model.eval() on both sides",
        )
    if isinstance(fm, nnx.BatchNorm) and fm.epsilon != mod.eps:
        pred = F.batch_norm(
            x,
            None if rm is None else rm.double().clone(),
            None if rv is None else rv.double().clone(),
            w,
            b,
            mod.training or rm is None,
            0.0,
            fm.epsilon,
        )
        diag.test(
            "bn_eps",
            f"BatchNorm eps {fm.epsilon:g} (torch {mod.eps:g})",
            pred,
            # jaxnets.nn.BatchNorm1d/2d take torch's name for it; nnx.BatchNorm Flax's
            f"eps={mod.eps:g}" if hasattr(fm, "torch_momentum") else f"epsilon={mod.eps:g}",
        )


def diagnose_running_stats(diag: Diagnosis) -> None:
    """BatchNorm after the pass: which update rule gives the twin's running statistics?"""
    ctx, mod = diag.ctx, diag.ctx.module
    prefix = f"{ctx.row.name}." if ctx.row.name else ""
    km, kv, kn = (prefix + s for s in ("running_mean", "running_var", "num_batches_tracked"))
    fm = ctx.flax_module
    m_t = mod.momentum
    if isinstance(fm, nnx.BatchNorm):
        if hasattr(fm, "torch_momentum"):  # jaxnets.nn.BatchNorm1d: torch's convention
            tm = fm.torch_momentum
            if tm is not None and m_t is not None and not math.isclose(tm, m_t):
                diag.add(
                    "bn_momentum",
                    f"BatchNorm momentum: twin torch_momentum={tm:g}, torch momentum={m_t:g}",
                    "config",
                    "" if not math.isclose(tm, 1 - m_t) else "the twin's is 1 - m",
                    f"{type(fm).__name__}(..., momentum={m_t:g}): it takes torch's "
                    f"convention, the same number as torch",
                )
        elif m_t is not None and not math.isclose(fm.momentum, 1 - m_t):
            diag.add(
                "bn_momentum",
                f"BatchNorm momentum: nnx momentum={fm.momentum:g}, torch momentum={m_t:g}",
                "config",
                f"Flax's momentum weighs the OLD running value: it must be 1 - m = {1 - m_t:g}",
                f"nnx.BatchNorm(momentum={1 - m_t:g}), or jaxnets.nn.BatchNorm1d (2d for "
                f"images), which take torch's",
            )
    if ctx.x_t is None or km not in ctx.buffers_before or km not in ctx.buffers_after_f:
        return
    x = ctx.x_f if ctx.x_f is not None and ctx.x_f.shape == ctx.x_t.shape else ctx.x_t
    mean, var_b, var_u, _ = _bn_stats(x)
    rm0 = as_numpy(ctx.buffers_before[km]).astype(np.float64)
    rv0 = as_numpy(ctx.buffers_before[kv]).astype(np.float64)
    nbt = int(as_numpy(ctx.buffers_before[kn])) if kn in ctx.buffers_before else 0
    m = (1.0 / (nbt + 1)) if m_t is None else m_t
    obs_m, obs_v = ctx.buffers_after_f[km], ctx.buffers_after_f.get(kv)
    tol = ctx.tol

    def fits(pred: np.ndarray, obs: np.ndarray | None) -> bool:
        return obs is not None and leaf_diff(obs, pred, rtol=tol.rtol, atol=tol.atol).ok

    if fits(rm0, obs_m) and fits(rv0, obs_v):  # the twin did not update at all
        eval_mode = isinstance(fm, nnx.BatchNorm) and bool(fm.use_running_average)
        diag.add(
            "bn_mode" if eval_mode else "bn_no_update",
            "the twin did not update its running statistics"
            + (" (it is in eval mode)" if eval_mode else ""),
            "confirmed",
            "its running_mean and running_var are still the values before the pass",
            "call model.train() on the twin (nnx: use_running_average=False)"
            if eval_mode
            else "update mean/var in the twin's training forward pass",
        )
        return
    rules = {
        ("m", "unbiased"): (m, var_u),
        ("1-m", "unbiased"): (1 - m, var_u),
        ("m", "biased"): (m, var_b),
        ("1-m", "biased"): (1 - m, var_b),
    }
    fix_m = (
        f"torch momentum m={m:g} weighs the NEW batch statistic; Flax's momentum weighs the OLD "
        f"running value: nnx.BatchNorm(momentum={1 - m:g}) or jaxnets.nn.BatchNorm1d/2d"
    )
    fix_v = (
        "torch updates running_var with the UNBIASED batch variance (x n/(n-1)) while "
        "nnx.BatchNorm uses the biased one: use jaxnets.nn.BatchNorm1d (2d for images)"
    )
    mean_rule = next(
        (r for r, mm in (("m", m), ("1-m", 1 - m)) if fits((1 - mm) * rm0 + mm * mean, obs_m)),
        None,
    )
    var_rule = None
    for (mr, vr), (mm, vv) in rules.items():
        if fits((1 - mm) * rv0 + mm * vv, obs_v):
            var_rule = (mr, vr)
            break
    if mean_rule == "1-m" or (var_rule is not None and var_rule[0] == "1-m"):
        which = "running_mean" if mean_rule == "1-m" else "running_var"
        diag.add(
            "bn_momentum",
            f"BatchNorm momentum used as {1 - m:g} instead of {m:g} (m for 1 - m)",
            "confirmed",
            f"the twin's {which} equals the update with momentum {1 - m:g} (to tolerance); "
            f"torch's uses {m:g}",
            fix_m,
        )
    if var_rule is not None and var_rule[1] == "biased":
        diag.add(
            "bn_biased_running_var",
            "running variance updated with the BIASED batch variance",
            "confirmed",
            f"the twin's running_var equals the update with the biased variance (n = "
            f"{x.size // x.shape[1]} values per channel); torch uses the unbiased one",
            fix_v,
        )
    if mean_rule is None and var_rule is None:
        diag.ruled_out.append("momentum m vs 1-m, biased vs unbiased running variance")
        diag.add(
            "bn_update",
            "running statistics follow none of the usual update rules",
            "possible",
            "tried momentum m and 1-m with biased and unbiased variance",
            "check that the twin updates mean/var once per training forward pass",
        )
    counts = (ctx.buffers_after_t.get(kn), ctx.buffers_after_f.get(kn))
    if None not in counts and not np.array_equal(*counts):
        diag.add(
            "bn_num_batches_tracked",
            "num_batches_tracked not counted as torch counts it",
            "confirmed",
            f"twin {int(counts[1])}, torch {int(counts[0])}",
            "use jaxnets.nn.BatchNorm1d (2d for images), which counts training batches",
        )


def diagnose_layernorm(diag: Diagnosis) -> None:
    """nn.LayerNorm: eps (Flax's default against torch's), recomputed; fast variance."""
    ctx, mod = diag.ctx, diag.ctx.module
    diag.suspect("layernorm_eps", "LayerNorm eps (Flax 1e-6, torch 1e-5)", "epsilon=1e-5")
    fm = ctx.flax_module
    fix = f"nnx.LayerNorm(..., epsilon={mod.eps:g}) (Flax defaults to 1e-6, torch to 1e-5)"
    if isinstance(fm, nnx.LayerNorm) and not math.isclose(fm.epsilon, mod.eps, rel_tol=1e-9):
        diag.add(
            "layernorm_eps",
            f"LayerNorm eps: twin {fm.epsilon:g}, torch {mod.eps:g}",
            "config",
            "Flax's nnx.LayerNorm defaults to epsilon=1e-6, torch's to 1e-5",
            fix,
        )
    if ctx.x_f is None:
        return
    x = as_float64(ctx.x_f)
    w, b = param_float64(mod, "weight"), param_float64(mod, "bias")
    candidates = [1e-6, 1e-5, 1e-12]
    if isinstance(fm, nnx.LayerNorm):
        candidates.insert(0, float(fm.epsilon))
    for eps in dict.fromkeys(candidates):
        if math.isclose(eps, mod.eps):
            continue
        pred = F.layer_norm(x, mod.normalized_shape, w, b, eps)
        if diag.test(
            "layernorm_eps",
            f"LayerNorm eps {eps:g} instead of torch's {mod.eps:g}",
            pred,
            fix,
        ):
            break
    if isinstance(fm, nnx.LayerNorm) and fm.use_fast_variance and ctx.dtype == np.float32:
        diag.add(
            "layernorm_fast_variance",
            "nnx.LayerNorm computes the variance as E[x^2] - E[x]^2 (use_fast_variance=True)",
            "possible",
            "in float32 that cancels badly when |mean| >> std; torch uses two passes",
            "nnx.LayerNorm(..., use_fast_variance=False)",
        )


def _same_shape_in_and_out(diag: Diagnosis) -> bool:
    ctx = diag.ctx
    return ctx.x_f is not None and ctx.y_f is not None and ctx.x_f.shape == ctx.y_f.shape


def diagnose_elementwise(diag: Diagnosis) -> None:
    """Any other leaf layer: which elementwise function maps each side's input to its output?"""
    ctx = diag.ctx
    if any(True for _ in ctx.module.children()) or not _same_shape_in_and_out(diag):
        return
    elementwise_mismatch(diag, ctx.x_t, ctx.y_t, ctx.x_f, ctx.y_f, where=ctx.row.label)


def _dropped(x: np.ndarray, y: np.ndarray, p: float, diag: Diagnosis) -> bool:
    """Whether ``y`` is a dropout of ``x`` with rate ``p``: every value 0 or ``x / (1 - p)``,
    some of them 0 (where ``x`` is not)."""
    if not 0 < p < 1:
        return False
    kept = y != 0
    tol = diag.ctx.tol
    expected = np.where(kept, x / (1 - p), 0)
    scaled = leaf_diff(np.where(kept, y, 0), expected, rtol=tol.rtol, atol=tol.atol)
    return scaled.ok and bool(np.any(~kept & (x != 0)))


def diagnose_dropout(diag: Diagnosis) -> None:
    """Dropout: the two sides in different modes (the twin drops where torch does not, or
    returns its input where torch drops), found from the numbers; in training mode on both
    sides the random masks differ by design; else as any elementwise layer."""
    ctx, mod = diag.ctx, diag.ctx.module
    if not _same_shape_in_and_out(diag):
        return
    x_f, y_f = np.asarray(ctx.x_f, np.float64), np.asarray(ctx.y_f, np.float64)
    fix_eval = (
        "call model.eval() on the twin as on torch (nnx: Dropout.deterministic=True); "
        "jaxnets.nn.Dropout follows model.train()/model.eval() as torch's does"
    )
    if not (mod.training and mod.p > 0) and _dropped(x_f, y_f, mod.p, diag):
        diag.add(
            "dropout_mode",
            f"the twin's dropout (p={mod.p:g}) is in training mode; torch's is not",
            "confirmed",
            f"every twin output is 0 or its input / (1 - {mod.p:g}) (to tolerance), with "
            f"{np.mean(y_f == 0):.0%} zeros; torch's {mod.__class__.__name__} returns its input",
            fix_eval,
        )
        return
    if mod.training and 0 < mod.p < 1 and np.array_equal(x_f, y_f) and x_f.size:
        diag.add(
            "dropout_mode",
            f"the twin's dropout is in eval mode; torch's (p={mod.p:g}) is in training mode",
            "confirmed",
            "the twin's output is its input, unchanged",
            "call model.train() on the twin as on torch (nnx: Dropout.deterministic=False), "
            "or compare both in eval mode",
        )
        return
    if mod.training and mod.p > 0:
        diag.add(
            "dropout_random",
            f"dropout (p={mod.p:g}) in training mode: each framework draws its own random mask",
            "likely",
            "a twin that computes the right function still differs here, by the masks",
            "compare in eval mode (parity.compare(..., mode='eval'), explain(..., mode="
            "'eval')), or with p=0 on both sides",
        )
        return
    diagnose_elementwise(diag)


def diagnose_gelu(diag: Diagnosis) -> None:
    """nn.GELU: the other approximation (jax.nn.gelu defaults to tanh, torch to erf)."""
    ctx, mod = diag.ctx, diag.ctx.module
    diag.suspect(
        "gelu_approximation",
        "GELU: jax.nn.gelu defaults to tanh, torch to erf",
        "approximate=False",
    )
    if not _same_shape_in_and_out(diag):
        return
    other = "tanh" if mod.approximate == "none" else "none"
    diag.test(
        "gelu_approximation",
        f"GELU approximation: the twin uses approximate={other!r}, torch {mod.approximate!r}",
        F.gelu(as_float64(ctx.x_f), approximate=other),
        "jax.nn.gelu(x, approximate=False) for torch's nn.GELU() (jax defaults to tanh)"
        if other == "tanh"
        else "jax.nn.gelu(x, approximate=True) for nn.GELU(approximate='tanh')",
    )
    if diag.causes:
        return
    diagnose_elementwise(diag)


def diagnose_conv_padding_mode(diag: Diagnosis) -> None:
    """A convolution whose torch padding_mode is reflect, replicate or circular, recomputed
    with zeros (``nnx.Conv``'s only explicit padding)."""
    ctx, mod = diag.ctx, diag.ctx.module
    if mod.padding_mode == "zeros" or ctx.x_f is None:
        return
    fm = ctx.flax_module
    fix = (
        f"jaxnets.nn.Conv{len(mod.kernel_size)}d(..., padding_mode={mod.padding_mode!r}), "
        f"or jnp.pad(x, ..., mode="
        f"{ {'reflect': 'reflect', 'replicate': 'edge', 'circular': 'wrap'}[mod.padding_mode]!r}"
        f") before a 'VALID' convolution"
    )
    twin_mode = getattr(fm, "padding_mode", None)
    if twin_mode is not None and twin_mode != mod.padding_mode:
        diag.add(
            "conv_padding_mode",
            f"convolution padding_mode: twin {twin_mode!r}, torch {mod.padding_mode!r}",
            "config",
            "",
            fix,
        )
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[len(mod.kernel_size)]
    w, b = param_float64(mod, "weight"), param_float64(mod, "bias")
    pred = conv(as_float64(ctx.x_f), w, b, mod.stride, mod.padding, mod.dilation, mod.groups)
    diag.test(
        "conv_padding_mode",
        f"the twin pads with zeros where torch pads with padding_mode={mod.padding_mode!r}",
        pred,
        fix,
    )


def _pool_settings(mod: Any, is_max: bool) -> dict[str, Any]:
    """A pool's settings (torch's, or a jaxnets pool's) as pairs (``stride`` None is the
    kernel size)."""

    def pair(v: Any) -> tuple[int, int]:
        return (int(v), int(v)) if isinstance(v, int) else tuple(int(a) for a in v)  # type: ignore[return-value]

    out = {
        "kernel_size": pair(mod.kernel_size),
        "stride": pair(mod.stride if mod.stride is not None else mod.kernel_size),
        "padding": pair(mod.padding),
        "ceil_mode": bool(mod.ceil_mode),
    }
    if is_max:
        out["dilation"] = pair(mod.dilation)
    else:
        out["count_include_pad"] = bool(mod.count_include_pad)
        out["divisor_override"] = mod.divisor_override
    return out


def diagnose_pool(diag: Diagnosis) -> None:
    """MaxPool2d / AvgPool2d: the settings of a jaxnets pool compared, and the usual porting
    faults recomputed: no padding, zero padding under a max (where torch's is -inf), the
    other ceil_mode, stride 1 (Flax's ``nnx.max_pool``/``avg_pool`` default) instead of
    torch's default of the kernel size, and the other ``count_include_pad``."""
    ctx, mod = diag.ctx, diag.ctx.module
    is_max = isinstance(mod, nn.MaxPool2d)
    kind = "MaxPool2d" if is_max else "AvgPool2d"
    diag.suspect("pool_padding", f"{kind} padding", f"jaxnets.nn.{kind} with torch's arguments")
    diag.suspect("pool_ceil_mode", f"{kind} ceil_mode", f"jaxnets.nn.{kind}(..., ceil_mode=...)")
    t = _pool_settings(mod, is_max)
    fm = ctx.flax_module
    if isinstance(fm, jnn.MaxPool2d if is_max else jnn.AvgPool2d):
        f = _pool_settings(fm, is_max)
        for name, key in (
            ("kernel_size", "pool_config"), ("stride", "pool_stride"),
            ("padding", "pool_padding"), ("dilation", "pool_config"),
            ("ceil_mode", "pool_ceil_mode"), ("count_include_pad", "pool_count_include_pad"),
            ("divisor_override", "pool_config"),
        ):  # fmt: skip
            if name in t and f[name] != t[name]:
                title = f"{kind} {name}: twin {f[name]}, torch {t[name]}"
                diag.add(key, title, "config", "", f"{kind}(..., {name}={t[name]})")
    if ctx.x_f is None:
        return
    x = as_float64(ctx.x_f)
    s, p, cm = t["stride"], t["padding"], t["ceil_mode"]

    def pool(x: torch.Tensor, **change: Any) -> torch.Tensor:
        a = {**t, **change}
        if is_max:
            return F.max_pool2d(x, a["kernel_size"], a["stride"], a["padding"], a["dilation"],
                                a["ceil_mode"])  # fmt: skip
        return F.avg_pool2d(x, a["kernel_size"], a["stride"], a["padding"], a["ceil_mode"],
                            a["count_include_pad"], a["divisor_override"])  # fmt: skip

    fix = f"jaxnets.nn.{kind}({', '.join(f'{n}={v}' for n, v in t.items())})"
    if p != (0, 0):
        diag.test(
            "pool_padding", f"{kind} without torch's padding {p}", pool(x, padding=(0, 0)), fix
        )
        if is_max:
            padded = F.pad(x, (p[1], p[1], p[0], p[0]), value=0.0)
            diag.test(
                "pool_pad_value",
                f"{kind} padded with zeros where torch pads with -inf (a zero padding can be "
                f"the maximum of a window of negative values)",
                pool(padded, padding=(0, 0)),
                f"{fix}: it never takes the padding as a maximum",
            )
    diag.test(
        "pool_ceil_mode",
        f"{kind} ceil_mode={not cm} (torch {cm})",
        pool(x, ceil_mode=not cm),
        f"{kind}(..., ceil_mode={cm}); ceil mode keeps a last window that starts inside the "
        f"input or its left padding",
    )
    if s != (1, 1):
        diag.test(
            "pool_stride",
            f"{kind} stride 1 (Flax's pooling default) where torch's is {s}",
            pool(x, stride=(1, 1)),
            f"strides={s}: torch's stride defaults to the kernel size, Flax's to 1",
        )
    if not is_max and p != (0, 0):
        other = not t["count_include_pad"]
        diag.test(
            "pool_count_include_pad",
            f"AvgPool2d count_include_pad={other} (torch {not other})",
            pool(x, count_include_pad=other),
            f"AvgPool2d(..., count_include_pad={not other})",
        )


def diagnose_adaptive_pool(diag: Diagnosis) -> None:
    """AdaptiveAvgPool2d / AdaptiveMaxPool2d: a fixed-window pool where torch's windows are
    uneven (``[floor(i*H/out), ceil((i+1)*H/out))``), recomputed for the usual emulations."""
    ctx, mod = diag.ctx, diag.ctx.module
    is_max = isinstance(mod, nn.AdaptiveMaxPool2d)
    kind = type(mod).__name__
    fix = f"jaxnets.nn.{kind}({mod.output_size!r}): torch's uneven windows"
    fm = ctx.flax_module
    if isinstance(fm, jnn.AdaptiveAvgPool2d | jnn.AdaptiveMaxPool2d) and fm.output_size != (
        mod.output_size
    ):
        title = f"{kind} output_size: twin {fm.output_size!r}, torch {mod.output_size!r}"
        diag.add("adaptive_output_size", title, "config", "", fix)
    if ctx.x_f is None or ctx.x_f.ndim != 4:
        return
    h, w = ctx.x_f.shape[2:]
    size = mod.output_size
    sizes = (size, size) if isinstance(size, int) else tuple(size)
    oh, ow = (h if sizes[0] is None else sizes[0]), (w if sizes[1] is None else sizes[1])
    if not oh or not ow or (h % oh == 0 and w % ow == 0):
        diag.ruled_out.append(f"{kind} windows ({h}x{w} -> {oh}x{ow} divides: they are regular)")
        return
    x = as_float64(ctx.x_f)
    pool = F.max_pool2d if is_max else F.avg_pool2d
    emulations = {
        "kernel = stride = H // out": ((h // oh, w // ow), (h // oh, w // ow)),
        "stride = H // out, kernel = H - (out - 1) * stride": (
            (h - (oh - 1) * (h // oh), w - (ow - 1) * (w // ow)), (h // oh, w // ow)),
        "kernel = ceil(H / out), stride = H // out": (
            (-(-h // oh), -(-w // ow)), (h // oh, w // ow)),
    }  # fmt: skip
    for name, (kernel, stride) in emulations.items():
        if diag.test(
            "adaptive_windows",
            f"{kind} as a fixed-window pool ({name}: kernel {kernel}, stride {stride}) where "
            f"torch's {h}x{w} -> {oh}x{ow} windows are uneven",
            pool(x, kernel, stride),
            fix,
        ):
            break


register_diagnosis(nn.Linear, diagnose_linear)
register_diagnosis(nn.modules.conv._ConvNd, diagnose_conv)
register_diagnosis(nn.modules.batchnorm._BatchNorm, diagnose_batchnorm)
register_diagnosis(nn.modules.batchnorm._BatchNorm, diagnose_running_stats, kind="buffers")
register_diagnosis(nn.LayerNorm, diagnose_layernorm)
register_diagnosis(nn.GELU, diagnose_gelu)
register_diagnosis(nn.modules.dropout._DropoutNd, diagnose_dropout)
register_diagnosis(nn.modules.conv._ConvNd, diagnose_conv_padding_mode)
register_diagnosis(nn.MaxPool2d, diagnose_pool)
register_diagnosis(nn.AvgPool2d, diagnose_pool)
register_diagnosis(nn.AdaptiveAvgPool2d, diagnose_adaptive_pool)
register_diagnosis(nn.AdaptiveMaxPool2d, diagnose_adaptive_pool)
register_diagnosis(nn.Module, diagnose_elementwise)  # every other leaf layer
