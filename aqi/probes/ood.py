"""OOD probes straight from activation stores: per layer, a detector, a threshold, a flag list.

The reference store is split (stratified by label, pairs kept together) into a
fit part and a held-out part. The detector is fitted on the fit part; the
threshold is the conformal ``(1 − α)`` quantile of the held-out scores —
``⌈(m + 1)(1 − α)⌉``-th smallest of ``m`` — so on exchangeable reference data the
false-alarm rate is at most ``α`` in expectation. Detection metrics compare the
held-out reference rows with the test rows; flagged test rows are listed with
their ids and categories.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._progress import bar
from .._stats import Estimate, check_bootstrap_args, wilson_interval
from ..activations.pairing import shared_layers
from ..activations.store import ActivationStore
from .detectors import OODDetector, make_detector
from .metrics import DetectionResult, detection_metrics

__all__ = ["OODLayerResult", "OODReport", "conformal_threshold", "ood_probe", "reference_split"]


def reference_split(
    labels: np.ndarray, groups: np.ndarray | None, holdout: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (fit, held-out): stratified by label, groups (pair ids) kept together."""
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be in (0, 1), got {holdout!r}")
    rng = np.random.default_rng(seed)
    n = len(labels)
    keys = np.asarray(groups) if groups is not None else np.arange(n).astype(str)
    keys = np.where(keys == "", np.arange(n).astype(str), keys)
    held = np.zeros(n, dtype=bool)
    uniq, inv = np.unique(keys, return_inverse=True)
    # Stratify groups by the label of their first row.
    first_label = np.empty(len(uniq), dtype=object)
    first_label[inv[::-1]] = np.asarray(labels)[::-1]
    for lab in np.unique(first_label.astype(str)):
        g = np.flatnonzero(first_label.astype(str) == lab)
        take = rng.permutation(g)[: max(1, round(holdout * len(g)))]
        held |= np.isin(inv, take)
    if held.all() or not held.any():
        raise ValueError(f"reference set of {n} rows is too small to hold out {holdout:.0%}")
    return np.flatnonzero(~held), np.flatnonzero(held)


def conformal_threshold(heldout_scores: np.ndarray, false_alarm_rate: float) -> float:
    """The ``⌈(m+1)(1−α)⌉``-th smallest held-out score (``inf`` if that exceeds ``m``).

    Examples
    --------
    >>> conformal_threshold(np.arange(1.0, 100.0), 0.05)
    95.0
    """
    if not 0 < false_alarm_rate < 1:
        raise ValueError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate!r}")
    s = np.sort(np.asarray(heldout_scores, dtype=np.float64))
    r = math.ceil((len(s) + 1) * (1 - false_alarm_rate))
    return float("inf") if r > len(s) else float(s[r - 1])


@dataclass(frozen=True)
class OODLayerResult:
    """One layer's OOD probe: detection quality, threshold and what was flagged."""

    layer: str
    detector: str
    detection: DetectionResult
    threshold: float
    false_alarm_rate: float
    heldout_flag_rate: float
    flag_rate: Estimate
    flagged_ids: tuple[str, ...]
    flagged_categories: dict[str, int]
    scores: np.ndarray = field(repr=False, compare=False)
    reference_scores: np.ndarray = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "detector": self.detector,
            "detection": self.detection.to_dict(),
            "threshold": self.threshold,
            "false_alarm_rate": self.false_alarm_rate,
            "heldout_flag_rate": self.heldout_flag_rate,
            "flag_rate": self.flag_rate.to_dict(),
            "flagged_ids": list(self.flagged_ids),
            "flagged_categories": self.flagged_categories,
        }


@dataclass(frozen=True)
class OODReport:
    """Per-layer OOD probe of a test store against a reference store."""

    layers: tuple[OODLayerResult, ...]
    reference: str
    test: str
    n_fit: int
    n_heldout: int
    n_test: int

    def best(self) -> OODLayerResult:
        """The layer whose scores separate test from reference best (highest AUROC)."""
        return max(self.layers, key=lambda r: float(r.detection.auroc))

    def __getitem__(self, layer: str | int) -> OODLayerResult:
        if isinstance(layer, int):
            return self.layers[layer]
        for r in self.layers:
            if r.layer == layer:
                return r
        raise KeyError(f"layer {layer!r} not in the report ({[r.layer for r in self.layers]})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "test": self.test,
            "n_fit": self.n_fit,
            "n_heldout": self.n_heldout,
            "n_test": self.n_test,
            "layers": [r.to_dict() for r in self.layers],
        }

    def __repr__(self) -> str:
        b = self.best()
        return (
            f"OODReport({self.test!r} vs {self.reference!r}, {len(self.layers)} layers, "
            f"{b.detector}: best {b.layer} AUROC {b.detection.auroc}, flagged "
            f"{b.flag_rate} of {self.n_test} at {b.false_alarm_rate:.0%} false alarms)"
        )




