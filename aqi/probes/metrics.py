"""Detection metrics with bootstrap CIs: AUROC, AUPR-in/-out, FPR at a TPR, risk–coverage.

Sign convention (one for the whole of :mod:`aqi.probes`): **higher score = more
out-of-distribution**; the shifted / OOD set is the positive class.

Every metric is computed from one pass over the scores sorted once: tied scores
form groups, and a bootstrap resample only changes how much each row weighs, so
all resamples are evaluated together as ``(resamples, groups)`` cumulative sums —
no Python loop over resamples, no re-sort.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._stats import Estimate, check_bootstrap_args, estimate, stratified_weights
from ._validation import check_vector

__all__ = ["DetectionResult", "RiskCoverage", "detection_metrics", "risk_coverage"]


class _Ranked:
    """Scores sorted descending with tie groups; per-row positive flags in that order."""

    def __init__(self, scores: np.ndarray, positive: np.ndarray) -> None:
        order = np.argsort(-scores, kind="stable")
        self.order = order
        s = scores[order]
        self.positive = positive[order]
        last = np.r_[s[1:] != s[:-1], True]
        self.ends = None if last.all() else np.flatnonzero(last)  # None: no ties

    def cumulative(self, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weighted cumulative positives / negatives at each group end, ``(b, G)``."""
        Ws = W[:, self.order]
        TP = np.cumsum(Ws * self.positive, axis=1)
        FP = np.cumsum(Ws, axis=1)
        FP -= TP
        if self.ends is not None:
            TP, FP = TP[:, self.ends], FP[:, self.ends]
        return TP, FP


def _roc_metrics(
    TP: np.ndarray, FP: np.ndarray, tpr_level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """AUROC, AP(positives), AP(negatives, scores reversed), FPR at ``tpr_level``.

    ``TP``/``FP``: cumulative positive / negative weight at each tie-group end,
    highest scores first. Per group ``g`` with ``p_g``/``n_g`` new positives /
    negatives: AUROC = Σ n_g (TP_{g-1} + p_g / 2) / (P N) (trapezoid = Mann–Whitney,
    ties half); AP = Σ p_g · precision_g / P (scikit-learn's step sum).
    """
    b = TP.shape[0]
    P, N = TP[:, -1], FP[:, -1]
    TPp = np.hstack([np.zeros((b, 1), TP.dtype), TP[:, :-1]])
    FPp = np.hstack([np.zeros((b, 1), FP.dtype), FP[:, :-1]])
    p_g, n_g = TP - TPp, FP - FPp
    with np.errstate(invalid="ignore", divide="ignore"):
        auroc = np.einsum("ij,ij->i", n_g, TPp + p_g / 2) / (P * N)
        # Groups a resample did not draw have zero weight: precision 0 there (p_g = 0).
        prec = np.divide(TP, TP + FP, out=np.zeros_like(TP), where=(TP + FP) > 0)
        ap_out = np.einsum("ij,ij->i", p_g, prec) / P
        # In-distribution as the positive class: groups from the lowest score up;
        # at group g (inclusive) TN = N - FP_{g-1} negatives, FN = P - TP_{g-1}.
        TN, FN = N[:, None] - FPp, P[:, None] - TPp
        prec_in = np.divide(TN, TN + FN, out=np.zeros_like(TN), where=(TN + FN) > 0)
        ap_in = np.einsum("ij,ij->i", n_g, prec_in) / N
    fpr_at = np.full(b, np.nan)
    for i in range(b):  # TP is monotone: one binary search per resample
        g = np.searchsorted(TP[i] / P[i], tpr_level, side="left")
        if g < TP.shape[1]:
            fpr_at[i] = FP[i, g] / N[i]
    return auroc, ap_out, ap_in, fpr_at


@dataclass(frozen=True)
class DetectionResult:
    """How well a score separates an in-distribution set from a shifted one.

    Higher score = more OOD; the shifted set is the positive class. AUROC counts
    ties as half; AUPR is average precision (scikit-learn's step definition) with
    the OOD (``aupr_out``) or in-distribution (``aupr_in``, scores negated) set
    positive; ``fpr_at_tpr`` is the share of in-distribution rows flagged at the
    highest threshold that catches ``tpr_level`` of the shifted rows.
    """

    auroc: Estimate
    aupr_in: Estimate
    aupr_out: Estimate
    fpr_at_tpr: Estimate
    tpr_level: float
    n_in: int
    n_out: int
    confidence: float
    n_boot: int
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "auroc": self.auroc.to_dict(),
            "aupr_in": self.aupr_in.to_dict(),
            "aupr_out": self.aupr_out.to_dict(),
            "fpr_at_tpr": self.fpr_at_tpr.to_dict(),
            "tpr_level": self.tpr_level,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "confidence": self.confidence,
            "n_boot": self.n_boot,
        }

    def __repr__(self) -> str:
        where = f"{self.label}: " if self.label else ""
        return (
            f"DetectionResult({where}AUROC {self.auroc}, AUPR-in {self.aupr_in}, "
            f"AUPR-out {self.aupr_out}, FPR@{round(100 * self.tpr_level)}%TPR "
            f"{self.fpr_at_tpr}, n_in={self.n_in}, n_out={self.n_out})"
        )


