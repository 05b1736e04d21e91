"""The report: its data model (:class:`Cause`, :class:`LayerRow`, :class:`ExplainReport`) and
its text.

The last stage of :func:`torchref.explain.explain`. Alignment fills the rows and the first
divergence, diagnosis fills each row's causes; this module holds what they fill and prints it
(``print(report)``: the table, then why the first divergence happened and what to change).
Plain data and formatting: nothing here runs a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from jaxnets.testing import LeafDiff
from jaxnets.tolerances import Tolerance

__all__ = ["STATUS_RANK", "Cause", "ExplainReport", "LayerRow", "Status", "format_report"]

Status = Literal["confirmed", "likely", "config", "possible"]
#: strongest first: a cause of lower rank replaces a weaker finding with the same key
STATUS_RANK = {"confirmed": 0, "likely": 1, "config": 2, "possible": 3}


@dataclass(frozen=True)
class Cause:
    """One candidate explanation of a divergence.

    Attributes:
      key: stable identifier (``'linear_kernel_untransposed'``, ``'conv_padding'``,
        ``'flatten_nhwc'``, ``'bn_momentum'``, ``'bn_biased_running_var'``, ``'tf32'``,
        ``'gelu_approximation'``, ``'layernorm_eps'``, ...), for tests and tooling.
      title: what is wrong, in one line.
      status: ``'confirmed'`` (recomputing the layer under this fault reproduces the twin
        within tolerance), ``'likely'`` (removes >= 90% of the error), ``'config'`` (the two
        modules' settings differ), ``'possible'`` (a usual suspect, not tested).
      evidence: what was measured.
      fix: what to change in the twin.
    """

    key: str
    title: str
    status: Status
    evidence: str = ""
    fix: str = ""

    def __str__(self) -> str:
        lines = [f"[{self.status}] {self.title} ({self.key})"]
        if self.evidence:
            lines.append(f"    evidence: {self.evidence}")
        if self.fix:
            lines.append(f"    fix: {self.fix}")
        return "\n".join(lines)


@dataclass
class LayerRow:
    """One module, compared in torch layout.

    Attributes:
      index: position in forward (completion) order, from 1.
      name: module path (``'fc1'``, ``'layers.0'``; ``''`` is the whole model).
      torch_type, flax_type: class names; ``flax_type`` is ``'(inferred)'`` for a torch
        module that is a plain function in the twin, ``None`` when the twin has nothing.
      torch_shape, flax_shape: output shapes (the twin's converted to torch layout).
      input, output: errors of the twin's input/output against torch's (None: not compared).
      local: error of the twin's output against the torch layer run on the TWIN's input.
      output_grad: error of ``d loss / d output``.
      param_grad: ``(torch parameter name, error)`` of this layer's worst parameter gradient.
      buffers: ``{torch buffer name: error}`` after the pass.
      note: anything else (shape mismatch, the exception the twin raised here...).
      causes: ranked causes (filled for the first divergence and for layers that fail on
        their own input).
      ruled_out: hypotheses that were tested and do not reproduce the twin.
    """

    index: int
    name: str
    torch_type: str
    flax_type: str | None
    torch_shape: tuple[int, ...] | None
    flax_shape: tuple[int, ...] | None
    torch_in_shape: tuple[int, ...] | None = None
    flax_in_shape: tuple[int, ...] | None = None
    input: LeafDiff | None = None
    output: LeafDiff | None = None
    local: LeafDiff | None = None
    output_grad: LeafDiff | None = None
    param_grad: tuple[str, LeafDiff] | None = None
    buffers: dict[str, LeafDiff] = field(default_factory=dict)
    note: str = ""
    error: str | None = None
    inherits: bool = False
    causes: list[Cause] = field(default_factory=list)
    ruled_out: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The name to print: ``'(model)'`` for the root."""
        return self.name or "(model)"

    @property
    def shape_mismatch(self) -> bool:
        """Both sides produced an array output, of different shapes."""
        return (
            self.torch_shape is not None
            and self.flax_shape is not None
            and self.torch_shape != self.flax_shape
        )

    @property
    def input_shape_mismatch(self) -> bool:
        """Both sides' inputs are arrays, of different shapes."""
        return (
            self.torch_in_shape is not None
            and self.flax_in_shape is not None
            and self.torch_in_shape != self.flax_in_shape
        )

    @property
    def input_bad(self) -> bool:
        """The twin's input to this layer differs from torch's (values or shape)."""
        return self.input_shape_mismatch or (self.input is not None and not self.input.ok)

    @property
    def layer_bad(self) -> bool:
        """This layer itself computes differently (or raised, or changed the shape)."""
        if self.error is not None:
            return not self.input_shape_mismatch
        if self.inherits:  # a container whose children already diverge
            return False
        if self.shape_mismatch:
            return not self.input_shape_mismatch
        if self.local is not None:
            return not self.local.ok
        return self.output is not None and not self.output.ok and not self.input_bad

    @property
    def forward_bad(self) -> bool:
        """Input, output or shape differs, or the twin raised here."""
        return self.layer_bad or self.input_bad or (self.output is not None and not self.output.ok)

    @property
    def buffers_bad(self) -> bool:
        """A buffer (running statistic) differs after the pass."""
        return any(not d.ok for d in self.buffers.values())

    @property
    def grad_bad(self) -> bool:
        """``d loss / d output`` or a parameter gradient differs."""
        return (self.output_grad is not None and not self.output_grad.ok) or (
            self.param_grad is not None and not self.param_grad[1].ok
        )

    @property
    def status(self) -> str:
        """One word for the table."""
        if self.error is not None:
            return "RAISED"
        if self.layer_bad:
            return "SHAPE" if self.shape_mismatch else "LAYER"
        if self.input_bad:
            return "INPUT"
        if self.output is not None and not self.output.ok:
            return "OUTPUT"
        if self.buffers_bad:
            return "BUFFERS"
        if self.grad_bad:
            return "GRAD"
        if self.output is None and self.flax_type is None:
            return "-"
        return "ok"


@dataclass
class ExplainReport:
    """The layer-by-layer comparison of one batch, with the first divergence diagnosed.

    ``rows`` are in forward (completion) order; ``first`` is the index into ``rows`` of the
    first divergence (None when everything agrees) and ``first_kind`` says how it diverges:
    ``'forward'``, ``'buffers'``, ``'backward'`` or ``'loss'``.
    """

    model: str
    dtype: str
    backend: str
    tolerance: Tolerance
    rows: list[LayerRow]
    layout: str = "features"
    loss: LeafDiff | None = None
    first: int | None = None
    first_kind: str | None = None
    flax_error: str | None = None
    error_at: str | None = None
    environment: list[str] = field(default_factory=list)
    torch_only: list[str] = field(default_factory=list)
    flax_only: list[str] = field(default_factory=list)
    param_mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no row, loss or parameter diverges and the twin did not raise."""
        return self.first is None and self.flax_error is None

    @property
    def first_row(self) -> LayerRow | None:
        """The :class:`LayerRow` of the first divergence, or None."""
        return None if self.first is None else self.rows[self.first]

    @property
    def causes(self) -> list[Cause]:
        """The ranked causes of the first divergence (empty when parity holds)."""
        row = self.first_row
        return [] if row is None else list(row.causes)

    def confirmed(self) -> list[tuple[LayerRow, Cause]]:
        """Every confirmed cause in forward order: the first divergence's and those of layers
        that fail on their own input (independent faults a single run can already name)."""
        return [(r, c) for r in self.rows for c in r.causes if c.status == "confirmed"]

    def to_rows(self) -> list[dict[str, Any]]:
        """One flat dict per layer with every number (max abs, max rel, tolerance used of the
        input, output, local check, output gradient and worst parameter gradient), for JSON,
        CSV (``jaxnets.app.report.render``) or a DataFrame."""
        out = []
        for r in self.rows:
            row: dict[str, Any] = {
                "index": r.index,
                "layer": r.label,
                "torch_type": r.torch_type,
                "twin_type": r.flax_type,
                "torch_shape": r.torch_shape,
                "twin_shape": r.flax_shape,
                "status": r.status,
                "first_divergence": self.first is not None and self.rows[self.first] is r,
            }
            pg = r.param_grad[1] if r.param_grad else None
            for kind, d in (
                ("input", r.input),
                ("output", r.output),
                ("local", r.local),
                ("output_grad", r.output_grad),
                ("param_grad", pg),
            ):
                row[f"{kind}_abs"] = None if d is None else d.max_abs
                row[f"{kind}_rel"] = None if d is None else d.max_rel
                row[f"{kind}_used"] = None if d is None else d.tolerance_used
            row["param_grad_name"] = r.param_grad[0] if r.param_grad else None
            row["causes"] = [f"{c.status}:{c.key}" for c in r.causes]
            out.append(row)
        return out

    def row(self, name: str) -> LayerRow:
        """The row of module ``name`` (``''`` or ``'(model)'`` for the model)."""
        name = "" if name == "(model)" else name
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no layer {name!r}; layers: {[r.label for r in self.rows]}")

    def __str__(self) -> str:
        return format_report(self)


def _used(d: LeafDiff | None) -> str:
    if d is None:
        return "-"
    u = d.tolerance_used
    if not math.isfinite(u):
        return "inf"
    return f"{u:.2f}" if u < 100 else f"{u:.1e}"


def _sci(v: float | None) -> str:
    if v is None:
        return "-"
    return "inf" if not math.isfinite(v) else f"{v:.1e}"


def format_report(r: ExplainReport) -> str:
    """The report as text: the table, the first divergence and its causes, other faults."""
    t = r.tolerance
    verdict = "OK" if r.ok else "FAILED"
    lines = [
        f"explain {r.model} [{r.dtype}, {r.backend}]: {verdict}  "
        f"(pass: max|twin - torch| <= {t.atol:g} + {t.rtol:g}*max|torch|)",
    ]
    first = r.first_row
    if first is not None:
        what = {
            "forward": "forward",
            "buffers": "running statistics after the pass",
            "backward": "backward (gradients)",
        }[r.first_kind or "forward"]
        lines.append(f"first divergence: {first.label} ({first.torch_type}), in the {what}")
    if r.flax_error is not None:
        where = "" if r.error_at is None else f" in {r.error_at or '(model)'}"
        lines.append(
            f"the twin raised{where}: {r.flax_error} (layers after it were not reached; no "
            "loss or gradients)"
        )
    elif r.first_kind == "loss":
        lines.append("every layer agrees but the loss differs: the loss function is the suspect")
    elif r.first_kind == "parameters":
        lines.append(f"activations agree but parameters differ: {', '.join(r.param_mismatches)}")
    lines.append(
        "in/out/dL/dout/dL/dparam: fraction of the tolerance used (fails above 1)"
        + (
            "; arrays in torch layout (the twin's NHWC moved to NCHW)"
            if r.layout == "image"
            else ""
        )
    )
    head = (
        f"{'#':>3}  {'layer':<14} {'torch':<12} {'twin':<12} {'shape (torch)':<18} "
        f"{'in':>7} {'out':>7} {'max abs':>8} {'max rel':>8} {'dL/dout':>7} "
        f"{'dL/dparam':>9}  status"
    )
    lines += [head, "-" * len(head)]
    for i, row in enumerate(r.rows):
        shape = "-" if row.torch_shape is None else str(row.torch_shape).replace(" ", "")
        mark = "  <-- first divergence" if r.first == i else ""
        lines.append(
            f"{row.index:>3}  {row.label:<14.14} {row.torch_type:<12.12} "
            f"{(row.flax_type or '-'):<12.12} {shape:<18.18} {_used(row.input):>7} "
            f"{_used(row.output):>7} {_sci(row.output.max_abs if row.output else None):>8} "
            f"{_sci(row.output.max_rel if row.output else None):>8} {_used(row.output_grad):>7} "
            f"{_used(row.param_grad[1] if row.param_grad else None):>9}  {row.status}{mark}"
        )
        if row.note:
            lines.append(f"{'':>5}{row.note}")
        for k, d in row.buffers.items():
            if not d.ok:
                lines.append(
                    f"{'':>5}buffer {k}: max abs {d.max_abs:.1e}, rel {d.max_rel:.1e} "
                    f"({_used(d)} of tolerance)"
                )
    if r.loss is not None:
        lines.append(
            f"{'':>5}loss: max abs {r.loss.max_abs:.1e}, rel {r.loss.max_rel:.1e} "
            f"({_used(r.loss)} of tolerance)"
        )
    if first is not None:
        lines.append("")
        lines.append(f"why {first.label}?")
        lines.append("  " + _why(r, first))
        if first.causes:
            lines.append("  likely causes, strongest evidence first:")
            for n, c in enumerate(first.causes, 1):
                body = str(c).replace("\n", "\n     ")
                lines.append(f"  {n}. {body}")
        if first.ruled_out:
            lines.append("  ruled out: " + "; ".join(first.ruled_out))
        if r.first_kind == "forward" and any(row.grad_bad for row in r.rows[: r.first]):
            lines.append(
                "  (the GRAD rows above it are a consequence: their gradients flow back through "
                f"{first.label})"
            )
    others = [row for i, row in enumerate(r.rows) if i != r.first and row.layer_bad and row.causes]
    if others:
        lines.append("")
        lines.append("also wrong on their own input (independent of the first divergence):")
        for row in others:
            lines.append(f"  {row.label}: {row.causes[0].title} [{row.causes[0].status}]")
    if r.torch_only or r.flax_only:
        lines.append("")
        if r.torch_only:
            lines.append(f"not compared, torch only: {', '.join(r.torch_only)}")
        if r.flax_only:
            lines.append(
                f"not compared, twin only: {', '.join(n or '(model)' for n in r.flax_only)}"
            )
    if r.environment:
        lines.append("")
        lines.extend(f"environment: {e}" for e in r.environment)
    return "\n".join(lines)


def _why(r: ExplainReport, row: LayerRow) -> str:
    if r.first_kind == "buffers":
        bad = [k for k, d in row.buffers.items() if not d.ok]
        return (
            f"outputs and gradients agree, but after one training pass the twin's "
            f"{', '.join(bad)} differ from torch's: the running-statistics update differs"
        )
    if r.first_kind == "backward":
        return (
            "the forward pass agrees everywhere; going backward from the loss, the gradient "
            f"with respect to {row.label}'s output is the first to differ"
        )
    if row.error is not None:
        return f"the twin raised here: {row.error}" + (f" ({row.note})" if row.note else "")
    if row.shape_mismatch:
        return (
            f"the output shapes differ: twin {row.flax_shape}, torch {row.torch_shape} "
            "(layer configuration: padding, stride, kernel size)"
        )
    if row.input_bad and not row.layer_bad:
        return (
            f"{row.label}'s input already differs (used {_used(row.input)} of the tolerance) "
            "while the layers before it agree, and torch's layer run on the twin's input gives "
            "the twin's output: the fault is in the code BEFORE this layer, not in it"
        )
    lo, out = row.local, row.output
    return (
        f"the input agrees but the output does not (max abs "
        f"{_sci(out.max_abs if out else None)}, rel {_sci(out.max_rel if out else None)})"
        + (
            f"; torch's layer on the twin's input differs from the twin by "
            f"{lo.max_rel:.1e} rel: the fault is in this layer"
            if lo is not None
            else ""
        )
    )
