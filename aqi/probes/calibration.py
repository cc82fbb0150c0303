"""Pairwise calibration of a reward model: accuracy, ECE/MCE, Brier, NLL, reliability data.

A reward model ranks a pair by ``Δ = (r_chosen − r_rejected) / T``; its preference
probability for the human-chosen response is ``p = σ(Δ)``. The *top-label*
prediction is the response it ranks higher, with confidence ``σ(|Δ|)`` ∈ [0.5, 1]
and correctness 1 (``Δ > 0``), 0 (``Δ < 0``) or ½ (a tie, ``Δ = 0``, confidence ½).

Fixes against common ECE code (including the code of LeVine et al., 2023):

* bins are ``[lo, hi)`` with the last bin closed — a confidence of exactly 1.0
  (``σ(|Δ|)`` rounds to 1 in float64 once ``|Δ| > 37``) lands in the top bin and
  a confidence of exactly 0 (possible after Platt scaling) in the bottom bin;
  nothing is dropped;
* temperature / Platt maps are fitted on one split and refuse to be evaluated on
  the rows they were fitted on.

Bootstrap CIs resample pairs; all resamples are evaluated together as one matrix
product of resample counts with per-pair contributions.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, log_expit

from .._stats import Estimate, check_bootstrap_args, estimate, stratified_weights
from ._validation import check_vector
from .detectors import NotFittedError

__all__ = [
    "CalibrationResult",
    "PlattScaling",
    "ReliabilityBins",
    "TemperatureScaling",
    "preference_calibration",
    "reward_margins",
]

Binning = Literal["uniform", "quantile"]


def reward_margins(chosen: Any, rejected: Any) -> np.ndarray:
    """``r_chosen − r_rejected`` per pair, validated (equal lengths, finite, 1-D).

    Examples
    --------
    >>> reward_margins([1.0, 0.5], [0.0, 2.0]).tolist()
    [1.0, -1.5]
    """
    c, r = check_vector(chosen, "chosen", "reward"), check_vector(rejected, "rejected", "reward")
    if len(c) != len(r):
        raise ValueError(
            f"chosen has {len(c)} rewards but rejected has {len(r)}; they must be row-aligned"
        )
    return c - r


def _fingerprint(margins: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(margins).tobytes()).hexdigest()


_TIE_CREDIT = {"half": 0.5, "wrong": 0.0}


def _top_label(margins: np.ndarray, ties: str = "half") -> np.ndarray:
    """Correctness (1, 0, and ½ or 0 for ties) of the top-label prediction."""
    return np.where(margins > 0, 1.0, np.where(margins < 0, 0.0, _TIE_CREDIT[ties]))


class _Calibrator:
    fitted_on_: str | None = None

    def _check_fitted(self) -> None:
        if self.fitted_on_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(chosen, rejected)")

    def _check_not_fit_set(self, margins: np.ndarray) -> None:
        if _fingerprint(margins) == self.fitted_on_:
            raise ValueError(
                f"{type(self).__name__} was fitted on these very pairs; evaluate it on a "
                "held-out split (e.g. fit on half of the in-distribution set, "
                "evaluate on the other half and on the shifted sets)"
            )

    def confidence(self, margins: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def preference_probability(self, margins: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class TemperatureScaling(_Calibrator):
    """Fit ``T`` minimising the NLL of ``σ(Δ / T)`` on an in-distribution split.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> m = rng.normal(1, 2, 4000); won = rng.random(4000) < 1 / (1 + np.exp(-m / 3))
    >>> c, r = np.where(won, m, 0.0), np.where(won, 0.0, m)  # true temperature 3
    >>> ts = TemperatureScaling().fit(c, r)
    >>> 2.5 < ts.temperature_ < 3.5
    True
    """

    def __init__(self) -> None:
        self.temperature_: float = float("nan")

    def fit(self, chosen: Any, rejected: Any) -> TemperatureScaling:
        m = reward_margins(chosen, rejected)
        if not np.any(m != 0):
            raise ValueError("every pair is a tie (chosen == rejected); T is undefined")
        res = minimize_scalar(
            lambda lt: -np.mean(log_expit(m * np.exp(-lt))), bounds=(-9.0, 9.0), method="bounded"
        )
        self.temperature_ = float(np.exp(res.x))
        self.fitted_on_ = _fingerprint(m)
        return self

    def preference_probability(self, margins: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return expit(margins / self.temperature_)

    def confidence(self, margins: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return expit(np.abs(margins) / self.temperature_)

    def __repr__(self) -> str:
        return f"TemperatureScaling(T={self.temperature_:.4g})"


class PlattScaling(_Calibrator):
    """Fit ``P(top label correct) = σ(a·|Δ| + b)`` on an in-distribution split.

    With pairs always given as (chosen, rejected) the label "chosen wins" is
    constant, so an intercept on ``Δ`` itself is not identifiable; Platt scaling
    is therefore fitted on the top-label confidence: does the response ranked
    higher win? Ties enter as half a win.
    """

    def __init__(self) -> None:
        self.a_: float = float("nan")
        self.b_: float = float("nan")

    def fit(self, chosen: Any, rejected: Any) -> PlattScaling:
        m = reward_margins(chosen, rejected)
        x, y = np.abs(m), _top_label(m)
        if np.all(y == y[0]):
            raise ValueError(
                "Platt scaling needs both right and wrong top-label predictions in the fit split"
            )

        def nll(ab: np.ndarray) -> tuple[float, np.ndarray]:
            z = ab[0] * x + ab[1]
            loss = -np.mean(y * log_expit(z) + (1 - y) * log_expit(-z))
            g = expit(z) - y
            return float(loss), np.array([np.mean(g * x), np.mean(g)])

        res = minimize(nll, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
        self.a_, self.b_ = float(res.x[0]), float(res.x[1])
        self.fitted_on_ = _fingerprint(m)
        return self

    def confidence(self, margins: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return expit(self.a_ * np.abs(margins) + self.b_)

    def preference_probability(self, margins: np.ndarray) -> np.ndarray:
        c = self.confidence(margins)
        return np.where(margins >= 0, c, 1 - c)

    def __repr__(self) -> str:
        return f"PlattScaling(a={self.a_:.4g}, b={self.b_:.4g})"


@dataclass(frozen=True)
class ReliabilityBins:
    """Reliability-diagram data: per bin its edges, size, mean confidence and accuracy."""

    lower: np.ndarray
    upper: np.ndarray
    count: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        return {k: np.asarray(getattr(self, k)).tolist() for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class CalibrationResult:
    """Pairwise calibration of reward scores (see :func:`preference_calibration`)."""

    accuracy: Estimate
    ece: Estimate
    mce: Estimate
    brier: Estimate
    nll: Estimate
    n: int
    n_ties: int
    n_bins: int
    binning: str
    bins: ReliabilityBins = field(repr=False)
    calibrator: str
    confidence: float
    n_boot: int
    label: str = ""
    correct: np.ndarray = field(repr=False, compare=False, default_factory=lambda: np.zeros(0))
    top_confidence: np.ndarray = field(
        repr=False, compare=False, default_factory=lambda: np.zeros(0)
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "accuracy": self.accuracy.to_dict(),
            "ece": self.ece.to_dict(),
            "mce": self.mce.to_dict(),
            "brier": self.brier.to_dict(),
            "nll": self.nll.to_dict(),
            "n": self.n,
            "n_ties": self.n_ties,
            "n_bins": self.n_bins,
            "binning": self.binning,
            "calibrator": self.calibrator,
            "confidence": self.confidence,
            "n_boot": self.n_boot,
            "bins": self.bins.to_dict(),
        }

    def __repr__(self) -> str:
        where = f"{self.label}: " if self.label else ""
        return (
            f"CalibrationResult({where}accuracy {self.accuracy}, ECE {self.ece}, "
            f"MCE {self.mce}, Brier {self.brier}, NLL {self.nll}, n={self.n}, "
            f"ties={self.n_ties}, {self.n_bins} {self.binning} bins, {self.calibrator})"
        )


def _bin_index(conf: np.ndarray, n_bins: int, binning: str) -> tuple[np.ndarray, np.ndarray]:
    if binning == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        edges = np.quantile(conf, np.linspace(0.0, 1.0, n_bins + 1))
        edges[0], edges[-1] = 0.0, 1.0
    # [lo, hi) bins, last bin closed: exactly 0 and exactly 1 are kept.
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    return idx, edges


def _summaries(sums: np.ndarray, n_bins: int, n: float) -> tuple[np.ndarray, ...]:
    """accuracy, ECE, MCE, Brier, NLL from ``(b, 3·n_bins + 2)`` column sums."""
    cnt = sums[:, :n_bins]
    sconf = sums[:, n_bins : 2 * n_bins]
    sacc = sums[:, 2 * n_bins : 3 * n_bins]
    gap = np.abs(sacc - sconf)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_bin = np.where(cnt > 0, gap / cnt, -np.inf)
    mce = per_bin.max(axis=1)
    return sacc.sum(1) / n, gap.sum(1) / n, mce, sums[:, -2] / n, sums[:, -1] / n


def _contributions(
    margins: np.ndarray,
    calibrator: _Calibrator | None,
    n_bins: int,
    binning: str,
    ties: str = "half",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    correct = _top_label(margins, ties)
    if calibrator is None:
        conf, p = expit(np.abs(margins)), expit(margins)
        log_p = log_expit(margins)
    else:
        conf, p = calibrator.confidence(margins), calibrator.preference_probability(margins)
        log_p = np.log(np.clip(p, 1e-300, None))
    idx, edges = _bin_index(conf, n_bins, binning)
    n = len(margins)
    M = np.zeros((n, 3 * n_bins + 2))
    rows = np.arange(n)
    M[rows, idx] = 1.0
    M[rows, n_bins + idx] = conf
    M[rows, 2 * n_bins + idx] = correct
    M[:, -2] = (1.0 - p) ** 2  # Brier of the probability given to the chosen response
    M[:, -1] = -log_p
    return M, edges, idx, conf, correct


def preference_calibration(
    chosen: Any,
    rejected: Any,
    *,
    calibrator: TemperatureScaling | PlattScaling | None = None,
    n_bins: int = 10,
    binning: Binning = "uniform",
    ties: Literal["half", "wrong"] = "half",
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    label: str = "",
) -> CalibrationResult:
    """Accuracy and calibration of a reward model on preference pairs, with bootstrap CIs.

    Parameters
    ----------
    chosen, rejected : array-like of shape (n,)
        Rewards of the human-preferred and the dispreferred response, row-aligned.
    calibrator : TemperatureScaling or PlattScaling, optional
        A map fitted on *another* split (raises if fitted on these pairs).
    n_bins : int
        Number of bins for ECE/MCE and the reliability data.
    binning : {"uniform", "quantile"}
        Equal-width bins on [0, 1] or equal-mass bins (quantiles of the
        confidences, fixed from the full sample for every resample).
    ties : {"half", "wrong"}
        Credit for a tie (``r_chosen == r_rejected``): half a correct ranking
        (default), or none — the definition of LeVine et al. (accuracy = share with
        ``r_chosen > r_rejected``), for reproducing their figures.
    n_boot, confidence, seed
        Bootstrap resamples of pairs (0 = no CI) and the percentile-interval level.

    Returns
    -------
    CalibrationResult
        ``accuracy`` (ties count ½; ``n_ties`` reports them), top-label ``ece`` and
        ``mce``, ``brier`` and ``nll`` of ``p = σ(Δ)`` for the chosen response,
        ``bins`` for a reliability diagram.

    Examples
    --------
    >>> r = preference_calibration([2.0, 1.0, 0.0, 3.0], [0.0, 1.0, 1.0, -1.0], n_boot=0)
    >>> float(r.accuracy), r.n_ties
    (0.625, 1)
    """
    check_bootstrap_args(n_boot, confidence)
    _check_binning(n_bins, binning, ties)
    margins = reward_margins(chosen, rejected)
    if calibrator is not None:
        _check_calibrator(calibrator, margins)
    M, edges, _, conf, correct = _contributions(margins, calibrator, n_bins, binning, ties)
    n = len(margins)
    if n < 2:  # issue 31: one pair scored "0.000 [0.000, 0.000]" without a word
        from ..indices import DegenerateInputWarning

        warnings.warn(f"{label or 'reward scores'}: {n} pair: its calibration error and "
                      "accuracy are one pair's and every bootstrap resample is that pair, so "
                      "the interval has no width; score at least tens of pairs",
                      DegenerateInputWarning, stacklevel=2)  # fmt: skip
    est = _estimates(M, n_bins, n, n_boot=n_boot, seed=seed, confidence=confidence)
    bins = _reliability_bins(M, edges, n_bins)
    return CalibrationResult(
        *est, n=n, n_ties=int(np.sum(margins == 0)), n_bins=int(n_bins), binning=binning,
        bins=bins, calibrator=repr(calibrator) if calibrator is not None else "uncalibrated",
        confidence=float(confidence), n_boot=int(n_boot), label=label, correct=correct,
        top_confidence=conf,
    )  # fmt: skip


def _check_binning(n_bins: Any, binning: Any, ties: Any) -> None:
    """Refuse a bin count, binning or tie rule that is not one of the documented ones."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    if binning not in ("uniform", "quantile"):
        raise ValueError(f"binning must be 'uniform' or 'quantile', got {binning!r}")
    if ties not in _TIE_CREDIT:
        raise ValueError(f"ties must be 'half' or 'wrong', got {ties!r}")


