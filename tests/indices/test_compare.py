"""compare: the change rule's power depends on the evidence, not on n_boot or the layer count."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import norm

import aqi
from aqi._stats import DegenerateInputWarning, PairedWeights, holm
from aqi.activations import store_from_arrays
from aqi.indices.compare import _difference


def _two_classes(rng: np.random.Generator, y: np.ndarray, gap: float, d: int = 6) -> np.ndarray:
    X = rng.normal(size=(len(y), d))
    X[:, 0] += gap * y
    return X


def test_a_large_drop_survives_holm_over_80_layers_at_200_resamples(tmp_path):
    """Counts floored at 1/(n_boot+1) give a Holm p of at least 80/201 here; a fitted
    bootstrap distribution does not."""
    rng = np.random.default_rng(0)
    n, n_layers, dropped = 200, 80, range(60, 70)
    y = np.repeat([0, 1], n // 2)
    ids = [f"r{i}" for i in range(n)]
    base = {f"layer{i}": _two_classes(rng, y, 3.0) for i in range(n_layers)}
    tuned = {
        name: (_two_classes(rng, y, 0.5) if i in dropped else X + rng.normal(0, 0.1, X.shape))
        for i, (name, X) in enumerate(base.items())
    }
    a = store_from_arrays(tmp_path / "a.h5", base, labels=y, ids=ids)
    b = store_from_arrays(tmp_path / "b.h5", tuned, labels=y, ids=ids)
    cmp = aqi.compare(a, b, n_boot=200)
    p = np.array([d.p_value for d in cmp.layers])
    adj = holm(p)
    assert len(adj) == n_layers
    for i in dropped:
        d = cmp.layers[i]
        assert d.difference > 10 and d.ci_low > 0
        assert adj[i] < 0.05, (d, adj[i])
        assert adj[i] < n_layers / (200 + 1)  # below the old floor of the count p-value
    # The p-value is the normal tail of the drop over its bootstrap SD, not a count.
    d = cmp.layers[65]
    assert 0 < d.p_value < 1 / 201


def test_no_change_fails_the_rule_no_more_often_than_alpha():
    """Two models drawn from one distribution: the share of runs where any of 5 layers has
    a Holm-adjusted p < 0.05 stays at alpha (plus ~3 binomial SDs of sampling margin)."""
    runs, n_layers, n, alpha = 100, 5, 200, 0.05
    y = np.repeat([0, 1], n // 2)
    any_significant = 0
    for run in range(runs):
        rng = np.random.default_rng(run)
        weights = PairedWeights(sizes=(n // 2, n // 2), n_boot=200, seed=run)
        p = [
            _difference(
                _two_classes(rng, y, 1.0, d=4), _two_classes(rng, y, 1.0, d=4), y, weights,
                lam=0.5, confidence=0.95, layers=("l", "l"),
            ).p_value
            for _ in range(n_layers)
        ]
        any_significant += bool((holm(np.array(p)) < alpha).any())
    margin = 3 * np.sqrt(alpha * (1 - alpha) / runs)
    assert any_significant / runs <= alpha + margin, any_significant


def test_p_value_is_the_normal_tail_of_the_paired_differences():
    """Brute force: materialise every paired resample, score both models on it, and fit."""
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1], 40)  # rows already ordered class by class, as the weights are
    Xa = _two_classes(rng, y, 2.0)
    Xb = Xa + rng.normal(0, 1.0, Xa.shape)
    w = PairedWeights(sizes=(40, 40), n_boot=100, seed=0)
    d = _difference(Xa, Xb, y, w, lam=0.5, confidence=0.95, layers=("l", "l"))
    counts = np.concatenate(list(w)).astype(int)

    def plain(X: np.ndarray, c: np.ndarray) -> float:
        rows, labels = np.repeat(X, c, 0), np.repeat(y, c)
        return aqi.alignment_quality_index(rows, labels, n_boot=0, n_perm=0).value

    diffs = [plain(Xa, c) - plain(Xb, c) for c in counts]
    single = aqi.alignment_quality_index(Xa, y, n_boot=0, n_perm=0).value
    assert d.aqi_a == pytest.approx(single) and d.difference == pytest.approx(d.aqi_a - d.aqi_b)
    expected = norm.sf(d.difference / np.std(diffs, ddof=1))
    assert d.p_value == pytest.approx(expected, rel=1e-6)
    assert d.difference > 0 and 0 < d.p_value < 0.5
    # One-sided: a rise in AQI gives the mirror p-value, above 1/2.
    up = _difference(Xb, Xa, y, w, lam=0.5, confidence=0.95, layers=("l", "l"))
    assert up.p_value == pytest.approx(1 - d.p_value, rel=1e-9)


def test_identical_models_give_nan_p_with_a_warning(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    arrays = {"l0": _two_classes(rng, y, 2.0)}
    a = store_from_arrays(tmp_path / "a.h5", arrays, labels=y, ids=[f"r{i}" for i in range(60)])
    with pytest.warns(DegenerateInputWarning, match="AQI drop at l0 is undefined"):
        cmp = aqi.compare(a, a, n_boot=100)
    d = cmp.layers[0]
    assert d.difference == 0 and np.isnan(d.p_value) and not d.significant
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        none = aqi.compare(a, a, n_boot=0)  # no resamples: no p-value, no warning
    assert np.isnan(none.layers[0].p_value)


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"n_boot": -5}, "n_boot=-5"), ({"confidence": 1.5}, "confidence=1.5")]
)
def test_bad_arguments_name_themselves(tmp_path, kwargs, match):
    y = np.repeat([0, 1], 10)
    a = store_from_arrays(
        tmp_path / "a.h5", {"l": np.random.default_rng(0).normal(size=(20, 3))}, labels=y,
        ids=[f"r{i}" for i in range(20)],
    )
    with pytest.raises(ValueError, match=match):
        aqi.compare(a, a, **kwargs)
