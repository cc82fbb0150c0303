"""Input checks shared by every index: shapes, finiteness, labels, degenerate geometry."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .._stats import DegenerateInputWarning

__all__ = ["DegenerateInputWarning", "check_data", "check_matrix", "undefined"]


def undefined(index: str, why: str) -> float:
    """Warn that ``index`` is undefined (``why``) and return NaN — never a 'best' score."""
    warnings.warn(
        f"{index} is undefined: {why}; returning NaN", DegenerateInputWarning, stacklevel=3
    )
    return float("nan")


def _check_shape_dtype(X: np.ndarray) -> np.ndarray:
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array (n_samples, n_features), got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X is empty (shape {X.shape})")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise TypeError(f"X must be real numeric, got dtype {X.dtype}")
    return X


def check_matrix(X: Any, *, center: bool = True, owned: bool = False) -> np.ndarray:
    """Validate a 2-D finite real matrix; return it as float64, centred on its mean.

    ``owned=True`` lets a float64 input be centred in place (the caller made the copy).
    """
    X = _check_shape_dtype(np.asarray(X))
    X = X.astype(np.float64, copy=not owned)
    bad = ~np.isfinite(X)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(f"X has a non-finite value (NaN or inf) in row {row}")
    if center:
        X -= X.mean(axis=0)
    return X


def check_data(
    X: Any, labels: Any, *, min_clusters: int = 2, center: bool = True, sort: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate ``(X, labels)``; return float64 ``X`` (centred), integer codes and class names.

    Centring on the global mean (in float64) makes every index robust to large
    offsets: distances are translation invariant, but the ``|a|² + |b|² − 2a·b``
    expansion used for speed is not, unless the data sit near the origin.
    ``sort=True`` returns rows ordered by cluster, made in the same single copy.
    """
    X = _check_shape_dtype(np.asarray(X))
    labels = np.asarray(labels)
    n = X.shape[0]
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(
            f"labels must be 1-D with one entry per row of X ({n}), got shape {labels.shape}"
        )
    names, codes = np.unique(labels, return_inverse=True)
    if len(names) < min_clusters:
        raise ValueError(
            f"labels have {len(names)} distinct value(s) {names.tolist()}; "
            f"the index needs at least {min_clusters} clusters"
        )
    codes = codes.astype(np.int64)
    if sort:
        if np.issubdtype(X.dtype, np.floating):
            finite = np.isfinite(X).all(axis=1)
            if not finite.all():  # report the caller's row number, not the sorted one
                raise ValueError(
                    f"X has a non-finite value (NaN or inf) in row {int(np.argmin(finite))}"
                )
        order = np.argsort(codes, kind="stable")
        X, codes = X[order], codes[order]
        return check_matrix(X, center=center, owned=True), codes, names
    return check_matrix(X, center=center), codes, names
