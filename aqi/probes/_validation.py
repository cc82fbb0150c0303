"""Input checks shared by the probes (1-D score/reward vectors, 2-D activation matrices)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..indices.validation import check_matrix

__all__ = ["check_features", "check_vector"]


def check_vector(x: Any, name: str, what: str = "score") -> np.ndarray:
    """A non-empty, finite, real 1-D array as float64; errors name ``name`` and the position."""
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of {what}s, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty; need at least one {what}")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name} has a non-finite {what} at position {i}: {a[i]}")
    return a


def check_features(X: Any, dim: int | None = None) -> np.ndarray:
    """A finite real ``(n, d)`` matrix as float64 (not centred); ``dim`` = the fitted width."""
    if hasattr(X, "detach"):  # torch tensor
        X = X.detach().cpu().numpy()
    A = check_matrix(X, center=False)
    if dim is not None and A.shape[1] != dim:
        raise ValueError(f"X has {A.shape[1]} features but the detector was fitted on {dim}")
    return A
