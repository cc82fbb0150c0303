"""Estimates and their intervals: percentile, basic and Wilson, each containing its point
estimate."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .resamples import DegenerateInputWarning, resamples_suffice


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval (NaN bounds when there is none, e.g. ``n_boot=0``).

    Examples
    --------
    >>> e = Estimate(0.91, 0.89, 0.93)
    >>> float(e), e
    (0.91, 0.91 [0.89, 0.93])
    """

    value: float
    ci_low: float = float("nan")
    ci_high: float = float("nan")

    def __float__(self) -> float:
        return float(self.value)

    def __repr__(self) -> str:
        if np.isnan(self.ci_low):
            return f"{self.value:.4g}"
        return f"{self.value:.4g} [{self.ci_low:.4g}, {self.ci_high:.4g}]"

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high}


def contain(low: float, high: float, value: float) -> tuple[float, float]:
    """``[low, high]`` widened, where needed, to contain ``value`` (never narrowed).

    The one rule that keeps every interval of :mod:`aqi` around its estimate. A
    bootstrap interval can leave its estimate out — a percentile interval of a biased
    statistic (an ECE, whose resamples sit above the sample's), or a basic interval
    whose resamples all err one way — and a check reading such an interval would
    decide against its own estimate. Widening to the estimate is conservative: the
    interval only grows, so it covers at least as often. NaN stays NaN.

    Examples
    --------
    >>> contain(8.28, 8.76, 8.12), contain(1.0, 2.0, 1.5)
    ((8.12, 8.76), (1.0, 2.0))
    """
    if not (np.isfinite(low) and np.isfinite(high) and np.isfinite(value)):
        return float(low), float(high)
    return float(min(low, value)), float(max(high, value))


def percentile_interval(
    values: Any, confidence: float, what: str = "the interval"
) -> tuple[float, float]:
    """Percentile bootstrap interval of the finite ``values``.

    NaN, NaN when there are none, or fewer than :func:`min_resamples` (then with a
    :class:`TooFewResamplesWarning`).

    Examples
    --------
    >>> percentile_interval(np.arange(101.0), 0.5)
    (25.0, 75.0)
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not resamples_suffice(v.size, what, confidence):
        return float("nan"), float("nan")
    alpha = 1 - confidence
    lo, hi = np.quantile(v, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def basic_interval(
    boot: np.ndarray, boot_truth: float, estimate: float, confidence: float,
    what: str = "the interval",
) -> tuple[float, float]:  # fmt: skip
    """Basic bootstrap interval ``[θ̂ − q_hi(θ* − θ_F̂), θ̂ − q_lo(θ* − θ_F̂)]``, containing ``θ̂``.

    ``θ_F̂`` (``boot_truth``) is the statistic of the bootstrap world's population —
    the sample itself. For the AQI it is the *uncorrected* value: resampling
    re-introduces exactly the small-sample bias that the estimator corrects, so the
    bootstrap values sit above ``θ̂`` and a percentile interval (even a bias-corrected
    one) can miss the estimate altogether. ``θ* − θ_F̂`` mimics ``θ̂ − θ``. When the
    errors ``θ* − θ_F̂`` all fall on one side of 0 the interval would exclude ``θ̂``;
    it is then widened to reach it (:func:`contain`). NaN with fewer finite resamples
    than :func:`min_resamples` (with a :class:`TooFewResamplesWarning`).

    Examples
    --------
    >>> basic_interval(np.arange(101.0), 50.0, 10.0, 0.5)
    (-15.0, 35.0)
    """
    d = boot[np.isfinite(boot)] - boot_truth
    if not np.isfinite(estimate) or not resamples_suffice(d.size, what, confidence):
        return float("nan"), float("nan")
    alpha = 1 - confidence
    q_lo, q_hi = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    return contain(float(estimate - q_hi), float(estimate - q_lo), float(estimate))


def estimate(
    value: float, boot: np.ndarray | None, confidence: float, what: str = "the interval"
) -> Estimate:
    """An :class:`Estimate` from a point value and its bootstrap replicates (percentile CI).

    Replicates where the statistic is undefined (NaN) are left out of the interval
    with a :class:`DegenerateInputWarning` saying how many; fewer finite replicates
    than :func:`min_resamples` give no interval (:class:`TooFewResamplesWarning`). The
    interval is widened to contain ``value`` where it would not (:func:`contain`).

    Examples
    --------
    >>> estimate(0.5, np.linspace(0.4, 0.6, 101), 0.9)
    0.5 [0.41, 0.59]
    >>> estimate(0.5, None, 0.9)
    0.5
    """
    if boot is None or len(boot) == 0:
        return Estimate(float(value))
    bad = int(np.sum(~np.isfinite(boot)))
    if bad:
        warnings.warn(
            f"{bad} of {len(boot)} bootstrap resamples gave an undefined value and are left "
            "out of the interval",
            DegenerateInputWarning,
            stacklevel=3,
        )
    lo, hi = contain(*percentile_interval(boot, confidence, what), float(value))
    return Estimate(float(value), lo, hi)


def wilson_interval(k: int, n: int, confidence: float) -> Estimate:
    """The share ``k / n`` with its Wilson score interval (NaN when ``n = 0``).

    Examples
    --------
    >>> wilson_interval(0, 20, 0.95)
    0 [0, 0.1611]
    """
    from scipy.stats import norm

    if n == 0:
        return Estimate(float("nan"))
    z = float(norm.ppf(0.5 + confidence / 2))
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    # The interval always contains p; clamping to it removes round-off (k = 0 gave 3e-17).
    return Estimate(p, min(p, max(0.0, mid - half)), max(p, min(1.0, mid + half)))
