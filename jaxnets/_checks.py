"""What counts as a number and as an integer when an argument is checked, the same way for
the optimizers (:mod:`jaxnets.optim`), the schedules (:mod:`jaxnets.schedules`) and the model
configs (:mod:`jaxnets.models._common`): Python and numpy values alike, never a bool."""

from __future__ import annotations

import numbers
import operator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def is_real(x: Any) -> bool:
    """A real number: int, float, a numpy scalar or a shape-``()`` int/float array; not bool."""
    if isinstance(x, bool | np.bool_):
        return False
    if isinstance(x, numbers.Real):
        return True
    return (
        isinstance(x, np.ndarray | jax.Array)
        and x.shape == ()
        and (jnp.issubdtype(x.dtype, jnp.integer) or jnp.issubdtype(x.dtype, jnp.floating))
    )


def as_int(value: Any) -> int | None:
    """``value`` as a Python int when it is an integer (numpy ones included, bool not), else
    None."""
    if isinstance(value, bool | np.bool_):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None
