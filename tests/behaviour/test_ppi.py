"""Prediction-powered intervals: hand-computed cases, invariants, ppi_py, and coverage.

The coverage simulation is the one of ``benchmarks/judge/ppi_coverage.py`` (which
prints the full table with 10,000 replications), run here with 1,000.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats

from aqi._errors import ArgumentError
from aqi._stats import DegenerateInputWarning
from aqi.behaviour.ppi import (
    PPIEstimate,
    classical_mean_interval,
    naive_mean_interval,
    ppi_mean_interval,
    ppi_paired_difference,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: benchmarks
from benchmarks.judge import ppi_coverage as judge_ppi_coverage

# The docstring's audit: a judge that finds 4 of 6 labelled refusals and calls 1 of
# 4 compliant answers a refusal; it calls 40 of 90 unlabelled responses refusals.
Y = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0], dtype=float)
F = np.array([1, 1, 1, 1, 0, 0, 1, 0, 0, 0], dtype=float)
G = np.array([1.0] * 40 + [0.0] * 50)


def t_half(confidence: float, df: float) -> float:
    return float(stats.t.ppf(0.5 + confidence / 2, df))


def pseudo(n: int, h: float = 0.25) -> float:
    """The variance two pseudo-items at ±h add to a mean of n labels (h: a quarter range)."""
    return 2 * h * h / (n * (n + 1))


# --- hand-computed cases ----------------------------------------------------------------------


def test_plain_ppi_by_hand() -> None:
    # rectifier y - f = [0,0,0,0,1,1,-1,0,0,0]: mean 0.1, sum of squares about it 2.9
    v_lab = 2.9 / 9 / 10 + pseudo(10)
    v_unl = (40 * (5 / 9) ** 2 + 50 * (4 / 9) ** 2) / 89 / 90
    df = (v_lab + v_unl) ** 2 / (v_lab**2 / 9 + v_unl**2 / 89)
    est = ppi_mean_interval(Y, F, G, power_tuning=False)
    assert est.estimate == pytest.approx(4 / 9 + 0.1)
    assert est.std_error == pytest.approx(math.sqrt(v_lab + v_unl))
    half = t_half(0.95, df) * math.sqrt(v_lab + v_unl)
    assert (est.ci_low, est.ci_high) == pytest.approx((4 / 9 + 0.1 - half, 4 / 9 + 0.1 + half))
    assert est.lambda_ == 1.0
    assert est.naive_estimate == pytest.approx(45 / 100)
    assert (est.n_labelled, est.n_unlabelled, est.method) == (10, 90, "ppi")


def test_power_tuned_lambda_by_hand() -> None:
    # cov(y, f) with divisor n: (sum y f - n ȳ f̄) / n = (4 - 10 * 0.6 * 0.5) / 10 = 0.1
    pooled = np.concatenate([F, G])
    lam = 0.1 / ((1 + 10 / 90) * pooled.var(ddof=1))
    est = ppi_mean_interval(Y, F, G)
    assert est.method == "ppi++"
    assert est.lambda_ == pytest.approx(lam)
    assert est.estimate == pytest.approx(lam * G.mean() + (Y - lam * F).mean())


def test_power_tuned_variance_is_the_jackknife_of_the_retuned_estimate() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(30) < 0.7).astype(float)
    f = np.clip(y * 0.6 + rng.random(30) * 0.4, 0, 1)  # a judge's probabilities
    g = rng.random(200)

    def theta(yy: np.ndarray, ff: np.ndarray) -> float:
        n, big_n = len(yy), len(g)
        cov = np.mean((yy - yy.mean()) * (ff - ff.mean()))
        lam = np.clip(cov / ((1 + n / big_n) * np.var(np.concatenate([ff, g]), ddof=1)), 0, 1)
        return float(lam * g.mean() + np.mean(yy - lam * ff)), float(lam)

    loo = np.array([theta(np.delete(y, i), np.delete(f, i))[0] for i in range(30)])
    jack = 29 / 30 * np.sum((loo - loo.mean()) ** 2)
    est = ppi_mean_interval(y, f, g)
    lam = theta(y, f)[1]
    assert est.lambda_ == pytest.approx(lam)
    assert est.std_error**2 == pytest.approx(jack + pseudo(30) + lam**2 * g.var(ddof=1) / 200)


def test_classical_is_the_student_interval_of_the_labels() -> None:
    y = np.array([1.0] * 15 + [0.0] * 5)
    se = math.sqrt(stats.sem(y) ** 2 + pseudo(20))
    lo, hi = stats.t.interval(0.9, 19, loc=y.mean(), scale=se)
    est = classical_mean_interval(y, confidence=0.9)
    assert (est.estimate, est.ci_low, est.ci_high) == pytest.approx((0.75, lo, hi))
    assert (est.lambda_, est.n_unlabelled, est.method) == (0.0, 0, "classical")
    assert math.isnan(est.naive_estimate)


def test_naive_takes_the_judge_at_its_word() -> None:
    f_all = np.concatenate([F, G])
    lo, hi = stats.t.interval(0.95, 99, loc=f_all.mean(), scale=stats.sem(f_all))
    est = naive_mean_interval(F, G)
    assert (est.estimate, est.ci_low, est.ci_high) == pytest.approx((0.45, lo, hi))
    assert math.isnan(est.lambda_)


def test_paired_difference_is_the_mean_of_the_differences() -> None:
    rng = np.random.default_rng(1)
    ya, yb = (rng.random((2, 40)) < [[0.9], [0.6]]).astype(float)
    fa, fb = np.where(rng.random((2, 40)) < 0.8, [ya, yb], 0.0)
    ga, gb = (rng.random((2, 100)) < [[0.8], [0.5]]).astype(float)
    for kwargs in ({"power_tuning": True}, {"power_tuning": False}):
        got = ppi_paired_difference(ya, yb, fa, fb, ga, gb, **kwargs)
        want = ppi_mean_interval(yb - ya, fb - fa, gb - ga, bounds=(-1, 1), **kwargs)
        assert got == want
    got = ppi_paired_difference(ya, yb, fa, fb, ga, gb, method="classical")
    np.testing.assert_equal(
        got.to_dict(), classical_mean_interval(yb - ya, bounds=(-1, 1)).to_dict()
    )
    got = ppi_paired_difference(ya, yb, fa, fb, ga, gb, method="naive")
    np.testing.assert_equal(
        got.to_dict(), naive_mean_interval(fb - fa, gb - ga, bounds=(-1, 1)).to_dict()
    )


def test_rates_are_clipped_to_0_1_and_differences_to_minus_1_1() -> None:
    # a judge that calls almost everything a refusal, labels that say so too
    rate = ppi_mean_interval([1, 1, 1, 0], [1, 1, 1, 1], [1] * 30 + [0])
    assert rate.ci_high == 1.0 and 0.0 <= rate.ci_low <= rate.estimate <= 1.0
    diff = ppi_paired_difference([0, 0, 0, 1], [1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1],
                                 [0] * 30 + [1], [1] * 31)  # fmt: skip
    assert diff.ci_high == 1.0 and -1.0 <= diff.ci_low <= diff.estimate <= 1.0
    unbounded = ppi_mean_interval([1, 1, 1, 0], [1, 1, 1, 1], [1] * 30 + [0], bounds=None)
    assert unbounded.ci_high > 1.0


def test_one_valued_labels_fall_back_to_plain_ppi() -> None:
    # all refusals, the judge missed two: cov(y, ŷ) is 0 by construction, λ would be 0
    est = ppi_mean_interval([1] * 10, [1] * 8 + [0] * 2, [1] * 30 + [0] * 30)
    assert est.lambda_ == 1.0 and est.ci_low < est.ci_high
    assert est == ppi_mean_interval([1] * 10, [1] * 8 + [0] * 2, [1] * 30 + [0] * 30,
                                    power_tuning=False).__class__(**{**est.to_dict()})  # fmt: skip


def test_a_judge_that_says_one_thing_is_not_used() -> None:
    est = ppi_mean_interval([1, 0, 1, 1], [1, 1, 1, 1], [1] * 20)
    assert est.lambda_ == 0.0
    assert est.estimate == pytest.approx(0.75)


def test_repr_and_to_dict() -> None:
    est = ppi_mean_interval(Y, F, G, power_tuning=False)
    assert repr(est).startswith("ppi 0.544 [") and "10 labelled, 90 unlabelled" in repr(est)
    d = est.to_dict()
    assert set(d) == set(PPIEstimate.__dataclass_fields__) and d["lambda_"] == 1.0
    assert est.width == pytest.approx(est.ci_high - est.ci_low)


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (([1, 0, 1], [1, 0], [1, 0]), {}, "y_labelled has 3 items but yhat_labelled has 2"),
        (([1], [1], [1, 0]), {}, "y_labelled has 1 item(s); at least 2"),
        (([1, 0], [1, 0], [1]), {}, "yhat_unlabelled has 1 item(s); at least 2"),
        (([1, float("nan")], [1, 0], [1, 0]), {}, "y_labelled has 1 NaN or infinite"),
        (([1, 0], [1, 0], [1, 0, float("inf")]), {}, "first at index 2"),
        (([1, 2], [1, 0], [1, 0]), {}, "y_labelled has a value outside [0, 1]: 2"),
        (([[1, 0]], [1, 0], [1, 0]), {}, "must be one-dimensional"),
        ((["a", "b"], [1, 0], [1, 0]), {}, "y_labelled must be numbers"),
        (([1, 1, 1], [1, 1, 1], [1, 1, 1]), {}, "the labels cover one value only (3 of 3 are 1)"),
        (([1, 0, 1], [1, 0, 1], [1, 1, 1]), {"power_tuning": False}, "same verdict"),
        ((Y, F, G), {"confidence": 95}, "confidence=95; expected a level in (0, 1)"),
    ],
)
def test_bad_input_is_refused_with_a_reason(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ppi_mean_interval(*args, **kwargs)


def test_one_valued_labels_the_judge_agrees_with_warn_or_fail_in_one_line() -> None:
    # the judge's error on the other value is unmeasured: the interval is its spread alone
    with pytest.warns(DegenerateInputWarning, match=r"cover one value only \(4 of 4 are 0\)") as w:
        est = ppi_mean_interval([0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 0])
    assert "\n" not in str(w[0].message) and "label items of the other class" in str(w[0].message)
    assert est.std_error**2 == pytest.approx(np.var([0, 1, 1, 0], ddof=1) / 4 + pseudo(4))
    # and with one verdict on the unlabelled items too there is no variance at all
    with pytest.raises(ArgumentError) as info:
        ppi_mean_interval([0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0])
    assert "\n" not in str(info.value)
    assert "label more items, including the other class" in str(info.value)
    with pytest.raises(ArgumentError, match="cover one value only"):
        classical_mean_interval([1, 1, 1])


def test_paired_bad_input_names_the_callers_arguments() -> None:
    with pytest.raises(ArgumentError, match="y_a has 3 prompts but y_b has 2"):
        ppi_paired_difference([1, 0, 1], [1, 0], [1, 0, 1], [1, 0, 1], [1, 0], [1, 0])
    with pytest.raises(ArgumentError, match="yhat_a_unlabelled has 2 prompts but yhat_b_unl"):
        ppi_paired_difference([1, 0], [1, 0], [1, 0], [1, 0], [1, 0], [1, 0, 1])
    with pytest.raises(ArgumentError, match="yhat_b_labelled has a value outside"):
        ppi_paired_difference([1, 0], [1, 0], [1, 0], [1, -1], [1, 0], [1, 0])
    with pytest.raises(ArgumentError, match="per-prompt differences b − a: the labels cover"):
        ppi_paired_difference([1, 0], [1, 0], [1, 0], [1, 0], [1, 0], [1, 0])
    with pytest.raises(ArgumentError, match="method='bayes'; expected 'ppi'"):
        ppi_paired_difference([1, 0], [1, 0], [1, 0], [1, 0], [1, 0], [1, 0], method="bayes")


# --- invariants -------------------------------------------------------------------------------

binary = st.lists(st.integers(0, 1), min_size=2, max_size=40).map(lambda v: np.array(v, float))
# rounded: a judge's probabilities, not 1e-121 (lost when a shift of 1 is added)
probabilities = st.lists(st.floats(0, 1).map(lambda p: round(p, 6)), min_size=3, max_size=40).map(
    np.array
)


@settings(max_examples=60, deadline=None)
@given(y=binary, k=st.integers(1, 5), tuning=st.booleans())
def test_a_perfect_judge_is_never_wider_than_the_labels_alone(
    y: np.ndarray, k: int, tuning: bool
) -> None:
    # the unlabelled items are drawn like the labelled ones (here: the same values, k times)
    assume(np.ptp(y) > 0)
    est = ppi_mean_interval(y, y, np.tile(y, k), power_tuning=tuning)
    labels_only = classical_mean_interval(y)
    assert est.estimate == pytest.approx(y.mean())  # the judge's own mean
    assert est.width <= labels_only.width + 1e-12
    if not tuning:
        v_unl = np.var(np.tile(y, k), ddof=1) / (k * len(y))
        assert est.std_error**2 == pytest.approx(v_unl + pseudo(len(y)))


@pytest.mark.filterwarnings("ignore::aqi._stats.DegenerateInputWarning")  # edge cases drawn
@settings(max_examples=60, deadline=None)
@given(y=probabilities, f=probabilities, g=probabilities, shift=st.floats(-5, 5),
       tuning=st.booleans())  # fmt: skip
def test_shifting_the_judge_by_a_constant_changes_nothing(
    y: np.ndarray, f: np.ndarray, g: np.ndarray, shift: float, tuning: bool
) -> None:
    n = min(len(y), len(f))
    y, f = y[:n], f[:n]
    try:
        base = ppi_mean_interval(y, f, g, power_tuning=tuning, bounds=None)
    except ArgumentError:
        assume(False)
    moved = ppi_mean_interval(y, f + shift, g + shift, power_tuning=tuning, bounds=None)
    assert moved.estimate == pytest.approx(base.estimate, abs=1e-9)
    assert moved.lambda_ == pytest.approx(base.lambda_, abs=1e-9)
    assert (moved.ci_low, moved.ci_high) == pytest.approx((base.ci_low, base.ci_high), abs=1e-9)


@pytest.mark.filterwarnings("ignore::aqi._stats.DegenerateInputWarning")  # edge cases drawn
@settings(max_examples=40, deadline=None)
@given(y=binary, seed=st.integers(0, 2**32 - 1))
def test_order_of_the_items_does_not_matter_and_the_interval_holds_the_estimate(
    y: np.ndarray, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    f = rng.random(len(y))
    g = rng.random(25)
    perm = rng.permutation(len(y))
    try:
        a = ppi_mean_interval(y, f, g)
    except ArgumentError:
        assume(False)
    b = ppi_mean_interval(y[perm], f[perm], g[::-1])
    assert (b.estimate, b.ci_low, b.ci_high) == pytest.approx((a.estimate, a.ci_low, a.ci_high))
    assert 0.0 <= a.ci_low <= a.estimate <= a.ci_high <= 1.0


# --- against the reference implementation --------------------------------------------------


def test_matches_ppi_py_where_it_is_installed() -> None:
    # We do not depend on ppi-python: it installs numba, statsmodels, scikit-learn and
    # gdown for an estimator of forty lines. Where it is installed, the estimates and
    # λ̂ must agree exactly; the intervals differ by design (ppi_py divides variances by
    # n and N, uses the normal quantile and the plug-in variance at λ̂). Checked with
    # ppi-python 0.2.3 in a throwaway environment when this was written.
    ppi_py = pytest.importorskip("ppi_py")
    rng = np.random.default_rng(0)
    y = (rng.random(60) < 0.6).astype(float)
    f = np.where(rng.random(60) < 0.8, y, 1 - y)
    g = (rng.random(500) < 0.55).astype(float)
    for lam in (1.0, None):
        lo, hi = ppi_py.ppi_mean_ci(y, f, g, alpha=0.05, lam=lam)
        ours = ppi_mean_interval(y, f, g, power_tuning=lam is None)
        lo, hi = float(np.squeeze(lo)), float(np.squeeze(hi))
        assert ours.estimate == pytest.approx((lo + hi) / 2, abs=1e-12)
        point = ppi_py.ppi_mean_pointestimate(y, f, g, lam=lam)
        assert ours.estimate == pytest.approx(float(np.squeeze(point)), abs=1e-12)
        # n - 1 divisors, the t quantile and (tuned) the jackknife: within a few per cent
        assert 0.95 < ours.width / (hi - lo) < 1.1


# --- coverage when the judge is biased (issue 26's target) ------------------------------------


@pytest.fixture(scope="module")
def coverage_rows() -> list[dict]:
    return judge_ppi_coverage.coverage(reps=1000, seed=0)


def test_ppi_interval_for_the_change_covers_with_a_biased_judge(coverage_rows: list[dict]) -> None:
    by = {(r["judge"], r["method"]): r for r in coverage_rows}
    judges = {r["judge"] for r in coverage_rows}
    assert len(judges) == 5  # misses 10 %, 20 %, 30 %, more of the fine-tune's, echoes
    for judge in judges:
        ppi, naive = by[judge, "ppi++"]["coverage"], by[judge, "naive"]["coverage"]
        assert ppi >= 0.94, (judge, ppi)
        assert naive < ppi, (judge, naive, ppi)
    # the naive interval's failure grows with the judge's bias
    naive = [by[f"misses {m} %", "naive"]["coverage"] for m in (10, 20, 30)]
    assert naive[0] > naive[1] > naive[2] and naive[2] < 0.7
    # and power tuning buys a narrower interval than the labels alone
    for judge in judges:
        assert by[judge, "ppi++"]["mean_width"] < by[judge, "labels-only"]["mean_width"]


def test_ppi_interval_covers_when_the_fine_tune_changes_little() -> None:
    # Δ = −0.04: few per-prompt differences are not 0; a fine-tune that only rewords
    # its refusals fails the naive interval almost always
    audit = judge_ppi_coverage.AUDITS[1]
    rows = judge_ppi_coverage.coverage(reps=400, seed=1, audit=audit)
    by = {(r["judge"], r["method"]): r["coverage"] for r in rows}
    for judge in {r["judge"] for r in rows}:
        assert by[judge, "ppi++"] >= 0.94, judge
    assert by["misses 10 % / 30 % (reworded)", "naive"] < 0.2