def _check_calibrator(calibrator: Any, margins: np.ndarray) -> None:
    """Refuse a calibrator that is not fitted, or was fitted on these very margins."""
    if not isinstance(calibrator, _Calibrator):
        raise TypeError(
            "calibrator must be a fitted TemperatureScaling or PlattScaling, "
            f"got {type(calibrator).__name__}"
        )
    calibrator._check_fitted()
    calibrator._check_not_fit_set(margins)


def _estimates(M: np.ndarray, n_bins: int, n: int, *, n_boot: int, seed: int | None,
               confidence: float) -> list[Estimate]:  # fmt: skip
    """Each summary (ECE, accuracy, ...) with its bootstrap interval over the pairs."""
    point = _summaries(M.sum(0, keepdims=True), n_bins, n)
    rng = np.random.default_rng(seed)
    # Resampled sums in float32 (counts are exact; sums carry ~1e-7 relative error,
    # far below the bootstrap spread); the point estimate stays float64.
    M32 = M.astype(np.float32)
    boots = [
        _summaries((W @ M32).astype(np.float64), n_bins, n)
        for W in stratified_weights([n], n_boot, rng, np.float32)
    ]
    return [
        estimate(p[0], np.concatenate([b[i] for b in boots]) if boots else None, confidence)
        for i, p in enumerate(point)
    ]


def _reliability_bins(M: np.ndarray, edges: np.ndarray, n_bins: int) -> ReliabilityBins:
    """The reliability diagram's bins: edges, pairs, mean confidence and accuracy in each."""
    cnt = M[:, :n_bins].sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ReliabilityBins(
            edges[:-1].copy(),
            edges[1:].copy(),
            cnt.astype(np.int64),
            np.where(cnt > 0, M[:, n_bins : 2 * n_bins].sum(0) / cnt, np.nan),
            np.where(cnt > 0, M[:, 2 * n_bins : 3 * n_bins].sum(0) / cnt, np.nan),
        )
