"""Linear probes per layer: cross-validated logistic regression, a baseline beside the AQI."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from .._progress import bar
from .._stats import Estimate, check_bootstrap_args, estimate, resample_counts
from ..activations.store import ActivationStore
from .metrics import detection_metrics

__all__ = ["LinearProbeProfile", "LinearProbeResult", "linear_probe", "make_linear_probe"]


def make_linear_probe(C: float = 1.0) -> Pipeline:
    """Standardise, then L2-regularised logistic regression (unsafe = class 1)."""
    if not C > 0:
        raise ValueError(f"C must be > 0, got {C!r}")
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))


@dataclass(frozen=True)
class LinearProbeResult:
    """Out-of-fold accuracy and AUROC of a linear safe/unsafe probe at one layer."""

    layer: str
    accuracy: Estimate
    auroc: Estimate
    n: int
    n_folds: int
    grouped: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "accuracy": self.accuracy.to_dict(),
            "auroc": self.auroc.to_dict(),
            "n": self.n,
            "n_folds": self.n_folds,
            "grouped": self.grouped,
        }


@dataclass(frozen=True)
class LinearProbeProfile:
    """Linear-probe results for every probed layer, in depth order."""

    layers: tuple[LinearProbeResult, ...]
    model: str = ""

    @property
    def names(self) -> list[str]:
        return [r.layer for r in self.layers]

    @property
    def accuracies(self) -> np.ndarray:
        return np.array([float(r.accuracy) for r in self.layers])

    def best(self) -> LinearProbeResult:
        return self.layers[int(np.argmax(self.accuracies))]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "layers": [r.to_dict() for r in self.layers]}

    def __repr__(self) -> str:
        b = self.best()
        return (
            f"LinearProbeProfile({self.model!r}, {len(self.layers)} layers: best {b.layer} "
            f"accuracy {b.accuracy}, AUROC {b.auroc}, {b.n_folds}-fold"
            + (", pairs kept together" if b.grouped else "")
            + ")"
        )


def linear_probe(
    store: ActivationStore,
    *,
    layers: Sequence[str | int] | None = None,
    pooling: str | None = None,
    n_folds: int = 5,
    C: float = 1.0,
    n_boot: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> LinearProbeProfile:
    """Cross-validated logistic-regression probe of safe vs unsafe, per layer.

    Folds are stratified by label and, when the store has pair ids, keep each
    matched safe/unsafe pair in one fold (``StratifiedGroupKFold``), so a probe
    cannot score by recognising a pair's shared wording. Accuracy and AUROC are
    computed on the out-of-fold predictions, with bootstrap CIs over rows.
    """
    if not isinstance(store, ActivationStore):
        raise TypeError(f"store must be an aqi ActivationStore, got {type(store).__name__}")
    check_bootstrap_args(n_boot, confidence)
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    pooling = store.resolve_pooling(pooling)
    y = store.y
    counts = np.bincount(y, minlength=2)
    if counts.min() < n_folds:
        raise ValueError(
            f"each class needs at least n_folds={n_folds} rows; have {counts.tolist()} "
            "(safe, unsafe)"
        )
    groups = store.pair_ids
    grouped = bool(np.all(groups != ""))
    cv: Any = (
        StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)
        if grouped
        else StratifiedKFold(n_folds, shuffle=True, random_state=seed)
    )
    names = store.resolve_layers(layers)
    # One set of resample counts for every layer: accuracy of resample r = (W @ correct)_r / n.
    W = resample_counts(len(y), n_boot, np.random.default_rng(seed), np.float32)
    out = []
    for la in bar(names, desc="linear probe per layer", total=len(names), unit="layer",
                  rows=len(y)):
        X = store.activations(la, pooling).astype(np.float64)
        p = cross_val_predict(
            make_linear_probe(C), X, y, cv=cv, groups=groups if grouped else None,
            method="predict_proba",
        )[:, 1]  # fmt: skip
        correct = ((p >= 0.5).astype(int) == y).astype(np.float64)
        boot = (W @ correct.astype(np.float32)).astype(np.float64) / len(y)
        acc = estimate(correct.mean(), boot if n_boot else None, confidence)
        auroc = detection_metrics(
            p[y == 0], p[y == 1], n_boot=n_boot, confidence=confidence, seed=seed
        ).auroc
        out.append(LinearProbeResult(la, acc, auroc, len(y), n_folds, grouped))
    return LinearProbeProfile(tuple(out), store.model_name)
