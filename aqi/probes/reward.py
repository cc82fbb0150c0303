"""Reward-model probes: how a reward model's accuracy, calibration and detectability shift.

After LeVine, Pikus, Chen & Hendryx (2023), "A Baseline Analysis of Reward
Models' Ability To Accurately Analyze Foundation Models Under Distribution
Shift", with three fixes to their code: confidences of exactly 1.0 are binned
(not dropped), calibration maps are fitted on an in-distribution split and never
evaluated on it, and the energy score is reported beside content-free controls
(``−max(r)``, response length) and label-free embedding detectors, so a
"detector" that only reads the reward's magnitude is visible as such.

The pairs themselves (:class:`PairScores`, :func:`score_pairs`,
:func:`load_reward_scores`, :func:`reward_ood_scores`) live in
:mod:`aqi.probes.reward_scores` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._stats import Estimate, check_bootstrap_args, estimate, stratified_weights
from .calibration import (
    CalibrationResult,
    PlattScaling,
    TemperatureScaling,
    _contributions,
    _summaries,
    preference_calibration,
)
from .detectors import make_detector
from .metrics import DetectionResult, detection_metrics
from .ood import reference_split
from .reward_scores import PairScores, load_reward_scores, reward_ood_scores, score_pairs

__all__ = [
    "PairScores",
    "RewardShiftReport",
    "ShiftResult",
    "load_reward_scores",
    "reward_ood_scores",
    "reward_shift",
    "score_pairs",
]


@dataclass(frozen=True)
class ShiftResult:
    """One shifted condition against the in-distribution set."""

    name: str
    calibration: CalibrationResult
    calibrated: CalibrationResult | None
    accuracy_drop: Estimate
    ece_change: Estimate
    detection: dict[str, DetectionResult]
    paired: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "paired": self.paired,
            "calibration": self.calibration.to_dict(),
            "calibrated": None if self.calibrated is None else self.calibrated.to_dict(),
            "accuracy_drop": self.accuracy_drop.to_dict(),
            "ece_change": self.ece_change.to_dict(),
            "detection": {k: v.to_dict() for k, v in self.detection.items()},
        }

    def __repr__(self) -> str:
        det = ", ".join(f"{k} AUROC {float(v.auroc):.3f}" for k, v in self.detection.items())
        return (
            f"ShiftResult({self.name!r}: accuracy {self.calibration.accuracy} "
            f"(drop {self.accuracy_drop}), ECE {self.calibration.ece} "
            f"(change {self.ece_change}); {det})"
        )


@dataclass(frozen=True)
class RewardShiftReport:
    """A reward model in distribution and under each shift."""

    reference: CalibrationResult
    reference_calibrated: CalibrationResult | None
    calibrator: str
    shifts: tuple[ShiftResult, ...]

    def __getitem__(self, name: str) -> ShiftResult:
        for s in self.shifts:
            if s.name == name:
                return s
        raise KeyError(f"no shift named {name!r}; have {[s.name for s in self.shifts]}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference.to_dict(),
            "reference_calibrated": None
            if self.reference_calibrated is None
            else self.reference_calibrated.to_dict(),
            "calibrator": self.calibrator,
            "shifts": [s.to_dict() for s in self.shifts],
        }

    def __repr__(self) -> str:
        lines = [f"RewardShiftReport(in-distribution: {self.reference!r}"]
        lines += [f"  {s!r}" for s in self.shifts]
        return "\n".join(lines) + ")"


def _paired_changes(
    ref: PairScores, shifted: PairScores, paired: bool, n_bins: int, n_boot: int,
    confidence: float, rng: np.random.Generator,
) -> tuple[Estimate, Estimate]:  # fmt: skip
    """Accuracy drop (ref − shifted) and ECE change (shifted − ref) with bootstrap CIs."""
    Ma = _contributions(ref.margins, None, n_bins, "uniform")[0].astype(np.float32)
    Mb = _contributions(shifted.margins, None, n_bins, "uniform")[0].astype(np.float32)
    na, nb = len(ref), len(shifted)
    pa = _summaries(Ma.sum(0, keepdims=True).astype(np.float64), n_bins, na)
    pb = _summaries(Mb.sum(0, keepdims=True).astype(np.float64), n_bins, nb)
    drops, changes = [], []
    if paired:
        for W in stratified_weights([na], n_boot, rng, np.float32):
            sa = _summaries((W @ Ma).astype(np.float64), n_bins, na)
            sb = _summaries((W @ Mb).astype(np.float64), n_bins, nb)
            drops.append(sa[0] - sb[0])
            changes.append(sb[1] - sa[1])
    else:
        for W in stratified_weights([na, nb], n_boot, rng, np.float32):
            sa = _summaries((W[:, :na] @ Ma).astype(np.float64), n_bins, na)
            sb = _summaries((W[:, na:] @ Mb).astype(np.float64), n_bins, nb)
            drops.append(sa[0] - sb[0])
            changes.append(sb[1] - sa[1])
    cat = lambda v: np.concatenate(v) if v else None  # noqa: E731
    return (
        estimate(pa[0][0] - pb[0][0], cat(drops), confidence),
        estimate(pb[1][0] - pa[1][0], cat(changes), confidence),
    )


def reward_shift(
    reference: PairScores,
    shifted: Mapping[str, PairScores] | Sequence[PairScores],
    *,
    paired: bool | None = None,
    calibrator: str | None = "temperature",
    fit_fraction: float = 0.5,
    n_bins: int = 10,
    detectors: Sequence[str] = ("mahalanobis", "knn"),
    n_boot: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> RewardShiftReport:
    """How a reward model's accuracy, calibration and detectability change under shift.

    Parameters
    ----------
    reference : PairScores
        In-distribution pairs.
    shifted : mapping or sequence of PairScores
        Shifted conditions (e.g. prompt translated, response translated, both).
    paired : bool, optional
        Whether shifted rows are the reference rows transformed (row-aligned);
        default: when the lengths match. Paired conditions get a paired bootstrap
        of the accuracy drop and ECE change, and share the calibration split.
    calibrator : {"temperature", "platt", None}
        A map fitted on ``fit_fraction`` of the reference pairs and evaluated on
        the rest and on the shifted pairs (the same held-out rows when paired).
    detectors : sequence of str
        Embedding detectors (fitted on the reference fit split) run on every
        embedding kind the pairs carry (``prompt``, ``prompt_response``).
    n_boot : int
        Bootstrap resamples for every CI (0 = none).

    Returns
    -------
    RewardShiftReport
        Uncalibrated metrics and the reward-based OOD scores use all rows;
        calibrated metrics and embedding detectors use the held-out rows.
    """
    check_bootstrap_args(n_boot, confidence)
    if not isinstance(reference, PairScores):
        raise TypeError(f"reference must be PairScores, got {type(reference).__name__}")
    items = _shift_items(shifted)
    if calibrator not in ("temperature", "platt", None):
        raise ValueError(f"calibrator must be 'temperature', 'platt' or None, got {calibrator!r}")
    kw = {"n_bins": n_bins, "n_boot": n_boot, "confidence": confidence, "seed": seed}
    rng = np.random.default_rng(seed)
    if not 0 < fit_fraction < 1:
        raise ValueError(
            f"fit_fraction must be in (0, 1) (share of reference pairs the calibrator is fitted "
            f"on), got {fit_fraction!r}"
        )
    fit, held = reference_split(np.zeros(len(reference)), None, 1 - fit_fraction, seed)
    cal = None
    if calibrator is not None:
        cal = (TemperatureScaling() if calibrator == "temperature" else PlattScaling()).fit(
            reference.chosen[fit], reference.rejected[fit]
        )
    ref_res = preference_calibration(reference.chosen, reference.rejected, label=reference.name
                                     or "in-distribution", **kw)  # fmt: skip
    ref_held = reference.subset(held)
    ref_cal = None if cal is None else preference_calibration(
        ref_held.chosen, ref_held.rejected, calibrator=cal, label="in-distribution (held out)", **kw
    )  # fmt: skip
    split = _Split(reference, fit, held, cal, reward_ood_scores(reference))
    results = [_shift_result(split, name, s, paired=paired, detectors=detectors, rng=rng, **kw)
               for name, s in items]  # fmt: skip
    return RewardShiftReport(
        reference=ref_res,
        reference_calibrated=ref_cal,
        calibrator=repr(cal) if cal else "none",
        shifts=tuple(results),
    )


def _shift_items(shifted: Any) -> list[tuple[str, PairScores]]:
    """The shifted conditions as ``(name, scores)``; refuse none, or one not PairScores."""
    items = list(shifted.items()) if isinstance(shifted, Mapping) else [
        (s.name or f"shift {i}", s) for i, s in enumerate(shifted)
    ]  # fmt: skip
    if not items:
        raise ValueError("shifted is empty; pass at least one shifted condition")
    for k, s in items:
        if not isinstance(s, PairScores):
            raise TypeError(f"shifted[{k!r}] must be PairScores, got {type(s).__name__}")
    return items


@dataclass(frozen=True)
class _Split:
    """The reference, its split into the calibrator's fit rows and held-out rows, the
    fitted calibrator (``None``: none) and the reference's own OOD scores."""

    reference: PairScores
    fit: np.ndarray
    held: np.ndarray
    cal: Any
    ref_scores: dict[str, np.ndarray]


