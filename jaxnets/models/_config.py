"""Config helpers shared by the model modules (validation with errors that say the fix).

Every config dataclass calls :func:`validate_config` from ``__post_init__``; it checks each field
by its annotation and normalises the value in place (the dataclasses are frozen):

* ``int``: a positive integer. Python and numpy integers are accepted (``operator.index``) and
  stored as ``int``; ``bool``, floats and strings are refused.
* ``tuple[int, ...]``: a sequence (list, tuple, 1-D numpy array) of positive integers, stored
  as a tuple of ``int``; ``()`` is allowed.
* ``str`` with ``metadata={"choices": (...)}``: one of the choices.

Wrong types raise ``TypeError``, values of the right type out of range ``ValueError``; both name
the config class, the field, the value given and what is accepted (the example is the field's
default). :meth:`jaxnets.registry.ModelSpec.make_config` adds the registry name of the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxnets._checks import as_int


def _example(f: dataclasses.Field, fallback: Any) -> Any:
    """The field's default as the example of an accepted value (``fallback`` when it has none)."""
    return f.default if f.default not in (dataclasses.MISSING, ()) else fallback


def _got(value: Any) -> str:
    return f"got {value!r} of type {type(value).__name__}"


def validate_config(config: Any) -> None:
    """Check (and normalise) every field of a frozen config dataclass; see the module docstring.

    Raises ``TypeError`` for a value of the wrong type, ``ValueError`` for one out of range,
    and ``TypeError`` for a field whose annotation this validator does not know (a new config
    field must be given a check here).
    """
    cls = type(config).__name__
    for f in dataclasses.fields(config):
        where = f"{cls}.{f.name}"
        value = getattr(config, f.name)
        if f.type in ("int", int):
            accepted = f"{where} must be a positive integer such as {_example(f, 64)!r}"
            n = as_int(value)
            if n is None:
                raise TypeError(f"{accepted}, {_got(value)}")
            if n < 1:
                raise ValueError(f"{accepted}, got {value!r}")
            object.__setattr__(config, f.name, n)
        elif f.type in ("tuple[int, ...]", tuple[int, ...]):
            accepted = (
                f"{where} must be a positive-integer sequence such as {_example(f, (64, 32))!r} "
                f"(one entry per layer; () for none)"
            )
            is_sequence = isinstance(value, Sequence) and not isinstance(value, str | bytes)
            if not (is_sequence or (isinstance(value, np.ndarray) and value.ndim == 1)):
                raise TypeError(f"{accepted}, {_got(value)}")
            sizes = [as_int(v) for v in value]
            for i, (v, n) in enumerate(zip(value, sizes, strict=True)):
                if n is None:
                    raise TypeError(
                        f"{accepted}, got {value!r}: entry {i} is {v!r} of type {type(v).__name__}"
                    )
                if n < 1:
                    raise ValueError(f"{accepted}, got {value!r}: entry {i} is {v!r}")
            object.__setattr__(config, f.name, tuple(sizes))
        elif f.type in ("str", str) and "choices" in f.metadata:
            choices = sorted(f.metadata["choices"])
            if not isinstance(value, str):
                raise TypeError(f"{where} must be one of {choices} (a string), {_got(value)}")
            if value not in choices:
                raise ValueError(f"{where} must be one of {choices}, got {value!r}")
        else:
            raise TypeError(
                f"{where}: validate_config has no check for a field annotated {f.type!r}; "
                f"add one in jaxnets/models/_config.py"
            )
