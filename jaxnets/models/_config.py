"""Config helpers shared by the model modules (validation with errors that say the fix)."""

from __future__ import annotations

import dataclasses
from typing import Any


def validate_sizes(config: Any) -> None:
    """Check every int (or tuple-of-int) field of a config dataclass is a positive integer."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        values = value if isinstance(value, tuple) else (value,)
        if f.type in ("int", int) or f.type in ("tuple[int, ...]",):
            for v in values:
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise ValueError(
                        f"{type(config).__name__}.{f.name} must be a positive integer "
                        f"(or a tuple of them), got {value!r}"
                    )
