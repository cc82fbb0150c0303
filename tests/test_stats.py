"""The statistics core (aqi._stats): resampling, intervals, p-values, Holm, validators."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from aqi import _stats
from aqi._stats import (
    MAX_RESAMPLES,
    MIN_RESAMPLES,
    DegenerateInputWarning,
    Estimate,
    PairedWeights,
    TooFewResamplesWarning,
    basic_interval,
    check_confidence,
    check_n_boot,
    check_probability,
    contain,
    estimate,
    holm,
    min_resamples,
    normal_p_value,
    percentile_interval,
    permutation_p_value,
    resample_counts,
    stratified_weights,
    wilson_interval,
)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 60), b=st.integers(1, 30), seed=st.integers(0, 2**32 - 1))
def test_resample_counts_rows_sum_to_m(m: int, b: int, seed: int) -> None:
    M = resample_counts(m, b, np.random.default_rng(seed), np.float32)
    assert M.shape == (b, m) and M.dtype == np.float32
    assert (M >= 0).all() and (np.round(M) == M).all()
    assert (M.sum(axis=1) == m).all()


def test_resample_counts_are_the_int64_draws_counted() -> None:
    """The int32 fast path counts exactly the draws ``rng.integers(0, m, (b, m))`` gives."""
    draws = np.random.default_rng(5).integers(0, 37, size=(4, 37))
    expected = np.stack([np.bincount(r, minlength=37) for r in draws])
    assert (resample_counts(37, 4, np.random.default_rng(5)) == expected).all()


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    n_boot=st.integers(1, 50),
    chunk=st.integers(1, 500),
    seed=st.integers(0, 1000),
)
def test_stratified_weights_keep_strata_sizes(
    sizes: list[int], n_boot: int, chunk: int, seed: int
) -> None:
    chunks = list(
        stratified_weights(sizes, n_boot, np.random.default_rng(seed), chunk_elements=chunk)
    )
    W = np.concatenate(chunks)
    assert W.shape == (n_boot, sum(sizes))
    edges = np.cumsum([0, *sizes])
    for j, m in enumerate(sizes):
        assert (W[:, edges[j] : edges[j + 1]].sum(axis=1) == m).all()


def test_paired_weights_replay_the_same_resamples() -> None:
    pw = PairedWeights(sizes=(30, 20), n_boot=7, seed=3)
    first, second = np.concatenate(list(pw)), np.concatenate(list(pw))
    assert (first == second).all() and first.shape == (7, 50)
    other = np.concatenate(list(PairedWeights(sizes=(30, 20), n_boot=7, seed=4)))
    assert not (first == other).all()


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 500), data=st.data(), conf=st.floats(0.5, 0.999))
def test_wilson_within_unit_interval_and_contains_p(n: int, data: st.DataObject, conf: float):
    k = data.draw(st.integers(0, n))
    e = wilson_interval(k, n, conf)
    assert 0.0 <= e.ci_low <= e.value <= e.ci_high <= 1.0
    assert e.value == pytest.approx(k / n)


def test_wilson_known_value_and_empty() -> None:
    e = wilson_interval(10, 20, 0.95)  # textbook: 0.5 [0.2993, 0.7007]
    assert (round(e.ci_low, 4), round(e.ci_high, 4)) == (0.2993, 0.7007)
    assert np.isnan(wilson_interval(0, 0, 0.95).value)


@settings(max_examples=100, deadline=None)
@given(p=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30))
def test_holm_monotone_and_at_least_raw(p: list[float]) -> None:
    raw = np.array(p)
    adj = holm(raw)
    assert (adj >= raw - 1e-15).all() and (adj <= 1.0).all()
    order = np.argsort(raw, kind="stable")
    assert (np.diff(adj[order]) >= -1e-15).all()  # same order as the raw p-values
    assert adj.min() == pytest.approx(min(1.0, raw.min() * len(raw)))


def test_percentile_interval_known_cases() -> None:
    assert percentile_interval(np.arange(101.0), 0.5) == (25.0, 75.0)
    assert percentile_interval(np.r_[np.arange(101.0), np.nan], 0.5) == (25.0, 75.0)
    assert np.isnan(percentile_interval(np.array([np.nan, np.inf]), 0.9)).all()


def test_basic_interval_reflects_the_error_distribution() -> None:
    # θ* − θ_F̂ uniform on [−50, 50]: the interval is θ̂ ∓ the quartiles.
    assert basic_interval(np.arange(101.0), 50.0, 10.0, 0.5) == (-15.0, 35.0)
    # Skewed errors: the basic interval reflects them (a percentile one would not).
    lo, hi = basic_interval(np.r_[np.zeros(80), np.full(20, 10.0)], 0.0, 1.0, 0.8)
    assert (lo, hi) == (-9.0, 1.0)
    assert np.isnan(basic_interval(np.array([1.0]), 0.0, np.nan, 0.9)).all()


def test_estimate_leaves_out_undefined_resamples_with_a_warning() -> None:
    with pytest.warns(DegenerateInputWarning, match="1 of 102"):
        e = estimate(0.5, np.r_[np.linspace(0.4, 0.6, 101), np.nan], 0.9)
    assert (e.ci_low, e.ci_high) == pytest.approx((0.41, 0.59))
    assert repr(estimate(0.5, None, 0.9)) == "0.5" and np.isnan(Estimate(1.0).ci_low)


def test_permutation_p_value_counts_the_observed() -> None:
    assert permutation_p_value(np.arange(1.0, 100.0), 90.0) == pytest.approx(11 / 100)
    assert permutation_p_value(np.zeros(99), 1.0) == pytest.approx(1 / 100)
    assert permutation_p_value(np.zeros(MIN_RESAMPLES), 1.0) < 0.05  # the floor's reason


@settings(max_examples=30, deadline=None)
@given(value=st.floats(-5, 5), sd=st.floats(0.1, 10), n=st.integers(MIN_RESAMPLES, 200))
def test_normal_p_value_is_the_normal_tail(value: float, sd: float, n: int) -> None:
    reps = np.random.default_rng(n).normal(0.0, sd, n)
    expected = norm.sf(value / reps.std(ddof=1))
    assert normal_p_value(value, reps) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_normal_p_value_has_no_floor_and_is_nan_without_spread() -> None:
    reps = np.random.default_rng(0).normal(0.0, 1.0, 200)
    assert normal_p_value(10.0, reps) < 1e-15  # far below 1 / (200 + 1)
    with pytest.warns(DegenerateInputWarning, match="undefined"):
        assert np.isnan(normal_p_value(1.0, np.zeros(50)))
    with pytest.warns(TooFewResamplesWarning, match="1 resamples"):
        assert np.isnan(normal_p_value(1.0, np.array([np.nan, 1.0])))


@pytest.mark.parametrize("bad", [-1, 1.5, True, "10", None, MAX_RESAMPLES + 1, 10**12])
def test_check_n_boot_names_the_argument(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^n_perm=.*integer in \[0, 1000000\] \(0 = none\)"):
        check_n_boot(bad, "n_perm")


# -- the resampling contract ---------------------------------------------------------


def test_min_resamples_follows_the_level() -> None:
    """39 at 95 % two-sided: (B − 1)/(B + 1) ≥ 0.95 first at B = 39; 20 is the floor."""
    assert min_resamples(0.95) == 39 and min_resamples(0.99) == 199
    assert min_resamples(0.5) == MIN_RESAMPLES == min_resamples(0.95, two_sided=False)
    for c in (0.8, 0.9, 0.95, 0.99):  # the range of B draws brackets a share c from B on
        b = min_resamples(c)
        assert (b - 1) / (b + 1) >= c - 1e-12 and (b <= MIN_RESAMPLES or (b - 2) / b < c)


_TOO_FEW = {
    "estimate": (lambda b: estimate(0.5, np.linspace(0.4, 0.6, b), 0.95).ci_low, 38),
    "percentile": (lambda b: percentile_interval(np.linspace(0.4, 0.6, b), 0.95)[0], 38),
    "basic": (lambda b: basic_interval(np.linspace(-1, 1, b), 0.0, 0.5, 0.95)[0], 38),
    "normal_p": (lambda b: normal_p_value(1.0, np.linspace(-1, 1, b)), MIN_RESAMPLES - 1),
    "permutation_p": (lambda b: permutation_p_value(np.linspace(0, 1, b), 0.9),
                      MIN_RESAMPLES - 1),
}


@pytest.mark.parametrize("kind", sorted(_TOO_FEW))
@pytest.mark.parametrize("which", ["one", "two", "most"])
def test_too_few_resamples_give_nan_with_a_warning(kind: str, which: str) -> None:
    call, most = _TOO_FEW[kind]
    b = {"one": 1, "two": 2, "most": most}[which]
    with pytest.warns(TooFewResamplesWarning, match=f"{b} resamples"):
        assert np.isnan(call(b))
    assert np.isfinite(call(most + 1))  # one more and it is computed


def test_enough_resamples_give_numbers_and_none_is_silent() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(estimate(0.5, np.linspace(0.4, 0.6, 39), 0.95).ci_low)
        assert np.isfinite(permutation_p_value(np.linspace(0, 1, 20), 0.9))
        assert np.isnan(percentile_interval(np.array([]), 0.95)).all()  # none asked: silent


def test_contain_widens_never_narrows() -> None:
    assert contain(8.28, 8.76, 8.12) == (8.12, 8.76)  # the reported `8.12 [8.28, 8.76]`
    assert contain(1.0, 2.0, 3.0) == (1.0, 3.0) and contain(1.0, 2.0, 1.5) == (1.0, 2.0)
    assert np.isnan(contain(np.nan, np.nan, 1.0)).all()


def test_a_biased_percentile_interval_is_widened_to_its_estimate() -> None:
    # Every resample above the estimate (a biased statistic such as an ECE): the
    # percentile interval alone would be [1.05, 1.95], excluding 1.0.
    e_boot = np.linspace(1.0, 2.0, 401)[1:]
    e = estimate(1.0, e_boot, 0.9)
    assert e.ci_low == 1.0 and e.ci_high == pytest.approx(np.quantile(e_boot, 0.95))
    # Basic interval whose errors all lie above 0 (resamples all above the truth).
    lo, hi = basic_interval(np.linspace(1.0, 2.0, 100), 0.5, 3.0, 0.9)
    assert lo < hi == 3.0


_finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(
    value=_finite,
    boot=st.lists(st.one_of(_finite, st.just(float("nan"))), min_size=0, max_size=120),
    conf=st.floats(0.5, 0.99),
)
def test_any_interval_contains_its_estimate_or_is_nan(value: float, boot: list[float],
                                                      conf: float) -> None:  # fmt: skip
    """For any replicates: lo ≤ estimate ≤ hi, or NaN when fewer than the minimum are finite."""
    import warnings

    b = np.array(boot, dtype=np.float64)
    enough = np.isfinite(b).sum() >= min_resamples(conf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e = estimate(value, b, conf)
        lo, hi = basic_interval(b, float(np.nanmedian(b)) if enough else 0.0, value, conf)
    for low, high in ((e.ci_low, e.ci_high), (lo, hi)):
        if enough:
            assert low <= value <= high
        else:
            assert np.isnan(low) and np.isnan(high)


@pytest.mark.parametrize("bad", [0, 1, 1.0, -0.5, 95, True, "0.9", float("nan")])
def test_check_confidence_one_open_range(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^confidence=.*\(0, 1\)"):
        check_confidence(bad)


@pytest.mark.parametrize("ok", [0.01, 0.5, 0.95, np.float32(0.9)])
def test_check_confidence_accepts_the_open_unit_interval(ok: float) -> None:
    assert check_confidence(ok) == pytest.approx(float(ok))


@pytest.mark.parametrize("bad", [-0.1, 1.01, False, "0.1", float("nan")])
def test_check_probability_names_the_argument(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^alpha=.*\[0, 1\]"):
        check_probability(bad, "alpha")
    assert check_probability(0, "alpha") == 0.0 and check_probability(1, "alpha") == 1.0


def _aqi_imports(path: str) -> set[str]:
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        module = getattr(node, "module", None) or ""
        if isinstance(node, ast.ImportFrom) and (node.level or module.startswith("aqi")):
            found.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("aqi")}
    return found


def test_core_imports_nothing_from_aqi_but_the_progress_leaf() -> None:
    """The statistics core is the bottom layer: it imports no aqi module except the
    progress bars (for long bootstraps), which themselves import nothing from aqi."""
    from aqi import _progress

    # The core is a package (resamples, weights, intervals, p-values): its modules import
    # each other (".x") and the progress leaf (".._progress"), nothing else of aqi.
    files = sorted(Path(_stats.__file__).parent.glob("*.py"))
    own = {f".{f.stem}" for f in files if f.stem != "__init__"}
    found = set().union(*(_aqi_imports(str(f)) for f in files))
    assert found - own == {".._progress"}
    assert _aqi_imports(_progress.__file__) == set()


def test_the_indices_reexport_the_one_warning_class() -> None:
    import aqi.indices

    assert aqi.indices.DegenerateInputWarning is DegenerateInputWarning
