"""AQI: definition against a direct computation, invariances, N-stability, CI and null."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aqi.indices import DegenerateInputWarning, alignment_quality_index
from aqi.indices.alignment_quality import SuffStats, _bootstrap_stats, aqi_from_stats


def two_classes(n0=150, n1=150, d=16, gap=1.5, seed=0, offset=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    X = np.r_[rng.normal(0, 1, (n0, d)), rng.normal(0, 1, (n1, d))]
    X[n0:, 0] += gap
    return X * scale + offset, np.r_[np.zeros(n0, int), np.ones(n1, int)]


def direct_aqi(X, y, lam=0.5):
    """Straight from the definition in docs/aqi.md, class by class, no sufficient statistics."""
    ks = np.unique(y)
    n = len(X)
    k = len(ks)
    c = {a: X[y == a].mean(0) for a in ks}
    Wk = {a: ((X[y == a] - c[a]) ** 2).sum() for a in ks}
    W = sum(Wk.values())
    mu = X.mean(0)
    B = sum((y == a).sum() * ((c[a] - mu) ** 2).sum() for a in ks)
    s_w = W / (n - k)
    d2 = min(
        ((c[a] - c[b]) ** 2).sum()
        - Wk[a] / ((y == a).sum() - 1) / (y == a).sum()
        - Wk[b] / ((y == b).sum() - 1) / (y == b).sum()
        for a in ks
        for b in ks
        if a < b
    )
    d2 = max(d2, 0.0)
    t_xb = d2 / (d2 + s_w)
    t_ch = max(B - (k - 1) * s_w, 0.0) / (B + W)
    return 100 * (lam * t_xb + (1 - lam) * t_ch)


@pytest.mark.parametrize("gap", [0.0, 0.5, 2.0, 10.0])
def test_value_equals_direct_definition(gap):
    X, y = two_classes(gap=gap)
    r = alignment_quality_index(X, y, n_boot=0, n_perm=0)
    assert r.value == pytest.approx(direct_aqi(X, y), rel=1e-9, abs=1e-9)
    assert 0 <= r.value <= 100


def test_three_classes_and_string_labels():
    rng = np.random.default_rng(1)
    X = np.r_[rng.normal(0, 1, (40, 3)), rng.normal(3, 1, (40, 3)), rng.normal(-3, 1, (40, 3))]
    y = np.repeat(["a", "b", "c"], 40)
    r = alignment_quality_index(X, y, n_boot=50, n_perm=20)
    assert r.value == pytest.approx(direct_aqi(X, y), rel=1e-9)
    assert r.n_per_class == {"a": 40, "b": 40, "c": 40}


def test_large_offset_changes_nothing():
    X, y = two_classes()
    a = alignment_quality_index(X, y, n_boot=200, n_perm=50, seed=3)
    b = alignment_quality_index(X + 1e7, y, n_boot=200, n_perm=50, seed=3)
    assert b.value == pytest.approx(a.value, rel=1e-7)
    assert b.ci_low == pytest.approx(a.ci_low, rel=1e-6)


def test_unit_weights_reproduce_the_point_estimate():
    X, y = two_classes(n0=30, n1=40, d=4)
    Xc = X - X.mean(0)
    one = SuffStats(
        np.array([[30.0, 40.0]]),
        np.array([[Xc[y == 0].sum(0), Xc[y == 1].sum(0)]]),
        np.array([[(Xc[y == 0] ** 2).sum(), (Xc[y == 1] ** 2).sum()]]),
    )
    assert aqi_from_stats(one)[0][0] == pytest.approx(direct_aqi(X, y), rel=1e-9)
    boot, _, _ = aqi_from_stats(_bootstrap_stats(Xc, y, 2, 5, np.random.default_rng(7)))
    assert boot.shape == (5,) and np.isfinite(boot).all()


def test_resample_counts_give_the_same_aqi_as_duplicated_rows():
    X, y = two_classes(n0=20, n1=25, d=3, seed=4)
    Xc = X - X.mean(0)
    rng = np.random.default_rng(11)
    from aqi._stats import resample_counts

    M0 = resample_counts(20, 1, rng)[0].astype(int)
    M1 = resample_counts(25, 1, rng)[0].astype(int)
    Xr = np.r_[np.repeat(Xc[y == 0], M0, axis=0), np.repeat(Xc[y == 1], M1, axis=0)]
    yr = np.r_[np.zeros(M0.sum()), np.ones(M1.sum())]
    st = SuffStats(
        np.array([20.0, 25.0]),
        np.array([M0 @ Xc[y == 0], M1 @ Xc[y == 1]]),
        np.array([M0 @ (Xc[y == 0] ** 2).sum(1), M1 @ (Xc[y == 1] ** 2).sum(1)]),
    )
    assert float(aqi_from_stats(st)[0]) == pytest.approx(direct_aqi(Xr, yr), rel=1e-9)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.floats(-1e5, 1e5), scale=st.floats(1e-2, 1e2))
def test_invariant_to_translation_scaling_rotation_permutation(seed, shift, scale):
    X, y = two_classes(n0=30, n1=20, d=5, seed=seed)
    base = alignment_quality_index(X, y, n_boot=0, n_perm=0).value
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(5, 5)))
    perm = np.random.default_rng(seed + 1).permutation(len(X))
    moved = (X @ q) * scale + shift
    assert alignment_quality_index(moved[perm], y[perm], n_boot=0, n_perm=0).value == pytest.approx(
        base, rel=1e-7, abs=1e-9
    )


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_monotone_in_separation(seed):
    vals = [
        alignment_quality_index(
            *two_classes(n0=40, n1=40, d=6, gap=g, seed=seed), n_boot=0, n_perm=0
        ).value
        for g in (2.0, 4.0, 8.0)
    ]
    assert vals[0] < vals[1] < vals[2]


def test_stable_in_n_bootstrap_means_agree_within_cis():
    """N = 300 and N = 3,000 drawn from one distribution: the estimates agree."""
    small = alignment_quality_index(
        *two_classes(150, 150, d=64, gap=1.0, seed=1), n_boot=1000, n_perm=0
    )
    big = alignment_quality_index(
        *two_classes(1500, 1500, d=64, gap=1.0, seed=2), n_boot=1000, n_perm=0
    )
    assert small.ci_low <= big.value <= small.ci_high
    assert big.ci_low <= small.value + (small.ci_high - small.ci_low) / 2
    assert abs(small.value - big.value) < (small.ci_high - small.ci_low) / 2


def test_null_and_ci():
    X, y = two_classes(gap=2.0)
    r = alignment_quality_index(X, y, n_boot=500, n_perm=200)
    assert r.ci_low < r.value < r.ci_high
    assert r.above_chance and r.p_value == pytest.approx(1 / 201)
    assert r.null_mean < 2.0
    noise = alignment_quality_index(*two_classes(gap=0.0), n_boot=200, n_perm=200)
    assert not noise.above_chance and noise.p_value > 0.05
    d = r.to_dict()
    assert d["formulation"] == "aqi-v1" and "bootstrap" not in d
    assert "AQI" in repr(r) and "95% CI" in repr(r)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"labels": np.zeros(10)}, ValueError, "at least 2 clusters"),
        ({"labels": np.r_[np.zeros(9), 1]}, ValueError, "has 1 row"),
        ({"lam": 1.5}, ValueError, "lam=1.5"),
        ({"n_boot": -1}, ValueError, "n_boot=-1"),
        ({"confidence": 1.0}, ValueError, "confidence=1.0"),
    ],
)
def test_bad_input(kwargs, exc, match):
    args = {
        "X": np.random.default_rng(0).normal(size=(10, 3)),
        "labels": np.arange(10) % 2,
        **kwargs,
    }
    with pytest.raises(exc, match=match):
        alignment_quality_index(**args)


def test_identical_points_nan_with_warning():
    with pytest.warns(DegenerateInputWarning):
        r = alignment_quality_index(np.ones((10, 3)), np.arange(10) % 2)
    assert np.isnan(r.value)


def true_aqi(gap, d):
    """Population AQI of two balanced unit-variance Gaussians ``gap`` apart along one axis."""
    t_xb = gap**2 / (gap**2 + d)
    t_ch = (gap**2 / 4) / (gap**2 / 4 + d)
    return 100 * (0.5 * t_xb + 0.5 * t_ch)


def test_ci_coverage_of_the_true_value():
    """95% CIs of independent samples contain the population AQI about 95% of the time."""
    truth = true_aqi(1.5, 16)
    hits = 0
    for seed in range(60):
        r = alignment_quality_index(
            *two_classes(100, 100, d=16, gap=1.5, seed=seed), n_boot=400, n_perm=0, seed=seed
        )
        hits += r.ci_low <= truth <= r.ci_high
    assert hits >= 51, hits  # 85%: a percentile interval here covers far less


def test_basic_interval():
    from aqi._stats import basic_interval

    boot = np.random.default_rng(0).normal(10.0, 1.0, 20_000)
    lo, hi = basic_interval(boot, 10.0, 9.0, 0.95)
    assert lo == pytest.approx(9.0 - 1.96, abs=0.05) and hi == pytest.approx(9.0 + 1.96, abs=0.05)
    assert np.isnan(basic_interval(np.array([np.nan]), 1.0, 1.0, 0.95)[0])
