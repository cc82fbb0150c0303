"""The statistics core shared by indices and probes: estimates, resampling, intervals, tests.

Every bootstrap in :mod:`aqi` draws its resamples here, as *count matrices*: a
resample of ``m`` rows is a row of multiplicities summing to ``m``, so a
statistic that is a sum over rows is resampled for all resamples at once by one
matrix product (no Python loop over resamples, no materialised copies).
Intervals, p-values and the argument validators used at every public boundary
live here too, so each concept has one definition.

The resampling contract (docs/audit.md, "Resampling"):

* ``n_boot=0`` (or ``n_perm=0``) means *none*: no interval, no p-value (NaN), silently.
* Fewer resamples than :func:`min_resamples` (:data:`MIN_RESAMPLES`, more at high
  confidence levels) give NaN with a :class:`TooFewResamplesWarning` — never an
  interval or a p-value read off a handful of draws. More than
  :data:`MAX_RESAMPLES` is refused.
* An interval always contains its point estimate: a bootstrap interval that would
  leave it out (a percentile interval of a biased statistic, or one drawn from
  few distinct resamples) is widened to reach it — never narrowed.

This module sits below every other module of the package and imports none of them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._progress import bar

__all__ = [
    "MAX_RESAMPLES",
    "MIN_RESAMPLES",
    "DegenerateInputWarning",
    "Estimate",
    "PairedWeights",
    "TooFewResamplesWarning",
    "basic_interval",
    "check_bootstrap_args",
    "check_confidence",
    "check_n_boot",
    "check_probability",
    "contain",
    "estimate",
    "holm",
    "min_resamples",
    "normal_p_value",
    "percentile_interval",
    "permutation_p_value",
    "resample_counts",
    "resamples_suffice",
    "stratified_weights",
    "wilson_interval",
]

_CHUNK_ELEMENTS = 4_000_000  # ~32 MB of float64 weights per chunk

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


# --- validators -------------------------------------------------------------------------------


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


# --- resampling -------------------------------------------------------------------------------


def resample_counts(
    m: int, b: int, rng: np.random.Generator, dtype: type = np.float64
) -> np.ndarray:
    """``(b, m)`` multiplicities of ``b`` bootstrap resamples of ``m`` rows (rows sum to ``m``).

    int32 draws (``Generator.integers``, exactly uniform; the same stream as int64
    draws) counted one resample at a time straight into ``dtype``: at 1,000 x 84k
    draws this is ~2.4x faster than one ``bincount`` over offset int64 indices (no
    700 MB index array, no cast). ``float32`` holds counts exactly.

    Examples
    --------
    >>> M = resample_counts(5, 3, np.random.default_rng(0))
    >>> M.shape, M.sum(axis=1).tolist()
    ((3, 5), [5.0, 5.0, 5.0])
    """
    draws = rng.integers(0, m, size=(b, m), dtype=np.int32)
    out = np.empty((b, m), dtype=dtype)
    for i in range(b):
        out[i] = np.bincount(draws[i], minlength=m)
    return out


def stratified_weights(
    sizes: Sequence[int],
    n_boot: int,
    rng: np.random.Generator,
    dtype: type = np.float64,
    *,
    chunk_elements: int = _CHUNK_ELEMENTS,
) -> Iterable[np.ndarray]:
    """Yield ``(b, sum(sizes))`` bootstrap multiplicities, chunk by chunk (``Σ b = n_boot``).

    Rows are resampled with replacement *within* each stratum (consecutive blocks
    of ``sizes`` rows), so every resample keeps the strata sizes — e.g. the
    in-distribution and the shifted set of a detection problem, or the safe and
    unsafe rows of an AQI. A chunk holds at most ``chunk_elements`` weights; within
    a chunk the strata are drawn one after the other. Over more than
    :data:`aqi._progress.ROWS_FOR_A_BAR` rows a terminal shows a progress bar.

    Examples
    --------
    >>> (W,) = stratified_weights([3, 2], 4, np.random.default_rng(0))
    >>> W.shape, W[:, :3].sum(1).tolist(), W[:, 3:].sum(1).tolist()
    ((4, 5), [3.0, 3.0, 3.0, 3.0], [2.0, 2.0, 2.0, 2.0])
    """
    total = int(sum(sizes))
    step = max(1, min(n_boot, chunk_elements // max(total, 1)))
    chunks = (
        np.concatenate([resample_counts(m, min(n_boot, a + step) - a, rng, dtype) for m in sizes],
                       axis=1)
        for a in range(0, n_boot, step)
    )  # fmt: skip
    return bar(chunks, desc="bootstrap", total=n_boot, unit="resample", rows=total, weight=len)


@dataclass(frozen=True)
class PairedWeights:
    """Stratified resampling weights that can be replayed: every pass yields the same chunks.

    Iterating draws the weights afresh from ``seed``, so two statistics evaluated in
    separate passes (two models, or every layer of a store, read one at a time) see
    exactly the same resamples — a *paired* bootstrap — without holding all
    ``n_boot × Σ sizes`` weights in memory.

    Examples
    --------
    >>> pw = PairedWeights(sizes=(3, 2), n_boot=4, seed=0)
    >>> all((a == b).all() for a, b in zip(pw, pw))
    True
    """

    sizes: tuple[int, ...]
    n_boot: int
    seed: int | None
    dtype: type = np.float64

    def __iter__(self) -> Iterator[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        return iter(stratified_weights(self.sizes, self.n_boot, rng, self.dtype))


# --- intervals and estimates ------------------------------------------------------------------


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


# --- tests and multiplicity -------------------------------------------------------------------


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
