"""``jaxnets.nn`` against PyTorch's own test tables, in float64.

Every ``module_db`` entry and ``op_db`` sample for the vocabulary of ``jaxnets.nn``
(``parity_tests/torch_tables.py`` builds them): outputs, input and parameter gradients and
buffers agree with torch within the float64 bound, and where torch raises for an error
input, jaxnets raises. A sample jaxnets refuses on purpose is skipped with its reason, and
only the refusals listed in ``torch_tables.REFUSED`` are accepted. The long tail (most of
op_db's 1,440 max_pool2d samples) is marked ``slow``; ``python -m parity_tests.torch_tables``
prints the whole table.
"""

from __future__ import annotations

import pytest
import torch_tables

CASES = torch_tables.cases()


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow else []) for c in CASES],
)
def test_case_agrees_with_torch(case: torch_tables.Case) -> None:
    result = torch_tables.run(case)
    assert result.status != "failed", result.reason
    if result.status == "unsupported":
        pytest.skip(f"unsupported (refused on purpose): {result.reason}")


def test_the_tables_cover_the_vocabulary() -> None:
    """Every class and function of the vocabulary that torch's tables test is drawn from
    them, with its error inputs where torch has some."""
    areas = {c.area for c in CASES}
    for name in (
        "nn.Linear", "nn.Conv1d", "nn.Conv2d", "nn.BatchNorm1d", "nn.BatchNorm2d",
        "nn.LayerNorm", "nn.Embedding", "nn.MaxPool2d", "nn.AvgPool2d", "nn.AdaptiveAvgPool2d",
        "nn.AdaptiveMaxPool2d", "nn.ReLU", "nn.LeakyReLU", "nn.ELU", "nn.GELU", "nn.SiLU",
        "nn.Tanh", "nn.Sigmoid", "nn.Softmax", "nn.LogSoftmax", "F.linear", "F.conv1d",
        "F.conv2d", "F.batch_norm", "F.layer_norm", "F.embedding", "F.max_pool2d",
        "F.avg_pool2d", "F.adaptive_avg_pool2d", "F.adaptive_max_pool2d", "F.dropout",
        "F.dropout2d", "F.relu", "F.leaky_relu", "F.elu", "F.gelu", "F.silu", "tanh",
        "sigmoid", "softmax", "log_softmax", "flatten", "errors: nn.BatchNorm1d",
        "errors: nn.MaxPool2d", "errors: F.conv2d", "errors: F.max_pool2d",
    ):  # fmt: skip
        assert name in areas, name
    assert sum(c.area == "F.max_pool2d" for c in CASES) == 1440
    assert 0 < sum(not c.slow for c in CASES if c.area == "F.max_pool2d") < 100


def test_the_default_max_pool2d_samples_cover_every_option() -> None:
    """The default run's share of the max_pool2d tail holds each option both ways."""
    seen: dict[str, set[bool]] = {}
    for c in CASES:
        if c.area != "F.max_pool2d" or c.slow:
            continue
        kw = c.run.args[1].kwargs  # the op_db SampleInput
        for name, on in (
            ("dilation", kw["dilation"] not in (1, (1, 1))),
            ("padding", kw["padding"] not in (0, (0, 0))),
            ("ceil_mode", kw["ceil_mode"]),
            ("return_indices", kw["return_indices"]),
            ("stride", kw["stride"] is not None),
            ("unbatched", c.run.args[1].input.ndim == 3),
        ):
            seen.setdefault(name, set()).add(bool(on))
    assert all(v == {True, False} for v in seen.values()), seen


def test_the_table_counts_each_status() -> None:
    ok = torch_tables.Result("passed", worst=2e-16, used=0.5)
    refused = torch_tables.Result("unsupported", reason="max_norm renormalises the weight")
    bad = torch_tables.Result("failed", reason="output[0]: shape (2,), torch (3,)")
    case = torch_tables.Case("F.embedding", "x", False, lambda: ok)
    text = torch_tables.table([(case, ok), (case, refused), (case, bad)])
    row = next(line for line in text.splitlines() if line.startswith("F.embedding"))
    assert row.split() == ["F.embedding", "3", "1", "1", "1", "2.0e-16", "0.50"]
    assert "1 unsupported: max_norm renormalises the weight" in text
    assert "FAILED: output[0]: shape (2,), torch (3,)" in text
