"""OOD detectors against scikit-learn and brute force; streaming equals one-shot fits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from sklearn.covariance import EmpiricalCovariance, LedoitWolf, ShrunkCovariance
from sklearn.neighbors import NearestNeighbors

from aqi.probes import (
    ClassConditionalMahalanobis,
    CosineKNN,
    Mahalanobis,
    NotFittedError,
    RelativeMahalanobis,
    energy_score,
    make_detector,
    max_logit_score,
    max_softmax_score,
)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    A = rng.normal(size=(24, 24))
    X = rng.normal(size=(400, 24)) @ A + 1e4  # large offset: moments must stay exact
    y = np.repeat([0, 1], 200)
    X[y == 1] += 3.0
    T = rng.normal(size=(60, 24)) @ A * 1.5 + 1e4
    return X, y, T


@pytest.mark.parametrize(
    ("shrinkage", "reference"),
    [
        ("ledoit-wolf", LedoitWolf()),
        (0.0, EmpiricalCovariance()),
        (0.3, ShrunkCovariance(shrinkage=0.3)),
    ],
)
def test_mahalanobis_equals_sklearn(data: tuple, shrinkage: object, reference: object) -> None:
    X, _, T = data
    det = Mahalanobis(shrinkage).fit(X)
    reference.fit(X)
    np.testing.assert_allclose(det.covariance_, reference.covariance_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(det.score(T), reference.mahalanobis(T), rtol=1e-6)
    if shrinkage == "ledoit-wolf":
        assert det.shrinkage_ == pytest.approx(reference.shrinkage_, rel=1e-8)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 120), min_size=1, max_size=6))
def test_streaming_fit_equals_one_shot(cuts: list[int]) -> None:
    rng = np.random.default_rng(len(cuts))
    X = rng.normal(size=(400, 12)) * np.arange(1, 13) + 50
    y = rng.integers(0, 3, 400)
    T = rng.normal(size=(30, 12)) * 3 + 50
    for cls in (Mahalanobis, ClassConditionalMahalanobis, RelativeMahalanobis):
        one = cls().fit(X, y)
        streamed = cls()
        edges = np.unique(np.clip(np.cumsum(cuts), 0, 400))
        for a, b in zip(np.r_[0, edges], np.r_[edges, 400]):
            if b > a:
                streamed.partial_fit(X[a:b], y[a:b])
        np.testing.assert_allclose(streamed.score(T), one.score(T), rtol=1e-8)


def test_class_conditional_is_min_over_classes_with_pooled_covariance(data: tuple) -> None:
    X, y, T = data
    det = ClassConditionalMahalanobis(0.0).fit(X, y)
    Z = np.vstack([X[y == c] - X[y == c].mean(0) for c in (0, 1)])
    P = np.linalg.inv(Z.T @ Z / len(Z))
    brute = np.min(
        [np.einsum("ij,jk,ik->i", T - X[y == c].mean(0), P, T - X[y == c].mean(0)) for c in (0, 1)],
        axis=0,
    )
    np.testing.assert_allclose(det.score(T), brute, rtol=1e-6)


def test_relative_mahalanobis_is_foreground_minus_background(data: tuple) -> None:
    X, y, T = data
    rng = np.random.default_rng(3)
    B = rng.normal(size=(500, 24)) * 5 + 1e4
    rel = RelativeMahalanobis().fit(X, y, background=B)
    fg = ClassConditionalMahalanobis().fit(X, y).score(T)
    bg = Mahalanobis().fit(B).score(T)
    np.testing.assert_allclose(rel.score(T), fg - bg, rtol=1e-9)


@pytest.mark.parametrize("k", [1, 5])
def test_cosine_knn_equals_sklearn(data: tuple, k: int) -> None:
    X, _, T = data
    X = X - 1e4
    T = T - 1e4
    det = CosineKNN(k=k, block_rows=7).fit(X[:150]).partial_fit(X[150:])
    nn = NearestNeighbors(n_neighbors=k, metric="cosine").fit(X)
    dist, _ = nn.kneighbors(T)
    np.testing.assert_allclose(det.score(T), dist[:, -1], atol=1e-5)  # float32 search


def test_shifted_rows_score_higher(data: tuple) -> None:
    X, y, T = data
    for name in ("mahalanobis", "class-mahalanobis", "relative-mahalanobis", "knn"):
        det = make_detector(name).fit(X[::2], y[::2])
        assert np.median(det.score(T)) > np.median(det.score(X[1::2])), name


def test_errors(data: tuple) -> None:
    X, _, T = data
    with pytest.raises(NotFittedError, match="Mahalanobis is not fitted"):
        Mahalanobis().score(T)
    with pytest.raises(ValueError, match="needs labels"):
        ClassConditionalMahalanobis().fit(X)
    with pytest.raises(ValueError, match="has 3 features but the detector was fitted on 24"):
        Mahalanobis().fit(X).score(T[:, :3])
    with pytest.raises(ValueError, match="shrinkage must be 'ledoit-wolf' or a float"):
        Mahalanobis("oas")
    with pytest.raises(ValueError, match="covariance is singular"):
        Mahalanobis(0.0).fit(X[:10]).score(T)
    with pytest.raises(ValueError, match="k=50 exceeds the 10 reference rows"):
        CosineKNN(k=50).fit(X[:10]).score(T)
    with pytest.raises(ValueError, match="row 1 is all zeros"):
        CosineKNN().fit(np.vstack([X[:1], np.zeros((1, 24))]))
    with pytest.raises(ValueError, match="unknown detector 'lof'"):
        make_detector("lof")
    with pytest.raises(ValueError, match=r"non-finite value \(NaN or inf\) in row 2"):
        Mahalanobis().fit(np.vstack([X[:2], np.full((1, 24), np.nan)]))


def test_logit_scores_match_definitions() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 4)) * 3
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(max_softmax_score(z), -p.max(1))
    np.testing.assert_allclose(max_logit_score(z), -z.max(1))
    np.testing.assert_allclose(energy_score(z, 2.0), -2.0 * logsumexp(z / 2.0, axis=1))
    with pytest.raises(ValueError, match=r"logits must have shape \(n_samples, n_classes >= 2\)"):
        energy_score(np.zeros(3))