def ood_probe(
    reference: ActivationStore,
    test: ActivationStore,
    *,
    layers: Sequence[str | int] | None = None,
    pooling: str | None = None,
    detector: str | OODDetector = "mahalanobis",
    false_alarm_rate: float = 0.05,
    holdout: float = 0.25,
    use_labels: bool = True,
    n_boot: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> OODReport:
    """Fit an OOD detector per layer on a reference store and flag rows of a test store.

    Parameters
    ----------
    reference : ActivationStore
        In-distribution activations (e.g. the prompts a model was audited on).
    test : ActivationStore
        New activations of the *same model and layers* (e.g. production traffic,
        wrapped prompts, another language).
    layers : sequence, optional
        Layers to probe (default: every layer in both stores).
    detector : str or OODDetector
        ``"mahalanobis"``, ``"class-mahalanobis"``, ``"relative-mahalanobis"``,
        ``"knn"`` or a detector instance (copied per layer, settings kept; refitted).
    false_alarm_rate : float
        Target share of in-distribution rows flagged (threshold set on held-out rows).
    holdout : float
        Share of reference rows (pairs kept together) held out from the fit.
    use_labels : bool
        Pass the reference safe/unsafe labels to detectors that use them.

    Returns
    -------
    OODReport
    """
    for name, s in (("reference", reference), ("test", test)):
        if not isinstance(s, ActivationStore):
            raise TypeError(f"{name} must be an aqi ActivationStore, got {type(s).__name__}")
    check_bootstrap_args(n_boot, confidence)
    pooling = reference.resolve_pooling(pooling)
    test.resolve_pooling(pooling)
    names = shared_layers(reference, test) if layers is None else reference.resolve_layers(layers)
    test.resolve_layers(names)
    fit_rows, held_rows = reference_split(reference.labels, reference.pair_ids, holdout, seed)
    ids, cats = test.ids, test.categories
    out = []
    rows = len(fit_rows) + len(test.labels)
    for la in bar(names, desc="OOD per layer", total=len(names), unit="layer", rows=rows):
        # A fresh copy per layer keeps the instance's settings (k, shrinkage, …).
        det = copy.deepcopy(make_detector(detector))
        Xr = reference.activations(la, pooling)
        Xt = test.activations(la, pooling)
        if Xr.shape[1] != Xt.shape[1]:
            raise ValueError(
                f"layer {la!r} has {Xr.shape[1]} features in reference but {Xt.shape[1]} in test"
            )
        y = reference.labels[fit_rows] if use_labels or det.requires_labels else None
        det.fit(Xr[fit_rows], y)
        out.append(_layer_result(la, det, det.score(Xr[held_rows]), det.score(Xt), ids, cats,
                                 false_alarm_rate=false_alarm_rate, n_boot=n_boot,
                                 confidence=confidence, seed=seed))  # fmt: skip
    return OODReport(
        tuple(out), reference.model_name, test.model_name, len(fit_rows), len(held_rows), len(test)
    )


def _layer_result(
    la: str, det: Any, s_ref: np.ndarray, s_test: np.ndarray, ids: np.ndarray, cats: np.ndarray,
    *, false_alarm_rate: float, n_boot: int, confidence: float, seed: int | None,
) -> OODLayerResult:  # fmt: skip
    """One layer's result: the conformal threshold on the held-out reference scores, the
    detection metrics, and the test rows it flags."""
    thr = conformal_threshold(s_ref, false_alarm_rate)
    flagged = s_test > thr
    return OODLayerResult(
        layer=la,
        detector=repr(det),
        detection=detection_metrics(
            s_ref, s_test, n_boot=n_boot, confidence=confidence, seed=seed, label=la
        ),
        threshold=thr,
        false_alarm_rate=float(false_alarm_rate),
        heldout_flag_rate=float(np.mean(s_ref > thr)),
        flag_rate=wilson_interval(int(flagged.sum()), len(flagged), confidence),
        flagged_ids=tuple(ids[flagged].tolist()),
        flagged_categories=dict(Counter(cats[flagged].tolist())),
        scores=s_test,
        reference_scores=s_ref,
    )
