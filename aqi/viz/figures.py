"""Figures of results: AQI profile, comparison, index table, layer weights, reliability
diagram, OOD histogram and ROC, jailbreak drift. Every function returns a ``Figure``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..indices.compare import Comparison
from ..indices.profile import AQIProfile
from ..probes.axes import TwoAxes
from ..probes.calibration import CalibrationResult
from ..probes.jailbreak import JailbreakDriftProfile
from ..probes.ood import OODLayerResult
from .style import COLORS, axes, display_name, short

__all__ = [
    "index_table",
    "plot_comparison",
    "plot_drift",
    "plot_index_table",
    "plot_layer_weights",
    "plot_ood_histogram",
    "plot_profile",
    "plot_reliability",
    "plot_roc",
    "plot_two_axes",
]


def plot_profile(profile: AQIProfile, *, ax: Axes | None = None) -> Figure:
    """Per-layer AQI with its CI band and the permutation null's 95th-percentile band.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib, aqi
    >>> rng = np.random.default_rng(0)
    >>> arrays = {f"L{i}": rng.normal(size=(60, 4)) + i * np.r_[np.zeros(30), np.ones(30)][:, None]
    ...           for i in range(3)}
    >>> s = aqi.store_from_arrays(pathlib.Path(tempfile.mkdtemp()) / "s.h5", arrays,
    ...                           labels=["safe"] * 30 + ["unsafe"] * 30)
    >>> fig = plot_profile(aqi.score(s, n_boot=50, n_perm=20))
    >>> len(fig.axes)
    1
    """
    if not isinstance(profile, AQIProfile):
        raise TypeError(f"profile must be an AQIProfile (aqi.score), got {type(profile).__name__}")
    fig, ax = axes(ax, (max(5.0, 0.22 * len(profile.layers)), 3.2))
    x = np.arange(len(profile.layers))
    v = profile.values
    lo = np.array([r.ci_low for r in profile.layers])
    hi = np.array([r.ci_high for r in profile.layers])
    null = np.array([r.null_high for r in profile.layers])
    if np.isfinite(null).any():
        ax.fill_between(x, 0, null, color=COLORS["null"], alpha=0.25, lw=0,
                        label="permutation null (95th pct)")  # fmt: skip
    if np.isfinite(lo).any():
        ax.fill_between(x, lo, hi, color=COLORS["safe"], alpha=0.25, lw=0, label="95% CI")
    ax.plot(x, v, "-o", color=COLORS["safe"], ms=3, label="AQI")
    for name, r in profile.lexical.items():
        if name == "bag_of_words" and np.isfinite(r.value):
            ax.axhline(r.value, color=COLORS["warn"], ls="--", lw=1, label="bag-of-words control")
    b = profile.best()
    ax.annotate(f"{b.value:.1f}", (int(np.nanargmax(v)), b.value), textcoords="offset points",
                xytext=(0, 6), ha="center", fontsize=7)  # fmt: skip
    ax.set_xticks(x, [short(n) for n in profile.names], fontsize=6, rotation=90)
    ax.set_xlabel("layer")
    ax.set_ylabel("AQI (0–100)")
    ax.set_ylim(bottom=0)
    name = display_name(profile.model) or "model"
    ax.set_title(f"AQI per layer — {name} ({profile.pooling} pooling)", fontsize=9)
    ax.legend(fontsize=6, frameon=False, loc="upper left")
    return fig


def plot_comparison(cmp: Comparison, *, ax: Axes | None = None) -> Figure:
    """AQI of both models per layer and the difference with its paired CI."""
    if not isinstance(cmp, Comparison):
        raise TypeError(f"cmp must be a Comparison (aqi.compare), got {type(cmp).__name__}")
    fig, ax = axes(ax, (max(5.0, 0.22 * len(cmp.layers)), 3.2))
    x = np.arange(len(cmp.layers))
    a = np.array([d.aqi_a for d in cmp.layers])
    b = np.array([d.aqi_b for d in cmp.layers])
    ax.plot(x, a, "-o", ms=3, color=COLORS["safe"], label=f"baseline: {cmp.model_a}")
    ax.plot(x, b, "-s", ms=3, color=COLORS["unsafe"], label=f"audited: {cmp.model_b}")
    sig = np.array([d.significant and d.difference > 0 for d in cmp.layers])
    if sig.any():
        ax.scatter(x[sig], b[sig], s=60, facecolors="none", edgecolors="k", lw=1,
                   label="significant drop (95% CI)")  # fmt: skip
    ax.set_xticks(x, [short(d.layer_b) for d in cmp.layers], fontsize=6, rotation=90)
    ax.set_ylabel("AQI")
    ax.set_ylim(bottom=0)
    ax.set_title(f"AQI, baseline vs audited model (n = {cmp.n} paired prompts)", fontsize=9)
    ax.legend(fontsize=6, frameon=False)
    return fig


def plot_two_axes(two: TwoAxes) -> Figure:
    """Recognition (instruction) and disposition (decision point) AQI per layer, side by side,
    each with its CI band and null, and the baseline's curve when there is one.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib, aqi
    >>> from aqi.probes.axes import two_axes
    >>> rng = np.random.default_rng(0); y = ["safe"] * 30 + ["unsafe"] * 30
    >>> X = {f"L{i}": rng.normal(size=(60, 4)) + i * np.r_[np.zeros(30), np.ones(30)][:, None]
    ...      for i in range(3)}
    >>> s = aqi.store_from_arrays(pathlib.Path(tempfile.mkdtemp()) / "s.h5",
    ...     {"instruction": X, "post_instruction": X}, spans=["instruction", "post_instruction"],
    ...     labels=y)
    >>> len(plot_two_axes(two_axes(s, n_boot=50, n_perm=20)).axes)
    2
    """
    if not isinstance(two, TwoAxes):
        raise TypeError(f"two must be a TwoAxes (aqi.probes.two_axes), got {type(two).__name__}")
    n = len(two.recognition.profile.layers)
    fig = Figure(figsize=(max(7.0, 0.3 * n), 3.2), layout="constrained")
    panels = fig.subplots(1, 2, sharey=True)
    titles = ("harmfulness recognition", "refusal disposition")
    for ax, axis, title in zip(panels, (two.recognition, two.disposition), titles, strict=True):
        prof = axis.profile
        x = np.arange(len(prof.layers))
        lo = np.array([r.ci_low for r in prof.layers])
        hi = np.array([r.ci_high for r in prof.layers])
        null = np.array([r.null_high for r in prof.layers])
        if np.isfinite(null).any():
            ax.fill_between(x, 0, null, color=COLORS["null"], alpha=0.25, lw=0,
                            label="permutation null (95th pct)")  # fmt: skip
        if np.isfinite(lo).any():
            ax.fill_between(x, lo, hi, color=COLORS["unsafe"], alpha=0.2, lw=0, label="95% CI")
        ax.plot(x, prof.values, "-o", ms=3, color=COLORS["unsafe"], label="audited")
        if axis.comparison is not None:
            ax.plot(x, [d.aqi_a for d in axis.comparison.layers][: len(x)], "-", lw=1,
                    color=COLORS["safe"], label="baseline")  # fmt: skip
        ax.set_xticks(x, [short(r.layer) for r in prof.layers], fontsize=6, rotation=90)
        ax.set_title(f"{title}: {axis.span} ({axis.pooling})", fontsize=9)
        ax.set_xlabel("layer")
        ax.set_ylim(bottom=0)
    panels[0].set_ylabel("AQI (0–100)")
    panels[0].legend(fontsize=6, frameon=False, loc="upper left")
    return fig


def index_table(X: Any, labels: Any) -> dict[str, float]:
    """Every cluster-quality index of one layer: DB, Dunn, Xie–Beni, CH, silhouette, AQI."""
    from ..indices import (
        alignment_quality_index,
        calinski_harabasz_index,
        davies_bouldin_index,
        dunn_index,
        silhouette_index,
        xie_beni_index,
    )

    return {
        "AQI": alignment_quality_index(X, labels, n_boot=0, n_perm=0).value,
        "Davies–Bouldin ↓": davies_bouldin_index(X, labels),
        "Dunn ↑": float(dunn_index(X, labels).value),
        "Xie–Beni ↓": xie_beni_index(X, labels),
        "Calinski–Harabasz ↑": calinski_harabasz_index(X, labels),
        "silhouette ↑": silhouette_index(X, labels),
    }


def plot_index_table(rows: dict[str, dict[str, float]], *, ax: Axes | None = None) -> Figure:
    """A table figure: one row per layer, one column per index (from :func:`index_table`)."""
    if not rows:
        raise ValueError("rows is empty; pass {layer: index_table(X, labels)}")
    cols = list(next(iter(rows.values())))
    fig, ax = axes(ax, (1.1 * (len(cols) + 1), 0.3 * (len(rows) + 2)))
    ax.axis("off")
    cell = [[f"{r[c]:.3g}" for c in cols] for r in rows.values()]
    t = ax.table(cellText=cell, rowLabels=[short(k) for k in rows], colLabels=cols,
                 loc="center", cellLoc="right")  # fmt: skip
    t.auto_set_font_size(False)
    t.set_fontsize(7)
    return fig


def plot_layer_weights(pooling: Any, *, ax: Axes | None = None) -> Figure:
    """Bar chart of learned layer weights (:func:`aqi.learn_layer_weights`)."""
    from ..indices.layer_weights import LayerWeights

    if not isinstance(pooling, LayerWeights):
        raise TypeError(
            "pooling must be a LayerWeights (aqi.learn_layer_weights), got "
            f"{type(pooling).__name__}"
        )
    fig, ax = axes(ax, (max(4.0, 0.22 * len(pooling.layers)), 2.6))
    x = np.arange(len(pooling.layers))
    ax.bar(x, pooling.weights, color=COLORS["safe"])
    ax.set_xticks(x, [short(la) for la in pooling.layers], fontsize=7)
    ax.set_ylabel("weight")
    ax.set_title(
        f"learned layer pooling: held-out AQI {pooling.heldout.value:.1f} "
        f"(best single layer {pooling.best_single.value:.1f})",
        fontsize=9,
    )
    return fig


def plot_reliability(
    results: CalibrationResult | Sequence[CalibrationResult], *, ax: Axes | None = None
) -> Figure:
    """Reliability diagram: accuracy vs confidence per bin (marker area ∝ bin size),
    for one or several calibration results (e.g. in distribution and under shift)."""
    res = [results] if isinstance(results, CalibrationResult) else list(results)
    if not res or not all(isinstance(r, CalibrationResult) for r in res):
        raise TypeError("results must be CalibrationResult(s) from preference_calibration")
    fig, ax = axes(ax, (4.2, 4.0))
    ax.plot([0, 1], [0, 1], ls="--", color=COLORS["neutral"], lw=1, label="perfect calibration")
    palette = [COLORS["safe"], COLORS["unsafe"], COLORS["accent"], COLORS["warn"], COLORS["null"]]
    for i, r in enumerate(res):
        b = r.bins
        m = b.count > 0
        size = 10 + 200 * b.count[m] / b.count.sum()
        color = palette[i % len(palette)]
        ax.plot(b.confidence[m], b.accuracy[m], "-", color=color, lw=1)
        ax.scatter(b.confidence[m], b.accuracy[m], s=size, color=color, alpha=0.8,
                   label=f"{r.label or 'scores'}: ECE {float(r.ece):.3f}")  # fmt: skip
    lo = min(0.5, *(np.nanmin(r.bins.confidence) for r in res))
    ax.set_xlim(lo - 0.02, 1.0)
    ax.set_ylim(min(lo, *(np.nanmin(r.bins.accuracy) for r in res)) - 0.02, 1.0)
    ax.set_xlabel("confidence (top label)")
    ax.set_ylabel("accuracy")
    ax.set_title("reliability diagram", fontsize=9)
    ax.legend(fontsize=6, frameon=False, loc="upper left")
    return fig


def _ood_scores(result: Any) -> tuple[np.ndarray, np.ndarray, float | None, str]:
    if isinstance(result, OODLayerResult):
        return result.reference_scores, result.scores, result.threshold, result.layer
    if isinstance(result, tuple) and len(result) == 2:
        return np.asarray(result[0]), np.asarray(result[1]), None, ""
    raise TypeError("pass an OODLayerResult or a (scores_in, scores_out) tuple")


def plot_ood_histogram(result: Any, *, ax: Axes | None = None, bins: int = 40) -> Figure:
    """Histograms of OOD scores: held-out reference vs test, with the threshold."""
    s_in, s_out, thr, layer = _ood_scores(result)
    fig, ax = axes(ax, (4.6, 3.0))
    edges = np.histogram_bin_edges(np.r_[s_in, s_out], bins=bins)
    ax.hist(
        s_in, edges, density=True, alpha=0.55, color=COLORS["safe"], label="reference (held out)"
    )
    ax.hist(s_out, edges, density=True, alpha=0.55, color=COLORS["unsafe"], label="test")
    if thr is not None and np.isfinite(thr):
        ax.axvline(thr, color="k", lw=1, ls="--", label="threshold")
    ax.set_xlabel("OOD score (higher = more out-of-distribution)")
    ax.set_ylabel("density")
    ax.set_title(f"OOD scores{' at ' + layer if layer else ''}", fontsize=9)
    ax.legend(fontsize=6, frameon=False)
    return fig


def plot_roc(result: Any, *, ax: Axes | None = None) -> Figure:
    """ROC curve of an OOD score (test = positive)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    s_in, s_out, _, layer = _ood_scores(result)
    y = np.r_[np.zeros(len(s_in)), np.ones(len(s_out))]
    s = np.r_[s_in, s_out]
    fpr, tpr, _ = roc_curve(y, s)
    fig, ax = axes(ax, (3.6, 3.4))
    ax.plot([0, 1], [0, 1], ls="--", color=COLORS["neutral"], lw=1)
    ax.plot(fpr, tpr, color=COLORS["unsafe"], lw=1.5, label=f"AUROC {roc_auc_score(y, s):.3f}")
    ax.set_xlabel("false-alarm rate (reference flagged)")
    ax.set_ylabel("detection rate (test flagged)")
    ax.set_title(f"ROC{' at ' + layer if layer else ''}", fontsize=9)
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    return fig