def detection_metrics(
    scores_in: Any,
    scores_out: Any,
    *,
    tpr_level: float = 0.95,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    label: str = "",
) -> DetectionResult:
    """AUROC, AUPR-in/-out and FPR at ``tpr_level`` TPR, with stratified bootstrap CIs.

    Parameters
    ----------
    scores_in, scores_out : array-like of shape (n,)
        OOD scores (higher = more OOD) of the in-distribution and the shifted rows.
    tpr_level : float
        TPR (share of shifted rows caught) at which the false-alarm rate is read.
    n_boot : int
        Bootstrap resamples (both sets resampled separately, sizes kept); 0 = no CI.
    confidence : float
        Level of the percentile intervals.

    Examples
    --------
    >>> import numpy as np
    >>> r = detection_metrics(np.array([0.1, 0.2, 0.3]), np.array([0.25, 0.9]), n_boot=0)
    >>> round(float(r.auroc), 4), float(r.fpr_at_tpr)
    (0.8333, 0.3333333333333333)
    """
    check_bootstrap_args(n_boot, confidence)
    if not 0 < tpr_level <= 1:
        raise ValueError(f"tpr_level must be in (0, 1], got {tpr_level!r}")
    s_in, s_out = check_vector(scores_in, "scores_in"), check_vector(scores_out, "scores_out")
    s = np.concatenate([s_in, s_out])
    pos = np.r_[np.zeros(len(s_in)), np.ones(len(s_out))]
    ranked = _Ranked(s, pos)
    point = _roc_metrics(*ranked.cumulative(np.ones((1, len(s)))), tpr_level)
    boots: list[list[np.ndarray]] = [[], [], [], []]
    rng = np.random.default_rng(seed)
    for W in stratified_weights([len(s_in), len(s_out)], n_boot, rng, np.float32):
        for acc, v in zip(boots, _roc_metrics(*ranked.cumulative(W), tpr_level), strict=True):
            acc.append(v)
    est = [
        estimate(p[0], np.concatenate(b) if b else None, confidence)
        for p, b in zip(point, boots, strict=True)
    ]
    auroc, ap_out, ap_in, fpr_at = est
    return DetectionResult(
        auroc, ap_in, ap_out, fpr_at, float(tpr_level), len(s_in), len(s_out),
        float(confidence), int(n_boot), label,
    )  # fmt: skip


@dataclass(frozen=True)
class RiskCoverage:
    """Selective prediction: error rate among the most confident rows, at each coverage.

    ``coverage[g]`` and ``risk[g]`` are read at each distinct confidence threshold
    (highest first); ``aurc`` is the area under that step curve — the mean risk
    over coverages, ``sum((coverage_g - coverage_{g-1}) * risk_g)``, which equals
    Geifman et al.'s average over ``k = 1..n`` when confidences are distinct.
    """

    coverage: np.ndarray = field(repr=False)
    risk: np.ndarray = field(repr=False)
    aurc: Estimate
    risk_at_full_coverage: float
    n: int
    confidence: float
    n_boot: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "aurc": self.aurc.to_dict(),
            "risk_at_full_coverage": self.risk_at_full_coverage,
            "n": self.n,
            "coverage": self.coverage.tolist(),
            "risk": self.risk.tolist(),
        }


def risk_coverage(
    confidence_scores: Any,
    correct: Any,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> RiskCoverage:
    """Risk–coverage curve and AURC (lower is better) with a bootstrap CI.

    Parameters
    ----------
    confidence_scores : array-like of shape (n,)
        Higher = more confident (e.g. a reward model's top-label confidence).
    correct : array-like of shape (n,)
        1 = correct, 0 = wrong; fractional values (a tie counted as half) allowed.

    Examples
    --------
    >>> r = risk_coverage([0.9, 0.8, 0.7, 0.6], [1, 1, 0, 1], n_boot=0)
    >>> r.risk.tolist(), round(float(r.aurc), 4)
    ([0.0, 0.0, 0.3333333333333333, 0.25], 0.1458)
    """
    check_bootstrap_args(n_boot, confidence)
    c = check_vector(confidence_scores, "confidence_scores", "confidence")
    ok = check_vector(correct, "correct", "value")
    if len(ok) != len(c):
        raise ValueError(
            f"correct has {len(ok)} values but confidence_scores has {len(c)}; need one each"
        )
    if ((ok < 0) | (ok > 1)).any():
        raise ValueError("correct must be in [0, 1] (1 correct, 0 wrong, 0.5 a tie)")
    ranked = _Ranked(c, 1.0 - ok)  # "positives" = errors, most confident first

    def curve(W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        E, R = ranked.cumulative(W)
        cov = (E + R) / (E + R)[:, -1:]
        tot = E + R
        # Leading groups a resample did not draw have no weight: risk 0, coverage step 0.
        risk = np.divide(E, tot, out=np.zeros_like(tot), where=tot > 0)
        dcov = np.diff(np.hstack([np.zeros((len(W), 1)), cov]), axis=1)
        return cov, risk, np.sum(dcov * risk, axis=1)

    cov, risk, aurc = curve(np.ones((1, len(c))))
    rng = np.random.default_rng(seed)
    boots = [curve(W)[2] for W in stratified_weights([len(c)], n_boot, rng, np.float32)]
    return RiskCoverage(
        cov[0], risk[0], estimate(aurc[0], np.concatenate(boots) if boots else None, confidence),
        float(risk[0, -1]), len(c), float(confidence), int(n_boot),
    )  # fmt: skip
