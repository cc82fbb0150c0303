"""OOD scores from a model's logits: max-softmax, max-logit, energy (higher = more OOD)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import logsumexp, softmax

__all__ = ["energy_score", "max_logit_score", "max_softmax_score"]


def _logits(logits: Any) -> np.ndarray:
    if hasattr(logits, "detach"):
        logits = logits.detach().cpu().numpy()
    a = np.asarray(logits)
    if a.ndim != 2 or a.shape[1] < 2:
        raise ValueError(f"logits must have shape (n_samples, n_classes >= 2), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number):
        raise TypeError(f"logits must be real numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(
            f"logits has a non-finite value in row {int(np.argwhere(~np.isfinite(a))[0][0])}"
        )
    return a


def max_softmax_score(logits: Any, temperature: float = 1.0) -> np.ndarray:
    """``−max softmax(z / T)`` (Hendrycks & Gimpel, 2017); higher = more OOD.

    Examples
    --------
    >>> max_softmax_score([[4.0, 0.0], [0.1, 0.0]]).round(3).tolist()
    [-0.982, -0.525]
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    return -softmax(_logits(logits) / temperature, axis=1).max(axis=1)


def max_logit_score(logits: Any) -> np.ndarray:
    """``−max z`` (Hendrycks et al., 2022); higher = more OOD.

    Examples
    --------
    >>> max_logit_score([[4.0, 0.0], [0.1, 0.0]]).tolist()
    [-4.0, -0.1]
    """
    return -_logits(logits).max(axis=1)


def energy_score(logits: Any, temperature: float = 1.0) -> np.ndarray:
    """Energy ``−T · logsumexp(z / T)`` (Liu et al., 2020); higher = more OOD.

    On a reward model's pair ``[r_chosen, r_rejected]`` this is the score used by
    LeVine et al. (2023).

    Examples
    --------
    >>> energy_score([[0.0, 0.0]]).round(4).tolist()
    [-0.6931]
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    return -temperature * logsumexp(_logits(logits) / temperature, axis=1)
