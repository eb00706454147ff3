"""Small helpers shared by the statistics modules (validation, critical values)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import stats

FloatArray = npt.NDArray[np.float64]


def z_value(confidence: float) -> float:
    """Two-sided standard normal critical value ``z = Φ⁻¹(1 - (1 - confidence)/2)``."""
    check_confidence(confidence)
    return float(stats.norm.isf((1.0 - confidence) / 2.0))


def check_confidence(confidence: float) -> None:
    """Raise ``ValueError`` unless ``0 < confidence < 1``."""
    if not (0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def check_count(successes: float, n: float) -> None:
    """Raise ``ValueError`` unless ``n > 0`` and ``0 <= successes <= n`` (both finite)."""
    if not (math.isfinite(successes) and math.isfinite(n)):
        raise ValueError(f"counts must be finite, got successes={successes!r}, n={n!r}")
    if n <= 0:
        raise ValueError(f"n must be > 0, got {n!r}")
    if not (0.0 <= successes <= n):
        raise ValueError(f"successes must be in [0, n], got successes={successes!r}, n={n!r}")


def as_1d_float(values: npt.ArrayLike, name: str) -> FloatArray:
    """Return ``values`` as a one-dimensional float64 array (a copy only where needed)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        array = array.reshape(-1)
    if array.ndim != 1:  # pragma: no cover - reshape(-1) is always 1-d
        raise ValueError(f"{name} must be one-dimensional")
    return array


def finite(values: FloatArray) -> FloatArray:
    """The finite entries of ``values`` (NaN and ±inf dropped); no copy when all are finite."""
    mask = np.isfinite(values)
    if bool(mask.all()):
        return values
    return values[mask]
