"""How many resamples, at what confidence: the contract's bounds, its two warnings and the
validators every public boundary calls."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

#: The fewest resamples (bootstrap or permutation) from which an interval, a null
#: quantile or a p-value is computed; below it they are NaN (see :func:`min_resamples`).
#: Why 20: it is the fewest permutations whose p-value ``(1 + #{null >= x}) / (1 + B)``
#: can fall below the default ``alpha = 0.05`` (``1/21 = 0.048``; at 19 the smallest p is
#: exactly 0.05), and the fewest bootstrap draws whose standard deviation — the scale
#: of the normal-fit p-values — is known to about ±16 % (relative standard error
#: ``1/sqrt(2(B - 1))``); with fewer, a p-value is read off noise. Intervals at a
#: level ``c`` need more: see :func:`min_resamples` (39 at 95 %).
MIN_RESAMPLES = 20

#: The most resamples accepted. At a million, the Monte Carlo error of a 2.5 % tail
#: quantile is ``sqrt(0.025 · 0.975 / 1e6)`` ≈ 0.016 percentage points of coverage:
#: more buys nothing but time and memory (an AQI bootstrap holds ``n_boot × classes ×
#: dim`` floats), so a larger count is taken for a typo.
MAX_RESAMPLES = 1_000_000


class DegenerateInputWarning(UserWarning):
    """An index is undefined on this input and NaN was returned."""


class TooFewResamplesWarning(UserWarning):
    """Fewer resamples than :func:`min_resamples` were asked for: the interval or p-value is NaN.

    Pass ``n_boot=0`` (``n_perm=0``) to ask for none without a warning, or at least
    :func:`min_resamples` of them.
    """


def check_n_boot(n_boot: Any, name: str = "n_boot") -> int:
    """Validate a resample count (``0`` = none, at most :data:`MAX_RESAMPLES`); return an int.

    A count below :func:`min_resamples` is accepted here; the interval or p-value it
    would give is NaN, with a :class:`TooFewResamplesWarning`.

    Examples
    --------
    >>> check_n_boot(200)
    200
    >>> check_n_boot(-1)
    Traceback (most recent call last):
    ...
    ValueError: n_boot=-1; expected an integer in [0, 1000000] (0 = none)
    """
    if (
        isinstance(n_boot, bool)
        or not isinstance(n_boot, (int, np.integer))
        or not 0 <= n_boot <= MAX_RESAMPLES
    ):
        raise ValueError(
            f"{name}={n_boot!r}; expected an integer in [0, {MAX_RESAMPLES}] (0 = none)"
        )
    return int(n_boot)


def min_resamples(confidence: float = 0.95, *, two_sided: bool = True) -> int:
    """The fewest resamples for an interval (or one-sided quantile) at ``confidence``.

    :data:`MIN_RESAMPLES`, or more when the level needs it. Of ``B`` draws, the
    range ``[min, max]`` holds on average ``(B - 1)/(B + 1)`` of the distribution they
    come from, and ``[-inf, max]`` holds ``B/(B + 1)``: below ``(1 + c)/(1 - c)``
    draws (two-sided; ``c/(1 - c)`` one-sided) even the extreme resamples cannot
    bracket a share ``c``, so the interval's ends would be extrapolated beyond the data.

    Examples
    --------
    >>> min_resamples(0.95), min_resamples(0.95, two_sided=False), min_resamples(0.99)
    (39, 20, 199)
    """
    c = check_confidence(confidence)
    need = (1 + c) / (1 - c) if two_sided else c / (1 - c)
    return max(MIN_RESAMPLES, math.ceil(need - 1e-9))


def resamples_suffice(
    n: int, what: str, confidence: float = 0.95, *, two_sided: bool = True, stacklevel: int = 3
) -> bool:
    """Whether ``n`` resamples may give an interval or p-value for ``what``.

    ``False`` silently for ``n = 0`` (none asked), ``False`` with a
    :class:`TooFewResamplesWarning` below :func:`min_resamples`, else ``True``.

    Examples
    --------
    >>> resamples_suffice(0, "the AQI"), resamples_suffice(1000, "the AQI")
    (False, True)
    """
    if n == 0:
        return False
    need = min_resamples(confidence, two_sided=two_sided)
    if n < need:
        level = f"a {confidence:.0%} interval" if two_sided else "a p-value or null quantile"
        warnings.warn(
            f"{what}: not computed (NaN): {n} resamples, and {level} needs at least {need} "
            "(0 = none)",
            TooFewResamplesWarning,
            stacklevel=stacklevel,
        )
        return False
    return True


def check_confidence(confidence: Any, name: str = "confidence") -> float:
    """Validate a confidence level, accepted in the open interval (0, 1); return it as float.

    Examples
    --------
    >>> check_confidence(0.95)
    0.95
    >>> check_confidence(1.0)
    Traceback (most recent call last):
    ...
    ValueError: confidence=1.0; expected a level in (0, 1), e.g. 0.95
    """
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, (int, float, np.integer, np.floating))
        or not 0 < confidence < 1
    ):
        raise ValueError(f"{name}={confidence!r}; expected a level in (0, 1), e.g. 0.95")
    return float(confidence)


def check_probability(p: Any, name: str) -> float:
    """Validate a probability / share in the closed interval [0, 1]; return it as float.

    Examples
    --------
    >>> check_probability(0.25, "max_ood_rate")
    0.25
    >>> check_probability(2, "alpha")
    Traceback (most recent call last):
    ...
    ValueError: alpha=2; expected a probability in [0, 1]
    """
    if (
        isinstance(p, bool)
        or not isinstance(p, (int, float, np.integer, np.floating))
        or not 0 <= p <= 1
    ):
        raise ValueError(f"{name}={p!r}; expected a probability in [0, 1]")
    return float(p)


def check_bootstrap_args(n_boot: Any, confidence: Any) -> None:
    """:func:`check_n_boot` and :func:`check_confidence` together."""
    check_n_boot(n_boot)
    check_confidence(confidence)
