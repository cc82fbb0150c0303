"""Bootstrap machinery shared by the probes: resample weights in chunks, percentile CIs."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Estimate",
    "check_bootstrap_args",
    "estimate",
    "percentile_interval",
    "resample_counts",
    "stratified_weights",
    "wilson_interval",
]

_CHUNK_ELEMENTS = 4_000_000  # ~32 MB of float64 weights per chunk


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap interval (NaN bounds when ``n_boot=0``).

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


def check_bootstrap_args(n_boot: int, confidence: float) -> None:
    """Validate ``n_boot`` and ``confidence`` at a public boundary."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise ValueError(f"n_boot must be an integer >= 0 (0 = no CI), got {n_boot!r}")
    if not isinstance(confidence, (float, int)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def resample_counts(
    m: int, b: int, rng: np.random.Generator, dtype: type = np.float64
) -> np.ndarray:
    """``(b, m)`` multiplicities of ``b`` bootstrap resamples of ``m`` rows.

    int32 draws (``Generator.integers``, exactly uniform) counted one resample at a
    time straight into ``dtype``: at 1,000 x 84k draws this is ~2.4x faster than one
    ``bincount`` over offset int64 indices (no 700 MB index array, no cast).
    """
    draws = rng.integers(0, m, size=(b, m), dtype=np.int32)
    out = np.empty((b, m), dtype=dtype)
    for i in range(b):
        out[i] = np.bincount(draws[i], minlength=m)
    return out


def stratified_weights(
    sizes: Sequence[int], n_boot: int, rng: np.random.Generator, dtype: type = np.float64
) -> Iterator[np.ndarray]:
    """Yield ``(b, sum(sizes))`` bootstrap multiplicities, chunk by chunk.

    Rows are resampled with replacement *within* each stratum (consecutive blocks
    of ``sizes`` rows), so every resample keeps the strata sizes — e.g. the
    in-distribution and the shifted set of a detection problem. ``float32``
    holds counts exactly and halves the memory traffic of what follows.
    """
    total = int(sum(sizes))
    step = max(1, min(n_boot, _CHUNK_ELEMENTS // max(total, 1)))
    for a in range(0, n_boot, step):
        b = min(n_boot, a + step) - a
        yield np.concatenate([resample_counts(m, b, rng, dtype) for m in sizes], axis=1)


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile bootstrap interval of the finite ``values`` (NaN, NaN if none)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    alpha = 1 - confidence
    lo, hi = np.quantile(v, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def estimate(value: float, boot: np.ndarray | None, confidence: float) -> Estimate:
    """An :class:`Estimate` from a point value and its bootstrap replicates.

    Replicates where the statistic is undefined (NaN) are left out of the interval
    with a :class:`~aqi.indices.DegenerateInputWarning` saying how many.
    """
    if boot is None or len(boot) == 0:
        return Estimate(float(value))
    bad = int(np.sum(~np.isfinite(boot)))
    if bad:
        import warnings

        from ..indices._validation import DegenerateInputWarning

        warnings.warn(
            f"{bad} of {len(boot)} bootstrap resamples gave an undefined value and are left "
            "out of the interval",
            DegenerateInputWarning,
            stacklevel=3,
        )
    lo, hi = percentile_interval(boot, confidence)
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
    return Estimate(p, max(0.0, mid - half), min(1.0, mid + half))
