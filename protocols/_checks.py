"""Input checks shared by the protocol math: every function raises ValueError naming the input."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

FloatOrArray = float | NDArray[np.float64]


def finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def positive(name: str, value: float) -> float:
    v = finite(name, value)
    if v <= 0.0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return v


def non_negative(name: str, value: float) -> float:
    v = finite(name, value)
    if v < 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v


def unit(name: str, value: float) -> float:
    v = finite(name, value)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return v


def as_float_array(name: str, value: object) -> tuple[NDArray[np.float64], bool]:
    """Return (float64 array, was_scalar); ValueError naming ``name`` if not finite numbers."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number or an array of numbers, got {value!r}") from exc
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return arr, arr.ndim == 0


def out(arr: NDArray[np.float64], scalar: bool) -> FloatOrArray:
    """Give back what came in: a float for a scalar input, the array otherwise."""
    return float(arr) if scalar else arr
