"""Cluster indices: brute force and scikit-learn references, degenerate input, invariances."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist
from sklearn import metrics

from aqi.indices import (
    DegenerateInputWarning,
    calinski_harabasz_index,
    davies_bouldin_index,
    dunn_index,
    generalized_dunn_index,
    silhouette_index,
    xie_beni_index,
)
from aqi.indices._pairwise import cluster_extremes

REL = 1e-9


def blobs(n=(40, 60, 30), d=5, gap=3.0, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(i * gap, 1.0 + 0.3 * i, (m, d)) for i, m in enumerate(n)])
    y = np.concatenate([np.full(m, i) for i, m in enumerate(n)])
    return X + offset, y


# -- brute-force references (full distance matrices, plain loops) ---------------------
def bf_dunn(X, y):
    D = cdist(X, X)
    ks = np.unique(y)
    sep = min(D[np.ix_(y == a, y == b)].min() for a in ks for b in ks if a != b)
    diam = max(D[np.ix_(y == a, y == a)].max() for a in ks)
    return sep / diam


def bf_gd(X, y, variant):
    ks = np.unique(y)
    c = {a: X[y == a].mean(0) for a in ks}
    delta3 = max(2 * np.mean(np.linalg.norm(X[y == a] - c[a], axis=1)) for a in ks)
    seps = []
    for a in ks:
        for b in ks:
            if a >= b:
                continue
            if variant == "gd33":
                seps.append(cdist(X[y == a], X[y == b]).mean())
            elif variant == "gd43":
                seps.append(np.linalg.norm(c[a] - c[b]))
            else:
                s = (
                    np.linalg.norm(X[y == a] - c[b], axis=1).sum()
                    + np.linalg.norm(X[y == b] - c[a], axis=1).sum()
                )
                seps.append(s / ((y == a).sum() + (y == b).sum()))
    return min(seps) / delta3


def bf_xb(X, y):
    ks = np.unique(y)
    c = np.array([X[y == a].mean(0) for a in ks])
    num = sum(((X[y == a] - c[i]) ** 2).sum() for i, a in enumerate(ks))
    sep = min(((c[i] - c[j]) ** 2).sum() for i in range(len(ks)) for j in range(len(ks)) if i != j)
    return num / (len(X) * sep)


@pytest.mark.parametrize("offset", [0.0, 1e7])
@pytest.mark.parametrize("seed", [0, 1])
def test_against_references(offset, seed):
    X, y = blobs(seed=seed, offset=offset)
    X0, _ = blobs(seed=seed)  # the same data at the origin: the exact reference
    assert davies_bouldin_index(X, y) == pytest.approx(metrics.davies_bouldin_score(X0, y), rel=REL)
    assert calinski_harabasz_index(X, y) == pytest.approx(
        metrics.calinski_harabasz_score(X0, y), rel=REL
    )
    assert silhouette_index(X, y) == pytest.approx(metrics.silhouette_score(X0, y), rel=1e-7)
    assert float(dunn_index(X, y)) == pytest.approx(bf_dunn(X0, y), rel=REL)
    for v in ("gd33", "gd43", "gd53"):
        assert float(generalized_dunn_index(X, y, v)) == pytest.approx(bf_gd(X0, y, v), rel=REL), v
    assert xie_beni_index(X, y) == pytest.approx(bf_xb(X0, y), rel=REL)


def test_offset_robustness_beats_naive_float32():
    X, y = blobs(offset=0.0)
    Xo = (X + 1e7).astype(np.float64)
    assert float(dunn_index(Xo, y)) == pytest.approx(bf_dunn(X, y), rel=REL)


def test_blocked_extremes_equal_full_matrix_with_tiny_blocks():
    X, y = blobs(n=(17, 23, 9), seed=3)
    Xc = X - X.mean(0)
    ext = cluster_extremes(Xc, y, 3, mean_link=True, block_bytes=8 * 49 * 2)  # 2 rows per block
    D = cdist(Xc, Xc)
    for a in range(3):
        assert ext.diameter[a] == pytest.approx(D[np.ix_(y == a, y == a)].max(), rel=REL)
        for b in range(3):
            if a != b:
                blk = D[np.ix_(y == a, y == b)]
                assert ext.min_link[a, b] == pytest.approx(blk.min(), rel=REL)
                assert ext.mean_link[a, b] == pytest.approx(blk.mean(), rel=REL)


def test_fuzzy_xie_beni_with_hard_memberships_equals_crisp():
    X, y = blobs()
    U = np.eye(3)[y].T
    assert xie_beni_index(X, memberships=U, m=2.0) == pytest.approx(xie_beni_index(X, y), rel=REL)


def test_fuzzy_xie_beni_brute_force():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    U = rng.dirichlet([1, 1], size=30).T
    m = 1.7
    V = (U**m @ X) / (U**m).sum(1, keepdims=True)
    num = sum(U[i, k] ** m * ((X[k] - V[i]) ** 2).sum() for i in range(2) for k in range(30))
    ref = num / (30 * ((V[0] - V[1]) ** 2).sum())
    assert xie_beni_index(X, memberships=U, m=m) == pytest.approx(ref, rel=REL)


def test_max_samples_says_subsampled():
    X, y = blobs(n=(300, 300))
    r = dunn_index(X, y, max_samples=100)
    assert r.subsampled and r.n_used <= 102 and r.n_total == 600
    assert "subsampled" in repr(r)
    full = dunn_index(X, y)
    assert not full.subsampled and full.n_used == 600


# -- degenerate input ------------------------------------------------------------------
ALL = [
    davies_bouldin_index,
    calinski_harabasz_index,
    xie_beni_index,
    silhouette_index,
    lambda X, y: float(dunn_index(X, y)),
    lambda X, y: float(generalized_dunn_index(X, y)),
]


@pytest.mark.parametrize("index", ALL)
def test_one_label_is_an_error(index):
    with pytest.raises(ValueError, match="at least 2 clusters"):
        index(np.random.default_rng(0).normal(size=(10, 2)), np.zeros(10))


@pytest.mark.parametrize("index", ALL)
def test_identical_points_give_nan_with_warning_never_best(index):
    X = np.ones((10, 3)) * 5.0
    y = np.arange(10) % 2
    with pytest.warns(DegenerateInputWarning, match="undefined"):
        v = index(X, y)
    assert np.isnan(v)


@pytest.mark.parametrize("index", ALL)
def test_non_finite_is_an_error_naming_the_row(index):
    X = np.random.default_rng(0).normal(size=(10, 2))
    X[7, 1] = np.inf
    with pytest.raises(ValueError, match=r"non-finite value .* in row 7"):
        index(X, np.arange(10) % 2)


def test_coincident_centroids():
    X = np.array([[-1.0, 0], [1, 0], [0, -1], [0, 1]])
    y = [0, 0, 1, 1]
    with pytest.warns(DegenerateInputWarning, match="same centroid"):
        assert np.isnan(davies_bouldin_index(X, y))
    with pytest.warns(DegenerateInputWarning, match="same centroid"):
        assert np.isnan(xie_beni_index(X, y))
    # sklearn would say DB = inf here and 0.0 (the best) on identical points:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert metrics.davies_bouldin_score(np.ones((4, 2)), y) == 0.0


def test_singletons_dunn_zero_diameter_is_nan():
    X = np.array([[0.0, 0], [1, 1], [5, 5]])
    with pytest.warns(DegenerateInputWarning, match="zero diameter"):
        assert np.isnan(float(dunn_index(X, [0, 1, 2])))
    with pytest.warns(DegenerateInputWarning, match="n = k"):
        assert np.isnan(calinski_harabasz_index(X, [0, 1, 2]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"X": np.zeros(5), "labels": [0] * 5}, "2-D array"),
        ({"X": np.zeros((5, 2)), "labels": [0, 1]}, "one entry per row"),
        ({"X": np.zeros((0, 2)), "labels": []}, "X is empty"),
    ],
)
def test_shape_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        davies_bouldin_index(**kwargs)


def test_bad_variant_and_fuzzy_args():
    X, y = blobs()
    with pytest.raises(ValueError, match="variant='gd99'"):
        generalized_dunn_index(X, y, "gd99")
    with pytest.raises(ValueError, match="exactly one of labels"):
        xie_beni_index(X)
    with pytest.raises(ValueError, match="summing to 1"):
        xie_beni_index(X, memberships=np.ones((2, len(X))))
    with pytest.raises(ValueError, match="must be > 1"):
        xie_beni_index(X, memberships=np.eye(3)[y].T, m=1.0)


# -- invariances (hypothesis) -------------------------------------------------------------
def _rotation(d, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


INDICES = {
    "db": davies_bouldin_index,
    "ch": calinski_harabasz_index,
    "xb": xie_beni_index,
    "sil": silhouette_index,
    "dunn": lambda X, y: float(dunn_index(X, y)),
    "gd33": lambda X, y: float(generalized_dunn_index(X, y, "gd33")),
    "gd53": lambda X, y: float(generalized_dunn_index(X, y, "gd53")),
}


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    shift=st.floats(-1e6, 1e6),
    scale=st.floats(1e-3, 1e3),
    name=st.sampled_from(sorted(INDICES)),
)
def test_invariant_to_translation_scaling_rotation_permutation(seed, shift, scale, name):
    f = INDICES[name]
    X, y = blobs(n=(12, 15), d=4, seed=seed)
    base = f(X, y)
    R = _rotation(4, seed)
    perm = np.random.default_rng(seed).permutation(len(X))
    moved = (X @ R) * scale + shift
    assert f(moved[perm], y[perm]) == pytest.approx(base, rel=1e-6)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), name=st.sampled_from(sorted(INDICES)))
def test_monotone_as_clusters_pull_apart(seed, name):
    f = INDICES[name]
    rng = np.random.default_rng(seed)
    A, B = rng.normal(size=(15, 3)), rng.normal(size=(15, 3))
    y = np.r_[np.zeros(15), np.ones(15)]
    direction = np.array([1.0, 0.0, 0.0])
    vals = [f(np.r_[A, B + g * direction], y) for g in (8.0, 16.0, 32.0)]
    lower_better = name in ("db", "xb")
    ordered = vals[::-1] if lower_better else vals
    assert ordered[0] < ordered[1] < ordered[2], vals


def test_torch_device_argument_matches():
    X, y = blobs()
    assert float(dunn_index(X, y, device="cpu")) == pytest.approx(bf_dunn(X, y), rel=REL)
