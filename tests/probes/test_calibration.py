"""Pairwise calibration: ECE/MCE/Brier/NLL against a plain numpy implementation, binning
edge cases, ties, temperature and Platt scaling, bootstrap CIs."""

from __future__ import annotations

import numpy as np
import pytest

from aqi.probes import NotFittedError, PlattScaling, TemperatureScaling, preference_calibration


def _plain_ece(chosen: np.ndarray, rejected: np.ndarray, n_bins: int = 10) -> tuple[float, ...]:
    """Independent loop-based reference: top-label confidence, [lo, hi) bins, last closed."""
    d = chosen - rejected
    conf = 1 / (1 + np.exp(-np.abs(d)))
    correct = np.where(d > 0, 1.0, np.where(d < 0, 0.0, 0.5))
    ece, mce = 0.0, 0.0
    for i in range(n_bins):
        lo, hi = i / n_bins, (i + 1) / n_bins
        m = (conf >= lo) & ((conf < hi) if i < n_bins - 1 else (conf <= hi))
        if m.any():
            gap = abs(correct[m].mean() - conf[m].mean())
            ece += m.mean() * gap
            mce = max(mce, gap)
    p = 1 / (1 + np.exp(-d))
    return correct.mean(), ece, mce, np.mean((1 - p) ** 2), np.mean(-np.log(p))


@pytest.mark.parametrize("scale", [0.5, 2.0, 8.0])
def test_metrics_equal_plain_numpy(scale: float) -> None:
    rng = np.random.default_rng(0)
    c, r = rng.normal(0.5, scale, 2000), rng.normal(0.0, scale, 2000)
    res = preference_calibration(c, r, n_boot=0)
    acc, ece, mce, brier, nll = _plain_ece(c, r)
    assert float(res.accuracy) == pytest.approx(acc, rel=1e-12)
    assert float(res.ece) == pytest.approx(ece, rel=1e-10)
    assert float(res.mce) == pytest.approx(mce, rel=1e-10)
    assert float(res.brier) == pytest.approx(brier, rel=1e-10)
    assert float(res.nll) == pytest.approx(nll, rel=1e-10)
    assert res.bins.count.sum() == 2000


def test_confidence_exactly_one_is_binned_not_dropped() -> None:
    # |Δ| = 50 gives σ = 1.0 exactly in float64; the paper's code drops such pairs.
    c = np.array([50.0, 50.0, -50.0, 0.2])
    r = np.zeros(4)
    res = preference_calibration(c, r, n_boot=0)
    assert res.bins.count.sum() == 4
    assert res.bins.count[-1] == 3
    assert float(res.accuracy) == pytest.approx(0.75)
    # Top bin: confidences 1, 1, 1 with accuracy 2/3 -> gap 1/3 weighted 3/4.
    gap_low = abs(1.0 - 1 / (1 + np.exp(-0.2)))
    assert float(res.ece) == pytest.approx(0.75 / 3 + 0.25 * gap_low)


def test_ties_count_half_or_wrong_and_are_reported() -> None:
    c, r = np.array([1.0, 2.0, 0.0, 3.0]), np.array([1.0, 0.0, 1.0, 3.0])
    half = preference_calibration(c, r, n_boot=0)
    wrong = preference_calibration(c, r, n_boot=0, ties="wrong")
    assert half.n_ties == 2
    assert float(half.accuracy) == pytest.approx(0.5)
    assert float(wrong.accuracy) == pytest.approx(0.25)


def test_quantile_bins_have_equal_mass() -> None:
    rng = np.random.default_rng(1)
    c, r = rng.normal(1, 2, 1000), np.zeros(1000)
    res = preference_calibration(c, r, binning="quantile", n_bins=5, n_boot=0)
    assert res.bins.count.tolist() == [200] * 5


def test_temperature_scaling_recovers_true_temperature_and_reduces_ece() -> None:
    rng = np.random.default_rng(2)
    m = rng.normal(0.5, 3, 40000)
    won = rng.random(40000) < 1 / (1 + np.exp(-m / 2.5))  # true T = 2.5
    c, r = np.where(won, m, 0.0), np.where(won, 0.0, m)
    fit, ev = slice(0, 20000), slice(20000, None)
    ts = TemperatureScaling().fit(c[fit], r[fit])
    assert ts.temperature_ == pytest.approx(2.5, rel=0.05)
    raw = preference_calibration(c[ev], r[ev], n_boot=0)
    cal = preference_calibration(c[ev], r[ev], calibrator=ts, n_boot=0)
    assert float(cal.ece) < 0.02 < float(raw.ece)
    platt = PlattScaling().fit(c[fit], r[fit])
    assert float(preference_calibration(c[ev], r[ev], calibrator=platt, n_boot=0).ece) < 0.02
    with pytest.raises(ValueError, match="fitted on these very pairs"):
        preference_calibration(c[fit], r[fit], calibrator=ts)


def test_bootstrap_ci_covers_population_ece() -> None:
    """Data drawn from a model with known calibration: ECE CI covers the large-sample ECE."""
    rng = np.random.default_rng(3)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        m = rng.normal(1.0, 2.0, n)
        won = rng.random(n) < 1 / (1 + np.exp(-m / 2))
        return np.where(won, m, 0.0), np.where(won, 0.0, m)

    truth = float(preference_calibration(*draw(2_000_000), n_boot=0).ece)
    hits = 0
    for seed in range(15):
        res = preference_calibration(*draw(5000), n_boot=300, seed=seed)
        assert res.ece.ci_low <= float(res.ece) <= res.ece.ci_high
        hits += res.ece.ci_low <= truth <= res.ece.ci_high
    assert hits >= 11  # ECE is biased upward at small n; most intervals still cover


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "match"),
    [
        (([1.0, 2.0], [1.0]), {}, ValueError, "chosen has 2 rewards but rejected has 1"),
        (
            ([1.0, np.inf], [1.0, 0.0]),
            {},
            ValueError,
            "chosen has a non-finite reward at position 1",
        ),
        (([1.0], [0.0]), {"n_bins": 0}, ValueError, "n_bins must be a positive integer"),
        (([1.0], [0.0]), {"binning": "log"}, ValueError, "binning must be 'uniform' or 'quantile'"),
        (([1.0], [0.0]), {"ties": "skip"}, ValueError, "ties must be 'half' or 'wrong'"),
        (([1.0], [0.0]), {"calibrator": 2.0}, TypeError, "calibrator must be a fitted"),
        ((["a"], [0.0]), {}, TypeError, "chosen must be real numbers"),
    ],
)
def test_errors(args: tuple, kwargs: dict, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        preference_calibration(*args, **kwargs)


def test_unfitted_calibrator_raises() -> None:
    with pytest.raises(NotFittedError, match="TemperatureScaling is not fitted"):
        preference_calibration([1.0], [0.0], calibrator=TemperatureScaling())
