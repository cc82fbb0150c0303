"""P-values (permutation, normal fit to bootstrap replicates) and Holm's correction for
multiplicity."""

from __future__ import annotations

import warnings

import numpy as np

from .resamples import DegenerateInputWarning, resamples_suffice


def permutation_p_value(null: np.ndarray, observed: float) -> float:
    """``(1 + #{null ≥ observed}) / (1 + len(null))``: the one-sided permutation p-value.

    NaN (with a :class:`TooFewResamplesWarning`) from fewer than
    :data:`MIN_RESAMPLES` permutations: its floor ``1/(1 + len(null))`` could not go
    below 0.05.

    Examples
    --------
    >>> permutation_p_value(np.arange(1.0, 100.0), 90.0)  # 10 of 99 permutations reach 90
    0.11
    """
    null = np.asarray(null, dtype=np.float64)
    if not resamples_suffice(len(null), "the permutation p-value", two_sided=False):
        return float("nan")
    return float((1 + np.sum(null >= observed)) / (1 + len(null)))


def normal_p_value(value: float, replicates: np.ndarray, what: str = "the difference") -> float:
    """One-sided p-value of "``value`` is no greater than 0" from a normal fit to its bootstrap.

    ``z = value / sd*`` with ``sd*`` the standard deviation of the finite bootstrap
    ``replicates`` (of ``value`` or of its estimation error), and ``p = Φ(−z)``.
    Unlike a count of resamples beyond ``value`` it is not floored at
    ``1/(n_boot + 1)``, so its power depends on the evidence, not on the number of
    resamples, and survives a multiplicity correction over many tests. NaN with a
    :class:`DegenerateInputWarning` when ``sd*`` is 0 or undefined (fewer than two
    finite replicates) or ``value`` is not finite; NaN with a
    :class:`TooFewResamplesWarning` from fewer than :data:`MIN_RESAMPLES` finite
    replicates (their SD is too rough to read a p-value from).

    Examples
    --------
    >>> round(normal_p_value(1.96, np.array([-1.0, 1.0] * 50) * np.sqrt(0.99)), 4)
    0.025
    """
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if not resamples_suffice(r.size, f"p-value of {what}", two_sided=False):
        return float("nan")
    sd = float(r.std(ddof=1)) if r.size >= 2 else float("nan")
    if not (np.isfinite(value) and np.isfinite(sd) and sd > 0):
        why = f"value {value!r}" if not np.isfinite(value) else f"bootstrap SD {sd!r}"
        warnings.warn(
            f"p-value of {what} is undefined ({why}; {r.size} finite resamples); returning NaN",
            DegenerateInputWarning,
            stacklevel=2,
        )
        return float("nan")
    from scipy.stats import norm

    return float(norm.sf(value / sd))


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (monotone, capped at 1).

    Examples
    --------
    >>> holm(np.array([0.01, 0.04, 0.03])).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    order = np.argsort(p)
    adj = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out = np.empty(m)
    out[order] = adj
    return out