def _shift_result(
    split: _Split, name: str, s: PairScores, *, paired: bool | None, detectors: Any,
    rng: np.random.Generator, n_bins: int, n_boot: int, confidence: float, seed: int | None,
) -> ShiftResult:  # fmt: skip
    """One shifted condition against the reference: its calibration (raw and calibrated on
    the held-out pairs), the paired changes, and how well each detector tells it apart."""
    reference, cal = split.reference, split.cal
    kw = {"n_bins": n_bins, "n_boot": n_boot, "confidence": confidence, "seed": seed}
    is_paired = (len(s) == len(reference)) if paired is None else bool(paired)
    if is_paired and len(s) != len(reference):
        raise ValueError(
            f"paired=True but {name!r} has {len(s)} pairs and the reference {len(reference)}"
        )
    res = preference_calibration(s.chosen, s.rejected, label=name, **kw)
    s_held = s.subset(split.held) if is_paired else s
    calibrated = None if cal is None else preference_calibration(
        s_held.chosen, s_held.rejected, calibrator=cal, label=f"{name} (calibrated)", **kw
    )  # fmt: skip
    drop, change = _paired_changes(reference, s, is_paired, n_bins, n_boot, confidence, rng)
    det: dict[str, DetectionResult] = {}
    s_scores = reward_ood_scores(s)
    for key in split.ref_scores:
        if key in s_scores:
            det[key] = detection_metrics(
                split.ref_scores[key], s_scores[key], n_boot=n_boot, confidence=confidence,
                seed=seed, label=f"{name}: {key}",
            )  # fmt: skip
    for kind in sorted(set(reference.embeddings) & set(s.embeddings)):
        Xr = np.asarray(reference.embeddings[kind])
        Xs = np.asarray(s_held.embeddings[kind])
        for dname in detectors:
            d = make_detector(dname).fit(Xr[split.fit])
            det[f"{dname}:{kind}"] = detection_metrics(
                d.score(Xr[split.held]), d.score(Xs), n_boot=n_boot, confidence=confidence,
                seed=seed, label=f"{name}: {dname} on {kind} embeddings",
            )  # fmt: skip
    return ShiftResult(name=name, calibration=res, calibrated=calibrated, accuracy_drop=drop,
                       ece_change=change, detection=det, paired=is_paired)  # fmt: skip