def plot_drift(profile: JailbreakDriftProfile, *, ax: Axes | None = None) -> Figure:
    """Jailbreak drift per template: share of wrapped unsafe prompts a probe calls safe."""
    if not isinstance(profile, JailbreakDriftProfile):
        raise TypeError(f"profile must be a JailbreakDriftProfile, got {type(profile).__name__}")
    w = profile.worst()
    names = list(w.per_template)
    fig, ax = axes(ax, (4.8, 0.35 * len(names) + 1.4))
    y = np.arange(len(names))
    vals = [w.per_template[n] for n in names]
    ax.barh(y, vals, color=[COLORS["unsafe"] if v >= profile.max_share_safe else COLORS["safe"]
                            for v in vals])  # fmt: skip
    ax.axvline(w.plain_share_safe, color=COLORS["neutral"], ls=":", lw=1, label="plain unsafe")
    ax.axvline(profile.max_share_safe, color="k", ls="--", lw=1, label="flag threshold")
    ax.set_yticks(y, names, fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of wrapped unsafe prompts classified safe")
    ax.set_title(f"jailbreak drift at {w.layer} (centroid shift {float(w.centroid_shift):.2f})",
                 fontsize=9)  # fmt: skip
    ax.legend(fontsize=6, frameon=False, loc="lower right")
    return fig
