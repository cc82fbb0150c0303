"""Detection metrics and risk–coverage against scikit-learn and brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from aqi.probes import detection_metrics, risk_coverage


def _sklearn(s_in: np.ndarray, s_out: np.ndarray) -> tuple[float, float, float, float]:
    y = np.r_[np.zeros(len(s_in)), np.ones(len(s_out))]
    s = np.r_[s_in, s_out]
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return (
        roc_auc_score(y, s),
        average_precision_score(1 - y, -s),
        average_precision_score(y, s),
        fpr[np.argmax(tpr >= 0.95)],
    )


@pytest.mark.parametrize("decimals", [None, 1, 0])  # no ties, some ties, heavy ties
@pytest.mark.parametrize("sizes", [(300, 200), (50, 800), (7, 3)])
def test_metrics_equal_sklearn(decimals: int | None, sizes: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=sizes[0]), rng.normal(0.8, 1.3, size=sizes[1])
    if decimals is not None:
        a, b = a.round(decimals), b.round(decimals)
    r = detection_metrics(a, b, n_boot=0)
    auroc, ap_in, ap_out, fpr95 = _sklearn(a, b)
    assert float(r.auroc) == pytest.approx(auroc, rel=1e-12)
    assert float(r.aupr_in) == pytest.approx(ap_in, rel=1e-12)
    assert float(r.aupr_out) == pytest.approx(ap_out, rel=1e-12)
    assert float(r.fpr_at_tpr) == pytest.approx(fpr95, rel=1e-12)
    assert np.isnan(r.auroc.ci_low)


def test_bootstrap_interval_brackets_estimate_and_covers_population() -> None:
    rng = np.random.default_rng(0)
    # Population AUROC of N(0,1) vs N(1,1) is Phi(1/sqrt(2)) = 0.7602.
    from scipy.stats import norm

    truth = norm.cdf(1 / np.sqrt(2))
    hits = 0
    for seed in range(20):
        r = detection_metrics(
            rng.normal(size=300), rng.normal(1, 1, size=300), n_boot=300, seed=seed
        )
        assert r.auroc.ci_low <= float(r.auroc) <= r.auroc.ci_high
        hits += r.auroc.ci_low <= truth <= r.auroc.ci_high
    assert hits >= 16  # 95% intervals: 19/20 expected, >= 16 with overwhelming probability


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(-50, 50), min_size=2, max_size=40),
    st.lists(st.integers(-50, 50), min_size=2, max_size=40),
)
def test_auroc_properties(a: list[int], b: list[int]) -> None:
    a_, b_ = np.array(a) / 10, np.array(b) / 10  # ties likely
    r = float(detection_metrics(a_, b_, n_boot=0).auroc)
    # Swapping the roles of the sets mirrors the AUROC; a monotone map leaves it unchanged.
    assert float(detection_metrics(b_, a_, n_boot=0).auroc) == pytest.approx(1 - r, abs=1e-12)
    assert float(detection_metrics(np.exp(a_), np.exp(b_), n_boot=0).auroc) == pytest.approx(
        r, abs=1e-12
    )
    brute = np.mean((b_[:, None] > a_[None, :]) + 0.5 * (b_[:, None] == a_[None, :]))
    assert r == pytest.approx(brute, abs=1e-12)


def test_risk_coverage_equals_geifman_average_with_distinct_confidences() -> None:
    rng = np.random.default_rng(2)
    conf = rng.random(500)
    correct = (rng.random(500) < conf).astype(float)
    r = risk_coverage(conf, correct, n_boot=100)
    order = np.argsort(-conf)
    errs = np.cumsum(1 - correct[order])
    brute = np.mean(errs / np.arange(1, 501))
    assert float(r.aurc) == pytest.approx(brute, rel=1e-12)
    assert r.risk_at_full_coverage == pytest.approx(1 - correct.mean())
    assert r.aurc.ci_low < float(r.aurc) < r.aurc.ci_high


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scores_in": [[1.0]], "scores_out": [1.0]}, "scores_in must be a 1-D"),
        ({"scores_in": [], "scores_out": [1.0]}, "scores_in is empty"),
        ({"scores_in": [1.0, np.nan], "scores_out": [1.0]}, "non-finite score at position 1"),
        ({"scores_in": [1.0], "scores_out": [1.0], "n_boot": -1}, "n_boot=-1"),
        (
            {"scores_in": [1.0], "scores_out": [1.0], "confidence": 1.5},
            r"confidence=1.5; expected a level in \(0, 1\)",
        ),
        ({"scores_in": [1.0], "scores_out": [1.0], "tpr_level": 0}, "tpr_level must be"),
    ],
)
def test_detection_metrics_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        detection_metrics(**kwargs)


def test_risk_coverage_errors() -> None:
    with pytest.raises(ValueError, match="correct has 2 values but confidence_scores has 3"):
        risk_coverage([0.1, 0.2, 0.3], [1, 0])
    with pytest.raises(ValueError, match=r"correct must be in \[0, 1\]"):
        risk_coverage([0.1, 0.2], [1, 2])


def test_every_bootstrap_resample_is_finite() -> None:
    """Resamples that skip the top- or bottom-scored rows must not turn into NaN (and be
    silently dropped from the interval)."""
    from aqi.probes import metrics

    a, b = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.5, 2.5, 3.5, 4.0])
    ranked = metrics._Ranked(np.r_[a, b], np.r_[np.zeros(4), np.ones(4)])
    W = np.array([[0, 2, 1, 1, 1, 1, 2, 0], [1, 1, 1, 1, 0, 0, 2, 2]], dtype=np.float32)
    for v in metrics._roc_metrics(*ranked.cumulative(W), 0.95):
        assert np.isfinite(v).all()
    rc = risk_coverage(np.r_[a, b], np.r_[np.ones(4), np.zeros(4)], n_boot=200)
    assert np.isfinite([rc.aurc.ci_low, rc.aurc.ci_high]).all()
